//! The filter engine: which nodes a request is for.
//!
//! A [`Filter`] is the wire form (docs/design.md §2): identity, fact, class and agent lists plus
//! an optional compound expression (the `-S` language, see [`compound`]). [`Filter::compile`]
//! turns it into a [`CompiledFilter`] once (regexes built, identity literals hashed), which
//! then matches any number of nodes without allocating much and without ever failing.
//!
//! Semantics, in one place:
//! - a filter matches when every non-empty part matches;
//! - `identity`: any listed item matches (literal equality, or `/re/` regex);
//! - `class`: every listed item must be present on the node (a `/re/` item is present when it
//!   matches any of the node's classes);
//! - `agent`: every listed agent must be present;
//! - `fact`: every comparison must hold (see [`FactFilter`]);
//! - `compound`: the expression must evaluate to true.
//!
//! Regexes come from the network, so they are built with a size limit
//! ([`REGEX_SIZE_LIMIT`]): a pathological pattern is a [`FilterError`], never a panic.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

pub mod compound;

#[cfg(test)]
pub(crate) mod tests;

/// The largest compiled size, in bytes, of any regex in a filter. Larger patterns are errors.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A request's filter (docs/design.md §2). A filter matches when every non-empty part
/// matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Identities (any listed item); `/re/` is a regex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<String>,
    /// Fact comparisons (all must match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fact: Vec<FactFilter>,
    /// Classes (all must match); `/re/` is a regex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class: Vec<String>,
    /// Agents the node must have (all must match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent: Vec<String>,
    /// A compound expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compound: Option<String>,
}

/// One fact comparison.
///
/// Comparison rules: a missing (or `null`) fact never matches, not even with `!=`. When both
/// the fact (a JSON number, or a string that reads as a number) and `value` are numbers they
/// compare numerically; otherwise both compare as strings (the fact stringified: strings as
/// they are, booleans as `true`/`false`, numbers as their JSON text), case-sensitively. `=~`
/// is a regex match on the stringified fact; its value may be written `/re/` or bare. When the
/// fact is an array, `==`, `=~` and the ordering operators hold when any element satisfies
/// them, and `!=` holds when no element equals the value.
///
/// Boolean words: when the fact is a JSON boolean and `value` is one of Choria's boolean
/// words ([`BOOLEAN_WORDS`]: `true` `True` `TRUE` `t` `T` `1` and `false` `False` `FALSE` `f`
/// `F` `0`, the spellings Go's `strconv.ParseBool` reads), `==` holds when the word names the
/// fact's value and `!=` when it names the other one: `enabled=T`, `enabled==1` and
/// `enabled=True` match `{"enabled": true}`, `enabled!=0` too, `enabled=false` does not.
/// `true` and `false` compare as they always did (MCollective, which reads every fact as a
/// string, matches `enabled=true` the same way); the other words used to match no boolean
/// with `==`. Any other value (`yes`, `on`, `tRuE`) and the other operators compare the
/// stringified fact as above, and a string fact `"true"` is a string, not a boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactFilter {
    /// Dotted path into the node's facts.
    pub fact: String,
    /// The operator.
    pub op: FactOp,
    /// The value compared against.
    pub value: String,
}

/// A fact comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactOp {
    /// `==` (also `=`)
    #[serde(rename = "==", alias = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `=~`
    #[serde(rename = "=~")]
    Match,
}

impl FactOp {
    /// Every operator, in the order the parsers try them at one position (longest first).
    pub const ALL: [(&'static str, FactOp); 8] = [
        ("=~", FactOp::Match),
        ("==", FactOp::Eq),
        ("!=", FactOp::Ne),
        ("<=", FactOp::Le),
        (">=", FactOp::Ge),
        ("<", FactOp::Lt),
        (">", FactOp::Gt),
        ("=", FactOp::Eq),
    ];

    /// The operator's canonical spelling (`==` for equality).
    pub fn as_str(self) -> &'static str {
        match self {
            FactOp::Eq => "==",
            FactOp::Ne => "!=",
            FactOp::Lt => "<",
            FactOp::Gt => ">",
            FactOp::Le => "<=",
            FactOp::Ge => ">=",
            FactOp::Match => "=~",
        }
    }

    /// The operator spelled at the start of `text`, if any, longest spelling first:
    /// its operator and the length of its spelling in bytes.
    pub fn at_start(text: &str) -> Option<(FactOp, usize)> {
        FactOp::ALL
            .iter()
            .find(|(spelling, _)| text.starts_with(spelling))
            .map(|&(spelling, op)| (op, spelling.len()))
    }
}

impl fmt::Display for FactOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of problem a [`FilterError`] is, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterErrorKind {
    /// A fact filter (`-F`, `-W`) that is not `FACT OPERATOR VALUE`.
    FactSyntax,
    /// A regex that does not compile (bad syntax, or too large).
    Regex,
    /// A compound expression (`-S`) that does not parse; `position` says where.
    Compound,
}

/// A filter that could not be parsed or compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// What was wrong.
    pub message: String,
    /// What kind of problem it is.
    pub kind: FilterErrorKind,
    /// For compound expressions: the byte offset (from 0) in the expression where it went wrong.
    pub position: Option<usize>,
}

impl FilterError {
    /// An error of this kind, without a position.
    pub fn new(kind: FilterErrorKind, message: impl Into<String>) -> Self {
        FilterError {
            message: message.into(),
            kind,
            position: None,
        }
    }

    /// When the error has a position: `source` (the compound expression) with a caret line
    /// under the position, as [`compound::ParseError::render`] draws it.
    pub fn render(&self, source: &str) -> Option<String> {
        self.position
            .map(|position| compound::render_caret(source, position))
    }
}

impl From<compound::ParseError> for FilterError {
    fn from(err: compound::ParseError) -> Self {
        FilterError {
            message: err.to_string(),
            kind: FilterErrorKind::Compound,
            position: Some(err.position),
        }
    }
}

/// What a filter looks at on a node.
pub trait NodeView {
    /// The node's identity.
    fn identity(&self) -> &str;
    /// The node's facts, a JSON object (nested objects are addressed by dotted paths).
    fn facts(&self) -> &serde_json::Value;
    /// The node's classes.
    fn classes(&self) -> &[String];
    /// Whether the node has this agent.
    fn has_agent(&self, agent: &str) -> bool;
}

/// The earliest operator in `text`: its byte position, operator and spelling length.
/// At the earliest position the longest spelling wins (`=~`, `==`, `!=`, `<=`, `>=`, then
/// `<`, `>`, `=`).
fn find_operator(text: &str) -> Option<(usize, FactOp, usize)> {
    text.char_indices()
        .filter(|(_, c)| matches!(c, '=' | '!' | '<' | '>'))
        .find_map(|(i, _)| FactOp::at_start(&text[i..]).map(|(op, len)| (i, op, len)))
}

/// Whether `text` is written `/…/` (at least the two slashes).
fn is_slashed(text: &str) -> bool {
    text.len() >= 2 && text.starts_with('/') && text.ends_with('/')
}

const FACT_FORM: &str = "expected FACT OPERATOR VALUE, e.g. os.family=Debian or cpus>=4; \
                         operators: == = != < > <= >= =~";

impl FactFilter {
    /// Parses `-F` syntax: `os.family=Debian`, `cpus>=4`, `kernel=~/^6\./`.
    ///
    /// The operator is the earliest one in the text (the longest spelling at that position);
    /// the fact name before it and the value after it are trimmed and must not be empty. As in
    /// MCollective, `fact=/re/` (with `=` or `==`) is a regex match, the same as `fact=~/re/`.
    ///
    /// ```
    /// use muster_proto::{FactFilter, FactOp};
    ///
    /// let filter = FactFilter::parse("cpus>=4")?;
    /// assert_eq!((filter.fact.as_str(), filter.op, filter.value.as_str()), ("cpus", FactOp::Ge, "4"));
    /// assert_eq!(FactFilter::parse("kernel=/^6/")?.op, FactOp::Match);
    /// assert!(FactFilter::parse("cpus").is_err());
    /// # Ok::<(), muster_proto::FilterError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let invalid = |why: &str| {
            FilterError::new(
                FilterErrorKind::FactSyntax,
                format!("invalid fact filter '{text}': {why} ({FACT_FORM})"),
            )
        };
        let (position, op, len) = find_operator(text).ok_or_else(|| invalid("no operator"))?;
        let fact = text[..position].trim();
        let value = text[position.saturating_add(len)..].trim();
        if fact.is_empty() {
            return Err(invalid("the fact name is empty"));
        }
        if value.is_empty() {
            return Err(invalid("the value is empty"));
        }
        let op = if op == FactOp::Eq && is_slashed(value) {
            FactOp::Match
        } else {
            op
        };
        Ok(FactFilter {
            fact: fact.to_string(),
            op,
            value: value.to_string(),
        })
    }

    /// Compiles the comparison (its regex, its numeric value) for matching many nodes.
    fn compile(&self) -> Result<FactMatcher, FilterError> {
        let pattern = if self.op == FactOp::Match && is_slashed(&self.value) {
            &self.value[1..self.value.len().saturating_sub(1)]
        } else {
            &self.value
        };
        FactMatcher::new(&self.fact, self.op, pattern)
    }
}

/// Prints `-F` syntax (`fact==value`), which [`FactFilter::parse`] reads back.
impl fmt::Display for FactFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.fact, self.op, self.value)
    }
}

impl Filter {
    /// Whether every part is empty (matches every node).
    pub fn is_empty(&self) -> bool {
        self.identity.is_empty()
            && self.fact.is_empty()
            && self.class.is_empty()
            && self.agent.is_empty()
            && self.compound.is_none()
    }

    /// Adds the terms of a `-W` string: facts (with an operator) and classes, space separated.
    ///
    /// A token written `/re/` is a class regex; otherwise a token containing an operator is a
    /// fact filter ([`FactFilter::parse`]) and any other token a class. On error nothing is
    /// added.
    pub fn add_with(&mut self, text: &str) -> Result<(), FilterError> {
        let mut facts = Vec::new();
        let mut classes = Vec::new();
        for token in text.split_whitespace() {
            if !is_slashed(token) && find_operator(token).is_some() {
                facts.push(FactFilter::parse(token)?);
            } else {
                classes.push(token.to_string());
            }
        }
        self.fact.extend(facts);
        self.class.extend(classes);
        Ok(())
    }

    /// Compiles the regexes and the compound expression once, for matching many nodes.
    ///
    /// A compound expression that is empty or only whitespace adds no condition.
    pub fn compile(&self) -> Result<CompiledFilter, FilterError> {
        let mut identity = IdentityMatcher::default();
        for item in &self.identity {
            match Pattern::from_item(item) {
                Pattern::Literal(name) => {
                    identity.literals.insert(name);
                }
                Pattern::Regex(pattern) => identity.regexes.push(build_regex(&pattern)?),
            }
        }
        let facts = self
            .fact
            .iter()
            .map(FactFilter::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let classes = self
            .class
            .iter()
            .map(|item| Pattern::from_item(item).compile())
            .collect::<Result<Vec<_>, _>>()?;
        let compound = match &self.compound {
            Some(text) if !text.trim().is_empty() => Some(compound::parse(text)?.compile()?),
            _ => None,
        };
        Ok(CompiledFilter {
            identity,
            facts,
            classes,
            agents: self.agent.clone(),
            compound,
        })
    }
}

/// The fact at a dotted path (`os.family`) inside nested facts.
///
/// At each level an object key equal to the whole rest of the path wins (so a top-level
/// `"os.family"` key is found as is); otherwise the path descends by its shortest
/// dot-separated prefix present at that level: an object key (which may itself contain dots)
/// or, in arrays, an index (`disks.0.size`).
pub fn lookup<'a>(facts: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut current = facts;
    let mut rest = path;
    loop {
        match current {
            serde_json::Value::Object(map) => {
                if let Some(found) = map.get(rest) {
                    return Some(found);
                }
            }
            serde_json::Value::Array(items) => {
                if let Some(index) = parse_index(rest) {
                    return items.get(index);
                }
            }
            _ => {}
        }
        // Descend by the shortest dot-ended prefix that exists at this level (a key may
        // contain dots); a bounded number of tries keeps hostile paths cheap.
        let mut next = None;
        for (dot, _) in rest.match_indices('.').take(MAX_PREFIX_TRIES) {
            let segment = &rest[..dot];
            let child = match current {
                serde_json::Value::Object(map) => map.get(segment),
                serde_json::Value::Array(items) => parse_index(segment).and_then(|i| items.get(i)),
                _ => return None,
            };
            if let Some(child) = child {
                next = Some((child, &rest[dot.saturating_add(1)..]));
                break;
            }
        }
        (current, rest) = next?;
    }
}

/// How many dot positions [`lookup`] tries at one level of the facts.
const MAX_PREFIX_TRIES: usize = 16;

/// An array index segment: plain decimal digits.
fn parse_index(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

/// Builds a regex from network input: bounded in size, an error (naming the pattern) when bad.
pub(crate) fn build_regex(pattern: &str) -> Result<Regex, FilterError> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| {
            let why = match err {
                regex::Error::CompiledTooBig(limit) => {
                    format!("the pattern is too large (compiled size limit is {limit} bytes)")
                }
                regex::Error::Syntax(text) => text
                    .lines()
                    .rev()
                    .find_map(|line| line.trim().strip_prefix("error: "))
                    .map_or_else(|| text.trim().to_string(), str::to_string),
                other => other.to_string(),
            };
            FilterError::new(
                FilterErrorKind::Regex,
                format!("invalid regex /{pattern}/: {why}"),
            )
        })
}

/// A literal name or a regex, as written in identity and class lists and in the compound
/// language.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Matches a name equal to this one.
    Literal(String),
    /// Matches names this regex matches (unanchored, like `=~`).
    Regex(String),
}

impl Pattern {
    /// A list item: `/re/` is a regex (the slashes removed), anything else a literal.
    pub fn from_item(item: &str) -> Pattern {
        if is_slashed(item) {
            Pattern::Regex(item[1..item.len().saturating_sub(1)].to_string())
        } else {
            Pattern::Literal(item.to_string())
        }
    }

    /// Builds the matcher (compiling the regex).
    pub(crate) fn compile(&self) -> Result<NameMatcher, FilterError> {
        Ok(match self {
            Pattern::Literal(name) => NameMatcher::Literal(name.clone()),
            Pattern::Regex(pattern) => NameMatcher::Regex(build_regex(pattern)?),
        })
    }
}

/// A compiled [`Pattern`].
#[derive(Debug, Clone)]
pub(crate) enum NameMatcher {
    Literal(String),
    Regex(Regex),
}

impl NameMatcher {
    /// Whether this name matches.
    pub(crate) fn matches_name(&self, name: &str) -> bool {
        match self {
            NameMatcher::Literal(literal) => literal == name,
            NameMatcher::Regex(regex) => regex.is_match(name),
        }
    }

    /// Whether any of the node's classes matches.
    pub(crate) fn matches_class(&self, node: &dyn NodeView) -> bool {
        node.classes().iter().any(|class| self.matches_name(class))
    }
}

/// Identity list: literals hashed (fast for very long lists), regexes tried in order.
#[derive(Debug, Clone, Default)]
struct IdentityMatcher {
    literals: HashSet<String>,
    regexes: Vec<Regex>,
}

impl IdentityMatcher {
    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.regexes.is_empty()
    }

    fn matches(&self, identity: &str) -> bool {
        self.literals.contains(identity) || self.regexes.iter().any(|re| re.is_match(identity))
    }
}

/// A compiled fact comparison.
#[derive(Debug, Clone)]
pub(crate) struct FactMatcher {
    path: String,
    op: FactOp,
    value: String,
    number: Option<f64>,
    /// The boolean `value` names, for `==` and `!=` on a boolean fact.
    boolean: Option<bool>,
    regex: Option<Regex>,
}

impl FactMatcher {
    /// A comparison of the fact at `path` with `value` (for `=~`, the bare pattern).
    pub(crate) fn new(path: &str, op: FactOp, value: &str) -> Result<Self, FilterError> {
        let regex = match op {
            FactOp::Match => Some(build_regex(value)?),
            _ => None,
        };
        Ok(FactMatcher {
            path: path.to_string(),
            op,
            value: value.to_string(),
            number: parse_number(value),
            boolean: boolean_word(value),
            regex,
        })
    }

    /// Whether the node's facts satisfy the comparison.
    pub(crate) fn matches(&self, facts: &serde_json::Value) -> bool {
        match lookup(facts, &self.path) {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Array(items)) => match self.op {
                FactOp::Ne => !items
                    .iter()
                    .any(|item| self.matches_scalar(item, FactOp::Eq)),
                op => items.iter().any(|item| self.matches_scalar(item, op)),
            },
            Some(value) => self.matches_scalar(value, self.op),
        }
    }

    fn matches_scalar(&self, fact: &serde_json::Value, op: FactOp) -> bool {
        if let (serde_json::Value::Bool(fact), Some(named), FactOp::Eq | FactOp::Ne) =
            (fact, self.boolean, op)
        {
            return (*fact == named) == (op == FactOp::Eq);
        }
        let (text, number): (Cow<'_, str>, Option<f64>) = match fact {
            serde_json::Value::String(s) => (Cow::Borrowed(s), parse_number(s)),
            serde_json::Value::Number(n) => (Cow::Owned(n.to_string()), n.as_f64()),
            serde_json::Value::Bool(b) => (Cow::Borrowed(if *b { "true" } else { "false" }), None),
            _ => return false,
        };
        if op == FactOp::Match {
            return self.regex.as_ref().is_some_and(|re| re.is_match(&text));
        }
        let ordering = match (number, self.number) {
            (Some(fact), Some(value)) => fact.partial_cmp(&value),
            _ => Some(text.as_ref().cmp(self.value.as_str())),
        };
        let Some(ordering) = ordering else {
            return false;
        };
        match op {
            FactOp::Eq => ordering == Ordering::Equal,
            FactOp::Ne => ordering != Ordering::Equal,
            FactOp::Lt => ordering == Ordering::Less,
            FactOp::Gt => ordering == Ordering::Greater,
            FactOp::Le => ordering != Ordering::Greater,
            FactOp::Ge => ordering != Ordering::Less,
            FactOp::Match => false,
        }
    }
}

/// Choria's boolean words (Go's `strconv.ParseBool`): what a value for a boolean fact may be
/// written as, each with the boolean it names (see [`FactFilter`]).
pub const BOOLEAN_WORDS: [(&str, bool); 12] = [
    ("true", true),
    ("True", true),
    ("TRUE", true),
    ("t", true),
    ("T", true),
    ("1", true),
    ("false", false),
    ("False", false),
    ("FALSE", false),
    ("f", false),
    ("F", false),
    ("0", false),
];

/// The boolean a value names, when it is one of [`BOOLEAN_WORDS`].
fn boolean_word(text: &str) -> Option<bool> {
    BOOLEAN_WORDS
        .iter()
        .find(|(word, _)| *word == text)
        .map(|&(_, named)| named)
}

/// A number written in decimal (`4`, `-1.5`, `2e3`); words like `inf` or `nan` are not numbers.
fn parse_number(text: &str) -> Option<f64> {
    let plausible = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if plausible {
        text.parse().ok().filter(|n: &f64| n.is_finite())
    } else {
        None
    }
}

/// A filter ready to match nodes.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    identity: IdentityMatcher,
    facts: Vec<FactMatcher>,
    classes: Vec<NameMatcher>,
    agents: Vec<String>,
    compound: Option<compound::CompiledExpr>,
}

impl CompiledFilter {
    /// Whether the node matches.
    pub fn matches(&self, node: &dyn NodeView) -> bool {
        (self.identity.is_empty() || self.identity.matches(node.identity()))
            && self.agents.iter().all(|agent| node.has_agent(agent))
            && self.classes.iter().all(|class| class.matches_class(node))
            && self.facts.iter().all(|fact| fact.matches(node.facts()))
            && self.compound.as_ref().is_none_or(|expr| expr.matches(node))
    }
}
