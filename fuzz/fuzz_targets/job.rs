//! Fuzzes muster_client::fuzz_checks::job (see there for the properties checked): the job
//! decoders and the report `muster show` rebuilds from what decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| muster_client::fuzz_checks::job(data));
