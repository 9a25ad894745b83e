//! Integration tests of the `muster` binary: the real CLI against real `nats-server` brokers
//! and real `muster server` daemons (docs/design.md §2–§5).
//!
//! - `filters`: every filter kind and the compound language pick exactly the right nodes;
//! - `outcomes`: each node outcome and each exit code of docs/design.md §3;
//! - `json`: the `--json` contract (snapshots and key sets) and composing commands;
//! - `human`: what people read (`facts`, `inventory`, `find`);
//! - `daemon`: the node daemon's robustness, signals, reconnects and config errors;
//! - `busy`: a node with every action slot busy, or a hanging reload, still answers;
//! - `cluster`: a nats-server cluster and a leaf node: routes, the leaf, a registry on another
//!   server, and failover when a server dies (nats-server only).
//!
//! Every test that needs a broker runs twice (`on_both_brokers!`): once on Muster's embedded
//! broker and once on its own `nats-server`, each on an ephemeral port, with the same
//! assertions. Without `nats-server` installed the second run says SKIPPED and passes (with
//! `CI` set it fails).

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Defines a test that runs once on the embedded broker and once on `nats-server`: a module
/// named after the test with the tests `embedded` and `nats_server`.
macro_rules! on_both_brokers {
    ($(#[doc = $doc:literal])* fn $name:ident() -> Result<()> $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body() -> anyhow::Result<()> $body

            #[test]
            fn embedded() -> anyhow::Result<()> {
                crate::fixture::on(crate::fixture::Kind::Embedded, body)
            }

            #[test]
            fn nats_server() -> anyhow::Result<()> {
                crate::fixture::on(crate::fixture::Kind::NatsServer, body)
            }
        }
    };
}

mod agents;
mod busy;
mod choria;
mod cli;
mod cluster;
mod daemon;
mod demo;
mod errors;
mod filters;
mod fixture;
mod flags;
mod forged;
mod human;
mod journal;
mod json;
mod outcomes;
mod pacing;
mod plugin;
mod precedence;
mod registry;
mod registry_hello;
mod security;
mod silent;
mod tls;
mod walkthrough;
