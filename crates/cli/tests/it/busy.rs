//! A node whose every action slot is busy, or whose reload hangs, still answers (docs/design.md
//! §5): cheap `rpcutil` requests have their own lane, a request that finds no slot within its
//! ttl is answered "busy" (status 5), a SIGHUP reloads in the background, and stopping the
//! daemon kills the actions it gave up waiting for.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use muster_client::{Call, Client, ConnectConfig, Outcome, RequestOptions};
use muster_testkit::{DaemonSpec, UnixSignal, wait_for};
use serde_json::json;

use crate::cli::identities;
use crate::fixture::{self, arg, node_list, stand_in};

/// How many actions the node runs at once in these tests (the default).
const SLOTS: usize = 16;
/// Requests queued behind the busy slots: more than the daemon checks at once (4 per core), so
/// a checking permit held while waiting for a slot would stop the receive loop.
const QUEUED: usize = 12;

/// The process groups of the sleeping actions (each action's shell is its group's leader and
/// wrote its pid), killed on drop so a failed test leaves nothing behind.
struct Sleepers<'a>(&'a Path);

impl Sleepers<'_> {
    fn pids(&self) -> Vec<u32> {
        std::fs::read_dir(self.0)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .filter_map(|text| text.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Sleepers<'_> {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet: it runs no more).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "PID (COMM) STATE …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn connect(url: &str) -> Result<Client> {
    Ok(Client::connect(&ConnectConfig {
        brokers: vec![url.to_string()],
        ..Default::default()
    })
    .await?)
}

on_both_brokers! {
    /// Every action slot busy with a 30 s action: `muster ping` still answers, `daemon_stats`
    /// shows the slots in use, one more action is answered "busy" (status 5, outcome failed)
    /// once its ttl passes, and stopping the daemon answers the request still waiting and
    /// kills the sleeping actions.
    fn a_busy_node_answers_ping_and_says_it_is_busy() -> Result<()> {
        let spec = DaemonSpec::new("web1")
            .config(&format!("max_concurrent = {SLOTS}\ndrain_timeout = \"1s\""))
            .config("[agents.shell]\nenabled = true");
        let Some(mut fleet) = fixture::fleet(&[spec])? else {
            return Ok(());
        };
        let pids = tempfile::tempdir()?;
        let sleepers = Sleepers(pids.path());
        let runtime = tokio::runtime::Runtime::new()?;
        let client = runtime.block_on(connect(&fleet.url()))?;
        let web1 = BTreeSet::from(["web1".to_string()]);
        let long = RequestOptions {
            timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let calls: Vec<Call> = (0..SLOTS)
            .map(|i| {
                let pid_file = pids.path().join(format!("action{i}"));
                Call {
                    data: json!({"command": format!("echo $$ > '{}'; exec sleep 30", pid_file.display())}),
                    ..Call::new("shell", "run")
                }
            })
            .collect();
        // These never finish within the test: they end when `stop` is dropped.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let requests = {
            let (client, web1) = (client.clone(), web1.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async {
                    let all = futures::future::join_all(
                        calls.iter().map(|call| async {
                            client.request(call, &web1, &long, 0, &mut |_| {}).await
                        }),
                    );
                    tokio::select! {
                        _ = all => {}
                        _ = stopped => {}
                    }
                });
                anyhow::Ok(())
            })
        };
        wait_for("every action slot to be running a sleep", Duration::from_secs(20), || {
            sleepers.pids().len() == SLOTS
        })
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fleet.daemon("web1").log()))?;

        // Then more, once every slot is taken: they wait for one (until the daemon stops).
        let (stop_queued, queued_stopped) = tokio::sync::oneshot::channel::<()>();
        let queued = {
            let (client, web1) = (client.clone(), web1.clone());
            let long = RequestOptions {
                timeout: Duration::from_secs(60),
                ..Default::default()
            };
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let call = Call {
                    data: json!({"command": "echo queued"}),
                    ..Call::new("shell", "run")
                };
                runtime.block_on(async {
                    let all = futures::future::join_all((0..QUEUED).map(|_| async {
                        client.request(&call, &web1, &long, 0, &mut |_| {}).await
                    }));
                    tokio::select! {
                        _ = all => {}
                        _ = queued_stopped => {}
                    }
                });
                anyhow::Ok(())
            })
        };
        let mut stats = serde_json::Value::Null;
        wait_for("the other requests to wait for a slot", Duration::from_secs(20), || {
            let run = fleet
                .muster(&["rpc", "rpcutil", "daemon_stats", "-I", "web1", "--json", "-t", "5"])
                .run();
            stats = run.json();
            stats["replies"][0]["data"]["requests_waiting"] == QUEUED
        })
        .map_err(|e| anyhow::anyhow!("{e}\n{stats:#}\n{}", fleet.daemon("web1").log()))?;

        // The node is busy, not dead: ping answers, the first time it is asked.
        let nodes = node_list(&["web1"])?;
        let started = Instant::now();
        let run = fleet.muster(&["ping", "--json", "-t", "5", "--nodes", arg(&nodes)]).run();
        run.code(0);
        eprintln!("the busy node answered ping in {:?}", started.elapsed());
        let run = fleet
            .muster(&["rpc", "rpcutil", "daemon_stats", "-I", "web1", "--json", "-t", "5"])
            .run();
        let stats = &run.code(0).json()["replies"][0]["data"];
        assert_eq!(stats["in_flight"], SLOTS, "{stats:#}");

        // One action more: no slot frees up within its ttl, so the node says it is busy.
        let report = runtime.block_on(async {
            let options = RequestOptions {
                ttl: 2,
                timeout: Duration::from_secs(20),
                ..Default::default()
            };
            let call = Call {
                data: json!({"command": "echo never"}),
                ..Call::new("shell", "run")
            };
            client.request(&call, &web1, &options, 0, &mut |_| {}).await
        })?;
        let reply = report.replies.first().ok_or_else(|| anyhow::anyhow!("no reply: {report:?}"))?;
        assert_eq!(reply.statuscode, 5, "{reply:?}");
        assert_eq!(reply.outcome, Outcome::Failed, "{reply:?}");
        assert!(
            reply.statusmsg.contains("busy") && reply.statusmsg.contains(&format!("all {SLOTS} action slots")),
            "{reply:?}"
        );
        let run = fleet
            .muster(&["rpc", "rpcutil", "daemon_stats", "-I", "web1", "--json", "-t", "5"])
            .run();
        assert_eq!(run.code(0).json()["replies"][0]["data"]["requests_busy"], 1, "{run}");

        // One more, with time to wait: it is still waiting when the daemon stops, and is
        // answered instead of started during the drain.
        let waiter = {
            let (client, web1) = (client.clone(), web1.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let options = RequestOptions {
                    timeout: Duration::from_secs(30),
                    ..Default::default()
                };
                let call = Call {
                    data: json!({"command": "echo too late"}),
                    ..Call::new("shell", "run")
                };
                anyhow::Ok(runtime.block_on(client.request(&call, &web1, &options, 0, &mut |_| {}))?)
            })
        };
        wait_for("a request to wait for a slot", Duration::from_secs(10), || {
            let run = fleet
                .muster(&["rpc", "rpcutil", "daemon_stats", "-I", "web1", "--json", "-t", "5"])
                .run();
            run.json()["replies"][0]["data"]["requests_waiting"] == QUEUED + 1
        })?;

        // Stopping gives up on the sleeping actions after the drain timeout and kills them.
        let daemon = fleet.daemon("web1");
        daemon.signal(UnixSignal::SIGTERM)?;
        let report = waiter.join().map_err(|_| anyhow::anyhow!("the waiting request panicked"))??;
        let reply = report.replies.first().ok_or_else(|| anyhow::anyhow!("no reply: {report:?}"))?;
        assert_eq!(reply.statuscode, 5, "{reply:?}");
        assert!(reply.statusmsg.contains("shutting down"), "{reply:?}");
        assert_eq!(daemon.wait_exit(Duration::from_secs(20))?, Some(0), "{}", daemon.log());
        assert!(daemon.log().contains("drain timeout reached"), "{}", daemon.log());
        let left = sleepers.pids();
        wait_for("the sleeping actions to be killed", Duration::from_secs(10), || {
            left.iter().all(|&pid| is_gone(pid))
        })
        .map_err(|e| {
            let alive: Vec<_> = left.iter().filter(|&&pid| !is_gone(pid)).collect();
            anyhow::anyhow!("{e}: still running: {alive:?}")
        })?;
        drop(stop);
        drop(stop_queued);
        let _ = requests.join();
        let _ = queued.join();
        Ok(())
    }
}

on_both_brokers! {
    /// A SIGHUP whose facts command hangs: the node keeps serving with its old facts, a second
    /// SIGHUP meanwhile is folded into one more reload, and the new facts appear when the
    /// command finishes.
    fn a_hanging_reload_does_not_stop_serving() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        // Prints the phase in its file; while `hang` exists it waits for `release`.
        let facts = stand_in(
            dir.path(),
            "facts.sh",
            &format!(
                "echo run >> '{d}/runs'\n\
                 if [ -e '{d}/hang' ]; then\n\
                   touch '{d}/started'\n\
                   while [ ! -e '{d}/release' ]; do sleep 0.05; done\n\
                 fi\n\
                 printf '{{\"phase\": \"%s\"}}' \"$(cat '{d}/phase')\""
            ),
        )?;
        std::fs::write(dir.path().join("phase"), "old")?;
        let spec = DaemonSpec::new("web1").config(&format!("facts_command = {facts:?}"));
        let Some(mut fleet) = fixture::fleet(&[spec])? else {
            return Ok(());
        };
        let finds = |fleet: &fixture::Fleet, filter: &str| {
            let run = fleet.muster(&["find", "--json", "--dt", "1", "-F", filter]).run();
            identities(&run.json())
        };
        assert_eq!(finds(&fleet, "phase=old"), ["web1"]);

        std::fs::write(dir.path().join("hang"), "")?;
        std::fs::write(dir.path().join("phase"), "new")?;
        fleet.daemon("web1").signal(UnixSignal::SIGHUP)?;
        wait_for("the facts command to hang", Duration::from_secs(10), || {
            dir.path().join("started").exists()
        })?;
        // A second SIGHUP while the first reload runs.
        fleet.daemon("web1").signal(UnixSignal::SIGHUP)?;

        let nodes = node_list(&["web1"])?;
        wait_for("the reloading node to answer ping", Duration::from_secs(10), || {
            fleet.muster(&["ping", "--json", "-t", "2", "--nodes", arg(&nodes)]).run().code == Some(0)
        })
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fleet.daemon("web1").log()))?;
        assert_eq!(finds(&fleet, "phase=old"), ["web1"], "the old facts are kept while reloading");

        std::fs::remove_file(dir.path().join("hang"))?;
        std::fs::write(dir.path().join("release"), "")?;
        wait_for("the new facts to appear", Duration::from_secs(15), || {
            finds(&fleet, "phase=new") == ["web1"]
        })?;
        let web1 = fleet.daemon("web1");
        wait_for("both reloads to finish", Duration::from_secs(15), || {
            web1.log().matches("reloaded facts and classes").count() == 2
        })
        .map_err(|e| anyhow::anyhow!("{e}\n{}", web1.log()))?;
        // The start, the first reload, and one more for the SIGHUP that came during it.
        let runs = std::fs::read_to_string(dir.path().join("runs"))?;
        assert_eq!(runs.lines().count(), 3, "{}", web1.log());
        Ok(())
    }
}
