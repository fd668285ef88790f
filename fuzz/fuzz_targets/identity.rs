//! The publisher's reading of a client's identity from certificate DER
//! bytes (x509-parser underneath). Every name found is lower-case, trimmed
//! and non-empty.

#![no_main]

use cib_net::identity::ClientIdentity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = ClientIdentity::from_der(data) else { return };
    assert!(!id.names().is_empty());
    for n in id.names() {
        assert!(!n.is_empty() && n.trim() == n && n.to_ascii_lowercase() == *n, "name {n:?}");
    }
    let first = id.names()[0].to_ascii_uppercase();
    assert!(id.allowed_by(&[first]).is_some());
    let _ = id.to_string();
});
