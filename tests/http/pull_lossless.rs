//! A pull that never loses a change, over real HTTP against the sandbox into real workspace
//! files: incremental pulls of more than HubSpot's 10,000 search results read everything with
//! history in batches HubSpot accepts; edits made while a pull runs, behind a lagging search
//! index, are all in the workspace after the next pull; a block of records sharing one
//! last-modified time is read once, and a pull with nothing changed costs a handful of
//! requests; records archived in the CRM leave the review queue and are never merged.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use dupdesk::config::Config;
use dupdesk::crm::Connector;
use dupdesk::domain::model::{ObjectType, Record, parse_ts};
use dupdesk::harness::sandbox::FaultSpec;
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::ops::executor::{self, ExecOptions};
use dupdesk::store::queue::{self, QueueQuery, StatusFilter};
use dupdesk::store::{Store, records};

const C: ObjectType = ObjectType::Contacts;

fn at(ts: &str) -> DateTime<Utc> {
    parse_ts(ts).unwrap()
}

/// `n` contacts from id 1, contact `i` last modified at `modified(i)`.
fn contacts(n: u64, modified: impl Fn(u64) -> DateTime<Utc>) -> SeedData {
    let mut seed = SeedData::default();
    for i in 1..=n {
        let email = format!("person{i}@example.com");
        let mut r: Record = contact(i, &[("email", &email), ("firstname", "Ann")]);
        r.updated_at = Some(modified(i));
        seed.contacts.push(r);
    }
    seed
}

/// A workspace whose last pull of contacts (and companies) ended at `watermark`, as if it had
/// pulled everything before: the next pull is incremental.
async fn workspace_at(dir: &std::path::Path, watermark: &str) -> Store {
    let store = Store::open(dir.join("ws.db")).unwrap();
    let watermark = watermark.to_string();
    store
        .call(move |c| {
            for object in ["contacts", "companies"] {
                c.execute(
                    "INSERT INTO sync_state (source, object_type, watermark, last_run_at)
                     VALUES ('crm', ?1, ?2, ?2)",
                    rusqlite::params![object, watermark],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    store
}

/// Requests the sandbox answered so far, by status.
async fn sandbox_stats(base_url: &str) -> serde_json::Value {
    reqwest::get(format!("{base_url}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn requests(base_url: &str) -> u64 {
    sandbox_stats(base_url).await["requests"].as_u64().unwrap()
}

fn with_lookback(seconds: u64) -> Config {
    let mut cfg = config();
    cfg.pull.lookback_seconds = seconds;
    cfg
}

fn fast_connector(base_url: &str) -> Arc<dyn Connector> {
    connector(
        base_url,
        100_000,
        Duration::from_secs(10),
        Duration::from_secs(10),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pull_of_12000_changes_reads_them_all_with_history() {
    let base = at("2026-02-01T00:00:00.000Z");
    // Changes 100 ms apart, so search must page past its 10,000-result window.
    let seed = contacts(12_000, |i| {
        base + chrono::Duration::milliseconds(100 * i as i64)
    });
    let sandbox = start_sandbox(seed, generous(), FaultSpec::default()).await;
    let crm = fast_connector(&sandbox.base_url());
    let dir = tempfile::tempdir().unwrap();
    let store = workspace_at(dir.path(), "2026-01-31T00:00:00.000Z").await;

    let report = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let c = &report.objects[&C];
    assert!(c.incremental);
    assert_eq!(
        (c.fetched, c.stats.inserted),
        (12_000, 12_000),
        "every change read once: {c:?}"
    );
    let live = store.call(|c| records::live_records(c, C)).await.unwrap();
    assert_eq!(live.len(), 12_000);
    assert!(
        live.iter()
            .all(|r| r.record.history.get("email").is_some_and(|h| !h.is_empty())),
        "every record read with its history"
    );
    let stats = sandbox_stats(&sandbox.base_url()).await;
    assert!(
        stats["by_status"].get("400").is_none(),
        "no request was refused: {stats}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_sharing_one_timestamp_is_read_once_and_a_quiet_pull_costs_a_handful_of_requests() {
    // A mass update: 10,300 contacts with one last-modified time, more than search's window.
    let instant = at("2026-02-01T00:00:00.000Z");
    let sandbox = start_sandbox(
        contacts(10_300, |_| instant),
        generous(),
        FaultSpec::default(),
    )
    .await;
    let crm = fast_connector(&sandbox.base_url());
    let dir = tempfile::tempdir().unwrap();
    let store = workspace_at(dir.path(), "2026-01-31T00:00:00.000Z").await;

    let first = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let c = &first.objects[&C];
    assert_eq!(
        (c.fetched, c.stats.inserted),
        (10_300, 10_300),
        "the block is read once: {c:?}"
    );

    let before = requests(&sandbox.base_url()).await;
    let second = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let spent = requests(&sandbox.base_url()).await - before;
    let c = &second.objects[&C];
    assert_eq!(c.fetched, 0, "nothing read again: {c:?}");
    // Per object type: one search, one page of the archived list, the property definitions.
    assert!(
        spent <= 6,
        "a pull with nothing changed made {spent} requests"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_made_during_a_pull_behind_a_lagging_index_are_all_there_after_the_next_pull() {
    const LAG_MS: u64 = 1_500;
    let seed = contacts(1_500, |_| at("2026-01-05T10:00:00.000Z"));
    let faults: FaultSpec = format!("search_lag_ms={LAG_MS}").parse().unwrap();
    let sandbox = start_sandbox(seed, generous(), faults).await;
    let crm = fast_connector(&sandbox.base_url());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("ws.db")).unwrap();
    // A look-back longer than the index lag.
    let cfg = with_lookback(3);
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &cfg, &|_| {})
        .await
        .unwrap();

    // Someone edits contacts all the time: before the pull (edits the index does not show yet
    // when it starts) and while it pages through them.
    let editing = Arc::new(AtomicBool::new(true));
    let editor = {
        let (crm, editing) = (fast_connector(&sandbox.base_url()), editing.clone());
        tokio::spawn(async move {
            let mut k: u64 = 0;
            while editing.load(Ordering::Relaxed) {
                k += 1;
                // Mostly fresh records, and now and then one edited before (it moves to the end).
                let id = if k.is_multiple_of(5) { k / 5 } else { k } % 1_500 + 1;
                let props = BTreeMap::from([("jobtitle".to_string(), format!("edit {k}"))]);
                crm.update(C, &id.to_string(), &props).await.unwrap();
            }
            k
        })
    };
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &cfg, &|_| {})
        .await
        .unwrap();
    editing.store(false, Ordering::Relaxed);
    let edits = editor.await.unwrap();
    assert!(edits > 100, "only {edits} edits");
    // The next pull, once the index has caught up.
    tokio::time::sleep(Duration::from_millis(LAG_MS + 200)).await;
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &cfg, &|_| {})
        .await
        .unwrap();

    let mut truth: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = crm
            .list_page(C, after.as_deref(), &["jobtitle".to_string()], &[])
            .await
            .unwrap();
        for r in page.records {
            truth.insert(r.id.clone(), r.get("jobtitle").map(str::to_string));
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let held = store.call(|c| records::live_records(c, C)).await.unwrap();
    assert_eq!(held.len(), truth.len());
    let lost: Vec<String> = held
        .iter()
        .filter(|r| truth.get(&r.record.id) != Some(&r.record.get("jobtitle").map(str::to_string)))
        .map(|r| r.record.id.clone())
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {edits} edits lost, e.g. contacts {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    sandbox.shutdown().await;
}

async fn archive(base_url: &str, id: &str) {
    let resp = reqwest::Client::new()
        .delete(format!("{base_url}/crm/v3/objects/contacts/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NO_CONTENT);
}

async fn open_queue(store: &Store) -> Vec<i64> {
    store
        .call(|c| {
            queue::page(
                c,
                &QueueQuery {
                    status: StatusFilter::Open,
                    limit: 100,
                    ..QueueQuery::default()
                },
            )
        })
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| r.id)
        .collect()
}

async fn cluster_status(store: &Store, id: i64) -> Option<String> {
    store
        .call(move |c| {
            Ok(
                c.query_row("SELECT status FROM clusters WHERE id = ?1", [id], |r| {
                    r.get::<_, String>(0)
                })
                .ok(),
            )
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_record_leaves_the_queue_and_its_approved_cluster_is_not_merged() {
    let (seed, planted) = planted_clusters(6);
    let f = fixture(seed).await;
    let url = f.sandbox.base_url();
    let pending = pending_clusters(&f.store, &planted[0..3], &[0.9, 0.9, 0.9]).await;
    // The third one was deferred by a steward: a decision refers to it.
    let deferred = pending[2];
    f.store
        .call(move |c| {
            c.execute(
                "INSERT INTO decisions (cluster_id, steward, decided_at, action, members)
                 VALUES (?1, 'tester', ?2, 'defer', '[]')",
                rusqlite::params![deferred, dupdesk::store::now_ts()],
            )?;
            c.execute(
                "UPDATE clusters SET status = 'deferred' WHERE id = ?1",
                [deferred],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let approved = approve_all(&f.store, &planted[3..5]).await;
    assert_eq!(open_queue(&f.store).await.len(), 3);

    archive(&url, &planted[0].ids[0]).await;
    archive(&url, &planted[2].ids[1]).await;
    archive(&url, &planted[3].ids[1]).await;
    let report = dupdesk::ops::sync::pull(&f.store, f.crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let c = &report.objects[&C];
    assert_eq!((c.archived, c.clusters_dissolved), (3, 2), "{c:?}");
    let gone = planted[0].ids[0].clone();
    let rec = f
        .store
        .call(move |c| records::get_record(c, C, &gone))
        .await
        .unwrap()
        .unwrap();
    assert!(rec.record.archived);
    // The pending cluster with an archived member is gone, the deferred one dissolved (kept
    // for its decision, out of the queue); the untouched one stays.
    assert_eq!(open_queue(&f.store).await, vec![pending[1]]);
    assert_eq!(cluster_status(&f.store, pending[0]).await, None);
    assert_eq!(
        cluster_status(&f.store, deferred).await.as_deref(),
        Some("stale")
    );
    // A pull with nothing new archives nothing twice.
    let again = dupdesk::ops::sync::pull(&f.store, f.crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.objects[&C].archived, 0);

    // An approved cluster with a member archived after the last pull: the executor's re-read
    // finds it missing and merges nothing, like the one whose archiving the pull saw.
    archive(&url, &planted[4].ids[0]).await;
    let opts = ExecOptions {
        retry_base: Duration::from_millis(20),
        ..ExecOptions::default()
    };
    let done = executor::apply(&f.store, f.crm.clone(), &config(), opts, Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!((done.merged, done.refused), (0, 2), "{done:?}");
    assert!(f.sandbox.merge_log().await.unwrap().is_empty());
    // Sent back with the reason, then dissolved by the next pull: out of the queue.
    let again = dupdesk::ops::sync::pull(&f.store, f.crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.objects[&C].clusters_dissolved, 2, "{again:?}");
    assert_eq!(open_queue(&f.store).await, vec![pending[1]]);
    for id in approved {
        let status = cluster_status(&f.store, id).await;
        assert_eq!(status.as_deref(), Some("stale"), "cluster {id}");
    }
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_history_read_of_more_than_50_is_refused_with_hubspots_body() {
    let sandbox = start_sandbox(
        contacts(60, |_| at("2026-01-05T10:00:00.000Z")),
        generous(),
        FaultSpec::default(),
    )
    .await;
    let inputs: Vec<serde_json::Value> = (1..=51)
        .map(|i| serde_json::json!({"id": i.to_string()}))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/read",
            sandbox.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "inputs": inputs, "properties": ["email"], "propertiesWithHistory": ["email"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(
        body["message"],
        "The maximum number of inputs supported in a batch request for property histories is 50. Please reduce the number of items and try again"
    );
    assert!(
        body["correlationId"]
            .as_str()
            .is_some_and(|s| s.len() == 36)
    );
    // The connector splits such a read into calls HubSpot accepts.
    let crm = fast_connector(&sandbox.base_url());
    let ids: Vec<String> = (1..=60).map(|i| i.to_string()).collect();
    let email = vec!["email".to_string()];
    let read = crm.batch_read(C, &ids, &email, &email).await.unwrap();
    assert_eq!(read.found.len(), 60);
    assert!(read.found.iter().all(|r| !r.history.is_empty()));
    sandbox.shutdown().await;
}
