//! `stats`: figures from a real workspace, and the alerts the seeds ask for when the record count
//! (2%) or the duplicate rate moves too much between two pulls.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use dupdesk::sandbox::FaultSpec;
use dupdesk::stats::{self, Thresholds};

#[tokio::test]
async fn stats_count_and_alert_between_pulls() {
    let (seed, planted) = planted_clusters(20);
    let records = seed.contacts.len() as u64;
    let sandbox = start_sandbox(seed, generous(), FaultSpec::default()).await;
    let crm = connector(
        &sandbox.base_url(),
        1000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    let t = Thresholds::default();
    let s = store.call(move |c| stats::collect(c, t)).await.unwrap();
    assert_eq!(s.live_records, records);
    assert_eq!(s.records["crm"]["contacts"], records);
    assert!(s.alerts.is_empty(), "{:?}", s.alerts);

    // The matcher finds the planted clusters; then the CRM grows by five records.
    pending_clusters(&store, &planted, &vec![0.99; planted.len()]).await;
    let http = reqwest::Client::new();
    for i in 0..5 {
        let r = http
            .post(format!("{}/crm/v3/objects/contacts", sandbox.base_url()))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"properties": {"email": format!("new{i}@example.com")}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    dupdesk::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();

    let s = store.call(move |c| stats::collect(c, t)).await.unwrap();
    assert_eq!(s.live_records, records + 5);
    assert_eq!(s.clusters["pending"], planted.len() as u64);
    let surplus: u64 = planted.iter().map(|p| p.ids.len() as u64 - 1).sum();
    assert!((s.duplicate_rate - surplus as f64 / (records + 5) as f64).abs() < 1e-9);
    assert!(
        s.alerts
            .iter()
            .any(|a| a.contains("record count moved") && a.contains("above the 2.0% threshold")),
        "{:?}",
        s.alerts
    );
    assert!(
        s.alerts.iter().any(|a| a.contains("duplicate rate moved")),
        "{:?}",
        s.alerts
    );
    let text = s.render_text();
    assert!(text.contains("ALERT"));
    // A looser threshold raises no record-count alert for a 10% move.
    let loose = Thresholds {
        record_count_change: 0.5,
        duplicate_rate_change: 0.9,
    };
    let s = store.call(move |c| stats::collect(c, loose)).await.unwrap();
    assert!(s.alerts.is_empty(), "{:?}", s.alerts);
    sandbox.shutdown().await;
}
