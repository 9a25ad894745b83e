//! Running the `muster` binary and capturing what it did.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_muster"))
}

/// No command in this suite may run longer than this; past it the process is killed and the
/// test fails, instead of hanging the suite.
const HARD_LIMIT: Duration = Duration::from_secs(60);

/// One `muster` invocation being built.
pub struct Muster {
    args: Vec<String>,
    broker: Option<String>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
}

/// Starts building `muster ARGS…`.
pub fn muster<S: AsRef<str>>(args: &[S]) -> Muster {
    Muster {
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        broker: None,
        stdin: None,
        // Tests never write to the user's own journal.
        env: vec![(
            "MUSTER_JOURNAL".to_string(),
            journal().display().to_string(),
        )],
    }
}

/// One journal file for this test process, in a temporary directory.
pub fn journal() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
        dir.path().join("journal.sqlite")
    })
}

impl Muster {
    /// Adds `--broker URL`.
    pub fn broker(mut self, url: &str) -> Self {
        self.broker = Some(url.to_string());
        self
    }

    /// Feeds `text` to standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs it to the end.
    pub fn run(self) -> Run {
        let mut args = self.args;
        if let Some(url) = self.broker {
            args.push("--broker".into());
            args.push(url);
        }
        let mut cmd = assert_cmd::Command::new(bin());
        cmd.args(&args)
            .env_remove("MUSTER_BROKER")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .timeout(HARD_LIMIT);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(text) = self.stdin {
            cmd.write_stdin(text);
        }
        let started = Instant::now();
        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run muster {args:?}: {e}"));
        Run {
            args,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

/// What one invocation did.
#[derive(Debug, Clone)]
pub struct Run {
    /// The arguments it ran with.
    pub args: Vec<String>,
    /// Its exit code (`None`: killed by a signal, e.g. the hard limit).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall-clock time from start to exit.
    pub elapsed: Duration,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "muster {:?}\n  exit code: {:?} after {:?}\n  ----- stdout -----\n{}  ----- stderr -----\n{}  ------------------",
            self.args, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Asserts the exit code.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code of\n{self}");
        self
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout does not contain {needle:?}:\n{self}"
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}:\n{self}"
        );
        self
    }

    /// Stdout as exactly one JSON value (nothing before or after it but whitespace).
    #[track_caller]
    pub fn json(&self) -> Value {
        let mut values = serde_json::Deserializer::from_str(&self.stdout).into_iter::<Value>();
        let first = match values.next() {
            Some(Ok(v)) => v,
            other => panic!("stdout is not JSON ({other:?}):\n{self}"),
        };
        assert!(
            values.next().is_none(),
            "stdout holds more than one JSON value:\n{self}"
        );
        first
    }

    /// The one line of stdout that starts with `prefix`.
    #[track_caller]
    pub fn line(&self, prefix: &str) -> &str {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line starting {prefix:?}:\n{self}"
        );
        lines[0]
    }
}

/// The identities in a JSON array of strings (`find --json`), sorted.
#[track_caller]
pub fn identities(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("not a string: {v}"))
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// `(identity, outcome)` of a report's `missing` list, sorted.
#[track_caller]
pub fn missing(report: &Value) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = report["missing"]
        .as_array()
        .unwrap_or_else(|| panic!("no missing list in {report}"))
        .iter()
        .map(|m| {
            (
                m["identity"].as_str().unwrap_or_default().to_string(),
                m["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

/// `(sender, outcome)` of a report's `replies`, sorted.
#[track_caller]
pub fn replies(report: &Value) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = report["replies"]
        .as_array()
        .unwrap_or_else(|| panic!("no replies list in {report}"))
        .iter()
        .map(|r| {
            (
                r["sender"].as_str().unwrap_or_default().to_string(),
                r["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

/// Owned, sorted strings, for comparing with [`identities`] and friends.
pub fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Runs every command, up to `width` at once, and returns what each did, in order.
pub fn run_all(width: usize, commands: Vec<Muster>) -> Vec<Run> {
    let count = commands.len();
    let queue = Mutex::new(commands.into_iter().enumerate());
    let done = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..width.min(count) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some((i, command)) = next else { break };
                    let run = command.run();
                    done.lock().unwrap().push((i, run));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, run)| run).collect()
}
