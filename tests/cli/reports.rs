//! The decision log, lineage and the token's absence, on a workspace whose merges really ran
//! against the sandbox CRM over HTTP.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::ops::executor::{self, ExecOptions};
use dupdesk::ops::export::{self, Filter, Format};
use dupdesk::store::Store;

async fn record_decision(store: &Store, cluster: i64, action: &str, status: &str) {
    let (action, status) = (action.to_string(), status.to_string());
    store
        .call(move |c| {
            let now = dupdesk::store::now_ts();
            c.execute(
                "INSERT INTO decisions (cluster_id, steward, decided_at, action, note) VALUES (?1, 'ana', ?2, ?3, 'by hand')",
                rusqlite::params![cluster, now, action],
            )?;
            c.execute(
                "UPDATE clusters SET status = ?2 WHERE id = ?1",
                rusqlite::params![cluster, status],
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn export_round_trips_every_kind_of_decision_in_both_formats() {
    let (seed, planted) = planted_clusters(5);
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    // Clusters 1-3 approved, of which 3 names a record the CRM does not know (it is sent back
    // for review before any merge);
    // cluster 4 rejected; cluster 5 deferred.
    let mut approved = planted[..3].to_vec();
    approved[2].ids.push("424242".into());
    store
        .call(|c| {
            dupdesk::store::records::upsert_records(
                c,
                "crm",
                &[contact(424_242, &[("email", "x@y.z")])],
                "t",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let mut clusters = approve_all(&store, &approved).await;
    let more = approve_all(&store, &planted[3..]).await;
    // approve_all approves; turn those two into a reject and a defer decided later.
    record_decision(&store, more[0], "reject", "rejected").await;
    record_decision(&store, more[1], "defer", "deferred").await;
    clusters.extend(more);
    // Only the first three still count as approved (their cluster status is 'approved').
    let report = executor::apply(
        &store,
        crm.clone(),
        &config(),
        ExecOptions {
            retry_base: Duration::from_millis(10),
            ..ExecOptions::default()
        },
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!((report.merged, report.failed, report.refused), (2, 0, 1));

    let rows = store
        .call(|c| export::rows(c, &Filter::default()))
        .await
        .unwrap();
    assert_eq!(rows.len(), 7, "5 approvals, a reject and a defer");
    let mut jsonl = Vec::new();
    export::write(&rows, Format::Jsonl, &mut jsonl).unwrap();
    let mut csv = Vec::new();
    export::write(&rows, Format::Csv, &mut csv).unwrap();
    let from_jsonl: Vec<export::Row> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let from_csv = export::read_csv(&mut csv.as_slice()).unwrap();
    assert_eq!(from_jsonl, rows);
    assert_eq!(
        from_csv, rows,
        "CSV and JSONL carry the same columns and values"
    );
    for r in &rows {
        assert_eq!(r.0.keys().count(), export::COLUMNS.len());
    }

    let get = |i: usize, k: &str| rows[i].0.get(k).cloned().unwrap();
    // A merged approval: its calls, the ids merged away, the new id, the field choices.
    let merged = &planted[0];
    assert_eq!(get(0, "action"), "approve");
    assert_eq!(get(0, "cluster_status"), "merged");
    assert_eq!(get(0, "job_status"), "merged");
    assert_eq!(get(0, "primary_id"), merged.ids[0].as_str());
    assert_eq!(get(0, "merged_ids"), serde_json::json!(merged.ids[1..]));
    let survivor = get(0, "survivor_id");
    let calls = get(0, "crm_calls");
    let merges: Vec<_> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "merge")
        .collect();
    assert_eq!(merges.len(), merged.ids.len() - 1);
    assert_eq!(merges.last().unwrap()["response_id"], survivor);
    assert_eq!(get(0, "field_choices")["firstname"]["value"], "Robert");
    assert_eq!(
        get(0, "field_choices")["firstname"]["record_id"],
        merged.ids[1].as_str()
    );
    // The refused one says why.
    assert_eq!(get(2, "job_status"), "cancelled");
    assert_eq!(get(2, "cluster_status"), "stale");
    assert!(get(2, "job_error").as_str().unwrap().contains("424242"));
    assert_eq!(get(2, "survivor_id"), serde_json::Value::Null);
    // Reject and defer rows.
    assert_eq!(get(5, "action"), "reject");
    assert_eq!(get(5, "cluster_status"), "rejected");
    assert_eq!(get(5, "steward"), "ana");
    assert_eq!(get(6, "action"), "defer");
    assert_eq!(get(6, "job_id"), serde_json::Value::Null);

    // Filters.
    let merged_only = store
        .call(|c| {
            export::rows(
                c,
                &Filter {
                    since: None,
                    status: Some("merged".into()),
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(merged_only.len(), 2);
    let future = store
        .call(|c| {
            export::rows(
                c,
                &Filter {
                    since: Some("2999-01-01".into()),
                    status: None,
                },
            )
        })
        .await
        .unwrap();
    assert!(future.is_empty());
    assert!(
        store
            .call(|c| export::rows(
                c,
                &Filter {
                    since: None,
                    status: Some("bogus".into())
                }
            ))
            .await
            .is_err()
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn lineage_of_a_record_made_of_three_merges_shows_all_three_losers() {
    let mut seed = dupdesk::harness::sandbox::seed::SeedData::default();
    let ids: Vec<String> = (1..=4).map(|i| (5000 + i).to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        let email = format!("kim{i}@example.com");
        let city = ["Bonn", "Köln", "Bonn", "Berlin"][i];
        seed.contacts.push(contact(
            id.parse().unwrap(),
            &[("email", &email), ("firstname", "Kim"), ("city", city)],
        ));
    }
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    approve_all(
        &store,
        &[Planted {
            ids: ids.clone(),
            erp: vec![None; 4],
        }],
    )
    .await;
    let report = executor::apply(
        &store,
        crm,
        &config(),
        ExecOptions::default(),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(report.merged, 1);
    let sources = config().sources;
    // Asked by a merged-away id, it is followed to the survivor.
    let l = store
        .call(move |c| dupdesk::ops::lineage::lineage(c, None, "5002", &sources))
        .await
        .unwrap();
    assert_ne!(l.current, "5002");
    let losers: Vec<&str> = l.merged_from.iter().map(|m| m.id.as_str()).collect();
    for id in &ids[1..] {
        assert!(
            losers.contains(&id.as_str()),
            "{id} missing from {losers:?}"
        );
    }
    for m in l.merged_from.iter().filter(|m| ids.contains(&m.id)) {
        let snap = m.snapshot.as_ref().expect("a snapshot of each loser");
        assert_eq!(snap["firstname"], "Kim");
        assert!(snap["email"].as_str().unwrap().starts_with("kim"));
    }
    let first = &l.fields["firstname"];
    assert_eq!(first.value.as_deref(), Some("Robert"));
    assert_eq!(first.from_record.as_deref(), Some(ids[1].as_str()));
    assert!(l.render_text().contains("merged from:"));
    sandbox.shutdown().await;
}

#[test]
fn the_token_never_reaches_the_log_the_workspace_or_the_exports() {
    let token = "pat-na1-SECRET-0f9e8d7c6b5a";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (seed, planted) = planted_clusters(4);
    let sandbox = rt.block_on(async {
        dupdesk::harness::sandbox::start(dupdesk::harness::sandbox::SandboxOptions {
            seed: Some(seed),
            token: Some(token.into()),
            rate_limit: generous(),
            ..Default::default()
        })
        .await
        .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    let logs = dir.path().join("logs");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dupdesk"))
            .arg("--workspace")
            .arg(&ws)
            .args(args)
            .env("HUBSPOT_ACCESS_TOKEN", token)
            .env("DUPDESK_CRM__BASE_URL", sandbox.base_url())
            .env("DUPDESK_LOGGING__DIR", &logs)
            .env("DUPDESK_LOG", "debug")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains(token),
            "{args:?} printed the token"
        );
    };
    run(&["pull"]);
    let store = Store::open(&ws).unwrap();
    rt.block_on(approve_all(&store, &planted));
    drop(store);
    run(&["apply"]);
    let csv = dir.path().join("d.csv");
    let jsonl = dir.path().join("d.jsonl");
    run(&[
        "export",
        "decisions",
        "--format",
        "csv",
        "--out",
        csv.to_str().unwrap(),
    ]);
    run(&[
        "export",
        "decisions",
        "--format",
        "jsonl",
        "--out",
        jsonl.to_str().unwrap(),
    ]);
    run(&["stats", "--json"]);

    let log = std::fs::read_to_string(logs.join("dupdesk.log")).unwrap();
    let crm_lines = log.lines().filter(|l| l.contains("dupdesk::crm")).count();
    assert!(crm_lines > 0, "CRM calls are logged");
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let needle = token.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the token is in {}",
            entry.display()
        );
    }
    rt.block_on(sandbox.shutdown());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ---- a hostile record through every command that echoes it -----------------------------------

/// The record id, values and a header of a CSV export that try to steer the terminal, hide a
/// difference or start a spreadsheet formula.
const EVIL_ID: &str = "=1+1\u{1b}[31m";
const EVIL_NAME: &str = "Mallory\u{1b}[2J\u{200B}";
const EVIL_STEWARD: &str = "ana\u{1b}]0;pwned\u{7}";
const EVIL_NOTE: &str = "=cmd|' /C calc'!A0";

fn run_in(dir: &std::path::Path, ws: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .current_dir(dir)
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("DUPDESK_LOGGING__DIR", dir.join("logs"))
        .output()
        .unwrap()
}

/// Every line is what the terminal sanitizer leaves as it is: no control character but the
/// line breaks, no invisible one.
fn assert_terminal_safe(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            dupdesk::domain::sanitize::is_clean(line),
            "{what} printed {line:?} raw"
        );
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_hostile_record_reaches_no_command_output_raw_and_no_export_starts_a_formula() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    let csv = dir.path().join("hostile.csv");
    std::fs::write(
        &csv,
        format!(
            "Record ID,First Name,Last Name,Email,X\u{1b}[31mEvil\u{202E}Header\n\
             901,{EVIL_NAME},Evil\u{0},\u{202E}moc.elpmaxe@yrollam,x\n\
             902,Mallory,Evil,mallory@example.com,y\n"
        ),
    )
    .unwrap();
    let import = run_in(dir.path(), &ws, &["import", csv.to_str().unwrap()]);
    assert!(import.status.success(), "{import:?}");
    let text = stdout(&import);
    assert_terminal_safe("import", &text);
    assert!(
        text.contains(
            "ignored columns (map them with --map \"HEADER=property\"): X\\e[31mEvil\\u{202E}Header"
        ),
        "{text}"
    );

    // An import refuses such an id; a CRM can still deliver one (a pull takes ids as they
    // come), so the record gets it here. Then a cluster of the two, and an id mapping quoting
    // the hostile id.
    let conn = rusqlite::Connection::open(&ws).unwrap();
    conn.execute("UPDATE records SET id = ?1 WHERE id = '901'", [EVIL_ID])
        .unwrap();
    conn.execute(
        "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, status, created_at, updated_at)
         VALUES ('contacts', 'fp', 'test', 0.99, 0.95, 2, ?1, 'pending', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        [format!("{EVIL_NAME} / Mallory")],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO cluster_members (cluster_id, rid) SELECT 1, rid FROM records",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO id_mapping (object_type, source_system, source_id, target_system, target_id,
                                 created_at, created_by, last_seen_at)
         VALUES ('contacts', 'crm', ?1, 'erp', 'E\u{202E}-1', 't', 'pull', 't')",
        [EVIL_ID],
    )
    .unwrap();

    // approve --dry-run echoes the primary and the label.
    let out = run_in(
        dir.path(),
        &ws,
        &["approve", "--min-score", "0.5", "--dry-run"],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert_terminal_safe("approve", &text);
    assert!(text.contains("Mallory\\e[2J\\u{200B} / Mallory"), "{text}");

    // A decision quoting them: steward, note, primary, a choice with its reason.
    let choices = serde_json::json!({
        "firstname": {"value": EVIL_NAME, "record_id": EVIL_ID, "system": "crm",
                      "reason": format!("steward: from {EVIL_ID}"), "decided_by": "steward"},
    });
    conn.execute(
        "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id, field_choices, members, note)
         VALUES (1, ?1, '2026-01-02T00:00:00.000Z', 'approve', ?2, ?3, ?4, ?5)",
        rusqlite::params![
            EVIL_STEWARD,
            EVIL_ID,
            choices.to_string(),
            serde_json::json!([EVIL_ID, "902"]).to_string(),
            EVIL_NOTE
        ],
    )
    .unwrap();
    conn.execute("UPDATE clusters SET status = 'approved'", [])
        .unwrap();
    drop(conn);

    for args in [
        vec!["stats"],
        vec!["lineage", EVIL_ID],
        vec!["mapping", "show", EVIL_ID],
    ] {
        let out = run_in(dir.path(), &ws, &args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_terminal_safe(&format!("{args:?}"), &stdout(&out));
    }
    let lineage = stdout(&run_in(dir.path(), &ws, &["lineage", EVIL_ID]));
    assert!(lineage.contains("contacts =1+1\\e[31m\n"), "{lineage}");
    assert!(
        lineage.contains("firstname: Mallory\\e[2J\\u{200B}"),
        "{lineage}"
    );
    assert!(
        lineage.contains("email: \\u{202E}moc.elpmaxe@yrollam"),
        "{lineage}"
    );
    let mapping = stdout(&run_in(dir.path(), &ws, &["mapping", "show", EVIL_ID]));
    assert!(
        mapping.contains("crm:=1+1\\e[31m -> erp:E\\u{202E}-1"),
        "{mapping}"
    );
    let stats = stdout(&run_in(dir.path(), &ws, &["stats"]));
    assert!(stats.contains("ana\\e]0;pwned\\u{0007}"), "{stats}");

    // JSON output is safe to print and parses back to the very same data.
    let json = |args: &[&str]| -> serde_json::Value {
        let out = run_in(dir.path(), &ws, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = stdout(&out);
        assert_terminal_safe(&format!("{args:?}"), &text);
        serde_json::from_str(&text).unwrap()
    };
    let l = json(&["lineage", EVIL_ID, "--json"]);
    assert_eq!(l["properties"]["firstname"], EVIL_NAME);
    assert_eq!(l["properties"]["lastname"], "Evil\u{0}");
    let s = json(&["stats", "--json"]);
    assert!(s["decisions"].get(EVIL_STEWARD).is_some(), "{s}");
    let m = json(&["mapping", "show", EVIL_ID, "--json"]);
    assert_eq!(m[0]["source_id"], EVIL_ID);

    // The exports: JSON Lines safe to print; CSV cells never start a formula and read back.
    let out = run_in(
        dir.path(),
        &ws,
        &["export", "decisions", "--format", "jsonl"],
    );
    let jsonl = stdout(&out);
    assert_terminal_safe("export jsonl", &jsonl);
    let rows: Vec<export::Row> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0].0["steward"], EVIL_STEWARD);
    assert_eq!(rows[0].0["note"], EVIL_NOTE);
    let out = run_in(dir.path(), &ws, &["export", "decisions", "--format", "csv"]);
    let csv_text = out.stdout.clone();
    for rec in csv::Reader::from_reader(csv_text.as_slice()).records() {
        for cell in rec.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']),
                "a CSV cell starts a formula: {cell:?}"
            );
        }
    }
    assert_eq!(export::read_csv(&mut csv_text.as_slice()).unwrap(), rows);
    let out = run_in(dir.path(), &ws, &["export", "clusters", "--format", "csv"]);
    let clusters = stdout(&out);
    assert!(clusters.contains(&format!("1,'{EVIL_ID}")), "{clusters}");

    // An error quoting a hostile argument is one sanitized line on stderr.
    let out = run_in(dir.path(), &ws, &["lineage", "nope\u{1b}[2J"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_terminal_safe("lineage error", &err);
    assert!(err.contains("nope\\e[2J"), "{err}");

    // On a terminal (a pty from util-linux `script`), the CSV export is shown escaped.
    let cmd = format!(
        "{} --workspace {} export decisions --format csv",
        env!("CARGO_BIN_EXE_dupdesk"),
        ws.display()
    );
    let out = Command::new("script")
        .current_dir(dir.path())
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("DUPDESK_LOGGING__DIR", dir.path().join("logs"))
        .output()
        .expect("script (util-linux) runs a command on a pty");
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n");
    assert_terminal_safe("export csv on a terminal", &shown);
    assert!(shown.contains("ana\\e]0;pwned\\u{0007}"), "{shown}");
}
