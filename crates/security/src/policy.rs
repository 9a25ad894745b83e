//! Action policies in MCollective's actionpolicy format: one file per agent,
//! `<directory>/<agent>.policy`.
//!
//! ```text
//! # comments and blank lines are ignored
//! policy default deny
//! allow<TAB>alice bob<TAB>*<TAB>*<TAB>*
//! allow<TAB>ci<TAB>status restart<TAB>role=web<TAB>nginx
//! deny<TAB>/^contractor-/<TAB>*<TAB>*<TAB>*
//! allow<TAB>*<TAB>status<TAB>fact.role = web and not class = canary<TAB>*
//! ```
//!
//! (`<TAB>` stands for a tab character.) A rule is `allow|deny  CALLERS  ACTIONS  FACTS
//! [CLASSES]`, columns separated by tabs (or,
//! when no column contains a space, by spaces). Callers and actions are `*` or space-separated
//! lists, a caller may be `/regex/`. Facts are `*`, space-separated fact comparisons that must
//! all hold (`role=web cpus>=4`), or an expression of the compound language (`-S`); classes are
//! `*`, classes the node must all have, or a compound expression. The first rule that matches
//! the caller, the action and the node decides; none matching, `policy default` does (deny
//! when the file does not say). A file that does not parse denies everything, loudly: the
//! error names the line.

use muster_proto::{CompiledFilter, FactFilter, Filter, NodeView};
use regex::Regex;

/// A policy file that cannot be used.
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
}

impl Decision {
    /// Whether the request may run.
    pub fn allows(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// `rule on line N` or `the default`, for the audit log and the reply.
    pub fn because(&self) -> String {
        match self {
            Decision::Allow(Some(n)) | Decision::Deny(Some(n)) => format!("rule on line {n}"),
            Decision::Allow(None) | Decision::Deny(None) => "the default".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Callers {
    Any,
    Some(Vec<CallerPattern>),
}

#[derive(Debug, Clone)]
enum CallerPattern {
    Name(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Rule {
    line: usize,
    allow: bool,
    callers: Callers,
    actions: Option<Vec<String>>,
    node: Option<CompiledFilter>,
}

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    default_allow: bool,
    rules: Vec<Rule>,
}

fn is_compound(column: &str) -> bool {
    column.split_whitespace().any(|word| {
        matches!(word, "and" | "or" | "not") || word.starts_with('(') || word.ends_with(')')
    }) || column.contains("fact.")
        || column.contains("class =")
        || column.contains("identity =")
}

fn node_filter(
    facts: &str,
    classes: &str,
    line: usize,
) -> Result<Option<CompiledFilter>, PolicyError> {
    let fail = |message: String| PolicyError { line, message };
    let mut filter = Filter::default();
    let mut compound = Vec::new();
    if facts != "*" {
        if is_compound(facts) {
            compound.push(format!("({facts})"));
        } else {
            for item in facts.split_whitespace() {
                let fact = FactFilter::parse(item).map_err(|e| {
                    fail(format!(
                        "facts column: {item:?}: {e}; write fact comparisons such as role=web, \
                         a compound expression, or *"
                    ))
                })?;
                filter.fact.push(fact);
            }
        }
    }
    if classes != "*" {
        if is_compound(classes) {
            compound.push(format!("({classes})"));
        } else {
            filter
                .class
                .extend(classes.split_whitespace().map(String::from));
        }
    }
    if !compound.is_empty() {
        filter.compound = Some(compound.join(" and "));
    }
    if filter.is_empty() {
        return Ok(None);
    }
    filter.compile().map(Some).map_err(|e| fail(format!("{e}")))
}

fn callers(column: &str, line: usize) -> Result<Callers, PolicyError> {
    if column == "*" {
        return Ok(Callers::Any);
    }
    column
        .split_whitespace()
        .map(
            |item| match item.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                Some(re) => Regex::new(re)
                    .map(CallerPattern::Regex)
                    .map_err(|e| PolicyError {
                        line,
                        message: format!("callers column: invalid regex {item}: {e}"),
                    }),
                None => Ok(CallerPattern::Name(item.to_string())),
            },
        )
        .collect::<Result<_, _>>()
        .map(Callers::Some)
}

impl Policy {
    /// Parses a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut default_allow = None;
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fail = |message: String| PolicyError { line, message };
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            if words.first() == Some(&"policy") {
                match words.as_slice() {
                    ["policy", "default", "allow"] => default_allow = Some(true),
                    ["policy", "default", "deny"] => default_allow = Some(false),
                    _ => {
                        return Err(fail(format!(
                            "{trimmed:?}: write `policy default allow` or `policy default deny`"
                        )));
                    }
                }
                if !rules.is_empty() {
                    return Err(fail("`policy default` must come before the rules".into()));
                }
                continue;
            }
            let columns: Vec<&str> = if trimmed.contains('\t') {
                trimmed
                    .split('\t')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            } else {
                words.clone()
            };
            if !(4..=5).contains(&columns.len()) {
                return Err(fail(format!(
                    "{} columns; a rule is `allow|deny<TAB>callers<TAB>actions<TAB>facts<TAB>classes` \
                     (separate the columns with tabs when one holds spaces)",
                    columns.len()
                )));
            }
            let allow = match columns[0] {
                "allow" => true,
                "deny" => false,
                other => {
                    return Err(fail(format!("{other:?}: a rule starts with allow or deny")));
                }
            };
            let actions = match columns[2] {
                "*" => None,
                list => Some(list.split_whitespace().map(String::from).collect()),
            };
            rules.push(Rule {
                line,
                allow,
                callers: callers(columns[1], line)?,
                actions,
                node: node_filter(columns[3], columns.get(4).copied().unwrap_or("*"), line)?,
            });
        }
        Ok(Policy {
            default_allow: default_allow.unwrap_or(false),
            rules,
        })
    }

    /// What the policy says about `caller` running `action` on `node`.
    pub fn decide(&self, caller: &str, action: &str, node: &dyn NodeView) -> Decision {
        for rule in &self.rules {
            let caller_matches = match &rule.callers {
                Callers::Any => true,
                Callers::Some(patterns) => patterns.iter().any(|p| match p {
                    CallerPattern::Name(name) => name == caller,
                    CallerPattern::Regex(re) => re.is_match(caller),
                }),
            };
            let action_matches = rule
                .actions
                .as_ref()
                .is_none_or(|actions| actions.iter().any(|a| a == action));
            let node_matches = rule.node.as_ref().is_none_or(|f| f.matches(node));
            if caller_matches && action_matches && node_matches {
                return if rule.allow {
                    Decision::Allow(Some(rule.line))
                } else {
                    Decision::Deny(Some(rule.line))
                };
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
allow\t*\tstatus\tfact.role = web and not class = canary\t*
allow carol status * *
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
        let rpcutil = read("rpcutil.policy");
        assert!(rpcutil.decide("anyone", "ping", &web).allows());
        assert!(!rpcutil.decide("anyone", "daemon_stats", &web).allows());
    }

    #[test]
    fn broken_files_name_the_line() {
        for (text, line, needle) in [
            ("policy default maybe", 1, "policy default allow"),
            ("\nallow alice", 2, "2 columns"),
            ("permit\t*\t*\t*\t*", 1, "allow or deny"),
            ("allow\t/(/\t*\t*\t*", 1, "invalid regex"),
            ("allow\t*\t*\tnot a=comparison(\t*", 1, ""),
            ("allow\t*\t*\t=x\t*", 1, "facts column"),
            (
                "allow\t*\t*\t*\t*\npolicy default allow",
                2,
                "before the rules",
            ),
        ] {
            let err = Policy::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }
}
