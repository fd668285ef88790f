//! Readable differences between two configurations, for the dry run.
//!
//! The texts are compared in two passes, so that a 10 MB configuration with
//! a few hundred changes costs a few milliseconds: first block by block —
//! a block is a line indented by at most two levels (a top-level element
//! of a section, a section tag) with the deeper lines that follow it — and
//! then, inside each run of blocks that differ, line by line. The output is
//! an ordinary unified diff of the two serializations (three lines of
//! context).

use std::fmt::Write as _;
use std::ops::Range;

use similar::{group_diff_ops, Algorithm, DiffOp, TextDiff};

use crate::xml::Element;
use crate::IdMap;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Unified diff (three lines of context) of the serializations of two
/// `<configuration>` elements; empty when they serialize identically.
/// With `color`, removed lines are red, added green, hunk headers cyan.
pub fn configuration_diff(old: &Element, new: &Element, old_label: &str, new_label: &str, color: bool) -> String {
    unified(&old.to_xml(), &new.to_xml(), old_label, new_label, color)
}

/// Unified diff of two texts, line by line.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str, color: bool) -> String {
    if old == new {
        return String::new();
    }
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = line_ops(old, &old_lines, new, &new_lines);
    let mut out = String::new();
    let (bold, cyan, red, green, reset) = if color {
        (BOLD, CYAN, RED, GREEN, RESET)
    } else {
        ("", "", "", "", "")
    };
    for (i, group) in group_diff_ops(ops, CONTEXT).iter().enumerate() {
        if i == 0 {
            let _ = writeln!(out, "{bold}--- {old_label}{reset}");
            let _ = writeln!(out, "{bold}+++ {new_label}{reset}");
        }
        let _ = writeln!(out, "{cyan}{}{reset}", similar::udiff::UnifiedHunkHeader::new(group));
        for op in group {
            let line = |out: &mut String, sign: char, paint: &str, text: &str| {
                let body = text.strip_suffix('\n').unwrap_or(text);
                out.push_str(paint);
                out.push(sign);
                out.push_str(&crate::printable::printable(body));
                out.push_str(if paint.is_empty() { "" } else { reset });
                out.push('\n');
                if !text.ends_with('\n') {
                    out.push_str("\\ No newline at end of file\n");
                }
            };
            let (old_range, new_range) = (op.old_range(), op.new_range());
            match op {
                DiffOp::Equal { .. } => old_lines[old_range].iter().for_each(|l| line(&mut out, ' ', "", l)),
                DiffOp::Delete { .. } => old_lines[old_range].iter().for_each(|l| line(&mut out, '-', red, l)),
                DiffOp::Insert { .. } => new_lines[new_range].iter().for_each(|l| line(&mut out, '+', green, l)),
                DiffOp::Replace { .. } => {
                    old_lines[old_range].iter().for_each(|l| line(&mut out, '-', red, l));
                    new_lines[new_range].iter().for_each(|l| line(&mut out, '+', green, l));
                }
            }
        }
    }
    out
}

/// Whether a line starts a block: indented by at most four spaces.
fn starts_block(line: &str) -> bool {
    line.bytes().take(5).take_while(|&b| b == b' ').count() <= 4
}

/// The blocks of `lines`, as ranges of line indices.
fn blocks(lines: &[&str]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match out.last_mut() {
            Some(b) if !starts_block(l) => b.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Byte offset of each line of `lines` (split from `text`), plus the end.
fn line_starts(text: &str, lines: &[&str]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(lines.len() + 1);
    let mut at = 0;
    for l in lines {
        starts.push(at);
        at += l.len();
    }
    starts.push(text.len());
    starts
}

/// The diff of two texts (and their lines) as operations on lines: block by
/// block, then line by line inside each run of differing blocks.
fn line_ops<'a>(old_text: &'a str, old: &[&str], new_text: &'a str, new: &[&str]) -> Vec<DiffOp> {
    let (old_blocks, new_blocks) = (blocks(old), blocks(new));
    let (old_starts, new_starts) = (line_starts(old_text, old), line_starts(new_text, new));
    // Each distinct block text gets a number; equal numbers, equal blocks.
    let mut ids: IdMap<&str, u32> = IdMap::with_capacity_and_hasher(old_blocks.len(), Default::default());
    let mut number = |block: &'a str| -> u32 {
        let next = ids.len() as u32;
        *ids.entry(block).or_insert(next)
    };
    let old_ids: Vec<u32> = old_blocks.iter().map(|r| number(&old_text[old_starts[r.start]..old_starts[r.end]])).collect();
    let new_ids: Vec<u32> = new_blocks.iter().map(|r| number(&new_text[new_starts[r.start]..new_starts[r.end]])).collect();
    let block_ops = similar::capture_diff_slices(Algorithm::Myers, &old_ids, &new_ids);

    let mut ops: Vec<DiffOp> = Vec::new();
    for op in block_ops {
        let (ob, nb) = (op.old_range(), op.new_range());
        let o = span(&old_blocks, ob);
        let n = span(&new_blocks, nb);
        match op {
            DiffOp::Equal { .. } => push(&mut ops, DiffOp::Equal { old_index: o.start, new_index: n.start, len: o.len() }),
            DiffOp::Delete { .. } => push(&mut ops, DiffOp::Delete { old_index: o.start, old_len: o.len(), new_index: n.start }),
            DiffOp::Insert { .. } => push(&mut ops, DiffOp::Insert { old_index: o.start, new_index: n.start, new_len: n.len() }),
            DiffOp::Replace { .. } => {
                let local = TextDiff::configure().algorithm(Algorithm::Myers).diff_slices(&old[o.clone()], &new[n.clone()]);
                for l in local.ops() {
                    push(&mut ops, shifted(*l, o.start, n.start));
                }
            }
        }
    }
    ops
}

/// The lines covered by the blocks `r` of `blocks`.
fn span(blocks: &[Range<usize>], r: Range<usize>) -> Range<usize> {
    match (blocks.get(r.start), r.end.checked_sub(1).and_then(|e| blocks.get(e))) {
        (Some(first), Some(last)) if !r.is_empty() => first.start..last.end,
        // An empty range sits before block r.start (or at the end).
        _ => {
            let at = blocks.get(r.start).map_or_else(|| blocks.last().map_or(0, |b| b.end), |b| b.start);
            at..at
        }
    }
}

/// `op` moved by `old` and `new` lines.
fn shifted(op: DiffOp, old: usize, new: usize) -> DiffOp {
    match op {
        DiffOp::Equal { old_index, new_index, len } => DiffOp::Equal { old_index: old_index + old, new_index: new_index + new, len },
        DiffOp::Delete { old_index, old_len, new_index } => DiffOp::Delete { old_index: old_index + old, old_len, new_index: new_index + new },
        DiffOp::Insert { old_index, new_index, new_len } => DiffOp::Insert { old_index: old_index + old, new_index: new_index + new, new_len },
        DiffOp::Replace { old_index, old_len, new_index, new_len } => DiffOp::Replace { old_index: old_index + old, old_len, new_index: new_index + new, new_len },
    }
}

/// Appends `op`, merging it into the previous one when both are equal runs
/// (so that context is cut the same way as in a single pass).
fn push(ops: &mut Vec<DiffOp>, op: DiffOp) {
    if let (Some(DiffOp::Equal { len, .. }), DiffOp::Equal { len: more, .. }) = (ops.last_mut(), op) {
        *len += more;
        return;
    }
    let empty = match op {
        DiffOp::Equal { len, .. } => len == 0,
        DiffOp::Delete { old_len, .. } => old_len == 0,
        DiffOp::Insert { new_len, .. } => new_len == 0,
        DiffOp::Replace { old_len, new_len, .. } => old_len == 0 && new_len == 0,
    };
    if !empty {
        ops.push(op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    /// Applies a unified diff (as written by [`unified`]) to `old`.
    fn apply_patch(old: &str, patch: &str) -> String {
        let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut next = 0; // next old line to copy
        for line in patch.split_inclusive('\n').skip(2) {
            if let Some(h) = line.strip_prefix("@@ -") {
                let range = h.split(' ').next().unwrap();
                let mut parts = range.split(',');
                let start: usize = parts.next().unwrap().parse().unwrap();
                let len: usize = parts.next().map_or(1, |l| l.parse().unwrap());
                let first = if len == 0 { start } else { start - 1 };
                while next < first {
                    out.push_str(old_lines[next]);
                    next += 1;
                }
            } else if let Some(l) = line.strip_prefix(' ') {
                assert_eq!(l, old_lines[next], "context line");
                out.push_str(l);
                next += 1;
            } else if let Some(l) = line.strip_prefix('-') {
                assert_eq!(l, old_lines[next], "removed line");
                next += 1;
            } else if let Some(l) = line.strip_prefix('+') {
                out.push_str(l);
            }
        }
        for l in &old_lines[next..] {
            out.push_str(l);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn patch_turns_old_into_new(
            old in proptest::collection::vec(0u8..6, 0..60),
            edits in proptest::collection::vec((0usize..60, 0u8..8), 0..8),
        ) {
            // Lines at three depths, so that blocks form.
            let line = |v: u8| format!("{}<e v=\"{}\"/>\n", "  ".repeat(v as usize % 4), v);
            let mut new = old.clone();
            for (at, v) in edits {
                let at = at % (new.len() + 1);
                if v < 6 { new.insert(at, v) } else if at < new.len() { new.remove(at); }
            }
            let (a, b): (String, String) = (old.iter().map(|&v| line(v)).collect(), new.iter().map(|&v| line(v)).collect());
            let d = unified(&a, &b, "a", "b", false);
            proptest::prop_assert_eq!(d.is_empty(), a == b);
            if !d.is_empty() {
                proptest::prop_assert_eq!(apply_patch(&a, &d), b);
            }
        }
    }

    #[test]
    fn shows_changed_lines_only() {
        let a = parse(r#"<configuration><resources><primitive id="a" type="Dummy"/><primitive id="b" type="Dummy"/></resources></configuration>"#).unwrap();
        let b = parse(r#"<configuration><resources><primitive id="a" type="Dummy"/><primitive id="b" type="Stateful"/></resources></configuration>"#).unwrap();
        let d = configuration_diff(&a, &b, "before", "after", false);
        assert!(d.starts_with("--- before\n+++ after\n"), "{d}");
        assert!(d.contains("\n-    <primitive id=\"b\" type=\"Dummy\"/>\n"), "{d}");
        assert!(d.contains("\n+    <primitive id=\"b\" type=\"Stateful\"/>\n"), "{d}");
        assert!(configuration_diff(&a, &a, "x", "y", false).is_empty());
        let c = configuration_diff(&a, &b, "before", "after", true);
        assert!(c.contains("\x1b[31m-    <primitive id=\"b\" type=\"Dummy\"/>\x1b[0m\n"), "{c}");
    }
}
