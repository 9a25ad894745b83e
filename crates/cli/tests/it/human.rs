//! What people read: `muster facts`, `muster inventory`.

use muster_testkit::DaemonSpec;
use serde_json::json;

use crate::cli::run_all;
use crate::fixture::{self, patient};

fn three_nodes() -> Vec<DaemonSpec> {
    vec![
        DaemonSpec::new("web1")
            .facts(json!({"role": "web", "os": {"family": "Debian", "release": "12"}, "cpus": 4}))
            .classes(&["nginx", "base"]),
        DaemonSpec::new("web2")
            .facts(json!({"role": "web", "os": {"family": "Debian", "release": "12"}, "cpus": 8}))
            .classes(&["nginx", "base"]),
        DaemonSpec::new("db1")
            .facts(json!({"role": "db", "os": {"family": "RedHat", "release": "9"}, "cpus": 8}))
            .classes(&["postgres"]),
    ]
}

on_both_brokers! {
    fn facts_summarises_values_with_counts() -> Result<()> {
        let Some(fleet) = fixture::fleet(&three_nodes())? else {
            return Ok(());
        };
        let with = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(patient());
            fleet.muster(&a)
        };
        let runs = run_all(
            4,
            vec![
                with(&["facts", "role"]),
                with(&["facts", "role", "-v"]),
                with(&["facts", "os.family", "-F", "cpus>=8"]),
                with(&["facts", "nosuch"]),
            ],
        );

        let run = &runs[0];
        run.code(0).stdout_has("Report for fact: role");
        let web = run.line("  web ");
        assert!(web.trim_end().ends_with("found 2 nodes"), "{run}");
        let db = run.line("  db ");
        assert!(db.trim_end().ends_with("found 1 node"), "{run}");
        // Most common value first.
        assert!(
            run.stdout.find("  web ") < run.stdout.find("  db "),
            "{run}"
        );
        assert!(
            !run.stdout.contains("web1"),
            "nodes listed without -v:\n{run}"
        );
        run.stdout_has("Finished 3 of 3 nodes");

        let run = &runs[1];
        run.code(0);
        let lines: Vec<&str> = run.stdout.lines().collect();
        let web = lines
            .iter()
            .position(|l| l.starts_with("  web "))
            .unwrap_or_else(|| panic!("{run}"));
        let listed: Vec<&str> = lines[web + 1].split_whitespace().collect();
        assert_eq!(listed, ["web1", "web2"], "{run}");
        let db = lines
            .iter()
            .position(|l| l.starts_with("  db "))
            .unwrap_or_else(|| panic!("{run}"));
        assert_eq!(lines[db + 1].trim(), "db1", "{run}");

        let run = &runs[2];
        run.code(0);
        assert!(
            run.line("  Debian ").trim_end().ends_with("found 1 node"),
            "{run}"
        );
        assert!(
            run.line("  RedHat ").trim_end().ends_with("found 1 node"),
            "{run}"
        );

        let run = &runs[3];
        run.code(0);
        assert!(
            run.line("  (missing) ")
                .trim_end()
                .ends_with("found 3 nodes"),
            "{run}"
        );
        Ok(())
    }
}

on_both_brokers! {
    fn inventory_shows_classes_and_facts() -> Result<()> {
        let Some(fleet) = fixture::fleet(&three_nodes()[..1])? else {
            return Ok(());
        };
        let run = fleet.muster(&["inventory", "web1"]).run();
        run.code(0).stdout_has("Inventory for web1:");
        let mut classes: Vec<&str> = run
            .line("   Classes:")
            .trim_start_matches("   Classes:")
            .split_whitespace()
            .collect();
        classes.sort_unstable();
        assert_eq!(classes, ["base", "nginx"], "{run}");
        assert!(run.line("   Agents:").contains("rpcutil"), "{run}");
        for (fact, value) in [
            ("role", "web"),
            ("os.family", "Debian"),
            ("os.release", "12"),
            ("cpus", "4"),
        ] {
            let line = run.line(&format!("      {fact} "));
            assert!(line.trim_end().ends_with(&format!("= {value}")), "{run}");
        }

        // A node that is not there: exit 3, named.
        let run = fleet.muster(&["inventory", "nosuch", "-t", "20"]).run();
        run.code(3).stdout_has("nosuch (not connected)");
        Ok(())
    }
}

on_both_brokers! {
    /// `--display` picks which replies are shown; `-v` adds the request id and timings.
    fn rpc_display_and_verbose() -> Result<()> {
        let Some(fleet) = fixture::fleet(&three_nodes()[..2])? else {
            return Ok(());
        };
        let nodes = crate::fixture::node_list(&["web1", "web2"])?;
        let list = crate::fixture::arg(&nodes);
        let runs = run_all(
            6,
            vec![
                fleet.muster(&["rpc", "rpcutil", "get_fact", "fact=cpus", "--nodes", list]),
                fleet.muster(&[
                    "rpc",
                    "rpcutil",
                    "get_fact",
                    "fact=cpus",
                    "--nodes",
                    list,
                    "--display",
                    "none",
                ]),
                fleet.muster(&[
                    "rpc",
                    "rpcutil",
                    "get_fact",
                    "fact=cpus",
                    "--nodes",
                    list,
                    "--display",
                    "failed",
                ]),
                fleet.muster(&[
                    "rpc",
                    "rpcutil",
                    "get_fact",
                    "fact=cpus",
                    "--nodes",
                    list,
                    "-v",
                ]),
                fleet.muster(&["ping", "--nodes", list, "-v"]),
            ],
        );
        // rpcutil's replies are shown by default: each node with its outputs.
        let run = runs[0].code(0);
        assert!(run.stdout.lines().any(|l| l == "web1"), "{run}");
        assert!(run.stdout.lines().any(|l| l == "web2"), "{run}");
        assert!(
            run.stdout.lines().any(|l| l.trim_start() == "Value: 8"),
            "{run}"
        );
        // The DDL's aggregate: a summary of the values.
        assert!(run.stdout.contains("Summary of Value:"), "{run}");
        for run in &runs[1..3] {
            run.code(0);
            assert!(!run.stdout.contains("web1"), "{run}");
            // No per-node part; the DDL's summary and the totals remain.
            assert!(run.stdout.starts_with("Summary of Value:"), "{run}");
            assert!(run.line("Finished ").starts_with("Finished 2 of 2 nodes in "), "{run}");
        }
        let run = runs[3].code(0);
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("web1  (") && l.ends_with(" ms)")),
            "{run}"
        );
        assert!(run.line("Request ").contains("(rpcutil get_fact)"), "{run}");
        let run = runs[4].code(0);
        let id = run
            .line("Request ")
            .split_whitespace()
            .nth(1)
            .unwrap_or_default();
        assert_eq!(id.len(), 32, "{run}");
        Ok(())
    }
}

/// Replaces every number of milliseconds (`12 ms`, `time=<1 ms`) with `N ms`.
fn redact_ms(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let redacted: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let number = word.trim_start_matches("time=").trim_start_matches('<');
                let before_ms = words.get(i + 1).is_some_and(|next| next.starts_with("ms"));
                if before_ms && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
                    let prefix = &word[..word.len() - number.len()];
                    format!("{}N", prefix.trim_end_matches('<'))
                } else {
                    word.to_string()
                }
            })
            .collect();
        out.push_str(&redacted.join(" "));
        out.push('\n');
    }
    out
}

on_both_brokers! {
    /// The human report of a request with a missing and a failed node, pinned.
    fn the_human_report_is_pinned() -> Result<()> {
        let Some(fleet) = fixture::fleet(&three_nodes())? else {
            return Ok(());
        };
        let nodes = fixture::node_list(&["web1", "web2", "db1", "gone1"])?;
        let ping = fleet.muster(&["ping", "--nodes", fixture::arg(&nodes)]).run();
        ping.code(3);
        insta::assert_snapshot!("ping_human_one_missing", redact_ms(&ping.stdout));
        let rpc = fleet
            .muster(&["rpc", "rpcutil", "get_fact", "fact=role", "--nodes", fixture::arg(&nodes)])
            .run();
        rpc.code(3);
        insta::assert_snapshot!("rpc_human_labelled_and_summarised", redact_ms(&rpc.stdout));
        let failed = fleet
            .muster(&["rpc", "nosuchagent", "run", "--nodes", fixture::arg(&nodes)])
            .run();
        failed.code(3);
        insta::assert_snapshot!("rpc_human_failed_and_missing", redact_ms(&failed.stdout));
        Ok(())
    }
}

#[test]
fn milliseconds_are_redacted() {
    assert_eq!(
        redact_ms("web1  time=<1 ms\nFinished 3 of 3 nodes in 12 ms: 3 ok"),
        "web1  time=N ms\nFinished 3 of 3 nodes in N ms: 3 ok\n"
    );
}
