//! The executor's shared batches fill up under the rate limit: while the merges of many jobs
//! queue in the connector's limiter, a batch read or batch update waits for its turn there and
//! only then takes the requests that queued meanwhile. Counted from the sandbox's own request
//! counts: 100 pairs applied at once cost their 100 merges and only a handful of other calls.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::harness::sandbox::FaultSpec;
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::ops::executor::{self, ExecOptions};

/// `n` pairs of duplicate contacts, as `planted_clusters` makes them but all of two.
fn pairs(n: usize) -> (SeedData, Vec<Planted>) {
    let mut seed = SeedData::default();
    let mut planted = Vec::new();
    for c in 0..n {
        let (a, b) = (2000 + 2 * c as u64, 2001 + 2 * c as u64);
        let email = format!("pair{c}@example.com");
        let erp = format!("ERP-{c}");
        let phone = format!("+1 555 02{c:04}");
        seed.contacts.push(contact(
            a,
            &[
                ("email", email.as_str()),
                ("firstname", "Bob"),
                ("lastname", "Tester"),
                ("erp_customer_id", erp.as_str()),
            ],
        ));
        seed.contacts.push(contact(
            b,
            &[
                ("email", email.as_str()),
                ("firstname", "Robert"),
                ("lastname", "Tester"),
                ("phone", phone.as_str()),
            ],
        ));
        planted.push(Planted {
            ids: vec![a.to_string(), b.to_string()],
            erp: vec![Some(erp), None],
        });
    }
    (seed, planted)
}

/// Every request the sandbox has answered so far (its admin count, which is not rate limited).
async fn sandbox_requests(base_url: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{base_url}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["requests"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_pairs_at_once_share_a_handful_of_batch_reads_and_updates() {
    const PAIRS: usize = 100;
    let (seed, planted) = pairs(PAIRS);
    let sandbox = start_sandbox(seed, generous(), FaultSpec::default()).await;
    let base = sandbox.base_url();
    let fast = connector(
        &base,
        100_000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), fast.as_ref()).await;
    approve_all(&store, &planted).await;

    // The apply's own budget is small (20 requests a second), so its 100 merges queue in the
    // limiter as they would behind HubSpot's 100 per 10 s, and the run takes about 5 s.
    let paced = connector(&base, 20, Duration::from_secs(1), Duration::from_secs(5));
    let before = sandbox_requests(&base).await;
    let opts = ExecOptions {
        concurrency: PAIRS,
        ..ExecOptions::default()
    };
    let report = executor::apply(&store, paced, &config(), opts, Arc::new(|_| {}))
        .await
        .unwrap();
    let requests = sandbox_requests(&base).await - before;
    assert_eq!(report.merged, PAIRS, "{report:?}");
    let merges = sandbox.merge_log().await.unwrap().len();
    assert_eq!(merges, PAIRS, "each pair merged once");

    // Besides the merges: the property definitions (one call), the batch reads of the
    // snapshots and the batch updates of the field choices. 100 pairs fit in 4 batch reads
    // (50 ids each with history) and one batch update; a few more go while the queue forms
    // and when it runs dry. Batches whose contents were fixed before they waited for their
    // turn carried a few jobs each: 20 to 40 reads and updates for these pairs.
    let others = requests - merges as u64;
    assert!(
        others <= 15,
        "{requests} requests for {PAIRS} pairs: {others} besides the merges (at most 15 expected: \
         the batches did not fill while the merges queued)"
    );
    sandbox.shutdown().await;
}
