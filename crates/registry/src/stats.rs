//! The registry's counters: [`Counters`], the atomics the running service updates, and
//! [`Stats`], the snapshot of them handed to callers.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the registry's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Registration messages received.
    pub received: u64,
    /// Registrations stored.
    pub stored: u64,
    /// Registration messages dropped because they did not decode.
    pub invalid: u64,
    /// Registration messages dropped because the writer was too far behind.
    pub overloaded: u64,
    /// Queries answered (including those answered with an error).
    pub queries: u64,
    /// Query messages that did not decode, had no reply subject, or had a bad filter.
    pub bad_queries: u64,
    /// Records deleted by pruning.
    pub pruned: u64,
    /// Collected requests announced and stored.
    pub jobs: u64,
    /// Acknowledgements, replies and no-responders statuses stored for collected requests.
    pub events: u64,
    /// Messages on a reply subject or the announce subject that were not valid.
    pub bad_events: u64,
}

/// The counters a running registry updates, one per field of [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) overloaded: AtomicU64,
    pub(crate) queries: AtomicU64,
    pub(crate) bad_queries: AtomicU64,
    pub(crate) pruned: AtomicU64,
    pub(crate) jobs: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) bad_events: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Their values now.
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            received: get(&self.received),
            stored: get(&self.stored),
            invalid: get(&self.invalid),
            overloaded: get(&self.overloaded),
            queries: get(&self.queries),
            bad_queries: get(&self.bad_queries),
            pruned: get(&self.pruned),
            jobs: get(&self.jobs),
            events: get(&self.events),
            bad_events: get(&self.bad_events),
        }
    }
}
