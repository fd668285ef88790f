//! Checks that a configuration fragment stands on its own: unique ids and no
//! reference to an id it does not contain.
//!
//! Run on every scope after transforms, before anything is merged: a
//! transform that drops a resource still named by a constraint, or renames an
//! id twice, is caught here with the element named.


use crate::cib::{constraint_refs, CONSTRAINT_KINDS};
use crate::error::Error;
use crate::xml::Element;
use crate::IdMap;
use crate::canonical::{for_each_canonical_child, walk_canonical};

/// Verifies that ids are unique within `fragment` and that every reference
/// (constraint resource names, `resource_ref`, `obj_ref`, `template`,
/// `id-ref`) names an id inside it.
pub fn check_fragment(fragment: &Element) -> Result<(), Error> {
    check_fragments(&[fragment])
}

/// [`check_fragment`] over several subtrees taken together (the sections
/// of a configuration, say). Elements are visited in canonical order, so
/// the error reported (the first one met) does not depend on the order of
/// unordered elements, nor on the tree.
pub fn check_fragments(fragments: &[&Element]) -> Result<(), Error> {
    let ids = unique_ids(fragments)?;
    let mut result = Ok(());
    for f in fragments {
        check_refs(f, None, &ids, &mut result);
    }
    result
}

/// Map of every id in the subtrees to the name of the element carrying it;
/// an error on the first duplicate in canonical order, so that the same
/// one is reported whatever the order of the tree's unordered elements.
pub fn unique_ids<'a>(roots: &[&'a Element]) -> Result<IdMap<&'a str, &'a str>, Error> {
    let mut ids: IdMap<&str, &str> = IdMap::default();
    let mut dup = None;
    for root in roots {
        walk_canonical(root, &mut |el| {
            // `resource_ref` and `obj_ref` carry the id they point at, not their own.
            let name = el.name.as_str();
            if name == "resource_ref" || name == "obj_ref" || dup.is_some() {
                return;
            }
            if let Some(id) = el.id() {
                if let Some(first) = ids.insert(id, name) {
                    dup = Some(Error::DuplicateId {
                        id: id.to_string(),
                        first: first.to_string(),
                        second: name.to_string(),
                    });
                }
            }
        });
    }
    match dup {
        Some(e) => Err(e),
        None => Ok(ids),
    }
}

fn check_refs<'a>(el: &'a Element, owner: Option<&'a Element>, ids: &IdMap<&str, &str>, result: &mut Result<(), Error>) {
    if result.is_err() {
        return;
    }
    let name = el.name.as_str();
    let owner = if el.id().is_some() && name != "resource_ref" && name != "obj_ref" {
        Some(el)
    } else {
        owner
    };
    let unknown = |attr: &str, target: &str| Error::UnknownRef {
        element: owner.map_or(name, |o| o.name.as_str()).to_string(),
        owner: owner.and_then(|o| o.id()).unwrap_or("").to_string(),
        attr: attr.to_string(),
        target: target.to_string(),
    };
    let mut refs: Vec<(&str, &'a str)> = Vec::new();
    if CONSTRAINT_KINDS.contains(&name) {
        refs.extend(constraint_refs(el).filter(|(a, _)| *a != "resource_ref").map(|(a, t)| (a as &str, t)));
    }
    match name {
        "resource_ref" | "obj_ref" => refs.extend(el.id().map(|id| (name, id))),
        "primitive" => refs.extend(el.attr("template").map(|t| ("template", t))),
        _ => {}
    }
    refs.extend(el.attr("id-ref").map(|t| ("id-ref", t)));
    for (attr, target) in refs {
        if !ids.contains_key(target) {
            *result = Err(unknown(attr, target));
            return;
        }
    }
    for_each_canonical_child(el, |c| check_refs(c, owner, ids, result));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn accepts_closed_fragment() {
        let f = parse(r#"<configuration><resources><primitive id="a"/><primitive id="b" template="t"/><template id="t"/></resources>
            <constraints><rsc_order id="o" first="a" then="b"/><rsc_ticket id="k" ticket="T"><resource_set id="s"><resource_ref id="a"/></resource_set></rsc_ticket></constraints>
            <tags><tag id="g"><obj_ref id="a"/></tag></tags></configuration>"#).unwrap();
        check_fragment(&f).unwrap();
    }

    #[test]
    fn names_unknown_reference_and_its_owner() {
        let f = parse(r#"<configuration><resources><primitive id="a"/></resources>
            <constraints><rsc_ticket id="k" ticket="T"><resource_set id="s"><resource_ref id="vip"/></resource_set></rsc_ticket></constraints></configuration>"#).unwrap();
        let err = check_fragment(&f).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<resource_set id=\"s\"> attribute resource_ref: unknown id `vip`"
        );
        let f = parse(r#"<configuration><resources><primitive id="a"/></resources><constraints><rsc_order id="o" first="a" then="gone"/></constraints></configuration>"#).unwrap();
        assert!(matches!(check_fragment(&f), Err(Error::UnknownRef { owner, target, .. }) if owner == "o" && target == "gone"));
    }

    #[test]
    fn refuses_duplicate_ids() {
        let f = parse(r#"<configuration><resources><primitive id="a"/><group id="g"><primitive id="a"/></group></resources></configuration>"#).unwrap();
        assert!(matches!(check_fragment(&f), Err(Error::DuplicateId { id, .. }) if id == "a"));
    }

    #[test]
    fn the_duplicate_reported_does_not_depend_on_the_order_of_the_tree() {
        // Two duplicates (`x` and `m`); the primitives in either order.
        let one = r#"<primitive id="p1"><operations><op id="x" name="monitor" interval="10s"/></operations></primitive>"#;
        let two = r#"<primitive id="p2"><operations><op id="x" name="monitor" interval="20s"/></operations><meta_attributes id="m"/></primitive>"#;
        let three = r#"<primitive id="p3"><meta_attributes id="m"/></primitive>"#;
        let mut reported = Vec::new();
        for order in [[one, two, three], [three, two, one], [two, three, one]] {
            let f = parse(&format!("<configuration><resources>{}</resources></configuration>", order.concat())).unwrap();
            reported.push(check_fragment(&f).unwrap_err().to_string());
        }
        assert!(reported.iter().all(|r| *r == reported[0]), "{reported:?}");
        // Without duplicates, every id is known whatever the order.
        let f = parse(&format!("<configuration><resources>{one}{three}</resources></configuration>")).unwrap();
        let ids = unique_ids(&[&f]).unwrap();
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert_eq!(ids.get("m"), Some(&"meta_attributes"));
    }
}
