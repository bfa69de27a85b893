//! PostgreSQL frontend messages as the wire-protocol port decodes them (pgwire's codec, on
//! bytes as a client sends them, before and after start-up): never a panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    // The three states of a server connection: before SSL negotiation, before start-up,
    // and in session.
    for (ssl, startup) in [(true, true), (false, true), (false, false)] {
        let mut context = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        context.awaiting_frontend_ssl = ssl;
        context.awaiting_frontend_startup = startup;
        let mut buf = BytesMut::from(data);
        // Message after message until the bytes run out or one is refused, moving through
        // the states as a server does after each (pgwire's own loop lives in its server).
        loop {
            let before = buf.len();
            match PgWireFrontendMessage::decode(&mut buf, &context) {
                Ok(Some(_)) if buf.len() < before => {
                    if context.awaiting_frontend_ssl {
                        context.awaiting_frontend_ssl = false;
                    } else {
                        context.awaiting_frontend_startup = false;
                    }
                }
                _ => break,
            }
        }
    }
});
