//! The `shell` agent, called through `dispatch` (so the DDL validates the inputs) against real
//! processes run by `/bin/sh`.

use std::path::PathBuf;
use std::time::Duration;

use muster_agent::config::ShellConfig;
use muster_agent::shell::{DDL, Shell};
use muster_agent::{ActionResult, Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{gone, node, read_pid, wait_for};

fn agent() -> Shell {
    Shell::new(&ShellConfig {
        enabled: true,
        shell: PathBuf::from("/bin/sh"),
    })
    .expect("the shipped DDL loads")
}

async fn run(data: Value) -> ActionResult {
    dispatch(&agent(), &node(), "run", &data).await
}

#[test]
fn the_ddl_parses_and_every_action_is_handled() {
    let ddl = Ddl::parse(DDL).expect("shell.json parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_eq!(ddl.metadata.name, "shell");
    let shell = agent();
    assert_eq!(shell.ddl().action_names(), ddl.action_names());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for action in ddl.action_names() {
        let r = rt.block_on(dispatch(
            &shell,
            &node(),
            action,
            &json!({"command": "true"}),
        ));
        assert_ne!(r.status, StatusCode::UnknownAction, "{action}: {r:?}");
    }
    // The largest timeout `run` accepts fits in the agent's timeout, with room to kill.
    assert!(ddl.metadata.timeout >= 3500 + 10);
}

#[tokio::test]
async fn a_command_that_succeeds_reports_its_output() {
    let r = run(json!({"command": "echo hello; echo to stderr >&2"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["stdout"], "hello\n");
    assert_eq!(r.data["stderr"], "to stderr\n");
    assert_eq!(r.data["exitcode"], 0);
    assert_eq!(r.data["timed_out"], false);
    assert!(r.data["duration_ms"].is_u64(), "{r:?}");
}

#[tokio::test]
async fn standard_input_is_empty() {
    let r = run(json!({"command": "cat; echo done"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["stdout"], "done\n");
}

#[tokio::test]
async fn a_non_zero_exit_is_aborted_with_the_last_line_and_all_outputs() {
    let r =
        run(json!({"command": "echo partial; echo first >&2; echo disk full >&2; exit 3"})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert_eq!(r.message, "exited with status 3: disk full");
    assert_eq!(r.data["exitcode"], 3);
    assert_eq!(r.data["stdout"], "partial\n");
    assert_eq!(r.data["stderr"], "first\ndisk full\n");
    assert_eq!(r.data["timed_out"], false);
}

#[tokio::test]
async fn a_command_killed_by_a_signal_reports_exitcode_minus_one() {
    let r = run(json!({"command": "kill -9 $$"})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("killed by signal 9"), "{}", r.message);
    assert_eq!(r.data["exitcode"], -1);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let command = format!(
        "sleep 60 & echo $! > {p}.tmp && mv {p}.tmp {p}; echo started; wait",
        p = pidfile.display()
    );
    let start = Instant::now();
    let r = run(json!({"command": command, "timeout": 1})).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert_eq!(
        r.message,
        "timed out after 1s; the command's process group was killed (give a longer timeout, \
         up to 3500s, if it needs more time)"
    );
    assert_eq!(r.data["timed_out"], true);
    assert_eq!(r.data["exitcode"], -1);
    assert_eq!(r.data["stdout"], "started\n");
    let grandchild = read_pid(&pidfile);
    assert!(
        wait_for(Duration::from_secs(5), || gone(grandchild)).await,
        "the backgrounded sleep {grandchild} survived the timeout"
    );
}

#[tokio::test]
async fn the_timeout_input_is_checked() {
    let cases = [
        (
            json!({"command": "true", "timeout": 3501}),
            StatusCode::InvalidData,
        ),
        (
            json!({"command": "true", "timeout": 0}),
            StatusCode::InvalidData,
        ),
        (
            json!({"command": "true", "timeout": -5}),
            StatusCode::InvalidData,
        ),
        (
            json!({"command": "true", "timeout": "10"}),
            StatusCode::InvalidData,
        ),
        (
            json!({"command": "true", "timeout": 1.5}),
            StatusCode::InvalidData,
        ),
        (json!({"command": "true", "timeout": 3500}), StatusCode::Ok),
        (json!({"command": "true"}), StatusCode::Ok),
    ];
    for (data, status) in cases {
        let r = run(data.clone()).await;
        assert_eq!(r.status, status, "{data}: {r:?}");
    }
    let r = run(json!({"command": "true", "timeout": 3501})).await;
    assert!(
        r.message.contains("between 1 and 3500 seconds"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn the_command_input_is_checked() {
    let r = run(json!({})).await;
    assert_eq!(r.status, StatusCode::MissingData, "{r:?}");
    let r = run(json!({"command": ""})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    let r = run(json!({"command": "x".repeat(10_001)})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    // Shell metacharacters are the point of a shell.
    let r = run(json!({"command": "echo $((1+2)) | cat; true && echo `echo yes`"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["stdout"], "3\nyes\n");
}

#[tokio::test]
async fn a_missing_shell_is_aborted_and_names_the_setting() {
    let shell = Shell::new(&ShellConfig {
        enabled: true,
        shell: PathBuf::from("/nonexistent/muster-test-sh"),
    })
    .expect("DDL");
    let r = dispatch(&shell, &node(), "run", &json!({"command": "true"})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(
        r.message.contains("/nonexistent/muster-test-sh"),
        "{}",
        r.message
    );
    assert!(r.message.contains("[agents.shell] shell"), "{}", r.message);
}
