//! A request end to end: who should answer ([`Client::expected`] for a [`Selection`]), sending
//! at the pace asked for, the finished [`Report`] with every expected node's outcome, the DDL's
//! summaries, the announcement to registries for collected requests, and the journal record
//! ([`Client::run`], [`Client::ping`], [`Client::send_collected`]).
//!
//! A program embedding this crate gets the same finished report the `muster` command prints:
//! the command only turns flags into a [`Selection`] and [`RunOptions`] and renders what comes
//! back (docs/design.md §3).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use muster_proto::Filter;
use muster_proto::ddl::Action;
use muster_proto::job::{JOB_PROTOCOL, JobRecord};
use muster_proto::registration::{RegistryQuery, SeenNode};
use muster_proto::time::rfc3339;

use crate::connection::{Client, ClientError};
use crate::discovery::DiscoveryOptions;
use crate::journal::{Entry, JournalTarget};
use crate::report::{DiscoveryInfo, DiscoveryMethod, Ignored, Lost, Outcome, Report, Tally};
use crate::request::{Call, Delivery, Pacing, Progress, RequestOptions, millis, unix_now};
use crate::selection::{Count, choose};
use crate::{ClientConfig, aggregate, report};

/// Where the expected set comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Broadcast discovery with the filter, reconciled with a registry when one answers: nodes
    /// it saw recently that did not answer discovery are expected too.
    #[default]
    Discover,
    /// The nodes a registry knows for the filter: those seen within
    /// [`Selection::expect_seen`] are sent to, the others are reported absent.
    Registry,
    /// Exactly these nodes (a node list). A filter cannot narrow it.
    Nodes(BTreeSet<String>),
}

/// Who should answer a request.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The filter discovery and the registry use.
    pub filter: Filter,
    /// Where the expected set comes from.
    pub source: Source,
    /// Only this many (or this share) of the nodes found, chosen at random (`--limit`, `--one`).
    pub limit: Option<Count>,
    /// The seed of that choice, to repeat it.
    pub limit_seed: Option<u64>,
    /// When broadcast discovery stops listening; also how long a registry is waited for.
    pub discovery: DiscoveryOptions,
    /// With a registry: nodes it saw within this long are expected to answer.
    pub expect_seen: Duration,
    /// The agent discovery requires, when [`Selection::require_agent`] added it.
    pub required_agent: Option<String>,
}

impl Selection {
    /// A selection with the config's discovery timeouts and `--expect-seen`.
    pub fn new(config: &ClientConfig, filter: Filter, source: Source) -> Self {
        Selection {
            filter,
            source,
            limit: None,
            limit_seed: None,
            discovery: DiscoveryOptions {
                timeout: config.discovery_timeout,
                quiet: config.discovery_quiet,
            },
            expect_seen: config.expect_seen,
            required_agent: None,
        }
    }

    /// Discovers only nodes that have `agent`, as MCollective and Choria do for every RPC
    /// request: a node without it is not expected to answer. Broadcast discovery, the
    /// registry and the registry's reconciliation all use the filter. A node list is not
    /// narrowed — it says who should answer, and a listed node that lacks the agent answers
    /// so on its own subject (see [`Expected::delivery`]).
    pub fn require_agent(&mut self, agent: &str) {
        if !matches!(self.source, Source::Nodes(_)) && !self.filter.agent.iter().any(|a| a == agent)
        {
            self.filter.agent.push(agent.to_string());
            self.required_agent = Some(agent.to_string());
        }
    }
}

/// Something that went wrong on the side of a request without failing it: the CLI prints
/// these as warnings, a program may log them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// A registry answered with something unusable, so discovery went on without it.
    #[error("the registry's answer could not be used, so discovery goes on without it: {0}")]
    RegistryUnusable(String),
    /// No registry stored the announcement of a `--collect` request.
    #[error("the replies are not collected: {0}")]
    NotCollected(String),
    /// The registries were not told which nodes were not connected.
    #[error("the registry does not know which nodes were not connected: {0}")]
    NotConnectedUnannounced(String),
    /// The journal could not be written.
    #[error("the request was not journalled: {0}")]
    NotJournalled(String),
    /// Nodes refused an action or inputs that the client's DDL of the agent accepts: the agent
    /// they run is described otherwise.
    #[error(
        "{nodes} {noun} refused what this machine's DDL of {agent} accepts ({example}: \
         {statusmsg}): the {agent} agent there has another DDL. `muster rpc rpcutil \
         agent_inventory -I {example}` shows its version and actions; put its DDL in \
         ddl_directory (client.toml) to validate with it",
        noun = if *nodes == 1 { "node" } else { "nodes" }
    )]
    DdlDiffers {
        /// The agent.
        agent: String,
        /// How many nodes refused.
        nodes: usize,
        /// One of them.
        example: String,
        /// What it said.
        statusmsg: String,
    },
}

/// The warning for nodes that refused, as unknown or invalid, an action the client validated
/// with its DDL (statuses 2, 3 and 4), if any did.
fn ddl_differs(call: &Call, report: &Report) -> Option<Warning> {
    let refused: Vec<&crate::report::NodeReply> = report
        .replies
        .iter()
        .filter(|r| matches!(r.statuscode, 2..=4))
        .collect();
    let first = refused.first()?;
    Some(Warning::DdlDiffers {
        agent: call.agent.clone(),
        nodes: refused.len(),
        example: first.sender.clone(),
        statusmsg: first.statusmsg.clone(),
    })
}

/// Who should answer a request: the expected set, and what discovery and the registry said
/// while finding it.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The filter the set was found with (recorded with the request).
    pub filter: Filter,
    /// The nodes to send to.
    pub nodes: BTreeSet<String>,
    /// Expected nodes not sent to: the registry last saw them too long ago (with when).
    pub absent: Vec<(String, String)>,
    /// When the registry last saw each node it knows (RFC 3339).
    pub last_seen: BTreeMap<String, String>,
    /// How long finding them took.
    pub discovery_ms: u64,
    /// Where they came from.
    pub discovery: Option<DiscoveryInfo>,
    /// Discovery answers that could not be verified.
    pub ignored: Vec<Ignored>,
    /// Messages the connection lost while discovery listened, when it lost any.
    pub lost: Option<Lost>,
    /// What went wrong on the side.
    pub warnings: Vec<Warning>,
}

impl Expected {
    /// Exactly `nodes`, as a node list (or the journal) names them.
    pub fn listed(nodes: BTreeSet<String>, filter: Filter) -> Self {
        Expected {
            filter,
            nodes,
            discovery: Some(DiscoveryInfo::of(DiscoveryMethod::Nodes)),
            ..Expected::default()
        }
    }

    /// Every node expected: those sent to and those the registry last saw too long ago.
    pub fn all(&self) -> BTreeSet<String> {
        let mut all = self.nodes.clone();
        all.extend(self.absent.iter().map(|(identity, _)| identity.clone()));
        all
    }

    /// Whether nobody is expected.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.absent.is_empty()
    }

    /// Whether nothing answered at all (exit 4): nobody is expected, and no answer was
    /// ignored either. Answers that could not be verified are reported instead (exit 1).
    pub fn nothing_answered(&self) -> bool {
        self.is_empty() && self.ignored.is_empty()
    }

    /// How a request to these nodes is delivered. A node list is sent to each node's own
    /// subject whatever its size: a listed node may lack the agent, and does not subscribe to
    /// the agent's broadcast subject, so only a direct message reaches it to answer "no agent"
    /// (and a node that is not connected is known at once).
    pub fn delivery(&self) -> Delivery {
        match &self.discovery {
            Some(info) if info.method == DiscoveryMethod::Nodes => Delivery::Direct,
            _ => Delivery::Auto,
        }
    }

    /// Adds what discovery and the registry know to a finished report: absent nodes,
    /// last-seen times, where the set came from, discovery answers that were ignored.
    pub fn complete(&self, report: &mut Report) {
        report.add_absent(&self.absent);
        report.annotate_last_seen(&self.last_seen);
        report.discovery = self.discovery.clone();
        report::merge_ignored(&mut report.ignored, &self.ignored);
        report.lost = report::Lost::merge(report.lost, self.lost);
    }

    /// The report of a request that was not sent because nobody matched: zero nodes, no
    /// request id (what `--json` prints with exit 4, docs/design.md §3).
    pub fn empty_report(&self, call: &Call) -> Report {
        let mut report =
            Tally::new(BTreeSet::new()).finish("", &call.agent, &call.action, self.discovery_ms, 0);
        self.complete(&mut report);
        report
    }
}

/// How a request is spread over its expected set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Spread {
    /// Everyone at once.
    #[default]
    All,
    /// `count` nodes (or a share of the expected set) at a time, `sleep` between batches.
    Batch {
        /// Nodes per batch.
        count: Count,
        /// The pause between batches.
        sleep: Duration,
    },
    /// Keep this many nodes in flight.
    Window(usize),
}

impl Spread {
    /// The pacing for `expected` nodes.
    pub fn pacing(self, expected: usize) -> Pacing {
        match self {
            Spread::All => Pacing::All,
            Spread::Batch { count, sleep } => Pacing::Batch {
                size: count.of(expected).max(1),
                sleep,
            },
            Spread::Window(n) => Pacing::Window(n),
        }
    }
}

/// How to run a request, besides whom to send it to.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to wait for replies (`-t`).
    pub timeout: Duration,
    /// Above this many discovered nodes, a request is one broadcast.
    pub direct_limit: usize,
    /// All at once, in batches, or through a window.
    pub spread: Spread,
    /// The action's description, for the summaries of its outputs (`aggregate`).
    pub action: Option<Action>,
    /// Announce the request to the registries so they collect the replies too (`--collect`).
    pub collect: bool,
    /// How long a registry is waited for (announcing a collected request).
    pub registry_timeout: Duration,
    /// Where the request is recorded.
    pub journal: JournalTarget,
    /// The request this one retries.
    pub retry_of: Option<String>,
}

impl RunOptions {
    /// Options with the config's timeouts, recording in the default journal.
    pub fn new(config: &ClientConfig) -> Self {
        RunOptions {
            timeout: config.timeout,
            direct_limit: config.direct_limit,
            spread: Spread::All,
            action: None,
            collect: false,
            registry_timeout: config.discovery_timeout,
            journal: JournalTarget::Default,
            retry_of: None,
        }
    }

    /// The request options for `expected`.
    pub fn request_options(&self, expected: &Expected) -> RequestOptions {
        RequestOptions {
            timeout: self.timeout,
            direct_limit: self.direct_limit,
            delivery: expected.delivery(),
            pacing: self.spread.pacing(expected.nodes.len()),
            ..RequestOptions::default()
        }
    }
}

/// A finished request: its report, and what went wrong on the side.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Every expected node with exactly one outcome.
    pub report: Report,
    /// Warnings: the journal, the registry.
    pub warnings: Vec<Warning>,
}

/// A request sent without waiting for its replies (`--no-results`): a registry collects them.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id, for `muster show`.
    pub request_id: String,
    /// Nodes expected, absent ones included.
    pub expected: usize,
    /// Nodes it was sent to.
    pub sent: usize,
    /// Warnings: the journal, the registry.
    pub warnings: Vec<Warning>,
}

/// What a registry knows about the nodes matching a filter.
#[derive(Debug, Clone)]
pub struct RegistryView {
    /// Seen within `expect_seen`.
    pub fresh: Vec<SeenNode>,
    /// Seen longer ago: what the registry holds for them may be out of date.
    pub stale: Vec<SeenNode>,
}

impl Client {
    /// The expected set of `selection`: the node list if one was given, the registry's view
    /// with [`Source::Registry`], else broadcast discovery reconciled with a registry when
    /// one answers; narrowed by [`Selection::limit`].
    pub async fn expected(&self, selection: &Selection) -> Result<Expected, ClientError> {
        let mut expected = Expected {
            filter: selection.filter.clone(),
            ..Expected::default()
        };
        match &selection.source {
            Source::Nodes(nodes) => {
                expected = Expected::listed(nodes.clone(), selection.filter.clone());
            }
            Source::Registry => {
                let started = Instant::now();
                let seen = self
                    .query_registry(&selection.filter, None, selection.discovery.timeout)
                    .await?;
                let recent = unix_now() - selection.expect_seen.as_secs_f64();
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
                expected.discovery = Some(DiscoveryInfo::of(DiscoveryMethod::Registry));
            }
            Source::Discover => {
                let found = self
                    .discover(&selection.filter, &selection.discovery)
                    .await?;
                expected.discovery_ms = millis(found.elapsed);
                // Broadcast cannot see a node that is down; a registry can. When one answers,
                // nodes it saw recently that did not answer discovery are expected too.
                let seen = self.seen_recently(selection, &mut expected.warnings).await;
                expected.discovery = Some(found.info(seen.is_some()));
                expected.ignored = found.ignored;
                expected.lost = found.lost;
                expected.nodes = found.nodes;
                for (identity, when) in seen.unwrap_or_default() {
                    expected.last_seen.insert(identity.clone(), when);
                    expected.nodes.insert(identity);
                }
            }
        }
        if let Some(limit) = selection.limit {
            expected.nodes = choose(&expected.nodes, limit, selection.limit_seed);
            expected.absent.clear();
        }
        Ok(expected)
    }

    /// The nodes matching the selection's filter that a registry saw within `expect_seen`,
    /// with when (RFC 3339); `None` when no registry answers, or (with a warning, since
    /// discovery then goes on without what the registry knows) when one answers with
    /// something unusable.
    async fn seen_recently(
        &self,
        selection: &Selection,
        warnings: &mut Vec<Warning>,
    ) -> Option<Vec<(String, String)>> {
        match self
            .query_registry(
                &selection.filter,
                Some(selection.expect_seen),
                selection.discovery.timeout,
            )
            .await
        {
            Ok(seen) => Some(
                seen.into_iter()
                    .map(|node| (node.identity, rfc3339(node.last_seen)))
                    .collect(),
            ),
            Err(ClientError::NoRegistry(_)) => None,
            Err(e) => {
                warnings.push(Warning::RegistryUnusable(e.to_string()));
                None
            }
        }
    }

    /// Asks a registry `query` (a filter, and extras: one fact, or the whole records), and
    /// splits the nodes into those seen within `expect_seen` and those seen longer ago.
    pub async fn registry_view(
        &self,
        query: RegistryQuery,
        expect_seen: Duration,
        timeout: Duration,
    ) -> Result<RegistryView, ClientError> {
        let nodes = self.ask_registry(query, timeout).await?;
        let recent = unix_now() - expect_seen.as_secs_f64();
        let (fresh, stale) = nodes.into_iter().partition(|n| n.last_seen >= recent);
        Ok(RegistryView { fresh, stale })
    }

    /// Runs `call` on `expected` and waits: the finished report with every expected node's
    /// outcome, what discovery knew, the summaries of the action's outputs, recorded in the
    /// journal (and, with [`RunOptions::collect`], announced to the registries).
    pub async fn run(
        &self,
        call: &Call,
        expected: &Expected,
        options: &RunOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Finished, ClientError> {
        let mut request = options.request_options(expected);
        let mut warnings = Vec::new();
        let mut job = None;
        if options.collect && !expected.is_empty() {
            let id = self.new_request_id();
            let record = self.job_record(call, expected, &request, &id, options);
            if let Err(e) = self.announce_job(&record, options.registry_timeout).await {
                warnings.push(Warning::NotCollected(e.to_string()));
            }
            request.id = Some(id);
            request.collect = true;
            job = Some(record);
        }
        let mut report = self
            .request(
                call,
                &expected.nodes,
                &request,
                expected.discovery_ms,
                progress,
            )
            .await?;
        if let Some(job) = &mut job {
            let absent: Vec<String> = report
                .missing
                .iter()
                .filter(|m| m.outcome == Outcome::NotConnected)
                .map(|m| m.identity.clone())
                .collect();
            self.announce_not_connected(job, absent, options, &mut warnings)
                .await;
        }
        expected.complete(&mut report);
        if let Some(action) = &options.action {
            report.aggregates = aggregate::compute(action, &report);
            warnings.extend(ddl_differs(call, &report));
        }
        journal(
            &options.journal,
            &Entry::of_report(call, &expected.filter, options.retry_of.clone(), &report),
            &mut warnings,
        );
        Ok(Finished { report, warnings })
    }

    /// Sends `call` to `expected` without waiting (`--no-results`): announced to the
    /// registries first, which collect the replies; nothing is sent when none stores the
    /// announcement, since nobody would see the replies.
    pub async fn send_collected(
        &self,
        call: &Call,
        expected: &Expected,
        options: &RunOptions,
    ) -> Result<Sent, ClientError> {
        let mut request = options.request_options(expected);
        let id = self.new_request_id();
        let mut record = self.job_record(call, expected, &request, &id, options);
        self.announce_job(&record, options.registry_timeout)
            .await
            .map_err(|e| ClientError::Uncollected(e.to_string()))?;
        request.id = Some(id.clone());
        request.collect = true;
        let absent = self.send_only(call, &expected.nodes, &request, &id).await?;
        let mut warnings = Vec::new();
        self.announce_not_connected(
            &mut record,
            absent.into_iter().collect(),
            options,
            &mut warnings,
        )
        .await;
        journal(
            &options.journal,
            &Entry::of_sent(call, &expected.filter, &record),
            &mut warnings,
        );
        Ok(Sent {
            request_id: id,
            expected: record.expected.len().saturating_add(record.absent.len()),
            sent: record.expected.len(),
            warnings,
        })
    }

    /// Who is there: an `rpcutil ping`. With broadcast discovery the discovery answers are
    /// the pings, and nodes a registry saw recently that did not answer are pinged on their
    /// own subjects, so a stopped node is named; with a node list or the registry each node
    /// is pinged on its own subject. Recorded in the journal.
    pub async fn ping(
        &self,
        selection: &Selection,
        options: &RunOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Finished, ClientError> {
        let call = Call::new("rpcutil", "ping");
        if selection.source != Source::Discover {
            let expected = self.expected(selection).await?;
            if expected.nothing_answered() {
                return Ok(Finished {
                    report: expected.empty_report(&call),
                    warnings: expected.warnings,
                });
            }
            let mut finished = self.run(&call, &expected, options, progress).await?;
            finished.warnings.splice(0..0, expected.warnings);
            return Ok(finished);
        }
        let mut warnings = Vec::new();
        let found = self
            .discover(&selection.filter, &selection.discovery)
            .await?;
        // Broadcast cannot see a node that is down; a registry can. Nodes it saw recently that
        // did not answer are pinged on their own subjects: not connected, or late.
        let seen = self.seen_recently(selection, &mut warnings).await;
        let and_registry = seen.is_some();
        let mut report = found.into_ping_report();
        if let Some(discovery) = &mut report.discovery
            && and_registry
        {
            discovery.method = DiscoveryMethod::BroadcastAndRegistry;
        }
        let last_seen: BTreeMap<String, String> = seen.into_iter().flatten().collect();
        let late: BTreeSet<String> = last_seen
            .keys()
            .filter(|identity| !report.replies.iter().any(|r| &r.sender == *identity))
            .cloned()
            .collect();
        if !late.is_empty() {
            // Named by the registry, like a node list: each on its own subject.
            let late = Expected::listed(late, selection.filter.clone());
            let request = options.request_options(&late);
            let extra = self
                .request(&call, &late.nodes, &request, 0, &mut |_| {})
                .await?;
            report.merge(extra);
            report.annotate_last_seen(&last_seen);
        }
        journal(
            &options.journal,
            &Entry::of_report(&call, &selection.filter, None, &report),
            &mut warnings,
        );
        Ok(Finished { report, warnings })
    }

    /// What a registry needs to rebuild the report of request `id` later.
    fn job_record(
        &self,
        call: &Call,
        expected: &Expected,
        request: &RequestOptions,
        id: &str,
        options: &RunOptions,
    ) -> JobRecord {
        let batch_size = match request.pacing {
            Pacing::Batch { size, .. } => Some(size),
            _ => None,
        };
        JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: id.to_string(),
            time: unix_now(),
            agent: call.agent.clone(),
            action: call.action.clone(),
            caller: self.caller().to_string(),
            data: call.data.clone(),
            filter: expected.filter.clone(),
            expected: expected.nodes.iter().cloned().collect(),
            absent: expected.absent.clone(),
            last_seen: expected.last_seen.clone(),
            batch_size,
            timeout_ms: millis(request.timeout),
            retry_of: options.retry_of.clone(),
            not_connected: Vec::new(),
        }
    }

    /// Announces `job` again with the nodes the broker said were not connected (it tells only
    /// the sender), so a registry's report names them too.
    async fn announce_not_connected(
        &self,
        job: &mut JobRecord,
        nodes: Vec<String>,
        options: &RunOptions,
        warnings: &mut Vec<Warning>,
    ) {
        if nodes.is_empty() {
            return;
        }
        job.not_connected = nodes;
        if let Err(e) = self.announce_job(job, options.registry_timeout).await {
            warnings.push(Warning::NotConnectedUnannounced(e.to_string()));
        }
    }
}

/// Records `entry` where `target` says; a journal that cannot be written is a warning, never
/// a failure of the request. A request that reached nobody is not recorded.
fn journal(target: &JournalTarget, entry: &Entry, warnings: &mut Vec<Warning>) {
    if !entry.collected && entry.report.stats.expected == 0 && entry.report.replies.is_empty() {
        // Nothing matched and nothing was sent: nothing to remember.
        return;
    }
    if let Err(e) = target.record(entry) {
        warnings.push(Warning::NotJournalled(e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_at_least_one_node_and_a_share_of_the_expected_set() {
        let batch = |count| Spread::Batch {
            count,
            sleep: Duration::ZERO,
        };
        assert_eq!(
            batch(Count::Percent(10.0)).pacing(35),
            Pacing::Batch {
                size: 4,
                sleep: Duration::ZERO
            }
        );
        assert_eq!(
            batch(Count::Nodes(50)).pacing(0),
            Pacing::Batch {
                size: 1,
                sleep: Duration::ZERO
            }
        );
        assert_eq!(Spread::Window(3).pacing(100), Pacing::Window(3));
    }

    #[test]
    fn a_node_list_requires_no_agent_and_is_sent_direct() {
        let config = ClientConfig::default();
        let nodes = BTreeSet::from(["web1".to_string()]);
        let mut listed = Selection::new(&config, Filter::default(), Source::Nodes(nodes.clone()));
        listed.require_agent("shell");
        assert!(listed.filter.agent.is_empty());
        assert_eq!(listed.required_agent, None);
        assert_eq!(
            Expected::listed(nodes, Filter::default()).delivery(),
            Delivery::Direct
        );

        let mut discovered = Selection::new(&config, Filter::default(), Source::Discover);
        discovered.require_agent("shell");
        discovered.require_agent("shell");
        assert_eq!(discovered.filter.agent, vec!["shell".to_string()]);
        assert_eq!(discovered.required_agent.as_deref(), Some("shell"));
        assert_eq!(Expected::default().delivery(), Delivery::Auto);
    }

    #[test]
    fn the_empty_report_carries_what_discovery_knew() {
        let expected = Expected {
            discovery_ms: 7,
            discovery: Some(DiscoveryInfo::of(DiscoveryMethod::Registry)),
            ..Expected::default()
        };
        let report = expected.empty_report(&Call::new("rpcutil", "ping"));
        assert_eq!(report.request_id, "");
        assert_eq!(report.stats.expected, 0);
        assert_eq!(report.stats.discovery_ms, 7);
        assert_eq!(
            report.discovery.map(|d| d.method),
            Some(DiscoveryMethod::Registry)
        );
        assert!(expected.nothing_answered());
    }
}
