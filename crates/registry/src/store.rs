//! The registry's SQLite database: the latest registration of each node, with when the
//! registry first and last saw it.
//!
//! `nodes(identity PRIMARY KEY, first_seen, last_seen, record)` holds the nodes; `jobs(id,
//! received, record)` and `job_events(id, received, event)` the collected requests and what
//! arrived for them. WAL mode, so queries read while registrations are written. Times are the registry's own clock (Unix
//! seconds) at receipt, so nodes with wrong clocks are still judged fairly. Everything here is
//! blocking: the service calls it from its writer thread or `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use muster_proto::job::{JobEvent, JobRecord};
use muster_proto::registration::{Registration, SeenNode};
use muster_proto::{CompiledFilter, NodeView};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    identity   TEXT PRIMARY KEY NOT NULL,
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_last_seen ON nodes (last_seen);
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY NOT NULL,
    received REAL NOT NULL,
    record   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_received ON jobs (received);
CREATE TABLE IF NOT EXISTS job_events (
    id       TEXT NOT NULL,
    received REAL NOT NULL,
    event    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_events_id ON job_events (id);
CREATE INDEX IF NOT EXISTS job_events_received ON job_events (received);
";

/// The database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("registry database {path}: {message}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// A stored node: its latest registration and when the registry saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNode {
    /// The latest registration.
    pub registration: Registration,
    /// When the registry first saw the node, Unix seconds.
    pub first_seen: f64,
    /// When the registry last saw the node, Unix seconds.
    pub last_seen: f64,
}

impl StoredNode {
    /// What a query answer says about this node.
    pub fn seen(&self) -> SeenNode {
        SeenNode {
            identity: self.registration.identity.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            fact: None,
            record: None,
        }
    }
}

impl NodeView for StoredNode {
    fn identity(&self) -> &str {
        &self.registration.identity
    }
    fn facts(&self) -> &Value {
        &self.registration.facts
    }
    fn classes(&self) -> &[String] {
        &self.registration.classes
    }
    fn has_agent(&self, agent: &str) -> bool {
        self.registration.agents.iter().any(|a| a == agent)
    }
}

/// One page of a collected request (see [`Store::job`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The announced record, on the first page.
    pub record: Option<JobRecord>,
    /// Events in arrival order.
    pub events: Vec<JobEvent>,
    /// Where the next page starts, when there is one.
    pub next: Option<u64>,
}

/// An open registry database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the database at `path`, creating the file and the table when missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let fail = |message: String| StoreError {
            path: path.to_path_buf(),
            message,
        };
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn fail(&self, err: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: err.to_string(),
        }
    }

    /// Stores a burst of registrations, each received at its time (Unix seconds), in one
    /// transaction: the latest record per identity, `first_seen` kept, `last_seen` advanced
    /// (never moved back). Returns how many were stored.
    pub fn record(&mut self, batch: &[(Registration, f64)]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mut stored: usize = 0;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO nodes (identity, first_seen, last_seen, record)
                     VALUES (?1, ?2, ?2, ?3)
                     ON CONFLICT (identity) DO UPDATE
                     SET last_seen = excluded.last_seen, record = excluded.record
                     WHERE excluded.last_seen >= nodes.last_seen",
                )
                .map_err(|e| StoreError {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            for (registration, seen) in batch {
                let record = String::from_utf8(registration.to_bytes()).unwrap_or_default();
                stored = stored.saturating_add(
                    upsert
                        .execute(params![registration.identity, seen, record])
                        .map_err(|e| StoreError {
                            path: self.path.clone(),
                            message: e.to_string(),
                        })?,
                );
            }
        }
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(stored)
    }

    /// Every stored node last seen at or after `seen_since` (Unix seconds; `None`: all) that
    /// matches `filter`, sorted by identity. Records that no longer decode are skipped.
    pub fn query(
        &self,
        filter: &CompiledFilter,
        seen_since: Option<f64>,
    ) -> Result<Vec<SeenNode>, StoreError> {
        Ok(self
            .matching(filter, seen_since)?
            .iter()
            .map(StoredNode::seen)
            .collect())
    }

    /// Like [`Store::query`], with each node's whole record.
    pub fn matching(
        &self,
        filter: &CompiledFilter,
        seen_since: Option<f64>,
    ) -> Result<Vec<StoredNode>, StoreError> {
        let mut nodes = Vec::new();
        self.each(seen_since, |node| {
            if filter.matches(&node) {
                nodes.push(node);
            }
        })?;
        Ok(nodes)
    }

    /// Calls `visit` with every stored node last seen at or after `seen_since`, by identity.
    fn each(
        &self,
        seen_since: Option<f64>,
        mut visit: impl FnMut(StoredNode),
    ) -> Result<(), StoreError> {
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT first_seen, last_seen, record FROM nodes
                 WHERE last_seen >= ?1 ORDER BY identity",
            )
            .map_err(|e| self.fail(e))?;
        let mut rows = select
            .query(params![seen_since.unwrap_or(f64::MIN)])
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let first_seen: f64 = row.get(0).map_err(|e| self.fail(e))?;
            let last_seen: f64 = row.get(1).map_err(|e| self.fail(e))?;
            let record: String = row.get(2).map_err(|e| self.fail(e))?;
            if let Ok(registration) = Registration::decode(record.as_bytes()) {
                visit(StoredNode {
                    registration,
                    first_seen,
                    last_seen,
                });
            }
        }
        Ok(())
    }

    /// The stored node with this identity.
    pub fn get(&self, identity: &str) -> Result<Option<StoredNode>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT first_seen, last_seen, record FROM nodes WHERE identity = ?1",
                params![identity],
                |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, String>(2)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        Ok(row.and_then(|(first_seen, last_seen, record)| {
            Registration::decode(record.as_bytes())
                .ok()
                .map(|registration| StoredNode {
                    registration,
                    first_seen,
                    last_seen,
                })
        }))
    }

    /// Deletes the nodes last seen before `before` (Unix seconds), and the collected requests
    /// and events received before it; returns how many nodes.
    pub fn prune(&self, before: f64) -> Result<usize, StoreError> {
        for table in ["jobs", "job_events"] {
            self.conn
                .execute(
                    &format!("DELETE FROM {table} WHERE received < ?1"),
                    params![before],
                )
                .map_err(|e| self.fail(e))?;
        }
        self.conn
            .execute("DELETE FROM nodes WHERE last_seen < ?1", params![before])
            .map_err(|e| self.fail(e))
    }

    /// Stores announced requests and what arrived for collected requests, each received at
    /// its time, in one transaction. A request announced again gets its later record (with
    /// the nodes found not connected), keeping when it was first received.
    /// Returns how many records and events were stored.
    pub fn record_jobs(
        &mut self,
        jobs: &[(JobRecord, f64)],
        events: &[(String, JobEvent)],
    ) -> Result<(usize, usize), StoreError> {
        let path = self.path.clone();
        let fail = |e: rusqlite::Error| StoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(fail)?;
        let (mut stored_jobs, mut stored_events) = (0usize, 0usize);
        {
            let mut job = tx
                .prepare_cached(
                    "INSERT INTO jobs (id, received, record) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                )
                .map_err(fail)?;
            for (record, received) in jobs {
                let text = String::from_utf8(record.to_bytes()).unwrap_or_default();
                stored_jobs = stored_jobs.saturating_add(
                    job.execute(params![record.id, received, text])
                        .map_err(fail)?,
                );
            }
            let mut event = tx
                .prepare_cached("INSERT INTO job_events (id, received, event) VALUES (?1, ?2, ?3)")
                .map_err(fail)?;
            for (id, e) in events {
                let text = serde_json::to_string(e).unwrap_or_default();
                stored_events = stored_events
                    .saturating_add(event.execute(params![id, e.received, text]).map_err(fail)?);
            }
        }
        tx.commit().map_err(fail)?;
        Ok((stored_jobs, stored_events))
    }

    /// A collected request, one page of it: its record (on the first page, when announced)
    /// and its events in arrival order after the first `after`, about `budget` bytes of them
    /// (at least one). `next` says where the following page starts, when there is one.
    pub fn job(&self, id: &str, after: u64, budget: usize) -> Result<JobPage, StoreError> {
        let mut used: usize = 0;
        let record = if after == 0 {
            let text: Option<String> = self
                .conn
                .query_row(
                    "SELECT record FROM jobs WHERE id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| self.fail(e))?;
            used = text.as_ref().map_or(0, String::len);
            text.and_then(|text| JobRecord::decode(text.as_bytes()).ok())
        } else {
            None
        };
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT event FROM job_events WHERE id = ?1 ORDER BY rowid LIMIT -1 OFFSET ?2",
            )
            .map_err(|e| self.fail(e))?;
        let offset = i64::try_from(after).unwrap_or(i64::MAX);
        let mut rows = select
            .query(params![id, offset])
            .map_err(|e| self.fail(e))?;
        let mut events = Vec::new();
        let mut taken = 0u64;
        let mut next = None;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let text: String = row.get(0).map_err(|e| self.fail(e))?;
            if taken > 0 && used.saturating_add(text.len()) > budget {
                next = Some(after.saturating_add(taken));
                break;
            }
            used = used.saturating_add(text.len()).saturating_add(1);
            taken = taken.saturating_add(1);
            if let Ok(event) = serde_json::from_str(&text) {
                events.push(event);
            }
        }
        Ok(JobPage {
            record,
            events,
            next,
        })
    }

    /// How many nodes are stored.
    pub fn len(&self) -> Result<usize, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM nodes", [], |row| row.get::<_, i64>(0))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| self.fail(e))
    }

    /// Whether no node is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_proto::registration::REGISTRATION_PROTOCOL;
    use muster_proto::{FactFilter, Filter};
    use serde_json::json;

    fn node(identity: &str, facts: Value, classes: &[&str]) -> Registration {
        Registration {
            protocol: REGISTRATION_PROTOCOL.to_string(),
            identity: identity.to_string(),
            facts,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            agents: vec!["rpcutil".to_string()],
            collectives: vec!["muster".to_string()],
            version: "0.1.0".to_string(),
            started: 1,
            time: 1.0,
        }
    }

    fn filter(facts: &[&str], classes: &[&str], identity: &[&str]) -> CompiledFilter {
        Filter {
            fact: facts
                .iter()
                .map(|f| FactFilter::parse(f).unwrap())
                .collect(),
            class: classes.iter().map(|c| c.to_string()).collect(),
            identity: identity.iter().map(|i| i.to_string()).collect(),
            ..Filter::default()
        }
        .compile()
        .unwrap()
    }

    fn names(nodes: &[SeenNode]) -> Vec<&str> {
        nodes.iter().map(|n| n.identity.as_str()).collect()
    }

    #[test]
    fn keeps_the_latest_record_and_the_first_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let mut store = Store::open(&path).unwrap();
        assert!(store.is_empty().unwrap());
        store
            .record(&[
                (node("web1", json!({"role": "web"}), &[]), 100.0),
                (node("db1", json!({"role": "db"}), &[]), 100.0),
                (node("web1", json!({"role": "web", "v": 2}), &[]), 110.0),
            ])
            .unwrap();
        // An older sighting arriving late changes nothing.
        store
            .record(&[(node("web1", json!({"role": "old"}), &[]), 105.0)])
            .unwrap();
        let web1 = store.get("web1").unwrap().unwrap();
        assert_eq!((web1.first_seen, web1.last_seen), (100.0, 110.0));
        assert_eq!(web1.registration.facts, json!({"role": "web", "v": 2}));
        assert_eq!(store.len().unwrap(), 2);
        assert!(store.get("nobody").unwrap().is_none());

        // Reopening the file finds everything again.
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get("web1").unwrap().unwrap(), web1);
        assert_eq!(store.len().unwrap(), 2);
    }

    #[test]
    fn queries_use_the_filter_engine_and_the_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        store
            .record(&[
                (
                    node("web1", json!({"role": "web", "cpus": 4}), &["nginx"]),
                    100.0,
                ),
                (
                    node(
                        "web2",
                        json!({"role": "web", "cpus": 16}),
                        &["nginx", "canary"],
                    ),
                    200.0,
                ),
                (
                    node("db1", json!({"role": "db", "cpus": 32}), &["postgres"]),
                    300.0,
                ),
            ])
            .unwrap();
        let cases: [(CompiledFilter, Option<f64>, &[&str]); 8] = [
            (filter(&[], &[], &[]), None, &["db1", "web1", "web2"]),
            (filter(&["role=web"], &[], &[]), None, &["web1", "web2"]),
            (filter(&["cpus>=8"], &[], &[]), None, &["db1", "web2"]),
            (filter(&[], &["nginx"], &[]), None, &["web1", "web2"]),
            (filter(&[], &["/^can/"], &[]), None, &["web2"]),
            (filter(&[], &[], &["/^db/"]), None, &["db1"]),
            (filter(&[], &[], &[]), Some(200.0), &["db1", "web2"]),
            (filter(&["role=web"], &[], &[]), Some(250.0), &[]),
        ];
        for (i, (filter, since, expected)) in cases.iter().enumerate() {
            let found = store.query(filter, *since).unwrap();
            assert_eq!(names(&found), *expected, "case {i}");
        }
        let all = store.query(&filter(&[], &[], &["web2"]), None).unwrap();
        assert_eq!(
            all,
            [SeenNode {
                identity: "web2".into(),
                first_seen: 200.0,
                last_seen: 200.0,
                fact: None,
                record: None,
            }]
        );
    }

    #[test]
    fn prunes_by_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        store
            .record(&[
                (node("old", json!({}), &[]), 10.0),
                (node("new", json!({}), &[]), 20.0),
            ])
            .unwrap();
        assert_eq!(store.prune(15.0).unwrap(), 1);
        assert_eq!(store.prune(15.0).unwrap(), 0);
        assert!(store.get("old").unwrap().is_none());
        assert!(store.get("new").unwrap().is_some());
    }

    #[test]
    fn an_unusable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("missing/dir/r.sqlite"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing/dir"), "{err}");
        let garbage = dir.path().join("garbage");
        std::fs::write(
            &garbage,
            "this is not a database, not at all, no".repeat(200),
        )
        .unwrap();
        assert!(Store::open(&garbage).is_err());
    }

    #[test]
    fn collected_requests_come_back_in_pages() {
        use muster_proto::job::{EventKind, JOB_PROTOCOL};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let job = JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: "j1".into(),
            time: 1.0,
            agent: "rpcutil".into(),
            action: "ping".into(),
            caller: String::new(),
            data: json!({}),
            filter: Filter::default(),
            expected: vec!["a".into()],
            absent: vec![],
            last_seen: Default::default(),
            batch_size: None,
            timeout_ms: 1000,
            retry_of: None,
            not_connected: vec![],
        };
        let events: Vec<(String, JobEvent)> = (0..40)
            .map(|i| {
                let event = JobEvent {
                    part: i.to_string(),
                    kind: EventKind::Ack,
                    identity: Some(format!("node{i:02}")),
                    received: 2.0,
                    reply: None,
                };
                ("j1".to_string(), event)
            })
            .collect();
        store.record_jobs(&[(job.clone(), 1.0)], &events).unwrap();
        let mut again = job.clone();
        again.not_connected = vec!["a".into()];
        store.record_jobs(&[(again.clone(), 3.0)], &[]).unwrap();
        let first = store.job("j1", 0, 1000).unwrap();
        assert_eq!(first.record, Some(again), "the later announcement wins");
        let mut got = first.events.len();
        let mut next = first.next;
        while let Some(after) = next {
            let page = store.job("j1", after, 1000).unwrap();
            assert!(page.record.is_none());
            assert_eq!(page.events[0].part, after.to_string());
            got += page.events.len();
            next = page.next;
        }
        assert_eq!(got, 40);
        let none = store.job("nope", 0, 1000).unwrap();
        assert_eq!((none.record, none.events.len(), none.next), (None, 0, None));
    }
}
