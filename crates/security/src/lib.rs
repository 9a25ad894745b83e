//! Muster's trust model (DESIGN §7), everything about it that is not I/O on the network:
//!
//! - [`keys`]: ed25519 key pairs in PEM files (PKCS#8 private keys, refused when others can
//!   read them; SPKI public keys), as `openssl pkey` reads them too.
//! - [`credential`]: what an issuer vouches for — a caller's or a node's name, public key,
//!   expiry and optional agent limits — signed by the organisation's issuer key. Nodes and
//!   clients hold only the issuer's public key, so adding an operator touches no node.
//! - [`signed`]: requests signed by callers ([`muster_proto::SecureEnvelope`]) and replies,
//!   acknowledgements and registrations signed by nodes, each checked against the issuer.
//! - [`replay`]: the bounded cache of request ids a node has run, entries expiring with their
//!   request's time window.
//! - [`policy`]: MCollective's actionpolicy files, parsed and evaluated.
//! - [`transport`]: TLS and NATS credentials for the connection to the broker.
//!
//! Time is always a parameter; nothing here reads the clock.

pub mod credential;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod keys;
pub mod policy;
pub mod replay;
pub mod signed;
pub mod transport;

pub use credential::{Credential, CredentialError, Kind};
pub use keys::{KeyError, PublicKey, SecretKey};
pub use policy::{Decision, Groups, Policy, PolicyError};
pub use replay::ReplayCache;
pub use signed::{TrustError, Verifier};
pub use transport::Transport;
