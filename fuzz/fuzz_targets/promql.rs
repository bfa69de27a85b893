//! PromQL text: Quiver's rewrite of newer syntax (duration expressions, anchored/smoothed,
//! RE2 matchers) and then promql-parser. Neither may panic on any input; a rewrite that
//! succeeds must leave text the parser can be asked about without panicking either.
#![no_main]

#[path = "../../src/query/promql/syntax.rs"]
#[allow(dead_code)]
mod syntax;

/// The Go-compatibility modules the rewrite uses, at the paths it names them by.
#[path = "../../src/gocompat"]
mod gocompat {
    #[allow(dead_code)]
    pub mod regex;
    #[allow(dead_code)]
    pub mod strconv;
}

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for times in [
        syntax::QueryTimes::default(),
        syntax::QueryTimes {
            step_ms: 15_000,
            range_ms: 3_600_000,
        },
    ] {
        if let Ok(rewritten) = syntax::rewrite(text, times) {
            let _ = promql_parser::parser::parse(&rewritten);
        }
    }
});
