//! Benchmark: a signed daemon under a flood of hostile messages. Measures honest-ping latency
//! before, during and after N hostile messages (a third garbage, a third unsigned requests, a
//! third requests signed with a key the credential is not for), and how fast the daemon drops
//! them. Needs the release binary beside it:
//!
//! ```sh
//! cargo build --release -p muster-cli --bins --examples
//! target/release/examples/hostile_flood [N]
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use muster_client::{Call, Client, ConnectConfig, RequestOptions, Signing};
use muster_proto::envelope::REQUEST_PROTOCOL;
use muster_proto::time::now;
use muster_proto::{Request, SecureEnvelope, subject};
use muster_security::signed::sign_request;
use muster_security::{PublicKey, SecretKey, Verifier};
use muster_testkit::pki::Pki;
use muster_testkit::{Daemon, DaemonSpec, EmbeddedBroker};
use serde_json::json;

fn muster_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("no target directory")?;
    let bin = dir.join("muster");
    anyhow::ensure!(
        bin.exists(),
        "build the binary first: cargo build --release -p muster-cli"
    );
    Ok(bin)
}

async fn ping_latencies(client: &Client, n: usize) -> Result<Vec<Duration>> {
    let nodes = BTreeSet::from(["web1".to_string()]);
    let options = RequestOptions {
        timeout: Duration::from_secs(5),
        ..RequestOptions::default()
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let report = client
            .request(
                &Call::new("rpcutil", "ping"),
                &nodes,
                &options,
                0,
                &mut |_| {},
            )
            .await?;
        anyhow::ensure!(report.stats.ok == 1, "an honest ping failed: {report:?}");
        out.push(started.elapsed());
    }
    Ok(out)
}

fn summary(label: &str, mut l: Vec<Duration>) {
    l.sort();
    let mean = l.iter().sum::<Duration>() / l.len().max(1) as u32;
    let p99 = l[(l.len() * 99 / 100).min(l.len() - 1)];
    println!(
        "{label:<34} {} pings: mean {:.2} ms, p99 {:.2} ms",
        l.len(),
        mean.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30_000);
    let muster = muster_binary()?;
    let broker = EmbeddedBroker::start()?;
    let url = broker.url();
    let pki = Pki::new()?;
    pki.policy("rpcutil", "policy default deny\nallow\talice\t*\t*\t*\n")?;
    let _daemon = Daemon::start(&muster, &url, &pki.signed(DaemonSpec::new("web1"))?)?;
    let alice = pki.caller("alice", None)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = Client::connect(&ConnectConfig {
            brokers: vec![url.clone()],
            signing: Some(Signing::load(&alice.key, &alice.credential)?),
            verifier: Some(Verifier::new(PublicKey::read(&pki.issuer_public())?, 30.0)),
            ..ConnectConfig::default()
        })
        .await?;
        summary("before the flood", ping_latencies(&client, 300).await?);

        // The flood, built first so only sending is timed.
        let mallory = SecretKey::generate();
        let credential = std::fs::read_to_string(&alice.credential)?;
        let mut flood = Vec::with_capacity(n);
        for i in 0..n {
            let request = Request {
                protocol: REQUEST_PROTOCOL.into(),
                id: format!("{:032x}", i + 1),
                time: now(),
                ttl: 600,
                ack: false,
                collective: "muster".into(),
                agent: "rpcutil".into(),
                action: "ping".into(),
                caller: "alice".into(),
                sender: "bench".into(),
                data: json!({}),
                filter: Default::default(),
            };
            flood.push(match i % 3 {
                0 => format!("garbage {i}").into_bytes(),
                1 => SecureEnvelope::unsigned(&request).to_bytes(),
                _ => sign_request(&request, &mallory, credential.trim()).to_bytes(),
            });
        }
        let attacker = async_nats::connect(url.clone()).await?;
        let target = subject::node("muster", "web1");
        let started = Instant::now();
        let sender = tokio::spawn(async move {
            for message in flood {
                attacker
                    .publish_with_reply(
                        target.clone(),
                        "_INBOX.attacker".to_string(),
                        message.into(),
                    )
                    .await?;
            }
            attacker.flush().await?;
            anyhow::Ok(())
        });
        let during = ping_latencies(&client, 100).await?;
        sender.await??;
        let sent = started.elapsed();
        summary("during the flood", during);
        // Wait until the daemon has dropped every hostile message.
        let nodes = BTreeSet::from(["web1".to_string()]);
        let stats = loop {
            let report = client
                .request(
                    &Call::new("rpcutil", "daemon_stats"),
                    &nodes,
                    &RequestOptions::default(),
                    0,
                    &mut |_| {},
                )
                .await?;
            let data = report
                .replies
                .first()
                .map(|r| r.data.clone())
                .unwrap_or_default();
            if data["drops_total"].as_u64().unwrap_or(0) >= n as u64 {
                break data;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let dropped = started.elapsed();
        println!(
            "{n} hostile messages sent in {:.2} s, all dropped after {:.2} s: {:.0} drops/s",
            sent.as_secs_f64(),
            dropped.as_secs_f64(),
            n as f64 / dropped.as_secs_f64()
        );
        println!("drops by reason: {}", stats["drops"]);
        summary("after the flood", ping_latencies(&client, 300).await?);
        anyhow::Ok(())
    })
}
