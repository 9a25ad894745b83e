//! `muster registry`: daemons register, the registry stores them in SQLite and answers
//! inventory queries with the nodes' filter engine, keeps its records across a restart, and
//! stops advancing a node's last-seen time once the node is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use muster_client::{Client, ConnectConfig};
use muster_proto::registration::SeenNode;
use muster_proto::{FactFilter, Filter};
use muster_testkit::{DaemonSpec, wait_for};
use serde_json::{Value, json};

use crate::cli::{missing, muster, replies};
use crate::fixture::{self, dead_port};

fn facts(filters: &[&str]) -> Filter {
    Filter {
        fact: filters
            .iter()
            .map(|f| FactFilter::parse(f).expect("a valid fact filter"))
            .collect(),
        ..Filter::default()
    }
}

fn classes(classes: &[&str]) -> Filter {
    Filter {
        class: classes.iter().map(|c| c.to_string()).collect(),
        ..Filter::default()
    }
}

on_both_brokers! {
    /// Daemons register every second; the registry answers filtered queries, keeps its
    /// records across a restart, and a stopped node's last-seen time stops advancing.
    fn daemons_register_and_the_registry_answers() -> Result<()> {
        let every_second = "registration_interval = \"1s\"";
        let specs = [
            DaemonSpec::new("web1")
                .facts(json!({"role": "web"}))
                .classes(&["nginx"])
                .config(every_second),
            DaemonSpec::new("web2")
                .facts(json!({"role": "web"}))
                .classes(&["nginx", "canary"])
                .config(every_second),
            DaemonSpec::new("db1")
                .facts(json!({"role": "db"}))
                .classes(&["postgres"])
                .config(every_second),
        ];
        let Some(mut fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("registry.sqlite");
        let log = dir.path().join("registry.log");
        let url = fleet.url();
        let mut registry = fixture::registry(&db, &url, &log)?;

        let runtime = tokio::runtime::Runtime::new()?;
        let client = runtime.block_on(Client::connect(&ConnectConfig {
            brokers: vec![url.clone()],
            ..Default::default()
        }))?;
        let query = |filter: &Filter, seen_within: Option<Duration>| {
            runtime.block_on(client.query_registry(filter, seen_within, Duration::from_secs(2)))
        };
        let by_name = |nodes: Vec<SeenNode>| -> BTreeMap<String, SeenNode> {
            nodes.into_iter().map(|n| (n.identity.clone(), n)).collect()
        };
        let names = |filter: &Filter| -> Result<Vec<String>> {
            Ok(query(filter, None)?.into_iter().map(|n| n.identity).collect())
        };

        let all = Filter::default();
        wait_for("the registry to know all three daemons", Duration::from_secs(10), || {
            query(&all, None).is_ok_and(|nodes| nodes.len() == 3)
        })?;
        assert_eq!(names(&all)?, ["db1", "web1", "web2"]);
        assert_eq!(names(&facts(&["role=web"]))?, ["web1", "web2"]);
        assert_eq!(names(&classes(&["canary"]))?, ["web2"]);
        assert_eq!(names(&classes(&["postgres"]))?, ["db1"]);
        assert!(names(&facts(&["role=cache"]))?.is_empty());
        let before = by_name(query(&all, None)?);
        assert!(
            muster_testkit::read(&log).contains("muster registry: storing registrations"),
            "the registry says when it is ready"
        );

        // Killed and started again on the same file: every record is still there, with the
        // first-seen times from before.
        registry.kill();
        let mut registry = fixture::registry(&db, &url, &log)?;
        let mut after = BTreeMap::new();
        wait_for("the restarted registry to answer", Duration::from_secs(10), || {
            match query(&all, None) {
                Ok(nodes) => {
                    after = by_name(nodes);
                    true
                }
                Err(_) => false,
            }
        })?;
        assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
        for (identity, node) in &before {
            assert_eq!(after[identity].first_seen, node.first_seen, "{identity}");
        }

        // db1 stops: its last-seen time stays put while the others' advance.
        fleet.daemon("db1").kill();
        let mut stopped_at = None;
        wait_for("db1's last registration to be stored", Duration::from_secs(5), || {
            let nodes = query(&all, None).map(by_name).unwrap_or_default();
            // Its last registration may still be on its way: take it once it is settled,
            // i.e. once web1 has registered again after it.
            match (nodes.get("db1"), nodes.get("web1")) {
                (Some(db1), Some(web1)) if web1.last_seen > db1.last_seen + 1.2 => {
                    stopped_at = Some(db1.last_seen);
                    true
                }
                _ => false,
            }
        })?;
        let stopped_at = stopped_at.context("db1's last sighting")?;
        let nodes = by_name(query(&all, None)?);
        assert_eq!(nodes["db1"].last_seen, stopped_at, "db1's last_seen does not advance");
        let recent = by_name(query(&all, Some(Duration::from_secs(1)))?);
        assert!(!recent.contains_key("db1"), "db1 was not seen within 1 s: {recent:?}");
        registry.kill();
        Ok(())
    }
}

/// A bad `--retention` or an unusable database exit 2; an unreachable broker exits 5.
#[test]
fn registry_exit_codes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("r.sqlite");
    let db = db.to_str().context("UTF-8 path")?;
    let unreachable = format!("nats://127.0.0.1:{}", dead_port());
    muster(&["registry", "--db", db, "--retention", "soon"])
        .broker(&unreachable)
        .run()
        .code(2)
        .stderr_has("--retention");
    let missing_dir = dir.path().join("no/such/dir/r.sqlite");
    muster(&[
        "registry",
        "--db",
        missing_dir.to_str().context("UTF-8 path")?,
    ])
    .broker(&unreachable)
    .run()
    .code(2)
    .stderr_has("no/such/dir");
    muster(&["registry", "--db", db])
        .broker(&unreachable)
        .run()
        .code(5)
        .stderr_has("cannot reach the broker");
    Ok(())
}

on_both_brokers! {
    /// Fleet truth: with a registry, a node that is stopped after registering is named as
    /// missing with its last-seen time and exit 3 — whether discovery is broadcast (which
    /// cannot see it) or the registry; `show` tells the same later, and after the node is back
    /// `retry --missing` reaches exactly it.
    fn stopped_nodes_are_named_with_their_last_seen_time() -> Result<()> {
        let specs: Vec<DaemonSpec> = ["web1", "web2", "web3"]
            .iter()
            .map(|id| {
                let role = if *id == "web3" { "app" } else { "web" };
                let facts = match *id {
                    "web1" => json!({ "role": role, "rack": 4 }),
                    _ => json!({ "role": role }),
                };
                DaemonSpec::new(id)
                    .facts(facts)
                    .config("registration_interval = \"1s\"")
            })
            .collect();
        let Some(mut fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let _registry = fixture::registry(
            &dir.path().join("registry.sqlite"),
            &fleet.url(),
            &dir.path().join("registry.log"),
        )?;
        let journal = dir.path().join("journal.sqlite").display().to_string();
        let url = fleet.url();
        let run = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--journal", journal.as_str(), "-t", "5"]);
            muster(&a).broker(&url).run()
        };
        wait_for("the registry to know all three nodes", Duration::from_secs(15), || {
            let out = run(&["rpc", "rpcutil", "ping", "--dm", "registry", "--json"]);
            serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|report| report["stats"]["ok"] == 3)
        })?;

        // What the registry holds answers `facts` and `inventory` without asking the nodes.
        let facts = run(&["facts", "role", "--from-registry", "--json"]);
        let answer = facts.code(0).json();
        assert_eq!(answer["schema"], "muster:facts-registry:1", "{facts}");
        assert_eq!(answer["source"], "registry", "{facts}");
        assert_eq!(answer["summary"]["values"][0], json!({"value": "web", "count": 2, "nodes": ["web1", "web2"]}), "{facts}");
        assert_eq!(answer["summary"]["values"][1]["nodes"], json!(["web3"]), "{facts}");
        // Values keep their JSON types; nodes without the fact are null, counted apart.
        let facts = run(&["facts", "rack", "--from-registry", "--json"]);
        let answer = facts.code(0).json();
        assert_eq!(
            answer["summary"],
            json!({"fact": "rack", "missing": 2, "values": [
                {"value": null, "count": 2, "nodes": ["web2", "web3"]},
                {"value": 4, "count": 1, "nodes": ["web1"]},
            ]}),
            "{facts}"
        );
        let inventory = run(&["inventory", "web1", "--from-registry", "--json"]);
        let answer = inventory.code(0).json();
        assert_eq!(answer["schema"], "muster:inventory-registry:1", "{inventory}");
        assert_eq!(answer["record"]["facts"]["role"], "web", "{inventory}");
        assert_eq!(answer["record"]["agents"][0], "cm", "{inventory}");
        assert_eq!(answer["stale"], false, "{inventory}");
        run(&["inventory", "web9", "--from-registry"]).code(4).stderr_has("The registry does not know web9");
        // Exit 4 with --json is still one JSON answer, with nothing in it (docs/design.md §3).
        let unknown = run(&["inventory", "web9", "--from-registry", "--json"]);
        assert_eq!(unknown.code(4).json()["record"], Value::Null, "{unknown}");
        let nobody = run(&["facts", "role", "-F", "role=nobody", "--from-registry", "--json"]);
        assert_eq!(nobody.code(4).json()["nodes"], 0, "{nobody}");

        fleet.daemon("web3").kill();
        // Once the registry has not heard from web3 within --expect-seen, its values are
        // left out and it is named.
        wait_for("web3 to be stale in the registry", Duration::from_secs(15), || {
            let out = run(&["facts", "role", "--from-registry", "--json", "--expect-seen", "3s"]);
            out.code == Some(3) && out.json()["stale"][0]["identity"] == "web3"
        })?;
        let facts = run(&["facts", "role", "--from-registry", "--expect-seen", "3s"]);
        facts
            .code(3)
            .stdout_has("found 2 nodes")
            .stdout_has("Not seen within 3s, left out: web3 (last seen 20");
        assert!(!facts.stdout.contains("app"), "{facts}");
        run(&["inventory", "web3", "--from-registry", "--expect-seen", "3s"])
            .code(3)
            .stdout_has("Facts:")
            .stdout_has("Not seen within 3s: this is how web3 was when it last registered.");
        for dm in ["broadcast", "registry"] {
            let out = run(&["rpc", "rpcutil", "ping", "--dm", dm, "--json"]);
            let report = out.code(3).json();
            assert_eq!(report["stats"]["expected"], 3, "{dm}: {out}");
            assert_eq!(report["missing"][0]["identity"], "web3", "{dm}: {out}");
            assert_eq!(report["missing"][0]["outcome"], "not_connected", "{dm}: {out}");
            let seen = report["missing"][0]["last_seen"].as_str().unwrap_or_default();
            assert!(seen.ends_with('Z') && seen.starts_with("20"), "{dm}: {out}");
        }
        for command in [&["rpc", "rpcutil", "ping"][..], &["ping"]] {
            let out = run(command);
            out.code(3).stdout_has("web3 (not connected, last seen ");
        }
        let id = run(&["rpc", "rpcutil", "ping", "--json"]).json()["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Later, last-seen times read as they did: relative to when the request was sent.
        muster(&["show", &id, "--journal", &journal])
            .run()
            .code(3)
            .stdout_has("Did not respond: web3 (not connected, last seen ")
            .stdout_has("s before the request)");

        fleet.daemon("web3").restart()?;
        let out = run(&["retry", &id, "--missing"]);
        out.code(0).stdout_has("on 1 nodes: web3");
        Ok(())
    }
}

on_both_brokers! {
    /// Collected requests: `--no-results` sends, prints the id and exits; the registry
    /// collects the replies (and the broker's word that a node is not connected), so `muster
    /// show ID` gives the full report later — from a machine whose journal does not have the
    /// request too — and `retry --missing` from there reaches exactly the missing node.
    /// `--collect` waits as usual and leaves the same report in the registry.
    fn the_registry_collects_replies_for_show_from_anywhere() -> Result<()> {
        let specs: Vec<DaemonSpec> = ["web1", "web2", "web3"]
            .iter()
            .map(|id| DaemonSpec::new(id).config("registration_interval = \"1s\""))
            .collect();
        let Some(mut fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let journal = dir.path().join("journal.sqlite").display().to_string();
        let url = fleet.url();
        // This machine's journal, or none at all (another operator's machine).
        let here = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--journal", journal.as_str()]);
            muster(&a).broker(&url).run()
        };
        let elsewhere = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--journal", "off"]);
            muster(&a).broker(&url).run()
        };

        // Nobody would see the replies: nothing is sent.
        let refused = here(&["rpc", "rpcutil", "ping", "--no-results", "-I", "web1"]);
        refused
            .code(2)
            .stderr_has("no registry is running")
            .stderr_has("nothing was sent");

        let _registry = fixture::registry(
            &dir.path().join("registry.sqlite"),
            &url,
            &dir.path().join("registry.log"),
        )?;
        wait_for("the registry to know all three nodes", Duration::from_secs(15), || {
            let out = here(&["rpc", "rpcutil", "ping", "--dm", "registry", "--json"]);
            serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|report| report["stats"]["ok"] == 3)
        })?;
        fleet.daemon("web3").kill();

        let sent = here(&["rpc", "rpcutil", "ping", "--no-results", "--dm", "registry", "-t", "1", "--json"]);
        let answer = sent.code(0).json();
        assert_eq!(answer["schema"], "muster:sent:1", "{sent}");
        assert_eq!(answer["expected"], 3, "{sent}");
        let id = answer["request_id"].as_str().unwrap_or_default().to_string();
        let human = here(&["rpc", "rpcutil", "ping", "--no-results", "-I", "web1"]);
        human.code(0).stderr_has("a registry collects the replies: muster show ");
        assert_eq!(human.stdout.trim().len(), 32, "only the id on stdout: {human}");

        // The report, once the timeout has passed, from here and from elsewhere.
        let expect_report = |out: &crate::cli::Run| {
            let report = out.json();
            out.code == Some(3)
                && report["stats"]["ok"] == 2
                && missing(&report) == [("web3".to_string(), "not_connected".to_string())]
        };
        wait_for("the registry to have every outcome", Duration::from_secs(15), || {
            let out = elsewhere(&["show", &id, "--json"]);
            out.stderr.is_empty() && expect_report(&out)
        })?;
        let out = here(&["show", &id[..24], "--json"]);
        assert!(expect_report(&out), "{out}");
        let out = here(&["show", &id]);
        out.code(3).stdout_has("Did not respond: web3 (not connected, last seen ");
        muster(&["history", "--journal", journal.as_str()])
            .run()
            .code(0)
            .stdout_has("replies in the registry");

        // --collect: the usual report at once, and the same one later from elsewhere.
        let now = here(&["rpc", "rpcutil", "ping", "--collect", "-t", "1", "--json"]);
        let report = now.code(3).json();
        let collected_id = report["request_id"].as_str().unwrap_or_default().to_string();
        wait_for("the registry to have the collected replies", Duration::from_secs(15), || {
            let later = elsewhere(&["show", &collected_id, "--json"]);
            later.code == Some(3)
                && replies(&later.json()) == replies(&report)
                && missing(&later.json()) == missing(&report)
        })?;

        fleet.daemon("web3").restart()?;
        let retried = elsewhere(&["retry", &id, "--missing", "-t", "5"]);
        retried.code(0).stdout_has("on 1 nodes: web3");
        elsewhere(&["show", "0123456789abcdef"])
            .code(2)
            .stderr_has("no request 0123456789abcdef");
        Ok(())
    }
}

on_both_brokers! {
    /// The replies of thousands of nodes are more than one message can carry: the registry
    /// answers in pages, and `show` reports every node.
    fn a_collected_request_to_thousands_of_nodes_reports_every_one() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let url = nats.url();
        let dir = tempfile::tempdir()?;
        let nodes = dir.path().join("nodes.txt");
        let _registry = fixture::registry(
            &dir.path().join("registry.sqlite"),
            &url,
            &dir.path().join("registry.log"),
        )?;
        let _sim = fixture::Background::start(
            &["sim".as_ref(), "--nodes".as_ref(), "4000".as_ref(), "--write-nodes".as_ref(), nodes.as_os_str()],
            &url,
            &dir.path().join("sim.log"),
        )?;
        let list = nodes.display().to_string();
        wait_for("4000 simulated nodes to answer", Duration::from_secs(30), || {
            muster(&["ping", "--nodes", &list, "-t", "10", "--journal", "off"]).broker(&url).run().code == Some(0)
        })?;
        let sent = muster(&["rpc", "rpcutil", "ping", "--no-results", "--nodes", &list, "-t", "2", "--journal", "off"])
            .broker(&url)
            .run();
        let id = sent.code(0).stdout.trim().to_string();
        wait_for("the registry to have all 4000 replies", Duration::from_secs(30), || {
            let shown = muster(&["show", &id, "--json", "--journal", "off"]).broker(&url).run();
            shown.code == Some(0) && shown.json()["stats"]["ok"] == 4000
        })?;
        Ok(())
    }
}
