//! Several processes on one workspace at once, the way a team works: a steward undoing while a
//! cron job applies, two `apply` processes, the matcher and bulk approval while merges run, a
//! CRM outage in the middle of a run. The sandbox CRM over real HTTP is the witness (its merge
//! log), and each process has a connection of its own to the one SQLite file.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use dupdesk::store::clusters::JobStatus;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::crm::{Connector, ReadOutcome};
use dupdesk::domain::model::ObjectType;
use dupdesk::harness::sandbox::{FaultSpec, Sandbox};
use dupdesk::ops::executor::{self, ExecOptions};
use dupdesk::store::decisions::{self, DecisionError};
use dupdesk::store::{Store, journal};

/// Every loser of every planted cluster in `merged` was merged exactly once, nothing else was
/// merged, and every job of those clusters is `merged` with the record the CRM now holds as
/// its survivor.
async fn merged_exactly_once(
    sandbox: &Sandbox,
    crm: &Arc<dyn Connector>,
    store: &Store,
    planted: &[Planted],
) {
    let log = sandbox.merge_log().await.unwrap();
    let mut by_loser: HashMap<String, usize> = HashMap::new();
    for e in &log {
        *by_loser.entry(e.object_id_to_merge.clone()).or_default() += 1;
    }
    let losers: usize = planted.iter().map(|p| p.ids.len() - 1).sum();
    assert_eq!(log.len(), losers, "merges in the CRM's log");
    for p in planted {
        for loser in &p.ids[1..] {
            assert_eq!(by_loser.get(loser).copied(), Some(1), "loser {loser}");
        }
    }
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    let by_primary: HashMap<String, journal::Job> = jobs
        .into_iter()
        .filter(|j| j.status != JobStatus::Cancelled)
        .map(|j| {
            let p = j.survivor_id.clone().unwrap_or_default();
            (p, j)
        })
        .collect();
    for p in planted {
        let now = match crm
            .read(ObjectType::Contacts, &p.ids[0], &[])
            .await
            .unwrap()
        {
            ReadOutcome::Live(r) | ReadOutcome::MergedInto(r) => r.id,
            ReadOutcome::Missing => panic!("{} is gone", p.ids[0]),
        };
        let job = by_primary
            .get(&now)
            .unwrap_or_else(|| panic!("no job names {now}, the record {:?} became", p.ids));
        assert_eq!(job.status, JobStatus::Merged, "{job:?}");
    }
    let statuses: BTreeSet<String> = store
        .call(|c| {
            let mut stmt = c.prepare("SELECT DISTINCT status FROM merge_jobs")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
        .unwrap();
    assert_eq!(statuses, BTreeSet::from(["merged".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undo_during_apply_is_either_done_and_never_merged_or_refused() {
    let (seed, planted) = planted_clusters(300);
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    let clusters = approve_all(&store, &planted).await;
    // The steward's review, in another process: a connection of its own.
    let review = Store::open(store.path()).unwrap();
    let apply = {
        let (store, crm) = (store.clone(), crm.clone());
        tokio::spawn(async move {
            executor::apply(&store, crm, &config(), quick_exec(4), Arc::new(|_| {})).await
        })
    };
    // Undo the newest approvals one after the other while apply plans from the oldest.
    let mut undone = BTreeSet::new();
    let mut refused = None;
    loop {
        match review
            .call_waiting(|c| decisions::undo_last(c, "tester"))
            .await
        {
            Ok(Some(u)) => {
                undone.insert(u.undone.cluster_id);
            }
            Ok(None) => break,
            Err(e) => {
                match e.downcast_ref::<DecisionError>() {
                    Some(DecisionError::UndoTooLate { cluster, .. }) => refused = Some(*cluster),
                    _ => panic!("undo failed: {e:#}"),
                }
                break;
            }
        }
    }
    let report = apply.await.unwrap().unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let log = sandbox.merge_log().await.unwrap();
    let merged_ids: BTreeSet<&str> = log
        .iter()
        .flat_map(|m| [m.primary_object_id.as_str(), m.object_id_to_merge.as_str()])
        .collect();
    for (p, cluster) in planted.iter().zip(&clusters) {
        let (status, jobs): (String, i64) = store
            .call({
                let cluster = *cluster;
                move |c| {
                    Ok(c.query_row(
                        "SELECT status, (SELECT COUNT(*) FROM merge_jobs WHERE cluster_id = ?1)
                         FROM clusters WHERE id = ?1",
                        [cluster],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?)
                }
            })
            .await
            .unwrap();
        if undone.contains(cluster) {
            // The undo was shown as done: nothing of the cluster reached the CRM.
            assert_eq!((status.as_str(), jobs), ("pending", 0), "cluster {cluster}");
            assert!(
                p.ids.iter().all(|id| !merged_ids.contains(id.as_str())),
                "undone cluster {cluster} was merged"
            );
        } else {
            assert_eq!(status, "merged", "cluster {cluster}");
        }
    }
    if let Some(c) = refused {
        assert!(!undone.contains(&c), "a refused undo is not done");
    }
    assert_eq!(
        report.merged + undone.len(),
        planted.len(),
        "{} undone, {report:?}",
        undone.len()
    );
    sandbox.shutdown().await;
}

/// Two `apply` processes on one workspace, with faults, started `apart` from each other.
async fn two_applies(apart: Duration) {
    let (seed, planted) = planted_clusters(300);
    let faults: FaultSpec =
        "500=0.02,timeout=0.01,timeout_ms=1500,drop_after_merge=0.05,burst429=0.005,burst_len=3,seed=17"
            .parse()
            .unwrap();
    let sandbox = start_sandbox(seed, generous(), faults).await;
    let crm = connector(
        &sandbox.base_url(),
        100_000,
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    approve_all(&store, &planted).await;
    let ws = store.path().to_path_buf();
    let url = sandbox.base_url();
    let first = apply_command(&ws, &url, dir.path()).spawn().unwrap();
    tokio::time::sleep(apart).await;
    let second = apply_command(&ws, &url, dir.path()).spawn().unwrap();
    for child in [first, second] {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    merged_exactly_once(&sandbox, &crm, &store, &planted).await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apply_processes_started_together_merge_each_cluster_once() {
    two_applies(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apply_processes_started_apart_merge_each_cluster_once() {
    two_applies(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn match_approve_and_decisions_wait_for_apply_and_none_is_refused_for_a_lock() {
    let (seed, planted) = planted_clusters(120);
    // A slow CRM keeps apply writing its journal for several seconds.
    let sandbox = start_sandbox(
        seed,
        dupdesk::harness::sandbox::RateLimit {
            max: 60,
            interval: Duration::from_secs(1),
            ..generous()
        },
        FaultSpec::default(),
    )
    .await;
    let crm = connector(
        &sandbox.base_url(),
        60,
        Duration::from_secs(1),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    let (approved, later) = planted.split_at(60);
    approve_all(&store, approved).await;
    let apply = {
        let (store, crm) = (store.clone(), crm.clone());
        tokio::spawn(async move {
            executor::apply(&store, crm, &config(), quick_exec(4), Arc::new(|_| {})).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile, each on a connection of its own as another process would be: a full match,
    // bulk approval, and a steward's decisions.
    let path = store.path().to_path_buf();
    let matcher = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let other = Store::open(&path).unwrap();
            let settings = config().matcher;
            let cfg = dupdesk::domain::matcher::MatchConfig::new(&settings, ObjectType::Contacts)
                .unwrap();
            dupdesk::ops::matching::run_match(
                &other,
                &cfg,
                dupdesk::ops::matching::MatchMode::Full,
                &|_| {},
            )
        })
    };
    let pending = pending_clusters(
        &Store::open(&path).unwrap(),
        later,
        &vec![0.999; later.len()],
    )
    .await;
    let bulk = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let other = Store::open(&path).unwrap();
            let config = config();
            let rules = dupdesk::domain::precedence::Rules::for_config(&config).unwrap();
            dupdesk::ops::approve::approve(
                &other,
                &config,
                &rules,
                dupdesk::ops::approve::Rule {
                    min_score: 0.99,
                    max_size: None,
                },
                false,
            )
        })
    };
    let review = Store::open(&path).unwrap();
    for cluster in &pending[..10] {
        let new = decisions::NewDecision {
            cluster_id: *cluster,
            steward: "ada".into(),
            verdict: decisions::Verdict::Defer,
            primary_id: None,
            field_choices: Default::default(),
            excluded: vec![],
            note: String::new(),
            seen: Default::default(),
            amends_job: None,
        };
        review
            .call_waiting(move |c| decisions::record(c, &new))
            .await
            .unwrap();
    }
    let matched = matcher.await.unwrap();
    assert!(matched.is_ok(), "match --full: {:#}", matched.unwrap_err());
    let bulk = bulk.await.unwrap();
    assert!(bulk.is_ok(), "approve: {:#}", bulk.unwrap_err());
    let report = apply.await.unwrap().unwrap();
    assert_eq!((report.merged, report.failed), (60, 0), "{report:?}");
    sandbox.shutdown().await;
}

/// An outage one and a half leases long, at a lease of 6 s: the same check as the 90 s
/// against the default 60 s lease (below), in a tenth of the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_outage_pauses_the_queue_and_every_job_finishes_when_it_is_back() {
    outage_longer_than_a_lease(Duration::from_secs(6), Duration::from_secs(9)).await;
}

/// The outage as long as the issue asks (90 s), longer than the default claim's lease (60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 90 s outage by nature: a step of its own in .ci/run"]
async fn a_90_second_crm_outage_at_the_default_lease_loses_no_claim() {
    outage_longer_than_a_lease(ExecOptions::default().lease, Duration::from_secs(90)).await;
}

/// Some merges in, the CRM goes away for `outage` (longer than `lease`): the jobs the outage
/// caught are back in the queue, unclaimed, saying why they wait; no claim is left lapsed (the
/// heartbeat renews the live ones); no job fails; every job finishes when the CRM is back.
async fn outage_longer_than_a_lease(lease: Duration, outage: Duration) {
    assert!(outage > lease);
    let (seed, planted) = planted_clusters(60);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sandbox.db");
    let start = |port: u16, seed: Option<dupdesk::harness::sandbox::seed::SeedData>| {
        dupdesk::harness::sandbox::start(dupdesk::harness::sandbox::SandboxOptions {
            port,
            data: Some(data.clone()),
            seed,
            rate_limit: dupdesk::harness::sandbox::RateLimit {
                max: 100,
                interval: Duration::from_secs(1),
                ..generous()
            },
            search_rate_limit: None,
            faults: FaultSpec::default(),
            token: Some(TOKEN.into()),
        })
    };
    let sandbox = start(0, Some(seed)).await.unwrap();
    let port: u16 = sandbox
        .base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let crm = connector(
        &sandbox.base_url(),
        100,
        Duration::from_secs(1),
        Duration::from_millis(500),
    );
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    approve_all(&store, &planted).await;
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let apply = {
        let (store, crm, seen) = (store.clone(), crm.clone(), events.clone());
        tokio::spawn(async move {
            executor::apply(
                &store,
                crm,
                &config(),
                ExecOptions {
                    probe_cap: Duration::from_secs(5),
                    lease,
                    ..quick_exec(4)
                },
                Arc::new(move |e| seen.lock().unwrap().push(e)),
            )
            .await
        })
    };
    // Some merges in, the CRM goes away for a while.
    loop {
        if sandbox.merge_log().await.unwrap().len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sandbox.shutdown().await;
    tokio::time::sleep(outage).await;
    let (waiting, lapsed) = store
        .call(|c| {
            let now = dupdesk::store::now_ts();
            Ok(c.query_row(
                "SELECT COUNT(*) FILTER (WHERE status = 'pending' AND owner IS NULL
                                           AND last_error IS NOT NULL),
                        COUNT(*) FILTER (WHERE status = 'running'
                                           AND (lease_until IS NULL OR lease_until < ?1))
                 FROM merge_jobs",
                [now],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert!(
        waiting > 0,
        "the jobs the outage caught wait in the queue, saying why"
    );
    assert_eq!(lapsed, 0, "no claim is left to lapse while the CRM is away");
    let failed_during = store
        .call(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM merge_jobs WHERE status = 'failed'",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(failed_during, 0, "an outage fails no job");
    let sandbox = start(port, None).await.unwrap();
    let report = apply.await.unwrap().unwrap();
    assert_eq!((report.merged, report.failed), (60, 0), "{report:?}");
    assert!(!report.paused);
    let said: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                executor::ExecEvent::CrmUnreachable { .. } | executor::ExecEvent::CrmBack
            )
        })
        .cloned()
        .collect();
    assert!(
        matches!(said.last(), Some(executor::ExecEvent::CrmBack)),
        "it said it waited and that the CRM came back: {said:?}"
    );
    merged_exactly_once(&sandbox, &crm, &store, &planted).await;
    sandbox.shutdown().await;
}
