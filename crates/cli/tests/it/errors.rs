//! What a failure says: a connection failure names the URL and the cause (refused, TLS: unknown
//! issuer, TLS: certificate required, auth failed) with a hint that fits it, in the client, the
//! daemon and the registry; no message is printed twice; and with `--json` every failure is one
//! JSON object on stdout (docs/design.md §3).

use anyhow::Result;
use muster_testkit::tls::TestCerts;

use crate::cli::muster;
use crate::fixture;

/// The `[transport]` table for a client or daemon of a TLS broker that wants a client
/// certificate and the user `muster` with password `s3cret`.
fn transport(
    ca: &std::path::Path,
    cert: Option<(&std::path::Path, &std::path::Path)>,
    password: &str,
) -> String {
    let mut t =
        format!("[transport]\ntls_ca = {ca:?}\nuser = \"muster\"\npassword = {password:?}\n");
    if let Some((cert, key)) = cert {
        t.push_str(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"));
    }
    t
}

/// Each way the client's connection fails, with what its message and hint must say and what
/// they must not.
fn causes(url: &str, certs: &TestCerts) -> Result<()> {
    let other = TestCerts::new()?;
    let (cert, key) = certs.client();
    let dir = tempfile::tempdir()?;
    let cases: [(&str, String, &[&str], &[&str]); 6] = [
        (
            "unknown-issuer",
            transport(&other.ca(), Some((&cert, &key)), fixture::BROKER_PASSWORD),
            &["TLS: unknown issuer", "[transport] tls_ca"],
            &["Is it running?", "IO error"],
        ),
        (
            "certificate-required",
            transport(&certs.ca(), None, fixture::BROKER_PASSWORD),
            &[
                "TLS: certificate required",
                "[transport] tls_cert and tls_key",
            ],
            &["Is it running?", "IO error"],
        ),
        (
            "auth-failed",
            transport(&certs.ca(), Some((&cert, &key)), "wrong"),
            &["auth failed", "[transport] user and password"],
            &["Is it running?", "IO error"],
        ),
        (
            "no-credentials",
            format!(
                "[transport]\ntls_ca = {:?}\ntls_cert = {cert:?}\ntls_key = {key:?}\n",
                certs.ca()
            ),
            &["auth failed", "set [transport] user and password, or token"],
            &["Is it running?", "IO error"],
        ),
        (
            "plain",
            String::new(),
            &["TLS: unknown issuer", "set [transport] tls_ca"],
            &["Is it running?", "IO error"],
        ),
        (
            "good",
            transport(&certs.ca(), Some((&cert, &key)), fixture::BROKER_PASSWORD),
            &[],
            &[],
        ),
    ];
    for (name, config, wanted, unwanted) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, &config)?;
        let run = muster(&["ping", "--config", path.to_str().unwrap_or_default()])
            .broker(url)
            .run();
        if name == "good" {
            // Nobody is up: the connection works and nothing matched.
            run.code(4);
            continue;
        }
        run.code(5).stderr_has(url);
        for w in wanted {
            assert!(
                run.stderr.contains(w),
                "{name}: wanted {w:?} in\n{}",
                run.stderr
            );
        }
        for u in unwanted {
            assert!(
                !run.stderr.contains(u),
                "{name}: unwanted {u:?} in\n{}",
                run.stderr
            );
        }
    }
    Ok(())
}

#[test]
fn a_refused_connection_says_refused_and_asks_whether_the_broker_runs() {
    let url = format!("nats://127.0.0.1:{}", fixture::dead_port());
    let run = muster(&["ping"]).broker(&url).run();
    run.code(5)
        .stderr_has(&format!(
            "cannot reach the broker at {url}: connection refused"
        ))
        .stderr_has("Is it running?");
    assert!(!run.stderr.contains("IO error"), "{}", run.stderr);
}

/// nats-server with TLS, client certificates and a password.
#[test]
fn connection_failures_name_the_cause_on_nats_server() -> Result<()> {
    let certs = TestCerts::new()?;
    let Some(nats) = fixture::secured_nats_server(&certs)? else {
        return Ok(());
    };
    causes(&nats.url(), &certs)
}

/// The embedded broker with TLS, client certificates and a password.
#[test]
fn connection_failures_name_the_cause_on_the_embedded_broker() -> Result<()> {
    let certs = TestCerts::new()?;
    let broker = fixture::secured_embedded_broker(&certs)?;
    causes(&broker.url(), &certs)
}

/// A daemon without the client certificate the broker wants says so while it retries, with
/// the URL, and connects once the config has it.
#[test]
fn the_daemon_says_why_it_cannot_connect_while_it_retries() -> Result<()> {
    let certs = TestCerts::new()?;
    let broker = fixture::secured_embedded_broker(&certs)?;
    let url = broker.url();
    let spec = muster_testkit::DaemonSpec::new("web1").config(&transport(
        &certs.ca(),
        None,
        fixture::BROKER_PASSWORD,
    ));
    let daemon = muster_testkit::Daemon::spawn(crate::cli::bin(), &url, &spec)?;
    let needle =
        format!("cannot connect to the broker at {url}: TLS: certificate required; retrying");
    let said = muster_testkit::wait_for(
        "the cause in the log",
        std::time::Duration::from_secs(15),
        || daemon.log().contains(&needle),
    );
    assert!(said.is_ok(), "no {needle:?} in\n{}", daemon.log());
    assert!(
        daemon.log().contains("[transport] tls_cert and tls_key"),
        "{}",
        daemon.log()
    );
    Ok(())
}

/// The registry names the cause too.
#[test]
fn the_registry_says_why_it_cannot_connect() {
    let url = format!("nats://127.0.0.1:{}", fixture::dead_port());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let run = muster(&["registry", "--db", db.to_str().unwrap()])
        .broker(&url)
        .run();
    run.code(5)
        .stderr_has(&format!(
            "cannot reach the broker at {url}: connection refused"
        ))
        .stderr_has("Is it running?");
}

/// No part of a message is said twice: not "X: X" within a line, not the same line twice.
fn said_once(run: &crate::cli::Run) {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    for (i, line) in lines.iter().enumerate() {
        assert!(
            !lines[..i].contains(line),
            "{:?} said twice:\n{}",
            line,
            run.stderr
        );
        let parts: Vec<&str> = line.split(": ").collect();
        for w in parts.windows(2) {
            assert!(
                w[0] != w[1] && !w[0].ends_with(w[1]),
                "{:?} repeats {:?}:\n{}",
                line,
                w[1],
                run.stderr
            );
        }
    }
}

/// With `--json` every failure is exactly one JSON value on stdout — `{"error": {"kind",
/// "message"}}` for exits 2 and 5, the report with zero nodes (find: its empty list) for exit
/// 4 — with the exit code of docs/design.md §3; people still read it on stderr, once.
#[test]
fn with_json_every_failure_is_one_json_object() -> Result<()> {
    let broker = muster_testkit::EmbeddedBroker::start()?;
    let url = broker.url();
    let dead = format!("nats://127.0.0.1:{}", fixture::dead_port());
    let bad_nodes = fixture::text_file("web1\nnot an identity!\n")?;
    let bad_config = fixture::text_file("brokerz = []\n")?;
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["ping", "--json", "--bogus"], 2, "usage"),
        (vec!["facts", "--json"], 2, "usage"),
        (
            vec!["ping", "--json", "--config", "/nonexistent/client.toml"],
            2,
            "config",
        ),
        (
            vec!["find", "--json", "--config", fixture::arg(&bad_config)],
            2,
            "config",
        ),
        (
            vec!["ping", "--json", "-F", "x~~", "--broker", &url],
            2,
            "usage",
        ),
        (
            vec![
                "ping",
                "--json",
                "--nodes",
                fixture::arg(&bad_nodes),
                "--broker",
                &url,
            ],
            2,
            "invalid_input",
        ),
        (
            vec!["ping", "--json", "--broker", &dead],
            5,
            "broker_unreachable",
        ),
        (
            vec!["facts", "os.family", "--json", "--broker", &dead],
            5,
            "broker_unreachable",
        ),
        (
            vec!["ping", "--json", "--broker", &url, "--dt", "0.3"],
            4,
            "no_match",
        ),
        (
            vec!["find", "--json", "--broker", &url, "--dt", "0.3"],
            4,
            "no_match",
        ),
        (
            vec![
                "facts",
                "os.family",
                "--json",
                "--broker",
                &url,
                "--dt",
                "0.3",
            ],
            4,
            "no_match",
        ),
        (
            vec![
                "rpc", "rpcutil", "ping", "--json", "--broker", &url, "--dt", "0.3",
            ],
            4,
            "no_match",
        ),
    ];
    for (args, code, kind) in cases {
        let run = muster(&args).run();
        run.code(code);
        let value: serde_json::Value =
            serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
                panic!(
                    "{args:?}: stdout is not one JSON object ({e}):\n{}",
                    run.stdout
                )
            });
        if kind == "no_match" {
            // Exit 4 is the command's own JSON with zero nodes: the report, find's list.
            let zero = value["stats"]["expected"] == 0 || value == serde_json::json!([]);
            assert!(zero, "{args:?}: {value}");
            said_once(&run);
            continue;
        }
        assert_eq!(value["schema"], "muster:error:1", "{args:?}: {value}");
        assert_eq!(value["error"]["kind"], kind, "{args:?}: {value}");
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{args:?}: {value}");
        said_once(&run);
    }
    Ok(())
}

/// A message whose text embeds its cause does not print the cause again ("X: X").
#[test]
fn an_error_is_printed_once() {
    for args in [
        vec!["server", "--config", "/nonexistent/server.toml"],
        vec!["ping", "--config", "/nonexistent/client.toml"],
        vec!["ping", "-F", "x~~"],
    ] {
        let run = muster(&args).run();
        run.code(2);
        said_once(&run);
    }
}
