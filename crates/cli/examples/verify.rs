//! Benchmark: what verifying signed answers costs the client. A fleet of N node credentials
//! (from one issuer) answers a broadcast `rpcutil ping` with a signed acknowledgement and a
//! signed reply each — 2 × N messages, signed before the request is sent, published as soon as
//! it arrives — and the client verifies every reply (an acknowledgement only of a node that did
//! not reply: none here, docs/client.md). Compared, in one process, runs alternating:
//!
//! - unsigned answers, no issuer configured (what the transport and the accounting cost; they
//!   are only decoded, on the receiving task);
//! - signed answers opened on the receiving task, one after the other (`open_workers = 1`);
//! - signed answers opened on every core (the default).
//!
//! Each run is a fresh client, so its verifier knows no credential yet, as in every `muster`
//! command: a node's first message costs two signature checks (its credential's and its own),
//! the next one. Then, on one thread, the cost of one message both ways.
//!
//! ```sh
//! cargo build --release -p muster-cli --examples
//! target/release/examples/verify [NODES [RUNS]]
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use muster_client::{Call, Client, ConnectConfig, Delivery, RequestOptions};
use muster_proto::{Ack, Reply, StatusCode, subject};
use muster_security::signed::{PEER_CLOCK_SKEW_SECS, sign_message};
use muster_security::{Credential, Kind, SecretKey, Verifier};
use muster_testkit::EmbeddedBroker;
use serde_json::json;
use tokio::sync::Mutex;

/// The fleet's answers to the request with this id.
fn answers(id: &str, nodes: &[(String, SecretKey, String)], signed: bool) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(nodes.len() * 2);
    for (name, key, credential) in nodes {
        let ack = serde_json::to_string(&Ack::new(id, name))?;
        let reply = serde_json::to_string(&Reply::new(
            id,
            name,
            muster_proto::time::now(),
            StatusCode::Ok,
            "OK",
            json!({"pong": 1}),
        ))?;
        for message in [ack, reply] {
            out.push(if signed {
                sign_message(message, key, credential)
            } else {
                message.into_bytes()
            });
        }
    }
    Ok(out)
}

fn summary(label: &str, mut times: Vec<Duration>, nodes: usize, lost: usize) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    println!(
        "{label:<40} mean {:.1} ms, min {:.1} ms ({:.1} µs per node) over {} runs; {lost} lost",
        ms(mean),
        ms(times[0]),
        ms(times[0]) * 1e3 / nodes as f64,
        times.len()
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let broker = EmbeddedBroker::start()?;
    let url = broker.url();

    let issuer = SecretKey::generate();
    let issued = muster_proto::time::now() as u64;
    let nodes: Vec<(String, SecretKey, String)> = (0..n)
        .map(|i| {
            let name = format!("node{i:06}");
            let key = SecretKey::generate();
            let credential = Credential::new(Kind::Node, &name, &key.public(), issued, 3600, None)
                .map_err(anyhow::Error::msg)?
                .issue(&issuer);
            Ok((name, key, credential))
        })
        .collect::<Result<_>>()?;
    let expected: BTreeSet<String> = nodes.iter().map(|(name, _, _)| name.clone()).collect();

    // The fleet: publishes what is ready for the next request to whoever asks.
    let fleet = async_nats::connect(&url).await?;
    let ready: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let mut requests = fleet
        .subscribe(subject::broadcast("muster", "rpcutil"))
        .await?;
    {
        let (fleet, ready) = (fleet.clone(), ready.clone());
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let Some(reply_to) = request.reply else {
                    continue;
                };
                let answers = std::mem::take(&mut *ready.lock().await);
                for answer in answers {
                    let _ = fleet.publish(reply_to.clone(), answer.into()).await;
                }
                let _ = fleet.flush().await;
            }
        });
    }

    let modes: [(&str, bool, Option<usize>); 3] = [
        ("unsigned, no issuer", false, None),
        ("signed, opened one after the other", true, Some(1)),
        ("signed, opened on every core", true, None),
    ];
    let call = Call::new("rpcutil", "ping");
    let mut times = vec![Vec::new(); modes.len()];
    let mut lost = vec![0; modes.len()];
    for run in 0..runs + 1 {
        for (m, (_, signed, workers)) in modes.iter().enumerate() {
            let id = format!("{:016x}{:016x}", run, m);
            *ready.lock().await = answers(&id, &nodes, *signed)?;
            let client = Client::connect(&ConnectConfig {
                brokers: vec![url.clone()],
                verifier: signed.then(|| Verifier::new(issuer.public(), PEER_CLOCK_SKEW_SECS)),
                open_workers: *workers,
                ..ConnectConfig::default()
            })
            .await?;
            let options = RequestOptions {
                delivery: Delivery::Broadcast,
                timeout: Duration::from_secs(20),
                id: Some(id),
                ..RequestOptions::default()
            };
            let started = Instant::now();
            let report = client
                .request(&call, &expected, &options, 0, &mut |_| {})
                .await
                .context("the request")?;
            // The first round warms up.
            if run >= 1 {
                times[m].push(started.elapsed());
                lost[m] += report.stats.expected - report.stats.ok;
            }
        }
    }
    println!(
        "== {n} nodes, {} signed acknowledgements and replies per request, embedded broker",
        2 * n
    );
    for (m, (label, _, _)) in modes.iter().enumerate() {
        summary(label, times[m].clone(), n, lost[m]);
    }

    // One message on one thread: a node's first (its credential unknown yet) and the next.
    let messages = answers(&"0".repeat(32), &nodes, true)?;
    let verifier = Verifier::new(issuer.public(), PEER_CLOCK_SKEW_SECS);
    let now = muster_proto::time::now();
    let started = Instant::now();
    for ack in messages.iter().step_by(2) {
        verifier.message(ack, now).context("an ack")?;
    }
    let first = started.elapsed();
    let started = Instant::now();
    for reply in messages.iter().skip(1).step_by(2) {
        verifier.message(reply, now).context("a reply")?;
    }
    let next = started.elapsed();
    println!(
        "one thread: {:.1} µs per first message of a node (credential and message), \
         {:.1} µs per further message (message only, credential remembered)",
        first.as_secs_f64() * 1e6 / n as f64,
        next.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
