//! The client's configuration (`--config FILE`): where the brokers are and how long to wait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The client's configuration file. Every key has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Broker URLs, tried in turn.
    pub brokers: Vec<String>,
    /// The collective to address.
    pub collective: String,
    /// How long to wait for replies (`-t`).
    #[serde(with = "crate::duration::serde")]
    pub timeout: Duration,
    /// The most broadcast discovery may take (`--dt`).
    #[serde(with = "crate::duration::serde")]
    pub discovery_timeout: Duration,
    /// The shortest quiet window that ends broadcast discovery.
    #[serde(with = "crate::duration::serde")]
    pub discovery_quiet: Duration,
    /// Up to this many nodes, requests are addressed to each node directly; above, broadcast
    /// ([`crate::Delivery::Auto`]; the CLI sends a node list direct whatever its size).
    pub direct_limit: usize,
    /// With a registry, nodes it saw within this long are expected to answer; nodes it saw
    /// longer ago are reported `not_connected` without being sent to.
    #[serde(with = "crate::duration::serde")]
    pub expect_seen: Duration,
    /// DDLs of agents this machine does not ship (external agents): `NAME.json` files, used to
    /// validate inputs, label outputs and document the agent. One named like a built-in agent
    /// wins over the built-in's, for nodes that run an external agent in its place.
    pub ddl_directory: Option<PathBuf>,
    /// The caller's private key (PEM, mode 0600): requests are signed with it.
    pub key: Option<PathBuf>,
    /// The caller's credential, issued for that key (`muster issuer issue --caller`).
    pub credential: Option<PathBuf>,
    /// The issuer's public key: only replies signed by nodes it vouches for are accepted.
    pub issuer: Option<PathBuf>,
    /// TLS and NATS credentials for the broker connection (`[transport]`).
    pub transport: muster_transport::Transport,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            brokers: vec!["nats://127.0.0.1:4222".to_string()],
            collective: muster_proto::subject::DEFAULT_COLLECTIVE.to_string(),
            timeout: Duration::from_secs(10),
            discovery_timeout: Duration::from_secs(2),
            discovery_quiet: Duration::from_millis(200),
            direct_limit: 1000,
            expect_seen: Duration::from_secs(300),
            ddl_directory: None,
            key: None,
            credential: None,
            issuer: None,
            transport: Default::default(),
        }
    }
}

/// A client configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid client config {path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong.
    pub message: String,
}

impl ClientConfig {
    /// Defaults, then the file (if any), then `MUSTER_BROKER` (comma-separated). The CLI
    /// applies its flags on top.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let fail = |message: String| ConfigError {
                    path: path.to_path_buf(),
                    message,
                };
                let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
                toml::from_str(&text).map_err(|e| fail(e.to_string()))?
            }
            None => ClientConfig::default(),
        };
        if let Ok(env) = std::env::var("MUSTER_BROKER") {
            let brokers: Vec<String> = env
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if !brokers.is_empty() {
                config.brokers = brokers;
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/client.toml");
        let c = ClientConfig::load(Some(&path)).unwrap();
        assert_eq!(c.discovery_quiet, Duration::from_millis(200));
        let defaults = ClientConfig::default();
        assert_eq!(c.timeout, defaults.timeout);
    }

    /// A duration key takes what the flag it sets takes: a bare number is seconds.
    #[test]
    fn durations_read_like_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(
            &path,
            "timeout = 3\ndiscovery_timeout = \"1.5\"\ndiscovery_quiet = \"500ms\"\nexpect_seen = \"1m30s\"\n",
        )
        .unwrap();
        let c = ClientConfig::load(Some(&path)).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.discovery_timeout, Duration::from_millis(1500));
        assert_eq!(c.discovery_quiet, Duration::from_millis(500));
        assert_eq!(c.expect_seen, Duration::from_secs(90));
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, "timeout = \"soon\"\n").unwrap();
        let err = ClientConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("client.toml") && err.contains("timeout") && err.contains("soon"),
            "{err}"
        );
        std::fs::write(&path, "brokerz = []\n").unwrap();
        let err = ClientConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
    }
}
