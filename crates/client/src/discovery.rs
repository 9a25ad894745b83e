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

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use muster_proto::{Filter, Response, StatusCode, subject};

use crate::connection::{Client, ClientError};
use crate::report::{Report, Tally};
use crate::request::{Call, millis};

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
    /// Identities that answered.
    pub nodes: BTreeSet<String>,
    /// How long discovery took.
    pub elapsed: Duration,
    report: Report,
}

impl Discovery {
    /// Discovery is an `rpcutil ping`: its answers are a ping report of their own.
    pub fn into_ping_report(self) -> Report {
        self.report
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

        let hard_deadline = started + options.timeout;
        let mut quiet = options.quiet;
        let mut deadline = hard_deadline;
        let mut replies = Vec::new();
        loop {
            let wait = tokio::time::Instant::from_std(deadline.min(hard_deadline));
            let message = match tokio::time::timeout_at(wait, answers.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err(ClientError::Broker("the connection closed".into())),
                Err(_) => break,
            };
            if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                break;
            }
            let Some(Response::Reply(reply)) =
                self.open(&message.payload, crate::request::unix_now())
            else {
                continue;
            };
            if reply.request_id != request.id || reply.statuscode != StatusCode::Ok {
                continue;
            }
            let now = Instant::now();
            if replies.is_empty() {
                quiet = quiet.max((now - started) * 3);
            }
            replies.push((reply, millis(now - started)));
            deadline = now + quiet;
        }
        let elapsed = started.elapsed();
        let nodes: BTreeSet<String> = replies.iter().map(|(r, _)| r.sender.clone()).collect();
        let mut tally = Tally::new(nodes.clone());
        for (reply, ms) in replies {
            tally.reply(reply, ms);
        }
        let report = tally.finish(&request.id, "rpcutil", "ping", 0, millis(elapsed));
        Ok(Discovery {
            request_id: request.id,
            nodes,
            elapsed,
            report,
        })
    }
}
