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
use crate::xml::Element;

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
        doc.attrs.clear();
        doc.set_attr(ATTR_TICKET, self.ticket.clone());
        if let Some(v) = &self.version {
            doc.set_attr(ATTR_VERSION, v.clone());
        }
        if let Some(t) = self.term {
            doc.set_attr(ATTR_TERM, t.to_string());
        }
        doc.set_attr(ATTR_DIGEST, self.digest.clone());
        if !self.left_out.is_empty() {
            let mut lo = Element::new(LEFT_OUT);
            for l in &self.left_out {
                lo.children.push(
                    Element::new("item")
                        .with_attr("kind", l.kind.clone())
                        .with_attr("id", l.id.clone())
                        .with_attr("reason", l.reason.clone()),
                );
            }
            doc.children.push(lo);
        }
        doc
    }

    /// Reads a published document back, verifying its digest and, when
    /// `expect_ticket` is given, that it is for that ticket.
    pub fn from_document(mut doc: Element, expect_ticket: Option<&str>) -> Result<Scope, Error> {
        if doc.name != "configuration" {
            return Err(Error::NotCib(format!(
                "a published scope is a <configuration> element, found <{}>",
                doc.name
            )));
        }
        let ticket = doc
            .remove_attr(ATTR_TICKET)
            .ok_or_else(|| Error::NotCib(format!("<configuration> has no {ATTR_TICKET} attribute: not a published scope")))?;
        if let Some(expected) = expect_ticket {
            if expected != ticket {
                return Err(Error::WrongTicket {
                    expected: expected.into(),
                    found: ticket,
                });
            }
        }
        let claimed = doc
            .remove_attr(ATTR_DIGEST)
            .ok_or_else(|| Error::NotCib(format!("<configuration> has no {ATTR_DIGEST} attribute")))?;
        let version = doc.remove_attr(ATTR_VERSION);
        let term = match doc.remove_attr(ATTR_TERM) {
            None => None,
            Some(t) => Some(t.parse::<u64>().map_err(|_| {
                Error::NotCib(format!("{ATTR_TERM}=\"{t}\" is not a number"))
            })?),
        };
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

/// Cuts the scope of `ticket` out of a full `<cib>` document.
pub fn scope(cib: &Element, ticket: &str) -> Result<Scope, Error> {
    let config = cib::configuration(cib)?;
    let mut out = scope_of_configuration(config, ticket)?;
    out.version = Some(cib::version(cib));
    out.term = cib::ticket_state(cib, ticket).term;
    Ok(out)
}

/// Cuts the scope of `ticket` out of a `<configuration>` element.
pub fn scope_of_configuration(config: &Element, ticket: &str) -> Result<Scope, Error> {
    let ix = Index::new(config);
    let constraints: Vec<&Element> = config
        .child("constraints")
        .map(|c| {
            c.children
                .iter()
                .filter(|c| CONSTRAINT_KINDS.contains(&c.name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut left_out = BTreeSet::new();

    // 1 + 2: the ticket's own rsc_ticket constraints and what they name.
    let own: Vec<&Element> = constraints
        .iter()
        .copied()
        .filter(|c| c.name == "rsc_ticket" && c.attr("ticket") == Some(ticket))
        .collect();
    if own.is_empty() {
        return Err(Error::NoTicketConstraint(ticket.into()));
    }
    let mut tops: BTreeSet<String> = BTreeSet::new();
    let mut used_tags: BTreeSet<String> = BTreeSet::new();
    for c in &own {
        for (attr, name) in constraint_refs(c) {
            let resolved = ix.resolve(name).ok_or_else(|| Error::UnknownRef {
                element: c.name.clone(),
                owner: c.id().unwrap_or("").into(),
                attr: attr.into(),
                target: name.into(),
            })?;
            used_tags.extend(resolved.tags);
            for top in resolved.tops {
                if ix.fencing.contains(top.as_str()) {
                    left_out.insert(LeftOut {
                        kind: ix.top[top.as_str()].name.clone(),
                        id: top,
                        reason: format!(
                            "fencing device named by rsc_ticket `{}`: fencing is never replicated",
                            c.id().unwrap_or("")
                        ),
                    });
                } else {
                    tops.insert(top);
                }
            }
        }
    }

    // 3: templates used by replicated primitives.
    let mut templates = BTreeSet::new();
    for top in &tops {
        ix.top[top.as_str()].walk(&mut |el| {
            if el.name == "primitive" {
                if let Some(t) = el.attr("template") {
                    templates.insert(t.to_string());
                }
            }
        });
    }
    tops.extend(templates);

    // 4: other constraints wholly inside the scope.
    let mut kept: Vec<&Element> = Vec::new();
    let scoped_ids: Vec<&str> = ix
        .top_of
        .iter()
        .filter(|(_, top)| tops.contains(**top))
        .map(|(id, _)| *id)
        .collect();
    for c in constraints.iter().copied() {
        if c.name == "rsc_ticket" && c.attr("ticket") == Some(ticket) {
            continue; // one of `own`, handled above
        }
        let id = c.id().unwrap_or("").to_string();
        let kind = c.name.clone();
        if let Some(pattern) = c.attr("rsc-pattern") {
            match Regex::new(pattern) {
                Ok(re) => {
                    let mut hits: Vec<&str> =
                        scoped_ids.iter().copied().filter(|id| re.is_match(id)).collect();
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
            let resolved = ix.resolve(name).unwrap_or_default();
            let n_in = resolved.tops.iter().filter(|t| tops.contains(*t)).count();
            if n_in > 0 {
                inside.push(name);
            }
            if n_in == 0 || n_in < resolved.tops.len() {
                outside.push(name);
            }
            tags_here.extend(resolved.tags);
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
        kept.push(c);
    }

    // Assemble.
    let mut resources = Element::new("resources");
    for top in &tops {
        resources.children.push(ix.top[top.as_str()].clone());
    }
    let mut cons = Element::new("constraints");
    cons.children = own
        .iter()
        .filter_map(|c| without_fencing(c, &ix, &mut left_out))
        .chain(kept.into_iter().cloned())
        .collect();
    let mut scope_config = Element::new("configuration")
        .with_child(resources)
        .with_child(cons);
    let tags = restricted_tags(config, &used_tags, &ix, &tops);
    if !tags.children.is_empty() {
        scope_config.children.push(tags);
    }
    canonicalize(&mut scope_config);
    if inline_foreign_id_refs(&mut scope_config, config) {
        canonicalize(&mut scope_config);
    }
    let digest = digest_of_canonical(&scope_config);
    Ok(Scope {
        ticket: ticket.into(),
        config: scope_config,
        digest,
        version: None,
        term: None,
        left_out: left_out.into_iter().collect(),
    })
}

/// A copy of one of the ticket's own `rsc_ticket`s without the fencing
/// devices it names (`None` when nothing else is left in it).
fn without_fencing(c: &Element, ix: &Index<'_>, left_out: &mut BTreeSet<LeftOut>) -> Option<Element> {
    let fencing = |name: &str| ix.top_of.get(name).is_some_and(|top| ix.fencing.contains(top));
    let mut copy = c.clone();
    if copy.attr("rsc").is_some_and(fencing) {
        return None;
    }
    copy.children.retain_mut(|set| {
        if set.name != "resource_set" {
            return true;
        }
        set.children.retain(|r| r.name != "resource_ref" || !r.id().is_some_and(fencing));
        set.children.iter().any(|r| r.name == "resource_ref")
    });
    if copy != *c {
        left_out.insert(LeftOut {
            kind: c.name.clone(),
            id: c.id().unwrap_or("").into(),
            reason: "replicated without the fencing devices it names".into(),
        });
    }
    let binds_something = copy.attr("rsc").is_some() || copy.children.iter().any(|s| s.name == "resource_set");
    binds_something.then_some(copy)
}

/// The tags in `used`, each listing only members inside the scope.
fn restricted_tags(config: &Element, used: &BTreeSet<String>, ix: &Index<'_>, tops: &BTreeSet<String>) -> Element {
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
                            .is_some_and(|res| !res.tops.is_empty() && res.tops.iter().all(|x| tops.contains(x)))
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
    if c.name != "rsc_location" {
        return None;
    }
    if let Some(node) = c.attr("node") {
        return Some(node.to_string());
    }
    let mut found = None;
    c.walk(&mut |el| {
        if found.is_none() && el.name == "expression" && el.attr("attribute") == Some("#uname") {
            found = Some(el.attr("value").unwrap_or("").to_string());
        }
    });
    found
}

/// Replaces the first element of `scope` that `id-ref`s an element outside
/// the scope by a copy of that element; later references then point inside.
/// Returns whether anything was inlined.
fn inline_foreign_id_refs(scope: &mut Element, config: &Element) -> bool {
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
            if found.name == el.name {
                *el = found.clone();
                canonicalize(el);
                inlined.insert(target);
            }
        }
    });
    !inlined.is_empty()
}

#[cfg(test)]
mod tests;
