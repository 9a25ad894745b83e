//! What `muster keygen`, `muster issuer …` and `muster issuer tls …` made, and the
//! configuration lines that use it.

use std::io::{self, Write};
use std::path::Path;

use muster_security::pki::Made;

/// `muster keygen`: the key pair written, and how to have it certified.
pub fn keygen(out: &mut dyn Write, private: &Path, public: &Path) -> io::Result<()> {
    writeln!(
        out,
        "private key: {} (mode 0600: keep it to yourself)",
        private.display()
    )?;
    writeln!(out, "public key:  {}", public.display())?;
    writeln!(
        out,
        "Have the issuer make a credential for it: muster issuer issue --caller NAME --pubkey {} \
         (a node's: --node IDENTITY)",
        public.display()
    )
}

/// `muster issuer init`: the issuer's key pair.
pub fn issuer_init(out: &mut dyn Write, private: &Path, public: &Path) -> io::Result<()> {
    writeln!(
        out,
        "issuer private key: {} — keep it offline; it makes credentials",
        private.display()
    )?;
    writeln!(
        out,
        "issuer public key:  {} — every node and client gets it (issuer = \"…\" in their config)",
        public.display()
    )
}

/// `muster issuer issue`: the credential written. `kind` is `caller` or `node`, `expires`
/// Unix seconds, `agents` the caller's limit if any.
pub fn issued(
    out: &mut dyn Write,
    kind: &str,
    name: &str,
    path: &Path,
    expires: u64,
    agents: Option<&[String]>,
) -> io::Result<()> {
    writeln!(
        out,
        "{kind} credential for {name:?}: {} (valid until {}{})",
        path.display(),
        muster_proto::time::rfc3339(expires as f64),
        agents
            .map(|a| format!(", agents {}", a.join(", ")))
            .unwrap_or_default()
    )
}

/// When a certificate expires, RFC 3339.
fn until(made: &Made) -> String {
    muster_proto::time::rfc3339(made.not_after as f64)
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `muster issuer tls ca`: the CA written into `dir`, and the next step.
pub fn tls_ca(out: &mut dyn Write, made: &Made, dir: &Path) -> io::Result<()> {
    writeln!(
        out,
        "CA certificate: {} — the broker and every client, daemon and registry get it",
        made.cert.display()
    )?;
    writeln!(
        out,
        "CA key:         {} (mode 0600) — keep it to yourself: it makes certificates",
        made.key.display()
    )?;
    writeln!(out, "valid until {}", until(made))?;
    writeln!(
        out,
        "Next: muster issuer tls server --ca {dir} --name HOST --ip ADDR --out {dir}/broker",
        dir = dir.display()
    )
}

/// Absolute paths of a certificate, its key and the CA's certificate, as configuration files
/// hold them.
pub struct Paths {
    /// The certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
    /// The CA's certificate.
    pub ca: String,
}

/// `muster issuer tls server`: the broker's certificate for `names`, and the configuration of
/// `muster broker` and nats-server that use it.
pub fn tls_server(
    out: &mut dyn Write,
    made: &Made,
    names: &[String],
    paths: &Paths,
) -> io::Result<()> {
    let Paths { cert, key, ca } = paths;
    writeln!(
        out,
        "broker certificate: {} (for {}; valid until {})",
        made.cert.display(),
        names.join(", "),
        until(made)
    )?;
    writeln!(
        out,
        "broker key:         {} (mode 0600)",
        made.key.display()
    )?;
    writeln!(
        out,
        "muster broker --config FILE:\n  [tls]\n  cert = {}\n  key = {}\n  ca = {}    \
         # clients must present a certificate the CA signed",
        toml_string(cert),
        toml_string(key),
        toml_string(ca)
    )?;
    writeln!(
        out,
        "nats-server:\n  tls {{\n    cert_file: {cert:?}\n    key_file: {key:?}\n    \
         ca_file: {ca:?}\n    verify: true\n  }}"
    )
}

/// `muster issuer tls client`: the certificate for `name`, and the `[transport]` lines that
/// use it.
pub fn tls_client(out: &mut dyn Write, made: &Made, name: &str, paths: &Paths) -> io::Result<()> {
    writeln!(
        out,
        "client certificate: {} (for {name}; valid until {})",
        made.cert.display(),
        until(made)
    )?;
    writeln!(
        out,
        "client key:         {} (mode 0600)",
        made.key.display()
    )?;
    writeln!(
        out,
        "client.toml, server.toml (or the registry's --config):\n  [transport]\n  \
         tls_ca = {}\n  tls_cert = {}\n  tls_key = {}",
        toml_string(&paths.ca),
        toml_string(&paths.cert),
        toml_string(&paths.key)
    )
}
