//! Slow consumers, stale connections and authentication. Both brokers get the same settings
//! (`nats-server` through a configuration file written by the testkit).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use muster_broker::{Auth, BrokerConfig};
use muster_testkit::embedded::{self, TestBroker};
use tokio::time::timeout;

use crate::raw::{Frame, PATIENCE, Raw};

fn each_broker_with(
    config: &BrokerConfig,
    mut body: impl FnMut(&mut dyn TestBroker) -> Result<()>,
) -> Result<()> {
    for mut broker in embedded::both_with(config)? {
        let name = broker.name();
        body(broker.as_mut()).with_context(|| format!("against {name}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_without_stalling_the_others() -> Result<()> {
    // max_pending leaves a fast subscriber that is briefly starved of CPU (a loaded 2-core CI
    // machine) room to catch up. nats-server 2.9 holds the publisher until the slow consumer's
    // write deadline expires (measured: 10 s with the default deadline; 2.10+ stalls 2-5 ms
    // per message instead), hence the short deadline here.
    let config = BrokerConfig {
        max_pending: 8 * 1024 * 1024,
        write_deadline: Duration::from_secs(1),
        ..BrokerConfig::default()
    };
    let messages = 400;
    let payload = bytes::Bytes::from(vec![b'x'; 100 * 1024]);
    for mut broker in embedded::both_with(&config)? {
        let name = broker.name();
        let broker: &mut dyn TestBroker = broker.as_mut();
        let result: Result<()> = async {
            // Subscribes, proves it with a PONG, then never reads again.
            let mut slow = Raw::client(&broker.addr())?;
            slow.send(b"SUB bulk 1\r\n")?;
            slow.until_pong()?;

            let fast = async_nats::connect(broker.url()).await?;
            let mut fast_sub = fast.subscribe("bulk").await?;
            crate::client::sync(&fast).await?;
            let fast_reader = tokio::spawn(async move {
                let mut n = 0;
                while n < messages {
                    match timeout(PATIENCE, fast_sub.next()).await {
                        Ok(Some(_)) => n += 1,
                        _ => break,
                    }
                }
                n
            });

            let publisher = async_nats::connect(broker.url()).await?;
            let started = Instant::now();
            for _ in 0..messages {
                publisher.publish("bulk", payload.clone()).await?;
            }
            timeout(PATIENCE, publisher.flush())
                .await
                .context("the publisher stalled")??;
            let publish_time = started.elapsed();
            ensure!(
                publish_time < Duration::from_secs(4),
                "publishing took {publish_time:?}"
            );

            let got = fast_reader.await?;
            ensure!(
                got == messages,
                "the fast subscriber got {got} of {messages}"
            );

            // The slow one was cut off: reading now ends in EOF, well short of everything.
            let read = tokio::task::block_in_place(|| slow.drain_until_closed(PATIENCE))?;
            let everything = messages * payload.len();
            ensure!(
                read < everything,
                "the slow consumer read {read} of {everything} bytes"
            );
            if let Some(stats) = broker.stats() {
                ensure!(stats.slow_consumers >= 1, "{stats:?}");
            }
            Ok(())
        }
        .await;
        result.with_context(|| format!("against {name}"))?;
    }
    Ok(())
}

#[test]
fn a_client_that_stops_answering_pings_is_closed_as_stale() -> Result<()> {
    let config = BrokerConfig {
        ping_interval: Duration::from_millis(200),
        max_pings_out: 2,
        ..BrokerConfig::default()
    };
    each_broker_with(&config, |broker| {
        let mut raw = Raw::handshake(&broker.addr(), r#"{"verbose":false}"#)?;
        let mut pings = 0;
        loop {
            match raw.next_raw()?.0 {
                Frame::Ping => pings += 1,
                Frame::Err(text) => {
                    ensure!(text == "'Stale Connection'", "{text}");
                    break;
                }
                other => bail!("unexpected {other:?}"),
            }
        }
        ensure!(pings == 2, "{pings} PINGs before the stale error");
        raw.expect_closed()?;
        if let Some(stats) = broker.stats() {
            ensure!(stats.stale_connections >= 1, "{stats:?}");
        }
        Ok(())
    })
}

#[test]
fn a_client_that_answers_pings_stays() -> Result<()> {
    let config = BrokerConfig {
        ping_interval: Duration::from_millis(100),
        max_pings_out: 2,
        ..BrokerConfig::default()
    };
    each_broker_with(&config, |broker| {
        let mut raw = Raw::handshake(&broker.addr(), r#"{"verbose":false}"#)?;
        for _ in 0..5 {
            let (frame, _) = raw.next_raw()?;
            ensure!(frame == Frame::Ping, "{frame:?}");
            raw.send(b"PONG\r\n")?;
        }
        ensure!(raw.until_pong()?.is_empty());
        Ok(())
    })
}

fn token_config() -> BrokerConfig {
    BrokerConfig {
        auth: Auth::Token {
            token: "s3cret".into(),
        },
        ..BrokerConfig::default()
    }
}

fn user_config() -> BrokerConfig {
    BrokerConfig {
        auth: Auth::UserPassword {
            user: "alice".into(),
            password: "wonder land".into(),
        },
        ..BrokerConfig::default()
    }
}

async fn works(client: async_nats::Client) -> Result<()> {
    let mut sub = client.subscribe("auth.ok").await?;
    client.flush().await?;
    client.publish("auth.ok", "yes".into()).await?;
    let msg = timeout(PATIENCE, sub.next()).await?.context("no message")?;
    ensure!(msg.payload == "yes");
    Ok(())
}

fn is_authorization_violation(
    result: Result<async_nats::Client, async_nats::ConnectError>,
) -> Result<()> {
    match result {
        Ok(_) => bail!("connected with bad credentials"),
        Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => Ok(()),
        Err(e) => bail!("expected an authorization violation, got {e:?}"),
    }
}

#[tokio::test]
async fn token_auth() -> Result<()> {
    for mut broker in embedded::both_with(&token_config())? {
        let name = broker.name();
        let broker: &mut dyn TestBroker = broker.as_mut();
        let result: Result<()> = async {
            let url = broker.url();
            let good = async_nats::ConnectOptions::with_token("s3cret".into())
                .connect(&url)
                .await?;
            works(good).await?;
            is_authorization_violation(
                async_nats::ConnectOptions::with_token("wrong".into())
                    .connect(&url)
                    .await,
            )?;
            is_authorization_violation(async_nats::connect(&url).await)?;
            Ok(())
        }
        .await;
        result.with_context(|| format!("against {name}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn user_password_auth() -> Result<()> {
    for mut broker in embedded::both_with(&user_config())? {
        let name = broker.name();
        let broker: &mut dyn TestBroker = broker.as_mut();
        let result: Result<()> = async {
            let url = broker.url();
            let good = async_nats::ConnectOptions::with_user_and_password(
                "alice".into(),
                "wonder land".into(),
            )
            .connect(&url)
            .await?;
            works(good).await?;
            is_authorization_violation(
                async_nats::ConnectOptions::with_user_and_password("alice".into(), "nope".into())
                    .connect(&url)
                    .await,
            )?;
            is_authorization_violation(
                async_nats::ConnectOptions::with_token("s3cret".into())
                    .connect(&url)
                    .await,
            )?;
            Ok(())
        }
        .await;
        result.with_context(|| format!("against {name}"))?;
    }
    Ok(())
}

#[test]
fn auth_info_and_wire_behaviour() -> Result<()> {
    each_broker_with(&token_config(), |broker| {
        let raw = Raw::open(&broker.addr())?;
        ensure!(raw.info["auth_required"] == true, "{}", raw.info);

        // Anything but CONNECT first is an authorization violation (even PING).
        let mut raw = Raw::open(&broker.addr())?;
        raw.send(b"PING\r\n")?;
        raw.expect_err_and_close("Authorization Violation")?;

        let mut raw = Raw::open(&broker.addr())?;
        raw.send(b"CONNECT {\"verbose\":false,\"auth_token\":\"bad\"}\r\n")?;
        raw.expect_err_and_close("Authorization Violation")?;

        let mut raw = Raw::handshake(&broker.addr(), r#"{"verbose":false,"auth_token":"s3cret"}"#)?;
        raw.send(b"SUB a 1\r\nPUB a 1\r\nx\r\n")?;
        raw.expect(b"MSG a 1 1\r\nx\r\n")?;
        if let Some(stats) = broker.stats() {
            ensure!(stats.auth_failures >= 2, "{stats:?}");
        }
        Ok(())
    })
}

#[test]
fn authentication_timeout() -> Result<()> {
    let config = BrokerConfig {
        auth_timeout: Duration::from_millis(300),
        ..token_config()
    };
    each_broker_with(&config, |broker| {
        let mut raw = Raw::open(&broker.addr())?;
        raw.expect_err_and_close("Authentication Timeout")
    })
}
