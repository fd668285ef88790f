//! The value rewrites: `ip`, `path` and `regex` rules, applied to the
//! attribute values of a configuration (never to ids, references or names:
//! [`REFERENCE_ATTRS`]), and the change lines they report.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use regex::Regex;

use super::structure::{at_path_mut, find_path, owner_along};
use crate::xml::Element;

/// Attributes that the value-rewriting rules (`ip`, `path`, `regex`) never
/// rewrite, because they hold ids, references to ids, or names:
///
/// - `id`: the element's own id (in `<obj_ref>` and `<resource_ref>`, the id
///   of the referenced element);
/// - `id-ref`: reference to a shared rule, nvset or operations element;
/// - `rsc`, `with-rsc`, `first`, `then`: resources referenced by constraints;
/// - `rsc-pattern`: regular expression over resource ids (`rsc_location`);
/// - `ticket`: ticket name (`rsc_ticket`);
/// - `template`: template a primitive is built from;
/// - `node`: node name (`rsc_location`), a name even when it looks like an
///   address.
pub const REFERENCE_ATTRS: &[&str] = &[
    "id",
    "id-ref",
    "rsc",
    "with-rsc",
    "first",
    "then",
    "ticket",
    "template",
    "node",
    "rsc-pattern",
];

/// Whether `name` is one of [`REFERENCE_ATTRS`].
pub(super) fn is_reference_attr(name: &str) -> bool {
    matches!(
        name,
        "id" | "id-ref" | "rsc" | "with-rsc" | "first" | "then" | "ticket" | "template" | "node" | "rsc-pattern"
    )
}

/// Elements whose `id` attribute references another element instead of
/// naming themselves.
pub(super) const REF_ID_ELEMENTS: &[&str] = &["obj_ref", "resource_ref"];

/// Elements that `set` accepts as its `resource`.
pub(super) const RESOURCE_ELEMENTS: &[&str] = &[
    "primitive",
    "group",
    "clone",
    "master",
    "bundle",
    "template",
];

/// Whether `name` names the owner of what changes inside it (the list
/// `OWNER_ELEMENTS` of the tests, as a `match`: called for
/// every element a value rule visits).
pub(super) fn is_owner_name(name: &str) -> bool {
    matches!(
        name,
        "primitive"
            | "group"
            | "clone"
            | "master"
            | "bundle"
            | "template"
            | "rsc_location"
            | "rsc_colocation"
            | "rsc_order"
            | "rsc_ticket"
            | "tag"
    )
}

/// Elements named in change lines as the owner of what changed inside them
/// ([`is_owner_name`] is the same list as a `match`).
#[cfg(test)]
pub(super) const OWNER_ELEMENTS: &[&str] = &[
    "primitive",
    "group",
    "clone",
    "master",
    "bundle",
    "template",
    "rsc_location",
    "rsc_colocation",
    "rsc_order",
    "rsc_ticket",
    "tag",
];

/// Characters that end a path token (besides whitespace).
pub(super) const PATH_SEPARATORS: &str = ",;:='\"()[]{}<>|&";

/// Longest text form of an IP address
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
pub(super) const MAX_ADDR_LEN: usize = 45;

/// One value rewrite, ready to run: which attributes it reads and what it
/// makes of a value (reference attributes are never given to it).
pub(super) enum Rewrite<'r> {
    Ip {
        from: &'r IpNet,
        to: &'r IpNet,
    },
    Path {
        from: &'r str,
        to: &'r str,
    },
    Regex {
        re: &'r Regex,
        replace: &'r str,
        attributes: Option<&'r [String]>,
    },
}

impl Rewrite<'_> {
    /// Whether the rewrite reads attribute `attr` (not a reference one).
    fn accepts(&self, attr: &str) -> bool {
        match self {
            Rewrite::Regex {
                attributes: Some(only), ..
            } => only.iter().any(|n| n == attr),
            _ => true,
        }
    }

    /// The rewritten value, or `None` when the rewrite does not apply.
    fn edit(&self, v: &str) -> Option<String> {
        match self {
            Rewrite::Ip { from, to } => remap_ips(v, from, to),
            Rewrite::Path { from, to } => {
                if !v.contains(*from) {
                    return None;
                }
                rewrite_paths(v, from, to)
            }
            Rewrite::Regex { re, replace, .. } => Some(re.replace_all(v, *replace).into_owned()),
        }
    }
}

// ---------------------------------------------------------------------------
// Value rewriting (ip, path, regex)

/// Rewrites, with `edit`, the values of every attribute accepted by
/// `attr_ok` (reference attributes never) in the subtree of the element
/// named `scope`, or in the whole tree.
pub(super) fn rewrite_values(config: &mut Element, scope: Option<&str>, rewrite: &Rewrite<'_>) -> Result<Vec<String>, String> {
    let (path, owner) = match scope {
        None => (Vec::new(), None),
        Some(id) => {
            let path = find_path(config, id)
                .ok_or_else(|| format!("`resource`: no element with id `{id}`"))?;
            let owner = match path.split_last() {
                Some((_, ancestors)) => owner_along(config, ancestors),
                None => None,
            };
            (path, owner)
        }
    };
    let mut changes = Vec::new();
    let start = at_path_mut(config, &path);
    let owner = owner.as_deref().map_or(Owner::None, Owner::Text);
    rewrite_element(start, owner, rewrite, &mut changes);
    Ok(changes)
}

/// Who owns the changes inside an element, rendered only when a change is
/// reported.
#[derive(Clone, Copy)]
pub(super) enum Owner<'a> {
    /// No owner element above.
    None,
    /// Already rendered ("primitive `vip`").
    Text(&'a str),
    /// An owner element, by name and id.
    Element { name: &'a str, id: Option<&'a str> },
}

/// Appends how a change line names an element to `out`: "primitive
/// `vip`", or only its name when it has no id.
pub(super) fn push_described(out: &mut String, name: &str, id: Option<&str>) {
    out.push_str(name);
    if let Some(id) = id {
        out.push_str(" `");
        out.push_str(id);
        out.push('`');
    }
}

/// [`rewrite_values`] on one element and its descendants. Location strings
/// are built only for the values that change.
pub(super) fn rewrite_element(el: &mut Element, owner: Owner<'_>, rewrite: &Rewrite<'_>, changes: &mut Vec<String>) {
    let Element {
        name: el_name,
        attrs,
        children,
        ..
    } = el;
    let here = Here::new(el_name, owner);
    for i in 0..attrs.len() {
        let (name, value) = &attrs[i];
        if is_reference_attr(name) || !rewrite.accepts(name) {
            continue;
        }
        let Some(new) = rewrite.edit(value).filter(|new| new != value) else {
            continue;
        };
        let id = attrs.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str());
        changes.push(here.line("", id, name, value, &new));
        attrs[i].1 = new;
    }
    let child_owner = if here.is_owner() {
        let id = attrs.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str());
        Owner::Element { name: el_name, id }
    } else {
        owner
    };
    for child in children.iter_mut() {
        rewrite_element(child, child_owner, rewrite, changes);
    }
}

/// How the change lines of one element name it: its location ("primitive
/// `vip` nvpair `vip-ip`"), written into each line.
pub(super) struct Here<'o> {
    name: &'o str,
    owner: Owner<'o>,
}

impl<'o> Here<'o> {
    fn new(name: &'o str, owner: Owner<'o>) -> Here<'o> {
        Here { name, owner }
    }

    /// Whether the element names the owner of what changes inside it.
    fn is_owner(&self) -> bool {
        is_owner_name(self.name)
    }

    /// The change line of attribute `attr` going from `value` to `new`.
    /// `prefix` (the rule, for lines written here in their final form) goes
    /// first when not empty.
    ///
    /// (Built with `push_str` into one string of the right size: a rule
    /// that rewrites every address of a large CIB writes thousands of
    /// lines.)
    fn line(&self, prefix: &str, id: Option<&str>, attr: &str, value: &str, new: &str) -> String {
        let owner = match self.owner {
            _ if self.is_owner() => None,
            Owner::None => None,
            Owner::Text(t) => Some((t, None)),
            Owner::Element { name, id } => Some((name, Some(id))),
        };
        let described = |name: &str, id: Option<&str>| name.len() + id.map_or(0, |id| id.len() + 3);
        let len = prefix.len()
            + owner.map_or(0, |(name, id)| described(name, id.flatten()) + 1)
            + described(self.name, id)
            + attr.len()
            + value.len()
            + new.len()
            + 24;
        let mut line = String::with_capacity(len);
        if !prefix.is_empty() {
            line.push_str(prefix);
            line.push_str(": ");
        }
        match owner {
            None => {}
            // Already rendered.
            Some((text, None)) => line.push_str(text),
            Some((name, Some(id))) => push_described(&mut line, name, id),
        }
        if owner.is_some() {
            line.push(' ');
        }
        push_described(&mut line, self.name, id);
        if self.name == "nvpair" && attr == "value" {
            line.push_str(": ");
        } else {
            line.push_str(" attribute `");
            line.push_str(attr);
            line.push_str("`: ");
        }
        line.push_str(value);
        line.push_str(" -> ");
        line.push_str(new);
        line
    }
}

/// Maps `addr` into `to` keeping its host part, if it is inside `from`.
/// `from` and `to` have the same family and prefix length.
pub(super) fn remap(addr: IpAddr, from: &IpNet, to: &IpNet) -> Option<IpAddr> {
    if !from.contains(&addr) {
        return None;
    }
    match (addr, from.hostmask(), to.network()) {
        (IpAddr::V4(a), IpAddr::V4(mask), IpAddr::V4(net)) => Some(IpAddr::V4(Ipv4Addr::from(
            u32::from(net) | (u32::from(a) & u32::from(mask)),
        ))),
        (IpAddr::V6(a), IpAddr::V6(mask), IpAddr::V6(net)) => Some(IpAddr::V6(Ipv6Addr::from(
            u128::from(net) | (u128::from(a) & u128::from(mask)),
        ))),
        _ => None,
    }
}

/// Rewrites every complete address token of `value` that lies in `from`.
/// None when nothing was rewritten.
pub(super) fn remap_ips(value: &str, from: &IpNet, to: &IpNet) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < value.len() {
        let Some((end, addr)) = address_at(value, i) else {
            i += 1;
            continue;
        };
        if let Some(new) = remap(addr, from, to) {
            out.push_str(&value[copied..i]);
            out.push_str(&new.to_string());
            copied = end;
        }
        i = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

/// Part of a word: an address may not touch one.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || !b.is_ascii()
}

/// The address token starting at byte `i` of `value`, as (end, address).
///
/// A token starts at the beginning or after a non-word character other than
/// `.` (an IPv4 token may follow `:`, as in `tcp:1.2.3.4`), is the longest
/// text parsing as an address, and must end the value or be followed by a
/// non-word character (`.` only if no word follows it; `:` only after IPv4).
pub(super) fn address_at(value: &str, i: usize) -> Option<(usize, IpAddr)> {
    let bytes = value.as_bytes();
    let v4_only = match i.checked_sub(1).map(|p| bytes[p]) {
        None => false,
        Some(p) if is_word(p) || p == b'.' => return None,
        Some(p) => p == b':',
    };
    let run = bytes[i..]
        .iter()
        .take(MAX_ADDR_LEN)
        .take_while(|&&c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
        .count();
    (1..=run).rev().find_map(|len| {
        let end = i + len;
        let addr: IpAddr = value[i..end].parse().ok()?;
        let ok = !(v4_only && addr.is_ipv6()) && ends_token(bytes, end, addr.is_ipv6());
        ok.then_some((end, addr))
    })
}

/// Whether an address ending at byte `end` is a complete token.
pub(super) fn ends_token(bytes: &[u8], end: usize, v6: bool) -> bool {
    match bytes.get(end) {
        None => true,
        Some(&c) if is_word(c) => false,
        Some(b'.') => !bytes.get(end + 1).is_some_and(|&n| is_word(n)),
        Some(b':') => !v6,
        Some(_) => true,
    }
}

/// Whether `c` ends a path token.
pub(super) fn is_path_separator(c: char) -> bool {
    c.is_whitespace() || PATH_SEPARATORS.contains(c)
}

/// Rewrites every path token of `value` equal to `from` or under `from/`.
/// None when nothing was rewritten.
pub(super) fn rewrite_paths(value: &str, from: &str, to: &str) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    let mut changed = false;
    for (pos, _) in value.match_indices(from) {
        let end = pos + from.len();
        let before_ok = value[..pos]
            .chars()
            .next_back()
            .is_none_or(is_path_separator);
        let after = value[end..].chars().next();
        let after_ok = after.is_none_or(|c| c == '/' || is_path_separator(c));
        if !before_ok || !after_ok || pos < copied {
            continue;
        }
        out.push_str(&value[copied..pos]);
        // "/" + "/rest" must not become "//rest".
        if !(to == "/" && after == Some('/')) {
            out.push_str(to);
        }
        copied = end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

// ---------------------------------------------------------------------------
// set
