//! The daemon's configuration: one typed struct, a default for every key, loaded in one place.
//! A flag beats the environment, which beats the file, which beats the default
//! (docs/design.md §5); [`Origin`] says where each setting the daemon logs at start came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use muster_agent::ConfigItems;
use muster_agent::config::PackageBackend;
use serde::Deserialize;

/// How the daemon treats request signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Only signed requests are accepted (the default).
    #[default]
    Signed,
    /// Unsigned requests are accepted. Anyone who can publish to the broker controls the node.
    Insecure,
}

/// The node daemon's configuration (`server.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The node's identity; defaults to the hostname.
    pub identity: Option<String>,
    /// The collective the node serves.
    pub collective: String,
    /// Broker URLs, tried in turn; the daemon fails over between them.
    pub brokers: Vec<String>,
    /// `signed` (default) or `insecure`.
    pub security: Security,
    /// The issuer's public key (PEM): the node trusts the credentials it signed. Needed with
    /// `security = "signed"`.
    pub issuer: Option<PathBuf>,
    /// This node's private key (PEM, mode 0600): it signs replies, acknowledgements and
    /// registrations. Needed with `security = "signed"`.
    pub key: Option<PathBuf>,
    /// This node's credential, issued for its identity (`muster issuer issue --node`). Needed
    /// with `security = "signed"`.
    pub credential: Option<PathBuf>,
    /// Where the action policies are: `<agent>.policy` per agent. An agent without a policy
    /// file denies every request (with `security = "signed"`).
    pub policy_directory: PathBuf,
    /// The audit log: one JSON line per decision (allowed, denied, dropped). None: no audit log.
    pub audit_log: Option<PathBuf>,
    /// How many request ids the replay cache holds (each for its request's time window).
    pub replay_cache: usize,
    /// TLS and NATS credentials for the broker connection (`[transport]`).
    pub transport: muster_transport::Transport,
    /// YAML or JSON files of facts, merged in order (later files win).
    pub facts_files: Vec<PathBuf>,
    /// A command whose standard output is a JSON object of facts (e.g. `facter -j`).
    pub facts_command: Option<String>,
    /// A file of classes, one per line (Puppet's `classes.txt`).
    pub classes_file: Option<PathBuf>,
    /// How many actions may run at once.
    pub max_concurrent: usize,
    /// How long SIGTERM waits for running actions, e.g. `"10s"`.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Requests larger than this many bytes are dropped unread.
    pub max_request_bytes: usize,
    /// Allowed clock difference between client and node, added to a request's ttl.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Log filter, e.g. `info` or `muster_server=debug`.
    pub log_level: String,
    /// How often the node publishes its registration (±10 % jitter), e.g. `"60s"`; `"0s"`
    /// turns registration off.
    #[serde(with = "humantime_serde")]
    pub registration_interval: Duration,
    /// The agents: the external agents' directory and what the built-in ones run.
    pub agents: muster_agent::AgentsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            identity: None,
            collective: muster_proto::subject::DEFAULT_COLLECTIVE.to_string(),
            brokers: vec!["nats://127.0.0.1:4222".to_string()],
            security: Security::Signed,
            issuer: None,
            key: None,
            credential: None,
            policy_directory: PathBuf::from("/etc/muster/policies"),
            audit_log: None,
            replay_cache: 100_000,
            transport: Default::default(),
            facts_files: Vec::new(),
            facts_command: None,
            classes_file: None,
            max_concurrent: 16,
            drain_timeout: Duration::from_secs(10),
            max_request_bytes: 1024 * 1024,
            clock_skew: Duration::from_secs(5),
            log_level: "info".to_string(),
            registration_interval: Duration::from_secs(60),
            agents: muster_agent::AgentsConfig::default(),
        }
    }
}

/// Values given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--broker` (repeatable).
    pub brokers: Vec<String>,
    /// `--identity`.
    pub identity: Option<String>,
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is not allowed.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Its default.
    Default,
    /// The config file.
    File,
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

/// Where the settings the daemon logs at start came from, so that an operator reading the log
/// knows which file, variable or flag to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The config file, if one was read.
    pub file: Option<PathBuf>,
    /// Where `brokers` came from.
    pub brokers: Source,
    /// The file's `brokers`, when something else overrode them.
    pub overridden_brokers: Option<Vec<String>>,
    /// Where `identity` came from (`Default`: the hostname).
    pub identity: Source,
    /// Where `security` came from.
    pub security: Source,
}

impl Origin {
    /// One line per setting, for the start-up log: `brokers = [...] (from MUSTER_BROKER,
    /// overriding server.toml's brokers = [...])`.
    pub fn describe(&self, config: &ServerConfig, identity: &str) -> Vec<String> {
        let file_name = self.file.as_ref().and_then(|p| p.file_name()).map_or_else(
            || "the config file".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let from = |source: &Source, default: &str| match source {
            Source::Default => default.to_string(),
            Source::File => format!("from {file_name}"),
            Source::Env(name) => format!("from {name}"),
            Source::Flag(name) => format!("from {name}"),
        };
        let mut brokers_from = from(&self.brokers, "the default");
        if let Some(overridden) = &self.overridden_brokers {
            brokers_from.push_str(&format!(
                ", overriding {file_name}'s brokers = {overridden:?}"
            ));
        }
        let security = match config.security {
            Security::Signed => "signed",
            Security::Insecure => "insecure",
        };
        vec![
            match &self.file {
                Some(path) => format!("config file {}", path.display()),
                None => "no config file: every setting not given by a flag or the environment \
                         has its default"
                    .to_string(),
            },
            format!("brokers = {:?} ({brokers_from})", config.brokers),
            format!(
                "identity = {identity:?} ({})",
                from(&self.identity, "the hostname")
            ),
            format!(
                "security = {security:?} ({})",
                from(&self.security, "the default")
            ),
        ]
    }
}

impl ServerConfig {
    /// Loads the configuration: defaults, then `path` (if any), then `MUSTER_BROKER` (a
    /// comma-separated list), then the flags.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_origin(path, overrides).map(|(config, _)| config)
    }

    /// [`ServerConfig::load`], and where the settings came from.
    pub fn load_with_origin(
        path: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<(Self, Origin), ConfigError> {
        Self::load_from(path, std::env::var("MUSTER_BROKER").ok(), overrides)
    }

    /// Loading, with the value of `MUSTER_BROKER` given (tests give it without touching the
    /// process environment).
    fn load_from(
        path: Option<&Path>,
        env: Option<String>,
        overrides: &Overrides,
    ) -> Result<(Self, Origin), ConfigError> {
        let mut origin = Origin {
            file: path.map(Path::to_path_buf),
            brokers: Source::Default,
            overridden_brokers: None,
            identity: Source::Default,
            security: Source::Default,
        };
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let config = Self::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?;
                // Which keys the file sets (it parsed, so it is a table).
                let keys: toml::Table = toml::from_str(&text).unwrap_or_default();
                let set = |key: &str, source: &mut Source| {
                    if keys.contains_key(key) {
                        *source = Source::File;
                    }
                };
                set("brokers", &mut origin.brokers);
                set("identity", &mut origin.identity);
                set("security", &mut origin.security);
                config
            }
            None => ServerConfig::default(),
        };
        let from_file = (origin.brokers == Source::File).then(|| config.brokers.clone());
        if let Some(env) = env {
            let brokers: Vec<String> = env
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if !brokers.is_empty() {
                config.brokers = brokers;
                origin.brokers = Source::Env("MUSTER_BROKER");
            }
        }
        if !overrides.brokers.is_empty() {
            config.brokers = overrides.brokers.clone();
            origin.brokers = Source::Flag("--broker");
        }
        if origin.brokers != Source::File && from_file.as_ref() != Some(&config.brokers) {
            origin.overridden_brokers = from_file;
        }
        if let Some(identity) = &overrides.identity {
            config.identity = Some(identity.clone());
            origin.identity = Source::Flag("--identity");
        }
        config.check()?;
        Ok((config, origin))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(identity) = &self.identity {
            muster_proto::subject::check_identity(identity)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        muster_proto::subject::check_token("collective", &self.collective)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.brokers.is_empty() {
            return Err(ConfigError::Invalid(
                "brokers is empty: give at least one broker URL".into(),
            ));
        }
        if self.security == Security::Signed {
            let missing: Vec<&str> = [
                ("issuer", self.issuer.is_none()),
                ("key", self.key.is_none()),
                ("credential", self.credential.is_none()),
            ]
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(name, _)| *name)
            .collect();
            if !missing.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "security = \"signed\" needs {} in the config: the issuer's public key, this \
                     node's private key and its credential (see the README, \"Security\"); or set \
                     security = \"insecure\" on a test network",
                    missing.join(", ")
                )));
            }
        }
        self.transport
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.replay_cache == 0 {
            return Err(ConfigError::Invalid(
                "replay_cache is 0: it must hold at least one request id".into(),
            ));
        }
        if self.max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent is 0: at least one action must be able to run".into(),
            ));
        }
        Ok(())
    }

    /// The identity to use: the configured one, else the hostname.
    pub fn identity(&self) -> Result<String, ConfigError> {
        if let Some(identity) = &self.identity {
            return Ok(identity.clone());
        }
        let host = hostname::get()
            .map_err(|e| ConfigError::Invalid(format!("cannot read the hostname: {e}")))?
            .to_string_lossy()
            .into_owned();
        muster_proto::subject::check_identity(&host).map_err(|e| {
            ConfigError::Invalid(format!("{e}; set identity in the config or --identity"))
        })?;
        Ok(host)
    }
}

impl ServerConfig {
    /// The effective configuration as `rpcutil get_config_item` reports it, for a daemon whose
    /// identity is `identity`: every key of `server.toml` (dotted for tables, e.g.
    /// `agents.package.backend`; unset ones are `null`), durations as in the file (`"10s"`),
    /// the package tools the agent runs, the names of the health checks (not their command
    /// lines), and Choria's names `main_collective`, `collectives` and `loglevel`. A broker
    /// URL's password or token is replaced by `***`; the items naming secret material — `key`,
    /// `transport.tls_key`, `transport.password`, `transport.token` — are withheld.
    pub fn items(&self, identity: &str) -> ConfigItems {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let security = match self.security {
            Security::Signed => "signed",
            Security::Insecure => "insecure",
        };
        let agents = &self.agents;
        let package = &agents.package;
        let backend = match package.backend {
            PackageBackend::Apt => "apt",
            PackageBackend::Yum => "yum",
            PackageBackend::Dnf => "dnf",
        };
        let mut items = ConfigItems::new();
        items
            .set("identity", identity)
            .set("collective", self.collective.as_str())
            .set("main_collective", self.collective.as_str())
            .set("collectives", vec![self.collective.clone()])
            .set(
                "brokers",
                self.brokers
                    .iter()
                    .map(|b| redact_url(b))
                    .collect::<Vec<_>>(),
            )
            .set("security", security)
            .set("issuer", path(&self.issuer))
            .withhold("key")
            .set("credential", path(&self.credential))
            .set(
                "policy_directory",
                self.policy_directory.display().to_string(),
            )
            .set("audit_log", path(&self.audit_log))
            .set("replay_cache", self.replay_cache)
            .set("transport.tls_ca", path(&self.transport.tls_ca))
            .set("transport.tls_cert", path(&self.transport.tls_cert))
            .withhold("transport.tls_key")
            .set("transport.user", self.transport.user.clone())
            .withhold("transport.password")
            .withhold("transport.token")
            .set(
                "facts_files",
                self.facts_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            )
            .set("facts_command", self.facts_command.clone())
            .set("classes_file", path(&self.classes_file))
            .set("max_concurrent", self.max_concurrent)
            .set("drain_timeout", duration(self.drain_timeout))
            .set("max_request_bytes", self.max_request_bytes)
            .set("clock_skew", duration(self.clock_skew))
            .set("log_level", self.log_level.as_str())
            .set("loglevel", self.log_level.as_str())
            .set(
                "registration_interval",
                duration(self.registration_interval),
            )
            .set("agents.directory", path(&agents.directory))
            .set(
                "agents.service.systemctl",
                agents.service.systemctl.display().to_string(),
            )
            .set("agents.package.backend", backend)
            .set(
                "agents.package.query",
                muster_agent::package::query_program(package)
                    .display()
                    .to_string(),
            )
            .set(
                "agents.package.manager",
                muster_agent::package::manager_program(package)
                    .display()
                    .to_string(),
            )
            .set("agents.shell.enabled", agents.shell.enabled)
            .set(
                "agents.shell.shell",
                agents.shell.shell.display().to_string(),
            )
            .set(
                "agents.file.max_checksum_bytes",
                agents.file.max_checksum_bytes,
            )
            .set("agents.cm.command", agents.cm.command.clone())
            .set("agents.cm.summary_file", path(&agents.cm.summary_file))
            .set("agents.cm.max_splay", duration(agents.cm.max_splay))
            .set(
                "agents.health.checks",
                agents.health.checks.keys().cloned().collect::<Vec<_>>(),
            );
        items
    }
}

/// A broker URL without its secret: `nats://user:pass@host` becomes `nats://user:***@host`,
/// `nats://token@host` becomes `nats://***@host`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let hidden = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{scheme}://{hidden}{}", &rest[userinfo.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(ServerConfig::parse("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn every_key_parses() {
        let c = ServerConfig::parse(
            r#"
identity = "web1"
collective = "dc1"
brokers = ["nats://a:4222", "nats://b:4222"]
security = "insecure"
issuer = "/etc/muster/issuer.pub"
key = "/etc/muster/node.key"
credential = "/etc/muster/node.cred"
policy_directory = "/etc/muster/policies"
audit_log = "/var/log/muster/audit.log"
replay_cache = 1000
facts_files = ["/etc/muster/facts.yaml"]
facts_command = "facter -j"
classes_file = "/var/lib/puppet/classes.txt"
max_concurrent = 4
drain_timeout = "3s"
max_request_bytes = 4096
clock_skew = "1s"
log_level = "debug"
registration_interval = "5m"
"#,
        )
        .unwrap();
        assert_eq!(c.identity.as_deref(), Some("web1"));
        assert_eq!(c.security, Security::Insecure);
        assert_eq!(c.drain_timeout, Duration::from_secs(3));
        assert_eq!(c.brokers.len(), 2);
        assert_eq!(c.registration_interval, Duration::from_secs(300));
        let off = ServerConfig::parse("registration_interval = \"0s\"").unwrap();
        assert_eq!(off.registration_interval, Duration::ZERO);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("nonsense = 1", "unknown field `nonsense`"),
            ("security = \"open\"", "unknown variant `open`"),
            ("drain_timeout = \"soon\"", "drain_timeout"),
            ("max_concurrent = \"x\"", "invalid type"),
        ];
        for (text, needle) in cases {
            let err = ServerConfig::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "identity = \"a\"\nmax_concurrent = 0\n").unwrap();
        let err = ServerConfig::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("issuer, key, credential"), "{err}");
        std::fs::write(
            &path,
            "identity = \"a\"\nsecurity = \"insecure\"\nmax_concurrent = 0\n",
        )
        .unwrap();
        let err = ServerConfig::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("max_concurrent"), "{err}");
        std::fs::write(&path, "identity = \"a\"\nsecurity = \"insecure\"\n").unwrap();
        let c = ServerConfig::load(
            Some(&path),
            &Overrides {
                brokers: vec!["nats://x:1".into()],
                identity: Some("b".into()),
            },
        )
        .unwrap();
        assert_eq!(c.identity.as_deref(), Some("b"));
        assert_eq!(c.brokers, vec!["nats://x:1".to_string()]);
        let err = ServerConfig::load(
            Some(&path),
            &Overrides {
                identity: Some("bad id".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("identity"), "{err}");
    }

    /// flag → environment → file → default, and the origin says which won and what it
    /// overrode.
    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("server.toml");
        std::fs::write(
            &with,
            "security = \"insecure\"\nbrokers = [\"nats://file:1\"]\n",
        )
        .unwrap();
        let without = dir.path().join("bare.toml");
        std::fs::write(&without, "security = \"insecure\"\n").unwrap();
        let flag = Overrides {
            brokers: vec!["nats://flag:1".into()],
            identity: Some("n1".into()),
        };
        // The file, MUSTER_BROKER, the flags; the brokers that win, from where, and whether
        // the file's were overridden.
        type Row<'a> = (
            &'a Path,
            Option<&'a str>,
            &'a Overrides,
            &'a str,
            Source,
            bool,
        );
        let rows: [Row; 5] = [
            (
                &without,
                None,
                &Overrides::default(),
                "nats://127.0.0.1:4222",
                Source::Default,
                false,
            ),
            (
                &with,
                None,
                &Overrides::default(),
                "nats://file:1",
                Source::File,
                false,
            ),
            (
                &with,
                Some("nats://env:1"),
                &Overrides::default(),
                "nats://env:1",
                Source::Env("MUSTER_BROKER"),
                true,
            ),
            (
                &with,
                Some("nats://env:1"),
                &flag,
                "nats://flag:1",
                Source::Flag("--broker"),
                true,
            ),
            (
                &without,
                Some("nats://env:1"),
                &Overrides::default(),
                "nats://env:1",
                Source::Env("MUSTER_BROKER"),
                false,
            ),
        ];
        for (path, env, overrides, wins, source, overrode) in rows {
            let env = env.map(String::from);
            let (c, origin) = ServerConfig::load_from(Some(path), env.clone(), overrides).unwrap();
            assert_eq!(c.brokers, vec![wins.to_string()], "{env:?}");
            assert_eq!(origin.brokers, source);
            assert_eq!(origin.overridden_brokers.is_some(), overrode, "{origin:?}");
            let lines = origin.describe(&c, "n1").join("\n");
            assert!(lines.contains(&format!("brokers = [{wins:?}]")), "{lines}");
            if overrode {
                assert!(
                    lines.contains("overriding server.toml's brokers = [\"nats://file:1\"]"),
                    "{lines}"
                );
            }
        }
    }

    #[test]
    fn config_items_are_the_effective_values_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            r#"
collective = "dc1"
brokers = ["nats://alice:s3cret@a:4222", "nats://tok3n@b:4222/x", "nats://c:4222"]
security = "insecure"
key = "/etc/muster/node.key"
drain_timeout = "3s"
[agents.package]
backend = "dnf"
[agents.health.checks.disk]
command = ["/usr/lib/nagios/plugins/check_disk", "-w", "20%"]
"#,
        )
        .unwrap();
        let c = ServerConfig::load(Some(&path), &Overrides::default()).unwrap();
        let items = c.items("web1");
        let value = |item: &str| match items.get(item) {
            ConfigItem::Value(v) => v.clone(),
            other => panic!("{item}: {other:?}"),
        };
        use muster_agent::ConfigItem;
        use serde_json::json;
        assert_eq!(value("identity"), json!("web1"));
        assert_eq!(value("collective"), json!("dc1"));
        assert_eq!(value("main_collective"), json!("dc1"));
        assert_eq!(value("collectives"), json!(["dc1"]));
        assert_eq!(
            value("brokers"),
            json!([
                "nats://alice:***@a:4222",
                "nats://***@b:4222/x",
                "nats://c:4222"
            ])
        );
        assert_eq!(value("security"), json!("insecure"));
        assert_eq!(value("issuer"), json!(null));
        assert_eq!(value("drain_timeout"), json!("3s"));
        assert_eq!(value("registration_interval"), json!("1m"));
        assert_eq!(value("max_concurrent"), json!(16));
        assert_eq!(value("loglevel"), json!("info"));
        assert_eq!(value("agents.package.backend"), json!("dnf"));
        assert_eq!(value("agents.package.query"), json!("rpm"));
        assert_eq!(value("agents.package.manager"), json!("dnf"));
        assert_eq!(value("agents.shell.enabled"), json!(false));
        assert_eq!(value("agents.health.checks"), json!(["disk"]));
        for secret in [
            "key",
            "transport.tls_key",
            "transport.password",
            "transport.token",
        ] {
            assert_eq!(items.get(secret), ConfigItem::Withheld, "{secret}");
        }
        assert_eq!(items.get("nonsense"), ConfigItem::Unknown);
        // Every top-level key of the file is an item.
        for key in [
            "identity",
            "collective",
            "brokers",
            "security",
            "issuer",
            "key",
            "credential",
            "policy_directory",
            "audit_log",
            "replay_cache",
            "facts_files",
            "facts_command",
            "classes_file",
            "max_concurrent",
            "drain_timeout",
            "max_request_bytes",
            "clock_skew",
            "log_level",
            "registration_interval",
        ] {
            assert_ne!(items.get(key), ConfigItem::Unknown, "{key}");
        }
    }

    #[test]
    fn the_shipped_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/server.toml");
        let c = ServerConfig::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(c.security, Security::Insecure);
        assert!(!c.agents.shell.enabled);
        assert_eq!(c.agents.cm, muster_agent::config::CmConfig::default());
        assert!(c.agents.health.checks.contains_key("disk"));
    }
}
