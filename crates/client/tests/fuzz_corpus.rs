//! The `job` fuzz corpus (`fuzz/corpus/job/`) through the report `muster show` builds, on
//! every test run.

// Helpers here unwrap as the tests do (clippy.toml allows that only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn job() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/job");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        muster_client::fuzz_checks::job(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "the corpus {} is empty", dir.display());
}
