//! The hardened parser: quick-xml's reader behind the checks that make it
//! safe on hostile input and at least as strict as libxml2.
//!
//! quick-xml splits the text into events and checks that end tags match;
//! this layer adds what a conforming, bounded parser needs, each in linear
//! time and each refusal naming its line and column:
//!
//! - **Bounds** ([`Limits`]): document size, nesting depth (self-closing
//!   elements included), attributes per element, length of one attribute
//!   value, total text.
//! - **Nothing is expanded or fetched**: a DOCTYPE (and with it any entity
//!   declaration) is refused; of entity references only the five predefined
//!   ones and character references are accepted.
//! - **Well-formedness as libxml2 judges it**: characters XML forbids (raw
//!   control bytes, `U+FFFE`/`U+FFFF`, `&#0;` and other references to
//!   them), invalid element and attribute names, duplicate attributes (found
//!   with a hash set, not pairwise), attributes not separated by whitespace,
//!   `<` in an attribute value, `]]>` in text, `--` in a comment, a
//!   misplaced or malformed XML declaration, text or a second element
//!   outside the root. `tests/xmllint_diff.rs` checks this against
//!   libxml2's `xmllint` on mutated documents.
//! - **Namespaces are refused**: a prefixed name (`a:b`) or an `xmlns`
//!   attribute is an error (attributes of the predeclared `xml` prefix,
//!   such as `xml:space`, are kept as they are). Pacemaker's schema has none, and refusing them
//!   is simpler and safer than keeping them half-interpreted.
//! - **Encoding**: UTF-8 only. A UTF-8 byte order mark is accepted; UTF-16
//!   and an XML declaration naming another encoding are refused.
//!
//! Line ends (`\r\n`, `\r`) become `\n` before parsing, in text, CDATA and
//! attribute values alike; attribute values are then normalized (a literal
//! tab or line end becomes a space), as XML 1.0 requires.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::tree::Element;
use crate::error::Error;

/// Bounds applied while parsing untrusted documents. Every one is far
/// above what a real CIB needs (a 10,000-resource CIB is about 10 MB, 8
/// levels deep, at most a dozen attributes per element, no text) and far
/// below what would hurt the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attrs: usize,
    /// Longest attribute value, in bytes.
    pub max_value_bytes: usize,
    /// Most character data in the whole document, in bytes.
    pub max_text_bytes: usize,
}

impl Default for Limits {
    /// 64 MiB, 64 levels, 512 attributes, 1 MiB values, 1 MiB of text.
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_attrs: 512,
            max_value_bytes: 1024 * 1024,
            max_text_bytes: 1024 * 1024,
        }
    }
}

/// The text of a document given as bytes: UTF-8, a byte order mark
/// removed. Anything else is refused with the position of the first bad
/// byte.
pub fn decode(bytes: &[u8]) -> Result<&str, Error> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) || bytes.get(1) == Some(&0) {
        return Err(Error::Encoding("the document is UTF-16; only UTF-8 is accepted".into()));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(&bytes[..e.valid_up_to()], e.valid_up_to());
        Error::Encoding(format!("invalid UTF-8 at line {line}, column {column}"))
    })
}

/// Parses a document with the default [`Limits`], returning its root element.
pub fn parse(input: &str) -> Result<Element, Error> {
    parse_with(input, Limits::default())
}

/// Parses a document within `limits` (see the module documentation for
/// what is accepted). Errors carry the line, the column and the enclosing
/// elements.
pub fn parse_with(input: &str, limits: Limits) -> Result<Element, Error> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let input = input.strip_prefix('\u{FEFF}').unwrap_or(input);
    check_chars(input)?;
    let text = normalize_line_ends(input);
    Parser::new(&text, limits).run()
}

/// Refuses text that declares a DOCTYPE or an entity anywhere, without parsing
/// it: the guard used before handing a document or stylesheet to libxslt.
pub fn refuse_doctype(input: &str) -> Result<(), Error> {
    let has = |needle: &str| input.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    if has("<!DOCTYPE") || has("<!ENTITY") {
        return Err(Error::Doctype);
    }
    Ok(())
}

/// Refuses the characters XML forbids that a `&str` can hold: control
/// characters other than tab and line ends, and U+FFFE and U+FFFF (UTF-8
/// `EF BF BE`, `EF BF BF`). One pass over the bytes.
fn check_chars(input: &str) -> Result<(), Error> {
    let b = input.as_bytes();
    for (at, &c) in b.iter().enumerate() {
        if c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r') {
            return Err(malformed_at(input, at, "", format!("character U+{c:04X} is not allowed in XML")));
        }
        if c == 0xEF && b.get(at + 1) == Some(&0xBF) && matches!(b.get(at + 2), Some(0xBE | 0xBF)) {
            return Err(malformed_at(input, at, "", "characters U+FFFE and U+FFFF are not allowed in XML"));
        }
    }
    Ok(())
}

/// `\r\n` and a lone `\r` as `\n` (XML 1.0, 2.11), copying only when needed.
fn normalize_line_ends(input: &str) -> Cow<'_, str> {
    if !input.contains('\r') {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.replace("\r\n", "\n").replace('\r', "\n"))
}

/// 1-based line and column (in characters) of byte `at` of `text`.
fn line_column(text: &[u8], at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = 1 + before[start..].iter().filter(|&&b| (b & 0xC0) != 0x80).count();
    (line, column)
}

fn malformed_at(text: &str, at: usize, context: &str, message: impl Into<String>) -> Error {
    let (line, column) = line_column(text.as_bytes(), at);
    Error::Malformed {
        line,
        column,
        context: context.to_string(),
        message: message.into(),
    }
}

/// One pass over the events of a document, building the tree.
struct Parser<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    limits: Limits,
    /// Open elements, innermost last.
    stack: Vec<Element>,
    root: Option<Element>,
    text_bytes: usize,
    /// The run of text read since the last markup, and where it started.
    pending: String,
    pending_at: usize,
    /// Where the event being handled starts.
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, limits: Limits) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Parser {
            text,
            reader,
            limits,
            stack: Vec::new(),
            root: None,
            text_bytes: 0,
            pending: String::new(),
            pending_at: 0,
            at: 0,
        }
    }

    fn run(mut self) -> Result<Element, Error> {
        loop {
            self.at = self.reader.buffer_position() as usize;
            let event = match self.reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = self.reader.error_position() as usize;
                    return Err(self.error_at(at, e.to_string()));
                }
            };
            if !matches!(event, Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) {
                self.end_text_run()?;
            }
            match event {
                Event::Start(e) => {
                    let el = self.start(&e)?;
                    self.stack.push(el);
                }
                Event::Empty(e) => {
                    let el = self.start(&e)?;
                    self.close(el);
                }
                Event::End(_) => {
                    // quick-xml has checked that the name matches.
                    let el = self.stack.pop().ok_or_else(|| self.error("end tag without a start tag"))?;
                    self.close(el);
                }
                Event::Text(t) => {
                    let raw = t.into_inner();
                    if raw.contains("]]>") {
                        return Err(self.error("`]]>` is not allowed in text"));
                    }
                    self.push_text(raw)?;
                }
                Event::CData(t) => {
                    if self.stack.is_empty() {
                        return Err(self.error("CDATA section outside the root element"));
                    }
                    let raw = t.into_inner();
                    self.push_text(raw)?;
                }
                Event::GeneralRef(r) => {
                    let name = r.into_inner();
                    let mut buf = [0u8; 4];
                    let resolved = self.reference(&name, &mut buf)?.to_string();
                    self.push_text(Cow::Owned(resolved))?;
                }
                Event::Comment(c) => {
                    if c.ends_with('-') {
                        return Err(self.error("a comment may not end with `--->`"));
                    }
                }
                Event::Decl(d) => {
                    if self.at != 0 {
                        return Err(self.error("the XML declaration is allowed only at the start of the document"));
                    }
                    self.declaration(&d)?;
                }
                Event::PI(pi) => {
                    let target = pi.target();
                    if !is_name(target) || target.eq_ignore_ascii_case("xml") {
                        return Err(self.error(format!("invalid processing instruction target `{target}`")));
                    }
                }
                Event::DocType(_) => return Err(Error::Doctype),
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(self.error(format!("document ends inside <{}>", open.name)));
        }
        self.root.ok_or_else(|| malformed_at(self.text, self.text.len(), "", "no root element"))
    }

    /// A new element from its start tag, attributes checked and normalized.
    fn start(&mut self, e: &BytesStart<'_>) -> Result<Element, Error> {
        if self.root.is_some() && self.stack.is_empty() {
            return Err(self.error("a second element after the root element"));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(Error::TooDeep {
                limit: self.limits.max_depth,
                context: self.context(),
            });
        }
        let name = e.name().into_inner().to_string();
        self.check_name(&name, "element")?;
        let raw = e.attributes_raw();
        self.check_separators(&name, raw)?;
        let mut el = Element::new(name);
        for attr in e.attributes().with_checks(false) {
            let attr = attr.map_err(|err| self.error(format!("<{}>: {err}", el.name)))?;
            if el.attrs.len() == self.limits.max_attrs {
                return Err(self.error(format!("<{}> has more than {} attributes", el.name, self.limits.max_attrs)));
            }
            let key = attr.key.into_inner().to_string();
            self.check_name(&key, "attribute")?;
            if key == "xmlns" {
                return Err(self.error(format!("<{}>: namespaces are not supported (attribute `xmlns`)", el.name)));
            }
            if attr.value.len() > self.limits.max_value_bytes {
                return Err(self.error(format!("<{}> attribute {key}: value longer than {} bytes", el.name, self.limits.max_value_bytes)));
            }
            let raw = attr.value;
            let value = self.attribute_value(&el.name, &key, &raw)?;
            el.attrs.push((key, value));
        }
        self.check_duplicates(&el)?;
        Ok(el)
    }

    /// The element is complete: into its parent, or the root.
    fn close(&mut self, el: Element) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None => self.root = Some(el),
        }
    }

    /// Attribute names are unique: a pairwise check for the usual few, a
    /// hash set past them, so that many attributes cost linear time.
    fn check_duplicates(&mut self, el: &Element) -> Result<(), Error> {
        let dup = if el.attrs.len() <= 16 {
            el.attrs.iter().enumerate().find(|(i, (k, _))| el.attrs[..*i].iter().any(|(j, _)| j == k)).map(|(_, (k, _))| k.clone())
        } else {
            let mut seen = HashSet::with_capacity(el.attrs.len());
            el.attrs.iter().find(|(k, _)| !seen.insert(k.as_str())).map(|(k, _)| k.clone())
        };
        match dup {
            Some(k) => Err(self.error(format!("<{}>: duplicate attribute `{k}`", el.name))),
            None => Ok(()),
        }
    }

    /// Outside quotes, each attribute is preceded by whitespace (quick-xml
    /// splits `a="1"b="2"` without complaint; XML does not allow it).
    fn check_separators(&self, name: &str, raw: &str) -> Result<(), Error> {
        let mut quote = None;
        let mut after_value = false;
        for b in raw.bytes() {
            match quote {
                Some(q) if b == q => {
                    quote = None;
                    after_value = true;
                }
                Some(_) => {}
                None => {
                    if after_value && !b.is_ascii_whitespace() {
                        return Err(self.error(format!("<{name}>: attributes must be separated by whitespace")));
                    }
                    after_value = false;
                    if b == b'"' || b == b'\'' {
                        quote = Some(b);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_name(&self, name: &str, what: &str) -> Result<(), Error> {
        if !is_name(name) {
            return Err(self.error(format!("invalid {what} name `{}`", name.escape_debug())));
        }
        // The `xml` prefix is predeclared (`xml:space`, `xml:lang`).
        if name.contains(':') && !(what == "attribute" && name.strip_prefix("xml:").is_some_and(|local| !local.contains(':'))) {
            return Err(self.error(format!("{what} `{name}`: namespaces are not supported")));
        }
        Ok(())
    }

    /// An attribute value with its references resolved and its whitespace
    /// normalized (XML 1.0, 3.3.3): a literal tab or line end is a space,
    /// one given as a character reference stays what it is.
    fn attribute_value(&self, element: &str, key: &str, raw: &str) -> Result<String, Error> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(['&', '<', '\t', '\n']) {
            out.push_str(&rest[..i]);
            match rest.as_bytes()[i] {
                b'<' => return Err(self.error(format!("<{element}> attribute {key}: `<` is not allowed in an attribute value"))),
                b'&' => {
                    let Some(semi) = rest[i..].find(';') else {
                        return Err(self.error(format!("<{element}> attribute {key}: `&` without `;`")));
                    };
                    let mut buf = [0u8; 4];
                    out.push_str(self.reference(&rest[i + 1..i + semi], &mut buf)?);
                    rest = &rest[i + semi + 1..];
                    continue;
                }
                _ => out.push(' '),
            }
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// What `&name;` stands for: one of the five predefined entities or a
    /// character reference to a character XML allows.
    fn reference<'b>(&self, name: &str, buf: &'b mut [u8; 4]) -> Result<&'b str, Error> {
        let Some(num) = name.strip_prefix('#') else {
            let s = match name {
                "lt" => "<",
                "gt" => ">",
                "amp" => "&",
                "apos" => "'",
                "quot" => "\"",
                _ => {
                    return Err(Error::Entity {
                        name: name.to_string(),
                        context: self.context(),
                    })
                }
            };
            let n = s.len();
            buf[..n].copy_from_slice(s.as_bytes());
            return std::str::from_utf8(&buf[..n]).map_err(|_| self.error("bad reference"));
        };
        let code = match num.strip_prefix('x') {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => u32::from_str_radix(hex, 16).ok(),
            None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok(),
            _ => None,
        };
        match code.and_then(char::from_u32).filter(|&c| is_xml_char(c)) {
            Some(c) => Ok(c.encode_utf8(buf)),
            None => Err(self.error(format!("`&{name};` does not refer to a character XML allows"))),
        }
    }

    /// Character data: added to the current run of text, which ends at the
    /// next piece of markup other than a reference or a CDATA section
    /// ([`Parser::end_text_run`]), so that how the text was written (one
    /// piece, references, CDATA) does not change the tree.
    fn push_text(&mut self, text: Cow<'_, str>) -> Result<(), Error> {
        if self.pending.is_empty() {
            self.pending_at = self.at;
        }
        // One run, even of layout that will be dropped, is bounded too.
        if self.pending.len() + text.len() > self.limits.max_text_bytes {
            return Err(self.error(format!("a run of more than {} bytes of text", self.limits.max_text_bytes)));
        }
        self.pending.push_str(&text);
        Ok(())
    }

    /// The run of text ends: it goes to the innermost open element, except
    /// a blank run (layout between elements) while the element has no text
    /// yet. Outside the root element only blank text is allowed.
    fn end_text_run(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let run = std::mem::take(&mut self.pending);
        let blank = run.bytes().all(|b| b.is_ascii_whitespace());
        // Only the text kept counts against the bound of the document's
        // text: the layout between elements (any amount of it) does not.
        let kept = matches!(self.stack.last(), Some(el) if !(blank && el.text.is_empty()));
        if kept {
            self.text_bytes += run.len();
            if self.text_bytes > self.limits.max_text_bytes {
                return Err(self.error_at(self.pending_at, format!("more than {} bytes of text", self.limits.max_text_bytes)));
            }
        }
        match self.stack.last_mut() {
            Some(el) if !(blank && el.text.is_empty()) => el.text.push_str(&run),
            Some(_) => {}
            None if blank => {}
            None => {
                let place = if self.root.is_some() { "after" } else { "before" };
                return Err(self.error_at(self.pending_at, format!("text {place} the root element")));
            }
        }
        Ok(())
    }

    /// `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`, each part
    /// checked as libxml2 does; only UTF-8 (or its subset ASCII) is accepted.
    fn declaration(&self, d: &quick_xml::events::BytesDecl<'_>) -> Result<(), Error> {
        let raw: &str = d;
        let body = raw.strip_prefix("xml").unwrap_or(raw);
        let mut parts = Vec::new();
        let mut rest = body;
        loop {
            let trimmed = rest.trim_start_matches([' ', '\t', '\n']);
            if trimmed.is_empty() {
                break;
            }
            if trimmed.len() == rest.len() {
                return Err(self.error("malformed XML declaration"));
            }
            let Some((key, after)) = trimmed.split_once('=') else {
                return Err(self.error("malformed XML declaration"));
            };
            let after = after.trim_start_matches([' ', '\t', '\n']);
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
            let Some(q) = quote else {
                return Err(self.error("malformed XML declaration"));
            };
            let Some(end) = after[1..].find(q) else {
                return Err(self.error("malformed XML declaration"));
            };
            parts.push((key.trim_end_matches([' ', '\t', '\n']), &after[1..1 + end]));
            rest = &after[end + 2..];
        }
        let keys: Vec<&str> = parts.iter().map(|(k, _)| *k).collect();
        let order_ok = matches!(
            keys.as_slice(),
            ["version"] | ["version", "encoding"] | ["version", "standalone"] | ["version", "encoding", "standalone"]
        );
        if !order_ok {
            return Err(self.error("malformed XML declaration: expected version, then optionally encoding and standalone"));
        }
        for (k, v) in &parts {
            let ok = match *k {
                "version" => v.len() >= 3 && v.starts_with("1.") && v[2..].bytes().all(|b| b.is_ascii_digit()),
                "encoding" => v.eq_ignore_ascii_case("UTF-8") || v.eq_ignore_ascii_case("US-ASCII") || v.eq_ignore_ascii_case("ASCII"),
                _ => *v == "yes" || *v == "no",
            };
            if !ok {
                return Err(self.error(format!("XML declaration: {k}=\"{v}\" is not accepted (UTF-8 documents of XML 1.x only)")));
            }
        }
        Ok(())
    }

    /// The open elements, outermost first, as `<a> > <b id="x">`; past six,
    /// the two outermost and the three innermost around `…`.
    fn context(&self) -> String {
        let show = |e: &Element| match e.id() {
            Some(id) => format!("<{} id=\"{}\">", e.name, id.escape_debug()),
            None => format!("<{}>", e.name),
        };
        let n = self.stack.len();
        let parts: Vec<String> = if n <= 6 {
            self.stack.iter().map(show).collect()
        } else {
            let mut parts: Vec<String> = self.stack[..2].iter().map(show).collect();
            parts.push(format!("… ({} more)", n - 5));
            parts.extend(self.stack[n - 3..].iter().map(show));
            parts
        };
        parts.join(" > ")
    }

    fn error(&self, message: impl Into<String>) -> Error {
        self.error_at(self.at, message)
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> Error {
        malformed_at(self.text, at, &self.context(), message)
    }
}

/// Whether `c` is a character XML 1.0 allows (production `Char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Whether `s` is an XML 1.0 `Name` (fifth edition).
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(|c| is_name_start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}'))
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(src: &str) -> String {
        match parse(src) {
            Err(e) => e.to_string(),
            Ok(el) => panic!("accepted {src:?} as {el:?}"),
        }
    }

    #[test]
    fn round_trips_attributes_and_text() {
        let src = "<?xml version=\"1.0\"?>\n<!-- comment -->\n<cib a=\"1 &amp; 2\" b=\"x&#10;y\" c=\"t\tu\r\nv\"><configuration>\n  <x id=\"t\">hello &lt;world&gt; <![CDATA[<raw>\r\n]]></x>\n</configuration></cib>";
        let el = parse(src).unwrap();
        assert_eq!(el.attr("a"), Some("1 & 2"));
        assert_eq!(el.attr("b"), Some("x\ny"));
        assert_eq!(el.attr("c"), Some("t u v"));
        let x = &el.children[0].children[0];
        assert_eq!(x.text, "hello <world> <raw>\n");
        assert_eq!(parse(&el.to_xml()).unwrap(), el);
    }

    #[test]
    fn accepts_a_byte_order_mark_and_refuses_utf16() {
        assert_eq!(decode(b"\xEF\xBB\xBF<a/>").unwrap(), "<a/>");
        assert!(parse("\u{FEFF}<a/>").is_ok());
        assert!(decode(b"\xFF\xFE<\0a\0/\0>\0").unwrap_err().to_string().contains("UTF-16"));
        assert!(decode(b"<a b=\"\xC3\"/>").unwrap_err().to_string().contains("line 1, column 7"));
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let doctype = r#"<!DOCTYPE cib [<!ENTITY x SYSTEM "file:///etc/passwd">]><cib>&x;</cib>"#;
        assert!(matches!(parse(doctype), Err(Error::Doctype)));
        match parse("<cib><a>&x;</a></cib>") {
            Err(Error::Entity { name, context }) => {
                assert_eq!(name, "x");
                assert!(context.contains("<a>"), "{context}");
            }
            other => panic!("{other:?}"),
        }
        refused(r#"<cib a="&x;"/>"#);
        assert!(refuse_doctype("<!doctype x>").is_err());
    }

    #[test]
    fn refuses_what_libxml2_refuses() {
        for src in [
            "<cib><a></cib>",
            "<cib/><cib/>",
            "",
            "<cib a='1' a='2'/>",
            "<cib a='1'b='2'/>",
            "<cib a='<'/>",
            "<cib a='&'/>",
            "<cib>&#0;</cib>",
            "<cib a='&#1;'/>",
            "<cib>&#xD800;</cib>",
            "<cib>\u{1}</cib>",
            "<cib>a]]>b</cib>",
            "<cib><!-- a -- b --></cib>",
            "<cib><!-- a ---></cib>",
            "<1cib/>",
            "<cib 1a='x'/>",
            "<cib/>text",
            "text<cib/>",
            " <?xml version='1.0'?><cib/>",
            "<?xml version='2.0'?><cib/>",
            "<?xml encoding='UTF-8'?><cib/>",
            "<?xml version='1.0' encoding='UTF-16'?><cib/>",
            "<?xml version='1.0'standalone='yes'?><cib/>",
            "<cib><?xml-stylesheet?><?XML x?></cib>",
            "<![CDATA[x]]><cib/>",
            "<cib",
            "<cib>",
            "<a:cib/>",
            "<cib xmlns='urn:x'/>",
            "<cib x:y='1'/>",
            "<cib>\u{FFFE}</cib>",
        ] {
            refused(src);
        }
    }

    #[test]
    fn refusals_name_line_and_column() {
        let message = refused("<cib>\n  <a id=\"x\">\n    <b c='1' c='2'/>\n  </a>\n</cib>");
        assert!(message.contains("line 3, column 5"), "{message}");
        assert!(message.contains("<a id=\"x\">"), "{message}");
        assert!(message.contains("duplicate attribute `c`"), "{message}");
    }

    #[test]
    fn bounds_hold() {
        let limits = Limits { max_bytes: 10, ..Limits::default() };
        assert!(matches!(parse_with("<cib>0123456789</cib>", limits), Err(Error::TooLarge { .. })));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(matches!(parse(&deep), Err(Error::TooDeep { .. })));
        let deep_empty = "<a>".repeat(64) + "<b/>" + &"</a>".repeat(64);
        assert!(matches!(parse(&deep_empty), Err(Error::TooDeep { .. })), "self-closing elements count");
        let attrs: String = (0..600).map(|i| format!(" a{i}='1'")).collect();
        assert!(refused(&format!("<cib{attrs}/>")).contains("more than 512 attributes"));
        let many: String = (0..300).map(|i| format!(" a{i}='1'")).collect();
        assert!(refused(&format!("<cib{many} a7='2'/>")).contains("duplicate attribute `a7`"));
        let long = "x".repeat(2 * 1024 * 1024);
        assert!(refused(&format!("<cib a='{long}'/>")).contains("value longer than"));
        assert!(refused(&format!("<cib>{long}</cib>")).contains("bytes of text"));
        let many: String = (0..1500).map(|_| format!("<b>{}</b>", "y".repeat(1000))).collect();
        assert!(refused(&format!("<cib>{many}</cib>")).contains("more than 1048576 bytes of text"), "text in many elements adds up");
        // Layout is not text: a large, deeply indented document is fine.
        let indented: String = (0..40_000).map(|i| format!("\n{}<p id=\"p{i}\"/>", " ".repeat(40))).collect();
        assert!(indented.len() > 1_600_000);
        assert_eq!(parse(&format!("<cib>{indented}\n</cib>")).unwrap().children.len(), 40_000);
    }

    #[test]
    fn names_follow_xml() {
        for ok in ["a", "_a", "a-b.c", "é", "a1"] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", ".a", "a b", "a>"] {
            assert!(!is_name(bad), "{bad}");
        }
    }
}
