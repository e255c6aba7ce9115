//! Record values are untrusted text from a CRM: before any of it becomes a `Span` it passes
//! through [`sanitize`] (the crate-wide [`crate::sanitize::for_terminal`]), so an escape
//! sequence, a bidi override or a NUL is shown as a visible escape instead of reaching the
//! terminal. Also the width arithmetic (wide and combining characters) that keeps columns
//! aligned, and truncation with an ellipsis. No styling here.

use std::borrow::Cow;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The value with every character that could steer the terminal shown as an escape.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    crate::sanitize::for_terminal(s)
}

/// Columns the text takes on a terminal.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// The longest prefix of `s` that fits in `max` columns, with `…` when cut. Never splits a
/// wide character across the limit, and keeps combining marks with their base character.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    Cow::Owned(out)
}

/// The longest prefix of `s` that fits in `max` columns, without an ellipsis.
pub fn prefix(s: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > max {
            return &s[..i];
        }
        used += w;
    }
    s
}

/// `s` truncated to `width` columns and padded with spaces to exactly `width`.
pub fn fit(s: &str, cols: usize) -> String {
    let t = truncate(s, cols);
    let pad = cols.saturating_sub(width(&t));
    let mut out = t.into_owned();
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_are_shown_not_sent() {
        let s = sanitize("a\u{1b}[31mred\u{0}\u{7}\n\u{202e}x");
        assert_eq!(s, "a\\e[31mred\\0\\u{0007}\\n\\u{202E}x");
        assert!(!s.chars().any(|c| c.is_control()));
        assert!(matches!(sanitize("plain Müller"), Cow::Borrowed(_)));
    }

    #[test]
    fn truncation_respects_display_width() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        // Each CJK character is two columns wide.
        assert_eq!(truncate("日本語テキスト", 6), "日本…");
        assert_eq!(width(&truncate("日本語テキスト", 6)), 5);
        assert_eq!(fit("日本語テキスト", 6), "日本… ");
        // A combining mark adds no width and stays with its letter.
        assert_eq!(width("e\u{301}te\u{301}"), 3);
        assert_eq!(fit("e\u{301}te\u{301}", 5), "e\u{301}te\u{301}  ");
        assert_eq!(truncate("e\u{301}te\u{301}x", 3), "e\u{301}t…");
        assert_eq!(prefix("日本語", 5), "日本");
        assert_eq!(prefix("abc", 5), "abc");
    }
}
