//! Fan-out benchmark for the embedded broker and `nats-server`, with raw protocol clients (so
//! the client library is not what is measured).
//!
//! ```sh
//! cargo run --release -p muster-broker --example fanout -- --broker embedded
//! cargo run --release -p muster-broker --example fanout -- --broker nats-server
//! cargo run --release -p muster-broker --example fanout -- --broker nats://127.0.0.1:4222
//! ```
//!
//! 1. Fan-out: one publisher, `--subs` subscriptions to one subject spread over `--conns`
//!    connections, `--msgs` messages of `--size` bytes: delivered messages per second.
//! 2. Requests to `--nodes` responders (virtual nodes spread over `--conns` connections, each
//!    with its own literal subject and the shared broadcast subject), every reply collected
//!    by one wildcard inbox subscription: one broadcast request, then one request per node.
#![allow(clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

struct Options {
    broker: String,
    subs: usize,
    conns: usize,
    msgs: usize,
    size: usize,
    nodes: usize,
    rounds: usize,
}

fn options() -> Result<Options> {
    let mut o = Options {
        broker: "embedded".into(),
        subs: 1000,
        conns: 10,
        msgs: 2000,
        size: 128,
        nodes: 10_000,
        rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--broker" => o.broker = value()?,
            "--subs" => o.subs = value()?.parse()?,
            "--conns" => o.conns = value()?.parse()?,
            "--msgs" => o.msgs = value()?.parse()?,
            "--size" => o.size = value()?.parse()?,
            "--nodes" => o.nodes = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            other => bail!(
                "unknown flag {other}; use --broker embedded|nats-server|URL --subs N --conns N \
                 --msgs N --size BYTES --nodes N --rounds N"
            ),
        }
    }
    Ok(o)
}

/// The broker under test, kept alive for the run.
enum Target {
    Embedded(
        Option<std::thread::JoinHandle<()>>,
        Option<tokio::sync::oneshot::Sender<()>>,
    ),
    Process(Child),
    External,
}

impl Drop for Target {
    fn drop(&mut self) {
        match self {
            Target::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Target::Embedded(thread, stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            Target::External => {}
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start(broker: &str) -> Result<(String, Target)> {
    match broker {
        "embedded" => {
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std_listener.set_nonblocking(true)?;
            let addr = std_listener.local_addr()?.to_string();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            // Its own runtime, as `muster broker` would have.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let listener = {
                let _guard = runtime.enter();
                tokio::net::TcpListener::from_std(std_listener)?
            };
            let thread = std::thread::spawn(move || {
                let config = muster_broker::BrokerConfig::default();
                let served = runtime.block_on(muster_broker::run(listener, config, async {
                    let _ = stopped.await;
                }));
                if let Err(e) = served {
                    eprintln!("broker failed: {e}");
                }
            });
            Ok((addr, Target::Embedded(Some(thread), Some(stop))))
        }
        "nats-server" => {
            let port = free_port()?;
            let binary = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("nats-server");
            let child = Command::new(binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {binary}"))?;
            let addr = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(&addr).is_err() {
                if Instant::now() > deadline {
                    bail!("nats-server did not start");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((addr, Target::Process(child)))
        }
        url => Ok((
            url.trim_start_matches("nats://").to_string(),
            Target::External,
        )),
    }
}

/// A server operation, as much as the benchmark needs.
enum Frame {
    Msg { reply: Option<Vec<u8>> },
    Ping,
    Pong,
    Other,
}

/// Parses server frames from a buffer.
fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>> {
    let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[..nl];
    if line.starts_with(b"MSG ") {
        let args: Vec<&[u8]> = line[4..].split(|&b| b == b' ').collect();
        let len: usize = std::str::from_utf8(args[args.len() - 1])?.parse()?;
        if buf.len() < nl + 2 + len + 2 {
            return Ok(None);
        }
        let reply = (args.len() == 4).then(|| args[2].to_vec());
        buf.advance(nl + 2 + len + 2);
        return Ok(Some(Frame::Msg { reply }));
    }
    let frame = match line {
        b"PING" => Frame::Ping,
        b"PONG" => Frame::Pong,
        _ if line.starts_with(b"-ERR") => bail!("server error: {}", String::from_utf8_lossy(line)),
        _ => Frame::Other,
    };
    buf.advance(nl + 2);
    Ok(Some(frame))
}

async fn connect(addr: &str) -> Result<(OwnedReadHalf, OwnedWriteHalf, BytesMut)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n")
        .await?;
    let mut buf = BytesMut::with_capacity(256 * 1024);
    // INFO, then nothing else until we ask.
    while next_frame(&mut buf)?.is_none() {
        if rd.read_buf(&mut buf).await? == 0 {
            bail!("closed during the handshake");
        }
    }
    Ok((rd, wr, buf))
}

/// Sends `ops` then PING, and reads until the PONG.
async fn round_trip(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    ops: &[u8],
) -> Result<()> {
    wr.write_all(ops).await?;
    wr.write_all(b"PING\r\n").await?;
    loop {
        while let Some(frame) = next_frame(buf)? {
            match frame {
                Frame::Pong => return Ok(()),
                Frame::Ping => wr.write_all(b"PONG\r\n").await?,
                _ => {}
            }
        }
        if rd.read_buf(buf).await? == 0 {
            bail!("closed");
        }
    }
}

/// Counts deliveries; answers requests with `reply_payload` when set.
async fn consume(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    mut buf: BytesMut,
    counter: Arc<AtomicU64>,
    done: Arc<Notify>,
    reply_payload: Option<&'static [u8]>,
) -> Result<()> {
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let mut n = 0;
        while let Some(frame) = next_frame(&mut buf)? {
            match frame {
                Frame::Msg { reply } => {
                    n += 1;
                    if let (Some(reply), Some(payload)) = (reply, reply_payload) {
                        out.extend_from_slice(b"PUB ");
                        out.extend_from_slice(&reply);
                        out.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
                        out.extend_from_slice(payload);
                        out.extend_from_slice(b"\r\n");
                    }
                }
                Frame::Ping => out.extend_from_slice(b"PONG\r\n"),
                _ => {}
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
            out.clear();
        }
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
            done.notify_one();
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(256 * 1024);
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn wait_for(
    counter: &AtomicU64,
    done: &Notify,
    target: u64,
    patience: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    while counter.load(Ordering::Relaxed) < target {
        if tokio::time::timeout_at(deadline, done.notified())
            .await
            .is_err()
        {
            bail!(
                "timed out: {} of {target} messages",
                counter.load(Ordering::Relaxed)
            );
        }
    }
    Ok(())
}

async fn fanout(addr: &str, o: &Options) -> Result<f64> {
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let per_conn = o.subs / o.conns;
    let subs = per_conn * o.conns;
    let mut consumers = Vec::new();
    for _ in 0..o.conns {
        let (mut rd, mut wr, mut buf) = connect(addr).await?;
        let mut ops = Vec::new();
        for sid in 1..=per_conn {
            ops.extend_from_slice(format!("SUB bench.fanout {sid}\r\n").as_bytes());
        }
        round_trip(&mut rd, &mut wr, &mut buf, &ops).await?;
        consumers.push(tokio::spawn(consume(
            rd,
            wr,
            buf,
            Arc::clone(&counter),
            Arc::clone(&done),
            None,
        )));
    }
    let (mut prd, mut pwr, mut pbuf) = connect(addr).await?;
    let payload = vec![b'x'; o.size];
    let mut batch = Vec::new();
    for _ in 0..o.msgs {
        batch.extend_from_slice(format!("PUB bench.fanout {}\r\n", o.size).as_bytes());
        batch.extend_from_slice(&payload);
        batch.extend_from_slice(b"\r\n");
    }
    let expected = (o.msgs * subs) as u64;
    let started = Instant::now();
    round_trip(&mut prd, &mut pwr, &mut pbuf, &batch).await?;
    wait_for(&counter, &done, expected, Duration::from_secs(120)).await?;
    let elapsed = started.elapsed();
    // Close this round's subscribers so the next round has the same work.
    for consumer in consumers {
        consumer.abort();
    }
    Ok(expected as f64 / elapsed.as_secs_f64())
}

struct Fleet {
    counter: Arc<AtomicU64>,
    done: Arc<Notify>,
    requester: (OwnedReadHalf, OwnedWriteHalf, BytesMut),
}

async fn fleet(addr: &str, o: &Options) -> Result<Fleet> {
    let per_conn = o.nodes.div_ceil(o.conns);
    let mut node = 0;
    for _ in 0..o.conns {
        let (mut rd, mut wr, mut buf) = connect(addr).await?;
        let mut ops = Vec::new();
        let mut sid = 0;
        while node < o.nodes && sid < 2 * per_conn {
            sid += 1;
            ops.extend_from_slice(format!("SUB bench.node.n{node} {sid}\r\n").as_bytes());
            sid += 1;
            ops.extend_from_slice(format!("SUB bench.broadcast {sid}\r\n").as_bytes());
            node += 1;
        }
        round_trip(&mut rd, &mut wr, &mut buf, &ops).await?;
        let ignored = Arc::new(AtomicU64::new(0));
        tokio::spawn(consume(
            rd,
            wr,
            buf,
            ignored,
            Arc::new(Notify::new()),
            Some(b"pong"),
        ));
    }
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (mut rd, mut wr, mut buf) = connect(addr).await?;
    round_trip(&mut rd, &mut wr, &mut buf, b"SUB _INBOX.bench.> 1\r\n").await?;
    tokio::spawn(consume(
        rd,
        wr,
        buf,
        Arc::clone(&counter),
        Arc::clone(&done),
        None,
    ));
    let requester = connect(addr).await?;
    Ok(Fleet {
        counter,
        done,
        requester,
    })
}

async fn request_round(f: &mut Fleet, o: &Options, round: usize, direct: bool) -> Result<Duration> {
    let before = f.counter.load(Ordering::Relaxed);
    let mut ops = Vec::new();
    if direct {
        for n in 0..o.nodes {
            ops.extend_from_slice(
                format!("PUB bench.node.n{n} _INBOX.bench.{round} 4\r\nping\r\n").as_bytes(),
            );
        }
    } else {
        ops.extend_from_slice(
            format!("PUB bench.broadcast _INBOX.bench.{round} 4\r\nping\r\n").as_bytes(),
        );
    }
    let (_, wr, _) = &mut f.requester;
    let started = Instant::now();
    wr.write_all(&ops).await?;
    wait_for(
        &f.counter,
        &f.done,
        before + o.nodes as u64,
        Duration::from_secs(60),
    )
    .await?;
    Ok(started.elapsed())
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    )
}

fn main() -> Result<()> {
    let o = options()?;
    let (addr, target) = start(&o.broker)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("broker: {} ({addr})", o.broker);
        let mut rates = Vec::new();
        for _ in 0..o.rounds.max(1) {
            rates.push(fanout(&addr, &o).await?);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "fan-out: 1 publisher -> {} subscriptions on {} connections, {} msgs of {} B: \
             median {:.0} delivered msgs/s (best {:.0})",
            o.subs / o.conns * o.conns,
            o.conns,
            o.msgs,
            o.size,
            rates[rates.len() / 2],
            rates[rates.len() - 1]
        );

        let mut f = fleet(&addr, &o).await?;
        let mut broadcast = Vec::new();
        let mut direct = Vec::new();
        for round in 0..o.rounds.max(1) {
            broadcast.push(request_round(&mut f, &o, 2 * round, false).await?);
            direct.push(request_round(&mut f, &o, 2 * round + 1, true).await?);
        }
        println!(
            "broadcast request to {} nodes ({} conns), all replies into one wildcard inbox: {}",
            o.nodes,
            o.conns,
            summary(broadcast)
        );
        println!(
            "{} direct requests (one per node's literal subject), all replies collected: {}",
            o.nodes,
            summary(direct)
        );
        anyhow::Ok(())
    })?;
    drop(runtime);
    drop(target);
    Ok(())
}
