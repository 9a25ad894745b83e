//! Choria's agent DDLs, unchanged (`fixtures/choria`, each with its source and licence in the
//! README there), and stand-in executables that serve them as external agents: each records
//! the request it got and answers with every output its action declares.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use muster_proto::ddl::{Action, Ddl};
use serde_json::{Map, Value, json};

/// The directory holding the DDLs.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/choria")
}

/// Every agent there: the choria-plugins agents, then go-choria's own.
pub const AGENTS: &[&str] = &[
    "service",
    "package",
    "puppet",
    "nrpe",
    "process",
    "shell",
    "iptables",
    "nettest",
    "rpcutil",
    "choria_util",
    "scout",
    "choria_provision",
    "aaa_signer",
    "choria_registry",
    "executor",
];

/// The agents of these that are also Muster's built-in agents (a node runs the external one
/// only when its config names it in `replace`).
pub const BUILT_IN: &[&str] = &["service", "package", "shell", "rpcutil"];

/// The text of `agent`'s DDL.
pub fn ddl_text(agent: &str) -> Result<String> {
    let path = dir().join(format!("{agent}.json"));
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

/// `agent`'s DDL, parsed.
pub fn ddl(agent: &str) -> Result<Ddl> {
    Ddl::parse(&ddl_text(agent)?).map_err(|e| anyhow::anyhow!("{agent}.json: {e}"))
}

/// A value for a required input, by its name, that each DDL naming it accepts.
pub fn sample_input(name: &str) -> Option<Value> {
    Some(match name {
        "request" => json!("{}"),
        "token" | "signature" => json!("t0k3n"),
        "config" => json!(r#"{"plugin.choria.srv_domain":"example.net"}"#),
        "name" => json!("rpcutil"),
        "type" => json!("notify"),
        "transition" => json!("enable"),
        "id" => json!("1"),
        "signal" => json!(15),
        "ipaddr" => json!("192.0.2.1"),
        "fqdn" => json!("localhost"),
        "port" => json!(22),
        "command" => json!("check_load"),
        "package" => json!("zsh"),
        "item" => json!("collectives"),
        "source" => json!("fact"),
        "fact" => json!("os"),
        "facts" => json!("os, kernel"),
        "service" => json!("nginx"),
        "handle" => json!("job-1"),
        _ => return None,
    })
}

/// The required inputs of `action`, with sample values.
pub fn sample_inputs(action: &Action) -> Map<String, Value> {
    action
        .input
        .iter()
        .filter(|(_, input)| !input.optional && input.default.as_ref().is_none_or(Value::is_null))
        .filter_map(|(name, _)| Some((name.clone(), sample_input(name)?)))
        .collect()
}

/// A value of an output's declared type.
pub fn sample_output(kind: Option<&str>) -> Value {
    match kind {
        Some("integer") => json!(1),
        Some("number") | Some("float") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("hash") => json!({}),
        _ => json!("standing in"),
    }
}

/// The reply the stand-in for `action` gives: every output, of its type.
pub fn sample_reply(action: &Action) -> Value {
    let data: Map<String, Value> = action
        .output
        .iter()
        .map(|(name, output)| (name.clone(), sample_output(output.kind.as_deref())))
        .collect();
    json!({"statuscode": 0, "statusmsg": "OK", "data": data})
}

/// The shell script (after its `#!` line) standing in for `agent`: it saves the request it
/// reads as `<its path>.<action>.request` and prints the action's [`sample_reply`].
pub fn standin_body(agent: &str) -> Result<String> {
    let ddl = ddl(agent)?;
    let mut body =
        String::from("cat > \"$0.$MUSTER_ACTION.request\"\ncase \"$MUSTER_ACTION\" in\n");
    for action in &ddl.actions {
        // Sample replies hold no single quote, so they quote as they are.
        body.push_str(&format!(
            "  {}) printf '%s\\n' '{}' ;;\n",
            action.action,
            sample_reply(action)
        ));
    }
    body.push_str("  *) echo \"no action $MUSTER_ACTION\" >&2; exit 3 ;;\nesac\n");
    Ok(body)
}

/// Writes every agent into `dir` as an external agent: its DDL and its stand-in.
pub fn install(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for agent in AGENTS {
        std::fs::write(dir.join(format!("{agent}.json")), ddl_text(agent)?)?;
        let program = dir.join(agent);
        std::fs::write(&program, format!("#!/bin/sh\n{}", standin_body(agent)?))?;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The request the stand-in at `program` saved for `action`, if it ran.
pub fn request_seen(program: &Path, action: &str) -> Option<Value> {
    let mut path = program.as_os_str().to_owned();
    path.push(format!(".{action}.request"));
    let text = std::fs::read_to_string(PathBuf::from(path)).ok()?;
    serde_json::from_str(&text).ok()
}
