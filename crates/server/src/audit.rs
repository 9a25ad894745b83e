//! The audit log: one JSON line per decision about a request — allowed, denied by policy, or
//! dropped as untrusted — with its reason:
//!
//! ```json
//! {"time":"2026-11-25T18:00:00.123Z","request_id":"01a2…","caller":"alice","agent":"service",
//!  "action":"restart","decision":"denied","reason":"policy: rule on line 4"}
//! ```
//!
//! Lines are handed to one writer thread through a bounded queue, so a slow or stalled disk
//! never holds up the receive path: when the queue is full the line is lost, counted
//! (`audit_lost` in `daemon_stats`) and the loss is logged. The writer writes each line whole in
//! one `write`; a failed write is retried once on a freshly opened file and otherwise logged
//! with its content. The file is reopened when it has been moved or deleted (log rotation), so
//! rotation loses nothing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use muster_proto::time;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

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
        let t = time::now();
        // The fraction of a second as whole milliseconds, 0 to 999.
        let millis = (t.fract() * 1000.0) as u32;
        let secs = time::rfc3339(t);
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

/// How many lines may wait for the writer thread before further ones are lost.
pub const QUEUE: usize = 4096;

/// What the writer thread is given.
enum Entry {
    /// One JSON line, with its newline.
    Line(Vec<u8>),
    /// Answer once everything queued before has been written.
    Flush(oneshot::Sender<()>),
}

/// An audit log file and the thread that writes it.
pub struct AuditLog {
    queue: mpsc::Sender<Entry>,
    losses: Arc<Losses>,
}

/// Lines lost because the writer fell behind.
#[derive(Debug, Default)]
struct Losses {
    /// Since the start.
    lost: Arc<AtomicU64>,
    /// Whether losses have been logged and the writer has not caught up since: the log says
    /// so once per episode, not once per line.
    behind: AtomicBool,
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
    /// Opens (creating it, mode 0600) the audit log at `path` and starts its writer thread.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        Self::with_queue(path, QUEUE)
    }

    /// [`AuditLog::open`] with room for `capacity` waiting lines.
    pub fn with_queue(path: &Path, capacity: usize) -> std::io::Result<AuditLog> {
        let file = open(path)?;
        let (queue, entries) = mpsc::channel(capacity.max(1));
        let losses = Arc::new(Losses::default());
        let writer = Writer {
            path: path.to_path_buf(),
            open: Some(file),
            losses: losses.clone(),
            reported: 0,
        };
        std::thread::Builder::new()
            .name("muster-audit".into())
            .spawn(move || writer.run(entries))?;
        Ok(AuditLog { queue, losses })
    }

    /// Queues one record for the writer; never waits. When the queue is full the record is
    /// lost: counted, and logged once until the writer catches up.
    pub fn record(&self, record: &Record) {
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = self.queue.try_send(Entry::Line(line)) {
            let total = self.losses.lost.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.losses.behind.swap(true, Ordering::Relaxed) {
                error!(
                    lost = total,
                    "the audit log writer is behind ({QUEUE} lines waiting, or it stopped); \
                     records are being lost until it catches up (daemon_stats: audit_lost)"
                );
            }
            if let mpsc::error::TrySendError::Full(Entry::Line(line))
            | mpsc::error::TrySendError::Closed(Entry::Line(line)) = e
            {
                debug!(line = %String::from_utf8_lossy(&line).trim_end(), "lost audit record");
            }
        }
    }

    /// Waits until every record queued before this call has been written (or given up on).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Entry::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// The counter of records lost since the start, for `daemon_stats`.
    pub fn lost(&self) -> Arc<AtomicU64> {
        self.losses.lost.clone()
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    open: Option<Open>,
    losses: Arc<Losses>,
    /// Losses already reported as over.
    reported: u64,
}

impl Writer {
    /// Writes lines until every [`AuditLog`] handle is gone.
    fn run(mut self, mut entries: mpsc::Receiver<Entry>) {
        while let Some(entry) = entries.blocking_recv() {
            match entry {
                Entry::Line(line) => self.write(&line),
                Entry::Flush(done) => {
                    let _ = done.send(());
                }
            }
            if entries.is_empty() {
                self.caught_up();
            }
        }
    }

    /// The queue is empty: if lines were lost meanwhile, say how many.
    fn caught_up(&mut self) {
        if self.losses.behind.swap(false, Ordering::Relaxed) {
            let total = self.losses.lost.load(Ordering::Relaxed);
            warn!(
                lost = total - self.reported,
                total,
                path = %self.path.display(),
                "the audit log writer caught up; records were lost while it was behind"
            );
            self.reported = total;
        }
    }

    fn write(&mut self, line: &[u8]) {
        // Rotated away (renamed or deleted)? Start the new file.
        let moved = match (std::fs::metadata(&self.path), self.open.as_ref()) {
            (Ok(meta), Some(open)) => meta.dev() != open.dev || meta.ino() != open.ino,
            _ => true,
        };
        if moved {
            self.open = open(&self.path).ok();
        }
        for attempt in 0..2 {
            if let Some(open) = self.open.as_mut() {
                match open.file.write_all(line) {
                    Ok(()) => return,
                    Err(e) if attempt == 0 => {
                        error!(error = %e, path = %self.path.display(), "cannot write the audit log; reopening it");
                    }
                    Err(_) => break,
                }
            }
            // Only this thread waits: the receive path goes on queueing.
            std::thread::sleep(Duration::from_millis(10));
            self.open = open(&self.path).ok();
        }
        error!(
            path = %self.path.display(),
            line = %String::from_utf8_lossy(line).trim_end(),
            "cannot write the audit log; the record is here instead"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush(log: &AuditLog) {
        futures::executor::block_on(log.flush());
    }

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
        flush(&log);
        let got = lines(&path);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["decision"], "denied");
        assert_eq!(got[0]["caller"], "alice");
        assert!(got[0]["time"].as_str().unwrap().ends_with('Z'));

        // logrotate's default: rename, then the writer must start a new file.
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        log.record(&Record::now(Decision::Allowed, "policy: the default"));
        flush(&log);
        assert_eq!(lines(&dir.path().join("audit.log.1")).len(), 1);
        assert_eq!(lines(&path).len(), 1);
        // Deleted outright: the same.
        std::fs::remove_file(&path).unwrap();
        log.record(&Record::now(Decision::Dropped, "replayed"));
        flush(&log);
        assert_eq!(lines(&path)[0]["reason"], "replayed");
        // copytruncate: appending goes on at the new end.
        std::fs::write(&path, "").unwrap();
        log.record(&Record::now(Decision::Dropped, "bad_signature"));
        flush(&log);
        assert_eq!(lines(&path).len(), 1);
    }

    /// The audit file stops taking writes (here a pipe nobody reads): recording goes on
    /// without waiting for it, what does not fit in the queue is counted as lost, and every
    /// other record reaches the file, in order, once it takes writes again.
    #[test]
    fn a_stalled_audit_file_does_not_block_recording_and_losses_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a pipe for writing waits for a reader: open one, and read nothing yet.
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || std::fs::File::open(path).unwrap())
        };
        let log = AuditLog::with_queue(&path, 8).unwrap();
        let mut reader = reader.join().unwrap();
        let lost = log.lost();

        // Far more than the pipe's buffer (64 KiB) and the queue hold.
        let total = 400;
        let (done, finished) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            for i in 0..total {
                log.record(&Record::now(Decision::Dropped, format!("{i:01024}")));
            }
            done.send(()).unwrap();
            log
        });
        let blocked = finished.recv_timeout(Duration::from_secs(30)).is_err();
        // Unblock the writer either way, so the test ends.
        let drain = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
            text
        });
        assert!(!blocked, "recording waited for the stalled audit file");
        let log = writer.join().unwrap();
        flush(&log);
        // The writer's end of the pipe closes when the last handle goes.
        drop(log);
        let text = drain.join().unwrap();
        let written: Vec<u64> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["reason"].as_str().unwrap().parse().unwrap()
            })
            .collect();
        let lost = lost.load(Ordering::Relaxed);
        assert!(
            lost > 0,
            "nothing was lost: the test did not stall the writer"
        );
        assert_eq!(
            written.len() as u64 + lost,
            total,
            "every record is written or counted"
        );
        assert!(
            written.windows(2).all(|w| w[0] < w[1]),
            "out of order: {written:?}"
        );
        assert_eq!(written.first(), Some(&0));
    }
}
