//! Agents end to end: DDL validation in the client, external agents on real daemons.

use std::path::{Path, PathBuf};

use muster_testkit::DaemonSpec;

use crate::cli::muster;
use crate::fixture::{self, arg, stand_in, text_file};

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
        // Later, `show` labels the outputs with the same DDLs, from the same config.
        let id = report["request_id"].as_str().unwrap_or_default();
        with(&["show", id, "--display", "all"])
            .code(0)
            .stdout_has("Used %: ")
            .stdout_has("Average use: ");

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

on_both_brokers! {
    /// `muster rpc service restart service=nginx -C web` reports per node and exits by
    /// docs/design.md §3; `muster rpc package status package=openssl` ends with the versions
    /// across the fleet.
    /// Every system command is a stand-in script.
    fn service_and_package_across_a_fleet() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let calls = |node: &str| d.join(format!("calls-{node}"));
        let mut specs = Vec::new();
        for (node, class, healthy, openssl) in [
            ("web1", "web", true, "3.0.11-1~deb12u2"),
            ("web2", "web", false, "3.0.11-1~deb12u2"),
            ("db1", "db", true, "1.1.1w-0+deb11u1"),
        ] {
            let log = calls(node).display().to_string();
            let systemctl = if healthy {
                format!("echo \"$@\" >> {log}\ncase \"$1\" in is-active) echo active;; esac\nexit 0")
            } else {
                format!(
                    "echo \"$@\" >> {log}\ncase \"$1\" in\n  is-active) echo failed; exit 3;;\n  \
                     *) echo \"Job for $2.service failed because the control process exited with error code.\" >&2; exit 1;;\nesac"
                )
            };
            let systemctl = stand_in(d, &format!("systemctl-{node}"), &systemctl)?;
            let query = stand_in(
                d,
                &format!("dpkg-query-{node}"),
                &format!("printf 'install ok installed\\t{openssl}\\n'"),
            )?;
            specs.push(DaemonSpec::new(node).classes(&[class]).config(&format!(
                "[agents.service]\nsystemctl = {systemctl:?}\n[agents.package]\nquery = {query:?}"
            )));
        }
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };

        let run = fleet
            .muster(&["rpc", "service", "restart", "service=nginx", "-C", "web"])
            .run();
        run.code(1)
            .stdout_has("web2: FAILED (status 1): restart nginx failed")
            .stdout_has("Summary of Service Status:")
            .stdout_has("Finished 2 of 2 nodes in ")
            .stdout_has("Failed: web2 (Aborted)");
        assert!(!run.stdout.contains("web1"), "only failures by default:\n{run}");
        assert!(
            std::fs::read_to_string(calls("web1"))?.contains("restart nginx"),
            "{run}"
        );
        assert!(!calls("db1").exists(), "db1 is not in class web:\n{run}");

        let run = fleet
            .muster(&["rpc", "package", "status", "package=openssl"])
            .run();
        run.code(0).stdout_has("Summary of Ensure:");
        let line = |version: &str| {
            run.stdout
                .lines()
                .find(|l| l.trim_start().starts_with(version))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        };
        assert_eq!(line("3.0.11-1~deb12u2").as_deref(), Some("2 nodes"), "{run}");
        assert_eq!(line("1.1.1w-0+deb11u1").as_deref(), Some("1 node"), "{run}");

        fleet
            .muster(&["rpc", "service", "restart", "service=nginx;reboot", "-C", "web"])
            .run()
            .code(2)
            .stderr_has("invalid input service");
        Ok(())
    }
}

on_both_brokers! {
    /// `mco`-habit commands run unchanged against a real daemon: Choria's package, rpcutil
    /// actions and inputs, answered with Choria's outputs. The package tools are stand-in
    /// scripts keeping a package database in a temporary directory.
    fn mco_habit_commands_run_unchanged() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let db = d.join("db");
        std::fs::create_dir(&db)?;
        let db = db.display().to_string();
        let query = stand_in(
            d,
            "dpkg-query",
            &format!(
                "for a in \"$@\"; do pkg=\"$a\"; done\n\
                 if [ \"$1\" = --list ]; then printf 'ii  foo  1.2-3  amd64  Foo\\nii  bar  2.0  all  Bar\\n'; exit 0; fi\n\
                 if [ -f {db}/$pkg ]; then cat {db}/$pkg; exit 0; fi\n\
                 echo \"dpkg-query: no packages found matching $pkg\" >&2; exit 1"
            ),
        )?;
        let manager = stand_in(
            d,
            "apt-get",
            &format!(
                "for a in \"$@\"; do pkg=\"$a\"; done\n\
                 case \"$1\" in install)\n\
                   n=\"${{pkg%%=*}}\"; v=\"${{pkg#*=}}\"; [ \"$v\" = \"$pkg\" ] && v=1.0-1\n\
                   printf 'install ok installed\\t%s\\tamd64\\n' \"$v\" > {db}/$n\n\
                   echo \"Setting up $n ($v) ...\";;\n\
                 esac"
            ),
        )?;
        let spec = DaemonSpec::new("web1")
            .facts(serde_json::json!({"role": "web"}))
            .config(&format!("[agents.package]\nquery = {query:?}\nmanager = {manager:?}"));
        let Some(fleet) = fixture::fleet(&[spec])? else {
            return Ok(());
        };
        let rpc = |args: &[&str]| {
            let mut a = vec!["rpc"];
            a.extend(args);
            fleet.muster(&a).run()
        };

        let run = rpc(&["package", "status", "package=foo"]);
        run.code(0).stdout_has("Ensure: absent").stdout_has("Summary of Ensure:");
        let run = rpc(&["package", "install", "package=foo", "version=1.2-3", "--json"]);
        let data = &run.code(0).json()["replies"][0]["data"];
        for (key, value) in [
            ("ensure", "1.2-3"),
            ("version", "1.2"),
            ("release", "3"),
            ("epoch", "0"),
            ("arch", "amd64"),
            ("provider", "apt"),
            ("output", "Setting up foo (1.2-3) ...\n"),
        ] {
            assert_eq!(data[key], value, "{key}: {run}");
        }
        rpc(&["package", "status", "package=foo"])
            .code(0)
            .stdout_has("Summary of Arch:")
            .stdout_has("Provider: apt");
        let run = rpc(&["package", "count", "--json"]);
        assert_eq!(run.code(0).json()["replies"][0]["data"]["output"], "2", "{run}");
        rpc(&["package", "yum_clean", "mode=all"])
            .code(1)
            .stdout_has("yum_clean needs the yum or dnf package backend");

        rpc(&["rpcutil", "collective_info"])
            .code(0)
            .stdout_has("Main Collective: muster")
            .stdout_has("Summary of All Collectives:");
        let run = rpc(&["rpcutil", "get_config_item", "item=agents.package.backend", "--json"]);
        assert_eq!(run.code(0).json()["replies"][0]["data"]["value"], "apt", "{run}");
        rpc(&["rpcutil", "get_config_item", "item=key"])
            .code(1)
            .stdout_has("names secret material");
        let run = rpc(&["rpcutil", "get_data", "source=fact", "query=role", "--json"]);
        assert_eq!(run.code(0).json()["replies"][0]["data"]["value"], "web", "{run}");
        let run = rpc(&["rpcutil", "daemon_stats", "--json"]);
        let stats = &run.code(0).json()["replies"][0]["data"];
        assert!(stats["pid"].as_u64().unwrap_or(0) > 0, "{run}");
        assert!(stats["passed"].as_u64().unwrap_or(0) >= 1, "{run}");
        assert_eq!(stats["total"], stats["requests_received"], "{run}");
        Ok(())
    }
}
