//! The properties the fuzz targets (`fuzz/`) check, here so their corpora also run as
//! ordinary tests: the policy parser and the credential and signed-message readers take any
//! bytes without panicking, and nothing unsigned by the issuer is ever accepted.

use muster_proto::NodeView;
use serde_json::{Value, json};

use crate::credential::{Credential, Kind};
use crate::keys::SecretKey;
use crate::policy::{Decision, Groups, Policy};
use crate::signed::Verifier;

struct Node(Value, Vec<String>);

impl NodeView for Node {
    fn identity(&self) -> &str {
        "web1"
    }
    fn facts(&self) -> &Value {
        &self.0
    }
    fn classes(&self) -> &[String] {
        &self.1
    }
    fn has_agent(&self, _: &str) -> bool {
        true
    }
}

/// The policy and groups readers, and deciding with what they read: a decision never allows
/// through a line that was not understood.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let policy = Policy::read(&text, &Groups::parse(&text));
    let node = Node(json!({"role": "web", "cpus": 4}), vec!["nginx".into()]);
    for caller in ["alice", "ci", "cert=sa1", ""] {
        for action in ["restart", "status"] {
            let decision = policy.decide(caller, action, &node);
            if let Decision::Allow(Some(line)) = decision {
                assert!(
                    policy.problems().iter().all(|p| p.line != line),
                    "allowed by line {line}, which was not understood"
                );
            }
        }
    }
    let _ = Policy::parse(&text);
}

/// The credential reader and the signed-message checker: with an issuer whose secret key no
/// input can know, nothing verifies.
pub fn credential(data: &[u8]) {
    let issuer = SecretKey::from_seed([7; 32]).public();
    let text = String::from_utf8_lossy(data);
    let _ = Credential::decode_unverified(&text);
    assert!(
        Credential::verify(&text, &issuer, Kind::Caller, 1e9, 5.0).is_err(),
        "a credential the issuer never signed was accepted"
    );
    let verifier = Verifier::new(issuer, 5.0);
    assert!(
        verifier.message(data, 1e9).is_err(),
        "a message the issuer's nodes never signed was accepted"
    );
}
