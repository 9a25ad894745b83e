//! What more than one module needs: the node an action runs on, watching processes exit, and
//! running a freshly written script.
//!
//! Every module shares one process, so a test's fork can inherit another test's script while it
//! is still open for writing; until that child execs, running the script fails with `ETXTBSY`.
//! A script is therefore run with [`run_script`] or made ready with [`install_script`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use muster_agent::command::{CommandError, CommandOutput, CommandSpec, run};
use muster_agent::{Agent, AgentInfo, Inventory, NodeContext};
use tokio::time::{Instant, sleep};

/// A node with an empty inventory and no agents listed.
pub fn node() -> NodeContext {
    NodeContext {
        inventory: Arc::new(Inventory::default()),
        agents: Arc::new(Vec::new()),
        ..NodeContext::standalone(Inventory::default())
    }
}

/// The node `web1`, listing `agent` as its one agent.
pub fn node_with(agent: &dyn Agent) -> NodeContext {
    NodeContext {
        inventory: Arc::new(Inventory {
            identity: "web1".into(),
            ..Inventory::default()
        }),
        agents: Arc::new(vec![AgentInfo::of(agent)]),
        ..NodeContext::standalone(Inventory::default())
    }
}

/// Whether `pid` has exited: no `/proc/<pid>`, or a zombie waiting for its parent.
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Polls `cond` until it holds or `within` has passed; returns whether it held.
pub async fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// The pid a command wrote to `path`.
pub fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("the command wrote its grandchild's pid")
        .trim()
        .parse()
        .expect("a pid")
}

/// `run`, retrying while another test's fork briefly holds a freshly written script open for
/// writing (`ETXTBSY`).
pub async fn run_script(spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
    for _ in 0..200 {
        match run(spec).await {
            Err(CommandError::Spawn { source, .. })
                if source.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) =>
            {
                sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
    panic!("{spec:?} stayed busy");
}

/// Writes an executable `#!/bin/sh` script running `body` and waits until it can be run, by
/// running it with `STANDIN_PROBE` set, which makes it exit 0 at once.
pub async fn install_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        path,
        format!("#!/bin/sh\n[ -n \"$STANDIN_PROBE\" ] && exit 0\n{body}"),
    )
    .expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    match run_script(&CommandSpec::new(path).env("STANDIN_PROBE", "1")).await {
        Ok(out) if out.success() => {}
        other => panic!("the stand-in {} does not run: {other:?}", path.display()),
    }
}

/// One action of a Choria agent's DDL: its name, its inputs with whether each is optional, and
/// its outputs.
pub type ChoriaAction = (
    &'static str,
    &'static [(&'static str, bool)],
    &'static [&'static str],
);

/// Asserts that `ddl` has every action of `choria` with its inputs (optional where Choria's
/// are) and outputs, and uses only the aggregate functions every client has.
pub fn assert_superset(ddl: &muster_proto::ddl::Ddl, choria: &[ChoriaAction]) {
    for (action, inputs, outputs) in choria {
        let ours = ddl.action(action).unwrap_or_else(|| panic!("{action}"));
        for (input, optional) in *inputs {
            let ours = ours
                .input
                .get(*input)
                .unwrap_or_else(|| panic!("{action} {input}"));
            assert_eq!(ours.optional, *optional, "{action} {input}");
        }
        for output in *outputs {
            assert!(ours.output.contains_key(*output), "{action} {output}");
        }
    }
    for action in &ddl.actions {
        for aggregate in &action.aggregate {
            assert!(
                ["summary", "average", "boolean_summary"].contains(&aggregate.function.as_str()),
                "{}: {}",
                action.action,
                aggregate.function
            );
        }
    }
}
