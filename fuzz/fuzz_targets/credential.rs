//! Fuzzes muster_security::fuzz_checks::credential (see there for the properties checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| muster_security::fuzz_checks::credential(data));
