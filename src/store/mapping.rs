//! Typed queries on the `id_mapping` table: cross-system ids, with rows deactivated (never
//! deleted) when they stop being true, so the whole history of an id can be shown. Also the
//! `mapping_conflicts` the steward must settle, because guessing would make the table wrong:
//! a merge of records mapped to different ids in another system (`merge`), and live records
//! that share one id in another system (`shared_target`), kept to one open row per shared id
//! by [`check_shared_targets`] wherever mappings or the records behind them change. Links read
//! from a file are first checked against the records ([`vouch`]), so an old export cannot bring
//! back the rows of a merged-away id or map ids no record has.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::records::{self, IdState};
use crate::domain::model::ObjectType;
use crate::domain::sanitize::for_terminal;
use crate::input::quote;

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

/// What `pull` (the HubSpot connector) and `import` (by default) call the CRM's records.
pub const CRM_SYSTEM: &str = "crm";

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Source,
    Target,
}

/// Why the workspace cannot vouch for one end of a link read from a file. Ids are quoted or
/// sanitized for the terminal in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unvouched {
    #[error(
        "{system} {object} {} was merged into {} (map the record it lives on in, {}, instead)",
        for_terminal(id),
        for_terminal(survivor),
        for_terminal(survivor)
    )]
    MergedAway {
        system: String,
        object: ObjectType,
        id: String,
        survivor: String,
    },
    #[error(
        "{system} {object} {} was deleted in the CRM (archived)",
        for_terminal(id)
    )]
    Archived {
        system: String,
        object: ObjectType,
        id: String,
    },
    #[error(
        "no {system} {object} record has the id {} in the workspace (pull or import it first)",
        quote(id)
    )]
    Missing {
        system: String,
        object: ObjectType,
        id: String,
    },
    #[error("{} is the id of a record of {other}, not of {system}", quote(id))]
    OtherSystem {
        system: String,
        object: ObjectType,
        id: String,
        other: String,
    },
}

/// The systems whose ids the workspace can vouch for: those it holds records of, and always
/// the CRM's, so that a workspace with no records yet refuses CRM ids it cannot know rather than
/// taking them on trust. Ids of other systems (an ERP's, a marketing tool's) cannot be checked
/// against anything here, only their form ([`crate::input::check_id`]).
pub fn record_systems(conn: &Connection) -> Result<BTreeSet<String>> {
    let mut systems = records::systems(conn)?;
    systems.insert(CRM_SYSTEM.to_string());
    Ok(systems)
}

/// Check one end of `link`: when its system is one of `systems` ([`record_systems`]), its id
/// must be a live record of the link's type. `None` when the workspace vouches for it or cannot
/// tell.
pub fn vouch(
    conn: &Connection,
    link: &Link<'_>,
    end: End,
    systems: &BTreeSet<String>,
) -> Result<Option<Unvouched>> {
    let (system, id) = match end {
        End::Source => (link.source_system, link.source_id),
        End::Target => (link.target_system, link.target_id),
    };
    if !systems.contains(system) {
        return Ok(None);
    }
    let (system, object, id) = (system.to_string(), link.object_type, id.to_string());
    Ok(
        match records::id_state(conn, link.object_type, &system, &id)? {
            IdState::Live => None,
            IdState::MergedInto(survivor) => Some(Unvouched::MergedAway {
                system,
                object,
                id,
                survivor,
            }),
            IdState::Archived => Some(Unvouched::Archived { system, object, id }),
            IdState::Missing => Some(Unvouched::Missing { system, object, id }),
            IdState::OtherSystem(other) => Some(Unvouched::OtherSystem {
                system,
                object,
                id,
                other,
            }),
        },
    )
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

impl MergeMapping {
    /// The ids in the other system the merged records mapped to: where a merge may have
    /// changed who shares an id, for [`check_shared_targets`].
    pub fn targets(&self) -> &[String] {
        match self {
            MergeMapping::NoMapping => &[],
            MergeMapping::Mapped { target_id, .. } => std::slice::from_ref(target_id),
            MergeMapping::Conflict { target_ids, .. } => target_ids,
        }
    }
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
                "INSERT INTO mapping_conflicts (kind, job_id, object_type, survivor_id, source_system,
                                                target_system, target_ids, source_ids, created_at)
                 VALUES ('merge', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    job_id,
                    object_type.as_str(),
                    survivor,
                    source_system,
                    target_system,
                    serde_json::to_string(many)?,
                    serde_json::to_string(merged_ids)?,
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

/// Deactivate one row that no longer holds, saying why in its note.
/// The open `merge` conflict whose survivor is `source_id`, if there is one.
pub fn open_merge_conflict(
    conn: &Connection,
    object_type: ObjectType,
    source_system: &str,
    source_id: &str,
    target_system: &str,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM mapping_conflicts
             WHERE kind = 'merge' AND resolved_at IS NULL AND object_type = ?1
               AND survivor_id = ?3 AND target_system = ?4
               AND (source_system IS NULL OR source_system = ?2)
             ORDER BY id LIMIT 1",
        )?
        .query_row(
            params![
                object_type.as_str(),
                source_system,
                source_id,
                target_system
            ],
            |r| r.get(0),
        )
        .optional()?)
}

/// One open `merge` conflict, read to be settled.
pub fn conflict(conn: &Connection, id: i64) -> Result<Option<Conflict>> {
    Ok(conflicts(conn, true)?.into_iter().find(|c| c.id == id))
}

/// The steward settled a `merge` conflict: the survivor maps to `target_id` (one of the ids
/// its records mapped to, already written into the CRM by the caller). Its active row to that
/// system, if any, is superseded by the new one, and the conflict is resolved, in one
/// transaction.
pub fn settle_merge_conflict(
    conn: &mut Connection,
    conflict_id: i64,
    target_id: &str,
    steward: &str,
    now: &str,
) -> Result<i64> {
    let tx = conn.transaction()?;
    let c = conflict(&tx, conflict_id)?
        .ok_or_else(|| anyhow::anyhow!("there is no mapping conflict #{conflict_id}"))?;
    if c.kind != ConflictKind::Merge || !c.is_open() {
        anyhow::bail!(
            "mapping conflict #{conflict_id} is {} {}; only an open merge conflict is settled this way",
            if c.is_open() { "an open" } else { "a resolved" },
            c.kind.as_str()
        );
    }
    if !c.target_ids.iter().any(|t| t == target_id) {
        anyhow::bail!(
            "{target_id:?} is not one of the ids the merged records mapped to ({})",
            c.target_ids.join(", ")
        );
    }
    let object_type = c.object_type;
    let source_system = c.source_system.clone().unwrap_or_else(|| "crm".to_string());
    let old: Option<i64> = tx
        .query_row(
            "SELECT id FROM id_mapping WHERE object_type = ?1 AND source_system = ?2
             AND source_id = ?3 AND target_system = ?4 AND active = 1",
            params![
                object_type.as_str(),
                source_system,
                c.survivor_id,
                c.target_system
            ],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(old) = old {
        deactivate(&tx, old, now, &format!("conflict #{conflict_id} settled"))?;
    }
    let row = insert(
        &tx,
        &Link {
            object_type,
            source_system: &source_system,
            source_id: &c.survivor_id,
            target_system: &c.target_system,
            target_id,
        },
        steward,
        now,
        &format!("conflict #{conflict_id} settled by {steward}"),
    )?;
    if let Some(old) = old {
        tx.execute(
            "UPDATE id_mapping SET superseded_by = ?2 WHERE id = ?1",
            params![old, row],
        )?;
    }
    tx.execute(
        "UPDATE mapping_conflicts SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
        params![conflict_id, now, format!("{steward} chose {target_id}")],
    )?;
    tx.commit()?;
    Ok(row)
}

pub fn deactivate(conn: &Connection, row: i64, now: &str, note: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE id_mapping SET active = 0, deactivated_at = ?2, note = ?3 WHERE id = ?1",
    )?
    .execute(params![row, now, note])?;
    Ok(())
}

/// The two questions a `mapping_conflicts` row puts to the steward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// A merge joined records mapped to different ids in another system; none was picked.
    Merge,
    /// Several live records map to one id in another system.
    SharedTarget,
}

super::clusters::stored_enum!(ConflictKind, "mapping conflict kind", [
    Merge => "merge",
    SharedTarget => "shared_target",
]);

/// The resolution written when fewer than two live records share an id any more.
pub const NO_LONGER_SHARED: &str = "no longer shared";

/// One `mapping_conflicts` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub id: i64,
    pub kind: ConflictKind,
    pub object_type: ObjectType,
    pub job_id: Option<i64>,
    /// For a merge, the record that survived; for a shared id, the lowest of `source_ids`.
    pub survivor_id: String,
    /// None on merge conflicts recorded before migration 5.
    pub source_system: Option<String>,
    pub target_system: String,
    pub target_ids: Vec<String>,
    /// For a shared id, the live records sharing it (as last seen while open); for a merge,
    /// the merged records (empty before migration 5).
    pub source_ids: Vec<String>,
    pub created_at: String,
    pub resolved_at: Option<String>,
    pub resolution: Option<String>,
}

impl Conflict {
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// One line for a person, e.g. `erp:ERP-1000122 is the id of 2 live crm contacts: 1001,
    /// 1005`. Ids come from the CRM: sanitize before printing to a terminal.
    pub fn summary(&self) -> String {
        // Merge conflicts recorded before migration 5 do not know their source system.
        let system = self
            .source_system
            .as_deref()
            .map(|s| format!("{s} "))
            .unwrap_or_default();
        match self.kind {
            ConflictKind::SharedTarget => format!(
                "{}:{} is the id of {} live {system}{}: {}",
                self.target_system,
                self.target_ids.join(", "),
                self.source_ids.len(),
                self.object_type,
                self.source_ids.join(", ")
            ),
            ConflictKind::Merge => format!(
                "{system}{} {} was merged from records mapped to different {} ids: {}{}",
                self.object_type,
                self.survivor_id,
                self.target_system,
                self.target_ids.join(", "),
                if self.source_ids.is_empty() {
                    String::new()
                } else {
                    format!(" (merged {})", self.source_ids.join(", "))
                }
            ),
        }
    }
}

const CONFLICT_COLUMNS: &str = "id, kind, object_type, job_id, survivor_id, source_system,
                                target_system, target_ids, source_ids, created_at, resolved_at,
                                resolution";

fn conflict_from_row(r: &rusqlite::Row<'_>) -> Result<Conflict> {
    let id: i64 = r.get(0)?;
    let ids = |i: usize, what: &str| -> Result<Vec<String>> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).with_context(|| format!("mapping conflict #{id}: {what}"))
    };
    Ok(Conflict {
        id,
        kind: r.get(1)?,
        object_type: r.get(2)?,
        job_id: r.get(3)?,
        survivor_id: r.get(4)?,
        source_system: r.get(5)?,
        target_system: r.get(6)?,
        target_ids: ids(7, "target_ids")?,
        source_ids: ids(8, "source_ids")?,
        created_at: r.get(9)?,
        resolved_at: r.get(10)?,
        resolution: r.get(11)?,
    })
}

fn query_conflicts(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Conflict>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(conflict_from_row(r)?);
    }
    Ok(out)
}

/// Conflicts, oldest first: the open ones, or with `include_resolved` every one.
pub fn conflicts(conn: &Connection, include_resolved: bool) -> Result<Vec<Conflict>> {
    let filter = if include_resolved {
        ""
    } else {
        "WHERE resolved_at IS NULL"
    };
    query_conflicts(
        conn,
        &format!("SELECT {CONFLICT_COLUMNS} FROM mapping_conflicts {filter} ORDER BY id"),
        [],
    )
}

/// Every conflict, open or resolved, that names `id` as a source, survivor or target id.
pub fn conflicts_for_id(conn: &Connection, id: &str) -> Result<Vec<Conflict>> {
    query_conflicts(
        conn,
        &format!(
            "SELECT {CONFLICT_COLUMNS} FROM mapping_conflicts c
             WHERE c.survivor_id = ?1
                OR EXISTS (SELECT 1 FROM json_each(c.source_ids) WHERE value = ?1)
                OR EXISTS (SELECT 1 FROM json_each(c.target_ids) WHERE value = ?1)
             ORDER BY c.id"
        ),
        [id],
    )
}

/// The open conflicts of one kind: how many, and the oldest, to name in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenConflicts {
    pub kind: ConflictKind,
    pub count: u64,
    pub oldest: Conflict,
}

/// Open conflicts per kind (kinds with none left out).
pub fn open_conflicts_by_kind(conn: &Connection) -> Result<Vec<OpenConflicts>> {
    let mut stmt = conn.prepare(
        "SELECT kind, COUNT(*), MIN(id) FROM mapping_conflicts WHERE resolved_at IS NULL
         GROUP BY kind ORDER BY kind",
    )?;
    let groups = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (kind, count, oldest) in groups {
        let oldest = query_conflicts(
            conn,
            &format!("SELECT {CONFLICT_COLUMNS} FROM mapping_conflicts WHERE id = ?1"),
            [oldest],
        )?
        .pop()
        .with_context(|| format!("mapping conflict #{oldest} vanished"))?;
        out.push(OpenConflicts {
            kind: kind.parse()?,
            count: count as u64,
            oldest,
        });
    }
    Ok(out)
}

/// What a shared-id check changed in `mapping_conflicts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SharedCheck {
    /// Ids newly shared by two or more live records.
    pub opened: u64,
    /// Open conflicts whose set of records changed.
    pub changed: u64,
    /// Ids no longer shared: their conflicts resolved.
    pub resolved: u64,
}

impl SharedCheck {
    pub fn add(&mut self, other: SharedCheck) {
        self.opened += other.opened;
        self.changed += other.changed;
        self.resolved += other.resolved;
    }

    pub fn is_empty(&self) -> bool {
        *self == SharedCheck::default()
    }
}

/// What a mapping rebuild changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub new: u64,
    pub changed: u64,
    /// Active rows deactivated: their records carry no inverse id in the CRM any more.
    pub dropped: u64,
    pub shared: SharedCheck,
}

/// Rebuild the mappings from `system` to `other` from `seen`, every record the CRM lists with
/// the inverse id it carries: carried links are observed (new ones added, changed ones
/// superseded), active rows of records that no longer carry one, or no longer exist, are
/// deactivated, and every id is checked for records sharing it. One transaction.
pub fn rebuild(
    conn: &mut Connection,
    system: &str,
    other: &str,
    seen: &[(ObjectType, String, Option<String>)],
    now: &str,
) -> Result<Rebuilt> {
    let tx = conn.transaction()?;
    let mut out = Rebuilt::default();
    let mut with_target = HashSet::new();
    for (object, id, target) in seen {
        if let Some(t) = target {
            with_target.insert((*object, id.clone()));
            let link = Link {
                object_type: *object,
                source_system: system,
                source_id: id,
                target_system: other,
                target_id: t,
            };
            match observe(&tx, &link, "rebuild", now)? {
                Observed::New => out.new += 1,
                Observed::Changed => out.changed += 1,
                Observed::Unchanged => {}
            }
        }
    }
    for object in ObjectType::ALL {
        for row in active_rows(&tx, object)? {
            if row.source_system == system
                && row.target_system == other
                && !with_target.contains(&(object, row.source_id.clone()))
            {
                deactivate(&tx, row.id, now, "no inverse id in the CRM at rebuild")?;
                out.dropped += 1;
            }
        }
    }
    for object in ObjectType::ALL {
        out.shared.add(check_all_shared_targets(&tx, object, now)?);
    }
    tx.commit()?;
    Ok(out)
}

/// One id in another system, as seen from one source system: what a `shared_target`
/// conflict is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SharedKey {
    source_system: String,
    target_system: String,
    target_id: String,
}

/// Ids in the order a person reads them: numeric ids (HubSpot's) by value, then others as
/// text, so the lowest of 999 and 1000 is 999.
fn id_order(a: &str, b: &str) -> Ordering {
    fn key(s: &str) -> (bool, usize, &str) {
        let numeric = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if numeric {
            let digits = s.trim_start_matches('0');
            (false, digits.len(), digits)
        } else {
            (true, 0, s)
        }
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// The live records (not merged away, not archived) whose active row maps them to `key`.
fn live_sources(
    conn: &Connection,
    object_type: ObjectType,
    key: &SharedKey,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.source_id FROM id_mapping m
         JOIN records r ON r.object_type = m.object_type AND r.id = m.source_id
                       AND r.system = m.source_system
         WHERE m.target_system = ?3 AND m.target_id = ?4 AND m.active = 1
           AND m.object_type = ?1 AND m.source_system = ?2
           AND r.merged_into IS NULL AND r.archived = 0",
    )?;
    let mut ids = stmt
        .query_map(
            params![
                object_type.as_str(),
                key.source_system,
                key.target_system,
                key.target_id
            ],
            |r| r.get::<_, String>(0),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    ids.sort_by(|a, b| id_order(a, b));
    Ok(ids)
}

/// Bring the open conflict of `key` in line with the live records that share it now
/// (`sources`, sorted): opened at two, its records updated when they change, resolved below
/// two.
fn settle(
    conn: &Connection,
    object_type: ObjectType,
    key: &SharedKey,
    sources: &[String],
    now: &str,
    out: &mut SharedCheck,
) -> Result<()> {
    let target_ids = serde_json::to_string(std::slice::from_ref(&key.target_id))?;
    let open: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, source_ids FROM mapping_conflicts
             WHERE kind = 'shared_target' AND resolved_at IS NULL AND object_type = ?1
               AND source_system = ?2 AND target_system = ?3 AND target_ids = ?4",
        )?
        .query_row(
            params![
                object_type.as_str(),
                key.source_system,
                key.target_system,
                target_ids
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match (open, sources) {
        (None, [first, _, ..]) => {
            conn.prepare_cached(
                "INSERT INTO mapping_conflicts (kind, object_type, survivor_id, source_system,
                                                target_system, target_ids, source_ids, created_at)
                 VALUES ('shared_target', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                object_type.as_str(),
                first,
                key.source_system,
                key.target_system,
                target_ids,
                serde_json::to_string(sources)?,
                now
            ])?;
            out.opened += 1;
        }
        (Some((id, was)), [first, _, ..]) => {
            let was: Vec<String> = serde_json::from_str(&was)
                .with_context(|| format!("mapping conflict #{id}: source_ids"))?;
            if was != sources {
                conn.prepare_cached(
                    "UPDATE mapping_conflicts SET source_ids = ?2, survivor_id = ?3 WHERE id = ?1",
                )?
                .execute(params![id, serde_json::to_string(sources)?, first])?;
                out.changed += 1;
            }
        }
        // The records it last named stay in `source_ids`: who shared the id, for the record.
        (Some((id, _)), _) => {
            conn.prepare_cached(
                "UPDATE mapping_conflicts SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
            )?
            .execute(params![id, now, NO_LONGER_SHARED])?;
            out.resolved += 1;
        }
        (None, _) => {}
    }
    Ok(())
}

/// Check the ids `target_ids` in `target_system` for live `source_system` records sharing
/// them, and keep exactly one open `shared_target` conflict per shared id. Pass every id whose
/// set of live records may have changed: the ids of the rows a change added, moved away from
/// or left behind on records now merged or archived. Call inside the transaction that made
/// the change, after the records' merged and archived flags are written. Idempotent.
pub fn check_shared_targets(
    conn: &Connection,
    object_type: ObjectType,
    source_system: &str,
    target_system: &str,
    target_ids: &[String],
    now: &str,
) -> Result<SharedCheck> {
    let mut out = SharedCheck::default();
    let mut seen = HashSet::new();
    for target_id in target_ids {
        if !seen.insert(target_id.as_str()) {
            continue;
        }
        let key = SharedKey {
            source_system: source_system.to_string(),
            target_system: target_system.to_string(),
            target_id: target_id.clone(),
        };
        let sources = live_sources(conn, object_type, &key)?;
        settle(conn, object_type, &key, &sources, now, &mut out)?;
    }
    Ok(out)
}

/// [`check_shared_targets`] for every active row of `object_type`, of every source and target
/// system, and the resolution of every open conflict of the type that is no longer shared:
/// after a bulk change (an import, a mapping rebuild) and for a workspace whose conflicts were
/// never checked. Ids with two active rows are found from `id_mapping` alone and only those
/// are checked against the records: on a synthetic table of 700,000 active rows (1,000,000
/// records, 23,000 shared ids; these queries run through Python's sqlite3, not a dupdesk
/// build) that took 1.1 s where joining every row to its record took 1.7 s.
pub fn check_all_shared_targets(
    conn: &Connection,
    object_type: ObjectType,
    now: &str,
) -> Result<SharedCheck> {
    let mut stmt = conn.prepare(
        "SELECT source_system, target_system, target_id FROM id_mapping
         WHERE object_type = ?1 AND active = 1
         GROUP BY target_system, target_id, source_system HAVING COUNT(*) > 1",
    )?;
    let candidates = stmt
        .query_map([object_type.as_str()], |r| {
            Ok(SharedKey {
                source_system: r.get(0)?,
                target_system: r.get(1)?,
                target_id: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = SharedCheck::default();
    let mut still_shared = HashSet::new();
    for key in candidates {
        let sources = live_sources(conn, object_type, &key)?;
        settle(conn, object_type, &key, &sources, now, &mut out)?;
        if sources.len() > 1 {
            still_shared.insert(key);
        }
    }
    let open = query_conflicts(
        conn,
        &format!(
            "SELECT {CONFLICT_COLUMNS} FROM mapping_conflicts
             WHERE kind = 'shared_target' AND resolved_at IS NULL AND object_type = ?1"
        ),
        [object_type.as_str()],
    )?;
    for c in open {
        let (Some(source_system), [target_id]) = (c.source_system, c.target_ids.as_slice()) else {
            continue;
        };
        let key = SharedKey {
            source_system,
            target_system: c.target_system,
            target_id: target_id.clone(),
        };
        if !still_shared.contains(&key) {
            settle(conn, object_type, &key, &[], now, &mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Record;
    use crate::store::{Store, records};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        (dir, store)
    }

    fn record(object_type: ObjectType, id: &str, archived: bool) -> Record {
        Record {
            object_type,
            id: id.to_string(),
            properties: Default::default(),
            history: Default::default(),
            created_at: None,
            updated_at: None,
            archived,
        }
    }

    /// Live `system` contacts `ids`, each mapped to the erp id given beside it.
    fn mapped(conn: &Connection, system: &str, links: &[(&str, &str)]) -> Result<()> {
        let recs: Vec<Record> = links
            .iter()
            .map(|(id, _)| record(ObjectType::Contacts, id, false))
            .collect();
        records::upsert_records(conn, system, &recs, "t0")?;
        for (id, target) in links {
            map(conn, system, id, target)?;
        }
        Ok(())
    }

    fn map(conn: &Connection, system: &str, id: &str, target: &str) -> Result<Observed> {
        observe(
            conn,
            &Link {
                object_type: ObjectType::Contacts,
                source_system: system,
                source_id: id,
                target_system: "erp",
                target_id: target,
            },
            "test",
            "t0",
        )
    }

    fn check(conn: &Connection, targets: &[&str], now: &str) -> Result<SharedCheck> {
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        check_shared_targets(conn, ObjectType::Contacts, "crm", "erp", &targets, now)
    }

    fn checked(opened: u64, changed: u64, resolved: u64) -> SharedCheck {
        SharedCheck {
            opened,
            changed,
            resolved,
        }
    }

    #[test]
    fn a_file_link_is_vouched_for_only_with_live_records_of_the_systems_held() {
        let (_dir, store) = store();
        let verdicts = store
            .call_blocking(|c| {
                mapped(c, "crm", &[("1001", "E-1"), ("1002", "E-2")])?;
                records::mark_merged(c, ObjectType::Contacts, "1002", "1001")?;
                let systems = record_systems(c)?;
                let link = |source_system, source_id, target_system, target_id| Link {
                    object_type: ObjectType::Contacts,
                    source_system,
                    source_id,
                    target_system,
                    target_id,
                };
                Ok([
                    vouch(c, &link("crm", "1001", "erp", "E-9"), End::Source, &systems)?,
                    // The ERP's ids are no records here: nothing to check them against.
                    vouch(c, &link("crm", "1001", "erp", "E-9"), End::Target, &systems)?,
                    vouch(c, &link("crm", "1002", "erp", "E-2"), End::Source, &systems)?,
                    vouch(
                        c,
                        &link("marketing", "M-1", "crm", "7"),
                        End::Target,
                        &systems,
                    )?,
                ])
            })
            .unwrap();
        assert_eq!(verdicts[..2], [None, None]);
        let merged = verdicts[2].clone().unwrap();
        assert_eq!(
            merged,
            Unvouched::MergedAway {
                system: "crm".into(),
                object: ObjectType::Contacts,
                id: "1002".into(),
                survivor: "1001".into(),
            }
        );
        assert!(
            merged.to_string().contains("1002 was merged into 1001"),
            "{merged}"
        );
        assert!(
            matches!(&verdicts[3], Some(Unvouched::Missing { id, .. }) if id == "7"),
            "{:?}",
            verdicts[3]
        );
    }

    #[test]
    fn an_id_shared_by_live_records_is_one_open_conflict_until_merges_leave_one() {
        let (_dir, store) = store();
        let (steps, all) = store
            .call_blocking(|c| {
                mapped(
                    c,
                    "crm",
                    &[("1001", "E-1"), ("999", "E-1"), ("1002", "E-2")],
                )?;
                let mut steps = vec![check(c, &["E-1", "E-2"], "t1")?];
                // Checking again, or checking an id nobody shares, changes nothing.
                steps.push(check(c, &["E-1", "E-1", "E-2"], "t2")?);
                let first = conflicts(c, false)?;
                mapped(c, "crm", &[("1003", "E-1")])?;
                steps.push(check(c, &["E-1"], "t3")?);
                let grown = conflicts(c, false)?;
                records::mark_merged(c, ObjectType::Contacts, "999", "1001")?;
                steps.push(check(c, &["E-1"], "t4")?);
                records::mark_merged(c, ObjectType::Contacts, "1003", "1001")?;
                steps.push(check(c, &["E-1"], "t5")?);
                steps.push(check(c, &["E-1"], "t6")?);
                Ok((steps, (first, grown, conflicts(c, true)?)))
            })
            .unwrap();
        assert_eq!(
            steps,
            vec![
                checked(1, 0, 0),
                checked(0, 0, 0),
                checked(0, 1, 0),
                checked(0, 1, 0),
                checked(0, 0, 1),
                checked(0, 0, 0),
            ]
        );
        let (first, grown, all) = all;
        assert_eq!(first.len(), 1);
        let c = &first[0];
        assert_eq!(c.kind, ConflictKind::SharedTarget);
        // Numeric ids in numeric order: 999 is the lowest.
        assert_eq!(c.source_ids, ["999", "1001"]);
        assert_eq!(c.survivor_id, "999");
        assert_eq!(c.target_ids, ["E-1"]);
        assert_eq!(
            (c.source_system.as_deref(), c.target_system.as_str()),
            (Some("crm"), "erp")
        );
        assert_eq!(
            c.summary(),
            "erp:E-1 is the id of 2 live crm contacts: 999, 1001"
        );
        assert_eq!(grown[0].source_ids, ["999", "1001", "1003"]);
        // One row all along: updated in place, then resolved, keeping who shared it last.
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, c.id);
        assert_eq!(all[0].resolved_at.as_deref(), Some("t5"));
        assert_eq!(all[0].resolution.as_deref(), Some(NO_LONGER_SHARED));
        assert_eq!(all[0].source_ids, ["1001", "1003"]);
        assert_eq!(all[0].survivor_id, "1001");
    }

    #[test]
    fn a_record_moving_to_another_id_resolves_the_id_it_left_and_a_new_share_reopens() {
        let (_dir, store) = store();
        let (moved, back, all) = store
            .call_blocking(|c| {
                mapped(c, "crm", &[("101", "E-1"), ("102", "E-1")])?;
                check(c, &["E-1"], "t1")?;
                assert_eq!(map(c, "crm", "102", "E-2")?, Observed::Changed);
                // The caller passes the id the row left as well as the one it moved to.
                let moved = check(c, &["E-1", "E-2"], "t2")?;
                map(c, "crm", "102", "E-1")?;
                let back = check(c, &["E-2", "E-1"], "t3")?;
                Ok((moved, back, conflicts(c, true)?))
            })
            .unwrap();
        assert_eq!(moved, checked(0, 0, 1));
        assert_eq!(back, checked(1, 0, 0));
        assert_eq!(
            all.len(),
            2,
            "a resolved conflict is history; sharing again is a new one"
        );
        assert!(!all[0].is_open() && all[1].is_open());
    }

    #[test]
    fn the_whole_table_check_finds_unchecked_shares_and_resolves_stale_ones() {
        let (_dir, store) = store();
        let (first, second, open, again) = store
            .call_blocking(|c| {
                // Shares nobody checked, as an older dupdesk left them.
                mapped(c, "crm", &[("101", "E-1"), ("102", "E-1"), ("103", "E-3")])?;
                // A second system's records sharing the same id are a question of their own.
                mapped(c, "hubspot-eu", &[("EU-1", "E-1"), ("EU-2", "E-1")])?;
                // A source that is no record of the workspace does not count.
                map(c, "marketing", "M-9", "E-3")?;
                // Archived and merged-away records do not share anything.
                mapped(c, "crm", &[("104", "E-4"), ("105", "E-4"), ("106", "E-5")])?;
                mapped(c, "crm", &[("107", "E-5")])?;
                check(c, &["E-4", "E-5"], "t1")?;
                records::upsert_records(
                    c,
                    "crm",
                    &[record(ObjectType::Contacts, "105", true)],
                    "t2",
                )?;
                records::mark_merged(c, ObjectType::Contacts, "107", "106")?;
                let first = check_all_shared_targets(c, ObjectType::Contacts, "t3")?;
                let second = check_all_shared_targets(c, ObjectType::Contacts, "t4")?;
                let companies = check_all_shared_targets(c, ObjectType::Companies, "t4")?;
                assert!(companies.is_empty());
                Ok((
                    first,
                    second,
                    conflicts(c, false)?,
                    conflicts(c, true)?.len(),
                ))
            })
            .unwrap();
        assert_eq!(first, checked(2, 0, 2));
        assert!(second.is_empty(), "{second:?}");
        let shared: Vec<(Option<&str>, &[String])> = open
            .iter()
            .map(|c| (c.source_system.as_deref(), c.source_ids.as_slice()))
            .collect();
        assert_eq!(
            shared,
            vec![
                (Some("crm"), &["101".to_string(), "102".to_string()][..]),
                (
                    Some("hubspot-eu"),
                    &["EU-1".to_string(), "EU-2".to_string()][..]
                ),
            ]
        );
        assert_eq!(again, 4);
    }

    #[test]
    fn a_merge_of_records_mapped_apart_names_them_and_shows_up_by_id_and_kind() {
        let (_dir, store) = store();
        let (outcome, by_loser, by_kind) = store
            .call_blocking(|c| {
                mapped(
                    c,
                    "crm",
                    &[
                        ("201", "E-1"),
                        ("202", "E-2"),
                        ("301", "E-9"),
                        ("302", "E-9"),
                    ],
                )?;
                check(c, &["E-9"], "t1")?;
                let merged = vec!["201".to_string(), "202".to_string()];
                let outcome = supersede_after_merge(
                    c,
                    ObjectType::Contacts,
                    "crm",
                    &merged,
                    "203",
                    "erp",
                    None,
                    "t2",
                )?;
                Ok((
                    outcome,
                    conflicts_for_id(c, "202")?,
                    open_conflicts_by_kind(c)?,
                ))
            })
            .unwrap();
        assert_eq!(outcome.targets(), ["E-1", "E-2"]);
        assert_eq!(by_loser.len(), 1);
        let c = &by_loser[0];
        assert_eq!(c.kind, ConflictKind::Merge);
        assert_eq!(c.source_ids, ["201", "202"]);
        assert_eq!(c.source_system.as_deref(), Some("crm"));
        assert_eq!(
            c.summary(),
            "crm contacts 203 was merged from records mapped to different erp ids: E-1, E-2 (merged 201, 202)"
        );
        let kinds: Vec<(ConflictKind, u64, &str)> = by_kind
            .iter()
            .map(|k| (k.kind, k.count, k.oldest.survivor_id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ConflictKind::Merge, 1, "203"),
                (ConflictKind::SharedTarget, 1, "301")
            ]
        );
    }

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
