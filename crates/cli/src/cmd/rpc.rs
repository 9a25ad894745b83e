//! `muster rpc AGENT ACTION key=value…`: run an action on the matching nodes.

use muster_client::{Call, ExitStatus};
use serde_json::{Map, Value};

use crate::Failure;
use crate::args::{Display, RpcArgs};
use crate::cmd::{end_progress, no_match, progress};
use crate::render;

/// Parses `key=value` inputs. Values are sent as strings.
pub fn parse_inputs(inputs: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut data = Map::new();
    for input in inputs {
        let Some((key, value)) = input.split_once('=') else {
            return Err(Failure::usage(anyhow::anyhow!(
                "input {input:?} is not key=value; write e.g. fact=os.family"
            )));
        };
        if key.is_empty() {
            return Err(Failure::usage(anyhow::anyhow!(
                "input {input:?} has an empty key; write e.g. fact=os.family"
            )));
        }
        data.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(data)
}

pub async fn run(args: RpcArgs) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    muster_proto::subject::check_token("agent", &args.agent).map_err(Failure::usage)?;
    let call = Call {
        agent: args.agent.clone(),
        action: args.action.clone(),
        data: Value::Object(parse_inputs(&args.inputs)?),
    };
    let session = request.connect().await?;
    let (nodes, discovery_ms) = session.expected().await?;
    if nodes.is_empty() {
        return Ok(no_match(request.json));
    }
    let report = session
        .client
        .request(
            &call,
            &nodes,
            &request.request_options(&session.config),
            discovery_ms,
            &mut progress(request.json),
        )
        .await?;
    end_progress(request.json);
    if request.json {
        render::json(&report);
    } else {
        // rpcutil's actions exist to show information; other agents show failures unless asked.
        let default = if args.agent == "rpcutil" {
            Display::All
        } else {
            Display::Failed
        };
        let display = match (request.display, request.verbose) {
            (Some(d), _) => d,
            (None, true) => Display::All,
            (None, false) => default,
        };
        render::report(&report, display, request.verbose);
    }
    Ok(report.exit_status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        let data = parse_inputs(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(data["a"], "1");
        assert_eq!(data["b"], "x=y");
        assert_eq!(data["c"], "");
        assert!(parse_inputs(&["nope".into()]).is_err());
        assert!(parse_inputs(&["=v".into()]).is_err());
    }
}
