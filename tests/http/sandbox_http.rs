//! The sandbox CRM over real HTTP on 127.0.0.1: paging, merge semantics, error bodies, batch
//! read, search, rate limit, PATCH history, persistence, and fault injection.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dupdesk::domain::model::{ObjectType, PropertyVersion, Record};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{self, FaultSpec, RateLimit, SandboxOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::Client;

const TOKEN: &str = "test-token";

fn contact(id: u64, props: &[(&str, &str)], day: u32) -> Record {
    let ts = Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).unwrap();
    let properties: BTreeMap<String, Option<String>> = props
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
    let history = props
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                vec![PropertyVersion {
                    value: Some(v.to_string()),
                    timestamp: ts,
                    source_type: "CRM_UI".into(),
                    source_id: None,
                }],
            )
        })
        .collect();
    Record {
        object_type: ObjectType::Contacts,
        id: id.to_string(),
        properties,
        history,
        created_at: Some(ts),
        updated_at: Some(ts),
        archived: false,
    }
}

fn small_seed() -> SeedData {
    SeedData {
        contacts: vec![
            contact(
                101,
                &[
                    ("email", "anna.berg@example.com"),
                    ("firstname", "Anna"),
                    ("lastname", "Berg"),
                    ("erp_customer_id", "C-1"),
                ],
                10,
            ),
            contact(
                202,
                &[
                    ("email", "a.berg@example.com"),
                    ("firstname", "Anne"),
                    ("lastname", "Berg"),
                    ("phone", "+49 228 1234"),
                    ("city", "Bonn"),
                ],
                5,
            ),
            contact(
                303,
                &[
                    ("email", "ANNA.BERG@example.com"),
                    ("firstname", "A."),
                    ("jobtitle", "CFO"),
                ],
                3,
            ),
            contact(
                404,
                &[("email", "bob@example.org"), ("firstname", "Bob")],
                20,
            ),
        ],
        companies: Vec::new(),
    }
}

fn options(seed: SeedData) -> SandboxOptions {
    SandboxOptions {
        seed: Some(seed),
        rate_limit: RateLimit {
            max: 100_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000,
        },
        token: Some(TOKEN.into()),
        ..SandboxOptions::default()
    }
}

fn assert_error_shape(body: &Value, category: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["category"], category, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let cid = body["correlationId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(cid).is_ok(), "{cid}");
}

#[tokio::test]
async fn paging_through_ten_thousand_contacts_returns_each_once() {
    let contacts = (1..=10_000u64)
        .map(|i| {
            let email = format!("person{i}@example.com");
            contact(1000 + i, &[("email", email.as_str())], 1 + (i % 28) as u32)
        })
        .collect();
    let sb = sandbox::start(options(SeedData {
        contacts,
        companies: Vec::new(),
    }))
    .await
    .unwrap();
    let c = Client::new(&sb, TOKEN);
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path =
            "/crm/v3/objects/contacts?limit=100&properties=email&properties=phone".to_string();
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, body) = c.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        let results = body["results"].as_array().unwrap();
        for r in results {
            let id = r["id"].as_str().unwrap().to_string();
            assert_eq!(r["properties"]["hs_object_id"], id.as_str());
            assert!(
                r["properties"]["email"]
                    .as_str()
                    .unwrap()
                    .starts_with("person")
            );
            // Asked for, but without a value: present as null.
            assert!(r["properties"]["phone"].is_null());
            assert!(r["properties"].get("city").is_none());
            assert!(seen.insert(id), "an id came twice");
        }
        match body.get("paging") {
            None => break,
            Some(p) => {
                let next = p["next"]["after"].as_str().unwrap().to_string();
                assert!(p["next"]["link"].as_str().unwrap().contains(&next));
                after = Some(next);
            }
        }
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(pages, 100);

    // Search pages through all of them too (HubSpot's window is exactly 10,000 results).
    let mut searched = HashSet::new();
    let mut after = json!(null);
    loop {
        let (status, body) = c
            .post(
                "/crm/v3/objects/contacts/search",
                json!({"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GTE", "value": "2026-01-01"}]}],
                       "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
                       "limit": 200, "after": after}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 10_000);
        for r in body["results"].as_array().unwrap() {
            assert!(searched.insert(r["id"].as_str().unwrap().to_string()));
        }
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = json!(a),
            None => break,
        }
    }
    assert_eq!(searched.len(), 10_000);

    // propertiesWithHistory caps the page at 50.
    let (_, body) = c
        .get("/crm/v3/objects/contacts?limit=100&propertiesWithHistory=email")
        .await;
    assert_eq!(body["results"].as_array().unwrap().len(), 50);
    assert_eq!(
        body["results"][0]["propertiesWithHistory"]["email"][0]["sourceType"],
        "CRM_UI"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn merge_makes_a_new_record_both_old_ids_resolve_to() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, merged) = c.merge("101", "202").await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let new_id = merged["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, "101");
    assert_ne!(new_id, "202");

    let props = "properties=email,firstname,phone,city,erp_customer_id,hs_merged_object_ids,hs_additional_emails";
    for old in ["101", "202"] {
        let (status, body) = c
            .get(&format!(
                "/crm/v3/objects/contacts/{old}?{props}&propertiesWithHistory=firstname"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], new_id.as_str());
        let p = &body["properties"];
        // The primary's values win...
        assert_eq!(p["email"], "anna.berg@example.com");
        assert_eq!(p["firstname"], "Anna");
        assert_eq!(p["erp_customer_id"], "C-1");
        // ...and what it lacks is filled from the other record.
        assert_eq!(p["phone"], "+49 228 1234");
        assert_eq!(p["city"], "Bonn");
        assert_eq!(p["hs_merged_object_ids"], "101;202");
        // HubSpot keeps the absorbed record's email as an additional one.
        assert_eq!(p["hs_additional_emails"], "a.berg@example.com");
        assert_eq!(p["hs_object_id"], new_id.as_str());
        // Both histories, newest first, the current value on top.
        let h = body["propertiesWithHistory"]["firstname"]
            .as_array()
            .unwrap();
        let values: Vec<&str> = h.iter().map(|v| v["value"].as_str().unwrap()).collect();
        assert!(
            values.contains(&"Anna") && values.contains(&"Anne"),
            "{values:?}"
        );
        assert_eq!(values[0], "Anna");
    }

    // The third member joins in a second step, on the id the first step returned.
    let (status, merged2) = c.merge(&new_id, "303").await;
    assert_eq!(status, StatusCode::OK);
    let final_id = merged2["id"].as_str().unwrap().to_string();
    assert_ne!(final_id, new_id);
    for old in ["101", "202", "303", new_id.as_str()] {
        let (_, body) = c
            .get(&format!(
                "/crm/v3/objects/contacts/{old}?properties=hs_merged_object_ids,jobtitle"
            ))
            .await;
        assert_eq!(body["id"], final_id.as_str());
        assert_eq!(body["properties"]["jobtitle"], "CFO");
        let ids: HashSet<&str> = body["properties"]["hs_merged_object_ids"]
            .as_str()
            .unwrap()
            .split(';')
            .collect();
        assert_eq!(ids, HashSet::from(["101", "202", "303", new_id.as_str()]));
    }

    // Ids that already resolve to one record cannot be merged again.
    let (status, body) = c.merge("101", "303").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");
    let (status, body) = c.merge("404", "404").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");
    let (status, body) = c.merge("404", "99999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "OBJECT_NOT_FOUND");

    let log = sb.merge_log().await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (
            log[0].primary_object_id.as_str(),
            log[0].object_id_to_merge.as_str(),
            log[0].new_id.as_str()
        ),
        ("101", "202", new_id.as_str())
    );
    assert_eq!(log[1].resolved_primary_id, new_id);
    assert_eq!(log[1].new_id, final_id);
    // The admin route serves the same log, without a token.
    let admin: Vec<sandbox::MergeLogEntry> =
        reqwest::get(format!("{}/_sandbox/merges", sb.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(admin, log);
    sb.shutdown().await;
}

#[tokio::test]
async fn error_bodies_have_hubspots_shape() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    // idProperty reads by a unique property instead of the id.
    let (status, body) = c
        .get("/crm/v3/objects/contacts/Bob@Example.org?idProperty=email")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "404");

    let (status, body) = c.get("/crm/v3/objects/contacts/987654").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "OBJECT_NOT_FOUND");

    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/101",
            json!({"properties": {"no_such_property": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Property values were not valid: ")
    );
    assert_eq!(body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");

    for read_only in [
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
        "hs_merged_object_ids",
    ] {
        let (status, body) = c
            .patch(
                "/crm/v3/objects/contacts/101",
                json!({"properties": {read_only: "1"}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{read_only}");
        assert_eq!(body["errors"][0]["code"], "READ_ONLY_VALUE");
    }

    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": "101"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");

    // No token, an empty one, a wrong one.
    let url = format!("{}/crm/v3/objects/contacts", sb.base_url());
    let http = reqwest::Client::new();
    for req in [
        http.get(&url),
        http.get(&url).header("Authorization", "Bearer "),
        http.get(&url).bearer_auth("wrong"),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("x-hubspot-ratelimit-max"));
        let body: Value = r.json().await.unwrap();
        assert_error_shape(&body, "INVALID_AUTHENTICATION");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn batch_read_reports_missing_ids_with_207() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": "101"}, {"id": "202"}], "properties": ["city"], "propertiesWithHistory": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert!(body.get("numErrors").is_none());
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());

    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": "101"}, {"id": "555"}], "properties": [], "propertiesWithHistory": ["email"]}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["results"][0]["id"], "101");
    assert!(body["results"][0]["propertiesWithHistory"]["email"].is_array());
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["555"]));

    let inputs: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": inputs, "properties": [], "propertiesWithHistory": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");

    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": "101", "properties": {"city": "Köln"}}, {"id": "777", "properties": {"city": "x"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["results"][0]["properties"]["city"], "Köln");
    sb.shutdown().await;
}

#[tokio::test]
async fn search_by_email_and_by_last_modified_date_with_paging() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "Anna.Berg@EXAMPLE.com"}]}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // Case-insensitive: 101 and 303 differ only in case.
    assert_eq!(ids, ["101", "303"]);
    assert_eq!(body["total"], 2);

    // GTE on a date, given as epoch millis; two per page.
    let since = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut req = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since.timestamp_millis().to_string()}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["lastmodifieddate"],
            "limit": 2,
        });
        if let Some(a) = &after {
            req["after"] = json!(a);
        }
        let (status, body) = c.post("/crm/v3/objects/contacts/search", req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 3);
        for r in body["results"].as_array().unwrap() {
            found.push(r["id"].as_str().unwrap().to_string());
        }
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => break,
        }
    }
    assert_eq!(found, ["202", "101", "404"]);

    // The same with an ISO date, and OR across groups.
    let (_, body) = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "LT", "value": "2026-01-04T00:00:00Z"}]},
                {"filters": [{"propertyName": "firstname", "operator": "IN", "values": ["bob"]}]}
            ]}),
        )
        .await;
    assert_eq!(body["total"], 2);

    let (status, body) = c
        .post("/crm/v3/objects/contacts/search", json!({"limit": 201}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");
    sb.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_hubspots_body_and_headers() {
    let mut opts = options(small_seed());
    opts.rate_limit = RateLimit {
        max: 5,
        interval: Duration::from_millis(500),
        daily: 1000,
    };
    let sb = sandbox::start(opts).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/crm/v3/objects/contacts/101", sb.base_url());
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["x-hubspot-ratelimit-max"], "5");
        assert_eq!(h["x-hubspot-ratelimit-interval-milliseconds"], "500");
        assert_eq!(h["x-hubspot-ratelimit-daily"], "1000");
        assert!(h.contains_key("x-hubspot-ratelimit-daily-remaining"));
        remaining.push(
            h["x-hubspot-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "0");
    let daily_left: u32 = r.headers()["x-hubspot-ratelimit-daily-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The refused request did not use up the daily budget.
    assert_eq!(daily_left, 995);
    let body: Value = r.json().await.unwrap();
    let obj = body.as_object().unwrap();
    let keys: HashSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from([
            "status",
            "message",
            "errorType",
            "correlationId",
            "policyName",
            "requestId"
        ])
    );
    assert_eq!(body["status"], "error");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(uuid::Uuid::parse_str(body["requestId"].as_str().unwrap()).is_ok());

    // Admin routes are not limited.
    let r = http
        .get(format!("{}/_sandbox/stats", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats: Value = r.json().await.unwrap();
    assert_eq!(stats["by_status"]["429"], 1);

    // The window rolls: once it has passed, requests are served again.
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        if r.status() == StatusCode::OK {
            served = true;
            break;
        }
    }
    assert!(served);
    sb.shutdown().await;
}

#[tokio::test]
async fn patch_appends_history_and_empty_string_clears() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/202",
            json!({"properties": {"phone": "+49 228 9999"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["properties"]["phone"], "+49 228 9999");
    let first_update = body["updatedAt"].as_str().unwrap().to_string();
    assert!(first_update.as_str() > "2026-01-05T12:00:00.000Z");
    assert_eq!(
        body["properties"]["lastmodifieddate"],
        first_update.as_str()
    );

    let (status, _) = c
        .patch(
            "/crm/v3/objects/contacts/202",
            json!({"properties": {"phone": ""}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = c
        .get("/crm/v3/objects/contacts/202?properties=phone&propertiesWithHistory=phone")
        .await;
    let phone = &body["properties"]["phone"];
    assert!(phone.is_null() || phone == "", "{phone}");
    let h = body["propertiesWithHistory"]["phone"].as_array().unwrap();
    let values: Vec<&str> = h.iter().map(|v| v["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["", "+49 228 9999", "+49 228 1234"]);
    assert_eq!(h[0]["sourceType"], sandbox::API_SOURCE_TYPE);
    assert_eq!(h[2]["sourceType"], "CRM_UI");

    // Create, then the same email again is a conflict, like HubSpot.
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "new@example.com", "firstname": "New"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["id"].as_str().unwrap();
    assert_eq!(body["properties"]["hs_object_id"], id);
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "NEW@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_shape(&body, "CONFLICT");
    sb.shutdown().await;
}

#[tokio::test]
async fn data_persists_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sandbox.sqlite");
    let mut opts = options(small_seed());
    opts.data = Some(data.clone());
    let sb = sandbox::start(opts.clone()).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (_, merged) = c.merge("101", "202").await;
    let new_id = merged["id"].as_str().unwrap().to_string();
    c.patch(
        "/crm/v3/objects/contacts/404",
        json!({"properties": {"city": "Wien"}}),
    )
    .await;
    sb.shutdown().await;

    // The seed is offered again but not reloaded: the store is not empty.
    let sb = sandbox::start(opts).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (_, body) = c.get("/crm/v3/objects/contacts/202").await;
    assert_eq!(body["id"], new_id.as_str());
    let (_, body) = c.get("/crm/v3/objects/contacts/404?properties=city").await;
    assert_eq!(body["properties"]["city"], "Wien");
    assert_eq!(sb.merge_log().await.unwrap().len(), 1);
    // New ids keep counting past the ones used before the restart.
    let (_, merged) = c.merge("303", "404").await;
    assert!(
        merged["id"].as_str().unwrap().parse::<u64>().unwrap() > new_id.parse::<u64>().unwrap()
    );
    sb.shutdown().await;
}

#[test]
fn fault_spec_errors_name_the_bad_part() {
    let err = "500=0.1,drop_after_merge=x"
        .parse::<FaultSpec>()
        .unwrap_err();
    assert!(err.to_string().contains("drop_after_merge=x"), "{err}");
    let err = "flood=0.1".parse::<FaultSpec>().unwrap_err();
    assert!(err.to_string().contains("flood"), "{err}");
    let spec: FaultSpec =
        "500=0.05,timeout=0.02,timeout_ms=3000,drop_after_merge=0.1,burst429=0.02,seed=7"
            .parse()
            .unwrap();
    assert_eq!(spec.seed, 7);
}

#[tokio::test]
async fn drop_after_merge_applies_the_merge_without_answering() {
    let mut opts = options(small_seed());
    opts.faults = "drop_after_merge=1".parse().unwrap();
    let sb = sandbox::start(opts).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = http
        .post(format!("{}/crm/v3/objects/contacts/merge", sb.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"primaryObjectId": "101", "objectIdToMerge": "202"}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The merge happened: both ids now read as one new record.
    let c = Client::new(&sb, TOKEN);
    let (_, a) = c.get("/crm/v3/objects/contacts/101").await;
    let (_, b) = c.get("/crm/v3/objects/contacts/202").await;
    assert_eq!(a["id"], b["id"]);
    let log = sb.merge_log().await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(a["id"], log[0].new_id.as_str());
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_500s_and_429_bursts_are_deterministic() {
    async fn statuses(spec: &str) -> Vec<u16> {
        let mut opts = options(small_seed());
        opts.faults = spec.parse().unwrap();
        let sb = sandbox::start(opts).await.unwrap();
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        for _ in 0..60 {
            let r = http
                .get(format!("{}/crm/v3/objects/contacts/101", sb.base_url()))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if status == 500 {
                let body: Value = r.json().await.unwrap();
                assert_error_shape(&body, "INTERNAL_ERROR");
            } else if status == 429 {
                assert_eq!(r.headers()["retry-after"], "2");
            }
            out.push(status);
        }
        sb.shutdown().await;
        out
    }
    let spec = "500=0.2,burst429=0.1,burst_len=3,retry_after=2,seed=11";
    let a = statuses(spec).await;
    assert_eq!(a, statuses(spec).await);
    assert!(
        a.contains(&500) && a.contains(&429) && a.contains(&200),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_timed_out_request_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(small_seed());
    opts.data = Some(dir.path().join("sandbox.sqlite"));
    opts.faults = "timeout=1,timeout_ms=1500".parse().unwrap();
    let sb = sandbox::start(opts.clone()).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = http
        .patch(format!("{}/crm/v3/objects/contacts/404", sb.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"properties": {"city": "Graz"}}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // Past the fault's delay: had the request gone on after the client left, it would show.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    sb.shutdown().await;

    opts.faults = FaultSpec::default();
    let sb = sandbox::start(opts).await.unwrap();
    let (_, body) = Client::new(&sb, TOKEN)
        .get("/crm/v3/objects/contacts/404?properties=city")
        .await;
    assert!(body["properties"]["city"].is_null(), "{body}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_requests_is_served() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let http = http.clone();
        let url = if i % 2 == 0 {
            format!(
                "{}/crm/v3/objects/contacts/101?properties=email",
                sb.base_url()
            )
        } else {
            format!("{}/crm/v3/objects/contacts?limit=100", sb.base_url())
        };
        tasks.spawn(async move {
            http.get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .map(|r| r.status())
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        if r.unwrap().unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000);
    sb.shutdown().await;
}

#[tokio::test]
async fn records_with_250_merges_between_them_cannot_be_merged() {
    let contacts = (1..=252u64)
        .map(|i| contact(i, &[("firstname", "Same")], 1))
        .collect();
    let sb = sandbox::start(options(SeedData {
        contacts,
        companies: Vec::new(),
    }))
    .await
    .unwrap();
    let c = Client::new(&sb, TOKEN);
    let mut survivor = "1".to_string();
    for other in 2..=251u64 {
        let (status, body) = c.merge(&survivor, &other.to_string()).await;
        assert_eq!(status, StatusCode::OK, "merge {other}: {body}");
        survivor = body["id"].as_str().unwrap().to_string();
    }
    // The survivor has been in 250 merges: no more.
    let (status, body) = c.merge(&survivor, "252").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, "VALIDATION_ERROR");
    let (_, body) = c
        .get(&format!(
            "/crm/v3/objects/contacts/{survivor}?properties=hs_merged_object_ids"
        ))
        .await;
    let absorbed = body["properties"]["hs_merged_object_ids"].as_str().unwrap();
    // All 251 seeded ids and the 249 intermediate records.
    assert_eq!(absorbed.split(';').count(), 251 + 249);
    sb.shutdown().await;
}

#[tokio::test]
async fn companies_merge_with_hubspots_exceptions() {
    let company = |id: u64, props: &[(&str, &str)], day: u32| {
        let mut r = contact(id, props, day);
        r.object_type = ObjectType::Companies;
        r
    };
    let seed = SeedData {
        contacts: Vec::new(),
        companies: vec![
            company(
                11,
                &[
                    ("name", "Acme GmbH"),
                    ("domain", "acme.de"),
                    ("lifecyclestage", "lead"),
                ],
                2,
            ),
            company(
                12,
                &[
                    ("name", "ACME"),
                    ("domain", "acme.com"),
                    ("city", "Berlin"),
                    ("lifecyclestage", "customer"),
                ],
                9,
            ),
        ],
    };
    let sb = sandbox::start(options(seed)).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, merged) = c
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": "11", "objectIdToMerge": "12"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let new_id = merged["id"].as_str().unwrap();
    // Companies report their last change in hs_lastmodifieddate.
    assert!(merged["properties"]["hs_lastmodifieddate"].is_string());
    let (_, body) = c
        .get("/crm/v3/objects/companies/12?properties=name,domain,city,lifecyclestage,hs_additional_domains,hs_merged_object_ids")
        .await;
    assert_eq!(body["id"], new_id);
    let p = &body["properties"];
    assert_eq!(p["name"], "Acme GmbH");
    assert_eq!(p["domain"], "acme.de");
    assert_eq!(p["city"], "Berlin");
    assert_eq!(p["hs_additional_domains"], "acme.com");
    // The stage furthest down the funnel wins over the primary's.
    assert_eq!(p["lifecyclestage"], "customer");
    assert_eq!(p["hs_merged_object_ids"], "11;12");
    // A contact id is not a company id.
    let (status, _) = c.get("/crm/v3/objects/contacts/11").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sb.shutdown().await;
}

/// The per-property entries HubSpot puts, as JSON text, after "Property values were not
/// valid: " in a validation error's message.
fn invalid_entries(body: &Value) -> Vec<Value> {
    let message = body["message"].as_str().unwrap();
    let list = message
        .strip_prefix("Property values were not valid: ")
        .unwrap_or_else(|| panic!("not a property validation error: {message}"));
    serde_json::from_str(list).unwrap()
}

fn codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["context"]["propertyName"][0]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn properties_api_lists_hubspots_definitions_and_reads_one() {
    let mut seed = small_seed();
    seed.contacts[0]
        .properties
        .insert("favourite_colour".into(), Some("teal".into()));
    let sb = sandbox::start(options(seed)).await.unwrap();
    let c = Client::new(&sb, TOKEN);

    let (status, body) = c.get("/crm/v3/properties/contacts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("paging").is_none(), "HubSpot does not page it");
    let results = body["results"].as_array().unwrap();
    let by_name = |name: &str| {
        results
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no property {name}"))
            .clone()
    };
    // What HubSpot's own clients require of every definition.
    for p in results {
        for field in [
            "name",
            "label",
            "type",
            "fieldType",
            "description",
            "groupName",
            "options",
        ] {
            assert!(p.get(field).is_some(), "{} lacks {field}", p["name"]);
        }
    }
    let email = by_name("email");
    assert_eq!(
        (email["type"].as_str(), email["fieldType"].as_str()),
        (Some("string"), Some("text"))
    );
    assert_eq!(
        email["hasUniqueValue"], false,
        "HubSpot's definition does not say so"
    );
    assert_eq!(email["modificationMetadata"]["readOnlyValue"], false);
    let stage = by_name("lifecyclestage");
    assert_eq!(stage["type"], "enumeration");
    let values: Vec<&str> = stage["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "subscriber",
            "lead",
            "marketingqualifiedlead",
            "salesqualifiedlead",
            "opportunity",
            "customer",
            "evangelist",
            "other"
        ]
    );
    assert_eq!(stage["options"][2]["label"], "Marketing Qualified Lead");
    for read_only in [
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
        "hs_merged_object_ids",
        "hs_additional_emails",
    ] {
        assert_eq!(
            by_name(read_only)["modificationMetadata"]["readOnlyValue"],
            true,
            "{read_only}"
        );
    }
    assert_eq!(by_name("createdate")["type"], "datetime");
    // The portal's own custom property, and one a seeded record brought.
    for custom in ["erp_customer_id", "favourite_colour"] {
        let p = by_name(custom);
        assert_eq!(
            (p["type"].as_str(), p["fieldType"].as_str()),
            (Some("string"), Some("text"))
        );
        assert!(p.get("hubspotDefined").is_none(), "{custom}");
    }

    let (status, body) = c.get("/crm/v3/properties/companies/industry").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["type"].as_str(), body["fieldType"].as_str()),
        (Some("enumeration"), Some("select"))
    );
    assert!(
        body["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["value"] == "COMPUTER_SOFTWARE")
    );
    let (status, body) = c.get("/crm/v3/properties/companies").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hs_lastmodifieddate") && names.contains(&"hs_additional_domains"));
    assert!(
        !names.contains(&"favourite_colour"),
        "a contact's property is not a company's"
    );

    let (status, body) = c.get("/crm/v3/properties/contacts/no_such_property").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "OBJECT_NOT_FOUND");
    let (status, body) = c.get("/crm/v3/properties/contacts?archived=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"], json!([]));
    sb.shutdown().await;
}

#[tokio::test]
async fn writes_breaking_hubspots_value_rules_are_refused_with_its_codes() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    // Custom date and number properties, created through HubSpot's properties API.
    for (name, kind, field) in [
        ("renewal_date", "date", "date"),
        ("seats", "number", "number"),
    ] {
        let (status, body) = c
            .post(
                "/crm/v3/properties/contacts",
                json!({"name": name, "label": name, "type": kind, "fieldType": field,
                       "groupName": "contactinformation"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["type"], kind);
    }
    let (status, body) = c
        .post(
            "/crm/v3/properties/contacts",
            json!({"name": "seats", "label": "Seats", "type": "number", "fieldType": "number",
                   "groupName": "contactinformation"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_shape(&body, "OBJECT_ALREADY_EXISTS");

    let refused = |props: Value, want: &[(&str, &str)]| {
        let c = &c;
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, code)| (n.to_string(), code.to_string()))
            .collect();
        async move {
            let (status, body) = c
                .patch("/crm/v3/objects/contacts/101", json!({"properties": props}))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_error_shape(&body, "VALIDATION_ERROR");
            assert_eq!(codes(&body), want, "{body}");
            body
        }
    };
    let body = refused(
        json!({"lifecyclestage": "vip"}),
        &[("lifecyclestage", "INVALID_OPTION")],
    )
    .await;
    let entries = invalid_entries(&body);
    assert_eq!(entries[0]["isValid"], false);
    assert_eq!(entries[0]["error"], "INVALID_OPTION");
    assert_eq!(entries[0]["name"], "lifecyclestage");
    assert!(
        entries[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("vip was not one of the allowed options: [subscriber, lead, ")
    );
    // Option values, not labels.
    refused(
        json!({"lifecyclestage": "Customer"}),
        &[("lifecyclestage", "INVALID_OPTION")],
    )
    .await;
    let body = refused(
        json!({"email": "anna.berg@example.con"}),
        &[("email", "INVALID_EMAIL")],
    )
    .await;
    assert_eq!(
        invalid_entries(&body)[0]["message"],
        "Email address anna.berg@example.con is invalid"
    );
    refused(json!({"email": "anna.berg"}), &[("email", "INVALID_EMAIL")]).await;
    let body = refused(
        json!({"renewal_date": "1786334400000"}),
        &[("renewal_date", "INVALID_DATE")],
    )
    .await;
    assert_eq!(
        invalid_entries(&body)[0]["message"],
        "1786334400000 is at 4:0:0.0 UTC, not midnight!"
    );
    refused(
        json!({"renewal_date": "2026-08-10T04:00:00Z"}),
        &[("renewal_date", "INVALID_DATE")],
    )
    .await;
    let body = refused(json!({"seats": "twelve"}), &[("seats", "INVALID_LONG")]).await;
    assert_eq!(
        invalid_entries(&body)[0]["message"],
        "twelve was not a valid long."
    );
    // Every problem of one request is named, and nothing of it is applied.
    refused(
        json!({"city": "Köln", "lifecyclestage": "vip", "no_such_property": "x",
               "hs_object_id": "7", "seats": "1,5"}),
        &[
            ("hs_object_id", "READ_ONLY_VALUE"),
            ("lifecyclestage", "INVALID_OPTION"),
            ("no_such_property", "PROPERTY_DOESNT_EXIST"),
            ("seats", "INVALID_LONG"),
        ],
    )
    .await;
    let (_, body) = c.get("/crm/v3/objects/contacts/101?properties=city").await;
    assert!(body["properties"]["city"].is_null(), "{body}");
    // Creates are checked the same way.
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "x@example", "lifecyclestage": "lead"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        codes(&body),
        [("email".to_string(), "INVALID_EMAIL".to_string())]
    );

    // Valid values of each kind, and "" clearing whatever kind.
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/101",
            json!({"properties": {"lifecyclestage": "customer", "renewal_date": "2026-08-10",
                                  "seats": "12.5", "email": "Anna.Berg@Example.COM"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["properties"]["lifecyclestage"], "customer");
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/101",
            json!({"properties": {"lifecyclestage": "", "renewal_date": "", "seats": "",
                                  "email": ""}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = c
        .get("/crm/v3/objects/contacts/101?properties=lifecyclestage,seats,email")
        .await;
    for cleared in ["lifecyclestage", "seats", "email"] {
        let v = &body["properties"][cleared];
        assert!(v.is_null() || v == "", "{cleared}: {v}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_input_is_refused_whole() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": "202", "properties": {"city": "Köln"}},
                {"id": "404", "properties": {"lifecyclestage": "vip"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        codes(&body),
        [("lifecyclestage".to_string(), "INVALID_OPTION".to_string())]
    );
    let (_, body) = c.get("/crm/v3/objects/contacts/202?properties=city").await;
    assert_eq!(
        body["properties"]["city"], "Bonn",
        "the good input was not applied"
    );

    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": "202", "properties": {"city": "Köln"}},
                {"id": "202", "properties": {"city": "Bonn"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Duplicate IDs found in batch input")
    );

    // Valid inputs with an unknown id: the others are applied, the id reported with a 207.
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": "202", "properties": {"city": "Köln"}},
                {"id": "999999", "properties": {"city": "Köln"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["results"][0]["properties"]["city"], "Köln");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["999999"]));

    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "one@example.com"}},
                {"properties": {"email": "two@example.com", "lifecyclestage": "vip"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, body) = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [
                {"propertyName": "email", "operator": "EQ", "value": "one@example.com"}]}]}),
        )
        .await;
    assert_eq!(body["total"], 0, "nothing of a refused batch was created");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_contacts_email_stays_unique_on_patch_and_batch_update() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    // Another live contact's email, in another case: HubSpot's 409.
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/404",
            json!({"properties": {"email": "Anna.Berg@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error_shape(&body, "CONFLICT");
    assert_eq!(body["message"], "Contact already exists. Existing ID: 101");
    let (_, body) = c.get("/crm/v3/objects/contacts/404").await;
    assert_eq!(body["properties"]["email"], "bob@example.org");

    // The seed holds 101 and 303 with one address (old data); re-sending a contact's own
    // value is no new claim on it.
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/303",
            json!({"properties": {"email": "ANNA.BERG@example.com", "jobtitle": "CEO"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": "202", "properties": {"city": "Köln"}},
                {"id": "404", "properties": {"email": "a.berg@EXAMPLE.com"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["message"], "Contact already exists. Existing ID: 202");
    let (_, body) = c.get("/crm/v3/objects/contacts/202?properties=city").await;
    assert_eq!(
        body["properties"]["city"], "Bonn",
        "nothing of the batch was applied"
    );

    // A merged-away address lives on as an additional email of the survivor: still taken.
    let (status, merged) = c.merge("101", "202").await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let survivor = merged["id"].as_str().unwrap().to_string();
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/404",
            json!({"properties": {"email": "a.berg@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {survivor}")
    );
    // The survivor itself may take its absorbed address as its email.
    let (status, body) = c
        .patch(
            &format!("/crm/v3/objects/contacts/{survivor}"),
            json!({"properties": {"email": "a.berg@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Two inputs of one batch create cannot share an address either.
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "twin@example.com"}},
                {"properties": {"email": "TWIN@example.com"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Contact already exists. Existing ID: ")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn a_has_unique_value_property_refuses_a_value_another_record_has() {
    let sb = sandbox::start(options(small_seed())).await.unwrap();
    let c = Client::new(&sb, TOKEN);
    let (status, body) = c
        .post(
            "/crm/v3/properties/contacts",
            json!({"name": "customer_number", "label": "Customer number", "type": "string",
                   "fieldType": "text", "groupName": "contactinformation",
                   "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, body) = c.get("/crm/v3/properties/contacts/customer_number").await;
    assert_eq!(body["hasUniqueValue"], true);

    let (status, _) = c
        .patch(
            "/crm/v3/objects/contacts/101",
            json!({"properties": {"customer_number": "K-1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = c
        .patch(
            "/crm/v3/objects/contacts/202",
            json!({"properties": {"customer_number": "K-1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error_shape(&body, "VALIDATION_ERROR");
    assert_eq!(
        body["message"],
        format!(
            "Cannot set PropertyValueCoordinates{{portalId={}, objectTypeId=0-1, propertyName=customer_number, value=K-1}} on 202. 101 already has that value.",
            sandbox::properties::PORTAL_ID
        )
    );
    let (status, body) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": "303", "properties": {"customer_number": "K-2"}},
                {"id": "404", "properties": {"customer_number": "K-2"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("already has that value.")
    );
    // Once 101 lets the value go, 202 may have it.
    let (status, _) = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": "101", "properties": {"customer_number": ""}},
                {"id": "202", "properties": {"customer_number": "K-1"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sb.shutdown().await;
}
