//! What this crate knows about the CIB schema: resource kinds, how
//! constraints name resources, versions and ticket state, and an index that
//! resolves any name a constraint can use to top-level resources.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::IdMap;
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
pub fn configuration(cib: &Element) -> Result<&Element, Error> {
    if cib.name.as_str() != "cib" {
        return Err(Error::NotCib(format!("root element is <{}>, expected <cib>", cib.name.as_str())));
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
pub fn version(cib: &Element) -> String {
    let get = |k| cib.attr(k).unwrap_or("0");
    format!("{}.{}.{}", get("admin_epoch"), get("epoch"), get("num_updates"))
}

/// The `<cib>` attributes that change exactly when the configuration does:
/// Pacemaker raises `epoch` (or an admin `admin_epoch`) with every change
/// of the configuration and, with the same change, stamps
/// `cib-last-written` and the `update-*` attributes (`cib_perform_op`);
/// a status update changes none of them (only `num_updates`). The stamps
/// also tell apart a whole-CIB replace that kept the version.
pub const CONFIGURATION_STAMPS: &[&str] = &[
    "admin_epoch",
    "epoch",
    "validate-with",
    "cib-last-written",
    "update-origin",
    "update-client",
    "update-user",
];

/// Whether the CIB whose `<cib>` element is `root` holds the same
/// configuration as the CIB `kept`: every [`CONFIGURATION_STAMPS`]
/// attribute equal (absent in both counts as equal).
#[must_use]
pub fn same_configuration(kept: &Element, root: &Element) -> bool {
    root.name == "cib" && kept.name == "cib" && CONFIGURATION_STAMPS.iter().all(|a| kept.attr(a) == root.attr(a))
}

/// The XPath of [`Stamps`], for `cibadmin --query --no-children --xpath`:
/// the `<cib>` element and each ticket state, without their children.
pub const STAMPS_XPATH: &str = "/cib|/cib/status/tickets/ticket_state";

/// What a CIB's `<cib>` element and ticket states say, without its
/// configuration or the rest of its status: one small query on a live
/// cluster, whatever the CIB's size. Equal stamps, same configuration
/// version and ticket states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    /// The `<cib>` element, attributes only.
    pub root: Element,
    /// The `ticket_state` elements of `status/tickets`, attributes only,
    /// in document order.
    pub tickets: Vec<Element>,
}

impl Stamps {
    /// The stamps of a whole CIB.
    #[must_use]
    pub fn of_cib(cib: &Element) -> Stamps {
        let shallow = |e: &Element| Element {
            name: e.name.clone(),
            attrs: e.attrs.clone(),
            ..Element::default()
        };
        let tickets = cib
            .child("status")
            .and_then(|s| s.child("tickets"))
            .map(|t| t.children.iter().filter(|c| c.name == "ticket_state").map(shallow).collect())
            .unwrap_or_default();
        Stamps { root: shallow(cib), tickets }
    }

    /// The stamps from the answer to [`STAMPS_XPATH`]: the `<cib>` element
    /// alone when no ticket has a state, else an `<xpath-query>` holding
    /// it and the ticket states.
    ///
    /// # Errors
    ///
    /// [`Error::NotCib`] when the answer is neither.
    pub fn from_answer(answer: Element) -> Result<Stamps, Error> {
        match answer.name.as_str() {
            "cib" => Ok(Stamps {
                root: Element { children: Vec::new(), ..answer },
                tickets: Vec::new(),
            }),
            "xpath-query" => {
                let mut root = None;
                let mut tickets = Vec::new();
                for c in answer.children {
                    match c.name.as_str() {
                        "cib" if root.is_none() => root = Some(Element { children: Vec::new(), ..c }),
                        "ticket_state" => tickets.push(Element { children: Vec::new(), ..c }),
                        other => return Err(Error::NotCib(format!("unexpected <{other}> in the answer for the CIB's version and ticket states"))),
                    }
                }
                let root = root.ok_or_else(|| Error::NotCib("no <cib> in the answer for the CIB's version and ticket states".into()))?;
                Ok(Stamps { root, tickets })
            }
            other => Err(Error::NotCib(format!("<{other}> in answer for the CIB's version and ticket states"))),
        }
    }

    /// `status/tickets` as the stamps have it (`None`: no ticket state).
    #[must_use]
    pub fn tickets_element(&self) -> Option<Element> {
        (!self.tickets.is_empty()).then(|| Element {
            name: "tickets".into(),
            children: self.tickets.clone(),
            ..Element::default()
        })
    }

    /// The state of `ticket` as these stamps hold it ([`ticket_state`]).
    ///
    /// # Errors
    ///
    /// As [`ticket_state`].
    pub fn ticket_state(&self, ticket: &str) -> Result<TicketState, Error> {
        state_of(self.tickets.iter().find(|s| s.id() == Some(ticket)), ticket)
    }
}

/// The CIB `kept`, read whole earlier, brought up to the CIB as it is now,
/// whose `<cib>` element (attributes only) is `root` and whose
/// `status/tickets` is `tickets`: `root`'s attributes and `tickets` in
/// place of `kept`'s. `None` when the configuration is another one
/// ([`same_configuration`]): read the CIB whole.
///
/// The rest of `kept`'s status section stays as it was read: only the
/// ticket states and the version are current.
#[must_use]
pub fn brought_up_to_date(mut kept: Element, root: &Element, tickets: Option<Element>) -> Option<Element> {
    if !same_configuration(&kept, root) {
        return None;
    }
    kept.attrs.clone_from(&root.attrs);
    match tickets {
        Some(t) => {
            let status = kept.child_or_insert("status");
            match status.child_mut("tickets") {
                Some(old) => *old = t,
                None => status.children.push(t),
            }
        }
        None => {
            if let Some(status) = kept.child_mut("status") {
                status.children.retain(|c| c.name != "tickets");
            }
        }
    }
    Some(kept)
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
///
/// # Errors
///
/// [`Error::BadTerm`] when the grant term (`term`, else `last-granted`) is
/// not a canonical unsigned decimal: such a value is never taken for "no
/// term" (which would turn the checks on terms off) nor read leniently.
pub fn ticket_state(cib: &Element, ticket: &str) -> Result<TicketState, Error> {
    state_of(ticket_state_element(cib, ticket), ticket)
}

/// What the `ticket_state` element `s` of `ticket` says (default: not
/// granted, when it is not recorded).
fn state_of(s: Option<&Element>, ticket: &str) -> Result<TicketState, Error> {
    let Some(s) = s else {
        return Ok(TicketState::default());
    };
    let term = match [("term", s.attr("term")), ("last-granted", s.attr("last-granted"))]
        .into_iter()
        .find_map(|(attr, value)| value.map(|v| (attr, v)))
    {
        None => None,
        Some((attr, value)) => Some(parse_number(value).ok_or_else(|| Error::BadTerm {
            ticket: ticket.to_string(),
            attr: attr.to_string(),
            value: value.to_string(),
        })?),
    };
    Ok(TicketState {
        granted: s.attr("granted") == Some("true"),
        term,
    })
}

/// `<status><tickets><ticket_state id=ticket>` of a full CIB, if recorded.
pub fn ticket_state_element<'a>(cib: &'a Element, ticket: &str) -> Option<&'a Element> {
    cib.child("status")
        .and_then(|s| s.child("tickets"))
        .and_then(|t| t.children.iter().find(|c| c.name == "ticket_state" && c.id() == Some(ticket)))
}

/// A canonical unsigned decimal that fits in 64 bits — digits only, no
/// sign, no leading zero (but `0` itself) — as every term and version
/// number of cib-replicator is written. `+5`, `05`, ` 5` are refused.
pub fn parse_number(value: &str) -> Option<u64> {
    let canonical = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) && (value == "0" || !value.starts_with('0'));
    if canonical {
        value.parse().ok()
    } else {
        None
    }
}

/// A CIB version `admin_epoch.epoch.num_updates`, each a canonical number
/// ([`parse_number`]); versions compare as the tuple.
pub fn parse_version(value: &str) -> Option<(u64, u64, u64)> {
    let mut parts = value.split('.').map(parse_number);
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Every resource name a constraint uses, with the attribute it came from
/// (`rsc`, `with-rsc`, `first`, `then` or `resource_ref`), in that order.
pub fn constraint_refs(constraint: &Element) -> impl Iterator<Item = (&'static str, &str)> {
    let direct = CONSTRAINT_REF_ATTRS
        .iter()
        .filter_map(move |attr| constraint.attr(attr).map(|v| (*attr, v)));
    let in_sets = constraint
        .children.iter()
        .filter(|c| c.name.as_str() == "resource_set")
        .flat_map(|set| set.children.iter().filter(|c| c.name.as_str() == "resource_ref"))
        .filter_map(|r| r.id().map(|id| ("resource_ref", id)));
    direct.chain(in_sets)
}

/// Whether a primitive is a fencing device.
pub fn is_stonith(el: &Element) -> bool {
    el.name.as_str() == "primitive" && el.attr("class") == Some("stonith")
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
pub struct Top<'a> {
    /// The element.
    pub node: &'a Element,
    /// Its position among the children of `<resources>`.
    pub position: usize,
}

/// Lookup tables over one `<configuration>`, of either tree ([`Node`]).
#[derive(Debug)]
pub struct Index<'a> {
    /// Top-level resources and templates by id, with their position among
    /// the children of `<resources>` (the last one, for a duplicated id).
    pub top: IdMap<&'a str, Top<'a>>,
    /// Any resource id (nested ones included) → id of its top-level element.
    pub top_of: IdMap<&'a str, &'a str>,
    /// Template id → top-level ids of the resources whose primitives use it.
    pub template_users: IdMap<&'a str, BTreeSet<&'a str>>,
    /// Tag id → the ids it lists.
    pub tags: IdMap<&'a str, Vec<&'a str>>,
    /// Top-level ids that are, or contain, a fencing device.
    pub fencing: BTreeSet<&'a str>,
}

impl<'a> Index<'a> {
    /// Builds the index of a `<configuration>` element.
    pub fn new(config: &'a Element) -> Index<'a> {
        Index::of_sections(config.child("resources"), config.child("tags"))
    }

    /// Builds the index from a configuration's `<resources>` and `<tags>`.
    pub fn of_sections(resources: Option<&'a Element>, tags: Option<&'a Element>) -> Index<'a> {
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
            let n = resources.children.len();
            ix.top.reserve(n);
            ix.top_of.reserve(2 * n);
            for (position, top) in resources.children.iter().enumerate() {
                let Some(top_id) = top.id() else { continue };
                if !TOP_LEVEL_RESOURCES.contains(&top.name.as_str()) {
                    continue;
                }
                ix.top.insert(top_id, Top { node: top, position });
                ix.add_resources(top, top_id);
            }
            // A primitive is a fencing device through its template too.
            let fencing_templates: Vec<&'a str> = ix.fencing.iter().copied().filter(|id| ix.top.get(id).is_some_and(|t| t.node.name == "template")).collect();
            for t in fencing_templates {
                if let Some(users) = ix.template_users.get(t) {
                    ix.fencing.extend(users.iter().copied());
                }
            }
        }
        if let Some(tags) = tags {
            for tag in tags.children.iter().filter(|t| t.name.as_str() == "tag") {
                if let Some(id) = tag.id() {
                    let refs = tag
                        .children.iter()
                        .filter(|c| c.name.as_str() == "obj_ref")
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
    fn add_resources(&mut self, el: &'a Element, top_id: &'a str) {
        let name = el.name.as_str();
        if !RESOURCE_KINDS.contains(&name) && name != "template" {
            return;
        }
        if let Some(id) = el.id() {
            self.top_of.insert(id, top_id);
        }
        if el.attr("class") == Some("stonith") {
            self.fencing.insert(top_id);
        }
        if name == "primitive" {
            if let Some(t) = el.attr("template") {
                self.template_users.entry(t).or_default().insert(top_id);
            }
        }
        if matches!(name, "group" | "clone" | "master" | "bundle") {
            for c in el.children.iter() {
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
    /// Tags listing tags are followed with a work list, each once, so that
    /// neither a cycle nor a long chain can exhaust the stack.
    pub fn resolve_with(&self, name: &str, out: &mut Resolved<'a>) -> bool {
        out.tops.clear();
        out.tags.clear();
        let mut pending: Vec<&'a str> = Vec::new();
        if !self.resolve_one(name, out, &mut pending) {
            return false;
        }
        let mut seen: BTreeSet<&'a str> = out.tags.iter().copied().collect();
        while let Some(m) = pending.pop() {
            // A tag already followed adds nothing; names that are neither
            // resources nor tags (e.g. constraints) add nothing either.
            if self.tags.contains_key(m) && !seen.insert(m) {
                continue;
            }
            self.resolve_one(m, out, &mut pending);
        }
        out.tops.sort_unstable();
        out.tops.dedup();
        out.tags.sort_unstable();
        out.tags.dedup();
        true
    }

    /// Adds what `name` covers directly to `out`, and a tag's members to
    /// `pending`: whether `name` is a resource, template or tag.
    fn resolve_one(&self, name: &str, out: &mut Resolved<'a>, pending: &mut Vec<&'a str>) -> bool {
        if let Some(top) = self.top_of.get(name) {
            out.tops.push(top);
            if let Some(users) = self.template_users.get(name) {
                out.tops.extend(users.iter().copied());
            }
            return true;
        }
        if let Some((tag, members)) = self.tags.get_key_value(name) {
            out.tags.push(tag);
            pending.extend(members.iter().copied());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    const KEPT: &str = r#"<cib admin_epoch="0" epoch="7" num_updates="3" validate-with="pacemaker-3.9" cib-last-written="Sun Dec  6 13:00:00 2026" update-client="cibadmin"><configuration><resources><primitive id="a" class="ocf" provider="pacemaker" type="Dummy"/></resources></configuration><status><node_state id="1" uname="n1"/><tickets><ticket_state id="geo" granted="false"/></tickets></status></cib>"#;

    fn root(attrs: &str) -> Element {
        parse(&format!("<cib {attrs}/>")).unwrap()
    }

    #[test]
    fn a_kept_cib_is_brought_up_to_date_when_only_the_status_moved_on() {
        let kept = parse(KEPT).unwrap();
        let now = root(r#"admin_epoch="0" epoch="7" num_updates="40" validate-with="pacemaker-3.9" cib-last-written="Sun Dec  6 13:00:00 2026" update-client="cibadmin" have-quorum="1""#);
        let tickets = parse(r#"<tickets><ticket_state id="geo" granted="true" booth-cfg-name="booth"/></tickets>"#).unwrap();
        let got = brought_up_to_date(kept.clone(), &now, Some(tickets.clone())).expect("same configuration");
        assert_eq!(got.attrs, now.attrs, "the <cib> attributes are the current ones");
        assert!(ticket_state(&got, "geo").unwrap().granted, "the ticket states are the current ones");
        assert_eq!(got.child("configuration"), kept.child("configuration"));
        let status = got.child("status").unwrap();
        assert_eq!(status.children.len(), 2, "the tickets replaced, not added: {status:?}");
        assert_eq!(status.child("node_state"), kept.child("status").unwrap().child("node_state"));

        // No tickets any more: none kept either; none before: added.
        let none = brought_up_to_date(kept.clone(), &now, None).unwrap();
        assert!(none.child("status").unwrap().child("tickets").is_none());
        let bare = parse(r#"<cib admin_epoch="0" epoch="7" validate-with="pacemaker-3.9" cib-last-written="Sun Dec  6 13:00:00 2026" update-client="cibadmin"><configuration/></cib>"#).unwrap();
        let added = brought_up_to_date(bare, &now, Some(tickets.clone())).unwrap();
        assert_eq!(added.child("status").and_then(|s| s.child("tickets")), Some(&tickets));
    }

    #[test]
    fn stamps_of_a_cib_and_of_the_query_answer_agree() {
        let cib = parse(KEPT).unwrap();
        let of_cib = Stamps::of_cib(&cib);
        assert_eq!(of_cib.root.attrs, cib.attrs);
        assert!(of_cib.root.children.is_empty());
        // What cibadmin answers: the <cib> and each state, children left out.
        let answer = parse(r#"<xpath-query><cib admin_epoch="0" epoch="7" num_updates="3" validate-with="pacemaker-3.9" cib-last-written="Sun Dec  6 13:00:00 2026" update-client="cibadmin"/><ticket_state id="geo" granted="false"/></xpath-query>"#).unwrap();
        assert_eq!(Stamps::from_answer(answer).unwrap(), of_cib);
        assert_eq!(of_cib.tickets_element().unwrap().children.len(), 1);
        // A ticket's state reads the same from the stamps as from the CIB.
        let granted = parse(&KEPT.replace(r#"granted="false""#, r#"granted="true" term="9""#)).unwrap();
        for (stamps, cib) in [(&of_cib, &cib), (&Stamps::of_cib(&granted), &granted)] {
            assert_eq!(stamps.ticket_state("geo"), ticket_state(cib, "geo"));
            assert_eq!(stamps.ticket_state("other"), Ok(TicketState::default()));
        }
        assert_eq!(Stamps::of_cib(&granted).ticket_state("geo"), Ok(TicketState { granted: true, term: Some(9) }));

        // No ticket state: the <cib> alone, no <tickets>.
        let bare = parse(r#"<cib epoch="1"><configuration/><status><tickets/></status></cib>"#).unwrap();
        let stamps = Stamps::from_answer(parse(r#"<cib epoch="1"/>"#).unwrap()).unwrap();
        assert_eq!(stamps, Stamps::of_cib(&bare));
        assert_eq!(stamps.tickets_element(), None);

        for bad in [r#"<configuration/>"#, r#"<xpath-query><ticket_state id="geo"/></xpath-query>"#, r#"<xpath-query><cib/><node_state id="1"/></xpath-query>"#] {
            assert!(Stamps::from_answer(parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_kept_cib_of_another_configuration_is_not_used() {
        let kept = parse(KEPT).unwrap();
        let base = r#"admin_epoch="0" epoch="7" validate-with="pacemaker-3.9" cib-last-written="Sun Dec  6 13:00:00 2026" update-client="cibadmin""#;
        assert!(brought_up_to_date(kept.clone(), &root(base), None).is_some());
        for (what, from, to) in [
            ("epoch", r#"epoch="7""#, r#"epoch="8""#),
            ("admin_epoch", r#"admin_epoch="0""#, r#"admin_epoch="1""#),
            ("schema", "pacemaker-3.9", "pacemaker-3.10"),
            ("a replace that kept the version", "13:00:00", "13:00:01"),
            ("another client", r#"update-client="cibadmin""#, r#"update-client="crm_resource""#),
            ("a stamp added", r#"update-client="cibadmin""#, r#"update-client="cibadmin" update-user="root""#),
        ] {
            let now = root(&base.replace(from, to));
            assert!(brought_up_to_date(kept.clone(), &now, None).is_none(), "{what}");
        }
        assert!(brought_up_to_date(kept, &parse("<configuration/>").unwrap(), None).is_none(), "not a <cib>");
    }

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

    #[test]
    fn numbers_and_versions_are_canonical() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "+5", "05", " 5", "5 ", "-1", "1e3", "18446744073709551616", "x"] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
        assert_eq!(parse_version("0.12.3"), Some((0, 12, 3)));
        assert!(parse_version("0.12") .is_none() && parse_version("0.12.3.4").is_none() && parse_version("0.+1.2").is_none());
        let cib = parse(r#"<cib><status><tickets><ticket_state id="t" granted="true" term="+5"/></tickets></status></cib>"#).unwrap();
        assert!(matches!(ticket_state(&cib, "t"), Err(Error::BadTerm { .. })));
        let cib = parse(r#"<cib><status><tickets><ticket_state id="t" granted="true" last-granted="17"/></tickets></status></cib>"#).unwrap();
        assert_eq!(ticket_state(&cib, "t"), Ok(TicketState { granted: true, term: Some(17) }));
    }

    #[test]
    fn fencing_through_a_template_is_fencing() {
        let config = parse(
            r#"<configuration><resources>
              <primitive id="fp" template="ft"/>
              <template id="ft" class="stonith" type="fence_dummy"/>
              <primitive id="d" class="ocf" provider="pacemaker" type="Dummy"/>
            </resources></configuration>"#,
        )
        .unwrap();
        let ix = Index::new(&config);
        assert!(ix.fencing.contains("fp") && ix.fencing.contains("ft"), "{:?}", ix.fencing);
        assert!(!ix.fencing.contains("d"));
    }

    #[test]
    fn long_and_cyclic_tag_chains_resolve_without_recursion() {
        let n = 200_000;
        let mut tags = String::new();
        for i in 0..n {
            tags.push_str(&format!(r#"<tag id="t{i}"><obj_ref id="t{}"/></tag>"#, (i + 1) % n));
        }
        let src = format!(r#"<configuration><resources><primitive id="a"/></resources><tags>{tags}<tag id="x"><obj_ref id="t0"/><obj_ref id="a"/></tag></tags></configuration>"#);
        let config = parse(&src).unwrap();
        let ix = Index::new(&config);
        let r = ix.resolve("x").unwrap();
        assert_eq!(r.tops, ["a"]);
        assert_eq!(r.tags.len(), n + 1);
        assert!(ix.resolve("nope").is_none());
    }
}
