//! Muster's trust model (docs/design.md §7), and the certificates of the connection to the
//! broker:
//!
//! - [`keys`]: ed25519 key pairs in PEM files (PKCS#8 private keys, refused when others can
//!   read them; SPKI public keys), as `openssl pkey` reads them too.
//! - [`credential`]: what an issuer vouches for — a caller's or a node's name, public key,
//!   expiry and optional agent limits — signed by the organisation's issuer key. Nodes and
//!   clients hold only the issuer's public key, so adding an operator touches no node.
//! - [`signed`]: signing and checking requests ([`muster_proto::SecureEnvelope`]) and the
//!   [`muster_proto::SignedMessage`] envelope (`muster:signed:1`, docs/design.md §2) in which
//!   nodes send replies, acknowledgements and registrations and callers send collected requests'
//!   records, each checked against the issuer. Both envelopes are wire types and live in
//!   `muster-proto`; this crate holds only what needs keys.
//! - [`replay`]: the bounded cache of request ids a node has run, entries expiring with their
//!   request's time window.
//! - [`policy`]: MCollective's actionpolicy files, parsed and evaluated.
//! - [`pki`]: X.509 certificates for the broker connection — `muster issuer tls` makes a CA,
//!   broker and client certificates with it, and the certificate and key files a connection
//!   is given are checked when they are loaded, so that one rustls would refuse is named with
//!   the reason.
//!
//! The crate is free of the network: time is a parameter, and the only I/O is reading and
//! writing key and certificate files ([`keys`], [`pki`]) — and, for a policy whose rules call
//! MCollective's `fstat()` data function, the read-only stat of the files named (a bounded
//! read for their MD5 digest) and the clock for their `*_age` outputs. The connection to the
//! broker itself — its settings, connecting, and the clock its timeouts read — is
//! `muster_transport`'s.

pub mod credential;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod keys;
pub mod pki;
pub mod policy;
pub mod replay;
pub mod signed;

pub use credential::{Credential, CredentialError, Kind};
pub use keys::{KeyError, PublicKey, SecretKey};
pub use policy::{Decision, Groups, Policy, PolicyError};
pub use replay::ReplayCache;
pub use signed::{TrustError, Verifier};
