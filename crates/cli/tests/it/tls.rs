//! TLS without guesswork (docs/security.md, "The broker connection"): `muster issuer tls`
//! makes a CA, a broker certificate and client certificates that both brokers take, with
//! client certificates verified; and a certificate rustls would refuse is named with the
//! reason when the broker, a client or a daemon loads it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use muster_testkit::pki::Pki;
use muster_testkit::{DaemonSpec, wait_for};

use crate::cli::{Run, bin, muster};
use crate::fixture::{self, Kind};

fn arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `muster broker --listen 127.0.0.1:0 --config CONFIG` in the background, killed on drop.
struct BrokerProcess {
    child: Child,
    log: PathBuf,
    url: String,
}

impl BrokerProcess {
    fn start(config: &Path) -> Result<BrokerProcess> {
        let log = config.with_extension("log");
        let child = Command::new(bin())
            .args(["broker", "--listen", "127.0.0.1:0", "--config", arg(config)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start muster broker")?;
        let mut broker = BrokerProcess {
            child,
            log,
            url: String::new(),
        };
        let mut url = None;
        wait_for("muster broker to listen", Duration::from_secs(20), || {
            url = muster_testkit::read(&broker.log)
                .lines()
                .find_map(|l| l.split("listening on ").nth(1))
                .and_then(|rest| rest.split(';').next())
                .map(str::to_string);
            url.is_some()
        })?;
        broker.url = url.unwrap_or_default();
        Ok(broker)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- log of muster broker -----\n{}----- end -----",
                muster_testkit::read(&self.log)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[transport]` for a CA file and a client certificate.
fn transport(ca: &Path, cert: Option<(&Path, &Path)>) -> String {
    let mut text = format!("[transport]\ntls_ca = {ca:?}\n");
    if let Some((cert, key)) = cert {
        text.push_str(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"));
    }
    text
}

/// The recipe of docs/security.md, on one broker of `kind`: the CA, the broker's certificate
/// and two client certificates made by `muster issuer tls`; the broker verifies client
/// certificates; a daemon and a client with theirs answer a signed ping, and a client without
/// one is refused.
fn the_recipe_on(kind: Kind) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tls = dir.path().join("tls");
    let d = arg(&tls);
    muster(&["issuer", "tls", "ca", "--dir", d])
        .run()
        .code(0)
        .stdout_has("ca.crt");
    muster(&[
        "issuer",
        "tls",
        "server",
        "--ca",
        d,
        "--name",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        &format!("{d}/broker"),
    ])
    .run()
    .code(0)
    .stdout_has("broker.crt")
    .stdout_has("cert_file");
    for name in ["web1", "alice"] {
        muster(&[
            "issuer",
            "tls",
            "client",
            "--ca",
            d,
            "--name",
            name,
            "--out",
            &format!("{d}/{name}"),
        ])
        .run()
        .code(0)
        .stdout_has(&format!("{name}.crt"))
        .stdout_has("tls_cert");
    }
    assert_eq!(mode(&tls), 0o700);
    for key in ["ca.key", "broker.key", "web1.key", "alice.key"] {
        assert_eq!(mode(&tls.join(key)), 0o600, "{key}");
    }
    let (ca, cert, key) = (
        tls.join("ca.crt"),
        tls.join("broker.crt"),
        tls.join("broker.key"),
    );

    // The broker, with the config keys docs/security.md gives for each.
    let _embedded;
    let _nats;
    let url = match kind {
        Kind::Embedded => {
            let config = dir.path().join("broker.toml");
            std::fs::write(
                &config,
                format!("[tls]\ncert = {cert:?}\nkey = {key:?}\nca = {ca:?}\n"),
            )?;
            let broker = BrokerProcess::start(&config)?;
            let url = broker.url.clone();
            _embedded = broker;
            url
        }
        Kind::NatsServer => {
            let conf = format!(
                "tls {{\n  cert_file: {cert:?}\n  key_file: {key:?}\n  ca_file: {ca:?}\n  verify: true\n}}\n"
            );
            let Some(nats) = muster_testkit::NatsServerProcess::start_with_config(Some(&conf))?
            else {
                return Ok(());
            };
            let url = nats.url();
            _nats = nats;
            url
        }
    };

    let pki = Pki::new()?;
    pki.policy("rpcutil", "policy default allow\n")?;
    let spec = pki.signed(DaemonSpec::new("web1"))?.config(&transport(
        &ca,
        Some((&tls.join("web1.crt"), &tls.join("web1.key"))),
    ));
    let _daemon = muster_testkit::Daemon::start(bin(), &url, &spec)?;
    let alice = pki.caller("alice", None)?;
    let nodes = fixture::node_list(&["web1"])?;
    let ping = |extra: &str, name: &str| -> Result<Run> {
        let config = pki.client_config(&alice, name, extra)?;
        Ok(muster(&[
            "ping",
            "--nodes",
            fixture::arg(&nodes),
            "--config",
            arg(&config),
        ])
        .broker(&url)
        .run())
    };
    let with_cert = transport(&ca, Some((&tls.join("alice.crt"), &tls.join("alice.key"))));
    ping(&with_cert, "alice")?.code(0).stdout_has("web1");
    // The broker verifies client certificates: without one, no connection.
    ping(&transport(&ca, None), "no-cert")?.code(5);
    Ok(())
}

/// The recipe with Muster's embedded broker (`muster broker` with `[tls] cert, key, ca`).
#[test]
fn certificates_made_by_the_command_work_on_the_embedded_broker() -> Result<()> {
    the_recipe_on(Kind::Embedded)
}

/// The recipe with nats-server (`tls { cert_file key_file ca_file verify: true }`).
#[test]
fn certificates_made_by_the_command_work_on_nats_server() -> Result<()> {
    the_recipe_on(Kind::NatsServer)
}

/// The command refuses to overwrite, and what it cannot make it says.
#[test]
fn the_command_never_overwrites_and_says_what_it_cannot_make() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = arg(dir.path());
    muster(&["issuer", "tls", "ca", "--dir", d]).run().code(0);
    let key = std::fs::read(dir.path().join("ca.key"))?;
    muster(&["issuer", "tls", "ca", "--dir", d])
        .run()
        .code(2)
        .stderr_has("ca.crt exists; certificates and keys are never overwritten");
    assert_eq!(std::fs::read(dir.path().join("ca.key"))?, key);
    let out = format!("{d}/alice");
    let client = [
        "issuer", "tls", "client", "--ca", d, "--name", "alice", "--out", &out,
    ];
    muster(&client).run().code(0);
    muster(&client).run().code(2).stderr_has("alice.crt exists");
    muster(&[
        "issuer",
        "tls",
        "server",
        "--ca",
        d,
        "--out",
        &format!("{d}/b"),
    ])
    .run()
    .code(2)
    .stderr_has("--name");
    muster(&[
        "issuer",
        "tls",
        "client",
        "--ca",
        &format!("{d}/none"),
        "--name",
        "bob",
        "--out",
        &format!("{d}/bob"),
    ])
    .run()
    .code(2)
    .stderr_has("make the CA first: muster issuer tls ca --dir");
    Ok(())
}

/// `openssl ARGS…` in `dir`, or `None` when openssl is not installed (said loudly; with `CI`
/// set that is a failure).
fn openssl(dir: &Path, args: &[&str]) -> Result<Option<String>> {
    let output = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if muster_testkit::in_ci() {
                bail!("openssl is not installed, and CI is set");
            }
            eprintln!("*** SKIPPED: needs openssl, which is not installed ***");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if !output.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// What an old recipe makes with openssl in `dir`: a CA (`ca.crt`, `ca.key`), and for `broker`
/// and `alice` a version 1 certificate (`NAME-v1.crt`: `openssl x509 -req` without extensions)
/// and a version 3 one (`NAME.crt`), with their key (`NAME.key`). `None`: no openssl.
fn old_recipe(dir: &Path) -> Result<Option<()>> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-subj",
            "/CN=old CA",
            "-days",
            "30",
            "-out",
            "ca.crt",
        ],
    ]
    .concat();
    if openssl(dir, &ca)?.is_none() {
        return Ok(None);
    }
    for (name, ext) in [
        (
            "broker",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("alice", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        let subject = format!("/CN={name}");
        let request = [
            &["req", "-new"][..],
            &ec,
            &["-keyout", &key, "-subj", &subject, "-out", &csr],
        ]
        .concat();
        openssl(dir, &request)?;
        std::fs::write(dir.join(format!("{name}.ext")), ext)?;
        let sign = |out: &str, extensions: &[&str]| {
            let args = [
                &[
                    "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
                ][..],
                &["-CAcreateserial", "-days", "30", "-out", out],
                extensions,
            ]
            .concat();
            openssl(dir, &args)
        };
        sign(&format!("{name}-v1.crt"), &[])?;
        sign(
            &format!("{name}.crt"),
            &["-extfile", &format!("{name}.ext")],
        )?;
        let text = openssl(
            dir,
            &["x509", "-noout", "-text", "-in", &format!("{name}-v1.crt")],
        )?;
        assert!(
            text.as_deref()
                .unwrap_or_default()
                .contains("Version: 1 (0x0)"),
            "openssl made no version 1 certificate: {text:?}"
        );
    }
    Ok(Some(()))
}

/// `muster broker` with this `[tls]`, expected to refuse to start: its stderr.
fn broker_refuses(dir: &Path, cert: &str, key: &str) -> Result<Run> {
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
            dir.join(cert),
            dir.join(key),
            dir.join("ca.crt")
        ),
    )?;
    let run = muster(&[
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--config",
        arg(&config),
    ])
    .run();
    run.code(2);
    Ok(run)
}

/// A client (`muster ping`) and a daemon (`muster server`) with this client certificate,
/// expected to refuse it before connecting: their stderr, one after the other.
fn client_and_daemon_refuse(dir: &Path, cert: &str, key: &str) -> Result<Vec<Run>> {
    let url = format!("nats://127.0.0.1:{}", fixture::dead_port());
    let transport = transport(&dir.join("ca.crt"), Some((&dir.join(cert), &dir.join(key))));
    let client = dir.join("client.toml");
    std::fs::write(&client, &transport)?;
    let ping = muster(&["ping", "--nodes", "-", "--config", arg(&client)])
        .broker(&url)
        .stdin("web1\n")
        .run();
    let server = dir.join("server.toml");
    std::fs::write(
        &server,
        format!("identity = \"web1\"\nsecurity = \"insecure\"\nbrokers = [{url:?}]\n{transport}"),
    )?;
    let daemon = muster(&["server", "--config", arg(&server)]).run();
    for run in [&ping, &daemon] {
        assert!(
            run.code.is_some_and(|c| c != 0),
            "expected a refusal:\n{run}"
        );
    }
    Ok(vec![ping, daemon])
}

/// An X.509 version 1 certificate — what `openssl x509 -req` makes without extensions — is
/// named with the reason by the broker that loads it, and by a client and a daemon.
#[test]
fn a_version_1_certificate_is_refused_with_the_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    if old_recipe(dir.path())?.is_none() {
        return Ok(());
    }
    let broker = dir.path().join("broker-v1.crt");
    broker_refuses(dir.path(), "broker-v1.crt", "broker.key")?.stderr_has(&format!(
        "{}: X.509 version 1 certificate; rustls (webpki) accepts only version 3 — make it with \
         `muster issuer tls server`",
        broker.display()
    ));
    let alice = dir.path().join("alice-v1.crt");
    for run in client_and_daemon_refuse(dir.path(), "alice-v1.crt", "alice.key")? {
        run.stderr_has(&format!(
            "{}: X.509 version 1 certificate; rustls (webpki) accepts only version 3 — make it \
             with `muster issuer tls client`",
            alice.display()
        ));
    }
    Ok(())
}

/// A key that belongs to another certificate is named, with the certificate it does not
/// match, by the broker, a client and a daemon.
#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    if old_recipe(dir.path())?.is_none() {
        return Ok(());
    }
    let (alice_key, broker_key) = (dir.path().join("alice.key"), dir.path().join("broker.key"));
    broker_refuses(dir.path(), "broker.crt", "alice.key")?.stderr_has(&format!(
        "{}: does not match the certificate {}",
        alice_key.display(),
        dir.path().join("broker.crt").display()
    ));
    for run in client_and_daemon_refuse(dir.path(), "alice.crt", "broker.key")? {
        run.stderr_has(&format!(
            "{}: does not match the certificate {}",
            broker_key.display(),
            dir.path().join("alice.crt").display()
        ));
    }
    Ok(())
}

/// The CA's certificate used as the broker's or a client's own, and a PEM file with no
/// certificate in it, are named with the reason.
#[test]
fn a_ca_certificate_as_ones_own_and_a_file_without_a_certificate_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    if old_recipe(dir.path())?.is_none() {
        return Ok(());
    }
    let ca = dir.path().join("ca.crt");
    broker_refuses(dir.path(), "ca.crt", "ca.key")?.stderr_has(&format!(
        "{}: a CA certificate (basicConstraints CA:TRUE), not a broker certificate",
        ca.display()
    ));
    for run in client_and_daemon_refuse(dir.path(), "ca.crt", "ca.key")? {
        run.stderr_has(&format!(
            "{}: a CA certificate (basicConstraints CA:TRUE), not a client certificate",
            ca.display()
        ));
    }
    let key = dir.path().join("broker.key");
    broker_refuses(dir.path(), "broker.key", "broker.key")?.stderr_has(&format!(
        "{}: no certificate in the file, only a private key: is this the key file?",
        key.display()
    ));
    Ok(())
}
