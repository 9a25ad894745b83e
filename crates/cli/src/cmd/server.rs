//! `muster server`: the node daemon. SIGHUP reloads, SIGTERM and Ctrl-C drain and exit.

use muster_client::ExitStatus;
use muster_server::{Control, Overrides, ServerConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

use crate::args::ServerArgs;
use crate::failure::Failure;

pub async fn run(args: ServerArgs) -> Result<ExitStatus, Failure> {
    let overrides = Overrides {
        brokers: args.brokers.urls,
        identity: args.identity,
    };
    let (config, origin) = ServerConfig::load_with_origin(args.config.as_deref(), &overrides)
        .map_err(Failure::usage)?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .map_err(|e| Failure::usage(anyhow::anyhow!("invalid log_level: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Where each setting came from, before anything can fail on it: a broker URL from the
    // environment that overrides the file's is the first thing to know when nothing connects.
    let identity = config.identity().map_err(Failure::usage)?;
    for line in origin.describe(&config, &identity) {
        tracing::info!("{line}");
    }

    let (tx, rx) = mpsc::channel(4);
    let mut hup = signal(SignalKind::hangup()).map_err(Failure::usage)?;
    let mut term = signal(SignalKind::terminate()).map_err(Failure::usage)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Failure::usage)?;
    tokio::spawn(async move {
        loop {
            let control = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Shutdown,
                _ = int.recv() => Control::Shutdown,
            };
            if tx.send(control).await.is_err() {
                break;
            }
        }
    });
    muster_server::run(config, rx)
        .await
        .map_err(Failure::usage)?;
    Ok(ExitStatus::Ok)
}
