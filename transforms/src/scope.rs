//! The configuration of a ticket: what `cib-publisher` cuts out of the CIB.
//!
//! For ticket T the scope is (PRODUCT.md, "What the configuration of a ticket
//! is"):
//!
//! 1. every `rsc_ticket` whose `ticket` is T, in `rsc=` or `resource_set` form;
//! 2. every resource they name — directly, through a tag or through a
//!    template — as its top-level element under `<resources>`;
//! 3. every template a replicated primitive uses and every tag the scope's
//!    constraints use, restricted to replicated members;
//! 4. every other constraint all of whose references are inside the scope;
//! 5. nothing else. Fencing devices are never replicated. Constraints that mix
//!    scoped and unscoped resources, `rsc-pattern` locations and locations
//!    that name a node of this site are left out and reported in
//!    [`Scope::left_out`].
//!
//! Elements of the scope that point with `id-ref` at an element outside the
//! scope (a shared `operations` block, say) get that element inlined at their
//! first use, so the scope never dangles.
//!
//! The published document is a `<configuration>` element with the content in
//! canonical form and attributes carrying the ticket, the CIB version it was
//! cut from, the ticket's grant term and the SHA-256 digest of the content.

use std::collections::BTreeSet;

use regex::Regex;

use crate::canonical::{canonicalize, digest_of_canonical};
use crate::cib::{self, constraint_refs, Index, CONSTRAINT_KINDS};
use crate::error::Error;
use crate::canonical::HashSink;
use crate::node::Node;
use crate::xml::{escape_attr_into, write_element, Element, Sink};

/// Root attribute naming the ticket of a published scope.
pub const ATTR_TICKET: &str = "replicator-ticket";
/// Root attribute carrying the content digest (`sha256:<hex>`).
pub const ATTR_DIGEST: &str = "replicator-digest";
/// Root attribute carrying the origin CIB version (`admin_epoch.epoch.num_updates`).
pub const ATTR_VERSION: &str = "replicator-version";
/// Root attribute carrying the ticket grant term at the origin.
pub const ATTR_TERM: &str = "replicator-term";
/// Child element listing what was left out, with reasons (not part of the digest).
pub const LEFT_OUT: &str = "replicator-left-out";

/// An element that touches the scope but was not replicated, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeftOut {
    /// Element kind, e.g. `rsc_colocation` or `primitive`.
    pub kind: String,
    /// Element id.
    pub id: String,
    /// Why it was left out.
    pub reason: String,
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`: {}", self.kind, self.id, self.reason)
    }
}

/// The configuration of one ticket, canonical, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The ticket.
    pub ticket: String,
    /// `<configuration>` holding `<resources>`, `<constraints>` and, when
    /// used, `<tags>`, in canonical form. Its own attributes are empty.
    pub config: Element,
    /// `sha256:<hex>` of the canonical content.
    pub digest: String,
    /// CIB version the scope was cut from, if known.
    pub version: Option<String>,
    /// Grant term of the ticket at the origin, if known.
    pub term: Option<u64>,
    /// What touches the scope but was left out, sorted.
    pub left_out: Vec<LeftOut>,
}

impl Scope {
    /// Serializes the scope as the published `<configuration>` document.
    pub fn to_document(&self) -> Element {
        let mut doc = self.config.clone();
        doc.attrs = self.document_attrs();
        if let Some(lo) = self.left_out_element() {
            doc.children.push(lo);
        }
        doc
    }

    /// `self.to_document().to_xml()`, without copying the configuration.
    pub fn to_document_xml(&self) -> String {
        self.document_xml_with(self.document_attrs())
    }

    /// The published document with other root attributes (in this order):
    /// `self.to_document()` with its attributes replaced, serialized.
    pub fn document_xml_with(&self, attrs: Vec<(String, String)>) -> String {
        let lo = self.left_out_element();
        let mut out = String::with_capacity(self.config.children.len() * 1024);
        write_element(
            &mut out,
            0,
            &self.config.name,
            attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.config.text,
            self.config.children.iter().chain(lo.as_ref()),
            &mut |c, out, depth| c.write_to(out, depth),
        );
        out
    }

    /// [`Scope::document_xml_with`], where the value of attribute
    /// `digest_attr` (one of `attrs`) is replaced by the digest of the
    /// content ([`crate::canonical::digest`] of the configuration), computed
    /// while the content is written: one serialization for both.
    pub fn document_xml_with_digest(&self, attrs: &[(String, String)], digest_attr: &str) -> String {
        let single_pass = !self.config.children.is_empty()
            && self.config.text.is_empty()
            && crate::canonical::is_canonical(&self.config);
        if !single_pass {
            let digest = crate::canonical::digest(&self.config);
            let attrs = attrs
                .iter()
                .map(|(k, v)| (k.clone(), if k == digest_attr { digest.clone() } else { v.clone() }))
                .collect();
            return self.document_xml_with(attrs);
        }
        let config = &self.config;
        let (document, _) = document_with_digest(
            self.config.children.iter().map(|c| c.children.len() * 1024).sum(),
            attrs,
            digest_attr,
            self.left_out_element(),
            |out| {
                for c in &config.children {
                    c.write_to(out, 1);
                }
            },
        );
        document
    }

    /// The root attributes of the published document, in document order:
    /// ticket, version, term, digest.
    pub fn document_attrs(&self) -> Vec<(String, String)> {
        document_attrs(&self.ticket, self.version.as_deref(), self.term, &self.digest)
    }

    /// The `replicator-left-out` element, when something was left out.
    fn left_out_element(&self) -> Option<Element> {
        left_out_element(&self.left_out)
    }

    /// Reads a published document back, verifying its digest and, when
    /// `expect_ticket` is given, that it is for that ticket.
    pub fn from_document(mut doc: Element, expect_ticket: Option<&str>) -> Result<Scope, Error> {
        let Metadata {
            ticket,
            digest: claimed,
            version,
            term,
        } = Metadata::read(&doc, expect_ticket)?;
        let mut left_out = Vec::new();
        if let Some(pos) = doc.children.iter().position(|c| c.name == LEFT_OUT) {
            for item in doc.children.remove(pos).children {
                left_out.push(LeftOut {
                    kind: item.attr("kind").unwrap_or("").into(),
                    id: item.attr("id").unwrap_or("").into(),
                    reason: item.attr("reason").unwrap_or("").into(),
                });
            }
        }
        doc.attrs.clear();
        canonicalize(&mut doc);
        let actual = digest_of_canonical(&doc);
        if actual != claimed {
            return Err(Error::DigestMismatch { claimed, actual });
        }
        Ok(Scope {
            ticket,
            config: doc,
            digest: actual,
            version,
            term,
            left_out,
        })
    }
}

/// The root attributes of a published document, in document order:
/// ticket, version, term, digest.
fn document_attrs(ticket: &str, version: Option<&str>, term: Option<u64>, digest: &str) -> Vec<(String, String)> {
    let mut attrs = vec![(ATTR_TICKET.to_string(), ticket.to_string())];
    if let Some(v) = version {
        attrs.push((ATTR_VERSION.to_string(), v.to_string()));
    }
    if let Some(t) = term {
        attrs.push((ATTR_TERM.to_string(), t.to_string()));
    }
    attrs.push((ATTR_DIGEST.to_string(), digest.to_string()));
    attrs
}

/// The `replicator-left-out` element, when something was left out.
fn left_out_element(left_out: &[LeftOut]) -> Option<Element> {
    if left_out.is_empty() {
        return None;
    }
    let mut lo = Element::new(LEFT_OUT);
    lo.children = left_out
        .iter()
        .map(|l| {
            Element::new("item")
                .with_attr("kind", l.kind.clone())
                .with_attr("id", l.id.clone())
                .with_attr("reason", l.reason.clone())
        })
        .collect();
    Some(lo)
}

/// The root attributes of a published document.
struct Metadata {
    ticket: String,
    digest: String,
    version: Option<String>,
    term: Option<u64>,
}

impl Metadata {
    /// Reads them from the root of a published document, checking that it
    /// is one, and for `expect_ticket` when given.
    fn read<'a, N: Node<'a>>(root: N, expect_ticket: Option<&str>) -> Result<Metadata, Error> {
        if root.name() != "configuration" {
            return Err(Error::NotCib(format!(
                "a published scope is a <configuration> element, found <{}>",
                root.name()
            )));
        }
        let ticket = root
            .attr(ATTR_TICKET)
            .ok_or_else(|| Error::NotCib(format!("<configuration> has no {ATTR_TICKET} attribute: not a published scope")))?;
        if let Some(expected) = expect_ticket {
            if expected != ticket {
                return Err(Error::WrongTicket {
                    expected: expected.into(),
                    found: ticket.into(),
                });
            }
        }
        let digest = root
            .attr(ATTR_DIGEST)
            .ok_or_else(|| Error::NotCib(format!("<configuration> has no {ATTR_DIGEST} attribute")))?;
        let term = match root.attr(ATTR_TERM) {
            None => None,
            Some(t) => Some(t.parse::<u64>().map_err(|_| {
                Error::NotCib(format!("{ATTR_TERM}=\"{t}\" is not a number"))
            })?),
        };
        Ok(Metadata {
            ticket: ticket.into(),
            digest: digest.into(),
            version: root.attr(ATTR_VERSION).map(str::to_string),
            term,
        })
    }
}

/// A published document whose content (the children of its root, written
/// one level deep by `content`, in canonical form) is hashed while it is
/// written: `attrs` are the root's attributes, where the value of
/// `digest_attr` is replaced by the content's digest. `left_out` follows
/// the content and is not part of the digest. Returns the document and
/// the digest. `capacity` is a guess of the document's length (growing an
/// 8 MB string by doubling costs more than writing it).
fn document_with_digest(
    capacity: usize,
    attrs: &[(String, String)],
    digest_attr: &str,
    left_out: Option<Element>,
    content: impl FnOnce(&mut Both<'_, String, HashSink>),
) -> (String, String) {
    // A placeholder of the digest's length, overwritten at the end.
    const PLACEHOLDER: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    const ROOT: &str = "configuration";
    let mut out = String::with_capacity(capacity);
    let mut hole = None;
    out.push('<');
    out.push_str(ROOT);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        if k == digest_attr {
            hole = Some(out.len());
            out.push_str(PLACEHOLDER);
        } else {
            escape_attr_into(v, &mut out);
        }
        out.push('"');
    }
    out.push_str(">\n");
    // The content as `digest` serializes it: the root without attributes.
    let mut hash = HashSink::new();
    hash.push("<");
    hash.push(ROOT);
    hash.push(">\n");
    content(&mut Both(&mut out, &mut hash));
    let end = format!("</{ROOT}>\n");
    hash.push(&end);
    if let Some(lo) = left_out {
        lo.write_to(&mut out, 1);
    }
    out.push_str(&end);
    let digest = hash.finish();
    if let Some(at) = hole {
        out.replace_range(at..at + PLACEHOLDER.len(), &digest);
    }
    (out, digest)
}

/// A [`Sink`] writing to two sinks.
struct Both<'a, A: Sink, B: Sink>(&'a mut A, &'a mut B);

impl<A: Sink, B: Sink> Sink for Both<'_, A, B> {
    fn push(&mut self, s: &str) {
        self.0.push(s);
        self.1.push(s);
    }
}

/// Cuts the scope of `ticket` out of a full `<cib>` document.
pub fn scope(cib: &Element, ticket: &str) -> Result<Scope, Error> {
    let config = cib::configuration(cib)?;
    let mut out = scope_of_configuration(config, ticket)?;
    out.version = Some(cib::version(cib));
    out.term = cib::ticket_state(cib, ticket).term;
    Ok(out)
}

/// [`scope`] of a CIB that is no longer needed: the elements of the scope
/// are moved out of it instead of copied. Same result as [`scope`].
pub fn cut(mut cib: Element, ticket: &str) -> Result<Scope, Error> {
    let version = cib::version(&cib);
    let term = cib::ticket_state(&cib, ticket).term;
    let config = cib::configuration_mut(&mut cib)?;
    let selection = select(&*config, ticket, |position, _| position)?;
    let mut out = selection.assemble(config, |section, i| std::mem::take(&mut section.children[i]));
    out.version = Some(version);
    out.term = term;
    Ok(out)
}

/// Cuts the scope of `ticket` out of a `<configuration>` element.
pub fn scope_of_configuration(config: &Element, ticket: &str) -> Result<Scope, Error> {
    Ok(select(config, ticket, |position, _| position)?.assemble_copy(config))
}

/// What the scope of a ticket is made of: handles `H` on elements of the
/// configuration's sections, made by the caller of [`select`] from each
/// element's position in its section and the element itself (a position,
/// so the owned tree can be copied out or moved out; an index in a `Doc`).
struct Selection<H> {
    ticket: String,
    /// The top-level elements under `<resources>`, in document order.
    tops: Vec<H>,
    /// The ticket's own `rsc_ticket`s: an element under `<constraints>`, or
    /// a copy without the fencing devices it named.
    own: Vec<Own<H>>,
    /// The other constraints kept, in document order.
    kept: Vec<H>,
    /// The tags, restricted to replicated members.
    tags: Element,
    left_out: BTreeSet<LeftOut>,
}

/// The replicated top-level elements: one bit per position under
/// `<resources>` (a few hundred bytes where a set of ids takes a few
/// hundred kilobytes of fresh memory).
#[derive(Default)]
struct TopSet {
    bits: Vec<u64>,
    len: usize,
}

impl TopSet {
    /// Adds the top-level element `id`; nothing when the index does not
    /// know it.
    fn insert<'a, N: Node<'a>>(&mut self, ix: &Index<'a, N>, id: &str) {
        let Some(top) = ix.top.get(id) else { return };
        let (word, bit) = (top.position / 64, 1u64 << (top.position % 64));
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.len += 1;
        }
    }

    /// Whether the top-level element `id` is in.
    fn contains<'a, N: Node<'a>>(&self, ix: &Index<'a, N>, id: &str) -> bool {
        ix.top.get(id).is_some_and(|top| self.has(top.position))
    }

    /// Whether the element at `position` under `<resources>` is in.
    fn has(&self, position: usize) -> bool {
        self.bits.get(position / 64).is_some_and(|w| w & (1u64 << (position % 64)) != 0)
    }
}

/// One of the ticket's own `rsc_ticket`s.
enum Own<H> {
    /// Replicated as it is.
    At(H),
    /// Replicated without the fencing devices it named.
    Changed(Box<Element>),
}

impl Selection<usize> {
    /// Builds the scope, taking each selected element with `take(section,
    /// position)`. `take` may leave an empty element behind.
    fn assemble(self, config: &mut Element, mut take: impl FnMut(&mut Element, usize) -> Element) -> Scope {
        let mut resources = Element::new("resources");
        if let Some(section) = config.child_mut("resources") {
            resources.children = self.tops.iter().map(|&i| take(section, i)).collect();
        }
        let mut cons = Element::new("constraints");
        if let Some(section) = config.child_mut("constraints") {
            let mut list = Vec::with_capacity(self.own.len() + self.kept.len());
            for own in self.own {
                list.push(match own {
                    Own::At(i) => take(section, i),
                    Own::Changed(el) => *el,
                });
            }
            list.extend(self.kept.iter().map(|&i| take(section, i)));
            cons.children = list;
        }
        finish(self.ticket, resources, cons, self.tags, self.left_out, &*config)
    }

    /// Builds the scope from a borrowed configuration, copying the selected
    /// elements.
    fn assemble_copy(self, src: &Element) -> Scope {
        let child = |section: &str, i: usize| src.child(section).map(|s| s.children[i].clone()).unwrap_or_default();
        let resources = Element {
            children: self.tops.iter().map(|&i| child("resources", i)).collect(),
            ..Element::new("resources")
        };
        let mut list = Vec::with_capacity(self.own.len() + self.kept.len());
        for own in self.own {
            list.push(match own {
                Own::At(i) => child("constraints", i),
                Own::Changed(el) => *el,
            });
        }
        list.extend(self.kept.iter().map(|&i| child("constraints", i)));
        let cons = Element {
            children: list,
            ..Element::new("constraints")
        };
        finish(self.ticket, resources, cons, self.tags, self.left_out, src)
    }
}

/// The scope from its parts: canonical, foreign `id-ref`s inlined, digested.
fn finish<'a, N: Node<'a>>(
    ticket: String,
    resources: Element,
    cons: Element,
    tags: Element,
    left_out: BTreeSet<LeftOut>,
    config: N,
) -> Scope {
    let mut scope_config = Element::new("configuration")
        .with_child(resources)
        .with_child(cons);
    if !tags.children.is_empty() {
        scope_config.children.push(tags);
    }
    canonicalize(&mut scope_config);
    if inline_foreign_id_refs(&mut scope_config, config) {
        canonicalize(&mut scope_config);
    }
    let digest = digest_of_canonical(&scope_config);
    Scope {
        ticket,
        config: scope_config,
        digest,
        version: None,
        term: None,
        left_out: left_out.into_iter().collect(),
    }
}

/// Decides what the scope of `ticket` is (PRODUCT.md rules 1–5); `handle`
/// makes the [`Selection`]'s handle on an element from its position in its
/// section and the element.
fn select<'a, N: Node<'a>, H>(config: N, ticket: &str, handle: impl Fn(usize, N) -> H) -> Result<Selection<H>, Error> {
    let ix = Index::new(config);
    // The constraints, with their positions; walked a few times rather
    // than collected (a fresh page costs more than a walk here).
    let section = config.child("constraints");
    let constraints = || {
        section
            .into_iter()
            .flat_map(|c| c.children().enumerate())
            .filter(|(_, c)| CONSTRAINT_KINDS.contains(&c.name()))
    };
    let is_own = |c: N| c.name() == "rsc_ticket" && c.attr("ticket") == Some(ticket);
    let own = || constraints().filter(|&(_, c)| is_own(c));
    let mut left_out = BTreeSet::new();

    // 1 + 2: the ticket's own rsc_ticket constraints and what they name.
    let n_own = own().count();
    if n_own == 0 {
        return Err(Error::NoTicketConstraint(ticket.into()));
    }
    let mut tops = TopSet::default();
    let mut used_tags: BTreeSet<&'a str> = BTreeSet::new();
    let mut resolved = cib::Resolved::default();
    for (_, c) in own() {
        for (attr, name) in constraint_refs(c) {
            if !ix.resolve_with(name, &mut resolved) {
                return Err(Error::UnknownRef {
                    element: c.name().to_string(),
                    owner: c.id().unwrap_or("").into(),
                    attr: attr.into(),
                    target: name.into(),
                });
            }
            used_tags.extend(resolved.tags.iter().copied());
            for &top in &resolved.tops {
                if ix.fencing.contains(top) {
                    left_out.insert(LeftOut {
                        kind: ix.top[top].node.name().to_string(),
                        id: top.to_string(),
                        reason: format!(
                            "fencing device named by rsc_ticket `{}`: fencing is never replicated",
                            c.id().unwrap_or("")
                        ),
                    });
                } else {
                    tops.insert(&ix, top);
                }
            }
        }
    }

    // 3: templates used by replicated primitives.
    // (The index knows, per template, the top-level elements whose
    // primitives use it.)
    let templates: Vec<&'a str> = ix
        .template_users
        .iter()
        .filter(|(_, users)| users.iter().any(|u| tops.contains(&ix, u)))
        .map(|(t, _)| *t)
        .collect();
    for t in templates {
        // A template named by a primitive but not defined is not in the
        // index, and not replicated.
        tops.insert(&ix, t);
    }

    // 4: other constraints wholly inside the scope.
    let mut kept: Vec<H> = Vec::new();
    // Ids of the replicated resources, for `rsc-pattern`s (computed only if
    // a constraint has one).
    let scoped_ids: std::cell::OnceCell<Vec<&str>> = std::cell::OnceCell::new();
    let scoped_ids = || {
        scoped_ids.get_or_init(|| {
            ix.top_of
                .iter()
                .filter(|(_, top)| tops.contains(&ix, top))
                .map(|(id, _)| *id)
                .collect()
        })
    };
    for (position, c) in constraints() {
        if is_own(c) {
            continue; // one of `own`, handled above
        }
        let id = c.id().unwrap_or("").to_string();
        let kind = c.name().to_string();
        if let Some(pattern) = c.attr("rsc-pattern") {
            match Regex::new(pattern) {
                Ok(re) => {
                    let mut hits: Vec<&str> =
                        scoped_ids().iter().copied().filter(|id| re.is_match(id)).collect();
                    if !hits.is_empty() {
                        hits.sort_unstable();
                        left_out.insert(LeftOut {
                            kind,
                            id,
                            reason: format!(
                                "rsc-pattern `{pattern}` matches replicated resources ({}); patterns are not replicated",
                                hits.join(", ")
                            ),
                        });
                    }
                }
                Err(_) => {
                    left_out.insert(LeftOut {
                        kind,
                        id,
                        reason: format!("rsc-pattern `{pattern}` cannot be evaluated"),
                    });
                }
            }
            continue;
        }
        let mut inside = Vec::new();
        let mut outside = Vec::new();
        let mut tags_here = BTreeSet::new();
        for (_, name) in constraint_refs(c) {
            // An unknown name covers nothing (and is outside the scope).
            ix.resolve_with(name, &mut resolved);
            let n_in = resolved.tops.iter().filter(|t| tops.contains(&ix, t)).count();
            if n_in > 0 {
                inside.push(name);
            }
            if n_in == 0 || n_in < resolved.tops.len() {
                outside.push(name);
            }
            tags_here.extend(resolved.tags.iter().copied());
        }
        if inside.is_empty() {
            continue;
        }
        if !outside.is_empty() {
            left_out.insert(LeftOut {
                kind,
                id,
                reason: format!(
                    "names resources inside the scope ({}) and outside it ({})",
                    inside.join(", "),
                    outside.join(", ")
                ),
            });
            continue;
        }
        if let Some(node) = names_node(c) {
            left_out.insert(LeftOut {
                kind,
                id,
                reason: format!("names node `{node}` of this site; node names differ between sites"),
            });
            continue;
        }
        used_tags.extend(tags_here);
        kept.push(handle(position, c));
    }

    let tags = restricted_tags(config, &used_tags, &ix, &tops);
    let mut own_kept = Vec::with_capacity(n_own);
    own_kept.extend(own().filter_map(|(i, c)| {
        without_fencing(c, &ix, &mut left_out).map(|changed| changed.map_or_else(|| Own::At(handle(i, c)), |el| Own::Changed(Box::new(el))))
    }));
    // In document order: one walk over the resources.
    let mut top_handles = Vec::with_capacity(tops.len);
    if let Some(resources) = config.child("resources") {
        top_handles.extend(resources.children().enumerate().filter(|&(i, _)| tops.has(i)).map(|(i, n)| handle(i, n)));
    }
    Ok(Selection {
        ticket: ticket.into(),
        tops: top_handles,
        own: own_kept,
        kept,
        tags,
        left_out,
    })
}

/// One of the ticket's own `rsc_ticket`s without the fencing devices it
/// names: `None` when nothing else is left in it, `Some(None)` when it names
/// none (replicated as it is), else `Some(Some(copy))`.
fn without_fencing<'a, N: Node<'a>>(c: N, ix: &Index<'a, N>, left_out: &mut BTreeSet<LeftOut>) -> Option<Option<Element>> {
    let fencing = |name: &str| ix.top_of.get(name).is_some_and(|top| ix.fencing.contains(top));
    if c.attr("rsc").is_some_and(fencing) {
        return None;
    }
    // A set changes when it names a fencing device; it goes when no
    // resource_ref is left in it.
    let changes = c.children().filter(|set| set.name() == "resource_set").any(|set| {
        let mut refs = set.children().filter(|r| r.name() == "resource_ref");
        refs.clone().next().is_none() || refs.any(|r| r.id().is_some_and(fencing))
    });
    if !changes {
        let binds_something = c.attr("rsc").is_some() || c.children().any(|s| s.name() == "resource_set");
        return binds_something.then_some(None);
    }
    let mut copy = c.to_element();
    copy.children.retain_mut(|set| {
        if set.name != "resource_set" {
            return true;
        }
        set.children.retain(|r| r.name != "resource_ref" || !r.id().is_some_and(fencing));
        set.children.iter().any(|r| r.name == "resource_ref")
    });
    left_out.insert(LeftOut {
        kind: c.name().to_string(),
        id: c.id().unwrap_or("").into(),
        reason: "replicated without the fencing devices it names".into(),
    });
    let binds_something = copy.attr("rsc").is_some() || copy.children.iter().any(|s| s.name == "resource_set");
    binds_something.then_some(Some(copy))
}

/// The tags in `used`, each listing only members inside the scope.
fn restricted_tags<'a, N: Node<'a>>(config: N, used: &BTreeSet<&'a str>, ix: &Index<'a, N>, tops: &TopSet) -> Element {
    let mut out = Element::new("tags");
    let Some(tags) = config.child("tags") else {
        return out;
    };
    for tag in tags.children().filter(|t| t.id().is_some_and(|id| used.contains(id))) {
        let mut t = tag.to_element();
        t.children.retain(|r| {
            r.name != "obj_ref"
                || r.id().is_some_and(|id| {
                    used.contains(id)
                        || ix
                            .resolve(id)
                            .is_some_and(|res| !res.tops.is_empty() && res.tops.iter().all(|x| tops.contains(ix, x)))
                })
        });
        if t.children.iter().any(|c| c.name == "obj_ref") {
            out.children.push(t);
        }
    }
    out
}

/// The node a location constraint pins to, directly or through a `#uname`
/// rule expression.
fn names_node<'a, N: Node<'a>>(c: N) -> Option<String> {
    if c.name() != "rsc_location" {
        return None;
    }
    if let Some(node) = c.attr("node") {
        return Some(node.to_string());
    }
    let mut found = None;
    c.walk(&mut |el| {
        if found.is_none() && el.name() == "expression" && el.attr("attribute") == Some("#uname") {
            found = Some(el.attr("value").unwrap_or("").to_string());
        }
    });
    found
}

/// Replaces the first element of `scope` that `id-ref`s an element outside
/// the scope by a copy of that element; later references then point inside.
/// Returns whether anything was inlined.
fn inline_foreign_id_refs<'a, N: Node<'a>>(scope: &mut Element, config: N) -> bool {
    let mut any_ref = false;
    scope.walk(&mut |el| any_ref |= el.attr("id-ref").is_some());
    if !any_ref {
        return false;
    }
    let mut ids = BTreeSet::new();
    scope.walk(&mut |el| {
        if let Some(id) = el.id() {
            ids.insert(id.to_string());
        }
    });
    let mut inlined: BTreeSet<String> = BTreeSet::new();
    scope.walk_mut(&mut |el| {
        let Some(target) = el.attr("id-ref").map(str::to_string) else {
            return;
        };
        if ids.contains(&target) || inlined.contains(&target) {
            return;
        }
        if let Some(found) = config.find_id(&target) {
            if found.name() == el.name {
                *el = found.to_element();
                canonicalize(el);
                inlined.insert(target);
            }
        }
    });
    !inlined.is_empty()
}

mod compact;
pub use compact::DocScope;

#[cfg(test)]
mod tests;
