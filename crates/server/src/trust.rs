//! What a node in signed mode holds: the issuer's public key (to check callers), its own key
//! and credential (to sign what it sends), the replay cache and the action policies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use muster_proto::{NodeView, Request};
use muster_security::credential::{Credential, Kind};
use muster_security::policy::{Groups, Policy};
use muster_security::replay::{ReplayCache, ReplayError};
use muster_security::signed::sign_message;
use muster_security::{PublicKey, SecretKey, Verifier};
use tracing::{error, info, warn};

use crate::config::ServerConfig;

/// The node's keys or credential cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustSetupError(pub String);

/// Signs what the node sends with its key, attaching its credential.
pub struct NodeSigner {
    key: SecretKey,
    credential: String,
}

impl NodeSigner {
    /// `message` (JSON text) signed, as bytes to send.
    pub fn seal(&self, message: String) -> Vec<u8> {
        sign_message(message, &self.key, &self.credential)
    }
}

/// An agent's policy as loaded.
#[derive(Debug)]
enum AgentPolicy {
    Loaded(Policy),
    Missing(PathBuf),
    Broken(String),
}

/// The node's trust material.
pub struct NodeTrust {
    /// Checks callers' signatures and credentials.
    pub verifier: Verifier,
    /// Signs replies, acknowledgements and registrations.
    pub signer: std::sync::Arc<NodeSigner>,
    replay: Mutex<ReplayCache>,
    policy_directory: PathBuf,
    policies: RwLock<BTreeMap<String, AgentPolicy>>,
}

fn read_text(path: &Path, what: &str) -> Result<String, TrustSetupError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| TrustSetupError(format!("cannot read the {what} {}: {e}", path.display())))
}

/// The callers' groups, `<directory>/groups`: none when the file does not exist, `Err` (every
/// policy then denies) when it exists but cannot be read, since a deny naming a group must not
/// silently stop applying to its members.
fn load_groups(directory: &Path) -> Result<Groups, String> {
    let path = directory.join("groups");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let groups = Groups::parse(&text);
            // A line not understood may define a group some deny names: skipping it would let
            // the group's members past that deny, so every request is denied instead.
            let problems: Vec<String> = groups.problems().iter().map(|p| p.to_string()).collect();
            if problems.is_empty() {
                Ok(groups)
            } else {
                for problem in &problems {
                    error!(file = %path.display(), "BROKEN POLICY groups {problem}");
                }
                Err(format!(
                    "{} could not be understood ({}), so every request is denied",
                    path.display(),
                    problems.join("; ")
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Groups::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Every agent's policy, read but not yet in force.
pub struct Policies(BTreeMap<String, AgentPolicy>);

fn load_policies(directory: &Path, agents: &[String]) -> BTreeMap<String, AgentPolicy> {
    let groups = load_groups(directory);
    agents
        .iter()
        .map(|agent| {
            let path = directory.join(format!("{agent}.policy"));
            let policy = match (std::fs::read_to_string(&path), &groups) {
                (Ok(text), Ok(groups)) => {
                    let policy = Policy::read(&text, groups);
                    // Loud, once per load: each line not understood denies the requests
                    // that reach it, and says so in their replies and audit records.
                    for problem in policy.problems() {
                        error!(
                            agent = %agent,
                            "BROKEN POLICY {} {problem}",
                            path.display()
                        );
                    }
                    AgentPolicy::Loaded(policy)
                }
                (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => {
                    AgentPolicy::Missing(path)
                }
                (Err(e), _) => {
                    let message = format!("cannot read {}: {e}", path.display());
                    error!(agent = %agent, "{message}: every request for agent {agent} is denied");
                    AgentPolicy::Broken(message)
                }
                (Ok(_), Err(message)) => {
                    error!(agent = %agent, "{message}: every request for agent {agent} is denied");
                    AgentPolicy::Broken(message.clone())
                }
            };
            (agent.clone(), policy)
        })
        .collect()
}

impl NodeTrust {
    /// Loads the issuer key, the node's key and credential (checked: issued by the issuer, for
    /// this identity and this key, valid at `now`) and the policies of `agents`.
    pub fn load(
        config: &ServerConfig,
        identity: &str,
        agents: &[String],
        now: f64,
    ) -> Result<NodeTrust, TrustSetupError> {
        let need = |p: &Option<PathBuf>, what: &str| {
            p.clone()
                .ok_or_else(|| TrustSetupError(format!("security = \"signed\" needs {what}")))
        };
        let issuer = PublicKey::read(&need(&config.issuer, "issuer")?)
            .map_err(|e| TrustSetupError(format!("issuer: {e}")))?;
        let key = SecretKey::read(&need(&config.key, "key")?)
            .map_err(|e| TrustSetupError(format!("key: {e}")))?;
        let credential_path = need(&config.credential, "credential")?;
        let credential = read_text(&credential_path, "credential")?;
        let skew = config.clock_skew.as_secs_f64();
        let vouched =
            Credential::verify(&credential, &issuer, Kind::Node, now, skew).map_err(|e| {
                TrustSetupError(format!("credential {}: {e}", credential_path.display()))
            })?;
        if vouched.name != identity {
            return Err(TrustSetupError(format!(
                "credential {} is for node {:?}, but this node is {identity:?}; issue one with \
                 `muster issuer issue --node {identity} --pubkey …`",
                credential_path.display(),
                vouched.name
            )));
        }
        if vouched.key().ok() != Some(key.public()) {
            return Err(TrustSetupError(format!(
                "credential {} is for another key than {}",
                credential_path.display(),
                config
                    .key
                    .as_ref()
                    .map_or(String::new(), |k| k.display().to_string())
            )));
        }
        let days_left = (vouched.expires as f64 - now) / 86400.0;
        if days_left < 7.0 {
            warn!(
                days_left = format!("{days_left:.1}"),
                "this node's credential expires soon; issue a new one"
            );
        }
        let policies = load_policies(&config.policy_directory, agents);
        info!(
            directory = %config.policy_directory.display(),
            loaded = policies.values().filter(|p| matches!(p, AgentPolicy::Loaded(_))).count(),
            "signed mode: checking signatures, credentials, replays and policies"
        );
        Ok(NodeTrust {
            verifier: Verifier::new(issuer, skew),
            signer: std::sync::Arc::new(NodeSigner { key, credential }),
            replay: Mutex::new(ReplayCache::new(config.replay_cache)),
            policy_directory: config.policy_directory.clone(),
            policies: RwLock::new(policies),
        })
    }

    /// Reads the policies again (SIGHUP), to be put in force with [`NodeTrust::set_policies`]
    /// once everything else being reloaded is complete too.
    pub fn read_policies(&self, agents: &[String]) -> Policies {
        Policies(load_policies(&self.policy_directory, agents))
    }

    /// Puts policies read by [`NodeTrust::read_policies`] in force, all at once.
    pub fn set_policies(&self, fresh: Policies) {
        info!(directory = %self.policy_directory.display(), "reloaded the policies");
        match self.policies.write() {
            Ok(mut p) => *p = fresh.0,
            Err(poisoned) => *poisoned.into_inner() = fresh.0,
        }
    }

    /// Admits the request's id into the replay cache, or says why not.
    pub fn admit_id(&self, request: &Request, skew: f64, now: f64) -> Result<(), ReplayError> {
        let expires = request.time + request.ttl as f64 + skew;
        let mut cache = match self.replay.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache.admit(&request.id, expires, now)
    }

    /// Whether deciding on a request for `agent` may read the node's file system (its policy
    /// calls `fstat()`).
    pub fn policy_reads_files(&self, agent: &str) -> bool {
        let policies = match self.policies.read() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        matches!(policies.get(agent), Some(AgentPolicy::Loaded(policy)) if policy.reads_files())
    }

    /// Whether `credential`'s holder may run `request` on `node`: the credential's agent
    /// limits, then the agent's policy. `Ok` and `Err` both carry the reason for the audit log.
    pub fn authorize(
        &self,
        credential: &Credential,
        request: &Request,
        node: &dyn NodeView,
    ) -> Result<String, String> {
        if !credential.allows_agent(&request.agent) {
            return Err(format!(
                "credential limits {} to agents {}",
                credential.name,
                credential.agents.as_deref().unwrap_or_default().join(", ")
            ));
        }
        let policies = match self.policies.read() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        match policies.get(&request.agent) {
            Some(AgentPolicy::Loaded(policy)) => {
                let decision = policy.decide(&request.caller, &request.action, node);
                let why = format!("policy {}: {}", request.agent, decision.because());
                if decision.allows() { Ok(why) } else { Err(why) }
            }
            Some(AgentPolicy::Missing(path)) => Err(format!(
                "no policy for agent {} ({} does not exist)",
                request.agent,
                path.display()
            )),
            Some(AgentPolicy::Broken(message)) => Err(format!("broken policy: {message}")),
            None => Err(format!("no policy for agent {}", request.agent)),
        }
    }
}
