//! The review's background work: each effect that touches the workspace (a page, a cluster, a
//! decision, the merges, a lineage) runs as a tokio task that calls the store and answers with
//! exactly one [`Msg`], so the UI never waits on SQLite. A task that panics answers too, as
//! [`Msg::Crashed`]. This module knows nothing of screens: it reads and writes what it is told.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;

use super::options::Options;
use super::screens::PageRequest;
use super::screens::cluster::ClusterScreen;
use super::screens::queue::{Counts, PageAnswer};
use crate::domain::model::{ObjectType, PropertyCatalog};
use crate::ops::approve::BulkDecided;
use crate::ops::review::ReviewContext;
use crate::store::Store;
use crate::store::decisions::{self, Decision, NewDecision, Undone, Verdict};
use crate::store::properties;
use crate::store::queue::{self, MergeRow, QueueQuery};

/// The most clusters one bulk decision takes: a selection larger than this is a filter to
/// narrow, not a review.
const BULK_LIMIT: u64 = 10_000;

/// What the background task (pull, match, merge) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pulling,
    Matching,
    Merging,
    /// The task finished; the queue is reloaded.
    Done,
    Failed,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Pulling => "pulling",
            Stage::Matching => "matching",
            Stage::Merging => "merging",
            Stage::Done => "done",
            Stage::Failed => "failed",
        }
    }
}

/// Answers from background work. A handful arrive per key press, so their size does not
/// matter and they are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Msg {
    Progress(Progress),
    Done(Outcome),
    /// A background task panicked. The panic hook has already restored the terminal, so the
    /// review ends with this as its error.
    Crashed(String),
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    Page(PageAnswer),
    Cluster(Result<Option<Box<ClusterScreen>>>),
    Decided {
        index: Option<u64>,
        advance: bool,
        result: Result<(Decision, Counts)>,
    },
    Undone(Result<(Option<Undone>, Counts)>),
    Merges(Result<Vec<MergeRow>>),
    Retried(i64, Result<bool>),
    /// The lineage of a record, as text for the overlay.
    Lineage(String, Result<String>),
    /// What running the approved merges would do, for the question before `A` runs them.
    ApplyPreview(Result<crate::ops::executor::ApplyPreview>),
    /// The clusters a bulk decision would decide, for the question before it.
    BulkPreview(Verdict, Result<Vec<i64>>),
    /// A bulk decision was written (or what stopped it).
    BulkDecided(Verdict, Result<(BulkDecided, Counts)>),
}

/// The receiving end of the app's background answers.
pub struct Inbox(mpsc::UnboundedReceiver<Msg>);

impl Inbox {
    pub async fn recv(&mut self) -> Option<Msg> {
        self.0.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Msg> {
        self.0.try_recv().ok()
    }

    /// Feed answers to `app` until no background work is left. For tests and benchmarks.
    pub async fn settle(&mut self, app: &mut super::App) {
        while app.busy() {
            match self.0.recv().await {
                Some(msg) => app.on_message(msg),
                None => break,
            }
        }
    }
}

/// Spawns the work and counts what is still out.
pub struct Tasks {
    store: Store,
    opts: Arc<Options>,
    tx: mpsc::UnboundedSender<Msg>,
    in_flight: usize,
    /// What drafts of each object type are built with (the CRM's property definitions read
    /// once, not per cluster); dropped when a background task may have refreshed them.
    contexts: BTreeMap<ObjectType, Arc<ReviewContext>>,
}

impl Tasks {
    pub fn new(store: Store, opts: Arc<Options>) -> (Tasks, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = Tasks {
            store,
            opts,
            tx,
            in_flight: 0,
            contexts: BTreeMap::new(),
        };
        (tasks, Inbox(rx))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A task answered.
    pub fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The CRM's property definitions may have changed (a pull or an apply ran).
    pub fn forget_contexts(&mut self) {
        self.contexts.clear();
    }

    /// Keep the context a cluster was opened with, for the next cluster of its type.
    pub fn remember(&mut self, cluster: &ClusterScreen) {
        self.contexts
            .insert(cluster.draft.object_type(), cluster.draft.context().clone());
    }

    fn spawn<F>(&mut self, work: F)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        self.in_flight += 1;
        let tx = self.tx.clone();
        let task = tokio::spawn(work);
        tokio::spawn(async move {
            let msg = match task.await {
                Ok(outcome) => Msg::Done(outcome),
                Err(e) => Msg::Crashed(e.to_string()),
            };
            let _ = tx.send(msg);
        });
    }

    pub fn load_page(&mut self, req: PageRequest) {
        let store = self.store.clone();
        self.spawn(async move {
            let query = req.query;
            let page = store.call(move |c| queue::page(c, &query)).await;
            Outcome::Page(PageAnswer {
                generation: req.generation,
                page,
                open_index: req.open_index,
                select_id: req.select_id,
            })
        });
    }

    pub fn load_cluster(&mut self, id: i64, index: Option<u64>) {
        let store = self.store.clone();
        let opts = self.opts.clone();
        let contexts = self.contexts.clone();
        self.spawn(async move {
            let cluster = store
                .call(move |c| {
                    let Some(d) = queue::cluster(c, id)? else {
                        return Ok(None);
                    };
                    let object = d.row.object_type;
                    let ctx = match contexts.get(&object) {
                        Some(ctx) => ctx.clone(),
                        None => {
                            Arc::new(review_context(&opts, object, properties::load(c, object)?))
                        }
                    };
                    Ok(Some(Box::new(ClusterScreen::new(d, ctx, index))))
                })
                .await;
            Outcome::Cluster(cluster)
        });
    }

    pub fn decide(&mut self, new: NewDecision, index: Option<u64>, advance: bool) {
        let store = self.store.clone();
        self.spawn(async move {
            let result = store
                .call_waiting(move |c| {
                    let d = decisions::record(c, &new)?;
                    Ok((d, queue::status_counts(c)?))
                })
                .await;
            Outcome::Decided {
                index,
                advance,
                result,
            }
        });
    }

    pub fn undo(&mut self) {
        let store = self.store.clone();
        let opts = self.opts.clone();
        self.spawn(async move {
            let result = store
                .call_waiting(move |c| {
                    let u = decisions::undo_last(c, &opts.steward)?;
                    Ok((u, queue::status_counts(c)?))
                })
                .await;
            Outcome::Undone(result)
        });
    }

    pub fn load_merges(&mut self) {
        let store = self.store.clone();
        self.spawn(async move { Outcome::Merges(store.call(|c| queue::merges(c, 500)).await) });
    }

    pub fn retry(&mut self, job: i64) {
        let store = self.store.clone();
        self.spawn(async move {
            let retried = store
                .call(move |c| Ok(crate::store::journal::retry_failed(c, Some(job))? > 0))
                .await;
            Outcome::Retried(job, retried)
        });
    }

    pub fn lineage(&mut self, id: String, object: ObjectType) {
        let store = self.store.clone();
        let opts = self.opts.clone();
        self.spawn(async move {
            let asked = id.clone();
            let text = store
                .call(move |c| {
                    Ok(
                        crate::ops::lineage::lineage(c, Some(object), &asked, &opts.sources)?
                            .render_text(),
                    )
                })
                .await;
            Outcome::Lineage(id, text)
        });
    }

    /// The clusters `query` shows, all of them (up to a bound no steward reviews by hand).
    pub fn preview_bulk(&mut self, verdict: Verdict, query: QueueQuery) {
        let store = self.store.clone();
        self.spawn(async move {
            let ids = store.call(move |c| queue::ids(c, &query, BULK_LIMIT)).await;
            Outcome::BulkPreview(verdict, ids)
        });
    }

    /// Reject or defer `ids`, each through its review draft (`ops::approve::decide_each`).
    pub fn decide_bulk(&mut self, verdict: Verdict, ids: Vec<i64>) {
        let store = self.store.clone();
        let opts = self.opts.clone();
        let contexts = self.contexts.clone();
        self.spawn(async move {
            let result = store
                .call_waiting(move |c| {
                    let mut contexts = contexts.clone();
                    let mut context = |c: &rusqlite::Connection, object: ObjectType| {
                        if let Some(ctx) = contexts.get(&object) {
                            return Ok(ctx.clone());
                        }
                        let ctx =
                            Arc::new(review_context(&opts, object, properties::load(c, object)?));
                        contexts.insert(object, ctx.clone());
                        Ok(ctx)
                    };
                    let note = format!("bulk {verdict} of the filtered queue");
                    let done = crate::ops::approve::decide_each(
                        c,
                        &ids,
                        verdict,
                        &opts.steward,
                        &note,
                        &mut context,
                    )?;
                    Ok((done, queue::status_counts(c)?))
                })
                .await;
            Outcome::BulkDecided(verdict, result)
        });
    }

    pub fn preview_merges(&mut self) {
        let store = self.store.clone();
        self.spawn(async move {
            Outcome::ApplyPreview(crate::ops::executor::preview(&store, None).await)
        });
    }
}

/// What a review draft of `object` needs from the options and the workspace.
fn review_context(opts: &Options, object: ObjectType, catalog: PropertyCatalog) -> ReviewContext {
    ReviewContext {
        rules: opts.rules.clone(),
        sources: opts.sources.clone(),
        configured: opts.properties.get(&object).cloned().unwrap_or_default(),
        catalog,
        mapping: Some(opts.mapping.clone()),
    }
}
