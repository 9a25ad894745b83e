//! `muster ping`: who is there. With broadcast discovery the discovery answers are the pings;
//! with a node list each node is pinged on its own subject.

use muster_client::{Call, ExitStatus};

use crate::Failure;
use crate::args::{DiscoveryMethod, RequestArgs};
use crate::cmd::{end_progress, no_match, progress};
use crate::render;

pub async fn run(args: RequestArgs) -> Result<ExitStatus, Failure> {
    let session = args.connect().await?;
    // A node list or the registry says who should answer: ping exactly those. Otherwise the
    // discovery broadcast is the ping.
    let report = if session.nodes.is_some() || session.method == DiscoveryMethod::Registry {
        let expected = session.expected().await?;
        if expected.is_empty() {
            return Ok(no_match(args.json));
        }
        let mut report = session
            .client
            .request(
                &Call::new("rpcutil", "ping"),
                &expected.nodes,
                &session.request_options(expected.nodes.len()),
                expected.discovery_ms,
                &mut progress(args.json),
            )
            .await?;
        end_progress(args.json);
        expected.complete(&mut report);
        report
    } else {
        let found = session
            .client
            .discover(&session.filter, &session.discovery_options())
            .await?;
        found.into_ping_report()
    };
    crate::cmd::journal::record(
        &args,
        &Call::new("rpcutil", "ping"),
        &session.filter,
        None,
        &report,
    );
    if report.stats.expected == 0 {
        if args.json {
            render::json(&report);
        }
        return Ok(no_match(args.json));
    }
    if args.json {
        render::json(&report);
    } else {
        render::ping(&report, args.verbose);
    }
    Ok(report.exit_status())
}
