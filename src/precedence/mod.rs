//! Precedence: for each field of a cluster, which value survives the merge and why, and which
//! record should be the primary. The answer follows the rules file ([`Rules`]): a ranking of
//! source systems, an owner (system of record) per field or group, and per field an ordered list
//! of tie-breaking strategies. Who wrote a value and when comes from the record's per-property
//! history, never from the record's own update time unless there is no history. Every choice
//! carries a short reason a steward can read in a table cell, the losing values stay listed, and
//! the steward's overrides replace a suggestion while keeping where the value came from.
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
mod rules;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use engine::{PrecedenceError, suggest, suggest_with_primary};
pub use formats::{Format, is_domain, is_email, normalize_phone};
pub use rules::{
    DEFAULT_ORIGIN, DEFAULT_RULES, FieldPolicy, PrimaryRule, PrimaryStrategy, Rules, RulesError,
    RulesErrorKind, Strategy,
};

#[cfg(doc)]
use crate::model::Record;

/// Who settled a value or the primary: the rules, or the steward overriding them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecidedBy {
    #[default]
    Rules,
    Steward,
}

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
    /// Short enough for a table cell: "erp owns billing", "newest: 2026-03-01 from crm".
    pub reason: String,
    #[serde(default)]
    pub decided_by: DecidedBy,
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
    /// Every record's value in cluster order; records without one are left out.
    pub candidates: Vec<Candidate>,
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
                    Some(c) => FieldChoice {
                        value: Some(c.value.clone()),
                        record_id: Some(record_id.clone()),
                        system: c.system.clone(),
                        reason: format!("steward: from {record_id}"),
                        decided_by: DecidedBy::Steward,
                    },
                    None => FieldChoice {
                        value: None,
                        record_id: Some(record_id.clone()),
                        system: None,
                        reason: format!("steward: empty as in {record_id}"),
                        decided_by: DecidedBy::Steward,
                    },
                }
            }
            Override::Typed { value } => {
                let blank = value.trim().is_empty();
                FieldChoice {
                    value: (!blank).then(|| value.clone()),
                    record_id: None,
                    system: None,
                    reason: if blank {
                        "steward: cleared"
                    } else {
                        "steward: typed"
                    }
                    .to_string(),
                    decided_by: DecidedBy::Steward,
                }
            }
        };
        out.insert(field.clone(), choice);
    }
    Ok(out)
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
        };
        assert!(!f.conflicting(2));
        assert!(f.conflicting(3), "a third record without a city");
        f.candidates.push(candidate("3", "Köln"));
        assert!(f.conflicting(3));
        f.candidates.clear();
        assert!(!f.conflicting(3), "nobody has one: nothing to resolve");
    }
}
