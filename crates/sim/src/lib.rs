//! `muster sim`: thousands of virtual Muster nodes in one process, for tests, benchmarks and the
//! demo.
//!
//! Virtual nodes share connections: each group of up to `nodes_per_connection` nodes has one
//! broker connection, subscribes once to the broadcast subject of each agent, and once per node
//! to that node's direct subject (so a request to a node that is not there still gets the
//! broker's no-responders answer). A broadcast is decoded and its filter compiled once per
//! group, then matched against each node. Nodes that flap get a connection of their own, which
//! they drop and re-open. The admission checks, the filter engine and `rpcutil` are the
//! daemon's own code, so the simulator behaves like a fleet of daemons in `security =
//! "insecure"` mode: virtual nodes take unsigned requests and have no replay cache, policies or
//! audit log. Acknowledging, running the action and replying around them are the simulator's
//! own. With [`SimConfig::signing`] the fleet is in signed mode instead ([`signing`]): each node
//! has a key and a credential from the issuer, requests are checked as a daemon checks them
//! (signature, credential, replay cache, the credential's agent limits; every caller the issuer
//! vouches for is allowed otherwise, as no policy files are read), and acknowledgements and
//! replies are signed. Virtual nodes register when a registry's hello asks them to (`hello`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, Message};
use futures::StreamExt;
use muster_agent::{Agent, AgentInfo, ConfigItems, Inventory, NodeContext};
use muster_proto::envelope::{Ack, Reply, Request};
use muster_proto::time::now;
use muster_proto::{StatusCode, subject};
use muster_server::admission::{Admission, Admitted, SIGNING_ROOM, encode_reply};
use muster_server::stats::{Counters, DropReason};
use muster_server::{Security, ServerConfig};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub mod agent;
pub mod fault;
pub mod fleet;
mod hello;
pub mod signing;

pub use fault::{Fault, Share};
pub use fleet::{FleetSpec, NodeSpec};
pub use signing::SimSigning;

/// How to run a simulated fleet.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The fleet.
    pub fleet: FleetSpec,
    /// Broker URLs.
    pub brokers: Vec<String>,
    /// The collective.
    pub collective: String,
    /// How many virtual nodes share one broker connection.
    pub nodes_per_connection: usize,
    /// How long flapping nodes stay connected and away.
    pub flap_timing: FlapTiming,
    /// TLS and NATS credentials for the broker connections.
    pub transport: muster_transport::Transport,
    /// Signed mode: the issuer of the nodes' credentials and callers'. `None`: insecure.
    pub signing: Option<SimSigning>,
}

/// How long a flapping node stays connected, then away: each drawn at random from its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlapTiming {
    /// Time connected.
    pub up: std::ops::Range<Duration>,
    /// Time away.
    pub down: std::ops::Range<Duration>,
}

impl Default for FlapTiming {
    fn default() -> Self {
        FlapTiming {
            up: Duration::from_secs(5)..Duration::from_secs(20),
            down: Duration::from_secs(1)..Duration::from_secs(5),
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The broker could not be reached.
    #[error("cannot reach the broker at {brokers}: {message}")]
    Broker {
        /// The URLs.
        brokers: String,
        /// Why.
        message: String,
    },
    /// A setting is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// One virtual node at run time.
struct VirtualNode {
    inventory: Arc<Inventory>,
    fault: Fault,
    /// Its key and credential (signed mode).
    key: Option<signing::NodeKey>,
}

impl VirtualNode {
    /// A message to send: signed when the node has a key.
    fn seal(&self, message: Vec<u8>) -> Vec<u8> {
        match &self.key {
            Some(key) => key.seal(message),
            None => message,
        }
    }
}

/// What a group of virtual nodes shares.
struct Group {
    nodes: Vec<VirtualNode>,
    by_identity: HashMap<String, usize>,
    collective: String,
    node_prefix: String,
    agents: HashMap<String, Arc<dyn Agent>>,
    agent_infos: Arc<Vec<AgentInfo>>,
    /// What `rpcutil get_config_item` reports: the collective, which every node shares.
    config_items: Arc<ConfigItems>,
    admission: Admission,
    counters: Arc<Counters>,
    /// The replay cache (signed mode).
    replay: Option<signing::GroupReplay>,
    /// Answering registry hellos.
    hellos: hello::Hellos,
}

/// A running simulated fleet. Dropping it (or [`Sim::stop`]) disconnects every node.
pub struct Sim {
    nodes: Vec<NodeSpec>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

fn agents() -> Result<Vec<Arc<dyn Agent>>, SimError> {
    let broken = |e| SimError::Invalid(format!("a built-in agent's DDL is broken: {e}"));
    // A virtual node changes nothing: it runs rpcutil and the sim agent only.
    Ok(vec![
        Arc::new(muster_agent::rpcutil::Rpcutil::new().map_err(broken)?),
        Arc::new(agent::SimAgent::new().map_err(broken)?),
    ])
}

impl Sim {
    /// Generates the fleet, connects every group and subscribes; returns once all are ready.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        if config.nodes_per_connection == 0 {
            return Err(SimError::Invalid(
                "nodes per connection must be at least 1".into(),
            ));
        }
        subject::check_token("collective", &config.collective)
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        let nodes = fleet::generate(&config.fleet);
        let agents = agents()?;
        let agent_infos: Arc<Vec<AgentInfo>> =
            Arc::new(agents.iter().map(|a| AgentInfo::of(a.as_ref())).collect());
        let agent_names: Vec<String> = agents.iter().map(|a| a.name().to_string()).collect();
        let agents: HashMap<String, Arc<dyn Agent>> = agents
            .into_iter()
            .map(|a| (a.name().to_string(), a))
            .collect();
        let mut admission = Admission::from_config(&ServerConfig {
            security: Security::Insecure,
            collective: config.collective.clone(),
            ..ServerConfig::default()
        });
        let mut keys: Vec<Option<signing::NodeKey>> = Vec::new();
        if let Some(signing) = &config.signing {
            admission.security = Security::Signed;
            admission.clock_skew = signing.clock_skew;
            admission.verifier = Some(signing.verifier());
            keys = issue_keys(signing, &nodes).await?;
        }
        keys.resize_with(nodes.len(), || None);
        let mut keys = keys.into_iter();
        let mut inventory = |spec: &NodeSpec| VirtualNode {
            inventory: Arc::new(Inventory {
                identity: spec.identity.clone(),
                facts: spec.facts.clone(),
                classes: spec.classes.clone(),
                agents: agent_names.clone(),
                collectives: vec![config.collective.clone()],
            }),
            fault: spec.fault,
            key: keys.next().flatten(),
        };
        let started = muster_proto::time::whole_secs(now());
        let config_items = {
            let mut items = ConfigItems::new();
            items
                .set("collective", config.collective.as_str())
                .set("main_collective", config.collective.as_str())
                .set("collectives", vec![config.collective.clone()]);
            Arc::new(items)
        };
        let make_group = |members: Vec<VirtualNode>, name: &str| {
            let size = members.len();
            let by_identity = members
                .iter()
                .enumerate()
                .map(|(i, n)| (n.inventory.identity.clone(), i))
                .collect();
            Arc::new(Group {
                nodes: members,
                by_identity,
                collective: config.collective.clone(),
                node_prefix: format!("muster.{}.node.", config.collective),
                agents: agents.clone(),
                agent_infos: agent_infos.clone(),
                config_items: config_items.clone(),
                admission: admission.clone(),
                counters: Arc::new(Counters::new(
                    name.to_string(),
                    Arc::new(Semaphore::new(1_000_000)),
                    1_000_000,
                )),
                replay: config
                    .signing
                    .as_ref()
                    .map(|s| signing::GroupReplay::new(size, s.clock_skew)),
                hellos: hello::Hellos::new(&config.collective, started),
            })
        };

        // Every node made once, in the fleet's order (the keys were issued in it).
        let mut steady = Vec::new();
        let mut flapping = Vec::new();
        for spec in &nodes {
            let node = inventory(spec);
            if spec.fault == Fault::Flap {
                flapping.push(node);
            } else {
                steady.push(node);
            }
        }
        let mut groups = Vec::new();
        let mut steady = steady.into_iter().peekable();
        let mut i = 0usize;
        while steady.peek().is_some() {
            let members: Vec<VirtualNode> =
                steady.by_ref().take(config.nodes_per_connection).collect();
            groups.push((make_group(members, &format!("sim-group-{i}")), false));
            i += 1;
        }
        for node in flapping {
            let name = node.inventory.identity.clone();
            groups.push((make_group(vec![node], &name), true));
        }

        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut seed = config.fleet.seed;
        let mut pending = JoinSet::new();
        let settings = Arc::new(muster_transport::Connection {
            subscription_capacity: Some(1 << 16),
            client_capacity: Some(1 << 16),
            ignore_discovered_servers: true,
            ..muster_transport::Connection::new("muster-sim", &config.brokers, &config.transport)
        });
        for (group, flaps) in groups {
            let settings = settings.clone();
            pending.spawn(async move {
                let connection = connect(&group, &settings).await;
                (group, flaps, connection)
            });
        }
        while let Some(joined) = pending.join_next().await {
            let Ok((group, flaps, connection)) = joined else {
                continue;
            };
            let (client, messages) = connection?;
            seed = seed.wrapping_add(1);
            let stopped = stopped.clone();
            let settings = settings.clone();
            let timing = config.flap_timing.clone();
            tasks.spawn(async move {
                if flaps {
                    flap(group, client, messages, settings, stopped, seed, timing).await;
                } else {
                    serve(group, client, messages, stopped).await;
                }
            });
        }
        info!(nodes = nodes.len(), "simulated fleet ready");
        Ok(Sim { nodes, stop, tasks })
    }

    /// The virtual nodes, as generated.
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    /// Disconnects every node and waits for them to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

type Messages = futures::stream::SelectAll<async_nats::Subscriber>;

async fn connect(
    group: &Group,
    connection: &muster_transport::Connection,
) -> Result<(Client, Messages), SimError> {
    let fail = |message: String| SimError::Broker {
        brokers: connection.brokers.join(", "),
        message,
    };
    let client = muster_transport::connect(connection)
        .await
        .map_err(|e| match e {
            muster_transport::ConnectError::Unreachable { message, hint, .. } => {
                fail(format!("{message}\n{hint}"))
            }
            invalid => SimError::Invalid(invalid.to_string()),
        })?;
    let collective = &group.collective;
    let mut subscriptions = Vec::new();
    for agent in group.agents.keys() {
        let sub = client
            .subscribe(subject::broadcast(collective, agent))
            .await
            .map_err(|e| fail(e.to_string()))?;
        subscriptions.push(sub);
    }
    let hellos = client
        .subscribe(group.hellos.subject.clone())
        .await
        .map_err(|e| fail(e.to_string()))?;
    subscriptions.push(hellos);
    for node in &group.nodes {
        let sub = client
            .subscribe(subject::node(collective, &node.inventory.identity))
            .await
            .map_err(|e| fail(e.to_string()))?;
        subscriptions.push(sub);
    }
    client.flush().await.map_err(|e| fail(e.to_string()))?;
    Ok((client, futures::stream::select_all(subscriptions)))
}

/// Serves requests until told to stop.
async fn serve(
    group: Arc<Group>,
    client: Client,
    mut messages: Messages,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => handle(&group, &client, message).await,
                None => break,
            },
            _ = stopped.changed() => break,
        }
    }
    // Send what is queued, but don't wait for a broker that is gone.
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
}

/// Serves for a while, drops the connection, stays away for a while, comes back; until told
/// to stop.
async fn flap(
    group: Arc<Group>,
    client: Client,
    messages: Messages,
    settings: Arc<muster_transport::Connection>,
    mut stopped: watch::Receiver<bool>,
    seed: u64,
    timing: FlapTiming,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut connection = Some((client, messages));
    let draw = |rng: &mut StdRng, range: &std::ops::Range<Duration>| {
        if range.is_empty() {
            range.start
        } else {
            rng.random_range(range.clone())
        }
    };
    loop {
        let up = draw(&mut rng, &timing.up);
        let down = draw(&mut rng, &timing.down);
        if let Some((client, messages)) = connection.take() {
            let stop = stopped.clone();
            let served =
                tokio::time::timeout(up, serve(group.clone(), client, messages, stop)).await;
            if served.is_ok() {
                return;
            }
        }
        debug!(node = %group.nodes[0].inventory.identity, "flapping: disconnected");
        tokio::select! {
            _ = tokio::time::sleep(down) => {}
            _ = stopped.changed() => return,
        }
        match connect(&group, &settings).await {
            Ok(c) => connection = Some(c),
            Err(e) => warn!(error = %e, "flapping node could not reconnect"),
        }
    }
}

async fn handle(group: &Arc<Group>, client: &Client, message: Message) {
    if message.subject.as_str() == group.hellos.subject {
        hello::answer(group, client, &message.payload);
        return;
    }
    group.counters.received();
    let now = now();
    let Admitted {
        request,
        filter,
        credential,
    } = match group
        .admission
        .check(&message.payload, message.reply.is_some(), now)
    {
        Ok(a) => a,
        Err(dropped) => {
            group.counters.dropped(dropped.reason);
            return;
        }
    };
    let direct = message.subject.strip_prefix(group.node_prefix.as_str());
    if let Some(replay) = &group.replay
        && let Err(e) = replay.admit(&request, direct, now)
    {
        group.counters.dropped(DropReason::replay(e));
        return;
    }
    let Some(reply_to) = message.reply else {
        return;
    };
    // Signed mode allows every caller the issuer vouches for, within its credential's agent
    // limits: virtual nodes read no policy files (docs/sim.md).
    let denied = credential
        .as_ref()
        .filter(|c| !c.allows_agent(&request.agent))
        .map(|c| {
            format!(
                "not authorized: credential limits {} to agents {}",
                c.name,
                c.agents.as_deref().unwrap_or_default().join(", ")
            )
        });
    let targets: Vec<usize> = match direct {
        Some(identity) => group
            .by_identity
            .get(identity)
            .copied()
            .into_iter()
            .collect(),
        None => (0..group.nodes.len()).collect(),
    };
    let request = Arc::new(request);
    for index in targets {
        let node = &group.nodes[index];
        if node.fault != Fault::Stray && !filter.matches(node.inventory.as_ref()) {
            group.counters.filtered();
            continue;
        }
        group.counters.passed();
        if node.fault == Fault::Silent {
            continue;
        }
        if let Some(why) = &denied {
            let reply = Reply::new(
                &request.id,
                &node.inventory.identity,
                now,
                StatusCode::NotAuthorized,
                why.clone(),
                serde_json::json!({}),
            );
            send_reply(group, client, node, &reply, reply_to.clone()).await;
            continue;
        }
        if request.ack {
            let ack = Ack::new(&request.id, &node.inventory.identity);
            let bytes = node.seal(serde_json::to_vec(&ack).unwrap_or_default());
            let _ = client.publish(reply_to.clone(), bytes.into()).await;
        }
        let delay = match node.fault {
            Fault::Slow(d) => Some(d),
            _ => None,
        };
        let takes_time = request.agent == "sim" && request.action == "sleep";
        if delay.is_some() || takes_time {
            let (group, client, request, reply_to) = (
                group.clone(),
                client.clone(),
                request.clone(),
                reply_to.clone(),
            );
            tokio::spawn(async move {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                respond(&group, &client, index, &request, reply_to).await;
            });
        } else {
            respond(group, client, index, &request, reply_to.clone()).await;
        }
    }
}

async fn respond(
    group: &Group,
    client: &Client,
    index: usize,
    request: &Request,
    reply_to: async_nats::Subject,
) {
    let node = &group.nodes[index];
    let identity = &node.inventory.identity;
    let discovery = request.agent == "rpcutil" && request.action == "ping";
    let (status, message, data) = if node.fault == Fault::Fail && !discovery {
        (
            StatusCode::Aborted,
            "simulated failure".to_string(),
            serde_json::json!({}),
        )
    } else {
        match group.agents.get(&request.agent) {
            Some(agent) => {
                let context = NodeContext {
                    inventory: node.inventory.clone(),
                    agents: group.agent_infos.clone(),
                    stats: group.counters.clone(),
                    config: group.config_items.clone(),
                    request_id: request.id.clone(),
                    caller: request.caller.clone(),
                };
                let r = muster_agent::dispatch(
                    agent.as_ref(),
                    &context,
                    &request.action,
                    &request.data,
                )
                .await;
                (r.status, r.message, r.data)
            }
            None => (
                StatusCode::UnknownAction,
                format!("no agent {:?} on this node", request.agent),
                serde_json::json!({}),
            ),
        }
    };
    let reply = Reply::new(&request.id, identity, now(), status, message, data);
    send_reply(group, client, node, &reply, reply_to).await;
}

/// Sends a node's reply: signed, with room for the signature, when the node has a key.
async fn send_reply(
    group: &Group,
    client: &Client,
    node: &VirtualNode,
    reply: &Reply,
    reply_to: async_nats::Subject,
) {
    let max = match client.server_info().max_payload {
        0 => 0,
        max if node.key.is_some() => max.saturating_sub(SIGNING_ROOM).max(1),
        max => max,
    };
    let bytes = node.seal(encode_reply(reply, max, now()));
    if client.publish(reply_to, bytes.into()).await.is_ok() {
        group.counters.served();
    }
}

/// Every node's key and credential, issued on blocking threads (one signature each).
async fn issue_keys(
    signing: &SimSigning,
    nodes: &[NodeSpec],
) -> Result<Vec<Option<signing::NodeKey>>, SimError> {
    let signing = signing.clone();
    let identities: Vec<String> = nodes.iter().map(|n| n.identity.clone()).collect();
    // A minute back, for callers whose clocks are a little behind.
    let issued = muster_proto::time::whole_secs(now()).saturating_sub(60);
    let started = std::time::Instant::now();
    let keys = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = identities.iter().map(String::as_str).collect();
        signing.issue_all(&refs, issued)
    })
    .await
    .map_err(|e| SimError::Invalid(format!("issuing node credentials failed: {e}")))?
    .map_err(|e| SimError::Invalid(format!("cannot issue a node credential: {e}")))?;
    info!(
        nodes = keys.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "issued the virtual nodes' credentials"
    );
    Ok(keys.into_iter().map(Some).collect())
}
