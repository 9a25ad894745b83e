//! Choria's real agent DDLs (`muster_testkit::choria`: the choria-plugins agents and
//! go-choria's own) load as external agents, validate as Choria does, and serve every action
//! through a stand-in executable.

use std::collections::BTreeSet;

use muster_agent::external::load_directory;
use muster_agent::{Agent, dispatch};
use muster_proto::StatusCode;
use muster_testkit::choria;
use serde_json::{Value, json};

use crate::support::{install_script, node_with};

/// Installs every agent in a fresh directory, each stand-in ready to run.
async fn installed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for agent in choria::AGENTS {
        std::fs::write(
            dir.path().join(format!("{agent}.json")),
            choria::ddl_text(agent).unwrap(),
        )
        .unwrap();
        install_script(
            &dir.path().join(agent),
            &choria::standin_body(agent).unwrap(),
        )
        .await;
    }
    dir
}

#[test]
fn every_ddl_loads_without_a_warning() {
    for agent in choria::AGENTS {
        let ddl = choria::ddl(agent).unwrap();
        assert_eq!(ddl.metadata.name, *agent);
        assert!(ddl.warnings.is_empty(), "{agent}: {:?}", ddl.warnings);
        for action in &ddl.actions {
            for aggregate in &action.aggregate {
                assert!(
                    aggregate.computed(action),
                    "{agent} {}: {} is not computed",
                    action.action,
                    aggregate.function
                );
            }
        }
    }
}

#[tokio::test]
async fn every_agent_serves_every_action_through_a_standin() {
    let dir = installed().await;
    let built_in: Vec<String> = choria::BUILT_IN.iter().map(|s| s.to_string()).collect();
    // Named like built-ins, four are refused unless `replace` names them.
    let (agents, errors) = load_directory(dir.path(), &built_in, &[]);
    assert_eq!(agents.len(), choria::AGENTS.len() - built_in.len());
    let refused: BTreeSet<String> = errors
        .iter()
        .map(|e| e.file.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(refused, built_in.iter().cloned().collect());
    assert!(
        errors.iter().all(|e| e.message.contains("replace = [")),
        "{errors:?}"
    );

    let (agents, errors) = load_directory(dir.path(), &built_in, &built_in);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(agents.len(), choria::AGENTS.len());
    let mut served = 0;
    for agent in &agents {
        let node = node_with(agent);
        for action in &agent.ddl().actions {
            let inputs = choria::sample_inputs(action);
            let r = dispatch(agent, &node, &action.action, &Value::Object(inputs.clone())).await;
            assert_eq!(
                r.status,
                StatusCode::Ok,
                "{} {}: {r:?}",
                agent.name(),
                action.action
            );
            for output in action.output.keys() {
                assert!(
                    r.data.get(output).is_some(),
                    "{} {}: no {output} in {:?}",
                    agent.name(),
                    action.action,
                    r.data
                );
            }
            // The stand-in got the inputs, defaults filled in, as the node validated them.
            let seen = choria::request_seen(agent.program(), &action.action).unwrap();
            for (name, value) in &inputs {
                assert_eq!(
                    &seen["data"][name],
                    value,
                    "{} {}",
                    agent.name(),
                    action.action
                );
            }
            served += 1;
        }
    }
    // The 15 DDLs describe this many actions between them.
    assert_eq!(served, 70);
}

/// An input whose DDL names a validator never reaches the agent with a shell expansion in it,
/// whether the validator is one Muster knows (puppet's `puppet_tags`) or not.
#[tokio::test]
async fn a_shell_expansion_never_reaches_an_agent_whose_ddl_names_a_validator() {
    let dir = installed().await;
    let (agents, _) = load_directory(dir.path(), &[], &[]);
    let puppet = agents.iter().find(|a| a.name() == "puppet").unwrap();
    let node = node_with(puppet);
    let r = dispatch(puppet, &node, "runonce", &json!({"tags": "$(reboot)"})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    assert!(r.message.contains("tags"), "{r:?}");
    assert!(choria::request_seen(puppet.program(), "runonce").is_none());
    let r = dispatch(
        puppet,
        &node,
        "runonce",
        &json!({"tags": "apache,ntp::server"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");

    let service = agents.iter().find(|a| a.name() == "service").unwrap();
    let r = dispatch(
        service,
        &node_with(service),
        "restart",
        &json!({"service": "nginx;reboot"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    assert!(r.message.contains("not a valid service name"), "{r:?}");
    assert!(choria::request_seen(service.program(), "restart").is_none());
}
