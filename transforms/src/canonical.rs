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

use std::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::node::Node;
use crate::xml::{write_attr, write_element_with, Element, Sink};

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

#[inline]
fn child_order(name: &str) -> ChildOrder {
    // A `match` on the names of `SORT_BY_ID` and `NVSETS` (checked by a
    // test): called for every element of every canonical walk.
    match name {
        "resources" | "constraints" | "tags" | "tag" | "operations" => ChildOrder::ById,
        "instance_attributes" | "meta_attributes" | "utilization" | "cluster_property_set" => ChildOrder::ByName,
        _ => ChildOrder::Kept,
    }
}

/// Canonical order of the children of `<resources>`, `<constraints>` and
/// `<tags>`: by (`id`, element name).
pub(crate) fn compare_by_id<'a, N: Node<'a>>(a: &N, b: &N) -> Ordering {
    id_key(*a).cmp(&id_key(*b))
}

fn by_name<'a, N: Node<'a>>(a: &N, b: &N) -> Ordering {
    name_key(*a).cmp(&name_key(*b))
}

/// The sort key of [`compare_by_id`].
fn id_key<'a, N: Node<'a>>(e: N) -> (&'a str, &'a str) {
    (e.id().unwrap_or(""), e.name())
}

/// The sort key of [`by_name`]: `nvpair`s first, by name.
fn name_key<'a, N: Node<'a>>(e: N) -> (bool, &'a str) {
    (e.name() != "nvpair", e.attr("name").unwrap_or(""))
}

fn attrs_sorted<'a, N: Node<'a>>(el: N) -> bool {
    el.attrs().is_sorted_by(|a, b| name_cmp(a.0, b.0).is_le())
}

/// How `el`'s children must be sorted to be in canonical form, or `None`
/// when they are already in it (or must keep their order).
fn needed_sort<'a, N: Node<'a>>(el: N) -> Option<ChildOrder> {
    let order = child_order(el.name());
    // Each child's key read once (a comparison would read it twice).
    let sorted = match order {
        ChildOrder::Kept => true,
        ChildOrder::ById => el.children().map(id_key).is_sorted(),
        ChildOrder::ByName => el.children().map(name_key).is_sorted(),
    };
    if sorted {
        return None;
    }
    if order == ChildOrder::ByName && !nvpair_names_unique(el) {
        return None;
    }
    Some(order)
}

/// Canonical order of two children of one element.
fn compare<'a, N: Node<'a>>(order: ChildOrder, a: &N, b: &N) -> Ordering {
    match order {
        ChildOrder::Kept => Ordering::Equal,
        ChildOrder::ById => compare_by_id(a, b),
        ChildOrder::ByName => by_name(a, b),
    }
}

/// Calls `f` on each child of `el` in canonical order (the order
/// [`canonicalize`] would give them), without reordering the tree.
pub(crate) fn for_each_canonical_child<'a, N: Node<'a>>(el: N, f: impl FnMut(N)) {
    match needed_sort(el) {
        None => el.children().for_each(f),
        Some(order) => with_sorted(el.children(), |a, b| compare(order, a, b), |sorted| sorted.iter().copied().for_each(f)),
    }
}

/// Visits `el` and its descendants, parents first, children in canonical
/// order.
pub fn walk_canonical<'a, N: Node<'a>>(el: N, f: &mut impl FnMut(N)) {
    f(el);
    for_each_canonical_child(el, |c| walk_canonical(c, f));
}

/// Puts `el` (and its whole subtree) into canonical form, in place.
pub fn canonicalize(el: &mut Element) {
    if !attrs_sorted(&*el) {
        el.attrs.sort_by(|a, b| a.0.cmp(&b.0));
    }
    for c in &mut el.children {
        canonicalize(c);
    }
    if let Some(order) = needed_sort(&*el) {
        el.children.sort_by(|a, b| compare(order, &a, &b));
    }
}

/// Whether `el`'s subtree is in canonical form ([`canonicalize`] would not
/// change it).
pub fn is_canonical<'a, N: Node<'a>>(el: N) -> bool {
    attrs_sorted(el) && needed_sort(el).is_none() && el.children().all(is_canonical)
}

fn nvpair_names_unique<'a, N: Node<'a>>(set: N) -> bool {
    let names = || set.children().filter(|c| c.name() == "nvpair").map(|c| c.attr("name").unwrap_or(""));
    if set.children().len_hint() <= 16 {
        return names().enumerate().all(|(i, a)| names().skip(i + 1).all(|b| a != b));
    }
    let mut all: Vec<&str> = names().collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    all.len() == n
}

/// A cheap upper bound on an iterator's length (exact for slices).
trait LenHint {
    fn len_hint(&self) -> usize;
}

impl<I: Iterator> LenHint for I {
    fn len_hint(&self) -> usize {
        match self.size_hint() {
            (_, Some(n)) => n,
            _ => usize::MAX,
        }
    }
}

/// Writes `el`'s subtree in canonical form (as [`canonicalize`] followed by
/// [`Element::write_to`] would), without copying or reordering the tree.
/// With `attrs` false, `el`'s own attributes are left out. `el` may belong
/// to either tree ([`Node`]).
pub fn write_canonical<'a, N: Node<'a>, S: Sink + ?Sized>(el: N, out: &mut S, depth: usize, attrs: bool) {
    // Each attribute in one piece when the source has it as it is written.
    let write_attrs = |out: &mut S| {
        if !attrs {
            return;
        }
        let mut one = |(k, v): (&'a str, &'a str)| match el.source_attr(k, v) {
            Some(text) => out.push(text),
            None => write_attr(out, k, v),
        };
        if attrs_sorted(el) {
            el.attrs().for_each(&mut one);
        } else {
            with_sorted(el.attrs(), |a, b| name_cmp(a.0, b.0), |sorted| sorted.iter().copied().for_each(&mut one));
        }
    };
    let mut child = |c: N, out: &mut S, depth: usize| write_canonical(c, out, depth, true);
    let (name, open, text) = (el.name(), el.source_open(), el.text());
    match needed_sort(el) {
        None => write_element_with(out, depth, name, open, write_attrs, text, el.children(), &mut child),
        Some(order) => with_sorted(el.children(), |a, b| compare(order, a, b), |sorted| {
            write_element_with(out, depth, name, open, write_attrs, text, sorted.iter().copied(), &mut child);
        }),
    }
}

/// `a.cmp(b)` for attribute names, which mostly differ in their first
/// byte: that byte decides without a call to `memcmp`.
#[inline]
fn name_cmp(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Calls `f` with the items sorted (stably) by `cmp`: on the stack when
/// there are few (the attributes or children of one element), else in a
/// vector.
fn with_sorted<T: Copy, R>(mut items: impl Iterator<Item = T>, cmp: impl Fn(&T, &T) -> Ordering, f: impl FnOnce(&[T]) -> R) -> R {
    const STACK: usize = 16;
    let Some(first) = items.next() else {
        return f(&[]);
    };
    let mut buf = [first; STACK];
    let mut n = 1;
    while n < STACK {
        match items.next() {
            Some(item) => {
                buf[n] = item;
                n += 1;
            }
            None => {
                buf[..n].sort_by(&cmp);
                return f(&buf[..n]);
            }
        }
    }
    let mut all: Vec<T> = buf.to_vec();
    all.extend(items);
    all.sort_by(cmp);
    f(&all)
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

/// [`digest`] of an element whose subtree is already in canonical form
/// (e.g. a [`crate::Scope`]'s configuration). The same value as [`digest`],
/// which now costs no more on canonical trees; kept for callers.
pub fn digest_of_canonical(el: &Element) -> String {
    digest(el)
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

/// A SHA-256 hasher fed through a buffer, so that the many small pieces of
/// a serialization cost one `update` per 64 KiB.
///
/// Past the first buffer (a large document), the full buffers are hashed on
/// a second thread, in order, while the serialization goes on: with a
/// second core free, hashing an 8 MB scope then costs the writer only the
/// handing over of buffers (three of them take turns). If that thread
/// cannot be started, hashing stays here.
pub struct HashSink {
    buf: Vec<u8>,
    hashing: Hashing,
}

/// Where the full buffers of a [`HashSink`] are hashed.
enum Hashing {
    /// Here.
    Inline(Sha256),
    /// On a thread that returns each buffer, emptied, for reuse.
    Worker {
        full: mpsc::SyncSender<Vec<u8>>,
        empty: mpsc::Receiver<Vec<u8>>,
        thread: std::thread::JoinHandle<Sha256>,
    },
}

const HASH_BUF: usize = 64 * 1024;

impl HashSink {
    /// An empty hash.
    pub fn new() -> Self {
        HashSink {
            buf: Vec::with_capacity(HASH_BUF),
            hashing: Hashing::Inline(Sha256::new()),
        }
    }

    /// `sha256:<hex>` of everything pushed.
    pub fn finish(self) -> String {
        let HashSink { buf, hashing } = self;
        let hasher = match hashing {
            Hashing::Inline(mut hasher) => {
                hasher.update(&buf);
                hasher
            }
            Hashing::Worker { full, empty, thread } => {
                // The last buffer goes the same way, so the order holds.
                let sent = full.send(buf);
                drop((full, empty));
                match (sent, thread.join()) {
                    (Ok(()), Ok(hasher)) => hasher,
                    // The thread only hashes: it cannot fail but by panicking.
                    (_, Err(panic)) => std::panic::resume_unwind(panic),
                    (Err(_), Ok(_)) => unreachable!("the hashing thread ends only when the sender is dropped"),
                }
            }
        };
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// Hands the full buffer over (or hashes it here) and continues with an
    /// empty one.
    fn flush(&mut self) {
        if let Hashing::Inline(hasher) = &mut self.hashing {
            match start_worker(hasher.clone()) {
                Some(worker) => self.hashing = worker,
                None => {
                    hasher.update(&self.buf);
                    self.buf.clear();
                    return;
                }
            }
        }
        let Hashing::Worker { full, empty, .. } = &mut self.hashing else {
            return;
        };
        let next = empty.try_recv().unwrap_or_else(|_| Vec::with_capacity(HASH_BUF));
        let done = std::mem::replace(&mut self.buf, next);
        // The thread lives until `full` is dropped, in `finish`.
        let _ = full.send(done);
    }
}

/// Starts the thread hashing full buffers, from the state `hasher`.
fn start_worker(mut hasher: Sha256) -> Option<Hashing> {
    // Two buffers in flight at most, the third being filled.
    let (full, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty) = mpsc::channel::<Vec<u8>>();
    let thread = std::thread::Builder::new()
        .name("sha256".into())
        .spawn(move || {
            for mut buf in full_rx {
                hasher.update(&buf);
                buf.clear();
                // The sink may be finishing and gone: nothing to return then.
                let _ = empty_tx.send(buf);
            }
            hasher
        })
        .ok()?;
    Some(Hashing::Worker { full, empty, thread })
}

impl Default for HashSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for HashSink {
    #[inline]
    fn push(&mut self, s: &str) {
        if self.buf.len() + s.len() > HASH_BUF {
            self.flush();
            if s.len() >= HASH_BUF {
                // A piece larger than a buffer (a huge value): whole.
                self.buf.extend_from_slice(s.as_bytes());
                self.flush();
                return;
            }
        }
        self.buf.extend_from_slice(s.as_bytes());
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
    fn large_and_small_inputs_hash_as_sha256_of_their_bytes() {
        // Below one buffer (hashed here), across many (on the thread), and
        // with pieces larger than a buffer.
        let piece = "<nvpair id=\"x\" value=\"1.2.3.4\"/>\n";
        for (pieces, big) in [(10, 0), (5_000, 0), (50_000, 3)] {
            let mut sink = HashSink::new();
            let mut all = String::new();
            for i in 0..pieces {
                sink.push(piece);
                all.push_str(piece);
                if big > 0 && i % (pieces / big) == 0 {
                    let huge = "z".repeat(HASH_BUF + 17);
                    sink.push(&huge);
                    all.push_str(&huge);
                }
            }
            assert_eq!(sink.finish(), digest_str(&all), "{pieces} pieces");
        }
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
