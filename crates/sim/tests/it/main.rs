//! The simulator against real brokers: every virtual node answers, faults show up as the
//! outcomes they stand for, and filters see the generated facts.

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use muster_client::{
    Call, Client, ConnectConfig, DiscoveryOptions, ExitStatus, Outcome, Pacing, RequestOptions,
};
use muster_proto::{FactFilter, Filter};
use muster_sim::{Fault, FlapTiming, FleetSpec, Share, Sim, SimConfig};
use muster_testkit::{EmbeddedBroker, NatsServerProcess};

/// Runs an async test body, given the broker's URL, once on the embedded broker and once on a
/// real `nats-server` (that half is skipped, loudly, where none is installed): the simulator
/// stands in for fleets on either. The brokers start outside the test's runtime, which they
/// must not be dropped in.
macro_rules! on_both_brokers {
    (async fn $name:ident($url:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($url: String) -> anyhow::Result<()> $body

            #[test]
            fn embedded() -> anyhow::Result<()> {
                let broker = EmbeddedBroker::start()?;
                crate::run(broker.url(), body)
            }

            #[test]
            fn nats_server() -> anyhow::Result<()> {
                let Some(nats) = NatsServerProcess::start()? else {
                    return Ok(());
                };
                crate::run(nats.url(), body)
            }
        }
    };
}

/// Runs `body(url)` to completion on a multi-threaded runtime of its own.
fn run<F>(url: String, body: impl FnOnce(String) -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(body(url))
}

fn fleet(nodes: usize) -> FleetSpec {
    FleetSpec::healthy(nodes, 42, "sim")
}

async fn start(url: &str, fleet: FleetSpec) -> anyhow::Result<(Sim, Client)> {
    start_with(url, fleet, FlapTiming::default()).await
}

async fn start_with(
    url: &str,
    fleet: FleetSpec,
    flap_timing: FlapTiming,
) -> anyhow::Result<(Sim, Client)> {
    let sim = Sim::start(SimConfig {
        fleet,
        brokers: vec![url.to_string()],
        collective: "muster".into(),
        nodes_per_connection: 250,
        flap_timing,
        transport: Default::default(),
        signing: None,
    })
    .await?;
    let client = Client::connect(&ConnectConfig {
        brokers: vec![url.to_string()],
        ..ConnectConfig::default()
    })
    .await?;
    Ok((sim, client))
}

fn identities(sim: &Sim, fault: fn(&Fault) -> bool) -> BTreeSet<String> {
    sim.nodes()
        .iter()
        .filter(|n| fault(&n.fault))
        .map(|n| n.identity.clone())
        .collect()
}

on_both_brokers! {
    async fn faults_become_their_outcomes(url) {
        let spec = FleetSpec {
            silent: Share(0.02),
            fail: Share(0.03),
            slow: Some((Share(0.02), Duration::from_secs(30))),
            ..fleet(200)
        };
        let (sim, client) = start(&url, spec).await?;
        let all = identities(&sim, |_| true);
        let options = RequestOptions {
            timeout: Duration::from_millis(1500),
            ..RequestOptions::default()
        };
        let report = client
            .request(
                &Call::new("rpcutil", "inventory"),
                &all,
                &options,
                0,
                &mut |_| {},
            )
            .await?;

        let with = |o: Outcome| -> BTreeSet<String> {
            report
                .missing
                .iter()
                .filter(|m| m.outcome == o)
                .map(|m| m.identity.clone())
                .chain(
                    report
                        .replies
                        .iter()
                        .filter(|r| r.outcome == o)
                        .map(|r| r.sender.clone()),
                )
                .collect()
        };
        assert_eq!(
            with(Outcome::NoReply),
            identities(&sim, |f| *f == Fault::Silent)
        );
        assert_eq!(
            with(Outcome::Failed),
            identities(&sim, |f| *f == Fault::Fail)
        );
        assert_eq!(
            with(Outcome::Timeout),
            identities(&sim, |f| matches!(f, Fault::Slow(_)))
        );
        assert_eq!(with(Outcome::Ok), identities(&sim, |f| *f == Fault::None));
        assert_eq!(report.stats.expected, 200);
        assert_eq!(report.stats.missing, 4 + 4);
        assert_eq!(report.stats.failed, 6);
        assert_eq!(report.exit_status(), ExitStatus::Missing);

        // Discovery cannot see the silent nodes, nor the slow ones (they answer after it ends);
        // failing ones still answer pings.
        let found = client
            .discover(&Filter::default(), &DiscoveryOptions::default())
            .await?;
        let visible = identities(&sim, |f| matches!(f, Fault::None | Fault::Fail));
        assert_eq!(found.nodes, visible);
        sim.stop().await;
        Ok(())
    }
}

on_both_brokers! {
    async fn filters_see_the_generated_facts(url) {
        let (sim, client) = start(&url, fleet(300)).await?;
        let filter = Filter {
            fact: vec![FactFilter::parse("role=db")?],
            class: vec!["dc_ams1".into()],
            ..Filter::default()
        };
        let expected: BTreeSet<String> = sim
            .nodes()
            .iter()
            .filter(|n| n.facts["role"] == "db" && n.facts["dc"] == "ams1")
            .map(|n| n.identity.clone())
            .collect();
        assert!(
            !expected.is_empty(),
            "the seed should give some ams1 databases"
        );
        let found = client
            .discover(&filter, &DiscoveryOptions::default())
            .await?;
        assert_eq!(found.nodes, expected);
        sim.stop().await;
        Ok(())
    }
}

on_both_brokers! {
    async fn thousands_of_nodes_lose_no_reply(url) {
        let (sim, client) = start(&url, fleet(3000)).await?;
        let all = identities(&sim, |_| true);
        for delivery in [
            muster_client::Delivery::Direct,
            muster_client::Delivery::Broadcast,
        ] {
            let options = RequestOptions {
                timeout: Duration::from_secs(20),
                delivery,
                ..RequestOptions::default()
            };
            let report = client
                .request(
                    &Call::new("rpcutil", "ping"),
                    &all,
                    &options,
                    0,
                    &mut |_| {},
                )
                .await?;
            assert_eq!(report.stats.ok, 3000, "{delivery:?}: {:?}", report.stats);
            assert_eq!(report.exit_status(), ExitStatus::Ok);
        }
        sim.stop().await;
        Ok(())
    }
}

on_both_brokers! {
    async fn the_sim_agent_sleeps_fails_and_sizes(url) {
        let (sim, client) = start(&url, fleet(3)).await?;
        let all = identities(&sim, |_| true);
        let options = RequestOptions {
            timeout: Duration::from_secs(5),
            ..RequestOptions::default()
        };
        let call = |action: &str, data: serde_json::Value| Call {
            data,
            ..Call::new("sim", action)
        };
        let r = client
            .request(
                &call("payload", serde_json::json!({"bytes": 1000})),
                &all,
                &options,
                0,
                &mut |_| {},
            )
            .await?;
        assert_eq!(r.stats.ok, 3);
        assert_eq!(
            r.replies[0].data["payload"].as_str().map(str::len),
            Some(1000)
        );
        let r = client
            .request(
                &call("fail", serde_json::json!({"message": "boom"})),
                &all,
                &options,
                0,
                &mut |_| {},
            )
            .await?;
        assert_eq!(r.stats.failed, 3);
        assert_eq!(r.replies[0].statusmsg, "boom");
        let short = RequestOptions {
            timeout: Duration::from_millis(500),
            ..RequestOptions::default()
        };
        let r = client
            .request(
                &call("sleep", serde_json::json!({"seconds": 5})),
                &all,
                &short,
                0,
                &mut |_| {},
            )
            .await?;
        assert!(
            r.missing.iter().all(|m| m.outcome == Outcome::Timeout),
            "{:?}",
            r.missing
        );
        assert_eq!(r.stats.missing, 3);
        sim.stop().await;
        Ok(())
    }
}

on_both_brokers! {
    async fn flapping_nodes_go_and_come_back(url) {
        let timing = FlapTiming {
            up: Duration::from_millis(300)..Duration::from_millis(400),
            down: Duration::from_millis(300)..Duration::from_millis(400),
        };
        let spec = FleetSpec {
            flap: Share(0.5),
            stray: Share(0.0),
            ..fleet(4)
        };
        let (sim, client) = start_with(&url, spec, timing).await?;
        let flapping = identities(&sim, |f| *f == Fault::Flap);
        assert_eq!(flapping.len(), 2);
        let options = RequestOptions {
            timeout: Duration::from_secs(2),
            ..RequestOptions::default()
        };
        let (mut seen_away, mut seen_back) = (false, false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !(seen_away && seen_back) && tokio::time::Instant::now() < deadline {
            let r = client
                .request(
                    &Call::new("rpcutil", "ping"),
                    &flapping,
                    &options,
                    0,
                    &mut |_| {},
                )
                .await?;
            if r.missing.iter().any(|m| m.outcome == Outcome::NotConnected) {
                seen_away = true;
            } else if seen_away && r.stats.ok == flapping.len() {
                seen_back = true;
            }
        }
        assert!(seen_away, "a flapping node was never seen disconnected");
        assert!(seen_back, "flapping nodes never all came back");
        sim.stop().await;
        Ok(())
    }
}

on_both_brokers! {
    async fn a_window_lets_no_slow_node_hold_the_rest_back_and_batches_wait(url) {
        let spec = FleetSpec {
            slow: Some((Share(1.0 / 60.0), Duration::from_millis(800))),
            ..fleet(60)
        };
        let (sim, client) = start(&url, spec).await?;
        let all = identities(&sim, |_| true);
        let slow = identities(&sim, |f| matches!(f, Fault::Slow(_)));
        assert_eq!(slow.len(), 1);
        let slow = slow.into_iter().next().unwrap_or_default();
        let ms_of = |report: &muster_client::Report, who: &str| {
            report
                .replies
                .iter()
                .find(|r| r.sender == who)
                .map(|r| r.ms)
        };

        // A window of 10: the other 59 nodes finish while the slow one still holds its slot.
        let options = RequestOptions {
            timeout: Duration::from_secs(10),
            pacing: Pacing::Window(10),
            ..RequestOptions::default()
        };
        let r = client
            .request(
                &Call::new("rpcutil", "ping"),
                &all,
                &options,
                0,
                &mut |_| {},
            )
            .await?;
        assert_eq!(r.stats.ok, 60, "{:?}", r.stats);
        let slow_ms = ms_of(&r, &slow).unwrap_or(0);
        assert!(slow_ms >= 800, "{slow_ms}");
        let later = r.replies.iter().filter(|x| x.ms > slow_ms).count();
        assert_eq!(later, 0, "with a window nobody waits for the slow node");

        // Batches of 10: every batch after the slow node's waits for it.
        let options = RequestOptions {
            pacing: Pacing::Batch {
                size: 10,
                sleep: Duration::ZERO,
            },
            ..options
        };
        let r = client
            .request(
                &Call::new("rpcutil", "ping"),
                &all,
                &options,
                0,
                &mut |_| {},
            )
            .await?;
        assert_eq!(r.stats.ok, 60, "{:?}", r.stats);
        let slow_ms = ms_of(&r, &slow).unwrap_or(0);
        let position = all.iter().position(|n| *n == slow).unwrap_or(0);
        let after_its_batch = 60 - (position / 10 + 1) * 10;
        // A node of the next batch can answer within the millisecond the slow node's reply
        // arrived in: "not before it" is what waiting for it means.
        let later = r
            .replies
            .iter()
            .filter(|x| x.sender != slow && x.ms >= slow_ms)
            .count();
        assert_eq!(later, after_its_batch, "slow node at position {position}");
        sim.stop().await;
        Ok(())
    }
}

on_both_brokers! {
    async fn batches_and_windows_account_for_every_node_of_a_fleet(url) {
        let spec = FleetSpec {
            silent: Share(0.01),
            fail: Share(0.01),
            ..fleet(300)
        };
        let (sim, client) = start(&url, spec).await?;
        let all = identities(&sim, |_| true);
        for pacing in [
            Pacing::Batch {
                size: 50,
                sleep: Duration::from_millis(10),
            },
            Pacing::Window(25),
        ] {
            let options = RequestOptions {
                timeout: Duration::from_millis(1500),
                pacing,
                ..RequestOptions::default()
            };
            let r = client
                .request(
                    &Call::new("rpcutil", "inventory"),
                    &all,
                    &options,
                    0,
                    &mut |_| {},
                )
                .await?;
            assert_eq!(r.stats.expected, 300, "{pacing:?}");
            assert_eq!(r.stats.ok, 294, "{pacing:?}: {:?}", r.stats);
            assert_eq!(r.stats.failed, 3, "{pacing:?}");
            assert_eq!(r.stats.missing, 3, "{pacing:?}");
            assert!(
                r.missing.iter().all(|m| m.outcome == Outcome::NoReply),
                "{pacing:?}"
            );
        }
        sim.stop().await;
        Ok(())
    }
}

/// The client's whole request, in this process: what `muster` does for a command, done by a
/// program embedding `muster-client` — the expected set, the finished report with every node
/// accounted for, the journal record, and finding the request again.
mod client_end_to_end {
    use super::*;
    use muster_client::journal::JournalTarget;
    use muster_client::lookup::{InJournal, in_journal};
    use muster_client::{Expected, RunOptions, Selection, Source, Spread};

    on_both_brokers! {
        async fn a_run_accounts_for_every_node_and_is_journalled(url) {
            let spec = FleetSpec {
                silent: Share(0.1),
                ..fleet(40)
            };
            let (sim, client) = start(&url, spec).await?;
            let config = muster_client::ClientConfig::default();
            let silent = identities(&sim, |f| *f == Fault::Silent);
            let answering = identities(&sim, |f| *f != Fault::Silent);
            assert!(!silent.is_empty());

            // Broadcast discovery finds exactly the nodes that answer.
            let mut selection = Selection::new(&config, Filter::default(), Source::Discover);
            selection.discovery.timeout = Duration::from_secs(3);
            let expected = client.expected(&selection).await?;
            assert_eq!(expected.nodes, answering);
            assert!(expected.warnings.is_empty(), "{:?}", expected.warnings);

            // A node list names the silent ones and one that does not exist too: the run
            // accounts for every one, journalled where the options say.
            let dir = tempfile::tempdir()?;
            let journal = JournalTarget::Path(dir.path().join("journal.sqlite"));
            let mut listed: BTreeSet<String> = sim.nodes().iter().map(|n| n.identity.clone()).collect();
            listed.insert("nobody-here".into());
            let expected = Expected::listed(listed.clone(), Filter::default());
            let options = RunOptions {
                timeout: Duration::from_millis(800),
                spread: Spread::Window(8),
                journal: journal.clone(),
                ..RunOptions::new(&config)
            };
            let finished = client
                .run(&Call::new("rpcutil", "ping"), &expected, &options, &mut |_| {})
                .await?;
            assert!(finished.warnings.is_empty(), "{:?}", finished.warnings);
            let report = &finished.report;
            assert_eq!(report.stats.expected, listed.len());
            assert_eq!(report.stats.ok, answering.len());
            let missing = |o: Outcome| -> BTreeSet<String> {
                report.missing.iter().filter(|m| m.outcome == o).map(|m| m.identity.clone()).collect()
            };
            assert_eq!(missing(Outcome::NotConnected), BTreeSet::from(["nobody-here".to_string()]));
            // Silent nodes are connected and acknowledge nothing: no reply.
            assert_eq!(missing(Outcome::NoReply), silent);
            assert_eq!(report.exit_status(), ExitStatus::Missing);

            // The journal has it, whole, under a prefix of its id; a retry of the missing
            // nodes names exactly those.
            let prefix = &report.request_id[..12];
            let InJournal::Found(found) = in_journal(&journal, prefix, false)? else {
                anyhow::bail!("request {prefix} is not in the journal");
            };
            assert_eq!(&found.entry.report, report);
            let mut again = silent.clone();
            again.insert("nobody-here".into());
            assert_eq!(found.entry.retry_nodes(true, false), again);
            assert!(found.entry.retry_nodes(false, true).is_empty());
            sim.stop().await;
            Ok(())
        }
    }

    on_both_brokers! {
        async fn no_results_without_a_registry_sends_nothing(url) {
            let (sim, client) = start(&url, fleet(5)).await?;
            let config = muster_client::ClientConfig::default();
            let dir = tempfile::tempdir()?;
            let journal = JournalTarget::Path(dir.path().join("journal.sqlite"));
            let nodes: BTreeSet<String> = sim.nodes().iter().map(|n| n.identity.clone()).collect();
            let options = RunOptions {
                registry_timeout: Duration::from_millis(500),
                journal: journal.clone(),
                ..RunOptions::new(&config)
            };
            let error = client
                .send_collected(
                    &Call::new("rpcutil", "ping"),
                    &Expected::listed(nodes, Filter::default()),
                    &options,
                )
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("nothing was sent"), "{error}");
            // Nothing was sent, so nothing was journalled.
            let recent = journal.open_existing()?.recent(10)?;
            assert!(recent.is_empty(), "{recent:?}");
            sim.stop().await;
            Ok(())
        }
    }

    on_both_brokers! {
        async fn ping_is_discovery_and_limit_narrows_the_expected_set(url) {
            let (sim, client) = start(&url, fleet(30)).await?;
            let config = muster_client::ClientConfig::default();
            let options = RunOptions {
                journal: JournalTarget::Off,
                ..RunOptions::new(&config)
            };
            let mut selection = Selection::new(&config, Filter::default(), Source::Discover);
            selection.discovery.timeout = Duration::from_secs(3);
            let ping = client.ping(&selection, &options, &mut |_| {}).await?;
            assert_eq!(ping.report.stats.ok, 30, "{:?}", ping.report.stats);
            assert_eq!(ping.report.exit_status(), ExitStatus::Ok);

            selection.limit = Some(muster_client::selection::Count::Percent(10.0));
            selection.limit_seed = Some(7);
            let expected = client.expected(&selection).await?;
            assert_eq!(expected.nodes.len(), 3);
            let again = client.expected(&selection).await?;
            assert_eq!(again.nodes, expected.nodes, "a seed repeats the choice");
            sim.stop().await;
            Ok(())
        }
    }
}

/// A signed fleet (signed mode: nodes check signatures, credentials and replays, and sign what
/// they send) and the clients that meet it.
mod signed {
    use super::*;
    use muster_client::Signing;
    use muster_security::credential::{Credential, Kind};
    use muster_security::{SecretKey, Verifier};
    use muster_sim::SimSigning;
    use std::sync::Arc;

    /// A signed fleet of `nodes` for a fresh issuer; the issuer's key is returned too.
    async fn signed_sim(url: &str, nodes: usize) -> anyhow::Result<(Sim, Arc<SecretKey>)> {
        signed_fleet(url, fleet(nodes)).await
    }

    /// A signed fleet as `spec` says, for a fresh issuer.
    async fn signed_fleet(url: &str, spec: FleetSpec) -> anyhow::Result<(Sim, Arc<SecretKey>)> {
        let signing = SimSigning::new(SecretKey::generate());
        let issuer = signing.issuer.clone();
        let sim = Sim::start(SimConfig {
            fleet: spec,
            brokers: vec![url.to_string()],
            collective: "muster".into(),
            nodes_per_connection: 100,
            flap_timing: FlapTiming::default(),
            transport: Default::default(),
            signing: Some(signing),
        })
        .await?;
        Ok((sim, issuer))
    }

    /// A caller's key and credential from `issuer`.
    fn caller(issuer: &SecretKey, name: &str, agents: Option<Vec<String>>) -> Signing {
        let key = SecretKey::generate();
        let now = muster_proto::time::whole_secs(muster_proto::time::now());
        let credential = Credential::new(Kind::Caller, name, &key.public(), now - 60, 3600, agents)
            .unwrap()
            .issue(issuer);
        Signing {
            key: Arc::new(key),
            credential,
            caller: name.into(),
        }
    }

    /// A client signing with `signing` (if any) and checking replies against `issuer`.
    async fn client(
        url: &str,
        signing: Option<Signing>,
        issuer: Option<&SecretKey>,
    ) -> anyhow::Result<Client> {
        Ok(Client::connect(&ConnectConfig {
            brokers: vec![url.to_string()],
            caller: signing
                .as_ref()
                .map_or("anonymous".into(), |s| s.caller.clone()),
            signing,
            verifier: issuer.map(|i| Verifier::new(i.public(), 5.0)),
            ..ConnectConfig::default()
        })
        .await?)
    }

    fn options(ms: u64, delivery: muster_client::Delivery) -> RequestOptions {
        RequestOptions {
            timeout: Duration::from_millis(ms),
            delivery,
            ..RequestOptions::default()
        }
    }

    on_both_brokers! {
        async fn a_signed_fleet_answers_a_client_of_its_issuer(url) {
            let (sim, issuer) = signed_sim(&url, 300).await?;
            let client = client(&url, Some(caller(&issuer, "alice", None)), Some(&issuer)).await?;
            let all = identities(&sim, |_| true);
            for delivery in [
                muster_client::Delivery::Direct,
                muster_client::Delivery::Broadcast,
            ] {
                let report = client
                    .request(&Call::new("rpcutil", "ping"), &all, &options(10_000, delivery), 0, &mut |_| {})
                    .await?;
                assert_eq!(report.stats.ok, 300, "{delivery:?}: {:?}", report.stats);
                assert!(report.ignored.is_empty(), "{:?}", report.ignored);
                assert_eq!(report.exit_status(), ExitStatus::Ok);
            }
            // A credential limited to other agents is refused by every node, signed.
            let limited = client_limited(&url, &issuer).await?;
            let report = limited
                .request(&Call::new("rpcutil", "ping"), &all, &options(10_000, muster_client::Delivery::Broadcast), 0, &mut |_| {})
                .await?;
            assert_eq!(report.stats.failed, 300, "{:?}", report.stats);
            assert!(report.ignored.is_empty(), "{:?}", report.ignored);
            assert!(
                report.replies.iter().all(|r| r.statusmsg.contains("credential limits bob")),
                "{:?}",
                report.replies.first()
            );
            sim.stop().await;
            Ok(())
        }
    }

    on_both_brokers! {
        // Acknowledgements are verified only for nodes that did not reply (docs/client.md,
        // "Outcomes"): a slow node's verified acknowledgement still makes it `timeout`, a
        // forged one counts for nothing and is reported, and one forged for a node that
        // replied is never looked at.
        async fn only_the_acknowledgements_of_nodes_without_a_reply_are_verified(url) {
            use futures::StreamExt;
            let spec = FleetSpec {
                silent: Share(0.05),
                slow: Some((Share(0.05), Duration::from_secs(30))),
                ..fleet(100)
            };
            let (sim, issuer) = signed_fleet(&url, spec).await?;
            let silent = identities(&sim, |f| *f == Fault::Silent);
            let slow = identities(&sim, |f| matches!(f, Fault::Slow(_)));
            let healthy = identities(&sim, |f| *f == Fault::None);
            assert_eq!((silent.len(), slow.len()), (5, 5));
            // Somebody on the broker with a credential of another issuer sees the broadcast and
            // acknowledges it for one node of each kind.
            let mallory_issuer = SecretKey::generate();
            let forge_for: Vec<String> = [&silent, &slow, &healthy]
                .iter()
                .map(|set| set.first().unwrap().clone())
                .collect();
            let nats = async_nats::connect(&url).await?;
            let mut requests = nats
                .subscribe(muster_proto::subject::broadcast("muster", "rpcutil"))
                .await?;
            nats.flush().await?;
            let forger = tokio::spawn(async move {
                let request = requests.next().await.unwrap();
                let envelope = muster_proto::SecureEnvelope::decode(&request.payload).unwrap();
                let id = muster_proto::Request::decode(&envelope.request).unwrap().id;
                let now = muster_proto::time::whole_secs(muster_proto::time::now());
                for name in &forge_for {
                    let key = SecretKey::generate();
                    let credential = Credential::new(Kind::Node, name, &key.public(), now - 60, 3600, None)
                        .unwrap()
                        .issue(&mallory_issuer);
                    let ack = serde_json::to_string(&muster_proto::Ack::new(&id, name)).unwrap();
                    let forged = muster_security::signed::sign_message(ack, &key, &credential);
                    nats.publish(request.reply.clone().unwrap(), forged.into()).await.unwrap();
                }
                nats.flush().await.unwrap();
            });
            let client = client(&url, Some(caller(&issuer, "alice", None)), Some(&issuer)).await?;
            let all = identities(&sim, |_| true);
            let report = client
                .request(&Call::new("rpcutil", "ping"), &all, &options(1500, muster_client::Delivery::Broadcast), 0, &mut |_| {})
                .await?;
            forger.await?;
            let with = |o: Outcome| -> BTreeSet<String> {
                report.missing.iter().filter(|m| m.outcome == o).map(|m| m.identity.clone()).collect()
            };
            assert_eq!(with(Outcome::NoReply), silent);
            assert_eq!(with(Outcome::Timeout), slow);
            assert_eq!(report.stats.ok, healthy.len(), "{:?}", report.stats);
            // The forged acknowledgements of the silent and the slow node were verified, and
            // refused; the healthy node's was dropped with its verified reply.
            assert_eq!(report.ignored.len(), 1, "{:?}", report.ignored);
            assert_eq!(report.ignored[0].reason, "unknown_issuer");
            assert_eq!((report.ignored[0].acks, report.ignored[0].replies), (2, 0));
            sim.stop().await;
            Ok(())
        }
    }

    on_both_brokers! {
        // Every command is a new client: the credentials one found signed by the issuer are
        // kept for the next (docs/security.md, "What the client remembers"), which then checks
        // one signature per node — the reply's — where the first checked two.
        async fn a_later_client_checks_only_the_replies_of_nodes_it_has_met(url) {
            let (sim, issuer) = signed_sim(&url, 100).await?;
            let all = identities(&sim, |_| true);
            let state = tempfile::tempdir()?;
            let kept = muster_client::remembered::beside(&state.path().join("journal.sqlite"));
            let mut checks = Vec::new();
            for _ in 0..2 {
                let verifier = Verifier::new(issuer.public(), 5.0);
                let signing = caller(&issuer, "alice", None);
                let client = Client::connect(&ConnectConfig {
                    brokers: vec![url.clone()],
                    caller: signing.caller.clone(),
                    signing: Some(signing),
                    verifier: Some(verifier.clone()),
                    remembered_credentials: Some(kept.clone()),
                    ..ConnectConfig::default()
                })
                .await?;
                let report = client
                    .request(&Call::new("rpcutil", "ping"), &all, &options(10_000, muster_client::Delivery::Broadcast), 0, &mut |_| {})
                    .await?;
                assert_eq!(report.stats.ok, 100, "{:?}", report.stats);
                checks.push(verifier.signature_checks());
                assert_eq!(std::fs::metadata(&kept)?.len(), 100 * 32, "one digest per node, once");
            }
            // First: each reply and each credential (acknowledgements of nodes that replied
            // are not checked); then the replies alone.
            assert_eq!(checks, vec![200, 100]);
            sim.stop().await;
            Ok(())
        }
    }

    async fn client_limited(url: &str, issuer: &SecretKey) -> anyhow::Result<Client> {
        client(
            url,
            Some(caller(issuer, "bob", Some(vec!["sim".into()]))),
            Some(issuer),
        )
        .await
    }

    on_both_brokers! {
        async fn a_hello_brings_every_nodes_signed_registration(url) {
            use futures::StreamExt;
            use muster_proto::registration::{Registration, RegistryHello};
            let (sim, issuer) = signed_sim(&url, 250).await?;
            let nats = async_nats::connect(&url).await?;
            let mut registrations = nats.subscribe(muster_proto::subject::registration("muster")).await?;
            nats.flush().await?;
            let hello = RegistryHello::new(Duration::from_millis(300));
            // Two hellos at once, as from two registries starting together.
            for _ in 0..2 {
                nats.publish(muster_proto::subject::registry_hello("muster"), hello.to_bytes().into()).await?;
            }
            nats.flush().await?;
            let verifier = Verifier::new(issuer.public(), 5.0);
            let mut seen = BTreeSet::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while seen.len() < 250 {
                let message = tokio::time::timeout_at(deadline, registrations.next()).await?.unwrap();
                let now = muster_proto::time::now();
                let (json, credential) = verifier.message(&message.payload, now)?;
                let registration = Registration::decode(json.as_bytes())?;
                assert_eq!(credential.name, registration.identity);
                assert!(seen.insert(registration.identity), "one registration per node and round");
            }
            assert_eq!(seen, identities(&sim, |_| true));
            sim.stop().await;
            Ok(())
        }
    }

    on_both_brokers! {
        async fn a_signed_fleet_drops_unsigned_requests(url) {
            let (sim, issuer) = signed_sim(&url, 20).await?;
            let client = client(&url, None, Some(&issuer)).await?;
            let all = identities(&sim, |_| true);
            let report = client
                .request(&Call::new("rpcutil", "ping"), &all, &options(1000, muster_client::Delivery::Broadcast), 0, &mut |_| {})
                .await?;
            assert_eq!(report.stats.ok, 0, "{:?}", report.stats);
            assert!(
                report.missing.len() == 20
                    && report.missing.iter().all(|m| m.outcome == Outcome::NoReply),
                "{:?}",
                report.missing
            );
            sim.stop().await;
            Ok(())
        }
    }

    on_both_brokers! {
        async fn a_client_of_another_issuer_ignores_every_reply(url) {
            let (sim, issuer) = signed_sim(&url, 20).await?;
            let other = SecretKey::generate();
            let client = client(&url, Some(caller(&issuer, "alice", None)), Some(&other)).await?;
            let all = identities(&sim, |_| true);
            let report = client
                .request(&Call::new("rpcutil", "ping"), &all, &options(1000, muster_client::Delivery::Broadcast), 0, &mut |_| {})
                .await?;
            assert_eq!(report.stats.ok, 0, "{:?}", report.stats);
            assert_eq!(report.ignored.len(), 1, "{:?}", report.ignored);
            assert_eq!(report.ignored[0].reason, "unknown_issuer");
            assert_eq!(report.ignored[0].replies, 20, "{:?}", report.ignored);
            sim.stop().await;
            Ok(())
        }
    }
}
