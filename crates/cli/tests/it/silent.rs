//! Nothing fails silently (docs/design.md §3): nodes that deny a request, or answer discovery
//! with a denial, are counted and named; replies the client cannot verify are counted under
//! their reason; exit 4 is kept for "nothing answered at all". Broadcast discovery says what it
//! cannot see, and long lists of missing nodes are grouped by reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use muster_testkit::pki::{CallerFiles, Pki};
use muster_testkit::{DaemonSpec, wait_for};
use serde_json::Value;

use crate::cli::{Run, muster, names};
use crate::fixture::{self, arg, node_list};

/// Discovery that waits long enough for every daemon on a loaded test machine.
const PATIENT: &str = "discovery_quiet = \"500ms\"\ndiscovery_timeout = \"4s\"";

const THREE: [&str; 3] = ["web1", "web2", "web3"];

/// A client config signing as `caller` but checking replies against `issuer`.
fn config_with_issuer(dir: &Path, caller: &CallerFiles, issuer: &Path) -> Result<PathBuf> {
    let path = dir.join("client-other-issuer.toml");
    std::fs::write(
        &path,
        format!(
            "key = {:?}\ncredential = {:?}\nissuer = {issuer:?}\n{PATIENT}\n",
            caller.key, caller.credential
        ),
    )?;
    Ok(path)
}

fn time_lines(run: &Run) -> Vec<&str> {
    run.stdout.lines().filter(|l| l.contains("time=")).collect()
}

on_both_brokers! {
    /// Signed daemons whose rpcutil policy lets the caller read facts but not ping: every
    /// discovery answer is a denial. The nodes answered, so this is not "no match": ping and
    /// `rpc rpcutil ping` report three denied nodes (exit 1), `find` lists them and says they
    /// denied discovery, and a request the policy allows runs on them.
    fn denials_are_counted_and_named() -> Result<()> {
        let pki = Pki::new()?;
        pki.policy("rpcutil", "policy default deny\nallow\talice\tget_fact\t*\t*\n")?;
        let specs = THREE
            .iter()
            .map(|n| pki.signed(DaemonSpec::new(n)))
            .collect::<Result<Vec<_>>>()?;
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let alice = pki.caller("alice", None)?;
        let config = pki.client_config(&alice, "alice", PATIENT)?;
        let config = config.to_str().unwrap_or_default();
        let run = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--config", config]);
            fleet.muster(&a).run()
        };
        let denied = "3 nodes denied rpcutil ping: not authorized — see the node's audit log";

        // ping: the discovery answers are the pings, each a denial.
        let ping = run(&["ping"]);
        ping.code(1).stdout_has(denied);
        assert!(!ping.stderr.contains("No nodes matched"), "{ping}");
        assert_eq!(time_lines(&ping), Vec::<&str>::new(), "{ping}");
        let report = run(&["ping", "--json"]).code(1).json();
        assert_eq!(report["stats"]["expected"], 3, "{report}");
        assert_eq!(report["stats"]["failed"], 3, "{report}");
        for reply in report["replies"].as_array().into_iter().flatten() {
            assert_eq!(reply["statuscode"], 6, "{report}");
        }
        assert_eq!(report["discovery"]["method"], "broadcast", "{report}");
        assert_eq!(report["discovery"]["failed"].as_array().map(Vec::len), Some(3), "{report}");

        // find: the nodes matched the filter (a node checks it before its policy).
        let find = run(&["find"]);
        find.code(0).stderr_has("3 nodes denied rpcutil ping (discovery): not authorized — see the node's audit log");
        let mut found: Vec<String> = find.stdout.lines().map(String::from).collect();
        found.sort();
        assert_eq!(found, names(&THREE), "{find}");

        // rpc rpcutil ping: sent to the three, denied again.
        let rpc = run(&["rpc", "rpcutil", "ping"]);
        rpc.code(1).stdout_has(denied);
        let report = run(&["rpc", "rpcutil", "ping", "--json"]).code(1).json();
        assert_eq!((report["stats"]["expected"].as_u64(), report["stats"]["failed"].as_u64()), (Some(3), Some(3)), "{report}");

        // A request the policy allows runs on the nodes that denied discovery.
        let facts = run(&["rpc", "rpcutil", "get_fact", "fact=x"]);
        facts
            .code(0)
            .stdout_has("Finished 3 of 3 nodes")
            .stdout_has("3 nodes denied rpcutil ping (discovery): not authorized — see the node's audit log; they matched the filter, so they were sent the request");

        // ping --nodes: every listed node denies; none gets a time= line.
        let list = node_list(&THREE)?;
        let ping = run(&["ping", "--nodes", arg(&list)]);
        ping.code(1).stdout_has(denied);
        assert_eq!(time_lines(&ping), Vec::<&str>::new(), "{ping}");
        Ok(())
    }
}

on_both_brokers! {
    /// A client config naming another issuer than the nodes': every reply is ignored, and the
    /// report says how many and why — not "no nodes matched". An unsigned daemon's reply is
    /// ignored under its own reason.
    fn unverifiable_replies_are_counted_and_named() -> Result<()> {
        let pki = Pki::new()?;
        pki.policy("rpcutil", "policy default allow\n")?;
        let mut specs = THREE
            .iter()
            .map(|n| pki.signed(DaemonSpec::new(n)))
            .collect::<Result<Vec<_>>>()?;
        specs.push(DaemonSpec::new("plain1"));
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let other = Pki::new()?;
        let alice = pki.caller("alice", None)?;
        let dir = tempfile::tempdir()?;
        let config = config_with_issuer(dir.path(), &alice, &other.issuer_public())?;
        let config = config.to_str().unwrap_or_default();
        let run = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--config", config]);
            fleet.muster(&a).run()
        };
        let wrong = "3 replies ignored: not signed by the configured issuer";
        let unsigned = "1 reply ignored: not signed, and the client config names an issuer";

        let ping = run(&["ping"]);
        ping.code(1)
            .stdout_has("No node is expected: no answer could be verified.")
            .stdout_has(wrong)
            .stdout_has(unsigned);
        assert!(!ping.stderr.contains("No nodes matched"), "{ping}");
        let report = run(&["ping", "--json"]).code(1).json();
        assert_eq!(report["stats"]["expected"], 0, "{report}");
        let ignored: Vec<(String, u64)> = report["ignored"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| (i["reason"].as_str().unwrap_or_default().to_string(), i["replies"].as_u64().unwrap_or(0)))
            .collect();
        assert_eq!(ignored, [("unknown_issuer".to_string(), 3), ("unsigned".to_string(), 1)], "{report}");

        // find: no node to list, and the reason on stderr (an array cannot carry it).
        let find = run(&["find", "--json"]);
        find.code(1).stderr_has(wrong);
        assert_eq!(find.json(), serde_json::json!([]), "{find}");

        // rpc: nothing could be trusted, nothing was sent; exit 1, not 4.
        run(&["rpc", "rpcutil", "ping"]).code(1).stdout_has(wrong);

        // The request itself: sent to a node list, the replies are ignored too.
        let list = node_list(&THREE)?;
        let direct = run(&["ping", "--nodes", arg(&list), "-t", "2"]);
        direct.code(3).stdout_has(wrong);
        let report = run(&["ping", "--nodes", arg(&list), "-t", "2", "--json"]).code(3).json();
        assert_eq!(report["ignored"][0]["reason"], "unknown_issuer", "{report}");
        assert_eq!(report["ignored"][0]["replies"], 3, "{report}");
        Ok(())
    }
}

on_both_brokers! {
    /// An expected set from broadcast discovery alone says, in one line of the human report,
    /// what broadcast cannot see; `--json` names the method instead; a node list needs no
    /// such line.
    fn broadcast_discovery_says_what_it_cannot_see() -> Result<()> {
        let Some(fleet) = fixture::fleet(&[DaemonSpec::new("web1"), DaemonSpec::new("web2")])? else {
            return Ok(());
        };
        let notice = "Expected set from broadcast discovery (quiet window 500 ms): nodes that are down or answered late are not seen; a registry (--dm registry) or a node list (--nodes) makes them visible";
        let mut args = vec!["ping"];
        args.extend(fixture::patient());
        let ping = fleet.muster(&args).run();
        ping.code(0).stdout_has(notice);
        let mut rpc = vec!["rpc", "rpcutil", "get_fact", "fact=x"];
        rpc.extend(fixture::patient());
        fleet.muster(&rpc).run().code(0).stdout_has(notice);
        args.push("--json");
        let json = fleet.muster(&args).run();
        let report = json.code(0).json();
        assert!(!json.stdout.contains("quiet window") && json.stderr.is_empty(), "{json}");
        assert_eq!(report["discovery"]["method"], "broadcast", "{json}");
        assert_eq!(report["discovery"]["quiet_ms"], 500, "{json}");
        // Nothing matched: nodes that are down would look the same, so it says so too.
        for command in [&["ping"][..], &["find"], &["rpc", "rpcutil", "ping"], &["facts", "role"]] {
            let mut a = command.to_vec();
            a.extend(["-F", "role=nothing", "--dt", "1"]);
            let run = fleet.muster(&a).run();
            run.code(4).stderr_has("No nodes matched").stderr_has("Expected set from broadcast discovery (quiet window 200 ms)");
        }
        let list = node_list(&["web1", "web2"])?;
        let listed = fleet.muster(&["ping", "--nodes", arg(&list)]).run();
        assert!(!listed.code(0).stdout.contains("broadcast"), "{listed}");
        let report = fleet.muster(&["ping", "--nodes", arg(&list), "--json"]).run().code(0).json();
        assert_eq!(report["discovery"]["method"], "nodes", "{report}");
        Ok(())
    }
}

on_both_brokers! {
    /// Thirty simulated nodes that never answer: the human report names twenty of them on one
    /// line under their reason and points at --json; -v names all; --json has all.
    fn long_missing_lists_are_grouped_and_bounded() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let url = nats.url();
        let dir = tempfile::tempdir()?;
        let nodes = dir.path().join("nodes.txt");
        let _sim = fixture::Background::start(
            &["sim", "--nodes", "60", "--silent", "50%", "--write-nodes"]
                .iter()
                .map(std::ffi::OsStr::new)
                .chain([nodes.as_os_str()])
                .collect::<Vec<_>>(),
            &url,
            &dir.path().join("sim.log"),
        )?;
        let list = nodes.display().to_string();
        let ping = |extra: &[&str]| {
            let mut a = vec!["ping", "--nodes", &list, "-t", "1", "--journal", "off"];
            a.extend(extra);
            muster(&a).broker(&url).run()
        };
        wait_for("the thirty answering simulated nodes", Duration::from_secs(30), || {
            serde_json::from_str::<Value>(&ping(&["--json"]).stdout).is_ok_and(|r| r["stats"]["ok"] == 30)
        })?;
        let run = ping(&[]);
        run.code(3).stdout_has("Did not respond: 30 nodes");
        let line = run.line("  30 no reply: ");
        assert!(line.ends_with(" … (10 more: use --json or -v for all)"), "{run}");
        let named = line.split_whitespace().filter(|w| w.starts_with("sim-")).count();
        assert_eq!(named, 20, "{run}");
        let all = ping(&["-v"]);
        let line = all.code(3).line("Did not respond: ");
        assert_eq!(line.matches("(no reply)").count(), 30, "{all}");
        let report = ping(&["--json"]).code(3).json();
        assert_eq!(report["missing"].as_array().map(Vec::len), Some(30), "{report}");
        Ok(())
    }
}
