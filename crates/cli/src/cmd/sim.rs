//! `muster sim`: a simulated fleet until Ctrl-C or SIGTERM.

use anyhow::Context;
use muster_client::ExitStatus;
use muster_sim::{Fault, FleetSpec, Sim, SimConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::Failure;
use crate::args::SimArgs;

/// `--broker`, else `MUSTER_BROKER`, else the default, as for every client command.
fn brokers(args: &SimArgs) -> Result<Vec<String>, Failure> {
    if !args.brokers.urls.is_empty() {
        return Ok(args.brokers.urls.clone());
    }
    Ok(muster_client::ClientConfig::load(None)
        .map_err(Failure::usage)?
        .brokers)
}

/// The fleet described by the flags.
pub fn config(args: &SimArgs) -> Result<SimConfig, Failure> {
    let slow = args.slow;
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
        brokers: brokers(args)?,
        collective: args.collective.clone(),
        nodes_per_connection: args.per_connection,
        flap_timing: Default::default(),
    })
}

pub async fn run(args: SimArgs) -> Result<ExitStatus, Failure> {
    crate::cmd::log_to_stderr("warn");
    let config = config(&args)?;
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
        brokers(&args)?.join(", "),
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
