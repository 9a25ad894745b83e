//! Tables for the compound language: parsing, evaluation, errors, round trips.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::filter::tests::{TestNode, web1};

/// Parses and compiles `source` and checks it against `node`.
#[track_caller]
fn check(source: &str, node: &TestNode, expected: bool) {
    let expr = parse(source).unwrap_or_else(|e| panic!("{source}: {e}\n{}", e.render(source)));
    let compiled = expr
        .compile()
        .unwrap_or_else(|e| panic!("{source} does not compile: {e}"));
    assert_eq!(
        compiled.matches(node),
        expected,
        "{source} parsed as {expr:?}"
    );
}

#[test]
fn evaluation() {
    let node = web1();
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        // atoms
        ("fact.os.family = Debian", true),
        ("fact.os.family == Debian", true),
        ("fact.os.family=Debian", true),
        ("fact.os.family != Debian", false),
        ("fact.cpus >= 4", true),
        ("fact.cpus>=4", true),
        ("fact.cpus > 4", false),
        ("fact.cpus < 10", true),
        ("fact.cpus <= 3", false),
        ("fact.memory_mb > 8192", true),
        ("fact.kernel =~ /^6\\./", true),
        ("fact.kernel =~ ^6", true),
        ("fact.kernel =~ \"^5\"", false),
        ("fact.kernel = /amd64$/", true),
        ("fact.missing != x", false),
        ("fact.roles = cache", true),
        ("fact.disks.1.size = 1000", true),
        ("fact.virtual = false", true),
        ("class = nginx", true),
        ("class = apache", false),
        ("class = /^role::/", true),
        ("class =~ ^role", true),
        ("class != apache", true),
        ("identity = web1.example.com", true),
        ("identity = web1", false),
        ("identity = /^web\\d/", true),
        ("identity =~ example", true),
        ("identity != web1.example.com", false),
        ("agent = service", true),
        ("agent = package", false),
        ("agent != package", true),
        // shorthands
        ("nginx", true),
        ("apache", false),
        ("role::web", true),
        ("/^ngi/", true),
        ("'nginx'", true),
        ("os.family = Debian", true),
        ("cpus>=4", true),
        ("role=web", true),
        ("\"dotted.key\" = top", true),
        // keywords are case-insensitive
        ("FACT.cpus = 4", true),
        ("Class = nginx", true),
        ("nginx AND NOT apache", true),
        ("apache Or nginx", true),
        // connectives and precedence
        ("nginx and base", true),
        ("nginx and apache", false),
        ("nginx or apache", true),
        ("apache or nginx", true),
        ("apache or db", false),
        ("not apache", true),
        ("not nginx", false),
        ("! nginx", false),
        ("!nginx", false),
        ("!!nginx", true),
        ("not not nginx", true),
        ("nginx && base", true),
        ("apache || base", true),
        ("nginx&&base", true),
        ("apache or nginx and base", true),     // or(apache, and(nginx, base))
        ("apache or nginx and db", false),      // or(apache, and(nginx, db))
        ("(apache or nginx) and db", false),
        ("nginx or apache and db", true),       // or(nginx, and(apache, db))
        ("(nginx or apache) and db", false),
        ("not apache and nginx", true),         // and(not apache, nginx)
        ("not (apache or nginx)", false),
        ("not apache or db", true),
        ("not(nginx)", false),
        ("((nginx))", true),
        ("fact.role = web and not class = canary", true),
        ("(fact.cpus >= 4 or fact.memory_mb > 32000) and agent = service", true),
        ("fact.os.family=Debian and(class=nginx or class=apache)", true),
        // values with operator characters and quotes
        ("fact.kernel = 6.1.0-13-amd64", true),
        ("fact.empty = \"\"", true),
        ("fact.empty = ''", true),
        ("fact.role = 'web'", true),
        ("fact.role = \"w\\eb\"", true),
    ];
    for &(source, expected) in cases {
        check(source, &node, expected);
    }
}

#[test]
fn values_with_special_characters() {
    let node = TestNode {
        facts: json!({
            "path": "/var/log",
            "msg": "say \"hi\"\n",
            "eq": "a=b",
            "sp": "two words",
            "amp": "a&&b",
        }),
        ..web1()
    };
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        ("fact.path = \"/var/log\"", true),
        ("fact.path =~ /^\\/var\\/log$/", true),
        ("fact.path =~ \"^/var\"", true),
        ("fact.msg = \"say \\\"hi\\\"\\n\"", true),
        ("fact.msg = 'say \"hi\"\\n'", true),
        ("fact.eq = a=b", true),
        ("fact.eq==a=b", true),
        ("fact.sp = \"two words\"", true),
        ("fact.sp = two", false),
        ("fact.amp = \"a&&b\"", true),
        ("fact.amp = a&&b", false), // `&&` ends a bare value: fact.amp = a && class b
    ];
    for &(source, expected) in cases {
        check(source, &node, expected);
    }
}

fn lit(name: &str) -> Pattern {
    Pattern::Literal(name.into())
}

fn class(name: &str) -> Expr {
    Expr::Class(lit(name))
}

fn fact(path: &str, op: FactOp, value: &str) -> Expr {
    Expr::Fact {
        path: path.into(),
        op,
        value: value.into(),
    }
}

fn not(expr: Expr) -> Expr {
    Expr::Not(Box::new(expr))
}

#[test]
fn parse_trees() {
    use Expr::{And, Or};
    #[rustfmt::skip]
    let cases: Vec<(&str, Expr)> = vec![
        ("a", class("a")),
        ("a or b and c", Or(vec![class("a"), And(vec![class("b"), class("c")])])),
        ("a and b or c", Or(vec![And(vec![class("a"), class("b")]), class("c")])),
        ("a and b and c", And(vec![class("a"), class("b"), class("c")])),
        ("a or b or c", Or(vec![class("a"), class("b"), class("c")])),
        ("(a or b) and c", And(vec![Or(vec![class("a"), class("b")]), class("c")])),
        ("a and (b and c)", And(vec![class("a"), And(vec![class("b"), class("c")])])),
        ("not a and b", And(vec![not(class("a")), class("b")])),
        ("not (a and b)", not(And(vec![class("a"), class("b")]))),
        ("!a || !b", Or(vec![not(class("a")), not(class("b"))])),
        ("fact.x.y<=3", fact("x.y", FactOp::Le, "3")),
        ("x.y <= 3", fact("x.y", FactOp::Le, "3")),
        ("fact.x =~ /a\\/b\\d/", fact("x", FactOp::Match, "a/b\\d")),
        ("fact.x = /re/", fact("x", FactOp::Match, "re")),
        ("fact.x =~ re", fact("x", FactOp::Match, "re")),
        ("fact.x = \"/re/\"", fact("x", FactOp::Eq, "/re/")),
        ("fact.fact = 1", fact("fact", FactOp::Eq, "1")),
        ("fact = 1", fact("fact", FactOp::Eq, "1")),
        ("fact.class = 1", fact("class", FactOp::Eq, "1")),
        ("\"my fact\" != 'x y'", fact("my fact", FactOp::Ne, "x y")),
        ("fact.x = 'and'", fact("x", FactOp::Eq, "and")),
        ("fact.x = not", fact("x", FactOp::Eq, "not")),
        ("fact.x = android", fact("x", FactOp::Eq, "android")),
        ("class = /^a/", Expr::Class(Pattern::Regex("^a".into()))),
        ("class = \"/^a/\"", class("/^a/")),
        ("class =~ '^a'", Expr::Class(Pattern::Regex("^a".into()))),
        ("class != a", not(class("a"))),
        ("\"and\"", class("and")),
        ("identity = db1", Expr::Identity(lit("db1"))),
        ("identity != db1", not(Expr::Identity(lit("db1")))),
        ("agent = puppet", Expr::Agent("puppet".into())),
        ("class=a&&class=b", And(vec![class("a"), class("b")])),
        ("  \ta\n", class("a")),
        ("a&b", class("a&b")),
        ("a|b", class("a|b")),
    ];
    for (source, expected) in cases {
        assert_eq!(parse(source), Ok(expected), "{source}");
    }
}

#[test]
fn parse_errors() {
    use ParseErrorKind::*;
    #[rustfmt::skip]
    let cases: &[(&str, ParseErrorKind, usize, &str)] = &[
        ("", Empty, 0, "empty expression"),
        ("   ", Empty, 3, "empty expression"),
        ("fact.role = ", Missing, 12, "expected a value after '=' at position 12"),
        ("fact.role =", Missing, 11, "expected a value after '=' at position 11"),
        ("fact.cpus >= )", Missing, 13, "expected a value after '>=', found ')' at position 13"),
        ("(fact.cpus >=)", Missing, 13, "expected a value after '>=', found ')' at position 13"),
        ("fact.x = && y", Missing, 9, "expected a value after '=', found '&&' at position 9"),
        ("fact.role = and class = web", Missing, 12,
         "expected a value after '=', found 'and' at position 12"),
        ("fact.role = OR x", Missing, 12, "expected a value after '=', found 'OR' at position 12"),
        ("or a", Unexpected, 0,
         "unexpected 'or' (expected a class, a fact comparison, 'not' or '(') at position 0"),
        ("= a", Unexpected, 0,
         "unexpected '=' (expected a class, a fact comparison, 'not' or '(') at position 0"),
        ("a and or b", Missing, 6, "expected a term after 'and', found 'or' at position 6"),
        ("a and", Missing, 5, "expected a term after 'and' at position 5"),
        ("a OR", Missing, 4, "expected a term after 'OR' at position 4"),
        ("a ||", Missing, 4, "expected a term after '||' at position 4"),
        ("not", Missing, 3, "expected a term after 'not' at position 3"),
        ("!", Missing, 1, "expected a term after '!' at position 1"),
        ("a b", Unexpected, 2,
         "unexpected 'b' (expected 'and', 'or' or the end of the expression) at position 2"),
        ("(a b)", Unexpected, 3, "unexpected 'b' (expected 'and', 'or' or ')') at position 3"),
        ("a = b c", Unexpected, 6,
         "unexpected 'c' (expected 'and', 'or' or the end of the expression) at position 6"),
        ("(a", Unbalanced, 0, "unbalanced parenthesis: this '(' is never closed at position 0"),
        ("x and ((a) or b", Unbalanced, 6,
         "unbalanced parenthesis: this '(' is never closed at position 6"),
        ("a)", Unbalanced, 1, "unbalanced parenthesis: ')' without a matching '(' at position 1"),
        (")", Unbalanced, 0, "unbalanced parenthesis: ')' without a matching '(' at position 0"),
        ("()", Missing, 1, "empty parentheses at position 1"),
        ("a and ()", Missing, 7, "empty parentheses at position 7"),
        ("\"abc", Unterminated, 0, "unterminated string: no closing \" at position 0"),
        ("fact.x = 'abc", Unterminated, 9, "unterminated string: no closing ' at position 9"),
        ("fact.x = \"ab\\\"", Unterminated, 9, "unterminated string: no closing \" at position 9"),
        ("/abc", Unterminated, 0, "unterminated /regex/: no closing / at position 0"),
        ("fact.x =~ /a\\/", Unterminated, 10, "unterminated /regex/: no closing / at position 10"),
        ("fact.path = /var/log", Invalid, 17,
         "expected a space, ')' or the end after a /regex/ (quote a value that starts with '/', \
          e.g. \"/var/log\"), found 'log' at position 17"),
        ("fact. = 3", Missing, 5, "expected a fact name after 'fact.' at position 5"),
        ("fact.cpus", Missing, 9, "expected an operator after 'fact.cpus' at position 9"),
        ("fact.cpus and a", Missing, 10,
         "expected an operator after 'fact.cpus', found 'and' at position 10"),
        ("class", Missing, 5, "expected '=' after 'class' at position 5"),
        ("identity web1", Missing, 9, "expected '=' after 'identity', found 'web1' at position 9"),
        ("class < a", Invalid, 6, "'class' takes '=', '!=' or '=~', not '<' at position 6"),
        ("agent =~ a", Invalid, 6, "'agent' takes '=' or '!=', not '=~' at position 6"),
        ("agent = /a/", Invalid, 8, "'agent' takes a name, not a /regex/ at position 8"),
        ("fact.x < /3/", Invalid, 7, "a /regex/ value goes with '=~' or '=', not '<' at position 7"),
        ("'' = 3", Missing, 0, "expected a fact name, found an empty string at position 0"),
        ("a and !=", Missing, 6, "expected a term after 'and', found '!=' at position 6"),
    ];
    for &(source, kind, position, message) in cases {
        let err = parse(source).expect_err(source);
        assert_eq!(
            (err.kind, err.position, err.to_string().as_str()),
            (kind, position, message),
            "{source}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let err = parse(&deep).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::TooDeep);
    assert_eq!(err.position, MAX_DEPTH);
    assert_eq!(
        err.to_string(),
        "expression nested too deeply (more than 64 levels of parentheses and 'not') at position 64"
    );
    let nots = format!("{}a", "not ".repeat(MAX_DEPTH + 1));
    assert_eq!(parse(&nots).unwrap_err().kind, ParseErrorKind::TooDeep);
    let bangs = format!("{}a", "!".repeat(100_000));
    assert_eq!(parse(&bangs).unwrap_err().kind, ParseErrorKind::TooDeep);
    let parens = "(".repeat(1_000_000);
    assert_eq!(parse(&parens).unwrap_err().kind, ParseErrorKind::TooDeep);
    // long flat chains are not nesting
    let chain = vec!["a"; 50_000].join(" and ");
    assert!(matches!(parse(&chain), Ok(Expr::And(items)) if items.len() == 50_000));
}

#[test]
fn render_draws_a_caret() {
    let source = "fact.role = and class = web";
    let err = parse(source).unwrap_err();
    assert_eq!(
        err.render(source),
        "fact.role = and class = web\n            ^"
    );
    let source = "\"é\tx\" = ";
    let err = parse(source).unwrap_err();
    assert_eq!(err.position, source.len());
    assert_eq!(err.render(source), "\"é x\" = \n        ^");
    // positions past the end or inside a character are clamped
    let err = ParseError::new(ParseErrorKind::Missing, 99, "x");
    assert_eq!(err.render("ab"), "ab\n  ^");
    let err = ParseError::new(ParseErrorKind::Missing, 1, "x");
    assert_eq!(err.render("é"), "é\n^");
}

#[test]
fn display_is_explicit_and_parses_back() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("nginx", "class = nginx"),
        ("/^a\\/b/", "class = /^a\\/b/"),
        ("cpus>=4", "fact.cpus >= 4"),
        ("os.family=Debian", "fact.os.family == Debian"),
        ("a or b and c", "class = a or class = b and class = c"),
        ("(a or b) and c", "(class = a or class = b) and class = c"),
        ("a and (b and c)", "class = a and (class = b and class = c)"),
        ("not (a or b)", "not (class = a or class = b)"),
        ("!!a", "not not class = a"),
        ("fact.x = \"two words\"", "fact.x == \"two words\""),
        ("fact.x = '/re/'", "fact.x == \"/re/\""),
        ("fact.x = 'Or'", "fact.x == \"Or\""),
        ("fact.x =~ 'a\\\\/'", "fact.x =~ \"a\\\\/\""),
        ("\"my fact\" < 3", "\"my fact\" < 3"),
        ("identity =~ web", "identity = /web/"),
        ("agent != x", "not agent = x"),
    ];
    for &(source, printed) in cases {
        let expr = parse(source).unwrap();
        assert_eq!(expr.to_string(), printed, "{source}");
        assert_eq!(parse(printed), Ok(expr), "{printed}");
    }
}

/// Random names, including characters the printer has to quote or escape.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_:.-]{0,8}",
        1 => "\\PC{0,8}",
        1 => prop::sample::select(vec![
            "and", "or", "not", "class", "fact", "AND", "a b", "a&&b", "\"", "'", "\\", "/x/",
            "(", ")", "=", "!", "é", "a\nb", "",
        ])
        .prop_map(String::from),
    ]
}

fn fact_path() -> impl Strategy<Value = String> {
    name().prop_filter("fact paths are not empty", |path| !path.is_empty())
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        name().prop_map(Pattern::Literal),
        name().prop_map(Pattern::Regex)
    ]
}

/// Dotted paths `fact('…')` takes, including characters the printer quotes or escapes.
fn choria_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_]{0,6}(\\.[a-z0-9_]{1,4}){0,2}",
        1 => prop::sample::select(vec!["a b", "é", "'", "\"", "a\nb", "and", "in", "classes"])
            .prop_map(String::from),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        name().prop_map(Literal::String),
        prop::sample::select(vec!["0", "4", "-1.5", "2e3", "1E-2", "10.25"])
            .prop_map(|n| Literal::Number(n.into())),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Nil),
    ]
}

fn choria_atom() -> impl Strategy<Value = Expr> {
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Gt,
        CompareOp::Le,
        CompareOp::Ge,
    ]);
    let form = prop::sample::select(vec![ContainsForm::Include, ContainsForm::In]);
    prop_oneof![
        (choria_path(), op, literal()).prop_map(|(path, op, value)| Expr::Compare {
            path,
            op,
            value
        }),
        (choria_path(), name()).prop_map(|(path, pattern)| Expr::Matches { path, pattern }),
        choria_path().prop_map(Expr::Truthy),
        (choria_path(), literal(), form).prop_map(|(path, value, form)| Expr::Contains {
            path,
            value,
            form
        }),
    ]
}

fn atom() -> impl Strategy<Value = Expr> {
    prop_oneof![
        choria_atom(),
        (
            fact_path(),
            prop::sample::select(FactOp::ALL.iter().map(|&(_, op)| op).collect::<Vec<_>>()),
            name()
        )
            .prop_map(|(path, op, value)| Expr::Fact { path, op, value }),
        pattern().prop_map(Expr::Class),
        pattern().prop_map(Expr::Identity),
        name().prop_map(Expr::Agent),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    atom().prop_recursive(5, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// Nodes with facts, classes and agents drawn from small sets, so expressions often match.
fn node() -> impl Strategy<Value = TestNode> {
    let small = || prop::sample::select(vec!["a", "b", "web", "1", "2", "10"]);
    (
        small(),
        prop::collection::vec(small(), 0..3),
        prop::collection::vec(small(), 0..3),
        prop::collection::btree_map(small(), small(), 0..4),
    )
        .prop_map(|(identity, classes, agents, facts)| TestNode {
            identity: identity.into(),
            facts: json!(facts),
            classes: classes.into_iter().map(String::from).collect(),
            agents: agents.into_iter().map(String::from).collect(),
        })
}

fn small_expr() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "a",
        "b",
        "web",
        "1",
        "2",
        "10",
        "and",
        "or",
        "not",
        "!",
        "(",
        ")",
        "=",
        "!=",
        "<",
        ">=",
        "=~",
        "/w/",
        "fact.a",
        "fact.b",
        "class",
        "identity",
        "agent",
        "'a'",
        "&&",
        "||",
        "with('a')",
        "with('a=1')",
        "with('/w/')",
        "fact('a')",
        "fact('b')",
        "matches",
        "in",
        "classes",
        "agents",
        "include(fact('a'), 1)",
        "nil",
        "==",
        "true",
        "\"b\"",
        "with",
        "fact",
        "include",
        "not in",
        "semver(",
    ]);
    prop::collection::vec(word, 1..12).prop_map(|words| words.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_never_panics(source in "\\PC{0,60}") {
        if let Ok(expr) = parse(&source) {
            let _ = expr.compile();
        } else if let Err(err) = parse(&source) {
            prop_assert!(err.position <= source.len());
            let _ = err.render(&source);
        }
    }

    #[test]
    fn parsing_token_soup_never_panics(source in small_expr(), node in node()) {
        match parse(&source) {
            Ok(expr) => {
                if let Ok(compiled) = expr.compile() {
                    let _ = compiled.matches(&node);
                }
                prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
            }
            Err(err) => prop_assert!(err.position <= source.len()),
        }
    }

    #[test]
    fn print_parse_round_trip(expr in expr()) {
        let printed = expr.to_string();
        prop_assert_eq!(parse(&printed), Ok(expr), "{}", printed);
    }

    #[test]
    fn printed_expressions_evaluate_the_same(source in small_expr(), node in node()) {
        if let Ok(expr) = parse(&source)
            && let Ok(compiled) = expr.compile()
        {
            let again = parse(&expr.to_string()).unwrap().compile().unwrap();
            prop_assert_eq!(compiled.matches(&node), again.matches(&node));
        }
    }
}

/// The node of go-choria's `server/discovery/discovery_test.go`: its `testdata/facts.yaml`,
/// `testdata/classes.txt` and known agents.
fn choria_node() -> TestNode {
    TestNode {
        identity: "test.example.net".into(),
        facts: json!({
            "string": "hello world", "inumber": 1, "fnumber": 1.2,
            "tbool": true, "fbool": false,
            "sarray": ["1", "2", "3"], "iarray": [1, 2, 3],
            "nested": {"string": "nested hello world", "inumber": 2, "fnumber": 2.2,
                       "tbool": true, "fbool": false},
        }),
        classes: vec!["role::testing".into(), "testing".into(), "apache".into()],
        agents: vec!["apache".into(), "rpcutil".into()],
    }
}

/// Choria's forms, with expectations from go-choria at
/// 58e80bab58a53d38576238baa011123d5f9eff59: `server/discovery/discovery_test.go` ("Should
/// handle compound filters"), `providers/discovery/inventory/inventory_test.go` ("Should
/// match compound filters", on its `testdata/good-inventory.yaml`), and what
/// `filter/compound/compound.go` does (`matchFunc`, `factFunc`, `includeFunc` and the `expr`
/// operators it runs them with).
#[test]
fn choria_forms() {
    let node = choria_node();
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        // discovery_test.go, whole and term by term
        ("with('apache') and with('/testing/') and with('fnumber=1.2') and \
          fact('nested.string') matches('h?llo') and include(fact('sarray'), '1') and \
          include(fact('iarray'), 1)", true),
        ("with('apache')", true),
        ("with('/testing/')", true),
        ("with('fnumber=1.2')", true),
        ("fact('nested.string') matches('h?llo')", true),
        ("include(fact('sarray'), '1')", true),
        ("include(fact('iarray'), 1)", true),
        // with(): matchFunc tries a fact filter, then the classes, then the agents
        ("with('testing')", true),
        ("with('rpcutil')", true),          // an agent
        ("with('nginx')", false),
        ("with('/^role::/')", true),
        ("with('/^nginx/')", false),
        ("with('string=hello world')", true),
        ("with('string==hello world')", true),
        ("with('string = hello world')", true), // facts.go trims both sides
        ("with('inumber>=1')", true),
        ("with('inumber=>1')", true),       // facts.go: => is >=
        ("with('inumber=<0')", false),      // =< is <=
        ("with('inumber!=1')", false),
        ("with('nested.string=~/hello/')", true),
        ("with('nested.string=~hello')", true),
        ("with('string=/^hello/')", true),  // facts.go: a /re/ value is =~
        ("with('tbool=T')", true),          // the boolean words of -F
        ("with('fbool=0')", true),
        ("with('missing=x')", false),
        // fact() compared as expr compares: same type, same value
        ("fact('string') == 'hello world'", true),
        ("fact('string') == \"hello world\"", true),
        ("fact('string') == 'HELLO WORLD'", false), // expr's == is case-sensitive
        ("fact('string') != 'hello world'", false),
        ("fact('inumber') == 1", true),
        ("fact('inumber') == 1.0", true),
        ("fact('inumber') == '1'", false),  // a number is not a string
        ("fact('fnumber') == 1.2", true),
        ("fact('fnumber') > 1", true),
        ("fact('fnumber') >= 1.2", true),
        ("fact('fnumber') < 1.2", false),
        ("fact('inumber') <= 1", true),
        ("fact('nested.inumber') > 1", true),
        ("fact('string') < 'i'", true),     // strings in byte order
        ("fact('string') > 'hello'", true),
        ("fact('string') < 'H'", false),
        ("fact('tbool') == true", true),
        ("fact('tbool') == false", false),
        ("fact('fbool') != true", true),
        ("fact('tbool') == 'true'", false), // a boolean is not a string
        ("fact('tbool') == 1", false),
        ("fact('missing') == nil", true),
        ("fact('string') == nil", false),
        ("fact('string') != nil", true),
        ("fact('missing') != 'x'", true),   // nil != 'x': unlike -F, true for a missing fact
        ("fact('missing') == 'x'", false),
        ("fact('sarray') == '1'", false),   // an array equals no literal
        ("fact('sarray.0') == '1'", true),
        ("fact('nested') != 1", true),
        ("fact('inumber') == -1", false),
        ("fact('inumber') > -1", true),
        ("fact('fnumber') < 12e-1", false),
        // matches: a regex on a string fact, case-sensitive; nil does not match
        ("fact('string') matches '^hello'", true),
        ("fact('string') matches 'HELLO'", false),
        ("fact('string') matches '(?i)HELLO'", true),
        ("fact('string') matches \"wor\"", true),
        ("fact('missing') matches 'x'", false),
        ("fact('string') not matches '^hello'", false),
        ("fact('missing') not matches 'x'", true),
        // a bare fact() is a boolean fact's value
        ("fact('tbool')", true),
        ("fact('fbool')", false),
        ("not fact('fbool')", true),
        ("fact('nested.tbool') && with('apache')", true),
        // include(): an element of the same type and value; nil is no list
        ("include(fact('sarray'), '2')", true),
        ("include(fact('sarray'), '5')", false),
        ("include(fact('sarray'), 1)", false), // includeFunc: cmp.Equal("1", 1.0) is false
        ("include(fact('iarray'), '1')", false),
        ("include(fact('iarray'), 3.0)", true),
        ("include(fact('iarray'), 4)", false),
        ("include(fact('missing'), 1)", false),
        // in: classes, agents, and a fact's elements or keys
        ("'apache' in classes", true),
        ("'role::testing' in classes", true),
        ("'nginx' in classes", false),
        ("'rpcutil' in agents", true),
        ("'testing' in agents", false),
        ("'nginx' not in classes", true),
        ("'apache' not in agents", false),
        ("\"2\" in fact('sarray')", true),
        ("2 in fact('iarray')", true),
        ("2 in fact('sarray')", false),
        ("'string' in fact('nested')", true),   // an object's keys
        ("'nosuch' in fact('nested')", false),
        ("1 not in fact('iarray')", false),
        ("'x' in fact('missing')", false),
        // with Muster's own forms and connectives
        ("with('apache') and class = testing and fact.inumber = 1", true),
        ("(with('nginx') || with('apache')) && !with('nginx')", true),
        ("not ('apache' in classes)", false),
        ("not (fact('inumber') == 2)", true),
        ("FACT.inumber = 1 AND fact('inumber') == 1", true),
    ];
    for &(source, expected) in cases {
        check(source, &node, expected);
    }

    // inventory_test.go: with("customer=acme") and with("one") selects dev1 only.
    let dev1 = TestNode {
        identity: "dev1.example.net".into(),
        facts: json!({"country": "mt", "customer": "acme"}),
        classes: vec!["one".into(), "two".into()],
        agents: vec!["rpcutil".into()],
    };
    let dev2 = TestNode {
        identity: "dev2.example.net".into(),
        facts: json!({"country": "de"}),
        classes: vec!["one".into(), "two".into(), "three".into()],
        agents: vec!["other".into(), "rpcutil".into()],
    };
    let source = r#"with("customer=acme") and with("one")"#;
    check(source, &dev1, true);
    check(source, &dev2, false);
    check(r#"with("customer=acme")"#, &dev1, true);
    check(r#"with("customer=acme")"#, &dev2, false);
}

/// Where Choria's evaluation fails (`expr` panics on the types, and
/// `compound.go`'s `MatchExprString` counts the query as failed), the node does not match,
/// whatever surrounds the failing part; `and` and `or` stop before it when they are decided.
#[test]
fn choria_failures_match_nothing() {
    let node = choria_node();
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        ("fact('string') > 1", false),
        ("not (fact('string') > 1)", false),       // not a failure made true
        ("with('apache') or fact('string') > 1", true), // or decided before it
        ("fact('string') > 1 or with('apache')", false),
        ("with('nginx') and fact('string') > 1", false),
        ("fact('missing') < 3", false),
        ("not (fact('missing') < 3)", false),
        ("fact('tbool') < true", false),
        ("not (fact('inumber') matches '1')", false), // matches on a number
        ("not (fact('tbool') matches 't')", false),
        ("not fact('string')", false),              // a bare fact() that is not a boolean
        ("not fact('missing')", false),
        ("not include(fact('string'), 'h')", false), // include() on a string
        ("not include(fact('nested'), 'string')", false), // or an object
        ("not ('h' in fact('string'))", false),     // in on a string
        ("not (1 in fact('nested'))", false),       // a number as an object's key
        ("not not (fact('missing') == nil)", true), // == never fails
    ];
    for &(source, expected) in cases {
        check(source, &node, expected);
    }
}

#[test]
fn choria_parse_trees() {
    let lit_string = |text: &str| Literal::String(text.into());
    #[rustfmt::skip]
    let cases: Vec<(&str, Expr)> = vec![
        ("with('nginx')", Expr::Or(vec![class("nginx"), Expr::Agent("nginx".into())])),
        ("with ( \"nginx\" )", Expr::Or(vec![class("nginx"), Expr::Agent("nginx".into())])),
        ("with('/^ng/')", Expr::Class(Pattern::Regex("^ng".into()))),
        ("with('os.family=Debian')", fact("os.family", FactOp::Eq, "Debian")),
        ("with('cpus =>4')", fact("cpus", FactOp::Ge, "4")),
        ("with('cpus=<4')", fact("cpus", FactOp::Le, "4")),
        ("with('kernel=/^6/')", fact("kernel", FactOp::Match, "^6")),
        ("with('kernel=~^6')", fact("kernel", FactOp::Match, "^6")),
        ("with('a!=b')", fact("a", FactOp::Ne, "b")),
        ("with('a!b')", Expr::Or(vec![class("a!b"), Expr::Agent("a!b".into())])),
        ("fact('os.family') == 'Debian'", Expr::Compare {
            path: "os.family".into(), op: CompareOp::Eq, value: lit_string("Debian") }),
        ("fact('cpus')>=4", Expr::Compare {
            path: "cpus".into(), op: CompareOp::Ge, value: Literal::Number("4".into()) }),
        ("fact('x') != nil", Expr::Compare {
            path: "x".into(), op: CompareOp::Ne, value: Literal::Nil }),
        ("fact('x') < -1.5e3", Expr::Compare {
            path: "x".into(), op: CompareOp::Lt, value: Literal::Number("-1.5e3".into()) }),
        ("fact('x') == '\\'a\\\\b\\n'", Expr::Compare {
            path: "x".into(), op: CompareOp::Eq, value: lit_string("'a\\b\n") }),
        ("fact('x') matches 'a\\\\d'", Expr::Matches { path: "x".into(), pattern: "a\\d".into() }),
        ("fact('x') matches ( 'a' )", Expr::Matches { path: "x".into(), pattern: "a".into() }),
        ("fact('x') not matches 'a'", not(Expr::Matches { path: "x".into(), pattern: "a".into() })),
        ("fact('x')", Expr::Truthy("x".into())),
        ("!fact('x')", not(Expr::Truthy("x".into()))),
        ("include(fact('tags'), 'edge')", Expr::Contains {
            path: "tags".into(), value: lit_string("edge"), form: ContainsForm::Include }),
        ("include( fact( 'ports' ) , 443 )", Expr::Contains {
            path: "ports".into(), value: Literal::Number("443".into()), form: ContainsForm::Include }),
        ("true in fact('flags')", Expr::Contains {
            path: "flags".into(), value: Literal::Bool(true), form: ContainsForm::In }),
        ("'web' not in fact('roles')", not(Expr::Contains {
            path: "roles".into(), value: lit_string("web"), form: ContainsForm::In })),
        ("'nginx' in classes", class("nginx")),
        ("'nginx' not in classes", not(class("nginx"))),
        ("\"puppet\" in agents", Expr::Agent("puppet".into())),
        ("with('a') && fact('b') || 'c' in classes", Expr::Or(vec![
            Expr::And(vec![
                Expr::Or(vec![class("a"), Expr::Agent("a".into())]),
                Expr::Truthy("b".into()),
            ]),
            class("c"),
        ])),
        // Muster's forms are unchanged around them
        ("fact = 1", fact("fact", FactOp::Eq, "1")),
        ("with", class("with")),
        ("fact.with = 1", fact("with", FactOp::Eq, "1")),
        ("'in' = 1", fact("in", FactOp::Eq, "1")),
    ];
    for (source, expected) in cases {
        assert_eq!(parse(source), Ok(expected), "{source}");
    }
}

#[test]
fn choria_parse_errors() {
    use ParseErrorKind::*;
    #[rustfmt::skip]
    let cases: &[(&str, ParseErrorKind, usize, &str)] = &[
        // compound_test.go's data plugins and semver(), and the GJSON query of Choria's docs
        ("with(\"foo\") && scout(\"x\").name==\"bob\"", Unsupported, 15,
         "unknown function 'scout()': the functions are with(), fact() and include(); \
          Choria's data plugins (scout('…').field) are not supported at position 15"),
        ("semver(scout(\"x\").version, \"= 1.2.3\")", Unsupported, 0,
         "semver() is not supported (Muster does not evaluate version constraints): compare \
          with fact('…') == '…' or fact('…') matches '…' at position 0"),
        ("include(fact(\"networking.interfaces.*.bindings.#.network\"), \"10.0.2.0\")",
         Unsupported, 13,
         "the fact path 'networking.interfaces.*.bindings.#.network' is a GJSON query \
          (wildcards, '#', '@' modifiers, '|', escapes, multipaths), which is not supported: \
          write a dotted path such as 'os.family' or 'disks.0.size' at position 13"),
        ("choria().version == '1'", Unsupported, 0,
         "unknown function 'choria()': the functions are with(), fact() and include(); \
          Choria's data plugins (choria('…').field) are not supported at position 0"),
        ("With('a')", Unsupported, 0,
         "unknown function 'With()': functions are lowercase, write with() at position 0"),
        // with()
        ("with(nginx)", Missing, 5,
         "expected a quoted string in with(), e.g. with('nginx'), found 'nginx' at position 5"),
        ("with('a'", Missing, 8, "expected ')' to close with( at position 8"),
        ("with('')", Missing, 5,
         "with('') is empty: it takes a class or agent name, FACT OP VALUE or /regex/ at position 5"),
        ("with('a b')", Invalid, 5,
         "with('a b'): a class or agent name has no spaces (with() takes one term: with('a') \
          and with('b')) at position 5"),
        ("with('a=b=c')", Invalid, 5,
         "with('a=b=c') holds 2 comparison operators: Choria splits it at the last, -W at the \
          first; write the comparison as fact.PATH OP \"VALUE\" at position 5"),
        ("with('a<>b')", Invalid, 5,
         "with('a<>b') holds 2 comparison operators: Choria splits it at the last, -W at the \
          first; write the comparison as fact.PATH OP \"VALUE\" at position 5"),
        ("with('/a=b/')", Invalid, 5,
         "with('/a=b/') is ambiguous: Choria reads a fact comparison, -W a class regex; write \
          /…/ for the class regex or fact.PATH OP \"VALUE\" for the comparison at position 5"),
        ("with('=b')", Missing, 5, "with('=b'): the fact name is empty at position 5"),
        ("with('a>')", Missing, 5, "with('a>'): the value is empty at position 5"),
        ("with('a!=/re/')", Invalid, 5,
         "with('a!=/re/'): a /regex/ value goes with '=~' or '=', not '!=' at position 5"),
        ("with('path=/')", Invalid, 5,
         "with('path=/') is ambiguous: Choria reads a lone '/' as an empty regex; write \
          fact('path') == '/' or fact.PATH =~ \"\" at position 5"),
        ("with('a.*.b=1')", Unsupported, 5,
         "the fact path 'a.*.b' is a GJSON query (wildcards, '#', '@' modifiers, '|', escapes, \
          multipaths), which is not supported: write a dotted path such as 'os.family' or \
          'disks.0.size' at position 5"),
        // fact()
        ("fact('')", Missing, 5, "expected a fact path, found an empty string at position 5"),
        ("fact('a..b') == 1", Invalid, 5,
         "'a..b' is not a dotted path: a part between dots is empty at position 5"),
        ("fact('x') = 'a'", Invalid, 10, "fact('…') takes '==', not '=' at position 10"),
        ("fact('x') =~ 'a'", Invalid, 10, "fact('…') takes 'matches', not '=~' at position 10"),
        ("fact('x') == Debian", Invalid, 13,
         "'Debian' is not a value: quote a string ('Debian'); true, false and nil are \
          lowercase (Choria reads any other name as nil) at position 13"),
        ("fact('x') == True", Invalid, 13,
         "'True' is not a value: quote a string ('True'); true, false and nil are lowercase \
          (Choria reads any other name as nil) at position 13"),
        ("fact('x') ==", Missing, 12,
         "expected a string, a number, true, false or nil after '==' at position 12"),
        ("fact('x') == 0x10", Unsupported, 13,
         "the number '0x10' is not supported: write decimal numbers such as 4, -1.5 or 2e3 at \
          position 13"),
        ("fact('x') == 1_000", Unsupported, 13,
         "the number '1_000' is not supported: write decimal numbers such as 4, -1.5 or 2e3 at \
          position 13"),
        ("fact('x') == 'a\\d'", Unsupported, 15,
         "the escape '\\d' is not supported in a string (write '\\\\' for a backslash) at \
          position 15"),
        ("fact('x') == 'a", Unterminated, 13, "unterminated string: no closing ' at position 13"),
        ("fact('x') contains 'a'", Unsupported, 10,
         "'contains' after fact('…') is not supported: compare it with ==, !=, <, >, <=, >= \
          or (not) matches, or write fact('…') alone for a boolean fact at position 10"),
        ("fact('x').y == 1", Unsupported, 9,
         "'.y' after fact('…') is not supported: compare it with ==, !=, <, >, <=, >= or (not) \
          matches, or write fact('…') alone for a boolean fact at position 9"),
        ("fact('x') + 1 > 2", Unsupported, 10,
         "'+' after fact('…') is not supported: compare it with ==, !=, <, >, <=, >= or (not) \
          matches, or write fact('…') alone for a boolean fact at position 10"),
        ("fact('x') in ['a']", Unsupported, 10,
         "'in' after fact('…') is not supported: compare it with ==, !=, <, >, <=, >= or (not) \
          matches, or write fact('…') alone for a boolean fact at position 10"),
        ("fact('x') matches x", Missing, 18,
         "expected a quoted string after 'matches', found 'x' at position 18"),
        ("fact(x)", Missing, 5,
         "expected a quoted string in fact(), e.g. fact('os.family'), found 'x' at position 5"),
        // not directly before a comparison: expr applies it to fact() alone
        ("not fact('x') == 1", Invalid, 4,
         "'not' before a comparison is ambiguous (Choria applies it to the left operand alone): \
          write not (…) around the comparison at position 4"),
        ("!fact('x') matches 'a'", Invalid, 1,
         "'!' before 'matches' is ambiguous (Choria applies it to the left operand alone): \
          write ! (…) around the comparison at position 1"),
        ("not 'a' in classes", Invalid, 4,
         "'not' before '… in …' is ambiguous (Choria applies it to the left operand alone): \
          write not (…) around the comparison at position 4"),
        // include() and in
        ("include(classes, 'x')", Invalid, 8,
         "include() takes fact('…'), not classes (Choria's include() cannot read classes \
          either): write 'name' in classes at position 8"),
        ("include('x', 1)", Missing, 8,
         "expected fact('…') in include(), e.g. include(fact('tags'), 'edge'), found ''x',' \
          at position 8"),
        ("include(fact('x') 1)", Missing, 18,
         "expected ',' after include()'s fact('…'), found '1' at position 18"),
        ("include(fact('x'), 1", Missing, 20, "expected ')' to close include( at position 20"),
        ("'a' in facts", Unsupported, 7,
         "'facts' (Choria's facts as raw JSON) is not supported: write … in fact('path') at \
          position 7"),
        ("'a' in ['a']", Missing, 7,
         "expected classes, agents or fact('…') after 'in' (lists are not supported), found \
          '['a']' at position 7"),
        ("'a' in identity", Missing, 7,
         "expected classes, agents or fact('…') after 'in' (lists are not supported), found \
          'identity' at position 7"),
        ("1 in classes", Invalid, 0,
         "classes holds names: quote the name ('1' in classes) at position 0"),
        ("nginx in classes", Invalid, 0,
         "'nginx' before 'in' is not a value: quote it ('nginx' in …); numbers, true, false \
          and nil are written bare at position 0"),
        ("'a\\x41' in classes", Unsupported, 2,
         "the escape '\\x' is not supported in a string (write '\\\\' for a backslash) at \
          position 2"),
    ];
    for &(source, kind, position, message) in cases {
        let err = parse(source).expect_err(source);
        assert_eq!(
            (err.kind, err.position, err.to_string().as_str()),
            (kind, position, message),
            "{source}"
        );
    }
    // A bad regex in matches is a compile error naming it, like any other regex.
    let err = parse("fact('x') matches '('")
        .unwrap()
        .compile()
        .unwrap_err();
    assert_eq!(err.kind, crate::filter::FilterErrorKind::Regex);
}

#[test]
fn choria_display_parses_back() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("with('nginx')", "class = nginx or agent = nginx"),
        ("with('/^a/')", "class = /^a/"),
        ("with('cpus=>4')", "fact.cpus >= 4"),
        ("fact('os.family')=='Debian'", "fact(\"os.family\") == \"Debian\""),
        ("fact('x') != nil", "fact(\"x\") != nil"),
        ("fact('x') >= -2.5", "fact(\"x\") >= -2.5"),
        ("fact('x') == true", "fact(\"x\") == true"),
        ("fact('x') matches('a\\\\.b')", "fact(\"x\") matches \"a\\\\.b\""),
        ("fact('x') not matches 'a'", "not (fact(\"x\") matches \"a\")"),
        ("not (fact('x') == 1)", "not (fact(\"x\") == 1)"),
        ("fact('x')", "fact(\"x\")"),
        ("not fact('x')", "not fact(\"x\")"),
        ("include(fact('x'), 'a\"b')", "include(fact(\"x\"), \"a\\\"b\")"),
        ("1 not in fact('x')", "not (1 in fact(\"x\"))"),
        ("'a' not in agents", "not agent = a"),
        ("with('a') and 'b' in classes", "(class = a or agent = a) and class = b"),
    ];
    for &(source, printed) in cases {
        let expr = parse(source).unwrap();
        assert_eq!(expr.to_string(), printed, "{source}");
        assert_eq!(parse(printed), Ok(expr), "{printed}");
    }
}
