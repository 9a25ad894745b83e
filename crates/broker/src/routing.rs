//! The subscription index, the fan-out, and the [`Client`] half of a connection that the
//! fan-out delivers to.
//!
//! Literal subjects (the vast majority: one per node, one per broadcast agent) live in a hash
//! map, so routing a publish to them is one lookup. Wildcard subscriptions (few: client
//! inboxes `_INBOX.<id>.>`) live in a token trie walked once per publish. A publish is routed
//! on the publisher's reader task under a read lock: each matching subscriber gets the message
//! appended to its connection's outbound queue, the payload shared as [`Bytes`] when large.
//! `nats-server` `sublist.go` and `client.go` `processMsgResults` are the reference.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codec::Framing;
use crate::outbound::OutQueue;
use crate::stats::{Counters, Tally};
use crate::subject;

/// The parts of a connection that other connections touch: its outbound queue, its
/// subscriptions, its negotiated options. The connection's reader and writer tasks
/// (`connection`) own the rest.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) max_pending: usize,
    queue: Mutex<OutQueue>,
    /// Notified when the queue goes from empty to not empty (or is closed).
    pub(crate) wake: Notify,
    /// Notified when the queue falls back under half of `max_pending`.
    pub(crate) drained: Notify,
    /// Cancelled to stop both tasks at once, without flushing.
    pub(crate) abort: CancellationToken,
    /// Whether the client negotiated headers in `CONNECT`.
    pub(crate) headers: AtomicBool,
    subs: Mutex<HashMap<Bytes, Arc<Subscription>>>,
}

impl Client {
    pub(crate) fn new(id: u64, max_pending: usize) -> Client {
        Client {
            id,
            max_pending,
            queue: Mutex::new(OutQueue::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            abort: CancellationToken::new(),
            headers: AtomicBool::new(false),
            subs: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn lock_queue(&self) -> MutexGuard<'_, OutQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its subscriptions by sid.
    pub(crate) fn lock_subs(&self) -> MutexGuard<'_, HashMap<Bytes, Arc<Subscription>>> {
        self.subs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this client negotiated headers.
    pub(crate) fn headers(&self) -> bool {
        self.headers.load(Ordering::Relaxed)
    }

    pub(crate) fn wake_writer(&self) {
        self.wake.notify_one();
    }

    /// Drops everything queued and closes the connection: it did not keep up.
    pub(crate) fn drop_slow_consumer(&self, queue: &mut OutQueue, counters: &Counters) {
        if !queue.discard() {
            return;
        }
        Counters::incr(&counters.slow_consumers);
        tracing::info!(
            client = self.id,
            max_pending = self.max_pending,
            "slow consumer: connection dropped"
        );
        self.abort.cancel();
    }

    /// Forgets `sid` if it still names `sub` (after an `UNSUB` max was reached).
    pub(crate) fn forget(&self, sid: &Bytes, sub: &Arc<Subscription>) {
        let mut subs = self.lock_subs();
        if subs.get(sid).is_some_and(|s| Arc::ptr_eq(s, sub)) {
            subs.remove(sid);
        }
    }
}

/// One `SUB` of one connection.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) client: Arc<Client>,
    pub(crate) sid: Bytes,
    pub(crate) subject: Bytes,
    pub(crate) queue: Option<Bytes>,
    /// Remove after this many deliveries in total; 0 = no limit.
    max: AtomicU64,
    delivered: AtomicU64,
    removed: AtomicBool,
}

impl Subscription {
    pub(crate) fn new(
        client: Arc<Client>,
        sid: Bytes,
        subject: Bytes,
        queue: Option<Bytes>,
    ) -> Subscription {
        Subscription {
            client,
            sid,
            subject,
            queue,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        }
    }

    /// `UNSUB <sid> <max>`: returns whether the subscription must go now (it has already had
    /// `max` messages, `nats-server` `processUnsub`).
    pub(crate) fn limit(&self, max: u64) -> bool {
        if max <= self.delivered.load(Ordering::Acquire) {
            return true;
        }
        self.max.store(max, Ordering::Release);
        // A delivery may have slipped in between the check and the store without seeing max.
        self.delivered.load(Ordering::Acquire) >= max
    }

    /// Counts one delivery; `None` when the limit is already reached (do not deliver),
    /// `Some(last)` otherwise, `last` meaning this delivery reaches the limit.
    fn take_delivery(&self) -> Option<bool> {
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        match self.max.load(Ordering::Acquire) {
            0 => Some(false),
            max if n > max => None,
            max => Some(n == max),
        }
    }
}

#[derive(Debug)]
struct QueueGroup {
    name: Bytes,
    members: Vec<Arc<Subscription>>,
}

/// The subscriptions of one subject (or one trie position).
#[derive(Debug, Default)]
struct SubSet {
    plain: Vec<Arc<Subscription>>,
    queues: Vec<QueueGroup>,
}

impl SubSet {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }

    fn insert(&mut self, sub: Arc<Subscription>) {
        match &sub.queue {
            None => self.plain.push(sub),
            Some(name) => match self.queues.iter_mut().find(|g| g.name == name) {
                Some(group) => group.members.push(sub),
                None => self.queues.push(QueueGroup {
                    name: name.clone(),
                    members: vec![sub],
                }),
            },
        }
    }

    fn remove(&mut self, sub: &Arc<Subscription>) -> bool {
        fn take(list: &mut Vec<Arc<Subscription>>, sub: &Arc<Subscription>) -> bool {
            match list.iter().position(|s| Arc::ptr_eq(s, sub)) {
                Some(i) => {
                    list.swap_remove(i);
                    true
                }
                None => false,
            }
        }
        match &sub.queue {
            None => take(&mut self.plain, sub),
            Some(name) => {
                let Some(gi) = self.queues.iter().position(|g| g.name == name) else {
                    return false;
                };
                let found = take(&mut self.queues[gi].members, sub);
                if self.queues[gi].members.is_empty() {
                    self.queues.swap_remove(gi);
                }
                found
            }
        }
    }
}

/// A level of the wildcard trie.
#[derive(Debug, Default)]
struct Node {
    children: HashMap<Bytes, Node>,
    star: Option<Box<Node>>,
    /// Subscriptions whose pattern ends at this node.
    here: SubSet,
    /// Subscriptions whose pattern is this node's path followed by `>`.
    rest: SubSet,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }

    fn insert(&mut self, pattern: Option<&[u8]>, sub: Arc<Subscription>) {
        let Some(pattern) = pattern else {
            self.here.insert(sub);
            return;
        };
        let (token, tail) = subject::split_first(pattern);
        match (token, tail) {
            (b">", None) => self.rest.insert(sub),
            (b"*", _) => self.star.get_or_insert_default().insert(tail, sub),
            _ => match self.children.get_mut(token) {
                Some(child) => child.insert(tail, sub),
                None => {
                    let mut child = Node::default();
                    child.insert(tail, sub);
                    self.children.insert(Bytes::copy_from_slice(token), child);
                }
            },
        }
    }

    fn remove(&mut self, pattern: Option<&[u8]>, sub: &Arc<Subscription>) -> bool {
        let Some(pattern) = pattern else {
            return self.here.remove(sub);
        };
        let (token, tail) = subject::split_first(pattern);
        match (token, tail) {
            (b">", None) => self.rest.remove(sub),
            (b"*", _) => {
                let Some(star) = self.star.as_mut() else {
                    return false;
                };
                let found = star.remove(tail, sub);
                if star.is_empty() {
                    self.star = None;
                }
                found
            }
            _ => {
                let Some(child) = self.children.get_mut(token) else {
                    return false;
                };
                let found = child.remove(tail, sub);
                if child.is_empty() {
                    self.children.remove(token);
                }
                found
            }
        }
    }

    /// Calls `f` with every non-empty set matching the rest of a published subject.
    fn matches<'a>(&'a self, rest: Option<&[u8]>, f: &mut impl FnMut(&'a SubSet)) {
        let Some(rest) = rest else {
            if !self.here.is_empty() {
                f(&self.here);
            }
            return;
        };
        if !self.rest.is_empty() {
            f(&self.rest);
        }
        let (token, tail) = subject::split_first(rest);
        if let Some(child) = self.children.get(token) {
            child.matches(tail, f);
        }
        if let Some(star) = &self.star {
            star.matches(tail, f);
        }
    }
}

/// Every subscription of the broker.
#[derive(Debug, Default)]
struct Sublist {
    literal: HashMap<Bytes, SubSet>,
    wildcard: Node,
}

impl Sublist {
    fn insert(&mut self, sub: Arc<Subscription>) {
        if subject::has_wildcard(&sub.subject) {
            let pattern = sub.subject.clone();
            self.wildcard.insert(Some(&pattern), sub);
        } else {
            self.literal
                .entry(sub.subject.clone())
                .or_default()
                .insert(sub);
        }
    }

    fn remove(&mut self, sub: &Arc<Subscription>) -> bool {
        if subject::has_wildcard(&sub.subject) {
            self.wildcard.remove(Some(&sub.subject), sub)
        } else {
            let Some(set) = self.literal.get_mut(&sub.subject) else {
                return false;
            };
            let found = set.remove(sub);
            if set.is_empty() {
                self.literal.remove(&sub.subject);
            }
            found
        }
    }

    fn matches<'a>(&'a self, subject: &[u8], mut f: impl FnMut(&'a SubSet)) {
        if let Some(set) = self.literal.get(subject) {
            f(set);
        }
        if !self.wildcard.is_empty() {
            self.wildcard.matches(Some(subject), &mut f);
        }
    }
}

/// A message being routed.
pub(crate) struct Message<'m> {
    pub(crate) subject: &'m [u8],
    pub(crate) reply: Option<&'m [u8]>,
    pub(crate) headers: Option<&'m Bytes>,
    pub(crate) payload: &'m Bytes,
}

/// Per-connection state reused across publishes.
#[derive(Debug)]
pub(crate) struct Scratch {
    framing: Framing,
    plain_framing: Framing,
    expired: Vec<Arc<Subscription>>,
    /// Subscriber connections more than half full after the last publish.
    pub(crate) stalled: Vec<Arc<Client>>,
    rng: u64,
}

impl Scratch {
    pub(crate) fn new(seed: u64) -> Scratch {
        Scratch {
            framing: Framing::default(),
            plain_framing: Framing::default(),
            expired: Vec::new(),
            stalled: Vec::new(),
            rng: seed | 1,
        }
    }
}

/// xorshift64: enough to spread queue-group deliveries.
fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Payloads at least this large are queued by reference instead of copied.
const SHARE_PAYLOAD_FROM: usize = 4096;

/// Delivers one message to subscribers, holding each subscriber connection's queue lock
/// across consecutive subscriptions of the same connection.
struct Fanout<'a, 'm> {
    publisher: u64,
    echo: bool,
    msg: &'m Message<'m>,
    framing: &'m Framing,
    plain_framing: &'m Framing,
    counters: &'a Counters,
    tally: &'m mut Tally,
    expired: &'m mut Vec<Arc<Subscription>>,
    stalled: &'m mut Vec<Arc<Client>>,
    locked: Option<(&'a Client, MutexGuard<'a, OutQueue>, bool)>,
}

impl<'a> Fanout<'a, '_> {
    fn deliver(&mut self, sub: &'a Arc<Subscription>) -> bool {
        let client: &'a Client = &sub.client;
        if !self.echo && client.id == self.publisher {
            return false;
        }
        let same = self
            .locked
            .as_ref()
            .is_some_and(|(c, _, _)| std::ptr::eq(*c, client));
        if !same {
            self.release();
            let queue = client.lock_queue();
            let was_empty = queue.is_empty();
            self.locked = Some((client, queue, was_empty));
        }
        let Some((_, queue, _)) = self.locked.as_mut() else {
            return false;
        };
        if queue.is_closed() {
            return false;
        }
        let Some(last) = sub.take_delivery() else {
            return false;
        };
        if last {
            self.expired.push(Arc::clone(sub));
        }
        let msg = self.msg;
        let (framing, headers) = match msg.headers {
            Some(h) if client.headers() => (self.framing, Some(h)),
            // A subscriber that did not negotiate headers gets a plain MSG with the payload
            // only (nats-server client.go msgHeader).
            Some(_) => (self.plain_framing, None),
            None => (self.framing, None),
        };
        let size = headers.map_or(0, |h| h.len()) + msg.payload.len();
        let queued = framing.line_len(sub.sid.len()) + size + 2;
        if queue.pending() + queued > client.max_pending {
            client.drop_slow_consumer(queue, self.counters);
            return false;
        }
        framing.put_line(&sub.sid, queue.tail_mut());
        if let Some(h) = headers {
            queue.tail_mut().extend_from_slice(h);
        }
        if msg.payload.len() >= SHARE_PAYLOAD_FROM {
            queue.push_shared(msg.payload.clone());
        } else {
            queue.tail_mut().extend_from_slice(msg.payload);
        }
        queue.tail_mut().extend_from_slice(b"\r\n");
        queue.add_queued(queued);
        if queue.pending() > client.max_pending / 2
            && !self.stalled.iter().any(|c| std::ptr::eq(&**c, client))
        {
            self.stalled.push(Arc::clone(&sub.client));
        }
        self.tally.msgs_out += 1;
        self.tally.bytes_out += size as u64;
        true
    }

    fn release(&mut self) {
        if let Some((client, queue, was_empty)) = self.locked.take() {
            let notify = was_empty && !queue.is_empty();
            drop(queue);
            if notify {
                client.wake_writer();
            }
        }
    }
}

/// The subscription index, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Router {
    sublist: RwLock<Sublist>,
}

impl Router {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Sublist> {
        self.sublist
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Sublist> {
        self.sublist
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn subscribe(&self, sub: Arc<Subscription>) {
        self.write().insert(sub);
    }

    /// Removes subscriptions (each at most once, whoever asks); returns how many went.
    pub(crate) fn unsubscribe<'s>(
        &self,
        subs: impl IntoIterator<Item = &'s Arc<Subscription>>,
    ) -> u64 {
        let mut removed = 0;
        let mut sublist = None;
        for sub in subs {
            if sub.removed.swap(true, Ordering::AcqRel) {
                continue;
            }
            let sublist = sublist.get_or_insert_with(|| self.write());
            if sublist.remove(sub) {
                removed += 1;
            }
        }
        removed
    }

    /// Routes `msg` from the connection `publisher`; returns whether anyone got it.
    /// Subscriptions that reached their `UNSUB` max are removed afterwards.
    pub(crate) fn publish(
        &self,
        publisher: u64,
        echo: bool,
        msg: &Message<'_>,
        scratch: &mut Scratch,
        counters: &Counters,
        tally: &mut Tally,
    ) -> bool {
        let total = msg.headers.map_or(0, |h| h.len()) + msg.payload.len();
        scratch
            .framing
            .prepare(msg.subject, msg.reply, msg.headers.map(|h| h.len()), total);
        if msg.headers.is_some() {
            scratch
                .plain_framing
                .prepare(msg.subject, msg.reply, None, msg.payload.len());
        }
        let mut delivered = false;
        let mut rng = scratch.rng;
        {
            let sublist = self.read();
            let mut queue_groups: Vec<&QueueGroup> = Vec::new();
            let mut fanout = Fanout {
                publisher,
                echo,
                msg,
                framing: &scratch.framing,
                plain_framing: &scratch.plain_framing,
                counters,
                tally,
                expired: &mut scratch.expired,
                stalled: &mut scratch.stalled,
                locked: None,
            };
            sublist.matches(msg.subject, |set| {
                for sub in &set.plain {
                    delivered |= fanout.deliver(sub);
                }
                queue_groups.extend(set.queues.iter());
            });
            if !queue_groups.is_empty() {
                // One copy per queue group name across every matching subject
                // (nats-server sublist results group queue subscribers by name).
                let mut members: Vec<&Arc<Subscription>> = Vec::new();
                for (i, group) in queue_groups.iter().enumerate() {
                    if queue_groups[..i].iter().any(|g| g.name == group.name) {
                        continue;
                    }
                    members.clear();
                    for g in &queue_groups[i..] {
                        if g.name == group.name {
                            members.extend(g.members.iter());
                        }
                    }
                    let n = members.len();
                    let start = (xorshift(&mut rng) % n as u64) as usize;
                    for k in 0..n {
                        if fanout.deliver(members[(start + k) % n]) {
                            delivered = true;
                            break;
                        }
                    }
                }
            }
            fanout.release();
        }
        scratch.rng = rng;
        if !scratch.expired.is_empty() {
            let expired = std::mem::take(&mut scratch.expired);
            let removed = self.unsubscribe(&expired);
            Counters::decr(&counters.subscriptions, removed);
            for sub in &expired {
                sub.client.forget(&sub.sid, sub);
            }
            scratch.expired = expired;
            scratch.expired.clear();
        }
        delivered
    }

    /// The first plain subscription of connection `client` matching `reply` (where
    /// `nats-server` sends the no-responders status: `client.go` `subForReply`).
    pub(crate) fn reply_subscription(
        &self,
        client: u64,
        reply: &[u8],
    ) -> Option<Arc<Subscription>> {
        let sublist = self.read();
        let mut found = None;
        sublist.matches(reply, |set| {
            if found.is_none() {
                found = set.plain.iter().find(|s| s.client.id == client).cloned();
            }
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(
        client: &Arc<Client>,
        sid: &str,
        subject: &str,
        queue: Option<&str>,
    ) -> Arc<Subscription> {
        Arc::new(Subscription::new(
            Arc::clone(client),
            Bytes::copy_from_slice(sid.as_bytes()),
            Bytes::copy_from_slice(subject.as_bytes()),
            queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
        ))
    }

    fn matching(sublist: &Sublist, subject: &str) -> Vec<String> {
        let mut sids = Vec::new();
        sublist.matches(subject.as_bytes(), |set| {
            for s in &set.plain {
                sids.push(String::from_utf8_lossy(&s.sid).into_owned());
            }
            for g in &set.queues {
                for s in &g.members {
                    sids.push(String::from_utf8_lossy(&s.sid).into_owned());
                }
            }
        });
        sids.sort();
        sids
    }

    #[test]
    fn literal_and_wildcard_matches_agree_with_subject_matches() {
        let client = Arc::new(Client::new(1, 1 << 20));
        let patterns = [
            "foo",
            "foo.bar",
            "foo.*",
            "foo.>",
            ">",
            "*",
            "*.bar",
            "foo.*.baz",
            "foo.bar.baz",
            "_INBOX.a.>",
            "foo*.bar",
        ];
        let mut sublist = Sublist::default();
        let subs: Vec<_> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| sub(&client, &format!("{i:02}"), p, None))
            .collect();
        for s in &subs {
            sublist.insert(Arc::clone(s));
        }
        let subjects = [
            "foo",
            "foo.bar",
            "foo.baz",
            "foo.bar.baz",
            "foo.x.baz",
            "bar",
            "x.bar",
            "_INBOX.a.1",
            "_INBOX.b.1",
            "foo*.bar",
            "foo.*",
        ];
        for subject in subjects {
            let mut expected: Vec<String> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| subject::matches(p.as_bytes(), subject.as_bytes()))
                .map(|(i, _)| format!("{i:02}"))
                .collect();
            expected.sort();
            assert_eq!(matching(&sublist, subject), expected, "{subject}");
        }
        for s in &subs {
            assert!(sublist.remove(s), "{:?}", s.subject);
            assert!(!sublist.remove(s));
        }
        assert!(sublist.literal.is_empty());
        assert!(sublist.wildcard.is_empty());
    }

    #[test]
    fn queue_groups_are_grouped_by_name() {
        let client = Arc::new(Client::new(1, 1 << 20));
        let mut set = SubSet::default();
        let a = sub(&client, "1", "foo", Some("q"));
        let b = sub(&client, "2", "foo", Some("q"));
        let c = sub(&client, "3", "foo", Some("r"));
        for s in [&a, &b, &c] {
            set.insert(Arc::clone(s));
        }
        assert_eq!(set.queues.len(), 2);
        assert!(set.remove(&a));
        assert!(set.remove(&b));
        assert_eq!(set.queues.len(), 1);
        assert!(set.remove(&c));
        assert!(set.is_empty());
    }

    #[test]
    fn unsub_max() {
        let client = Arc::new(Client::new(1, 1 << 20));
        let s = sub(&client, "1", "foo", None);
        assert!(!s.limit(2));
        assert_eq!(s.take_delivery(), Some(false));
        assert_eq!(s.take_delivery(), Some(true));
        assert_eq!(s.take_delivery(), None);
        assert!(s.limit(1));
    }
}
