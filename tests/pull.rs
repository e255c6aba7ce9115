//! Pulling from the sandbox CRM over real HTTP into a real workspace file: the first pull reads
//! everything with history, the second imports nothing new, later pulls pick up exactly what
//! changed in the CRM, including merges made there and the id mappings records carry.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dupdesk::model::ObjectType;
use dupdesk::sandbox::FaultSpec;
use dupdesk::store::{mapping, records};

#[tokio::test]
async fn pull_is_complete_then_incremental() {
    let data = dupdesk::demo::generate(&dupdesk::demo::DemoOptions::default()).data;
    let (contacts, companies) = (data.contacts.len() as u64, data.companies.len() as u64);
    let sandbox = start_sandbox(data, generous(), FaultSpec::default()).await;
    let crm = connector(
        &sandbox.base_url(),
        10_000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dupdesk::store::Store::open(dir.path().join("ws.db")).unwrap();
    let config = config();

    let first = dupdesk::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    assert_eq!(first.total().inserted, contacts + companies);
    assert!(!first.objects[&ObjectType::Contacts].incremental);
    // Records arrive with their per-property history, and ERP ids become mappings.
    let some = store
        .call(|c| records::live_records(c, ObjectType::Contacts))
        .await
        .unwrap();
    assert_eq!(some.len() as u64, contacts);
    assert!(some.iter().all(|r| !r.record.history.is_empty()));
    let with_erp = some
        .iter()
        .filter(|r| r.record.get("erp_customer_id").is_some())
        .count();
    let mapped = store
        .call(|c| mapping::active_rows(c, ObjectType::Contacts))
        .await
        .unwrap();
    assert_eq!(mapped.len(), with_erp);
    assert!(with_erp > 0);

    let second = dupdesk::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    let t = second.total();
    assert_eq!(
        (t.inserted, t.updated),
        (0, 0),
        "second pull imports nothing new: {t:?}"
    );
    assert!(second.objects[&ObjectType::Contacts].incremental);

    // A change in the CRM: one field of one record. Timestamps have millisecond resolution, so
    // let the clock move past the watermark first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let target = some[3].record.id.clone();
    let mut props = BTreeMap::new();
    props.insert(
        "jobtitle".to_string(),
        "Chief Deduplication Officer".to_string(),
    );
    crm.update(ObjectType::Contacts, &target, &props)
        .await
        .unwrap();
    // A merge made in the CRM by someone else.
    let (a, b) = (some[5].record.id.clone(), some[6].record.id.clone());
    let merged = crm.merge(ObjectType::Contacts, &a, &b).await.unwrap();

    let third = dupdesk::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    let c = &third.objects[&ObjectType::Contacts];
    assert_eq!(c.stats.updated, 1, "{c:?}");
    assert_eq!(c.stats.inserted, 1, "the merged record is new: {c:?}");
    assert_eq!(c.merged_away, 2, "both old ids are known merged: {c:?}");
    let changed = store
        .call(move |c| records::get_record(c, ObjectType::Contacts, &target))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        changed.record.get("jobtitle"),
        Some("Chief Deduplication Officer")
    );
    assert_eq!(
        changed
            .record
            .latest_version("jobtitle")
            .unwrap()
            .source_type,
        "INTEGRATION"
    );
    let old = store
        .call(move |c| records::get_record(c, ObjectType::Contacts, &a))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.merged_into.as_deref(), Some(merged.id.as_str()));
    let live = store
        .call(|c| records::live_records(c, ObjectType::Contacts))
        .await
        .unwrap();
    assert_eq!(live.len() as u64, contacts - 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_pull_that_fails_midway_keeps_what_it_got_and_completes_on_rerun() {
    let data = dupdesk::demo::generate(&dupdesk::demo::DemoOptions::scaled(400)).data;
    let total = (data.contacts.len() + data.companies.len()) as u64;
    // The sandbox answers the pull with 500s; a connector that gives up at once fails midway.
    let sandbox = start_sandbox(data, generous(), "500=0.3,seed=3".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dupdesk::store::Store::open(dir.path().join("ws.db")).unwrap();
    let mut cfg = config();
    cfg.crm.max_retries = 0;
    let mut opts = dupdesk::crm::hubspot::HubSpotOptions::from_config(
        &cfg,
        dupdesk::config::Secret::new(TOKEN),
    );
    opts.base_url = sandbox.base_url();
    let fragile = dupdesk::crm::hubspot::HubSpotConnector::new(opts).unwrap();
    let mut failures = 0;
    let mut done = false;
    for _ in 0..50 {
        match dupdesk::sync::pull(&store, &fragile, &cfg, &|_| {}).await {
            Ok(_) => {
                done = true;
                break;
            }
            Err(_) => failures += 1,
        }
    }
    assert!(
        failures > 0,
        "the fault injection should have failed some pulls"
    );
    assert!(done, "reruns eventually complete");
    let n: u64 = store
        .call(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
        .unwrap();
    assert_eq!(n, total, "every record exactly once after the reruns");
    sandbox.shutdown().await;
}
