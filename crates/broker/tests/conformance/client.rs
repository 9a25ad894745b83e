//! Behaviour through the official `async-nats` client, which every Muster component uses.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use async_nats::{HeaderMap, StatusCode};
use futures::StreamExt;
use muster_testkit::embedded::{self, TestBroker};
use tokio::time::timeout;

use crate::raw::PATIENCE;

async fn connect(broker: &dyn TestBroker) -> Result<async_nats::Client> {
    async_nats::connect(broker.url())
        .await
        .with_context(|| format!("connect to {}", broker.name()))
}

/// Waits until the server has processed everything `client` sent so far. `flush()` only
/// writes to the socket; a request to a subject nobody listens on comes back (as no
/// responders) only after the server has handled the operations before it.
pub async fn sync(client: &async_nats::Client) -> Result<()> {
    match timeout(
        PATIENCE,
        client.request("conformance.sync.nobody", "".into()),
    )
    .await?
    {
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        other => bail!("sync request: expected no responders, got {other:?}"),
    }
}

async fn next(sub: &mut async_nats::Subscriber) -> Result<async_nats::Message> {
    timeout(PATIENCE, sub.next())
        .await
        .context("timed out waiting for a message")?
        .context("subscription ended")
}

/// Runs an async body against each broker.
macro_rules! each_broker_async {
    (|$broker:ident| $body:block) => {{
        for mut boxed in embedded::both()? {
            let name = boxed.name();
            let $broker: &mut dyn TestBroker = boxed.as_mut();
            let result: Result<()> = async { $body }.await;
            result.with_context(|| format!("against {name}"))?;
        }
        Ok(())
    }};
}

#[tokio::test]
async fn publish_subscribe_in_order() -> Result<()> {
    each_broker_async!(|broker| {
        let client = connect(broker).await?;
        let mut sub = client.subscribe("orders.new").await?;
        client.flush().await?;
        for i in 0..100 {
            client.publish("orders.new", format!("{i}").into()).await?;
        }
        for i in 0..100 {
            let msg = next(&mut sub).await?;
            ensure!(
                msg.payload == format!("{i}").as_bytes(),
                "message {i}: {msg:?}"
            );
            ensure!(msg.subject.as_str() == "orders.new");
        }
        Ok(())
    })
}

#[tokio::test]
async fn wildcard_subscriptions() -> Result<()> {
    each_broker_async!(|broker| {
        let client = connect(broker).await?;
        let mut star = client.subscribe("muster.*.node").await?;
        let mut rest = client.subscribe("muster.>").await?;
        client.flush().await?;
        client.publish("muster.c1.node", "a".into()).await?;
        client.publish("muster.c1.node.web1", "b".into()).await?;
        client.publish("other.c1.node", "c".into()).await?;
        client.publish("muster.c2.node", "d".into()).await?;
        ensure!(next(&mut star).await?.payload == "a");
        ensure!(next(&mut star).await?.payload == "d");
        for expected in ["a", "b", "d"] {
            ensure!(next(&mut rest).await?.payload == expected);
        }
        Ok(())
    })
}

#[tokio::test]
async fn queue_group_members_share_the_work() -> Result<()> {
    each_broker_async!(|broker| {
        let members = 3;
        let messages = 60;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for m in 0..members {
            let client = connect(broker).await?;
            let mut sub = client
                .queue_subscribe("registry.query", "registry".into())
                .await?;
            sync(&client).await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    let _ = tx.send((m, msg.payload));
                }
            });
            clients.push(client);
        }
        let publisher = connect(broker).await?;
        for i in 0..messages {
            publisher
                .publish("registry.query", format!("{i}").into())
                .await?;
        }
        publisher.flush().await?;
        let mut seen = BTreeSet::new();
        let mut by_member = vec![0; members];
        while seen.len() < messages {
            let (m, payload) = timeout(PATIENCE, rx.recv())
                .await
                .context("timed out waiting for queue deliveries")?
                .context("channel closed")?;
            ensure!(seen.insert(payload.clone()), "delivered twice: {payload:?}");
            by_member[m] += 1;
        }
        ensure!(by_member.iter().sum::<usize>() == messages, "{by_member:?}");
        Ok(())
    })
}

#[tokio::test]
async fn headers_round_trip() -> Result<()> {
    each_broker_async!(|broker| {
        let client = connect(broker).await?;
        let mut sub = client.subscribe("with.headers").await?;
        client.flush().await?;
        let mut headers = HeaderMap::new();
        headers.insert("Muster-Request", "abc123");
        headers.append("Multi", "one");
        headers.append("Multi", "two");
        client
            .publish_with_headers("with.headers", headers, "body".into())
            .await?;
        let msg = next(&mut sub).await?;
        ensure!(msg.payload == "body");
        let got = msg.headers.context("no headers")?;
        ensure!(
            got.get("Muster-Request").map(|v| v.as_str()) == Some("abc123"),
            "{got:?}"
        );
        let multi: Vec<&str> = got.get_all("Multi").map(|v| v.as_str()).collect();
        ensure!(multi == ["one", "two"], "{got:?}");
        Ok(())
    })
}

#[tokio::test]
async fn no_responders() -> Result<()> {
    each_broker_async!(|broker| {
        let client = connect(broker).await?;
        let err = client
            .request("nobody.listens", "ping".into())
            .await
            .err()
            .context("a request to nobody succeeded")?;
        ensure!(
            err.kind() == async_nats::RequestErrorKind::NoResponders,
            "{err:?}"
        );

        // A plain inbox subscription sees the 503 as a status message.
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(format!("{inbox}.>")).await?;
        client
            .publish_with_reply("nobody.listens", format!("{inbox}.1"), "ping".into())
            .await?;
        let msg = next(&mut replies).await?;
        ensure!(msg.status == Some(StatusCode::NO_RESPONDERS), "{msg:?}");
        ensure!(msg.payload.is_empty());
        Ok(())
    })
}

#[tokio::test]
async fn request_reply_with_many_replies() -> Result<()> {
    each_broker_async!(|broker| {
        let responders = 5;
        let mut clients = Vec::new();
        for r in 0..responders {
            let client = connect(broker).await?;
            let mut sub = client.subscribe("muster.c.broadcast.rpcutil").await?;
            sync(&client).await?;
            let replier = client.clone();
            tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    if let Some(reply) = msg.reply {
                        let _ = replier.publish(reply, format!("node{r}").into()).await;
                        let _ = replier.flush().await;
                    }
                }
            });
            clients.push(client);
        }
        let requester = connect(broker).await?;
        let inbox = requester.new_inbox();
        let mut replies = requester.subscribe(format!("{inbox}.>")).await?;
        sync(&requester).await?;
        for round in 0..3 {
            requester
                .publish_with_reply(
                    "muster.c.broadcast.rpcutil",
                    format!("{inbox}.{round}"),
                    "ping".into(),
                )
                .await?;
            let mut senders = BTreeSet::new();
            while senders.len() < responders {
                let msg = next(&mut replies).await?;
                ensure!(
                    msg.subject.as_str() == format!("{inbox}.{round}"),
                    "{msg:?}"
                );
                ensure!(senders.insert(msg.payload.clone()), "duplicate {msg:?}");
            }
        }
        // request() keeps only the first of them (docs/design.md §2).
        let first = requester
            .request("muster.c.broadcast.rpcutil", "ping".into())
            .await?;
        ensure!(first.payload.starts_with(b"node"));
        Ok(())
    })
}

#[tokio::test]
async fn resubscribes_after_a_broker_restart() -> Result<()> {
    each_broker_async!(|broker| {
        // Not retry_on_initial_connect(): with it, connect() returns before the connection
        // exists and an early flush() does not guarantee the SUB reached the server (seen
        // with nats-server too).
        let options = || {
            async_nats::ConnectOptions::new().reconnect_delay_callback(|attempt| {
                Duration::from_millis((10 * attempt as u64).min(200))
            })
        };
        let subscriber = options().connect(broker.url()).await?;
        let publisher = options().connect(broker.url()).await?;
        let mut sub = subscriber.subscribe("after.restart").await?;
        sync(&subscriber).await?;
        publisher.publish("after.restart", "before".into()).await?;
        ensure!(next(&mut sub).await?.payload == "before");

        broker.restart()?;

        // Publish until one gets through: both clients must have reconnected and the
        // subscription been re-sent. Each probe waits briefly; the whole wait is bounded.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let _ = publisher.publish("after.restart", "after".into()).await;
            let _ = publisher.flush().await;
            if let Ok(Some(msg)) = timeout(Duration::from_millis(100), sub.next()).await
                && msg.payload == "after"
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no message after the restart within 15 s");
            }
        }
        Ok(())
    })
}

#[tokio::test]
async fn many_literal_subscriptions_on_one_connection() -> Result<()> {
    each_broker_async!(|broker| {
        let nodes = 2000;
        let client = connect(broker).await?;
        let mut subs = Vec::new();
        for i in 0..nodes {
            subs.push(client.subscribe(format!("muster.c.node.n{i}")).await?);
        }
        let requester = connect(broker).await?;
        let inbox = requester.new_inbox();
        let mut replies = requester.subscribe(format!("{inbox}.>")).await?;
        sync(&requester).await?;
        sync(&client).await?;
        for i in 0..nodes {
            requester
                .publish_with_reply(
                    format!("muster.c.node.n{i}"),
                    format!("{inbox}.r"),
                    "".into(),
                )
                .await?;
        }
        requester.flush().await?;
        for (i, sub) in subs.iter_mut().enumerate() {
            let msg = next(sub).await?;
            let reply = msg.reply.context("no reply subject")?;
            client.publish(reply, format!("n{i}").into()).await?;
        }
        client.flush().await?;
        let mut got = BTreeSet::new();
        while got.len() < nodes {
            let msg = next(&mut replies).await?;
            ensure!(got.insert(msg.payload), "duplicate reply");
        }
        Ok(())
    })
}
