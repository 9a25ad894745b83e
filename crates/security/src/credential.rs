//! Credentials: an issuer's signed statement that a public key belongs to a caller (an
//! operator or a program) or to a node, until when, and for which agents.
//!
//! A credential is one line of text, `BASE64(JSON).BASE64(SIGNATURE)`, where the signature is
//! the issuer's over the exact JSON bytes:
//!
//! ```json
//! {"protocol":"muster:credential:1","kind":"caller","name":"alice",
//!  "public_key":"<base64 of 32 bytes>","issued":1764072000,"expires":1766664000,
//!  "agents":["rpcutil","service"]}
//! ```
//!
//! One fixed algorithm and no header to negotiate it (so none of JWT's algorithm confusion);
//! unknown fields are refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, SecretKey};

/// `protocol` of a credential.
pub const CREDENTIAL_PROTOCOL: &str = "muster:credential:1";

/// Longest credential accepted, in bytes: well above any real one.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// Who a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Sends requests.
    Caller,
    /// Answers them: signs replies, acknowledgements and registrations.
    Node,
}

impl Kind {
    /// `caller` or `node`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Caller => "caller",
            Kind::Node => "node",
        }
    }
}

/// What an issuer vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Always [`CREDENTIAL_PROTOCOL`].
    pub protocol: String,
    /// A caller's or a node's.
    pub kind: Kind,
    /// The caller's name, or the node's identity.
    pub name: String,
    /// The holder's public key, base64 of its 32 bytes.
    pub public_key: String,
    /// When it was issued, Unix seconds.
    pub issued: u64,
    /// When it stops being valid, Unix seconds.
    pub expires: u64,
    /// The only agents a caller may use with it; absent: any (the policy still decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
}

/// Why a credential is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not the shape of a credential.
    #[error("malformed credential: {0}")]
    Malformed(String),
    /// Not signed by the issuer this side trusts.
    #[error("credential of {name:?} is not signed by the trusted issuer")]
    UnknownIssuer {
        /// The name it claims.
        name: String,
    },
    /// Past its expiry.
    #[error("credential of {name:?} expired at {expires} (Unix seconds)")]
    Expired {
        /// Whose.
        name: String,
        /// When.
        expires: u64,
    },
    /// Issued in the future.
    #[error("credential of {name:?} is issued at {issued}, in the future")]
    NotYetValid {
        /// Whose.
        name: String,
        /// When.
        issued: u64,
    },
    /// A node's credential used as a caller's, or the other way round.
    #[error("credential of {name:?} is a {found} credential, not a {wanted} credential")]
    WrongKind {
        /// Whose.
        name: String,
        /// What it is.
        found: &'static str,
        /// What was needed.
        wanted: &'static str,
    },
}

impl CredentialError {
    /// A stable name for counters and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::Malformed(_) => "bad_credential",
            CredentialError::UnknownIssuer { .. } => "unknown_issuer",
            CredentialError::Expired { .. } => "credential_expired",
            CredentialError::NotYetValid { .. } => "credential_not_yet_valid",
            CredentialError::WrongKind { .. } => "wrong_credential_kind",
        }
    }
}

/// Checks a caller name or node identity: 1 to 128 characters, none of them whitespace,
/// control characters, `*`, `>` or `/`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 128 {
        return Err(format!("name {name:?} must be 1 to 128 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>' | '/'))
    {
        return Err(format!("name {name:?} contains {c:?}"));
    }
    Ok(())
}

impl Credential {
    /// A credential for `public_key` as `name`, valid from `issued` for `valid_secs`.
    pub fn new(
        kind: Kind,
        name: &str,
        public_key: &PublicKey,
        issued: u64,
        valid_secs: u64,
        agents: Option<Vec<String>>,
    ) -> Result<Credential, String> {
        check_name(name)?;
        if let Some(agents) = &agents {
            for agent in agents {
                muster_proto::subject::check_token("agent", agent).map_err(|e| e.to_string())?;
            }
        }
        let expires = issued.saturating_add(valid_secs);
        // A credential's times are wire times: nothing past the year 9999 can be written or
        // shown (docs/design.md §2).
        if expires as f64 > muster_proto::time::MAX_UNIX {
            return Err(format!(
                "a credential valid for {valid_secs} seconds would expire after the year 9999; \
                 give a shorter validity"
            ));
        }
        Ok(Credential {
            protocol: CREDENTIAL_PROTOCOL.to_string(),
            kind,
            name: name.to_string(),
            public_key: public_key.to_base64(),
            issued,
            expires,
            agents,
        })
    }

    /// The credential as a token, signed by `issuer`.
    pub fn issue(&self, issuer: &SecretKey) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{}.{}", STANDARD.encode(&json), issuer.sign(&json))
    }

    /// Reads a token without checking who signed it: only to find the key a message claims to
    /// be signed with. Use [`Credential::verify`] before trusting anything in it.
    pub fn decode_unverified(token: &str) -> Result<(Credential, Vec<u8>, &str), CredentialError> {
        if token.len() > MAX_CREDENTIAL_BYTES {
            return Err(CredentialError::Malformed(format!(
                "{} bytes, more than {MAX_CREDENTIAL_BYTES}",
                token.len()
            )));
        }
        let (body, signature) = token.trim().split_once('.').ok_or_else(|| {
            CredentialError::Malformed("no '.' between body and signature".into())
        })?;
        let json = STANDARD
            .decode(body)
            .map_err(|e| CredentialError::Malformed(format!("body: {e}")))?;
        let credential: Credential =
            serde_json::from_slice(&json).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        if credential.protocol != CREDENTIAL_PROTOCOL {
            return Err(CredentialError::Malformed(format!(
                "protocol {:?}, not {CREDENTIAL_PROTOCOL}",
                credential.protocol.chars().take(64).collect::<String>()
            )));
        }
        check_name(&credential.name).map_err(CredentialError::Malformed)?;
        Ok((credential, json, signature))
    }

    /// Checks a token: issued by `issuer`, of `kind`, valid at `now` (Unix seconds) give or
    /// take `skew` seconds.
    pub fn verify(
        token: &str,
        issuer: &PublicKey,
        kind: Kind,
        now: f64,
        skew: f64,
    ) -> Result<Credential, CredentialError> {
        let (credential, json, signature) = Credential::decode_unverified(token)?;
        credential.vouched(&json, signature, issuer, kind, now, skew)
    }

    /// Checks a credential read with [`Credential::decode_unverified`] from `json` and
    /// `signature`, as [`Credential::verify`] does.
    pub(crate) fn vouched(
        self,
        json: &[u8],
        signature: &str,
        issuer: &PublicKey,
        kind: Kind,
        now: f64,
        skew: f64,
    ) -> Result<Credential, CredentialError> {
        if !issuer.verifies(json, signature) {
            return Err(CredentialError::UnknownIssuer { name: self.name });
        }
        self.valid_as(kind, now, skew)
    }

    /// Checks a credential the issuer is known to have signed: of `kind`, valid at `now`
    /// (Unix seconds) give or take `skew` seconds.
    pub(crate) fn valid_as(
        self,
        kind: Kind,
        now: f64,
        skew: f64,
    ) -> Result<Credential, CredentialError> {
        let credential = self;
        if credential.kind != kind {
            return Err(CredentialError::WrongKind {
                name: credential.name,
                found: credential.kind.name(),
                wanted: kind.name(),
            });
        }
        if now - skew > credential.expires as f64 {
            return Err(CredentialError::Expired {
                name: credential.name,
                expires: credential.expires,
            });
        }
        if now + skew < credential.issued as f64 {
            return Err(CredentialError::NotYetValid {
                name: credential.name,
                issued: credential.issued,
            });
        }
        Ok(credential)
    }

    /// The holder's public key.
    pub fn key(&self) -> Result<PublicKey, CredentialError> {
        PublicKey::from_base64(&self.public_key)
            .map_err(|e| CredentialError::Malformed(e.to_string()))
    }

    /// Whether the credential lets its holder use `agent`.
    pub fn allows_agent(&self, agent: &str) -> bool {
        self.agents
            .as_ref()
            .is_none_or(|agents| agents.iter().any(|a| a == agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_verify_and_everything_else_is_refused() {
        let issuer = SecretKey::generate();
        let other = SecretKey::generate();
        let alice = SecretKey::generate();
        let c = Credential::new(Kind::Caller, "alice", &alice.public(), 1000, 100, None).unwrap();
        let token = c.issue(&issuer);
        let ok = Credential::verify(&token, &issuer.public(), Kind::Caller, 1050.0, 0.0).unwrap();
        assert_eq!(ok, c);
        assert_eq!(ok.key().unwrap(), alice.public());
        assert!(ok.allows_agent("anything"));

        let check = |token: &str, kind, now| {
            Credential::verify(token, &issuer.public(), kind, now, 5.0)
                .map(|_| ())
                .map_err(|e| e.reason())
        };
        assert_eq!(
            check(&token, Kind::Caller, 1104.0),
            Ok(()),
            "within the skew"
        );
        assert_eq!(
            check(&token, Kind::Caller, 1106.0),
            Err("credential_expired")
        );
        assert_eq!(
            check(&token, Kind::Caller, 990.0),
            Err("credential_not_yet_valid")
        );
        assert_eq!(
            check(&token, Kind::Node, 1050.0),
            Err("wrong_credential_kind")
        );
        assert_eq!(
            check(&c.issue(&other), Kind::Caller, 1050.0),
            Err("unknown_issuer")
        );
        // A changed body no longer matches the issuer's signature.
        let (body, sig) = token.split_once('.').unwrap();
        let mut forged = c.clone();
        forged.name = "root".into();
        let forged_body = STANDARD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            check(&format!("{forged_body}.{sig}"), Kind::Caller, 1050.0),
            Err("unknown_issuer")
        );
        for garbage in [
            "",
            "x",
            "x.y",
            body,
            &format!("{}.{sig}", STANDARD.encode("{}")),
        ] {
            assert_eq!(
                check(garbage, Kind::Caller, 1050.0),
                Err("bad_credential"),
                "{garbage}"
            );
        }

        let limited = Credential::new(
            Kind::Caller,
            "ci",
            &alice.public(),
            1000,
            100,
            Some(vec!["rpcutil".into()]),
        )
        .unwrap();
        assert!(limited.allows_agent("rpcutil") && !limited.allows_agent("shell"));
        assert!(Credential::new(Kind::Caller, "a b", &alice.public(), 0, 1, None).is_err());
        // Expiring after the year 9999 is refused: no wire time can hold it.
        assert!(Credential::new(Kind::Caller, "a", &alice.public(), 0, 1 << 40, None).is_err());
        assert!(Credential::new(Kind::Caller, "a", &alice.public(), 0, 1 << 32, None).is_ok());
        assert!(
            Credential::new(
                Kind::Caller,
                "a",
                &alice.public(),
                0,
                1,
                Some(vec!["a.b".into()])
            )
            .is_err()
        );
    }
}
