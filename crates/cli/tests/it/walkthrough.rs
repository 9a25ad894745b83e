//! The README's Security section, run as a new user would run it: every ```sh block of the
//! section, in order, with `bash`, in an empty directory, with the built `muster` on PATH. The
//! blocks before the last set up a signed fleet from nothing (an issuer, an operator, three
//! nodes); the last holds the commands that use it, one per line, and each must exit 0 with an
//! answer from every node. A walkthrough that only reads well is how the section came to end
//! with every discovery denied: this test is what keeps it working.
//!
//! What differs from a reader's terminal: the directory is empty but for a link to the
//! repository's `examples/` (the section starts at the repository's root); the broker is the
//! test's own (every `127.0.0.1:4222` in the section becomes its ephemeral address, so the
//! section must name the broker wherever it uses it); before the last block the test waits
//! until the three daemons answer a signed ping, as a reader would wait for them to start, and
//! gives broadcast discovery the longer quiet window the other tests use on a loaded machine (a
//! line appended to the section's `MUSTER_CONFIG`). The daemons the section starts in the
//! background are stopped and reaped when the script ends, and their process group is killed
//! if the test fails first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use muster_testkit::wait_for;

use crate::cli::{bin, journal};
use crate::fixture;

/// The nodes the section starts; each final command must answer from all of them.
const NODES: [&str; 3] = ["web1", "web2", "db1"];

/// The commands the section must end with (each answering from every node).
const FINAL: [&str; 4] = ["ping", "find", "facts", "rpc"];

/// The broker address the section uses, replaced by the test broker's.
const SECTION_BROKER: &str = "127.0.0.1:4222";

/// The README's `## Security` section: from its heading to the next `## ` heading.
fn security_section(readme: &str) -> Result<&str> {
    let start = readme
        .find("\n## Security\n")
        .context("README.md has no \"## Security\" section")?
        + 1;
    let rest = &readme[start + "## Security\n".len()..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    Ok(&rest[..end])
}

/// The bodies of the ```sh blocks of `section`, in order.
fn sh_blocks(section: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

/// The commands of a block: its lines without blank lines and comment lines, with `\`
/// continuations joined.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        out.push(std::mem::take(&mut pending));
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

/// The `muster` subcommand a command line runs (`muster ping …` → `ping`).
fn subcommand(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace();
    (words.next()? == "muster").then_some(())?;
    words.next()
}

/// The script: the setup blocks as they are; a wait until the nodes answer; then each final
/// command with its output and exit code kept in `out/N.{out,err,rc}`.
fn script(blocks: &[String], broker: &str) -> Result<(String, Vec<String>)> {
    let Some((last, setup)) = blocks.split_last() else {
        bail!("the Security section has no ```sh block");
    };
    ensure!(
        !setup.is_empty(),
        "the Security section has one ```sh block; the setup and the commands that use the \
         fleet are in separate blocks, the latter last"
    );
    let setup = setup.join("\n");
    ensure!(
        setup.contains(SECTION_BROKER),
        "the Security section's setup never names the broker ({SECTION_BROKER}), so the test \
         cannot give it its own"
    );
    let finals = commands(last);
    let mut text = String::from(
        "set -euo pipefail\n\
         # What the section started in the background stops with it, and is waited for.\n\
         trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n\n",
    );
    text.push_str(&setup.replace(SECTION_BROKER, broker));
    text.push_str(
        "\n# (the test) A daemon descheduled for a moment on a loaded test machine must not be\n\
         # left out of broadcast discovery: answers are given longer to go quiet.\n\
         if [ -n \"${MUSTER_CONFIG:-}\" ]; then\n\
         \x20 printf 'discovery_quiet = \"500ms\"\\n' >> \"$MUSTER_CONFIG\"\n\
         fi\n",
    );
    for (i, command) in finals.iter().enumerate() {
        let command = command.replace(SECTION_BROKER, broker);
        text.push_str(&format!(
            "if {{ {command}\n}} > \"$WALK_OUT/{i}.out\" 2> \"$WALK_OUT/{i}.err\"; \
             then echo 0 > \"$WALK_OUT/{i}.rc\"; else echo $? > \"$WALK_OUT/{i}.rc\"; fi\n"
        ));
    }
    Ok((text, finals))
}

/// The script's shell, in a process group of its own; the group (the section's daemons
/// included) is killed on drop.
struct Walk {
    child: Child,
}

impl Walk {
    fn pgid(&self) -> String {
        format!("-{}", self.child.id())
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &self.pgid()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Every `*.log` file under `dir`, for the failure message.
fn logs(dir: &Path) -> String {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "log") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
        .iter()
        .map(|f| {
            format!(
                "----- {} -----\n{}",
                f.strip_prefix(dir).unwrap_or(f).display(),
                muster_testkit::read(f)
            )
        })
        .collect()
}

on_both_brokers! {
    /// The Security section, followed literally, gives three signed nodes that answer
    /// `ping`, `find`, `facts` and `rpc`.
    fn the_security_section_gives_a_working_signed_fleet() -> Result<()> {
        let Some(nats) = fixture::broker()? else {
            return Ok(());
        };
        let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&readme_path)?;
        let blocks = sh_blocks(security_section(&readme)?);
        let address = nats.url().trim_start_matches("nats://").to_string();
        let (text, finals) = script(&blocks, &address)?;

        // The section starts where "Try it by hand" does, in the repository: only its
        // example files are there to read.
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
        std::os::unix::fs::symlink(repo.join("examples"), root.join("examples"))?;
        let out = root.join(".walk-out");
        std::fs::create_dir(&out)?;
        std::fs::create_dir(root.join(".home"))?;
        let script_path = out.join("section.sh");
        std::fs::write(&script_path, &text)?;
        let bin_dir = bin().parent().context("the binary has a directory")?;
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );

        let stdout = std::fs::File::create(out.join("stdout"))?;
        let stderr = std::fs::File::create(out.join("stderr"))?;
        let mut walk = Walk {
            child: {
                use std::os::unix::process::CommandExt;
                Command::new("bash")
                    .arg(&script_path)
                    .current_dir(root)
                    .env("PATH", path)
                    .env("HOME", root.join(".home"))
                    .env("XDG_CONFIG_HOME", root.join(".home/.config"))
                    .env("XDG_DATA_HOME", root.join(".home/.local/share"))
                    .env("MUSTER_JOURNAL", journal())
                    .env("WALK_OUT", &out)
                    .env("NO_COLOR", "1")
                    .env_remove("MUSTER_BROKER")
                    .env_remove("MUSTER_CONFIG")
                    .env_remove("RUST_LOG")
                    .stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(stderr)
                    .process_group(0)
                    .spawn()?
            },
        };
        let mut status = None;
        let waited = wait_for("the section's script to finish", Duration::from_secs(180), || {
            status = walk.child.try_wait().ok().flatten();
            status.is_some()
        });
        let report = || {
            format!(
                "----- the script -----\n{text}----- its stdout -----\n{}----- its stderr -----\n{}{}",
                muster_testkit::read(&out.join("stdout")),
                muster_testkit::read(&out.join("stderr")),
                logs(root)
            )
        };
        if let Err(e) = waited {
            bail!("{e}\n{}", report());
        }
        ensure!(
            status.is_some_and(|s| s.success()),
            "the Security section's commands failed ({status:?})\n{}",
            report()
        );
        drop(walk);

        let mut seen = Vec::new();
        for (i, command) in finals.iter().enumerate() {
            let read = |ext: &str| muster_testkit::read(&out.join(format!("{i}.{ext}")));
            let rc = read("rc");
            let shown = format!(
                "$ {command}\n  exit {}\n----- stdout -----\n{}----- stderr -----\n{}",
                rc.trim(),
                read("out"),
                read("err")
            );
            ensure!(rc.trim() == "0", "a command of the section failed:\n{shown}\n{}", report());
            if let Some(sub) = subcommand(command).filter(|s| FINAL.contains(s)) {
                let stdout = read("out");
                for node in NODES {
                    ensure!(
                        stdout.contains(node),
                        "{sub} did not answer from {node}:\n{shown}\n{}",
                        report()
                    );
                }
                seen.push(sub.to_string());
            }
        }
        for want in FINAL {
            ensure!(
                seen.iter().any(|s| s == want),
                "the Security section does not end with a signed `muster {want}` (its last \
                 block: {finals:?})"
            );
        }
        Ok(())
    }
}

#[test]
fn the_section_is_read_as_blocks_of_commands() {
    let readme = "# X\n\n## Security\n\ntext\n\n```sh\n# a comment\nmuster keygen \\\n    --out a.key\n\nmuster ping   # who\n```\n\n```toml\nx = 1\n```\n\n## Filters\n\n```sh\nnot this\n```\n";
    let blocks = sh_blocks(security_section(readme).unwrap());
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        commands(&blocks[0]),
        vec!["muster keygen     --out a.key", "muster ping   # who"]
    );
    assert_eq!(subcommand("muster ping   # who"), Some("ping"));
    assert_eq!(subcommand("cat x"), None);
}

/// The mode bits of a path.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `keygen --out DIR/FILE`, `issuer init --dir DIR` and `issuer issue --out DIR/FILE` make the
/// directories that are missing, readable by their owner only (they hold private keys, or sit
/// beside them); a directory that exists keeps its mode.
#[test]
fn key_and_credential_commands_make_missing_directories_0700() -> Result<()> {
    use crate::cli::muster;
    let dir = tempfile::tempdir()?;
    let at = |p: &str| dir.path().join(p);
    let arg = |p: &str| at(p).display().to_string();

    muster(&["issuer", "init", "--dir", &arg("issuer/offline")])
        .run()
        .code(0);
    assert_eq!(mode(&at("issuer")), 0o700);
    assert_eq!(mode(&at("issuer/offline")), 0o700);
    assert_eq!(mode(&at("issuer/offline/issuer.key")), 0o600);

    muster(&["keygen", "--out", &arg("alice/keys/alice.key")])
        .run()
        .code(0);
    assert_eq!(mode(&at("alice")), 0o700);
    assert_eq!(mode(&at("alice/keys")), 0o700);
    assert_eq!(mode(&at("alice/keys/alice.key")), 0o600);
    assert!(at("alice/keys/alice.pub").is_file());

    muster(&[
        "issuer",
        "issue",
        "--issuer-key",
        &arg("issuer/offline/issuer.key"),
        "--caller",
        "alice",
        "--pubkey",
        &arg("alice/keys/alice.pub"),
        "--out",
        &arg("creds/alice/alice.cred"),
    ])
    .run()
    .code(0);
    assert_eq!(mode(&at("creds")), 0o700);
    assert!(at("creds/alice/alice.cred").is_file());

    // An existing directory is left as it is: making a key in it is no reason to change it.
    std::fs::create_dir(at("shared"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(at("shared"), std::fs::Permissions::from_mode(0o755))?;
    }
    muster(&["keygen", "--out", &arg("shared/k.key")])
        .run()
        .code(0);
    assert_eq!(mode(&at("shared")), 0o755);

    // A path that cannot be a directory is still an error that names it.
    std::fs::write(at("file"), "x")?;
    muster(&["keygen", "--out", &arg("file/k.key")])
        .run()
        .code(2)
        .stderr_has(&arg("file"));
    Ok(())
}
