//! The scope of a ticket over a compact [`Doc`]: the same selection, the
//! same canonical content and digest as [`Scope`], without an owned copy
//! of the configuration.
//!
//! A [`DocScope`] lists the elements of a `Doc` that make up the scope, in
//! canonical order; the few elements the scope changes (an `rsc_ticket`
//! without its fencing devices, tags restricted to replicated members) are
//! appended to the `Doc` as detached subtrees ([`Doc::append`]). Writing
//! the content puts each element in canonical form as it goes
//! ([`crate::canonical::write_canonical`]), so the bytes, and the digest,
//! are those of the owned scope.

use super::*;
use crate::canonical::write_canonical;
use crate::doc::{Doc, DocNode};
use crate::xml::SameAs;

/// The scope of a ticket over a [`Doc`]: which of its elements make up the
/// content, with the publication metadata. Methods that read the content
/// take the `Doc` it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocScope {
    /// The ticket.
    pub ticket: String,
    content: Content,
    /// `sha256:<hex>` of the canonical content, as computed or verified
    /// when the scope was made; `None` after [`DocScope::select`]
    /// ([`DocScope::content_digest`] computes it for the content as it
    /// stands).
    pub digest: Option<String>,
    /// CIB version the scope was cut from, if known.
    pub version: Option<String>,
    /// Grant term of the ticket at the origin, if known.
    pub term: Option<u64>,
    /// What touches the scope but was left out, sorted.
    pub left_out: Vec<LeftOut>,
}

/// The elements of the content, by their index in the `Doc`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// Cut out of a CIB: the top-level elements of `<resources>`,
    /// `<constraints>` and `<tags>`, each list in canonical order.
    Cut([Vec<u32>; 3]),
    /// Read from a published document: the children of its root.
    Document(Vec<u32>),
}

const SECTIONS: [&str; 3] = ["resources", "constraints", "tags"];

impl DocScope {
    /// Cuts the scope of `ticket` out of a parsed `<cib>`: the same content,
    /// digest and left-out list as [`cut`] on the owned tree.
    pub fn cut(doc: &mut Doc<'_>, ticket: &str) -> Result<DocScope, Error> {
        let mut scope = DocScope::select(doc, ticket)?;
        if scope.digest.is_none() {
            scope.digest = Some(scope.content_digest(doc));
        }
        Ok(scope)
    }

    /// [`DocScope::cut`] without the digest, for a caller that rewrites
    /// the content first (the digest is then that of the rewritten content).
    pub fn select(doc: &mut Doc<'_>, ticket: &str) -> Result<DocScope, Error> {
        let root = doc.root();
        let config = cib::configuration(root)?;
        let version = cib::version(root);
        let term = cib::ticket_state(root, ticket).term;
        let Selection {
            ticket: _,
            tops,
            own,
            kept,
            tags,
            left_out,
        } = select(config, ticket, |_, node| node.index())?;
        let mut cons: Vec<Result<u32, Box<Element>>> = Vec::with_capacity(own.len() + kept.len());
        for o in own {
            cons.push(match o {
                Own::At(i) => Ok(i),
                Own::Changed(el) => Err(el),
            });
        }
        cons.extend(kept.into_iter().map(Ok));

        if has_id_refs(config, &tops, &cons, &tags) {
            // Rare: an `id-ref` may point outside the scope, and the owned
            // scope inlines what it points at. Build that one and take its
            // elements.
            let copy = |i: &u32| doc.node(*i).to_element();
            let owned = finish(
                ticket.to_string(),
                Element {
                    children: tops.iter().map(copy).collect(),
                    ..Element::new("resources")
                },
                Element {
                    children: cons.iter().map(|c| c.as_ref().map_or_else(|el| Element::clone(el), copy)).collect(),
                    ..Element::new("constraints")
                },
                tags,
                left_out,
                config,
            );
            let mut sections: [Vec<u32>; 3] = Default::default();
            for (i, name) in SECTIONS.iter().enumerate() {
                if let Some(s) = owned.config.child(name) {
                    sections[i] = s.children.iter().map(|c| doc.append(c)).collect::<Result<_, _>>()?;
                }
            }
            return Ok(DocScope {
                ticket: owned.ticket,
                content: Content::Cut(sections),
                digest: Some(owned.digest),
                version: Some(version),
                term,
                left_out: owned.left_out,
            });
        }

        let mut cons_ix = Vec::with_capacity(cons.len());
        for c in cons {
            cons_ix.push(match c {
                Ok(i) => i,
                Err(el) => doc.append(&el)?,
            });
        }
        let tags_ix = tags.children.iter().map(|t| doc.append(t)).collect::<Result<Vec<u32>, _>>()?;
        let mut sections = [tops, cons_ix, tags_ix];
        // One buffer of keys for the three sections.
        let mut keys = Vec::with_capacity(sections.iter().map(Vec::len).max().unwrap_or(0));
        for s in &mut sections {
            sort_by_id(doc, s, &mut keys);
        }
        Ok(DocScope {
            ticket: ticket.to_string(),
            content: Content::Cut(sections),
            digest: None,
            version: Some(version),
            term,
            left_out: left_out.into_iter().collect(),
        })
    }

    /// Reads a published document (parsed as a `Doc`) back, verifying its
    /// digest and, when `expect_ticket` is given, that it is for that
    /// ticket: [`Scope::from_document`] without the owned copy.
    pub fn from_document(doc: &Doc<'_>, expect_ticket: Option<&str>) -> Result<DocScope, Error> {
        let (scope, claimed) = DocScope::unverified(doc, expect_ticket)?;
        let actual = scope.content_digest(doc);
        scope.verified(claimed, actual)
    }

    /// [`DocScope::from_document`], for a caller that holds a guess of the
    /// canonical content — the text of the document with its metadata cut
    /// out, given to a stylesheet before the document was read, say. The
    /// content is serialized once, compared with `guess`; when they are
    /// equal, the digest is verified over `guess` itself. Returns the
    /// scope and whether `guess` is its canonical content.
    pub fn from_document_guessed(doc: &Doc<'_>, expect_ticket: Option<&str>, guess: &[u8]) -> Result<(DocScope, bool), Error> {
        let (scope, claimed) = DocScope::unverified(doc, expect_ticket)?;
        let mut same = SameAs::new(guess);
        scope.write_content(doc, &mut same);
        let same = same.finish();
        let actual = if same {
            crate::canonical::digest_bytes(guess)
        } else {
            scope.content_digest(doc)
        };
        Ok((scope.verified(claimed, actual)?, same))
    }

    /// The scope of a published document and the digest it claims, not
    /// yet verified.
    fn unverified(doc: &Doc<'_>, expect_ticket: Option<&str>) -> Result<(DocScope, String), Error> {
        let root = doc.root();
        let meta = Metadata::read(root, expect_ticket)?;
        let mut left_out = Vec::new();
        let mut children = Vec::new();
        let mut seen_left_out = false;
        for c in root.children() {
            // The first `replicator-left-out` is the list, as for the owned
            // tree; another one would be content.
            if c.name() == LEFT_OUT && !seen_left_out {
                seen_left_out = true;
                left_out.extend(c.children().map(|item| LeftOut {
                    kind: item.attr("kind").unwrap_or("").into(),
                    id: item.attr("id").unwrap_or("").into(),
                    reason: item.attr("reason").unwrap_or("").into(),
                }));
                continue;
            }
            children.push(c.index());
        }
        let scope = DocScope {
            ticket: meta.ticket,
            content: Content::Document(children),
            digest: None,
            version: meta.version,
            term: meta.term,
            left_out,
        };
        Ok((scope, meta.digest))
    }

    /// This scope with its digest, if the `actual` digest of its content is
    /// the one `claimed`.
    fn verified(mut self, claimed: String, actual: String) -> Result<DocScope, Error> {
        if actual != claimed {
            return Err(Error::DigestMismatch { claimed, actual });
        }
        self.digest = Some(actual);
        Ok(self)
    }

    /// The top-level elements of the content, in canonical order: each
    /// section's elements for a cut scope, the sections themselves for a
    /// document read back.
    pub fn elements<'d>(&self, doc: &'d Doc<'_>) -> Vec<DocNode<'d>> {
        match &self.content {
            Content::Cut(sections) => sections.iter().flatten().map(|&i| doc.node(i)).collect(),
            Content::Document(children) => children.iter().map(|&i| doc.node(i)).collect(),
        }
    }

    /// Writes the content, the children of `<configuration>` one level deep,
    /// in canonical form.
    fn write_sections<S: Sink + ?Sized>(&self, doc: &Doc<'_>, out: &mut S) {
        let mut element = |n: DocNode<'_>, out: &mut S, depth: usize| write_canonical(n, out, depth, true);
        match &self.content {
            Content::Cut(sections) => {
                for (name, parts) in SECTIONS.iter().zip(sections) {
                    if *name == "tags" && parts.is_empty() {
                        continue;
                    }
                    let parts = parts.iter().map(|&i| doc.node(i));
                    write_element(out, 1, name, std::iter::empty(), "", parts, &mut element);
                }
            }
            Content::Document(children) => {
                for &i in children {
                    element(doc.node(i), out, 1);
                }
            }
        }
    }

    /// `sha256:<hex>` of the canonical content as it stands in `doc` (after
    /// rules, say): what [`crate::canonical::digest`] gives for the owned
    /// configuration.
    pub fn content_digest(&self, doc: &Doc<'_>) -> String {
        let mut hash = HashSink::new();
        self.write_content(doc, &mut hash);
        hash.finish()
    }

    /// Writes the canonical content as it stands in `doc`: a
    /// `<configuration>` without attributes around the sections, what the
    /// digest is computed over (and what a stylesheet is given).
    pub fn write_content<S: Sink + ?Sized>(&self, doc: &Doc<'_>, out: &mut S) {
        if matches!(&self.content, Content::Document(c) if c.is_empty()) {
            out.push("<configuration/>\n");
        } else {
            out.push("<configuration>\n");
            self.write_sections(doc, out);
            out.push("</configuration>\n");
        }
    }

    /// A scope with the metadata of `like` (ticket, version, term, left
    /// out) whose content is every child of the root of `doc` (the output
    /// of a stylesheet, say); its digest is not computed.
    pub fn with_content_of(doc: &Doc<'_>, like: &DocScope) -> DocScope {
        DocScope {
            ticket: like.ticket.clone(),
            content: Content::Document(doc.root().children().map(DocNode::index).collect()),
            digest: None,
            version: like.version.clone(),
            term: like.term,
            left_out: like.left_out.clone(),
        }
    }

    /// Checks that the content can be applied anywhere, as
    /// [`crate::merge::check_scope`] does for an owned scope.
    pub fn check(&self, doc: &Doc<'_>) -> Result<(), Error> {
        match &self.content {
            Content::Document(children) => {
                let sections: Vec<DocNode<'_>> = children.iter().map(|&i| doc.node(i)).collect();
                crate::merge::check_scope_sections(&sections, &self.ticket)
            }
            Content::Cut(_) => crate::merge::check_scope(&self.to_scope(doc)),
        }
    }

    /// The published document ([`Scope::to_document_xml`]), its digest
    /// computed from the content as it stands in `doc`.
    pub fn to_document_xml(&self, doc: &Doc<'_>) -> String {
        self.document_and_digest(doc).0
    }

    /// The published document and its digest, from one serialization of
    /// the content as it stands in `doc`.
    pub fn document_and_digest(&self, doc: &Doc<'_>) -> (String, String) {
        // The digest attribute is filled in while the content is written.
        self.document_xml_with_digest(doc, &self.document_attrs(), ATTR_DIGEST)
    }

    /// The root attributes of the published document, in document order:
    /// ticket, version, term, digest (empty when not computed).
    pub fn document_attrs(&self) -> Vec<(String, String)> {
        document_attrs(&self.ticket, self.version.as_deref(), self.term, self.digest.as_deref().unwrap_or(""))
    }

    /// [`Scope::document_xml_with_digest`]: the document with root
    /// attributes `attrs`, where the value of `digest_attr` is the content's
    /// digest, computed while the content is written; and that digest.
    pub fn document_xml_with_digest(&self, doc: &Doc<'_>, attrs: &[(String, String)], digest_attr: &str) -> (String, String) {
        if matches!(&self.content, Content::Document(c) if c.is_empty()) {
            // `<configuration .../>`: nothing to write in one pass.
            let digest = self.content_digest(doc);
            let attrs = attrs
                .iter()
                .map(|(k, v)| (k.clone(), if k == digest_attr { digest.clone() } else { v.clone() }))
                .collect::<Vec<_>>();
            let mut root = Element::new("configuration");
            root.attrs = attrs;
            root.children.extend(left_out_element(&self.left_out));
            return (root.to_xml(), digest);
        }
        // The content is at most about as long as the text it came from.
        document_with_digest(doc.source_len() + 4096, attrs, digest_attr, left_out_element(&self.left_out), |out| {
            self.write_sections(doc, out)
        })
    }

    /// An owned [`Scope`] of the same content (for merging).
    pub fn to_scope(&self, doc: &Doc<'_>) -> Scope {
        let config = match &self.content {
            Content::Cut(sections) => {
                let mut config = Element::new("configuration");
                for (name, parts) in SECTIONS.iter().zip(sections) {
                    if *name == "tags" && parts.is_empty() {
                        continue;
                    }
                    config.children.push(Element {
                        children: parts.iter().map(|&i| doc.node(i).to_element()).collect(),
                        ..Element::new(*name)
                    });
                }
                config
            }
            Content::Document(children) => Element {
                children: children.iter().map(|&i| doc.node(i).to_element()).collect(),
                ..Element::new("configuration")
            },
        };
        let mut config = config;
        canonicalize(&mut config);
        Scope {
            ticket: self.ticket.clone(),
            config,
            digest: self.content_digest(doc),
            version: self.version.clone(),
            term: self.term,
            left_out: self.left_out.clone(),
        }
    }
}

/// Sorts elements of `doc` in the canonical order of a section's children
/// (stable, by id then element name), reading each id once; `keys` is a
/// buffer to reuse.
fn sort_by_id<'d>(doc: &'d Doc<'_>, elements: &mut [u32], keys: &mut Vec<(&'d str, u32)>) {
    // (id, place in `elements`); names are compared only between equal
    // ids, and the place last: an unstable sort on these gives what a
    // stable sort on (id, name) gives.
    keys.clear();
    keys.extend(elements.iter().enumerate().map(|(k, &i)| (doc.node(i).id().unwrap_or(""), k as u32)));
    let name = |k: u32| doc.node(elements[k as usize]).name();
    let order = |a: &(&str, u32), b: &(&str, u32)| a.0.cmp(b.0).then_with(|| name(a.1).cmp(name(b.1))).then(a.1.cmp(&b.1));
    if keys.is_sorted_by(|a, b| order(a, b).is_le()) {
        return;
    }
    keys.sort_unstable_by(order);
    let sorted: Vec<u32> = keys.iter().map(|&(_, k)| elements[k as usize]).collect();
    elements.copy_from_slice(&sorted);
}

/// Whether any element of the scope carries an `id-ref`.
fn has_id_refs(config: DocNode<'_>, tops: &[u32], cons: &[Result<u32, Box<Element>>], tags: &Element) -> bool {
    let owned_has = |el: &Element| {
        let mut any = false;
        el.walk(&mut |n| any |= n.attr("id-ref").is_some());
        any
    };
    let doc = config.doc();
    if !doc.has_id_refs() && !owned_has(tags) && cons.iter().all(|c| c.as_ref().map_or_else(|el| !owned_has(el), |_| true)) {
        return false;
    }
    let node_has = |i: u32| {
        let mut any = false;
        doc.node(i).walk(&mut |n| any |= n.attr("id-ref").is_some());
        any
    };
    tops.iter().any(|&i| node_has(i))
        || cons.iter().any(|c| match c {
            Ok(i) => node_has(*i),
            Err(el) => owned_has(el),
        })
        || owned_has(tags)
}
