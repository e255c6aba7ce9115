//! The HubSpot connector against the sandbox CRM over real HTTP on 127.0.0.1: paging, search,
//! batch reads, reads of merged-away ids, updates, merges, error mapping and retries, property
//! definitions and search by a property's value.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dupdesk::config::Secret;
use dupdesk::crm::hubspot::{HubSpotConnector, HubSpotOptions};
use dupdesk::crm::{Connector, CrmError, ReadOutcome};
use dupdesk::domain::model::{ObjectType, PropertyKind, PropertyVersion, Record, format_ts};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{self, FaultSpec, RateLimit, Sandbox, SandboxOptions};

const TOKEN: &str = "t";
const C: ObjectType = ObjectType::Contacts;

/// `n` contacts with ids 1..=n; contact i was last modified `i / same_instant` minutes after
/// 2026-01-01 (so `same_instant` consecutive contacts share one instant).
fn contacts(n: usize, same_instant: usize) -> Vec<Record> {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (1..=n)
        .map(|i| {
            let modified = base + chrono::Duration::minutes((i / same_instant.max(1)) as i64);
            let email = format!("person{i}@example.com");
            let mut properties = BTreeMap::new();
            properties.insert("email".to_string(), Some(email.clone()));
            properties.insert("firstname".to_string(), Some(format!("First{i}")));
            properties.insert("lastname".to_string(), Some(format!("Last{i}")));
            properties.insert("lastmodifieddate".to_string(), Some(format_ts(&modified)));
            let history = BTreeMap::from([(
                "email".to_string(),
                vec![PropertyVersion {
                    value: Some(email),
                    timestamp: base,
                    source_type: "CRM_UI".to_string(),
                    source_id: None,
                }],
            )]);
            Record {
                object_type: C,
                id: i.to_string(),
                properties,
                history,
                created_at: Some(base),
                updated_at: Some(modified),
                archived: false,
            }
        })
        .collect()
}

async fn sandbox_with(records: Vec<Record>, rate_limit: RateLimit, faults: &str) -> Sandbox {
    sandbox::start(SandboxOptions {
        port: 0,
        data: None,
        seed: Some(SeedData {
            contacts: records,
            companies: Vec::new(),
        }),
        rate_limit,
        search_rate_limit: None,
        faults: faults.parse::<FaultSpec>().unwrap(),
        token: Some(TOKEN.into()),
    })
    .await
    .unwrap()
}

/// A sandbox whose rate limit the tests here do not run into.
async fn roomy_sandbox(records: Vec<Record>, faults: &str) -> Sandbox {
    let limit = RateLimit {
        max: 100_000,
        interval: Duration::from_secs(10),
        daily: 10_000_000,
    };
    sandbox_with(records, limit, faults).await
}

fn options(sandbox: &Sandbox, token: &str) -> HubSpotOptions {
    HubSpotOptions {
        base_url: sandbox.base_url(),
        token: Secret::new(token),
        rate_limit: 100_000,
        rate_interval: Duration::from_secs(10),
        max_retries: 6,
        timeout: Duration::from_secs(10),
        page_size: 100,
        system: "crm".into(),
    }
}

fn connector(sandbox: &Sandbox) -> HubSpotConnector {
    HubSpotConnector::new(options(sandbox, TOKEN))
        .unwrap()
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn props(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_ten_thousand_contacts_returns_each_exactly_once() {
    let sandbox = roomy_sandbox(contacts(10_000, 1), "").await;
    let crm = connector(&sandbox);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = crm
            .list_page(C, after.as_deref(), &props(&["email"]), &[])
            .await
            .unwrap();
        pages += 1;
        for r in page.records {
            assert!(r.get("email").is_some());
            *seen.entry(r.id).or_default() += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 100);
    assert_eq!(seen.len(), 10_000);
    assert!(seen.values().all(|n| *n == 1));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_list_page_with_history_holds_at_most_fifty() {
    let sandbox = roomy_sandbox(contacts(120, 1), "").await;
    let crm = connector(&sandbox);
    let page = crm
        .list_page(C, None, &props(&["email"]), &props(&["email"]))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 50);
    assert!(page.next.is_some());
    let first = &page.records[0];
    assert_eq!(first.latest_version("email").unwrap().source_type, "CRM_UI");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_merge_returns_a_new_id_and_both_old_ids_read_back_as_it() {
    let sandbox = roomy_sandbox(contacts(5, 1), "").await;
    let crm = connector(&sandbox);
    let merged = crm.merge(C, "1", "2").await.unwrap();
    assert_ne!(merged.id, "1");
    assert_ne!(merged.id, "2");
    for old in ["1", "2"] {
        match crm.read(C, old, &props(&["email"])).await.unwrap() {
            ReadOutcome::MergedInto(r) => assert_eq!(r.id, merged.id),
            other => panic!("{old}: {other:?}"),
        }
    }
    match crm.read(C, &merged.id, &[]).await.unwrap() {
        ReadOutcome::Live(r) => assert_eq!(r.id, merged.id),
        other => panic!("{other:?}"),
    }
    let log = sandbox.merge_log().await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].new_id, merged.id);

    // The steward's choices go to the survivor with a PATCH after the merge.
    let choice = BTreeMap::from([("firstname".to_string(), "Chosen".to_string())]);
    let updated = crm.update(C, &merged.id, &choice).await.unwrap();
    assert_eq!(updated.get("firstname"), Some("Chosen"));
    assert_eq!(updated.id, merged.id);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn reading_an_unknown_id_is_missing_and_updating_it_is_not_found() {
    let sandbox = roomy_sandbox(contacts(3, 1), "").await;
    let crm = connector(&sandbox);
    assert_eq!(
        crm.read(C, "424242", &[]).await.unwrap(),
        ReadOutcome::Missing
    );
    let change = BTreeMap::from([("firstname".to_string(), "X".to_string())]);
    assert!(matches!(
        crm.update(C, "424242", &change).await,
        Err(CrmError::NotFound { .. })
    ));
    // An unknown property is a validation error, carrying HubSpot's message.
    let bad = BTreeMap::from([("no_such_property".to_string(), "X".to_string())]);
    match crm.update(C, "1", &bad).await {
        Err(CrmError::Validation { message, .. }) => assert!(!message.is_empty()),
        other => panic!("{other:?}"),
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn batch_read_splits_long_lists_and_reports_missing_ids() {
    let sandbox = roomy_sandbox(contacts(260, 1), "").await;
    let crm = connector(&sandbox);
    let mut ids: Vec<String> = (1..=250).map(|i| i.to_string()).collect();
    ids.push("999999".into());
    ids.push("888888".into());
    let read = crm
        .batch_read(C, &ids, &props(&["email"]), &props(&["email"]))
        .await
        .unwrap();
    assert_eq!(read.found.len(), 250);
    let mut missing = read.missing.clone();
    missing.sort();
    assert_eq!(missing, vec!["888888".to_string(), "999999".to_string()]);
    assert!(read.found.iter().all(|r| !r.history.is_empty()));
    // With history, six calls of at most 50 ids each (HubSpot refuses more).
    assert_eq!(crm.stats().requests, 6);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn search_by_email_finds_the_contact() {
    let sandbox = roomy_sandbox(contacts(30, 1), "").await;
    let crm = connector(&sandbox);
    let found = crm
        .search_by_email("person7@example.com", &props(&["email", "firstname"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "7");
    assert_eq!(found[0].get("firstname"), Some("First7"));
    assert!(
        crm.search_by_email("nobody@example.com", &[])
            .await
            .unwrap()
            .is_empty()
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn properties_decode_the_crms_definitions() {
    let sandbox = roomy_sandbox(contacts(3, 1), "").await;
    let crm = connector(&sandbox);
    let defs = crm.properties(C).await.unwrap();
    let def = |name: &str| {
        defs.iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no definition of {name}"))
    };
    let email = def("email");
    assert_eq!(email.kind, PropertyKind::String);
    assert!(
        email.unique,
        "a contact's email is unique although HubSpot does not say so"
    );
    assert!(email.writable());
    for read_only in [
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
        "hs_additional_emails",
    ] {
        assert!(def(read_only).read_only, "{read_only}");
        assert!(!def(read_only).writable(), "{read_only}");
    }
    assert_eq!(def("createdate").kind, PropertyKind::Datetime);
    let stage = def("lifecyclestage");
    assert_eq!(stage.kind, PropertyKind::Enumeration);
    assert_eq!(stage.field_type, "radio");
    let values: Vec<&str> = stage.options.iter().map(|o| o.value.as_str()).collect();
    assert_eq!(values.len(), 8);
    assert_eq!(values[0], "subscriber");
    assert!(values.contains(&"customer") && values.contains(&"other"));
    assert_eq!(stage.options[2].label, "Marketing Qualified Lead");
    let erp = def("erp_customer_id");
    assert!(erp.writable() && !erp.unique && erp.kind == PropertyKind::String);

    let companies = crm.properties(ObjectType::Companies).await.unwrap();
    let industry = companies.iter().find(|d| d.name == "industry").unwrap();
    assert_eq!(industry.kind, PropertyKind::Enumeration);
    assert!(
        industry
            .options
            .iter()
            .any(|o| o.value == "COMPUTER_SOFTWARE")
    );
    let domain = companies.iter().find(|d| d.name == "domain").unwrap();
    assert!(
        !domain.unique,
        "only a contact's email is unique by HubSpot's own rule"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn search_equal_finds_records_whatever_the_case() {
    let mut records = contacts(12, 1);
    records[4]
        .properties
        .insert("erp_customer_id".into(), Some("ERP-5".into()));
    records[9]
        .properties
        .insert("erp_customer_id".into(), Some("erp-5".into()));
    let sandbox = roomy_sandbox(records, "").await;
    let crm = connector(&sandbox);
    let found = crm
        .search_equal(C, "email", "PERSON7@Example.COM", &props(&["email"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "7");
    assert_eq!(found[0].get("email"), Some("person7@example.com"));
    let mut ids: Vec<String> = crm
        .search_equal(C, "erp_customer_id", "Erp-5", &props(&["erp_customer_id"]))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["10", "5"]);
    assert!(
        crm.search_equal(C, "erp_customer_id", "ERP-6", &[])
            .await
            .unwrap()
            .is_empty()
    );
    sandbox.shutdown().await;
}

/// Pages a modified-since listing to the end; returns how often each id came.
async fn modified_since_all(crm: &HubSpotConnector, since: &str) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = crm
            .modified_since_page(C, since, after.as_deref(), &props(&["email"]))
            .await
            .unwrap();
        for r in page.records {
            *seen.entry(r.id).or_default() += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn modified_since_pages_past_the_search_cap_by_moving_the_watermark() {
    // 1,200 contacts, pairs sharing an instant; a cap of 500 forces watermark moves.
    let sandbox = roomy_sandbox(contacts(1_200, 2), "").await;
    let crm = connector(&sandbox).with_search_cap(500);
    // Contact i was modified at minute i/2: from minute 100 on are contacts 200..=1200.
    let since = "2026-01-01T01:40:00.000Z";
    let seen = modified_since_all(&crm, since).await;
    let expected: Vec<String> = (200..=1_200).map(|i| i.to_string()).collect();
    for id in &expected {
        assert!(seen.contains_key(id), "contact {id} was missed");
    }
    assert_eq!(seen.len(), expected.len(), "only contacts modified since");
    // Only records at a watermark seam come twice.
    let repeats = seen.values().filter(|n| **n > 1).count();
    assert!(repeats <= 2 * 4, "{repeats} records came more than once");
    assert!(seen.values().all(|n| *n <= 2));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn modified_since_pages_a_capped_run_of_one_instant_by_id() {
    // 700 contacts modified at the very same instant, then 100 later ones; cap 500.
    let mut records = contacts(800, 1);
    let instant = "2026-01-01T00:00:00.000Z".to_string();
    for r in records.iter_mut().take(700) {
        r.properties
            .insert("lastmodifieddate".into(), Some(instant.clone()));
    }
    let sandbox = roomy_sandbox(records, "").await;
    let crm = connector(&sandbox).with_search_cap(500);
    let seen = modified_since_all(&crm, &instant).await;
    assert_eq!(seen.len(), 800);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn modified_since_without_the_cap_delivers_each_once() {
    let sandbox = roomy_sandbox(contacts(900, 1), "").await;
    let crm = connector(&sandbox);
    let seen = modified_since_all(&crm, "2026-01-01T00:00:00Z").await;
    assert_eq!(seen.len(), 900);
    assert!(seen.values().all(|n| *n == 1));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_gives_an_auth_error() {
    let sandbox = roomy_sandbox(contacts(3, 1), "").await;
    let crm = HubSpotConnector::new(options(&sandbox, "wrong")).unwrap();
    match crm.list_page(C, None, &[], &[]).await {
        Err(CrmError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert!(!message.contains("wrong"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.stats().requests, 1, "auth errors are not retried");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_to_success() {
    let sandbox = roomy_sandbox(contacts(40, 1), "500=0.3,seed=11").await;
    let crm = connector(&sandbox);
    for i in 1..=40 {
        match crm
            .read(C, &i.to_string(), &props(&["email"]))
            .await
            .unwrap()
        {
            ReadOutcome::Live(r) => assert_eq!(r.id, i.to_string()),
            other => panic!("{other:?}"),
        }
    }
    let stats = crm.stats();
    assert!(stats.retries > 0, "{stats:?}");
    assert_eq!(stats.requests, 40 + stats.retries);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn timed_out_reads_and_failed_updates_are_retried_to_success() {
    let sandbox = roomy_sandbox(
        contacts(10, 1),
        "500=0.3,timeout=0.2,timeout_ms=3000,seed=4",
    )
    .await;
    let mut opts = options(&sandbox, TOKEN);
    opts.timeout = Duration::from_millis(400);
    let crm = HubSpotConnector::new(opts)
        .unwrap()
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50));
    for i in 1..=10 {
        let id = i.to_string();
        let change = BTreeMap::from([("jobtitle".to_string(), format!("Title {i}"))]);
        let updated = crm.update(C, &id, &change).await.unwrap();
        assert_eq!(updated.get("jobtitle"), Some(format!("Title {i}").as_str()));
        match crm.read(C, &id, &props(&["jobtitle"])).await.unwrap() {
            ReadOutcome::Live(r) => assert_eq!(r.get("jobtitle"), updated.get("jobtitle")),
            other => panic!("{other:?}"),
        }
    }
    let stats = crm.stats();
    assert!(stats.retries > 0, "{stats:?}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_merge_answered_with_a_server_error_is_not_sent_again() {
    let sandbox = roomy_sandbox(contacts(3, 1), "500=1,seed=1").await;
    let crm = connector(&sandbox);
    match crm.merge(C, "1", "2").await {
        Err(CrmError::Transient { status, message }) => {
            assert_eq!(status, Some(500));
            assert!(message.contains("re-read"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.stats().requests, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_merge_whose_answer_is_lost_is_not_sent_again_and_reads_tell_what_happened() {
    let sandbox = roomy_sandbox(contacts(3, 1), "drop_after_merge=1,seed=1").await;
    let mut opts = options(&sandbox, TOKEN);
    opts.timeout = Duration::from_millis(800);
    let crm = HubSpotConnector::new(opts).unwrap();
    match crm.merge(C, "1", "2").await {
        Err(CrmError::Transient {
            status: None,
            message,
        }) => {
            assert!(message.contains("outcome unknown"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.stats().requests, 1);
    // It was applied: exactly once, and re-reading the ids shows it.
    let log = sandbox.merge_log().await.unwrap();
    assert_eq!(log.len(), 1);
    match crm.read(C, "2", &[]).await.unwrap() {
        ReadOutcome::MergedInto(r) => assert_eq!(r.id, log[0].new_id),
        other => panic!("{other:?}"),
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_daily_limit_is_returned_at_once() {
    let limit = RateLimit {
        max: 100,
        interval: Duration::from_secs(10),
        daily: 2,
    };
    let sandbox = sandbox_with(contacts(3, 1), limit, "").await;
    let crm = connector(&sandbox);
    crm.read(C, "1", &[]).await.unwrap();
    crm.read(C, "2", &[]).await.unwrap();
    let err = crm.read(C, "3", &[]).await.unwrap_err();
    assert!(err.is_daily_limit(), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(crm.stats().requests, 3, "a DAILY limit is not retried");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn companies_list_search_by_their_own_modified_property_and_merge() {
    let base = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let companies: Vec<Record> = (1..=30)
        .map(|i| {
            let modified = format_ts(&(base + chrono::Duration::hours(i)));
            Record {
                object_type: ObjectType::Companies,
                id: i.to_string(),
                properties: BTreeMap::from([
                    ("name".to_string(), Some(format!("Company {i}"))),
                    ("domain".to_string(), Some(format!("c{i}.example"))),
                    ("hs_lastmodifieddate".to_string(), Some(modified)),
                ]),
                history: BTreeMap::new(),
                created_at: Some(base),
                updated_at: None,
                archived: false,
            }
        })
        .collect();
    let sandbox = sandbox::start(SandboxOptions {
        seed: Some(SeedData {
            contacts: Vec::new(),
            companies,
        }),
        rate_limit: RateLimit {
            max: 1_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000,
        },
        token: Some(TOKEN.into()),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let crm = connector(&sandbox);
    let co = ObjectType::Companies;
    let page = crm
        .list_page(co, None, &props(&["name"]), &[])
        .await
        .unwrap();
    assert_eq!(page.records.len(), 30);
    assert!(page.records.iter().all(|r| r.object_type == co));
    // Company i was modified i hours after the base: since hour 21 are companies 21..=30.
    let page = crm
        .modified_since_page(co, "2026-02-01T21:00:00Z", None, &props(&["name"]))
        .await
        .unwrap();
    let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> = (21..=30).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(page.next, None);
    let merged = crm.merge(co, "3", "4").await.unwrap();
    assert!(matches!(
        crm.read(co, "4", &[]).await.unwrap(),
        ReadOutcome::MergedInto(r) if r.id == merged.id
    ));
    sandbox.shutdown().await;
}

/// Collects what the tracing subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

#[tokio::test]
async fn every_call_is_logged_once_with_its_facts_and_never_the_token() {
    let secret = "pat-na1-0123-secret";
    let sandbox = sandbox::start(SandboxOptions {
        seed: Some(SeedData {
            contacts: contacts(3, 1),
            companies: Vec::new(),
        }),
        rate_limit: RateLimit {
            max: 1_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000,
        },
        token: Some(secret.into()),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let good = HubSpotConnector::new(options(&sandbox, secret)).unwrap();
    good.read(C, "2", &[]).await.unwrap();
    assert_eq!(good.read(C, "77", &[]).await.unwrap(), ReadOutcome::Missing);
    let bad = HubSpotConnector::new(options(&sandbox, "pat-na1-wrong-secret")).unwrap();
    assert!(bad.read(C, "2", &[]).await.is_err());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("secret"), "{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| {
            e["target"] == "dupdesk::crm" && e["fields"]["op"].is_string()
        })
        .collect();
    assert_eq!(events.len(), 3, "{text}");
    let statuses: Vec<u64> = events
        .iter()
        .map(|e| e["fields"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 404, 401]);
    for e in &events {
        let f = &e["fields"];
        assert_eq!(f["op"], "read");
        assert_eq!(f["object"], "contacts");
        assert_eq!(f["attempt"], 1);
        assert!(f["duration_ms"].is_u64());
        assert!(f["ids"].is_string());
    }
    assert!(events[1]["fields"]["correlation_id"].is_string());
    sandbox.shutdown().await;
}
