//! Running a program for an agent: the one place an agent starts a process.
//!
//! Agents that change the system (`service`, `package`, `shell`, `cm`, `health` and external
//! agents) describe what to run as a [`CommandSpec`] and call [`run`], which returns a
//! [`CommandOutput`] (exit status, captured output, duration) or a [`CommandError`] when the
//! program could not be started at all.
//!
//! # Process group and kill policy
//!
//! The child is the leader of a new process group, so everything it starts (unless it detaches
//! with `setsid` or its own `setpgid`) can be signalled together.
//!
//! - **Normal exit.** When the child exits before its deadline, [`run`] keeps reading its output
//!   until both pipes reach end-of-file, but for no longer than [`DRAIN_GRACE`]: a background
//!   process that inherited the pipes cannot make `run` hang. Processes the child left running
//!   are *not* killed — a script may start a daemon on purpose.
//! - **Timeout.** At the deadline the whole group gets `SIGTERM`. `run` then waits up to
//!   [`CommandSpec::kill_grace`] (default one second) for the child to exit, and then sends
//!   `SIGKILL` to the group in any case, which sweeps up anything that ignored `SIGTERM` or
//!   outlived the child. A zero grace skips `SIGTERM`. The child is reaped and the pipes drained,
//!   each for at most [`DRAIN_GRACE`]; the result is [`ExitKind::TimedOut`]. So `run` returns at
//!   most `timeout + kill_grace + DRAIN_GRACE` after it starts.
//! - **Cancellation.** If the future returned by [`run`] is dropped before the child has exited,
//!   the whole group gets `SIGKILL` (no grace: a destructor cannot wait) and the child is left for
//!   tokio to reap.
//!
//! Invariant: the group is only ever signalled while its leader is unreaped, or at the instant
//! it has just been reaped on the timeout path — so the process group id cannot have been reused.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::{Instant, sleep_until};

/// How long [`run`] keeps reading output after the child has exited (or been killed), and how
/// long it waits to reap a killed child, before giving up on them.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The default [`CommandSpec::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The default [`CommandSpec::max_output`]: 1 MiB per stream.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

/// The default [`CommandSpec::kill_grace`].
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(1);

/// The longest line of output [`CommandOutput::summary`] quotes, in characters.
const SUMMARY_LINE_MAX: usize = 200;

/// What to run, with what input, environment and limits.
///
/// Build one with [`CommandSpec::new`] and the builder methods:
///
/// ```
/// use std::time::Duration;
/// use muster_agent::command::CommandSpec;
///
/// let spec = CommandSpec::new("systemctl")
///     .args(["restart", "nginx"])
///     .clear_env()
///     .env("LANG", "C")
///     .timeout(Duration::from_secs(30));
/// assert_eq!(spec.args, ["restart", "nginx"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program: a path (anything containing `/`) or a name looked up in `PATH` (the child's
    /// `PATH` when `env` sets one, otherwise the daemon's).
    pub program: PathBuf,
    /// The arguments, not including the program name.
    pub args: Vec<String>,
    /// Bytes written to the child's standard input, which is then closed. `None` connects
    /// standard input to `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Environment variables set for the child, applied in order after `clear_env`.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment: the child sees only the daemon's `PATH` and `env`.
    pub clear_env: bool,
    /// The child's working directory; `None` inherits the daemon's.
    pub cwd: Option<PathBuf>,
    /// How long the child may run before its process group is killed.
    pub timeout: Duration,
    /// How many bytes of each of standard output and standard error to keep. The rest is read
    /// and discarded, and [`CommandOutput`] says the stream was truncated.
    pub max_output: usize,
    /// After a timeout, how long the group has between `SIGTERM` and `SIGKILL`. Zero sends
    /// `SIGKILL` straight away.
    pub kill_grace: Duration,
}

impl CommandSpec {
    /// A spec running `program` with no arguments, no input, the daemon's environment and
    /// working directory, [`DEFAULT_TIMEOUT`], [`DEFAULT_MAX_OUTPUT`] and
    /// [`DEFAULT_KILL_GRACE`].
    pub fn new(program: impl Into<PathBuf>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            kill_grace: DEFAULT_KILL_GRACE,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the bytes written to standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the child from an empty environment: only `PATH` and the variables set with
    /// [`env`](Self::env).
    pub fn clear_env(mut self) -> Self {
        self.clear_env = true;
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many bytes of each output stream to keep.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Sets the grace between `SIGTERM` and `SIGKILL` after a timeout.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The program as text, for messages.
    fn program_name(&self) -> String {
        self.program.display().to_string()
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It exited with this status code.
    Exited(i32),
    /// It was killed by this signal (not by [`run`]).
    Signalled(i32),
    /// It ran past its timeout and [`run`] killed its process group.
    TimedOut,
}

impl ExitKind {
    fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitKind::Exited(code),
            (None, Some(signal)) => ExitKind::Signalled(signal),
            // waitpid without WUNTRACED reports only exits and deaths by signal.
            (None, None) => ExitKind::Exited(-1),
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitKind::Exited(code) => write!(f, "exited with status {code}"),
            ExitKind::Signalled(signal) => match Signal::try_from(signal) {
                Ok(name) => write!(f, "killed by signal {signal} ({name})"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
            ExitKind::TimedOut => f.write_str("killed after timeout"),
        }
    }
}

/// What a program did: how it ended, what it wrote and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// How it ended.
    pub status: ExitKind,
    /// Its standard output (at most [`CommandSpec::max_output`] bytes), invalid UTF-8 replaced.
    pub stdout: String,
    /// Its standard error, like `stdout`.
    pub stderr: String,
    /// Whether standard output was longer than [`CommandSpec::max_output`] (or was still open
    /// when [`run`] stopped reading it).
    pub stdout_truncated: bool,
    /// Whether standard error was cut short, like `stdout_truncated`.
    pub stderr_truncated: bool,
    /// From just before the start to the end of [`run`].
    pub duration: Duration,
    /// The timeout it ran under ([`CommandSpec::timeout`]).
    pub timeout: Duration,
}

impl CommandOutput {
    /// Whether the program exited with status 0.
    pub fn success(&self) -> bool {
        self.status == ExitKind::Exited(0)
    }

    /// A short human message saying how the program ended, for an agent's reply:
    /// `exited with status 3: <last line of stderr>`, `killed by signal 9 (SIGKILL)`,
    /// `killed after timeout of 5s`. Failures quote the last non-blank line of standard error
    /// (of standard output when standard error is blank), shortened to 200 characters; when the
    /// stream was truncated that is the last line that was kept.
    pub fn summary(&self) -> String {
        match self.status {
            ExitKind::TimedOut => {
                format!("killed after timeout of {}", format_duration(self.timeout))
            }
            ExitKind::Exited(0) => self.status.to_string(),
            ExitKind::Exited(_) | ExitKind::Signalled(_) => {
                match last_line(&self.stderr).or_else(|| last_line(&self.stdout)) {
                    Some(line) => format!("{}: {line}", self.status),
                    None => self.status.to_string(),
                }
            }
        }
    }
}

/// The last non-blank line of `text`, trimmed and shortened.
fn last_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    if line.chars().count() <= SUMMARY_LINE_MAX {
        Some(line.to_string())
    } else {
        let short: String = line.chars().take(SUMMARY_LINE_MAX).collect();
        Some(format!("{short}…"))
    }
}

/// `5s`, `1.5s`, `250ms`, `2m`, `1m30s`.
fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if !millis.is_multiple_of(1000) {
        format!("{}s", d.as_secs_f64())
    } else {
        let secs = d.as_secs();
        match (secs / 60, secs % 60) {
            (0, s) => format!("{s}s"),
            (m, 0) => format!("{m}m"),
            (m, s) => format!("{m}m{s}s"),
        }
    }
}

/// Why a program could not be started. Once started, everything that happens to it is a
/// [`CommandOutput`].
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program, or the interpreter its `#!` line names, does not exist.
    #[error("cannot run `{program}`: {reason}")]
    NotFound {
        /// The program as given.
        program: String,
        /// What was looked for, and what to do about it.
        reason: String,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
    /// The program exists but may not be executed.
    #[error(
        "cannot run `{program}`: permission denied; make sure it is an executable file \
         (`chmod +x`) that the daemon's user may run, or configure a different command"
    )]
    NotExecutable {
        /// The program as given.
        program: String,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
    /// The working directory does not exist or is not a directory.
    #[error(
        "cannot run `{program}` in `{}`: the working directory is missing or not a directory \
         ({source}); create it or configure a different one",
        cwd.display()
    )]
    Cwd {
        /// The program as given.
        program: String,
        /// The working directory.
        cwd: PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
    /// Starting the program failed for another reason.
    #[error(
        "cannot start `{program}`: {source}; check that it is a valid executable for this \
         machine and that the system is not out of processes or memory"
    )]
    Spawn {
        /// The program as given.
        program: String,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
}

impl CommandError {
    /// The program that could not be started.
    pub fn program(&self) -> &str {
        match self {
            CommandError::NotFound { program, .. }
            | CommandError::NotExecutable { program, .. }
            | CommandError::Cwd { program, .. }
            | CommandError::Spawn { program, .. } => program,
        }
    }

    fn from_spawn(spec: &CommandSpec, source: io::Error) -> Self {
        let program = spec.program_name();
        match source.kind() {
            io::ErrorKind::NotFound => {
                let reason = not_found_reason(spec);
                CommandError::NotFound {
                    program,
                    reason,
                    source,
                }
            }
            io::ErrorKind::PermissionDenied => CommandError::NotExecutable { program, source },
            _ => CommandError::Spawn { program, source },
        }
    }
}

/// Explains a "not found" from spawning: no such program, or a missing interpreter.
fn not_found_reason(spec: &CommandSpec) -> String {
    let program = &spec.program;
    if !program.as_os_str().as_encoded_bytes().contains(&b'/') {
        let path = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        return format!(
            "no such program in PATH (`{path}`); install it, or configure its full path"
        );
    }
    let on_disk = match &spec.cwd {
        Some(dir) if program.is_relative() => dir.join(program),
        _ => program.clone(),
    };
    if on_disk.exists() {
        "the file exists but the interpreter on its `#!` line (or a library it needs) was not \
         found; install the interpreter or fix the `#!` line"
            .to_string()
    } else {
        "no such file; install it, or fix the configured path".to_string()
    }
}

/// Runs `spec.program` to completion (or to its timeout) and returns what it did.
///
/// Standard output and standard error are read concurrently, standard input is written and
/// closed (a child that exits without reading it is fine). See the [module
/// documentation](self) for the process-group and kill policy.
///
/// # Errors
///
/// A [`CommandError`] when the program cannot be started: not found, not executable, a bad
/// working directory, or another failure to spawn. A program that starts and then fails is an
/// `Ok` with its [`ExitKind`].
pub async fn run(spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
    if let Some(dir) = &spec.cwd
        && !dir.is_dir()
    {
        let source = match std::fs::metadata(dir) {
            Err(e) => e,
            Ok(_) => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        };
        return Err(CommandError::Cwd {
            program: spec.program_name(),
            cwd: dir.clone(),
            source,
        });
    }

    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if spec.clear_env {
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
    }
    command.envs(spec.env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))));
    if let Some(dir) = &spec.cwd {
        command.current_dir(dir);
    }

    let start = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| CommandError::from_spawn(spec, e))?;
    let mut group = Group::new(child);

    let stdin = group.child.stdin.take();
    let stdout = group.child.stdout.take();
    let stderr = group.child.stderr.take();
    let mut out = Capture::new(spec.max_output);
    let mut err = Capture::new(spec.max_output);

    let status = {
        let pipes = async {
            tokio::join!(
                feed(stdin, spec.stdin.as_deref()),
                out.fill(stdout),
                err.fill(stderr)
            )
        };
        tokio::pin!(pipes);
        supervise(&mut group, pipes, start, spec).await
        // Dropping `pipes` here stops reading whatever is still open.
    };
    drop(group);

    let out_open = !out.closed;
    let err_open = !err.closed;
    Ok(CommandOutput {
        status,
        stdout: String::from_utf8_lossy(&out.kept).into_owned(),
        stderr: String::from_utf8_lossy(&err.kept).into_owned(),
        stdout_truncated: out.truncated || out_open,
        stderr_truncated: err.truncated || err_open,
        duration: start.elapsed(),
        timeout: spec.timeout,
    })
}

/// Where [`supervise`] is in the life of the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the deadline.
    Running,
    /// The child exited on its own; reading what is left of its output.
    Draining,
    /// Past the deadline, the group has had `SIGTERM`.
    Terminating,
    /// The group has had `SIGKILL`; reaping the child and reading what is left.
    Killed,
}

/// Waits for the child and the pipes, applying the timeout and kill policy; returns how the
/// child ended. Returns once the child is reaped and the pipes are done, or once the phase's
/// time is up.
async fn supervise<F>(
    group: &mut Group,
    mut pipes: std::pin::Pin<&mut F>,
    start: Instant,
    spec: &CommandSpec,
) -> ExitKind
where
    F: std::future::Future,
{
    let mut phase = Phase::Running;
    let mut until = start
        .checked_add(spec.timeout)
        // A timeout too large to represent: a year is as good as forever here.
        .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
    let mut exited: Option<ExitKind> = None;
    let mut pipes_done = false;

    loop {
        if group.reaped && pipes_done {
            break;
        }
        tokio::select! {
            status = group.child.wait(), if !group.reaped => {
                group.reaped = true;
                // An error from wait means the child is gone already (reaped elsewhere).
                let kind = status.map(ExitKind::from_status).unwrap_or(ExitKind::Exited(-1));
                match phase {
                    Phase::Running => {
                        exited = Some(kind);
                        phase = Phase::Draining;
                        until = Instant::now() + DRAIN_GRACE;
                    }
                    Phase::Terminating => {
                        // Sweep up anything in the group that ignored SIGTERM. The leader has
                        // only just been reaped, so its process group id is still ours.
                        group.signal(Signal::SIGKILL);
                        phase = Phase::Killed;
                        until = Instant::now() + DRAIN_GRACE;
                    }
                    Phase::Draining | Phase::Killed => {}
                }
            }
            _ = &mut pipes, if !pipes_done => pipes_done = true,
            () = sleep_until(until) => match phase {
                Phase::Running if spec.kill_grace.is_zero() => {
                    group.signal(Signal::SIGKILL);
                    phase = Phase::Killed;
                    until = Instant::now() + DRAIN_GRACE;
                }
                Phase::Running => {
                    group.signal(Signal::SIGTERM);
                    phase = Phase::Terminating;
                    until = Instant::now() + spec.kill_grace;
                }
                Phase::Terminating => {
                    group.signal(Signal::SIGKILL);
                    phase = Phase::Killed;
                    until = Instant::now() + DRAIN_GRACE;
                }
                Phase::Draining | Phase::Killed => break,
            },
        }
    }

    match phase {
        Phase::Running | Phase::Draining => exited.unwrap_or(ExitKind::Exited(-1)),
        Phase::Terminating | Phase::Killed => ExitKind::TimedOut,
    }
}

/// The running child and its process group, which is killed if this is dropped before the
/// child has been reaped (when the future of [`run`] is dropped).
struct Group {
    child: Child,
    /// The process group id: the child's pid. `None` only if tokio had no pid for it.
    pgid: Option<Pid>,
    /// Whether the child has been reaped; after that its pid may be reused, so the group is no
    /// longer signalled.
    reaped: bool,
}

impl Group {
    fn new(child: Child) -> Self {
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        Group {
            child,
            pgid,
            reaped: false,
        }
    }

    /// Sends `signal` to the whole group. Failure means nobody is left in it.
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Runs before `child` is dropped (and handed to tokio's reaper), so the leader is still
        // unreaped and the group id still ours.
        if !self.reaped {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// Writes `input` to the child's standard input and closes it. Errors (a child that exits or
/// closes standard input without reading everything gives `EPIPE`) are ignored: the child's
/// exit status says what happened.
async fn feed(stdin: Option<ChildStdin>, input: Option<&[u8]>) {
    if let (Some(mut stdin), Some(input)) = (stdin, input) {
        let _ = stdin.write_all(input).await;
        let _ = stdin.shutdown().await;
    }
}

/// One output stream as read so far: the kept prefix and whether more was discarded.
///
/// Filled in place so that what was read survives the reading future being dropped.
struct Capture {
    kept: Vec<u8>,
    max: usize,
    truncated: bool,
    /// Whether the stream reached end-of-file (or failed).
    closed: bool,
}

impl Capture {
    fn new(max: usize) -> Self {
        Capture {
            kept: Vec::new(),
            max,
            truncated: false,
            closed: false,
        }
    }

    /// Reads `stream` to its end, keeping the first `max` bytes.
    async fn fill(&mut self, stream: Option<impl AsyncRead + Unpin>) {
        let Some(mut stream) = stream else {
            self.closed = true;
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    let room = self.max.saturating_sub(self.kept.len());
                    let keep = n.min(room);
                    self.kept.extend_from_slice(&buf[..keep]);
                    if keep < n {
                        self.truncated = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A read error on a pipe means there is nothing more to read.
                Err(_) => break,
            }
        }
        self.closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let table = [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::ZERO, "0ms"),
        ];
        for (d, want) in table {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }

    fn output(status: ExitKind, stdout: &str, stderr: &str) -> CommandOutput {
        CommandOutput {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration: Duration::from_millis(10),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn summaries() {
        let long = "x".repeat(300);
        let long_want = format!("exited with status 1: {}…", "x".repeat(200));
        let table = [
            (
                output(ExitKind::Exited(0), "ok\n", ""),
                "exited with status 0",
            ),
            (
                output(ExitKind::Exited(3), "", "warming up\nboom: disk full\n\n"),
                "exited with status 3: boom: disk full",
            ),
            (
                output(ExitKind::Exited(2), "usage: thing\n", "  \n"),
                "exited with status 2: usage: thing",
            ),
            (output(ExitKind::Exited(4), "", ""), "exited with status 4"),
            (
                output(ExitKind::Signalled(9), "", ""),
                "killed by signal 9 (SIGKILL)",
            ),
            (
                output(ExitKind::Signalled(6), "", "assertion failed\n"),
                "killed by signal 6 (SIGABRT): assertion failed",
            ),
            (
                output(ExitKind::TimedOut, "", "still going\n"),
                "killed after timeout of 5s",
            ),
            (output(ExitKind::Exited(1), "", &long), long_want.as_str()),
        ];
        for (out, want) in table {
            assert_eq!(out.summary(), want, "{out:?}");
        }
    }

    #[test]
    fn success_is_exit_zero_only() {
        assert!(output(ExitKind::Exited(0), "", "").success());
        assert!(!output(ExitKind::Exited(1), "", "").success());
        assert!(!output(ExitKind::TimedOut, "", "").success());
        assert!(!output(ExitKind::Signalled(15), "", "").success());
    }

    #[test]
    fn the_run_future_is_send() {
        // Agents return `Send` futures, so they must be able to hold one of these across awaits.
        fn assert_send<T: Send>(_: &T) {}
        let spec = CommandSpec::new("true");
        assert_send(&run(&spec));
    }

    #[test]
    fn builder_sets_fields() {
        let spec = CommandSpec::new("/bin/sh")
            .arg("-c")
            .args(["exit 0"])
            .stdin("hi")
            .env("A", "1")
            .clear_env()
            .cwd("/tmp")
            .timeout(Duration::from_secs(2))
            .max_output(10)
            .kill_grace(Duration::ZERO);
        assert_eq!(spec.program, PathBuf::from("/bin/sh"));
        assert_eq!(spec.args, ["-c", "exit 0"]);
        assert_eq!(spec.stdin.as_deref(), Some(&b"hi"[..]));
        assert_eq!(spec.env, [("A".to_string(), "1".to_string())]);
        assert!(spec.clear_env);
        assert_eq!(spec.cwd, Some(PathBuf::from("/tmp")));
        assert_eq!(spec.timeout, Duration::from_secs(2));
        assert_eq!(spec.max_output, 10);
        assert_eq!(spec.kill_grace, Duration::ZERO);
    }
}
