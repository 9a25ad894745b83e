//! `muster sim`: a simulated fleet until Ctrl-C or SIGTERM.

use anyhow::Context;
use muster_client::ExitStatus;
use muster_sim::{Fault, FleetSpec, Sim, SimConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::SimArgs;
use crate::failure::Failure;

/// The fleet described by the flags; the broker connection as the registry's is made.
pub fn config(args: &SimArgs) -> Result<SimConfig, Failure> {
    let slow = args.slow;
    // A flag (or MUSTER_BROKER) beats the file, which beats the default, as for the client.
    let client =
        muster_client::ClientConfig::load(args.config.path.as_deref()).map_err(Failure::usage)?;
    Ok(SimConfig {
        fleet: FleetSpec {
            nodes: args.nodes,
            seed: args.seed,
            prefix: args.prefix.clone(),
            silent: args.silent.unwrap_or_default(),
            fail: args.fail.unwrap_or_default(),
            slow,
            flap: args.flap.unwrap_or_default(),
            stray: args.stray.unwrap_or_default(),
        },
        brokers: if args.brokers.urls.is_empty() {
            client.brokers
        } else {
            args.brokers.urls.clone()
        },
        collective: args.collective.clone(),
        nodes_per_connection: args.per_connection,
        flap_timing: Default::default(),
        transport: client.transport,
    })
}

pub async fn run(args: SimArgs) -> Result<ExitStatus, Failure> {
    crate::cmd::log_to_stderr("warn");
    let config = config(&args)?;
    let brokers = config.brokers.join(", ");
    let sim = Sim::start(config).await.map_err(|e| Failure {
        status: match e {
            muster_sim::SimError::Broker { .. } => ExitStatus::BrokerUnreachable,
            _ => ExitStatus::Usage,
        },
        error: e.into(),
    })?;
    if let Some(path) = &args.write_nodes {
        let list: String = sim
            .nodes()
            .iter()
            .map(|n| format!("{}\n", n.identity))
            .collect();
        std::fs::write(path, list)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::usage)?;
    }
    let count = |f: fn(&Fault) -> bool| sim.nodes().iter().filter(|n| f(&n.fault)).count();
    eprintln!(
        "muster sim: {} virtual nodes on {} ({} silent, {} failing, {} slow, {} flapping, {} stray); Ctrl-C stops",
        sim.nodes().len(),
        brokers,
        count(|f| *f == Fault::Silent),
        count(|f| *f == Fault::Fail),
        count(|f| matches!(f, Fault::Slow(_))),
        count(|f| *f == Fault::Flap),
        count(|f| *f == Fault::Stray),
    );
    let mut term = signal(SignalKind::terminate()).map_err(Failure::usage)?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.stop().await;
    Ok(ExitStatus::Ok)
}
