//! External agents: any executable with a DDL beside it in the agents directory.
//!
//! The layout is `DIR/NAME` (the executable) and `DIR/NAME.json` (its DDL, whose
//! `metadata.name` is `NAME`). For each request the node has validated, it runs the executable
//! with an empty environment but `PATH` and:
//!
//! - standard input: the request as one JSON object —
//!   `{"protocol": "muster:external:request:1", "agent", "action", "data", "request_id",
//!   "caller", "collective", "identity", "facts"}` (`data` already validated, with defaults);
//! - environment: `MUSTER_AGENT`, `MUSTER_ACTION`, `MUSTER_REQUEST_ID`, `MUSTER_CALLER`,
//!   `MUSTER_IDENTITY`, and `MUSTER_INPUT_<NAME>` for each input whose value is a string,
//!   number or boolean (upper-cased name), so shell scripts need no JSON parser;
//! - standard output: the reply, one JSON object — `{"statuscode": 0, "statusmsg": "OK",
//!   "data": {…}}`; `statuscode` and `statusmsg` may be left out (0 and "OK").
//!
//! It runs under the DDL's timeout; when that passes its whole process group is killed and the
//! reply says it timed out. A crash, a non-zero exit, or output that is not a reply becomes a
//! failure reply (status 1) with what went wrong and the last line of its standard error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Map, Value, json};

use crate::command::{self, CommandSpec, ExitKind};
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// `protocol` of the request an external agent reads.
pub const REQUEST_PROTOCOL: &str = "muster:external:request:1";

/// An agent implemented by an executable.
#[derive(Debug, Clone)]
pub struct ExternalAgent {
    ddl: Ddl,
    program: PathBuf,
}

/// An external agent that could not be loaded; the daemon logs it and runs the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot load external agent from {file}: {message}")]
pub struct LoadError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong (for a DDL: the path inside it, and the problem).
    pub message: String,
}

/// Loads every external agent in `dir`. Agents that cannot be loaded are returned as errors
/// beside the ones that can; `taken` names agents that exist already (built-in), which an
/// external agent replaces only when `replace` names it too.
pub fn load_directory(
    dir: &Path,
    taken: &[String],
    replace: &[String],
) -> (Vec<ExternalAgent>, Vec<LoadError>) {
    let mut agents = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(LoadError {
                file: dir.to_path_buf(),
                message: format!("cannot read the agents directory: {e}"),
            });
            return (agents, errors);
        }
    };
    let mut ddl_files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    ddl_files.sort();
    for file in ddl_files {
        match load_one(&file, taken, replace) {
            Ok(agent) => agents.push(agent),
            Err(message) => errors.push(LoadError { file, message }),
        }
    }
    (agents, errors)
}

fn load_one(
    ddl_file: &Path,
    taken: &[String],
    replace: &[String],
) -> Result<ExternalAgent, String> {
    let text = std::fs::read_to_string(ddl_file).map_err(|e| format!("cannot read it: {e}"))?;
    let ddl = Ddl::parse(&text).map_err(|e| e.to_string())?;
    let stem = ddl_file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if ddl.metadata.name != stem {
        return Err(format!(
            "at metadata.name: the DDL names agent {:?}, but the file is {stem}.json; they must agree",
            ddl.metadata.name
        ));
    }
    if taken.iter().any(|t| t == stem) && !replace.iter().any(|r| r == stem) {
        return Err(format!(
            "agent {stem:?} is built in, so this external agent is not loaded; to run it in \
             place of the built-in, name it under [agents] in server.toml: replace = [\"{stem}\"]"
        ));
    }
    let program = ddl_file.with_extension("");
    let meta = std::fs::metadata(&program).map_err(|_| {
        format!(
            "there is no executable {} beside the DDL",
            program.display()
        )
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "{} is not an executable file (chmod +x it)",
                program.display()
            ));
        }
    }
    Ok(ExternalAgent { ddl, program })
}

impl ExternalAgent {
    /// The executable.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Agent for ExternalAgent {
    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(async move { self.run(node, action, data).await })
    }
}

impl ExternalAgent {
    async fn run(&self, node: &NodeContext, action: &str, data: &Value) -> ActionResult {
        let inventory = &node.inventory;
        let request = json!({
            "protocol": REQUEST_PROTOCOL,
            "agent": self.name(),
            "action": action,
            "data": data,
            "request_id": node.request_id,
            "caller": node.caller,
            "collective": inventory.collectives.first().cloned().unwrap_or_default(),
            "identity": inventory.identity,
            "facts": inventory.facts,
        });
        let timeout = Duration::from_secs(self.ddl.metadata.timeout);
        let mut spec = CommandSpec::new(&self.program)
            .stdin(serde_json::to_vec(&request).unwrap_or_default())
            .clear_env()
            .env("MUSTER_AGENT", self.name())
            .env("MUSTER_ACTION", action)
            .env("MUSTER_REQUEST_ID", node.request_id.clone())
            .env("MUSTER_CALLER", node.caller.clone())
            .env("MUSTER_IDENTITY", inventory.identity.clone())
            .timeout(timeout);
        if let Some(inputs) = data.as_object() {
            for (name, value) in inputs {
                if let Some(text) = scalar(value) {
                    spec = spec.env(format!("MUSTER_INPUT_{}", name.to_ascii_uppercase()), text);
                }
            }
        }
        if let Some(dir) = self.program.parent() {
            spec = spec.cwd(dir);
        }
        let output = match command::run(&spec).await {
            Ok(output) => output,
            Err(e) => return ActionResult::fail(StatusCode::UnknownError, e.to_string()),
        };
        match output.status {
            ExitKind::TimedOut => {
                return ActionResult::fail(
                    StatusCode::Aborted,
                    format!(
                        "timed out after {}s; its process group was killed",
                        self.ddl.metadata.timeout
                    ),
                );
            }
            ExitKind::Exited(0) => {}
            _ => {
                return ActionResult::fail(
                    StatusCode::Aborted,
                    format!("{} {}", self.program.display(), output.summary()),
                );
            }
        }
        parse_reply(&output.stdout)
    }
}

/// Reads an external agent's reply.
pub fn parse_reply(stdout: &str) -> ActionResult {
    let fail = |why: String| ActionResult::fail(StatusCode::Aborted, why);
    let value: Value = match serde_json::from_str(stdout.trim()) {
        Ok(v) => v,
        Err(e) => {
            let start: String = stdout.trim().chars().take(80).collect();
            return fail(format!(
                "the agent printed something that is not a JSON reply ({e}): {start:?}"
            ));
        }
    };
    let Some(reply) = value.as_object() else {
        return fail("the agent's reply is not a JSON object".to_string());
    };
    let status = match reply.get("statuscode") {
        None => StatusCode::Ok,
        Some(code) => match code
            .as_u64()
            .and_then(|c| u8::try_from(c).ok())
            .map(StatusCode::try_from)
        {
            Some(Ok(status)) => status,
            _ => {
                return fail(format!(
                    "the agent's reply has an invalid statuscode {code}: expected 0 to 6"
                ));
            }
        },
    };
    let message = reply
        .get("statusmsg")
        .and_then(Value::as_str)
        .map_or_else(|| status.message().to_string(), String::from);
    let data = match reply.get("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(other) => {
            return fail(format!(
                "the agent's reply data must be a JSON object, not {other}"
            ));
        }
    };
    ActionResult::fail_with(status, message, data)
}
