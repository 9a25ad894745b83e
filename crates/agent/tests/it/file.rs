//! The `file` agent through `dispatch`, on files, directories, symlinks and FIFOs made in a
//! temporary directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use muster_agent::config::FileConfig;
use muster_agent::file::{DDL, File};
use muster_agent::{ActionResult, Agent, dispatch};
use muster_proto::StatusCode;
use muster_proto::ddl::Ddl;
use serde_json::json;

use crate::support::node_with;

fn agent() -> File {
    File::new(&FileConfig::default()).expect("file agent")
}

async fn call(agent: &File, action: &str, path: &Path) -> ActionResult {
    let data = json!({ "path": path.to_str().expect("a UTF-8 path") });
    dispatch(agent, &node_with(agent), action, &data).await
}

/// `sha256("hello\n")`.
const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
/// `sha256("")`.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A temporary tree: `hello` (a file), `dir/`, `link` → `hello`, `dangling` → `nowhere`.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("hello"), "hello\n").expect("write");
    fs::create_dir(d.join("dir")).expect("mkdir");
    symlink(d.join("hello"), d.join("link")).expect("symlink");
    symlink(d.join("nowhere"), d.join("dangling")).expect("symlink");
    dir
}

/// Makes a FIFO with `mkfifo`.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[tokio::test]
async fn exists_looks_at_the_path_itself() {
    let dir = tree();
    let d = dir.path();
    let agent = agent();
    let table = [
        ("hello", true),
        ("dir", true),
        ("link", true),
        // A dangling symlink is still something at the path.
        ("dangling", true),
        ("missing", false),
        // Through a file: not a directory, so nothing there.
        ("hello/x", false),
    ];
    for (name, exists) in table {
        let r = call(&agent, "exists", &d.join(name)).await;
        assert_eq!(r.status, StatusCode::Ok, "{name}: {}", r.message);
        assert_eq!(r.data, json!({ "exists": exists }), "{name}");
    }
}

#[tokio::test]
async fn stat_describes_files_directories_and_symlinks() {
    let dir = tree();
    let d = dir.path();
    let hello = d.join("hello");
    fs::set_permissions(&hello, fs::Permissions::from_mode(0o640)).expect("chmod");
    fs::File::options()
        .write(true)
        .open(&hello)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000)))
        .expect("set mtime");
    fs::set_permissions(d.join("dir"), fs::Permissions::from_mode(0o2755)).expect("chmod");
    let me = fs::metadata(&hello).expect("metadata");
    let agent = agent();

    let r = call(&agent, "stat", &hello).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(
        r.data,
        json!({
            "exists": true,
            "type": "file",
            "size": 6,
            "mode": "0640",
            "uid": me.uid(),
            "gid": me.gid(),
            "mtime": "2023-11-14T22:13:20Z",
        })
    );

    let r = call(&agent, "stat", &d.join("dir")).await;
    assert_eq!(r.data["type"], "directory");
    assert_eq!(r.data["mode"], "2755");

    // The link itself, not its target: its size is the length of the target's path.
    let link = d.join("link");
    let r = call(&agent, "stat", &link).await;
    assert_eq!(r.data["type"], "symlink");
    assert_eq!(r.data["size"], hello.as_os_str().len());
    let r = call(&agent, "stat", &d.join("dangling")).await;
    assert_eq!(
        (r.status, &r.data["type"]),
        (StatusCode::Ok, &json!("symlink"))
    );

    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let r = call(&agent, "stat", &fifo).await;
    assert_eq!(r.data["type"], "other");
    let r = call(&agent, "stat", Path::new("/dev/null")).await;
    assert_eq!(r.data["type"], "other");
}

#[tokio::test]
async fn stat_of_a_missing_path_is_an_answer() {
    let dir = tree();
    let agent = agent();
    for name in ["missing", "hello/x"] {
        let r = call(&agent, "stat", &dir.path().join(name)).await;
        assert_eq!(r.status, StatusCode::Ok, "{name}: {}", r.message);
        assert_eq!(
            r.data,
            json!({
                "exists": false,
                "type": null,
                "size": null,
                "mode": null,
                "uid": null,
                "gid": null,
                "mtime": null,
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn checksum_reads_regular_files_following_symlinks() {
    let dir = tree();
    let d = dir.path();
    fs::write(d.join("empty"), "").expect("write");
    let agent = agent();
    let table = [
        ("hello", HELLO_SHA256, 6),
        ("link", HELLO_SHA256, 6),
        ("empty", EMPTY_SHA256, 0),
    ];
    for (name, sha, size) in table {
        let r = call(&agent, "checksum", &d.join(name)).await;
        assert_eq!(r.status, StatusCode::Ok, "{name}: {}", r.message);
        assert_eq!(r.data, json!({"sha256": sha, "size": size}), "{name}");
    }
}

#[tokio::test]
async fn checksum_of_a_large_file_matches_sha256sum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big");
    // Several read chunks, not a multiple of any of them.
    let content: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&path, &content).expect("write");
    let r = call(&agent(), "checksum", &path).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(r.data["size"], 300_001);
    match std::process::Command::new("sha256sum").arg(&path).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let want = text.split_whitespace().next().expect("a checksum");
            assert_eq!(r.data["sha256"], want);
        }
        _ => eprintln!("sha256sum is not available: the checksum is not cross-checked"),
    }
}

#[tokio::test]
async fn checksum_refuses_what_it_cannot_read_and_says_why() {
    let dir = tree();
    let d = dir.path();
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let agent = agent();
    let table = [
        (d.join("missing"), "no such file: "),
        (d.join("dangling"), "no such file: "),
        (d.join("hello/x"), "no such file: "),
        (
            d.join("dir"),
            "is a directory; checksum reads regular files only",
        ),
        // Must not wait for a writer.
        (fifo, "is not a regular file"),
    ];
    for (path, want) in table {
        let r = tokio::time::timeout(Duration::from_secs(5), call(&agent, "checksum", &path))
            .await
            .expect("checksum answers at once");
        assert_eq!(r.status, StatusCode::Aborted, "{}", path.display());
        assert!(
            r.message.contains(want),
            "{}: {}",
            path.display(),
            r.message
        );
    }
}

#[tokio::test]
async fn checksum_stops_at_the_configured_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = File::new(&FileConfig {
        max_checksum_bytes: 10,
    })
    .expect("agent");
    let fits = dir.path().join("ten");
    fs::write(&fits, "0123456789").expect("write");
    let r = call(&agent, "checksum", &fits).await;
    assert_eq!(r.status, StatusCode::Ok, "{}", r.message);
    assert_eq!(r.data["size"], 10);

    let big = dir.path().join("eleven");
    fs::write(&big, "0123456789a").expect("write");
    let r = call(&agent, "checksum", &big).await;
    assert_eq!(r.status, StatusCode::Aborted);
    assert!(
        r.message
            .contains("is 11 bytes, larger than the 10 bytes this node checksums"),
        "{}",
        r.message
    );
    assert!(r.message.contains("max_checksum_bytes"), "{}", r.message);
}

#[tokio::test]
async fn paths_must_be_absolute() {
    let agent = agent();
    let long = format!("/{}", "a".repeat(4096));
    for action in ["exists", "stat", "checksum"] {
        for path in ["etc/hosts", "", "./x", "~/x", long.as_str()] {
            let r = dispatch(&agent, &node_with(&agent), action, &json!({ "path": path })).await;
            assert_eq!(r.status, StatusCode::InvalidData, "{action} {path:?}");
        }
        let r = dispatch(&agent, &node_with(&agent), action, &json!({})).await;
        assert_eq!(r.status, StatusCode::MissingData, "{action}");
    }
}

#[tokio::test]
async fn the_ddl_parses_and_every_action_in_it_is_handled() {
    let ddl = Ddl::parse(DDL).expect("the shipped DDL parses");
    assert!(ddl.warnings.is_empty(), "{:?}", ddl.warnings);
    assert_eq!(ddl.metadata.name, "file");
    let dir = tree();
    let agent = agent();
    assert_eq!(agent.ddl().action_names(), ddl.action_names());
    for action in ddl.action_names() {
        let r = call(&agent, action, &dir.path().join("hello")).await;
        assert_eq!(r.status, StatusCode::Ok, "{action}: {}", r.message);
        let described = ddl.action(action).expect("described");
        let mut keys: Vec<&String> = r.data.as_object().expect("object").keys().collect();
        let mut outputs: Vec<&String> = described.output.keys().collect();
        keys.sort();
        outputs.sort();
        assert_eq!(keys, outputs, "{action} fills every output");
    }
    let r = call(&agent, "remove", &dir.path().join("hello")).await;
    assert_eq!(r.status, StatusCode::UnknownAction);
}
