//! `health`: runs the node's named Nagios-plugin checks (`[agents.health.checks.NAME]`).
//!
//! A check is a plugin run through [`command::run`] under its configured
//! timeout (default 30 s, capped just under the DDL timeout). The Nagios plugin convention
//! decides its state:
//!
//! - exit status 0 is OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN; a plugin that cannot be
//!   started, is killed by a signal or runs past its timeout is UNKNOWN too;
//! - the first line of standard output is `TEXT|PERFDATA`: the text before the first `|` is the
//!   message, the rest performance data. A later line containing `|` starts more performance
//!   data (Nagios 3 long output), which runs to the end of the output.
//!
//! Performance data (`'label'=value[uom];[warn];[crit];[min];[max]`, space separated) is also
//! parsed into a list of metrics by [`parse_perfdata`], which skips what it cannot read.
//!
//! A reply is OK only when the state is OK; otherwise it is Aborted with a message naming the
//! check, its state and its message, so a fleet-wide report lists the unhealthy nodes. `run_all`
//! runs every check at once and reports the worst state, ordered OK < WARNING < UNKNOWN <
//! CRITICAL.

use std::collections::BTreeMap;
use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::command::{self, CommandSpec, ExitKind};
use crate::config::{HealthCheck, HealthConfig};
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `health` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/health.json");

/// What a check's timeout leaves of the DDL timeout for the kill grace and the reply.
const MARGIN: Duration = Duration::from_secs(5);

/// The `health` agent.
#[derive(Debug, Clone)]
pub struct Health {
    ddl: Ddl,
    config: HealthConfig,
}

impl Health {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &HealthConfig) -> Result<Self, DdlError> {
        Ok(Health {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }

    /// The longest any check may run.
    fn max_timeout(&self) -> Duration {
        Duration::from_secs(self.ddl.metadata.timeout)
            .saturating_sub(MARGIN)
            .max(Duration::from_secs(1))
    }

    fn configured(&self) -> String {
        if self.config.checks.is_empty() {
            "no checks are configured on this node; add one to server.toml, e.g. \
             [agents.health.checks.disk] command = [\"/usr/lib/nagios/plugins/check_disk\", \
             \"-w\", \"20%\", \"-c\", \"10%\"]"
                .to_string()
        } else {
            format!(
                "the configured checks are {}",
                self.config
                    .checks
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    async fn check(&self, data: &Value) -> ActionResult {
        let Some(name) = data.get("check").and_then(Value::as_str) else {
            return ActionResult::fail(
                StatusCode::MissingData,
                format!(
                    "missing input check: name the check to run; {}",
                    self.configured()
                ),
            );
        };
        let Some(check) = self.config.checks.get(name) else {
            return ActionResult::fail(
                StatusCode::InvalidData,
                format!("no check named {name:?}; {}", self.configured()),
            );
        };
        let result = run_check(name, check, self.max_timeout()).await;
        let mut data = result.to_json();
        if let Some(map) = data.as_object_mut() {
            map.insert("check".into(), json!(name));
        }
        if result.state == State::Ok {
            ActionResult::ok(data)
        } else {
            ActionResult::fail_with(
                StatusCode::Aborted,
                format!("{name}: {}: {}", result.state.name(), result.message),
                data,
            )
        }
    }

    async fn run_all(&self) -> ActionResult {
        let max = self.max_timeout();
        let mut tasks = tokio::task::JoinSet::new();
        for (name, check) in &self.config.checks {
            let (name, check) = (name.clone(), check.clone());
            tasks.spawn(async move {
                let result = run_check(&name, &check, max).await;
                (name, result)
            });
        }
        let mut results: BTreeMap<String, CheckResult> = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((name, result)) = joined {
                results.insert(name, result);
            }
        }
        // A task that panicked left no result; its check is UNKNOWN.
        for name in self.config.checks.keys() {
            results
                .entry(name.clone())
                .or_insert_with(|| CheckResult::unknown("the check's task failed unexpectedly"));
        }

        let worst = results
            .values()
            .map(|r| r.state)
            .max()
            .unwrap_or(State::Unknown);
        let mut counts = serde_json::Map::new();
        for state in State::ALL {
            let n = results.values().filter(|r| r.state == state).count();
            counts.insert(state.name().into(), json!(n));
        }
        let failing: Vec<&String> = results
            .iter()
            .filter(|(_, r)| r.state != State::Ok)
            .map(|(name, _)| name)
            .collect();
        let checks: serde_json::Map<String, Value> = results
            .iter()
            .map(|(name, r)| (name.clone(), r.to_json()))
            .collect();
        let data = json!({
            "status": worst.name(),
            "checks": checks,
            "counts": counts,
            "failing": failing,
        });

        if results.is_empty() {
            return ActionResult::fail_with(StatusCode::Aborted, self.configured(), data);
        }
        if failing.is_empty() {
            return ActionResult::ok(data);
        }
        let details: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.state != State::Ok)
            .map(|(name, r)| format!("{name}: {}: {}", r.state.name(), r.message))
            .collect();
        ActionResult::fail_with(
            StatusCode::Aborted,
            format!(
                "{} of {} checks not OK: {}",
                failing.len(),
                results.len(),
                details.join("; ")
            ),
            data,
        )
    }

    fn list(&self) -> ActionResult {
        let names: Vec<&String> = self.config.checks.keys().collect();
        ActionResult::ok(json!({ "checks": names }))
    }
}

/// A check's state, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Ok,
    Warning,
    Unknown,
    Critical,
}

impl State {
    const ALL: [State; 4] = [State::Ok, State::Warning, State::Critical, State::Unknown];

    fn from_exit(code: i32) -> State {
        match code {
            0 => State::Ok,
            1 => State::Warning,
            2 => State::Critical,
            _ => State::Unknown,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone)]
struct CheckResult {
    state: State,
    exitcode: i64,
    message: String,
    perfdata: String,
    metrics: Vec<Metric>,
}

impl CheckResult {
    fn unknown(message: impl Into<String>) -> Self {
        CheckResult {
            state: State::Unknown,
            exitcode: -1,
            message: message.into(),
            perfdata: String::new(),
            metrics: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "status": self.state.name(),
            "exitcode": self.exitcode,
            "message": self.message,
            "perfdata": self.perfdata,
            "metrics": self.metrics,
        })
    }
}

/// Runs one check's plugin and reads its result.
async fn run_check(name: &str, check: &HealthCheck, max: Duration) -> CheckResult {
    let Some((program, args)) = check.command.split_first() else {
        return CheckResult::unknown(format!(
            "check {name} has no command; set [agents.health.checks.{name}] command = \
             [\"/path/to/plugin\", \"args\"…]"
        ));
    };
    let timeout = check.timeout.min(max).max(Duration::from_millis(1));
    let spec = CommandSpec::new(program)
        .args(args.iter().cloned())
        .timeout(timeout);
    let out = match command::run(&spec).await {
        Ok(out) => out,
        Err(e) => {
            return CheckResult::unknown(format!(
                "{e} (the plugin is set by [agents.health.checks.{name}] command)"
            ));
        }
    };
    let (text, perfdata) = split_output(&out.stdout);
    let metrics = parse_perfdata(&perfdata);
    let fallback = || {
        out.stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .map(String::from)
    };
    let (state, exitcode, message) = match out.status {
        ExitKind::Exited(code) => {
            let message = if text.is_empty() {
                fallback().unwrap_or_else(|| format!("(no output; {})", out.status))
            } else {
                text
            };
            (State::from_exit(code), i64::from(code), message)
        }
        ExitKind::Signalled(_) => (State::Unknown, -1, out.summary()),
        ExitKind::TimedOut => (
            State::Unknown,
            -1,
            format!(
                "timed out after {}s and its process group was killed; make the plugin faster \
                 or raise [agents.health.checks.{name}] timeout (at most {}s)",
                timeout.as_secs_f64(),
                max.as_secs()
            ),
        ),
    };
    CheckResult {
        state,
        exitcode,
        message,
        perfdata,
        metrics,
    }
}

/// Splits a plugin's standard output into its message (the first line, before any `|`) and
/// its performance data (after that `|`, plus everything after the first `|` of a later line).
fn split_output(stdout: &str) -> (String, String) {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_default();
    let (text, perf) = first.split_once('|').unwrap_or((first, ""));
    let mut perfdata = vec![perf.trim().to_string()];
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perfdata.push(line.trim().to_string());
        } else if let Some((_, more)) = line.split_once('|') {
            in_perf = true;
            perfdata.push(more.trim().to_string());
        }
    }
    perfdata.retain(|p| !p.is_empty());
    (text.trim().to_string(), perfdata.join(" "))
}

/// One parsed performance-data item: `'label'=value[uom];[warn];[crit];[min];[max]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// The label, unquoted.
    pub label: String,
    /// The value; `None` when the plugin wrote `U` (it could not tell).
    pub value: Option<f64>,
    /// The unit of measure (`s`, `ms`, `%`, `B`, `KB`, `c`, …), empty when none.
    pub uom: String,
    /// The warning range as written (e.g. `10`, `10:20`, `@5:10`), if any.
    pub warn: Option<String>,
    /// The critical range as written, if any.
    pub crit: Option<String>,
    /// The smallest possible value, if given.
    pub min: Option<f64>,
    /// The largest possible value, if given.
    pub max: Option<f64>,
}

/// Parses Nagios performance data into metrics, skipping items it cannot read (no `=`, an
/// unterminated quote, a value that is neither a number nor `U`). A decimal comma is read as a
/// point.
pub fn parse_perfdata(text: &str) -> Vec<Metric> {
    let mut metrics = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (item, after) = next_item(rest);
        if let Some(metric) = item.and_then(|(label, spec)| parse_item(label, spec)) {
            metrics.push(metric);
        }
        rest = after.trim_start();
    }
    metrics
}

/// Reads one `label=spec` item from the start of `text`: the item (when it has a label and an
/// `=`) and what follows it.
fn next_item(text: &str) -> (Option<(String, &str)>, &str) {
    let label;
    let after_label;
    if let Some(quoted) = text.strip_prefix('\'') {
        // A quoted label; '' is a literal quote.
        let mut out = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if let Some(&(_, '\'')) = chars.peek() {
                    out.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                out.push(c);
            }
        }
        let Some(end) = end else {
            // Unterminated quote: the rest is garbage.
            return (None, "");
        };
        label = out;
        after_label = &quoted[end..];
    } else {
        let stop = text
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(text.len());
        label = text[..stop].to_string();
        after_label = &text[stop..];
    }
    let Some(spec_and_rest) = after_label.strip_prefix('=') else {
        // No `=` right after the label: skip to the next whitespace.
        let stop = after_label
            .find(char::is_whitespace)
            .unwrap_or(after_label.len());
        return (None, &after_label[stop..]);
    };
    let stop = spec_and_rest
        .find(char::is_whitespace)
        .unwrap_or(spec_and_rest.len());
    let (spec, rest) = spec_and_rest.split_at(stop);
    if label.is_empty() {
        return (None, rest);
    }
    (Some((label, spec)), rest)
}

/// Parses `value[uom];[warn];[crit];[min];[max]`.
fn parse_item(label: String, spec: &str) -> Option<Metric> {
    let mut fields = spec.split(';');
    let first = fields.next().unwrap_or_default();
    let (value, uom) = if first == "U" {
        (None, String::new())
    } else {
        let (number, uom) = split_number(first);
        (Some(number?), uom.to_string())
    };
    let range = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(String::from);
    let bound = |s: Option<&str>| s.and_then(|s| split_number(s).0);
    let warn = range(fields.next());
    let crit = range(fields.next());
    let min = bound(fields.next());
    let max = bound(fields.next());
    Some(Metric {
        label,
        value,
        uom,
        warn,
        crit,
        min,
        max,
    })
}

/// Splits a leading number (sign, digits, a decimal point or comma) from what follows it.
fn split_number(text: &str) -> (Option<f64>, &str) {
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit() || c == '.' || c == ',' || ((c == '-' || c == '+') && i == 0))
        })
        .map_or(text.len(), |(i, _)| i);
    let (number, rest) = text.split_at(end);
    let value = number
        .replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite());
    (value, rest)
}

impl Agent for Health {
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
                "check" => self.check(data).await,
                "run_all" => self.run_all().await,
                "list" => self.list(),
                other => ActionResult::fail(
                    StatusCode::UnknownAction,
                    format!(
                        "health has no action {other:?}; its actions are {}",
                        self.ddl.action_names().join(", ")
                    ),
                ),
            }
        })
    }
}
