//! Agents: named sets of actions a node runs on request.
//!
//! This crate holds the [`Agent`] trait, what an agent sees of its node ([`NodeContext`]) and
//! the built-in `rpcutil` agent. It knows nothing of NATS or the daemon's I/O: the daemon
//! (`muster-server`) decides which requests reach an agent, and turns an [`ActionResult`] into a
//! reply.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use muster_proto::{NodeView, StatusCode};
use serde_json::Value;

pub mod rpcutil;

/// The future an action returns.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = ActionResult> + Send + 'a>>;

/// What an action produced: a status, a message and its outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionResult {
    /// The reply status.
    pub status: StatusCode,
    /// A human-readable status message.
    pub message: String,
    /// The outputs, a JSON object.
    pub data: Value,
}

impl ActionResult {
    /// Success with outputs.
    pub fn ok(data: Value) -> Self {
        ActionResult {
            status: StatusCode::Ok,
            message: StatusCode::Ok.message().to_string(),
            data,
        }
    }

    /// A failure with a status and a message saying what went wrong.
    pub fn fail(status: StatusCode, message: impl Into<String>) -> Self {
        ActionResult {
            status,
            message: message.into(),
            data: Value::Object(Default::default()),
        }
    }
}

/// An agent: a named set of actions.
pub trait Agent: Send + Sync {
    /// The agent's name, as used in subjects and requests.
    fn name(&self) -> &str;

    /// A one-line description.
    fn description(&self) -> &str;

    /// The agent's version.
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    /// The names of its actions.
    fn actions(&self) -> &[&str];

    /// Runs `action` with validated inputs `data` (a JSON object).
    fn call<'a>(
        &'a self,
        node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a>;
}

/// What the node knows about itself: the subject of filters and of `rpcutil inventory`.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The node's identity.
    pub identity: String,
    /// Its facts, a JSON object.
    pub facts: Value,
    /// Its classes.
    pub classes: Vec<String>,
    /// The names of its agents, sorted.
    pub agents: Vec<String>,
    /// The collectives it serves.
    pub collectives: Vec<String>,
}

impl NodeView for Inventory {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn facts(&self) -> &Value {
        &self.facts
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn has_agent(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == agent)
    }
}

/// Something that reports the daemon's counters (requests served, drops by reason, uptime).
pub trait StatsSource: Send + Sync {
    /// The counters as a JSON object.
    fn stats(&self) -> Value;
}

/// What an action sees of its node.
#[derive(Clone)]
pub struct NodeContext {
    /// The node's inventory at the time the request arrived.
    pub inventory: Arc<Inventory>,
    /// The agents the node runs (for `rpcutil agent_inventory`).
    pub agents: Arc<Vec<AgentInfo>>,
    /// The daemon's counters.
    pub stats: Arc<dyn StatsSource>,
}

/// Metadata about an agent, as `rpcutil agent_inventory` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentInfo {
    /// The agent's name.
    pub agent: String,
    /// Its description.
    pub description: String,
    /// Its version.
    pub version: String,
    /// Its actions.
    pub actions: Vec<String>,
}

impl AgentInfo {
    /// The metadata of an agent.
    pub fn of(agent: &dyn Agent) -> Self {
        AgentInfo {
            agent: agent.name().to_string(),
            description: agent.description().to_string(),
            version: agent.version().to_string(),
            actions: agent.actions().iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// The built-in agents every node runs.
pub fn builtin() -> Vec<Arc<dyn Agent>> {
    vec![Arc::new(rpcutil::Rpcutil)]
}
