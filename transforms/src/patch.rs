//! Pacemaker's versioned format-2 patch between two whole CIBs, computed
//! natively (what `crm_diff --original OLD --new NEW` prints for
//! `cibadmin --patch`), without running a process.
//!
//! # How Pacemaker 2.1.5 applies a format-2 patch
//!
//! (`lib/common/patchset.c`: `xml_patch_version_check`, `search_v2_xpath`,
//! `apply_v2_patchset`.) The patch applies only if its `<source>` version
//! equals the CIB's `admin_epoch.epoch.num_updates` exactly, and some field
//! of `<target>` is greater. Each `<change path="…">` addresses one element
//! by a path of `tag` or `tag[@id='ID']` components, each step taking the
//! **first** child with that tag (and id). Changes are then applied in two
//! passes:
//!
//! 1. In document order, `delete` removes its element (a missing one is
//!    skipped), `modify` removes **all** attributes of its element and sets
//!    those of the element inside `<change-result>`, and `create` / `move`
//!    only resolve their element (a `move`d element is put at the end of its
//!    parent for now).
//! 2. The collected creates and moves, sorted stably by `position` (across
//!    all parents), are carried out in that order: a `create` inserts a copy
//!    of its child element before the child now at index `position` of its
//!    parent (or at the end), a `move` puts its element there.
//!
//! So a `position` is the element's index among its siblings in the patched
//! CIB, the siblings that are neither created nor moved must already stand
//! in their final relative order, and ascending positions rebuild the list
//! from its start. Positions count every node: comments, processing
//! instructions and text nodes too; whitespace-only text is dropped when
//! Pacemaker parses a CIB.
//!
//! # What is generated
//!
//! Like `crm_diff`: one `modify` per element whose attributes differ (the
//! `<change-list>` of `set` / `unset` is informational, the
//! `<change-result>` carries the complete new attribute set), `delete` for
//! elements gone, `create` with the whole new subtree, and `move` for the
//! fewest kept children (all but a longest increasing subsequence of their
//! new positions). Children are matched between the two CIBs by tag and id,
//! children without id by tag. Where a child list cannot be matched and
//! addressed unambiguously (duplicate tag and id among siblings, several
//! children with one tag without id, ids a path cannot carry), or an
//! element's text differs, the element holding them (addressable, since
//! its own siblings could be matched) is replaced as a whole (`delete` +
//! `create`). What even that cannot express
//! is [`Patch::Unsupported`], for the caller to fall back to `crm_diff`.

use crate::xml::writer::escape_text_into;
use crate::xml::{escape_attr_into, Element};
use crate::IdMap;

/// The position of a create that appends: past any child node, so that
/// Pacemaker adds the element after the last one (it inserts before the
/// child at the position given, and appends when there is none).
const APPEND: usize = i32::MAX as usize;

/// The three `<cib>` attributes that make its version, in Pacemaker's order.
const VERSION_FIELDS: [&str; 3] = ["admin_epoch", "epoch", "num_updates"];

/// What [`versioned_patch`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Patch {
    /// The two CIBs are identical: there is nothing to apply.
    Unchanged,
    /// The patch: a `<diff format="2">` document for
    /// `cibadmin --patch --xml-file F`.
    Xml(String),
    /// The pair cannot be expressed faithfully by this generator (the
    /// reason); compute the patch with `crm_diff` instead.
    Unsupported(String),
}

/// The versioned format-2 patch that turns the CIB `old` into `new`.
///
/// `old` is the whole CIB (`<cib>` root, status included) parsed from
/// `old_text`, the text `cibadmin --query` printed (it is only searched
/// for the comments and processing instructions the parsed tree does not
/// keep but Pacemaker counts in positions); `new` is the whole CIB wanted. The
/// patch's source version is `old`'s, its target version `new`'s: the
/// caller bumps `epoch` in `new` (Pacemaker refuses a patch whose target is
/// not newer than its source, as it refuses one whose source is not the
/// CIB's current version).
///
/// Any difference is expressed, whether in `<cib>`'s attributes, the
/// configuration or the status, including the order of children and of
/// attributes. (Element text is expressed too, by replacing the element,
/// but Pacemaker strips every text node from the CIB after each operation,
/// whichever patch brought it.)
///
/// Returns [`Patch::Unsupported`] when:
///
/// - a root is not `<cib>`, or `admin_epoch`, `epoch` or `num_updates` of
///   either root is missing or not a decimal integer in Pacemaker's range;
/// - `old_text` holds a comment or a processing instruction (after the
///   XML declaration), or an element of `old` has an `xml:space` attribute
///   (whitespace text is kept), while the patch moves an element or creates
///   one amid its siblings: those nodes count in Pacemaker's positions and
///   the parsed tree does not keep them. Deletes, modifies and creates at
///   the end of a child list (written with a position past every node, so
///   Pacemaker appends) are expressed in spite of them;
/// - the text directly inside `<cib>` differs, or a child list of `<cib>`
///   itself cannot be matched and addressed (e.g. two `<configuration>`),
///   since the root cannot be replaced.
pub fn versioned_patch(old_text: &str, old: &Element, new: &Element) -> Patch {
    match plan(old_text, old, new) {
        Ok(None) => Patch::Unchanged,
        Ok(Some(changes)) => Patch::Xml(render(old, new, &changes)),
        Err(reason) => Patch::Unsupported(reason),
    }
}

/// The changes from `old` to `new` (`None`: identical), or why they cannot
/// be expressed.
fn plan<'a>(old_text: &str, old: &'a Element, new: &'a Element) -> Result<Option<Vec<Change<'a>>>, String> {
    for root in [old, new] {
        if root.name != "cib" {
            return Err(format!("root element is <{}>, not <cib>", root.name));
        }
        for field in VERSION_FIELDS {
            match root.attr(field) {
                Some(v) if is_version_number(v) => {}
                Some(v) => return Err(format!("<cib {field}=\"{v}\"> is not a version number")),
                None => return Err(format!("<cib> has no {field}")),
            }
        }
    }
    let mut planner = Planner { changes: Vec::new() };
    planner
        .pair(old, new, "/cib".into())
        .map_err(|Replace(reason)| format!("<cib> cannot be replaced: {reason}"))?;
    if planner.changes.is_empty() {
        return Ok(None);
    }
    // Deletes and modifies do not depend on positions; creates and moves
    // do, except a create at the end of its parent's children, which is
    // written with a position past any node so that it is appended.
    let places = planner
        .changes
        .iter()
        .any(|c| matches!(c, Change::Create { appended: false, .. } | Change::Move { .. }));
    let mut space = false;
    old.walk(&mut |e| space |= e.attr("xml:space").is_some());
    let hidden_nodes = space || old_text.contains("<!--") || has_processing_instruction(old_text);
    if hidden_nodes {
        for c in &mut planner.changes {
            if let Change::Create { position, appended: true, .. } = c {
                *position = APPEND;
            }
        }
    }
    if places {
        if space {
            return Err("an element has an xml:space attribute (whitespace text would be kept and count in child positions), and the patch places children".into());
        }
        if hidden_nodes {
            return Err("the CIB holds comments or processing instructions, which Pacemaker counts in child positions (the parsed tree does not keep them), and the patch places children".into());
        }
    }
    Ok(Some(planner.changes))
}

/// Whether `v` is what Pacemaker reads as a version field: decimal digits,
/// at most `i32::MAX` (it parses an `int`).
fn is_version_number(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<i32>().is_ok()
}

/// Whether `text` holds a processing instruction other than the XML
/// declaration (the parsed tree drops both). Errs on the safe side: `<?`
/// inside a CDATA section also counts.
pub fn has_processing_instruction(text: &str) -> bool {
    let mut rest = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if let Some(decl) = rest.strip_prefix("<?xml") {
        if decl.starts_with([' ', '\t', '\r', '\n', '?']) {
            rest = decl.split_once("?>").map_or("", |(_, after)| after);
        }
    }
    rest.contains("<?")
}

/// One change of the patch; paths are already built.
#[derive(Debug)]
enum Change<'a> {
    /// `delete` the element at `path`.
    Delete { path: String },
    /// `modify` the element at `path` from `old`'s attributes to `new`'s.
    Modify { path: String, old: &'a Element, new: &'a Element },
    /// `create` a copy of `el` under the element at `parent`, at `position`;
    /// `appended` when it and every sibling after it are created.
    Create { parent: String, position: usize, el: &'a Element, appended: bool },
    /// `move` the element at `path` to `position` among its siblings.
    Move { path: String, position: usize },
}

/// Most children created in place under one parent; past this, the parent
/// is replaced whole (one `delete` and one `create` of its new subtree).
/// Pacemaker 2.1.5's CIB manager applies a patch's creates one by one, in
/// time growing with the square of their number: the 2,300 creates of a
/// first replication of 2,500 primitives kept it busy for more than 30 s
/// on the live lab, until `pacemakerd` found it unresponsive and killed it.
/// One create of the whole section is applied in about the time of a
/// `cibadmin --replace` of it, in the same version-checked patch.
pub const MAX_CREATES_IN_PLACE: usize = 64;

/// An element whose change cannot be expressed in place: its parent must
/// replace it whole (why).
struct Replace(String);

/// A child's identity among its siblings: tag, and id if it has one.
type Key<'a> = (&'a str, Option<&'a str>);

struct Planner<'a> {
    changes: Vec<Change<'a>>,
}

impl<'a> Planner<'a> {
    /// The changes turning `old` into `new`, the element at `path` (which
    /// both are: same tag, and same id if any). On [`Replace`], changes
    /// already pushed for the subtree are left for the caller to drop.
    fn pair(&mut self, old: &'a Element, new: &'a Element, path: String) -> Result<(), Replace> {
        if old.text != new.text {
            return Err(Replace(format!("the text of {path} differs")));
        }
        if old.attrs != new.attrs {
            self.changes.push(Change::Modify {
                path: path.clone(),
                old,
                new,
            });
        }
        if old.children != new.children {
            self.children(old, new, &path)?;
        }
        Ok(())
    }

    /// The changes turning the children of `old` into those of `new`.
    fn children(&mut self, old: &'a Element, new: &'a Element, path: &str) -> Result<(), Replace> {
        let olds = &old.children;
        let news = &new.children;
        let mut old_keys: IdMap<Key<'a>, usize> = IdMap::default();
        let mut old_tags: IdMap<&'a str, usize> = IdMap::default();
        for c in olds {
            *old_keys.entry(key(c)).or_default() += 1;
            *old_tags.entry(c.name.as_str()).or_default() += 1;
        }
        // Every old child is addressed (kept ones may be modified or moved):
        // its path must select it, and only it, whatever else pass 1 did.
        let mut old_paths = Vec::with_capacity(olds.len());
        for c in olds {
            let k = key(c);
            let unique = old_keys[&k] == 1 && (k.1.is_some() || old_tags[k.0] == 1);
            match component(c) {
                Some(comp) if unique => old_paths.push(format!("{path}/{comp}")),
                Some(comp) => {
                    return Err(Replace(format!("{path} has several children {comp}")));
                }
                None => {
                    return Err(Replace(format!(
                        "{path} has a child <{}> whose tag or id a patch path cannot carry",
                        c.name
                    )));
                }
            }
        }
        // New children by key, when the key is unique among them.
        let mut new_index: IdMap<Key<'a>, Option<usize>> = IdMap::default();
        for (j, c) in news.iter().enumerate() {
            new_index
                .entry(key(c))
                .and_modify(|slot| *slot = None)
                .or_insert(Some(j));
        }

        // Match, and diff each matched pair that differs.
        let mut old_to_new: Vec<Option<usize>> = vec![None; olds.len()];
        let mut new_kept = vec![false; news.len()];
        for (i, c) in olds.iter().enumerate() {
            let Some(&Some(j)) = new_index.get(&key(c)) else { continue };
            if *c != news[j] {
                let mark = self.changes.len();
                if self.pair(c, &news[j], old_paths[i].clone()).is_err() {
                    self.changes.truncate(mark);
                    continue;
                }
            }
            old_to_new[i] = Some(j);
            new_kept[j] = true;
        }

        for (i, m) in old_to_new.iter().enumerate() {
            if m.is_none() {
                self.changes.push(Change::Delete {
                    path: old_paths[i].clone(),
                });
            }
        }
        let kept: Vec<(usize, usize)> = old_to_new
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.map(|j| (i, j)))
            .collect();
        let in_place = longest_increasing(&kept.iter().map(|&(_, j)| j).collect::<Vec<_>>());
        let mut placed = false;
        // From here on every new child is created: those are appends.
        let tail = new_kept.iter().rposition(|&k| k).map_or(0, |last| last + 1);
        for (j, c) in news.iter().enumerate() {
            if !new_kept[j] {
                placed = true;
                self.changes.push(Change::Create {
                    parent: path.to_owned(),
                    position: j,
                    el: c,
                    appended: j >= tail,
                });
            }
        }
        for (&(i, j), stays) in kept.iter().zip(in_place) {
            if !stays {
                placed = true;
                self.changes.push(Change::Move {
                    path: old_paths[i].clone(),
                    position: j,
                });
            }
        }
        if placed && !old.text.is_empty() {
            // The text nodes count in positions, and where they stand among
            // the children is not known.
            return Err(Replace(format!("{path} holds text and its children are reordered")));
        }
        let created = news.len() - new_kept.iter().filter(|&&k| k).count();
        if created > MAX_CREATES_IN_PLACE {
            return Err(Replace(format!("{path} gets {created} new children")));
        }
        Ok(())
    }
}

fn key(el: &Element) -> Key<'_> {
    (el.name.as_str(), el.id())
}

/// The path component selecting `el` among its siblings (`tag` or
/// `tag[@id='ID']`), or `None` when Pacemaker's path parser cannot carry
/// the tag or id: it splits components at `/`, reads the rest of a path up
/// to whitespace, the id up to `'`, and an empty id as none; and a step
/// `comment` can select a comment node.
fn component(el: &Element) -> Option<String> {
    if el.name == "comment" {
        return None;
    }
    let safe = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && !s
                .bytes()
                .any(|b| matches!(b, b'/' | b'\'' | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') || extra.contains(&b))
    };
    if !safe(&el.name, b"[") {
        return None;
    }
    match el.id() {
        None => Some(el.name.clone()),
        Some(id) if safe(id, b"") => Some(format!("{}[@id='{id}']", el.name)),
        Some(_) => None,
    }
}

/// For each element of `seq` (distinct values), whether it belongs to one
/// longest strictly increasing subsequence (patience sorting, O(n log n)).
fn longest_increasing(seq: &[usize]) -> Vec<bool> {
    // tails[k]: index in seq of the smallest tail of an increasing
    // subsequence of length k + 1; prev[i]: predecessor of seq[i] in the
    // best subsequence ending at i.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev = vec![usize::MAX; seq.len()];
    for (i, &v) in seq.iter().enumerate() {
        let k = tails.partition_point(|&t| seq[t] < v);
        if k > 0 {
            prev[i] = tails[k - 1];
        }
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut member = vec![false; seq.len()];
    let mut i = tails.last().copied().unwrap_or(usize::MAX);
    while i != usize::MAX {
        member[i] = true;
        i = prev[i];
    }
    member
}

/// The patch document: version, then deletes, then the other changes in
/// the order planned (parents before their descendants).
fn render(old: &Element, new: &Element, changes: &[Change<'_>]) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("<diff format=\"2\">\n  <version>\n");
    for (tag, root) in [("source", old), ("target", new)] {
        let attrs = VERSION_FIELDS.map(|f| (f, root.attr(f).unwrap_or("0")));
        empty_element(&mut out, 2, tag, &attrs);
    }
    out.push_str("  </version>\n");
    let deletes = changes.iter().filter(|c| matches!(c, Change::Delete { .. }));
    let others = changes.iter().filter(|c| !matches!(c, Change::Delete { .. }));
    for change in deletes.chain(others) {
        match change {
            Change::Delete { path } => {
                empty_element(&mut out, 1, "change", &[("operation", "delete"), ("path", path)]);
            }
            Change::Modify { path, old, new } => render_modify(&mut out, path, old, new),
            Change::Create { parent, position, el, .. } => {
                let position = position.to_string();
                start_tag(
                    &mut out,
                    1,
                    "change",
                    &[("operation", "create"), ("path", parent), ("position", &position)],
                );
                // Compact: the copied node is the first child of <change>,
                // and text keeps its exact value.
                write_compact(el, &mut out);
                out.push_str("</change>\n");
            }
            Change::Move { path, position } => {
                let position = position.to_string();
                empty_element(
                    &mut out,
                    1,
                    "change",
                    &[("operation", "move"), ("path", path), ("position", &position)],
                );
            }
        }
    }
    out.push_str("</diff>\n");
    out
}

/// A `modify` change: the attributes set or unset, and the whole new set.
fn render_modify(out: &mut String, path: &str, old: &Element, new: &Element) {
    start_tag(out, 1, "change", &[("operation", "modify"), ("path", path)]);
    out.push_str("\n    <change-list>\n");
    let mut listed = false;
    for (k, v) in &new.attrs {
        if old.attr(k) != Some(v.as_str()) {
            listed = true;
            empty_element(out, 3, "change-attr", &[("name", k), ("operation", "set"), ("value", v)]);
        }
    }
    for (k, _) in &old.attrs {
        if new.attr(k).is_none() {
            listed = true;
            empty_element(out, 3, "change-attr", &[("name", k), ("operation", "unset")]);
        }
    }
    if !listed {
        // Only the order changed: the result sets every attribute anew.
        for (k, v) in &new.attrs {
            empty_element(out, 3, "change-attr", &[("name", k), ("operation", "set"), ("value", v)]);
        }
    }
    out.push_str("    </change-list>\n    <change-result>\n");
    let attrs: Vec<(&str, &str)> = new.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    empty_element(out, 3, &new.name, &attrs);
    out.push_str("    </change-result>\n  </change>\n");
}

/// `<name a="v"…/>` on its own line, `depth` levels deep.
fn empty_element(out: &mut String, depth: usize, name: &str, attrs: &[(&str, &str)]) {
    open_tag(out, depth, name, attrs);
    out.push_str("/>\n");
}

/// `<name a="v"…>` indented `depth` levels (the caller writes the content
/// and the end tag).
fn start_tag(out: &mut String, depth: usize, name: &str, attrs: &[(&str, &str)]) {
    open_tag(out, depth, name, attrs);
    out.push('>');
}

/// `<name a="v"…` indented `depth` levels.
fn open_tag(out: &mut String, depth: usize, name: &str, attrs: &[(&str, &str)]) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr_into(v, out);
        out.push('"');
    }
}

/// `el` serialized without any whitespace between nodes (text first, as
/// [`Element::to_xml`] puts it).
fn write_compact(el: &Element, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr_into(v, out);
        out.push('"');
    }
    if el.children.is_empty() && el.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape_text_into(&el.text, out);
    for c in &el.children {
        write_compact(c, out);
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::{random_edit, random_element};
    use crate::xml::parse;

    // -----------------------------------------------------------------
    // A model of how Pacemaker 2.1.5 applies a format-2 patch
    // (apply_v2_patchset): nodes in an arena so that an element resolved
    // in pass 1 stays the same element whatever happens to its siblings,
    // and text as a node of its own, counted in positions.

    #[derive(Clone)]
    struct Node {
        name: String,
        attrs: Vec<(String, String)>,
        /// `Some` for a text node.
        text: Option<String>,
        children: Vec<usize>,
        parent: Option<usize>,
    }

    struct Doc {
        nodes: Vec<Node>,
        root: usize,
    }

    impl Doc {
        fn new(root: &Element) -> Doc {
            let mut doc = Doc { nodes: Vec::new(), root: 0 };
            doc.root = doc.add(root, None);
            doc
        }

        fn add(&mut self, el: &Element, parent: Option<usize>) -> usize {
            let id = self.nodes.len();
            self.nodes.push(Node {
                name: el.name.clone(),
                attrs: el.attrs.clone(),
                text: None,
                children: Vec::new(),
                parent,
            });
            if !el.text.is_empty() {
                let t = self.nodes.len();
                self.nodes.push(Node {
                    name: "text".into(),
                    attrs: Vec::new(),
                    text: Some(el.text.clone()),
                    children: Vec::new(),
                    parent: Some(id),
                });
                self.nodes[id].children.push(t);
            }
            for c in &el.children {
                let c = self.add(c, Some(id));
                self.nodes[id].children.push(c);
            }
            id
        }

        fn element(&self, id: usize) -> Element {
            let n = &self.nodes[id];
            let mut el = Element::new(n.name.clone());
            el.attrs = n.attrs.clone();
            for &c in &n.children {
                match &self.nodes[c].text {
                    Some(t) => el.text.push_str(t),
                    None => el.children.push(self.element(c)),
                }
            }
            el
        }

        /// search_v2_xpath: each step takes the first element child with
        /// that tag (and id).
        fn resolve(&self, path: &str) -> Option<usize> {
            let mut parts = path.strip_prefix('/')?.split('/');
            let (tag, id) = split_component(parts.next()?);
            if self.nodes[self.root].name != tag || id.is_some() {
                return None;
            }
            let mut at = self.root;
            for part in parts {
                let (tag, id) = split_component(part);
                at = *self.nodes[at].children.iter().find(|&&c| {
                    let n = &self.nodes[c];
                    n.text.is_none()
                        && n.name == tag
                        && id.is_none_or(|id| n.attrs.iter().any(|(k, v)| k == "id" && v == id))
                })?;
            }
            Some(at)
        }

        fn detach(&mut self, id: usize) {
            let p = self.nodes[id].parent.expect("not the root");
            self.nodes[p].children.retain(|&c| c != id);
        }

        fn index(&self, id: usize) -> usize {
            let p = self.nodes[id].parent.expect("not the root");
            self.nodes[p].children.iter().position(|&c| c == id).unwrap()
        }

        fn insert(&mut self, parent: usize, position: usize, id: usize) {
            let kids = &mut self.nodes[parent].children;
            kids.insert(position.min(kids.len()), id);
            self.nodes[id].parent = Some(parent);
        }

        fn version(&self) -> [i64; 3] {
            let n = &self.nodes[self.root];
            VERSION_FIELDS.map(|f| {
                n.attrs
                    .iter()
                    .find(|(k, _)| k == f)
                    .map_or(0, |(_, v)| v.parse().unwrap())
            })
        }
    }

    fn split_component(part: &str) -> (&str, Option<&str>) {
        match part.split_once("[@id='") {
            Some((tag, rest)) => (tag, Some(rest.split('\'').next().unwrap())),
            None => (part, None),
        }
    }

    /// Applies `patch` to `cib` as Pacemaker would, or says why it refuses.
    fn apply(cib: &Element, patch: &str) -> Result<Element, String> {
        let patch = parse(patch).map_err(|e| e.to_string())?;
        assert_eq!(patch.name, "diff");
        assert_eq!(patch.attr("format"), Some("2"));
        let mut doc = Doc::new(cib);
        let version = patch.child("version").ok_or("no version")?;
        let read = |tag: &str| VERSION_FIELDS.map(|f| version.child(tag).unwrap().attr(f).unwrap().parse::<i64>().unwrap());
        let (source, target) = (read("source"), read("target"));
        if doc.version() != source {
            return Err(format!("stale: CIB {:?}, patch source {source:?}", doc.version()));
        }
        if !(0..3).any(|i| target[i] > source[i]) {
            return Err("versions did not change".into());
        }
        let mut later = Vec::new();
        for change in &patch.children {
            let Some(op) = change.attr("operation") else { continue };
            let path = change.attr("path").unwrap();
            let found = doc.resolve(path);
            match (op, found) {
                ("delete", None) => {}
                (_, None) => return Err(format!("no match for {op} {path}")),
                ("delete", Some(m)) => doc.detach(m),
                ("modify", Some(m)) => {
                    let result = &change.child("change-result").unwrap().children[0];
                    doc.nodes[m].attrs = result.attrs.clone();
                }
                ("create", Some(m)) => later.push((change, m)),
                ("move", Some(m)) => {
                    let p = doc.nodes[m].parent.unwrap();
                    doc.detach(m);
                    doc.insert(p, usize::MAX, m);
                    later.push((change, m));
                }
                _ => return Err(format!("unknown operation {op}")),
            }
        }
        let position = |c: &Element| c.attr("position").unwrap().parse::<usize>().unwrap();
        later.sort_by_key(|(c, _)| position(c)); // stable, as g_list_sort
        for (change, m) in later {
            let pos = position(change);
            if change.attr("operation") == Some("create") {
                assert_eq!(change.children.len(), 1, "a create carries one element");
                let id = doc.add(&change.children[0], Some(m));
                doc.insert(m, pos, id);
            } else if doc.index(m) != pos {
                let p = doc.nodes[m].parent.unwrap();
                doc.detach(m);
                doc.insert(p, pos, m);
                if doc.index(m) != pos {
                    return Err(format!("moved to {} instead of {pos}", doc.index(m)));
                }
            }
        }
        Ok(doc.element(doc.root))
    }

    // -----------------------------------------------------------------
    // Helpers

    const OLD: &str = r#"<cib admin_epoch="0" epoch="5" num_updates="3" validate-with="pacemaker-3.9">
  <configuration>
    <crm_config/>
    <nodes/>
    <resources>
      <primitive id="p1" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="p1-ia">
          <nvpair id="p1-ip" name="ip" value="10.0.0.1"/>
          <nvpair id="p1-mask" name="cidr_netmask" value="24"/>
        </instance_attributes>
      </primitive>
      <primitive id="p2" class="ocf" provider="heartbeat" type="Dummy"/>
      <primitive id="p3" class="ocf" provider="heartbeat" type="Dummy"/>
      <primitive id="p4" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources>
    <constraints>
      <rsc_order id="o1" first="p1" then="p2"/>
    </constraints>
  </configuration>
  <status/>
</cib>
"#;

    fn old() -> Element {
        parse(OLD).unwrap()
    }

    /// `old` with `edit` applied to its `<configuration>` and epoch bumped.
    fn edited(edit: impl FnOnce(&mut Element)) -> Element {
        let mut new = old();
        new.set_attr("epoch", "6");
        edit(new.child_mut("configuration").unwrap());
        new
    }

    fn resources(config: &mut Element) -> &mut Element {
        config.child_mut("resources").unwrap()
    }

    fn dummy(id: &str) -> Element {
        Element::new("primitive")
            .with_attr("id", id)
            .with_attr("class", "ocf")
            .with_attr("provider", "heartbeat")
            .with_attr("type", "Dummy")
    }

    /// The patch from `old` to `new`, checked by applying it with the model.
    #[track_caller]
    fn patch(old_text: &str, old: &Element, new: &Element) -> String {
        let xml = match versioned_patch(old_text, old, new) {
            Patch::Xml(xml) => xml,
            other => panic!("expected a patch, got {other:?}"),
        };
        let applied = apply(old, &xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(applied, *new, "the patch does not produce the new CIB\n{xml}");
        xml
    }

    #[track_caller]
    fn patch_of(new: &Element) -> String {
        patch(OLD, &old(), new)
    }

    /// The `<change>` elements of a patch, as (operation, path, position).
    fn ops(xml: &str) -> Vec<(String, String, Option<usize>)> {
        parse(xml)
            .unwrap()
            .children
            .iter()
            .filter(|c| c.name == "change")
            .map(|c| {
                (
                    c.attr("operation").unwrap().to_owned(),
                    c.attr("path").unwrap().to_owned(),
                    c.attr("position").map(|p| p.parse().unwrap()),
                )
            })
            .collect()
    }

    fn op(o: &str, path: &str, position: Option<usize>) -> (String, String, Option<usize>) {
        (o.to_owned(), path.to_owned(), position)
    }

    const RES: &str = "/cib/configuration/resources";

    // -----------------------------------------------------------------
    // Cases

    #[test]
    fn unchanged_is_unchanged() {
        assert_eq!(versioned_patch(OLD, &old(), &old()), Patch::Unchanged);
    }

    #[test]
    fn epoch_only_is_one_modify_of_cib_with_all_its_attributes() {
        let new = edited(|_| {});
        let xml = patch_of(&new);
        assert_eq!(ops(&xml), vec![op("modify", "/cib", None)]);
        assert!(xml.contains(r#"<source admin_epoch="0" epoch="5" num_updates="3"/>"#), "{xml}");
        assert!(xml.contains(r#"<target admin_epoch="0" epoch="6" num_updates="3"/>"#), "{xml}");
        assert!(xml.contains(r#"<change-attr name="epoch" operation="set" value="6"/>"#), "{xml}");
        assert!(
            xml.contains(r#"<cib admin_epoch="0" epoch="6" num_updates="3" validate-with="pacemaker-3.9"/>"#),
            "{xml}"
        );
    }

    #[test]
    fn deep_attribute_set_and_unset_modify_only_that_element() {
        let new = edited(|c| {
            let nv = &mut resources(c).children[0].children[0].children[0];
            nv.set_attr("value", "10.0.0.9");
            nv.remove_attr("name");
            nv.set_attr("extra", "a\"b&c<d>\ne");
        });
        let xml = patch_of(&new);
        let path = format!("{RES}/primitive[@id='p1']/instance_attributes[@id='p1-ia']/nvpair[@id='p1-ip']");
        assert_eq!(ops(&xml), vec![op("modify", "/cib", None), op("modify", &path, None)]);
        assert!(xml.contains(r#"<change-attr name="value" operation="set" value="10.0.0.9"/>"#), "{xml}");
        assert!(xml.contains(r#"<change-attr name="name" operation="unset"/>"#), "{xml}");
        assert!(
            xml.contains(r#"<nvpair id="p1-ip" value="10.0.0.9" extra="a&quot;b&amp;c&lt;d&gt;&#10;e"/>"#),
            "{xml}"
        );
    }

    #[test]
    fn attribute_order_alone_is_a_modify() {
        let new = edited(|c| resources(c).children[1].attrs.reverse());
        let xml = patch_of(&new);
        assert_eq!(ops(&xml)[1], op("modify", &format!("{RES}/primitive[@id='p2']"), None));
    }

    #[test]
    fn adds_at_start_middle_and_end_are_creates_at_final_positions() {
        let new = edited(|c| {
            let r = resources(c);
            r.children.insert(0, dummy("n0"));
            r.children.insert(3, dummy("n3"));
            r.children.push(dummy("n6"));
        });
        let xml = patch_of(&new);
        assert_eq!(
            ops(&xml)[1..],
            [op("create", RES, Some(0)), op("create", RES, Some(3)), op("create", RES, Some(6))]
        );
        // The created element is the first node inside <change>.
        assert!(
            xml.contains(r#"position="3"><primitive id="n3" class="ocf" provider="heartbeat" type="Dummy"/></change>"#),
            "{xml}"
        );
    }

    #[test]
    fn deletes_address_the_element() {
        let new = edited(|c| {
            resources(c).children.remove(2);
            c.child_mut("constraints").unwrap().children.clear();
        });
        let xml = patch_of(&new);
        let mut got = ops(&xml);
        got.sort();
        assert_eq!(
            got,
            [
                op("delete", "/cib/configuration/constraints/rsc_order[@id='o1']", None),
                op("delete", &format!("{RES}/primitive[@id='p3']"), None),
                op("modify", "/cib", None),
            ]
        );
    }

    #[test]
    fn reorders_move_the_fewest_children() {
        // p4 to the front: one move, the others keep their relative order.
        let new = edited(|c| {
            let p4 = resources(c).children.pop().unwrap();
            resources(c).children.insert(0, p4);
        });
        assert_eq!(ops(&patch_of(&new))[1..], [op("move", &format!("{RES}/primitive[@id='p4']"), Some(0))]);

        // Swap of two: one move.
        let new = edited(|c| resources(c).children.swap(1, 2));
        assert_eq!(ops(&patch_of(&new)).len(), 2);

        // Full reversal of four: three moves.
        let new = edited(|c| resources(c).children.reverse());
        let xml = patch_of(&new);
        assert_eq!(ops(&xml).iter().filter(|o| o.0 == "move").count(), 3, "{xml}");
    }

    #[test]
    fn reorder_with_creates_deletes_and_modifies_together() {
        let new = edited(|c| {
            let r = resources(c);
            r.children.remove(1); // p2
            r.children.reverse(); // p4 p3 p1
            r.children.insert(1, dummy("n1"));
            r.children[0].set_attr("type", "Stateful");
            r.children[3].children[0].children.insert(1, Element::new("nvpair").with_attr("id", "p1-nic").with_attr("name", "nic").with_attr("value", "eth0"));
        });
        patch_of(&new);
    }

    #[test]
    fn nested_add_creates_inside_the_existing_element() {
        let new = edited(|c| {
            let ia = &mut resources(c).children[0].children[0];
            ia.children.insert(
                1,
                Element::new("nvpair")
                    .with_attr("id", "p1-nic")
                    .with_attr("name", "nic")
                    .with_attr("value", "eth0"),
            );
        });
        let xml = patch_of(&new);
        assert_eq!(
            ops(&xml)[1..],
            [op("create", &format!("{RES}/primitive[@id='p1']/instance_attributes[@id='p1-ia']"), Some(1))]
        );
    }

    #[test]
    fn a_new_subtree_is_one_create() {
        let new = edited(|c| {
            resources(c).children[1].children.push(
                Element::new("meta_attributes")
                    .with_attr("id", "p2-meta")
                    .with_child(Element::new("nvpair").with_attr("id", "p2-tr").with_attr("name", "target-role").with_attr("value", "Stopped")),
            );
        });
        let xml = patch_of(&new);
        assert_eq!(ops(&xml)[1..], [op("create", &format!("{RES}/primitive[@id='p2']"), Some(0))]);
    }

    #[test]
    fn many_new_children_replace_their_parent_in_one_create() {
        // At most MAX_CREATES_IN_PLACE creates under one parent...
        let few = edited(|c| {
            for i in 0..MAX_CREATES_IN_PLACE {
                resources(c).children.push(dummy(&format!("few-{i}")));
            }
        });
        let xml = patch_of(&few);
        assert_eq!(ops(&xml).iter().filter(|o| o.0 == "create").count(), MAX_CREATES_IN_PLACE);
        // ... one more, and the section is deleted and created whole; the
        // model applies it to exactly the new CIB (patch_of checks).
        let many = edited(|c| {
            for i in 0..=MAX_CREATES_IN_PLACE {
                resources(c).children.push(dummy(&format!("many-{i}")));
            }
        });
        let xml = patch_of(&many);
        let ops = ops(&xml);
        assert!(ops.contains(&op("delete", RES, None)), "{ops:?}");
        let creates: Vec<_> = ops.iter().filter(|o| o.0 == "create").collect();
        assert_eq!(creates.len(), 1, "{ops:?}");
        assert_eq!(creates[0].1, "/cib/configuration");
    }

    #[test]
    fn text_change_replaces_the_element() {
        let text_old = OLD.replace(
            r#"<rsc_order id="o1" first="p1" then="p2"/>"#,
            r#"<rsc_order id="o1" first="p1" then="p2"><note id="n">old text</note></rsc_order>"#,
        );
        let old = parse(&text_old).unwrap();
        let mut new = old.clone();
        new.set_attr("epoch", "6");
        let note = &mut new.children[0].child_mut("constraints").unwrap().children[0].children[0];
        note.text = "new & <text>".into();
        let xml = patch(&text_old, &old, &new);
        let path = "/cib/configuration/constraints/rsc_order[@id='o1']";
        assert_eq!(
            ops(&xml)[..],
            [op("delete", &format!("{path}/note[@id='n']"), None), op("modify", "/cib", None), op("create", path, Some(0))]
        );
        assert!(xml.contains(r#"<note id="n">new &amp; &lt;text&gt;</note></change>"#), "{xml}");
    }

    #[test]
    fn a_parent_with_text_is_replaced_rather_than_reordered() {
        let text_old = OLD.replace(r#"<crm_config/>"#, r#"<crm_config>words<a id="1"/><a id="2"/></crm_config>"#);
        let old = parse(&text_old).unwrap();
        let mut new = old.clone();
        new.set_attr("epoch", "6");
        let cc = new.children[0].child_mut("crm_config").unwrap();
        cc.children.swap(0, 1);
        let xml = patch(&text_old, &old, &new);
        assert!(ops(&xml).contains(&op("delete", "/cib/configuration/crm_config", None)), "{xml}");
        assert!(ops(&xml).contains(&op("create", "/cib/configuration", Some(0))), "{xml}");
        // Attribute changes under text are still fine-grained.
        let mut new = old.clone();
        new.set_attr("epoch", "6");
        new.children[0].child_mut("crm_config").unwrap().children[1].set_attr("x", "y");
        assert_eq!(
            ops(&patch(&text_old, &old, &new))[1..],
            [op("modify", "/cib/configuration/crm_config/a[@id='2']", None)]
        );
    }

    #[test]
    fn ambiguous_siblings_replace_the_nearest_addressable_parent() {
        // Two <op> without id under one primitive, and an id'ed element
        // next to an unnamed one with the same tag.
        let text_old = OLD.replace(
            r#"<primitive id="p2" class="ocf" provider="heartbeat" type="Dummy"/>"#,
            r#"<primitive id="p2" class="ocf" provider="heartbeat" type="Dummy"><operations><op name="monitor" interval="10s"/><op name="start" interval="0"/></operations></primitive>"#,
        );
        let old = parse(&text_old).unwrap();
        let mut new = old.clone();
        new.set_attr("epoch", "6");
        let operations = &mut new.children[0].child_mut("resources").unwrap().children[1].children[0];
        operations.children[1].set_attr("timeout", "20s");
        let xml = patch(&text_old, &old, &new);
        let p2 = format!("{RES}/primitive[@id='p2']");
        assert_eq!(
            ops(&xml)[..],
            [
                op("delete", &format!("{p2}/operations"), None),
                op("modify", "/cib", None),
                op("create", &p2, Some(0)),
            ]
        );
        // A path `op` would have picked the first <op>: never emitted.
        assert!(!xml.contains("operations/op"), "{xml}");

        let text_old = OLD.replace(r#"<nodes/>"#, r#"<nodes><node id="a"/><node/></nodes>"#);
        let old = parse(&text_old).unwrap();
        let mut new = old.clone();
        new.set_attr("epoch", "6");
        new.children[0].child_mut("nodes").unwrap().children[1].set_attr("uname", "x");
        let xml = patch(&text_old, &old, &new);
        assert!(ops(&xml).contains(&op("delete", "/cib/configuration/nodes", None)), "{xml}");
    }

    #[test]
    fn duplicate_ids_among_siblings_replace_the_parent() {
        let text_old = OLD.replace(r#"<crm_config/>"#, r#"<crm_config><a id="1" v="x"/><a id="1" v="y"/></crm_config>"#);
        let old = parse(&text_old).unwrap();
        for edit in [0, 1, 2] {
            let mut new = old.clone();
            new.set_attr("epoch", "6");
            let cc = new.children[0].child_mut("crm_config").unwrap();
            match edit {
                0 => drop(cc.children.remove(0)),
                1 => drop(cc.children.remove(1)),
                _ => cc.children[1].set_attr("v", "z"),
            }
            let xml = patch(&text_old, &old, &new);
            assert!(ops(&xml).contains(&op("delete", "/cib/configuration/crm_config", None)), "{xml}");
        }
    }

    #[test]
    fn ids_a_path_cannot_carry_replace_the_parent() {
        for id in ["it's", "a/b", "a b", ""] {
            let text_old = OLD.replace(r#"id="p3""#, &format!(r#"id="{}""#, crate::xml::escape_attr(id)));
            let old = parse(&text_old).unwrap();
            let mut new = old.clone();
            new.set_attr("epoch", "6");
            new.children[0].child_mut("resources").unwrap().children[2].set_attr("type", "Stateful");
            let xml = patch(&text_old, &old, &new);
            assert!(ops(&xml).contains(&op("delete", RES, None)), "{id}: {xml}");
        }
    }

    #[test]
    fn what_cannot_be_expressed_is_unsupported() {
        let unsupported = |text: &str, old: &Element, new: &Element| match versioned_patch(text, old, new) {
            Patch::Unsupported(reason) => reason,
            other => panic!("{other:?}"),
        };
        let new = edited(|c| resources(c).children.push(dummy("n")));

        // Comments and processing instructions count in positions: with a
        // comment, creates amid siblings and moves are refused, appends,
        // deletes and modifies not.
        let commented = OLD.replace("<nodes/>", "<nodes/><!-- c -->");
        let appended = patch(&commented, &parse(&commented).unwrap(), &new);
        assert!(appended.contains(r#"operation="create" path="/cib/configuration/resources" position="2147483647""#), "{appended}");
        let inserted = edited(|c| resources(c).children.insert(0, dummy("n")));
        let reason = unsupported(&commented, &parse(&commented).unwrap(), &inserted);
        assert!(reason.contains("comment"), "{reason}");
        let moved = edited(|c| resources(c).children.swap(0, 1));
        assert!(unsupported(&commented, &parse(&commented).unwrap(), &moved).contains("comment"));
        let modified = edited(|c| {
            resources(c).children.remove(1);
            resources(c).children[0].set_attr("type", "Stateful");
        });
        patch(&commented, &parse(&commented).unwrap(), &modified);
        let pi = OLD.replace("<nodes/>", "<nodes/><?pi x?>");
        assert!(unsupported(&pi, &parse(&pi).unwrap(), &inserted).contains("processing instruction"));
        patch(&pi, &parse(&pi).unwrap(), &new);
        // The XML declaration is fine.
        let decl = format!("<?xml version=\"1.0\"?>\n{OLD}");
        patch(&decl, &old(), &new);

        // Identical CIBs are Unchanged whatever they hold.
        assert_eq!(versioned_patch(&pi, &parse(&pi).unwrap(), &parse(&pi).unwrap()), Patch::Unchanged);

        // xml:space keeps whitespace nodes: placing is refused, modifying not.
        let spaced = OLD.replace("<resources>", r#"<resources xml:space="preserve">"#);
        let mut spaced_new = parse(&spaced).unwrap();
        spaced_new.set_attr("epoch", "6");
        patch(&spaced, &parse(&spaced).unwrap(), &spaced_new);
        resources(&mut spaced_new.children[0]).children.swap(0, 1);
        assert!(unsupported(&spaced, &parse(&spaced).unwrap(), &spaced_new).contains("xml:space"));

        // Versions.
        let mut no_epoch = old();
        no_epoch.remove_attr("num_updates");
        assert!(unsupported(OLD, &no_epoch, &new).contains("num_updates"));
        let mut bad = new.clone();
        bad.set_attr("epoch", "-1");
        assert!(unsupported(OLD, &old(), &bad).contains("epoch"));
        bad.set_attr("epoch", "99999999999");
        assert!(unsupported(OLD, &old(), &bad).contains("epoch"));

        // Not a CIB.
        assert!(unsupported(OLD, &old(), &Element::new("configuration")).contains("<configuration>"));

        // The root cannot be replaced.
        let two = OLD.replace("<status/>", "<status/><status/>");
        let mut two_new = parse(&two).unwrap();
        two_new.set_attr("epoch", "6");
        two_new.children[1].set_attr("x", "y");
        assert!(unsupported(&two, &parse(&two).unwrap(), &two_new).contains("several children status"));
        let mut texted = new.clone();
        texted.text = "x".into();
        assert!(unsupported(OLD, &old(), &texted).contains("text of /cib"));
    }

    #[test]
    fn the_model_refuses_a_stale_source() {
        let new = edited(|c| resources(c).children.push(dummy("n")));
        let xml = patch_of(&new);
        let mut moved_on = old();
        moved_on.set_attr("num_updates", "4");
        assert!(apply(&moved_on, &xml).unwrap_err().contains("stale"));
    }

    #[test]
    fn longest_increasing_keeps_a_longest_run() {
        assert_eq!(longest_increasing(&[]), Vec::<bool>::new());
        assert_eq!(longest_increasing(&[0, 1, 2]), [true, true, true]);
        assert_eq!(longest_increasing(&[3, 0, 1, 2]), [false, true, true, true]);
        assert_eq!(longest_increasing(&[1, 0]).iter().filter(|&&b| b).count(), 1);
        let lis = longest_increasing(&[5, 1, 4, 2, 3, 0]);
        assert_eq!(lis.iter().filter(|&&b| b).count(), 3);
    }

    // -----------------------------------------------------------------
    // Random trees and random edits (crate::testgen), applied with the model.

    fn random_case(seed: u64, unique: bool) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut fresh = 0;
        let mut config = random_element(&mut rng, 3, unique, &mut fresh);
        config.name = "configuration".into();
        config.attrs.clear();
        let old = Element::new("cib")
            .with_attr("admin_epoch", "0")
            .with_attr("epoch", "1")
            .with_attr("num_updates", "0")
            .with_child(config);
        let text = old.to_xml();
        let mut new = old.clone();
        new.set_attr("epoch", "2");
        for _ in 0..1 + rng.usize(..6) {
            let config = &mut new.children[0];
            random_edit(&mut rng, config, unique, &mut fresh);
        }
        let xml = match versioned_patch(&text, &old, &new) {
            Patch::Xml(xml) => xml,
            other => panic!("seed {seed} unique {unique}: {other:?}\n{text}"),
        };
        match apply(&old, &xml) {
            Ok(applied) => assert!(
                applied == new,
                "seed {seed} unique {unique}: wrong result\nold:\n{text}\nnew:\n{}\npatch:\n{xml}\napplied:\n{}",
                new.to_xml(),
                applied.to_xml()
            ),
            Err(e) => panic!("seed {seed} unique {unique}: {e}\nold:\n{text}\nnew:\n{}\npatch:\n{xml}", new.to_xml()),
        }
        if unique {
            // Fine-grained: an element is deleted only if it is gone or holds
            // text (changed, or with children placed around it), never
            // because its siblings are ambiguous.
            let (before, after) = (Doc::new(&old), Doc::new(&new));
            for (o, path, _) in ops(&xml) {
                if o == "delete" {
                    let gone = before.resolve(&path).map(|n| before.element(n)).unwrap();
                    if let Some(still) = after.resolve(&path).map(|n| after.element(n)) {
                        assert!(!gone.text.is_empty() || !still.text.is_empty(), "seed {seed}: {path} replaced needlessly\n{xml}");
                    }
                }
            }
        }
    }

    #[test]
    fn random_edits_apply_exactly() {
        for seed in 0..3000 {
            random_case(seed, seed % 2 == 0);
        }
    }
}
