//! `muster plugin doc`: documentation rendered from an agent's DDL.

use std::io::{self, Write};

use muster_proto::ddl::{Action, Ddl, Input, InputType};

/// `muster plugin doc`: the agents this machine has a DDL for, `(name, description)`.
pub fn list(out: &mut dyn Write, agents: &[(String, String)]) -> io::Result<()> {
    writeln!(out, "Agents with a DDL on this machine:")?;
    writeln!(out)?;
    let w = agents.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, description) in agents {
        writeln!(out, "  {name:<w$}  {description}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "muster plugin doc AGENT shows one agent's actions, inputs and outputs."
    )
}

/// `muster plugin doc AGENT`: the whole document for one agent.
pub fn doc(out: &mut dyn Write, ddl: &Ddl) -> io::Result<()> {
    out.write_all(text(ddl).as_bytes())
}

/// The document, as text.
fn text(ddl: &Ddl) -> String {
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
            .map(|a| {
                let what = format!("{} of {}", a.function, a.output().unwrap_or("?"));
                if a.computed(action) {
                    what
                } else {
                    format!("{what} (not computed by this version)")
                }
            })
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
    use crate::render::tests::text as rendered;

    #[test]
    fn the_list_aligns_descriptions() {
        let agents = [
            ("rpcutil".to_string(), "Discovery".to_string()),
            ("sh".to_string(), "Commands".to_string()),
        ];
        let text = rendered(|out| list(out, &agents));
        assert!(
            text.contains("  rpcutil  Discovery\n  sh       Commands\n"),
            "{text}"
        );
    }
}
