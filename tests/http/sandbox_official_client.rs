//! HubSpot's official Python client (`hubspot-api-client`), unchanged, against the sandbox CRM:
//! the sandbox must be faithful enough that HubSpot's own client libraries work when pointed
//! at its URL. Needs `python3 -m pip install hubspot-api-client`.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{self, RateLimit, SandboxOptions};

use common::record_at;

const TOKEN: &str = "pat-na1-official-client-check";

fn record(t: ObjectType, id: u64, props: &[(&str, String)], day: u32) -> Record {
    record_at(
        t,
        id,
        props,
        Utc.with_ymd_and_hms(2026, 1, day, 9, 30, 0).unwrap(),
    )
}

/// Run `tests/official_client/NAME` with `urls` and the token; it must pass all its checks.
async fn run_check(name: &str, urls: &[String]) {
    let script = format!(
        "{}/tests/official_client/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(&script)
            .args(urls)
            .arg(TOKEN)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} took more than 2 minutes"))
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

fn seed() -> SeedData {
    let contacts = (1..=230u64)
        .map(|n| {
            record(
                ObjectType::Contacts,
                1000 + n,
                &[
                    ("email", format!("person{n}@example.com")),
                    ("firstname", format!("Person{n}")),
                ],
                1 + (n % 28) as u32,
            )
        })
        .collect();
    let companies = [
        (501, "Acme", "acme.example"),
        (502, "Globex", "globex.example"),
        (503, "Initech", "initech.example"),
    ]
    .iter()
    .map(|(id, name, domain)| {
        record(
            ObjectType::Companies,
            *id,
            &[("name", name.to_string()), ("domain", domain.to_string())],
            2,
        )
    })
    .collect();
    SeedData {
        contacts,
        companies,
    }
}

/// The seeded sandbox with a limit generous enough that no check waits for it.
async fn seeded_sandbox() -> sandbox::Sandbox {
    sandbox::start(SandboxOptions {
        seed: Some(seed()),
        token: Some(TOKEN.into()),
        rate_limit: RateLimit {
            max: 10_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000,
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspots_official_python_client_works_against_the_sandbox() {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import hubspot"])
        .output()
        .await;
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "HubSpot's official Python client is not installed: run `python3 -m pip install hubspot-api-client` ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "python3 is needed for this test ({e}); then run `python3 -m pip install hubspot-api-client`"
        ),
    }

    let sb = seeded_sandbox().await;
    run_check("check.py", &[sb.base_url()]).await;
    assert_eq!(sb.merge_log().await.unwrap().len(), 1);
    sb.shutdown().await;
}

/// `check_strict.py`: what the sandbox refuses, as HubSpot's official client sees it (the
/// 10,000 window, companies search, 429 bodies of both policies, 401, invalid and read-only
/// values, the email 409, 414).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspots_official_python_client_sees_the_sandbox_refuse_what_hubspot_refuses() {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import hubspot"])
        .output()
        .await;
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "HubSpot's official Python client is needed: python3 -m pip install hubspot-api-client"
    );
    let start = |rate_limit: RateLimit, search: Option<sandbox::SearchRateLimit>| {
        sandbox::start(SandboxOptions {
            seed: Some(seed()),
            token: Some(TOKEN.into()),
            rate_limit,
            search_rate_limit: search,
            ..SandboxOptions::default()
        })
    };
    let strict = start(
        RateLimit {
            max: 10_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000,
        },
        Some(sandbox::SearchRateLimit {
            max: 8,
            interval: Duration::from_secs(60),
        }),
    )
    .await
    .unwrap();
    let tight = start(
        RateLimit {
            max: 3,
            interval: Duration::from_secs(60),
            daily: 1_000_000,
        },
        None,
    )
    .await
    .unwrap();
    run_check("check_strict.py", &[strict.base_url(), tight.base_url()]).await;
    strict.shutdown().await;
    tight.shutdown().await;
}

/// Batch update and create (and their refusals), companies merges, the 250-merge cap and batch
/// reads of merged-away ids, judged by HubSpot's official client (check_mergefast.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_judges_batches_merges_and_the_merge_cap() {
    let sb = seeded_sandbox().await;
    run_check("check_mergefast.py", &[sb.base_url()]).await;
    // One contacts merge, one companies merge, 250 into one record; the refused ones logged none.
    assert_eq!(sb.merge_log().await.unwrap().len(), 252);
    sb.shutdown().await;
}

/// `check_pull.py`: what the pull relies on (history reads of at most 50, search sorts and
/// operators, archiving), with the official client, against the same seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_sees_what_the_pull_relies_on() {
    let sb = seeded_sandbox().await;
    run_check("check_pull.py", &[sb.base_url()]).await;
    sb.shutdown().await;
}
