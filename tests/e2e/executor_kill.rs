//! Crash safety of the executor: the real `dupdesk apply` process is killed (SIGKILL) at random
//! points ten times while it merges, many of them while a merge was sent and its answer not yet
//! recorded; after a final uninterrupted run every approved merge is applied exactly once (the
//! sandbox's merge log is the witness) and every job is merged.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use dupdesk::store::clusters::JobStatus;
use std::collections::HashMap;

use std::time::Duration;

use common::*;
use dupdesk::harness::sandbox::FaultSpec;
use dupdesk::store::journal;
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_apply_ten_times_never_merges_twice_nor_loses_a_merge() {
    let (seed, planted) = planted_clusters(60);
    // A third of the merges are applied but never answered: the client waits for its timeout
    // with the merge sent and unrecorded, which is where most kills land.
    let faults: FaultSpec = "drop_after_merge=0.3,500=0.03,seed=5".parse().unwrap();
    let sandbox = start_sandbox(seed, generous(), faults).await;
    let dir = tempfile::tempdir().unwrap();
    let crm = connector(
        &sandbox.base_url(),
        100_000,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    approve_all(&store, &planted).await;
    let ws = store.path().to_path_buf();
    drop(store);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut kills_with_a_sent_step = 0;
    for _ in 0..10 {
        let mut child = apply_command(&ws, &sandbox.base_url(), dir.path())
            .spawn()
            .unwrap();
        let wait = rng.random_range(150..1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let store = dupdesk::store::Store::open(&ws).unwrap();
        let sent: i64 = store
            .call(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM merge_steps WHERE state = 'sent'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        if sent > 0 {
            kills_with_a_sent_step += 1;
        }
    }
    assert!(
        kills_with_a_sent_step >= 1,
        "no kill landed between a merge's send and its recorded result"
    );

    // Resume until done.
    for _ in 0..5 {
        let out = apply_command(&ws, &sandbox.base_url(), dir.path())
            .arg("--retry-failed")
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
    }

    let log = sandbox.merge_log().await.unwrap();
    let mut by_loser: HashMap<&str, usize> = HashMap::new();
    for e in &log {
        *by_loser.entry(e.object_id_to_merge.as_str()).or_default() += 1;
    }
    let losers: usize = planted.iter().map(|p| p.ids.len() - 1).sum();
    assert_eq!(log.len(), losers);
    for p in &planted {
        for loser in &p.ids[1..] {
            assert_eq!(by_loser.get(loser.as_str()), Some(&1), "loser {loser}");
        }
    }
    let store = dupdesk::store::Store::open(&ws).unwrap();
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert_eq!(jobs.len(), planted.len());
    assert!(jobs.iter().all(|j| j.status == JobStatus::Merged));
    sandbox.shutdown().await;
}

/// How many steps of each kind are `sent`: sent, and their answer not recorded.
async fn sent_steps(store: &dupdesk::store::Store) -> HashMap<String, i64> {
    store
        .call(|c| {
            let mut stmt = c.prepare(
                "SELECT kind, COUNT(*) FROM merge_steps WHERE state = 'sent' GROUP BY kind",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
        .unwrap()
}

/// The snapshots and field updates of many jobs go out together in batches. The real binary is
/// killed while such batches are out (a batch read of members, a batch update of survivors,
/// each held up by the sandbox now and then), then `apply` runs again: no merge is sent twice,
/// every job is merged, and every survivor holds the values the steward approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_apply_during_batched_snapshots_and_updates_merges_nothing_twice() {
    let (seed, planted) = planted_clusters(90);
    // Requests held for 600 ms (answered within the client's 1 s timeout) keep batches out
    // long enough for the kills to land in them; some merges are applied and never answered.
    let faults: FaultSpec = "timeout=0.25,timeout_ms=600,drop_after_merge=0.15,seed=9"
        .parse()
        .unwrap();
    let sandbox = start_sandbox(seed, generous(), faults).await;
    let dir = tempfile::tempdir().unwrap();
    let crm = connector(
        &sandbox.base_url(),
        100_000,
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    approve_all(&store, &planted).await;
    let ws = store.path().to_path_buf();
    drop(store);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills_in = HashMap::<String, usize>::new();
    for round in 0..12 {
        let mut child = apply_command(&ws, &sandbox.base_url(), dir.path())
            .spawn()
            .unwrap();
        // The first kills come early, while the snapshots are out.
        let wait = if round < 3 {
            rng.random_range(80..400)
        } else {
            rng.random_range(150..1500)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let store = dupdesk::store::Store::open(&ws).unwrap();
        for (kind, n) in sent_steps(&store).await {
            if n > 1 || kind == "merge" {
                *kills_in.entry(kind).or_default() += 1;
            }
        }
    }
    for kind in ["snapshot", "update"] {
        assert!(
            kills_in.get(kind).copied().unwrap_or(0) >= 1,
            "no kill landed while a batch of {kind} steps was out: {kills_in:?}"
        );
    }

    for _ in 0..5 {
        let out = apply_command(&ws, &sandbox.base_url(), dir.path())
            .arg("--retry-failed")
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
    }

    let log = sandbox.merge_log().await.unwrap();
    let mut by_loser: HashMap<&str, usize> = HashMap::new();
    for e in &log {
        *by_loser.entry(e.object_id_to_merge.as_str()).or_default() += 1;
    }
    let losers: usize = planted.iter().map(|p| p.ids.len() - 1).sum();
    assert_eq!(log.len(), losers);
    for p in &planted {
        for loser in &p.ids[1..] {
            assert_eq!(by_loser.get(loser.as_str()), Some(&1), "loser {loser}");
        }
    }
    let store = dupdesk::store::Store::open(&ws).unwrap();
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert_eq!(jobs.len(), planted.len());
    let survivors: Vec<String> = jobs
        .iter()
        .map(|j| {
            assert_eq!(
                j.status,
                JobStatus::Merged,
                "job {}: {:?}",
                j.id,
                j.last_error
            );
            j.survivor_id.clone().unwrap()
        })
        .collect();
    let read = crm
        .batch_read(
            dupdesk::domain::model::ObjectType::Contacts,
            &survivors,
            &["firstname".to_string(), "jobtitle".to_string()],
            &[],
        )
        .await
        .unwrap();
    assert!(read.missing.is_empty(), "{:?}", read.missing);
    for id in &survivors {
        let r = read.found.iter().find(|r| r.id == *id).unwrap();
        let value = |p: &str| r.properties.get(p).cloned().flatten();
        assert_eq!(
            value("firstname").as_deref(),
            Some("Robert"),
            "survivor {id}"
        );
        assert_eq!(
            value("jobtitle").as_deref(),
            Some("Steward's pick"),
            "survivor {id}"
        );
    }
    sandbox.shutdown().await;
}
