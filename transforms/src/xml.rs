//! A small owned XML tree for CIB documents, and its hardened parser and writer.
//!
//! The CIB is attribute-centric: elements carry attributes and child elements,
//! almost never text. The tree therefore keeps, per element, its attributes in
//! document order, its child elements, and the concatenation of its non-blank
//! text. Comments, processing instructions and blank text are dropped.
//!
//! Parsing is hostile-input safe: documents larger than [`Limits::max_bytes`]
//! or deeper than [`Limits::max_depth`] are refused, as are any DOCTYPE
//! declaration and any entity reference other than the five predefined ones and
//! character references. Nothing is ever fetched or expanded.

use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::error::Error;

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

/// Size and depth bounds applied while parsing untrusted documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 64 MiB and 64 levels: far above any real CIB (a 10,000-resource CIB is
    /// about 10 MB and 8 levels deep), far below what would hurt the host.
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
        }
    }
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
        let mut out = String::new();
        self.write_indented(&mut out, 0);
        out
    }

    /// Serializes the subtree into `out` as [`Element::to_xml`] does, indented
    /// as if it sat `depth` levels deep.
    pub fn write_indented(&self, out: &mut String, depth: usize) {
        for _ in 0..depth {
            out.push_str("  ");
        }
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            let _ = write!(out, " {k}=\"{}\"", escape_attr(v));
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&escape_text(&self.text));
        } else {
            out.push('\n');
            if !self.text.is_empty() {
                for _ in 0..=depth {
                    out.push_str("  ");
                }
                out.push_str(&escape_text(&self.text));
                out.push('\n');
            }
            for c in &self.children {
                c.write_indented(out, depth + 1);
            }
            for _ in 0..depth {
                out.push_str("  ");
            }
        }
        let _ = writeln!(out, "</{}>", self.name);
    }
}

/// Escapes an attribute value so that it reads back unchanged (whitespace
/// control characters become character references, which survive attribute
/// value normalization).
pub fn escape_attr(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn escape_text(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Parses a document with the default [`Limits`], returning its root element.
pub fn parse(input: &str) -> Result<Element, Error> {
    parse_with(input, Limits::default())
}

/// Parses a document, refusing DOCTYPE, non-predefined entities and anything
/// beyond `limits`. Errors carry the byte offset and the enclosing element.
pub fn parse_with(input: &str, limits: Limits) -> Result<Element, Error> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let malformed = |reader: &Reader<&[u8]>, stack: &[Element], msg: String| Error::Malformed {
        offset: reader.buffer_position() as usize,
        context: context_of(stack),
        message: msg,
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(&reader, &stack, e.to_string()))?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(malformed(
                    &reader,
                    &stack,
                    "content after the root element".into(),
                ));
            }
            Event::Start(start) => {
                if stack.len() >= limits.max_depth {
                    return Err(Error::TooDeep {
                        limit: limits.max_depth,
                        context: context_of(&stack),
                    });
                }
                let el = element_from(&start)
                    .map_err(|m| malformed(&reader, &stack, m))?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = element_from(&start)
                    .map_err(|m| malformed(&reader, &stack, m))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(malformed(&reader, &stack, "unexpected end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.xml_content(XmlVersion::Implicit1_0);
                push_text(&reader, &mut stack, &text, root.is_some())
                    .map_err(|m| malformed(&reader, &stack, m))?;
            }
            Event::CData(t) => {
                let raw = t.into_inner();
                let text = raw.into_owned();
                push_text(&reader, &mut stack, &text, root.is_some())
                    .map_err(|m| malformed(&reader, &stack, m))?;
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| malformed(&reader, &stack, e.to_string()))?
                        .map(String::from)
                } else {
                    predefined(r.as_ref()).map(String::from)
                };
                let Some(text) = resolved else {
                    return Err(Error::Entity {
                        name: r.as_ref().to_string(),
                        context: context_of(&stack),
                    });
                };
                if stack.is_empty() {
                    return Err(malformed(&reader, &stack, "text outside the root element".into()));
                }
                push_text(&reader, &mut stack, &text, root.is_some())
                    .map_err(|m| malformed(&reader, &stack, m))?;
            }
            Event::DocType(_) => return Err(Error::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed(
            &reader,
            &stack,
            "document ends inside an element".into(),
        ));
    }
    root.ok_or(Error::Malformed {
        offset: input.len(),
        context: String::new(),
        message: "no root element".into(),
    })
}

fn push_text(
    _reader: &Reader<&[u8]>,
    stack: &mut [Element],
    text: &str,
    after_root: bool,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(el) => {
            // Blank text between elements is layout, not content.
            if !text.trim().is_empty() || !el.text.is_empty() {
                el.text.push_str(text);
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None if after_root => Err("text after the root element".into()),
        None => Err("text before the root element".into()),
    }
}

fn predefined(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}

fn element_from(start: &BytesStart<'_>) -> Result<Element, String> {
    let name = start.name().as_ref().to_string();
    let mut el = Element::new(name);
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("<{}>: {e}", el.name))?;
        let key = attr.key.as_ref().to_string();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("<{}> attribute {key}: {e}", el.name))?
            .into_owned();
        if el.attr(&key).is_some() {
            return Err(format!("<{}>: duplicate attribute {key}", el.name));
        }
        el.attrs.push((key, value));
    }
    Ok(el)
}

/// "resources > group id=g1 > primitive id=p1"-style path for error messages.
fn context_of(stack: &[Element]) -> String {
    stack
        .iter()
        .map(|e| match e.id() {
            Some(id) => format!("<{} id=\"{id}\">", e.name),
            None => format!("<{}>", e.name),
        })
        .collect::<Vec<_>>()
        .join(" > ")
}

/// Refuses text that declares a DOCTYPE or an entity anywhere, without parsing
/// it: the guard used before handing a document or stylesheet to libxslt.
pub fn refuse_doctype(input: &str) -> Result<(), Error> {
    if input.contains("<!DOCTYPE") || input.contains("<!ENTITY") || input.contains("<!doctype")
    {
        return Err(Error::Doctype);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_attributes_and_text() {
        let src = r#"<?xml version="1.0"?>
<!-- comment -->
<cib a="1 &amp; 2" b="x&#10;y"><configuration>
  <x id="t">hello &lt;world&gt;</x>
</configuration></cib>"#;
        let el = parse(src).unwrap();
        assert_eq!(el.attr("a"), Some("1 & 2"));
        assert_eq!(el.attr("b"), Some("x\ny"));
        let x = &el.children[0].children[0];
        assert_eq!(x.text, "hello <world>");
        let again = parse(&el.to_xml()).unwrap();
        assert_eq!(again, el);
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let doctype = r#"<!DOCTYPE cib [<!ENTITY x SYSTEM "file:///etc/passwd">]><cib>&x;</cib>"#;
        assert!(matches!(parse(doctype), Err(Error::Doctype)));
        let entity = "<cib><a>&x;</a></cib>";
        match parse(entity) {
            Err(Error::Entity { name, context }) => {
                assert_eq!(name, "x");
                assert!(context.contains("<a>"), "{context}");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(r#"<cib a="&x;"/>"#).is_err());
    }

    #[test]
    fn refuses_malformed_and_oversized() {
        assert!(matches!(parse("<cib><a></cib>"), Err(Error::Malformed { .. })));
        assert!(matches!(parse("<cib/><cib/>"), Err(Error::Malformed { .. })));
        assert!(matches!(parse(""), Err(Error::Malformed { .. })));
        assert!(matches!(parse("<cib a='1' a='2'/>"), Err(Error::Malformed { .. })));
        let limits = Limits { max_bytes: 10, max_depth: 64 };
        assert!(matches!(
            parse_with("<cib>0123456789</cib>", limits),
            Err(Error::TooLarge { .. })
        ));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(matches!(parse(&deep), Err(Error::TooDeep { .. })));
    }
}
