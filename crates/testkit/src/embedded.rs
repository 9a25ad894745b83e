//! The embedded broker (`muster-broker`) in-process, on its own thread and tokio runtime so
//! that sync tests can use it, plus [`TestBroker`]: one interface over it and a real
//! `nats-server`, so a suite can run the same assertions against both ([`both`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use muster_broker::{Auth, Broker, BrokerConfig, Stats};
use tokio::sync::oneshot;

use crate::NatsServerProcess;

/// How long [`EmbeddedBroker::restart`] keeps trying to bind the old port.
const REBIND_DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<std::io::Result<()>>,
}

/// A `muster-broker` on 127.0.0.1 with an ephemeral port, served from a background thread;
/// shut down on drop.
pub struct EmbeddedBroker {
    broker: Broker,
    port: u16,
    running: Option<Running>,
}

impl EmbeddedBroker {
    /// Starts one with the default configuration.
    pub fn start() -> Result<Self> {
        Self::with_config(BrokerConfig::default())
    }

    /// Starts one with `config`.
    pub fn with_config(config: BrokerConfig) -> Result<Self> {
        let mut broker = EmbeddedBroker {
            broker: Broker::new(config),
            port: 0,
            running: None,
        };
        broker.launch(0)?;
        Ok(broker)
    }

    fn launch(&mut self, port: u16) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("embedded-broker")
            .enable_all()
            .build()
            .context("cannot build the broker's runtime")?;
        let listener = {
            let _guard = runtime.enter();
            bind(port)?
        };
        self.port = listener.local_addr()?.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let broker = self.broker.clone();
        let thread = std::thread::Builder::new()
            .name(format!("embedded-broker-{}", self.port))
            .spawn(move || {
                let result = runtime.block_on(broker.run(listener, async {
                    let _ = stopped.await;
                }));
                runtime.shutdown_timeout(Duration::from_secs(1));
                result
            })
            .context("cannot spawn the broker's thread")?;
        self.running = Some(Running { stop, thread });
        Ok(())
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker itself (its counters survive restarts).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// A snapshot of its counters.
    pub fn stats(&self) -> Stats {
        self.broker.stats()
    }

    /// Shuts it down gracefully (clients are disconnected) and waits until it has stopped.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }

    /// Starts it again on the same port (retrying while the port is still taken).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let deadline = Instant::now() + REBIND_DEADLINE;
        loop {
            match self.launch(self.port) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.context(format!("cannot rebind port {}", self.port))),
            }
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds 127.0.0.1:`port` with `SO_REUSEADDR` (so a restart can take its old port back while
/// old connections linger in TIME_WAIT). Must run inside a tokio runtime.
fn bind(port: u16) -> Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .with_context(|| format!("cannot bind 127.0.0.1:{port}"))?;
    Ok(socket.listen(1024)?)
}

/// A broker a test can run against: the embedded one or a real `nats-server`.
pub trait TestBroker: Send {
    /// `"embedded"` or `"nats-server"`, for messages.
    fn name(&self) -> &'static str;
    /// `nats://127.0.0.1:PORT`.
    fn url(&self) -> String;
    /// Stops it; clients see their connection drop.
    fn stop(&mut self);
    /// Starts it again on the same port.
    fn restart(&mut self) -> Result<()>;
    /// Its counters, where it has them in-process (the embedded broker).
    fn stats(&self) -> Option<Stats> {
        None
    }
    /// `host:port`, for raw sockets.
    fn addr(&self) -> String {
        self.url().trim_start_matches("nats://").to_string()
    }
}

impl TestBroker for EmbeddedBroker {
    fn name(&self) -> &'static str {
        "embedded"
    }
    fn url(&self) -> String {
        EmbeddedBroker::url(self)
    }
    fn stop(&mut self) {
        EmbeddedBroker::stop(self)
    }
    fn restart(&mut self) -> Result<()> {
        EmbeddedBroker::restart(self)
    }
    fn stats(&self) -> Option<Stats> {
        Some(EmbeddedBroker::stats(self))
    }
}

impl TestBroker for NatsServerProcess {
    fn name(&self) -> &'static str {
        "nats-server"
    }
    fn url(&self) -> String {
        NatsServerProcess::url(self)
    }
    fn stop(&mut self) {
        NatsServerProcess::stop(self)
    }
    fn restart(&mut self) -> Result<()> {
        NatsServerProcess::restart(self)
    }
}

/// The embedded broker with the default configuration, plus a real `nats-server` when one is
/// installed. Without `nats-server` this says so loudly and returns only the embedded broker —
/// or fails when `CI` is set.
pub fn both() -> Result<Vec<Box<dyn TestBroker>>> {
    let mut brokers: Vec<Box<dyn TestBroker>> = vec![Box::new(EmbeddedBroker::start()?)];
    if let Some(server) = NatsServerProcess::start()? {
        brokers.push(Box::new(server));
    }
    Ok(brokers)
}

/// Like [`both`], with `config` for the embedded broker and the same settings written to a
/// configuration file for `nats-server` (limits, ping interval, auth).
pub fn both_with(config: &BrokerConfig) -> Result<Vec<Box<dyn TestBroker>>> {
    let mut brokers: Vec<Box<dyn TestBroker>> =
        vec![Box::new(EmbeddedBroker::with_config(config.clone())?)];
    if let Some(server) = configured_nats_server(config)? {
        brokers.push(Box::new(server));
    }
    Ok(brokers)
}

/// A real `nats-server` started with a configuration file equivalent to a [`BrokerConfig`];
/// `Ok(None)` (said loudly) when it is not installed, an error instead when `CI` is set.
pub fn configured_nats_server(config: &BrokerConfig) -> Result<Option<NatsServerProcess>> {
    NatsServerProcess::start_with_config(Some(&nats_server_config(config)))
}

/// A `nats-server` configuration file with the settings of `config`.
pub fn nats_server_config(config: &BrokerConfig) -> String {
    let mut conf = format!(
        "server_name: {:?}\nmax_payload: {}\nmax_control_line: {}\nmax_pending: {}\n\
         ping_interval: \"{}ms\"\nping_max: {}\nwrite_deadline: \"{}ms\"\n",
        config.server_name,
        config.max_payload,
        config.max_control_line,
        config.max_pending,
        config.ping_interval.as_millis(),
        config.max_pings_out,
        config.write_deadline.as_millis(),
    );
    match &config.auth {
        Auth::None => {}
        Auth::Token { token } => {
            conf.push_str(&format!(
                "authorization {{\n  token: {token:?}\n  timeout: {}\n}}\n",
                config.auth_timeout.as_secs_f64()
            ));
        }
        Auth::UserPassword { user, password } => {
            conf.push_str(&format!(
                "authorization {{\n  user: {user:?}\n  password: {password:?}\n  timeout: {}\n}}\n",
                config.auth_timeout.as_secs_f64()
            ));
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait_for;

    #[test]
    fn embedded_broker_starts_stops_and_restarts_on_its_port() {
        let mut broker = EmbeddedBroker::start().unwrap();
        let port = broker.port();
        let connect = || std::net::TcpStream::connect(("127.0.0.1", port));
        assert!(connect().is_ok());
        wait_for("one accepted connection", Duration::from_secs(5), || {
            broker.stats().total_connections >= 1
        })
        .unwrap();
        broker.stop();
        assert!(connect().is_err());
        broker.restart().unwrap();
        assert_eq!(broker.port(), port);
        assert!(connect().is_ok());
        wait_for("two accepted connections", Duration::from_secs(5), || {
            broker.stats().total_connections >= 2
        })
        .unwrap();
    }

    #[test]
    fn nats_server_config_carries_the_settings() {
        let config = BrokerConfig {
            max_pending: 1000,
            auth: Auth::Token {
                token: "s3cret".into(),
            },
            ..BrokerConfig::default()
        };
        let conf = nats_server_config(&config);
        assert!(conf.contains("max_pending: 1000\n"), "{conf}");
        assert!(conf.contains("token: \"s3cret\""), "{conf}");
        assert!(conf.contains("ping_interval: \"120000ms\""), "{conf}");
    }
}
