//! Sending a request to an expected set and collecting every answer.
//!
//! Replies come back through the client's own inbox subscription (async-nats' `request()`
//! keeps only the first reply). Small sets are addressed directly, one message per node on its
//! own subject with its own reply subject, so a node that is not connected is known at once
//! from the broker's no-responders status. Large sets get one broadcast carrying the expected
//! identities as the filter: one publish instead of thousands, at the price of learning about
//! absent nodes only at the timeout.
//!
//! What has arrived is taken off the inbox in batches and opened — verified and decoded — on
//! every core ([`Client::open_all`]), then accounted in the order it arrived. A message taken
//! off the inbox before a deadline passes counts however long opening it takes: the deadline
//! is looked at only while waiting for the next message, as it always was. A reply's time is
//! when its batch was taken, not when it was opened.
//!
//! Where answers are verified, an acknowledgement is kept unopened ([`HeldAcks`]) until it
//! matters: a node's verified reply says everything its acknowledgement would, so only the
//! acknowledgements of nodes that have not replied when waiting ends are verified — half the
//! signature checks of a request every node answers. Until it is verified an acknowledgement
//! counts for nothing.

// Counts and deadlines here come from what the network sends: no arithmetic that can overflow,
// no indexing that can panic (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use muster_proto::envelope::REQUEST_PROTOCOL;
use muster_proto::{Filter, Request, Response, subject};
use serde_json::Value;
use tracing::debug;

use crate::connection::{Client, ClientError, Unopened, claimed};
use crate::report::{IgnoreReason, Report, Tally};

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
    /// All at once, in batches, or through a sliding window.
    pub pacing: Pacing,
    /// Use this request id (one already announced to a registry); `None`: a fresh one.
    pub id: Option<String>,
    /// Have the nodes reply on the collective's reply subjects, where registries collect the
    /// replies too (see [`muster_proto::job`]), instead of this client's private inbox.
    pub collect: bool,
}

/// How the expected set gets the request over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Everyone at once.
    #[default]
    All,
    /// `size` nodes at a time; the next batch starts when every node of this one has settled
    /// (replied, known absent, or timed out), after `sleep`.
    Batch {
        /// Nodes per batch.
        size: usize,
        /// The pause between batches.
        sleep: Duration,
    },
    /// Keep this many nodes in flight: whenever one settles, the next is sent to. A slow node
    /// holds back only its own slot.
    Window(usize),
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            timeout: Duration::from_secs(10),
            ttl: 60,
            ack: true,
            delivery: Delivery::Auto,
            direct_limit: 1000,
            pacing: Pacing::All,
            id: None,
            collect: false,
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

/// Whether a request to `nodes` nodes goes to each node's own subject.
fn is_direct(options: &RequestOptions, nodes: usize) -> bool {
    match (options.pacing, options.delivery) {
        // A window refills one node at a time: that is direct addressing.
        (Pacing::Window(_), _) | (_, Delivery::Direct) => true,
        (_, Delivery::Broadcast) => false,
        (_, Delivery::Auto) => nodes <= options.direct_limit,
    }
}

pub(crate) use muster_proto::time::now as unix_now;

/// The most messages taken off an inbox at once to be opened together.
const MAX_BATCH: usize = 1024;

/// Messages taken off an inbox together: the first one waited for, and those that had
/// arrived with it (at most [`MAX_BATCH`] in all).
pub(crate) struct Received {
    /// In the order they arrived.
    pub(crate) messages: Vec<async_nats::Message>,
    /// When they were taken, in milliseconds since the request was sent.
    pub(crate) at_ms: u64,
}

impl Received {
    /// `first` and whatever else `inbox` holds already, without waiting.
    pub(crate) fn drain(
        first: async_nats::Message,
        inbox: &mut async_nats::Subscriber,
        at_ms: u64,
    ) -> Received {
        let mut messages = vec![first];
        while messages.len() < MAX_BATCH {
            match inbox.next().now_or_never() {
                Some(Some(message)) => messages.push(message),
                // Nothing more yet; or the subscription ended, which the next wait reports.
                _ => break,
            }
        }
        Received { messages, at_ms }
    }
}

/// How many acknowledgements of one node are held unopened; more (a duplicate, or somebody's
/// forgeries) are opened at once, so holding never grows beyond this per expected node.
const HELD_PER_NODE: usize = 2;

/// Acknowledgements of a signed fleet kept unopened until they matter (see the module's
/// documentation): those of nodes that reply are dropped unverified, the others are opened
/// when waiting ends, and only then count.
#[derive(Default)]
struct HeldAcks {
    by_sender: HashMap<String, Vec<async_nats::Message>>,
}

impl HeldAcks {
    /// Keeps the acknowledgements of request `id` from expected nodes that have not replied
    /// yet, drops those of nodes that have, and returns everything else, in order, to be
    /// opened now. What an unopened message says of itself only decides where it waits: it is
    /// verified before it counts, as every message is.
    fn sort(
        &mut self,
        messages: Vec<async_nats::Message>,
        id: &str,
        tally: &Tally,
    ) -> Vec<async_nats::Message> {
        let mut now = Vec::with_capacity(messages.len());
        for message in messages {
            let ack = match message.status {
                None => claimed(&message.payload).filter(|c| c.ack && c.request_id == id),
                Some(_) => None,
            };
            let Some(ack) = ack.filter(|c| tally.expected().contains(&c.sender)) else {
                now.push(message);
                continue;
            };
            if tally.has_replied(&ack.sender) {
                continue;
            }
            let held = self.by_sender.entry(ack.sender).or_default();
            if held.len() < HELD_PER_NODE {
                held.push(message);
            } else {
                now.push(message);
            }
        }
        now
    }

    /// `sender`'s reply has been verified: its acknowledgements are not needed.
    fn replied(&mut self, sender: &str) {
        self.by_sender.remove(sender);
    }

    /// The acknowledgements of the nodes that have not replied, to be opened now.
    fn unreplied(self, tally: &Tally) -> Vec<async_nats::Message> {
        self.by_sender
            .into_iter()
            .filter(|(sender, _)| !tally.has_replied(sender))
            .flat_map(|(_, held)| held)
            .collect()
    }
}

/// `at + by`, or as far as an `Instant` goes when that overflows (a `-t` of centuries).
pub(crate) fn deadline(at: Instant, by: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    at.checked_add(by)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// A fresh request id: a UUIDv7, so ids sort by time.
    pub fn new_request_id(&self) -> String {
        uuid::Uuid::now_v7().simple().to_string()
    }

    /// Builds a request (a fresh id, the current time) for `call` with `filter`.
    pub fn build_request(&self, call: &Call, filter: Filter, ttl: u64, ack: bool) -> Request {
        Request {
            protocol: REQUEST_PROTOCOL.to_string(),
            id: self.new_request_id(),
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

    /// Sends `call` to every node of `expected` and waits until each has settled or its
    /// timeout passes. `progress` is told about every settled node. With
    /// [`RequestOptions::pacing`] the nodes get the request in batches, or through a sliding
    /// window, each node waited for `timeout` from when it was sent to.
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
        let direct = is_direct(options, expected.len());
        let mut tally = Tally::new(expected.clone());
        // One id for the whole request, whatever the pacing.
        let id = options.id.clone().unwrap_or_else(|| self.new_request_id());
        if expected.is_empty() {
            return Ok(tally.finish(&id, &call.agent, &call.action, discovery_ms, 0));
        }

        // Counted from before subscribing: anything the connection loses from here on may be
        // this request's (docs/design.md §3, `lost`).
        let losses = self.loss_mark();
        let inbox = if options.collect {
            subject::replies(&self.collective, &id)
        } else {
            self.nats.new_inbox()
        };
        let mut replies = self
            .nats
            .subscribe(format!("{inbox}.>"))
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        let started = Instant::now();
        let targets: Vec<&String> = expected.iter().collect();
        let mut pending: std::collections::VecDeque<usize> = (0..targets.len()).collect();
        // Launches in order, each with the deadline its nodes are waited for until. Deadlines
        // only grow, so the front is always the next one.
        let mut deadlines: std::collections::VecDeque<(Instant, Vec<usize>)> = Default::default();
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut launched: usize = 0;
        let mut settled = 0;
        let mut held = self.verifies().then(HeldAcks::default);
        loop {
            // Only launched nodes can settle, so this is how many are in flight. (A forged reply
            // naming a node not sent to yet settles it early, but one message settles at most
            // one node and a node is launched whenever none is in flight: saturating all the
            // same, as the count comes from what arrived.)
            let in_flight = launched.saturating_sub(tally.settled());
            let launch: Vec<usize> = match options.pacing {
                Pacing::All => pending.drain(..).collect(),
                Pacing::Window(n) => {
                    let k = n.max(1).saturating_sub(in_flight).min(pending.len());
                    pending.drain(..k).collect()
                }
                Pacing::Batch { size, sleep } if in_flight == 0 && !pending.is_empty() => {
                    if !batches.is_empty() && !sleep.is_zero() {
                        tokio::time::sleep(sleep).await;
                    }
                    let k = size.max(1).min(pending.len());
                    pending.drain(..k).collect()
                }
                Pacing::Batch { .. } => Vec::new(),
            };
            if !launch.is_empty() {
                self.launch(
                    call,
                    options,
                    &id,
                    &inbox,
                    &targets,
                    &launch,
                    direct,
                    batches.len(),
                )
                .await?;
                launched = launched.saturating_add(launch.len());
                deadlines.push_back((deadline(Instant::now(), options.timeout), launch.clone()));
                batches.push(launch);
            }
            if launched == tally.settled() {
                if pending.is_empty() {
                    break;
                }
                continue;
            }
            let Some(&(next, _)) = deadlines.front() else {
                break;
            };
            match tokio::time::timeout_at(tokio::time::Instant::from_std(next), replies.next())
                .await
            {
                Ok(Some(first)) => {
                    // Whatever else has arrived is opened with it, on every core. A message
                    // received before its deadline counts, however long opening it takes.
                    let received = Received::drain(first, &mut replies, millis(started.elapsed()));
                    let messages = match held.as_mut() {
                        Some(held) => held.sort(received.messages, &id, &tally),
                        None => received.messages,
                    };
                    let opened = self.open_all(&messages, unix_now()).await;
                    for (message, opened) in messages.iter().zip(opened) {
                        if let (Some(held), Some(Ok(Response::Reply(reply)))) =
                            (held.as_mut(), &opened)
                        {
                            held.replied(&reply.sender);
                        }
                        self.account(
                            message,
                            opened,
                            &id,
                            &targets,
                            &batches,
                            direct,
                            &mut tally,
                            received.at_ms,
                        );
                    }
                }
                Ok(None) => return Err(ClientError::Broker("the connection closed".into())),
                Err(_) => {
                    let now = Instant::now();
                    while deadlines.front().is_some_and(|(at, _)| *at <= now) {
                        if let Some((_, nodes)) = deadlines.pop_front() {
                            for target in nodes.iter().filter_map(|&i| targets.get(i)) {
                                tally.give_up(target);
                            }
                        }
                    }
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
        // Waiting is over: the acknowledgements of the nodes that did not reply decide between
        // `timeout` and `no_reply`, once verified. They are judged at the time they are opened.
        if let Some(held) = held {
            let acks = held.unreplied(&tally);
            if !acks.is_empty() {
                let opened = self.open_all(&acks, unix_now()).await;
                for (message, opened) in acks.iter().zip(opened) {
                    self.account(
                        message, opened, &id, &targets, &batches, direct, &mut tally, elapsed,
                    );
                }
            }
        }
        self.keep_found_credentials();
        let mut report = tally.finish(&id, &call.agent, &call.action, discovery_ms, elapsed);
        report.lost = losses.since(&self.losses);
        Ok(report)
    }

    /// Sends `call` to every node of `expected` at once, as request `id`, with the replies
    /// going to the collective's reply subjects for registries to collect, and returns without
    /// waiting for them (`--no-results`): only with the nodes the broker said at once were not
    /// connected (it tells only the sender).
    pub async fn send_only(
        &self,
        call: &Call,
        expected: &BTreeSet<String>,
        options: &RequestOptions,
        id: &str,
    ) -> Result<BTreeSet<String>, ClientError> {
        subject::check_token("agent", &call.agent)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let targets: Vec<&String> = expected.iter().collect();
        let all: Vec<usize> = (0..targets.len()).collect();
        let direct = is_direct(options, targets.len());
        let prefix = subject::replies(&self.collective, id);
        let mut statuses = self
            .nats
            .subscribe(format!("{prefix}.>"))
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        self.launch(call, options, id, &prefix, &targets, &all, direct, 0)
            .await?;
        // Once the broker has handled the request, every no-responders status it sent for it
        // has arrived.
        if let Err(e) = muster_transport::round_trip(&self.nats, options.timeout).await {
            debug!(request_id = %id, error = %e, "not-connected nodes may be missed");
        }
        let mut tally = Tally::new(expected.clone());
        let batches = [all.clone()];
        let mut arrived = Vec::new();
        while let Some(Some(message)) = statuses.next().now_or_never() {
            arrived.push(message);
        }
        let opened = self.open_all(&arrived, unix_now()).await;
        for (message, opened) in arrived.iter().zip(opened) {
            self.account(
                message, opened, id, &targets, &batches, direct, &mut tally, 0,
            );
        }
        let report = tally.finish(id, &call.agent, &call.action, 0, 0);
        Ok(report
            .missing
            .into_iter()
            .filter(|m| m.outcome == crate::report::Outcome::NotConnected)
            .map(|m| m.identity)
            .collect())
    }

    /// Sends the request to some of the targets: one message each (direct), or one broadcast
    /// whose filter lists them.
    #[allow(clippy::too_many_arguments)]
    async fn launch(
        &self,
        call: &Call,
        options: &RequestOptions,
        id: &str,
        inbox: &str,
        targets: &[&String],
        which: &[usize],
        direct: bool,
        batch: usize,
    ) -> Result<(), ClientError> {
        let filter = if direct {
            Filter::default()
        } else {
            Filter {
                identity: which
                    .iter()
                    .filter_map(|&i| targets.get(i).map(|t| (*t).clone()))
                    .collect(),
                ..Filter::default()
            }
        };
        // The same id for every part, with a fresh time so a long paced run stays within ttl.
        let mut request = self.build_request(call, filter, options.ttl, options.ack);
        request.id = id.to_string();
        let payload: bytes::Bytes = self.envelope(&request).to_bytes().into();
        let publish_err = |e: async_nats::PublishError| ClientError::Broker(e.to_string());
        if direct {
            for (i, target) in which.iter().filter_map(|&i| targets.get(i).map(|t| (i, t))) {
                self.nats
                    .publish_with_reply(
                        subject::node(&self.collective, target),
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
                    format!("{inbox}.b{batch}"),
                    payload,
                )
                .await
                .map_err(publish_err)?;
        }
        self.nats
            .flush()
            .await
            .map_err(|e| ClientError::Broker(e.to_string()))?;
        debug!(request_id = %id, nodes = which.len(), direct, "request sent");
        Ok(())
    }

    /// Accounts for one message on the inbox, `opened` ([`Client::open_all`]; `None` for the
    /// broker's statuses), received `at_ms` after the request was sent.
    #[allow(clippy::too_many_arguments)]
    fn account(
        &self,
        message: &async_nats::Message,
        opened: Option<Result<Response, Unopened>>,
        id: &str,
        targets: &[&String],
        batches: &[Vec<usize>],
        direct: bool,
        tally: &mut Tally,
        at_ms: u64,
    ) {
        if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            // Nobody subscribes to where this part went: those nodes are not connected.
            let suffix = message.subject.rsplit('.').next().unwrap_or_default();
            let nodes: Vec<usize> = match suffix.strip_prefix('b') {
                Some(batch) if !direct => batch
                    .parse::<usize>()
                    .ok()
                    .and_then(|b| batches.get(b).cloned())
                    .unwrap_or_default(),
                _ => suffix.parse::<usize>().ok().into_iter().collect(),
            };
            for i in nodes {
                if let Some(identity) = targets.get(i) {
                    tally.not_connected(identity);
                }
            }
            return;
        }
        let Some(opened) = opened else {
            return;
        };
        match opened {
            Ok(response) if response.request_id() != id => {
                debug!(sender = response.sender(), "reply to another request");
            }
            Ok(Response::Ack(ack)) => tally.ack(&ack.sender),
            Ok(Response::Reply(reply)) => tally.reply(reply, at_ms),
            // Counted, so the report can say how many answers could not be believed and why;
            // one that says it answers another request is not this request's business.
            Err(Unopened::Untrusted { why, claimed }) => match claimed {
                Some(c) if c.request_id != id => {}
                Some(c) if c.ack => tally.ignore(&why, false),
                _ => tally.ignore(&why, true),
            },
            Err(Unopened::Garbage) => tally.ignore(&IgnoreReason::UNDECODABLE, true),
        }
    }
}
