//! The `health` agent, called through `dispatch`, against stand-in Nagios plugins (`/bin/sh -c
//! SCRIPT`), and its performance-data parser.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use muster_agent::config::{DEFAULT_CHECK_TIMEOUT, HealthCheck, HealthConfig};
use muster_agent::health::{DDL, Health, Metric, parse_perfdata};
use muster_agent::{ActionResult, Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};

use crate::support::node;

/// A plugin that runs `script` with `/bin/sh -c`.
fn plugin(script: &str) -> HealthCheck {
    HealthCheck {
        command: ["/bin/sh", "-c", script].map(String::from).to_vec(),
        timeout: DEFAULT_CHECK_TIMEOUT,
    }
}

fn agent(checks: &[(&str, HealthCheck)]) -> Health {
    let checks: BTreeMap<String, HealthCheck> = checks
        .iter()
        .map(|(name, check)| (name.to_string(), check.clone()))
        .collect();
    Health::new(&HealthConfig { checks }).expect("the shipped DDL loads")
}

async fn call(health: &Health, action: &str, data: Value) -> ActionResult {
    dispatch(health, &node(), action, &data).await
}

#[test]
fn the_ddl_parses_and_every_action_is_handled() {
    let ddl = Ddl::parse(DDL).expect("health.json parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_eq!(ddl.metadata.name, "health");
    let health = agent(&[("ok", plugin("echo fine"))]);
    assert_eq!(health.ddl().action_names(), ddl.action_names());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for action in ddl.action_names() {
        let data = if action == "check" {
            json!({"check": "ok"})
        } else {
            json!({})
        };
        let r = rt.block_on(dispatch(&health, &node(), action, &data));
        assert_ne!(r.status, StatusCode::UnknownAction, "{action}: {r:?}");
    }
}

#[test]
fn a_check_timeout_defaults_to_30s_and_can_be_set() {
    let config: HealthConfig = serde_json::from_value(json!({
        "checks": {
            "disk": {"command": ["check_disk", "-w", "20%"]},
            "load": {"command": ["check_load"], "timeout": "5s"},
        }
    }))
    .expect("parses");
    assert_eq!(config.checks["disk"].timeout, Duration::from_secs(30));
    assert_eq!(config.checks["load"].timeout, Duration::from_secs(5));
}

#[tokio::test]
async fn exit_codes_map_to_nagios_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("check_nothing").display().to_string();
    let timing_out = HealthCheck {
        timeout: Duration::from_millis(300),
        ..plugin("echo 'SLOW OK'; sleep 30")
    };
    // (plugin, status, exitcode, message, perfdata)
    let table: Vec<(HealthCheck, &str, i64, &str, &str)> = vec![
        (
            plugin("echo 'LOAD OK - load average: 0.50|load1=0.5;1;2;0;'; exit 0"),
            "OK",
            0,
            "LOAD OK - load average: 0.50",
            "load1=0.5;1;2;0;",
        ),
        (
            plugin("echo 'DISK WARNING - free space: / 15%|/=85%;80;90'; exit 1"),
            "WARNING",
            1,
            "DISK WARNING - free space: / 15%",
            "/=85%;80;90",
        ),
        (
            plugin("echo 'PROCS CRITICAL: 0 processes'; exit 2"),
            "CRITICAL",
            2,
            "PROCS CRITICAL: 0 processes",
            "",
        ),
        (
            plugin("echo 'UNKNOWN - bad arguments'; exit 3"),
            "UNKNOWN",
            3,
            "UNKNOWN - bad arguments",
            "",
        ),
        (plugin("echo 'weird'; exit 42"), "UNKNOWN", 42, "weird", ""),
        (
            plugin("echo 'no plugin here' >&2; exit 2"),
            "CRITICAL",
            2,
            "no plugin here",
            "",
        ),
        (
            plugin("exit 1"),
            "WARNING",
            1,
            "(no output; exited with status 1)",
            "",
        ),
        (
            HealthCheck {
                command: vec![missing.clone()],
                timeout: DEFAULT_CHECK_TIMEOUT,
            },
            "UNKNOWN",
            -1,
            "cannot run",
            "",
        ),
        (
            plugin("kill -9 $$"),
            "UNKNOWN",
            -1,
            "killed by signal 9",
            "",
        ),
        (timing_out, "UNKNOWN", -1, "timed out after 0.3s", ""),
        (
            HealthCheck {
                command: Vec::new(),
                timeout: DEFAULT_CHECK_TIMEOUT,
            },
            "UNKNOWN",
            -1,
            "has no command",
            "",
        ),
    ];
    for (check, status, exitcode, message, perfdata) in table {
        let what = format!("{:?}", check.command);
        let health = agent(&[("the_check", check)]);
        let r = call(&health, "check", json!({"check": "the_check"})).await;
        assert_eq!(r.data["check"], "the_check", "{what}: {r:?}");
        assert_eq!(r.data["status"], status, "{what}: {r:?}");
        assert_eq!(r.data["exitcode"], exitcode, "{what}: {r:?}");
        assert!(
            r.data["message"]
                .as_str()
                .expect("message")
                .contains(message),
            "{what}: {r:?}"
        );
        assert_eq!(r.data["perfdata"], perfdata, "{what}: {r:?}");
        if status == "OK" {
            assert_eq!(r.status, StatusCode::Ok, "{what}: {r:?}");
        } else {
            assert_eq!(r.status, StatusCode::Aborted, "{what}: {r:?}");
            assert!(
                r.message.starts_with(&format!("the_check: {status}: ")),
                "{what}: {}",
                r.message
            );
        }
    }
}

#[tokio::test]
async fn check_reports_parsed_metrics() {
    let health = agent(&[(
        "load",
        plugin("echo 'OK - load|load1=0.5;1;2;0; load5=0.25;;;0;'"),
    )]);
    let r = call(&health, "check", json!({"check": "load"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(
        r.data["metrics"],
        json!([
            {"label": "load1", "value": 0.5, "uom": "", "warn": "1", "crit": "2", "min": 0.0, "max": null},
            {"label": "load5", "value": 0.25, "uom": "", "warn": null, "crit": null, "min": 0.0, "max": null},
        ])
    );
}

#[tokio::test]
async fn long_output_perfdata_is_collected() {
    let script = "printf 'DISK OK - all fine | /=2643MB;5948;5958;0;5968\\n\
                  / 15272 MB (77%%);\\n/boot 68 MB (69%%);\\n| /boot=68MB;88;93;0;98\\n\
                  /home=69357MB;253404;253409;0;253414\\n'";
    let health = agent(&[("disk", plugin(script))]);
    let r = call(&health, "check", json!({"check": "disk"})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["message"], "DISK OK - all fine");
    assert_eq!(
        r.data["perfdata"],
        "/=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98 /home=69357MB;253404;253409;0;253414"
    );
    let labels: Vec<&str> = r.data["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["/", "/boot", "/home"]);
}

#[tokio::test]
async fn an_unknown_check_is_invalid_data_and_lists_the_checks() {
    let health = agent(&[("disk", plugin("true")), ("load", plugin("true"))]);
    let r = call(&health, "check", json!({"check": "swap"})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    assert_eq!(
        r.message,
        "no check named \"swap\"; the configured checks are disk, load"
    );

    let r = call(&agent(&[]), "check", json!({"check": "swap"})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    assert!(
        r.message.contains("no checks are configured"),
        "{}",
        r.message
    );

    // The DDL's validation runs first.
    let r = call(&health, "check", json!({"check": "disk; rm -rf /"})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    let r = call(&health, "check", json!({"check": "x".repeat(129)})).await;
    assert_eq!(r.status, StatusCode::InvalidData, "{r:?}");
    let r = call(&health, "check", json!({})).await;
    assert_eq!(r.status, StatusCode::MissingData, "{r:?}");
}

#[tokio::test]
async fn run_all_reports_the_worst_state() {
    let health = agent(&[
        ("disk", plugin("echo 'DISK OK|/=50%;80;90'")),
        ("load", plugin("echo 'LOAD WARNING - 3.0'; exit 1")),
        ("mystery", plugin("echo 'what?'; exit 3")),
        ("procs", plugin("echo 'PROCS CRITICAL - none'; exit 2")),
    ]);
    let r = call(&health, "run_all", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert_eq!(r.data["status"], "CRITICAL");
    assert_eq!(
        r.data["counts"],
        json!({"OK": 1, "WARNING": 1, "CRITICAL": 1, "UNKNOWN": 1})
    );
    assert_eq!(r.data["failing"], json!(["load", "mystery", "procs"]));
    assert_eq!(r.data["checks"]["disk"]["status"], "OK");
    assert_eq!(r.data["checks"]["disk"]["perfdata"], "/=50%;80;90");
    assert_eq!(r.data["checks"]["disk"]["metrics"][0]["uom"], "%");
    assert_eq!(
        r.data["checks"]["procs"]["message"],
        "PROCS CRITICAL - none"
    );
    assert_eq!(
        r.message,
        "3 of 4 checks not OK: load: WARNING: LOAD WARNING - 3.0; mystery: UNKNOWN: what?; \
         procs: CRITICAL: PROCS CRITICAL - none"
    );

    // The order is OK < WARNING < UNKNOWN < CRITICAL.
    let table: &[(&[i32], &str)] = &[
        (&[0, 0], "OK"),
        (&[0, 1], "WARNING"),
        (&[1, 3], "UNKNOWN"),
        (&[3, 2], "CRITICAL"),
        (&[1, 2, 0], "CRITICAL"),
    ];
    for (codes, worst) in table {
        let checks: Vec<(String, HealthCheck)> = codes
            .iter()
            .enumerate()
            .map(|(i, code)| (format!("c{i}"), plugin(&format!("echo x; exit {code}"))))
            .collect();
        let checks: Vec<(&str, HealthCheck)> = checks
            .iter()
            .map(|(n, c)| (n.as_str(), c.clone()))
            .collect();
        let r = call(&agent(&checks), "run_all", json!({})).await;
        assert_eq!(r.data["status"], *worst, "{codes:?}: {r:?}");
        let ok = *worst == "OK";
        assert_eq!(r.status == StatusCode::Ok, ok, "{codes:?}: {r:?}");
    }
}

#[tokio::test]
async fn run_all_runs_the_checks_at_once() {
    let checks: Vec<(String, HealthCheck)> = (0..4)
        .map(|i| (format!("slow{i}"), plugin("sleep 0.5; echo 'OK - slept'")))
        .collect();
    let checks: Vec<(&str, HealthCheck)> = checks
        .iter()
        .map(|(n, c)| (n.as_str(), c.clone()))
        .collect();
    let health = agent(&checks);
    let start = Instant::now();
    let r = call(&health, "run_all", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["status"], "OK");
    assert_eq!(r.data["counts"]["OK"], 4);
    assert!(
        start.elapsed() < Duration::from_millis(1900),
        "four 0.5 s checks took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn run_all_without_checks_says_how_to_add_one() {
    let r = call(&agent(&[]), "run_all", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted, "{r:?}");
    assert!(
        r.message.contains("[agents.health.checks."),
        "{}",
        r.message
    );
    assert_eq!(r.data["checks"], json!({}));
}

#[tokio::test]
async fn list_names_the_checks() {
    let health = agent(&[("load", plugin("true")), ("disk", plugin("true"))]);
    let r = call(&health, "list", json!({})).await;
    assert_eq!(r.status, StatusCode::Ok, "{r:?}");
    assert_eq!(r.data["checks"], json!(["disk", "load"]));
    let r = call(&agent(&[]), "list", json!({})).await;
    assert_eq!(r.data["checks"], json!([]));
}

fn metric(
    label: &str,
    value: Option<f64>,
    uom: &str,
    thresholds: [Option<&str>; 2],
    bounds: [Option<f64>; 2],
) -> Metric {
    Metric {
        label: label.into(),
        value,
        uom: uom.into(),
        warn: thresholds[0].map(String::from),
        crit: thresholds[1].map(String::from),
        min: bounds[0],
        max: bounds[1],
    }
}

#[test]
fn perfdata_parses() {
    let table: Vec<(&str, Vec<Metric>)> = vec![
        ("", vec![]),
        ("   ", vec![]),
        (
            "load1=0.5;1;2;0; load5=0.25;1.5;2.5;0; load15=0.1;;;0;",
            vec![
                metric(
                    "load1",
                    Some(0.5),
                    "",
                    [Some("1"), Some("2")],
                    [Some(0.0), None],
                ),
                metric(
                    "load5",
                    Some(0.25),
                    "",
                    [Some("1.5"), Some("2.5")],
                    [Some(0.0), None],
                ),
                metric("load15", Some(0.1), "", [None, None], [Some(0.0), None]),
            ],
        ),
        (
            "time=0.012345s;;;0.000000 size=1234B;;;0",
            vec![
                metric("time", Some(0.012345), "s", [None, None], [Some(0.0), None]),
                metric("size", Some(1234.0), "B", [None, None], [Some(0.0), None]),
            ],
        ),
        (
            "'C:\\ Used Space'=42.5GB;80;90;0;100 '/var/log'=85%;@10:20;~:90;0;100",
            vec![
                metric(
                    "C:\\ Used Space",
                    Some(42.5),
                    "GB",
                    [Some("80"), Some("90")],
                    [Some(0.0), Some(100.0)],
                ),
                metric(
                    "/var/log",
                    Some(85.0),
                    "%",
                    [Some("@10:20"), Some("~:90")],
                    [Some(0.0), Some(100.0)],
                ),
            ],
        ),
        (
            "'it''s'=1c",
            vec![metric("it's", Some(1.0), "c", [None, None], [None, None])],
        ),
        (
            "users=U;5;10",
            vec![metric(
                "users",
                None,
                "",
                [Some("5"), Some("10")],
                [None, None],
            )],
        ),
        (
            "temp=-3.5C;;;-40;60 rta=0,512ms",
            vec![
                metric(
                    "temp",
                    Some(-3.5),
                    "C",
                    [None, None],
                    [Some(-40.0), Some(60.0)],
                ),
                metric("rta", Some(0.512), "ms", [None, None], [None, None]),
            ],
        ),
        // Garbage is skipped; what can be read is kept.
        (
            "garbage ok=1 =5 noval= bad=abc x=2;;;zz;1 'unterminated=3",
            vec![
                metric("ok", Some(1.0), "", [None, None], [None, None]),
                metric("x", Some(2.0), "", [None, None], [None, Some(1.0)]),
            ],
        ),
        (
            "a=1;2;3;4;5;6;7 b=2",
            vec![
                metric(
                    "a",
                    Some(1.0),
                    "",
                    [Some("2"), Some("3")],
                    [Some(4.0), Some(5.0)],
                ),
                metric("b", Some(2.0), "", [None, None], [None, None]),
            ],
        ),
        ("= == === |||", vec![]),
    ];
    for (text, want) in table {
        assert_eq!(parse_perfdata(text), want, "{text:?}");
    }
}
