//! `muster demo`: the tour's commands and what they printed.

use std::io::{self, Write};
use std::time::Duration;

/// What the tour runs on.
pub fn intro(
    out: &mut dyn Write,
    url: &str,
    identity: &str,
    nodes: usize,
    silent: usize,
    failing: usize,
) -> io::Result<()> {
    writeln!(
        out,
        "Muster demo: an embedded broker at {url}, this machine ({identity}) as a real node, and \
         {nodes} simulated nodes ({silent} silent, {failing} failing)."
    )?;
    writeln!(
        out,
        "Requests here are unsigned: the broker listens on loopback only and lives as long as the demo.\n"
    )
}

/// One step, before it runs: what it shows, and the command (`args` after `muster`, quoted
/// for a shell so it can be run again by hand). Flushed, so it is seen while the step runs.
pub fn step(out: &mut dyn Write, story: &str, args: &[String]) -> io::Result<()> {
    let shown: Vec<String> = std::iter::once("muster".to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect();
    writeln!(out, "# {story}")?;
    writeln!(out, "$ {}", shown.join(" "))?;
    out.flush()
}

/// One step, after it ran: what it printed (at most `max_lines` lines and the last three) and
/// its exit code.
pub fn step_output(
    out: &mut dyn Write,
    printed: &str,
    max_lines: usize,
    code: i32,
) -> io::Result<()> {
    write!(out, "{}", abbreviate(printed, max_lines, 3))?;
    writeln!(out, "(exit {code})\n")?;
    out.flush()
}

/// `--keep`: how to try commands against the running demo.
pub fn keep(out: &mut dyn Write, url: &str, journal: &str, fleet_file: &str) -> io::Result<()> {
    writeln!(
        out,
        "The demo keeps running. Try your own commands against it:"
    )?;
    writeln!(out, "  export MUSTER_BROKER={url} MUSTER_JOURNAL={journal}")?;
    writeln!(out, "  muster ping --nodes {fleet_file}")?;
    writeln!(out, "  muster history; muster retry ID --missing")?;
    writeln!(out, "Ctrl-C stops it.")
}

/// The tour's end.
pub fn finished(out: &mut dyn Write, took: Duration) -> io::Result<()> {
    writeln!(
        out,
        "Tour finished in {:.1} s. Run `muster demo --keep` to keep the fleet up and try commands by hand.",
        took.as_secs_f64()
    )
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Keeps the head of a long output and its last `tail` lines.
fn abbreviate(text: &str, max_lines: usize, tail: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max_lines + tail {
        return text.to_string();
    }
    let hidden = lines.len() - max_lines - tail;
    let mut out: Vec<String> = lines[..max_lines].iter().map(|l| l.to_string()).collect();
    out.push(format!("    … {hidden} more lines …"));
    out.extend(lines[lines.len() - tail..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::text;

    #[test]
    fn quoting_and_abbreviation() {
        assert_eq!(shell_quote("role=db"), "role=db");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let text: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let short = abbreviate(&text, 3, 2);
        assert_eq!(short, "1\n2\n3\n    … 15 more lines …\n19\n20\n");
        assert_eq!(abbreviate("a\nb\n", 3, 2), "a\nb\n");
    }

    #[test]
    fn a_step_shows_the_command_to_run_again() {
        let args = [
            "find".to_string(),
            "-S".to_string(),
            "role=web and dc=ams1".to_string(),
        ];
        let shown = text(|out| {
            step(out, "Pick machines.", &args)?;
            step_output(out, "web1\n", 6, 0)
        });
        assert_eq!(
            shown,
            "# Pick machines.\n$ muster find -S 'role=web and dc=ams1'\nweb1\n(exit 0)\n\n"
        );
    }
}
