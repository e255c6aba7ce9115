//! Plain data: records with their per-property history, and the vocabulary shared by every
//! layer (object types, source systems). Everything here is serde data; this module must not
//! know about SQL, HTTP or the terminal.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A CRM object type. HubSpot names them by their URL path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Contacts,
    Companies,
}

impl ObjectType {
    pub const ALL: [ObjectType; 2] = [ObjectType::Contacts, ObjectType::Companies];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
        }
    }

    /// The property HubSpot updates on every change of a record of this type. Contacts use
    /// `lastmodifieddate`, companies `hs_lastmodifieddate`.
    pub fn last_modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            ObjectType::Companies => "hs_lastmodifieddate",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "contacts" | "contact" => Ok(ObjectType::Contacts),
            "companies" | "company" => Ok(ObjectType::Companies),
            other => Err(format!(
                "unknown object type {other:?} (expected contacts or companies)"
            )),
        }
    }
}

/// One version of one property, as HubSpot reports it in `propertiesWithHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyVersion {
    pub value: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// HubSpot's `sourceType` (CRM_UI, INTEGRATION, IMPORT, FORM, API, ...).
    pub source_type: String,
    /// HubSpot's `sourceId`: for an integration, which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

/// A CRM record as last seen. `history` holds, per property, its versions newest first; it is
/// where per-field recency and source come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub object_type: ObjectType,
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub history: BTreeMap<String, Vec<PropertyVersion>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub archived: bool,
}

impl Record {
    /// A property's value, with empty strings read as absent (HubSpot clears with `""`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .filter(|v| !v.is_empty())
    }

    /// The newest history entry of a property, if the record carries history for it.
    pub fn latest_version(&self, name: &str) -> Option<&PropertyVersion> {
        self.history.get(name).and_then(|h| h.first())
    }
}

/// The type of a CRM property, as HubSpot's properties API names it (`type`). Values of every
/// type travel as strings; the type says which strings the CRM accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyKind {
    String,
    Number,
    /// A calendar day: `YYYY-MM-DD`, or epoch milliseconds at midnight UTC.
    Date,
    /// A point in time: ISO 8601, or epoch milliseconds.
    Datetime,
    /// One of `options` (several, `;`-separated, for a checkbox field).
    Enumeration,
    /// `true` or `false`.
    Bool,
    PhoneNumber,
    /// A type this dupdesk does not know; its values are not checked.
    #[serde(other)]
    Other,
}

/// One allowed value of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyOption {
    /// What is stored and sent.
    pub value: String,
    /// What the CRM's UI shows.
    pub label: String,
    #[serde(default)]
    pub hidden: bool,
}

/// A property as the CRM defines it: what dupdesk must know to tell, before any merge, whether
/// the CRM will accept a value for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyDef {
    pub name: String,
    #[serde(default)]
    pub label: String,
    pub kind: PropertyKind,
    /// HubSpot's `fieldType` (text, textarea, select, checkbox, booleancheckbox, date, ...).
    #[serde(default)]
    pub field_type: String,
    /// The allowed values of an enumeration; empty otherwise.
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// The CRM refuses writes (HubSpot's `modificationMetadata.readOnlyValue`).
    #[serde(default)]
    pub read_only: bool,
    /// Computed by the CRM (HubSpot's `calculated`); never written.
    #[serde(default)]
    pub calculated: bool,
    /// No two live records may hold the same value (HubSpot's `hasUniqueValue`, and a contact's
    /// `email`, which HubSpot keeps unique although its definition does not say so).
    #[serde(default)]
    pub unique: bool,
}

impl PropertyDef {
    /// Whether the CRM accepts writes of this property at all.
    pub fn writable(&self) -> bool {
        !self.read_only && !self.calculated
    }
}

/// The property definitions of one object type, by name. Empty when the CRM was never asked
/// (a workspace filled from a CSV export): then nothing is known and nothing is refused here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyCatalog {
    pub defs: BTreeMap<String, PropertyDef>,
    /// When the CRM was last asked (RFC 3339); `None` when never.
    #[serde(default)]
    pub fetched_at: Option<String>,
}

impl PropertyCatalog {
    pub fn new(defs: impl IntoIterator<Item = PropertyDef>, fetched_at: Option<String>) -> Self {
        PropertyCatalog {
            defs: defs.into_iter().map(|d| (d.name.clone(), d)).collect(),
            fetched_at,
        }
    }

    pub fn is_known(&self) -> bool {
        !self.defs.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&PropertyDef> {
        self.defs.get(name)
    }
}

/// Timestamps are stored and sent as RFC 3339 with milliseconds and `Z`, like HubSpot's, so
/// that their text order is their time order.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_type_round_trips() {
        for t in ObjectType::ALL {
            assert_eq!(t.as_str().parse::<ObjectType>(), Ok(t));
        }
        assert!("deals".parse::<ObjectType>().is_err());
    }

    #[test]
    fn timestamps_sort_as_text() {
        let a = parse_ts("2026-03-01T10:00:00.000Z").unwrap();
        let b = parse_ts("2026-03-01T09:59:59.999Z").unwrap();
        assert!(format_ts(&a) > format_ts(&b));
        assert_eq!(format_ts(&a), "2026-03-01T10:00:00.000Z");
    }

    #[test]
    fn empty_string_reads_as_absent() {
        let mut r = Record {
            object_type: ObjectType::Contacts,
            id: "1".into(),
            properties: BTreeMap::new(),
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        };
        r.properties.insert("email".into(), Some(String::new()));
        r.properties.insert("phone".into(), None);
        r.properties.insert("city".into(), Some("Bonn".into()));
        assert_eq!(r.get("email"), None);
        assert_eq!(r.get("phone"), None);
        assert_eq!(r.get("city"), Some("Bonn"));
    }
}
