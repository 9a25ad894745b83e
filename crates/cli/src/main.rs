//! `muster`: the one binary. It parses arguments, calls the libraries and renders what they
//! return; nothing else lives here.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod cmd;
mod render;

use args::{Cli, Command};
use muster_client::ExitStatus;

/// An error that ends the command, with the exit status it ends with.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ExitStatus,
    pub(crate) error: anyhow::Error,
}

impl Failure {
    pub(crate) fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status: ExitStatus::Usage,
            error: error.into(),
        }
    }
}

impl From<muster_client::ClientError> for Failure {
    fn from(e: muster_client::ClientError) -> Self {
        Failure {
            status: e.exit_status(),
            error: e.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command whose output goes into `head` ends quietly when the reader closes the pipe,
    // as Unix tools do, instead of panicking on the failed write. Not the long-running
    // services: they write to sockets and to agents' pipes, and a reader going away must
    // never kill them.
    if !matches!(
        cli.command,
        Command::Server(_)
            | Command::Broker(_)
            | Command::Registry(_)
            | Command::Sim(_)
            | Command::Demo(_)
    ) {
        sigpipe::reset();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("muster: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Usage.code());
        }
    };
    let status = match runtime.block_on(run(cli)) {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("muster: {:#}", failure.error);
            failure.status
        }
    };
    // Don't wait for background tasks (the broker connection) to wind down.
    runtime.shutdown_background();
    ExitCode::from(status.code())
}

async fn run(cli: Cli) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Server(args) => cmd::server::run(args).await,
        Command::Ping(args) => cmd::ping::run(args).await,
        Command::Find(args) => cmd::find::run(args).await,
        Command::Facts(args) => cmd::facts::run(args).await,
        Command::Inventory(args) => cmd::inventory::run(args).await,
        Command::Rpc(args) => cmd::rpc::run(args).await,
        Command::History(args) => cmd::journal::history(args),
        Command::Show(args) => cmd::journal::show(args).await,
        Command::Retry(args) => cmd::journal::retry(args).await,
        Command::Plugin(args::PluginCommand::Doc { agent, config }) => {
            cmd::plugin::doc(agent.as_deref(), config.as_deref())
        }
        Command::Sim(args) => cmd::sim::run(args).await,
        Command::Registry(args) => cmd::registry::run(args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Broker(args) => cmd::broker::run(args).await,
        Command::Keygen(args) => cmd::keys::keygen(args),
        Command::Issuer(args::IssuerCommand::Init { dir }) => cmd::keys::issuer_init(&dir),
        Command::Issuer(args::IssuerCommand::Issue(args)) => cmd::keys::issue(args),
        Command::Issuer(args::IssuerCommand::Tls(args)) => cmd::tls::run(args),
    }
}
