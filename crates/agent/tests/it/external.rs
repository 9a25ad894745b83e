//! External agents: loading from a directory, the request/reply protocol, and every way an
//! executable can fail.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster_agent::external::{ExternalAgent, load_directory};
use muster_agent::{Agent, AgentInfo, Inventory, NodeContext, dispatch};
use muster_proto::StatusCode;
use serde_json::{Value, json};

use crate::support::{gone, install_script, read_pid, wait_for};

fn node() -> NodeContext {
    NodeContext {
        inventory: Arc::new(Inventory {
            identity: "web1".into(),
            facts: json!({"role": "web"}),
            classes: vec![],
            agents: vec![],
            collectives: vec!["muster".into()],
        }),
        agents: Arc::new(vec![]),
        request_id: "0123456789abcdef0123456789abcdef".into(),
        caller: "alice".into(),
        ..NodeContext::standalone(Inventory::default())
    }
}

fn ddl(name: &str, timeout: u64) -> String {
    json!({
        "metadata": {"name": name, "description": "test agent", "version": "1.0.0", "timeout": timeout},
        "actions": [{"action": "go", "description": "d",
                     "input": {"word": {"type": "string", "validation": "^[a-z]+$", "maxlength": 20, "optional": true, "default": "hi"}},
                     "output": {"said": {"display_as": "Said", "default": "nothing"}}}]
    })
    .to_string()
}

/// Writes the agent `name`: an executable running `script`, ready to run, and its DDL.
async fn write_agent(dir: &Path, name: &str, script: &str, timeout: u64) {
    install_script(&dir.join(name), &format!("{script}\n")).await;
    std::fs::write(dir.join(format!("{name}.json")), ddl(name, timeout)).unwrap();
}

fn load(dir: &Path, name: &str) -> ExternalAgent {
    let (agents, errors) = load_directory(dir, &[], &[]);
    assert!(errors.is_empty(), "{errors:?}");
    agents.into_iter().find(|a| a.name() == name).unwrap()
}

async fn go(agent: &ExternalAgent, data: Value) -> muster_agent::ActionResult {
    dispatch(agent, &node(), "go", &data).await
}

#[tokio::test]
async fn the_request_arrives_on_stdin_and_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("request.json");
    write_agent(
        dir.path(),
        "echoer",
        &format!(
            "cat > {out}\nprintf '{{\"data\":{{\"said\":\"%s %s %s %s\"}}}}' \"$MUSTER_INPUT_WORD\" \"$MUSTER_ACTION\" \"$MUSTER_CALLER\" \"$MUSTER_IDENTITY\"",
            out = out.display()
        ),
        10,
    )
    .await;
    let agent = load(dir.path(), "echoer");
    let r = go(&agent, json!({"word": "hello"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["said"], "hello go alice web1");
    let request: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(request["protocol"], "muster:external:request:1");
    assert_eq!(request["agent"], "echoer");
    assert_eq!(request["action"], "go");
    assert_eq!(request["data"], json!({"word": "hello"}));
    assert_eq!(request["request_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(request["facts"]["role"], "web");
    // Defaults from the DDL are applied before the agent runs, and outputs it leaves unset
    // get theirs after.
    let dir2 = tempfile::tempdir().unwrap();
    write_agent(dir2.path(), "quiet", "printf '{}'", 10).await;
    let r = go(&load(dir2.path(), "quiet"), json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["said"], "nothing");
}

#[tokio::test]
async fn every_failure_is_a_reply_that_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        (
            "crasher",
            "kill -9 $$",
            StatusCode::Aborted,
            "killed by signal 9",
        ),
        (
            "exiter",
            "echo 'disk on fire' >&2; exit 3",
            StatusCode::Aborted,
            "exited with status 3: disk on fire",
        ),
        (
            "garbler",
            "echo 'this is not json'",
            StatusCode::Aborted,
            "not a JSON reply",
        ),
        (
            "lister",
            "echo '[1, 2]'",
            StatusCode::Aborted,
            "not a JSON object",
        ),
        (
            "badcode",
            "echo '{\"statuscode\": 9}'",
            StatusCode::Aborted,
            "invalid statuscode 9",
        ),
        (
            "baddata",
            "echo '{\"data\": [1]}'",
            StatusCode::Aborted,
            "must be a JSON object",
        ),
        (
            "refuser",
            "echo '{\"statuscode\": 4, \"statusmsg\": \"no such widget\"}'",
            StatusCode::InvalidData,
            "no such widget",
        ),
    ];
    for (name, script, _, _) in cases {
        write_agent(dir.path(), name, script, 10).await;
    }
    for (name, _, status, needle) in cases {
        let r = go(&load(dir.path(), name), json!({})).await;
        assert_eq!(r.status, *status, "{name}: {r:?}");
        assert!(r.message.contains(needle), "{name}: {r:?}");
    }
    // The node's own validation runs before the program: nothing runs on bad input.
    let r = go(&load(dir.path(), "crasher"), json!({"word": "NOT; lower"})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
}

#[tokio::test]
async fn an_agent_that_overruns_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    write_agent(
        dir.path(),
        "sleeper",
        &format!("sleep 60 & echo $! > {}\nwait", pidfile.display()),
        1,
    )
    .await;
    let started = Instant::now();
    let r = go(&load(dir.path(), "sleeper"), json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("timed out after 1s"), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let pid = read_pid(&pidfile);
    assert!(
        wait_for(Duration::from_secs(5), || gone(pid)).await,
        "the grandchild {pid} survived"
    );
}

#[tokio::test]
async fn broken_agents_are_refused_with_the_file_and_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_agent(d, "good", "echo '{}'", 10).await;
    std::fs::write(
        d.join("broken.json"),
        r#"{"metadata": {"name": "broken"}, "actions": []}"#,
    )
    .unwrap();
    std::fs::write(d.join("broken"), "#!/bin/sh\n").unwrap();
    std::fs::write(d.join("mismatch.json"), ddl("other", 10)).unwrap();
    std::fs::write(d.join("noexe.json"), ddl("noexe", 10)).unwrap();
    std::fs::write(d.join("plain.json"), ddl("plain", 10)).unwrap();
    std::fs::write(d.join("plain"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(d.join("plain"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(d.join("rpcutil.json"), ddl("rpcutil", 10)).unwrap();
    let (agents, errors) = load_directory(d, &["rpcutil".to_string()], &[]);
    assert_eq!(
        agents.iter().map(|a| a.name()).collect::<Vec<_>>(),
        ["good"]
    );
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let expect = [
        ("broken.json", "at metadata: missing field `description`"),
        ("mismatch.json", "the DDL names agent \"other\""),
        ("noexe.json", "no executable"),
        ("plain.json", "not an executable file (chmod +x it)"),
        (
            "rpcutil.json",
            "is built in, so this external agent is not loaded; to run it in place of the built-in, name it under [agents] in server.toml: replace = [\"rpcutil\"]",
        ),
    ];
    assert_eq!(errors.len(), expect.len(), "{messages:#?}");
    for (file, needle) in expect {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(file) && m.contains(needle)),
            "{file}: {needle} not in {messages:#?}"
        );
    }
    // Named in `replace`, the external agent of a built-in's name loads.
    install_script(&d.join("rpcutil"), "echo '{}'\n").await;
    let (agents, _) = load_directory(d, &["rpcutil".to_string()], &["rpcutil".to_string()]);
    let mut names: Vec<&str> = agents.iter().map(|a| a.name()).collect();
    names.sort();
    assert_eq!(names, ["good", "rpcutil"]);
    let (_, errors) = load_directory(&d.join("missing"), &[], &[]);
    assert!(
        errors[0]
            .to_string()
            .contains("cannot read the agents directory")
    );
}

#[test]
fn the_shipped_examples_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
    let (agents, errors) = load_directory(&dir, &["rpcutil".to_string()], &[]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut names: Vec<&str> = agents.iter().map(|a| a.name()).collect();
    names.sort();
    assert_eq!(names, ["disk", "greeter"]);
    // `rpcutil agent_inventory` lists an external agent's actions from its DDL, as it does a
    // built-in agent's.
    let greeter = agents.iter().find(|a| a.name() == "greeter").unwrap();
    let info = AgentInfo::of(greeter);
    assert_eq!(info.actions, greeter.ddl().action_names());
    assert!(!info.actions.is_empty());
}
