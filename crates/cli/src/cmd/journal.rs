//! The journal's commands — `history`, `show`, `retry` — and recording each request.

use std::collections::BTreeSet;
use std::path::Path;

use muster_client::collect::{report_from_job, still_running};
use muster_client::journal::{Entry, Journal, JournalError};
use muster_client::{Call, ClientConfig, ExitStatus, Outcome, Report, Stats, aggregate};
use muster_proto::Filter;
use muster_proto::job::JobRecord;
use serde_json::json;

use crate::Failure;
use crate::args::{HistoryArgs, RequestArgs, RetryArgs, ShowArgs};
use crate::cmd::{ddl_for, end_progress, progress, rfc3339, unix_now};

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
    let now = unix_now();
    write(
        request,
        &Entry {
            time: now - (report.stats.elapsed_ms as f64 / 1000.0),
            data: call.data.clone(),
            filter: filter.clone(),
            retry_of: retry_of.map(String::from),
            report: report.clone(),
            collected: false,
        },
    );
}

/// Records a request sent with `--no-results`: what was sent to whom; the replies are in a
/// registry.
pub fn record_collected(request: &RequestArgs, call: &Call, filter: &Filter, job: &JobRecord) {
    let expected = job.expected.len() + job.absent.len();
    let report = Report {
        request_id: job.id.clone(),
        agent: call.agent.clone(),
        action: call.action.clone(),
        stats: Stats {
            expected,
            ..Stats::default()
        },
        missing: Vec::new(),
        replies: Vec::new(),
        aggregates: Vec::new(),
        discovery: None,
        ignored: Vec::new(),
    };
    write(
        request,
        &Entry {
            time: job.time,
            data: call.data.clone(),
            filter: filter.clone(),
            retry_of: None,
            report,
            collected: true,
        },
    );
}

fn write(request: &RequestArgs, entry: &Entry) {
    let written = open(request.journal.as_deref()).and_then(|journal| match journal {
        Some(journal) => journal.record(entry).map_err(Failure::usage),
        None => Ok(()),
    });
    if let Err(failure) = written {
        eprintln!(
            "muster: warning: the request was not journalled: {}",
            crate::message(&failure.error)
        );
    }
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
                    "time": rfc3339(e.time),
                    "agent": e.report.agent,
                    "action": e.report.action,
                    "stats": e.report.stats,
                    "retry_of": e.retry_of,
                    "collected": e.collected,
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
        if e.collected {
            println!(
                "{:<32}  {:<20}  {:<28}  {:>8}  replies in the registry (muster show){retry}",
                e.report.request_id,
                rfc3339(e.time),
                request,
                s.expected,
            );
            continue;
        }
        println!(
            "{:<32}  {:<20}  {:<28}  {:>8}  {:>4}  {:>6}  {:>7}{retry}",
            e.report.request_id,
            rfc3339(e.time),
            request,
            s.expected,
            s.ok,
            s.failed,
            s.missing
        );
    }
    Ok(ExitStatus::Ok)
}

/// Finds request `id`: in the journal, or — for a request sent with `--no-results`, one the
/// journal does not have (sent from another machine), or with `from_registry` — rebuilt from
/// what a registry collected. Returns the entry and whether its nodes may still answer.
async fn lookup(
    id: &str,
    request: &RequestArgs,
    from_registry: bool,
) -> Result<(Entry, bool), Failure> {
    let local = match open(request.journal.as_deref())? {
        Some(journal) => match journal.get(id) {
            Ok(entry) => Some(entry),
            Err(JournalError::NotFound(_)) => None,
            Err(e) => return Err(Failure::usage(e)),
        },
        None => None,
    };
    let local = match local {
        Some(entry) if !entry.collected && !from_registry => return Ok((entry, false)),
        other => other,
    };
    // The journal resolves a prefix; a registry needs the whole id.
    let full = local
        .as_ref()
        .map_or(id.to_string(), |e| e.report.request_id.clone());
    let session = match request.connect().await {
        Ok(session) => session,
        // Not here and no broker to ask: what the user needs to hear is "not found".
        Err(failure) if local.is_none() => {
            return Err(Failure::usage(anyhow::anyhow!(
                "no request {id} in the journal (`muster history` lists the requests this \
                 machine sent), and no registry could be asked: {}",
                crate::message(&failure.error)
            )));
        }
        Err(failure) => return Err(failure),
    };
    let answer = session
        .client
        .fetch_job(&full, session.config.discovery_timeout)
        .await
        .map_err(|e| {
            let whose = if local.is_some() {
                "its replies are collected by a registry"
            } else {
                "the journal does not have it"
            };
            Failure::usage(anyhow::anyhow!("request {full}: {whose}, and {e}"))
        })?;
    let Some(job) = answer.job else {
        return Err(Failure::usage(anyhow::anyhow!(
            "no request {full} in the journal{} or the registry: it was sent from another machine \
             without --collect or --no-results, or is older than the retention; `muster history` \
             lists the requests this machine sent",
            if local.is_some() { "'s records" } else { "" }
        )));
    };
    let mut report = report_from_job(&job, &answer.events);
    let ddl = ddl_for(&session.config, &report.agent).ok().flatten();
    if let Some(action) = ddl.as_ref().and_then(|d| d.action(&report.action)) {
        report.aggregates = aggregate::compute(action, &report);
    }
    let running = still_running(&job, unix_now());
    Ok((
        Entry {
            time: job.time,
            data: job.data,
            filter: job.filter,
            retry_of: job.retry_of.or(local.and_then(|e| e.retry_of)),
            report,
            collected: true,
        },
        running,
    ))
}

/// `muster show ID`: the report as when it ran.
pub async fn show(args: ShowArgs) -> Result<ExitStatus, Failure> {
    let request = RequestArgs {
        json: args.json,
        display: args.display,
        verbose: args.verbose,
        journal: args.journal.clone(),
        connection: args.connection.clone(),
        ..RequestArgs::for_display()
    };
    let (entry, running) = lookup(&args.id, &request, args.from_registry).await?;
    let report = &entry.report;
    crate::render::as_of(entry.time);
    if running {
        eprintln!(
            "Request {} is still within its timeout: nodes that have not answered yet may still do so.",
            report.request_id
        );
    }
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
            rfc3339(entry.time)
        );
        println!();
    }
    // The user's config, as `rpc` had it: its `ddl_directory` has the DDLs of external agents
    // that label the outputs.
    let config = ClientConfig::load(args.connection.config.as_deref()).map_err(Failure::usage)?;
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
    let (entry, running) = lookup(&args.id, request, false).await?;
    if running {
        return Err(Failure::usage(anyhow::anyhow!(
            "request {} is still within its timeout: nodes that have not answered yet may still \
             do so; retry once it has passed",
            entry.report.request_id
        )));
    }
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
    // The journal names the nodes, like a node list: each is sent to on its own subject,
    // so one that lacks the agent can say so (see `Session::request_options`).
    let options = muster_client::RequestOptions {
        delivery: muster_client::Delivery::Direct,
        ..session.request_options(nodes.len())
    };
    let mut report = session
        .client
        .request(&call, &nodes, &options, 0, &mut progress(request.json))
        .await?;
    end_progress(request.json);
    // The journal named the nodes: a node list.
    report.discovery = Some(muster_client::DiscoveryInfo::of(
        muster_client::DiscoveryMethod::Nodes,
    ));
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
