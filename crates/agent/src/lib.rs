//! Agents: named sets of actions a node runs on request.
//!
//! This crate holds the [`Agent`] trait, what an agent sees of its node ([`NodeContext`]),
//! [`dispatch`] (the one path every action runs through: the DDL's validation, the timeout, the
//! output defaults), [`command`] (running a configured program in its own process group), the
//! `[agents]` configuration ([`config`]), the built-in agents ([`rpcutil`], [`service`],
//! [`package`], [`file`](mod@file), [`shell`], [`cm`], [`health`]; docs/design.md §6) and
//! [`external`] agents. It knows nothing of NATS or the daemon's I/O: the daemon
//! (`muster-server`) decides which requests reach an agent, and turns an [`ActionResult`] into
//! a reply.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use muster_proto::ddl::{Ddl, DdlError};
use muster_proto::{NodeView, StatusCode};
use serde_json::Value;

pub mod cm;
pub mod command;
pub mod config;
pub mod external;
pub mod file;
pub mod health;
pub mod package;
pub mod rpcutil;
pub mod service;
pub mod shell;

pub use config::AgentsConfig;

/// The DDLs of the built-in agents, by name, as shipped (JSON).
pub const BUILTIN_DDLS: &[(&str, &str)] = &[
    ("rpcutil", rpcutil::DDL),
    ("service", service::DDL),
    ("package", package::DDL),
    ("shell", shell::DDL),
    ("file", file::DDL),
    ("cm", cm::DDL),
    ("health", health::DDL),
];

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

    /// A failure that still carries outputs (a command's output, a check's perfdata).
    pub fn fail_with(status: StatusCode, message: impl Into<String>, data: Value) -> Self {
        ActionResult {
            status,
            message: message.into(),
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
    /// The agent's name, as used in subjects and requests: its DDL's.
    fn name(&self) -> &str {
        &self.ddl().metadata.name
    }

    /// A one-line description: its DDL's.
    fn description(&self) -> &str {
        &self.ddl().metadata.description
    }

    /// The agent's version: its DDL's.
    fn version(&self) -> &str {
        &self.ddl().metadata.version
    }

    /// Its description: actions, inputs, outputs, timeout. The one list of its actions
    /// ([`Ddl::action_names`]): [`dispatch`] runs only what it names, and
    /// `rpcutil agent_inventory` reports it.
    fn ddl(&self) -> &Ddl;

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
    /// The collectives it serves; the first is its main collective.
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

/// The daemon's live counters (requests served, drops by reason, uptime) as an action sees
/// them: the daemon's are `muster_server::stats::Counters`.
pub trait StatsSource: Send + Sync {
    /// A snapshot of the counters, as the JSON object `rpcutil daemon_stats` reports.
    fn stats(&self) -> Value;
}

/// The daemon's effective configuration as `rpcutil get_config_item` (and the `config_item`
/// data source of `rpcutil get_data`) report it: item names (dotted for nested tables, e.g.
/// `agents.package.backend`) and their values. Items that name secret material (a private key,
/// a password, a token) are known but withheld: asking for one fails without the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigItems {
    values: BTreeMap<String, Value>,
    withheld: BTreeSet<String>,
}

/// What [`ConfigItems::get`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigItem<'a> {
    /// The item and its value (`null` when it is not set).
    Value(&'a Value),
    /// The item exists but names secret material, so its value is not reported.
    Withheld,
    /// No such item.
    Unknown,
}

impl ConfigItems {
    /// No items.
    pub fn new() -> Self {
        ConfigItems::default()
    }

    /// Sets `item` to `value`.
    pub fn set(&mut self, item: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        let item = item.into();
        self.withheld.remove(&item);
        self.values.insert(item, value.into());
        self
    }

    /// Makes `item` known but withheld.
    pub fn withhold(&mut self, item: impl Into<String>) -> &mut Self {
        let item = item.into();
        self.values.remove(&item);
        self.withheld.insert(item);
        self
    }

    /// What there is for `item`.
    pub fn get(&self, item: &str) -> ConfigItem<'_> {
        match self.values.get(item) {
            Some(value) => ConfigItem::Value(value),
            None if self.withheld.contains(item) => ConfigItem::Withheld,
            None => ConfigItem::Unknown,
        }
    }

    /// Every item's name, withheld ones included, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .values
            .keys()
            .chain(&self.withheld)
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.withheld.is_empty()
    }
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
    /// The daemon's effective configuration (for `rpcutil get_config_item`).
    pub config: Arc<ConfigItems>,
    /// The request being served.
    pub request_id: String,
    /// Who asked (the request's caller).
    pub caller: String,
}

impl NodeContext {
    /// A context for running an agent outside a daemon (tools, tests): this inventory, no other
    /// agents, no counters, no configuration items, a request id of zeros and the caller
    /// `local`.
    pub fn standalone(inventory: Inventory) -> Self {
        NodeContext {
            inventory: Arc::new(inventory),
            agents: Arc::new(Vec::new()),
            stats: Arc::new(NoCounters),
            config: Arc::new(ConfigItems::new()),
            request_id: "0".repeat(32),
            caller: "local".to_string(),
        }
    }
}

/// The counters of a context that has no daemon behind it.
struct NoCounters;

impl StatsSource for NoCounters {
    fn stats(&self) -> Value {
        Value::Object(Default::default())
    }
}

/// Metadata about an agent, as `rpcutil agent_inventory` reports it: its DDL's metadata under
/// Choria's names, and its actions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentInfo {
    /// The agent's name.
    pub agent: String,
    /// Its name again, as Choria's metadata has it.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its version.
    pub version: String,
    /// Who wrote it, if its DDL says.
    pub author: Option<String>,
    /// Its license, if its DDL says.
    pub license: Option<String>,
    /// Where to read more, if its DDL says.
    pub url: Option<String>,
    /// How long one of its actions may run, in seconds.
    pub timeout: u64,
    /// Its actions.
    pub actions: Vec<String>,
}

impl AgentInfo {
    /// The metadata of an agent.
    pub fn of(agent: &dyn Agent) -> Self {
        let metadata = &agent.ddl().metadata;
        AgentInfo {
            agent: agent.name().to_string(),
            name: agent.name().to_string(),
            description: agent.description().to_string(),
            version: agent.version().to_string(),
            author: metadata.author.clone(),
            license: metadata.license.clone(),
            url: metadata.url.clone(),
            timeout: metadata.timeout,
            actions: agent
                .ddl()
                .action_names()
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The built-in agents a node runs with this configuration (`shell` only when enabled).
pub fn builtin(config: &AgentsConfig) -> Result<Vec<Arc<dyn Agent>>, DdlError> {
    let mut agents: Vec<Arc<dyn Agent>> = vec![
        Arc::new(rpcutil::Rpcutil::new()?),
        Arc::new(service::Service::new(&config.service)?),
        Arc::new(package::Package::new(&config.package)?),
        Arc::new(file::File::new(&config.file)?),
        Arc::new(cm::Cm::new(&config.cm)?),
        Arc::new(health::Health::new(&config.health)?),
    ];
    if config.shell.enabled {
        agents.push(Arc::new(shell::Shell::new(&config.shell)?));
    }
    Ok(agents)
}

/// How long past its DDL timeout an action may take before dispatch gives up on it.
pub const DISPATCH_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs one action the way every node does: the action must be in the agent's DDL, the inputs
/// must validate (status 3 or 4 otherwise), the action runs under the DDL's timeout, and
/// outputs it left unset get their DDL defaults.
pub async fn dispatch(
    agent: &dyn Agent,
    node: &NodeContext,
    action: &str,
    data: &Value,
) -> ActionResult {
    let ddl = agent.ddl();
    let Some(described) = ddl.action(action) else {
        return ActionResult::fail(
            StatusCode::UnknownAction,
            format!(
                "{} has no action {action:?}; its actions are {}",
                agent.name(),
                ddl.action_names().join(", ")
            ),
        );
    };
    let empty = serde_json::Map::new();
    let inputs = match data.as_object() {
        Some(map) => map,
        None if data.is_null() => &empty,
        None => {
            return ActionResult::fail(StatusCode::InvalidData, "the inputs must be a JSON object");
        }
    };
    let inputs = match described.validate(inputs) {
        Ok(inputs) => Value::Object(inputs),
        Err(e) => return ActionResult::fail(e.status(), e.to_string()),
    };
    // Agents that run programs kill them at the DDL timeout and say so; this outer bound,
    // a little later, catches any action that does not.
    let limit = std::time::Duration::from_secs(ddl.metadata.timeout) + DISPATCH_GRACE;
    let mut result = match tokio::time::timeout(limit, agent.call(node, action, &inputs)).await {
        Ok(result) => result,
        Err(_) => {
            return ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "timed out after {}s (the agent's timeout)",
                    ddl.metadata.timeout
                ),
            );
        }
    };
    if result.status == StatusCode::Ok {
        described.apply_output_defaults(&mut result.data);
    }
    result
}
