//! The executor's shared batches: the reads (snapshots, and the re-read of an update whose
//! answer was lost) and the field updates of every job running at once go to the CRM together,
//! in one batch read of up to 50 ids with history (100 without) and one `batch/update` of up to
//! 100 inputs. Only the merges, one call each, are unavoidable; with the batches, a pair costs
//! little more than its merge. The batcher sends what it is given and hands each job its own
//! part of the answer: the job journals its step before it hands the request over and after it
//! has its answer, exactly as with a call of its own, and runs its own checks on what it got.
//! It must not decide anything about a job.
//!
//! # Filling the batches
//!
//! One call per kind (reads, updates) is in flight at a time. A request that finds none waits a
//! moment ([`LINGER`]) for the jobs started with it and goes; requests that come while a call
//! waits for the rate limiter or the CRM go together in the next. Under load the calls wait
//! behind the merges in the limiter's queue, so the batches fill by themselves; alone, a job
//! waits [`LINGER`] more than it would.
//!
//! # One refusal spoils nothing
//!
//! HubSpot refuses a whole `batch/update` when one input is invalid (400 VALIDATION_ERROR,
//! naming the property but not the record; 409 CONFLICT for another contact's email), and
//! does not name the input. A refused batch of several inputs is split in halves and each half
//! sent again, until the refused input is alone: its job gets the CRM's own message, the
//! others are updated (about 2·log2(n) more calls for one bad input in n). A refused batch read
//! is sent again job by job. An error that says nothing about the inputs (a rate limit, no
//! answer, a bad token) stands for every job of the call. An id never goes twice into one
//! update (HubSpot refuses the batch: "Duplicate IDs found in batch input").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::crm::{BatchRead, Connector, CrmError, ReadOutcome};
use crate::model::{ObjectType, Record};

/// How long the first request of an idle lane waits for companions.
pub const LINGER: Duration = Duration::from_millis(5);
/// HubSpot's largest batch read with property history, and without.
pub const READ_BATCH_WITH_HISTORY: usize = 50;
pub const READ_BATCH: usize = 100;
/// HubSpot's largest batch update.
pub const UPDATE_BATCH: usize = 100;

struct ReadWant {
    object: ObjectType,
    ids: Vec<String>,
    properties: Vec<String>,
    history: Vec<String>,
    reply: oneshot::Sender<Result<BatchRead, CrmError>>,
}

struct UpdateWant {
    object: ObjectType,
    id: String,
    properties: BTreeMap<String, String>,
    reply: oneshot::Sender<Result<Record, CrmError>>,
}

struct Lane<T> {
    queue: Vec<T>,
    /// A task sends this lane's queue; a new request only joins it.
    flushing: bool,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            queue: Vec::new(),
            flushing: false,
        }
    }
}

/// The shared batches of one executor run. Share it with `Arc`.
pub struct Batcher {
    crm: Arc<dyn Connector>,
    reads: Mutex<Lane<ReadWant>>,
    updates: Mutex<Lane<UpdateWant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn gone() -> CrmError {
    CrmError::Transient {
        status: None,
        message: "the batch carrying this request stopped before it answered".to_string(),
    }
}

impl Batcher {
    pub fn new(crm: Arc<dyn Connector>) -> Arc<Batcher> {
        Arc::new(Batcher {
            crm,
            reads: Mutex::new(Lane::default()),
            updates: Mutex::new(Lane::default()),
        })
    }

    /// Read `ids` (with the history of `history`) in the next batch read. The answer holds
    /// exactly this request's ids: those found as themselves, the records that ids merged away
    /// now belong to, and the missing ones.
    pub async fn read(
        self: &Arc<Self>,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        history: &[String],
    ) -> Result<BatchRead, CrmError> {
        let (tx, rx) = oneshot::channel();
        let want = ReadWant {
            object,
            ids: ids.to_vec(),
            properties: properties.to_vec(),
            history: history.to_vec(),
            reply: tx,
        };
        let start = {
            let mut lane = lock(&self.reads);
            lane.queue.push(want);
            !std::mem::replace(&mut lane.flushing, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.flush_reads().await });
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Set `properties` on `id` in the next batch update; the record as the CRM answered.
    pub async fn update(
        self: &Arc<Self>,
        object: ObjectType,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Record, CrmError> {
        let (tx, rx) = oneshot::channel();
        let want = UpdateWant {
            object,
            id: id.to_string(),
            properties: properties.clone(),
            reply: tx,
        };
        let start = {
            let mut lane = lock(&self.updates);
            lane.queue.push(want);
            !std::mem::replace(&mut lane.flushing, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.flush_updates().await });
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    async fn flush_reads(self: Arc<Self>) {
        tokio::time::sleep(LINGER).await;
        loop {
            let batch = {
                let mut lane = lock(&self.reads);
                let batch = take_reads(&mut lane.queue);
                if batch.is_empty() {
                    lane.flushing = false;
                    return;
                }
                batch
            };
            self.send_reads(batch).await;
        }
    }

    async fn flush_updates(self: Arc<Self>) {
        tokio::time::sleep(LINGER).await;
        loop {
            let batch = {
                let mut lane = lock(&self.updates);
                let batch = take_updates(&mut lane.queue);
                if batch.is_empty() {
                    lane.flushing = false;
                    return;
                }
                batch
            };
            self.send_updates(batch).await;
        }
    }

    /// Send one batch read for `batch` (requests of one object type, of at most one batch's
    /// ids); a refusal is tried again request by request.
    async fn send_reads(&self, batch: Vec<ReadWant>) {
        let mut work = vec![batch];
        while let Some(batch) = work.pop() {
            let Some(first) = batch.first() else {
                continue;
            };
            let object = first.object;
            let mut ids: Vec<String> = Vec::new();
            let mut properties: Vec<String> = Vec::new();
            let mut history: Vec<String> = Vec::new();
            for w in &batch {
                push_new(&mut ids, &w.ids);
                push_new(&mut properties, &w.properties);
                push_new(&mut history, &w.history);
            }
            let answer = self
                .crm
                .batch_read(object, &ids, &properties, &history)
                .await;
            let read = match answer {
                Ok(read) => read,
                Err(e) if batch.len() > 1 && refuses_inputs(&e) => {
                    work.extend(batch.into_iter().map(|w| vec![w]));
                    continue;
                }
                Err(e) => {
                    for w in batch {
                        let _ = w.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            };
            let mut by_id: BTreeMap<String, Record> = BTreeMap::new();
            for r in read.found {
                by_id.insert(r.id.clone(), r);
            }
            let missing: BTreeSet<String> = read.missing.into_iter().collect();
            // An id that came back neither as itself nor missing was merged away; which record
            // it went to a batch answer does not say, one read of it does.
            let mut moved: BTreeMap<String, Result<Option<Record>, CrmError>> = BTreeMap::new();
            for id in &ids {
                if !by_id.contains_key(id) && !missing.contains(id) {
                    let outcome = match self.crm.read(object, id, &properties).await {
                        Ok(ReadOutcome::Live(r) | ReadOutcome::MergedInto(r)) => Ok(Some(r)),
                        Ok(ReadOutcome::Missing) => Ok(None),
                        Err(e) => Err(e),
                    };
                    moved.insert(id.clone(), outcome);
                }
            }
            for w in batch {
                let mut part = BatchRead::default();
                let mut failed = None;
                for id in &w.ids {
                    if let Some(r) = by_id.get(id) {
                        part.found.push(r.clone());
                    } else if missing.contains(id) {
                        part.missing.push(id.clone());
                    } else {
                        match moved.get(id) {
                            Some(Ok(Some(r))) => part.found.push(r.clone()),
                            Some(Ok(None)) | None => part.missing.push(id.clone()),
                            Some(Err(e)) => failed = Some(e.clone()),
                        }
                    }
                }
                let _ = w.reply.send(match failed {
                    Some(e) => Err(e),
                    None => Ok(part),
                });
            }
        }
    }

    /// Send one batch update for `batch` (distinct ids of one object type, at most
    /// [`UPDATE_BATCH`]); a refusal is split in halves until the refused input is alone.
    async fn send_updates(&self, batch: Vec<UpdateWant>) {
        let mut work = vec![batch];
        while let Some(batch) = work.pop() {
            let Some(first) = batch.first() else {
                continue;
            };
            let object = first.object;
            let inputs: Vec<(String, BTreeMap<String, String>)> = batch
                .iter()
                .map(|w| (w.id.clone(), w.properties.clone()))
                .collect();
            let answer = self.crm.batch_update(object, &inputs).await;
            let updated = match answer {
                Ok(u) => u,
                Err(e) if batch.len() > 1 && refuses_inputs(&e) => {
                    tracing::info!(
                        inputs = batch.len(),
                        error = %e,
                        "batch update refused; sending it again in halves to find the refused input"
                    );
                    let mut batch = batch;
                    let second = batch.split_off(batch.len() / 2);
                    work.push(second);
                    work.push(batch);
                    continue;
                }
                Err(e) => {
                    for w in batch {
                        let _ = w.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            };
            let mut by_id: BTreeMap<String, Record> = BTreeMap::new();
            for r in updated.updated {
                by_id.insert(r.id.clone(), r);
            }
            for w in batch {
                let answer = match by_id.remove(&w.id) {
                    Some(r) => Ok(r),
                    None if updated.missing.contains(&w.id) => Err(CrmError::NotFound {
                        message: format!("batch update: record {} does not exist", w.id),
                    }),
                    None => Err(CrmError::Other {
                        status: 200,
                        message: format!(
                            "batch update: the CRM's answer holds no record {} (merged into another since?)",
                            w.id
                        ),
                    }),
                };
                let _ = w.reply.send(answer);
            }
        }
    }
}

/// Whether the CRM refused the request for what it carried (so another grouping may pass),
/// not for how or when it was sent.
fn refuses_inputs(e: &CrmError) -> bool {
    matches!(
        e,
        CrmError::Validation { .. } | CrmError::NotFound { .. } | CrmError::Other { .. }
    )
}

fn push_new(into: &mut Vec<String>, from: &[String]) {
    for s in from {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
}

/// The next batch read: the oldest request and those after it of the same object type and
/// kind (with history or without) that fit in one call, in order.
fn take_reads(queue: &mut Vec<ReadWant>) -> Vec<ReadWant> {
    let Some(first) = queue.first() else {
        return Vec::new();
    };
    let (object, with_history) = (first.object, !first.history.is_empty());
    let cap = if with_history {
        READ_BATCH_WITH_HISTORY
    } else {
        READ_BATCH
    };
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut taken = Vec::new();
    let mut rest = Vec::new();
    for w in queue.drain(..) {
        let fits = w.object == object
            && w.history.is_empty() != with_history
            && (taken.is_empty() || {
                let new = w.ids.iter().filter(|i| !ids.contains(*i)).count();
                ids.len() + new <= cap
            });
        if fits {
            ids.extend(w.ids.iter().cloned());
            taken.push(w);
        } else {
            rest.push(w);
        }
    }
    *queue = rest;
    taken
}

/// The next batch update: the oldest request and those after it of the same object type, up
/// to [`UPDATE_BATCH`], each id once (a second request for an id waits for the next call).
fn take_updates(queue: &mut Vec<UpdateWant>) -> Vec<UpdateWant> {
    let Some(first) = queue.first() else {
        return Vec::new();
    };
    let object = first.object;
    let mut ids = BTreeSet::new();
    let mut taken = Vec::new();
    let mut rest = Vec::new();
    for w in queue.drain(..) {
        if w.object == object && taken.len() < UPDATE_BATCH && !ids.contains(&w.id) {
            ids.insert(w.id.clone());
            taken.push(w);
        } else {
            rest.push(w);
        }
    }
    *queue = rest;
    taken
}
