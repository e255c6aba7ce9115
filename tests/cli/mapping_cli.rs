//! `dupdesk mapping import | rebuild | show` through the real binary, against a real workspace
//! file and the sandbox CRM over HTTP.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use dupdesk::domain::model::ObjectType;
use dupdesk::store::{Store, mapping};

fn dupdesk(ws: &std::path::Path, base_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .env("DUPDESK_CRM__BASE_URL", base_url)
        .env("DUPDESK_LOGGING__DIR", ws.parent().unwrap())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_show_and_rebuild() {
    let (seed, planted) = planted_clusters(3);
    let Fixture {
        sandbox,
        crm,
        dir,
        store,
    } = fixture(seed).await;
    let ws = store.path().to_path_buf();
    let before = store
        .call(|c| mapping::active_rows(c, ObjectType::Contacts))
        .await
        .unwrap();
    drop(store);
    let url = sandbox.base_url();

    // A bad file is refused with its line and column, and changes nothing.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "source_system,source_id,target_system,target_id\ncrm,1,erp,E-1\ncrm,2,erp,\n",
    )
    .unwrap();
    let out = dupdesk(&ws, &url, &["mapping", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(msg.contains("bad.csv: line 3, column target_id"), "{msg}");
    let store = Store::open(&ws).unwrap();
    assert_eq!(
        store
            .call(|c| mapping::rows_for_id(c, "1"))
            .await
            .unwrap()
            .len(),
        0
    );
    drop(store);

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "source_system,source_id,target_system,target_id\nmarketing,M-9,crm,1001\ncrm,1001,billing,B-1\n").unwrap();
    let out = dupdesk(&ws, &url, &["mapping", "import", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 new"));
    let out = dupdesk(&ws, &url, &["mapping", "show", "1001"]);
    let shown = text(&out);
    assert!(
        shown.contains("marketing:M-9 -> crm:1001") && shown.contains("crm:1001 -> billing:B-1"),
        "{shown}"
    );

    // In the CRM: one record gets another ERP id, another loses its ERP id.
    let first = planted[1].ids[0].clone();
    let second = planted[2].ids[0].clone();
    let mut change = BTreeMap::new();
    change.insert("erp_customer_id".to_string(), "ERP-NEW".to_string());
    crm.update(ObjectType::Contacts, &first, &change)
        .await
        .unwrap();
    let mut clear = BTreeMap::new();
    clear.insert("erp_customer_id".to_string(), String::new());
    crm.update(ObjectType::Contacts, &second, &clear)
        .await
        .unwrap();
    let out = dupdesk(&ws, &url, &["mapping", "rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("0 new, 1 changed, 1 deactivated"),
        "{}",
        text(&out)
    );
    let store = Store::open(&ws).unwrap();
    let after = store
        .call(|c| mapping::active_rows(c, ObjectType::Contacts))
        .await
        .unwrap();
    let erp_rows = after.iter().filter(|r| r.target_system == "erp").count();
    assert_eq!(erp_rows, before.len() - 1);
    let hist = {
        let first = first.clone();
        store
            .call(move |c| mapping::rows_for_id(c, &first))
            .await
            .unwrap()
    };
    assert_eq!(hist.len(), 2);
    assert!(!hist[0].active && hist[0].superseded_by == Some(hist[1].id));
    assert_eq!(hist[1].target_id, "ERP-NEW");
    sandbox.shutdown().await;
}

/// A mapping file that gives a second live contact an ERP id another one has: the import
/// opens one conflict, `mapping conflicts`, `mapping show` and `stats` name it, and a rebuild
/// from the CRM (where the second contact has no ERP id) resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_shared_erp_id_is_a_conflict_until_a_rebuild_resolves_it() {
    let (seed, planted) = planted_clusters(3);
    let Fixture {
        sandbox,
        crm: _crm,
        dir,
        store,
    } = fixture(seed).await;
    let ws = store.path().to_path_buf();
    drop(store);
    let url = sandbox.base_url();
    let (holder, other) = (&planted[1].ids[0], &planted[1].ids[1]);
    let erp = planted[1].erp[0].clone().unwrap();

    let out = dupdesk(&ws, &url, &["mapping", "conflicts"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).trim(), "no open mapping conflicts");

    let file = dir.path().join("shared.csv");
    std::fs::write(
        &file,
        format!("source_system,source_id,target_system,target_id\ncrm,{other},erp,{erp}\n"),
    )
    .unwrap();
    let out = dupdesk(&ws, &url, &["mapping", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("ids shared by several live records: 1 new, 0 changed, 0 no longer shared"),
        "{}",
        text(&out)
    );
    let summary = format!("erp:{erp} is the id of 2 live crm contacts: {holder}, {other}");
    let out = dupdesk(&ws, &url, &["mapping", "conflicts"]);
    let listed = text(&out);
    assert!(listed.starts_with("1 open mapping conflicts:"), "{listed}");
    assert!(
        listed.contains("shared_target")
            && listed.contains(&summary)
            && listed.contains("open since"),
        "{listed}"
    );
    let out = dupdesk(&ws, &url, &["mapping", "show", other]);
    let shown = text(&out);
    assert!(
        shown.contains(&format!("crm:{other} -> erp:{erp}"))
            && shown.contains(&format!("mapping conflicts naming {other}:"))
            && shown.contains(&summary),
        "{shown}"
    );
    let out = dupdesk(&ws, &url, &["stats"]);
    let stats = text(&out);
    assert!(
        stats.contains("1 open mapping conflicts (1 shared_target)")
            && stats.contains(&format!(
                "ALERT: 1 erp id shared by more than one live record (e.g. {summary})"
            )),
        "{stats}"
    );
    // Importing the same file again changes nothing.
    let out = dupdesk(&ws, &url, &["mapping", "import", file.to_str().unwrap()]);
    assert!(text(&out).contains("1 unchanged"), "{}", text(&out));
    assert!(!text(&out).contains("ids shared"), "{}", text(&out));
    let out = dupdesk(&ws, &url, &["mapping", "conflicts", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["kind"], "shared_target");
    assert_eq!(listed[0]["survivor_id"], holder.as_str());
    assert_eq!(listed[0]["source_ids"], serde_json::json!([holder, other]));
    assert_eq!(listed[0]["target_ids"], serde_json::json!([erp]));

    // The CRM never gave the second contact that ERP id: a rebuild takes the row away again.
    let out = dupdesk(&ws, &url, &["mapping", "rebuild"]);
    let rebuilt = text(&out);
    assert!(
        rebuilt.contains("0 new, 0 changed, 1 deactivated")
            && rebuilt.contains("0 new, 0 changed, 1 no longer shared"),
        "{rebuilt}"
    );
    let out = dupdesk(&ws, &url, &["mapping", "conflicts"]);
    assert_eq!(text(&out).trim(), "no open mapping conflicts");
    let out = dupdesk(&ws, &url, &["mapping", "conflicts", "--all"]);
    let all = text(&out);
    assert!(
        all.starts_with("0 open mapping conflicts, 1 resolved:")
            && all.contains(": no longer shared"),
        "{all}"
    );
    let store = Store::open(&ws).unwrap();
    let rows = store
        .call(|c| Ok(mapping::conflicts(c, true)?.len()))
        .await
        .unwrap();
    assert_eq!(rows, 1, "one row, resolved in place");
    sandbox.shutdown().await;
}

#[test]
fn hostile_ids_are_refused_with_their_escapes_and_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    // A workspace that exists (mapping import never creates one).
    drop(dupdesk::store::Store::open(&ws).unwrap());
    let url = "http://127.0.0.1:9";
    let id = "77\u{1b}[2J\u{202E}";
    let safe = |o: &Output| {
        let t = text(o);
        for line in t.lines() {
            assert!(
                dupdesk::domain::sanitize::is_clean(line),
                "{line:?} printed raw"
            );
        }
        t
    };
    // A file whose ids hold escape sequences, bidi overrides and invisible characters is
    // refused, and the message shows each of them escaped.
    for (row, shown) in [
        (
            "crm\u{200B},1001,erp,E-1".to_string(),
            "system \"crm\\u{200B}\" holds an invisible character",
        ),
        (
            "crm,1001,erp,E\u{7}1".to_string(),
            "id \"E\\u{0007}1\" holds a control character",
        ),
        (format!("crm,{id},erp,E-2"), "77\\e[2J\\u{202E}"),
    ] {
        let file = dir.path().join("hostile.csv");
        std::fs::write(
            &file,
            format!("source_system,source_id,target_system,target_id\n{row}\n"),
        )
        .unwrap();
        let out = dupdesk(&ws, url, &["mapping", "import", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let msg = safe(&out);
        assert!(msg.contains(shown), "{msg}");
    }
    let none = dupdesk(&ws, url, &["mapping", "show", "x\u{1b}[31m"]);
    assert_eq!(
        none.status.code(),
        Some(1),
        "an unknown id is an error, as in lineage"
    );
    let none = safe(&none);
    assert!(none.contains("no id mapping mentions x\\e[31m"), "{none}");
}
