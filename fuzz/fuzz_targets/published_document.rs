//! What a subscriber does with a document received from a publisher:
//! decode, parse, read and verify it as a published scope. For every
//! document accepted, the digest is that of the content, and the document
//! written again is accepted again with the same digest.

#![no_main]

use cib_transforms::{canonical, xml, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = xml::decode(data) else { return };
    let Ok(doc) = xml::parse(text) else { return };
    let Ok(scope) = Scope::from_published(doc, None) else { return };
    assert_eq!(canonical::digest(&scope.config), scope.digest);
    let written = scope.to_document_xml();
    let doc = xml::parse(&written).unwrap_or_else(|e| panic!("a published scope written again does not parse: {e}\n{written}"));
    let again = Scope::from_published(doc, Some(&scope.ticket))
        .unwrap_or_else(|e| panic!("a published scope written again is refused: {e}\n{written}"));
    assert_eq!(again.digest, scope.digest);
    assert_eq!(again, scope);
});
