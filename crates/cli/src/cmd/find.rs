//! `muster find`: the identities of the matching nodes, one per line (or a JSON array that
//! `--nodes -` reads back).

use muster_client::ExitStatus;

use crate::args::RequestArgs;
use crate::cmd::print;
use crate::failure::Failure;
use crate::{output, render};

pub async fn run(args: RequestArgs) -> Result<ExitStatus, Failure> {
    let session = args.connect().await?;
    let expected = session.expected().await?;
    let discovery_ms = expected.discovery_ms;
    let nodes = expected.all();
    if args.json {
        print(|out| output::write(out, &output::Identities(&nodes)))?;
    } else {
        print(|out| render::identities(out, &nodes))?;
        if args.verbose {
            eprintln!("Found {} nodes in {discovery_ms} ms", nodes.len());
        }
    }
    crate::cmd::discovery_notes(&expected, args.json);
    if expected.nothing_answered() {
        return Ok(session.no_match(args.json));
    }
    // Answers came, and none could be verified: not "no match" (docs/design.md §3).
    if nodes.is_empty() {
        return Ok(ExitStatus::Failed);
    }
    Ok(ExitStatus::Ok)
}
