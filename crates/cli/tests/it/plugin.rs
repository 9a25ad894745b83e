//! `muster plugin doc`: documentation from the DDL, no broker needed.

use crate::cli::muster;

#[test]
fn plugin_doc_lists_and_documents_agents() {
    muster(&["plugin", "doc"])
        .run()
        .code(0)
        .stdout_has("rpcutil  General helpful actions")
        .stdout_has("sim ");
    muster(&["plugin", "doc", "rpcutil"])
        .run()
        .code(0)
        .stdout_has("rpcutil — ")
        .stdout_has("version 0.1.0 · timeout 5 s")
        .stdout_has("    fact  string, required, validation ^[^\\s]+$, at most 512 characters")
        .stdout_has("    value  Value  Its value")
        .stdout_has("Summaries: summary of value")
        .stdout_has("Example: muster rpc rpcutil get_fact fact=<string>");
    muster(&["plugin", "doc", "nosuch"])
        .run()
        .code(2)
        .stderr_has("no DDL for agent \"nosuch\" on this machine; known agents: rpcutil, service, package, shell, file, cm, health, sim");
}

/// `muster … | head` ends quietly when the reader goes away, as Unix tools do, instead of
/// panicking on the failed write.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::cli::bin())
        .args(["plugin", "doc", "service"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The reader is gone before the first write.
    drop(child.stdout.take());
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
    Ok(())
}
