//! The configuration file and rule files as the server and `quiver check` read them: any text
//! gets a configuration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = quiver::config::Config::from_yaml(text, "fuzz.yml");
        let _ = quiver::rules::file::parse_file(text, "rules.yml");
    }
});
