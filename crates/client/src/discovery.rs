//! Broadcast discovery: ask every node that matches a filter to say so.
//!
//! A broadcast cannot know how many nodes will answer, so it needs a rule for when to stop
//! listening. Muster stops when the answers have gone quiet: after the first answer it waits
//! until no new answer has arrived for a *quiet window* of `max(quiet, 3 × the first answer's
//! latency)`, and never longer than the discovery timeout (`--dt`) in all. Before any answer it
//! waits the whole discovery timeout. If nobody at all subscribes to the subject, the broker's
//! no-responders status ends discovery at once.
//!
//! The trade-off: a node that answers more than a quiet window after the others (a loaded
//! machine, a distant site) is left out of the expected set and so is not reported as missing.
//! A longer `--dt` does not help with that; a larger quiet window does, at the cost of every
//! discovery taking that long after the last answer. Where it matters, use a node list or the
//! registry, which know who *should* answer.
//!
//! Nothing is dropped without a word. A node that answers with a failure (status 6: its policy
//! denies the caller `rpcutil ping`) has matched the filter — a node checks the filter before
//! its policy — so it is discovered, and its answer is kept to be reported. Answers that cannot
//! be verified are counted by reason; who sent them is not known, so they discover nobody.

// Counts and deadlines here come from what the network sends: no arithmetic that can overflow,
// no indexing that can panic (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use muster_proto::{Filter, Response, StatusCode, subject};

use crate::connection::{Client, ClientError, Unopened};
use crate::report::{
    DiscoveryFailure, DiscoveryInfo, DiscoveryMethod, IgnoreReason, Ignored, Lost, Report, Tally,
};
use crate::request::{Call, Received, millis};

/// When to stop listening for discovery answers.
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// The most discovery may take (`--dt`).
    pub timeout: Duration,
    /// The shortest quiet window.
    pub quiet: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            timeout: Duration::from_secs(2),
            quiet: Duration::from_millis(200),
        }
    }
}

/// The nodes that answered discovery.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The discovery request's id.
    pub request_id: String,
    /// Identities that answered, with success or with a failure.
    pub nodes: BTreeSet<String>,
    /// Those that answered with a failure (a denial, usually), sorted by identity.
    pub failed: Vec<DiscoveryFailure>,
    /// Answers that could not be verified, by reason.
    pub ignored: Vec<Ignored>,
    /// Messages the connection lost while discovery listened (a node whose answer was lost is
    /// not discovered), when it lost any.
    pub lost: Option<Lost>,
    /// How long discovery took.
    pub elapsed: Duration,
    /// The quiet window it ended with.
    pub quiet: Duration,
    report: Report,
}

impl Discovery {
    /// What the report says about this discovery: broadcast (alone, or `and_registry`), its
    /// quiet window, and the nodes that answered with a failure.
    pub fn info(&self, and_registry: bool) -> DiscoveryInfo {
        DiscoveryInfo {
            method: if and_registry {
                DiscoveryMethod::BroadcastAndRegistry
            } else {
                DiscoveryMethod::Broadcast
            },
            quiet_ms: Some(millis(self.quiet)),
            failed: self.failed.clone(),
        }
    }

    /// Discovery is an `rpcutil ping`: its answers are a ping report of their own, failures
    /// and unverifiable answers included.
    pub fn into_ping_report(self) -> Report {
        let mut report = self.report;
        report.discovery = Some(DiscoveryInfo {
            method: DiscoveryMethod::Broadcast,
            quiet_ms: Some(millis(self.quiet)),
            failed: self.failed,
        });
        report
    }
}

impl Client {
    /// Finds the nodes matching `filter` by broadcasting an `rpcutil ping` to them.
    pub async fn discover(
        &self,
        filter: &Filter,
        options: &DiscoveryOptions,
    ) -> Result<Discovery, ClientError> {
        filter
            .compile()
            .map_err(|e| ClientError::Invalid(format!("invalid filter: {e}")))?;
        let call = Call::new("rpcutil", "ping");
        let request = self.build_request(&call, filter.clone(), 60, false);
        let losses = self.loss_mark();
        let inbox = self.nats.new_inbox();
        let mut answers = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        let started = Instant::now();
        self.nats
            .publish_with_reply(
                subject::broadcast(&self.collective, "rpcutil"),
                inbox,
                self.envelope(&request).to_bytes().into(),
            )
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        self.nats
            .flush()
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;

        let hard_deadline = crate::request::deadline(started, options.timeout);
        let mut quiet = options.quiet;
        let mut deadline = hard_deadline;
        let mut replies: Vec<(muster_proto::Reply, u64)> = Vec::new();
        let mut ignored: Vec<(IgnoreReason, bool)> = Vec::new();
        'listening: loop {
            let wait = tokio::time::Instant::from_std(deadline.min(hard_deadline));
            let first = match tokio::time::timeout_at(wait, answers.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err(ClientError::Broker("the connection closed".into())),
                Err(_) => break,
            };
            // Whatever else has arrived is opened with it, on every core.
            let received = Received::drain(first, &mut answers, 0);
            let now = Instant::now();
            let opened = self
                .open_all(&received.messages, crate::request::unix_now())
                .await;
            for (message, opened) in received.messages.iter().zip(opened) {
                if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                    break 'listening;
                }
                let reply = match opened {
                    Some(Ok(Response::Reply(reply))) => reply,
                    Some(Ok(Response::Ack(_))) => continue,
                    // Another status of the broker's, as any message that is no answer.
                    None | Some(Err(Unopened::Garbage)) => {
                        ignored.push((IgnoreReason::UNDECODABLE, true));
                        continue;
                    }
                    Some(Err(Unopened::Untrusted { why, claimed })) => {
                        match claimed {
                            Some(c) if c.request_id != request.id => {}
                            Some(c) if c.ack => ignored.push((why, false)),
                            _ => ignored.push((why, true)),
                        }
                        continue;
                    }
                };
                if reply.request_id != request.id {
                    continue;
                }
                if replies.is_empty() {
                    quiet = quiet.max(now.saturating_duration_since(started).saturating_mul(3));
                }
                replies.push((reply, millis(now.saturating_duration_since(started))));
                deadline = crate::request::deadline(now, quiet);
            }
        }
        let elapsed = started.elapsed();
        let nodes: BTreeSet<String> = replies.iter().map(|(r, _)| r.sender.clone()).collect();
        let mut failed: Vec<DiscoveryFailure> = Vec::new();
        let mut tally = Tally::new(nodes.clone());
        for (why, reply) in &ignored {
            tally.ignore(why, *reply);
        }
        let mut seen = BTreeSet::new();
        for (reply, ms) in replies {
            // The first answer per node counts, as in the tally.
            if seen.insert(reply.sender.clone()) && reply.statuscode != StatusCode::Ok {
                failed.push(DiscoveryFailure {
                    identity: reply.sender.clone(),
                    statuscode: reply.statuscode.code(),
                    statusmsg: reply.statusmsg.clone(),
                });
            }
            tally.reply(reply, ms);
        }
        failed.sort_by(|a, b| a.identity.cmp(&b.identity));
        self.keep_found_credentials();
        let mut report = tally.finish(&request.id, "rpcutil", "ping", 0, millis(elapsed));
        report.lost = losses.since(&self.losses);
        Ok(Discovery {
            request_id: request.id,
            nodes,
            failed,
            ignored: report.ignored.clone(),
            lost: report.lost,
            elapsed,
            quiet,
            report,
        })
    }
}
