//! Tables for the filter engine: fact comparisons, lists, `-F`/`-W` parsing, lookup.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// A node for tests.
#[derive(Debug, Clone)]
pub(crate) struct TestNode {
    pub identity: String,
    pub facts: Value,
    pub classes: Vec<String>,
    pub agents: Vec<String>,
}

impl NodeView for TestNode {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn facts(&self) -> &Value {
        &self.facts
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn has_agent(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == agent)
    }
}

/// The node most tables run against.
pub(crate) fn web1() -> TestNode {
    TestNode {
        identity: "web1.example.com".into(),
        facts: json!({
            "os": {"family": "Debian", "release": {"major": "12", "full": "12.4"}},
            "cpus": 4,
            "memory_mb": "16384",
            "load": 0.75,
            "kernel": "6.1.0-13-amd64",
            "role": "web",
            "virtual": false,
            "empty": "",
            "nothing": null,
            "version": "1.10",
            "roles": ["web", "cache"],
            "ports": [80, 443],
            "disks": [{"name": "sda", "size": 500}, {"name": "sdb", "size": 1000}],
            "dotted.key": "top",
            "Case": "Upper",
        }),
        classes: vec!["nginx".into(), "base".into(), "role::web".into()],
        agents: vec!["rpcutil".into(), "service".into()],
    }
}

/// Compiles `filter` and checks it against `node`, naming the case on failure.
#[track_caller]
pub(crate) fn check(filter: &Filter, node: &TestNode, expected: bool) {
    let compiled = filter
        .compile()
        .unwrap_or_else(|e| panic!("{filter:?} does not compile: {e}"));
    assert_eq!(
        compiled.matches(node),
        expected,
        "{filter:?} on {}",
        node.identity
    );
}

fn facts(text: &str) -> Filter {
    let mut filter = Filter::default();
    filter.add_with(text).unwrap();
    assert!(filter.class.is_empty(), "{text} has a class");
    filter
}

#[test]
fn fact_comparisons() {
    let node = web1();
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        // equality, strings, case-sensitive
        ("os.family=Debian", true),
        ("os.family==Debian", true),
        ("os.family=debian", false),
        ("os.family!=Debian", false),
        ("os.family!=RedHat", true),
        ("role==web", true),
        ("Case=Upper", true),
        ("case=Upper", false),
        // nested paths
        ("os.release.major=12", true),
        ("os.release.major>=12", true),
        ("os.release.full=12.4", true),
        ("os.release=12", false),
        // numbers: JSON numbers and numeric strings compare numerically
        ("cpus=4", true),
        ("cpus==4.0", true),
        ("cpus!=4", false),
        ("cpus>=4", true),
        ("cpus>4", false),
        ("cpus<5", true),
        ("cpus<=3", false),
        ("cpus<10", true), // numeric, not "10" < "4" as strings
        ("memory_mb>8192", true),
        ("memory_mb<100000", true),
        ("memory_mb=16384.0", true),
        ("load<1", true),
        ("load>0.5", true),
        ("load=0.75", true),
        ("version>1.9", false), // 1.10 < 1.9 numerically
        ("version=1.1", true),
        // strings compare as strings (byte order)
        ("kernel>6", true),   // "6.1.0-13-amd64" is not a number: "6.1…" > "6" as strings
        ("kernel<7", true),
        ("kernel>5.0", true),
        ("os.family<E", true),
        ("os.family>E", false),
        ("os.family>=Debian", true),
        ("os.family<=Debian", true),
        ("os.family<Debian", false),
        ("cpus>four", false), // "4" < "four" as strings
        ("cpus<four", true),
        // booleans stringify
        ("virtual=false", true),
        ("virtual!=true", true),
        ("virtual=true", false),
        // regexes
        ("kernel=~^6\\.", true),
        ("kernel=~/^6\\./", true),
        ("kernel=~/^5\\./", false),
        ("kernel=~amd64", true),
        ("os.family=~/deb/", false),
        ("os.family=~(?i)deb", true),
        ("cpus=~^4$", true),
        ("virtual=~fal", true),
        ("os.family=/^Deb/", true), // MCollective: = /re/ is a regex match
        // missing and null facts never match, not even !=
        ("missing=x", false),
        ("missing!=x", false),
        ("missing<5", false),
        ("missing=~.", false),
        ("nothing!=x", false),
        ("nothing=null", false),
        ("os.family.deeper=x", false),
        ("os!=x", false), // objects never compare
        // arrays: any element for ==, =~ and orderings; none equal for !=
        ("roles=web", true),
        ("roles=cache", true),
        ("roles=db", false),
        ("roles!=db", true),
        ("roles!=web", false),
        ("roles=~^ca", true),
        ("ports=443", true),
        ("ports>400", true),
        ("ports>500", false),
        // array indexes and dotted keys
        ("roles.1=cache", true),
        ("roles.2=cache", false),
        ("disks.1.size=1000", true),
        ("disks.0.name=sda", true),
        ("disks.x.name=sda", false),
        ("dotted.key=top", true),
        // empty strings
        ("empty!=x", true),
    ];
    for &(text, expected) in cases {
        check(&facts(text), &node, expected);
    }
}

/// Choria's boolean words on boolean facts. The node is go-choria's
/// `filter/facts/testdata/fact.yaml` (`tbool: true`, `fbool: false`, nested copies); the
/// expectations are those of `filter/facts/facts_test.go` ("Should match true booleans",
/// "Should match false booleans") at go-choria 58e80bab58a53d38576238baa011123d5f9eff59,
/// except where noted: Muster keeps `!=` the negation of `==`.
#[test]
fn boolean_words_compare_as_booleans() {
    let node = TestNode {
        facts: json!({
            "string": "hello world", "inumber": 1, "fnumber": 1.2,
            "tbool": true, "fbool": false,
            "nested": {"string": "nested hello world", "inumber": 2, "fnumber": 2.2,
                       "tbool": true, "fbool": false},
            "bools": [false, false],
            "tstring": "true",
        }),
        ..web1()
    };
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        // facts_test.go "Should match true booleans"
        ("tbool==true", true),
        ("tbool==T", true),
        ("tbool==1", true),
        ("tbool==t", true),
        ("tbool==false", false),
        ("tbool!=bob", true),
        ("tbool!=false", true),
        ("tbool!=T", false),
        // facts_test.go "Should match false booleans"
        ("fbool==false", true),
        ("fbool==F", true),
        ("fbool==0", true),
        ("fbool==f", true),
        ("fbool==true", false),
        ("fbool!=bob", true),
        ("fbool!=true", true),  // Choria: false (its neMatch on a false fact is falsey(value))
        ("fbool!=false", false), // Choria: true, for the same reason
        // the rest of strconv.ParseBool's words (matchers.go truthy: ParseBool, case as written)
        ("tbool=True", true),
        ("tbool=TRUE", true),
        ("fbool=False", true),
        ("fbool=FALSE", true),
        ("nested.tbool=1", true),
        ("nested.fbool=0", true),
        // not boolean words: compared as strings, as before (Choria's falsey() would match
        // fbool==bob; Muster does not widen that far)
        ("tbool=tRuE", false),
        ("tbool=yes", false),
        ("fbool==bob", false),
        ("fbool=no", false),
        // only boolean facts: a string "true" is a string, numbers are numbers
        ("tstring=true", true),
        ("tstring=T", false),
        ("inumber=1", true),
        ("inumber=T", false),
        ("inumber!=T", true),
        // arrays: any element for ==, none equal for !=
        ("bools=F", true),
        ("bools=T", false),
        ("bools!=T", true),
        ("bools!=0", false),
        // other operators compare the stringified fact, as before
        ("tbool=~^t", true),
        ("tbool=~T", false),
        ("tbool>s", true),
        // missing facts never match
        ("missing=T", false),
        ("missing!=T", false),
    ];
    for &(text, expected) in cases {
        check(&facts(text), &node, expected);
    }
    // The -S shorthand and fact. forms are the same comparison.
    for (source, expected) in [("fact.tbool = T", true), ("fbool != 0", false)] {
        let filter = Filter {
            compound: Some(source.into()),
            ..Filter::default()
        };
        check(&filter, &node, expected);
    }
}

#[test]
fn empty_string_value_compares() {
    let filter = Filter {
        fact: vec![FactFilter {
            fact: "empty".into(),
            op: FactOp::Eq,
            value: String::new(),
        }],
        ..Filter::default()
    };
    check(&filter, &web1(), true);
}

#[test]
fn identity_class_agent_lists() {
    let node = web1();
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    #[rustfmt::skip]
    // (identity, class, agent, expected)
    type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], bool);
    let cases: &[Case] = &[
        // identity: any item
        (&["web1.example.com"], &[], &[], true),
        (&["web1"], &[], &[], false),
        (&["db1", "web1.example.com"], &[], &[], true),
        (&["db1", "db2"], &[], &[], false),
        (&["/^web\\d/"], &[], &[], true),
        (&["/^db/", "/example/"], &[], &[], true),
        (&["/^db/"], &[], &[], false),
        (&["/"], &[], &[], false), // one slash is a literal
        // class: every item
        (&[], &["nginx"], &[], true),
        (&[], &["nginx", "base"], &[], true),
        (&[], &["nginx", "apache"], &[], false),
        (&[], &["/^role::/"], &[], true),
        (&[], &["/^role::/", "/^profile::/"], &[], false),
        (&[], &["Nginx"], &[], false),
        // agent: every item
        (&[], &[], &["rpcutil"], true),
        (&[], &[], &["rpcutil", "service"], true),
        (&[], &[], &["rpcutil", "package"], false),
        // all parts together
        (&["/^web/"], &["nginx"], &["service"], true),
        (&["/^web/"], &["nginx"], &["package"], false),
        (&["db1"], &["nginx"], &["service"], false),
        // nothing: matches every node
        (&[], &[], &[], true),
    ];
    for &(identity, class, agent, expected) in cases {
        let filter = Filter {
            identity: strings(identity),
            class: strings(class),
            agent: strings(agent),
            ..Filter::default()
        };
        check(&filter, &node, expected);
    }
}

#[test]
fn every_part_must_match() {
    let node = web1();
    let mut filter = Filter {
        identity: vec!["/web/".into()],
        class: vec!["nginx".into()],
        agent: vec!["service".into()],
        compound: Some("fact.cpus >= 4".into()),
        ..Filter::default()
    };
    filter.add_with("os.family=Debian base").unwrap();
    check(&filter, &node, true);
    filter.compound = Some("fact.cpus > 4".into());
    check(&filter, &node, false);
    filter.compound = Some("   ".into()); // blank: no condition
    check(&filter, &node, true);
    filter.fact.push(FactFilter::parse("role=db").unwrap());
    check(&filter, &node, false);
}

#[test]
fn large_identity_list_is_fast() {
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("node{i}.example.com"))
        .collect();
    let filter = Filter {
        identity: names,
        ..Filter::default()
    };
    let compiled = filter.compile().unwrap();
    let mut node = web1();
    let start = std::time::Instant::now();
    let mut hits = 0;
    for i in 0..20_000 {
        node.identity = format!("node{i}.example.com");
        hits += usize::from(compiled.matches(&node));
    }
    assert_eq!(hits, 10_000);
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn fact_filter_parse() {
    let ok = |text: &str, fact: &str, op: FactOp, value: &str| {
        let parsed = FactFilter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            parsed,
            FactFilter {
                fact: fact.into(),
                op,
                value: value.into()
            },
            "{text}"
        );
    };
    ok("os.family=Debian", "os.family", FactOp::Eq, "Debian");
    ok("role==web", "role", FactOp::Eq, "web");
    ok("x!=y", "x", FactOp::Ne, "y");
    ok("mem<100", "mem", FactOp::Lt, "100");
    ok("mem>100", "mem", FactOp::Gt, "100");
    ok("cpus>=4", "cpus", FactOp::Ge, "4");
    ok("cpus<=4", "cpus", FactOp::Le, "4");
    ok("kernel=~/^6\\./", "kernel", FactOp::Match, "/^6\\./");
    ok("kernel=~^6", "kernel", FactOp::Match, "^6");
    ok("os=/deb/", "os", FactOp::Match, "/deb/");
    ok("os==/deb/", "os", FactOp::Match, "/deb/");
    ok(" os.family = Debian ", "os.family", FactOp::Eq, "Debian");
    ok("a=b=c", "a", FactOp::Eq, "b=c");
    ok("a===c", "a", FactOp::Eq, "=c");
    ok("a<>b", "a", FactOp::Lt, ">b");
    ok("a!b=c", "a!b", FactOp::Eq, "c");
    ok("path=/", "path", FactOp::Eq, "/");
    ok("name=with space", "name", FactOp::Eq, "with space");
}

#[test]
fn fact_filter_parse_errors() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("osfamily", "invalid fact filter 'osfamily': no operator"),
        ("", "invalid fact filter '': no operator"),
        ("=Debian", "invalid fact filter '=Debian': the fact name is empty"),
        ("  >= 4", "the fact name is empty"),
        ("os.family=", "invalid fact filter 'os.family=': the value is empty"),
        ("os.family=~  ", "the value is empty"),
        ("a!b", "no operator"),
    ];
    for &(text, expected) in cases {
        let err = FactFilter::parse(text).unwrap_err();
        assert_eq!(err.kind, FilterErrorKind::FactSyntax);
        let message = err.to_string();
        assert!(message.contains(expected), "{text}: {message}");
        assert!(
            message.contains("expected FACT OPERATOR VALUE"),
            "{message}"
        );
        assert!(!message.ends_with('.'), "{message}");
    }
}

#[test]
fn add_with_splits_facts_and_classes() {
    let mut filter = Filter::default();
    filter
        .add_with("nginx  os.family=Debian\t/^role::/ cpus>=4 base")
        .unwrap();
    assert_eq!(filter.class, ["nginx", "/^role::/", "base"]);
    assert_eq!(
        filter.fact,
        [
            FactFilter::parse("os.family=Debian").unwrap(),
            FactFilter::parse("cpus>=4").unwrap()
        ]
    );
    check(&filter, &web1(), true);
    // a token written /re/ is a class regex even when it contains an operator
    filter = Filter::default();
    filter.add_with("/a=b/").unwrap();
    assert_eq!(filter.class, ["/a=b/"]);
    // errors add nothing
    filter = Filter::default();
    assert!(filter.add_with("nginx =x").is_err());
    assert!(filter.is_empty());
    filter.add_with("   ").unwrap();
    assert!(filter.is_empty());
}

#[test]
fn bad_regexes_are_errors_naming_the_pattern() {
    let cases = [
        Filter {
            identity: vec!["/(/".into()],
            ..Filter::default()
        },
        Filter {
            class: vec!["/[z-a]/".into()],
            ..Filter::default()
        },
        Filter {
            fact: vec![FactFilter::parse("kernel=~(").unwrap()],
            ..Filter::default()
        },
        Filter {
            compound: Some("fact.kernel =~ /(/".into()),
            ..Filter::default()
        },
        Filter {
            compound: Some("identity = /a{99999}{99999}/".into()),
            ..Filter::default()
        },
    ];
    for filter in cases {
        let err = filter.compile().unwrap_err();
        assert_eq!(err.kind, FilterErrorKind::Regex, "{filter:?}");
        let message = err.to_string();
        assert!(message.starts_with("invalid regex /"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
    let huge = Filter {
        identity: vec![format!("/{}/", "\\w{100}".repeat(100))],
        ..Filter::default()
    };
    let err = huge.compile().unwrap_err();
    assert!(err.message.contains("too large"), "{}", err.message);
}

#[test]
fn escaped_slash_in_regex_value() {
    let node = TestNode {
        facts: json!({"path": "/var/log"}),
        ..web1()
    };
    check(&facts("path=~/^\\/var\\//"), &node, true);
    check(&facts("path=~^/var/"), &node, true);
}

#[test]
fn compound_errors_carry_position() {
    let filter = Filter {
        compound: Some("fact.role = ".into()),
        ..Filter::default()
    };
    let err = filter.compile().unwrap_err();
    assert_eq!(err.kind, FilterErrorKind::Compound);
    assert_eq!(err.position, Some(12));
    assert_eq!(err.to_string(), "expected a value after '=' at position 12");
    assert_eq!(
        err.render("fact.role = ").as_deref(),
        Some("fact.role = \n            ^")
    );
}

#[test]
fn lookup_paths() {
    let facts = web1().facts;
    #[rustfmt::skip]
    let cases: &[(&str, Option<Value>)] = &[
        ("role", Some(json!("web"))),
        ("os.family", Some(json!("Debian"))),
        ("os.release.major", Some(json!("12"))),
        ("dotted.key", Some(json!("top"))),
        ("roles.0", Some(json!("web"))),
        ("disks.1.name", Some(json!("sdb"))),
        ("disks.-1.name", None),
        ("disks.01.name", Some(json!("sdb"))),
        ("missing", None),
        ("os.missing", None),
        ("os.family.x", None),
        ("", None),
        (".", None),
        ("os.", None),
    ];
    for (path, expected) in cases {
        assert_eq!(lookup(&facts, path), expected.as_ref(), "{path}");
    }
    let nested_dots = json!({"a": {"b.c": 1}, "x.y": {"z": 2}});
    assert_eq!(lookup(&nested_dots, "a.b.c"), Some(&json!(1)));
    assert_eq!(lookup(&nested_dots, "x.y.z"), Some(&json!(2)));
    assert_eq!(lookup(&nested_dots, "a.b"), None);
    let hostile = "x.".repeat(100_000);
    assert_eq!(lookup(&facts, &hostile), None);
    assert_eq!(lookup(&json!("scalar"), "a"), None);
}

#[test]
fn serde_wire_form() {
    let filter: Filter = serde_json::from_value(json!({
        "identity": ["web1", "/^db\\d+/"],
        "fact": [{"fact": "os.family", "op": "=", "value": "Debian"},
                 {"fact": "cpus", "op": ">=", "value": "4"}],
        "class": ["nginx"],
        "agent": ["service"],
        "compound": "fact.role = web and not class = canary"
    }))
    .unwrap();
    assert_eq!(filter.fact[0].op, FactOp::Eq);
    let back = serde_json::to_value(&filter).unwrap();
    assert_eq!(back["fact"][0]["op"], "==");
    assert!(filter.compile().is_ok());
    assert_eq!(serde_json::to_value(Filter::default()).unwrap(), json!({}));
}

#[test]
fn compiled_filter_is_shareable() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<CompiledFilter>();
    assert_traits::<compound::CompiledExpr>();
}

fn fact_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,8}(\\.[a-z0-9_]{1,6}){0,3}"
}

fn fact_op() -> impl Strategy<Value = FactOp> {
    prop::sample::select(FactOp::ALL.iter().map(|&(_, op)| op).collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn fact_filter_print_parse_round_trip(
        fact in fact_name(),
        op in fact_op(),
        value in "[^=<>!/\\s][^\\s]{0,10}( [^\\s]{1,5})?",
    ) {
        let filter = FactFilter { fact, op, value };
        let printed = filter.to_string();
        prop_assert_eq!(FactFilter::parse(&printed), Ok(filter), "{}", printed);
    }

    #[test]
    fn fact_filter_parse_never_panics(text in "\\PC{0,40}") {
        if let Ok(filter) = FactFilter::parse(&text) {
            let _ = Filter { fact: vec![filter], ..Filter::default() }.compile();
        }
    }

    #[test]
    fn add_with_never_panics(text in "[ a-z.=<>!~/0-9]{0,40}") {
        let mut filter = Filter::default();
        if filter.add_with(&text).is_ok() {
            let _ = filter.compile().map(|c| c.matches(&web1()));
        }
    }

    #[test]
    fn numeric_comparisons_agree_with_f64(a in -1000i64..1000, b in -1000i64..1000, op in fact_op()) {
        prop_assume!(op != FactOp::Match);
        let node = TestNode { facts: json!({"n": a, "s": a.to_string()}), ..web1() };
        let expected = match op {
            FactOp::Eq => a == b,
            FactOp::Ne => a != b,
            FactOp::Lt => a < b,
            FactOp::Gt => a > b,
            FactOp::Le => a <= b,
            FactOp::Ge => a >= b,
            FactOp::Match => unreachable!(),
        };
        for fact in ["n", "s"] {
            let filter = Filter {
                fact: vec![FactFilter { fact: fact.into(), op, value: b.to_string() }],
                ..Filter::default()
            };
            prop_assert_eq!(filter.compile().unwrap().matches(&node), expected);
        }
    }
}
