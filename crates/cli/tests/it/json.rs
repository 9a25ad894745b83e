//! The `--json` contract (docs/design.md §3): exactly one object with exactly these keys,
//! pinned by snapshots, and `find --json` composing with `--nodes -`.

use std::collections::BTreeSet;

use muster_testkit::DaemonSpec;
use serde_json::{Value, json};

use crate::cli::{Run, identities, replies};
use crate::fixture::{self, arg, node_list, patient};

fn two_nodes() -> Vec<DaemonSpec> {
    vec![
        DaemonSpec::new("web1")
            .facts(json!({"role": "web", "os": {"family": "Debian"}}))
            .classes(&["nginx"]),
        DaemonSpec::new("db1")
            .facts(json!({"role": "db", "os": {"family": "RedHat"}}))
            .classes(&["postgres"]),
    ]
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The report's key sets, exactly, and its stdout-only discipline.
#[track_caller]
fn assert_report_shape(run: &Run) -> Value {
    assert_eq!(run.stderr, "", "--json must keep stderr quiet:\n{run}");
    let report = run.json();
    assert_eq!(report["schema"], "muster:report:1", "{run}");
    assert_eq!(
        keys(&report),
        BTreeSet::from([
            "schema",
            "request_id",
            "agent",
            "action",
            "stats",
            "missing",
            "replies",
            "aggregates",
            "discovery",
            "ignored"
        ]),
        "{run}"
    );
    assert_eq!(
        keys(&report["stats"]),
        BTreeSet::from([
            "expected",
            "responded",
            "ok",
            "failed",
            "missing",
            "unexpected",
            "discovery_ms",
            "elapsed_ms"
        ]),
        "{run}"
    );
    let id = report["request_id"].as_str().unwrap_or_default();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "request_id is not 32 hex characters:\n{run}"
    );
    for key in ["discovery_ms", "elapsed_ms"] {
        assert!(
            report["stats"][key].is_u64(),
            "{key} is not a number:\n{run}"
        );
    }
    assert_eq!(report["ignored"], serde_json::json!([]), "{run}");
    let method = report["discovery"]["method"].as_str().unwrap_or_default();
    assert!(
        ["broadcast", "broadcast_and_registry", "registry", "nodes"].contains(&method),
        "discovery.method:\n{run}"
    );
    for reply in report["replies"].as_array().into_iter().flatten() {
        assert_eq!(
            keys(reply),
            BTreeSet::from(["sender", "outcome", "statuscode", "statusmsg", "data", "ms"]),
            "{run}"
        );
    }
    report
}

/// Replies in identity order, so the snapshot does not depend on arrival order.
fn sort_replies(mut report: Value) -> Value {
    if let Some(list) = report["replies"].as_array_mut() {
        list.sort_by(|a, b| a["sender"].as_str().cmp(&b["sender"].as_str()));
    }
    report
}

on_both_brokers! {
    fn ping_report_with_a_missing_node() -> Result<()> {
        let Some(fleet) = fixture::fleet(&two_nodes())? else {
            return Ok(());
        };
        let nodes = node_list(&["web1", "db1", "gone1"])?;
        let run = fleet
            .muster(&["ping", "--nodes", arg(&nodes), "--json", "-t", "10"])
            .run();
        run.code(3);
        let report = sort_replies(assert_report_shape(&run));
        assert!(report["replies"][0]["data"]["pong"].is_f64(), "{run}");
        insta::assert_json_snapshot!("ping_nodes_one_missing", report, {
            ".request_id" => "[request_id]",
            ".stats.discovery_ms" => "[ms]",
            ".stats.elapsed_ms" => "[ms]",
            ".replies[].ms" => "[ms]",
            ".replies[].data.pong" => "[time]",
        });
        Ok(())
    }
}

on_both_brokers! {
    fn rpc_get_fact_report() -> Result<()> {
        let Some(fleet) = fixture::fleet(&two_nodes())? else {
            return Ok(());
        };
        let mut args = vec!["rpc", "rpcutil", "get_fact", "fact=role", "--json"];
        args.extend(patient());
        let run = fleet.muster(&args).run();
        run.code(0);
        let report = sort_replies(assert_report_shape(&run));
        // The DDL's summary of the value, across the fleet.
        assert_eq!(
            report["aggregates"][0]["counts"],
            json!([{"value": "db", "count": 1}, {"value": "web", "count": 1}]),
            "{run}"
        );
        insta::assert_json_snapshot!("rpc_get_fact_role", report, {
            ".request_id" => "[request_id]",
            ".stats.discovery_ms" => "[ms]",
            ".stats.elapsed_ms" => "[ms]",
            ".replies[].ms" => "[ms]",
            ".discovery.quiet_ms" => "[ms]",
        });
        Ok(())
    }
}

on_both_brokers! {
    /// `find --json` prints an array that `--nodes -` reads back: the commands compose. Plain
    /// lines work on stdin too.
    fn find_json_composes_with_nodes_from_stdin() -> Result<()> {
        let Some(fleet) = fixture::fleet(&two_nodes())? else {
            return Ok(());
        };
        let mut find = vec!["find", "--json", "-C", "nginx"];
        find.extend(patient());
        let found = fleet.muster(&find).run();
        found.code(0);
        assert_eq!(identities(&found.json()), ["web1"], "{found}");

        let run = fleet
            .muster(&["ping", "--nodes", "-", "--json", "-t", "10"])
            .stdin(&found.stdout)
            .run();
        run.code(0);
        let report = assert_report_shape(&run);
        assert_eq!(
            replies(&report),
            [("web1".to_string(), "ok".to_string())],
            "{run}"
        );
        assert_eq!(report["stats"]["expected"], 1, "{run}");

        let run = fleet
            .muster(&[
                "rpc",
                "rpcutil",
                "get_fact",
                "fact=os.family",
                "--nodes",
                "-",
                "--json",
            ])
            .stdin("# a node list\nweb1\n\ndb1\n")
            .run();
        run.code(0);
        let report = assert_report_shape(&run);
        let mut values: Vec<(String, String)> = report["replies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["sender"].as_str().unwrap_or_default().to_string(),
                    r["data"]["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        values.sort();
        assert_eq!(
            values,
            [
                ("db1".to_string(), "RedHat".to_string()),
                ("web1".to_string(), "Debian".to_string())
            ],
            "{run}"
        );
        Ok(())
    }
}

on_both_brokers! {
    /// `facts --json` keeps each value's JSON type: the number 4 and the string "4" are two
    /// values, booleans stay booleans, and a node without the fact is `null`, counted apart
    /// (never the string "(missing)", which a node may well have as a value).
    fn facts_json_keeps_value_types_and_counts_missing_apart() -> Result<()> {
        let specs = vec![
            DaemonSpec::new("n1").facts(json!({"v": 4, "b": true})),
            DaemonSpec::new("n2").facts(json!({"v": 4, "b": false})),
            DaemonSpec::new("s1").facts(json!({"v": "4", "b": "true"})),
            DaemonSpec::new("s2").facts(json!({"v": "(missing)"})),
            DaemonSpec::new("none1"),
        ];
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let nodes = node_list(&["n1", "n2", "s1", "s2", "none1"])?;
        let run = fleet
            .muster(&["facts", "v", "--nodes", arg(&nodes), "--json", "-t", "10"])
            .run();
        run.code(0);
        let summary = &run.json()["summary"];
        assert_eq!(
            summary,
            &json!({
                "fact": "v",
                "values": [
                    {"value": 4, "count": 2, "nodes": ["n1", "n2"]},
                    {"value": null, "count": 1, "nodes": ["none1"]},
                    {"value": "(missing)", "count": 1, "nodes": ["s2"]},
                    {"value": "4", "count": 1, "nodes": ["s1"]},
                ],
                "missing": 1,
            }),
            "{run}"
        );
        let run = fleet
            .muster(&["facts", "b", "--nodes", arg(&nodes), "--json", "-t", "10"])
            .run();
        run.code(0);
        let summary = &run.json()["summary"];
        assert_eq!(summary["missing"], 2, "{run}");
        let values: Vec<&Value> = summary["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| &v["value"])
            .collect();
        assert_eq!(
            values,
            [&json!(null), &json!(false), &json!(true), &json!("true")],
            "{run}"
        );
        // People read the same groups: where a string would read like another value, it is
        // quoted.
        let human = fleet
            .muster(&["facts", "v", "--nodes", arg(&nodes), "-t", "10"])
            .run();
        human.code(0);
        for (label, count) in [("4", "2 nodes"), ("\"4\"", "1 node"), ("(missing)", "1 node"), ("\"(missing)\"", "1 node")] {
            assert!(
                human.line(&format!("  {label} ")).trim_end().ends_with(&format!("found {count}")),
                "{label}: {human}"
            );
        }
        let human = fleet
            .muster(&["rpc", "rpcutil", "get_fact", "fact=v", "--nodes", arg(&nodes)])
            .run();
        human.code(0);
        for (label, count) in [("4", "2 nodes"), ("\"4\"", "1 node"), ("(none)", "1 node")] {
            assert!(
                human.line(&format!("   {label} ")).trim_end().ends_with(count),
                "{label}: {human}"
            );
        }
        // The DDL's summary of the same values in an rpc report keeps their types as well.
        let run = fleet
            .muster(&["rpc", "rpcutil", "get_fact", "fact=v", "--nodes", arg(&nodes), "--json"])
            .run();
        run.code(0);
        assert_eq!(
            run.json()["aggregates"][0]["counts"],
            json!([
                {"value": 4, "count": 2},
                {"value": null, "count": 1},
                {"value": "(missing)", "count": 1},
                {"value": "4", "count": 1},
            ]),
            "{run}"
        );
        Ok(())
    }
}

/// The identities a report expected, sorted: what `--nodes -` reads from it by default.
fn expected_of(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = crate::cli::missing(report)
        .into_iter()
        .map(|(identity, _)| identity)
        .chain(replies(report).into_iter().map(|(sender, _)| sender))
        .collect();
    names.sort();
    names
}

on_both_brokers! {
    /// Every JSON document Muster prints that names nodes is a node list: a report (from
    /// `ping`, `rpc`, `facts` or `show --json`) gives its expected nodes, or with
    /// `--nodes-from` those with the outcomes chosen; a registry's answer the nodes it names.
    /// Anything else is refused, saying what a node list may be.
    fn reports_and_answers_compose_with_nodes_from_stdin() -> Result<()> {
        let Some(fleet) = fixture::fleet(&two_nodes())? else {
            return Ok(());
        };
        let nodes = node_list(&["web1", "db1", "gone1"])?;
        let first = fleet
            .muster(&["rpc", "rpcutil", "ping", "--nodes", arg(&nodes), "--json", "-t", "10"])
            .run();
        first.code(3);
        let report = first.json();
        let ping = |stdin: &str, extra: &[&str]| {
            let mut args = vec!["ping", "--nodes", "-", "--json", "-t", "10"];
            args.extend(extra);
            fleet.muster(&args).stdin(stdin).run()
        };

        // By default: every node the report expected, replied or not.
        let run = ping(&first.stdout, &[]);
        run.code(3);
        assert_eq!(expected_of(&run.json()), ["db1", "gone1", "web1"], "{run}");
        // Or only some outcomes.
        let run = ping(&first.stdout, &["--nodes-from", "ok"]);
        run.code(0);
        assert_eq!(expected_of(&run.json()), ["db1", "web1"], "{run}");
        let run = ping(&first.stdout, &["--nodes-from", "missing"]);
        run.code(3);
        assert_eq!(
            crate::cli::missing(&run.json()),
            [("gone1".to_string(), "not_connected".to_string())],
            "{run}"
        );
        let run = ping(&first.stdout, &["--nodes-from", "failed,not_connected"]);
        run.code(3);
        assert_eq!(expected_of(&run.json()), ["gone1"], "{run}");

        // `show --json` prints the same report; `facts --json` a report with a summary.
        assert_eq!(report["schema"], "muster:report:1", "{first}");
        let id = report["request_id"].as_str().unwrap_or_default();
        let shown = fleet.muster(&["show", id, "--json"]).run();
        shown.code(3);
        let run = ping(&shown.stdout, &[]);
        run.code(3);
        assert_eq!(expected_of(&run.json()), ["db1", "gone1", "web1"], "{run}");
        let facts = fleet
            .muster(&["facts", "role", "--nodes", arg(&nodes), "--json", "-t", "10"])
            .run();
        facts.code(3);
        assert_eq!(facts.json()["schema"], "muster:facts:1", "{facts}");
        let run = ping(&facts.stdout, &["--nodes-from", "ok"]);
        run.code(0);
        assert_eq!(expected_of(&run.json()), ["db1", "web1"], "{run}");

        // What `facts` and `inventory --from-registry --json` print.
        let answer = json!({"schema": "muster:facts-registry:1", "source": "registry", "nodes": 1,
            "stale": [{"identity": "db1", "last_seen": "2026-01-01T00:00:00Z"}],
            "summary": {"fact": "role", "values": [{"value": "web", "count": 1, "nodes": ["web1"]}],
                        "missing": 0}});
        let run = ping(&answer.to_string(), &[]);
        run.code(0);
        assert_eq!(expected_of(&run.json()), ["db1", "web1"], "{run}");
        let answer = json!({"schema": "muster:inventory-registry:1", "source": "registry",
                            "identity": "db1", "first_seen": "a",
                            "last_seen": "b", "stale": false, "record": {}});
        let run = ping(&answer.to_string(), &[]);
        run.code(0);
        assert_eq!(expected_of(&run.json()), ["db1"], "{run}");

        // Documents that name no nodes, and --nodes-from without a report.
        let refused = [
            (json!({"schema": "muster:sent:1", "request_id": "x", "expected": 2, "sent": 2}).to_string(), vec![], "muster show ID --json"),
            (json!({"what": "else"}).to_string(), vec![], "find --json"),
            (json!([{"request_id": "x"}]).to_string(), vec![], "not an identity"),
            ("web1\n".to_string(), vec!["--nodes-from", "ok"], "--nodes-from"),
        ];
        for (stdin, extra, needle) in refused {
            let run = ping(&stdin, &extra);
            run.code(2).stderr_has("cannot read the node list -").stderr_has(needle);
        }
        Ok(())
    }
}
