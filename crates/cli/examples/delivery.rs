//! Benchmark: a request to a known set of simulated nodes, delivered as one broadcast whose
//! filter lists the identities (how a node list above `direct_limit` was sent) or as one
//! message per node on its own subject (how a node list is sent now, so that a node lacking
//! the agent can answer "no agent"). Same build, same process, runs alternating:
//!
//! ```sh
//! cargo build --release -p muster-cli --examples
//! target/release/examples/delivery [--signed] [NODES [RUNS [BROKER_URL]]]
//! ```
//!
//! Without a broker URL it starts the embedded broker on 127.0.0.1. `--signed` runs a signed
//! fleet (docs/sim.md): a throwaway issuer, every virtual node with its own key and
//! credential, and a client that signs its requests and checks every acknowledgement and reply.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use std::sync::Arc;

use muster_client::{Call, Client, ConnectConfig, Delivery, RequestOptions, Signing};
use muster_security::credential::{Credential, Kind};
use muster_security::{SecretKey, Verifier};
use muster_sim::{FleetSpec, Sim, SimConfig, SimSigning};
use muster_testkit::EmbeddedBroker;

fn summary(label: &str, mut times: Vec<Duration>, lost: usize) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    println!(
        "{label:<34} mean {:.1} ms, min {:.1} ms, max {:.1} ms over {} runs; {lost} replies lost",
        ms(mean),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let signed = all.iter().any(|a| a == "--signed");
    let mut args = all.into_iter().filter(|a| a != "--signed");
    let nodes: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let (_embedded, url) = match args.next() {
        Some(url) => (None, url),
        None => {
            let broker = EmbeddedBroker::start()?;
            let url = broker.url();
            (Some(broker), url)
        }
    };
    let signing = signed.then(|| SimSigning::new(SecretKey::generate()));
    let started = Instant::now();
    let sim = Sim::start(SimConfig {
        fleet: FleetSpec::healthy(nodes, 1, "sim"),
        brokers: vec![url.clone()],
        collective: "muster".into(),
        nodes_per_connection: 1000,
        flap_timing: Default::default(),
        transport: Default::default(),
        signing: signing.clone(),
    })
    .await
    .context("the simulated fleet")?;
    println!(
        "{nodes} virtual nodes{} ready in {:.1} s",
        if signed { ", signed" } else { "" },
        started.elapsed().as_secs_f64()
    );
    // The caller of a signed fleet: a key and credential from the fleet's issuer.
    let (caller_signing, verifier) = match &signing {
        Some(s) => {
            let key = SecretKey::generate();
            let now = muster_proto::time::whole_secs(muster_proto::time::now()) - 60;
            let credential =
                Credential::new(Kind::Caller, "bench", &key.public(), now, 86400, None)
                    .map_err(anyhow::Error::msg)?
                    .issue(&s.issuer);
            let signing = Signing {
                key: Arc::new(key),
                credential,
                caller: "bench".into(),
            };
            (Some(signing), Some(Verifier::new(s.issuer.public(), 5.0)))
        }
        None => (None, None),
    };
    let expected: BTreeSet<String> = sim.nodes().iter().map(|n| n.identity.clone()).collect();
    let client = Client::connect(&ConnectConfig {
        brokers: vec![url.clone()],
        collective: "muster".into(),
        caller: caller_signing
            .as_ref()
            .map_or_else(|| ConnectConfig::default().caller, |s| s.caller.clone()),
        signing: caller_signing,
        verifier,
        ..ConnectConfig::default()
    })
    .await?;
    let call = Call::new("rpcutil", "ping");
    let ways = [
        ("broadcast, identities in the filter", Delivery::Broadcast),
        ("direct, one message per node", Delivery::Direct),
    ];
    let mut times = [Vec::new(), Vec::new()];
    let mut lost = [0, 0];
    for run in 0..runs + 2 {
        for (i, (_, delivery)) in ways.iter().enumerate() {
            let options = RequestOptions {
                delivery: *delivery,
                timeout: Duration::from_secs(10),
                ..RequestOptions::default()
            };
            let started = Instant::now();
            let report = client
                .request(&call, &expected, &options, 0, &mut |_| {})
                .await?;
            // The first two rounds warm up.
            if run >= 2 {
                times[i].push(started.elapsed());
                lost[i] += report.stats.missing;
            }
        }
    }
    println!("== {nodes} virtual nodes, rpcutil ping to the known set, broker {url}");
    for (i, (label, _)) in ways.iter().enumerate() {
        summary(label, std::mem::take(&mut times[i]), lost[i]);
    }
    // A broadcast reaches every subscriber of the agent's subject: the simulator has one per
    // 1,000 nodes, real daemons one each, and each gets the whole identity list.
    let filter = serde_json::to_vec(&expected)?.len();
    println!(
        "broadcast filter: {filter} bytes, delivered to every subscriber: {:.1} MB for {nodes} \
         daemons (one connection each), {:.1} MB here ({} connections)",
        (filter * nodes) as f64 / 1e6,
        (filter * nodes.div_ceil(1000)) as f64 / 1e6,
        nodes.div_ceil(1000)
    );
    sim.stop().await;
    Ok(())
}
