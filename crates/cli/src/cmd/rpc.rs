//! `muster rpc AGENT ACTION key=value…`: run an action on the matching nodes.

use muster_client::{Call, ClientConfig, ExitStatus, Pacing, Report, RequestOptions, aggregate};
use muster_proto::ddl::{self, Action, Ddl};
use muster_proto::job::{JOB_PROTOCOL, JobRecord};
use serde_json::{Map, Value};

use crate::Failure;
use crate::args::{Display, RequestArgs, RpcArgs};
use crate::cmd::{Expected, Session, end_progress, progress};
use crate::render;

/// Splits `key=value` inputs.
pub fn parse_pairs(inputs: &[String]) -> Result<Vec<(String, String)>, Failure> {
    inputs
        .iter()
        .map(|input| match input.split_once('=') {
            Some(("", _)) => Err(Failure::usage(anyhow::anyhow!(
                "input {input:?} has an empty key; write e.g. fact=os.family"
            ))),
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
            None => Err(Failure::usage(anyhow::anyhow!(
                "input {input:?} is not key=value; write e.g. fact=os.family"
            ))),
        })
        .collect()
}

/// The inputs as the action's DDL types them (validated), or as strings when this machine has
/// no DDL for the agent.
fn inputs(
    args: &RpcArgs,
    ddl: Option<&Ddl>,
) -> Result<(Map<String, Value>, Option<Action>), Failure> {
    let pairs = parse_pairs(&args.inputs)?;
    let Some(ddl) = ddl else {
        let data = pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Ok((data, None));
    };
    let Some(action) = ddl.action(&args.action) else {
        return Err(Failure::usage(anyhow::anyhow!(
            "agent {} has no action {:?}; its actions are {} (see muster plugin doc {})",
            args.agent,
            args.action,
            ddl.action_names().join(", "),
            args.agent
        )));
    };
    let data = action.convert_and_validate(&pairs).map_err(|e| {
        Failure::usage(anyhow::anyhow!(
            "{e} (see muster plugin doc {})",
            args.agent
        ))
    })?;
    Ok((data, Some(action.clone())))
}

pub async fn run(args: RpcArgs) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    muster_proto::subject::check_token("agent", &args.agent).map_err(Failure::usage)?;
    let config =
        ClientConfig::load(request.connection.config.as_deref()).map_err(Failure::usage)?;
    let ddl = crate::cmd::ddl_for(&config, &args.agent)?;
    let (data, action) = inputs(&args, ddl.as_ref())?;
    let call = Call {
        agent: args.agent.clone(),
        action: args.action.clone(),
        data: Value::Object(data),
    };
    if args.no_results && (request.batch.is_some() || request.window.is_some()) {
        return Err(Failure::usage(anyhow::anyhow!(
            "--no-results sends to every node at once and does not wait; leave out --batch and \
             --window, or leave out --no-results"
        )));
    }
    let mut session = request.connect().await?;
    session.require_agent(&call.agent);
    let expected = session.expected().await?;
    // Only when nothing answered at all is it "no match"; when every answer was ignored as
    // unverifiable the report, over no nodes, says so (exit 1).
    if expected.nothing_answered() {
        expected.notes(request.json);
        if request.json {
            // Exit 4 with --json is the report with zero nodes (docs/design.md §3).
            render::json(&crate::cmd::empty_report(
                &call.agent,
                &call.action,
                &expected,
            ));
        }
        return Ok(session.no_match(request.json));
    }
    let nodes = &expected.nodes;
    let mut options = session.request_options(nodes.len());
    let mut job = None;
    if (args.no_results || args.collect) && !expected.is_empty() {
        let id = session.client.new_request_id();
        let mut record = job_record(&session, &call, &expected, &options, &id);
        match session
            .client
            .announce_job(&record, session.config.discovery_timeout)
            .await
        {
            Ok(()) => {}
            Err(e) if args.no_results => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "{e}\nWith --no-results nobody would see the replies: nothing was sent."
                )));
            }
            Err(e) => eprintln!("muster: warning: the replies are not collected: {e}"),
        }
        options.id = Some(id.clone());
        options.collect = true;
        if args.no_results {
            let absent = session
                .client
                .send_only(&call, nodes, &options, &id)
                .await?;
            announce_not_connected(&session, &mut record, absent.into_iter().collect()).await;
            crate::cmd::journal::record_collected(request, &call, &session.filter, &record);
            let job = record;
            if request.json {
                let sent = serde_json::json!({
                    "request_id": id,
                    "expected": job.expected.len() + job.absent.len(),
                    "sent": job.expected.len(),
                });
                println!("{sent}");
            } else {
                println!("{id}");
                eprintln!(
                    "Sent {} {} to {} nodes; a registry collects the replies: muster show {id}",
                    call.agent,
                    call.action,
                    nodes.len()
                );
            }
            return Ok(ExitStatus::Ok);
        }
        job = Some(record);
    }
    let mut report = session
        .client
        .request(
            &call,
            nodes,
            &options,
            expected.discovery_ms,
            &mut progress(request.json),
        )
        .await?;
    end_progress(request.json);
    if let Some(job) = &mut job {
        let absent: Vec<String> = report
            .missing
            .iter()
            .filter(|m| m.outcome == muster_client::Outcome::NotConnected)
            .map(|m| m.identity.clone())
            .collect();
        announce_not_connected(&session, job, absent).await;
    }
    expected.complete(&mut report);
    if let Some(action) = &action {
        report.aggregates = aggregate::compute(action, &report);
    }
    crate::cmd::journal::record(request, &call, &session.filter, None, &report);
    show(&report, action.as_ref(), request);
    session.trust_notes(&report);
    Ok(report.exit_status())
}

/// What a registry needs to rebuild the report of request `id` later.
fn job_record(
    session: &Session,
    call: &Call,
    expected: &Expected,
    options: &RequestOptions,
    id: &str,
) -> JobRecord {
    let batch_size = match options.pacing {
        Pacing::Batch { size, .. } => Some(size),
        _ => None,
    };
    JobRecord {
        protocol: JOB_PROTOCOL.to_string(),
        id: id.to_string(),
        time: crate::cmd::unix_now(),
        agent: call.agent.clone(),
        action: call.action.clone(),
        caller: session.client.caller().to_string(),
        data: call.data.clone(),
        filter: session.filter.clone(),
        expected: expected.nodes.iter().cloned().collect(),
        absent: expected.absent.clone(),
        last_seen: expected.last_seen.clone(),
        batch_size,
        timeout_ms: u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX),
        retry_of: None,
        not_connected: Vec::new(),
    }
}

/// Announces `job` again with the nodes the broker said were not connected (it tells only
/// the sender), so a registry's report names them too.
async fn announce_not_connected(session: &Session, job: &mut JobRecord, nodes: Vec<String>) {
    if nodes.is_empty() {
        return;
    }
    job.not_connected = nodes;
    if let Err(e) = session
        .client
        .announce_job(job, session.config.discovery_timeout)
        .await
    {
        eprintln!(
            "muster: warning: the registry does not know which nodes were not connected: {e}"
        );
    }
}

/// Prints an rpc report: JSON, or per-node replies as the DDL's `display` says (or the flags),
/// labelled by the DDL, then the summaries.
pub fn show(report: &Report, action: Option<&Action>, request: &RequestArgs) {
    if request.json {
        render::json(report);
        return;
    }
    let default = match action.map(|a| a.display) {
        Some(ddl::Display::Always) => Display::All,
        Some(ddl::Display::Ok) => Display::Ok,
        Some(ddl::Display::Failed) | None => Display::Failed,
    };
    let display = match (request.display, request.verbose) {
        (Some(d), _) => d,
        (None, true) => Display::All,
        (None, false) => default,
    };
    render::report(report, display, action, request.verbose);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let data = parse_pairs(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(data[0], ("a".to_string(), "1".to_string()));
        assert_eq!(data[1], ("b".to_string(), "x=y".to_string()));
        assert_eq!(data[2], ("c".to_string(), String::new()));
        assert!(parse_pairs(&["nope".into()]).is_err());
        assert!(parse_pairs(&["=v".into()]).is_err());
    }
}
