//! The fuzz corpora (`fuzz/corpus/<target>/`) run as ordinary tests: every input the fuzzer
//! kept, and every crash it found once fixed, is checked on every test run.

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn each_input(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        check(&data);
        count += 1;
    }
    assert!(count > 0, "the corpus {} is empty", dir.display());
}

#[test]
fn envelope() {
    each_input("envelope", muster_proto::fuzz_checks::envelope);
}

#[test]
fn request() {
    each_input("request", muster_proto::fuzz_checks::request);
}

#[test]
fn filter() {
    each_input("filter", muster_proto::fuzz_checks::filter);
}

#[test]
fn ddl() {
    each_input("ddl", muster_proto::fuzz_checks::ddl);
}

#[test]
fn registry_answer() {
    each_input(
        "registry_answer",
        muster_proto::fuzz_checks::registry_answer,
    );
}

#[test]
fn job() {
    each_input("job", muster_proto::fuzz_checks::job_answer);
}
