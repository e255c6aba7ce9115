//! The decision log: a steward's approve, reject, defer and note on a cluster, and undo. Each
//! write is one transaction with the cluster's status change (and, for a rejection, the
//! `not_duplicates` pairs), so the log and the queue never disagree. Rows are never changed
//! or deleted; an undo is a new row naming the one it undoes. This module does not merge
//! anything: the executor reads approved decisions.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::domain::model::ObjectType;

use super::clusters::{self, Action, ClusterStatus, Logged, Reason};

/// The surviving value of one field, where it comes from and why: the precedence engine's
/// type, stored as is so the decision log answers for every value.
pub use crate::domain::precedence::FieldChoice;

/// What a steward decided about a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Approve,
    Reject,
    Defer,
    Note,
    /// New field choices for a merge job whose merges ran and whose field update failed.
    Amend,
}

impl Verdict {
    /// The action the decision log stores for it.
    pub fn action(self) -> Action {
        match self {
            Verdict::Approve => Action::Approve,
            Verdict::Reject => Action::Reject,
            Verdict::Defer => Action::Defer,
            Verdict::Note => Action::Note,
            Verdict::Amend => Action::Amend,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.action().as_str()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cases a caller must tell apart (the TUI shows them; a script may retry on none of them).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecisionError {
    #[error("cluster {0} does not exist")]
    NoSuchCluster(i64),
    #[error("cluster {cluster} is {status}; it can no longer be decided")]
    Closed { cluster: i64, status: ClusterStatus },
    #[error("record {record} is not a member of cluster {cluster}")]
    NotAMember { cluster: i64, record: String },
    #[error("the primary record {0} cannot also be excluded")]
    PrimaryExcluded(String),
    #[error("an approval needs a primary record")]
    NoPrimary,
    #[error("an approval needs at least two records that are not excluded")]
    TooFewRecords,
    #[error("cluster {cluster} is {status} now; the {action} can no longer be undone")]
    UndoTooLate {
        cluster: i64,
        status: ClusterStatus,
        action: Action,
    },
    #[error("merge job {job} of cluster {cluster} cannot be amended: {why}")]
    NotAmendable { cluster: i64, job: i64, why: String },
}

/// A decision about to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDecision {
    pub cluster_id: i64,
    pub steward: String,
    pub verdict: Verdict,
    pub primary_id: Option<String>,
    pub field_choices: BTreeMap<String, FieldChoice>,
    pub excluded: Vec<String>,
    pub note: String,
    /// What the steward was shown of every included member (approvals).
    pub seen: crate::domain::plan::Seen,
    /// The merge job an amend finishes.
    pub amends_job: Option<i64>,
}

/// A row of the decision log.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub id: i64,
    pub cluster_id: i64,
    pub steward: String,
    pub decided_at: String,
    pub action: Action,
    pub primary_id: Option<String>,
    pub field_choices: BTreeMap<String, FieldChoice>,
    pub excluded: Vec<String>,
    pub members: Vec<String>,
    pub note: String,
    pub undoes: Option<i64>,
    /// What the steward was shown of every included member (approvals and amends).
    pub seen: crate::domain::plan::Seen,
    pub amends_job: Option<i64>,
}

const COLUMNS: &str = "id, cluster_id, steward, decided_at, action, primary_id, field_choices, \
                       excluded, members, note, undoes, seen, amends_job";

type RawDecision = (Decision, String, String, String, String);

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDecision> {
    Ok((
        Decision {
            id: r.get(0)?,
            cluster_id: r.get(1)?,
            steward: r.get(2)?,
            decided_at: r.get(3)?,
            action: r.get(4)?,
            primary_id: r.get(5)?,
            field_choices: BTreeMap::new(),
            excluded: Vec::new(),
            members: Vec::new(),
            note: r.get(9)?,
            undoes: r.get(10)?,
            seen: Default::default(),
            amends_job: r.get(12)?,
        },
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(11)?,
    ))
}

fn decode(raw: RawDecision) -> Result<Decision> {
    let (mut d, choices, excluded, members, seen) = raw;
    let id = d.id;
    d.field_choices =
        serde_json::from_str(&choices).with_context(|| format!("decision {id}: field_choices"))?;
    d.excluded =
        serde_json::from_str(&excluded).with_context(|| format!("decision {id}: excluded"))?;
    d.members =
        serde_json::from_str(&members).with_context(|| format!("decision {id}: members"))?;
    d.seen = serde_json::from_str(&seen).with_context(|| format!("decision {id}: seen"))?;
    Ok(d)
}

/// One decision by its id.
pub fn get(conn: &Connection, id: i64) -> Result<Decision> {
    let raw = conn.query_row(
        &format!("SELECT {COLUMNS} FROM decisions WHERE id = ?1"),
        [id],
        from_row,
    )?;
    decode(raw)
}

/// Every decision on a cluster, oldest first.
pub fn for_cluster(conn: &Connection, cluster_id: i64) -> Result<Vec<Decision>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM decisions WHERE cluster_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([cluster_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(decode).collect()
}

/// Every decision in the workspace, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<Decision>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM decisions ORDER BY id"))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(decode).collect()
}

impl Logged for Decision {
    fn id(&self) -> i64 {
        self.id
    }
    fn action(&self) -> Action {
        self.action
    }
    fn undoes(&self) -> Option<i64> {
        self.undoes
    }
}

/// The decision standing on a cluster now ([`clusters::standing`] over its log).
pub fn standing(conn: &Connection, cluster_id: i64) -> Result<Option<Decision>> {
    Ok(clusters::standing(&for_cluster(conn, cluster_id)?).cloned())
}

fn cluster_state(tx: &Transaction<'_>, cluster_id: i64) -> Result<(ObjectType, ClusterStatus)> {
    let state = tx
        .query_row(
            "SELECT object_type, status FROM clusters WHERE id = ?1",
            [cluster_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .with_context(|| format!("reading cluster {cluster_id}"))?
        .ok_or(DecisionError::NoSuchCluster(cluster_id))?;
    Ok(state)
}

/// Write a decision and its consequences in one transaction; returns the stored row.
pub fn record(conn: &mut Connection, new: &NewDecision) -> Result<Decision> {
    let tx = conn.transaction()?;
    let (object_type, status) = cluster_state(&tx, new.cluster_id)?;
    let closed = match new.verdict {
        Verdict::Note => false,
        // An amend finishes a failed job; everything else needs a cluster still in review.
        Verdict::Amend => status != ClusterStatus::Failed,
        _ => matches!(
            status,
            ClusterStatus::Merging | ClusterStatus::Merged | ClusterStatus::Failed
        ),
    };
    if closed {
        return Err(DecisionError::Closed {
            cluster: new.cluster_id,
            status,
        }
        .into());
    }
    let members: Vec<String> = tx
        .prepare_cached(
            "SELECT r.id FROM cluster_members m JOIN records r ON r.rid = m.rid
             WHERE m.cluster_id = ?1 ORDER BY r.rid",
        )?
        .query_map([new.cluster_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let named = new.primary_id.iter().chain(&new.excluded).chain(
        new.field_choices
            .values()
            .filter_map(|c| c.record_id.as_ref()),
    );
    for id in named {
        if !members.contains(id) {
            return Err(DecisionError::NotAMember {
                cluster: new.cluster_id,
                record: id.clone(),
            }
            .into());
        }
    }
    if matches!(new.verdict, Verdict::Approve | Verdict::Amend) {
        let primary = new.primary_id.as_ref().ok_or(DecisionError::NoPrimary)?;
        if new.excluded.contains(primary) {
            return Err(DecisionError::PrimaryExcluded(primary.clone()).into());
        }
        if members.iter().filter(|m| !new.excluded.contains(m)).count() < 2 {
            return Err(DecisionError::TooFewRecords.into());
        }
    }
    let amended = match (new.verdict, new.amends_job) {
        (Verdict::Amend, Some(job)) => {
            let why = super::journal::amendable(&tx, new.cluster_id, job)?;
            if let Some(why) = why {
                return Err(DecisionError::NotAmendable {
                    cluster: new.cluster_id,
                    job,
                    why,
                }
                .into());
            }
            Some(job)
        }
        (Verdict::Amend, None) => {
            return Err(DecisionError::NotAmendable {
                cluster: new.cluster_id,
                job: 0,
                why: "no job named".to_string(),
            }
            .into());
        }
        _ => None,
    };
    let now = super::now_ts();
    tx.execute(
        "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id,
                                field_choices, excluded, members, note, seen, amends_job)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            new.cluster_id,
            new.steward,
            now,
            new.verdict.action(),
            new.primary_id,
            serde_json::to_string(&new.field_choices)?,
            serde_json::to_string(&new.excluded)?,
            serde_json::to_string(&members)?,
            new.note,
            serde_json::to_string(&new.seen)?,
            amended,
        ],
    )?;
    let id = tx.last_insert_rowid();
    if let Some(job) = amended {
        let update = crate::domain::plan::update_from_choices(&new.field_choices);
        super::journal::amend_update(&tx, job, &update, &now)?;
    }
    if let Some(next) = new.verdict.action().status() {
        // A new decision answers whatever reason the cluster came back to the queue for.
        clusters::set_status(&tx, new.cluster_id, next, Reason::Clear, &now)?;
    }
    if new.verdict == Verdict::Reject {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO not_duplicates (object_type, a_id, b_id, decision_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                if lo != hi {
                    insert.execute(params![object_type, lo, hi, id, now])?;
                }
            }
        }
    }
    let stored = get(&tx, id)?;
    tx.commit()?;
    Ok(stored)
}

/// What an undo did.
#[derive(Debug, Clone, PartialEq)]
pub struct Undone {
    /// The new `undo` row.
    pub undo: Decision,
    /// The decision it undid.
    pub undone: Decision,
    /// The cluster's status afterwards.
    pub status: ClusterStatus,
}

/// Undo `steward`'s newest decision that is not yet undone (undos themselves are not undone).
/// The cluster gets back the status its previous standing decision gave it (else pending) and a
/// rejection's `not_duplicates` pairs are removed. `None` when there is nothing to undo.
pub fn undo_last(conn: &mut Connection, steward: &str) -> Result<Option<Undone>> {
    let tx = conn.transaction()?;
    let target: Option<i64> = tx
        .query_row(
            "SELECT d.id FROM decisions d
             WHERE d.steward = ?1 AND d.action <> 'undo'
               AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)
             ORDER BY d.id DESC LIMIT 1",
            [steward],
            |r| r.get(0),
        )
        .optional()?;
    let Some(target) = target else {
        return Ok(None);
    };
    let undone = get(&tx, target)?;
    let (_, current) = cluster_state(&tx, undone.cluster_id)?;
    let set_by_it = undone.action.status();
    // An amend put its job back in the executor's queue; the job may be running.
    if undone.action == Action::Amend || set_by_it.is_some_and(|set| current != set) {
        return Err(DecisionError::UndoTooLate {
            cluster: undone.cluster_id,
            status: current,
            action: undone.action,
        }
        .into());
    }
    let now = super::now_ts();
    tx.execute(
        "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id, members, undoes)
         VALUES (?1, ?2, ?3, 'undo', ?4, ?5, ?6)",
        params![
            undone.cluster_id,
            steward,
            now,
            undone.primary_id,
            serde_json::to_string(&undone.members)?,
            undone.id,
        ],
    )?;
    let undo_id = tx.last_insert_rowid();
    let status = if set_by_it.is_some() {
        // What the standing decision says now that `undone` no longer counts.
        let restored = standing(&tx, undone.cluster_id)?
            .and_then(|d| d.action.status())
            .unwrap_or(ClusterStatus::Pending);
        clusters::set_status(&tx, undone.cluster_id, restored, Reason::Clear, &now)?;
        restored
    } else {
        current
    };
    tx.execute(
        "DELETE FROM not_duplicates WHERE decision_id = ?1",
        [undone.id],
    )?;
    let undo = get(&tx, undo_id)?;
    tx.commit()?;
    Ok(Some(Undone {
        undo,
        undone,
        status,
    }))
}
