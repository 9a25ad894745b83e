//! Each outcome of an expected node and each exit code of docs/design.md §3.

use std::time::Duration;

use anyhow::{Context, Result};
use muster_testkit::{Daemon, DaemonSpec, wait_for};
use serde_json::json;

use crate::cli::{bin, identities, missing, muster, names, replies, run_all};
use crate::fixture::{self, FIVE, arg, dead_port, node_list, text_file};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

on_both_brokers! {
    /// Two of five nodes are dead: with a node list they are `not_connected` at once (the
    /// broker's no-responders status), so the command ends long before its timeout, with exit 3.
    fn killed_nodes_are_reported_not_connected_without_waiting() -> Result<()> {
        let Some(mut fleet) = fixture::fleet(&fixture::five_specs())? else {
            return Ok(());
        };
        fleet.daemon("web2").kill();
        fleet.daemon("db2").kill();
        let dead = node_list(&["web2", "db2"])?;
        // The broker drops a dead client's subscriptions when it sees the connection close;
        // wait for that (not for a fixed time).
        wait_for(
            "the broker to see web2 and db2 gone",
            Duration::from_secs(10),
            || {
                let run = fleet
                    .muster(&["ping", "--json", "-t", "1", "--nodes", arg(&dead)])
                    .run();
                run.code == Some(3)
                    && missing(&run.json())
                        == pairs(&[("web2", "not_connected"), ("db2", "not_connected")])
            },
        )?;

        let all = node_list(&FIVE)?;
        let run = fleet
            .muster(&["ping", "--json", "-t", "20", "--nodes", arg(&all)])
            .run();
        run.code(3);
        assert!(
            run.elapsed < Duration::from_secs(5),
            "waited for the timeout:\n{run}"
        );
        let report = run.json();
        assert_eq!(
            missing(&report),
            pairs(&[("web2", "not_connected"), ("db2", "not_connected")]),
            "{run}"
        );
        assert_eq!(
            replies(&report),
            pairs(&[("web1", "ok"), ("db1", "ok"), ("cache1", "ok")]),
            "{run}"
        );
        let stats = &report["stats"];
        assert_eq!(
            (
                &stats["expected"],
                &stats["responded"],
                &stats["ok"],
                &stats["missing"]
            ),
            (&json!(5), &json!(3), &json!(3), &json!(2)),
            "{run}"
        );

        let run = fleet
            .muster(&["ping", "-t", "20", "--nodes", arg(&all)])
            .run();
        run.code(3);
        assert!(
            run.elapsed < Duration::from_secs(5),
            "waited for the timeout:\n{run}"
        );
        let line = run.line("Did not respond:");
        assert!(
            line.contains("db2 (not connected)") && line.contains("web2 (not connected)"),
            "{run}"
        );
        assert!(
            run.line("Finished ").starts_with("Finished 3 of 5 nodes"),
            "{run}"
        );
        assert!(
            run.line("Finished ").ends_with("3 ok, 2 did not respond"),
            "{run}"
        );
        Ok(())
    }
}

/// A daemon that is connected but never answers: it requires signed requests and drops the
/// client's unsigned ones. (Its keys are throwaway ones, returned so they live as long.)
fn silent_node(identity: &str, broker: &str) -> Result<(Daemon, muster_testkit::pki::Pki)> {
    let pki = muster_testkit::pki::Pki::new()?;
    let node = Daemon::start(bin(), broker, &pki.signed(DaemonSpec::new(identity))?)
        .with_context(|| format!("the silent node {identity}"))?;
    Ok((node, pki))
}

on_both_brokers! {
    /// A node that is connected but never answers ends as `no_reply` at the timeout, exit 3.
    fn a_connected_node_that_never_answers_is_no_reply_at_the_timeout() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1")])? else {
            return Ok(());
        };
        let (silent, _keys) = silent_node("quiet1", &fleet.url())?;
        let nodes = node_list(&["web1", "quiet1"])?;

        let run = fleet
            .muster(&["ping", "--json", "-t", "1", "--nodes", arg(&nodes)])
            .run();
        run.code(3);
        let report = run.json();
        assert_eq!(missing(&report), pairs(&[("quiet1", "no_reply")]), "{run}");
        assert_eq!(replies(&report), pairs(&[("web1", "ok")]), "{run}");
        assert!(
            run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(5),
            "expected to wait for the 1 s timeout, no more:\n{run}"
        );

        let run = fleet
            .muster(&["ping", "-t", "1", "--nodes", arg(&nodes)])
            .run();
        run.code(3);
        assert!(
            run.line("Did not respond:").contains("quiet1 (no reply)"),
            "{run}"
        );
        // The silent node did see the requests, and says why it dropped them.
        assert!(silent.log().contains("unsigned"), "{}", silent.log());
        Ok(())
    }
}

on_both_brokers! {
    /// A node replying with a failure: exit 1, and the output names the node and the failure.
    /// Inputs the DDL refuses never leave the client: exit 2.
    fn a_failed_reply_exits_1_and_is_named() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1").facts(json!({"role": "web"}))])?
        else {
            return Ok(());
        };
        let ghost = node_list(&["web1", "ghost"])?;
        let web1 = node_list(&["web1"])?;
        let runs = run_all(
            8,
            vec![
                // No DDL here for this agent: the listed node answers "no agent", status 2.
                fleet.muster(&["rpc", "nosuchagent", "run", "--nodes", arg(&web1)]),
                fleet.muster(&["rpc", "nosuchagent", "run", "--nodes", arg(&web1), "--json"]),
                // A missing node wins over a failure: exit 3.
                fleet.muster(&[
                    "rpc",
                    "nosuchagent",
                    "run",
                    "-t",
                    "20",
                    "--nodes",
                    arg(&ghost),
                ]),
                fleet.muster(&["rpc", "rpcutil", "get_fact", "-I", "web1"]),
                fleet.muster(&["rpc", "rpcutil", "no_such_action", "-I", "web1"]),
                fleet.muster(&["rpc", "rpcutil", "get_fact", "fact=", "-I", "web1"]),
                fleet.muster(&["rpc", "rpcutil", "get_fact", "fact=a", "extra=1", "-I", "web1"]),
                // Discovered by a filter, a node without the agent is not expected at all.
                fleet.muster(&["rpc", "nosuchagent", "run", "-I", "web1", "--dt", "1"]),
            ],
        );
        runs[7]
            .code(4)
            .stderr_has("No nodes matched the filter with agent nosuchagent");

        runs[0]
            .code(1)
            .stdout_has("web1: FAILED (status 2): no agent \"nosuchagent\"")
            .stdout_has("Failed: web1 (Unknown action)");
        assert!(
            runs[0].line("Finished ").starts_with("Finished 1 of 1 nodes in ")
                && runs[0].line("Finished ").ends_with("0 ok, 1 failed"),
            "{}",
            runs[0]
        );
        let report = runs[1].code(1).json();
        assert_eq!(replies(&report), pairs(&[("web1", "failed")]), "{}", runs[1]);
        assert_eq!(report["replies"][0]["statuscode"], 2, "{}", runs[1]);
        assert_eq!(report["stats"]["failed"], 1, "{}", runs[1]);
        assert_eq!(report["stats"]["ok"], 0, "{}", runs[1]);
        runs[2]
            .code(3)
            .stdout_has("web1: FAILED (status 2)")
            .stdout_has("Did not respond: ghost (not connected)");

        let refused = [
            (3, "missing input fact: The fact's dotted path"),
            (4, "agent rpcutil has no action \"no_such_action\"; its actions are ping, inventory"),
            (5, "invalid input fact: it does not match"),
            (6, "unknown input \"extra\""),
        ];
        for (i, needle) in refused {
            runs[i].code(2).stderr_has(needle).stderr_has("muster plugin doc rpcutil");
            assert_eq!(runs[i].stdout, "", "{}", runs[i]);
        }
        Ok(())
    }
}

on_both_brokers! {
    /// No node matched: exit 4, "No nodes matched" on stderr, nothing sent.
    fn no_match_exits_4() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1").facts(json!({"role": "web"}))])?
        else {
            return Ok(());
        };
        let empty = text_file("# nobody\n\n")?;
        let runs = run_all(
            8,
            vec![
                fleet.muster(&["ping", "-F", "role=nothing", "--dt", "1"]),
                fleet.muster(&["find", "-F", "role=nothing", "--dt", "1"]),
                fleet.muster(&["rpc", "rpcutil", "ping", "-F", "role=nothing", "--dt", "1"]),
                fleet.muster(&["facts", "role", "-C", "nothing", "--dt", "1"]),
                fleet.muster(&["ping", "--nodes", arg(&empty)]),
                fleet.muster(&["rpc", "rpcutil", "ping", "--nodes", arg(&empty)]),
                fleet.muster(&["ping", "-F", "role=nothing", "--dt", "1", "--json"]),
                fleet.muster(&["find", "-F", "role=nothing", "--dt", "1", "--json"]),
            ],
        );
        for run in &runs[..6] {
            run.code(4).stderr_has("No nodes matched");
            assert!(!run.stdout.contains("Finished"), "{run}");
        }
        // With --json the answer is on stdout, in the usual shapes, and stderr stays quiet.
        let report = runs[6].code(4).json();
        assert_eq!(report["stats"]["expected"], 0, "{}", runs[6]);
        assert_eq!(report["replies"], json!([]), "{}", runs[6]);
        assert_eq!(runs[7].code(4).json(), json!([]), "{}", runs[7]);
        for run in &runs[6..] {
            assert_eq!(run.stderr, "", "{run}");
        }
        Ok(())
    }
}

on_both_brokers! {
    /// With no daemon subscribed at all, discovery ends at once (no responders), not after --dt.
    fn an_empty_broker_matches_nothing_at_once() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let run = muster(&["ping", "--dt", "20"]).broker(&nats.url()).run();
        run.code(4).stderr_has("No nodes matched");
        assert!(
            run.elapsed < Duration::from_secs(5),
            "waited for the discovery timeout:\n{run}"
        );
        Ok(())
    }
}

/// The broker cannot be reached: exit 5, and the message names the broker URL.
#[test]
fn an_unreachable_broker_exits_5_naming_it() -> Result<()> {
    let url = format!("nats://127.0.0.1:{}", dead_port());
    let nodes = node_list(&["web1"])?;
    let commands: Vec<Vec<&str>> = vec![
        vec!["ping"],
        vec!["ping", "--json"],
        vec!["ping", "--nodes", arg(&nodes)],
        vec!["find"],
        vec!["facts", "role"],
        vec!["inventory", "web1"],
        vec!["rpc", "rpcutil", "daemon_stats"],
    ];
    let mut runs = run_all(
        8,
        commands
            .iter()
            .map(|args| muster(args).broker(&url))
            .collect(),
    );
    // MUSTER_BROKER works as well as --broker.
    runs.push(muster(&["ping"]).env("MUSTER_BROKER", &url).run());
    for run in &runs {
        run.code(5)
            .stderr_has(&format!("cannot reach the broker at {url}"));
        // With --json the failure is one JSON object on stdout (docs/design.md §3).
        if run.args.iter().any(|a| a == "--json") {
            assert_eq!(run.json()["error"]["kind"], "broker_unreachable", "{run}");
        } else {
            assert_eq!(run.stdout, "", "{run}");
        }
    }
    Ok(())
}

on_both_brokers! {
    /// Usage errors: exit 2 with a message saying what is wrong (a live broker is given, so
    /// the code cannot come from failing to reach one).
    fn usage_errors_exit_2() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let bad_list = text_file("web1\nbad name\n")?;
        let bad_json_list = text_file("[\"web1\", 3]")?;
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["ping", "-F", "role"], "invalid fact filter"),
            (vec!["ping", "-F", "=web"], "the fact name is empty"),
            (vec!["ping", "-F", "role="], "the value is empty"),
            (vec!["ping", "-F", "kernel=~(unclosed"], "invalid regex"),
            (vec!["ping", "-C", "/[z-a]/"], "invalid regex"),
            (vec!["ping", "-I", "/(/"], "invalid regex"),
            (vec!["find", "-W", "nginx =web"], "invalid -W filter"),
            (
                vec!["ping", "-S", "fact.role = and class = web"],
                "at position 12",
            ),
            (
                vec!["ping", "-S", "(role=web"],
                "never closed at position 0",
            ),
            (vec!["ping", "-S", "role=web)"], "at position 8"),
            (vec!["find", "-S", "role=web nginx"], "at position 9"),
            (
                vec!["find", "-S", "semver(fact('version'), '>= 1.2')"],
                "semver() is not supported",
            ),
            (
                vec!["ping", "-S", "with('a=b=c')"],
                "holds 2 comparison operators",
            ),
            (
                vec!["rpc", "rpcutil", "get_fact", "role"],
                "is not key=value",
            ),
            (vec!["rpc", "rpcutil", "get_fact", "=role"], "empty key"),
            (vec!["rpc", "bad.agent", "ping"], "agent"),
            (vec!["inventory", "bad name"], "bad name"),
            (
                vec!["ping", "--nodes", "/nonexistent/nodes.txt"],
                "cannot read the node list /nonexistent/nodes.txt",
            ),
            (vec!["ping", "--nodes", arg(&bad_list)], "entry 2"),
            (
                vec!["ping", "--nodes", arg(&bad_list), "-F", "role=web"],
                "--nodes gives the expected set",
            ),
            (
                vec!["rpc", "rpcutil", "ping", "--nodes", arg(&bad_json_list)],
                "node list",
            ),
            (vec!["ping", "--timeout=-1"], "--timeout"),
            (vec!["ping", "--dt=-1"], "--dt"),
            (vec!["ping", "--dm", "nodes"], "--nodes"),
            (vec!["ping", "-T", "bad.collective"], "collective"),
            (
                vec!["ping", "--config", "/nonexistent/client.toml"],
                "/nonexistent/client.toml",
            ),
            (vec!["ping", "--no-such-flag"], "--no-such-flag"),
            (vec!["frobnicate"], "frobnicate"),
        ];
        let runs = run_all(
            12,
            cases
                .iter()
                .map(|(args, _)| muster(args).broker(&nats.url()))
                .collect(),
        );
        for ((_, needle), run) in cases.iter().zip(&runs) {
            run.code(2).stderr_has(needle);
            assert_eq!(run.stdout, "", "{run}");
        }
        Ok(())
    }
}

on_both_brokers! {
    /// Exit 0 when every expected node replied OK — the baseline the other codes differ from.
    fn all_ok_exits_0() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1"), DaemonSpec::new("web2")])? else {
            return Ok(());
        };
        let nodes = node_list(&["web1", "web2"])?;
        let runs = run_all(
            4,
            vec![
                fleet.muster(&["ping", "--nodes", arg(&nodes)]),
                fleet.muster(&["rpc", "rpcutil", "ping", "--nodes", arg(&nodes), "--json"]),
            ],
        );
        runs[0].code(0).stdout_has("Finished 2 of 2 nodes in ");
        assert!(!runs[0].stdout.contains("Did not respond"), "{}", runs[0]);
        let report = runs[1].code(0).json();
        assert_eq!(
            replies(&report),
            names(&["web1", "web2"])
                .into_iter()
                .map(|n| (n, "ok".to_string()))
                .collect::<Vec<_>>()
        );
        Ok(())
    }
}

/// A `-S` syntax error points at the position, with the expression and a caret under it
/// (the example of docs/client.md, verbatim).
#[test]
fn an_unsupported_choria_form_shows_where() {
    let url = format!("nats://127.0.0.1:{}", dead_port());
    let run = muster(&["find", "-S", "with('nginx') and scout('x').ok"])
        .broker(&url)
        .run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "muster: invalid filter: unknown function 'scout()': the functions are with(), fact() \
         and include(); Choria's data plugins (scout('…').field) are not supported at position 18\n\
         with('nginx') and scout('x').ok\n\
         \x20                 ^\n",
        "{run}"
    );
}

#[test]
fn a_compound_syntax_error_shows_where() {
    let url = format!("nats://127.0.0.1:{}", dead_port());
    let run = muster(&["find", "-S", "role = web and (class = nginx"])
        .broker(&url)
        .run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "muster: invalid filter: unbalanced parenthesis: this '(' is never closed at position 15\n\
         role = web and (class = nginx\n\
         \x20              ^\n",
        "{run}"
    );
}

/// Starts a registry on `url` and has it know `identity` (with these agents) as if it had just
/// registered: a registration published by hand, again until the registry answers with it.
/// Returns the registry and its directory, which live as long as the test needs them.
fn registry_knowing(
    url: &str,
    identity: &str,
    agents: &[&str],
) -> Result<(fixture::Background, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let registry = fixture::registry(
        &dir.path().join("registry.sqlite"),
        url,
        &dir.path().join("registry.log"),
    )?;
    wait_for(
        &format!("the registry to know {identity}"),
        Duration::from_secs(15),
        || {
            let now = muster_proto::time::now();
            let registration = json!({"protocol": "muster:registration:1", "identity": identity,
            "agents": agents, "collectives": ["muster"], "time": now})
            .to_string();
            let _ = muster_testkit::publish_raw(
                url,
                "muster.muster.registration",
                &[registration.as_bytes()],
            );
            let out = muster(&["find", "--dm", "registry", "--json"])
                .broker(url)
                .run();
            serde_json::from_str::<Vec<String>>(&out.stdout)
                .is_ok_and(|found| found.iter().any(|f| f == identity))
        },
    )?;
    Ok((registry, dir))
}

on_both_brokers! {
    /// A discovered set above `direct_limit` nodes is sent one broadcast: a node that is not
    /// connected is then known only at the timeout, as `no_reply` (docs/client.md), and the
    /// others still answer. (Here the absent node is one a registry saw recently, which
    /// broadcast discovery adds to the expected set.)
    fn broadcast_delivery_reports_absent_nodes_at_the_timeout() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1"), DaemonSpec::new("web2")])? else {
            return Ok(());
        };
        let config = small_direct_limit()?;
        let rpc = |timeout: &str| {
            fleet
                .muster(&["rpc", "rpcutil", "ping", "--json", "-t", timeout, "--config", arg(&config)])
                .run()
        };
        // Every expected node answered: no waiting for the timeout.
        let run = rpc("20");
        let report = run.code(0).json();
        assert_eq!(replies(&report), pairs(&[("web1", "ok"), ("web2", "ok")]), "{run}");
        assert!(run.elapsed < Duration::from_secs(5), "{run}");

        let (_registry, _dir) = registry_knowing(&fleet.url(), "ghost", &["rpcutil"])?;
        let run = rpc("1");
        let report = run.code(3).json();
        assert_eq!(missing(&report), pairs(&[("ghost", "no_reply")]), "{run}");
        assert_eq!(replies(&report), pairs(&[("web1", "ok"), ("web2", "ok")]), "{run}");
        assert!(run.elapsed >= Duration::from_secs(1), "{run}");
        Ok(())
    }
}

on_both_brokers! {
    /// A reply larger than the broker's max_payload is replaced by an error reply saying so
    /// (docs/design.md §2): the node is `failed`, not silently missing.
    fn an_oversized_reply_becomes_an_error_reply() -> Result<()> {
        let blob = "x".repeat(1_200_000);
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("big1").facts(json!({"blob": blob}))])?
        else {
            return Ok(());
        };
        let runs = run_all(
            4,
            vec![
                fleet.muster(&[
                    "rpc",
                    "rpcutil",
                    "get_fact",
                    "fact=blob",
                    "-I",
                    "big1",
                    "--json",
                ]),
                fleet.muster(&["inventory", "big1"]),
            ],
        );
        let report = runs[0].code(1).json();
        assert_eq!(
            replies(&report),
            pairs(&[("big1", "failed")]),
            "{}",
            runs[0]
        );
        assert_eq!(report["replies"][0]["statuscode"], 5, "{}", runs[0]);
        let message = report["replies"][0]["statusmsg"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("max_payload"), "{}", runs[0]);
        runs[1]
            .code(1)
            .stdout_has("big1: FAILED (status 5)")
            .stdout_has("max_payload");
        Ok(())
    }
}

on_both_brokers! {
    /// Identities may contain dots (docs/design.md §2): such a node is addressed directly like
    /// any other.
    fn dotted_identities_work() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[
            DaemonSpec::new("web1.example.com").classes(&["nginx"]),
            DaemonSpec::new("web1").classes(&["nginx"]),
        ])?
        else {
            return Ok(());
        };
        let nodes = node_list(&["web1.example.com", "web1.example.org"])?;
        let runs = run_all(
            4,
            vec![
                fleet.muster(&["ping", "--json", "-t", "20", "--nodes", arg(&nodes)]),
                fleet.muster(&["find", "--json", "-I", "/example/", "--dt", "3"]),
                fleet.muster(&["inventory", "web1.example.com"]),
            ],
        );
        let report = runs[0].code(3).json();
        assert_eq!(
            replies(&report),
            pairs(&[("web1.example.com", "ok")]),
            "{}",
            runs[0]
        );
        assert_eq!(
            missing(&report),
            pairs(&[("web1.example.org", "not_connected")]),
            "{}",
            runs[0]
        );
        assert!(runs[0].elapsed < Duration::from_secs(5), "{}", runs[0]);
        assert_eq!(
            crate::cli::identities(&runs[1].code(0).json()),
            ["web1.example.com"],
            "{}",
            runs[1]
        );
        runs[2]
            .code(0)
            .stdout_has("Inventory for web1.example.com:");
        Ok(())
    }
}

/// The node list is read before connecting: a bad one is a usage error even with no broker.
#[test]
fn a_bad_node_list_is_exit_2_even_when_the_broker_is_down() {
    let url = format!("nats://127.0.0.1:{}", dead_port());
    muster(&["ping", "--nodes", "/nonexistent/nodes.txt"])
        .broker(&url)
        .run()
        .code(2)
        .stderr_has("cannot read the node list");
}

on_both_brokers! {
    /// The node validates again: a request sent without the client's checks is answered with
    /// status 3 (missing input) or 4 (invalid input), and nothing runs.
    fn the_node_refuses_invalid_inputs_sent_raw() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1").facts(json!({"role": "web"}))])?
        else {
            return Ok(());
        };
        let runtime = tokio::runtime::Runtime::new()?;
        let cases = [
            (json!({}), 3, "missing input fact"),
            (json!({"fact": 5}), 4, "invalid input fact: expected a string"),
            (json!({"fact": "has space"}), 4, "invalid input fact: it does not match"),
            (json!({"fact": "role", "extra": 1}), 4, "unknown input \"extra\""),
            (json!({"fact": "role"}), 0, "OK"),
        ];
        runtime.block_on(async {
            let client = muster_client::Client::connect(&muster_client::ConnectConfig {
                brokers: vec![fleet.url()],
                ..Default::default()
            })
            .await?;
            let nodes = std::collections::BTreeSet::from(["web1".to_string()]);
            for (data, status, needle) in cases {
                let call = muster_client::Call {
                    data: data.clone(),
                    ..muster_client::Call::new("rpcutil", "get_fact")
                };
                let report = client
                    .request(&call, &nodes, &Default::default(), 0, &mut |_| {})
                    .await?;
                let reply = &report.replies[0];
                assert_eq!(reply.statuscode, status, "{data}: {reply:?}");
                assert!(reply.statusmsg.contains(needle), "{data}: {reply:?}");
            }
            anyhow::Ok(())
        })
    }
}

on_both_brokers! {
    /// A node outside the expected set that answers anyway (here a simulated node that ignores
    /// filters, as a broken or foreign daemon would) is shown and counted as `unexpected`, and
    /// does not change the exit code of a request whose expected nodes all answered. A node
    /// that acknowledges but answers after the timeout is `timeout`.
    fn unexpected_and_timeout_outcomes() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let url = nats.url();
        let sim = |prefix: &str, fault: &[&str], log: &std::path::Path| {
            let mut args = vec!["sim", "--nodes", "1", "--prefix", prefix];
            args.extend(fault);
            fixture::Background::start(&args.iter().map(std::ffi::OsStr::new).collect::<Vec<_>>(), &url, log)
        };
        // A registry expects slow-00001: a registration is published for it. Virtual nodes
        // register only when a starting registry's hello asks them to, so the registry starts
        // before the simulators and knows only slow-00001. Above direct_limit the request is one
        // broadcast naming it in its filter: the stray node gets it too, and answers.
        let (_registry, _dir) = registry_knowing(&url, "slow-00001", &["rpcutil", "sim"])?;
        let logs = [tempfile::NamedTempFile::new()?, tempfile::NamedTempFile::new()?];
        // The expected node answers after a second, so the request is still collecting when
        // the stray node's answer arrives.
        let _expected = sim("slow", &["--slow", "100%:1s"], logs[0].path())?;
        let _stray = sim("stray", &["--stray", "100%"], logs[1].path())?;
        let both = node_list(&["slow-00001", "stray-00001"])?;
        wait_for("the simulated nodes to answer", Duration::from_secs(20), || {
            muster(&["ping", "--nodes", arg(&both), "-t", "5"]).broker(&url).run().code == Some(0)
        })?;
        let config = text_file("direct_limit = 0\n")?;
        let slow = node_list(&["slow-00001"])?;
        let args = ["rpc", "rpcutil", "ping", "-t", "10", "--config", arg(&config), "--dm", "registry"];
        let run = muster(&[&args[..], &["--json"]].concat()).broker(&url).run();
        let report = run.code(0).json();
        assert_eq!(report["stats"]["expected"], 1, "{run}");
        assert_eq!(report["stats"]["ok"], 1, "{run}");
        assert_eq!(report["stats"]["unexpected"], 1, "{run}");
        assert_eq!(
            replies(&report),
            pairs(&[("slow-00001", "ok"), ("stray-00001", "unexpected")]),
            "{run}"
        );
        let human = muster(&[&args[..], &["-v"]].concat()).broker(&url).run();
        human
            .code(0)
            .stdout_has("stray-00001 (unexpected: not in the expected set)")
            .stdout_has("1 unexpected");

        // The same node given less time than it takes: it acknowledged, so `timeout`.
        let impatient = ["rpc", "rpcutil", "ping", "-t", "0.3", "--nodes", arg(&slow)];
        let run = muster(&[&impatient[..], &["--json"]].concat()).broker(&url).run();
        assert_eq!(
            missing(&run.code(3).json()),
            pairs(&[("slow-00001", "timeout")]),
            "{run}"
        );
        muster(&impatient)
            .broker(&url)
            .run()
            .code(3)
            .stdout_has("slow-00001 (acknowledged, no reply in time)");
        Ok(())
    }
}

/// A client config whose `direct_limit` is 1, so that a set of two nodes or more is sent the
/// way a set above 1,000 nodes is by default; and patient discovery.
fn small_direct_limit() -> Result<tempfile::NamedTempFile> {
    text_file("direct_limit = 1\ndiscovery_quiet = \"500ms\"\ndiscovery_timeout = \"4s\"\n")
}

on_both_brokers! {
    /// `rpc AGENT` discovers only nodes that have the agent (MCollective and Choria add it to
    /// the filter), by broadcast, by registry and when a registry reconciles broadcast
    /// discovery; a node that lacks it is not expected. `find -A`, `ping` and `facts` still
    /// see every node.
    fn rpc_discovers_only_nodes_with_the_agent() -> Result<()> {
        let specs = vec![
            DaemonSpec::new("web1")
                .config("registration_interval = \"1s\"\n[agents.shell]\nenabled = true"),
            DaemonSpec::new("web2").config("registration_interval = \"1s\""),
        ];
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let config = small_direct_limit()?;
        let with = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--config", arg(&config), "-t", "10"]);
            fleet.muster(&a).run()
        };
        let check = |run: &crate::cli::Run| {
            let report = run.code(0).json();
            assert_eq!(replies(&report), pairs(&[("web1", "ok")]), "{run}");
            assert_eq!(report["stats"]["expected"], 1, "{run}");
        };
        check(&with(&["rpc", "shell", "run", "command=true", "--json"]));
        let run = with(&["rpc", "shell", "run", "command=true", "-I", "web2"]);
        run.code(4).stderr_has("with agent shell");
        assert_eq!(identities(&with(&["find", "-A", "shell", "--json"]).json()), ["web1"]);
        assert_eq!(identities(&with(&["find", "--json"]).json()), ["web1", "web2"]);
        let run = with(&["ping", "--json"]);
        assert_eq!(replies(&run.code(0).json()), pairs(&[("web1", "ok"), ("web2", "ok")]), "{run}");

        // A registry that knows both nodes neither adds web2 to broadcast discovery nor
        // expects it with --dm registry.
        let dir = tempfile::tempdir()?;
        let _registry = fixture::registry(
            &dir.path().join("registry.sqlite"),
            &fleet.url(),
            &dir.path().join("registry.log"),
        )?;
        wait_for("the registry to know both nodes", Duration::from_secs(15), || {
            let out = with(&["ping", "--dm", "registry", "--json"]);
            serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|report| report["stats"]["ok"] == 2)
        })?;
        check(&with(&["rpc", "shell", "run", "command=true", "--json"]));
        check(&with(&["rpc", "shell", "run", "command=true", "--dm", "registry", "--json"]));
        Ok(())
    }
}

on_both_brokers! {
    /// A node list says who should answer, so a node on it that lacks the agent is reported:
    /// it answered, `failed` with status 2 and the node's "no agent" message, never a
    /// `no_reply` after the timeout — also for a set large enough to be broadcast otherwise
    /// (a node does not subscribe to the broadcast subject of an agent it lacks), and for
    /// `retry`. Not connected nodes are named at once (`not_connected`, not `no_reply`) too.
    fn a_listed_node_that_lacks_the_agent_says_so() -> Result<()> {
        let specs = vec![
            DaemonSpec::new("web1").config("[agents.shell]\nenabled = true"),
            DaemonSpec::new("web2"),
            DaemonSpec::new("web3"),
        ];
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let config = small_direct_limit()?;
        let nodes = node_list(&["web1", "web2", "web3", "gone1"])?;
        let first = fleet
            .muster(&[
                "rpc", "shell", "run", "command=true", "--nodes", arg(&nodes), "--json",
                "--config", arg(&config), "-t", "20",
            ])
            .run();
        first.code(3);
        let report = first.json();
        assert_eq!(
            replies(&report),
            pairs(&[("web1", "ok"), ("web2", "failed"), ("web3", "failed")]),
            "{first}"
        );
        assert_eq!(missing(&report), pairs(&[("gone1", "not_connected")]), "{first}");
        for reply in report["replies"].as_array().into_iter().flatten() {
            if reply["outcome"] == "failed" {
                assert_eq!(reply["statuscode"], 2, "{first}");
                assert!(
                    reply["statusmsg"].as_str().unwrap_or_default().contains("no agent \"shell\""),
                    "{first}"
                );
            }
        }
        let id = report["request_id"].as_str().unwrap_or_default();
        let retry = fleet
            .muster(&["retry", id, "--failed", "--json", "--config", arg(&config), "-t", "20"])
            .run();
        retry.code(1);
        assert_eq!(
            replies(&retry.json()),
            pairs(&[("web2", "failed"), ("web3", "failed")]),
            "{retry}"
        );
        let ping = fleet
            .muster(&["ping", "--nodes", arg(&nodes), "--json", "--config", arg(&config), "-t", "20"])
            .run();
        ping.code(3);
        assert_eq!(missing(&ping.json()), pairs(&[("gone1", "not_connected")]), "{ping}");
        Ok(())
    }
}
