//! Flags that mean the same thing are written the same way in every subcommand.

use anyhow::Result;

use crate::cli::{muster, run_all};
use crate::fixture::{arg, dead_port, node_list};

/// Every flag that takes a duration takes the same forms: a bare number of seconds, or a
/// number with units. Against a broker that is not there, a flag that parsed gets as far as
/// connecting (exit 5); one that did not is a usage error (exit 2) naming what was given and
/// the forms that work.
#[test]
fn every_duration_flag_takes_the_same_forms() -> Result<()> {
    let url = format!("nats://127.0.0.1:{}", dead_port());
    let nodes = node_list(&["web1"])?;
    let dir = tempfile::tempdir()?;
    // (the command before the flag, the flag, what goes before the duration in its value)
    let flags: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["ping"], "-t", ""),
        (vec!["ping"], "--timeout", ""),
        (vec!["ping"], "--dt", ""),
        (vec!["ping"], "--discovery-timeout", ""),
        (vec!["ping"], "--expect-seen", ""),
        (vec!["ping", "--batch", "1"], "--batch-sleep", ""),
        (vec!["find"], "--dt", ""),
        (vec!["facts", "role"], "-t", ""),
        (vec!["inventory", "web1"], "-t", ""),
        (
            vec!["rpc", "rpcutil", "ping", "--nodes", arg(&nodes)],
            "-t",
            "",
        ),
        (vec!["rpc", "rpcutil", "ping"], "--expect-seen", ""),
        // Each registry run gets a database of its own (DB below): eight at once opening one
        // file can find it locked while another creates its tables.
        (vec!["registry", "--db", "DB"], "--retention", ""),
        (vec!["sim", "--nodes", "1"], "--slow", "5%:"),
    ];
    let good = ["10", "10s", "1m30s", "500ms", "1.5", "2h"];
    let bad = ["soon", "10x", "-1"];
    let mut commands = Vec::new();
    let mut cases = Vec::new();
    for (before, flag, prefix) in &flags {
        for (form, ok) in good
            .iter()
            .map(|g| (g, true))
            .chain(bad.iter().map(|b| (b, false)))
        {
            let value = format!("{prefix}{form}");
            let db = dir.path().join(format!("registry-{}.sqlite", cases.len()));
            let mut args: Vec<String> = before
                .iter()
                .map(|a| match *a {
                    "DB" => db.display().to_string(),
                    other => other.to_string(),
                })
                .collect();
            // `-t=-1`: written apart, clap would take `-1` for a flag of its own.
            args.push(format!("{flag}={value}"));
            commands.push(muster(&args).broker(&url));
            cases.push((flag.to_string(), value.clone(), ok));
        }
    }
    let runs = run_all(8, commands);
    for ((flag, value, ok), run) in cases.iter().zip(&runs) {
        if *ok {
            assert_eq!(run.code, Some(5), "{flag} {value} was not accepted:\n{run}");
        } else {
            run.code(2)
                .stderr_has(&format!("invalid value '{value}'"))
                .stderr_has("1m30s");
        }
    }
    Ok(())
}

/// `issuer issue --valid` takes the same forms (it runs offline, so it is run to the end).
#[test]
fn a_credentials_validity_takes_the_same_forms() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    muster(&["issuer", "init", "--dir", &path("")])
        .run()
        .code(0);
    muster(&["keygen", "--out", &path("alice.key")])
        .run()
        .code(0);
    let issue = |valid: &str, out: &str| {
        muster(&[
            "issuer",
            "issue",
            "--caller",
            "alice",
            "--pubkey",
            &path("alice.pub"),
            "--issuer-key",
            &path("issuer.key"),
            "--valid",
            valid,
            "--out",
            out,
        ])
        .run()
    };
    for (form, secs) in [("90", 90), ("90s", 90), ("1m30s", 90), ("30d", 30 * 86400)] {
        let out = path(&format!("alice-{form}.cred"));
        issue(form, &out).code(0);
        let token = std::fs::read_to_string(&out)?;
        let (credential, _, _) =
            muster_security::credential::Credential::decode_unverified(token.trim())?;
        assert_eq!(
            credential.expires - credential.issued,
            secs,
            "--valid {form}: {credential:?}"
        );
    }
    issue("a month", &path("month.cred"))
        .code(2)
        .stderr_has("--valid")
        .stderr_has("1m30s");
    // A validity past the year 9999 is refused, not a panic while printing the expiry.
    issue("100000y", &path("forever.cred"))
        .code(2)
        .stderr_has("after the year 9999");
    Ok(())
}
