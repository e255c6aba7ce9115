//! The suggestion column of the cluster screen: which record should be the primary and which
//! value should survive per field, with the reason. Until the precedence engine lands this is
//! a fallback (the oldest record is the primary and its values survive, reason "primary");
//! [`suggest`] is the one function to switch over to `precedence::suggest`. Pure: no store, no
//! terminal.

use crate::config::SourcesConfig;
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
    primary: Option<&str>,
) -> Suggestion {
    let picked = primary.and_then(|id| members.iter().find(|m| m.record.id == id));
    // HubSpot keeps the older record's values by default; the oldest record is the safe guess.
    let oldest = members
        .iter()
        .min_by(|a, b| {
            let ka = (a.record.created_at.is_none(), a.record.created_at, a.rid);
            let kb = (b.record.created_at.is_none(), b.record.created_at, b.rid);
            ka.cmp(&kb)
        })
        .or(members.first());
    let Some(primary) = picked.or(oldest) else {
        return Suggestion {
            primary: PrimaryChoice {
                record_id: String::new(),
                reason: String::new(),
            },
            fields: Vec::new(),
        };
    };
    let fields = fields
        .iter()
        .map(|field| {
            let choice = |rec: &StoredRecord, reason: &str| FieldChoice {
                value: rec.record.get(field).map(str::to_string),
                record_id: rec.record.id.clone(),
                system: value_system(rec, field, sources),
                reason: reason.to_string(),
            };
            let chosen = if primary.record.get(field).is_some() {
                Some(choice(primary, "primary"))
            } else {
                members
                    .iter()
                    .find(|m| m.record.get(field).is_some())
                    .map(|m| choice(m, "only one"))
            };
            FieldSuggestion {
                field: field.clone(),
                chosen,
            }
        })
        .collect();
    Suggestion {
        primary: PrimaryChoice {
            record_id: primary.record.id.clone(),
            reason: if picked.is_some() {
                "picked by steward".into()
            } else {
                "oldest record".into()
            },
        },
        fields,
    }
}
