//! Benchmark of `executor::apply` under HubSpot's Free/Starter rate limit (100 requests per
//! rolling 10 s), enforced by the in-process sandbox CRM: clusters merged per 10 s and CRM calls
//! per cluster, for pairs and for clusters of 3, 4 and 5 (one run each on a fresh sandbox and
//! workspace), how close the executor keeps to the limit, and whether the server ever refuses
//! it. Only the merges are unavoidable (N-1 per cluster of N), so the ceiling is
//! 98/(N-1) clusters per 10 s (the limiter's 98%, below).
//! `cargo bench --bench apply -- [merges] [concurrency] [size]` (default 300 merges per run,
//! the executor's default concurrency, every size). Prints what it measured; it asserts
//! nothing. With `DUPDESK_BENCH_TIMELINE=1` it also prints the requests returned per 250 ms and
//! when each batch call started, to see where the budget idles.
//!
//! # Measuring the sustained rate honestly
//!
//! The workspace is pulled first, outside the timed part, and then one whole window is waited
//! out so that neither the sandbox's window nor the client's limiter still holds the pull's
//! requests: the timed part starts on a fresh budget. A fresh budget lets the first 100
//! requests through at once, so requests divided by wall time flatters short runs. The figure
//! that counts is the mean occupancy of the rolling 10 s window, sampled every 10 ms from 10 s
//! after the start to the last request: the number of requests the server saw in the 10 s
//! before each instant, averaged. At saturation that is the limiter's ceiling (100 per 10.2 s,
//! 98%, because the limiter's window carries a 1/50 margin for the trip to the server).
//! Clusters merged per 10 s follow from it: the sustained rate divided by the CRM calls per
//! cluster (every call of the run, the first window's included, over the clusters merged).
//! Counting the jobs merged after the first 10 s instead flatters a run whose jobs take longer
//! than a window: they finish after 10 s on calls the free first window made (clusters of 4
//! came out above their ceiling that way); the bench prints that count too, for comparison.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use dupdesk::config::{self, Secret};
use dupdesk::crm::hubspot::{HubSpotConnector, HubSpotOptions};
use dupdesk::crm::ratelimit::RateLimiter;
use dupdesk::crm::{BatchRead, BatchUpdated, Connector, CrmError, Page, ReadOutcome};
use dupdesk::domain::model::{ObjectType, PropertyDef, PropertyVersion, Record, parse_ts};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{self, FaultSpec, RateLimit, SandboxOptions};
use dupdesk::ops::executor::{self, ExecEvent, ExecOptions};
use dupdesk::store::Store;

use common::{TOKEN, thousands};

const DEFAULT_MERGES: usize = 300;
/// Cluster sizes measured: pairs, then 3 to 5 records.
const SIZES: [usize; 4] = [2, 3, 4, 5];
/// HubSpot Free/Starter: 100 requests per rolling 10 s.
const LIMIT: u32 = 100;
const INTERVAL: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let merges = common::count_arg(0, "merges", DEFAULT_MERGES)?;
    let concurrency = common::count_arg(1, "concurrency", ExecOptions::default().concurrency)?;
    let sizes: Vec<usize> = match common::positional_args().get(2) {
        None => SIZES.to_vec(),
        Some(_) => match common::count_arg(2, "cluster size", 2)? {
            size if SIZES.contains(&size) => vec![size],
            size => anyhow::bail!("argument 3: cluster size must be one of {SIZES:?}, not {size}"),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    println!("dupdesk apply benchmark (executor::apply under HubSpot's Free/Starter rate limit)");
    println!("  machine:     {}", common::machine());
    println!(
        "  note:        the sandbox CRM runs in this same process on 127.0.0.1 and shares these cores"
    );
    println!(
        "  rate limit:  sandbox {LIMIT} requests per rolling {} s; client limiter configured the same",
        INTERVAL.as_secs()
    );
    println!("  concurrency: {concurrency} jobs at once (ExecOptions.concurrency)");
    let mut summary = Vec::new();
    for size in sizes {
        let clusters = merges.div_ceil(size - 1);
        summary.push(runtime.block_on(run(size, clusters, concurrency))?);
    }
    println!();
    println!(
        "summary (target: pairs at least 90 clusters per 10 s; clusters of N at least 90% of 100/(N-1))"
    );
    println!(
        "  size  clusters  merged/10s  ceiling  target  calls/cluster (merges)  sustained  429s"
    );
    for s in &summary {
        let ceiling = 98.0 / (s.size - 1) as f64;
        let target = if s.size == 2 {
            90.0
        } else {
            0.9 * 100.0 / (s.size - 1) as f64
        };
        println!(
            "  {:>4}  {:>8}  {:>10}  {:>7.1}  {:>6.1}  {:>13.3} ({})  {:>9}  {:>4}",
            s.size,
            s.clusters,
            s.per_10s.map_or("n/a".to_string(), |r| format!("{r:.1}")),
            ceiling,
            target,
            s.calls_per_cluster,
            s.size - 1,
            s.sustained.map_or("n/a".to_string(), |r| format!(
                "{:.1}%",
                r / f64::from(LIMIT) * 100.0
            )),
            s.refused
        );
    }
    Ok(())
}

/// What one run measured, for the closing table.
struct Summary {
    size: usize,
    clusters: usize,
    per_10s: Option<f64>,
    calls_per_cluster: f64,
    sustained: Option<f64>,
    refused: u64,
}

fn contact(id: u64, props: &[(&str, String)]) -> Result<Record> {
    let ts = parse_ts("2026-01-05T10:00:00.000Z").context("a fixed timestamp")?;
    let mut properties = BTreeMap::new();
    let mut history = BTreeMap::new();
    for (k, v) in props {
        properties.insert(k.to_string(), Some(v.clone()));
        history.insert(
            k.to_string(),
            vec![PropertyVersion {
                value: Some(v.clone()),
                timestamp: ts,
                source_type: "CRM_UI".into(),
                source_id: None,
            }],
        );
    }
    Ok(Record {
        object_type: ObjectType::Contacts,
        id: id.to_string(),
        properties,
        history,
        created_at: Some(ts),
        updated_at: Some(ts),
        archived: false,
    })
}

/// `n` clusters of `size` duplicate contacts; the first member of each carries an ERP id, so
/// every job also updates the id mapping.
fn clusters(n: usize, size: usize) -> Result<(SeedData, Vec<Vec<String>>)> {
    let mut seed = SeedData::default();
    let mut members = Vec::new();
    let mut next = 1000u64;
    for c in 0..n {
        let mut ids = Vec::new();
        for m in 0..size {
            next += 1;
            let mut props = vec![
                ("email", format!("person{c}@example.com")),
                (
                    "firstname",
                    if m == 0 { "Bob" } else { "Robert" }.to_string(),
                ),
                ("lastname", "Tester".to_string()),
            ];
            if m == 1 {
                props.push(("phone", format!("+1 555 01{c:04}")));
            }
            if m == 0 {
                props.push(("erp_customer_id", format!("ERP-{c}")));
            }
            seed.contacts.push(contact(next, &props)?);
            ids.push(next.to_string());
        }
        members.push(ids);
    }
    Ok((seed, members))
}

/// The steward's approvals, as the review records them: a cluster, its members, an `approve`
/// decision with a primary and field choices (so every job ends with a PATCH).
async fn approve_all(store: &Store, clusters: Vec<Vec<String>>) -> Result<()> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let now = dupdesk::store::now_ts();
            for ids in &clusters {
                tx.execute(
                    "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, status, created_at, updated_at)
                     VALUES ('contacts', ?1, 'bench', 0.99, 0.95, ?2, 'Robert Tester', 'approved', ?3, ?3)",
                    rusqlite::params![format!("fp-{}", ids.join("-")), ids.len() as i64, now],
                )?;
                let cluster = tx.last_insert_rowid();
                for id in ids {
                    tx.execute(
                        "INSERT INTO cluster_members (cluster_id, rid) SELECT ?1, rid FROM records WHERE object_type = 'contacts' AND id = ?2",
                        rusqlite::params![cluster, id],
                    )?;
                }
                let choices = serde_json::json!({
                    "firstname": {"value": "Robert", "record_id": ids[1], "system": "crm", "reason": "bench"},
                    "jobtitle": {"value": "Steward's pick", "record_id": null, "system": null, "reason": "typed"},
                });
                tx.execute(
                    "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id, field_choices, members)
                     VALUES (?1, 'bench', ?2, 'approve', ?3, ?4, ?5)",
                    rusqlite::params![cluster, now, ids[0], choices.to_string(), serde_json::to_string(ids)?],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
}

/// The connector under test, noting the instant each call returns: the server admitted the
/// request a moment (its own processing) before, so these instants are what its rolling window
/// counted, much closer than the executor's events, which come after a journal commit.
struct Recorded {
    inner: Arc<HubSpotConnector>,
    returned: Mutex<Vec<Instant>>,
    /// The size of each batch call, by kind: what the batches carried.
    batches: Mutex<BTreeMap<&'static str, Vec<usize>>>,
    /// When each batch call started, by kind (for `DUPDESK_BENCH_TIMELINE`).
    batch_starts: Mutex<Vec<(Instant, &'static str)>>,
}

impl Recorded {
    fn note_batch(&self, kind: &'static str, size: usize) {
        self.batch_starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Instant::now(), kind));
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
            .or_default()
            .push(size);
    }

    fn note<T>(&self, result: T) -> T {
        self.returned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
        result
    }
}

#[async_trait]
impl Connector for Recorded {
    fn system(&self) -> &str {
        self.inner.system()
    }

    /// The executor's batches wait for their turn in this limiter (see `executor::batch`).
    fn rate_limiter(&self) -> Option<Arc<RateLimiter>> {
        self.inner.rate_limiter()
    }

    async fn list_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
        properties: &[String],
        history: &[String],
    ) -> Result<Page, CrmError> {
        let r = self
            .inner
            .list_page(object, after, properties, history)
            .await;
        self.note(r)
    }

    async fn modified_since_page(
        &self,
        object: ObjectType,
        since: &str,
        after: Option<&str>,
        properties: &[String],
    ) -> Result<Page, CrmError> {
        let r = self
            .inner
            .modified_since_page(object, since, after, properties)
            .await;
        self.note(r)
    }

    async fn batch_read(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        history: &[String],
    ) -> Result<BatchRead, CrmError> {
        self.note_batch("batch reads", ids.len());
        let r = self
            .inner
            .batch_read(object, ids, properties, history)
            .await;
        self.note(r)
    }

    async fn read(
        &self,
        object: ObjectType,
        id: &str,
        properties: &[String],
    ) -> Result<ReadOutcome, CrmError> {
        let r = self.inner.read(object, id, properties).await;
        self.note(r)
    }

    async fn update(
        &self,
        object: ObjectType,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Record, CrmError> {
        let r = self.inner.update(object, id, properties).await;
        self.note(r)
    }

    async fn batch_update(
        &self,
        object: ObjectType,
        inputs: &[(String, BTreeMap<String, String>)],
    ) -> Result<BatchUpdated, CrmError> {
        self.note_batch("batch updates", inputs.len());
        let r = self.inner.batch_update(object, inputs).await;
        self.note(r)
    }

    async fn search_by_email(
        &self,
        email: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        let r = self.inner.search_by_email(email, properties).await;
        self.note(r)
    }

    async fn merge(
        &self,
        object: ObjectType,
        primary: &str,
        loser: &str,
    ) -> Result<Record, CrmError> {
        let r = self.inner.merge(object, primary, loser).await;
        self.note(r)
    }

    async fn properties(&self, object: ObjectType) -> Result<Vec<PropertyDef>, CrmError> {
        let r = self.inner.properties(object).await;
        self.note(r)
    }

    async fn search_equal(
        &self,
        object: ObjectType,
        property: &str,
        value: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        let r = self
            .inner
            .search_equal(object, property, value, properties)
            .await;
        self.note(r)
    }
}

/// How long jobs took, from the executor's events.
#[derive(Default)]
struct Jobs {
    started: BTreeMap<i64, Instant>,
    times: Vec<Duration>,
    /// When each job was merged.
    merged: Vec<Instant>,
}

/// Requests in the rolling window `(s - INTERVAL, s]`, for sorted offsets.
fn in_window(sorted: &[Duration], s: Duration) -> usize {
    let hi = sorted.partition_point(|t| *t <= s);
    let lo = sorted.partition_point(|t| s.checked_sub(INTERVAL).is_some_and(|from| *t <= from));
    hi - lo
}

async fn run(size: usize, n_clusters: usize, concurrency: usize) -> Result<Summary> {
    let (seed, members) = clusters(n_clusters, size)?;
    let n_contacts = seed.contacts.len();
    let sandbox = sandbox::start(SandboxOptions {
        port: 0,
        data: None,
        seed: Some(seed),
        rate_limit: RateLimit {
            max: LIMIT,
            interval: INTERVAL,
            ..RateLimit::default()
        },
        search_rate_limit: None,
        faults: FaultSpec::default(),
        token: Some(TOKEN.into()),
    })
    .await?;
    let config = config::load(&config::Sources::default())?;
    let mut hs = HubSpotOptions::from_config(&config, Secret::new(TOKEN));
    hs.base_url = sandbox.base_url();
    hs.rate_limit = LIMIT;
    hs.rate_interval = INTERVAL;
    let crm = Arc::new(HubSpotConnector::new(hs)?);

    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let store = Store::open(dir.path().join("ws.db"))?;
    let pulled_at = Instant::now();
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {}).await?;
    let pull_wall = pulled_at.elapsed();
    let pull_requests = crm.stats().requests;
    approve_all(&store, members).await?;

    // A whole window of the limiter's (interval plus its 1/50 margin) and a little more.
    let fresh = INTERVAL + INTERVAL / 50 + Duration::from_millis(300);
    // About one request per merge; the first window's worth go at once, the rest at the limit.
    let expected = (n_clusters as f64 * (size - 1) as f64 * 1.05 - f64::from(LIMIT)).max(0.0)
        / (f64::from(LIMIT) / INTERVAL.as_secs_f64() * 0.98);
    eprintln!(
        "clusters of {size}: pulled {n_contacts} contacts with {pull_requests} requests in {:.1} s; waiting {:.1} s for a fresh rate-limit window, then applying {n_clusters} merge jobs (about {:.0} s)...",
        pull_wall.as_secs_f64(),
        fresh.as_secs_f64(),
        expected
    );
    tokio::time::sleep(fresh).await;

    let jobs = Arc::new(Mutex::new(Jobs::default()));
    let events: executor::Events = {
        let jobs = jobs.clone();
        Arc::new(move |e: ExecEvent| {
            let now = Instant::now();
            let mut j = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            match e {
                ExecEvent::JobStarted { job, .. } => {
                    j.started.insert(job, now);
                }
                ExecEvent::JobMerged { job, .. } | ExecEvent::JobFailed { job, .. } => {
                    if matches!(e, ExecEvent::JobMerged { .. }) {
                        j.merged.push(now);
                    }
                    if let Some(s) = j.started.remove(&job) {
                        j.times.push(now - s);
                    }
                }
                _ => {}
            }
        })
    };
    let recorded = Arc::new(Recorded {
        inner: crm.clone(),
        returned: Mutex::new(Vec::new()),
        batches: Mutex::new(BTreeMap::new()),
        batch_starts: Mutex::new(Vec::new()),
    });
    let statuses_before = common::sandbox_status_counts(&sandbox.base_url()).await?;
    let stats_before = crm.stats();
    let opts = ExecOptions {
        concurrency,
        ..ExecOptions::default()
    };
    let started = Instant::now();
    let report = executor::apply(&store, recorded.clone(), &config, opts, events).await?;
    let wall = started.elapsed();
    let stats = crm.stats();
    let statuses = common::status_delta(
        &statuses_before,
        &common::sandbox_status_counts(&sandbox.base_url()).await?,
    );
    let merges_logged = sandbox.merge_log().await?.len();
    sandbox.shutdown().await;

    let requests = stats.requests - stats_before.requests;
    let refused = statuses.get("429").copied().unwrap_or(0);
    let returned = recorded
        .returned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut offsets: Vec<Duration> = returned.iter().map(|c| *c - started).collect();
    offsets.sort();
    if std::env::var_os("DUPDESK_BENCH_TIMELINE").is_some() {
        // Requests returned per 250 ms, to see where the budget idles.
        let mut buckets = vec![
            0usize;
            offsets
                .last()
                .map_or(0, |l| l.as_millis() as usize / 250 + 1)
        ];
        for o in &offsets {
            buckets[o.as_millis() as usize / 250] += 1;
        }
        let line: Vec<String> = buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| format!("{:.2}:{n}", i as f64 * 0.25))
            .collect();
        eprintln!("  timeline (s:requests per 250 ms): {}", line.join(" "));
        let starts = recorded
            .batch_starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let line: Vec<String> = starts
            .iter()
            .map(|(at, kind)| format!("{:.2}{}", (*at - started).as_secs_f64(), &kind[6..7]))
            .collect();
        eprintln!("  batch calls started (s, r/u): {}", line.join(" "));
    }
    let first = offsets.first().copied().unwrap_or_default();
    let last = offsets.last().copied().unwrap_or_default();
    let peak = offsets
        .iter()
        .map(|s| in_window(&offsets, *s))
        .max()
        .unwrap_or(0);
    let step = Duration::from_millis(10);
    let mut samples = Vec::new();
    let mut s = INTERVAL;
    while s <= last {
        samples.push(in_window(&offsets, s));
        s += step;
    }
    let sustained =
        (!samples.is_empty()).then(|| samples.iter().sum::<usize>() as f64 / samples.len() as f64);
    let (job_times, merged_at) = {
        let j = jobs.lock().unwrap_or_else(PoisonError::into_inner);
        (j.times.clone(), j.merged.clone())
    };
    let mean_job = job_times
        .iter()
        .sum::<Duration>()
        .checked_div(job_times.len().max(1) as u32)
        .unwrap_or_default();
    let per_10s = |n: f64, d: Duration| n / d.as_secs_f64().max(1e-9) * INTERVAL.as_secs_f64();
    // Jobs merged from 10 s on (past the free first window), per 10 s, to the last merged.
    let mut merged_offsets: Vec<Duration> = merged_at.iter().map(|m| *m - started).collect();
    merged_offsets.sort();
    let last_merged = merged_offsets.last().copied().unwrap_or_default();
    let finished_after_10s = (last_merged > INTERVAL + Duration::from_secs(2)).then(|| {
        let after = merged_offsets.iter().filter(|t| **t > INTERVAL).count();
        per_10s(after as f64, last_merged - INTERVAL)
    });
    let calls_per_cluster = requests as f64 / report.merged.max(1) as f64;
    let clusters_per_10s = sustained
        .filter(|_| report.merged > 0)
        .map(|rate| rate / calls_per_cluster);

    println!();
    println!(
        "clusters of {size}: {n_clusters} approved clusters of duplicate contacts ({n_contacts} contacts)"
    );
    println!(
        "  each job = a share of a batch read (snapshot) + {} merge(s) + a share of a batch update of the field choices",
        size - 1
    );
    println!(
        "  setup:       pull of {n_contacts} contacts ({pull_requests} requests) before timing, then {:.1} s waited so the timed part starts on a fresh window",
        fresh.as_secs_f64()
    );
    match clusters_per_10s {
        Some(rate) => println!(
            "  clusters merged:       {rate:.1} per 10 s (the sustained rate below over the calls per cluster; ceiling 98/(N-1) = {:.1})",
            98.0 / (size - 1) as f64
        ),
        None => println!(
            "  clusters merged:       n/a: the run ended within its first window; pass more merges"
        ),
    }
    if let Some(rate) = finished_after_10s {
        println!(
            "  jobs finished after the first 10 s: {rate:.1} per 10 s, to the last at {:.1} s (flattered: they used the free first window too)",
            last_merged.as_secs_f64()
        );
    }
    println!(
        "  CRM calls per cluster: {calls_per_cluster:.3} ({} merges; the rest are shared batch reads and updates, and the property definitions)",
        size - 1
    );
    println!(
        "  jobs merged:           {} of {} planned ({} failed{}); sandbox merge log: {} merges",
        report.merged,
        report.planned,
        report.failed,
        if report.paused { ", paused" } else { "" },
        merges_logged
    );
    println!(
        "  CRM requests in apply: {} (connector stats; {} retries; connector calls: {})",
        thousands(requests),
        stats.retries - stats_before.retries,
        offsets.len()
    );
    for (kind, sizes) in recorded
        .batches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        println!("  {kind}: {} calls carrying {:?}", sizes.len(), sizes);
    }
    println!(
        "  wall time:             {:.1} s (first call returned at {:.1} s, after planning the jobs; mean job {:.2} s from start to merged)",
        wall.as_secs_f64(),
        first.as_secs_f64(),
        mean_job.as_secs_f64()
    );
    println!(
        "  average rate:          {:.1} requests per 10 s over the whole run (flattered by the free first window)",
        per_10s(requests as f64, wall)
    );
    match sustained {
        Some(rate) => println!(
            "  sustained rate:        {:.1} requests per 10 s = {:.1}% of the limit (mean rolling-window occupancy from 10 s to {:.1} s; ceiling 98%)",
            rate,
            rate / f64::from(LIMIT) * 100.0,
            last.as_secs_f64()
        ),
        None => println!(
            "  sustained rate:        n/a: the run ended within its first window; pass more clusters"
        ),
    }
    println!(
        "  busiest 10 s window:   {peak} calls returned (limit {LIMIT}; return instants trail the server's count by its processing time)"
    );
    println!(
        "  sandbox answers:       {} → {refused} × 429",
        common::format_counts(&statuses)
    );
    Ok(Summary {
        size,
        clusters: n_clusters,
        per_10s: clusters_per_10s,
        calls_per_cluster,
        sustained,
        refused,
    })
}
