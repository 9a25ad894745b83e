//! The `rpcutil` agent through `dispatch`: Choria's actions, inputs and outputs, the
//! configuration items and data sources a node answers from, and what it refuses.

use std::sync::Arc;

use muster_agent::rpcutil::{DATA_SOURCES, DDL, Rpcutil};
use muster_agent::{ActionResult, Agent, AgentInfo, ConfigItems, Inventory, NodeContext, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};

use crate::support::{ChoriaAction, assert_superset};

fn node(agent: &Rpcutil) -> NodeContext {
    let mut config = ConfigItems::new();
    config
        .set("collective", "muster")
        .set("agents.package.backend", "dnf")
        .set("drain_timeout", "10s")
        .withhold("transport.password");
    NodeContext {
        inventory: Arc::new(Inventory {
            identity: "web1".into(),
            facts: json!({"os": {"family": "RedHat"}, "role": "web", "disks": {"sda": 100}}),
            classes: vec!["nginx".into()],
            agents: vec!["package".into(), "rpcutil".into()],
            collectives: vec!["muster".into()],
        }),
        agents: Arc::new(vec![AgentInfo::of(agent)]),
        config: Arc::new(config),
        ..NodeContext::standalone(Inventory::default())
    }
}

async fn call(action: &str, data: Value) -> ActionResult {
    let agent = Rpcutil::new().expect("rpcutil");
    dispatch(&agent, &node(&agent), action, &data).await
}

#[tokio::test]
async fn collective_info_names_the_main_collective_and_all() {
    let r = call("collective_info", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(
        r.data,
        json!({"main_collective": "muster", "collectives": ["muster"]})
    );
}

#[tokio::test]
async fn get_config_item_answers_known_items_and_refuses_the_rest() {
    let r = call("get_config_item", json!({"item": "agents.package.backend"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(
        r.data,
        json!({"item": "agents.package.backend", "value": "dnf"})
    );
    let r = call("get_config_item", json!({"item": "transport.password"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message.contains("names secret material") && !r.message.contains("dnf"),
        "{}",
        r.message
    );
    assert_eq!(r.data, json!({}));
    let r = call(
        "get_config_item",
        json!({"item": "plugin.choria.srv_domain"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert_eq!(
        r.message,
        "unknown config item plugin.choria.srv_domain; the items are agents.package.backend, \
         collective, drain_timeout, transport.password"
    );
    // The DDL's validation: required, at most 120 characters.
    assert_eq!(
        call("get_config_item", json!({})).await.status,
        StatusCode::MissingData
    );
    let long = "a".repeat(121);
    assert_eq!(
        call("get_config_item", json!({ "item": long }))
            .await
            .status,
        StatusCode::InvalidData
    );
}

#[tokio::test]
async fn get_data_answers_from_each_source() {
    let table = [
        (
            "fact",
            "os.family",
            json!({"exists": true, "value": "RedHat", "value_encoding": "text/plain"}),
        ),
        (
            "fact",
            "disks",
            json!({"exists": true, "value": "{\"sda\":100}",
                   "value_encoding": "application/json"}),
        ),
        (
            "fact",
            "nope",
            json!({"exists": false, "value": null, "value_encoding": null}),
        ),
        ("collective", "muster", json!({"member": true})),
        ("collective", "other", json!({"member": false})),
        (
            "config_item",
            "drain_timeout",
            json!({"present": true, "value": "10s"}),
        ),
        (
            "config_item",
            "nope",
            json!({"present": false, "value": null}),
        ),
    ];
    for (source, query, want) in table {
        let r = call("get_data", json!({"source": source, "query": query})).await;
        assert_eq!(r.status, StatusCode::Ok, "{source} {query}: {}", r.message);
        assert_eq!(r.data, want, "{source} {query}");
    }
    let r = call("get_data", json!({"source": "agent", "query": "rpcutil"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    let ddl = Ddl::parse(DDL).expect("DDL");
    assert_eq!(r.data["agent"], "rpcutil");
    assert_eq!(r.data["version"], ddl.metadata.version);
    assert_eq!(r.data["timeout"], ddl.metadata.timeout);
    assert_eq!(r.data["license"], "Apache-2.0");
}

#[tokio::test]
async fn get_data_fails_clearly() {
    let r = call(
        "get_data",
        json!({"source": "fstat", "query": "/etc/hosts"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert_eq!(
        r.message,
        format!(
            "unknown data source \"fstat\"; this node's data sources are {}",
            DATA_SOURCES.join(", ")
        )
    );
    let r = call("get_data", json!({"source": "fact"})).await;
    assert_eq!(r.status, StatusCode::MissingData);
    assert!(r.message.contains("needs a query"), "{}", r.message);
    let r = call("get_data", json!({"source": "agent", "query": "nope"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert_eq!(r.message, "no agent called nope on this node");
    let r = call(
        "get_data",
        json!({"source": "config_item", "query": "transport.password"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Aborted);
    // The DDL refuses a source that is not a word before anything runs.
    let r = call("get_data", json!({"source": "../x", "query": "y"})).await;
    assert_eq!(r.status, StatusCode::InvalidData);
}

#[tokio::test]
async fn inventory_daemon_stats_and_agent_inventory_carry_choria_s_outputs() {
    let r = call("inventory", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok);
    assert_eq!(r.data["main_collective"], "muster");
    assert_eq!(r.data["data_plugins"], json!(DATA_SOURCES));
    assert_eq!(r.data["upgradable"], false);
    assert_eq!(r.data["collectives"], json!(["muster"]));

    let r = call("daemon_stats", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok);
    assert_eq!(r.data["agents"], json!(["package", "rpcutil"]));
    assert_eq!(r.data["pid"], std::process::id());
    assert_eq!(r.data["version"], env!("CARGO_PKG_VERSION"));

    let r = call("agent_inventory", json!({})).await;
    let info = &r.data["agents"][0];
    for key in [
        "agent",
        "name",
        "description",
        "version",
        "author",
        "license",
        "url",
        "timeout",
        "actions",
    ] {
        assert!(
            info.get(key).is_some(),
            "agent_inventory lacks {key}: {info}"
        );
    }
    assert_eq!(info["name"], "rpcutil");
}

#[tokio::test]
async fn get_facts_takes_spaces_after_commas_as_choria_does() {
    let r = call("get_facts", json!({"facts": "role, os.family"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(
        r.data["values"],
        json!({"role": "web", "os.family": "RedHat"})
    );
    assert_eq!(
        call("get_facts", json!({"facts": "  "})).await.status,
        StatusCode::InvalidData
    );
}

/// Choria's rpcutil (go-choria's DDL): each action, its inputs with whether they are optional,
/// and its outputs. Choria's `daemon_stats` outputs `threads`, `times`, `validated`, `events`
/// and `configfile`, and `inventory`'s `machines`, have no counterpart in Muster.
const CHORIA: &[ChoriaAction] = &[
    ("agent_inventory", &[], &["agents"]),
    ("collective_info", &[], &["main_collective", "collectives"]),
    (
        "daemon_stats",
        &[],
        &[
            "agents",
            "pid",
            "unvalidated",
            "passed",
            "filtered",
            "starttime",
            "total",
            "replies",
            "version",
            "ttlexpired",
        ],
    ),
    ("get_config_item", &[("item", false)], &["item", "value"]),
    ("get_data", &[("source", false), ("query", true)], &[]),
    ("get_fact", &[("fact", false)], &["fact", "value"]),
    ("get_facts", &[("facts", false)], &["values"]),
    (
        "inventory",
        &[],
        &[
            "agents",
            "facts",
            "classes",
            "version",
            "main_collective",
            "collectives",
            "data_plugins",
            "upgradable",
        ],
    ),
    ("ping", &[], &["pong"]),
];

#[test]
fn the_ddl_is_a_superset_of_choria_s() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_superset(&ddl, CHORIA);
    let agent = Rpcutil::new().expect("rpcutil");
    assert_eq!(agent.ddl().action_names(), ddl.action_names());
}
