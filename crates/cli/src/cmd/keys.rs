//! `muster keygen`, `muster issuer init` and `muster issuer issue`: the keys and credentials of
//! docs/design.md §7.

use std::path::{Path, PathBuf};

use muster_client::ExitStatus;
use muster_security::credential::{Credential, Kind};
use muster_security::{PublicKey, SecretKey};

use crate::args::{IssueArgs, KeygenArgs};
use crate::cmd::print;
use crate::failure::Failure;
use crate::render;

/// `PATH` with `.pub` for its extension.
fn public_path(private: &Path) -> PathBuf {
    private.with_extension("pub")
}

/// Makes `dir` and whichever of its parents are missing, each readable by its owner only:
/// they are made to hold private keys or to sit beside them, so nobody else need look in.
/// Directories that exist keep their mode.
fn make_dirs(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::usage(anyhow::anyhow!("cannot create {}: {e}", dir.display())))
}

/// Makes the missing directories a file is to be written in ([`make_dirs`]).
fn make_parent(file: &Path) -> Result<(), Failure> {
    file.parent().map_or(Ok(()), make_dirs)
}

fn write_pair(key: &SecretKey, private: &Path) -> Result<PathBuf, Failure> {
    let public = public_path(private);
    make_parent(private)?;
    if private.exists() {
        return Err(Failure::usage(anyhow::anyhow!(
            "{} exists; a key is never overwritten (move it away, or give --out another file)",
            private.display()
        )));
    }
    key.write_new(private).map_err(Failure::usage)?;
    key.public().write(&public).map_err(Failure::usage)?;
    Ok(public)
}

/// `muster keygen`.
pub fn keygen(args: KeygenArgs) -> Result<ExitStatus, Failure> {
    let key = SecretKey::generate();
    let public = write_pair(&key, &args.out)?;
    print(|out| render::keys::keygen(out, &args.out, &public))?;
    Ok(ExitStatus::Ok)
}

/// `muster issuer init`.
pub fn issuer_init(dir: &Path) -> Result<ExitStatus, Failure> {
    make_dirs(dir)?;
    let key = SecretKey::generate();
    let private = dir.join("issuer.key");
    let public = write_pair(&key, &private)?;
    print(|out| render::keys::issuer_init(out, &private, &public))?;
    Ok(ExitStatus::Ok)
}

/// `muster issuer issue`.
pub fn issue(args: IssueArgs) -> Result<ExitStatus, Failure> {
    let (kind, name) = match (&args.caller, &args.node) {
        (Some(caller), None) => (Kind::Caller, caller.clone()),
        (None, Some(node)) => (Kind::Node, node.clone()),
        _ => {
            return Err(Failure::usage(anyhow::anyhow!(
                "give --caller NAME or --node IDENTITY"
            )));
        }
    };
    if kind == Kind::Node {
        muster_proto::subject::check_identity(&name).map_err(Failure::usage)?;
        if !args.agents.is_empty() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--agents limits what a caller may run; a node's credential has no such limit"
            )));
        }
    }
    let valid = args.valid;
    // Credentials count in whole seconds: 500ms would be a credential that never was valid.
    if valid.as_secs() == 0 {
        return Err(Failure::usage(anyhow::anyhow!(
            "--valid {}: a credential must be valid for at least 1s",
            humantime::format_duration(valid)
        )));
    }
    let issuer = SecretKey::read(&args.issuer_key).map_err(Failure::usage)?;
    let holder = PublicKey::read(&args.pubkey).map_err(Failure::usage)?;
    let now = muster_proto::time::whole_secs(muster_proto::time::now());
    let agents = (!args.agents.is_empty()).then(|| args.agents.clone());
    let credential = Credential::new(kind, &name, &holder, now, valid.as_secs(), agents)
        .map_err(|e| Failure::usage(anyhow::anyhow!("{e}")))?;
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.cred")));
    make_parent(&out_path)?;
    std::fs::write(&out_path, format!("{}\n", credential.issue(&issuer)))
        .map_err(|e| Failure::usage(anyhow::anyhow!("cannot write {}: {e}", out_path.display())))?;
    print(|out| {
        render::keys::issued(
            out,
            kind.name(),
            &name,
            &out_path,
            credential.expires,
            credential.agents.as_deref(),
        )
    })?;
    Ok(ExitStatus::Ok)
}
