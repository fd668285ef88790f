//! The inputs kept from fuzzing (`fuzz/regressions/`, see
//! docs/reliability.md) through the properties of their fuzz targets, on
//! the stable toolchain: what `scripts/fuzz replay` checks with libFuzzer,
//! checked by every `cargo test`.

use std::path::{Path, PathBuf};

use cib_transforms::xml::{self, Element};
use cib_transforms::{canonical, Scope};

/// The files of `fuzz/regressions/<target>`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Equal trees, the text of an element with children compared by its words
/// (the writer indents mixed content, which CIBs never hold).
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

#[test]
fn xml_parse_regressions_round_trip() {
    for (path, bytes) in inputs("xml_parse") {
        let Ok(text) = xml::decode(&bytes) else { continue };
        let Ok(tree) = xml::parse(text) else { continue };
        let written = tree.to_xml();
        let again = xml::parse(&written).unwrap_or_else(|e| panic!("{}: the writer's output does not parse: {e}", path.display()));
        assert!(same(&tree, &again), "{}: the writer's output parses to another tree", path.display());
    }
}

#[test]
fn published_document_regressions_keep_their_digest() {
    for (path, bytes) in inputs("published_document") {
        let Ok(text) = xml::decode(&bytes) else { continue };
        let Ok(doc) = xml::parse(text) else { continue };
        let Ok(scope) = Scope::from_published(doc, None) else { continue };
        assert_eq!(canonical::digest(&scope.config), scope.digest, "{}", path.display());
        let doc = xml::parse(&scope.to_document_xml()).unwrap();
        let again = Scope::from_published(doc, Some(&scope.ticket)).unwrap_or_else(|e| panic!("{}: written again, refused: {e}", path.display()));
        assert_eq!(again, scope, "{}", path.display());
    }
}

/// Mixed content: the writer's indentation joins the text, the words stay.
#[test]
fn mixed_content_text_keeps_its_words() {
    let tree = xml::parse("<a>\n  x  y\n<b/>z</a>").unwrap();
    let again = xml::parse(&tree.to_xml()).unwrap();
    assert!(same(&tree, &again));
    assert_ne!(tree.text, again.text);
}
