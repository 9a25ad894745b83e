//! `muster inventory IDENTITY`: one node's agents, classes and facts.

use std::collections::BTreeSet;

use muster_client::{Call, ExitStatus, Outcome, RequestOptions};

use crate::Failure;
use crate::args::InventoryArgs;
use crate::cmd::end_progress;
use crate::render;

pub async fn run(args: InventoryArgs) -> Result<ExitStatus, Failure> {
    muster_proto::subject::check_identity(&args.identity).map_err(Failure::usage)?;
    let request = &args.request;
    let session = request.connect().await?;
    let nodes = BTreeSet::from([args.identity.clone()]);
    let options = RequestOptions {
        delivery: muster_client::Delivery::Direct,
        ..session.request_options(nodes.len())
    };
    let report = session
        .client
        .request(
            &Call::new("rpcutil", "inventory"),
            &nodes,
            &options,
            0,
            &mut |_| {},
        )
        .await?;
    end_progress(request.json);
    if request.json {
        render::json(&report);
    } else {
        match report.replies.first() {
            Some(reply) if reply.outcome == Outcome::Ok => render::inventory(&reply.data),
            _ => render::report(&report, crate::args::Display::Failed, None, request.verbose),
        }
    }
    Ok(report.exit_status())
}
