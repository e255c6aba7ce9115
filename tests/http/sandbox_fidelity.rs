//! The sandbox refuses what HubSpot refuses, with HubSpot's answer, over real HTTP: the search
//! endpoints' own rate limit (429 `SECONDLY`), URLs over HubSpot's length (414), `limit` and
//! `after` edge cases, and the facts of `shared/CRM-API.md` the other suites do not cover.
//! Also that the connector copes: it paces searches under the limit, retries a `SECONDLY`
//! 429, and never builds a URL HubSpot would refuse.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dupdesk::config::Secret;
use dupdesk::crm::hubspot::{HubSpotConnector, HubSpotOptions, URL_BUDGET};
use dupdesk::crm::{Connector, ReadOutcome};
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{
    self, RateLimit, Sandbox, SandboxOptions, SearchRateLimit, URL_MAX,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{Client, TOKEN, config, generous, record_at};

fn record(t: ObjectType, id: u64, props: &[(&str, String)], minute: u32) -> Record {
    record_at(
        t,
        id,
        props,
        Utc.with_ymd_and_hms(2026, 2, 1, 9, minute, 0).unwrap(),
    )
}

fn seed(n: u64) -> SeedData {
    let contacts = (1..=n)
        .map(|i| {
            record(
                ObjectType::Contacts,
                1000 + i,
                &[
                    ("email", format!("person{i}@example.com")),
                    ("firstname", format!("Person{i}")),
                ],
                (i % 60) as u32,
            )
        })
        .collect();
    let companies = [
        (501, "Acme", "acme.example", 10),
        (502, "Globex", "globex.example", 20),
        (503, "Initech", "initech.example", 30),
    ]
    .iter()
    .map(|(id, name, domain, minute)| {
        record(
            ObjectType::Companies,
            *id,
            &[("name", name.to_string()), ("domain", domain.to_string())],
            *minute,
        )
    })
    .collect();
    SeedData {
        contacts,
        companies,
    }
}

async fn start(n: u64, limit: RateLimit, search: Option<SearchRateLimit>) -> Sandbox {
    sandbox::start(SandboxOptions {
        seed: Some(seed(n)),
        rate_limit: limit,
        search_rate_limit: search,
        token: Some(TOKEN.into()),
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

fn validation(status: StatusCode, body: &Value, names: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR", "{body}");
    assert!(body["correlationId"].is_string(), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(names), "{message:?} should name {names:?}");
}

fn connector(sb: &Sandbox) -> HubSpotConnector {
    let mut opts = HubSpotOptions::from_config(&config(), Secret::new(TOKEN));
    opts.base_url = sb.base_url();
    opts.rate_limit = 10_000;
    opts.rate_interval = Duration::from_secs(10);
    HubSpotConnector::new(opts)
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200))
}

// ---------------------------------------------------------------------------------------------
// The search rate limit

#[tokio::test]
async fn searches_over_the_search_limit_get_hubspots_secondly_429() {
    // HubSpot's 5 searches, over a window long enough that the test does not race it.
    let sb = start(
        10,
        RateLimit::default(),
        Some(SearchRateLimit {
            max: 5,
            interval: Duration::from_secs(60),
        }),
    )
    .await;
    let c = Client::new(&sb, TOKEN);
    let query = json!({"filterGroups": [], "limit": 1});
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..12 {
        let (status, body) = c.search("contacts", query.clone()).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refusal = Some(body);
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 5, "{statuses:?}");
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
    );
    let body = refusal.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "SECONDLY");
    assert!(body["correlationId"].is_string() && body["requestId"].is_string());

    // Companies search spends the same budget; other endpoints do not hit it.
    let (status, body) = c.search("companies", query.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let r = c
        .http
        .get(format!("{}/crm/v3/objects/contacts?limit=1", c.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Refused searches spent none of the general budget: 5 searches and this list did.
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "94");
    assert_eq!(c.stats().await["by_status"]["429"], 8);
}

#[tokio::test]
async fn the_search_window_rolls_and_defaults_to_hubspots_five_per_second() {
    assert_eq!(
        SearchRateLimit::derived(&RateLimit::default()),
        SearchRateLimit {
            max: 5,
            interval: Duration::from_secs(1)
        }
    );
    let sb = start(
        3,
        generous(),
        Some(SearchRateLimit {
            max: 2,
            interval: Duration::from_millis(300),
        }),
    )
    .await;
    let c = Client::new(&sb, TOKEN);
    let query = json!({"limit": 1});
    assert_eq!(c.search("contacts", query.clone()).await.0, StatusCode::OK);
    assert_eq!(c.search("contacts", query.clone()).await.0, StatusCode::OK);
    assert_eq!(
        c.search("contacts", query.clone()).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.search("contacts", query.clone()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_pull_and_uniqueness_searches_on_one_connector_stay_under_the_search_limit() {
    // HubSpot's search limit, and a general limit that is not the point here.
    let sb = start(450, generous(), Some(SearchRateLimit::HUBSPOT)).await;
    let crm = Arc::new(connector(&sb));
    let props = vec!["email".to_string(), "firstname".to_string()];

    let puller = {
        let crm = crm.clone();
        let props = props.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            let mut after: Option<String> = None;
            loop {
                let page = crm
                    .modified_since_page(
                        ObjectType::Contacts,
                        "2000-01-01T00:00:00.000Z",
                        after.as_deref(),
                        &props,
                    )
                    .await
                    .unwrap();
                seen += page.records.len();
                match page.next {
                    Some(n) => after = Some(n),
                    None => return seen,
                }
            }
        })
    };
    let checker = {
        let crm = crm.clone();
        tokio::spawn(async move {
            let mut found = Vec::new();
            for i in 1..=10 {
                let email = format!("PERSON{i}@example.com");
                let hits = crm.search_by_email(&email, &props).await.unwrap();
                found.push(hits.len());
                let hits = crm
                    .search_equal(
                        ObjectType::Contacts,
                        "firstname",
                        &format!("Person{i}"),
                        &[],
                    )
                    .await
                    .unwrap();
                found.push(hits.len());
            }
            found
        })
    };
    assert!(puller.await.unwrap() >= 450);
    assert_eq!(checker.await.unwrap(), vec![1; 20]);
    assert_eq!(crm.stats().rate_limited, 0, "{:?}", crm.stats());
    assert!(c_stats_have_no(&sb, "429").await);
}

async fn c_stats_have_no(sb: &Sandbox, status: &str) -> bool {
    Client::new(sb, TOKEN).stats().await["by_status"]
        .get(status)
        .is_none()
}

#[tokio::test]
async fn two_connectors_over_the_search_limit_wait_out_its_429s_and_succeed() {
    // Two processes on one token (a pull and an apply) can together search faster than
    // HubSpot allows; each waits out the SECONDLY 429s and every search completes.
    let sb = start(20, generous(), Some(SearchRateLimit::HUBSPOT)).await;
    let a = Arc::new(connector(&sb));
    let b = Arc::new(connector(&sb));
    let run = |crm: Arc<HubSpotConnector>, from: u64| {
        tokio::spawn(async move {
            let mut hits = Vec::new();
            for i in from..from + 7 {
                let found = crm
                    .search_by_email(&format!("person{i}@example.com"), &[])
                    .await
                    .unwrap();
                hits.push(found.into_iter().map(|r| r.id).collect::<Vec<_>>());
            }
            hits
        })
    };
    let (ha, hb) = (run(a.clone(), 1), run(b.clone(), 8));
    let (ha, hb) = (ha.await.unwrap(), hb.await.unwrap());
    for (i, hit) in ha.iter().chain(&hb).enumerate() {
        assert_eq!(hit, &vec![(1001 + i as u64).to_string()]);
    }
    let limited = a.stats().rate_limited + b.stats().rate_limited;
    assert!(
        limited > 0,
        "14 searches in about 2 s should meet the limit"
    );
    assert_eq!(
        Client::new(&sb, TOKEN).stats().await["by_status"]["429"],
        json!(limited)
    );
}

// ---------------------------------------------------------------------------------------------
// URL length

#[tokio::test]
async fn a_url_over_hubspots_length_is_answered_414_before_auth() {
    let sb = start(3, generous(), None).await;
    let c = Client::new(&sb, TOKEN);
    let long = |len: usize| {
        let mut path = "/crm/v3/objects/contacts?limit=1".to_string();
        while path.len() < len {
            path.push_str("&properties=custom_property_name");
        }
        path.truncate(len);
        path
    };
    // A URL of HubSpot's length is served (unknown property names are ignored, as HubSpot does).
    let (status, body) = c.get(&long(URL_MAX)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (len, token) in [(URL_MAX + 1, true), (25_000, true), (25_000, false)] {
        let mut req = c.http.get(format!("{}{}", c.base, long(len)));
        if token {
            req = req.bearer_auth(TOKEN);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::URI_TOO_LONG, "{len}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let text = r.text().await.unwrap();
        assert!(text.contains("414 Request-URI Too Large"), "{text}");
    }
    // Refused before any budget was spent: only the one served request counted.
    let r = c
        .http
        .get(format!("{}/crm/v3/objects/contacts?limit=1", c.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "99998");
}

#[tokio::test]
async fn the_connector_never_sends_a_url_hubspot_refuses() {
    let sb = start(120, generous(), None).await;
    let c = Client::new(&sb, TOKEN);
    let (status, merged) = c
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": "1001", "objectIdToMerge": "1002"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let survivor = merged["id"].as_str().unwrap().to_string();

    let crm = connector(&sb);
    // A portal with hundreds of custom properties, all asked for: far over the URL budget.
    let mut props = vec!["email".to_string(), "firstname".to_string()];
    props.extend((0..800).map(|i| format!("custom_property_number_{i:04}")));
    assert!(props.iter().map(|p| p.len() + 12).sum::<usize>() > 2 * URL_BUDGET);

    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = crm
            .list_page(ObjectType::Contacts, after.as_deref(), &props, &[])
            .await
            .unwrap();
        listed.extend(page.records);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(listed.len(), 119);
    let ids: Vec<u64> = listed.iter().map(|r| r.id.parse().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "list order is kept");
    assert!(
        listed
            .iter()
            .all(|r| r.get("email").is_some() && r.get("firstname").is_some())
    );

    // With history too (a page of at most 50).
    let page = crm
        .list_page(ObjectType::Contacts, None, &props, &["email".to_string()])
        .await
        .unwrap();
    assert!(!page.records.is_empty() && page.records.len() <= 50);
    assert!(page.records.iter().all(|r| !r.history["email"].is_empty()));

    match crm
        .read(ObjectType::Contacts, "1003", &props)
        .await
        .unwrap()
    {
        ReadOutcome::Live(r) => assert_eq!(r.get("email"), Some("person3@example.com")),
        other => panic!("{other:?}"),
    }
    match crm
        .read(ObjectType::Contacts, "1002", &props)
        .await
        .unwrap()
    {
        ReadOutcome::MergedInto(r) => assert_eq!(r.id, survivor),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        crm.read(ObjectType::Contacts, "999999", &props)
            .await
            .unwrap(),
        ReadOutcome::Missing
    );
    assert!(c_stats_have_no(&sb, "414").await);
}

// ---------------------------------------------------------------------------------------------
// limit and after

#[tokio::test]
async fn limit_and_after_edge_cases_answer_as_hubspot_does() {
    let sb = start(230, generous(), None).await;
    let c = Client::new(&sb, TOKEN);

    // A list page is cut to HubSpot's maximum, and continues.
    let (status, body) = c.get("/crm/v3/objects/contacts?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 100);
    assert!(body["paging"]["next"]["after"].is_string());
    let (_, body) = c
        .get("/crm/v3/objects/contacts?limit=100&propertiesWithHistory=email")
        .await;
    assert_eq!(body["results"].as_array().unwrap().len(), 50);
    let (_, body) = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(body["results"].as_array().unwrap().len(), 10, "default 10");

    for (query, names) in [
        ("limit=0", "limit"),
        ("limit=-5", "-5"),
        ("limit=ten", "ten"),
        ("limit=2.5", "2.5"),
        ("after=garbage", "garbage"),
        ("after=-3", "-3"),
    ] {
        let (status, body) = c.get(&format!("/crm/v3/objects/contacts?{query}")).await;
        validation(status, &body, names);
    }

    // Search: up to 200 a page, a numeric string is a number, 0 is the total alone.
    let (status, body) = c.search("contacts", json!({"limit": 200})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 200);
    let (_, body) = c.search("contacts", json!({"limit": "5"})).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 5);
    assert_eq!(body["paging"]["next"]["after"], "5");
    let (status, body) = c
        .search("contacts", json!({"limit": 0, "after": "0"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 230);
    assert_eq!(body["results"], json!([]));
    assert!(
        body.get("paging").is_none(),
        "limit 0 must not hand back its own cursor: {body}"
    );
    // A cursor as a JSON number is read as HubSpot's JSON reader does.
    let (_, body) = c
        .search("contacts", json!({"limit": 10, "after": 225}))
        .await;
    assert_eq!(body["results"].as_array().unwrap().len(), 5);
    assert!(body.get("paging").is_none());

    for (request, names) in [
        (json!({"limit": 201}), "200"),
        (json!({"limit": -1}), "-1"),
        (json!({"limit": "many"}), "many"),
        (json!({"limit": 1.5}), "1.5"),
        (json!({"after": "zzz"}), "zzz"),
        (json!({"after": "-10"}), "-10"),
        // Past the 10,000-result window, whatever the total.
        (json!({"after": "10000"}), "10000"),
    ] {
        let (status, body) = c.search("contacts", request.clone()).await;
        validation(status, &body, names);
        let (status, body) = c.search("companies", request).await;
        validation(status, &body, names);
    }
}

// ---------------------------------------------------------------------------------------------
// CRM-API.md facts not covered elsewhere

#[tokio::test]
async fn companies_sort_and_filter_on_hs_lastmodifieddate() {
    let sb = start(3, generous(), None).await;
    let c = Client::new(&sb, TOKEN);
    let (status, body) = c
        .search(
            "companies",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "2026-02-01T09:15:00.000Z"}]}],
                   "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
                   "properties": ["name", "hs_lastmodifieddate"], "limit": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Initech", "Globex"]);
    assert_eq!(body["total"], 2);
    assert_eq!(
        body["results"][0]["properties"]["hs_lastmodifieddate"],
        "2026-02-01T09:30:00.000Z"
    );
}

#[tokio::test]
async fn a_contacts_merge_keeps_the_lifecycle_stage_furthest_along() {
    let mut data = seed(0);
    data.contacts = vec![
        record(
            ObjectType::Contacts,
            11,
            &[
                ("email", "a@example.com".into()),
                ("lifecyclestage", "lead".into()),
            ],
            1,
        ),
        record(
            ObjectType::Contacts,
            12,
            &[
                ("email", "b@example.com".into()),
                ("lifecyclestage", "customer".into()),
            ],
            2,
        ),
    ];
    let sb = sandbox::start(SandboxOptions {
        seed: Some(data),
        rate_limit: generous(),
        token: Some(TOKEN.into()),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, merged) = c
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": "11", "objectIdToMerge": "12"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let id = merged["id"].as_str().unwrap();
    let (_, body) = c
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=email,lifecyclestage,hs_additional_emails"
        ))
        .await;
    // The primary's email stays; the other's becomes an additional one; the stage furthest
    // along wins although the primary had one.
    assert_eq!(body["properties"]["email"], "a@example.com");
    assert_eq!(body["properties"]["hs_additional_emails"], "b@example.com");
    assert_eq!(body["properties"]["lifecyclestage"], "customer");
}

#[tokio::test]
async fn merge_ids_are_strings_and_both_are_required() {
    let sb = start(3, generous(), None).await;
    let c = Client::new(&sb, TOKEN);
    for body in [
        json!({"primaryObjectId": "1001"}),
        json!({"objectIdToMerge": "1002"}),
        json!({}),
    ] {
        let (status, answer) = c.post("/crm/v3/objects/contacts/merge", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["category"], "VALIDATION_ERROR");
    }
    // Nothing was merged by the refusals.
    let (_, body) = c.get("/crm/v3/objects/contacts/1001").await;
    assert_eq!(body["id"], "1001");
}
