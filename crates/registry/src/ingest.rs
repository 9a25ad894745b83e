//! Storing what arrives: registrations, announced collected requests and the events on
//! reply subjects are queued as [`Write`]s by the receive loop, which never waits for SQLite;
//! one writer thread decodes them and stores each burst in one transaction. Pruning goes
//! through the same queue.

use std::sync::Arc;

use bytes::Bytes;
use muster_proto::job::JobRecord;
use muster_proto::registration::Registration;
use muster_security::signed::open;
use muster_security::{Kind, Verifier};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::jobs::event_from;
use crate::stats::Counters;
use crate::store::Store;

/// How many received registrations may wait for the writer; beyond this they are dropped
/// (counted as `overloaded`) rather than growing memory without bound.
pub(crate) const QUEUE_CAPACITY: usize = 1 << 16;

/// The most registrations stored in one transaction.
const MAX_BATCH: usize = 10_000;

/// What the writer thread is asked to do.
pub(crate) enum Write {
    /// Store a registration received at this time.
    Registration(Bytes, f64),
    /// Store an announced request.
    Job(Box<JobRecord>, f64),
    /// Store what arrived on a reply subject at this time (`true`: a no-responders status).
    Event(String, bool, Bytes, f64),
    /// Delete records last seen before this time.
    Prune(f64),
}

/// A registration from the network, checked as [`open`] says for nodes; a signed one must be
/// signed for the identity it carries.
pub fn registration_from(
    verifier: Option<&Verifier>,
    bytes: &[u8],
    now: f64,
) -> Result<Registration, &'static str> {
    let (inner, signer) = open(verifier, Kind::Node, bytes, now).map_err(|e| e.reason())?;
    let registration = Registration::decode(&inner).map_err(|e| e.reason())?;
    if signer.is_some_and(|s| s != registration.identity) {
        return Err("signed by another node than the one it registers");
    }
    Ok(registration)
}

/// The writer thread: decodes queued registrations and stores each burst in one transaction.
pub(crate) fn write_loop(
    mut store: Store,
    mut queue: mpsc::Receiver<Write>,
    counters: Arc<Counters>,
    replies_prefix: String,
    verifier: Option<Verifier>,
) {
    let mut batch = Vec::new();
    let mut jobs = Vec::new();
    let mut events = Vec::new();
    let mut prune = None;
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(write) = next.take() {
            match write {
                Write::Registration(bytes, seen) => {
                    match registration_from(verifier.as_ref(), &bytes, seen) {
                        Ok(registration) => batch.push((registration, seen)),
                        Err(reason) => {
                            Counters::add(&counters.invalid, 1);
                            debug!(reason, "dropped a registration");
                        }
                    }
                }
                Write::Job(job, received) => jobs.push((*job, received)),
                Write::Event(subject, no_responders, payload, received) => {
                    match event_from(
                        &replies_prefix,
                        &subject,
                        no_responders,
                        &payload,
                        received,
                        verifier.as_ref(),
                    ) {
                        Ok(event) => events.push(event),
                        Err(reason) => {
                            Counters::add(&counters.bad_events, 1);
                            debug!(%subject, reason, "dropped a message on a reply subject");
                        }
                    }
                }
                Write::Prune(before) => prune = Some(before),
            }
            if batch
                .len()
                .saturating_add(jobs.len())
                .saturating_add(events.len())
                < MAX_BATCH
            {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            match store.record(&batch) {
                Ok(n) => Counters::add(&counters.stored, n as u64),
                Err(e) => warn!(error = %e, count = batch.len(), "cannot store registrations"),
            }
            batch.clear();
        }
        if !jobs.is_empty() || !events.is_empty() {
            match store.record_jobs(&jobs, &events) {
                Ok((j, e)) => {
                    Counters::add(&counters.jobs, j as u64);
                    Counters::add(&counters.events, e as u64);
                }
                Err(e) => warn!(error = %e, "cannot store collected replies"),
            }
            jobs.clear();
            events.clear();
        }
        if let Some(before) = prune.take() {
            match store.prune(before) {
                Ok(0) => {}
                Ok(n) => {
                    Counters::add(&counters.pruned, n as u64);
                    info!(deleted = n, "pruned nodes past the retention age");
                }
                Err(e) => warn!(error = %e, "cannot prune old records"),
            }
        }
    }
}
