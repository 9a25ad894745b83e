//! What the `job` fuzz target (`fuzz/`) checks beyond the decoders, here so its corpus also
//! runs as an ordinary test: a job answer that decodes gives a report, whatever its numbers.

// A property that fails is a panic: that is how the fuzzer hears of it.
#![allow(clippy::expect_used)]

use muster_proto::job::JobAnswer;

use crate::collect::{report_from_job, still_running};

/// [`muster_proto::fuzz_checks::job_answer`], then the report `muster show` builds from an
/// answer that decodes: every expected node accounted once, and the report serialises.
pub fn job(data: &[u8]) {
    muster_proto::fuzz_checks::job_answer(data);
    let Ok(answer) = JobAnswer::decode(data) else {
        return;
    };
    let Some(job) = &answer.job else {
        return;
    };
    let report = report_from_job(job, &answer.events);
    let expected: std::collections::BTreeSet<&String> = job
        .expected
        .iter()
        .chain(job.absent.iter().map(|(identity, _)| identity))
        .collect();
    let accounted = report
        .replies
        .iter()
        .filter(|r| r.outcome != crate::Outcome::Unexpected)
        .count()
        .saturating_add(report.missing.len());
    assert!(
        accounted <= expected.len(),
        "{accounted} of {}",
        expected.len()
    );
    serde_json::to_string(&report).expect("a report serialises");
    let _ = still_running(job, 1_795_600_800.0);
}
