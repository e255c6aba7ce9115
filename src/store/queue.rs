//! Typed queries behind the review screens: one page of the cluster queue (sorted, filtered,
//! counted per status), one cluster with its members, pair scores and decisions, and the merge
//! journal as the merges screen lists it. Every query is bounded by a page size so a workspace
//! of a million clusters reads as fast as one of ten. Nothing here decides anything; decisions
//! are written by [`super::decisions`].

use std::collections::HashMap;

use anyhow::{Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::clusters::{ClusterStatus, JobStatus, StepKind};
use super::decisions::{self, Decision};
use super::records::{self, StoredRecord};
use crate::domain::model::ObjectType;

/// Which statuses the queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Pending, deferred and stale: what still needs a steward.
    #[default]
    Open,
    All,
    Only(ClusterStatus),
}

impl StatusFilter {
    /// The cycle a single key walks through.
    pub fn next(self) -> StatusFilter {
        match self {
            StatusFilter::Open => StatusFilter::All,
            StatusFilter::All => StatusFilter::Only(ClusterStatus::ALL[0]),
            StatusFilter::Only(s) => {
                let i = ClusterStatus::ALL.iter().position(|x| *x == s).unwrap_or(0);
                ClusterStatus::ALL
                    .get(i + 1)
                    .map(|s| StatusFilter::Only(*s))
                    .unwrap_or(StatusFilter::Open)
            }
        }
    }

    pub fn label(self) -> String {
        match self {
            StatusFilter::Open => "open".into(),
            StatusFilter::All => "all".into(),
            StatusFilter::Only(s) => s.as_str().into(),
        }
    }

    pub fn accepts(self, status: ClusterStatus) -> bool {
        match self {
            StatusFilter::Open => status.is_open(),
            StatusFilter::All => true,
            StatusFilter::Only(s) => s == status,
        }
    }

    fn statuses(self) -> Option<Vec<ClusterStatus>> {
        match self {
            StatusFilter::All => None,
            other => Some(
                ClusterStatus::ALL
                    .into_iter()
                    .filter(|s| other.accepts(*s))
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Best score first: the surest duplicates are the quickest to decide.
    #[default]
    Score,
    /// Largest clusters first.
    Size,
    /// Oldest clusters first.
    Age,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Score => SortKey::Size,
            SortKey::Size => SortKey::Age,
            SortKey::Age => SortKey::Score,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Score => "score",
            SortKey::Size => "size",
            SortKey::Age => "age",
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            SortKey::Score => "score DESC, id",
            SortKey::Size => "size DESC, score DESC, id",
            SortKey::Age => "created_at, id",
        }
    }
}

/// What the queue shows: a window of `limit` rows from `offset` in the filtered, sorted list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueQuery {
    pub sort: SortKey,
    pub status: StatusFilter,
    /// Matched against the label, any member's values and record id (case-insensitive
    /// substring, ASCII letters) and the cluster id (exactly, `#` optional).
    pub text: String,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub id: i64,
    pub object_type: ObjectType,
    pub label: String,
    pub status: ClusterStatus,
    pub score: f64,
    pub weakest: f64,
    pub size: u32,
    pub created_at: String,
}

impl QueueRow {
    /// The columns `id, object_type, label, status, score, weakest, size, created_at`, in that
    /// order from the first.
    const COLUMNS: &'static str =
        "id, object_type, label, status, score, weakest, size, created_at";

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueRow> {
        Ok(QueueRow {
            id: r.get(0)?,
            object_type: r.get(1)?,
            label: r.get(2)?,
            status: r.get(3)?,
            score: r.get(4)?,
            weakest: r.get(5)?,
            size: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            created_at: r.get(7)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueuePage {
    pub offset: u64,
    pub rows: Vec<QueueRow>,
    /// Rows matching the filter in all.
    pub total: u64,
    /// Clusters per status over the whole workspace, in [`ClusterStatus::ALL`] order.
    pub counts: Vec<(ClusterStatus, u64)>,
    /// Why each cluster of the page was proposed ("same email, similar name"), from its
    /// strongest pair's explanation; absent when the matcher stored none.
    pub reasons: HashMap<i64, String>,
}

/// The `WHERE` clause of the queue's filter and its arguments.
fn filter_sql(q: &QueueQuery) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(statuses) = q.status.statuses() {
        let marks = vec!["?"; statuses.len()].join(", ");
        clauses.push(format!("status IN ({marks})"));
        args.extend(statuses.iter().map(|s| Value::Text(s.as_str().into())));
    }
    if q.status == StatusFilter::Open {
        // A dissolved cluster (it no longer forms, or a member was archived in the CRM) is
        // kept for the decisions that refer to it, but is no longer a proposal to review.
        clauses.push("flags NOT LIKE '%dissolved%'".into());
    }
    let text = q.text.trim();
    if !text.is_empty() {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let like = Value::Text(format!("%{escaped}%"));
        // Any member's value or record id matches too. The records are scanned once for the
        // needle in their JSON text (cheap), and only those that hold it are opened to check
        // that it is in a value, not a property name; a needle with a character JSON escapes
        // skips the cheap test.
        let raw_test = if text.contains(['"', '\\']) || text.chars().any(char::is_control) {
            "1"
        } else {
            "r.properties LIKE ? ESCAPE '\\'"
        };
        clauses.push(format!(
            "(label LIKE ? ESCAPE '\\' OR CAST(id AS TEXT) = ?
              OR id IN (SELECT m.cluster_id FROM records r
                        JOIN cluster_members m ON m.rid = r.rid
                        WHERE r.id LIKE ? ESCAPE '\\'
                           OR ({raw_test} AND EXISTS (SELECT 1 FROM json_each(r.properties) j
                                                WHERE j.value LIKE ? ESCAPE '\\'))))"
        ));
        args.push(like.clone());
        args.push(Value::Text(text.trim_start_matches('#').into()));
        args.push(like.clone());
        if raw_test != "1" {
            args.push(like.clone());
        }
        args.push(like);
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (where_sql, args)
}

/// The ids of every cluster the filter shows, in its order: what a bulk decision of the
/// filtered selection acts on. At most `limit`.
pub fn ids(conn: &Connection, q: &QueueQuery, limit: u64) -> Result<Vec<i64>> {
    let (where_sql, mut args) = filter_sql(q);
    args.push(Value::Integer(limit.min(i64::MAX as u64) as i64));
    let mut stmt = conn.prepare(&format!(
        "SELECT id FROM clusters {where_sql} ORDER BY {} LIMIT ?",
        q.sort.order_by()
    ))?;
    let ids = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .context("reading the ids of the filtered queue")?;
    Ok(ids)
}

/// One page of the queue, its filtered total and the per-status counts.
pub fn page(conn: &Connection, q: &QueueQuery) -> Result<QueuePage> {
    let (where_sql, args) = filter_sql(q);
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM clusters {where_sql}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let mut page_args = args.clone();
    page_args.push(Value::Integer(q.limit.min(i64::MAX as u64) as i64));
    page_args.push(Value::Integer(q.offset.min(i64::MAX as u64) as i64));
    // The page's ids first, from an index that holds the sort columns (covering, so SQLite
    // walks it in order and stops after the page), then their rows.
    let order = q.sort.order_by();
    let mut stmt = conn.prepare(&format!(
        "SELECT {columns}
         FROM clusters
         WHERE id IN (SELECT id FROM clusters {where_sql} ORDER BY {order} LIMIT ? OFFSET ?)
         ORDER BY {order}",
        columns = QueueRow::COLUMNS
    ))?;
    let mut rows = stmt
        .query_map(params_from_iter(page_args.iter()), QueueRow::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading a page of the queue")?;
    fill_missing_labels(conn, &mut rows)?;
    Ok(QueuePage {
        offset: q.offset,
        reasons: reasons(conn, &rows)?,
        rows,
        total: total as u64,
        counts: status_counts(conn)?,
    })
}

/// Why each of `rows` was proposed: the reason of its strongest pair, read by the domain.
/// One query for the page, which reads one pair per cluster from the primary key's order.
fn reasons(conn: &Connection, rows: &[QueueRow]) -> Result<HashMap<i64, String>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let marks = vec!["?"; rows.len()].join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT cluster_id, explanation FROM (
             SELECT cluster_id, explanation,
                    ROW_NUMBER() OVER (PARTITION BY cluster_id ORDER BY score DESC, a_rid, b_rid) AS n
             FROM pair_scores WHERE cluster_id IN ({marks}))
         WHERE n = 1"
    ))?;
    let found = stmt
        .query_map(params_from_iter(rows.iter().map(|r| r.id)), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading why the queue's clusters were proposed")?;
    Ok(found
        .into_iter()
        .filter_map(|(id, text)| {
            let v = serde_json::from_str(&text).ok()?;
            let reason = crate::domain::matcher::reason::match_reason(&v);
            (!reason.is_empty()).then_some((id, reason))
        })
        .collect())
}

/// Clusters per status, every status listed (zero when none).
pub fn status_counts(conn: &Connection) -> Result<Vec<(ClusterStatus, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM clusters GROUP BY status")?;
    let found: HashMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ClusterStatus::ALL
        .into_iter()
        .map(|s| (s, found.get(s.as_str()).copied().unwrap_or(0) as u64))
        .collect())
}

/// A matcher that left `label` empty still gets a readable one: the members' names.
fn fill_missing_labels(conn: &Connection, rows: &mut [QueueRow]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.properties FROM cluster_members m JOIN records r ON r.rid = m.rid
         WHERE m.cluster_id = ?1 ORDER BY r.rid LIMIT 4",
    )?;
    for row in rows.iter_mut().filter(|r| r.label.trim().is_empty()) {
        let names: Vec<String> = stmt
            .query_map([row.id], |r| r.get::<_, String>(0))?
            .filter_map(|p| p.ok())
            .filter_map(|p| serde_json::from_str::<HashMap<String, Option<String>>>(&p).ok())
            .map(|p| display_name(&p))
            .collect();
        let mut unique: Vec<String> = Vec::new();
        for n in names {
            if !n.is_empty() && !unique.contains(&n) {
                unique.push(n);
            }
        }
        row.label = unique.join(" / ");
    }
    Ok(())
}

/// A person's or company's name as a steward would say it, from whichever properties it has.
pub fn display_name(props: &HashMap<String, Option<String>>) -> String {
    let get = |k: &str| {
        props
            .get(k)
            .and_then(|v| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let person = [get("firstname"), get("lastname")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !person.is_empty() {
        return person;
    }
    get("name")
        .or_else(|| get("email"))
        .or_else(|| get("domain"))
        .unwrap_or_default()
        .to_string()
}

/// The score and per-field explanation of one compared pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    pub a_rid: i64,
    pub b_rid: i64,
    pub score: f64,
    /// The matcher's explanation as it wrote it (JSON).
    pub explanation: serde_json::Value,
}

/// Everything the cluster screen shows about one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDetail {
    pub row: QueueRow,
    pub matcher: String,
    /// Members in row order (oldest first).
    pub members: Vec<StoredRecord>,
    pub pairs: Vec<PairScore>,
    /// Every decision on the cluster, oldest first.
    pub decisions: Vec<Decision>,
    /// Why the cluster came back to the queue (`stale`, `needs_attention`), when it says.
    pub status_reason: Option<String>,
    /// The newest merge job of the cluster, if the executor made one.
    pub job: Option<ClusterJob>,
}

/// Where the newest merge job of a cluster stands, as the cluster screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterJob {
    pub id: i64,
    pub status: JobStatus,
    /// The merged record, once the merges ran (the primary before).
    pub survivor_id: Option<String>,
    pub last_error: Option<String>,
    pub merges: u32,
    pub merges_done: u32,
    /// The kind of the first step that failed, if one did.
    pub failed_step: Option<StepKind>,
}

impl ClusterJob {
    /// Failed after every merge ran: an amend of its field choices finishes it.
    pub fn finishable(&self) -> bool {
        self.status == JobStatus::Failed && self.merges_done == self.merges
    }
}

pub fn cluster(conn: &Connection, id: i64) -> Result<Option<ClusterDetail>> {
    let head = conn
        .query_row(
            &format!(
                "SELECT {}, matcher, status_reason FROM clusters WHERE id = ?1",
                QueueRow::COLUMNS
            ),
            [id],
            |r| {
                Ok((
                    QueueRow::from_row(r)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ))
            },
        )
        .optional()
        .with_context(|| format!("reading cluster {id}"))?;
    let Some((mut row, matcher, status_reason)) = head else {
        return Ok(None);
    };
    let rids: Vec<i64> = conn
        .prepare_cached("SELECT rid FROM cluster_members WHERE cluster_id = ?1 ORDER BY rid")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut members = Vec::with_capacity(rids.len());
    for rid in rids {
        let rec = records::get_by_rid(conn, rid)?
            .with_context(|| format!("cluster {id} names record row {rid}, which is missing"))?;
        members.push(rec);
    }
    let pairs = conn
        .prepare_cached(
            "SELECT a_rid, b_rid, score, explanation FROM pair_scores
             WHERE cluster_id = ?1 ORDER BY score DESC, a_rid, b_rid",
        )?
        .query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|(a_rid, b_rid, score, text)| PairScore {
            a_rid,
            b_rid,
            score,
            // An explanation that is not JSON is still shown, as text.
            explanation: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        })
        .collect();
    fill_missing_labels(conn, std::slice::from_mut(&mut row))?;
    Ok(Some(ClusterDetail {
        row,
        matcher,
        members,
        pairs,
        decisions: decisions::for_cluster(conn, id)?,
        status_reason,
        job: cluster_job(conn, id)?,
    }))
}

/// The newest merge job of a cluster and how far it got.
pub fn cluster_job(conn: &Connection, cluster: i64) -> Result<Option<ClusterJob>> {
    let job = conn
        .query_row(
            "SELECT j.id, j.status, j.survivor_id, j.last_error,
                    (SELECT COUNT(*) FROM merge_steps s WHERE s.job_id = j.id AND s.kind = 'merge'),
                    (SELECT COUNT(*) FROM merge_steps s
                     WHERE s.job_id = j.id AND s.kind = 'merge' AND s.state = 'done'),
                    (SELECT s.kind FROM merge_steps s
                     WHERE s.job_id = j.id AND s.state = 'failed' ORDER BY s.seq LIMIT 1)
             FROM merge_jobs j WHERE j.cluster_id = ?1 ORDER BY j.id DESC LIMIT 1",
            [cluster],
            |r| {
                Ok(ClusterJob {
                    id: r.get(0)?,
                    status: r.get(1)?,
                    survivor_id: r.get(2)?,
                    last_error: r.get(3)?,
                    merges: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    merges_done: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    failed_step: r.get(6)?,
                })
            },
        )
        .optional()?;
    Ok(job)
}

/// A cluster the executor sent back to the queue before any merge, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SentBack {
    pub cluster_id: i64,
    pub status: ClusterStatus,
    pub reason: String,
}

/// Clusters that are `stale` or `needs_attention` with a reason the executor gave, newest
/// first, at most `limit`, and how many there are in all.
pub fn sent_back(conn: &Connection, limit: u64) -> Result<(Vec<SentBack>, u64)> {
    let total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM clusters
         WHERE status IN ('stale', 'needs_attention') AND status_reason IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, status, status_reason FROM clusters
         WHERE status IN ('stale', 'needs_attention') AND status_reason IS NOT NULL
         ORDER BY updated_at DESC, id LIMIT ?1",
    )?;
    let out = stmt
        .query_map([limit.min(i64::MAX as u64) as i64], |r| {
            Ok(SentBack {
                cluster_id: r.get(0)?,
                status: r.get(1)?,
                reason: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the clusters sent back")?;
    Ok((out, total as u64))
}

/// An approved cluster with its merge job, if the executor has made one.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRow {
    pub cluster_id: i64,
    pub label: String,
    pub cluster_status: ClusterStatus,
    pub size: u32,
    pub job: Option<MergeJobRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MergeJobRow {
    pub id: i64,
    pub status: JobStatus,
    pub attempts: u32,
    pub survivor_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: String,
    /// Steps done out of all steps.
    pub steps_done: u32,
    pub steps: u32,
    /// The kind of the first step that failed (snapshot, merge, update, mapping), if one did.
    pub failed_step: Option<StepKind>,
}

/// Clusters past the steward (approved, merging, merged, failed) with their newest merge job,
/// failures first, then most recently changed.
pub fn merges(conn: &Connection, limit: u64) -> Result<Vec<MergeRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.label, c.status, c.size,
                j.id, j.status, j.attempts, j.survivor_id, j.last_error, j.updated_at,
                (SELECT COUNT(*) FROM merge_steps s WHERE s.job_id = j.id AND s.state = 'done'),
                (SELECT COUNT(*) FROM merge_steps s WHERE s.job_id = j.id),
                (SELECT s.kind FROM merge_steps s WHERE s.job_id = j.id AND s.state = 'failed'
                 ORDER BY s.seq LIMIT 1)
         FROM clusters c
         LEFT JOIN merge_jobs j ON j.id = (SELECT MAX(id) FROM merge_jobs WHERE cluster_id = c.id)
         WHERE c.status IN ('approved', 'merging', 'merged', 'failed')
         ORDER BY (c.status = 'failed' OR j.status = 'failed') DESC,
                  COALESCE(j.updated_at, c.updated_at) DESC, c.id
         LIMIT ?1",
    )?;
    let raw = stmt
        .query_map([limit.min(i64::MAX as u64) as i64], |r| {
            let job_id: Option<i64> = r.get(4)?;
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, ClusterStatus>(2)?,
                r.get::<_, i64>(3)?,
                match job_id {
                    None => None,
                    Some(id) => Some(MergeJobRow {
                        id,
                        status: r.get(5)?,
                        attempts: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                        survivor_id: r.get(7)?,
                        last_error: r.get(8)?,
                        updated_at: r.get(9)?,
                        steps_done: u32::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
                        steps: u32::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
                        failed_step: r.get(12)?,
                    }),
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the merges")?;
    let mut rows = Vec::with_capacity(raw.len());
    for (cluster_id, label, status, size, job) in raw {
        let mut q = QueueRow {
            id: cluster_id,
            object_type: ObjectType::Contacts,
            label,
            status,
            score: 0.0,
            weakest: 0.0,
            size: u32::try_from(size).unwrap_or(0),
            created_at: String::new(),
        };
        fill_missing_labels(conn, std::slice::from_mut(&mut q))?;
        rows.push(MergeRow {
            cluster_id,
            label: q.label,
            cluster_status: q.status,
            size: q.size,
            job,
        });
    }
    Ok(rows)
}

/// The pending clusters whose weakest link scores at least `min_weakest`, of at most `max_size`
/// members: (id, size, weakest, label), best first.
pub fn pending_at_least(
    conn: &Connection,
    min_weakest: f64,
    max_size: Option<usize>,
) -> Result<Vec<(i64, u32, f64, String)>> {
    let max = max_size.map(|k| k as i64).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(
        "SELECT id, size, weakest, label FROM clusters
         WHERE status = ?1 AND weakest >= ?2 AND size <= ?3
         ORDER BY weakest DESC, id",
    )?;
    let rows = stmt.query_map(
        rusqlite::params![ClusterStatus::Pending, min_weakest, max],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32, r.get(2)?, r.get(3)?)),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
