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
use std::collections::BTreeMap;

use dupdesk::crm::{BatchRead, BatchUpdated, Connector, CrmError, Page, ReadOutcome};
use dupdesk::domain::model::{ObjectType, PropertyDef, Record};
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

/// A connector whose field updates answer only once `merges` merges have been answered (or,
/// failing that, after `patience`): it shows whether a job waiting for its update lets the
/// next job merge.
struct UpdatesAfterMerges {
    inner: Arc<dyn Connector>,
    merges: usize,
    answered: std::sync::atomic::AtomicUsize,
    merged: tokio::sync::Notify,
    patience: Duration,
    waited_out: std::sync::atomic::AtomicBool,
}

impl UpdatesAfterMerges {
    async fn wait_for_merges(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let deadline = tokio::time::Instant::now() + self.patience;
        while self.answered.load(SeqCst) < self.merges {
            if tokio::time::timeout_at(deadline, self.merged.notified())
                .await
                .is_err()
            {
                self.waited_out.store(true, SeqCst);
                return;
            }
        }
    }
}

#[async_trait::async_trait]
impl Connector for UpdatesAfterMerges {
    fn system(&self) -> &str {
        self.inner.system()
    }
    fn rate_limiter(&self) -> Option<Arc<dupdesk::crm::ratelimit::RateLimiter>> {
        self.inner.rate_limiter()
    }
    async fn list_page(
        &self,
        o: ObjectType,
        a: Option<&str>,
        p: &[String],
        h: &[String],
    ) -> Result<Page, CrmError> {
        self.inner.list_page(o, a, p, h).await
    }
    async fn modified_since_page(
        &self,
        o: ObjectType,
        s: &str,
        a: Option<&str>,
        p: &[String],
    ) -> Result<Page, CrmError> {
        self.inner.modified_since_page(o, s, a, p).await
    }
    async fn batch_read(
        &self,
        o: ObjectType,
        ids: &[String],
        p: &[String],
        h: &[String],
    ) -> Result<BatchRead, CrmError> {
        self.inner.batch_read(o, ids, p, h).await
    }
    async fn read(&self, o: ObjectType, id: &str, p: &[String]) -> Result<ReadOutcome, CrmError> {
        self.inner.read(o, id, p).await
    }
    async fn update(
        &self,
        o: ObjectType,
        id: &str,
        p: &BTreeMap<String, String>,
    ) -> Result<Record, CrmError> {
        self.wait_for_merges().await;
        self.inner.update(o, id, p).await
    }
    async fn batch_update(
        &self,
        o: ObjectType,
        inputs: &[(String, BTreeMap<String, String>)],
    ) -> Result<BatchUpdated, CrmError> {
        self.wait_for_merges().await;
        self.inner.batch_update(o, inputs).await
    }
    async fn search_by_email(&self, e: &str, p: &[String]) -> Result<Vec<Record>, CrmError> {
        self.inner.search_by_email(e, p).await
    }
    async fn merge(&self, o: ObjectType, a: &str, b: &str) -> Result<Record, CrmError> {
        let merged = self.inner.merge(o, a, b).await;
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.merged.notify_waiters();
        merged
    }
    async fn properties(&self, o: ObjectType) -> Result<Vec<PropertyDef>, CrmError> {
        self.inner.properties(o).await
    }
    async fn search_equal(
        &self,
        o: ObjectType,
        p: &str,
        v: &str,
        props: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        self.inner.search_equal(o, p, v, props).await
    }
}

/// `concurrency` counts the jobs that may still merge: one whose merges are done and which
/// waits only for its (batched, held back) field update makes room for the next, whose
/// merge must not wait behind that update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_its_field_update_lets_the_next_job_merge() {
    const JOBS: usize = 3;
    let (seed, planted) = pairs(JOBS);
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
    let held = Arc::new(UpdatesAfterMerges {
        inner: fast,
        merges: JOBS,
        answered: Default::default(),
        merged: tokio::sync::Notify::new(),
        patience: Duration::from_secs(10),
        waited_out: Default::default(),
    });
    // One job at a time: the first update answers only once every job has merged.
    let opts = ExecOptions {
        concurrency: 1,
        ..ExecOptions::default()
    };
    let report = executor::apply(&store, held.clone(), &config(), opts, Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(report.merged, JOBS, "{report:?}");
    assert!(
        !held.waited_out.load(std::sync::atomic::Ordering::SeqCst),
        "an update waited {:?} for merges that never came: the next job waited for it",
        held.patience
    );
    assert_eq!(sandbox.merge_log().await.unwrap().len(), JOBS);
    // Every survivor carries the steward's choice.
    for p in &planted {
        match held
            .read(ObjectType::Contacts, &p.ids[0], &["firstname".to_string()])
            .await
            .unwrap()
        {
            ReadOutcome::MergedInto(r) => assert_eq!(r.get("firstname"), Some("Robert")),
            other => panic!("{} should read as merged: {other:?}", p.ids[0]),
        }
    }
    sandbox.shutdown().await;
}
