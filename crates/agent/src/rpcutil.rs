//! `rpcutil`: the agent every node has. Discovery pings it; operators ask it for inventory,
//! facts, collectives, configuration items, data sources and the daemon's counters. Its
//! actions, inputs and outputs are Choria's (a superset of them), so `mco`-habit commands such as
//! `rpc rpcutil collective_info` run unchanged.
//!
//! `get_data` answers from these data sources, named as MCollective's and Choria's data plugins
//! ([`DATA_SOURCES`]):
//!
//! | source | query | outputs |
//! |---|---|---|
//! | `agent` | an agent's name | `agent`, `author`, `description`, `license`, `timeout`, `url`, `version` |
//! | `collective` | a collective | `member` |
//! | `config_item` | a configuration item | `present`, `value` |
//! | `fact` | a fact's dotted path | `exists`, `value`, `value_encoding` |

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use muster_proto::filter::lookup;
use serde_json::{Map, Value, json};

use crate::{ActionFuture, ActionResult, Agent, ConfigItem, NodeContext};

/// The `rpcutil` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/rpcutil.json");

/// The data sources `get_data` answers from, sorted (`inventory` reports them as
/// `data_plugins`).
pub const DATA_SOURCES: &[&str] = &["agent", "collective", "config_item", "fact"];

/// The `rpcutil` agent.
#[derive(Debug, Clone)]
pub struct Rpcutil {
    ddl: Ddl,
}

impl Rpcutil {
    /// The agent with its shipped DDL.
    pub fn new() -> Result<Self, DdlError> {
        Ok(Rpcutil {
            ddl: Ddl::parse(DDL)?,
        })
    }
}

impl Agent for Rpcutil {
    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(async move { run(&self.ddl, node, action, data) })
    }
}

/// The node's main collective: the first it serves.
fn main_collective(node: &NodeContext) -> &str {
    node.inventory
        .collectives
        .first()
        .map_or("", String::as_str)
}

fn run(ddl: &Ddl, node: &NodeContext, action: &str, data: &Value) -> ActionResult {
    let inv = &node.inventory;
    match action {
        "ping" => ActionResult::ok(json!({ "pong": muster_proto::time::now() })),
        "inventory" => ActionResult::ok(json!({
            "identity": inv.identity,
            "facts": inv.facts,
            "classes": inv.classes,
            "agents": inv.agents,
            "collectives": inv.collectives,
            "main_collective": main_collective(node),
            "data_plugins": DATA_SOURCES,
            "upgradable": false,
            "version": env!("CARGO_PKG_VERSION"),
        })),
        "collective_info" => ActionResult::ok(json!({
            "main_collective": main_collective(node),
            "collectives": inv.collectives,
        })),
        "get_fact" => match data.get("fact").and_then(Value::as_str) {
            Some(fact) if !fact.is_empty() => ActionResult::ok(json!({
                "fact": fact,
                "value": lookup(&inv.facts, fact).cloned().unwrap_or(Value::Null),
            })),
            Some(_) => ActionResult::fail(StatusCode::InvalidData, "input fact is empty"),
            None => ActionResult::fail(
                StatusCode::MissingData,
                "missing input fact: give the fact's dotted path, e.g. fact=os.family",
            ),
        },
        "get_facts" => match data.get("facts").and_then(Value::as_str) {
            Some(list) => {
                let values: Map<String, Value> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(|f| {
                        let v = lookup(&inv.facts, f).cloned().unwrap_or(Value::Null);
                        (f.to_string(), v)
                    })
                    .collect();
                ActionResult::ok(json!({ "values": values }))
            }
            None => ActionResult::fail(
                StatusCode::MissingData,
                "missing input facts: give a comma-separated list, e.g. facts=os.family,kernel",
            ),
        },
        "get_config_item" => get_config_item(node, data),
        "get_data" => get_data(node, data),
        "agent_inventory" => ActionResult::ok(json!({ "agents": *node.agents })),
        "daemon_stats" => {
            let mut stats = match node.stats.stats() {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            // Choria's names for what the daemon's counters do not hold.
            stats.insert("agents".into(), json!(inv.agents));
            stats.insert("pid".into(), json!(std::process::id()));
            stats
                .entry("version")
                .or_insert_with(|| json!(env!("CARGO_PKG_VERSION")));
            ActionResult::ok(Value::Object(stats))
        }
        other => ActionResult::fail(
            StatusCode::UnknownAction,
            format!(
                "rpcutil has no action {other:?}; its actions are {}",
                ddl.action_names().join(", ")
            ),
        ),
    }
}

/// A failure for asking about a withheld item.
fn withheld(item: &str) -> ActionResult {
    ActionResult::fail(
        StatusCode::Aborted,
        format!(
            "config item {item} names secret material (a private key, a password or a token), \
             so its value is not reported"
        ),
    )
}

fn get_config_item(node: &NodeContext, data: &Value) -> ActionResult {
    let Some(item) = data.get("item").and_then(Value::as_str) else {
        return ActionResult::fail(
            StatusCode::MissingData,
            "missing input item: give a configuration item, e.g. item=collective",
        );
    };
    match node.config.get(item) {
        ConfigItem::Value(value) => ActionResult::ok(json!({ "item": item, "value": value })),
        ConfigItem::Withheld => withheld(item),
        ConfigItem::Unknown if node.config.is_empty() => ActionResult::fail(
            StatusCode::Aborted,
            format!("unknown config item {item}: this node reports no configuration items"),
        ),
        ConfigItem::Unknown => ActionResult::fail(
            StatusCode::Aborted,
            format!(
                "unknown config item {item}; the items are {}",
                node.config.names().join(", ")
            ),
        ),
    }
}

fn get_data(node: &NodeContext, data: &Value) -> ActionResult {
    let Some(source) = data.get("source").and_then(Value::as_str) else {
        return ActionResult::fail(
            StatusCode::MissingData,
            format!(
                "missing input source: give a data source, one of {}",
                DATA_SOURCES.join(", ")
            ),
        );
    };
    if !DATA_SOURCES.contains(&source) {
        return ActionResult::fail(
            StatusCode::Aborted,
            format!(
                "unknown data source {source:?}; this node's data sources are {}",
                DATA_SOURCES.join(", ")
            ),
        );
    }
    let Some(query) = data
        .get("query")
        .and_then(Value::as_str)
        .filter(|q| !q.is_empty())
    else {
        let what = match source {
            "agent" => "an agent's name, e.g. query=package",
            "collective" => "a collective, e.g. query=muster",
            "config_item" => "a configuration item, e.g. query=collective",
            _ => "a fact's dotted path, e.g. query=os.family",
        };
        return ActionResult::fail(
            StatusCode::MissingData,
            format!("the {source} data source needs a query: {what}"),
        );
    };
    let inv = &node.inventory;
    match source {
        "agent" => match node.agents.iter().find(|a| a.agent == query) {
            Some(a) => ActionResult::ok(json!({
                "agent": a.agent,
                "author": a.author,
                "description": a.description,
                "license": a.license,
                "timeout": a.timeout,
                "url": a.url,
                "version": a.version,
            })),
            None => ActionResult::fail(
                StatusCode::Aborted,
                format!("no agent called {query} on this node"),
            ),
        },
        "collective" => ActionResult::ok(json!({
            "member": inv.collectives.iter().any(|c| c == query),
        })),
        "config_item" => match node.config.get(query) {
            ConfigItem::Value(value) => ActionResult::ok(json!({"present": true, "value": value})),
            ConfigItem::Withheld => withheld(query),
            ConfigItem::Unknown => ActionResult::ok(json!({"present": false, "value": null})),
        },
        _ => ActionResult::ok(fact_data(&inv.facts, query)),
    }
}

/// The `fact` data source, as MCollective's: a structured value (a list or a table) is JSON
/// text with `value_encoding` `application/json`, anything else is itself with `text/plain`.
fn fact_data(facts: &Value, path: &str) -> Value {
    match lookup(facts, path) {
        None => json!({"exists": false, "value": null, "value_encoding": null}),
        Some(value @ (Value::Array(_) | Value::Object(_))) => json!({
            "exists": true,
            "value": value.to_string(),
            "value_encoding": "application/json",
        }),
        Some(value) => json!({"exists": true, "value": value, "value_encoding": "text/plain"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentInfo, ConfigItems, Inventory, StatsSource};
    use std::sync::Arc;

    struct NoStats;
    impl StatsSource for NoStats {
        fn stats(&self) -> Value {
            json!({"requests": 3, "version": "9.9.9"})
        }
    }

    fn node() -> NodeContext {
        let mut config = ConfigItems::new();
        config
            .set("collective", "muster")
            .set("agents.package.backend", "apt")
            .set("issuer", Value::Null)
            .withhold("key");
        NodeContext {
            inventory: Arc::new(Inventory {
                identity: "web1".into(),
                facts: json!({"os": {"family": "Debian"}, "cpus": 4, "nets": ["a", "b"]}),
                classes: vec!["nginx".into()],
                agents: vec!["rpcutil".into()],
                collectives: vec!["muster".into(), "dc1".into()],
            }),
            agents: Arc::new(vec![AgentInfo::of(&Rpcutil::new().unwrap())]),
            stats: Arc::new(NoStats),
            config: Arc::new(config),
            request_id: "0123456789abcdef0123456789abcdef".into(),
            caller: "test".into(),
        }
    }

    #[test]
    fn actions() {
        let n = node();
        let rpcutil = Rpcutil::new().unwrap();
        let run = |action: &str, data: &Value| run(&rpcutil.ddl, &n, action, data);
        type Case<'a> = (&'a str, Value, StatusCode, Option<(&'a str, Value)>);
        let cases: &[Case] = &[
            (
                "get_fact",
                json!({"fact": "os.family"}),
                StatusCode::Ok,
                Some(("value", json!("Debian"))),
            ),
            (
                "get_fact",
                json!({"fact": "nope"}),
                StatusCode::Ok,
                Some(("value", Value::Null)),
            ),
            ("get_fact", json!({}), StatusCode::MissingData, None),
            (
                "get_fact",
                json!({"fact": ""}),
                StatusCode::InvalidData,
                None,
            ),
            (
                "get_facts",
                json!({"facts": "cpus, os.family"}),
                StatusCode::Ok,
                Some(("values", json!({"cpus": 4, "os.family": "Debian"}))),
            ),
            (
                "daemon_stats",
                json!({}),
                StatusCode::Ok,
                Some(("requests", json!(3))),
            ),
            (
                "daemon_stats",
                json!({}),
                StatusCode::Ok,
                Some(("agents", json!(["rpcutil"]))),
            ),
            (
                "daemon_stats",
                json!({}),
                StatusCode::Ok,
                Some(("version", json!("9.9.9"))),
            ),
            (
                "inventory",
                json!({}),
                StatusCode::Ok,
                Some(("classes", json!(["nginx"]))),
            ),
            (
                "inventory",
                json!({}),
                StatusCode::Ok,
                Some(("main_collective", json!("muster"))),
            ),
            (
                "inventory",
                json!({}),
                StatusCode::Ok,
                Some(("data_plugins", json!(DATA_SOURCES))),
            ),
            (
                "collective_info",
                json!({}),
                StatusCode::Ok,
                Some(("collectives", json!(["muster", "dc1"]))),
            ),
            (
                "collective_info",
                json!({}),
                StatusCode::Ok,
                Some(("main_collective", json!("muster"))),
            ),
            (
                "get_config_item",
                json!({"item": "agents.package.backend"}),
                StatusCode::Ok,
                Some(("value", json!("apt"))),
            ),
            (
                "get_config_item",
                json!({"item": "issuer"}),
                StatusCode::Ok,
                Some(("value", Value::Null)),
            ),
            (
                "get_config_item",
                json!({"item": "key"}),
                StatusCode::Aborted,
                None,
            ),
            (
                "get_config_item",
                json!({"item": "nope"}),
                StatusCode::Aborted,
                None,
            ),
            ("get_config_item", json!({}), StatusCode::MissingData, None),
            (
                "get_data",
                json!({"source": "fact", "query": "cpus"}),
                StatusCode::Ok,
                Some(("value", json!(4))),
            ),
            (
                "get_data",
                json!({"source": "fact", "query": "nets"}),
                StatusCode::Ok,
                Some(("value", json!("[\"a\",\"b\"]"))),
            ),
            (
                "get_data",
                json!({"source": "fact", "query": "nope"}),
                StatusCode::Ok,
                Some(("exists", json!(false))),
            ),
            (
                "get_data",
                json!({"source": "collective", "query": "dc1"}),
                StatusCode::Ok,
                Some(("member", json!(true))),
            ),
            (
                "get_data",
                json!({"source": "collective", "query": "dc2"}),
                StatusCode::Ok,
                Some(("member", json!(false))),
            ),
            (
                "get_data",
                json!({"source": "config_item", "query": "collective"}),
                StatusCode::Ok,
                Some(("present", json!(true))),
            ),
            (
                "get_data",
                json!({"source": "config_item", "query": "nope"}),
                StatusCode::Ok,
                Some(("present", json!(false))),
            ),
            (
                "get_data",
                json!({"source": "config_item", "query": "key"}),
                StatusCode::Aborted,
                None,
            ),
            (
                "get_data",
                json!({"source": "agent", "query": "rpcutil"}),
                StatusCode::Ok,
                Some(("timeout", json!(5))),
            ),
            (
                "get_data",
                json!({"source": "agent", "query": "nope"}),
                StatusCode::Aborted,
                None,
            ),
            (
                "get_data",
                json!({"source": "fstat", "query": "/etc"}),
                StatusCode::Aborted,
                None,
            ),
            (
                "get_data",
                json!({"source": "fact"}),
                StatusCode::MissingData,
                None,
            ),
            ("get_data", json!({}), StatusCode::MissingData, None),
            ("nope", json!({}), StatusCode::UnknownAction, None),
        ];
        for (action, data, status, expect) in cases {
            let r = run(action, data);
            assert_eq!(r.status, *status, "{action} {data}: {}", r.message);
            if let Some((key, value)) = expect {
                assert_eq!(&r.data[key], value, "{action} {data}");
            }
        }
        assert!(run("ping", &json!({})).data["pong"].as_f64().unwrap() > 0.0);
        assert_eq!(
            run("agent_inventory", &json!({})).data["agents"][0]["agent"],
            "rpcutil"
        );
        assert_eq!(
            run("daemon_stats", &json!({})).data["pid"],
            json!(std::process::id())
        );
    }

    #[test]
    fn failures_say_what_exists() {
        let n = node();
        let rpcutil = Rpcutil::new().unwrap();
        let run = |action: &str, data: Value| run(&rpcutil.ddl, &n, action, &data).message;
        assert_eq!(
            run("get_config_item", json!({"item": "nope"})),
            "unknown config item nope; the items are agents.package.backend, collective, \
             issuer, key"
        );
        assert!(
            run("get_config_item", json!({"item": "key"}))
                .starts_with("config item key names secret material"),
        );
        assert_eq!(
            run("get_data", json!({"source": "fstat", "query": "/etc"})),
            "unknown data source \"fstat\"; this node's data sources are agent, collective, \
             config_item, fact"
        );
        let bare = NodeContext::standalone(Inventory::default());
        let r = super::run(
            &rpcutil.ddl,
            &bare,
            "get_config_item",
            &json!({"item": "collective"}),
        );
        assert_eq!(
            r.message,
            "unknown config item collective: this node reports no configuration items"
        );
        let r = super::run(&rpcutil.ddl, &bare, "collective_info", &json!({}));
        assert_eq!(r.data, json!({"main_collective": "", "collectives": []}));
    }
}
