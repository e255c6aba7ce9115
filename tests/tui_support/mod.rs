//! A real review workspace for the TUI tests, the end-to-end runs and the benchmark: contact
//! records written with `store::records::upsert_records`, clusters, members and pair scores
//! inserted as the matcher would, with fixed timestamps so renders are reproducible.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use dupdesk::config::{self, Config};
use dupdesk::domain::model::{ObjectType, PropertyVersion, Record, parse_ts};
use dupdesk::store::{Store, records};
use dupdesk::ui::tui::{App, Inbox, Options};
use rusqlite::{Connection, params};
use tempfile::TempDir;

pub const NOW: &str = "2026-11-22T12:00:00.000Z";

pub fn now() -> DateTime<Utc> {
    parse_ts(NOW).unwrap()
}

pub fn config() -> Config {
    let mut c = config::load(&config::Sources::default()).unwrap();
    c.workspace.steward = "ada".into();
    c
}

pub struct Workspace {
    pub dir: TempDir,
    pub path: PathBuf,
    pub store: Store,
}

/// A contact created at `created`, every value written by `source` (a HubSpot sourceType).
pub fn contact(id: &str, created: &str, source: &str, props: &[(&str, &str)]) -> Record {
    let ts = parse_ts(created).unwrap();
    let mut properties = BTreeMap::new();
    let mut history = BTreeMap::new();
    for (k, v) in props {
        properties.insert(k.to_string(), Some(v.to_string()));
        history.insert(
            k.to_string(),
            vec![PropertyVersion {
                value: Some(v.to_string()),
                timestamp: ts,
                source_type: source.into(),
                source_id: (source == "INTEGRATION").then(|| "erp-sync".to_string()),
            }],
        );
    }
    Record {
        object_type: ObjectType::Contacts,
        id: id.into(),
        properties,
        history,
        created_at: Some(ts),
        updated_at: Some(ts),
        archived: false,
    }
}

/// Insert a cluster of the records with these ids, with a pair score per adjacent pair.
pub fn insert_cluster(
    conn: &Connection,
    label: &str,
    score: f64,
    weakest: f64,
    created_at: &str,
    ids: &[&str],
) -> i64 {
    conn.execute(
        "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label,
                               created_at, updated_at)
         VALUES ('contacts', ?1, 'builtin-v1', ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            ids.join(","),
            score,
            weakest,
            ids.len() as i64,
            label,
            created_at
        ],
    )
    .unwrap();
    let cluster = conn.last_insert_rowid();
    let rids: Vec<i64> = ids
        .iter()
        .map(|id| {
            conn.query_row(
                "SELECT rid FROM records WHERE object_type = 'contacts' AND id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        })
        .collect();
    for rid in &rids {
        conn.execute(
            "INSERT INTO cluster_members (cluster_id, rid) VALUES (?1, ?2)",
            params![cluster, rid],
        )
        .unwrap();
    }
    for pair in rids.windows(2) {
        // The built-in matcher's shape (Fellegi-Sunter weights per field).
        let explanation = serde_json::json!({
            "a": pair[0].to_string(), "b": pair[1].to_string(), "rule": "email",
            "fields": [
                {"property": "email", "kind": "email", "comparator": "exact", "level": 3,
                 "agreement": "exact", "weight": 6.25, "frequency_adjusted": true, "blocked": true},
                {"property": "lastname", "kind": "name", "comparator": "jaro_winkler", "level": 2,
                 "agreement": "fuzzy", "weight": 1.8, "frequency_adjusted": false, "blocked": false},
                {"property": "phone", "kind": "phone", "comparator": "digits", "level": 0,
                 "agreement": "missing", "weight": 0.0, "frequency_adjusted": false, "blocked": false},
            ],
            "prior_weight": -6.9, "match_weight": 1.15, "probability": weakest,
        });
        conn.execute(
            "INSERT INTO pair_scores (cluster_id, a_rid, b_rid, score, explanation)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![cluster, pair[0], pair[1], weakest, explanation.to_string()],
        )
        .unwrap();
    }
    cluster
}

/// Three clusters to review (two, three and two records), and with `hostile` a fourth whose
/// values carry escape sequences, a bidi override and a NUL.
pub fn workspace(hostile: bool) -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ws.db");
    let store = Store::open(&path).unwrap();
    store
        .call_blocking(move |c| {
            let tx = c.transaction()?;
            let recs = vec![
                contact("101", "2024-03-01T08:00:00.000Z", "INTEGRATION", &[
                    ("firstname", "Anna"), ("lastname", "Schmidt"),
                    ("email", "anna.schmidt@example.com"), ("phone", "+49 30 1234567"),
                    ("company", "Acme GmbH"), ("city", "Berlin"), ("country", "Germany"),
                ]),
                contact("102", "2025-06-11T14:30:00.000Z", "FORM", &[
                    ("firstname", "Anna"), ("lastname", "Schmitt"),
                    ("email", "anna.schmidt@example.com"), ("phone", "+49 30 123 4567"),
                    ("company", "ACME GmbH"), ("city", "Berlin"), ("country", "Germany"),
                    ("jobtitle", "Head of Procurement"),
                ]),
                contact("201", "2023-01-15T09:00:00.000Z", "CRM_UI", &[
                    ("firstname", "John"), ("lastname", "Smith"),
                    ("email", "john.smith@example.org"), ("phone", "+44 20 7946 0018"),
                    ("company", "Globex Ltd"), ("city", "London"),
                ]),
                contact("202", "2024-09-02T10:00:00.000Z", "FORM", &[
                    ("firstname", "Jon"), ("lastname", "Smith"),
                    ("email", "jon.smith@example.org"), ("phone", "+44 20 7946 0018"),
                    ("company", "Globex"), ("city", "London"),
                ]),
                contact("203", "2025-02-20T16:45:00.000Z", "INTEGRATION", &[
                    ("firstname", "Jonathan"), ("lastname", "Smith"),
                    ("email", "john.smith@example.org"),
                    ("company", "Globex Limited"), ("city", "London"),
                    ("jobtitle", "Senior Vice President of International Business Development and Strategy"),
                ]),
                contact("301", "2022-05-05T05:05:00.000Z", "CRM_UI", &[
                    ("firstname", "Jürgen"), ("lastname", "Müller"),
                    ("email", "j.mueller@example.de"), ("company", "日本語テキスト株式会社"),
                    ("city", "München"),
                ]),
                contact("302", "2025-10-10T10:10:00.000Z", "FORM", &[
                    ("firstname", "Juergen"), ("lastname", "Mueller"),
                    ("email", "j.mueller@example.de"), ("company", "日本語テキスト"),
                    ("city", "Muenchen"),
                ]),
            ];
            records::upsert_records(&tx, "crm", &recs, "2026-11-01T00:00:00.000Z")?;
            insert_cluster(&tx, "Anna Schmidt / Anna Schmitt", 0.97, 0.95,
                "2026-11-20T09:00:00.000Z", &["101", "102"]);
            insert_cluster(&tx, "John Smith / Jon Smith / Jonathan Smith", 0.91, 0.84,
                "2026-11-21T18:00:00.000Z", &["201", "202", "203"]);
            insert_cluster(&tx, "", 0.82, 0.82, "2026-11-15T07:30:00.000Z", &["301", "302"]);
            if hostile {
                let evil = vec![
                    contact("901", "2024-01-01T00:00:00.000Z", "CRM_UI", &[
                        ("firstname", "Mallory\u{1b}[2J\u{1b}[31m"), ("lastname", "Evil\u{0}"),
                        ("email", "\u{202e}moc.elpmaxe@yrollam"), ("company", "Bad\u{7}Corp\r\nInjected"),
                    ]),
                    contact("902", "2024-02-01T00:00:00.000Z", "CRM_UI", &[
                        ("firstname", "Mallory"), ("lastname", "Evil"),
                        ("email", "mallory@example.com"), ("company", "Bad Corp"),
                    ]),
                ];
                records::upsert_records(&tx, "crm", &evil, "2026-11-01T00:00:00.000Z")?;
                insert_cluster(&tx, "Mallory\u{1b}]0;pwned\u{7} Evil", 0.75, 0.75,
                    "2026-11-22T11:00:00.000Z", &["901", "902"]);
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    Workspace { dir, path, store }
}

/// An app on the workspace with a frozen clock, its first page loaded.
pub async fn app(ws: &Workspace) -> (App, Inbox) {
    app_with(ws, &config()).await
}

pub async fn app_with(ws: &Workspace, config: &Config) -> (App, Inbox) {
    let mut opts = Options::from_config(config).unwrap();
    opts.no_color = false;
    // The palette as configured, never from the environment the tests run in.
    opts.palette = match config.ui.theme {
        dupdesk::config::ThemeSetting::Light => dupdesk::ui::tui::theme::Palette::Light,
        _ => dupdesk::ui::tui::theme::Palette::Dark,
    };
    let (mut app, mut inbox) = App::new(ws.store.clone(), opts);
    app.freeze_clock(now());
    app.start();
    inbox.settle(&mut app).await;
    frame(&mut app);
    (app, inbox)
}

/// Read the workspace with a plain connection, as any other tool would.
pub fn query<T: rusqlite::types::FromSql>(ws: &Workspace, sql: &str) -> Vec<T> {
    let conn = Connection::open(&ws.path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Draw the app as the event loop does after every change (to a `TestBackend` of the app's
/// size) and tell it the frame was drawn: keys pressed afterwards were pressed looking at it.
pub fn frame(app: &mut App) -> ratatui::Terminal<ratatui::backend::TestBackend> {
    let (w, h) = app.size();
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| dupdesk::ui::tui::views::draw(f, app))
        .unwrap();
    app.mark_drawn();
    terminal
}
