//! `--batch`, `--window`, `--limit`, `--one`: every node still accounted for.

use muster_testkit::DaemonSpec;

use crate::cli::{identities, replies};
use crate::fixture::{self, arg, node_list};

on_both_brokers! {
    fn batches_windows_and_limits() -> Result<()> {
        let specs: Vec<DaemonSpec> = ["n1", "n2", "n3", "n4"].iter().map(|i| DaemonSpec::new(i)).collect();
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let nodes = node_list(&["n1", "n2", "n3", "n4", "gone"])?;
        let list = arg(&nodes);
        for flags in [
            vec!["--batch", "2"],
            vec!["--batch", "50%", "--batch-sleep", "0.05"],
            vec!["--window", "2"],
        ] {
            let mut args = vec!["rpc", "rpcutil", "ping", "--nodes", list, "--json"];
            args.extend(flags.iter());
            let run = fleet.muster(&args).run();
            let report = run.code(3).json();
            assert_eq!(report["stats"]["ok"], 4, "{flags:?}: {run}");
            assert_eq!(report["missing"][0]["identity"], "gone", "{flags:?}: {run}");
            assert_eq!(report["missing"][0]["outcome"], "not_connected", "{flags:?}: {run}");
        }
        let limited = |extra: &[&str]| {
            let mut args = vec!["rpc", "rpcutil", "ping", "-I", "/^n/", "--json"];
            args.extend(extra);
            fleet.muster(&args).run()
        };
        let two = limited(&["--limit", "2", "--limit-seed", "5"]);
        let report = two.code(0).json();
        assert_eq!(report["stats"]["expected"], 2, "{two}");
        let again = limited(&["--limit", "2", "--limit-seed", "5"]).json();
        assert_eq!(replies(&again), replies(&report), "the same seed chooses the same nodes");
        let one = limited(&["--one"]).json();
        assert_eq!(one["stats"]["expected"], 1);
        let half = limited(&["--limit", "50%"]).json();
        assert_eq!(half["stats"]["expected"], 2);
        assert_eq!(identities(&fleet.muster(&["find", "--json"]).run().json()).len(), 4);
        for (flags, needle) in [
            // clap names the flag and the value; the parser says what to write instead.
            (vec!["--limit", "0"], "'0' for '--limit <N|P%>': give a number of nodes"),
            (vec!["--batch", "x"], "'x' for '--batch <N|P%>': give a number of nodes"),
            (vec!["--window", "0"], "'0' for '--window <N>': give how many nodes"),
            (vec!["--batch-sleep", "1"], "--batch"),
            (vec!["--window", "2", "--batch", "2"], "--batch"),
        ] {
            limited(&flags).code(2).stderr_has(needle);
        }
        Ok(())
    }
}
