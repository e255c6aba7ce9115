//! `stats`: figures from a real workspace, and the alerts the seeds ask for when the record count
//! (2%) or the duplicate rate moves too much between two pulls.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use common::*;
use dupdesk::ops::stats::{self, Thresholds};

#[tokio::test]
async fn stats_count_and_alert_between_pulls() {
    let (seed, planted) = planted_clusters(20);
    let records = seed.contacts.len() as u64;
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
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
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
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

/// Open mapping conflicts of both kinds are counted and alerted, each alert naming an
/// example: live contacts sharing an ERP id (found by the pull) and a merge of contacts
/// mapped to different ERP ids (recorded by the executor). An id with an escape sequence in it
/// reaches the text escaped.
#[tokio::test]
async fn open_mapping_conflicts_of_both_kinds_are_counted_and_alerted() {
    let (mut seed, planted) = planted_clusters(1);
    for id in [5001, 5002] {
        let email = format!("shared{id}@example.com");
        seed.contacts.push(contact(
            id,
            &[
                ("email", email.as_str()),
                ("erp_customer_id", "ERP-1000122"),
            ],
        ));
    }
    // Listed first, so theirs is the oldest conflict and the alert's example.
    for id in [4001, 4002] {
        let email = format!("odd{id}@example.com");
        seed.contacts.push(contact(
            id,
            &[
                ("email", email.as_str()),
                ("erp_customer_id", "ERP-\u{1b}[2J9"),
            ],
        ));
    }
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    let t = Thresholds::default();
    let s = store.call(move |c| stats::collect(c, t)).await.unwrap();
    assert_eq!(s.mapping_conflicts_open, 2);
    assert_eq!(s.mapping_conflicts.get("shared_target"), Some(&2));
    assert_eq!(s.alerts.len(), 1, "{:?}", s.alerts);
    assert_eq!(
        s.alerts[0],
        "2 erp ids shared by more than one live record (e.g. erp:ERP-\u{1b}[2J9 is the id of 2 live crm contacts: 4001, 4002): see `dupdesk mapping conflicts`"
    );

    // Cluster 0's members map to three different ERP customers: merging them is a conflict.
    approve_all(&store, &planted).await;
    let report = dupdesk::ops::executor::apply(
        &store,
        crm.clone(),
        &config(),
        dupdesk::ops::executor::ExecOptions::default(),
        std::sync::Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(report.merged, 1);
    let s = store.call(move |c| stats::collect(c, t)).await.unwrap();
    assert_eq!(s.mapping_conflicts_open, 3);
    assert_eq!(s.mapping_conflicts.get("merge"), Some(&1));
    let merge_alert = s
        .alerts
        .iter()
        .find(|a| a.starts_with("1 merge of records mapped to different erp ids"))
        .unwrap_or_else(|| panic!("{:?}", s.alerts));
    let merged = planted[0].ids.join(", ");
    assert!(
        merge_alert.contains(&format!(
            "was merged from records mapped to different erp ids: ERP-0-0, ERP-0-1, ERP-0-2 (merged {merged})"
        )),
        "{merge_alert}"
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["mapping_conflicts"]["merge"], 1);
    assert_eq!(json["mapping_conflicts"]["shared_target"], 2);
    let text = s.render_text();
    assert!(
        text.contains("3 open mapping conflicts (1 merge, 2 shared_target)"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("erp:ERP-\\e[2J9 is the id of 2"), "{text}");
    sandbox.shutdown().await;
}
