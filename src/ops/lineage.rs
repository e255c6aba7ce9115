//! Lineage of one record: every id it was merged from (through any number of merges, by
//! dupdesk or seen in the CRM's `hs_merged_object_ids`), the snapshot of each merged-away record
//! taken right before its merge, and for each field where the surviving value came from (the
//! steward's decision, else the property history). The answer to "where did this person's data
//! come from". Read-only.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;

use crate::domain::model::ObjectType;
use crate::store::{records, reports};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lineage {
    pub object_type: ObjectType,
    /// The id asked for.
    pub asked: String,
    /// The live record it belongs to now (differs from `asked` when that was merged away).
    pub current: String,
    pub properties: BTreeMap<String, Option<String>>,
    /// Every record merged into it, directly or through earlier merges, oldest merge first.
    pub merged_from: Vec<MergedRecord>,
    /// Per field: the value and where it came from.
    pub fields: BTreeMap<String, FieldOrigin>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergedRecord {
    pub id: String,
    /// The id it was merged into (a survivor at that time).
    pub into: String,
    pub job_id: Option<i64>,
    pub decision_id: Option<i64>,
    pub merged_at: Option<String>,
    /// Its properties right before the merge, if dupdesk made the merge.
    pub snapshot: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldOrigin {
    pub value: Option<String>,
    /// The record the value was taken from, when a steward's decision says so.
    pub from_record: Option<String>,
    pub system: Option<String>,
    pub reason: String,
}

pub fn lineage(
    conn: &Connection,
    object_type: Option<ObjectType>,
    id: &str,
    sources: &crate::config::SourcesConfig,
) -> Result<Lineage> {
    let types = object_type
        .map(|t| vec![t])
        .unwrap_or(ObjectType::ALL.to_vec());
    let mut found = None;
    for t in types {
        if let Some(r) = records::get_record(conn, t, id)? {
            found = Some(r);
            break;
        }
    }
    let Some(mut rec) = found else {
        bail!("no record with id {id} in the workspace");
    };
    let object = rec.record.object_type;
    let mut hops = 0;
    while let Some(next) = rec.merged_into.clone() {
        hops += 1;
        if hops > 1000 {
            bail!("record {id}: merged_into forms a loop");
        }
        match records::get_record(conn, object, &next)? {
            Some(r) => rec = r,
            None => break,
        }
    }
    let current = rec.record.id.clone();

    // Walk back through everything merged into the current record.
    let mut merged_from = Vec::new();
    let mut seen = BTreeSet::from([current.clone()]);
    let mut frontier = vec![current.clone()];
    while let Some(survivor) = frontier.pop() {
        for loser in reports::merged_into(conn, object, &survivor)? {
            if !seen.insert(loser.clone()) {
                continue;
            }
            merged_from.push(merged_record(conn, object, &loser, &survivor)?);
            frontier.push(loser);
        }
    }
    // Ids the CRM reports as absorbed that the workspace never saw merge.
    if let Some(absorbed) = rec.record.get("hs_merged_object_ids") {
        for old in absorbed.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if seen.insert(old.to_string()) {
                merged_from.push(MergedRecord {
                    id: old.to_string(),
                    into: current.clone(),
                    job_id: None,
                    decision_id: None,
                    merged_at: None,
                    snapshot: None,
                });
            }
        }
    }
    merged_from.sort_by(|a, b| a.merged_at.cmp(&b.merged_at).then(a.id.cmp(&b.id)));

    // Field origins: the newest merge job that ended in this record says what the steward chose.
    let choices: BTreeMap<String, Value> = reports::choices_merged_into(conn, &current)?
        .map(|t| serde_json::from_str(&t))
        .transpose()?
        .unwrap_or_default();
    let mut fields = BTreeMap::new();
    for (name, value) in &rec.record.properties {
        let origin = match choices.get(name) {
            Some(c) => FieldOrigin {
                value: value.clone(),
                from_record: c
                    .get("record_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                system: c.get("system").and_then(Value::as_str).map(str::to_string),
                reason: format!(
                    "chosen at merge: {}",
                    c.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("steward's choice")
                ),
            },
            None => match rec.record.latest_version(name) {
                Some(v) => FieldOrigin {
                    value: value.clone(),
                    from_record: None,
                    system: Some(
                        sources
                            .system_for(&v.source_type, v.source_id.as_deref())
                            .to_string(),
                    ),
                    reason: format!(
                        "written {} by {}",
                        crate::domain::model::format_ts(&v.timestamp),
                        v.source_type
                    ),
                },
                None => FieldOrigin {
                    value: value.clone(),
                    from_record: None,
                    system: None,
                    reason: "no history".to_string(),
                },
            },
        };
        fields.insert(name.clone(), origin);
    }
    Ok(Lineage {
        object_type: object,
        asked: id.to_string(),
        current,
        properties: rec.record.properties,
        merged_from,
        fields,
    })
}

fn merged_record(
    conn: &Connection,
    object: ObjectType,
    id: &str,
    into: &str,
) -> Result<MergedRecord> {
    Ok(match reports::latest_snapshot(conn, object, id)? {
        Some(reports::Snapshot {
            job_id: job,
            properties: props,
            taken_at: taken,
            decision_id: decision,
        }) => MergedRecord {
            id: id.to_string(),
            into: into.to_string(),
            job_id: Some(job),
            decision_id: decision,
            merged_at: Some(taken),
            snapshot: Some(serde_json::from_str(&props)?),
        },
        None => MergedRecord {
            id: id.to_string(),
            into: into.to_string(),
            job_id: None,
            decision_id: None,
            merged_at: None,
            snapshot: None,
        },
    })
}

impl Lineage {
    /// The lineage as text for a terminal. Every id, property name, value, system and reason
    /// comes from records or decisions, so each goes through the terminal sanitizer.
    pub fn render_text(&self) -> String {
        use crate::domain::sanitize::for_terminal as t;
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.asked != self.current {
            let _ = writeln!(
                out,
                "{} {} was merged away; it lives on as {}",
                self.object_type,
                t(&self.asked),
                t(&self.current)
            );
        }
        let _ = writeln!(out, "{} {}", self.object_type, t(&self.current));
        if self.merged_from.is_empty() {
            let _ = writeln!(out, "merged from: nothing");
        } else {
            let _ = writeln!(out, "merged from:");
            for m in &self.merged_from {
                let _ = writeln!(
                    out,
                    "  {} -> {}{}{}",
                    t(&m.id),
                    t(&m.into),
                    m.job_id.map(|j| format!("  (job {j}")).unwrap_or_default()
                        + &m.decision_id
                            .map(|d| format!(", decision {d})"))
                            .unwrap_or_else(|| if m.job_id.is_some() {
                                ")".into()
                            } else {
                                String::new()
                            }),
                    m.merged_at
                        .as_deref()
                        .map(|at| format!(" at {}", t(at)))
                        .unwrap_or_default()
                );
                if let Some(Value::Object(props)) = &m.snapshot {
                    for (k, v) in props {
                        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                            let _ = writeln!(out, "      {}: {}", t(k), t(s));
                        }
                    }
                }
            }
        }
        let _ = writeln!(out, "fields:");
        for (k, f) in &self.fields {
            let Some(v) = f.value.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let _ = writeln!(
                out,
                "  {}: {}  <- {}{} ({})",
                t(k),
                t(v),
                t(f.system.as_deref().unwrap_or("?")),
                f.from_record
                    .as_deref()
                    .map(|r| format!(", record {}", t(r)))
                    .unwrap_or_default(),
                t(&f.reason)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_shows_every_untrusted_part_escaped() {
        let evil = "9\u{1b}[2J\u{202E}\u{200B}";
        let l = Lineage {
            object_type: ObjectType::Contacts,
            asked: evil.into(),
            current: "77\u{7}".into(),
            properties: BTreeMap::new(),
            merged_from: vec![MergedRecord {
                id: evil.into(),
                into: "77\u{7}".into(),
                job_id: Some(1),
                decision_id: Some(2),
                merged_at: Some("2026\u{2028}".into()),
                snapshot: Some(serde_json::json!({"first\u{1b}name": "Mal\u{0}lory"})),
            }],
            fields: BTreeMap::from([(
                "city\u{2060}".to_string(),
                FieldOrigin {
                    value: Some("Bonn\u{9b}".into()),
                    from_record: Some(evil.into()),
                    system: Some("crm\u{200C}".into()),
                    reason: "chosen at merge: steward: from 9\u{1b}[31m".into(),
                },
            )]),
        };
        let text = l.render_text();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && !crate::domain::sanitize::is_clean(&c.to_string())),
            "{text}"
        );
        for shown in [
            "9\\e[2J\\u{202E}\\u{200B} was merged away; it lives on as 77\\u{0007}",
            "first\\ename: Mal\\0lory",
            " at 2026\\u{2028}",
            "city\\u{2060}: Bonn\\u{009B}  <- crm\\u{200C}, record 9\\e[2J",
            "(chosen at merge: steward: from 9\\e[31m)",
        ] {
            assert!(text.contains(shown), "{shown} missing from\n{text}");
        }
    }
}
