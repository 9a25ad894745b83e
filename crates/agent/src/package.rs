//! The `package` agent (being built).

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::Value;

use crate::config::PackageConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `package` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/package.json");

/// The `package` agent.
#[derive(Debug, Clone)]
pub struct Package {
    ddl: Ddl,
    #[allow(dead_code)]
    config: PackageConfig,
}

impl Package {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &PackageConfig) -> Result<Self, DdlError> {
        Ok(Package {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }
}

impl Agent for Package {
    fn name(&self) -> &str {
        "package"
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
