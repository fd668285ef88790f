//! The hardened XML parser on arbitrary bytes: decoding, parsing, and for
//! every accepted document, the writer's output parses back to the same
//! tree.

#![no_main]

use cib_transforms::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = xml::decode(data) else { return };
    let Ok(tree) = xml::parse(text) else { return };
    let written = tree.to_xml();
    let again = xml::parse(&written).unwrap_or_else(|e| panic!("the writer's output does not parse: {e}\n{written}"));
    assert_eq!(tree, again, "the writer's output parses to another tree:\n{written}");
});
