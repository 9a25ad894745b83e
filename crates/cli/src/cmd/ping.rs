//! `muster ping`: who is there ([`muster_client::Client::ping`]).

use muster_client::ExitStatus;

use crate::args::RequestArgs;
use crate::cmd::{end_progress, print, progress, warn};
use crate::failure::Failure;
use crate::{output, render};

pub async fn run(args: RequestArgs) -> Result<ExitStatus, Failure> {
    let session = args.connect().await?;
    let finished = session
        .client
        .ping(
            &session.selection,
            &session.options,
            &mut progress(args.json),
        )
        .await?;
    end_progress(args.json);
    warn(&finished.warnings);
    let report = finished.report;
    // Answers that could not be verified are reported (exit 1); only when nothing answered
    // at all is it "no match".
    if report.stats.expected == 0 && report.ignored.is_empty() {
        if args.json {
            print(|out| output::write(out, &output::Report::new(&report)))?;
        } else if let Some(notice) = report.discovery.as_ref().and_then(render::broadcast_notice) {
            // Nodes that are down look just like nodes that do not match.
            eprintln!("{notice}");
        }
        return Ok(session.no_match(args.json));
    }
    if args.json {
        print(|out| output::write(out, &output::Report::new(&report)))?;
    } else {
        print(|out| render::ping(out, &report, &render::Context::now(args.verbose)))?;
    }
    session.trust_notes(&report);
    Ok(report.exit_status())
}
