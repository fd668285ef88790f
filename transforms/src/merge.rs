//! Merging a (transformed) scope into a subscriber site's CIB.
//!
//! Rules (PRODUCT.md, "Applying at a subscriber site"):
//!
//! - Replicated elements are *owned*. Ownership is recorded in the CIB
//!   itself, in constant room in `crm_config` (a `cluster_property_set`
//!   `cib-replicator-<ticket>`: applied digest, version and term, and a
//!   manifest digest of the owned elements as applied) and a `<tag>`
//!   `cib-replicator-<ticket>-owned` listing them ([`Ownership`],
//!   docs/ownership.md). It survives restarts, travels with the CIB and can
//!   be read with `cibadmin --query`. Pacemaker ignores cluster properties
//!   it does not know.
//! - A local element whose id an incoming element uses and that is not owned
//!   is a **conflict**: it is reported and left alone (and `replicate-now`
//!   refuses), unless the admin adopts top-level elements with `adopt`.
//!   One exception, reported as adopted: an unowned top-level element that
//!   belongs to this site's own scope of the same ticket. This site published
//!   it while it held the ticket; after a failover the ticket's configuration
//!   follows the new holder, so replication reverses without an admin.
//! - An owned element whose digest differs from the recorded one was edited
//!   locally: **drift**, reported; replication wins.
//! - Owned elements that left the scope are removed.
//! - Refused outright: the local site holds the ticket granted; the scope has
//!   no `rsc_ticket` for its ticket or a resource none of them binds; the
//!   scope does not stand on its own; its grant term is older than the one
//!   already applied.
//!
//! The result is a whole new CIB with `epoch` bumped, ready to be validated and
//! turned into one version-checked write by the caller.

use std::collections::{BTreeMap, BTreeSet};

use crate::canonical::element_digest;
use crate::cib::{self, constraint_refs, Index};
use crate::error::Error;
use crate::IdMap;
use crate::scope::{LeftOut, Scope};
use crate::canonical::{for_each_canonical_child, walk_canonical};
use crate::validate::check_fragments;
use crate::xml::Element;

/// Sections of `<configuration>` the replicator writes to.
pub const SECTIONS: &[&str] = &["resources", "constraints", "tags"];

/// Name of the ownership record's `cluster_property_set` for `ticket`.
pub fn record_id(ticket: &str) -> String {
    format!("cib-replicator-{ticket}")
}

/// Options of a merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Take over unowned local top-level elements whose ids incoming elements use.
    pub adopt: bool,
    /// Merge although the local site holds the ticket granted: a copy kept
    /// out of the CIB (the subscriber's lazy mode) written as the site
    /// takes the ticket. Only for a scope the caller verified to be the one
    /// this site must run; every other check still applies.
    pub materialize: bool,
}

/// What a merge would do, element by element (`<section>:<id>` keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Elements that are new at this site.
    pub added: Vec<String>,
    /// Owned elements whose content changes.
    pub changed: Vec<String>,
    /// Owned elements that left the scope and are removed.
    pub removed: Vec<String>,
    /// Unowned local elements taken over: because of `adopt`, or because they
    /// belong to this site's own scope of the ticket (it held the ticket before).
    pub adopted: Vec<String>,
    /// Incoming elements blocked by an unowned local id, with that id.
    pub conflicts: Vec<String>,
    /// Owned elements edited (or deleted) locally since the last apply.
    pub drift: Vec<String>,
    /// What the publisher left out of the scope.
    pub left_out: Vec<LeftOut>,
}

impl Report {
    /// Whether applying would change the configuration's resources,
    /// constraints or tags.
    pub fn changes_content(&self) -> bool {
        !(self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty())
    }

    /// A short multi-line summary, one line per category.
    pub fn summary(&self) -> String {
        let line = |label: &str, items: &[String]| {
            if items.is_empty() {
                format!("{label}: 0\n")
            } else {
                format!("{label}: {} ({})\n", items.len(), items.join(", "))
            }
        };
        let mut out = String::new();
        out += &line("added", &self.added);
        out += &line("changed", &self.changed);
        out += &line("removed", &self.removed);
        if !self.adopted.is_empty() {
            out += &line("adopted", &self.adopted);
        }
        out += &line("conflicts", &self.conflicts);
        out += &line("drift", &self.drift);
        out += &format!("left out: {}\n", self.left_out.len());
        for l in &self.left_out {
            out += &format!("  {l}\n");
        }
        out
    }
}

/// The outcome of planning a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The local CIB with the scope merged in (conflicting elements skipped).
    /// Identical to the input when nothing changes.
    pub cib: Element,
    /// What changes.
    pub report: Report,
    /// Whether `cib` differs from the local CIB at all (content or record).
    pub changed: bool,
}

impl Plan {
    /// The conflicts as an error, for callers that must refuse them.
    pub fn refuse_conflicts(&self) -> Result<(), Error> {
        if self.report.conflicts.is_empty() {
            Ok(())
        } else {
            Err(Error::Conflict {
                ids: self.report.conflicts.clone(),
            })
        }
    }
}

/// Checks that the scope can be applied anywhere: it holds only resources,
/// constraints and tags, no fencing device, stands on its own, and every
/// top-level resource is bound to its ticket by an `rsc_ticket`.
pub fn check_scope(scope: &Scope) -> Result<(), Error> {
    let sections: Vec<&Element> = scope.config.children.iter().collect();
    check_scope_sections(&sections, &scope.ticket)
}

/// [`check_scope`] on the sections of a scope's content (the children of
/// its `<configuration>`), of either tree. Elements are visited in
/// canonical order: the first problem found is reported, whatever the tree
/// and the order of unordered elements.
pub fn check_scope_sections(sections: &[&Element], ticket: &str) -> Result<(), Error> {
    if let Some(other) = sections.iter().find(|c| !SECTIONS.contains(&c.name.as_str())) {
        return Err(Error::ForeignSection(other.name.as_str().to_string()));
    }
    let mut fencing = None;
    for s in sections {
        walk_canonical(s, &mut |el| {
            if fencing.is_none() && cib::is_stonith(el) {
                fencing = Some(el.id().unwrap_or("").to_string());
            }
        });
    }
    if let Some(id) = fencing {
        return Err(Error::Fencing(id));
    }
    check_fragments(sections)?;
    let section = |name: &str| sections.iter().copied().find(|s| s.name.as_str() == name);
    let ix = Index::of_sections(section("resources"), section("tags"));
    // A fencing device through a template (`class="stonith"` there).
    if let Some(id) = ix.fencing.first() {
        return Err(Error::Fencing((*id).to_string()));
    }
    let mut bound: BTreeSet<&str> = BTreeSet::new();
    let mut any = false;
    if let Some(cons) = section("constraints") {
        for c in cons.children.iter() {
            if c.name.as_str() == "rsc_ticket" && c.attr("ticket") == Some(ticket) {
                any = true;
                for (_, name) in constraint_refs(c) {
                    if let Some(r) = ix.resolve(name) {
                        bound.extend(r.tops);
                    }
                }
            }
        }
    }
    if !any {
        return Err(Error::NoTicketConstraint(ticket.to_string()));
    }
    if let Some(resources) = section("resources") {
        let mut unbound = None;
        for_each_canonical_child(resources, |top| {
            let Some(id) = top.id() else { return };
            if unbound.is_none() && top.name.as_str() != "template" && !bound.contains(id) {
                unbound = Some(id);
            }
        });
        if let Some(id) = unbound {
            return Err(Error::Unbound {
                ticket: ticket.to_string(),
                resource: id.into(),
            });
        }
    }
    Ok(())
}

/// Id of the first `<tag>` listing the elements owned for `ticket`; the
/// next ones are `<id>-2`, `<id>-3`, … ([`TAG_REFS`]).
pub fn owned_tag_id(ticket: &str) -> String {
    format!("cib-replicator-{ticket}-owned")
}

/// The most `obj_ref`s one tag of the record holds. Pacemaker 2.1.5 checks
/// each reference of a tag against the ones before it, so reading a tag
/// is quadratic in its size: a single tag of the 17,670 elements owned at
/// 10,000 primitives added 1.6 s of CPU to every scheduler run at the site.
pub const TAG_REFS: usize = 1000;

/// Whether `id` is one of the tags listing the elements owned for
/// `ticket`: [`owned_tag_id`], or it followed by `-2`, `-3`, …
fn is_owned_tag(id: &str, ticket: &str) -> bool {
    let Some(rest) = id.strip_prefix(owned_tag_id(ticket).as_str()) else {
        return false;
    };
    rest.is_empty() || rest.strip_prefix('-').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The digest of an owned element when it cannot be known: the record
/// keeps one manifest digest, not one per element (see [`Ownership`]).
pub const UNKNOWN_DIGEST: &str = "unknown";

/// The ownership record of `ticket`: which elements are owned, and the
/// digest each had when last applied (for drift).
///
/// In the CIB it takes a constant room in `crm_config` whatever the size of
/// the scope — `crm_config` is read by every Pacemaker component, and the
/// record used to hold one nvpair per element:
///
/// - `cluster_property_set id="cib-replicator-<ticket>"`: `applied-digest`,
///   `applied-version`, `applied-term`, `owned-count` and `owned-digest`,
///   the SHA-256 of the lines `<section>:<id> <element digest>` of every
///   owned element as applied (the *manifest*);
/// - `<tag id="cib-replicator-<ticket>-owned">` under `<tags>`, and
///   `…-owned-2`, `…-owned-3`, … for more than [`TAG_REFS`]: one `obj_ref`
///   per owned element (tags may list any id; Pacemaker tolerates a
///   reference left dangling by a local delete).
///
/// The per-element digests come back from the last applied document (kept
/// by the subscriber in its state directory) when its manifest matches;
/// else from the elements themselves when their manifest matches (nothing
/// drifted); else they are [`UNKNOWN_DIGEST`], and drift is reported for
/// the owned elements that differ from the incoming ones. A record of the
/// earlier format (one nvpair per element) is read as it is and rewritten
/// in this one by the next apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Owned elements (`<section>:<id>`) and the digest they had when last
    /// applied.
    pub owned: BTreeMap<String, String>,
    /// Publisher digest of the scope last applied.
    pub applied_digest: Option<String>,
    /// Origin CIB version of the scope last applied.
    pub applied_version: Option<String>,
    /// Grant term of the scope last applied.
    pub applied_term: Option<u64>,
    /// Read from a record of the earlier format (one nvpair per owned
    /// element), which the next apply rewrites.
    pub earlier_format: bool,
}

impl Ownership {
    /// Reads the record of `ticket` from a full CIB (empty when absent).
    ///
    /// # Errors
    ///
    /// [`Error::BadRecord`] when its applied term or version cannot be
    /// read: the checks on terms and versions are never turned off by a
    /// damaged record.
    pub fn read(cib: &Element, ticket: &str) -> Result<Ownership, Error> {
        Ownership::read_with(cib, ticket, None, None)
    }

    /// [`Ownership::read`], knowing what each owned element was when last
    /// applied: from `kept` (the digests the subscriber kept beside the
    /// document it applied last) when its manifest is the recorded one,
    /// else from `arriving` (the content of the document arriving: the
    /// same version, transformed the same way) when its manifest is.
    ///
    /// # Errors
    ///
    /// As [`Ownership::read`].
    pub fn read_with(cib: &Element, ticket: &str, kept: Option<&AppliedDigests>, arriving: Option<&Element>) -> Result<Ownership, Error> {
        let mut own = Ownership::default();
        let id = record_id(ticket);
        let config = cib.child("configuration");
        let Some(set) = config
            .and_then(|c| c.child("crm_config"))
            .and_then(|c| c.children.iter().find(|s| s.id() == Some(id.as_str())))
        else {
            return Ok(own);
        };
        let bad = |name: &str, value: &str| Error::BadRecord {
            ticket: ticket.to_string(),
            reason: format!("{name}=\"{}\" is not a valid value", value.escape_debug()),
        };
        let mut manifest = None;
        for nv in set.children.iter().filter(|c| c.name == "nvpair") {
            let (Some(name), Some(value)) = (nv.attr("name"), nv.attr("value")) else {
                continue;
            };
            match name {
                "applied-digest" => own.applied_digest = Some(value.into()),
                "applied-version" => {
                    cib::parse_version(value).ok_or_else(|| bad(name, value))?;
                    own.applied_version = Some(value.into());
                }
                "applied-term" => own.applied_term = Some(cib::parse_number(value).ok_or_else(|| bad(name, value))?),
                "owned-digest" => manifest = Some(value.to_string()),
                // The earlier format: one nvpair per owned element.
                _ if name.contains(':') => {
                    own.owned.insert(name.into(), value.into());
                    own.earlier_format = true;
                }
                _ => {}
            }
        }
        let (Some(manifest), Some(config)) = (manifest, config) else {
            return Ok(own);
        };
        // The digests as applied, from what was kept or what arrives, if
        // it is the document recorded.
        if let Some(kept) = kept.filter(|k| k.manifest() == manifest) {
            own.owned = kept.0.clone();
            return Ok(own);
        }
        if let Some(arriving) = arriving.map(AppliedDigests::of).filter(|a| a.manifest() == manifest) {
            own.owned = arriving.0;
            return Ok(own);
        }
        // The owned elements, from the tags; each found in its section.
        let listed: Vec<&str> = config
            .child("tags")
            .map(|tags| {
                tags.children
                    .iter()
                    .filter(|c| c.name == "tag" && c.id().is_some_and(|id| is_owned_tag(id, ticket)))
                    .flat_map(|t| t.children.iter().filter(|c| c.name == "obj_ref").filter_map(|c| c.id()))
                    .collect()
            })
            .unwrap_or_default();
        // Each id's section and element, the first in section order and
        // document order: one pass, however many elements are owned.
        let mut placed: IdMap<&str, (&str, &Element)> = IdMap::new();
        for s in SECTIONS {
            for e in section_children(config, s) {
                if let Some(id) = e.id() {
                    placed.entry(id).or_insert((*s, e));
                }
            }
        }
        // Else as they stand, if nothing drifted (their manifest matches).
        let mut current = BTreeMap::new();
        let mut unplaced = Vec::new();
        for id in &listed {
            match placed.get(id) {
                Some(&(section, el)) => {
                    current.insert(key(section, id), element_digest(el));
                }
                None => unplaced.push(*id),
            }
        }
        if unplaced.is_empty() && manifest_digest(&current) == manifest {
            own.owned = current;
            return Ok(own);
        }
        // Something drifted and the document applied last is not at hand:
        // the owned elements are known, their digests as applied are not.
        // A deleted one's section is unknown: it is looked for in each.
        own.owned = current.into_keys().map(|k| (k, UNKNOWN_DIGEST.to_string())).collect();
        for id in unplaced {
            for section in SECTIONS {
                own.owned.insert(key(section, id), UNKNOWN_DIGEST.to_string());
            }
        }
        Ok(own)
    }

    /// The `crm_config` set of the record (constant size).
    fn to_element(&self, ticket: &str) -> Element {
        let set_id = record_id(ticket);
        let mut set = Element::new("cluster_property_set").with_attr("id", set_id.clone());
        let mut push = |name: &str, value: &str| {
            set.children.push(
                Element::new("nvpair")
                    .with_attr("id", format!("{set_id}-{name}"))
                    .with_attr("name", name)
                    .with_attr("value", value),
            );
        };
        if let Some(d) = &self.applied_digest {
            push("applied-digest", d);
        }
        if let Some(v) = &self.applied_version {
            push("applied-version", v);
        }
        if let Some(t) = self.applied_term {
            push("applied-term", &t.to_string());
        }
        push("owned-count", &self.owned.len().to_string());
        push("owned-digest", &manifest_digest(&self.owned));
        set
    }

    /// The `<tag>`s listing the owned elements, [`TAG_REFS`] at most in
    /// each (none when nothing is owned).
    fn owned_tags(&self, ticket: &str) -> Vec<Element> {
        let mut ids: Vec<&str> = self.owned.keys().filter_map(|k| k.split_once(':').map(|(_, id)| id)).collect();
        ids.sort_unstable();
        ids.dedup();
        let first = owned_tag_id(ticket);
        ids.chunks(TAG_REFS)
            .enumerate()
            .map(|(i, chunk)| {
                let id = if i == 0 { first.clone() } else { format!("{first}-{}", i + 1) };
                let mut tag = Element::new("tag").with_attr("id", id);
                tag.children = chunk.iter().map(|id| Element::new("obj_ref").with_attr("id", *id)).collect();
                tag
            })
            .collect()
    }
}

/// The manifest digest of owned elements: SHA-256 of the lines
/// `<section>:<id> <digest>` in key order.
fn manifest_digest(owned: &BTreeMap<String, String>) -> String {
    crate::canonical::digest_str(&manifest_text(owned))
}

/// The lines `<section>:<id> <digest>` of `owned`, in key order: what
/// [`manifest_digest`] hashes.
fn manifest_text(owned: &BTreeMap<String, String>) -> String {
    let mut text = String::with_capacity(owned.len() * 96);
    for (k, d) in owned {
        text.push_str(k);
        text.push(' ');
        text.push_str(d);
        text.push('\n');
    }
    text
}

/// The digest of each element of a scope's content as applied, keyed
/// `<section>:<id>`: what tells a local edit of an owned element from an
/// upstream change. Its text ([`AppliedDigests::to_text`]) is the lines
/// whose SHA-256 is the ownership record's manifest (`owned-digest`), so
/// what a subscriber keeps beside the document it applied is checked
/// against the CIB's record before it is trusted, and is a fraction of the
/// document's size (about 90 bytes an element).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedDigests(BTreeMap<String, String>);

impl AppliedDigests {
    /// The digests of the elements of `content` (a `<configuration>`, or a
    /// document holding the sections the same way).
    #[must_use]
    pub fn of(content: &Element) -> AppliedDigests {
        AppliedDigests(
            SECTIONS
                .iter()
                .flat_map(|s| section_children(content, s).filter_map(move |e| e.id().map(|id| (key(s, id), element_digest(e)))))
                .collect(),
        )
    }

    /// The lines `<section>:<id> <digest>`, in key order.
    #[must_use]
    pub fn to_text(&self) -> String {
        manifest_text(&self.0)
    }

    /// Reads [`AppliedDigests::to_text`]'s lines back; `None` when a line
    /// is not `<section>:<id> sha256:<hex>` or the keys are not in order (a
    /// damaged or foreign file is as good as none).
    #[must_use]
    pub fn from_text(text: &str) -> Option<AppliedDigests> {
        let mut digests = BTreeMap::new();
        let mut last: Option<&str> = None;
        for line in text.lines() {
            let (key, digest) = line.split_once(' ')?;
            let (section, id) = key.split_once(':')?;
            let hex = digest.strip_prefix("sha256:")?;
            if !SECTIONS.contains(&section)
                || id.is_empty()
                || hex.len() != 64
                || !hex.bytes().all(|b| b.is_ascii_hexdigit())
                || last.is_some_and(|l| l >= key)
            {
                return None;
            }
            last = Some(key);
            digests.insert(key.to_string(), digest.to_string());
        }
        Some(AppliedDigests(digests))
    }

    /// The manifest of these digests: what the ownership record holds as
    /// `owned-digest` for them.
    #[must_use]
    pub fn manifest(&self) -> String {
        manifest_digest(&self.0)
    }

    /// How many elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Plans merging `scope` (already transformed for this site) into the local
/// CIB `local`.
pub fn plan(local: &Element, scope: &Scope, opts: Options) -> Result<Plan, Error> {
    plan_with(local, scope, opts, None)
}

/// [`plan`], with the digests of the document applied last when the
/// caller kept them (for drift against what was applied, see
/// [`Ownership`]).
pub fn plan_with(local: &Element, scope: &Scope, opts: Options, applied: Option<&AppliedDigests>) -> Result<Plan, Error> {
    let ticket = scope.ticket.as_str();
    if !opts.materialize && cib::ticket_state(local, ticket)?.granted {
        return Err(Error::TicketGrantedLocally(ticket.into()));
    }
    check_scope(scope)?;
    // The incoming content is what was applied last when its manifest is
    // the recorded one (the same version, transformed the same way).
    let record = Ownership::read_with(local, ticket, applied, Some(&scope.config))?;
    check_newer(&record, scope)?;

    let mut merged = local.clone();
    let config = cib::configuration_mut(&mut merged)?;
    let mut report = Report {
        left_out: scope.left_out.clone(),
        ..Report::default()
    };
    let mut new_record = Ownership {
        applied_digest: Some(scope.digest.clone()),
        applied_version: scope.version.clone(),
        applied_term: scope.term.max(record.applied_term),
        owned: BTreeMap::new(),
        earlier_format: false,
    };

    // Ids carried by elements we may replace or remove (owned, or adopted).
    let incoming_keys: BTreeSet<String> = SECTIONS
        .iter()
        .flat_map(|s| section_children(&scope.config, s).filter_map(move |e| e.id().map(|id| key(s, id))))
        .collect();
    let mut replaceable: BTreeSet<String> = record.owned.keys().cloned().collect();
    if opts.adopt {
        replaceable.extend(incoming_keys.iter().cloned());
    } else {
        replaceable.extend(former_holder_keys(local, ticket, &incoming_keys, &replaceable));
    }
    // Every id in the local configuration that is not inside a replaceable element.
    let foreign_ids = foreign_ids(config, &replaceable);

    for section in SECTIONS {
        let sect = config.child_or_insert(section);
        let incoming: Vec<&Element> = section_children(&scope.config, section).collect();
        // Remove owned elements that left the scope, note drift on the rest.
        let mut kept = Vec::with_capacity(sect.children.len());
        for el in std::mem::take(&mut sect.children) {
            let Some(id) = el.id() else {
                kept.push(el);
                continue;
            };
            let k = key(section, id);
            if let Some(recorded) = record.owned.get(&k) {
                if recorded == UNKNOWN_DIGEST {
                    let incoming = section_children(&scope.config, section).find(|e| e.id() == Some(id));
                    if incoming != Some(&el) {
                        report.drift.push(format!("{k} (edited here or changed upstream: the document applied last is not at hand)"));
                    }
                } else if &element_digest(&el) != recorded {
                    report.drift.push(k.clone());
                }
                if !incoming_keys.contains(&k) {
                    report.removed.push(k);
                    continue;
                }
            }
            kept.push(el);
        }
        sect.children = kept;
        let mut position: IdMap<String, usize> = sect
            .children
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.id().map(|id| (id.to_string(), i)))
            .collect();
        for inc in incoming {
            let Some(id) = inc.id() else { continue };
            let k = key(section, id);
            if let Some(clash) = first_clash(inc, &foreign_ids) {
                report.conflicts.push(if clash == id {
                    k.clone()
                } else {
                    format!("{k} (id `{clash}`)")
                });
                continue;
            }
            let digest = element_digest(inc);
            match position.get(id).copied() {
                Some(pos) => {
                    if !record.owned.contains_key(&k) {
                        report.adopted.push(k.clone());
                    }
                    if element_digest(&sect.children[pos]) != digest {
                        report.changed.push(k.clone());
                        sect.children[pos] = inc.clone();
                    }
                }
                None => {
                    if record.owned.contains_key(&k) {
                        report.drift.push(format!("{k} (deleted locally)"));
                    }
                    report.added.push(k.clone());
                    position.insert(id.to_string(), sect.children.len());
                    sect.children.push(inc.clone());
                }
            }
            new_record.owned.insert(k, digest);
        }
    }
    // Leave optional empty sections absent, as they were.
    if local_section_absent(local, "tags") && config.child("tags").is_some_and(|t| t.children.is_empty()) {
        config.children.retain(|c| c.name != "tags");
    }

    // Same content from a newer origin version: keep the record as it is, so
    // unrelated edits at the origin do not rewrite every subscriber's CIB.
    if new_record.owned == record.owned && new_record.applied_digest == record.applied_digest {
        new_record.applied_version = record.applied_version.clone();
    }
    let record_changed = new_record != record;
    let changed = report.changes_content() || record_changed;
    if !changed {
        return Ok(Plan {
            cib: local.clone(),
            report,
            changed: false,
        });
    }
    write_record(config, ticket, &new_record);
    bump_epoch(&mut merged)?;
    Ok(Plan {
        cib: merged,
        report,
        changed: true,
    })
}

/// The one rule for terms and versions, for the daemon and the one-shot
/// commands alike: a scope is applied only if it is not older than what was
/// applied last.
///
/// - Its grant term may not be older than the applied one; once a term was
///   applied, a scope without a term is refused.
/// - Within one term (the same holder), its origin version may not be older
///   than the applied one. Across terms versions are not compared: a new
///   holder's CIB has versions of its own.
pub fn check_newer(record: &Ownership, scope: &Scope) -> Result<(), Error> {
    let stale = |reason: String| Error::Stale {
        ticket: scope.ticket.clone(),
        reason,
    };
    match (record.applied_term, scope.term) {
        (Some(applied), None) => {
            return Err(stale(format!(
                "it carries no grant term, and term {applied} was applied already (a document from an unknown or old holder)"
            )))
        }
        (Some(applied), Some(offered)) if offered < applied => {
            return Err(Error::StaleTerm {
                ticket: scope.ticket.clone(),
                offered,
                applied,
            })
        }
        _ => {}
    }
    let same_term = record.applied_term.is_some() && record.applied_term == scope.term;
    let versions = (record.applied_version.as_deref(), scope.version.as_deref());
    if let (true, (Some(applied), Some(offered))) = (same_term, versions) {
        let parse = |v: &str| cib::parse_version(v);
        if let (Some(a), Some(o)) = (parse(applied), parse(offered)) {
            if o < a {
                return Err(stale(format!(
                    "its origin version {offered} is older than version {applied} applied already in the same grant term"
                )));
            }
        }
    }
    Ok(())
}

/// Incoming keys of unowned local top-level elements that belong to this
/// site's own scope of `ticket`: the site published them while it held the
/// ticket, and now that the ticket has moved, the ticket's configuration
/// comes from its new holder. Taking them over is what lets replication
/// reverse after a failover. Computed only when an incoming element meets an
/// unowned local one; a local CIB whose own scope cannot be cut yields none.
fn former_holder_keys(
    local: &Element,
    ticket: &str,
    incoming: &BTreeSet<String>,
    replaceable: &BTreeSet<String>,
) -> Vec<String> {
    let Some(config) = local.child("configuration") else {
        return Vec::new();
    };
    let meets = SECTIONS.iter().any(|s| {
        section_children(config, s)
            .filter_map(|e| e.id())
            .any(|id| {
                let k = key(s, id);
                incoming.contains(&k) && !replaceable.contains(&k)
            })
    });
    if !meets {
        return Vec::new();
    }
    let Ok(own) = crate::scope::scope(local, ticket) else {
        return Vec::new();
    };
    SECTIONS
        .iter()
        .flat_map(|s| section_children(&own.config, s).filter_map(move |e| e.id().map(|id| key(s, id))))
        .filter(|k| incoming.contains(k) && !replaceable.contains(k))
        .collect()
}

fn key(section: &str, id: &str) -> String {
    format!("{section}:{id}")
}

fn section_children<'a>(config: &'a Element, section: &str) -> impl Iterator<Item = &'a Element> {
    config.child(section).into_iter().flat_map(|s| s.children.iter())
}

fn local_section_absent(cib: &Element, section: &str) -> bool {
    cib.child("configuration").and_then(|c| c.child(section)).is_none()
}

/// Ids in the local configuration outside elements listed in `replaceable`,
/// mapped to their element name. `resource_ref`/`obj_ref` are references, not
/// ids, and the ownership record itself is excluded.
fn foreign_ids(config: &Element, replaceable: &BTreeSet<String>) -> IdMap<String, String> {
    let mut out = IdMap::default();
    for section in &config.children {
        for top in &section.children {
            if let Some(id) = top.id() {
                if SECTIONS.contains(&section.name.as_str()) && replaceable.contains(&key(&section.name, id)) {
                    continue;
                }
                if (section.name == "crm_config" || section.name == "tags") && id.starts_with("cib-replicator-") {
                    continue;
                }
            }
            top.walk(&mut |el| {
                if el.name != "resource_ref" && el.name != "obj_ref" {
                    if let Some(id) = el.id() {
                        out.insert(id.to_string(), el.name.clone());
                    }
                }
            });
        }
    }
    out
}

/// The first id in `el`'s subtree that a foreign local element already uses.
fn first_clash(el: &Element, foreign: &IdMap<String, String>) -> Option<String> {
    let mut found = None;
    el.walk(&mut |e| {
        if found.is_none() && e.name != "resource_ref" && e.name != "obj_ref" {
            if let Some(id) = e.id() {
                if foreign.contains_key(id) {
                    found = Some(id.to_string());
                }
            }
        }
    });
    found
}

fn write_record(config: &mut Element, ticket: &str, record: &Ownership) {
    let id = record_id(ticket);
    let crm_config = config.child_or_insert("crm_config");
    let set = record.to_element(ticket);
    match crm_config.children.iter().position(|s| s.id() == Some(id.as_str())) {
        Some(pos) => crm_config.children[pos] = set,
        None => crm_config.children.push(set),
    }
    let new = record.owned_tags(ticket);
    if new.is_empty() && config.child("tags").is_none() {
        return;
    }
    let tags = config.child_or_insert("tags");
    let mine = |t: &Element| t.name == "tag" && t.id().is_some_and(|id| is_owned_tag(id, ticket));
    // Where the record's first tag was, or at the end.
    let pos = tags.children.iter().position(mine).unwrap_or(tags.children.len());
    tags.children.retain(|t| !mine(t));
    let pos = pos.min(tags.children.len());
    tags.children.splice(pos..pos, new);
    if tags.children.is_empty() {
        config.children.retain(|c| c.name != "tags");
    }
}

/// One version step: `epoch` + 1, `num_updates` 0.
fn bump_epoch(cib: &mut Element) -> Result<(), Error> {
    let epoch: u64 = cib.attr("epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
    let next = epoch.checked_add(1).ok_or_else(|| Error::VersionOverflow("epoch".into()))?;
    cib.set_attr("epoch", next.to_string());
    cib.set_attr("num_updates", "0");
    Ok(())
}

#[cfg(test)]
mod tests;
