//! The command line (docs/design.md §4). The flags the client commands share are defined once
//! (`FilterArgs`, `ConnectionArgs`, `RequestArgs`) and flattened into each; the services
//! (`server`, `sim`, `registry`) define their own `--broker` and `-T`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use muster_client::duration;
use muster_client::selection::Count;
use muster_sim::fault::Share;

/// `--slow P%:DURATION`: the share before the colon, the duration after it, read like every
/// other duration.
fn slow_fault(text: &str) -> Result<(Share, Duration), String> {
    let (share, delay) = text
        .split_once(':')
        .ok_or_else(|| format!("write P%:DURATION, e.g. 5%:3s, not {text:?}"))?;
    let share = Share::parse("--slow", share).map_err(|e| e.to_string())?;
    let delay = duration::parse(delay).map_err(|e| e.to_string())?;
    Ok((share, delay))
}

/// `--broker URL`, for every command that connects: repeatable or comma-separated. It beats
/// `MUSTER_BROKER`, which beats the config file (docs/design.md §4); the config loaders read the
/// environment, so that each can say where the URLs came from.
#[derive(Debug, Args, Clone, Default)]
pub struct BrokerUrls {
    /// Broker URL (repeatable, or comma-separated); beats MUSTER_BROKER and the config file.
    #[arg(long = "broker", value_name = "URL", value_delimiter = ',')]
    pub urls: Vec<String>,
}

/// `--config FILE`: the client config (TOML), for every command that reads it.
#[derive(Debug, Args, Clone, Default)]
pub struct ClientConfigFile {
    /// Client config file (TOML).
    #[arg(long = "config", value_name = "FILE", env = "MUSTER_CONFIG")]
    pub path: Option<PathBuf>,
}

/// `N` nodes or `P%` of them (`--batch`, `--limit`).
fn count(text: &str) -> Result<Count, String> {
    text.parse::<Count>().map_err(|e| e.to_string())
}

/// At least one (`--window`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("give how many nodes to keep in flight (at least 1)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number of nodes")),
    }
}

/// A share of the fleet, `P%` (the simulator's faults).
fn share(text: &str) -> Result<Share, String> {
    text.parse::<Share>().map_err(|e| e.to_string())
}

/// Muster: pick machines by what they are, send one request that reaches them all at once, and
/// see exactly which did not answer.
#[derive(Debug, Parser)]
#[command(name = "muster", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node daemon on this machine.
    Server(ServerArgs),
    /// Ping the matching nodes and report who answered.
    Ping(RequestArgs),
    /// List the identities of the matching nodes.
    Find(RequestArgs),
    /// Summarise one fact across the matching nodes: value → count.
    Facts(FactsArgs),
    /// Show one node's facts, classes and agents.
    Inventory(InventoryArgs),
    /// Run an agent's action on the matching nodes.
    Rpc(RpcArgs),
    /// Recent requests from the journal: id, time, agent and action, outcome counts.
    History(HistoryArgs),
    /// A request's report, as when it ran — from the journal, or from a registry for requests
    /// sent with --no-results or --collect: who got it and who did not.
    Show(ShowArgs),
    /// Send a journalled request again to exactly the nodes that missed it or failed.
    Retry(RetryArgs),
    /// Agents' documentation, from their DDL.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Simulate a fleet: thousands of virtual nodes in this process, with injected faults.
    Sim(SimArgs),
    /// Collect node registrations into a database and answer inventory queries.
    Registry(RegistryArgs),
    /// A self-contained tour: embedded broker, this machine as a node, a simulated fleet.
    Demo(DemoArgs),
    /// Run the embedded broker (the NATS client protocol, single node).
    Broker(BrokerArgs),
    /// Make an ed25519 key pair: the private key (mode 0600) and, beside it, the public key.
    Keygen(KeygenArgs),
    /// The organisation's issuer: make its key, and issue credentials with it.
    #[command(subcommand)]
    Issuer(IssuerCommand),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The private key file to write; the public key goes beside it with `.pub` for its
    /// extension. Never overwritten.
    #[arg(long, default_value = "muster.key")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Make the issuer's key pair: issuer.key (keep it offline) and issuer.pub (give it to
    /// every node and client).
    Init {
        /// The directory to write them in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Issue a credential for a caller's or a node's public key.
    Issue(IssueArgs),
    /// TLS certificates for the broker connection, for `muster broker` and nats-server alike:
    /// a CA, the broker's certificate, and clients' (clients, daemons, the registry).
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make the CA: DIR/ca.crt (the broker and every client get it) and DIR/ca.key (keep it
    /// to yourself: it makes certificates).
    Ca {
        /// The directory to write them in (made, mode 0700, if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The CA's name (its certificate's common name).
        #[arg(long, default_value = "Muster CA")]
        name: String,
        /// How long it is valid, e.g. 3650d, 10y.
        #[arg(long, default_value = "3650d", value_name = "DURATION", value_parser = duration::parse)]
        valid: Duration,
    },
    /// Make the broker's certificate, signed by the CA: OUT.crt and OUT.key.
    Server(TlsServerArgs),
    /// Make a client's certificate, signed by the CA, for a client, a daemon or the registry:
    /// OUT.crt and OUT.key.
    Client(TlsClientArgs),
}

/// Where the CA is, where the files go and how long they are valid.
#[derive(Debug, Args)]
pub struct TlsLeafArgs {
    /// The CA's directory (ca.crt and ca.key, from `muster issuer tls ca`).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub ca: PathBuf,
    /// Write OUT.crt and OUT.key (default: NAME in the current directory). Never overwritten.
    #[arg(long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// How long it is valid, e.g. 365d (not past the CA's expiry).
    #[arg(long, default_value = "365d", value_name = "DURATION", value_parser = duration::parse)]
    pub valid: Duration,
}

#[derive(Debug, Args)]
pub struct TlsServerArgs {
    /// A host name clients connect to (repeatable; the first is the common name).
    #[arg(long = "name", value_name = "HOST", required_unless_present = "ips")]
    pub names: Vec<String>,
    /// An IP address clients connect to (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<std::net::IpAddr>,
    #[command(flatten)]
    pub leaf: TlsLeafArgs,
}

#[derive(Debug, Args)]
pub struct TlsClientArgs {
    /// Who it is for: the common name (a node's identity, a user's name).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub leaf: TlsLeafArgs,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// A caller's credential, for this name (the caller policies name).
    #[arg(long, required_unless_present = "node", conflicts_with = "node")]
    pub caller: Option<String>,
    /// A node's credential, for this identity.
    #[arg(long)]
    pub node: Option<String>,
    /// The holder's public key file (from `muster keygen`).
    #[arg(long, value_name = "FILE")]
    pub pubkey: PathBuf,
    /// How long it is valid, e.g. 30d, 12h (a bare number is seconds).
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = duration::parse)]
    pub valid: Duration,
    /// Limit a caller to these agents (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub agents: Vec<String>,
    /// The issuer's private key.
    #[arg(long, default_value = "issuer.key", value_name = "FILE")]
    pub issuer_key: PathBuf,
    /// Where to write the credential (default: NAME.cred).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The daemon's config file (TOML); without it every key has its default.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub brokers: BrokerUrls,
    /// This node's identity; overrides the config file.
    #[arg(long)]
    pub identity: Option<String>,
}

/// Which nodes: the filters MCollective and Choria users know.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Fact filter, e.g. `os.family=Debian`, `cpus>=4`, `kernel=~^6\.` (repeatable; all must match).
    #[arg(
        short = 'F',
        long = "wf",
        visible_alias = "with-fact",
        value_name = "FACT=VALUE"
    )]
    pub with_fact: Vec<String>,
    /// Class filter, a name or /regex/ (repeatable; all must match).
    #[arg(
        short = 'C',
        long = "wc",
        visible_alias = "with-class",
        value_name = "CLASS"
    )]
    pub with_class: Vec<String>,
    /// Identity filter, a name or /regex/ (repeatable; any may match).
    #[arg(
        short = 'I',
        long = "wi",
        visible_alias = "with-identity",
        value_name = "IDENTITY"
    )]
    pub with_identity: Vec<String>,
    /// Agent filter (repeatable; all must be present).
    #[arg(
        short = 'A',
        long = "wa",
        visible_alias = "with-agent",
        value_name = "AGENT"
    )]
    pub with_agent: Vec<String>,
    /// Compound filter, e.g. `fact.role = web and not class = canary`.
    #[arg(short = 'S', long = "select", value_name = "EXPR")]
    pub select: Option<String>,
    /// Classes and facts mixed, space separated, e.g. `nginx role=web`.
    #[arg(short = 'W', long = "with", value_name = "FILTER")]
    pub with: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoveryMethod {
    /// Ask the matching nodes to answer.
    Broadcast,
    /// Read the node list given with --nodes.
    Nodes,
    /// Ask the registry which matching nodes should answer.
    Registry,
}

/// Which nodes of a report `--nodes` takes: the outcomes are written as in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum NodesFrom {
    /// Every node the report expected, whether it replied or not.
    Expected,
    /// Every node the report names, the unexpected repliers too.
    All,
    /// Replied with status 0.
    Ok,
    /// Replied with a failure.
    Failed,
    /// Did not reply: timeout, no_reply and not_connected.
    Missing,
    /// Acknowledged, but no reply in time.
    Timeout,
    /// Nothing at all.
    NoReply,
    /// Not connected.
    NotConnected,
    /// Replied without being expected.
    Unexpected,
}

impl From<NodesFrom> for muster_client::nodes::FromReport {
    fn from(n: NodesFrom) -> Self {
        use muster_client::nodes::FromReport;
        match n {
            NodesFrom::Expected => FromReport::Expected,
            NodesFrom::All => FromReport::All,
            NodesFrom::Ok => FromReport::Ok,
            NodesFrom::Failed => FromReport::Failed,
            NodesFrom::Missing => FromReport::Missing,
            NodesFrom::Timeout => FromReport::Timeout,
            NodesFrom::NoReply => FromReport::NoReply,
            NodesFrom::NotConnected => FromReport::NotConnected,
            NodesFrom::Unexpected => FromReport::Unexpected,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Display {
    /// Every node's reply.
    All,
    /// Only successful replies.
    Ok,
    /// Only failed replies.
    Failed,
    /// No per-node replies, only the summary.
    None,
}

/// Which broker and collective a client command talks to, and its config file.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnectionArgs {
    /// The collective to address.
    #[arg(short = 'T', long = "target", value_name = "COLLECTIVE")]
    pub collective: Option<String>,
    #[command(flatten)]
    pub brokers: BrokerUrls,
    #[command(flatten)]
    pub config: ClientConfigFile,
}

/// Where the brokers are and how to talk to the nodes.
#[derive(Debug, Args, Clone)]
pub struct RequestArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// How long to wait for replies: seconds (10) or with units (10s, 1m30s, 500ms).
    #[arg(short = 't', long, value_name = "DURATION", value_parser = duration::parse)]
    pub timeout: Option<Duration>,
    /// The most broadcast discovery may take: seconds (2) or with units (2s, 500ms).
    #[arg(
        long = "dt",
        visible_alias = "discovery-timeout",
        value_name = "DURATION",
        value_parser = duration::parse
    )]
    pub discovery_timeout: Option<Duration>,
    /// How the expected set is found.
    #[arg(long = "dm", visible_alias = "discovery-method", value_enum)]
    pub discovery_method: Option<DiscoveryMethod>,
    /// With a registry: nodes it saw within this long are expected to answer; older ones are
    /// reported not connected (default from the client config: 5m; a bare number is seconds).
    #[arg(long = "expect-seen", value_name = "DURATION", value_parser = duration::parse)]
    pub expect_seen: Option<Duration>,
    /// Node list: a file of identities, one per line, or JSON Muster printed: `find --json`, a
    /// report (`ping`, `rpc`, `facts`, `show` … `--json`: its expected nodes), or `facts
    /// --from-registry --json`; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub nodes: Option<String>,
    /// From a report given with --nodes, take only the nodes with these outcomes
    /// (comma-separated; default: expected, every node it expected).
    #[arg(
        long = "nodes-from",
        value_name = "OUTCOME",
        value_enum,
        value_delimiter = ',',
        requires = "nodes"
    )]
    pub nodes_from: Vec<NodesFrom>,
    /// Print exactly one JSON object (the report) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Which per-node replies to show.
    #[arg(long, value_enum)]
    pub display: Option<Display>,
    /// Say more: the request id, per-node timings, every node's reply.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// The journal file every request is recorded in (default: the XDG data directory).
    #[arg(long, value_name = "PATH", env = "MUSTER_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// Send in batches of N nodes (or P%); each batch starts when the last one has settled.
    #[arg(long, value_name = "N|P%", value_parser = count)]
    pub batch: Option<Count>,
    /// The pause between batches: seconds (1) or with units (1s, 500ms).
    #[arg(
        long = "batch-sleep",
        value_name = "DURATION",
        requires = "batch",
        value_parser = duration::parse
    )]
    pub batch_sleep: Option<Duration>,
    /// Keep N nodes in flight: whenever one settles the next gets the request.
    #[arg(long, value_name = "N", conflicts_with = "batch", value_parser = at_least_one)]
    pub window: Option<usize>,
    /// Send to only N (or P%) of the expected set, chosen at random.
    #[arg(long, value_name = "N|P%", value_parser = count)]
    pub limit: Option<Count>,
    /// Seed for --limit's random choice, to repeat it.
    #[arg(long = "limit-seed", value_name = "N")]
    pub limit_seed: Option<u64>,
    /// Send to only one node of the expected set.
    #[arg(long, conflicts_with = "limit")]
    pub one: bool,
}

impl RequestArgs {
    /// Flags for rendering a report that is not being sent (`show`).
    pub fn for_display() -> Self {
        RequestArgs {
            filter: FilterArgs::default(),
            connection: ConnectionArgs::default(),
            timeout: None,
            discovery_timeout: None,
            discovery_method: None,
            expect_seen: None,
            nodes: None,
            nodes_from: Vec::new(),
            json: false,
            display: None,
            verbose: false,
            journal: None,
            batch: None,
            batch_sleep: None,
            window: None,
            limit: None,
            limit_seed: None,
            one: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct FactsArgs {
    /// The fact's dotted path, e.g. `os.family`.
    #[arg(id = "fact_path", value_name = "FACT")]
    pub fact: String,
    /// Answer from the registry, as each node last registered, instead of asking the nodes.
    #[arg(long)]
    pub from_registry: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The node's identity.
    pub identity: String,
    /// Answer from the registry, as the node last registered, instead of asking it.
    #[arg(long)]
    pub from_registry: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct RpcArgs {
    /// The agent, e.g. `rpcutil`.
    pub agent: String,
    /// The action, e.g. `inventory`.
    pub action: String,
    /// Inputs as key=value.
    #[arg(value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Send, print the request id and exit without waiting: a registry collects the replies
    /// for `muster show ID`.
    #[arg(long = "no-results", visible_alias = "nr")]
    pub no_results: bool,
    /// Wait for the replies as usual, and have a registry collect them too, so `muster show
    /// ID` works from any machine.
    #[arg(long, conflicts_with = "no_results")]
    pub collect: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// How many virtual nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    #[command(flatten)]
    pub brokers: BrokerUrls,
    /// The collective.
    #[arg(
        short = 'T',
        long = "target",
        value_name = "COLLECTIVE",
        default_value = "muster"
    )]
    pub collective: String,
    /// The seed: the same seed gives the same fleet (identities, facts, classes, faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Identity prefix: nodes are PREFIX-00001, PREFIX-00002, …
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// This share of nodes never answers, e.g. 2%.
    #[arg(long, value_name = "P%", value_parser = share)]
    pub silent: Option<Share>,
    /// This share of nodes answers every request but discovery with a failure.
    #[arg(long, value_name = "P%", value_parser = share)]
    pub fail: Option<Share>,
    /// This share of nodes acknowledges at once but answers late, e.g. 5%:3s.
    #[arg(long, value_name = "P%:DURATION", value_parser = slow_fault)]
    pub slow: Option<(Share, Duration)>,
    /// This share of nodes (5% if no value) disconnects every 5–20 s and comes back 1–5 s later.
    #[arg(
        long,
        value_name = "P%",
        num_args = 0..=1,
        default_missing_value = "5%",
        value_parser = share
    )]
    pub flap: Option<Share>,
    /// This share of nodes ignores filters and answers every broadcast (shown as unexpected).
    #[arg(long, value_name = "P%", value_parser = share)]
    pub stray: Option<Share>,
    /// How many virtual nodes share one broker connection.
    #[arg(long, default_value_t = 1000)]
    pub per_connection: usize,
    /// Write the identities, one per line, to this file (for --nodes).
    #[arg(long, value_name = "FILE")]
    pub write_nodes: Option<PathBuf>,
    /// Signed mode: DIR/issuer.key (from `muster issuer init`) issues every virtual node a key
    /// and credential; nodes then take only requests signed by callers of that issuer, and
    /// sign their replies.
    #[arg(long, value_name = "DIR")]
    pub issuer_dir: Option<PathBuf>,
    /// With --issuer-dir: a throwaway issuer for this run instead, whose issuer.pub, a caller
    /// key and credential and a client config (client.toml) are written into DIR, so that
    /// `muster ping --config DIR/client.toml` talks to the fleet at once.
    #[arg(long, requires = "issuer_dir")]
    pub generate: bool,
    /// A client config file: its `brokers` (when no --broker) and its `[transport]` (TLS,
    /// NATS credentials) are the virtual nodes'.
    #[command(flatten)]
    pub config: ClientConfigFile,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many requests, newest first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: usize,
    /// The journal file (default: the XDG data directory).
    #[arg(long, value_name = "PATH", env = "MUSTER_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The request id (or the start of it, for a request in the journal).
    pub id: String,
    /// Ask a registry even when the journal has the request.
    #[arg(long)]
    pub from_registry: bool,
    /// The broker and collective of the registry to ask.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The journal file (default: the XDG data directory).
    #[arg(long, value_name = "PATH", env = "MUSTER_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Which per-node replies to show.
    #[arg(long, value_enum)]
    pub display: Option<Display>,
    /// Say more.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The request id (or the start of it).
    pub id: String,
    /// Send to the nodes that did not respond (no reply, timeout, not connected).
    #[arg(long, required_unless_present = "failed")]
    pub missing: bool,
    /// Send to the nodes that replied with a failure.
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// An agent's actions, inputs (types, validation) and outputs; without AGENT, the agents.
    Doc {
        /// The agent, e.g. `rpcutil`.
        agent: Option<String>,
        /// Its `ddl_directory` adds external agents' DDLs.
        #[command(flatten)]
        config: ClientConfigFile,
    },
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The SQLite database file.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    #[command(flatten)]
    pub brokers: BrokerUrls,
    /// The collective.
    #[arg(
        short = 'T',
        long = "target",
        value_name = "COLLECTIVE",
        default_value = "muster"
    )]
    pub collective: String,
    /// Records of nodes not seen for this long are deleted, e.g. 7d (a bare number is seconds).
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = duration::parse)]
    pub retention: Duration,
    /// The issuer's public key: accept only registrations and replies signed by nodes it
    /// vouches for.
    #[arg(long, value_name = "FILE")]
    pub issuer: Option<PathBuf>,
    /// A client config file: its `brokers` (when no --broker) and its `[transport]` (TLS,
    /// NATS credentials) are the registry's.
    #[command(flatten)]
    pub config: ClientConfigFile,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many simulated nodes.
    #[arg(long, default_value_t = 300)]
    pub nodes: usize,
    /// Keep the broker and the fleet running after the tour, for trying commands by hand.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:4222")]
    pub listen: String,
    /// Broker config file (TOML): limits and authentication.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
