//! What only the embedded broker can show: its counters and its in-process shutdown. The
//! behaviour itself is covered against both brokers elsewhere.

use std::time::Duration;

use anyhow::{Result, ensure};
use muster_broker::{Broker, BrokerConfig};
use muster_testkit::{EmbeddedBroker, wait_for};

use crate::raw::Raw;

#[test]
fn counters_follow_the_traffic() -> Result<()> {
    let broker = EmbeddedBroker::start()?;
    let addr = broker.url().trim_start_matches("nats://").to_string();
    let mut a = Raw::client(&addr)?;
    let mut b = Raw::client(&addr)?;
    a.send(b"SUB foo 1\r\nSUB foo.> 2\r\n")?;
    b.send(b"SUB foo 1\r\n")?;
    a.until_pong()?;
    b.until_pong()?;
    let stats = broker.stats();
    ensure!(
        stats.connections == 2 && stats.subscriptions == 3,
        "{stats:?}"
    );

    b.send(b"PUB foo 5\r\nhello\r\nPUB foo.x 3\r\nabc\r\n")?;
    b.until_pong()?;
    a.until_pong()?;
    let stats = broker.stats();
    ensure!(stats.msgs_in == 2 && stats.bytes_in == 8, "{stats:?}");
    // foo → a:1 and b:1; foo.x → a:2.
    ensure!(stats.msgs_out == 3 && stats.bytes_out == 13, "{stats:?}");

    drop(b);
    wait_for(
        "the closed connection to go",
        Duration::from_secs(5),
        || {
            let s = broker.stats();
            s.connections == 1 && s.subscriptions == 2
        },
    )?;
    a.send(b"UNSUB 1\r\nUNSUB 2\r\n")?;
    a.until_pong()?;
    ensure!(broker.stats().subscriptions == 0, "{:?}", broker.stats());
    ensure!(broker.stats().total_connections == 2);
    Ok(())
}

#[test]
fn protocol_errors_are_counted() -> Result<()> {
    let broker = EmbeddedBroker::start()?;
    let addr = broker.url().trim_start_matches("nats://").to_string();
    let mut raw = Raw::client(&addr)?;
    raw.send(b"BOGUS\r\n")?;
    raw.expect_err_and_close("Unknown Protocol Operation")?;
    wait_for("the error to be counted", Duration::from_secs(5), || {
        broker.stats().protocol_errors == 1
    })
}

#[tokio::test]
async fn graceful_shutdown_closes_clients_and_returns() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let broker = Broker::new(BrokerConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let broker = broker.clone();
        async move {
            broker
                .run(listener, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let client = async_nats::connect(format!("nats://{addr}")).await?;
    client.flush().await?;
    let mut raw = tokio::task::spawn_blocking(move || -> Result<Raw> {
        let mut raw = Raw::client(&addr)?;
        raw.send(b"SUB a 1\r\n")?;
        raw.until_pong()?;
        Ok(raw)
    })
    .await??;
    ensure!(broker.stats().connections == 2, "{:?}", broker.stats());

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server).await???;
    ensure!(broker.stats().connections == 0, "{:?}", broker.stats());
    ensure!(broker.stats().subscriptions == 0, "{:?}", broker.stats());
    tokio::task::spawn_blocking(move || raw.expect_closed()).await??;
    Ok(())
}

#[test]
fn the_plain_run_function_serves() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("nats://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(muster_broker::run(
            listener,
            BrokerConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let client = async_nats::connect(url).await?;
        let reply = client.request("nobody", "".into()).await;
        ensure!(reply.is_err());
        let _ = stop.send(());
        server.await??;
        Ok(())
    })
}
