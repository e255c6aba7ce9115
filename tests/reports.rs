//! The decision log, lineage and the token's absence, on a workspace whose merges really ran
//! against the sandbox CRM over HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dupdesk::executor::{self, ExecOptions};
use dupdesk::export::{self, Filter, Format};
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
    let mut seed = dupdesk::sandbox::seed::SeedData::default();
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
        .call(move |c| dupdesk::lineage::lineage(c, None, "5002", &sources))
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
        dupdesk::sandbox::start(dupdesk::sandbox::SandboxOptions {
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
