//! Random CIB-like trees and random edits of them, for the property tests
//! of the writers ([`crate::patch`], [`crate::modify`]).

use crate::xml::Element;

/// A random element; with `unique`, sibling keys are unique (fresh ids,
/// and no id only for a tag no sibling has).
pub fn random_element(
    rng: &mut fastrand::Rng,
    depth: usize,
    unique: bool,
    fresh: &mut usize,
) -> Element {
    let mut el = Element::new(["a", "b", "c"][rng.usize(..3)]);
    if unique || rng.usize(..100) < 70 {
        *fresh += 1;
        let id = if unique {
            format!("i{fresh}")
        } else {
            format!("i{}", rng.usize(..3))
        };
        el.set_attr("id", id);
    }
    for _ in 0..rng.usize(..3) {
        el.set_attr(
            &format!("k{}", rng.usize(..4)),
            format!("v{}", rng.usize(..3)),
        );
    }
    if rng.usize(..100) < 8 {
        el.text = format!("t{}", rng.usize(..3));
    }
    if depth > 0 {
        for _ in 0..rng.usize(..5) {
            let c = random_element(rng, depth - 1, unique, fresh);
            el.children.push(c);
        }
    }
    if unique {
        dedupe(&mut el.children);
    }
    el
}

/// Keeps only the first child of each key, and unnamed children only
/// when no other child has their tag.
pub fn dedupe(children: &mut Vec<Element>) {
    let mut seen = std::collections::HashSet::new();
    children.retain(|c| seen.insert((c.name.clone(), c.id().map(str::to_owned))));
    let unnamed_ok =
        |c: &Element, all: &[Element]| all.iter().filter(|o| o.name == c.name).count() == 1;
    let snapshot = children.clone();
    children.retain(|c| c.id().is_some() || unnamed_ok(c, &snapshot));
}

/// Index paths of every element under (and excluding) the root.
pub fn paths(el: &Element, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, c) in el.children.iter().enumerate() {
        prefix.push(i);
        out.push(prefix.clone());
        paths(c, prefix, out);
        prefix.pop();
    }
}

/// The element at index path `path` under `el`.
pub fn at<'e>(el: &'e mut Element, path: &[usize]) -> &'e mut Element {
    path.iter().fold(el, |e, &i| &mut e.children[i])
}

/// One random edit somewhere in `root`: an attribute set or removed, a
/// child inserted, removed or moved, children reversed or repeated, text
/// or attribute order changed.
pub fn random_edit(rng: &mut fastrand::Rng, root: &mut Element, unique: bool, fresh: &mut usize) {
    let mut all = vec![Vec::new()];
    paths(root, &mut Vec::new(), &mut all);
    let el = at(root, &all[rng.usize(..all.len())]);
    match rng.usize(..9) {
        0 | 1 => el.set_attr(
            &format!("k{}", rng.usize(..5)),
            format!("w{}", rng.usize(..3)),
        ),
        2 => {
            if !el.attrs.is_empty() {
                let i = rng.usize(..el.attrs.len());
                if el.attrs[i].0 != "id" {
                    el.attrs.remove(i);
                }
            }
        }
        3 | 4 => {
            let c = random_element(rng, 2, unique, fresh);
            let i = rng.usize(..el.children.len() + 1);
            el.children.insert(i, c);
            if unique {
                dedupe(&mut el.children);
            }
        }
        5 => {
            if !el.children.is_empty() {
                let i = rng.usize(..el.children.len());
                el.children.remove(i);
            }
        }
        6 => {
            if !el.children.is_empty() {
                let c = el.children.remove(rng.usize(..el.children.len()));
                let i = rng.usize(..el.children.len() + 1);
                el.children.insert(i, c);
            }
        }
        7 if unique => el.children.reverse(),
        7 => {
            // A copy of a child next to it: siblings with one key.
            if !el.children.is_empty() {
                let i = rng.usize(..el.children.len());
                let c = el.children[i].clone();
                el.children.insert(i + rng.usize(..2), c);
            }
        }
        _ => {
            if rng.usize(..100) < 30 {
                el.text = if el.text.is_empty() {
                    format!("t{}", rng.usize(..3))
                } else {
                    String::new()
                };
            } else {
                el.attrs.reverse();
            }
        }
    }
}
