//! The stored form of a record's property history, in the `records.history` column.
//!
//! Most versions share one source and time (an import writes every value at the row's
//! modification time, as `IMPORT` from one system; a CRM sets most properties at creation),
//! and the newest version of a property is its current value. Written out in full that is
//! three quarters of a record's bytes, so the column holds a compact JSON array instead:
//!
//! ```text
//! [{"t": TIME, "s": SOURCE_TYPE, "i": SOURCE_ID},      the most common source and time
//!  {"email": [{}, {"v": "old@x.com", "t": TIME2}], ...]  versions, newest first
//! ```
//!
//! In a version, a missing `t`, `s` or `i` is the first element's; a missing `v` is the
//! property's current value (`"i": null` and `"v": null` are explicit absences). A record
//! without any version stores the plain form below (`{}`, or `{"email":[]}`). Workspaces written before this format hold the plain JSON
//! object of [`PropertyVersion`]s, which [`decode`] still reads; the two are told apart by
//! their first character.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::model::PropertyVersion;

/// A version borrowed from a record or a CSV row, as the encoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRef<'a> {
    pub value: Option<&'a str>,
    pub timestamp: DateTime<Utc>,
    pub source_type: &'a str,
    pub source_id: Option<&'a str>,
}

impl<'a> From<&'a PropertyVersion> for VersionRef<'a> {
    fn from(v: &'a PropertyVersion) -> Self {
        VersionRef {
            value: v.value.as_deref(),
            timestamp: v.timestamp,
            source_type: &v.source_type,
            source_id: v.source_id.as_deref(),
        }
    }
}

/// A version's time, source type and source id.
type Source<'a> = (DateTime<Utc>, &'a str, Option<&'a str>);

/// The source and time most versions share.
#[derive(Serialize, Deserialize)]
struct Common<S> {
    t: DateTime<Utc>,
    s: S,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    i: Option<S>,
}

/// One version, with what it shares with [`Common`] or the current value left out.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
struct Compact<S> {
    #[serde(
        default = "none",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    v: Option<Option<S>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<DateTime<Utc>>,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    s: Option<S>,
    #[serde(
        default = "none",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    i: Option<Option<S>>,
}

fn none<T>() -> Option<T> {
    None
}

/// A field that is there, even as `null`, is `Some`; only a missing one is `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The stored text of a history. `current` gives a property's current value (`None` when the
/// record lacks the property). Deterministic: the same record always encodes to the same
/// text, which is how an upsert tells an unchanged record.
pub fn encode<'a, V: AsRef<[VersionRef<'a>]>>(
    history: &BTreeMap<&'a str, V>,
    current: impl Fn(&str) -> Option<Option<&'a str>>,
) -> serde_json::Result<String> {
    // The most common (time, source type, source id); the first of equals wins.
    let mut counts: Vec<(Source<'_>, usize)> = Vec::new();
    for v in history.values().flat_map(|vs| vs.as_ref()) {
        let key = (v.timestamp, v.source_type, v.source_id);
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let Some(&((t, s, i), _)) = counts.iter().find(|(_, n)| *n == most) else {
        // No version at all: `{}`, or properties with empty histories, in the plain form.
        let empty: BTreeMap<&str, [(); 0]> = history.keys().map(|k| (*k, [])).collect();
        return serde_json::to_string(&empty);
    };
    let common = Common { t, s, i };
    let versions: BTreeMap<&str, Vec<Compact<&str>>> = history
        .iter()
        .map(|(name, vs)| {
            let vs = vs.as_ref();
            let compact = vs
                .iter()
                .enumerate()
                .map(|(n, v)| Compact {
                    v: (n > 0 || current(name) != Some(v.value)).then_some(v.value),
                    t: (v.timestamp != t).then_some(v.timestamp),
                    s: (v.source_type != s).then_some(v.source_type),
                    i: (v.source_id != i).then_some(v.source_id),
                })
                .collect();
            (*name, compact)
        })
        .collect();
    serde_json::to_string(&(common, versions))
}

/// [`encode`] for a record's own maps.
pub fn encode_owned(
    history: &BTreeMap<String, Vec<PropertyVersion>>,
    properties: &BTreeMap<String, Option<String>>,
) -> serde_json::Result<String> {
    let borrowed: BTreeMap<&str, Vec<VersionRef<'_>>> = history
        .iter()
        .map(|(k, vs)| (k.as_str(), vs.iter().map(VersionRef::from).collect()))
        .collect();
    encode(&borrowed, |name| properties.get(name).map(|v| v.as_deref()))
}

/// The history a stored text holds, in either format. `properties` are the record's current
/// values, which the compact format leaves out of the newest versions.
pub fn decode(
    text: &str,
    properties: &BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, Vec<PropertyVersion>>> {
    if !text.trim_start().starts_with('[') {
        return serde_json::from_str(text).context("history is not valid JSON");
    }
    let (common, versions): (Common<String>, BTreeMap<String, Vec<Compact<String>>>) =
        serde_json::from_str(text).context("history is not valid JSON")?;
    versions
        .into_iter()
        .map(|(name, vs)| {
            let vs = vs
                .into_iter()
                .map(|c| {
                    let value = match c.v {
                        Some(v) => v,
                        None => properties.get(&name).cloned().ok_or_else(|| {
                            anyhow!("history of {name} refers to its current value, but the record has no {name}")
                        })?,
                    };
                    Ok(PropertyVersion {
                        value,
                        timestamp: c.t.unwrap_or(common.t),
                        source_type: c.s.unwrap_or_else(|| common.s.clone()),
                        source_id: c.i.unwrap_or_else(|| common.i.clone()),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((name, vs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::parse_ts;

    fn version(value: Option<&str>, at: &str, st: &str, si: Option<&str>) -> PropertyVersion {
        PropertyVersion {
            value: value.map(str::to_string),
            timestamp: parse_ts(at).unwrap(),
            source_type: st.into(),
            source_id: si.map(str::to_string),
        }
    }

    fn round_trip(
        history: &BTreeMap<String, Vec<PropertyVersion>>,
        properties: &BTreeMap<String, Option<String>>,
    ) -> String {
        let text = encode_owned(history, properties).unwrap();
        assert_eq!(&decode(&text, properties).unwrap(), history, "{text}");
        text
    }

    #[test]
    fn shared_source_and_current_values_are_left_out() {
        let at = "2025-03-04T05:06:00Z";
        let mut properties = BTreeMap::new();
        let mut history = BTreeMap::new();
        for (k, v) in [("email", "z@x.de"), ("firstname", "Zoë \"Z\"")] {
            properties.insert(k.to_string(), Some(v.to_string()));
            history.insert(
                k.to_string(),
                vec![version(Some(v), at, "IMPORT", Some("crm"))],
            );
        }
        let text = round_trip(&history, &properties);
        assert_eq!(
            text,
            r#"[{"t":"2025-03-04T05:06:00Z","s":"IMPORT","i":"crm"},{"email":[{}],"firstname":[{}]}]"#
        );
        let plain = serde_json::to_string(&history).unwrap();
        assert!(text.len() * 2 < plain.len(), "{text} vs {plain}");
    }

    #[test]
    fn every_difference_survives() {
        let mut properties = BTreeMap::new();
        properties.insert("email".to_string(), Some("new@x.com".to_string()));
        properties.insert("phone".to_string(), None);
        properties.insert("city".to_string(), Some("Köln".to_string()));
        let mut history = BTreeMap::new();
        history.insert(
            "email".to_string(),
            vec![
                version(
                    Some("new@x.com"),
                    "2026-01-02T00:00:00Z",
                    "CRM_UI",
                    Some("7"),
                ),
                version(Some("new@x.com"), "2026-01-01T00:00:00Z", "API", None),
                version(None, "2025-01-01T00:00:00.123Z", "IMPORT", Some("crm")),
            ],
        );
        // Cleared: the newest version is null, like the current value.
        history.insert(
            "phone".to_string(),
            vec![version(None, "2026-01-02T00:00:00Z", "CRM_UI", Some("7"))],
        );
        // A newest version that is not the current value (a sandbox write can do this).
        history.insert(
            "city".to_string(),
            vec![version(
                Some("Koeln"),
                "2026-01-02T00:00:00Z",
                "CRM_UI",
                None,
            )],
        );
        // History of a property the record no longer has.
        history.insert(
            "jobtitle".to_string(),
            vec![version(None, "2026-01-02T00:00:00Z", "CRM_UI", Some("7"))],
        );
        round_trip(&history, &properties);
        assert_eq!(round_trip(&BTreeMap::new(), &properties), "{}");
        let mut empty = BTreeMap::new();
        empty.insert("email".to_string(), Vec::new());
        assert_eq!(round_trip(&empty, &properties), r#"{"email":[]}"#);
    }

    #[test]
    fn generated_records_round_trip() {
        let data = crate::harness::demo::generate(&crate::harness::demo::DemoOptions {
            contacts: 500,
            companies: 100,
            ..crate::harness::demo::DemoOptions::default()
        })
        .data;
        let mut shrunk = (0, 0);
        for r in data.contacts.iter().chain(&data.companies) {
            let text = round_trip(&r.history, &r.properties);
            shrunk.0 += text.len();
            shrunk.1 += serde_json::to_string(&r.history).unwrap().len();
        }
        assert!(shrunk.0 * 2 < shrunk.1, "{shrunk:?}");
    }

    #[test]
    fn the_plain_format_still_reads() {
        let mut history = BTreeMap::new();
        history.insert(
            "email".to_string(),
            vec![version(
                Some("a@x.com"),
                "2026-01-02T00:00:00Z",
                "CRM_UI",
                None,
            )],
        );
        let plain = serde_json::to_string(&history).unwrap();
        assert_eq!(decode(&plain, &BTreeMap::new()).unwrap(), history);
        assert_eq!(decode("{}", &BTreeMap::new()).unwrap(), BTreeMap::new());
    }

    #[test]
    fn a_current_value_the_record_lacks_is_an_error() {
        let text = r#"[{"t":"2025-03-04T05:06:00Z","s":"IMPORT"},{"email":[{}]}]"#;
        let err = decode(text, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("no email"), "{err}");
        assert!(decode("[1,", &BTreeMap::new()).is_err());
    }
}
