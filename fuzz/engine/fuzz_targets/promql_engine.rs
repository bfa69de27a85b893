//! PromQL parsed, planned and executed over a small dataset, instant and range: a value or
//! an error, never a panic.
#![no_main]

mod common;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engines = common::engines();
    let lookback = Duration::from_secs(300);
    let _ = engines
        .runtime
        .block_on(engines.promql.instant(text, 300_000, lookback));
    let _ = engines
        .runtime
        .block_on(engines.promql.range(text, 0, 600_000, 30_000, lookback));
});
