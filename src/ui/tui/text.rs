//! Record values are untrusted text from a CRM: before any of it becomes a `Span` it passes
//! through [`sanitize`] (the crate-wide [`crate::domain::sanitize::for_terminal`]), so an escape
//! sequence, a bidi override, a NUL or an invisible character is shown as a visible escape
//! instead of reaching the terminal. Also the width arithmetic that keeps columns aligned, and
//! truncation with an ellipsis. Widths are counted per grapheme cluster exactly as ratatui's
//! buffer counts them (a cluster with no width is dropped there, a wide one takes two cells),
//! so an emoji sequence or a letter with combining marks is never cut apart and the padding
//! computed here is the padding drawn. No styling here.

use std::borrow::Cow;

use ratatui::buffer::CellWidth;
use unicode_segmentation::UnicodeSegmentation;

/// The value with every character that could steer the terminal, or that would not be seen,
/// shown as an escape.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    crate::domain::sanitize::for_terminal(s)
}

/// Columns one grapheme cluster takes in ratatui's buffer; clusters holding a control
/// character are never drawn.
fn cluster_width(g: &str) -> usize {
    if g.contains(char::is_control) {
        0
    } else {
        usize::from(g.cell_width())
    }
}

/// Columns the text takes on a terminal.
pub fn width(s: &str) -> usize {
    s.graphemes(true).map(cluster_width).sum()
}

/// The longest prefix of `s` that fits in `max` columns, with `…` when cut. Never splits a
/// wide character or a grapheme cluster (a letter and its marks, an emoji sequence).
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = prefix(s, max - 1).to_string();
    out.push('…');
    Cow::Owned(out)
}

/// The longest prefix of `s` that fits in `max` columns, without an ellipsis.
pub fn prefix(s: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, g) in s.grapheme_indices(true) {
        let w = cluster_width(g);
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
        let s = sanitize("a\u{1b}[31mred\u{0}\u{7}\n\u{202e}x\u{200b}");
        assert_eq!(s, "a\\e[31mred\\0\\u{0007}\\n\\u{202E}x\\u{200B}");
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

    #[test]
    fn widths_are_the_widths_ratatui_draws() {
        use ratatui::buffer::Buffer;
        use ratatui::layout::Rect;
        // Escapes, emoji sequences, keycaps, flags, decomposed accents and wide characters.
        let values = [
            sanitize("anna\u{200B}@x.de\u{2028}\u{200C}\u{2060}").into_owned(),
            "👩\u{200D}💻 ok".to_string(),
            "1\u{FE0F}\u{20E3} ❤\u{FE0F}".to_string(),
            "🇩🇪 🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}".to_string(),
            "Jose\u{301} Vie\u{323}\u{302}t".to_string(),
            "日本語 ﾃﾞ".to_string(),
        ];
        for v in &values {
            let mut buf = Buffer::empty(Rect::new(0, 0, 60, 1));
            let (end, _) = buf.set_stringn(0, 0, v, 60, ratatui::style::Style::new());
            assert_eq!(width(v), usize::from(end), "{v:?}");
            // Cutting never leaves a cluster half drawn.
            for max in 0..width(v) {
                let p = prefix(v, max);
                assert!(width(p) <= max, "{v:?} at {max}");
                assert!(
                    v.grapheme_indices(true).any(|(i, _)| i == p.len()),
                    "{v:?} cut inside a cluster at {max}"
                );
            }
        }
        assert_eq!(width("👩\u{200D}💻"), 2);
        assert_eq!(prefix("a👩\u{200D}💻b", 2), "a");
        assert_eq!(truncate("a👩\u{200D}💻bc", 4), "a👩\u{200D}💻…");
    }
}
