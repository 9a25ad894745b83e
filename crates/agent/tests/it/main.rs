//! Integration tests of `muster-agent`: `command::run` and every built-in agent, called through
//! `dispatch` against real processes (stand-in tools written into temporary directories), and
//! external agents loaded from a directory. One binary, so the crate links its tests once.
//!
//! - `command`: running programs in their own process group, killed whole at the timeout;
//! - `cm`, `file`, `health`, `package`, `rpcutil`, `service`, `shell`: one module per built-in
//!   agent;
//! - `choria`: Choria's real agent DDLs, loaded and served through stand-ins;
//! - `external`: loading external agents, their request/reply protocol and their failures;
//! - `support`: the helpers they share.

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod choria;
mod cm;
mod command;
mod external;
mod file;
mod health;
mod package;
mod rpcutil;
mod service;
mod shell;
