//! `muster plugin doc [AGENT]`: documentation rendered from an agent's DDL.

use std::path::Path;

use muster_client::{ClientConfig, ExitStatus};
use muster_proto::ddl::{Action, Ddl, Input, InputType};

use crate::Failure;
use crate::cmd::{ddl_for, known_ddls};

pub fn doc(agent: Option<&str>, config: Option<&Path>) -> Result<ExitStatus, Failure> {
    let config = ClientConfig::load(config).map_err(Failure::usage)?;
    let Some(agent) = agent else {
        println!("Agents with a DDL on this machine:");
        println!();
        let mut rows = Vec::new();
        for (name, _) in known_ddls(&config) {
            if let Some(ddl) = ddl_for(&config, &name)? {
                rows.push((name, ddl.metadata.description.clone()));
            }
        }
        let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, description) in rows {
            println!("  {name:<w$}  {description}");
        }
        println!();
        println!("muster plugin doc AGENT shows one agent's actions, inputs and outputs.");
        return Ok(ExitStatus::Ok);
    };
    let Some(ddl) = ddl_for(&config, agent)? else {
        let names: Vec<String> = known_ddls(&config).into_iter().map(|(n, _)| n).collect();
        return Err(Failure::usage(anyhow::anyhow!(
            "no DDL for agent {agent:?} on this machine; known agents: {}",
            names.join(", ")
        )));
    };
    print!("{}", render(&ddl));
    Ok(ExitStatus::Ok)
}

/// The whole document for one agent.
pub fn render(ddl: &Ddl) -> String {
    let m = &ddl.metadata;
    let mut out = format!("{} — {}\n\n", m.name, m.description);
    let mut facts = vec![
        format!("version {}", m.version),
        format!("timeout {} s", m.timeout),
    ];
    if let Some(author) = &m.author {
        facts.push(format!("author {author}"));
    }
    if let Some(license) = &m.license {
        facts.push(format!("license {license}"));
    }
    out.push_str(&format!("  {}\n", facts.join(" · ")));
    for action in &ddl.actions {
        out.push('\n');
        out.push_str(&render_action(&m.name, action));
    }
    out
}

fn input_line(input: &Input) -> String {
    let mut parts = vec![input.kind.name().to_string()];
    parts.push(
        if input.optional {
            "optional"
        } else {
            "required"
        }
        .to_string(),
    );
    if let Some(default) = input.default.as_ref().filter(|d| !d.is_null()) {
        parts.push(format!("default {default}"));
    }
    if let Some(validation) = &input.validation {
        parts.push(format!("validation {validation}"));
    }
    if let Some(max) = input.maxlength.filter(|m| *m > 0) {
        parts.push(format!("at most {max} characters"));
    }
    if input.kind == InputType::List
        && let Some(list) = &input.list
    {
        let values: Vec<String> = list
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    parts.join(", ")
}

fn render_action(agent: &str, action: &Action) -> String {
    let mut out = format!("{}\n  {}\n", action.action, action.description);
    if action.input.is_empty() {
        out.push_str("\n  Inputs: none\n");
    } else {
        out.push_str("\n  Inputs:\n");
        let w = action.input.keys().map(String::len).max().unwrap_or(0);
        for (name, input) in &action.input {
            out.push_str(&format!("    {name:<w$}  {}\n", input_line(input)));
            let text = if input.description.is_empty() {
                &input.prompt
            } else {
                &input.description
            };
            if !text.is_empty() {
                out.push_str(&format!("    {:<w$}  {text}\n", ""));
            }
        }
    }
    if !action.output.is_empty() {
        out.push_str("\n  Outputs:\n");
        let w = action.output.keys().map(String::len).max().unwrap_or(0);
        let wl = action
            .output
            .values()
            .map(|o| o.display_as.chars().count())
            .max()
            .unwrap_or(0);
        for (name, output) in &action.output {
            out.push_str(&format!(
                "    {name:<w$}  {:<wl$}  {}\n",
                output.display_as, output.description
            ));
        }
    }
    if !action.aggregate.is_empty() {
        let list: Vec<String> = action
            .aggregate
            .iter()
            .map(|a| format!("{} of {}", a.function, a.output().unwrap_or("?")))
            .collect();
        out.push_str(&format!("\n  Summaries: {}\n", list.join(", ")));
    }
    let example: Vec<String> = action
        .input
        .iter()
        .filter(|(_, i)| !i.optional && i.default.as_ref().is_none_or(|d| d.is_null()))
        .map(|(name, i)| format!("{name}=<{}>", i.kind.name()))
        .collect();
    out.push_str(&format!(
        "\n  Example: muster rpc {agent} {}{}{}\n",
        action.action,
        if example.is_empty() { "" } else { " " },
        example.join(" ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_ddl_renders() {
        let config = ClientConfig::default();
        for (name, _) in known_ddls(&config) {
            let ddl = ddl_for(&config, &name).unwrap().unwrap();
            let text = render(&ddl);
            assert!(text.starts_with(&format!("{name} — ")), "{text}");
            for action in &ddl.actions {
                assert!(text.contains(&format!("muster rpc {name} {}", action.action)));
            }
        }
    }
}
