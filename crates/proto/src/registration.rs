//! Node registration and inventory queries (docs/design.md §2): what a node publishes about
//! itself on `muster.<collective>.registration`, and the request/reply pair a registry answers
//! on `muster.<collective>.registry.query`.
//!
//! ```json
//! {"protocol":"muster:registration:1","identity":"web1","facts":{"role":"web"},
//!  "classes":["nginx"],"agents":["rpcutil"],"collectives":["muster"],"version":"0.1.0",
//!  "started":1764070000,"time":1764072000.5}
//! {"protocol":"muster:registry-query:1","filter":{"class":["nginx"]},"seen_within":300,
//!  "fact":"os.family"}
//! {"protocol":"muster:registry-answer:1","nodes":[{"identity":"web1",
//!  "first_seen":1764070001.2,"last_seen":1764072000.6,"fact":"Debian"}]}
//! ```
//!
//! A query may ask for each node's value of one `fact`, or with `"records":true` for each
//! node's whole latest registration (under `record`): that is how `muster facts` and `muster
//! inventory` answer from the registry without asking the nodes. An answer that would not fit
//! in one message carries `next`; the query is sent again with `after` set to it.
//!
//! ```json
//! {"protocol":"muster:registry-query:1","filter":{},"records":true}
//! {"protocol":"muster:registry-answer:1","nodes":[{"identity":"web1",
//!  "first_seen":1764070001.2,"last_seen":1764072000.6,
//!  "record":{"protocol":"muster:registration:1","identity":"web1",…}},…],"next":"web2"}
//! {"protocol":"muster:registry-query:1","filter":{},"records":true,"after":"web2"}
//! ```
//!
//! A registry that starts (or reconnects) asks the fleet to register at once on
//! `muster.<collective>.registry.hello`, so that it knows every node within moments instead of
//! after a registration interval. Each node answers with its ordinary registration after a
//! random delay in `0..jitter_ms`, so a large fleet does not answer in the same millisecond:
//!
//! ```json
//! {"protocol":"muster:registry-hello:1","jitter_ms":1000}
//! ```
//!
//! Every `decode` takes untrusted bytes and returns a [`DecodeError`], never panics.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{DecodeError, check_protocol, from_json};
use crate::filter::{Filter, NodeView};
use crate::subject;
use crate::time::UnixTime;

/// `protocol` of a registration.
pub const REGISTRATION_PROTOCOL: &str = "muster:registration:1";
/// `protocol` of a registry query.
pub const QUERY_PROTOCOL: &str = "muster:registry-query:1";
/// `protocol` of a registry answer.
pub const ANSWER_PROTOCOL: &str = "muster:registry-answer:1";

/// `protocol` of a registry's request that nodes register now.
pub const HELLO_PROTOCOL: &str = "muster:registry-hello:1";
/// The jitter a registry asks for by default, milliseconds.
pub const DEFAULT_HELLO_JITTER_MS: u64 = 1000;
/// The longest jitter a hello may ask for, milliseconds.
pub const MAX_HELLO_JITTER_MS: u64 = 60_000;

/// The latest `started` and the longest `seen_within`, whole seconds: the last wire time.
const MAX_SECONDS: u64 = crate::time::MAX_UNIX as u64;

/// What a node publishes about itself: its inventory and when it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Always [`REGISTRATION_PROTOCOL`].
    pub protocol: String,
    /// The node's identity.
    pub identity: String,
    /// Its facts, a JSON object.
    #[serde(default = "empty_object")]
    pub facts: Value,
    /// Its classes.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Its agents, sorted.
    #[serde(default)]
    pub agents: Vec<String>,
    /// The collectives it serves.
    #[serde(default)]
    pub collectives: Vec<String>,
    /// The daemon's version.
    #[serde(default)]
    pub version: String,
    /// When the daemon started, Unix seconds.
    #[serde(default)]
    pub started: u64,
    /// When this registration was made, Unix seconds.
    pub time: UnixTime,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl Registration {
    /// Decodes a registration from untrusted bytes, checked as [`Registration::check`] says.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let registration: Registration = from_json(bytes, "registration")?;
        registration.check()?;
        Ok(registration)
    }

    /// Checks the fields' values: the protocol must match, the identity be valid, the facts an
    /// object and the times wire times ([`crate::time::check`]).
    pub fn check(&self) -> Result<(), DecodeError> {
        check_protocol(&self.protocol, REGISTRATION_PROTOCOL)?;
        subject::check_identity(&self.identity).map_err(|e| DecodeError::Invalid {
            field: "identity",
            reason: e.to_string(),
        })?;
        if !self.facts.is_object() {
            return Err(DecodeError::Invalid {
                field: "facts",
                reason: "not a JSON object".to_string(),
            });
        }
        crate::time::check_at_most("started", self.started, MAX_SECONDS)?;
        crate::time::check("time", self.time)
    }

    /// The registration as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising strings, numbers and a JSON value cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl NodeView for Registration {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn facts(&self) -> &Value {
        &self.facts
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn has_agent(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == agent)
    }
}

/// An inventory query: which nodes match this filter (and were seen recently)?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryQuery {
    /// Always [`QUERY_PROTOCOL`].
    pub protocol: String,
    /// The filter the nodes must match (empty: every node).
    #[serde(default)]
    pub filter: Filter,
    /// Only nodes last seen within this many seconds; absent: every stored node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_within: Option<u64>,
    /// Also answer each node's value of this fact (a dotted path), as last registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
    /// Also answer each node's whole latest registration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub records: bool,
    /// Continue after this identity: the `next` of the previous answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl RegistryQuery {
    /// A query for nodes matching `filter`, optionally seen within `seen_within` seconds (at
    /// most the age of the latest wire time: any longer means every node).
    pub fn new(filter: Filter, seen_within: Option<u64>) -> Self {
        RegistryQuery {
            protocol: QUERY_PROTOCOL.to_string(),
            filter,
            seen_within: seen_within.map(|secs| secs.min(MAX_SECONDS)),
            fact: None,
            records: false,
            after: None,
        }
    }

    /// Decodes a query from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let query: RegistryQuery = from_json(bytes, "registry query")?;
        check_protocol(&query.protocol, QUERY_PROTOCOL)?;
        if let Some(secs) = query.seen_within {
            crate::time::check_at_most("seen_within", secs, MAX_SECONDS)?;
        }
        Ok(query)
    }

    /// The query as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A registry's request that every node register now: each answers with its registration
/// after a random delay below `jitter_ms`. Unknown fields are ignored, so that a later registry
/// may say more to nodes that understand only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryHello {
    /// Always [`HELLO_PROTOCOL`].
    pub protocol: String,
    /// Spread the answers over this many milliseconds, at most [`MAX_HELLO_JITTER_MS`].
    #[serde(default = "default_jitter")]
    pub jitter_ms: u64,
}

fn default_jitter() -> u64 {
    DEFAULT_HELLO_JITTER_MS
}

impl RegistryHello {
    /// A hello asking for answers spread over `jitter` (cut to [`MAX_HELLO_JITTER_MS`]).
    pub fn new(jitter: std::time::Duration) -> Self {
        let ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
        RegistryHello {
            protocol: HELLO_PROTOCOL.to_string(),
            jitter_ms: ms.min(MAX_HELLO_JITTER_MS),
        }
    }

    /// Decodes a hello from untrusted bytes: the protocol must match and the jitter be at most
    /// [`MAX_HELLO_JITTER_MS`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let hello: RegistryHello = from_json(bytes, "registry hello")?;
        check_protocol(&hello.protocol, HELLO_PROTOCOL)?;
        crate::time::check_at_most("jitter_ms", hello.jitter_ms, MAX_HELLO_JITTER_MS)?;
        Ok(hello)
    }

    /// The jitter asked for.
    pub fn jitter(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.jitter_ms.min(MAX_HELLO_JITTER_MS))
    }

    /// The hello as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One node a registry knows, and when it saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenNode {
    /// The node's identity.
    pub identity: String,
    /// When the registry first saw it, Unix seconds.
    pub first_seen: UnixTime,
    /// When the registry last saw it, Unix seconds.
    pub last_seen: UnixTime,
    /// The value of the fact the query asked for (`null` when the node does not have it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<Value>,
    /// The node's latest registration, when the query asked for records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Registration>,
}

/// A registry's answer to a [`RegistryQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAnswer {
    /// Always [`ANSWER_PROTOCOL`].
    pub protocol: String,
    /// The matching nodes, sorted by identity.
    #[serde(default)]
    pub nodes: Vec<SeenNode>,
    /// Set when the query could not be answered (e.g. its filter does not compile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// More nodes match than fit in one message: ask again with `after` set to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl RegistryAnswer {
    /// An answer listing these nodes.
    pub fn nodes(nodes: Vec<SeenNode>) -> Self {
        RegistryAnswer {
            protocol: ANSWER_PROTOCOL.to_string(),
            nodes,
            error: None,
            next: None,
        }
    }

    /// An answer saying the query could not be answered.
    pub fn error(message: impl Into<String>) -> Self {
        RegistryAnswer {
            protocol: ANSWER_PROTOCOL.to_string(),
            nodes: Vec::new(),
            error: Some(message.into()),
            next: None,
        }
    }

    /// Decodes an answer from untrusted bytes: every time a wire time, every record a valid
    /// registration. One node that is not refuses the whole answer: a registry that sends it
    /// is not to be believed about the others either.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let answer: RegistryAnswer = from_json(bytes, "registry answer")?;
        check_protocol(&answer.protocol, ANSWER_PROTOCOL)?;
        for node in &answer.nodes {
            subject::check_identity(&node.identity).map_err(|e| DecodeError::Invalid {
                field: "identity",
                reason: e.to_string(),
            })?;
            crate::time::check("first_seen", node.first_seen)?;
            crate::time::check("last_seen", node.last_seen)?;
            if let Some(record) = &node.record {
                record.check()?;
            }
        }
        Ok(answer)
    }

    /// The answer as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FactFilter;
    use serde_json::json;

    #[test]
    fn a_hello_is_decoded_with_its_bounds() {
        let hello = RegistryHello::new(std::time::Duration::from_millis(1500));
        assert_eq!(RegistryHello::decode(&hello.to_bytes()).unwrap(), hello);
        assert_eq!(
            RegistryHello::new(std::time::Duration::from_secs(3600)).jitter_ms,
            MAX_HELLO_JITTER_MS
        );
        let plain = RegistryHello::decode(br#"{"protocol":"muster:registry-hello:1"}"#).unwrap();
        assert_eq!(plain.jitter_ms, DEFAULT_HELLO_JITTER_MS);
        let later = br#"{"protocol":"muster:registry-hello:1","jitter_ms":0,"registry":"r2"}"#;
        assert_eq!(RegistryHello::decode(later).unwrap().jitter_ms, 0);
        let max = format!(
            r#"{{"protocol":"muster:registry-hello:1","jitter_ms":{MAX_HELLO_JITTER_MS}}}"#
        );
        assert!(RegistryHello::decode(max.as_bytes()).is_ok());
        for bad in [
            format!(
                r#"{{"protocol":"muster:registry-hello:1","jitter_ms":{}}}"#,
                MAX_HELLO_JITTER_MS + 1
            ),
            r#"{"protocol":"muster:registry-hello:1","jitter_ms":18446744073709551616}"#.into(),
            r#"{"protocol":"muster:registry-hello:1","jitter_ms":-1}"#.into(),
            r#"{"protocol":"muster:registry-hello:1","jitter_ms":1e300}"#.into(),
            r#"{"protocol":"muster:registry-hello:1","jitter_ms":"5"}"#.into(),
            r#"{"protocol":"muster:registration:1","jitter_ms":5}"#.into(),
            r#"{"jitter_ms":5}"#.into(),
            "[]".into(),
            "".into(),
        ] {
            assert!(RegistryHello::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    fn web1() -> Registration {
        Registration {
            protocol: REGISTRATION_PROTOCOL.to_string(),
            identity: "web1".to_string(),
            facts: json!({"role": "web", "os": {"family": "Debian"}}),
            classes: vec!["nginx".to_string()],
            agents: vec!["rpcutil".to_string()],
            collectives: vec!["muster".to_string()],
            version: "0.1.0".to_string(),
            started: 1_764_070_000,
            time: 1_764_072_000.5,
        }
    }

    #[test]
    fn registration_round_trips_and_is_a_node() {
        let r = web1();
        let back = Registration::decode(&r.to_bytes()).unwrap();
        assert_eq!(back, r);
        let mut filter = Filter::default();
        filter
            .fact
            .push(FactFilter::parse("os.family=Debian").unwrap());
        filter.class.push("nginx".into());
        filter.agent.push("rpcutil".into());
        assert!(filter.compile().unwrap().matches(&back));
        filter.agent.push("shell".into());
        assert!(!filter.compile().unwrap().matches(&back));
    }

    #[test]
    fn bad_registrations_are_errors() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "malformed"),
            (b"[]", "malformed"),
            (b"{\"protocol\":\"muster:registration:1\"}", "malformed"),
            (
                br#"{"protocol":"muster:request:1","identity":"a","time":1}"#,
                "wrong_protocol",
            ),
            (
                br#"{"protocol":"muster:registration:1","identity":"a b","time":1}"#,
                "invalid_field",
            ),
            (
                br#"{"protocol":"muster:registration:1","identity":"a","time":-1}"#,
                "invalid_field",
            ),
            (
                br#"{"protocol":"muster:registration:1","identity":"a","facts":[],"time":1}"#,
                "invalid_field",
            ),
            (
                br#"{"protocol":"muster:registration:1","identity":"a","classes":"x","time":1}"#,
                "malformed",
            ),
        ];
        for (bytes, reason) in cases {
            let err = Registration::decode(bytes).unwrap_err();
            assert_eq!(err.reason(), reason, "{}", String::from_utf8_lossy(bytes));
        }
        let minimal = Registration::decode(
            br#"{"protocol":"muster:registration:1","identity":"a","time":1}"#,
        )
        .unwrap();
        assert_eq!(minimal.facts, json!({}));
    }

    #[test]
    fn answers_with_times_past_the_year_9999_do_not_decode() {
        let seen = |first_seen: f64, last_seen: f64, record: Option<Registration>| SeenNode {
            identity: "web1".into(),
            first_seen,
            last_seen,
            fact: None,
            record,
        };
        let mut late = web1();
        late.time = 3e11;
        let mut started_late = web1();
        started_late.started = u64::MAX;
        let mut bad_identity = web1();
        bad_identity.identity = "a b".into();
        for node in [
            seen(1.0, 3e11, None),
            seen(3e11, 1.0, None),
            seen(1.0, 1.0, Some(late)),
            seen(1.0, 1.0, Some(started_late)),
            seen(1.0, 1.0, Some(bad_identity)),
        ] {
            let bytes = RegistryAnswer::nodes(vec![node.clone()]).to_bytes();
            assert!(RegistryAnswer::decode(&bytes).is_err(), "{node:?}");
        }
        let q = br#"{"protocol":"muster:registry-query:1","seen_within":18446744073709551615}"#;
        assert!(RegistryQuery::decode(q).is_err());
        let q = RegistryQuery::new(Filter::default(), Some(u64::MAX));
        assert!(
            RegistryQuery::decode(&q.to_bytes()).is_ok(),
            "a new query is in range"
        );
        let edge = RegistryAnswer::nodes(vec![seen(253_402_300_799.0, 253_402_300_799.0, None)]);
        assert!(RegistryAnswer::decode(&edge.to_bytes()).is_ok());
        let mut r = web1();
        r.time = 253_402_300_800.0;
        assert!(Registration::decode(&r.to_bytes()).is_err());
    }

    #[test]
    fn query_and_answer_round_trip() {
        let mut filter = Filter::default();
        filter.class.push("nginx".into());
        let q = RegistryQuery::new(filter, Some(300));
        let text = String::from_utf8(q.to_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"protocol":"muster:registry-query:1","filter":{"class":["nginx"]},"seen_within":300}"#
        );
        assert_eq!(RegistryQuery::decode(text.as_bytes()).unwrap(), q);
        assert!(
            RegistryQuery::decode(br#"{"protocol":"muster:registry-query:1"}"#)
                .unwrap()
                .filter
                .is_empty()
        );
        assert!(RegistryQuery::decode(br#"{"protocol":"x"}"#).is_err());
        assert!(
            RegistryQuery::decode(br#"{"protocol":"muster:registry-query:1","seen_within":-1}"#)
                .is_err()
        );

        let a = RegistryAnswer::nodes(vec![SeenNode {
            identity: "web1".into(),
            first_seen: 1.5,
            last_seen: 2.5,
            fact: Some(json!("Debian")),
            record: Some(web1()),
        }]);
        assert_eq!(RegistryAnswer::decode(&a.to_bytes()).unwrap(), a);
        let e = RegistryAnswer::error("bad filter");
        assert_eq!(RegistryAnswer::decode(&e.to_bytes()).unwrap(), e);
        assert!(
            RegistryAnswer::decode(
                br#"{"protocol":"muster:registry-answer:1","nodes":[{"identity":"a","first_seen":1,"last_seen":1e999}]}"#
            )
            .is_err()
        );
    }
}
