//! Collected requests (docs/design.md §3): a request whose replies a registry keeps, so
//! `muster show ID` can tell from any operator's machine who got it and who did not.
//!
//! - The client announces the request as a [`JobRecord`] on `muster.<collective>.registry.job.new`
//!   (every registry stores it and answers; the client takes the first answer as proof that
//!   one is collecting). The broker's *no responders* status goes only to the sender, so once
//!   the request is sent the client announces the record again with the nodes it named
//!   `not_connected`; the later record replaces the earlier.
//! - The nodes reply to `muster.<collective>.replies.<id>.<part>` instead of the client's own
//!   inbox: every registry subscribes to `muster.<collective>.replies.>` and stores what arrives
//!   as [`JobEvent`]s — acknowledgements and replies (and a *no responders* status for a part,
//!   a node index or `b<N>` for a broadcast batch, should a broker send it there).
//! - Anyone asks for the job on `muster.<collective>.registry.job.get` with a [`JobQuery`]; one
//!   registry of the queue group answers with a [`JobAnswer`]: the record and the events. An
//!   answer too large for one message carries `next` and the registry's own subject
//!   (`registry`), where the rest is asked for, `after` events at a time — from the same
//!   registry, whose event order is its own.
//!
//! ```json
//! {"protocol":"muster:job:1","id":"01a2…","time":1764072000.5,"agent":"service",
//!  "action":"restart","caller":"operator","data":{"service":"nginx"},"filter":{},
//!  "expected":["web1","web2"],"timeout_ms":10000}
//! {"protocol":"muster:job-query:1","id":"01a2…"}
//! {"protocol":"muster:job-answer:1","job":{…},"events":[{"part":"0","kind":"ack",
//!  "identity":"web1","received":1764072000.6}]}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{DecodeError, Reply, check_protocol, from_json};
use crate::filter::Filter;
use crate::time::UnixTime;

/// `protocol` of a job record.
pub const JOB_PROTOCOL: &str = "muster:job:1";
/// `protocol` of a job query.
pub const JOB_QUERY_PROTOCOL: &str = "muster:job-query:1";
/// `protocol` of a job answer.
pub const JOB_ANSWER_PROTOCOL: &str = "muster:job-answer:1";
/// The longest `timeout_ms` a record may give: 366 days.
pub const MAX_TIMEOUT_MS: u64 = 366 * 86_400 * 1000;
/// The largest `after` or `next`: what the registry's SQLite counts rows with (`i64`).
pub const MAX_EVENTS: u64 = i64::MAX as u64;

/// A request id as a subject token: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn check_id(id: &str) -> Result<(), DecodeError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Invalid {
            field: "id",
            reason: "a request id is 1 to 64 letters, digits, '-' or '_'".to_string(),
        })
    }
}

/// What a registry needs to rebuild a collected request's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Always [`JOB_PROTOCOL`].
    pub protocol: String,
    /// The request's id.
    pub id: String,
    /// When it was sent, Unix seconds.
    pub time: UnixTime,
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// Who sent it.
    #[serde(default)]
    pub caller: String,
    /// The inputs.
    #[serde(default)]
    pub data: Value,
    /// The filter the expected set was found with.
    #[serde(default)]
    pub filter: Filter,
    /// The expected set, sorted: a reply part `N` is sent to the N-th.
    pub expected: Vec<String>,
    /// Expected nodes not sent to (a registry last saw them too long ago), with when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<(String, String)>,
    /// When a registry last saw each expected node (RFC 3339), where known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_seen: BTreeMap<String, String>,
    /// Nodes per broadcast batch (part `bN` is the N-th batch); absent: one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// How long each node was given to reply, milliseconds.
    pub timeout_ms: u64,
    /// The request this one retried, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// Expected nodes the broker said were not connected when the request was sent. The
    /// broker tells only the sender so: the client announces the record again with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_connected: Vec<String>,
}

impl JobRecord {
    /// Decodes a record from untrusted bytes, checked as [`JobRecord::check`] says.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let job: JobRecord = from_json(bytes, "job record")?;
        job.check()?;
        Ok(job)
    }

    /// Checks the fields' values: the protocol, the ids, the time a wire time
    /// ([`crate::time::check`]), the timeout at most [`MAX_TIMEOUT_MS`], and a batch size from
    /// 1 to the number of expected nodes — what makes [`JobRecord::part_nodes`] meaningful.
    pub fn check(&self) -> Result<(), DecodeError> {
        check_protocol(&self.protocol, JOB_PROTOCOL)?;
        check_id(&self.id)?;
        if let Some(retry_of) = &self.retry_of {
            check_id(retry_of)?;
        }
        crate::time::check("time", self.time)?;
        crate::time::check_at_most("timeout_ms", self.timeout_ms, MAX_TIMEOUT_MS)?;
        if let Some(size) = self.batch_size
            && (size == 0 || size > self.expected.len())
        {
            return Err(DecodeError::Invalid {
                field: "batch_size",
                reason: format!(
                    "{size} is not a batch size from 1 to the {} expected nodes",
                    self.expected.len()
                ),
            });
        }
        Ok(())
    }

    /// The record as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The nodes a reply part stands for: `N` is the N-th expected node, `bN` the N-th
    /// broadcast batch.
    /// Total for any record, checked or not: a part past the expected set names nobody.
    pub fn part_nodes(&self, part: &str) -> Vec<String> {
        let len = self.expected.len();
        let range = match part.strip_prefix('b') {
            Some(batch) => match batch.parse::<usize>() {
                Ok(n) => {
                    let size = self.batch_size.unwrap_or(len).max(1);
                    let start = n.saturating_mul(size).min(len);
                    start..start.saturating_add(size).min(len)
                }
                Err(_) => 0..0,
            },
            None => match part.parse::<usize>() {
                Ok(i) => i..i.saturating_add(1),
                Err(_) => 0..0,
            },
        };
        self.expected
            .get(range)
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }
}

impl JobEvent {
    /// Checks the fields' values: the times wire times ([`crate::time::check`]).
    pub fn check(&self) -> Result<(), DecodeError> {
        crate::time::check("received", self.received)?;
        if let Some(reply) = &self.reply {
            reply.check()?;
        }
        Ok(())
    }
}

/// What a registry received for a collected request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A node acknowledged.
    Ack,
    /// A node replied.
    Reply,
    /// The broker said nobody received this part.
    NotConnected,
}

/// One thing a registry received on a collected request's reply subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The reply subject's last token: a node index or `bN`.
    pub part: String,
    /// What it was.
    pub kind: EventKind,
    /// The node, for acknowledgements and replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// When the registry received it, Unix seconds.
    pub received: UnixTime,
    /// The reply, for replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
}

/// Asks for a collected request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Always [`JOB_QUERY_PROTOCOL`].
    pub protocol: String,
    /// The request's id.
    pub id: String,
    /// Skip this many events: the `next` of the previous answer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl JobQuery {
    /// A query for request `id`.
    pub fn new(id: &str) -> Self {
        JobQuery {
            protocol: JOB_QUERY_PROTOCOL.to_string(),
            id: id.to_string(),
            after: 0,
        }
    }

    /// Decodes a query from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let query: JobQuery = from_json(bytes, "job query")?;
        check_protocol(&query.protocol, JOB_QUERY_PROTOCOL)?;
        check_id(&query.id)?;
        crate::time::check_at_most("after", query.after, MAX_EVENTS)?;
        Ok(query)
    }

    /// The query as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A registry's answer: the record (when it was announced) and everything received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAnswer {
    /// Always [`JOB_ANSWER_PROTOCOL`].
    pub protocol: String,
    /// The announced record; absent when the registry never got it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRecord>,
    /// What arrived, in order.
    #[serde(default)]
    pub events: Vec<JobEvent>,
    /// Set when the query could not be answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// More events than fit in one message: ask the same registry (`registry`) again with
    /// `after` set to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// The answering registry's own subject, for the rest of a long answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

impl JobAnswer {
    /// An answer with a record and its events.
    pub fn found(job: Option<JobRecord>, events: Vec<JobEvent>) -> Self {
        JobAnswer {
            protocol: JOB_ANSWER_PROTOCOL.to_string(),
            job,
            events,
            error: None,
            next: None,
            registry: None,
        }
    }

    /// An answer saying the query could not be answered.
    pub fn error(message: impl Into<String>) -> Self {
        JobAnswer {
            protocol: JOB_ANSWER_PROTOCOL.to_string(),
            job: None,
            events: Vec::new(),
            error: Some(message.into()),
            next: None,
            registry: None,
        }
    }

    /// Decodes an answer from untrusted bytes: the record checked as [`JobRecord::check`]
    /// says, each event as [`JobEvent::check`] says.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let answer: JobAnswer = from_json(bytes, "job answer")?;
        check_protocol(&answer.protocol, JOB_ANSWER_PROTOCOL)?;
        // The record and the events are checked as their own decoders check them: the
        // client rebuilds a report from them.
        if let Some(job) = &answer.job {
            job.check()?;
        }
        for event in &answer.events {
            event.check()?;
        }
        if let Some(next) = answer.next {
            crate::time::check_at_most("next", next, MAX_EVENTS)?;
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
    use crate::StatusCode;
    use serde_json::json;

    fn job(expected: &[&str], batch_size: Option<usize>) -> JobRecord {
        JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: "01abc".to_string(),
            time: 100.0,
            agent: "rpcutil".to_string(),
            action: "ping".to_string(),
            caller: "operator".to_string(),
            data: json!({}),
            filter: Filter::default(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
            absent: vec![("old".into(), "2026-01-01T00:00:00Z".into())],
            last_seen: BTreeMap::new(),
            batch_size,
            timeout_ms: 5000,
            retry_of: None,
            not_connected: vec![],
        }
    }

    #[test]
    fn parts_name_their_nodes() {
        let j = job(&["a", "b", "c", "d", "e"], Some(2));
        assert_eq!(j.part_nodes("1"), ["b"]);
        assert_eq!(j.part_nodes("b0"), ["a", "b"]);
        assert_eq!(j.part_nodes("b2"), ["e"]);
        for nothing in ["b3", "5", "x", "b", "-1", "b99999999999999999999"] {
            assert!(j.part_nodes(nothing).is_empty(), "{nothing}");
        }
        assert_eq!(job(&["a", "b"], None).part_nodes("b0"), ["a", "b"]);
    }

    #[test]
    fn a_huge_batch_size_names_no_nodes_and_does_not_decode() {
        let j = job(&["a", "b", "c"], Some(usize::MAX));
        for part in ["b0", "b1", "b2", &format!("b{}", usize::MAX)] {
            assert!(j.part_nodes(part).len() <= 3, "{part}");
        }
        for size in [0, 4, usize::MAX] {
            let j = job(&["a", "b", "c"], Some(size));
            let err = JobRecord::decode(&j.to_bytes()).unwrap_err();
            assert!(err.to_string().contains("batch_size"), "{size}: {err}");
            let answer = JobAnswer::found(Some(j), vec![]);
            let err = JobAnswer::decode(&answer.to_bytes()).unwrap_err();
            assert!(err.to_string().contains("batch_size"), "{size}: {err}");
        }
        assert!(JobRecord::decode(&job(&["a", "b", "c"], Some(3)).to_bytes()).is_ok());
    }

    #[test]
    fn times_past_the_year_9999_do_not_decode() {
        let mut j = job(&["a"], None);
        j.time = 3e11;
        assert!(JobRecord::decode(&j.to_bytes()).is_err());
        let ok = job(&["a"], None);
        let event = |received: f64| JobEvent {
            part: "0".into(),
            kind: EventKind::Ack,
            identity: Some("a".into()),
            received,
            reply: None,
        };
        let answer = JobAnswer::found(Some(ok.clone()), vec![event(3e11)]);
        assert!(JobAnswer::decode(&answer.to_bytes()).is_err());
        let mut reply = Reply::new("01abc", "a", 3e11, StatusCode::Ok, "OK", json!({}));
        let mut with_reply = event(101.0);
        with_reply.kind = EventKind::Reply;
        with_reply.reply = Some(reply.clone());
        let answer = JobAnswer::found(Some(ok.clone()), vec![with_reply.clone()]);
        assert!(JobAnswer::decode(&answer.to_bytes()).is_err());
        reply.time = 101.0;
        with_reply.reply = Some(reply);
        let answer = JobAnswer::found(Some(ok), vec![with_reply]);
        assert!(JobAnswer::decode(&answer.to_bytes()).is_ok());
    }

    #[test]
    fn records_queries_and_answers_round_trip_and_reject_garbage() {
        let j = job(&["a"], None);
        assert_eq!(JobRecord::decode(&j.to_bytes()).unwrap(), j);
        let q = JobQuery::new("01abc");
        assert_eq!(JobQuery::decode(&q.to_bytes()).unwrap(), q);
        let reply = Reply::new("01abc", "a", 101.0, StatusCode::Ok, "OK", json!({"x": 1}));
        let answer = JobAnswer::found(
            Some(j),
            vec![JobEvent {
                part: "0".into(),
                kind: EventKind::Reply,
                identity: Some("a".into()),
                received: 101.5,
                reply: Some(reply),
            }],
        );
        assert_eq!(JobAnswer::decode(&answer.to_bytes()).unwrap(), answer);
        for bad in [
            &br#"{"protocol":"muster:job-query:1","id":"a.b"}"#[..],
            br#"{"protocol":"muster:job-query:1","id":""}"#,
            br#"{"protocol":"muster:job:1","id":"x"}"#,
            b"[]",
        ] {
            assert!(JobQuery::decode(bad).is_err() && JobRecord::decode(bad).is_err());
        }
    }
}
