//! One module per subcommand, and what they share: turning flags into a filter and a
//! connection, and finding the expected set.

use std::collections::BTreeSet;
use std::io::{self, IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::Context;
use muster_client::journal::JournalTarget;
use muster_client::run::RegistryView;
use muster_client::selection::Count;
use muster_client::{
    Client, ClientConfig, ConnectConfig, ExitStatus, Expected, Progress, RunOptions, Selection,
    Source, Spread, Warning,
};
use muster_proto::filter::FilterErrorKind;
use muster_proto::registration::RegistryQuery;
use muster_proto::{FactFilter, Filter};

use crate::args::{DiscoveryMethod, FilterArgs, RequestArgs};
use crate::failure::Failure;
use crate::{output, render};

pub mod broker;
pub mod demo;
pub mod facts;
pub mod find;
pub mod inventory;
pub mod journal;
pub mod keys;
pub mod ping;
pub mod plugin;
pub mod registry;
pub mod rpc;
pub mod server;
pub mod sim;
pub mod tls;

/// A connected client with the settings of one command: who should answer and how to run.
pub struct Session {
    pub client: Client,
    pub config: ClientConfig,
    /// Who should answer.
    pub selection: Selection,
    /// How a request is run: timeouts, pacing, the journal.
    pub options: RunOptions,
}

impl FilterArgs {
    pub fn to_filter(&self) -> Result<Filter, Failure> {
        let mut filter = Filter {
            identity: self.with_identity.clone(),
            class: self.with_class.clone(),
            agent: self.with_agent.clone(),
            compound: self.select.clone(),
            ..Filter::default()
        };
        for fact in &self.with_fact {
            let f = FactFilter::parse(fact).map_err(|e| {
                // The parser's message already names the filter.
                Failure::usage(anyhow::anyhow!("-F: {e}"))
            })?;
            filter.fact.push(f);
        }
        for with in &self.with {
            filter
                .add_with(with)
                .map_err(|e| Failure::usage(anyhow::anyhow!("invalid -W filter {with:?}: {e}")))?;
        }
        filter.compile().map_err(|e| {
            // A compound expression's error points at the position in what the user typed.
            let caret = match (e.kind, &self.select) {
                (FilterErrorKind::Compound, Some(src)) => e.render(src),
                _ => None,
            };
            let msg = match caret {
                Some(caret) => format!("invalid filter: {e}\n{caret}"),
                None => format!("invalid filter: {e}"),
            };
            Failure::usage(anyhow::anyhow!(msg))
        })?;
        Ok(filter)
    }
}

impl RequestArgs {
    /// Loads the config, applies the flags, checks the filter and connects.
    pub async fn connect(&self) -> Result<Session, Failure> {
        let connection = &self.connection;
        let mut config =
            ClientConfig::load(connection.config.path.as_deref()).map_err(Failure::usage)?;
        if !connection.brokers.urls.is_empty() {
            config.brokers = connection.brokers.urls.clone();
        }
        if let Some(c) = &connection.collective {
            config.collective = c.clone();
        }
        if let Some(t) = self.timeout {
            config.timeout = t;
        }
        if let Some(t) = self.discovery_timeout {
            config.discovery_timeout = t;
        }
        if let Some(t) = self.expect_seen {
            config.expect_seen = t;
        }
        if self.discovery_method == Some(DiscoveryMethod::Nodes) && self.nodes.is_none() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--dm nodes needs --nodes FILE (or - for stdin)"
            )));
        }
        let filter = self.filter.to_filter()?;
        if self.nodes.is_some() && !filter.is_empty() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--nodes gives the expected set, and a filter cannot narrow it without asking \
                 the nodes: leave out -F/-C/-I/-A/-S/-W, or leave out --nodes to discover by filter"
            )));
        }
        let source = match (self.node_list()?, self.discovery_method) {
            (Some(nodes), _) => Source::Nodes(nodes),
            (None, Some(DiscoveryMethod::Registry)) => Source::Registry,
            (None, _) => Source::Discover,
        };
        let mut selection = Selection::new(&config, filter, source);
        let mut options = RunOptions::new(&config);
        options.journal = JournalTarget::from_flag(self.journal.as_deref());
        self.pacing(&mut selection, &mut options);
        let client = Client::connect(&ConnectConfig {
            remembered_credentials: options.journal.remembered_credentials(),
            ..ConnectConfig::from_config(&config)?
        })
        .await?;
        Ok(Session {
            client,
            config,
            selection,
            options,
        })
    }

    /// Reads the node list given with `--nodes`.
    fn node_list(&self) -> Result<Option<BTreeSet<String>>, Failure> {
        let Some(source) = &self.nodes else {
            return Ok(None);
        };
        let text = if source == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the node list from stdin")
                .map_err(Failure::usage)?;
            text
        } else {
            std::fs::read_to_string(source)
                .with_context(|| format!("cannot read the node list {source}"))
                .map_err(Failure::usage)?
        };
        let from: Vec<muster_client::nodes::FromReport> =
            self.nodes_from.iter().map(|&n| n.into()).collect();
        Ok(Some(muster_client::nodes::parse(&text, source, &from)?))
    }

    /// `--batch`, `--window`, `--limit` and `--one` (parsed and checked by clap).
    fn pacing(&self, selection: &mut Selection, options: &mut RunOptions) {
        selection.limit = if self.one {
            Some(Count::Nodes(1))
        } else {
            self.limit
        };
        selection.limit_seed = self.limit_seed;
        options.spread = match (self.window, self.batch) {
            (Some(n), _) => Spread::Window(n),
            (None, Some(count)) => Spread::Batch {
                count,
                sleep: self.batch_sleep.unwrap_or(Duration::ZERO),
            },
            (None, None) => Spread::All,
        };
    }
}

impl Session {
    /// The expected set, with the warnings of finding it said on stderr.
    pub async fn expected(&self) -> Result<Expected, Failure> {
        let expected = self.client.expected(&self.selection).await?;
        warn(&expected.warnings);
        Ok(expected)
    }

    /// Says that nothing matched (exit 4), and when requests are not signed that nodes in
    /// signed mode do not answer them.
    pub fn no_match(&self, json: bool) -> ExitStatus {
        if !json && !self.client.signs() {
            eprintln!(
                "muster: note: requests are not signed (no key and credential in the client \
                 config); nodes with security = \"signed\" do not answer them"
            );
        }
        match (json, &self.selection.required_agent) {
            (false, Some(agent)) => {
                eprintln!(
                    "No nodes matched the filter with agent {agent} (a node is sent an agent's \
                     requests only if it has the agent); nothing was sent."
                );
                ExitStatus::NoMatch
            }
            _ => no_match(json),
        }
    }

    /// Says on stderr what the report cannot: why nobody may have answered an unsigned
    /// request. (Answers that were ignored as untrusted are in the report: `ignored`.)
    pub fn trust_notes(&self, report: &muster_client::Report) {
        if !self.client.signs() && report.stats.expected > 0 && report.stats.responded == 0 {
            eprintln!(
                "muster: note: the request was not signed (no key and credential in the client \
                 config); nodes with security = \"signed\" drop unsigned requests"
            );
        }
    }
}

impl Session {
    /// Asks a registry `query` (a filter, and extras: one fact, or the whole records), split
    /// into the nodes seen within `--expect-seen` and those seen longer ago. Refused with
    /// `--nodes`: the registry answers for a filter.
    pub async fn registry_view(&self, query: RegistryQuery) -> Result<RegistryView, Failure> {
        if matches!(self.selection.source, Source::Nodes(_)) {
            return Err(Failure::usage(anyhow::anyhow!(
                "--from-registry answers for a filter (-F/-C/-I/-A/-S/-W); leave out --nodes"
            )));
        }
        Ok(self
            .client
            .registry_view(
                query,
                self.selection.expect_seen,
                self.selection.discovery.timeout,
            )
            .await?)
    }
}

/// Writes what `render` writes to stdout: the one place commands print their output, so a
/// write that fails is a [`Failure`] (exit 2) like any other.
pub fn print(render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    render(&mut out)
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}

/// Prints a report: with `--json` the report's document ([`output::Report`]), else for people
/// as an rpc report ([`render::rpc`]), labelled by the action's DDL.
pub fn print_report(
    report: &muster_client::Report,
    action: Option<&muster_proto::ddl::Action>,
    request: &RequestArgs,
    cx: &render::Context,
) -> Result<(), Failure> {
    if request.json {
        print(|out| output::write(out, &output::Report::new(report)))
    } else {
        print(|out| render::rpc(out, report, action, request.display, cx))
    }
}

/// Says what went wrong on the side of a request, on stderr.
pub fn warn(warnings: &[Warning]) {
    for warning in warnings {
        eprintln!("muster: warning: {warning}");
    }
}

/// For `find`, which prints identities and no report: on stderr, the nodes that answered
/// discovery with a failure, the answers that were ignored and, for people, what broadcast
/// discovery cannot see.
pub fn discovery_notes(expected: &Expected, json: bool) {
    let failed: Vec<&muster_client::DiscoveryFailure> =
        expected.discovery.iter().flat_map(|d| &d.failed).collect();
    let mut lines =
        render::discovery_failures(&failed, "they matched the filter, so they are listed");
    lines.extend(render::ignored(&expected.ignored));
    if !json {
        lines.extend(
            expected
                .discovery
                .as_ref()
                .and_then(render::broadcast_notice),
        );
    }
    for line in lines {
        eprintln!("{line}");
    }
}

/// The DDLs this machine has, by agent name: those in the client config's `ddl_directory`,
/// then the built-in agents' and the simulator's that the directory does not have. A DDL in
/// the directory wins over a built-in of the same name, as an external agent does on a node
/// that names it in `replace` (docs/agents.md "An agent named like a built-in").
pub fn known_ddls(config: &ClientConfig) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = Vec::new();
    if let Some(dir) = &config.ddl_directory
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        all = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.to_string();
                let text = std::fs::read_to_string(&p).ok()?;
                Some((name, text))
            })
            .collect();
        all.sort();
    }
    let built_in: Vec<(String, String)> = muster_agent::BUILTIN_DDLS
        .iter()
        .chain(&[("sim", muster_sim::agent::DDL)])
        .filter(|(name, _)| !all.iter().any(|(n, _)| n == name))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    all.splice(0..0, built_in);
    all
}

/// The DDL this machine has for `agent`, parsed.
pub fn ddl_for(
    config: &ClientConfig,
    agent: &str,
) -> Result<Option<muster_proto::ddl::Ddl>, Failure> {
    known_ddls(config)
        .into_iter()
        .find(|(name, _)| name == agent)
        .map(|(_, text)| muster_proto::ddl::Ddl::parse(&text))
        .transpose()
        .map_err(|e| Failure::usage(anyhow::anyhow!("the DDL of agent {agent} is broken: {e}")))
}

/// Says that nothing matched (exit 4).
pub fn no_match(json: bool) -> ExitStatus {
    if !json {
        eprintln!("No nodes matched the filter; nothing was sent.");
    }
    ExitStatus::NoMatch
}

/// A progress line on stderr, only when stderr is a terminal and the output is for people.
pub fn progress(json: bool) -> impl FnMut(Progress) {
    let show = !json && std::io::stderr().is_terminal();
    move |p: Progress| {
        if show {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[K{} of {} nodes answered", p.done, p.expected);
            if p.done == p.expected {
                let _ = write!(err, "\r\x1b[K");
            }
            let _ = err.flush();
        }
    }
}

/// Clears a progress line that did not reach the end.
pub fn end_progress(json: bool) {
    if !json && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

/// Logs to stderr at `default` unless `RUST_LOG` says otherwise.
pub fn log_to_stderr(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
