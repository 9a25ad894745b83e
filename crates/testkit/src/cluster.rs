//! Several `nats-server` processes joined together, as production runs them: a cluster of
//! servers over routes ([`NatsCluster`]) and a hub with a leaf node, a site connected to it
//! ([`NatsLeaf`]). Every server listens on 127.0.0.1 with ephemeral ports (clients, routes,
//! leaf nodes and monitoring), lives in its own temporary directory, is killed and reaped on
//! drop, and has its log printed when a test fails.
//!
//! A server's route and leaf-node ports are read from its monitoring endpoint (`/varz`), and
//! the helpers return only once every server reports its routes (`/routez`) or its leaf
//! connection (`/leafz`), waiting with a deadline. Interest (subscriptions) still propagates
//! over routes and leaf connections a moment later: a test waits for the nodes it needs to
//! answer, as it waits for any node.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::{in_ci, nats_server_binary, print_log_if_panicking, read, say_skipped, wait_for};

/// How long a server may take to write its ports file, and the cluster to form.
const FORMING: Duration = Duration::from_secs(15);

/// The cluster name every test cluster uses (nats-server requires one for routes).
const CLUSTER_NAME: &str = "muster-test";

/// The `nats-server` binary, or `None` after saying SKIPPED loudly; an error with `CI` set.
fn binary_or_skip() -> Result<Option<PathBuf>> {
    match nats_server_binary() {
        Some(binary) => Ok(Some(binary)),
        None if in_ci() => bail!(
            "nats-server is not installed, and CI is set: install it (apt-get install nats-server)"
        ),
        None => {
            say_skipped("needs nats-server, which is not installed");
            Ok(None)
        }
    }
}

/// One `nats-server` process of a cluster or a leaf pair, started from a configuration file.
struct Member {
    name: String,
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    monitoring: u16,
}

impl Member {
    /// Starts `nats-server -c CONFIG` with `config` (which must listen on ephemeral ports,
    /// including `http` for monitoring) and waits for its ports file.
    fn start(binary: &Path, name: &str, config: &str) -> Result<Member> {
        let dir = tempfile::tempdir()?;
        let config_file = dir.path().join("nats.conf");
        std::fs::write(&config_file, format!("server_name: {name}\n{config}"))?;
        let ports_dir = dir.path().join("ports");
        std::fs::create_dir_all(&ports_dir)?;
        let log_path = dir.path().join("nats-server.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config_file)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let ports_file = ports_dir.join(format!("nats-server_{}.ports", child.id()));
        let mut member = Member {
            name: name.to_string(),
            child: Some(child),
            dir,
            port: 0,
            monitoring: 0,
        };
        let mut found = None;
        wait_for(
            &format!("the ports file of nats-server {name}"),
            FORMING,
            || {
                found = std::fs::read_to_string(&ports_file)
                    .ok()
                    .and_then(|text| parse_ports(&text));
                found.is_some()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}\n{}", member.log_text()))?;
        (member.port, member.monitoring) = found.unwrap_or_default();
        Ok(member)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn log_text(&self) -> String {
        format!(
            "----- log of nats-server {} -----\n{}----- end of log -----",
            self.name,
            read(&self.log_path())
        )
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A monitoring endpoint's JSON (`/varz`, `/routez`, `/leafz`).
    fn monitor(&self, endpoint: &str) -> Result<Value> {
        http_get_json(self.monitoring, endpoint)
    }

    /// A port `/varz` reports, e.g. `cluster.cluster_port` or `leaf.port`.
    fn varz_port(&self, section: &str, key: &str) -> Result<u16> {
        let varz = self.monitor("/varz")?;
        varz[section][key]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .with_context(|| format!("nats-server {} reports no {section}.{key}", self.name))
    }

    fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        print_log_if_panicking(&format!("nats-server {}", self.name), &self.log_path());
        self.kill();
    }
}

/// The client and monitoring ports of a `--ports_file_dir` file.
fn parse_ports(text: &str) -> Option<(u16, u16)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let port =
        |key: &str| -> Option<u16> { v[key].get(0)?.as_str()?.rsplit(':').next()?.parse().ok() };
    Some((port("nats")?, port("monitoring")?))
}

/// `GET http://127.0.0.1:PORT/PATH` as JSON, with a plain HTTP/1.0 request.
fn http_get_json(port: u16, path: &str) -> Result<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connect to the monitoring port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .with_context(|| format!("no HTTP body from {path}: {response:?}"))?;
    serde_json::from_str(body).with_context(|| format!("{path} is not JSON: {body:?}"))
}

/// Waits until `condition` holds for the servers, printing every log when it never does.
fn wait_forming(what: &str, members: &[Member], mut condition: impl FnMut() -> bool) -> Result<()> {
    wait_for(what, FORMING, &mut condition).map_err(|e| {
        let logs: Vec<String> = members.iter().map(Member::log_text).collect();
        anyhow::anyhow!("{e}\n{}", logs.join("\n"))
    })
}

/// A cluster of `nats-server` processes joined by routes: the first listens for routes, the
/// others route to it and learn of each other from it (a full mesh).
pub struct NatsCluster {
    servers: Vec<Member>,
}

/// What every test server's config starts with: client and monitoring ports, both ephemeral.
const COMMON: &str = "listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\n";

impl NatsCluster {
    /// Starts `n` servers and waits until each reports a route to every other. Returns
    /// `Ok(None)` and says so loudly when `nats-server` is not installed; with `CI` set that is
    /// an error instead, so CI never skips.
    pub fn start(n: usize) -> Result<Option<NatsCluster>> {
        if n == 0 {
            bail!("a cluster needs at least one server");
        }
        let Some(binary) = binary_or_skip()? else {
            return Ok(None);
        };
        let seed = Member::start(
            &binary,
            "muster-test-0",
            &format!("{COMMON}cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:-1\n}}\n"),
        )?;
        let route_port = seed.varz_port("cluster", "cluster_port")?;
        let mut servers = vec![seed];
        for i in 1..n {
            servers.push(Member::start(
                &binary,
                &format!("muster-test-{i}"),
                &format!(
                    "{COMMON}cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:-1\n  \
                     routes: [\"nats-route://127.0.0.1:{route_port}\"]\n}}\n"
                ),
            )?);
        }
        let others = u64::try_from(n.saturating_sub(1))?;
        wait_forming(
            "every server of the cluster to route to every other",
            &servers,
            || {
                servers.iter().all(|s| {
                    s.monitor("/routez")
                        .is_ok_and(|r| r["num_routes"].as_u64() == Some(others))
                })
            },
        )?;
        Ok(Some(NatsCluster { servers }))
    }

    /// How many servers it has (killed ones included).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether it has no servers (never: [`NatsCluster::start`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Server `i`'s client URL, `nats://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// When there is no server `i`.
    pub fn url(&self, i: usize) -> String {
        self.member(i).url()
    }

    /// Every server's client URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(Member::url).collect()
    }

    /// Every server's URL starting with server `home` and going round: what a daemon homed on
    /// `home` lists, so that it connects there first and fails over to the others in order.
    pub fn urls_from(&self, home: usize) -> Vec<String> {
        let n = self.servers.len();
        (0..n)
            .map(|k| self.url(home.saturating_add(k) % n))
            .collect()
    }

    /// Kills server `i` (SIGKILL: its clients see the connection drop, as when a machine dies)
    /// and reaps it; its routes to the others go with it.
    ///
    /// # Panics
    /// When there is no server `i`.
    pub fn kill(&mut self, i: usize) {
        self.member_mut(i).kill();
    }

    /// Whether server `i` still runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.member(i).is_running()
    }

    /// Server `i`'s monitoring endpoint as JSON (`/varz`, `/routez`, `/connz`, …).
    pub fn monitor(&self, i: usize, endpoint: &str) -> Result<Value> {
        self.member(i).monitor(endpoint)
    }

    #[track_caller]
    fn member(&self, i: usize) -> &Member {
        self.servers
            .get(i)
            .unwrap_or_else(|| panic!("the cluster has no server {i}"))
    }

    #[track_caller]
    fn member_mut(&mut self, i: usize) -> &mut Member {
        self.servers
            .get_mut(i)
            .unwrap_or_else(|| panic!("the cluster has no server {i}"))
    }
}

/// A hub server and a leaf server connected to it as a leaf node (a site): the hub listens for
/// leaf nodes, the leaf has the hub as its remote. Messages and interest cross the leaf
/// connection both ways.
pub struct NatsLeaf {
    hub: Member,
    leaf: Member,
}

/// Starts a hub and a leaf connected to it, and waits until both report the leaf connection.
/// Returns `Ok(None)` and says so loudly when `nats-server` is not installed; with `CI` set that
/// is an error instead.
pub fn hub_with_leaf() -> Result<Option<NatsLeaf>> {
    NatsLeaf::start()
}

impl NatsLeaf {
    /// See [`hub_with_leaf`].
    pub fn start() -> Result<Option<NatsLeaf>> {
        let Some(binary) = binary_or_skip()? else {
            return Ok(None);
        };
        let hub = Member::start(
            &binary,
            "muster-hub",
            &format!("{COMMON}leafnodes {{\n  listen: 127.0.0.1:-1\n}}\n"),
        )?;
        let leaf_port = hub.varz_port("leaf", "port")?;
        let leaf = Member::start(
            &binary,
            "muster-leaf",
            &format!(
                "{COMMON}leafnodes {{\n  remotes: [{{ url: \"nats-leaf://127.0.0.1:{leaf_port}\" }}]\n}}\n"
            ),
        )?;
        let pair = [hub, leaf];
        wait_forming("the leaf node to connect to the hub", &pair, || {
            pair.iter().all(|s| {
                s.monitor("/leafz")
                    .is_ok_and(|l| l["leafnodes"].as_u64() == Some(1))
            })
        })?;
        let [hub, leaf] = pair;
        Ok(Some(NatsLeaf { hub, leaf }))
    }

    /// The hub's client URL.
    pub fn hub_url(&self) -> String {
        self.hub.url()
    }

    /// The leaf server's client URL.
    pub fn leaf_url(&self) -> String {
        self.leaf.url()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file_with_monitoring() {
        let text = r#"{"nats":["nats://127.0.0.1:46713"],"monitoring":["http://127.0.0.1:44643"],"cluster":["nats://127.0.0.1:41147"]}"#;
        assert_eq!(parse_ports(text), Some((46713, 44643)));
        assert_eq!(parse_ports(r#"{"nats":["nats://127.0.0.1:1"]}"#), None);
    }

    #[test]
    fn a_cluster_forms_and_a_server_can_be_killed() {
        let Some(mut cluster) = NatsCluster::start(3).unwrap() else {
            return;
        };
        assert_eq!(cluster.urls().len(), 3);
        assert_eq!(cluster.urls_from(2)[0], cluster.url(2));
        assert_eq!(cluster.urls_from(2)[1], cluster.url(0));
        cluster.kill(0);
        assert!(!cluster.is_running(0));
        wait_for("the survivors to drop their routes to it", FORMING, || {
            (1..3).all(|i| {
                cluster
                    .monitor(i, "/routez")
                    .is_ok_and(|r| r["num_routes"].as_u64() == Some(1))
            })
        })
        .unwrap();
    }

    #[test]
    fn a_leaf_connects_to_its_hub() {
        let Some(pair) = hub_with_leaf().unwrap() else {
            return;
        };
        assert_ne!(pair.hub_url(), pair.leaf_url());
    }
}
