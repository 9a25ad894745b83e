//! The audit log: one JSON line per decision about a request — allowed, denied by policy, or
//! dropped as untrusted — with its reason:
//!
//! ```json
//! {"time":"2026-11-25T18:00:00.123Z","request_id":"01a2…","caller":"alice","agent":"service",
//!  "action":"restart","decision":"denied","reason":"policy: rule on line 4"}
//! ```
//!
//! Lines are written as decisions are made, each whole in one `write`, never dropped or
//! batched away: a failed write is retried once on a freshly opened file and otherwise logged
//! with its content. The file is reopened when it has been moved or deleted (log rotation), so
//! rotation loses nothing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::error;

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The request ran.
    Allowed,
    /// Trusted, but the policy or the credential's limits do not allow it (status 6).
    Denied,
    /// Not trusted (or not a request at all): dropped without a reply.
    Dropped,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// When, RFC 3339 with milliseconds.
    pub time: String,
    /// The request id, when it could be read.
    pub request_id: Option<String>,
    /// The caller, when it could be read (for dropped requests: as claimed, unverified).
    pub caller: Option<String>,
    /// The agent, when it could be read.
    pub agent: Option<String>,
    /// The action, when it could be read.
    pub action: Option<String>,
    /// What was decided.
    pub decision: Decision,
    /// Why.
    pub reason: String,
}

impl Record {
    /// A record made now.
    pub fn now(decision: Decision, reason: impl Into<String>) -> Record {
        let t = SystemTime::now();
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_millis());
        let secs = humantime::format_rfc3339_seconds(t).to_string();
        let time = format!("{}.{millis:03}Z", secs.trim_end_matches('Z'));
        Record {
            time,
            request_id: None,
            caller: None,
            agent: None,
            action: None,
            decision,
            reason: reason.into(),
        }
    }
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
}

/// An audit log file.
pub struct AuditLog {
    path: PathBuf,
    open: Mutex<Option<Open>>,
}

fn open(path: &Path) -> std::io::Result<Open> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    Ok(Open {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl AuditLog {
    /// Opens (creating it, mode 0600) the audit log at `path`.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = open(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            open: Mutex::new(Some(file)),
        })
    }

    /// Appends one record.
    pub fn record(&self, record: &Record) {
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        let mut guard = match self.open.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Rotated away (renamed or deleted)? Start the new file.
        let moved = match (std::fs::metadata(&self.path), guard.as_ref()) {
            (Ok(meta), Some(open)) => meta.dev() != open.dev || meta.ino() != open.ino,
            _ => true,
        };
        if moved {
            *guard = open(&self.path).ok();
        }
        for attempt in 0..2 {
            if let Some(open) = guard.as_mut() {
                match open.file.write_all(&line) {
                    Ok(()) => return,
                    Err(e) if attempt == 0 => {
                        error!(error = %e, path = %self.path.display(), "cannot write the audit log; reopening it");
                    }
                    Err(_) => break,
                }
            }
            std::thread::sleep(Duration::from_millis(10));
            *guard = open(&self.path).ok();
        }
        error!(
            path = %self.path.display(),
            line = %String::from_utf8_lossy(&line).trim_end(),
            "cannot write the audit log; the record is here instead"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn records_are_json_lines_and_survive_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let mut record = Record::now(Decision::Denied, "policy: rule on line 4");
        record.request_id = Some("01ab".into());
        record.caller = Some("alice".into());
        log.record(&record);
        let got = lines(&path);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["decision"], "denied");
        assert_eq!(got[0]["caller"], "alice");
        assert!(got[0]["time"].as_str().unwrap().ends_with('Z'));

        // logrotate's default: rename, then the writer must start a new file.
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        log.record(&Record::now(Decision::Allowed, "policy: the default"));
        assert_eq!(lines(&dir.path().join("audit.log.1")).len(), 1);
        assert_eq!(lines(&path).len(), 1);
        // Deleted outright: the same.
        std::fs::remove_file(&path).unwrap();
        log.record(&Record::now(Decision::Dropped, "replayed"));
        assert_eq!(lines(&path)[0]["reason"], "replayed");
        // copytruncate: appending goes on at the new end.
        std::fs::write(&path, "").unwrap();
        log.record(&Record::now(Decision::Dropped, "bad_signature"));
        assert_eq!(lines(&path).len(), 1);
    }
}
