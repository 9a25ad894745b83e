//! One precedence for every program (docs/design.md §4, §5): a flag beats the environment
//! (`MUSTER_BROKER`), which beats the config file, which beats the default; and the daemon
//! logs at start which broker URLs it uses and where they came from.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use crate::cli::{bin, muster};
use crate::fixture;

/// A URL nobody listens on.
fn dead() -> String {
    format!("nats://127.0.0.1:{}", fixture::dead_port())
}

/// A `muster server` with `MUSTER_BROKER` as given, killed on drop.
struct Server {
    child: Child,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path, config: &str, env: Option<&str>, flags: &[&str]) -> Result<Server> {
        let path = dir.join("server.toml");
        std::fs::write(&path, config)?;
        let log = dir.join("server.log");
        let mut cmd = Command::new(bin());
        cmd.arg("server")
            .arg("--config")
            .arg(&path)
            .args(flags)
            .env_remove("MUSTER_BROKER")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        if let Some(env) = env {
            cmd.env("MUSTER_BROKER", env);
        }
        Ok(Server {
            child: cmd.spawn()?,
            log,
        })
    }

    fn log(&self) -> String {
        muster_testkit::read(&self.log)
    }

    fn wait_log(&self, needle: &str) -> Result<()> {
        let found = muster_testkit::wait_for(needle, Duration::from_secs(15), || {
            self.log().contains(needle)
        });
        if found.is_err() {
            anyhow::bail!("no {needle:?} in the daemon's log:\n{}", self.log());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon whose file names one broker and whose environment another connects to the
/// environment's, and says so at start, with the identity, the file and the security mode.
#[test]
fn the_daemon_logs_which_brokers_it_uses_and_why() -> Result<()> {
    let broker = muster_testkit::EmbeddedBroker::start()?;
    let (file_url, url) = (dead(), broker.url());
    let dir = tempfile::tempdir()?;
    let config = format!(
        "identity = \"web1\"\nsecurity = \"insecure\"\nbrokers = [{file_url:?}]\nregistration_interval = \"0s\"\n"
    );
    let server = Server::start(dir.path(), &config, Some(&url), &[])?;
    server.wait_log("ready: serving requests")?;
    let log = server.log();
    for needle in [
        format!(
            "brokers = [{url:?}] (from MUSTER_BROKER, overriding server.toml's brokers = [{file_url:?}])"
        ),
        "identity = \"web1\" (from server.toml)".to_string(),
        "security = \"insecure\" (from server.toml)".to_string(),
        format!("config file {}", dir.path().join("server.toml").display()),
    ] {
        assert!(log.contains(&needle), "no {needle:?} in\n{log}");
    }
    Ok(())
}

/// flag → environment → file → default, for the daemon, the client and the registry: each
/// row sets some of the three and the program uses (and names) the one that wins.
#[test]
fn a_flag_beats_the_environment_which_beats_the_file() -> Result<()> {
    let (file_url, env_url, flag_url) = (dead(), dead(), dead());
    let rows: [(bool, bool, &str, &str); 4] = [
        (false, false, "nats://127.0.0.1:4222", "the default"),
        (false, false, &file_url, "from server.toml"),
        (true, false, &env_url, "from MUSTER_BROKER"),
        (true, true, &flag_url, "from --broker"),
    ];
    for (i, (env, flag, wins, daemon_says)) in rows.into_iter().enumerate() {
        let dir = tempfile::tempdir()?;
        // Row 0 has no brokers in the file; the others have.
        let brokers = if i == 0 {
            String::new()
        } else {
            format!("brokers = [{file_url:?}]\n")
        };
        let env = env.then_some(env_url.as_str());
        let flags: Vec<&str> = if flag {
            vec!["--broker", &flag_url]
        } else {
            vec![]
        };

        // The daemon: the start-up log.
        let server = Server::start(
            dir.path(),
            &format!("identity = \"web1\"\nsecurity = \"insecure\"\n{brokers}"),
            env,
            &flags,
        )?;
        server.wait_log(&format!("brokers = [{wins:?}] ({daemon_says}"))?;
        drop(server);

        // The client and the registry: the URL they could not reach.
        let client_toml = dir.path().join("client.toml");
        std::fs::write(&client_toml, &brokers)?;
        let config = client_toml.to_str().unwrap_or_default();
        let db = dir.path().join("registry.db");
        for args in [
            vec!["ping", "--config", config],
            vec![
                "registry",
                "--db",
                db.to_str().unwrap_or_default(),
                "--config",
                config,
            ],
        ] {
            if wins == "nats://127.0.0.1:4222" {
                // Something may listen on the default port on this machine: only the file rows.
                continue;
            }
            let mut cmd = muster(&[args.clone(), flags.clone()].concat());
            if let Some(env) = env {
                cmd = cmd.env("MUSTER_BROKER", env);
            }
            let run = cmd.run();
            run.code(5)
                .stderr_has(&format!("cannot reach the broker at {wins}:"));
        }
    }
    Ok(())
}
