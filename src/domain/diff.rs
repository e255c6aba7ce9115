//! Field-level and character-level differences between the records of a cluster: which fields
//! agree, which differ, and which characters of a value differ from a reference value. A
//! difference is never allowed to vanish: a changed run that would show nothing (combining
//! marks, an invisible character) or that would look exactly like what it replaces (`é`
//! against `e` + U+0301) is given as escapes. Pure functions over strings; this module renders
//! nothing.

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffTag, capture_diff_slices_deadline};
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::domain::sanitize::{escape_all_non_ascii, for_terminal};

/// How the members of a cluster relate on one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAgreement {
    /// No member has a value.
    Empty,
    /// Every member has the same value.
    Same,
    /// The members that have a value agree, some have none.
    Partial,
    /// At least two members hold different values.
    Differs,
}

impl FieldAgreement {
    /// Worth the steward's attention.
    pub fn differs(self) -> bool {
        matches!(self, FieldAgreement::Partial | FieldAgreement::Differs)
    }
}

/// Compare one field across records. Empty strings count as absent, as in [`crate::domain::model::Record::get`].
pub fn compare<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> FieldAgreement {
    let mut first: Option<&str> = None;
    let mut missing = false;
    let mut differs = false;
    for v in values {
        match v.filter(|v| !v.is_empty()) {
            None => missing = true,
            Some(v) => match first {
                None => first = Some(v),
                Some(f) if f != v => differs = true,
                Some(_) => {}
            },
        }
    }
    match (first, differs, missing) {
        (None, _, _) => FieldAgreement::Empty,
        (Some(_), true, _) => FieldAgreement::Differs,
        (Some(_), false, true) => FieldAgreement::Partial,
        (Some(_), false, false) => FieldAgreement::Same,
    }
}

/// A run of characters of a value, marked when it is not in the reference value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub changed: bool,
}

/// Two very long values that differ everywhere would cost the diff quadratic time; past this a
/// coarser (still correct) split is fine for a screen.
const DIFF_DEADLINE: Duration = Duration::from_millis(50);

/// Split `value` into runs that also occur in `reference` (in order) and runs that do not.
/// Character-level, so `Jon` against `John` marks nothing in `Jon` and `h` in `John`; the unit
/// is the grapheme cluster, so a letter is never parted from its accents, nor an emoji
/// sequence split (a run starting with a bare mark would be drawn as nothing).
///
/// Every run is passed through [`for_terminal`] (text already sanitized, as the TUI passes it,
/// stays as it is). A changed run is shown as escapes of its non-ASCII characters when it
/// would otherwise not be seen: when it has no width (`Jose` + U+0301 against `Jose` marks
/// `\u{0301}`), or when it is canonically equivalent to what it replaces, so it would be
/// drawn identically (`José` in NFD against the NFC survivor marks `e\u{0301}`).
pub fn char_segments(reference: &str, value: &str) -> Vec<Segment> {
    let old: Vec<&str> = reference.graphemes(true).collect();
    let new: Vec<&str> = value.graphemes(true).collect();
    let ops = capture_diff_slices_deadline(
        Algorithm::Myers,
        &old,
        &new,
        Instant::now().checked_add(DIFF_DEADLINE),
    );
    let mut out: Vec<Segment> = Vec::new();
    for op in ops {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        let text = new[new_range].concat();
        let replaced = old[old_range].concat();
        let (text, changed) = match tag {
            DiffTag::Equal => (for_terminal(&text).into_owned(), false),
            // Deleted characters are in the reference only; the value has nothing to mark.
            DiffTag::Delete => continue,
            DiffTag::Insert | DiffTag::Replace => (visible_change(&text, &replaced), true),
        };
        match out.last_mut() {
            Some(last) if last.changed == changed => last.text.push_str(&text),
            _ => out.push(Segment { text, changed }),
        }
    }
    out
}

/// A changed run as it must be shown so that the change can be seen.
fn visible_change(inserted: &str, replaced: &str) -> String {
    let shown = for_terminal(inserted);
    let blank = UnicodeWidthStr::width(shown.as_ref()) == 0;
    let lookalike = !replaced.is_empty() && inserted.nfc().eq(replaced.nfc());
    if blank || lookalike {
        escape_all_non_ascii(inserted)
    } else {
        shown.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_reads_empty_as_absent() {
        assert_eq!(compare([None, Some("")]), FieldAgreement::Empty);
        assert_eq!(compare([Some("a"), Some("a")]), FieldAgreement::Same);
        assert_eq!(
            compare([Some("a"), None, Some("")]),
            FieldAgreement::Partial
        );
        assert_eq!(compare([Some("a"), Some("b")]), FieldAgreement::Differs);
        assert!(compare([Some("a"), Some("b"), None]).differs());
        assert!(!compare([Some("a")]).differs());
    }

    #[test]
    fn segments_mark_only_what_the_reference_lacks() {
        let segs = char_segments("Jon Smith", "John Smyth");
        let changed: String = segs
            .iter()
            .filter(|s| s.changed)
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(changed, "hy");
        let whole: String = segs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(whole, "John Smyth");
        assert_eq!(
            char_segments("same", "same"),
            vec![Segment {
                text: "same".into(),
                changed: false
            }]
        );
    }

    fn changed(segs: &[Segment]) -> String {
        segs.iter()
            .filter(|s| s.changed)
            .map(|s| s.text.as_str())
            .collect()
    }

    fn whole(segs: &[Segment]) -> String {
        segs.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn a_difference_of_combining_marks_alone_is_shown_as_escapes() {
        // The NFD value against the NFC survivor: drawn alike, so the run is spelled out.
        let nfd = char_segments("Jos\u{e9}", "Jose\u{301}");
        assert_eq!(changed(&nfd), "e\\u{0301}");
        assert_eq!(whole(&nfd), "Jose\\u{0301}");
        // And the other way round.
        let nfc = char_segments("Jose\u{301}", "Jos\u{e9}");
        assert_eq!(changed(&nfc), "\\u{00E9}");
        // A real accent against none is a visible difference and stays a letter.
        let accent = char_segments("Jose", "Jose\u{301}");
        assert_eq!(changed(&accent), "e\u{301}");
        // A mark that has no base left (the whole value) has no width: escaped.
        assert_eq!(changed(&char_segments("", "\u{301}")), "\\u{0301}");
    }

    #[test]
    fn a_difference_of_invisible_characters_is_shown() {
        // Raw values: the invisible run becomes its escape.
        for (raw, want) in [
            ("anna\u{200B}@x.de", "\\u{200B}"),
            // ZWNJ extends the letter before it: the pair is one cluster.
            ("an\u{200C}na@x.de", "n\\u{200C}"),
            ("anna\u{2060}@x.de", "\\u{2060}"),
            ("anna@x.de\u{2028}", "\\u{2028}"),
        ] {
            let segs = char_segments("anna@x.de", raw);
            assert_eq!(changed(&segs), want, "{raw:?}");
            assert_eq!(whole(&segs), for_terminal(raw), "{raw:?}");
        }
        // Already sanitized, as the TUI passes it: the escape is the changed run.
        let shown = for_terminal("anna\u{200B}@x.de");
        assert_eq!(changed(&char_segments("anna@x.de", &shown)), "\\u{200B}");
        // A changed space is a changed run of its own (the view underlines it).
        assert_eq!(changed(&char_segments("Ander", "Ander ")), " ");
    }

    #[test]
    fn emoji_sequences_are_never_split() {
        let segs = char_segments("Kim 👩\u{200D}🔬", "Kim 👩\u{200D}💻");
        assert_eq!(changed(&segs), "👩\u{200D}💻");
    }

    #[test]
    fn segments_handle_multibyte_characters() {
        let segs = char_segments("Müller", "Muller");
        assert_eq!(
            segs.iter()
                .filter(|s| s.changed)
                .map(|s| s.text.as_str())
                .collect::<String>(),
            "u"
        );
    }
}
