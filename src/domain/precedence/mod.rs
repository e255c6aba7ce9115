//! Precedence: for each field of a cluster, which value survives the merge and why, and which
//! record should be the primary. The answer follows the rules file ([`Rules`]): a ranking of
//! source systems, an owner (system of record) per field or group, and per field an ordered list
//! of tie-breaking strategies. Who wrote a value and when comes from the record's per-property
//! history, never from the record's own update time unless there is no history. Every choice
//! carries a short reason a steward can read in a table cell, the losing values stay listed, and
//! the steward's overrides replace a suggestion while keeping where the value came from.
//!
//! Value hygiene ([`hygiene`]): a value with control or invisible characters, spaces at its
//! ends or an absurd length is set aside whenever a clean one exists, and the surviving value,
//! suggested or overridden, goes through the field's normalizer (whitespace only); a choice the
//! normalizer changed says so in its reason and keeps the value as it was ([`Reason::raw`]).
//!
//! This module is pure computation over [`Record`]s: it must not call a CRM, touch SQLite or
//! know about the terminal.
//!
//! ```text
//! let rules = Rules::for_config(&config)?;                    // checked at start-up
//! let s = suggest(&records, &rules, &config.sources, &fields)?;
//! // show s.primary, and per field s.fields[i].chosen (value + reason) and .candidates
//! let choices = apply_overrides(&s, &steward_picks)?;         // field → FieldChoice
//! // the decision stores `choices`; the executor PATCHes them onto the survivor
//! ```

mod engine;
mod formats;
pub mod hygiene;
mod rules;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use engine::{PrecedenceError, suggest, suggest_with_primary};
pub use formats::{Format, is_domain, is_email, normalize_phone};
pub use hygiene::{Junk, Tidied, ValuePolicy, junk, normalize};
pub use rules::{
    DEFAULT_ORIGIN, DEFAULT_RULES, FieldPolicy, PrimaryRule, PrimaryStrategy, Rules, RulesError,
    RulesErrorKind, Strategy,
};

#[cfg(doc)]
use crate::domain::model::Record;

/// Who settled a value or the primary: the rules, or the steward overriding them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecidedBy {
    #[default]
    Rules,
    Steward,
}

/// How long a reason may be: what the cluster view's detail line and a narrow table column
/// can show without wrapping.
pub const REASON_MAX_CHARS: usize = 40;

/// The surviving value of one field, where it came from and why. This is what a decision
/// stores per field and what the executor writes: `value: None` means the field ends empty
/// (PATCH it as `""`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChoice {
    pub value: Option<String>,
    /// The record the value was taken from; `None` when the steward typed it or no record had one.
    pub record_id: Option<String>,
    /// The source system that wrote the value, from its property history.
    pub system: Option<String>,
    /// Why: "erp owns billing", "newest: 2026-03-01 from crm · trimmed". Stored flat, as the
    /// `reason` and `raw` keys of the choice.
    #[serde(flatten)]
    pub reason: Reason,
    #[serde(default)]
    pub decided_by: DecidedBy,
}

impl FieldChoice {
    /// The value as the record (or the steward) had it, when the normalizer changed it.
    pub fn raw(&self) -> Option<&str> {
        self.reason.raw.as_deref()
    }
}

/// Why a value survives, short enough for a table cell, and the value it was normalized from.
/// It reads as its text (`choice.reason == "only value"`, `&*choice.reason`). The raw value
/// sits here because normalizing is part of how the surviving value came about, and so that
/// a choice built field by field (`reason: "steward".into()`) still means "not normalized".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    #[serde(rename = "reason")]
    pub text: String,
    /// The value before the normalizer tidied it; absent when it was kept as it was (and in
    /// decisions stored before there was a normalizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Reason {
    pub fn new(text: impl Into<String>) -> Reason {
        Reason {
            text: text.into(),
            raw: None,
        }
    }
}

impl Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Reason {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for Reason {
    fn from(text: &str) -> Reason {
        Reason::new(text)
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Reason {
        Reason::new(text)
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

/// A reason of at most [`REASON_MAX_CHARS`], from a base (`long`, or its `short` form), the
/// notes that must be kept (what was set aside) and one that may be dropped (what the
/// normalizer did, which `raw` records anyway). Tried in order: everything with the long base,
/// with the short base, then without the dropped note, then the notes alone.
pub(crate) fn compose_reason(
    long: &str,
    short: &str,
    must: Option<&str>,
    may: Option<&str>,
) -> String {
    let join = |parts: &[Option<&str>]| {
        parts
            .iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let (long, short) = (Some(long), Some(short));
    let tries = [
        join(&[long, must, may]),
        join(&[short, must, may]),
        join(&[long, must]),
        join(&[short, must]),
        join(&[must, may]),
        join(&[must]),
    ];
    let fits = |t: &&String| !t.is_empty() && t.chars().count() <= REASON_MAX_CHARS;
    tries
        .iter()
        .find(fits)
        .or_else(|| tries.iter().rev().find(|t| !t.is_empty()))
        .cloned()
        .unwrap_or_default()
}

/// One record's value of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub record_id: String,
    pub value: String,
    /// Who wrote this value, from the history entry that set it; `None` without history.
    pub system: Option<String>,
    /// When this value was written: its history entry's time, else the record's update time.
    pub written_at: Option<DateTime<Utc>>,
    /// Whether `written_at` comes from the property history (`false`: the record's update time).
    pub from_history: bool,
    /// Whether the rules let `system` supply this field (`[systems.only]`).
    pub eligible: bool,
}

/// The suggestion for one field, with every record's value so the losers stay visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSuggestion {
    pub field: String,
    /// Never written back; `chosen` is `None` and overrides are refused.
    pub read_only: bool,
    pub chosen: Option<FieldChoice>,
    /// Every record's value in cluster order, as the records hold it (not normalized);
    /// records without one are left out.
    pub candidates: Vec<Candidate>,
    /// How this field's values are judged and tidied; overrides are normalized the same way.
    #[serde(default)]
    pub values: ValuePolicy,
}

impl FieldSuggestion {
    /// The value a record holds for this field.
    pub fn value_of(&self, record_id: &str) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.record_id == record_id)
    }

    /// Whether the records disagree (some value differs, or some record has none while another does).
    pub fn conflicting(&self, members: usize) -> bool {
        let first = self.candidates.first().map(|c| c.value.as_str());
        let some_missing = !self.candidates.is_empty() && self.candidates.len() != members;
        some_missing
            || self
                .candidates
                .iter()
                .any(|c| Some(c.value.as_str()) != first)
    }

    /// The values that lose to the chosen one.
    pub fn losers(&self) -> impl Iterator<Item = &Candidate> {
        let chosen = self.chosen.as_ref().and_then(|c| c.value.as_deref());
        self.candidates
            .iter()
            .filter(move |c| Some(c.value.as_str()) != chosen)
    }
}

/// The suggested primary record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryChoice {
    pub record_id: String,
    pub reason: String,
    #[serde(default)]
    pub decided_by: DecidedBy,
}

/// What precedence suggests for one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    pub primary: PrimaryChoice,
    /// The member record ids, in the order given.
    pub members: Vec<String>,
    /// One entry per requested field, in the order requested.
    pub fields: Vec<FieldSuggestion>,
}

impl Suggestion {
    pub fn field(&self, name: &str) -> Option<&FieldSuggestion> {
        self.fields.iter().find(|f| f.field == name)
    }

    /// The suggested choice of every writable field, with no override.
    pub fn choices(&self) -> BTreeMap<String, FieldChoice> {
        self.fields
            .iter()
            .filter_map(|f| f.chosen.clone().map(|c| (f.field.clone(), c)))
            .collect()
    }
}

/// A steward's pick for one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Override {
    /// Take this member record's value (an empty one clears the field).
    TakeFrom { record_id: String },
    /// A value the steward typed; empty or blank clears the field.
    Typed { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("field {0:?} is not among this cluster's fields")]
    UnknownField(String),
    #[error("field {0:?} is read-only and never written back")]
    ReadOnly(String),
    #[error("record {record_id} is not a member of this cluster (override of {field:?})")]
    NotInCluster { field: String, record_id: String },
}

/// The final value of every writable field: the suggestion, with the steward's picks in place
/// of it where there are any. What a decision stores and what the executor PATCHes.
pub fn apply_overrides(
    suggestion: &Suggestion,
    overrides: &BTreeMap<String, Override>,
) -> Result<BTreeMap<String, FieldChoice>, OverrideError> {
    for field in overrides.keys() {
        match suggestion.field(field) {
            None => return Err(OverrideError::UnknownField(field.clone())),
            Some(f) if f.read_only => return Err(OverrideError::ReadOnly(field.clone())),
            Some(_) => {}
        }
    }
    let mut out = suggestion.choices();
    for (field, pick) in overrides {
        let Some(f) = suggestion.field(field) else {
            continue;
        };
        let choice = match pick {
            Override::TakeFrom { record_id } => {
                if !suggestion.members.contains(record_id) {
                    return Err(OverrideError::NotInCluster {
                        field: field.clone(),
                        record_id: record_id.clone(),
                    });
                }
                match f.value_of(record_id) {
                    Some(c) => steward_choice(
                        &c.value,
                        &f.values,
                        Some(record_id.clone()),
                        c.system.clone(),
                        &format!("steward: from {record_id}"),
                        "steward: taken",
                    ),
                    None => FieldChoice {
                        value: None,
                        record_id: Some(record_id.clone()),
                        system: None,
                        reason: format!("steward: empty as in {record_id}").into(),
                        decided_by: DecidedBy::Steward,
                    },
                }
            }
            Override::Typed { value } => steward_choice(
                value,
                &f.values,
                None,
                None,
                "steward: typed",
                "steward: typed",
            ),
        };
        out.insert(field.clone(), choice);
    }
    Ok(out)
}

/// A value the steward picked, through the field's normalizer: it says what the normalizer
/// did and keeps what the steward picked, and names junk the steward chose to keep. A value
/// that is blank once tidied clears the field.
fn steward_choice(
    picked: &str,
    values: &ValuePolicy,
    record_id: Option<String>,
    system: Option<String>,
    long: &str,
    short: &str,
) -> FieldChoice {
    let (tidy, tidied) = normalize(picked, values);
    let blank = tidy.trim().is_empty();
    let raw = tidied.map(|_| picked.to_string());
    let text = if blank && record_id.is_none() {
        "steward: cleared".to_string()
    } else if blank {
        compose_reason(long, short, Some("blank"), tidied.map(Tidied::describe))
    } else {
        let junk = junk(&tidy, values).map(|j| format!("has {}", j.describe()));
        compose_reason(long, short, junk.as_deref(), tidied.map(Tidied::describe))
    };
    FieldChoice {
        value: (!blank).then(|| tidy.into_owned()),
        record_id,
        system,
        reason: Reason { text, raw },
        decided_by: DecidedBy::Steward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(record_id: &str, value: &str) -> Candidate {
        Candidate {
            record_id: record_id.into(),
            value: value.into(),
            system: None,
            written_at: None,
            from_history: false,
            eligible: true,
        }
    }

    #[test]
    fn a_field_conflicts_when_values_differ_or_some_record_lacks_one() {
        let mut f = FieldSuggestion {
            field: "city".into(),
            read_only: false,
            chosen: None,
            candidates: vec![candidate("1", "Bonn"), candidate("2", "Bonn")],
            values: ValuePolicy::DEFAULT,
        };
        assert!(!f.conflicting(2));
        assert!(f.conflicting(3), "a third record without a city");
        f.candidates.push(candidate("3", "Köln"));
        assert!(f.conflicting(3));
        f.candidates.clear();
        assert!(!f.conflicting(3), "nobody has one: nothing to resolve");
    }

    #[test]
    fn reasons_keep_what_was_set_aside_within_the_budget() {
        assert_eq!(compose_reason("only value", "", None, None), "only value");
        assert_eq!(
            compose_reason(
                "newest: 2026-03-01 from crm",
                "newest",
                None,
                Some("trimmed")
            ),
            "newest: 2026-03-01 from crm · trimmed"
        );
        assert_eq!(
            compose_reason(
                "newest: 2026-03-01 from marketing",
                "newest",
                None,
                Some("trimmed")
            ),
            "newest · trimmed"
        );
        assert_eq!(
            compose_reason(
                "newest: 2026-03-01 from crm",
                "newest",
                Some("set aside: invisible chars"),
                None
            ),
            "newest · set aside: invisible chars"
        );
        assert_eq!(
            compose_reason(
                "only clean value",
                "",
                Some("set aside: invisible chars"),
                Some("trimmed")
            ),
            "set aside: invisible chars · trimmed"
        );
        assert_eq!(
            compose_reason(
                "most complete record (12 fields)",
                "most complete",
                Some("no clean value: invisible chars"),
                Some("spaces tidied")
            ),
            "no clean value: invisible chars"
        );
    }

    #[test]
    fn a_reason_reads_as_its_text_and_stores_flat() {
        let old = r#"{"value":"Bonn","record_id":"1","system":"erp","reason":"erp owns billing"}"#;
        let c: FieldChoice = serde_json::from_str(old).unwrap();
        assert_eq!(c.reason, "erp owns billing");
        assert_eq!(c.raw(), None);
        assert_eq!(c.decided_by, DecidedBy::Rules);
        let tidied = FieldChoice {
            reason: Reason {
                text: "only value · trimmed".into(),
                raw: Some("Bonn ".into()),
            },
            ..c
        };
        let json = serde_json::to_value(&tidied).unwrap();
        assert_eq!(json["reason"], "only value · trimmed");
        assert_eq!(json["raw"], "Bonn ");
        assert_eq!(serde_json::from_value::<FieldChoice>(json).unwrap(), tidied);
        assert!(
            !serde_json::to_string(&FieldChoice {
                reason: "x".into(),
                ..tidied
            })
            .unwrap()
            .contains("raw")
        );
    }
}
