//! The merge executor against the sandbox CRM over real HTTP, with faults: every approved merge
//! applied exactly once (the sandbox's merge log is the witness), field choices written to the
//! survivor, the id mapping superseded, failures visible and retryable.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use dupdesk::store::clusters::JobStatus;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::crm::ReadOutcome;
use dupdesk::domain::model::ObjectType;
use dupdesk::harness::sandbox::FaultSpec;
use dupdesk::ops::executor::{self, ExecOptions};
use dupdesk::store::journal;

/// Apply until nothing is left to do, retrying failed jobs, as a steward would.
async fn apply_until_done(store: &dupdesk::store::Store, crm: Arc<dyn dupdesk::crm::Connector>) {
    let config = config();
    for _round in 0..15 {
        let report = executor::apply(store, crm.clone(), &config, quick_exec(4), Arc::new(|_| {}))
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
        jobs.iter().all(|j| j.status == JobStatus::Merged),
        "{:?}",
        jobs.iter()
            .filter(|j| j.status != JobStatus::Merged)
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
async fn an_unreachable_crm_pauses_the_queue_and_a_member_gone_is_sent_back() {
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

    // The CRM is unreachable: no job fails (nothing is wrong with them); the queue waits and
    // probes, and after its patience this run stops, paused, with nothing merged.
    let down = connector(
        "http://127.0.0.1:9",
        1000,
        Duration::from_secs(10),
        Duration::from_millis(200),
    );
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let report = executor::apply(
        &store,
        down,
        &config(),
        ExecOptions {
            outage_patience: Duration::from_millis(600),
            ..quick_exec(4)
        },
        Arc::new(move |e| seen.lock().unwrap().push(e)),
    )
    .await
    .unwrap();
    assert_eq!((report.merged, report.failed, report.refused), (0, 0, 0));
    assert!(report.paused);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, executor::ExecEvent::CrmUnreachable { .. })),
        "it says the CRM does not answer"
    );
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
    assert_eq!(statuses(&store).await, ["merging:", "merging:", "merging:"]);
    let waiting = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert!(
        waiting.iter().all(|j| j.status == JobStatus::Pending),
        "{waiting:?}"
    );
    assert!(
        waiting[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("transient") && e.contains("Connection refused")),
        "the first job says why it waits: {waiting:?}"
    );
    assert!(sandbox.merge_log().await.unwrap().is_empty());

    // With the CRM back two merge and the third is refused: its member 99999 does not exist,
    // so nothing of it was sent.
    let report = executor::apply(
        &store,
        crm.clone(),
        &config(),
        quick_exec(4),
        Arc::new(|_| {}),
    )
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
    assert_eq!(jobs[2].status, JobStatus::Cancelled);
    // A cancelled job is never retried: a new approval of the cluster makes a new one.
    assert_eq!(
        store
            .call(|c| journal::retry_failed(c, None))
            .await
            .unwrap(),
        0
    );
    let report = executor::apply(&store, crm, &config(), quick_exec(4), Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(report, dupdesk::ops::executor::ExecReport::default());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_daily_limit_pauses_the_queue_instead_of_failing_jobs() {
    let (seed, planted) = planted_clusters(6);
    let limit = dupdesk::harness::sandbox::RateLimit {
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
        ..quick_exec(4)
    };
    let report = executor::apply(&store, crm, &config(), opts, Arc::new(|_| {}))
        .await
        .unwrap();
    assert!(report.paused, "{report:?}");
    assert_eq!(report.failed, 0, "a daily limit fails no job");
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    let paused: Vec<_> = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Paused)
        .collect();
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
    assert!(jobs.iter().any(|j| j.status == JobStatus::Pending));
    let runnable = store
        .call(|c| Ok(journal::runnable_jobs(c, None)?.len()))
        .await
        .unwrap();
    assert_eq!(
        runnable,
        jobs.iter()
            .filter(|j| j.status != JobStatus::Merged)
            .count()
    );
    sandbox.shutdown().await;
}

/// Approve one cluster as the review does, with members left out of the merge and the
/// steward's field choices.
async fn approve_excluding(
    store: &dupdesk::store::Store,
    members: &[&str],
    excluded: &[&str],
    choices: serde_json::Value,
) {
    let members: Vec<String> = members.iter().map(|s| s.to_string()).collect();
    let excluded: Vec<String> = excluded.iter().map(|s| s.to_string()).collect();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let now = dupdesk::store::now_ts();
            tx.execute(
                "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, status, created_at, updated_at)
                 VALUES ('contacts', ?1, 'test', 0.99, 0.95, ?2, 'Robert Tester', 'approved', ?3, ?3)",
                rusqlite::params![format!("fp-{}", members.join("-")), members.len() as i64, now],
            )?;
            let cluster = tx.last_insert_rowid();
            for id in &members {
                tx.execute(
                    "INSERT INTO cluster_members (cluster_id, rid) SELECT ?1, rid FROM records WHERE object_type = 'contacts' AND id = ?2",
                    rusqlite::params![cluster, id],
                )?;
            }
            tx.execute(
                "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id, field_choices, excluded, members)
                 VALUES (?1, 'tester', ?2, 'approve', ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    cluster,
                    now,
                    members[0],
                    choices.to_string(),
                    serde_json::to_string(&excluded)?,
                    serde_json::to_string(&members)?
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
        .unwrap();
}

/// Merges and ids shared across records: right after a merge, the conflict of an id that the
/// survivor shares with a record the steward left out names the survivor (not the merged-away
/// record), and the conflict of an id only the merged records shared is resolved. An approval
/// that takes a left-out record's ERP id is refused before any merge; when a record comes to
/// share a left-out record's ERP id in the CRM anyway, the next pull sees the two live records.
#[tokio::test]
async fn a_merge_keeps_shared_id_conflicts_right_for_the_records_it_left_out() {
    let mut seed = dupdesk::harness::sandbox::seed::SeedData::default();
    for (id, erp) in [
        // Kept sharing: 6003 is left out of the merge of 6001 and 6002.
        (6001, Some("ERP-500")),
        (6002, None),
        (6003, Some("ERP-500")),
        // Shared only inside the cluster: the merge ends it.
        (6011, Some("ERP-600")),
        (6012, Some("ERP-600")),
        // Unmapped records whose survivor is given the left-out 6023's ERP id.
        (6021, None),
        (6022, None),
        (6023, Some("ERP-1000122")),
    ] {
        let email = format!("p{id}@example.com");
        let mut props = vec![("email", email.as_str()), ("lastname", "Tester")];
        if let Some(e) = erp {
            props.push(("erp_customer_id", e));
        }
        seed.contacts.push(contact(id, &props));
    }
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    let conflicts = |store: &dupdesk::store::Store| {
        let store = store.clone();
        async move {
            store
                .call(|c| dupdesk::store::mapping::conflicts(c, true))
                .await
                .unwrap()
        }
    };
    let before = conflicts(&store).await;
    let on = |all: &[dupdesk::store::mapping::Conflict], erp: &str| {
        let mine: Vec<_> = all
            .iter()
            .filter(|c| c.target_ids == [erp.to_string()])
            .cloned()
            .collect();
        assert_eq!(mine.len(), 1, "one row for {erp}: {all:?}");
        mine[0].clone()
    };
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(on(&before, "ERP-500").source_ids, ["6001", "6003"]);

    approve_excluding(
        &store,
        &["6001", "6002", "6003"],
        &["6003"],
        serde_json::json!({}),
    )
    .await;
    approve_excluding(&store, &["6011", "6012"], &[], serde_json::json!({})).await;
    approve_excluding(
        &store,
        &["6021", "6022", "6023"],
        &["6023"],
        serde_json::json!({
            "erp_customer_id": {"value": "ERP-1000122", "record_id": "6023", "system": "erp", "reason": "erp owns billing"}
        }),
    )
    .await;
    let report = executor::apply(
        &store,
        crm.clone(),
        &config(),
        quick_exec(4),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.merged, report.failed, report.refused),
        (2, 0, 1),
        "{report:?}"
    );
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    let survivor = |job: usize| jobs[job].survivor_id.clone().unwrap();

    // Right after the merges, before any pull.
    let after = conflicts(&store).await;
    let kept = on(&after, "ERP-500");
    assert_eq!(kept.id, on(&before, "ERP-500").id, "the same row, updated");
    assert!(kept.is_open());
    let mut expected = vec![survivor(0), "6003".to_string()];
    expected.sort_by_key(|id| (id.len(), id.clone()));
    assert_eq!(kept.source_ids, expected);
    assert_eq!(kept.survivor_id, expected[0]);
    let ended = on(&after, "ERP-600");
    assert_eq!(
        ended.resolution.as_deref(),
        Some(dupdesk::store::mapping::NO_LONGER_SHARED)
    );
    assert_eq!(ended.source_ids, ["6011", "6012"]);
    let stats = store
        .call(|c| dupdesk::ops::stats::collect(c, dupdesk::ops::stats::Thresholds::default()))
        .await
        .unwrap();
    assert_eq!(stats.mapping_conflicts.get("shared_target"), Some(&1));

    // The third approval took 6023's ERP id although it excludes 6023: nothing of it was sent.
    assert_eq!(jobs[2].status, JobStatus::Cancelled);
    assert!(
        jobs[2]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("from record 6023, which it excludes")),
        "{:?}",
        jobs[2].last_error
    );
    // A colleague gives 6021 that ERP id in the CRM: the next pull sees two live records
    // sharing it.
    let change: BTreeMap<String, String> =
        [("erp_customer_id".to_string(), "ERP-1000122".to_string())].into();
    crm.update(ObjectType::Contacts, "6021", &change)
        .await
        .unwrap();
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let pulled = conflicts(&store).await;
    assert_eq!(pulled.len(), 3, "{pulled:?}");
    let taken = on(&pulled, "ERP-1000122");
    assert!(taken.is_open());
    assert_eq!(taken.source_ids, ["6021", "6023"]);
    // And the pull leaves the executor's conflict as it was.
    assert_eq!(on(&pulled, "ERP-500"), kept);
    sandbox.shutdown().await;
}

/// A connector whose property definitions still offer a lifecycle stage the portal has since
/// removed (the definitions were read before an admin changed them): the plan's checks pass,
/// and the CRM refuses the value when it is written. It notes the inputs of every batch update
/// and whether the CRM refused it.
struct StaleDefinitions {
    inner: Arc<dyn dupdesk::crm::Connector>,
    batches: std::sync::Mutex<Vec<(usize, bool)>>,
}

#[async_trait::async_trait]
impl dupdesk::crm::Connector for StaleDefinitions {
    fn system(&self) -> &str {
        self.inner.system()
    }
    /// The batches wait in the paced connector's limiter behind the merges, so the field
    /// updates of the jobs go together (the point of the test: the bad one goes with others).
    fn rate_limiter(&self) -> Option<Arc<dupdesk::crm::ratelimit::RateLimiter>> {
        self.inner.rate_limiter()
    }
    async fn list_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
        properties: &[String],
        history: &[String],
    ) -> Result<dupdesk::crm::Page, dupdesk::crm::CrmError> {
        self.inner
            .list_page(object, after, properties, history)
            .await
    }
    async fn modified_since_page(
        &self,
        object: ObjectType,
        since: &str,
        after: Option<&str>,
        properties: &[String],
    ) -> Result<dupdesk::crm::Page, dupdesk::crm::CrmError> {
        self.inner
            .modified_since_page(object, since, after, properties)
            .await
    }
    async fn batch_read(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        history: &[String],
    ) -> Result<dupdesk::crm::BatchRead, dupdesk::crm::CrmError> {
        self.inner
            .batch_read(object, ids, properties, history)
            .await
    }
    async fn read(
        &self,
        object: ObjectType,
        id: &str,
        properties: &[String],
    ) -> Result<ReadOutcome, dupdesk::crm::CrmError> {
        self.inner.read(object, id, properties).await
    }
    async fn update(
        &self,
        object: ObjectType,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<dupdesk::domain::model::Record, dupdesk::crm::CrmError> {
        self.inner.update(object, id, properties).await
    }
    async fn batch_update(
        &self,
        object: ObjectType,
        inputs: &[(String, BTreeMap<String, String>)],
    ) -> Result<dupdesk::crm::BatchUpdated, dupdesk::crm::CrmError> {
        let r = self.inner.batch_update(object, inputs).await;
        self.batches
            .lock()
            .unwrap()
            .push((inputs.len(), r.is_err()));
        r
    }
    async fn search_by_email(
        &self,
        email: &str,
        properties: &[String],
    ) -> Result<Vec<dupdesk::domain::model::Record>, dupdesk::crm::CrmError> {
        self.inner.search_by_email(email, properties).await
    }
    async fn merge(
        &self,
        object: ObjectType,
        primary: &str,
        loser: &str,
    ) -> Result<dupdesk::domain::model::Record, dupdesk::crm::CrmError> {
        self.inner.merge(object, primary, loser).await
    }
    async fn properties(
        &self,
        object: ObjectType,
    ) -> Result<Vec<dupdesk::domain::model::PropertyDef>, dupdesk::crm::CrmError> {
        let mut defs = self.inner.properties(object).await?;
        for d in defs.iter_mut().filter(|d| d.name == "lifecyclestage") {
            d.options.push(dupdesk::domain::model::PropertyOption {
                value: "vip".into(),
                label: "VIP".into(),
                hidden: false,
            });
        }
        Ok(defs)
    }
    async fn search_equal(
        &self,
        object: ObjectType,
        property: &str,
        value: &str,
        properties: &[String],
    ) -> Result<Vec<dupdesk::domain::model::Record>, dupdesk::crm::CrmError> {
        self.inner
            .search_equal(object, property, value, properties)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_update_refused_for_one_job_completes_the_others() {
    let (seed, planted) = planted_clusters(12);
    let sandbox = start_sandbox(seed, generous(), FaultSpec::default()).await;
    let http = connector(
        &sandbox.base_url(),
        100_000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    // A slow budget for apply (4 calls a second): the field updates wait behind the merges, so
    // they go together.
    let paced = connector(
        &sandbox.base_url(),
        4,
        Duration::from_secs(1),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), http.as_ref()).await;
    let crm = Arc::new(StaleDefinitions {
        inner: paced,
        batches: std::sync::Mutex::new(Vec::new()),
    });
    let clusters = approve_all(&store, &planted).await;
    // The fifth cluster's steward chose again, a stage the portal no longer has: the newest
    // approval is the one that counts.
    let bad = clusters[4];
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id, field_choices, members)
                 SELECT cluster_id, steward, decided_at, action, primary_id,
                        json_set(field_choices, '$.lifecyclestage',
                            json('{\"value\":\"vip\",\"record_id\":null,\"system\":null,\"reason\":\"typed\"}')),
                        members
                 FROM decisions WHERE cluster_id = ?1",
                [bad],
            )?;
            Ok(())
        })
        .await
        .unwrap();

    let opts = ExecOptions {
        concurrency: 20,
        ..quick_exec(4)
    };
    let report = executor::apply(&store, crm.clone(), &config(), opts, Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(report.merged, planted.len() - 1, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");

    let batches = crm.batches.lock().unwrap().clone();
    assert!(
        batches.iter().any(|(n, refused)| *n > 1 && *refused),
        "the bad input went in a batch with others, which the CRM refused whole: {batches:?}"
    );
    assert!(
        batches.iter().any(|(n, refused)| *n == 1 && *refused),
        "the bad input was found alone: {batches:?}"
    );

    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    for (job, p) in jobs.iter().zip(&planted) {
        let survivor = job.survivor_id.clone().unwrap();
        let ReadOutcome::Live(r) = http
            .read(ObjectType::Contacts, &survivor, &["jobtitle".to_string()])
            .await
            .unwrap()
        else {
            panic!("survivor {survivor} of {:?} is not live", p.ids);
        };
        if job.cluster_id == bad {
            assert_eq!(job.status, JobStatus::Failed);
            let error = job.last_error.clone().unwrap();
            assert!(
                error.contains("INVALID_OPTION") && error.contains("lifecyclestage"),
                "the job says what the CRM refused: {error}"
            );
            assert!(error.contains("amend"), "and what to do: {error}");
            assert_ne!(
                r.properties.get("jobtitle").cloned().flatten().as_deref(),
                Some("Steward's pick"),
                "nothing of the refused update was written"
            );
        } else {
            assert_eq!(
                job.status,
                JobStatus::Merged,
                "job {}: {:?}",
                job.id,
                job.last_error
            );
            assert_eq!(
                r.properties.get("jobtitle").cloned().flatten().as_deref(),
                Some("Steward's pick"),
                "survivor {survivor} holds the approved value"
            );
        }
    }
    // Every loser merged once, the refused job's included (its merges ran before the update).
    let losers: usize = planted.iter().map(|p| p.ids.len() - 1).sum();
    assert_eq!(sandbox.merge_log().await.unwrap().len(), losers);
    sandbox.shutdown().await;
}
