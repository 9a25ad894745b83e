//! `muster facts FACT`: one fact summarised across the fleet, value → count — asked of the
//! nodes, or with `--from-registry` as they last registered.

use std::collections::BTreeMap;

use muster_client::{Call, ExitStatus, Outcome, aggregate};
use serde_json::{Value, json};

use crate::Failure;
use crate::args::FactsArgs;
use muster_proto::registration::RegistryQuery;

use crate::cmd::{Session, end_progress, no_match, progress};
use crate::render;

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
struct FactValues {
    /// By the value's JSON text (serde_json sorts object keys, so equal values share it).
    groups: BTreeMap<String, (Value, Vec<String>)>,
}

impl FactValues {
    fn add(&mut self, value: Value, node: String) {
        self.groups
            .entry(value.to_string())
            .or_insert_with(|| (value, Vec::new()))
            .1
            .push(node);
    }

    /// For people: values as [`value_label`] shows them, except that a string which would
    /// read like another value (the string "4" beside the number 4, the string "(missing)"
    /// beside nodes without the fact) is shown quoted, so no two groups share a line.
    fn labelled(&self) -> BTreeMap<String, Vec<String>> {
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
    fn summary_json(self, fact: &str) -> Value {
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

/// `--from-registry`: the values the nodes last registered, without asking them. Nodes not
/// seen within `--expect-seen` are named, their values left out, and the exit code is 3.
async fn from_registry(args: &FactsArgs, session: &Session) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    let mut query = RegistryQuery::new(session.filter.clone(), None);
    query.fact = Some(args.fact.clone());
    let found = session.registry_view(query).await?;
    if found.fresh.is_empty() && found.stale.is_empty() {
        if request.json {
            // Exit 4 with --json is the answer with zero nodes (docs/design.md §3).
            let object = json!({
                "source": "registry",
                "nodes": 0,
                "stale": [],
                "summary": FactValues::default().summary_json(&args.fact),
            });
            println!("{object}");
        }
        return Ok(no_match(request.json));
    }
    let mut values = FactValues::default();
    for node in &found.fresh {
        let value = node.fact.clone().unwrap_or(Value::Null);
        values.add(value, node.identity.clone());
    }
    let within = humantime::format_duration(session.config.expect_seen);
    if request.json {
        let object = json!({
            "source": "registry",
            "nodes": found.fresh.len(),
            "stale": found.stale_json(),
            "summary": values.summary_json(&args.fact),
        });
        println!("{object}");
    } else {
        render::fact_summary(&args.fact, &values.labelled(), request.verbose);
        println!(
            "From the registry: {} nodes as they last registered (seen within {within}).",
            found.fresh.len()
        );
        if !found.stale.is_empty() {
            println!(
                "Not seen within {within}, left out: {}",
                found.describe_stale()
            );
        }
    }
    Ok(if found.stale.is_empty() {
        ExitStatus::Ok
    } else {
        ExitStatus::Missing
    })
}

pub async fn run(args: FactsArgs) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    let session = request.connect().await?;
    if args.from_registry {
        return from_registry(&args, &session).await;
    }
    let expected = session.expected().await?;
    // Only when nothing answered at all is it "no match"; when every answer was ignored as
    // unverifiable the report, over no nodes, says so (exit 1).
    if expected.nothing_answered() {
        expected.notes(request.json);
        if request.json {
            // Exit 4 with --json is the report with zero nodes (docs/design.md §3).
            let report = crate::cmd::empty_report("rpcutil", "get_fact", &expected);
            let mut object = serde_json::to_value(&report).unwrap_or_default();
            object["summary"] = FactValues::default().summary_json(&args.fact);
            println!("{object}");
        }
        return Ok(session.no_match(request.json));
    }
    let nodes = &expected.nodes;
    let call = Call {
        data: json!({ "fact": args.fact }),
        ..Call::new("rpcutil", "get_fact")
    };
    let mut report = session
        .client
        .request(
            &call,
            nodes,
            &session.request_options(nodes.len()),
            expected.discovery_ms,
            &mut progress(request.json),
        )
        .await?;
    end_progress(request.json);
    expected.complete(&mut report);
    crate::cmd::journal::record(request, &call, &session.filter, None, &report);

    let mut values = FactValues::default();
    for reply in &report.replies {
        if reply.outcome == Outcome::Ok {
            values.add(reply.data["value"].clone(), reply.sender.clone());
        }
    }
    if request.json {
        let mut object = serde_json::to_value(&report).unwrap_or_default();
        object["summary"] = values.summary_json(&args.fact);
        println!("{object}");
    } else {
        render::fact_summary(&args.fact, &values.labelled(), request.verbose);
        // The per-node replies are summarised above; show only failures below.
        report.replies.retain(|r| r.outcome != Outcome::Ok);
        render::report(&report, crate::args::Display::Failed, None, request.verbose);
    }
    session.trust_notes(&report);
    Ok(report.exit_status())
}
