//! Readable differences between two configurations, for the dry run.

use similar::TextDiff;

use crate::xml::Element;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

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
    let diff = TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string();
    if !color {
        return text;
    }
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let paint = if line.starts_with("---") || line.starts_with("+++") {
            BOLD
        } else if line.starts_with("@@") {
            CYAN
        } else if line.starts_with('-') {
            RED
        } else if line.starts_with('+') {
            GREEN
        } else {
            ""
        };
        if paint.is_empty() {
            out.push_str(line);
        } else {
            let body = line.strip_suffix('\n').unwrap_or(line);
            out.push_str(paint);
            out.push_str(body);
            out.push_str(RESET);
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

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
