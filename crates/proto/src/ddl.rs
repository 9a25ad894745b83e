//! Agent descriptions (DDL): the actions an agent has, their typed inputs with validation,
//! their outputs with display labels, and the aggregates a client computes across replies.
//!
//! The JSON follows the shape of Choria's JSON DDL
//! (`https://choria.io/schemas/mcorpc/ddl/v1/agent.json`), so an existing Choria DDL for a
//! simple agent loads. [`Ddl::parse`] checks the structure (with the JSON path of any mistake)
//! and then the meaning (regexes compile, defaults fit their types, aggregates name outputs).
//! [`Action::validate`] checks a request's inputs; the client runs it before sending and the
//! node again before running.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod validate;

pub use validate::{InputError, Named, Validator};

/// A DDL that could not be loaded: where in the document, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct DdlError {
    /// The JSON path inside the document, e.g. `actions[0].input.fact.type` (`.` for the root).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> DdlError {
    DdlError {
        path: path.into(),
        message: message.into(),
    }
}

/// An agent's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ddl {
    /// The schema the document claims (informational).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Name, version, timeout…
    pub metadata: Metadata,
    /// The actions.
    pub actions: Vec<Action>,
    /// Things that load but deserve a word: unknown named validators, for one.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// An agent's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The agent's name: lower-case letters, digits and `_`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Its license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Its version.
    pub version: String,
    /// Where to read more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long an action may run, in seconds.
    pub timeout: u64,
    /// How it is implemented (`external` for an executable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Whether it is a service agent (Choria; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<bool>,
}

/// Which replies a client shows by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Display {
    /// Only successful replies.
    Ok,
    /// Only failed replies (the default).
    #[default]
    Failed,
    /// Every reply.
    Always,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Its name.
    pub action: String,
    /// What it does.
    pub description: String,
    /// Which replies to show by default.
    #[serde(default)]
    pub display: Display,
    /// Its inputs, in the order they are documented.
    #[serde(default)]
    pub input: IndexMap<String, Input>,
    /// Its outputs, in the order they are shown.
    #[serde(default)]
    pub output: IndexMap<String, Output>,
    /// Summaries a client computes across replies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregate: Vec<Aggregate>,
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// A number with a fraction.
    Float,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of the values in `list`.
    List,
    /// A JSON object.
    Hash,
    /// A JSON array.
    Array,
}

impl InputType {
    /// The name, as written in a DDL.
    pub fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Float => "float",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
            InputType::List => "list",
            InputType::Hash => "hash",
            InputType::Array => "array",
        }
    }
}

/// One input of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// A short prompt.
    #[serde(default)]
    pub prompt: String,
    /// What it means.
    #[serde(default)]
    pub description: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Whether it may be left out.
    #[serde(default)]
    pub optional: bool,
    /// The value used when it is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// For strings: a regex, or a named validator (`shellsafe`, `ipv4address`, `ipv6address`,
    /// `ipaddress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// For strings: the longest allowed, in characters (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxlength: Option<usize>,
    /// For lists: the allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<Value>>,
}

/// One output of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// What it means.
    #[serde(default)]
    pub description: String,
    /// The label a client shows.
    pub display_as: String,
    /// Its type (informational).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value a reply has when the action did not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// A summary computed across replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// One of [`AGGREGATE_FUNCTIONS`], or a function this version does not compute.
    pub function: String,
    /// The output it reads first, then options (`{"format": …}`, `{"true": …, "false": …}`).
    #[serde(default)]
    pub args: Vec<Value>,
}

/// The aggregate functions a client computes: MCollective's and Choria's own (`summary`,
/// `average`, `boolean_summary`, `sum`) and those Choria's public agents ship
/// (`nagios_states`, `nettest_mma`, `process_summary`). A DDL naming another loads, with a
/// warning, and that summary is not computed.
pub const AGGREGATE_FUNCTIONS: &[&str] = &[
    "summary",
    "average",
    "boolean_summary",
    "sum",
    "nagios_states",
    "nettest_mma",
    "process_summary",
];

impl Aggregate {
    /// The output it summarises.
    pub fn output(&self) -> Option<&str> {
        self.args.first().and_then(Value::as_str)
    }

    /// Whether a client computes it: a known function over an output the action has.
    pub fn computed(&self, action: &Action) -> bool {
        AGGREGATE_FUNCTIONS.contains(&self.function.as_str())
            && self.output().is_some_and(|o| action.output.contains_key(o))
    }

    /// Its options (the second argument), if any.
    pub fn options(&self) -> Option<&serde_json::Map<String, Value>> {
        self.args.get(1).and_then(Value::as_object)
    }
}

impl Ddl {
    /// Parses and checks a DDL document.
    pub fn parse(text: &str) -> Result<Ddl, DdlError> {
        let value: Value = serde_json::from_str(text).map_err(|e| error(".", e.to_string()))?;
        if !value.is_object() {
            return Err(error(
                ".",
                "the document must be a JSON object with metadata and actions",
            ));
        }
        let mut ddl: Ddl = serde_path_to_error::deserialize(value).map_err(|e| {
            // serde_path_to_error says `?` when no path was reached.
            let path = match e.path().to_string().as_str() {
                "?" => ".".to_string(),
                other => other.to_string(),
            };
            error(path, e.into_inner().to_string())
        })?;
        ddl.check()?;
        Ok(ddl)
    }

    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.action == name)
    }

    /// The names of its actions.
    pub fn action_names(&self) -> Vec<&str> {
        self.actions.iter().map(|a| a.action.as_str()).collect()
    }

    fn check(&mut self) -> Result<(), DdlError> {
        let name = &self.metadata.name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(error(
                "metadata.name",
                format!("{name:?} is not a valid agent name: use lower-case letters, digits and _"),
            ));
        }
        if self.metadata.timeout == 0 {
            return Err(error(
                "metadata.timeout",
                "the timeout must be at least 1 second",
            ));
        }
        if self.actions.is_empty() {
            return Err(error("actions", "an agent needs at least one action"));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut unknown_functions = std::collections::BTreeSet::new();
        for (i, action) in self.actions.iter().enumerate() {
            let at = format!("actions[{i}]");
            if action.action.is_empty() {
                return Err(error(format!("{at}.action"), "the action has no name"));
            }
            if !seen.insert(action.action.as_str()) {
                return Err(error(
                    format!("{at}.action"),
                    format!("action {:?} is described twice", action.action),
                ));
            }
            for (input_name, input) in &action.input {
                let at = format!("{at}.input.{input_name}");
                if let Some(warning) = input.check(&at)? {
                    self.warnings.push(warning);
                }
            }
            for (j, aggregate) in action.aggregate.iter().enumerate() {
                let at = format!("{at}.aggregate[{j}]");
                let function = aggregate.function.as_str();
                if !AGGREGATE_FUNCTIONS.contains(&function) {
                    // Choria's agents ship their own summaries (nettest_mma, …); one this
                    // version lacks costs that summary, never the agent. One word per name.
                    if unknown_functions.insert(function.to_string()) {
                        self.warnings.push(format!(
                            "{at}.function: unknown aggregate function {function:?} is not \
                             computed; Muster computes {}",
                            AGGREGATE_FUNCTIONS.join(", ")
                        ));
                    }
                    continue;
                }
                match aggregate.output() {
                    Some(output) if action.output.contains_key(output) => {}
                    Some(output) => self.warnings.push(format!(
                        "{at}.args[0]: the action has no output {output:?}, so its {function} \
                         is not computed"
                    )),
                    None => self.warnings.push(format!(
                        "{at}.args: the first argument must name an output; this {function} is \
                         not computed"
                    )),
                }
            }
        }
        Ok(())
    }
}

impl Input {
    /// Checks the description of one input; returns a warning for things that load anyway.
    fn check(&self, at: &str) -> Result<Option<String>, DdlError> {
        let mut warning = None;
        if let Some(validation) = &self.validation {
            if self.kind != InputType::String {
                return Err(error(
                    format!("{at}.validation"),
                    format!(
                        "validation applies to strings, and this input is a {}",
                        self.kind.name()
                    ),
                ));
            }
            match Validator::parse(validation) {
                Ok(Validator::Unknown(name)) => {
                    warning = Some(format!(
                        "{at}.validation: unknown validator {name:?}: its values are held to \
                         shellsafe's rule instead (no ` $ ; | & > < or newline); write a regex \
                         to check them otherwise"
                    ));
                }
                Ok(_) => {}
                Err(message) => return Err(error(format!("{at}.validation"), message)),
            }
        }
        if self.kind == InputType::List && self.list.as_ref().is_none_or(Vec::is_empty) {
            return Err(error(
                format!("{at}.list"),
                "a list input needs the list of allowed values",
            ));
        }
        // An empty string default stands for "not given", and is not held to the input's
        // validation (as Choria does not: `default => ""` with a pattern it cannot match).
        let unset = |d: &Value| d.is_null() || (self.kind == InputType::String && d == "");
        if let Some(default) = &self.default
            && !unset(default)
            && let Err(e) = self.check_value("default", default)
        {
            return Err(error(format!("{at}.default"), e.to_string()));
        }
        Ok(warning)
    }
}

#[cfg(test)]
mod tests;
