//! The connection to the broker.

use std::time::Duration;

use async_nats::ConnectOptions;
use muster_proto::subject;

use crate::exit::ExitStatus;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Broker URLs, tried in turn.
    pub brokers: Vec<String>,
    /// The collective to address.
    pub collective: String,
    /// The caller's name, sent in every request.
    pub caller: String,
    /// How long to wait for the broker.
    pub connect_timeout: Duration,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            brokers: vec!["nats://127.0.0.1:4222".to_string()],
            collective: subject::DEFAULT_COLLECTIVE.to_string(),
            caller: std::env::var("USER").unwrap_or_else(|_| "operator".to_string()),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// What can go wrong talking to the broker or the nodes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No broker could be reached.
    #[error(
        "cannot reach the broker at {brokers}: {message}\nIs it running? Point --broker (or MUSTER_BROKER) at it."
    )]
    BrokerUnreachable {
        /// The URLs tried.
        brokers: String,
        /// Why.
        message: String,
    },
    /// A broker URL is not valid.
    #[error("invalid broker URL {url:?}: {message}")]
    BrokerUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The connection failed after it was made.
    #[error("broker error: {0}")]
    Broker(String),
    /// The request or its inputs are not valid.
    #[error("{0}")]
    Invalid(String),
    /// A node list could not be read.
    #[error("cannot read the node list {path}: {message}")]
    NodeList {
        /// The file (`-` for stdin).
        path: String,
        /// Why.
        message: String,
    },
}

impl ClientError {
    /// The exit status this error ends a command with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            ClientError::BrokerUnreachable { .. } | ClientError::Broker(_) => {
                ExitStatus::BrokerUnreachable
            }
            ClientError::BrokerUrl { .. }
            | ClientError::Invalid(_)
            | ClientError::NodeList { .. } => ExitStatus::Usage,
        }
    }
}

/// A connected client.
#[derive(Clone)]
pub struct Client {
    pub(crate) nats: async_nats::Client,
    pub(crate) collective: String,
    pub(crate) caller: String,
    pub(crate) sender: String,
}

impl Client {
    /// Connects to the first broker that answers.
    pub async fn connect(config: &ConnectConfig) -> Result<Client, ClientError> {
        subject::check_token("collective", &config.collective)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let mut addrs = Vec::new();
        for url in &config.brokers {
            let addr =
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| ClientError::BrokerUrl {
                        url: url.clone(),
                        message: e.to_string(),
                    })?;
            addrs.push(addr);
        }
        let nats = ConnectOptions::new()
            .name("muster-client")
            .connection_timeout(config.connect_timeout)
            // Large fleets answer at once: a subscriber that falls behind loses messages.
            .subscription_capacity(1 << 18)
            .client_capacity(1 << 14)
            .ignore_discovered_servers()
            .connect(addrs)
            .await
            .map_err(|e| ClientError::BrokerUnreachable {
                brokers: config.brokers.join(", "),
                message: e.to_string(),
            })?;
        let sender = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_string());
        Ok(Client {
            nats,
            collective: config.collective.clone(),
            caller: config.caller.clone(),
            sender,
        })
    }

    /// The underlying NATS client, for programs that need more than this library offers.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The caller's name, sent in every request.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// The collective requests go to.
    pub fn collective(&self) -> &str {
        &self.collective
    }
}
