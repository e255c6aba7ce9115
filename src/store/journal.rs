//! The merge journal (`merge_jobs`, `merge_steps`, `snapshots`): typed queries the executor uses
//! to record each step before it is sent and after it returns. Planning a job from an approved
//! decision happens here too, in one transaction with the cluster's move to `merging`, so a job
//! exists exactly once per approval.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::clusters::{self, Action, ClusterStatus, JobStatus, Reason, StepKind, StepState};
use super::decisions;
use crate::domain::model::ObjectType;
use crate::store::now_ts;

/// What a step asks for. Stored as the step's `request` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StepRequest {
    /// Read every member (with history) into `snapshots`.
    Snapshot { ids: Vec<String> },
    /// Merge `loser` into whatever the survivor is when the step runs.
    Merge { loser: String },
    /// PATCH the final survivor with the steward's field choices.
    Update {
        properties: BTreeMap<String, String>,
    },
    /// Supersede the id mappings of the merged-away ids.
    Mapping { merged_ids: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub cluster_id: i64,
    pub decision_id: i64,
    pub object_type: ObjectType,
    pub status: JobStatus,
    /// The primary until the first merge returns, then the id each merge returned.
    pub survivor_id: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: i64,
    pub job_id: i64,
    pub seq: i64,
    pub kind: StepKind,
    pub state: StepState,
    pub request: StepRequest,
    pub response_id: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The effective approval of a cluster, read from the decision log.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub cluster_id: i64,
    pub decision_id: i64,
    pub object_type: ObjectType,
    pub primary: String,
    pub losers: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

/// The approved clusters that have no merge job yet, with what their approving decision says
/// (the [standing](clusters::standing) one), oldest approval first, at most `limit`.
pub fn unplanned_approvals(conn: &Connection, limit: Option<usize>) -> Result<Vec<Approval>> {
    let approved: Vec<(i64, ObjectType)> = conn
        .prepare_cached("SELECT id, object_type FROM clusters WHERE status = ?1 ORDER BY id")?
        .query_map([ClusterStatus::Approved], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()
        .context("reading the approved clusters")?;
    let mut standing = Vec::new();
    for (cluster_id, object_type) in approved {
        match decisions::standing(conn, cluster_id)? {
            Some(d) if d.action == Action::Approve && !has_job(conn, d.id)? => {
                standing.push((object_type, d))
            }
            _ => {}
        }
    }
    standing.sort_by_key(|(_, d)| d.id);
    standing.truncate(limit.unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(standing.len());
    for (object_type, d) in standing {
        let (cluster_id, decision_id) = (d.cluster_id, d.id);
        let mut members = d.members;
        if members.is_empty() {
            members = cluster_member_ids(conn, cluster_id)?;
        }
        members.retain(|m| !d.excluded.contains(m));
        let primary = d
            .primary_id
            .filter(|p| members.contains(p))
            .or_else(|| members.first().cloned())
            .ok_or_else(|| anyhow!("decision {decision_id}: no members left to merge"))?;
        let losers: Vec<String> = members.into_iter().filter(|m| *m != primary).collect();
        out.push(Approval {
            cluster_id,
            decision_id,
            object_type,
            primary,
            losers,
            properties: crate::domain::plan::update_from_choices(&d.field_choices),
        });
    }
    Ok(out)
}

/// Whether decision `decision` has a merge job already.
fn has_job(conn: &Connection, decision: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM merge_jobs WHERE decision_id = ?1)")?
        .query_row([decision], |r| r.get(0))?)
}

fn cluster_member_ids(conn: &Connection, cluster_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT r.id FROM cluster_members m JOIN records r ON r.rid = m.rid
         WHERE m.cluster_id = ?1 ORDER BY r.rid",
    )?;
    let ids = stmt.query_map([cluster_id], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

/// Create the job and its steps for an approval and move the cluster to `merging`, in one
/// transaction, if the approval still stands when the job is written: the cluster is still
/// `approved`, the decision is still its newest approval that no undo names, and no job exists
/// for it yet (another executor may have planned it a moment ago). `None` when it no longer
/// stands; nothing is written then.
pub fn plan_job(conn: &mut Connection, a: &Approval) -> Result<Option<i64>> {
    let tx = conn.transaction()?;
    let stands = clusters::status(&tx, a.cluster_id)? == Some(ClusterStatus::Approved)
        && decisions::standing(&tx, a.cluster_id)?
            .is_some_and(|d| d.id == a.decision_id && d.action == Action::Approve)
        && !has_job(&tx, a.decision_id)?;
    if !stands {
        return Ok(None);
    }
    let now = now_ts();
    tx.execute(
        "INSERT INTO merge_jobs (cluster_id, decision_id, object_type, status, survivor_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![a.cluster_id, a.decision_id, a.object_type, JobStatus::Pending, a.primary, now],
    )?;
    let job = tx.last_insert_rowid();
    let mut all = vec![a.primary.clone()];
    all.extend(a.losers.iter().cloned());
    let mut steps = vec![StepRequest::Snapshot { ids: all.clone() }];
    steps.extend(
        a.losers
            .iter()
            .map(|l| StepRequest::Merge { loser: l.clone() }),
    );
    steps.push(StepRequest::Update {
        properties: a.properties.clone(),
    });
    steps.push(StepRequest::Mapping { merged_ids: all });
    for (seq, req) in steps.iter().enumerate() {
        let kind = match req {
            StepRequest::Snapshot { .. } => StepKind::Snapshot,
            StepRequest::Merge { .. } => StepKind::Merge,
            StepRequest::Update { .. } => StepKind::Update,
            StepRequest::Mapping { .. } => StepKind::Mapping,
        };
        tx.execute(
            "INSERT INTO merge_steps (job_id, seq, kind, state, request, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                job,
                seq as i64,
                kind,
                StepState::Pending,
                serde_json::to_string(req)?,
                now
            ],
        )?;
    }
    clusters::set_status(
        &tx,
        a.cluster_id,
        ClusterStatus::Merging,
        Reason::Keep,
        &now,
    )?;
    tx.commit()?;
    Ok(Some(job))
}

const JOB_COLUMNS: &str = "id, cluster_id, decision_id, object_type, status, survivor_id, attempts, last_error, updated_at";

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        cluster_id: r.get(1)?,
        decision_id: r.get(2)?,
        object_type: r.get(3)?,
        status: r.get(4)?,
        survivor_id: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

/// Jobs that still have work: pending ones, and running ones a crash interrupted.
pub fn runnable_jobs(conn: &Connection, limit: Option<usize>) -> Result<Vec<Job>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {JOB_COLUMNS} FROM merge_jobs WHERE status IN ('pending', 'running', 'paused')
         ORDER BY id LIMIT ?1"
    ))?;
    let limit = limit.map(|l| l as i64).unwrap_or(-1);
    let rows = stmt.query_map([limit], job_from_row)?;
    rows.collect::<rusqlite::Result<_>>()
        .context("reading the runnable merge jobs")
}

pub fn all_jobs(conn: &Connection) -> Result<Vec<Job>> {
    let mut stmt = conn.prepare(&format!("SELECT {JOB_COLUMNS} FROM merge_jobs ORDER BY id"))?;
    let rows = stmt.query_map([], job_from_row)?;
    rows.collect::<rusqlite::Result<_>>()
        .context("reading the merge jobs")
}

pub fn get_job(conn: &Connection, id: i64) -> Result<Job> {
    conn.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM merge_jobs WHERE id = ?1"),
        [id],
        job_from_row,
    )
    .optional()
    .with_context(|| format!("reading merge job {id}"))?
    .ok_or_else(|| anyhow!("no merge job {id}"))
}

pub fn steps(conn: &Connection, job_id: i64) -> Result<Vec<Step>> {
    let mut stmt = conn.prepare(
        "SELECT id, job_id, seq, kind, state, request, response_id, attempts, last_error
         FROM merge_steps WHERE job_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([job_id], |r| {
        Ok((
            Step {
                id: r.get(0)?,
                job_id: r.get(1)?,
                seq: r.get(2)?,
                kind: r.get(3)?,
                state: r.get(4)?,
                request: StepRequest::Snapshot { ids: Vec::new() },
                response_id: r.get(6)?,
                attempts: r.get(7)?,
                last_error: r.get(8)?,
            },
            r.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut step, request) =
            row.with_context(|| format!("reading merge job {job_id}'s steps"))?;
        step.request = serde_json::from_str(&request)
            .with_context(|| format!("merge step {}: request", step.id))?;
        out.push(step);
    }
    Ok(out)
}

/// Set a job's status. Every status but `running` also releases the job's claim: a job that
/// ended, paused or waits for the CRM is anybody's to take up again.
pub fn set_job_status(
    conn: &Connection,
    job: i64,
    status: JobStatus,
    error: Option<&str>,
) -> Result<()> {
    conn.execute(
        "UPDATE merge_jobs SET status = ?2, last_error = COALESCE(?3, last_error), updated_at = ?4,
                attempts = attempts + (?2 = 'running'),
                owner = CASE WHEN ?2 = 'running' THEN owner END,
                lease_until = CASE WHEN ?2 = 'running' THEN lease_until END
         WHERE id = ?1",
        params![job, status, error, now_ts()],
    )?;
    Ok(())
}

/// Job `job` failed with `error`, and its cluster with it, in one transaction.
pub fn fail_job(conn: &mut Connection, job: i64, cluster: i64, error: &str) -> Result<()> {
    let tx = conn.transaction()?;
    set_job_status(&tx, job, JobStatus::Failed, Some(error))?;
    clusters::set_status(&tx, cluster, ClusterStatus::Failed, Reason::Keep, &now_ts())?;
    tx.commit()?;
    Ok(())
}

/// The last step of job `job` is done: the job is merged into `survivor` and its cluster is
/// merged. Runs in the caller's transaction, with the step's local work.
pub fn finish_merged(
    conn: &Connection,
    job: i64,
    step: i64,
    cluster: i64,
    survivor: &str,
    now: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE merge_steps SET state = ?2, updated_at = ?3 WHERE id = ?1",
        params![step, StepState::Done, now],
    )?;
    conn.execute(
        "UPDATE merge_jobs SET status = ?2, survivor_id = ?3, last_error = NULL, updated_at = ?4
         WHERE id = ?1",
        params![job, JobStatus::Merged, survivor, now],
    )?;
    clusters::set_status(conn, cluster, ClusterStatus::Merged, Reason::Keep, now)?;
    Ok(())
}

/// A step was about to be sent by an executor that no longer holds its job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "merge job {job} is no longer claimed by this executor (its lease ran out); nothing was sent"
)]
pub struct LostClaim {
    pub job: i64,
}

/// Record that a step is about to be sent, by `owner`, who must still hold the step's job:
/// the claim is checked in the same statement, so an executor whose lease ran out (and whose
/// job another one took up) never sends. Must be committed before the call goes out.
pub fn mark_sent(conn: &Connection, step: i64, owner: &str) -> Result<()> {
    let changed = conn.execute(
        "UPDATE merge_steps SET state = 'sent', attempts = attempts + 1, updated_at = ?2
         WHERE id = ?1 AND (SELECT owner FROM merge_jobs WHERE id = merge_steps.job_id) = ?3",
        params![step, now_ts(), owner],
    )?;
    if changed == 0 {
        let job: i64 = conn.query_row(
            "SELECT job_id FROM merge_steps WHERE id = ?1",
            [step],
            |r| r.get(0),
        )?;
        return Err(LostClaim { job }.into());
    }
    Ok(())
}

/// Who runs merge jobs: one `apply` run (or one run of the review's background merges), named
/// by its host, its process and a random part, so that a job's owner tells whether it is
/// still alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    pub id: String,
    host: String,
}

impl Executor {
    pub fn new() -> Executor {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && !h.contains(':'))
            .unwrap_or_else(|| "localhost".to_string());
        let run = uuid::Uuid::new_v4().simple().to_string();
        Executor {
            id: format!("{host}:{}:{}", std::process::id(), &run[..12]),
            host,
        }
    }

    /// Whether `owner`'s claim still stands as far as this machine can tell: a process of this
    /// host that is gone holds nothing any more. Another host's claim, and one of a live
    /// process (this one included: two runs may go on in one process), stands until its lease
    /// ends.
    fn owner_alive(&self, owner: &str) -> bool {
        let mut parts = owner.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        if host != self.host {
            return true;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        // A process that exited but was not yet reaped (a zombie) holds nothing either.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !matches!(
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next()),
                Some('Z' | 'X')
            ),
            Err(_) => false,
        }
    }
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

fn lease_end(lease: std::time::Duration) -> String {
    let end = super::clock::now()
        + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(60));
    crate::domain::model::format_ts(&end)
}

/// Claim the next job that has work and that no live executor holds, for `lease`: the fresh
/// row, read in the claiming transaction (its survivor is what the journal says now). `None`
/// when every such job is held by someone else, or there is none.
pub fn claim_next(
    conn: &mut Connection,
    me: &Executor,
    lease: std::time::Duration,
) -> Result<Option<Job>> {
    let tx = conn.transaction()?;
    let now = now_ts();
    let candidates: Vec<(i64, Option<String>, Option<String>)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, owner, lease_until FROM merge_jobs
             WHERE status IN ('pending', 'running', 'paused') ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // A job this run holds is running already; one held by a live executor is theirs until
    // their lease runs out.
    let free = candidates
        .into_iter()
        .find(|(_, owner, until)| match owner {
            None => true,
            Some(o) if *o == me.id => false,
            Some(o) => until.as_deref().is_none_or(|u| u < now.as_str()) || !me.owner_alive(o),
        });
    let Some((id, _, _)) = free else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE merge_jobs SET owner = ?2, lease_until = ?3, status = 'running',
                attempts = attempts + 1, updated_at = ?4
         WHERE id = ?1",
        params![id, me.id, lease_end(lease), now],
    )?;
    let job = tx
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM merge_jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .with_context(|| format!("reading merge job {id}"))?;
    tx.commit()?;
    Ok(Some(job))
}

/// Give up every claim `me` holds, at the end of its run: a job it left `running` (stopped by
/// a workspace error) goes back to `pending`, to resume from its journal.
pub fn release_claims(conn: &Connection, me: &Executor) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE merge_jobs SET owner = NULL, lease_until = NULL,
                status = CASE WHEN status = 'running' THEN 'pending' ELSE status END
         WHERE owner = ?1",
        [&me.id],
    )?)
}

/// Renew the lease of every job `me` runs. The heartbeat of a running executor.
pub fn renew_claims(conn: &Connection, me: &Executor, lease: std::time::Duration) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE merge_jobs SET lease_until = ?2 WHERE owner = ?1 AND status = 'running'",
        params![me.id, lease_end(lease)],
    )?)
}

/// Record a step's outcome; for a merge, the returned id becomes the job's survivor in the same
/// transaction.
pub fn mark_done(
    conn: &mut Connection,
    job: i64,
    step: i64,
    response_id: Option<&str>,
    survivor: Option<&str>,
) -> Result<()> {
    let tx = conn.transaction()?;
    mark_done_in(&tx, job, step, response_id, survivor)?;
    tx.commit()?;
    Ok(())
}

/// [`mark_done`] inside a transaction of the caller's, which commits it with what else the step
/// wrote (a snapshot's records).
pub fn mark_done_in(
    tx: &rusqlite::Transaction<'_>,
    job: i64,
    step: i64,
    response_id: Option<&str>,
    survivor: Option<&str>,
) -> Result<()> {
    let now = now_ts();
    tx.execute(
        "UPDATE merge_steps SET state = 'done', response_id = ?2, last_error = NULL, updated_at = ?3 WHERE id = ?1",
        params![step, response_id, now],
    )?;
    if let Some(s) = survivor {
        tx.execute(
            "UPDATE merge_jobs SET survivor_id = ?2, updated_at = ?3 WHERE id = ?1",
            params![job, s, now],
        )?;
    }
    Ok(())
}

/// Record a step's failure. A merge step keeps `sent` (the call's outcome is unknown until the
/// ids are re-read); other steps become `failed`.
pub fn mark_step_error(conn: &Connection, step: i64, keep_sent: bool, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE merge_steps SET state = CASE WHEN ?3 THEN state ELSE 'failed' END,
                last_error = ?2, updated_at = ?4 WHERE id = ?1",
        params![step, error, keep_sent, now_ts()],
    )?;
    Ok(())
}

/// Put failed jobs back in the queue. Their failed steps become pending again; a merge step
/// left `sent` stays so, and is resolved by re-reading the ids before anything is sent.
pub fn retry_failed(conn: &mut Connection, job: Option<i64>) -> Result<usize> {
    let tx = conn.transaction()?;
    let now = now_ts();
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM merge_jobs WHERE status IN ('failed', 'paused') AND (?1 IS NULL OR id = ?1)",
        )?;
        let rows = stmt.query_map([job], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &ids {
        tx.execute(
            "UPDATE merge_steps SET state = 'pending', updated_at = ?2 WHERE job_id = ?1 AND state = 'failed'",
            params![id, now],
        )?;
        tx.execute(
            "UPDATE merge_jobs SET status = 'pending', updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        let cluster: i64 = tx.query_row(
            "SELECT cluster_id FROM merge_jobs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        clusters::set_status(&tx, cluster, ClusterStatus::Merging, Reason::Keep, &now)?;
    }
    tx.commit()?;
    Ok(ids.len())
}

/// Why merge job `job` of `cluster` cannot take an amend, or `None` when it can: it must be
/// that cluster's job, failed, with every merge done, so that only the field update (and the
/// local mapping step after it) is left. An amend never repeats a merge.
pub fn amendable(conn: &Connection, cluster: i64, job: i64) -> Result<Option<String>> {
    let row: Option<(i64, JobStatus)> = conn
        .query_row(
            "SELECT cluster_id, status FROM merge_jobs WHERE id = ?1",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((of_cluster, status)) = row else {
        return Ok(Some("there is no such job".to_string()));
    };
    if of_cluster != cluster {
        return Ok(Some(format!("it belongs to cluster {of_cluster}")));
    }
    if status != JobStatus::Failed {
        return Ok(Some(format!("it is {status}, not failed")));
    }
    let undone: i64 = conn.query_row(
        "SELECT COUNT(*) FROM merge_steps
         WHERE job_id = ?1 AND kind IN ('snapshot', 'merge') AND state <> 'done'",
        [job],
        |r| r.get(0),
    )?;
    if undone > 0 {
        return Ok(Some(
            "its merges have not all run; retry it instead".to_string(),
        ));
    }
    Ok(None)
}

/// Replace the field update of an amendable job (see [`amendable`]) and queue the job again
/// from that step. Call in the transaction that records the amend decision.
pub fn amend_update(
    conn: &Connection,
    job: i64,
    properties: &BTreeMap<String, String>,
    now: &str,
) -> Result<()> {
    let request = serde_json::to_string(&StepRequest::Update {
        properties: properties.clone(),
    })?;
    conn.execute(
        "UPDATE merge_steps SET request = ?2, state = 'pending', last_error = NULL, updated_at = ?3
         WHERE job_id = ?1 AND kind = 'update'",
        params![job, request, now],
    )?;
    conn.execute(
        "UPDATE merge_steps SET state = 'pending', updated_at = ?2
         WHERE job_id = ?1 AND kind = 'mapping' AND state = 'failed'",
        params![job, now],
    )?;
    conn.execute(
        "UPDATE merge_jobs SET status = 'pending', last_error = NULL, updated_at = ?2 WHERE id = ?1",
        params![job, now],
    )?;
    Ok(())
}

/// What a refused plan does to its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A member changed in the CRM since the review: the cluster is `stale`.
    Stale,
    /// The CRM would refuse the plan: the cluster `needs_attention`.
    Invalid,
}

/// The checks before the first merge refused job `job`: nothing was sent. The job is
/// `cancelled` for good (a new approval makes a new job), its first step `failed` with the
/// reason, and the cluster goes back to the queue as `stale` or `needs_attention` with it.
pub fn cancel_job(
    conn: &mut Connection,
    job: i64,
    step: i64,
    refusal: Refusal,
    reason: &str,
) -> Result<()> {
    let tx = conn.transaction()?;
    let now = now_ts();
    let sent: i64 = tx.query_row(
        "SELECT COUNT(*) FROM merge_steps WHERE job_id = ?1 AND kind = 'merge' AND state <> 'pending'",
        [job],
        |r| r.get(0),
    )?;
    if sent > 0 {
        bail!("merge job {job} has sent a merge; it cannot be cancelled");
    }
    tx.execute(
        "UPDATE merge_steps SET state = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
        params![step, reason, now],
    )?;
    tx.execute(
        "UPDATE merge_jobs SET status = 'cancelled', last_error = ?2, updated_at = ?3 WHERE id = ?1",
        params![job, reason, now],
    )?;
    let status = match refusal {
        Refusal::Stale => ClusterStatus::Stale,
        Refusal::Invalid => ClusterStatus::NeedsAttention,
    };
    let cluster: i64 = tx.query_row(
        "SELECT cluster_id FROM merge_jobs WHERE id = ?1",
        [job],
        |r| r.get(0),
    )?;
    clusters::set_status(&tx, cluster, status, Reason::Set(reason), &now)?;
    tx.commit()?;
    Ok(())
}

/// The approval behind `job`: what the steward was shown of the members, whom they excluded
/// and what they chose.
pub fn approval_of_job(conn: &Connection, job: i64) -> Result<decisions::Decision> {
    let decision: i64 = conn.query_row(
        "SELECT decision_id FROM merge_jobs WHERE id = ?1",
        [job],
        |r| r.get(0),
    )?;
    decisions::get(conn, decision).with_context(|| format!("merge job {job}: its approval"))
}

/// Store a snapshot of one record; a second snapshot of the same record for the same job is
/// ignored (the first was taken before any merge).
pub fn save_snapshot(
    conn: &Connection,
    job: i64,
    record: &crate::domain::model::Record,
    asked_id: &str,
) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO snapshots (job_id, object_type, record_id, properties, history, taken_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            job,
            record.object_type,
            asked_id,
            serde_json::to_string(&record.properties)?,
            serde_json::to_string(&record.history)?,
            now_ts()
        ],
    )?;
    Ok(())
}
