//! Muster on a `nats-server` cluster and across a leaf node, as production runs it: daemons and
//! simulated nodes spread over the servers, the client on another one. Requests reach every
//! node across routes and the leaf connection (both ways); a registry on another server than
//! the nodes answers; and when a server dies during a stream of requests, daemons, simulated
//! nodes and the client fail over through their URL lists, every request still accounts for
//! every expected node, and a fully answered request follows within a few seconds.
//!
//! These tests need `nats-server` (no embedded-broker twin: the embedded broker has no routes
//! or leaf nodes); without it they say SKIPPED, with `CI` set they fail.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use muster_testkit::{Daemon, DaemonSpec, NatsCluster, hub_with_leaf, wait_for};
use serde_json::{Value, json};

use crate::cli::{Run, bin, muster};
use crate::fixture::{self, Background, arg, node_list, patient};

/// Simulated nodes per `muster sim` process.
const SIMULATED: usize = 100;

/// The identities `muster sim --prefix PREFIX --nodes COUNT` gives its nodes.
fn sim_names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// A `muster sim` of `count` nodes named `PREFIX-…`, connected through `brokers` in order.
fn sim(
    prefix: &str,
    count: usize,
    brokers: &[String],
    dir: &std::path::Path,
) -> Result<Background> {
    let count = count.to_string();
    Background::start(
        &[
            "sim".as_ref(),
            "--nodes".as_ref(),
            count.as_ref(),
            "--prefix".as_ref(),
            prefix.as_ref(),
        ],
        &brokers.join(","),
        &dir.join(format!("sim-{prefix}.log")),
    )
}

/// Spawns every daemon (each with its own broker list), then waits until each answers.
fn daemons(specs: Vec<(DaemonSpec, Vec<String>)>) -> Result<Vec<Daemon>> {
    let daemons = specs
        .iter()
        .map(|(spec, brokers)| Daemon::spawn_with_brokers(bin(), brokers, spec))
        .collect::<Result<Vec<_>>>()?;
    for daemon in &daemons {
        daemon.wait_ready(Duration::from_secs(20))?;
    }
    Ok(daemons)
}

/// `muster ping --json` to the nodes of `list` through `brokers`, each node given `timeout`.
fn ping(list: &str, brokers: &[String], timeout: &str) -> Run {
    muster(&[
        "ping",
        "--json",
        "--nodes",
        list,
        "-t",
        timeout,
        "--journal",
        "off",
    ])
    .broker(&brokers.join(","))
    .run()
}

/// How a report accounts for the expected nodes: `Ok(ok identities)` when every expected node
/// appears exactly once (a reply or a missing entry), nothing else appears, and only nodes that
/// replied are ok; otherwise why not.
fn accounting(report: &Value, expected: &BTreeSet<String>) -> Result<BTreeSet<String>, String> {
    let mut seen = BTreeSet::new();
    let mut ok = BTreeSet::new();
    let replies = report["replies"].as_array().ok_or("no replies list")?;
    let missing = report["missing"].as_array().ok_or("no missing list")?;
    for reply in replies {
        let sender = reply["sender"].as_str().ok_or("a reply without a sender")?;
        if !seen.insert(sender.to_string()) {
            return Err(format!("{sender} is reported twice"));
        }
        if reply["outcome"] == "ok" {
            ok.insert(sender.to_string());
        }
    }
    for entry in missing {
        let identity = entry["identity"]
            .as_str()
            .ok_or("a missing entry without identity")?;
        if !seen.insert(identity.to_string()) {
            return Err(format!("{identity} is reported twice"));
        }
        let outcome = entry["outcome"].as_str().unwrap_or_default();
        if !matches!(outcome, "no_reply" | "not_connected") {
            return Err(format!("{identity} is missing as {outcome:?}"));
        }
    }
    if &seen != expected {
        let extra: Vec<_> = seen.difference(expected).collect();
        let absent: Vec<_> = expected.difference(&seen).collect();
        return Err(format!(
            "not the expected nodes: extra {extra:?}, absent {absent:?}"
        ));
    }
    if report["stats"]["expected"].as_u64() != u64::try_from(expected.len()).ok()
        || report["stats"]["ok"].as_u64() != u64::try_from(ok.len()).ok()
    {
        return Err(format!(
            "stats disagree with the lists: {}",
            report["stats"]
        ));
    }
    Ok(ok)
}

/// Waits until a ping through `brokers` finds every node of `list` ok (interest crosses routes
/// and leaf connections a moment after the nodes subscribe).
fn wait_all_answer(
    what: &str,
    list: &str,
    brokers: &[String],
    expected: &BTreeSet<String>,
) -> Result<()> {
    wait_for(what, Duration::from_secs(30), || {
        let run = ping(list, brokers, "2");
        serde_json::from_str::<Value>(&run.stdout)
            .is_ok_and(|r| accounting(&r, expected).is_ok_and(|ok| ok.len() == expected.len()))
    })
}

/// A broadcast `rpc rpcutil ping` through `broker` finds and hears from every node.
fn broadcast_reaches_all(broker: &str, expected: &BTreeSet<String>) -> Result<()> {
    let mut last = String::new();
    let reached = wait_for(
        "a broadcast to reach every node",
        Duration::from_secs(20),
        || {
            let mut args = vec![
                "rpc",
                "rpcutil",
                "ping",
                "--json",
                "-t",
                "3",
                "--journal",
                "off",
            ];
            args.extend(patient());
            let run = muster(&args).broker(broker).run();
            let ok = serde_json::from_str::<Value>(&run.stdout)
                .is_ok_and(|r| accounting(&r, expected).is_ok_and(|ok| ok.len() == expected.len()));
            last = run.to_string();
            ok
        },
    );
    reached.map_err(|e| anyhow::anyhow!("{e}; the last attempt:\n{last}"))
}

/// Daemons and two simulated fleets on servers 1 and 2, a registry and the client on server 0:
/// every request crosses a route, by node list and by broadcast, and the registry (on another
/// server than every node) answers `--dm registry` and `facts --from-registry`.
#[test]
fn requests_cross_routes_and_the_registry_answers_from_another_server() -> Result<()> {
    let Some(cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let every_second = "registration_interval = \"1s\"";
    let mut specs = Vec::new();
    for i in 0..6_usize {
        let home = 1 + i % 2;
        let role = if i < 3 { "web" } else { "db" };
        let spec = DaemonSpec::new(&format!("routed{i}"))
            .facts(json!({"role": role}))
            .config(every_second);
        specs.push((spec, vec![cluster.url(home)]));
    }
    let daemons = daemons(specs)?;
    let _sims = [
        sim("routed-a", SIMULATED, &[cluster.url(1)], dir.path())?,
        sim("routed-b", SIMULATED, &[cluster.url(2)], dir.path())?,
    ];
    let _registry = fixture::registry(
        &dir.path().join("registry.sqlite"),
        &cluster.url(0),
        &dir.path().join("registry.log"),
    )?;

    let mut expected: BTreeSet<String> = daemons.iter().map(|d| d.identity.clone()).collect();
    expected.extend(sim_names("routed-a", SIMULATED));
    expected.extend(sim_names("routed-b", SIMULATED));
    let names: Vec<&str> = expected.iter().map(String::as_str).collect();
    let list = node_list(&names)?;
    let client = [cluster.url(0)];
    wait_all_answer(
        "every node to answer across routes",
        arg(&list),
        &client,
        &expected,
    )?;
    broadcast_reaches_all(&cluster.url(0), &expected)?;

    // The daemons register on their own; the simulated nodes only when the registry's hello
    // reaches them, which it may not (the registry can start before their subscriptions; the
    // hello has its own test). Whoever the registry knows must be one of the nodes, and answer.
    let daemons_only: BTreeSet<String> = daemons.iter().map(|d| d.identity.clone()).collect();
    let from_registry = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--json", "-t", "5", "--journal", "off"]);
        muster(&a).broker(&cluster.url(0)).run()
    };
    wait_for(
        "the registry to know the six daemons",
        Duration::from_secs(20),
        || {
            let run = from_registry(&["rpc", "rpcutil", "ping", "--dm", "registry"]);
            let Ok(report) = serde_json::from_str::<Value>(&run.stdout) else {
                return false;
            };
            let known: BTreeSet<String> = report["replies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["sender"].as_str())
                .chain(
                    report["missing"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m["identity"].as_str()),
                )
                .map(String::from)
                .collect();
            daemons_only.is_subset(&known)
                && known.is_subset(&expected)
                && accounting(&report, &known).is_ok_and(|ok| ok == known)
        },
    )?;
    let facts = from_registry(&["facts", "role", "--from-registry", "-I", "/^routed[0-9]$/"]);
    let answer = facts.code(0).json();
    assert_eq!(answer["source"], "registry", "{facts}");
    assert_eq!(
        answer["summary"]["values"],
        json!([
            {"value": "db", "count": 3, "nodes": ["routed3", "routed4", "routed5"]},
            {"value": "web", "count": 3, "nodes": ["routed0", "routed1", "routed2"]},
        ]),
        "{facts}"
    );
    Ok(())
}

/// Nodes on both sides of a leaf connection: a client on the hub reaches those on the leaf and
/// a client on the leaf those on the hub, by node list and by broadcast.
#[test]
fn requests_cross_a_leaf_node_both_ways() -> Result<()> {
    let Some(pair) = hub_with_leaf()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (hub, leaf) = (pair.hub_url(), pair.leaf_url());
    let daemons = daemons(vec![
        (DaemonSpec::new("site1"), vec![leaf.clone()]),
        (DaemonSpec::new("site2"), vec![leaf.clone()]),
        (DaemonSpec::new("central1"), vec![hub.clone()]),
        (DaemonSpec::new("central2"), vec![hub.clone()]),
    ])?;
    let half = SIMULATED / 2;
    let _sims = [
        sim("site", half, std::slice::from_ref(&leaf), dir.path())?,
        sim("central", half, std::slice::from_ref(&hub), dir.path())?,
    ];
    let mut expected: BTreeSet<String> = daemons.iter().map(|d| d.identity.clone()).collect();
    expected.extend(sim_names("site", half));
    expected.extend(sim_names("central", half));
    let names: Vec<&str> = expected.iter().map(String::as_str).collect();
    let list = node_list(&names)?;
    wait_all_answer(
        "every node to answer a client on the hub",
        arg(&list),
        std::slice::from_ref(&hub),
        &expected,
    )?;
    wait_all_answer(
        "every node to answer a client on the leaf",
        arg(&list),
        std::slice::from_ref(&leaf),
        &expected,
    )?;
    broadcast_reaches_all(&hub, &expected)?;
    broadcast_reaches_all(&leaf, &expected)?;
    Ok(())
}

/// One request of the stream: when it started and ended, and what it reported.
struct Sent {
    started: Instant,
    ended: Instant,
    run: Run,
}

/// Daemons and simulated nodes spread over three servers, each listing every server starting
/// with its own; the client lists every server starting with the one that dies. A stream of
/// pings runs while server 0 is killed: every report accounts for every expected node, and a
/// fully answered request ends within a few seconds of the kill (the figure is printed).
#[test]
fn a_dying_server_fails_over_and_every_node_stays_accounted_for() -> Result<()> {
    let Some(mut cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let specs = (0..6_usize)
        .map(|i| {
            (
                DaemonSpec::new(&format!("failover{i}")),
                cluster.urls_from(i % 3),
            )
        })
        .collect();
    let daemons = daemons(specs)?;
    let prefixes = ["failover-a", "failover-b", "failover-c"];
    let _sims = prefixes
        .iter()
        .enumerate()
        .map(|(home, prefix)| sim(prefix, SIMULATED, &cluster.urls_from(home), dir.path()))
        .collect::<Result<Vec<_>>>()?;
    let mut expected: BTreeSet<String> = daemons.iter().map(|d| d.identity.clone()).collect();
    for prefix in prefixes {
        expected.extend(sim_names(prefix, SIMULATED));
    }
    let names: Vec<&str> = expected.iter().map(String::as_str).collect();
    let list = node_list(&names)?;
    let client = cluster.urls();
    wait_all_answer(
        "every node to answer before the kill",
        arg(&list),
        &client,
        &expected,
    )?;

    let stop = AtomicBool::new(false);
    let sent = Mutex::new(Vec::<Sent>::new());
    let complete_after = |since: Instant| {
        sent.lock().unwrap().iter().any(|s| {
            s.started >= since
                && serde_json::from_str::<Value>(&s.run.stdout).is_ok_and(|r| {
                    accounting(&r, &expected).is_ok_and(|ok| ok.len() == expected.len())
                })
        })
    };
    let killed = std::thread::scope(|scope| -> Result<Instant> {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let run = ping(arg(&list), &client, "1");
                sent.lock().unwrap().push(Sent {
                    started,
                    ended: Instant::now(),
                    run,
                });
            }
        });
        let begun = Instant::now();
        let streaming = wait_for(
            "the stream to answer fully before the kill",
            Duration::from_secs(20),
            || complete_after(begun),
        );
        if streaming.is_err() {
            stop.store(true, Ordering::Relaxed);
            streaming?;
        }
        cluster.kill(0);
        let killed = Instant::now();
        let recovered = wait_for(
            "a fully answered request after the kill",
            Duration::from_secs(30),
            || complete_after(killed),
        );
        // One more request after the first complete one, so the stream goes on past recovery.
        let settled = Instant::now();
        let more = recovered.is_ok()
            && wait_for("one more request", Duration::from_secs(15), || {
                sent.lock().unwrap().iter().any(|s| s.started >= settled)
            })
            .is_ok();
        stop.store(true, Ordering::Relaxed);
        recovered?;
        ensure!(more, "the stream stopped after recovering");
        Ok(killed)
    })?;

    let sent = sent.into_inner().unwrap();
    let mut recovery = None;
    let mut answered = Vec::new();
    for (i, s) in sent.iter().enumerate() {
        let report: Value = serde_json::from_str(&s.run.stdout)
            .unwrap_or_else(|e| panic!("request {i} printed no report ({e}):\n{}", s.run));
        let ok = accounting(&report, &expected).unwrap_or_else(|why| {
            panic!(
                "request {i} does not account for every node: {why}\n{}",
                s.run
            )
        });
        answered.push(ok.len());
        if recovery.is_none() && s.started >= killed && ok.len() == expected.len() {
            recovery = Some(s.ended.duration_since(killed));
        }
    }
    let recovery = recovery.expect("a complete request after the kill");
    let during = sent.iter().filter(|s| s.ended >= killed).count();
    eprintln!(
        "failover: {} requests ({during} ending after the kill), {} nodes each, ok per request \
         {answered:?}; kill → first fully answered request: {} ms",
        sent.len(),
        expected.len(),
        recovery.as_millis()
    );
    assert!(
        recovery < Duration::from_secs(5),
        "the first fully answered request came {recovery:?} after the kill"
    );
    Ok(())
}
