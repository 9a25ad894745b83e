//! `rpcutil`: the agent every node has. Discovery pings it; operators ask it for inventory,
//! facts and the daemon's counters.

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use muster_proto::filter::lookup;
use serde_json::{Value, json};

use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `rpcutil` agent.
#[derive(Debug, Clone)]
pub struct Rpcutil {
    ddl: Ddl,
}

impl Rpcutil {
    /// The agent with its shipped DDL.
    pub fn new() -> Result<Self, DdlError> {
        Ok(Rpcutil {
            ddl: Ddl::parse(include_str!("../ddl/rpcutil.json"))?,
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
            "version": env!("CARGO_PKG_VERSION"),
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
                let values: serde_json::Map<String, Value> = list
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
        "agent_inventory" => ActionResult::ok(json!({ "agents": *node.agents })),
        "daemon_stats" => ActionResult::ok(node.stats.stats()),
        other => ActionResult::fail(
            StatusCode::UnknownAction,
            format!(
                "rpcutil has no action {other:?}; its actions are {}",
                ddl.action_names().join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentInfo, Inventory, StatsSource};
    use std::sync::Arc;

    struct NoStats;
    impl StatsSource for NoStats {
        fn stats(&self) -> Value {
            json!({"requests": 3})
        }
    }

    fn node() -> NodeContext {
        NodeContext {
            inventory: Arc::new(Inventory {
                identity: "web1".into(),
                facts: json!({"os": {"family": "Debian"}, "cpus": 4}),
                classes: vec!["nginx".into()],
                agents: vec!["rpcutil".into()],
                collectives: vec!["muster".into()],
            }),
            agents: Arc::new(vec![AgentInfo::of(&Rpcutil::new().unwrap())]),
            stats: Arc::new(NoStats),
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
                "inventory",
                json!({}),
                StatusCode::Ok,
                Some(("classes", json!(["nginx"]))),
            ),
            ("nope", json!({}), StatusCode::UnknownAction, None),
        ];
        for (action, data, status, expect) in cases {
            let r = run(action, data);
            assert_eq!(r.status, *status, "{action} {data}");
            if let Some((key, value)) = expect {
                assert_eq!(&r.data[key], value, "{action} {data}");
            }
        }
        assert!(run("ping", &json!({})).data["pong"].as_f64().unwrap() > 0.0);
        assert_eq!(
            run("agent_inventory", &json!({})).data["agents"][0]["agent"],
            "rpcutil"
        );
    }
}
