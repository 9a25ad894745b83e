//! `cm`: runs the configured configuration-management command (Puppet, Chef, …) now, with an
//! optional random delay (splay), and reports the last run's summary.
//!
//! - `runonce` waits a uniform random delay in `[0, min(splaylimit, max_splay)]` when
//!   `splay=true` (the splay is further capped at a quarter of the DDL timeout so the run keeps
//!   most of it), then runs `[agents.cm] command` in the foreground through
//!   [`command::run`], under a timeout just under what is left of the DDL
//!   timeout. Exit status 0 is success. When the configured command contains the argument
//!   `--detailed-exitcodes` (Puppet's convention), exit status 2 ("changes were applied") is a
//!   success too; 4 and 6 (failures) are not.
//! - `last_run_summary` reads `[agents.cm] summary_file`, Puppet's `last_run_summary.yaml`
//!   (YAML or JSON), and reports its main numbers and the whole document.

use std::path::Path;
use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use muster_proto::time::{self, UnixTime};
use serde_json::{Map, Value, json};

use crate::command::{self, CommandOutput, CommandSpec, ExitKind};
use crate::config::CmConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `cm` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/cm.json");

/// How many lines of output `runonce` reports.
pub const OUTPUT_LINES: usize = 50;

/// After a timeout, how long the run has between `SIGTERM` and `SIGKILL` (Puppet cleans up its
/// lock file on `SIGTERM`).
const KILL_GRACE: Duration = Duration::from_secs(10);

/// What the run's timeout leaves of the DDL timeout for the kill grace, the output drain and
/// the reply.
const MARGIN: Duration = Duration::from_secs(15);

/// The argument that makes exit status 2 a success.
const DETAILED_EXITCODES: &str = "--detailed-exitcodes";

/// The `cm` agent.
#[derive(Debug, Clone)]
pub struct Cm {
    ddl: Ddl,
    config: CmConfig,
}

impl Cm {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &CmConfig) -> Result<Self, DdlError> {
        Ok(Cm {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }

    fn ddl_timeout(&self) -> Duration {
        Duration::from_secs(self.ddl.metadata.timeout)
    }

    async fn runonce(&self, data: &Value) -> ActionResult {
        let Some((program, args)) = self.config.command.split_first() else {
            return ActionResult::fail(
                StatusCode::Aborted,
                "no configuration-management command is configured: set [agents.cm] command, \
                 e.g. [\"puppet\", \"agent\", \"--onetime\", \"--no-daemonize\"]",
            );
        };
        let splay = data.get("splay").and_then(Value::as_bool).unwrap_or(false);
        let limit = match data.get("splaylimit") {
            None | Some(Value::Null) => self.config.max_splay,
            Some(value) => match value.as_u64() {
                Some(secs) => Duration::from_secs(secs).min(self.config.max_splay),
                None => {
                    return ActionResult::fail(
                        StatusCode::InvalidData,
                        format!(
                            "invalid input splaylimit: {value} is not a number of seconds (0 or \
                             more)"
                        ),
                    );
                }
            },
        };
        let limit = limit.min(self.ddl_timeout() / 4);
        let splayed = if splay && !limit.is_zero() {
            let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
            let delay = Duration::from_millis(rand::random_range(0..=millis));
            tokio::time::sleep(delay).await;
            delay
        } else {
            Duration::ZERO
        };

        let timeout = self
            .ddl_timeout()
            .saturating_sub(splayed)
            .saturating_sub(MARGIN)
            .max(Duration::from_secs(1));
        let spec = CommandSpec::new(program)
            .args(args.iter().cloned())
            .timeout(timeout)
            .kill_grace(KILL_GRACE);
        let out = match command::run(&spec).await {
            Ok(out) => out,
            Err(e) => {
                return ActionResult::fail(
                    StatusCode::Aborted,
                    format!("{e} (the command is set by [agents.cm] command)"),
                );
            }
        };

        let mut data = Map::new();
        data.insert("exitcode".into(), json!(exit_code(&out)));
        data.insert("output".into(), json!(tail(&out, OUTPUT_LINES)));
        data.insert("splayed_ms".into(), json!(millis(splayed)));
        data.insert("duration_ms".into(), json!(millis(out.duration)));
        if let Some(path) = &self.config.summary_file
            && let Ok(Some(summary)) = read_summary(path)
        {
            for (key, value) in summary_fields(&summary, time::now()) {
                data.insert(key.into(), value);
            }
        }
        let data = Value::Object(data);

        let detailed = self.config.command.iter().any(|a| a == DETAILED_EXITCODES);
        match out.status {
            ExitKind::Exited(0) => ActionResult::ok(data),
            ExitKind::Exited(2) if detailed => ActionResult::ok(data),
            ExitKind::TimedOut => ActionResult::fail_with(
                StatusCode::Aborted,
                format!(
                    "`{}` timed out after {}s and its process group was killed; look at the \
                     output, or make the run faster",
                    self.config.command.join(" "),
                    out.timeout.as_secs()
                ),
                data,
            ),
            _ => ActionResult::fail_with(
                StatusCode::Aborted,
                format!(
                    "`{}` {}; see the output for why the run failed",
                    self.config.command.join(" "),
                    out.summary()
                ),
                data,
            ),
        }
    }

    fn last_run_summary(&self) -> ActionResult {
        let Some(path) = &self.config.summary_file else {
            return ActionResult::fail(
                StatusCode::Aborted,
                "no last run summary file is configured: set [agents.cm] summary_file, e.g. \
                 /opt/puppetlabs/puppet/public/last_run_summary.yaml",
            );
        };
        match read_summary(path) {
            Ok(Some(summary)) => {
                let mut data: Map<String, Value> = summary_fields(&summary, time::now())
                    .into_iter()
                    .map(|(k, v)| (k.into(), v))
                    .collect();
                data.insert("summary".into(), summary);
                ActionResult::ok(Value::Object(data))
            }
            Ok(None) => ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "no last run summary at {}: configure [agents.cm] summary_file, or run the \
                     configuration management once (cm runonce)",
                    path.display()
                ),
            ),
            Err(message) => ActionResult::fail(StatusCode::Aborted, message),
        }
    }
}

/// The exit status to report: -1 when the command did not exit on its own.
fn exit_code(out: &CommandOutput) -> i64 {
    match out.status {
        ExitKind::Exited(code) => i64::from(code),
        ExitKind::Signalled(_) | ExitKind::TimedOut => -1,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The last `n` lines of standard output followed by standard error.
fn tail(out: &CommandOutput, n: usize) -> String {
    let lines: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads and parses a summary file: `Ok(None)` when it does not exist, an error message saying
/// what to do when it cannot be read or parsed.
fn read_summary(path: &Path) -> Result<Option<Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the last run summary {}: {e}; make sure the daemon's user may read \
                 it",
                path.display()
            ));
        }
    };
    parse_summary(&text).map(Some).map_err(|e| {
        format!(
            "cannot parse the last run summary {}: {e}; it should be Puppet's \
             last_run_summary.yaml (YAML or JSON)",
            path.display()
        )
    })
}

/// Parses a last run summary, JSON or YAML, into a JSON object.
pub fn parse_summary(text: &str) -> Result<Value, String> {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => serde_saphyr::from_str(text).map_err(|e| e.to_string())?,
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err("the top level is not a mapping".to_string())
    }
}

/// The outputs taken from a parsed summary, `now` being the current time: `last_run`,
/// `age_seconds`, `config_version`, `changed`, `failed`, `total`, `failures` and `healthy`
/// (no failed resources and no failed events; an absent count is taken as none). A value the
/// summary lacks is `null`.
pub fn summary_fields(summary: &Value, now: UnixTime) -> Vec<(&'static str, Value)> {
    // The summary counts whole seconds; a wire time is at most the year 9999, well inside i64.
    let now = i64::try_from(time::whole_secs(now)).unwrap_or(i64::MAX);
    let int = |section: &str, key: &str| -> Option<i64> {
        let v = summary.get(section)?.get(key)?;
        v.as_i64()
            // Whole numbers written as floats, or as strings.
            .or_else(|| v.as_f64().map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    };
    let last_run = int("time", "last_run");
    let config_version = summary
        .get("version")
        .and_then(|v| v.get("config"))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
    let failed = int("resources", "failed");
    let failures = int("events", "failure");
    let healthy = failed.unwrap_or(0) == 0 && failures.unwrap_or(0) == 0;
    vec![
        ("last_run", json!(last_run)),
        (
            "age_seconds",
            json!(last_run.map(|t| now.saturating_sub(t))),
        ),
        ("config_version", json!(config_version)),
        ("changed", json!(int("resources", "changed"))),
        ("failed", json!(failed)),
        ("total", json!(int("resources", "total"))),
        ("failures", json!(failures)),
        ("healthy", json!(healthy)),
    ]
}

impl Agent for Cm {
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
                "runonce" => self.runonce(data).await,
                "last_run_summary" => self.last_run_summary(),
                other => ActionResult::fail(
                    StatusCode::UnknownAction,
                    format!(
                        "cm has no action {other:?}; its actions are {}",
                        self.ddl.action_names().join(", ")
                    ),
                ),
            }
        })
    }
}
