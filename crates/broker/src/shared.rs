//! The state every connection of one broker shares: its configuration, counters and
//! subscription index. `server` creates it and hands it to each `connection`.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::config::BrokerConfig;
use crate::routing::Router;
use crate::stats::Counters;

/// State shared by every connection of one broker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: BrokerConfig,
    pub(crate) counters: Counters,
    pub(crate) router: Router,
    pub(crate) server_id: String,
    next_client_id: AtomicU64,
    /// With `private_inboxes`: which client owns each inbox token (`_INBOX.<token>`).
    pub(crate) inbox_owners: Mutex<HashMap<Bytes, u64>>,
}

impl Shared {
    /// The state of a new broker with `config`, under a fresh random server id.
    pub(crate) fn new(config: BrokerConfig) -> Shared {
        let server_id = format!("NMUSTER{:016X}{:016X}", random_u64(), random_u64());
        Shared {
            config,
            counters: Counters::default(),
            router: Router::default(),
            server_id,
            next_client_id: AtomicU64::new(0),
            inbox_owners: Default::default(),
        }
    }

    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn random_seed(&self) -> u64 {
        random_u64()
    }
}

fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}
