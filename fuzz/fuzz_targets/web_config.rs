//! The web configuration file (`--web.config.file`): parsed and checked as the server does
//! at start and on every change. Any text gets Ok or a clear Err, never a panic.
#![no_main]

#[path = "../../src/web"]
mod web {
    #[allow(dead_code)]
    pub mod config;
    /// The hash check `config` calls (the server's is in `web/auth.rs`, which needs the
    /// whole HTTP stack): the same bcrypt parse.
    pub mod auth {
        pub fn is_bcrypt_hash(hash: &str) -> bool {
            hash.parse::<bcrypt::HashParts>()
                .is_ok_and(|parts| (4..=31).contains(&parts.get_cost()))
        }
    }
}

#[path = "../../src/gocompat"]
mod gocompat {
    #[allow(dead_code)]
    pub mod duration;
    #[allow(dead_code)]
    pub mod strconv;
}

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = web::config::WebConfig::parse(text);
    }
});
