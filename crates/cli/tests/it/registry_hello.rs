//! A registry complete at once: on start it asks the fleet to register now (a registry hello,
//! docs/design.md §2), and daemons and simulated nodes answer with their registrations, spread
//! over the hello's jitter, so a registry started after the fleet knows every node at once.

use std::time::{Duration, Instant};

use muster_client::{Client, ConnectConfig};
use muster_proto::Filter;
use muster_testkit::{DaemonSpec, wait_for};

use crate::fixture;

on_both_brokers! {
    /// Daemons that registered once, long before, and 1,000 simulated nodes that never
    /// registered: a registry started after them knows all 1,002 within 2 s. Registration
    /// intervals are an hour, so only the hello explains it.
    fn a_registry_started_after_the_fleet_knows_every_node_within_two_seconds() -> Result<()> {
        let hourly = "registration_interval = \"1h\"";
        let specs = [
            DaemonSpec::new("early1").config(hourly),
            DaemonSpec::new("early2").config(hourly),
        ];
        let Some(fleet) = fixture::fleet(&specs)? else {
            return Ok(());
        };
        let url = fleet.url();
        let dir = tempfile::tempdir()?;
        let nodes = dir.path().join("nodes.txt");
        let _sim = fixture::Background::start(
            &["sim".as_ref(), "--nodes".as_ref(), "1000".as_ref(), "--write-nodes".as_ref(), nodes.as_os_str()],
            &url,
            &dir.path().join("sim.log"),
        )?;
        // The simulator writes the list once every node is subscribed.
        wait_for("1000 simulated nodes", Duration::from_secs(30), || {
            std::fs::read_to_string(&nodes).is_ok_and(|t| t.lines().count() == 1000)
        })?;

        let log = dir.path().join("registry.log");
        let _registry = fixture::registry(&dir.path().join("registry.sqlite"), &url, &log)?;
        wait_for("the registry to be ready", Duration::from_secs(20), || {
            muster_testkit::read(&log).contains("muster registry: storing registrations")
        })?;
        let ready = Instant::now();

        let runtime = tokio::runtime::Runtime::new()?;
        let client = runtime.block_on(Client::connect(&ConnectConfig {
            brokers: vec![url.clone()],
            ..Default::default()
        }))?;
        let mut known = 0;
        let all = Filter::default();
        let complete = wait_for("the registry to know all 1002 nodes", Duration::from_secs(2), || {
            known = runtime
                .block_on(client.query_registry(&all, None, Duration::from_secs(1)))
                .map_or(0, |n| n.len());
            known == 1002
        });
        assert!(complete.is_ok(), "{known} of 1002 nodes known after {:?}", ready.elapsed());
        let nodes = runtime.block_on(client.query_registry(&all, None, Duration::from_secs(1)))?;
        assert!(nodes.iter().any(|n| n.identity == "early1"));
        assert!(nodes.iter().any(|n| n.identity == "sim-01000"));
        eprintln!("registry complete {:?} after it was ready", ready.elapsed());
        Ok(())
    }
}
