//! The compound filter language (`-S`, the `compound` field of a [`Filter`](super::Filter)).
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := unary (("and" | "&&") unary)*
//! unary   := ("not" | "!") unary | primary
//! primary := "(" expr ")" | atom | choria
//! atom    := "fact." PATH OP VALUE          fact comparison
//!          | "class" ("=" | "==" | "!=" | "=~") VALUE
//!          | "identity" ("=" | "==" | "!=" | "=~") VALUE
//!          | "agent" ("=" | "==" | "!=") VALUE
//!          | PATH OP VALUE                  shorthand for fact.PATH OP VALUE
//!          | QUOTED OP VALUE                fact comparison on exactly that path
//!          | WORD | QUOTED                  shorthand for class = WORD
//!          | /REGEX/                        shorthand for class = /REGEX/
//! OP      := "==" | "=" | "!=" | "<" | ">" | "<=" | ">=" | "=~"
//! VALUE   := BARE | "double" | 'single' | /REGEX/
//!
//! choria  := "with" "(" STRING ")"                   one -W term (see below)
//!          | FACT CMP LITERAL                        typed comparison
//!          | FACT ["not"] "matches" (STRING | "(" STRING ")")
//!          | FACT                                    a boolean fact's value
//!          | "include" "(" FACT "," LITERAL ")"      an element of an array fact
//!          | LITERAL ["not"] "in" FACT               an element (or key) of the fact
//!          | STRING ["not"] "in" ("classes" | "agents")
//! FACT    := "fact" "(" STRING ")"                   STRING is a dotted path
//! CMP     := "==" | "!=" | "<" | ">" | "<=" | ">="
//! LITERAL := STRING | NUMBER | "true" | "false" | "nil"
//! STRING  := "double" | 'single'
//! NUMBER  := ["-"] DIGITS ["." DIGITS] [("e" | "E") ["+" | "-"] DIGITS]
//! ```
//!
//! Keywords (`and`, `or`, `not`, `fact.`, `class`, `identity`, `agent`) are case-insensitive.
//! Precedence is `not` > `and` > `or`; `and` and `or` group left to right. Spaces around
//! operators are optional (`fact.cpus>=4`). A word (a fact path, a class) runs until
//! whitespace, a parenthesis, `=`, `<`, `>`, `!`, `&&` or `||`. A bare value runs until
//! whitespace, a parenthesis, `&&` or `||`, and is not `and` or `or` (quote those). Quoted
//! strings take backslash escapes (`\"`, `\\`, `\n`, `\t`, `\r`; any other escaped character
//! stands for itself). In `/regex/` a `\/` stands for `/`; other backslashes are kept for the
//! regex. A value written `/re/` with `=` is a regex match (as with `=~`); with `=~` a bare or
//! quoted value is the regex too. A `!=` on `class`, `identity` or `agent` is the negation of
//! `=`.
//!
//! The `choria` forms are Choria's `-S` (its `expr` language), evaluated as Choria evaluates
//! them; [`choria`] has the rules. They are written as Choria writes them: the words `with`,
//! `fact`, `include`, `matches`, `in`, `classes`, `agents`, `true`, `false` and `nil` in lower
//! case, and `STRING` takes `expr`'s escapes (`\"`, `\'`, `\\`, `\n`, `\t`, `\r`, `\a`, `\b`,
//! `\f`, `\v`, `` \` ``, `\?`; others are errors). `with('TEXT')` is a fact comparison `PATH OP VALUE`
//! when TEXT holds exactly one operator (`=>` and `=<` too), compared as `-F` compares; else
//! `/REGEX/` is a class regex and a name is `class = NAME or agent = NAME`. A `choria` comparison (`CMP`,
//! `matches`, `in`) directly after `not` or `!` is an error: Choria applies `not` to its left
//! operand alone, so write `not (fact('x') == 1)`. Every other function, a GJSON query in a
//! path, and the rest of `expr` (arithmetic, lists, member access) are errors of kind
//! [`ParseErrorKind::Unsupported`] naming what to write instead.
//!
//! Nesting (parentheses and `not`) is limited to [`MAX_DEPTH`] levels, so an expression from
//! the network cannot exhaust the stack. Errors carry the byte position where parsing failed;
//! [`ParseError::render`] draws a caret under it.

use std::fmt;
use std::str::FromStr;

use super::{
    FactMatcher, FactOp, FilterError, NameMatcher, NodeView, Pattern, build_regex, lookup,
};

pub mod choria;

pub use choria::{CompareOp, ContainsForm, Literal};

#[cfg(test)]
mod tests;

/// The deepest nesting of parentheses and `not` an expression may have.
pub const MAX_DEPTH: usize = 64;

/// A parsed compound expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every operand holds (two or more operands).
    And(Vec<Expr>),
    /// Some operand holds (two or more operands).
    Or(Vec<Expr>),
    /// The operand does not hold.
    Not(Box<Expr>),
    /// A fact comparison.
    Fact {
        /// Dotted path into the node's facts.
        path: String,
        /// The operator.
        op: FactOp,
        /// The value compared against; for [`FactOp::Match`], the regex (without slashes).
        value: String,
    },
    /// The node has a class equal to the literal, or matching the regex.
    Class(Pattern),
    /// The node's identity equals the literal, or matches the regex.
    Identity(Pattern),
    /// The node has this agent.
    Agent(String),
    /// Choria's `fact('PATH') OP LITERAL`: a comparison with JSON's types (see [`choria`]).
    Compare {
        /// Dotted path into the node's facts.
        path: String,
        /// The operator.
        op: CompareOp,
        /// The literal compared against.
        value: Literal,
    },
    /// Choria's `fact('PATH') matches 'RE'`: a string fact matching the regex.
    Matches {
        /// Dotted path into the node's facts.
        path: String,
        /// The regex.
        pattern: String,
    },
    /// Choria's bare `fact('PATH')`: the fact is the boolean `true`.
    Truthy(String),
    /// Choria's `include(fact('PATH'), LITERAL)` and `LITERAL in fact('PATH')`.
    Contains {
        /// Dotted path into the node's facts.
        path: String,
        /// The element (or, for `in`, the key) looked for.
        value: Literal,
        /// Which of the two forms.
        form: ContainsForm,
    },
}

/// What kind of problem a [`ParseError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Nothing but whitespace.
    Empty,
    /// A token where it cannot be (`or` at the start, two terms without `and`/`or`, …).
    Unexpected,
    /// A term, operator or value is missing.
    Missing,
    /// A `(` never closed, or a `)` never opened.
    Unbalanced,
    /// A quoted string or `/regex/` without its closing quote or slash.
    Unterminated,
    /// A valid token that does not fit (a `/regex/` with `<`, an agent regex, …).
    Invalid,
    /// More than [`MAX_DEPTH`] levels of parentheses and `not`.
    TooDeep,
    /// A form of Choria's language Muster does not evaluate (`semver()`, data plugins, GJSON
    /// queries, arithmetic…); the message says what to write instead.
    Unsupported,
}

/// A compound expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// What kind of problem it is.
    pub kind: ParseErrorKind,
    /// What was expected and what was found.
    pub message: String,
    /// Byte offset (from 0) in the source where it went wrong.
    pub position: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ParseErrorKind::Empty {
            f.write_str(&self.message)
        } else {
            write!(f, "{} at position {}", self.message, self.position)
        }
    }
}

impl ParseError {
    fn new(kind: ParseErrorKind, position: usize, message: impl Into<String>) -> Self {
        ParseError {
            kind,
            message: message.into(),
            position,
        }
    }

    /// Two lines (no trailing newline): `source`, with control characters shown as spaces, and
    /// a caret under the error's position.
    ///
    /// ```text
    /// fact.role = and class = web
    ///             ^
    /// ```
    pub fn render(&self, source: &str) -> String {
        render_caret(source, self.position)
    }
}

/// `source` on one line and a caret under the character at byte `position`.
pub(crate) fn render_caret(source: &str, position: usize) -> String {
    let mut position = position.min(source.len());
    while !source.is_char_boundary(position) {
        position = position.saturating_sub(1);
    }
    let line: String = source
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let column = source[..position].chars().count();
    format!("{line}\n{}^", " ".repeat(column))
}

/// Parses a compound expression.
///
/// ```
/// use muster_proto::filter::compound::{self, Expr};
///
/// let expr = compound::parse("cpus>=4 and not (canary or identity = /^db/)")?;
/// assert!(matches!(expr, Expr::And(_)));
/// assert_eq!(
///     expr.to_string(),
///     "fact.cpus >= 4 and not (class = canary or identity = /^db/)"
/// );
///
/// let err = compound::parse("fact.role = ").unwrap_err();
/// assert_eq!(err.to_string(), "expected a value after '=' at position 12");
/// assert_eq!(err.render("fact.role = "), "fact.role = \n            ^");
/// # Ok::<(), compound::ParseError>(())
/// ```
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        src: source,
        pos: 0,
        depth: 0,
    };
    parser.skip_ws();
    if parser.at_end() {
        return Err(ParseError::new(
            ParseErrorKind::Empty,
            parser.pos,
            "empty expression",
        ));
    }
    let expr = parser.parse_or(None)?;
    parser.skip_ws();
    if parser.at_end() {
        Ok(expr)
    } else if parser.rest().starts_with(')') {
        Err(ParseError::new(
            ParseErrorKind::Unbalanced,
            parser.pos,
            "unbalanced parenthesis: ')' without a matching '('",
        ))
    } else {
        Err(parser.unexpected_after_term("the end of the expression"))
    }
}

impl FromStr for Expr {
    type Err = ParseError;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        parse(source)
    }
}

/// The length of the word at the start of `text`: up to whitespace, a parenthesis, an
/// operator character (`=`, `<`, `>`, `!`), `&&` or `||`.
fn word_len(text: &str) -> usize {
    run_len(text, |c| matches!(c, '=' | '<' | '>' | '!'))
}

/// The length of the bare value at the start of `text`: up to whitespace, a parenthesis,
/// `&&` or `||`.
fn bare_value_len(text: &str) -> usize {
    run_len(text, |_| false)
}

fn run_len(text: &str, also_stops: impl Fn(char) -> bool) -> usize {
    for (i, c) in text.char_indices() {
        if c.is_whitespace()
            || c == '('
            || c == ')'
            || also_stops(c)
            || text[i..].starts_with("&&")
            || text[i..].starts_with("||")
        {
            return i;
        }
    }
    text.len()
}

/// Whether a word is `and` or `or`, which a bare value cannot be.
fn is_connective(word: &str) -> bool {
    word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or")
}

/// A value as written.
enum Value {
    /// Bare or quoted.
    Text(String),
    /// `/regex/`, slashes removed.
    Regex(String),
}

/// Which keyword atom.
#[derive(Clone, Copy)]
enum Keyword {
    Class,
    Identity,
    Agent,
}

impl Keyword {
    fn name(self) -> &'static str {
        match self {
            Keyword::Class => "class",
            Keyword::Identity => "identity",
            Keyword::Agent => "agent",
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos = self
            .pos
            .saturating_add(rest.len().saturating_sub(rest.trim_start().len()));
    }

    /// The word at the current position (possibly empty).
    fn word(&self) -> &'a str {
        let rest = self.rest();
        &rest[..word_len(rest)]
    }

    /// The token at `pos`, quoted for a message, or `None` at the end.
    fn found_at(&self, pos: usize) -> Option<String> {
        let rest = &self.src[pos..];
        let first = rest.chars().next()?;
        let len = if let Some((_, len)) = FactOp::at_start(rest) {
            len
        } else if rest.starts_with("&&") || rest.starts_with("||") {
            2
        } else {
            match word_len(rest) {
                0 => first.len_utf8(),
                len => len,
            }
        };
        let token = &rest[..len];
        Some(match token.char_indices().nth(40) {
            Some((cut, _)) => format!("'{}…'", &token[..cut]),
            None => format!("'{token}'"),
        })
    }

    /// "expected {what}{after}", naming what was found instead (if anything).
    fn expected(&self, kind: ParseErrorKind, what: &str) -> ParseError {
        let message = match self.found_at(self.pos) {
            Some(found) => format!("{what}, found {found}"),
            None => what.to_string(),
        };
        ParseError::new(kind, self.pos, message)
    }

    /// The error for a token where a term should start.
    fn expected_term(&self, after: Option<&str>) -> ParseError {
        let rest = self.rest();
        match after {
            Some("(") if rest.starts_with(')') => {
                ParseError::new(ParseErrorKind::Missing, self.pos, "empty parentheses")
            }
            Some(after) => self.expected(
                ParseErrorKind::Missing,
                &format!("expected a term after '{after}'"),
            ),
            None if rest.starts_with(')') => ParseError::new(
                ParseErrorKind::Unbalanced,
                self.pos,
                "unbalanced parenthesis: ')' without a matching '('",
            ),
            None => match self.found_at(self.pos) {
                Some(found) => ParseError::new(
                    ParseErrorKind::Unexpected,
                    self.pos,
                    format!(
                        "unexpected {found} (expected a class, a fact comparison, 'not' or '(')"
                    ),
                ),
                None => ParseError::new(ParseErrorKind::Empty, self.pos, "empty expression"),
            },
        }
    }

    /// The error for a token after a complete term that is neither `and`, `or` nor `closer`.
    fn unexpected_after_term(&self, closer: &str) -> ParseError {
        let found = self.found_at(self.pos).unwrap_or_default();
        ParseError::new(
            ParseErrorKind::Unexpected,
            self.pos,
            format!("unexpected {found} (expected 'and', 'or' or {closer})"),
        )
    }

    /// One more level of nesting, starting at `pos`.
    fn enter(&mut self, pos: usize) -> Result<(), ParseError> {
        self.depth = self.depth.saturating_add(1);
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                ParseErrorKind::TooDeep,
                pos,
                format!(
                    "expression nested too deeply (more than {MAX_DEPTH} levels of parentheses and 'not')"
                ),
            ));
        }
        Ok(())
    }

    /// After whitespace: `||`/`or` (when `or`) or `&&`/`and`, as written.
    fn connective(&mut self, or: bool) -> Option<&'a str> {
        self.skip_ws();
        let rest = self.rest();
        let (symbol, word) = if or { ("||", "or") } else { ("&&", "and") };
        let len = if rest.starts_with(symbol) {
            2
        } else if self.word().eq_ignore_ascii_case(word) {
            word.len()
        } else {
            return None;
        };
        self.pos = self.pos.saturating_add(len);
        Some(&rest[..len])
    }

    fn parse_or(&mut self, after: Option<&str>) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_and(after)?];
        while let Some(or) = self.connective(true) {
            items.push(self.parse_and(Some(or))?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self, after: Option<&str>) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_unary(after)?];
        while let Some(and) = self.connective(false) {
            items.push(self.parse_unary(Some(and))?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn parse_unary(&mut self, after: Option<&str>) -> Result<Expr, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.rest();
        let len = if rest.starts_with('!') && !rest.starts_with("!=") {
            1
        } else if self.word().eq_ignore_ascii_case("not") {
            3
        } else {
            return self.parse_primary(after);
        };
        self.enter(start)?;
        self.pos = self.pos.saturating_add(len);
        let inner = self.parse_unary(Some(&rest[..len]))?;
        self.depth = self.depth.saturating_sub(1);
        Ok(Expr::Not(Box::new(inner)))
    }

    fn parse_primary(&mut self, after: Option<&str>) -> Result<Expr, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.rest();
        match self.peek_char() {
            None => Err(self.expected_term(after)),
            Some('(') => {
                self.enter(start)?;
                self.pos = self.pos.saturating_add(1);
                let inner = self.parse_or(Some("("))?;
                self.skip_ws();
                match self.peek_char() {
                    None => Err(ParseError::new(
                        ParseErrorKind::Unbalanced,
                        start,
                        "unbalanced parenthesis: this '(' is never closed",
                    )),
                    Some(')') => {
                        self.pos = self.pos.saturating_add(1);
                        self.depth = self.depth.saturating_sub(1);
                        Ok(inner)
                    }
                    Some(_) => Err(self.unexpected_after_term("')'")),
                }
            }
            Some('"' | '\'') => {
                let name = self.lex_quoted()?;
                if let Some(negated) = self.take_in() {
                    // Choria's `'name' in classes`: the string read again, strictly.
                    let after_in = self.pos;
                    self.pos = start;
                    let value = self.lex_string("")?;
                    self.pos = after_in;
                    return self.in_form(Literal::String(value), negated, start, after);
                }
                self.atom_after_name(&name, start, true)
            }
            Some('/') => Ok(Expr::Class(Pattern::Regex(self.lex_regex()?))),
            Some(_) => {
                let word = self.word();
                if word.is_empty()
                    || is_connective(word)
                    || rest.starts_with("&&")
                    || rest.starts_with("||")
                {
                    return Err(self.expected_term(after));
                }
                let call = self.at_call(word);
                self.pos = self.pos.saturating_add(word.len());
                if call {
                    return self.call(word, start, after);
                }
                if let Some(negated) = self.take_in() {
                    let value = Self::word_literal(word, start)?;
                    return self.in_form(value, negated, start, after);
                }
                self.atom_after_name(word, start, false)
            }
        }
    }

    /// An atom that starts with a word or (`quoted`) a quoted string, already consumed.
    fn atom_after_name(
        &mut self,
        name: &str,
        start: usize,
        quoted: bool,
    ) -> Result<Expr, ParseError> {
        self.skip_ws();
        let op_pos = self.pos;
        let op = FactOp::at_start(self.rest());
        if quoted {
            return match op {
                None => Ok(Expr::Class(Pattern::Literal(name.to_string()))),
                Some(_) if name.is_empty() => Err(ParseError::new(
                    ParseErrorKind::Missing,
                    start,
                    "expected a fact name, found an empty string",
                )),
                Some((op, len)) => self.fact_atom(name, op, len),
            };
        }
        let keyword = if name.eq_ignore_ascii_case("class") {
            Some(Keyword::Class)
        } else if name.eq_ignore_ascii_case("identity") {
            Some(Keyword::Identity)
        } else if name.eq_ignore_ascii_case("agent") {
            Some(Keyword::Agent)
        } else {
            None
        };
        if let Some(keyword) = keyword {
            let Some((op, len)) = op else {
                return Err(self.expected(
                    ParseErrorKind::Missing,
                    &format!("expected '=' after '{}'", keyword.name()),
                ));
            };
            return self.keyword_atom(keyword, op, len, op_pos);
        }
        let fact_path = name
            .get(..5)
            .filter(|prefix| prefix.eq_ignore_ascii_case("fact."))
            .map(|_| &name[5..]);
        match (fact_path, op) {
            (Some(""), _) => Err(ParseError::new(
                ParseErrorKind::Missing,
                start.saturating_add(5),
                "expected a fact name after 'fact.'",
            )),
            (Some(_), None) => Err(self.expected(
                ParseErrorKind::Missing,
                &format!("expected an operator after '{name}'"),
            )),
            (Some(path), Some((op, len))) => self.fact_atom(path, op, len),
            (None, Some((op, len))) => self.fact_atom(name, op, len),
            (None, None) => Ok(Expr::Class(Pattern::Literal(name.to_string()))),
        }
    }

    /// `PATH OP VALUE` with the operator (`len` bytes) at the current position.
    fn fact_atom(&mut self, path: &str, op: FactOp, len: usize) -> Result<Expr, ParseError> {
        let op_pos = self.pos;
        let spelling = &self.rest()[..len];
        self.pos = self.pos.saturating_add(len);
        let (op, value) = match self.parse_value(spelling)? {
            Value::Text(text) => (op, text),
            Value::Regex(pattern) if matches!(op, FactOp::Eq | FactOp::Match) => {
                (FactOp::Match, pattern)
            }
            Value::Regex(_) => {
                return Err(ParseError::new(
                    ParseErrorKind::Invalid,
                    op_pos,
                    format!("a /regex/ value goes with '=~' or '=', not '{spelling}'"),
                ));
            }
        };
        Ok(Expr::Fact {
            path: path.to_string(),
            op,
            value,
        })
    }

    /// `class|identity|agent OP VALUE` with the operator (`len` bytes) at `op_pos`.
    fn keyword_atom(
        &mut self,
        keyword: Keyword,
        op: FactOp,
        len: usize,
        op_pos: usize,
    ) -> Result<Expr, ParseError> {
        let spelling = &self.rest()[..len];
        let allowed = match keyword {
            Keyword::Agent => "'=' or '!='",
            _ => "'=', '!=' or '=~'",
        };
        let negate = match (keyword, op) {
            (_, FactOp::Eq) | (Keyword::Class | Keyword::Identity, FactOp::Match) => false,
            (_, FactOp::Ne) => true,
            _ => {
                return Err(ParseError::new(
                    ParseErrorKind::Invalid,
                    op_pos,
                    format!("'{}' takes {allowed}, not '{spelling}'", keyword.name()),
                ));
            }
        };
        self.pos = self.pos.saturating_add(len);
        let value_pos = {
            self.skip_ws();
            self.pos
        };
        let value = self.parse_value(spelling)?;
        let pattern = match (value, op) {
            (Value::Regex(pattern), _) | (Value::Text(pattern), FactOp::Match) => {
                Pattern::Regex(pattern)
            }
            (Value::Text(name), _) => Pattern::Literal(name),
        };
        let atom = match (keyword, pattern) {
            (Keyword::Class, pattern) => Expr::Class(pattern),
            (Keyword::Identity, pattern) => Expr::Identity(pattern),
            (Keyword::Agent, Pattern::Literal(name)) => Expr::Agent(name),
            (Keyword::Agent, Pattern::Regex(_)) => {
                return Err(ParseError::new(
                    ParseErrorKind::Invalid,
                    value_pos,
                    "'agent' takes a name, not a /regex/",
                ));
            }
        };
        Ok(if negate {
            Expr::Not(Box::new(atom))
        } else {
            atom
        })
    }

    /// The value after the operator `spelling`.
    fn parse_value(&mut self, spelling: &str) -> Result<Value, ParseError> {
        self.skip_ws();
        let rest = self.rest();
        match self.peek_char() {
            Some('"' | '\'') => Ok(Value::Text(self.lex_quoted()?)),
            Some('/') => Ok(Value::Regex(self.lex_regex()?)),
            _ => {
                let len = bare_value_len(rest);
                if len == 0 || is_connective(&rest[..len]) {
                    return Err(self.expected(
                        ParseErrorKind::Missing,
                        &format!("expected a value after '{spelling}'"),
                    ));
                }
                self.pos = self.pos.saturating_add(len);
                Ok(Value::Text(rest[..len].to_string()))
            }
        }
    }

    /// A quoted string at the current position, escapes resolved.
    fn lex_quoted(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut chars = self.rest().char_indices();
        let Some((_, quote)) = chars.next() else {
            return Err(self.expected(ParseErrorKind::Missing, "expected a quoted string"));
        };
        let mut text = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => text.push('\n'),
                    Some((_, 't')) => text.push('\t'),
                    Some((_, 'r')) => text.push('\r'),
                    Some((_, escaped)) => text.push(escaped),
                    None => break,
                },
                c if c == quote => {
                    self.pos = self.pos.saturating_add(i.saturating_add(c.len_utf8()));
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

    /// A `/regex/` at the current position, `\/` resolved; it must end a token.
    fn lex_regex(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut chars = self.rest().char_indices().skip(1);
        let mut pattern = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '/')) => pattern.push('/'),
                    Some((_, escaped)) => {
                        pattern.push('\\');
                        pattern.push(escaped);
                    }
                    None => break,
                },
                '/' => {
                    self.pos = self.pos.saturating_add(i.saturating_add(1));
                    let after = self.rest();
                    let ends = after.is_empty()
                        || after.starts_with(|c: char| c.is_whitespace() || c == '(' || c == ')')
                        || after.starts_with("&&")
                        || after.starts_with("||");
                    if !ends {
                        return Err(self.expected(
                            ParseErrorKind::Invalid,
                            "expected a space, ')' or the end after a /regex/ \
                             (quote a value that starts with '/', e.g. \"/var/log\")",
                        ));
                    }
                    return Ok(pattern);
                }
                c => pattern.push(c),
            }
        }
        Err(ParseError::new(
            ParseErrorKind::Unterminated,
            start,
            "unterminated /regex/: no closing /",
        ))
    }
}

/// Writes `text` as a double-quoted string the parser reads back.
fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Writes a value bare when it reads back the same, quoted otherwise.
fn write_value(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let bare = !text.is_empty()
        && bare_value_len(text) == text.len()
        && !text.starts_with(['"', '\'', '/'])
        && !is_connective(text);
    if bare {
        f.write_str(text)
    } else {
        write_quoted(f, text)
    }
}

/// The `/…/` spelling of a regex, when the parser reads it back as the same pattern.
fn slashed(pattern: &str) -> Option<String> {
    let mut out = String::from("/");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('/') | None => return None,
                Some(escaped) => {
                    out.push('\\');
                    out.push(escaped);
                }
            },
            '/' => out.push_str("\\/"),
            c => out.push(c),
        }
    }
    out.push('/');
    Some(out)
}

/// Writes `LHS = value`, `LHS = /re/` or `LHS =~ "re"`.
fn write_pattern(f: &mut fmt::Formatter<'_>, lhs: &str, pattern: &Pattern) -> fmt::Result {
    match pattern {
        Pattern::Literal(name) => {
            write!(f, "{lhs} = ")?;
            write_value(f, name)
        }
        Pattern::Regex(pattern) => match slashed(pattern) {
            Some(slashed) => write!(f, "{lhs} = {slashed}"),
            None => {
                write!(f, "{lhs} =~ ")?;
                write_quoted(f, pattern)
            }
        },
    }
}

/// Prints the expression in the compound language, fully explicit (`fact.`, `class =`), with
/// the parentheses needed for [`parse`] to give back an equal [`Expr`].
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn operand(f: &mut fmt::Formatter<'_>, expr: &Expr, parens: bool) -> fmt::Result {
            if parens {
                write!(f, "({expr})")
            } else {
                write!(f, "{expr}")
            }
        }
        match self {
            Expr::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    operand(f, item, matches!(item, Expr::Or(_)))?;
                }
                Ok(())
            }
            Expr::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    operand(f, item, matches!(item, Expr::Or(_) | Expr::And(_)))?;
                }
                Ok(())
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                // Choria's comparisons take parentheses after `not` (see [`choria`]).
                let parens = matches!(
                    **inner,
                    Expr::Or(_)
                        | Expr::And(_)
                        | Expr::Compare { .. }
                        | Expr::Matches { .. }
                        | Expr::Contains {
                            form: ContainsForm::In,
                            ..
                        }
                );
                operand(f, inner, parens)
            }
            Expr::Fact { path, op, value } => {
                if !path.is_empty() && word_len(path) == path.len() {
                    write!(f, "fact.{path}")?;
                } else {
                    write_quoted(f, path)?;
                }
                write!(f, " {op} ")?;
                if *op == FactOp::Match {
                    match slashed(value) {
                        Some(slashed) => f.write_str(&slashed),
                        None => write_quoted(f, value),
                    }
                } else {
                    write_value(f, value)
                }
            }
            Expr::Class(pattern) => write_pattern(f, "class", pattern),
            Expr::Identity(pattern) => write_pattern(f, "identity", pattern),
            Expr::Agent(name) => {
                f.write_str("agent = ")?;
                write_value(f, name)
            }
            Expr::Compare { path, op, value } => {
                f.write_str("fact(")?;
                write_quoted(f, path)?;
                write!(f, ") {op} {value}")
            }
            Expr::Matches { path, pattern } => {
                f.write_str("fact(")?;
                write_quoted(f, path)?;
                f.write_str(") matches ")?;
                write_quoted(f, pattern)
            }
            Expr::Truthy(path) => {
                f.write_str("fact(")?;
                write_quoted(f, path)?;
                f.write_str(")")
            }
            Expr::Contains {
                path,
                value,
                form: ContainsForm::Include,
            } => {
                f.write_str("include(fact(")?;
                write_quoted(f, path)?;
                write!(f, "), {value})")
            }
            Expr::Contains {
                path,
                value,
                form: ContainsForm::In,
            } => {
                write!(f, "{value} in fact(")?;
                write_quoted(f, path)?;
                f.write_str(")")
            }
        }
    }
}

/// A compound expression ready to match nodes: regexes compiled, so matching never fails.
#[derive(Debug, Clone)]
pub struct CompiledExpr(Node);

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Fact(FactMatcher),
    Class(NameMatcher),
    Identity(NameMatcher),
    Agent(String),
    Compare {
        path: String,
        op: CompareOp,
        value: choria::Scalar,
    },
    Matches {
        path: String,
        regex: regex::Regex,
    },
    Truthy(String),
    Contains {
        path: String,
        value: choria::Scalar,
        form: ContainsForm,
    },
}

impl Expr {
    /// Compiles the expression's regexes.
    pub fn compile(&self) -> Result<CompiledExpr, FilterError> {
        self.compile_node().map(CompiledExpr)
    }

    fn compile_node(&self) -> Result<Node, FilterError> {
        let all = |items: &[Expr]| -> Result<Vec<Node>, FilterError> {
            items.iter().map(Expr::compile_node).collect()
        };
        Ok(match self {
            Expr::And(items) => Node::And(all(items)?),
            Expr::Or(items) => Node::Or(all(items)?),
            Expr::Not(inner) => Node::Not(Box::new(inner.compile_node()?)),
            Expr::Fact { path, op, value } => Node::Fact(FactMatcher::new(path, *op, value)?),
            Expr::Class(pattern) => Node::Class(pattern.compile()?),
            Expr::Identity(pattern) => Node::Identity(pattern.compile()?),
            Expr::Agent(name) => Node::Agent(name.clone()),
            Expr::Compare { path, op, value } => Node::Compare {
                path: path.clone(),
                op: *op,
                value: choria::Scalar::compile(value)?,
            },
            Expr::Matches { path, pattern } => Node::Matches {
                path: path.clone(),
                regex: build_regex(pattern)?,
            },
            Expr::Truthy(path) => Node::Truthy(path.clone()),
            Expr::Contains { path, value, form } => Node::Contains {
                path: path.clone(),
                value: choria::Scalar::compile(value)?,
                form: *form,
            },
        })
    }
}

impl CompiledExpr {
    /// Whether the node satisfies the expression. A Choria form whose evaluation fails (see
    /// [`choria`]) makes the whole expression false.
    pub fn matches(&self, node: &dyn NodeView) -> bool {
        self.0.eval(node).unwrap_or(false)
    }
}

impl Node {
    /// The value, left to right, `and` and `or` stopping at the operand that decides.
    fn eval(&self, node: &dyn NodeView) -> Result<bool, choria::Fault> {
        Ok(match self {
            Node::And(items) => {
                for item in items {
                    if !item.eval(node)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Or(items) => {
                for item in items {
                    if item.eval(node)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::Not(inner) => !inner.eval(node)?,
            Node::Fact(fact) => fact.matches(node.facts()),
            Node::Class(class) => class.matches_class(node),
            Node::Identity(identity) => identity.matches_name(node.identity()),
            Node::Agent(agent) => node.has_agent(agent),
            Node::Compare { path, op, value } => {
                choria::compare(lookup(node.facts(), path), *op, value)?
            }
            Node::Matches { path, regex } => choria::matches(lookup(node.facts(), path), regex)?,
            Node::Truthy(path) => choria::truthy(lookup(node.facts(), path))?,
            Node::Contains { path, value, form } => {
                choria::contains(lookup(node.facts(), path), value, *form)?
            }
        })
    }
}
