//! Decisions from the keyboard, end to end through the `App` and the store: each key press is
//! translated by the keymap, the decision is committed to a real SQLite workspace before the
//! next cluster opens, and the workspace holds exactly what the steward decided.
#![allow(clippy::unwrap_used)]

#[path = "../tui_support/mod.rs"]
mod tui_support;

use dupdesk::store::clusters::{self, ClusterStatus};
use dupdesk::store::decisions::{self, DecisionError, NewDecision, Verdict};
use dupdesk::store::queue::{self, QueueQuery, SortKey, StatusFilter};
use dupdesk::ui::tui::{Action, App, Inbox, Screen, views};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use tui_support::{query, workspace};

async fn keys(app: &mut App, inbox: &mut Inbox, codes: &[KeyCode]) {
    for code in codes {
        let mods = match code {
            KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
            _ => KeyModifiers::NONE,
        };
        app.on_key(&KeyEvent::new(*code, mods));
        inbox.settle(app).await;
        tui_support::frame(app);
    }
}

async fn type_text(app: &mut App, inbox: &mut Inbox, text: &str) {
    for c in text.chars() {
        keys(app, inbox, &[KeyCode::Char(c)]).await;
    }
}

fn open_id(app: &App) -> i64 {
    app.cluster().unwrap().detail.row.id
}

/// Open cluster 2 (records 201, 202, 203) and make 203 its primary.
async fn open_2_with_203_as_primary(app: &mut App, inbox: &mut Inbox) {
    keys(app, inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    assert_eq!(open_id(app), 2);
    keys(
        app,
        inbox,
        &[KeyCode::Right, KeyCode::Right, KeyCode::Char('p')],
    )
    .await;
    assert_eq!(app.cluster().unwrap().primary, "203");
}

#[tokio::test]
async fn approve_reject_undo_from_the_keyboard() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.screen(), Screen::Cluster);
    assert_eq!(open_id(&app), 1);

    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    // Committed, and the next cluster is open.
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters WHERE id = 1"),
        ["approved"]
    );
    assert_eq!(open_id(&app), 2);
    let d = ws
        .store
        .call_blocking(|c| decisions::for_cluster(c, 1))
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].action, clusters::Action::Approve);
    assert_eq!(d[0].steward, "ada");
    // The precedence engine's suggestion is what the approval records, reasons included.
    assert_eq!(d[0].primary_id.as_deref(), Some("101"));
    assert_eq!(d[0].members, ["101", "102"]);
    let lastname = &d[0].field_choices["lastname"];
    assert_eq!(lastname.value.as_deref(), Some("Schmidt"));
    assert_eq!(
        (
            lastname.record_id.as_deref().unwrap(),
            lastname.system.as_deref().unwrap()
        ),
        ("101", "erp")
    );
    assert!(!lastname.reason.is_empty() && lastname.reason != "steward");
    // Only the second record has a job title: it survives from there.
    assert_eq!(
        d[0].field_choices["jobtitle"].record_id.as_deref(),
        Some("102")
    );

    keys(&mut app, &mut inbox, &[KeyCode::Char('r')]).await;
    assert_eq!(open_id(&app), 3);
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters WHERE id = 2"),
        ["rejected"]
    );
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT a_id || '-' || b_id FROM not_duplicates WHERE decision_id = 2 ORDER BY 1"
        ),
        ["201-202", "201-203", "202-203"]
    );

    keys(&mut app, &mut inbox, &[KeyCode::Char('u')]).await;
    // The rejected cluster is back, pending, and shown again.
    assert_eq!(open_id(&app), 2);
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters ORDER BY id"),
        ["approved", "pending", "pending"]
    );
    assert!(query::<String>(&ws, "SELECT a_id FROM not_duplicates").is_empty());
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT action || ':' || cluster_id || ':' || COALESCE(undoes, '') FROM decisions ORDER BY id"
        ),
        ["approve:1:", "reject:2:", "undo:2:2"]
    );

    // Back to the queue, which now counts one approved cluster; q there quits.
    keys(&mut app, &mut inbox, &[KeyCode::Char('q')]).await;
    assert_eq!(app.screen(), Screen::Queue);
    let counts = &app.queue().counts;
    assert!(counts.contains(&(ClusterStatus::Approved, 1)), "{counts:?}");
    assert_eq!(app.queue().total, 2);
    keys(&mut app, &mut inbox, &[KeyCode::Char('q')]).await;
    assert!(app.should_quit());
}

#[tokio::test]
async fn steward_choices_primary_and_exclusions_are_recorded() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    // Record 203 becomes the primary, 202 is excluded, and 202's email is kept by hand
    // (taken before excluding, so the exclusion drops it again), then 201's phone.
    open_2_with_203_as_primary(&mut app, &mut inbox).await;
    keys(&mut app, &mut inbox, &[KeyCode::Left, KeyCode::Char(' ')]).await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('x')]).await;
    let phone = app
        .cluster()
        .unwrap()
        .rows
        .iter()
        .position(|r| r.name == "phone")
        .unwrap();
    for _ in 0..phone {
        keys(&mut app, &mut inbox, &[KeyCode::Char('j')]).await;
    }
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('h'), KeyCode::Char(' ')],
    )
    .await;
    // The primary cannot be excluded.
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('l'), KeyCode::Char('l'), KeyCode::Char('x')],
    )
    .await;
    assert!(app.flash().unwrap().error);
    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;

    let d = ws
        .store
        .call_blocking(|c| decisions::for_cluster(c, 2))
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].primary_id.as_deref(), Some("203"));
    assert_eq!(d[0].excluded, ["202"]);
    assert_eq!(d[0].members, ["201", "202", "203"]);
    let c = &d[0].field_choices;
    // 202's email was taken by hand, then 202 excluded: the pick went with it.
    assert_ne!(c["email"].record_id.as_deref(), Some("202"));
    assert_ne!(
        c["email"].decided_by,
        dupdesk::domain::precedence::DecidedBy::Steward
    );
    assert_eq!(c["phone"].record_id.as_deref(), Some("201"));
    assert_eq!(
        c["phone"].decided_by,
        dupdesk::domain::precedence::DecidedBy::Steward
    );
    assert_eq!(c["phone"].reason, "steward: from 201");
    assert!(
        c.values().all(|v| v.record_id.as_deref() != Some("202")),
        "{c:?}"
    );
}

#[tokio::test]
async fn defer_and_note_and_next() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Char('N')]).await;
    type_text(&mut app, &mut inbox, "call Anna first").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    // A note does not move on.
    assert_eq!(open_id(&app), 1);
    keys(&mut app, &mut inbox, &[KeyCode::Char('d')]).await;
    assert_eq!(open_id(&app), 2);
    keys(&mut app, &mut inbox, &[KeyCode::Char('n')]).await;
    assert_eq!(open_id(&app), 3);
    // Skipping writes nothing.
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT action || ':' || cluster_id || ':' || note FROM decisions ORDER BY id"
        ),
        ["note:1:call Anna first", "defer:1:"]
    );
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters WHERE id = 1"),
        ["deferred"]
    );
    // Past the last cluster, the queue comes back with a message.
    keys(&mut app, &mut inbox, &[KeyCode::Char('n')]).await;
    assert_eq!(app.screen(), Screen::Queue);
    assert!(app.flash().unwrap().text.contains("last cluster"));
}

#[tokio::test]
async fn filter_sort_and_status_cycle() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    type_text(&mut app, &mut inbox, "smith").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.queue().total, 1);
    assert_eq!(app.queue().rows[0].id, 2);
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    for _ in 0..10 {
        keys(&mut app, &mut inbox, &[KeyCode::Backspace]).await;
    }
    type_text(&mut app, &mut inbox, "status:bogus").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert!(app.flash().unwrap().error);
    assert_eq!(app.queue().total, 1, "a bad filter changes nothing");

    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    for _ in 0..10 {
        keys(&mut app, &mut inbox, &[KeyCode::Backspace]).await;
    }
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.queue().total, 3);
    // Sort by size: the three-record cluster first; by age: the oldest first.
    keys(&mut app, &mut inbox, &[KeyCode::Char('s')]).await;
    assert_eq!(app.queue().query.sort, SortKey::Size);
    assert_eq!(app.queue().rows[0].id, 2);
    keys(&mut app, &mut inbox, &[KeyCode::Char('s')]).await;
    assert_eq!(app.queue().rows[0].id, 3);
    // Status cycle: open -> all -> pending -> approved.
    keys(&mut app, &mut inbox, &[KeyCode::Char('f')]).await;
    assert_eq!(app.queue().query.status, StatusFilter::All);
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('f'), KeyCode::Char('f')],
    )
    .await;
    assert_eq!(
        app.queue().query.status,
        StatusFilter::Only(ClusterStatus::Approved)
    );
    assert_eq!(app.queue().total, 0);
}

#[tokio::test]
async fn the_queue_pages_through_many_clusters() {
    let ws = workspace(false);
    ws.store
        .call_blocking(|c| {
            let tx = c.transaction()?;
            for i in 0..1500 {
                tx.execute(
                    "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, created_at, updated_at)
                     VALUES ('contacts', ?1, 'm', ?2, ?2, 2, ?3, '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z')",
                    rusqlite::params![format!("f{i}"), 0.5 - i as f64 / 10_000.0, format!("bulk {i}")],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    assert_eq!(app.queue().total, 1503);
    assert!(app.queue().rows.len() < 300, "only a page is loaded");
    keys(&mut app, &mut inbox, &[KeyCode::End]).await;
    assert_eq!(app.queue().cursor, 1502);
    assert_eq!(app.queue().row(1502).unwrap().label, "bulk 1499");
    keys(&mut app, &mut inbox, &[KeyCode::Home, KeyCode::PageDown]).await;
    assert_eq!(app.queue().cursor, 19);
    assert!(app.queue().row(19).is_some());
}

#[test]
fn store_refuses_what_cannot_be_decided_or_undone() {
    let ws = workspace(false);
    let approve = |cluster: i64, primary: &str, excluded: Vec<String>| NewDecision {
        cluster_id: cluster,
        steward: "ada".into(),
        verdict: Verdict::Approve,
        primary_id: Some(primary.into()),
        field_choices: Default::default(),
        excluded,
        note: String::new(),
        seen: Default::default(),
        amends_job: None,
    };
    let err = |r: anyhow::Result<decisions::Decision>| {
        r.unwrap_err().downcast::<DecisionError>().unwrap()
    };
    let a = approve(1, "999", vec![]);
    assert!(matches!(
        err(ws.store.call_blocking(move |c| decisions::record(c, &a))),
        DecisionError::NotAMember { .. }
    ));
    let a = approve(1, "101", vec!["102".into()]);
    assert_eq!(
        err(ws.store.call_blocking(move |c| decisions::record(c, &a))),
        DecisionError::TooFewRecords
    );
    let a = approve(1, "101", vec![]);
    ws.store
        .call_blocking(move |c| decisions::record(c, &a))
        .unwrap();
    // The executor picks the approval up: the decision can no longer be undone.
    ws.store
        .call_blocking(|c| {
            c.execute("UPDATE clusters SET status = 'merging' WHERE id = 1", [])?;
            Ok(())
        })
        .unwrap();
    let e = ws
        .store
        .call_blocking(|c| decisions::undo_last(c, "ada"))
        .unwrap_err();
    assert!(matches!(
        e.downcast::<DecisionError>().unwrap(),
        DecisionError::UndoTooLate { .. }
    ));
    let a = approve(1, "101", vec![]);
    assert!(matches!(
        err(ws.store.call_blocking(move |c| decisions::record(c, &a))),
        DecisionError::Closed { .. }
    ));
    assert_eq!(query::<i64>(&ws, "SELECT COUNT(*) FROM decisions"), [1]);
    // Another steward has nothing to undo.
    assert!(
        ws.store
            .call_blocking(|c| decisions::undo_last(c, "bob"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn undo_restores_the_previous_standing_decision() {
    let ws = workspace(false);
    let decide = |verdict| {
        let d = NewDecision {
            cluster_id: 3,
            steward: "ada".into(),
            verdict,
            primary_id: Some("301".into()),
            field_choices: Default::default(),
            excluded: vec![],
            note: String::new(),
            seen: Default::default(),
            amends_job: None,
        };
        ws.store
            .call_blocking(move |c| decisions::record(c, &d))
            .unwrap();
    };
    decide(Verdict::Defer);
    decide(Verdict::Reject);
    let u = ws
        .store
        .call_blocking(|c| decisions::undo_last(c, "ada"))
        .unwrap()
        .unwrap();
    assert_eq!(u.status, ClusterStatus::Deferred);
    let u = ws
        .store
        .call_blocking(|c| decisions::undo_last(c, "ada"))
        .unwrap()
        .unwrap();
    assert_eq!(u.status, ClusterStatus::Pending);
    assert!(
        ws.store
            .call_blocking(|c| decisions::undo_last(c, "ada"))
            .unwrap()
            .is_none()
    );
    let page = ws
        .store
        .call_blocking(|c| {
            queue::page(
                c,
                &QueueQuery {
                    limit: 10,
                    ..QueueQuery::default()
                },
            )
        })
        .unwrap();
    assert_eq!(page.total, 3);
}

#[tokio::test]
async fn without_colour_differences_still_show() {
    let ws = workspace(false);
    let mut opts = dupdesk::ui::tui::Options::from_config(&tui_support::config()).unwrap();
    opts.no_color = true;
    let (mut app, mut inbox) = App::new(ws.store.clone(), opts);
    app.freeze_clock(tui_support::now());
    app.start();
    inbox.settle(&mut app).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    app.update(Action::Resize(120, 40));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|f| views::draw(f, &app)).unwrap();
    let buf = terminal.backend().buffer().clone();
    assert!(
        buf.content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
        "no colour under NO_COLOR"
    );
    let text: String = buf.content().iter().map(|c| c.symbol()).collect();
    assert!(text.contains("≠ firstname"));
    // "Jonathan" against the surviving "John": the letters John lacks are underlined.
    let underlined: String = buf
        .content()
        .iter()
        .filter(|c| c.modifier.contains(Modifier::UNDERLINED))
        .map(|c| c.symbol())
        .collect();
    assert!(underlined.contains("nata"), "{underlined:?}");
}

/// Press keys as fast as a steward types: no frame is drawn between them, and no background
/// answer is waited for.
fn burst(app: &mut App, codes: &[KeyCode]) {
    for c in codes {
        app.on_key(&KeyEvent::new(*c, KeyModifiers::NONE));
    }
}

#[tokio::test]
async fn deciding_keys_typed_ahead_never_act_on_a_cluster_not_yet_shown() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    // Enter, approve, reject in one burst: cluster 1 opens, but `a` and `r` were pressed while
    // the queue was on screen. They are dropped, not replayed onto cluster 1 (or 2).
    burst(
        &mut app,
        &[KeyCode::Enter, KeyCode::Char('a'), KeyCode::Char('r')],
    );
    inbox.settle(&mut app).await;
    assert_eq!(query::<i64>(&ws, "SELECT COUNT(*) FROM decisions"), [0]);
    assert_eq!(open_id(&app), 1);
    let flash = app.flash().unwrap();
    assert!(flash.error && flash.text.contains("ignored"), "{flash:?}");
    tui_support::frame(&mut app);

    // `a a` on a cluster that is shown: the first approves #1; the second was pressed while #1
    // was still on screen and saving, and #2 opened before it could act: it is dropped.
    burst(&mut app, &[KeyCode::Char('a'), KeyCode::Char('a')]);
    inbox.settle(&mut app).await;
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT action || ':' || cluster_id FROM decisions ORDER BY id"
        ),
        ["approve:1"]
    );
    assert_eq!(open_id(&app), 2, "navigation still moved on");
    // Once #2 has been drawn, the same key acts on it.
    tui_support::frame(&mut app);
    keys(&mut app, &mut inbox, &[KeyCode::Char('r')]).await;
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT action || ':' || cluster_id FROM decisions ORDER BY id"
        ),
        ["approve:1", "reject:2"]
    );
    // Navigation typed ahead still replays: j j k lands on the second field.
    burst(
        &mut app,
        &[KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Char('k')],
    );
    inbox.settle(&mut app).await;
    assert_eq!(app.cluster().unwrap().field_cursor, 1);
}

#[tokio::test]
async fn no_key_but_quit_and_help_acts_behind_the_too_small_notice() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    app.update(Action::Resize(60, 20));
    let text = format!("{}", tui_support::frame(&mut app).backend());
    assert!(text.contains("Terminal too small"), "{text}");
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(
        app.screen(),
        Screen::Queue,
        "Enter did not open a cluster unseen"
    );
    app.update(Action::Resize(80, 24));
    tui_support::frame(&mut app);
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(open_id(&app), 1);
    app.update(Action::Resize(60, 20));
    tui_support::frame(&mut app);
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('a'), KeyCode::Char('x')],
    )
    .await;
    assert_eq!(query::<i64>(&ws, "SELECT COUNT(*) FROM decisions"), [0]);
    assert!(app.cluster().unwrap().excluded.is_empty());
    keys(&mut app, &mut inbox, &[KeyCode::Char('?')]).await;
    assert!(app.help_open());
    app.on_key(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.should_quit());
}

#[tokio::test]
async fn background_progress_shows_and_a_finished_match_reloads_the_queue() {
    use dupdesk::ui::tui::{Msg, Progress, Stage};
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    app.on_message(Msg::Progress(Progress {
        stage: Stage::Matching,
        done: 5,
        total: Some(10),
        message: "contacts".into(),
    }));
    app.update(Action::Resize(80, 24));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| views::draw(f, &app)).unwrap();
    let text = format!("{}", terminal.backend());
    assert!(text.contains("matching 50% (5/10) · contacts"), "{text}");

    ws.store
        .call_blocking(|c| {
            tui_support::insert_cluster(c, "late", 0.99, 0.99, tui_support::NOW, &["101", "201"]);
            Ok(())
        })
        .unwrap();
    app.on_message(Msg::Progress(Progress {
        stage: Stage::Done,
        done: 10,
        total: Some(10),
        message: String::new(),
    }));
    inbox.settle(&mut app).await;
    assert_eq!(app.queue().total, 4);
    assert_eq!(app.queue().rows[0].label, "late");
}

/// Fill the workspace as a full disk would: the database may not grow past its size, and its
/// free room is taken by filler notes on cluster 1.
fn fill_the_disk(ws: &tui_support::Workspace) {
    ws.store
        .call_blocking(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            set_max_pages(c, pages)?;
            for size in [4000, 1000, 250, 60, 15] {
                loop {
                    let inserted = c.execute(
                        "INSERT INTO decisions (cluster_id, steward, decided_at, action, note)
                         VALUES (1, 'filler', '2026-01-01T00:00:00.000Z', 'note', hex(randomblob(?1)))",
                        [size / 2],
                    );
                    match inserted {
                        Ok(_) => continue,
                        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                            break;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Room on the disk again.
fn make_room(ws: &tui_support::Workspace) {
    ws.store
        .call_blocking(|c| set_max_pages(c, 1 << 30))
        .unwrap();
}

fn set_max_pages(c: &rusqlite::Connection, pages: i64) -> anyhow::Result<()> {
    let _: i64 = c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
        r.get(0)
    })?;
    Ok(())
}

/// A decision that cannot be written (the disk is full) is not lost: the steward is told it
/// was not saved, the cluster stays open with the choices made, and deciding again once there
/// is room saves exactly those choices.
#[tokio::test]
async fn a_full_disk_loses_no_decision() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    open_2_with_203_as_primary(&mut app, &mut inbox).await;
    fill_the_disk(&ws);
    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    let flash = app.flash().unwrap();
    assert!(flash.error);
    assert!(flash.text.contains("not saved"), "{}", flash.text);
    assert!(flash.text.contains("full"), "{}", flash.text);
    assert_eq!(open_id(&app), 2, "the cluster stays open");
    assert_eq!(app.cluster().unwrap().primary, "203");
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters WHERE id = 2"),
        ["pending"]
    );
    assert!(query::<String>(&ws, "SELECT action FROM decisions WHERE cluster_id = 2").is_empty());

    // Room again: the same key saves the same choices, and the review moves on.
    make_room(&ws);
    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    assert!(!app.flash().unwrap().error, "{}", app.flash().unwrap().text);
    assert_eq!(open_id(&app), 3);
    let d = ws
        .store
        .call_blocking(|c| decisions::for_cluster(c, 2))
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].action, clusters::Action::Approve);
    assert_eq!(d[0].primary_id.as_deref(), Some("203"));
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters WHERE id = 2"),
        ["approved"]
    );
}

#[tokio::test]
async fn apply_asks_first_naming_clusters_and_calls_and_runs_only_on_yes() {
    let ws = workspace(false);
    let mut opts = dupdesk::ui::tui::Options::from_config(&tui_support::config()).unwrap();
    let (ask, mut asks) = tokio::sync::mpsc::unbounded_channel();
    opts.apply = Some(ask);
    let (mut app, mut inbox) = App::new(ws.store.clone(), opts);
    app.freeze_clock(tui_support::now());
    app.start();
    inbox.settle(&mut app).await;
    tui_support::frame(&mut app);
    // Nothing approved yet: A says so and asks nothing.
    keys(&mut app, &mut inbox, &[KeyCode::Char('A')]).await;
    assert!(app.confirmation().is_none());
    assert!(app.flash().unwrap().text.contains("nothing to merge"));
    // Approve cluster 2 (three records) and go back to the queue.
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('a'), KeyCode::Char('q')],
    )
    .await;
    assert_eq!(app.screen(), Screen::Queue);

    keys(&mut app, &mut inbox, &[KeyCode::Char('A')]).await;
    let q = app.confirmation().expect("A asks before it merges").clone();
    let text = q.lines.join("\n");
    assert!(
        text.contains("1 approved cluster of 3 records: 2 merges"),
        "{text}"
    );
    assert!(text.contains("about 5 CRM calls"), "{text}");
    let screen = format!("{}", tui_support::frame(&mut app).backend());
    assert!(screen.contains("Run the approved merges now?"), "{screen}");
    assert!(screen.contains("y: run them"), "{screen}");
    // n: nothing runs.
    keys(&mut app, &mut inbox, &[KeyCode::Char('n')]).await;
    assert!(app.confirmation().is_none());
    assert!(asks.try_recv().is_err(), "no merge was asked for");
    // A y typed ahead of the question (before it was drawn) does not answer it.
    app.on_key(&KeyEvent::new(KeyCode::Char('A'), KeyModifiers::SHIFT));
    app.on_key(&KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE));
    inbox.settle(&mut app).await;
    tui_support::frame(&mut app);
    assert!(app.confirmation().is_some());
    assert!(asks.try_recv().is_err());
    // y on the question shown: the merges are asked for, once.
    keys(&mut app, &mut inbox, &[KeyCode::Char('y')]).await;
    assert!(app.confirmation().is_none());
    assert!(asks.try_recv().is_ok());
    assert!(asks.try_recv().is_err());
}

#[tokio::test]
async fn apply_without_the_question_when_switched_off() {
    let ws = workspace(false);
    let mut config = tui_support::config();
    config.review.confirm_apply = false;
    let mut opts = dupdesk::ui::tui::Options::from_config(&config).unwrap();
    let (ask, mut asks) = tokio::sync::mpsc::unbounded_channel();
    opts.apply = Some(ask);
    let (mut app, mut inbox) = App::new(ws.store.clone(), opts);
    app.start();
    inbox.settle(&mut app).await;
    tui_support::frame(&mut app);
    keys(&mut app, &mut inbox, &[KeyCode::Char('A')]).await;
    assert!(app.confirmation().is_none());
    assert!(asks.try_recv().is_ok());
}

#[tokio::test]
async fn esc_clears_an_active_filter_before_it_quits() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    type_text(&mut app, &mut inbox, "Smith").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.queue().total, 1);
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    assert!(!app.should_quit(), "Esc cleared the filter");
    assert_eq!(app.queue().total, 3);
    assert_eq!(app.flash().unwrap().text, "filter cleared");
    keys(&mut app, &mut inbox, &[KeyCode::Char('f')]).await;
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    assert!(!app.should_quit(), "a status filter is a filter too");
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    assert!(app.should_quit());
}

#[tokio::test]
async fn a_cluster_sent_back_by_the_executor_says_why_and_can_be_approved_again() {
    let ws = workspace(false);
    // As the executor leaves a cluster whose member changed in the CRM after the review.
    ws.store
        .call_blocking(|c| {
            c.execute(
                "UPDATE clusters SET status = 'stale', status_reason = 'changed in the CRM since the review: record 102: city is \"Köln\" in the CRM, the review showed \"Berlin\"' WHERE id = 1",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(open_id(&app), 1);
    app.update(Action::Resize(120, 40));
    let text = format!("{}", tui_support::frame(&mut app).backend());
    assert!(
        text.contains(
            "sent back before any merge: changed in the CRM since the review: record 102"
        ),
        "{text}"
    );
    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT status || ':' || COALESCE(status_reason, '-') FROM clusters WHERE id = 1"
        ),
        ["approved:-"],
        "a new approval answers the reason"
    );
}

/// The CRM's definitions of the fixture's properties: `city` takes one of two values and
/// `jobtitle` is read-only, as a pull would have cached them.
fn crm_definitions(ws: &tui_support::Workspace) {
    use dupdesk::domain::model::{ObjectType, PropertyDef, PropertyKind, PropertyOption};
    let def = |name: &str| PropertyDef {
        name: name.into(),
        label: name.into(),
        kind: PropertyKind::String,
        field_type: "text".into(),
        options: Vec::new(),
        read_only: false,
        calculated: false,
        unique: false,
    };
    let mut defs: Vec<PropertyDef> = [
        "firstname",
        "lastname",
        "email",
        "phone",
        "company",
        "country",
    ]
    .iter()
    .map(|n| def(n))
    .collect();
    defs.push(PropertyDef {
        kind: PropertyKind::Enumeration,
        field_type: "select".into(),
        options: ["London", "Berlin"]
            .iter()
            .map(|v| PropertyOption {
                value: v.to_string(),
                label: v.to_string(),
                hidden: false,
            })
            .collect(),
        ..def("city")
    });
    defs.push(PropertyDef {
        read_only: true,
        ..def("jobtitle")
    });
    ws.store
        .call_blocking(move |c| {
            dupdesk::store::properties::save(
                c,
                ObjectType::Contacts,
                &defs,
                "2026-11-01T00:00:00.000Z",
            )
        })
        .unwrap();
}

fn row(app: &App, name: &str) -> usize {
    app.cluster()
        .unwrap()
        .rows
        .iter()
        .position(|r| r.name == name)
        .unwrap()
}

/// Put the field cursor on `name`, from the top.
async fn to_field(app: &mut App, inbox: &mut Inbox, name: &str) {
    keys(app, inbox, &[KeyCode::Char('g')]).await;
    for _ in 0..row(app, name) {
        keys(app, inbox, &[KeyCode::Char('j')]).await;
    }
}

fn screen_text(app: &mut App, w: u16, h: u16) -> String {
    app.update(Action::Resize(w, h));
    format!("{}", tui_support::frame(app).backend())
}

#[tokio::test]
async fn the_stacked_view_shows_every_value_whole_and_space_takes_the_highlighted_one() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    to_field(&mut app, &mut inbox, "jobtitle").await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('v')]).await;
    assert_eq!(app.cluster().unwrap().stacked, Some(0));
    // The whole value, which the grid cuts, with who wrote it and when.
    let text = screen_text(&mut app, 200, 40);
    assert!(
        text.contains(
            "203  Senior Vice President of International Business Development and Strategy  · erp · 2025-02-20"
        ),
        "{text}"
    );
    assert!(text.contains("∅ (no value)"), "{text}");
    // Firstname: three different values; the third record's is taken from the stack.
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    assert_eq!(app.cluster().unwrap().stacked, None);
    assert_eq!(app.screen(), Screen::Cluster, "Esc closes only the stack");
    to_field(&mut app, &mut inbox, "firstname").await;
    keys(
        &mut app,
        &mut inbox,
        &[
            KeyCode::Enter,
            KeyCode::Char('j'),
            KeyCode::Char('j'),
            KeyCode::Char(' '),
        ],
    )
    .await;
    assert_eq!(
        app.flash().unwrap().text,
        "firstname: keeping the value of record 203"
    );
    let text = screen_text(&mut app, 120, 40);
    assert!(text.contains("keeps Jonathan  from 203"), "{text}");
    assert!(text.contains("✓ 203"), "{text}");
    keys(&mut app, &mut inbox, &[KeyCode::Esc, KeyCode::Char('a')]).await;
    let d = ws
        .store
        .call_blocking(|c| decisions::for_cluster(c, 2))
        .unwrap();
    assert_eq!(
        d[0].field_choices["firstname"].value.as_deref(),
        Some("Jonathan")
    );
    assert_eq!(d[0].field_choices["firstname"].reason, "steward: from 203");
}

#[tokio::test]
async fn the_stacked_view_scrolls_through_a_value_longer_than_the_screen() {
    let ws = workspace(false);
    let long =
        "Senior Vice President of International Business Development and Strategy; ".repeat(20);
    let rec = tui_support::contact(
        "203",
        "2025-02-20T16:45:00.000Z",
        "INTEGRATION",
        &[("firstname", "Jonathan"), ("jobtitle", long.trim())],
    );
    ws.store
        .call_blocking(move |c| {
            dupdesk::store::records::upsert_records(c, "crm", &[rec], "2026-11-02T00:00:00.000Z")?;
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    to_field(&mut app, &mut inbox, "jobtitle").await;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('v'), KeyCode::Char('G')],
    )
    .await;
    let top = screen_text(&mut app, 80, 24);
    assert!(
        top.contains("▶ ✓ 203"),
        "the highlighted record is shown: {top}"
    );
    assert!(top.contains("↓ more (PgDn)"), "{top}");
    assert!(
        !top.contains("↑ more") || top.contains("↑ more · ↓"),
        "{top}"
    );
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::PageDown, KeyCode::PageDown],
    )
    .await;
    let bottom = screen_text(&mut app, 80, 24);
    assert!(bottom.contains("↑ more"), "{bottom}");
    assert!(!bottom.contains("↓ more"), "scrolled to the end: {bottom}");
    assert!(bottom.contains("· erp · 2025-02-20"), "{bottom}");
    // Back up to the first record: the stack shows its top again.
    keys(&mut app, &mut inbox, &[KeyCode::Char('g')]).await;
    let again = screen_text(&mut app, 80, 24);
    assert!(again.contains("▶   201"), "{again}");
}

#[tokio::test]
async fn take_every_field_from_a_record_skips_what_the_draft_refuses() {
    let ws = workspace(false);
    crm_definitions(&ws);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('l'), KeyCode::Char('T')],
    )
    .await;
    let flash = app.flash().unwrap().clone();
    assert!(!flash.error, "{flash:?}");
    assert_eq!(
        flash.text,
        "6 fields from record 202; 1 skipped (jobtitle: read-only in the CRM)"
    );
    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    let d = ws
        .store
        .call_blocking(|c| decisions::for_cluster(c, 2))
        .unwrap();
    let c = &d[0].field_choices;
    for field in ["firstname", "lastname", "email", "phone", "company", "city"] {
        assert_eq!(c[field].record_id.as_deref(), Some("202"), "{field}: {c:?}");
        assert_eq!(
            c[field].decided_by,
            dupdesk::domain::precedence::DecidedBy::Steward
        );
    }
    assert_eq!(c["firstname"].value.as_deref(), Some("Jon"));
    assert!(
        !c.contains_key("jobtitle"),
        "a read-only field is never written"
    );
}

#[tokio::test]
async fn a_value_typed_or_cleared_goes_through_the_draft_and_the_crms_refusal_is_shown() {
    let ws = workspace(false);
    crm_definitions(&ws);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    to_field(&mut app, &mut inbox, "city").await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('i')]).await;
    // Prefilled with what survives now.
    let text = screen_text(&mut app, 80, 24);
    assert!(text.contains("city: London▏"), "{text}");
    for _ in 0.."London".len() {
        keys(&mut app, &mut inbox, &[KeyCode::Backspace]).await;
    }
    type_text(&mut app, &mut inbox, "Paris").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    let flash = app.flash().unwrap().clone();
    assert!(
        flash.error
            && flash
                .text
                .starts_with("city: not kept: the CRM would refuse"),
        "{flash:?}"
    );
    let city = &app.cluster().unwrap().rows[row(&app, "city")];
    assert!(
        !city.typed && !city.picked,
        "the refused value is not in the draft"
    );
    assert_eq!(
        city.survivor.as_ref().unwrap().value.as_deref(),
        Some("London")
    );

    keys(&mut app, &mut inbox, &[KeyCode::Char('i')]).await;
    for _ in 0.."London".len() {
        keys(&mut app, &mut inbox, &[KeyCode::Backspace]).await;
    }
    type_text(&mut app, &mut inbox, "Berlin").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.flash().unwrap().text, "city: keeping the value typed");
    assert!(screen_text(&mut app, 120, 40).contains("✎ typed"));

    to_field(&mut app, &mut inbox, "company").await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('c')]).await;
    assert_eq!(app.flash().unwrap().text, "company: cleared, it ends empty");
    // A read-only field cannot be typed: refused before the prompt opens.
    to_field(&mut app, &mut inbox, "jobtitle").await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('i')]).await;
    let flash = app.flash().unwrap().clone();
    assert!(
        flash.error && flash.text.contains("read-only in the CRM"),
        "{flash:?}"
    );
    keys(&mut app, &mut inbox, &[KeyCode::Char('c')]).await;
    assert!(app.flash().unwrap().error);

    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    let d = ws
        .store
        .call_blocking(|c| decisions::for_cluster(c, 2))
        .unwrap();
    let c = &d[0].field_choices;
    assert_eq!(c["city"].value.as_deref(), Some("Berlin"));
    assert_eq!(c["city"].reason, "steward: typed");
    assert_eq!(c["city"].record_id, None);
    assert_eq!(c["company"].value, None);
    assert_eq!(c["company"].reason, "steward: cleared");
}

#[tokio::test]
async fn notes_are_shown_and_a_merged_cluster_says_what_it_became() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Char('N')]).await;
    type_text(&mut app, &mut inbox, "call Anna \u{1b}[31mfirst").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    let text = screen_text(&mut app, 80, 24);
    assert!(
        text.contains("✎ note by ada on 2026-") && text.contains("call Anna \\e[31mfirst"),
        "the note is shown, sanitized: {text}"
    );
    keys(&mut app, &mut inbox, &[KeyCode::Char('a')]).await;
    // The executor merged cluster 1 into 102.
    ws.store
        .call_blocking(|c| {
            c.execute_batch(
                "INSERT INTO merge_jobs (cluster_id, decision_id, object_type, status, attempts, survivor_id, created_at, updated_at)
                 VALUES (1, 2, 'contacts', 'merged', 1, '102', '2026-11-22T11:00:00.000Z', '2026-11-22T11:05:00.000Z');
                 UPDATE clusters SET status = 'merged' WHERE id = 1;",
            )?;
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    type_text(&mut app, &mut inbox, "status:merged").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Enter]).await;
    assert_eq!(open_id(&app), 1);
    let text = screen_text(&mut app, 120, 40);
    assert!(text.contains("these records are now contact 102"), "{text}");
    assert!(text.contains("call Anna"), "{text}");
    assert!(
        !text.contains("a approve"),
        "a merged cluster offers no approval: {text}"
    );
    let before = query::<i64>(&ws, "SELECT COUNT(*) FROM decisions");
    for key in ['a', 'r', 'd'] {
        keys(&mut app, &mut inbox, &[KeyCode::Char(key)]).await;
        assert_eq!(
            app.flash().unwrap().text,
            "cluster 1 is already merged into contact 102; nothing to decide"
        );
    }
    assert_eq!(query::<i64>(&ws, "SELECT COUNT(*) FROM decisions"), before);
    assert_eq!(open_id(&app), 1);
}

fn status_line(app: &mut App) -> String {
    let terminal = tui_support::frame(app);
    let buf = terminal.backend().buffer();
    let (w, h) = app.size();
    (0..w).map(|x| buf[(x, h - 2)].symbol()).collect()
}

#[tokio::test]
async fn the_filter_narrows_as_it_is_typed_over_any_member_value() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    let ids = |app: &App| -> Vec<i64> { app.queue().rows.iter().map(|r| r.id).collect() };
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    assert!(status_line(&mut app).contains("Enter keep · Esc clear"));
    // Every key filters, no Enter needed: an email of one member, in no label.
    type_text(&mut app, &mut inbox, "jon.").await;
    assert_eq!(ids(&app), [2]);
    keys(&mut app, &mut inbox, &[KeyCode::Backspace; 4]).await;
    assert_eq!(app.queue().total, 3);
    // A company, in any case; a phone's digits; a record id; a property's name matches nothing.
    for (text, want) in [
        ("acme", vec![1]),
        ("7946", vec![2]),
        ("302", vec![3]),
        ("müller", vec![3]),
        ("email", vec![]),
    ] {
        type_text(&mut app, &mut inbox, text).await;
        assert_eq!(ids(&app), want, "{text}");
        keys(
            &mut app,
            &mut inbox,
            &vec![KeyCode::Backspace; text.chars().count()],
        )
        .await;
    }
    // A status half typed keeps the filter; once it names one, it applies.
    type_text(&mut app, &mut inbox, "acme status:appr").await;
    assert_eq!(ids(&app), [1]);
    type_text(&mut app, &mut inbox, "oved").await;
    assert_eq!(app.queue().total, 0);
    assert_eq!(
        app.queue().query.status,
        StatusFilter::Only(ClusterStatus::Approved)
    );
    // Esc clears it all.
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    assert_eq!(app.queue().query, QueueQuery::default());
    assert_eq!(app.queue().total, 3);
    assert!(!status_line(&mut app).contains("Enter keep"));
    // Enter keeps what is typed.
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    type_text(&mut app, &mut inbox, "globex").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(ids(&app), [2]);
    assert_eq!(app.queue().query.text, "globex");
}

#[tokio::test]
async fn the_filter_finds_a_member_value_in_a_large_queue() {
    let ws = workspace(false);
    ws.store
        .call_blocking(|c| {
            let tx = c.transaction()?;
            let recs: Vec<_> = (0..3000)
                .map(|i| {
                    tui_support::contact(
                        &format!("9{i:05}"),
                        "2024-01-01T00:00:00.000Z",
                        "CRM_UI",
                        &[
                            ("firstname", "Bulk"),
                            ("email", &format!("bulk{i}@example.net")),
                        ],
                    )
                })
                .collect();
            dupdesk::store::records::upsert_records(&tx, "crm", &recs, tui_support::NOW)?;
            for i in 0..1500 {
                let (a, b) = (format!("9{:05}", 2 * i), format!("9{:05}", 2 * i + 1));
                tui_support::insert_cluster(
                    &tx,
                    &format!("bulk {i}"),
                    0.95,
                    0.93,
                    tui_support::NOW,
                    &[&a, &b],
                );
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    assert_eq!(app.queue().total, 1503);
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    type_text(&mut app, &mut inbox, "BULK2999@").await;
    assert_eq!(app.queue().total, 1);
    assert_eq!(app.queue().rows[0].label, "bulk 1499");
}

#[tokio::test]
async fn bulk_reject_and_defer_of_the_filtered_queue_ask_first_with_the_count() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    // Without a filter, no bulk decision: the whole queue is never one key away.
    keys(&mut app, &mut inbox, &[KeyCode::Char('R')]).await;
    assert!(app.flash().unwrap().error);
    assert!(app.confirmation().is_none());

    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    type_text(&mut app, &mut inbox, "example.org").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.queue().total, 1);
    keys(&mut app, &mut inbox, &[KeyCode::Char('R')]).await;
    let shot = format!("{}", tui_support::frame(&mut app).backend());
    assert!(
        shot.contains("1 cluster shown by the filter \"example.org\" status:open"),
        "{shot}"
    );
    assert!(shot.contains("y: reject them"), "{shot}");
    // No: nothing written.
    keys(&mut app, &mut inbox, &[KeyCode::Char('n')]).await;
    assert!(query::<String>(&ws, "SELECT action FROM decisions").is_empty());
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('R'), KeyCode::Char('y')],
    )
    .await;
    assert_eq!(
        query::<String>(
            &ws,
            "SELECT action || ' ' || cluster_id || ' ' || steward FROM decisions"
        ),
        ["reject 2 ada"]
    );
    assert_eq!(
        app.queue().total,
        0,
        "the rejected cluster left the open queue"
    );
    assert!(app.flash().unwrap().text.starts_with("1 cluster rejected"));
    // Defer two by status: the pending ones the filter shows.
    keys(&mut app, &mut inbox, &[KeyCode::Char('/')]).await;
    keys(&mut app, &mut inbox, &[KeyCode::Backspace; 30]).await;
    type_text(&mut app, &mut inbox, "status:pending").await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.queue().total, 2);
    keys(&mut app, &mut inbox, &[KeyCode::Char('D')]).await;
    assert!(app.confirmation().unwrap().lines[0].starts_with("2 clusters"));
    keys(&mut app, &mut inbox, &[KeyCode::Char('y')]).await;
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters ORDER BY id"),
        ["deferred", "rejected", "deferred"]
    );
    // Each is its own decision: u undoes the last.
    keys(&mut app, &mut inbox, &[KeyCode::Char('u')]).await;
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters ORDER BY id")
            .iter()
            .filter(|s| *s == "deferred")
            .count(),
        1
    );
}
