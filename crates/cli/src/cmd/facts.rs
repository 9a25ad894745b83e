//! `muster facts FACT`: one fact summarised across the fleet, value → count — asked of the
//! nodes, or with `--from-registry` as they last registered.

use muster_client::facts::FactSummary;
use muster_client::{Call, ExitStatus, Outcome};
use muster_proto::registration::RegistryQuery;
use serde_json::json;

use crate::args::FactsArgs;
use crate::cmd::{Session, discovery_notes, end_progress, no_match, print, progress, warn};
use crate::failure::Failure;
use crate::{output, render};

/// `--from-registry`: the values the nodes last registered, without asking them. Nodes not
/// seen within `--expect-seen` are named, their values left out, and the exit code is 3.
async fn from_registry(args: &FactsArgs, session: &Session) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    let mut query = RegistryQuery::new(session.selection.filter.clone(), None);
    query.fact = Some(args.fact.clone());
    let found = session.registry_view(query).await?;
    if found.fresh.is_empty() && found.stale.is_empty() {
        if request.json {
            // Exit 4 with --json is the answer with zero nodes (docs/design.md §3).
            let summary = FactSummary::default().to_json(&args.fact);
            let answer = output::FactsFromRegistry::new(&found, summary);
            print(|out| output::write(out, &answer))?;
        }
        return Ok(no_match(request.json));
    }
    let values = FactSummary::of_registry(&found.fresh);
    if request.json {
        let answer = output::FactsFromRegistry::new(&found, values.to_json(&args.fact));
        print(|out| output::write(out, &answer))?;
    } else {
        let expect_seen = session.config.expect_seen;
        print(|out| {
            render::facts::fact_summary(out, &args.fact, &values.labelled(), request.verbose)?;
            render::facts::from_registry(out, &found, expect_seen)
        })?;
    }
    Ok(if found.stale.is_empty() {
        ExitStatus::Ok
    } else {
        ExitStatus::Missing
    })
}

pub async fn run(args: FactsArgs) -> Result<ExitStatus, Failure> {
    let request = &args.request;
    let session = request.connect().await?;
    if args.from_registry {
        return from_registry(&args, &session).await;
    }
    let call = Call {
        data: json!({ "fact": args.fact }),
        ..Call::new("rpcutil", "get_fact")
    };
    let expected = session.expected().await?;
    // Only when nothing answered at all is it "no match"; when every answer was ignored as
    // unverifiable the report, over no nodes, says so (exit 1).
    if expected.nothing_answered() {
        discovery_notes(&expected, request.json);
        if request.json {
            // Exit 4 with --json is the report with zero nodes (docs/design.md §3).
            let report = expected.empty_report(&call);
            let summary = FactSummary::default().to_json(&args.fact);
            print(|out| output::write(out, &output::Facts::new(&report, summary)))?;
        }
        return Ok(session.no_match(request.json));
    }
    let finished = session
        .client
        .run(
            &call,
            &expected,
            &session.options,
            &mut progress(request.json),
        )
        .await?;
    end_progress(request.json);
    warn(&finished.warnings);
    let mut report = finished.report;
    let values = FactSummary::of_report(&report);
    if request.json {
        let summary = values.to_json(&args.fact);
        print(|out| output::write(out, &output::Facts::new(&report, summary)))?;
    } else {
        let cx = render::Context::now(request.verbose);
        let labelled = values.labelled();
        // The per-node replies are summarised above; show only failures below.
        report.replies.retain(|r| r.outcome != Outcome::Ok);
        print(|out| {
            render::facts::fact_summary(out, &args.fact, &labelled, request.verbose)?;
            render::report(out, &report, crate::args::Display::Failed, None, &cx)
        })?;
    }
    session.trust_notes(&report);
    Ok(report.exit_status())
}
