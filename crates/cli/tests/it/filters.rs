//! Every filter kind (docs/design.md §2, §4) picks exactly the right nodes out of five real
//! daemons.
//!
//! One fixture (a broker and the five daemons of [`fixture::five_specs`]) serves the whole
//! table; the cases run concurrently, each as its own `muster find --json` process.

use crate::cli::{identities, missing, names, replies, run_all};
use crate::fixture::{self, FIVE, patient};

/// `(flags, the identities they must select)`. An empty set means nothing matches.
const CASES: &[(&[&str], &[&str])] = &[
    // -F: every operator; nested paths; numbers compare as numbers, other values as strings.
    (&["-F", "role=web"], &["web1", "web2"]),
    (&["-F", "role==db"], &["db1", "db2"]),
    (&["-F", "role!=web"], &["db1", "db2", "cache1"]),
    (&["-F", "role=Web"], &[]), // case-sensitive
    (&["--wf", "role=cache"], &["cache1"]),
    (&["-F", "os.family=Debian"], &["web1", "web2", "cache1"]),
    (&["-F", "os.family = RedHat"], &["db1", "db2"]), // spaces around the operator
    // As strings "16" > "8" would be false and "16" <= "4" true: these are numeric.
    (&["-F", "cpus>8"], &["web2", "db1"]),
    (&["-F", "cpus>=8"], &["web2", "db1", "db2"]),
    (&["-F", "cpus<8"], &["web1", "cache1"]),
    (&["-F", "cpus<=4"], &["web1", "cache1"]),
    (&["-F", "cpus==16"], &["web2"]),
    (&["-F", "cpus==16.0"], &["web2"]),
    // Facts that are strings but read as numbers compare numerically too ("9.3" < 10).
    (&["-F", "os.release>=10"], &["web1", "web2", "cache1"]),
    (&["-F", "os.release<9"], &["db2"]),
    // Not numbers: string order.
    (&["-F", "dc>b"], &["web2", "db2"]),
    (&["-F", "dc<=ams"], &["web1", "db1", "cache1"]),
    (&["-F", "kernel<5"], &["db2"]),
    // Regexes: bare and slashed with =~, slashed with =.
    (&["-F", r"kernel=~^6\."], &["web1", "web2", "cache1"]),
    (&["-F", r"kernel=~/el\d$/"], &["db1", "db2"]),
    (&["-F", "kernel=/generic/"], &["web2"]),
    (&["-F", "role=~^(web|cache)$"], &["web1", "web2", "cache1"]),
    // Booleans compare as true/false; arrays match when any element does (!= when none).
    (&["-F", "managed=true"], &["web1", "db1"]),
    // A boolean fact also equals Choria's boolean words (strconv.ParseBool's spellings).
    (&["-F", "managed=T"], &["web1", "db1"]),
    (&["-F", "managed==0"], &["web2", "db2", "cache1"]),
    (&["-F", "managed!=True"], &["web2", "db2", "cache1"]),
    (&["-F", "managed=yes"], &[]),
    (&["-F", "tags=public"], &["web1"]),
    (&["-F", "tags!=edge"], &["db1", "db2", "cache1"]),
    // Every -F must hold; a missing fact never matches, not even with !=.
    (&["-F", "role=web", "-F", "dc=ams"], &["web1"]),
    (&["-F", "role=web", "-F", "dc=nowhere"], &[]),
    (&["-F", "nosuch!=x"], &[]),
    // -C: all listed classes; /regex/.
    (&["-C", "nginx"], &["web1", "web2"]),
    (&["--wc", "redis"], &["cache1"]),
    (&["-C", "base", "-C", "canary"], &["web2", "db2"]),
    (&["-C", "/^post/"], &["db1", "db2"]),
    (&["-C", "/red/"], &["cache1"]),
    (
        &["-C", "/^(nginx|redis)$/", "-C", "base"],
        &["web1", "web2"],
    ),
    (&["-C", "apache"], &[]),
    // -I: any listed identity; /regex/; literals are whole names.
    (&["-I", "web1"], &["web1"]),
    (&["--wi", "web1", "-I", "db2"], &["web1", "db2"]),
    (&["-I", "/^db/"], &["db1", "db2"]),
    (&["-I", "/1$/"], &["web1", "db1", "cache1"]),
    (&["-I", "web"], &[]),
    // -A: every node has rpcutil; nobody has nosuch.
    (&["-A", "rpcutil"], &FIVE),
    (&["-A", "rpcutil", "-A", "nosuch"], &[]),
    // -W: classes and facts mixed.
    (&["-W", "nginx dc=ams"], &["web1"]),
    (&["-W", "base role=db cpus>10"], &["db1"]),
    (
        &["-W", "/^(nginx|redis)$/ os.family=Debian"],
        &["web1", "web2", "cache1"],
    ),
    (&["-W", "canary", "-W", "role=db"], &["db2"]),
    // Different kinds together: all must match.
    (&["-C", "base", "-F", "dc=fra", "-I", "/^web/"], &["web2"]),
    (&["-S", "role=web", "-F", "cpus>8"], &["web2"]),
    (
        &["-A", "rpcutil", "-C", "redis", "-I", "cache1"],
        &["cache1"],
    ),
    // -S: the compound language.
    (&["-S", "fact.role = web and not class = canary"], &["web1"]),
    (&["-S", "role=db or role=cache"], &["db1", "db2", "cache1"]),
    // and binds tighter than or; parentheses change that.
    (
        &["-S", "role=web or role=db and dc=ams"],
        &["web1", "web2", "db1"],
    ),
    (
        &["-S", "(role=web or role=db) and dc=ams"],
        &["web1", "db1"],
    ),
    // not binds tighter than and and or.
    (&["-S", "not canary and base"], &["web1", "db1"]),
    (
        &["-S", "not role=web or dc=fra"],
        &["web2", "db1", "db2", "cache1"],
    ),
    (&["-S", "not (nginx or redis)"], &["db1", "db2"]),
    (&["-S", "not not redis"], &["cache1"]),
    (
        &[
            "-S",
            "role=web and (dc=fra or cpus<=4) and not managed=false",
        ],
        &["web1"],
    ),
    // Shorthands: a bare word is a class, /re/ a class regex, PATH OP VALUE a fact.
    (&["-S", "/^post/ and cpus>=10"], &["db1"]),
    (
        &["-S", "identity = /^web/ || identity=cache1"],
        &["web1", "web2", "cache1"],
    ),
    (
        &["-S", "agent = rpcutil and fact.os.family == RedHat"],
        &["db1", "db2"],
    ),
    (&["-S", "!canary && os.family=Debian"], &["web1", "cache1"]),
    (&["-S", "identity != web1 and role = web"], &["web2"]),
    (&["-S", "class != base"], &["cache1"]),
    (&["-S", "class =~ ^re"], &["cache1"]),
    (&["-S", r"fact.kernel =~ /^6\.1\./"], &["web1", "cache1"]),
    (&["-S", "fact.dc = \"fra\""], &["web2", "db2"]),
    (&["-S", "'os.family' = RedHat and cpus > 8"], &["db1"]),
    (&["-S", "NOT canary AND role=db"], &["db1"]),
    (&["-S", "cpus > 8 and cpus < 20"], &["web2"]),
    (&["-S", "fact.cpus>=8&&(nginx||redis)"], &["web2"]),
    (&["-S", "agent = nosuch"], &[]),
    (&["-S", "role=web and role=db"], &[]),
    // Choria's forms: with() is one -W term (a fact comparison, or a class or agent name, or
    // a class /regex/), fact() compares with JSON's types, include() and in test membership.
    (&["-S", "with('nginx')"], &["web1", "web2"]),
    (
        &["-S", "with('role=db') and with('/^post/')"],
        &["db1", "db2"],
    ),
    (
        &["-S", "with('rpcutil') && with('dc=fra')"],
        &["web2", "db2"],
    ), // an agent
    (&["-S", "with('cpus=>16')"], &["web2", "db1"]),
    (
        &["-S", "fact('os.family') == 'Debian' && fact('cpus') > 2"],
        &["web1", "web2"],
    ),
    (
        &["-S", r"fact('kernel') matches('el[89]$')"],
        &["db1", "db2"],
    ),
    (
        &[
            "-S",
            "include(fact('tags'), 'edge') and not fact('managed')",
        ],
        &["web2"],
    ),
    (
        &["-S", "'canary' in classes and 'rpcutil' in agents"],
        &["web2", "db2"],
    ),
    (
        &["-S", "'public' not in fact('tags') and with('nginx')"],
        &["web2"],
    ),
    // os.release is a string: Choria cannot order it against a number, so nothing matches
    // (where -F os.release>=10 compares numerically).
    (&["-S", "fact('os.release') >= 10"], &[]),
    (&["-S", "fact('os.release') == '12'"], &["web1", "cache1"]),
    // A missing fact is nil, and nil != 'x'.
    (
        &["-S", "fact('nosuch') != 'x' and with('redis')"],
        &["cache1"],
    ),
];

/// The cases also checked through `muster ping --json`, whose report is made of the
/// discovery answers.
const PING_CASES: &[&[&str]] = &[
    &["-F", "role=web"],
    &["-F", "cpus>8"],
    &["-C", "base", "-C", "canary"],
    &["-I", "/^db/"],
    &["-W", "nginx dc=ams"],
    &["-S", "role=web or role=db and dc=ams"],
    &["-S", "(role=web or role=db) and dc=ams"],
    &["-S", "agent = nosuch"],
    &["-S", "with('role=db') and with('/^post/')"],
];

fn expected_for(flags: &[&str]) -> &'static [&'static str] {
    CASES
        .iter()
        .find(|(f, _)| *f == flags)
        .map(|(_, expected)| *expected)
        .unwrap_or_else(|| panic!("{flags:?} is not in CASES"))
}

fn command_args(flags: &[&str], expect_none: bool) -> Vec<String> {
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    args.extend(patient().map(String::from));
    // Where nothing answers, discovery waits its whole timeout; keep that short.
    if expect_none {
        args.extend(["--dt".to_string(), "1".to_string()]);
    }
    args
}

on_both_brokers! {
    fn each_filter_selects_exactly_the_right_nodes() -> Result<()> {
        let Some(fleet) = fixture::fleet(&fixture::five_specs())? else {
            return Ok(());
        };
        let mut commands = Vec::new();
        for (flags, expected) in CASES {
            let mut args = vec!["find".to_string(), "--json".to_string()];
            args.extend(command_args(flags, expected.is_empty()));
            commands.push(fleet.muster(&args));
        }
        for flags in PING_CASES {
            let expected = expected_for(flags);
            let mut args = vec!["ping".to_string(), "--json".to_string()];
            args.extend(command_args(flags, expected.is_empty()));
            commands.push(fleet.muster(&args));
        }
        let runs = run_all(24, commands);

        let mut failures = Vec::new();
        for ((flags, expected), run) in CASES.iter().zip(&runs) {
            let want = names(expected);
            let code = if want.is_empty() { 4 } else { 0 };
            let got = (run.code == Some(code)).then(|| identities(&run.json()));
            if got.as_ref() != Some(&want) {
                failures.push(format!(
                    "find {flags:?}: expected {want:?} (exit {code}), got {got:?}\n{run}"
                ));
            }
        }
        for (flags, run) in PING_CASES.iter().zip(&runs[CASES.len()..]) {
            let expected = expected_for(flags);
            let want: Vec<(String, String)> = names(expected)
                .into_iter()
                .map(|n| (n, "ok".to_string()))
                .collect();
            let code = if want.is_empty() { 4 } else { 0 };
            let report = run.json();
            let ok = run.code == Some(code)
                && replies(&report) == want
                && missing(&report).is_empty()
                && report["stats"]["expected"] == want.len()
                && report["stats"]["ok"] == want.len();
            if !ok {
                failures.push(format!(
                    "ping {flags:?}: expected replies {want:?} (exit {code})\n{run}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} filter cases failed:\n\n{}",
            failures.len(),
            runs.len(),
            failures.join("\n\n")
        );
        Ok(())
    }
}

on_both_brokers! {
    /// Without `--json`, `find` prints one identity per line, and `ping` one line per node.
    fn find_and_ping_for_people() -> Result<()> {
        let Some(fleet) = fixture::fleet(&fixture::five_specs()[..3])? else {
            return Ok(());
        };
        let mut find = vec!["find", "-C", "base"];
        find.extend(patient());
        let run = fleet.muster(&find).run();
        run.code(0);
        let mut lines: Vec<&str> = run.stdout.lines().collect();
        lines.sort();
        assert_eq!(lines, ["db1", "web1", "web2"], "{run}");

        let mut ping = vec!["ping", "-F", "role=web"];
        ping.extend(patient());
        let run = fleet.muster(&ping).run();
        run.code(0);
        for node in ["web1", "web2"] {
            assert!(
                run.stdout
                    .lines()
                    .any(|l| l.starts_with(node) && l.contains("time=")),
                "no ping line for {node}:\n{run}"
            );
        }
        assert!(!run.stdout.contains("db1"), "{run}");
        assert!(
            run.line("Finished ")
                .starts_with("Finished 2 of 2 nodes in "),
            "{run}"
        );
        assert!(run.line("Finished ").ends_with(": 2 ok"), "{run}");
        Ok(())
    }
}
