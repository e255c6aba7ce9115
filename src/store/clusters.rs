//! The life of a cluster, in one place: the statuses it can be in, the moves between them that
//! the workflow allows ([`allowed`]), the one function that changes a cluster's status
//! ([`set_status`], which refuses any other move), the actions of the decision log and the
//! rule that picks the decision standing among them ([`standing`]). The matcher makes clusters
//! `pending` and sends them back as `stale`; a steward's verdict makes them `approved`,
//! `rejected` or `deferred` (an undo restores what the standing decision says); the executor
//! takes an approved cluster to `merging`, then `merged` or `failed`, or back to the queue as
//! `stale` or `needs_attention` before its first merge; an amend or a retry takes a failed one
//! back to `merging`. The states of merge jobs and their steps live here too, as the journal
//! stores them. Every enum is stored as text through rusqlite's `ToSql`/`FromSql`, so a column
//! holding a value outside the enum is an error naming it. A new cluster's row is made here too
//! ([`create`]), in the first status ([`ClusterStatus::FIRST`]). This module decides nothing
//! about records or merges and writes nothing but a cluster's status and a new cluster's row.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Text enums stored in SQLite: `as_str` is the stored form, `ALL` every value, and the
/// `FromStr`, `Display`, `ToSql` and `FromSql` impls follow from them.
macro_rules! stored_enum {
    ($ty:ident, $what:literal, [$($variant:ident => $text:literal),+ $(,)?]) => {
        impl $ty {
            pub const ALL: [$ty; [$($text),+].len()] = [$($ty::$variant),+];

            /// The stored form, as the database column holds it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::store::clusters::UnknownValue;
            /// The stored form, or as a steward types it: any case, `-` or a space for `_`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim().replace(['-', ' '], "_");
                $ty::ALL
                    .into_iter()
                    .find(|v| v.as_str().eq_ignore_ascii_case(&wanted))
                    .ok_or_else(|| $crate::store::clusters::UnknownValue {
                        what: $what,
                        value: s.to_string(),
                    })
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                text.parse()
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

pub(crate) use stored_enum;

/// A stored value outside its enum (a workspace written by a newer dupdesk, or edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// A cluster's place in the review workflow, as the `clusters.status` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterStatus {
    Pending,
    Approved,
    Rejected,
    Deferred,
    Merging,
    Merged,
    Failed,
    /// A member changed since the review (in the workspace, or in the CRM as the executor found
    /// before its first merge): back in the queue to be reviewed again.
    Stale,
    /// The executor's checks found that the CRM would refuse the approved merge plan (a
    /// read-only field, a value outside a property's options, a unique value another record
    /// holds); nothing was sent. Back in the queue with the reason.
    NeedsAttention,
}

stored_enum!(ClusterStatus, "cluster status", [
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Deferred => "deferred",
    Merging => "merging",
    Merged => "merged",
    Failed => "failed",
    Stale => "stale",
    NeedsAttention => "needs_attention",
]);

impl ClusterStatus {
    /// The status a cluster is made in: proposed by a matcher, not yet seen by a steward.
    pub const FIRST: ClusterStatus = ClusterStatus::Pending;

    /// As a steward reads it ("needs attention").
    pub fn label(self) -> &'static str {
        match self {
            ClusterStatus::NeedsAttention => "needs attention",
            other => other.as_str(),
        }
    }

    /// At most nine characters, for the queue's status column.
    pub fn short(self) -> &'static str {
        match self {
            ClusterStatus::NeedsAttention => "attention",
            other => other.as_str(),
        }
    }

    /// Still waiting for a steward: what the review queue shows by default.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ClusterStatus::Pending
                | ClusterStatus::Deferred
                | ClusterStatus::Stale
                | ClusterStatus::NeedsAttention
        )
    }

    /// Past the steward: the executor's until its job ends. No verdict changes it.
    pub fn is_executors(self) -> bool {
        matches!(
            self,
            ClusterStatus::Merging | ClusterStatus::Merged | ClusterStatus::Failed
        )
    }
}

/// Whether the workflow lets a cluster go from `from` to `to`. Staying is a move too (the
/// matcher rewrites a pending cluster's scores, a steward approves an approved one again), and
/// only where the workflow does it.
pub fn allowed(from: ClusterStatus, to: ClusterStatus) -> bool {
    use ClusterStatus::*;
    match (from, to) {
        // A steward's approve, reject or defer, on any cluster not yet the executor's.
        (
            Pending | Approved | Rejected | Deferred | Stale | NeedsAttention,
            Approved | Rejected | Deferred,
        ) => true,
        // An undo gives back what the standing decision says, else pending.
        (Approved | Rejected | Deferred, Pending) => true,
        // The matcher: a cluster whose members changed after its review, that no longer forms
        // or that lost a member to archiving in the CRM is stale; one rewritten in place keeps
        // its status, and a needs-attention one taken over by a new grouping starts again.
        (Pending | Approved | Rejected | Deferred | Stale | NeedsAttention, Stale) => true,
        (Pending | NeedsAttention, Pending) | (NeedsAttention, NeedsAttention) => true,
        // The executor plans the approval's job; an amend or a retry restarts a failed one,
        // and a retry of a paused one leaves its cluster merging.
        (Approved | Failed | Merging, Merging) => true,
        // The job's end, or its checks before the first merge sending the cluster back.
        (Merging, Merged | Failed | Stale | NeedsAttention) => true,
        _ => false,
    }
}

/// A status change the workflow does not allow, or a cluster that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("cluster {cluster} cannot go from {from} to {to}")]
    Refused {
        cluster: i64,
        from: ClusterStatus,
        to: ClusterStatus,
    },
    #[error("cluster {0} does not exist")]
    NoSuchCluster(i64),
}

/// What a status change does to `clusters.status_reason`, the reason shown beside a cluster
/// sent back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// Leave it as it is (the matcher's changes).
    Keep,
    /// Clear it: a steward's decision answers whatever the cluster came back for.
    Clear,
    /// Set it: the executor says why it sent the cluster back.
    Set(&'a str),
}

/// The status of cluster `id`, `None` when there is no such cluster.
pub fn status(conn: &Connection, id: i64) -> Result<Option<ClusterStatus>> {
    Ok(conn
        .prepare_cached("SELECT status FROM clusters WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Move cluster `id` to `to`, if [`allowed`] from the status it has now ([`TransitionError`]
/// otherwise, and nothing is written). Returns the status it had. Runs in the caller's
/// transaction: the move belongs with whatever caused it.
pub fn set_status(
    conn: &Connection,
    id: i64,
    to: ClusterStatus,
    reason: Reason<'_>,
    now: &str,
) -> Result<ClusterStatus> {
    let from = status(conn, id)?.ok_or(TransitionError::NoSuchCluster(id))?;
    if !allowed(from, to) {
        return Err(TransitionError::Refused {
            cluster: id,
            from,
            to,
        }
        .into());
    }
    match reason {
        Reason::Keep => conn
            .prepare_cached("UPDATE clusters SET status = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id, to, now])?,
        Reason::Clear => conn
            .prepare_cached(
                "UPDATE clusters SET status = ?2, status_reason = NULL, updated_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, to, now])?,
        Reason::Set(why) => conn
            .prepare_cached(
                "UPDATE clusters SET status = ?2, status_reason = ?4, updated_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, to, now, why])?,
    };
    Ok(from)
}

/// A cluster's row as a matcher proposes it, before it has members.
#[derive(Debug, Clone, Copy)]
pub struct NewCluster<'a> {
    pub object: crate::domain::model::ObjectType,
    /// SHA-256 of its sorted member ids.
    pub fingerprint: &'a str,
    /// Which matcher found it (`dupdesk`, `external:<format>`).
    pub matcher: &'a str,
    pub score: f64,
    pub weakest: f64,
    pub size: usize,
    pub label: &'a str,
    pub flags: &'a str,
}

/// Make the row of a new cluster, in [`ClusterStatus::FIRST`]; returns its id. Runs in the
/// caller's transaction, which writes its members with it.
pub fn create(conn: &Connection, c: &NewCluster<'_>, now: &str) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size,
                               label, status, flags, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id",
    )?
    .query_row(
        params![
            c.object.as_str(),
            c.fingerprint,
            c.matcher,
            c.score,
            c.weakest,
            c.size as i64,
            c.label,
            ClusterStatus::FIRST,
            c.flags,
            now
        ],
        |r| r.get(0),
    )
    .with_context(|| format!("inserting cluster {}", c.label))
}

/// What a row of the decision log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Approve,
    Reject,
    Defer,
    Note,
    /// New field choices for a merge job whose merges ran and whose field update failed.
    Amend,
    /// Takes back the decision the row's `undoes` names.
    Undo,
}

stored_enum!(Action, "decision action", [
    Approve => "approve",
    Reject => "reject",
    Defer => "defer",
    Note => "note",
    Amend => "amend",
    Undo => "undo",
]);

impl Action {
    /// The cluster status the decision leaves behind while it stands; a note or an undo sets
    /// none of its own.
    pub fn status(self) -> Option<ClusterStatus> {
        match self {
            Action::Approve => Some(ClusterStatus::Approved),
            Action::Reject => Some(ClusterStatus::Rejected),
            Action::Defer => Some(ClusterStatus::Deferred),
            Action::Amend => Some(ClusterStatus::Merging),
            Action::Note | Action::Undo => None,
        }
    }
}

/// A row of a cluster's decision log, as [`standing`] reads it.
pub trait Logged {
    fn id(&self) -> i64;
    fn action(&self) -> Action;
    /// The decision this row undoes (undo rows only).
    fn undoes(&self) -> Option<i64>;
}

/// The standing decision among a cluster's decisions (oldest first): the newest one that sets
/// a status (approve, reject, defer, amend) and that no undo names. An amend stands on the
/// approval it amends. The one rule for it: the review draft, the undo and the executor's
/// planning all ask here.
pub fn standing<D: Logged>(log: &[D]) -> Option<&D> {
    log.iter()
        .rev()
        .find(|d| d.action().status().is_some() && !log.iter().any(|u| u.undoes() == Some(d.id())))
}

/// A merge job's state, as `merge_jobs.status` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Merged,
    Failed,
    Paused,
    /// Refused by the checks before its first merge; a new approval makes a new job.
    Cancelled,
}

stored_enum!(JobStatus, "merge job status", [
    Pending => "pending",
    Running => "running",
    Merged => "merged",
    Failed => "failed",
    Paused => "paused",
    Cancelled => "cancelled",
]);

/// What a merge step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Snapshot,
    Merge,
    Update,
    Mapping,
}

stored_enum!(StepKind, "merge step kind", [
    Snapshot => "snapshot",
    Merge => "merge",
    Update => "update",
    Mapping => "mapping",
]);

/// A merge step's state, as `merge_steps.state` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Sent,
    Done,
    Failed,
}

stored_enum!(StepState, "merge step state", [
    Pending => "pending",
    Sent => "sent",
    Done => "done",
    Failed => "failed",
]);

#[cfg(test)]
mod tests {
    use super::*;
    use ClusterStatus::*;

    /// Every move the workflow makes, written out by who makes it, independently of
    /// [`allowed`]'s grouping.
    fn expected() -> Vec<(ClusterStatus, ClusterStatus)> {
        let mut moves = Vec::new();
        let steward_can_decide = [Pending, Approved, Rejected, Deferred, Stale, NeedsAttention];
        for from in steward_can_decide {
            for to in [Approved, Rejected, Deferred] {
                moves.push((from, to)); // approve, reject, defer
            }
            moves.push((from, Stale)); // the matcher: members changed, dissolved, archived
        }
        for from in [Approved, Rejected, Deferred] {
            moves.push((from, Pending)); // undo with nothing standing before
        }
        moves.push((Pending, Pending)); // the matcher rewrites a pending cluster
        moves.push((NeedsAttention, Pending)); // taken over by a new grouping
        moves.push((NeedsAttention, NeedsAttention)); // rewritten in place
        moves.push((Approved, Merging)); // the executor plans the job
        moves.push((Failed, Merging)); // amend, retry
        moves.push((Merging, Merging)); // retry of a paused job
        for to in [Merged, Failed, Stale, NeedsAttention] {
            moves.push((Merging, to)); // the job ends or is sent back
        }
        moves
    }

    #[test]
    fn every_transition_is_allowed_or_refused_as_the_workflow_says() {
        let expected = expected();
        let mut allowed_count = 0;
        for from in ClusterStatus::ALL {
            for to in ClusterStatus::ALL {
                let want = expected.contains(&(from, to));
                assert_eq!(allowed(from, to), want, "{from} -> {to}");
                allowed_count += usize::from(want);
            }
        }
        assert_eq!(allowed_count, 37);
        // Nothing leaves merged.
        assert!(ClusterStatus::ALL.iter().all(|to| !allowed(Merged, *to)));
    }

    fn workspace() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::open_connection(&dir.path().join("ws.db")).unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO clusters (id, object_type, fingerprint, matcher, score, weakest, size,
                                   created_at, updated_at)
             VALUES (1, 'contacts', 'f', 'test', 0.9, 0.9, 2, 't', 't')",
            [],
        )
        .unwrap();
        (dir, conn)
    }

    fn force(conn: &Connection, s: ClusterStatus) {
        conn.execute(
            "UPDATE clusters SET status = ?1, status_reason = 'why' WHERE id = 1",
            [s],
        )
        .unwrap();
    }

    #[test]
    fn set_status_walks_every_transition_against_a_real_file() {
        let (_dir, conn) = workspace();
        for from in ClusterStatus::ALL {
            for to in ClusterStatus::ALL {
                force(&conn, from);
                let result = set_status(&conn, 1, to, Reason::Keep, "now");
                let (now, reason): (ClusterStatus, Option<String>) = conn
                    .query_row(
                        "SELECT status, status_reason FROM clusters WHERE id = 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                if allowed(from, to) {
                    assert_eq!(result.unwrap(), from, "{from} -> {to}");
                    assert_eq!(now, to);
                    assert_eq!(reason.as_deref(), Some("why"), "Keep keeps the reason");
                } else {
                    let e = result.unwrap_err();
                    assert_eq!(
                        e.downcast_ref::<TransitionError>(),
                        Some(&TransitionError::Refused {
                            cluster: 1,
                            from,
                            to
                        }),
                        "{from} -> {to}"
                    );
                    assert_eq!(
                        e.to_string(),
                        format!("cluster 1 cannot go from {from} to {to}")
                    );
                    assert_eq!(now, from, "a refused move writes nothing");
                }
            }
        }
        force(&conn, Pending);
        set_status(&conn, 1, Approved, Reason::Clear, "now").unwrap();
        let reason: Option<String> = conn
            .query_row("SELECT status_reason FROM clusters WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(reason, None);
        set_status(&conn, 1, Merging, Reason::Keep, "now").unwrap();
        set_status(&conn, 1, NeedsAttention, Reason::Set("read-only"), "now").unwrap();
        let reason: Option<String> = conn
            .query_row("SELECT status_reason FROM clusters WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(reason.as_deref(), Some("read-only"));
        let e = set_status(&conn, 2, Pending, Reason::Keep, "now").unwrap_err();
        assert_eq!(e.to_string(), "cluster 2 does not exist");
    }

    #[test]
    fn stored_enums_read_back_and_name_an_unknown_value() {
        let (_dir, conn) = workspace();
        for s in ClusterStatus::ALL {
            force(&conn, s);
            assert_eq!(status(&conn, 1).unwrap(), Some(s));
        }
        conn.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
        conn.execute("INSERT INTO t VALUES ('exploded')", [])
            .unwrap();
        let e = conn
            .query_row("SELECT v FROM t", [], |r| r.get::<_, JobStatus>(0))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown merge job status \"exploded\""),
            "{e}"
        );
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        assert_eq!(
            " Needs-Attention".parse::<ClusterStatus>().unwrap(),
            NeedsAttention
        );
        assert_eq!(
            "exploded".parse::<ClusterStatus>().unwrap_err().to_string(),
            "unknown cluster status \"exploded\""
        );
    }

    struct Row(i64, Action, Option<i64>);
    impl Logged for Row {
        fn id(&self) -> i64 {
            self.0
        }
        fn action(&self) -> Action {
            self.1
        }
        fn undoes(&self) -> Option<i64> {
            self.2
        }
    }

    #[test]
    fn the_standing_decision_is_the_newest_status_setting_one_not_undone() {
        use Action::*;
        let log = [
            Row(1, Approve, None),
            Row(2, Defer, None),
            Row(3, Note, None),
            Row(4, Undo, Some(2)),
        ];
        assert_eq!(standing(&log).map(|d| d.0), Some(1));
        let log = [Row(1, Approve, None), Row(2, Undo, Some(1))];
        assert!(standing(&log).is_none());
        let log = [
            Row(1, Approve, None),
            Row(2, Amend, None),
            Row(3, Note, None),
        ];
        assert_eq!(standing(&log).map(|d| d.0), Some(2));
        assert!(standing::<Row>(&[]).is_none());
    }
}
