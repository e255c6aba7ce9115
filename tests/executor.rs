//! The merge executor against the sandbox CRM over real HTTP, with faults: every approved merge
//! applied exactly once (the sandbox's merge log is the witness), field choices written to the
//! survivor, the id mapping superseded, failures visible and retryable.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::crm::ReadOutcome;
use dupdesk::executor::{self, ExecOptions};
use dupdesk::model::ObjectType;
use dupdesk::sandbox::FaultSpec;
use dupdesk::store::journal;

fn quick() -> ExecOptions {
    ExecOptions {
        concurrency: 4,
        retry_base: Duration::from_millis(20),
        ..ExecOptions::default()
    }
}

/// Apply until nothing is left to do, retrying failed jobs, as a steward would.
async fn apply_until_done(store: &dupdesk::store::Store, crm: Arc<dyn dupdesk::crm::Connector>) {
    let config = config();
    for _round in 0..15 {
        let report = executor::apply(store, crm.clone(), &config, quick(), Arc::new(|_| {}))
            .await
            .unwrap();
        if report.failed == 0 && !report.paused {
            let left = store
                .call(|c| Ok(journal::runnable_jobs(c, None)?.len()))
                .await
                .unwrap();
            if left == 0 {
                return;
            }
        }
        store
            .call(|c| journal::retry_failed(c, None))
            .await
            .unwrap();
    }
    panic!("merge jobs still unfinished after 15 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clusters_merge_exactly_once_under_faults() {
    let (seed, planted) = planted_clusters(200);
    // The faults hit the pull as well; the connector retries its reads through them.
    let faults: FaultSpec = "500=0.05,timeout=0.02,timeout_ms=700,drop_after_merge=0.08,burst429=0.005,burst_len=3,retry_after=1,seed=11"
        .parse()
        .unwrap();
    let sandbox = start_sandbox(seed, generous(), faults).await;
    let crm = connector(
        &sandbox.base_url(),
        100_000,
        Duration::from_secs(10),
        Duration::from_millis(250),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    let clusters = approve_all(&store, &planted).await;
    assert_eq!(clusters.len(), 200);

    apply_until_done(&store, crm.clone()).await;

    // The witness: each loser merged exactly once, and nothing else merged.
    let log = sandbox.merge_log().await.unwrap();
    let losers: usize = planted.iter().map(|p| p.ids.len() - 1).sum();
    assert_eq!(
        log.len(),
        losers,
        "merges applied: {}, expected {losers}",
        log.len()
    );
    let mut by_loser: HashMap<&str, usize> = HashMap::new();
    for e in &log {
        *by_loser.entry(e.object_id_to_merge.as_str()).or_default() += 1;
    }
    for p in &planted {
        for loser in &p.ids[1..] {
            assert_eq!(
                by_loser.get(loser.as_str()),
                Some(&1),
                "loser {loser} merged {:?} times",
                by_loser.get(loser.as_str())
            );
        }
    }

    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert_eq!(jobs.len(), 200);
    assert!(
        jobs.iter().all(|j| j.status == "merged"),
        "{:?}",
        jobs.iter()
            .filter(|j| j.status != "merged")
            .collect::<Vec<_>>()
    );

    // Survivors carry the steward's choices, and every old id reads back as the survivor.
    let fields = vec![
        "firstname".to_string(),
        "jobtitle".to_string(),
        "erp_customer_id".to_string(),
    ];
    for (p, job) in planted.iter().zip(&jobs).take(30) {
        let survivor = job.survivor_id.clone().unwrap();
        for old in &p.ids {
            match crm.read(ObjectType::Contacts, old, &fields).await.unwrap() {
                ReadOutcome::MergedInto(r) => {
                    assert_eq!(r.id, survivor);
                    assert_eq!(r.get("firstname"), Some("Robert"));
                    assert_eq!(r.get("jobtitle"), Some("Steward's pick"));
                }
                other => panic!("{old} should read as merged into {survivor}: {other:?}"),
            }
        }
    }

    // The mapping table: one active row per survivor where the members agreed on an ERP id,
    // a recorded conflict where they did not, no active row for a merged-away id.
    let (active, conflicts) = store
        .call(|c| {
            Ok((
                dupdesk::store::mapping::active_rows(c, ObjectType::Contacts)?,
                c.query_row("SELECT COUNT(*) FROM mapping_conflicts", [], |r| {
                    r.get::<_, i64>(0)
                })?,
            ))
        })
        .await
        .unwrap();
    let active_by_source: BTreeMap<&str, &str> = active
        .iter()
        .map(|r| (r.source_id.as_str(), r.target_id.as_str()))
        .collect();
    let mut expected_conflicts = 0;
    for (p, job) in planted.iter().zip(&jobs) {
        let survivor = job.survivor_id.as_deref().unwrap();
        for old in &p.ids {
            assert!(
                !active_by_source.contains_key(old.as_str()),
                "{old} still mapped"
            );
        }
        let distinct: std::collections::BTreeSet<_> = p.erp.iter().flatten().collect();
        if distinct.len() == 1 {
            assert_eq!(
                active_by_source.get(survivor).copied(),
                distinct.first().map(|s| s.as_str())
            );
        } else {
            expected_conflicts += 1;
            assert!(!active_by_source.contains_key(survivor));
        }
    }
    assert_eq!(conflicts, expected_conflicts);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_is_visible_and_retryable_and_dry_run_sends_nothing() {
    let (seed, planted) = planted_clusters(3);
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    // A record the workspace knows but the CRM does not: its cluster is not what the steward
    // approved any more. It goes back to the queue as stale, before anything is sent.
    let mut broken = planted.clone();
    store
        .call(|c| {
            let rec = common::contact(99_999, &[("email", "ghost@example.com")]);
            dupdesk::store::records::upsert_records(c, "crm", &[rec], "t")?;
            Ok(())
        })
        .await
        .unwrap();
    broken[2].ids.push("99999".into());
    approve_all(&store, &broken).await;

    let lines = executor::dry_run(&store, None).await.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/crm/v3/objects/contacts/merge")),
        "{lines:?}"
    );
    assert!(sandbox.merge_log().await.unwrap().is_empty());

    // The CRM is unreachable: every job fails at its first step, visibly, and nothing merges.
    let down = connector(
        "http://127.0.0.1:9",
        1000,
        Duration::from_secs(10),
        Duration::from_millis(200),
    );
    let report = executor::apply(&store, down, &config(), quick(), Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!((report.merged, report.failed, report.refused), (0, 3, 0));
    let statuses = |store: &dupdesk::store::Store| {
        let store = store.clone();
        async move {
            store
                .call(|c| {
                    let mut stmt =
                        c.prepare("SELECT status || ':' || COALESCE(status_reason, '') FROM clusters ORDER BY id")?;
                    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(statuses(&store).await, ["failed:", "failed:", "failed:"]);
    let failed = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert!(
        failed.iter().all(|j| j.status == "failed"
            && j.last_error
                .as_deref()
                .is_some_and(|e| e.contains("transient"))),
        "{failed:?}"
    );
    assert!(sandbox.merge_log().await.unwrap().is_empty());

    // Retrying queues them again; with the CRM back two merge and the third is refused: its
    // member 99999 does not exist, so nothing of it was sent.
    let n = store
        .call(|c| journal::retry_failed(c, None))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let report = executor::apply(&store, crm.clone(), &config(), quick(), Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!((report.merged, report.failed, report.refused), (2, 0, 1));
    let after = statuses(&store).await;
    assert_eq!(&after[..2], ["merged:", "merged:"]);
    assert_eq!(
        after[2], "stale:record 99999 no longer exists in the CRM",
        "the steward sees why"
    );
    assert_eq!(
        sandbox.merge_log().await.unwrap().len(),
        3,
        "cluster 1 (three records) and 2 merged, 3 not"
    );
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert_eq!(jobs[2].status, "cancelled");
    // A cancelled job is never retried: a new approval of the cluster makes a new one.
    assert_eq!(
        store
            .call(|c| journal::retry_failed(c, None))
            .await
            .unwrap(),
        0
    );
    let report = executor::apply(&store, crm, &config(), quick(), Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(report, dupdesk::executor::ExecReport::default());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_daily_limit_pauses_the_queue_instead_of_failing_jobs() {
    let (seed, planted) = planted_clusters(6);
    let limit = dupdesk::sandbox::RateLimit {
        max: 1000,
        interval: Duration::from_secs(10),
        daily: 12,
    };
    let sandbox = start_sandbox(seed, limit, FaultSpec::default()).await;
    let crm = connector(
        &sandbox.base_url(),
        1000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    approve_all(&store, &planted).await;
    let opts = ExecOptions {
        concurrency: 1,
        ..quick()
    };
    let report = executor::apply(&store, crm, &config(), opts, Arc::new(|_| {}))
        .await
        .unwrap();
    assert!(report.paused, "{report:?}");
    assert_eq!(report.failed, 0, "a daily limit fails no job");
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    let paused: Vec<_> = jobs.iter().filter(|j| j.status == "paused").collect();
    assert_eq!(paused.len(), 1, "{jobs:?}");
    assert!(
        paused[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("DAILY"),
        "{:?}",
        paused[0]
    );
    // The jobs after it were not started: they wait for the next apply.
    assert!(jobs.iter().any(|j| j.status == "pending"));
    let runnable = store
        .call(|c| Ok(journal::runnable_jobs(c, None)?.len()))
        .await
        .unwrap();
    assert_eq!(
        runnable,
        jobs.iter().filter(|j| j.status != "merged").count()
    );
    sandbox.shutdown().await;
}
