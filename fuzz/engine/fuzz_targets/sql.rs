//! SQL through the read-only guard, planning and execution over a small dataset: any text
//! gets rows or an error (never a panic), and nothing that writes gets through.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engines = common::engines();
    let _ = engines.runtime.block_on(engines.sql.query(text));
});
