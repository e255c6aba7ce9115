//! The suggestion column of the cluster screen: which record should be the primary and which
//! value should survive per field, with the reason, as the precedence engine
//! ([`crate::precedence`]) decides them. This module only adapts its answer to what the
//! screen and the decision log hold (a [`FieldChoice`] per field). Pure: no store, no terminal.

use crate::config::SourcesConfig;
use crate::model::Record;
use crate::precedence::{self, Rules};
use crate::store::decisions::FieldChoice;
use crate::store::records::StoredRecord;

#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryChoice {
    pub record_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldSuggestion {
    pub field: String,
    pub chosen: Option<FieldChoice>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub primary: PrimaryChoice,
    pub fields: Vec<FieldSuggestion>,
}

/// The source system that wrote a record's current value of `field`.
pub fn value_system(rec: &StoredRecord, field: &str, sources: &SourcesConfig) -> String {
    rec.record
        .latest_version(field)
        .map(|v| {
            sources
                .system_for(&v.source_type, v.source_id.as_deref())
                .to_string()
        })
        .unwrap_or_else(|| rec.system.clone())
}

/// Suggest a primary and a surviving value per field for `members` (in row order). When the
/// steward has picked the primary (`primary`), the suggestion follows it.
pub fn suggest(
    members: &[StoredRecord],
    fields: &[String],
    sources: &SourcesConfig,
    rules: &Rules,
    primary: Option<&str>,
) -> Suggestion {
    let records: Vec<Record> = members.iter().map(|m| m.record.clone()).collect();
    let answer = match primary {
        Some(p) => precedence::suggest_with_primary(&records, rules, sources, fields, p),
        None => precedence::suggest(&records, rules, sources, fields),
    };
    match answer {
        Ok(s) => Suggestion {
            primary: PrimaryChoice {
                record_id: s.primary.record_id,
                reason: s.primary.reason,
            },
            fields: s
                .fields
                .into_iter()
                .map(|f| FieldSuggestion {
                    field: f.field,
                    chosen: f.chosen,
                })
                .collect(),
        },
        Err(e) => {
            // Only an empty cluster or an unknown primary get here; show nothing rather than
            // guess.
            tracing::warn!(error = %e, "no precedence suggestion");
            Suggestion {
                primary: PrimaryChoice {
                    record_id: primary
                        .or(members.first().map(|m| m.record.id.as_str()))
                        .unwrap_or_default()
                        .to_string(),
                    reason: e.to_string(),
                },
                fields: fields
                    .iter()
                    .map(|f| FieldSuggestion {
                        field: f.clone(),
                        chosen: None,
                    })
                    .collect(),
            }
        }
    }
}
