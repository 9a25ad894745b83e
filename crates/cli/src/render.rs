//! Everything the CLI prints for people, and the one JSON object it prints for programs.

use std::collections::BTreeMap;
use std::time::SystemTime;

use muster_client::aggregate::{AggregateResult, format_number, value_text};
use muster_client::{
    DiscoveryFailure, DiscoveryInfo, DiscoveryMethod, Ignored, Missing, NodeReply, Outcome, Report,
};
use muster_proto::ddl::Action;
use serde_json::Value;

use crate::args::Display;

/// The report as exactly one JSON object on stdout (docs/design.md §3).
pub fn json(report: &Report) {
    println!("{}", serde_json::to_string(report).unwrap_or_default());
}

fn width(names: impl Iterator<Item = usize>) -> usize {
    names.max().unwrap_or(0).clamp(8, 40)
}

/// One line per node that answered a ping — its time, or for a failure (a denial) its status,
/// never a time, as it did not answer the ping — then the summary.
pub fn ping(report: &Report, verbose: bool) {
    let w = width(report.replies.iter().map(|r| r.sender.len()));
    for reply in &report.replies {
        let tag = if reply.outcome == Outcome::Unexpected {
            "  (unexpected)"
        } else {
            ""
        };
        if reply.statuscode != 0 {
            println!(
                "{:<w$}  FAILED (status {}): {}{tag}",
                reply.sender, reply.statuscode, reply.statusmsg
            );
            continue;
        }
        let time = match reply.ms {
            0 => "<1".to_string(),
            ms => ms.to_string(),
        };
        println!("{:<w$}  time={time} ms{tag}", reply.sender);
    }
    println!();
    summary(report, verbose);
}

/// Per-node replies as `display` says (outputs labelled by the action's DDL, when known), the
/// aggregates, then the summary.
pub fn report(report: &Report, display: Display, action: Option<&Action>, verbose: bool) {
    let shown: Vec<&NodeReply> = report
        .replies
        .iter()
        .filter(|r| match display {
            Display::All => true,
            Display::Ok => r.outcome == Outcome::Ok,
            Display::Failed => r.outcome != Outcome::Ok,
            Display::None => false,
        })
        .collect();
    for reply in &shown {
        node_reply(reply, action, verbose);
    }
    if !shown.is_empty() {
        println!();
    }
    aggregates(&report.aggregates);
    summary(report, verbose);
}

/// The aggregates: value counts, averages.
pub fn aggregates(results: &[AggregateResult]) {
    for result in results {
        match (&result.counts, result.average) {
            // Nothing to summarise (no node replied with the output): no empty heading.
            (Some(counts), _) if counts.is_empty() => {}
            (Some(counts), _) => {
                println!("Summary of {}:", result.label);
                println!();
                // A string that would read like another value (the string "4" beside the
                // number 4) is shown quoted, so no two lines look the same.
                let plain: Vec<String> = counts.iter().map(|c| value_text(&c.value)).collect();
                let texts: Vec<String> = counts
                    .iter()
                    .zip(&plain)
                    .map(|(c, text)| {
                        let shared = plain.iter().filter(|t| *t == text).count() > 1;
                        match &c.value {
                            Value::String(_) if shared => c.value.to_string(),
                            _ => text.clone(),
                        }
                    })
                    .collect();
                let w = width(texts.iter().map(|t| t.chars().count()));
                for (c, text) in counts.iter().zip(&texts) {
                    let noun = if c.count == 1 { "node" } else { "nodes" };
                    println!("   {text:<w$}  {} {noun}", c.count);
                }
                println!();
            }
            (None, Some(average)) => {
                println!(
                    "{} ({} nodes)",
                    format_number(result.format.as_deref(), &result.label, average),
                    result.count
                );
                println!();
            }
            (None, None) => {}
        }
    }
}

fn node_reply(reply: &NodeReply, action: Option<&Action>, verbose: bool) {
    let timing = if verbose {
        format!("  ({} ms)", reply.ms)
    } else {
        String::new()
    };
    match reply.outcome {
        Outcome::Ok => println!("{}{timing}", reply.sender),
        Outcome::Unexpected => println!(
            "{} (unexpected: not in the expected set){timing}: {}",
            reply.sender, reply.statusmsg
        ),
        _ => println!(
            "{}{timing}: FAILED (status {}): {}",
            reply.sender, reply.statuscode, reply.statusmsg
        ),
    }
    let mut lines = Vec::new();
    match (action, reply.data.as_object()) {
        (Some(action), Some(data)) => {
            // The DDL's outputs first, in its order and with its labels; anything else after.
            for (name, output) in &action.output {
                if let Some(value) = data.get(name) {
                    flatten_labelled(&output.display_as, value, &mut lines);
                }
            }
            for (name, value) in data {
                if !action.output.contains_key(name) {
                    flatten_labelled(name, value, &mut lines);
                }
            }
        }
        _ => flatten("", &reply.data, &mut lines),
    }
    let w = width(lines.iter().map(|(k, _)| k.chars().count()));
    for (key, value) in lines {
        println!("    {key:>w$}: {value}");
    }
}

fn flatten_labelled(label: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if map.is_empty() => out.push((label.to_string(), "{}".to_string())),
        Value::Null => out.push((label.to_string(), "(none)".to_string())),
        _ => flatten(label, value, out),
    }
}

/// Nested JSON as `dotted.path: value` lines (the paths filters use).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Object(_) if prefix.is_empty() => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let words: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), String::from))
                .collect();
            out.push((prefix.to_string(), words.join(", ")));
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `Finished …` and, when anything is missing or failed, the names.
pub fn summary(report: &Report, verbose: bool) {
    let s = &report.stats;
    let mut parts = vec![format!("{} ok", s.ok)];
    if s.failed > 0 {
        parts.push(format!("{} failed", s.failed));
    }
    if s.missing > 0 {
        parts.push(format!("{} did not respond", s.missing));
    }
    if s.unexpected > 0 {
        parts.push(format!("{} unexpected", s.unexpected));
    }
    if s.expected == 0 && !report.ignored.is_empty() {
        // Answers came, but none could be verified (exit 1): the lines below say why.
        println!("No node is expected: no answer could be verified.");
    } else {
        println!(
            "Finished {} of {} nodes in {} ms: {}",
            s.responded,
            s.expected,
            s.elapsed_ms,
            parts.join(", ")
        );
    }
    if verbose {
        println!(
            "Request {} ({} {}), discovery {} ms",
            report.request_id, report.agent, report.action, s.discovery_ms
        );
    }
    let failed: Vec<(String, String)> = report
        .replies
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .map(|r| {
            let status = muster_proto::StatusCode::try_from(r.statuscode)
                .map_or("unknown status", |s| s.message());
            (r.sender.clone(), status.to_string())
        })
        .collect();
    if failed.len() > LISTED && !verbose {
        grouped("Failed", failed);
    } else if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        println!("Failed: {}", names.join("  "));
    }
    if report.missing.len() > LISTED && !verbose {
        let missing = report
            .missing
            .iter()
            .map(|m| (m.identity.clone(), m.outcome.describe().to_string()))
            .collect();
        grouped("Did not respond", missing);
    } else if !report.missing.is_empty() {
        let names: Vec<String> = report.missing.iter().map(missing).collect();
        println!("Did not respond: {}", names.join("  "));
    }
    for line in notes(report) {
        println!("{line}");
    }
}

/// At most this many names per reason in a list for people; `-v` and `--json` have them all.
const LISTED: usize = 20;

/// `1,500`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A long list of `(node, reason)` as one heading and one line per reason, most common first,
/// each naming at most [`LISTED`] nodes: a fleet's worth of names on one line helps nobody.
fn grouped(heading: &str, nodes: Vec<(String, String)>) {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let total = nodes.len();
    for (node, why) in nodes {
        by.entry(why).or_default().push(node);
    }
    let mut groups: Vec<(String, Vec<String>)> = by.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    println!("{heading}: {} nodes", thousands(total));
    for (why, mut names) in groups {
        names.sort();
        let count = names.len();
        let shown = names
            .iter()
            .take(LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let rest = if count > LISTED {
            format!(
                " … ({} more: use --json or -v for all)",
                thousands(count - LISTED)
            )
        } else {
            String::new()
        };
        println!("  {} {why}: {shown}{rest}", thousands(count));
    }
}

fn nodes(n: usize) -> String {
    format!("{} {}", thousands(n), if n == 1 { "node" } else { "nodes" })
}

/// What the counts above cannot say: nodes that denied the request, nodes that answered
/// discovery with a failure, answers that could not be verified, and what broadcast
/// discovery cannot see. One line each.
pub fn notes(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    let denied = report.replies.iter().filter(|r| r.statuscode == 6).count();
    if denied > 0 {
        lines.push(format!(
            "{} denied {} {}: not authorized — see the node's audit log",
            nodes(denied),
            report.agent,
            report.action
        ));
    }
    // Discovery failures of nodes whose answer to the request itself says no more (the
    // discovery of `muster ping` is the request: its denials are counted above).
    let said = |identity: &str| {
        report
            .replies
            .iter()
            .any(|r| r.sender == identity && r.statuscode != 0)
    };
    let failed: Vec<&DiscoveryFailure> = report
        .discovery
        .iter()
        .flat_map(|d| &d.failed)
        .filter(|f| !said(&f.identity))
        .collect();
    lines.extend(discovery_failures(
        &failed,
        "they matched the filter, so they were sent the request",
    ));
    lines.extend(ignored(&report.ignored));
    if let Some(info) = &report.discovery {
        lines.extend(broadcast_notice(info));
    }
    lines
}

/// Nodes that answered discovery with a failure, one line per status; `then` says what
/// became of them.
pub fn discovery_failures(failed: &[&DiscoveryFailure], then: &str) -> Vec<String> {
    let mut by: BTreeMap<u8, usize> = BTreeMap::new();
    for f in failed {
        *by.entry(f.statuscode).or_default() += 1;
    }
    by.into_iter()
        .map(|(code, count)| match code {
            6 => format!(
                "{} denied rpcutil ping (discovery): not authorized — see the node's audit log; \
                 {then}",
                nodes(count)
            ),
            code => {
                let status = muster_proto::StatusCode::try_from(code)
                    .map_or("unknown status", |s| s.message());
                format!(
                    "{} answered rpcutil ping (discovery) with status {code} ({status}); {then}",
                    nodes(count)
                )
            }
        })
        .collect()
}

/// `3 replies ignored: not signed by the configured issuer`, one line per reason.
pub fn ignored(list: &[Ignored]) -> Vec<String> {
    let plural = |n: usize, one: &str, many: &str| {
        format!("{} {}", thousands(n), if n == 1 { one } else { many })
    };
    list.iter()
        .map(|i| match (i.replies, i.acks) {
            (0, acks) => format!(
                "{} ignored: {}",
                plural(acks, "acknowledgement", "acknowledgements"),
                i.message
            ),
            (replies, 0) => format!(
                "{} ignored: {}",
                plural(replies, "reply", "replies"),
                i.message
            ),
            (replies, acks) => format!(
                "{} ignored: {} (and {})",
                plural(replies, "reply", "replies"),
                i.message,
                plural(acks, "acknowledgement", "acknowledgements")
            ),
        })
        .collect()
}

/// The one line saying what broadcast discovery alone cannot see.
pub fn broadcast_notice(info: &DiscoveryInfo) -> Option<String> {
    match (info.method, info.quiet_ms) {
        (DiscoveryMethod::Broadcast, Some(quiet)) => Some(format!(
            "Expected set from broadcast discovery (quiet window {quiet} ms): nodes that are \
             down or answered late are not seen; a registry (--dm registry) or a node list \
             (--nodes) makes them visible"
        )),
        _ => None,
    }
}

/// When the report being shown was made, when it is not now (`muster show`): last-seen times
/// are then told relative to it, so a report shown later reads as it did.
static SENT: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();

/// Shows last-seen times relative to `sent` (Unix seconds) instead of now. `sent` may come
/// from a registry (a collected job's `time`): the conversion is proto's total one.
pub fn as_of(sent: f64) {
    let _ = SENT.set(muster_proto::time::system_time(sent));
}

fn missing(m: &Missing) -> String {
    let mut why = m.outcome.describe().to_string();
    if let Some(seen) = &m.last_seen {
        let when = match SENT.get() {
            Some(sent) => format!("{} before the request", since(seen, *sent)),
            None => format!("{} ago", since(seen, SystemTime::now())),
        };
        why.push_str(&format!(", last seen {when}"));
    }
    format!("{} ({why})", m.identity)
}

/// `4m ago` from an RFC 3339 time.
#[cfg(test)]
fn ago(rfc3339: &str) -> String {
    match humantime::parse_rfc3339_weak(rfc3339) {
        Ok(_) => format!("{} ago", since(rfc3339, SystemTime::now())),
        Err(_) => rfc3339.to_string(),
    }
}

/// `4m` from an RFC 3339 time to `now` (the time itself when it does not parse).
fn since(rfc3339: &str, now: SystemTime) -> String {
    let Ok(then) = humantime::parse_rfc3339_weak(rfc3339) else {
        return rfc3339.to_string();
    };
    let secs = now.duration_since(then).map(|d| d.as_secs()).unwrap_or(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// The value → nodes table of `muster facts`, most common value first.
pub fn fact_summary(fact: &str, values: &BTreeMap<String, Vec<String>>, verbose: bool) {
    let mut rows: Vec<(&String, &Vec<String>)> = values.iter().collect();
    rows.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    println!("Report for fact: {fact}");
    println!();
    let w = width(rows.iter().map(|(v, _)| v.chars().count()));
    for (value, nodes) in rows {
        let count = nodes.len();
        let noun = if count == 1 { "node" } else { "nodes" };
        println!("  {value:<w$}  found {count} {noun}");
        if verbose {
            for chunk in nodes.chunks(6) {
                println!("      {}", chunk.join(" "));
            }
        }
    }
    println!();
}

/// One node's inventory.
pub fn inventory(data: &Value) {
    let list = |key: &str| -> String {
        data[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    println!(
        "Inventory for {}:",
        data["identity"].as_str().unwrap_or("?")
    );
    println!();
    println!(
        "   Version:     {}",
        data["version"].as_str().unwrap_or("?")
    );
    println!("   Agents:      {}", list("agents"));
    println!("   Collectives: {}", list("collectives"));
    println!("   Classes:     {}", list("classes"));
    println!("   Facts:");
    let mut lines = Vec::new();
    flatten("", &data["facts"], &mut lines);
    let w = width(lines.iter().map(|(k, _)| k.len()));
    for (key, value) in lines {
        println!("      {key:<w$} = {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"os": {"family": "Debian", "release": 12}, "tags": ["a", 1], "e": {}}),
            &mut out,
        );
        let out: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            out,
            [
                ("e", "{}"),
                ("os.family", "Debian"),
                ("os.release", "12"),
                ("tags", "a, 1")
            ]
        );
    }

    /// A collected job's `time` comes from the network: one past what a duration or a
    /// `SystemTime` holds is shown, not a panic.
    #[test]
    fn a_report_sent_at_any_time_renders() {
        as_of(1e300);
        let m = Missing {
            identity: "web1".into(),
            outcome: Outcome::NoReply,
            last_seen: Some("2026-11-25T10:00:00Z".into()),
        };
        assert!(missing(&m).starts_with("web1 ("), "{}", missing(&m));
        assert_eq!(since("2026-11-25T10:00:00Z", std::time::UNIX_EPOCH), "0s");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1500), "1,500");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn ages() {
        let t = humantime::format_rfc3339_seconds(
            SystemTime::now() - std::time::Duration::from_secs(250),
        );
        assert_eq!(ago(&t.to_string()), "4m ago");
        assert_eq!(ago("garbage"), "garbage");
    }
}
