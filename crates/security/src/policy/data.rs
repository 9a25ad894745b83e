//! Data functions in compound columns, as MCollective's matcher reads and compares them
//! (`lib/mcollective/matcher.rb`: `create_function_hash`, `eval_compound_fstatement`):
//! `PLUGIN('QUERY').OUTPUT OPERATOR VALUE`, answered from what the node has by the data plugins
//! MCollective ships that Muster can back —
//!
//! - `fact('path.to.fact')`: `exists`, `value`, `value_encoding` (`fact_data.rb`);
//! - `agent('name')`: `agent`, the name when the node has the agent (`agent_data.rb`);
//! - `fstat('/absolute/path')`: `name`, `output`, `present`, `size`, `mode`, `md5`, `type`,
//!   `uid`, `gid`, `mtime_seconds`, `ctime_seconds`, `atime_seconds`, `mtime_age`,
//!   `ctime_age`, `atime_age` (`fstat_data.rb`), read from the node's file system: a stat, and
//!   for `md5` a read of a regular file of at most [`MD5_LIMIT`] bytes.
//!
//! A call Muster cannot answer as MCollective would — another plugin, an output it does not
//! have, an input the plugin's DDL refuses, a form the matcher garbles — is an error when the
//! policy is read (the line denies what reaches it). A call that fails when asked (a file that
//! cannot be read, a value that cannot be compared) is an error when deciding, and the request
//! is denied: MCollective makes such a comparison false, which `not` turns into true.

use std::cmp::Ordering;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::Digest;
use muster_proto::NodeView;
use muster_proto::filter::REGEX_SIZE_LIMIT;
use regex::{Regex, RegexBuilder};
use serde_json::Value as Json;

/// The largest file whose MD5 digest `fstat('…').md5` computes; a larger one denies the
/// request (MCollective gives a data plugin a second).
pub(super) const MD5_LIMIT: u64 = 16 << 20;

/// The data plugins Muster answers.
const PLUGINS: &str = "fact(), agent() and fstat()";

/// A data function call with its comparison.
#[derive(Debug, Clone)]
pub(super) struct Call {
    /// As written, for messages.
    text: String,
    query: Query,
    test: Test,
}

#[derive(Debug, Clone)]
enum Query {
    Fact { path: String, output: FactOutput },
    Agent { name: String },
    Fstat { path: String, output: FstatOutput },
}

#[derive(Debug, Clone, Copy)]
enum FactOutput {
    Exists,
    Value,
    ValueEncoding,
}

#[derive(Debug, Clone, Copy)]
enum FstatOutput {
    Name,
    Output,
    Present,
    Size,
    Mode,
    Md5,
    Type,
    Uid,
    Gid,
    Seconds(Stamp),
    Age(Stamp),
}

#[derive(Debug, Clone, Copy)]
enum Stamp {
    Modified,
    Changed,
    Accessed,
}

#[derive(Debug, Clone)]
enum Test {
    /// `=/re/` (`matches`) or `!=/re/`.
    Regex {
        regex: Regex,
        matches: bool,
    },
    Compare {
        op: Op,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    /// At the start of `text`, longest spelling first, as the matcher splits at
    /// `!=|>=|<=|<|>|=`.
    fn at_start(text: &str) -> Option<(Op, &str)> {
        [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(spelling, op)| text.strip_prefix(spelling).map(|rest| (op, rest)))
    }

    fn orders(self) -> bool {
        matches!(self, Op::Lt | Op::Gt | Op::Le | Op::Ge)
    }

    fn holds(self, ordering: Option<Ordering>) -> bool {
        match (self, ordering) {
            (Op::Eq, o) => o == Some(Ordering::Equal),
            (Op::Ne, o) => o != Some(Ordering::Equal),
            (_, None) => false,
            (Op::Lt, Some(o)) => o.is_lt(),
            (Op::Gt, Some(o)) => o.is_gt(),
            (Op::Le, Some(o)) => o.is_le(),
            (Op::Ge, Some(o)) => o.is_ge(),
        }
    }
}

/// A data plugin's answer, of the types a plugin may return (`Data::Result#[]=`).
#[derive(Debug, Clone, PartialEq)]
enum Datum {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
}

fn is_word(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a call as the compound tokenizer hands it over: `NAME(ARGUMENT)` and whatever
/// follows up to a space or `)`.
pub(super) fn parse(text: &str) -> Result<Call, String> {
    let (name, after) = text
        .split_once('(')
        .ok_or_else(|| format!("{text}: no data function"))?;
    let (argument, rest) = after
        .split_once(')')
        .ok_or_else(|| format!("{text}: a data function without its )"))?;
    if !is_word(name) {
        return Err(format!(
            "{text}: `{name}` is no data function (its name is letters, digits and _)"
        ));
    }
    // `Data.pluginname`: any case, with or without `_data`.
    let lower = name.to_ascii_lowercase();
    let plugin = lower.strip_suffix("_data").unwrap_or(&lower);
    match plugin {
        "fact" | "agent" | "fstat" => {}
        "collective" => {
            return Err(format!(
                "{text}: Muster answers no collective() in policies (a policy does not see \
                 which collectives the node serves); it answers {PLUGINS}"
            ));
        }
        _ => {
            return Err(format!(
                "{text}: Muster has no data plugin {name}; it answers {PLUGINS}"
            ));
        }
    }
    let argument = argument_of(text, argument)?;
    let Some(after_dot) = rest.strip_prefix('.') else {
        return Err(format!(
            "{text}: name the output to compare, as in fstat('/etc/hosts').size>0 (without one \
             MCollective compares the plugin's whole result, which equals nothing)"
        ));
    };
    let end = after_dot
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after_dot.len());
    let (output, comparison) = after_dot.split_at(end);
    if output.is_empty() {
        return Err(format!(
            "{text}: an output is letters, digits and _, as in fstat('/etc/hosts').size"
        ));
    }
    let query = query(text, plugin, argument, output)?;
    let test = test(text, comparison)?;
    Ok(Call {
        text: text.to_string(),
        query,
        test,
    })
}

/// The argument between the parentheses: none, or one in single or double quotes.
fn argument_of(text: &str, argument: &str) -> Result<Option<String>, String> {
    if argument.is_empty() {
        return Ok(None);
    }
    let quoted = ['\'', '"'].into_iter().find_map(|quote| {
        argument
            .strip_prefix(quote)
            .and_then(|a| a.strip_suffix(quote))
            .filter(|inner| !inner.contains(quote))
    });
    let Some(inner) = quoted else {
        return Err(format!(
            "{text}: write one argument, in quotes: fstat('/etc/hosts')"
        ));
    };
    if inner.contains('(') {
        return Err(format!(
            "{text}: a ( in the argument (MCollective cuts the call there)"
        ));
    }
    if inner.contains('`') {
        return Err(format!(
            "{text}: a backtick in the argument (MCollective never matches it)"
        ));
    }
    Ok(Some(inner.to_string()))
}

/// The plugin's input, checked as its DDL checks it, and its output.
fn query(
    text: &str,
    plugin: &str,
    argument: Option<String>,
    output: &str,
) -> Result<Query, String> {
    let Some(argument) = argument.filter(|a| !a.is_empty()) else {
        return Err(format!(
            "{text}: {plugin}() needs its query in quotes, as in fact('os.family'), \
             agent('rpcutil'), fstat('/etc/hosts')"
        ));
    };
    let length = argument.chars().count();
    let no_output = |outputs: &str| {
        format!("{text}: {plugin}() has no output {output} (its outputs: {outputs})")
    };
    match plugin {
        "fact" => {
            if length > 256 {
                return Err(format!("{text}: a fact path is at most 256 characters"));
            }
            let output = match output {
                "exists" => FactOutput::Exists,
                "value" => FactOutput::Value,
                "value_encoding" => FactOutput::ValueEncoding,
                _ => return Err(no_output("exists, value, value_encoding")),
            };
            Ok(Query::Fact {
                path: argument,
                output,
            })
        }
        "agent" => {
            if length > 20 || !is_word(&argument) {
                return Err(format!(
                    "{text}: an agent name is letters, digits and _, at most 20 characters"
                ));
            }
            match output {
                "agent" => Ok(Query::Agent { name: argument }),
                "license" | "timeout" | "description" | "url" | "version" | "author" => {
                    Err(format!(
                        "{text}: Muster answers only agent('{argument}').agent (the name, when \
                         the node has the agent); a policy does not see the agent's metadata"
                    ))
                }
                _ => Err(no_output(
                    "agent, license, timeout, description, url, version, author",
                )),
            }
        }
        _ => {
            if length > 120 {
                return Err(format!("{text}: an fstat path is at most 120 characters"));
            }
            if !argument.starts_with('/') {
                return Err(format!(
                    "{text}: write an absolute path (a relative one is relative to wherever \
                     the daemon runs)"
                ));
            }
            let output = match output {
                "name" => FstatOutput::Name,
                "output" => FstatOutput::Output,
                "present" => FstatOutput::Present,
                "size" => FstatOutput::Size,
                "mode" => FstatOutput::Mode,
                "md5" => FstatOutput::Md5,
                "type" => FstatOutput::Type,
                "uid" => FstatOutput::Uid,
                "gid" => FstatOutput::Gid,
                "mtime_seconds" => FstatOutput::Seconds(Stamp::Modified),
                "ctime_seconds" => FstatOutput::Seconds(Stamp::Changed),
                "atime_seconds" => FstatOutput::Seconds(Stamp::Accessed),
                "mtime_age" => FstatOutput::Age(Stamp::Modified),
                "ctime_age" => FstatOutput::Age(Stamp::Changed),
                "atime_age" => FstatOutput::Age(Stamp::Accessed),
                "mtime" | "ctime" | "atime" => {
                    return Err(format!(
                        "{text}: {output} is a local time, in a time zone Muster does not \
                         read; compare {output}_seconds or {output}_age"
                    ));
                }
                _ => {
                    return Err(no_output(
                        "name, output, present, size, mode, md5, type, uid, gid, mtime, \
                         ctime, atime, and the last three with _seconds and _age",
                    ));
                }
            };
            Ok(Query::Fstat {
                path: argument,
                output,
            })
        }
    }
}

/// The comparison after the output: an operator and a value written bare, or `=/re/`,
/// `!=/re/`.
fn test(text: &str, comparison: &str) -> Result<Test, String> {
    let Some((op, value)) = Op::at_start(comparison) else {
        return Err(if comparison.is_empty() {
            format!(
                "{text}: a data function needs a comparison, without spaces around its \
                 operator: fstat('/etc/hosts').size>0"
            )
        } else {
            format!("{text}: {comparison:?} is no comparison (operators: = != < > <= >=)")
        });
    };
    if value.is_empty() {
        return Err(format!(
            "{text}: nothing to compare with after the operator"
        ));
    }
    if value.starts_with('~') {
        return Err(format!(
            "{text}: write =/re/ for a regex match (MCollective reads =~ in a data function \
             as = with a value starting with ~)"
        ));
    }
    if value.contains(['=', '<', '>']) {
        return Err(format!(
            "{text}: one operator only (MCollective splits at the last one)"
        ));
    }
    if value.contains(['\'', '"']) {
        return Err(format!(
            "{text}: quoted values are not supported; write them bare"
        ));
    }
    if value.len() >= 2 && value.starts_with('/') && value.ends_with('/') {
        let matches = match op {
            Op::Eq => true,
            Op::Ne => false,
            _ => {
                return Err(format!(
                    "{text}: a regex compares with = or != only (MCollective never matches \
                     one with < or >)"
                ));
            }
        };
        let regex =
            ruby_regex(&value[1..value.len() - 1]).map_err(|why| format!("{text}: {why}"))?;
        return Ok(Test::Regex { regex, matches });
    }
    Ok(Test::Compare {
        op,
        value: value.to_string(),
    })
}

impl Call {
    /// Whether the comparison holds on this node; an error when it cannot be answered.
    /// Whether evaluating it reads the file system (`fstat()`).
    pub(super) fn reads_files(&self) -> bool {
        matches!(self.query, Query::Fstat { .. })
    }

    pub(super) fn holds(&self, node: &dyn NodeView) -> Result<bool, String> {
        let datum = match &self.query {
            Query::Fact { path, output } => fact(node.facts(), path, *output),
            Query::Agent { name } => Ok(node.has_agent(name).then(|| Datum::Str(name.clone()))),
            Query::Fstat { path, output } => fstat(path, *output),
        };
        datum
            .and_then(|datum| self.test.apply(datum))
            .map_err(|why| format!("{}: {why}", self.text))
    }
}

impl Test {
    /// `eval_compound_fstatement`: no answer is false; strings and booleans never order; a
    /// regex matches strings only; a number is compared with the value read as a number (as
    /// Ruby's `Integer()`, then `Float()`), a boolean with `true` or `false`.
    fn apply(&self, datum: Option<Datum>) -> Result<bool, String> {
        let Some(datum) = datum else {
            return Ok(false);
        };
        match self {
            Test::Regex { regex, matches } => Ok(match datum {
                Datum::Str(s) => regex.is_match(&s) == *matches,
                _ => false,
            }),
            Test::Compare { op, value } => match datum {
                Datum::Str(_) | Datum::Bool(_) if op.orders() => Ok(false),
                Datum::Str(s) => Ok(op.holds(Some(s.as_str().cmp(value.as_str())))),
                Datum::Bool(b) => {
                    let other = match value.trim() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(format!(
                                "the answer is {b}, which compares only with true or false"
                            ));
                        }
                    };
                    Ok(op.holds(Some(b.cmp(&other))))
                }
                Datum::Int(n) => Ok(op.holds(match number(value)? {
                    Number::Int(m) => Some(n.cmp(&m)),
                    Number::Float(m) => (n as f64).partial_cmp(&m),
                })),
                Datum::Float(n) => Ok(op.holds(match number(value)? {
                    Number::Int(m) => n.partial_cmp(&(m as f64)),
                    Number::Float(m) => n.partial_cmp(&m),
                })),
            },
        }
    }
}

/// A comparison's value read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

/// A comparison's value as Ruby's `Integer()` reads it, else as `Float()` does (the matcher
/// tries them in that order); forms Muster is not sure Ruby reads the same are errors.
fn number(text: &str) -> Result<Number, String> {
    let text = text.trim();
    ruby_integer(text)
        .map(Number::Int)
        .or_else(|| ruby_float(text).map(Number::Float))
        .ok_or_else(|| {
            format!("the answer is a number, and {text:?} is none (write it in decimal)")
        })
}

/// The length of the run of decimal digits, single `_` allowed between them, at the start.
fn digit_run(text: &str, radix: u32) -> usize {
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(|b| char::from(*b).is_digit(radix));
    let mut i = 0;
    while i < bytes.len() {
        if digit(i) || (bytes.get(i) == Some(&b'_') && i > 0 && digit(i + 1)) {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Ruby's `Integer("…")`: decimal, `0x` hex, `0b` binary, `0o`, `0` octal, `0d` decimal,
/// with `_` between digits, an optional sign.
fn ruby_integer(text: &str) -> Option<i128> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = [("0x", 16), ("0b", 2), ("0o", 8), ("0d", 10)]
        .into_iter()
        .find_map(|(prefix, radix)| lower.strip_prefix(prefix).map(|d| (radix, d)))
        .unwrap_or_else(|| match lower.strip_prefix('0') {
            Some(rest) if !rest.is_empty() => (8, rest),
            _ => (10, lower.as_str()),
        });
    if digits.is_empty() || digit_run(digits, radix) != digits.len() {
        return None;
    }
    let mut value: i128 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let digit = i128::from(c.to_digit(radix)?);
        value = value.checked_mul(i128::from(radix))?.checked_add(digit)?;
    }
    Some(if negative { -value } else { value })
}

/// Ruby's `Float("…")` for decimals with a fraction or an exponent (`0.5e2`), `_` between
/// digits, no leading zeros.
fn ruby_float(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let whole = digit_run(body, 10);
    if whole == 0 || (whole > 1 && body.starts_with('0')) {
        return None;
    }
    let mut rest = &body[whole..];
    let mut decimal = false;
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = digit_run(fraction, 10);
        if n == 0 {
            return None;
        }
        rest = &fraction[n..];
        decimal = true;
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        let n = digit_run(digits, 10);
        if n == 0 {
            return None;
        }
        rest = &digits[n..];
        decimal = true;
    }
    if !rest.is_empty() || !decimal {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// A regex as Ruby reads it, in Rust's engine: `\d \w \s \h` (and their negations) and `\b`
/// are ASCII, `^` and `$` match at line ends, Ruby's `(?m)` is Rust's `(?s)`. What would read
/// differently (a `[` inside a class, as in `[[:alpha:]]`; `(?s)`) is an error, as is what
/// Rust's engine lacks (look-around, back-references).
fn ruby_regex(pattern: &str) -> Result<Regex, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let differs =
        |what: &str| format!("/{pattern}/: {what} reads differently in Ruby; write it out");
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    return Err(format!("/{pattern}/ ends with a \\"));
                };
                let set = match next.to_ascii_lowercase() {
                    'd' => Some("0-9"),
                    'w' => Some("0-9A-Za-z_"),
                    's' => Some("\\t\\n\\x0B\\x0C\\r "),
                    'h' => Some("0-9A-Fa-f"),
                    _ => None,
                };
                match (set, next.is_ascii_uppercase(), in_class) {
                    (Some(set), false, true) => out.push_str(set),
                    (Some(set), false, false) => {
                        out.push('[');
                        out.push_str(set);
                        out.push(']');
                    }
                    (Some(set), true, false) => {
                        out.push_str("[^");
                        out.push_str(set);
                        out.push(']');
                    }
                    (Some(_), true, true) => {
                        return Err(differs(&format!("\\{next} inside [...]")));
                    }
                    (None, _, _) if matches!(next, 'b' | 'B') && !in_class => {
                        out.push_str("(?-u:\\");
                        out.push(next);
                        out.push(')');
                    }
                    (None, _, _) => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if in_class => return Err(differs("a [ inside [...] (as in [[:alpha:]])")),
            '[' => {
                in_class = true;
                out.push('[');
                if chars.next_if_eq(&'^').is_some() {
                    out.push('^');
                }
                if chars.next_if_eq(&']').is_some() {
                    out.push_str("\\]");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                out.push_str("(?");
                chars.next();
                while let Some(&flag) = chars.peek() {
                    match flag {
                        'm' => out.push('s'),
                        's' => return Err(differs("(?s)")),
                        'i' | 'x' | '-' => out.push(flag),
                        _ => break,
                    }
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    RegexBuilder::new(&out)
        .multi_line(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(text) => format!(
                "invalid regex /{pattern}/: {}",
                text.lines()
                    .rev()
                    .find_map(|line| line.trim().strip_prefix("error: "))
                    .unwrap_or(text.trim())
            ),
            other => format!("invalid regex /{pattern}/: {other}"),
        })
}

/// `fact_data.rb`: the path split at dots (trailing empty parts dropped, as Ruby's `split`
/// does), walked through objects by key and arrays by index.
fn fact(facts: &Json, path: &str, output: FactOutput) -> Result<Option<Datum>, String> {
    let mut parts: Vec<&str> = path.split('.').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    let mut current = facts;
    let mut found = true;
    for part in parts {
        let next = match current {
            Json::Object(map) => map.get(part),
            Json::Array(items) => {
                // Ruby's Integer(): plain indexes only; a sign, a prefix or a leading zero
                // (octal) might read otherwise.
                let plain = part == "0"
                    || (!part.is_empty()
                        && !part.starts_with('0')
                        && part.bytes().all(|b| b.is_ascii_digit()));
                if !plain {
                    return Err(format!(
                        "{part:?} indexes an array; Muster reads plain indexes (0, 1, …)"
                    ));
                }
                part.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        match next {
            Some(value) => current = value,
            None => {
                found = false;
                break;
            }
        }
    }
    if !found {
        // exists, value and value_encoding are all false.
        return Ok(Some(Datum::Bool(false)));
    }
    let structured = matches!(current, Json::Array(_) | Json::Object(_));
    Ok(Some(match output {
        FactOutput::Exists if current.is_null() => return Err(null_fact()),
        FactOutput::Exists => Datum::Bool(true),
        FactOutput::ValueEncoding if current.is_null() => return Err(null_fact()),
        FactOutput::ValueEncoding if structured => Datum::Str("application/json".into()),
        FactOutput::ValueEncoding => Datum::Str("text/plain".into()),
        FactOutput::Value => match current {
            Json::Null => return Err(null_fact()),
            Json::Bool(b) => Datum::Bool(*b),
            Json::String(s) => Datum::Str(s.clone()),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Datum::Int(i128::from(i)),
                (None, Some(u)) => Datum::Int(i128::from(u)),
                _ => Datum::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => Datum::Str(ruby_json(current).ok_or_else(|| {
                "the fact is a structure holding an object, a fraction or a control \
                 character, whose JSON text MCollective may write otherwise than Muster"
                    .to_string()
            })?),
        },
    }))
}

fn null_fact() -> String {
    "the fact is null, which a data plugin cannot return (MCollective fails the query)".into()
}

/// The JSON text Ruby's `to_json` writes for a fact, where Muster writes the same: arrays of
/// strings without control characters, integers, booleans and nulls.
fn ruby_json(value: &Json) -> Option<String> {
    match value {
        Json::Null | Json::Bool(_) => Some(value.to_string()),
        Json::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Json::String(s) if !s.chars().any(char::is_control) => Some(value.to_string()),
        Json::Array(items) => {
            let items: Option<Vec<String>> = items.iter().map(ruby_json).collect();
            Some(format!("[{}]", items?.join(",")))
        }
        _ => None,
    }
}

/// `fstat_data.rb`: a missing file's defaults, else the stat of the path (of the link itself
/// for a symbolic link), the MD5 digest of a regular file.
fn fstat(path: &str, output: FstatOutput) -> Result<Option<Datum>, String> {
    use FstatOutput as O;
    if let O::Name = output {
        return Ok(Some(Datum::Str(path.to_string())));
    }
    // `File.exists?` follows links: a dangling link is not present.
    let present = match fs::metadata(path) {
        Ok(_) => true,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            false
        }
        Err(e) => return Err(format!("cannot stat {path}: {e}")),
    };
    if !present {
        return Ok(match output {
            O::Output => Some(Datum::Str("not present".into())),
            O::Type => Some(Datum::Str("unknown".into())),
            O::Mode => Some(Datum::Str("0000".into())),
            O::Age(_) => None,
            _ => Some(Datum::Int(0)),
        });
    }
    let stat = fs::symlink_metadata(path).map_err(|e| format!("cannot stat {path}: {e}"))?;
    let seconds = |stamp: Stamp| match stamp {
        Stamp::Modified => stat.mtime(),
        Stamp::Changed => stat.ctime(),
        Stamp::Accessed => stat.atime(),
    };
    let kind = stat.file_type();
    Ok(Some(match output {
        O::Name => Datum::Str(path.to_string()),
        O::Output => Datum::Str("present".into()),
        O::Present => Datum::Int(1),
        O::Size => Datum::Int(i128::from(stat.len())),
        O::Uid => Datum::Int(i128::from(stat.uid())),
        O::Gid => Datum::Int(i128::from(stat.gid())),
        O::Mode => Datum::Str(format!("{:o}", stat.mode())),
        O::Seconds(stamp) => Datum::Int(i128::from(seconds(stamp))),
        O::Age(stamp) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| "the clock is before 1970".to_string())?
                .as_secs();
            Datum::Int(i128::from(now) - i128::from(seconds(stamp)))
        }
        O::Type => Datum::Str(
            if kind.is_dir() {
                "directory"
            } else if kind.is_file() {
                "file"
            } else if kind.is_symlink() {
                "symlink"
            } else if kind.is_socket() {
                "socket"
            } else if kind.is_char_device() {
                "chardev"
            } else if kind.is_block_device() {
                "blockdev"
            } else {
                "unknown"
            }
            .into(),
        ),
        O::Md5 if kind.is_file() => Datum::Str(md5_of(path)?),
        O::Md5 => Datum::Int(0),
    }))
}

/// The MD5 digest of a regular file of at most [`MD5_LIMIT`] bytes.
fn md5_of(path: &str) -> Result<String, String> {
    let cannot = |e: io::Error| format!("cannot read {path}: {e}");
    let file = fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{path} is no longer a regular file"));
    }
    let too_large = || {
        format!(
            "{path} is larger than the {} MiB Muster hashes",
            MD5_LIMIT >> 20
        )
    };
    if meta.len() > MD5_LIMIT {
        return Err(too_large());
    }
    let mut digest = md5::Md5::new();
    let mut reader = file.take(MD5_LIMIT + 1);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cannot(e)),
        };
        total += n as u64;
        if total > MD5_LIMIT {
            return Err(too_large());
        }
        digest.update(buffer.get(..n).unwrap_or_default());
    }
    Ok(digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Node(Json, Vec<&'static str>);

    impl NodeView for Node {
        fn identity(&self) -> &str {
            "node1"
        }
        fn facts(&self) -> &Json {
            &self.0
        }
        fn classes(&self) -> &[String] {
            &[]
        }
        fn has_agent(&self, agent: &str) -> bool {
            self.1.contains(&agent)
        }
    }

    fn holds(text: &str, node: &Node) -> Result<bool, String> {
        parse(text)?.holds(node)
    }

    #[test]
    fn numbers_read_as_ruby_reads_them() {
        // matcher_spec.rb: "0xa" is 10 and "0.5e2" is 50.
        for (text, want) in [
            ("10", Some(Number::Int(10))),
            ("-3", Some(Number::Int(-3))),
            ("+3", Some(Number::Int(3))),
            ("0xa", Some(Number::Int(10))),
            ("0XA", Some(Number::Int(10))),
            ("0b101", Some(Number::Int(5))),
            ("0o17", Some(Number::Int(15))),
            ("010", Some(Number::Int(8))),
            ("0d10", Some(Number::Int(10))),
            ("1_000", Some(Number::Int(1000))),
            ("0", Some(Number::Int(0))),
            ("0.5e2", Some(Number::Float(50.0))),
            ("1.5", Some(Number::Float(1.5))),
            ("1e3", Some(Number::Float(1000.0))),
            ("-2.5E-1", Some(Number::Float(-0.25))),
            ("1_0.5", Some(Number::Float(10.5))),
            ("08", None),
            ("09.5", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("1.", None),
            (".5", None),
            ("0x", None),
            ("abc", None),
            ("1e", None),
            ("99999999999999999999999999999999999999999", None),
        ] {
            assert_eq!(number(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn regexes_read_as_ruby_reads_them() {
        for (pattern, text, want) in [
            (r"^\w+$", "héllo", false),
            (r"^\w+$", "hello_1", true),
            (r"^\d+$", "١٢", false),
            (r"^\d+$", "12", true),
            (r"^[\w.]+$", "a.b", true),
            (r"\s", "\u{a0}", false),
            (r"^\h+$", "c0ffee", true),
            (r"^\H", "x", true),
            (r"\bfoo\b", "a foo b", true),
            (r"^foo$", "bar\nfoo", true),
            ("(?m)a.b", "a\nb", true),
            ("(?i)DEBIAN", "debian", true),
            ("RedHat|Debian", "Debian", true),
            ("[]a]", "]", true),
            ("", "anything", true),
        ] {
            let regex = ruby_regex(pattern).unwrap();
            assert_eq!(regex.is_match(text), want, "/{pattern}/ on {text:?}");
        }
        for pattern in ["[[:alpha:]]", r"[\W]", "(?s)a", "a(?=b)", r"(a)\1", "a\\"] {
            assert!(ruby_regex(pattern).is_err(), "/{pattern}/");
        }
    }

    #[test]
    fn calls_that_cannot_be_answered_are_refused_when_read() {
        for (text, needle) in [
            ("puppet().enabled=false", "no data plugin puppet"),
            ("service('nginx').status=running", "no data plugin service"),
            ("collective('us').member=true", "collective()"),
            ("Fstat('/').type=directory", ""),
            ("fstat_data('/').type=directory", ""),
            ("fstat('/')=x", "name the output"),
            ("fstat('/').type", "needs a comparison"),
            ("fstat('/').type=", "nothing to compare"),
            ("fstat('/').size==1", "one operator"),
            ("fstat('/').size=>1", "one operator"),
            ("fact('x').value=~/a/", "=/re/"),
            ("fact('x').value<</a/", "one operator"),
            ("fact('x').value>/a/", "= or != only"),
            ("fact('x').value='a'", "quoted"),
            ("fact(x).value=1", "in quotes"),
            ("fact('a','b').value=1", "in quotes"),
            ("fact('a' ).value=1", "in quotes"),
            ("fact('`id`').value=1", "backtick"),
            ("fact('').value=1", "needs its query"),
            ("fact().value=1", "needs its query"),
            ("fact('x').val-ue=1", "no output val "),
            ("fact('x').a.b=1", "no output a "),
            ("fact('x').nope=1", "no output nope"),
            ("agent('rpcutil').version=1", "only agent("),
            ("agent('a-b').agent=a", "agent name"),
            ("agent('abcdefghijklmnopqrstu').agent=a", "agent name"),
            ("fstat('etc/hosts').size>0", "absolute"),
            ("fstat('/etc/hosts').mtime=x", "mtime_seconds"),
            ("fstat('/etc/hosts').nope=x", "no output"),
            ("role=web(x).a=1", "no data function"),
        ] {
            match parse(text) {
                Ok(_) => assert!(needle.is_empty(), "{text} parsed"),
                Err(why) => {
                    assert!(!needle.is_empty() && why.contains(needle), "{text}: {why}")
                }
            }
        }
        let long = format!("fstat('/{}').size>0", "a".repeat(120));
        assert!(parse(&long).unwrap_err().contains("120"));
    }

    #[test]
    fn comparisons_follow_the_matcher() {
        let node = Node(
            json!({"s": "teststring", "n": 10, "f": 2.5, "b": false, "one": "1",
                   "big": 18446744073709551615u64, "null": null,
                   "roles": ["base", "web"], "mixed": [1, true, null, "x"],
                   "obj": {"a": 1}, "floats": [1.5]}),
            vec!["rpcutil"],
        );
        for (text, want) in [
            ("fact('s').value=teststring", true),
            ("fact('s').value!=teststring", false),
            ("fact('s').value<teststring", false),
            ("fact('s').value>=teststring", false),
            ("fact('s').value=/test/", true),
            ("fact('s').value!=/test/", false),
            ("fact('n').value=/1/", false),
            ("fact('n').value!=/1/", false),
            ("fact('n').value=0xa", true),
            ("fact('n').value>=10", true),
            ("fact('n').value<10.5", true),
            ("fact('n').value!=10.0", false),
            ("fact('f').value>2", true),
            ("fact('f').value=2.5", true),
            ("fact('big').value>18446744073709551614", true),
            ("fact('b').value=false", true),
            ("fact('b').value!=true", true),
            ("fact('b').value<true", false),
            ("fact('one').value>0", false),
            ("fact('missing').value=false", true),
            ("fact('missing').exists=false", true),
            ("fact('missing').value_encoding=false", true),
            ("fact('s.deeper').exists=false", true),
            ("fact('roles.0').value=base", true),
            ("fact('roles.2').exists=false", true),
            (r"fact('roles').value=/^\[.base.,.web.\]$/", true),
            ("fact('roles').value_encoding=application/json", true),
            (r"fact('mixed').value=/^\[1,true,null,.x.\]$/", true),
            ("fact('roles.').value_encoding=application/json", true),
            ("fact('obj').exists=true", true),
            ("agent('rpcutil').agent=rpcutil", true),
            ("agent('rpcutil').agent=/^rpc/", true),
            ("agent('puppet').agent=puppet", false),
            ("agent('puppet').agent!=puppet", false),
            ("fstat('/').type=directory", true),
            ("fstat('/').md5=0", true),
            ("fstat('/').present=1", true),
            ("fstat('/').output=present", true),
            ("fstat('/').name=/^.$/", true),
            ("fstat('/').mode=/^4/", true),
        ] {
            assert_eq!(holds(text, &node), Ok(want), "{text}");
        }
        for (text, needle) in [
            ("fact('n').value=abc", "is none"),
            ("fact('n').value=08", "is none"),
            ("fact('b').value=yes", "true or false"),
            ("fact('null').value=1", "null"),
            ("fact('null').exists=true", "null"),
            ("fact('obj').value=/a/", "structure"),
            ("fact('floats').value=/1/", "structure"),
            ("fact('roles.x').exists=true", "plain indexes"),
            ("fact('roles.01').exists=true", "plain indexes"),
            ("fact('roles.-1').exists=true", "plain indexes"),
        ] {
            let why = holds(text, &node).unwrap_err();
            assert!(
                why.contains(needle) && why.starts_with(text),
                "{text}: {why}"
            );
        }
    }

    #[test]
    fn fstat_reads_the_file_system() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rspec");
        fs::write(&file, "rspec").unwrap();
        let old = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        let big = dir.path().join("big");
        fs::File::create(&big)
            .unwrap()
            .set_len(MD5_LIMIT + 1)
            .unwrap();
        let meta = fs::metadata(&file).unwrap();
        let node = Node(json!({}), vec![]);
        let (f, d, l, n, b) = (
            file.display(),
            dir.path().display(),
            link.display(),
            dangling.display(),
            big.display(),
        );
        for (text, want) in [
            // fstat_data_spec.rb: a file holding "rspec".
            (
                format!("fstat('{f}').md5=2bc84dc69b73db9383b9c6711d2011b7"),
                true,
            ),
            (format!("fstat('{f}').type=file"), true),
            (format!("fstat('{f}').output=present"), true),
            (format!("fstat('{f}').present=1"), true),
            (format!("fstat('{f}').size=5"), true),
            (format!("fstat('{f}').size>4"), true),
            (format!("fstat('{f}').mode=100640"), true),
            (format!("fstat('{f}').mtime_seconds=1000000000"), true),
            (format!("fstat('{f}').mtime_age>86400"), true),
            (format!("fstat('{f}').mtime_age<86400"), false),
            (format!("fstat('{f}').uid={}", meta.uid()), true),
            (format!("fstat('{f}').gid={}", meta.gid()), true),
            (format!("fstat('{f}').ctime_seconds={}", meta.ctime()), true),
            (format!("fstat('{f}').name=/rspec$/"), true),
            (format!("fstat('{d}').type=directory"), true),
            (format!("fstat('{d}').md5=0"), true),
            (format!("fstat('{l}').type=symlink"), true),
            (format!("fstat('{l}').md5=0"), true),
            (format!("fstat('{l}').mode=/^120/"), true),
            // A dangling link, and no file at all: not present.
            (format!("fstat('{n}').present=0"), true),
            (format!("fstat('{d}/nonexisting').present=0"), true),
            (format!("fstat('{d}/nonexisting').output=/^not/"), true),
            (format!("fstat('{d}/nonexisting').type=unknown"), true),
            (format!("fstat('{d}/nonexisting').mode=0000"), true),
            (format!("fstat('{d}/nonexisting').size=0"), true),
            (format!("fstat('{d}/nonexisting').md5=0"), true),
            (format!("fstat('{d}/nonexisting').mtime_seconds=0"), true),
            (format!("fstat('{d}/nonexisting').mtime_age>=0"), false),
            (format!("fstat('{d}/nonexisting').mtime_age<0"), false),
            (format!("fstat('{f}/under-a-file').present=0"), true),
            (format!("fstat('{b}').size>{MD5_LIMIT}"), true),
        ] {
            assert_eq!(holds(&text, &node), Ok(want), "{text}");
        }
        let why = holds(&format!("fstat('{b}').md5=0"), &node).unwrap_err();
        assert!(why.contains("larger than"), "{why}");
    }
}
