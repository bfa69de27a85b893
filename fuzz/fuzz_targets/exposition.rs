//! Both exposition parsers must return Ok or Err on any input, never panic or hang.
#![no_main]

#[path = "../../src/scrape/parser.rs"]
#[allow(dead_code)]
mod parser;

/// What the parser names from the rest of the crate, at the paths it names it by.
#[path = "../../src/model"]
mod model {
    #[allow(dead_code)]
    mod metadata;
    pub use metadata::{Metadata, MetricType};
}

#[path = "../../src/gocompat"]
mod gocompat {
    #[allow(dead_code)]
    pub mod strconv;
}

use libfuzzer_sys::fuzz_target;
use parser::{Format, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text, Format::PrometheusText);
        let _ = parse(text, Format::OpenMetrics);
    }
});
