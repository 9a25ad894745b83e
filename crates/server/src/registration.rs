//! Registration: the node publishes its inventory on `muster.<collective>.registration` at
//! start and then every `registration_interval` (±10 % jitter, so a fleet restarted at once
//! does not register in lockstep). Registries store it and answer inventory queries.
//!
//! A registry that starts asks every node to register now (a hello on
//! `muster.<collective>.registry.hello`, docs/design.md §2): the node publishes its registration
//! after a random delay below the hello's jitter, then goes on every interval from there. It
//! answers one hello at a time (those arriving meanwhile are answered by the same registration)
//! and never sooner than [`HELLO_QUIET`] after its last registration, so a flood of hellos costs
//! at most one registration a second. A hello just after a registration is still answered (a
//! second later): that registration may have been sent before the registry subscribed. Hellos need no signature: they only
//! bring forward a registration the node sends anyway (docs/security.md).
//!
//! The task runs beside the receive loop and never holds it up: publishing only queues the
//! message on the connection.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use muster_agent::Inventory;
use muster_proto::registration::{REGISTRATION_PROTOCOL, Registration, RegistryHello};
use muster_proto::time::{self, UnixTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// The registration of a node with this inventory, started at `started`, made at `now`
/// (both Unix seconds).
pub fn registration(inventory: &Inventory, started: u64, now: UnixTime) -> Registration {
    Registration {
        protocol: REGISTRATION_PROTOCOL.to_string(),
        identity: inventory.identity.clone(),
        facts: inventory.facts.clone(),
        classes: inventory.classes.clone(),
        agents: inventory.agents.clone(),
        collectives: inventory.collectives.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started,
        time: now,
    }
}

/// A hello is answered no sooner than this after the node's last registration: at most one
/// registration a second, however many hellos are sent.
pub const HELLO_QUIET: Duration = Duration::from_secs(1);

/// `interval` moved by up to ±10 %, by `unit`, a number in `[0, 1)`.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    interval.mul_f64(factor)
}

/// A small pseudo-random generator (xorshift) for the jitter; not for anything secret.
struct Jitter(u64);

impl Jitter {
    fn seeded(identity: &str) -> Self {
        // The clock's bits differ from one start to the next, down to its fraction of a second.
        let clock = time::now().to_bits();
        let seed = identity
            .bytes()
            .fold(clock ^ 0x9E37_79B9_7F4A_7C15, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
            });
        Jitter(seed | 1)
    }

    /// A number in `[0, 1)`.
    fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The running registration task; [`Registrar::stop`] ends it.
pub struct Registrar {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Registrar {
    /// Starts publishing to `subject` at once and then every `interval` (jittered), signed by
    /// `signer` when there is one, and answers the registry hellos of `hello_subject`.
    /// `inventory` is called for each registration, so facts reloaded with SIGHUP are sent the
    /// next time.
    pub fn spawn(
        client: Client,
        subject: String,
        hello_subject: String,
        interval: Duration,
        started: u64,
        signer: Option<Arc<crate::trust::NodeSigner>>,
        inventory: impl Fn() -> Arc<Inventory> + Send + 'static,
    ) -> Registrar {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut jitter = Jitter::seeded(&inventory().identity);
            let mut hellos = match client.subscribe(hello_subject.clone()).await {
                Ok(sub) => Some(sub),
                Err(e) => {
                    warn!(error = %e, subject = %hello_subject, "cannot subscribe to registry hellos; registering every interval only");
                    None
                }
            };
            'publish: loop {
                let mut payload = registration(&inventory(), started, time::now()).to_bytes();
                if let Some(signer) = &signer {
                    payload = signer.seal(String::from_utf8(payload).unwrap_or_default());
                }
                match client.publish(subject.clone(), payload.into()).await {
                    Ok(()) => debug!(%subject, "published the registration"),
                    Err(e) => warn!(error = %e, %subject, "cannot publish the registration"),
                }
                let published = tokio::time::Instant::now();
                let next = published + jittered(interval, jitter.next_unit());
                loop {
                    let hello = async {
                        match hellos.as_mut() {
                            Some(sub) => sub.next().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => continue 'publish,
                        _ = &mut stopped => break 'publish,
                        message = hello => {
                            let Some(message) = message else {
                                hellos = None;
                                continue;
                            };
                            let Some(delay) = hello_delay(&message.payload, published.elapsed(), jitter.next_unit()) else {
                                continue;
                            };
                            // One answer in flight: hellos arriving meanwhile are read and
                            // dropped below, as this registration answers them too.
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => {}
                                _ = &mut stopped => break 'publish,
                            }
                            if let Some(sub) = hellos.as_mut() {
                                while let Some(Some(_)) = futures::FutureExt::now_or_never(sub.next()) {}
                            }
                            continue 'publish;
                        }
                    }
                }
            }
        });
        Registrar {
            stop: Some(stop),
            task,
        }
    }

    /// Stops publishing and waits for the task to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// How long after a hello (`payload`) to register, `since` the last registration, with
/// `unit` a random number in `[0, 1)`: a share of the hello's jitter, but not before
/// [`HELLO_QUIET`] has passed since the last registration. `None`: not a hello, ignored.
pub fn hello_delay(payload: &[u8], since: Duration, unit: f64) -> Option<Duration> {
    let hello = match RegistryHello::decode(payload) {
        Ok(hello) => hello,
        Err(e) => {
            debug!(error = %e, "ignored a registry hello that does not decode");
            return None;
        }
    };
    let spread = hello.jitter().mul_f64(unit.clamp(0.0, 1.0));
    Some(spread.max(HELLO_QUIET.saturating_sub(since)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_registration_carries_the_inventory() {
        let inventory = Inventory {
            identity: "web1".into(),
            facts: json!({"role": "web"}),
            classes: vec!["nginx".into()],
            agents: vec!["rpcutil".into()],
            collectives: vec!["muster".into()],
        };
        let r = registration(&inventory, 100, 200.5);
        let back = Registration::decode(&r.to_bytes()).unwrap();
        assert_eq!(back.identity, "web1");
        assert_eq!(back.facts, json!({"role": "web"}));
        assert_eq!(back.classes, ["nginx"]);
        assert_eq!(back.agents, ["rpcutil"]);
        assert_eq!(back.collectives, ["muster"]);
        assert_eq!(back.version, env!("CARGO_PKG_VERSION"));
        assert_eq!((back.started, back.time), (100, 200.5));
    }

    #[test]
    fn a_hello_is_answered_within_its_jitter_and_at_most_once_a_second() {
        let hello = RegistryHello::new(Duration::from_secs(2)).to_bytes();
        let long_ago = Duration::from_secs(30);
        assert_eq!(hello_delay(&hello, long_ago, 0.0), Some(Duration::ZERO));
        assert_eq!(
            hello_delay(&hello, long_ago, 0.5),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            hello_delay(&hello, Duration::from_millis(300), 0.0),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            hello_delay(&hello, Duration::from_millis(300), 0.5),
            Some(Duration::from_secs(1))
        );
        assert_eq!(hello_delay(b"{}", long_ago, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(60);
        assert_eq!(jittered(interval, 0.0), Duration::from_secs(54));
        assert_eq!(jittered(interval, 1.0), Duration::from_secs(66));
        let mut jitter = Jitter::seeded("web1");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let unit = jitter.next_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
            let d = jittered(interval, unit);
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66));
            seen.insert(d.as_secs());
        }
        assert!(seen.len() > 5, "the jitter varies: {seen:?}");
    }
}
