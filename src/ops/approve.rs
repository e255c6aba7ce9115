//! Bulk approval by rule: the pending clusters a steward need not open one by one because every
//! link in them is strong. Each is recorded as an ordinary decision by the steward `auto`, with
//! the precedence engine's primary and field choices and the rule in its note, so the decision
//! log, undo and the executor treat it like any other approval. It decides nothing a steward
//! could not see: the rule is on the weakest link, not the best one.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use rusqlite::Connection;
use serde::Serialize;

use crate::config::Config;
use crate::domain::model::ObjectType;
use crate::domain::precedence::Rules;
use crate::ops::review::{ReviewContext, ReviewDraft};
use crate::store::Store;
use crate::store::decisions;
use crate::store::{properties, queue};

/// The steward name bulk approvals are recorded under.
pub const AUTO_STEWARD: &str = "auto";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Every link in the cluster (its weakest) at or above this match probability.
    pub min_score: f64,
    /// At most this many records.
    pub max_size: Option<usize>,
}

impl Rule {
    pub fn describe(&self) -> String {
        match self.max_size {
            Some(k) => format!("weakest link >= {}, size <= {k}", self.min_score),
            None => format!("weakest link >= {}", self.min_score),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approved {
    pub cluster_id: i64,
    pub size: u32,
    pub weakest: f64,
    pub label: String,
    pub primary: String,
    /// The decision written; `None` in a dry run or when the draft was refused.
    pub decision_id: Option<i64>,
    /// Why the review draft refused to approve it (a value the CRM would refuse, ...): left
    /// pending for a steward.
    pub refused: Option<String>,
}

/// The pending clusters that meet the rule, best first.
pub fn candidates(conn: &Connection, rule: Rule) -> Result<Vec<(i64, u32, f64, String)>> {
    crate::store::queue::pending_at_least(conn, rule.min_score, rule.max_size)
}

/// Approve every pending cluster that meets `rule` (or, with `dry_run`, say which would be).
/// Each approval is built by the review draft exactly as a steward's would be (primary and
/// values by the precedence rules, checked against the CRM's property definitions) and is its
/// own transaction, so an interrupted run keeps what it wrote.
pub fn approve(
    store: &Store,
    config: &Config,
    rules: &Rules,
    rule: Rule,
    dry_run: bool,
) -> Result<Vec<Approved>> {
    let found = store.call_blocking(move |c| candidates(c, rule))?;
    let rules = Arc::new(rules.clone());
    let mut contexts: BTreeMap<ObjectType, Arc<ReviewContext>> = BTreeMap::new();
    let mut out = Vec::new();
    for (cluster_id, size, weakest, label) in found {
        let Some(detail) = store.call_blocking(move |c| queue::cluster(c, cluster_id))? else {
            continue;
        };
        let object = detail.row.object_type;
        let ctx = match contexts.get(&object) {
            Some(ctx) => ctx.clone(),
            None => {
                let catalog = store.call_blocking(move |c| properties::load(c, object))?;
                let ctx = Arc::new(ReviewContext::for_config(
                    config,
                    rules.clone(),
                    object,
                    catalog,
                ));
                contexts.insert(object, ctx.clone());
                ctx
            }
        };
        let draft = ReviewDraft::new(ctx, &detail);
        let primary = draft.primary().to_string();
        let note = format!(
            "auto-approved by rule: {}; primary: {}",
            rule.describe(),
            draft.primary_reason()
        );
        let (decision_id, refused) = match draft.approve(AUTO_STEWARD, &note) {
            Err(e) => (None, Some(e.to_string())),
            Ok(_) if dry_run => (None, None),
            Ok(new) => {
                let stored = store.call_blocking(move |c| decisions::record(c, &new))?;
                (Some(stored.id), None)
            }
        };
        out.push(Approved {
            cluster_id,
            size,
            weakest,
            label,
            primary,
            decision_id,
            refused,
        });
    }
    Ok(out)
}

/// What a bulk reject or defer did: the clusters decided, and those the review draft or the
/// store refused (no longer open, merged meanwhile, ...) with why.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BulkDecided {
    pub decided: Vec<i64>,
    pub refused: Vec<(i64, String)>,
}

/// Reject or defer each of `ids` as `steward`, each through its review draft (which refuses a
/// cluster whose membership changed or that is no longer under review) and as its own
/// decision, so the decision log and undo treat them like any other. `context` gives the
/// review context of an object type (the caller caches them).
pub fn decide_each(
    conn: &mut Connection,
    ids: &[i64],
    verdict: decisions::Verdict,
    steward: &str,
    note: &str,
    context: &mut dyn FnMut(&Connection, ObjectType) -> Result<Arc<ReviewContext>>,
) -> Result<BulkDecided> {
    anyhow::ensure!(
        matches!(
            verdict,
            decisions::Verdict::Reject | decisions::Verdict::Defer
        ),
        "a bulk decision rejects or defers; approvals go through `approve`"
    );
    let mut out = BulkDecided::default();
    for &id in ids {
        let Some(detail) = queue::cluster(conn, id)? else {
            out.refused.push((id, "the cluster is gone".into()));
            continue;
        };
        let ctx = context(conn, detail.row.object_type)?;
        let draft = ReviewDraft::new(ctx, &detail);
        let new = match draft.decide(verdict, steward, note) {
            Ok(new) => new,
            Err(e) => {
                out.refused.push((id, e.to_string()));
                continue;
            }
        };
        match decisions::record(conn, &new) {
            Ok(_) => out.decided.push(id),
            Err(e) => match e.downcast_ref::<decisions::DecisionError>() {
                // The cluster moved on (merged, say): the others still count.
                Some(refusal) => out.refused.push((id, refusal.to_string())),
                None => return Err(e),
            },
        }
    }
    Ok(out)
}
