//! The Muster registry (`muster registry`): collects node registrations into a SQLite
//! database and answers inventory queries (docs/design.md §1–§3).
//!
//! - Nodes publish a [`Registration`] on `muster.<collective>.registration` at start and every
//!   interval. The registry keeps the latest record per identity with when it first and last
//!   saw the node ([`store`]). Registrations arrive in bursts (a fleet restarting): the receive
//!   loop only queues them; one writer thread decodes them and stores each burst in one
//!   transaction, so the async loops never wait for SQLite.
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
//! Invalid messages are dropped and counted ([`Counters`]); nothing a message contains stops
//! the service.

// Everything here handles what arrived from the network: no arithmetic that can overflow, no
// indexing that can panic (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use muster_proto::Response;
use muster_proto::filter::lookup;
use muster_proto::job::{EventKind, JobAnswer, JobEvent, JobQuery, JobRecord};
use muster_proto::registration::{Registration, RegistryAnswer, RegistryQuery};
use muster_proto::subject;
use muster_security::signed::open;
use muster_security::{Kind, Verifier};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub mod store;

pub use store::{Store, StoreError, StoredNode};

/// The queue group every registry joins on the query subject.
pub const QUEUE_GROUP: &str = "muster-registry";

/// How many received registrations may wait for the writer; beyond this they are dropped
/// (counted as `overloaded`) rather than growing memory without bound.
const QUEUE_CAPACITY: usize = 1 << 16;

/// The most registrations stored in one transaction.
const MAX_BATCH: usize = 10_000;

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

/// The registry's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Registration messages received.
    pub received: u64,
    /// Registrations stored.
    pub stored: u64,
    /// Registration messages dropped because they did not decode.
    pub invalid: u64,
    /// Registration messages dropped because the writer was too far behind.
    pub overloaded: u64,
    /// Queries answered (including those answered with an error).
    pub queries: u64,
    /// Query messages that did not decode, had no reply subject, or had a bad filter.
    pub bad_queries: u64,
    /// Records deleted by pruning.
    pub pruned: u64,
    /// Collected requests announced and stored.
    pub jobs: u64,
    /// Acknowledgements, replies and no-responders statuses stored for collected requests.
    pub events: u64,
    /// Messages on a reply subject or the announce subject that were not valid.
    pub bad_events: u64,
}

#[derive(Debug, Default)]
struct Stats {
    received: AtomicU64,
    stored: AtomicU64,
    invalid: AtomicU64,
    overloaded: AtomicU64,
    queries: AtomicU64,
    bad_queries: AtomicU64,
    pruned: AtomicU64,
    jobs: AtomicU64,
    events: AtomicU64,
    bad_events: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            received: get(&self.received),
            stored: get(&self.stored),
            invalid: get(&self.invalid),
            overloaded: get(&self.overloaded),
            queries: get(&self.queries),
            bad_queries: get(&self.bad_queries),
            pruned: get(&self.pruned),
            jobs: get(&self.jobs),
            events: get(&self.events),
            bad_events: get(&self.bad_events),
        }
    }
}

/// The current time, Unix seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The answer to `query` from `store` at time `now`: the matching nodes, or an error answer
/// when the filter does not compile.
pub fn answer(store: &Store, query: &RegistryQuery, now: f64, budget: usize) -> RegistryAnswer {
    let filter = match query.filter.compile() {
        Ok(filter) => filter,
        Err(e) => return RegistryAnswer::error(format!("invalid filter: {e}")),
    };
    let since = query.seen_within.map(|secs| now - secs as f64);
    let nodes = match store.matching(&filter, since) {
        Ok(nodes) => nodes,
        Err(e) => return RegistryAnswer::error(e.to_string()),
    };
    let mut page = Vec::new();
    let mut used: usize = 0;
    let mut next = None;
    let after = query.after.as_deref();
    for node in nodes
        .into_iter()
        .filter(|n| after.is_none_or(|a| n.registration.identity.as_str() > a))
    {
        let mut seen = node.seen();
        if let Some(path) = &query.fact {
            let value = lookup(&node.registration.facts, path);
            seen.fact = Some(value.cloned().unwrap_or(serde_json::Value::Null));
        }
        if query.records {
            seen.record = Some(node.registration);
        }
        let size = serde_json::to_vec(&seen).map_or(0, |b| b.len().saturating_add(1));
        if !page.is_empty() && used.saturating_add(size) > budget {
            next = page
                .last()
                .map(|n: &muster_proto::registration::SeenNode| n.identity.clone());
            break;
        }
        used = used.saturating_add(size);
        page.push(seen);
    }
    let mut answer = RegistryAnswer::nodes(page);
    answer.next = next;
    answer
}

/// What the writer thread is asked to do.
enum Write {
    /// Store a registration received at this time.
    Registration(Bytes, f64),
    /// Store an announced request.
    Job(Box<JobRecord>, f64),
    /// Store what arrived on a reply subject at this time (`true`: a no-responders status).
    Event(String, bool, Bytes, f64),
    /// Delete records last seen before this time.
    Prune(f64),
}

/// What arrived on `subject` (below `muster.<collective>.replies.`, given as `prefix` with its
/// trailing dot) as an event of the request its id names: a no-responders status for a part,
/// or an acknowledgement or reply of that very request. `Err` says why it is not one.
pub fn event_from(
    prefix: &str,
    subject: &str,
    no_responders: bool,
    payload: &[u8],
    received: f64,
    verifier: Option<&Verifier>,
) -> Result<(String, JobEvent), &'static str> {
    let rest = subject.strip_prefix(prefix).ok_or("not a reply subject")?;
    let (id, part) = rest.split_once('.').ok_or("no part in the subject")?;
    if muster_proto::job::check_id(id).is_err() || part.is_empty() || part.contains('.') {
        return Err("not a reply subject");
    }
    let event = |kind, identity, reply| JobEvent {
        part: part.to_string(),
        kind,
        identity,
        received,
        reply,
    };
    if no_responders {
        return Ok((id.to_string(), event(EventKind::NotConnected, None, None)));
    }
    let (inner, signer) = open(verifier, Kind::Node, payload, received).map_err(|e| e.reason())?;
    let response = Response::decode(&inner).map_err(|_| "not an acknowledgement or reply")?;
    if response.request_id() != id {
        return Err("answers another request");
    }
    if signer.as_deref().is_some_and(|s| s != response.sender()) {
        return Err("signed by another node than the sender");
    }
    let identity = Some(response.sender().to_string());
    Ok((
        id.to_string(),
        match response {
            Response::Ack(_) => event(EventKind::Ack, identity, None),
            Response::Reply(reply) => event(EventKind::Reply, identity, Some(reply)),
        },
    ))
}

/// A collected request's record from the network: with an issuer, signed by a caller
/// credential naming the record's caller; without, a signed record is unwrapped unchecked.
pub fn job_from(verifier: Option<&Verifier>, bytes: &[u8], now: f64) -> Result<JobRecord, String> {
    let (inner, signer) = open(verifier, Kind::Caller, bytes, now).map_err(|e| e.to_string())?;
    let job = JobRecord::decode(&inner).map_err(|e| e.to_string())?;
    if let Some(signer) = signer
        && signer != job.caller
    {
        return Err(format!(
            "signed by {signer:?}, but the record says caller {:?}",
            job.caller
        ));
    }
    Ok(job)
}

/// A registration from the network, checked as [`open`] says for nodes; a signed one must be
/// signed for the identity it carries.
pub fn registration_from(
    verifier: Option<&Verifier>,
    bytes: &[u8],
    now: f64,
) -> Result<Registration, &'static str> {
    let (inner, signer) = open(verifier, Kind::Node, bytes, now).map_err(|e| e.reason())?;
    let registration = Registration::decode(&inner).map_err(|e| e.reason())?;
    if signer.is_some_and(|s| s != registration.identity) {
        return Err("signed by another node than the one it registers");
    }
    Ok(registration)
}

/// The writer thread: decodes queued registrations and stores each burst in one transaction.
fn write_loop(
    mut store: Store,
    mut queue: mpsc::Receiver<Write>,
    stats: Arc<Stats>,
    replies_prefix: String,
    verifier: Option<Verifier>,
) {
    let mut batch = Vec::new();
    let mut jobs = Vec::new();
    let mut events = Vec::new();
    let mut prune = None;
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(write) = next.take() {
            match write {
                Write::Registration(bytes, seen) => {
                    match registration_from(verifier.as_ref(), &bytes, seen) {
                        Ok(registration) => batch.push((registration, seen)),
                        Err(reason) => {
                            Stats::add(&stats.invalid, 1);
                            debug!(reason, "dropped a registration");
                        }
                    }
                }
                Write::Job(job, received) => jobs.push((*job, received)),
                Write::Event(subject, no_responders, payload, received) => {
                    match event_from(
                        &replies_prefix,
                        &subject,
                        no_responders,
                        &payload,
                        received,
                        verifier.as_ref(),
                    ) {
                        Ok(event) => events.push(event),
                        Err(reason) => {
                            Stats::add(&stats.bad_events, 1);
                            debug!(%subject, reason, "dropped a message on a reply subject");
                        }
                    }
                }
                Write::Prune(before) => prune = Some(before),
            }
            if batch
                .len()
                .saturating_add(jobs.len())
                .saturating_add(events.len())
                < MAX_BATCH
            {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            match store.record(&batch) {
                Ok(n) => Stats::add(&stats.stored, n as u64),
                Err(e) => warn!(error = %e, count = batch.len(), "cannot store registrations"),
            }
            batch.clear();
        }
        if !jobs.is_empty() || !events.is_empty() {
            match store.record_jobs(&jobs, &events) {
                Ok((j, e)) => {
                    Stats::add(&stats.jobs, j as u64);
                    Stats::add(&stats.events, e as u64);
                }
                Err(e) => warn!(error = %e, "cannot store collected replies"),
            }
            jobs.clear();
            events.clear();
        }
        if let Some(before) = prune.take() {
            match store.prune(before) {
                Ok(0) => {}
                Ok(n) => {
                    Stats::add(&stats.pruned, n as u64);
                    info!(deleted = n, "pruned nodes past the retention age");
                }
                Err(e) => warn!(error = %e, "cannot prune old records"),
            }
        }
    }
}

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
    stats: Arc<Stats>,
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

        let stats = Arc::new(Stats::default());
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = {
            let stats = stats.clone();
            let prefix = format!("{}.", subject::all_replies(&config.collective));
            let verifier = config
                .issuer
                .map(|issuer| Verifier::new(issuer, muster_security::signed::PEER_CLOCK_SKEW_SECS));
            std::thread::Builder::new()
                .name("registry-writer".into())
                .spawn(move || write_loop(writer_store, receiver, stats, prefix, verifier))
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
            stats,
        })
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.stats.snapshot()
    }

    /// A handle to read the counters while [`Registry::serve`] runs.
    pub fn counters_handle(&self) -> impl Fn() -> Counters + Send + Sync + 'static {
        let stats = self.stats.clone();
        move || stats.snapshot()
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
            stats,
        } = self;
        let announce_verifier = config
            .issuer
            .map(|issuer| Verifier::new(issuer, muster_security::signed::PEER_CLOCK_SKEW_SECS));
        let mut prune = tokio::time::interval(config.prune_interval);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let retention = config.retention.as_secs_f64();
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                message = registrations.next() => match message {
                    Some(message) => {
                        Stats::add(&stats.received, 1);
                        match queue.try_send(Write::Registration(message.payload, now())) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                Stats::add(&stats.overloaded, 1);
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
                        tokio::spawn(handle_query(client.clone(), reader.clone(), stats.clone(), message));
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
                                Stats::add(&stats.bad_events, 1);
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
                            Stats::add(&stats.overloaded, 1);
                        }
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = job_queries.next() => match message {
                    Some(message) => {
                        tokio::spawn(handle_job_query(client.clone(), reader.clone(), stats.clone(), message, direct.clone()));
                    }
                    None => break Err(RegistryError::Broker("the subscription ended".into())),
                },
                message = job_direct.next() => match message {
                    Some(message) => {
                        tokio::spawn(handle_job_query(client.clone(), reader.clone(), stats.clone(), message, direct.clone()));
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
        info!(counters = ?stats.snapshot(), "registry stopped");
        result
    }
}

/// Answers one query message.
async fn handle_query(
    client: Client,
    reader: Arc<Mutex<Store>>,
    stats: Arc<Stats>,
    message: Message,
) {
    let Some(reply) = message.reply else {
        Stats::add(&stats.bad_queries, 1);
        return;
    };
    let query = match RegistryQuery::decode(&message.payload) {
        Ok(query) => query,
        Err(e) => {
            Stats::add(&stats.bad_queries, 1);
            debug!(reason = e.reason(), error = %e, "dropped a registry query");
            let bytes = RegistryAnswer::error(format!("invalid query: {e}")).to_bytes();
            let _ = client.publish(reply, bytes.into()).await;
            return;
        }
    };
    let budget = answer_budget(&client);
    let answer = read_store(reader, move |store| answer(store, &query, now(), budget))
        .await
        .unwrap_or_else(|e| RegistryAnswer::error(format!("the query failed: {e}")));
    if answer.error.is_some() {
        Stats::add(&stats.bad_queries, 1);
    }
    Stats::add(&stats.queries, 1);
    send_answer(&client, reply, answer.to_bytes(), |e| {
        RegistryAnswer::error(e).to_bytes()
    })
    .await;
}

/// Runs `read` on the store, off the async threads.
async fn read_store<T: Send + 'static>(
    reader: Arc<Mutex<Store>>,
    read: impl FnOnce(&Store) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let store = match reader.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        };
        read(&store)
    })
    .await
}

/// Sends an answer; one larger than the broker takes (a single record or event over the
/// budget of a page) is replaced by the error answer `error` makes.
async fn send_answer(
    client: &Client,
    reply: async_nats::Subject,
    mut bytes: Vec<u8>,
    error: impl FnOnce(String) -> Vec<u8>,
) {
    let max = client.server_info().max_payload;
    if max > 0 && bytes.len() > max {
        bytes = error(format!(
            "the answer ({} bytes) is larger than the broker's max payload ({max} bytes)",
            bytes.len()
        ));
    }
    if let Err(e) = client.publish(reply, bytes.into()).await {
        warn!(error = %e, "cannot send an answer");
    }
}

/// How many bytes of nodes or events go in one answer: what the broker takes, less room for
/// the envelope.
fn answer_budget(client: &Client) -> usize {
    match client.server_info().max_payload {
        0 => 1 << 20,
        max => max,
    }
    .saturating_sub(1024)
    .max(1024)
}

/// Answers one query for a collected request; the rest of a long answer is asked for on
/// `direct`, this registry's own subject.
async fn handle_job_query(
    client: Client,
    reader: Arc<Mutex<Store>>,
    stats: Arc<Stats>,
    message: Message,
    direct: String,
) {
    let Some(reply) = message.reply else {
        Stats::add(&stats.bad_queries, 1);
        return;
    };
    Stats::add(&stats.queries, 1);
    let budget = answer_budget(&client);
    let answer = match JobQuery::decode(&message.payload) {
        Ok(query) => read_store(reader, move |store| {
            match store.job(&query.id, query.after, budget) {
                Ok(page) => {
                    let mut answer = JobAnswer::found(page.record, page.events);
                    answer.next = page.next;
                    answer.registry = page.next.map(|_| direct);
                    answer
                }
                Err(e) => JobAnswer::error(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| JobAnswer::error(format!("the query failed: {e}"))),
        Err(e) => {
            Stats::add(&stats.bad_queries, 1);
            JobAnswer::error(format!("invalid job query: {e}"))
        }
    };
    send_answer(&client, reply, answer.to_bytes(), |e| {
        JobAnswer::error(e).to_bytes()
    })
    .await;
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
    use muster_proto::Filter;

    #[test]
    fn prune_interval_suits_the_retention() {
        let f = RegistryConfig::prune_interval_for;
        assert_eq!(f(Duration::from_secs(7 * 86400)), Duration::from_secs(600));
        assert_eq!(f(Duration::from_secs(1000)), Duration::from_secs(10));
        assert_eq!(f(Duration::from_secs(5)), Duration::from_secs(1));
    }

    #[test]
    fn a_bad_filter_gets_an_error_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let query = RegistryQuery::new(
            Filter {
                identity: vec!["/(/".into()],
                ..Filter::default()
            },
            None,
        );
        let answer = answer(&store, &query, 0.0, 1 << 20);
        assert!(
            answer.error.as_deref().unwrap_or("").contains("invalid"),
            "{answer:?}"
        );
        let ok = super::answer(
            &store,
            &RegistryQuery::new(Filter::default(), Some(60)),
            0.0,
            1 << 20,
        );
        assert_eq!(ok, RegistryAnswer::nodes(vec![]));
    }

    #[test]
    fn queries_can_ask_for_one_fact_or_the_records() {
        use muster_proto::registration::{REGISTRATION_PROTOCOL, Registration};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let node = |identity: &str, facts: serde_json::Value| Registration {
            protocol: REGISTRATION_PROTOCOL.to_string(),
            identity: identity.to_string(),
            facts,
            classes: vec![],
            agents: vec!["rpcutil".into()],
            collectives: vec!["muster".into()],
            version: "0.1.0".into(),
            started: 1,
            time: 1.0,
        };
        let a = node("a", serde_json::json!({"os": {"family": "Debian"}}));
        let b = node("b", serde_json::json!({}));
        store.record(&[(a.clone(), 10.0), (b, 10.0)]).unwrap();
        let mut query = RegistryQuery::new(Filter::default(), None);
        query.fact = Some("os.family".into());
        let answer = super::answer(&store, &query, 20.0, 1 << 20);
        let facts: Vec<_> = answer.nodes.iter().map(|n| n.fact.clone()).collect();
        // `null` for a node without the fact; it decodes as "no value".
        assert_eq!(
            facts,
            [
                Some(serde_json::json!("Debian")),
                Some(serde_json::Value::Null)
            ]
        );
        let back = RegistryAnswer::decode(&answer.to_bytes()).unwrap();
        assert_eq!(back.nodes[0].fact, Some(serde_json::json!("Debian")));
        assert!(back.nodes.iter().all(|n| n.record.is_none()));

        let mut query = RegistryQuery::new(Filter::default(), None);
        query.records = true;
        query.filter.identity.push("a".into());
        let answer = super::answer(&store, &query, 20.0, 1 << 20);
        assert_eq!(answer.nodes.len(), 1);
        assert_eq!(answer.nodes[0].record.as_ref(), Some(&a));
    }

    #[test]
    fn reply_subjects_become_events_of_their_request() {
        use muster_proto::{Ack, Reply, StatusCode};
        let prefix = "muster.muster.replies.";
        let ack = serde_json::to_vec(&Ack::new("01ab", "web1")).unwrap();
        let reply = serde_json::to_vec(&Reply::new(
            "01ab",
            "web1",
            1.0,
            StatusCode::Ok,
            "OK",
            serde_json::json!({}),
        ))
        .unwrap();
        let (id, event) = event_from(
            prefix,
            "muster.muster.replies.01ab.3",
            false,
            &ack,
            5.0,
            None,
        )
        .unwrap();
        assert_eq!(
            (id.as_str(), event.part.as_str(), event.kind),
            ("01ab", "3", EventKind::Ack)
        );
        assert_eq!(event.identity.as_deref(), Some("web1"));
        let (_, event) = event_from(
            prefix,
            "muster.muster.replies.01ab.b0",
            false,
            &reply,
            5.0,
            None,
        )
        .unwrap();
        assert_eq!(event.kind, EventKind::Reply);
        assert_eq!(event.reply.unwrap().sender, "web1");
        let (_, event) = event_from(
            prefix,
            "muster.muster.replies.01ab.b0",
            true,
            b"",
            5.0,
            None,
        )
        .unwrap();
        assert_eq!(
            (event.kind, event.identity),
            (EventKind::NotConnected, None)
        );
        for (subject, payload, why) in [
            (
                "muster.muster.replies.other.0",
                &reply[..],
                "answers another request",
            ),
            (
                "muster.muster.replies.01ab",
                &reply[..],
                "no part in the subject",
            ),
            (
                "muster.muster.replies.01ab.0.1",
                &reply[..],
                "not a reply subject",
            ),
            (
                "muster.other.replies.01ab.0",
                &reply[..],
                "not a reply subject",
            ),
            (
                "muster.muster.replies.01ab.0",
                b"{}",
                "not an acknowledgement or reply",
            ),
        ] {
            assert_eq!(
                event_from(prefix, subject, false, payload, 5.0, None).unwrap_err(),
                why,
                "{subject}"
            );
        }
    }

    #[test]
    fn long_answers_come_in_pages_that_cover_every_node_once() {
        use muster_proto::registration::{REGISTRATION_PROTOCOL, Registration};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let r = Registration {
                    protocol: REGISTRATION_PROTOCOL.to_string(),
                    identity: format!("node{i:02}"),
                    facts: serde_json::json!({"padding": "x".repeat(100)}),
                    classes: vec![],
                    agents: vec![],
                    collectives: vec![],
                    version: String::new(),
                    started: 0,
                    time: 1.0,
                };
                (r, 10.0)
            })
            .collect();
        store.record(&batch).unwrap();
        let mut query = RegistryQuery::new(Filter::default(), None);
        query.records = true;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let answer = super::answer(&store, &query, 20.0, 2000);
            assert!(
                answer.to_bytes().len() < 2600,
                "a page stays near its budget"
            );
            pages += 1;
            seen.extend(answer.nodes.into_iter().map(|n| n.identity));
            match answer.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let all: Vec<String> = (0..50).map(|i| format!("node{i:02}")).collect();
        assert_eq!(seen, all);
        assert!(pages > 5, "{pages} pages");
    }

    #[test]
    fn announced_records_must_be_signed_by_their_caller_when_the_issuer_is_known() {
        use muster_proto::job::JOB_PROTOCOL;
        use muster_security::SecretKey;
        use muster_security::credential::{Credential, Kind};
        use muster_security::signed::sign_message;
        let issuer = SecretKey::generate();
        let alice = SecretKey::generate();
        let token = |kind, name: &str| {
            Credential::new(kind, name, &alice.public(), 0, 1 << 32, None)
                .unwrap()
                .issue(&issuer)
        };
        let record = |caller: &str| JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: "j1".into(),
            time: 1.0,
            agent: "rpcutil".into(),
            action: "ping".into(),
            caller: caller.into(),
            data: serde_json::json!({}),
            filter: Filter::default(),
            expected: vec!["web1".into()],
            absent: vec![],
            last_seen: Default::default(),
            batch_size: None,
            timeout_ms: 1000,
            retry_of: None,
            not_connected: vec![],
        };
        let signed = |r: &JobRecord, kind| {
            sign_message(
                String::from_utf8(r.to_bytes()).unwrap(),
                &alice,
                &token(kind, "alice"),
            )
        };
        let v = Verifier::new(issuer.public(), 5.0);
        assert_eq!(
            job_from(Some(&v), &signed(&record("alice"), Kind::Caller), 10.0).unwrap(),
            record("alice")
        );
        let err = job_from(Some(&v), &signed(&record("root"), Kind::Caller), 10.0).unwrap_err();
        assert!(err.contains("signed by \"alice\""), "{err}");
        assert!(job_from(Some(&v), &signed(&record("alice"), Kind::Node), 10.0).is_err());
        assert!(job_from(Some(&v), &record("alice").to_bytes(), 10.0).is_err());
        assert_eq!(
            job_from(None, &record("bob").to_bytes(), 10.0).unwrap(),
            record("bob")
        );
        assert_eq!(
            job_from(None, &signed(&record("alice"), Kind::Caller), 10.0).unwrap(),
            record("alice")
        );
    }
}
