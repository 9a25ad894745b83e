//! The `cm` agent (being built).

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::Value;

use crate::config::CmConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `cm` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/cm.json");

/// The `cm` agent.
#[derive(Debug, Clone)]
pub struct Cm {
    ddl: Ddl,
    #[allow(dead_code)]
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
}

impl Agent for Cm {
    fn name(&self) -> &str {
        "cm"
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
