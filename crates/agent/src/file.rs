//! The `file` agent (being built).

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::Value;

use crate::config::FileConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `file` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/file.json");

/// The `file` agent.
#[derive(Debug, Clone)]
pub struct File {
    ddl: Ddl,
    #[allow(dead_code)]
    config: FileConfig,
}

impl File {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &FileConfig) -> Result<Self, DdlError> {
        Ok(File {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }
}

impl Agent for File {
    fn name(&self) -> &str {
        "file"
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
