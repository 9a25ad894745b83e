//! `muster issuer tls ca|server|client`: the CA and the certificates of the broker connection
//! (docs/security.md, "The broker connection"). Each prints what it wrote and the lines that
//! use it in `muster broker`'s, nats-server's or a client's configuration.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use muster_client::ExitStatus;
use muster_security::pki::{self, Leaf, Made, Role};

use crate::Failure;
use crate::args::{TlsCommand, TlsLeafArgs};

/// `muster issuer tls …`.
pub fn run(command: TlsCommand) -> Result<ExitStatus, Failure> {
    match command {
        TlsCommand::Ca { dir, name, valid } => {
            let made =
                pki::make_ca(&dir, &name, valid, SystemTime::now()).map_err(Failure::usage)?;
            println!(
                "CA certificate: {} — the broker and every client, daemon and registry get it",
                made.cert.display()
            );
            println!(
                "CA key:         {} (mode 0600) — keep it to yourself: it makes certificates",
                made.key.display()
            );
            println!("valid until {}", until(&made));
            println!(
                "Next: muster issuer tls server --ca {dir} --name HOST --ip ADDR --out {dir}/broker",
                dir = dir.display()
            );
        }
        TlsCommand::Server(args) => {
            let (mut dns_names, mut ips) = (Vec::new(), args.ips.clone());
            // `--name 10.0.0.1` is an address, and goes where clients look for addresses.
            for name in &args.names {
                match name.parse() {
                    Ok(ip) => ips.push(ip),
                    Err(_) => dns_names.push(name.clone()),
                }
            }
            let common_name = args
                .names
                .first()
                .cloned()
                .or_else(|| args.ips.first().map(|ip| ip.to_string()))
                .unwrap_or_default();
            let leaf = Leaf {
                role: Role::Server,
                common_name,
                dns_names,
                ips,
            };
            let made = make(&leaf, &args.leaf)?;
            let names: Vec<String> = (leaf.dns_names.iter().cloned())
                .chain(leaf.ips.iter().map(|ip| ip.to_string()))
                .collect();
            println!(
                "broker certificate: {} (for {}; valid until {})",
                made.cert.display(),
                names.join(", "),
                until(&made)
            );
            println!("broker key:         {} (mode 0600)", made.key.display());
            let (cert, key, ca) = (
                absolute(&made.cert),
                absolute(&made.key),
                absolute(&args.leaf.ca.join(pki::CA_CERT)),
            );
            println!(
                "muster broker --config FILE:\n  [tls]\n  cert = {}\n  key = {}\n  ca = {}    \
                 # clients must present a certificate the CA signed",
                toml_string(&cert),
                toml_string(&key),
                toml_string(&ca)
            );
            println!(
                "nats-server:\n  tls {{\n    cert_file: {cert:?}\n    key_file: {key:?}\n    \
                 ca_file: {ca:?}\n    verify: true\n  }}"
            );
        }
        TlsCommand::Client(args) => {
            let leaf = Leaf {
                role: Role::Client,
                common_name: args.name.clone(),
                dns_names: Vec::new(),
                ips: Vec::new(),
            };
            let made = make(&leaf, &args.leaf)?;
            println!(
                "client certificate: {} (for {}; valid until {})",
                made.cert.display(),
                args.name,
                until(&made)
            );
            println!("client key:         {} (mode 0600)", made.key.display());
            println!(
                "client.toml, server.toml (or the registry's --config):\n  [transport]\n  \
                 tls_ca = {}\n  tls_cert = {}\n  tls_key = {}",
                toml_string(&absolute(&args.leaf.ca.join(pki::CA_CERT))),
                toml_string(&absolute(&made.cert)),
                toml_string(&absolute(&made.key))
            );
        }
    }
    Ok(ExitStatus::Ok)
}

fn make(leaf: &Leaf, args: &TlsLeafArgs) -> Result<Made, Failure> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&leaf.common_name));
    pki::make_leaf(&args.ca, leaf, &out, args.valid, SystemTime::now()).map_err(Failure::usage)
}

fn until(made: &Made) -> String {
    muster_proto::time::rfc3339(made.not_after as f64)
}

/// The path as configuration files should hold it: absolute, since they are read from
/// elsewhere.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
