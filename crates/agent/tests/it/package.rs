//! The `package` agent through `dispatch`, against stand-in query tools and package managers
//! (`dpkg-query` and `apt-get`, `rpm` and `yum`/`dnf`) written into a temporary directory. They
//! record each command line and keep a package "database" of one file per package.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use muster_agent::config::{PackageBackend, PackageConfig};
use muster_agent::package::{DDL, Package};
use muster_agent::{ActionResult, Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};

use crate::support::{install_script, node_with};

/// Stand-in tools for one backend in a temporary directory. `db/<package>` holds what the query
/// tool prints for an installed package. The package `broken` fails to install, `slow` hangs;
/// the file `query-broken` makes the query tool fail.
struct Tools {
    dir: tempfile::TempDir,
    backend: PackageBackend,
}

/// Records the command line (`|`-separated) and the environment the agent set.
const RECORD: &str = r#"printf '%s|' "$@" >> DIR/argv; echo >> DIR/argv
echo "LC_ALL=$LC_ALL DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> DIR/env
for a in "$@"; do pkg="$a"; done
"#;

const DPKG_QUERY: &str = r#"if [ -f DIR/query-broken ]; then
  echo "dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7: missing Package" >&2
  exit 2
fi
if [ -f "DIR/db/$pkg" ]; then cat "DIR/db/$pkg"; exit 0; fi
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
"#;

const APT_GET: &str = r#"case "$pkg" in
  broken) echo "E: Unable to locate package broken" >&2; exit 100;;
  slow) exec sleep 30;;
esac
case "$1 $3" in
  "install --only-upgrade")
    grep -q '^install ok installed' "DIR/db/$pkg" 2>/dev/null &&
      printf 'install ok installed\t2.0-1\n' > "DIR/db/$pkg";;
  install*) printf 'install ok installed\t1.0-1\n' > "DIR/db/$pkg";;
  remove*) printf 'deinstall ok config-files\t2.0-1\n' > "DIR/db/$pkg";;
esac
exit 0
"#;

const RPM: &str = r#"if [ -f DIR/query-broken ]; then
  echo "error: rpmdb: BDB0113 Thread/process 1234 failed: BDB1507 Thread died in Berkeley DB library" >&2
  exit 1
fi
if [ -f "DIR/db/$pkg" ]; then cat "DIR/db/$pkg"; exit 0; fi
echo "package $pkg is not installed"
exit 1
"#;

const YUM: &str = r#"case "$pkg" in
  broken) echo "Error: Unable to find a match: broken" >&2; exit 1;;
  slow) exec sleep 30;;
esac
case "$1" in
  install) echo 1.0-1.el9 > "DIR/db/$pkg";;
  update) [ -f "DIR/db/$pkg" ] && echo 2.0-1.el9 > "DIR/db/$pkg";;
  remove) rm -f "DIR/db/$pkg";;
esac
exit 0
"#;

impl Tools {
    async fn new(backend: PackageBackend) -> Tools {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("db")).expect("db");
        let (query, manager) = match backend {
            PackageBackend::Apt => (DPKG_QUERY, APT_GET),
            PackageBackend::Yum | PackageBackend::Dnf => (RPM, YUM),
        };
        let d = dir.path().display().to_string();
        for (name, body) in [("query", query), ("manager", manager)] {
            let body = format!("{RECORD}{body}").replace("DIR", &d);
            install_script(&dir.path().join(name), &body).await;
        }
        Tools { dir, backend }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&self, name: &str, content: &str) {
        std::fs::write(self.path(name), content).expect("write");
    }

    /// The command lines run so far (query `q:`, manager `m:`), and forgets them.
    fn take_argv(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("argv")).unwrap_or_default();
        let _ = std::fs::remove_file(self.path("argv"));
        text.lines().map(str::to_string).collect()
    }

    fn take_env(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("env")).unwrap_or_default();
        let _ = std::fs::remove_file(self.path("env"));
        text.lines().map(str::to_string).collect()
    }

    fn agent(&self) -> Package {
        Package::new(&PackageConfig {
            backend: self.backend,
            query: Some(self.path("query")),
            manager: Some(self.path("manager")),
        })
        .expect("package agent")
    }
}

async fn call(agent: &Package, action: &str, package: &str) -> ActionResult {
    dispatch(
        agent,
        &node_with(agent),
        action,
        &json!({ "package": package }),
    )
    .await
}

fn state(package: &str, ensure: &str) -> Value {
    json!({"name": package, "ensure": ensure, "installed": ensure != "absent"})
}

const DPKG_ARGV: &str = r"-W|-f=${Status}\t${Version}\n|zsh|";
const RPM_ARGV: &str = r"-q|--qf|%{VERSION}-%{RELEASE}\n|zsh|";

#[tokio::test]
async fn apt_runs_dpkg_query_and_apt_get() {
    let tools = Tools::new(PackageBackend::Apt).await;
    let agent = tools.agent();
    // (action, command lines, ensure afterwards)
    let steps = [
        ("status", vec![DPKG_ARGV], "absent"),
        ("install", vec!["install|-y|zsh|", DPKG_ARGV], "1.0-1"),
        ("status", vec![DPKG_ARGV], "1.0-1"),
        (
            "update",
            vec!["install|-y|--only-upgrade|zsh|", DPKG_ARGV],
            "2.0-1",
        ),
        // Removed but its configuration files are left: not installed.
        ("uninstall", vec!["remove|-y|zsh|", DPKG_ARGV], "absent"),
        // Upgrading a package that is not installed leaves it so.
        (
            "update",
            vec!["install|-y|--only-upgrade|zsh|", DPKG_ARGV],
            "absent",
        ),
    ];
    for (action, argv, ensure) in steps {
        let r = call(&agent, action, "zsh").await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        assert_eq!(tools.take_argv(), argv, "{action}");
        assert_eq!(r.data, state("zsh", ensure), "{action}");
    }
    let env = tools.take_env();
    assert!(
        env.contains(&"LC_ALL=C DEBIAN_FRONTEND=noninteractive".to_string()),
        "apt-get runs non-interactively: {env:?}"
    );
    assert!(
        env.iter().all(|e| e.starts_with("LC_ALL=C ")),
        "everything runs with LC_ALL=C: {env:?}"
    );
}

#[tokio::test]
async fn yum_and_dnf_run_rpm_and_the_manager() {
    for backend in [PackageBackend::Yum, PackageBackend::Dnf] {
        let tools = Tools::new(backend).await;
        let agent = tools.agent();
        let steps = [
            ("status", vec![RPM_ARGV], "absent"),
            ("install", vec!["install|-y|zsh|", RPM_ARGV], "1.0-1.el9"),
            ("status", vec![RPM_ARGV], "1.0-1.el9"),
            ("update", vec!["update|-y|zsh|", RPM_ARGV], "2.0-1.el9"),
            ("uninstall", vec!["remove|-y|zsh|", RPM_ARGV], "absent"),
        ];
        for (action, argv, ensure) in steps {
            let r = call(&agent, action, "zsh").await;
            assert_eq!(
                r.status,
                StatusCode::Ok,
                "{backend:?} {action}: {}",
                r.message
            );
            assert_eq!(tools.take_argv(), argv, "{backend:?} {action}");
            assert_eq!(r.data, state("zsh", ensure), "{backend:?} {action}");
        }
        let env = tools.take_env();
        assert!(
            env.iter().all(|e| e.starts_with("LC_ALL=C ")),
            "{backend:?}: everything runs with LC_ALL=C: {env:?}"
        );
    }
}

#[tokio::test]
async fn query_output_is_parsed_for_both_formats() {
    let apt = Tools::new(PackageBackend::Apt).await;
    let rpm = Tools::new(PackageBackend::Dnf).await;
    // (tools, what the query prints, ensure)
    let table = [
        (
            &apt,
            "install ok installed\t3.0.11-1~deb12u2\n",
            "3.0.11-1~deb12u2",
        ),
        (&apt, "deinstall ok config-files\t3.0.11-1\n", "absent"),
        (
            &apt,
            "install ok installed\t2.36-9\ninstall ok installed\t2.36-9\n",
            "2.36-9",
        ),
        (&rpm, "3.0.7-27.el9\n", "3.0.7-27.el9"),
        (
            &rpm,
            "5.14.0-1.el9\n5.14.0-2.el9\n",
            "5.14.0-1.el9, 5.14.0-2.el9",
        ),
    ];
    for (tools, printed, ensure) in table {
        tools.set("db/openssl", printed);
        let agent = tools.agent();
        let r = call(&agent, "status", "openssl").await;
        assert_eq!(r.status, StatusCode::Ok, "{printed:?}: {}", r.message);
        assert_eq!(r.data, state("openssl", ensure), "{printed:?}");
    }
}

#[tokio::test]
async fn a_failing_manager_is_aborted_with_its_message() {
    for (backend, want) in [
        (
            PackageBackend::Apt,
            "install broken failed: exited with status 100: E: Unable to locate package broken",
        ),
        (
            PackageBackend::Yum,
            "install broken failed: exited with status 1: Error: Unable to find a match: broken",
        ),
    ] {
        let tools = Tools::new(backend).await;
        let agent = tools.agent();
        let r = call(&agent, "install", "broken").await;
        assert_eq!(r.status, StatusCode::Aborted, "{backend:?}");
        assert!(r.message.starts_with(want), "{backend:?}: {}", r.message);
        assert!(
            r.message.contains("on the node to see why"),
            "{}",
            r.message
        );
        // The state is still reported.
        assert_eq!(r.data, state("broken", "absent"), "{backend:?}");
    }
}

#[tokio::test]
async fn a_failing_query_is_aborted_with_its_message() {
    let table = [
        (
            PackageBackend::Apt,
            "cannot read the state of package zsh: exited with status 2: dpkg-query: error: \
             parsing file",
        ),
        (
            PackageBackend::Dnf,
            "cannot read the state of package zsh: exited with status 1: error: rpmdb:",
        ),
    ];
    for (backend, want) in table {
        let tools = Tools::new(backend).await;
        tools.set("query-broken", "");
        let agent = tools.agent();
        let r = call(&agent, "status", "zsh").await;
        assert_eq!(r.status, StatusCode::Aborted, "{backend:?}");
        assert!(r.message.starts_with(want), "{backend:?}: {}", r.message);

        // The install worked; only reading the result failed.
        let r = call(&agent, "install", "zsh").await;
        assert_eq!(r.status, StatusCode::Aborted, "{backend:?}");
        assert!(
            r.message
                .starts_with("install zsh succeeded, but its state cannot be read"),
            "{}",
            r.message
        );
    }
}

#[tokio::test]
async fn a_missing_manager_says_what_to_do() {
    let tools = Tools::new(PackageBackend::Apt).await;
    let agent = Package::new(&PackageConfig {
        backend: PackageBackend::Apt,
        query: Some(tools.path("query")),
        manager: Some(tools.path("no-such-apt-get")),
    })
    .expect("agent");
    let r = call(&agent, "install", "zsh").await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message.starts_with("install zsh failed: cannot run"),
        "{}",
        r.message
    );
    assert!(r.message.contains("no such file"), "{}", r.message);
    assert_eq!(r.data, state("zsh", "absent"));
}

#[tokio::test]
async fn bad_names_are_refused_before_anything_runs() {
    let tools = Tools::new(PackageBackend::Apt).await;
    let agent = tools.agent();
    let long = "a".repeat(257);
    let table = [
        "zsh;rm -rf /",
        "zsh;rm",
        "$(reboot)",
        "zsh bash",
        "a/b",
        "*",
        // Options in disguise.
        "-oAPT::Get::Assume-Yes",
        "--allow-unauthenticated",
        "",
        long.as_str(),
    ];
    for action in ["status", "install", "uninstall"] {
        for name in table {
            let r = call(&agent, action, name).await;
            assert_eq!(r.status, StatusCode::InvalidData, "{action} {name:?}");
            assert_eq!(r.status.code(), 4);
        }
        let r = dispatch(&agent, &node_with(&agent), action, &json!({})).await;
        assert_eq!(r.status, StatusCode::MissingData, "{action}");
    }
    assert!(tools.take_argv().is_empty(), "nothing ran");
    for name in [
        "libc6:amd64",
        "g++",
        "python3.11",
        "libstdc++6",
        "perl-Foo@1",
    ] {
        let r = call(&agent, "status", name).await;
        assert_eq!(r.status, StatusCode::Ok, "{name}: {}", r.message);
    }
}

#[tokio::test]
async fn a_hung_manager_is_killed_within_the_budget() {
    let tools = Tools::new(PackageBackend::Apt).await;
    let agent = tools
        .agent()
        .with_command_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let r = call(&agent, "install", "slow").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message
            .starts_with("install slow failed: killed after timeout of"),
        "{}",
        r.message
    );
    assert_eq!(tools.take_argv(), ["install|-y|slow|"]);
}

#[test]
fn the_commands_get_the_ddl_timeout() {
    let ddl = Ddl::parse(DDL).expect("DDL");
    let agent = Package::new(&PackageConfig::default()).expect("agent");
    assert_eq!(
        agent.command_timeout(),
        Duration::from_secs(ddl.metadata.timeout)
    );
}

#[tokio::test]
async fn the_ddl_parses_and_every_action_in_it_is_handled() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_eq!(ddl.metadata.name, "package");
    let tools = Tools::new(PackageBackend::Apt).await;
    let agent = tools.agent();
    assert_eq!(agent.ddl().action_names(), ddl.action_names());
    for action in ddl.action_names() {
        let r = call(&agent, action, "zsh").await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        let described = ddl.action(action).expect("described");
        for key in r.data.as_object().expect("object").keys() {
            assert!(described.output.contains_key(key), "{action} output {key}");
        }
        assert!(
            described
                .aggregate
                .iter()
                .any(|a| a.function == "summary" && a.output() == Some("ensure")),
            "{action} summarises ensure"
        );
    }
    let r = call(&agent, "purge", "zsh").await;
    assert_eq!(r.status, StatusCode::UnknownAction);
}
