//! The serialization of [`Element`]s: two spaces of indent per level, one
//! element per line, attribute values and text escaped so that they read
//! back unchanged. The canonical form ([`crate::canonical`]) is this layout
//! over a tree in canonical order, so its digests depend on every byte
//! written here: change nothing without a new digest version.
//!
//! The writer serializes into any [`Sink`]: a `String`, or a hasher, so
//! that digests never need the text in memory.

use super::tree::Element;

/// Where serialized XML goes: a `String`, or a hasher fed as the text is
/// produced (see [`crate::canonical::HashSink`]).
pub trait Sink {
    /// Appends `s`.
    fn push(&mut self, s: &str);
}

impl Sink for String {
    #[inline]
    fn push(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// Two spaces per level.
pub(crate) fn indent<S: Sink + ?Sized>(out: &mut S, depth: usize) {
    for _ in 0..depth {
        out.push("  ");
    }
}

/// Writes one element as [`Element::to_xml`] lays it out: its start tag with
/// `attrs` (values escaped), then `/>` when it has neither children nor
/// text, else the text, each child (one level deeper) and the end tag.
/// `children` are written by `child`, so that a caller can write them in
/// another order or form.
pub(crate) fn write_element<'a, S: Sink + ?Sized>(
    out: &mut S,
    depth: usize,
    el: &Element,
    attrs: impl Iterator<Item = &'a (String, String)>,
    children: impl Iterator<Item = &'a Element>,
    child: &mut impl FnMut(&'a Element, &mut S, usize),
) {
    indent(out, depth);
    out.push("<");
    out.push(&el.name);
    for (k, v) in attrs {
        write_attr(out, k, v);
    }
    let mut children = children.peekable();
    if children.peek().is_none() {
        if el.text.is_empty() {
            out.push("/>\n");
            return;
        }
        out.push(">");
        escape_text_into(&el.text, out);
    } else {
        out.push(">\n");
        if !el.text.is_empty() {
            indent(out, depth + 1);
            escape_text_into(&el.text, out);
            out.push("\n");
        }
        for c in children {
            child(c, out, depth + 1);
        }
        indent(out, depth);
    }
    out.push("</");
    out.push(&el.name);
    out.push(">\n");
}

/// Writes one attribute of a start tag: ` name="value"`, the value escaped.
pub(crate) fn write_attr<S: Sink + ?Sized>(out: &mut S, name: &str, value: &str) {
    out.push(" ");
    out.push(name);
    out.push("=\"");
    escape_attr_into(value, out);
    out.push("\"");
}

/// Escapes an attribute value so that it reads back unchanged (whitespace
/// control characters become character references, which survive attribute
/// value normalization).
pub fn escape_attr(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_attr_into(v, &mut out);
    out
}

/// [`escape_attr`] into a [`Sink`], without an intermediate string.
pub fn escape_attr_into<S: Sink + ?Sized>(v: &str, out: &mut S) {
    escape_into(v, out, |b| match b {
        b'"' => Some("&quot;"),
        b'\n' => Some("&#10;"),
        b'\r' => Some("&#13;"),
        b'\t' => Some("&#9;"),
        _ => escape_text_byte(b),
    });
}

/// Escapes character data (`&`, `<`, `>`) into a [`Sink`].
pub(crate) fn escape_text_into<S: Sink + ?Sized>(v: &str, out: &mut S) {
    escape_into(v, out, escape_text_byte);
}

fn escape_text_byte(b: u8) -> Option<&'static str> {
    match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        _ => None,
    }
}

/// Copies `v` into `out`, each byte `replace` knows replaced by its
/// reference (only ASCII bytes are replaced, so cuts fall on characters).
fn escape_into<S: Sink + ?Sized>(v: &str, out: &mut S, replace: impl Fn(u8) -> Option<&'static str>) {
    let mut copied = 0;
    for (i, b) in v.bytes().enumerate() {
        let Some(rep) = replace(b) else { continue };
        out.push(&v[copied..i]);
        out.push(rep);
        copied = i + 1;
    }
    out.push(&v[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_would_not_read_back() {
        assert_eq!(escape_attr("a\"b<c>&\n\r\td'"), "a&quot;b&lt;c&gt;&amp;&#10;&#13;&#9;d'");
        let mut text = String::new();
        escape_text_into("a\"<&>\n", &mut text);
        assert_eq!(text, "a\"&lt;&amp;&gt;\n");
    }

    #[test]
    fn lays_out_elements_two_spaces_per_level() {
        let el = Element::new("a")
            .with_attr("id", "x")
            .with_child(Element::new("b").with_child(Element::new("c")));
        assert_eq!(el.to_xml(), "<a id=\"x\">\n  <b>\n    <c/>\n  </b>\n</a>\n");
        let mut text = Element::new("t");
        text.text = "hi".into();
        assert_eq!(text.to_xml(), "<t>hi</t>\n");
    }
}
