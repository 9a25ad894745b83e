//! Node lists (`--nodes FILE|-`): one identity per line, or any JSON document Muster prints
//! that names nodes, so commands compose (`muster rpc … --json | muster ping --nodes -`):
//!
//! - an array of identities (`muster find --json`);
//! - a report (`--json` of `ping`, `rpc`, `facts`, `inventory`, `retry`, `show`): its expected
//!   nodes — every node in `missing`, and every node in `replies` that was expected — or, with
//!   [`FromReport`] choices (`--nodes-from`), only the nodes with those outcomes;
//! - a registry's answer (`facts --from-registry --json`: every node it names, recent or
//!   stale; `inventory --from-registry --json`: its node).

use std::collections::BTreeSet;

use muster_proto::subject;
use serde_json::Value;

use crate::connection::ClientError;
use crate::report::{Outcome, Report};

/// Which nodes of a report a node list takes (`--nodes-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromReport {
    /// Every expected node: replied or missing (the default).
    Expected,
    /// Every node the report names: the expected ones and the unexpected repliers.
    All,
    /// Replied with status 0.
    Ok,
    /// Replied with a failure.
    Failed,
    /// Did not reply: `timeout`, `no_reply` and `not_connected`.
    Missing,
    /// Acknowledged but did not reply in time.
    Timeout,
    /// Nothing at all.
    NoReply,
    /// Not connected.
    NotConnected,
    /// Replied without being expected.
    Unexpected,
}

impl FromReport {
    fn takes(self, outcome: Outcome) -> bool {
        match self {
            FromReport::Expected => outcome != Outcome::Unexpected,
            FromReport::All => true,
            FromReport::Ok => outcome == Outcome::Ok,
            FromReport::Failed => outcome == Outcome::Failed,
            FromReport::Missing => matches!(
                outcome,
                Outcome::Timeout | Outcome::NoReply | Outcome::NotConnected
            ),
            FromReport::Timeout => outcome == Outcome::Timeout,
            FromReport::NoReply => outcome == Outcome::NoReply,
            FromReport::NotConnected => outcome == Outcome::NotConnected,
            FromReport::Unexpected => outcome == Outcome::Unexpected,
        }
    }
}

/// What a node list may be, for error messages.
const EXPECTED: &str = "one identity per line, or the JSON of `muster find --json` (an array \
     of identities), of a report (`--json` of ping, rpc, facts, inventory, retry or show) or of \
     `facts`/`inventory --from-registry --json`";

/// Parses a node list. Blank lines and `#` comments are skipped. `from` chooses which nodes
/// of a report are taken (empty: the expected ones); it is refused for anything but a report.
pub fn parse(
    text: &str,
    source: &str,
    from: &[FromReport],
) -> Result<BTreeSet<String>, ClientError> {
    let fail = |message: String| ClientError::NodeList {
        path: source.to_string(),
        message,
    };
    let trimmed = text.trim_start();
    let (names, is_report): (Vec<String>, bool) = if trimmed.starts_with(['[', '{']) {
        let document: Value = serde_json::from_str(trimmed)
            .map_err(|e| fail(format!("it looks like JSON but is not valid JSON: {e}")))?;
        from_json(&document, from).map_err(fail)?
    } else {
        let names = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        (names, false)
    };
    if !is_report && !from.is_empty() {
        return Err(fail(
            "--nodes-from picks nodes of a report by their outcome, and this is a plain list \
             of identities; leave out --nodes-from"
                .into(),
        ));
    }
    let mut set = BTreeSet::new();
    for (i, name) in names.into_iter().enumerate() {
        subject::check_identity(&name).map_err(|e| fail(format!("entry {}: {e}", i + 1)))?;
        set.insert(name);
    }
    Ok(set)
}

/// The identities a JSON document names, and whether it was a report.
fn from_json(document: &Value, from: &[FromReport]) -> Result<(Vec<String>, bool), String> {
    match document {
        Value::Array(items) => {
            let names = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_str().map(String::from).ok_or_else(|| {
                        format!(
                            "entry {} of the JSON array is {item}, not an identity; a node list \
                             is {EXPECTED}",
                            i + 1
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok((names, false))
        }
        Value::Object(object)
            if object.contains_key("replies") || object.contains_key("missing") =>
        {
            let report: Report = serde_json::from_value(document.clone())
                .map_err(|e| format!("it looks like a report but is not one: {e}"))?;
            Ok((from_report(&report, from), true))
        }
        Value::Object(object)
            if object.get("source").and_then(Value::as_str) == Some("registry") =>
        {
            from_registry_answer(document).map(|names| (names, false))
        }
        Value::Object(object)
            if object.contains_key("request_id") && object.contains_key("sent") =>
        {
            Err(
                "this is what `rpc --no-results --json` prints, which names no nodes; \
                 `muster show ID --json` prints the request's report, which does"
                    .into(),
            )
        }
        _ => Err(format!(
            "this JSON document names no nodes in a way Muster knows; a node list is {EXPECTED}"
        )),
    }
}

/// The nodes of a report with the chosen outcomes.
fn from_report(report: &Report, from: &[FromReport]) -> Vec<String> {
    let from = if from.is_empty() {
        &[FromReport::Expected][..]
    } else {
        from
    };
    let takes = |outcome| from.iter().any(|f| f.takes(outcome));
    let missing = report
        .missing
        .iter()
        .filter(|m| takes(m.outcome))
        .map(|m| m.identity.clone());
    let replies = report
        .replies
        .iter()
        .filter(|r| takes(r.outcome))
        .map(|r| r.sender.clone());
    missing.chain(replies).collect()
}

/// The nodes a registry's answer names: `facts --from-registry` (its values' nodes and the
/// stale ones) or `inventory --from-registry` (its one node).
fn from_registry_answer(document: &Value) -> Result<Vec<String>, String> {
    let bad = || {
        format!(
            "it looks like a registry's answer but names its nodes in no way Muster prints; a \
             node list is {EXPECTED}"
        )
    };
    if let Some(identity) = document.get("identity") {
        return identity
            .as_str()
            .map(|i| vec![i.to_string()])
            .ok_or_else(bad);
    }
    let mut names = Vec::new();
    let values = document
        .pointer("/summary/values")
        .and_then(Value::as_array)
        .ok_or_else(bad)?;
    for value in values {
        let nodes = value["nodes"].as_array().ok_or_else(bad)?;
        for node in nodes {
            names.push(node.as_str().ok_or_else(bad)?.to_string());
        }
    }
    for stale in document["stale"].as_array().into_iter().flatten() {
        names.push(stale["identity"].as_str().ok_or_else(bad)?.to_string());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(set: BTreeSet<String>) -> Vec<String> {
        set.into_iter().collect()
    }

    #[test]
    fn lines_and_json() {
        let set = parse("web1\n\n# c\n web2 \nweb1\n", "f", &[]).unwrap();
        assert_eq!(names(set), ["web1", "web2"]);
        let set = parse("[\"a\", \"b.example\"]", "f", &[]).unwrap();
        assert_eq!(set.len(), 2);
        assert!(parse("", "f", &[]).unwrap().is_empty());
        let err = parse("ok\nbad name\n", "list.txt", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("list.txt") && err.contains("entry 2"), "{err}");
        let err = parse("[1,2]", "f", &[]).unwrap_err().to_string();
        assert!(
            err.contains("entry 1") && err.contains("find --json"),
            "{err}"
        );
    }

    fn report() -> String {
        json!({
            "request_id": "r", "agent": "rpcutil", "action": "ping",
            "stats": {"expected": 5, "responded": 2, "ok": 1, "failed": 1, "missing": 3,
                      "unexpected": 1, "discovery_ms": 0, "elapsed_ms": 1},
            "missing": [{"identity": "t1", "outcome": "timeout"},
                        {"identity": "n1", "outcome": "no_reply"},
                        {"identity": "c1", "outcome": "not_connected", "last_seen": "x"}],
            "replies": [{"sender": "ok1", "outcome": "ok", "statuscode": 0, "statusmsg": "OK",
                         "data": {}, "ms": 1},
                        {"sender": "f1", "outcome": "failed", "statuscode": 2,
                         "statusmsg": "no", "data": {}, "ms": 1},
                        {"sender": "u1", "outcome": "unexpected", "statuscode": 0,
                         "statusmsg": "OK", "data": {}, "ms": 1}],
            "aggregates": [],
            "summary": {"fact": "x", "values": [], "missing": 0}
        })
        .to_string()
    }

    #[test]
    fn a_report_yields_its_expected_nodes_or_the_outcomes_chosen() {
        use FromReport::*;
        let cases: [(&[FromReport], &[&str]); 8] = [
            (&[], &["c1", "f1", "n1", "ok1", "t1"]),
            (&[Expected], &["c1", "f1", "n1", "ok1", "t1"]),
            (&[All], &["c1", "f1", "n1", "ok1", "t1", "u1"]),
            (&[Ok], &["ok1"]),
            (&[Failed, Missing], &["c1", "f1", "n1", "t1"]),
            (&[Timeout, NoReply], &["n1", "t1"]),
            (&[NotConnected], &["c1"]),
            (&[Unexpected], &["u1"]),
        ];
        for (from, want) in cases {
            assert_eq!(
                names(parse(&report(), "-", from).unwrap()),
                want,
                "{from:?}"
            );
        }
    }

    #[test]
    fn registry_answers_name_their_nodes() {
        let facts = json!({"source": "registry", "nodes": 2,
            "stale": [{"identity": "old1", "last_seen": "t"}],
            "summary": {"fact": "role", "values": [
                {"value": "web", "count": 2, "nodes": ["web1", "web2"]},
                {"value": null, "count": 1, "nodes": ["db1"]}], "missing": 1}});
        let set = parse(&facts.to_string(), "-", &[]).unwrap();
        assert_eq!(names(set), ["db1", "old1", "web1", "web2"]);
        let inventory = json!({"source": "registry", "identity": "web1", "first_seen": "a",
            "last_seen": "b", "stale": false, "record": {}});
        let set = parse(&inventory.to_string(), "-", &[]).unwrap();
        assert_eq!(names(set), ["web1"]);
    }

    #[test]
    fn other_documents_are_refused_saying_what_is_expected() {
        let cases = [
            (json!({"a": 1}).to_string(), "find --json"),
            (json!([{"request_id": "x"}]).to_string(), "not an identity"),
            (
                json!({"request_id": "x", "expected": 2, "sent": 2}).to_string(),
                "muster show ID --json",
            ),
            (json!({"replies": 3}).to_string(), "looks like a report"),
            ("{\"replies\": ".to_string(), "not valid JSON"),
            (
                json!({"source": "registry"}).to_string(),
                "registry's answer",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(&text, "nodes.json", &[]).unwrap_err().to_string();
            assert!(
                err.contains("nodes.json") && err.contains(needle),
                "{text}: {err}"
            );
        }
        let err = parse("web1\n", "f", &[FromReport::Failed])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--nodes-from"), "{err}");
        let err = parse("[\"web1\"]", "f", &[FromReport::Ok])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--nodes-from"), "{err}");
    }
}
