//! The native format-2 patch (`cib_transforms::patch::versioned_patch`)
//! applied by the real `cibadmin --patch`, and the guarded modify
//! (`cib_transforms::modify::guarded_modify`) applied by the real
//! `cibadmin --modify`, in `CIB_file` mode.
//!
//! Each case writes OLD to a site's CIB file, computes the patch from the
//! parsed OLD to NEW (OLD edited, `epoch` bumped), applies it with
//! `cibadmin --patch`, reads the file back and requires its
//! `<configuration>` to equal NEW's exactly (same children in the same
//! order, same attributes in the same order; only whitespace between
//! elements is ignored, by parsing) and its `<status>` to be NEW's.
//!
//! - [`corpus_sample_patches_apply_exactly`]: every tenth CIB of the
//!   Pacemaker scheduler corpus, with a fixed sequence of edits.
//! - [`random_edit_sequences_apply_exactly`]: 50 seeded random sequences
//!   of edits on one generated CIB.
//! - [`stale_patches_are_refused`]: a patch whose source version is no
//!   longer the CIB's is refused ([`cib_tools::Error::Stale`]) and changes
//!   nothing.
//! - The subscriber's choice, a guarded modify where it can express the
//!   change and the patch otherwise ([`apply_as_subscriber`]): half the
//!   corpus sample, [`random_edit_sequences_apply_exactly_as_the_subscriber_writes`],
//!   and [`a_modify_is_refused_once_the_configuration_moved_on`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cib_tools::cib::Cib;
use cib_transforms::modify::{guarded_modify, Modify};
use cib_transforms::patch::{versioned_patch, Patch};
use cib_transforms::xml::{self, Element};

use crate::support::{corpus_or_skip, Site};

/// Worker threads for the corpus sweep (the suite targets 2-core machines).
const WORKERS: usize = 2;

/// Every how many corpus files (sorted by name) one is exercised.
const CORPUS_STRIDE: usize = 10;

// ---------------------------------------------------------------------------
// Applying one change

/// How a change reached the CIB file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The native patch, applied by `cibadmin --patch`.
    Native,
    /// The native generator said Unsupported: the CIB holds comments
    /// (which Pacemaker counts in positions) and the patch places children.
    /// The test then rewrote the file without its comments, version
    /// unchanged (as `cibadmin --replace` of the parsed CIB would), and
    /// applied the native patch to that.
    CommentsStripped,
    /// The guarded modify, applied by `cibadmin --modify`.
    Modify,
}

/// The site's CIB file: its text and tree.
fn read(site: &Site) -> (String, Element) {
    let text = String::from_utf8(site.bytes()).expect("the CIB file is UTF-8");
    let tree = xml::parse(&text).unwrap_or_else(|e| panic!("parsing the CIB file: {e}\n{text}"));
    (text, tree)
}

/// `new` with `epoch` one above `old`'s.
fn bumped(old: &Element, mut new: Element) -> Element {
    let epoch: u64 = old.attr("epoch").expect("epoch").parse().expect("numeric epoch");
    new.set_attr("epoch", (epoch + 1).to_string());
    new
}

/// Makes the site's CIB `new` (whose epoch the caller bumped) through the
/// native patch from what the file holds now, then checks the file.
fn apply(site: &Site, new: &Element) -> Result<Route, String> {
    let (text, old) = read(site);
    let cib = Cib::file(site.cib_path());
    let route = match versioned_patch(&text, &old, new) {
        Patch::Unchanged => {
            return if old == *new {
                Ok(Route::Native)
            } else {
                Err("Unchanged for different CIBs".into())
            }
        }
        Patch::Xml(patch) => {
            cib.patch(&patch)
                .map_err(|e| format!("cibadmin refused the native patch: {e}\n{patch}"))?;
            Route::Native
        }
        Patch::Unsupported(reason) => {
            if !(text.contains("<!--") && reason.contains("comment")) {
                return Err(format!("unexpectedly Unsupported: {reason}"));
            }
            site.write("cib.xml", old.to_xml());
            let (text, old) = read(site);
            let Patch::Xml(patch) = versioned_patch(&text, &old, new) else {
                return Err("no native patch even without comments".into());
            };
            cib.patch(&patch)
                .map_err(|e| format!("cibadmin refused the native patch (comments stripped): {e}\n{patch}"))?;
            Route::CommentsStripped
        }
    };
    let (_, after) = read(site);
    same_sections(route, new, &after)?;
    let epoch = |e: &Element| e.attr("epoch").and_then(|v| v.parse::<u64>().ok());
    if epoch(&after) < epoch(new) {
        return Err(format!("epoch went from {:?} to {:?}", epoch(new), epoch(&after)));
    }
    Ok(route)
}

/// Makes the site's CIB `new` as the subscriber writes it: the guarded
/// modify where it can express the change, else [`apply`]. The modify
/// must leave the file with `new`'s configuration and status exactly and
/// `epoch` one above the old one.
fn apply_as_subscriber(site: &Site, new: &Element) -> Result<Route, String> {
    let (_, old) = read(site);
    let document = match guarded_modify(&old, new) {
        Modify::Xml(document) => document,
        Modify::Unchanged | Modify::Unsupported(_) => return apply(site, new),
    };
    Cib::file(site.cib_path())
        .modify(&document)
        .map_err(|e| format!("cibadmin refused the guarded modify: {e}\n{document}"))?;
    let (_, after) = read(site);
    same_sections(Route::Modify, new, &after)?;
    let epoch = |e: &Element| e.attr("epoch").and_then(|v| v.parse::<u64>().ok());
    if epoch(&after) != epoch(&old).map(|e| e + 1) {
        return Err(format!("Modify: epoch went from {:?} to {:?}", epoch(&old), epoch(&after)));
    }
    Ok(Route::Modify)
}

/// Whether `after` holds `new`'s configuration and status exactly.
fn same_sections(route: Route, new: &Element, after: &Element) -> Result<(), String> {
    for section in ["configuration", "status"] {
        let want = new.child(section).map(Element::to_xml);
        let got = after.child(section).map(Element::to_xml);
        if want != got {
            return Err(format!(
                "{route:?}: <{section}> differs from the intended one\n{}",
                first_difference(want.as_deref().unwrap_or(""), got.as_deref().unwrap_or(""))
            ));
        }
    }
    Ok(())
}

/// The first differing line of two serializations, with some context.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let from = i.saturating_sub(3);
    format!(
        "intended (line {}):\n{}\ngot:\n{}",
        i + 1,
        w[from..(i + 4).min(w.len())].join("\n"),
        g[from..(i + 4).min(g.len())].join("\n")
    )
}

// ---------------------------------------------------------------------------
// Edits (schema-valid on any CIB that validates)

fn config(cib: &mut Element) -> &mut Element {
    cib.child_mut("configuration").expect("the CIB has a <configuration>")
}

fn section<'e>(cib: &'e mut Element, name: &str) -> Option<&'e mut Element> {
    config(cib).child_mut(name)
}

/// An id not used anywhere in `cib`, starting with `base`.
fn fresh_id(cib: &Element, base: &str) -> String {
    (0..)
        .map(|n| if n == 0 { base.to_owned() } else { format!("{base}-{n}") })
        .find(|id| cib.find_id(id).is_none())
        .expect("some id is free")
}

fn dummy(id: &str) -> Element {
    Element::new("primitive")
        .with_attr("id", id)
        .with_attr("class", "ocf")
        .with_attr("provider", "heartbeat")
        .with_attr("type", "Dummy")
}

/// The first element of `root`'s subtree (document order) matching `f`, as
/// an index path.
fn find_path(root: &Element, f: &impl Fn(&Element) -> bool) -> Option<Vec<usize>> {
    for (i, c) in root.children.iter().enumerate() {
        if f(c) {
            return Some(vec![i]);
        }
        if let Some(mut p) = find_path(c, f) {
            p.insert(0, i);
            return Some(p);
        }
    }
    None
}

fn at<'e>(root: &'e mut Element, path: &[usize]) -> &'e mut Element {
    path.iter().fold(root, |e, &i| &mut e.children[i])
}

/// Edits `cib` (a whole CIB); `false` when it does not apply to this CIB.
type Edit = fn(&mut Element) -> bool;

/// The corpus edits, in the order they are applied, with their names.
const EDITS: &[(&str, Edit)] = &[
    ("change an nvpair value", edit_nvpair_value),
    ("add a primitive in the middle of resources", edit_add_primitive),
    ("remove a constraint", edit_remove_constraint),
    ("swap the first two resources", edit_swap_resources),
    ("add an nvpair inside an instance_attributes", edit_add_nvpair),
    ("change or add a meta attribute", edit_meta),
    ("set a description on the first resource", edit_set_description),
];

fn edit_nvpair_value(cib: &mut Element) -> bool {
    let c = config(cib);
    let Some(p) = find_path(c, &|e| e.name == "nvpair" && e.attr("value").is_some()) else {
        return false;
    };
    let nv = at(c, &p);
    let v = format!("{}-patched", nv.attr("value").unwrap_or(""));
    nv.set_attr("value", v);
    true
}

fn edit_add_primitive(cib: &mut Element) -> bool {
    let id = fresh_id(cib, "patch-it-new");
    let Some(r) = section(cib, "resources") else { return false };
    let mid = r.children.len() / 2;
    r.children.insert(mid, dummy(&id));
    true
}

fn edit_remove_constraint(cib: &mut Element) -> bool {
    match section(cib, "constraints") {
        Some(c) if !c.children.is_empty() => {
            c.children.remove(c.children.len() / 2);
            true
        }
        _ => false,
    }
}

fn edit_swap_resources(cib: &mut Element) -> bool {
    match section(cib, "resources") {
        Some(r) if r.children.len() >= 2 => {
            r.children.swap(0, 1);
            true
        }
        _ => false,
    }
}

fn edit_add_nvpair(cib: &mut Element) -> bool {
    let id = fresh_id(cib, "patch-it-nv");
    let Some(r) = section(cib, "resources") else { return false };
    let Some(p) = find_path(r, &|e| e.name == "instance_attributes" && e.child("nvpair").is_some()) else {
        return false;
    };
    let ia = at(r, &p);
    let first = ia.children.iter().position(|c| c.name == "nvpair").expect("checked");
    // Before the first nvpair (after any rule): a position inside the list.
    ia.children.insert(
        first,
        Element::new("nvpair").with_attr("id", id).with_attr("name", "patch_it").with_attr("value", "1"),
    );
    true
}

fn edit_meta(cib: &mut Element) -> bool {
    let id = fresh_id(cib, "patch-it-meta");
    let Some(r) = section(cib, "resources") else { return false };
    if let Some(p) = find_path(r, &|e| e.name == "meta_attributes" && e.child("nvpair").is_some()) {
        let nv = at(r, &p).child_mut("nvpair").expect("checked");
        let v = format!("{}-patched", nv.attr("value").unwrap_or(""));
        nv.set_attr("value", v);
        return true;
    }
    let Some(p) = find_path(r, &|e| e.name == "primitive") else { return false };
    at(r, &p).children.push(
        Element::new("meta_attributes").with_attr("id", &id).with_child(
            Element::new("nvpair")
                .with_attr("id", format!("{id}-tr"))
                .with_attr("name", "target-role")
                .with_attr("value", "Started"),
        ),
    );
    true
}

fn edit_set_description(cib: &mut Element) -> bool {
    match section(cib, "resources").and_then(|r| r.children.first_mut()) {
        Some(first) => {
            first.set_attr("description", "patched by the integration test");
            true
        }
        None => false,
    }
}

/// Several edits in one patch: the description removed again (an unset),
/// the last resource moved to the front, a primitive added at the front, a
/// constraint removed, an nvpair value changed.
fn edit_combined(cib: &mut Element) -> bool {
    let mut any = false;
    if let Some(first) = section(cib, "resources").and_then(|r| r.children.first_mut()) {
        any |= first.remove_attr("description").is_some();
    }
    if let Some(r) = section(cib, "resources") {
        if r.children.len() >= 2 {
            let last = r.children.pop().expect("checked");
            r.children.insert(0, last);
            any = true;
        }
    }
    let id = fresh_id(cib, "patch-it-front");
    if let Some(r) = section(cib, "resources") {
        r.children.insert(0, dummy(&id));
        any = true;
    }
    any |= edit_remove_constraint(cib);
    any |= edit_nvpair_value(cib);
    any
}

// ---------------------------------------------------------------------------
// The corpus sweep

/// What happened to one corpus file.
enum Outcome {
    /// Every applicable edit applied exactly; counts by route.
    Done { native: usize, stripped: usize, modify: usize },
    /// Not exercised (why).
    Skipped(String),
    /// A test failure.
    Problem(String),
}

#[test]
fn corpus_sample_patches_apply_exactly() {
    let Some(dir) = corpus_or_skip("the patch sweep") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    let sample: Vec<PathBuf> = files.into_iter().step_by(CORPUS_STRIDE).collect();
    assert!(!sample.is_empty(), "no CIB in {}", dir.display());

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(String, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = sample.get(i) else { break };
                // Every other file as the subscriber writes (a guarded
                // modify where it can), the others through the patch alone.
                let outcome = corpus_file(file, i % 2 == 1);
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                results.lock().unwrap().push((name, outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));

    let (mut exercised, mut native, mut stripped, mut modify) = (0, 0, 0, 0);
    let mut skipped = Vec::new();
    let mut problems = Vec::new();
    for (name, outcome) in results {
        match outcome {
            Outcome::Done { native: n, stripped: s, modify: m } => {
                exercised += 1;
                native += n;
                stripped += s;
                modify += m;
            }
            Outcome::Skipped(why) => skipped.push(format!("{name}: {why}")),
            Outcome::Problem(p) => problems.push(format!("{name}: {p}")),
        }
    }
    println!(
        "patch corpus sweep of {} (every {CORPUS_STRIDE}th of the files): {} files",
        dir.display(),
        sample.len()
    );
    println!(
        "  exercised: {exercised} files, {} patches applied; {stripped} Unsupported for comments, applied once they were stripped; {modify} guarded modifies applied",
        native + stripped
    );
    println!("  skipped:   {}", skipped.len());
    for s in &skipped {
        println!("    {s}");
    }
    assert!(problems.is_empty(), "{} corpus file(s) failed:\n{}", problems.len(), problems.join("\n\n"));
    assert!(modify > 0 && native > 0, "one way of writing was never used: {native} patches, {modify} modifies");
    assert!(
        exercised * 10 >= sample.len() * 8,
        "only {exercised} of {} sampled files could be exercised",
        sample.len()
    );
}

/// Runs the edits on one corpus file, through [`apply_as_subscriber`] when
/// `as_subscriber`, else through [`apply`].
fn corpus_file(file: &Path, as_subscriber: bool) -> Outcome {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let site = Site::with_cib(&text);
    let q = site.tool("cibadmin", ["--query"]);
    if q.code != 0 {
        return Outcome::Skipped(format!("cibadmin cannot load it (exit {}: {})", q.code, q.stderr.trim()));
    }
    let (mut native, mut stripped, mut modify) = (0, 0, 0);
    let mut count = |route| match route {
        Route::Native => native += 1,
        Route::CommentsStripped => stripped += 1,
        Route::Modify => modify += 1,
    };

    // Only the epoch: probes whether cibadmin accepts any change at all.
    let (_, old) = read(&site);
    let new = bumped(&old, old.clone());
    match apply(&site, &new) {
        Ok(route) => count(route),
        Err(e) if e.contains("exited with code 78") => {
            return Outcome::Skipped("cibadmin refuses any change: the CIB does not validate against its own schema".into());
        }
        Err(e) if e.contains("exited with code 76") => {
            return Outcome::Skipped(format!(
                "cibadmin refuses any change: crm_feature_set {} is newer than this Pacemaker's (exit 76, Protocol not supported)",
                old.attr("crm_feature_set").unwrap_or("?")
            ));
        }
        Err(e) => return Outcome::Problem(format!("epoch only: {e}")),
    }

    let steps = EDITS.iter().copied().chain([("several edits at once", edit_combined as Edit)]);
    for (name, edit) in steps {
        let (_, old) = read(&site);
        let mut new = old.clone();
        if !edit(&mut new) {
            continue;
        }
        let new = bumped(&old, new);
        match if as_subscriber { apply_as_subscriber(&site, &new) } else { apply(&site, &new) } {
            Ok(route) => count(route),
            Err(e) => return Outcome::Problem(format!("{name}: {e}")),
        }
    }
    Outcome::Done { native, stripped, modify }
}

// ---------------------------------------------------------------------------
// Random sequences

/// A primitive with instance and meta attributes.
fn full_primitive(id: &str) -> Element {
    dummy(id)
        .with_child(
            Element::new("instance_attributes")
                .with_attr("id", format!("{id}-ia"))
                .with_child(nvpair(&format!("{id}-ia-a"), "a", "1"))
                .with_child(nvpair(&format!("{id}-ia-b"), "b", "2")),
        )
        .with_child(
            Element::new("meta_attributes")
                .with_attr("id", format!("{id}-meta"))
                .with_child(nvpair(&format!("{id}-meta-tr"), "target-role", "Started")),
        )
}

fn nvpair(id: &str, name: &str, value: &str) -> Element {
    Element::new("nvpair").with_attr("id", id).with_attr("name", name).with_attr("value", value)
}

/// Ids of every primitive in `resources`, at any depth.
fn primitive_paths(resources: &Element) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    fn walk(el: &Element, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        for (i, c) in el.children.iter().enumerate() {
            prefix.push(i);
            if c.name == "primitive" {
                out.push(prefix.clone());
            }
            walk(c, prefix, out);
            prefix.pop();
        }
    }
    walk(resources, &mut Vec::new(), &mut out);
    out
}

/// One random edit of the generated CIB (always schema-valid: constraints
/// only name top-level primitives, and a removed primitive takes its
/// constraints along). Returns its description.
fn random_edit(rng: &mut fastrand::Rng, cib: &mut Element) -> String {
    let fresh = fresh_id(cib, &format!("r{}", rng.usize(..1000)));
    let cfg = config(cib);
    let (resources, constraints) = {
        let [r, c] = ["resources", "constraints"].map(|n| cfg.children.iter().position(|e| e.name == n).unwrap());
        (r, c)
    };
    match rng.usize(..8) {
        0 => {
            let r = &mut cfg.children[resources];
            let paths = primitive_paths(r);
            let p = &paths[rng.usize(..paths.len())];
            let prim = at(r, p);
            let ia = prim.child_mut("instance_attributes").expect("generated with one");
            if ia.children.is_empty() {
                return "nothing".into();
            }
            let i = rng.usize(..ia.children.len());
            let v = rng.usize(..100).to_string();
            ia.children[i].set_attr("value", &v);
            format!("set {} to {v}", ia.children[i].id().unwrap())
        }
        1 => {
            let r = &mut cfg.children[resources];
            let i = rng.usize(..r.children.len() + 1);
            r.children.insert(i, full_primitive(&fresh));
            format!("add {fresh} at {i}")
        }
        2 => {
            // Inside a group, when there is one.
            let r = &mut cfg.children[resources];
            let Some(g) = r.children.iter_mut().find(|c| c.name == "group") else {
                return "nothing".into();
            };
            let i = rng.usize(..g.children.len() + 1);
            g.children.insert(i, full_primitive(&fresh));
            format!("add {fresh} into the group at {i}")
        }
        3 => {
            let c = &mut cfg.children[constraints];
            if c.children.is_empty() {
                return "nothing".into();
            }
            let gone = c.children.remove(rng.usize(..c.children.len()));
            format!("remove {}", gone.id().unwrap())
        }
        4 => {
            // Move a resource (top level, or a member of the group).
            let r = &mut cfg.children[resources];
            let list = match r.children.iter().position(|c| c.name == "group") {
                Some(g) if rng.usize(..3) == 0 => &mut r.children[g].children,
                _ => &mut r.children,
            };
            let from = rng.usize(..list.len());
            let el = list.remove(from);
            let to = rng.usize(..list.len() + 1);
            let id = el.id().unwrap().to_owned();
            list.insert(to, el);
            format!("move {id} from {from} to {to}")
        }
        5 => {
            let r = &mut cfg.children[resources];
            let paths = primitive_paths(r);
            let prim = at(r, &paths[rng.usize(..paths.len())]);
            let pid = prim.id().unwrap().to_owned();
            let ia = prim.child_mut("instance_attributes").expect("generated with one");
            let i = rng.usize(..ia.children.len() + 1);
            ia.children.insert(i, nvpair(&fresh, &fresh, "x"));
            format!("add nvpair {fresh} in {pid} at {i}")
        }
        6 => {
            let r = &mut cfg.children[resources];
            let paths = primitive_paths(r);
            let prim = at(r, &paths[rng.usize(..paths.len())]);
            let meta = prim.child_mut("meta_attributes").expect("generated with one");
            let role = ["Started", "Stopped", "Unpromoted"][rng.usize(..3)];
            match meta.children.first_mut() {
                Some(tr) => tr.set_attr("value", role),
                None => meta.children.push(nvpair(&fresh, "target-role", role)),
            }
            format!("target-role {role} on {}", prim.id().unwrap())
        }
        _ => {
            // Remove a top-level primitive and the constraints naming it.
            let r = &mut cfg.children[resources];
            let tops: Vec<usize> = (0..r.children.len()).filter(|&i| r.children[i].name == "primitive").collect();
            if tops.len() < 2 {
                return "nothing".into();
            }
            let gone = r.children.remove(tops[rng.usize(..tops.len())]);
            let id = gone.id().unwrap().to_owned();
            cfg.children[constraints]
                .children
                .retain(|c| !["rsc", "with-rsc", "first", "then"].iter().any(|a| c.attr(a) == Some(id.as_str())));
            format!("remove {id} and its constraints")
        }
    }
}

/// The generated configuration: primitives, a group, a clone and
/// constraints between top-level primitives.
fn generated(cib: &mut Element) {
    let cfg = config(cib);
    let r = cfg.child_or_insert("resources");
    for i in 0..8 {
        r.children.push(full_primitive(&format!("p{i}")));
    }
    r.children.insert(
        3,
        Element::new("group")
            .with_attr("id", "g")
            .with_child(full_primitive("g-a"))
            .with_child(full_primitive("g-b")),
    );
    r.children.push(Element::new("clone").with_attr("id", "c").with_child(full_primitive("c-a")));
    let c = cfg.child_or_insert("constraints");
    for i in 0..6 {
        c.children.push(
            Element::new("rsc_order")
                .with_attr("id", format!("o{i}"))
                .with_attr("first", format!("p{i}"))
                .with_attr("then", format!("p{}", i + 1)),
        );
        c.children.push(
            Element::new("rsc_location")
                .with_attr("id", format!("l{i}"))
                .with_attr("rsc", format!("p{i}"))
                .with_attr("node", "node1")
                .with_attr("score", "100"),
        );
    }
}

/// A first replication creates hundreds of elements in one section: the
/// patch replaces the section whole (`MAX_CREATES_IN_PLACE`), and
/// `cibadmin` applies it to exactly the intended CIB, keeping the local
/// elements the section held.
#[test]
fn a_section_with_many_new_elements_is_replaced_whole_and_applies_exactly() {
    let site = Site::empty();
    let (_, old) = read(&site);
    let mut new = old.clone();
    let resources = config(&mut new).child_or_insert("resources");
    resources.children.push(dummy("local-before"));
    let new = bumped(&old, new);
    assert_eq!(apply(&site, &new), Ok(Route::Native));

    let (text, old) = read(&site);
    let mut new = old.clone();
    let resources = config(&mut new).child_or_insert("resources");
    for i in 0..300 {
        resources.children.push(full_primitive(&format!("many-{i}")));
    }
    let new = bumped(&old, new);
    let Patch::Xml(patch) = versioned_patch(&text, &old, &new) else { panic!("no native patch") };
    let creates = patch.matches(r#"operation="create""#).count();
    assert_eq!(creates, 1, "the section was not replaced whole:\n{}", &patch[..patch.len().min(2000)]);
    assert_eq!(apply(&site, &new), Ok(Route::Native));
    let (_, after) = read(&site);
    assert!(after.find_id("local-before").is_some() && after.find_id("many-299").is_some());
}

/// 50 seeded random sequences of edits on the generated CIB (which
/// arrives first, by `first`), each written with `write` and checked by
/// it; the routes they took.
fn random_sequences(write: fn(&Site, &Element) -> Result<Route, String>, first: Route) -> Vec<Route> {
    let site = Site::empty();
    let (_, old) = read(&site);
    let mut new = old.clone();
    generated(&mut new);
    let new = bumped(&old, new);
    assert_eq!(write(&site, &new), Ok(first));

    let mut rng = fastrand::Rng::with_seed(0x5eed_cafe);
    (0..50)
        .map(|case| {
            let (_, old) = read(&site);
            let mut new = old.clone();
            let n = 1 + rng.usize(..4);
            let edits: Vec<String> = (0..n).map(|_| random_edit(&mut rng, &mut new)).collect();
            let new = bumped(&old, new);
            write(&site, &new).unwrap_or_else(|e| panic!("case {case} ({}): {e}", edits.join("; ")))
        })
        .collect()
}

#[test]
fn random_edit_sequences_apply_exactly() {
    // The generated configuration itself arrives as one native patch.
    random_sequences(apply, Route::Native);
}

/// The same random sequences, written as the subscriber writes them: each
/// lands exactly whichever way was chosen, and both ways are used.
#[test]
fn random_edit_sequences_apply_exactly_as_the_subscriber_writes() {
    let routes = random_sequences(apply_as_subscriber, Route::Modify);
    let modify = routes.iter().filter(|r| **r == Route::Modify).count();
    let patch = routes.len() - modify;
    assert!(modify >= 5 && patch >= 5, "{modify} modifies, {patch} patches");
}

// ---------------------------------------------------------------------------
// Versions

#[test]
fn stale_patches_are_refused() {
    let site = Site::empty();
    let cib = Cib::file(site.cib_path());
    let (text, old) = read(&site);
    let with = |id: &str| {
        let mut new = old.clone();
        config(&mut new).child_or_insert("resources").children.push(dummy(id));
        bumped(&old, new)
    };
    let Patch::Xml(first) = versioned_patch(&text, &old, &with("a")) else {
        panic!("expected a patch")
    };
    let Patch::Xml(second) = versioned_patch(&text, &old, &with("b")) else {
        panic!("expected a patch")
    };
    cib.patch(&first).expect("the first patch applies");
    let applied = site.bytes();

    // The same patch again, and another patch from the same (now stale)
    // source version: refused, the file untouched.
    for patch in [&first, &second] {
        match cib.patch(patch) {
            Err(cib_tools::Error::Stale { .. }) => {}
            other => panic!("expected Stale, got {other:?}"),
        }
        assert!(site.bytes() == applied, "a refused patch changed the CIB file");
    }

    // A target version that does not advance (the caller forgot to bump
    // epoch) is refused the same way.
    let (text, old) = read(&site);
    let mut same_epoch = old.clone();
    config(&mut same_epoch).child_or_insert("resources").children.push(dummy("c"));
    let Patch::Xml(flat) = versioned_patch(&text, &old, &same_epoch) else {
        panic!("expected a patch")
    };
    assert!(matches!(cib.patch(&flat), Err(cib_tools::Error::Stale { .. })));
    assert!(site.bytes() == applied, "a refused patch changed the CIB file");
}

/// A guarded modify planned against one version is refused, the file
/// untouched, once the configuration moved on; a change of the status alone
/// does not refuse it.
#[test]
fn a_modify_is_refused_once_the_configuration_moved_on() {
    let site = Site::empty();
    let cib = Cib::file(site.cib_path());
    let (_, old) = read(&site);
    let with = |id: &str| {
        let mut new = old.clone();
        config(&mut new).child_or_insert("resources").children.push(dummy(id));
        bumped(&old, new)
    };
    let Modify::Xml(first) = guarded_modify(&old, &with("a")) else { panic!("expected a document") };
    let Modify::Xml(second) = guarded_modify(&old, &with("b")) else { panic!("expected a document") };

    // The status alone moves on (a ticket granted): `num_updates` only.
    site.tool("crm_ticket", ["--ticket", "tk", "--grant", "--force"]).expect_ok();
    let (_, granted) = read(&site);
    assert_eq!(granted.attr("epoch"), old.attr("epoch"));
    assert_ne!(granted.attr("num_updates"), old.attr("num_updates"));
    cib.modify(&first).expect("a change of the status alone does not refuse the modify");
    let applied = site.bytes();
    let (_, after) = read(&site);
    assert!(after.find_id("a").is_some());
    assert!(after.child("status").and_then(|s| s.find_id("tk")).is_some(), "the status change was lost");

    // The same document again, and another planned against the same (now
    // stale) version: refused, the file untouched.
    for document in [&first, &second] {
        match cib.modify(document) {
            Err(cib_tools::Error::Stale { .. }) => {}
            other => panic!("expected Stale, got {other:?}"),
        }
        assert!(site.bytes() == applied, "a refused modify changed the CIB file");
    }
}
