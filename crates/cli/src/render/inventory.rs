//! `muster inventory`: one node's agents, classes and facts.

use std::io::{self, Write};
use std::time::Duration;

use muster_proto::registration::SeenNode;
use serde_json::Value;

use super::{flatten, width};

/// One node's inventory, from its `rpcutil inventory` reply or its registration.
pub fn inventory(out: &mut dyn Write, data: &Value) -> io::Result<()> {
    let list = |key: &str| -> String {
        data[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    writeln!(
        out,
        "Inventory for {}:",
        data["identity"].as_str().unwrap_or("?")
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "   Version:     {}",
        data["version"].as_str().unwrap_or("?")
    )?;
    writeln!(out, "   Agents:      {}", list("agents"))?;
    writeln!(out, "   Collectives: {}", list("collectives"))?;
    writeln!(out, "   Classes:     {}", list("classes"))?;
    writeln!(out, "   Facts:")?;
    let mut lines = Vec::new();
    flatten("", &data["facts"], &mut lines);
    let w = width(lines.iter().map(|(k, _)| k.len()));
    for (key, value) in lines {
        writeln!(out, "      {key:<w$} = {value}")?;
    }
    Ok(())
}

/// `inventory --from-registry`: the node's latest registration, when the registry saw it,
/// and, when that was longer than `expect_seen` ago (`stale`), that it may be out of date.
pub fn from_registry(
    out: &mut dyn Write,
    node: &SeenNode,
    stale: bool,
    expect_seen: Duration,
) -> io::Result<()> {
    let record = serde_json::to_value(&node.record).unwrap_or_default();
    let time = muster_proto::time::rfc3339;
    inventory(out, &record)?;
    writeln!(
        out,
        "   Registry:    last seen {}, first seen {}",
        time(node.last_seen),
        time(node.first_seen)
    )?;
    if stale {
        let within = humantime::format_duration(expect_seen);
        writeln!(out)?;
        writeln!(
            out,
            "Not seen within {within}: this is how {} was when it last registered.",
            node.identity
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::text;
    use serde_json::json;

    #[test]
    fn an_inventory_lists_agents_classes_and_flattened_facts() {
        let data = json!({
            "identity": "web1", "version": "0.1.0", "agents": ["rpcutil", "shell"],
            "collectives": ["muster"], "classes": ["nginx"],
            "facts": {"os": {"family": "Debian"}, "cpus": 4},
        });
        assert_eq!(
            text(|out| inventory(out, &data)),
            "Inventory for web1:\n\
             \n\
             \x20  Version:     0.1.0\n\
             \x20  Agents:      rpcutil shell\n\
             \x20  Collectives: muster\n\
             \x20  Classes:     nginx\n\
             \x20  Facts:\n\
             \x20     cpus      = 4\n\
             \x20     os.family = Debian\n"
        );
    }
}
