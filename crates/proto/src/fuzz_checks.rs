//! The properties the fuzz targets (`fuzz/`) check, here so their corpora also run as
//! ordinary tests. Each takes any bytes and panics only when a property fails: decoders never
//! panic, what decodes encodes and decodes back the same, and what decodes can be shown.

// A property that fails is a panic: that is how the fuzzer hears of it.
#![allow(
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};

use crate::ddl::Ddl;
use crate::envelope::{Request, Response, SecureEnvelope};
use crate::filter::{FactFilter, Filter, NodeView, compound};
use crate::job::{JobAnswer, JobQuery, JobRecord};
use crate::registration::{Registration, RegistryAnswer, RegistryQuery};
use crate::time;

struct Node(Value, Vec<String>);

impl NodeView for Node {
    fn identity(&self) -> &str {
        "web1.example.com"
    }
    fn facts(&self) -> &Value {
        &self.0
    }
    fn classes(&self) -> &[String] {
        &self.1
    }
    fn has_agent(&self, agent: &str) -> bool {
        agent == "rpcutil"
    }
}

fn node() -> Node {
    Node(
        json!({"role": "web", "os": {"family": "Debian", "release": 12}, "cpus": 8, "tags": ["a"]}),
        vec!["nginx".into(), "base".into()],
    )
}

/// The envelope and request decoders, and every other wire decoder.
pub fn envelope(data: &[u8]) {
    if let Ok(envelope) = SecureEnvelope::decode(data) {
        let again = SecureEnvelope::decode(&envelope.to_bytes()).expect("an envelope re-decodes");
        assert_eq!(again, envelope);
        request(envelope.request.as_bytes());
    }
    let _ = Response::decode(data);
    let _ = Registration::decode(data);
    let _ = RegistryQuery::decode(data);
    let _ = RegistryAnswer::decode(data);
    let _ = JobRecord::decode(data);
    let _ = JobQuery::decode(data);
    let _ = JobAnswer::decode(data);
}

/// The inner request decoder: a request that decodes re-encodes to one that decodes equal,
/// and its filter compiles or says why, never panics.
pub fn request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = Request::decode(text) {
        let again = Request::decode(&request.to_json()).expect("a request re-decodes");
        assert_eq!(again.id, request.id);
        assert_eq!(again.data, request.data);
        if let Ok(filter) = request.filter.compile() {
            let _ = filter.matches(&node());
        }
    }
}

/// The filter parsers: fact comparisons, identity and class patterns, and the compound
/// language, whose printed form parses back to the same expression.
pub fn filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = FactFilter::parse(&text);
    if let Ok(expr) = compound::parse(&text) {
        let printed = expr.to_string();
        let back = compound::parse(&printed).expect("a printed expression parses");
        assert_eq!(back.to_string(), printed, "printing is stable");
    }
    let mut f = Filter {
        compound: Some(text.to_string()),
        identity: vec![text.to_string()],
        class: vec![text.to_string()],
        ..Filter::default()
    };
    let _ = f.add_with(&text);
    if let Ok(compiled) = f.compile() {
        let _ = compiled.matches(&node());
    }
}

/// The DDL loader, and input validation with what it loaded.
pub fn ddl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ddl) = Ddl::parse(text) {
        for action in &ddl.actions {
            let pairs: Vec<(String, String)> = action
                .input
                .keys()
                .map(|k| (k.clone(), "1".to_string()))
                .collect();
            let _ = action.convert_and_validate(&pairs);
        }
    }
}

/// A fixed "now" for ages: 2026-11-25T10:00:00Z.
const NOW: f64 = 1_795_600_800.0;

/// Shows a wire time the ways the CLI does: RFC 3339 (which parses back), as a `SystemTime`,
/// and as an age from now in both directions.
fn shown(unix: f64) {
    let text = time::rfc3339(unix);
    assert!(
        text.len() == 20 && text.ends_with('Z'),
        "{unix} is shown as {text:?}"
    );
    let _ = time::system_time(unix);
    let _ = time::millis_between(unix, NOW);
    let _ = time::millis_between(NOW, unix);
}

/// The registry answer decoder (`muster ping|find|rpc|facts` reconcile discovery with it), and
/// showing every time in an answer that decodes.
pub fn registry_answer(data: &[u8]) {
    let Ok(answer) = RegistryAnswer::decode(data) else {
        return;
    };
    let again = RegistryAnswer::decode(&answer.to_bytes()).expect("an answer re-decodes");
    assert_eq!(again, answer);
    for node in &answer.nodes {
        shown(node.first_seen);
        shown(node.last_seen);
        if let Some(record) = &node.record {
            shown(record.time);
            shown(record.started as f64);
        }
    }
}

/// The job answer and record decoders (`muster show` rebuilds a report from them), showing
/// their times, and naming the nodes of every part an event names: never more than expected,
/// and for a batch never more than the batch size.
pub fn job_answer(data: &[u8]) {
    if let Ok(job) = JobRecord::decode(data) {
        let again = JobRecord::decode(&job.to_bytes()).expect("a record re-decodes");
        assert_eq!(again, job);
        parts(&job, ["0", "1", "b0", "b1", "b18446744073709551615"]);
    }
    let Ok(answer) = JobAnswer::decode(data) else {
        return;
    };
    let again = JobAnswer::decode(&answer.to_bytes()).expect("an answer re-decodes");
    assert_eq!(again, answer);
    for event in &answer.events {
        shown(event.received);
        if let Some(reply) = &event.reply {
            shown(reply.time);
        }
    }
    if let Some(job) = &answer.job {
        shown(job.time);
        parts(job, answer.events.iter().map(|e| e.part.as_str()));
    }
}

fn parts<'a>(job: &JobRecord, parts: impl IntoIterator<Item = &'a str>) {
    for part in parts {
        let nodes = job.part_nodes(part);
        assert!(nodes.len() <= job.expected.len(), "part {part}");
        if let Some(size) = job.batch_size
            && part.starts_with('b')
        {
            assert!(nodes.len() <= size, "part {part}");
        }
    }
}
