//! What this crate knows about the CIB schema: resource kinds, how
//! constraints name resources, versions and ticket state, and an index that
//! resolves any name a constraint can use to top-level resources.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::IdMap;
use crate::node::Node;
use crate::xml::Element;

/// Elements that may appear directly under `<resources>`.
pub const TOP_LEVEL_RESOURCES: &[&str] = &["primitive", "group", "clone", "master", "bundle", "template"];

/// Elements that are resources (at any depth).
pub const RESOURCE_KINDS: &[&str] = &["primitive", "group", "clone", "master", "bundle"];

/// Constraint elements.
pub const CONSTRAINT_KINDS: &[&str] = &["rsc_location", "rsc_colocation", "rsc_order", "rsc_ticket"];

/// Attributes through which a constraint names a resource (or tag, or template).
pub const CONSTRAINT_REF_ATTRS: &[&str] = &["rsc", "with-rsc", "first", "then"];

/// The `<configuration>` child of a `<cib>`.
/// (Of either tree: `&Element` or a [`crate::doc::DocNode`].)
pub fn configuration<'a, N: Node<'a>>(cib: N) -> Result<N, Error> {
    if cib.name() != "cib" {
        return Err(Error::NotCib(format!("root element is <{}>, expected <cib>", cib.name())));
    }
    cib.child("configuration")
        .ok_or_else(|| Error::NotCib("<cib> has no <configuration>".into()))
}

/// The `<configuration>` child of a `<cib>`, mutably.
pub fn configuration_mut(cib: &mut Element) -> Result<&mut Element, Error> {
    if cib.name != "cib" {
        return Err(Error::NotCib(format!("root element is <{}>, expected <cib>", cib.name)));
    }
    cib.child_mut("configuration")
        .ok_or_else(|| Error::NotCib("<cib> has no <configuration>".into()))
}

/// `admin_epoch.epoch.num_updates` of a `<cib>`, e.g. `0.42.7`.
pub fn version<'a, N: Node<'a>>(cib: N) -> String {
    let get = |k| cib.attr(k).unwrap_or("0");
    format!("{}.{}.{}", get("admin_epoch"), get("epoch"), get("num_updates"))
}

/// The state of one ticket as recorded in `<status><tickets>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketState {
    /// Whether the ticket is granted to this site.
    pub granted: bool,
    /// The grant's generation: booth's `term` if present, else `last-granted`.
    pub term: Option<u64>,
}

/// Reads the state of ticket `ticket` from a full CIB (default: not granted).
pub fn ticket_state<'a, N: Node<'a>>(cib: N, ticket: &str) -> TicketState {
    let state = cib
        .child("status")
        .and_then(|s| s.child("tickets"))
        .and_then(|t| t.children().find(|c| c.name() == "ticket_state" && c.id() == Some(ticket)));
    match state {
        None => TicketState::default(),
        Some(s) => TicketState {
            granted: s.attr("granted") == Some("true"),
            term: s
                .attr("term")
                .or_else(|| s.attr("last-granted"))
                .and_then(|v| v.parse().ok()),
        },
    }
}

/// Every resource name a constraint uses, with the attribute it came from
/// (`rsc`, `with-rsc`, `first`, `then` or `resource_ref`), in that order.
pub fn constraint_refs<'a, N: Node<'a>>(constraint: N) -> impl Iterator<Item = (&'static str, &'a str)> {
    let direct = CONSTRAINT_REF_ATTRS
        .iter()
        .filter_map(move |attr| constraint.attr(attr).map(|v| (*attr, v)));
    let in_sets = constraint
        .children()
        .filter(|c| c.name() == "resource_set")
        .flat_map(|set| set.children().filter(|c| c.name() == "resource_ref"))
        .filter_map(|r| r.id().map(|id| ("resource_ref", id)));
    direct.chain(in_sets)
}

/// Whether a primitive is a fencing device.
pub fn is_stonith<'a, N: Node<'a>>(el: N) -> bool {
    el.name() == "primitive" && el.attr("class") == Some("stonith")
}

/// What a name used by a constraint stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved<'a> {
    /// Top-level resource (or template) ids the name covers, sorted, each
    /// once.
    pub tops: Vec<&'a str>,
    /// Tags crossed on the way, sorted, each once.
    pub tags: Vec<&'a str>,
}

/// A top-level element of `<resources>` in an [`Index`].
#[derive(Debug, Clone, Copy)]
pub struct Top<N> {
    /// The element.
    pub node: N,
    /// Its position among the children of `<resources>`.
    pub position: usize,
}

/// Lookup tables over one `<configuration>`, of either tree ([`Node`]).
#[derive(Debug)]
pub struct Index<'a, N = &'a Element> {
    /// Top-level resources and templates by id, with their position among
    /// the children of `<resources>` (the last one, for a duplicated id).
    pub top: IdMap<&'a str, Top<N>>,
    /// Any resource id (nested ones included) → id of its top-level element.
    pub top_of: IdMap<&'a str, &'a str>,
    /// Template id → top-level ids of the resources whose primitives use it.
    pub template_users: IdMap<&'a str, BTreeSet<&'a str>>,
    /// Tag id → the ids it lists.
    pub tags: IdMap<&'a str, Vec<&'a str>>,
    /// Top-level ids that are, or contain, a fencing device.
    pub fencing: BTreeSet<&'a str>,
}

impl<'a, N: Node<'a>> Index<'a, N> {
    /// Builds the index of a `<configuration>` element.
    pub fn new(config: N) -> Index<'a, N> {
        Index::of_sections(config.child("resources"), config.child("tags"))
    }

    /// Builds the index from a configuration's `<resources>` and `<tags>`.
    pub fn of_sections(resources: Option<N>, tags: Option<N>) -> Index<'a, N> {
        let mut ix = Index {
            top: IdMap::default(),
            top_of: IdMap::default(),
            template_users: IdMap::default(),
            tags: IdMap::default(),
            fencing: BTreeSet::new(),
        };
        if let Some(resources) = resources {
            // Sized up front: growing tables of ten thousand entries costs
            // more than filling them.
            let n = resources.children().count();
            ix.top.reserve(n);
            ix.top_of.reserve(2 * n);
            for (position, top) in resources.children().enumerate() {
                let Some(top_id) = top.id() else { continue };
                if !TOP_LEVEL_RESOURCES.contains(&top.name()) {
                    continue;
                }
                ix.top.insert(top_id, Top { node: top, position });
                ix.add_resources(top, top_id);
            }
        }
        if let Some(tags) = tags {
            for tag in tags.children().filter(|t| t.name() == "tag") {
                if let Some(id) = tag.id() {
                    let refs = tag
                        .children()
                        .filter(|c| c.name() == "obj_ref")
                        .filter_map(|c| c.id())
                        .collect();
                    ix.tags.insert(id, refs);
                }
            }
        }
        ix
    }

    /// Records `el` (a top-level element or a resource inside one) and the
    /// resources it contains, under the top-level id `top_id`. Only
    /// resources contain resources (a group its primitives, a clone or
    /// bundle its group or primitive): attribute sets and operations are
    /// not searched.
    fn add_resources(&mut self, el: N, top_id: &'a str) {
        let name = el.name();
        if !RESOURCE_KINDS.contains(&name) && name != "template" {
            return;
        }
        if let Some(id) = el.id() {
            self.top_of.insert(id, top_id);
        }
        if name == "primitive" {
            if el.attr("class") == Some("stonith") {
                self.fencing.insert(top_id);
            }
            if let Some(t) = el.attr("template") {
                self.template_users.entry(t).or_default().insert(top_id);
            }
        }
        if matches!(name, "group" | "clone" | "master" | "bundle") {
            for c in el.children() {
                self.add_resources(c, top_id);
            }
        }
    }

    /// Resolves a name used by a constraint to the top-level elements it
    /// covers: a resource brings its top-level element, a template brings
    /// itself and every resource using it, a tag brings what its members
    /// bring. `None` when the name is none of these.
    pub fn resolve(&self, name: &str) -> Option<Resolved<'a>> {
        let mut out = Resolved::default();
        self.resolve_with(name, &mut out).then_some(out)
    }

    /// [`Index::resolve`] into `out`, whose vectors are reused (a scope
    /// resolves every name of every constraint): whether `name` is known.
    pub fn resolve_with(&self, name: &str, out: &mut Resolved<'a>) -> bool {
        out.tops.clear();
        out.tags.clear();
        // Most names are a resource: the set of tags seen stays empty, and
        // allocates nothing.
        let found = self.resolve_into(name, out, &mut BTreeSet::new());
        out.tops.sort_unstable();
        out.tops.dedup();
        out.tags.sort_unstable();
        out.tags.dedup();
        found
    }

    fn resolve_into<'n>(&self, name: &'n str, out: &mut Resolved<'a>, seen: &mut BTreeSet<&'n str>) -> bool
    where
        'a: 'n,
    {
        if let Some(top) = self.top_of.get(name) {
            out.tops.push(top);
            if let Some(users) = self.template_users.get(name) {
                out.tops.extend(users.iter().copied());
            }
            return true;
        }
        if let Some((tag, members)) = self.tags.get_key_value(name) {
            // Tags may list each other: each is followed once.
            if !seen.insert(name) {
                return true;
            }
            out.tags.push(tag);
            for m in members.clone() {
                // Tags may list non-resources (e.g. constraints); those add nothing.
                self.resolve_into(m, out, seen);
            }
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn resolves_nested_tags_and_templates() {
        let config = parse(
            r#"<configuration><resources>
              <template id="t" class="ocf" provider="pacemaker" type="Dummy"/>
              <group id="g"><primitive id="a" template="t"/><primitive id="b" class="ocf" type="Dummy"/></group>
              <clone id="c"><primitive id="x" template="t"/></clone>
              <primitive id="f" class="stonith" type="fence_xvm"/>
            </resources>
            <tags><tag id="tg"><obj_ref id="b"/><obj_ref id="f"/></tag></tags></configuration>"#,
        )
        .unwrap();
        let ix = Index::new(&config);
        let r = ix.resolve("a").unwrap();
        assert_eq!(r.tops, ["g"]);
        let r = ix.resolve("t").unwrap();
        assert_eq!(r.tops, ["c", "g", "t"]);
        let r = ix.resolve("tg").unwrap();
        assert_eq!(r.tops, ["f", "g"]);
        assert_eq!(r.tags, ["tg"]);
        assert!(ix.fencing.contains("f"));
        assert!(ix.resolve("nope").is_none());
    }
}
