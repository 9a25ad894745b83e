//! `muster plugin doc [AGENT]`: documentation rendered from an agent's DDL.

use std::path::Path;

use muster_client::{ClientConfig, ExitStatus};

use crate::cmd::{ddl_for, known_ddls, print};
use crate::failure::Failure;
use crate::render;

pub fn doc(agent: Option<&str>, config: Option<&Path>) -> Result<ExitStatus, Failure> {
    let config = ClientConfig::load(config).map_err(Failure::usage)?;
    let Some(agent) = agent else {
        let mut rows = Vec::new();
        for (name, _) in known_ddls(&config) {
            if let Some(ddl) = ddl_for(&config, &name)? {
                rows.push((name, ddl.metadata.description.clone()));
            }
        }
        print(|out| render::plugin::list(out, &rows))?;
        return Ok(ExitStatus::Ok);
    };
    let Some(ddl) = ddl_for(&config, agent)? else {
        let names: Vec<String> = known_ddls(&config).into_iter().map(|(n, _)| n).collect();
        return Err(Failure::usage(anyhow::anyhow!(
            "no DDL for agent {agent:?} on this machine; known agents: {}",
            names.join(", ")
        )));
    };
    print(|out| render::plugin::doc(out, &ddl))?;
    Ok(ExitStatus::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_ddl_renders() {
        let config = ClientConfig::default();
        for (name, _) in known_ddls(&config) {
            let ddl = ddl_for(&config, &name).unwrap().unwrap();
            let mut out = Vec::new();
            render::plugin::doc(&mut out, &ddl).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with(&format!("{name} — ")), "{text}");
            for action in &ddl.actions {
                assert!(text.contains(&format!("muster rpc {name} {}", action.action)));
            }
        }
    }
}
