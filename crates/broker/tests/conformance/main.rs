//! The broker conformance suite: every test runs the same assertions against the embedded
//! broker and against a real `nats-server` (skipped loudly when it is not installed, failing
//! when `CI` is set). Where the two differ, the embedded broker is wrong.
//!
//! - `wire`: raw-socket byte tests (exact bytes where both servers must agree).
//! - `client`: behaviour through the official `async-nats` client.
//! - `limits`: slow consumers, stale connections and authentication, with the same settings
//!   given to both brokers (`nats-server` gets them in a configuration file).
//! - `embedded_only`: what only the embedded broker can show (its counters, its shutdown).

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod embedded_only;
mod limits;
mod raw;
mod wire;

use anyhow::{Context, Result};
use muster_testkit::embedded::{self, TestBroker};

/// Runs `body` against each broker, saying which one failed.
pub fn each_broker(mut body: impl FnMut(&mut dyn TestBroker) -> Result<()>) -> Result<()> {
    for mut broker in embedded::both()? {
        let name = broker.name();
        body(broker.as_mut()).with_context(|| format!("against {name}"))?;
    }
    Ok(())
}
