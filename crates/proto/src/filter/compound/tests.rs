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

fn atom() -> impl Strategy<Value = Expr> {
    prop_oneof![
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
        "a", "b", "web", "1", "2", "10", "and", "or", "not", "!", "(", ")", "=", "!=", "<", ">=",
        "=~", "/w/", "fact.a", "fact.b", "class", "identity", "agent", "'a'", "&&", "||",
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
