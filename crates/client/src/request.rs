//! Sending a request to an expected set and collecting every answer.
//!
//! Replies come back through the client's own inbox subscription (async-nats' `request()`
//! keeps only the first reply). Small sets are addressed directly, one message per node on its
//! own subject with its own reply subject, so a node that is not connected is known at once
//! from the broker's no-responders status. Large sets get one broadcast carrying the expected
//! identities as the filter: one publish instead of thousands, at the price of learning about
//! absent nodes only at the timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use muster_proto::envelope::REQUEST_PROTOCOL;
use muster_proto::{Filter, Request, Response, SecureEnvelope, subject};
use serde_json::Value;
use tracing::debug;

use crate::connection::{Client, ClientError};
use crate::report::{Report, Tally};

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The inputs, a JSON object.
    pub data: Value,
}

impl Call {
    /// A call without inputs.
    pub fn new(agent: &str, action: &str) -> Self {
        Call {
            agent: agent.to_string(),
            action: action.to_string(),
            data: Value::Object(Default::default()),
        }
    }
}

/// How a request reaches its expected set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Direct up to [`RequestOptions::direct_limit`] nodes, broadcast above.
    Auto,
    /// One message per node on its own subject.
    Direct,
    /// One broadcast with the expected identities as the filter.
    Broadcast,
}

/// How to send and how long to wait.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// How long to wait for replies after sending.
    pub timeout: Duration,
    /// The request's validity either side of its time, in seconds.
    pub ttl: u64,
    /// Whether nodes acknowledge before running (tells `timeout` from `no_reply`).
    pub ack: bool,
    /// How the request is delivered.
    pub delivery: Delivery,
    /// Above this many nodes, [`Delivery::Auto`] broadcasts.
    pub direct_limit: usize,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            timeout: Duration::from_secs(10),
            ttl: 60,
            ack: true,
            delivery: Delivery::Auto,
            direct_limit: 1000,
        }
    }
}

/// How far a request has got, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Expected nodes settled so far.
    pub done: usize,
    /// Nodes expected.
    pub expected: usize,
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// Builds a request (a fresh id, the current time) for `call` with `filter`.
    pub fn build_request(&self, call: &Call, filter: Filter, ttl: u64, ack: bool) -> Request {
        Request {
            protocol: REQUEST_PROTOCOL.to_string(),
            id: uuid::Uuid::now_v7().simple().to_string(),
            time: unix_now(),
            ttl,
            ack,
            collective: self.collective.clone(),
            agent: call.agent.clone(),
            action: call.action.clone(),
            caller: self.caller.clone(),
            sender: self.sender.clone(),
            data: call.data.clone(),
            filter,
        }
    }

    /// Sends `call` to every node of `expected` and waits until each has settled or the
    /// timeout passes. `progress` is told about every settled node.
    pub async fn request(
        &self,
        call: &Call,
        expected: &BTreeSet<String>,
        options: &RequestOptions,
        discovery_ms: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Report, ClientError> {
        subject::check_token("agent", &call.agent)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        if !call.data.is_object() {
            return Err(ClientError::Invalid(
                "the inputs must be a JSON object".into(),
            ));
        }
        let direct = match options.delivery {
            Delivery::Direct => true,
            Delivery::Broadcast => false,
            Delivery::Auto => expected.len() <= options.direct_limit,
        };
        let mut tally = Tally::new(expected.clone());
        if expected.is_empty() {
            let request = self.build_request(call, Filter::default(), options.ttl, options.ack);
            return Ok(tally.finish(&request.id, &call.agent, &call.action, discovery_ms, 0));
        }
        let filter = if direct {
            Filter::default()
        } else {
            Filter {
                identity: expected.iter().cloned().collect(),
                ..Filter::default()
            }
        };
        let request = self.build_request(call, filter, options.ttl, options.ack);
        let payload: bytes::Bytes = SecureEnvelope::unsigned(&request).to_bytes().into();

        let inbox = self.nats.new_inbox();
        let mut replies = self
            .nats
            .subscribe(format!("{inbox}.>"))
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        let started = Instant::now();
        let targets: Vec<&String> = expected.iter().collect();
        let publish_err = |e: async_nats::PublishError| ClientError::Broker(e.to_string());
        if direct {
            for (i, identity) in targets.iter().enumerate() {
                self.nats
                    .publish_with_reply(
                        subject::node(&self.collective, identity),
                        format!("{inbox}.{i}"),
                        payload.clone(),
                    )
                    .await
                    .map_err(publish_err)?;
            }
        } else {
            self.nats
                .publish_with_reply(
                    subject::broadcast(&self.collective, &call.agent),
                    format!("{inbox}.all"),
                    payload,
                )
                .await
                .map_err(publish_err)?;
        }
        self.nats
            .flush()
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        debug!(request_id = %request.id, nodes = expected.len(), direct, "request sent");

        let deadline = tokio::time::Instant::from_std(started + options.timeout);
        let mut settled = 0;
        while !tally.is_complete() {
            let message = match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err(ClientError::Broker("the connection closed".into())),
                Err(_) => break,
            };
            if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                let suffix = message.subject.rsplit('.').next().unwrap_or_default();
                match suffix.parse::<usize>().ok().and_then(|i| targets.get(i)) {
                    Some(identity) if direct => tally.not_connected(identity),
                    _ => tally.rest_not_connected(),
                }
            } else if message.status.is_some() {
                continue;
            } else {
                match Response::decode(&message.payload) {
                    Ok(response) if response.request_id() != request.id => {
                        debug!(sender = response.sender(), "reply to another request");
                    }
                    Ok(Response::Ack(ack)) => tally.ack(&ack.sender),
                    Ok(Response::Reply(reply)) => tally.reply(reply, millis(started.elapsed())),
                    Err(e) => debug!(error = %e, "ignored an undecodable reply"),
                }
            }
            if tally.settled() != settled {
                settled = tally.settled();
                progress(Progress {
                    done: settled,
                    expected: expected.len(),
                });
            }
        }
        let elapsed = millis(started.elapsed());
        Ok(tally.finish(
            &request.id,
            &call.agent,
            &call.action,
            discovery_ms,
            elapsed,
        ))
    }
}
