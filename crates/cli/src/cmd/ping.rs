//! `muster ping`: who is there. With broadcast discovery the discovery answers are the pings,
//! and nodes a registry saw recently that did not answer are pinged on their own subjects, so
//! a stopped node is named; with a node list or `--dm registry` each node is pinged on its own
//! subject.

use std::collections::{BTreeMap, BTreeSet};

use muster_client::{Call, Delivery, ExitStatus, RequestOptions};

use crate::Failure;
use crate::args::{DiscoveryMethod, RequestArgs};
use crate::cmd::{end_progress, progress};
use crate::render;

pub async fn run(args: RequestArgs) -> Result<ExitStatus, Failure> {
    let session = args.connect().await?;
    // A node list or the registry says who should answer: ping exactly those. Otherwise the
    // discovery broadcast is the ping.
    let report = if session.nodes.is_some() || session.method == DiscoveryMethod::Registry {
        let expected = session.expected().await?;
        if expected.nothing_answered() {
            return Ok(session.no_match(args.json));
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
        // Broadcast cannot see a node that is down; a registry can. Nodes it saw recently that
        // did not answer are pinged on their own subjects: not connected, or late.
        let seen = session.seen_recently().await;
        let and_registry = seen.is_some();
        let mut report = found.into_ping_report();
        if let Some(discovery) = &mut report.discovery
            && and_registry
        {
            discovery.method = muster_client::DiscoveryMethod::BroadcastAndRegistry;
        }
        let last_seen: BTreeMap<String, String> = seen.into_iter().flatten().collect();
        let late: BTreeSet<String> = last_seen
            .keys()
            .filter(|identity| !report.replies.iter().any(|r| &r.sender == *identity))
            .cloned()
            .collect();
        if !late.is_empty() {
            let options = RequestOptions {
                delivery: Delivery::Direct,
                ..session.request_options(late.len())
            };
            let extra = session
                .client
                .request(
                    &Call::new("rpcutil", "ping"),
                    &late,
                    &options,
                    0,
                    &mut |_| {},
                )
                .await?;
            report.merge(extra);
            report.annotate_last_seen(&last_seen);
        }
        report
    };
    crate::cmd::journal::record(
        &args,
        &Call::new("rpcutil", "ping"),
        &session.filter,
        None,
        &report,
    );
    // Answers that could not be verified are reported (exit 1); only when nothing answered
    // at all is it "no match".
    if report.stats.expected == 0 && report.ignored.is_empty() {
        if args.json {
            render::json(&report);
        } else if let Some(notice) = report.discovery.as_ref().and_then(render::broadcast_notice) {
            // Nodes that are down look just like nodes that do not match.
            eprintln!("{notice}");
        }
        return Ok(session.no_match(args.json));
    }
    if args.json {
        render::json(&report);
    } else {
        render::ping(&report, args.verbose);
    }
    session.trust_notes(&report);
    Ok(report.exit_status())
}
