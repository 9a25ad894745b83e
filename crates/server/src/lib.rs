//! The Muster node daemon.
//!
//! It holds one connection to the broker, subscribes to the broadcast subject of each agent it
//! has and to its own direct subject, and for every message: checks the envelope, the
//! signature and credential, the request, the time window and the replay cache, the filter and
//! the policy, acknowledges, runs the action (a bounded number at once) and replies, signed.
//! With `security = "insecure"` the signature, credential, replay cache and policy steps are
//! skipped and nothing is signed.
//! Anything it cannot use is dropped and counted by reason, and every decision goes to the
//! audit log (a request whose filter does not match this node is only counted); nothing a
//! message contains can stop it serving. The order of the checks is docs/design.md §7.
//!
//! [`run`] takes a loaded [`ServerConfig`] and a channel of [`Control`] messages (the binary
//! turns SIGHUP and SIGTERM into them), so tests and embedders drive it without signals.

pub mod admission;
pub mod audit;
pub mod config;
pub mod daemon;
pub mod facts;
pub mod registration;
pub mod stats;
pub mod trust;

pub use config::{ConfigError, Origin, Overrides, Security, ServerConfig, Source};
pub use daemon::{Control, ServerError, run};
