//! The `service` agent: starts, stops, restarts and reloads systemd services and reports whether
//! they run.
//!
//! Every action runs the configured `systemctl` ([`ServiceConfig::systemctl`]):
//! `systemctl <start|stop|restart|reload> <unit>` and then `systemctl is-active <unit>` to
//! report the state it left; `status` runs only `is-active`. `is-active` exits non-zero for a
//! unit that is not active — that is an answer, not a failure. A failing action is `Aborted`
//! with the command's summary, and the reply still carries the state when it can be read.
//!
//! All the commands of one action share a time budget ([`Service::command_timeout`], by default
//! the DDL's timeout), so a hung `systemctl` is killed and reported before the dispatcher gives
//! up on the action.

use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::command::{self, CommandOutput, CommandSpec, ExitKind};
use crate::config::ServiceConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `service` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/service.json");

/// A command is not started with less time left than this.
const MIN_COMMAND_TIME: Duration = Duration::from_millis(50);

/// The `service` agent.
#[derive(Debug, Clone)]
pub struct Service {
    ddl: Ddl,
    config: ServiceConfig,
    command_timeout: Duration,
}

impl Service {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &ServiceConfig) -> Result<Self, DdlError> {
        let ddl = Ddl::parse(DDL)?;
        let command_timeout = Duration::from_secs(ddl.metadata.timeout);
        Ok(Service {
            ddl,
            config: config.clone(),
            command_timeout,
        })
    }

    /// The same agent with a different time budget for the commands of one action (tests use a
    /// short one). A budget longer than the DDL's timeout is cut short by the dispatcher.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long the commands of one action may take together: by default the DDL's timeout.
    /// A command still running then is killed, which takes at most
    /// [`command::DEFAULT_KILL_GRACE`] and [`command::DRAIN_GRACE`] more — less than the
    /// [`DISPATCH_GRACE`](crate::DISPATCH_GRACE) the dispatcher allows past the timeout — so
    /// the reply says which command hung.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    async fn run(&self, action: &str, data: &Value) -> ActionResult {
        if self.ddl.action(action).is_none() {
            return ActionResult::fail(
                StatusCode::UnknownAction,
                format!(
                    "service has no action {action:?}; its actions are {}",
                    self.ddl.action_names().join(", ")
                ),
            );
        }
        let Some(service) = data.get("service").and_then(Value::as_str) else {
            return ActionResult::fail(
                StatusCode::MissingData,
                "missing input service: give the unit's name, e.g. service=nginx",
            );
        };
        let deadline = Instant::now() + self.command_timeout;

        if action != "status" {
            let spec = self.systemctl([action, service]);
            let failure = match time_left(deadline) {
                None => Some(format!(
                    "its time budget of {}ms is too short to run systemctl",
                    self.command_timeout.as_millis()
                )),
                Some(left) => match command::run(&spec.timeout(left)).await {
                    Err(e) => Some(e.to_string()),
                    Ok(out) if out.success() => None,
                    Ok(out) => Some(out.summary()),
                },
            };
            if let Some(why) = failure {
                let data = match self.state(service, deadline).await {
                    Ok(state) => state.data(),
                    Err(_) => json!({}),
                };
                return ActionResult::fail_with(
                    StatusCode::Aborted,
                    format!(
                        "{action} {service} failed: {why}; see `systemctl status {service}` and \
                         `journalctl -u {service}` on the node"
                    ),
                    data,
                );
            }
        }

        match self.state(service, deadline).await {
            Ok(state) => ActionResult::ok(state.data()),
            Err(why) if action == "status" => ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "cannot read the state of {service}: {why}; check that systemd runs on the \
                     node and that the daemon may run `{} is-active`",
                    self.config.systemctl.display()
                ),
            ),
            Err(why) => ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "{action} {service} succeeded, but its state cannot be read: {why}; ask \
                     again with the status action"
                ),
            ),
        }
    }

    /// `systemctl <args>`, with messages in English.
    fn systemctl<const N: usize>(&self, args: [&str; N]) -> CommandSpec {
        CommandSpec::new(&self.config.systemctl)
            .args(args)
            .env("LC_ALL", "C")
    }

    /// The unit's state, from `systemctl is-active`; the error says why it could not be read.
    async fn state(&self, service: &str, deadline: Instant) -> Result<State, String> {
        let Some(left) = time_left(deadline) else {
            return Err("no time was left to run `systemctl is-active`".to_string());
        };
        let spec = self.systemctl(["is-active", service]).timeout(left);
        let out = command::run(&spec).await.map_err(|e| e.to_string())?;
        State::parse(&out).ok_or_else(|| out.summary())
    }
}

/// The time left before `deadline`, if it is enough to start a command.
fn time_left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (left >= MIN_COMMAND_TIME).then_some(left)
}

/// A unit's state as `systemctl is-active` printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    /// The word it printed: `active`, `inactive`, `failed`, `activating`…
    systemd: String,
}

impl State {
    /// The state from `is-active`'s output: the first word it printed, whatever its exit status
    /// (non-zero for anything but `active`). `None` when it printed nothing or did not exit by
    /// itself — then it failed to answer.
    fn parse(out: &CommandOutput) -> Option<State> {
        if !matches!(out.status, ExitKind::Exited(_)) {
            return None;
        }
        let word = out.stdout.split_whitespace().next()?;
        Some(State {
            systemd: word.to_string(),
        })
    }

    /// `running`, `stopped`, or the raw word for the states in between.
    fn status(&self) -> &str {
        match self.systemd.as_str() {
            "active" => "running",
            "inactive" | "failed" | "unknown" => "stopped",
            other => other,
        }
    }

    /// The action's outputs.
    fn data(&self) -> Value {
        json!({ "status": self.status(), "systemd_state": self.systemd })
    }
}

impl Agent for Service {
    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        _node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(self.run(action, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32, stdout: &str) -> CommandOutput {
        CommandOutput {
            status: ExitKind::Exited(code),
            stdout: stdout.into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration: Duration::from_millis(3),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn is_active_words_become_a_status() {
        let table = [
            (exited(0, "active\n"), Some(("running", "active"))),
            (exited(3, "inactive\n"), Some(("stopped", "inactive"))),
            (exited(3, "failed\n"), Some(("stopped", "failed"))),
            (exited(3, "unknown\n"), Some(("stopped", "unknown"))),
            (
                exited(3, "activating\n"),
                Some(("activating", "activating")),
            ),
            (exited(0, "reloading"), Some(("reloading", "reloading"))),
            (exited(1, ""), None),
            (exited(1, "  \n"), None),
        ];
        for (out, want) in table {
            let got = State::parse(&out);
            let got = got.as_ref().map(|s| (s.status(), s.systemd.as_str()));
            assert_eq!(got, want, "{out:?}");
        }
        let mut killed = exited(0, "active\n");
        killed.status = ExitKind::TimedOut;
        assert_eq!(State::parse(&killed), None);
    }

    #[test]
    fn a_command_overrunning_the_budget_is_killed_before_dispatch_gives_up() {
        assert!(command::DEFAULT_KILL_GRACE + command::DRAIN_GRACE < crate::DISPATCH_GRACE);
    }
}
