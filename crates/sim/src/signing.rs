//! Signed mode for the simulator: every virtual node holds a key and a credential from one
//! issuer, checks requests as a daemon in `security = "signed"` mode does (docs/design.md §7)
//! and signs its acknowledgements and replies.
//!
//! Per-node memory stays small: a node's key is derived from a fleet seed and its identity
//! (the SHA-256 of seed ‖ identity is the ed25519 secret), so the fleet needs no key files,
//! and each node keeps only its expanded key and its credential token (about 600 bytes).
//! Issuing the credentials costs one signature each at start, spread over every core.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use muster_proto::Request;
use muster_security::credential::{Credential, Kind};
use muster_security::replay::{ReplayCache, ReplayError};
use muster_security::signed::sign_message;
use muster_security::{SecretKey, Verifier};
use sha2::{Digest, Sha256};

/// How long node credentials are valid by default.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(30 * 86400);

/// The issuer a signed fleet's node credentials come from. Nodes check callers against its
/// public key; the secret key signs each node's credential at start.
#[derive(Debug, Clone)]
pub struct SimSigning {
    /// The issuer's key.
    pub issuer: Arc<SecretKey>,
    /// Node keys are derived from this seed and each node's identity.
    pub fleet_seed: [u8; 32],
    /// How long the node credentials are valid.
    pub validity: Duration,
    /// Allowed clock difference, added to each request's ttl, as a daemon's `clock_skew`.
    pub clock_skew: Duration,
}

impl SimSigning {
    /// Signing with `issuer`: a random fleet seed, credentials valid for
    /// [`DEFAULT_VALIDITY`], the daemon's default clock skew.
    pub fn new(issuer: SecretKey) -> SimSigning {
        SimSigning {
            issuer: Arc::new(issuer),
            fleet_seed: rand::random(),
            validity: DEFAULT_VALIDITY,
            clock_skew: muster_server::ServerConfig::default().clock_skew,
        }
    }

    /// Checks callers against this issuer, as a daemon does.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.issuer.public(), self.clock_skew.as_secs_f64())
    }

    /// The key of the node `identity`: SHA-256 of the fleet seed and the identity.
    pub fn node_key(&self, identity: &str) -> SecretKey {
        let mut hash = Sha256::new();
        hash.update(self.fleet_seed);
        hash.update(identity.as_bytes());
        SecretKey::from_seed(hash.finalize().into())
    }

    /// Keys and credentials for every identity, in order, issued at `issued` (Unix seconds),
    /// on every core.
    pub fn issue_all(&self, identities: &[&str], issued: u64) -> Result<Vec<NodeKey>, String> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = identities.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = identities
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|identity| self.issue(identity, issued))
                            .collect::<Result<Vec<_>, String>>()
                    })
                })
                .collect();
            let mut keys = Vec::with_capacity(identities.len());
            for worker in workers {
                let part = worker
                    .join()
                    .map_err(|_| "issuing node credentials failed".to_string())??;
                keys.extend(part);
            }
            Ok(keys)
        })
    }

    /// The key and credential of one node.
    fn issue(&self, identity: &str, issued: u64) -> Result<NodeKey, String> {
        let key = self.node_key(identity);
        let credential = Credential::new(
            Kind::Node,
            identity,
            &key.public(),
            issued,
            self.validity.as_secs(),
            None,
        )?
        .issue(&self.issuer);
        Ok(NodeKey {
            key,
            credential: credential.into_boxed_str(),
        })
    }
}

/// What a virtual node signs with: its key and its credential.
pub struct NodeKey {
    key: SecretKey,
    credential: Box<str>,
}

impl NodeKey {
    /// `message` (JSON) signed, as bytes to send (a `muster:signed:1` envelope).
    pub fn seal(&self, message: Vec<u8>) -> Vec<u8> {
        sign_message(
            String::from_utf8(message).unwrap_or_default(),
            &self.key,
            &self.credential,
        )
    }
}

/// A group's replay cache: the daemon's, shared by the nodes of one connection. A broadcast
/// is checked once for the group under its request id; a message to one node's own subject
/// under the request id and that node, since a client sends the same request to each node of
/// a list separately.
pub(crate) struct GroupReplay {
    cache: Mutex<ReplayCache>,
    skew: f64,
}

impl GroupReplay {
    /// A cache with room for `nodes` daemons' worth of request ids (entries cost memory only
    /// once requests arrive).
    pub(crate) fn new(nodes: usize, skew: Duration) -> GroupReplay {
        let per_node = muster_server::ServerConfig::default().replay_cache;
        GroupReplay {
            cache: Mutex::new(ReplayCache::new(per_node.saturating_mul(nodes.max(1)))),
            skew: skew.as_secs_f64(),
        }
    }

    /// Admits the request (for `node`, when sent to that node's subject) or says why not.
    pub(crate) fn admit(
        &self,
        request: &Request,
        node: Option<&str>,
        now: f64,
    ) -> Result<(), ReplayError> {
        let expires = request.time + request.ttl as f64 + self.skew;
        let key = match node {
            Some(identity) => format!("{}@{identity}", request.id),
            None => request.id.clone(),
        };
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache.admit(&key, expires, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_security::credential::Kind;

    #[test]
    fn node_credentials_are_for_their_identity_and_derived_key() {
        let signing = SimSigning::new(SecretKey::generate());
        let now = muster_proto::time::whole_secs(muster_proto::time::now());
        let keys = signing
            .issue_all(&["sim-1", "sim-2", "sim-3"], now)
            .unwrap();
        assert_eq!(keys.len(), 3);
        for (identity, node) in ["sim-1", "sim-2", "sim-3"].iter().zip(&keys) {
            let credential = Credential::verify(
                &node.credential,
                &signing.issuer.public(),
                Kind::Node,
                now as f64,
                5.0,
            )
            .unwrap();
            assert_eq!(credential.name, *identity);
            assert_eq!(
                credential.key().unwrap(),
                signing.node_key(identity).public()
            );
        }
        assert_ne!(
            signing.node_key("sim-1").public(),
            signing.node_key("sim-2").public()
        );
    }
}
