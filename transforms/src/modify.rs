//! The guarded `cibadmin --modify` document between two whole CIBs: the
//! cheapest write Pacemaker 2.1.5 offers that is still atomic and refused
//! when the configuration changed since it was read.
//!
//! # Why not always the patch
//!
//! `cibadmin --patch` (`cib_process_diff`) applies the patch to a fresh
//! copy of the CIB, so the CIB manager then infers what changed by
//! comparing the copy with the CIB (`cib_perform_op` →
//! `xml_calculate_changes` → `mark_xml_changes`). That comparison looks
//! each child up among its siblings with a linear scan
//! (`pcmk__xml_match`, then `pcmk__xml_position`), so its time grows with
//! the square of the longest list of siblings: on a site of 10,000
//! top-level primitives and their `rsc_ticket`s a patch that changes only
//! the version keeps the CIB manager busy 11 s, where a `--modify` of one
//! nvpair takes 1 s (live cluster, docs/ownership.md). Pacemaker 3.0
//! compares the same way. `--modify` (`cib_process_modify`) changes the CIB
//! in place with change tracking on: nothing is inferred.
//!
//! # The guard
//!
//! The document's root is `<cib admin_epoch="A" epoch="E">`, the version
//! the changes were planned against. Pacemaker sets those attributes like
//! any others, then refuses an operation that leaves `admin_epoch` or
//! `epoch` lower than they were ("Update was older than existing
//! configuration", exit code 103: nothing is written), and otherwise
//! raises `epoch` by one for the change of the configuration. Every change
//! of the configuration raises `epoch` (or `admin_epoch`), so the modify
//! applies only if the configuration is still the one planned against: a
//! concurrent local edit is detected, not overwritten, as with the patch.
//! Changes of the status section (`num_updates` only) do not refuse it,
//! and it writes nothing of the status.
//!
//! # What a modify can express
//!
//! `cibadmin --modify` merges the document into the CIB
//! (`update_xml_child`, `pcmk__xml_update`): each element is looked up
//! among the children of its counterpart — the first child with its tag
//! and `id`, else its tag and `id-ref`, else its tag alone — and its
//! attributes are set (an existing one keeps its place, a new one is
//! appended); an element not found is created at the end of the list. It
//! cannot delete an element or an attribute, nor reorder children. So
//! [`guarded_modify`] says [`Modify::Unsupported`] when the change needs
//! any of that, when a lookup would not find exactly the element meant, or
//! when an attribute value would be read as an increment (`name++`,
//! `name+=N`, which Pacemaker expands against the old value); the caller
//! then writes a patch ([`crate::patch::versioned_patch`]).
//!
//! It also says so when more than [`MAX_CREATES_IN_PLACE`] children are
//! created under one element (a first replication): each creation looks
//! its element up among the children made so far, in time growing with
//! the square of their number, where the patch replaces the list whole
//! and the inference is cheap while the old list is short. Measured with
//! `CIB_file` on an empty site, 10,000 primitives and 7,500 `rsc_ticket`s:
//! the patch 3.9 s, the modify 6.4 s, `cibadmin --replace -o resources`
//! 3.6 s.

use std::collections::HashSet;

use crate::patch::MAX_CREATES_IN_PLACE;
use crate::xml::Element;
use crate::IdMap;

/// What [`guarded_modify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Modify {
    /// The configurations and statuses are identical: nothing to write.
    Unchanged,
    /// The document for `cibadmin --modify --xml-file F`.
    Xml(String),
    /// A modify cannot make `old` into `new` (why): write a patch.
    Unsupported(String),
}

/// The guarded `cibadmin --modify` document that turns the CIB `old` into
/// `new` (both whole CIBs, `<cib>` roots).
///
/// Its root carries `old`'s `admin_epoch` and `epoch` (the guard, see the
/// module documentation). `new`'s `<cib>` attributes must be `old`'s but
/// for `epoch` and `num_updates`, which Pacemaker sets itself: the modify
/// leaves the CIB at `old`'s `epoch` + 1 (`num_updates` 0).
///
/// Returns [`Modify::Unsupported`] when `old`'s version is not readable,
/// the `<cib>` attributes change otherwise, or the change deletes or
/// reorders an element, removes or reorders an attribute, changes text,
/// holds an increment value, creates an element a lookup would confuse
/// with another, or creates more than [`MAX_CREATES_IN_PLACE`] children
/// of one element.
pub fn guarded_modify(old: &Element, new: &Element) -> Modify {
    match plan(old, new) {
        Ok(None) => Modify::Unchanged,
        Ok(Some(doc)) => Modify::Xml(doc.to_xml()),
        Err(reason) => Modify::Unsupported(reason),
    }
}

/// The document's tree (`None`: nothing to write), or why there is none.
fn plan(old: &Element, new: &Element) -> Result<Option<Element>, String> {
    for root in [old, new] {
        if root.name != "cib" {
            return Err(format!("root element is <{}>, not <cib>", root.name));
        }
    }
    let mut guard = Element::new("cib");
    for field in ["admin_epoch", "epoch"] {
        match old.attr(field) {
            Some(v)
                if !v.is_empty()
                    && v.bytes().all(|b| b.is_ascii_digit())
                    && v.parse::<i32>().is_ok() =>
            {
                guard.set_attr(field, v);
            }
            Some(v) => return Err(format!("<cib {field}=\"{v}\"> is not a version number")),
            None => return Err(format!("<cib> has no {field}")),
        }
    }
    let counters = |e: &Element| -> Vec<(String, String)> {
        e.attrs
            .iter()
            .filter(|(k, _)| k != "epoch" && k != "num_updates")
            .cloned()
            .collect()
    };
    if counters(old) != counters(new) {
        return Err("the <cib> element's attributes change beyond epoch and num_updates".into());
    }
    if old.text != new.text {
        return Err("the text of /cib differs".into());
    }
    if old.children == new.children {
        return Ok(None);
    }
    children(old, new, "/cib", &mut guard)?;
    Ok(Some(guard))
}

/// How Pacemaker looks an element of the document up among the children
/// of its counterpart (`pcmk__xml_update`): tag and `id`, else tag and
/// `id-ref`, else the tag alone; the first child that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lookup<'a> {
    Id(&'a str, &'a str),
    IdRef(&'a str, &'a str),
    Tag(&'a str),
}

/// The lookup Pacemaker makes for `el`.
fn lookup(el: &Element) -> Lookup<'_> {
    match (el.id(), el.attr("id-ref")) {
        (Some(id), _) => Lookup::Id(&el.name, id),
        (None, Some(r)) => Lookup::IdRef(&el.name, r),
        (None, None) => Lookup::Tag(&el.name),
    }
}

/// Every lookup that finds `el` (when no earlier sibling matches first).
fn found_by(el: &Element) -> impl Iterator<Item = Lookup<'_>> {
    let id = el.id().map(|id| Lookup::Id(&el.name, id));
    let idref = el.attr("id-ref").map(|r| Lookup::IdRef(&el.name, r));
    id.into_iter().chain(idref).chain([Lookup::Tag(&el.name)])
}

/// Which child each lookup finds first among `children`.
fn first_matches(children: &[Element]) -> IdMap<Lookup<'_>, usize> {
    let mut first = IdMap::default();
    for (i, c) in children.iter().enumerate() {
        for l in found_by(c) {
            first.entry(l).or_insert(i);
        }
    }
    first
}

/// Appends to `out` (the document's counterpart of `old`, at `path`) the
/// elements that turn the children of `old` into those of `new`.
fn children(old: &Element, new: &Element, path: &str, out: &mut Element) -> Result<(), String> {
    let first = first_matches(&old.children);
    // What the creations add to the list, found by later lookups.
    let mut created: IdMap<Lookup<'_>, usize> = IdMap::default();
    let mut paired = vec![false; old.children.len()];
    let mut last_kept: Option<usize> = None;
    let mut creating = false;
    let mut creates = 0;
    for c in &new.children {
        let l = lookup(c);
        if let Some(&j) = created.get(&l) {
            return Err(format!(
                "{path}: <{}> would update the <{}> created just before it",
                describe(c),
                describe(&new.children[j])
            ));
        }
        match first.get(&l) {
            Some(&i) => {
                if creating {
                    return Err(format!(
                        "{path}: new children come before <{}>",
                        describe(c)
                    ));
                }
                if paired[i] || last_kept.is_some_and(|k| i < k) {
                    return Err(format!(
                        "{path}: the children are reordered or repeated at <{}>",
                        describe(c)
                    ));
                }
                paired[i] = true;
                last_kept = Some(i);
                let was = &old.children[i];
                if was != c {
                    let child_path = format!("{path}/{}", describe(c));
                    out.children.push(update(was, c, &child_path)?);
                }
            }
            None => {
                creating = true;
                creates += 1;
                if creates > MAX_CREATES_IN_PLACE {
                    return Err(format!(
                        "{path} gets more than {MAX_CREATES_IN_PLACE} new children (cheaper as a patch)"
                    ));
                }
                let child_path = format!("{path}/{}", describe(c));
                creatable(c, &child_path)?;
                for f in found_by(c) {
                    created.entry(f).or_insert(out.children.len());
                }
                out.children.push(c.clone());
            }
        }
    }
    if let Some(i) = paired.iter().position(|p| !p) {
        return Err(format!(
            "{path}: <{}> is deleted",
            describe(&old.children[i])
        ));
    }
    Ok(())
}

/// The document's element for `was` (kept) becoming `now`: its lookup
/// attributes alone, or all of `now`'s when they changed; and the updates
/// of its children.
fn update(was: &Element, now: &Element, path: &str) -> Result<Element, String> {
    if was.text != now.text {
        return Err(format!("the text of {path} differs"));
    }
    let mut el = Element::new(now.name.clone());
    if was.attrs == now.attrs {
        // Only what the lookup needs: set to their own values, they
        // change nothing.
        match lookup(now) {
            Lookup::Id(_, id) => el.set_attr("id", id),
            Lookup::IdRef(_, r) => el.set_attr("id-ref", r),
            Lookup::Tag(_) => {}
        }
    } else {
        let kept = was.attrs.len();
        if now.attrs.len() < kept
            || was
                .attrs
                .iter()
                .zip(&now.attrs)
                .any(|((a, _), (b, _))| a != b)
        {
            return Err(format!("{path}: an attribute is removed or reordered"));
        }
        el.attrs.clone_from(&now.attrs);
    }
    for (k, v) in &el.attrs {
        if was.attr(k).is_some() && is_increment(k, v) {
            return Err(format!("{path}: {k}=\"{v}\" would be read as an increment"));
        }
    }
    if was.children != now.children {
        children(was, now, path, &mut el)?;
    }
    Ok(el)
}

/// Checks that `el`, created whole, comes out as it is: no child a lookup
/// would take for an earlier sibling, and no text (Pacemaker drops it).
fn creatable(el: &Element, path: &str) -> Result<(), String> {
    if !el.text.is_empty() {
        return Err(format!("{path} holds text"));
    }
    let mut seen: HashSet<Lookup<'_>> = HashSet::new();
    for c in &el.children {
        if seen.contains(&lookup(c)) {
            return Err(format!(
                "{path}: <{}> would update an earlier sibling",
                describe(c)
            ));
        }
        seen.extend(found_by(c));
        creatable(c, &format!("{path}/{}", describe(c)))?;
    }
    Ok(())
}

/// Whether Pacemaker reads `value` of attribute `name` as an increment of
/// the old value (`expand_plus_plus`): `name++` or `name+=…`.
fn is_increment(name: &str, value: &str) -> bool {
    value
        .strip_prefix(name)
        .is_some_and(|rest| rest.starts_with("++") || rest.starts_with("+="))
}

/// `tag` or `tag id="…"`, for messages.
fn describe(el: &Element) -> String {
    match el.id() {
        Some(id) => format!("{} id=\"{id}\"", el.name),
        None => el.name.clone(),
    }
}

#[cfg(test)]
mod tests;
