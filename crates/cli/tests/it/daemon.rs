//! The node daemon (docs/design.md §2, §5): it survives garbage and counts it, reconnects after a
//! broker restart, reloads on SIGHUP, drains and exits on SIGTERM, and rejects bad configs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::Result;
use muster_testkit::{Daemon, DaemonSpec, UnixSignal, publish_raw, wait_for};
use serde_json::{Value, json};

use crate::cli::{bin, identities, muster};
use crate::fixture::{self, arg, node_list, text_file};

/// An inner request as the client would send it, with `patch` applied on top.
fn inner_request(patch: Value) -> String {
    let now = muster_proto::time::now();
    let mut request = json!({
        "protocol": "muster:request:1",
        "id": "0123456789abcdef0123456789abcdef",
        "time": now,
        "ttl": 60,
        "ack": true,
        "collective": "muster",
        "agent": "rpcutil",
        "action": "ping",
        "caller": "mallory",
        "sender": "test",
        "data": {},
        "filter": {}
    });
    if let (Some(request), Some(patch)) = (request.as_object_mut(), patch.as_object()) {
        for (k, v) in patch {
            request.insert(k.clone(), v.clone());
        }
    }
    request.to_string()
}

/// A secure envelope around `inner`.
fn envelope(inner: &str) -> Vec<u8> {
    json!({"protocol": "muster:secure:1", "request": inner})
        .to_string()
        .into_bytes()
}

/// Publishes `payloads` on `subject` with a reply subject (which `publish_raw` does not give),
/// through a plain NATS connection; returns once the broker has answered a PING after them.
fn publish_with_reply(url: &str, subject: &str, reply: &str, payloads: &[Vec<u8>]) -> Result<()> {
    let addr = url.trim_start_matches("nats://");
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    anyhow::ensure!(line.starts_with("INFO "), "expected INFO, got {line:?}");
    let mut out = stream;
    out.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")?;
    for payload in payloads {
        write!(out, "PUB {subject} {reply} {}\r\n", payload.len())?;
        out.write_all(payload)?;
        out.write_all(b"\r\n")?;
    }
    out.write_all(b"PING\r\n")?;
    loop {
        line.clear();
        anyhow::ensure!(reader.read_line(&mut line)? > 0, "the broker hung up");
        anyhow::ensure!(!line.starts_with("-ERR"), "the broker said {line:?}");
        if line.starts_with("PONG") {
            return Ok(());
        }
    }
}

on_both_brokers! {
    /// Garbage on the node's own subject and on the broadcast subject: the daemon keeps
    /// answering, and `rpcutil daemon_stats` shows every drop counted under its reason.
    fn garbage_is_dropped_counted_and_survived() -> Result<()> {
        let Some(fleet) =
            fixture::fleet(&[DaemonSpec::new("web1").config("max_request_bytes = 100000")])?
        else {
            return Ok(());
        };
        let huge = {
            let mut v = b"{\"protocol\":\"muster:secure:1\",\"request\":\"".to_vec();
            v.resize(900 * 1024, b'x');
            v.extend_from_slice(b"\"}");
            v
        };
        let deep = "[".repeat(100_000).into_bytes();
        let garbage: Vec<(&str, Vec<u8>)> = vec![
            ("malformed", b"not json at all".to_vec()),
            ("malformed", Vec::new()),
            ("malformed", vec![0xff, 0xfe, 0x00, 0x80, b'{']),
            ("malformed", deep),
            ("malformed", b"{\"protocol\":\"muster:secure:1\"}".to_vec()),
            ("malformed", envelope("this is no request")),
            ("malformed", envelope("{\"protocol\":\"muster:request:1\"}")),
            (
                "wrong_protocol",
                br#"{"protocol":"mcollective:2","request":"{}"}"#.to_vec(),
            ),
            (
                "wrong_protocol",
                envelope(&inner_request(json!({"protocol": "muster:request:0"}))),
            ),
            (
                "invalid_field",
                envelope(&inner_request(json!({"id": "not-a-request-id"}))),
            ),
            (
                "invalid_field",
                envelope(&inner_request(json!({"data": [1, 2, 3]}))),
            ),
            (
                "wrong_collective",
                envelope(&inner_request(json!({"collective": "other"}))),
            ),
            (
                "expired",
                envelope(&inner_request(json!({"time": 1_000_000_000.0}))),
            ),
            // Well formed and current, but published without a reply subject.
            ("no_reply_subject", envelope(&inner_request(json!({})))),
            ("too_large", huge),
        ];
        // Hostile filters come from the network too; these need a reply subject to get as far
        // as the filter.
        let hostile_filters: Vec<Vec<u8>> = [
            json!({"compound": format!("{}redis{}", "(".repeat(1000), ")".repeat(1000))}),
            json!({"compound": "role = web and ("}),
            json!({"identity": ["/(a{1000}){1000}/"]}),
            json!({"fact": [{"fact": "kernel", "op": "=~", "value": "(unclosed"}]}),
        ]
        .into_iter()
        .map(|filter| envelope(&inner_request(json!({ "filter": filter }))))
        .collect();

        let payloads: Vec<&[u8]> = garbage.iter().map(|(_, p)| p.as_slice()).collect();
        let subjects = ["muster.muster.node.web1", "muster.muster.broadcast.rpcutil"];
        for subject in subjects {
            publish_raw(&fleet.url(), subject, &payloads)?;
            publish_with_reply(&fleet.url(), subject, "_INBOX.nobody", &hostile_filters)?;
        }
        let mut expected = serde_json::Map::new();
        let reasons = garbage
            .iter()
            .map(|(reason, _)| *reason)
            .chain(hostile_filters.iter().map(|_| "bad_filter"));
        for reason in reasons {
            let n = expected.get(reason).and_then(Value::as_u64).unwrap_or(0);
            expected.insert(reason.to_string(), json!(n + subjects.len() as u64));
        }
        let total = ((garbage.len() + hostile_filters.len()) * subjects.len()) as u64;

        let web1 = &fleet.daemons[0];
        let mut stats = Value::Null;
        wait_for(
            "daemon_stats to count every drop",
            Duration::from_secs(10),
            || {
                let run = fleet
                    .muster(&["rpc", "rpcutil", "daemon_stats", "-I", "web1", "--json"])
                    .run();
                if run.code != Some(0) {
                    return false;
                }
                stats = run.json()["replies"][0]["data"].clone();
                stats["drops_total"].as_u64() >= Some(total)
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}; last stats: {stats:#}\n{}", web1.log()))?;
        assert_eq!(stats["drops"], Value::Object(expected), "{stats:#}");
        assert_eq!(stats["drops_total"], total, "{stats:#}");
        assert_eq!(stats["identity"], "web1", "{stats:#}");

        assert!(
            web1.answers_ping(),
            "the daemon stopped answering:\n{}",
            web1.log()
        );
        let nodes = node_list(&["web1"])?;
        fleet
            .muster(&["ping", "--nodes", arg(&nodes), "-t", "5"])
            .run()
            .code(0);
        assert!(!web1.log().contains("panicked"), "{}", web1.log());
        Ok(())
    }
}

on_both_brokers! {
    /// After the broker restarts (same port), the daemons reconnect and answer again.
    fn daemons_reconnect_after_a_broker_restart() -> Result<()> {
        let Some(mut fleet) = fixture::fleet(&[DaemonSpec::new("web1"), DaemonSpec::new("db1")])?
        else {
            return Ok(());
        };
        let nodes = node_list(&["web1", "db1"])?;
        let ping = ["ping", "--json", "-t", "2", "--nodes", arg(&nodes)];
        fleet.muster(&ping).run().code(0);

        fleet.nats.stop();
        // While it is down, the client says so (exit 5), naming the URL.
        fleet.muster(&ping).run().code(5).stderr_has(&fleet.url());

        fleet.nats.restart()?;
        let mut last = None;
        wait_for(
            "both daemons to answer after the broker restart",
            Duration::from_secs(20),
            || {
                let run = fleet.muster(&ping).run();
                let ok = run.code == Some(0);
                last = Some(run);
                ok
            },
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}\nlast attempt:\n{}",
                last.map(|r| r.to_string()).unwrap_or_default()
            )
        })?;
        for daemon in &fleet.daemons {
            assert!(
                daemon.log().contains("disconnected from the broker"),
                "{}",
                daemon.log()
            );
        }
        Ok(())
    }
}

on_both_brokers! {
    /// A daemon started while its broker is down connects when the broker comes up.
    fn a_daemon_waits_for_its_broker() -> Result<()> {
        let Some(mut nats) = fixture::broker()? else {
            return Ok(());
        };
        let url = nats.url();
        nats.stop();
        let daemon = Daemon::spawn(bin(), &url, &DaemonSpec::new("early1"))?;
        wait_for(
            "the daemon to try the absent broker",
            Duration::from_secs(10),
            || daemon.log().contains("connect"),
        )?;
        nats.restart()?;
        daemon.wait_ready(Duration::from_secs(20))?;
        Ok(())
    }
}

fn finds(fleet: &fixture::Fleet, filter: &str) -> Option<Vec<String>> {
    let run = fleet
        .muster(&["find", "--json", "--dt", "1", "-F", filter])
        .run();
    matches!(run.code, Some(0 | 4)).then(|| identities(&run.json()))
}

on_both_brokers! {
    /// SIGHUP reloads the facts and classes files; a broken file on reload keeps the previous
    /// facts.
    fn sighup_reloads_facts_and_classes() -> Result<()> {
        let Some(mut fleet) = fixture::fleet(&[
            DaemonSpec::new("web1")
                .facts(json!({"role": "web"}))
                .classes(&["nginx"]),
            DaemonSpec::new("web2")
                .facts(json!({"role": "web"}))
                .classes(&["nginx"]),
        ])?
        else {
            return Ok(());
        };
        let facts = fleet.daemon("web1").facts_path();
        // The testkit writes the classes file beside the facts file.
        let classes = facts.with_file_name("classes.txt");
        assert!(
            std::fs::read_to_string(fleet.daemon("web1").config_path())?
                .contains(&*classes.to_string_lossy()),
            "the daemon's classes file is not {}",
            classes.display()
        );
        std::fs::write(&facts, json!({"role": "newrole", "dc": "ams"}).to_string())?;
        std::fs::write(&classes, "haproxy\n")?;
        fleet.daemon("web1").signal(UnixSignal::SIGHUP)?;
        wait_for(
            "web1 to be found by its new role",
            Duration::from_secs(15),
            || finds(&fleet, "role=newrole") == Some(vec!["web1".to_string()]),
        )?;
        assert_eq!(
            finds(&fleet, "role=web"),
            Some(vec!["web2".to_string()]),
            "web1 still matches its old role"
        );
        let run = fleet
            .muster(&["find", "--json", "--dt", "1", "-C", "haproxy"])
            .run();
        assert_eq!(identities(&run.code(0).json()), ["web1"], "{run}");
        let run = fleet
            .muster(&["find", "--json", "--dt", "1", "-C", "nginx"])
            .run();
        assert_eq!(identities(&run.code(0).json()), ["web2"], "{run}");
        assert!(fleet.daemon("web1").log().contains("reloaded facts"));

        // A broken facts file: the reload fails, the daemon keeps its facts and keeps serving.
        std::fs::write(&facts, "{ not json")?;
        fleet.daemon("web1").signal(UnixSignal::SIGHUP)?;
        let web1 = fleet.daemon("web1");
        wait_for(
            "the failed reload to be logged",
            Duration::from_secs(15),
            || web1.log().contains("reload failed"),
        )?;
        assert!(web1.is_running());
        assert_eq!(
            finds(&fleet, "role=newrole"),
            Some(vec!["web1".to_string()])
        );
        Ok(())
    }
}

on_both_brokers! {
    /// SIGTERM (and Ctrl-C's SIGINT): the daemon stops taking requests, says so, and exits with
    /// code 0.
    fn sigterm_stops_the_daemon_cleanly() -> Result<()> {
        let Some(mut fleet) = fixture::fleet(&[DaemonSpec::new("web1"), DaemonSpec::new("web2")])?
        else {
            return Ok(());
        };
        for (identity, signal) in [("web1", UnixSignal::SIGTERM), ("web2", UnixSignal::SIGINT)] {
            let daemon = fleet.daemon(identity);
            daemon.signal(signal)?;
            let code = daemon.wait_exit(Duration::from_secs(10))?;
            assert_eq!(code, Some(0), "{signal}: {}", daemon.log());
            assert!(daemon.log().contains("shutting down"), "{}", daemon.log());
        }

        // Gone from the broker: a direct ping knows at once.
        let nodes = node_list(&["web1"])?;
        let run = fleet
            .muster(&["ping", "--json", "-t", "20", "--nodes", arg(&nodes)])
            .run();
        run.code(3);
        assert_eq!(
            run.json()["missing"][0]["outcome"],
            "not_connected",
            "{run}"
        );
        Ok(())
    }
}

/// `muster server` with a bad config: exit 2, naming the problem. None of these reach the
/// point of connecting (the broker URL is a dead port).
#[test]
fn server_config_errors_exit_2() -> Result<()> {
    let broker = format!("nats://127.0.0.1:{}", fixture::dead_port());
    let cases = [
        (
            format!("identity = \"web1\"\nbrokers = [{broker:?}]\nidentty = \"typo\"\n"),
            "identty",
        ),
        (
            format!("identity = \"web1\"\nbrokers = [{broker:?}]\nsecurity = \"open\"\n"),
            "open",
        ),
        (
            format!(
                "identity = \"web1\"\nbrokers = [{broker:?}]\nsecurity = \"insecure\"\nmax_concurrent = 0\n"
            ),
            "max_concurrent",
        ),
        (
            format!("identity = \"web1\"\nbrokers = [{broker:?}]\n"),
            "security = \"signed\" needs issuer, key, credential",
        ),
        (
            format!("identity = \"bad name\"\nbrokers = [{broker:?}]\n"),
            "identity",
        ),
        (
            format!(
                "identity = \"web1\"\nbrokers = [{broker:?}]\nsecurity = \"insecure\"\nfacts_files = [\"/nonexistent/facts.yaml\"]\n"
            ),
            "/nonexistent/facts.yaml",
        ),
    ];
    for (text, needle) in &cases {
        let config = text_file(text)?;
        let run = muster(&["server", "--config", arg(&config)]).run();
        run.code(2).stderr_has(needle);
        assert!(
            run.elapsed < Duration::from_secs(10),
            "took too long:\n{run}"
        );
    }
    let run = muster(&["server", "--config", "/nonexistent/server.toml"]).run();
    run.code(2).stderr_has("/nonexistent/server.toml");
    Ok(())
}

on_both_brokers! {
    /// SIGTERM lets a running action finish and send its reply before the daemon exits.
    fn sigterm_drains_running_actions() -> Result<()> {
        let spec = DaemonSpec::new("web1").config("[agents.shell]\nenabled = true");
        let Some(mut fleet) = fixture::fleet(&[spec])? else {
            return Ok(());
        };
        let url = fleet.url();
        let slow = std::process::Command::new(bin())
            .args(["rpc", "shell", "run", "command=sleep 1; echo drained", "-I", "web1"])
            .args(["--json", "-t", "20", "--broker", &url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        // Wait until the action is running on the node.
        wait_for("the shell action to be running", Duration::from_secs(10), || {
            let run = fleet
                .muster(&["rpc", "rpcutil", "daemon_stats", "-I", "web1", "--json"])
                .run();
            // daemon_stats itself runs in the rpcutil lane, not in an action slot.
            run.json()["replies"][0]["data"]["in_flight"].as_u64() == Some(1)
        })?;
        let daemon = fleet.daemon("web1");
        daemon.signal(UnixSignal::SIGTERM)?;
        let output = slow.wait_with_output()?;
        let report: Value = serde_json::from_slice(&output.stdout)?;
        assert_eq!(output.status.code(), Some(0), "{report}");
        assert_eq!(report["replies"][0]["data"]["stdout"], "drained\n", "{report}");
        assert_eq!(daemon.wait_exit(Duration::from_secs(10))?, Some(0), "{}", daemon.log());
        assert!(daemon.log().contains("all actions finished"), "{}", daemon.log());
        Ok(())
    }
}
