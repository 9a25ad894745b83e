//! The daemon's counters: requests served, drops by reason, uptime. `rpcutil daemon_stats`
//! reports them.
//!
//! As in every crate: [`Counters`] are the live atomic counters the running daemon updates,
//! and [`Stats`] is a plain snapshot of them, the value handed out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use muster_agent::StatsSource;
use muster_proto::time::{self, UnixTime};
use serde::Serialize;
use serde_json::Value;
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
    /// Signed, but without the credential that names the key.
    NoCredential,
    /// The signature is not the credential key's over the request.
    BadSignature,
    /// The credential does not decode.
    BadCredential,
    /// The credential is not signed by the issuer this node trusts.
    UnknownIssuer,
    /// The credential has expired.
    CredentialExpired,
    /// The credential's validity starts in the future.
    CredentialNotYetValid,
    /// A node's credential used to send a request.
    WrongCredentialKind,
    /// The request's caller is not the credential's name.
    CallerMismatch,
    /// The request id was admitted before, within its window.
    Replayed,
    /// The replay cache is full of unexpired ids.
    ReplayCacheFull,
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
    /// Every reason, in the order of their counters.
    pub const ALL: [DropReason; 19] = [
        DropReason::TooLarge,
        DropReason::Malformed,
        DropReason::WrongProtocol,
        DropReason::InvalidField,
        DropReason::Unsigned,
        DropReason::NoCredential,
        DropReason::BadSignature,
        DropReason::BadCredential,
        DropReason::UnknownIssuer,
        DropReason::CredentialExpired,
        DropReason::CredentialNotYetValid,
        DropReason::WrongCredentialKind,
        DropReason::CallerMismatch,
        DropReason::Replayed,
        DropReason::ReplayCacheFull,
        DropReason::WrongCollective,
        DropReason::Expired,
        DropReason::NoReplySubject,
        DropReason::BadFilter,
    ];

    /// The reason for a request that is not trusted.
    pub fn untrusted(e: &muster_security::TrustError) -> DropReason {
        use muster_security::TrustError as T;
        use muster_security::credential::CredentialError as C;
        match e {
            T::Unsigned => DropReason::Unsigned,
            T::NoCredential => DropReason::NoCredential,
            T::Malformed(_) => DropReason::Malformed,
            T::BadSignature { .. } => DropReason::BadSignature,
            T::CallerMismatch { .. } => DropReason::CallerMismatch,
            T::Credential(C::Malformed(_)) => DropReason::BadCredential,
            T::Credential(C::UnknownIssuer { .. }) => DropReason::UnknownIssuer,
            T::Credential(C::Expired { .. }) => DropReason::CredentialExpired,
            T::Credential(C::NotYetValid { .. }) => DropReason::CredentialNotYetValid,
            T::Credential(C::WrongKind { .. }) => DropReason::WrongCredentialKind,
        }
    }

    /// The reason for a request id the replay cache refuses.
    pub fn replay(e: muster_security::replay::ReplayError) -> DropReason {
        match e {
            muster_security::replay::ReplayError::Seen => DropReason::Replayed,
            muster_security::replay::ReplayError::Full => DropReason::ReplayCacheFull,
        }
    }

    /// Whether the message failed the security checks: unsigned, without or with a bad
    /// credential or signature, or a caller that is not the credential's.
    pub fn is_security(self) -> bool {
        matches!(
            self,
            DropReason::Unsigned
                | DropReason::NoCredential
                | DropReason::BadSignature
                | DropReason::BadCredential
                | DropReason::UnknownIssuer
                | DropReason::CredentialExpired
                | DropReason::CredentialNotYetValid
                | DropReason::WrongCredentialKind
                | DropReason::CallerMismatch
        )
    }

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TooLarge => "too_large",
            DropReason::Malformed => "malformed",
            DropReason::WrongProtocol => "wrong_protocol",
            DropReason::InvalidField => "invalid_field",
            DropReason::Unsigned => "unsigned",
            DropReason::NoCredential => "no_credential",
            DropReason::BadSignature => "bad_signature",
            DropReason::BadCredential => "bad_credential",
            DropReason::UnknownIssuer => "unknown_issuer",
            DropReason::CredentialExpired => "credential_expired",
            DropReason::CredentialNotYetValid => "credential_not_yet_valid",
            DropReason::WrongCredentialKind => "wrong_credential_kind",
            DropReason::CallerMismatch => "caller_mismatch",
            DropReason::Replayed => "replayed",
            DropReason::ReplayCacheFull => "replay_cache_full",
            DropReason::WrongCollective => "wrong_collective",
            DropReason::Expired => "expired",
            DropReason::NoReplySubject => "no_reply_subject",
            DropReason::BadFilter => "bad_filter",
        }
    }
}

/// A snapshot of a daemon's [`Counters`], as `rpcutil daemon_stats` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The node's identity.
    pub identity: String,
    /// The daemon's version.
    pub version: &'static str,
    /// When the daemon started, RFC 3339 to the second.
    pub started: String,
    /// Whole seconds since it started.
    pub uptime_seconds: u64,
    /// Messages that arrived on a subscribed subject.
    pub requests_received: u64,
    /// Replies sent.
    pub requests_served: u64,
    /// Requests that were not for this node.
    pub requests_filtered: u64,
    /// Requests answered "busy".
    pub requests_busy: u64,
    /// Requests waiting for an action slot now.
    pub requests_waiting: usize,
    /// Messages dropped, all reasons.
    pub drops_total: u64,
    /// Messages dropped, by the stable name of each reason that occurred.
    pub drops: BTreeMap<&'static str, u64>,
    /// Audit records lost.
    pub audit_lost: u64,
    /// Actions running now.
    pub in_flight: usize,
    /// The most actions that run at once.
    pub max_concurrent: usize,
    /// Choria's `starttime`: when the daemon started, whole Unix seconds.
    pub starttime: u64,
    /// Choria's `total`: `requests_received`.
    pub total: u64,
    /// Choria's `passed`: requests that matched the node's filter.
    pub passed: u64,
    /// Choria's `filtered`: `requests_filtered`.
    pub filtered: u64,
    /// Choria's `replies`: `requests_served`.
    pub replies: u64,
    /// Choria's `ttlexpired`: messages dropped because their time window had passed.
    pub ttlexpired: u64,
    /// Choria's `unvalidated`: messages dropped by the security checks
    /// ([`DropReason::is_security`]).
    pub unvalidated: u64,
}

/// The daemon's live counters. Cheap to update from the receive loop: each is an atomic, drops
/// one per reason, so counting a flood's drops takes no lock.
#[derive(Debug)]
pub struct Counters {
    identity: String,
    started: UnixTime,
    started_at: Instant,
    received: AtomicU64,
    passed: AtomicU64,
    filtered: AtomicU64,
    served: AtomicU64,
    busy: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    audit_lost: Option<Arc<AtomicU64>>,
    /// Room for requests waiting for a slot, and its size.
    waiting: Option<(Arc<Semaphore>, usize)>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
}

impl Counters {
    /// Counters for `identity`; `slots` is the semaphore that bounds running actions.
    pub fn new(identity: String, slots: Arc<Semaphore>, max_concurrent: usize) -> Self {
        Counters {
            identity,
            started: time::now(),
            started_at: Instant::now(),
            received: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            served: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            audit_lost: None,
            waiting: None,
            slots,
            max_concurrent,
        }
    }

    /// Also reports this count of audit records lost (see [`crate::audit::AuditLog::lost`]).
    pub fn with_audit_lost(mut self, lost: Arc<AtomicU64>) -> Self {
        self.audit_lost = Some(lost);
        self
    }

    /// Also reports how many requests wait for a slot: the room in `waiting`, `capacity` in all.
    pub fn with_waiting(mut self, waiting: Arc<Semaphore>, capacity: usize) -> Self {
        self.waiting = Some((waiting, capacity));
        self
    }

    /// A message arrived on a subscribed subject.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A request matched this node's filter.
    pub fn passed(&self) {
        self.passed.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was not for this node.
    pub fn filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply was sent.
    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered "busy": no action slot came free within its ttl.
    pub fn busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// A message was dropped.
    pub fn dropped(&self, reason: DropReason) {
        if let Some(n) = self.drops.get(reason as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many actions are running.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent
            .saturating_sub(self.slots.available_permits())
    }

    /// A snapshot of the counters now.
    pub fn snapshot(&self) -> Stats {
        let counts: Vec<(DropReason, u64)> = DropReason::ALL
            .iter()
            .zip(&self.drops)
            .map(|(reason, n)| (*reason, n.load(Ordering::Relaxed)))
            .collect();
        let drops: BTreeMap<&'static str, u64> = counts
            .iter()
            .filter(|&&(_, n)| n > 0)
            .map(|&(reason, n)| (reason.name(), n))
            .collect();
        let count_of = |wanted: fn(DropReason) -> bool| -> u64 {
            counts
                .iter()
                .filter(|(reason, _)| wanted(*reason))
                .map(|(_, n)| n)
                .sum()
        };
        let received = self.received.load(Ordering::Relaxed);
        let served = self.served.load(Ordering::Relaxed);
        let filtered = self.filtered.load(Ordering::Relaxed);
        Stats {
            identity: self.identity.clone(),
            version: env!("CARGO_PKG_VERSION"),
            started: time::rfc3339(self.started),
            uptime_seconds: self.started_at.elapsed().as_secs(),
            requests_received: received,
            requests_served: served,
            requests_filtered: filtered,
            requests_busy: self.busy.load(Ordering::Relaxed),
            requests_waiting: self.waiting.as_ref().map_or(0, |(room, capacity)| {
                capacity.saturating_sub(room.available_permits())
            }),
            drops_total: drops.values().sum(),
            drops,
            audit_lost: self
                .audit_lost
                .as_ref()
                .map_or(0, |n| n.load(Ordering::Relaxed)),
            in_flight: self.in_flight(),
            max_concurrent: self.max_concurrent,
            starttime: time::whole_secs(self.started),
            total: received,
            passed: self.passed.load(Ordering::Relaxed),
            filtered,
            replies: served,
            ttlexpired: count_of(|r| r == DropReason::Expired),
            unvalidated: count_of(DropReason::is_security),
        }
    }
}

impl StatsSource for Counters {
    fn stats(&self) -> Value {
        // A struct of strings and numbers always serialises.
        serde_json::to_value(self.snapshot()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_are_counted_by_reason_under_their_stable_names() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason:?} is out of place in ALL");
        }
        let lost = Arc::new(AtomicU64::new(3));
        let room = Arc::new(Semaphore::new(8));
        let counters = Counters::new("web1".into(), Arc::new(Semaphore::new(4)), 4)
            .with_audit_lost(lost.clone())
            .with_waiting(room.clone(), 8);
        let _waiting = room.try_acquire_many(2).unwrap();
        counters.dropped(DropReason::BadSignature);
        counters.dropped(DropReason::BadSignature);
        counters.dropped(DropReason::BadFilter);
        counters.dropped(DropReason::Expired);
        counters.busy();
        for _ in 0..5 {
            counters.received();
        }
        counters.passed();
        counters.filtered();
        counters.served();
        let got = counters.stats();
        assert_eq!(
            got["drops"],
            json!({"bad_signature": 2, "bad_filter": 1, "expired": 1})
        );
        assert_eq!(got["drops_total"], 4);
        // Choria's names beside Muster's.
        assert_eq!(got["total"], 5);
        assert_eq!(got["requests_received"], 5);
        assert_eq!(got["passed"], 1);
        assert_eq!(got["filtered"], 1);
        assert_eq!(got["replies"], 1);
        assert_eq!(got["ttlexpired"], 1);
        assert_eq!(got["unvalidated"], 2);
        assert!(got["starttime"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(got["requests_busy"], 1);
        assert_eq!(got["requests_waiting"], 2);
        assert_eq!(got["audit_lost"], 3);
        assert_eq!(got["in_flight"], 0);
        // The snapshot's fields are daemon_stats' keys: Muster's as they always were, and
        // Choria's.
        let keys: Vec<&str> = got
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "audit_lost",
                "drops",
                "drops_total",
                "filtered",
                "identity",
                "in_flight",
                "max_concurrent",
                "passed",
                "replies",
                "requests_busy",
                "requests_filtered",
                "requests_received",
                "requests_served",
                "requests_waiting",
                "started",
                "starttime",
                "total",
                "ttlexpired",
                "unvalidated",
                "uptime_seconds",
                "version",
            ]
        );
        assert_eq!(got["identity"], "web1");
        assert!(got["started"].as_str().unwrap().ends_with('Z'));
    }
}
