//! The registry against a real (embedded) broker: registrations in, queries answered, garbage
//! counted, records kept across a restart.

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use muster_proto::registration::{
    REGISTRATION_PROTOCOL, Registration, RegistryAnswer, RegistryQuery,
};
use muster_proto::{FactFilter, Filter, subject};
use muster_registry::{Registry, RegistryConfig, Stats};
use muster_testkit::EmbeddedBroker;
use serde_json::json;
use tokio::sync::oneshot;

fn registration(identity: &str, role: &str, classes: &[&str]) -> Registration {
    Registration {
        protocol: REGISTRATION_PROTOCOL.to_string(),
        identity: identity.to_string(),
        facts: json!({"role": role}),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        agents: vec!["rpcutil".to_string()],
        collectives: vec!["muster".to_string()],
        version: "0.1.0".to_string(),
        started: 1,
        time: 1.0,
    }
}

/// Waits (polling, with a deadline) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if condition() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("timed out waiting for {what}")
}

async fn query(nats: &async_nats::Client, filter: Filter) -> Result<Vec<String>> {
    let message = nats
        .request(
            subject::registry_query("muster"),
            RegistryQuery::new(filter, Some(3600)).to_bytes().into(),
        )
        .await
        .context("query")?;
    let answer = RegistryAnswer::decode(&message.payload)?;
    if let Some(error) = answer.error {
        bail!("error answer: {error}");
    }
    Ok(answer.nodes.into_iter().map(|n| n.identity).collect())
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), muster_registry::RegistryError>>,
    counters: Box<dyn Fn() -> Stats + Send + Sync>,
}

async fn start(config: RegistryConfig) -> Result<Running> {
    let registry = Registry::start(config).await?;
    let counters = Box::new(registry.stats_handle());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(registry.serve(async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        stop,
        task,
        counters,
    })
}

impl Running {
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

#[test]
fn stores_registrations_answers_queries_and_survives_a_restart() -> Result<()> {
    let broker = EmbeddedBroker::start()?;
    let dir = tempfile::tempdir()?;
    let config = RegistryConfig {
        brokers: vec![broker.url()],
        ..RegistryConfig::new(dir.path().join("registry.sqlite"))
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let nats = async_nats::connect(broker.url()).await?;
        let registry = start(config.clone()).await?;
        let subject = subject::registration("muster");
        for r in [
            registration("web1", "web", &["nginx"]),
            registration("web2", "web", &["nginx", "canary"]),
            registration("db1", "db", &["postgres"]),
        ] {
            nats.publish(subject.clone(), r.to_bytes().into()).await?;
        }
        for garbage in [
            &b"not json"[..],
            b"{}",
            br#"{"protocol":"muster:registration:1","identity":"a b","time":1}"#,
        ] {
            nats.publish(subject.clone(), garbage.to_vec().into())
                .await?;
        }
        nats.flush().await?;
        until("3 stored and 3 invalid", || {
            let c = (registry.counters)();
            c.stored == 3 && c.invalid == 3
        })
        .await?;

        assert_eq!(
            query(&nats, Filter::default()).await?,
            ["db1", "web1", "web2"]
        );
        let web = Filter {
            fact: vec![FactFilter::parse("role=web")?],
            ..Filter::default()
        };
        assert_eq!(query(&nats, web).await?, ["web1", "web2"]);
        let canary = Filter {
            class: vec!["canary".into()],
            ..Filter::default()
        };
        assert_eq!(query(&nats, canary).await?, ["web2"]);
        let bad = Filter {
            identity: vec!["/(/".into()],
            ..Filter::default()
        };
        assert!(query(&nats, bad).await.is_err());
        // A query that does not decode gets an error answer, and the registry keeps serving.
        let reply = nats
            .request(subject::registry_query("muster"), "garbage".into())
            .await?;
        assert!(RegistryAnswer::decode(&reply.payload)?.error.is_some());
        registry.stop().await?;

        // Started again on the same file, it still knows every node.
        let registry = start(config.clone()).await?;
        assert_eq!(
            query(&nats, Filter::default()).await?,
            ["db1", "web1", "web2"]
        );
        // Two registries in the queue group: each query is answered (once, by either).
        let second = start(RegistryConfig {
            db: dir.path().join("second.sqlite"),
            ..config.clone()
        })
        .await?;
        nats.publish(
            subject.clone(),
            registration("cache1", "cache", &[]).to_bytes().into(),
        )
        .await?;
        nats.flush().await?;
        until("both registries stored cache1", || {
            (registry.counters)().stored == 1 && (second.counters)().stored == 1
        })
        .await?;
        let asked = 10;
        for _ in 0..asked {
            query(&nats, Filter::default()).await?;
        }
        let answered = (registry.counters)().queries + (second.counters)().queries;
        assert_eq!(answered, asked + 1, "each query answered once");
        registry.stop().await?;
        second.stop().await?;
        anyhow::Ok(())
    })
}

#[test]
fn prunes_nodes_past_the_retention_age() -> Result<()> {
    let broker = EmbeddedBroker::start()?;
    let dir = tempfile::tempdir()?;
    let config = RegistryConfig {
        brokers: vec![broker.url()],
        retention: Duration::from_millis(300),
        prune_interval: Duration::from_millis(50),
        ..RegistryConfig::new(dir.path().join("registry.sqlite"))
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let nats = async_nats::connect(broker.url()).await?;
        let registry = start(config).await?;
        nats.publish(
            subject::registration("muster"),
            registration("gone", "web", &[]).to_bytes().into(),
        )
        .await?;
        nats.flush().await?;
        until("stored", || (registry.counters)().stored == 1).await?;
        until("pruned", || (registry.counters)().pruned == 1).await?;
        assert!(query(&nats, Filter::default()).await?.is_empty());
        registry.stop().await
    })
}

#[test]
fn an_unreachable_broker_and_a_bad_database_are_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let err = Registry::start(RegistryConfig {
            brokers: vec![format!("nats://127.0.0.1:{port}")],
            ..RegistryConfig::new(dir.path().join("r.sqlite"))
        })
        .await
        .err()
        .context("expected an error")?;
        assert!(
            matches!(
                err,
                muster_registry::RegistryError::BrokerUnreachable { .. }
            ),
            "{err}"
        );
        let err = Registry::start(RegistryConfig::new(dir.path().join("no/such/dir/r.sqlite")))
            .await
            .err()
            .context("expected an error")?;
        assert!(
            matches!(err, muster_registry::RegistryError::Store(_)),
            "{err}"
        );
        anyhow::Ok(())
    })
}
