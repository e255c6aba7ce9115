//! The sandbox's CRM search: HubSpot's filter groups (OR of groups, AND of filters inside a
//! group), its operators, sorts and full-text `query`, evaluated over stored objects. Values
//! compare the way HubSpot compares them: dates as instants (a filter value may be epoch
//! milliseconds or an ISO string), numbers as numbers, text case-insensitively. Pure
//! functions; no storage or HTTP here.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};

use super::error::ApiError;
use super::properties;
use super::store::StoredObject;
use crate::crm::hubspot::wire::{Filter, FilterGroup, Sort};
use crate::domain::model::ObjectType;

pub const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// HubSpot's limits on a search request.
pub const MAX_FILTER_GROUPS: usize = 5;
pub const MAX_FILTERS_PER_GROUP: usize = 6;

/// Refuse what HubSpot refuses before looking at any record.
pub fn check(groups: &[FilterGroup]) -> Result<(), ApiError> {
    if groups.len() > MAX_FILTER_GROUPS {
        return Err(ApiError::validation(format!(
            "Too many filter groups: {} (at most {MAX_FILTER_GROUPS})",
            groups.len()
        )));
    }
    for g in groups {
        if g.filters.len() > MAX_FILTERS_PER_GROUP {
            return Err(ApiError::validation(format!(
                "Too many filters in a group: {} (at most {MAX_FILTERS_PER_GROUP})",
                g.filters.len()
            )));
        }
        for f in &g.filters {
            if !OPERATORS.contains(&f.operator.as_str()) {
                return Err(ApiError::validation(format!(
                    "Unknown operator {} for property {}",
                    f.operator, f.property_name
                )));
            }
            let needs_value = !matches!(
                f.operator.as_str(),
                "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
            );
            if needs_value && f.value.is_none() {
                return Err(ApiError::validation(format!(
                    "Operator {} on {} needs a value",
                    f.operator, f.property_name
                )));
            }
            if matches!(f.operator.as_str(), "IN" | "NOT_IN") && f.values.is_none() {
                return Err(ApiError::validation(format!(
                    "Operator {} on {} needs values",
                    f.operator, f.property_name
                )));
            }
            if f.operator == "BETWEEN" && f.high_value.is_none() {
                return Err(ApiError::validation(format!(
                    "Operator BETWEEN on {} needs a highValue",
                    f.property_name
                )));
            }
        }
    }
    Ok(())
}

/// Whether an object's last write (`updatedAt`) happened at or before `until` (epoch
/// milliseconds): what a lagging search index already holds.
pub fn written_by(object: &StoredObject, until: i64) -> bool {
    parse_instant(&object.updated_at).is_none_or(|ms| ms <= until)
}

/// A value as search compares it.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Number(f64),
    Text(String),
}

fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc).timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

fn key(property: &str, value: &str) -> Key {
    if properties::is_instant(property)
        && let Some(ms) = parse_instant(value)
    {
        return Key::Number(ms as f64);
    }
    match value.trim().parse::<f64>() {
        Ok(n) if property == "hs_object_id" || property.starts_with("num_") => Key::Number(n),
        _ => Key::Text(value.to_lowercase()),
    }
}

fn order(a: &Key, b: &Key) -> Option<Ordering> {
    match (a, b) {
        (Key::Number(a), Key::Number(b)) => a.partial_cmp(b),
        (Key::Text(a), Key::Text(b)) => Some(a.cmp(b)),
        // Mixed kinds (a date filter on a record whose value is not a date): no order.
        _ => None,
    }
}

#[cfg(test)]
fn compare(property: &str, record: &str, filter: &str) -> Option<Ordering> {
    order(&key(property, record), &key(property, filter))
}

fn tokens(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')))
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// `*` matches any run of characters; everything else literally (case-insensitive).
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

fn contains_token(value: &str, needle: &str) -> bool {
    let needle = needle.trim().to_lowercase();
    let value = value.to_lowercase();
    if needle.contains('*') {
        return glob(&needle, &value) || tokens(&value).any(|t| glob(&needle, &t));
    }
    value == needle || tokens(&value).any(|t| t == needle)
}

/// A filter with its values parsed once, not once per record.
#[derive(Debug)]
struct Compiled<'a> {
    filter: &'a Filter,
    value: Key,
    high: Key,
    values: Vec<Key>,
}

/// Filter groups ready to run over many records.
#[derive(Debug)]
pub struct Matcher<'a> {
    groups: Vec<Vec<Compiled<'a>>>,
}

impl<'a> Matcher<'a> {
    pub fn new(groups: &'a [FilterGroup]) -> Self {
        let groups = groups
            .iter()
            .map(|g| {
                g.filters
                    .iter()
                    .map(|f| {
                        let k = |v: &str| key(&f.property_name, v);
                        Compiled {
                            filter: f,
                            value: k(f.value.as_deref().unwrap_or("")),
                            high: k(f.high_value.as_deref().unwrap_or("")),
                            values: f.values.iter().flatten().map(|v| k(v)).collect(),
                        }
                    })
                    .collect()
            })
            .collect();
        Matcher { groups }
    }

    /// Does an object match? No groups match everything.
    pub fn matches(&self, object: &StoredObject) -> bool {
        self.groups.is_empty()
            || self
                .groups
                .iter()
                .any(|g| g.iter().all(|c| c.matches(object)))
    }
}

impl Compiled<'_> {
    fn matches(&self, object: &StoredObject) -> bool {
        let f = self.filter;
        let value = object.value(&f.property_name).filter(|v| !v.is_empty());
        let want = f.value.as_deref().unwrap_or("");
        match (f.operator.as_str(), value) {
            ("HAS_PROPERTY", v) => return v.is_some(),
            ("NOT_HAS_PROPERTY", v) => return v.is_none(),
            ("NEQ", None) | ("NOT_IN", None) | ("NOT_CONTAINS_TOKEN", None) => return true,
            (_, None) => return false,
            ("CONTAINS_TOKEN", Some(v)) => return contains_token(v, want),
            ("NOT_CONTAINS_TOKEN", Some(v)) => return !contains_token(v, want),
            _ => {}
        }
        let Some(v) = value else { return false };
        let k = key(&f.property_name, v);
        let cmp = order(&k, &self.value);
        use Ordering::{Equal, Greater, Less};
        match f.operator.as_str() {
            "EQ" => cmp == Some(Equal),
            "NEQ" => cmp != Some(Equal),
            "LT" => cmp == Some(Less),
            "LTE" => matches!(cmp, Some(Less | Equal)),
            "GT" => cmp == Some(Greater),
            "GTE" => matches!(cmp, Some(Greater | Equal)),
            "BETWEEN" => {
                matches!(cmp, Some(Greater | Equal))
                    && matches!(order(&k, &self.high), Some(Less | Equal))
            }
            "IN" | "NOT_IN" => {
                let found = self.values.iter().any(|w| order(&k, w) == Some(Equal));
                found == (f.operator == "IN")
            }
            _ => false,
        }
    }
}

/// The properties a full-text `query` looks in.
fn query_properties(t: ObjectType) -> &'static [&'static str] {
    match t {
        ObjectType::Contacts => &["email", "firstname", "lastname", "phone", "company"],
        ObjectType::Companies => &["name", "domain", "website", "phone"],
    }
}

/// HubSpot's `query`: a record matches when one of its searchable values has a token starting
/// with each word of the query.
pub fn matches_query(t: ObjectType, object: &StoredObject, query: &str) -> bool {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    words.iter().all(|w| {
        query_properties(t).iter().any(|p| {
            object.value(p).is_some_and(|v| {
                let v = v.to_lowercase();
                v.starts_with(w.as_str()) || tokens(&v).any(|t| t.starts_with(w.as_str()))
            })
        })
    })
}

/// Order search results by the sorts (HubSpot honours one sort), ties by id. Records without
/// the value come last either way.
pub fn sort(results: &mut Vec<(i64, &StoredObject)>, sorts: &[Sort]) {
    let Some(s) = sorts.first() else {
        return;
    };
    let descending = s.direction.eq_ignore_ascii_case("DESCENDING");
    let mut keyed: Vec<(Option<Key>, i64, &StoredObject)> = results
        .drain(..)
        .map(|(id, o)| {
            let k = o
                .value(&s.property_name)
                .filter(|v| !v.is_empty())
                .map(|v| key(&s.property_name, v));
            (k, id, o)
        })
        .collect();
    keyed.sort_by(|(ka, ia, _), (kb, ib, _)| {
        let ord = match (ka, kb) {
            (Some(x), Some(y)) => {
                let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
                if descending { o.reverse() } else { o }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        ord.then(ia.cmp(ib))
    });
    results.extend(keyed.into_iter().map(|(_, id, o)| (id, o)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_globs() {
        assert!(contains_token("Anna Maria", "maria"));
        assert!(contains_token("anna@example.com", "*@example.com"));
        assert!(contains_token("anna@example.com", "example.com"));
        assert!(!contains_token("anna@example.com", "exam"));
        assert!(glob("a*c", "abbc"));
        assert!(!glob("a*c", "abbd"));
    }

    #[test]
    fn dates_compare_as_instants() {
        let p = "lastmodifieddate";
        let iso = "2026-03-01T10:00:00.000Z";
        let ms = parse_instant(iso).unwrap().to_string();
        assert_eq!(compare(p, iso, &ms), Some(Ordering::Equal));
        assert_eq!(
            compare(p, "2026-03-01T10:00:00.001Z", &ms),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare("email", "A@B.com", "a@b.COM"),
            Some(Ordering::Equal)
        );
    }
}
