//! Choria's real agent DDLs end to end (`muster_testkit::choria`): on real daemons as external
//! agents served by stand-ins, documented by `muster plugin doc`, called with the client
//! validating against the same DDLs; an agent named like a built-in runs in its place only when
//! the node's config says `replace`, and the client says so when a node's agent differs from
//! the DDL it validated with.

use muster_testkit::DaemonSpec;
use muster_testkit::choria;

use crate::cli::muster;
use crate::fixture::{self, arg, text_file};

on_both_brokers! {
    fn choria_agents_load_document_and_serve() -> Result<()> {
        let agents = tempfile::tempdir()?;
        choria::install(agents.path())?;
        let dir = agents.path().display().to_string();
        let replace = r#"replace = ["service", "package", "shell", "rpcutil"]"#;
        // web1 runs every Choria agent, the four named like built-ins in their place; web2
        // has them in its directory but no `replace`, so it runs its own built-ins.
        let specs = [
            DaemonSpec::new("web1").config(&format!("[agents]\ndirectory = {dir:?}\n{replace}")),
            DaemonSpec::new("web2").config(&format!(
                "[agents]\ndirectory = {dir:?}\n[agents.shell]\nenabled = true"
            )),
        ];
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let log = fleet.daemons[1].log();
        assert!(
            log.contains("shell.json") && log.contains(r#"replace = ["shell"]"#),
            "web2 says why it runs its own shell:\n{log}"
        );
        let config = text_file(&format!("ddl_directory = {dir:?}\ntimeout = \"20s\"\n"))?;
        let with = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--config", arg(&config)]);
            fleet.muster(&a).run()
        };

        // Every DDL renders; the list names every agent.
        let list = muster(&["plugin", "doc", "--config", arg(&config)]).run();
        list.code(0);
        for agent in choria::AGENTS {
            assert!(list.stdout.contains(agent), "{agent} not listed:\n{list}");
            let ddl = choria::ddl(agent)?;
            let doc = muster(&["plugin", "doc", agent, "--config", arg(&config)]).run();
            doc.code(0).stdout_has(&ddl.metadata.description);
            for action in &ddl.actions {
                assert!(doc.stdout.contains(&action.action), "{agent} {}:\n{doc}", action.action);
            }
        }

        // web1 serves them: nrpe's nagios_states is summed up across the replies.
        let run = with(&["rpc", "nrpe", "runcommand", "command=check_load", "-I", "web1", "--json"]);
        let report = run.code(0).json();
        assert_eq!(report["stats"]["ok"], 1, "{run}");
        assert_eq!(report["aggregates"][0]["function"], "nagios_states", "{run}");
        assert_eq!(report["aggregates"][0]["counts"][3]["value"], "UNKNOWN", "{run}");
        let seen = choria::request_seen(&agents.path().join("nrpe"), "runcommand");
        assert_eq!(seen.map(|s| s["data"]["command"].clone()), Some("check_load".into()));

        // Choria's shell agent is callable where the node runs it.
        with(&["rpc", "shell", "run", "command=uptime", "-I", "web1", "--display", "all"])
            .code(0)
            .stdout_has("standing in");

        // The client validates with Choria's DDLs: a shell expansion never leaves it.
        with(&["rpc", "puppet", "runonce", "tags=$(reboot)", "-I", "web1"])
            .code(2)
            .stderr_has("invalid input tags");

        // web2 runs its built-in shell, which has no `start`: the client, holding Choria's
        // DDL, says the node's agent differs.
        with(&["rpc", "shell", "start", "command=uptime", "-I", "web2"])
            .code(1)
            .stderr_has("refused what this machine's DDL of shell accepts (web2:")
            .stderr_has("muster rpc rpcutil agent_inventory -I web2");
        Ok(())
    }
}
