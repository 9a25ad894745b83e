//! Checking a request's inputs against an action's description: types, required inputs,
//! defaults, validators, lengths, list membership.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::{Action, Input, InputType};
use crate::StatusCode;

/// Compiled validation regexes by pattern. Patterns come from the DDLs on this machine, so
/// there are few; compiling one on every request would cost far more than the check.
static REGEXES: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>,
> = std::sync::LazyLock::new(Default::default);

/// How many patterns the cache keeps before it starts over.
const REGEX_CACHE_LIMIT: usize = 1024;

fn compiled(pattern: &str) -> Result<regex::Regex, String> {
    if let Ok(cache) = REGEXES.lock()
        && let Some(re) = cache.get(pattern)
    {
        return Ok(re.clone());
    }
    let re = regex::RegexBuilder::new(&as_go_reads_it(pattern))
        .size_limit(crate::filter::REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid validation regex {pattern:?}: {e}"))?;
    if let Ok(mut cache) = REGEXES.lock() {
        if cache.len() >= REGEX_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

/// `pattern` as Go's and Ruby's engines read it, which Choria's and MCollective's DDLs are
/// written for: a `{` that does not open a counted repetition (`{n}`, `{n,}`, `{n,m}`) is a
/// literal brace there (`^{.+}$`, a JSON object), where this engine would refuse the pattern.
/// Such braces are escaped; everything else is left as it is.
pub(crate) fn as_go_reads_it(pattern: &str) -> std::borrow::Cow<'_, str> {
    if !pattern.contains('{') {
        return pattern.into();
    }
    // The length of the counted repetition `rest` starts with, if it does.
    let counted = |rest: &str| -> Option<usize> {
        let (inside, _) = rest.strip_prefix('{')?.split_once('}')?;
        let (min, max) = inside.split_once(',').unwrap_or((inside, "0"));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        (!min.is_empty() && digits(min) && digits(max)).then(|| inside.len().saturating_add(2))
    };
    let mut out = String::with_capacity(pattern.len().saturating_add(4));
    let mut chars = pattern.char_indices();
    let mut in_class = false;
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` first in a class (after an optional `^`) is a literal.
                let rest = pattern.get(at.saturating_add(1)..).unwrap_or_default();
                let lead = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') || rest.starts_with('^') {
                    1
                } else {
                    0
                };
                for _ in 0..lead {
                    if let Some((_, l)) = chars.next() {
                        out.push(l);
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class => match counted(pattern.get(at..).unwrap_or_default()) {
                Some(len) => {
                    out.push_str(pattern.get(at..at.saturating_add(len)).unwrap_or_default());
                    // The rest of the repetition is ASCII: one char per byte.
                    for _ in 1..len {
                        chars.next();
                    }
                }
                None => out.push_str("\\{"),
            },
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
    }
    out.into()
}

/// A string validator.
#[derive(Debug, Clone)]
pub enum Validator {
    /// No shell metacharacters: `` ` $ ; | & > < `` or newlines.
    ShellSafe,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An IPv4 or IPv6 address.
    Ip,
    /// One of the named validators Choria's public agents ship (`service_name`,
    /// `puppet_tags`, …), checked as their published definitions check.
    Named(Named),
    /// A regular expression the whole value is searched with.
    Regex(regex::Regex),
    /// A named validator this version does not know: the value is held to [`ShellSafe`]'s
    /// rule, the least any named validator of a public agent asks.
    ///
    /// [`ShellSafe`]: Validator::ShellSafe
    Unknown(String),
}

/// The named validators of Choria's public agents (each in its plugin's
/// `files/mcollective/validator/`, Apache-2.0), with their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// `service_name` (service agent): letters, digits, `.`, `-`, `_`, `:`, `@`.
    ServiceName,
    /// `package_name` (package agent): letters, digits, `.`, `-`, `_`.
    PackageName,
    /// `puppet_resource` (puppet agent): `type[title]`, e.g. `file[/etc/hosts]`.
    PuppetResource,
    /// `puppet_server_address` (puppet agent): a host name or IP address, optionally with a
    /// port (`host:8140`, `[::1]:8140`).
    PuppetServerAddress,
    /// `puppet_tags` (puppet agent): comma-separated tags of `::`-separated Puppet variable
    /// names.
    PuppetTags,
    /// `puppet_variable` (puppet agent): a Puppet variable name: letters, digits and `_`
    /// (one character: a letter).
    PuppetVariable,
    /// `nettest_fqdn` (nettest agent): an IPv4 address or a host name.
    NettestFqdn,
    /// `nettest_server_address` (nettest agent): `host:port`.
    NettestServerAddress,
}

impl Named {
    /// Every named validator, by the name a DDL uses.
    pub const ALL: &[(&'static str, Named)] = &[
        ("service_name", Named::ServiceName),
        ("package_name", Named::PackageName),
        ("puppet_resource", Named::PuppetResource),
        ("puppet_server_address", Named::PuppetServerAddress),
        ("puppet_tags", Named::PuppetTags),
        ("puppet_variable", Named::PuppetVariable),
        ("nettest_fqdn", Named::NettestFqdn),
        ("nettest_server_address", Named::NettestServerAddress),
    ];

    /// Checks a value; the error is the plugin's own wording.
    fn check(self, value: &str) -> Result<(), String> {
        static SERVICE: LazyLock<Option<regex::Regex>> =
            LazyLock::new(|| regex::Regex::new(r"\A[a-zA-Z.\-_0-9:@]+\z").ok());
        static PACKAGE: LazyLock<Option<regex::Regex>> =
            LazyLock::new(|| regex::Regex::new(r"\A[a-zA-Z.\-_0-9]+\z").ok());
        static RESOURCE: LazyLock<Option<regex::Regex>> =
            LazyLock::new(|| regex::Regex::new(r"\A[a-zA-Z0-9_]+\[.+\]\z").ok());
        static HOST: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
            regex::Regex::new(
                r"\A(([a-zA-Z]|[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z]|[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9])\z",
            ).ok()
        });
        static NETTEST_HOST: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
            regex::Regex::new(
                r"\A(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])\z",
            ).ok()
        });
        // The patterns are constants the tests compile; were one not to, nothing would match.
        let matches = |re: &LazyLock<Option<regex::Regex>>, v: &str| {
            re.as_ref().is_some_and(|re| re.is_match(v))
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let shellsafe = || Validator::ShellSafe.check(value);
        match self {
            Named::ServiceName => matches(&SERVICE, value)
                .then_some(())
                .ok_or_else(|| format!("{value} is not a valid service name")),
            Named::PackageName => matches(&PACKAGE, value)
                .then_some(())
                .ok_or_else(|| format!("{value} is not a valid package name")),
            Named::PuppetResource => matches(&RESOURCE, value)
                .then_some(())
                .ok_or_else(|| format!("'{value}' is not a valid resource name")),
            Named::PuppetVariable => {
                shellsafe()?;
                let ok = match value.chars().count() {
                    1 => value.bytes().all(|b| b.is_ascii_alphabetic()),
                    _ => {
                        !value.is_empty()
                            && value
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    }
                };
                ok.then_some(())
                    .ok_or_else(|| format!("Invalid variable name '{value}' specified"))
            }
            Named::PuppetTags => {
                shellsafe()?;
                for tag in value.split(',') {
                    for part in tag.split("::") {
                        Named::PuppetVariable.check(part)?;
                    }
                }
                Ok(())
            }
            Named::PuppetServerAddress => {
                shellsafe()?;
                // As the plugin's `PuppetServerAddressValidation::Host` splits it: a bare IPv6
                // address; `[v6]:port`; `name:port` (one colon); or a name alone.
                let (name, port) = if value.parse::<Ipv6Addr>().is_ok() {
                    (value, None)
                } else if let Some(rest) = value.strip_prefix('[')
                    && let Some((inside, after)) = rest.split_once(']')
                    && inside
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                {
                    (inside, after.strip_prefix(':'))
                } else if value.matches(':').count() == 1 {
                    let (name, port) = value.split_once(':').unwrap_or((value, ""));
                    (name, Some(port))
                } else {
                    (value, None)
                };
                let ip = !digits(name) && name.parse::<std::net::IpAddr>().is_ok();
                if !(ip || matches(&HOST, name)) {
                    return Err(format!("The hostname '{name}' is not a valid hostname"));
                }
                match port {
                    Some(port) if !digits(port) => Err(format!(
                        "The port '{port}' is not a valid puppet master port"
                    )),
                    _ => Ok(()),
                }
            }
            Named::NettestFqdn => (value.parse::<Ipv4Addr>().is_ok() || matches(&HOST, value))
                .then_some(())
                .ok_or_else(|| "value should be a valid fqdn".to_string()),
            Named::NettestServerAddress => {
                shellsafe()?;
                let mut parts = value.split(':');
                let (host, port) = (parts.next().unwrap_or_default(), parts.next());
                let Some(port) = port.filter(|_| !host.is_empty()) else {
                    return Err(format!(
                        "The address '{value}' must include both a hostname and port"
                    ));
                };
                if !matches(&NETTEST_HOST, host) {
                    return Err(format!("The hostname '{host}' is not a valid hostname"));
                }
                if !digits(port) {
                    return Err(format!("The port '{port}' is not a valid port"));
                }
                Ok(())
            }
        }
    }
}

impl Validator {
    /// Parses a DDL `validation` value: a known name, an unknown plain word (a named validator
    /// this version lacks), or a regex.
    pub fn parse(text: &str) -> Result<Validator, String> {
        if let Some((_, named)) = Named::ALL.iter().find(|(name, _)| *name == text) {
            return Ok(Validator::Named(*named));
        }
        Ok(match text {
            "shellsafe" => Validator::ShellSafe,
            "ipv4address" => Validator::Ipv4,
            "ipv6address" => Validator::Ipv6,
            "ipaddress" => Validator::Ip,
            word if !word.is_empty()
                && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                Validator::Unknown(word.to_string())
            }
            pattern => Validator::Regex(compiled(pattern)?),
        })
    }

    /// Checks a value; the error says what was wrong.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let ok = match self {
            Validator::ShellSafe | Validator::Unknown(_) => {
                !value.contains(['`', '$', ';', '|', '&', '>', '<', '\n', '\r'])
            }
            Validator::Ipv4 => value.parse::<Ipv4Addr>().is_ok(),
            Validator::Ipv6 => value.parse::<Ipv6Addr>().is_ok(),
            Validator::Ip => value.parse::<std::net::IpAddr>().is_ok(),
            Validator::Named(named) => return named.check(value),
            Validator::Regex(re) => re.is_match(value),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Validator::ShellSafe => {
                "it contains a shell metacharacter (` $ ; | & > < or a newline)".to_string()
            }
            Validator::Unknown(name) => format!(
                "it contains a shell metacharacter (` $ ; | & > < or a newline), which an input \
                 with the validator {name:?} this node does not know may not hold"
            ),
            Validator::Ipv4 => "it is not an IPv4 address".to_string(),
            Validator::Ipv6 => "it is not an IPv6 address".to_string(),
            Validator::Ip => "it is not an IP address".to_string(),
            Validator::Regex(re) => format!("it does not match /{}/", re.as_str()),
            Validator::Named(_) => String::new(),
        })
    }
}

/// An input that does not fit its description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A required input was not given.
    #[error("missing input {input}: {hint}")]
    Missing {
        /// The input.
        input: String,
        /// What it is, from the DDL.
        hint: String,
    },
    /// An input was given that the action does not take.
    #[error("unknown input {input:?}; {action} takes {known}")]
    Unknown {
        /// The input.
        input: String,
        /// The action.
        action: String,
        /// Its inputs, listed.
        known: String,
    },
    /// An input's value is not valid.
    #[error("invalid input {input}: {reason}")]
    Invalid {
        /// The input.
        input: String,
        /// Why.
        reason: String,
    },
}

impl InputError {
    /// The reply status a node answers with: 3 for missing, 4 for invalid data.
    pub fn status(&self) -> StatusCode {
        match self {
            InputError::Missing { .. } => StatusCode::MissingData,
            InputError::Unknown { .. } | InputError::Invalid { .. } => StatusCode::InvalidData,
        }
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> InputError {
    InputError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn describe(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

impl Input {
    /// Checks a typed value (as it travels in a request).
    pub fn check_value(&self, name: &str, value: &Value) -> Result<(), InputError> {
        let wrong_type = || {
            invalid(
                name,
                format!(
                    "expected {} {}, got {}",
                    article(self.kind),
                    self.kind.name(),
                    describe(value)
                ),
            )
        };
        match self.kind {
            InputType::String => {
                let text = value.as_str().ok_or_else(wrong_type)?;
                if let Some(max) = self.maxlength
                    && max > 0
                    && text.chars().count() > max
                {
                    return Err(invalid(
                        name,
                        format!(
                            "it is {} characters long, more than the {max} allowed",
                            text.chars().count()
                        ),
                    ));
                }
                if let Some(validation) = &self.validation {
                    let validator = Validator::parse(validation).map_err(|e| invalid(name, e))?;
                    validator.check(text).map_err(|e| invalid(name, e))?;
                }
            }
            InputType::Integer => {
                if !(value.is_i64() || value.is_u64()) {
                    return Err(wrong_type());
                }
            }
            InputType::Float | InputType::Number => {
                if !value.is_number() {
                    return Err(wrong_type());
                }
            }
            InputType::Boolean => {
                if !value.is_boolean() {
                    return Err(wrong_type());
                }
            }
            InputType::List => {
                let allowed = self.list.as_deref().unwrap_or_default();
                if !allowed.contains(value) {
                    let names: Vec<String> = allowed
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                        .collect();
                    return Err(invalid(
                        name,
                        format!("{} is not one of {}", describe(value), names.join(", ")),
                    ));
                }
            }
            InputType::Hash => {
                if !value.is_object() {
                    return Err(wrong_type());
                }
            }
            InputType::Array => {
                if !value.is_array() {
                    return Err(wrong_type());
                }
            }
        }
        Ok(())
    }

    /// Converts a value typed on a command line (`key=value`) to the input's type.
    pub fn convert(&self, name: &str, raw: &str) -> Result<Value, InputError> {
        let fail = |what: &str| invalid(name, format!("{raw:?} is not {what}"));
        let value = match self.kind {
            InputType::String => Value::String(raw.to_string()),
            InputType::Integer => Value::from(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| fail("a whole number"))?,
            ),
            InputType::Float | InputType::Number => {
                let n: f64 = raw.trim().parse().map_err(|_| fail("a number"))?;
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .ok_or_else(|| fail("a finite number"))?
            }
            InputType::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "on" => Value::Bool(true),
                "false" | "no" | "n" | "0" | "off" => Value::Bool(false),
                _ => return Err(fail("a boolean (true/false, yes/no, 1/0)")),
            },
            InputType::List => {
                let allowed = self.list.as_deref().unwrap_or_default();
                let parsed: Option<Value> = serde_json::from_str(raw).ok();
                allowed
                    .iter()
                    .find(|v| v.as_str() == Some(raw) || parsed.as_ref() == Some(*v))
                    .cloned()
                    .unwrap_or_else(|| Value::String(raw.to_string()))
            }
            InputType::Hash | InputType::Array => serde_json::from_str(raw)
                .map_err(|_| fail(&format!("a JSON {}", self.kind.name())))?,
        };
        self.check_value(name, &value)?;
        Ok(value)
    }
}

fn article(kind: InputType) -> &'static str {
    match kind {
        InputType::Integer | InputType::Array => "an",
        _ => "a",
    }
}

impl Action {
    /// Checks a request's inputs: every given input is known and valid, every required one is
    /// there; returns the inputs with defaults filled in.
    pub fn validate(&self, data: &Map<String, Value>) -> Result<Map<String, Value>, InputError> {
        for key in data.keys() {
            if !self.input.contains_key(key) {
                let known = if self.input.is_empty() {
                    "no inputs".to_string()
                } else {
                    self.input.keys().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(InputError::Unknown {
                    input: key.clone(),
                    action: self.action.clone(),
                    known,
                });
            }
        }
        let mut out = Map::new();
        for (name, input) in &self.input {
            match data.get(name) {
                Some(value) => {
                    input.check_value(name, value)?;
                    out.insert(name.clone(), value.clone());
                }
                None => match &input.default {
                    Some(default) if !default.is_null() => {
                        out.insert(name.clone(), default.clone());
                    }
                    _ if input.optional => {}
                    _ => {
                        let hint = if input.description.is_empty() {
                            input.prompt.clone()
                        } else {
                            input.description.clone()
                        };
                        return Err(InputError::Missing {
                            input: name.clone(),
                            hint,
                        });
                    }
                },
            }
        }
        Ok(out)
    }

    /// Converts `key=value` pairs from a command line and validates them.
    pub fn convert_and_validate(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Map<String, Value>, InputError> {
        let mut data = Map::new();
        for (key, raw) in pairs {
            let Some(input) = self.input.get(key) else {
                let known = self.input.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(InputError::Unknown {
                    input: key.clone(),
                    action: self.action.clone(),
                    known: if known.is_empty() {
                        "no inputs".into()
                    } else {
                        known
                    },
                });
            };
            data.insert(key.clone(), input.convert(key, raw)?);
        }
        self.validate(&data)
    }

    /// Fills outputs the reply did not set with their defaults.
    pub fn apply_output_defaults(&self, data: &mut Value) {
        let Some(map) = data.as_object_mut() else {
            return;
        };
        for (name, output) in &self.output {
            if let Some(default) = &output.default
                && !map.contains_key(name)
            {
                map.insert(name.clone(), default.clone());
            }
        }
    }
}
