//! The `package` agent through `dispatch`, against stand-in query tools and package managers
//! (`dpkg-query` and `apt-get`, `rpm` and `yum`/`dnf`) written into a temporary directory. They
//! record each command line and keep a package "database" of one file per package; nothing
//! touches the machine's own packages.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use muster_agent::config::{PackageBackend, PackageConfig};
use muster_agent::package::{DDL, Package};
use muster_agent::{ActionResult, Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::{Value, json};

use crate::support::{ChoriaAction, assert_superset, install_script, node_with};

/// Stand-in tools for one backend in a temporary directory. `db/<package>` holds what the query
/// tool prints for an installed package, `list` what it prints for every package
/// (`dpkg-query --list`, `rpm -qa`), `simulate` and `check-update` what the manager prints for
/// those, `search-<pattern>` what `yum -q list <pattern>` prints. The package `broken` fails to
/// install, `slow` hangs; the file `query-broken` makes the query tool fail, `update-broken`
/// makes `apt-get update` and `yum clean` fail, `check-update-code` sets check-update's exit
/// status.
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
if [ "$1" = --list ]; then cat DIR/list; exit 0; fi
if [ -f "DIR/db/$pkg" ]; then cat "DIR/db/$pkg"; exit 0; fi
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
"#;

const APT_GET: &str = r#"ver=1.0-1
case "$pkg" in
  broken) echo "E: Unable to locate package broken" >&2; exit 100;;
  slow) exec sleep 30;;
  *=*) ver="${pkg#*=}"; pkg="${pkg%%=*}";;
esac
case "$1 $3" in
  "install --only-upgrade")
    grep -q '^install ok installed' "DIR/db/$pkg" 2>/dev/null &&
      printf 'install ok installed\t2.0-1\tamd64\n' > "DIR/db/$pkg"
    echo "Calculating upgrade... Done";;
  install*)
    printf 'install ok installed\t%s\tamd64\n' "$ver" > "DIR/db/$pkg"
    echo "Setting up $pkg ($ver) ...";;
  remove*) printf 'deinstall ok config-files\t2.0-1\tamd64\n' > "DIR/db/$pkg"; echo "Removing $pkg";;
  purge*) rm -f "DIR/db/$pkg"; echo "Purging configuration files for $pkg";;
  "update "*)
    if [ -f DIR/update-broken ]; then
      echo "E: Could not get lock /var/lib/apt/lists/lock" >&2; exit 100
    fi
    echo "Hit:1 http://deb.example stable InRelease";;
  "--simulate ") cat DIR/simulate;;
esac
exit 0
"#;

const RPM: &str = r#"if [ -f DIR/query-broken ]; then
  echo "error: rpmdb: BDB0113 Thread/process 1234 failed: BDB1507 Thread died in Berkeley DB library" >&2
  exit 1
fi
if [ "$1" = -qa ]; then cat DIR/list; exit 0; fi
if [ -f "DIR/db/$pkg" ]; then cat "DIR/db/$pkg"; exit 0; fi
echo "package $pkg is not installed"
exit 1
"#;

const YUM: &str = r#"ver=1.0; rel=1.el9
case "$pkg" in
  broken) echo "Error: Unable to find a match: broken" >&2; exit 1;;
  slow) exec sleep 30;;
  zsh-*) v="${pkg#zsh-}"; ver="${v%-*}"; rel="${v##*-}"; pkg=zsh;;
esac
case "$1 $2" in
  "install "*) printf '0\t%s\t%s\tx86_64\n' "$ver" "$rel" > "DIR/db/$pkg"; echo "Installed: $pkg";;
  "update "*) [ -f "DIR/db/$pkg" ] && printf '0\t2.0\t1.el9\tx86_64\n' > "DIR/db/$pkg";;
  "remove "*) rm -f "DIR/db/$pkg"; echo "Removed: $pkg";;
  "clean "*)
    if [ -f DIR/update-broken ]; then echo "Error: cache is locked" >&2; exit 1; fi
    echo "12 files removed";;
  "-q check-update")
    cat DIR/check-update 2>/dev/null
    exit "$(cat DIR/check-update-code 2>/dev/null || echo 0)";;
  "-q list")
    if [ -f "DIR/search-$pkg" ]; then cat "DIR/search-$pkg"; exit 0; fi
    echo "Error: No matching Packages to list" >&2; exit 1;;
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

    /// The command lines run so far, and forgets them.
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
    call_with(agent, action, json!({ "package": package })).await
}

async fn call_with(agent: &Package, action: &str, data: Value) -> ActionResult {
    dispatch(agent, &node_with(agent), action, &data).await
}

/// `ensure`, `installed` and `provider` of a reply.
fn state(data: &Value) -> Value {
    json!({"ensure": data["ensure"], "installed": data["installed"], "provider": data["provider"]})
}

fn want(ensure: &str, provider: &str) -> Value {
    json!({"ensure": ensure, "installed": ensure != "absent", "provider": provider})
}

const DPKG_ARGV: &str = r"-W|-f=${Status}\t${Version}\t${Architecture}\n|zsh|";
const RPM_ARGV: &str = r"-q|--qf|%|EPOCH?{%{EPOCH}}:{0}|\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n|zsh|";

#[tokio::test]
async fn apt_runs_dpkg_query_and_apt_get() {
    let tools = Tools::new(PackageBackend::Apt).await;
    let agent = tools.agent();
    // (action, inputs, command lines, ensure afterwards)
    let steps = [
        ("status", json!({}), vec![DPKG_ARGV], "absent"),
        (
            "install",
            json!({}),
            vec!["install|-y|zsh|", DPKG_ARGV],
            "1.0-1",
        ),
        ("status", json!({}), vec![DPKG_ARGV], "1.0-1"),
        (
            "update",
            json!({}),
            vec!["install|-y|--only-upgrade|zsh|", DPKG_ARGV],
            "2.0-1",
        ),
        // Removed but its configuration files are left: not installed.
        (
            "uninstall",
            json!({}),
            vec!["remove|-y|zsh|", DPKG_ARGV],
            "absent",
        ),
        // Upgrading a package that is not installed leaves it so.
        (
            "update",
            json!({}),
            vec!["install|-y|--only-upgrade|zsh|", DPKG_ARGV],
            "absent",
        ),
        // A given version is installed as P=V.
        (
            "install",
            json!({"version": "1:5.9-4"}),
            vec!["install|-y|zsh=1:5.9-4|", DPKG_ARGV],
            "1:5.9-4",
        ),
        (
            "purge",
            json!({}),
            vec!["purge|-y|zsh|", DPKG_ARGV],
            "absent",
        ),
    ];
    for (action, mut inputs, argv, ensure) in steps {
        inputs["package"] = json!("zsh");
        let r = call_with(&agent, action, inputs).await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        assert_eq!(tools.take_argv(), argv, "{action}");
        assert_eq!(state(&r.data), want(ensure, "apt"), "{action}");
        assert_eq!(r.data["name"], "zsh");
        // The manager's output comes back with every change, never with a status.
        assert_eq!(
            r.data.get("output").is_some(),
            action != "status",
            "{action}"
        );
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
async fn a_status_reply_carries_choria_s_outputs() {
    let apt = Tools::new(PackageBackend::Apt).await;
    let r = call_with(
        &apt.agent(),
        "install",
        json!({"package": "zsh", "version": "1:5.9-4"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(
        r.data,
        json!({"name": "zsh", "ensure": "1:5.9-4", "installed": true, "provider": "apt",
               "epoch": "1", "version": "5.9", "release": "4", "arch": "amd64",
               "output": "Setting up zsh (1:5.9-4) ...\n"})
    );
    let dnf = Tools::new(PackageBackend::Dnf).await;
    dnf.set("db/openssl", "1\t3.0.7\t27.el9\tx86_64\n");
    let r = call(&dnf.agent(), "status", "openssl").await;
    assert_eq!(
        r.data,
        json!({"name": "openssl", "ensure": "3.0.7-27.el9", "installed": true,
               "provider": "dnf", "epoch": "1", "version": "3.0.7", "release": "27.el9",
               "arch": "x86_64"})
    );
    let r = call(&dnf.agent(), "status", "nope").await;
    assert_eq!(
        r.data,
        json!({"name": "nope", "ensure": "absent", "installed": false, "provider": "dnf"})
    );
}

#[tokio::test]
async fn yum_and_dnf_run_rpm_and_the_manager() {
    for backend in [PackageBackend::Yum, PackageBackend::Dnf] {
        let tools = Tools::new(backend).await;
        let agent = tools.agent();
        let provider = if backend == PackageBackend::Yum {
            "yum"
        } else {
            "dnf"
        };
        let steps = [
            ("status", json!({}), vec![RPM_ARGV], "absent"),
            (
                "install",
                json!({}),
                vec!["install|-y|zsh|", RPM_ARGV],
                "1.0-1.el9",
            ),
            ("status", json!({}), vec![RPM_ARGV], "1.0-1.el9"),
            (
                "update",
                json!({}),
                vec!["update|-y|zsh|", RPM_ARGV],
                "2.0-1.el9",
            ),
            (
                "uninstall",
                json!({}),
                vec!["remove|-y|zsh|", RPM_ARGV],
                "absent",
            ),
            (
                "install",
                json!({"version": "5.8-9.el9"}),
                vec!["install|-y|zsh-5.8-9.el9|", RPM_ARGV],
                "5.8-9.el9",
            ),
            // rpm keeps no configuration files apart: purge removes.
            (
                "purge",
                json!({}),
                vec!["remove|-y|zsh|", RPM_ARGV],
                "absent",
            ),
        ];
        for (action, mut inputs, argv, ensure) in steps {
            inputs["package"] = json!("zsh");
            let r = call_with(&agent, action, inputs).await;
            assert_eq!(
                r.status,
                StatusCode::Ok,
                "{backend:?} {action}: {}",
                r.message
            );
            assert_eq!(tools.take_argv(), argv, "{backend:?} {action}");
            assert_eq!(
                state(&r.data),
                want(ensure, provider),
                "{backend:?} {action}"
            );
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
            "install ok installed\t3.0.11-1~deb12u2\tamd64\n",
            "3.0.11-1~deb12u2",
        ),
        // A query tool that leaves out the architecture.
        (
            &apt,
            "install ok installed\t3.0.11-1~deb12u2\n",
            "3.0.11-1~deb12u2",
        ),
        (
            &apt,
            "deinstall ok config-files\t3.0.11-1\tamd64\n",
            "absent",
        ),
        (
            &apt,
            "install ok installed\t2.36-9\tamd64\ninstall ok installed\t2.36-9\ti386\n",
            "2.36-9",
        ),
        (&rpm, "0\t3.0.7\t27.el9\tx86_64\n", "3.0.7-27.el9"),
        // A query tool that prints only VERSION-RELEASE.
        (&rpm, "3.0.7-27.el9\n", "3.0.7-27.el9"),
        (
            &rpm,
            "0\t5.14.0\t1.el9\tx86_64\n0\t5.14.0\t2.el9\tx86_64\n",
            "5.14.0-1.el9, 5.14.0-2.el9",
        ),
    ];
    for (tools, printed, ensure) in table {
        tools.set("db/openssl", printed);
        let agent = tools.agent();
        let r = call(&agent, "status", "openssl").await;
        assert_eq!(r.status, StatusCode::Ok, "{printed:?}: {}", r.message);
        assert_eq!(r.data["ensure"], ensure, "{printed:?}");
    }
}

const DPKG_LIST: &str = "Desired=Unknown/Install/Remove/Purge/Hold
| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend
|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)
||/ Name   Version  Architecture Description
+++-======-========-============-=========
ii  bash   5.2-1    amd64        GNU Bourne Again SHell
rc  old    1.0-1    amd64        removed
ii  zsh    5.9-4    amd64        shell with lots of features
";

const RPM_QA: &str = "bash-5.1.8-6.el9.x86_64\nzsh-5.8-9.el9.x86_64\nopenssl-3.0.7-27.el9.x86_64\n";

/// `count` and `md5` as Choria's agent computes them: the `ii` lines of `dpkg --list` joined
/// by newlines, or `rpm -qa`'s output as it is.
#[tokio::test]
async fn count_and_md5_of_the_installed_packages() {
    let apt = Tools::new(PackageBackend::Apt).await;
    apt.set("list", DPKG_LIST);
    let rpm = Tools::new(PackageBackend::Yum).await;
    rpm.set("list", RPM_QA);
    // (tools, argv, count, md5 — what Ruby's Digest::MD5 gives for the same text)
    let table = [
        (&apt, "--list|", 2, "615ea98b3136c0a5a8c8335fdce105e7"),
        (&rpm, "-qa|", 3, "1c62f6bfd3e20915a0d785be9abb0185"),
    ];
    for (tools, argv, count, md5) in table {
        let agent = tools.agent();
        let r = call_with(&agent, "count", json!({})).await;
        assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
        assert_eq!(
            r.data,
            json!({"output": count.to_string(), "count": count, "exitcode": 0})
        );
        let r = call_with(&agent, "md5", json!({})).await;
        assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
        assert_eq!(r.data, json!({"output": md5, "exitcode": 0}));
        assert_eq!(tools.take_argv(), [argv, argv]);

        tools.set("query-broken", "");
        let r = call_with(&agent, "md5", json!({})).await;
        assert_eq!(r.status, StatusCode::Aborted);
        assert!(r.message.starts_with("md5: "), "{}", r.message);
        assert!(
            r.message.contains("failed: exited with status"),
            "{}",
            r.message
        );
        assert!(r.data["exitcode"].as_i64().unwrap_or(0) > 0, "{:?}", r.data);
    }
}

const SIMULATE: &str = "Reading package lists...
Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
Inst libnew (1.0-1 Debian:12/stable [amd64])
Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
";

#[tokio::test]
async fn apt_updates_are_checked_and_refreshed_with_apt_get() {
    let tools = Tools::new(PackageBackend::Apt).await;
    tools.set("simulate", SIMULATE);
    let agent = tools.agent();
    let outdated = json!([{"package": "libssl3", "version": "3.0.11-1~deb12u2",
                           "repo": "Debian-Security:12/stable-security [amd64]"}]);
    let simulate = "--simulate|dist-upgrade|";
    let table = [
        ("apt_checkupdates", vec![simulate]),
        ("checkupdates", vec![simulate]),
        ("apt_update", vec!["update|", simulate]),
        ("refresh", vec!["update|", simulate]),
    ];
    for (action, argv) in table {
        let r = call_with(&agent, action, json!({})).await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        assert_eq!(tools.take_argv(), argv, "{action}");
        assert_eq!(r.data["outdated_packages"], outdated, "{action}");
        assert_eq!(r.data["exitcode"], 0, "{action}");
        assert_eq!(r.data["package_manager"], "apt", "{action}");
        assert_eq!(r.data["output"], SIMULATE, "{action}");
    }
    // A failing apt-get update stops there, with its exit code.
    tools.set("update-broken", "");
    for action in ["apt_update", "refresh"] {
        let r = call_with(&agent, action, json!({})).await;
        assert_eq!(r.status, StatusCode::Aborted, "{action}");
        assert!(
            r.message.starts_with(&format!(
                "{action}: {} update failed: exited with status 100: E: Could not get lock",
                tools.path("manager").display()
            )),
            "{}",
            r.message
        );
        assert_eq!(r.data["exitcode"], 100);
        assert_eq!(tools.take_argv(), ["update|"], "{action}");
    }
    let env = tools.take_env();
    assert!(
        env.iter()
            .all(|e| e == "LC_ALL=C DEBIAN_FRONTEND=noninteractive"),
        "{env:?}"
    );
}

const CHECK_UPDATE: &str = "
kernel.x86_64                    5.14.0-2.el9                baseos
openssl.x86_64                   1:3.0.7-28.el9              baseos
Obsoleting Packages
grub2-tools.x86_64               1:2.06-70.el9               baseos
";

#[tokio::test]
async fn yum_updates_are_checked_refreshed_and_cleaned_with_the_manager() {
    for backend in [PackageBackend::Yum, PackageBackend::Dnf] {
        let tools = Tools::new(backend).await;
        tools.set("check-update", CHECK_UPDATE);
        tools.set("check-update-code", "100");
        let agent = tools.agent();
        let provider = if backend == PackageBackend::Yum {
            "yum"
        } else {
            "dnf"
        };
        let outdated = json!([
            {"package": "kernel.x86_64", "version": "5.14.0-2.el9", "repo": "baseos"},
            {"package": "openssl.x86_64", "version": "1:3.0.7-28.el9", "repo": "baseos"},
        ]);
        let check = "-q|check-update|";
        for (action, argv) in [
            ("yum_checkupdates", vec![check]),
            ("checkupdates", vec![check]),
            ("refresh", vec!["clean|metadata|", check]),
        ] {
            let r = call_with(&agent, action, json!({})).await;
            assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
            assert_eq!(tools.take_argv(), argv, "{backend:?} {action}");
            // Exit status 100 is check-update's "updates available".
            assert_eq!(r.data["exitcode"], 100, "{action}");
            assert_eq!(r.data["outdated_packages"], outdated, "{action}");
            assert_eq!(r.data["package_manager"], provider, "{action}");
        }
        tools.set("check-update", "");
        tools.set("check-update-code", "0");
        let r = call_with(&agent, "yum_checkupdates", json!({})).await;
        assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
        assert_eq!(r.data["outdated_packages"], json!([]));
        assert_eq!(r.data["exitcode"], 0);
        tools.set("check-update-code", "1");
        let r = call_with(&agent, "yum_checkupdates", json!({})).await;
        assert_eq!(r.status, StatusCode::Aborted);
        assert_eq!(r.data["exitcode"], 1);
        tools.take_argv();

        // yum_clean: all unless a mode is given.
        let r = call_with(&agent, "yum_clean", json!({})).await;
        assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
        assert_eq!(
            r.data,
            json!({"output": "12 files removed\n", "exitcode": 0})
        );
        let r = call_with(&agent, "yum_clean", json!({"mode": "expire-cache"})).await;
        assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
        assert_eq!(
            tools.take_argv(),
            ["clean|all|", "clean|expire-cache|"],
            "{backend:?}"
        );
        let r = call_with(&agent, "yum_clean", json!({"mode": "everything"})).await;
        assert_eq!(r.status, StatusCode::InvalidData);
        tools.set("update-broken", "");
        let r = call_with(&agent, "yum_clean", json!({})).await;
        assert_eq!(r.status, StatusCode::Aborted);
        assert!(
            r.message
                .contains("clean all failed: exited with status 1: Error: cache is locked"),
            "{}",
            r.message
        );
        assert_eq!(
            tools.take_argv(),
            ["clean|all|"],
            "nothing ran for the bad mode"
        );
    }
}

#[tokio::test]
async fn search_lists_what_yum_or_dnf_has() {
    let tools = Tools::new(PackageBackend::Dnf).await;
    tools.set(
        "search-zsh*",
        "Installed Packages\nzsh.x86_64        5.8-9.el9         @baseos\n\
         Available Packages\nzsh.x86_64        5.8-9.el9         baseos\n\
         zsh-html.noarch   5.8-9.el9         appstream\n",
    );
    let agent = tools.agent();
    let r = call(&agent, "search", "zsh*").await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(tools.take_argv(), ["-q|list|zsh*|"]);
    assert_eq!(r.data["package_count"], "2 packages found");
    assert_eq!(r.data["count"], 2);
    assert_eq!(
        r.data["available_packages"][1],
        json!({"name": "zsh-html", "version": "5.8", "release": "9.el9", "epoch": "0",
               "arch": "noarch", "provider": "dnf", "ensure": "5.8-9.el9",
               "repo": "appstream"})
    );
    let r = call(&agent, "search", "nothing-like-it").await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(
        r.data,
        json!({"package_count": "0 packages found", "count": 0, "available_packages": []})
    );
    // The pattern must not be an option.
    let r = call(&agent, "search", "-x").await;
    assert_eq!(r.status, StatusCode::InvalidData);
}

/// An action for the other family of backends fails saying which it needs, and runs nothing.
#[tokio::test]
async fn actions_for_another_backend_fail_clearly() {
    let apt = Tools::new(PackageBackend::Apt).await;
    let yum = Tools::new(PackageBackend::Yum).await;
    let table = [
        (&apt, "yum_clean", json!({}), "yum or dnf", "apt"),
        (&apt, "yum_checkupdates", json!({}), "yum or dnf", "apt"),
        (
            &apt,
            "search",
            json!({"package": "zsh"}),
            "yum or dnf",
            "apt",
        ),
        (&yum, "apt_update", json!({}), "apt", "yum"),
        (&yum, "apt_checkupdates", json!({}), "apt", "yum"),
    ];
    for (tools, action, inputs, needs, has) in table {
        let r = call_with(&tools.agent(), action, inputs).await;
        assert_eq!(r.status, StatusCode::Aborted, "{action}");
        assert_eq!(
            r.message,
            format!(
                "{action} needs the {needs} package backend, and this node's is {has} (set \
                 [agents.package] backend in server.toml)"
            )
        );
        assert!(tools.take_argv().is_empty(), "{action}: nothing ran");
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
        // The state is still reported, with what the manager printed.
        assert_eq!(r.data["ensure"], "absent", "{backend:?}");
        assert_eq!(r.data["output"], "", "{backend:?}");
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
    assert_eq!(r.data["ensure"], "absent");
    let r = call_with(&agent, "apt_update", json!({})).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(r.message.contains("no such file"), "{}", r.message);
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
    for action in ["status", "install", "uninstall", "purge"] {
        for name in table {
            let r = call(&agent, action, name).await;
            assert_eq!(r.status, StatusCode::InvalidData, "{action} {name:?}");
            assert_eq!(r.status.code(), 4);
        }
        let r = dispatch(&agent, &node_with(&agent), action, &json!({})).await;
        assert_eq!(r.status, StatusCode::MissingData, "{action}");
    }
    for version in ["-1", "1 2", "1;reboot", "$(x)"] {
        let r = call_with(
            &agent,
            "install",
            json!({"package": "zsh", "version": version}),
        )
        .await;
        assert_eq!(r.status, StatusCode::InvalidData, "{version:?}");
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

/// Choria's package agent (package.json of choria-plugins/package-agent 5.5.1): each action,
/// its inputs with whether they are optional, and its outputs.
const CHORIA: &[ChoriaAction] = &[
    (
        "apt_checkupdates",
        &[],
        &["output", "outdated_packages", "exitcode"],
    ),
    (
        "apt_update",
        &[],
        &["output", "outdated_packages", "exitcode"],
    ),
    (
        "checkupdates",
        &[],
        &["package_manager", "output", "outdated_packages", "exitcode"],
    ),
    ("count", &[], &["output", "exitcode"]),
    (
        "install",
        &[("package", false), ("version", true)],
        &[
            "output", "epoch", "arch", "ensure", "version", "provider", "name", "release",
        ],
    ),
    ("md5", &[], &["output", "exitcode"]),
    (
        "purge",
        &[("package", false)],
        &[
            "output", "epoch", "arch", "ensure", "version", "provider", "name", "release",
        ],
    ),
    ("refresh", &[], &["output", "exitcode"]),
    (
        "search",
        &[("package", false)],
        &["package_count", "available_packages"],
    ),
    (
        "status",
        &[("package", false)],
        &[
            "output", "epoch", "arch", "ensure", "version", "provider", "name", "release",
        ],
    ),
    (
        "uninstall",
        &[("package", false)],
        &[
            "output", "epoch", "arch", "ensure", "version", "provider", "name", "release",
        ],
    ),
    (
        "update",
        &[("package", false)],
        &[
            "output", "epoch", "arch", "ensure", "version", "provider", "name", "release",
        ],
    ),
    (
        "yum_checkupdates",
        &[],
        &["output", "outdated_packages", "exitcode"],
    ),
    ("yum_clean", &[("mode", true)], &["output", "exitcode"]),
];

#[test]
fn the_ddl_is_a_superset_of_choria_s() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_superset(&ddl, CHORIA);
    let clean = &ddl.action("yum_clean").unwrap().input["mode"];
    assert_eq!(
        clean.list,
        Some(
            [
                "all",
                "headers",
                "packages",
                "metadata",
                "dbcache",
                "plugins",
                "expire-cache"
            ]
            .map(Value::from)
            .to_vec()
        )
    );
    let summaries = |action: &str| -> BTreeSet<String> {
        ddl.action(action)
            .unwrap()
            .aggregate
            .iter()
            .filter_map(|a| a.output().map(str::to_string))
            .collect()
    };
    assert_eq!(
        summaries("status"),
        ["arch", "ensure"].map(String::from).into()
    );
    assert_eq!(summaries("count"), ["output".to_string()].into());
    assert_eq!(summaries("search"), ["package_count".to_string()].into());
}

/// Every action runs (on the backend it is for), and every output it gives is described.
#[tokio::test]
async fn every_action_in_the_ddl_is_handled_and_its_outputs_described() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    let apt = Tools::new(PackageBackend::Apt).await;
    apt.set("list", DPKG_LIST);
    apt.set("simulate", SIMULATE);
    let dnf = Tools::new(PackageBackend::Dnf).await;
    dnf.set("list", RPM_QA);
    dnf.set("search-zsh", "zsh.x86_64  5.8-9.el9  baseos\n");
    for tools in [&apt, &dnf] {
        let agent = tools.agent();
        assert_eq!(agent.ddl().action_names(), ddl.action_names());
        for action in ddl.action_names() {
            let described = ddl.action(action).expect("described");
            let inputs = if described.input.contains_key("package") {
                json!({"package": "zsh"})
            } else {
                json!({})
            };
            let r = call_with(&agent, action, inputs).await;
            if r.status != StatusCode::Ok {
                assert_eq!(r.status, StatusCode::Aborted, "{action}: {}", r.message);
                assert!(
                    r.message.contains("package backend"),
                    "{action}: {}",
                    r.message
                );
                continue;
            }
            for key in r.data.as_object().expect("object").keys() {
                assert!(described.output.contains_key(key), "{action} output {key}");
            }
        }
    }
    let r = call(&apt.agent(), "frobnicate", "zsh").await;
    assert_eq!(r.status, StatusCode::UnknownAction);
}
