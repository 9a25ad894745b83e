//! The journal's commands — `history`, `show`, `retry`. Recording each request is the
//! client's ([`muster_client::Client::run`]); finding one later is too
//! ([`muster_client::lookup`]).

use muster_client::journal::JournalTarget;
use muster_client::lookup::{Found, InJournal, in_journal};
use muster_client::{ClientConfig, ExitStatus, Expected, RunOptions};
use serde_json::json;

use crate::Failure;
use crate::args::{HistoryArgs, RequestArgs, RetryArgs, ShowArgs};
use crate::cmd::{ddl_for, end_progress, progress, rfc3339, warn};

/// `muster history`.
pub fn history(args: HistoryArgs) -> Result<ExitStatus, Failure> {
    let journal = JournalTarget::from_flag(args.journal.as_deref())
        .open_existing()
        .map_err(Failure::usage)?;
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

/// Finds request `id`: in the journal, or rebuilt from what a registry collected (connecting
/// only then).
async fn lookup(id: &str, request: &RequestArgs, from_registry: bool) -> Result<Found, Failure> {
    let journal = JournalTarget::from_flag(request.journal.as_deref());
    let (full, local) = match in_journal(&journal, id, from_registry).map_err(Failure::usage)? {
        InJournal::Found(found) => return Ok(found),
        InJournal::AskRegistry { id, local } => (id, local),
    };
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
    let config = &session.config;
    let action_of = |agent: &str, action: &str| {
        ddl_for(config, agent)
            .ok()
            .flatten()
            .and_then(|d| d.action(action).cloned())
    };
    Ok(session
        .client
        .from_registry(&full, local, config.discovery_timeout, &action_of)
        .await?)
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
    let Found { entry, running } = lookup(&args.id, &request, args.from_registry).await?;
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
    let config =
        ClientConfig::load(args.connection.config.path.as_deref()).map_err(Failure::usage)?;
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
    let Found { entry, running } = lookup(&args.id, request, false).await?;
    if running {
        return Err(Failure::usage(anyhow::anyhow!(
            "request {} is still within its timeout: nodes that have not answered yet may still \
             do so; retry once it has passed",
            entry.report.request_id
        )));
    }
    let nodes = entry.retry_nodes(args.missing, args.failed);
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
    let call = entry.call();
    let session = request.connect().await?;
    let ddl = ddl_for(&session.config, &call.agent)?;
    let action = ddl.as_ref().and_then(|d| d.action(&call.action));
    // The journal names the nodes, like a node list: each is sent to on its own subject, so
    // one that lacks the agent can say so.
    let expected = Expected::listed(nodes.clone(), entry.filter.clone());
    let options = RunOptions {
        action: action.cloned(),
        retry_of: Some(original.request_id.clone()),
        ..session.options.clone()
    };
    let finished = session
        .client
        .run(&call, &expected, &options, &mut progress(request.json))
        .await?;
    end_progress(request.json);
    warn(&finished.warnings);
    let report = finished.report;
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
