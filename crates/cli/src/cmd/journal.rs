//! The journal's commands — `history`, `show`, `retry`. Recording each request is the
//! client's ([`muster_client::Client::run`]); finding one later is too
//! ([`muster_client::lookup`]).

use muster_client::journal::JournalTarget;
use muster_client::lookup::{Found, InJournal, in_journal};
use muster_client::{ClientConfig, ExitStatus, Expected, RunOptions};

use crate::args::{HistoryArgs, RequestArgs, RetryArgs, ShowArgs};
use crate::cmd::{ddl_for, end_progress, print, print_report, progress, warn};
use crate::failure::{self, Failure};
use crate::{output, render};

/// `muster history`.
pub fn history(args: HistoryArgs) -> Result<ExitStatus, Failure> {
    let journal = JournalTarget::from_flag(args.journal.as_deref())
        .open_existing()
        .map_err(Failure::usage)?;
    let entries = journal.recent(args.limit).map_err(Failure::usage)?;
    if args.json {
        print(|out| output::write(out, &output::History::new(&entries)))?;
    } else {
        print(|out| render::journal::history(out, &entries))?;
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
                failure::message(&failure.error)
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
    let cx = render::Context::as_of(entry.time, args.verbose);
    if running {
        eprintln!(
            "Request {} is still within its timeout: nodes that have not answered yet may still do so.",
            report.request_id
        );
    }
    if !args.json {
        print(|out| render::journal::show_heading(out, &entry))?;
    }
    // The user's config, as `rpc` had it: its `ddl_directory` has the DDLs of external agents
    // that label the outputs.
    let config =
        ClientConfig::load(args.connection.config.path.as_deref()).map_err(Failure::usage)?;
    let ddl = ddl_for(&config, &report.agent).ok().flatten();
    let action = ddl.as_ref().and_then(|d| d.action(&report.action));
    print_report(report, action, &request, &cx)?;
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
        let original = &original.request_id;
        print(|out| render::journal::retry_heading(out, original, &call, &nodes))?;
    }
    print_report(
        &report,
        action,
        request,
        &render::Context::now(request.verbose),
    )?;
    Ok(report.exit_status())
}
