//! Signed mode (docs/design.md §7) with real daemons: every kind of hostile request is dropped
//! or denied before anything runs, and leaves its line in the audit log; honest requests run;
//! forged replies and registrations are rejected; a flood of hostile messages does not stop a
//! node serving.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use muster_proto::envelope::REQUEST_PROTOCOL;
use muster_proto::time::{self, now};
use muster_proto::{Request, Response, SecureEnvelope, SignedMessage, subject};
use muster_security::SecretKey;
use muster_security::credential::{Credential, Kind};
use muster_security::signed::sign_request;
use muster_testkit::pki::{CallerFiles, Pki};
use muster_testkit::{DaemonSpec, wait_for};
use serde_json::{Value, json};

use crate::cli::{missing, muster, replies};
use crate::fixture::{self, stand_in};

fn request(caller: &str, agent: &str, action: &str, data: Value) -> Request {
    Request {
        protocol: REQUEST_PROTOCOL.to_string(),
        id: uuid_like(),
        time: now(),
        ttl: 60,
        ack: false,
        collective: "muster".into(),
        agent: agent.into(),
        action: action.into(),
        caller: caller.into(),
        sender: "test".into(),
        data,
        filter: Default::default(),
    }
}

/// A fresh 32-hex-character request id.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:016x}", (now() * 1e6) as u64, n)
}

fn signed_by(caller: &CallerFiles, request: &Request) -> Result<SecureEnvelope> {
    let key = SecretKey::read(&caller.key)?;
    let credential = std::fs::read_to_string(&caller.credential)?;
    Ok(sign_request(request, &key, credential.trim()))
}

/// Sends envelopes to `node` directly and returns the replies that came back while waiting
/// for `until` to hold.
fn send(
    url: &str,
    node: &str,
    envelopes: &[Vec<u8>],
    until: impl Fn() -> bool,
) -> Result<Vec<Response>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = async_nats_client(url).await?;
        let nats = client.nats();
        let inbox = nats.new_inbox();
        let mut sub = nats.subscribe(format!("{inbox}.>")).await?;
        for (i, e) in envelopes.iter().enumerate() {
            nats.publish_with_reply(
                subject::node("muster", node),
                format!("{inbox}.{i}"),
                e.clone().into(),
            )
            .await?;
        }
        nats.flush().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        loop {
            if until() {
                // Anything already on its way arrives with the broker's answer to a flush.
                nats.flush().await?;
                while let Some(Some(m)) = futures::FutureExt::now_or_never(sub.next()) {
                    got.extend(open(&m.payload));
                }
                return Ok(got);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("timed out waiting for the node to decide");
            }
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), sub.next()).await {
                got.extend(open(&m.payload));
            }
        }
    })
}

async fn async_nats_client(url: &str) -> Result<muster_client::Client> {
    Ok(
        muster_client::Client::connect(&muster_client::ConnectConfig {
            brokers: vec![url.to_string()],
            ..Default::default()
        })
        .await?,
    )
}

/// A node's message, unwrapped from its signature (checked elsewhere).
fn open(payload: &[u8]) -> Option<Response> {
    let signed: SignedMessage = serde_json::from_slice(payload).ok()?;
    Response::decode(signed.message.as_bytes()).ok()
}

/// The audit record of request `id`, once there is one.
fn audit_of(pki: &Pki, node: &str, id: &str) -> Option<Value> {
    pki.audit(node)
        .into_iter()
        .find(|r| r["request_id"].as_str() == Some(id))
}

fn calls(marker: &Path) -> String {
    std::fs::read_to_string(marker).unwrap_or_default()
}

/// How many times the stand-in `systemctl` was asked to restart nginx.
fn restarts(marker: &Path) -> usize {
    calls(marker)
        .lines()
        .filter(|l| *l == "restart nginx")
        .count()
}

on_both_brokers! {
    /// docs/design.md §7's checks with a real daemon: each hostile request is dropped (or denied
    /// with status 6) and audited, and runs nothing; honest requests run; a replayed one does
    /// not.
    fn hostile_requests_never_run_and_each_leaves_an_audit_line() -> Result<()> {
        let pki = Pki::new()?;
        let dir = tempfile::tempdir()?;
        let marker = dir.path().join("calls");
        let systemctl = stand_in(
            dir.path(),
            "systemctl",
            &format!("echo \"$@\" >> {marker:?}\ncase \"$1\" in is-active) echo active;; esac"),
        )?;
        pki.policy("service", "policy default deny\nallow\talice ci\t*\t*\t*\n")?;
        pki.policy("rpcutil", "policy default allow\n")?;
        let spec = pki
            .signed(DaemonSpec::new("web1"))?
            .config(&format!("[agents.service]\nsystemctl = {systemctl:?}"));
        let Some(fleet) = fixture::fleet(&[spec])? else {
            return Ok(());
        };
        let url = fleet.url();
        let alice = pki.caller("alice", None)?;
        let bob = pki.caller("bob", None)?;
        let ci = pki.caller("ci", Some(&["rpcutil"]))?;
        let old = pki.expired_caller("old")?;
        let config = |c: &CallerFiles, name: &str| pki.client_config(c, name, "");
        let nodes = fixture::node_list(&["web1"])?;
        let restart = |extra: &[&str]| {
            let mut a = vec!["rpc", "service", "restart", "service=nginx", "--nodes", fixture::arg(&nodes), "-t", "2", "--json"];
            a.extend(extra);
            muster(&a).broker(&url).run()
        };

        // Unsigned: dropped, no reply; the client says why nobody may have answered.
        let run = restart(&[]);
        assert_eq!(missing(&run.code(3).json()), [("web1".to_string(), "no_reply".to_string())]);
        run.stderr_has("not signed");
        // Expired credential: dropped.
        let old_config = config(&old, "old")?;
        restart(&["--config", old_config.to_str().unwrap_or_default()]).code(3);
        // Denied by policy, and by the credential's agent limits: status 6, named.
        for (caller, name) in [(&bob, "bob"), (&ci, "ci")] {
            let c = config(caller, name)?;
            let run = restart(&["--config", c.to_str().unwrap_or_default()]);
            let report = run.code(1).json();
            assert_eq!(report["replies"][0]["statuscode"], 6, "{run}");
            assert!(report["replies"][0]["statusmsg"].as_str().unwrap_or("").starts_with("not authorized"), "{run}");
        }

        // For people: the denial, and no empty summary of outputs nobody returned.
        let bob_config = config(&bob, "bob")?;
        let human = muster(&["rpc", "service", "restart", "service=nginx", "--nodes", fixture::arg(&nodes), "-t", "2", "--config", bob_config.to_str().unwrap_or_default()])
            .broker(&url)
            .run();
        human.code(1).stdout_has("web1: FAILED (status 6): not authorized: policy service: the default");
        assert!(!human.stdout.contains("Summary of"), "{human}");

        // Forged and bent requests, sent raw.
        let restart_as = |caller: &str| request(caller, "service", "restart", json!({"service": "nginx"}));
        let mallory = SecretKey::generate();
        let mallory_issuer = SecretKey::generate();
        let self_made = Credential::new(Kind::Caller, "alice", &mallory.public(), time::whole_secs(now()) - 60, 3600, None)
            .map_err(anyhow::Error::msg)?
            .issue(&mallory_issuer);
        let unknown_key = sign_request(&restart_as("alice"), &mallory, &self_made);
        let alice_credential = std::fs::read_to_string(&alice.credential)?;
        let wrong_key = sign_request(&restart_as("alice"), &mallory, alice_credential.trim());
        let mut tampered = signed_by(&alice, &request("alice", "service", "status", json!({"service": "nginx"})))?;
        tampered.request = tampered.request.replace("\"status\"", "\"restart\"");
        let mut late = restart_as("alice");
        late.time -= 3600.0;
        let late = signed_by(&alice, &late)?;
        let impostor = signed_by(&alice, &restart_as("root"))?;
        let cases: Vec<(SecureEnvelope, &str)> = vec![
            (unknown_key, "unknown_issuer"),
            (wrong_key, "bad_signature"),
            (tampered, "bad_signature"),
            (late, "expired"),
            (impostor, "caller_mismatch"),
        ];
        let ids: Vec<String> = cases
            .iter()
            .map(|(e, _)| Request::decode(&e.request).map(|r| r.id).unwrap_or_default())
            .collect();
        let answers = send(
            &url,
            "web1",
            &cases.iter().map(|(e, _)| e.to_bytes()).collect::<Vec<_>>(),
            || ids.iter().all(|id| audit_of(&pki, "web1", id).is_some()),
        )
        .with_context(|| format!("ids {ids:?}\naudit: {:#?}", pki.audit("web1")))?;
        assert!(answers.is_empty(), "untrusted requests get no reply: {answers:?}");
        for ((_, reason), id) in cases.iter().zip(&ids) {
            let record = audit_of(&pki, "web1", id).context("an audit record")?;
            assert_eq!(record["decision"], "dropped", "{record}");
            assert!(record["reason"].as_str().unwrap_or("").starts_with(reason), "{reason}: {record}");
        }
        let audit = pki.audit("web1");
        let reasons: Vec<&str> = audit.iter().filter_map(|r| r["reason"].as_str()).collect();
        for needle in ["unsigned", "credential_expired", "policy service: the default", "credential limits ci to agents rpcutil"] {
            assert!(reasons.iter().any(|r| r.starts_with(needle) || r.contains(needle)), "{needle}: {reasons:?}");
        }
        assert_eq!(calls(&marker), "", "nothing ran");

        // An honest request runs once; the same bytes again are a replay, dropped and audited.
        let honest = signed_by(&alice, &restart_as("alice"))?;
        let id = Request::decode(&honest.request)?.id;
        let got = send(&url, "web1", &[honest.to_bytes()], || restarts(&marker) == 1)?;
        let _ = got;
        wait_for("the honest request's audit line", Duration::from_secs(10), || {
            audit_of(&pki, "web1", &id).is_some_and(|r| r["decision"] == "allowed")
        })?;
        let replayed = send(&url, "web1", &[honest.to_bytes()], || {
            pki.audit("web1").iter().any(|r| r["request_id"] == id.as_str() && r["decision"] == "dropped")
        })?;
        assert!(replayed.is_empty(), "{replayed:?}");
        let record = pki.audit("web1").into_iter().rev().find(|r| r["request_id"] == id.as_str()).context("replay record")?;
        assert_eq!(record["reason"].as_str().unwrap_or("").split(':').next(), Some("replayed"));
        assert_eq!(restarts(&marker), 1, "the replay did not run");

        // And through the CLI, as an operator would.
        let alice_config = config(&alice, "alice")?;
        let run = restart(&["--config", alice_config.to_str().unwrap_or_default()]);
        assert_eq!(replies(&run.code(0).json()), [("web1".to_string(), "ok".to_string())]);
        assert_eq!(restarts(&marker), 2);
        Ok(())
    }
}

on_both_brokers! {
    /// A client that knows the issuer ignores replies that are not signed by a node it
    /// vouches for; a registry that knows it ignores forged registrations.
    fn forged_replies_and_registrations_are_rejected() -> Result<()> {
        let pki = Pki::new()?;
        pki.policy("rpcutil", "policy default allow\n")?;
        // web2 runs without keys: its replies and registrations carry no signature.
        let specs = [
            pki.signed(DaemonSpec::new("web1"))?.config("registration_interval = \"1s\""),
            DaemonSpec::new("web2"),
        ];
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let url = fleet.url();
        let alice = pki.caller("alice", None)?;
        let config = pki.client_config(&alice, "alice", "")?;
        let config = config.to_str().unwrap_or_default();
        let both = fixture::node_list(&["web1", "web2"])?;
        let run = muster(&["ping", "--nodes", fixture::arg(&both), "-t", "1", "--json", "--config", config])
            .broker(&url)
            .run();
        let report = run.code(3).json();
        assert_eq!(replies(&report), [("web1".to_string(), "ok".to_string())], "{run}");
        assert_eq!(missing(&report), [("web2".to_string(), "no_reply".to_string())], "{run}");
        assert_eq!(report["ignored"][0]["reason"], "unsigned", "{run}");

        let dir = tempfile::tempdir()?;
        let _registry = fixture::Background::start(
            &[
                "registry".as_ref(),
                "--db".as_ref(),
                dir.path().join("r.sqlite").as_os_str(),
                "--issuer".as_ref(),
                pki.issuer_public().as_os_str(),
            ],
            &url,
            &dir.path().join("registry.log"),
        )?;
        // A registration for web9 signed with web1's key and credential.
        let web1_key = SecretKey::read(&pki.dir().join("node-web1.key"))?;
        let web1_credential = std::fs::read_to_string(pki.dir().join("node-web1.cred"))?;
        let forged = format!(
            r#"{{"protocol":"muster:registration:1","identity":"web9","facts":{{}},"time":{}}}"#,
            now()
        );
        let forged = muster_security::signed::sign_message(forged, &web1_key, web1_credential.trim());
        let registry_view = || {
            muster(&["find", "--dm", "registry", "--json", "--config", config])
                .broker(&url)
                .run()
        };
        wait_for("the registry to know web1", Duration::from_secs(15), || {
            registry_view().code == Some(0)
        })?;
        muster_testkit::publish_raw(&url, "muster.muster.registration", &[&forged])?;
        // web1 registers every second: once a registration of it newer than the forgery is
        // in, the forgery has been handled too.
        let sent = now();
        wait_for("a newer registration of web1", Duration::from_secs(15), || {
            let out = muster(&["inventory", "web1", "--from-registry", "--json", "--config", config])
                .broker(&url)
                .run();
            serde_json::from_str::<Value>(&out.stdout).is_ok_and(|v| {
                v["last_seen"]
                    .as_str()
                    .and_then(|t| humantime::parse_rfc3339(t).ok())
                    .is_some_and(|t| time::unix(t) > sent + 1.0)
            })
        })?;
        let known = registry_view().json();
        assert_eq!(known, json!(["web1"]), "neither web2 (unsigned) nor web9 (forged)");

        // A collected request in a signed fleet: the registry takes the caller's signed record
        // and web1's signed reply.
        let web1 = fixture::node_list(&["web1"])?;
        let sent = muster(&["rpc", "rpcutil", "ping", "--no-results", "--nodes", fixture::arg(&web1), "-t", "1", "--config", config, "--journal", "off"])
            .broker(&url)
            .run();
        let id = sent.code(0).stdout.trim().to_string();
        wait_for("the registry to have web1's signed reply", Duration::from_secs(15), || {
            let shown = muster(&["show", &id, "--json", "--journal", "off", "--config", config])
                .broker(&url)
                .run();
            shown.code == Some(0) && shown.json()["stats"]["ok"] == 1
        })?;
        Ok(())
    }
}

on_both_brokers! {
    /// Thousands of hostile messages later, the node still serves an honest request, and
    /// `daemon_stats` counts every drop under its reason.
    fn a_flood_of_hostile_messages_is_counted_and_honest_requests_still_run() -> Result<()> {
        let pki = Pki::new()?;
        pki.policy("rpcutil", "policy default deny\nallow\talice\t*\t*\t*\n")?;
        let Some(fleet) = fixture::fleet(&[pki.signed(DaemonSpec::new("web1"))?])? else {
            return Ok(());
        };
        let url = fleet.url();
        let alice = pki.caller("alice", None)?;
        let config = pki.client_config(&alice, "alice", "")?;
        let config = config.to_str().unwrap_or_default();
        let mallory = SecretKey::generate();
        let alice_credential = std::fs::read_to_string(&alice.credential)?;
        const EACH: usize = 700;
        let mut flood: Vec<Vec<u8>> = Vec::new();
        for i in 0..EACH {
            flood.push(format!("garbage {i}").into_bytes());
            let ping = request("alice", "rpcutil", "ping", json!({}));
            flood.push(SecureEnvelope::unsigned(&ping).to_bytes());
            flood.push(sign_request(&ping, &mallory, alice_credential.trim()).to_bytes());
        }
        let nodes = fixture::node_list(&["web1"])?;
        let stats = || {
            muster(&["rpc", "rpcutil", "daemon_stats", "--nodes", fixture::arg(&nodes), "--json", "--config", config])
                .broker(&url)
                .run()
        };
        let counted = |s: &Value, reason: &str| s["replies"][0]["data"]["drops"][reason].as_u64().unwrap_or(0);
        let answers = send(&url, "web1", &flood, || {
            let s = stats().json();
            ["malformed", "unsigned", "bad_signature"]
                .iter()
                .all(|r| counted(&s, r) >= EACH as u64)
        })?;
        assert!(answers.is_empty(), "{} replies to hostile messages", answers.len());
        let s = stats().json();
        for reason in ["malformed", "unsigned", "bad_signature"] {
            assert_eq!(counted(&s, reason), EACH as u64, "{reason}: {s}");
        }
        let run = muster(&["ping", "--nodes", fixture::arg(&nodes), "--config", config])
            .broker(&url)
            .run();
        run.code(0);
        assert_eq!(
            pki.audit("web1").iter().filter(|r| r["decision"] == "dropped").count(),
            3 * EACH,
            "every drop is audited"
        );
        Ok(())
    }
}

on_both_brokers! {
    /// Policies (and the groups file) are read again on SIGHUP; a policy line that cannot be
    /// understood denies the requests that reach it, loudly, instead of allowing them.
    fn policies_reload_and_a_broken_one_denies() -> Result<()> {
        let pki = Pki::new()?;
        pki.policy("rpcutil", "policy default deny\nallow\talice\t*\t*\t*\n")?;
        let Some(fleet) = fixture::fleet(&[pki.signed(DaemonSpec::new("web1"))?])? else {
            return Ok(());
        };
        let url = fleet.url();
        let nodes = fixture::node_list(&["web1"])?;
        let ping_as = |name: &str| -> Result<crate::cli::Run> {
            let caller = pki.caller(name, None)?;
            let config = pki.client_config(&caller, name, "")?;
            Ok(muster(&["rpc", "rpcutil", "ping", "--nodes", fixture::arg(&nodes), "--json", "--config", config.to_str().unwrap_or_default()])
                .broker(&url)
                .run())
        };
        assert_eq!(ping_as("bob")?.code(1).json()["replies"][0]["statuscode"], 6);
        ping_as("alice")?.code(0);

        pki.policy("rpcutil", "policy default deny\nallow\talice bob\t*\t*\t*\n")?;
        fleet.daemons[0].signal(muster_testkit::UnixSignal::SIGHUP)?;
        wait_for("bob to be allowed after the reload", Duration::from_secs(15), || {
            ping_as("bob").is_ok_and(|r| r.code == Some(0))
        })?;

        pki.policy("rpcutil", "policy default deny\nallow alice\n")?;
        fleet.daemons[0].signal(muster_testkit::UnixSignal::SIGHUP)?;
        wait_for("the broken policy to deny alice", Duration::from_secs(15), || {
            ping_as("alice").is_ok_and(|r| r.code == Some(1) && r.stdout.contains("line 2 could not be understood"))
        })?;
        assert!(fleet.daemons[0].log().contains("BROKEN POLICY"), "{}", fleet.daemons[0].log());

        // `!` negates, as in MCollective: web1 is no canary, so the deny applies.
        pki.policy("rpcutil", "policy default deny\ndeny\t*\t*\t*\t!canary\nallow\t*\t*\t*\t*\n")?;
        fleet.daemons[0].signal(muster_testkit::UnixSignal::SIGHUP)?;
        wait_for("the deny for non-canaries", Duration::from_secs(15), || {
            ping_as("alice").is_ok_and(|r| r.code == Some(1) && r.stdout.contains("policy rpcutil: rule on line 2"))
        })?;

        // A data function reads the node: fstat() of a file allows while it is there (the
        // decision runs off the node's async workers, under a deadline).
        let flag = tempfile::NamedTempFile::new()?;
        let flag_path = flag.path().display().to_string();
        pki.policy("rpcutil", &format!("policy default deny\nallow\talice\t*\tfstat('{flag_path}').present=1\n"))?;
        fleet.daemons[0].signal(muster_testkit::UnixSignal::SIGHUP)?;
        wait_for("fstat() to allow alice", Duration::from_secs(15), || {
            ping_as("alice").is_ok_and(|r| r.code == Some(0))
        })?;
        drop(flag);
        ping_as("alice")?.code(1).stdout_has("policy rpcutil: the default");

        // A deny naming a group of the groups file denies its members.
        std::fs::write(pki.policy_directory().join("groups"), "contractors bob\n")?;
        pki.policy("rpcutil", "policy default deny\ndeny\tcontractors\t*\t*\t*\nallow\t*\t*\t*\t*\n")?;
        fleet.daemons[0].signal(muster_testkit::UnixSignal::SIGHUP)?;
        wait_for("alice to be allowed after the reload", Duration::from_secs(15), || {
            ping_as("alice").is_ok_and(|r| r.code == Some(0))
        })?;
        ping_as("bob")?.code(1).stdout_has("policy rpcutil: rule on line 2");

        // A groups line that cannot be read would let the group's members past its deny:
        // every request is denied instead, and the log says why.
        std::fs::write(pki.policy_directory().join("groups"), "contractors bob\ntemps\n")?;
        fleet.daemons[0].signal(muster_testkit::UnixSignal::SIGHUP)?;
        wait_for("the broken groups file to deny alice", Duration::from_secs(15), || {
            ping_as("alice").is_ok_and(|r| r.code == Some(1) && r.stdout.contains("groups"))
        })?;
        ping_as("bob")?.code(1);
        assert!(
            fleet.daemons[0].log().contains("BROKEN POLICY") && fleet.daemons[0].log().contains("temps"),
            "{}",
            fleet.daemons[0].log()
        );
        Ok(())
    }
}

/// TLS with a client certificate and a NATS user and password, on `url`: daemon and client
/// connect with them, and without them the client cannot.
fn tls_and_credentials(url: &str, certs: &muster_testkit::tls::TestCerts) -> Result<()> {
    let (cert, key) = certs.client();
    let transport = |with_cert: bool, password: &str| {
        let mut t = format!(
            "[transport]\ntls_ca = {:?}\nuser = \"muster\"\npassword = {password:?}\n",
            certs.ca()
        );
        if with_cert {
            t.push_str(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"));
        }
        t
    };
    let pki = Pki::new()?;
    pki.policy("rpcutil", "policy default allow\n")?;
    let spec = pki
        .signed(DaemonSpec::new("web1"))?
        .config(&transport(true, fixture::BROKER_PASSWORD));
    let _daemon = muster_testkit::Daemon::start(crate::cli::bin(), url, &spec)?;
    let alice = pki.caller("alice", None)?;
    let nodes = fixture::node_list(&["web1"])?;
    let ping = |extra: &str, name: &str| -> Result<crate::cli::Run> {
        let config = pki.client_config(&alice, name, extra)?;
        Ok(muster(&[
            "ping",
            "--nodes",
            fixture::arg(&nodes),
            "--config",
            config.to_str().unwrap_or_default(),
        ])
        .broker(url)
        .run())
    };
    ping(&transport(true, fixture::BROKER_PASSWORD), "good")?.code(0);
    ping(&transport(false, fixture::BROKER_PASSWORD), "no-cert")?.code(5);
    ping(&transport(true, "wrong"), "bad-password")?.code(5);
    ping("", "plain")?.code(5);
    Ok(())
}

/// TLS and broker credentials with nats-server serving the TLS.
#[test]
fn tls_with_client_certificates_and_broker_credentials_on_nats_server() -> Result<()> {
    let certs = muster_testkit::tls::TestCerts::new()?;
    let Some(nats) = fixture::secured_nats_server(&certs)? else {
        return Ok(());
    };
    tls_and_credentials(&nats.url(), &certs)
}

/// The same with the embedded broker serving the TLS.
#[test]
fn tls_with_client_certificates_and_broker_credentials_on_the_embedded_broker() -> Result<()> {
    let certs = muster_testkit::tls::TestCerts::new()?;
    let broker = fixture::secured_embedded_broker(&certs)?;
    tls_and_credentials(&broker.url(), &certs)
}

/// `muster sim` takes the `[transport]` of its `--config` file, as the registry does: its
/// virtual nodes connect to a broker that wants TLS, a client certificate and a password, and
/// answer; without the settings it says why it cannot connect.
fn the_simulator_connects_with_its_configs_transport(
    url: &str,
    certs: &muster_testkit::tls::TestCerts,
) -> Result<()> {
    let (cert, key) = certs.client();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!(
            "[transport]\ntls_ca = {:?}\ntls_cert = {cert:?}\ntls_key = {key:?}\nuser = \"muster\"\npassword = {:?}\n",
            certs.ca(),
            fixture::BROKER_PASSWORD
        ),
    )?;
    let _sim = fixture::Background::start(
        &[
            "sim".as_ref(),
            "--nodes".as_ref(),
            "2".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        url,
        &dir.path().join("sim.log"),
    )?;
    let nodes = fixture::node_list(&["sim-00001", "sim-00002"])?;
    let config = config.to_str().unwrap_or_default();
    wait_for(
        "the simulated nodes to answer",
        Duration::from_secs(20),
        || {
            muster(&[
                "ping",
                "--nodes",
                fixture::arg(&nodes),
                "--config",
                config,
                "-t",
                "5",
            ])
            .broker(url)
            .run()
            .code
                == Some(0)
        },
    )?;
    muster(&["sim", "--nodes", "1"])
        .broker(url)
        .run()
        .code(5)
        .stderr_has(&format!(
            "cannot reach the broker at {url}: TLS: unknown issuer"
        ))
        .stderr_has("set [transport] tls_ca");
    Ok(())
}

/// The simulator with TLS and broker credentials on nats-server.
#[test]
fn the_simulator_connects_with_tls_and_credentials_on_nats_server() -> Result<()> {
    let certs = muster_testkit::tls::TestCerts::new()?;
    let Some(nats) = fixture::secured_nats_server(&certs)? else {
        return Ok(());
    };
    the_simulator_connects_with_its_configs_transport(&nats.url(), &certs)
}

/// The same on the embedded broker.
#[test]
fn the_simulator_connects_with_tls_and_credentials_on_the_embedded_broker() -> Result<()> {
    let certs = muster_testkit::tls::TestCerts::new()?;
    let broker = fixture::secured_embedded_broker(&certs)?;
    the_simulator_connects_with_its_configs_transport(&broker.url(), &certs)
}

/// With `private_inboxes` the embedded broker lets no client subscribe to another's reply
/// inbox — not with wildcards, and not by its name after seeing it on a request.
#[test]
fn the_embedded_broker_keeps_reply_inboxes_private() -> Result<()> {
    let broker = muster_testkit::EmbeddedBroker::with_config(muster_broker::BrokerConfig {
        private_inboxes: true,
        ..Default::default()
    })?;
    let url = broker.url();
    let _daemon = muster_testkit::Daemon::start(crate::cli::bin(), &url, &DaemonSpec::new("web1"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let nodes = fixture::node_list(&["web1"])?;
    let (heard, seen_reply) = runtime.block_on(async {
        let spy = async_nats_client(&url).await?;
        let nats = spy.nats();
        let mut wide = Vec::new();
        for pattern in [">", "_INBOX.>", "_INBOX.*.>", "*.*.>"] {
            wide.push(nats.subscribe(pattern.to_string()).await?);
        }
        let mut requests = nats
            .subscribe("muster.muster.node.web1".to_string())
            .await?;
        nats.flush().await?;
        // An operator pings web1; the spy sees the request and its reply subject...
        let url2 = url.clone();
        let list = fixture::arg(&nodes).to_string();
        let ping = tokio::task::spawn_blocking(move || {
            muster(&["ping", "--nodes", &list, "-t", "5"])
                .broker(&url2)
                .run()
        });
        let request = tokio::time::timeout(Duration::from_secs(10), requests.next())
            .await?
            .context("the spy sees the request")?;
        let reply_to = request.reply.context("a reply subject")?.to_string();
        // ...and tries to listen there.
        let mut targeted = nats.subscribe(reply_to.clone()).await?;
        let inbox_all = format!(
            "{}.>",
            reply_to
                .rsplit_once('.')
                .map_or(reply_to.as_str(), |(p, _)| p)
        );
        let mut targeted_all = nats.subscribe(inbox_all).await?;
        let run = ping.await?;
        run.code(0);
        nats.flush().await?;
        let mut heard = 0;
        for sub in wide.iter_mut().chain([&mut targeted, &mut targeted_all]) {
            while let Some(Some(_)) = futures::FutureExt::now_or_never(sub.next()) {
                heard += 1;
            }
        }
        anyhow::Ok((heard, reply_to))
    })?;
    assert!(seen_reply.starts_with("_INBOX."), "{seen_reply}");
    let stats = broker.stats();
    assert!(stats.permission_violations >= 6, "{stats:?}");
    // The wide subscriptions would have heard the request itself on web1's subject too; none
    // was allowed, so nothing at all arrived.
    assert_eq!(heard, 0, "the spy heard replies");
    Ok(())
}
