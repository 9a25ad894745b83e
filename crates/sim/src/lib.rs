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
//! own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, Message};
use futures::StreamExt;
use muster_agent::{Agent, AgentInfo, Inventory, NodeContext};
use muster_proto::envelope::{Ack, Reply, Request};
use muster_proto::time::now;
use muster_proto::{StatusCode, subject};
use muster_server::admission::{Admission, Admitted, encode_reply};
use muster_server::stats::Counters;
use muster_server::{Security, ServerConfig};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub mod agent;
pub mod fault;
pub mod fleet;

pub use fault::{Fault, Share};
pub use fleet::{FleetSpec, NodeSpec};

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
}

/// What a group of virtual nodes shares.
struct Group {
    nodes: Vec<VirtualNode>,
    by_identity: HashMap<String, usize>,
    collective: String,
    node_prefix: String,
    agents: HashMap<String, Arc<dyn Agent>>,
    agent_infos: Arc<Vec<AgentInfo>>,
    admission: Admission,
    counters: Arc<Counters>,
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
        let admission = Admission::from_config(&ServerConfig {
            security: Security::Insecure,
            collective: config.collective.clone(),
            ..ServerConfig::default()
        });
        let inventory = |spec: &NodeSpec| VirtualNode {
            inventory: Arc::new(Inventory {
                identity: spec.identity.clone(),
                facts: spec.facts.clone(),
                classes: spec.classes.clone(),
                agents: agent_names.clone(),
                collectives: vec![config.collective.clone()],
            }),
            fault: spec.fault,
        };
        let make_group = |members: Vec<VirtualNode>, name: &str| {
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
                admission: admission.clone(),
                counters: Arc::new(Counters::new(
                    name.to_string(),
                    Arc::new(Semaphore::new(1_000_000)),
                    1_000_000,
                )),
            })
        };

        let steady: Vec<&NodeSpec> = nodes.iter().filter(|n| n.fault != Fault::Flap).collect();
        let mut groups = Vec::new();
        for (i, chunk) in steady.chunks(config.nodes_per_connection).enumerate() {
            let members = chunk.iter().map(|s| inventory(s)).collect();
            groups.push((make_group(members, &format!("sim-group-{i}")), false));
        }
        for spec in nodes.iter().filter(|n| n.fault == Fault::Flap) {
            groups.push((make_group(vec![inventory(spec)], &spec.identity), true));
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
    group.counters.received();
    let Admitted {
        request, filter, ..
    } = match group
        .admission
        .check(&message.payload, message.reply.is_some(), now())
    {
        Ok(a) => a,
        Err(dropped) => {
            group.counters.dropped(dropped.reason);
            return;
        }
    };
    let Some(reply_to) = message.reply else {
        return;
    };
    let targets: Vec<usize> = match message.subject.strip_prefix(group.node_prefix.as_str()) {
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
        if node.fault == Fault::Silent {
            continue;
        }
        if request.ack {
            let ack = Ack::new(&request.id, &node.inventory.identity);
            let bytes = serde_json::to_vec(&ack).unwrap_or_default();
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
    let bytes = encode_reply(&reply, client.server_info().max_payload, now());
    if client.publish(reply_to, bytes.into()).await.is_ok() {
        group.counters.served();
    }
}
