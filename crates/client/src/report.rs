//! The report of one request (docs/design.md §3, contract): one outcome per expected node,
//! replies from nodes outside the expected set kept as `unexpected`, and the counts.

// Counts and deadlines here come from what the network sends: no arithmetic that can overflow,
// no indexing that can panic (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

use std::collections::{BTreeMap, BTreeSet};

use muster_proto::{Reply, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit::ExitStatus;

/// How one node's part of a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Replied with status 0.
    Ok,
    /// Replied with a non-zero status.
    Failed,
    /// Acknowledged, but no reply in time.
    Timeout,
    /// Nothing at all.
    NoReply,
    /// No responders on its direct subject, or the registry last saw it long ago.
    NotConnected,
    /// Replied, but was not in the expected set.
    Unexpected,
}

impl Outcome {
    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "acknowledged, no reply in time",
            Outcome::NoReply => "no reply",
            Outcome::NotConnected => "not connected",
            Outcome::Unexpected => "unexpected",
        }
    }
}

// The summaries of one output across the replies, computed by `aggregate`, are part of the
// report and its JSON.

/// How many replies had one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    /// The value with its JSON type: the number 4 and the string "4" are two values. For
    /// `boolean_summary`, `true` and `false` are the DDL's names for them (strings).
    pub value: Value,
    /// How many replies had it.
    pub count: usize,
}

/// One aggregate's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateResult {
    /// The DDL's function: `summary`, `boolean_summary`, `nagios_states` (these fill
    /// `counts`), `average` (`average`), `sum` (`sum`), `nettest_mma` (`minimum`, `maximum`,
    /// `average`) or `process_summary` (`processes`).
    pub function: String,
    /// The output summarised.
    pub output: String,
    /// The output's label (`display_as`).
    pub label: String,
    /// Replies that had the output.
    pub count: usize,
    /// For `summary` and `boolean_summary`: values and how often, most common first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<ValueCount>>,
    /// For `average`: the mean of the numeric values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    /// For `nettest_mma`: the smallest numeric value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// For `nettest_mma`: the largest numeric value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// For `sum`: the total of the numeric values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// For `process_summary`: the processes the nodes matched, in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<ProcessTotals>,
    /// For `average`, `sum` and `nettest_mma`: the DDL's printf-style format, if any
    /// (`Average: %0.2f`; `nettest_mma`'s has three numbers: minimum, maximum, average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// What `process_summary` adds up over the process agent's `pslist` outputs (its plugin's
/// `aggregate/process_summary.rb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTotals {
    /// Nodes with at least one matching process.
    pub hosts: u64,
    /// Matching processes.
    pub processes: u64,
    /// Their resident size, in bytes (`rss` is in KiB).
    pub rss_bytes: u64,
    /// Their virtual size, in bytes.
    pub vsize_bytes: u64,
}

/// The counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Nodes that should answer.
    pub expected: usize,
    /// Expected nodes that replied (ok + failed).
    pub responded: usize,
    /// Replied with status 0.
    pub ok: usize,
    /// Replied with a non-zero status.
    pub failed: usize,
    /// Expected nodes that did not reply.
    pub missing: usize,
    /// Replies from nodes outside the expected set.
    pub unexpected: usize,
    /// How long discovery took.
    pub discovery_ms: u64,
    /// How long the request took, from sending to the last reply or the timeout.
    pub elapsed_ms: u64,
}

/// An expected node that did not reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// The node.
    pub identity: String,
    /// `timeout`, `no_reply` or `not_connected`.
    pub outcome: Outcome,
    /// When the registry last saw it (RFC 3339), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// One node's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReply {
    /// The node.
    pub sender: String,
    /// `ok`, `failed` or `unexpected`.
    pub outcome: Outcome,
    /// The reply's status code.
    pub statuscode: u8,
    /// The reply's status message.
    pub statusmsg: String,
    /// The action's outputs.
    pub data: Value,
    /// Milliseconds from sending the request to this reply.
    pub ms: u64,
}

/// How the expected set was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryMethod {
    /// Broadcast discovery alone: no registry answered, so nodes that are down, or answered
    /// after the quiet window, are not in the set.
    Broadcast,
    /// Broadcast discovery, and a registry's recently seen nodes too.
    BroadcastAndRegistry,
    /// The registry (`--dm registry`).
    Registry,
    /// A node list (`--nodes`, or a journal's for `retry`).
    Nodes,
}

/// A node that answered discovery with a non-zero status (6, not authorized: its policy
/// denies the caller `rpcutil ping`). A node checks the filter before its policy, so it
/// matched, and it is in the expected set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryFailure {
    /// The node.
    pub identity: String,
    /// The status of its discovery answer.
    pub statuscode: u8,
    /// Its status message.
    pub statusmsg: String,
}

/// Where the expected set came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryInfo {
    /// How it was found.
    pub method: DiscoveryMethod,
    /// With broadcast discovery, the quiet window it ended with, in milliseconds.
    #[serde(default)]
    pub quiet_ms: Option<u64>,
    /// Nodes that answered discovery with a failure, sorted by identity.
    #[serde(default)]
    pub failed: Vec<DiscoveryFailure>,
}

impl DiscoveryInfo {
    /// A set that was not discovered by broadcast.
    pub fn of(method: DiscoveryMethod) -> Self {
        DiscoveryInfo {
            method,
            quiet_ms: None,
            failed: Vec::new(),
        }
    }
}

/// Acknowledgements and replies the client could not verify, for one reason. They are not
/// counted as any node's answer: who sent them is not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// A stable name: `unsigned`, `unknown_issuer`, `bad_signature`, `sender_mismatch`, …
    pub reason: String,
    /// The reason in words.
    pub message: String,
    /// How many replies.
    pub replies: usize,
    /// How many acknowledgements.
    pub acks: usize,
}

/// Messages the client lost while it waited for answers (docs/design.md §3): its inbox was full
/// (a slow consumer: it could not keep up, and the messages that did not fit were dropped), or
/// the connection to the broker dropped, losing whatever was in flight. Nodes whose answers
/// were lost end `no_reply` (or `timeout`, when their acknowledgement got through), as any
/// node that did not answer; this says why there may be more of them than went quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Times the inbox was full and dropped messages (each at least one).
    pub slow_consumer: usize,
    /// Times the connection to the broker dropped.
    pub disconnected: usize,
}

impl Lost {
    /// What two waits lost together (a discovery and its request, a request and its
    /// follow-up).
    pub fn merge(a: Option<Lost>, b: Option<Lost>) -> Option<Lost> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Lost {
                slow_consumer: a.slow_consumer.saturating_add(b.slow_consumer),
                disconnected: a.disconnected.saturating_add(b.disconnected),
            }),
            (a, b) => a.or(b),
        }
    }
}

/// Why an acknowledgement or a reply was not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreReason {
    /// A stable name (see [`Ignored::reason`]).
    pub reason: &'static str,
    /// The reason in words.
    pub message: &'static str,
}

impl IgnoreReason {
    /// A message on the reply inbox that is neither an acknowledgement nor a reply: counted
    /// with the rest, since whoever can write there is worth knowing about.
    pub const UNDECODABLE: IgnoreReason = IgnoreReason {
        reason: "undecodable",
        message: "not readable as an acknowledgement or a reply",
    };

    /// The words for a [`muster_security::TrustError`] reason name.
    pub fn from_trust_reason(reason: &'static str) -> Self {
        let message = match reason {
            "unsigned" => "not signed, and the client config names an issuer",
            "unknown_issuer" => "not signed by the configured issuer",
            "bad_signature" => "the signature does not match the message",
            "credential_expired" => "signed with an expired credential",
            "credential_not_yet_valid" => "signed with a credential that is not valid yet",
            "wrong_credential_kind" => "not signed with a node credential",
            "sender_mismatch" => "signed by another node than the sender it names",
            _ => "a malformed signature or credential",
        };
        IgnoreReason { reason, message }
    }
}

/// Adds `replies` and `acks` to the count of their reason.
fn count_ignored(list: &mut Vec<Ignored>, why: &IgnoreReason, replies: usize, acks: usize) {
    merge_ignored(
        list,
        &[Ignored {
            reason: why.reason.to_string(),
            message: why.message.to_string(),
            replies,
            acks,
        }],
    );
}

/// Adds the counts of `more` to `list`.
pub fn merge_ignored(list: &mut Vec<Ignored>, more: &[Ignored]) {
    for i in more {
        match list.iter_mut().find(|l| l.reason == i.reason) {
            Some(l) => {
                l.replies = l.replies.saturating_add(i.replies);
                l.acks = l.acks.saturating_add(i.acks);
            }
            None => list.push(i.clone()),
        }
    }
    // Most first; ties by name, so the order does not depend on arrival.
    list.sort_by(|a, b| {
        (b.replies, b.acks)
            .cmp(&(a.replies, a.acks))
            .then_with(|| a.reason.cmp(&b.reason))
    });
}

/// The report of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The request's id.
    pub request_id: String,
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The counts.
    pub stats: Stats,
    /// Expected nodes that did not reply, sorted by identity.
    pub missing: Vec<Missing>,
    /// Replies, expected ones sorted by identity, then unexpected ones.
    pub replies: Vec<NodeReply>,
    /// Summaries across the replies, as the action's DDL asks for them.
    #[serde(default)]
    pub aggregates: Vec<AggregateResult>,
    /// Where the expected set came from; `null` where that is not known (a collected request
    /// shown from a registry, `inventory`).
    #[serde(default)]
    pub discovery: Option<DiscoveryInfo>,
    /// Acknowledgements and replies, to discovery or to the request, that could not be
    /// verified, by reason, most first.
    #[serde(default)]
    pub ignored: Vec<Ignored>,
    /// Messages the client lost while waiting, when it lost any; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<Lost>,
}

impl Report {
    /// Adds expected nodes that were not sent to because the registry last saw them too long
    /// ago: each ends `not_connected`, with its last-seen time.
    pub fn add_absent(&mut self, absent: &[(String, String)]) {
        for (identity, last_seen) in absent {
            self.missing.push(Missing {
                identity: identity.clone(),
                outcome: Outcome::NotConnected,
                last_seen: Some(last_seen.clone()),
            });
        }
        self.missing.sort_by(|a, b| a.identity.cmp(&b.identity));
        self.stats.expected = self.stats.expected.saturating_add(absent.len());
        self.stats.missing = self.stats.missing.saturating_add(absent.len());
    }

    /// Fills in `last_seen` (RFC 3339) for missing nodes the registry knows.
    pub fn annotate_last_seen(&mut self, last_seen: &BTreeMap<String, String>) {
        for m in &mut self.missing {
            if m.last_seen.is_none() {
                m.last_seen = last_seen.get(&m.identity).cloned();
            }
        }
    }

    /// Takes in the report of a second request over other nodes (a follow-up to nodes the
    /// first did not reach): counts added, missing nodes and replies merged in order. The
    /// first report's id, agent and action stay.
    pub fn merge(&mut self, other: Report) {
        let s = &mut self.stats;
        s.expected = s.expected.saturating_add(other.stats.expected);
        s.responded = s.responded.saturating_add(other.stats.responded);
        s.ok = s.ok.saturating_add(other.stats.ok);
        s.failed = s.failed.saturating_add(other.stats.failed);
        s.missing = s.missing.saturating_add(other.stats.missing);
        s.unexpected = s.unexpected.saturating_add(other.stats.unexpected);
        s.elapsed_ms = s.elapsed_ms.max(other.stats.elapsed_ms);
        self.missing.extend(other.missing);
        self.missing.sort_by(|a, b| a.identity.cmp(&b.identity));
        self.replies.extend(other.replies);
        merge_ignored(&mut self.ignored, &other.ignored);
        self.lost = Lost::merge(self.lost, other.lost);
        self.replies.sort_by(|a, b| {
            let unexpected = |r: &NodeReply| r.outcome == Outcome::Unexpected;
            (unexpected(a), &a.sender).cmp(&(unexpected(b), &b.sender))
        });
    }

    /// The exit status docs/design.md §3 gives this report.
    pub fn exit_status(&self) -> ExitStatus {
        // Answers came, but none could be verified: not "nothing answered" (4).
        if self.stats.expected == 0 && !self.ignored.is_empty() {
            ExitStatus::Failed
        } else if self.stats.expected == 0 {
            ExitStatus::NoMatch
        } else if self.stats.missing > 0 {
            ExitStatus::Missing
        } else if self.stats.failed > 0 {
            ExitStatus::Failed
        } else {
            ExitStatus::Ok
        }
    }
}

/// Accumulates acknowledgements and replies against an expected set.
#[derive(Debug)]
pub struct Tally {
    expected: BTreeSet<String>,
    acked: BTreeSet<String>,
    not_connected: BTreeSet<String>,
    given_up: BTreeSet<String>,
    replies: BTreeMap<String, NodeReply>,
    unexpected: BTreeMap<String, NodeReply>,
    ignored: Vec<Ignored>,
}

impl Tally {
    /// A tally for these nodes.
    pub fn new(expected: BTreeSet<String>) -> Self {
        Tally {
            expected,
            acked: BTreeSet::new(),
            not_connected: BTreeSet::new(),
            given_up: BTreeSet::new(),
            replies: BTreeMap::new(),
            unexpected: BTreeMap::new(),
            ignored: Vec::new(),
        }
    }

    /// The expected set.
    pub fn expected(&self) -> &BTreeSet<String> {
        &self.expected
    }

    /// Whether every expected node has settled (replied, or is known not to be connected).
    pub fn is_complete(&self) -> bool {
        self.settled() == self.expected.len()
    }

    /// How many expected nodes have settled.
    pub fn settled(&self) -> usize {
        self.replies
            .len()
            .saturating_add(self.not_connected.len())
            .saturating_add(self.given_up.len())
    }

    /// Whether `identity` has replied (a reply it sent, verified where replies are).
    pub fn has_replied(&self, identity: &str) -> bool {
        self.replies.contains_key(identity)
    }

    /// Whether `identity` has settled: replied, known not connected, or waited for long enough.
    pub fn has_settled(&self, identity: &str) -> bool {
        self.replies.contains_key(identity)
            || self.not_connected.contains(identity)
            || self.given_up.contains(identity)
    }

    /// The wait for `identity` is over: it ends as `timeout` if it acknowledged, else
    /// `no_reply` (a reply that still arrives later counts).
    pub fn give_up(&mut self, identity: &str) {
        if self.expected.contains(identity) && !self.has_settled(identity) {
            self.given_up.insert(identity.to_string());
        }
    }

    /// A node acknowledged.
    pub fn ack(&mut self, sender: &str) {
        if self.expected.contains(sender) {
            self.acked.insert(sender.to_string());
        }
    }

    /// Nobody is subscribed to this node's direct subject.
    pub fn not_connected(&mut self, identity: &str) {
        if self.expected.contains(identity) && !self.replies.contains_key(identity) {
            self.given_up.remove(identity);
            self.not_connected.insert(identity.to_string());
        }
    }

    /// Every node that has not settled is not connected (nobody subscribed at all).
    pub fn rest_not_connected(&mut self) {
        let rest: Vec<String> = self
            .expected
            .iter()
            .filter(|i| !self.has_settled(i))
            .cloned()
            .collect();
        self.not_connected.extend(rest);
    }

    /// A reply (`reply`), else an acknowledgement, that could not be verified, for this reason.
    pub fn ignore(&mut self, why: &IgnoreReason, reply: bool) {
        let (replies, acks) = if reply { (1, 0) } else { (0, 1) };
        count_ignored(&mut self.ignored, why, replies, acks);
    }

    /// A reply arrived `ms` after sending. The first reply per node counts.
    pub fn reply(&mut self, reply: Reply, ms: u64) {
        let expected = self.expected.contains(&reply.sender);
        let outcome = match (expected, reply.statuscode) {
            (false, _) => Outcome::Unexpected,
            (true, StatusCode::Ok) => Outcome::Ok,
            (true, _) => Outcome::Failed,
        };
        let node_reply = NodeReply {
            sender: reply.sender.clone(),
            outcome,
            statuscode: reply.statuscode.code(),
            statusmsg: reply.statusmsg,
            data: reply.data,
            ms,
        };
        let into = if expected {
            // A late reply after "not connected" (a node that came back) still counts.
            self.not_connected.remove(&reply.sender);
            self.given_up.remove(&reply.sender);
            &mut self.replies
        } else {
            &mut self.unexpected
        };
        into.entry(reply.sender).or_insert(node_reply);
    }

    /// The report, once waiting is over: unsettled nodes become `timeout` if they acknowledged,
    /// else `no_reply`.
    pub fn finish(
        self,
        request_id: &str,
        agent: &str,
        action: &str,
        discovery_ms: u64,
        elapsed_ms: u64,
    ) -> Report {
        let mut missing = Vec::new();
        for identity in &self.expected {
            if self.replies.contains_key(identity) {
                continue;
            }
            let outcome = if self.not_connected.contains(identity) {
                Outcome::NotConnected
            } else if self.acked.contains(identity) {
                Outcome::Timeout
            } else {
                Outcome::NoReply
            };
            missing.push(Missing {
                identity: identity.clone(),
                outcome,
                last_seen: None,
            });
        }
        let ok = self
            .replies
            .values()
            .filter(|r| r.outcome == Outcome::Ok)
            .count();
        let stats = Stats {
            expected: self.expected.len(),
            responded: self.replies.len(),
            ok,
            failed: self.replies.len().saturating_sub(ok),
            missing: missing.len(),
            unexpected: self.unexpected.len(),
            discovery_ms,
            elapsed_ms,
        };
        let replies = self
            .replies
            .into_values()
            .chain(self.unexpected.into_values())
            .collect();
        Report {
            request_id: request_id.to_string(),
            agent: agent.to_string(),
            action: action.to_string(),
            stats,
            missing,
            replies,
            aggregates: Vec::new(),
            discovery: None,
            ignored: self.ignored,
            lost: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(sender: &str, status: StatusCode) -> Reply {
        Reply::new("id", sender, 0.0, status, status.message(), json!({}))
    }

    #[test]
    fn every_expected_node_gets_one_outcome() {
        let expected: BTreeSet<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut t = Tally::new(expected);
        t.reply(reply("a", StatusCode::Ok), 1);
        t.reply(reply("a", StatusCode::Aborted), 2); // a duplicate does not count
        t.reply(reply("b", StatusCode::Aborted), 3);
        t.ack("c");
        t.not_connected("d");
        t.reply(reply("zz", StatusCode::Ok), 4);
        assert!(!t.is_complete());
        let r = t.finish("id", "rpcutil", "ping", 5, 6);
        assert_eq!(
            r.stats,
            Stats {
                expected: 5,
                responded: 2,
                ok: 1,
                failed: 1,
                missing: 3,
                unexpected: 1,
                discovery_ms: 5,
                elapsed_ms: 6
            }
        );
        let outcomes: Vec<_> = r
            .missing
            .iter()
            .map(|m| (m.identity.as_str(), m.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("c", Outcome::Timeout),
                ("d", Outcome::NotConnected),
                ("e", Outcome::NoReply)
            ]
        );
        assert_eq!(r.replies[2].outcome, Outcome::Unexpected);
        assert_eq!(r.exit_status(), ExitStatus::Missing);
    }

    #[test]
    fn merged_reports_keep_every_node_in_order() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut first = Tally::new(set(&["a", "c"]));
        first.reply(reply("c", StatusCode::Ok), 1);
        first.reply(reply("z", StatusCode::Ok), 1);
        let mut first = first.finish("one", "rpcutil", "ping", 200, 210);
        let mut second = Tally::new(set(&["b", "d"]));
        second.reply(reply("b", StatusCode::Ok), 3);
        second.not_connected("d");
        first.merge(second.finish("two", "rpcutil", "ping", 0, 5));
        assert_eq!(first.request_id, "one");
        assert_eq!(
            (first.stats.expected, first.stats.ok, first.stats.missing),
            (4, 2, 2)
        );
        assert_eq!((first.stats.unexpected, first.stats.elapsed_ms), (1, 210));
        let order: Vec<_> = first.replies.iter().map(|r| r.sender.as_str()).collect();
        assert_eq!(order, ["b", "c", "z"]);
        let missing: Vec<_> = first.missing.iter().map(|m| m.identity.as_str()).collect();
        assert_eq!(missing, ["a", "d"]);
    }

    #[test]
    fn unverifiable_answers_are_counted_by_reason_and_are_not_no_match() {
        let why = |r| IgnoreReason::from_trust_reason(r);
        let mut t = Tally::new(BTreeSet::new());
        t.ignore(&why("unsigned"), true);
        t.ignore(&why("unknown_issuer"), true);
        t.ignore(&why("unknown_issuer"), false);
        t.ignore(&why("unknown_issuer"), true);
        let r = t.finish("i", "rpcutil", "ping", 0, 0);
        let counts: Vec<_> = r
            .ignored
            .iter()
            .map(|i| (i.reason.as_str(), i.replies, i.acks))
            .collect();
        assert_eq!(counts, [("unknown_issuer", 2, 1), ("unsigned", 1, 0)]);
        assert_eq!(r.ignored[0].message, "not signed by the configured issuer");
        assert_eq!(r.exit_status(), ExitStatus::Failed);
    }

    #[test]
    fn exit_statuses() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let r = Tally::new(set(&[])).finish("i", "a", "b", 0, 0);
        assert_eq!(r.exit_status(), ExitStatus::NoMatch);
        let mut t = Tally::new(set(&["a"]));
        t.reply(reply("a", StatusCode::Ok), 1);
        assert!(t.is_complete());
        assert_eq!(t.finish("i", "a", "b", 0, 0).exit_status(), ExitStatus::Ok);
        let mut t = Tally::new(set(&["a"]));
        t.reply(reply("a", StatusCode::InvalidData), 1);
        assert_eq!(
            t.finish("i", "a", "b", 0, 0).exit_status(),
            ExitStatus::Failed
        );
    }
}
