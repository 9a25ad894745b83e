//! A raw NATS client over a blocking socket: sends bytes, reads server frames with their exact
//! bytes. Independent of the broker's own codec on purpose.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long any single expectation waits.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// One operation from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Info(serde_json::Value),
    Msg {
        subject: String,
        sid: String,
        reply: Option<String>,
        payload: Vec<u8>,
    },
    Hmsg {
        subject: String,
        sid: String,
        reply: Option<String>,
        headers: Vec<u8>,
        payload: Vec<u8>,
    },
    Ping,
    Pong,
    Ok,
    Err(String),
    /// The server closed the connection (EOF or reset).
    Closed,
}

impl Frame {
    pub fn sid(&self) -> Option<&str> {
        match self {
            Frame::Msg { sid, .. } | Frame::Hmsg { sid, .. } => Some(sid),
            _ => None,
        }
    }
}

pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
    /// The INFO the server sent first.
    pub info: serde_json::Value,
}

impl Raw {
    /// Connects and reads the server's INFO; sends nothing.
    pub fn open(addr: &str) -> Result<Raw> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
            eof: false,
            info: serde_json::Value::Null,
        };
        match raw.next_raw()? {
            (Frame::Info(info), _) => raw.info = info,
            (other, _) => bail!("expected INFO first, got {other:?}"),
        }
        Ok(raw)
    }

    /// Connects, sends `CONNECT <json>` and a PING, and waits for the PONG (skipping +OK).
    pub fn handshake(addr: &str, connect_json: &str) -> Result<Raw> {
        let mut raw = Raw::open(addr)?;
        raw.send(format!("CONNECT {connect_json}\r\nPING\r\n").as_bytes())?;
        loop {
            match raw.next()? {
                Frame::Pong => return Ok(raw),
                Frame::Ok => continue,
                other => bail!("expected PONG after CONNECT, got {other:?}"),
            }
        }
    }

    /// A quiet client: not verbose, headers and no-responders on (like async-nats).
    pub fn client(addr: &str) -> Result<Raw> {
        Raw::handshake(
            addr,
            r#"{"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}"#,
        )
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).context("send")?;
        Ok(())
    }

    /// Sends a PING and returns every frame before the PONG (answering server PINGs).
    pub fn until_pong(&mut self) -> Result<Vec<Frame>> {
        self.send(b"PING\r\n")?;
        let mut frames = Vec::new();
        loop {
            match self.next()? {
                Frame::Pong => return Ok(frames),
                Frame::Closed => bail!("closed before PONG; got {frames:?}"),
                frame => frames.push(frame),
            }
        }
    }

    /// The next frame that is not a server PING (those are answered).
    pub fn next(&mut self) -> Result<Frame> {
        Ok(self.next_with_bytes()?.0)
    }

    /// Like [`Raw::next`], with the frame's exact bytes.
    pub fn next_with_bytes(&mut self) -> Result<(Frame, Vec<u8>)> {
        loop {
            let (frame, bytes) = self.next_raw()?;
            if frame == Frame::Ping {
                self.send(b"PONG\r\n")?;
                continue;
            }
            return Ok((frame, bytes));
        }
    }

    /// Asserts the exact bytes of the next frame (server PINGs skipped).
    pub fn expect(&mut self, expected: &[u8]) -> Result<()> {
        let (frame, bytes) = self.next_with_bytes()?;
        if bytes != expected {
            bail!(
                "expected {:?}, got {:?} ({frame:?})",
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    }

    /// Expects `-ERR '<text>'` and then the connection closing.
    pub fn expect_err_and_close(&mut self, text: &str) -> Result<()> {
        self.expect(format!("-ERR '{text}'\r\n").as_bytes())?;
        self.expect_closed()
    }

    /// Expects the server to close the connection, with nothing but PINGs before.
    pub fn expect_closed(&mut self) -> Result<()> {
        match self.next()? {
            Frame::Closed => Ok(()),
            other => bail!("expected the connection to close, got {other:?}"),
        }
    }

    /// The next frame, whatever it is.
    pub fn next_raw(&mut self) -> Result<(Frame, Vec<u8>)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(parsed) = parse(&self.buf)? {
                let (frame, len) = parsed;
                let bytes: Vec<u8> = self.buf.drain(..len).collect();
                return Ok((frame, bytes));
            }
            if self.eof {
                if !self.buf.is_empty() {
                    bail!(
                        "connection closed inside a frame: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                }
                return Ok((Frame::Closed, Vec::new()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "timed out after {PATIENCE:?} waiting for a frame; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    self.eof = true
                }
                Err(e) => return Err(e).context("read"),
            }
        }
    }

    /// Reads and discards until the server closes; returns how many bytes came.
    pub fn drain_until_closed(&mut self, patience: Duration) -> Result<usize> {
        let deadline = Instant::now() + patience;
        let mut total = std::mem::take(&mut self.buf).len();
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "the server did not close the connection within {patience:?} ({total} bytes read)"
                );
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    return Ok(total);
                }
                Err(e) => return Err(e).context("read"),
            }
        }
    }
}

/// Parses one frame from the front of `buf`: `(frame, bytes used)`, or `None` if incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>> {
    let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..nl]).context("control line is not UTF-8")?;
    let after = nl + 2;
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let frame = match verb {
        "PING" => Frame::Ping,
        "PONG" => Frame::Pong,
        "+OK" => Frame::Ok,
        "-ERR" => Frame::Err(rest.to_string()),
        "INFO" => Frame::Info(serde_json::from_str(rest).context("INFO json")?),
        "MSG" | "HMSG" => {
            let args: Vec<&str> = rest.split(' ').collect();
            let with_headers = verb == "HMSG";
            let n = if with_headers { 4 } else { 3 };
            if args.len() != n && args.len() != n + 1 {
                bail!("bad {verb} line {line:?}");
            }
            let reply = (args.len() == n + 1).then(|| args[2].to_string());
            let total: usize = args[args.len() - 1].parse()?;
            let header_len: usize = if with_headers {
                args[args.len() - 2].parse()?
            } else {
                0
            };
            if buf.len() < after + total + 2 {
                return Ok(None);
            }
            if &buf[after + total..after + total + 2] != b"\r\n" {
                bail!("payload of {line:?} not followed by CRLF");
            }
            let body = &buf[after..after + total];
            let frame = if with_headers {
                Frame::Hmsg {
                    subject: args[0].to_string(),
                    sid: args[1].to_string(),
                    reply,
                    headers: body[..header_len].to_vec(),
                    payload: body[header_len..].to_vec(),
                }
            } else {
                Frame::Msg {
                    subject: args[0].to_string(),
                    sid: args[1].to_string(),
                    reply,
                    payload: body.to_vec(),
                }
            };
            return Ok(Some((frame, after + total + 2)));
        }
        _ => bail!("unknown server operation {line:?}"),
    };
    Ok(Some((frame, after)))
}
