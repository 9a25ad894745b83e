//! The journal: every request this client sent, with its expected set and each node's
//! outcome, in a local SQLite file — so `muster show ID` can tell later who got it and who did
//! not, and `muster retry ID --missing` can send it again to exactly those.
//!
//! The default file is `$XDG_DATA_HOME/muster/journal.sqlite` (`~/.local/share/muster/…`).
//! Writes happen after a request has finished, in one transaction, so they never slow one.

use std::path::{Path, PathBuf};

use muster_proto::Filter;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::report::{Outcome, Report};

/// What went wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened or created.
    #[error("cannot open the journal {path}: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A read or write failed.
    #[error("journal {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// No request has that id (or prefix).
    #[error("no request {0} in the journal; `muster history` lists the recent ones")]
    NotFound(String),
    /// An id prefix matches several requests.
    #[error("{0:?} matches several requests; give more of the id")]
    Ambiguous(String),
    /// No path was given and there is no home directory for the default one.
    #[error("cannot find a home directory for the journal; give --journal PATH")]
    NoHome,
    /// The journal is off.
    #[error("the journal is off (--journal off)")]
    Off,
}

/// Where requests are recorded: `--journal PATH|off`, or the default file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JournalTarget {
    /// `$XDG_DATA_HOME/muster/journal.sqlite` ([`Journal::default_path`]).
    #[default]
    Default,
    /// This file.
    Path(PathBuf),
    /// Nowhere (`--journal off`).
    Off,
}

impl JournalTarget {
    /// `off` is [`JournalTarget::Off`], any other path that file, none the default.
    pub fn from_flag(path: Option<&Path>) -> Self {
        match path {
            Some(p) if p.as_os_str() == "off" => JournalTarget::Off,
            Some(p) => JournalTarget::Path(p.to_path_buf()),
            None => JournalTarget::Default,
        }
    }

    /// Where the client keeps the node credentials it found signed by the issuer
    /// ([`crate::remembered`]): beside the journal; nowhere when the journal is off.
    pub fn remembered_credentials(&self) -> Option<PathBuf> {
        match self {
            JournalTarget::Off => None,
            JournalTarget::Path(p) => Some(crate::remembered::beside(p)),
            JournalTarget::Default => {
                Journal::default_path().map(|p| crate::remembered::beside(&p))
            }
        }
    }

    /// Opens the journal; `None` when it is off.
    pub fn open(&self) -> Result<Option<Journal>, JournalError> {
        let path = match self {
            JournalTarget::Off => return Ok(None),
            JournalTarget::Path(p) => p.clone(),
            JournalTarget::Default => Journal::default_path().ok_or(JournalError::NoHome)?,
        };
        Journal::open(&path).map(Some)
    }

    /// Opens the journal to read it: that it is off is an error.
    pub fn open_existing(&self) -> Result<Journal, JournalError> {
        self.open()?.ok_or(JournalError::Off)
    }

    /// Records `entry`, unless the journal is off.
    pub fn record(&self, entry: &Entry) -> Result<(), JournalError> {
        match self.open()? {
            Some(journal) => journal.record(entry),
            None => Ok(()),
        }
    }
}

/// One journalled request.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it was sent, Unix seconds.
    pub time: f64,
    /// The inputs it was sent with.
    pub data: Value,
    /// The filter it was sent with.
    pub filter: Filter,
    /// The request this one retried, if any.
    pub retry_of: Option<String>,
    /// The report, with every expected node's outcome. For a request sent with
    /// `--no-results` ([`Entry::collected`]) only its id, agent, action and expected count.
    pub report: Report,
    /// Sent with `--no-results`: the replies are in a registry, not here.
    pub collected: bool,
}

impl Entry {
    /// The entry of a finished request, sent when its report says (its elapsed time before
    /// now).
    pub fn of_report(
        call: &crate::Call,
        filter: &Filter,
        retry_of: Option<String>,
        report: &Report,
    ) -> Entry {
        Entry {
            time: crate::request::unix_now() - (report.stats.elapsed_ms as f64 / 1000.0),
            data: call.data.clone(),
            filter: filter.clone(),
            retry_of,
            report: report.clone(),
            collected: false,
        }
    }

    /// The entry of a request sent with `--no-results`: what was sent to whom; the replies
    /// are in a registry.
    pub fn of_sent(
        call: &crate::Call,
        filter: &Filter,
        job: &muster_proto::job::JobRecord,
    ) -> Entry {
        let report = Report {
            request_id: job.id.clone(),
            agent: call.agent.clone(),
            action: call.action.clone(),
            stats: crate::Stats {
                expected: job.expected.len().saturating_add(job.absent.len()),
                ..crate::Stats::default()
            },
            missing: Vec::new(),
            replies: Vec::new(),
            aggregates: Vec::new(),
            discovery: None,
            ignored: Vec::new(),
            lost: None,
        };
        Entry {
            time: job.time,
            data: call.data.clone(),
            filter: filter.clone(),
            retry_of: job.retry_of.clone(),
            report,
            collected: true,
        }
    }

    /// The nodes a retry sends to: those that did not answer (`missing`: no reply, timeout,
    /// not connected) and those that failed (`failed`).
    pub fn retry_nodes(&self, missing: bool, failed: bool) -> std::collections::BTreeSet<String> {
        let mut outcomes = Vec::new();
        if missing {
            outcomes.extend([Outcome::NoReply, Outcome::Timeout, Outcome::NotConnected]);
        }
        if failed {
            outcomes.push(Outcome::Failed);
        }
        self.nodes_with(&outcomes).into_iter().collect()
    }

    /// The call it was.
    pub fn call(&self) -> crate::Call {
        crate::Call {
            agent: self.report.agent.clone(),
            action: self.report.action.clone(),
            data: self.data.clone(),
        }
    }

    /// The identities whose outcome was one of `outcomes`.
    pub fn nodes_with(&self, outcomes: &[Outcome]) -> Vec<String> {
        let missing = self
            .report
            .missing
            .iter()
            .filter(|m| outcomes.contains(&m.outcome))
            .map(|m| m.identity.clone());
        let replied = self
            .report
            .replies
            .iter()
            .filter(|r| outcomes.contains(&r.outcome))
            .map(|r| r.sender.clone());
        let mut all: Vec<String> = missing.chain(replied).collect();
        all.sort();
        all
    }
}

/// The journal file.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    agent TEXT NOT NULL,
    action TEXT NOT NULL,
    data TEXT NOT NULL,
    filter TEXT NOT NULL,
    retry_of TEXT,
    expected INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    unexpected INTEGER NOT NULL,
    report TEXT NOT NULL,
    collected INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (time);
";

impl Journal {
    /// The default journal file: `$XDG_DATA_HOME/muster/journal.sqlite`.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "muster")
            .map(|dirs| dirs.data_dir().join("journal.sqlite"))
    }

    /// Opens (creating it and its directory if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let fail = |message: String| JournalError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| fail(e.to_string()))?;
        // Journals made before `collected` existed get the column.
        let has_collected: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('requests') WHERE name = 'collected'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| fail(e.to_string()))?;
        if !has_collected {
            conn.execute_batch(
                "ALTER TABLE requests ADD COLUMN collected INTEGER NOT NULL DEFAULT 0",
            )
            .map_err(|e| fail(e.to_string()))?;
        }
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn io(&self, e: impl std::fmt::Display) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Records a finished request.
    pub fn record(&self, entry: &Entry) -> Result<(), JournalError> {
        let r = &entry.report;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO requests
                 (id, time, agent, action, data, filter, retry_of, expected, ok, failed, missing,
                  unexpected, report, collected)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    r.request_id,
                    entry.time,
                    r.agent,
                    r.action,
                    json(&entry.data),
                    json(&entry.filter),
                    entry.retry_of,
                    r.stats.expected as i64,
                    r.stats.ok as i64,
                    r.stats.failed as i64,
                    r.stats.missing as i64,
                    r.stats.unexpected as i64,
                    json(r),
                    entry.collected,
                ],
            )
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// The most recent requests, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Entry>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time, data, filter, retry_of, report, collected FROM requests
                 ORDER BY time DESC LIMIT ?1",
            )
            .map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map(params![limit as i64], row_to_parts)
            .map_err(|e| self.io(e))?;
        let mut entries = Vec::new();
        for row in rows {
            let parts = row.map_err(|e| self.io(e))?;
            entries.push(parts_to_entry(parts).map_err(|e| self.io(e))?);
        }
        Ok(entries)
    }

    /// The request with this id, or the only one whose id starts with it.
    pub fn get(&self, id: &str) -> Result<Entry, JournalError> {
        let exact = self
            .conn
            .query_row(
                "SELECT time, data, filter, retry_of, report, collected FROM requests WHERE id = ?1",
                params![id],
                row_to_parts,
            )
            .optional()
            .map_err(|e| self.io(e))?;
        if let Some(parts) = exact {
            return parts_to_entry(parts).map_err(|e| self.io(e));
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time, data, filter, retry_of, report, collected FROM requests
                 WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2",
            )
            .map_err(|e| self.io(e))?;
        let found: Vec<_> = stmt
            .query_map(params![id], row_to_parts)
            .map_err(|e| self.io(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.io(e))?;
        match found.len() {
            0 => Err(JournalError::NotFound(id.to_string())),
            1 => parts_to_entry(
                found
                    .into_iter()
                    .next()
                    .ok_or_else(|| self.io("vanished"))?,
            )
            .map_err(|e| self.io(e)),
            _ => Err(JournalError::Ambiguous(id.to_string())),
        }
    }
}

type Parts = (f64, String, String, Option<String>, String, bool);

fn row_to_parts(row: &rusqlite::Row<'_>) -> rusqlite::Result<Parts> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn parts_to_entry(
    (time, data, filter, retry_of, report, collected): Parts,
) -> Result<Entry, serde_json::Error> {
    Ok(Entry {
        time,
        data: serde_json::from_str(&data)?,
        filter: serde_json::from_str(&filter)?,
        retry_of,
        report: serde_json::from_str(&report)?,
        collected,
    })
}

/// Plain data (strings, numbers, maps) always serialises.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Tally;
    use muster_proto::{Reply, StatusCode};
    use serde_json::json;
    use std::collections::BTreeSet;

    fn report(id: &str) -> Report {
        let expected: BTreeSet<String> =
            ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let mut t = Tally::new(expected);
        t.reply(Reply::new(id, "a", 0.0, StatusCode::Ok, "OK", json!({})), 1);
        t.reply(
            Reply::new(id, "b", 0.0, StatusCode::Aborted, "boom", json!({})),
            1,
        );
        t.not_connected("c");
        t.finish(id, "service", "restart", 0, 5)
    }

    #[test]
    fn records_survive_reopening_and_answer_who_missed_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/journal.sqlite");
        {
            let j = Journal::open(&path).unwrap();
            for (i, id) in ["aaaa1111", "aaaa2222", "bbbb3333"].iter().enumerate() {
                j.record(&Entry {
                    time: 100.0 + i as f64,
                    data: json!({"service": "nginx"}),
                    filter: Filter::default(),
                    retry_of: (i == 2).then(|| "aaaa1111".to_string()),
                    report: report(id),
                    collected: i == 1,
                })
                .unwrap();
            }
        }
        let j = Journal::open(&path).unwrap();
        let recent = j.recent(2).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].report.request_id, "bbbb3333");
        assert_eq!(recent[0].retry_of.as_deref(), Some("aaaa1111"));
        let e = j.get("bbbb").unwrap();
        assert_eq!(e.data["service"], "nginx");
        assert_eq!(
            e.nodes_with(&[Outcome::NoReply, Outcome::NotConnected, Outcome::Timeout]),
            ["c", "d"]
        );
        assert_eq!(e.nodes_with(&[Outcome::Failed]), ["b"]);
        assert!(matches!(j.get("aaaa"), Err(JournalError::Ambiguous(_))));
        assert!(matches!(j.get("zzzz"), Err(JournalError::NotFound(_))));
        assert_eq!(j.get("aaaa1111").unwrap().report, report("aaaa1111"));
        assert!(j.get("aaaa2222").unwrap().collected);
        assert!(!j.get("aaaa1111").unwrap().collected);
    }

    #[test]
    fn a_journal_from_before_collected_requests_gets_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let old = SCHEMA.replace(",\n    collected INTEGER NOT NULL DEFAULT 0", "");
        assert!(!old.contains("collected"));
        Connection::open(&path)
            .unwrap()
            .execute_batch(&old)
            .unwrap();
        let j = Journal::open(&path).unwrap();
        let mut entry = Entry {
            time: 1.0,
            data: json!({}),
            filter: Filter::default(),
            retry_of: None,
            report: report("cccc"),
            collected: true,
        };
        j.record(&entry).unwrap();
        assert_eq!(j.get("cccc").unwrap(), entry);
        entry.collected = false;
        drop(j);
        let j = Journal::open(&path).unwrap();
        j.record(&entry).unwrap();
        assert_eq!(j.get("cccc").unwrap(), entry);
    }

    #[test]
    fn an_unusable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let err = Journal::open(&file.join("journal.sqlite"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot open the journal"), "{err}");
    }
}
