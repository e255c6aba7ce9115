//! `dupdesk match` end to end: the real binary over a real workspace file.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use dupdesk::demo::{DemoOptions, generate};
use dupdesk::store::Store;
use dupdesk::store::records::upsert_records;

fn dupdesk(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .current_dir(dir)
        .env("DUPDESK_MATCHER__U_SAMPLE_PAIRS", "50000")
        .env("DUPDESK_MATCHER__EM_SAMPLE_PAIRS", "20000")
        .args(["--workspace", "ws.db"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn match_runs_then_refuses_an_external_file_with_an_unknown_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&DemoOptions {
        contacts: 200,
        companies: 40,
        ..DemoOptions::default()
    })
    .data;
    let first_id = data.contacts[0].id.clone();
    {
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        store
            .call_blocking(move |c| {
                upsert_records(c, "crm", &data.contacts, "2026-01-01T00:00:00.000Z")?;
                upsert_records(c, "crm", &data.companies, "2026-01-01T00:00:00.000Z")?;
                Ok(())
            })
            .unwrap();
    }
    let out = dupdesk(dir.path(), &["match"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("contacts: full match of 200 records"),
        "{stdout}"
    );
    assert!(stdout.contains("companies: full match"), "{stdout}");
    assert!(stdout.contains("candidate pairs compared"), "{stdout}");

    let again = dupdesk(dir.path(), &["match", "--object", "contacts", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report[0]["mode"], "incremental");
    assert_eq!(report[0]["clusters_new"], 0);

    std::fs::write(
        dir.path().join("c.csv"),
        format!("cluster_id,record_id\n1,{first_id}\n1,no-such-record\n"),
    )
    .unwrap();
    let out = dupdesk(dir.path(), &["match", "--clusters", "c.csv"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"no-such-record\""), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
