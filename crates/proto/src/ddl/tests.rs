use serde_json::json;

use super::*;
use crate::StatusCode;

/// Choria's rpcutil DDL, abridged (Apache-2.0, from go-choria), exactly as Choria ships it.
const CHORIA_RPCUTIL: &str = r#"{
  "$schema": "https://choria.io/schemas/mcorpc/ddl/v1/agent.json",
  "metadata": {"name": "rpcutil", "description": "Utility actions that expose information about the state of the running Server",
               "author": "R.I.Pienaar <rip@devco.net>", "license": "Apache-2.0", "version": "0.29.4",
               "url": "https://choria.io/", "timeout": 2},
  "actions": [
    {"action": "ping", "description": "Responds to requests for PING with PONG", "display": "always",
     "input": {},
     "output": {"pong": {"description": "The local Unix timestamp", "display_as": "Timestamp", "type": "number"}}},
    {"action": "get_fact", "description": "Retrieve a single fact from the fact store", "display": "always",
     "input": {"fact": {"prompt": "The name of the fact", "description": "The fact to retrieve", "type": "string",
                        "default": null, "optional": false, "validation": ".+", "maxlength": 512}},
     "output": {"fact": {"description": "The name of the fact being returned", "display_as": "Fact", "type": "string"},
                "value": {"description": "The value of the fact", "display_as": "Value", "default": null}},
     "aggregate": [{"function": "summary", "args": ["value"]}]}
  ]
}"#;

fn ddl_with_action(action: serde_json::Value) -> String {
    json!({
        "metadata": {"name": "t", "description": "d", "version": "1.0.0", "timeout": 5},
        "actions": [action]
    })
    .to_string()
}

#[test]
fn a_choria_ddl_loads() {
    let ddl = Ddl::parse(CHORIA_RPCUTIL).unwrap();
    assert_eq!(ddl.metadata.name, "rpcutil");
    assert_eq!(ddl.action_names(), ["ping", "get_fact"]);
    let get_fact = ddl.action("get_fact").unwrap();
    assert_eq!(get_fact.display, Display::Always);
    assert_eq!(get_fact.aggregate[0].output(), Some("value"));
    assert_eq!(
        get_fact.output.keys().collect::<Vec<_>>(),
        ["fact", "value"]
    );
    assert!(ddl.warnings.is_empty());
}

#[test]
fn broken_ddls_name_the_path_and_the_problem() {
    let cases: Vec<(String, &str, &str)> = vec![
        ("{".into(), ".", "EOF"),
        ("[]".into(), ".", "must be a JSON object"),
        (json!({"metadata": {}, "actions": []}).to_string(), "metadata", "missing field"),
        (
            json!({"metadata": {"name": "Bad-Name", "description": "d", "version": "1", "timeout": 5}, "actions": []}).to_string(),
            "metadata.name",
            "not a valid agent name",
        ),
        (
            json!({"metadata": {"name": "t", "description": "d", "version": "1", "timeout": 0}, "actions": []}).to_string(),
            "metadata.timeout",
            "at least 1 second",
        ),
        (
            json!({"metadata": {"name": "t", "description": "d", "version": "1", "timeout": 5}, "actions": []}).to_string(),
            "actions",
            "at least one action",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {"type": "strin"}}})),
            "actions[0].input.x.type",
            "unknown variant",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "display": "sometimes"})),
            "actions[0].display",
            "unknown variant",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {"type": "string", "validation": "(["}}})),
            "actions[0].input.x.validation",
            "invalid validation regex",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {"type": "integer", "validation": "shellsafe"}}})),
            "actions[0].input.x.validation",
            "applies to strings",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {"type": "list"}}})),
            "actions[0].input.x.list",
            "list of allowed values",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {"type": "integer", "default": "ten"}}})),
            "actions[0].input.x.default",
            "expected an integer",
        ),
        (
            ddl_with_action(json!({"action": "a", "description": "d", "output": {"o": {"description": "x"}}})),
            "actions[0].output.o",
            "display_as",
        ),
    ];
    for (text, path, needle) in cases {
        let err = Ddl::parse(&text).unwrap_err();
        assert_eq!(err.path, path, "{text}: {err}");
        assert!(err.message.contains(needle), "{text}: {err}");
    }
}

#[test]
fn unknown_named_validators_load_with_a_warning_and_are_held_to_shellsafe() {
    let text = ddl_with_action(
        json!({"action": "a", "description": "d", "input": {"x": {"type": "string", "validation": "site_tags"}}}),
    );
    let ddl = Ddl::parse(&text).unwrap();
    assert_eq!(ddl.warnings.len(), 1);
    assert!(ddl.warnings[0].contains("site_tags"), "{:?}", ddl.warnings);
    assert!(ddl.warnings[0].contains("shellsafe"), "{:?}", ddl.warnings);
    let input = &ddl.actions[0].input["x"];
    assert!(input.check_value("x", &json!("web,db")).is_ok());
    let err = input.check_value("x", &json!("$(reboot)")).unwrap_err();
    assert!(err.to_string().contains("site_tags"), "{err}");
}

/// Aggregates a client cannot compute cost that summary, never the agent: one warning per
/// unknown function name, one per aggregate of an output the action lacks.
#[test]
fn aggregates_that_cannot_be_computed_load_with_a_warning() {
    let text = json!({
        "metadata": {"name": "t", "description": "d", "version": "1", "timeout": 5},
        "actions": [
            {"action": "a", "description": "d", "output": {"o": {"display_as": "O"}},
             "aggregate": [{"function": "median", "args": ["o"]}, {"function": "median", "args": ["o"]},
                           {"function": "summary", "args": ["nope"]}, {"function": "summary", "args": ["o"]}]},
            {"action": "b", "description": "d", "output": {"o": {"display_as": "O"}},
             "aggregate": [{"function": "median", "args": ["o"]}, {"function": "chart", "args": ["o"]}]}
        ]
    })
    .to_string();
    let ddl = Ddl::parse(&text).unwrap();
    assert_eq!(ddl.warnings.len(), 3, "{:?}", ddl.warnings);
    assert!(
        ddl.warnings[0]
            .starts_with("actions[0].aggregate[0].function: unknown aggregate function \"median\"")
    );
    assert!(
        ddl.warnings[1]
            .starts_with("actions[0].aggregate[2].args[0]: the action has no output \"nope\"")
    );
    assert!(ddl.warnings[2].contains("\"chart\""));
    let computed: Vec<bool> = ddl.actions[0]
        .aggregate
        .iter()
        .map(|a| a.computed(&ddl.actions[0]))
        .collect();
    assert_eq!(computed, [false, false, false, true]);
}

#[test]
fn validators() {
    let cases = [
        ("shellsafe", "nginx", true),
        ("shellsafe", "a; rm -rf /", false),
        ("shellsafe", "$(id)", false),
        ("shellsafe", "a`b`", false),
        ("shellsafe", "a\nb", false),
        ("shellsafe", "a|b", false),
        ("ipv4address", "10.0.0.1", true),
        ("ipv4address", "10.0.0.256", false),
        ("ipv4address", "::1", false),
        ("ipv6address", "::1", true),
        ("ipv6address", "fe80::1%eth0", false),
        ("ipaddress", "::1", true),
        ("ipaddress", "192.168.1.1", true),
        ("ipaddress", "host", false),
        ("^[a-z]+$", "nginx", true),
        ("^[a-z]+$", "nginx1", false),
        (".+", "", false),
        (r"\A[a-zA-Z0-9_-]+\z", "check_load", true),
        (r"\A[a-zA-Z0-9_-]+\z", "check load", false),
        ("no_such_validator", "anything", true),
        ("no_such_validator", "tags=$(reboot)", false),
        ("no_such_validator", "a; b", false),
    ];
    for (validation, value, ok) in cases {
        let v = Validator::parse(validation).unwrap();
        assert_eq!(v.check(value).is_ok(), ok, "{validation} {value:?}");
    }
}

/// The named validators Choria's public agents ship, with the cases of each plugin's own spec
/// (`spec/validator/*_spec.rb` in choria-plugins/service-agent at d6a6e9e, package-agent at
/// 0879491, puppet-agent at 37002e7 and nettest-agent at 9e6837a), each error in the plugin's
/// wording; and `tags=$(reboot)` never passes one.
#[test]
fn the_named_validators_of_choria_agents() {
    let good: &[(&str, &[&str])] = &[
        (
            "service_name",
            &[
                "rspec",
                "rspec1",
                "rspec-service",
                "rspec-service-1",
                "rspec.service",
                "rspec@service",
                "rspec:service",
            ],
        ),
        (
            "package_name",
            &[
                "rspec",
                "rspec1",
                "rspec-package",
                "rspec-package-1",
                "rspec.package",
            ],
        ),
        (
            "puppet_resource",
            &["rspec[abc]", "rspec[ ]", "rspec_rspec[rspec]"],
        ),
        ("puppet_variable", &["a", "A", "1a", "a1"]),
        ("puppet_tags", &["one,two::three", "apache", "apache::mod"]),
        (
            "puppet_server_address",
            &[
                "box",
                "box.com",
                "a.box.com",
                "a-nother.box.com",
                "a",
                "1.1.1.1",
                "255.255.255.255",
                "fe80::7a31:c1ff:fed6:92a2",
                "::FFFF:129.144.52.38",
                "2001:0db8:0000:0000:0000:ff00:0042:8329",
                "::1",
                "a:123",
                "1.1.1.1:123",
                "[::1]:123",
                "[2001:0db8:0000:0000:0000:ff00:0042:8329]:9999",
            ],
        ),
        (
            "nettest_fqdn",
            &["1.2.3.4", "host1.example.com", "exmaple.com", "localhost"],
        ),
        ("nettest_server_address", &["host.example.com:8080"]),
    ];
    let bad: &[(&str, &[(&str, &str)])] = &[
        (
            "service_name",
            &[("rspec!", "rspec! is not a valid service name")],
        ),
        (
            "package_name",
            &[("rspec!", "rspec! is not a valid package name")],
        ),
        (
            "puppet_resource",
            &[
                ("rspec", "'rspec' is not a valid resource name"),
                (
                    "rspec[mcollective",
                    "'rspec[mcollective' is not a valid resource name",
                ),
                (
                    "[mcollective]",
                    "'[mcollective]' is not a valid resource name",
                ),
                ("rspec[]", "'rspec[]' is not a valid resource name"),
                (
                    "rspec-rspec[rspec]",
                    "'rspec-rspec[rspec]' is not a valid resource name",
                ),
            ],
        ),
        (
            "puppet_variable",
            &[
                ("1", "Invalid variable name '1' specified"),
                ("a-b", "Invalid variable name 'a-b' specified"),
                ("a.b", "Invalid variable name 'a.b' specified"),
                ("a b", "Invalid variable name 'a b' specified"),
            ],
        ),
        (
            "puppet_tags",
            &[
                ("$(reboot)", "shell metacharacter"),
                ("one,t-wo", "Invalid variable name 't-wo' specified"),
            ],
        ),
        (
            "puppet_server_address",
            &[
                ("foo bar", "The hostname 'foo bar' is not a valid hostname"),
                ("1", "The hostname '1' is not a valid hostname"),
                ("1000", "The hostname '1000' is not a valid hostname"),
                ("300000", "The hostname '300000' is not a valid hostname"),
                ("a_box", "The hostname 'a_box' is not a valid hostname"),
                (
                    "a_nother.box.com",
                    "The hostname 'a_nother.box.com' is not a valid hostname",
                ),
                ("1.2", "The hostname '1.2' is not a valid hostname"),
                (
                    "300.1.1.1",
                    "The hostname '300.1.1.1' is not a valid hostname",
                ),
                ("200.200", "The hostname '200.200' is not a valid hostname"),
                (
                    "fe80::7a31:c1ff:fed6:92a2:e0e0e0",
                    "is not a valid hostname",
                ),
                ("gggg::7a31:c1ff:fed6:92a2", "is not a valid hostname"),
                ("a:a", "The port 'a' is not a valid puppet master port"),
                (
                    "1.1.1.1:a",
                    "The port 'a' is not a valid puppet master port",
                ),
                ("[::1]:a", "The port 'a' is not a valid puppet master port"),
                (
                    "[2001:0db8:0000:0000:0000:ff00:0042:8329]:b",
                    "The port 'b' is not a valid puppet master port",
                ),
                ("$(reboot)", "shell metacharacter"),
            ],
        ),
        (
            "nettest_fqdn",
            &[("not a hostname", "value should be a valid fqdn")],
        ),
        (
            "nettest_server_address",
            &[
                ("host.example.com", "must include both a hostname and port"),
                (":8080", "must include both a hostname and port"),
                (
                    "localhost#:8080",
                    "The hostname 'localhost#' is not a valid hostname",
                ),
                (
                    "host.example.com:rspec",
                    "The port 'rspec' is not a valid port",
                ),
            ],
        ),
    ];
    for (name, values) in good {
        let v = Validator::parse(name).unwrap();
        assert!(matches!(v, Validator::Named(_)), "{name}");
        for value in *values {
            assert_eq!(v.check(value), Ok(()), "{name} {value:?}");
        }
    }
    for (name, values) in bad {
        let v = Validator::parse(name).unwrap();
        for (value, needle) in *values {
            let err = v.check(value).unwrap_err();
            assert!(err.contains(needle), "{name} {value:?}: {err}");
        }
    }
    for (name, _) in super::Named::ALL {
        let v = Validator::parse(name).unwrap();
        assert!(v.check("tags=$(reboot)").is_err(), "{name}");
    }
}

fn service_action() -> Action {
    let text = ddl_with_action(json!({
        "action": "restart", "description": "d",
        "input": {
            "service": {"prompt": "Service", "description": "The service to restart", "type": "string",
                        "validation": "^[a-zA-Z0-9_.@-]+$", "maxlength": 20, "optional": false},
            "count": {"type": "integer", "optional": true},
            "ratio": {"type": "float", "optional": true},
            "force": {"type": "boolean", "optional": true, "default": false},
            "mode": {"type": "list", "list": ["fast", "safe"], "optional": true, "default": "safe"},
            "opts": {"type": "hash", "optional": true},
            "tags": {"type": "array", "optional": true}
        },
        "output": {"status": {"display_as": "Status", "default": "unknown"}}
    }));
    Ddl::parse(&text).unwrap().actions.remove(0)
}

#[test]
fn validation_of_request_inputs() {
    let a = service_action();
    let ok = a
        .validate(json!({"service": "nginx"}).as_object().unwrap())
        .unwrap();
    assert_eq!(ok["force"], false);
    assert_eq!(ok["mode"], "safe");
    assert!(!ok.contains_key("count"));
    let cases: Vec<(serde_json::Value, StatusCode, &str)> = vec![
        (
            json!({}),
            StatusCode::MissingData,
            "missing input service: The service to restart",
        ),
        (
            json!({"service": "nginx", "nope": 1}),
            StatusCode::InvalidData,
            "unknown input \"nope\"",
        ),
        (
            json!({"service": 5}),
            StatusCode::InvalidData,
            "expected a string",
        ),
        (
            json!({"service": "a b"}),
            StatusCode::InvalidData,
            "does not match",
        ),
        (
            json!({"service": "x".repeat(21)}),
            StatusCode::InvalidData,
            "more than the 20 allowed",
        ),
        (
            json!({"service": "a", "count": "5"}),
            StatusCode::InvalidData,
            "expected an integer",
        ),
        (
            json!({"service": "a", "count": 1.5}),
            StatusCode::InvalidData,
            "expected an integer",
        ),
        (
            json!({"service": "a", "ratio": "x"}),
            StatusCode::InvalidData,
            "expected a float",
        ),
        (
            json!({"service": "a", "force": "yes"}),
            StatusCode::InvalidData,
            "expected a boolean",
        ),
        (
            json!({"service": "a", "mode": "slow"}),
            StatusCode::InvalidData,
            "not one of fast, safe",
        ),
        (
            json!({"service": "a", "opts": []}),
            StatusCode::InvalidData,
            "expected a hash",
        ),
        (
            json!({"service": "a", "tags": {}}),
            StatusCode::InvalidData,
            "expected an array",
        ),
    ];
    for (data, status, needle) in cases {
        let err = a.validate(data.as_object().unwrap()).unwrap_err();
        assert_eq!(err.status(), status, "{data}: {err}");
        assert!(err.to_string().contains(needle), "{data}: {err}");
    }
}

#[test]
fn command_line_values_are_converted() {
    let a = service_action();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let data = a
        .convert_and_validate(&pairs(&[
            ("service", "nginx"),
            ("count", "3"),
            ("ratio", "0.5"),
            ("force", "yes"),
            ("mode", "fast"),
            ("opts", r#"{"a": 1}"#),
            ("tags", r#"["x"]"#),
        ]))
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(data),
        json!({"service": "nginx", "count": 3, "ratio": 0.5, "force": true, "mode": "fast",
               "opts": {"a": 1}, "tags": ["x"]})
    );
    let cases = [
        (
            vec![("service", "nginx"), ("count", "three")],
            "\"three\" is not a whole number",
        ),
        (
            vec![("service", "nginx"), ("force", "maybe")],
            "is not a boolean",
        ),
        (
            vec![("service", "nginx"), ("opts", "{")],
            "is not a JSON hash",
        ),
        (
            vec![("service", "nginx"), ("what", "x")],
            "unknown input \"what\"",
        ),
        (vec![("count", "1")], "missing input service"),
    ];
    for (given, needle) in cases {
        let err = a.convert_and_validate(&pairs(&given)).unwrap_err();
        assert!(err.to_string().contains(needle), "{given:?}: {err}");
    }
}

#[test]
fn output_defaults_fill_gaps() {
    let a = service_action();
    let mut data = json!({});
    a.apply_output_defaults(&mut data);
    assert_eq!(data, json!({"status": "unknown"}));
    let mut data = json!({"status": "running"});
    a.apply_output_defaults(&mut data);
    assert_eq!(data["status"], "running");
}

/// Validation patterns written for Go's and Ruby's engines (Choria's and MCollective's DDLs):
/// a brace that opens no counted repetition is a literal there, and here.
#[test]
fn literal_braces_read_as_go_and_ruby_read_them() {
    use super::validate::{Validator, as_go_reads_it};
    let cases: &[(&str, &str)] = &[
        ("^{.+}$", r"^\{.+\}$"),
        (r"^\d{1,3}$", r"^\d{1,3}$"),
        ("^a{2}b{3,}$", "^a{2}b{3,}$"),
        ("x{y}", r"x\{y\}"),
        ("a{,3}", r"a\{,3\}"),
        ("[{}]", "[{}]"),
        (r"[]{]x{", r"[]{]x\{"),
        (r"\{lit\}", r"\{lit\}"),
        ("no braces", "no braces"),
    ];
    // What this engine makes of the pattern as written: a repetition of nothing.
    let as_written = String::from("^{.+}$");
    assert!(regex::Regex::new(&as_written).is_err());
    for (pattern, read) in cases {
        assert_eq!(as_go_reads_it(pattern), *read, "{pattern}");
    }
    let json_object = Validator::parse("^{.+}$").unwrap();
    assert!(json_object.check(r#"{"a":1}"#).is_ok());
    assert!(json_object.check("[1]").is_err());
    let counted = Validator::parse(r"^\d{1,3}$").unwrap();
    assert!(counted.check("123").is_ok() && counted.check("1234").is_err());
}

#[test]
fn an_empty_default_is_not_held_to_the_pattern() {
    let ddl = ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {
        "prompt": "X", "description": "x", "type": "string", "validation": "^{.+}$",
        "default": "", "optional": true, "maxlength": 0}}}));
    Ddl::parse(&ddl).expect("loads");
    let bad = ddl_with_action(json!({"action": "a", "description": "d", "input": {"x": {
        "type": "string", "validation": "^{.+}$", "default": "[]"}}}));
    let e = Ddl::parse(&bad).unwrap_err().to_string();
    assert!(e.contains("default"), "{e}");
}
