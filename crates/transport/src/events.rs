//! The connection events of a service that retries (the daemon, the registry): connects and
//! disconnects, and the cause of a failed attempt, said once while it stays the same.

use crate::cause::{Cause, diagnose};
use crate::settings::Transport;

/// What a retrying service has said about its failures, so that it says each cause once
/// while it stays the same rather than at every attempt.
#[derive(Debug, Default)]
struct Retrying {
    said: std::sync::Mutex<Vec<(String, Cause)>>,
    asking: std::sync::atomic::AtomicBool,
}

impl Retrying {
    /// The causes of a failed attempt, if they differ from the last ones said (and no other
    /// call is asking the brokers already).
    async fn failed(
        &self,
        brokers: &[String],
        transport: &Transport,
    ) -> Option<Vec<(String, Cause)>> {
        use std::sync::atomic::Ordering;
        if self.asking.swap(true, Ordering::AcqRel) {
            return None;
        }
        let causes = diagnose(brokers, transport, std::time::Duration::from_secs(3)).await;
        self.asking.store(false, Ordering::Release);
        if causes.is_empty() {
            return None;
        }
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if *said == causes {
            return None;
        }
        *said = causes.clone();
        Some(causes)
    }

    /// Connected: the next failure is said again.
    fn connected(&self) {
        self.said.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The connection's event callback for a service that retries (the daemon, the registry):
/// logs connects and disconnects, and — since async-nats' events name only the kind of a
/// failed attempt ("IO error") — asks each broker once why, saying it when the cause changes.
pub(crate) fn log_events(
    brokers: &[String],
    transport: &Transport,
) -> impl Fn(async_nats::Event) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    use async_nats::Event;
    use std::sync::Arc;
    let brokers = Arc::new(brokers.to_vec());
    let transport = Arc::new(transport.clone());
    let retrying = Arc::new(Retrying::default());
    move |event| {
        let (brokers, transport, retrying) = (brokers.clone(), transport.clone(), retrying.clone());
        Box::pin(async move {
            match event {
                Event::Connected => {
                    retrying.connected();
                    tracing::info!("connected to the broker");
                }
                Event::Disconnected => {
                    tracing::warn!("disconnected from the broker; reconnecting")
                }
                Event::ClientError(_) => {
                    // On a task of its own: the callback's future must be Sync, and a
                    // connection attempt is not.
                    tokio::spawn(async move {
                        let causes = retrying.failed(&brokers, &transport).await;
                        for (url, cause) in causes.unwrap_or_default() {
                            tracing::warn!(
                                "cannot connect to the broker at {url}: {cause}; retrying. {}",
                                cause.hint(&transport)
                            );
                        }
                    });
                }
                other => tracing::warn!(%other, "broker connection event"),
            }
        })
    }
}
