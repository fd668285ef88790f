//! A compact, read-mostly XML tree that borrows the document's text.
//!
//! [`crate::xml::Element`] owns every name and value: a 10 MB CIB becomes
//! about a million small allocations and ~40 MB of fresh memory, which is
//! most of the time a one-shot tool spends on it. A [`Doc`] keeps two flat
//! arrays instead — elements in document order (each knows where its
//! subtree ends) and attributes — whose names and values point into the
//! source text. Only what the parser had to change (a value with a
//! reference or a literal tab, character data) and what is rewritten later
//! ([`Doc::set_value`]) lives in a side buffer. The same 10 MB CIB takes
//! ~10 MB and three allocations.
//!
//! A `Doc` is built by the same parser as `Element` (same limits, same
//! refusals, same tree: the root's [`Node::to_element`] equals [`crate::xml::parse`]),
//! and is read through [`DocNode`], which implements [`crate::node::Node`]
//! like `&Element` does: the canonical writer, the scope selection and the
//! scope checks run on either.

use std::borrow::Cow;

use crate::error::Error;
use crate::node::Node;
use crate::xml::{parse_fragment, parse_until, run_parser, Builder, Element, Fragment, Limits, Paused};

/// A piece of text: a range of the source, or of the side buffer when the
/// top bit of `len` is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Str {
    start: u32,
    len: u32,
}

const SIDE: u32 = 1 << 31;

impl Str {
    fn is_empty(self) -> bool {
        self.len & !SIDE == 0
    }
}

/// One element: its name, its attributes (a range of [`Doc::attrs`]), the
/// index just past its subtree, and its character data.
#[derive(Debug, Clone, Copy)]
struct NodeData {
    name: Str,
    attr_start: u32,
    attr_len: u32,
    end: u32,
    text: Str,
    /// Position of the `id` attribute among the element's, or [`NO_ID`]:
    /// ids are read far more often than any other attribute.
    id: u32,
}

const NO_ID: u32 = u32::MAX;

/// Position of `id` among attribute names.
fn id_position<'k>(mut names: impl Iterator<Item = &'k str>) -> u32 {
    names.position(|k| k == "id").map_or(NO_ID, |i| i as u32)
}

/// One attribute: name and value.
#[derive(Debug, Clone, Copy)]
struct AttrData {
    name: Str,
    value: Str,
}

/// Identifies one attribute of a [`Doc`], for [`Doc::set_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttrId(u32);

/// A parsed document borrowing its text; see the module documentation.
#[derive(Debug, Clone)]
pub struct Doc<'s> {
    src: &'s str,
    nodes: Vec<NodeData>,
    attrs: Vec<AttrData>,
    side: String,
    /// Whether some element has an `id-ref` attribute.
    id_refs: bool,
}

impl<'s> Doc<'s> {
    /// Parses `input` with the default [`Limits`].
    pub fn parse(input: &'s str) -> Result<Doc<'s>, Error> {
        Doc::parse_with(input, Limits::default())
    }

    /// Parses `input` with the checks and refusals of
    /// [`crate::xml::parse_with`]. Documents of 2 GiB or more are refused
    /// whatever the limits (positions are 31-bit).
    pub fn parse_with(input: &'s str, limits: Limits) -> Result<Doc<'s>, Error> {
        let max = limits.max_bytes.min(SIDE as usize - 1);
        let limits = Limits { max_bytes: max, ..limits };
        // Upper bounds of the element and attribute counts size the arrays
        // once: reserved memory that is never written costs nothing.
        let b = input.as_bytes();
        let (nodes, attrs) = if input.len() <= max {
            (memchr::memchr_iter(b'<', b).count(), memchr::memchr_iter(b'=', b).count())
        } else {
            (0, 0)
        };
        let builder = DocBuilder::new(input, nodes, attrs);
        let large = input.len() >= PARALLEL_PARSE && input.len() <= max;
        match large.then(|| split_point(input)).flatten() {
            Some(at) => parse_in_two(input, limits, builder, at),
            None => run_parser(input, limits, builder),
        }
    }

    /// Whether any element has an `id-ref` attribute (a cheap answer for
    /// the common case of none).
    pub fn has_id_refs(&self) -> bool {
        self.id_refs
    }

    /// The root element.
    pub fn root(&self) -> DocNode<'_> {
        DocNode { doc: self, ix: 0 }
    }

    /// Length of the text the document was parsed from.
    pub fn source_len(&self) -> usize {
        self.src.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the document has no element (never true for a parsed one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The element at `ix` (document order, the root is 0), an index
    /// this document gave out ([`DocNode::index`], [`Doc::append`]).
    ///
    /// # Panics
    ///
    /// If `ix` is not an element of this document.
    pub fn node(&self, ix: u32) -> DocNode<'_> {
        assert!((ix as usize) < self.nodes.len(), "element {ix} of a document of {}", self.nodes.len());
        DocNode { doc: self, ix }
    }

    /// The text of `s`. Every `Str` is made by `src_str` from a slice of
    /// `src`, or by `side_str` from a whole `&str` appended to `side`
    /// (which only grows), so both ends are in bounds and on character
    /// boundaries.
    #[inline]
    fn str(&self, s: Str) -> &str {
        let (buf, len) = if s.len & SIDE != 0 {
            (self.side.as_str(), s.len & !SIDE)
        } else {
            (self.src, s.len)
        };
        let range = s.start as usize..(s.start + len) as usize;
        debug_assert!(buf.get(range.clone()).is_some(), "a Str is a valid range of its buffer");
        // SAFETY: see above — `range` is in bounds of `buf` and on character
        // boundaries by construction. This is the hottest read of the
        // crate (every name and value goes through it).
        unsafe { buf.get_unchecked(range) }
    }

    /// Appends `text` to the side buffer.
    fn side_str(&mut self, text: &str) -> Result<Str, Error> {
        let start = self.side.len();
        let too_large = || Error::TooLarge {
            size: start + text.len(),
            limit: SIDE as usize - 1,
        };
        if start + text.len() >= SIDE as usize {
            return Err(too_large());
        }
        self.side.push_str(text);
        Ok(Str {
            start: start as u32,
            len: text.len() as u32 | SIDE,
        })
    }

    /// The `Str` of `part`: its range in the source text when it is a slice
    /// of it (what the parser passes on: names, and values it did not have
    /// to change), else a copy in the side buffer. A `&str` lying inside
    /// the source starts and ends on its character boundaries.
    fn src_str(&mut self, part: &str) -> Str {
        if let Some(start) = self.src_offset(part) {
            return Str {
                start: start as u32,
                len: part.len() as u32,
            };
        }
        // The side buffer is bounded like the input: this cannot fail.
        self.side_str(part).unwrap_or_default()
    }

    /// Where `part` starts in the source text, when it lies wholly inside
    /// it (a slice the parser passed on, not a copy).
    fn src_offset(&self, part: &str) -> Option<usize> {
        let at = (part.as_ptr() as usize).checked_sub(self.src.as_ptr() as usize)?;
        (at + part.len() <= self.src.len()).then_some(at)
    }

    /// ` name="value"` as it stands in the source, when `name` and `value`
    /// are slices of the source written exactly so (double quotes, one
    /// space before, nothing around `=`) and `value` needs no escaping:
    /// see [`Node::source_attr`].
    ///
    /// Values the parser or the rules changed live in the side buffer, so
    /// they never pass. A value the parser left as it was holds no `"`
    /// (it is between double quotes), no `<` (refused), no `&` (a
    /// reference is replaced) and no tab or line end (normalized): of what
    /// [`crate::xml::escape_attr`] replaces, only `>` is left to look for.
    #[inline]
    fn source_attr(&self, name: &str, value: &str) -> Option<&'s str> {
        let src = self.src;
        let b = src.as_bytes();
        let (k, v) = (self.src_offset(name)?, self.src_offset(value)?);
        let (k_end, v_end) = (k + name.len(), v + value.len());
        // A space before the name and a quote after the value, in bounds.
        if k == 0 || v != k_end + 2 || v_end >= b.len() {
            return None;
        }
        let written = b[k - 1] == b' ' && b[k_end] == b'=' && b[k_end + 1] == b'"' && b[v_end] == b'"';
        if !written || value.as_bytes().contains(&b'>') {
            return None;
        }
        debug_assert!(!crate::xml::may_need_escape(value), "{value:?} needs escaping");
        src.get(k - 1..v_end + 1)
    }

    /// The name of attribute `a`.
    pub fn attr_name(&self, a: AttrId) -> &str {
        self.str(self.attrs[a.0 as usize].name)
    }

    /// The value of attribute `a`.
    pub fn value(&self, a: AttrId) -> &str {
        self.str(self.attrs[a.0 as usize].value)
    }

    /// Appends a copy of `el` as a detached subtree (a child of no element,
    /// reachable through the returned index only).
    pub fn append(&mut self, el: &Element) -> Result<u32, Error> {
        let ix = self.nodes.len() as u32;
        let attr_start = self.attrs.len() as u32;
        for (k, v) in &el.attrs {
            self.id_refs |= k == "id-ref";
            let name = self.side_str(k)?;
            let value = self.side_str(v)?;
            self.attrs.push(AttrData { name, value });
        }
        let name = self.side_str(&el.name)?;
        let text = if el.text.is_empty() {
            Str::default()
        } else {
            self.side_str(&el.text)?
        };
        self.nodes.push(NodeData {
            name,
            attr_start,
            attr_len: el.attrs.len() as u32,
            end: ix + 1,
            text,
            id: id_position(el.attrs.iter().map(|(k, _)| k.as_str())),
        });
        for c in &el.children {
            self.append(c)?;
        }
        self.nodes[ix as usize].end = self.nodes.len() as u32;
        Ok(ix)
    }

    /// Removes every attribute of the element at `ix`.
    pub fn clear_attrs(&mut self, ix: u32) {
        self.nodes[ix as usize].attr_len = 0;
        self.nodes[ix as usize].id = NO_ID;
    }

    /// Makes room for `additional` bytes of values set with
    /// [`Doc::set_value`], so that many of them grow the side buffer once.
    pub fn reserve_values(&mut self, additional: usize) {
        self.side.reserve(additional);
    }

    /// Replaces the value of attribute `a`.
    pub fn set_value(&mut self, a: AttrId, value: &str) -> Result<(), Error> {
        let v = self.side_str(value)?;
        self.attrs[a.0 as usize].value = v;
        Ok(())
    }
}

/// One element of a [`Doc`].
#[derive(Debug, Clone, Copy)]
pub struct DocNode<'d> {
    doc: &'d Doc<'d>,
    ix: u32,
}

impl<'d> DocNode<'d> {
    fn data(self) -> &'d NodeData {
        &self.doc.nodes[self.ix as usize]
    }

    /// Position in document order (the root is 0).
    pub fn index(self) -> u32 {
        self.ix
    }

    /// The document this element belongs to.
    pub fn doc(self) -> &'d Doc<'d> {
        self.doc
    }

    /// Ids of this element's attributes, in document order.
    pub fn attr_ids(self) -> impl Iterator<Item = AttrId> {
        let d = self.data();
        (d.attr_start..d.attr_start + d.attr_len).map(AttrId)
    }

    /// Index just past this element's subtree.
    pub fn subtree_end(self) -> u32 {
        self.data().end
    }
}

impl PartialEq for DocNode<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.doc, other.doc) && self.ix == other.ix
    }
}

impl Eq for DocNode<'_> {}

/// The children of a [`DocNode`], in document order.
#[derive(Debug, Clone)]
pub struct DocChildren<'d> {
    doc: &'d Doc<'d>,
    next: u32,
    end: u32,
}

impl<'d> Iterator for DocChildren<'d> {
    type Item = DocNode<'d>;

    fn next(&mut self) -> Option<DocNode<'d>> {
        if self.next >= self.end {
            return None;
        }
        let node = DocNode {
            doc: self.doc,
            ix: self.next,
        };
        self.next = self.doc.nodes[self.next as usize].end;
        Some(node)
    }
}

/// The attributes of a [`DocNode`], as (name, value).
#[derive(Debug, Clone)]
pub struct DocAttrs<'d> {
    doc: &'d Doc<'d>,
    attrs: std::slice::Iter<'d, AttrData>,
}

impl<'d> Iterator for DocAttrs<'d> {
    type Item = (&'d str, &'d str);

    fn next(&mut self) -> Option<(&'d str, &'d str)> {
        self.attrs.next().map(|a| (self.doc.str(a.name), self.doc.str(a.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.attrs.size_hint()
    }
}

impl ExactSizeIterator for DocAttrs<'_> {}

impl<'d> Node<'d> for DocNode<'d> {
    type Children = DocChildren<'d>;
    type Attrs = DocAttrs<'d>;

    fn name(self) -> &'d str {
        self.doc.str(self.data().name)
    }

    fn attrs(self) -> DocAttrs<'d> {
        let d = self.data();
        let (start, len) = (d.attr_start as usize, d.attr_len as usize);
        DocAttrs {
            doc: self.doc,
            attrs: self.doc.attrs[start..start + len].iter(),
        }
    }

    fn children(self) -> DocChildren<'d> {
        DocChildren {
            doc: self.doc,
            next: self.ix + 1,
            end: self.data().end,
        }
    }

    fn has_children(self) -> bool {
        self.data().end > self.ix + 1
    }

    fn text(self) -> &'d str {
        self.doc.str(self.data().text)
    }

    #[inline]
    fn id(self) -> Option<&'d str> {
        let d = self.data();
        (d.id != NO_ID).then(|| self.doc.str(self.doc.attrs[(d.attr_start + d.id) as usize].value))
    }

    #[inline]
    fn attr(self, name: &str) -> Option<&'d str> {
        // Compares lengths before bytes, and makes a `str` of the value only.
        let d = self.data();
        let (start, len) = (d.attr_start as usize, d.attr_len as usize);
        let want = name.as_bytes();
        self.doc.attrs[start..start + len]
            .iter()
            .find(|a| (a.name.len & !SIDE) as usize == want.len() && self.doc.str(a.name).as_bytes() == want)
            .map(|a| self.doc.str(a.value))
    }

    #[inline]
    fn source_attr(self, name: &'d str, value: &'d str) -> Option<&'d str> {
        self.doc.source_attr(name, value)
    }

    #[inline]
    fn subtree_hint(self) -> usize {
        (self.data().end - self.ix) as usize
    }

    #[inline]
    fn source_open(self) -> Option<&'d str> {
        let name = self.data().name;
        if name.len & SIDE != 0 || name.start == 0 {
            return None;
        }
        let start = name.start as usize - 1;
        let src = self.doc.src;
        (src.as_bytes()[start] == b'<').then(|| src.get(start..start + 1 + name.len as usize)).flatten()
    }

    fn to_element(self) -> Element {
        let d = self.data();
        Element {
            name: self.name().to_string(),
            attrs: self.attrs().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            children: self.children().map(Node::to_element).collect(),
            text: self.doc.str(d.text).to_string(),
        }
    }
}

/// Documents of this many bytes or more are parsed in two halves at once
/// ([`parse_in_two`]).
const PARALLEL_PARSE: usize = 1 << 20;

/// Where the second half of a document starts: the first start tag at
/// the beginning of a line (after indentation) past the middle. A guess,
/// checked when the first half gets there ([`parse_in_two`]).
fn split_point(input: &str) -> Option<usize> {
    let b = input.as_bytes();
    memchr::memchr_iter(b'\n', &b[b.len() / 2..]).map(|i| b.len() / 2 + i + 1).find_map(|line| {
        let at = line + b[line..].iter().take_while(|&&c| c == b' ' || c == b'\t').count();
        (b.get(at) == Some(&b'<') && b.get(at + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')).then_some(at)
    })
}

/// Parses `input` in two halves at once, split at `at`: the first half on
/// this thread up to `at`, the second on another as a fragment whose end
/// tags may close elements of the first; the two trees are then joined
/// into the one a single parse makes. Whenever the join is not certain to
/// give exactly that tree — `at` fell inside a comment, the fragment could
/// not be read on its own (a malformed document, say: its error must be
/// the one of a single parse), an end tag does not match, an element open
/// at `at` has text — the first half simply goes on to the end alone.
fn parse_in_two<'s>(input: &'s str, limits: Limits, builder: DocBuilder<'s>, at: usize) -> Result<Doc<'s>, Error> {
    parse_in_two_joined(input, limits, builder, at).0
}

/// [`parse_in_two`], and whether the halves were joined (for tests).
fn parse_in_two_joined<'s>(input: &'s str, limits: Limits, builder: DocBuilder<'s>, at: usize) -> (Result<Doc<'s>, Error>, bool) {
    let rest = &input.as_bytes()[at..];
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(move || {
            let nodes = memchr::memchr_iter(b'<', rest).count();
            let attrs = memchr::memchr_iter(b'=', rest).count();
            parse_fragment(input, at, limits, DocBuilder::new(input, nodes, attrs)).ok()
        });
        let first = parse_until(input, limits, builder, at);
        // Parsing cannot panic but through a bug: pass it on.
        (first, second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    match first {
        Err(e) => (Err(e), false),
        Ok(Ok(doc)) => (Ok(doc), false),
        Ok(Err(paused)) => match second {
            Some(fragment) if can_join(&paused, &fragment) => (Ok(join(paused.into_builder(), fragment)), true),
            _ => (paused.resume(), false),
        },
    }
}

/// Whether the fragment's outer end tags close exactly the elements open
/// in `first`, in order, with nothing after the root, within the depth
/// limit, and no open element of `first` has text the fragment's could be
/// joined to.
fn can_join<'s>(first: &Paused<'s, DocBuilder<'s>>, fragment: &Fragment<'s, DocBuilder<'s>>) -> bool {
    let mut open: Vec<&str> = first.open_names().collect();
    let b = first.builder();
    if first.done() || open.is_empty() || open.len() + fragment.max_open > first.limits().max_depth {
        return false;
    }
    if b.open.iter().any(|&ix| !b.doc.nodes[ix as usize].text.is_empty()) {
        return false;
    }
    for event in &fragment.outer {
        match (event, open.last()) {
            (None, Some(_)) => {}
            (Some(name), Some(top)) if name == top => {
                open.pop();
            }
            _ => return false,
        }
    }
    open.is_empty()
}

/// The tree of `first` with the fragment's elements appended: indices,
/// attribute ranges and side-buffer positions shifted, and the ends of the
/// elements the fragment closed set. [`can_join`] must hold.
fn join<'s>(mut first: DocBuilder<'s>, fragment: Fragment<'s, DocBuilder<'s>>) -> Doc<'s> {
    let second = fragment.builder;
    let (n, a) = (first.doc.nodes.len() as u32, first.doc.attrs.len() as u32);
    let side = first.doc.side.len() as u32;
    let shift = |s: Str| if s.len & SIDE != 0 { Str { start: s.start + side, len: s.len } } else { s };
    for (&ix, &end) in first.open.iter().rev().zip(&second.outer_ends) {
        first.doc.nodes[ix as usize].end = n + end;
    }
    first.doc.nodes.extend(second.doc.nodes.iter().map(|d| NodeData {
        name: shift(d.name),
        attr_start: d.attr_start + a,
        end: d.end + n,
        text: shift(d.text),
        ..*d
    }));
    first.doc.attrs.extend(second.doc.attrs.iter().map(|d| AttrData {
        name: shift(d.name),
        value: shift(d.value),
    }));
    first.doc.side.push_str(&second.doc.side);
    first.doc.id_refs |= second.doc.id_refs;
    first.doc
}

/// Builds a [`Doc`] from the parser's events.
struct DocBuilder<'s> {
    doc: Doc<'s>,
    /// Indices of the open elements.
    open: Vec<u32>,
    /// For a fragment ([`parse_fragment`]): the element count each time an
    /// element opened before it ended.
    outer_ends: Vec<u32>,
}

impl<'s> DocBuilder<'s> {
    /// A builder for `src`, its arrays sized for `nodes` elements and
    /// `attrs` attributes (upper bounds: memory reserved and never written
    /// costs nothing).
    fn new(src: &'s str, nodes: usize, attrs: usize) -> Self {
        DocBuilder {
            doc: Doc {
                src,
                nodes: Vec::with_capacity(nodes),
                attrs: Vec::with_capacity(attrs),
                side: String::new(),
                id_refs: false,
            },
            open: Vec::with_capacity(16),
            outer_ends: Vec::new(),
        }
    }
}

impl<'s> Builder<'s> for DocBuilder<'s> {
    type Out = Doc<'s>;

    fn start(&mut self, name: &'s str, attrs: &mut Vec<(&'s str, Cow<'s, str>)>) {
        let attr_start = self.doc.attrs.len() as u32;
        let attr_len = attrs.len() as u32;
        let id = id_position(attrs.iter().map(|(k, _)| *k));
        for (k, v) in attrs.drain(..) {
            self.doc.id_refs |= k == "id-ref";
            let name = self.doc.src_str(k);
            let value = match v {
                Cow::Borrowed(v) => self.doc.src_str(v),
                // The side buffer is bounded by the input (a normalized value
                // is never longer than its source): this cannot fail.
                Cow::Owned(v) => self.doc.side_str(&v).unwrap_or_default(),
            };
            self.doc.attrs.push(AttrData { name, value });
        }
        let ix = self.doc.nodes.len() as u32;
        let name = self.doc.src_str(name);
        self.doc.nodes.push(NodeData {
            name,
            attr_start,
            attr_len,
            end: ix + 1,
            text: Str::default(),
            id,
        });
        self.open.push(ix);
    }

    fn end(&mut self) {
        match self.open.pop() {
            Some(ix) => self.doc.nodes[ix as usize].end = self.doc.nodes.len() as u32,
            None => self.outer_ends.push(self.doc.nodes.len() as u32),
        }
    }

    fn has_text(&self) -> bool {
        self.open
            .last()
            .is_some_and(|&ix| !self.doc.nodes[ix as usize].text.is_empty())
    }

    fn text(&mut self, text: &str) {
        let Some(&ix) = self.open.last() else { return };
        let old = self.doc.nodes[ix as usize].text;
        let joined = if old.is_empty() {
            self.doc.side_str(text)
        } else if old.len & SIDE != 0 && (old.start + (old.len & !SIDE)) as usize == self.doc.side.len() {
            // The element's text is the end of the side buffer: extend it.
            self.doc.side.push_str(text);
            Ok(Str {
                start: old.start,
                len: old.len + text.len() as u32,
            })
        } else {
            let mut both = self.doc.str(old).to_string();
            both.push_str(text);
            self.doc.side_str(&both)
        };
        // Text is bounded by the input, as in `start`.
        self.doc.nodes[ix as usize].text = joined.unwrap_or_default();
    }

    fn finish(self) -> Doc<'s> {
        self.doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn same_tree_as_the_owned_parser() {
        for src in [
            r#"<?xml version="1.0"?><!-- c --><cib a="1 &amp; 2" b="x&#10;y" c="t&#9;u"><configuration>
  <x id="t">hello &lt;world&gt;<![CDATA[ <raw> ]]>more</x><y/>
  <z id="z"><w a='1'/>  tail </z></configuration><status/></cib>"#,
            "<a/>",
            "<a>\r\ntext\r\n</a>",
        ] {
            let doc = Doc::parse(src).unwrap();
            assert_eq!(doc.root().to_element(), parse(src).unwrap(), "{src}");
        }
    }

    #[test]
    fn navigation() {
        let src = r#"<r id="root"><a id="a"><b id="b"/></a><c id="c" k="v"/></r>"#;
        let doc = Doc::parse(src).unwrap();
        let root = doc.root();
        let names: Vec<&str> = root.children().map(Node::name).collect();
        assert_eq!(names, ["a", "c"]);
        let c = root.children().nth(1).unwrap();
        assert_eq!(c.attr("k"), Some("v"));
        assert_eq!(c.id(), Some("c"));
        assert!(!c.has_children());
        assert!(root.has_children());
        assert_eq!(doc.len(), 4);
    }

    #[test]
    fn set_value_rewrites_one_attribute() {
        let src = r#"<r><n id="n" value="old"/></r>"#;
        let mut doc = Doc::parse(src).unwrap();
        let n = doc.root().children().next().unwrap();
        let a = n.attr_ids().find(|&a| doc.attr_name(a) == "value").unwrap();
        doc.set_value(a, "new & improved").unwrap();
        let n = doc.root().children().next().unwrap();
        assert_eq!(n.attr("value"), Some("new & improved"));
        assert_eq!(n.id(), Some("n"));
    }

    #[test]
    fn append_adds_a_detached_copy() {
        let mut doc = Doc::parse(r#"<r><a id="a"/></r>"#).unwrap();
        let el = parse(r#"<x id="x" v="1 &amp; 2"><y>t</y></x>"#).unwrap();
        let ix = doc.append(&el).unwrap();
        assert_eq!(doc.node(ix).to_element(), el);
        assert_eq!(doc.root().children().count(), 1, "not a child of the root");
        assert_eq!(doc.root().to_element(), parse(r#"<r><a id="a"/></r>"#).unwrap());
    }

    #[test]
    fn source_attr_is_what_the_writer_writes() {
        // Every way an attribute can stand in the source: each one the
        // source gives is exactly the writer's text; the others are
        // written piece by piece.
        let src = "<r>\n<e id=\"a\" b='single' c = \"spaced\" d=\"x &amp; y\" e=\"tab\tnl\nend\" f=\"gt > here\"\
                   \tg=\"after tab\"  h=\"two spaces\" i=\"\" j=\"&#62;\" k=\"plain-value 1.2.3.4\"/></r>";
        let mut doc = Doc::parse(src).unwrap();
        let e = doc.root().children().next().unwrap();
        let given: Vec<&str> = e.attrs().filter(|&(k, v)| e.source_attr(k, v).is_some()).map(|(k, _)| k).collect();
        assert_eq!(given, ["id", "h", "i", "k"], "h: the space right before counts");
        for (k, v) in e.attrs() {
            let mut written = String::new();
            crate::xml::write_attr(&mut written, k, v);
            if let Some(text) = e.source_attr(k, v) {
                assert_eq!(text, written, "{k}");
            }
        }
        assert_eq!(e.source_open(), Some("<e"));
        // A rewritten value is no longer the source's.
        let a = e.attr_ids().find(|&a| doc.attr_name(a) == "k").unwrap();
        doc.set_value(a, "plain-value 1.2.3.4").unwrap();
        let e = doc.root().children().next().unwrap();
        assert_eq!(e.source_attr("k", e.attr("k").unwrap()), None);
        // Appended elements have no source.
        let ix = doc.append(&parse(r#"<x id="x"/>"#).unwrap()).unwrap();
        let x = doc.node(ix);
        assert_eq!((x.source_open(), x.source_attr("id", x.id().unwrap())), (None, None));
    }

    /// The tree of `doc` with every element's subtree end, or the error.
    fn shape(doc: Result<Doc<'_>, Error>) -> Result<(Element, Vec<u32>, bool), String> {
        doc.map(|d| {
            let ends = (0..d.len() as u32).map(|i| d.node(i).subtree_end()).collect();
            (d.root().to_element(), ends, d.has_id_refs())
        })
        .map_err(|e| e.to_string())
    }

    /// Splits `src` at every `<` (inside comments and CDATA too): each
    /// gives the tree or the error of one parse. Returns how many splits
    /// were joined rather than read on by the first half.
    fn every_split_is_one_parse(src: &str, limits: Limits) -> usize {
        let one = shape(Doc::parse_with(src, limits));
        let mut joined = 0;
        for at in memchr::memchr_iter(b'<', src.as_bytes()) {
            let n = src.len();
            let (two, was_joined) = parse_in_two_joined(src, limits, DocBuilder::new(src, n, n), at);
            assert_eq!(shape(two), one, "split at {at}: {:?}", &src[at..src.len().min(at + 20)]);
            joined += usize::from(was_joined);
        }
        joined
    }

    #[test]
    fn two_halves_give_the_tree_or_the_error_of_one_parse() {
        let limits = Limits::default();
        let good = [
            // Entities and tabs in values (side buffer on both halves), text
            // and CDATA in elements, comments and a processing instruction
            // between elements, an id-ref, self-closing and empty elements.
            "<?xml version=\"1.0\"?>\n<cib a=\"1\">\n  <configuration>\n    <resources>\n      <primitive id=\"p1\" class=\"ocf\" description=\"a &amp; b\">\n        <instance_attributes id=\"p1-ia\">\n          <nvpair id=\"p1-ip\" name=\"ip\" value=\"tab\there\"/>\n        </instance_attributes>\n      </primitive>\n      <!-- <primitive id=\"commented\"/> -->\n      <?pi data?>\n      <primitive id=\"p2\" class=\"ocf\"><meta_attributes id-ref=\"p1-ia\"/></primitive>\n      <x id=\"t\">text &lt;here&gt;<![CDATA[ <raw> ]]>more</x>\n      <empty></empty>\n    </resources>\n    <constraints>\n      <rsc_ticket id=\"t1\" rsc=\"p1\" ticket=\"geo\"/>\n    </constraints>\n  </configuration>\n  <status/>\n</cib>\n<!-- after -->\n",
            // An element with text before its children, and after them.
            "<r>\n<a>hello\n<b id=\"1\"/>\n<c/>\nworld</a>\n<d/>\n</r>",
        ];
        // (At least this many splits are joined; the others, where the
        // first half reads on alone, are tested all the same.)
        for (src, least) in good.into_iter().zip([20, 3]) {
            let joined = every_split_is_one_parse(src, limits);
            assert!(joined >= least, "only {joined} splits joined: the join is not tested");
        }
        let bad = [
            "<r>\n<a>\n<b/>\n</c>\n</r>",              // mismatched end tag
            "<r>\n<a>\n<b/>\n</a>\n",                  // root never closed
            "<r>\n<a/>\n</r>\n<s/>",                    // a second root
            "<r>\n<a/>\n</r>\ntext",                    // text after the root
            "<r>\n<a/>\n<b>&bogus;</b>\n</r>",          // unknown entity
            "<r>\n<a/>\n</r>\n</r>",                    // one end tag too many
            "<r>\n<a/>\n<!DOCTYPE x>\n</r>",            // refused
            "<r>\n<a>\n<b>\n<c>\n<d/>\n</c>\n</b>\n</a>\n</r>", // too deep below
        ];
        for src in bad {
            every_split_is_one_parse(src, Limits { max_depth: 4, ..limits });
        }
    }

    #[test]
    fn a_large_document_is_parsed_in_two_halves() {
        let mut src = String::from("<cib>\n  <configuration>\n    <resources>\n");
        let mut i = 0;
        while src.len() < PARALLEL_PARSE + 1000 {
            src.push_str(&format!(
                "      <primitive id=\"p{i}\" class=\"ocf\" type=\"IPaddr2\">\n        <instance_attributes id=\"p{i}-ia\">\n          <nvpair id=\"p{i}-ip\" name=\"ip\" value=\"10.0.{}.{} &amp; co\"/>\n        </instance_attributes>\n      </primitive>\n",
                i / 250,
                i % 250
            ));
            i += 1;
        }
        src.push_str("    </resources>\n  </configuration>\n</cib>\n");
        let at = split_point(&src).expect("a line that starts with a tag past the middle");
        let n = src.len();
        let (two, joined) = parse_in_two_joined(&src, Limits::default(), DocBuilder::new(&src, n, n), at);
        assert!(joined);
        assert_eq!(shape(two), shape(run_parser(&src, Limits::default(), DocBuilder::new(&src, n, n))));
        assert_eq!(Doc::parse(&src).unwrap().root().to_element(), parse(&src).unwrap());
    }

    #[test]
    fn same_refusals_as_the_owned_parser() {
        for src in ["<cib><a></cib>", "<cib/><cib/>", "", "<cib a='1' a='2'/>", "<!DOCTYPE x><x/>", "<a>&x;</a>"] {
            let owned = parse(src).unwrap_err().to_string();
            let doc = Doc::parse(src).unwrap_err().to_string();
            assert_eq!(owned, doc, "{src}");
        }
    }
}
