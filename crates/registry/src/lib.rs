//! The Muster registry (`muster registry`): collects node registrations into a SQLite
//! database and answers inventory queries (docs/design.md §1–§3).
//!
//! - Nodes publish a [`Registration`] on `muster.<collective>.registration` at start and every
//!   interval. The registry keeps the latest record per identity with when it first and last
//!   saw the node ([`store`]). Registrations arrive in bursts (a fleet restarting): the receive
//!   loop only queues them; one writer thread decodes them and stores each burst in one
//!   transaction, so the async loops never wait for SQLite.
//! - Once subscribed, `start` asks the fleet to register now (and `serve` again after the
//!   connection comes back): a [`RegistryHello`] on
//!   `muster.<collective>.registry.hello`, which every node answers with its registration at a
//!   random moment within [`HELLO_JITTER`], so a registry started after the fleet knows every
//!   node within moments rather than after a registration interval.
//! - Queries ([`RegistryQuery`]: a filter, a maximum age, and optionally one fact or the whole
//!   records to return) arrive on
//!   `muster.<collective>.registry.query` in the queue group [`QUEUE_GROUP`], so several
//!   registries can run for redundancy and each query is answered once. The filter is
//!   evaluated by the same engine the nodes use, over each stored record.
//! - Collected requests ([`muster_proto::job`]): a client announces one on
//!   `muster.<collective>.registry.job.new` (every registry stores it and answers); the nodes
//!   reply to `muster.<collective>.replies.<id>.<part>`, where every registry stores the
//!   acknowledgements, replies and *no responders* statuses as events; one registry of the
//!   queue group answers `muster.<collective>.registry.job.get` with the record and events, so
//!   `muster show ID` works from any machine, and for `--no-results` requests.
//! - Records not seen for `retention` are deleted every `prune_interval`, and so are collected
//!   requests received longer ago.
//! - Everything lives in the database file, so a restart loses nothing.
//!
//! Invalid messages are dropped and counted ([`Stats`]); nothing a message contains stops
//! the service.
//!
//! # Layout
//!
//! - This file: [`RegistryConfig`], [`RegistryError`], and [`Registry`] — `start` connects,
//!   subscribes and starts the writer thread; `serve` hands each message to its job.
//! - `ingest`: the queue of what is to be stored and the writer thread that decodes and stores
//!   it in batches ([`registration_from`]).
//! - `query`: inventory queries ([`answer`]).
//! - `jobs`: collected requests — announced records ([`job_from`]), events from reply
//!   subjects ([`event_from`]), and the answer for one request.
//! - `pages`: reading the store off the async threads, the byte budget of one page of a long
//!   answer, and sending an answer the broker can take.
//! - `stats`: the live counters and the [`Stats`] snapshot.
//! - [`store`]: the SQLite database.
//!
//! [`Registration`]: muster_proto::registration::Registration
//! [`RegistryQuery`]: muster_proto::registration::RegistryQuery
//! [`RegistryHello`]: muster_proto::registration::RegistryHello

// Everything here handles what arrived from the network: no arithmetic that can overflow, no
// indexing that can panic (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, Subscriber};
use futures::StreamExt;
use muster_proto::job::JobAnswer;
use muster_proto::registration::RegistryHello;
use muster_proto::subject;
use muster_security::Verifier;
use tokio::sync::mpsc;
use tracing::info;

mod ingest;
mod jobs;
mod pages;
mod query;
mod stats;
pub mod store;

use ingest::{QUEUE_CAPACITY, Write, write_loop};
use jobs::handle_job_query;
use query::handle_query;
use stats::Counters;

pub use ingest::registration_from;
pub use jobs::{event_from, job_from};
pub use query::answer;
pub use stats::Stats;
pub use store::{Store, StoreError, StoredNode};

/// How long the nodes' answers to a registry's hello are spread over.
pub const HELLO_JITTER: Duration =
    Duration::from_millis(muster_proto::registration::DEFAULT_HELLO_JITTER_MS);

/// Asks the fleet to register now: a registry hello, answers spread over [`HELLO_JITTER`].
async fn say_hello(client: &Client, collective: &str) {
    let hello = RegistryHello::new(HELLO_JITTER).to_bytes();
    let sent = client
        .publish(subject::registry_hello(collective), hello.into())
        .await;
    match sent {
        Ok(()) => info!(
            jitter_ms = u64::try_from(HELLO_JITTER.as_millis()).unwrap_or(u64::MAX),
            "asked the fleet to register now"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot ask the fleet to register now"),
    }
}

/// The queue group every registry joins on the query subject.
pub const QUEUE_GROUP: &str = "muster-registry";

/// What the registry needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// The SQLite database file (created when missing).
    pub db: PathBuf,
    /// Broker URLs, tried in turn.
    pub brokers: Vec<String>,
    /// The collective whose registrations it collects.
    pub collective: String,
    /// Records of nodes not seen for this long are deleted.
    pub retention: Duration,
    /// How often old records are deleted.
    pub prune_interval: Duration,
    /// When set, registrations, acknowledgements and replies must be signed by a node whose
    /// credential this issuer signed, for the identity they carry; others are dropped.
    pub issuer: Option<muster_security::PublicKey>,
    /// TLS and NATS credentials for the broker connection.
    pub transport: muster_transport::Transport,
}

impl RegistryConfig {
    /// A configuration with the defaults: the local broker, collective `muster`, retention
    /// seven days, pruning every ten minutes.
    pub fn new(db: impl Into<PathBuf>) -> Self {
        RegistryConfig {
            db: db.into(),
            brokers: vec!["nats://127.0.0.1:4222".to_string()],
            collective: subject::DEFAULT_COLLECTIVE.to_string(),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(600),
            issuer: None,
            transport: Default::default(),
        }
    }

    /// A pruning interval that suits `retention`: a hundredth of it, between 1 s and 10 min.
    pub fn prune_interval_for(retention: Duration) -> Duration {
        retention
            .checked_div(100)
            .unwrap_or_default()
            .clamp(Duration::from_secs(1), Duration::from_secs(600))
    }
}

/// Why the registry could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database cannot be opened or used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is not usable.
    #[error("invalid registry configuration: {0}")]
    Config(String),
    /// A broker URL is not valid.
    #[error("invalid broker URL {url:?}: {message}")]
    BrokerUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// No broker could be reached.
    #[error("cannot reach the broker at {brokers}: {message}")]
    BrokerUnreachable {
        /// The URLs tried.
        brokers: String,
        /// Why.
        message: String,
    },
    /// Talking to the broker failed after connecting.
    #[error("broker: {0}")]
    Broker(String),
}

/// The current time, Unix seconds: proto's one clock helper.
pub use muster_proto::time::now;

/// A started registry: connected, subscribed, its database open.
pub struct Registry {
    config: RegistryConfig,
    client: Client,
    registrations: Subscriber,
    queries: Subscriber,
    announcements: Subscriber,
    replies: Subscriber,
    job_queries: Subscriber,
    job_direct: (Subscriber, String),
    reader: Arc<Mutex<Store>>,
    queue: mpsc::Sender<Write>,
    writer: std::thread::JoinHandle<()>,
    counters: Arc<Counters>,
}

impl Registry {
    /// Opens the database, connects to the broker and subscribes. When it returns, the
    /// registry is receiving registrations and queries.
    pub async fn start(config: RegistryConfig) -> Result<Registry, RegistryError> {
        subject::check_token("collective", &config.collective)
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        if config.brokers.is_empty() {
            return Err(RegistryError::Config("no broker URL given".into()));
        }
        if config.prune_interval.is_zero() {
            return Err(RegistryError::Config("prune_interval is 0".into()));
        }
        let (writer_store, reader) = {
            let path = config.db.clone();
            tokio::task::spawn_blocking(move || {
                Ok::<_, StoreError>((Store::open(&path)?, Store::open(&path)?))
            })
            .await
            .map_err(|e| RegistryError::Config(format!("cannot open the database: {e}")))??
        };

        let connection = muster_transport::Connection {
            connect_timeout: Duration::from_secs(3),
            subscription_capacity: Some(QUEUE_CAPACITY),
            log_events: true,
            ..muster_transport::Connection::new(
                "muster-registry",
                &config.brokers,
                &config.transport,
            )
        };
        let client = muster_transport::connect(&connection)
            .await
            .map_err(|e| match e {
                muster_transport::ConnectError::BrokerUrl { url, message } => {
                    RegistryError::BrokerUrl { url, message }
                }
                muster_transport::ConnectError::Transport(e) => {
                    RegistryError::Config(e.to_string())
                }
                muster_transport::ConnectError::Unreachable {
                    brokers,
                    message,
                    hint,
                    ..
                } => RegistryError::BrokerUnreachable {
                    brokers,
                    message: format!("{message}\n{hint}"),
                },
            })?;
        let registrations = client
            .subscribe(subject::registration(&config.collective))
            .await
            .map_err(|e| RegistryError::Broker(e.to_string()))?;
        let queries = client
            .queue_subscribe(
                subject::registry_query(&config.collective),
                QUEUE_GROUP.to_string(),
            )
            .await
            .map_err(|e| RegistryError::Broker(e.to_string()))?;
        let announcements = client
            .subscribe(subject::job_new(&config.collective))
            .await
            .map_err(|e| RegistryError::Broker(e.to_string()))?;
        let replies = client
            .subscribe(format!("{}.>", subject::all_replies(&config.collective)))
            .await
            .map_err(|e| RegistryError::Broker(e.to_string()))?;
        let job_queries = client
            .queue_subscribe(
                subject::job_get(&config.collective),
                QUEUE_GROUP.to_string(),
            )
            .await
            .map_err(|e| RegistryError::Broker(e.to_string()))?;
        // This registry's own subject, for the rest of a long answer about a collected request.
        let instance = client.new_inbox();
        let instance = instance
            .rsplit('.')
            .next()
            .unwrap_or("registry")
            .to_string();
        let direct = subject::job_get_from(&config.collective, &instance);
        let job_direct = (
            client
                .subscribe(direct.clone())
                .await
                .map_err(|e| RegistryError::Broker(e.to_string()))?,
            direct,
        );
        // When `start` returns, the broker has the subscriptions: nothing sent after is missed.
        muster_transport::round_trip(&client, Duration::from_secs(5))
            .await
            .map_err(|e| RegistryError::Broker(e.to_string()))?;
        // Now every registration is heard: ask the fleet for them (docs/design.md §2).
        say_hello(&client, &config.collective).await;

        let counters = Arc::new(Counters::default());
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = {
            let counters = counters.clone();
            let prefix = format!("{}.", subject::all_replies(&config.collective));
            let verifier = config
                .issuer
                .map(|issuer| Verifier::new(issuer, muster_security::signed::PEER_CLOCK_SKEW_SECS));
            std::thread::Builder::new()
                .name("registry-writer".into())
                .spawn(move || write_loop(writer_store, receiver, counters, prefix, verifier))
                .map_err(|e| RegistryError::Config(format!("cannot start a thread: {e}")))?
        };
        Ok(Registry {
            config,
            client,
            registrations,
            queries,
            announcements,
            replies,
            job_queries,
            job_direct,
            reader: Arc::new(Mutex::new(reader)),
            queue,
            writer,
            counters,
        })
    }

    /// A snapshot of its counters.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// A handle to snapshot the counters while [`Registry::serve`] runs.
    pub fn stats_handle(&self) -> impl Fn() -> Stats + Send + Sync + 'static {
        let counters = self.counters.clone();
        move || counters.snapshot()
    }

    /// Serves until `shutdown` completes, then stores what was received and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), RegistryError> {
        let Registry {
            config,
            client,
            mut registrations,
            mut queries,
            mut announcements,
            mut replies,
            mut job_queries,
            job_direct: (mut job_direct, direct),
            reader,
            queue,
            writer,
            counters,
        } = self;
        let announce_verifier = config
            .issuer
            .map(|issuer| Verifier::new(issuer, muster_security::signed::PEER_CLOCK_SKEW_SECS));
        let mut prune = tokio::time::interval(config.prune_interval);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let retention = config.retention.as_secs_f64();
        // Registrations sent while the connection was down are lost: once it is back, the
        // fleet is asked again (docs/design.md §2).
        let mut reconnects = tokio::time::interval(Duration::from_secs(1));
        reconnects.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut was_connected = true;
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                _ = reconnects.tick() => {
                    let connected = client.connection_state() == async_nats::connection::State::Connected;
                    if connected && !was_connected {
                        say_hello(&client, &config.collective).await;
                    }
                    was_connected = connected;
                }
                message = registrations.next() => match message {
                    Some(message) => {
                        Counters::add(&counters.received, 1);
                        match queue.try_send(Write::Registration(message.payload, now())) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                Counters::add(&counters.overloaded, 1);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                break Err(RegistryError::Broker("the database writer stopped".into()));
                            }
                        }
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = queries.next() => match message {
                    Some(message) => {
                        tokio::spawn(handle_query(client.clone(), reader.clone(), counters.clone(), message));
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = announcements.next() => match message {
                    Some(message) => {
                        let answer = match job_from(announce_verifier.as_ref(), &message.payload, now()) {
                            Ok(job) => match queue.try_send(Write::Job(Box::new(job), now())) {
                                Ok(()) => JobAnswer::found(None, Vec::new()),
                                Err(_) => JobAnswer::error("the registry is overloaded"),
                            },
                            Err(e) => {
                                Counters::add(&counters.bad_events, 1);
                                JobAnswer::error(format!("invalid job record: {e}"))
                            }
                        };
                        if let Some(reply) = message.reply {
                            let _ = client.publish(reply, answer.to_bytes().into()).await;
                        }
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = replies.next() => match message {
                    Some(message) => {
                        let no_responders =
                            message.status == Some(async_nats::StatusCode::NO_RESPONDERS);
                        let write = Write::Event(
                            message.subject.to_string(),
                            no_responders,
                            message.payload,
                            now(),
                        );
                        if queue.try_send(write).is_err() {
                            Counters::add(&counters.overloaded, 1);
                        }
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = job_queries.next() => match message {
                    Some(message) => {
                        tokio::spawn(handle_job_query(client.clone(), reader.clone(), counters.clone(), message, direct.clone()));
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = job_direct.next() => match message {
                    Some(message) => {
                        tokio::spawn(handle_job_query(client.clone(), reader.clone(), counters.clone(), message, direct.clone()));
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                _ = prune.tick() => {
                    let _ = queue.try_send(Write::Prune(now() - retention));
                }
                () = &mut shutdown => break Ok(()),
            }
        };
        drop(registrations);
        drop(queries);
        drop(announcements);
        drop(replies);
        drop(job_queries);
        drop(job_direct);
        drop(queue);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
        info!(counters = ?counters.snapshot(), "registry stopped");
        result
    }
}

/// Runs a registry with `config` until `shutdown` completes.
pub async fn run(
    config: RegistryConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RegistryError> {
    Registry::start(config).await?.serve(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_interval_suits_the_retention() {
        let f = RegistryConfig::prune_interval_for;
        assert_eq!(f(Duration::from_secs(7 * 86400)), Duration::from_secs(600));
        assert_eq!(f(Duration::from_secs(1000)), Duration::from_secs(10));
        assert_eq!(f(Duration::from_secs(5)), Duration::from_secs(1));
    }
}
