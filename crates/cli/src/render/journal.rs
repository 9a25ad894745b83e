//! The journal's commands: `history`, and the headings of `show` and `retry`.

use std::collections::BTreeSet;
use std::io::{self, Write};

use muster_client::Call;
use muster_client::journal::Entry;
use muster_proto::time::rfc3339;

/// `muster history`: one line per request, newest first.
pub fn history(out: &mut dyn Write, entries: &[Entry]) -> io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "The journal has no requests yet.");
    }
    writeln!(
        out,
        "{:<32}  {:<20}  {:<28}  {:>8}  {:>4}  {:>6}  {:>7}",
        "ID", "SENT", "REQUEST", "EXPECTED", "OK", "FAILED", "MISSING"
    )?;
    for e in entries {
        let s = &e.report.stats;
        let request = format!("{} {}", e.report.agent, e.report.action);
        let retry = e
            .retry_of
            .as_ref()
            .map(|r| format!("  retry of {r}"))
            .unwrap_or_default();
        if e.collected {
            writeln!(
                out,
                "{:<32}  {:<20}  {:<28}  {:>8}  replies in the registry (muster show){retry}",
                e.report.request_id,
                rfc3339(e.time),
                request,
                s.expected,
            )?;
            continue;
        }
        writeln!(
            out,
            "{:<32}  {:<20}  {:<28}  {:>8}  {:>4}  {:>6}  {:>7}{retry}",
            e.report.request_id,
            rfc3339(e.time),
            request,
            s.expected,
            s.ok,
            s.failed,
            s.missing
        )?;
    }
    Ok(())
}

/// `muster show ID`: which request it was and when it was sent, above its report.
pub fn show_heading(out: &mut dyn Write, entry: &Entry) -> io::Result<()> {
    let report = &entry.report;
    let retry = entry
        .retry_of
        .as_ref()
        .map(|r| format!(", a retry of {r}"))
        .unwrap_or_default();
    writeln!(
        out,
        "Request {} — {} {} {}, sent {}{retry}",
        report.request_id,
        report.agent,
        report.action,
        entry.data,
        rfc3339(entry.time)
    )?;
    writeln!(out)
}

/// `muster retry ID`: what is sent again, and to whom, above the new report.
pub fn retry_heading(
    out: &mut dyn Write,
    original: &str,
    call: &Call,
    nodes: &BTreeSet<String>,
) -> io::Result<()> {
    writeln!(
        out,
        "Retrying request {original} ({} {}) on {} nodes: {}",
        call.agent,
        call.action,
        nodes.len(),
        nodes.iter().cloned().collect::<Vec<_>>().join(" ")
    )?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::{report_of, text};
    use muster_client::{NodeReply, Outcome};
    use muster_proto::Filter;
    use serde_json::json;

    fn entry(id: &str, retry_of: Option<&str>, collected: bool) -> Entry {
        let ok = NodeReply {
            sender: "web1".into(),
            outcome: Outcome::Ok,
            statuscode: 0,
            statusmsg: "OK".into(),
            data: json!({}),
            ms: 1,
        };
        let mut report = report_of(vec![ok], Vec::new());
        report.request_id = id.into();
        Entry {
            time: 1_800_000_000.0,
            data: json!({}),
            filter: Filter::default(),
            retry_of: retry_of.map(String::from),
            report,
            collected,
        }
    }

    #[test]
    fn history_is_a_table_with_retries_and_collected_requests() {
        assert_eq!(
            text(|out| history(out, &[])),
            "The journal has no requests yet.\n"
        );
        let entries = [
            entry("b".repeat(32).as_str(), Some("a1"), false),
            entry("c".repeat(32).as_str(), None, true),
        ];
        let shown = text(|out| history(out, &entries));
        let lines: Vec<&str> = shown.lines().collect();
        let (b, c) = ("b".repeat(32), "c".repeat(32));
        let head = format!(
            "{:<32}  {:<20}  {:<28}  EXPECTED    OK  FAILED  MISSING",
            "ID", "SENT", "REQUEST"
        );
        let sent = "2027-01-15T08:00:00Z  rpcutil ping                         1";
        assert_eq!(
            lines,
            [
                head,
                format!("{b}  {sent}     1       0        0  retry of a1"),
                format!("{c}  {sent}  replies in the registry (muster show)"),
            ]
        );
    }

    #[test]
    fn show_names_the_request_and_when_it_was_sent() {
        let shown = text(|out| show_heading(out, &entry("r1", Some("r0"), false)));
        assert_eq!(
            shown,
            "Request r1 — rpcutil ping {}, sent 2027-01-15T08:00:00Z, a retry of r0\n\n"
        );
    }
}
