//! The `service` agent (being built).

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::Value;

use crate::config::ServiceConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `service` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/service.json");

/// The `service` agent.
#[derive(Debug, Clone)]
pub struct Service {
    ddl: Ddl,
    #[allow(dead_code)]
    config: ServiceConfig,
}

impl Service {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &ServiceConfig) -> Result<Self, DdlError> {
        Ok(Service {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }
}

impl Agent for Service {
    fn name(&self) -> &str {
        "service"
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
