//! Pulling from the sandbox CRM over real HTTP into a real workspace file: the first pull reads
//! everything with history, the second imports nothing new, later pulls pick up exactly what
//! changed in the CRM, including merges made there and the id mappings records carry.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dupdesk::domain::model::ObjectType;
use dupdesk::harness::sandbox::FaultSpec;
use dupdesk::store::{mapping, records};

#[tokio::test]
async fn pull_is_complete_then_incremental() {
    let data =
        dupdesk::harness::demo::generate(&dupdesk::harness::demo::DemoOptions::default()).data;
    let (contacts, companies) = (data.contacts.len() as u64, data.companies.len() as u64);
    let sandbox = start_sandbox(data, generous(), FaultSpec::default()).await;
    let crm = connector(
        &sandbox.base_url(),
        10_000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_workspace(dir.path());
    let config = config();

    let first = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
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

    let second = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    let t = second.total();
    assert_eq!(
        (t.inserted, t.updated),
        (0, 0),
        "second pull imports nothing new: {t:?}"
    );
    assert!(second.objects[&ObjectType::Contacts].incremental);

    // A change in the CRM: one field of one record. The next pull reads what changed since its
    // watermark, the last pull's start less `[pull] lookback_seconds`: the change is after it
    // however soon it comes.
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

    let third = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
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
    let data =
        dupdesk::harness::demo::generate(&dupdesk::harness::demo::DemoOptions::scaled(400)).data;
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
        match dupdesk::ops::sync::pull(&store, &fragile, &cfg, &|_| {}).await {
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

/// Live contacts that carry one ERP id are one open `shared_target` conflict per id, opened by
/// the pull that first sees them, left alone by a pull that sees nothing new, updated when a
/// third contact takes the id, resolved when a contact moves to another id or when merges in
/// the CRM leave one record with it.
#[tokio::test]
async fn contacts_sharing_an_erp_id_are_one_conflict_per_id_until_no_longer_shared() {
    let (mut seed, planted) = planted_clusters(2);
    for (id, erp) in [
        (5001, "ERP-1000122"),
        (5002, "ERP-1000122"),
        (5003, "ERP-77"),
        (5004, "ERP-77"),
    ] {
        let email = format!("shared{id}@example.com");
        seed.contacts.push(contact(
            id,
            &[("email", email.as_str()), ("erp_customer_id", erp)],
        ));
    }
    let sandbox = start_sandbox(seed, generous(), FaultSpec::default()).await;
    let crm = connector(
        &sandbox.base_url(),
        10_000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_workspace(dir.path());
    let config = config();
    let shared = |report: &dupdesk::ops::sync::PullReport| {
        let s = report.objects[&ObjectType::Contacts].shared_targets;
        (s.opened, s.changed, s.resolved)
    };
    let open = |store: &dupdesk::store::Store| {
        let store = store.clone();
        async move {
            store
                .call(|c| {
                    Ok(mapping::conflicts(c, false)?
                        .into_iter()
                        .map(|c| (c.target_ids.join(","), c.source_ids))
                        .collect::<Vec<_>>())
                })
                .await
                .unwrap()
        }
    };
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let first = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    assert_eq!(shared(&first), (2, 0, 0));
    assert_eq!(
        open(&store).await,
        vec![
            ("ERP-1000122".to_string(), ids(&["5001", "5002"])),
            ("ERP-77".to_string(), ids(&["5003", "5004"])),
        ]
    );
    let c = store
        .call(|c| mapping::conflicts(c, false))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.kind, mapping::ConflictKind::SharedTarget);
    assert_eq!(c.survivor_id, "5001");
    assert_eq!(c.source_system.as_deref(), Some("crm"));
    assert_eq!(c.target_system, "erp");

    let second = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    assert_eq!(shared(&second), (0, 0, 0));
    let rows = || {
        let store = store.clone();
        async move {
            store
                .call(|c| Ok(mapping::conflicts(c, true)?.len()))
                .await
                .unwrap()
        }
    };
    assert_eq!(rows().await, 2, "pulling again adds no row");

    // In the CRM: a third contact takes ERP-1000122.
    let third = planted[1].ids[1].clone();
    let set_erp = |id: String, erp: &str| {
        let crm = crm.clone();
        let mut props = BTreeMap::new();
        props.insert("erp_customer_id".to_string(), erp.to_string());
        async move { crm.update(ObjectType::Contacts, &id, &props).await.unwrap() }
    };
    set_erp(third.clone(), "ERP-1000122").await;
    let grown = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    assert_eq!(shared(&grown), (0, 1, 0));
    assert_eq!(
        open(&store).await[0],
        (
            "ERP-1000122".to_string(),
            ids(&[third.as_str(), "5001", "5002"])
        )
    );

    // 5004 moves to another ERP id; this pull reads 5004 alone, not 5003, so only the id
    // 5004 left tells it that ERP-77 is no longer shared.
    set_erp("5004".to_string(), "ERP-78").await;
    let moved = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    assert!(
        moved.objects[&ObjectType::Contacts].fetched <= 2,
        "{moved:?}"
    );
    assert_eq!(shared(&moved), (0, 0, 1));
    assert_eq!(
        open(&store).await,
        vec![(
            "ERP-1000122".to_string(),
            ids(&[third.as_str(), "5001", "5002"])
        )]
    );

    // Someone merges the three in the CRM: one live record is left with the id.
    let once = crm
        .merge(ObjectType::Contacts, "5001", "5002")
        .await
        .unwrap();
    let twice = crm
        .merge(ObjectType::Contacts, &once.id, &third)
        .await
        .unwrap();
    let merged = dupdesk::ops::sync::pull(&store, crm.as_ref(), &config, &|_| {})
        .await
        .unwrap();
    assert_eq!(shared(&merged), (0, 0, 1));
    assert!(open(&store).await.is_empty());
    let all = store.call(|c| mapping::conflicts(c, true)).await.unwrap();
    assert_eq!(all.len(), 2, "each id kept its one row");
    assert!(
        all.iter()
            .all(|c| c.resolution.as_deref() == Some(mapping::NO_LONGER_SHARED))
    );
    // The survivor of the CRM's merges holds the id alone.
    let holders = store
        .call(|c| {
            Ok(mapping::active_rows(c, ObjectType::Contacts)?
                .into_iter()
                .filter(|r| r.target_id == "ERP-1000122")
                .map(|r| r.source_id)
                .collect::<Vec<_>>())
        })
        .await
        .unwrap();
    assert!(holders.contains(&twice.id), "{holders:?}");
    sandbox.shutdown().await;
}
