//! `muster`: the one binary. It parses arguments, calls the libraries and renders what they
//! return; nothing else lives here.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod cmd;
mod failure;
mod output;
mod render;

use args::{Cli, Command};
use failure::{Failure, kind, message};
use muster_client::ExitStatus;

/// Whether the command line asks for JSON. Read from the raw arguments, because clap's own
/// errors come before there is a parsed command to ask.
fn wants_json() -> bool {
    std::env::args_os()
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// With `--json`, every failure is still exactly one JSON object on stdout
/// ([`output::Error`]), so that scripts always parse it (docs/design.md §3); the human message
/// goes to stderr as always. A stdout that cannot be written is past telling.
fn print_json_error(kind: &str, message: &str) {
    let _ = output::write(
        &mut std::io::stdout().lock(),
        &output::Error::new(kind, message),
    );
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                && wants_json()
            {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                print_json_error("usage", first.strip_prefix("error: ").unwrap_or(first));
            }
            e.exit()
        }
    };
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
            let text = format!("cannot start the async runtime: {e}");
            if wants_json() {
                print_json_error("usage", &text);
            }
            eprintln!("muster: {text}");
            return ExitCode::from(ExitStatus::Usage.code());
        }
    };
    let json = wants_json();
    let status = match runtime.block_on(run(cli)) {
        Ok(status) => status,
        Err(failure) => {
            let text = message(&failure.error);
            if json {
                print_json_error(kind(&failure), &text);
            }
            eprintln!("muster: {text}");
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
            cmd::plugin::doc(agent.as_deref(), config.path.as_deref())
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
