//! `muster sim`: a simulated fleet until Ctrl-C or SIGTERM.

use anyhow::Context;
use muster_client::ExitStatus;
use muster_sim::fault::Share;
use muster_sim::{Fault, FleetSpec, Sim, SimConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::SimArgs;
use crate::failure::Failure;

fn share(option: &'static str, value: &Option<String>) -> Result<Share, Failure> {
    match value {
        Some(text) => Share::parse(option, text).map_err(Failure::usage),
        None => Ok(Share(0.0)),
    }
}

/// The fleet described by the flags.
pub fn config(args: &SimArgs) -> Result<SimConfig, Failure> {
    let slow = args.slow;
    Ok(SimConfig {
        fleet: FleetSpec {
            nodes: args.nodes,
            seed: args.seed,
            prefix: args.prefix.clone(),
            silent: share("--silent", &args.silent)?,
            fail: share("--fail", &args.fail)?,
            slow,
            flap: share("--flap", &args.flap)?,
            stray: share("--stray", &args.stray)?,
        },
        brokers: args.brokers.clone(),
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
        args.brokers.join(", "),
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
