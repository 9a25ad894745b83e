//! Throwaway keys and credentials for tests of signed mode: an issuer, node and caller keys
//! with their credentials, client configs and policy files, all in one temporary directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use muster_proto::time;
use muster_security::SecretKey;
use muster_security::credential::{Credential, Kind};
use tempfile::TempDir;

use crate::DaemonSpec;

/// An issuer and the files made with it.
pub struct Pki {
    dir: TempDir,
    issuer: SecretKey,
}

/// Now, in the whole seconds a credential's validity counts.
fn now() -> u64 {
    time::whole_secs(time::now())
}

/// A caller's key and credential files.
#[derive(Debug, Clone)]
pub struct CallerFiles {
    /// The private key.
    pub key: PathBuf,
    /// The credential.
    pub credential: PathBuf,
}

impl Pki {
    /// A fresh issuer; its public key is written to `issuer.pub`, and `policies/` is made.
    pub fn new() -> Result<Pki> {
        let dir = tempfile::tempdir()?;
        let issuer = SecretKey::generate();
        issuer.public().write(&dir.path().join("issuer.pub"))?;
        std::fs::create_dir(dir.path().join("policies"))?;
        Ok(Pki { dir, issuer })
    }

    /// The directory everything is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The issuer's public key file.
    pub fn issuer_public(&self) -> PathBuf {
        self.dir().join("issuer.pub")
    }

    /// The directory of policy files nodes of this issuer use.
    pub fn policy_directory(&self) -> PathBuf {
        self.dir().join("policies")
    }

    /// Writes `<agent>.policy`.
    pub fn policy(&self, agent: &str, text: &str) -> Result<()> {
        std::fs::write(
            self.policy_directory().join(format!("{agent}.policy")),
            text,
        )?;
        Ok(())
    }

    /// The audit log file of node `identity`.
    pub fn audit_log(&self, identity: &str) -> PathBuf {
        self.dir().join(format!("audit-{identity}.log"))
    }

    /// The audit log of node `identity`, one JSON value per line.
    pub fn audit(&self, identity: &str) -> Vec<serde_json::Value> {
        crate::read(&self.audit_log(identity))
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn key(&self, name: &str) -> Result<(SecretKey, PathBuf)> {
        let key = SecretKey::generate();
        let path = self.dir().join(format!("{name}.key"));
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        key.write_new(&path)?;
        Ok((key, path))
    }

    /// A credential for `key`, valid from `from` (Unix seconds) for `secs`, written to `file`.
    fn credential(
        &self,
        (kind, name): (Kind, &str),
        key: &SecretKey,
        (from, secs): (u64, u64),
        agents: Option<Vec<String>>,
        file: &str,
    ) -> Result<PathBuf> {
        let credential = Credential::new(kind, name, &key.public(), from, secs, agents)
            .map_err(anyhow::Error::msg)?;
        let path = self.dir().join(file);
        std::fs::write(&path, credential.issue(&self.issuer))?;
        Ok(path)
    }

    /// A daemon spec in signed mode: its key, credential, this issuer, the policies and its
    /// audit log.
    pub fn signed(&self, spec: DaemonSpec) -> Result<DaemonSpec> {
        let identity = spec.identity.clone();
        let (key, key_path) = self.key(&format!("node-{identity}"))?;
        let credential = self.credential(
            (Kind::Node, &identity),
            &key,
            (now() - 60, 30 * 86400),
            None,
            &format!("node-{identity}.cred"),
        )?;
        Ok(spec.security("signed").config(&format!(
            "issuer = {:?}\nkey = {:?}\ncredential = {:?}\npolicy_directory = {:?}\naudit_log = {:?}",
            self.issuer_public(),
            key_path,
            credential,
            self.policy_directory(),
            self.audit_log(&identity),
        )))
    }

    /// A caller's key and a credential valid for a day (limited to `agents`, when given).
    pub fn caller(&self, name: &str, agents: Option<&[&str]>) -> Result<CallerFiles> {
        let (key, key_path) = self.key(&format!("caller-{name}"))?;
        let agents = agents.map(|a| a.iter().map(|s| s.to_string()).collect());
        let credential = self.credential(
            (Kind::Caller, name),
            &key,
            (now() - 60, 86400),
            agents,
            &format!("caller-{name}.cred"),
        )?;
        Ok(CallerFiles {
            key: key_path,
            credential,
        })
    }

    /// A caller whose credential expired an hour ago.
    pub fn expired_caller(&self, name: &str) -> Result<CallerFiles> {
        let (key, key_path) = self.key(&format!("caller-{name}"))?;
        let credential = self.credential(
            (Kind::Caller, name),
            &key,
            (now() - 7200, 3600),
            None,
            &format!("caller-{name}.cred"),
        )?;
        Ok(CallerFiles {
            key: key_path,
            credential,
        })
    }

    /// A client config signing as `caller` and checking replies against this issuer, plus
    /// `extra` lines; returns its path.
    pub fn client_config(&self, caller: &CallerFiles, name: &str, extra: &str) -> Result<PathBuf> {
        let path = self.dir().join(format!("client-{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "key = {:?}\ncredential = {:?}\nissuer = {:?}\n{extra}\n",
                caller.key,
                caller.credential,
                self.issuer_public()
            ),
        )?;
        Ok(path)
    }

    /// The issuer's key, for tests that forge on purpose with another.
    pub fn issuer(&self) -> &SecretKey {
        &self.issuer
    }
}
