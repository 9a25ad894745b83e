//! `muster rpc AGENT ACTION key=value…`: run an action on the matching nodes.

use muster_client::{Call, ClientConfig, ExitStatus};
use muster_proto::ddl::{Action, Ddl};
use serde_json::{Map, Value};

use crate::args::RpcArgs;
use crate::cmd::{discovery_notes, end_progress, print, print_report, progress, warn};
use crate::failure::Failure;
use crate::{output, render};

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
        ClientConfig::load(request.connection.config.path.as_deref()).map_err(Failure::usage)?;
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
    session.selection.require_agent(&call.agent);
    let expected = session.expected().await?;
    // Only when nothing answered at all is it "no match"; when every answer was ignored as
    // unverifiable the report, over no nodes, says so (exit 1).
    if expected.nothing_answered() {
        discovery_notes(&expected, request.json);
        if request.json {
            // Exit 4 with --json is the report with zero nodes (docs/design.md §3).
            let report = expected.empty_report(&call);
            print(|out| output::write(out, &output::Report::new(&report)))?;
        }
        return Ok(session.no_match(request.json));
    }
    let mut options = session.options.clone();
    options.action = action.clone();
    options.collect = args.collect;
    if args.no_results && !expected.is_empty() {
        let sent = session
            .client
            .send_collected(&call, &expected, &options)
            .await?;
        warn(&sent.warnings);
        if request.json {
            print(|out| output::write(out, &output::Sent::new(&sent)))?;
        } else {
            print(|out| render::sent(out, &sent))?;
            eprintln!(
                "Sent {} {} to {} nodes; a registry collects the replies: muster show {}",
                call.agent, call.action, sent.sent, sent.request_id
            );
        }
        return Ok(ExitStatus::Ok);
    }
    let finished = session
        .client
        .run(&call, &expected, &options, &mut progress(request.json))
        .await?;
    end_progress(request.json);
    warn(&finished.warnings);
    let cx = render::Context::now(request.verbose);
    print_report(&finished.report, action.as_ref(), request, &cx)?;
    session.trust_notes(&finished.report);
    Ok(finished.report.exit_status())
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
