//! Canonical form of configuration fragments and their SHA-256 digest.
//!
//! Two fragments that mean the same thing to Pacemaker serialize to the same
//! bytes: attributes are sorted by name; the children of `<resources>`,
//! `<constraints>` and `<tags>` are sorted by id (their order carries no
//! meaning); so are the `obj_ref`s of a tag, the `op`s of an `operations`
//! block and the `nvpair`s of one attribute set when their names are unique.
//! Everything whose order *does* matter is kept: group members, resource sets
//! and their members, rules, and the sets themselves (which set is first
//! decides ties).

use sha2::{Digest, Sha256};

use crate::xml::{escape_text, Element};

/// Elements whose children are unordered and keyed by `id`.
const SORT_BY_ID: &[&str] = &["resources", "constraints", "tags", "tag", "operations"];

/// Attribute-set elements whose `nvpair`s can be sorted by name.
const NVSETS: &[&str] = &[
    "instance_attributes",
    "meta_attributes",
    "utilization",
    "cluster_property_set",
];

/// Puts `el` (and its whole subtree) into canonical form, in place.
pub fn canonicalize(el: &mut Element) {
    el.attrs.sort_by(|a, b| a.0.cmp(&b.0));
    for c in &mut el.children {
        canonicalize(c);
    }
    if SORT_BY_ID.contains(&el.name.as_str()) {
        el.children.sort_by(|a, b| {
            (a.id().unwrap_or(""), a.name.as_str()).cmp(&(b.id().unwrap_or(""), b.name.as_str()))
        });
    } else if NVSETS.contains(&el.name.as_str()) && nvpair_names_unique(el) {
        el.children.sort_by(|a, b| {
            let key = |e: &Element| (e.name != "nvpair", e.attr("name").unwrap_or("").to_string());
            key(a).cmp(&key(b))
        });
    }
}

fn nvpair_names_unique(set: &Element) -> bool {
    let mut names: Vec<&str> = set
        .children
        .iter()
        .filter(|c| c.name == "nvpair")
        .map(|c| c.attr("name").unwrap_or(""))
        .collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    names.len() == n
}

/// Canonical serialization of the *children* of `el` (its own attributes are
/// not part of the meaning: they carry publication metadata).
pub fn canonical_content(el: &Element) -> String {
    let mut copy = Element::new(el.name.clone());
    copy.children = el.children.clone();
    copy.text = el.text.clone();
    canonicalize(&mut copy);
    copy.to_xml()
}

/// `sha256:<hex>` of the canonical serialization of `el`'s content.
pub fn digest(el: &Element) -> String {
    digest_str(&canonical_content(el))
}

/// [`digest`] of an element whose subtree is already in canonical form
/// (e.g. a [`crate::Scope`]'s configuration): the same value, without
/// copying and re-sorting the tree.
pub fn digest_of_canonical(el: &Element) -> String {
    // Same bytes as `Element::to_xml` of an attribute-less copy of `el`.
    let name = &el.name;
    let mut out = String::new();
    if el.children.is_empty() && el.text.is_empty() {
        out.push_str(&format!("<{name}/>\n"));
    } else if el.children.is_empty() {
        out.push_str(&format!("<{name}>{}</{name}>\n", escape_text(&el.text)));
    } else {
        out.push_str(&format!("<{name}>\n"));
        if !el.text.is_empty() {
            out.push_str(&format!("  {}\n", escape_text(&el.text)));
        }
        for c in &el.children {
            c.write_indented(&mut out, 1);
        }
        out.push_str(&format!("</{name}>\n"));
    }
    digest_str(&out)
}

/// `sha256:<hex>` of a string.
pub fn digest_str(s: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(s.as_bytes())))
}

/// Digest of one element as it stands (canonicalized copy, attributes
/// included): used to detect local edits of owned elements.
pub fn element_digest(el: &Element) -> String {
    let mut copy = el.clone();
    canonicalize(&mut copy);
    digest_str(&copy.to_xml())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn unordered_children_do_not_change_digest() {
        let a = parse(
            r#"<configuration><resources><primitive id="a" type="Dummy" class="ocf"/><primitive id="b" class="ocf" type="Dummy"/></resources><constraints/></configuration>"#,
        )
        .unwrap();
        let b = parse(
            r#"<configuration><resources><primitive class="ocf" id="b" type="Dummy"/><primitive type="Dummy" class="ocf" id="a"/></resources><constraints/></configuration>"#,
        )
        .unwrap();
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn ordered_children_change_digest() {
        let a = parse(r#"<configuration><resources><group id="g"><primitive id="a"/><primitive id="b"/></group></resources></configuration>"#).unwrap();
        let b = parse(r#"<configuration><resources><group id="g"><primitive id="b"/><primitive id="a"/></group></resources></configuration>"#).unwrap();
        assert_ne!(digest(&a), digest(&b), "group order is meaningful");
        let c = parse(r#"<configuration><resources><group id="g"><primitive id="a"/><primitive id="c"/></group></resources></configuration>"#).unwrap();
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn digest_of_canonical_equals_digest() {
        for src in [
            r#"<configuration x="1"><resources><primitive id="a" type="Dummy"/></resources><constraints/></configuration>"#,
            r#"<configuration/>"#,
            r#"<configuration>text &amp; more</configuration>"#,
        ] {
            let mut el = parse(src).unwrap();
            canonicalize(&mut el);
            assert_eq!(digest_of_canonical(&el), digest(&el), "{src}");
        }
    }

    #[test]
    fn root_attributes_are_not_content() {
        let a = parse(r#"<configuration x="1"><resources/></configuration>"#).unwrap();
        let b = parse(r#"<configuration x="2"><resources/></configuration>"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn nvpairs_sort_only_when_names_unique() {
        let a = parse(r#"<r><instance_attributes id="i"><nvpair id="1" name="a" value="1"/><nvpair id="2" name="b" value="2"/></instance_attributes></r>"#).unwrap();
        let b = parse(r#"<r><instance_attributes id="i"><nvpair id="2" name="b" value="2"/><nvpair id="1" name="a" value="1"/></instance_attributes></r>"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        let c = parse(r#"<r><instance_attributes id="i"><nvpair id="1" name="a" value="1"/><nvpair id="2" name="a" value="2"/></instance_attributes></r>"#).unwrap();
        let d = parse(r#"<r><instance_attributes id="i"><nvpair id="2" name="a" value="2"/><nvpair id="1" name="a" value="1"/></instance_attributes></r>"#).unwrap();
        assert_ne!(digest(&c), digest(&d), "first of duplicate names wins in Pacemaker");
    }
}
