//! The `cm` agent, called through `dispatch`, against a stand-in for Puppet: a `/bin/sh` script
//! in a temporary directory that records its arguments (run as `/bin/sh SCRIPT ARGS…`, so the
//! script is never executed while another test thread holds it open for writing).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use muster_agent::cm::{Cm, DDL};
use muster_agent::config::CmConfig;
use muster_agent::{ActionResult, Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::node;

const PUPPET_YAML: &str = r#"---
version: {config: "1764070000", puppet: "8.10.0"}
resources: {changed: 2, corrective_change: 0, failed: 0, failed_to_restart: 0, out_of_sync: 2, restarted: 0, scheduled: 0, skipped: 0, total: 412}
time: {catalog_application: 3.1, config_retrieval: 1.2, last_run: 1764070123, total: 5.4}
changes: {total: 2}
events: {failure: 0, success: 2, total: 2}
"#;

const FAILED_JSON: &str = r#"{
  "version": {"config": 1764080000, "puppet": "8.10.0"},
  "resources": {"changed": 1, "failed": 3, "total": 99},
  "time": {"last_run": 1764080123},
  "events": {"failure": 3, "success": 1, "total": 4}
}"#;

/// A stand-in Puppet: records its arguments to `argv`, prints some output, exits with `code`.
struct StandIn {
    dir: TempDir,
}

impl StandIn {
    fn new(code: i32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "printf '%s\\n' \"$@\" > '{argv}'\n\
             echo 'Notice: Applied catalog in 0.01 seconds'\n\
             echo 'Warning: something to stderr' >&2\n\
             exit {code}\n",
            argv = dir.path().join("argv").display()
        );
        std::fs::write(dir.path().join("puppet.sh"), script).expect("write stand-in");
        StandIn { dir }
    }

    fn script(&self) -> String {
        self.dir.path().join("puppet.sh").display().to_string()
    }

    fn summary_path(&self) -> PathBuf {
        self.dir.path().join("last_run_summary.yaml")
    }

    /// The configuration: `/bin/sh <script> <args…>`, the summary in the temp dir.
    fn config(&self, args: &[&str]) -> CmConfig {
        let mut command = vec!["/bin/sh".to_string(), self.script()];
        command.extend(args.iter().map(|a| a.to_string()));
        CmConfig {
            command,
            summary_file: Some(self.summary_path()),
            max_splay: Duration::from_secs(300),
        }
    }

    /// The arguments the stand-in was run with, if it ran.
    fn argv(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("argv")).ok()?;
        Some(text.lines().map(String::from).collect())
    }
}

async fn call(config: &CmConfig, action: &str, data: Value) -> ActionResult {
    let cm = Cm::new(config).expect("the shipped DDL loads");
    dispatch(&cm, &node(), action, &data).await
}

fn now() -> i64 {
    muster_proto::time::whole_secs(muster_proto::time::now()) as i64
}

#[test]
fn the_ddl_parses_and_every_action_is_handled() {
    let ddl = Ddl::parse(DDL).expect("cm.json parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_eq!(ddl.metadata.name, "cm");
    let stand_in = StandIn::new(0);
    let cm = Cm::new(&stand_in.config(&[])).expect("DDL");
    assert_eq!(cm.ddl().action_names(), ddl.action_names());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for action in ddl.action_names() {
        let r = rt.block_on(dispatch(&cm, &node(), action, &json!({})));
        assert_ne!(r.status, StatusCode::UnknownAction, "{action}: {r:?}");
    }
}

#[tokio::test]
async fn runonce_runs_exactly_the_configured_command() {
    let stand_in = StandIn::new(0);
    let args = [
        "agent",
        "--onetime",
        "--no-daemonize",
        "an argument with spaces",
        "$HOME",
    ];
    let r = call(&stand_in.config(&args), "runonce", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(stand_in.argv().expect("it ran"), args);
    assert_eq!(r.data["exitcode"], 0);
    assert_eq!(r.data["splayed_ms"], 0);
    assert_eq!(
        r.data["output"],
        "Notice: Applied catalog in 0.01 seconds\nWarning: something to stderr"
    );
    // No summary file: the summary's outputs get their (null) defaults.
    assert_eq!(r.data["failed"], Value::Null);
}

#[tokio::test]
async fn runonce_reports_the_last_run_summary_when_there_is_one() {
    let stand_in = StandIn::new(0);
    std::fs::write(stand_in.summary_path(), PUPPET_YAML).expect("write summary");
    let r = call(&stand_in.config(&[]), "runonce", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["config_version"], "1764070000");
    assert_eq!(r.data["changed"], 2);
    assert_eq!(r.data["failed"], 0);
    assert_eq!(r.data["total"], 412);
    assert_eq!(r.data["healthy"], true);
}

#[tokio::test]
async fn runonce_keeps_the_last_50_lines_of_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = CmConfig {
        command: ["/bin/sh", "-c", "seq 1 200"].map(String::from).to_vec(),
        summary_file: Some(dir.path().join("none.yaml")),
        max_splay: Duration::from_secs(300),
    };
    let r = call(&config, "runonce", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    let output = r.data["output"].as_str().expect("output");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[0], "151");
    assert_eq!(lines[49], "200");
}

#[tokio::test]
async fn splay_with_a_zero_limit_does_not_wait() {
    let stand_in = StandIn::new(0);
    let start = Instant::now();
    let r = call(
        &stand_in.config(&[]),
        "runonce",
        json!({"splay": true, "splaylimit": 0}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["splayed_ms"], 0);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(stand_in.argv().is_some());
}

#[tokio::test]
async fn splay_is_capped_by_max_splay() {
    let stand_in = StandIn::new(0);
    let mut config = stand_in.config(&[]);
    config.max_splay = Duration::ZERO;
    let start = Instant::now();
    let r = call(
        &config,
        "runonce",
        json!({"splay": true, "splaylimit": 600}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["splayed_ms"], 0);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // A one-second limit waits somewhere in [0, 1 s], and says how long.
    config.max_splay = Duration::from_secs(300);
    let start = Instant::now();
    let r = call(&config, "runonce", json!({"splay": true, "splaylimit": 1})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    let splayed = r.data["splayed_ms"].as_u64().expect("splayed_ms");
    assert!(splayed <= 1000, "{splayed}");
    assert!(start.elapsed() >= Duration::from_millis(splayed));
}

#[tokio::test]
async fn splay_inputs_are_checked() {
    let stand_in = StandIn::new(0);
    let config = stand_in.config(&[]);
    for data in [
        json!({"splay": "yes"}),
        json!({"splaylimit": -1}),
        json!({"splaylimit": "10"}),
        json!({"force": true}),
    ] {
        let r = call(&config, "runonce", data.clone()).await;
        assert_eq!(r.status, StatusCode::InvalidData, "{data}: {r:?}");
    }
    assert!(stand_in.argv().is_none(), "nothing ran");
}

#[tokio::test]
async fn a_failed_run_is_aborted_with_its_output() {
    let stand_in = StandIn::new(1);
    let r = call(
        &stand_in.config(&["agent", "--onetime"]),
        "runonce",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(
        r.message
            .contains("exited with status 1: Warning: something to stderr"),
        "{}",
        r.message
    );
    assert!(r.message.contains("agent --onetime"), "{}", r.message);
    assert_eq!(r.data["exitcode"], 1);
    assert!(
        r.data["output"]
            .as_str()
            .expect("output")
            .contains("Applied catalog")
    );
}

#[tokio::test]
async fn detailed_exitcodes_make_2_a_success() {
    let table: &[(i32, &[&str], StatusCode)] = &[
        (2, &["agent", "--detailed-exitcodes"], StatusCode::Ok),
        (0, &["agent", "--detailed-exitcodes"], StatusCode::Ok),
        (4, &["agent", "--detailed-exitcodes"], StatusCode::Aborted),
        (6, &["agent", "--detailed-exitcodes"], StatusCode::Aborted),
        (2, &["agent"], StatusCode::Aborted),
    ];
    for (code, args, status) in table {
        let stand_in = StandIn::new(*code);
        let r = call(&stand_in.config(args), "runonce", json!({})).await;
        assert_eq!(r.status, *status, "exit {code} with {args:?}: {r:?}");
        assert_eq!(r.data["exitcode"], *code);
    }
}

#[tokio::test]
async fn a_missing_or_empty_command_is_aborted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = CmConfig {
        command: vec![dir.path().join("no-such-puppet").display().to_string()],
        summary_file: None,
        max_splay: Duration::from_secs(300),
    };
    let r = call(&config, "runonce", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("no-such-puppet"), "{}", r.message);
    assert!(r.message.contains("[agents.cm] command"), "{}", r.message);

    config.command.clear();
    let r = call(&config, "runonce", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("[agents.cm] command"), "{}", r.message);
}

#[tokio::test]
async fn last_run_summary_reads_puppets_yaml() {
    let stand_in = StandIn::new(0);
    std::fs::write(stand_in.summary_path(), PUPPET_YAML).expect("write summary");
    let r = call(&stand_in.config(&[]), "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["last_run"], 1764070123);
    let age = r.data["age_seconds"].as_i64().expect("age_seconds");
    assert!((age - (now() - 1764070123)).abs() <= 5, "{age}");
    assert_eq!(r.data["config_version"], "1764070000");
    assert_eq!(r.data["changed"], 2);
    assert_eq!(r.data["failed"], 0);
    assert_eq!(r.data["total"], 412);
    assert_eq!(r.data["failures"], 0);
    assert_eq!(r.data["healthy"], true);
    assert_eq!(r.data["summary"]["time"]["catalog_application"], 3.1);
    assert_eq!(r.data["summary"]["version"]["puppet"], "8.10.0");
    assert!(
        stand_in.argv().is_none(),
        "reading the summary runs nothing"
    );
}

#[tokio::test]
async fn last_run_summary_reads_json_and_reports_failures() {
    let stand_in = StandIn::new(0);
    std::fs::write(stand_in.summary_path(), FAILED_JSON).expect("write summary");
    let r = call(&stand_in.config(&[]), "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["last_run"], 1764080123);
    assert_eq!(r.data["config_version"], "1764080000");
    assert_eq!(r.data["failed"], 3);
    assert_eq!(r.data["failures"], 3);
    assert_eq!(r.data["total"], 99);
    assert_eq!(r.data["healthy"], false);
}

#[tokio::test]
async fn a_partial_summary_gives_nulls() {
    let stand_in = StandIn::new(0);
    std::fs::write(stand_in.summary_path(), "version: {puppet: 8.10.0}\n").expect("write");
    let r = call(&stand_in.config(&[]), "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    for key in [
        "last_run",
        "age_seconds",
        "config_version",
        "failed",
        "total",
    ] {
        assert_eq!(r.data[key], Value::Null, "{key}");
    }
}

#[tokio::test]
async fn last_run_summary_problems_say_what_to_do() {
    let stand_in = StandIn::new(0);
    let config = stand_in.config(&[]);
    let r = call(&config, "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    let path = stand_in.summary_path().display().to_string();
    assert!(
        r.message.starts_with(&format!(
            "no last run summary at {path}: configure [agents.cm] summary_file"
        )),
        "{}",
        r.message
    );

    std::fs::write(stand_in.summary_path(), "- just\n- a list\n").expect("write");
    let r = call(&config, "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("cannot parse"), "{}", r.message);

    std::fs::write(stand_in.summary_path(), "version: [unclosed\n").expect("write");
    let r = call(&config, "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("cannot parse"), "{}", r.message);

    let none = CmConfig {
        summary_file: None,
        ..config
    };
    let r = call(&none, "last_run_summary", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(r.message.contains("summary_file"), "{}", r.message);
}
