//! Registry hellos for virtual nodes: a registry that starts asks every node to register now
//! (docs/design.md §2), and each virtual node of a group answers with its registration — signed
//! in signed mode — at its own random moment within the hello's jitter, as a fleet of daemons
//! would. Like a daemon, a group answers one hello at a time (those arriving meanwhile are
//! answered by the same round) and starts a round no sooner than a second after its last one.
//! Virtual nodes register only when asked: they have no registration interval.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use muster_proto::registration::RegistryHello;
use muster_proto::subject;
use muster_proto::time::now;
use muster_server::registration::{HELLO_QUIET, registration};
use tokio::time::Instant;
use tracing::debug;

use crate::Group;

/// A group's answering of hellos.
pub(crate) struct Hellos {
    /// The subject hellos arrive on.
    pub(crate) subject: String,
    /// Where registrations go.
    registration: String,
    /// When the simulator started, Unix seconds (the registrations' `started`).
    started: u64,
    /// Whether a round of answers is under way.
    answering: AtomicBool,
    /// When the last round ended.
    last: Mutex<Option<Instant>>,
}

impl Hellos {
    /// Hellos of `collective`, for nodes started at `started`.
    pub(crate) fn new(collective: &str, started: u64) -> Hellos {
        Hellos {
            subject: subject::registry_hello(collective),
            registration: subject::registration(collective),
            started,
            answering: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }
}

/// Answers a hello (`payload`) for every node of the group, in the background.
pub(crate) fn answer(group: &Arc<Group>, client: &Client, payload: &[u8]) {
    let hello = match RegistryHello::decode(payload) {
        Ok(hello) => hello,
        Err(e) => {
            debug!(error = %e, "ignored a registry hello that does not decode");
            return;
        }
    };
    let hellos = &group.hellos;
    if hellos.answering.swap(true, Ordering::AcqRel) {
        return;
    }
    let last = match hellos.last.lock() {
        Ok(l) => *l,
        Err(poisoned) => *poisoned.into_inner(),
    };
    let begin = match last {
        Some(at) => (at + HELLO_QUIET).max(Instant::now()),
        None => Instant::now(),
    };
    let (group, client) = (group.clone(), client.clone());
    tokio::spawn(async move {
        let jitter = u64::try_from(hello.jitter().as_micros()).unwrap_or(u64::MAX);
        let mut moments: Vec<(u64, usize)> = (0..group.nodes.len())
            .map(|i| {
                let at = if jitter == 0 {
                    0
                } else {
                    rand::random_range(0..jitter)
                };
                (at, i)
            })
            .collect();
        moments.sort_unstable();
        for (at, index) in moments {
            tokio::time::sleep_until(begin + Duration::from_micros(at)).await;
            let Some(node) = group.nodes.get(index) else {
                continue;
            };
            let hellos = &group.hellos;
            let bytes = registration(&node.inventory, hellos.started, now()).to_bytes();
            let _ = client
                .publish(hellos.registration.clone(), node.seal(bytes).into())
                .await;
        }
        let hellos = &group.hellos;
        match hellos.last.lock() {
            Ok(mut l) => *l = Some(Instant::now()),
            Err(poisoned) => *poisoned.into_inner() = Some(Instant::now()),
        }
        hellos.answering.store(false, Ordering::Release);
    });
}
