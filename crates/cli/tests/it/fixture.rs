//! Brokers and fleets of daemons for the tests, and the files they share with the CLI.

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use muster_testkit::embedded::TestBroker;
use muster_testkit::{Daemon, DaemonSpec, EmbeddedBroker, NatsServerProcess};
use serde_json::json;
use tempfile::NamedTempFile;

use crate::cli::{Muster, bin, muster};

/// A broker and daemons connected to it. The daemons go before the broker on drop.
pub struct Fleet {
    /// The daemons, in the order they were specified.
    pub daemons: Vec<Daemon>,
    /// The broker.
    pub nats: Box<dyn TestBroker>,
}

/// Which broker the tests on this thread run against (see `on_both_brokers!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Muster's embedded broker, in this process.
    Embedded,
    /// A real `nats-server` process.
    NatsServer,
}

thread_local! {
    static KIND: Cell<Kind> = const { Cell::new(Kind::NatsServer) };
}

/// Runs `body` with [`broker`] starting brokers of this kind.
pub fn on(kind: Kind, body: impl FnOnce() -> Result<()>) -> Result<()> {
    KIND.set(kind);
    body()
}

/// Starts a broker of this thread's kind, or `None` when that is `nats-server` and it is
/// missing (the test then returns early; the testkit has said SKIPPED loudly, or failed when
/// `CI` is set).
pub fn broker() -> Result<Option<Box<dyn TestBroker>>> {
    Ok(match KIND.get() {
        Kind::Embedded => Some(Box::new(EmbeddedBroker::start()?)),
        Kind::NatsServer => NatsServerProcess::start()?.map(|n| Box::new(n) as Box<dyn TestBroker>),
    })
}

/// Starts a broker and these daemons (all spawned at once, then each awaited).
pub fn fleet(specs: &[DaemonSpec]) -> Result<Option<Fleet>> {
    let Some(nats) = broker()? else {
        return Ok(None);
    };
    let daemons = start_daemons(&nats.url(), specs)?;
    Ok(Some(Fleet { daemons, nats }))
}

/// Spawns every daemon, then waits until each answers a ping.
pub fn start_daemons(url: &str, specs: &[DaemonSpec]) -> Result<Vec<Daemon>> {
    let daemons = specs
        .iter()
        .map(|spec| Daemon::spawn(bin(), url, spec))
        .collect::<Result<Vec<_>>>()?;
    for daemon in &daemons {
        daemon.wait_ready(Duration::from_secs(20))?;
    }
    Ok(daemons)
}

/// The five nodes the filter tests select from.
///
/// | node   | role  | dc  | os.family | os.release | cpus | kernel           | managed | tags        | classes              |
/// |--------|-------|-----|-----------|------------|------|------------------|---------|-------------|----------------------|
/// | web1   | web   | ams | Debian    | "12"       | 4    | 6.1.0-13-amd64   | true    | edge public | nginx base           |
/// | web2   | web   | fra | Debian    | "11"       | 16   | 6.8.0-40-generic | false   | edge        | nginx base canary    |
/// | db1    | db    | ams | RedHat    | "9.3"      | 32   | 5.14.0-362.el9   | true    |             | postgres base        |
/// | db2    | db    | fra | RedHat    | "8.9"      | 8    | 4.18.0-513.el8   | false   |             | postgres base canary |
/// | cache1 | cache | ams | Debian    | "12"       | 2    | 6.1.0-13-amd64   | false   |             | redis                |
pub fn five_specs() -> Vec<DaemonSpec> {
    vec![
        DaemonSpec::new("web1")
            .facts(json!({
                "role": "web", "dc": "ams", "os": {"family": "Debian", "release": "12"},
                "cpus": 4, "kernel": "6.1.0-13-amd64", "managed": true, "tags": ["edge", "public"]
            }))
            .classes(&["nginx", "base"]),
        DaemonSpec::new("web2")
            .facts(json!({
                "role": "web", "dc": "fra", "os": {"family": "Debian", "release": "11"},
                "cpus": 16, "kernel": "6.8.0-40-generic", "managed": false, "tags": ["edge"]
            }))
            .classes(&["nginx", "base", "canary"]),
        DaemonSpec::new("db1")
            .facts(json!({
                "role": "db", "dc": "ams", "os": {"family": "RedHat", "release": "9.3"},
                "cpus": 32, "kernel": "5.14.0-362.el9", "managed": true, "tags": []
            }))
            .classes(&["postgres", "base"]),
        DaemonSpec::new("db2")
            .facts(json!({
                "role": "db", "dc": "fra", "os": {"family": "RedHat", "release": "8.9"},
                "cpus": 8, "kernel": "4.18.0-513.el8", "managed": false, "tags": []
            }))
            .classes(&["postgres", "base", "canary"]),
        DaemonSpec::new("cache1")
            .facts(json!({
                "role": "cache", "dc": "ams", "os": {"family": "Debian", "release": "12"},
                "cpus": 2, "kernel": "6.1.0-13-amd64", "managed": false, "tags": []
            }))
            .classes(&["redis"]),
    ]
}

/// The identities of [`five_specs`].
pub const FIVE: [&str; 5] = ["web1", "web2", "db1", "db2", "cache1"];

impl Fleet {
    /// The broker's URL.
    pub fn url(&self) -> String {
        self.nats.url()
    }

    /// `muster ARGS… --broker URL`.
    pub fn muster<S: AsRef<str>>(&self, args: &[S]) -> Muster {
        muster(args).broker(&self.url())
    }

    /// The daemon with this identity.
    #[track_caller]
    pub fn daemon(&mut self, identity: &str) -> &mut Daemon {
        self.daemons
            .iter_mut()
            .find(|d| d.identity == identity)
            .unwrap_or_else(|| panic!("no daemon {identity} in the fleet"))
    }
}

/// A node list file: one identity per line.
pub fn node_list(identities: &[&str]) -> Result<NamedTempFile> {
    text_file(&format!("{}\n", identities.join("\n")))
}

/// A temporary file holding `text`.
pub fn text_file(text: &str) -> Result<NamedTempFile> {
    let mut file = tempfile::Builder::new().suffix(".txt").tempfile()?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(file)
}

/// The path of a temporary file as a `&str` argument.
#[track_caller]
pub fn arg(file: &NamedTempFile) -> &str {
    file.path().to_str().expect("temporary paths are UTF-8")
}

/// A client config that waits longer for discovery answers to go quiet (500 ms instead of
/// 200 ms) so that a daemon descheduled for a moment on a loaded test machine is not left out
/// of broadcast discovery. Use it where a test depends on discovery finding every node.
pub fn patient_client_config() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("muster-it-client-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "discovery_quiet = \"500ms\"\ndiscovery_timeout = \"4s\"\n",
        )
        .with_context(|| format!("cannot write {}", path.display()))
        .unwrap();
        path
    })
}

/// `--config` with [`patient_client_config`], as arguments.
pub fn patient() -> [&'static str; 2] {
    [
        "--config",
        patient_client_config()
            .to_str()
            .expect("the target dir is UTF-8"),
    ]
}

/// A TCP port on 127.0.0.1 that nobody listens on (bound, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A `muster` process running in the background (a registry, a simulator), killed and reaped
/// on drop; its stderr goes to a log file, printed when the test fails.
pub struct Background {
    child: std::process::Child,
    what: String,
    log: PathBuf,
}

impl Background {
    /// Starts `muster ARGS` against the broker at `url`, appending its stderr to `log`.
    pub fn start(args: &[&std::ffi::OsStr], url: &str, log: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let what = format!(
            "muster {}",
            args.first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default()
        );
        let child = std::process::Command::new(bin())
            .args(args)
            .args(["--broker", url])
            .env_remove("MUSTER_BROKER")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(Background {
            child,
            what,
            log: log.to_path_buf(),
        })
    }

    /// Stops it now (SIGKILL: nothing is flushed on the way out).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- log of {} -----\n{}----- end -----",
                self.what,
                muster_testkit::read(&self.log)
            );
        }
        self.kill();
    }
}

/// A `muster registry --db DB` process.
pub fn registry(db: &Path, url: &str, log: &Path) -> Result<Background> {
    Background::start(
        &["registry".as_ref(), "--db".as_ref(), db.as_os_str()],
        url,
        log,
    )
}

/// An executable shell script `name` in `dir` with this body: a harmless stand-in for a
/// system command. Returns its path.
pub fn stand_in(dir: &Path, name: &str, body: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.display().to_string())
}

/// The password of [`secured_nats_server`] and [`secured_embedded_broker`], user `muster`.
pub const BROKER_PASSWORD: &str = "s3cret";

/// nats-server with TLS from `certs`, verifying client certificates, and user `muster` with
/// [`BROKER_PASSWORD`]; `None` without nats-server (skipped loudly).
pub fn secured_nats_server(
    certs: &muster_testkit::tls::TestCerts,
) -> Result<Option<NatsServerProcess>> {
    let (cert, key) = certs.server();
    let conf = format!(
        "tls {{\n  cert_file: {cert:?}\n  key_file: {key:?}\n  ca_file: {:?}\n  verify: true\n  timeout: 5\n}}\nauthorization {{\n  user: muster\n  password: {BROKER_PASSWORD}\n}}\n",
        certs.ca()
    );
    NatsServerProcess::start_with_config(Some(&conf))
}

/// The embedded broker secured as [`secured_nats_server`] is.
pub fn secured_embedded_broker(certs: &muster_testkit::tls::TestCerts) -> Result<EmbeddedBroker> {
    let (cert, key) = certs.server();
    EmbeddedBroker::with_config(muster_broker::BrokerConfig {
        tls: Some(muster_broker::Tls {
            cert,
            key,
            ca: Some(certs.ca()),
        }),
        auth: muster_broker::Auth::UserPassword {
            user: "muster".into(),
            password: BROKER_PASSWORD.into(),
        },
        ..Default::default()
    })
}
