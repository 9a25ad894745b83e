//! `muster demo` and `muster broker`: nothing to install but this binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use muster_testkit::{Daemon, DaemonSpec, wait_for};

use crate::cli::{bin, muster};
use crate::fixture::{arg, dead_port, node_list, text_file};

/// The tour runs on its own broker and fleet, shows who did not respond, and exits 0 quickly.
#[test]
fn the_demo_tours_and_exits_0() {
    let started = Instant::now();
    let run = muster(&["demo"]).run();
    run.code(0)
        .stdout_has("$ muster ping --broker nats://127.0.0.1:")
        .stdout_has("$ muster facts packages.openssl")
        .stdout_has("Did not respond:")
        .stdout_has("(no reply)")
        .stdout_has("simulated failure")
        .stdout_has("Tour finished");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the demo took {:?}",
        started.elapsed()
    );
}

/// `muster broker` serves daemons and clients; a broken config is a usage error.
#[test]
fn the_broker_command_serves_a_fleet() -> Result<()> {
    let port = dead_port();
    let mut broker = Command::new(bin())
        .args(["broker", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let url = format!("nats://127.0.0.1:{port}");
    wait_for("the broker to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    let daemon = Daemon::start(bin(), &url, &DaemonSpec::new("solo"))?;
    let nodes = node_list(&["solo", "ghost"])?;
    let run = muster(&["ping", "--nodes", arg(&nodes)]).broker(&url).run();
    run.code(3)
        .stdout_has("Did not respond: ghost (not connected)");
    drop(daemon);
    let _ = broker.kill();
    let _ = broker.wait();

    let bad = text_file("max_payload = \"lots\"\n")?;
    muster(&["broker", "--listen", "127.0.0.1:0", "--config", arg(&bad)])
        .run()
        .code(2)
        .stderr_has("invalid broker config");
    Ok(())
}
