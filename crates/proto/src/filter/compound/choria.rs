//! Choria's forms in the compound language: `with('…')`, `fact('…')` with a comparison or
//! `matches`, `include(fact('…'), …)` and `… in classes|agents|fact('…')`.
//!
//! Choria's `-S` is an expression of the `expr` language run with the variables `classes`,
//! `agents` and `facts` and the functions `with`, `fact`, `include` and `semver` (go-choria
//! `filter/compound/compound.go`). The forms here are the ones that map onto what a
//! [`NodeView`](crate::filter::NodeView) has, and they evaluate as Choria evaluates them:
//!
//! - `with('TEXT')` is one `-W` term: `FACT OP VALUE` (exactly one operator; `=>` and `=<`
//!   read as `>=` and `<=`) is a fact comparison with the rules of `-F`; `/re/` is a class
//!   regex; any other name is a class or an agent of that name.
//! - `fact('PATH') OP LITERAL` compares with the types of JSON, as `expr` does: a string only
//!   equals a string (case-sensitively), a number a number, a boolean a boolean, and `nil` a
//!   missing or `null` fact; `!=` is the negation of `==`, so it holds for a missing fact.
//!   `<`, `>`, `<=`, `>=` compare two numbers or two strings (byte order).
//! - `fact('PATH') matches 'RE'` (also `matches('RE')`, `not matches`) is a regex match on a
//!   string fact; a missing fact does not match.
//! - `fact('PATH')` alone is the fact's value when it is a boolean.
//! - `include(fact('PATH'), LITERAL)` holds when the fact is an array with an element of the
//!   literal's type and value; `LITERAL in fact('PATH')` too, and for an object when the
//!   literal is one of its keys.
//! - `'NAME' in classes`, `'NAME' in agents` (and `not in`) test the class or agent.
//!
//! Where Choria's evaluation fails (a comparison of a string with a number, `matches` on a
//! number, `include` on something not an array, a bare `fact()` that is not a boolean), the
//! whole expression does not match the node, whatever `not` and `or` surround it — as Choria
//! drops a node whose expression fails. `and` and `or` stop at the first operand that decides,
//! so `with('role=db') and fact('cpus') > 4` does not fail on a node without the role.
//!
//! Anything else of Choria's language is a parse error that says what to write instead:
//! `semver()`, data plugins (`scout('x').field`), GJSON queries in paths (`*`, `#`, `@`),
//! arithmetic, lists, and `not` directly before a comparison (`expr` applies it to `fact()`
//! alone; write `not (fact('x') == 1)`).
//!
//! ```
//! use muster_proto::filter::compound;
//!
//! let expr = compound::parse("with('role=web') and fact('cpus') >= 4 and 'nginx' in classes")?;
//! assert_eq!(
//!     expr.to_string(),
//!     "fact.role == web and fact(\"cpus\") >= 4 and class = nginx"
//! );
//! let err = compound::parse("semver(fact('version'), '>= 1.2')").unwrap_err();
//! assert_eq!(err.kind, compound::ParseErrorKind::Unsupported);
//! # Ok::<(), compound::ParseError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use super::{Expr, ParseError, ParseErrorKind, Parser, write_quoted};
use crate::filter::{FactOp, FilterError, FilterErrorKind, Pattern, is_slashed};

/// A comparison of a fact with a literal (`fact('cpus') >= 4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Gt => ">",
            CompareOp::Le => "<=",
            CompareOp::Ge => ">=",
        }
    }

    /// The operator at the start of `text` and its length, longest spelling first.
    fn at_start(text: &str) -> Option<(CompareOp, usize)> {
        [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Le,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Gt,
        ]
        .into_iter()
        .find(|op| text.starts_with(op.as_str()))
        .map(|op| (op, op.as_str().len()))
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A literal of Choria's forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `'single'` or `"double"` quoted.
    String(String),
    /// A decimal number, as written (`4`, `-1.5`, `2e3`).
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`: a missing or `null` fact.
    Nil,
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(text) => write_quoted(f, text),
            Literal::Number(text) => f.write_str(text),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Nil => f.write_str("nil"),
        }
    }
}

/// Which membership test an [`Expr::Contains`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainsForm {
    /// `include(fact('…'), LITERAL)`: an element of an array.
    Include,
    /// `LITERAL in fact('…')`: an element of an array, or a key of an object.
    In,
}

/// Whether `text` is a decimal number as `expr` writes one: `-`, digits, an optional
/// fraction and exponent.
fn is_decimal(text: &str) -> bool {
    /// How many digits `bytes` has from `at`.
    fn digits(bytes: &[u8], at: usize) -> usize {
        bytes
            .iter()
            .skip(at)
            .take_while(|b| b.is_ascii_digit())
            .count()
    }
    let bytes = text.strip_prefix('-').unwrap_or(text).as_bytes();
    let mut at = digits(bytes, 0);
    if at == 0 {
        return false;
    }
    if bytes.get(at) == Some(&b'.') {
        let fraction = digits(bytes, at.saturating_add(1));
        if fraction == 0 {
            return false;
        }
        at = at.saturating_add(1).saturating_add(fraction);
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at = at.saturating_add(1);
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at = at.saturating_add(1);
        }
        let exponent = digits(bytes, at);
        if exponent == 0 {
            return false;
        }
        at = at.saturating_add(exponent);
    }
    at == bytes.len()
}

/// Whether `word` is an identifier, as a function name is.
fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The comparison operators of a Choria fact filter (go-choria `filter/facts/facts.go`,
/// `validOperators`), in the order its regex tries them at one position.
const CHORIA_OPERATORS: [(&str, FactOp); 10] = [
    ("<=", FactOp::Le),
    (">=", FactOp::Ge),
    ("=>", FactOp::Ge),
    ("=<", FactOp::Le),
    ("<", FactOp::Lt),
    (">", FactOp::Gt),
    ("!=", FactOp::Ne),
    ("=~", FactOp::Match),
    ("==", FactOp::Eq),
    ("=", FactOp::Eq),
];

/// Every operator in `text` as Choria finds them (leftmost first, not overlapping): byte
/// position, operator, spelling length.
fn choria_operators(text: &str) -> Vec<(usize, FactOp, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        match CHORIA_OPERATORS
            .iter()
            .find(|(spelling, _)| rest.starts_with(spelling))
        {
            Some(&(spelling, op)) => {
                found.push((at, op, spelling.len()));
                at = at.saturating_add(spelling.len());
            }
            None => {
                at = at.saturating_add(rest.chars().next().map_or(1, char::len_utf8));
            }
        }
    }
    found
}

/// The characters of GJSON's path syntax beyond plain dotted keys.
const GJSON_SYNTAX: [char; 6] = ['*', '?', '#', '@', '|', '\\'];

/// Why `path` is not a plain dotted path (Choria reads paths as GJSON queries), if it is not.
fn path_problem(path: &str) -> Option<(ParseErrorKind, String)> {
    if path.is_empty() {
        return Some((
            ParseErrorKind::Missing,
            "expected a fact path, found an empty string".into(),
        ));
    }
    if path.contains(GJSON_SYNTAX) || path.starts_with(['[', '{', '!']) {
        return Some((
            ParseErrorKind::Unsupported,
            format!(
                "the fact path '{path}' is a GJSON query (wildcards, '#', '@' modifiers, '|', \
                 escapes, multipaths), which is not supported: write a dotted path such as \
                 'os.family' or 'disks.0.size'"
            ),
        ));
    }
    if path.split('.').any(str::is_empty) {
        return Some((
            ParseErrorKind::Invalid,
            format!("'{path}' is not a dotted path: a part between dots is empty"),
        ));
    }
    None
}

impl<'a> Parser<'a> {
    /// Whether the term being parsed follows `not` or `!` directly.
    fn after_not(after: Option<&str>) -> bool {
        after.is_some_and(|a| a == "!" || a.eq_ignore_ascii_case("not"))
    }

    /// The error for a Choria comparison right after `not`, which `expr` would apply to its
    /// left operand alone.
    fn not_before_comparison(after: &str, start: usize, what: &str) -> ParseError {
        ParseError::new(
            ParseErrorKind::Invalid,
            start,
            format!(
                "'{after}' before {what} is ambiguous (Choria applies it to the left operand \
                 alone): write {after} (…) around the comparison"
            ),
        )
    }

    /// At a word: whether it is an identifier followed by `(` (a function call).
    pub(super) fn at_call(&self, word: &str) -> bool {
        let after = self.rest()[word.len()..].trim_start();
        is_identifier(word)
            && after.starts_with('(')
            && !["class", "identity", "agent"]
                .iter()
                .any(|keyword| word.eq_ignore_ascii_case(keyword))
    }

    /// After a term's first token: `in` or `not in` ahead, with whether it is negated; the
    /// position is left after `in`.
    pub(super) fn take_in(&mut self) -> Option<bool> {
        let saved = self.pos;
        self.skip_ws();
        let negated = if self.word() == "not" {
            self.pos = self.pos.saturating_add(3);
            self.skip_ws();
            true
        } else {
            false
        };
        if self.word() == "in" {
            self.pos = self.pos.saturating_add(2);
            Some(negated)
        } else {
            self.pos = saved;
            None
        }
    }

    /// A quoted string of Choria's forms at the current position: `expr`'s escapes, and an
    /// error for those Muster does not read (`\x41`, `\u00e9`, octal).
    pub(super) fn lex_string(&mut self, what: &str) -> Result<String, ParseError> {
        let start = self.pos;
        let mut chars = self.rest().char_indices();
        let quote = match chars.next() {
            Some((_, quote @ ('"' | '\''))) => quote,
            _ => {
                return Err(self.expected(
                    ParseErrorKind::Missing,
                    &format!("expected a quoted string {what}"),
                ));
            }
        };
        let mut text = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let escaped = match chars.next() {
                        Some((_, 'n')) => '\n',
                        Some((_, 't')) => '\t',
                        Some((_, 'r')) => '\r',
                        Some((_, 'a')) => '\u{7}',
                        Some((_, 'b')) => '\u{8}',
                        Some((_, 'f')) => '\u{c}',
                        Some((_, 'v')) => '\u{b}',
                        Some((_, c @ ('\\' | '\'' | '"' | '`' | '?'))) => c,
                        Some((_, other)) => {
                            return Err(ParseError::new(
                                ParseErrorKind::Unsupported,
                                start.saturating_add(i),
                                format!(
                                    "the escape '\\{other}' is not supported in a string \
                                     (write '\\\\' for a backslash)"
                                ),
                            ));
                        }
                        None => break,
                    };
                    text.push(escaped);
                }
                c if c == quote => {
                    self.pos = start.saturating_add(i).saturating_add(c.len_utf8());
                    return Ok(text);
                }
                c => text.push(c),
            }
        }
        Err(ParseError::new(
            ParseErrorKind::Unterminated,
            start,
            format!("unterminated string: no closing {quote}"),
        ))
    }

    /// Skips whitespace and expects `token` (`(`, `)` or `,`), consuming it.
    fn expect_token(&mut self, token: char, context: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek_char() == Some(token) {
            self.pos = self.pos.saturating_add(1);
            Ok(())
        } else {
            Err(self.expected(
                ParseErrorKind::Missing,
                &format!("expected '{token}' {context}"),
            ))
        }
    }

    /// `( STRING )` after a function name: the string and where it starts.
    fn string_argument(&mut self, function: &str) -> Result<(String, usize), ParseError> {
        self.expect_token('(', &format!("after '{function}'"))?;
        self.skip_ws();
        let at = self.pos;
        let text = self.lex_string(&format!(
            "in {function}(), e.g. {function}('{}')",
            if function == "fact" {
                "os.family"
            } else {
                "nginx"
            }
        ))?;
        self.expect_token(')', &format!("to close {function}("))?;
        Ok((text, at))
    }

    /// `( 'PATH' )` after `fact`: the path, checked.
    fn fact_argument(&mut self) -> Result<String, ParseError> {
        let (path, at) = self.string_argument("fact")?;
        match path_problem(&path) {
            Some((kind, message)) => Err(ParseError::new(kind, at, message)),
            None => Ok(path),
        }
    }

    /// A literal after `context` (an operator, `,`): a string, a decimal number, `true`,
    /// `false` or `nil`.
    fn literal(&mut self, context: &str) -> Result<Literal, ParseError> {
        self.skip_ws();
        if matches!(self.peek_char(), Some('"' | '\'')) {
            return self.lex_string("").map(Literal::String);
        }
        let word = self.word();
        let literal = match word {
            "" => {
                return Err(self.expected(
                    ParseErrorKind::Missing,
                    &format!("expected a string, a number, true, false or nil after '{context}'"),
                ));
            }
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            "nil" => Literal::Nil,
            word if is_decimal(word) => Literal::Number(word.to_string()),
            word if word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') => {
                return Err(ParseError::new(
                    ParseErrorKind::Unsupported,
                    self.pos,
                    format!(
                        "the number '{word}' is not supported: write decimal numbers such as \
                         4, -1.5 or 2e3"
                    ),
                ));
            }
            word => {
                return Err(ParseError::new(
                    ParseErrorKind::Invalid,
                    self.pos,
                    format!(
                        "'{word}' is not a value: quote a string ('{word}'); true, false and nil \
                         are lowercase (Choria reads any other name as nil)"
                    ),
                ));
            }
        };
        self.pos = self.pos.saturating_add(word.len());
        Ok(literal)
    }

    /// A word before `in`, as a literal (a number, `true`, `false`, `nil`).
    pub(super) fn word_literal(word: &str, start: usize) -> Result<Literal, ParseError> {
        Ok(match word {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            "nil" => Literal::Nil,
            word if is_decimal(word) => Literal::Number(word.to_string()),
            word => {
                return Err(ParseError::new(
                    ParseErrorKind::Invalid,
                    start,
                    format!(
                        "'{word}' before 'in' is not a value: quote it ('{word}' in …); numbers, \
                         true, false and nil are written bare"
                    ),
                ));
            }
        })
    }

    /// After `LITERAL [not] in` (consumed; `start` is where the literal began).
    pub(super) fn in_form(
        &mut self,
        value: Literal,
        negated: bool,
        start: usize,
        after: Option<&str>,
    ) -> Result<Expr, ParseError> {
        if let Some(after) = after.filter(|_| Self::after_not(after)) {
            return Err(Self::not_before_comparison(after, start, "'… in …'"));
        }
        self.skip_ws();
        let at = self.pos;
        let word = self.word();
        let expr = match word {
            "classes" | "agents" => {
                let Literal::String(name) = value else {
                    return Err(ParseError::new(
                        ParseErrorKind::Invalid,
                        start,
                        format!("{word} holds names: quote the name ('{value}' in {word})"),
                    ));
                };
                self.pos = self.pos.saturating_add(word.len());
                if word == "classes" {
                    Expr::Class(Pattern::Literal(name))
                } else {
                    Expr::Agent(name)
                }
            }
            "fact" if self.at_call(word) => {
                self.pos = self.pos.saturating_add(word.len());
                let path = self.fact_argument()?;
                Expr::Contains {
                    path,
                    value,
                    form: ContainsForm::In,
                }
            }
            "facts" => {
                return Err(ParseError::new(
                    ParseErrorKind::Unsupported,
                    at,
                    "'facts' (Choria's facts as raw JSON) is not supported: write … in \
                     fact('path')",
                ));
            }
            _ => {
                return Err(self.expected(
                    ParseErrorKind::Missing,
                    "expected classes, agents or fact('…') after 'in' (lists are not supported)",
                ));
            }
        };
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }

    /// A function call: `name` (at `start`, consumed) and `(` ahead.
    pub(super) fn call(
        &mut self,
        name: &str,
        start: usize,
        after: Option<&str>,
    ) -> Result<Expr, ParseError> {
        match name {
            "with" => {
                let (text, at) = self.string_argument("with")?;
                with_term(&text, at)
            }
            "fact" => {
                let path = self.fact_argument()?;
                self.after_fact(path, start, after)
            }
            "include" => self.include(),
            "semver" => Err(ParseError::new(
                ParseErrorKind::Unsupported,
                start,
                "semver() is not supported (Muster does not evaluate version constraints): \
                 compare with fact('…') == '…' or fact('…') matches '…'",
            )),
            name if ["with", "fact", "include"]
                .iter()
                .any(|known| name.eq_ignore_ascii_case(known)) =>
            {
                Err(ParseError::new(
                    ParseErrorKind::Unsupported,
                    start,
                    format!(
                        "unknown function '{name}()': functions are lowercase, write {}()",
                        name.to_ascii_lowercase()
                    ),
                ))
            }
            name => Err(ParseError::new(
                ParseErrorKind::Unsupported,
                start,
                format!(
                    "unknown function '{name}()': the functions are with(), fact() and \
                     include(); Choria's data plugins ({name}('…').field) are not supported"
                ),
            )),
        }
    }

    /// What follows `fact('PATH')` (consumed; the term began at `start`).
    fn after_fact(
        &mut self,
        path: String,
        start: usize,
        after: Option<&str>,
    ) -> Result<Expr, ParseError> {
        let saved = self.pos;
        self.skip_ws();
        let rest = self.rest();
        let not_first = after.filter(|_| Self::after_not(after));
        if let Some((op, len)) = CompareOp::at_start(rest) {
            if let Some(after) = not_first {
                return Err(Self::not_before_comparison(after, start, "a comparison"));
            }
            self.pos = self.pos.saturating_add(len);
            let value = self.literal(op.as_str())?;
            return Ok(Expr::Compare { path, op, value });
        }
        if rest.starts_with("=~") || rest.starts_with('=') {
            let (found, instead) = if rest.starts_with("=~") {
                ("=~", "matches")
            } else {
                ("=", "==")
            };
            return Err(ParseError::new(
                ParseErrorKind::Invalid,
                self.pos,
                format!("fact('…') takes '{instead}', not '{found}'"),
            ));
        }
        let word = self.word();
        let negated = if word == "not" {
            let after_not = self.rest()[3..].trim_start();
            if after_not.starts_with("matches")
                && !after_not[7..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            {
                self.pos = self.pos.saturating_add(3);
                self.skip_ws();
                true
            } else {
                return Err(self.unsupported_after_fact());
            }
        } else {
            false
        };
        if self.word() == "matches" {
            if let Some(after) = not_first {
                return Err(Self::not_before_comparison(after, start, "'matches'"));
            }
            self.pos = self.pos.saturating_add(7);
            self.skip_ws();
            let parenthesised = self.peek_char() == Some('(');
            if parenthesised {
                self.pos = self.pos.saturating_add(1);
                self.skip_ws();
            }
            let pattern = self.lex_string("after 'matches'")?;
            if parenthesised {
                self.expect_token(')', "to close matches(")?;
            }
            let expr = Expr::Matches { path, pattern };
            return Ok(if negated {
                Expr::Not(Box::new(expr))
            } else {
                expr
            });
        }
        let continues = rest.starts_with(['.', '[', '+', '-', '*', '/', '%', '?', '^', ','])
            || (rest.starts_with('|') && !rest.starts_with("||"))
            || ["contains", "startsWith", "endsWith", "in"].contains(&word);
        if continues {
            return Err(self.unsupported_after_fact());
        }
        self.pos = saved;
        Ok(Expr::Truthy(path))
    }

    fn unsupported_after_fact(&self) -> ParseError {
        let found = self.found_at(self.pos).unwrap_or_default();
        ParseError::new(
            ParseErrorKind::Unsupported,
            self.pos,
            format!(
                "{found} after fact('…') is not supported: compare it with ==, !=, <, >, <=, >= \
                 or (not) matches, or write fact('…') alone for a boolean fact"
            ),
        )
    }

    /// `include` (consumed) `( fact('PATH') , LITERAL )`.
    fn include(&mut self) -> Result<Expr, ParseError> {
        self.expect_token('(', "after 'include'")?;
        self.skip_ws();
        let rest = self.rest();
        let word = &rest[..rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())];
        match word {
            "fact" if self.at_call(word) => self.pos = self.pos.saturating_add(word.len()),
            "classes" | "agents" => {
                return Err(ParseError::new(
                    ParseErrorKind::Invalid,
                    self.pos,
                    format!(
                        "include() takes fact('…'), not {word} (Choria's include() cannot read \
                         {word} either): write 'name' in {word}"
                    ),
                ));
            }
            _ => {
                return Err(self.expected(
                    ParseErrorKind::Missing,
                    "expected fact('…') in include(), e.g. include(fact('tags'), 'edge')",
                ));
            }
        }
        let path = self.fact_argument()?;
        self.expect_token(',', "after include()'s fact('…')")?;
        let value = self.literal(",")?;
        self.expect_token(')', "to close include(")?;
        Ok(Expr::Contains {
            path,
            value,
            form: ContainsForm::Include,
        })
    }
}

/// The term of `with('TEXT')`, the string starting at byte `at`.
fn with_term(text: &str, at: usize) -> Result<Expr, ParseError> {
    let error = |kind, message: String| Err(ParseError::new(kind, at, message));
    if text.trim().is_empty() {
        return error(
            ParseErrorKind::Missing,
            "with('') is empty: it takes a class or agent name, FACT OP VALUE or /regex/".into(),
        );
    }
    let operators = choria_operators(text);
    match operators[..] {
        [] if text.contains(char::is_whitespace) => error(
            ParseErrorKind::Invalid,
            format!(
                "with('{text}'): a class or agent name has no spaces (with() takes one term: \
                 with('a') and with('b'))"
            ),
        ),
        [] if is_slashed(text) => Ok(Expr::Class(Pattern::Regex(
            text[1..text.len().saturating_sub(1)].to_string(),
        ))),
        [] => Ok(Expr::Or(vec![
            Expr::Class(Pattern::Literal(text.to_string())),
            Expr::Agent(text.to_string()),
        ])),
        [_] if is_slashed(text) => error(
            ParseErrorKind::Invalid,
            format!(
                "with('{text}') is ambiguous: Choria reads a fact comparison, -W a class regex; \
                 write /…/ for the class regex or fact.PATH OP \"VALUE\" for the comparison"
            ),
        ),
        [(position, op, len)] => {
            let fact = text[..position].trim();
            let value = text[position.saturating_add(len)..].trim();
            if fact.is_empty() || value.is_empty() {
                let which = if fact.is_empty() {
                    "fact name"
                } else {
                    "value"
                };
                return error(
                    ParseErrorKind::Missing,
                    format!("with('{text}'): the {which} is empty"),
                );
            }
            if let Some((kind, message)) = path_problem(fact) {
                return error(kind, message);
            }
            if value == "/" {
                return error(
                    ParseErrorKind::Invalid,
                    format!(
                        "with('{text}') is ambiguous: Choria reads a lone '/' as an empty regex; \
                         write fact('{fact}') == '/' or fact.PATH =~ \"\""
                    ),
                );
            }
            let (op, value) = match (op, is_slashed(value)) {
                (FactOp::Eq | FactOp::Match, true) => {
                    (FactOp::Match, &value[1..value.len().saturating_sub(1)])
                }
                (_, true) => {
                    return error(
                        ParseErrorKind::Invalid,
                        format!(
                            "with('{text}'): a /regex/ value goes with '=~' or '=', not '{}'",
                            &text[position..position.saturating_add(len)]
                        ),
                    );
                }
                (op, false) => (op, value),
            };
            Ok(Expr::Fact {
                path: fact.to_string(),
                op,
                value: value.to_string(),
            })
        }
        _ => error(
            ParseErrorKind::Invalid,
            format!(
                "with('{text}') holds {} comparison operators: Choria splits it at the last, -W \
                 at the first; write the comparison as fact.PATH OP \"VALUE\"",
                operators.len()
            ),
        ),
    }
}

/// A compiled literal.
#[derive(Debug, Clone)]
pub(super) enum Scalar {
    String(String),
    Number(f64),
    Bool(bool),
    Nil,
}

impl Scalar {
    pub(super) fn compile(literal: &Literal) -> Result<Scalar, FilterError> {
        Ok(match literal {
            Literal::String(text) => Scalar::String(text.clone()),
            Literal::Number(text) => Scalar::Number(
                text.parse()
                    .ok()
                    .filter(|n: &f64| is_decimal(text) && n.is_finite())
                    .ok_or_else(|| {
                        FilterError::new(
                            FilterErrorKind::Compound,
                            format!("invalid number '{text}'"),
                        )
                    })?,
            ),
            Literal::Bool(value) => Scalar::Bool(*value),
            Literal::Nil => Scalar::Nil,
        })
    }

    /// `expr`'s `==` of a fact (missing is `nil`) with this literal: same JSON type, same value.
    fn equals(&self, fact: Option<&Value>) -> bool {
        match (fact, self) {
            (None | Some(Value::Null), Scalar::Nil) => true,
            (Some(Value::String(fact)), Scalar::String(value)) => fact == value,
            (Some(Value::Number(fact)), Scalar::Number(value)) => fact.as_f64() == Some(*value),
            (Some(Value::Bool(fact)), Scalar::Bool(value)) => fact == value,
            _ => false,
        }
    }
}

/// Choria's evaluation failed: the whole expression does not match the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fault;

/// `fact OP value`.
pub(super) fn compare(fact: Option<&Value>, op: CompareOp, value: &Scalar) -> Result<bool, Fault> {
    let ordering = match op {
        CompareOp::Eq => return Ok(value.equals(fact)),
        CompareOp::Ne => return Ok(!value.equals(fact)),
        _ => match (fact, value) {
            (Some(Value::String(fact)), Scalar::String(value)) => fact.as_str().cmp(value),
            (Some(Value::Number(fact)), Scalar::Number(value)) => fact
                .as_f64()
                .and_then(|fact| fact.partial_cmp(value))
                .ok_or(Fault)?,
            _ => return Err(Fault),
        },
    };
    Ok(match op {
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Le => ordering != Ordering::Greater,
        _ => ordering != Ordering::Less,
    })
}

/// `fact matches regex`: a string fact; a missing one does not match.
pub(super) fn matches(fact: Option<&Value>, regex: &regex::Regex) -> Result<bool, Fault> {
    match fact {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(text)) => Ok(regex.is_match(text)),
        Some(_) => Err(Fault),
    }
}

/// A bare `fact()`: its value when it is a boolean.
pub(super) fn truthy(fact: Option<&Value>) -> Result<bool, Fault> {
    match fact {
        Some(Value::Bool(value)) => Ok(*value),
        _ => Err(Fault),
    }
}

/// `include(fact, value)` or `value in fact`.
pub(super) fn contains(
    fact: Option<&Value>,
    value: &Scalar,
    form: ContainsForm,
) -> Result<bool, Fault> {
    match (fact, form) {
        (None | Some(Value::Null), _) => Ok(false),
        (Some(Value::Array(items)), _) => Ok(items.iter().any(|item| value.equals(Some(item)))),
        (Some(Value::Object(map)), ContainsForm::In) => match value {
            Scalar::String(key) => Ok(map.contains_key(key)),
            // `expr` looks up the zero value of the key type: the empty string.
            Scalar::Nil => Ok(map.contains_key("")),
            _ => Err(Fault),
        },
        _ => Err(Fault),
    }
}
