//! Everything the CLI prints for people. Each function writes into the writer it is given
//! and returns what writing returned; nothing here keeps state, so every output is rendered the
//! same in a unit test (into a `Vec<u8>`) as on stdout. What `--json` prints is in
//! [`crate::output`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::time::SystemTime;

use muster_client::aggregate::{
    AggregateResult, bytes_to_human, format_number, format_numbers, value_text,
};
use muster_client::{
    DiscoveryFailure, DiscoveryInfo, DiscoveryMethod, Ignored, Missing, NodeReply, Outcome, Report,
};
use muster_proto::ddl::{self, Action};
use serde_json::Value;

use crate::args::Display;

pub mod demo;
pub mod facts;
pub mod inventory;
pub mod journal;
pub mod keys;
pub mod plugin;

/// How to render: how much to say, and what last-seen times are told relative to.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// `-v`: timings, the request's id, every name in a long list.
    pub verbose: bool,
    /// What "last seen" is relative to.
    pub since: Since,
}

/// What a last-seen time is told relative to.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// Now, for a request that just ran: `last seen 4m ago`.
    Now(SystemTime),
    /// When the request was sent, for a report shown later (`muster show`): `last seen 4m
    /// before the request`, so it reads as it did.
    Request(SystemTime),
}

impl Context {
    /// For a request that just ran.
    pub fn now(verbose: bool) -> Self {
        Context {
            verbose,
            since: Since::Now(SystemTime::now()),
        }
    }

    /// For a report of a request sent at `sent` (Unix seconds). `sent` may come from a
    /// registry (a collected job's `time`): the conversion is proto's total one.
    pub fn as_of(sent: f64, verbose: bool) -> Self {
        Context {
            verbose,
            since: Since::Request(muster_proto::time::system_time(sent)),
        }
    }
}

fn width(names: impl Iterator<Item = usize>) -> usize {
    names.max().unwrap_or(0).clamp(8, 40)
}

/// One line per node that answered a ping — its time, or for a failure (a denial) its status,
/// never a time, as it did not answer the ping — then the summary.
pub fn ping(out: &mut dyn Write, report: &Report, cx: &Context) -> io::Result<()> {
    let w = width(report.replies.iter().map(|r| r.sender.len()));
    for reply in &report.replies {
        let tag = if reply.outcome == Outcome::Unexpected {
            "  (unexpected)"
        } else {
            ""
        };
        if reply.statuscode != 0 {
            writeln!(
                out,
                "{:<w$}  FAILED (status {}): {}{tag}",
                reply.sender, reply.statuscode, reply.statusmsg
            )?;
            continue;
        }
        let time = match reply.ms {
            0 => "<1".to_string(),
            ms => ms.to_string(),
        };
        writeln!(out, "{:<w$}  time={time} ms{tag}", reply.sender)?;
    }
    writeln!(out)?;
    summary(out, report, cx)
}

/// Which replies an rpc report shows: the flag's choice; else all with `-v`; else what the
/// action's DDL says (`display`), failures only when there is no DDL.
pub fn display(action: Option<&Action>, chosen: Option<Display>, verbose: bool) -> Display {
    let default = match action.map(|a| a.display) {
        Some(ddl::Display::Always) => Display::All,
        Some(ddl::Display::Ok) => Display::Ok,
        Some(ddl::Display::Failed) | None => Display::Failed,
    };
    match (chosen, verbose) {
        (Some(d), _) => d,
        (None, true) => Display::All,
        (None, false) => default,
    }
}

/// An rpc report (`rpc`, `show`, `retry`): the replies [`display`] chooses, labelled by the
/// action's DDL, then the summaries.
pub fn rpc(
    out: &mut dyn Write,
    report: &Report,
    action: Option<&Action>,
    chosen: Option<Display>,
    cx: &Context,
) -> io::Result<()> {
    let display = display(action, chosen, cx.verbose);
    self::report(out, report, display, action, cx)
}

/// Per-node replies as `display` says (outputs labelled by the action's DDL, when known), the
/// aggregates, then the summary.
pub fn report(
    out: &mut dyn Write,
    report: &Report,
    display: Display,
    action: Option<&Action>,
    cx: &Context,
) -> io::Result<()> {
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
        node_reply(out, reply, action, cx.verbose)?;
    }
    if !shown.is_empty() {
        writeln!(out)?;
    }
    aggregates(out, &report.aggregates)?;
    summary(out, report, cx)
}

/// A number as people write it: whole numbers without a fraction.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The aggregates: value counts, averages, totals.
pub fn aggregates(out: &mut dyn Write, results: &[AggregateResult]) -> io::Result<()> {
    for result in results {
        match (&result.counts, result.average) {
            // Nothing to summarise (no node replied with the output): no empty heading.
            (Some(counts), _) if counts.is_empty() => {}
            (Some(counts), _) => {
                writeln!(out, "Summary of {}:", result.label)?;
                writeln!(out)?;
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
                    writeln!(out, "   {text:<w$}  {} {noun}", c.count)?;
                }
                writeln!(out)?;
            }
            (None, _) if result.count == 0 && result.processes.is_none() => {}
            (None, Some(average)) if result.function != "nettest_mma" => {
                writeln!(
                    out,
                    "{} ({} nodes)",
                    format_number(result.format.as_deref(), &result.label, average),
                    result.count
                )?;
                writeln!(out)?;
            }
            (None, _) => {
                let text = if let (Some(min), Some(max), Some(mean)) =
                    (result.minimum, result.maximum, result.average)
                {
                    let format = result
                        .format
                        .as_deref()
                        .unwrap_or("Min: %.3f  Max: %.3f  Average: %.3f");
                    format!(
                        "{}: {}",
                        result.label,
                        format_numbers(format, &[min, max, mean])
                    )
                } else if let Some(sum) = result.sum {
                    match result.format.as_deref() {
                        Some(format) if format.contains('%') => format_numbers(format, &[sum]),
                        _ => format!("Total {}: {}", result.label, number_text(sum)),
                    }
                } else if let Some(p) = result.processes {
                    writeln!(out, "Summary of {}:", result.label)?;
                    writeln!(out)?;
                    writeln!(out, "        Matched hosts: {}", p.hosts)?;
                    writeln!(out, "    Matched Processes: {}", p.processes)?;
                    writeln!(
                        out,
                        "        Resident Size: {}",
                        bytes_to_human(p.rss_bytes)
                    )?;
                    writeln!(
                        out,
                        "         Virtual Size: {}",
                        bytes_to_human(p.vsize_bytes)
                    )?;
                    writeln!(out)?;
                    continue;
                } else {
                    continue;
                };
                writeln!(out, "{text} ({} nodes)", result.count)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

fn node_reply(
    out: &mut dyn Write,
    reply: &NodeReply,
    action: Option<&Action>,
    verbose: bool,
) -> io::Result<()> {
    let timing = if verbose {
        format!("  ({} ms)", reply.ms)
    } else {
        String::new()
    };
    match reply.outcome {
        Outcome::Ok => writeln!(out, "{}{timing}", reply.sender)?,
        Outcome::Unexpected => writeln!(
            out,
            "{} (unexpected: not in the expected set){timing}: {}",
            reply.sender, reply.statusmsg
        )?,
        _ => writeln!(
            out,
            "{}{timing}: FAILED (status {}): {}",
            reply.sender, reply.statuscode, reply.statusmsg
        )?,
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
        writeln!(out, "    {key:>w$}: {value}")?;
    }
    Ok(())
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
pub fn summary(out: &mut dyn Write, report: &Report, cx: &Context) -> io::Result<()> {
    let verbose = cx.verbose;
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
        writeln!(out, "No node is expected: no answer could be verified.")?;
    } else {
        writeln!(
            out,
            "Finished {} of {} nodes in {} ms: {}",
            s.responded,
            s.expected,
            s.elapsed_ms,
            parts.join(", ")
        )?;
    }
    if verbose {
        writeln!(
            out,
            "Request {} ({} {}), discovery {} ms",
            report.request_id, report.agent, report.action, s.discovery_ms
        )?;
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
        grouped(out, "Failed", failed)?;
    } else if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        writeln!(out, "Failed: {}", names.join("  "))?;
    }
    if report.missing.len() > LISTED && !verbose {
        let missing = report
            .missing
            .iter()
            .map(|m| (m.identity.clone(), m.outcome.describe().to_string()))
            .collect();
        grouped(out, "Did not respond", missing)?;
    } else if !report.missing.is_empty() {
        let names: Vec<String> = report
            .missing
            .iter()
            .map(|m| missing(m, cx.since))
            .collect();
        writeln!(out, "Did not respond: {}", names.join("  "))?;
    }
    for line in notes(report) {
        writeln!(out, "{line}")?;
    }
    Ok(())
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
fn grouped(out: &mut dyn Write, heading: &str, nodes: Vec<(String, String)>) -> io::Result<()> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let total = nodes.len();
    for (node, why) in nodes {
        by.entry(why).or_default().push(node);
    }
    let mut groups: Vec<(String, Vec<String>)> = by.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    writeln!(out, "{heading}: {} nodes", thousands(total))?;
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
        writeln!(out, "  {} {why}: {shown}{rest}", thousands(count))?;
    }
    Ok(())
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
    lines.extend(report.lost.as_ref().map(lost));
    if let Some(info) = &report.discovery {
        lines.extend(broadcast_notice(info));
    }
    lines
}

/// Messages the client lost while waiting: why, and what became of the nodes they came from.
pub fn lost(lost: &muster_client::Lost) -> String {
    let times = |n: usize| {
        if n == 1 {
            "once".to_string()
        } else {
            format!("{} times", thousands(n))
        }
    };
    let mut why = Vec::new();
    if lost.slow_consumer > 0 {
        why.push(format!(
            "its inbox overflowed {} (it could not keep up)",
            times(lost.slow_consumer)
        ));
    }
    if lost.disconnected > 0 {
        why.push(format!(
            "the connection to the broker dropped {}",
            times(lost.disconnected)
        ));
    }
    format!(
        "the client lost messages: {}; nodes whose answers were lost are counted as not replying",
        why.join(" and ")
    )
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

/// `web3 (no reply, last seen 4m ago)`.
fn missing(m: &Missing, since: Since) -> String {
    let mut why = m.outcome.describe().to_string();
    if let Some(seen) = &m.last_seen {
        let when = match since {
            Since::Request(sent) => format!("{} before the request", self::since(seen, sent)),
            Since::Now(now) => format!("{} ago", self::since(seen, now)),
        };
        why.push_str(&format!(", last seen {when}"));
    }
    format!("{} ({why})", m.identity)
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

/// The identities `find` found, one a line.
pub fn identities(out: &mut dyn Write, nodes: &BTreeSet<String>) -> io::Result<()> {
    for node in nodes {
        writeln!(out, "{node}")?;
    }
    Ok(())
}

/// `rpc --no-results`: the request's id alone on stdout, for `muster show`.
pub fn sent(out: &mut dyn Write, sent: &muster_client::Sent) -> io::Result<()> {
    writeln!(out, "{}", sent.request_id)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use muster_client::Stats;
    use serde_json::json;

    /// What `render` wrote, as text.
    pub(crate) fn text(render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        render(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A time `secs` seconds before `now`, as a report holds it.
    fn before(now: SystemTime, secs: u64) -> String {
        humantime::format_rfc3339_seconds(now - std::time::Duration::from_secs(secs)).to_string()
    }

    fn reply(sender: &str, outcome: Outcome, statuscode: u8, statusmsg: &str) -> NodeReply {
        NodeReply {
            sender: sender.into(),
            outcome,
            statuscode,
            statusmsg: statusmsg.into(),
            data: json!({}),
            ms: 12,
        }
    }

    /// A report of `rpcutil ping` over `replies` and `missing`, counted.
    pub(crate) fn report_of(replies: Vec<NodeReply>, missing: Vec<Missing>) -> Report {
        let count = |o: Outcome| replies.iter().filter(|r| r.outcome == o).count();
        let stats = Stats {
            expected: replies.len() + missing.len() - count(Outcome::Unexpected),
            responded: replies.len() - count(Outcome::Unexpected),
            ok: count(Outcome::Ok),
            failed: count(Outcome::Failed),
            missing: missing.len(),
            unexpected: count(Outcome::Unexpected),
            discovery_ms: 0,
            elapsed_ms: 340,
        };
        Report {
            request_id: "0123456789abcdef0123456789abcdef".into(),
            agent: "rpcutil".into(),
            action: "ping".into(),
            stats,
            missing,
            replies,
            aggregates: Vec::new(),
            discovery: None,
            ignored: Vec::new(),
            lost: None,
        }
    }

    #[test]
    fn a_report_names_failed_and_missing_nodes() {
        let now = SystemTime::now();
        let report = report_of(
            vec![
                reply("web1", Outcome::Ok, 0, "OK"),
                reply("web3", Outcome::Failed, 1, "it broke"),
            ],
            vec![
                Missing {
                    identity: "web11".into(),
                    outcome: Outcome::NoReply,
                    last_seen: Some(before(now, 250)),
                },
                Missing {
                    identity: "web12".into(),
                    outcome: Outcome::NotConnected,
                    last_seen: None,
                },
            ],
        );
        let cx = Context {
            verbose: false,
            since: Since::Now(now),
        };
        let shown = text(|out| rpc(out, &report, None, None, &cx));
        assert_eq!(
            shown,
            "web3: FAILED (status 1): it broke\n\
             \n\
             Finished 2 of 4 nodes in 340 ms: 1 ok, 1 failed, 2 did not respond\n\
             Failed: web3 (Aborted)\n\
             Did not respond: web11 (no reply, last seen 4m ago)  web12 (not connected)\n"
        );
        // Shown later, the same report reads as it did when the request was sent.
        let cx = Context {
            verbose: false,
            since: Since::Request(now),
        };
        let shown = text(|out| summary(out, &report, &cx));
        assert!(
            shown.contains("web11 (no reply, last seen 4m before the request)"),
            "{shown}"
        );
    }

    #[test]
    fn a_ping_lists_times_and_denials() {
        let mut report = report_of(
            vec![
                reply("db1", Outcome::Ok, 0, "OK"),
                reply("web1", Outcome::Failed, 6, "denied by policy"),
                reply("stray1", Outcome::Unexpected, 0, "OK"),
            ],
            Vec::new(),
        );
        report.replies[0].ms = 0;
        let shown = text(|out| ping(out, &report, &Context::now(false)));
        assert_eq!(
            shown,
            "db1       time=<1 ms\n\
             web1      FAILED (status 6): denied by policy\n\
             stray1    time=12 ms  (unexpected)\n\
             \n\
             Finished 2 of 2 nodes in 340 ms: 1 ok, 1 failed, 1 unexpected\n\
             Failed: web1 (Not authorized)\n\
             1 node denied rpcutil ping: not authorized — see the node's audit log\n"
        );
    }

    #[test]
    fn lost_messages_are_a_note() {
        let mut report = report_of(Vec::new(), Vec::new());
        assert!(notes(&report).is_empty());
        report.lost = Some(muster_client::Lost {
            slow_consumer: 2,
            disconnected: 1,
        });
        assert_eq!(
            notes(&report),
            [
                "the client lost messages: its inbox overflowed 2 times (it could not keep up) and \
              the connection to the broker dropped once; nodes whose answers were lost are \
              counted as not replying"
            ]
        );
    }

    #[test]
    fn the_display_follows_the_flag_then_verbose_then_the_ddl() {
        let mut action: Action =
            serde_json::from_value(json!({"action": "a", "description": "", "display": "always"}))
                .unwrap();
        assert_eq!(display(Some(&action), None, false), Display::All);
        assert_eq!(
            display(Some(&action), Some(Display::None), true),
            Display::None
        );
        action.display = ddl::Display::Ok;
        assert_eq!(display(Some(&action), None, false), Display::Ok);
        assert_eq!(display(Some(&action), None, true), Display::All);
        assert_eq!(display(None, None, false), Display::Failed);
    }

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
        let cx = Context::as_of(1e300, false);
        let m = Missing {
            identity: "web1".into(),
            outcome: Outcome::NoReply,
            last_seen: Some("2026-11-25T10:00:00Z".into()),
        };
        let text = missing(&m, cx.since);
        assert!(text.starts_with("web1 ("), "{text}");
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
        let now = SystemTime::now();
        assert_eq!(since(&before(now, 250), now), "4m");
        assert_eq!(since(&before(now, 7200), now), "2h");
        assert_eq!(since("garbage", now), "garbage");
    }
}
