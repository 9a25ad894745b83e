//! The `service` agent through `dispatch`, against a stand-in `systemctl` written into a
//! temporary directory: it records each command line and answers `is-active` from a state file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use muster_agent::config::ServiceConfig;
use muster_agent::service::{DDL, Service};
use muster_agent::{Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};

use crate::support::{install_script, node_with};

/// A stand-in `systemctl` in a temporary directory.
struct Systemctl {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl Systemctl {
    /// `start`/`restart`/`reload` make the unit active, `stop` inactive; the file `fail` makes
    /// every action fail, `slow` makes actions hang, `broken` makes `is-active` fail to answer.
    async fn new() -> Systemctl {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let program = dir.path().join("systemctl");
        let body = format!(
            r#"printf '%s|' "$@" >> {d}/argv; echo >> {d}/argv
echo "$LC_ALL" > {d}/lc_all
case "$1" in
  is-active)
    if [ -f {d}/broken ]; then echo "Failed to connect to bus: No such file or directory" >&2; exit 1; fi
    state=$(cat {d}/state 2>/dev/null || echo inactive)
    echo "$state"
    [ "$state" = active ] && exit 0
    exit 3;;
esac
[ -f {d}/slow ] && exec sleep 30
if [ -f {d}/fail ]; then
  echo "Job for $2.service failed because the control process exited with error code." >&2
  exit 1
fi
case "$1" in
  start|restart|reload) echo active > {d}/state;;
  stop) echo inactive > {d}/state;;
esac
"#
        );
        install_script(&program, &body).await;
        Systemctl { dir, program }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&self, name: &str, content: &str) {
        std::fs::write(self.path(name), content).expect("write state");
    }

    /// The command lines run so far, `|`-separated arguments, and forgets them.
    fn take_argv(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("argv")).unwrap_or_default();
        let _ = std::fs::remove_file(self.path("argv"));
        text.lines().map(str::to_string).collect()
    }

    fn agent(&self) -> Service {
        Service::new(&ServiceConfig {
            systemctl: self.program.clone(),
        })
        .expect("service agent")
    }
}

async fn call(agent: &Service, action: &str, data: Value) -> muster_agent::ActionResult {
    dispatch(agent, &node_with(agent), action, &data).await
}

#[tokio::test]
async fn each_action_runs_systemctl_then_reads_the_state() {
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    // (action, state before, command lines, status, systemd_state)
    let table = [
        (
            "status",
            "inactive",
            vec!["is-active|nginx|"],
            "stopped",
            "inactive",
        ),
        (
            "status",
            "active",
            vec!["is-active|nginx|"],
            "running",
            "active",
        ),
        (
            "start",
            "inactive",
            vec!["start|nginx|", "is-active|nginx|"],
            "running",
            "active",
        ),
        (
            "stop",
            "active",
            vec!["stop|nginx|", "is-active|nginx|"],
            "stopped",
            "inactive",
        ),
        (
            "restart",
            "inactive",
            vec!["restart|nginx|", "is-active|nginx|"],
            "running",
            "active",
        ),
        (
            "reload",
            "active",
            vec!["reload|nginx|", "is-active|nginx|"],
            "running",
            "active",
        ),
    ];
    for (action, before, argv, status, word) in table {
        fake.set("state", before);
        let r = call(&agent, action, json!({"service": "nginx"})).await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        assert_eq!(fake.take_argv(), argv, "{action}");
        assert_eq!(
            r.data,
            json!({"status": status, "systemd_state": word}),
            "{action}"
        );
    }
    let lc_all = std::fs::read_to_string(fake.path("lc_all")).expect("lc_all");
    assert_eq!(lc_all.trim(), "C", "systemctl runs with LC_ALL=C");
}

#[tokio::test]
async fn unit_names_with_instances_and_suffixes_pass_through() {
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    for unit in [
        "getty@tty1.service",
        "nginx.service",
        "user-1000.slice",
        "a:b_c",
    ] {
        let r = call(&agent, "status", json!({ "service": unit })).await;
        assert_eq!(r.status, StatusCode::Ok, "{unit}: {}", r.message);
        assert_eq!(fake.take_argv(), [format!("is-active|{unit}|")]);
    }
}

#[tokio::test]
async fn is_active_words_map_to_a_status() {
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    let table = [
        ("failed", "stopped"),
        ("unknown", "stopped"),
        ("activating", "activating"),
        ("deactivating", "deactivating"),
    ];
    for (word, status) in table {
        fake.set("state", word);
        // is-active exits 3 for all of these: still an answer.
        let r = call(&agent, "status", json!({"service": "nginx"})).await;
        assert_eq!(r.status, StatusCode::Ok, "{word}: {}", r.message);
        assert_eq!(r.data["status"], status, "{word}");
        assert_eq!(r.data["systemd_state"], word);
    }
}

#[tokio::test]
async fn a_failing_action_is_aborted_and_still_reports_the_state() {
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    fake.set("state", "failed");
    fake.set("fail", "");
    for action in ["start", "stop", "restart", "reload"] {
        let r = call(&agent, action, json!({"service": "nginx"})).await;
        assert_eq!(r.status, StatusCode::Aborted, "{action}");
        let want = format!(
            "{action} nginx failed: exited with status 1: Job for nginx.service failed because \
             the control process exited with error code."
        );
        assert!(r.message.starts_with(&want), "{}", r.message);
        assert!(r.message.contains("journalctl -u nginx"), "{}", r.message);
        assert_eq!(
            r.data,
            json!({"status": "stopped", "systemd_state": "failed"})
        );
        assert_eq!(
            fake.take_argv(),
            [format!("{action}|nginx|"), "is-active|nginx|".to_string()]
        );
    }
}

#[tokio::test]
async fn an_unreadable_state_is_aborted_with_the_reason() {
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    fake.set("broken", "");
    let r = call(&agent, "status", json!({"service": "nginx"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message.starts_with(
            "cannot read the state of nginx: exited with status 1: Failed to connect to bus"
        ),
        "{}",
        r.message
    );

    // The action itself worked: the message says so.
    let r = call(&agent, "start", json!({"service": "nginx"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message
            .starts_with("start nginx succeeded, but its state cannot be read"),
        "{}",
        r.message
    );

    // A failing action whose state cannot be read either: no state in the reply.
    fake.set("fail", "");
    let r = call(&agent, "stop", json!({"service": "nginx"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(r.message.starts_with("stop nginx failed:"), "{}", r.message);
    assert_eq!(r.data, json!({}));
}

#[tokio::test]
async fn a_missing_systemctl_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Service::new(&ServiceConfig {
        systemctl: dir.path().join("no-such-systemctl"),
    })
    .expect("agent");
    let r = call(&agent, "status", json!({"service": "nginx"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(r.message.contains("no such file"), "{}", r.message);
    let r = call(&agent, "start", json!({"service": "nginx"})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message.starts_with("start nginx failed: cannot run"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn bad_inputs_are_refused_before_anything_runs() {
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    let long = "a".repeat(257);
    let table = [
        (
            json!({"service": "nginx;rm -rf /"}),
            StatusCode::InvalidData,
        ),
        (json!({"service": "nginx;rm"}), StatusCode::InvalidData),
        (json!({"service": "$(reboot)"}), StatusCode::InvalidData),
        (json!({"service": "a b"}), StatusCode::InvalidData),
        (json!({"service": "../x"}), StatusCode::InvalidData),
        // Not an option in disguise.
        (json!({"service": "--force"}), StatusCode::InvalidData),
        (json!({"service": "-H"}), StatusCode::InvalidData),
        (json!({"service": ""}), StatusCode::InvalidData),
        (json!({"service": long}), StatusCode::InvalidData),
        (json!({"service": 3}), StatusCode::InvalidData),
        (
            json!({"service": "nginx", "extra": 1}),
            StatusCode::InvalidData,
        ),
        (json!({}), StatusCode::MissingData),
    ];
    for action in ["status", "start"] {
        for (data, status) in &table {
            let r = call(&agent, action, data.clone()).await;
            assert_eq!(r.status, *status, "{action} {data}: {}", r.message);
            assert_eq!(
                r.status.code(),
                if *status == StatusCode::InvalidData {
                    4
                } else {
                    3
                }
            );
        }
    }
    assert!(fake.take_argv().is_empty(), "nothing ran");
    assert!(
        call(&agent, "status", json!({"service": "a".repeat(256)}))
            .await
            .status
            == StatusCode::Ok
    );
}

#[tokio::test]
async fn a_hung_systemctl_is_killed_within_the_budget() {
    let fake = Systemctl::new().await;
    let agent = fake
        .agent()
        .with_command_timeout(Duration::from_millis(400));
    fake.set("slow", "");
    let started = Instant::now();
    let r = call(&agent, "restart", json!({"service": "nginx"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message
            .starts_with("restart nginx failed: killed after timeout of"),
        "{}",
        r.message
    );
    // The whole budget went on the action: the state is not read afterwards.
    assert_eq!(fake.take_argv(), ["restart|nginx|"]);
}

#[test]
fn the_commands_get_the_ddl_timeout() {
    let ddl = Ddl::parse(DDL).expect("DDL");
    let agent = Service::new(&ServiceConfig::default()).expect("agent");
    assert_eq!(
        agent.command_timeout(),
        Duration::from_secs(ddl.metadata.timeout)
    );
    assert_eq!(
        agent
            .with_command_timeout(Duration::from_millis(300))
            .command_timeout(),
        Duration::from_millis(300)
    );
}

#[tokio::test]
async fn the_ddl_parses_and_every_action_in_it_is_handled() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_eq!(ddl.metadata.name, "service");
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    assert_eq!(agent.ddl().action_names(), ddl.action_names());
    for action in ddl.action_names() {
        let r = call(&agent, action, json!({"service": "nginx"})).await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        let described = ddl.action(action).expect("described");
        for key in r.data.as_object().expect("object").keys() {
            assert!(described.output.contains_key(key), "{action} output {key}");
        }
        assert!(
            described
                .aggregate
                .iter()
                .any(|a| a.function == "summary" && a.output() == Some("status")),
            "{action} summarises status"
        );
    }
    let r = call(&agent, "frobnicate", json!({"service": "nginx"})).await;
    assert_eq!(r.status, StatusCode::UnknownAction);
}

/// Choria's service agent (service.json of choria-plugins/service-agent 4.1.0): every action
/// takes the required input `service`, replies `status` (default `unknown`), summarised; the
/// display of each is Choria's. Every name Choria's `service_name` validator takes is taken, but
/// for one starting with `-`, which a command line would read as an option.
#[tokio::test]
async fn the_ddl_is_a_superset_of_choria_s() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    let choria = [
        ("restart", "failed"),
        ("start", "failed"),
        ("status", "always"),
        ("stop", "failed"),
    ];
    for (action, display) in choria {
        let ours = ddl.action(action).unwrap_or_else(|| panic!("{action}"));
        let input = &ours.input["service"];
        assert!(!input.optional, "{action}");
        assert!(input.maxlength.is_some_and(|m| m >= 90), "{action}");
        let status = &ours.output["status"];
        assert_eq!(status.display_as, "Service Status", "{action}");
        assert_eq!(status.default, Some(json!("unknown")), "{action}");
        assert_eq!(
            serde_json::to_value(ours.display).expect("display"),
            json!(display),
            "{action}"
        );
        for aggregate in &ours.aggregate {
            assert_eq!(aggregate.function, "summary", "{action}");
        }
    }
    let fake = Systemctl::new().await;
    let agent = fake.agent();
    for name in [
        "nginx",
        "getty@tty1",
        "a.b_c:d",
        "9x",
        "_x",
        ".x",
        ":x",
        "@x",
    ] {
        let r = call(&agent, "status", json!({ "service": name })).await;
        assert_eq!(r.status, StatusCode::Ok, "{name}: {}", r.message);
    }
    let r = call(&agent, "status", json!({"service": "-x"})).await;
    assert_eq!(r.status, StatusCode::InvalidData);
}
