//! `muster demo`: a self-contained tour. It starts the embedded broker on a free loopback
//! port, this machine as a real node, and a simulated fleet with a few silent and failing
//! nodes; then runs real `muster` commands against them, printing each command so it can be
//! run again by hand (`--keep` leaves everything running).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_client::ExitStatus;
use muster_server::{Control, Security, ServerConfig};
use muster_sim::{Fault, FleetSpec, Share, Sim, SimConfig};
use tokio::sync::{mpsc, oneshot};

use crate::args::DemoArgs;
use crate::cmd::print;
use crate::failure::Failure;
use crate::render;

/// One step of the tour: what it shows, and the command.
struct Step {
    story: &'static str,
    args: Vec<String>,
    /// Show at most this many lines of the output (the summary lines at the end are kept).
    max_lines: usize,
}

fn step(story: &'static str, args: &[&str], max_lines: usize) -> Step {
    Step {
        story,
        args: args.iter().map(|a| a.to_string()).collect(),
        max_lines,
    }
}

/// The identity this machine gets in the demo: its hostname if usable.
fn this_machine() -> String {
    ServerConfig::default()
        .identity()
        .unwrap_or_else(|_| "this-machine".to_string())
}

pub async fn run(args: DemoArgs) -> Result<ExitStatus, Failure> {
    crate::cmd::log_to_stderr("error");
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("muster-demo-")
        .tempdir()
        .context("cannot make a temporary directory")
        .map_err(Failure::usage)?;

    // The broker, on a free loopback port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1")
        .map_err(Failure::usage)?;
    let port = listener.local_addr().map_err(Failure::usage)?.port();
    let url = format!("nats://127.0.0.1:{port}");
    let (stop_broker, broker_stopped) = oneshot::channel::<()>();
    let broker = muster_broker::Broker::new(muster_broker::BrokerConfig::default());
    let broker_task = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let _ = broker
                .run(listener, async {
                    let _ = broker_stopped.await;
                })
                .await;
        })
    };

    // This machine, as a real node with its real facts.
    let identity = this_machine();
    let (control, control_rx) = mpsc::channel(1);
    let node_config = ServerConfig {
        identity: Some(identity.clone()),
        brokers: vec![url.clone()],
        // A private broker on loopback that only this process can reach.
        security: Security::Insecure,
        ..ServerConfig::default()
    };
    let node_task = tokio::spawn(muster_server::run(node_config, control_rx));

    // A simulated fleet.
    let sim = Sim::start(SimConfig {
        fleet: FleetSpec {
            nodes: args.nodes,
            seed: 7,
            prefix: "sim".into(),
            silent: Share(0.01),
            fail: Share(0.015),
            slow: None,
            flap: Share(0.0),
            stray: Share(0.0),
        },
        brokers: vec![url.clone()],
        collective: muster_proto::subject::DEFAULT_COLLECTIVE.to_string(),
        nodes_per_connection: 1000,
        flap_timing: Default::default(),
        transport: Default::default(),
        signing: None,
    })
    .await
    .map_err(Failure::usage)?;
    let silent = sim
        .nodes()
        .iter()
        .filter(|n| n.fault == Fault::Silent)
        .count();
    let failing = sim
        .nodes()
        .iter()
        .filter(|n| n.fault == Fault::Fail)
        .count();
    let mut fleet: Vec<String> = sim.nodes().iter().map(|n| n.identity.clone()).collect();
    fleet.push(identity.clone());
    let fleet_file = dir.path().join("fleet.txt");
    std::fs::write(&fleet_file, fleet.join("\n") + "\n")
        .context("cannot write the fleet list")
        .map_err(Failure::usage)?;
    let fleet_file = fleet_file.display().to_string();
    // The tour's requests go to a journal of its own, not the user's.
    let journal = dir.path().join("journal.sqlite").display().to_string();

    // Wait until this machine's daemon answers, so the tour sees it.
    let me = std::env::current_exe()
        .context("cannot find the muster binary")
        .map_err(Failure::usage)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = tokio::process::Command::new(&me)
            .args([
                "ping", "--broker", &url, "-t", "1", "-I", &identity, "--dt", "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if status.is_ok_and(|s| s.success()) || Instant::now() > deadline {
            break;
        }
    }

    print(|out| render::demo::intro(out, &url, &identity, sim.nodes().len(), silent, failing))?;

    let steps = [
        step(
            "Who is there? One broadcast reaches every node; each answers for itself.",
            &["ping"],
            6,
        ),
        step(
            "Which machines run which openssl? One fact, summarised across the fleet.",
            &["facts", "packages.openssl"],
            12,
        ),
        step(
            "Pick machines by what they are: the database servers in ams1.",
            &["find", "-F", "role=db", "-F", "dc=ams1"],
            6,
        ),
        step(
            "The compound language: web and load-balancer nodes on an old kernel, canaries excluded.",
            &[
                "find",
                "-S",
                "(role=web or role=lb) and kernel=~^5\\. and not class=canary",
            ],
            6,
        ),
        step(
            "This machine's inventory: its real facts.",
            &["inventory", &identity],
            14,
        ),
        step(
            "Run an action on the whole fleet, listed in a node list (as an inventory would): \
             failures and nodes that never answered are named, and the exit code says so.",
            &[
                "rpc",
                "rpcutil",
                "get_fact",
                "fact=kernel",
                "--nodes",
                &fleet_file,
                "-t",
                "2",
                "--display",
                "failed",
            ],
            10,
        ),
    ];
    for s in &steps {
        let mut full = s.args.clone();
        full.extend(["--broker".to_string(), url.clone()]);
        print(|out| render::demo::step(out, s.story, &full))?;
        let output = tokio::process::Command::new(&me)
            .args(&full)
            .env("MUSTER_JOURNAL", &journal)
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run muster")
            .map_err(Failure::usage)?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let code = output.status.code().unwrap_or(-1);
        print(|out| render::demo::step_output(out, &text, s.max_lines, code))?;
    }

    if args.keep {
        print(|out| render::demo::keep(out, &url, &journal, &fleet_file))?;
        let _ = tokio::signal::ctrl_c().await;
    } else {
        print(|out| render::demo::finished(out, started.elapsed()))?;
    }

    sim.stop().await;
    let _ = control.send(Control::Shutdown).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), node_task).await;
    let _ = stop_broker.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), broker_task).await;
    Ok(ExitStatus::Ok)
}
