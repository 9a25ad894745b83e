//! What the built-in agents are configured with (`[agents]` in `server.toml`). Every agent that
//! changes the system does it through a command named here, so a test points it at a harmless
//! stand-in script.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The `[agents]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// External agents: each an executable `NAME` with its DDL `NAME.json` beside it.
    pub directory: Option<PathBuf>,
    /// Built-in agents an external agent of the same name in `directory` replaces (say,
    /// `["shell"]` for Choria's shell agent). Without its name here, an external agent named
    /// like a built-in is refused at start, so a file dropped in the directory never changes
    /// what a built-in does unnoticed.
    pub replace: Vec<String>,
    /// The `service` agent.
    pub service: ServiceConfig,
    /// The `package` agent.
    pub package: PackageConfig,
    /// The `shell` agent.
    pub shell: ShellConfig,
    /// The `file` agent.
    pub file: FileConfig,
    /// The `cm` agent.
    pub cm: CmConfig,
    /// The `health` agent.
    pub health: HealthConfig,
}

/// `[agents.service]`: services are managed with systemd's `systemctl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The `systemctl` to run: `systemctl <start|stop|restart|reload> <unit>`,
    /// `systemctl is-active <unit>`.
    pub systemctl: PathBuf,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            systemctl: PathBuf::from("systemctl"),
        }
    }
}

/// Which package tools a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PackageBackend {
    /// `dpkg-query` and `apt-get` (Debian, Ubuntu).
    #[default]
    Apt,
    /// `rpm` and `yum`.
    Yum,
    /// `rpm` and `dnf`.
    Dnf,
}

/// `[agents.package]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PackageConfig {
    /// `apt` (default), `yum` or `dnf`.
    pub backend: PackageBackend,
    /// The query tool; default `dpkg-query` for apt, `rpm` otherwise.
    pub query: Option<PathBuf>,
    /// The package manager; default `apt-get`, `yum` or `dnf` by backend.
    pub manager: Option<PathBuf>,
}

/// `[agents.shell]`: running arbitrary commands. Off unless enabled.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShellConfig {
    /// Whether the node offers the `shell` agent at all.
    pub enabled: bool,
    /// The shell commands run with (`<shell> -c <command>`).
    pub shell: PathBuf,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            enabled: false,
            shell: PathBuf::from("/bin/sh"),
        }
    }
}

/// `[agents.file]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Files larger than this are not checksummed.
    pub max_checksum_bytes: u64,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            max_checksum_bytes: 1 << 30,
        }
    }
}

/// `[agents.cm]`: the configuration-management run (Puppet, Chef, …).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmConfig {
    /// The command that runs it once, in the foreground.
    pub command: Vec<String>,
    /// Where the last run's summary is (Puppet's `last_run_summary.yaml`; YAML or JSON).
    pub summary_file: Option<PathBuf>,
    /// The longest random delay (`splay`) a run may be asked to wait first.
    #[serde(with = "humantime_serde")]
    pub max_splay: Duration,
}

impl Default for CmConfig {
    fn default() -> Self {
        CmConfig {
            command: [
                "puppet",
                "agent",
                "--onetime",
                "--no-daemonize",
                "--verbose",
            ]
            .map(String::from)
            .to_vec(),
            summary_file: Some(PathBuf::from(
                "/opt/puppetlabs/puppet/public/last_run_summary.yaml",
            )),
            max_splay: Duration::from_secs(300),
        }
    }
}

/// `[agents.health]`: named Nagios-plugin checks.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Checks by name, e.g. `[agents.health.checks.disk] command = ["/usr/lib/nagios/plugins/check_disk", "-w", "20%"]`.
    pub checks: BTreeMap<String, HealthCheck>,
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The plugin and its arguments.
    pub command: Vec<String>,
    /// How long the plugin may run before its process group is killed and the check reports
    /// UNKNOWN; default 30 s. The `health` agent caps it just under its DDL timeout.
    #[serde(default = "default_check_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// The default [`HealthCheck::timeout`].
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

fn default_check_timeout() -> Duration {
    DEFAULT_CHECK_TIMEOUT
}
