//! `muster broker`: the embedded broker as a service, until Ctrl-C or SIGTERM.

use anyhow::Context;
use muster_broker::{Broker, BrokerConfig};
use muster_client::ExitStatus;
use tokio::signal::unix::{SignalKind, signal};

use crate::args::BrokerArgs;
use crate::failure::Failure;

pub async fn run(args: BrokerArgs) -> Result<ExitStatus, Failure> {
    crate::cmd::log_to_stderr("info");
    let config: BrokerConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read broker config {}", path.display()))
                .map_err(Failure::usage)?;
            toml::from_str(&text)
                .with_context(|| format!("invalid broker config {}", path.display()))
                .map_err(Failure::usage)?
        }
        None => BrokerConfig::default(),
    };
    // A certificate clients would refuse is named now, before the broker says it listens.
    if let Some(tls) = &config.tls {
        muster_broker::tls::check(tls).map_err(Failure::usage)?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))
        .map_err(Failure::usage)?;
    let addr = listener.local_addr().map_err(Failure::usage)?;
    eprintln!("muster broker: listening on nats://{addr}; Ctrl-C stops");
    let mut term = signal(SignalKind::terminate()).map_err(Failure::usage)?;
    Broker::new(config)
        .run(listener, async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
        .context("the broker stopped")
        .map_err(Failure::usage)?;
    Ok(ExitStatus::Ok)
}
