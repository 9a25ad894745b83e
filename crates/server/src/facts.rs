//! The node's facts and classes: built-in facts, fact files (YAML or JSON, nested), a facts
//! command's JSON output, and the classes file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// Facts or classes that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid YAML or JSON, or its top level is not a mapping.
    #[error("invalid facts file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The facts command failed or printed something other than a JSON object.
    #[error("facts command {command:?} failed: {message}")]
    Command {
        /// The command.
        command: String,
        /// What went wrong.
        message: String,
    },
}

/// How long the facts command may run.
const FACTS_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Loads all facts: built-in facts first, then each file, then the command's output. Maps
/// merge deeply: a later source's value wins at the leaf, so a file that sets `os.patchlevel`
/// keeps the built-in `os.family`.
pub async fn load(files: &[PathBuf], command: Option<&str>) -> Result<Value, FactsError> {
    let mut facts = builtin();
    for path in files {
        merge(&mut facts, load_file(path)?);
    }
    if let Some(command) = command {
        merge(&mut facts, run_command(command).await?);
    }
    Ok(Value::Object(facts))
}

/// Merges `from` into `into`: where both have a map under a key the maps are merged the same
/// way; anything else (a scalar, a list, or a map meeting a non-map) is replaced by `from`'s.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Reads one facts file: `.json` as JSON, anything else as YAML (a superset of JSON).
pub fn load_file(path: &Path) -> Result<Map<String, Value>, FactsError> {
    let text = std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_err = |message: String| FactsError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let value: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?
    } else if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_saphyr::from_str(&text).map_err(|e| parse_err(e.to_string()))?
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(parse_err(format!(
            "the top level must be a mapping of fact names to values, found {}",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

async fn run_command(command: &str) -> Result<Map<String, Value>, FactsError> {
    let fail = |message: String| FactsError::Command {
        command: command.to_string(),
        message,
    };
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FACTS_COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| fail(format!("still running after {FACTS_COMMAND_TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        return Err(fail(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    match serde_json::from_slice(&output.stdout) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(fail(format!(
            "printed {}, expected a JSON object",
            kind(&other)
        ))),
        Err(e) => Err(fail(format!("printed invalid JSON: {e}"))),
    }
}

/// Reads the classes file: one class per line; blank lines and `#` comments are skipped.
pub fn load_classes(path: &Path) -> Result<Vec<String>, FactsError> {
    let text = std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    classes.sort();
    classes.dedup();
    Ok(classes)
}

/// Facts every node has: hostname, os, kernel, arch, cpus, memory.
pub fn builtin() -> Map<String, Value> {
    let hostname = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let os = os_release(&std::fs::read_to_string("/etc/os-release").unwrap_or_default());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total_bytes(&m))
        .unwrap_or(0);
    let facts = json!({
        "hostname": hostname,
        "os": os,
        "kernel": kernel,
        "arch": std::env::consts::ARCH,
        "cpus": cpus,
        "memory": memory,
    });
    match facts {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `os` from `/etc/os-release`: name, family (`ID_LIKE`'s first word, else `ID`, capitalised
/// as facter does: `Debian`, `RedHat`), id and release.
fn os_release(text: &str) -> Value {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let id = get("ID");
    let like = get("ID_LIKE");
    let base = like.split_whitespace().next().unwrap_or(&id).to_string();
    let family = match base.as_str() {
        "debian" | "ubuntu" => "Debian".to_string(),
        "rhel" | "fedora" | "centos" => "RedHat".to_string(),
        "suse" | "opensuse" => "Suse".to_string(),
        "" => std::env::consts::OS.to_string(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    };
    json!({
        "name": get("NAME"),
        "id": id,
        "family": family,
        "release": get("VERSION_ID"),
    })
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_families() {
        let cases = [
            (
                "ID=debian\nVERSION_ID=\"12\"\nNAME=\"Debian GNU/Linux\"",
                "Debian",
                "12",
            ),
            (
                "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"",
                "Debian",
                "24.04",
            ),
            (
                "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"",
                "RedHat",
                "9.3",
            ),
            ("ID=arch", "Arch", ""),
        ];
        for (text, family, release) in cases {
            let os = os_release(text);
            assert_eq!(os["family"], family, "{text}");
            assert_eq!(os["release"], release, "{text}");
        }
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            mem_total_bytes("MemTotal:  2048 kB\nMemFree: 1 kB"),
            Some(2048 * 1024)
        );
        assert_eq!(mem_total_bytes("nothing"), None);
    }

    #[tokio::test]
    async fn files_merge_in_order_and_nest() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("a.yaml");
        let json = dir.path().join("b.json");
        std::fs::write(&yaml, "role: web\ndc: ams\nos:\n  family: Custom\n").unwrap();
        std::fs::write(&json, r#"{"dc": "fra", "pkg": {"openssl": "3.0.11"}}"#).unwrap();
        let facts = load(&[yaml, json], Some("echo '{\"from_cmd\": 1}'"))
            .await
            .unwrap();
        assert_eq!(facts["role"], "web");
        assert_eq!(facts["dc"], "fra");
        assert_eq!(facts["os"]["family"], "Custom");
        assert_eq!(facts["pkg"]["openssl"], "3.0.11");
        assert_eq!(facts["from_cmd"], 1);
        assert!(facts["cpus"].as_u64().unwrap() >= 1);
    }

    #[tokio::test]
    async fn maps_merge_deeply_and_the_later_source_wins_at_the_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("os.yaml");
        std::fs::write(
            &file,
            "os:\n  patchlevel: 7\n  release: \"12.5\"\nlist: [3]\n",
        )
        .unwrap();
        let built_in = builtin();
        let facts = load(
            &[file],
            Some(r#"echo '{"os": {"extra": {"a": 1}}, "list": [4], "memory": {"total": 5}}'"#),
        )
        .await
        .unwrap();
        // The file adds a leaf and replaces one; the built-in siblings stay.
        assert_eq!(facts["os"]["patchlevel"], 7);
        assert_eq!(facts["os"]["release"], "12.5");
        assert_eq!(facts["os"]["family"], built_in["os"]["family"]);
        assert_eq!(facts["os"]["name"], built_in["os"]["name"]);
        assert_eq!(facts["os"]["extra"]["a"], 1);
        // Lists and scalars are leaves: replaced whole, also by a map.
        assert_eq!(facts["list"], json!([4]));
        assert_eq!(facts["memory"], json!({"total": 5}));

        let mut into = json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}})
            .as_object()
            .unwrap()
            .clone();
        let from = json!({"a": {"b": {"c": 9}, "e": {"f": 4}}})
            .as_object()
            .unwrap()
            .clone();
        merge(&mut into, from);
        assert_eq!(
            Value::Object(into),
            json!({"a": {"b": {"c": 9, "d": 2}, "e": {"f": 4}}})
        );
    }

    #[tokio::test]
    async fn bad_sources_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.yaml");
        std::fs::write(&list, "- a\n- b\n").unwrap();
        let err = load(&[list], None).await.unwrap_err().to_string();
        assert!(
            err.contains("list.yaml") && err.contains("mapping"),
            "{err}"
        );
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let err = load(&[broken], None).await.unwrap_err().to_string();
        assert!(err.contains("broken.json"), "{err}");
        let err = load(&[dir.path().join("missing.yaml")], None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing.yaml"), "{err}");
        let err = load(&[], Some("exit 3")).await.unwrap_err().to_string();
        assert!(err.contains("exit 3"), "{err}");
        let err = load(&[], Some("echo nope")).await.unwrap_err().to_string();
        assert!(err.contains("invalid JSON"), "{err}");
    }

    #[test]
    fn classes_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.txt");
        std::fs::write(&path, "nginx\n\n# comment\n  base \nnginx\n").unwrap();
        assert_eq!(load_classes(&path).unwrap(), vec!["base", "nginx"]);
    }
}
