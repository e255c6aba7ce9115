//! What the matcher reads from the workspace and writes back, as typed functions: the live
//! records it scores (streamed in row order), the clusters already proposed with their
//! members, the steward's `not_duplicates` pairs, a cluster's row as it is when a planned
//! change is carried out, and the write of a planned cluster (its row, members and pair
//! scores). The matcher decides what changes ([`crate::ops::matching`]); this module only
//! runs the statements, in the caller's transaction. Status changes go through
//! [`super::clusters`], a new cluster's row too.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::clusters::{self, ClusterStatus, NewCluster, Reason};
use crate::domain::model::ObjectType;

/// A cluster ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCluster {
    pub fingerprint: String,
    pub rids: Vec<i64>,
    pub label: String,
    pub score: f64,
    pub weakest: f64,
    pub flags: String,
    /// (a_rid, b_rid, probability, explanation JSON) with a_rid < b_rid.
    pub pairs: Vec<(i64, i64, f64, String)>,
    /// The newest `changed_at` of its members.
    pub changed_at: String,
}

/// A live record as the matcher reads it: row id, CRM id, properties JSON, when it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRecord {
    pub rid: i64,
    pub id: String,
    pub properties: String,
    pub changed_at: String,
}

/// Hand the live records of `object` (not archived, not merged away), in row id order, to
/// `consume` as a stream, and return what it made of them. The rows are read as `consume`
/// pulls them, so a large workspace is never held twice; a row that cannot be read ends the
/// stream and is the error returned.
pub fn read_live<R>(
    conn: &Connection,
    object: ObjectType,
    consume: impl FnOnce(&mut dyn Iterator<Item = LiveRecord>) -> R,
) -> Result<R> {
    // `+object_type`: a scan in row order, rather than the index on object_type and then a
    // sort of every row.
    let mut stmt = conn.prepare(
        "SELECT rid, id, properties, changed_at FROM records
         WHERE +object_type = ?1 AND archived = 0 AND merged_into IS NULL ORDER BY rid",
    )?;
    let mut rows = stmt.query([object.as_str()])?;
    let mut failed: Option<rusqlite::Error> = None;
    let mut stream = std::iter::from_fn(|| {
        let read = match rows.next() {
            Ok(Some(row)) => (|| -> rusqlite::Result<LiveRecord> {
                Ok(LiveRecord {
                    rid: row.get(0)?,
                    id: row.get(1)?,
                    properties: row.get(2)?,
                    changed_at: row.get(3)?,
                })
            })(),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        match read {
            Ok(record) => Some(record),
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    let made = consume(&mut stream);
    match failed {
        Some(e) => Err(e).context("reading the workspace's records"),
        None => Ok(made),
    }
}

/// How many live records of `object` there are.
pub fn live_count(conn: &Connection, object: ObjectType) -> Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM records WHERE object_type = ?1 AND archived = 0 AND merged_into IS NULL",
        [object.as_str()],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Whether a record of `object` changed (or was archived or merged away) at or after `since`.
pub fn changed_since(conn: &Connection, object: ObjectType, since: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM records WHERE object_type = ?1 AND changed_at >= ?2)",
        params![object.as_str(), since],
        |r| r.get(0),
    )?)
}

/// The live records of `object` by CRM id: (row id, changed_at).
pub fn live_by_id(
    conn: &Connection,
    object: ObjectType,
) -> Result<std::collections::HashMap<String, (i64, String)>> {
    Ok(conn
        .prepare(
            "SELECT id, rid, changed_at FROM records
             WHERE object_type = ?1 AND archived = 0 AND merged_into IS NULL",
        )?
        .query_map([object.as_str()], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// The properties JSON of record `rid`.
pub fn properties_json(conn: &Connection, rid: i64) -> Result<String> {
    conn.prepare_cached("SELECT properties FROM records WHERE rid = ?1")?
        .query_row([rid], |r| r.get(0))
        .with_context(|| format!("reading the properties of record row {rid}"))
}

/// The properties JSON of up to `limit` live records of `object`, for a sample of the property
/// names records hold.
pub fn sample_properties(
    conn: &Connection,
    object: ObjectType,
    limit: usize,
) -> Result<Vec<String>> {
    Ok(conn
        .prepare(
            "SELECT properties FROM records
             WHERE object_type = ?1 AND archived = 0 AND merged_into IS NULL LIMIT ?2",
        )?
        .query_map(params![object.as_str(), limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The steward's `not_duplicates` pairs of `object`, as (a_id, b_id).
pub fn not_duplicates(conn: &Connection, object: ObjectType) -> Result<Vec<(String, String)>> {
    Ok(conn
        .prepare("SELECT a_id, b_id FROM not_duplicates WHERE object_type = ?1")?
        .query_map([object.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// A cluster already in the workspace, as a run plans against it. What a change needs to
/// know of its row (the status, the last decision) is read again when the change is written
/// ([`current_by_id`]).
#[derive(Debug, Clone)]
pub struct Existing {
    pub id: i64,
    pub fingerprint: String,
    pub status: ClusterStatus,
    /// (rid, changed_at, live)
    pub members: Vec<(i64, String, bool)>,
}

impl Existing {
    /// A steward approved it: its pairs are labelled matches the model learns from.
    pub fn approved(&self) -> bool {
        matches!(
            self.status,
            ClusterStatus::Approved | ClusterStatus::Merging
        )
    }

    /// A member has been merged away or archived since the cluster formed.
    pub fn lost_a_member(&self) -> bool {
        self.members.iter().any(|(_, _, live)| !live)
    }
}

/// Every cluster of `object`, by id, with its members.
pub fn existing_clusters(conn: &Connection, object: ObjectType) -> Result<Vec<Existing>> {
    let mut stmt = conn.prepare(
        "SELECT c.id, c.fingerprint, c.status FROM clusters c WHERE c.object_type = ?1 ORDER BY c.id",
    )?;
    let mut existing: Vec<Existing> = stmt
        .query_map([object.as_str()], |r| {
            Ok(Existing {
                id: r.get(0)?,
                fingerprint: r.get(1)?,
                status: r.get(2)?,
                members: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let index: std::collections::HashMap<i64, usize> = existing
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id, i))
        .collect();
    let mut stmt = conn.prepare(
        "SELECT cm.cluster_id, r.rid, r.changed_at, (r.archived = 0 AND r.merged_into IS NULL)
         FROM cluster_members cm JOIN records r ON r.rid = cm.rid
         JOIN clusters c ON c.id = cm.cluster_id WHERE c.object_type = ?1",
    )?;
    let rows = stmt.query_map([object.as_str()], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    for row in rows {
        let (cid, rid, changed, live) = row?;
        if let Some(&i) = index.get(&cid) {
            existing[i].members.push((rid, changed, live));
        }
    }
    Ok(existing)
}

/// A cluster's row as it is now, for carrying out a planned change on it.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: i64,
    pub fingerprint: String,
    pub status: ClusterStatus,
    /// When its newest decision was taken.
    pub last_decision: Option<String>,
    /// Decisions or merge jobs refer to it, so its row must stay.
    pub referenced: bool,
    /// (score, weakest, label, flags), as the queue shows them.
    pub shown: (f64, f64, String, String),
}

const CURRENT: &str = "SELECT c.id, c.fingerprint, c.status,
        (SELECT MAX(decided_at) FROM decisions d WHERE d.cluster_id = c.id),
        EXISTS (SELECT 1 FROM decisions d WHERE d.cluster_id = c.id)
          OR EXISTS (SELECT 1 FROM merge_jobs j WHERE j.cluster_id = c.id),
        c.score, c.weakest, c.label, c.flags
 FROM clusters c";

fn current_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Current> {
    Ok(Current {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        status: r.get(2)?,
        last_decision: r.get(3)?,
        referenced: r.get(4)?,
        shown: (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
    })
}

/// Cluster `id` as it is now.
pub fn current_by_id(conn: &Connection, id: i64) -> Result<Option<Current>> {
    Ok(conn
        .prepare_cached(&format!("{CURRENT} WHERE c.id = ?1"))?
        .query_row([id], current_row)
        .optional()?)
}

/// The cluster of `object` with members `fingerprint`, as it is now.
pub fn current_by_fingerprint(
    conn: &Connection,
    object: ObjectType,
    fingerprint: &str,
) -> Result<Option<Current>> {
    Ok(conn
        .prepare_cached(&format!(
            "{CURRENT} WHERE c.object_type = ?1 AND c.fingerprint = ?2"
        ))?
        .query_row(params![object.as_str(), fingerprint], current_row)
        .optional()?)
}

/// Clusters of `object` waiting for a steward (pending, deferred, stale, needs attention), not
/// dissolved, with a member archived in the CRM.
pub fn open_with_archived_members(conn: &Connection, object: ObjectType) -> Result<Vec<Current>> {
    Ok(conn
        .prepare_cached(&format!(
            "{CURRENT} WHERE c.object_type = ?1
               AND c.status IN ('pending', 'deferred', 'stale', 'needs_attention')
               AND c.flags NOT LIKE '%dissolved%'
               AND EXISTS (SELECT 1 FROM cluster_members m JOIN records r ON r.rid = m.rid
                           WHERE m.cluster_id = c.id AND r.archived = 1)"
        ))?
        .query_map([object.as_str()], current_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Whether a member of cluster `id` is gone, or changed after `decided`.
pub fn members_changed(conn: &Connection, id: i64, decided: Option<&str>) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.changed_at, (r.archived = 0 AND r.merged_into IS NULL)
         FROM cluster_members cm JOIN records r ON r.rid = cm.rid WHERE cm.cluster_id = ?1",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(row) = rows.next()? {
        let (changed, live): (String, bool) = (row.get(0)?, row.get(1)?);
        if !live || decided.is_some_and(|d| changed.as_str() > d) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Remove cluster `id`, its members and pair scores with it (no decision refers to it).
pub fn delete_cluster(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM clusters WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// A cluster that no longer forms but that decisions refer to: `stale`, flagged `dissolved`.
pub fn dissolve(conn: &Connection, id: i64, now: &str) -> Result<()> {
    clusters::set_status(conn, id, ClusterStatus::Stale, Reason::Keep, now)?;
    conn.prepare_cached("UPDATE clusters SET flags = 'dissolved' WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Write planned cluster `p` of `object`, found by `matcher`: onto the row `id` with `status`
/// (through the workflow), or as a new row in the workflow's first status
/// ([`clusters::create`]). Its members and pair scores replace the row's. Returns the row id.
pub fn write_cluster(
    conn: &Connection,
    onto: Option<(i64, ClusterStatus)>,
    object: ObjectType,
    matcher: &str,
    p: &PlannedCluster,
    now: &str,
) -> Result<i64> {
    let id = match onto {
        Some((id, status)) => {
            conn.prepare_cached(
                "UPDATE clusters SET fingerprint = ?2, matcher = ?3, score = ?4, weakest = ?5,
                        size = ?6, label = ?7, flags = ?8, updated_at = ?9
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                p.fingerprint,
                matcher,
                p.score,
                p.weakest,
                p.rids.len() as i64,
                p.label,
                p.flags,
                now
            ])?;
            clusters::set_status(conn, id, status, Reason::Keep, now)?;
            conn.prepare_cached("DELETE FROM cluster_members WHERE cluster_id = ?1")?
                .execute([id])?;
            conn.prepare_cached("DELETE FROM pair_scores WHERE cluster_id = ?1")?
                .execute([id])?;
            id
        }
        None => clusters::create(
            conn,
            &NewCluster {
                object,
                fingerprint: &p.fingerprint,
                matcher,
                score: p.score,
                weakest: p.weakest,
                size: p.rids.len(),
                label: &p.label,
                flags: &p.flags,
            },
            now,
        )?,
    };
    let mut member =
        conn.prepare_cached("INSERT INTO cluster_members (cluster_id, rid) VALUES (?1, ?2)")?;
    for rid in &p.rids {
        member.execute(params![id, rid])?;
    }
    let mut pair = conn.prepare_cached(
        "INSERT INTO pair_scores (cluster_id, a_rid, b_rid, score, explanation)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (a, b, score, explanation) in &p.pairs {
        pair.execute(params![id, a, b, score, explanation])?;
    }
    Ok(id)
}
