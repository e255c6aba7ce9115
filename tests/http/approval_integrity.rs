//! What the steward approved is exactly what the CRM receives: the review draft builds the
//! decision, the executor checks the plan before its first merge, and the sandbox CRM over real
//! HTTP is the witness (its merge log, and the records read back). Each test here is a way the
//! promise broke before: an excluded record's values in the merge, a read-only or empty pick, a
//! member edited in the CRM after the review.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use dupdesk::store::clusters::{Action, JobStatus};
use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use dupdesk::crm::{Connector, ReadOutcome};
use dupdesk::domain::model::{ObjectType, PropertyVersion, Record, parse_ts};
use dupdesk::domain::precedence::{DecidedBy, Rules};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::ops::executor::{self, ExecReport};
use dupdesk::ops::review::{DraftError, ReviewContext, ReviewDraft};
use dupdesk::store::{Store, decisions, journal, properties, queue};

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

/// Ann Lee three times. 1003's values come from the ERP: if it were in the merge the rules
/// would take its phone and company (no other record has one), and its ERP id would make the
/// ERP id a conflict.
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
    let ctx = Arc::new(ReviewContext::for_config(
        &config,
        Arc::new(Rules::for_config(&config).unwrap()),
        ObjectType::Contacts,
        catalog,
    ));
    ReviewDraft::new(ctx, &detail)
}

async fn save(store: &Store, new: decisions::NewDecision) -> decisions::Decision {
    store
        .call(move |c| decisions::record(c, &new))
        .await
        .unwrap()
}

async fn apply(store: &Store, crm: &Arc<dyn Connector>) -> ExecReport {
    executor::apply(
        store,
        crm.clone(),
        &config(),
        quick_exec(2),
        Arc::new(|_| {}),
    )
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
    // Included, 1003 brings its phone and company, and its ERP id makes the ERP id a conflict
    // (ERP-1 against ERP-2) that the merge would leave to the steward.
    let c = draft.choices();
    assert!(!c.contains_key("erp_customer_id"));
    assert!(draft.field("erp_customer_id").unwrap().locked.is_some());
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
        .call(|c| dupdesk::ops::stats::collect(c, Default::default()))
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
    assert_eq!(jobs[0].status, JobStatus::Cancelled);
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
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

fn with_lifecycle_stage() -> dupdesk::config::Config {
    let mut c = config();
    c.objects
        .get_mut("contacts")
        .unwrap()
        .properties
        .push("lifecyclestage".into());
    c
}

async fn draft_with(store: &Store, cluster: i64, config: &dupdesk::config::Config) -> ReviewDraft {
    let config = config.clone();
    let (detail, catalog) = store
        .call(move |c| {
            Ok((
                queue::cluster(c, cluster)?.unwrap(),
                properties::load(c, ObjectType::Contacts)?,
            ))
        })
        .await
        .unwrap();
    let ctx = Arc::new(ReviewContext::for_config(
        &config,
        Arc::new(Rules::for_config(&config).unwrap()),
        ObjectType::Contacts,
        catalog,
    ));
    ReviewDraft::new(ctx, &detail)
}

#[tokio::test]
async fn a_value_outside_the_crms_options_is_refused_at_approval_and_before_any_merge() {
    let mut seed = SeedData::default();
    // The portal's old data holds a stage HubSpot no longer offers; it is the newest value.
    seed.contacts.push(written(
        2001,
        "2026-05-01T09:00:00.000Z",
        "CRM_UI",
        &[
            ("firstname", "Bo"),
            ("lastname", "Berg"),
            ("email", "bo@example.com"),
            ("lifecyclestage", "banana"),
        ],
    ));
    seed.contacts.push(written(
        2002,
        "2025-05-01T09:00:00.000Z",
        "CRM_UI",
        &[
            ("firstname", "Bo"),
            ("lastname", "Berg"),
            ("email", "bo.berg@example.com"),
            ("lifecyclestage", "lead"),
        ],
    ));
    let config = with_lifecycle_stage();
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture_with(seed, &config).await;
    let cluster = cluster_of(&store, &["2001", "2002"]).await;

    // The pull cached the CRM's definitions: the review refuses the approval and says why.
    let mut draft = draft_with(&store, cluster, &config).await;
    assert_eq!(
        draft.choices()["lifecyclestage"].value.as_deref(),
        Some("banana")
    );
    let err = draft.approve("ada", "").unwrap_err().to_string();
    assert!(
        err.contains("lifecyclestage: \"banana\" is not one of the CRM's options"),
        "{err}"
    );
    assert!(draft.field("lifecyclestage").unwrap().problem.is_some());
    draft.take("lifecyclestage", "2002").unwrap();
    assert!(
        draft.approve("ada", "").is_ok(),
        "a valid stage can be approved"
    );

    // An approval made while the definitions were not known (a workspace never pulled with
    // them) is refused by the executor's own check, before any merge.
    store
        .call(|c| {
            properties::save(c, ObjectType::Contacts, &[], "2026-01-01T00:00:00.000Z")?;
            Ok(())
        })
        .await
        .unwrap();
    let blind = draft_with(&store, cluster, &config).await;
    save(&store, blind.approve("ada", "").unwrap()).await;
    let report = executor::apply(
        &store,
        crm.clone(),
        &config,
        quick_exec(2),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!((report.merged, report.refused), (0, 1));
    assert!(
        sandbox.merge_log().await.unwrap().is_empty(),
        "nothing was sent"
    );
    let (status, reason) = status_of(&store, cluster).await;
    assert_eq!(status, "needs_attention");
    assert!(
        reason
            .unwrap()
            .contains("\"banana\" is not one of the CRM's options")
    );
    // The executor refreshed the cache: the next review knows the options again.
    let again = draft_with(&store, cluster, &config).await;
    assert!(again.approve("ada", "").is_err());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_email_another_live_contact_holds_is_refused_before_any_merge() {
    let mut seed = SeedData::default();
    for (id, email) in [
        (3001, "kim@example.com"),
        (3002, "kim.ng@example.com"),
        (3003, "team@example.com"),
    ] {
        seed.contacts.push(written(
            id,
            "2025-01-01T09:00:00.000Z",
            "CRM_UI",
            &[("firstname", "Kim"), ("lastname", "Ng"), ("email", email)],
        ));
    }
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    let cluster = cluster_of(&store, &["3001", "3002"]).await;
    let mut draft = draft_of(&store, cluster).await;
    // The steward types the team address, which 3003 (not in this merge) already has.
    draft.type_value("email", "TEAM@example.com").unwrap();
    save(&store, draft.approve("ada", "").unwrap()).await;
    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.refused), (0, 1));
    assert!(
        sandbox.merge_log().await.unwrap().is_empty(),
        "nothing was sent"
    );
    let (status, reason) = status_of(&store, cluster).await;
    assert_eq!(status, "needs_attention");
    let reason = reason.unwrap();
    assert!(
        reason.contains("contact 3003") && reason.contains("unique"),
        "{reason}"
    );
    sandbox.shutdown().await;
}

/// A connector through which a colleague creates a contact with the very email the update is
/// about to write, between the checks and the update: the CRM then refuses the update after
/// the merges ran.
struct Race {
    inner: Arc<dyn Connector>,
    base_url: String,
    email: String,
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Connector for Race {
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
    ) -> Result<dupdesk::crm::Page, dupdesk::crm::CrmError> {
        self.inner.list_page(o, a, p, h).await
    }
    async fn modified_since_page(
        &self,
        o: ObjectType,
        s: &str,
        a: Option<&str>,
        p: &[String],
    ) -> Result<dupdesk::crm::Page, dupdesk::crm::CrmError> {
        self.inner.modified_since_page(o, s, a, p).await
    }
    async fn batch_read(
        &self,
        o: ObjectType,
        ids: &[String],
        p: &[String],
        h: &[String],
    ) -> Result<dupdesk::crm::BatchRead, dupdesk::crm::CrmError> {
        self.inner.batch_read(o, ids, p, h).await
    }
    async fn read(
        &self,
        o: ObjectType,
        id: &str,
        p: &[String],
    ) -> Result<ReadOutcome, dupdesk::crm::CrmError> {
        self.inner.read(o, id, p).await
    }
    async fn update(
        &self,
        o: ObjectType,
        id: &str,
        p: &BTreeMap<String, String>,
    ) -> Result<Record, dupdesk::crm::CrmError> {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let created = reqwest::Client::new()
                .post(format!("{}/crm/v3/objects/contacts", self.base_url))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"properties": {"email": self.email, "firstname": "Colleague"}}))
                .send()
                .await
                .unwrap();
            assert!(created.status().is_success(), "{created:?}");
        }
        self.inner.update(o, id, p).await
    }
    async fn search_by_email(
        &self,
        e: &str,
        p: &[String],
    ) -> Result<Vec<Record>, dupdesk::crm::CrmError> {
        self.inner.search_by_email(e, p).await
    }
    async fn merge(
        &self,
        o: ObjectType,
        a: &str,
        b: &str,
    ) -> Result<Record, dupdesk::crm::CrmError> {
        self.inner.merge(o, a, b).await
    }
    async fn properties(
        &self,
        o: ObjectType,
    ) -> Result<Vec<dupdesk::domain::model::PropertyDef>, dupdesk::crm::CrmError> {
        self.inner.properties(o).await
    }
    async fn search_equal(
        &self,
        o: ObjectType,
        p: &str,
        v: &str,
        props: &[String],
    ) -> Result<Vec<Record>, dupdesk::crm::CrmError> {
        self.inner.search_equal(o, p, v, props).await
    }
}

#[tokio::test]
async fn a_job_whose_update_failed_after_its_merges_is_finished_by_an_amend() {
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(ann_lee()).await;
    let cluster = cluster_of(&store, &["1001", "1002"]).await;
    let mut draft = draft_of(&store, cluster).await;
    draft.type_value("email", "ann.lee@newco.com").unwrap();
    save(&store, draft.approve("ada", "").unwrap()).await;
    let racing: Arc<dyn Connector> = Arc::new(Race {
        inner: crm.clone(),
        base_url: sandbox.base_url(),
        email: "ann.lee@newco.com".into(),
        raced: Default::default(),
    });
    let report = apply(&store, &racing).await;
    assert_eq!((report.merged, report.failed), (0, 1));
    assert_eq!(sandbox.merge_log().await.unwrap().len(), 1, "the merge ran");
    let job = store
        .call(|c| journal::all_jobs(c))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.status, JobStatus::Failed);
    let err = job.last_error.clone().unwrap();
    assert!(
        err.contains("409") && err.contains(&format!("dupdesk amend {}", job.id)),
        "the failure says what to do: {err}"
    );
    // Retrying fails the same way; an amend of the values is the way out.
    let mut draft = draft_of(&store, cluster).await;
    assert_eq!(draft.finishing_job(), Some(job.id));
    assert!(draft.take("email", "1001").is_ok());
    assert_eq!(
        draft.toggle_exclude("1002"),
        Err(DraftError::MergesDone(cluster)),
        "the merges ran: only values can change"
    );
    // The steward amends from the command line: the same draft, the same checks.
    let dupdesk = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dupdesk"))
            .current_dir(_dir.path())
            .env("XDG_CONFIG_HOME", _dir.path().join("config"))
            .env("DUPDESK_LOGGING__DIR", _dir.path().join("logs"))
            .arg("--workspace")
            .arg(_dir.path().join("ws.db"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let job_arg = job.id.to_string();
    let (code, text) = dupdesk(&["amend", &job_arg, "--set", "email=ann@@example"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the CRM would refuse"), "{text}");
    let (code, text) = dupdesk(&["amend", &job_arg, "--take", "email=1001"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("email = ann.lee@example.com"), "{text}");
    let amend = store
        .call(move |c| decisions::for_cluster(c, cluster))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(amend.action, Action::Amend);
    assert_eq!(amend.amends_job, Some(job.id));
    assert_eq!(status_of(&store, cluster).await.0, "merging");

    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.failed), (1, 0));
    // Each merge exactly once: the amend resumed the job at its update.
    assert_eq!(sandbox.merge_log().await.unwrap().len(), 1);
    let job = store
        .call(move |c| journal::get_job(c, job.id))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Merged);
    let survivor = live(&crm, job.survivor_id.as_deref().unwrap()).await;
    assert_eq!(survivor.get("email"), Some("ann.lee@example.com"));
    assert_eq!(status_of(&store, cluster).await.0, "merged");
    let log: Vec<Action> = store
        .call(move |c| {
            Ok(decisions::for_cluster(c, cluster)?
                .into_iter()
                .map(|d| d.action)
                .collect())
        })
        .await
        .unwrap();
    assert_eq!(log, [Action::Approve, Action::Amend]);
    sandbox.shutdown().await;
}

/// Two records that map to different ERP customers: the draft does not let the steward (or the
/// rules) pick one, the merge writes none, the conflict stays open through a pull (which does
/// not take the CRM's leftover value for a choice), and `dupdesk mapping resolve` settles it.
#[tokio::test]
async fn a_merge_of_records_with_different_erp_ids_writes_none_until_the_steward_settles_it() {
    let mut seed = SeedData::default();
    for (id, erp) in [(5001, "ERP-7"), (5002, "ERP-8")] {
        seed.contacts.push(written(
            id,
            "2025-01-01T09:00:00.000Z",
            "INTEGRATION",
            &[
                ("firstname", "Lu"),
                ("lastname", "Wei"),
                ("email", &format!("lu{id}@example.com")),
                ("erp_customer_id", erp),
            ],
        ));
    }
    let Fixture {
        sandbox,
        crm,
        dir,
        store,
    } = fixture(seed).await;
    let cluster = cluster_of(&store, &["5001", "5002"]).await;
    let mut draft = draft_of(&store, cluster).await;
    let locked = draft.field("erp_customer_id").unwrap().locked.unwrap();
    assert!(
        locked.contains("different erp ids (ERP-7, ERP-8)"),
        "{locked}"
    );
    assert!(!draft.choices().contains_key("erp_customer_id"));
    assert!(matches!(
        draft.take("erp_customer_id", "5002"),
        Err(DraftError::NotWritable { .. })
    ));
    save(&store, draft.approve("ada", "").unwrap()).await;
    let report = apply(&store, &crm).await;
    assert_eq!((report.merged, report.failed), (1, 0));

    let log = sandbox.merge_log().await.unwrap();
    let survivor = log[0].new_id.clone();
    // Nothing dupdesk sent wrote the property: no API write of it on the survivor.
    let read = crm
        .batch_read(
            ObjectType::Contacts,
            std::slice::from_ref(&survivor),
            &["erp_customer_id".to_string()],
            &["erp_customer_id".to_string()],
        )
        .await
        .unwrap();
    let history = &read.found[0].history["erp_customer_id"];
    assert!(
        history
            .iter()
            .all(|v| v.source_id.as_deref() != Some("sandbox-private-app")),
        "{history:?}"
    );
    let open = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .call(|c| dupdesk::store::mapping::conflicts(c, false))
                .await
                .unwrap()
        }
    };
    let conflicts = open(&store).await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].target_ids, ["ERP-7", "ERP-8"]);
    assert_eq!(conflicts[0].survivor_id, survivor);
    // A pull sees the merge's leftover id on the survivor and does not take it for a choice.
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    let active = |store: &Store, id: String| {
        let store = store.clone();
        async move {
            store
                .call(move |c| {
                    Ok(dupdesk::store::mapping::rows_for_id(c, &id)?
                        .into_iter()
                        .filter(|r| r.active && r.source_id == id)
                        .map(|r| r.target_id)
                        .collect::<Vec<_>>())
                })
                .await
                .unwrap()
        }
    };
    assert!(active(&store, survivor.clone()).await.is_empty());
    assert_eq!(open(&store).await.len(), 1, "the conflict stays open");

    // The steward settles it from the command line; the chosen id is written and mapped.
    // The binary runs off the runtime's threads: the sandbox it talks to is served on them.
    let resolve = |target: &str| {
        let mut cmd = dupdesk_command(store.path(), &sandbox.base_url(), dir.path());
        cmd.args([
            "mapping",
            "resolve",
            &conflicts[0].id.to_string(),
            "--target",
            target,
        ]);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = resolve("ERP-9").await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an id that is not one of them is refused"
    );
    let out = resolve("ERP-8").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        live(&crm, &survivor).await.get("erp_customer_id"),
        Some("ERP-8")
    );
    assert_eq!(active(&store, survivor.clone()).await, ["ERP-8"]);
    assert!(open(&store).await.is_empty());
    dupdesk::ops::sync::pull(&store, crm.as_ref(), &config(), &|_| {})
        .await
        .unwrap();
    assert_eq!(active(&store, survivor.clone()).await, ["ERP-8"]);
    sandbox.shutdown().await;
}
