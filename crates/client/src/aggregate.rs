//! Aggregates: summaries of one output across the replies, as an action's DDL asks for them:
//! MCollective's and Choria's `summary`, `average`, `boolean_summary` and `sum`, and those
//! Choria's public agents ship — `nagios_states` (nrpe), `nettest_mma` (nettest),
//! `process_summary` (process) — computed as their plugins' `aggregate/*.rb` compute them.
//! A function the DDL names that is none of these is not computed (the DDL said so with a
//! warning when it loaded).
//!
//! Every function reads the successful replies, but `nagios_states`, which also reads those
//! that failed with status 1: the nrpe agent answers a WARNING or CRITICAL check that way.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use muster_proto::ddl::Action;
use serde_json::Value;

pub use crate::report::{AggregateResult, ProcessTotals, ValueCount};
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

/// The states `nagios_states` counts, by exit code; any other code is `UNKNOWN`.
const NAGIOS_STATES: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

/// Computes the action's aggregates over the report's replies.
pub fn compute(action: &Action, report: &Report) -> Vec<AggregateResult> {
    let ok: Vec<&Value> = report
        .replies
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .map(|r| &r.data)
        .collect();
    let ran: Vec<&Value> = report
        .replies
        .iter()
        .filter(|r| r.outcome == Outcome::Ok || (r.outcome == Outcome::Failed && r.statuscode == 1))
        .map(|r| &r.data)
        .collect();
    let mut results = Vec::new();
    for aggregate in &action.aggregate {
        let Some(output) = aggregate.output().filter(|_| aggregate.computed(action)) else {
            continue;
        };
        let label = action
            .output
            .get(output)
            .map_or_else(|| output.to_string(), |o| o.display_as.clone());
        let function = aggregate.function.as_str();
        let replies = if function == "nagios_states" {
            &ran
        } else {
            &ok
        };
        let values: Vec<&Value> = replies.iter().filter_map(|d| d.get(output)).collect();
        let numbers: Vec<f64> = values.iter().filter_map(|v| number(v)).collect();
        let format = aggregate
            .options()
            .and_then(|o| o.get("format"))
            .and_then(Value::as_str)
            .map(String::from);
        let mut result = AggregateResult {
            function: aggregate.function.clone(),
            output: output.to_string(),
            label,
            count: values.len(),
            counts: None,
            average: None,
            minimum: None,
            maximum: None,
            sum: None,
            processes: None,
            format: None,
        };
        match function {
            "summary" => {
                // A list counts each of its items, as MCollective's summary.rb does: a summary
                // of agents or collectives is nodes per agent or collective.
                let mut counts = Counter::default();
                for v in &values {
                    match v {
                        Value::Array(items) => items.iter().for_each(|i| counts.add(i.clone())),
                        other => counts.add((*other).clone()),
                    }
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
            "nagios_states" => {
                // Every state is listed, in this order, even at 0; a reply without the output
                // is UNKNOWN, as the plugin counts a missing exit code.
                let mut counts = [0usize; 4];
                for data in replies {
                    let state = data
                        .get(output)
                        .and_then(Value::as_u64)
                        .and_then(|code| usize::try_from(code).ok())
                        .filter(|code| *code < 4)
                        .unwrap_or(3);
                    counts[state] += 1;
                }
                result.count = replies.len();
                result.counts = Some(
                    NAGIOS_STATES
                        .iter()
                        .zip(counts)
                        .map(|(state, count)| ValueCount {
                            value: Value::String((*state).to_string()),
                            count,
                        })
                        .collect(),
                );
            }
            "average" => {
                result.count = numbers.len();
                result.average = mean(&numbers);
                result.format = format;
            }
            "sum" => {
                result.count = numbers.len();
                result.sum = Some(numbers.iter().sum());
                result.format = format;
            }
            "nettest_mma" => {
                result.count = numbers.len();
                result.minimum = numbers.iter().copied().reduce(f64::min);
                result.maximum = numbers.iter().copied().reduce(f64::max);
                result.average = mean(&numbers);
                result.format = format;
            }
            "process_summary" => {
                let mut totals = ProcessTotals::default();
                for list in values.iter().filter_map(|v| v.as_array()) {
                    if !list.is_empty() {
                        totals.hosts += 1;
                    }
                    for process in list {
                        let field = |key: &str| process.get(key).and_then(number).unwrap_or(0.0);
                        totals.processes += 1;
                        totals.rss_bytes = totals
                            .rss_bytes
                            .saturating_add(whole(field("rss")).saturating_mul(1024));
                        totals.vsize_bytes =
                            totals.vsize_bytes.saturating_add(whole(field("vsize")));
                    }
                }
                result.processes = Some(totals);
            }
            _ => continue,
        }
        results.push(result);
    }
    results
}

/// A number, or a string that reads as one (the plugins' `Float(value)`).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn mean(numbers: &[f64]) -> Option<f64> {
    (!numbers.is_empty()).then(|| numbers.iter().sum::<f64>() / numbers.len() as f64)
}

/// A count of bytes from a reported number: negative and fractional parts dropped.
fn whole(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        // `as` saturates at u64::MAX for larger values, which is what is wanted.
        n as u64
    } else {
        0
    }
}

/// Formats each `%…` conversion of a printf-style format with the next of `numbers`, as
/// [`format_number`] formats one; `%%` is a percent sign. A format with fewer conversions
/// than numbers shows the first ones; with more, the rest show as they are written.
pub fn format_numbers(format: &str, numbers: &[f64]) -> String {
    let mut out = String::new();
    let mut rest = format;
    let mut next = numbers.iter();
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
            continue;
        }
        let spec_len = after
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(after.len(), |i| i + 1);
        let spec = &after[..spec_len];
        match next.next() {
            Some(n) => out.push_str(&conversion(spec, *n)),
            None => {
                out.push('%');
                out.push_str(spec);
            }
        }
        rest = &after[spec_len..];
    }
    out.push_str(rest);
    out
}

/// One number as a conversion `spec` (the part after `%`) shows it.
fn conversion(spec: &str, n: f64) -> String {
    match spec.chars().last() {
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
    }
}

/// Bytes for people, as the process agent shows them (`bytes_to_human`): B, KB, MB, GB, TB
/// with three decimals (1024 to a step).
pub fn bytes_to_human(bytes: u64) -> String {
    if bytes == 0 {
        return "0 B".to_string();
    }
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.3} {}", units[unit])
}

/// Formats a number with a printf-style format holding one `%f`, `%.Nf`, `%0.Nf` or `%d`
/// (as Choria DDLs write them); without one, two decimals after the label.
pub fn format_number(format: Option<&str>, label: &str, n: f64) -> String {
    match format {
        None => format!("Average {label}: {n:.2}"),
        Some(format) if !format.contains('%') => format!("{format} {n:.2}"),
        Some(format) => format_numbers(format, &[n]),
    }
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
                    statuscode: d
                        .get("failed")
                        .and_then(Value::as_u64)
                        .map_or(0, |c| c as u8),
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
        let counts = pairs(&compute(&ddl.actions[0], &r)[0]);
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

    /// A result's counts as (value, count) pairs, in order.
    fn pairs(result: &AggregateResult) -> Vec<(Value, usize)> {
        result
            .counts
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| (c.value, c.count))
            .collect()
    }

    fn action(aggregate: Value, outputs: &[&str]) -> muster_proto::ddl::Action {
        let output: serde_json::Map<String, Value> = outputs
            .iter()
            .map(|o| (o.to_string(), json!({"display_as": o.to_uppercase()})))
            .collect();
        let text = json!({
            "metadata": {"name": "t", "description": "d", "version": "1", "timeout": 5},
            "actions": [{"action": "x", "description": "d", "output": output, "aggregate": [aggregate]}]
        })
        .to_string();
        let ddl = Ddl::parse(&text).unwrap();
        assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
        ddl.actions[0].clone()
    }

    /// nrpe's `nagios_states`, as its plugin's spec (`spec/aggregate/nagios_states_spec.rb`,
    /// choria-plugins/nrpe-agent at 2ad16f2) counts: every state listed, a missing exit code
    /// UNKNOWN; the agent answers WARNING and CRITICAL with status 1, and those count too.
    #[test]
    fn nagios_states_counts_every_state() {
        let a = action(
            json!({"function": "nagios_states", "args": ["exitcode"]}),
            &["exitcode"],
        );
        let r = report(&[
            json!({"exitcode": 0}),
            json!({"exitcode": 1, "failed": 1}),
            json!({"exitcode": 2, "failed": 1}),
            json!({"exitcode": 3, "failed": 1}),
            json!({"output": "no exit code"}),
            json!({"exitcode": 2, "failed": 5}),
        ]);
        let counts = pairs(&compute(&a, &r)[0]);
        assert_eq!(
            counts,
            [
                (json!("OK"), 1),
                (json!("WARNING"), 1),
                (json!("CRITICAL"), 1),
                (json!("UNKNOWN"), 2)
            ]
        );
        let none = compute(&a, &report(&[]));
        assert!(
            none[0]
                .counts
                .as_ref()
                .unwrap()
                .iter()
                .all(|c| c.count == 0)
        );
        assert_eq!(none[0].counts.as_ref().unwrap().len(), 4);
    }

    /// nettest's `nettest_mma` (`spec/aggregate/nettest_mma_spec.rb`, choria-plugins/
    /// nettest-agent at 9e6837a): minimum, maximum and mean of the numeric values, strings
    /// that read as numbers included, anything else skipped.
    #[test]
    fn nettest_mma_is_minimum_maximum_and_average() {
        let a = action(
            json!({"function": "nettest_mma", "args": ["rtt", {"format": "Min: %.3fms  Max: %.3fms  Average: %.3fms"}]}),
            &["rtt"],
        );
        let r = report(&[
            json!({"rtt": "5.0"}),
            json!({"rtt": 15.0}),
            json!({"rtt": "10.0"}),
            json!({"rtt": "rspec"}),
        ]);
        let result = &compute(&a, &r)[0];
        assert_eq!(
            (result.minimum, result.maximum, result.average),
            (Some(5.0), Some(15.0), Some(10.0))
        );
        assert_eq!(result.count, 3);
        assert_eq!(
            format_numbers(result.format.as_deref().unwrap(), &[5.0, 15.0, 10.0]),
            "Min: 5.000ms  Max: 15.000ms  Average: 10.000ms"
        );
    }

    /// process's `process_summary` (`spec/aggregate/process_summary_spec.rb`,
    /// choria-plugins/process-agent at 275eb98): hosts with a match, processes, and their
    /// sizes (`rss` in KiB).
    #[test]
    fn process_summary_adds_up_the_matches() {
        let a = action(
            json!({"function": "process_summary", "args": ["pslist"]}),
            &["pslist"],
        );
        let r = report(&[
            json!({"pslist": [{"rss": 1, "vsize": 100}, {"rss": 2, "vsize": 200}]}),
            json!({"pslist": []}),
        ]);
        let result = &compute(&a, &r)[0];
        assert_eq!(
            result.processes,
            Some(ProcessTotals {
                hosts: 1,
                processes: 2,
                rss_bytes: 3072,
                vsize_bytes: 300
            })
        );
        assert_eq!(bytes_to_human(3072), "3.000 KB");
        assert_eq!(bytes_to_human(0), "0 B");
        assert_eq!(bytes_to_human(300), "300.000 B");
        assert_eq!(bytes_to_human(5 << 40), "5.000 TB");
    }

    /// A summary of a list output counts each item (MCollective's `aggregate/summary.rb`
    /// `process_result`: `value.map{|val| add_value(val)}` for an Array).
    #[test]
    fn a_summary_of_lists_counts_each_item() {
        let a = action(
            json!({"function": "summary", "args": ["agents"]}),
            &["agents"],
        );
        let r = report(&[
            json!({"agents": ["rpcutil", "service"]}),
            json!({"agents": ["rpcutil"]}),
            json!({"agents": []}),
        ]);
        let counts = pairs(&compute(&a, &r)[0]);
        assert_eq!(counts, [(json!("rpcutil"), 2), (json!("service"), 1)]);
    }

    #[test]
    fn sums_and_functions_not_computed() {
        let a = action(json!({"function": "sum", "args": ["n"]}), &["n"]);
        let r = report(&[
            json!({"n": 2}),
            json!({"n": "3.5"}),
            json!({"n": 100, "failed": 1}),
        ]);
        assert_eq!(compute(&a, &r)[0].sum, Some(5.5));
        let text = json!({
            "metadata": {"name": "t", "description": "d", "version": "1", "timeout": 5},
            "actions": [{"action": "x", "description": "d", "output": {"n": {"display_as": "N"}},
                         "aggregate": [{"function": "chart", "args": ["n"]}, {"function": "summary", "args": ["gone"]}]}]
        })
        .to_string();
        let ddl = Ddl::parse(&text).unwrap();
        assert!(compute(&ddl.actions[0], &r).is_empty());
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
