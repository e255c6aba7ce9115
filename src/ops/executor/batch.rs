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
//! A call's contents are chosen only once it may go: it waits for its turn in the connector's
//! rate limiter ([`crate::crm::ratelimit::Turn`]), in the same queue as the merges, and only
//! then takes what queued meanwhile, up to one batch. Under load the turn comes after the
//! merges queued before it, so the batch holds every job that got there in that time. When
//! the limiter has room, the turn would come at once and the call would carry the one or two
//! requests that happen to be there (jobs start one after the other; HubSpot's rolling window
//! frees its requests again in the pattern they were spent in), so a call that is not full
//! first waits while more keep coming ([`QUIET_REQUESTS`], [`GATHER_REQUESTS`]): up to the
//! budget's time for a few requests, never more than the request it saves is worth. Measured
//! with `cargo bench --bench apply`: both are needed; without either, 100 pairs cost 20 to 25
//! calls besides their merges instead of 9 (`tests/executor_batch_fill.rs`).
//!
//! The field updates come after a job's merges, and nothing waits for them but the job's own
//! end. While the budget is spent, an update call does not take its place in the limiter's
//! queue at once (it would come up behind the merges queued before it and carry what finished
//! meanwhile, a third of the running jobs or so): it waits for a full batch, for room in the
//! budget, or for one interval of the limiter, whichever comes first. The reads, which the
//! merges wait for, queue at once.
//!
//! One call per kind (reads, updates) waits for its turn at a time, and another for each full
//! batch more that is queued; what is left over goes with the next call, which starts when the
//! waiting one takes its batch. A connector without a limiter to wait on gets one call per
//! kind at a time, its batch chosen when it starts; what comes meanwhile goes in the next.
//! Alone, a job waits a moment ([`LINGER`]) for the jobs started with it, and goes.
//!
//! Neither holding back nor gathering waits for requests that cannot come: once the executor
//! says no job will start any more ([`Batcher::last_jobs`]) and every job still running waits
//! for an answer of the batcher, a call goes at once (the last updates of a run would otherwise
//! wait up to a whole interval for nothing).
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
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::crm::ratelimit::RateLimiter;
use crate::crm::{BatchRead, Connector, CrmError, ReadOutcome};
use crate::domain::model::{ObjectType, Record};

/// How long the first request of an idle lane waits for companions.
pub const LINGER: Duration = Duration::from_millis(5);
/// While the rate limit leaves room, a call that is not full waits for more requests as long
/// as they keep coming: each within [`QUIET_REQUESTS`] times the budget's time for one
/// request (the limiter's interval over its limit: 100 ms at 100 per 10 s, never less than
/// [`LINGER`]) of the last, and [`GATHER_REQUESTS`] times it in all.
pub const QUIET_REQUESTS: u32 = 3;
pub const GATHER_REQUESTS: u32 = 10;
/// HubSpot's largest batch read with property history, and without.
pub const READ_BATCH_WITH_HISTORY: usize = 50;
pub const READ_BATCH: usize = 100;
/// HubSpot's largest batch update.
pub const UPDATE_BATCH: usize = 100;

/// A request's share of a full call is counted in parts of this (divisible by every batch
/// limit above).
const FULL_CALL: usize = 100;

/// A kind of request the batcher groups into calls: where it queues, how a call's batch is
/// taken from the queue, and how the call is sent and answered.
trait Want: Sized + Send + 'static {
    /// Whether these requests may wait for a fuller call while the budget is spent: true of
    /// the field updates, which come after a job's merges and hold back only the job's own
    /// end; false of the reads, which the merges wait for.
    const CAN_WAIT: bool;
    fn lane(batcher: &Batcher) -> &Mutex<Lane<Self>>;
    /// This request's share of one call, in parts of [`FULL_CALL`].
    fn share(&self) -> usize;
    /// The next call's batch: the oldest request and those after it that fit with it.
    fn take(queue: &mut Vec<Self>) -> Vec<Self>;
    /// Send `batch` and answer each of its requests.
    fn send(batcher: &Batcher, batch: Vec<Self>) -> impl Future<Output = ()> + Send + '_;
    /// Answer this request with `error`, which stands for its whole call.
    fn fail(self, error: &CrmError);
}

/// Answer every request of `batch` with `error`.
fn fail_all<W: Want>(batch: Vec<W>, error: &CrmError) {
    for w in batch {
        w.fail(error);
    }
}

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

impl Want for ReadWant {
    const CAN_WAIT: bool = false;

    fn lane(batcher: &Batcher) -> &Mutex<Lane<Self>> {
        &batcher.reads
    }

    fn share(&self) -> usize {
        let cap = if self.history.is_empty() {
            READ_BATCH
        } else {
            READ_BATCH_WITH_HISTORY
        };
        self.ids.len() * FULL_CALL / cap
    }

    fn take(queue: &mut Vec<Self>) -> Vec<Self> {
        take_reads(queue)
    }

    fn send(batcher: &Batcher, batch: Vec<Self>) -> impl Future<Output = ()> + Send + '_ {
        batcher.send_reads(batch)
    }

    fn fail(self, error: &CrmError) {
        let _ = self.reply.send(Err(error.clone()));
    }
}

impl Want for UpdateWant {
    const CAN_WAIT: bool = true;

    fn lane(batcher: &Batcher) -> &Mutex<Lane<Self>> {
        &batcher.updates
    }

    fn share(&self) -> usize {
        FULL_CALL / UPDATE_BATCH
    }

    fn take(queue: &mut Vec<Self>) -> Vec<Self> {
        take_updates(queue)
    }

    fn send(batcher: &Batcher, batch: Vec<Self>) -> impl Future<Output = ()> + Send + '_ {
        batcher.send_updates(batch)
    }

    fn fail(self, error: &CrmError) {
        let _ = self.reply.send(Err(error.clone()));
    }
}

/// The requests of one kind waiting for a call, and the calls waiting to carry them.
struct Lane<W> {
    queue: Vec<W>,
    /// Calls started that have not taken their batch yet.
    waiting: usize,
    /// When the newest request came.
    last: Instant,
}

impl<W: Want> Lane<W> {
    fn new() -> Lane<W> {
        Lane {
            queue: Vec::new(),
            waiting: 0,
            last: Instant::now(),
        }
    }

    /// The queue's requests, in parts of [`FULL_CALL`].
    fn shares(&self) -> usize {
        self.queue.iter().map(Want::share).sum()
    }

    /// Whether the queue needs one more call than those waiting: one for every full batch
    /// queued, and one for a queue that is not empty. A part of a batch left over does not
    /// start a call while another waits: it goes with the next, which starts when that one
    /// takes its batch, and fills while it waits for its own turn (a call started at once
    /// would come up right behind the first and carry the few requests left over).
    fn needs_a_call(&self) -> bool {
        let calls = (self.shares() / FULL_CALL).max(usize::from(!self.queue.is_empty()));
        self.waiting < calls
    }
}

/// The shared batches of one executor run. Share it with `Arc`.
pub struct Batcher {
    crm: Arc<dyn Connector>,
    limiter: Option<Arc<RateLimiter>>,
    /// The jobs that may still ask for something: those running, or `usize::MAX` while more
    /// may start (see [`Batcher::last_jobs`]).
    jobs: AtomicUsize,
    /// Requests asked for and not answered yet, over every lane.
    asking: AtomicUsize,
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
            limiter: crm.rate_limiter(),
            crm,
            jobs: AtomicUsize::new(usize::MAX),
            asking: AtomicUsize::new(0),
            reads: Mutex::new(Lane::new()),
            updates: Mutex::new(Lane::new()),
        })
    }

    /// No job starts any more (the queue is empty, or the run's limit reached): `running` jobs
    /// are all that may still ask for something; `None` when more may start again.
    pub fn last_jobs(&self, running: Option<usize>) {
        self.jobs
            .store(running.unwrap_or(usize::MAX), Ordering::SeqCst);
    }

    /// Whether every job that may still ask for something is waiting for an answer: nothing
    /// more can come to wait for.
    fn nobody_else(&self) -> bool {
        self.asking.load(Ordering::SeqCst) >= self.jobs.load(Ordering::SeqCst)
    }

    /// Wait for the answer to a request just queued, counted among those asked for until it
    /// comes or the wait is dropped.
    async fn answer<T>(&self, rx: oneshot::Receiver<Result<T, CrmError>>) -> Result<T, CrmError> {
        struct Asked<'a>(&'a AtomicUsize);
        impl Drop for Asked<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _asked = Asked(&self.asking);
        rx.await.unwrap_or_else(|_| Err(gone()))
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
        self.submit(ReadWant {
            object,
            ids: ids.to_vec(),
            properties: properties.to_vec(),
            history: history.to_vec(),
            reply: tx,
        });
        self.answer(rx).await
    }

    /// Set `properties` on `id` in the next batch update; the record as the CRM answered.
    pub async fn update(
        self: &Arc<Self>,
        object: ObjectType,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Record, CrmError> {
        let (tx, rx) = oneshot::channel();
        self.submit(UpdateWant {
            object,
            id: id.to_string(),
            properties: properties.clone(),
            reply: tx,
        });
        self.answer(rx).await
    }

    /// Queue `want`, and start a call for it unless one waiting will carry it.
    fn submit<W: Want>(self: &Arc<Self>, want: W) {
        self.asking.fetch_add(1, Ordering::SeqCst);
        let mut lane = lock(W::lane(self));
        lane.queue.push(want);
        lane.last = Instant::now();
        if lane.needs_a_call() {
            lane.waiting += 1;
            tokio::spawn(self.clone().call::<W>(LINGER));
        }
    }

    /// One call of kind `W`: its turn first, then its batch, then the CRM.
    async fn call<W: Want>(self: Arc<Self>, linger: Duration) {
        if !linger.is_zero() {
            tokio::time::sleep(linger).await;
        }
        match self.limiter.clone() {
            Some(limiter) => {
                if W::CAN_WAIT {
                    self.hold::<W>(&limiter).await;
                }
                if limiter.has_room() {
                    self.gather::<W>(&limiter).await;
                }
                let turn = limiter.turn().await;
                let batch = self.take_batch::<W>();
                if !batch.is_empty() {
                    turn.spend(W::send(&self, batch)).await;
                }
                // An unspent turn (the batch went with an earlier call) is given back.
            }
            None => {
                // Nothing to wait on before the call: what comes while it is out waits for
                // the next one.
                let batch = W::take(&mut lock(W::lane(&self)).queue);
                if !batch.is_empty() {
                    W::send(&self, batch).await;
                }
                self.stop_waiting(&mut lock(W::lane(&self)));
            }
        }
    }

    /// While the budget is spent (other requests wait in the limiter), wait before taking a
    /// place in its queue, until a full batch is queued, the budget has room again, or one
    /// interval of the limiter has passed. For requests nothing else waits on (see
    /// [`Want::CAN_WAIT`]): a call that joined the queue at once would carry what finished
    /// while the requests ahead of it went, a third of the jobs running or so; one that waits
    /// carries them all, and the budget it saves goes to merges.
    async fn hold<W: Want>(&self, limiter: &RateLimiter) {
        let one = (limiter.interval() / limiter.limit().max(1)).max(LINGER);
        let deadline = Instant::now() + limiter.interval();
        while Instant::now() < deadline
            && lock(W::lane(self)).shares() < FULL_CALL
            && !limiter.has_room()
            && !self.nobody_else()
        {
            tokio::time::sleep(one).await;
        }
    }

    /// Wait while requests keep coming, until a call's worth is queued (see
    /// [`GATHER_REQUESTS`]). A call that could go at once would otherwise carry the few
    /// requests that happen to be there and spend a request of the budget on each few: while
    /// jobs start one after the other, or when the window has room because it had room a
    /// window ago, they come milliseconds apart. Waiting for the next one as long as the
    /// budget takes to earn one request costs nothing the budget would not cost anyway.
    async fn gather<W: Want>(&self, limiter: &RateLimiter) {
        let one = (limiter.interval() / limiter.limit().max(1)).max(LINGER);
        let quiet = one * QUIET_REQUESTS;
        let deadline = Instant::now() + one * GATHER_REQUESTS;
        loop {
            let quiet_at = {
                let lane = lock(W::lane(self));
                if lane.shares() >= FULL_CALL || self.nobody_else() {
                    return;
                }
                lane.last + quiet
            };
            let now = Instant::now();
            if now >= quiet_at || now >= deadline {
                return;
            }
            // Looked at again at least once a request's time, for `nobody_else`.
            tokio::time::sleep_until(quiet_at.min(deadline).min(now + one)).await;
        }
    }

    /// The batch of a call that may go now, taken from the queue; the call stops waiting.
    fn take_batch<W: Want>(self: &Arc<Self>) -> Vec<W> {
        let mut lane = lock(W::lane(self));
        let batch = W::take(&mut lane.queue);
        self.stop_waiting(&mut lane);
        batch
    }

    /// A call of this lane no longer waits; if what is queued needs another, it starts.
    fn stop_waiting<W: Want>(self: &Arc<Self>, lane: &mut Lane<W>) {
        lane.waiting = lane.waiting.saturating_sub(1);
        if lane.needs_a_call() {
            lane.waiting += 1;
            tokio::spawn(self.clone().call::<W>(Duration::ZERO));
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
                    fail_all(batch, &e);
                    continue;
                }
            };
            let by_id: BTreeMap<String, Record> =
                read.found.into_iter().map(|r| (r.id.clone(), r)).collect();
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
                    fail_all(batch, &e);
                    continue;
                }
            };
            let mut by_id: BTreeMap<String, Record> = updated
                .updated
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{BatchUpdated, Page};
    use async_trait::async_trait;

    /// A CRM in memory whose batch updates go through a rate limiter as a connector's do; it
    /// refuses a whole batch holding a value `bad` and notes the ids of every call it got.
    struct Fake {
        limiter: Arc<RateLimiter>,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Fake {
        fn new(limiter: RateLimiter) -> Arc<Fake> {
            Arc::new(Fake {
                limiter: Arc::new(limiter),
                calls: Mutex::new(Vec::new()),
            })
        }

        fn calls(&self) -> Vec<Vec<String>> {
            lock(&self.calls).clone()
        }
    }

    fn unsupported<T>() -> Result<T, CrmError> {
        Err(CrmError::Unsupported {
            what: "not in this test".into(),
        })
    }

    #[async_trait]
    impl Connector for Fake {
        fn system(&self) -> &str {
            "fake"
        }
        fn rate_limiter(&self) -> Option<Arc<RateLimiter>> {
            Some(self.limiter.clone())
        }
        async fn list_page(
            &self,
            _: ObjectType,
            _: Option<&str>,
            _: &[String],
            _: &[String],
        ) -> Result<Page, CrmError> {
            unsupported()
        }
        async fn modified_since_page(
            &self,
            _: ObjectType,
            _: &str,
            _: Option<&str>,
            _: &[String],
        ) -> Result<Page, CrmError> {
            unsupported()
        }
        async fn batch_read(
            &self,
            _: ObjectType,
            _: &[String],
            _: &[String],
            _: &[String],
        ) -> Result<BatchRead, CrmError> {
            unsupported()
        }
        async fn read(
            &self,
            _: ObjectType,
            _: &str,
            _: &[String],
        ) -> Result<ReadOutcome, CrmError> {
            unsupported()
        }
        async fn update(
            &self,
            _: ObjectType,
            _: &str,
            _: &BTreeMap<String, String>,
        ) -> Result<Record, CrmError> {
            unsupported()
        }
        async fn batch_update(
            &self,
            object: ObjectType,
            inputs: &[(String, BTreeMap<String, String>)],
        ) -> Result<BatchUpdated, CrmError> {
            self.limiter.acquire().await;
            lock(&self.calls).push(inputs.iter().map(|(id, _)| id.clone()).collect());
            if inputs.iter().any(|(_, p)| p.values().any(|v| v == "bad")) {
                return Err(CrmError::Validation {
                    message: "Property values were not valid: bad".into(),
                    correlation_id: None,
                });
            }
            let updated = inputs
                .iter()
                .map(|(id, p)| Record {
                    object_type: object,
                    id: id.clone(),
                    properties: p
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect(),
                    history: BTreeMap::new(),
                    created_at: None,
                    updated_at: None,
                    archived: false,
                })
                .collect();
            Ok(BatchUpdated {
                updated,
                missing: Vec::new(),
            })
        }
        async fn search_by_email(&self, _: &str, _: &[String]) -> Result<Vec<Record>, CrmError> {
            unsupported()
        }
        async fn merge(&self, _: ObjectType, _: &str, _: &str) -> Result<Record, CrmError> {
            unsupported()
        }
    }

    fn set(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("jobtitle".to_string(), value.to_string())])
    }

    /// Update `id` through the batcher in a task of its own.
    fn update(
        batcher: &Arc<Batcher>,
        id: &str,
        value: &str,
    ) -> tokio::task::JoinHandle<Result<Record, CrmError>> {
        let (batcher, id, value) = (batcher.clone(), id.to_string(), value.to_string());
        tokio::spawn(async move {
            batcher
                .update(ObjectType::Contacts, &id, &set(&value))
                .await
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_takes_what_queued_while_it_waited_for_its_turn() {
        let crm = Fake::new(RateLimiter::with_margin(
            1,
            Duration::from_secs(1),
            Duration::ZERO,
        ));
        // The budget is spent: the first update's call waits a second for its turn.
        crm.limiter.acquire().await;
        let batcher = Batcher::new(crm.clone());
        let mut tasks = Vec::new();
        for id in ["1", "2", "3", "4", "5"] {
            tasks.push(update(&batcher, id, "Steward's pick"));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        for t in tasks {
            let record = t.await.unwrap().unwrap();
            assert_eq!(record.get("jobtitle"), Some("Steward's pick"));
        }
        assert_eq!(
            crm.calls(),
            vec![vec!["1", "2", "3", "4", "5"]],
            "one call, filled when its turn came"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_room_in_the_budget_a_call_waits_while_requests_keep_coming() {
        // 10 per second: one request's worth of budget is 100 ms.
        let crm = Fake::new(RateLimiter::new(10, Duration::from_secs(1)));
        let batcher = Batcher::new(crm.clone());
        let mut tasks = Vec::new();
        for i in 0..6 {
            tasks.push(update(&batcher, &i.to_string(), "x"));
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        // A pause longer than the quiet time: the gathered ones go; the next one goes alone.
        tokio::time::sleep(Duration::from_millis(400)).await;
        tasks.push(update(&batcher, "6", "x"));
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            crm.calls(),
            vec![vec!["0", "1", "2", "3", "4", "5"], vec!["6"]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_merges_keep_the_budget_spent_updates_wait_for_a_fuller_call() {
        // 10 per second: while the merges below go, the budget is never free.
        let crm = Fake::new(RateLimiter::with_margin(
            10,
            Duration::from_secs(1),
            Duration::ZERO,
        ));
        let limiter = crm.limiter.clone();
        let merges = tokio::spawn(async move {
            // A window spent evenly, as a run at the limit spends it, then merges as fast as
            // it frees: one every 100 ms.
            for _ in 0..10 {
                limiter.acquire().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for _ in 0..30 {
                limiter.acquire().await;
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let batcher = Batcher::new(crm.clone());
        let mut tasks = Vec::new();
        for i in 0..10 {
            tasks.push(update(&batcher, &i.to_string(), "x"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        merges.await.unwrap();
        let calls = crm.calls();
        // Joining the limiter's queue at once, each call comes up behind one merge and carries
        // the one update there: 10 calls.
        assert!(calls.len() <= 3, "{calls:?}");
        assert_eq!(calls.concat().len(), 10, "{calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_batch_is_split_until_the_refused_input_is_alone() {
        let crm = Fake::new(RateLimiter::new(1_000, Duration::from_secs(1)));
        let batcher = Batcher::new(crm.clone());
        let tasks: Vec<_> = (0..8)
            .map(|i| update(&batcher, &i.to_string(), if i == 5 { "bad" } else { "ok" }))
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(r) => assert_ne!(i, 5, "{r:?}"),
                Err(e) => {
                    assert_eq!(i, 5, "{e}");
                    assert!(e.to_string().contains("bad"), "the CRM's own message: {e}");
                }
            }
        }
        let calls = crm.calls();
        assert_eq!(calls[0].len(), 8, "{calls:?}");
        assert!(calls.contains(&vec!["5".to_string()]), "{calls:?}");
        // 8; 4 + 4; the bad half in 2 + 2; its bad half in 1 + 1.
        assert_eq!(calls.len(), 7, "{calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_id_goes_only_once_into_one_update() {
        let crm = Fake::new(RateLimiter::new(1_000, Duration::from_secs(1)));
        let batcher = Batcher::new(crm.clone());
        let first = update(&batcher, "7", "first");
        let second = update(&batcher, "7", "second");
        let other = update(&batcher, "8", "other");
        assert_eq!(first.await.unwrap().unwrap().get("jobtitle"), Some("first"));
        assert_eq!(
            second.await.unwrap().unwrap().get("jobtitle"),
            Some("second")
        );
        other.await.unwrap().unwrap();
        assert_eq!(crm.calls(), vec![vec!["7", "8"], vec!["7"]]);
    }
}
