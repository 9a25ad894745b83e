//! `muster_agent::command::run` against real processes (`/bin/sh`, `cat`, `env`, `sleep`).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use muster_agent::command::{CommandError, CommandOutput, CommandSpec, ExitKind, run};

use crate::support::{gone, run_script, wait_for};

/// `/bin/sh -c script`.
fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("/bin/sh").args(["-c", script])
}

async fn ok(spec: &CommandSpec) -> CommandOutput {
    match run(spec).await {
        Ok(out) => out,
        Err(e) => panic!("{spec:?}: {e}"),
    }
}

/// The pids a script wrote (atomically, via `mv`) to `path`, once it exists.
async fn pids_in(path: &Path) -> Vec<i32> {
    assert!(
        wait_for(Duration::from_secs(3), || path.exists()).await,
        "the script never wrote {}",
        path.display()
    );
    let text = std::fs::read_to_string(path).expect("read pid file");
    text.split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect()
}

async fn assert_all_gone(pids: &[i32]) {
    for &pid in pids {
        assert!(
            wait_for(Duration::from_secs(2), || gone(pid)).await,
            "process {pid} is still running"
        );
    }
}

/// Kills `pid` if it is still there (cleanup for processes that escaped the group on purpose).
fn cleanup(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let table = [
        ("exit 0", ExitKind::Exited(0)),
        ("exit 3", ExitKind::Exited(3)),
        ("exit 255", ExitKind::Exited(255)),
        ("kill -KILL $$", ExitKind::Signalled(9)),
        ("kill -TERM $$", ExitKind::Signalled(15)),
    ];
    for (script, want) in table {
        let out = ok(&sh(script)).await;
        assert_eq!(out.status, want, "{script}");
        assert_eq!(out.success(), want == ExitKind::Exited(0), "{script}");
    }
}

#[tokio::test]
async fn captures_stdout_and_stderr_separately() {
    let out = ok(&sh("printf 'out\\n'; printf 'warn\\nboom\\n' >&2; exit 3")).await;
    assert_eq!(out.status, ExitKind::Exited(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "warn\nboom\n");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    assert_eq!(out.summary(), "exited with status 3: boom");
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let out = ok(&sh("printf 'a\\377b'")).await;
    assert_eq!(out.stdout, "a\u{FFFD}b");
}

#[tokio::test]
async fn stdin_is_written_and_closed() {
    let out = ok(&CommandSpec::new("cat").stdin("hello\nworld\n")).await;
    assert_eq!(out.status, ExitKind::Exited(0));
    assert_eq!(out.stdout, "hello\nworld\n");
}

#[tokio::test]
async fn without_stdin_the_child_reads_dev_null() {
    let out = ok(&CommandSpec::new("cat")).await;
    assert_eq!(out.status, ExitKind::Exited(0));
    assert_eq!(out.stdout, "");
}

#[tokio::test]
async fn stdin_the_child_never_reads_is_fine() {
    let out = ok(&sh("exit 0").stdin(vec![b'x'; 4 << 20])).await;
    assert_eq!(out.status, ExitKind::Exited(0));
}

#[tokio::test]
async fn lots_of_input_and_output_on_both_streams_does_not_deadlock() {
    let input = vec![b'i'; 2 << 20];
    let spec = sh("yes e | head -c 1000000 >&2; cat; yes e | head -c 1000000 >&2")
        .stdin(input)
        .max_output(4 << 20);
    let out = ok(&spec).await;
    assert_eq!(out.status, ExitKind::Exited(0));
    assert_eq!(out.stdout.len(), 2 << 20);
    assert_eq!(out.stderr.len(), 2_000_000);
    assert!(!out.stdout_truncated && !out.stderr_truncated);
}

#[tokio::test]
async fn big_output_is_truncated_and_drained() {
    let out = ok(&sh("yes | head -c 10000000").max_output(1000)).await;
    assert_eq!(
        out.status,
        ExitKind::Exited(0),
        "the writer was not blocked"
    );
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout.starts_with("y\ny\n"));
    assert!(out.stdout_truncated);
    assert!(!out.stderr_truncated);
}

#[tokio::test]
async fn output_exactly_at_the_limit_is_not_truncated() {
    let out = ok(&sh("printf abc; printf defg >&2").max_output(3)).await;
    assert_eq!(out.stdout, "abc");
    assert!(!out.stdout_truncated);
    assert_eq!(out.stderr, "def");
    assert!(out.stderr_truncated);
}

#[tokio::test]
async fn clear_env_leaves_only_path_and_the_given_variables() {
    let out = ok(&CommandSpec::new("env")
        .clear_env()
        .env("MUSTER_TEST", "1 2"))
    .await;
    assert_eq!(out.status, ExitKind::Exited(0));
    let vars: BTreeSet<&str> = out.stdout.lines().collect();
    let path = std::env::var("PATH").expect("tests run with a PATH");
    let want: BTreeSet<String> = [format!("PATH={path}"), "MUSTER_TEST=1 2".to_string()].into();
    assert_eq!(vars, want.iter().map(String::as_str).collect());
}

#[tokio::test]
async fn without_clear_env_the_daemons_environment_is_inherited() {
    let out = ok(&CommandSpec::new("env").env("MUSTER_TEST", "1")).await;
    let names: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(names.contains("MUSTER_TEST"));
    for (key, _) in std::env::vars() {
        assert!(names.contains(key.as_str()), "{key} was not inherited");
    }
}

#[tokio::test]
async fn runs_in_the_given_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ok(&sh("pwd -P").cwd(dir.path())).await;
    let want = dir.path().canonicalize().expect("canonicalize");
    assert_eq!(out.stdout.trim_end(), want.to_str().expect("utf-8 tempdir"));
}

#[tokio::test]
async fn timeout_kills_the_child() {
    let spec = CommandSpec::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(200));
    let out = ok(&spec).await;
    assert_eq!(out.status, ExitKind::TimedOut);
    assert!(out.duration >= Duration::from_millis(200));
    assert!(out.duration < Duration::from_secs(3), "{:?}", out.duration);
    assert_eq!(out.summary(), "killed after timeout of 200ms");
}

#[tokio::test]
async fn timeout_kills_the_whole_group_and_returns_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 30 & echo $$ $! > {p}.tmp && mv {p}.tmp {p}; sleep 30",
        p = pids.display()
    );
    let out = ok(&sh(&script).timeout(Duration::from_millis(300))).await;
    assert_eq!(out.status, ExitKind::TimedOut);
    assert!(out.duration < Duration::from_secs(3), "{:?}", out.duration);
    let pids = pids_in(&pids).await;
    assert_eq!(pids.len(), 2);
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn a_group_ignoring_sigterm_gets_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    // An ignored signal stays ignored across fork and exec, so both shells and sleep ignore it.
    let script = format!(
        "trap '' TERM; sleep 30 & echo $$ $! > {p}.tmp && mv {p}.tmp {p}; wait",
        p = pids.display()
    );
    let spec = sh(&script)
        .timeout(Duration::from_millis(200))
        .kill_grace(Duration::from_millis(300));
    let out = ok(&spec).await;
    assert_eq!(out.status, ExitKind::TimedOut);
    assert!(
        out.duration >= Duration::from_millis(500),
        "{:?}",
        out.duration
    );
    assert!(out.duration < Duration::from_secs(3), "{:?}", out.duration);
    assert_all_gone(&pids_in(&pids).await).await;
}

#[tokio::test]
async fn a_detached_grandchild_holding_the_pipes_does_not_make_run_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    // `setsid` leaves the process group, so nothing kills it; it keeps stdout and stderr open.
    let script = format!(
        "setsid sleep 30 & echo $! > {p}.tmp && mv {p}.tmp {p}; echo started",
        p = pid_file.display()
    );
    let out = ok(&sh(&script)).await;
    let pids = pids_in(&pid_file).await;
    for &pid in &pids {
        cleanup(pid);
    }
    assert_eq!(out.status, ExitKind::Exited(0));
    assert_eq!(out.stdout, "started\n");
    assert!(
        out.stdout_truncated,
        "the pipe was still open when run stopped reading"
    );
    assert!(out.duration < Duration::from_secs(3), "{:?}", out.duration);
}

#[tokio::test]
async fn a_detached_grandchild_does_not_make_a_timed_out_run_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let script = format!(
        "setsid sleep 30 & echo $! > {p}.tmp && mv {p}.tmp {p}; sleep 30",
        p = pid_file.display()
    );
    let spec = sh(&script)
        .timeout(Duration::from_millis(200))
        .kill_grace(Duration::from_millis(100));
    let out = ok(&spec).await;
    let pids = pids_in(&pid_file).await;
    for &pid in &pids {
        cleanup(pid);
    }
    assert_eq!(out.status, ExitKind::TimedOut);
    assert!(out.duration < Duration::from_secs(3), "{:?}", out.duration);
}

#[tokio::test]
async fn dropping_the_run_future_kills_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pids");
    let script = format!(
        "sleep 30 & echo $$ $! > {p}.tmp && mv {p}.tmp {p}; wait",
        p = pid_file.display()
    );
    let spec = sh(&script).timeout(Duration::from_secs(60));
    let pids = tokio::select! {
        out = run(&spec) => panic!("run finished: {out:?}"),
        pids = pids_in(&pid_file) => pids,
    };
    // The run future has been dropped.
    assert_eq!(pids.len(), 2);
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn a_missing_program_is_not_found() {
    let err = run(&CommandSpec::new("muster-no-such-program"))
        .await
        .expect_err("should not start");
    assert!(matches!(err, CommandError::NotFound { .. }), "{err:?}");
    assert_eq!(err.program(), "muster-no-such-program");
    let msg = err.to_string();
    assert!(msg.contains("`muster-no-such-program`"), "{msg}");
    assert!(msg.contains("PATH"), "{msg}");

    let err = run(&CommandSpec::new("/nonexistent/muster-prog"))
        .await
        .expect_err("should not start");
    assert!(matches!(err, CommandError::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/muster-prog"), "{msg}");
    assert!(msg.contains("no such file"), "{msg}");
}

#[tokio::test]
async fn a_script_with_a_missing_interpreter_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = run_script(&CommandSpec::new(&script))
        .await
        .expect_err("should not start");
    assert!(matches!(err, CommandError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("interpreter"), "{err}");
}

#[tokio::test]
async fn a_file_without_execute_permission_is_not_executable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = run_script(&CommandSpec::new(&script))
        .await
        .expect_err("should not start");
    assert!(matches!(err, CommandError::NotExecutable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&script.display().to_string()), "{msg}");
    assert!(msg.contains("chmod +x"), "{msg}");
}

#[tokio::test]
async fn a_missing_working_directory_is_reported_as_such() {
    let err = run(&sh("exit 0").cwd("/nonexistent/muster-dir"))
        .await
        .expect_err("should not start");
    assert!(matches!(err, CommandError::Cwd { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/muster-dir"), "{msg}");
    assert!(msg.contains("/bin/sh"), "{msg}");
}
