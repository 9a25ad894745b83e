//! The node credentials this user's client found signed by the issuer, kept between commands
//! (docs/security.md, "What the client remembers"): every `muster` command is a new process,
//! and without this each one would check the issuer's signature on every node's credential
//! again — one ed25519 check per node per command, half of what verifying a signed fleet costs.
//!
//! The file, `credentials-vouched` beside the journal, is a list of 32-byte digests
//! ([`muster_security::signed::Digest`]: the issuer's key and the credential's exact token),
//! appended to by each command that found new ones. It is read only when nobody but its owner
//! can write it, and it starts afresh once it holds a million.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use muster_security::signed::Digest;
use tracing::debug;

/// The file's name, beside the journal.
pub const FILE_NAME: &str = "credentials-vouched";

/// The most bytes kept: a million credentials. A longer file is emptied before it grows more.
const MAX_BYTES: u64 = 32 * 1_000_000;

/// Where the credentials are kept for the journal at `journal`.
pub fn beside(journal: &Path) -> PathBuf {
    journal.with_file_name(FILE_NAME)
}

/// The digests kept at `path`: none if there is no such file, or if it is not a regular file
/// only its owner can write (then it is not believed, and said so in the debug log).
pub fn load(path: &Path) -> Vec<Digest> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Vec::new();
    };
    if !meta.is_file() || meta.mode() & 0o022 != 0 {
        debug!(path = %path.display(), "not a regular file writable by its owner alone: not read");
        return Vec::new();
    }
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .chunks_exact(32)
            .filter_map(|chunk| Digest::try_from(chunk).ok())
            .collect(),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "cannot read the remembered credentials");
            Vec::new()
        }
    }
}

/// Appends `digests` to the file at `path`, made (mode 0600, its directory 0700) if need be.
/// Several commands may append at once: each writes whole digests in one call.
pub fn append(path: &Path, digests: &[Digest]) -> std::io::Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let full = std::fs::metadata(path).is_ok_and(|m| m.len() >= MAX_BYTES);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(!full)
        .write(true)
        .truncate(full)
        .mode(0o600)
        .open(path)?;
    // A digest torn by a crash would shift every later one: cut it off.
    let len = file.metadata()?.len();
    if len % 32 != 0 {
        file.set_len(len - len % 32)?;
    }
    let bytes: Vec<u8> = digests.iter().flatten().copied().collect();
    file.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn digests_are_appended_and_read_back_but_not_from_a_file_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = beside(&dir.path().join("state/journal.sqlite"));
        assert!(load(&path).is_empty());
        append(&path, &[[1; 32], [2; 32]]).unwrap();
        append(&path, &[[3; 32]]).unwrap();
        assert_eq!(load(&path), vec![[1; 32], [2; 32], [3; 32]]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // A torn last digest is left out.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[9; 5])
            .unwrap();
        assert_eq!(load(&path).len(), 3);
        append(&path, &[[4; 32]]).unwrap();
        assert_eq!(load(&path), vec![[1; 32], [2; 32], [3; 32], [4; 32]]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(load(&path).is_empty(), "group-writable: not believed");
    }
}
