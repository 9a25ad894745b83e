//! The `package` agent: Choria's package agent's actions, inputs and outputs (a superset of them),
//! done with the node's own package tools.
//!
//! Two tools per backend ([`PackageBackend`]), each replaceable in the configuration
//! ([`PackageConfig::query`], [`PackageConfig::manager`]); `P` is the package, `V` the version:
//!
//! | action | `apt` | `yum`, `dnf` (`M` is `yum` or `dnf`) |
//! |---|---|---|
//! | `status` | `dpkg-query -W -f=${Status}\t${Version}\t${Architecture}\n P` | `rpm -q --qf %\|EPOCH?{%{EPOCH}}:{0}\|\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n P` |
//! | `install` | `apt-get install -y P` (`P=V`) | `M install -y P` (`P-V`) |
//! | `update` | `apt-get install -y --only-upgrade P` | `M update -y P` |
//! | `uninstall` | `apt-get remove -y P` | `M remove -y P` |
//! | `purge` | `apt-get purge -y P` | `M remove -y P` |
//! | `count`, `md5` | `dpkg-query --list`: its `ii` lines | `rpm -qa` |
//! | `search` | — | `M -q list P` |
//! | `apt_checkupdates` | `apt-get --simulate dist-upgrade` | — |
//! | `apt_update` | `apt-get update`, then `apt_checkupdates` | — |
//! | `yum_checkupdates` | — | `M -q check-update` (exit 100: updates available) |
//! | `yum_clean` | — | `M clean MODE` (default `all`) |
//! | `checkupdates` | `apt_checkupdates` | `yum_checkupdates` |
//! | `refresh` | `apt_update` | `M clean metadata`, then `yum_checkupdates` |
//!
//! An action marked — fails on that backend, saying which backend it needs. `count` and `md5`
//! work as Choria's: the count of installed packages, and the MD5 digest of `rpm -qa`'s output,
//! or of `dpkg-query --list`'s lines starting `ii` joined by newlines.
//!
//! `apt-get` runs with `DEBIAN_FRONTEND=noninteractive`; every command runs with `LC_ALL=C`, so
//! the tools' messages can be recognised. After a change the agent queries again and reports the
//! new state. A failing command is `Aborted` with its summary. All the commands of one action
//! share a time budget ([`Package::command_timeout`], by default the DDL's timeout), so a hung
//! package manager is killed and reported before the dispatcher gives up on the action.

use std::path::PathBuf;
use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::command::{self, CommandOutput, CommandSpec, ExitKind};
use crate::config::{PackageBackend, PackageConfig};
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `package` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/package.json");

/// A command is not started with less time left than this.
const MIN_COMMAND_TIME: Duration = Duration::from_millis(50);

/// `dpkg-query`'s format: dpkg-query itself turns `\t` and `\n` into a tab and a newline.
const DPKG_FORMAT: &str = r"-f=${Status}\t${Version}\t${Architecture}\n";

/// `rpm`'s query format: rpm itself turns `\t` and `\n` into a tab and a newline; an unset
/// epoch is `0`.
const RPM_FORMAT: &str = r"%|EPOCH?{%{EPOCH}}:{0}|\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n";

/// The most of a command's output a reply carries (the end of it, which says how it went).
const MAX_REPLY_OUTPUT: usize = 64 * 1024;

/// The most output read from a command that lists every package.
const MAX_LIST_OUTPUT: usize = 32 * 1024 * 1024;

/// The query tool `config` names, or its backend's: `dpkg-query` for apt, `rpm` otherwise.
pub fn query_program(config: &PackageConfig) -> PathBuf {
    config
        .query
        .clone()
        .unwrap_or_else(|| match config.backend {
            PackageBackend::Apt => PathBuf::from("dpkg-query"),
            PackageBackend::Yum | PackageBackend::Dnf => PathBuf::from("rpm"),
        })
}

/// The package manager `config` names, or its backend's: `apt-get`, `yum` or `dnf`.
pub fn manager_program(config: &PackageConfig) -> PathBuf {
    config
        .manager
        .clone()
        .unwrap_or_else(|| match config.backend {
            PackageBackend::Apt => PathBuf::from("apt-get"),
            PackageBackend::Yum => PathBuf::from("yum"),
            PackageBackend::Dnf => PathBuf::from("dnf"),
        })
}

/// The backend's name, as the `provider` and `package_manager` outputs report it.
fn backend_name(backend: PackageBackend) -> &'static str {
    match backend {
        PackageBackend::Apt => "apt",
        PackageBackend::Yum => "yum",
        PackageBackend::Dnf => "dnf",
    }
}

/// The `package` agent.
#[derive(Debug, Clone)]
pub struct Package {
    ddl: Ddl,
    config: PackageConfig,
    command_timeout: Duration,
}

/// A command that could not run to a usable end: why, and the outputs to reply with anyway.
struct Failed {
    why: String,
    data: Map<String, Value>,
}

impl Package {
    /// The agent with its shipped DDL and this configuration.
    pub fn new(config: &PackageConfig) -> Result<Self, DdlError> {
        let ddl = Ddl::parse(DDL)?;
        let command_timeout = Duration::from_secs(ddl.metadata.timeout);
        Ok(Package {
            ddl,
            config: config.clone(),
            command_timeout,
        })
    }

    /// The same agent with a different time budget for the commands of one action (tests use a
    /// short one). A budget longer than the DDL's timeout is cut short by the dispatcher.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long the commands of one action may take together: by default the DDL's timeout.
    /// A command still running then is killed, which takes at most
    /// [`command::DEFAULT_KILL_GRACE`] and [`command::DRAIN_GRACE`] more — less than the
    /// [`DISPATCH_GRACE`](crate::DISPATCH_GRACE) the dispatcher allows past the timeout — so
    /// the reply says which command hung.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    fn apt(&self) -> bool {
        self.config.backend == PackageBackend::Apt
    }

    fn provider(&self) -> &'static str {
        backend_name(self.config.backend)
    }

    /// The query tool with `args`, messages in English.
    fn query_spec<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> CommandSpec {
        CommandSpec::new(query_program(&self.config))
            .args(args)
            .env("LC_ALL", "C")
    }

    /// The package manager with `args`, messages in English, apt-get non-interactive.
    fn manager_with<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> CommandSpec {
        let spec = CommandSpec::new(manager_program(&self.config))
            .args(args)
            .env("LC_ALL", "C");
        if self.apt() {
            spec.env("DEBIAN_FRONTEND", "noninteractive")
        } else {
            spec
        }
    }

    /// The manager's command line for a changing action on `package` (`version` for install).
    fn manager_spec(&self, action: &str, package: &str, version: Option<&str>) -> CommandSpec {
        let apt = self.apt();
        let args: &[&str] = match action {
            "install" => &["install", "-y"],
            "update" if apt => &["install", "-y", "--only-upgrade"],
            "update" => &["update", "-y"],
            "purge" if apt => &["purge", "-y"],
            _ => &["remove", "-y"],
        };
        let target = match version {
            Some(v) if apt => format!("{package}={v}"),
            Some(v) => format!("{package}-{v}"),
            None => package.to_string(),
        };
        self.manager_with(args.iter().copied()).arg(target)
    }

    /// Runs `spec` with what is left of the budget. `Err` when it could not start or was
    /// killed; a non-zero exit is for the caller to judge.
    async fn exec(&self, spec: CommandSpec, deadline: Instant) -> Result<CommandOutput, String> {
        let Some(left) = time_left(deadline) else {
            return Err(format!(
                "its time budget of {}ms is too short to run {}",
                self.command_timeout.as_millis(),
                spec.program.display()
            ));
        };
        let out = command::run(&spec.timeout(left))
            .await
            .map_err(|e| e.to_string())?;
        match out.status {
            ExitKind::Exited(_) => Ok(out),
            _ => Err(out.summary()),
        }
    }

    async fn run(&self, action: &str, data: &Value) -> ActionResult {
        let deadline = Instant::now() + self.command_timeout;
        let text = |key: &str| data.get(key).and_then(Value::as_str);
        match action {
            "status" | "install" | "update" | "uninstall" | "purge" => {
                let Some(package) = text("package") else {
                    return missing_package();
                };
                let version = if action == "install" {
                    text("version").filter(|v| !v.is_empty())
                } else {
                    None
                };
                self.package_action(action, package, version, deadline)
                    .await
            }
            "search" => match text("package") {
                Some(package) => self.search(package, deadline).await,
                None => missing_package(),
            },
            "count" | "md5" => self.listing(action, deadline).await,
            "checkupdates" if self.apt() => self.apt_checkupdates(action, deadline).await,
            "checkupdates" => self.yum_checkupdates(action, deadline).await,
            "apt_checkupdates" => match self.needs(action, true) {
                Some(refused) => refused,
                None => self.apt_checkupdates(action, deadline).await,
            },
            "yum_checkupdates" => match self.needs(action, false) {
                Some(refused) => refused,
                None => self.yum_checkupdates(action, deadline).await,
            },
            "apt_update" => match self.needs(action, true) {
                Some(refused) => refused,
                None => self.apt_update(action, deadline).await,
            },
            "refresh" if self.apt() => self.apt_update(action, deadline).await,
            "refresh" => self.yum_refresh(deadline).await,
            "yum_clean" => match self.needs(action, false) {
                Some(refused) => refused,
                None => {
                    let mode = text("mode").filter(|m| !m.is_empty()).unwrap_or("all");
                    self.yum_clean(mode, deadline).await
                }
            },
            _ => ActionResult::fail(
                StatusCode::UnknownAction,
                format!(
                    "package has no action {action:?}; its actions are {}",
                    self.ddl.action_names().join(", ")
                ),
            ),
        }
    }

    /// A refusal when `action` is for the other family of backends (`apt` or yum/dnf).
    fn needs(&self, action: &str, apt: bool) -> Option<ActionResult> {
        if self.apt() == apt {
            return None;
        }
        let wanted = if apt { "apt" } else { "yum or dnf" };
        Some(ActionResult::fail(
            StatusCode::Aborted,
            format!(
                "{action} needs the {wanted} package backend, and this node's is {} (set \
                 [agents.package] backend in server.toml)",
                self.provider()
            ),
        ))
    }

    async fn package_action(
        &self,
        action: &str,
        package: &str,
        version: Option<&str>,
        deadline: Instant,
    ) -> ActionResult {
        let mut output = None;
        if action != "status" {
            let spec = self.manager_spec(action, package, version);
            let shown = format!("{} {}", spec.program.display(), spec.args.join(" "));
            let failure = match self.exec(spec, deadline).await {
                Err(why) => Some(why),
                Ok(out) if out.success() => {
                    output = Some(reply_output(&out));
                    None
                }
                Ok(out) => {
                    output = Some(reply_output(&out));
                    Some(out.summary())
                }
            };
            if let Some(why) = failure {
                let mut data = match self.query(package, deadline).await {
                    Ok(installed) => installed.data(package, self.provider()),
                    Err(_) => json!({ "name": package }),
                };
                if let (Some(map), Some(output)) = (data.as_object_mut(), output) {
                    map.insert("output".into(), json!(output));
                }
                return ActionResult::fail_with(
                    StatusCode::Aborted,
                    format!(
                        "{action} {package} failed: {why}; run `{shown}` on the node to see why"
                    ),
                    data,
                );
            }
        }

        match self.query(package, deadline).await {
            Ok(installed) => {
                let mut data = installed.data(package, self.provider());
                if let (Some(map), Some(output)) = (data.as_object_mut(), output) {
                    map.insert("output".into(), json!(output));
                }
                ActionResult::ok(data)
            }
            Err(why) if action == "status" => ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "cannot read the state of package {package}: {why}; check that the node \
                     uses the configured backend ({:?}) and that {} works there",
                    self.config.backend,
                    query_program(&self.config).display()
                ),
            ),
            Err(why) => ActionResult::fail_with(
                StatusCode::Aborted,
                format!(
                    "{action} {package} succeeded, but its state cannot be read: {why}; ask \
                     again with the status action"
                ),
                json!({ "name": package, "output": output }),
            ),
        }
    }

    /// The installed versions of `package`; the error says why they could not be read.
    async fn query(&self, package: &str, deadline: Instant) -> Result<Installed, String> {
        let args: &[&str] = if self.apt() {
            &["-W", DPKG_FORMAT]
        } else {
            &["-q", "--qf", RPM_FORMAT]
        };
        let spec = self.query_spec(args.iter().copied()).arg(package);
        let out = self.exec(spec, deadline).await?;
        let installed = if self.apt() {
            Installed::from_dpkg(&out)
        } else {
            Installed::from_rpm(&out)
        };
        installed.ok_or_else(|| out.summary())
    }

    /// Runs `spec` and insists that it exit 0 (or with one of `also`); the failure carries its
    /// output and exit code.
    async fn checked(
        &self,
        spec: CommandSpec,
        also: &[i32],
        deadline: Instant,
    ) -> Result<CommandOutput, Failed> {
        let shown = format!("{} {}", spec.program.display(), spec.args.join(" "));
        match self.exec(spec, deadline).await {
            Err(why) => Err(Failed {
                why: format!("{shown} failed: {why}"),
                data: Map::new(),
            }),
            Ok(out) if out.success() || also.iter().any(|c| exit_code(&out) == Some(*c)) => Ok(out),
            Ok(out) => Err(Failed {
                why: format!("{shown} failed: {}", out.summary()),
                data: command_data(&out),
            }),
        }
    }

    /// `count` and `md5`: the installed packages, as Choria's agent counts and digests them.
    async fn listing(&self, action: &str, deadline: Instant) -> ActionResult {
        let args: &[&str] = if self.apt() { &["--list"] } else { &["-qa"] };
        let spec = self
            .query_spec(args.iter().copied())
            .max_output(MAX_LIST_OUTPUT);
        let out = match self.checked(spec, &[], deadline).await {
            Ok(out) => out,
            Err(failed) => return aborted(action, failed),
        };
        if out.stdout_truncated {
            return ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "{action}: the package list is longer than {MAX_LIST_OUTPUT} bytes, so it \
                     was not read whole"
                ),
            );
        }
        let (count, digest) = if self.apt() {
            let installed: Vec<&str> = out
                .stdout
                .split('\n')
                .filter(|line| line.starts_with("ii"))
                .collect();
            let digest = hex_md5(installed.join("\n").as_bytes());
            (installed.len(), digest)
        } else {
            let count = out.stdout.split('\n').filter(|l| !l.is_empty()).count();
            (count, hex_md5(out.stdout.as_bytes()))
        };
        let mut data = Map::new();
        data.insert("exitcode".into(), json!(exit_code(&out)));
        if action == "count" {
            data.insert("output".into(), json!(count.to_string()));
            data.insert("count".into(), json!(count));
        } else {
            data.insert("output".into(), json!(digest));
        }
        ActionResult::ok(Value::Object(data))
    }

    /// `apt-get --simulate dist-upgrade`: the packages an upgrade would change.
    async fn apt_checkupdates(&self, action: &str, deadline: Instant) -> ActionResult {
        let spec = self.manager_with(["--simulate", "dist-upgrade"]);
        match self.checked(spec, &[], deadline).await {
            Ok(out) => {
                let outdated: Vec<Value> = out.stdout.lines().filter_map(apt_outdated).collect();
                ActionResult::ok(self.updates_data(&out, outdated))
            }
            Err(failed) => aborted(action, failed),
        }
    }

    /// `M -q check-update`: exit 0 when nothing is outdated, 100 when something is.
    async fn yum_checkupdates(&self, action: &str, deadline: Instant) -> ActionResult {
        let spec = self.manager_with(["-q", "check-update"]);
        match self.checked(spec, &[100], deadline).await {
            Ok(out) => {
                let outdated = yum_rows(&out.stdout, true)
                    .into_iter()
                    .map(|[package, version, repo]| {
                        json!({"package": package, "version": version, "repo": repo})
                    })
                    .collect();
                ActionResult::ok(self.updates_data(&out, outdated))
            }
            Err(failed) => aborted(action, failed),
        }
    }

    fn updates_data(&self, out: &CommandOutput, outdated: Vec<Value>) -> Value {
        let mut data = command_data(out);
        data.insert("outdated_packages".into(), Value::Array(outdated));
        data.insert("package_manager".into(), json!(self.provider()));
        Value::Object(data)
    }

    /// `apt-get update`, then what is outdated (as Choria's `apt_update` and `refresh`).
    async fn apt_update(&self, action: &str, deadline: Instant) -> ActionResult {
        let spec = self.manager_with(["update"]);
        if let Err(failed) = self.checked(spec, &[], deadline).await {
            return aborted(action, failed);
        }
        self.apt_checkupdates(action, deadline).await
    }

    /// `M clean metadata`, then what is outdated (as Choria's `refresh` on yum).
    async fn yum_refresh(&self, deadline: Instant) -> ActionResult {
        let spec = self.manager_with(["clean", "metadata"]);
        if let Err(failed) = self.checked(spec, &[], deadline).await {
            return aborted("refresh", failed);
        }
        self.yum_checkupdates("refresh", deadline).await
    }

    async fn yum_clean(&self, mode: &str, deadline: Instant) -> ActionResult {
        // `mode` is one of the DDL's list: dispatch validated it.
        let spec = self.manager_with(["clean", mode]);
        match self.checked(spec, &[], deadline).await {
            Ok(out) => ActionResult::ok(Value::Object(command_data(&out))),
            Err(failed) => aborted("yum_clean", failed),
        }
    }

    /// `M -q list P`: the packages the repositories and the node have by that name or glob.
    async fn search(&self, package: &str, deadline: Instant) -> ActionResult {
        if let Some(refused) = self.needs("search", false) {
            return refused;
        }
        let spec = self.manager_with(["-q", "list", package]);
        let out = match self.exec(spec.clone(), deadline).await {
            Err(why) => {
                return ActionResult::fail(
                    StatusCode::Aborted,
                    format!("search {package}: {} failed: {why}", spec.program.display()),
                );
            }
            Ok(out) => out,
        };
        let none_found = exit_code(&out) == Some(1) && mentions(&out, "No matching Packages");
        if !out.success() && !none_found {
            return aborted(
                "search",
                Failed {
                    why: format!(
                        "{} {} failed: {}",
                        spec.program.display(),
                        spec.args.join(" "),
                        out.summary()
                    ),
                    data: Map::new(),
                },
            );
        }
        let mut found: Vec<Value> = Vec::new();
        for [name_arch, full, repo] in yum_rows(&out.stdout, false) {
            let (name, arch) = name_arch
                .rsplit_once('.')
                .unwrap_or((name_arch.as_str(), ""));
            let (epoch, rest) = match full.split_once(':') {
                Some((e, rest)) if e.chars().all(|c| c.is_ascii_digit()) => (e, rest),
                _ => ("0", full.as_str()),
            };
            let (version, release) = rest.rsplit_once('-').unwrap_or((rest, ""));
            let entry = json!({
                "name": name,
                "version": version,
                "release": release,
                "epoch": epoch,
                "arch": arch,
                "provider": self.provider(),
                "ensure": rest,
                "repo": repo.trim_start_matches('@'),
            });
            let same = |e: &Value| {
                e["name"] == entry["name"]
                    && e["arch"] == entry["arch"]
                    && e["ensure"] == entry["ensure"]
                    && e["epoch"] == entry["epoch"]
            };
            if !found.iter().any(same) {
                found.push(entry);
            }
        }
        ActionResult::ok(json!({
            "package_count": format!("{} packages found", found.len()),
            "count": found.len(),
            "available_packages": found,
        }))
    }
}

fn missing_package() -> ActionResult {
    ActionResult::fail(
        StatusCode::MissingData,
        "missing input package: give the package's name, e.g. package=openssl",
    )
}

/// The failure of a command an action needed, with the outputs it has.
fn aborted(action: &str, failed: Failed) -> ActionResult {
    ActionResult::fail_with(
        StatusCode::Aborted,
        format!("{action}: {}", failed.why),
        Value::Object(failed.data),
    )
}

/// The exit code, when the command exited by itself.
fn exit_code(out: &CommandOutput) -> Option<i32> {
    match out.status {
        ExitKind::Exited(code) => Some(code),
        _ => None,
    }
}

/// `output` (the end of standard output) and `exitcode`.
fn command_data(out: &CommandOutput) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("output".into(), json!(reply_output(out)));
    data.insert("exitcode".into(), json!(exit_code(out)));
    data
}

/// A command's standard output for a reply: its last [`MAX_REPLY_OUTPUT`] bytes, at most.
fn reply_output(out: &CommandOutput) -> String {
    let text = out.stdout.as_str();
    if text.len() <= MAX_REPLY_OUTPUT {
        return text.to_string();
    }
    let mut start = text.len() - MAX_REPLY_OUTPUT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// One line of `apt-get --simulate dist-upgrade`, read as Choria's agent reads it:
/// `Inst NAME [OLD] (NEW REPO…)` is an outdated package; packages new to the node (no `[OLD]`)
/// and every other line are not.
fn apt_outdated(line: &str) -> Option<Value> {
    let rest = line.strip_prefix("Inst ")?;
    let bracket = rest.find(" [")?;
    let name = rest[..bracket].trim();
    let after = &rest[bracket + 2..];
    let close = after.find("] (")?;
    if name.is_empty() || close == 0 {
        return None;
    }
    let inner = &after[close + 3..];
    let paren = &inner[..inner.find(')')?];
    let (version, repo) = paren.split_once(char::is_whitespace)?;
    if version.is_empty() || repo.trim().is_empty() {
        return None;
    }
    Some(json!({"package": name, "version": version.trim(), "repo": repo.trim()}))
}

/// The `NAME.ARCH VERSION REPO` rows of yum's and dnf's listings, a name wrapped onto a line of
/// its own joined to the rest on the next. With `stop_at_obsoletes`, the rows end where
/// `Obsoleting Packages` begins (`check-update`).
fn yum_rows(text: &str, stop_at_obsoletes: bool) -> Vec<[String; 3]> {
    let mut rows = Vec::new();
    let mut carry: Option<String> = None;
    for line in text.lines() {
        let lower = line.trim().to_ascii_lowercase();
        if stop_at_obsoletes && lower.starts_with("obsoleting packages") {
            break;
        }
        let mut words: Vec<String> = carry.take().into_iter().collect();
        words.extend(line.split_whitespace().map(str::to_string));
        match <[String; 3]>::try_from(words) {
            Ok(row) => rows.push(row),
            Err(words) if words.len() == 1 && line.starts_with(|c: char| !c.is_whitespace()) => {
                carry = words.into_iter().next();
            }
            Err(_) => {}
        }
    }
    rows
}

/// Whether standard output or standard error contains `text`.
fn mentions(out: &CommandOutput, text: &str) -> bool {
    out.stdout.contains(text) || out.stderr.contains(text)
}

/// The time left before `deadline`, if it is enough to start a command.
fn time_left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (left >= MIN_COMMAND_TIME).then_some(left)
}

/// One installed instance of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The full version: Debian's `[epoch:]upstream[-revision]`, rpm's `VERSION-RELEASE`.
    ensure: String,
    epoch: Option<String>,
    version: Option<String>,
    release: Option<String>,
    arch: Option<String>,
}

impl Entry {
    /// A Debian version split into epoch (`0` when it has none), upstream version and
    /// revision (when it has one).
    fn debian(full: &str, arch: Option<&str>) -> Entry {
        let (epoch, rest) = match full.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()) => (e, rest),
            _ => ("0", full),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v, Some(r.to_string())),
            None => (rest, None),
        };
        Entry {
            ensure: full.to_string(),
            epoch: Some(epoch.to_string()),
            version: Some(version.to_string()),
            release,
            arch: arch.filter(|a| !a.is_empty()).map(str::to_string),
        }
    }

    /// Only the full version (a query tool that prints only that).
    fn bare(ensure: &str) -> Entry {
        Entry {
            ensure: ensure.to_string(),
            epoch: None,
            version: None,
            release: None,
            arch: None,
        }
    }
}

/// Reads one field of an [`Entry`].
type Field = fn(&Entry) -> Option<&str>;

/// The installed instances of a package: none when it is absent, several for packages installed
/// for several architectures or in several versions (kernels).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Installed(Vec<Entry>);

impl Installed {
    /// From `dpkg-query -W -f='${Status}\t${Version}\t${Architecture}\n'`: lines whose status
    /// is `install ok installed` (`deinstall ok config-files` and the like are not installed);
    /// a line without the architecture is read too. An unknown package is exit status 1 with
    /// "no packages found matching". `None` when the output means something else: the query
    /// failed.
    fn from_dpkg(out: &CommandOutput) -> Option<Installed> {
        match out.status {
            ExitKind::Exited(0) => {}
            ExitKind::Exited(1) if mentions(out, "no packages found matching") => {
                return Some(Installed(Vec::new()));
            }
            _ => return None,
        }
        let mut entries = Vec::new();
        for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = line.split('\t');
            let status = fields.next()?;
            let version = fields.next()?.trim();
            let arch = fields.next().map(str::trim);
            if status.split_whitespace().eq(["install", "ok", "installed"]) && !version.is_empty() {
                push_unique(&mut entries, Entry::debian(version, arch));
            }
        }
        Some(Installed(entries))
    }

    /// From `rpm -q --qf '%|EPOCH?{%{EPOCH}}:{0}|\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n'`: one
    /// instance per line (a line that is only `VERSION-RELEASE` is read too). An unknown package
    /// is exit status 1 with "package X is not installed". `None` when the query failed.
    fn from_rpm(out: &CommandOutput) -> Option<Installed> {
        match out.status {
            ExitKind::Exited(0) => {}
            ExitKind::Exited(1) if mentions(out, "is not installed") => {
                return Some(Installed(Vec::new()));
            }
            _ => return None,
        }
        let mut entries = Vec::new();
        for line in out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            let entry = match fields.as_slice() {
                [epoch, version, release, arch] => Entry {
                    ensure: format!("{version}-{release}"),
                    epoch: Some(epoch.to_string()),
                    version: Some(version.to_string()),
                    release: Some(release.to_string()),
                    arch: Some(arch.to_string()),
                },
                [ensure] => Entry::bare(ensure),
                _ => return None,
            };
            push_unique(&mut entries, entry);
        }
        if entries.is_empty() {
            return None;
        }
        Some(Installed(entries))
    }

    /// `ensure`: the installed versions (several joined with `, `), or `absent`.
    fn ensure(&self) -> String {
        if self.0.is_empty() {
            "absent".to_string()
        } else {
            joined(self.0.iter().map(|e| Some(e.ensure.as_str()))).unwrap_or_default()
        }
    }

    /// The action's outputs: `name`, `ensure`, `installed`, `provider`, and for an installed
    /// package what its query told of `epoch`, `version`, `release` and `arch` (each field's
    /// distinct values joined with `, `).
    fn data(&self, package: &str, provider: &str) -> Value {
        let mut data = Map::new();
        data.insert("name".into(), json!(package));
        data.insert("ensure".into(), json!(self.ensure()));
        data.insert("installed".into(), json!(!self.0.is_empty()));
        data.insert("provider".into(), json!(provider));
        let fields: [(&str, Field); 4] = [
            ("epoch", |e| e.epoch.as_deref()),
            ("version", |e| e.version.as_deref()),
            ("release", |e| e.release.as_deref()),
            ("arch", |e| e.arch.as_deref()),
        ];
        for (key, field) in fields {
            if let Some(value) = joined(self.0.iter().map(field)) {
                data.insert(key.into(), json!(value));
            }
        }
        Value::Object(data)
    }
}

/// The distinct values, in order, joined with `, `; `None` when there are none.
fn joined<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let mut distinct: Vec<&str> = Vec::new();
    for value in values.flatten() {
        if !distinct.contains(&value) {
            distinct.push(value);
        }
    }
    (!distinct.is_empty()).then(|| distinct.join(", "))
}

fn push_unique(entries: &mut Vec<Entry>, entry: Entry) {
    if !entry.ensure.is_empty() && !entries.contains(&entry) {
        entries.push(entry);
    }
}

impl Agent for Package {
    fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    fn call<'a>(
        &'a self,
        _node: &'a NodeContext,
        action: &'a str,
        data: &'a Value,
    ) -> ActionFuture<'a> {
        Box::pin(self.run(action, data))
    }
}

/// The MD5 digest of `bytes` in lower-case hex, as Choria's agent reports its `md5`.
fn hex_md5(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(status: ExitKind, stdout: &str, stderr: &str) -> CommandOutput {
        CommandOutput {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration: Duration::from_millis(3),
            timeout: Duration::from_secs(5),
        }
    }

    const OK: ExitKind = ExitKind::Exited(0);
    const ONE: ExitKind = ExitKind::Exited(1);

    #[test]
    fn dpkg_query_output() {
        let table = [
            (
                out(OK, "install ok installed\t3.0.11-1~deb12u2\tamd64\n", ""),
                Some("3.0.11-1~deb12u2"),
            ),
            // Without the architecture (an older stand-in's format).
            (
                out(OK, "install ok installed\t3.0.11-1~deb12u2\n", ""),
                Some("3.0.11-1~deb12u2"),
            ),
            // Installed for two architectures, same version: reported once.
            (
                out(
                    OK,
                    "install ok installed\t2.36-9\tamd64\ninstall ok installed\t2.36-9\ti386\n",
                    "",
                ),
                Some("2.36-9"),
            ),
            (
                out(OK, "deinstall ok config-files\t1.2-1\tamd64\n", ""),
                Some("absent"),
            ),
            (
                out(OK, "unknown ok not-installed\t\t\n", ""),
                Some("absent"),
            ),
            (
                out(ONE, "", "dpkg-query: no packages found matching nope\n"),
                Some("absent"),
            ),
            (out(ONE, "", "dpkg-query: some other trouble\n"), None),
            (out(ExitKind::Exited(2), "", "dpkg-query: error\n"), None),
            (out(ExitKind::TimedOut, "", ""), None),
            (out(OK, "garbage without a tab\n", ""), None),
        ];
        for (o, want) in table {
            let got = Installed::from_dpkg(&o).map(|i| i.ensure());
            assert_eq!(got.as_deref(), want, "{o:?}");
        }
    }

    #[test]
    fn rpm_output() {
        let table = [
            (
                out(OK, "0\t3.0.7\t27.el9\tx86_64\n", ""),
                Some("3.0.7-27.el9"),
            ),
            (out(OK, "3.0.7-27.el9\n", ""), Some("3.0.7-27.el9")),
            (
                out(
                    OK,
                    "0\t5.14.0\t1.el9\tx86_64\n0\t5.14.0\t2.el9\tx86_64\n",
                    "",
                ),
                Some("5.14.0-1.el9, 5.14.0-2.el9"),
            ),
            (
                out(ONE, "package nope is not installed\n", ""),
                Some("absent"),
            ),
            (out(ONE, "", "error: rpmdb: damaged\n"), None),
            (out(OK, "", ""), None),
            (out(OK, "a\tb\n", ""), None),
            (out(ExitKind::Signalled(9), "", ""), None),
        ];
        for (o, want) in table {
            let got = Installed::from_rpm(&o).map(|i| i.ensure());
            assert_eq!(got.as_deref(), want, "{o:?}");
        }
    }

    #[test]
    fn versions_are_split_as_choria_reports_them() {
        let dpkg = out(
            OK,
            "install ok installed\t1:2.3.4-5ubuntu1\tamd64\ninstall ok installed\t1:2.3.4-5ubuntu1\ti386\n",
            "",
        );
        assert_eq!(
            Installed::from_dpkg(&dpkg).unwrap().data("x", "apt"),
            json!({"name": "x", "ensure": "1:2.3.4-5ubuntu1", "installed": true,
                   "provider": "apt", "epoch": "1", "version": "2.3.4",
                   "release": "5ubuntu1", "arch": "amd64, i386"})
        );
        // A native Debian package has no revision.
        let native = out(OK, "install ok installed\t2.9\tall\n", "");
        assert_eq!(
            Installed::from_dpkg(&native).unwrap().data("x", "apt"),
            json!({"name": "x", "ensure": "2.9", "installed": true, "provider": "apt",
                   "epoch": "0", "version": "2.9", "arch": "all"})
        );
        let rpm = out(OK, "2\t1.0\t3.el9\tnoarch\n", "");
        assert_eq!(
            Installed::from_rpm(&rpm).unwrap().data("x", "dnf"),
            json!({"name": "x", "ensure": "1.0-3.el9", "installed": true, "provider": "dnf",
                   "epoch": "2", "version": "1.0", "release": "3.el9", "arch": "noarch"})
        );
        assert_eq!(
            Installed(vec![]).data("zsh", "yum"),
            json!({"name": "zsh", "ensure": "absent", "installed": false, "provider": "yum"})
        );
    }

    #[test]
    fn default_programs_and_command_lines_by_backend() {
        use PackageBackend::{Apt, Dnf, Yum};
        type Row<'a> = (PackageBackend, &'a str, Option<&'a str>, &'a str, &'a str);
        let table: &[Row] = &[
            (Apt, "install", None, "apt-get", "install -y zsh"),
            (
                Apt,
                "install",
                Some("5.9-4"),
                "apt-get",
                "install -y zsh=5.9-4",
            ),
            (
                Apt,
                "update",
                None,
                "apt-get",
                "install -y --only-upgrade zsh",
            ),
            (Apt, "uninstall", None, "apt-get", "remove -y zsh"),
            (Apt, "purge", None, "apt-get", "purge -y zsh"),
            (Yum, "install", None, "yum", "install -y zsh"),
            (
                Yum,
                "install",
                Some("5.8-9.el9"),
                "yum",
                "install -y zsh-5.8-9.el9",
            ),
            (Yum, "update", None, "yum", "update -y zsh"),
            (Yum, "uninstall", None, "yum", "remove -y zsh"),
            (Yum, "purge", None, "yum", "remove -y zsh"),
            (Dnf, "install", None, "dnf", "install -y zsh"),
            (Dnf, "update", None, "dnf", "update -y zsh"),
            (Dnf, "uninstall", None, "dnf", "remove -y zsh"),
        ];
        for &(backend, action, version, program, args) in table {
            let agent = Package::new(&PackageConfig {
                backend,
                ..PackageConfig::default()
            })
            .unwrap();
            let spec = agent.manager_spec(action, "zsh", version);
            assert_eq!(spec.program, PathBuf::from(program), "{backend:?} {action}");
            assert_eq!(spec.args.join(" "), args, "{backend:?} {action}");
            let frontend = spec
                .env
                .iter()
                .any(|(k, v)| k == "DEBIAN_FRONTEND" && v == "noninteractive");
            assert_eq!(frontend, backend == Apt, "{backend:?} {action}");
            let query = if backend == Apt { "dpkg-query" } else { "rpm" };
            assert_eq!(
                query_program(&agent.config),
                PathBuf::from(query),
                "{backend:?}"
            );
        }
    }

    #[test]
    fn apt_simulate_lines() {
        let table = [
            (
                "Inst emacs23 [23.1+1-4ubuntu7] (23.1+1-4ubuntu7.1 Ubuntu:10.04/lucid-updates) []",
                Some(json!({"package": "emacs23", "version": "23.1+1-4ubuntu7.1",
                            "repo": "Ubuntu:10.04/lucid-updates"})),
            ),
            (
                "Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])",
                Some(json!({"package": "libssl3", "version": "3.0.11-1~deb12u2",
                            "repo": "Debian-Security:12/stable-security [amd64]"})),
            ),
            // New to the node: not outdated.
            ("Inst libfoo (1.0-1 Debian:12/stable [amd64])", None),
            (
                "Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])",
                None,
            ),
            ("Reading package lists...", None),
            ("Inst x [] (1.0 r)", None),
        ];
        for (line, want) in table {
            assert_eq!(apt_outdated(line), want, "{line}");
        }
    }

    #[test]
    fn yum_listing_rows() {
        let text = "\nkernel.x86_64        5.14.0-2.el9      baseos\n\
                    a-very-long-package-name-that-wraps.noarch\n\
                    \x20                    1.2-3.el9          appstream\n\
                    Obsoleting Packages\n\
                    grub2.x86_64   1:2.06-1.el9   baseos\n";
        let rows = yum_rows(text, true);
        assert_eq!(
            rows,
            [
                ["kernel.x86_64", "5.14.0-2.el9", "baseos"].map(String::from),
                [
                    "a-very-long-package-name-that-wraps.noarch",
                    "1.2-3.el9",
                    "appstream"
                ]
                .map(String::from),
            ]
        );
        assert_eq!(yum_rows(text, false).len(), 3);
        assert!(yum_rows("Installed Packages\nAvailable Packages\n", false).is_empty());
    }

    #[test]
    fn long_output_keeps_its_end() {
        let mut o = out(OK, "", "");
        o.stdout = format!("{}the end", "é".repeat(MAX_REPLY_OUTPUT));
        let shown = reply_output(&o);
        assert!(shown.starts_with('…') && shown.ends_with("the end"));
        assert!(shown.len() <= MAX_REPLY_OUTPUT + '…'.len_utf8());
    }
}
