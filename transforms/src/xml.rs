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
//!
//! The parser is a single pass over the text written for this tree (it
//! replaced a quick-xml event loop; `tests/parser_reference.rs` checks it
//! against that on generated inputs): every element's attribute and child
//! lists are allocated once, at their final size. It accepts what quick-xml
//! accepted, with the same tree, except three things that are ill-formed XML
//! and are now refused: `<` in an attribute value, attributes not separated
//! by whitespace, and a name running into a non-ASCII space.
//!
//! The writer serializes into any [`Sink`]: a `String`, or a hasher, so that
//! digests ([`crate::canonical`]) never need the text in memory.

use std::borrow::Cow;

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
        write_element(
            out,
            depth,
            &self.name,
            self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.text,
            self.children.iter(),
            &mut |c, out, depth| c.write_to(out, depth),
        );
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

/// Where serialized XML goes: a `String`, or a hasher fed as the text is
/// produced (see [`crate::canonical`]), so that digests never need the whole
/// serialization in memory.
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

/// A [`Sink`] that tells whether what is written equals `expected`,
/// without keeping it.
#[derive(Debug)]
pub struct SameAs<'a> {
    expected: &'a [u8],
    at: usize,
    same: bool,
}

impl<'a> SameAs<'a> {
    /// Compares what will be written with `expected`.
    pub fn new(expected: &'a [u8]) -> Self {
        SameAs { expected, at: 0, same: true }
    }

    /// Whether everything written equals all of `expected`.
    pub fn finish(self) -> bool {
        self.same && self.at == self.expected.len()
    }
}

impl Sink for SameAs<'_> {
    #[inline]
    fn push(&mut self, s: &str) {
        let end = self.at + s.len();
        self.same = self.same && self.expected.get(self.at..end) == Some(s.as_bytes());
        self.at = end;
    }
}

const SPACES: &str = "                                                                                                                                ";

/// Two spaces per level.
pub(crate) fn indent<S: Sink + ?Sized>(out: &mut S, depth: usize) {
    let mut n = 2 * depth;
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push(&SPACES[..k]);
        n -= k;
    }
}

/// Writes one element as [`Element::to_xml`] lays it out: its start tag with
/// `attrs` (values escaped), then `/>` when it has neither children nor
/// text, else the text, each child (written by `child`, one level deeper)
/// and the end tag.
pub(crate) fn write_element<'a, C, S: Sink + ?Sized>(
    out: &mut S,
    depth: usize,
    name: &str,
    attrs: impl Iterator<Item = (&'a str, &'a str)>,
    text: &str,
    children: impl Iterator<Item = C>,
    child: &mut impl FnMut(C, &mut S, usize),
) {
    let attrs = |out: &mut S| attrs.for_each(|(k, v)| write_attr(out, k, v));
    write_element_with(out, depth, name, None, attrs, text, children, child);
}

/// [`write_element`] with the attributes written by `attrs` (each as
/// [`write_attr`] would, in order), and `open`, when given, the text that
/// starts the tag (`<` and the name) in one piece.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_element_with<C, S: Sink + ?Sized>(
    out: &mut S,
    depth: usize,
    name: &str,
    open: Option<&str>,
    attrs: impl FnOnce(&mut S),
    text: &str,
    children: impl Iterator<Item = C>,
    child: &mut impl FnMut(C, &mut S, usize),
) {
    indent(out, depth);
    match open {
        Some(open) => out.push(open),
        None => {
            out.push("<");
            out.push(name);
        }
    }
    attrs(out);
    let mut children = children.peekable();
    if children.peek().is_none() {
        if text.is_empty() {
            out.push("/>\n");
            return;
        }
        out.push(">");
        escape_text_into(text, out);
    } else {
        out.push(">\n");
        if !text.is_empty() {
            indent(out, depth + 1);
            escape_text_into(text, out);
            out.push("\n");
        }
        for c in children {
            child(c, out, depth + 1);
        }
        indent(out, depth);
    }
    out.push("</");
    out.push(name);
    out.push(">\n");
}

/// Writes one attribute of a start tag: ` name="value"`, the value escaped.
#[inline]
pub(crate) fn write_attr<S: Sink + ?Sized>(out: &mut S, name: &str, value: &str) {
    out.push(" ");
    out.push(name);
    out.push("=\"");
    escape_attr_into(value, out);
    out.push("\"");
}

/// Whether an escape may change `v`: exactly whether [`escape_attr`]
/// would (character data escapes fewer bytes).
#[inline]
pub(crate) fn may_need_escape(v: &str) -> bool {
    v.bytes().any(|b| SPECIAL[b as usize])
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

/// The bytes some escape replaces (a superset for each of them).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let bytes = *b"\"\n\r\t&<>";
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

/// Copies `v` into `out`, each byte `replace` knows replaced by its
/// reference (only ASCII bytes are replaced, so cuts fall on characters).
#[inline]
fn escape_into<S: Sink + ?Sized>(v: &str, out: &mut S, replace: impl Fn(u8) -> Option<&'static str>) {
    // Most values hold none of the bytes either escape replaces.
    if !may_need_escape(v) {
        out.push(v);
        return;
    }
    let mut copied = 0;
    for (i, b) in v.bytes().enumerate() {
        let Some(rep) = replace(b) else { continue };
        out.push(&v[copied..i]);
        out.push(rep);
        copied = i + 1;
    }
    out.push(&v[copied..]);
}

/// Parses a document with the default [`Limits`], returning its root element.
pub fn parse(input: &str) -> Result<Element, Error> {
    parse_with(input, Limits::default())
}

/// Parses a document, refusing DOCTYPE, non-predefined entities and anything
/// beyond `limits`. Errors carry the byte offset and the enclosing element.
///
/// What is accepted: one root element; attributes in single or double quotes
/// (unique names, whitespace between them); the five predefined entities and
/// character references in text and attribute values; CDATA sections;
/// comments, processing instructions and the XML declaration (dropped).
/// Attribute values are normalized as XML 1.0 requires (a literal tab, line
/// feed or carriage return becomes a space; `\r\n` one space) and line ends
/// in text become `\n`.
pub fn parse_with(input: &str, limits: Limits) -> Result<Element, Error> {
    run_parser(input, limits, OwnedBuilder::default())
}

/// What a parse builds: the parser reports each start tag (with its
/// attributes, values normalized), each end, and each run of character data
/// of the innermost open element, and the builder makes a tree of them — an
/// owned [`Element`] here, a compact [`crate::doc::Doc`] there. Both trees
/// therefore come from the same checks.
pub(crate) trait Builder<'a> {
    /// The finished tree.
    type Out;
    /// An element starts; `attrs` (drained by the builder) are its
    /// attributes in document order, names unique.
    fn start(&mut self, name: &'a str, attrs: &mut Vec<(&'a str, Cow<'a, str>)>);
    /// The innermost open element ends.
    fn end(&mut self);
    /// Whether the innermost open element has text already.
    fn has_text(&self) -> bool;
    /// Appends character data to the innermost open element.
    fn text(&mut self, text: &str);
    /// The root element, once the document is complete.
    fn finish(self) -> Self::Out;
}

/// Runs the parser over `input` with `builder`.
pub(crate) fn run_parser<'a, B: Builder<'a>>(input: &'a str, limits: Limits, builder: B) -> Result<B::Out, Error> {
    check_size(input, limits)?;
    Parser::new(input, 0, limits, builder).run()
}

/// Refuses an input larger than the limit.
fn check_size(input: &str, limits: Limits) -> Result<(), Error> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// A parse of the whole of `input` that pauses when it reaches `stop`
/// exactly between two pieces of markup (the text before `stop` read):
/// `Ok(Err(paused))` then, to be resumed or finished otherwise. A parse
/// that passes over `stop` (inside a comment, say) goes on to the end.
pub(crate) fn parse_until<'a, B: Builder<'a>>(input: &'a str, limits: Limits, builder: B, stop: usize) -> Result<Result<B::Out, Paused<'a, B>>, Error> {
    check_size(input, limits)?;
    let mut parser = Parser::new(input, 0, limits, builder);
    parser.stop = stop;
    if parser.scan()? {
        Ok(Err(Paused { parser }))
    } else {
        parser.finish().map(Ok)
    }
}

/// A parse stopped by [`parse_until`].
pub(crate) struct Paused<'a, B> {
    parser: Parser<'a, B>,
}

impl<'a, B: Builder<'a>> Paused<'a, B> {
    /// Goes on to the end, as if it had never stopped.
    pub(crate) fn resume(mut self) -> Result<B::Out, Error> {
        self.parser.stop = usize::MAX;
        self.parser.scan()?;
        self.parser.finish()
    }

    /// The names of the open elements, outermost first.
    pub(crate) fn open_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.parser.open.iter().map(|(name, _)| *name)
    }

    /// Whether the root element has ended.
    pub(crate) fn done(&self) -> bool {
        self.parser.done
    }

    /// The builder, as it stands.
    pub(crate) fn builder(&self) -> &B {
        &self.parser.builder
    }

    /// The builder, the parse abandoned (the caller completes the tree).
    pub(crate) fn into_builder(self) -> B {
        self.parser.builder
    }

    /// The limits of the parse.
    pub(crate) fn limits(&self) -> Limits {
        self.parser.limits
    }
}

/// What [`parse_fragment`] read: elements from `start` to the end of the
/// input, whose end tags may close elements opened before `start`.
pub(crate) struct Fragment<'a, B> {
    /// The builder, fed the fragment's elements.
    pub builder: B,
    /// In order, what happened outside the fragment's own elements: `None`
    /// an element started, `Some(name)` an end tag closed an element opened
    /// before `start`.
    pub outer: Vec<Option<&'a str>>,
    /// The deepest the fragment's own elements were nested.
    pub max_open: usize,
}

/// Parses `input` from `start`, a `<` that starts a tag, to the end, as a
/// fragment: end tags of elements opened before `start` are recorded, not
/// refused (the builder is told with [`Builder::end`] while none of its own
/// elements is open). Any error means the fragment cannot be read on its
/// own: the caller then reads the document on from `start` in the parse of
/// its beginning, as if it had never been split.
pub(crate) fn parse_fragment<'a, B: Builder<'a>>(input: &'a str, start: usize, limits: Limits, builder: B) -> Result<Fragment<'a, B>, Error> {
    let mut parser = Parser::new(input, start, limits, builder);
    parser.fragment = true;
    parser.scan()?;
    if !parser.open.is_empty() {
        return Err(parser.malformed("document ends inside an element"));
    }
    Ok(Fragment {
        builder: parser.builder,
        outer: parser.outer,
        max_open: parser.max_open,
    })
}

/// Builds the owned tree. Children of open elements accumulate in `kids`
/// (each open element remembers where its own start), so that every
/// element's child list is allocated once, at its exact size.
#[derive(Default)]
struct OwnedBuilder {
    stack: Vec<(Element, usize)>,
    kids: Vec<Element>,
    root: Option<Element>,
}

impl<'a> Builder<'a> for OwnedBuilder {
    type Out = Element;

    fn start(&mut self, name: &'a str, attrs: &mut Vec<(&'a str, Cow<'a, str>)>) {
        let el = Element {
            name: name.to_string(),
            attrs: attrs.drain(..).map(|(k, v)| (k.to_string(), v.into_owned())).collect(),
            children: Vec::new(),
            text: String::new(),
        };
        let base = self.kids.len();
        self.stack.push((el, base));
    }

    fn end(&mut self) {
        let Some((mut el, base)) = self.stack.pop() else {
            return;
        };
        el.children = self.kids.drain(base..).collect();
        if self.stack.is_empty() {
            self.root = Some(el);
        } else {
            self.kids.push(el);
        }
    }

    fn has_text(&self) -> bool {
        self.stack.last().is_some_and(|(el, _)| !el.text.is_empty())
    }

    fn text(&mut self, text: &str) {
        if let Some((el, _)) = self.stack.last_mut() {
            el.text.push_str(text);
        }
    }

    fn finish(self) -> Element {
        self.root.unwrap_or_default()
    }
}

/// The state of one parse: the open elements (name and id, for matching
/// end tags and for error context) and the attributes of the current start
/// tag.
struct Parser<'a, B> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    limits: Limits,
    open: Vec<(&'a str, Option<Cow<'a, str>>)>,
    attrs: Vec<(&'a str, Cow<'a, str>)>,
    /// Whether the root element has ended.
    done: bool,
    builder: B,
    /// Where [`Parser::scan`] pauses (`usize::MAX`: nowhere).
    stop: usize,
    /// A fragment ([`parse_fragment`]): end tags may close elements opened
    /// before it, recorded in `outer` with the elements started outside
    /// its own.
    fragment: bool,
    outer: Vec<Option<&'a str>>,
    /// The most elements open at once.
    max_open: usize,
}

#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Bytes that end a name (besides whitespace).
#[inline]
fn ends_name(b: u8) -> bool {
    is_space(b) || matches!(b, b'/' | b'>' | b'=' | b'<' | b'"' | b'\'' | b'&')
}

impl<'a, B: Builder<'a>> Parser<'a, B> {
    fn new(input: &'a str, pos: usize, limits: Limits, builder: B) -> Self {
        Parser {
            src: input,
            b: input.as_bytes(),
            pos,
            limits,
            open: Vec::with_capacity(16),
            attrs: Vec::with_capacity(16),
            done: false,
            builder,
            stop: usize::MAX,
            fragment: false,
            outer: Vec::new(),
            max_open: 0,
        }
    }

    fn run(mut self) -> Result<B::Out, Error> {
        self.scan()?;
        self.finish()
    }

    /// Reads markup until the end of the input (`false`), or until the
    /// next piece of markup starts at [`Parser::stop`] (`true`).
    fn scan(&mut self) -> Result<bool, Error> {
        let len = self.b.len();
        loop {
            let next = memchr::memchr(b'<', &self.b[self.pos..]).map_or(len, |i| self.pos + i);
            if next > self.pos {
                self.text_run(self.pos, next)?;
            }
            if next == len {
                return Ok(false);
            }
            self.pos = next;
            if next == self.stop {
                return Ok(true);
            }
            match self.b.get(next + 1) {
                Some(b'/') => self.end_tag()?,
                Some(b'?') => {
                    let end = self.find(next + 2, "?>", "unterminated processing instruction")?;
                    self.pos = end + 2;
                }
                Some(b'!') => self.markup_declaration()?,
                _ => self.start_tag()?,
            }
        }
    }

    /// The checks at the end of the document, and the tree.
    fn finish(self) -> Result<B::Out, Error> {
        let len = self.b.len();
        if !self.open.is_empty() {
            return Err(self.malformed("document ends inside an element"));
        }
        if !self.done {
            return Err(Error::Malformed {
                offset: len,
                context: String::new(),
                message: "no root element".into(),
            });
        }
        Ok(self.builder.finish())
    }

    fn malformed(&self, message: impl Into<String>) -> Error {
        Error::Malformed {
            offset: self.pos,
            context: self.context(),
            message: message.into(),
        }
    }

    fn context(&self) -> String {
        context_of(self.open.iter().map(|(name, id)| (*name, id.as_deref())))
    }

    /// Position of `needle` at or after `from`.
    fn find(&self, from: usize, needle: &str, what: &str) -> Result<usize, Error> {
        memchr::memmem::find(&self.b[from.min(self.b.len())..], needle.as_bytes())
            .map(|i| from + i)
            .ok_or_else(|| self.malformed(what))
    }

    /// `<!--`, `<![CDATA[`, `<!DOCTYPE` (refused) or an error.
    fn markup_declaration(&mut self) -> Result<(), Error> {
        let rest = &self.b[self.pos..];
        if rest.starts_with(b"<!--") {
            let end = self.find(self.pos + 4, "-->", "unterminated comment")?;
            self.pos = end + 3;
            Ok(())
        } else if rest.starts_with(b"<![CDATA[") {
            let start = self.pos + 9;
            let end = self.find(start, "]]>", "unterminated CDATA section")?;
            let src = self.src;
            self.push_text(&src[start..end])?;
            self.pos = end + 3;
            Ok(())
        } else if rest.len() >= 9 && rest[2..9].eq_ignore_ascii_case(b"DOCTYPE") {
            Err(Error::Doctype)
        } else {
            Err(self.malformed("unexpected `<!`"))
        }
    }

    /// Character data from `start` to `end` (exclusive), references resolved.
    fn text_run(&mut self, start: usize, end: usize) -> Result<(), Error> {
        // Most runs are the layout between two tags: blank, and dropped
        // unless the element already has text.
        if self.b[start..end].iter().all(|&c| is_space(c)) && !self.builder.has_text() {
            return Ok(());
        }
        let src = self.src;
        let mut s = start;
        while let Some(i) = memchr::memchr(b'&', &self.b[s..end]) {
            let amp = s + i;
            if amp > s {
                self.push_text(&normalize_eols(&src[s..amp]))?;
            }
            self.pos = amp;
            let Some(semi) = memchr::memchr(b';', &self.b[amp + 1..end]) else {
                return Err(self.malformed("unterminated reference (missing `;`)"));
            };
            let name = &src[amp + 1..amp + 1 + semi];
            let mut buf = [0u8; 4];
            let resolved: &str = match name.strip_prefix('#') {
                Some(num) => char_ref(num)
                    .map_err(|m| self.malformed(m))?
                    .encode_utf8(&mut buf),
                None => predefined(name).ok_or_else(|| Error::Entity {
                    name: name.to_string(),
                    context: self.context(),
                })?,
            };
            if self.open.is_empty() {
                return Err(self.malformed("text outside the root element"));
            }
            self.push_text(resolved)?;
            s = amp + 2 + semi;
        }
        if end > s {
            self.pos = s;
            self.push_text(&normalize_eols(&src[s..end]))?;
        }
        Ok(())
    }

    fn push_text(&mut self, text: &str) -> Result<(), Error> {
        if !self.open.is_empty() {
            // Blank text between elements is layout, not content.
            if self.builder.has_text() || !text.trim().is_empty() {
                self.builder.text(text);
            }
            return Ok(());
        }
        if text.trim().is_empty() {
            Ok(())
        } else if self.done {
            Err(self.malformed("text after the root element"))
        } else {
            Err(self.malformed("text before the root element"))
        }
    }

    /// `</name>` closing the innermost open element.
    fn end_tag(&mut self) -> Result<(), Error> {
        let start = self.pos + 2;
        let Some(gt) = memchr::memchr(b'>', &self.b[start..]).map(|i| start + i) else {
            return Err(self.malformed("unterminated end tag"));
        };
        let name = self.src[start..gt].trim_end_matches([' ', '\t', '\n', '\r']);
        let Some((open, _)) = self.open.last() else {
            if self.fragment {
                // Closes an element opened before the fragment.
                self.outer.push(Some(name));
                self.builder.end();
                self.pos = gt + 1;
                return Ok(());
            }
            return Err(self.malformed(format!("unexpected end tag </{name}>")));
        };
        if *open != name {
            let m = format!("expected </{open}>, found </{name}>");
            return Err(self.malformed(m));
        }
        self.pos = gt + 1;
        self.open.pop();
        self.close();
        Ok(())
    }

    /// Ends the innermost element in the builder.
    fn close(&mut self) {
        self.builder.end();
        if self.open.is_empty() && !self.fragment {
            self.done = true;
        }
    }

    /// `<name attr="value"...>` or `<name .../>`.
    fn start_tag(&mut self) -> Result<(), Error> {
        if self.done {
            return Err(self.malformed("content after the root element"));
        }
        let b = self.b;
        let start = self.pos + 1;
        let mut i = start;
        while i < b.len() && !ends_name(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(self.malformed("expected an element name after `<`"));
        }
        let name = &self.src[start..i];
        self.attrs.clear();
        loop {
            let before = i;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            match b.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.malformed(format!("<{name}>: unterminated start tag")));
                }
                Some(b'>') => {
                    self.pos = i + 1;
                    if self.open.len() >= self.limits.max_depth {
                        return Err(Error::TooDeep {
                            limit: self.limits.max_depth,
                            context: self.context(),
                        });
                    }
                    self.open(name);
                    return Ok(());
                }
                Some(b'/') => {
                    if b.get(i + 1) != Some(&b'>') {
                        self.pos = i;
                        return Err(self.malformed(format!("<{name}>: expected `/>`")));
                    }
                    self.pos = i + 2;
                    self.open(name);
                    self.open.pop();
                    self.close();
                    return Ok(());
                }
                Some(_) if i == before => {
                    self.pos = i;
                    return Err(self.malformed(format!("<{name}>: expected whitespace before an attribute")));
                }
                Some(_) => i = self.attribute(name, i)?,
            }
        }
    }

    /// Starts element `name` with the attributes collected so far.
    fn open(&mut self, name: &'a str) {
        let id = self.attrs.iter().find(|(k, _)| *k == "id").map(|(_, v)| v.clone());
        if self.fragment && self.open.is_empty() {
            self.outer.push(None);
        }
        self.open.push((name, id));
        self.max_open = self.max_open.max(self.open.len());
        self.builder.start(name, &mut self.attrs);
    }

    /// One `key="value"` starting at `i`; returns the position after it.
    fn attribute(&mut self, element: &str, mut i: usize) -> Result<usize, Error> {
        let b = self.b;
        let start = i;
        while i < b.len() && !ends_name(b[i]) {
            i += 1;
        }
        self.pos = i;
        let key = &self.src[start..i];
        if key.is_empty() {
            return Err(self.malformed(format!("<{element}>: expected an attribute name")));
        }
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            self.pos = i;
            return Err(self.malformed(format!("<{element}> attribute {key}: expected `=`")));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                self.pos = i;
                return Err(self.malformed(format!("<{element}> attribute {key}: expected a quoted value")));
            }
        };
        let vstart = i + 1;
        let Some((vend, special)) = scan_value(b, vstart, quote) else {
            self.pos = i;
            return Err(self.malformed(format!("<{element}> attribute {key}: unterminated value")));
        };
        self.pos = vstart;
        let raw = &self.src[vstart..vend];
        let value = if special {
            normalize_attr(raw).map_err(|m| self.malformed(format!("<{element}> attribute {key}: {m}")))?
        } else {
            Cow::Borrowed(raw)
        };
        if self.attrs.iter().any(|(k, _)| *k == key) {
            return Err(self.malformed(format!("<{element}>: duplicate attribute {key}")));
        }
        self.attrs.push((key, value));
        Ok(vend + 1)
    }
}

/// XML 1.0 line-end normalization of character data: `\r\n` and `\r` become `\n`.
fn normalize_eols(text: &str) -> Cow<'_, str> {
    if !text.contains('\r') {
        return text.into();
    }
    text.replace("\r\n", "\n").replace('\r', "\n").into()
}

/// Finds the end of an attribute value that starts at `start` and is
/// quoted with `quote`: the position of the closing quote, and whether the
/// value holds a byte that [`normalize_attr`] changes or refuses (tab, line
/// end, `&`, `<`). `None` when the quote is not closed.
///
/// One pass, eight bytes at a time while none of them is a quote, `&`, `<`
/// or below 0x20 (most values): the parser spends its time here.
fn scan_value(b: &[u8], start: usize, quote: u8) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `v` that is zero, and possibly in bytes
    // above one that is: the lowest one set is always a true zero byte.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut special = false;
    let mut i = start;
    loop {
        let at = match b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            Some(chunk) => {
                let x = u64::from_le_bytes(*chunk);
                let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
                let stop = below_space | zero(x ^ (ONES * u64::from(quote))) | zero(x ^ (ONES * u64::from(b'&'))) | zero(x ^ (ONES * u64::from(b'<')));
                if stop == 0 {
                    i += 8;
                    continue;
                }
                i + (stop.trailing_zeros() / 8) as usize
            }
            // Fewer than eight bytes left: the next one is looked at.
            None if i < b.len() => i,
            None => return None,
        };
        match b[at] {
            c if c == quote => return Some((at, special)),
            b'\t' | b'\n' | b'\r' | b'&' | b'<' => special = true,
            _ => {}
        }
        i = at + 1;
    }
}

/// XML 1.0 attribute-value normalization: references resolved, literal tab,
/// line feed and carriage return (`\r\n` counting as one) become a space; a
/// character reference stays the character it names. `<` is refused.
fn normalize_attr(raw: &str) -> Result<Cow<'_, str>, String> {
    let bytes = raw.as_bytes();
    let Some(first) = bytes.iter().position(|&c| matches!(c, b'\t' | b'\n' | b'\r' | b'&' | b'<')) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut i = first;
    let mut copied = first;
    while i < bytes.len() {
        match bytes[i] {
            b'\t' | b'\n' => {
                out.push_str(&raw[copied..i]);
                out.push(' ');
                i += 1;
                copied = i;
            }
            b'\r' => {
                out.push_str(&raw[copied..i]);
                out.push(' ');
                i += if bytes.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                copied = i;
            }
            b'<' => return Err("`<` in an attribute value".into()),
            b'&' => {
                out.push_str(&raw[copied..i]);
                let Some(semi) = memchr::memchr(b';', &bytes[i + 1..]) else {
                    return Err("unterminated reference (missing `;`)".into());
                };
                let name = &raw[i + 1..i + 1 + semi];
                match name.strip_prefix('#') {
                    Some(num) => out.push(char_ref(num)?),
                    None => out.push_str(
                        predefined(name).ok_or_else(|| format!("entity reference &{name}; is refused"))?,
                    ),
                }
                i += 2 + semi;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&raw[copied..]);
    Ok(Cow::Owned(out))
}

/// The character of a character reference (`65` or `x41`, without `&#`
/// and `;`).
fn char_ref(num: &str) -> Result<char, String> {
    let (digits, radix) = match num.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    let bad = || format!("invalid character reference &#{num};");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let code = u32::from_str_radix(digits, radix).map_err(|_| bad())?;
    match char::from_u32(code) {
        Some(c) if code != 0 => Ok(c),
        _ => Err(bad()),
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

/// "<resources> > <group id=\"g1\">"-style path for error messages.
fn context_of<'e>(stack: impl Iterator<Item = (&'e str, Option<&'e str>)>) -> String {
    stack
        .map(|(name, id)| match id {
            Some(id) => format!("<{name} id=\"{id}\">"),
            None => format!("<{name}>"),
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

    /// What [`scan_value`] finds, the slow way.
    fn scan_value_naive(b: &[u8], start: usize, quote: u8) -> Option<(usize, bool)> {
        let end = start + b.get(start..)?.iter().position(|&c| c == quote)?;
        Some((end, b[start..end].iter().any(|c| matches!(c, b'\t' | b'\n' | b'\r' | b'&' | b'<'))))
    }

    proptest::proptest! {
        #[test]
        fn scan_value_finds_the_quote_and_the_special_bytes(
            bytes in proptest::collection::vec(proptest::sample::select(b"aaaaaaaaaaaaaaab \"'&<>\t\n\r\x01\x1f\x7f\xc3;".to_vec()), 0..80),
            start in 0usize..8,
            double in proptest::bool::ANY,
        ) {
            let quote = if double { b'"' } else { b'\'' };
            let start = start.min(bytes.len());
            proptest::prop_assert_eq!(scan_value(&bytes, start, quote), scan_value_naive(&bytes, start, quote));
        }
    }

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
