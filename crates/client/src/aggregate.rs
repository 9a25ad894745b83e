//! Aggregates: summaries of one output across every successful reply, as an action's DDL
//! asks for them (`summary`, `average`, `boolean_summary`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use muster_proto::ddl::Action;
use serde_json::Value;

pub use crate::report::{AggregateResult, ValueCount};
use crate::report::{Outcome, Report};

/// Text for a value: strings as they are, `null` as `(none)`, anything else as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The order of values that are equally common: null, booleans, numbers (numerically),
/// strings, lists, objects; within a kind by their JSON text.
pub fn value_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    let numeric = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => Ordering::Equal,
    };
    rank(a)
        .cmp(&rank(b))
        .then(numeric)
        .then_with(|| a.to_string().cmp(&b.to_string()))
}

/// Counts values by the JSON value itself (serde_json sorts object keys, so equal values have
/// equal text).
#[derive(Default)]
struct Counter(BTreeMap<String, (Value, usize)>);

impl Counter {
    fn add(&mut self, value: Value) {
        self.0.entry(value.to_string()).or_insert((value, 0)).1 += 1;
    }

    /// Most common first, ties in [`value_order`].
    fn sorted(self) -> Vec<ValueCount> {
        let mut list: Vec<ValueCount> = self
            .0
            .into_values()
            .map(|(value, count)| ValueCount { value, count })
            .collect();
        list.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| value_order(&a.value, &b.value))
        });
        list
    }
}

/// Computes the action's aggregates over the report's successful replies.
pub fn compute(action: &Action, report: &Report) -> Vec<AggregateResult> {
    let ok: Vec<&Value> = report
        .replies
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .map(|r| &r.data)
        .collect();
    let mut results = Vec::new();
    for aggregate in &action.aggregate {
        let Some(output) = aggregate.output() else {
            continue;
        };
        let label = action
            .output
            .get(output)
            .map_or_else(|| output.to_string(), |o| o.display_as.clone());
        let values: Vec<&Value> = ok.iter().filter_map(|d| d.get(output)).collect();
        let mut result = AggregateResult {
            function: aggregate.function.clone(),
            output: output.to_string(),
            label,
            count: values.len(),
            counts: None,
            average: None,
            format: None,
        };
        match aggregate.function.as_str() {
            "summary" => {
                let mut counts = Counter::default();
                for v in &values {
                    counts.add((*v).clone());
                }
                result.counts = Some(counts.sorted());
            }
            "boolean_summary" => {
                let options = aggregate.options();
                let name = |key: &str| {
                    options
                        .and_then(|o| o.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or(key)
                        .to_string()
                };
                let mut counts = Counter::default();
                for v in &values {
                    counts.add(match v.as_bool() {
                        Some(true) => Value::String(name("true")),
                        Some(false) => Value::String(name("false")),
                        None => (*v).clone(),
                    });
                }
                result.counts = Some(counts.sorted());
            }
            "average" => {
                let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                result.count = numbers.len();
                if !numbers.is_empty() {
                    result.average = Some(numbers.iter().sum::<f64>() / numbers.len() as f64);
                }
                result.format = aggregate
                    .options()
                    .and_then(|o| o.get("format"))
                    .and_then(Value::as_str)
                    .map(String::from);
            }
            _ => continue,
        }
        results.push(result);
    }
    results
}

/// Formats a number with a printf-style format holding one `%f`, `%.Nf`, `%0.Nf` or `%d`
/// (as Choria DDLs write them); without one, two decimals after the label.
pub fn format_number(format: Option<&str>, label: &str, n: f64) -> String {
    let Some(format) = format else {
        return format!("Average {label}: {n:.2}");
    };
    let Some(start) = format.find('%') else {
        return format!("{format} {n:.2}");
    };
    let rest = &format[start + 1..];
    let spec_len = rest
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or(rest.len(), |i| i + 1);
    let spec = &rest[..spec_len];
    let text = match spec.chars().last() {
        Some('d') | Some('i') => format!("{}", n.round() as i64),
        Some('f') => {
            let precision = spec
                .trim_end_matches('f')
                .split('.')
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(6);
            format!("{n:.precision$}")
        }
        _ => format!("{n:.2}"),
    };
    let unescape = |s: &str| s.replace("%%", "%");
    format!(
        "{}{text}{}",
        unescape(&format[..start]),
        unescape(&rest[spec_len..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{NodeReply, Stats};
    use muster_proto::ddl::Ddl;
    use serde_json::json;

    fn report(data: &[Value]) -> Report {
        Report {
            request_id: "id".into(),
            agent: "a".into(),
            action: "x".into(),
            stats: Stats::default(),
            missing: vec![],
            replies: data
                .iter()
                .enumerate()
                .map(|(i, d)| NodeReply {
                    sender: format!("n{i}"),
                    outcome: if d.get("failed").is_some() {
                        Outcome::Failed
                    } else {
                        Outcome::Ok
                    },
                    statuscode: 0,
                    statusmsg: "OK".into(),
                    data: d.clone(),
                    ms: 1,
                })
                .collect(),
            aggregates: vec![],
            discovery: None,
            ignored: Vec::new(),
            lost: None,
        }
    }

    #[test]
    fn summaries_averages_and_booleans() {
        let ddl = Ddl::parse(
            &json!({
                "metadata": {"name": "t", "description": "d", "version": "1", "timeout": 5},
                "actions": [{"action": "x", "description": "d",
                    "output": {"v": {"display_as": "Version"}, "n": {"display_as": "N"},
                               "up": {"display_as": "Up"}},
                    "aggregate": [
                        {"function": "summary", "args": ["v"]},
                        {"function": "average", "args": ["n", {"format": "Mean: %0.1f units"}]},
                        {"function": "boolean_summary", "args": ["up", {"true": "running", "false": "stopped"}]}
                    ]}]
            })
            .to_string(),
        )
        .unwrap();
        let r = report(&[
            json!({"v": "3.0.2", "n": 1, "up": true}),
            json!({"v": "3.0.2", "n": 2, "up": false}),
            json!({"v": "1.1.1", "n": 6, "up": true}),
            json!({"v": "9.9.9", "n": 100, "failed": true}),
        ]);
        let results = compute(&ddl.actions[0], &r);
        assert_eq!(
            results[0].counts.as_deref().unwrap(),
            [
                ValueCount {
                    value: json!("3.0.2"),
                    count: 2
                },
                ValueCount {
                    value: json!("1.1.1"),
                    count: 1
                }
            ]
        );
        assert_eq!(results[0].label, "Version");
        assert_eq!(results[1].average, Some(3.0));
        assert_eq!(
            format_number(results[1].format.as_deref(), &results[1].label, 3.0),
            "Mean: 3.0 units"
        );
        assert_eq!(
            results[2].counts.as_deref().unwrap(),
            [
                ValueCount {
                    value: json!("running"),
                    count: 2
                },
                ValueCount {
                    value: json!("stopped"),
                    count: 1
                }
            ]
        );
    }

    /// A summary keeps each value's JSON type: 4 and "4" are counted apart, null stays null.
    #[test]
    fn summaries_keep_value_types() {
        let ddl = Ddl::parse(
            &json!({
                "metadata": {"name": "t", "description": "d", "version": "1", "timeout": 5},
                "actions": [{"action": "x", "description": "d",
                    "output": {"v": {"display_as": "V"}},
                    "aggregate": [{"function": "summary", "args": ["v"]}]}]
            })
            .to_string(),
        )
        .unwrap();
        let r = report(&[
            json!({"v": 10}),
            json!({"v": 9}),
            json!({"v": 9}),
            json!({"v": "9"}),
            json!({"v": null}),
            json!({"v": true}),
            json!({"v": {"b": 1, "a": 2}}),
            json!({"v": {"a": 2, "b": 1}}),
        ]);
        let counts: Vec<(Value, usize)> = compute(&ddl.actions[0], &r)[0]
            .counts
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| (c.value, c.count))
            .collect();
        assert_eq!(
            counts,
            [
                (json!(9), 2),
                (json!({"a": 2, "b": 1}), 2),
                (json!(null), 1),
                (json!(true), 1),
                (json!(10), 1),
                (json!("9"), 1),
            ]
        );
    }

    #[test]
    fn number_formats() {
        let cases = [
            (Some("Average: %0.2f"), 1.2345, "Average: 1.23"),
            (Some("%d seconds"), 2.6, "3 seconds"),
            (Some("%.0f s"), 2.4, "2 s"),
            (Some("Average use: %.1f%%"), 11.94, "Average use: 11.9%"),
            (Some("no spec"), 1.0, "no spec 1.00"),
            (None, 1.5, "Average Up: 1.50"),
        ];
        for (format, n, expected) in cases {
            assert_eq!(format_number(format, "Up", n), expected);
        }
    }
}
