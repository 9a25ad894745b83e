//! Test support for Muster: real `nats-server` processes, the embedded broker on its own
//! runtime thread ([`embedded`]) and real `muster server` daemons on loopback with ephemeral
//! ports, each in a temporary directory, killed and reaped on drop, with their logs printed
//! when a test fails; clusters of `nats-server` over routes and a hub with a leaf node
//! ([`cluster`]); throwaway keys, credentials and policies ([`pki`]) and certificates
//! ([`tls`]); Choria's agent DDLs with stand-ins serving them ([`choria`]).
//!
//! Nothing here waits by sleeping: every wait is for a condition, with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tempfile::TempDir;

pub use nix::sys::signal::Signal as UnixSignal;

pub mod choria;
pub mod cluster;
pub mod embedded;
pub mod pki;
pub mod tls;
pub use cluster::{NatsCluster, NatsLeaf, hub_with_leaf};
pub use embedded::EmbeddedBroker;

/// Waits until `condition` returns true, checking every few milliseconds, or fails after
/// `deadline` saying what was awaited.
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    while start.elapsed() < deadline {
        if condition() {
            return Ok(());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    bail!("timed out after {deadline:?} waiting for {what}")
}

/// Whether tests must not skip (the `CI` environment variable is set).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Says loudly that the current test skips part of its work, and why. It writes to the
/// process's stderr directly, past the test harness's output capture, so the line shows even
/// for a test that passes.
pub fn say_skipped(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(
        std::io::stderr(),
        "*** SKIPPED in {test}: {why}. Install it (apt-get install nats-server) or set \
         NATS_SERVER_BIN; with CI set this is a failure. ***"
    );
}

/// The `nats-server` binary: `NATS_SERVER_BIN`, or the first on `PATH` (also `/usr/sbin`).
pub fn nats_server_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

fn signal(child: &Child, sig: Signal) -> Result<()> {
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    nix::sys::signal::kill(Pid::from_raw(pid), sig).with_context(|| format!("kill -{sig} {pid}"))
}

fn print_log_if_panicking(name: &str, path: &Path) {
    if std::thread::panicking() {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        eprintln!(
            "----- log of {name} ({}) -----\n{log}----- end of log -----",
            path.display()
        );
    }
}

/// A real `nats-server` on 127.0.0.1 with an ephemeral port.
pub struct NatsServerProcess {
    child: Option<Child>,
    binary: PathBuf,
    dir: TempDir,
    config_file: Option<PathBuf>,
    port: u16,
}

impl NatsServerProcess {
    /// Starts one. Returns `Ok(None)` and says so loudly when `nats-server` is not installed;
    /// with `CI` set that is an error instead, so CI never skips.
    pub fn start() -> Result<Option<Self>> {
        Self::start_with_config(None)
    }

    /// Starts one with a `nats-server` configuration file of this text (limits, auth…).
    pub fn start_with_config(config: Option<&str>) -> Result<Option<Self>> {
        let Some(binary) = nats_server_binary() else {
            if in_ci() {
                bail!(
                    "nats-server is not installed, and CI is set: install it (apt-get install nats-server)"
                );
            }
            say_skipped("needs nats-server, which is not installed");
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let config_file = match config {
            Some(text) => {
                let path = dir.path().join("nats.conf");
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let mut server = NatsServerProcess {
            child: None,
            binary,
            dir,
            config_file,
            port: 0,
        };
        server.spawn(None)?;
        Ok(Some(server))
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<()> {
        let ports_dir = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
        let mut command = Command::new(&self.binary);
        if let Some(config) = &self.config_file {
            command.arg("-c").arg(config);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &port_arg, "--ports_file_dir"])
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        let pid = child.id();
        self.child = Some(child);
        let ports_file = ports_dir.join(format!("nats-server_{pid}.ports"));
        let mut found = None;
        wait_for("nats-server's ports file", Duration::from_secs(10), || {
            found = std::fs::read_to_string(&ports_file)
                .ok()
                .and_then(|t| parse_ports_file(&t));
            found.is_some()
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}\n----- nats-server log -----\n{}",
                read(&self.log_path())
            )
        })?;
        self.port = found.unwrap_or_default();
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL) and waits for it to go.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn(Some(self.port))
    }
}

fn parse_ports_file(text: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let url = v["nats"].get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServerProcess {
    fn drop(&mut self) {
        print_log_if_panicking("nats-server", &self.log_path());
        self.stop();
    }
}

/// How to start one daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// Its identity.
    pub identity: String,
    /// Its facts (written to a YAML-compatible JSON file).
    pub facts: serde_json::Value,
    /// Its classes.
    pub classes: Vec<String>,
    /// `security` in its `server.toml`: `insecure` unless set.
    pub security: String,
    /// Extra lines for its `server.toml`.
    pub extra_config: String,
}

impl DaemonSpec {
    /// A daemon with this identity, no extra facts and no classes.
    pub fn new(identity: &str) -> Self {
        DaemonSpec {
            identity: identity.to_string(),
            facts: serde_json::json!({}),
            classes: Vec::new(),
            security: "insecure".to_string(),
            extra_config: String::new(),
        }
    }

    /// With this security mode (`signed` or `insecure`).
    pub fn security(mut self, mode: &str) -> Self {
        self.security = mode.to_string();
        self
    }

    /// With these facts.
    pub fn facts(mut self, facts: serde_json::Value) -> Self {
        self.facts = facts;
        self
    }

    /// With these classes.
    pub fn classes(mut self, classes: &[&str]) -> Self {
        self.classes = classes.iter().map(|c| c.to_string()).collect();
        self
    }

    /// With extra `server.toml` lines.
    pub fn config(mut self, extra: &str) -> Self {
        self.extra_config.push_str(extra);
        self.extra_config.push('\n');
        self
    }
}

/// A real `muster server` process with a temporary config, facts and classes.
pub struct Daemon {
    child: Option<Child>,
    dir: TempDir,
    muster: PathBuf,
    /// Its broker URLs, comma-separated (as `--broker` takes them).
    broker: String,
    /// Its identity.
    pub identity: String,
    /// In signed mode it does not answer an unsigned ping: readiness is read from its log.
    signed: bool,
    /// How many times its log said it was ready before the last launch.
    ready_before: usize,
}

/// What the daemon logs once it serves requests.
const READY: &str = "ready: serving requests";

impl Daemon {
    /// Writes the daemon's files and starts it against `broker`; does not wait for it.
    pub fn spawn(muster: &Path, broker: &str, spec: &DaemonSpec) -> Result<Self> {
        Self::spawn_with_brokers(muster, &[broker.to_string()], spec)
    }

    /// Like [`Daemon::spawn`] with several broker URLs, in order: the daemon connects to the
    /// first it can and fails over to the others (a cluster).
    pub fn spawn_with_brokers(
        muster: &Path,
        brokers: &[String],
        spec: &DaemonSpec,
    ) -> Result<Self> {
        if brokers.is_empty() {
            bail!("daemon {} needs at least one broker URL", spec.identity);
        }
        let dir = tempfile::tempdir()?;
        let facts = dir.path().join("facts.json");
        std::fs::write(&facts, serde_json::to_string_pretty(&spec.facts)?)?;
        let classes = dir.path().join("classes.txt");
        std::fs::write(&classes, spec.classes.join("\n"))?;
        let config = format!(
            "identity = {id:?}\nsecurity = {security:?}\nbrokers = {brokers:?}\n\
             facts_files = [{facts:?}]\nclasses_file = {classes:?}\nlog_level = \"debug\"\n{extra}",
            id = spec.identity,
            security = spec.security,
            facts = facts.display().to_string(),
            classes = classes.display().to_string(),
            extra = spec.extra_config,
        );
        std::fs::write(dir.path().join("server.toml"), config)?;
        let mut daemon = Daemon {
            child: None,
            dir,
            muster: muster.to_path_buf(),
            broker: brokers.join(","),
            identity: spec.identity.clone(),
            signed: spec.security == "signed",
            ready_before: 0,
        };
        daemon.launch()?;
        Ok(daemon)
    }

    /// Starts the daemon and waits until it answers a ping.
    pub fn start(muster: &Path, broker: &str, spec: &DaemonSpec) -> Result<Self> {
        let daemon = Self::spawn(muster, broker, spec)?;
        daemon.wait_ready(Duration::from_secs(15))?;
        Ok(daemon)
    }

    /// Starts the daemon with several broker URLs ([`Daemon::spawn_with_brokers`]) and waits
    /// until it answers a ping.
    pub fn start_with_brokers(
        muster: &Path,
        brokers: &[String],
        spec: &DaemonSpec,
    ) -> Result<Self> {
        let daemon = Self::spawn_with_brokers(muster, brokers, spec)?;
        daemon.wait_ready(Duration::from_secs(15))?;
        Ok(daemon)
    }

    fn launch(&mut self) -> Result<()> {
        self.ready_before = self.log().matches(READY).count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.muster)
            .arg("server")
            .arg("--config")
            .arg(self.config_path())
            .env_remove("MUSTER_BROKER")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.muster.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The daemon's `server.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("server.toml")
    }

    /// The daemon's facts file.
    pub fn facts_path(&self) -> PathBuf {
        self.dir.path().join("facts.json")
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the daemon answers `muster ping` on its own subject (in signed mode: until
    /// its log says it serves requests).
    pub fn wait_ready(&self, deadline: Duration) -> Result<()> {
        let what = format!("daemon {} to answer a ping", self.identity);
        let ready = || {
            if self.signed {
                self.log().matches(READY).count() > self.ready_before
            } else {
                self.answers_ping()
            }
        };
        wait_for(&what, deadline, ready).map_err(|e| {
            anyhow::anyhow!("{e}\n----- log of {} -----\n{}", self.identity, self.log())
        })
    }

    /// Whether the daemon answers a direct ping within a second.
    pub fn answers_ping(&self) -> bool {
        let mut child = match Command::new(&self.muster)
            .args([
                "ping",
                "--json",
                "-t",
                "1",
                "--nodes",
                "-",
                "--broker",
                &self.broker,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return false,
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{}", self.identity);
        }
        child.wait().is_ok_and(|s| s.success())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends a signal (SIGHUP to reload, SIGTERM to drain and stop).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        match &self.child {
            Some(child) => signal(child, sig),
            None => bail!("daemon {} is not running", self.identity),
        }
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<Option<i32>> {
        let mut code = None;
        let Some(child) = self.child.as_mut() else {
            bail!("daemon {} is not running", self.identity);
        };
        wait_for("the daemon to exit", deadline, || match child.try_wait() {
            Ok(Some(status)) => {
                code = Some(status.code());
                true
            }
            _ => false,
        })?;
        self.child = None;
        Ok(code.flatten())
    }

    /// Kills the daemon (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed daemon again with the same files and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()?;
        self.wait_ready(Duration::from_secs(15))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        print_log_if_panicking(&format!("daemon {}", self.identity), &self.log_path());
        self.kill();
    }
}

/// Publishes raw payloads on a subject through a plain NATS connection, for feeding daemons
/// garbage. Waits for the server's PONG, so the messages have been routed when it returns.
pub fn publish_raw(url: &str, subject: &str, payloads: &[&[u8]]) -> Result<()> {
    let addr = url.trim_start_matches("nats://");
    let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("INFO ") {
        bail!("expected INFO from the broker, got {line:?}");
    }
    let mut out = stream;
    out.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n")?;
    for payload in payloads {
        write!(out, "PUB {subject} {}\r\n", payload.len())?;
        out.write_all(payload)?;
        out.write_all(b"\r\n")?;
    }
    out.write_all(b"PING\r\n")?;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the broker closed the connection");
        }
        if line.starts_with("PONG") {
            return Ok(());
        }
        if line.starts_with("-ERR") {
            bail!("the broker said {line:?}");
        }
    }
}

/// Reads a whole file, or an empty string.
pub fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file() {
        assert_eq!(
            parse_ports_file(r#"{"nats":["nats://127.0.0.1:45937"]}"#),
            Some(45937)
        );
        assert_eq!(parse_ports_file("{}"), None);
    }

    #[test]
    fn wait_for_reports_what_it_waited_for() {
        let err = wait_for("the impossible", Duration::from_millis(20), || false).unwrap_err();
        assert!(err.to_string().contains("the impossible"));
        let mut n = 0;
        wait_for("three calls", Duration::from_secs(5), || {
            n += 1;
            n == 3
        })
        .unwrap();
    }
}
