//! Typed queries on the `id_mapping` table: cross-system ids, with rows deactivated (never
//! deleted) when they stop being true, so the whole history of an id can be shown.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::model::ObjectType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingRow {
    pub id: i64,
    pub object_type: String,
    pub source_system: String,
    pub source_id: String,
    pub target_system: String,
    pub target_id: String,
    pub active: bool,
    pub superseded_by: Option<i64>,
    pub created_at: String,
    pub created_by: String,
    pub last_seen_at: String,
    pub deactivated_at: Option<String>,
    pub note: String,
}

/// One observed link between a record and its id in another system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    pub object_type: ObjectType,
    pub source_system: &'a str,
    pub source_id: &'a str,
    pub target_system: &'a str,
    pub target_id: &'a str,
}

/// What observing a link changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    New,
    Unchanged,
    /// The source id now points elsewhere: the old row was deactivated and superseded.
    Changed,
}

/// Record that `link` holds as of `now`: an existing active row is touched; an active row
/// pointing to another target id is deactivated and superseded by a new row.
pub fn observe(
    conn: &Connection,
    link: &Link<'_>,
    created_by: &str,
    now: &str,
) -> Result<Observed> {
    let current: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, target_id FROM id_mapping
             WHERE object_type = ?1 AND source_system = ?2 AND source_id = ?3 AND target_system = ?4 AND active = 1",
        )?
        .query_row(
            params![link.object_type.as_str(), link.source_system, link.source_id, link.target_system],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match current {
        Some((id, target)) if target == link.target_id => {
            conn.prepare_cached("UPDATE id_mapping SET last_seen_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            Ok(Observed::Unchanged)
        }
        Some((old, _)) => {
            conn.prepare_cached(
                "UPDATE id_mapping SET active = 0, deactivated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![old, now])?;
            let new = insert(conn, link, created_by, now, "target id changed")?;
            conn.prepare_cached("UPDATE id_mapping SET superseded_by = ?2 WHERE id = ?1")?
                .execute(params![old, new])?;
            Ok(Observed::Changed)
        }
        None => {
            insert(conn, link, created_by, now, "")?;
            Ok(Observed::New)
        }
    }
}

fn insert(
    conn: &Connection,
    link: &Link<'_>,
    created_by: &str,
    now: &str,
    note: &str,
) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO id_mapping (object_type, source_system, source_id, target_system, target_id,
                                 active, created_at, created_by, last_seen_at, note)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?6, ?8)",
    )?
    .execute(params![
        link.object_type.as_str(),
        link.source_system,
        link.source_id,
        link.target_system,
        link.target_id,
        now,
        created_by,
        note
    ])?;
    Ok(conn.last_insert_rowid())
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MappingRow> {
    Ok(MappingRow {
        id: r.get(0)?,
        object_type: r.get(1)?,
        source_system: r.get(2)?,
        source_id: r.get(3)?,
        target_system: r.get(4)?,
        target_id: r.get(5)?,
        active: r.get(6)?,
        superseded_by: r.get(7)?,
        created_at: r.get(8)?,
        created_by: r.get(9)?,
        last_seen_at: r.get(10)?,
        deactivated_at: r.get(11)?,
        note: r.get(12)?,
    })
}

const COLUMNS: &str = "id, object_type, source_system, source_id, target_system, target_id, active,
                       superseded_by, created_at, created_by, last_seen_at, deactivated_at, note";

/// Every row, active or not, in which `id` appears on either side, oldest first.
pub fn rows_for_id(conn: &Connection, id: &str) -> Result<Vec<MappingRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM id_mapping WHERE source_id = ?1 OR target_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The active rows of a type, in id order.
pub fn active_rows(conn: &Connection, object_type: ObjectType) -> Result<Vec<MappingRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM id_mapping WHERE object_type = ?1 AND active = 1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([object_type.as_str()], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The distinct ids in `target_system` that the active rows of `source_ids` point to.
pub fn active_targets(
    conn: &Connection,
    object_type: ObjectType,
    source_system: &str,
    source_ids: &[String],
    target_system: &str,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT target_id FROM id_mapping WHERE object_type = ?1 AND source_system = ?2
         AND source_id = ?3 AND target_system = ?4 AND active = 1",
    )?;
    let mut out: Vec<String> = Vec::new();
    for id in source_ids {
        let rows = stmt.query_map(
            params![object_type.as_str(), source_system, id, target_system],
            |r| r.get::<_, String>(0),
        )?;
        for t in rows {
            let t = t?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What a merge did to the mapping table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeMapping {
    /// None of the merged records had an id in the other system.
    NoMapping,
    /// All mapped to one id: the survivor now maps to it and the old rows point to its row.
    Mapped { target_id: String, row: i64 },
    /// They mapped to different ids: recorded for the steward, nothing picked.
    Conflict {
        target_ids: Vec<String>,
        conflict: i64,
    },
}

/// After `merged_ids` were merged into `survivor`: deactivate every active row of a merged-away
/// id, add the survivor's row, or record a conflict when the ids disagree. Call inside the
/// transaction that finishes the merge job.
#[allow(clippy::too_many_arguments)]
pub fn supersede_after_merge(
    conn: &Connection,
    object_type: ObjectType,
    source_system: &str,
    merged_ids: &[String],
    survivor: &str,
    target_system: &str,
    job_id: Option<i64>,
    now: &str,
) -> Result<MergeMapping> {
    let targets = active_targets(conn, object_type, source_system, merged_ids, target_system)?;
    let outcome = match targets.as_slice() {
        [] => return Ok(MergeMapping::NoMapping),
        [only] => {
            let existing: Option<i64> = conn
                .query_row(
                    "SELECT id FROM id_mapping WHERE object_type = ?1 AND source_system = ?2
                     AND source_id = ?3 AND target_system = ?4 AND active = 1",
                    params![object_type.as_str(), source_system, survivor, target_system],
                    |r| r.get(0),
                )
                .optional()?;
            let row = match existing {
                Some(row) => row,
                None => {
                    // The survivor may be one of the merged ids (a CRM that keeps the primary's
                    // id): its old row is deactivated below and replaced by this one.
                    conn.execute(
                        "UPDATE id_mapping SET active = 0, deactivated_at = ?5
                         WHERE object_type = ?1 AND source_system = ?2 AND source_id = ?3
                         AND target_system = ?4 AND active = 1",
                        params![
                            object_type.as_str(),
                            source_system,
                            survivor,
                            target_system,
                            now
                        ],
                    )?;
                    insert(
                        conn,
                        &Link {
                            object_type,
                            source_system,
                            source_id: survivor,
                            target_system,
                            target_id: only,
                        },
                        "merge",
                        now,
                        &format!("merged from {}", merged_ids.join(", ")),
                    )?
                }
            };
            MergeMapping::Mapped {
                target_id: only.clone(),
                row,
            }
        }
        many => {
            conn.execute(
                "INSERT INTO mapping_conflicts (job_id, object_type, survivor_id, target_system, target_ids, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    job_id,
                    object_type.as_str(),
                    survivor,
                    target_system,
                    serde_json::to_string(many)?,
                    now
                ],
            )?;
            MergeMapping::Conflict {
                target_ids: many.to_vec(),
                conflict: conn.last_insert_rowid(),
            }
        }
    };
    let superseded_by = match &outcome {
        MergeMapping::Mapped { row, .. } => Some(*row),
        _ => None,
    };
    let note = match &outcome {
        MergeMapping::Conflict { conflict, .. } => {
            format!("merged into {survivor}; conflict #{conflict}")
        }
        _ => format!("merged into {survivor}"),
    };
    let mut stmt = conn.prepare_cached(
        "UPDATE id_mapping SET active = 0, superseded_by = ?6, deactivated_at = ?7, note = ?8
         WHERE object_type = ?1 AND source_system = ?2 AND source_id = ?3 AND target_system = ?4
         AND active = 1 AND id IS NOT ?5",
    )?;
    for id in merged_ids.iter().filter(|id| id.as_str() != survivor) {
        stmt.execute(params![
            object_type.as_str(),
            source_system,
            id,
            target_system,
            superseded_by,
            superseded_by,
            now,
            note
        ])?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn observing_a_changed_target_supersedes_the_old_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        let (a, b, c, rows) = store
            .call_blocking(|conn| {
                let mut link = Link {
                    object_type: ObjectType::Contacts,
                    source_system: "crm",
                    source_id: "101",
                    target_system: "erp",
                    target_id: "C-1",
                };
                let a = observe(conn, &link, "pull", "t1")?;
                let b = observe(conn, &link, "pull", "t2")?;
                link.target_id = "C-2";
                let c = observe(conn, &link, "pull", "t3")?;
                Ok((a, b, c, rows_for_id(conn, "101")?))
            })
            .unwrap();
        assert_eq!(
            (a, b, c),
            (Observed::New, Observed::Unchanged, Observed::Changed)
        );
        assert_eq!(rows.len(), 2);
        assert!(!rows[0].active);
        assert_eq!(rows[0].superseded_by, Some(rows[1].id));
        assert_eq!(rows[0].last_seen_at, "t2");
        assert!(rows[1].active);
        // The unique index on active rows refuses a second active mapping.
        let dup = store.call_blocking(|conn| {
            insert(
                conn,
                &Link {
                    object_type: ObjectType::Contacts,
                    source_system: "crm",
                    source_id: "101",
                    target_system: "erp",
                    target_id: "C-3",
                },
                "test",
                "t4",
                "",
            )
        });
        assert!(dup.is_err());
    }
}
