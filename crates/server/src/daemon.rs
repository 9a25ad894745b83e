//! The receive loop, in docs/design.md §7's order: envelope → signature → credential →
//! request → collective → time window → replay cache → filter → policy → ack → input
//! validation and run → signed reply. Every step that rejects a message counts it by reason,
//! writes the decision to the audit log, and moves on.
//!
//! Nothing slow holds up the loop. Checking and acknowledging take a bounded number of
//! permits, released before a request waits for its slot: one of `max_concurrent` action
//! slots, or for `rpcutil` (cheap, built in, read-only) a small lane of its own, so a node whose
//! every slot is busy still answers ping and discovery. A request that finds no slot within its
//! ttl is answered busy (status 5), never left in silence. Reloads run beside serving, and the
//! audit log is written by its own thread.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::{Client, Message};
use futures::StreamExt;
use muster_agent::{Agent, AgentInfo, ConfigItems, Inventory, NodeContext};
use muster_proto::envelope::{Ack, Reply, Request};
use muster_proto::time::{self, now};
use muster_proto::{StatusCode, subject};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::admission::{Admission, Admitted, Dropped, encode_reply};
use crate::audit::{AuditLog, Decision, Record};
use crate::config::{ConfigError, Security, ServerConfig};
use crate::facts::{self, FactsError};
use crate::registration::Registrar;
use crate::stats::{Counters, DropReason};
use crate::trust::{NodeSigner, NodeTrust};

/// What the daemon can be told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reload facts and classes (SIGHUP).
    Reload,
    /// Stop taking requests, let running actions finish, exit (SIGTERM).
    Shutdown,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Facts or classes could not be loaded at start.
    #[error(transparent)]
    Facts(#[from] FactsError),
    /// A broker URL is not valid.
    #[error("invalid broker URL {url:?}: {message}")]
    BrokerUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// An agent could not be loaded.
    #[error("agents: {0}")]
    Agent(String),
    /// Talking to the broker failed in a way that cannot be retried.
    #[error("broker: {0}")]
    Broker(String),
    /// The keys, credential or issuer key cannot be used.
    #[error("security: {0}")]
    Trust(#[from] crate::trust::TrustSetupError),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log {path}: {message}")]
    Audit {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// How many `rpcutil` requests run at once, in their own lane beside the action slots: they
/// are cheap, built in and read-only, so a node whose every slot is busy still answers ping,
/// discovery and `daemon_stats`.
const RPCUTIL_LANE: usize = 4;

/// How many requests may wait for an action slot, per slot; past that a request is answered
/// "busy" at once.
const WAITING_PER_SLOT: usize = 4;

/// The agent whose requests take the [`RPCUTIL_LANE`].
const RPCUTIL: &str = "rpcutil";

/// How long the shutdown waits for messages already being checked, and at the end for the
/// last replies and the audit log.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a policy that reads files (`fstat()`) may take to decide before the request is
/// denied.
const POLICY_DEADLINE: Duration = Duration::from_secs(2);

/// Everything the request handlers share.
struct Node {
    identity: String,
    config: ServerConfig,
    client: Client,
    agents: BTreeMap<String, Arc<dyn Agent>>,
    agent_infos: Arc<Vec<AgentInfo>>,
    /// The effective configuration, as `rpcutil get_config_item` reports it.
    config_items: Arc<ConfigItems>,
    inventory: RwLock<Arc<Inventory>>,
    counters: Arc<Counters>,
    /// The action slots (`max_concurrent`).
    slots: Arc<Semaphore>,
    /// The `rpcutil` lane.
    rpcutil: Arc<Semaphore>,
    /// Room for requests waiting for a slot.
    waiting: Arc<Semaphore>,
    /// Becomes true when the daemon stops: requests still waiting for a slot are answered and
    /// not started.
    stopping: watch::Sender<bool>,
    admission: Admission,
    trust: Option<NodeTrust>,
    audit: Option<AuditLog>,
}

/// Runs the daemon until [`Control::Shutdown`] arrives or the control channel closes.
pub async fn run(
    config: ServerConfig,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), ServerError> {
    let started = now();
    let identity = config.identity()?;
    match config.security {
        Security::Insecure => warn!(
            "INSECURE MODE: security = \"insecure\" in the config, so this node accepts UNSIGNED \
             requests; anyone who can publish to the broker can run actions here. Use it only on \
             a test network."
        ),
        Security::Signed => {}
    }

    let mut agents: BTreeMap<String, Arc<dyn Agent>> = muster_agent::builtin(&config.agents)
        .map_err(|e| ServerError::Agent(format!("a built-in agent's DDL is broken: {e}")))?
        .into_iter()
        .map(|a| (a.name().to_string(), a))
        .collect();
    let mut external_names: Vec<String> = Vec::new();
    if let Some(dir) = &config.agents.directory {
        let taken: Vec<String> = agents.keys().cloned().collect();
        let replace = &config.agents.replace;
        let (external, errors) = muster_agent::external::load_directory(dir, &taken, replace);
        for e in errors {
            // One broken agent must not take the others down: say so loudly and go on.
            error!("{e}; the other agents keep running");
        }
        for agent in external {
            let name = agent.name().to_string();
            external_names.push(name.clone());
            if taken.contains(&name) {
                warn!(agent = %name, program = %agent.program().display(), "an external agent replaces the built-in (replace in [agents])");
            } else {
                info!(agent = %name, program = %agent.program().display(), "loaded an external agent");
            }
            agents.insert(name, Arc::new(agent));
        }
    }
    for name in &config.agents.replace {
        if !external_names.contains(name) {
            warn!(agent = %name, "replace in [agents] names this agent, but no external agent of that name was loaded from the agents directory, so the built-in runs (if there is one)");
        }
    }
    let agent_infos = Arc::new(agents.values().map(|a| AgentInfo::of(a.as_ref())).collect());
    let inventory = load_inventory(&config, &identity, &agents).await?;
    let agent_names: Vec<String> = agents.keys().cloned().collect();
    let trust = match config.security {
        Security::Signed => Some(NodeTrust::load(&config, &identity, &agent_names, now())?),
        Security::Insecure => None,
    };
    let audit = match &config.audit_log {
        Some(path) => Some(AuditLog::open(path).map_err(|e| ServerError::Audit {
            path: path.display().to_string(),
            message: e.to_string(),
        })?),
        None => {
            warn!("no audit_log in the config: decisions about requests are not recorded");
            None
        }
    };
    let mut admission = Admission::from_config(&config);
    admission.verifier = trust.as_ref().map(|t| t.verifier.clone());

    // The daemon must be able to start before the broker: it retries the first connection
    // in the background, forever, and says why each attempt failed.
    let connection = muster_transport::Connection {
        retry_initial: true,
        log_events: true,
        ..muster_transport::Connection::new(
            format!("muster-server {identity}"),
            &config.brokers,
            &config.transport,
        )
    };
    let client = muster_transport::connect(&connection)
        .await
        .map_err(|e| match e {
            muster_transport::ConnectError::BrokerUrl { url, message } => {
                ServerError::BrokerUrl { url, message }
            }
            muster_transport::ConnectError::Transport(e) => {
                ServerError::Config(ConfigError::Invalid(e.to_string()))
            }
            unreachable @ muster_transport::ConnectError::Unreachable { .. } => {
                ServerError::Broker(unreachable.to_string())
            }
        })?;

    let slots = Arc::new(Semaphore::new(config.max_concurrent));
    let room = config.max_concurrent.saturating_mul(WAITING_PER_SLOT);
    let waiting = Arc::new(Semaphore::new(room));
    let mut counters = Counters::new(identity.clone(), slots.clone(), config.max_concurrent)
        .with_waiting(waiting.clone(), room);
    if let Some(audit) = &audit {
        counters = counters.with_audit_lost(audit.lost());
    }
    let counters = Arc::new(counters);
    let node = Arc::new(Node {
        identity: identity.clone(),
        client: client.clone(),
        agents,
        agent_infos,
        config_items: Arc::new(config.items(&identity)),
        inventory: RwLock::new(Arc::new(inventory)),
        counters,
        slots,
        rpcutil: Arc::new(Semaphore::new(RPCUTIL_LANE)),
        waiting,
        stopping: watch::Sender::new(false),
        admission,
        trust,
        audit,
        config,
    });

    let mut subjects: Vec<String> = node
        .agents
        .keys()
        .map(|a| subject::broadcast(&node.config.collective, a))
        .collect();
    subjects.push(subject::node(&node.config.collective, &identity));
    let mut subscriptions = Vec::new();
    for s in &subjects {
        let sub = client
            .subscribe(s.clone())
            .await
            .map_err(|e| ServerError::Broker(format!("cannot subscribe to {s}: {e}")))?;
        subscriptions.push(sub);
    }
    let mut messages = futures::stream::select_all(subscriptions);
    let registrar = (!node.config.registration_interval.is_zero()).then(|| {
        let started = time::whole_secs(started);
        let source = node.clone();
        Registrar::spawn(
            client.clone(),
            subject::registration(&node.config.collective),
            subject::registry_hello(&node.config.collective),
            node.config.registration_interval,
            started,
            node.signer(),
            move || source.inventory(),
        )
    });
    {
        let client = client.clone();
        let identity = identity.clone();
        tokio::spawn(async move {
            // "ready" only once the broker has the subscriptions.
            if muster_transport::round_trip(&client, Duration::from_secs(10))
                .await
                .is_ok()
            {
                info!(%identity, subjects = ?subjects, "ready: serving requests");
            }
        });
    }

    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let checking = Arc::new(Semaphore::new(4 * parallel));
    // Every request's task, so that stopping can wait for them and end those that outlive the
    // drain (which kills their actions' process groups).
    let mut tasks = JoinSet::new();
    // A reload runs in the background; a SIGHUP during one asks for one more after it.
    let (reloaded, mut reload_done) = mpsc::channel::<()>(1);
    let mut reloading: Option<tokio::task::JoinHandle<()>> = None;
    let mut reload_again = false;
    loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    // Checking a message (an ed25519 verification, in signed mode) runs on
                    // the worker threads, a bounded number at once: a flood of hostile
                    // messages is dropped on every core, and the loop waits when all are busy.
                    // The permit covers checking and acknowledging only, never the wait for an
                    // action slot, so busy slots cannot stop the loop.
                    let Ok(permit) = checking.clone().acquire_owned().await else {
                        break;
                    };
                    let node = node.clone();
                    tasks.spawn(async move {
                        let admitted = node.clone().check(message).await;
                        drop(permit);
                        if let Some(admitted) = admitted {
                            node.serve(admitted).await;
                        }
                    });
                }
                None => {
                    error!("the broker connection closed for good");
                    break;
                }
            },
            command = control.recv() => match command {
                Some(Control::Reload) if reloading.is_some() => {
                    if !reload_again {
                        info!("SIGHUP during a reload: another reload follows this one");
                    }
                    reload_again = true;
                }
                Some(Control::Reload) => reloading = Some(spawn_reload(&node, &reloaded)),
                Some(Control::Shutdown) | None => break,
            },
            Some(()) = reload_done.recv() => {
                reloading = std::mem::take(&mut reload_again).then(|| spawn_reload(&node, &reloaded));
            }
        }
    }

    info!("shutting down: no new requests; waiting for running actions");
    drop(messages);
    if let Some(reload) = reloading {
        reload.abort();
    }
    if let Some(registrar) = registrar {
        registrar.stop().await;
    }
    // Messages being checked go on to their slot or their answer first…
    let checkers = u32::try_from(4 * parallel).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, checking.acquire_many(checkers)).await;
    // …then whatever still waits for a slot is answered instead of started during the drain.
    node.stopping.send_replace(true);
    let all = u32::try_from(node.config.max_concurrent).unwrap_or(u32::MAX);
    match tokio::time::timeout(node.config.drain_timeout, node.slots.acquire_many(all)).await {
        Ok(_) => {
            info!("all actions finished");
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        }
        Err(_) => warn!(
            in_flight = node.counters.in_flight(),
            "drain timeout reached; exiting with actions still running: they are killed"
        ),
    }
    // Ending a task drops its action, which kills the action's process group.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Some(audit) = &node.audit {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, audit.flush()).await;
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, client.flush()).await;
    Ok(())
}

/// Starts a reload in the background; `done` hears when it has finished.
fn spawn_reload(node: &Arc<Node>, done: &mpsc::Sender<()>) -> tokio::task::JoinHandle<()> {
    let (node, done) = (node.clone(), done.clone());
    tokio::spawn(async move {
        node.reload().await;
        let _ = done.send(()).await;
    })
}

/// A request that passed every check and was acknowledged: it waits for its slot.
struct Ready {
    request: Request,
    reply_to: async_nats::Subject,
    inventory: Arc<Inventory>,
}

/// Why a request was answered without being started.
enum Unstarted {
    /// No slot in its lane came free within its ttl.
    Busy,
    /// Every slot is busy and the waiting room is full.
    Crowded,
    /// The daemon is stopping.
    Stopping,
}

async fn load_inventory(
    config: &ServerConfig,
    identity: &str,
    agents: &BTreeMap<String, Arc<dyn Agent>>,
) -> Result<Inventory, FactsError> {
    let facts = facts::load(&config.facts_files, config.facts_command.as_deref()).await?;
    let classes = match &config.classes_file {
        Some(path) => facts::load_classes(path)?,
        None => Vec::new(),
    };
    Ok(Inventory {
        identity: identity.to_string(),
        facts,
        classes,
        agents: agents.keys().cloned().collect(),
        collectives: vec![config.collective.clone()],
    })
}

impl Node {
    fn inventory(&self) -> Arc<Inventory> {
        match self.inventory.read() {
            Ok(inv) => inv.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn signer(&self) -> Option<Arc<NodeSigner>> {
        self.trust.as_ref().map(|t| t.signer.clone())
    }

    /// A message to send: signed when this node has a key.
    fn seal(&self, message: Vec<u8>) -> Vec<u8> {
        match self.signer() {
            Some(signer) => signer.seal(String::from_utf8(message).unwrap_or_default()),
            None => message,
        }
    }

    /// Writes a decision to the audit log, if there is one.
    fn audit(&self, decision: Decision, reason: String, request: Option<&Request>) {
        if let Some(audit) = &self.audit {
            let mut record = Record::now(decision, reason);
            if let Some(r) = request {
                record.request_id = Some(r.id.clone());
                record.caller = Some(r.caller.clone());
                record.agent = Some(r.agent.clone());
                record.action = Some(r.action.clone());
            }
            audit.record(&record);
        }
    }

    /// Counts and records a dropped message.
    fn drop_message(&self, dropped: Dropped) {
        self.counters.dropped(dropped.reason);
        debug!(reason = dropped.reason.name(), detail = %dropped.detail, "dropped a message");
        self.audit(
            Decision::Dropped,
            format!("{}: {}", dropped.reason.name(), dropped.detail),
            dropped.claimed.as_deref(),
        );
    }

    /// Reloads policies, facts and classes. It runs beside serving; each set is swapped in
    /// whole once it is complete, and a set that fails to load keeps the previous one.
    async fn reload(&self) {
        let agents: Vec<String> = self.agents.keys().cloned().collect();
        let policies = self.trust.as_ref().map(|t| t.read_policies(&agents));
        let inventory = load_inventory(&self.config, &self.identity, &self.agents).await;
        // Everything is read (the facts command may have taken a while): now swap.
        if let (Some(trust), Some(policies)) = (&self.trust, policies) {
            trust.set_policies(policies);
        }
        match inventory {
            Ok(inventory) => {
                info!(
                    facts = inventory.facts.as_object().map_or(0, |f| f.len()),
                    classes = inventory.classes.len(),
                    "reloaded facts and classes"
                );
                match self.inventory.write() {
                    Ok(mut inv) => *inv = Arc::new(inventory),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(inventory),
                }
            }
            Err(e) => error!(error = %e, "reload failed; keeping the previous facts and classes"),
        }
    }

    /// Checks one message; a request for this node that may run is acknowledged and returned,
    /// everything else is dropped or answered here.
    async fn check(self: Arc<Self>, message: Message) -> Option<Ready> {
        self.counters.received();
        let now = now();
        let Admitted {
            request,
            filter,
            credential,
        } = match self
            .admission
            .check(&message.payload, message.reply.is_some(), now)
        {
            Ok(admitted) => admitted,
            Err(dropped) => {
                self.drop_message(dropped);
                return None;
            }
        };
        if let Some(trust) = &self.trust
            && let Err(e) = trust.admit_id(&request, self.config.clock_skew.as_secs_f64(), now)
        {
            self.drop_message(Dropped {
                reason: DropReason::replay(e),
                detail: e.to_string(),
                claimed: Some(Box::new(request)),
            });
            return None;
        }
        let reply_to = message.reply?;
        let inventory = self.inventory();
        if !filter.matches(inventory.as_ref()) {
            self.counters.filtered();
            return None;
        }
        self.counters.passed();
        let verdict = match (&self.trust, &credential) {
            // A policy calling fstat() stats and may hash files: that runs on the blocking
            // pool, under a deadline, so a slow or hung file system costs that request (denied)
            // and never a worker thread the node answers with.
            (Some(trust), Some(credential)) if trust.policy_reads_files(&request.agent) => {
                let node = self.clone();
                let (credential, checked) = (credential.clone(), request.clone());
                let deciding = tokio::task::spawn_blocking(move || {
                    node.trust.as_ref().map_or_else(
                        || Err("the node has no trust".to_string()),
                        |t| t.authorize(&credential, &checked, node.inventory().as_ref()),
                    )
                });
                match tokio::time::timeout(POLICY_DEADLINE, deciding).await {
                    Ok(Ok(verdict)) => verdict,
                    Ok(Err(e)) => Err(format!("policy {}: deciding failed: {e}", request.agent)),
                    Err(_) => Err(format!(
                        "policy {}: deciding took longer than {} s (a file its fstat() reads \
                         did not answer), so it denies",
                        request.agent,
                        POLICY_DEADLINE.as_secs()
                    )),
                }
            }
            (Some(trust), Some(credential)) => {
                trust.authorize(credential, &request, inventory.as_ref())
            }
            // Admission checks a credential whenever the node has trust; a request that reached
            // here without one is refused, never run as if the node were insecure.
            (Some(_), None) => Err("the request carried no checked credential".to_string()),
            (None, _) => Ok("insecure mode: no signature or policy checked".to_string()),
        };
        match verdict {
            Ok(why) => self.audit(Decision::Allowed, why, Some(&request)),
            Err(why) => {
                warn!(request_id = %request.id, caller = %request.caller, agent = %request.agent, action = %request.action, reason = %why, "denied a request");
                self.audit(Decision::Denied, why.clone(), Some(&request));
                let reply = Reply::new(
                    &request.id,
                    &self.identity,
                    now,
                    StatusCode::NotAuthorized,
                    format!("not authorized: {why}"),
                    json!({}),
                );
                self.send_reply(reply_to, reply).await;
                return None;
            }
        }

        if request.ack {
            let ack =
                serde_json::to_vec(&Ack::new(&request.id, &self.identity)).unwrap_or_default();
            let ack = self.seal(ack);
            if let Err(e) = self.client.publish(reply_to.clone(), ack.into()).await {
                warn!(error = %e, request_id = %request.id, "cannot send the acknowledgement");
            }
        }

        Some(Ready {
            request,
            reply_to,
            inventory,
        })
    }

    /// Runs an admitted request in its lane once a slot is free, or answers why not: busy
    /// (no slot within the request's ttl), or stopping. Never silence.
    async fn serve(&self, ready: Ready) {
        let Ready {
            request,
            reply_to,
            inventory,
        } = ready;
        let (lane, size, what) = if request.agent == RPCUTIL {
            (&self.rpcutil, RPCUTIL_LANE, "rpcutil slots")
        } else {
            (&self.slots, self.config.max_concurrent, "action slots")
        };
        match self.slot(lane, &request).await {
            Ok(_permit) => {
                let reply = self.execute(&request, inventory).await;
                self.send_reply(reply_to, reply).await;
            }
            Err(why) => {
                let message = match why {
                    Unstarted::Busy => format!(
                        "the node is busy: all {size} {what} in use, and none came free within \
                         the request's ttl of {}s",
                        request.ttl
                    ),
                    Unstarted::Crowded => format!(
                        "the node is busy: all {size} {what} in use, and {} requests already \
                         wait for one",
                        self.config.max_concurrent.saturating_mul(WAITING_PER_SLOT)
                    ),
                    Unstarted::Stopping => {
                        "the node is shutting down: the request was not started".to_string()
                    }
                };
                if !matches!(why, Unstarted::Stopping) {
                    self.counters.busy();
                }
                warn!(request_id = %request.id, caller = %request.caller, agent = %request.agent, action = %request.action, "{message}");
                let reply = Reply::new(
                    &request.id,
                    &self.identity,
                    now(),
                    StatusCode::UnknownError,
                    message,
                    json!({}),
                );
                self.send_reply(reply_to, reply).await;
            }
        }
    }

    /// A slot in `lane` for `request`: at once if one is free, otherwise once one comes free
    /// before the request's ttl runs out.
    async fn slot(
        &self,
        lane: &Arc<Semaphore>,
        request: &Request,
    ) -> Result<OwnedSemaphorePermit, Unstarted> {
        let mut stopping = self.stopping.subscribe();
        if *stopping.borrow_and_update() {
            return Err(Unstarted::Stopping);
        }
        if let Ok(permit) = lane.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let Ok(_room) = self.waiting.try_acquire() else {
            return Err(Unstarted::Crowded);
        };
        // Until the request expires, and never longer than its ttl (its time may be ahead of
        // this node's clock by the allowed skew).
        let ttl = request.ttl as f64;
        let left = (request.time + ttl - now()).min(ttl);
        let left = Duration::try_from_secs_f64(left).unwrap_or(Duration::ZERO);
        tokio::select! {
            biased;
            _ = stopping.wait_for(|stop| *stop) => Err(Unstarted::Stopping),
            permit = lane.clone().acquire_owned() => permit.map_err(|_| Unstarted::Stopping),
            () = tokio::time::sleep(left) => Err(Unstarted::Busy),
        }
    }

    async fn execute(&self, request: &Request, inventory: Arc<Inventory>) -> Reply {
        let reply = |status: StatusCode, msg: String, data| {
            Reply::new(&request.id, &self.identity, now(), status, msg, data)
        };
        let Some(agent) = self.agents.get(&request.agent) else {
            return reply(
                StatusCode::UnknownAction,
                format!("no agent {:?} on this node", request.agent),
                json!({}),
            );
        };
        let context = NodeContext {
            inventory,
            agents: self.agent_infos.clone(),
            stats: self.counters.clone(),
            config: self.config_items.clone(),
            request_id: request.id.clone(),
            caller: request.caller.clone(),
        };
        let result =
            muster_agent::dispatch(agent.as_ref(), &context, &request.action, &request.data).await;
        info!(
            request_id = %request.id,
            caller = %request.caller,
            agent = %request.agent,
            action = %request.action,
            status = result.status.code(),
            "served a request"
        );
        reply(result.status, result.message, result.data)
    }

    async fn send_reply(&self, reply_to: async_nats::Subject, reply: Reply) {
        // Room for the signature and credential around a signed reply.
        let max = match self.client.server_info().max_payload {
            0 => 0,
            max if self.trust.is_some() => {
                max.saturating_sub(crate::admission::SIGNING_ROOM).max(1)
            }
            max => max,
        };
        let bytes = self.seal(encode_reply(&reply, max, now()));
        match self.client.publish(reply_to, bytes.into()).await {
            Ok(()) => self.counters.served(),
            Err(e) => warn!(error = %e, request_id = %reply.request_id, "cannot send the reply"),
        }
    }
}
