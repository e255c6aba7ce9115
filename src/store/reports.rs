//! The read models behind the reports: the figures `stats` adds up, the decision log and the
//! candidate clusters `export` writes, and the merge trail `lineage` walks. Columns come back
//! as stored (text where the report prints text), so a report shows exactly what the workspace
//! holds. Read-only; what a report makes of the rows is its own module's business.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::model::ObjectType;

/// Live records (neither archived nor merged away).
pub fn live_records(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM records WHERE archived = 0 AND merged_into IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Members beyond the first of every cluster not rejected or merged: the records that would
/// disappear if each were merged.
pub fn surplus_members(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COALESCE(SUM(size - 1), 0) FROM clusters
         WHERE status IN ('pending', 'deferred', 'approved', 'merging', 'failed', 'stale',
                          'needs_attention')",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Clusters per status, as stored.
pub fn clusters_per_status(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM clusters GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Decisions per steward and day (`YYYY-MM-DD`), in that order.
pub fn decisions_per_steward_day(conn: &Connection) -> Result<Vec<(String, String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT steward, substr(decided_at, 1, 10), COUNT(*) FROM decisions GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Merge jobs merged, failed, and still to run (pending, running, paused).
pub fn merge_job_counts(conn: &Connection) -> Result<(u64, u64, u64)> {
    let (done, failed, pending): (i64, i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(status = 'merged'), 0), COALESCE(SUM(status = 'failed'), 0),
                COALESCE(SUM(status IN ('pending', 'running', 'paused')), 0) FROM merge_jobs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok((done as u64, failed as u64, pending as u64))
}

/// One source's record totals for one object type at its last two runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTotals {
    pub source: String,
    pub object_type: String,
    pub previous: Option<i64>,
    pub now: i64,
}

/// The record totals of every source and object type, by source then type.
pub fn run_totals(conn: &Connection) -> Result<Vec<RunTotals>> {
    let mut stmt = conn.prepare(
        "SELECT source, object_type, previous_total, total_count FROM sync_state ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RunTotals {
            source: r.get(0)?,
            object_type: r.get(1)?,
            previous: r.get(2)?,
            now: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One row of the decision log with its cluster and merge job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    pub id: i64,
    pub decided_at: String,
    pub steward: String,
    pub action: String,
    pub cluster_id: i64,
    pub object_type: String,
    pub cluster_status: String,
    /// JSON arrays and object, as stored.
    pub members: String,
    pub excluded: String,
    pub primary_id: Option<String>,
    pub field_choices: String,
    pub note: String,
    pub undoes: Option<i64>,
    pub job_id: Option<i64>,
    pub job_status: Option<String>,
    pub survivor_id: Option<String>,
    pub job_error: Option<String>,
}

/// The decision log, oldest first: decided at or after `since` (a stored timestamp), of
/// clusters in `status`.
pub fn decision_log(
    conn: &Connection,
    since: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<LoggedDecision>> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.decided_at, d.steward, d.action, d.cluster_id, c.object_type, c.status,
                d.members, d.excluded, d.primary_id, d.field_choices, d.note, d.undoes,
                j.id, j.status, j.survivor_id, j.last_error
         FROM decisions d
         JOIN clusters c ON c.id = d.cluster_id
         LEFT JOIN merge_jobs j ON j.decision_id = d.id
         WHERE (?1 IS NULL OR d.decided_at >= ?1) AND (?2 IS NULL OR c.status = ?2)
         ORDER BY d.id",
    )?;
    let rows = stmt.query_map(params![since, status], |r| {
        Ok(LoggedDecision {
            id: r.get(0)?,
            decided_at: r.get(1)?,
            steward: r.get(2)?,
            action: r.get(3)?,
            cluster_id: r.get(4)?,
            object_type: r.get(5)?,
            cluster_status: r.get(6)?,
            members: r.get(7)?,
            excluded: r.get(8)?,
            primary_id: r.get(9)?,
            field_choices: r.get(10)?,
            note: r.get(11)?,
            undoes: r.get(12)?,
            job_id: r.get(13)?,
            job_status: r.get(14)?,
            survivor_id: r.get(15)?,
            job_error: r.get(16)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One member of one candidate cluster, with the cluster's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMember {
    pub cluster_id: i64,
    pub record_id: String,
    pub object_type: String,
    pub status: String,
    pub score: f64,
    pub weakest: f64,
    pub size: i64,
    pub flags: String,
    pub matcher: String,
}

/// The members of the clusters in `status` (by default every status but `stale`, which is
/// superseded) of `object` (by default every type), in cluster id order, members by record id.
pub fn cluster_members(
    conn: &Connection,
    status: Option<&str>,
    object: Option<ObjectType>,
) -> Result<Vec<ClusterMember>> {
    let mut stmt = conn.prepare(
        "SELECT c.id, r.id, c.object_type, c.status, c.score, c.weakest, c.size, c.flags, c.matcher
         FROM clusters c
         JOIN cluster_members m ON m.cluster_id = c.id
         JOIN records r ON r.rid = m.rid
         WHERE (?1 IS NULL AND c.status != 'stale' OR c.status = ?1)
           AND (?2 IS NULL OR c.object_type = ?2)
         ORDER BY c.id, length(r.id), r.id",
    )?;
    let rows = stmt.query_map(params![status, object], |r| {
        Ok(ClusterMember {
            cluster_id: r.get(0)?,
            record_id: r.get(1)?,
            object_type: r.get(2)?,
            status: r.get(3)?,
            score: r.get(4)?,
            weakest: r.get(5)?,
            size: r.get(6)?,
            flags: r.get(7)?,
            matcher: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The ids of the records of `object` merged into `survivor`, in row order.
pub fn merged_into(conn: &Connection, object: ObjectType, survivor: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM records WHERE object_type = ?1 AND merged_into = ?2 ORDER BY rid",
    )?;
    let ids = stmt
        .query_map(params![object, survivor], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// The field choices (JSON, as stored) of the newest merged job that ended in `survivor`.
pub fn choices_merged_into(conn: &Connection, survivor: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT d.field_choices FROM merge_jobs j JOIN decisions d ON d.id = j.decision_id
             WHERE j.survivor_id = ?1 AND j.status = 'merged' ORDER BY j.id DESC LIMIT 1",
            [survivor],
            |r| r.get(0),
        )
        .optional()?)
}

/// The newest snapshot a merge job took of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub job_id: i64,
    /// The record's properties (JSON, as stored).
    pub properties: String,
    pub taken_at: String,
    pub decision_id: Option<i64>,
}

/// The newest snapshot of record `id` of `object`, if a merge job took one.
pub fn latest_snapshot(
    conn: &Connection,
    object: ObjectType,
    id: &str,
) -> Result<Option<Snapshot>> {
    Ok(conn
        .query_row(
            "SELECT s.job_id, s.properties, s.taken_at, j.decision_id FROM snapshots s
             LEFT JOIN merge_jobs j ON j.id = s.job_id
             WHERE s.object_type = ?1 AND s.record_id = ?2 ORDER BY s.id DESC LIMIT 1",
            params![object, id],
            |r| {
                Ok(Snapshot {
                    job_id: r.get(0)?,
                    properties: r.get(1)?,
                    taken_at: r.get(2)?,
                    decision_id: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Record counts, for a command's summary line.
pub fn record_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Active id mappings, for a command's summary line.
pub fn active_mapping_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM id_mapping WHERE active = 1",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Decisions in all.
pub fn decision_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get(0))?;
    Ok(n as u64)
}
