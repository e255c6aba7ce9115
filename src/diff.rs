//! Field-level and character-level differences between the records of a cluster: which fields
//! agree, which differ, and which characters of a value differ from a reference value. Pure
//! functions over strings; this module renders nothing and knows no terminal.

use similar::{ChangeTag, TextDiff};

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

/// Compare one field across records. Empty strings count as absent, as in [`crate::model::Record::get`].
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

/// Split `value` into runs that also occur in `reference` (in order) and runs that do not.
/// Character-level, so `Jon` against `John` marks nothing in `Jon` and `h` in `John`.
pub fn char_segments(reference: &str, value: &str) -> Vec<Segment> {
    let diff = TextDiff::from_chars(reference, value);
    let mut out: Vec<Segment> = Vec::new();
    for change in diff.iter_all_changes() {
        let changed = match change.tag() {
            ChangeTag::Equal => false,
            ChangeTag::Insert => true,
            // Deleted characters are in the reference only; the value has nothing to mark.
            ChangeTag::Delete => continue,
        };
        let text = change.value();
        match out.last_mut() {
            Some(last) if last.changed == changed => last.text.push_str(text),
            _ => out.push(Segment {
                text: text.to_string(),
                changed,
            }),
        }
    }
    out
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
