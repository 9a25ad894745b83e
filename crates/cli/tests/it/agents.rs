//! Agents end to end: DDL validation in the client, external agents on real daemons.

use std::path::{Path, PathBuf};

use muster_testkit::DaemonSpec;

use crate::cli::muster;
use crate::fixture::{self, arg, text_file};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/agents")
        .canonicalize()
        .unwrap_or_default()
}

on_both_brokers! {
    /// The example external agents (shell and Python) run on real daemons; the client
    /// validates their inputs with their DDLs and renders their outputs and summaries.
    fn external_agents_work_end_to_end() -> Result<()> {
        let dir = examples().display().to_string();
        let spec = |id: &str| DaemonSpec::new(id).config(&format!("[agents]\ndirectory = {dir:?}"));
        let Some(fleet) = fixture::fleet(&[spec("web1"), spec("web2")])? else {
            return Ok(());
        };
        let config = text_file(&format!("ddl_directory = {dir:?}\ntimeout = \"20s\"\n"))?;
        let with = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--config", arg(&config)]);
            fleet.muster(&a).run()
        };

        let run = with(&["rpc", "greeter", "greet", "name=Ada Lovelace", "greeting=Hi", "-I", "web1"]);
        run.code(0).stdout_has("Message: Hi, Ada Lovelace, from web1");

        let run = with(&["rpc", "disk", "usage", "path=/", "warn_percent=100", "--json"]);
        let report = run.code(0).json();
        assert_eq!(report["stats"]["ok"], 2, "{run}");
        assert!(report["replies"][0]["data"]["total_bytes"].as_u64().unwrap_or(0) > 0, "{run}");
        assert_eq!(report["aggregates"][0]["function"], "average", "{run}");
        assert_eq!(report["aggregates"][1]["counts"][0]["value"], "fine", "{run}");

        let run = with(&["rpc", "disk", "usage", "warn_percent=100", "--display", "all"]);
        run.code(0)
            .stdout_has("Used %: ")
            .stdout_has("Average use: ")
            .stdout_has("Summary of Over threshold:");

        // The client refuses what the DDL refuses, before sending anything.
        with(&["rpc", "greeter", "greet", "name=Ada1"])
            .code(2)
            .stderr_has("invalid input name: it does not match /^[A-Za-z ]+$/");
        with(&["rpc", "disk", "usage", "path=relative"])
            .code(2)
            .stderr_has("invalid input path");
        with(&["rpc", "greeter", "greet", "name=Ada", "greeting=Yo"])
            .code(2)
            .stderr_has("\"Yo\" is not one of Hello, Hi, Welcome");
        muster(&["plugin", "doc", "greeter", "--config", arg(&config)])
            .run()
            .code(0)
            .stdout_has("greet\n  Says hello")
            .stdout_has("one of Hello, Hi, Welcome");
        Ok(())
    }
}

on_both_brokers! {
    /// A broken external agent is refused at load, naming the file and the problem, and the
    /// daemon keeps running its other agents.
    fn a_broken_agent_does_not_take_the_daemon_down() -> Result<()> {
        let dir = tempfile::tempdir()?;
        for name in ["greeter", "greeter.json"] {
            std::fs::copy(examples().join(name), dir.path().join(name))?;
        }
        std::fs::write(dir.path().join("broken.json"), "{\"metadata\": {\"name\": \"broken\"}}")?;
        let spec = DaemonSpec::new("web1").config(&format!(
            "[agents]\ndirectory = {:?}",
            dir.path().display().to_string()
        ));
        let Some(fleet) = fixture::fleet(&[spec])? else {
            return Ok(());
        };
        let log = fleet.daemons[0].log();
        assert!(log.contains("broken.json") && log.contains("missing field"), "{log}");
        fleet
            .muster(&["rpc", "rpcutil", "agent_inventory", "-I", "web1", "--json"])
            .run()
            .code(0)
            .stdout_has("\"agent\":\"greeter\"");
        Ok(())
    }
}
