//! `muster sim`: a simulated fleet until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};

use anyhow::Context;
use muster_client::ExitStatus;
use muster_security::SecretKey;
use muster_security::credential::{Credential, Kind};
use muster_sim::signing::DEFAULT_VALIDITY;
use muster_sim::{Fault, FleetSpec, Sim, SimConfig, SimSigning};
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
        signing: None,
    })
}

/// The files `--generate` writes, for the client that is to talk to the fleet.
struct Generated {
    client_config: PathBuf,
}

/// A throwaway issuer for this run: its public key, a caller's key and credential and a
/// client config using them are written into `dir`; the issuer's secret key stays in memory,
/// so nothing else can be issued with it once the simulator stops.
fn generate(dir: &Path, config: &SimConfig) -> Result<(SecretKey, Generated), Failure> {
    let usage = |e: anyhow::Error| Failure::usage(e);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(usage)?;
    let dir = std::path::absolute(dir)
        .with_context(|| format!("cannot resolve {}", dir.display()))
        .map_err(usage)?;
    let files = ["issuer.pub", "caller.key", "caller.cred", "client.toml"].map(|f| dir.join(f));
    if let Some(existing) = files.iter().find(|f| f.exists()) {
        return Err(usage(anyhow::anyhow!(
            "{} exists; --generate never overwrites (remove it, or give another --issuer-dir)",
            existing.display()
        )));
    }
    let [issuer_pub, caller_key, caller_cred, client_config] = files;
    let issuer = SecretKey::generate();
    issuer.public().write(&issuer_pub).map_err(Failure::usage)?;
    let caller = SecretKey::generate();
    caller.write_new(&caller_key).map_err(Failure::usage)?;
    let now = muster_proto::time::whole_secs(muster_proto::time::now()).saturating_sub(60);
    let credential = Credential::new(
        Kind::Caller,
        "sim-operator",
        &caller.public(),
        now,
        DEFAULT_VALIDITY.as_secs(),
        None,
    )
    .map_err(|e| usage(anyhow::anyhow!("{e}")))?;
    std::fs::write(&caller_cred, format!("{}\n", credential.issue(&issuer)))
        .with_context(|| format!("cannot write {}", caller_cred.display()))
        .map_err(usage)?;
    let mut table = toml::Table::new();
    let text = |s: &str| toml::Value::String(s.to_string());
    let path = |p: &Path| text(&p.display().to_string());
    table.insert(
        "brokers".into(),
        toml::Value::Array(config.brokers.iter().map(|b| text(b)).collect()),
    );
    table.insert("collective".into(), text(&config.collective));
    table.insert("key".into(), path(&caller_key));
    table.insert("credential".into(), path(&caller_cred));
    table.insert("issuer".into(), path(&issuer_pub));
    let body = toml::to_string(&table)
        .context("cannot write the client config")
        .map_err(usage)?;
    std::fs::write(
        &client_config,
        format!("# Written by `muster sim --generate`: a caller of the simulator's throwaway issuer.\n{body}"),
    )
    .with_context(|| format!("cannot write {}", client_config.display()))
    .map_err(usage)?;
    Ok((issuer, Generated { client_config }))
}

/// Signed mode as the flags ask for it: the issuer of DIR, or a throwaway one.
fn signing(
    args: &SimArgs,
    config: &SimConfig,
) -> Result<Option<(SimSigning, Option<Generated>)>, Failure> {
    let Some(dir) = &args.issuer_dir else {
        return Ok(None);
    };
    if args.generate {
        let (issuer, generated) = generate(dir, config)?;
        return Ok(Some((SimSigning::new(issuer), Some(generated))));
    }
    let issuer = SecretKey::read(&dir.join("issuer.key"))
        .context("--issuer-dir needs the issuer.key of `muster issuer init` (or add --generate for a throwaway issuer)")
        .map_err(Failure::usage)?;
    Ok(Some((SimSigning::new(issuer), None)))
}

pub async fn run(args: SimArgs) -> Result<ExitStatus, Failure> {
    crate::cmd::log_to_stderr("warn");
    let mut config = config(&args)?;
    let brokers = config.brokers.join(", ");
    let signed = signing(&args, &config)?;
    let generated = signed
        .as_ref()
        .and_then(|(_, g)| g.as_ref().map(|g| g.client_config.clone()));
    let signed_note = match &signed {
        Some(_) => ", signed",
        None => "",
    };
    config.signing = signed.map(|(s, _)| s);
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
        "muster sim: {} virtual nodes{signed_note} on {} ({} silent, {} failing, {} slow, {} flapping, {} stray); Ctrl-C stops",
        sim.nodes().len(),
        brokers,
        count(|f| *f == Fault::Silent),
        count(|f| *f == Fault::Fail),
        count(|f| matches!(f, Fault::Slow(_))),
        count(|f| *f == Fault::Flap),
        count(|f| *f == Fault::Stray),
    );
    if let Some(client_config) = generated {
        eprintln!(
            "muster sim: signed mode with a throwaway issuer; try `muster ping --config {}`",
            client_config.display()
        );
    }
    let mut term = signal(SignalKind::terminate()).map_err(Failure::usage)?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.stop().await;
    Ok(ExitStatus::Ok)
}
