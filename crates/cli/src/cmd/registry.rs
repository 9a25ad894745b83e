//! `muster registry`: collect node registrations into a SQLite database and answer inventory
//! queries, until Ctrl-C or SIGTERM.

use muster_client::ExitStatus;
use muster_registry::{Registry, RegistryConfig, RegistryError};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::RegistryArgs;
use crate::failure::Failure;

/// The registry's configuration from the flags.
pub fn config(args: &RegistryArgs) -> Result<RegistryConfig, Failure> {
    let retention = args.retention;
    if retention.is_zero() {
        return Err(Failure::usage(anyhow::anyhow!(
            "invalid --retention 0: it must be longer than 0"
        )));
    }
    // A flag (or MUSTER_BROKER) beats the file, which beats the default, as for the client.
    let client =
        muster_client::ClientConfig::load(args.config.path.as_deref()).map_err(Failure::usage)?;
    Ok(RegistryConfig {
        db: args.db.clone(),
        brokers: if args.brokers.urls.is_empty() {
            client.brokers
        } else {
            args.brokers.urls.clone()
        },
        collective: args.collective.clone(),
        retention,
        prune_interval: RegistryConfig::prune_interval_for(retention),
        transport: client.transport,
        issuer: match &args.issuer {
            Some(path) => Some(muster_security::PublicKey::read(path).map_err(Failure::usage)?),
            None => None,
        },
    })
}

pub async fn run(args: RegistryArgs) -> Result<ExitStatus, Failure> {
    crate::cmd::log_to_stderr("warn");
    let config = config(&args)?;
    let registry = Registry::start(config).await.map_err(|e| Failure {
        status: match e {
            RegistryError::BrokerUnreachable { .. } | RegistryError::Broker(_) => {
                ExitStatus::BrokerUnreachable
            }
            _ => ExitStatus::Usage,
        },
        error: e.into(),
    })?;
    let mut term = signal(SignalKind::terminate()).map_err(Failure::usage)?;
    eprintln!(
        "muster registry: storing registrations of collective {} in {} (retention {}); Ctrl-C stops",
        args.collective,
        args.db.display(),
        humantime::format_duration(args.retention),
    );
    registry
        .serve(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
        .map_err(|e| Failure {
            status: ExitStatus::BrokerUnreachable,
            error: e.into(),
        })?;
    Ok(ExitStatus::Ok)
}
