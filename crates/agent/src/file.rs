//! The `file` agent: whether a path exists, what is there, and a file's SHA-256.
//!
//! `exists` and `stat` look at the path itself (`lstat`): a symlink is reported as a symlink,
//! even a dangling one, and a missing path is an answer (`exists: false`), not an error.
//! `checksum` follows a final symlink and reads regular files only, up to
//! [`FileConfig::max_checksum_bytes`]. The reading happens on tokio's blocking pool and stops
//! when the action is abandoned (the dispatcher's timeout).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::FileConfig;
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `file` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/file.json");

/// How much `checksum` reads at a time.
const CHUNK: usize = 64 * 1024;

/// The `file` agent.
#[derive(Debug, Clone)]
pub struct File {
    ddl: Ddl,
    config: FileConfig,
}

impl File {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &FileConfig) -> Result<Self, DdlError> {
        Ok(File {
            ddl: Ddl::parse(DDL)?,
            config: config.clone(),
        })
    }

    async fn run(&self, action: &str, data: &Value) -> ActionResult {
        if self.ddl.action(action).is_none() {
            return ActionResult::fail(
                StatusCode::UnknownAction,
                format!(
                    "file has no action {action:?}; its actions are {}",
                    self.ddl.action_names().join(", ")
                ),
            );
        }
        let Some(path) = data.get("path").and_then(Value::as_str) else {
            return ActionResult::fail(
                StatusCode::MissingData,
                "missing input path: give an absolute path, e.g. path=/etc/hosts",
            );
        };
        let path = PathBuf::from(path);
        let max = self.config.max_checksum_bytes;
        // Set when this future is dropped, which stops a checksum still reading.
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel = CancelOnDrop(Arc::clone(&cancelled));
        let action = action.to_string();
        let task = tokio::task::spawn_blocking(move || match action.as_str() {
            "exists" => exists(&path),
            "stat" => stat(&path),
            _ => checksum(&path, max, &cancelled),
        });
        match task.await {
            Ok(result) => result,
            Err(e) => ActionResult::fail(
                StatusCode::UnknownError,
                format!("the file task failed: {e}; this is a bug, please report it"),
            ),
        }
    }
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether an error from looking up a path means nothing is there: no such entry, or a
/// component that is not a directory (`/etc/hosts/x`).
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The failure for a path that cannot be looked at.
fn unreadable(what: &str, path: &Path, e: &io::Error) -> ActionResult {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied {
        "; the daemon's user may not search a directory on the way, or read the file"
    } else {
        ""
    };
    ActionResult::fail(
        StatusCode::Aborted,
        format!("cannot {what} {}: {e}{hint}", path.display()),
    )
}

fn exists(path: &Path) -> ActionResult {
    match fs::symlink_metadata(path) {
        Ok(_) => ActionResult::ok(json!({ "exists": true })),
        Err(e) if is_missing(&e) => ActionResult::ok(json!({ "exists": false })),
        Err(e) => unreadable("look at", path, &e),
    }
}

fn stat(path: &Path) -> ActionResult {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => {
            return ActionResult::ok(json!({
                "exists": false,
                "type": null,
                "size": null,
                "mode": null,
                "uid": null,
                "gid": null,
                "mtime": null,
            }));
        }
        Err(e) => return unreadable("stat", path, &e),
    };
    let kind = meta.file_type();
    let kind = if kind.is_symlink() {
        "symlink"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_file() {
        "file"
    } else {
        "other"
    };
    ActionResult::ok(json!({
        "exists": true,
        "type": kind,
        "size": meta.len(),
        "mode": format!("{:04o}", meta.mode() & 0o7777),
        "uid": meta.uid(),
        "gid": meta.gid(),
        "mtime": rfc3339(meta.mtime()),
    }))
}

fn checksum(path: &Path, max: u64, cancelled: &AtomicBool) -> ActionResult {
    let shown = path.display();
    let aborted = |message: String| ActionResult::fail(StatusCode::Aborted, message);
    // Look before opening: opening a FIFO would wait for a writer.
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => {
            return aborted(format!(
                "no such file: {shown} (nothing is there, or it is a dangling symlink); check \
                 the path, or ask the exists action first"
            ));
        }
        Err(e) => return unreadable("look at", path, &e),
    };
    if meta.is_dir() {
        return aborted(format!(
            "{shown} is a directory; checksum reads regular files only: give the path of a \
             file"
        ));
    }
    if !meta.is_file() {
        return aborted(format!(
            "{shown} is not a regular file (a FIFO, socket or device); checksum reads regular \
             files only"
        ));
    }
    let too_large = |size: u64| {
        format!(
            "{shown} is {size} bytes, larger than the {max} bytes this node checksums; raise \
             max_checksum_bytes in [agents.file] of the server's configuration to allow it"
        )
    };
    if meta.len() > max {
        return aborted(too_large(meta.len()));
    }
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) => return unreadable("open", path, &e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size: u64 = 0;
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return aborted(format!("stopped reading {shown}: the action was abandoned"));
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return unreadable("read", path, &e),
        };
        size = size.saturating_add(n as u64);
        if size > max {
            // It grew while being read.
            return aborted(too_large(size));
        }
        hasher.update(&buf[..n]);
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize().iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    ActionResult::ok(json!({ "sha256": hex, "size": size }))
}

/// Seconds since the Unix epoch as RFC 3339 in UTC (`2024-02-29T13:05:09Z`), for any time a
/// file system can hold, before 1970 included.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

impl Agent for File {
    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        _node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(self.run(action, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (951_868_799, "2000-02-29T23:59:59Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (-2_208_988_800, "1900-01-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (secs, want) in table {
            assert_eq!(rfc3339(secs), want, "{secs}");
        }
        // The extremes format without overflowing.
        assert!(!rfc3339(i64::MAX).is_empty());
        assert!(!rfc3339(i64::MIN).is_empty());
    }

    #[test]
    fn a_cancelled_checksum_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"data").unwrap();
        let r = checksum(&path, 100, &AtomicBool::new(true));
        assert_eq!(r.status, StatusCode::Aborted);
        assert!(r.message.contains("abandoned"), "{}", r.message);
    }
}
