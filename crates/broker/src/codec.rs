//! The NATS client protocol, without I/O: a [`Decoder`] that turns bytes from a client into
//! [`ClientOp`]s, and encoders for what the server sends (`INFO`, `MSG`, `HMSG`, `PING`,
//! `PONG`, `+OK`, `-ERR`).
//!
//! The decoder follows `nats-server`'s parser (`server/parser.go`, `server/client.go`): verbs
//! are case-insensitive, arguments are split on runs of spaces and tabs, a control line ends at
//! `\n` (an `\r` before it is dropped), and bad input is classified the way `nats-server`
//! treats it — see [`ProtocolError::action`]. It never panics, whatever the input (fuzzed by
//! `fuzz/fuzz_targets/codec.rs`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::subject;

/// What the server sends back for `PING`.
pub const PONG: &[u8] = b"PONG\r\n";
/// The server's keep-alive probe.
pub const PING: &[u8] = b"PING\r\n";
/// The acknowledgement sent in verbose mode.
pub const OK: &[u8] = b"+OK\r\n";

/// The longest size argument `nats-server` parses (`parseSize`: at most 9 digits).
const MAX_SIZE_DIGITS: usize = 9;

/// The options a client sends in `CONNECT`, with `nats-server`'s defaults for absent keys
/// (`verbose`, `pedantic` and `echo` default to true: `client.go` `defaultOpts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connect {
    /// Acknowledge every operation with `+OK`.
    pub verbose: bool,
    /// Stricter checks (publish subjects must be literal).
    pub pedantic: bool,
    /// The client wants TLS.
    pub tls_required: bool,
    /// Deliver the client's own publishes to its own subscriptions.
    pub echo: bool,
    /// The client understands `HPUB`/`HMSG`.
    pub headers: bool,
    /// The client wants a 503 status message when a request reaches nobody.
    pub no_responders: bool,
    /// Protocol level (0 or 1).
    pub protocol: i64,
    /// Client library language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Client library version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Connection name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Authentication token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User JWT (not supported by this broker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// Public nkey (not supported by this broker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// Signature of the nonce (not supported by this broker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Account designation, refused by `nats-server` as an authorization violation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Default for Connect {
    fn default() -> Self {
        Connect {
            verbose: true,
            pedantic: true,
            tls_required: false,
            echo: true,
            headers: false,
            no_responders: false,
            protocol: 0,
            lang: None,
            version: None,
            name: None,
            user: None,
            pass: None,
            auth_token: None,
            jwt: None,
            nkey: None,
            sig: None,
            account: None,
        }
    }
}

/// `CONNECT` as it arrives: every key optional, `null` meaning absent (as Go's decoder does).
#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
struct RawConnect {
    verbose: Option<bool>,
    pedantic: Option<bool>,
    tls_required: Option<bool>,
    echo: Option<bool>,
    headers: Option<bool>,
    no_responders: Option<bool>,
    protocol: Option<i64>,
    lang: Option<String>,
    version: Option<String>,
    name: Option<String>,
    user: Option<String>,
    pass: Option<String>,
    auth_token: Option<String>,
    jwt: Option<String>,
    nkey: Option<String>,
    sig: Option<String>,
    account: Option<String>,
}

impl Connect {
    /// Parses the JSON argument of `CONNECT`.
    pub fn parse(json: &[u8]) -> Result<Connect, serde_json::Error> {
        let raw: RawConnect = serde_json::from_slice(json)?;
        let d = Connect::default();
        Ok(Connect {
            verbose: raw.verbose.unwrap_or(d.verbose),
            pedantic: raw.pedantic.unwrap_or(d.pedantic),
            tls_required: raw.tls_required.unwrap_or(d.tls_required),
            echo: raw.echo.unwrap_or(d.echo),
            headers: raw.headers.unwrap_or(d.headers),
            no_responders: raw.no_responders.unwrap_or(d.no_responders),
            protocol: raw.protocol.unwrap_or(d.protocol),
            lang: raw.lang,
            version: raw.version,
            name: raw.name,
            user: raw.user,
            pass: raw.pass,
            auth_token: raw.auth_token,
            jwt: raw.jwt,
            nkey: raw.nkey,
            sig: raw.sig,
            account: raw.account.filter(|a| !a.is_empty()),
        })
    }
}

/// One operation sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`.
    Connect(Box<Connect>),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        /// The subject, possibly with wildcards (already validated).
        subject: Bytes,
        /// The queue group.
        queue: Option<Bytes>,
        /// The subscription id, echoed in every `MSG` as received.
        sid: Bytes,
    },
    /// `UNSUB <sid> [max]`.
    Unsub {
        /// The subscription id.
        sid: Bytes,
        /// Remove once this many messages have been delivered in total; `None` (also for a
        /// zero or unparsable max, as in `nats-server`) removes it now.
        max: Option<u64>,
    },
    /// `PUB <subject> [reply] <#bytes>` or, with headers, `HPUB <subject> [reply] <#hdr> <#total>`.
    Pub {
        /// The subject as published.
        subject: Bytes,
        /// The reply subject.
        reply: Option<Bytes>,
        /// The header block (`NATS/1.0\r\n...\r\n\r\n`), for `HPUB`.
        headers: Option<Bytes>,
        /// The payload.
        payload: Bytes,
    },
    /// `INFO {json}` from a client: ignored.
    Info,
    /// `+OK` from a client: ignored.
    Ok,
    /// `-ERR <text>` from a client: the connection is closed.
    Err(Bytes),
}

impl ClientOp {
    /// Appends the wire form of this operation to `out` (what a client would send).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            ClientOp::Connect(connect) => {
                out.put_slice(b"CONNECT ");
                // Serialising a struct of strings, bools and integers cannot fail.
                let json = serde_json::to_vec(connect).unwrap_or_else(|_| b"{}".to_vec());
                out.put_slice(&json);
                out.put_slice(b"\r\n");
            }
            ClientOp::Ping => out.put_slice(PING),
            ClientOp::Pong => out.put_slice(PONG),
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                out.put_slice(b"SUB ");
                out.put_slice(subject);
                if let Some(queue) = queue {
                    out.put_u8(b' ');
                    out.put_slice(queue);
                }
                out.put_u8(b' ');
                out.put_slice(sid);
                out.put_slice(b"\r\n");
            }
            ClientOp::Unsub { sid, max } => {
                out.put_slice(b"UNSUB ");
                out.put_slice(sid);
                if let Some(max) = max {
                    out.put_u8(b' ');
                    put_decimal(out, *max);
                }
                out.put_slice(b"\r\n");
            }
            ClientOp::Pub {
                subject,
                reply,
                headers,
                payload,
            } => {
                out.put_slice(if headers.is_some() { b"HPUB " } else { b"PUB " });
                out.put_slice(subject);
                out.put_u8(b' ');
                if let Some(reply) = reply {
                    out.put_slice(reply);
                    out.put_u8(b' ');
                }
                let header_len = headers.as_ref().map_or(0, |h| h.len());
                if headers.is_some() {
                    put_decimal(out, header_len as u64);
                    out.put_u8(b' ');
                }
                put_decimal(out, (header_len + payload.len()) as u64);
                out.put_slice(b"\r\n");
                if let Some(headers) = headers {
                    out.put_slice(headers);
                }
                out.put_slice(payload);
                out.put_slice(b"\r\n");
            }
            ClientOp::Info => out.put_slice(b"INFO {}\r\n"),
            ClientOp::Ok => out.put_slice(OK),
            ClientOp::Err(text) => {
                out.put_slice(b"-ERR ");
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
        }
    }
}

/// What the connection does about a [`ProtocolError`] (`nats-server`'s behaviour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Send `-ERR '<text>'`, then close the connection.
    ErrAndClose(&'static str),
    /// Send `-ERR '<text>'` and carry on.
    ErrAndStay(&'static str),
    /// Close the connection without a word.
    Close,
}

/// Bad input from a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An unknown verb, an empty line, or a payload not followed by `\r\n`.
    #[error("unknown protocol operation")]
    UnknownOperation,
    /// A message larger than `max_payload`.
    #[error("maximum payload violation: {size} bytes, the limit is {limit}")]
    MaxPayload {
        /// The declared size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A control line longer than `max_control_line`.
    #[error("maximum control line exceeded: {len} bytes, the limit is {limit}")]
    MaxControlLine {
        /// Bytes of the line so far.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// `SUB` to a malformed subject; the connection stays.
    #[error("invalid subject {subject:?}")]
    InvalidSubject {
        /// The subject as sent (lossily decoded).
        subject: String,
    },
    /// Authentication is required and the first operation is not `CONNECT`.
    #[error("authorization violation: the first operation must be CONNECT")]
    AuthorizationRequired,
    /// Malformed arguments (wrong count, bad sizes, bad `CONNECT` JSON, `HPUB` without
    /// headers negotiated, ...): `nats-server` closes without a word.
    #[error("protocol violation: {reason}")]
    Violation {
        /// What was wrong, with the offending line.
        reason: String,
    },
}

impl ProtocolError {
    /// What `nats-server` does about this error.
    pub fn action(&self) -> ErrorAction {
        match self {
            ProtocolError::UnknownOperation => {
                ErrorAction::ErrAndClose("Unknown Protocol Operation")
            }
            ProtocolError::MaxPayload { .. } => {
                ErrorAction::ErrAndClose("Maximum Payload Violation")
            }
            ProtocolError::MaxControlLine { .. } => {
                ErrorAction::ErrAndClose("maximum control line exceeded")
            }
            ProtocolError::InvalidSubject { .. } => ErrorAction::ErrAndStay("Invalid Subject"),
            ProtocolError::AuthorizationRequired => {
                ErrorAction::ErrAndClose("Authorization Violation")
            }
            ProtocolError::Violation { .. } => ErrorAction::Close,
        }
    }

    /// Whether the connection survives this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(self.action(), ErrorAction::ErrAndStay(_))
    }

    fn violation(what: &str, line: &[u8]) -> ProtocolError {
        let shown = &line[..line.len().min(128)];
        ProtocolError::Violation {
            reason: format!("{what}: {:?}", String::from_utf8_lossy(shown)),
        }
    }
}

/// Limits and per-connection settings the decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (headers + payload).
    pub max_payload: usize,
    /// Longest control line arguments.
    pub max_control_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: crate::config::DEFAULT_MAX_PAYLOAD,
            max_control_line: crate::config::DEFAULT_MAX_CONTROL_LINE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Connect,
    Ping,
    Pong,
    Pub,
    Hpub,
    Sub,
    Unsub,
    Info,
    PlusOk,
    MinusErr,
}

const VERBS: &[(&[u8], Verb)] = &[
    (b"CONNECT", Verb::Connect),
    (b"PING", Verb::Ping),
    (b"PONG", Verb::Pong),
    (b"PUB", Verb::Pub),
    (b"HPUB", Verb::Hpub),
    (b"SUB", Verb::Sub),
    (b"UNSUB", Verb::Unsub),
    (b"INFO", Verb::Info),
    (b"+OK", Verb::PlusOk),
    (b"-ERR", Verb::MinusErr),
];

/// Matches the verb at the start of `buf`: `Ok(None)` when `buf` is a proper prefix of a verb
/// (more bytes needed), `Err` when no verb can start this way.
fn match_verb(buf: &[u8]) -> Result<Option<(Verb, usize)>, ProtocolError> {
    let mut partial = false;
    for &(name, verb) in VERBS {
        let n = name.len().min(buf.len());
        if buf[..n].eq_ignore_ascii_case(&name[..n]) {
            if n == name.len() {
                return Ok(Some((verb, n)));
            }
            partial = true;
        }
    }
    if partial {
        Ok(None)
    } else {
        Err(ProtocolError::UnknownOperation)
    }
}

/// What reading one control line gave.
enum Line {
    /// A complete operation.
    Op(ClientOp),
    /// The state changed (a payload or the rest of a PING line follows): decode on.
    Continue,
    /// More bytes are needed.
    Incomplete,
}

/// A publish whose control line has been read, waiting for its payload.
#[derive(Debug)]
struct PendingPub {
    subject: Bytes,
    reply: Option<Bytes>,
    header_len: Option<usize>,
    total: usize,
}

#[derive(Debug)]
enum State {
    /// At the start of an operation.
    Op,
    /// Inside `PING`/`PONG`/`+OK`: everything up to `\n` is ignored (as `nats-server` does).
    Skip(Verb),
    /// Reading a payload.
    Payload(PendingPub),
    /// A fatal error happened; the connection is going away.
    Failed(ProtocolError),
}

/// Decodes client operations from a byte buffer, one at a time.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    headers: bool,
    require_connect: bool,
    state: State,
}

impl Decoder {
    /// A decoder enforcing `limits`. `HPUB` is refused until [`Decoder::set_headers`].
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            headers: false,
            require_connect: false,
            state: State::Op,
        }
    }

    /// Whether the client negotiated headers (`HPUB` allowed).
    pub fn set_headers(&mut self, headers: bool) {
        self.headers = headers;
    }

    /// Whether the next operation must be `CONNECT` (authentication pending).
    pub fn set_require_connect(&mut self, require: bool) {
        self.require_connect = require;
    }

    /// Whether a payload or control line is partly read.
    pub fn is_mid_operation(&self) -> bool {
        !matches!(self.state, State::Op)
    }

    fn fail(&mut self, error: ProtocolError) -> Result<Option<ClientOp>, ProtocolError> {
        if error.is_fatal() {
            self.state = State::Failed(error.clone());
        }
        Err(error)
    }

    /// Decodes the next operation from the front of `buf`, consuming its bytes.
    ///
    /// `Ok(None)`: more bytes are needed (everything usable has been consumed or is kept in
    /// `buf`). `Err`: see [`ProtocolError::action`]; after a fatal error every later call
    /// returns the same error, after a non-fatal one decoding carries on.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        loop {
            match std::mem::replace(&mut self.state, State::Op) {
                State::Failed(error) => {
                    self.state = State::Failed(error.clone());
                    return Err(error);
                }
                State::Skip(verb) => {
                    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                        buf.clear();
                        self.state = State::Skip(verb);
                        return Ok(None);
                    };
                    buf.advance(nl + 1);
                    return Ok(Some(match verb {
                        Verb::Ping => ClientOp::Ping,
                        Verb::Pong => ClientOp::Pong,
                        _ => ClientOp::Ok,
                    }));
                }
                State::Payload(pending) => {
                    let total = pending.total;
                    // Checked byte by byte as they arrive, like nats-server's MSG_END states.
                    if (buf.len() > total && buf[total] != b'\r')
                        || (buf.len() > total + 1 && buf[total + 1] != b'\n')
                    {
                        return self.fail(ProtocolError::UnknownOperation);
                    }
                    if buf.len() < total + 2 {
                        buf.reserve(total + 2 - buf.len());
                        self.state = State::Payload(pending);
                        return Ok(None);
                    }
                    let mut payload = buf.split_to(total).freeze();
                    buf.advance(2);
                    let headers = pending.header_len.map(|h| payload.split_to(h));
                    return Ok(Some(ClientOp::Pub {
                        subject: pending.subject,
                        reply: pending.reply,
                        headers,
                        payload,
                    }));
                }
                State::Op => match self.decode_control_line(buf) {
                    Ok(Line::Op(op)) => return Ok(Some(op)),
                    Ok(Line::Continue) => continue,
                    Ok(Line::Incomplete) => return Ok(None),
                    Err(error) => return self.fail(error),
                },
            }
        }
    }

    /// Reads one control line.
    fn decode_control_line(&mut self, buf: &mut BytesMut) -> Result<Line, ProtocolError> {
        if buf.is_empty() {
            return Ok(Line::Incomplete);
        }
        // nats-server checks this on the first byte, before knowing the verb (parser.go).
        if self.require_connect && !matches!(buf[0], b'C' | b'c') {
            return Err(ProtocolError::AuthorizationRequired);
        }
        let Some((verb, n)) = match_verb(buf)? else {
            return Ok(Line::Incomplete);
        };
        if matches!(verb, Verb::Ping | Verb::Pong | Verb::PlusOk) {
            buf.advance(n);
            self.state = State::Skip(verb);
            return Ok(Line::Continue);
        }
        if matches!(
            verb,
            Verb::Pub | Verb::Hpub | Verb::Sub | Verb::Unsub | Verb::MinusErr
        ) {
            match buf.get(n) {
                None => return Ok(Line::Incomplete),
                Some(b' ' | b'\t') => {}
                Some(_) => return Err(ProtocolError::UnknownOperation),
            }
        }
        let Some(nl) = buf[n..].iter().position(|&b| b == b'\n').map(|i| i + n) else {
            // A lower bound of the final argument length, so that a line fed in pieces fails
            // exactly when the whole line would.
            let rest = &buf[n..];
            let leading = rest
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            let trailing_cr = usize::from(rest.len() > leading && rest.ends_with(b"\r"));
            let len = rest.len() - leading - trailing_cr;
            if len > self.limits.max_control_line {
                return Err(ProtocolError::MaxControlLine {
                    len,
                    limit: self.limits.max_control_line,
                });
            }
            return Ok(Line::Incomplete);
        };
        let line = buf.split_to(nl + 1).freeze();
        let mut end = nl;
        if end > n && line[end - 1] == b'\r' {
            end -= 1;
        }
        let start = n + line[n..end]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let args = line.slice(start..end);
        if args.len() > self.limits.max_control_line {
            return Err(ProtocolError::MaxControlLine {
                len: args.len(),
                limit: self.limits.max_control_line,
            });
        }
        match verb {
            Verb::Connect => {
                let connect = Connect::parse(&args)
                    .map_err(|e| ProtocolError::violation(&format!("bad CONNECT ({e})"), &args))?;
                Ok(Line::Op(ClientOp::Connect(Box::new(connect))))
            }
            Verb::Info => {
                serde_json::from_slice::<serde::de::IgnoredAny>(&args)
                    .map_err(|_| ProtocolError::violation("bad INFO", &args))?;
                Ok(Line::Op(ClientOp::Info))
            }
            Verb::MinusErr => Ok(Line::Op(ClientOp::Err(args))),
            Verb::Sub => self.parse_sub(&args).map(Line::Op),
            Verb::Unsub => parse_unsub(&args).map(Line::Op),
            Verb::Pub | Verb::Hpub => {
                self.parse_pub(&args, verb == Verb::Hpub)?;
                Ok(Line::Continue)
            }
            Verb::Ping | Verb::Pong | Verb::PlusOk => Ok(Line::Continue),
        }
    }

    fn parse_sub(&self, args: &Bytes) -> Result<ClientOp, ProtocolError> {
        // parseSub splits on whitespace including \r and \n (splitArg).
        let mut parts = [&b""[..]; 4];
        let (subject, queue, sid) = match split_args(args, true, &mut parts) {
            2 => (parts[0], None, parts[1]),
            3 => (parts[0], Some(parts[1]), parts[2]),
            _ => return Err(ProtocolError::violation("SUB needs 2 or 3 arguments", args)),
        };
        if !subject::is_valid_subscription(subject) {
            return Err(ProtocolError::InvalidSubject {
                subject: String::from_utf8_lossy(subject).into_owned(),
            });
        }
        Ok(ClientOp::Sub {
            subject: args.slice_ref(subject),
            queue: queue.map(|q| args.slice_ref(q)),
            sid: args.slice_ref(sid),
        })
    }

    fn parse_pub(&mut self, args: &Bytes, with_headers: bool) -> Result<(), ProtocolError> {
        if with_headers && !self.headers {
            return Err(ProtocolError::violation(
                "HPUB without headers negotiated in CONNECT",
                args,
            ));
        }
        let mut parts = [&b""[..]; 5];
        let count = split_args(args, false, &mut parts);
        let (subject, reply, sizes) = match (with_headers, count) {
            (false, 2) => (parts[0], None, &parts[1..2]),
            (false, 3) => (parts[0], Some(parts[1]), &parts[2..3]),
            (true, 3) => (parts[0], None, &parts[1..3]),
            (true, 4) => (parts[0], Some(parts[1]), &parts[2..4]),
            (false, _) => return Err(ProtocolError::violation("PUB needs 2 or 3 arguments", args)),
            (true, _) => {
                return Err(ProtocolError::violation(
                    "HPUB needs 3 or 4 arguments",
                    args,
                ));
            }
        };
        let (header_len, total) = if with_headers {
            let header_len = parse_size(sizes[0])
                .ok_or_else(|| ProtocolError::violation("bad header size", args))?;
            let total = parse_size(sizes[1])
                .ok_or_else(|| ProtocolError::violation("bad total size", args))?;
            if header_len > total {
                return Err(ProtocolError::violation(
                    "header size larger than total size",
                    args,
                ));
            }
            (Some(header_len), total)
        } else {
            let total =
                parse_size(sizes[0]).ok_or_else(|| ProtocolError::violation("bad size", args))?;
            (None, total)
        };
        if total > self.limits.max_payload {
            return Err(ProtocolError::MaxPayload {
                size: total,
                limit: self.limits.max_payload,
            });
        }
        self.state = State::Payload(PendingPub {
            subject: args.slice_ref(subject),
            reply: reply.map(|r| args.slice_ref(r)),
            header_len,
            total,
        });
        Ok(())
    }

    /// Decodes every complete operation in `buf`, stopping after the first fatal error.
    pub fn decode_all(&mut self, buf: &mut BytesMut) -> Vec<Result<ClientOp, ProtocolError>> {
        let mut ops = Vec::new();
        loop {
            match self.decode(buf) {
                Ok(Some(op)) => ops.push(Ok(op)),
                Ok(None) => return ops,
                Err(error) => {
                    let fatal = error.is_fatal();
                    ops.push(Err(error));
                    if fatal {
                        return ops;
                    }
                }
            }
        }
    }
}

fn parse_unsub(args: &Bytes) -> Result<ClientOp, ProtocolError> {
    let mut parts = [&b""[..]; 3];
    let (sid, max) = match split_args(args, true, &mut parts) {
        1 => (parts[0], None),
        // processUnsub: an unparsable or zero max unsubscribes now.
        2 => (parts[0], parse_size(parts[1]).filter(|&m| m > 0)),
        _ => {
            return Err(ProtocolError::violation(
                "UNSUB needs 1 or 2 arguments",
                args,
            ));
        }
    };
    Ok(ClientOp::Unsub {
        sid: args.slice_ref(sid),
        max: max.map(|m| m as u64),
    })
}

/// Splits `args` on runs of spaces and tabs (and `\r`/`\n` when `crlf`); returns how many
/// parts there are, filling `out` with the first ones (a count above `out.len()` means too
/// many).
fn split_args<'a>(args: &'a [u8], crlf: bool, out: &mut [&'a [u8]]) -> usize {
    let is_sep = |b: u8| b == b' ' || b == b'\t' || (crlf && (b == b'\r' || b == b'\n'));
    let mut count = 0;
    let mut start = None;
    for (i, &b) in args.iter().enumerate() {
        match (is_sep(b), start) {
            (true, Some(s)) => {
                if count < out.len() {
                    out[count] = &args[s..i];
                }
                count += 1;
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        if count < out.len() {
            out[count] = &args[s..];
        }
        count += 1;
    }
    count
}

/// `nats-server`'s `parseSize`: 1 to 9 ASCII digits, nothing else.
fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > MAX_SIZE_DIGITS {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
    })
}

/// Appends `n` in decimal.
pub fn put_decimal(out: &mut impl BufMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// The `INFO` a server sends first on every connection. Fields follow `nats-server`'s
/// `Info`. `async-nats` takes every field as optional, but checks each publish against
/// `max_payload` (absent: 0, so nothing but empty messages could be sent): it is always set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    /// Unique id of this server instance.
    pub server_id: String,
    /// Configured name.
    pub server_name: String,
    /// Version (semver).
    pub version: String,
    /// Protocol level: 1.
    pub proto: u32,
    /// Listening host.
    pub host: String,
    /// Listening port.
    pub port: u16,
    /// Headers supported: always true.
    pub headers: bool,
    /// Largest message accepted.
    pub max_payload: usize,
    /// This connection's id.
    pub client_id: u64,
    /// This connection's peer address.
    pub client_ip: String,
    /// Whether `CONNECT` must authenticate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    /// Whether the client must start TLS after this INFO.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    /// Whether the client must present a certificate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_verify: bool,
}

/// Appends `INFO {json}\r\n`.
pub fn encode_info(info: &ServerInfo, out: &mut BytesMut) {
    out.put_slice(b"INFO ");
    // Serialising a struct of strings, bools and integers cannot fail.
    let json = serde_json::to_vec(info).unwrap_or_else(|_| b"{}".to_vec());
    out.put_slice(&json);
    out.put_slice(b"\r\n");
}

/// Appends `-ERR '<text>'\r\n`.
pub fn encode_err(text: &str, out: &mut BytesMut) {
    out.put_slice(b"-ERR '");
    out.put_slice(text.as_bytes());
    out.put_slice(b"'\r\n");
}

/// Appends a whole `MSG <subject> <sid> [reply] <#bytes>\r\n<payload>\r\n`.
pub fn encode_msg(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let mut framing = Framing::default();
    framing.prepare(subject, reply, None, payload.len());
    framing.put_line(sid, out);
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

/// Appends a whole `HMSG <subject> <sid> [reply] <#hdr> <#total>\r\n<headers><payload>\r\n`.
pub fn encode_hmsg(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
    out: &mut BytesMut,
) {
    let mut framing = Framing::default();
    framing.prepare(
        subject,
        reply,
        Some(headers.len()),
        headers.len() + payload.len(),
    );
    framing.put_line(sid, out);
    out.put_slice(headers);
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

/// The control line of a `MSG`/`HMSG` without its sid, prepared once per published message
/// and completed per subscriber.
#[derive(Debug, Default, Clone)]
pub struct Framing {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Framing {
    /// Prepares the line for a message on `subject` with `total` bytes, `header_len` of them
    /// headers (`HMSG`) or none (`MSG`).
    pub fn prepare(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        total: usize,
    ) {
        self.head.clear();
        self.tail.clear();
        self.head.extend_from_slice(if header_len.is_some() {
            b"HMSG "
        } else {
            b"MSG "
        });
        self.head.extend_from_slice(subject);
        self.head.push(b' ');
        self.tail.push(b' ');
        if let Some(reply) = reply {
            self.tail.extend_from_slice(reply);
            self.tail.push(b' ');
        }
        if let Some(header_len) = header_len {
            put_decimal(&mut self.tail, header_len as u64);
            self.tail.push(b' ');
        }
        put_decimal(&mut self.tail, total as u64);
        self.tail.extend_from_slice(b"\r\n");
    }

    /// Length of the line for a sid of `sid_len` bytes.
    pub fn line_len(&self, sid_len: usize) -> usize {
        self.head.len() + sid_len + self.tail.len()
    }

    /// Appends the line for the subscription `sid`.
    pub fn put_line(&self, sid: &[u8], out: &mut BytesMut) {
        out.reserve(self.line_len(sid.len()));
        out.put_slice(&self.head);
        out.put_slice(sid);
        out.put_slice(&self.tail);
    }
}

/// Decodes `data` whole and again in pieces cut at points derived from the data itself, and
/// reports any difference — the oracle of the fuzz target and of the corpus test. It must
/// never panic, whatever `data` is.
pub fn check_split_consistency(data: &[u8]) -> Result<(), String> {
    let whole = decode_in_chunks(data, &[data.len()]);
    let seed = data
        .iter()
        .fold(7usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
    let sizes = [1, 2, 3, 5, 8, 13, (seed % 97) + 1];
    for size in sizes {
        let pieces: Vec<usize> = (0..=data.len() / size).map(|_| size).collect();
        let split = decode_in_chunks(data, &pieces);
        if split != whole {
            return Err(format!(
                "decoding in pieces of {size} gave {split:?}, decoding whole gave {whole:?}"
            ));
        }
    }
    Ok(())
}

/// Outcome of decoding: the ops, and the action of each error (error details such as the
/// length seen so far legitimately depend on how the input was cut).
type Outcome = Vec<Result<ClientOp, ErrorAction>>;

fn decode_in_chunks(data: &[u8], pieces: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(Limits {
        max_payload: 1024,
        max_control_line: 256,
    });
    decoder.set_headers(true);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut offset = 0;
    for &piece in pieces {
        let end = (offset + piece).min(data.len());
        buf.extend_from_slice(&data[offset..end]);
        offset = end;
        for result in decoder.decode_all(&mut buf) {
            let fatal = result.as_ref().is_err_and(ProtocolError::is_fatal);
            out.push(result.map_err(|e| e.action()));
            if fatal {
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
