//! The one way every Muster role — the client, the daemon, the registry and the simulator —
//! connects to the broker:
//!
//! - [`Transport`]: the `[transport]` settings (TLS files, NATS user and password or token),
//!   checked when they are loaded, with the certificates as rustls would take them
//!   (`muster_security::pki`).
//! - [`connect`]: given a [`Connection`] — the role's name, its broker URLs, those settings,
//!   its timeout and capacities and whether it retries — checks every URL, applies the
//!   settings, sets the one reconnect policy ([`reconnect_delay`]) and connects; when no
//!   broker can be reached, [`ConnectError::Unreachable`] names each URL with its [`Cause`]
//!   (refused, TLS: unknown issuer, auth failed, …) and the hint of the setting that fixes it.
//!   Services that outlive a broker restart log the connection's events, asking each broker
//!   why an attempt failed (docs/design.md §5).
//! - [`round_trip`]: waits until the broker has handled what a connection sent — "ready".
//!
//! This crate holds Muster's network and clock code for the broker connection, so that
//! `muster_security` holds none.

mod cause;
mod events;
mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use cause::Cause;
pub use settings::{Transport, TransportError};

/// How long a connection attempt waits for a broker when the role does not say: async-nats'
/// own default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who connects to which brokers, and how.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The connection's name, as the broker shows it (`muster-client`, `muster-server web1`).
    pub name: String,
    /// Broker URLs; with several, the connection fails over between them.
    pub brokers: Vec<String>,
    /// TLS and NATS credentials.
    pub transport: Transport,
    /// How long one attempt waits for a broker.
    pub connect_timeout: Duration,
    /// Messages a subscription buffers before the client drops them (`None`: async-nats'
    /// default).
    pub subscription_capacity: Option<usize>,
    /// Outgoing messages the client buffers (`None`: async-nats' default).
    pub client_capacity: Option<usize>,
    /// Connect only to the URLs given, not to the cluster members a broker announces.
    pub ignore_discovered_servers: bool,
    /// Keep trying the first connection forever in the background instead of failing: for the
    /// daemon, which must be able to start before the broker. [`connect`] then returns at
    /// once, and the failures are logged (as with [`Connection::log_events`]).
    pub retry_initial: bool,
    /// Log the connection's events — connects, disconnects, and why an attempt failed, asked
    /// of each broker once while the cause stays the same: for long-lived services.
    pub log_events: bool,
    /// Count the events by which the connection loses messages meant for it (`None`: not
    /// counted): for the client, whose report says when answers may have been lost.
    pub losses: Option<Arc<Losses>>,
}

/// How often a connection lost messages meant for it: a subscription's buffer was full
/// (async-nats drops the message and reports a slow consumer), or the connection to the broker
/// dropped (a broker disconnects a client that does not keep up; whatever was in flight is
/// gone). Counts only grow; compare them before and after to see if something was lost.
#[derive(Debug, Default)]
pub struct Losses {
    slow_consumer: AtomicUsize,
    disconnected: AtomicUsize,
}

impl Losses {
    /// Slow-consumer events: each is at least one message dropped from a full subscription.
    pub fn slow_consumer(&self) -> usize {
        self.slow_consumer.load(Ordering::Relaxed)
    }

    /// Times the connection to the broker dropped.
    pub fn disconnected(&self) -> usize {
        self.disconnected.load(Ordering::Relaxed)
    }

    fn record(&self, event: &async_nats::Event) {
        let counter = match event {
            async_nats::Event::SlowConsumer(_) => &self.slow_consumer,
            async_nats::Event::Disconnected => &self.disconnected,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// A connection named `name` to `brokers` with `transport`, with the defaults: the
    /// [`DEFAULT_CONNECT_TIMEOUT`], async-nats' capacities, discovered servers used, the first
    /// connection tried once and no event logging.
    pub fn new(name: impl Into<String>, brokers: &[String], transport: &Transport) -> Connection {
        Connection {
            name: name.into(),
            brokers: brokers.to_vec(),
            transport: transport.clone(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            subscription_capacity: None,
            client_capacity: None,
            ignore_discovered_servers: false,
            retry_initial: false,
            log_events: false,
            losses: None,
        }
    }
}

/// Why [`connect`] did not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A broker URL does not parse.
    #[error("invalid broker URL {url:?}: {message}")]
    BrokerUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The transport settings cannot be used.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// No broker could be reached.
    #[error("cannot reach the broker at {brokers}: {message}\n{hint}")]
    Unreachable {
        /// The URLs tried, `, `-separated.
        brokers: String,
        /// Why, for people: the cause, or with several URLs `URL: cause` for each,
        /// `; `-separated.
        message: String,
        /// What to do about the first cause.
        hint: String,
        /// Each URL with its cause.
        causes: Vec<(String, Cause)>,
    },
}

/// How long to wait before connection attempt number `attempt` (counted from 1, across the
/// URLs and the reconnects): nothing before the first, then 100 ms more for each further
/// attempt, at most 2 s — quick to fail over to a second broker, and a fleet of thousands
/// that lost its broker does not knock on it all at once. Every role uses this one policy;
/// async-nats resets the count when a connection is made.
pub fn reconnect_delay(attempt: usize) -> Duration {
    let steps = u64::try_from(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(steps.saturating_mul(100).min(2000))
}

/// Connects as `connection` says: checks that every URL parses (naming the one that does not),
/// applies the transport settings, the name, timeout and capacities, the reconnect policy of
/// [`reconnect_delay`] (reconnecting forever) and, for services, the event log; then tries the
/// brokers — with several URLs that all fail, each alone, to say why each did. With
/// [`Connection::retry_initial`] it returns at once and the first connection is made in the
/// background.
pub async fn connect(connection: &Connection) -> Result<async_nats::Client, ConnectError> {
    for url in &connection.brokers {
        url.parse::<async_nats::ServerAddr>()
            .map_err(|e| ConnectError::BrokerUrl {
                url: url.clone(),
                message: e.to_string(),
            })?;
    }
    let transport = &connection.transport;
    let mut options = transport
        .apply(async_nats::ConnectOptions::new())?
        .name(connection.name.clone())
        .connection_timeout(connection.connect_timeout)
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay);
    if let Some(capacity) = connection.subscription_capacity {
        options = options.subscription_capacity(capacity);
    }
    if let Some(capacity) = connection.client_capacity {
        options = options.client_capacity(capacity);
    }
    if connection.ignore_discovered_servers {
        options = options.ignore_discovered_servers();
    }
    let log = (connection.log_events || connection.retry_initial)
        .then(|| events::log_events(&connection.brokers, transport));
    let losses = connection.losses.clone();
    if log.is_some() || losses.is_some() {
        options = options.event_callback(move |event| {
            if let Some(losses) = &losses {
                losses.record(&event);
            }
            let logged: std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>> = match &log {
                Some(log) => log(event),
                None => Box::pin(async {}),
            };
            logged
        });
    }
    let unreachable = |causes: Vec<(String, Cause)>| ConnectError::Unreachable {
        brokers: connection.brokers.join(", "),
        message: cause::describe(&causes),
        hint: causes
            .first()
            .map(|(_, cause)| cause.hint(transport))
            .unwrap_or_default(),
        causes,
    };
    if connection.retry_initial {
        return options
            .retry_on_initial_connect()
            .connect(connection.brokers.clone())
            .await
            .map_err(|e| {
                unreachable(vec![(
                    connection.brokers.join(", "),
                    Cause::of(&e, transport),
                )])
            });
    }
    cause::try_brokers(&connection.brokers, transport, options)
        .await
        .map_err(unreachable)
}

/// Waits until the broker has handled everything `client` sent before — its subscriptions, its
/// publishes — by sending a message to itself and waiting for it: a broker handles one
/// connection's messages in order. (`flush` only empties the client's own buffer.)
pub async fn round_trip(
    client: &async_nats::Client,
    timeout: std::time::Duration,
) -> Result<(), TransportError> {
    use futures::StreamExt;
    let fail = |e: &dyn std::fmt::Display| TransportError(format!("round trip to the broker: {e}"));
    let echo = client.new_inbox();
    let mut back = client.subscribe(echo.clone()).await.map_err(|e| fail(&e))?;
    client
        .publish(echo, Default::default())
        .await
        .map_err(|e| fail(&e))?;
    client.flush().await.map_err(|e| fail(&e))?;
    match tokio::time::timeout(timeout, back.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(fail(&"the connection closed")),
        Err(_) => Err(fail(&format!("no echo within {timeout:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_delay_grows_by_100_ms_to_2_s() {
        let ms = |attempt| reconnect_delay(attempt).as_millis();
        assert_eq!(
            [0, 1, 2, 3, 20, 21, 22, usize::MAX].map(ms),
            [0, 0, 100, 200, 1900, 2000, 2000, 2000]
        );
    }

    /// A URL that does not parse is named before anything is tried.
    #[tokio::test]
    async fn a_bad_url_is_named() {
        let brokers = ["nats://127.0.0.1:4222".to_string(), "nats://:x".to_string()];
        let err = connect(&Connection::new("test", &brokers, &Transport::default()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ConnectError::BrokerUrl { url, .. } if url == "nats://:x"),
            "{err}"
        );
    }
}
