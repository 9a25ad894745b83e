//! The `sim` agent: actions that sleep, fail or return payloads of a given size, so tests and
//! benchmarks can make a fleet behave any way they need.

use std::time::Duration;

use muster_agent::{ActionFuture, ActionResult, Agent, NodeContext};
use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::{Value, json};

/// The `sim` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/sim.json");

/// The `sim` agent of virtual nodes.
#[derive(Debug, Clone)]
pub struct SimAgent {
    ddl: Ddl,
}

impl SimAgent {
    /// The agent with its shipped DDL.
    pub fn new() -> Result<Self, DdlError> {
        Ok(SimAgent {
            ddl: Ddl::parse(DDL)?,
        })
    }
}

/// The longest `sleep` honoured.
const MAX_SLEEP: Duration = Duration::from_secs(600);
/// The largest `payload` produced.
const MAX_PAYLOAD: u64 = 8 * 1024 * 1024;

/// A number input given as a JSON number or a string.
fn number(data: &Value, key: &str) -> Result<f64, ActionResult> {
    let value = data.get(key).ok_or_else(|| {
        ActionResult::fail(StatusCode::MissingData, format!("missing input {key}"))
    })?;
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            ActionResult::fail(
                StatusCode::InvalidData,
                format!("input {key} must be a number ≥ 0, got {value}"),
            )
        })
}

impl Agent for SimAgent {
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
                "sleep" => match number(data, "seconds") {
                    Ok(secs) => {
                        // Bounded before it becomes a duration: `seconds` comes from the
                        // network, and 1e300 is past what a Duration holds.
                        let d = muster_proto::time::duration_at_most(secs, MAX_SLEEP);
                        tokio::time::sleep(d).await;
                        ActionResult::ok(json!({ "slept": d.as_secs_f64() }))
                    }
                    Err(e) => e,
                },
                "fail" => ActionResult::fail(
                    StatusCode::Aborted,
                    data.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("failed on request")
                        .to_string(),
                ),
                "payload" => match number(data, "bytes") {
                    Ok(n) => {
                        // `as` saturates: 1e300 becomes u64::MAX, then the maximum.
                        let n = usize::try_from((n as u64).min(MAX_PAYLOAD)).unwrap_or(0);
                        ActionResult::ok(json!({ "payload": "x".repeat(n) }))
                    }
                    Err(e) => e,
                },
                "echo" => ActionResult::ok(data.clone()),
                other => ActionResult::fail(
                    StatusCode::UnknownAction,
                    format!(
                        "sim has no action {other:?}; its actions are {}",
                        self.ddl.action_names().join(", ")
                    ),
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// Inputs far past the longest sleep are cut to it, not turned into a duration first
    /// (which panics for 1e300 seconds): the first poll starts the sleep.
    #[test]
    fn a_sleep_of_1e300_seconds_does_not_panic() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let agent = SimAgent::new().unwrap();
        let node = NodeContext::standalone(muster_agent::Inventory {
            identity: "sim1".into(),
            facts: json!({}),
            classes: vec![],
            agents: vec!["sim".into()],
            collectives: vec!["muster".into()],
        });
        for seconds in [
            json!(1e300),
            json!("1e300"),
            json!(f64::MAX),
            json!(u64::MAX),
        ] {
            let data = json!({ "seconds": seconds });
            assert!(agent.call(&node, "sleep", &data).now_or_never().is_none());
        }
        for bytes in [json!(1e300), json!(u64::MAX)] {
            let data = json!({ "bytes": bytes });
            let done = agent.call(&node, "payload", &data).now_or_never();
            assert!(done.is_some(), "a payload is made at once");
        }
    }
}
