//! Muster's wire protocol: envelopes, requests, acknowledgements and replies, the NATS subjects
//! they travel on, and the one filter engine (with its compound language) that every discovery
//! source and every node uses.
//!
//! This crate does no I/O: no sockets, no files. Decoding and validation never read the clock
//! — time is a parameter — and [`time::now`] is the one place anything in the workspace reads
//! it for a wall-clock instant ([`time::UnixTime`]). The crate holds the serde types of every
//! message on the wire (docs/design.md §2), the two envelopes that carry signatures among them:
//! the [`SecureEnvelope`] a request travels in and the [`SignedMessage`] (`muster:signed:1`)
//! that nodes, and callers of collected requests, send. Signing and checking them is
//! `muster-security`'s, as is the credential (`muster:credential:1`), a token of the trust model
//! that lives beside the code that issues and checks it. Everything that decodes network input
//! here returns an error instead of panicking. Decoders bound every number they take (times to
//! the year 9999, counts and sizes to what the message can mean, see [`time`]), and the crate
//! denies arithmetic that can overflow and indexing that can panic, so what decoded can be used
//! without further checks.

// Tests may index and add freely; the library may not.
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

pub mod ddl;
pub mod envelope;
pub mod filter;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod job;
pub mod registration;
pub mod status;
pub mod subject;
pub mod time;

pub use envelope::{Ack, DecodeError, Reply, Request, Response, SecureEnvelope, SignedMessage};
pub use filter::{CompiledFilter, FactFilter, FactOp, Filter, FilterError, NodeView};
pub use status::StatusCode;
