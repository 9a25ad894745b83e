//! The broker's configuration: one typed struct, every key with a default (`nats-server`'s,
//! from its `server/const.go`, where it has one).

use std::time::Duration;

use serde::Deserialize;

/// How clients must authenticate in their `CONNECT`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// Anyone may connect.
    #[default]
    None,
    /// `CONNECT` must carry `"auth_token": <token>`.
    Token {
        /// The shared token.
        token: String,
    },
    /// `CONNECT` must carry `"user"` and `"pass"`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl Auth {
    /// Whether clients must authenticate (and so send `CONNECT` first).
    pub fn required(&self) -> bool {
        !matches!(self, Auth::None)
    }
}

/// TLS for every client connection (`[tls]`): the broker's certificate and key, and a CA to
/// require and verify client certificates with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The broker's certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM).
    pub key: std::path::PathBuf,
    /// Set: clients must present a certificate this CA (PEM) signed.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
}

/// Configuration of one broker. The listen address is not here: [`crate::run`] takes an
/// already-bound listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Name sent in `INFO` as `server_name`.
    pub server_name: String,
    /// Largest message (headers + payload) a client may publish, in bytes; sent in `INFO`.
    pub max_payload: usize,
    /// Longest control line (the arguments of one operation), in bytes.
    pub max_control_line: usize,
    /// Bytes queued for one connection before it is dropped as a slow consumer.
    pub max_pending: usize,
    /// How often the broker PINGs each client.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Unanswered PINGs after which a connection is closed as stale.
    pub max_pings_out: u32,
    /// How long one socket write may block before the connection is dropped as a slow consumer.
    #[serde(with = "humantime_serde")]
    pub write_deadline: Duration,
    /// How long a client that must authenticate has to send its `CONNECT`.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// How clients authenticate.
    pub auth: Auth,
    /// TLS for client connections; none: plain TCP.
    pub tls: Option<Tls>,
    /// Confine each client to the reply inboxes (`_INBOX.<token>`) it subscribed to first:
    /// no client can subscribe to another's inbox, or to wildcards that would cover it.
    pub private_inboxes: bool,
}

/// `nats-server`'s `MAX_PAYLOAD_SIZE`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// `nats-server`'s `MAX_CONTROL_LINE_SIZE`.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// `nats-server`'s `MAX_PENDING_SIZE`.
pub const DEFAULT_MAX_PENDING: usize = 64 * 1024 * 1024;

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            server_name: "muster-broker".to_string(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_pending: DEFAULT_MAX_PENDING,
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            write_deadline: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(2),
            auth: Auth::None,
            tls: None,
            private_inboxes: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_default() {
        let config: BrokerConfig = toml::from_str("").unwrap();
        assert_eq!(config, BrokerConfig::default());
        assert_eq!(config.max_payload, 1_048_576);
        assert_eq!(config.max_control_line, 4096);
        assert_eq!(config.max_pending, 67_108_864);
        assert_eq!(config.ping_interval, Duration::from_secs(120));
        assert_eq!(config.max_pings_out, 2);
        assert!(!config.auth.required());
    }

    #[test]
    fn parses_every_key() {
        let config: BrokerConfig = toml::from_str(
            r#"
            server_name = "b1"
            max_payload = 1000
            max_control_line = 512
            max_pending = 100000
            ping_interval = "5s"
            max_pings_out = 3
            write_deadline = "2s"
            auth_timeout = "1s"
            auth = { mode = "user_password", user = "u", password = "p" }
            "#,
        )
        .unwrap();
        assert_eq!(config.server_name, "b1");
        assert_eq!(config.ping_interval, Duration::from_secs(5));
        assert_eq!(
            config.auth,
            Auth::UserPassword {
                user: "u".into(),
                password: "p".into()
            }
        );
        let token: BrokerConfig =
            toml::from_str("[auth]\nmode = \"token\"\ntoken = \"s3cret\"\n").unwrap();
        assert_eq!(
            token.auth,
            Auth::Token {
                token: "s3cret".into()
            }
        );
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(toml::from_str::<BrokerConfig>("listen = \"0.0.0.0:4222\"").is_err());
        assert!(toml::from_str::<BrokerConfig>("auth = { mode = \"token\" }").is_err());
        assert!(toml::from_str::<BrokerConfig>("auth = { mode = \"ldap\" }").is_err());
    }

    #[test]
    fn the_shipped_example_parses() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/broker.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let config: BrokerConfig = toml::from_str(&text).unwrap();
        assert_eq!(config, BrokerConfig::default());
    }
}
