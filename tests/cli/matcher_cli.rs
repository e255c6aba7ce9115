//! `dupdesk match` end to end: the real binary over a real workspace file.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use dupdesk::harness::demo::{DemoOptions, generate};
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

/// A workspace file `name` in `dir` holding `records`.
fn workspace(dir: &std::path::Path, name: &str, records: Vec<dupdesk::domain::model::Record>) {
    let store = Store::open(dir.join(name)).unwrap();
    store
        .call_blocking(move |c| {
            upsert_records(c, "crm", &records, "2026-01-01T00:00:00.000Z")?;
            Ok(())
        })
        .unwrap();
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
    workspace(
        dir.path(),
        "ws.db",
        data.contacts.into_iter().chain(data.companies).collect(),
    );
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

/// `export clusters` writes every member of every live cluster, in the plain shape that
/// `match --clusters` reads: a workspace that imports the export gets the same clusters.
#[test]
fn exported_clusters_read_back_as_the_same_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&DemoOptions {
        contacts: 300,
        companies: 0,
        ..DemoOptions::default()
    })
    .data;
    for ws in ["ws.db", "other.db"] {
        workspace(dir.path(), ws, data.contacts.clone());
    }
    let out = dupdesk(dir.path(), &["match"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dupdesk(dir.path(), &["export", "clusters", "--out", "clusters.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("clusters.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "cluster_id,record_id,object_type,status,score,weakest_link,size,flags,matcher"
    );

    // Membership as the workspace holds it, against the file.
    let members = |ws: &str| -> Vec<Vec<String>> {
        let store = Store::open(dir.path().join(ws)).unwrap();
        let mut groups: Vec<Vec<String>> = store
            .call_blocking(|c| {
                let mut st = c.prepare(
                    "SELECT group_concat(r.id, ' ') FROM clusters c
                     JOIN cluster_members m ON m.cluster_id = c.id JOIN records r ON r.rid = m.rid
                     WHERE c.status != 'stale' GROUP BY c.id",
                )?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                Ok(rows
                    .map(|g| {
                        let mut ids: Vec<String> =
                            g.unwrap().split(' ').map(str::to_string).collect();
                        ids.sort();
                        ids
                    })
                    .collect())
            })
            .unwrap();
        groups.sort();
        groups
    };
    let built_in = members("ws.db");
    assert!(built_in.len() > 10, "{built_in:?}");
    let mut from_file: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols[3], "pending", "{line}");
        from_file
            .entry(cols[0].to_string())
            .or_default()
            .push(cols[1].to_string());
    }
    let mut from_file: Vec<Vec<String>> = from_file
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    from_file.sort();
    assert_eq!(from_file, built_in);

    let out = Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .current_dir(dir.path())
        .args([
            "--workspace",
            "other.db",
            "match",
            "--clusters",
            "clusters.csv",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members("other.db"), built_in);

    let bad = dupdesk(dir.path(), &["export", "clusters", "--status", "done"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown status \"done\""));
}
