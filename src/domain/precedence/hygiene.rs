//! Value hygiene: which values are junk, and the normalizer that tidies the whitespace of a
//! surviving value. A value is junk when it holds a character a terminal must be shown as an
//! escape ([`crate::domain::sanitize::for_terminal`]: controls, zero-width and other invisible
//! characters), when it has spaces at its ends, or when it is absurdly long; the engine sets
//! junk aside whenever a clean value exists, so "newest" or "longest" can never pick it over
//! one. The normalizer only ever touches whitespace, so it cannot change what a value means.
//! Pure functions over strings; this module knows no records.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// How the values of one field are judged and tidied (`[values]` of the rules file, or the
/// same keys in a rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValuePolicy {
    /// Longer than this many characters, a value is junk.
    pub max_chars: usize,
    /// Strip whitespace at both ends of the surviving value.
    pub trim: bool,
    /// Replace every run of whitespace inside the value by one space.
    pub collapse_spaces: bool,
    /// Line breaks (`\n`, `\r\n`) are part of the value (a multi-line text field), not junk.
    pub line_breaks: bool,
}

impl ValuePolicy {
    /// Trimming is on by default: whitespace at the ends of a CRM field never carries meaning,
    /// is invisible on screen, and makes two equal values differ. Collapsing is off: a double
    /// space inside a value is rare and visible in the diff. 1000 characters is about four
    /// times the longest legitimate value of an identity or address field (an email address
    /// has at most 254), far below a pasted document or the 10,000-character strings the
    /// `longest` strategy used to pick; a field that holds prose sets its own `max_chars`.
    pub const DEFAULT: ValuePolicy = ValuePolicy {
        max_chars: 1000,
        trim: true,
        collapse_spaces: false,
        line_breaks: false,
    };
}

impl Default for ValuePolicy {
    fn default() -> Self {
        ValuePolicy::DEFAULT
    }
}

/// Why a value is junk, most serious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Junk {
    /// A control character: an escape sequence, a tab, a NUL, a line break where none belongs.
    Control,
    /// A character that renders as nothing or moves text (zero-width space, bidi override, ...).
    Invisible,
    /// More than the field's `max_chars`.
    TooLong { max: usize },
    /// Whitespace at the start or the end (only when the field is not trimmed).
    EdgeSpace,
}

impl Junk {
    /// A few words for a table cell: "control chars", "over 1000 chars".
    pub fn describe(self) -> String {
        match self {
            Junk::Control => "control chars".to_string(),
            Junk::Invisible => "invisible chars".to_string(),
            Junk::TooLong { max } => format!("over {max} chars"),
            Junk::EdgeSpace => "edge spaces".to_string(),
        }
    }
}

/// Whether `value` (as it would be written: already normalized) is junk, and why.
pub fn junk(value: &str, policy: &ValuePolicy) -> Option<Junk> {
    // In a multi-line field the line breaks (`\n`, `\r\n`) are content: judge the lines.
    let lines: Vec<&str> = if policy.line_breaks {
        let parts: Vec<&str> = value.split('\n').collect();
        let last = parts.len() - 1;
        parts
            .into_iter()
            .enumerate()
            .map(|(i, l)| match l.strip_suffix('\r') {
                Some(l) if i < last => l,
                _ => l,
            })
            .collect()
    } else {
        vec![value]
    };
    let mut found = None;
    for c in lines
        .iter()
        .flat_map(|l| crate::domain::sanitize::escaped(l))
    {
        if c.is_control() {
            return Some(Junk::Control);
        }
        found = Some(Junk::Invisible);
    }
    found
        .or_else(|| {
            (value.chars().count() > policy.max_chars).then_some(Junk::TooLong {
                max: policy.max_chars,
            })
        })
        .or_else(|| (value.trim() != value).then_some(Junk::EdgeSpace))
}

/// What the normalizer did to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tidied {
    Trimmed,
    Collapsed,
    Both,
}

impl Tidied {
    /// The note a reason carries: "trimmed".
    pub fn describe(self) -> &'static str {
        match self {
            Tidied::Trimmed => "trimmed",
            Tidied::Collapsed => "spaces collapsed",
            Tidied::Both => "spaces tidied",
        }
    }
}

/// The value with its whitespace tidied as the policy says, and what was done (`None`: the
/// value is unchanged). Whitespace is Unicode's (tabs, line breaks, no-break and other
/// spaces); nothing else is ever touched.
pub fn normalize<'a>(value: &'a str, policy: &ValuePolicy) -> (Cow<'a, str>, Option<Tidied>) {
    let trimmed = if policy.trim { value.trim() } else { value };
    let trim_changed = trimmed.len() != value.len();
    let collapsed = if policy.collapse_spaces {
        collapse(trimmed, policy.line_breaks)
    } else {
        Cow::Borrowed(trimmed)
    };
    let collapse_changed = collapsed != trimmed;
    let tidied = match (trim_changed, collapse_changed) {
        (false, false) => None,
        (true, false) => Some(Tidied::Trimmed),
        (false, true) => Some(Tidied::Collapsed),
        (true, true) => Some(Tidied::Both),
    };
    (collapsed, tidied)
}

/// Every run of whitespace as one space; with `line_breaks`, a run that holds line breaks
/// keeps one `\n` per line break (paragraphs stay apart) and drops the spaces around them.
fn collapse(value: &str, line_breaks: bool) -> Cow<'_, str> {
    let mut out = String::with_capacity(value.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let breaks = run.matches('\n').count();
        if line_breaks && breaks > 0 {
            out.extend(std::iter::repeat_n('\n', breaks));
        } else {
            out.push(' ');
        }
        run.clear();
    };
    for c in value.chars() {
        if c.is_whitespace() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    if out == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ValuePolicy = ValuePolicy::DEFAULT;

    #[test]
    fn junk_is_told_by_kind() {
        assert_eq!(junk("Ander", &P), None);
        assert_eq!(junk("Zoë 👩\u{200D}💻 日本", &P), None);
        assert_eq!(junk("Ander\u{1b}[2J", &P), Some(Junk::Control));
        assert_eq!(junk("An\tder", &P), Some(Junk::Control));
        assert_eq!(junk("a\nb", &P), Some(Junk::Control));
        assert_eq!(junk("anna\u{200B}@x.de", &P), Some(Junk::Invisible));
        assert_eq!(
            junk("a\u{200C}b\u{2060}\u{2028}", &P),
            Some(Junk::Invisible)
        );
        assert_eq!(junk("Anna\u{A0}Berg", &P), Some(Junk::Invisible));
        // The most serious kind wins.
        assert_eq!(junk("\u{200B}a\u{7}", &P), Some(Junk::Control));
        let long = "x".repeat(1001);
        assert_eq!(junk(&long, &P), Some(Junk::TooLong { max: 1000 }));
        assert_eq!(junk(&"x".repeat(1000), &P), None);
        assert_eq!(junk("Ander ", &P), Some(Junk::EdgeSpace));
        assert_eq!(Junk::TooLong { max: 1000 }.describe(), "over 1000 chars");
    }

    #[test]
    fn line_breaks_are_junk_unless_the_field_has_lines() {
        let lines = ValuePolicy {
            line_breaks: true,
            ..P
        };
        assert_eq!(junk("first\nsecond\r\nthird", &lines), None);
        assert_eq!(junk("a\rb", &lines), Some(Junk::Control));
        assert_eq!(junk("a\n\u{1b}b", &lines), Some(Junk::Control));
        assert_eq!(junk("first\nsecond", &P), Some(Junk::Control));
    }

    #[test]
    fn the_normalizer_touches_whitespace_only() {
        assert_eq!(normalize("Ander", &P), (Cow::Borrowed("Ander"), None));
        assert_eq!(
            normalize("  Ander \t", &P),
            (Cow::Borrowed("Ander"), Some(Tidied::Trimmed))
        );
        assert_eq!(normalize("Anna  Berg", &P).0, "Anna  Berg");
        let collapse = ValuePolicy {
            collapse_spaces: true,
            ..P
        };
        assert_eq!(
            normalize(" Anna \u{A0}\t Berg ", &collapse),
            (Cow::Owned("Anna Berg".into()), Some(Tidied::Both))
        );
        assert_eq!(
            normalize("Anna  Berg", &collapse),
            (Cow::Owned("Anna Berg".into()), Some(Tidied::Collapsed))
        );
        // Invisible characters that are not whitespace stay (and stay junk).
        assert_eq!(normalize("Ander\u{200B}", &P).0, "Ander\u{200B}");
        // Nothing but whitespace: nothing left.
        assert_eq!(normalize("   ", &P).0, "");
        let off = ValuePolicy { trim: false, ..P };
        assert_eq!(normalize(" Ander ", &off), (Cow::Borrowed(" Ander "), None));
    }

    #[test]
    fn collapsing_keeps_paragraphs_of_a_multi_line_field() {
        let lines = ValuePolicy {
            collapse_spaces: true,
            line_breaks: true,
            ..P
        };
        assert_eq!(
            normalize("Dear  Anna, \r\n\r\n  thanks\t for\nall ", &lines).0,
            "Dear Anna,\n\nthanks for\nall"
        );
    }
}
