//! Signed messages, both ways.
//!
//! - A caller signs a request: [`sign_request`] puts the inner request's exact JSON text, the
//!   caller's signature over it and the caller's credential in a [`SecureEnvelope`]
//!   (docs/design.md §2). A node checks it with [`Verifier::request`].
//! - A node signs what it sends — acknowledgements, replies, registrations — the same way in a
//!   [`SignedMessage`] with its node credential; a caller signs a collected request's record
//!   the same way, with its caller credential. Clients and registries check these with
//!   [`Verifier::message`], and that the credential's name is the sender's.
//!
//! The wire types themselves, [`SecureEnvelope`] and [`SignedMessage`], are `muster-proto`'s,
//! with every other message; this module adds the signatures and their checks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use muster_proto::{DecodeError, Request, SecureEnvelope, SignedMessage};

use crate::credential::{Credential, CredentialError, Kind};
use crate::keys::{PublicKey, SecretKey};

/// How far a client or registry lets a node's (or caller's) clock differ when checking its
/// credential's validity.
pub const PEER_CLOCK_SKEW_SECS: f64 = 30.0;

/// Why a message is not trusted. [`TrustError::reason`] names it for counters and the audit
/// log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// No signature, where one is required.
    #[error("the message is not signed")]
    Unsigned,
    /// A signature without the credential naming its key.
    #[error("the message is signed but carries no credential")]
    NoCredential,
    /// Not the shape of a signed message.
    #[error("malformed signed message: {0}")]
    Malformed(String),
    /// The signature is not the credential key's over these bytes.
    #[error("the signature of {name:?} does not match the message")]
    BadSignature {
        /// Whose credential it came with.
        name: String,
    },
    /// The credential is not accepted.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The request's caller is not the credential's name.
    #[error("the request says caller {caller:?} but is signed by {signer:?}")]
    CallerMismatch {
        /// The caller the request names.
        caller: String,
        /// The credential's name.
        signer: String,
    },
}

impl TrustError {
    /// A stable name for counters and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            TrustError::Unsigned => "unsigned",
            TrustError::NoCredential => "no_credential",
            TrustError::Malformed(_) => "malformed",
            TrustError::BadSignature { .. } => "bad_signature",
            TrustError::Credential(e) => e.reason(),
            TrustError::CallerMismatch { .. } => "caller_mismatch",
        }
    }
}

/// Wraps `request` signed by `key`, with the caller's `credential`.
pub fn sign_request(request: &Request, key: &SecretKey, credential: &str) -> SecureEnvelope {
    let mut envelope = SecureEnvelope::unsigned(request);
    envelope.signature = Some(key.sign(envelope.request.as_bytes()));
    envelope.credential = Some(credential.to_string());
    envelope
}

/// `message` (JSON text) signed by a node's `key`, with its `credential`, as bytes to send.
pub fn sign_message(message: String, key: &SecretKey, credential: &str) -> Vec<u8> {
    let signature = key.sign(message.as_bytes());
    SignedMessage::new(message, signature, credential.to_string()).to_bytes()
}

/// Decodes a signed message without checking its signature: one that does not parse is
/// [`TrustError::Malformed`], one of another protocol [`TrustError::Unsigned`].
fn decode(bytes: &[u8]) -> Result<SignedMessage, TrustError> {
    SignedMessage::decode(bytes).map_err(|e| match e {
        DecodeError::WrongProtocol { .. } => TrustError::Unsigned,
        DecodeError::Malformed { detail, .. } => TrustError::Malformed(detail),
        invalid @ DecodeError::Invalid { .. } => TrustError::Malformed(invalid.to_string()),
    })
}

/// Checks signatures and credentials against one issuer. Every message carries its sender's
/// credential, the same token each time: the credentials whose issuer signature checked out are
/// remembered (a bounded number), so each message costs one signature check, not two. Expiry
/// and kind are checked every time. Clones share what they remember, and several threads may
/// check messages at once (a read lock on the remembered credentials, a write lock only to add
/// one).
///
/// The last few requests whose signatures checked out are remembered too, by their exact
/// bytes, signature and credential: the same signed request reaching many recipients that
/// share one verifier — the simulator's virtual nodes, each sent its own copy of a node list's
/// request — is verified once. Validity in time is checked every time.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuer: PublicKey,
    skew: f64,
    shared: Arc<Shared>,
}

/// What a [`Verifier`] and its clones remember and count.
#[derive(Debug, Default)]
struct Shared {
    /// Credentials whose issuer signature checked out, by their exact token.
    vouched: RwLock<HashMap<String, Vouched>>,
    /// The last requests whose signatures checked out, oldest first.
    recent: Mutex<VecDeque<Checked>>,
    /// Credentials found signed by the issuer by earlier runs, and since.
    memory: RwLock<Memory>,
    /// ed25519 checks made.
    checks: AtomicUsize,
}

/// What a [`Verifier`] knows of earlier runs: the credentials found signed by the issuer then,
/// as [`Digest`]s, and those it has found since.
#[derive(Debug, Default)]
struct Memory {
    recalled: HashSet<Digest>,
    new: Vec<Digest>,
}

/// A credential found signed by an issuer, remembered without the credential itself: the
/// SHA-256 of the issuer's key and the credential's exact token.
pub type Digest = [u8; 32];

/// A request whose signature (by the key of the credential `token`) checked out.
#[derive(Debug)]
struct Checked {
    signature: String,
    token: String,
    bytes: Vec<u8>,
}

/// How many checked requests a [`Verifier`] remembers.
const MAX_RECENT: usize = 16;

/// A credential whose issuer signature checked out, with its key decoded once.
#[derive(Debug, Clone)]
struct Vouched {
    credential: Credential,
    key: PublicKey,
}

/// The most credentials a [`Verifier`] remembers; when full it starts afresh.
const MAX_VOUCHED: usize = 65_536;

// What the locks guard stays whole whatever a thread did while holding one (each change is
// one insert, removal or clear), so a poisoned lock is used as it is.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Verifier {
    /// Trusts credentials signed by `issuer`, allowing clocks to differ by `skew_secs`.
    pub fn new(issuer: PublicKey, skew_secs: f64) -> Self {
        Verifier {
            issuer,
            skew: skew_secs,
            shared: Default::default(),
        }
    }

    /// The digest under which `token`, found signed by this verifier's issuer, is remembered.
    pub fn digest(&self, token: &str) -> Digest {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(self.issuer.to_base64().as_bytes());
        hash.update(b"\n");
        hash.update(token.as_bytes());
        hash.finalize().into()
    }

    /// Credentials found signed by this issuer before (by an earlier run, [`Verifier::found`]):
    /// their issuer signature is not checked again; their validity, kind and every message's
    /// own signature still are. Whoever can write where these are kept can vouch for
    /// credentials, as the issuer does: keep them where only the user can.
    pub fn recall(&self, digests: impl IntoIterator<Item = Digest>) {
        write(&self.shared.memory).recalled.extend(digests);
    }

    /// The credentials found signed by the issuer since the last call, not recalled: to be
    /// kept for later runs.
    pub fn found(&self) -> Vec<Digest> {
        std::mem::take(&mut write(&self.shared.memory).new)
    }

    /// How many ed25519 signatures this verifier and its clones have checked: messages' and the
    /// issuer's on credentials.
    pub fn signature_checks(&self) -> usize {
        self.shared.checks.load(Ordering::Relaxed)
    }

    /// Whether `key` signed `bytes` (counted).
    fn verifies(&self, key: &PublicKey, bytes: &[u8], signature: &str) -> bool {
        self.shared.checks.fetch_add(1, Ordering::Relaxed);
        key.verifies(bytes, signature)
    }

    /// Whether the issuer signed the credential `token` (its `json` and `issuer_signature`):
    /// recalled from an earlier run, or checked now and then remembered for the next.
    fn issuer_signed(&self, token: &str, json: &[u8], issuer_signature: &str) -> bool {
        let digest = self.digest(token);
        if read(&self.shared.memory).recalled.contains(&digest) {
            return true;
        }
        if !self.verifies(&self.issuer, json, issuer_signature) {
            return false;
        }
        let mut memory = write(&self.shared.memory);
        if memory.new.len() < MAX_VOUCHED {
            memory.new.push(digest);
        }
        true
    }

    /// Whether exactly this request, signature and credential checked out before.
    fn checked_before(&self, bytes: &[u8], signature: &str, token: &str) -> bool {
        lock(&self.shared.recent)
            .iter()
            .any(|c| c.signature == signature && c.token == token && c.bytes == bytes)
    }

    fn checked(&self, bytes: &[u8], signature: &str, token: &str) {
        let mut recent = lock(&self.shared.recent);
        if recent.len() >= MAX_RECENT {
            recent.pop_front();
        }
        recent.push_back(Checked {
            signature: signature.to_string(),
            token: token.to_string(),
            bytes: bytes.to_vec(),
        });
    }

    /// A credential the issuer's signature was checked on before: keyed by the exact token,
    /// so a hit is the very credential checked.
    fn vouched_for(&self, token: &str) -> Option<Vouched> {
        read(&self.shared.vouched).get(token).cloned()
    }

    fn vouch(&self, token: &str, credential: &Credential, key: &PublicKey) {
        let mut vouched = write(&self.shared.vouched);
        if vouched.len() >= MAX_VOUCHED {
            vouched.clear();
        }
        vouched.insert(
            token.to_string(),
            Vouched {
                credential: credential.clone(),
                key: *key,
            },
        );
    }

    /// Checks a bytes-and-signature pair against a credential token of `kind`.
    fn check(
        &self,
        bytes: &[u8],
        signature: &str,
        token: &str,
        kind: Kind,
        now: f64,
    ) -> Result<Credential, TrustError> {
        // The key the message claims to be signed with comes from the credential: check the
        // signature with it first, then that the issuer vouches for the credential.
        let (claimed, key, issuer_signed) = match self.vouched_for(token) {
            Some(Vouched { credential, key }) => (credential, key, None),
            None => {
                let (claimed, json, issuer_signature) = Credential::decode_unverified(token)?;
                let key = claimed.key()?;
                (claimed, key, Some((json, issuer_signature)))
            }
        };
        if !self.verifies(&key, bytes, signature) {
            return Err(TrustError::BadSignature { name: claimed.name });
        }
        let Some((json, issuer_signature)) = issuer_signed else {
            return Ok(claimed.valid_as(kind, now, self.skew)?);
        };
        if !self.issuer_signed(token, &json, issuer_signature) {
            return Err(CredentialError::UnknownIssuer { name: claimed.name }.into());
        }
        self.vouch(token, &claimed, &key);
        Ok(claimed.valid_as(kind, now, self.skew)?)
    }

    /// Checks a request envelope at `now`: signed by the key of a caller credential the issuer
    /// signed, valid now. Returns the credential; the caller must still check that the
    /// request's `caller` is its name ([`check_caller`]).
    pub fn request(&self, envelope: &SecureEnvelope, now: f64) -> Result<Credential, TrustError> {
        let signature = envelope.signature.as_deref().ok_or(TrustError::Unsigned)?;
        let token = envelope
            .credential
            .as_deref()
            .ok_or(TrustError::NoCredential)?;
        let bytes = envelope.request.as_bytes();
        if self.checked_before(bytes, signature, token)
            && let Some(Vouched { credential, .. }) = self.vouched_for(token)
        {
            return Ok(credential.valid_as(Kind::Caller, now, self.skew)?);
        }
        let credential = self.check(bytes, signature, token, Kind::Caller, now)?;
        self.checked(bytes, signature, token);
        Ok(credential)
    }

    /// Checks a node's signed message at `now`; returns the inner JSON text and the node's
    /// credential. The caller must check the credential's name is the message's sender.
    pub fn message(&self, bytes: &[u8], now: f64) -> Result<(String, Credential), TrustError> {
        self.message_of(Kind::Node, bytes, now)
    }

    /// Checks a message signed by a holder of a credential of `kind` (a caller announcing a
    /// collected request, say).
    pub fn message_of(
        &self,
        kind: Kind,
        bytes: &[u8],
        now: f64,
    ) -> Result<(String, Credential), TrustError> {
        let signed = decode(bytes)?;
        let credential = self.check(
            signed.message.as_bytes(),
            &signed.signature,
            &signed.credential,
            kind,
            now,
        )?;
        Ok((signed.message, credential))
    }
}

/// A message from a peer that may sign it, as far as it can be trusted: with a verifier it
/// must be signed by a credential of `kind` that the issuer vouches for; without one, a signed
/// message is unwrapped unchecked and an unsigned one taken as it is. Returns the inner JSON
/// and the checked signer's name — which the caller compares with the name the message
/// carries (its sender, identity or caller).
pub fn open<'a>(
    verifier: Option<&Verifier>,
    kind: Kind,
    bytes: &'a [u8],
    now: f64,
) -> Result<(std::borrow::Cow<'a, [u8]>, Option<String>), TrustError> {
    match (verifier, SignedMessage::is_signed(bytes)) {
        (Some(verifier), true) => {
            let (inner, credential) = verifier.message_of(kind, bytes, now)?;
            Ok((inner.into_bytes().into(), Some(credential.name)))
        }
        (Some(_), false) => Err(TrustError::Unsigned),
        (None, true) => decode(bytes).map(|s| (s.message.into_bytes().into(), None)),
        (None, false) => Ok((bytes.into(), None)),
    }
}

/// Checks that `request` names the credential's holder as its caller.
pub fn check_caller(request: &Request, credential: &Credential) -> Result<(), TrustError> {
    if request.caller == credential.name {
        Ok(())
    } else {
        Err(TrustError::CallerMismatch {
            caller: request.caller.clone(),
            signer: credential.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_proto::envelope::REQUEST_PROTOCOL;
    use serde_json::json;

    fn request(caller: &str) -> Request {
        Request {
            protocol: REQUEST_PROTOCOL.into(),
            id: "0123456789abcdef0123456789abcdef".into(),
            time: 1000.0,
            ttl: 60,
            ack: true,
            collective: "muster".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            caller: caller.into(),
            sender: "laptop".into(),
            data: json!({}),
            filter: Default::default(),
        }
    }

    struct World {
        issuer: SecretKey,
        alice: SecretKey,
        alice_credential: String,
        node: SecretKey,
        node_credential: String,
    }

    fn world() -> World {
        let issuer = SecretKey::generate();
        let alice = SecretKey::generate();
        let node = SecretKey::generate();
        let alice_credential =
            Credential::new(Kind::Caller, "alice", &alice.public(), 900, 3600, None)
                .unwrap()
                .issue(&issuer);
        let node_credential = Credential::new(Kind::Node, "web1", &node.public(), 900, 3600, None)
            .unwrap()
            .issue(&issuer);
        World {
            issuer,
            alice,
            alice_credential,
            node,
            node_credential,
        }
    }

    #[test]
    fn requests_are_trusted_only_when_everything_checks_out() {
        let w = world();
        let v = Verifier::new(w.issuer.public(), 5.0);
        let r = request("alice");
        let good = sign_request(&r, &w.alice, &w.alice_credential);
        let credential = v.request(&good, 1000.0).unwrap();
        assert_eq!(credential.name, "alice");
        assert_eq!(check_caller(&r, &credential), Ok(()));
        let reason = |e: &SecureEnvelope| v.request(e, 1000.0).unwrap_err().reason();

        assert_eq!(reason(&SecureEnvelope::unsigned(&r)), "unsigned");
        let mut no_credential = good.clone();
        no_credential.credential = None;
        assert_eq!(reason(&no_credential), "no_credential");
        let mut tampered = good.clone();
        tampered.request = tampered.request.replace("ping", "pong");
        assert_eq!(reason(&tampered), "bad_signature");
        // Signed by a key the credential is not for.
        let mallory = SecretKey::generate();
        assert_eq!(
            reason(&sign_request(&r, &mallory, &w.alice_credential)),
            "bad_signature"
        );
        // A self-made credential: the issuer never signed it.
        let own = Credential::new(Kind::Caller, "alice", &mallory.public(), 900, 3600, None)
            .unwrap()
            .issue(&mallory);
        assert_eq!(reason(&sign_request(&r, &mallory, &own)), "unknown_issuer");
        // A node's credential cannot send requests.
        assert_eq!(
            reason(&sign_request(&r, &w.node, &w.node_credential)),
            "wrong_credential_kind"
        );
        assert_eq!(
            v.request(&good, 10_000.0).unwrap_err().reason(),
            "credential_expired"
        );
        // Signed by alice, claiming to be root.
        let root = request("root");
        let claimed = sign_request(&root, &w.alice, &w.alice_credential);
        let credential = v.request(&claimed, 1000.0).unwrap();
        assert_eq!(
            check_caller(&root, &credential).unwrap_err().reason(),
            "caller_mismatch"
        );
    }

    #[test]
    fn the_same_request_again_is_not_verified_again_but_its_validity_is() {
        let w = world();
        let v = Verifier::new(w.issuer.public(), 5.0);
        let signed = sign_request(&request("alice"), &w.alice, &w.alice_credential);
        assert_eq!(v.request(&signed, 1000.0).unwrap().name, "alice");
        assert_eq!(
            v.signature_checks(),
            2,
            "the request's and the credential's"
        );
        // The same copy again, as a node list's messages reach the simulator's nodes: checked
        // before, by a clone too.
        assert_eq!(v.clone().request(&signed, 1000.0).unwrap().name, "alice");
        assert_eq!(v.signature_checks(), 2);
        assert_eq!(
            v.request(&signed, 1e9).unwrap_err().reason(),
            "credential_expired"
        );
        // The same bytes under another request's signature are checked, and refused.
        let other = sign_request(&request("alicia"), &w.alice, &w.alice_credential);
        let mut forged = signed.clone();
        forged.signature = other.signature;
        assert_eq!(
            v.request(&forged, 1000.0).unwrap_err().reason(),
            "bad_signature"
        );
        assert_eq!(v.signature_checks(), 3);
        // Many other requests later, it is checked again.
        for n in 0..MAX_RECENT {
            let r = sign_request(&request(&format!("al{n}")), &w.alice, &w.alice_credential);
            v.request(&r, 1000.0).unwrap();
        }
        let before = v.signature_checks();
        v.request(&signed, 1000.0).unwrap();
        assert_eq!(v.signature_checks(), before + 1);
    }

    #[test]
    fn credentials_found_before_skip_only_the_issuer_check() {
        let w = world();
        let first = Verifier::new(w.issuer.public(), 5.0);
        let inner = r#"{"protocol":"muster:ack:1","request_id":"x","sender":"web1"}"#;
        let signed = sign_message(inner.to_string(), &w.node, &w.node_credential);
        first.message(&signed, 1000.0).unwrap();
        let found = first.found();
        assert_eq!(found, vec![first.digest(&w.node_credential)]);
        assert!(first.found().is_empty(), "each is handed over once");

        // A later run recalls it: one check per message, none for the credential.
        let later = Verifier::new(w.issuer.public(), 5.0);
        later.recall(found.clone());
        assert_eq!(later.message(&signed, 1000.0).unwrap().1.name, "web1");
        assert_eq!(later.signature_checks(), 1);
        assert!(later.found().is_empty(), "recalled, not new");
        // Validity and the message's own signature are still checked.
        assert_eq!(
            later.message(&signed, 1e9).unwrap_err().reason(),
            "credential_expired"
        );
        let forged = String::from_utf8(signed.clone())
            .unwrap()
            .replace("web1\\\"}", "web2\\\"}");
        assert_eq!(
            later
                .message(forged.as_bytes(), 1000.0)
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
        // What one issuer found means nothing under another.
        let other = Verifier::new(SecretKey::generate().public(), 5.0);
        other.recall(found);
        assert_eq!(
            other.message(&signed, 1000.0).unwrap_err().reason(),
            "unknown_issuer"
        );
    }

    #[test]
    fn open_checks_what_it_can_and_unwraps_the_rest() {
        let w = world();
        let v = Verifier::new(w.issuer.public(), 5.0);
        let inner = r#"{"protocol":"muster:ack:1","request_id":"x","sender":"web1"}"#;
        let signed = sign_message(inner.to_string(), &w.node, &w.node_credential);
        let reason = |r: Result<_, TrustError>| r.map(|_| ()).unwrap_err().reason();
        let (got, signer) = open(Some(&v), Kind::Node, &signed, 1000.0).unwrap();
        assert_eq!((&*got, signer.as_deref()), (inner.as_bytes(), Some("web1")));
        assert_eq!(
            reason(open(Some(&v), Kind::Caller, &signed, 1000.0)),
            "wrong_credential_kind"
        );
        assert_eq!(
            reason(open(Some(&v), Kind::Node, inner.as_bytes(), 1000.0)),
            "unsigned"
        );
        let (got, signer) = open(None, Kind::Node, &signed, 1000.0).unwrap();
        assert_eq!(
            (&*got, signer),
            (inner.as_bytes(), None),
            "unwrapped, not checked"
        );
        let (got, signer) = open(None, Kind::Node, inner.as_bytes(), 1000.0).unwrap();
        assert_eq!((&*got, signer), (inner.as_bytes(), None));
        let broken = br#"{"protocol":"muster:signed:1"}"#;
        assert_eq!(reason(open(None, Kind::Node, broken, 1000.0)), "malformed");
    }

    #[test]
    fn node_messages_are_signed_and_checked() {
        let w = world();
        let v = Verifier::new(w.issuer.public(), 5.0);
        let inner = r#"{"protocol":"muster:ack:1","request_id":"x","sender":"web1"}"#.to_string();
        let bytes = sign_message(inner.clone(), &w.node, &w.node_credential);
        assert!(SignedMessage::is_signed(&bytes));
        assert!(!SignedMessage::is_signed(inner.as_bytes()));
        let (message, credential) = v.message(&bytes, 1000.0).unwrap();
        assert_eq!(
            (message.as_str(), credential.name.as_str()),
            (inner.as_str(), "web1")
        );

        let forged = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("web1\\\"}", "web2\\\"}");
        assert_eq!(
            v.message(forged.as_bytes(), 1000.0).unwrap_err().reason(),
            "bad_signature"
        );
        let by_caller = sign_message(inner.clone(), &w.alice, &w.alice_credential);
        assert_eq!(
            v.message(&by_caller, 1000.0).unwrap_err().reason(),
            "wrong_credential_kind"
        );
        assert_eq!(
            v.message(inner.as_bytes(), 1000.0).unwrap_err().reason(),
            "malformed"
        );
        assert_eq!(
            v.message(b"\xff", 1000.0).unwrap_err().reason(),
            "malformed"
        );
        // web1's credential is remembered now; kind and validity are still checked each time.
        let request = sign_request(&request("web1"), &w.node, &w.node_credential);
        assert_eq!(
            v.request(&request, 1000.0).unwrap_err().reason(),
            "wrong_credential_kind"
        );
        assert_eq!(
            v.message(&bytes, 1e9).unwrap_err().reason(),
            "credential_expired"
        );
        assert!(v.message(&bytes, 1000.0).is_ok());
    }
}
