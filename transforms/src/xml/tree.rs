//! [`Element`]: one XML element with its attributes, child elements and
//! text — the tree every path of cib-replicator works on.
//!
//! The CIB is attribute-centric: elements carry attributes and child
//! elements, never text in Pacemaker's schema. The tree keeps, per element,
//! its attributes in document order, its child elements, and the
//! concatenation of its non-blank text (kept so that a document holding
//! text is seen as such, and refused where text has no place). Comments,
//! processing instructions and blank text are not part of the tree.

use super::writer::{write_element, Sink};

/// One XML element with its attributes, child elements and text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Element name, e.g. `primitive`.
    pub name: String,
    /// Attributes in document order (names are unique).
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Non-blank character data directly inside this element, concatenated.
    pub text: String,
}

impl Element {
    /// Creates an element with no attributes or children.
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ..Element::default()
        }
    }

    /// Builder-style: adds or replaces attribute `name`.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder-style: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The element's `id` attribute, if present.
    pub fn id(&self) -> Option<&str> {
        self.attr("id")
    }

    /// Sets attribute `name` to `value`, keeping its position if it exists.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((name.to_string(), value)),
        }
    }

    /// Removes attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let pos = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(pos).1)
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child element called `name`, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    /// The first child called `name`, created (appended) if missing.
    pub fn child_or_insert(&mut self, name: &str) -> &mut Element {
        let pos = match self.children.iter().position(|c| c.name == name) {
            Some(pos) => pos,
            None => {
                self.children.push(Element::new(name));
                self.children.len() - 1
            }
        };
        &mut self.children[pos]
    }

    /// Visits this element and every descendant, parents before children.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Element)) {
        f(self);
        for c in &self.children {
            c.walk(f);
        }
    }

    /// Visits this element and every descendant mutably, parents first.
    pub fn walk_mut(&mut self, f: &mut impl FnMut(&mut Element)) {
        f(self);
        for c in &mut self.children {
            c.walk_mut(f);
        }
    }

    /// Finds the element with `id` in this subtree (this element included).
    pub fn find_id(&self, id: &str) -> Option<&Element> {
        if self.id() == Some(id) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_id(id))
    }

    /// Serializes the subtree, indented by two spaces per level, one element
    /// per line, attributes in stored order, ending with a newline.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(self.serialized_len_hint());
        self.write_indented(&mut out, 0);
        out
    }

    /// Serializes the subtree into `out` as [`Element::to_xml`] does, indented
    /// as if it sat `depth` levels deep.
    pub fn write_indented(&self, out: &mut String, depth: usize) {
        self.write_to(out, depth);
    }

    /// Serializes the subtree into any [`Sink`] (a `String`, a hasher...) as
    /// [`Element::to_xml`] does, indented as if it sat `depth` levels deep.
    pub fn write_to<S: Sink + ?Sized>(&self, out: &mut S, depth: usize) {
        write_element(out, depth, self, self.attrs.iter(), self.children.iter(), &mut |c, out, depth| c.write_to(out, depth));
    }

    /// A rough size of the serialization, to size buffers.
    fn serialized_len_hint(&self) -> usize {
        let mut n = 0;
        self.walk(&mut |e| {
            n += 2 * e.name.len() + 8 + e.text.len();
            n += e.attrs.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>();
        });
        n + n / 4
    }
}

