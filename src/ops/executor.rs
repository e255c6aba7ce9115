//! The merge executor: turns approved decisions into merge jobs and runs them step by step
//! under the journal (`store::journal`). Every step is recorded as `sent` and committed before
//! its CRM call goes out, and recorded `done` with the CRM's answer before the next step starts.
//! A merge whose outcome is unknown (a crash, a timeout, a dropped connection) is resolved by
//! re-reading both ids before anything is sent again: if they now resolve to one record, the
//! merge happened and that record is the survivor. So no merge is sent twice and none is lost.
//!
//! Per cluster of N records (HubSpot semantics): a snapshot of every member, N-1 merges each on
//! the id the previous one returned, one update of the steward's field choices (and the other
//! system's id in the inverse-id property) to the final id, then the id mapping update, all in
//! the journal. Many jobs run at once under the connector's shared rate limiter, and their
//! snapshots and updates go to the CRM together ([`batch`]: one batch read for up to 50
//! members, one `batch/update` for up to 100 survivors), so a cluster costs its N-1 merges and
//! a small share of two calls; each job still journals its own step before and after, runs its
//! own checks, and fails alone. An update whose answer was lost is resolved by re-reading the
//! survivor before it is sent again. A DAILY limit pauses the queue instead of burning retries.
//! The executor decides nothing about what to merge: it executes what the steward approved.

pub mod batch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::crm::{Connector, CrmError, ReadOutcome};
use crate::domain::model::ObjectType;
use crate::domain::model::PropertyCatalog;
use crate::domain::plan;
use crate::store::clusters::{JobStatus, StepKind, StepState};
use crate::store::journal::{self, Executor, Job, Refusal, Step, StepRequest};
use crate::store::mapping::{self, MergeMapping};
use crate::store::{Store, now_ts};
use crate::store::{properties, records};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Jobs that may still merge, at most this many at once (they share the connector's rate
    /// limiter). A job whose merges are done and which waits only for its field update and
    /// mapping makes room for the next one (at most a batch update's worth wait so): the
    /// field updates go in batches that wait for a full batch or room in the budget, and the
    /// merges of the next jobs must not wait behind them. Their reads and field updates go together in
    /// batches ([`batch`]), so the more run at once, the fuller the batches: at
    /// [`DEFAULT_CONCURRENCY`] a pair costs about one call more than its merge per 50 pairs.
    pub concurrency: usize,
    /// Run at most this many jobs.
    pub limit: Option<usize>,
    /// Sends of one merge call before its job is marked failed (each after re-reading the ids).
    pub merge_attempts: u32,
    /// First back-off between merge attempts; doubles each time, with jitter.
    pub retry_base: Duration,
    /// How long a claim on a job lasts without a heartbeat (renewed every third of it).
    pub lease: Duration,
    /// While the CRM does not answer, the queue waits and probes it with back-off, up to
    /// this long in all; then `apply` stops, paused, and the next run goes on.
    pub outage_patience: Duration,
    /// The longest wait between two probes of an unreachable CRM.
    pub probe_cap: Duration,
}

/// Two windows of HubSpot's Free/Starter budget (100 requests per 10 s): while one window's
/// jobs merge, the next window's have read their snapshots and wait in the rate limiter, so
/// the budget that frees goes to merges at once instead of to a read, a round trip and the
/// journal first (`cargo bench --bench apply`: pairs 90 per 10 s at 100, 92 at 200).
pub const DEFAULT_CONCURRENCY: usize = 200;

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            concurrency: DEFAULT_CONCURRENCY,
            limit: None,
            merge_attempts: 6,
            retry_base: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            outage_patience: Duration::from_secs(30 * 60),
            probe_cap: Duration::from_secs(30),
        }
    }
}

/// What the executor is doing, for a progress bar or the TUI's status bar.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecEvent {
    Planned {
        jobs: usize,
    },
    JobStarted {
        job: i64,
        cluster: i64,
    },
    StepDone {
        job: i64,
        seq: i64,
        kind: StepKind,
        response_id: Option<String>,
    },
    JobMerged {
        job: i64,
        cluster: i64,
        survivor: String,
        mapping: String,
    },
    JobFailed {
        job: i64,
        cluster: i64,
        error: String,
    },
    Paused {
        job: i64,
        reason: String,
    },
    /// The CRM does not answer: no job starts until it does; it is probed again after `wait`.
    CrmUnreachable {
        reason: String,
        wait: Duration,
    },
    /// The CRM answers again; the queue goes on.
    CrmBack,
    /// The checks before the first merge refused the plan; nothing was sent and the cluster
    /// is back in the queue (`stale` or `needs_attention`) with the reason.
    JobRefused {
        job: i64,
        cluster: i64,
        stale: bool,
        reason: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecReport {
    pub planned: usize,
    pub merged: usize,
    pub failed: usize,
    /// Jobs whose plan the checks refused before any merge (their clusters went back to the
    /// queue).
    pub refused: usize,
    pub paused: bool,
}

enum JobOutcome {
    Merged,
    Failed,
    Refused,
    Paused,
    /// The CRM did not answer: the job went back to the queue, to go on when it does.
    Unreachable(String),
    /// Another executor holds the job now (this one's lease ran out); it is theirs.
    Lost,
}

pub type Events = Arc<dyn Fn(ExecEvent) + Send + Sync>;

struct Shared {
    store: Store,
    crm: Arc<dyn Connector>,
    properties: BTreeMap<ObjectType, Vec<String>>,
    inverse_property: String,
    other_system: String,
    on_conflict: crate::config::OnConflict,
    opts: ExecOptions,
    paused: AtomicBool,
    events: Events,
    /// The CRM's property definitions, read once per run (and saved to the workspace).
    catalogs: tokio::sync::Mutex<BTreeMap<ObjectType, PropertyCatalog>>,
    /// This run, as the owner of the jobs it claims.
    me: Executor,
    /// The reads and field updates of every running job, sent together.
    batcher: Arc<batch::Batcher>,
}

/// Create jobs for approved clusters that have none yet. Each is planned only if its approval
/// still stands when the job is written (an undo a moment ago, or another executor that
/// planned it first, leaves it out).
pub async fn plan(store: &Store, limit: Option<usize>) -> Result<Vec<i64>> {
    store
        .call(move |c| {
            let approvals = journal::unplanned_approvals(c, limit)?;
            let mut planned = Vec::new();
            for a in &approvals {
                if let Some(job) = journal::plan_job(c, a)? {
                    planned.push(job);
                }
            }
            Ok(planned)
        })
        .await
}

/// Plan and run every runnable job (pending, interrupted, paused).
pub async fn apply(
    store: &Store,
    crm: Arc<dyn Connector>,
    config: &Config,
    opts: ExecOptions,
    events: Events,
) -> Result<ExecReport> {
    let planned = plan(store, opts.limit).await?;
    events(ExecEvent::Planned {
        jobs: planned.len(),
    });
    let batcher = batch::Batcher::new(crm.clone());
    let shared = Arc::new(Shared {
        store: store.clone(),
        crm,
        properties: ObjectType::ALL
            .iter()
            .map(|o| (*o, config.properties(*o)))
            .collect(),
        inverse_property: config.mapping.inverse_id_property.clone(),
        other_system: config.mapping.other_system.clone(),
        on_conflict: config.mapping.on_conflict,
        opts: opts.clone(),
        paused: AtomicBool::new(false),
        events,
        catalogs: tokio::sync::Mutex::new(BTreeMap::new()),
        me: Executor::new(),
        batcher,
    });
    let mut report = ExecReport {
        planned: planned.len(),
        ..ExecReport::default()
    };
    // The heartbeat: every claim of this run is renewed well before it could run out.
    let heartbeat = {
        let (store, me, lease) = (store.clone(), shared.me.clone(), opts.lease);
        tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(50));
            loop {
                tokio::time::sleep(every).await;
                let me = me.clone();
                if let Err(e) = store
                    .call(move |c| journal::renew_claims(c, &me, lease))
                    .await
                {
                    tracing::warn!(error = %format!("{e:#}"), "renewing merge job claims");
                }
            }
        })
    };
    let result = run_queue(&shared, &mut report).await;
    heartbeat.abort();
    // What this run still holds (a job stopped by an error) is released for the next one.
    let me = shared.me.clone();
    store.call(move |c| journal::release_claims(c, &me)).await?;
    result?;
    Ok(report)
}

/// Claim and run jobs until none is left that this executor may take. When the CRM stops
/// answering, no job starts; once the running ones are back in the queue the CRM is probed
/// with back-off, and the queue goes on when it answers (or stops, paused, after
/// `outage_patience`).
async fn run_queue(shared: &Arc<Shared>, report: &mut ExecReport) -> Result<()> {
    let opts = &shared.opts;
    let concurrency = opts.concurrency.max(1);
    // A permit for each job until its last merge is done (see `ExecOptions::concurrency`).
    let merging = Arc::new(Semaphore::new(concurrency));
    let mut spare: Option<OwnedSemaphorePermit> = None;
    let mut started = 0usize;
    let mut outage: Option<String> = None;
    let mut running = JoinSet::new();
    // Jobs at once in all: those that may merge, and a batch update's worth that wait only for it.
    let slots = concurrency + batch::UPDATE_BATCH;
    let open = |started: usize, outage: &Option<String>| {
        outage.is_none()
            && !shared.paused.load(Ordering::SeqCst)
            && opts.limit.is_none_or(|l| started < l)
    };
    loop {
        let mut queue_empty = false;
        while open(started, &outage) && running.len() < slots {
            let Some(permit) = spare
                .take()
                .or_else(|| merging.clone().try_acquire_owned().ok())
            else {
                break;
            };
            let (me, lease) = (shared.me.clone(), opts.lease);
            let Some(job) = shared
                .store
                .call(move |c| journal::claim_next(c, &me, lease))
                .await?
            else {
                spare = Some(permit);
                queue_empty = true;
                break;
            };
            started += 1;
            let shared = shared.clone();
            running.spawn(async move { run_job(&shared, job, permit).await });
        }
        let more_to_start = !queue_empty && open(started, &outage);
        // Once no job will start, the batches need not wait for requests of jobs to come.
        shared
            .batcher
            .last_jobs((!more_to_start).then_some(running.len()));
        let may_start = more_to_start && spare.is_none() && running.len() < slots;
        let done = tokio::select! {
            done = running.join_next() => done,
            permit = merging.clone().acquire_owned(), if may_start => {
                spare = permit.ok();
                continue;
            }
        };
        let Some(done) = done else {
            match outage.take() {
                Some(reason) => {
                    if !wait_for_crm(shared, &reason).await? {
                        report.paused = true;
                        return Ok(());
                    }
                    continue;
                }
                None => return Ok(()),
            }
        };
        match done.context("a merge job task panicked")?? {
            JobOutcome::Merged => report.merged += 1,
            JobOutcome::Failed => report.failed += 1,
            JobOutcome::Refused => report.refused += 1,
            JobOutcome::Paused => report.paused = true,
            JobOutcome::Unreachable(reason) => {
                started = started.saturating_sub(1);
                outage.get_or_insert(reason);
            }
            JobOutcome::Lost => {}
        }
    }
}

/// Probe the CRM with back-off until it answers; `false` when it did not within the
/// patience.
async fn wait_for_crm(shared: &Shared, reason: &str) -> Result<bool> {
    let opts = &shared.opts;
    let deadline = std::time::Instant::now() + opts.outage_patience;
    let mut wait = opts.retry_base.max(Duration::from_millis(100));
    loop {
        (shared.events)(ExecEvent::CrmUnreachable {
            reason: reason.to_string(),
            wait,
        });
        tracing::warn!(
            reason,
            wait_ms = wait.as_millis() as u64,
            "the CRM does not answer; merges wait"
        );
        if std::time::Instant::now() + wait > deadline {
            return Ok(false);
        }
        tokio::time::sleep(wait).await;
        // Any answer about an id (a 404 included) means the CRM is back.
        match shared.crm.read(ObjectType::Contacts, "0", &[]).await {
            Ok(_) => {
                (shared.events)(ExecEvent::CrmBack);
                tracing::info!("the CRM answers again; merges go on");
                return Ok(true);
            }
            Err(CrmError::Transient { .. }) => {}
            Err(e) if e.is_retryable() => {}
            Err(_) => {
                (shared.events)(ExecEvent::CrmBack);
                return Ok(true);
            }
        }
        wait = (wait * 2).min(opts.probe_cap);
    }
}

/// What `apply` would do now: for the question the review asks before `A` runs the merges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyPreview {
    /// Approved clusters without a job yet.
    pub clusters: usize,
    /// Their records, and the merge calls they take.
    pub records: usize,
    pub merges: usize,
    /// Jobs already planned that still have work (interrupted, paused, amended, retried).
    pub resumed: usize,
    /// CRM calls, about: property definitions, the checks' reads, merges, field updates.
    pub calls: usize,
}

pub async fn preview(store: &Store, limit: Option<usize>) -> Result<ApplyPreview> {
    store
        .call(move |c| {
            let mut p = ApplyPreview::default();
            let mut objects = std::collections::BTreeSet::new();
            // Reads and field updates go in shared batches: ids read, updates sent.
            let (mut reads, mut updates) = (0usize, 0usize);
            for a in journal::unplanned_approvals(c, limit)? {
                let catalog = properties::load(c, a.object_type)?;
                let unique = plan::unique_values(&catalog, &a.properties).len();
                p.clusters += 1;
                p.records += 1 + a.losers.len();
                p.merges += a.losers.len();
                // The members' share of a batch read, a search per unique value, the merges,
                // a share of a batch update.
                reads += 1 + a.losers.len();
                updates += 1;
                p.calls += unique + a.losers.len();
                objects.insert(a.object_type);
            }
            for job in journal::runnable_jobs(c, limit)? {
                p.resumed += 1;
                objects.insert(job.object_type);
                for step in journal::steps(c, job.id)? {
                    if step.state == StepState::Done {
                        continue;
                    }
                    match step.kind {
                        StepKind::Snapshot => match &step.request {
                            StepRequest::Snapshot { ids } => reads += ids.len(),
                            _ => reads += 1,
                        },
                        StepKind::Update => updates += 1,
                        // An unknown outcome is re-read (two reads) before it is sent again.
                        StepKind::Merge => {
                            p.merges += 1;
                            p.calls += if step.state == StepState::Pending {
                                1
                            } else {
                                3
                            };
                        }
                        StepKind::Mapping => {}
                    }
                }
            }
            p.calls += objects.len()
                + reads.div_ceil(batch::READ_BATCH_WITH_HISTORY)
                + updates.div_ceil(batch::UPDATE_BATCH);
            Ok(p)
        })
        .await
}

/// The exact calls `apply` would make, one line each, without making any.
pub async fn dry_run(store: &Store, limit: Option<usize>) -> Result<Vec<String>> {
    store
        .call(move |c| {
            let mut lines = Vec::new();
            for a in journal::unplanned_approvals(c, limit)? {
                let path = format!("/crm/v3/objects/{}", a.object_type);
                lines.push(format!(
                    "cluster {} (decision {}): merge {} into primary {}",
                    a.cluster_id,
                    a.decision_id,
                    a.losers.join(", "),
                    a.primary
                ));
                lines.push(
                    "  first: re-read the members and compare them with what the review showed; check the values against the CRM's property definitions and unique values; send nothing if any check fails"
                        .to_string(),
                );
                let mut all = vec![a.primary.clone()];
                all.extend(a.losers.iter().cloned());
                lines.push(format!(
                    "  POST {path}/batch/read {} (with the other clusters' members, up to {} ids a call)",
                    serde_json::json!({"inputs": all.iter().map(|i| serde_json::json!({"id": i})).collect::<Vec<_>>(), "propertiesWithHistory": "<configured properties>"}),
                    batch::READ_BATCH_WITH_HISTORY
                ));
                let mut survivor = a.primary.clone();
                for (i, loser) in a.losers.iter().enumerate() {
                    lines.push(format!(
                        "  POST {path}/merge {}",
                        serde_json::json!({"primaryObjectId": survivor, "objectIdToMerge": loser})
                    ));
                    survivor = format!("<id returned by merge {}>", i + 1);
                }
                if !a.properties.is_empty() {
                    lines.push(format!(
                        "  POST {path}/batch/update {} (with the other clusters' survivors, up to {} a call)",
                        serde_json::json!({"inputs": [{"id": survivor, "properties": a.properties}]}),
                        batch::UPDATE_BATCH
                    ));
                }
            }
            for job in journal::runnable_jobs(c, limit)? {
                lines.push(format!(
                    "job {} (cluster {}) is {} and resumes at its first unfinished step",
                    job.id, job.cluster_id, job.status
                ));
            }
            Ok(lines)
        })
        .await
}

/// Run a claimed job (its claim set it `running`).
async fn run_job(shared: &Shared, job: Job, merging: OwnedSemaphorePermit) -> Result<JobOutcome> {
    let job_id = job.id;
    let cluster = job.cluster_id;
    (shared.events)(ExecEvent::JobStarted {
        job: job_id,
        cluster,
    });
    let outcome = match run_steps(shared, &job, merging).await {
        Ok(o) => o,
        Err(e) if e.downcast_ref::<journal::LostClaim>().is_some() => {
            tracing::warn!(job = job_id, error = %e, "merge job taken over by another executor");
            return Ok(JobOutcome::Lost);
        }
        Err(e) => return Err(e),
    };
    match outcome {
        Ok(()) => Ok(JobOutcome::Merged),
        Err(StepFailure::Unreachable(reason)) => {
            // Back in the queue as it is: its journal says where it goes on.
            let r = reason.clone();
            shared
                .store
                .call(move |c| journal::set_job_status(c, job_id, JobStatus::Pending, Some(&r)))
                .await?;
            Ok(JobOutcome::Unreachable(reason))
        }
        Err(StepFailure::Paused(reason)) => {
            shared.paused.store(true, Ordering::SeqCst);
            let r = reason.clone();
            shared
                .store
                .call(move |c| journal::set_job_status(c, job_id, JobStatus::Paused, Some(&r)))
                .await?;
            (shared.events)(ExecEvent::Paused {
                job: job_id,
                reason,
            });
            Ok(JobOutcome::Paused)
        }
        Err(StepFailure::Failed(error)) => {
            let e = error.clone();
            shared
                .store
                .call(move |c| journal::fail_job(c, job_id, cluster, &e))
                .await?;
            tracing::warn!(job = job_id, cluster, error = %error, "merge job failed");
            (shared.events)(ExecEvent::JobFailed {
                job: job_id,
                cluster,
                error,
            });
            Ok(JobOutcome::Failed)
        }
        Err(StepFailure::Refused { stale, reason }) => {
            tracing::warn!(job = job_id, cluster, stale, reason = %reason, "merge plan refused before any merge");
            (shared.events)(ExecEvent::JobRefused {
                job: job_id,
                cluster,
                stale,
                reason,
            });
            Ok(JobOutcome::Refused)
        }
    }
}

/// Why a job stopped before it was merged.
enum StepFailure {
    Failed(String),
    Paused(String),
    /// The CRM did not answer (no response, or only server errors, after the connector's
    /// retries): nothing is wrong with the job.
    Unreachable(String),
    /// The checks before the first merge refused the plan; the job is already cancelled and
    /// its cluster back in the queue.
    Refused {
        stale: bool,
        reason: String,
    },
}

/// A CRM error as the job's fate: a daily limit pauses the queue, no answer (or only server
/// errors) waits for the CRM, and an answer about this job fails it.
fn crm_failure(what: &str, e: &CrmError) -> StepFailure {
    if e.is_daily_limit() {
        StepFailure::Paused(format!(
            "{what}: {e} (the queue resumes with the next apply)"
        ))
    } else if matches!(e, CrmError::Transient { .. }) {
        StepFailure::Unreachable(format!("{what}: {e}"))
    } else {
        StepFailure::Failed(format!("{what}: {e}"))
    }
}

/// Run the unfinished steps of a job. The outer `Result` is a workspace error (stop
/// everything); the inner one is this job's failure (record it and go on with the others).
/// `merging` is the job's place among the jobs that may still merge; it is given up when only
/// the field update and the mapping are left.
async fn run_steps(
    shared: &Shared,
    job: &Job,
    merging: OwnedSemaphorePermit,
) -> Result<Result<(), StepFailure>> {
    let mut merging = Some(merging);
    let job_id = job.id;
    let object = job.object_type;
    let steps = shared
        .store
        .call(move |c| journal::steps(c, job_id))
        .await?;
    let mut survivor = job
        .survivor_id
        .clone()
        .context("merge job has no primary record")?;
    let props = shared.properties.get(&object).cloned().unwrap_or_default();
    for step in steps {
        if step.state == StepState::Done {
            continue;
        }
        if matches!(
            step.request,
            StepRequest::Update { .. } | StepRequest::Mapping { .. }
        ) {
            merging.take();
        }
        let outcome = match &step.request {
            StepRequest::Snapshot { ids } => snapshot_step(shared, job, &step, ids, &props).await?,
            StepRequest::Merge { loser } => merge_step(shared, job, &step, &survivor, loser)
                .await?
                .map(|new_id| {
                    survivor = new_id;
                }),
            StepRequest::Update { .. } => update_step(shared, job, &step, &survivor).await?,
            StepRequest::Mapping { merged_ids } => {
                mapping_step(shared, job, &step, &survivor, merged_ids).await?;
                Ok(())
            }
        };
        if let Err(f) = outcome {
            return Ok(Err(f));
        }
        let response_id = if step.kind == StepKind::Merge {
            Some(survivor.clone())
        } else {
            None
        };
        (shared.events)(ExecEvent::StepDone {
            job: job_id,
            seq: step.seq,
            kind: step.kind,
            response_id,
        });
    }
    Ok(Ok(()))
}

/// The first step: read every member with its history into `snapshots`, and check the whole
/// plan before anything irreversible happens. A member gone, merged elsewhere or edited in the
/// CRM since the steward saw it makes the cluster `stale`; a value the CRM would refuse, or a
/// unique value another live record holds, makes it `needs_attention`. Either way nothing is
/// sent and the job is cancelled.
async fn snapshot_step(
    shared: &Shared,
    job: &Job,
    step: &Step,
    ids: &[String],
    props: &[String],
) -> Result<Result<(), StepFailure>> {
    let step_id = step.id;
    let job_id = job.id;
    let object = job.object_type;
    shared
        .store
        .call({
            let owner = shared.me.id.clone();
            move |c| journal::mark_sent(c, step_id, &owner)
        })
        .await?;
    let catalog = match catalog(shared, object).await? {
        Ok(c) => c,
        Err(e) => {
            return step_error(
                shared,
                step_id,
                false,
                crm_failure("property definitions", &e),
            )
            .await;
        }
    };
    let approval = shared
        .store
        .call(move |c| journal::approval_of_job(c, job_id))
        .await?;
    // An approval written before the review draft existed could take a value from a record it
    // excludes; such a plan is not what the rules now allow.
    if let Some((field, c)) = approval.field_choices.iter().find(|(_, c)| {
        c.record_id
            .as_ref()
            .is_some_and(|r| approval.excluded.contains(r))
    }) {
        let reason = format!(
            "the approval takes {field} from record {}, which it excludes from the merge; review it again",
            c.record_id.as_deref().unwrap_or("?")
        );
        return refuse(shared, job, step, Refusal::Invalid, reason).await;
    }
    let seen = approval.seen;
    // Whatever the steward was shown is read back, configured or not.
    let mut read_props: Vec<String> = props.to_vec();
    for values in seen.values() {
        for p in values.keys() {
            if !read_props.contains(p) {
                read_props.push(p.clone());
            }
        }
    }
    let read = match shared
        .batcher
        .read(object, ids, &read_props, &read_props)
        .await
    {
        Ok(r) => r,
        Err(e) => return step_error(shared, step_id, false, crm_failure("snapshot", &e)).await,
    };
    if let Some(missing) = read.missing.first() {
        let reason = format!("record {missing} no longer exists in the CRM");
        return refuse(shared, job, step, Refusal::Stale, reason).await;
    }
    if let Some(moved) = read.found.iter().find(|r| !ids.contains(&r.id)) {
        let reason = format!(
            "a member was merged in the CRM into {} since the review",
            moved.id
        );
        return refuse(shared, job, step, Refusal::Stale, reason).await;
    }
    let changed = plan::changes_since_review(&seen, &read.found);
    if let Some(first) = changed.first() {
        let more = match changed.len() {
            1 => String::new(),
            n => format!(" (and {} more changes)", n - 1),
        };
        let reason = format!("changed in the CRM since the review: {first}{more}");
        return refuse(shared, job, step, Refusal::Stale, reason).await;
    }
    let update = planned_update(shared, job).await?;
    let problems = plan::check_update(object, &catalog, &update);
    if !problems.is_empty() {
        let reason = format!(
            "the CRM would refuse the surviving values: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        return refuse(shared, job, step, Refusal::Invalid, reason).await;
    }
    for (property, value) in plan::unique_values(&catalog, &update) {
        let holders = match shared
            .crm
            .search_equal(object, property, value, &[property.to_string()])
            .await
        {
            Ok(h) => h,
            Err(CrmError::Unsupported { .. }) => continue,
            Err(e) => {
                return step_error(shared, step_id, false, crm_failure("uniqueness check", &e))
                    .await;
            }
        };
        if let Some(other) = holders.iter().find(|r| !ids.contains(&r.id)) {
            let reason = format!(
                "{property} {value:?} must be unique and belongs to {} {}, which is not in this merge",
                singular(object),
                other.id
            );
            return refuse(shared, job, step, Refusal::Invalid, reason).await;
        }
    }
    let found = read.found;
    shared
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            for r in &found {
                journal::save_snapshot(&tx, job_id, r, &r.id)?;
            }
            journal::mark_done_in(&tx, job_id, step_id, None, None)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(Ok(()))
}

fn singular(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Contacts => "contact",
        ObjectType::Companies => "company",
    }
}

/// Cancel the job before its first merge and send its cluster back to the queue.
async fn refuse(
    shared: &Shared,
    job: &Job,
    step: &Step,
    refusal: Refusal,
    reason: String,
) -> Result<Result<(), StepFailure>> {
    let (job_id, step_id) = (job.id, step.id);
    let r = reason.clone();
    shared
        .store
        .call(move |c| journal::cancel_job(c, job_id, step_id, refusal, &r))
        .await?;
    Ok(Err(StepFailure::Refused {
        stale: refusal == Refusal::Stale,
        reason,
    }))
}

/// The CRM's property definitions of `object`, read once per run and saved to the workspace.
/// A connector that cannot describe its properties leaves the workspace's cached ones.
async fn catalog(shared: &Shared, object: ObjectType) -> Result<Result<PropertyCatalog, CrmError>> {
    let mut cache = shared.catalogs.lock().await;
    if let Some(c) = cache.get(&object) {
        return Ok(Ok(c.clone()));
    }
    let catalog = match shared.crm.properties(object).await {
        Ok(defs) => {
            let now = shared.store.now_ts();
            let (saved, at) = (defs.clone(), now.clone());
            shared
                .store
                .call(move |c| properties::save(c, object, &saved, &at))
                .await?;
            PropertyCatalog::new(defs, Some(now))
        }
        Err(CrmError::Unsupported { .. }) => {
            shared
                .store
                .call(move |c| properties::load(c, object))
                .await?
        }
        Err(e) => return Ok(Err(e)),
    };
    cache.insert(object, catalog.clone());
    Ok(Ok(catalog))
}

/// The field update a job will send: the steward's choices from its update step, and the other
/// system's id in the inverse-id property when the merged records map to exactly one.
async fn planned_update(shared: &Shared, job: &Job) -> Result<BTreeMap<String, String>> {
    let (job_id, object) = (job.id, job.object_type);
    let steps = shared
        .store
        .call(move |c| journal::steps(c, job_id))
        .await?;
    let mut properties = BTreeMap::new();
    let mut merged_ids = Vec::new();
    for s in steps {
        match s.request {
            StepRequest::Update { properties: p } => properties = p,
            StepRequest::Mapping { merged_ids: m } => merged_ids = m,
            _ => {}
        }
    }
    let (source, other, inverse) = (
        shared.crm.system().to_string(),
        shared.other_system.clone(),
        shared.inverse_property.clone(),
    );
    let targets = shared
        .store
        .call(move |c| mapping::active_targets(c, object, &source, &merged_ids, &other))
        .await?;
    match targets.as_slice() {
        [] => {}
        [only] => {
            properties.insert(inverse, only.clone());
        }
        // The records map to different ids: none is written (whatever the choices say); the
        // mapping step records the conflict for the steward to settle.
        _ => match shared.on_conflict {
            crate::config::OnConflict::Keep => {
                properties.remove(&inverse);
            }
            crate::config::OnConflict::Clear => {
                properties.insert(inverse, String::new());
            }
        },
    }
    Ok(properties)
}

async fn step_error(
    shared: &Shared,
    step_id: i64,
    keep_sent: bool,
    failure: StepFailure,
) -> Result<Result<(), StepFailure>> {
    let msg = match &failure {
        StepFailure::Failed(m) | StepFailure::Paused(m) | StepFailure::Unreachable(m) => m.clone(),
        StepFailure::Refused { reason, .. } => reason.clone(),
    };
    shared
        .store
        .call(move |c| journal::mark_step_error(c, step_id, keep_sent, &msg))
        .await?;
    Ok(Err(failure))
}

/// Whether merging `loser` into `survivor` already happened: both ids resolve to one record.
async fn resolve(
    crm: &dyn Connector,
    object: ObjectType,
    survivor: &str,
    loser: &str,
) -> Result<Option<String>, CrmError> {
    let resolved = |o: ReadOutcome| match o {
        ReadOutcome::Live(r) | ReadOutcome::MergedInto(r) => Some(r.id),
        ReadOutcome::Missing => None,
    };
    let l = resolved(crm.read(object, loser, &[]).await?);
    let s = resolved(crm.read(object, survivor, &[]).await?);
    Ok(match (l, s) {
        (Some(a), Some(b)) if a == b => Some(a),
        _ => None,
    })
}

/// One merge call, made at most once per unknown outcome: an earlier send (state `sent`, or any
/// earlier attempt) is first resolved by re-reading the ids. Returns the new survivor id.
async fn merge_step(
    shared: &Shared,
    job: &Job,
    step: &Step,
    survivor: &str,
    loser: &str,
) -> Result<Result<String, StepFailure>> {
    let (job_id, step_id, object) = (job.id, step.id, job.object_type);
    let mut outcome_unknown = step.state != StepState::Pending || step.attempts > 0;
    let mut attempt = 0u32;
    loop {
        if outcome_unknown {
            match resolve(shared.crm.as_ref(), object, survivor, loser).await {
                Ok(Some(new_id)) => {
                    tracing::info!(job = job_id, step = step.seq, survivor = %new_id, "merge found applied on re-read");
                    let id = new_id.clone();
                    shared
                        .store
                        .call(move |c| journal::mark_done(c, job_id, step_id, Some(&id), Some(&id)))
                        .await?;
                    return Ok(Ok(new_id));
                }
                Ok(None) => {}
                Err(e) if e.is_retryable() && attempt < shared.opts.merge_attempts => {
                    attempt += 1;
                    backoff(shared, attempt).await;
                    continue;
                }
                Err(e) => {
                    return step_error(shared, step_id, true, crm_failure("re-reading ids", &e))
                        .await
                        .map(|r| r.map(|()| String::new()));
                }
            }
        }
        shared
            .store
            .call({
                let owner = shared.me.id.clone();
                move |c| journal::mark_sent(c, step_id, &owner)
            })
            .await?;
        outcome_unknown = true;
        match shared.crm.merge(object, survivor, loser).await {
            Ok(merged) => {
                let id = merged.id.clone();
                shared
                    .store
                    .call(move |c| journal::mark_done(c, job_id, step_id, Some(&id), Some(&id)))
                    .await?;
                return Ok(Ok(merged.id));
            }
            Err(e) if e.is_daily_limit() => {
                return step_error(shared, step_id, true, crm_failure("merge", &e))
                    .await
                    .map(|r| r.map(|()| String::new()));
            }
            Err(e) if e.is_retryable() && attempt + 1 < shared.opts.merge_attempts => {
                attempt += 1;
                let msg = format!("merge attempt {attempt}: {e}");
                shared
                    .store
                    .call(move |c| journal::mark_step_error(c, step_id, true, &msg))
                    .await?;
                backoff(shared, attempt).await;
            }
            Err(e) => {
                // A refusal may still hide an earlier send that went through: one last re-read.
                if let Ok(Some(new_id)) =
                    resolve(shared.crm.as_ref(), object, survivor, loser).await
                {
                    let id = new_id.clone();
                    shared
                        .store
                        .call(move |c| journal::mark_done(c, job_id, step_id, Some(&id), Some(&id)))
                        .await?;
                    return Ok(Ok(new_id));
                }
                return step_error(shared, step_id, true, crm_failure("merge", &e))
                    .await
                    .map(|r| r.map(|()| String::new()));
            }
        }
    }
}

async fn backoff(shared: &Shared, attempt: u32) {
    let base = shared.opts.retry_base.as_millis() as u64;
    let cap = base.saturating_mul(1 << attempt.min(6)).min(30_000);
    let wait = rand::rng().random_range(cap / 2..=cap.max(1));
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// The field update, after the merges: checked once more against the CRM's definitions (an
/// amend may have changed it), then sent. A refusal leaves the job failed with what to do:
/// amend the values, which resumes the job here, never before.
async fn update_step(
    shared: &Shared,
    job: &Job,
    step: &Step,
    survivor: &str,
) -> Result<Result<(), StepFailure>> {
    let (job_id, step_id, object) = (job.id, step.id, job.object_type);
    let properties = planned_update(shared, job).await?;
    if properties.is_empty() {
        shared
            .store
            .call(move |c| journal::mark_done(c, job_id, step_id, None, None))
            .await?;
        return Ok(Ok(()));
    }
    let amend = format!(
        "the merges ran (survivor {survivor}); amend the values with `dupdesk amend {job_id}` or in the review (cluster #{}), then apply again",
        job.cluster_id
    );
    let catalog = match catalog(shared, object).await? {
        Ok(c) => c,
        Err(e) => {
            return step_error(
                shared,
                step_id,
                false,
                crm_failure("property definitions", &e),
            )
            .await;
        }
    };
    let problems = plan::check_update(object, &catalog, &properties);
    if !problems.is_empty() {
        let f = StepFailure::Failed(format!(
            "field update not sent, the CRM would refuse it: {}; {amend}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
        return step_error(shared, step_id, false, f).await;
    }
    // An update sent before whose answer was lost (a crash, no answer, a refusal after a
    // retry) may have been applied: the survivor is re-read, and if it holds every value
    // already, the update is done without sending it again.
    if step.state != StepState::Pending || step.attempts > 0 {
        let wanted: Vec<String> = properties.keys().cloned().collect();
        match shared
            .batcher
            .read(object, &[survivor.to_string()], &wanted, &[])
            .await
        {
            Ok(read) => {
                if let Some(record) = read
                    .found
                    .into_iter()
                    .find(|r| r.id == survivor && holds(r, &properties))
                {
                    tracing::info!(
                        job = job_id,
                        survivor,
                        "field update found applied on re-read"
                    );
                    return update_done(shared, job_id, step_id, record).await;
                }
            }
            Err(e) => {
                return step_error(
                    shared,
                    step_id,
                    false,
                    crm_failure("re-reading the survivor", &e),
                )
                .await;
            }
        }
    }
    shared
        .store
        .call({
            let owner = shared.me.id.clone();
            move |c| journal::mark_sent(c, step_id, &owner)
        })
        .await?;
    match shared.batcher.update(object, survivor, &properties).await {
        Ok(record) => update_done(shared, job_id, step_id, record).await,
        Err(e) if e.is_daily_limit() || e.is_retryable() => {
            step_error(shared, step_id, false, crm_failure("field update", &e)).await
        }
        Err(e) => {
            let f = StepFailure::Failed(format!("field update: {e}; {amend}"));
            step_error(shared, step_id, false, f).await
        }
    }
}

/// Whether `record` holds every value of `properties` (`""` as no value).
fn holds(record: &crate::domain::model::Record, properties: &BTreeMap<String, String>) -> bool {
    properties.iter().all(|(name, value)| {
        let has = record
            .properties
            .get(name)
            .cloned()
            .flatten()
            .unwrap_or_default();
        has == *value
    })
}

/// The field update is in the CRM: the survivor as the CRM answered goes to the workspace and
/// the step is done.
async fn update_done(
    shared: &Shared,
    job_id: i64,
    step_id: i64,
    record: crate::domain::model::Record,
) -> Result<Result<(), StepFailure>> {
    let system = shared.crm.system().to_string();
    let id = record.id.clone();
    shared
        .store
        .call(move |c| {
            // In a write transaction: a pull in another process may be writing the same
            // record, and the upsert reads before it inserts.
            let tx = c.transaction()?;
            records::upsert_records(&tx, &system, std::slice::from_ref(&record), &now_ts())?;
            tx.commit()?;
            journal::mark_done(c, job_id, step_id, Some(&id), None)
        })
        .await?;
    Ok(Ok(()))
}

/// The last step, all local and in one transaction: mappings superseded, losers marked merged,
/// the step, the job and the cluster finished.
async fn mapping_step(
    shared: &Shared,
    job: &Job,
    step: &Step,
    survivor: &str,
    merged_ids: &[String],
) -> Result<()> {
    let (job_id, step_id, cluster, object) = (job.id, step.id, job.cluster_id, job.object_type);
    let source = shared.crm.system().to_string();
    let other = shared.other_system.clone();
    let survivor = survivor.to_string();
    let merged_ids = merged_ids.to_vec();
    let (mapping, survivor) = shared
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let now = now_ts();
            let mapping = mapping::supersede_after_merge(
                &tx,
                object,
                &source,
                &merged_ids,
                &survivor,
                &other,
                Some(job_id),
                &now,
            )?;
            for id in merged_ids.iter().filter(|id| **id != survivor) {
                records::mark_merged(&tx, object, id, &survivor)?;
            }
            // After the losers are marked merged: records left out of the merge may share an id.
            mapping::check_shared_targets(&tx, object, &source, &other, mapping.targets(), &now)?;
            journal::finish_merged(&tx, job_id, step_id, cluster, &survivor, &now)?;
            tx.commit()?;
            Ok((mapping, survivor))
        })
        .await?;
    let mapping = match mapping {
        MergeMapping::NoMapping => "no id mapping".to_string(),
        MergeMapping::Mapped { target_id, .. } => format!("maps to {target_id}"),
        MergeMapping::Conflict { target_ids, .. } => {
            format!("mapping conflict: {}", target_ids.join(", "))
        }
    };
    tracing::info!(job = job_id, cluster, survivor = %survivor, mapping = %mapping, "merge job done");
    (shared.events)(ExecEvent::JobMerged {
        job: job_id,
        cluster,
        survivor,
        mapping,
    });
    Ok(())
}
