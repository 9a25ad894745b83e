//! The `shell` agent (being built).

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::Value;

use crate::config::ShellConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `shell` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/shell.json");

/// The `shell` agent.
#[derive(Debug, Clone)]
pub struct Shell {
    ddl: Ddl,
    #[allow(dead_code)]
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
}

impl Agent for Shell {
    fn name(&self) -> &str {
        "shell"
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
