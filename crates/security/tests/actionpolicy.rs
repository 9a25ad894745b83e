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
//!   `providers/agent/mcorpc/testdata/policies/*` and `authz_actionpolicy.go` (named `choria`).
//!
//! Each case says what MCollective decides. Where Muster decides otherwise on purpose, the case
//! is `Stricter`: MCollective allows, Muster denies (docs/security.md lists each difference).
//! Muster never allows what the reference denies.

use muster_proto::NodeView;
use muster_security::policy::{Groups, Policy};
use serde_json::{Value, json};

struct Node {
    facts: Value,
    classes: Vec<String>,
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
    fn has_agent(&self, _: &str) -> bool {
        true
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
    policy: &'static str,
    caller: &'static str,
    action: &'static str,
    facts: Value,
    classes: &'static [&'static str],
    want: Want,
}

/// The Ruby spec's request: caller `rspec_caller`, action `rspec_action`, no facts or classes.
fn mco(source: &'static str, policy: &'static str, want: Want) -> Case {
    Case {
        source,
        policy,
        caller: "rspec_caller",
        action: "rspec_action",
        facts: json!({}),
        classes: &[],
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
}

/// Choria's request: caller `choria=ginkgo.mcollective`, action `test`, the facts of
/// `testdata/facts.json` and the classes of `testdata/classes.txt`.
fn choria(source: &'static str, policy: &'static str, want: Want) -> Case {
    Case {
        source,
        policy,
        caller: "choria=ginkgo.mcollective",
        action: "test",
        facts: json!({"one": "one", "two": "two two", "three": "three three three",
                      "digit": 1, "boolean": false, "nested": {"facts": "value"}}),
        classes: &["one", "two", "three"],
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
        // A data plugin (`puppet()`) in a compound filter: Muster has none, so the line is not
        // understood and denies the requests that reach it.
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

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let node = Node {
            facts: case.facts.clone(),
            classes: case.classes.iter().map(|c| c.to_string()).collect(),
        };
        let policy = Policy::read(case.policy, &Groups::parse(GROUPS));
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
