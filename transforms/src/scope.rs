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

use crate::canonical::{canonicalize, digest};
use crate::cib::{self, constraint_refs, Index, CONSTRAINT_KINDS};
use crate::error::Error;
use crate::xml::writer::write_element;
use crate::xml::{Element, Limits};

/// Root attribute naming the ticket of a published scope.
pub const ATTR_TICKET: &str = "replicator-ticket";
/// Root attribute carrying the content digest (`sha256:<hex>`).
pub const ATTR_DIGEST: &str = "replicator-digest";
/// Root attribute carrying the origin CIB version (`admin_epoch.epoch.num_updates`).
pub const ATTR_VERSION: &str = "replicator-version";
/// Root attribute carrying the ticket grant term at the origin.
pub const ATTR_TERM: &str = "replicator-term";
/// Root attribute carrying the digest of the other root attributes (ticket,
/// version, term, content digest), so that the header cannot be changed
/// apart from the content. Documents from earlier publishers lack it and
/// are accepted without ([`Scope::from_document`]).
pub const ATTR_HEADER_DIGEST: &str = "replicator-header-digest";
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
        let root = Element {
            attrs,
            ..Element::new(self.config.name.as_str())
        };
        write_element(
            &mut out,
            0,
            &root,
            root.attrs.iter(),
            self.config.children.iter().chain(lo.as_ref()),
            &mut |c, out, depth| c.write_to(out, depth),
        );
        out
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
        // Pacemaker's configuration holds no text: a scope that does was
        // not cut by a publisher, and the patch could not carry it anyway.
        let mut text = None;
        doc.walk(&mut |el| {
            if text.is_none() && !el.text.is_empty() {
                text = Some(el.name.clone());
            }
        });
        if let Some(name) = text {
            return Err(Error::NotCib(format!("<{name}> holds text: a published scope holds elements and attributes only")));
        }
        canonicalize(&mut doc);
        let actual = digest(&doc);
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

impl Scope {
    /// Reads a document received from a publisher: [`Scope::from_document`],
    /// then [`Scope::check_publishable`]. What any other site sends is
    /// trusted no further than this.
    pub fn from_published(doc: Element, expect_ticket: Option<&str>) -> Result<Scope, Error> {
        let scope = Scope::from_document(doc, expect_ticket)?;
        scope.check_publishable()?;
        Ok(scope)
    }

    /// Checks that the content is what a publisher cuts for the ticket, with
    /// the code publishers cut it with: the scope of the content itself
    /// (taken as a configuration) must be the content, with nothing left
    /// out. So a document holding anything the scope rules do not produce —
    /// a fencing device in any form, an `rsc-pattern` location, a location
    /// naming a node, a constraint naming resources outside the scope, a
    /// section or element of its own — is refused, and the reason names it.
    pub fn check_publishable(&self) -> Result<(), Error> {
        let refuse = |reason: String| Error::NotPublishable {
            ticket: self.ticket.clone(),
            reason,
        };
        let again = scope_of_configuration(&self.config, &self.ticket).map_err(|e| refuse(e.to_string()))?;
        if let Some(lo) = again.left_out.first() {
            return Err(refuse(format!("{lo}")));
        }
        if again.config == self.config {
            return Ok(());
        }
        for section in &self.config.children {
            let Some(cut) = again.config.child(&section.name) else {
                return Err(refuse(format!("<{}> is not a section of a ticket's scope", section.name)));
            };
            for el in &section.children {
                let same = cut.children.iter().find(|c| c.name == el.name && c.id() == el.id());
                let what = format!("<{} id=\"{}\">", el.name, el.id().unwrap_or("").escape_debug());
                match same {
                    None => return Err(refuse(format!("{what} is not part of the ticket's scope"))),
                    Some(c) if c != el => return Err(refuse(format!("{what} is not as the scope rules give it"))),
                    Some(_) => {}
                }
            }
        }
        Err(refuse("the content is not as the scope rules give it".into()))
    }
}

/// The root attributes of a published document, in document order:
/// ticket, version, term, digest, header digest.
fn document_attrs(ticket: &str, version: Option<&str>, term: Option<u64>, digest: &str) -> Vec<(String, String)> {
    let mut attrs = vec![(ATTR_TICKET.to_string(), ticket.to_string())];
    if let Some(v) = version {
        attrs.push((ATTR_VERSION.to_string(), v.to_string()));
    }
    if let Some(t) = term {
        attrs.push((ATTR_TERM.to_string(), t.to_string()));
    }
    attrs.push((ATTR_DIGEST.to_string(), digest.to_string()));
    attrs.push((ATTR_HEADER_DIGEST.to_string(), header_digest(ticket, version, term, digest)));
    attrs
}

/// The value of [`ATTR_HEADER_DIGEST`]: `sha256:<hex>` of one line per
/// field, `ticket=…`, `version=…`, `term=…`, `digest=…` (empty when absent).
pub fn header_digest(ticket: &str, version: Option<&str>, term: Option<u64>, digest: &str) -> String {
    let term = term.map(|t| t.to_string()).unwrap_or_default();
    crate::canonical::digest_str(&format!("ticket={ticket}\nversion={}\nterm={term}\ndigest={digest}\n", version.unwrap_or("")))
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
    fn read(root: &Element, expect_ticket: Option<&str>) -> Result<Metadata, Error> {
        if root.name.as_str() != "configuration" {
            return Err(Error::NotCib(format!(
                "a published scope is a <configuration> element, found <{}>",
                root.name.as_str()
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
            Some(t) => Some(cib::parse_number(t).ok_or_else(|| {
                Error::NotCib(format!("{ATTR_TERM}=\"{}\" is not a grant term (an unsigned decimal without sign or leading zero)", t.escape_debug()))
            })?),
        };
        let version = root.attr(ATTR_VERSION);
        if let Some(v) = version {
            if cib::parse_version(v).is_none() {
                return Err(Error::NotCib(format!("{ATTR_VERSION}=\"{}\" is not a CIB version (admin_epoch.epoch.num_updates)", v.escape_debug())));
            }
        }
        if let Some(claimed) = root.attr(ATTR_HEADER_DIGEST) {
            if claimed != header_digest(ticket, version, term, digest) {
                return Err(Error::NotCib(format!("{ATTR_HEADER_DIGEST} does not match the ticket, version, term and digest of the document: altered?")));
            }
        }
        Ok(Metadata {
            ticket: ticket.into(),
            digest: digest.into(),
            version: version.map(str::to_string),
            term,
        })
    }
}

/// Cuts the scope of `ticket` out of a full `<cib>` document.
pub fn scope(cib: &Element, ticket: &str) -> Result<Scope, Error> {
    let config = cib::configuration(cib)?;
    let mut out = scope_of_configuration(config, ticket)?;
    out.version = Some(cib::version(cib));
    out.term = cib::ticket_state(cib, ticket)?.term;
    Ok(out)
}

/// [`scope`] of a CIB that is no longer needed: the elements of the scope
/// are moved out of it instead of copied. Same result as [`scope`].
pub fn cut(mut cib: Element, ticket: &str) -> Result<Scope, Error> {
    let version = cib::version(&cib);
    let term = cib::ticket_state(&cib, ticket)?.term;
    let config = cib::configuration_mut(&mut cib)?;
    let selection = select(&*config, ticket, |position, _| position)?;
    let mut out = selection.assemble(config, |section, i| std::mem::take(&mut section.children[i]))?;
    out.version = Some(version);
    out.term = term;
    Ok(out)
}

/// Cuts the scope of `ticket` out of a `<configuration>` element.
pub fn scope_of_configuration(config: &Element, ticket: &str) -> Result<Scope, Error> {
    select(config, ticket, |position, _| position)?.assemble_copy(config)
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
    /// `rsc_ticket`s of other tickets trimmed to their members inside.
    extra: Vec<Element>,
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
    fn insert<'a>(&mut self, ix: &Index<'a>, id: &str) {
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
    fn contains<'a>(&self, ix: &Index<'a>, id: &str) -> bool {
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
    fn assemble(self, config: &mut Element, mut take: impl FnMut(&mut Element, usize) -> Element) -> Result<Scope, Error> {
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
            list.extend(self.extra);
            cons.children = list;
        }
        finish(self.ticket, resources, cons, self.tags, self.left_out, &*config)
    }

    /// Builds the scope from a borrowed configuration, copying the selected
    /// elements.
    fn assemble_copy(self, src: &Element) -> Result<Scope, Error> {
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
        list.extend(self.extra);
        let cons = Element {
            children: list,
            ..Element::new("constraints")
        };
        finish(self.ticket, resources, cons, self.tags, self.left_out, src)
    }
}

/// The scope from its parts: canonical, foreign `id-ref`s inlined, digested.
fn finish(
    ticket: String,
    resources: Element,
    cons: Element,
    tags: Element,
    left_out: BTreeSet<LeftOut>,
    config: &Element,
) -> Result<Scope, Error> {
    let mut scope_config = Element::new("configuration")
        .with_child(resources)
        .with_child(cons);
    if !tags.children.is_empty() {
        scope_config.children.push(tags);
    }
    canonicalize(&mut scope_config);
    if inline_foreign_id_refs(&mut scope_config, config)? {
        canonicalize(&mut scope_config);
    }
    let digest = digest(&scope_config);
    Ok(Scope {
        ticket,
        config: scope_config,
        digest,
        version: None,
        term: None,
        left_out: left_out.into_iter().collect(),
    })
}

/// Decides what the scope of `ticket` is (PRODUCT.md rules 1–5); `handle`
/// makes the [`Selection`]'s handle on an element from its position in its
/// section and the element.
fn select<'a, H>(config: &'a Element, ticket: &str, handle: impl Fn(usize, &'a Element) -> H) -> Result<Selection<H>, Error> {
    let ix = Index::new(config);
    // The constraints, with their positions; walked a few times rather
    // than collected (a fresh page costs more than a walk here).
    let section = config.child("constraints");
    let constraints = || {
        section
            .into_iter()
            .flat_map(|c| c.children.iter().enumerate())
            .filter(|(_, c)| CONSTRAINT_KINDS.contains(&c.name.as_str()))
    };
    let is_own = |c: &'a Element| c.name.as_str() == "rsc_ticket" && c.attr("ticket") == Some(ticket);
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
                    element: c.name.as_str().to_string(),
                    owner: c.id().unwrap_or("").into(),
                    attr: attr.into(),
                    target: name.into(),
                });
            }
            used_tags.extend(resolved.tags.iter().copied());
            for &top in &resolved.tops {
                if ix.fencing.contains(top) {
                    left_out.insert(LeftOut {
                        kind: ix.top[top].node.name.as_str().to_string(),
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
    let mut extra: Vec<Element> = Vec::new();
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
        let kind = c.name.as_str().to_string();
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
            // In an rsc_ticket set each member depends on the ticket on its
            // own: the members inside keep that dependency at the other site.
            if let Some(trimmed) = trimmed_ticket_sets(c, &ix, &tops) {
                used_tags.extend(tags_here);
                left_out.insert(LeftOut {
                    kind,
                    id,
                    reason: format!(
                        "published trimmed to its members inside the scope ({}); members outside it ({}) are not replicated",
                        inside.join(", "),
                        outside.join(", ")
                    ),
                });
                extra.push(trimmed);
                continue;
            }
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
        top_handles.extend(resources.children.iter().enumerate().filter(|&(i, _)| tops.has(i)).map(|(i, n)| handle(i, n)));
    }
    Ok(Selection {
        ticket: ticket.into(),
        tops: top_handles,
        own: own_kept,
        kept,
        extra,
        tags,
        left_out,
    })
}

/// One of the ticket's own `rsc_ticket`s without the fencing devices it
/// names: `None` when nothing else is left in it, `Some(None)` when it names
/// none (replicated as it is), else `Some(Some(copy))`.
fn without_fencing<'a>(c: &'a Element, ix: &Index<'a>, left_out: &mut BTreeSet<LeftOut>) -> Option<Option<Element>> {
    let fencing = |name: &str| ix.top_of.get(name).is_some_and(|top| ix.fencing.contains(top));
    if c.attr("rsc").is_some_and(fencing) {
        return None;
    }
    // A set changes when it names a fencing device; it goes when no
    // resource_ref is left in it.
    let changes = c.children.iter().filter(|set| set.name.as_str() == "resource_set").any(|set| {
        let mut refs = set.children.iter().filter(|r| r.name.as_str() == "resource_ref");
        refs.clone().next().is_none() || refs.any(|r| r.id().is_some_and(fencing))
    });
    if !changes {
        let binds_something = c.attr("rsc").is_some() || c.children.iter().any(|s| s.name.as_str() == "resource_set");
        return binds_something.then_some(None);
    }
    let mut copy = c.clone();
    copy.children.retain_mut(|set| {
        if set.name != "resource_set" {
            return true;
        }
        set.children.retain(|r| r.name != "resource_ref" || !r.id().is_some_and(fencing));
        set.children.iter().any(|r| r.name == "resource_ref")
    });
    left_out.insert(LeftOut {
        kind: c.name.as_str().to_string(),
        id: c.id().unwrap_or("").into(),
        reason: "replicated without the fencing devices it names".into(),
    });
    let binds_something = copy.attr("rsc").is_some() || copy.children.iter().any(|s| s.name == "resource_set");
    binds_something.then_some(Some(copy))
}

/// An `rsc_ticket` (of another ticket) in set form, trimmed to the members
/// wholly inside the scope: same id, ticket, role and loss-policy; sets left
/// empty dropped. `None` when it is not in that form (`rsc=`), is not an
/// `rsc_ticket`, or keeps no member.
fn trimmed_ticket_sets(c: &Element, ix: &Index<'_>, tops: &TopSet) -> Option<Element> {
    if c.name != "rsc_ticket" || c.attr("rsc").is_some() {
        return None;
    }
    let inside = |name: &str| ix.resolve(name).is_some_and(|r| !r.tops.is_empty() && r.tops.iter().all(|t| tops.contains(ix, t)));
    let mut copy = c.clone();
    copy.children.retain_mut(|set| {
        if set.name != "resource_set" {
            return true;
        }
        set.children.retain(|r| r.name != "resource_ref" || r.id().is_some_and(inside));
        set.children.iter().any(|r| r.name == "resource_ref")
    });
    copy.children.iter().any(|s| s.name == "resource_set").then_some(copy)
}

/// The tags in `used`, each listing only members inside the scope.
fn restricted_tags<'a>(config: &'a Element, used: &BTreeSet<&'a str>, ix: &Index<'a>, tops: &TopSet) -> Element {
    let mut out = Element::new("tags");
    let Some(tags) = config.child("tags") else {
        return out;
    };
    for tag in tags.children.iter().filter(|t| t.id().is_some_and(|id| used.contains(id))) {
        let mut t = tag.clone();
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
fn names_node(c: &Element) -> Option<String> {
    if c.name.as_str() != "rsc_location" {
        return None;
    }
    if let Some(node) = c.attr("node") {
        return Some(node.to_string());
    }
    let mut found = None;
    c.walk(&mut |el| {
        if found.is_none() && el.name.as_str() == "expression" && el.attr("attribute") == Some("#uname") {
            found = Some(el.attr("value").unwrap_or("").to_string());
        }
    });
    found
}

/// Replaces the first element of `scope` that `id-ref`s an element outside
/// the scope by a copy of that element; later references then point inside.
/// A copy may itself hold `id-ref`s, inlined in turn: the result may not
/// nest deeper than subscribers accept ([`Limits::max_depth`]), so a chain
/// of references ends in an error instead of an ever deeper document.
/// Returns whether anything was inlined.
fn inline_foreign_id_refs(scope: &mut Element, config: &Element) -> Result<bool, Error> {
    let mut any_ref = false;
    scope.walk(&mut |el| any_ref |= el.attr("id-ref").is_some());
    if !any_ref {
        return Ok(false);
    }
    let mut ids = BTreeSet::new();
    scope.walk(&mut |el| {
        if let Some(id) = el.id() {
            ids.insert(id.to_string());
        }
    });
    let mut by_id: crate::IdMap<&str, &Element> = crate::IdMap::default();
    config.walk(&mut |el| {
        // `obj_ref` and `resource_ref` carry the id they point at.
        if let (Some(id), false) = (el.id(), matches!(el.name.as_str(), "obj_ref" | "resource_ref")) {
            by_id.entry(id).or_insert(el);
        }
    });
    let mut inliner = Inliner {
        ids,
        by_id,
        inlined: BTreeSet::new(),
        last: None,
        max_depth: Limits::default().max_depth,
    };
    inliner.visit(scope, 1)?;
    Ok(!inliner.inlined.is_empty())
}

/// The state of [`inline_foreign_id_refs`].
struct Inliner<'c> {
    /// Ids defined in the scope.
    ids: BTreeSet<String>,
    /// Every element of the configuration by id (the first, for a
    /// duplicated id).
    by_id: crate::IdMap<&'c str, &'c Element>,
    /// Targets inlined so far, and the last one.
    inlined: BTreeSet<String>,
    last: Option<String>,
    max_depth: usize,
}

impl Inliner<'_> {
    /// Inlines in `el` (at `depth`, the root being 1) and below.
    fn visit(&mut self, el: &mut Element, depth: usize) -> Result<(), Error> {
        if depth > self.max_depth {
            return Err(Error::TooDeep {
                limit: self.max_depth,
                context: format!(
                    "the scope, once the id-refs it uses are inlined (the last one inlined: id-ref `{}`)",
                    self.last.as_deref().unwrap_or("").escape_debug()
                ),
            });
        }
        if let Some(target) = el.attr("id-ref").map(str::to_string) {
            if !self.ids.contains(&target) && !self.inlined.contains(&target) {
                if let Some(found) = self.by_id.get(target.as_str()).filter(|f| f.name == el.name) {
                    *el = (*found).clone();
                    canonicalize(el);
                    self.last = Some(target.clone());
                    self.inlined.insert(target);
                }
            }
        }
        for c in &mut el.children {
            self.visit(c, depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
