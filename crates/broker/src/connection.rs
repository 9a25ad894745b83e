//! One client connection: a reader task that decodes and acts on operations (routing
//! publishes on the spot), and a writer task that drains the connection's outbound queue.
//!
//! The outbound queue is bounded in bytes (`max_pending`). A publisher never waits for a
//! subscriber: when a subscriber's queue would exceed the bound, that subscriber is dropped as
//! a slow consumer (closed without a word, as `nats-server` does) and the fan-out goes on.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection's reading side: a TCP stream's, or a TLS session's.
type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// A connection's writing side.
type Writer = Box<dyn AsyncWrite + Unpin + Send>;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::codec::{self, ClientOp, Connect, Decoder, ErrorAction, Limits, ServerInfo};
use crate::config::Auth;
use crate::routing::{Client, Message, Scratch, Subscription};
use crate::shared::Shared;
use crate::stats::{Counters, Tally};
use crate::subject;

/// Bytes read from the socket at a time (at most).
const READ_CHUNK: usize = 64 * 1024;
/// Slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// How long a closing connection keeps reading (and discarding) so that its last words are
/// not lost to a TCP reset caused by unread input.
const LINGER: Duration = Duration::from_millis(250);
/// `nats-server` sends its first PING about this long after `CONNECT`.
const FIRST_PING: Duration = Duration::from_secs(2);
/// A publisher whose subscriber is more than half full waits at least this long for it to
/// drain (`nats-server` `stallClientMinDuration`)...
const STALL_MIN: Duration = Duration::from_millis(2);
/// ...and at most this long, per publish (`stallClientMaxDuration`)...
const STALL_MAX: Duration = Duration::from_millis(5);
/// ...and at most this long in all per socket read (`stallTotalAllowed`).
const STALL_TOTAL: Duration = Duration::from_millis(10);

impl Client {
    /// Queues protocol bytes for this connection (PONG, +OK, -ERR, ...). These count against
    /// `max_pending` too: a client that sends PINGs and never reads is a slow consumer
    /// (`nats-server` `queueOutbound`).
    fn send(&self, bytes: &[u8], counters: &Counters) {
        let mut queue = self.lock_queue();
        if queue.is_closed() {
            return;
        }
        if queue.pending() + bytes.len() > self.max_pending {
            self.drop_slow_consumer(&mut queue, counters);
            return;
        }
        let was_empty = queue.is_empty();
        queue.push(bytes);
        drop(queue);
        if was_empty {
            self.wake_writer();
        }
    }

    fn send_err(&self, text: &str, counters: &Counters) {
        let mut buf = BytesMut::new();
        codec::encode_err(text, &mut buf);
        self.send(&buf, counters);
    }

    /// Lets the writer finish what is queued, then close.
    fn close_after_flush(&self) {
        self.lock_queue().close_after_flush();
        self.wake_writer();
    }
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Write what is queued (an `-ERR`, say), then close.
    Flush,
    /// The broker is shutting down: flush, then close.
    Shutdown,
    /// Close now (slow consumer, write error).
    Abort,
}

/// What the reader does after processing input.
enum Step {
    /// Read more.
    Read,
    /// Wait briefly for subscribers that are more than half full, then carry on.
    Stall,
    /// Stop.
    Close(Close),
}

/// Options negotiated in `CONNECT`.
#[derive(Debug)]
struct Negotiated {
    connected: bool,
    verbose: bool,
    pedantic: bool,
    echo: bool,
    no_responders: bool,
}

struct Connection {
    shared: Arc<Shared>,
    client: Arc<Client>,
    decoder: Decoder,
    options: Negotiated,
    pings_out: u32,
    /// Inbox tokens this client owns (`private_inboxes`).
    claims: Vec<Bytes>,
    /// Time spent stalled since the last socket read.
    stalled_for: Duration,
    scratch: Scratch,
    tally: Tally,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_client_id();
    let config = &shared.config;
    let client = Arc::new(Client::new(id, config.max_pending));
    Counters::incr(&shared.counters.connections);
    Counters::incr(&shared.counters.total_connections);
    tracing::debug!(client = id, %peer, "connection accepted");

    let info = ServerInfo {
        server_id: shared.server_id.clone(),
        server_name: config.server_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        proto: 1,
        host: local.ip().to_string(),
        port: local.port(),
        headers: true,
        max_payload: config.max_payload,
        client_id: id,
        client_ip: peer.ip().to_string(),
        auth_required: config.auth.required(),
        tls_required: tls.is_some(),
        tls_verify: config.tls.as_ref().is_some_and(|t| t.ca.is_some()),
    };
    let mut info_bytes = BytesMut::new();
    codec::encode_info(&info, &mut info_bytes);
    let (mut reader, writer): (Reader, Writer) = match tls {
        Some(acceptor) => {
            // INFO in plain text, then the client starts the handshake.
            let handshake = async {
                stream.write_all(&info_bytes).await?;
                acceptor.accept(stream).await
            };
            match tokio::time::timeout(config.auth_timeout.max(Duration::from_secs(2)), handshake)
                .await
            {
                Ok(Ok(session)) => {
                    let (r, w) = tokio::io::split(session);
                    (Box::new(r), Box::new(w))
                }
                Ok(Err(e)) => {
                    Counters::decr(&shared.counters.connections, 1);
                    tracing::debug!(client = id, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    Counters::decr(&shared.counters.connections, 1);
                    tracing::debug!(client = id, %peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        None => {
            client.send(&info_bytes, &shared.counters);
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
    };
    let writer = tokio::spawn(write_loop(Arc::clone(&client), writer, Arc::clone(&shared)));

    let mut decoder = Decoder::new(Limits {
        max_payload: config.max_payload,
        max_control_line: config.max_control_line,
    });
    decoder.set_require_connect(config.auth.required());
    let mut conn = Connection {
        scratch: Scratch::new(shared.random_seed() ^ id),
        shared,
        client,
        decoder,
        options: Negotiated {
            connected: false,
            verbose: false,
            pedantic: false,
            echo: true,
            no_responders: false,
        },
        pings_out: 0,
        claims: Vec::new(),
        stalled_for: Duration::ZERO,
        tally: Tally::default(),
    };
    let close = conn.read_loop(&mut reader, &shutdown).await;
    conn.teardown(close, writer, reader).await;
}

impl Connection {
    async fn read_loop(&mut self, reader: &mut Reader, shutdown: &CancellationToken) -> Close {
        let config = &self.shared.config;
        let mut buf = BytesMut::with_capacity(4096);
        let interval = config.ping_interval.max(Duration::from_millis(1));
        let mut pings =
            tokio::time::interval_at(Instant::now() + interval.min(FIRST_PING), interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let auth_required = config.auth.required();
        let auth_deadline = tokio::time::sleep(config.auth_timeout);
        tokio::pin!(auth_deadline);
        let abort = self.client.abort.clone();
        loop {
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_CHUNK.max(buf.len()));
            }
            tokio::select! {
                biased;
                _ = abort.cancelled() => return Close::Abort,
                _ = shutdown.cancelled() => return Close::Shutdown,
                _ = pings.tick(), if self.options.connected => {
                    if let Some(close) = self.on_ping_timer() {
                        return close;
                    }
                    continue;
                }
                _ = &mut auth_deadline, if auth_required && !self.options.connected => {
                    self.client.send_err("Authentication Timeout", &self.shared.counters);
                    Counters::incr(&self.shared.counters.auth_failures);
                    return Close::Flush;
                }
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Close::Flush,
                    Ok(_) => self.stalled_for = Duration::ZERO,
                },
            }
            let was_connected = self.options.connected;
            loop {
                let step = self.process(&mut buf);
                self.shared.counters.add(&mut self.tally);
                if !was_connected && self.options.connected {
                    // Like nats-server, the first PING comes a little after CONNECT.
                    pings.reset_at(Instant::now() + interval.min(FIRST_PING));
                }
                match step {
                    Step::Read => break,
                    Step::Stall => self.stall().await,
                    Step::Close(close) => return close,
                }
            }
        }
    }

    /// Gives subscribers that are more than half full a few milliseconds to drain before
    /// this publisher goes on (`nats-server` `client.go` `stalledWait`): a fast consumer
    /// keeps up instead of being dropped, and a dead one costs the fan-out at most
    /// [`STALL_MAX`] per publish until its queue overflows and it is dropped.
    async fn stall(&mut self) {
        let stalled = std::mem::take(&mut self.scratch.stalled);
        let started = Instant::now();
        let budget = STALL_TOTAL.saturating_sub(self.stalled_for).min(STALL_MAX);
        let deadline = started + budget;
        for client in &stalled {
            let drained = client.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let (pending, closed) = {
                let queue = client.lock_queue();
                (queue.pending(), queue.is_closed())
            };
            let half = client.max_pending / 2;
            if closed || pending <= half || Instant::now() >= deadline {
                continue;
            }
            // Longer the fuller it is, as nats-server's stallDuration.
            let steps = (pending - half) / (half / 10).max(1);
            let ttl = STALL_MIN
                .saturating_mul(u32::try_from(steps + 1).unwrap_or(u32::MAX))
                .min(STALL_MAX);
            let until = (Instant::now() + ttl).min(deadline);
            let _ = tokio::time::timeout_at(until, drained).await;
        }
        self.stalled_for += started.elapsed();
        self.scratch.stalled = stalled;
        self.scratch.stalled.clear();
    }

    fn on_ping_timer(&mut self) -> Option<Close> {
        if self.pings_out + 1 > self.shared.config.max_pings_out {
            self.client
                .send_err("Stale Connection", &self.shared.counters);
            Counters::incr(&self.shared.counters.stale_connections);
            tracing::debug!(client = self.client.id, "stale connection closed");
            return Some(Close::Flush);
        }
        self.pings_out += 1;
        self.client.send(codec::PING, &self.shared.counters);
        None
    }

    /// Acts on the complete operations in `buf`, until one needs the reader to wait.
    fn process(&mut self, buf: &mut BytesMut) -> Step {
        loop {
            match self.decoder.decode(buf) {
                Ok(Some(op)) => {
                    if let Some(close) = self.handle(op) {
                        return Step::Close(close);
                    }
                    if !self.scratch.stalled.is_empty() {
                        return Step::Stall;
                    }
                }
                Ok(None) => return Step::Read,
                Err(error) => {
                    tracing::debug!(client = self.client.id, %error, "protocol error");
                    match error.action() {
                        ErrorAction::ErrAndStay(text) => {
                            self.client.send_err(text, &self.shared.counters)
                        }
                        ErrorAction::ErrAndClose(text) => {
                            self.client.send_err(text, &self.shared.counters);
                            self.count_error(&error);
                            return Step::Close(Close::Flush);
                        }
                        ErrorAction::Close => {
                            self.count_error(&error);
                            return Step::Close(Close::Flush);
                        }
                    }
                }
            }
        }
    }

    fn count_error(&self, error: &codec::ProtocolError) {
        let counters = &self.shared.counters;
        if matches!(error, codec::ProtocolError::AuthorizationRequired) {
            Counters::incr(&counters.auth_failures);
        } else {
            Counters::incr(&counters.protocol_errors);
        }
    }

    fn ok(&self) {
        if self.options.verbose {
            self.client.send(codec::OK, &self.shared.counters);
        }
    }

    fn handle(&mut self, op: ClientOp) -> Option<Close> {
        match op {
            ClientOp::Connect(connect) => return self.connect(&connect),
            ClientOp::Ping => self.client.send(codec::PONG, &self.shared.counters),
            ClientOp::Pong => self.pings_out = 0,
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => self.subscribe(subject, queue, sid),
            ClientOp::Unsub { sid, max } => self.unsubscribe(&sid, max),
            ClientOp::Pub {
                subject,
                reply,
                headers,
                payload,
            } => self.publish(&subject, reply.as_deref(), headers.as_ref(), &payload),
            ClientOp::Info | ClientOp::Ok => {}
            // nats-server client.go processErr: a client's -ERR closes its connection.
            ClientOp::Err(_) => return Some(Close::Flush),
        }
        None
    }

    /// `nats-server` `client.go` `processConnect`, in its order of checks.
    fn connect(&mut self, connect: &Connect) -> Option<Close> {
        let counters = &self.shared.counters;
        if !authorized(&self.shared.config.auth, connect) || connect.account.is_some() {
            Counters::incr(&counters.auth_failures);
            tracing::debug!(client = self.client.id, "authorization violation");
            self.client
                .send_err("Authorization Violation", &self.shared.counters);
            return Some(Close::Flush);
        }
        if !(0..=1).contains(&connect.protocol) {
            self.client
                .send_err("invalid client protocol", &self.shared.counters);
            Counters::incr(&counters.protocol_errors);
            return Some(Close::Flush);
        }
        if connect.no_responders && !connect.headers {
            self.client.send_err(
                "no responders requires headers support",
                &self.shared.counters,
            );
            Counters::incr(&counters.protocol_errors);
            return Some(Close::Flush);
        }
        self.options = Negotiated {
            connected: true,
            verbose: connect.verbose,
            pedantic: connect.pedantic,
            echo: connect.echo,
            no_responders: connect.no_responders,
        };
        self.client
            .headers
            .store(connect.headers, Ordering::Relaxed);
        self.decoder.set_headers(connect.headers);
        self.decoder.set_require_connect(false);
        self.ok();
        None
    }

    /// With `private_inboxes`: whether this client may subscribe to `subject`, claiming the
    /// inbox token it names if nobody owns it yet.
    fn inbox_allowed(&mut self, subject: &Bytes) -> bool {
        match inbox_scope(subject) {
            InboxScope::Unrelated => true,
            InboxScope::Several => false,
            InboxScope::One(token) => {
                let mut owners = match self.shared.inbox_owners.lock() {
                    Ok(o) => o,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match owners.get(&token) {
                    Some(owner) => *owner == self.client.id,
                    None if self.claims.len() >= MAX_INBOX_CLAIMS => false,
                    None => {
                        owners.insert(token.clone(), self.client.id);
                        self.claims.push(token);
                        true
                    }
                }
            }
        }
    }

    fn subscribe(&mut self, subject: Bytes, queue: Option<Bytes>, sid: Bytes) {
        if self.shared.config.private_inboxes && !self.inbox_allowed(&subject) {
            // nats-server's wording; the connection stays open.
            let text = format!(
                "Permissions Violation for Subscription to \"{}\"",
                String::from_utf8_lossy(&subject)
            );
            Counters::incr(&self.shared.counters.permission_violations);
            self.client.send_err(&text, &self.shared.counters);
            return;
        }
        // nats-server keeps the first subscription of a reused sid.
        let added = match self.client.lock_subs().entry(sid) {
            Entry::Occupied(_) => None,
            Entry::Vacant(slot) => {
                let sub = Arc::new(Subscription::new(
                    Arc::clone(&self.client),
                    slot.key().clone(),
                    subject,
                    queue,
                ));
                slot.insert(Arc::clone(&sub));
                Some(sub)
            }
        };
        if let Some(sub) = added {
            self.shared.router.subscribe(sub);
            Counters::incr(&self.shared.counters.subscriptions);
        }
        self.ok();
    }

    fn unsubscribe(&mut self, sid: &Bytes, max: Option<u64>) {
        let sub = self.client.lock_subs().get(sid).cloned();
        if let Some(sub) = sub {
            let now = max.is_none_or(|max| sub.limit(max));
            if now {
                self.client.forget(sid, &sub);
                let removed = self.shared.router.unsubscribe([&sub]);
                Counters::decr(&self.shared.counters.subscriptions, removed);
            }
        }
        self.ok();
    }

    fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Bytes>,
        payload: &Bytes,
    ) {
        let size = headers.map_or(0, |h| h.len()) + payload.len();
        self.tally.msgs_in += 1;
        self.tally.bytes_in += size as u64;
        self.ok();
        // nats-server processPub: with pedantic, complain but route anyway.
        if self.options.pedantic && !subject::is_valid_literal(subject) {
            self.client
                .send_err("Invalid Publish Subject", &self.shared.counters);
        }
        let msg = Message {
            subject,
            reply,
            headers,
            payload,
        };
        let delivered = self.shared.router.publish(
            self.client.id,
            self.options.echo,
            &msg,
            &mut self.scratch,
            &self.shared.counters,
            &mut self.tally,
        );
        if let (false, Some(reply), true) = (delivered, reply, self.options.no_responders) {
            self.no_responders(subject, reply);
        }
    }

    /// Tells the requester nobody is listening: a header-only 503 on its reply subscription
    /// (`nats-server` `client.go` `processInboundClientMsg`, 2.10+ shape with `Nats-Subject`).
    fn no_responders(&mut self, subject: &[u8], reply: &[u8]) {
        let Some(sub) = self.shared.router.reply_subscription(self.client.id, reply) else {
            return;
        };
        let mut headers = BytesMut::with_capacity(32 + subject.len());
        headers.extend_from_slice(b"NATS/1.0 503\r\nNats-Subject: ");
        headers.extend_from_slice(subject);
        headers.extend_from_slice(b"\r\n\r\n");
        let mut out = BytesMut::new();
        codec::encode_hmsg(reply, &sub.sid, None, &headers, b"", &mut out);
        self.client.send(&out, &self.shared.counters);
    }

    async fn teardown(self, close: Close, writer: tokio::task::JoinHandle<()>, mut reader: Reader) {
        let Connection {
            shared,
            client,
            claims,
            ..
        } = self;
        if !claims.is_empty() {
            let mut owners = match shared.inbox_owners.lock() {
                Ok(o) => o,
                Err(poisoned) => poisoned.into_inner(),
            };
            for token in &claims {
                owners.remove(token);
            }
        }
        let subs: Vec<Arc<Subscription>> = client.lock_subs().drain().map(|(_, s)| s).collect();
        let removed = shared.router.unsubscribe(&subs);
        Counters::decr(&shared.counters.subscriptions, removed);
        drop(subs);
        match close {
            Close::Abort => client.abort.cancel(),
            Close::Flush | Close::Shutdown => client.close_after_flush(),
        }
        let deadline = shared.config.write_deadline;
        let mut writer = writer;
        if tokio::time::timeout(deadline, &mut writer).await.is_err() {
            client.abort.cancel();
            writer.abort();
        }
        if close != Close::Abort {
            // Keep reading briefly: closing with unread input would reset the connection and
            // could destroy the -ERR we just sent.
            let mut sink = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(LINGER, async {
                while let Ok(n) = reader.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        Counters::decr(&shared.counters.connections, 1);
        tracing::debug!(client = client.id, ?close, "connection closed");
    }
}

fn authorized(auth: &Auth, connect: &Connect) -> bool {
    match auth {
        Auth::None => true,
        Auth::Token { token } => connect.auth_token.as_deref() == Some(token.as_str()),
        Auth::UserPassword { user, password } => {
            connect.user.as_deref() == Some(user.as_str())
                && connect.pass.as_deref() == Some(password.as_str())
        }
    }
}

/// The most inbox tokens one client may own.
const MAX_INBOX_CLAIMS: usize = 100_000;

/// What part of the inbox space (`_INBOX.<token>.…`) a subscription covers.
#[derive(Debug, PartialEq, Eq)]
enum InboxScope {
    /// None of it.
    Unrelated,
    /// The inbox of one token.
    One(Bytes),
    /// Several clients' inboxes (`>`, `_INBOX.>`, `_INBOX.*.x`, `*.t.>`…).
    Several,
}

fn inbox_scope(subject: &Bytes) -> InboxScope {
    let mut tokens = subject.split(|b| *b == b'.');
    let first = tokens.next().unwrap_or_default();
    let second = tokens.next();
    match (first, second) {
        (b">", _) => InboxScope::Several,
        (b"_INBOX" | b"*", None) => InboxScope::Unrelated,
        (_, Some(b"*" | b">")) if matches!(first, b"_INBOX" | b"*") => InboxScope::Several,
        (b"*", Some(_)) => InboxScope::Several,
        (b"_INBOX", Some(token)) => InboxScope::One(subject.slice_ref(token)),
        _ => InboxScope::Unrelated,
    }
}

/// Drains the outbound queue into the socket, coalescing whatever accumulated while the last
/// write was in progress into one vectored write.
async fn write_loop(client: Arc<Client>, mut socket: Writer, shared: Arc<Shared>) {
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    loop {
        let closing = {
            let mut queue = client.lock_queue();
            if queue.is_empty() {
                if queue.is_closing() {
                    break;
                }
                None
            } else {
                Some(queue.take_into(&mut batch))
            }
        };
        let Some(n) = closing else {
            tokio::select! {
                _ = client.wake.notified() => continue,
                _ = client.abort.cancelled() => return,
            }
        };
        let deadline = shared.config.write_deadline;
        tokio::select! {
            written = tokio::time::timeout(deadline, write_all(&mut socket, &mut batch)) => match written {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    client.abort.cancel();
                    return;
                }
                Err(_) => {
                    // nats-server: a write blocked past the deadline makes a slow consumer.
                    let mut queue = client.lock_queue();
                    client.drop_slow_consumer(&mut queue, &shared.counters);
                    return;
                }
            },
            _ = client.abort.cancelled() => return,
        }
        let below_half = {
            let mut queue = client.lock_queue();
            queue.written(n);
            queue.pending() <= client.max_pending / 2
        };
        if below_half {
            client.drained.notify_waiters();
        }
    }
    let _ = socket.shutdown().await;
}

/// Writes every buffer of `batch`, leaving it empty.
async fn write_all(socket: &mut Writer, batch: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    while !batch.is_empty() {
        if batch.len() == 1 {
            if let Some(mut only) = batch.pop_front() {
                socket.write_all_buf(&mut only).await?;
            }
            continue;
        }
        let slices: Vec<IoSlice<'_>> = batch
            .iter()
            .take(MAX_IOV)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut written = socket.write_vectored(&slices).await?;
        drop(slices);
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(front) = batch.front_mut() else {
                break;
            };
            if front.len() <= written {
                written -= front.len();
                batch.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod inbox_tests {
    use super::*;

    #[test]
    fn which_inboxes_a_subscription_covers() {
        let scope = |s: &'static str| inbox_scope(&Bytes::from_static(s.as_bytes()));
        let one = |t: &'static str| InboxScope::One(Bytes::from_static(t.as_bytes()));
        assert_eq!(scope("_INBOX.abc"), one("abc"));
        assert_eq!(scope("_INBOX.abc.>"), one("abc"));
        assert_eq!(scope("_INBOX.abc.*"), one("abc"));
        for several in [
            ">",
            "_INBOX.>",
            "_INBOX.*",
            "_INBOX.*.x",
            "*.abc.>",
            "*.*",
            "*.>",
        ] {
            assert_eq!(scope(several), InboxScope::Several, "{several}");
        }
        for unrelated in [
            "muster.muster.node.web1",
            "muster.>",
            "_INBOX",
            "*",
            "foo.*.>",
            "_INBOXES.x",
        ] {
            assert_eq!(scope(unrelated), InboxScope::Unrelated, "{unrelated}");
        }
    }
}
