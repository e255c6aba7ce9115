//! Record values are untrusted: before any of them reaches a terminal (CLI output or the TUI)
//! control characters, escape sequences, bidi overrides and NULs are replaced by visible
//! escapes, so a value can neither move the cursor, recolour the screen nor reorder text.

use std::borrow::Cow;

/// Whether a character must not reach a terminal as itself.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{200E}' | '\u{200F}' // LRM, RLM
            | '\u{061C}'              // Arabic letter mark
            | '\u{FEFF}'              // BOM / zero-width no-break space
        )
}

/// The value with every unsafe character shown as an escape: `\e` for ESC, `\0`, `\n`, `\t`,
/// `\r`, and `\u{XXXX}` for the rest.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            other => out.push_str(&format!("\\u{{{:04X}}}", other as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_characters_become_visible_escapes() {
        let cases = [
            ("plain José Müller", "plain José Müller"),
            ("\u{1b}[31mred\u{1b}[0m", "\\e[31mred\\e[0m"),
            ("a\0b", "a\\0b"),
            ("line\nbreak\ttab", "line\\nbreak\\ttab"),
            ("\u{202E}evil", "\\u{202E}evil"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            ("\u{9b}31m", "\\u{009B}31m"),
            ("\u{7f}", "\\u{007F}"),
        ];
        for (input, want) in cases {
            assert_eq!(for_terminal(input), want, "{input:?}");
        }
        assert!(matches!(for_terminal("safe"), Cow::Borrowed(_)));
    }
}
