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
//!
//! Digests are computed by streaming the canonical serialization into the
//! hash ([`write_canonical`], [`HashSink`]): the tree is neither copied nor
//! re-sorted, and the text is never held in memory. A tree already in
//! canonical form (as a scope is) costs one pass of order checks.

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::xml::writer::write_element;
use crate::xml::{Element, Sink};

/// How the children of one element are ordered in canonical form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ChildOrder {
    /// As they are.
    Kept,
    /// By (`id`, element name).
    ById,
    /// `nvpair`s by `name` first, then the rest (only when names are unique).
    ByName,
}

fn child_order(name: &str) -> ChildOrder {
    match name {
        "resources" | "constraints" | "tags" | "tag" | "operations" => ChildOrder::ById,
        "instance_attributes" | "meta_attributes" | "utilization" | "cluster_property_set" => ChildOrder::ByName,
        _ => ChildOrder::Kept,
    }
}

/// Canonical order of the children of `<resources>`, `<constraints>` and
/// `<tags>`: by (`id`, element name).
pub(crate) fn compare_by_id(a: &Element, b: &Element) -> Ordering {
    id_key(a).cmp(&id_key(b))
}

/// The sort key of [`compare_by_id`].
fn id_key(e: &Element) -> (&str, &str) {
    (e.id().unwrap_or(""), &e.name)
}

/// The sort key of `ByName`: `nvpair`s first, by name.
fn name_key(e: &Element) -> (bool, &str) {
    (e.name != "nvpair", e.attr("name").unwrap_or(""))
}

/// How `el`'s children are ordered in canonical form: `Kept` when they keep
/// the order they have.
fn order_of(el: &Element) -> ChildOrder {
    match child_order(&el.name) {
        ChildOrder::ByName if !nvpair_names_unique(el) => ChildOrder::Kept,
        order => order,
    }
}

/// `el`'s children in canonical order (the order [`canonicalize`] would
/// give them), without reordering the tree.
fn canonical_children(el: &Element) -> Vec<&Element> {
    let mut children: Vec<&Element> = el.children.iter().collect();
    match order_of(el) {
        ChildOrder::Kept => {}
        ChildOrder::ById => children.sort_by(|a, b| compare_by_id(a, b)),
        ChildOrder::ByName => children.sort_by(|a, b| name_key(a).cmp(&name_key(b))),
    }
    children
}

/// Calls `f` on each child of `el` in canonical order, without reordering
/// the tree (so that the first error found does not depend on the order a
/// document was written in).
pub(crate) fn for_each_canonical_child<'a>(el: &'a Element, f: impl FnMut(&'a Element)) {
    canonical_children(el).into_iter().for_each(f);
}

/// `el`'s attributes sorted by name.
fn sorted_attrs(el: &Element) -> Vec<&(String, String)> {
    let mut attrs: Vec<&(String, String)> = el.attrs.iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    attrs
}

/// Visits `el` and its descendants, parents first, children in canonical
/// order.
pub fn walk_canonical<'a>(el: &'a Element, f: &mut impl FnMut(&'a Element)) {
    f(el);
    for c in canonical_children(el) {
        walk_canonical(c, f);
    }
}

/// Puts `el` (and its whole subtree) into canonical form, in place.
pub fn canonicalize(el: &mut Element) {
    el.attrs.sort_by(|a, b| a.0.cmp(&b.0));
    for c in &mut el.children {
        canonicalize(c);
    }
    match order_of(el) {
        ChildOrder::Kept => {}
        ChildOrder::ById => el.children.sort_by(compare_by_id),
        ChildOrder::ByName => el.children.sort_by(|a, b| name_key(a).cmp(&name_key(b))),
    }
}

/// Whether `el`'s subtree is in canonical form ([`canonicalize`] would not
/// change it).
pub fn is_canonical(el: &Element) -> bool {
    let attrs = el.attrs.is_sorted_by(|a, b| a.0 <= b.0);
    let children = match order_of(el) {
        ChildOrder::Kept => true,
        ChildOrder::ById => el.children.iter().map(id_key).is_sorted(),
        ChildOrder::ByName => el.children.iter().map(name_key).is_sorted(),
    };
    attrs && children && el.children.iter().all(is_canonical)
}

fn nvpair_names_unique(set: &Element) -> bool {
    let mut names: Vec<&str> = set.children.iter().filter(|c| c.name == "nvpair").map(|c| c.attr("name").unwrap_or("")).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    names.len() == n
}

/// Writes `el`'s subtree in canonical form (as [`canonicalize`] followed by
/// [`Element::write_to`] would), without copying or reordering the tree.
/// With `attrs` false, `el`'s own attributes are left out.
pub fn write_canonical<S: Sink + ?Sized>(el: &Element, out: &mut S, depth: usize, attrs: bool) {
    let own = if attrs { sorted_attrs(el) } else { Vec::new() };
    let children = canonical_children(el);
    write_element(out, depth, el, own.into_iter(), children.into_iter(), &mut |c, out, depth| write_canonical(c, out, depth, true));
}

/// Canonical serialization of the *children* of `el` (its own attributes are
/// not part of the meaning: they carry publication metadata).
pub fn canonical_content(el: &Element) -> String {
    let mut out = String::new();
    write_canonical(el, &mut out, 0, false);
    out
}

/// `sha256:<hex>` of the canonical serialization of `el`'s content. The
/// serialization is streamed into the hash: no copy of the tree or of the
/// text is made.
pub fn digest(el: &Element) -> String {
    let mut sink = HashSink::new();
    write_canonical(el, &mut sink, 0, false);
    sink.finish()
}

/// `sha256:<hex>` of a string.
pub fn digest_str(s: &str) -> String {
    digest_bytes(s.as_bytes())
}

/// `sha256:<hex>` of bytes.
pub fn digest_bytes(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Digest of one element as it stands (canonical form, attributes
/// included): used to detect local edits of owned elements.
pub fn element_digest(el: &Element) -> String {
    let mut sink = HashSink::new();
    write_canonical(el, &mut sink, 0, true);
    sink.finish()
}

/// A SHA-256 hasher that is a [`Sink`]: the canonical writer streams into
/// it, so a digest never needs the serialization in memory.
#[derive(Default)]
pub struct HashSink(Sha256);

impl HashSink {
    /// An empty hash.
    pub fn new() -> Self {
        HashSink(Sha256::new())
    }

    /// `sha256:<hex>` of everything pushed.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

impl Sink for HashSink {
    fn push(&mut self, s: &str) {
        self.0.update(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    /// Elements whose children are unordered and keyed by `id`.
    const SORT_BY_ID: &[&str] = &["resources", "constraints", "tags", "tag", "operations"];

    /// Attribute-set elements whose `nvpair`s can be sorted by name.
    const NVSETS: &[&str] = &[
        "instance_attributes",
        "meta_attributes",
        "utilization",
        "cluster_property_set",
    ];

    #[test]
    fn hash_sink_is_sha256_of_what_was_pushed() {
        let mut sink = HashSink::new();
        let mut all = String::new();
        for piece in ["<a", " b=\"1\"", "/>\n", &"z".repeat(100_000)] {
            sink.push(piece);
            all.push_str(piece);
        }
        assert_eq!(sink.finish(), digest_str(&all));
    }

    #[test]
    fn child_order_matches_its_lists() {
        for name in SORT_BY_ID {
            assert!(child_order(name) == ChildOrder::ById, "{name}");
        }
        for name in NVSETS {
            assert!(child_order(name) == ChildOrder::ByName, "{name}");
        }
        assert!(child_order("group") == ChildOrder::Kept);
    }

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
    fn writes_canonical_form_without_reordering_the_tree() {
        let src = r#"<configuration><constraints><rsc_order then="a" id="o2" first="b"/><rsc_order id="o1" first="a" then="b"/></constraints><resources><primitive type="Dummy" id="b"><instance_attributes id="ia"><nvpair name="z" id="z" value="1"/><nvpair id="y" name="y" value="2"/></instance_attributes><operations><op id="o-stop" name="stop"/><op id="o-start" name="start"/></operations></primitive></resources></configuration>"#;
        let el = parse(src).unwrap();
        assert!(!is_canonical(&el));
        let mut copy = el.clone();
        canonicalize(&mut copy);
        assert!(is_canonical(&copy));
        let mut written = String::new();
        write_canonical(&el, &mut written, 0, true);
        assert_eq!(written, copy.to_xml());
        assert_eq!(element_digest(&el), digest_str(&copy.to_xml()));
        assert_eq!(el, parse(src).unwrap(), "the tree itself is left as it was");
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
