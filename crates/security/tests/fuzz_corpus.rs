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
fn policy() {
    each_input("policy", muster_security::fuzz_checks::policy);
}

#[test]
fn credential() {
    each_input("credential", muster_security::fuzz_checks::credential);
}
