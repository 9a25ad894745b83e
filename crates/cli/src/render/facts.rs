//! `muster facts`: one fact's values across the fleet.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use muster_client::run::RegistryView;

use super::width;

/// The value → nodes table of `muster facts`, most common value first; with `verbose`, the
/// nodes of each value too.
pub fn fact_summary(
    out: &mut dyn Write,
    fact: &str,
    values: &BTreeMap<String, Vec<String>>,
    verbose: bool,
) -> io::Result<()> {
    let mut rows: Vec<(&String, &Vec<String>)> = values.iter().collect();
    rows.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    writeln!(out, "Report for fact: {fact}")?;
    writeln!(out)?;
    let w = width(rows.iter().map(|(v, _)| v.chars().count()));
    for (value, nodes) in rows {
        let count = nodes.len();
        let noun = if count == 1 { "node" } else { "nodes" };
        writeln!(out, "  {value:<w$}  found {count} {noun}")?;
        if verbose {
            for chunk in nodes.chunks(6) {
                writeln!(out, "      {}", chunk.join(" "))?;
            }
        }
    }
    writeln!(out)
}

/// After the table of `facts --from-registry`: where the values came from, and the nodes left
/// out because the registry last saw them longer than `expect_seen` ago.
pub fn from_registry(
    out: &mut dyn Write,
    view: &RegistryView,
    expect_seen: Duration,
) -> io::Result<()> {
    let within = humantime::format_duration(expect_seen);
    writeln!(
        out,
        "From the registry: {} nodes as they last registered (seen within {within}).",
        view.fresh.len()
    )?;
    if !view.stale.is_empty() {
        writeln!(
            out,
            "Not seen within {within}, left out: {}",
            describe_stale(view)
        )?;
    }
    Ok(())
}

/// The stale nodes of a registry's view as `identity (last seen TIME)`.
fn describe_stale(view: &RegistryView) -> String {
    view.stale
        .iter()
        .map(|n| {
            format!(
                "{} (last seen {})",
                n.identity,
                muster_proto::time::rfc3339(n.last_seen)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::text;
    use muster_client::facts::FactSummary;
    use muster_proto::registration::SeenNode;
    use serde_json::json;

    #[test]
    fn the_summary_is_most_common_first_with_strings_that_look_alike_quoted() {
        let mut values = FactSummary::default();
        for (value, node) in [
            (json!("Debian"), "web1"),
            (json!("Debian"), "web2"),
            (json!(4), "db1"),
            (json!("4"), "db2"),
        ] {
            values.add(value, node.into());
        }
        let shown = text(|out| fact_summary(out, "os", &values.labelled(), false));
        assert_eq!(
            shown,
            "Report for fact: os\n\
             \n\
             \x20 Debian    found 2 nodes\n\
             \x20 \"4\"       found 1 node\n\
             \x20 4         found 1 node\n\
             \n"
        );
        let shown = text(|out| fact_summary(out, "os", &values.labelled(), true));
        assert!(
            shown.contains("found 2 nodes\n      web1 web2\n"),
            "{shown}"
        );
    }

    #[test]
    fn stale_nodes_are_named_with_when_they_were_seen() {
        let seen = |identity: &str, last_seen: f64| SeenNode {
            identity: identity.into(),
            first_seen: 0.0,
            last_seen,
            fact: None,
            record: None,
        };
        let view = RegistryView {
            fresh: vec![seen("web1", 1.8e9)],
            stale: vec![seen("old1", 1.7e9)],
        };
        let shown = text(|out| from_registry(out, &view, Duration::from_secs(600)));
        assert_eq!(
            shown,
            "From the registry: 1 nodes as they last registered (seen within 10m).\n\
             Not seen within 10m, left out: old1 (last seen 2023-11-14T22:13:20Z)\n"
        );
    }
}
