//! The connector's rate limiting against the sandbox CRM's HubSpot-style rolling window, over
//! real HTTP on 127.0.0.1: 429s are waited out, and a burst far over the limit loses no call.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dupdesk::config::Secret;
use dupdesk::crm::hubspot::{HubSpotConnector, HubSpotOptions};
use dupdesk::crm::ratelimit::RateLimiter;
use dupdesk::crm::{Connector, ReadOutcome};
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{self, FaultSpec, RateLimit, Sandbox, SandboxOptions};

const TOKEN: &str = "t";
const C: ObjectType = ObjectType::Contacts;

/// `n` plain contacts with ids 1..=n.
fn contacts(n: usize) -> Vec<Record> {
    (1..=n)
        .map(|i| Record {
            object_type: C,
            id: i.to_string(),
            properties: BTreeMap::from([(
                "email".to_string(),
                Some(format!("person{i}@example.com")),
            )]),
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        })
        .collect()
}

async fn sandbox(n: usize, max: u32, interval: Duration, faults: &str) -> Sandbox {
    sandbox::start(SandboxOptions {
        port: 0,
        data: None,
        seed: Some(SeedData {
            contacts: contacts(n),
            companies: Vec::new(),
        }),
        rate_limit: RateLimit {
            max,
            interval,
            daily: 10_000_000,
        },
        search_rate_limit: None,
        faults: faults.parse::<FaultSpec>().unwrap(),
        token: Some(TOKEN.into()),
    })
    .await
    .unwrap()
}

fn options(sandbox: &Sandbox, rate_limit: u32, rate_interval: Duration) -> HubSpotOptions {
    HubSpotOptions {
        base_url: sandbox.base_url(),
        token: Secret::new(TOKEN),
        rate_limit,
        rate_interval,
        max_retries: 6,
        timeout: Duration::from_secs(30),
        page_size: 100,
        system: "crm".into(),
    }
}

async fn sandbox_429s(sandbox: &Sandbox) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["by_status"]["429"].as_u64().unwrap_or(0)
}

/// Reads ids 1..=n concurrently; returns each call's completion instant, in completion order.
async fn read_all_concurrently(crm: &Arc<HubSpotConnector>, n: usize) -> Vec<Instant> {
    let mut tasks = Vec::new();
    for i in 1..=n {
        let crm = crm.clone();
        tasks.push(tokio::spawn(async move {
            let id = ((i - 1) % 50 + 1).to_string();
            match crm.read(C, &id, &[]).await {
                Ok(ReadOutcome::Live(r)) => assert_eq!(r.id, id),
                other => panic!("call {i}: {other:?}"),
            }
            Instant::now()
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    done.sort();
    done
}

/// Another app on the same account spends the sandbox's whole window, so the connector's call
/// is refused although its own limiter had room; it waits the window out and succeeds.
#[tokio::test]
async fn a_429_is_answered_by_waiting_and_the_call_then_succeeds() {
    let interval = Duration::from_secs(2);
    let sandbox = sandbox(50, 5, interval, "").await;
    let other_app = reqwest::Client::new();
    for _ in 0..5 {
        let status = other_app
            .get(format!("{}/crm/v3/objects/contacts/1", sandbox.base_url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let crm = HubSpotConnector::new(options(&sandbox, 100, interval)).unwrap();
    match crm.read(C, "7", &[]).await.unwrap() {
        ReadOutcome::Live(r) => assert_eq!(r.id, "7"),
        other => panic!("{other:?}"),
    }
    let stats = crm.stats();
    assert!(stats.rate_limited >= 1, "{stats:?}");
    assert_eq!(stats.requests, 1 + stats.retries);
    assert_eq!(sandbox_429s(&sandbox).await, stats.rate_limited);
    sandbox.shutdown().await;
}

/// A client configured for more than the portal allows draws 429s at first, adopts the
/// server's maximum, and loses no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_configured_above_the_servers_limit_adapts_and_loses_nothing() {
    let interval = Duration::from_secs(1);
    let sandbox = sandbox(50, 5, interval, "").await;
    let limiter = Arc::new(RateLimiter::new(1_000, interval));
    let crm = Arc::new(
        HubSpotConnector::with_limiter(options(&sandbox, 1_000, interval), limiter.clone())
            .unwrap(),
    );
    read_all_concurrently(&crm, 20).await;
    let stats = crm.stats();
    assert_eq!(stats.requests, 20 + stats.retries);
    assert_eq!(sandbox_429s(&sandbox).await, stats.rate_limited);
    assert_eq!(limiter.limit(), 5);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_retry_after_header_is_honoured() {
    let sandbox = sandbox(
        10,
        1_000,
        Duration::from_secs(10),
        "burst429=0.3,burst_len=1,retry_after=1,seed=5",
    )
    .await;
    let crm = HubSpotConnector::new(options(&sandbox, 1_000, Duration::from_secs(10))).unwrap();
    for i in 1..=10 {
        crm.read(C, &i.to_string(), &[]).await.unwrap();
    }
    let stats = crm.stats();
    assert!(stats.rate_limited > 0, "{stats:?}");
    assert_eq!(stats.requests, 10 + stats.rate_limited);
    sandbox.shutdown().await;
}

/// 1,000 calls at once, ten times what the window allows: none is lost, and the calls beyond
/// the first window go at close to the limit (printed).
async fn burst_of_a_thousand(interval: Duration) {
    let sandbox = sandbox(50, 100, interval, "").await;
    let crm = Arc::new(HubSpotConnector::new(options(&sandbox, 100, interval)).unwrap());
    let started = Instant::now();
    let done = read_all_concurrently(&crm, 1_000).await;
    let stats = crm.stats();
    assert_eq!(stats.requests, 1_000 + stats.retries);
    // Calls beyond the first window's 100, over the time they took: the sustained rate.
    let sustained = 900.0 / (done[999] - done[99]).as_secs_f64();
    let limit = 100.0 / interval.as_secs_f64();
    println!(
        "1000 calls in {:.1} s; sustained {:.2}/s = {:.1}% of {limit}/s; {stats:?}; sandbox 429s: {}",
        started.elapsed().as_secs_f64(),
        sustained,
        sustained / limit * 100.0,
        sandbox_429s(&sandbox).await
    );
    sandbox.shutdown().await;
}

/// The burst against a window of 1 s: about 9 s. The connector's limiter and the sandbox's
/// window take the interval as a parameter, so HubSpot's 10 s window (below) checks the same
/// code at ten times the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_calls_loses_none() {
    burst_of_a_thousand(Duration::from_secs(1)).await;
}

/// The burst at HubSpot's own window, 100 calls per 10 s: about 90 s by nature, so out of the
/// default run; `.ci/run` runs it as a step of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about 90 s by nature (1,000 calls at 100 per 10 s): a step of its own in .ci/run"]
async fn a_burst_of_a_thousand_calls_at_hubspots_window_loses_none() {
    burst_of_a_thousand(Duration::from_secs(10)).await;
}

/// The figure for the report: `cargo test --test connector_ratelimit -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 20 s measurement, not a check"]
async fn measure_the_sustained_rate_of_300_calls() {
    let interval = Duration::from_secs(10);
    let sandbox = sandbox(50, 100, interval, "").await;
    let crm = Arc::new(HubSpotConnector::new(options(&sandbox, 100, interval)).unwrap());
    let done = read_all_concurrently(&crm, 300).await;
    let sustained = 200.0 / (done[299] - done[99]).as_secs_f64();
    println!(
        "300 calls: sustained {:.2}/s = {:.1}% of 10/s; {:?}; sandbox 429s: {}",
        sustained,
        sustained * 10.0,
        crm.stats(),
        sandbox_429s(&sandbox).await
    );
    sandbox.shutdown().await;
}
