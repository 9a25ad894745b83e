//! The journal's commands — `history`, `show`, `retry` — and recording each request.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use muster_client::journal::{Entry, Journal};
use muster_client::{Call, ClientConfig, ExitStatus, Outcome, Report, aggregate};
use muster_proto::Filter;
use serde_json::json;

use crate::Failure;
use crate::args::{HistoryArgs, RequestArgs, RetryArgs, ShowArgs};
use crate::cmd::{ddl_for, end_progress, progress};

/// `--journal off` (or `MUSTER_JOURNAL=off`) records nothing.
const OFF: &str = "off";

fn open(path: Option<&Path>) -> Result<Option<Journal>, Failure> {
    let path = match path {
        Some(p) if p.as_os_str() == OFF => return Ok(None),
        Some(p) => p.to_path_buf(),
        None => Journal::default_path().ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "cannot find a home directory for the journal; give --journal PATH"
            ))
        })?,
    };
    Journal::open(&path).map(Some).map_err(Failure::usage)
}

fn open_existing(path: Option<&Path>) -> Result<Journal, Failure> {
    open(path)?.ok_or_else(|| Failure::usage(anyhow::anyhow!("the journal is off (--journal off)")))
}

/// Records a finished request. A journal that cannot be written is a warning, never a failure
/// of the request.
pub fn record(
    request: &RequestArgs,
    call: &Call,
    filter: &Filter,
    retry_of: Option<&str>,
    report: &Report,
) {
    if report.stats.expected == 0 && report.replies.is_empty() {
        // Nothing matched and nothing was sent: nothing to remember.
        return;
    }
    let written = open(request.journal.as_deref()).and_then(|journal| {
        let Some(journal) = journal else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let sent = now - (report.stats.elapsed_ms as f64 / 1000.0);
        journal
            .record(&Entry {
                time: sent,
                data: call.data.clone(),
                filter: filter.clone(),
                retry_of: retry_of.map(String::from),
                report: report.clone(),
            })
            .map_err(Failure::usage)
    });
    if let Err(failure) = written {
        eprintln!(
            "muster: warning: the request was not journalled: {:#}",
            failure.error
        );
    }
}

fn time_text(unix: f64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `muster history`.
pub fn history(args: HistoryArgs) -> Result<ExitStatus, Failure> {
    let journal = open_existing(args.journal.as_deref())?;
    let entries = journal.recent(args.limit).map_err(Failure::usage)?;
    if args.json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "request_id": e.report.request_id,
                    "time": time_text(e.time),
                    "agent": e.report.agent,
                    "action": e.report.action,
                    "stats": e.report.stats,
                    "retry_of": e.retry_of,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitStatus::Ok);
    }
    if entries.is_empty() {
        println!("The journal has no requests yet.");
        return Ok(ExitStatus::Ok);
    }
    println!(
        "{:<32}  {:<20}  {:<28}  {:>8}  {:>4}  {:>6}  {:>7}",
        "ID", "SENT", "REQUEST", "EXPECTED", "OK", "FAILED", "MISSING"
    );
    for e in &entries {
        let s = &e.report.stats;
        let request = format!("{} {}", e.report.agent, e.report.action);
        let retry = e
            .retry_of
            .as_ref()
            .map(|r| format!("  retry of {r}"))
            .unwrap_or_default();
        println!(
            "{:<32}  {:<20}  {:<28}  {:>8}  {:>4}  {:>6}  {:>7}{retry}",
            e.report.request_id,
            time_text(e.time),
            request,
            s.expected,
            s.ok,
            s.failed,
            s.missing
        );
    }
    Ok(ExitStatus::Ok)
}

/// `muster show ID`: the report as when it ran.
pub fn show(args: ShowArgs) -> Result<ExitStatus, Failure> {
    let journal = open_existing(args.journal.as_deref())?;
    let entry = journal.get(&args.id).map_err(Failure::usage)?;
    let report = &entry.report;
    let request = RequestArgs {
        json: args.json,
        display: args.display,
        verbose: args.verbose,
        ..RequestArgs::for_display()
    };
    if !args.json {
        let retry = entry
            .retry_of
            .as_ref()
            .map(|r| format!(", a retry of {r}"))
            .unwrap_or_default();
        println!(
            "Request {} — {} {} {}, sent {}{retry}",
            report.request_id,
            report.agent,
            report.action,
            entry.data,
            time_text(entry.time)
        );
        println!();
    }
    let config = ClientConfig::default();
    let ddl = ddl_for(&config, &report.agent).ok().flatten();
    let action = ddl.as_ref().and_then(|d| d.action(&report.action));
    crate::cmd::rpc::show(report, action, &request);
    Ok(report.exit_status())
}

/// `muster retry ID --missing|--failed`.
pub async fn retry(args: RetryArgs) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    if request.nodes.is_some() || !request.filter.to_filter()?.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "retry sends to the nodes the journal names; leave out --nodes and filters"
        )));
    }
    let journal = open_existing(request.journal.as_deref())?;
    let entry = journal.get(&args.id).map_err(Failure::usage)?;
    let mut outcomes = Vec::new();
    if args.missing {
        outcomes.extend([Outcome::NoReply, Outcome::Timeout, Outcome::NotConnected]);
    }
    if args.failed {
        outcomes.push(Outcome::Failed);
    }
    let nodes: BTreeSet<String> = entry.nodes_with(&outcomes).into_iter().collect();
    let original = &entry.report;
    if nodes.is_empty() {
        if !request.json {
            eprintln!(
                "Nothing to retry: every node of request {} {}.",
                original.request_id,
                if args.failed && !args.missing {
                    "that replied succeeded"
                } else {
                    "replied"
                }
            );
        }
        return Ok(ExitStatus::Ok);
    }
    let call = Call {
        agent: original.agent.clone(),
        action: original.action.clone(),
        data: entry.data.clone(),
    };
    let session = request.connect().await?;
    let mut report = session
        .client
        .request(
            &call,
            &nodes,
            &session.request_options(nodes.len()),
            0,
            &mut progress(request.json),
        )
        .await?;
    end_progress(request.json);
    let ddl = ddl_for(&session.config, &call.agent)?;
    let action = ddl.as_ref().and_then(|d| d.action(&call.action));
    if let Some(action) = action {
        report.aggregates = aggregate::compute(action, &report);
    }
    record(
        request,
        &call,
        &entry.filter,
        Some(&original.request_id),
        &report,
    );
    if !request.json {
        println!(
            "Retrying request {} ({} {}) on {} nodes: {}",
            original.request_id,
            call.agent,
            call.action,
            nodes.len(),
            nodes.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        println!();
    }
    crate::cmd::rpc::show(&report, action, request);
    Ok(report.exit_status())
}
