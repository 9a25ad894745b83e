//! Action policies in MCollective's actionpolicy format: one file per agent,
//! `<directory>/<agent>.policy`, and an optional `<directory>/groups` naming groups of callers.
//!
//! ```text
//! # comments and blank lines are ignored
//! policy default deny
//! allow<TAB>alice bob<TAB>*<TAB>*<TAB>*
//! allow<TAB>ci<TAB>status restart<TAB>role=web cpus>=4<TAB>nginx
//! deny<TAB>/^contractor-/<TAB>*<TAB>*<TAB>*
//! allow<TAB>*<TAB>status<TAB>role=web and !canary<TAB>*
//! ```
//!
//! (`<TAB>` stands for a tab character.) A rule is `allow|deny  CALLERS  ACTIONS  FACTS
//! [CLASSES]`, its columns separated by tabs (one or more), starting at the line's first
//! character. Callers and actions are `*` or space-separated lists; a caller may be `/regex/`
//! or a group of the groups file. Facts are `*` or space-separated comparisons that must all
//! hold (`role=web cpus>=4`); classes are `*` or classes the node must all have. Either column
//! may instead be a compound filter — MCollective calls a column compound when a word starts
//! with `!` or is `and`, `or` or `not`, or holds `(…)` — in which a word with a comparison is a
//! fact and any other word a class, `!`/`not` negate, and `and` and `or` bind equally, left to
//! right (the plugin evaluates the expression as Ruby). Without a classes column, the facts
//! column is always read as a compound filter, as the plugin does. The first rule that matches
//! the caller, the action and the node decides; none matching, `policy default` does (it may
//! stand anywhere; deny when the file does not say).
//!
//! A word of a compound column may also be a data function, MCollective's
//! `PLUGIN('QUERY').OUTPUT` compared with a value (`fact('os.family').value=/RedHat|Debian/`,
//! `fstat('/etc/hosts').size>0`), read and compared as MCollective's matcher does: numbers
//! numerically (the value read as Ruby's `Integer()` or `Float()` reads it), strings and
//! booleans with `=` and `!=` only, `=/re/` and `!=/re/` on strings. Muster answers the data
//! plugins MCollective ships that a node can back: `fact()` (`exists`, `value`,
//! `value_encoding`, over the node's facts), `agent()` (`agent`: the name, when the node has
//! the agent) and `fstat()` (everything but the local times `mtime`, `ctime` and `atime`,
//! from a stat of the named absolute path, and for `md5` a read of a regular file of at most
//! 16 MiB). Any other data function (`puppet()`, `service()`, `collective()`…), output or form
//! makes its line one not understood. A data function that cannot be answered when deciding (a
//! file that cannot be read, a number that is none) denies the request
//! ([`Decision::Undecidable`]): MCollective makes that comparison false, which `not` would turn
//! into an allow.
//!
//! The promise is that a file never allows more under Muster than under MCollective. A line
//! Muster does not understand is kept as such: a request that reaches it — past the rules
//! before it, and matching its callers and actions when those could be read — is denied, and
//! the decision says which line and why ([`Decision::NotUnderstood`]). [`Policy::problems`]
//! lists those lines for the log. docs/security.md lists where Muster is stricter than the
//! plugin, and why.

use std::collections::BTreeMap;

use muster_proto::filter::REGEX_SIZE_LIMIT;
use muster_proto::{CompiledFilter, FactFilter, Filter, NodeView};
use regex::{Regex, RegexBuilder};

mod data;

/// A line of a policy (or groups) file that cannot be used as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PolicyError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong and how to write it.
    pub message: String,
}

/// What a policy says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, by the rule on this line (`None`: by the default).
    Allow(Option<usize>),
    /// Denied, by the rule on this line (`None`: by the default).
    Deny(Option<usize>),
    /// Denied because the request reached a line that could not be understood.
    NotUnderstood {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Denied because a data function of the rule on this line could not be answered for this
    /// request (a file that could not be read, a value that cannot be compared).
    Undecidable {
        /// The 1-based line number.
        line: usize,
        /// What could not be answered, and why.
        why: String,
    },
}

impl Decision {
    /// Whether the request may run.
    pub fn allows(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// `rule on line N`, `the default` or why a line not understood denied, for the audit log
    /// and the reply.
    pub fn because(&self) -> String {
        match self {
            Decision::Allow(Some(n)) | Decision::Deny(Some(n)) => format!("rule on line {n}"),
            Decision::Allow(None) | Decision::Deny(None) => "the default".to_string(),
            Decision::NotUnderstood { line, why } => {
                format!("line {line} could not be understood, so it denies: {why}")
            }
            Decision::Undecidable { line, why } => {
                format!("line {line} could not be evaluated, so it denies: {why}")
            }
        }
    }
}

/// The groups file, `<policy directory>/groups`: `NAME CALLER CALLER…` per line, names of
/// word characters, dots and dashes, so that a policy may name a group where it names callers.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    members: BTreeMap<String, Vec<String>>,
    problems: Vec<PolicyError>,
}

fn is_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Groups {
    /// Reads a groups file. Lines the plugin skips (a bad name, no members) and a group defined
    /// twice are listed in [`Groups::problems`]; the daemon then denies every request.
    pub fn parse(text: &str) -> Groups {
        let mut groups = Groups::default();
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || raw.starts_with('#') {
                continue;
            }
            let mut words = trimmed.split_whitespace();
            let name = words.next().unwrap_or_default();
            let members: Vec<String> = words.map(String::from).collect();
            let problem = if !is_group_name(name) {
                Some(format!(
                    "{name:?} is no group name (letters, digits, _ . -)"
                ))
            } else if members.is_empty() {
                Some(format!("group {name} has no members"))
            } else if groups.members.contains_key(name) {
                Some(format!("group {name} is defined a second time"))
            } else {
                None
            };
            match problem {
                Some(message) => groups.problems.push(PolicyError {
                    line: index + 1,
                    message,
                }),
                None => {
                    groups.members.insert(name.to_string(), members);
                }
            }
        }
        groups
    }

    /// The lines that were skipped, and why.
    pub fn problems(&self) -> &[PolicyError] {
        &self.problems
    }

    fn contains(&self, group: &str, caller: &str) -> bool {
        self.members
            .get(group)
            .is_some_and(|members| members.iter().any(|m| m == caller))
    }
}

#[derive(Debug, Clone)]
enum CallerPattern {
    /// A caller, or a group of callers.
    Name(String),
    Regex(Regex),
}

/// `None` in a list: `*`.
#[derive(Debug, Clone)]
struct Scope {
    callers: Option<Vec<CallerPattern>>,
    actions: Option<Vec<String>>,
}

impl Scope {
    fn matches(&self, caller: &str, action: &str, groups: &Groups) -> bool {
        let caller_matches = self.callers.as_ref().is_none_or(|patterns| {
            patterns.iter().any(|p| match p {
                CallerPattern::Name(name) => name == caller || groups.contains(name, caller),
                CallerPattern::Regex(re) => re.is_match(caller),
            })
        });
        caller_matches
            && self
                .actions
                .as_ref()
                .is_none_or(|actions| actions.iter().any(|a| a == action))
    }
}

/// A condition on the node, from a facts or classes column.
#[derive(Debug, Clone)]
enum Cond {
    True,
    /// One fact comparison or one class (a filter of one item).
    Term(Box<CompiledFilter>),
    /// A data function and its comparison.
    Data(Box<data::Call>),
    /// Every one holds (a space-separated list).
    All(Vec<Cond>),
    Not(Box<Cond>),
    /// `first (and|or) next (and|or) …`, evaluated left to right as Ruby does: `and` and `or`
    /// bind equally.
    Chain(Box<Cond>, Vec<(Joint, Cond)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Joint {
    And,
    Or,
}

impl Cond {
    /// Whether evaluating it may read the file system.
    fn reads_files(&self) -> bool {
        match self {
            Cond::True | Cond::Term(_) => false,
            Cond::Data(call) => call.reads_files(),
            Cond::All(all) => all.iter().any(Cond::reads_files),
            Cond::Not(inner) => inner.reads_files(),
            Cond::Chain(first, rest) => {
                first.reads_files() || rest.iter().any(|(_, c)| c.reads_files())
            }
        }
    }

    /// Whether the condition holds on the node; an error when a data function it reaches
    /// cannot be answered. `and` and `or` stop at the first term that decides, which changes
    /// no answer: every term has one value.
    fn holds(&self, node: &dyn NodeView) -> Result<bool, String> {
        Ok(match self {
            Cond::True => true,
            Cond::Term(filter) => filter.matches(node),
            Cond::Data(call) => call.holds(node)?,
            Cond::All(all) => {
                for c in all {
                    if !c.holds(node)? {
                        return Ok(false);
                    }
                }
                true
            }
            Cond::Not(c) => !c.holds(node)?,
            Cond::Chain(first, rest) => {
                let mut acc = first.holds(node)?;
                for (joint, c) in rest {
                    acc = match joint {
                        Joint::And => acc && c.holds(node)?,
                        Joint::Or => acc || c.holds(node)?,
                    };
                }
                acc
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Rule {
    allow: bool,
    scope: Scope,
    facts: Cond,
    classes: Cond,
}

#[derive(Debug, Clone)]
enum Entry {
    Rule(Box<Rule>),
    /// A line not understood: it denies the requests that reach it (those in its scope, when
    /// its callers and actions could be read).
    NotUnderstood {
        why: String,
        scope: Option<Scope>,
    },
}

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    default_allow: bool,
    entries: Vec<(usize, Entry)>,
    groups: Groups,
    problems: Vec<PolicyError>,
}

/// The deepest nesting of parentheses and negations a compound column may have.
const MAX_DEPTH: usize = 64;

/// The plugin's test for a compound column (`is_compound?`): a word that starts with `!`, is
/// `not`, `and` or `or`, or holds `(` and later `)` with something between.
fn is_compound(column: &str) -> bool {
    column.split_whitespace().any(|word| {
        word.starts_with('!')
            || matches!(word, "not" | "and" | "or")
            || match (word.find('('), word.rfind(')')) {
                (Some(open), Some(close)) => close > open + 1,
                _ => false,
            }
    })
}

/// Whether a word holds a comparison as the plugin sees one: an operator character with
/// something before and after it.
fn has_comparison(word: &str) -> bool {
    word.char_indices()
        .any(|(i, c)| matches!(c, '=' | '<' | '>') && i > 0 && i + 1 < word.len())
}

fn is_slashed(word: &str) -> bool {
    word.len() >= 2 && word.starts_with('/') && word.ends_with('/')
}

fn fact_term(word: &str) -> Result<Cond, String> {
    let fact = FactFilter::parse(word).map_err(|e| e.message)?;
    Filter {
        fact: vec![fact],
        ..Filter::default()
    }
    .compile()
    .map(|f| Cond::Term(Box::new(f)))
    .map_err(|e| e.message)
}

fn class_term(word: &str) -> Result<Cond, String> {
    Filter {
        class: vec![word.to_string()],
        ..Filter::default()
    }
    .compile()
    .map(|f| Cond::Term(Box::new(f)))
    .map_err(|e| e.message)
}

/// A word of a compound column: a fact comparison when it holds one, else a class.
fn statement(word: &str) -> Result<Cond, String> {
    if word == "*" {
        return Err(
            "`*` inside a filter is a class named `*` to MCollective; write `*` \
                    alone in its column"
                .into(),
        );
    }
    if is_slashed(word) {
        if has_comparison(word) {
            return Err(format!(
                "{word}: MCollective reads a comparison in a regex as a fact; write the class \
                 regex without = < >"
            ));
        }
        return class_term(word);
    }
    if word.contains(['"', '\'']) {
        return Err(format!(
            "{word}: quoted values are not supported; write them bare"
        ));
    }
    if has_comparison(word) {
        fact_term(word)
    } else if word.contains(['=', '<', '>']) {
        Err(format!(
            "{word}: a comparison needs a fact and a value, without spaces around the operator"
        ))
    } else {
        class_term(word)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Not,
    Joint(Joint),
    Word(String),
    /// A data function call with its comparison, `fstat('/etc/hosts').size>0`.
    Call(String),
}

/// Splits a compound column the way MCollective's scanner does: parentheses, `!`, the
/// keywords, data function calls, and words (a `/regex/` inside a word may hold parentheses
/// and spaces do not).
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '!' => {
                out.push(Token::Not);
                i += 1;
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    word.push(c);
                    i += 1;
                    if c == '/' {
                        // A regex runs to its closing slash, whatever it holds but spaces.
                        loop {
                            match chars.get(i) {
                                Some('/') => {
                                    word.push('/');
                                    i += 1;
                                    break;
                                }
                                Some(&c) if !c.is_whitespace() => {
                                    word.push(c);
                                    i += 1;
                                }
                                _ => return Err(format!("{word}: a regex without its closing /")),
                            }
                        }
                    }
                }
                let keyword = match word.as_str() {
                    "and" => Some(Token::Joint(Joint::And)),
                    "or" => Some(Token::Joint(Joint::Or)),
                    "not" => Some(Token::Not),
                    _ => None,
                };
                if let Some(keyword) = keyword {
                    out.push(keyword);
                } else if chars.get(i) == Some(&'(') {
                    let (call, next) = call_text(&chars, i, word)?;
                    out.push(Token::Call(call));
                    i = next;
                } else {
                    out.push(Token::Word(word));
                }
            }
        }
    }
    Ok(out)
}

/// A data function call as MCollective's scanner reads one: `name`, then from the `(` at
/// `open` to the first `)`, spaces included, then what follows up to a space or `)` — where a
/// `/` runs to the next `/` (a regex may hold parentheses) and the word ends after it. What the
/// scanner would read across spaces or to the end of the column is an error here.
fn call_text(chars: &[char], open: usize, name: String) -> Result<(String, usize), String> {
    let mut text = name;
    let mut i = open;
    loop {
        match chars.get(i) {
            Some(&c) => {
                text.push(c);
                i += 1;
                if c == ')' {
                    break;
                }
            }
            None => return Err(format!("{text}: a data function without its )")),
        }
    }
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() || c == ')' {
            break;
        }
        if c == '(' {
            return Err(format!("{text}(: a second ( in a data function"));
        }
        text.push(c);
        i += 1;
        if c != '/' {
            continue;
        }
        let start = text.len();
        loop {
            match chars.get(i) {
                Some('/') => {
                    text.push('/');
                    i += 1;
                    if chars
                        .get(i)
                        .is_some_and(|c| !c.is_whitespace() && *c != ')')
                    {
                        return Err(format!(
                            "{text}…: MCollective ends a word at the / closing a regex; put a \
                             space or ) after it"
                        ));
                    }
                    return Ok((text, i));
                }
                Some(&c) if c.is_whitespace() => {
                    return Err(format!(
                        "{text}…: MCollective reads a / in a value to the next /, across \
                         spaces; write a regex without spaces"
                    ));
                }
                Some(&c) => {
                    text.push(c);
                    i += 1;
                    if c == '\\'
                        && let Some(&next) = chars.get(i)
                        && !next.is_whitespace()
                    {
                        text.push(next);
                        i += 1;
                    }
                }
                None => {
                    // No closing /: MCollective's word runs to the end of the column, as
                    // Muster's does, unless it holds a parenthesis.
                    if text[start..].contains(['(', ')']) {
                        return Err(format!(
                            "{text}: MCollective reads a / in a value to the next / or the end \
                             of the column, parentheses included"
                        ));
                    }
                    return Ok((text, i));
                }
            }
        }
    }
    Ok((text, i))
}

struct CompoundParser {
    tokens: Vec<Token>,
    at: usize,
}

impl CompoundParser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    /// `unary ((and|or) unary)*`
    fn expression(&mut self, depth: usize) -> Result<Cond, String> {
        let first = self.unary(depth)?;
        let mut rest = Vec::new();
        while let Some(Token::Joint(joint)) = self.tokens.get(self.at).cloned() {
            self.at += 1;
            rest.push((joint, self.unary(depth)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Cond::Chain(Box::new(first), rest)
        })
    }

    /// `(not|!) unary | ( expression ) | word`
    fn unary(&mut self, depth: usize) -> Result<Cond, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        match self.next() {
            Some(Token::Not) => Ok(Cond::Not(Box::new(self.unary(depth + 1)?))),
            Some(Token::Open) => {
                let inner = self.expression(depth + 1)?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    None => Err("a ( without its )".into()),
                    Some(other) => Err(unexpected(&other)),
                }
            }
            Some(Token::Word(word)) => statement(&word),
            Some(Token::Call(call)) => data::parse(&call).map(|c| Cond::Data(Box::new(c))),
            Some(Token::Close) => Err("a ) where a fact or class was expected".into()),
            Some(Token::Joint(_)) => Err("and/or where a fact or class was expected".into()),
            None => Err("it ends where a fact or class was expected".into()),
        }
    }
}

/// Why a token cannot follow a complete term.
fn unexpected(token: &Token) -> String {
    match token {
        Token::Word(w) if w.starts_with(['=', '<', '>']) => {
            "a space around a comparison's operator: write fact=value".into()
        }
        _ => "two terms without and/or between them".into(),
    }
}

fn compound(column: &str) -> Result<Cond, String> {
    let mut parser = CompoundParser {
        tokens: tokens(column)?,
        at: 0,
    };
    let cond = parser.expression(0)?;
    match parser.tokens.get(parser.at) {
        None => Ok(cond),
        Some(Token::Close) => Err("a ) without its (".into()),
        Some(other) => Err(unexpected(other)),
    }
}

fn column_error(name: &str, column: &str, why: String) -> String {
    format!("{name} column {column:?}: {why}")
}

/// Why a word with parentheses in a list column is refused.
fn list_call(word: &str, list: &str) -> String {
    format!(
        "{word}: parentheses in a list of {list} (MCollective reads a column as a list unless a \
         word starts with !, is and, or or not, or holds ( and ) with something between; in a \
         list this is no data function but a name that never matches: write ({word}) to call \
         one)"
    )
}

/// The facts column of a five-column rule.
fn facts_column(column: &str) -> Result<Cond, String> {
    if column == "*" {
        return Ok(Cond::True);
    }
    let fail = |why: String| column_error("facts", column, why);
    if is_compound(column) {
        return compound(column).map_err(fail);
    }
    column
        .split_whitespace()
        .map(|word| {
            if word == "*" {
                Err(
                    "`*` matches everything only alone in its column (MCollective reads `*` \
                     with anything else, a trailing space included, as a fact named `*`)"
                        .to_string(),
                )
            } else if word.contains(['(', ')']) {
                Err(list_call(word, "facts"))
            } else if !has_comparison(word) {
                Err(format!(
                    "{word} is no fact comparison (MCollective never matches a class here; \
                     put classes in the classes column)"
                ))
            } else {
                fact_term(word)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Cond::All)
        .map_err(fail)
}

/// The classes column of a five-column rule.
fn classes_column(column: &str) -> Result<Cond, String> {
    if column == "*" {
        return Ok(Cond::True);
    }
    let fail = |why: String| column_error("classes", column, why);
    if is_compound(column) {
        return compound(column).map_err(fail);
    }
    column
        .split_whitespace()
        .map(|word| {
            if word == "*" {
                Err(
                    "`*` matches everything only alone in its column (MCollective reads `*` \
                     with anything else, a trailing space or tab included, as a class named `*`)"
                        .to_string(),
                )
            } else if word.contains(['(', ')']) {
                Err(list_call(word, "classes"))
            } else if has_comparison(word) && !is_slashed(word) {
                Err(format!(
                    "{word} is a fact comparison where a class is expected (MCollective never \
                     matches it; put facts in the facts column)"
                ))
            } else {
                class_term(word)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Cond::All)
        .map_err(fail)
}

/// The facts column of a four-column rule: the plugin reads it as a compound filter.
fn facts_only_column(column: &str) -> Result<Cond, String> {
    if column == "*" {
        return Err(column_error(
            "facts",
            column,
            "a rule without a classes column has its facts read as a compound filter, where \
             MCollective takes `*` for a class named `*` (and Choria refuses the line); add a \
             fifth column `*`"
                .into(),
        ));
    }
    compound(column).map_err(|why| column_error("facts", column, why))
}

fn list_column(name: &str, column: &str) -> Result<Option<Vec<String>>, String> {
    if column == "*" {
        return Ok(None);
    }
    let words: Vec<String> = column.split_whitespace().map(String::from).collect();
    if words.is_empty() {
        return Err(column_error(name, column, "empty".into()));
    }
    if words.iter().any(|w| w == "*") {
        return Err(column_error(
            name,
            column,
            "`*` matches everyone only alone in its column (MCollective reads it with anything \
             else, a space included, as a name)"
                .into(),
        ));
    }
    Ok(Some(words))
}

fn callers_column(column: &str) -> Result<Option<Vec<CallerPattern>>, String> {
    let Some(words) = list_column("callers", column)? else {
        return Ok(None);
    };
    words
        .into_iter()
        .map(|word| {
            if !word.starts_with('/') {
                return Ok(CallerPattern::Name(word));
            }
            let pattern = word
                .strip_prefix('/')
                .and_then(|w| w.strip_suffix('/'))
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    column_error("callers", column, format!("{word}: write a regex as /re/"))
                })?;
            RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(CallerPattern::Regex)
                .map_err(|e| column_error("callers", column, format!("invalid regex {word}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The columns of a rule line after `allow`/`deny`, as the plugin's pattern
/// `^(allow|deny)\t+(.+?)\t+(.+?)\t+(.+?)(\t+(.+?))*$` splits them: runs of tabs separate, a
/// column of spaces is a column, and trailing tabs stay in the last column.
fn columns(rest: &str) -> Vec<String> {
    let mut columns: Vec<String> = rest
        .split('\t')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    if rest.ends_with('\t')
        && let Some(last) = columns.last_mut()
    {
        last.push('\t');
    }
    columns
}

/// One rule line (it starts with `allow` or `deny` and a tab).
fn rule(allow: bool, rest: &str) -> Entry {
    let columns = columns(rest);
    if !(3..=4).contains(&columns.len()) {
        return Entry::NotUnderstood {
            why: format!(
                "{} columns; a rule is allow|deny<TAB>callers<TAB>actions<TAB>facts<TAB>classes",
                columns.len() + 1
            ),
            scope: None,
        };
    }
    let scope = match (
        callers_column(&columns[0]),
        list_column("actions", &columns[1]),
    ) {
        (Ok(callers), Ok(actions)) => Scope { callers, actions },
        (Err(why), _) | (_, Err(why)) => return Entry::NotUnderstood { why, scope: None },
    };
    let node = match columns.get(3) {
        Some(classes) => {
            facts_column(&columns[2]).and_then(|facts| Ok((facts, classes_column(classes)?)))
        }
        None => facts_only_column(&columns[2]).map(|facts| (facts, Cond::True)),
    };
    match node {
        Ok((facts, classes)) => Entry::Rule(Box::new(Rule {
            allow,
            scope,
            facts,
            classes,
        })),
        Err(why) => Entry::NotUnderstood {
            why,
            scope: Some(scope),
        },
    }
}

impl Policy {
    /// Reads a policy file's text, with the callers' groups. Every line that cannot be used
    /// as written becomes a line that denies the requests reaching it, and is listed in
    /// [`Policy::problems`].
    pub fn read(text: &str, groups: &Groups) -> Policy {
        let mut defaults: Vec<(usize, Option<bool>)> = Vec::new();
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            // The plugin skips blank lines and those starting with #; an indented comment is
            // no rule to it either, and skipping it is all it does.
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            if raw.starts_with("policy") && words.first() == Some(&"policy") {
                let default = match words.as_slice() {
                    ["policy", "default", "allow"] => Some(true),
                    ["policy", "default", "deny"] => Some(false),
                    _ => {
                        problems.push(PolicyError {
                            line,
                            message: format!(
                                "{trimmed:?}: write `policy default allow` or `policy default \
                                 deny`; the default is deny"
                            ),
                        });
                        None
                    }
                };
                defaults.push((line, default));
                continue;
            }
            let entry = if let Some(rest) = raw.strip_prefix("allow\t") {
                rule(true, rest)
            } else if let Some(rest) = raw.strip_prefix("deny\t") {
                rule(false, rest)
            } else {
                let why = if raw.starts_with(char::is_whitespace) {
                    "a line that starts with a space or tab is no rule (MCollective skips it)"
                        .to_string()
                } else if words
                    .first()
                    .is_some_and(|w| matches!(*w, "allow" | "deny"))
                {
                    "the columns of a rule are separated by tabs, not spaces (MCollective \
                     skips this line)"
                        .to_string()
                } else {
                    format!(
                        "{:?}: a rule starts with allow or deny and a tab (MCollective skips \
                         this line)",
                        words.first().copied().unwrap_or_default()
                    )
                };
                Entry::NotUnderstood { why, scope: None }
            };
            if let Entry::NotUnderstood { why, .. } = &entry {
                problems.push(PolicyError {
                    line,
                    message: format!("{why}; requests that reach this line are denied"),
                });
            }
            entries.push((line, entry));
        }
        let default_allow = match defaults.as_slice() {
            [] => false,
            [(_, first), rest @ ..] => {
                if rest.iter().any(|(_, d)| d != first) {
                    let lines: Vec<String> = defaults.iter().map(|(l, _)| l.to_string()).collect();
                    problems.push(PolicyError {
                        line: defaults.last().map_or(0, |(l, _)| *l),
                        message: format!(
                            "`policy default` lines {} disagree; the default is deny",
                            lines.join(", ")
                        ),
                    });
                    false
                } else {
                    first.unwrap_or(false)
                }
            }
        };
        problems.sort_by_key(|p| p.line);
        Policy {
            default_allow,
            entries,
            groups: groups.clone(),
            problems,
        }
    }

    /// Parses a policy file's text strictly, without groups: the first line that cannot be
    /// used as written is an error. [`Policy::read`] is what a node uses.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::read(text, &Groups::default());
        match policy.problems.first() {
            Some(problem) => Err(problem.clone()),
            None => Ok(policy),
        }
    }

    /// The lines that cannot be used as written, and what each does instead.
    pub fn problems(&self) -> &[PolicyError] {
        &self.problems
    }

    /// Whether deciding may read the node's file system (a rule calls `fstat()`), so that a
    /// caller keeps the decision off threads that must not block.
    pub fn reads_files(&self) -> bool {
        self.entries.iter().any(|(_, entry)| match entry {
            Entry::Rule(rule) => rule.facts.reads_files() || rule.classes.reads_files(),
            _ => false,
        })
    }

    /// What the policy says about `caller` running `action` on `node`.
    pub fn decide(&self, caller: &str, action: &str, node: &dyn NodeView) -> Decision {
        for (line, entry) in &self.entries {
            match entry {
                Entry::Rule(rule) => {
                    if !rule.scope.matches(caller, action, &self.groups) {
                        continue;
                    }
                    // As the plugin: the facts, then the classes.
                    let node_matches = rule
                        .facts
                        .holds(node)
                        .and_then(|facts| Ok(facts && rule.classes.holds(node)?));
                    match node_matches {
                        Ok(false) => {}
                        Ok(true) if rule.allow => return Decision::Allow(Some(*line)),
                        Ok(true) => return Decision::Deny(Some(*line)),
                        Err(why) => {
                            return Decision::Undecidable { line: *line, why };
                        }
                    }
                }
                Entry::NotUnderstood { why, scope } => {
                    if scope
                        .as_ref()
                        .is_none_or(|s| s.matches(caller, action, &self.groups))
                    {
                        return Decision::NotUnderstood {
                            line: *line,
                            why: why.clone(),
                        };
                    }
                }
            }
        }
        if self.default_allow {
            Decision::Allow(None)
        } else {
            Decision::Deny(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    struct Node {
        facts: Value,
        classes: Vec<String>,
    }

    impl NodeView for Node {
        fn identity(&self) -> &str {
            "web1"
        }
        fn facts(&self) -> &Value {
            &self.facts
        }
        fn classes(&self) -> &[String] {
            &self.classes
        }
        fn has_agent(&self, _: &str) -> bool {
            true
        }
    }

    const POLICY: &str = "# service policy
policy default deny

allow\talice bob\t*\t*\t*
deny\t/^contractor-/\t*\t*\t*
allow\tci\tstatus restart\trole=web cpus>=4\tnginx
allow\t*\tstatus\trole=web and not canary\t*
allow\tcarol\tstatus\t*\t*
";

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = Policy::parse(POLICY).unwrap();
        let web = Node {
            facts: json!({"role": "web", "cpus": 8}),
            classes: vec!["nginx".into()],
        };
        let canary = Node {
            facts: json!({"role": "web", "cpus": 2}),
            classes: vec!["nginx".into(), "canary".into()],
        };
        let cases: &[(&str, &str, &Node, Decision)] = &[
            ("alice", "stop", &web, Decision::Allow(Some(4))),
            ("contractor-7", "status", &web, Decision::Deny(Some(5))),
            ("ci", "restart", &web, Decision::Allow(Some(6))),
            ("ci", "restart", &canary, Decision::Deny(None)),
            ("ci", "status", &canary, Decision::Deny(None)),
            ("dave", "status", &web, Decision::Allow(Some(7))),
            ("dave", "stop", &web, Decision::Deny(None)),
            ("carol", "status", &canary, Decision::Allow(Some(8))),
        ];
        for (caller, action, node, expected) in cases {
            assert_eq!(
                &policy.decide(caller, action, *node),
                expected,
                "{caller} {action}"
            );
        }
        assert!(Policy::parse("").unwrap().decide("a", "b", &web) == Decision::Deny(None));
        let open = Policy::parse("policy default allow\n").unwrap();
        assert!(open.decide("anyone", "anything", &web).allows());
    }

    #[test]
    fn the_shipped_examples_parse_and_say_what_their_comments_say() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
        let read =
            |name: &str| Policy::parse(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        let service = read("service.policy");
        let web = Node {
            facts: json!({"role": "web"}),
            classes: vec!["nginx".into()],
        };
        let canary = Node {
            facts: json!({"role": "web"}),
            classes: vec!["nginx".into(), "canary".into()],
        };
        assert!(service.decide("ci", "restart", &web).allows());
        assert!(!service.decide("ci", "restart", &canary).allows());
        assert!(!service.decide("ci", "stop", &web).allows());
        assert!(service.decide("alice", "stop", &canary).allows());
        assert!(service.decide("oncall", "restart", &web).allows());
        assert!(!service.decide("oncall", "restart", &canary).allows());
        let rpcutil = read("rpcutil.policy");
        assert!(rpcutil.decide("anyone", "ping", &web).allows());
        assert!(!rpcutil.decide("anyone", "daemon_stats", &web).allows());
    }

    #[test]
    fn lines_not_understood_are_named_and_deny_what_reaches_them() {
        let web = Node {
            facts: json!({"role": "web"}),
            classes: vec![],
        };
        for (text, line, needle) in [
            ("policy default maybe", 1, "policy default allow"),
            ("\nallow alice", 2, "separated by tabs"),
            ("permit\t*\t*\t*\t*", 1, "allow or deny"),
            ("allow\t/(/\t*\t*\t*", 1, "invalid regex"),
            (
                "allow\t*\t*\tnot a=comparison(\t*",
                1,
                "data function without its )",
            ),
            ("allow\t*\t*\t=x\t*", 1, "facts column"),
            ("allow\t*\t*\trole web\t*", 1, "no fact comparison"),
            ("allow\t*\t*\trole = web and x\t*", 1, "a space around"),
            ("allow\t*\t*\ta b or c\t*", 1, "two terms"),
            ("allow\t*\t*\t(role = web)\t*", 1, "parentheses in a list"),
            ("allow\t*\t*\t(role = web or x)\t*", 1, "a space around"),
            ("allow\t*\t*\t*\t(a or b\t", 1, "without its )"),
            ("allow\t*\t*\t*\t!!\t", 1, "fact or class was expected"),
            ("allow\t*\t*\t*", 1, "fifth column"),
            ("policy default allow\npolicy default deny", 2, "disagree"),
        ] {
            let err = Policy::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
            if text.starts_with("policy") {
                // A broken or disputed default denies by default; rules still decide.
                let policy = Policy::read(text, &Groups::default());
                assert_eq!(policy.decide("alice", "status", &web), Decision::Deny(None));
                continue;
            }
            let policy = Policy::read(&format!("{text}\nallow\t*\t*\t*\t*"), &Groups::default());
            let decision = policy.decide("alice", "status", &web);
            assert!(!decision.allows(), "{text:?}: {decision:?}");
        }
        let deep = format!("allow\t*\t*\t*\t{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(Policy::parse(&deep).unwrap_err().message.contains("deeper"));
        let why = Policy::read("allow alice * * *", &Groups::default())
            .decide("bob", "x", &web)
            .because();
        assert!(why.starts_with("line 1 could not be understood"), "{why}");
    }

    #[test]
    fn data_functions_are_words_of_the_compound_language() {
        let node = Node {
            facts: json!({"os": {"family": "Debian"}, "role": "web", "disks": ["sda"]}),
            classes: vec!["nginx".into()],
        };
        let decide = |column: &str| {
            Policy::parse(&format!("allow\t*\t*\t{column}\t*"))
                .map(|p| p.decide("alice", "status", &node).allows())
                .map_err(|e| e.message)
        };
        for (column, want) in [
            ("fact('os.family').value=Debian", true),
            ("fact(\"os.family\").value=Debian", true),
            ("fact('os.family').value=/RedHat|Debian/", true),
            ("fact('os.family').value=/^(Red)?Hat$/", false),
            ("!fact('os.family').value=Debian", false),
            ("not fact('os.family').value=Debian or role=web", true),
            ("(fact('a b').exists=false and role=web)", true),
            ("(fact('os.family').value=Debian)", true),
            ("fact('disks.0').value=sda and nginx", true),
            ("fstat('/').type=directory and role=web", true),
            ("FACT('role').value=web", true),
            ("fact_data('role').value=web", true),
            ("fact('os').value_encoding=application/json", true),
        ] {
            assert_eq!(decide(column), Ok(want), "{column}");
        }
        for (column, needle) in [
            (
                "fact('os').value_encoding=application/json)",
                "parentheses included",
            ),
            (
                "(fact('os').value_encoding=application/json)",
                "parentheses included",
            ),
            ("fact('os.family').value=/Red Hat/", "across"),
            ("fact('os.family').value=/Debian/x", "ends a word"),
            (
                "role=web and fact('os.family'.value=Debian",
                "without its )",
            ),
            ("fact('x')(1).value=1", "a second ("),
            ("fact('x').value = 1", "needs a comparison"),
            (
                "puppet().enabled=false or role=web",
                "no data plugin puppet",
            ),
            ("(puppet().enabled=false)", "no data plugin puppet"),
        ] {
            let err = decide(column).unwrap_err();
            assert!(err.contains(needle), "{column}: {err}");
        }
        // Not compound (nothing between the parentheses): a list, in which MCollective reads a
        // fact named `puppet().enabled`.
        let err = decide("puppet().enabled=false").unwrap_err();
        assert!(err.contains("write (puppet().enabled=false)"), "{err}");
        let err = Policy::parse("allow\t*\t*\t*\tpuppet().enabled=false").unwrap_err();
        assert!(err.message.contains("list of classes"), "{err}");
    }

    #[test]
    fn a_data_function_that_cannot_be_answered_denies_the_request() {
        let node = Node {
            facts: json!({"n": 4, "gone": null}),
            classes: vec![],
        };
        let policy = Policy::parse(
            "deny\tother\t*\tfact('gone').exists=true\t*\n\
             deny\t*\t*\tnot fact('n').value=four\t*\n\
             allow\t*\t*\t*\t*\n",
        )
        .unwrap();
        // Line 1 is for another caller; line 2 cannot compare 4 with "four": MCollective makes
        // the comparison false and `not` true (a deny); Muster denies too, and says why.
        let decision = policy.decide("alice", "status", &node);
        let Decision::Undecidable { line: 2, why } = &decision else {
            panic!("{decision:?}");
        };
        assert!(why.contains("\"four\" is none"), "{why}");
        assert!(
            decision
                .because()
                .starts_with("line 2 could not be evaluated, so it denies: fact('n').value=four"),
            "{}",
            decision.because()
        );
        assert_eq!(
            policy.decide("other", "status", &node),
            Decision::Undecidable {
                line: 1,
                why: "fact('gone').exists=true: the fact is null, which a data plugin cannot \
                      return (MCollective fails the query)"
                    .into()
            }
        );
        // An or that is decided before it reaches the failing term decides.
        let policy = Policy::parse("allow\t*\t*\tn=4 or fact('gone').exists=true\t*").unwrap();
        assert_eq!(policy.decide("a", "b", &node), Decision::Allow(Some(1)));
        // A line with a data plugin Muster lacks is one line not understood: the rest stands.
        let policy = Policy::read(
            "allow\tci\t*\t(puppet().enabled=false and n=4) or n=5\t*\n\
             allow\t*\tstatus\tfact('n').value>3\t*\n",
            &Groups::default(),
        );
        assert_eq!(policy.problems().len(), 1);
        assert_eq!(policy.problems()[0].line, 1);
        assert!(
            policy.problems()[0]
                .message
                .contains("Muster has no data plugin puppet"),
            "{}",
            policy.problems()[0]
        );
        assert!(matches!(
            policy.decide("ci", "status", &node),
            Decision::NotUnderstood { line: 1, .. }
        ));
        assert_eq!(
            policy.decide("alice", "status", &node),
            Decision::Allow(Some(2))
        );
    }
}
