//! Read access to an element, whichever tree holds it.
//!
//! [`Node`] is what the read-only algorithms need from a tree: name,
//! attributes, children, text. It is implemented by `&Element` (the owned
//! tree that merge, diff and patch work on) and by [`crate::doc::DocNode`]
//! (the compact tree the publisher and the transform path use on whole
//! CIBs), so that the canonical writer, the scope selection and the scope
//! checks are written once and give the same answers on both.

use crate::xml::Element;

/// A read-only handle on one element of some tree; cheap to copy.
pub trait Node<'a>: Copy + 'a {
    /// Children, in document order.
    type Children: Iterator<Item = Self> + Clone;
    /// Attributes as (name, value), in document order.
    type Attrs: Iterator<Item = (&'a str, &'a str)> + ExactSizeIterator + Clone;

    /// Element name.
    fn name(self) -> &'a str;

    /// Attributes as (name, value), in document order.
    fn attrs(self) -> Self::Attrs;

    /// Child elements, in document order.
    fn children(self) -> Self::Children;

    /// Non-blank character data directly inside the element.
    fn text(self) -> &'a str;

    /// An owned copy of the subtree.
    fn to_element(self) -> Element;

    /// The text the element was parsed from for attribute `name` with
    /// `value` (one of its attributes), when that text is exactly what a
    /// writer writes for it, ` name="value"` with nothing to escape: it can
    /// then be copied in one piece. `None` when the tree does not keep its
    /// source (the owned tree), or the text differs.
    #[inline]
    fn source_attr(self, _name: &'a str, _value: &'a str) -> Option<&'a str> {
        None
    }

    /// The text the element's start tag begins with in its source, `<`
    /// and the name, when the tree keeps it.
    #[inline]
    fn source_open(self) -> Option<&'a str> {
        None
    }

    /// How many elements the subtree rooted here holds, when the tree
    /// knows without walking it (to size a table once); 0 when it does not.
    #[inline]
    fn subtree_hint(self) -> usize {
        0
    }

    /// The value of attribute `name`.
    #[inline]
    fn attr(self, name: &str) -> Option<&'a str> {
        self.attrs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The `id` attribute.
    #[inline]
    fn id(self) -> Option<&'a str> {
        self.attr("id")
    }

    /// Whether the element has child elements.
    fn has_children(self) -> bool {
        self.children().next().is_some()
    }

    /// The first child called `name`.
    fn child(self, name: &str) -> Option<Self> {
        self.children().find(|c| c.name() == name)
    }

    /// Visits this element and every descendant, parents first.
    fn walk(self, f: &mut impl FnMut(Self)) {
        f(self);
        for c in self.children() {
            c.walk(f);
        }
    }

    /// The element with `id` in this subtree (this element included).
    fn find_id(self, id: &str) -> Option<Self> {
        if self.id() == Some(id) {
            return Some(self);
        }
        self.children().find_map(|c| c.find_id(id))
    }
}

/// The attributes of an [`Element`] as `(&str, &str)`.
#[derive(Debug, Clone)]
pub struct ElementAttrs<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for ElementAttrs<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        self.0.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for ElementAttrs<'_> {}

impl<'a> Node<'a> for &'a Element {
    type Children = std::slice::Iter<'a, Element>;
    type Attrs = ElementAttrs<'a>;

    #[inline]
    fn name(self) -> &'a str {
        &self.name
    }

    #[inline]
    fn attrs(self) -> ElementAttrs<'a> {
        ElementAttrs(self.attrs.iter())
    }

    #[inline]
    fn children(self) -> std::slice::Iter<'a, Element> {
        self.children.iter()
    }

    #[inline]
    fn text(self) -> &'a str {
        &self.text
    }

    fn to_element(self) -> Element {
        self.clone()
    }

    #[inline]
    fn has_children(self) -> bool {
        !self.children.is_empty()
    }
}
