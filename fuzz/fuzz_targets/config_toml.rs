//! The publisher's and the subscriber's configuration files (TOML) parsed
//! from text, and the checks of them that touch no file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = text.parse::<cib_publisher::config::Config>() {
        let _ = c.limits.validate();
        let _ = c.ticket_names();
    }
    if let Ok(c) = text.parse::<cib_subscriber::config::Config>() {
        for t in &c.tickets {
            let _ = t.peer_urls();
        }
    }
});
