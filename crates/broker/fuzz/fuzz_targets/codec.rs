//! Fuzzes the broker's NATS codec: any bytes, fed whole or in pieces, decode the same way and
//! never panic. Run on stable with `cargo fuzz run -s none codec -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = muster_broker::codec::check_split_consistency(data) {
        panic!("{e}");
    }
});
