//! `shell`: runs an arbitrary shell command and reports what it did.
//!
//! Only registered when `[agents.shell] enabled = true`. The command runs as
//! `<config.shell> -c <command>` through [`command::run`], with standard
//! input connected to `/dev/null` and the daemon's environment and working directory. When it
//! runs past its timeout its whole process group is killed (`SIGTERM`, then `SIGKILL` a second
//! later), so background jobs it started go too.

use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::{Value, json};

use crate::command::{self, CommandOutput, CommandSpec, ExitKind};
use crate::config::ShellConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `shell` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/shell.json");

/// The longest `timeout` input `run` accepts, in seconds: under the DDL's 3600 s, leaving room
/// for the kill grace and the output drain.
pub const MAX_TIMEOUT_SECS: i64 = 3500;

/// The `timeout` `run` uses when none is given, in seconds (also the DDL default).
pub const DEFAULT_TIMEOUT_SECS: i64 = 60;

/// The `shell` agent.
#[derive(Debug, Clone)]
pub struct Shell {
    ddl: Ddl,
    config: ShellConfig,
}

impl Shell {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &ShellConfig) -> Result<Self, DdlError> {
        Ok(Shell {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }

    async fn run(&self, data: &Value) -> ActionResult {
        let Some(command) = data.get("command").and_then(Value::as_str) else {
            return ActionResult::fail(
                StatusCode::MissingData,
                "missing input command: give the shell command to run, e.g. command=uptime",
            );
        };
        let timeout = match data.get("timeout") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT_SECS,
            Some(value) => match value.as_i64() {
                Some(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => secs,
                _ => {
                    return ActionResult::fail(
                        StatusCode::InvalidData,
                        format!(
                            "invalid input timeout: {value} is not between 1 and \
                             {MAX_TIMEOUT_SECS} seconds; give a shorter timeout, or run long \
                             jobs in the background with nohup"
                        ),
                    );
                }
            },
        };
        // `timeout` is within 1..=MAX_TIMEOUT_SECS, so it is positive.
        let timeout = Duration::from_secs(timeout.unsigned_abs());
        let spec = CommandSpec::new(&self.config.shell)
            .arg("-c")
            .arg(command)
            .timeout(timeout);
        match command::run(&spec).await {
            Ok(out) => report(&out),
            Err(e) => ActionResult::fail(
                StatusCode::Aborted,
                format!("{e} (the shell is set by [agents.shell] shell)"),
            ),
        }
    }
}

/// Turns what the command did into a reply.
fn report(out: &CommandOutput) -> ActionResult {
    let timed_out = out.status == ExitKind::TimedOut;
    let exitcode = match out.status {
        ExitKind::Exited(code) => code,
        ExitKind::Signalled(_) | ExitKind::TimedOut => -1,
    };
    let data = json!({
        "stdout": out.stdout,
        "stderr": out.stderr,
        "exitcode": exitcode,
        "timed_out": timed_out,
        "duration_ms": u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
    });
    if out.success() {
        ActionResult::ok(data)
    } else if timed_out {
        ActionResult::fail_with(
            StatusCode::Aborted,
            format!(
                "timed out after {}s; the command's process group was killed (give a longer \
                 timeout, up to {MAX_TIMEOUT_SECS}s, if it needs more time)",
                out.timeout.as_secs()
            ),
            data,
        )
    } else {
        ActionResult::fail_with(StatusCode::Aborted, out.summary(), data)
    }
}

impl Agent for Shell {
    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        _node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(async move {
            match action {
                "run" => self.run(data).await,
                other => ActionResult::fail(
                    StatusCode::UnknownAction,
                    format!(
                        "shell has no action {other:?}; its actions are {}",
                        self.ddl.action_names().join(", ")
                    ),
                ),
            }
        })
    }
}
