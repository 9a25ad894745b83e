//! Deciding whether a message is a request this node should run, in docs/design.md §7's order:
//! size, envelope, signature and credential (in signed mode), request fields, caller,
//! collective, time window, reply subject, filter. Pure: the caller gives the time, counts the
//! drops and keeps the replay cache. The daemon and the fleet simulator share it.

use std::time::Duration;

use muster_proto::envelope::{Reply, Request, SecureEnvelope};
use muster_proto::{CompiledFilter, DecodeError, StatusCode};
use muster_security::signed::check_caller;
use muster_security::{Credential, Verifier};
use serde_json::json;

use crate::config::{Security, ServerConfig};
use crate::stats::DropReason;

/// The rules a node admits requests by.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Whether unsigned requests are accepted.
    pub security: Security,
    /// The collective served.
    pub collective: String,
    /// Larger messages are dropped unread.
    pub max_request_bytes: usize,
    /// Allowed clock difference, added to each request's ttl.
    pub clock_skew: Duration,
    /// Checks signatures and credentials (signed mode).
    pub verifier: Option<Verifier>,
}

impl Admission {
    /// The rules of a daemon's configuration.
    pub fn from_config(config: &ServerConfig) -> Self {
        Admission {
            security: config.security,
            collective: config.collective.clone(),
            max_request_bytes: config.max_request_bytes,
            clock_skew: config.clock_skew,
            verifier: None,
        }
    }
}

/// A request that passed every check but the filter, with its filter compiled.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The request.
    pub request: Request,
    /// Its filter, ready to match nodes.
    pub filter: CompiledFilter,
    /// The caller's credential (signed mode).
    pub credential: Option<Credential>,
}

/// A dropped message: why, a detail for the log, and the request as far as it could be read
/// (unverified: for the audit log).
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    /// Why.
    pub reason: DropReason,
    /// A detail for the log.
    pub detail: String,
    /// The request it claimed to be, when it decoded.
    pub claimed: Option<Box<Request>>,
}

fn dropped(reason: DropReason, detail: impl ToString) -> Dropped {
    Dropped {
        reason,
        detail: detail.to_string(),
        claimed: None,
    }
}

fn decode_reason(e: &DecodeError) -> DropReason {
    match e {
        DecodeError::Malformed { .. } => DropReason::Malformed,
        DecodeError::WrongProtocol { .. } => DropReason::WrongProtocol,
        DecodeError::Invalid { .. } => DropReason::InvalidField,
    }
}

impl Admission {
    /// Checks a message's payload at time `now` (Unix seconds). `has_reply` says whether it
    /// came with a reply subject.
    pub fn check(&self, payload: &[u8], has_reply: bool, now: f64) -> Result<Admitted, Dropped> {
        if payload.len() > self.max_request_bytes {
            return Err(dropped(DropReason::TooLarge, payload.len()));
        }
        let envelope =
            SecureEnvelope::decode(payload).map_err(|e| dropped(decode_reason(&e), &e))?;
        // What the request claims to be, for the audit log of a drop: read, never trusted.
        let claim = |mut d: Dropped| {
            d.claimed = Request::decode(&envelope.request).ok().map(Box::new);
            d
        };
        let credential = match (self.security, &self.verifier) {
            (Security::Insecure, _) => None,
            (Security::Signed, Some(verifier)) => Some(
                verifier
                    .request(&envelope, now)
                    .map_err(|e| claim(dropped(DropReason::untrusted(&e), &e)))?,
            ),
            (Security::Signed, None) => {
                return Err(claim(dropped(
                    DropReason::Unsigned,
                    "no issuer key to check signatures with",
                )));
            }
        };
        let request =
            Request::decode(&envelope.request).map_err(|e| dropped(decode_reason(&e), &e))?;
        let known = |d: Dropped| Dropped {
            claimed: Some(Box::new(request.clone())),
            ..d
        };
        if let Some(credential) = &credential {
            check_caller(&request, credential)
                .map_err(|e| known(dropped(DropReason::untrusted(&e), &e)))?;
        }
        if request.collective != self.collective {
            return Err(known(dropped(
                DropReason::WrongCollective,
                &request.collective,
            )));
        }
        if !request.is_current(now, self.clock_skew.as_secs_f64()) {
            return Err(known(dropped(
                DropReason::Expired,
                format!(
                    "request time {} is outside ±{} s of now",
                    request.time, request.ttl
                ),
            )));
        }
        if !has_reply {
            return Err(known(dropped(DropReason::NoReplySubject, &request.id)));
        }
        let filter = request
            .filter
            .compile()
            .map_err(|e| known(dropped(DropReason::BadFilter, &e)))?;
        Ok(Admitted {
            request,
            filter,
            credential,
        })
    }
}

/// How many bytes a signature and a credential add around a signed message, at most.
pub const SIGNING_ROOM: usize = muster_security::credential::MAX_CREDENTIAL_BYTES + 1024;

/// Encodes a reply, replacing it with an error reply when it is larger than `max_payload`
/// (0 means no limit).
pub fn encode_reply(reply: &Reply, max_payload: usize, now: f64) -> Vec<u8> {
    let bytes = serde_json::to_vec(reply).unwrap_or_default();
    if max_payload == 0 || bytes.len() <= max_payload {
        return bytes;
    }
    let too_big = Reply::new(
        &reply.request_id,
        &reply.sender,
        now,
        StatusCode::UnknownError,
        format!(
            "the reply was {} bytes, more than the broker's max_payload of {max_payload}",
            bytes.len()
        ),
        json!({}),
    );
    serde_json::to_vec(&too_big).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_proto::Filter;
    use muster_proto::envelope::REQUEST_PROTOCOL;

    fn admission() -> Admission {
        Admission {
            security: Security::Insecure,
            collective: "muster".into(),
            max_request_bytes: 10_000,
            clock_skew: Duration::from_secs(5),
            verifier: None,
        }
    }

    fn request(now: f64) -> Request {
        Request {
            protocol: REQUEST_PROTOCOL.into(),
            id: "0123456789abcdef0123456789abcdef".into(),
            time: now,
            ttl: 60,
            ack: false,
            collective: "muster".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            caller: "t".into(),
            sender: "t".into(),
            data: json!({}),
            filter: Filter::default(),
        }
    }

    fn bytes(r: &Request) -> Vec<u8> {
        SecureEnvelope::unsigned(r).to_bytes()
    }

    #[test]
    fn each_check_drops_with_its_reason() {
        let now = 1_000_000.0;
        let a = admission();
        let ok = request(now);
        assert!(a.check(&bytes(&ok), true, now).is_ok());
        let mut other = request(now);
        other.collective = "other".into();
        let mut old = request(now - 100.0);
        old.ttl = 10;
        let mut bad_filter = request(now);
        bad_filter.filter.compound = Some("(".into());
        let signed_only = Admission {
            security: Security::Signed,
            ..admission()
        };
        let cases: Vec<(&Admission, Vec<u8>, bool, DropReason)> = vec![
            (&a, vec![b'x'; 10_001], true, DropReason::TooLarge),
            (&a, b"nope".to_vec(), true, DropReason::Malformed),
            (
                &a,
                br#"{"protocol":"x","request":""}"#.to_vec(),
                true,
                DropReason::WrongProtocol,
            ),
            (&a, bytes(&other), true, DropReason::WrongCollective),
            (&a, bytes(&old), true, DropReason::Expired),
            (&a, bytes(&ok), false, DropReason::NoReplySubject),
            (&a, bytes(&bad_filter), true, DropReason::BadFilter),
            (&signed_only, bytes(&ok), true, DropReason::Unsigned),
        ];
        for (admission, payload, reply, reason) in cases {
            let got = admission.check(&payload, reply, now).unwrap_err();
            assert_eq!(got.reason, reason, "{}", got.detail);
        }
    }

    #[test]
    fn oversized_replies_become_errors() {
        let reply = Reply::new(
            "id",
            "n",
            0.0,
            StatusCode::Ok,
            "OK",
            json!({"x": "y".repeat(500)}),
        );
        let small = encode_reply(&reply, 100, 0.0);
        let back: Reply = serde_json::from_slice(&small).unwrap();
        assert_eq!(back.statuscode, StatusCode::UnknownError);
        assert!(back.statusmsg.contains("max_payload of 100"));
        assert_eq!(
            encode_reply(&reply, 0, 0.0).len(),
            serde_json::to_vec(&reply).unwrap().len()
        );
    }
}
