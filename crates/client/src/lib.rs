//! The client library behind the `muster` command: connect to the broker, discover nodes, send
//! a request to an expected set, collect every acknowledgement and reply, and account for each
//! expected node with exactly one [`Outcome`] in a [`Report`].
//!
//! The report, its JSON form and the [`ExitStatus`] codes are the contract of docs/design.md
//! §3. This crate never prints: the CLI renders what it returns.
//!
//! A request end to end, as `muster rpc` runs it:
//!
//! ```no_run
//! use muster_client::{
//!     Call, Client, ClientConfig, ConnectConfig, RunOptions, Selection, Source,
//! };
//! use muster_proto::Filter;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::load(None)?;
//! let client = Client::connect(&ConnectConfig::from_config(&config)?).await?;
//! let mut filter = Filter::default();
//! filter.add_with("role=web")?;
//! let mut selection = Selection::new(&config, filter, Source::Discover);
//! selection.require_agent("rpcutil");
//! let expected = client.expected(&selection).await?;
//! let finished = client
//!     .run(&Call::new("rpcutil", "ping"), &expected, &RunOptions::new(&config), &mut |_| {})
//!     .await?;
//! for warning in &finished.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! println!("{}", serde_json::to_string(&finished.report)?);
//! std::process::exit(i32::from(finished.report.exit_status().code()));
//! # }
//! ```

pub mod aggregate;
pub mod collect;
pub mod config;
pub mod connection;
pub mod discovery;
pub mod duration;
pub mod exit;
pub mod facts;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod journal;
pub mod lookup;
pub mod nodes;
pub mod registry;
pub mod remembered;
pub mod report;
pub mod request;
pub mod run;
pub mod selection;

pub use config::ClientConfig;
pub use connection::{Client, ClientError, ConnectConfig, INBOX_CAPACITY, Signing};
pub use discovery::{Discovery, DiscoveryOptions};
pub use exit::ExitStatus;
pub use report::{
    DiscoveryFailure, DiscoveryInfo, DiscoveryMethod, Ignored, Lost, Missing, NodeReply, Outcome,
    Report, Stats,
};
pub use request::{Call, Delivery, Pacing, Progress, RequestOptions};
pub use run::{Expected, Finished, RunOptions, Selection, Sent, Source, Spread, Warning};
