//! The daemon's counters: requests served, drops by reason, uptime. `rpcutil daemon_stats`
//! reports them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use muster_agent::StatsSource;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Why a message was dropped without a reply. The names are stable: operators graph them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// Larger than `max_request_bytes`.
    TooLarge,
    /// Not JSON, or not the shape of an envelope or request.
    Malformed,
    /// The `protocol` field names something else.
    WrongProtocol,
    /// A field's value is not allowed (request id, agent name, data…).
    InvalidField,
    /// Unsigned, and the node requires signatures.
    Unsigned,
    /// Signed, but this node cannot verify signatures yet.
    Unverifiable,
    /// For another collective.
    WrongCollective,
    /// `time` outside ±(ttl + skew).
    Expired,
    /// No reply subject: nobody to answer.
    NoReplySubject,
    /// The filter could not be compiled.
    BadFilter,
}

impl DropReason {
    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TooLarge => "too_large",
            DropReason::Malformed => "malformed",
            DropReason::WrongProtocol => "wrong_protocol",
            DropReason::InvalidField => "invalid_field",
            DropReason::Unsigned => "unsigned",
            DropReason::Unverifiable => "unverifiable",
            DropReason::WrongCollective => "wrong_collective",
            DropReason::Expired => "expired",
            DropReason::NoReplySubject => "no_reply_subject",
            DropReason::BadFilter => "bad_filter",
        }
    }
}

/// The counters. Cheap to update from the receive loop.
#[derive(Debug)]
pub struct Stats {
    identity: String,
    started: SystemTime,
    started_at: Instant,
    received: AtomicU64,
    filtered: AtomicU64,
    served: AtomicU64,
    drops: Mutex<BTreeMap<DropReason, u64>>,
    slots: std::sync::Arc<Semaphore>,
    max_concurrent: usize,
}

impl Stats {
    /// Counters for `identity`; `slots` is the semaphore that bounds running actions.
    pub fn new(identity: String, slots: std::sync::Arc<Semaphore>, max_concurrent: usize) -> Self {
        Stats {
            identity,
            started: SystemTime::now(),
            started_at: Instant::now(),
            received: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            served: AtomicU64::new(0),
            drops: Mutex::new(BTreeMap::new()),
            slots,
            max_concurrent,
        }
    }

    /// A message arrived on a subscribed subject.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was not for this node.
    pub fn filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply was sent.
    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// A message was dropped.
    pub fn dropped(&self, reason: DropReason) {
        if let Ok(mut drops) = self.drops.lock() {
            *drops.entry(reason).or_default() += 1;
        }
    }
}

impl StatsSource for Stats {
    fn stats(&self) -> Value {
        let drops: serde_json::Map<String, Value> = self
            .drops
            .lock()
            .map(|d| {
                d.iter()
                    .map(|(r, n)| (r.name().to_string(), json!(n)))
                    .collect()
            })
            .unwrap_or_default();
        let total: u64 = drops.values().filter_map(Value::as_u64).sum();
        json!({
            "identity": self.identity,
            "version": env!("CARGO_PKG_VERSION"),
            "started": humantime::format_rfc3339_seconds(self.started).to_string(),
            "uptime_seconds": self.started_at.elapsed().as_secs(),
            "requests_received": self.received.load(Ordering::Relaxed),
            "requests_served": self.served.load(Ordering::Relaxed),
            "requests_filtered": self.filtered.load(Ordering::Relaxed),
            "drops_total": total,
            "drops": drops,
            "in_flight": self.max_concurrent.saturating_sub(self.slots.available_permits()),
            "max_concurrent": self.max_concurrent,
        })
    }
}
