//! The journal: who got a request and who did not, later; and sending it again to exactly the
//! nodes that missed it.

use muster_testkit::DaemonSpec;
use serde_json::json;

use crate::cli::muster;
use crate::fixture::{self, arg, node_list};

on_both_brokers! {
    /// A node is down for a request; `history` and `show` tell so later; after it comes back,
    /// `retry --missing` reaches exactly it and exits 0, recorded as a retry.
    fn show_and_retry_exactly_the_missing() -> Result<()> {
        let specs: Vec<DaemonSpec> = ["web1", "web2", "web3"]
            .iter()
            .map(|id| DaemonSpec::new(id).facts(json!({"role": "web"})))
            .collect();
        let Some(mut fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let journal = dir.path().join("journal.sqlite").display().to_string();
        let nodes = node_list(&["web1", "web2", "web3"])?;
        let url = fleet.url();
        // Requests go to the broker; history and show only read the journal.
        let with = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--journal", journal.as_str()]);
            let command = muster(&a);
            if matches!(args[0], "rpc" | "retry") {
                command.broker(&url).run()
            } else {
                command.run()
            }
        };

        fleet.daemon("web3").kill();
        let run = with(&["rpc", "rpcutil", "get_fact", "fact=role", "--nodes", arg(&nodes), "--json"]);
        let sent = run.code(3).json();
        let id = sent["request_id"].as_str().unwrap_or_default().to_string();

        let history = with(&["history", "--json"]);
        let list = history.code(0).json();
        assert_eq!(list[0]["schema"], "muster:history-entry:1", "{history}");
        assert_eq!(list[0]["request_id"], id.as_str(), "{history}");
        assert_eq!(list[0]["stats"]["missing"], 1, "{history}");

        let shown = with(&["show", &id[..12]]);
        shown
            .code(3)
            .stdout_has(&format!("Request {id} — rpcutil get_fact {{\"fact\":\"role\"}}"))
            .stdout_has("Did not respond: web3 (not connected)");
        let shown = with(&["show", &id, "--json"]).code(3).json();
        assert_eq!(shown, sent);

        fleet.daemon("web3").restart()?;
        let retry = with(&["retry", &id, "--missing"]);
        retry
            .code(0)
            .stdout_has("Retrying request")
            .stdout_has("on 1 nodes: web3")
            .stdout_has("Finished 1 of 1 nodes");
        let list = with(&["history", "--json"]).json();
        assert_eq!(list[0]["retry_of"], id.as_str());
        assert_eq!(list[0]["stats"]["ok"], 1);
        assert_eq!(list[0]["stats"]["expected"], 1);

        with(&["retry", &id, "--failed"])
            .code(0)
            .stderr_has("Nothing to retry");
        with(&["show", "ffffffff"])
            .code(2)
            .stderr_has("no request ffffffff in the journal");
        with(&["retry", &id])
            .code(2)
            .stderr_has("--missing");
        Ok(())
    }
}
