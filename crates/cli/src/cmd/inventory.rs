//! `muster inventory IDENTITY`: one node's agents, classes and facts — asked of the node, or
//! with `--from-registry` as it last registered.

use std::collections::BTreeSet;

use muster_client::journal::JournalTarget;
use muster_client::{Call, ExitStatus, Expected, Outcome, RunOptions};

use crate::args::InventoryArgs;
use crate::cmd::{Session, end_progress, print};
use crate::failure::Failure;
use crate::{output, render};

pub async fn run(args: InventoryArgs) -> Result<ExitStatus, Failure> {
    muster_proto::subject::check_identity(&args.identity).map_err(Failure::usage)?;
    let request = &args.request;
    let session = request.connect().await?;
    if args.from_registry {
        return from_registry(&args, &session).await;
    }
    // One node, named: sent to its own subject, like a node list; not journalled.
    let expected = Expected::listed(
        BTreeSet::from([args.identity.clone()]),
        muster_proto::Filter::default(),
    );
    let options = RunOptions {
        journal: JournalTarget::Off,
        ..session.options.clone()
    };
    let report = session
        .client
        .run(
            &Call::new("rpcutil", "inventory"),
            &expected,
            &options,
            &mut |_| {},
        )
        .await?
        .report;
    end_progress(request.json);
    if request.json {
        print(|out| output::write(out, &output::Report::new(&report)))?;
    } else {
        let cx = render::Context::now(request.verbose);
        print(|out| match report.replies.first() {
            Some(reply) if reply.outcome == Outcome::Ok => {
                render::inventory::inventory(out, &reply.data)
            }
            _ => render::report(out, &report, crate::args::Display::Failed, None, &cx),
        })?;
    }
    Ok(report.exit_status())
}

/// `--from-registry`: the node's latest registration. A node not seen within `--expect-seen`
/// is shown with a warning and exit 3; one the registry does not know is exit 4.
async fn from_registry(args: &InventoryArgs, session: &Session) -> Result<ExitStatus, Failure> {
    if !session.selection.filter.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "inventory names one node: leave out the filter flags"
        )));
    }
    let only = muster_proto::Filter {
        identity: vec![args.identity.clone()],
        ..Default::default()
    };
    let mut query = muster_proto::registration::RegistryQuery::new(only, None);
    query.records = true;
    let found = session.registry_view(query).await?;
    let stale = found.fresh.is_empty();
    let Some(node) = found.fresh.first().or(found.stale.first()) else {
        if args.request.json {
            // Exit 4 with --json is the answer with nothing in it (docs/design.md §3).
            let answer = output::InventoryFromRegistry::unknown(&args.identity);
            print(|out| output::write(out, &answer))?;
        } else {
            eprintln!(
                "The registry does not know {}: it has never registered, or not within the \
                 registry's retention.",
                args.identity
            );
        }
        return Ok(ExitStatus::NoMatch);
    };
    if args.request.json {
        let answer = output::InventoryFromRegistry::seen(node, stale);
        print(|out| output::write(out, &answer))?;
    } else {
        let expect_seen = session.config.expect_seen;
        print(|out| render::inventory::from_registry(out, node, stale, expect_seen))?;
    }
    Ok(if stale {
        ExitStatus::Missing
    } else {
        ExitStatus::Ok
    })
}
