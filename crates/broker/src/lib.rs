//! The embedded broker behind `muster broker`: a single-node server speaking the NATS client
//! protocol well enough that the official `async-nats` client — and so every Muster component —
//! works against it unchanged.
//!
//! It knows NATS, not Muster: this crate depends on no other Muster crate. Where its behaviour
//! could differ from `nats-server`, it copies `nats-server` (the conformance suite in
//! `tests/conformance` runs the same assertions against both; where they differ, this crate is
//! wrong).
//!
//! # Layout
//!
//! - [`codec`]: the I/O-free NATS codec — decodes client operations from a byte buffer (with
//!   `nats-server`'s classification of bad input) and encodes server operations. Fuzzed.
//! - [`subject`]: subject validation and wildcard matching (`*`, `>`).
//! - `outbound`: a connection's outbound queue, bounded in bytes: the fan-out and the
//!   connection's reader append to it, the connection's writer drains it.
//! - `routing`: the subscription index — a hash map for literal subjects plus a token trie for
//!   the few wildcard subscriptions (client inboxes) — the fan-out, and the `Client` it
//!   delivers to (a connection's outbound queue and subscriptions), which drops a slow
//!   consumer instead of stalling the fan-out.
//! - `connection`: one reader task and one writer task per client connection.
//! - `shared`: the state every connection of one broker shares (configuration, counters,
//!   subscription index).
//! - [`tls`]: the rustls acceptor (ring provider) for `[tls]`, optionally requiring client
//!   certificates signed by a CA; `INFO` goes out in plain text first, as nats-server does
//!   without `handshake_first`. [`tls::check`] names a certificate rustls would refuse, with
//!   the reason, before the broker listens.
//! - [`server`]: the accept loop, the cheap-to-clone [`Broker`] handle and graceful shutdown.
//! - [`config`]: [`BrokerConfig`], every key with `nats-server`'s default.
//! - [`stats`]: counters and the [`Stats`] snapshot.
//!
//! # Use
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4222").await?;
//! muster_broker::run(listener, muster_broker::BrokerConfig::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! It serves TLS, token or user/password authentication, and private reply inboxes
//! (`private_inboxes`: each client owns the `_INBOX.<token>` subjects it subscribed to first).
//! Not implemented: nkey/JWT authentication, several users, general subject permissions,
//! clustering, leaf nodes, JetStream — run a `nats-server` cluster for those.

pub mod codec;
pub mod config;
mod connection;
mod outbound;
mod routing;
pub mod server;
mod shared;
pub mod stats;
pub mod subject;
pub mod tls;

pub use config::{Auth, BrokerConfig, Tls};
pub use server::{Broker, run};
pub use stats::Stats;
