//! The messages of the wire protocol (docs/design.md §2): the secure envelope a request travels
//! in, the inner request, the acknowledgement, the reply, and the signed envelope
//! ([`SignedMessage`]) a node sends its acknowledgements, replies and registrations in.
//! Signing and checking signatures is `muster-security`'s; this module only gives the shapes.
//!
//! Every `decode` takes untrusted bytes and returns a [`DecodeError`] whose
//! [`reason`](DecodeError::reason) is a short, stable name the daemon counts drops by.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::filter::Filter;
use crate::status::StatusCode;
use crate::subject;
use crate::time::UnixTime;

/// `protocol` of the outer envelope.
pub const SECURE_PROTOCOL: &str = "muster:secure:1";
/// `protocol` of the inner request.
pub const REQUEST_PROTOCOL: &str = "muster:request:1";
/// `protocol` of an acknowledgement.
pub const ACK_PROTOCOL: &str = "muster:ack:1";
/// `protocol` of a reply.
pub const REPLY_PROTOCOL: &str = "muster:reply:1";
/// `protocol` of a message signed by its sender ([`SignedMessage`]).
pub const SIGNED_PROTOCOL: &str = "muster:signed:1";
/// The longest `ttl` a request may have, seconds: a day. The client sends 60.
pub const MAX_TTL: u64 = 86_400;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a JSON object of the expected shape.
    #[error("not valid JSON for a {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The `protocol` field names another protocol.
    #[error("unsupported protocol {found:?}, expected {expected:?}")]
    WrongProtocol {
        /// What the message said.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A field has a value outside what the protocol allows.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl DecodeError {
    /// A short, stable name for counting drops by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Malformed { .. } => "malformed",
            DecodeError::WrongProtocol { .. } => "wrong_protocol",
            DecodeError::Invalid { .. } => "invalid_field",
        }
    }
}

/// Decodes JSON into `T`, any failure a [`DecodeError::Malformed`] naming `what`.
pub(crate) fn from_json<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// Checks a message's `protocol` field.
pub(crate) fn check_protocol(found: &str, expected: &'static str) -> Result<(), DecodeError> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::WrongProtocol {
            found: found.chars().take(64).collect(),
            expected,
        })
    }
}

/// The outer form of every request: the inner request as a string, so a signature can cover its
/// exact bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureEnvelope {
    /// Always [`SECURE_PROTOCOL`].
    pub protocol: String,
    /// The inner request's JSON text.
    pub request: String,
    /// Base64 ed25519 signature over the bytes of `request`; absent when unsigned.
    #[serde(default)]
    pub signature: Option<String>,
    /// The caller's credential; absent when unsigned.
    #[serde(default)]
    pub credential: Option<String>,
}

impl SecureEnvelope {
    /// Wraps a request without a signature (only nodes in insecure mode accept it).
    pub fn unsigned(request: &Request) -> Self {
        SecureEnvelope {
            protocol: SECURE_PROTOCOL.to_string(),
            request: request.to_json(),
            signature: None,
            credential: None,
        }
    }

    /// Decodes an envelope from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let envelope: SecureEnvelope = from_json(bytes, "secure envelope")?;
        check_protocol(&envelope.protocol, SECURE_PROTOCOL)?;
        Ok(envelope)
    }

    /// Whether the envelope carries a signature.
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// The envelope as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A message signed by its sender (docs/design.md §2): a node's acknowledgement, reply or
/// registration, or a caller's record of a collected request. The signature covers the exact
/// bytes of `message`, which is why the inner message travels as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedMessage {
    /// Always [`SIGNED_PROTOCOL`].
    pub protocol: String,
    /// The inner message's JSON text (an acknowledgement, a reply or a registration).
    pub message: String,
    /// Base64 ed25519 signature over the bytes of `message`.
    pub signature: String,
    /// The signer's credential.
    pub credential: String,
}

impl SignedMessage {
    /// Wraps `message` with its `signature` and the signer's `credential`.
    pub fn new(message: String, signature: String, credential: String) -> Self {
        SignedMessage {
            protocol: SIGNED_PROTOCOL.to_string(),
            message,
            signature,
            credential,
        }
    }

    /// Whether `bytes` look like a signed message (without checking anything else).
    pub fn is_signed(bytes: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Probe<'a> {
            #[serde(borrow)]
            protocol: std::borrow::Cow<'a, str>,
        }
        serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| p.protocol == SIGNED_PROTOCOL)
    }

    /// Decodes a signed message from untrusted bytes, checking its shape and `protocol` but no
    /// signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let signed: SignedMessage = from_json(bytes, "signed message")?;
        check_protocol(&signed.protocol, SIGNED_PROTOCOL)?;
        Ok(signed)
    }

    /// The signed message as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The inner request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Always [`REQUEST_PROTOCOL`].
    pub protocol: String,
    /// 32 lower-case hex characters, unique per request.
    pub id: String,
    /// When the request was made, Unix seconds.
    pub time: UnixTime,
    /// How long the request is valid, in seconds either side of `time`.
    pub ttl: u64,
    /// Whether nodes acknowledge before running.
    #[serde(default)]
    pub ack: bool,
    /// The collective it is for.
    pub collective: String,
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// Who asked (the caller's name).
    pub caller: String,
    /// The machine it was sent from.
    pub sender: String,
    /// The action's inputs: a JSON object.
    #[serde(default = "empty_object")]
    pub data: Value,
    /// Which nodes it is for.
    #[serde(default)]
    pub filter: Filter,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl Request {
    /// Decodes and checks a request from untrusted text.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let request: Request = from_json(text.as_bytes(), "request")?;
        check_protocol(&request.protocol, REQUEST_PROTOCOL)?;
        request.check()?;
        Ok(request)
    }

    /// Checks the fields' values.
    pub fn check(&self) -> Result<(), DecodeError> {
        let invalid = |field, reason: String| Err(DecodeError::Invalid { field, reason });
        if !is_request_id(&self.id) {
            return invalid("id", "expected 32 lower-case hex characters".into());
        }
        crate::time::check("time", self.time)?;
        crate::time::check_at_most("ttl", self.ttl, MAX_TTL)?;
        if let Err(e) = subject::check_token("collective", &self.collective) {
            return invalid("collective", e.to_string());
        }
        if let Err(e) = subject::check_token("agent", &self.agent) {
            return invalid("agent", e.to_string());
        }
        if self.action.is_empty() {
            return invalid("action", "it is empty".into());
        }
        if !self.data.is_object() {
            return invalid("data", "expected a JSON object".into());
        }
        Ok(())
    }

    /// Whether `now` (Unix seconds) lies within `time ± (ttl + skew)`.
    pub fn is_current(&self, now: UnixTime, skew: f64) -> bool {
        (now - self.time).abs() <= self.ttl as f64 + skew
    }

    /// The request as JSON text.
    pub fn to_json(&self) -> String {
        // A Request holds only strings, numbers, JSON values and a filter: it always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether `id` is a well-formed request id.
pub fn is_request_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A node's acknowledgement: it accepted the request and will run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Always [`ACK_PROTOCOL`].
    pub protocol: String,
    /// The request acknowledged.
    pub request_id: String,
    /// The node's identity.
    pub sender: String,
}

impl Ack {
    /// An acknowledgement of `request_id` from `sender`.
    pub fn new(request_id: &str, sender: &str) -> Self {
        Ack {
            protocol: ACK_PROTOCOL.to_string(),
            request_id: request_id.to_string(),
            sender: sender.to_string(),
        }
    }
}

/// A node's reply to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Always [`REPLY_PROTOCOL`].
    pub protocol: String,
    /// The request answered.
    pub request_id: String,
    /// The node's identity.
    pub sender: String,
    /// When the reply was made, Unix seconds.
    pub time: UnixTime,
    /// The status, 0 to 6.
    pub statuscode: StatusCode,
    /// A human-readable status message.
    pub statusmsg: String,
    /// The action's outputs.
    #[serde(default = "empty_object")]
    pub data: Value,
}

impl Reply {
    /// Checks the fields' values: the time must be a wire time ([`crate::time::check`]).
    pub fn check(&self) -> Result<(), DecodeError> {
        crate::time::check("time", self.time)
    }

    /// A reply with a status and data.
    pub fn new(
        request_id: &str,
        sender: &str,
        time: UnixTime,
        statuscode: StatusCode,
        statusmsg: impl Into<String>,
        data: Value,
    ) -> Self {
        Reply {
            protocol: REPLY_PROTOCOL.to_string(),
            request_id: request_id.to_string(),
            sender: sender.to_string(),
            time,
            statuscode,
            statusmsg: statusmsg.into(),
            data,
        }
    }
}

/// Anything a client may receive on its reply subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// An acknowledgement.
    Ack(Ack),
    /// A reply.
    Reply(Reply),
}

impl Response {
    /// Decodes an acknowledgement or a reply from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Probe {
            protocol: String,
        }
        let probe: Probe = from_json(bytes, "response")?;
        match probe.protocol.as_str() {
            ACK_PROTOCOL => Ok(Response::Ack(from_json(bytes, "acknowledgement")?)),
            REPLY_PROTOCOL => {
                let reply: Reply = from_json(bytes, "reply")?;
                reply.check()?;
                Ok(Response::Reply(reply))
            }
            other => Err(DecodeError::WrongProtocol {
                found: other.chars().take(64).collect(),
                expected: REPLY_PROTOCOL,
            }),
        }
    }

    /// The request this answers.
    pub fn request_id(&self) -> &str {
        match self {
            Response::Ack(a) => &a.request_id,
            Response::Reply(r) => &r.request_id,
        }
    }

    /// The node that sent it.
    pub fn sender(&self) -> &str {
        match self {
            Response::Ack(a) => &a.sender,
            Response::Reply(r) => &r.sender,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> Request {
        Request {
            protocol: REQUEST_PROTOCOL.into(),
            id: "0123456789abcdef0123456789abcdef".into(),
            time: 1_764_072_000.123,
            ttl: 60,
            ack: true,
            collective: "muster".into(),
            agent: "service".into(),
            action: "restart".into(),
            caller: "alice".into(),
            sender: "ops-host".into(),
            data: json!({"service": "nginx"}),
            filter: Filter::default(),
        }
    }

    #[test]
    fn envelope_round_trip() {
        let r = request();
        let env = SecureEnvelope::unsigned(&r);
        let back = SecureEnvelope::decode(&env.to_bytes()).unwrap();
        assert!(!back.is_signed());
        assert_eq!(Request::decode(&back.request).unwrap(), r);
    }

    #[test]
    fn design_example_decodes() {
        let text = r#"{"protocol":"muster:request:1","id":"0123456789abcdef0123456789abcdef","time":1764072000.123,"ttl":60,"ack":true,
 "collective":"muster","agent":"service","action":"restart","caller":"alice","sender":"ops-host",
 "data":{"service":"nginx"},
 "filter":{"identity":["web1","/^db\\d+/"],"fact":[{"fact":"os.family","op":"==","value":"Debian"}],
           "class":["nginx"],"agent":["service"],"compound":"fact.role = web and not class = canary"}}"#;
        let r = Request::decode(text).unwrap();
        assert_eq!(r.filter.identity.len(), 2);
        assert_eq!(r.filter.fact[0].fact, "os.family");
    }

    #[test]
    fn bad_input_is_an_error_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "malformed"),
            (b"not json", "malformed"),
            (b"[1,2]", "malformed"),
            (b"{}", "malformed"),
            (br#"{"protocol":"other","request":"x"}"#, "wrong_protocol"),
            (br#"{"protocol":"muster:secure:1"}"#, "malformed"),
        ];
        for (bytes, reason) in cases {
            let err = SecureEnvelope::decode(bytes).unwrap_err();
            assert_eq!(
                err.reason(),
                *reason,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let mut r = request();
        r.id = "short".into();
        assert_eq!(
            Request::decode(&r.to_json()).unwrap_err().reason(),
            "invalid_field"
        );
        let mut r = request();
        r.agent = "a.b".into();
        assert_eq!(
            Request::decode(&r.to_json()).unwrap_err().reason(),
            "invalid_field"
        );
        let mut r = request();
        r.data = json!([1]);
        assert_eq!(
            Request::decode(&r.to_json()).unwrap_err().reason(),
            "invalid_field"
        );
    }

    #[test]
    fn times_and_ttls_are_bounded() {
        for (time, ttl) in [(3e11, 60), (-1.0, 60), (1.0, MAX_TTL + 1), (1.0, u64::MAX)] {
            let mut r = request();
            (r.time, r.ttl) = (time, ttl);
            let err = Request::decode(&r.to_json()).unwrap_err();
            assert_eq!(err.reason(), "invalid_field", "{time} {ttl}");
        }
        let mut r = request();
        (r.time, r.ttl) = (crate::time::MAX_UNIX, MAX_TTL);
        assert!(Request::decode(&r.to_json()).is_ok());
        let far = Reply::new("ab", "web1", 3e11, StatusCode::Ok, "OK", json!({}));
        let err = Response::decode(&serde_json::to_vec(&far).unwrap()).unwrap_err();
        assert_eq!(err.reason(), "invalid_field");
    }

    #[test]
    fn time_window() {
        let r = request();
        assert!(r.is_current(r.time + 60.0, 0.0));
        assert!(!r.is_current(r.time + 61.0, 0.0));
        assert!(r.is_current(r.time - 62.0, 5.0));
    }

    #[test]
    fn responses() {
        let ack = serde_json::to_vec(&Ack::new("ab", "web1")).unwrap();
        assert!(matches!(Response::decode(&ack).unwrap(), Response::Ack(_)));
        let reply = Reply::new("ab", "web1", 1.0, StatusCode::Aborted, "boom", json!({}));
        let bytes = serde_json::to_vec(&reply).unwrap();
        match Response::decode(&bytes).unwrap() {
            Response::Reply(r) => assert_eq!(r.statuscode, StatusCode::Aborted),
            other => panic!("{other:?}"),
        }
        assert!(Response::decode(b"{\"protocol\":\"x\"}").is_err());
    }

    #[test]
    fn signed_messages_keep_their_shape_and_say_what_they_are() {
        let signed = SignedMessage::new("{}".into(), "c2ln".into(), "e30.AAAA".into());
        let bytes = signed.to_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"protocol":"muster:signed:1","message":"{}","signature":"c2ln","credential":"e30.AAAA"}"#
        );
        assert!(SignedMessage::is_signed(&bytes));
        assert_eq!(SignedMessage::decode(&bytes).unwrap(), signed);
        let ack = serde_json::to_vec(&Ack::new("ab", "web1")).unwrap();
        assert!(!SignedMessage::is_signed(&ack));
        assert_eq!(
            SignedMessage::decode(&ack).unwrap_err().reason(),
            "malformed"
        );
        let other = br#"{"protocol":"x","message":"{}","signature":"","credential":""}"#;
        assert_eq!(
            SignedMessage::decode(other).unwrap_err().reason(),
            "wrong_protocol"
        );
        assert!(!SignedMessage::is_signed(b"\xff"));
    }
}
