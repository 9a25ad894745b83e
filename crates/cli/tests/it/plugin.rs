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
