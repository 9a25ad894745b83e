//! Collected requests: announcing one to the registries, and rebuilding its report later from
//! what they collected (see [`muster_proto::job`]). This is how `--no-results` requests get a
//! report at all, and how `muster show ID` works on a machine that did not send the request.
//! Everything here works on what a registry sent: no arithmetic that can overflow, no indexing
//! that can panic.

#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::RequestErrorKind;
use muster_proto::job::{EventKind, JobAnswer, JobEvent, JobQuery, JobRecord};
use muster_proto::subject;

use crate::connection::{Client, ClientError};
use crate::report::{Report, Tally};

impl Client {
    /// Announces a collected request to every registry; returns once one has stored it.
    /// An error says no registry is collecting (or one refused the record).
    pub async fn announce_job(
        &self,
        job: &JobRecord,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        // Signed like the request itself, so a registry that knows the issuer can tell the
        // caller's own record from a forged one.
        let bytes = match &self.signing {
            Some(s) => muster_security::signed::sign_message(
                String::from_utf8(job.to_bytes()).unwrap_or_default(),
                &s.key,
                &s.credential,
            ),
            None => job.to_bytes(),
        };
        let answer = self
            .ask_job_subject(subject::job_new(&self.collective), bytes, timeout)
            .await?;
        match answer.error {
            Some(error) => Err(ClientError::Registry(format!("the registry said: {error}"))),
            None => Ok(()),
        }
    }

    /// What a registry collected for request `id`: every page of a long answer, from the
    /// registry that gave the first.
    pub async fn fetch_job(&self, id: &str, timeout: Duration) -> Result<JobAnswer, ClientError> {
        let mut query = JobQuery::new(id);
        let mut subject = subject::job_get(&self.collective);
        let mut whole: Option<JobAnswer> = None;
        loop {
            let page = self
                .ask_job_subject(subject.clone(), query.to_bytes(), timeout)
                .await?;
            if let Some(error) = page.error {
                return Err(ClientError::Registry(format!("the registry said: {error}")));
            }
            let (next, registry) = (page.next, page.registry.clone());
            match &mut whole {
                None => whole = Some(page),
                Some(whole) => whole.events.extend(page.events),
            }
            // Follow only a registry's own subject, and only forwards.
            let own = format!("{}.", subject::job_get(&self.collective));
            match (next, registry) {
                (Some(next), Some(registry))
                    if next > query.after && registry.starts_with(&own) =>
                {
                    query.after = next;
                    subject = registry;
                }
                _ => break,
            }
        }
        let mut whole = whole.unwrap_or_else(|| JobAnswer::found(None, Vec::new()));
        whole.next = None;
        whole.registry = None;
        Ok(whole)
    }

    async fn ask_job_subject(
        &self,
        subject: String,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<JobAnswer, ClientError> {
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(timeout));
        let message = self
            .nats
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => ClientError::NoRegistry(format!(
                    "no registry is running for collective {:?} (nobody answers on {subject}); \
                     start one with `muster registry --db FILE`",
                    self.collective
                )),
                RequestErrorKind::TimedOut => ClientError::NoRegistry(format!(
                    "no registry answered on {subject} within {timeout:?}"
                )),
                _ => ClientError::Broker(format!("{subject}: {e}")),
            })?;
        JobAnswer::decode(&message.payload).map_err(|e| {
            ClientError::Registry(format!(
                "the registry sent an answer that does not decode: {e}"
            ))
        })
    }
}

/// The report of a collected request from what a registry received by now: every expected
/// node once, as [`Tally`] accounts for a request this client waits on. Nodes that have not
/// answered yet are `no_reply` (or `timeout` once acknowledged) — check [`still_running`]
/// before calling that final.
pub fn report_from_job(job: &JobRecord, events: &[JobEvent]) -> Report {
    let expected: BTreeSet<String> = job.expected.iter().cloned().collect();
    let mut tally = Tally::new(expected);
    for identity in &job.not_connected {
        tally.not_connected(identity);
    }
    let mut last = job.time;
    for event in events {
        last = last.max(event.received);
        match (event.kind, &event.identity, &event.reply) {
            (EventKind::Ack, Some(identity), _) => tally.ack(identity),
            (EventKind::Reply, _, Some(reply)) => {
                let ms = muster_proto::time::millis_between(job.time, event.received);
                tally.reply(reply.clone(), ms);
            }
            (EventKind::NotConnected, _, _) => {
                for identity in job.part_nodes(&event.part) {
                    tally.not_connected(&identity);
                }
            }
            _ => {}
        }
    }
    let elapsed = muster_proto::time::millis_between(job.time, last);
    let mut report = tally.finish(&job.id, &job.agent, &job.action, 0, elapsed);
    report.add_absent(&job.absent);
    report.annotate_last_seen(&job.last_seen);
    report
}

/// Whether nodes of `job` may still answer at `now` (Unix seconds): its timeout has not passed.
pub fn still_running(job: &JobRecord, now: f64) -> bool {
    now < job.time + job.timeout_ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;
    use muster_proto::job::JOB_PROTOCOL;
    use muster_proto::{Reply, StatusCode};
    use serde_json::json;

    fn event(part: &str, kind: EventKind, identity: Option<&str>, status: StatusCode) -> JobEvent {
        JobEvent {
            part: part.to_string(),
            kind,
            identity: identity.map(String::from),
            received: 101.0,
            reply: (kind == EventKind::Reply).then(|| {
                Reply::new(
                    "j",
                    identity.unwrap_or("?"),
                    101.0,
                    status,
                    status.message(),
                    json!({}),
                )
            }),
        }
    }

    #[test]
    fn a_huge_batch_size_or_far_times_do_not_panic() {
        let job = JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: "j".to_string(),
            time: 0.0,
            agent: "rpcutil".to_string(),
            action: "ping".to_string(),
            caller: "op".to_string(),
            data: json!({}),
            filter: Default::default(),
            expected: ["a", "b"].map(String::from).to_vec(),
            absent: vec![],
            last_seen: Default::default(),
            batch_size: Some(usize::MAX),
            timeout_ms: u64::MAX,
            retry_of: None,
            not_connected: vec![],
        };
        let mut late = event("0", EventKind::Reply, Some("a"), StatusCode::Ok);
        late.received = f64::MAX;
        let events = [
            event("b1", EventKind::NotConnected, None, StatusCode::Ok),
            event("b0", EventKind::NotConnected, None, StatusCode::Ok),
            late,
        ];
        let report = report_from_job(&job, &events);
        assert_eq!(report.stats.expected, 2);
        assert_eq!(report.replies[0].ms, u64::MAX);
        assert!(still_running(&job, 1e15) && !still_running(&job, 1e300));
    }

    #[test]
    fn a_collected_request_gets_the_report_it_would_have_had() {
        let job = JobRecord {
            protocol: JOB_PROTOCOL.to_string(),
            id: "j".to_string(),
            time: 100.0,
            agent: "rpcutil".to_string(),
            action: "ping".to_string(),
            caller: "op".to_string(),
            data: json!({}),
            filter: Default::default(),
            expected: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
            absent: vec![("f".into(), "2026-11-25T10:00:00Z".into())],
            last_seen: [("e".to_string(), "2026-11-25T11:00:00Z".to_string())].into(),
            batch_size: None,
            timeout_ms: 5000,
            retry_of: None,
            not_connected: vec!["d".into()],
        };
        let events = [
            event("0", EventKind::Ack, Some("a"), StatusCode::Ok),
            event("0", EventKind::Reply, Some("a"), StatusCode::Ok),
            event("1", EventKind::Reply, Some("b"), StatusCode::Aborted),
            event("2", EventKind::Ack, Some("c"), StatusCode::Ok),
            event("4", EventKind::NotConnected, None, StatusCode::Ok),
            event("b0", EventKind::Reply, Some("stray"), StatusCode::Ok),
        ];
        let report = report_from_job(&job, &events);
        let outcomes: Vec<_> = report
            .missing
            .iter()
            .map(|m| (m.identity.as_str(), m.outcome, m.last_seen.is_some()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("c", Outcome::Timeout, false),
                ("d", Outcome::NotConnected, false),
                ("e", Outcome::NotConnected, true),
                ("f", Outcome::NotConnected, true),
            ]
        );
        assert_eq!(
            (report.stats.expected, report.stats.ok, report.stats.failed),
            (6, 1, 1)
        );
        assert_eq!(
            (report.stats.unexpected, report.stats.elapsed_ms),
            (1, 1000)
        );
        assert_eq!(report.replies[0].ms, 1000);
        assert!(still_running(&job, 104.9));
        assert!(!still_running(&job, 105.1));
    }
}
