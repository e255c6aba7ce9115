//! The checks a merge plan passes before its first irreversible call. A merge in a CRM cannot be
//! undone, and the field update that carries the steward's choices runs *after* the merges: a
//! value the CRM refuses found out then leaves a half-finished job. So everything that can be
//! known beforehand is checked beforehand, here, as pure functions over the CRM's property
//! definitions ([`PropertyCatalog`]) and records read from it:
//!
//! - every value the update will write is one the CRM accepts ([`check_value`]: writable,
//!   enumeration options, number, date, datetime, bool, email format, length);
//! - every member still holds what the steward was shown ([`changes_since_review`]);
//! - which written values must be unique among live records ([`unique_values`]; the executor
//!   asks the CRM who else holds them).
//!
//! The review draft ([`crate::ops::review`]) runs the value checks when the steward approves, and the
//! executor runs all of them again, with definitions read fresh from the CRM, right before the
//! first merge. This module calls no CRM and touches no store.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate};

use crate::domain::model::{ObjectType, PropertyCatalog, PropertyDef, PropertyKind, Record};
use crate::domain::precedence::is_email;

/// HubSpot refuses string values longer than this (its documented limit for a text property).
pub const MAX_VALUE_CHARS: usize = 65_536;

const DAY_MS: i64 = 86_400_000;

/// Why the CRM would refuse a value for a property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("the CRM has no property {0:?}")]
    UnknownProperty(String),
    #[error("{0} is read-only in the CRM")]
    ReadOnly(String),
    #[error("{field}: {value:?} is not one of the CRM's options ({options})")]
    NotAnOption {
        field: String,
        value: String,
        options: String,
    },
    #[error("{field}: {value:?} is not a {expected}")]
    BadFormat {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("{field}: {chars} characters is more than the CRM's {MAX_VALUE_CHARS}")]
    TooLong { field: String, chars: usize },
}

/// Whether the CRM would accept `value` for `def`. An empty value clears the property and is
/// always accepted by a writable one.
pub fn check_value(object: ObjectType, def: &PropertyDef, value: &str) -> Result<(), ValueProblem> {
    let field = def.name.as_str();
    if !def.writable() {
        return Err(ValueProblem::ReadOnly(field.to_string()));
    }
    if value.is_empty() {
        return Ok(());
    }
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Err(ValueProblem::TooLong {
            field: field.to_string(),
            chars,
        });
    }
    let bad = |expected| ValueProblem::BadFormat {
        field: field.to_string(),
        value: value.to_string(),
        expected,
    };
    // HubSpot refuses leading or trailing whitespace in every value that is not text
    // (LEADING_TRAILING_WHITESPACE).
    let text = matches!(def.kind, PropertyKind::String | PropertyKind::PhoneNumber);
    if !text && value.trim() != value {
        return Err(bad("value without leading or trailing whitespace"));
    }
    match def.kind {
        PropertyKind::Enumeration => {
            let allowed = |v: &str| def.options.iter().any(|o| o.value == v);
            // A checkbox (multiple choice) takes several options, `;`-separated.
            let ok = if def.field_type == "checkbox" {
                value.split(';').all(|v| v.is_empty() || allowed(v))
            } else {
                allowed(value)
            };
            if !ok {
                let mut options: Vec<&str> = def
                    .options
                    .iter()
                    .filter(|o| !o.hidden)
                    .map(|o| o.value.as_str())
                    .collect();
                if options.len() > 8 {
                    options.truncate(8);
                    options.push("...");
                }
                return Err(ValueProblem::NotAnOption {
                    field: field.to_string(),
                    value: value.to_string(),
                    options: options.join(", "),
                });
            }
        }
        PropertyKind::Number => {
            if !is_decimal(value) {
                return Err(bad("number (digits, an optional - and one decimal point)"));
            }
        }
        PropertyKind::Date => {
            if instant_millis(value).is_none_or(|ms| ms.rem_euclid(DAY_MS) != 0) {
                return Err(bad("date (YYYY-MM-DD, or a time at midnight UTC)"));
            }
        }
        PropertyKind::Datetime => {
            if instant_millis(value).is_none() {
                return Err(bad("date and time (ISO 8601, or epoch milliseconds)"));
            }
        }
        PropertyKind::Bool => {
            if !matches!(value, "true" | "false") {
                return Err(bad("boolean (true or false)"));
            }
        }
        PropertyKind::String | PropertyKind::PhoneNumber | PropertyKind::Other => {}
    }
    if is_email_property(object, def) && !(is_email(value) && known_tld(value)) {
        return Err(bad("valid email address"));
    }
    Ok(())
}

/// A point in time as HubSpot reads one: epoch milliseconds, RFC 3339, or a calendar day
/// (midnight UTC); as epoch milliseconds.
fn instant_millis(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok();
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(value) {
        return Some(d.timestamp_millis());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// What a HubSpot number property takes: `-12`, `3.5` (no exponent, no spaces).
fn is_decimal(value: &str) -> bool {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// The top-level domains IANA lists (`assets/tlds.txt`): HubSpot refuses an email address
/// whose domain ends in any other.
static TLDS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/tlds.txt"))
            .lines()
            .collect()
    });

fn known_tld(email: &str) -> bool {
    let tld = email
        .rsplit('.')
        .next()
        .map(str::to_lowercase)
        .unwrap_or_default();
    tld.starts_with("xn--") || TLDS.contains(tld.as_str())
}

/// Whether the CRM checks this property's values as email addresses (HubSpot: a contact's
/// `email`, and any property whose field type is `email`).
fn is_email_property(object: ObjectType, def: &PropertyDef) -> bool {
    (object == ObjectType::Contacts && def.name == "email") || def.field_type == "email"
}

/// The problems of a whole update (property -> value) against the CRM's definitions. An empty
/// catalog (the CRM was never asked) knows nothing and finds nothing.
pub fn check_update(
    object: ObjectType,
    catalog: &PropertyCatalog,
    properties: &BTreeMap<String, String>,
) -> Vec<ValueProblem> {
    if !catalog.is_known() {
        return Vec::new();
    }
    properties
        .iter()
        .filter_map(|(name, value)| match catalog.get(name) {
            None => Some(ValueProblem::UnknownProperty(name.clone())),
            Some(def) => check_value(object, def, value).err(),
        })
        .collect()
}

/// The values of an update that no other live record may hold, as (property, value).
pub fn unique_values<'a>(
    catalog: &PropertyCatalog,
    properties: &'a BTreeMap<String, String>,
) -> Vec<(&'a str, &'a str)> {
    properties
        .iter()
        .filter(|(name, value)| !value.is_empty() && catalog.get(name).is_some_and(|d| d.unique))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The field update a decision's choices ask for: every chosen value, and `""` (which clears
/// the property in HubSpot) for a field the steward chose to leave empty.
pub fn update_from_choices(
    choices: &BTreeMap<String, crate::domain::precedence::FieldChoice>,
) -> BTreeMap<String, String> {
    choices
        .iter()
        .map(|(f, c)| (f.clone(), c.value.clone().unwrap_or_default()))
        .collect()
}

/// What the steward was shown of every member: record id -> property -> value (`None` for
/// none). Stored with the approval.
pub type Seen = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// One value that changed in the CRM since the steward saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub record_id: String,
    pub property: String,
    pub seen: Option<String>,
    pub now: Option<String>,
}

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| match v {
            Some(v) => format!("{v:?}"),
            None => "empty".to_string(),
        };
        write!(
            f,
            "record {}: {} is {} in the CRM, the review showed {}",
            self.record_id,
            self.property,
            show(&self.now),
            show(&self.seen)
        )
    }
}

/// Every value of `current` (records just read from the CRM, by id) that differs from what the
/// steward saw. A member missing from `current` is reported by the caller, not here. An empty
/// value and no value are the same (HubSpot answers either).
pub fn changes_since_review(seen: &Seen, current: &[Record]) -> Vec<Changed> {
    let mut out = Vec::new();
    for (id, values) in seen {
        let Some(now) = current.iter().find(|r| &r.id == id) else {
            continue;
        };
        for (property, was) in values {
            let was = was.as_deref().filter(|v| !v.is_empty());
            let is = now.get(property);
            if was != is {
                out.push(Changed {
                    record_id: id.clone(),
                    property: property.clone(),
                    seen: was.map(str::to_string),
                    now: is.map(str::to_string),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::PropertyOption;

    fn def(name: &str, kind: PropertyKind, field_type: &str) -> PropertyDef {
        PropertyDef {
            name: name.into(),
            label: name.into(),
            kind,
            field_type: field_type.into(),
            options: Vec::new(),
            read_only: false,
            calculated: false,
            unique: false,
        }
    }

    fn stage() -> PropertyDef {
        let mut d = def("lifecyclestage", PropertyKind::Enumeration, "radio");
        d.options = ["subscriber", "lead", "customer"]
            .into_iter()
            .map(|v| PropertyOption {
                value: v.into(),
                label: v.into(),
                hidden: false,
            })
            .collect();
        d
    }

    const C: ObjectType = ObjectType::Contacts;

    #[test]
    fn enumerations_take_only_their_options() {
        assert_eq!(check_value(C, &stage(), "lead"), Ok(()));
        let err = check_value(C, &stage(), "banana").unwrap_err();
        assert_eq!(
            err.to_string(),
            "lifecyclestage: \"banana\" is not one of the CRM's options (subscriber, lead, customer)"
        );
        assert!(
            check_value(C, &stage(), "Lead").is_err(),
            "option values are exact"
        );
        let mut multi = stage();
        multi.field_type = "checkbox".into();
        assert_eq!(check_value(C, &multi, "lead;customer"), Ok(()));
        assert!(check_value(C, &multi, "lead;banana").is_err());
    }

    #[test]
    fn formats_follow_the_property_type() {
        let n = def("employees", PropertyKind::Number, "number");
        assert_eq!(check_value(C, &n, "12.5"), Ok(()));
        assert_eq!(check_value(C, &n, "-3"), Ok(()));
        assert!(check_value(C, &n, "twelve").is_err());
        assert!(check_value(C, &n, " 12").is_err());
        assert!(check_value(C, &n, "NaN").is_err());
        assert!(check_value(C, &n, "1e3").is_err());
        let d = def("birthday", PropertyKind::Date, "date");
        assert_eq!(check_value(C, &d, "2026-03-01"), Ok(()));
        assert_eq!(check_value(C, &d, "1772323200000"), Ok(()));
        assert_eq!(check_value(C, &d, "2026-03-01T00:00:00Z"), Ok(()));
        assert!(check_value(C, &d, "1772323200001").is_err(), "not midnight");
        assert!(check_value(C, &d, "2026-02-30").is_err());
        assert!(check_value(C, &d, "01.03.2026").is_err());
        let t = def("closedate", PropertyKind::Datetime, "date");
        assert_eq!(check_value(C, &t, "2026-03-01T10:00:00.000Z"), Ok(()));
        assert!(check_value(C, &t, "yesterday").is_err());
        let b = def("hs_email_optout", PropertyKind::Bool, "booleancheckbox");
        assert_eq!(check_value(C, &b, "true"), Ok(()));
        assert!(check_value(C, &b, "yes").is_err());
        let e = def("email", PropertyKind::String, "text");
        assert_eq!(check_value(C, &e, "ana@example.com"), Ok(()));
        assert!(check_value(C, &e, "ana@@example").is_err());
        assert!(check_value(C, &e, "ana\u{200B}@example.com").is_err());
        assert!(check_value(C, &e, "ana@example.notatld").is_err());
        assert_eq!(check_value(C, &e, "ana@example.co.za"), Ok(()));
        assert!(
            check_value(C, &stage(), " lead").is_err(),
            "no whitespace around an option"
        );
        // A company's `email`-named text property is not checked as one.
        assert_eq!(check_value(ObjectType::Companies, &e, "n/a"), Ok(()));
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        assert!(matches!(
            check_value(C, &def("notes", PropertyKind::String, "textarea"), &long),
            Err(ValueProblem::TooLong { .. })
        ));
    }

    #[test]
    fn read_only_and_unknown_properties_are_refused_and_empty_clears() {
        let mut ro = def("createdate", PropertyKind::Datetime, "date");
        ro.read_only = true;
        assert_eq!(
            check_value(C, &ro, "2026-01-01"),
            Err(ValueProblem::ReadOnly("createdate".into()))
        );
        assert_eq!(check_value(C, &stage(), ""), Ok(()), "\"\" clears");
        let catalog = PropertyCatalog::new([ro, stage()], None);
        let update: BTreeMap<String, String> = [
            ("createdate".to_string(), "2026-01-01".to_string()),
            ("lifecyclestage".to_string(), "lead".to_string()),
            ("favourite_colour".to_string(), "blue".to_string()),
        ]
        .into();
        let problems = check_update(C, &catalog, &update);
        assert_eq!(
            problems,
            [
                ValueProblem::ReadOnly("createdate".into()),
                ValueProblem::UnknownProperty("favourite_colour".into())
            ]
        );
        assert!(check_update(C, &PropertyCatalog::default(), &update).is_empty());
    }

    #[test]
    fn unique_values_are_the_non_empty_values_of_unique_properties() {
        let mut email = def("email", PropertyKind::String, "text");
        email.unique = true;
        let catalog = PropertyCatalog::new([email, stage()], None);
        let update: BTreeMap<String, String> = [
            ("email".to_string(), "a@b.com".to_string()),
            ("lifecyclestage".to_string(), "lead".to_string()),
        ]
        .into();
        assert_eq!(unique_values(&catalog, &update), [("email", "a@b.com")]);
        let cleared: BTreeMap<String, String> = [("email".to_string(), String::new())].into();
        assert!(unique_values(&catalog, &cleared).is_empty());
    }

    #[test]
    fn a_value_edited_in_the_crm_since_the_review_is_found() {
        let mut rec = Record {
            object_type: C,
            id: "101".into(),
            properties: BTreeMap::new(),
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        };
        rec.properties
            .insert("phone".into(), Some("+1 555 0199".into()));
        rec.properties.insert("city".into(), Some(String::new()));
        let seen: Seen = [(
            "101".to_string(),
            [
                ("phone".to_string(), Some("+1 555 0100".to_string())),
                ("city".to_string(), None),
                ("firstname".to_string(), None),
            ]
            .into(),
        )]
        .into();
        let changes = changes_since_review(&seen, &[rec]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            changes[0].to_string(),
            "record 101: phone is \"+1 555 0199\" in the CRM, the review showed \"+1 555 0100\""
        );
    }
}
