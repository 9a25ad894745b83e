//! The `--json` output contracts (docs/design.md §3): one named type for each document a
//! command prints with `--json`, and [`write`], which prints it. This module is the reference
//! for their shapes; the docs list the schema names.
//!
//! Every object starts with a `schema` field naming its type and version, in the style of the
//! wire's `"protocol"` tags (docs/design.md §2): `muster:report:1`. A version changes only when
//! a field changes meaning or goes away; added fields keep it. Scripts may dispatch on it.
//!
//! Two outputs are arrays, not objects, and carry no `schema`:
//! - `find --json`, [`Identities`]: an array of identities is what `--nodes -` reads back
//!   (docs/design.md §3, §4), so `find --json | muster ping --nodes -` composes; an object
//!   around it would break that pipe.
//! - `history --json`, [`History`]: an array of requests, newest first, as it has always been,
//!   so `.[0].request_id` keeps working; each element is an object with its own `schema`
//!   (`muster:history-entry:1`), so the records are versioned like every other object.

use std::collections::BTreeSet;
use std::io::{self, Write};

use muster_client::journal::Entry;
use muster_client::run::{RegistryView, Sent as SentRequest};
use muster_proto::registration::Registration;
use serde::Serialize;
use serde_json::Value;

/// The report of one request: `rpc`, `ping`, `inventory`, `retry`, `show`.
pub const REPORT: &str = "muster:report:1";
/// `facts`: the report of `rpcutil get_fact` and the fact's summary.
pub const FACTS: &str = "muster:facts:1";
/// `facts --from-registry`.
pub const FACTS_FROM_REGISTRY: &str = "muster:facts-registry:1";
/// `inventory --from-registry`.
pub const INVENTORY_FROM_REGISTRY: &str = "muster:inventory-registry:1";
/// `rpc --no-results`: the request was sent, and a registry collects the replies.
pub const SENT: &str = "muster:sent:1";
/// The failure of exits 2 and 5, whatever the command.
pub const ERROR: &str = "muster:error:1";
/// One request in `history --json`.
pub const HISTORY_ENTRY: &str = "muster:history-entry:1";

/// Prints `document` as one line of JSON: with `--json`, stdout is exactly one JSON value.
pub fn write(out: &mut dyn Write, document: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, document)?;
    writeln!(out)
}

/// The report of one request ([`REPORT`]): `schema`, then the report's own fields
/// ([`muster_client::Report`]).
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// [`REPORT`].
    pub schema: &'static str,
    /// The report.
    #[serde(flatten)]
    pub report: &'a muster_client::Report,
}

impl<'a> Report<'a> {
    /// The document of `report`.
    pub fn new(report: &'a muster_client::Report) -> Self {
        Report {
            schema: REPORT,
            report,
        }
    }
}

/// `facts --json` ([`FACTS`]): the report, and the fact summarised across the nodes
/// (`{"fact", "values": [{"value", "count", "nodes"}], "missing"}`, from
/// [`muster_client::facts::FactSummary::to_json`]).
#[derive(Debug, Serialize)]
pub struct Facts<'a> {
    /// [`FACTS`].
    pub schema: &'static str,
    /// The report of `rpcutil get_fact`.
    #[serde(flatten)]
    pub report: &'a muster_client::Report,
    /// The fact's values and their nodes.
    pub summary: Value,
}

impl<'a> Facts<'a> {
    /// The document of `report` with `summary`.
    pub fn new(report: &'a muster_client::Report, summary: Value) -> Self {
        Facts {
            schema: FACTS,
            report,
            summary,
        }
    }
}

/// A node the registry last saw longer ago than `--expect-seen`.
#[derive(Debug, Serialize)]
pub struct StaleNode {
    /// Its identity.
    pub identity: String,
    /// When the registry last saw it, RFC 3339.
    pub last_seen: String,
}

/// The stale nodes of a registry's view.
fn stale(view: &RegistryView) -> Vec<StaleNode> {
    view.stale
        .iter()
        .map(|n| StaleNode {
            identity: n.identity.clone(),
            last_seen: muster_proto::time::rfc3339(n.last_seen),
        })
        .collect()
}

/// `facts --from-registry --json` ([`FACTS_FROM_REGISTRY`]): the values the nodes last
/// registered. With no node at all (exit 4) it has `"nodes": 0`.
#[derive(Debug, Serialize)]
pub struct FactsFromRegistry {
    /// [`FACTS_FROM_REGISTRY`].
    pub schema: &'static str,
    /// Always `registry`: what `--nodes -` recognises a registry's answer by.
    pub source: &'static str,
    /// How many nodes were seen within `--expect-seen` (their values are in `summary`).
    pub nodes: usize,
    /// The nodes seen longer ago, whose values are left out.
    pub stale: Vec<StaleNode>,
    /// The fact's values and their nodes, as in [`Facts::summary`].
    pub summary: Value,
}

impl FactsFromRegistry {
    /// The answer of `view` with `summary`.
    pub fn new(view: &RegistryView, summary: Value) -> Self {
        FactsFromRegistry {
            schema: FACTS_FROM_REGISTRY,
            source: "registry",
            nodes: view.fresh.len(),
            stale: stale(view),
            summary,
        }
    }
}

/// `inventory --from-registry --json` ([`INVENTORY_FROM_REGISTRY`]): one node's latest
/// registration. A node the registry does not know (exit 4) has `null` times and record.
#[derive(Debug, Serialize)]
pub struct InventoryFromRegistry<'a> {
    /// [`INVENTORY_FROM_REGISTRY`].
    pub schema: &'static str,
    /// Always `registry`.
    pub source: &'static str,
    /// The node's identity.
    pub identity: &'a str,
    /// When the registry first saw it, RFC 3339.
    pub first_seen: Option<String>,
    /// When the registry last saw it, RFC 3339.
    pub last_seen: Option<String>,
    /// Not seen within `--expect-seen`: the record may be out of date.
    pub stale: bool,
    /// The node's registration.
    pub record: Option<&'a Registration>,
}

impl<'a> InventoryFromRegistry<'a> {
    /// The answer for a node the registry knows.
    pub fn seen(node: &'a muster_proto::registration::SeenNode, stale: bool) -> Self {
        InventoryFromRegistry {
            schema: INVENTORY_FROM_REGISTRY,
            source: "registry",
            identity: &node.identity,
            first_seen: Some(muster_proto::time::rfc3339(node.first_seen)),
            last_seen: Some(muster_proto::time::rfc3339(node.last_seen)),
            stale,
            record: node.record.as_ref(),
        }
    }

    /// The answer for `identity`, which the registry does not know.
    pub fn unknown(identity: &'a str) -> Self {
        InventoryFromRegistry {
            schema: INVENTORY_FROM_REGISTRY,
            source: "registry",
            identity,
            first_seen: None,
            last_seen: None,
            stale: false,
            record: None,
        }
    }
}

/// `rpc --no-results --json` ([`SENT`]): the request went out; its replies are read later
/// with `muster show ID`.
#[derive(Debug, Serialize)]
pub struct Sent<'a> {
    /// [`SENT`].
    pub schema: &'static str,
    /// The request's id.
    pub request_id: &'a str,
    /// Nodes expected, absent ones included.
    pub expected: usize,
    /// Nodes it was sent to.
    pub sent: usize,
}

impl<'a> Sent<'a> {
    /// The document of `sent`.
    pub fn new(sent: &'a SentRequest) -> Self {
        Sent {
            schema: SENT,
            request_id: &sent.request_id,
            expected: sent.expected,
            sent: sent.sent,
        }
    }
}

/// The failure of exits 2 and 5 ([`ERROR`]): `{"schema", "error": {"kind", "message"}}`.
#[derive(Debug, Serialize)]
pub struct Error<'a> {
    /// [`ERROR`].
    pub schema: &'static str,
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// What went wrong, in [`Error`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// `usage`, `config`, `invalid_input` or `broker_unreachable` (docs/design.md §3).
    pub kind: &'a str,
    /// The message people read on stderr.
    pub message: &'a str,
}

impl<'a> Error<'a> {
    /// The document of a failure of `kind`, saying `message`.
    pub fn new(kind: &'a str, message: &'a str) -> Self {
        Error {
            schema: ERROR,
            error: ErrorDetail { kind, message },
        }
    }
}

/// `find --json`: the identities of the matching nodes, as a JSON array of strings — the node
/// list `--nodes -` reads back. An array by contract (docs/design.md §4), so it has no
/// `schema` field.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Identities<'a>(pub &'a BTreeSet<String>);

/// `history --json`: the newest requests first, as a JSON array (see the module's doc for
/// why an array); each element is a [`HistoryEntry`].
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct History<'a>(pub Vec<HistoryEntry<'a>>);

impl<'a> History<'a> {
    /// The document of the journal's `entries`.
    pub fn new(entries: &'a [Entry]) -> Self {
        History(entries.iter().map(HistoryEntry::new).collect())
    }
}

/// One request of `history --json` ([`HISTORY_ENTRY`]).
#[derive(Debug, Serialize)]
pub struct HistoryEntry<'a> {
    /// [`HISTORY_ENTRY`].
    pub schema: &'static str,
    /// The request's id.
    pub request_id: &'a str,
    /// When it was sent, RFC 3339.
    pub time: String,
    /// The agent.
    pub agent: &'a str,
    /// The action.
    pub action: &'a str,
    /// The report's counts.
    pub stats: &'a muster_client::Stats,
    /// The request this one retried, if any.
    pub retry_of: Option<&'a str>,
    /// Sent with `--no-results`: the replies are in a registry, and `stats` has only the
    /// expected count.
    pub collected: bool,
}

impl<'a> HistoryEntry<'a> {
    /// The element of `entry`.
    pub fn new(entry: &'a Entry) -> Self {
        HistoryEntry {
            schema: HISTORY_ENTRY,
            request_id: &entry.report.request_id,
            time: muster_proto::time::rfc3339(entry.time),
            agent: &entry.report.agent,
            action: &entry.report.action,
            stats: &entry.report.stats,
            retry_of: entry.retry_of.as_deref(),
            collected: entry.collected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::report_of;
    use muster_client::facts::FactSummary;
    use muster_proto::registration::SeenNode;
    use serde_json::json;

    /// What `write` printed: one line, parsed.
    fn printed(document: &impl Serialize) -> (String, Value) {
        let mut out = Vec::new();
        write(&mut out, document).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text}");
        let value = serde_json::from_str(&text).unwrap();
        (text, value)
    }

    /// Every object starts with its `schema`.
    #[track_caller]
    fn starts_with_schema(document: &impl Serialize, schema: &str) -> Value {
        let (text, value) = printed(document);
        assert!(
            text.starts_with(&format!("{{\"schema\":\"{schema}\",")),
            "{text}"
        );
        value
    }

    #[test]
    fn a_report_is_the_report_with_its_schema_first() {
        let report = report_of(Vec::new(), Vec::new());
        let value = starts_with_schema(&Report::new(&report), REPORT);
        let mut without = value.clone();
        without.as_object_mut().unwrap().remove("schema");
        assert_eq!(without, serde_json::to_value(&report).unwrap());
        // `--nodes -` reads it back as a report.
        let back: muster_client::Report = serde_json::from_value(value).unwrap();
        assert_eq!(back, report);

        let summary = FactSummary::default().to_json("role");
        let value = starts_with_schema(&Facts::new(&report, summary.clone()), FACTS);
        assert_eq!(value["summary"], summary);
        assert_eq!(value["request_id"], report.request_id.as_str());
    }

    #[test]
    fn registry_answers_name_their_source() {
        let node = SeenNode {
            identity: "web1".into(),
            first_seen: 1.7e9,
            last_seen: 1.8e9,
            fact: None,
            record: None,
        };
        let view = RegistryView {
            fresh: Vec::new(),
            stale: vec![node.clone()],
        };
        let summary = FactSummary::default().to_json("role");
        let value =
            starts_with_schema(&FactsFromRegistry::new(&view, summary), FACTS_FROM_REGISTRY);
        assert_eq!(value["source"], "registry");
        assert_eq!(value["nodes"], 0);
        assert_eq!(
            value["stale"],
            json!([{"identity": "web1", "last_seen": "2027-01-15T08:00:00Z"}])
        );
        let value = starts_with_schema(
            &InventoryFromRegistry::seen(&node, true),
            INVENTORY_FROM_REGISTRY,
        );
        assert_eq!(value["first_seen"], "2023-11-14T22:13:20Z");
        assert_eq!(value["stale"], true);
        let value = starts_with_schema(
            &InventoryFromRegistry::unknown("db1"),
            INVENTORY_FROM_REGISTRY,
        );
        assert_eq!(
            value,
            json!({"schema": INVENTORY_FROM_REGISTRY, "source": "registry", "identity": "db1",
                   "first_seen": null, "last_seen": null, "stale": false, "record": null})
        );
    }

    #[test]
    fn sent_and_error_objects() {
        let sent = SentRequest {
            request_id: "r1".into(),
            expected: 3,
            sent: 2,
            warnings: Vec::new(),
        };
        let value = starts_with_schema(&Sent::new(&sent), SENT);
        assert_eq!(
            value,
            json!({"schema": SENT, "request_id": "r1", "expected": 3, "sent": 2})
        );
        let value = starts_with_schema(&Error::new("usage", "bad flag"), ERROR);
        assert_eq!(
            value,
            json!({"schema": ERROR, "error": {"kind": "usage", "message": "bad flag"}})
        );
    }

    #[test]
    fn find_and_history_are_arrays() {
        let nodes = BTreeSet::from(["web1".to_string(), "db1".to_string()]);
        let (text, _) = printed(&Identities(&nodes));
        assert_eq!(text, "[\"db1\",\"web1\"]\n");
        let entry = Entry {
            time: 1.8e9,
            data: json!({}),
            filter: muster_proto::Filter::default(),
            retry_of: Some("r0".into()),
            report: report_of(Vec::new(), Vec::new()),
            collected: false,
        };
        let entries = [entry];
        let (text, value) = printed(&History::new(&entries));
        assert!(
            text.starts_with("[{\"schema\":\"muster:history-entry:1\","),
            "{text}"
        );
        assert_eq!(value[0]["retry_of"], "r0");
        assert_eq!(value[0]["time"], "2027-01-15T08:00:00Z");
        assert_eq!(value[0]["stats"]["elapsed_ms"], 340);
    }
}
