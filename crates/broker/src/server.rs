//! The accept loop, the [`Broker`] handle and graceful shutdown (mini-redis shape:
//! [`run`] takes an already-bound listener and a shutdown future).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::connection;
use crate::shared::Shared;
use crate::stats::Stats;

/// A broker: cheap to clone, every clone the same broker. Create it with [`Broker::new`],
/// serve with [`Broker::run`], read its counters with [`Broker::stats`] (also after a run, and
/// across runs: a restarted broker keeps counting).
#[derive(Debug, Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl Broker {
    /// A broker with this configuration, not yet serving.
    pub fn new(config: BrokerConfig) -> Broker {
        Broker {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// A snapshot of its counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Serves clients accepted on `listener` until `shutdown` completes; then stops accepting,
    /// lets every connection write what is queued for it (bounded by the write deadline) and
    /// closes them. Returns an error only if accepting fails for good.
    pub async fn run(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let tls = self
            .shared
            .config
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()?;
        tracing::info!(%local, tls = tls.is_some(), "broker listening");
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(
                            Arc::clone(&self.shared),
                            stream,
                            peer,
                            local,
                            stop.child_token(),
                            tls.clone(),
                        ));
                    }
                    Err(error) if is_transient(&error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(error) => break Err(error),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        };
        drop(listener);
        stop.cancel();
        let grace = self.shared.config.write_deadline + Duration::from_secs(1);
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        tracing::info!(%local, "broker stopped");
        result
    }
}

fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory
    ) || matches!(error.raw_os_error(), Some(23 | 24 | 105))
    // ENFILE, EMFILE, ENOBUFS
}

/// Serves a new broker with `config` on `listener` until `shutdown` completes
/// (see [`Broker::run`]).
pub async fn run(
    listener: TcpListener,
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    Broker::new(config).run(listener, shutdown).await
}
