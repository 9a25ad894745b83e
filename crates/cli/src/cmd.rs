//! One module per subcommand, and what they share: turning flags into a filter and a
//! connection, and finding the expected set.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::Context;
use muster_client::selection::{Count, choose};
use muster_client::{
    Client, ClientConfig, ConnectConfig, Delivery, DiscoveryOptions, ExitStatus, Pacing, Progress,
    RequestOptions,
};
use muster_proto::filter::FilterErrorKind;
use muster_proto::{FactFilter, Filter};

use crate::Failure;
use crate::args::{DiscoveryMethod, FilterArgs, RequestArgs};
use crate::render;
use muster_client::DiscoveryInfo;

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

/// A connected client with the settings of one command.
pub struct Session {
    pub client: Client,
    pub config: ClientConfig,
    pub filter: Filter,
    /// The node list given with `--nodes`, read before connecting.
    pub nodes: Option<BTreeSet<String>>,
    /// How the expected set is found.
    pub method: DiscoveryMethod,
    /// The agent discovery requires, when a command added it to the filter (`rpc`).
    pub required_agent: Option<String>,
    pacing: PacingFlags,
}

/// Who should answer a request.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The nodes to send to.
    pub nodes: BTreeSet<String>,
    /// Expected nodes not sent to: the registry last saw them too long ago (with when).
    pub absent: Vec<(String, String)>,
    /// When the registry last saw each node it knows (RFC 3339).
    pub last_seen: std::collections::BTreeMap<String, String>,
    /// How long finding them took.
    pub discovery_ms: u64,
    /// Where they came from.
    pub discovery: Option<muster_client::DiscoveryInfo>,
    /// Discovery answers that could not be verified.
    pub ignored: Vec<muster_client::Ignored>,
}

impl Expected {
    /// Whether nobody is expected.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.absent.is_empty()
    }

    /// Whether nothing answered at all (exit 4): nobody is expected, and no answer was
    /// ignored either. Answers that could not be verified are reported instead (exit 1).
    pub fn nothing_answered(&self) -> bool {
        self.is_empty() && self.ignored.is_empty()
    }

    /// Adds what discovery and the registry know to a finished report: absent nodes,
    /// last-seen times, where the set came from, discovery answers that were ignored.
    pub fn complete(&self, report: &mut muster_client::Report) {
        report.add_absent(&self.absent);
        report.annotate_last_seen(&self.last_seen);
        report.discovery = self.discovery.clone();
        muster_client::report::merge_ignored(&mut report.ignored, &self.ignored);
    }

    /// For `find`, which prints identities and no report: on stderr, the nodes that answered
    /// discovery with a failure, the answers that were ignored and, for people, what broadcast
    /// discovery cannot see.
    pub fn notes(&self, json: bool) {
        let failed: Vec<&muster_client::DiscoveryFailure> =
            self.discovery.iter().flat_map(|d| &d.failed).collect();
        let mut lines =
            render::discovery_failures(&failed, "they matched the filter, so they are listed");
        lines.extend(render::ignored(&self.ignored));
        if !json {
            lines.extend(self.discovery.as_ref().and_then(render::broadcast_notice));
        }
        for line in lines {
            eprintln!("{line}");
        }
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A time from the network (a registry's last-seen, a collected job's) in RFC 3339: proto's one
/// total conversion, which no value makes panic.
pub use muster_proto::time::rfc3339;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a registry knows about the nodes matching a filter.
pub struct RegistryView {
    /// Seen within `--expect-seen`.
    pub fresh: Vec<muster_proto::registration::SeenNode>,
    /// Seen longer ago: what the registry holds for them may be out of date.
    pub stale: Vec<muster_proto::registration::SeenNode>,
}

impl RegistryView {
    /// The stale nodes as `identity (last seen TIME)`, for people.
    pub fn describe_stale(&self) -> String {
        self.stale
            .iter()
            .map(|n| format!("{} (last seen {})", n.identity, rfc3339(n.last_seen)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The stale nodes as JSON: identity and last seen.
    pub fn stale_json(&self) -> serde_json::Value {
        self.stale
            .iter()
            .map(|n| serde_json::json!({"identity": n.identity, "last_seen": rfc3339(n.last_seen)}))
            .collect()
    }
}

/// How a request is spread over its expected set.
#[derive(Debug, Clone, Copy, Default)]
struct PacingFlags {
    batch: Option<Count>,
    batch_sleep: Duration,
    window: Option<usize>,
    limit: Option<Count>,
    limit_seed: Option<u64>,
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
            ClientConfig::load(connection.config.as_deref()).map_err(Failure::usage)?;
        if !connection.brokers.is_empty() {
            config.brokers = connection.brokers.clone();
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
        let nodes = self.node_list()?;
        let pacing = self.pacing_flags()?;
        let (signing, verifier) = trust(&config)?;
        let client = Client::connect(&ConnectConfig {
            brokers: config.brokers.clone(),
            collective: config.collective.clone(),
            signing,
            verifier,
            transport: config.transport.clone(),
            ..ConnectConfig::default()
        })
        .await?;
        Ok(Session {
            client,
            config,
            filter,
            nodes,
            method: self.discovery_method.unwrap_or(DiscoveryMethod::Broadcast),
            required_agent: None,
            pacing,
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

    /// `--batch`, `--window`, `--limit` and `--one`, checked.
    fn pacing_flags(&self) -> Result<PacingFlags, Failure> {
        let batch = self
            .batch
            .as_deref()
            .map(|b| Count::parse("--batch", b))
            .transpose()
            .map_err(Failure::usage)?;
        let batch_sleep = self.batch_sleep.unwrap_or(Duration::ZERO);
        if self.window == Some(0) {
            return Err(Failure::usage(anyhow::anyhow!(
                "--window 0: give how many nodes to keep in flight (at least 1)"
            )));
        }
        let limit = match (&self.limit, self.one) {
            (_, true) => Some(Count::Nodes(1)),
            (Some(l), false) => Some(Count::parse("--limit", l).map_err(Failure::usage)?),
            (None, false) => None,
        };
        Ok(PacingFlags {
            batch,
            batch_sleep,
            window: self.window,
            limit,
            limit_seed: self.limit_seed,
        })
    }
}

impl Session {
    /// Discovers only nodes that have `agent`, as MCollective and Choria do for every RPC
    /// request: a node without it is not expected to answer. Broadcast discovery, the
    /// registry and the registry's reconciliation all use the filter. A node list is not
    /// narrowed — it says who should answer, and a listed node that lacks the agent answers
    /// so on its own subject (see [`Session::request_options`]).
    pub fn require_agent(&mut self, agent: &str) {
        if self.nodes.is_none() && !self.filter.agent.iter().any(|a| a == agent) {
            self.filter.agent.push(agent.to_string());
            self.required_agent = Some(agent.to_string());
        }
    }

    pub fn discovery_options(&self) -> DiscoveryOptions {
        DiscoveryOptions {
            timeout: self.config.discovery_timeout,
            quiet: self.config.discovery_quiet,
        }
    }

    /// The expected set: the node list if one was given, the registry's view with `--dm
    /// registry`, else broadcast discovery reconciled with a registry when one answers;
    /// narrowed by `--limit`/`--one`.
    pub async fn expected(&self) -> Result<Expected, Failure> {
        let mut expected = Expected::default();
        match (&self.nodes, self.method) {
            (Some(nodes), _) => {
                expected.nodes = nodes.clone();
                expected.discovery = Some(DiscoveryInfo::of(muster_client::DiscoveryMethod::Nodes));
            }
            (None, DiscoveryMethod::Registry) => {
                let started = std::time::Instant::now();
                let seen = self
                    .client
                    .query_registry(&self.filter, None, self.config.discovery_timeout)
                    .await?;
                let recent = unix_now() - self.config.expect_seen.as_secs_f64();
                for node in seen {
                    let when = rfc3339(node.last_seen);
                    if node.last_seen >= recent {
                        expected.nodes.insert(node.identity.clone());
                    } else {
                        expected.absent.push((node.identity.clone(), when.clone()));
                    }
                    expected.last_seen.insert(node.identity, when);
                }
                expected.discovery_ms = millis(started.elapsed());
                expected.discovery =
                    Some(DiscoveryInfo::of(muster_client::DiscoveryMethod::Registry));
            }
            (None, _) => {
                let found = self
                    .client
                    .discover(&self.filter, &self.discovery_options())
                    .await?;
                expected.discovery_ms = millis(found.elapsed);
                // Broadcast cannot see a node that is down; a registry can. When one answers,
                // nodes it saw recently that did not answer discovery are expected too.
                let seen = self.seen_recently().await;
                expected.discovery = Some(found.info(seen.is_some()));
                expected.ignored = found.ignored;
                expected.nodes = found.nodes;
                for (identity, when) in seen.unwrap_or_default() {
                    expected.last_seen.insert(identity.clone(), when);
                    expected.nodes.insert(identity);
                }
            }
        }
        if let Some(limit) = self.pacing.limit {
            expected.nodes = choose(&expected.nodes, limit, self.pacing.limit_seed);
            expected.absent.clear();
        }
        Ok(expected)
    }

    /// The nodes matching the filter that a registry saw within `--expect-seen`, with when
    /// (RFC 3339); `None` when no registry answers, or (with a warning, since discovery then
    /// goes on without what the registry knows) when one answers with something unusable.
    pub async fn seen_recently(&self) -> Option<Vec<(String, String)>> {
        let recent = Some(self.config.expect_seen);
        match self
            .client
            .query_registry(&self.filter, recent, self.config.discovery_timeout)
            .await
        {
            Ok(seen) => Some(
                seen.into_iter()
                    .map(|node| (node.identity, rfc3339(node.last_seen)))
                    .collect(),
            ),
            Err(muster_client::ClientError::NoRegistry(_)) => None,
            Err(e) => {
                eprintln!(
                    "muster: warning: the registry's answer could not be used, so discovery \
                     goes on without it: {e}"
                );
                None
            }
        }
    }

    /// Asks a registry `query` (a filter, and extras: one fact, or the whole records), and
    /// splits the nodes into those seen within `--expect-seen` and those seen longer ago.
    /// Refused with `--nodes`: the registry answers for a filter.
    pub async fn registry_view(
        &self,
        query: muster_proto::registration::RegistryQuery,
    ) -> Result<RegistryView, Failure> {
        if self.nodes.is_some() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--from-registry answers for a filter (-F/-C/-I/-A/-S/-W); leave out --nodes"
            )));
        }
        let nodes = self
            .client
            .ask_registry(query, self.config.discovery_timeout)
            .await?;
        let recent = unix_now() - self.config.expect_seen.as_secs_f64();
        let (fresh, stale) = nodes.into_iter().partition(|n| n.last_seen >= recent);
        Ok(RegistryView { fresh, stale })
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
        match (json, &self.required_agent) {
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

    /// Request options from the config and the flags, for `expected` nodes. A node list is
    /// sent to each node's own subject whatever its size: a listed node may lack the agent,
    /// and does not subscribe to the agent's broadcast subject, so only a direct message
    /// reaches it to answer "no agent" (and a node that is not connected is known at once).
    pub fn request_options(&self, expected: usize) -> RequestOptions {
        let delivery = if self.nodes.is_some() {
            Delivery::Direct
        } else {
            Delivery::Auto
        };
        let pacing = match (self.pacing.window, self.pacing.batch) {
            (Some(n), _) => Pacing::Window(n),
            (None, Some(batch)) => Pacing::Batch {
                size: batch.of(expected).max(1),
                sleep: self.pacing.batch_sleep,
            },
            (None, None) => Pacing::All,
        };
        RequestOptions {
            timeout: self.config.timeout,
            direct_limit: self.config.direct_limit,
            delivery,
            pacing,
            ..RequestOptions::default()
        }
    }
}

/// The caller's key and credential, and the issuer to check replies against, from the client
/// config.
fn trust(
    config: &ClientConfig,
) -> Result<
    (
        Option<muster_client::Signing>,
        Option<muster_security::Verifier>,
    ),
    Failure,
> {
    let signing = match (&config.key, &config.credential) {
        (Some(key), Some(credential)) => Some(muster_client::Signing::load(key, credential)?),
        (None, None) => None,
        _ => {
            return Err(Failure::usage(anyhow::anyhow!(
                "the client config gives only one of key and credential: requests are signed \
                 with the key, and nodes need the credential to check the signature"
            )));
        }
    };
    let verifier = match &config.issuer {
        Some(path) => {
            let issuer = muster_security::PublicKey::read(path)
                .map_err(|e| Failure::usage(anyhow::anyhow!("issuer: {e}")))?;
            Some(muster_security::Verifier::new(
                issuer,
                muster_security::signed::PEER_CLOCK_SKEW_SECS,
            ))
        }
        None => None,
    };
    Ok((signing, verifier))
}

/// The DDLs this machine has, by agent name: the built-in agents', the simulator's, and those
/// in the client config's `ddl_directory`.
pub fn known_ddls(config: &ClientConfig) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = muster_agent::BUILTIN_DDLS
        .iter()
        .chain(&[("sim", muster_sim::agent::DDL)])
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    if let Some(dir) = &config.ddl_directory
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut extra: Vec<(String, String)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.to_string();
                let text = std::fs::read_to_string(&p).ok()?;
                Some((name, text))
            })
            .filter(|(name, _)| !all.iter().any(|(n, _)| n == name))
            .collect();
        extra.sort();
        all.extend(extra);
    }
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

/// The report of a request that was not sent because nobody matched: zero nodes, no request
/// id. With `--json` it is what exit 4 prints, so that stdout always parses (docs/design.md §3).
pub fn empty_report(agent: &str, action: &str, expected: &Expected) -> muster_client::Report {
    let mut report = muster_client::report::Tally::new(BTreeSet::new()).finish(
        "",
        agent,
        action,
        expected.discovery_ms,
        0,
    );
    expected.complete(&mut report);
    report
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
