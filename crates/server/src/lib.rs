//! The Muster node daemon.
//!
//! It holds one connection to the broker, subscribes to the broadcast subject of each agent it
//! has and to its own direct subject, and for every message: checks the envelope and the
//! request, checks the filter, acknowledges, runs the action (a bounded number at once) and
//! replies. Anything it cannot use is dropped and counted by reason; nothing a message contains
//! can stop it serving.
//!
//! [`run`] takes a loaded [`ServerConfig`] and a channel of [`Control`] messages (the binary
//! turns SIGHUP and SIGTERM into them), so tests and embedders drive it without signals.

pub mod admission;
pub mod config;
pub mod daemon;
pub mod facts;
pub mod registration;
pub mod stats;

pub use config::{ConfigError, Overrides, Security, ServerConfig};
pub use daemon::{Control, ServerError, run};
