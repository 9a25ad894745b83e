//! One fact summarised across the fleet (`muster facts FACT`): value → the nodes that had it,
//! from the nodes' replies or from what a registry holds.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::aggregate;
use crate::report::{Outcome, Report};

/// How a fact's value is shown and grouped: strings as they are, anything else as JSON, and a
/// node without the fact as `(missing)`.
pub fn value_label(value: &Value) -> String {
    match value {
        Value::Null => "(missing)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The nodes that had each value of a fact, grouped by the JSON value itself: the number 4
/// and the string "4" are two values, and a node without the fact (`null`) is not a node
/// whose value is the string "(missing)".
#[derive(Debug, Default)]
pub struct FactSummary {
    /// By the value's JSON text (serde_json sorts object keys, so equal values share it).
    groups: BTreeMap<String, (Value, Vec<String>)>,
}

impl FactSummary {
    /// Adds `node`, which had `value`.
    pub fn add(&mut self, value: Value, node: String) {
        self.groups
            .entry(value.to_string())
            .or_insert_with(|| (value, Vec::new()))
            .1
            .push(node);
    }

    /// For people: values as [`value_label`] shows them, except that a string which would
    /// read like another value (the string "4" beside the number 4, the string "(missing)"
    /// beside nodes without the fact) is shown quoted, so no two groups share a line.
    pub fn labelled(&self) -> BTreeMap<String, Vec<String>> {
        let mut uses: BTreeMap<String, usize> = BTreeMap::new();
        for (value, _) in self.groups.values() {
            *uses.entry(value_label(value)).or_default() += 1;
        }
        let mut labelled: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (value, nodes) in self.groups.values() {
            let label = value_label(value);
            let label = match value {
                Value::String(_) if uses.get(&label).is_some_and(|n| *n > 1) => value.to_string(),
                _ => label,
            };
            labelled
                .entry(label)
                .or_default()
                .extend(nodes.iter().cloned());
        }
        labelled
    }

    /// The `summary` object of `--json`: each value with its JSON type, most common first
    /// (ties in [`aggregate::value_order`]); a node without the fact is the value `null`, and
    /// `missing` counts those nodes.
    pub fn to_json(self, fact: &str) -> Value {
        let mut rows: Vec<(Value, Vec<String>)> = self.groups.into_values().collect();
        rows.sort_by(|a, b| {
            b.1.len()
                .cmp(&a.1.len())
                .then_with(|| aggregate::value_order(&a.0, &b.0))
        });
        let missing = rows.iter().find(|r| r.0.is_null()).map_or(0, |r| r.1.len());
        let values: Vec<Value> = rows
            .into_iter()
            .map(|(value, nodes)| json!({"value": value, "count": nodes.len(), "nodes": nodes}))
            .collect();
        json!({ "fact": fact, "values": values, "missing": missing })
    }
}

impl FactSummary {
    /// The values the nodes last registered, as a registry answered for one fact (a node
    /// without it is `null`).
    pub fn of_registry(nodes: &[muster_proto::registration::SeenNode]) -> Self {
        let mut values = FactSummary::default();
        for node in nodes {
            values.add(
                node.fact.clone().unwrap_or(Value::Null),
                node.identity.clone(),
            );
        }
        values
    }

    /// The values of a finished `rpcutil get_fact` request: the `value` output of every node
    /// that replied with success.
    pub fn of_report(report: &Report) -> Self {
        let mut values = FactSummary::default();
        for reply in &report.replies {
            if reply.outcome == Outcome::Ok {
                values.add(reply.data["value"].clone(), reply.sender.clone());
            }
        }
        values
    }
}
