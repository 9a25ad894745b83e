//! Fuzzes muster_proto::fuzz_checks::registry_answer (see there for the properties checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| muster_proto::fuzz_checks::registry_answer(data));
