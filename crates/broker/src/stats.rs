//! Counters kept by a running broker, and the [`Stats`] snapshot handed to callers.
//!
//! Hot paths count into per-connection locals and add them here once per socket read, so
//! the fan-out does not contend on these atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a broker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Client connections open now.
    pub connections: u64,
    /// Client connections accepted since the broker was created.
    pub total_connections: u64,
    /// Subscriptions registered now.
    pub subscriptions: u64,
    /// Messages received from clients.
    pub msgs_in: u64,
    /// Messages delivered to clients (one per subscriber copy).
    pub msgs_out: u64,
    /// Message bytes (headers + payload) received from clients.
    pub bytes_in: u64,
    /// Message bytes (headers + payload) delivered to clients.
    pub bytes_out: u64,
    /// Connections dropped because they did not read fast enough.
    pub slow_consumers: u64,
    /// Connections refused for bad or missing credentials.
    pub auth_failures: u64,
    /// Connections closed for a protocol error.
    pub protocol_errors: u64,
    /// Connections closed because they stopped answering PINGs.
    pub stale_connections: u64,
    /// Subscriptions refused: another client's inbox (`private_inboxes`).
    pub permission_violations: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) total_connections: AtomicU64,
    pub(crate) subscriptions: AtomicU64,
    pub(crate) msgs_in: AtomicU64,
    pub(crate) msgs_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) stale_connections: AtomicU64,
    pub(crate) permission_violations: AtomicU64,
}

/// Message counts gathered by one connection between two flushes into [`Counters`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) msgs_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) msgs_out: u64,
    pub(crate) bytes_out: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            connections: get(&self.connections),
            total_connections: get(&self.total_connections),
            subscriptions: get(&self.subscriptions),
            msgs_in: get(&self.msgs_in),
            msgs_out: get(&self.msgs_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            slow_consumers: get(&self.slow_consumers),
            auth_failures: get(&self.auth_failures),
            protocol_errors: get(&self.protocol_errors),
            stale_connections: get(&self.stale_connections),
            permission_violations: get(&self.permission_violations),
        }
    }

    pub(crate) fn add(&self, tally: &mut Tally) {
        let add = |c: &AtomicU64, n: &mut u64| {
            if *n > 0 {
                c.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        };
        add(&self.msgs_in, &mut tally.msgs_in);
        add(&self.bytes_in, &mut tally.bytes_in);
        add(&self.msgs_out, &mut tally.msgs_out);
        add(&self.bytes_out, &mut tally.bytes_out);
    }

    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn decr(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}
