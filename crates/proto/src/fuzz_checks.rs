//! The properties the fuzz targets (`fuzz/`) check, here so their corpora also run as
//! ordinary tests. Each takes any bytes and panics only when a property fails: decoders never
//! panic, and what decodes encodes and decodes back the same.

use serde_json::{Value, json};

use crate::ddl::Ddl;
use crate::envelope::{Request, Response, SecureEnvelope};
use crate::filter::{FactFilter, Filter, NodeView, compound};
use crate::job::{JobAnswer, JobQuery, JobRecord};
use crate::registration::{Registration, RegistryAnswer, RegistryQuery};

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
