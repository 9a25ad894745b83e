//! The `health` agent (being built).

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::Value;

use crate::config::HealthConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `health` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/health.json");

/// The `health` agent.
#[derive(Debug, Clone)]
pub struct Health {
    ddl: Ddl,
    #[allow(dead_code)]
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
}

impl Agent for Health {
    fn name(&self) -> &str {
        "health"
    }

    fn description(&self) -> &str {
        &self.ddl.metadata.description
    }

    fn actions(&self) -> &[&str] {
        &[]
    }

    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        _node: &'a NodeContext,
        _action: &'a str,
        _data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(async { ActionResult::fail(StatusCode::UnknownError, "being built") })
    }
}
