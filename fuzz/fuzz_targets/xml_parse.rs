//! The hardened XML parser on arbitrary bytes: decoding, parsing, and for
//! every accepted document, the writer's output parses back to the same
//! tree.
//!
//! "The same" as the tree keeps text: exactly for an element without
//! children; for one with children (mixed content, which Pacemaker's schema
//! never has), the text is kept only so that its presence can be refused,
//! and the writer's indentation is added to it, so only its words are
//! compared.

#![no_main]

use cib_transforms::xml::{self, Element};
use libfuzzer_sys::fuzz_target;

fn same(a: &Element, b: &Element) -> bool {
    let text = if a.children.is_empty() {
        a.text == b.text
    } else {
        a.text.split_whitespace().eq(b.text.split_whitespace())
    };
    text && a.name == b.name
        && a.attrs == b.attrs
        && a.children.len() == b.children.len()
        && a.children.iter().zip(&b.children).all(|(x, y)| same(x, y))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = xml::decode(data) else { return };
    let Ok(tree) = xml::parse(text) else { return };
    let written = tree.to_xml();
    let again = xml::parse(&written).unwrap_or_else(|e| panic!("the writer's output does not parse: {e}\n{written}"));
    assert!(same(&tree, &again), "the writer's output parses to another tree:\n{written}\n{tree:?}\n{again:?}");
});
