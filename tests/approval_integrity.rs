//! What the steward approved is exactly what the CRM receives: the review draft builds the
//! decision, the executor checks the plan before its first merge, and the sandbox CRM over real
//! HTTP is the witness (its merge log, and the records read back). Each test here is a way the
//! promise broke before: an excluded record's values in the merge, a read-only or empty pick, a
//! member edited in the CRM after the review.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::crm::{Connector, ReadOutcome};
use dupdesk::executor::{self, ExecOptions, ExecReport};
use dupdesk::model::{ObjectType, PropertyVersion, Record, parse_ts};
use dupdesk::precedence::{DecidedBy, Rules};
use dupdesk::review::{DraftError, ReviewContext, ReviewDraft};
use dupdesk::sandbox::seed::SeedData;
use dupdesk::store::{Store, decisions, journal, properties, queue};

fn quick() -> ExecOptions {
    ExecOptions {
        concurrency: 2,
        retry_base: Duration::from_millis(20),
        ..ExecOptions::default()
    }
}

/// A contact whose every value was written at `at` by `source` (a HubSpot sourceType; the ERP
/// sync is `INTEGRATION` with sourceId `erp-sync`).
fn written(id: u64, at: &str, source: &str, props: &[(&str, &str)]) -> Record {
    let ts = parse_ts(at).unwrap();
    let mut r = contact(id, &[]);
    for (k, v) in props {
        r.properties.insert(k.to_string(), Some(v.to_string()));
        r.history.insert(
            k.to_string(),
            vec![PropertyVersion {
                value: Some(v.to_string()),
                timestamp: ts,
                source_type: source.into(),
                source_id: (source == "INTEGRATION").then(|| "erp-sync".to_string()),
            }],
        );
    }
    r.created_at = Some(ts);
    r.updated_at = Some(ts);
    r
}

/// Ann Lee three times. 1003's values come from the ERP, so the rules would take its ERP id
/// (the ERP owns billing), and its phone and company (no other record has one), if it were
/// in the merge.
fn ann_lee() -> SeedData {
    let mut seed = SeedData::default();
    seed.contacts.push(written(
        1001,
        "2024-01-10T09:00:00.000Z",
        "CRM_UI",
        &[
            ("firstname", "Ann"),
            ("lastname", "Lee"),
            ("email", "ann.lee@example.com"),
            ("erp_customer_id", "ERP-1"),
        ],
    ));
    seed.contacts.push(written(
        1002,
        "2025-02-11T09:00:00.000Z",
        "CRM_UI",
        &[
            ("firstname", "Ann"),
            ("lastname", "Lee"),
            ("email", "ann@example.com"),
            ("city", "Bonn"),
        ],
    ));
    seed.contacts.push(written(
        1003,
        "2026-03-12T09:00:00.000Z",
        "INTEGRATION",
        &[
            ("firstname", "Anne"),
            ("lastname", "Lee"),
            ("email", "anne.lee@acme.example"),
            ("phone", "+1 555 0100"),
            ("company", "Acme"),
            ("erp_customer_id", "ERP-2"),
        ],
    ));
    seed
}

/// A pending cluster of these records, as the matcher leaves one.
async fn cluster_of(store: &Store, ids: &[&str]) -> i64 {
    let planted = vec![Planted {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        erp: vec![None; ids.len()],
    }];
    pending_clusters(store, &planted, &[0.99]).await[0]
}

/// The review draft of a cluster, as any front end opens it.
async fn draft_of(store: &Store, cluster: i64) -> ReviewDraft {
    let config = config();
    let (detail, catalog) = store
        .call(move |c| {
            let d = queue::cluster(c, cluster)?.unwrap();
            let catalog = properties::load(c, ObjectType::Contacts)?;
            Ok((d, catalog))
        })
        .await
        .unwrap();
    let ctx = Arc::new(ReviewContext {
        rules: Arc::new(Rules::for_config(&config).unwrap()),
        sources: config.sources.clone(),
        configured: config.properties(ObjectType::Contacts),
        catalog,
    });
    ReviewDraft::new(ctx, &detail)
}

async fn save(store: &Store, new: decisions::NewDecision) -> decisions::Decision {
    store
        .call(move |c| decisions::record(c, &new))
        .await
        .unwrap()
}

async fn apply(store: &Store, crm: &Arc<dyn Connector>) -> ExecReport {
    executor::apply(store, crm.clone(), &config(), quick(), Arc::new(|_| {}))
        .await
        .unwrap()
}

async fn live(crm: &Arc<dyn Connector>, id: &str) -> Record {
    let props: Vec<String> = [
        "firstname",
        "lastname",
        "email",
        "phone",
        "company",
        "city",
        "erp_customer_id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match crm.read(ObjectType::Contacts, id, &props).await.unwrap() {
        ReadOutcome::Live(r) => r,
        other => panic!("{id} is not live: {other:?}"),
    }
}

async fn status_of(store: &Store, cluster: i64) -> (String, Option<String>) {
    store
        .call(move |c| {
            Ok(c.query_row(
                "SELECT status, status_reason FROM clusters WHERE id = ?1",
                [cluster],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_excluded_record_is_not_merged_and_gives_no_value() {
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(ann_lee()).await;
    let cluster = cluster_of(&store, &["1001", "1002", "1003"]).await;

    let mut draft = draft_of(&store, cluster).await;
    // Included, 1003 wins the ERP id (the ERP owns billing) and brings its phone and company.
    let c = draft.choices();
    assert_eq!(c["erp_customer_id"].value.as_deref(), Some("ERP-2"));
    assert_eq!(c["phone"].record_id.as_deref(), Some("1003"));
    assert_eq!(c["company"].record_id.as_deref(), Some("1003"));
    assert_eq!(draft.toggle_exclude("1003"), Ok(true));
    let c = draft.choices();
    assert_eq!(c["firstname"].value.as_deref(), Some("Ann"));
    assert_eq!(c["erp_customer_id"].value.as_deref(), Some("ERP-1"));
    assert!(
        c.values().all(|v| v.record_id.as_deref() != Some("1003")),
        "{c:?}"
    );
    assert!(
        !c.contains_key("phone") && !c.contains_key("company"),
        "{c:?}"
    );
    assert_eq!(
        draft.take("phone", "1003"),
        Err(DraftError::Excluded("1003".into()))
    );
    let d = save(&store, draft.approve("ada", "").unwrap()).await;
    assert_eq!(d.excluded, ["1003"]);
    assert!(
        !d.seen.contains_key("1003"),
        "only included members are compared"
    );
    assert!(
        d.field_choices
            .values()
            .all(|v| v.record_id.as_deref() != Some("1003"))
    );

    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.failed, report.refused), (1, 0, 0));
    // One merge, of the two included records; the excluded one untouched and live.
    let log = sandbox.merge_log().await.unwrap();
    assert_eq!(log.len(), 1);
    let merged: Vec<&str> = vec![&log[0].primary_object_id, &log[0].object_id_to_merge]
        .into_iter()
        .map(String::as_str)
        .collect();
    assert!(
        merged.contains(&"1001") && merged.contains(&"1002"),
        "{log:?}"
    );
    let excluded = live(&crm, "1003").await;
    assert_eq!(excluded.get("firstname"), Some("Anne"));
    assert_eq!(excluded.get("erp_customer_id"), Some("ERP-2"));
    let survivor = live(&crm, &log[0].new_id).await;
    assert_eq!(survivor.get("firstname"), Some("Ann"));
    assert_eq!(survivor.get("phone"), None);
    assert_eq!(survivor.get("company"), None);
    assert_eq!(survivor.get("erp_customer_id"), Some("ERP-1"));
    // The excluded record keeps its own mapping row; the survivor maps to ERP-1 only.
    let rows = store
        .call(|c| {
            let mut stmt = c.prepare(
                "SELECT source_id || '=' || target_id FROM id_mapping WHERE active = 1 ORDER BY target_id",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
        .unwrap();
    assert_eq!(
        rows,
        [format!("{}=ERP-1", log[0].new_id), "1003=ERP-2".into()]
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn read_only_fields_cannot_be_picked_and_an_empty_pick_clears() {
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(ann_lee()).await;
    let cluster = cluster_of(&store, &["1001", "1002"]).await;
    let mut draft = draft_of(&store, cluster).await;
    // createdate is read-only by the rules (and in HubSpot): it is never a choice.
    let err = draft.take("createdate", "1002");
    assert!(
        matches!(err, Err(DraftError::NotWritable { .. })),
        "{err:?}"
    );
    assert!(!draft.choices().contains_key("createdate"));
    // 1001 has no city: taking its empty value keeps the city empty, explicitly.
    assert_eq!(
        draft.choices()["city"].value.as_deref(),
        Some("Bonn"),
        "the rules would keep 1002's city"
    );
    draft.take("city", "1001").unwrap();
    let city = &draft.choices()["city"];
    assert_eq!(
        (city.value.as_deref(), city.decided_by),
        (None, DecidedBy::Steward)
    );
    let d = save(&store, draft.approve("ada", "").unwrap()).await;
    assert!(
        d.field_choices.contains_key("city"),
        "the empty pick is recorded"
    );
    assert!(!d.field_choices.contains_key("createdate"));

    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.failed), (1, 0));
    let log = sandbox.merge_log().await.unwrap();
    let survivor = live(&crm, &log[0].new_id).await;
    // The merge filled the primary's blank city from 1002; the steward's pick cleared it.
    assert_eq!(survivor.get("city"), None);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_member_edited_in_the_crm_after_the_review_is_not_merged() {
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(ann_lee()).await;
    let cluster = cluster_of(&store, &["1001", "1002"]).await;
    let draft = draft_of(&store, cluster).await;
    save(&store, draft.approve("ada", "").unwrap()).await;
    // A colleague edits 1002 in the CRM after the steward saw it.
    let change: BTreeMap<String, String> = [("city".to_string(), "Köln".to_string())].into();
    crm.update(ObjectType::Contacts, "1002", &change)
        .await
        .unwrap();

    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.failed, report.refused), (0, 0, 1));
    assert!(
        sandbox.merge_log().await.unwrap().is_empty(),
        "nothing was sent"
    );
    let (status, reason) = status_of(&store, cluster).await;
    assert_eq!(status, "stale");
    let reason = reason.unwrap();
    assert!(
        reason.contains("record 1002") && reason.contains("city") && reason.contains("Köln"),
        "{reason}"
    );
    assert_eq!(live(&crm, "1002").await.get("city"), Some("Köln"));
    // `stats` says so too, with the reason.
    let stats = store
        .call(|c| dupdesk::stats::collect(c, Default::default()))
        .await
        .unwrap();
    assert_eq!(stats.sent_back_total, 1);
    assert_eq!(stats.sent_back[0].status, "stale");
    let text = stats.render_text();
    assert!(
        text.contains("sent back for review before any merge: 1") && text.contains("Köln"),
        "{text}"
    );
    assert!(
        stats.alerts.iter().any(|a| a.contains("sent back")),
        "{:?}",
        stats.alerts
    );
    // The cancelled job never runs again; the steward reviews the new value after a pull and
    // approves again, and that approval merges.
    let jobs = store.call(|c| journal::all_jobs(c)).await.unwrap();
    assert_eq!(jobs[0].status, "cancelled");
    dupdesk::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let draft = draft_of(&store, cluster).await;
    assert_eq!(draft.choices()["city"].value.as_deref(), Some("Köln"));
    save(&store, draft.approve("ada", "").unwrap()).await;
    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.refused), (1, 0));
    assert_eq!(sandbox.merge_log().await.unwrap().len(), 1);
    assert_eq!(status_of(&store, cluster).await.0, "merged");
    sandbox.shutdown().await;
}
