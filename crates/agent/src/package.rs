//! The `package` agent: installs, updates and removes packages and reports installed versions.
//!
//! Two tools per backend ([`PackageBackend`]), each replaceable in the configuration
//! ([`PackageConfig::query`], [`PackageConfig::manager`]):
//!
//! | backend | query | install | update | uninstall |
//! |---|---|---|---|---|
//! | `apt` | `dpkg-query -W -f=${Status}\t${Version}\n P` | `apt-get install -y P` | `apt-get install -y --only-upgrade P` | `apt-get remove -y P` |
//! | `yum`, `dnf` | `rpm -q --qf %{VERSION}-%{RELEASE}\n P` | `yum install -y P` | `yum update -y P` | `yum remove -y P` |
//!
//! `apt-get` runs with `DEBIAN_FRONTEND=noninteractive`; every command runs with `LC_ALL=C`, so
//! the query tools' "not installed" messages can be recognised. After a change the agent queries
//! again and reports the new state. A failing manager is `Aborted` with the command's summary.
//! All the commands of one action share a time budget ([`Package::command_timeout`], by default
//! the DDL's timeout), so a hung package manager is killed and reported before the dispatcher
//! gives up on the action.

use std::path::PathBuf;
use std::time::Duration;

use muster_proto::StatusCode;
use muster_proto::ddl::{Ddl, DdlError};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::command::{self, CommandOutput, CommandSpec, ExitKind};
use crate::config::{PackageBackend, PackageConfig};
use crate::{ActionFuture, ActionResult, Agent, NodeContext};

/// The `package` agent's DDL, as shipped.
pub const DDL: &str = include_str!("../ddl/package.json");

/// A command is not started with less time left than this.
const MIN_COMMAND_TIME: Duration = Duration::from_millis(50);

/// `dpkg-query`'s format: dpkg-query itself turns `\t` and `\n` into a tab and a newline.
const DPKG_FORMAT: &str = r"-f=${Status}\t${Version}\n";

/// `rpm`'s query format: rpm itself turns `\n` into a newline.
const RPM_FORMAT: &str = r"%{VERSION}-%{RELEASE}\n";

/// The `package` agent.
#[derive(Debug, Clone)]
pub struct Package {
    ddl: Ddl,
    config: PackageConfig,
    command_timeout: Duration,
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

    /// The query tool: configured, or the backend's.
    fn query_program(&self) -> PathBuf {
        self.config
            .query
            .clone()
            .unwrap_or_else(|| match self.config.backend {
                PackageBackend::Apt => PathBuf::from("dpkg-query"),
                PackageBackend::Yum | PackageBackend::Dnf => PathBuf::from("rpm"),
            })
    }

    /// The package manager: configured, or the backend's.
    fn manager_program(&self) -> PathBuf {
        self.config
            .manager
            .clone()
            .unwrap_or_else(|| match self.config.backend {
                PackageBackend::Apt => PathBuf::from("apt-get"),
                PackageBackend::Yum => PathBuf::from("yum"),
                PackageBackend::Dnf => PathBuf::from("dnf"),
            })
    }

    /// The manager's command line for a changing action.
    fn manager_spec(&self, action: &str, package: &str) -> CommandSpec {
        let apt = self.config.backend == PackageBackend::Apt;
        let args: &[&str] = match action {
            "install" => &["install", "-y"],
            "update" if apt => &["install", "-y", "--only-upgrade"],
            "update" => &["update", "-y"],
            _ => &["remove", "-y"],
        };
        let spec = CommandSpec::new(self.manager_program())
            .args(args.iter().copied())
            .arg(package)
            .env("LC_ALL", "C");
        if apt {
            spec.env("DEBIAN_FRONTEND", "noninteractive")
        } else {
            spec
        }
    }

    async fn run(&self, action: &str, data: &Value) -> ActionResult {
        if self.ddl.action(action).is_none() {
            return ActionResult::fail(
                StatusCode::UnknownAction,
                format!(
                    "package has no action {action:?}; its actions are {}",
                    self.ddl.action_names().join(", ")
                ),
            );
        }
        let Some(package) = data.get("package").and_then(Value::as_str) else {
            return ActionResult::fail(
                StatusCode::MissingData,
                "missing input package: give the package's name, e.g. package=openssl",
            );
        };
        let deadline = Instant::now() + self.command_timeout;

        if action != "status" {
            let spec = self.manager_spec(action, package);
            let failure = match time_left(deadline) {
                None => Some(format!(
                    "its time budget of {}ms is too short to run {}",
                    self.command_timeout.as_millis(),
                    spec.program.display()
                )),
                Some(left) => match command::run(&spec.clone().timeout(left)).await {
                    Err(e) => Some(e.to_string()),
                    Ok(out) if out.success() => None,
                    Ok(out) => Some(out.summary()),
                },
            };
            if let Some(why) = failure {
                let data = match self.query(package, deadline).await {
                    Ok(installed) => installed.data(package),
                    Err(_) => json!({ "name": package }),
                };
                return ActionResult::fail_with(
                    StatusCode::Aborted,
                    format!(
                        "{action} {package} failed: {why}; run `{} {}` on the node to see why",
                        spec.program.display(),
                        spec.args.join(" ")
                    ),
                    data,
                );
            }
        }

        match self.query(package, deadline).await {
            Ok(installed) => ActionResult::ok(installed.data(package)),
            Err(why) if action == "status" => ActionResult::fail(
                StatusCode::Aborted,
                format!(
                    "cannot read the state of package {package}: {why}; check that the node \
                     uses the configured backend ({:?}) and that {} works there",
                    self.config.backend,
                    self.query_program().display()
                ),
            ),
            Err(why) => ActionResult::fail_with(
                StatusCode::Aborted,
                format!(
                    "{action} {package} succeeded, but its state cannot be read: {why}; ask \
                     again with the status action"
                ),
                json!({ "name": package }),
            ),
        }
    }

    /// The installed versions of `package`; the error says why they could not be read.
    async fn query(&self, package: &str, deadline: Instant) -> Result<Installed, String> {
        let Some(left) = time_left(deadline) else {
            return Err(format!(
                "no time was left to run {}",
                self.query_program().display()
            ));
        };
        let apt = self.config.backend == PackageBackend::Apt;
        let args: &[&str] = if apt {
            &["-W", DPKG_FORMAT]
        } else {
            &["-q", "--qf", RPM_FORMAT]
        };
        let spec = CommandSpec::new(self.query_program())
            .args(args.iter().copied())
            .arg(package)
            .env("LC_ALL", "C")
            .timeout(left);
        let out = command::run(&spec).await.map_err(|e| e.to_string())?;
        let installed = if apt {
            Installed::from_dpkg(&out)
        } else {
            Installed::from_rpm(&out)
        };
        installed.ok_or_else(|| out.summary())
    }
}

/// The time left before `deadline`, if it is enough to start a command.
fn time_left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (left >= MIN_COMMAND_TIME).then_some(left)
}

/// The installed versions of a package: none when it is absent, several for packages installed
/// for several architectures or in several versions (kernels).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Installed(Vec<String>);

impl Installed {
    /// From `dpkg-query -W -f='${Status}\t${Version}\n'`: lines whose status is
    /// `install ok installed` (`deinstall ok config-files` and the like are not installed). An
    /// unknown package is exit status 1 with "no packages found matching". `None` when the output
    /// means something else: the query failed.
    fn from_dpkg(out: &CommandOutput) -> Option<Installed> {
        match out.status {
            ExitKind::Exited(0) => {}
            ExitKind::Exited(1) if mentions(out, "no packages found matching") => {
                return Some(Installed(Vec::new()));
            }
            _ => return None,
        }
        let mut versions = Vec::new();
        for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
            let (status, version) = line.split_once('\t')?;
            if status.split_whitespace().eq(["install", "ok", "installed"]) {
                push_unique(&mut versions, version.trim());
            }
        }
        Some(Installed(versions))
    }

    /// From `rpm -q --qf '%{VERSION}-%{RELEASE}\n'`: one version per line. An unknown package is
    /// exit status 1 with "package X is not installed". `None` when the query failed.
    fn from_rpm(out: &CommandOutput) -> Option<Installed> {
        match out.status {
            ExitKind::Exited(0) => {}
            ExitKind::Exited(1) if mentions(out, "is not installed") => {
                return Some(Installed(Vec::new()));
            }
            _ => return None,
        }
        let mut versions = Vec::new();
        for line in out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
            push_unique(&mut versions, line);
        }
        if versions.is_empty() {
            return None;
        }
        Some(Installed(versions))
    }

    /// `ensure`: the installed version (several joined with `, `), or `absent`.
    fn ensure(&self) -> String {
        if self.0.is_empty() {
            "absent".to_string()
        } else {
            self.0.join(", ")
        }
    }

    /// The action's outputs.
    fn data(&self, package: &str) -> Value {
        json!({ "name": package, "ensure": self.ensure(), "installed": !self.0.is_empty() })
    }
}

/// Whether standard output or standard error contains `text`.
fn mentions(out: &CommandOutput, text: &str) -> bool {
    out.stdout.contains(text) || out.stderr.contains(text)
}

fn push_unique(versions: &mut Vec<String>, version: &str) {
    if !version.is_empty() && !versions.iter().any(|v| v == version) {
        versions.push(version.to_string());
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
                out(OK, "install ok installed\t3.0.11-1~deb12u2\n", ""),
                Some("3.0.11-1~deb12u2"),
            ),
            // Installed for two architectures, same version: reported once.
            (
                out(
                    OK,
                    "install ok installed\t2.36-9\ninstall ok installed\t2.36-9\n",
                    "",
                ),
                Some("2.36-9"),
            ),
            (
                out(OK, "deinstall ok config-files\t1.2-1\n", ""),
                Some("absent"),
            ),
            (out(OK, "unknown ok not-installed\t\n", ""), Some("absent")),
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
            (out(OK, "3.0.7-27.el9\n", ""), Some("3.0.7-27.el9")),
            (
                out(OK, "5.14.0-1.el9\n5.14.0-2.el9\n", ""),
                Some("5.14.0-1.el9, 5.14.0-2.el9"),
            ),
            (
                out(ONE, "package nope is not installed\n", ""),
                Some("absent"),
            ),
            (out(ONE, "", "error: rpmdb: damaged\n"), None),
            (out(OK, "", ""), None),
            (out(ExitKind::Signalled(9), "", ""), None),
        ];
        for (o, want) in table {
            let got = Installed::from_rpm(&o).map(|i| i.ensure());
            assert_eq!(got.as_deref(), want, "{o:?}");
        }
    }

    #[test]
    fn default_programs_and_command_lines_by_backend() {
        use PackageBackend::{Apt, Dnf, Yum};
        let table: &[(PackageBackend, &str, &str, &str)] = &[
            (Apt, "install", "apt-get", "install -y zsh"),
            (Apt, "update", "apt-get", "install -y --only-upgrade zsh"),
            (Apt, "uninstall", "apt-get", "remove -y zsh"),
            (Yum, "install", "yum", "install -y zsh"),
            (Yum, "update", "yum", "update -y zsh"),
            (Yum, "uninstall", "yum", "remove -y zsh"),
            (Dnf, "install", "dnf", "install -y zsh"),
            (Dnf, "update", "dnf", "update -y zsh"),
            (Dnf, "uninstall", "dnf", "remove -y zsh"),
        ];
        for &(backend, action, program, args) in table {
            let agent = Package::new(&PackageConfig {
                backend,
                ..PackageConfig::default()
            })
            .unwrap();
            let spec = agent.manager_spec(action, "zsh");
            assert_eq!(spec.program, PathBuf::from(program), "{backend:?} {action}");
            assert_eq!(spec.args.join(" "), args, "{backend:?} {action}");
            let frontend = spec
                .env
                .iter()
                .any(|(k, v)| k == "DEBIAN_FRONTEND" && v == "noninteractive");
            assert_eq!(frontend, backend == Apt, "{backend:?} {action}");
            let query = if backend == Apt { "dpkg-query" } else { "rpm" };
            assert_eq!(agent.query_program(), PathBuf::from(query), "{backend:?}");
        }
    }

    #[test]
    fn outputs() {
        assert_eq!(
            Installed(vec!["1.0-1".into()]).data("zsh"),
            json!({"name": "zsh", "ensure": "1.0-1", "installed": true})
        );
        assert_eq!(
            Installed(vec![]).data("zsh"),
            json!({"name": "zsh", "ensure": "absent", "installed": false})
        );
    }
}
