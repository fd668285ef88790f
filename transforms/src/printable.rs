//! Text from documents made safe for a terminal.
//!
//! Values and ids come from other sites and from local files. The parser
//! already refuses the control characters XML forbids, but XML allows C1
//! controls (U+0080 to U+009F, among them CSI) and bidirectional overrides,
//! which a terminal or a reader can be fooled by. Everything printed for
//! people (`diff`, `status`, error messages) goes through [`printable`].

use std::borrow::Cow;

/// `s` with every control character other than line feed and tab, and
/// every bidirectional control, written as `\u{XX}`.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_escaped_the_rest_is_kept() {
        assert_eq!(printable("plain é\n\tline"), "plain é\n\tline");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("\u{9b}31m\u{7f}\r"), "\\u{9b}31m\\u{7f}\\u{d}");
        assert_eq!(printable("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
    }
}
