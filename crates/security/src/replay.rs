//! The replay cache: the ids of requests a node has admitted, each kept until its request
//! falls out of the time window (after which the window check refuses it anyway). Bounded:
//! when full of unexpired ids it refuses new requests rather than forget one — only holders of
//! a valid credential get this far, and failing closed keeps replays impossible.

use std::collections::{BTreeSet, HashMap};

/// Why a request id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Already admitted within its window.
    #[error("request id already seen")]
    Seen,
    /// The cache holds `capacity` unexpired ids.
    #[error("the replay cache is full")]
    Full,
}

impl ReplayError {
    /// A stable name for counters and the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            ReplayError::Seen => "replayed",
            ReplayError::Full => "replay_cache_full",
        }
    }
}

/// Request ids with when each may be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    expiry_of: HashMap<String, u64>,
    by_expiry: BTreeSet<(u64, String)>,
}

fn millis(unix: f64) -> u64 {
    (unix.max(0.0) * 1000.0) as u64
}

impl ReplayCache {
    /// A cache holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity: capacity.max(1),
            expiry_of: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.expiry_of.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.expiry_of.is_empty()
    }

    /// Admits `id` at `now` (Unix seconds), to be remembered until `expires` — or refuses it.
    pub fn admit(&mut self, id: &str, expires: f64, now: f64) -> Result<(), ReplayError> {
        let now = millis(now);
        while let Some((at, _)) = self.by_expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_first() {
                self.expiry_of.remove(&old);
            }
        }
        if self.expiry_of.contains_key(id) {
            return Err(ReplayError::Seen);
        }
        if self.expiry_of.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        let expires = millis(expires);
        self.expiry_of.insert(id.to_string(), expires);
        self.by_expiry.insert((expires, id.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_runs_once_within_its_window_and_the_cache_stays_bounded() {
        let mut cache = ReplayCache::new(3);
        assert_eq!(cache.admit("a", 100.0, 10.0), Ok(()));
        assert_eq!(cache.admit("a", 100.0, 20.0), Err(ReplayError::Seen));
        assert_eq!(cache.admit("b", 50.0, 20.0), Ok(()));
        assert_eq!(cache.admit("c", 60.0, 20.0), Ok(()));
        assert_eq!(cache.admit("d", 60.0, 20.0), Err(ReplayError::Full));
        // b's window has passed: it is forgotten, which frees room.
        assert_eq!(cache.admit("d", 70.0, 55.0), Ok(()));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.admit("a", 100.0, 99.0), Err(ReplayError::Seen));
        assert_eq!(cache.admit("x", 200.0, 150.0), Ok(()));
        assert_eq!(cache.len(), 1, "everything else expired");
    }
}
