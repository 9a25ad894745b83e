//! Finding a request after the fact (`muster show`, `muster retry`): in the journal, or —
//! for a request sent with `--no-results`, one this machine did not send, or when asked —
//! rebuilt from what a registry collected.

use muster_proto::ddl::Action;

use crate::collect::{report_from_job, still_running};
use crate::connection::{Client, ClientError};
use crate::journal::{Entry, JournalError, JournalTarget};
use crate::{aggregate, request::unix_now};

/// A request found.
#[derive(Debug, Clone)]
pub struct Found {
    /// What was sent and its report.
    pub entry: Entry,
    /// Whether its nodes may still answer: its timeout has not passed.
    pub running: bool,
}

/// What the journal says about a request.
#[derive(Debug, Clone)]
pub enum InJournal {
    /// The journal has its whole report.
    Found(Found),
    /// A registry must be asked: for the whole id (the journal resolves a prefix), with what
    /// the journal knows of it, if anything (a `--no-results` request's record).
    AskRegistry {
        /// The id to ask for.
        id: String,
        /// The journal's record.
        local: Option<Entry>,
    },
}

/// Looks request `id` (or an id prefix) up in the journal. With `from_registry` the registry
/// is asked even when the journal has the report.
pub fn in_journal(
    journal: &JournalTarget,
    id: &str,
    from_registry: bool,
) -> Result<InJournal, JournalError> {
    let local = match journal.open()? {
        Some(journal) => match journal.get(id) {
            Ok(entry) => Some(entry),
            Err(JournalError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    match local {
        Some(entry) if !entry.collected && !from_registry => Ok(InJournal::Found(Found {
            entry,
            running: false,
        })),
        local => Ok(InJournal::AskRegistry {
            id: local
                .as_ref()
                .map_or(id.to_string(), |e| e.report.request_id.clone()),
            local,
        }),
    }
}

impl Client {
    /// Rebuilds request `id`'s report from what a registry collected, with the summaries of
    /// `action_of(agent, action)`'s outputs.
    pub async fn from_registry(
        &self,
        id: &str,
        local: Option<Entry>,
        timeout: std::time::Duration,
        action_of: &dyn Fn(&str, &str) -> Option<Action>,
    ) -> Result<Found, ClientError> {
        let answer = self.fetch_job(id, timeout).await.map_err(|e| {
            let whose = if local.is_some() {
                "its replies are collected by a registry"
            } else {
                "the journal does not have it"
            };
            ClientError::UnknownRequest(format!("request {id}: {whose}, and {e}"))
        })?;
        let Some(job) = answer.job else {
            return Err(ClientError::UnknownRequest(format!(
                "no request {id} in the journal{} or the registry: it was sent from another \
                 machine without --collect or --no-results, or is older than the retention; \
                 `muster history` lists the requests this machine sent",
                if local.is_some() { "'s records" } else { "" }
            )));
        };
        let mut report = report_from_job(&job, &answer.events);
        if let Some(action) = action_of(&report.agent, &report.action) {
            report.aggregates = aggregate::compute(&action, &report);
        }
        let running = still_running(&job, unix_now());
        Ok(Found {
            entry: Entry {
                time: job.time,
                data: job.data,
                filter: job.filter,
                retry_of: job.retry_of.or(local.and_then(|e| e.retry_of)),
                report,
                collected: true,
            },
            running,
        })
    }
}
