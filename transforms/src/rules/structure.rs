//! The structural rules — `set` (one nvpair of one resource) and `drop`
//! (an element by id) — and the tree helpers every rule uses to find an
//! element by id and name it in change lines.

use std::collections::HashSet;

use super::values::{is_owner_name, REF_ID_ELEMENTS, RESOURCE_ELEMENTS};
use super::NvKind;
use crate::xml::Element;

// ---------------------------------------------------------------------------
// Tree helpers

/// Whether `el` is named by `id` (its `id` attribute is its own, not a
/// reference).
pub(super) fn carries_id(el: &Element, id: &str) -> bool {
    el.id() == Some(id) && !REF_ID_ELEMENTS.contains(&el.name.as_str())
}

/// Child-index path from `root` to the element named `id` (empty if `root`
/// itself), in document order.
pub(super) fn find_path(root: &Element, id: &str) -> Option<Vec<usize>> {
    if carries_id(root, id) {
        return Some(Vec::new());
    }
    for (i, child) in root.children.iter().enumerate() {
        if let Some(mut path) = find_path(child, id) {
            path.insert(0, i);
            return Some(path);
        }
    }
    None
}

/// The element at a path returned by [`find_path`].
pub(super) fn at_path_mut<'a>(mut el: &'a mut Element, path: &[usize]) -> &'a mut Element {
    for &i in path {
        el = &mut el.children[i];
    }
    el
}

/// Every element id in the tree (references excluded).
pub(super) fn collect_ids(root: &Element) -> HashSet<String> {
    let mut ids = HashSet::new();
    root.walk(&mut |el| {
        if let Some(id) = el.id() {
            if !REF_ID_ELEMENTS.contains(&el.name.as_str()) {
                ids.insert(id.to_string());
            }
        }
    });
    ids
}

/// "primitive `vip`", or just "operations" for an element without id.
pub(super) fn describe(el: &Element) -> String {
    match el.id() {
        Some(id) => format!("{} `{id}`", el.name),
        None => el.name.clone(),
    }
}

/// Whether `el` names the owner of changes inside it.
pub(super) fn is_owner(el: &Element) -> bool {
    is_owner_name(&el.name)
}

/// "primitive `vip` nvpair `vip-ip`": the element prefixed by its owner.
pub(super) fn location(el: &Element, owner: Option<&str>) -> String {
    match owner {
        Some(owner) if !is_owner(el) => format!("{owner} {}", describe(el)),
        _ => describe(el),
    }
}

/// The innermost owner among `root` and the elements along `path`.
pub(super) fn owner_along(root: &Element, path: &[usize]) -> Option<String> {
    let mut el = root;
    let mut owner = is_owner(el).then(|| describe(el));
    for &i in path {
        el = &el.children[i];
        if is_owner(el) {
            owner = Some(describe(el));
        }
    }
    owner
}

/// Sets nvpair `name` of `resource`'s own `kind` sets to `value`, adding it
/// (and the set) when missing.
pub(super) fn set_nvpair(
    config: &mut Element,
    resource: &str,
    name: &str,
    value: &str,
    kind: NvKind,
) -> Result<Vec<String>, String> {
    let path =
        find_path(config, resource).ok_or_else(|| format!("no resource with id `{resource}`"))?;
    let ids = collect_ids(config);
    let rsc = at_path_mut(config, &path);
    check_set_target(rsc, resource, kind)?;
    let here = describe(rsc);
    let set_name = kind.element();
    let mut changes = Vec::new();
    let mut found = false;
    for set in rsc.children.iter_mut().filter(|c| c.name == set_name) {
        for nv in set
            .children
            .iter_mut()
            .filter(|c| c.name == "nvpair" && c.attr("name") == Some(name))
        {
            found = true;
            let old = nv.attr("value").unwrap_or("(unset)").to_string();
            if nv.attr("value") != Some(value) {
                let nv_desc = nv.id().unwrap_or(name);
                changes.push(format!("{here} nvpair `{nv_desc}`: {old} -> {value}"));
                nv.set_attr("value", value);
            }
        }
    }
    if found {
        return Ok(changes);
    }
    add_nvpair(rsc, &ids, name, value, kind).map(|c| vec![format!("{here} {c}")])
}

/// `set` applies to resources only, and utilization to primitives and
/// templates only (the schema allows it nowhere else).
pub(super) fn check_set_target(rsc: &Element, resource: &str, kind: NvKind) -> Result<(), String> {
    if !RESOURCE_ELEMENTS.contains(&rsc.name.as_str()) {
        return Err(format!("`{resource}` is a <{}>, not a resource", rsc.name));
    }
    if kind == NvKind::Utilization && rsc.name != "primitive" && rsc.name != "template" {
        return Err(format!(
            "`{resource}` is a <{}>: only primitives and templates have utilization",
            rsc.name
        ));
    }
    Ok(())
}

/// Adds nvpair `name` to the first own `kind` set of `rsc` (not an `id-ref`
/// one), creating the set if there is none. Returns the change description.
pub(super) fn add_nvpair(
    rsc: &mut Element,
    ids: &HashSet<String>,
    name: &str,
    value: &str,
    kind: NvKind,
) -> Result<String, String> {
    let set_name = kind.element();
    let rsc_id = rsc.id().unwrap_or_default().to_string();
    let default_set_id = format!("{rsc_id}-{set_name}");
    let existing = rsc
        .children
        .iter()
        .position(|c| c.name == set_name && c.attr("id-ref").is_none());
    let set_id = existing
        .and_then(|p| rsc.children[p].id())
        .unwrap_or(&default_set_id)
        .to_string();
    let nv_id = format!("{set_id}-{}", sanitize_id(name));
    if existing.is_none() && ids.contains(&set_id) {
        return Err(format!(
            "cannot create {set_name} `{set_id}` for `{rsc_id}`: that id is already used"
        ));
    }
    if ids.contains(&nv_id) {
        return Err(format!(
            "cannot add nvpair `{name}` to `{rsc_id}`: its id `{nv_id}` is already used"
        ));
    }
    let nvpair = Element::new("nvpair")
        .with_attr("id", nv_id.as_str())
        .with_attr("name", name)
        .with_attr("value", value);
    let created = match existing {
        Some(p) => {
            rsc.children[p].children.push(nvpair);
            ""
        }
        None => {
            let set = Element::new(set_name)
                .with_attr("id", set_id.as_str())
                .with_child(nvpair);
            let at = rsc.children.iter().rposition(is_nvset).map_or(0, |p| p + 1);
            rsc.children.insert(at, set);
            "new "
        }
    };
    Ok(format!(
        "nvpair `{nv_id}` (added to {created}{set_name} `{set_id}`): (unset) -> {value}"
    ))
}

/// Whether `el` is an attribute set of a resource.
pub(super) fn is_nvset(el: &Element) -> bool {
    matches!(
        el.name.as_str(),
        "instance_attributes" | "meta_attributes" | "utilization"
    )
}

/// Replaces characters not allowed in an XML id by `.`.
pub(super) fn sanitize_id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// drop

/// Removes the element named `id`.
pub(super) fn drop_element(config: &mut Element, id: &str, missing_ok: bool) -> Result<Vec<String>, String> {
    let Some(path) = find_path(config, id) else {
        return if missing_ok {
            Ok(Vec::new())
        } else {
            Err(format!("drop: no element with id `{id}`"))
        };
    };
    let Some((&last, ancestors)) = path.split_last() else {
        return Err(format!("drop: `{id}` is the root element"));
    };
    let owner = owner_along(config, ancestors);
    let parent = at_path_mut(config, ancestors);
    let removed = parent.children.remove(last);
    Ok(vec![format!(
        "{}: removed",
        location(&removed, owner.as_deref())
    )])
}
