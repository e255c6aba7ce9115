//! `dupdesk sandbox` as a separate process: it prints its URL, serves the API and the admin
//! routes, keeps its data in `--data`, refuses bad flags with a usage error, and stops cleanly
//! on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn start(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .arg("sandbox")
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("sandbox CRM listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, url)
}

fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
async fn serves_until_sigterm_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"contacts":[
            {"object_type":"contacts","id":"7","properties":{"email":"a@example.com"},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"},
            {"object_type":"contacts","id":"8","properties":{"email":"b@example.com"},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    let data = dir.path().join("sandbox.sqlite");
    let args = [
        "--seed",
        seed.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--token-env",
        "SANDBOX_TEST_TOKEN",
        "--rate-limit",
        "50",
        "--rate-interval-ms",
        "2000",
    ];
    let env = [("SANDBOX_TEST_TOKEN", "secret-1")];
    let (child, url) = start(&args, &env);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/crm/v3/objects/contacts/merge"))
        .bearer_auth("secret-1")
        .json(&serde_json::json!({"primaryObjectId": "7", "objectIdToMerge": "8"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hubspot-ratelimit-max"], "50");
    assert_eq!(
        r.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "2000"
    );
    let merged: Value = r.json().await.unwrap();
    let r = http
        .get(format!("{url}/crm/v3/objects/contacts/7"))
        .bearer_auth("another")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    terminate(child);

    // Restarted from the same data file, the merge is still there.
    let (child, url) = start(&args, &env);
    let log: Vec<Value> = http
        .get(format!("{url}/_sandbox/merges"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["new_id"], merged["id"]);
    let r: Value = http
        .get(format!("{url}/crm/v3/objects/contacts/8"))
        .bearer_auth("secret-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["id"], merged["id"]);
    terminate(child);
}

#[test]
fn bad_flags_are_usage_errors_naming_the_part() {
    let out = Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .args(["sandbox", "--faults", "500=0.1,timeout=lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timeout=lots"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .args(["sandbox", "--seed", "/nonexistent/seed.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/seed.json"), "{stderr}");
}
