//! Muster's policies against MCollective's actionpolicy plugin, case by case.
//!
//! The cases are the plugin's own specs, with the decision each expects, followed by cases
//! read off the plugin's code where the specs say nothing (tabs, `!`, `policy default`
//! placement, malformed lines). Their policy texts are transcribed, tab for tab, from:
//!
//! - the Ruby plugin, `puppetlabs/mcollective-actionpolicy-auth` at commit
//!   `147896cc5cd6302896cfc760a86d6d8eea479480` (the same as `choria-legacy/…` at
//!   `cf976f9a250bd99d5a5d5e0d1f80d8a9fdde685a`): `spec/actionpolicy/actionpolicy_spec.rb`,
//!   its fixtures `spec/actionpolicy/fixtures/*` and `util/actionpolicy.rb` (named `mco` below);
//! - Choria's Go plugin, `choria-io/go-choria` at commit
//!   `58e80bab58a53d38576238baa011123d5f9eff59`:
//!   `providers/agent/mcorpc/authz_actionpolicy_test.go`, its fixtures
//!   `providers/agent/mcorpc/testdata/policies/*` and `authz_actionpolicy.go` (named `choria`);
//! - the Ruby plugin's successor, `choria-plugins/action-policy` at commit
//!   `310da442cfaf59179eae8d2e57c940923659a64e`: `README.md` and
//!   `files/mcollective/util/actionpolicy.rb`, whose `eval_statement` turns a data function
//!   that fails (or whose plugin is missing) into false (named `action-policy`);
//! - MCollective, `puppetlabs/marionette-collective` at commit
//!   `6ef53c674ebf0066da12ade997999bc98cbf1547`, for data functions: the examples of
//!   `website/reference/basic/basic_cli_usage.md`, `website/reference/plugins/data.md` and
//!   `website/releasenotes.md`, the specs `spec/unit/mcollective/matcher_spec.rb`,
//!   `spec/unit/mcollective/matcher/scanner_spec.rb` and `spec/unit/mcollective/data/*_spec.rb`,
//!   and the code they test, `lib/mcollective/matcher.rb`, `lib/mcollective/matcher/scanner.rb`
//!   and `lib/mcollective/data/*_data.rb` (named `mcollective`).
//!
//! Each case says what MCollective decides. Where Muster decides otherwise on purpose, the case
//! is `Stricter`: MCollective allows, Muster denies (docs/security.md lists each difference).
//! Muster never allows what the reference denies.

use std::path::Path;

use muster_proto::NodeView;
use muster_security::policy::{Groups, Policy};
use serde_json::{Value, json};

struct Node {
    facts: Value,
    classes: Vec<String>,
    agents: &'static [&'static str],
}

impl NodeView for Node {
    fn identity(&self) -> &str {
        "node1"
    }
    fn facts(&self) -> &Value {
        &self.facts
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn has_agent(&self, agent: &str) -> bool {
        self.agents.contains(&agent)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Allow,
    Deny,
    /// MCollective allows; Muster denies on purpose (docs/security.md says why).
    Stricter,
}
use Want::*;

struct Case {
    source: &'static str,
    policy: String,
    caller: &'static str,
    action: &'static str,
    facts: Value,
    classes: &'static [&'static str],
    agents: &'static [&'static str],
    want: Want,
}

/// The Ruby spec's request: caller `rspec_caller`, action `rspec_action`, no facts, classes or
/// agents.
fn mco(source: &'static str, policy: impl Into<String>, want: Want) -> Case {
    Case {
        source,
        policy: policy.into(),
        caller: "rspec_caller",
        action: "rspec_action",
        facts: json!({}),
        classes: &[],
        agents: &[],
        want,
    }
}

impl Case {
    fn caller(mut self, caller: &'static str) -> Case {
        self.caller = caller;
        self
    }
    fn action(mut self, action: &'static str) -> Case {
        self.action = action;
        self
    }
    fn facts(mut self, facts: Value) -> Case {
        self.facts = facts;
        self
    }
    fn classes(mut self, classes: &'static [&'static str]) -> Case {
        self.classes = classes;
        self
    }
    fn agents(mut self, agents: &'static [&'static str]) -> Case {
        self.agents = agents;
        self
    }
}

/// Choria's request: caller `choria=ginkgo.mcollective`, action `test`, the facts of
/// `testdata/facts.json` and the classes of `testdata/classes.txt`.
fn choria(source: &'static str, policy: &'static str, want: Want) -> Case {
    Case {
        source,
        policy: policy.into(),
        caller: "choria=ginkgo.mcollective",
        action: "test",
        facts: json!({"one": "one", "two": "two two", "three": "three three three",
                      "digit": 1, "boolean": false, "nested": {"facts": "value"}}),
        classes: &["one", "two", "three"],
        agents: &[],
        want,
    }
}

const FOO_BAR: fn() -> Value = || json!({"foo": "bar"});
const FOO_BAZ: fn() -> Value = || json!({"foo": "baz"});

fn spec_cases() -> Vec<Case> {
    const EX15: &str = "policy default deny\n\
        allow\t\tuid=500\t\t\t*\t\t\t\t\t\t\t\t\t\t\t\t*\t\t\t\t\t\t\t\t*\n\
        allow\t\tuid=600\t\t\t*\t\t\t\t\t\t\t\t\t\t\t\tcustomer=acme\t\tacme::devserver\n\
        allow\t\tuid=600\t\t\tenable disable status\t\tcustomer=acme\t\t*\n\
        allow\t\tuid=700\t\t\trestart\t\t\t\t\t\t\t\t\t(puppet().enabled=false and environment=production) or environment=development\n";
    const C15: &str = "policy default deny\n\
        allow\t\tchoria=ginkgo.mcollective\t\t\t*\t\t\t\t\t\t\t\t\t\t\t\t*\t\t\t\t\t\t\t\t*\n\
        allow\t\tchoria=two.mcollective\t\t\t*\t\t\t\t\t\t\t\t\t\t\t\tfoo=bar\t\t\t\t\t\t\t\tone\n\
        allow\t\tchoria=three.mcollective\t\t\tenable disable status\t\tfoo=bar\t\t*\n\
        allow\t\tchoria=four.mcollective\t\t\trestart\t\t\t\t\t\t\t\t\t(puppet().enabled=false and environment=production) or environment=development";
    vec![
        // The Ruby spec.
        mco("mco default_allow", "policy default allow\n", Allow),
        mco("mco default_deny", "policy default deny\n", Deny),
        mco("mco: no lines match", "", Deny),
        mco("mco: comment lines are skipped", "#", Deny),
        mco("mco example1", "policy default deny\nallow\t\t*\t\t*\t\t*\t\t*\n", Allow),
        mco("mco example2", "policy default deny\nallow\t\tuid=500\t\t*\t\t*\t\t*\n", Allow).caller("uid=500"),
        mco("mco example2", "policy default deny\nallow\t\tuid=500\t\t*\t\t*\t\t*\n", Deny).caller("uid=501"),
        mco("mco example3", "policy default deny\nallow\t*\trspec\t*\t*\n", Allow).action("rspec"),
        mco("mco example3", "policy default deny\nallow\t*\trspec\t*\t*\n", Deny).action("notrspec"),
        mco("mco example4", "policy default deny\nallow\t*\t*\tfoo=bar\t*\n", Allow).facts(FOO_BAR()),
        mco("mco example4", "policy default deny\nallow\t*\t*\tfoo=bar\t*\n", Deny).facts(json!({"foo": "notbar"})),
        mco("mco example5", "policy default deny\nallow\t*\t*\t*\trspec\n", Allow).classes(&["rspec"]),
        mco("mco example5", "policy default deny\nallow\t*\t*\t*\trspec\n", Deny),
        mco("mco example6", "policy default deny\nallow\tuid=500\trspec\t*\t*\n", Allow).caller("uid=500").action("rspec"),
        mco("mco example6", "policy default deny\nallow\tuid=500\trspec\t*\t*\n", Deny).caller("uid=501").action("notrspec"),
        mco("mco example7", "policy default deny\nallow\tuid=500\t*\tfoo=bar\t*\n", Allow).caller("uid=500").facts(FOO_BAR()),
        mco("mco example7", "policy default deny\nallow\tuid=500\t*\tfoo=bar\t*\n", Deny).caller("uid=501").facts(json!({"foo": "notbar"})),
        mco("mco example8", "policy default deny\nallow\tuid=500\t*\t*\trspec\n", Allow).caller("uid=500").classes(&["rspec"]),
        mco("mco example8", "policy default deny\nallow\tuid=500\t*\t*\trspec\n", Deny).caller("uid=500"),
        mco("mco example9", "policy default deny\nallow\tuid=500\trspec\tfoo=bar\t*\n", Allow).caller("uid=500").action("rspec").facts(FOO_BAR()),
        mco("mco example9", "policy default deny\nallow\tuid=500\trspec\tfoo=bar\t*\n", Deny).caller("uid=501").action("notrspec").facts(json!({"foo": "notbar"})),
        mco("mco example10", "policy default deny\nallow\tuid=500\trspec\t*\trspec\n", Allow).caller("uid=500").action("rspec").classes(&["rspec"]),
        mco("mco example10", "policy default deny\nallow\tuid=500\trspec\t*\trspec\n", Deny).caller("uid=501").action("notrspec"),
        // The spec's example11 case reads example10 (a slip); by the plugin's code this file's
        // rule is no rule (a space, not a tab, after `allow`): skipped, so the default denies.
        mco("mco example11", "policy default deny\nallow uid=500\trspec\tfoo=bar\trspec\n", Deny).caller("uid=500").action("rspec").facts(FOO_BAR()).classes(&["rspec"]),
        mco("mco example12", "policy default deny\nallow\tuid=500\trspec\tfoo=bar and bar=foo\trspec\n", Allow).caller("uid=500").action("rspec").facts(json!({"foo": "bar", "bar": "foo"})).classes(&["rspec"]),
        mco("mco example12: one fact of the and fails", "policy default deny\nallow\tuid=500\trspec\tfoo=bar and bar=foo\trspec\n", Deny).caller("uid=500").action("rspec").facts(FOO_BAR()).classes(&["rspec"]),
        mco("mco example13", "policy default deny\nallow\tuid=500\trspec\tfoo=bar\tone and two or three\n", Allow).caller("uid=500").action("rspec").facts(FOO_BAR()).classes(&["one", "two"]),
        mco("mco example14", "policy default deny\nallow\t\tuid=500\t\trspec\t\tfoo=bar and one or (two and one)\n", Allow).caller("uid=500").action("rspec").facts(FOO_BAR()).classes(&["one"]),
        mco("mco example15 first rule", EX15, Allow).caller("uid=500"),
        mco("mco example15 second rule", EX15, Allow).caller("uid=600").facts(json!({"customer": "acme"})).classes(&["acme::devserver"]),
        mco("mco example15 third rule", EX15, Allow).caller("uid=600").action("status").facts(json!({"customer": "acme"})),
        // A data plugin (`puppet()`) in a compound filter: Muster has no puppet data plugin, so
        // the line is not understood and denies the requests that reach it.
        mco("mco example15 fourth rule", EX15, Stricter).caller("uid=700").action("restart").facts(json!({"environment": "development"})),
        mco("mco example16", "policy default deny\nallow\tuid=500 uid=600 uid=700\t*\t*\t\t*\n\n", Allow).caller("uid=600"),
        mco("mco example16", "policy default deny\nallow\tuid=500 uid=600 uid=700\t*\t*\t\t*\n\n", Deny).caller("uid=800"),
        // is_compound?: `!rspec`, `not`, `and`, `or` and `(…)` make a column compound.
        mco("mco is_compound: !class in classes", "policy default deny\nallow\t*\t*\t*\t!rspec\n", Allow),
        mco("mco is_compound: !class in classes", "policy default deny\nallow\t*\t*\t*\t!rspec\n", Deny).classes(&["rspec"]),
        mco("mco is_compound: 'class1 class2 /class*/' is a list", "policy default deny\nallow\t*\t*\t*\tclass1 class2 /class*/\n", Allow).classes(&["class1", "class2", "classy"]),
        mco("mco is_compound: 'f1=v1 f1=v2' is a list", "policy default deny\nallow\t*\t*\tf1=v1 f2=v2\t*\n", Allow).facts(json!({"f1": "v1", "f2": "v2"})),
        // lookup_fact: a class where a fact is expected fails (Choria: an error, denied).
        mco("mco lookup_fact: a class in the facts column", "policy default allow\nallow\t*\t*\trspec\t*\n", Stricter).classes(&["rspec"]),
        mco("mco lookup_class: a fact in the classes column", "policy default allow\ndeny\t*\t*\t*\tfoo=bar\n", Stricter),
        // Groups (`policies/groups`) are in the groups cases below.

        // Choria's spec (the Go plugin).
        choria("choria example2", "policy default deny\nallow\t\tchoria=ginkgo.mcollective\t\t*\t\t*\t\t*\nallow\t\tchoria=ginkgo.mcollective /^up=.+/\t\t*\t\t*\t\t*", Allow),
        choria("choria example2", "policy default deny\nallow\t\tchoria=ginkgo.mcollective\t\t*\t\t*\t\t*\nallow\t\tchoria=ginkgo.mcollective /^up=.+/\t\t*\t\t*\t\t*", Deny).caller("other"),
        choria("choria example2: regex caller", "policy default deny\nallow\t\tchoria=ginkgo.mcollective\t\t*\t\t*\t\t*\nallow\t\tchoria=ginkgo.mcollective /^up=.+/\t\t*\t\t*\t\t*", Allow).caller("up=bob"),
        choria("choria example5", "policy default deny\nallow\t*\t*\t*\tthree\n", Allow),
        choria("choria example5", "policy default deny\nallow\t*\t*\t*\tthree\n", Deny).classes(&["other", "klasses"]),
        choria("choria example11", "policy default deny\nallow\tchoria=ginkgo.mcollective\ttest\tfoo=bar\tone\n", Allow).facts(FOO_BAR()),
        choria("choria example11", "policy default deny\nallow\tchoria=ginkgo.mcollective\ttest\tfoo=bar\tone\n", Deny).facts(FOO_BAZ()),
        choria("choria example11", "policy default deny\nallow\tchoria=ginkgo.mcollective\ttest\tfoo=bar\tone\n", Deny).facts(FOO_BAR()).classes(&["other", "klasses"]),
        // Choria skips compound lines (example12-14 deny there); the Ruby plugin evaluates them
        // (above) and so does Muster.
        choria("choria example15 policy 2", C15, Allow).caller("choria=two.mcollective").facts(FOO_BAR()),
        choria("choria example15 policy 2", C15, Deny).caller("choria=two.mcollective").facts(FOO_BAZ()),
        choria("choria example15 policy 3", C15, Allow).caller("choria=three.mcollective").action("disable").facts(FOO_BAR()),
        choria("choria example15 policy 3", C15, Deny).caller("choria=three.mcollective").action("other").facts(FOO_BAR()),
        choria("choria example15 policy 4", C15, Deny).caller("choria=four.mcollective").action("restart").facts(json!({"environment": "development"})),
        choria("choria matchesFacts one=~/n/", "allow\t*\t*\tone=~/n/\t*\n", Allow),
        choria("choria matchesFacts nested.facts=~/^al/", "allow\t*\t*\tnested.facts=~/^al/\t*\n", Deny),
        choria("choria matchesFacts nested.facts=~/^val/", "allow\t*\t*\tnested.facts=~/^val/\t*\n", Allow),
        choria("choria matchesFacts: 'foo bar' is invalid", "policy default allow\ndeny\t*\t*\tfoo bar\t*\n", Deny),
        choria("choria matchesClasses one two three", "allow\t*\t*\t*\tone two three\n", Allow),
        choria("choria matchesClasses one two four", "allow\t*\t*\t*\tone two four\n", Deny),
        choria("choria matchesAction", "allow\t*\tone two three\t*\t*\n", Allow).action("two"),
        choria("choria matchesAction", "allow\t*\tone two three\t*\t*\n", Deny).action("install"),
        choria("choria matchesCallerID", "allow\tchoria=bob /^up=/ choria=jill\t*\t*\t*\n", Allow).caller("up=other"),
        choria("choria matchesCallerID", "allow\tchoria=bob /^up=/ choria=jill\t*\t*\t*\n", Deny).caller("up^other"),
        choria("choria matchesCallerID", "allow\tchoria=bob /^up=/ choria=jill\t*\t*\t*\n", Allow).caller("choria=jill"),
        choria("choria matchesCallerID: // is invalid", "policy default allow\ndeny\tchoria=bob //\t*\t*\t*\n", Stricter).caller("up=foo"),
        choria("choria matchesCallerID: /*/ is invalid", "policy default allow\ndeny\tchoria=bob /*/\t*\t*\t*\n", Stricter).caller("up=foo"),
    ]
}

/// What the plugins' code does where their specs say nothing.
fn code_cases() -> Vec<Case> {
    let canary = json!({"env": "prod"});
    vec![
        // `!` negates in the simple form too (is_compound? sends `!x` to the compound parser).
        mco(
            "! in classes: a deny for non-canaries",
            "deny\t*\t*\t*\t!canary\nallow\t*\t*\t*\t*\n",
            Deny,
        ),
        mco(
            "! in classes: canaries pass",
            "deny\t*\t*\t*\t!canary\nallow\t*\t*\t*\t*\n",
            Allow,
        )
        .classes(&["canary"]),
        mco(
            "! in facts",
            "deny\t*\t*\t!env=prod\t*\nallow\t*\t*\t*\t*\n",
            Deny,
        )
        .facts(json!({"env": "dev"})),
        mco(
            "! in facts",
            "deny\t*\t*\t!env=prod\t*\nallow\t*\t*\t*\t*\n",
            Allow,
        )
        .facts(canary.clone()),
        mco(
            "! before a parenthesis",
            "deny\t*\t*\t*\t!(a or b)\nallow\t*\t*\t*\t*\n",
            Deny,
        ),
        mco(
            "not, spaced",
            "deny\t*\t*\tnot env=prod\t*\nallow\t*\t*\t*\t*\n",
            Deny,
        )
        .facts(json!({"env": "dev"})),
        // The compound language: `and` and `or` bind equally, left to right (Ruby's eval).
        mco(
            "and/or bind equally: (a or b) and c",
            "allow\t*\t*\t*\ta or b and c\n",
            Deny,
        )
        .classes(&["a"]),
        mco(
            "and/or bind equally: (a and b) or c",
            "allow\t*\t*\t*\ta and b or c\n",
            Allow,
        )
        .classes(&["c"]),
        mco(
            "not binds tighter than and",
            "allow\t*\t*\t*\tnot a and b\n",
            Allow,
        )
        .classes(&["b"]),
        // `fact.` is no prefix in actionpolicy: `fact.role` is a fact named so.
        mco(
            "fact.role is a fact named fact.role",
            "allow\t*\t*\tfact.role=web and env=prod\t*\n",
            Deny,
        )
        .facts(json!({"role": "web", "env": "prod"})),
        mco(
            "class=x in a compound is a fact named class",
            "allow\t*\t*\tclass=canary or env=x\t*\n",
            Deny,
        )
        .classes(&["canary"]),
        mco(
            "identity=x in a compound is a fact named identity",
            "allow\t*\t*\tidentity=node1 or env=x\t*\n",
            Deny,
        ),
        // Columns are separated by tabs only: other lines are skipped.
        mco(
            "spaces do not separate columns",
            "allow rspec_caller * * *\n",
            Deny,
        ),
        mco(
            "spaces do not separate columns (4)",
            "policy default deny\nallow rspec_caller * *\n",
            Deny,
        ),
        mco("a line indented is no rule", "\tallow\t*\t*\t*\t*\n", Deny),
        mco(
            "an indented policy default is none",
            "  policy default allow\n",
            Deny,
        ),
        mco("Allow is no rule", "Allow\t*\t*\t*\t*\n", Deny),
        mco("three columns are no rule", "allow\t*\t*\n", Deny),
        // `*` is `*` only alone: `* ` (a trailing space) is a class or fact named `*`.
        mco(
            "a trailing space after the classes' *",
            "allow\t*\t*\t*\t* \n",
            Deny,
        ),
        mco(
            "a trailing tab after the classes' *",
            "allow\t*\t*\t*\t*\t\n",
            Deny,
        ),
        mco("a space after the callers' *", "allow\t* \t*\t*\t*\n", Deny),
        mco("a space after the actions' *", "allow\t*\t* \t*\t*\n", Deny),
        mco(
            "a blank column between tabs is a column",
            "allow\t \trspec_caller\t*\t*\n",
            Deny,
        ),
        // Without a classes column the facts column is a compound filter, where `*` is a
        // class named `*` (Choria: an error, denied).
        mco("four columns, facts *", "allow\t*\t*\t*\n", Deny),
        mco("four columns, one fact", "allow\t*\t*\tfoo=bar\n", Allow).facts(FOO_BAR()),
        mco("four columns, one fact", "allow\t*\t*\tfoo=bar\n", Deny).facts(FOO_BAZ()),
        // `policy default` may come anywhere; the last one read counts.
        mco(
            "policy default after the rules",
            "allow\tother\t*\t*\t*\npolicy default allow\n",
            Allow,
        ),
        mco(
            "policy default after the rules",
            "allow\tother\t*\t*\t*\npolicy default deny\n",
            Deny,
        ),
        mco(
            "policy default anything-else denies",
            "policy default yes\n",
            Deny,
        ),
        // A malformed line is skipped by the plugin, with a warning: Muster denies the requests
        // that reach it instead.
        mco(
            "a malformed line before an allow",
            "permit\t*\t*\t*\t*\nallow\t*\t*\t*\t*\n",
            Stricter,
        ),
        mco(
            "a malformed line after the deciding rule",
            "allow\t*\t*\t*\t*\npermit\t*\t*\t*\t*\n",
            Allow,
        ),
        mco(
            "a rule for another caller with an odd facts column",
            "allow\tother\t*\tfoo bar\t*\nallow\t*\t*\t*\t*\n",
            Allow,
        ),
        mco(
            "six columns: the plugin ignores the fifth",
            "allow\t*\t*\t*\tnone\t*\n",
            Stricter,
        ),
    ]
}

/// The groups file of both specs (`fixtures/groups`, `testdata/policies/groups`).
const GROUPS: &str = "# line to ignore
sysadmin cert=sa1 cert=sa2 rspec_caller
app_admin cert=aa1 cert=aa2
single_group rspec_caller
invalid_group
";

fn group_cases() -> Vec<Case> {
    let one = "policy default deny\nallow\tsysadmin\t*\t*\t*\n";
    let c17 = "policy default deny\nallow\tsysadmin app_admin\t*\t*\t*\n";
    vec![
        mco("mco caller_in_groups? sysadmin", one, Allow),
        mco(
            "mco caller_in_groups? app_admin",
            "allow\tapp_admin\t*\t*\t*\n",
            Deny,
        ),
        mco(
            "mco caller_in_groups? single_group",
            "allow\tsingle_group\t*\t*\t*\n",
            Allow,
        ),
        mco("mco caller_in_groups? foo", "allow\tfoo\t*\t*\t*\n", Deny),
        mco(
            "mco: invalid_group has no members",
            "allow\tinvalid_group\t*\t*\t*\n",
            Deny,
        ),
        choria("choria example17", c17, Allow).caller("cert=sa1"),
        choria("choria example17", c17, Allow).caller("cert=aa1"),
        choria("choria example17", c17, Deny),
        // A deny naming a group denies its members, whatever follows.
        mco(
            "deny by group",
            "deny\tsysadmin\t*\t*\t*\nallow\t*\t*\t*\t*\n",
            Deny,
        )
        .caller("cert=sa2"),
        mco(
            "deny by group",
            "deny\tsysadmin\t*\t*\t*\nallow\t*\t*\t*\t*\n",
            Allow,
        )
        .caller("cert=aa1"),
    ]
}

/// `policy default deny` and one rule allowing what `facts` holds for.
fn allow_if(facts: &str) -> String {
    format!("policy default deny\nallow\t*\t*\t{facts}\t*\n")
}

/// A deny for what `facts` holds for, then an allow for everything.
fn deny_if(facts: &str) -> String {
    format!("deny\t*\t*\t{facts}\t*\nallow\t*\t*\t*\t*\n")
}

/// The files the fstat cases look at, made by the test in `dir`: `rspec`, a file holding
/// `rspec` (as in `fstat_data_spec.rb`), mode 0644, modified at 1,000,000,000 seconds; `link`,
/// a symbolic link to it; `socket`; `big`, larger than Muster hashes.
fn make_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("rspec");
    std::fs::write(&file, "rspec")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    std::fs::File::options()
        .write(true)
        .open(&file)?
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))?;
    std::os::unix::fs::symlink(&file, dir.join("link"))?;
    std::os::unix::net::UnixListener::bind(dir.join("socket"))?;
    std::fs::File::create(dir.join("big"))?.set_len(17 << 20)?;
    Ok(())
}

/// Data functions in compound columns: the examples of MCollective's documentation, its
/// matcher's and data plugins' specs, and what their code does. The MCollective cases assume
/// the data plugins the example names are installed.
fn data_cases(dir: &Path) -> Vec<Case> {
    let d = dir.display();
    let f = format!("{d}/rspec");
    // website/releasenotes.md, "Given these facts".
    let release_facts = || {
        json!({"foo": "bar", "baz": ["a", "b"], "numbers": [6, 2, 1],
               "quux": {"foo": "flirble"}})
    };
    // spec/unit/mcollective/data/fact_data_spec.rb, the facts plugin's facts.
    let spec_facts = || {
        json!({"foo": "foo-value",
               "one": {"one": "one-one", "two": {"one": "one-two-one", "two": "one-two-two"}},
               "some_array": ["a", "b"]})
    };
    vec![
        // basic_cli_usage.md, "Filtering Using Data Plugins" (its /etc/hosts digest is the
        // test file's here).
        mco("mcollective basic_cli_usage.md: fstat md5 and environment", allow_if(&format!("fstat('{f}').md5=/2bc84dc69b/ and environment=development")), Allow).facts(json!({"environment": "development"})),
        mco("mcollective basic_cli_usage.md: fstat md5 and environment", allow_if(&format!("fstat('{f}').md5=/2bc84dc69b/ and environment=development")), Deny).facts(json!({"environment": "production"})),
        mco("mcollective basic_cli_usage.md: structured facts", allow_if("fact('os.family').value=/RedHat|Debian/"), Allow).facts(json!({"os": {"family": "RedHat"}})),
        mco("mcollective basic_cli_usage.md: structured facts", allow_if("fact('os.family').value=/RedHat|Debian/"), Deny).facts(json!({"os": {"family": "windows"}})),
        // data.md, the overview's examples.
        mco("mcollective data.md: fstat md5", allow_if(&format!("fstat('{f}').md5=/2bc84dc69b73d/")), Allow),
        mco("mcollective data.md: fact('roles.0')", allow_if("fact('roles.0').value=base"), Allow).facts(json!({"roles": ["base", "web"]})),
        mco("mcollective data.md: fact('roles.0')", allow_if("fact('roles.0').value=base"), Deny).facts(json!({"roles": ["web", "base"]})),
        mco("mcollective data.md: fact('system_uptime.days')>10", allow_if("fact('system_uptime.days').value>10"), Allow).facts(json!({"system_uptime": {"days": 12}})),
        mco("mcollective data.md: fact('system_uptime.days')>10", allow_if("fact('system_uptime.days').value>10"), Deny).facts(json!({"system_uptime": {"days": 3}})),
        // matcher.rb: a string never compares with > or <.
        mco("mcollective data.md + matcher.rb: a string fact is not ordered", allow_if("fact('system_uptime.days').value>10"), Deny).facts(json!({"system_uptime": {"days": "12"}})),
        // Muster has no sysctl data plugin.
        mco("mcollective data.md: sysctl() and location", allow_if("sysctl('net.ipv4.conf.all.forwarding').value=1 and location=dc1"), Stricter).facts(json!({"location": "dc1"})),
        // releasenotes.md: the collective data plugin; a policy does not see collectives.
        mco("mcollective releasenotes.md: collective('us').member", allow_if("collective(\"us\").member=true"), Stricter),
        // releasenotes.md: structured fact queries, with double quotes.
        mco("mcollective releasenotes.md: fact(\"foo\")", allow_if("fact(\"foo\").value=bar"), Allow).facts(release_facts()),
        mco("mcollective releasenotes.md: fact(\"baz.0\")", allow_if("fact(\"baz.0\").value=a"), Allow).facts(release_facts()),
        mco("mcollective releasenotes.md: fact(\"quux.foo\").exists", allow_if("fact(\"quux.foo\").exists=true"), Allow).facts(release_facts()),
        mco("mcollective releasenotes.md: fact(\"quux.foo\").value", allow_if("fact(\"quux.foo\").value=flirble"), Allow).facts(release_facts()),
        mco("mcollective fact_data.rb: a missing key does not exist", allow_if("fact(\"quux.bar\").exists=true"), Deny).facts(release_facts()),
        mco("mcollective fact_data.rb + matcher.rb: numbers compare as numbers", allow_if("fact(\"numbers.1\").value=2"), Allow).facts(release_facts()),
        mco("mcollective fact_data.rb + matcher.rb: numbers compare as numbers", allow_if("fact(\"numbers.0\").value<2"), Deny).facts(release_facts()),
        // releasenotes.md writes spaces around the operator, which MCollective's scanner
        // joins (scanner_spec.rb, "separated by whitespaces"); Muster refuses them.
        mco("mcollective releasenotes.md: fstat md5 = /…/ with spaces", allow_if(&format!("fstat('{f}').md5 = /2bc84dc69b/")), Stricter),
        // The README's service.policy, its columns tab-separated as the README says they must
        // be: Muster has no puppet data plugin.
        mco("action-policy README.md: service.policy", "policy default deny\nallow\tcert=puppet-admins\trestart\t(puppet().enabled=false and environment=production) or environment=development\n", Stricter).caller("cert=puppet-admins").action("restart").facts(json!({"environment": "development"})),
        mco("action-policy README.md: service.policy", "policy default deny\nallow\tcert=puppet-admins\trestart\t(puppet().enabled=false and environment=production) or environment=development\n", Deny).caller("cert=puppet-admins").action("stop").facts(json!({"environment": "development"})),
        // matcher_spec.rb, eval_compound_fstatement.
        mco("mcollective matcher_spec.rb: integer literals (0xa)", allow_if("fact('n').value=0xa"), Allow).facts(json!({"n": 10})),
        mco("mcollective matcher_spec.rb: float literals (0.5e2)", allow_if("fact('n').value=0.5e2"), Allow).facts(json!({"n": 50})),
        mco("mcollective matcher_spec.rb: false=false", allow_if("fact('b').value=false"), Allow).facts(json!({"b": false})),
        mco("mcollective matcher_spec.rb: a string compared with <", allow_if("fact('s').value<teststring"), Deny).facts(json!({"s": "teststring"})),
        mco("mcollective matcher_spec.rb: a TrueClass compared with >", allow_if("fact('b').value>false"), Deny).facts(json!({"b": true})),
        mco("mcollective matcher_spec.rb: a regex on a number", allow_if("fact('n').value=/1/"), Deny).facts(json!({"n": 1})),
        mco("mcollective matcher_spec.rb: a regex that matches", allow_if("fact('s').value=/teststring/"), Allow).facts(json!({"s": "teststring"})),
        mco("mcollective matcher_spec.rb: !=~ a regex that matches", allow_if("fact('s').value!=/teststring/"), Deny).facts(json!({"s": "teststring"})),
        mco("mcollective matcher_spec.rb: \"1\" > \"1\"", allow_if("fact('s').value>1"), Deny).facts(json!({"s": "1"})),
        // A nil answer is false (fstat leaves *_age unset for a missing file), and not false
        // is true.
        mco("mcollective matcher_spec.rb: nil is false", allow_if(&format!("fstat('{d}/nonexisting').mtime_age>=0")), Deny),
        mco("mcollective matcher_spec.rb: not nil", allow_if(&format!("not fstat('{d}/nonexisting').mtime_age>=0")), Allow),
        // Backticks in the argument make the comparison false, so not makes it true.
        mco("mcollective matcher_spec.rb: backticks in parameters", allow_if("not fact('`id`').exists=true"), Stricter),
        mco("mcollective matcher_spec.rb: create_compound_callstack", allow_if("foo('bar')=1 and bar=/bar/"), Deny).facts(json!({"bar": "bar"})),
        // scanner_spec.rb: several parameters are one fstatement; the matcher passes the plugin
        // `a','b`, a path that does not exist.
        mco("mcollective scanner_spec.rb: multiple parameters", allow_if("not fact('a','b').exists=true"), Stricter),
        // scanner_spec.rb: a bad token aborts the request, whatever follows.
        mco("mcollective scanner_spec.rb: a - in the dot value", deny_if("fact('x').val-ue=1"), Deny),
        mco("mcollective scanner_spec.rb: parameters without quotes", deny_if("fact(x).value=1"), Deny),
        // fact_data_spec.rb.
        mco("mcollective fact_data_spec.rb: an unfound fact exists=false", allow_if("fact('bar').exists=false"), Allow).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: an unfound fact value=false", allow_if("fact('bar').value=false"), Allow).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: an unfound fact value_encoding=false", allow_if("fact('bar').value_encoding=false"), Allow).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: a value at top level", allow_if("fact('foo').value=foo-value and fact('foo').value_encoding=text/plain"), Allow).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: walk down to a hash element", allow_if("fact('one.one').value=one-one"), Allow).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: walk down to a hash", allow_if("fact('one.two').value_encoding=application/json"), Allow).facts(spec_facts()),
        // A hash's JSON text: its key order and number format are Ruby's, so Muster does not
        // compare it.
        mco("mcollective fact_data_spec.rb: a hash's value", allow_if("fact('one.two').value=/one-two-one/"), Stricter).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: walk down to an array", allow_if(r"fact('some_array').value=/^\[.a.,.b.\]$/"), Allow).facts(spec_facts()),
        mco("mcollective fact_data_spec.rb: walk down to an array element", allow_if("fact('some_array.0').value=a"), Allow).facts(spec_facts()),
        // fstat_data_spec.rb, on files the test made.
        mco("mcollective fstat_data_spec.rb: missing files", allow_if(&format!("fstat('{d}/nonexisting').output=/^not.present$/ and fstat('{d}/nonexisting').present=0")), Allow),
        mco("mcollective fstat_data_spec.rb: file stats", allow_if(&format!("fstat('{f}').md5=2bc84dc69b73db9383b9c6711d2011b7 and fstat('{f}').type=file and fstat('{f}').output=present and fstat('{f}').size=5 and fstat('{f}').mode=100644")), Allow),
        mco("mcollective fstat_data_spec.rb: file stats, another digest", allow_if(&format!("fstat('{f}').md5=d41d8cd98f00b204e9800998ecf8427e")), Deny),
        mco("mcollective fstat_data_spec.rb: link stats", allow_if(&format!("fstat('{d}/link').type=symlink and fstat('{d}/link').md5=0")), Allow),
        mco("mcollective fstat_data_spec.rb: directory stats", allow_if(&format!("fstat('{d}').type=directory and fstat('{d}').md5=0")), Allow),
        mco("mcollective fstat_data_spec.rb: socket stats", allow_if(&format!("fstat('{d}/socket').type=socket")), Allow),
        mco("mcollective fstat_data_spec.rb: chardev stats", allow_if("fstat('/dev/null').type=chardev"), Allow),
        mco("mcollective fstat_data_spec.rb: mtime_seconds and mtime_age", allow_if(&format!("fstat('{f}').mtime_seconds=1000000000 and fstat('{f}').mtime_age>86400")), Allow),
        // fstat_data.rb: mtime is a local time, in a time zone Muster does not read.
        mco("mcollective fstat_data.rb: mtime", allow_if(&format!("not fstat('{f}').mtime=x")), Stricter),
        // agent_data.rb: the agent's name when the node has it; raises (false) when not.
        mco("mcollective agent_data.rb: an agent the node has", allow_if("agent('rpcutil').agent=rpcutil"), Allow).agents(&["rpcutil"]),
        mco("mcollective agent_data.rb: an agent the node lacks", allow_if("agent('rpcutil').agent=rpcutil"), Deny),
        mco("mcollective agent_data.rb: not an agent the node lacks", allow_if("!agent('puppet').agent=puppet"), Allow).agents(&["rpcutil"]),
        mco("mcollective agent_data.rb: the agent's metadata", allow_if("agent('rpcutil').author=/Pienaar/"), Stricter).agents(&["rpcutil"]),
        // actionpolicy.rb eval_statement: a missing data plugin is false, so not makes it true,
        // and a deny naming it never matches; Muster denies what reaches the line.
        mco("action-policy actionpolicy.rb: not a missing plugin", allow_if("not nosuch('x').value=1"), Stricter),
        mco("action-policy actionpolicy.rb: a deny with a missing plugin", deny_if("nosuch('x').value=1"), Stricter),
        mco("action-policy actionpolicy.rb: a missing plugin for another caller", "allow\tother\t*\tnosuch('x').value=1\t*\nallow\t*\t*\t*\t*\n", Allow),
        // An answer that fails: MCollective's comparison is false, Muster denies the request.
        mco("mcollective fstat_data.rb: md5 of a file larger than Muster hashes", deny_if(&format!("fstat('{d}/big').md5=0")), Stricter),
        mco("mcollective fact_data.rb: a null fact cannot be stored", deny_if("fact('gone').exists=true"), Stricter).facts(json!({"gone": null})),
        mco("mcollective matcher.rb: an invalid number is false", deny_if("not fact('n').value=four"), Stricter).facts(json!({"n": 4})),
        // Ruby's Integer() reads a leading 0 as octal.
        mco("mcollective matcher.rb: Integer(\"010\")", allow_if("fact('n').value=010"), Allow).facts(json!({"n": 8})),
        mco("mcollective matcher.rb: Integer(\"010\")", allow_if("fact('n').value=010"), Deny).facts(json!({"n": 10})),
    ]
}

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let node = Node {
            facts: case.facts.clone(),
            classes: case.classes.iter().map(|c| c.to_string()).collect(),
            agents: case.agents,
        };
        let policy = Policy::read(&case.policy, &Groups::parse(GROUPS));
        let decision = policy.decide(case.caller, case.action, &node);
        let (allowed, why) = (decision.allows(), decision.because());
        let want = case.want == Allow;
        if allowed != want {
            failures.push(format!(
                "{}: {} {} with facts {} classes {:?}: MCollective {:?}, Muster {} ({why})\n  {:?}",
                case.source,
                case.caller,
                case.action,
                case.facts,
                case.classes,
                case.want,
                if allowed { "allows" } else { "denies" },
                case.policy,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_plugins_specs_decide_the_same_under_muster() {
    check(spec_cases());
}

#[test]
fn groups_name_callers() {
    check(group_cases());
}

#[test]
fn what_the_plugins_code_does_muster_does_or_denies() {
    check(code_cases());
}

#[test]
fn data_functions_decide_as_mcollectives_data_plugins() {
    let dir = tempfile::tempdir().unwrap();
    make_files(dir.path()).unwrap();
    check(data_cases(dir.path()));
}
