//! A client that cannot keep up loses answers, and its report says so (docs/design.md §3,
//! `lost`): the nodes whose answers it lost are `no_reply` (or `timeout`), never `ok`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use muster_client::{Call, Client, ConnectConfig, Delivery, Outcome, RequestOptions};
use muster_sim::{FleetSpec, Sim, SimConfig};
use muster_testkit::EmbeddedBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_inbox_is_reported_and_its_nodes_do_not_count_as_answering() {
    let broker = EmbeddedBroker::start().unwrap();
    let url = broker.url();
    let nodes = 1000;
    let sim = Sim::start(SimConfig {
        fleet: FleetSpec::healthy(nodes, 1, "sim"),
        brokers: vec![url.clone()],
        collective: "muster".into(),
        nodes_per_connection: 250,
        flap_timing: Default::default(),
        transport: Default::default(),
        signing: None,
    })
    .await
    .unwrap();
    let expected: BTreeSet<String> = sim.nodes().iter().map(|n| n.identity.clone()).collect();
    // An inbox of 4 messages, for 1,000 acknowledgements and 1,000 replies arriving at once.
    let client = Client::connect(&ConnectConfig {
        brokers: vec![url],
        inbox_capacity: 4,
        ..ConnectConfig::default()
    })
    .await
    .unwrap();
    let options = RequestOptions {
        delivery: Delivery::Broadcast,
        timeout: Duration::from_secs(2),
        ..RequestOptions::default()
    };
    let call = Call::new("rpcutil", "ping");
    // An overflow depends on how the threads run; it is all but certain, but try a few times
    // rather than fail on a lucky run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = client
            .request(&call, &expected, &options, 0, &mut |_| {})
            .await
            .unwrap();
        if report.lost.is_some() || Instant::now() > deadline {
            break report;
        }
    };
    let lost = report.lost.expect("the report says messages were lost");
    assert!(lost.slow_consumer > 0, "{lost:?}");
    let s = &report.stats;
    assert_eq!(s.expected, nodes);
    assert!(
        s.missing > 0,
        "answers were lost, so some nodes are missing"
    );
    // Every expected node has exactly one outcome.
    assert_eq!(s.responded + s.missing, nodes);
    let replied: BTreeSet<&str> = report.replies.iter().map(|r| r.sender.as_str()).collect();
    let missing: BTreeSet<&str> = report.missing.iter().map(|m| m.identity.as_str()).collect();
    assert_eq!(replied.len() + missing.len(), nodes);
    assert!(replied.is_disjoint(&missing));
    // A node is ok only with its reply; the others did not reply, as far as the client knows.
    assert_eq!(
        s.ok,
        report
            .replies
            .iter()
            .filter(|r| r.outcome == Outcome::Ok)
            .count()
    );
    assert!(
        report
            .missing
            .iter()
            .all(|m| matches!(m.outcome, Outcome::NoReply | Outcome::Timeout))
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(
        json["lost"]["slow_consumer"].as_u64().unwrap() > 0,
        "{json}"
    );

    // With room for every answer nothing is lost, and the report says nothing about it.
    let roomy = Client::connect(&ConnectConfig {
        brokers: vec![broker.url()],
        ..ConnectConfig::default()
    })
    .await
    .unwrap();
    let report = roomy
        .request(&call, &expected, &options, 0, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((report.stats.ok, report.lost), (nodes, None));
    assert!(serde_json::to_value(&report).unwrap().get("lost").is_none());
    drop(sim);
}
