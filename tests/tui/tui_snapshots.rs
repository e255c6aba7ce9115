//! The review screens rendered to ratatui's `TestBackend` from an `App` driven by key presses
//! against a real workspace, compared with insta snapshots: queue, cluster view with diffs,
//! help overlay, merges view, an 80x24 terminal, a too-small terminal, and a record holding
//! escape sequences.
#![allow(clippy::unwrap_used)]

#[path = "../tui_support/mod.rs"]
mod tui_support;

use dupdesk::ui::tui::{Action, App, Inbox, views};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_support::{query, workspace};

fn render(app: &mut App, w: u16, h: u16) -> TestBackend {
    app.update(Action::Resize(w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| views::draw(f, app)).unwrap();
    terminal.backend().clone()
}

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

#[tokio::test]
async fn queue_lists_clusters_with_counts_scores_and_labels() {
    let ws = workspace(false);
    let (mut app, _inbox) = tui_support::app(&ws).await;
    insta::assert_snapshot!("queue_120x40", render(&mut app, 120, 40));
    insta::assert_snapshot!("queue_80x24", render(&mut app, 80, 24));
}

#[tokio::test]
async fn cluster_view_marks_differences() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    // The second cluster (three records, best score second) and its `lastname`... field 3.
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('j'), KeyCode::Char('l')],
    )
    .await;
    insta::assert_snapshot!("cluster_120x40", render(&mut app, 120, 40));
    insta::assert_snapshot!("cluster_80x24", render(&mut app, 80, 24));
    // Folded: only the differing fields remain.
    keys(&mut app, &mut inbox, &[KeyCode::Char('z')]).await;
    insta::assert_snapshot!("cluster_folded_80x24", render(&mut app, 80, 24));
}

#[tokio::test]
async fn cluster_view_scrolls_wide_clusters_and_shows_steward_choices() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    // Third record: primary, then take its job title; the view scrolls to show it at 80 cols.
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('l'), KeyCode::Char('l'), KeyCode::Char('p')],
    )
    .await;
    let job = app
        .cluster()
        .unwrap()
        .rows
        .iter()
        .position(|r| r.name == "email")
        .unwrap();
    for _ in 0..job {
        keys(&mut app, &mut inbox, &[KeyCode::Char('j')]).await;
    }
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('h'), KeyCode::Char(' ')],
    )
    .await;
    insta::assert_snapshot!("cluster_choices_80x24", render(&mut app, 80, 24));
}

#[tokio::test]
async fn explanation_is_one_key_away() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Char('e')]).await;
    insta::assert_snapshot!("explain_100x30", render(&mut app, 100, 30));
}

#[tokio::test]
async fn help_overlay_comes_from_the_live_keymap() {
    let ws = workspace(false);
    let mut config = tui_support::config();
    config.keys.insert("approve".into(), vec!["y".into()]);
    let (mut app, mut inbox) = tui_support::app_with(&ws, &config).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Char('?')]).await;
    let shot = render(&mut app, 100, 30);
    let text = format!("{shot}");
    assert!(
        text.contains("y  ") && text.contains("approve the merge"),
        "{text}"
    );
    insta::assert_snapshot!("help_cluster_100x30", shot);
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    assert!(!format!("{}", render(&mut app, 100, 30)).contains("from your keymap"));
}

#[tokio::test]
async fn merges_view_shows_jobs_and_the_crm_error() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    // Approve the first two clusters from the keyboard.
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Enter, KeyCode::Char('a'), KeyCode::Char('a')],
    )
    .await;
    // The executor's journal: one job failed on the CRM, the other not planned yet.
    let conn = rusqlite::Connection::open(&ws.path).unwrap();
    conn.execute_batch(
        "INSERT INTO merge_jobs (cluster_id, decision_id, object_type, status, attempts, last_error, created_at, updated_at)
         VALUES (1, 1, 'contacts', 'failed', 3,
                 'HTTP 400 VALIDATION_ERROR: Cannot merge \u{1b}[31mrecords that were already merged', '2026-11-22T11:00:00.000Z', '2026-11-22T11:05:00.000Z');
         UPDATE clusters SET status = 'failed' WHERE id = 1;",
    )
    .unwrap();
    keys(&mut app, &mut inbox, &[KeyCode::Esc, KeyCode::Char('m')]).await;
    insta::assert_snapshot!("merges_80x24", render(&mut app, 80, 24));
    keys(&mut app, &mut inbox, &[KeyCode::Char('R')]).await;
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM merge_jobs"),
        vec!["pending".to_string()]
    );
    assert!(
        format!("{}", render(&mut app, 80, 24)).contains("merge job 1 queued again"),
        "{}",
        render(&mut app, 80, 24)
    );
}

#[tokio::test]
async fn a_small_terminal_is_told_so() {
    let ws = workspace(false);
    let (mut app, _inbox) = tui_support::app(&ws).await;
    insta::assert_snapshot!("too_small_60x20", render(&mut app, 60, 20));
}

#[tokio::test]
async fn escape_sequences_in_records_are_shown_not_sent() {
    let ws = workspace(true);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    let queue = render(&mut app, 100, 30);
    keys(&mut app, &mut inbox, &[KeyCode::End, KeyCode::Enter]).await;
    assert_eq!(app.cluster().unwrap().detail.row.id, 4);
    let cluster = render(&mut app, 100, 30);
    for backend in [&queue, &cluster] {
        for cell in backend.buffer().content() {
            assert!(
                !cell
                    .symbol()
                    .chars()
                    .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                "control character {:?} reached the screen",
                cell.symbol()
            );
        }
    }
    insta::assert_snapshot!("hostile_queue_100x30", queue);
    insta::assert_snapshot!("hostile_cluster_100x30", cluster);
}

#[tokio::test]
async fn wide_clusters_scroll_horizontally() {
    let ws = workspace(false);
    ws.store
        .call_blocking(|c| {
            let recs: Vec<_> = (1..=5)
                .map(|i| {
                    tui_support::contact(
                        &format!("40{i}"),
                        &format!("2024-0{i}-01T00:00:00.000Z"),
                        "CRM_UI",
                        &[
                            ("firstname", "Maria"),
                            ("lastname", if i % 2 == 0 { "Garcia" } else { "García" }),
                            ("email", &format!("maria{i}@example.es")),
                            ("city", "Madrid"),
                        ],
                    )
                })
                .collect();
            dupdesk::store::records::upsert_records(c, "crm", &recs, tui_support::NOW)?;
            tui_support::insert_cluster(
                c,
                "Maria García ×5",
                0.99,
                0.9,
                tui_support::NOW,
                &["401", "402", "403", "404", "405"],
            );
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.cluster().unwrap().detail.members.len(), 5);
    insta::assert_snapshot!("wide_left_80x24", render(&mut app, 80, 24));
    keys(
        &mut app,
        &mut inbox,
        &[
            KeyCode::Char('l'),
            KeyCode::Char('l'),
            KeyCode::Char('l'),
            KeyCode::Char('l'),
        ],
    )
    .await;
    insta::assert_snapshot!("wide_right_80x24", render(&mut app, 80, 24));
}

#[tokio::test]
async fn wide_and_combining_characters_keep_columns_aligned() {
    let ws = workspace(false);
    ws.store
        .call_blocking(|c| {
            let recs = vec![
                tui_support::contact(
                    "501",
                    "2024-01-01T00:00:00.000Z",
                    "CRM_UI",
                    &[
                        ("firstname", "Zoe\u{308}"),
                        ("company", "株式会社テキスト日本語"),
                    ],
                ),
                tui_support::contact(
                    "502",
                    "2024-02-01T00:00:00.000Z",
                    "CRM_UI",
                    &[("firstname", "Zoë"), ("company", "株式会社テキスト")],
                ),
            ];
            dupdesk::store::records::upsert_records(c, "crm", &recs, tui_support::NOW)?;
            tui_support::insert_cluster(c, "Zoë", 0.999, 0.9, tui_support::NOW, &["501", "502"]);
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    assert_eq!(app.cluster().unwrap().detail.row.label, "Zoë");
    for (w, h) in [(80, 24), (120, 40)] {
        let backend = render(&mut app, w, h);
        let buf = backend.buffer();
        let bars =
            |y: u16| -> Vec<u16> { (0..w).filter(|&x| buf[(x, y)].symbol() == "│").collect() };
        // Header row and the field rows: the separators sit in the same columns.
        let header = bars(1);
        assert!(header.len() >= 4, "{backend}");
        for y in 2..2 + app.cluster().unwrap().rows.len() as u16 {
            assert_eq!(bars(y), header, "row {y} of\n{backend}");
        }
        insta::assert_snapshot!(format!("wide_chars_{w}x{h}"), backend);
    }
}

#[tokio::test]
async fn invisible_characters_and_mark_only_differences_are_visible() {
    let ws = workspace(false);
    ws.store
        .call_blocking(|c| {
            let recs = vec![
                tui_support::contact(
                    "601",
                    "2024-01-01T00:00:00.000Z",
                    "CRM_UI",
                    &[
                        ("email", "anna@example.com"),
                        ("firstname", "Jos\u{e9}"),
                        ("lastname", "Berg"),
                        ("company", "Acme GmbH"),
                        ("jobtitle", "Head of Sales"),
                    ],
                ),
                tui_support::contact(
                    "602",
                    "2024-02-01T00:00:00.000Z",
                    "CRM_UI",
                    &[
                        // Each twin differs only by what a terminal would not show.
                        ("email", "anna\u{200B}@example.com"),
                        ("firstname", "Jose\u{301}"),
                        ("lastname", "Be\u{200C}rg"),
                        ("company", "Acme\u{2060} GmbH"),
                        ("jobtitle", "Head of\u{2028}Sales"),
                        // A property no configuration lists: its name is shown too.
                        ("fa\u{200B}x", "+49 30 1"),
                    ],
                ),
            ];
            dupdesk::store::records::upsert_records(c, "crm", &recs, tui_support::NOW)?;
            tui_support::insert_cluster(
                c,
                "Anna Berg",
                0.999,
                0.9,
                tui_support::NOW,
                &["601", "602"],
            );
            Ok(())
        })
        .unwrap();
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Char('l')]).await;
    assert_eq!(app.cluster().unwrap().detail.row.label, "Anna Berg");
    let backend = render(&mut app, 120, 40);
    // A decomposed accent on its letter is drawn as the letter it is; the invisible
    // characters never reach the screen.
    for cell in backend.buffer().content() {
        assert!(
            !cell
                .symbol()
                .chars()
                .any(|c| matches!(c, '\u{200B}' | '\u{200C}' | '\u{2060}' | '\u{2028}')),
            "{:?} reached the screen raw",
            cell.symbol()
        );
    }
    let text = format!("{backend}");
    for shown in [
        "anna\\u{200B}@example.com",
        "Be\\u{200C}rg",
        "Acme\\u{2060} GmbH",
        "Head of\\u{2028}Sales",
        "fa\\u{200B}x",
        // The NFC record against the NFD survivor: the precomposed letter is spelled out.
        "Jos\\u{00E9}",
        // The detail line, for the record under the cursor.
        "email of 602 (crm, 2024-02-01): anna\\u{200B}@example.com",
    ] {
        assert!(text.contains(shown), "{shown} missing from\n{text}");
    }
    // The junk twins are set aside for their clean values.
    let cl = app.cluster().unwrap();
    let survivor = |f: &str| {
        cl.rows
            .iter()
            .find(|r| r.name == f)
            .and_then(|r| r.survivor.clone())
            .unwrap()
    };
    assert_eq!(survivor("email").value.as_deref(), Some("anna@example.com"));
    assert_eq!(survivor("email").reason, "set aside: invisible chars");
    assert_eq!(survivor("jobtitle").value.as_deref(), Some("Head of Sales"));
    insta::assert_snapshot!("invisible_120x40", backend);

    // The same difference of a combining mark alone, the other way round: the survivor is
    // the NFD value, so record 601's precomposed é is what is marked.
    let firstname = cl.rows.iter().find(|r| r.name == "firstname").unwrap();
    let marked: String = firstname.cells[0]
        .segments
        .iter()
        .filter(|s| s.changed)
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(marked, "\\u{00E9}");
}

#[tokio::test]
async fn stacked_view_shows_a_field_across_the_records() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    // Cluster 2's firstname, three different values, the cursor on the third record.
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('l'), KeyCode::Char('l'), KeyCode::Char('v')],
    )
    .await;
    insta::assert_snapshot!("stacked_80x24", render(&mut app, 80, 24));
    insta::assert_snapshot!("stacked_120x40", render(&mut app, 120, 40));
    // The job title: one long value, wrapped whole at 80 columns.
    keys(
        &mut app,
        &mut inbox,
        &[
            KeyCode::Esc,
            KeyCode::Char('G'),
            KeyCode::Char('k'),
            KeyCode::Char('v'),
        ],
    )
    .await;
    insta::assert_snapshot!("stacked_long_80x24", render(&mut app, 80, 24));
}

#[tokio::test]
async fn cluster_shows_its_note_and_typed_values() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Down, KeyCode::Enter, KeyCode::Char('N')],
    )
    .await;
    for c in "check the title with HR".chars() {
        keys(&mut app, &mut inbox, &[KeyCode::Char(c)]).await;
    }
    // Lastname typed (prefilled "Smith"), firstname cleared.
    keys(
        &mut app,
        &mut inbox,
        &[
            KeyCode::Enter,
            KeyCode::Char('j'),
            KeyCode::Char('j'),
            KeyCode::Char('i'),
        ],
    )
    .await;
    for c in "-Jones".chars() {
        keys(&mut app, &mut inbox, &[KeyCode::Char(c)]).await;
    }
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Enter, KeyCode::Char('k'), KeyCode::Char('c')],
    )
    .await;
    // The note carries the store's own date: the snapshot does not.
    let day = app.cluster().unwrap().notes()[0].decided_at[..10].to_string();
    let shot = |app: &mut App, w, h| format!("{}", render(app, w, h)).replace(&day, "YYYY-MM-DD");
    insta::assert_snapshot!("cluster_note_typed_80x24", shot(&mut app, 80, 24));
    insta::assert_snapshot!("cluster_note_typed_120x40", shot(&mut app, 120, 40));
}

#[tokio::test]
async fn help_scrolls_wraps_and_explains_the_markers() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Enter]).await;
    // At 80x24 the hint bar keeps `? help` however many hints the screen has.
    app.update(Action::Resize(80, 24));
    let shot = format!("{}", render(&mut app, 80, 24));
    assert!(shot.contains("? help"), "{shot}");
    keys(&mut app, &mut inbox, &[KeyCode::Char('?')]).await;
    // The default keys fill two columns at 80x24; the legend below them is reached by
    // scrolling, and the help says it is cut.
    let whole = render(&mut app, 80, 24);
    let top = format!("{whole}");
    insta::assert_snapshot!("help_cluster_80x24", whole);
    let mut text = top.clone();
    if top.contains("lines 1–") {
        keys(&mut app, &mut inbox, &[KeyCode::Char('G')]).await;
        assert!(app.help_scroll().is_some_and(|s| s > 0), "it scrolls");
        text = format!("{}", render(&mut app, 80, 24));
    } else {
        keys(&mut app, &mut inbox, &[KeyCode::Char('j')]).await;
        assert_eq!(app.help_scroll(), Some(0), "nothing to scroll");
    }
    for marker in ["≠ ", "+ ", "✓ ", "★ ", "✗ ", "∅ "] {
        assert!(
            text.lines().any(|l| l.contains(&format!("│{marker}"))),
            "{marker} in the legend: {text}"
        );
    }
    assert!(text.contains("primary record"), "{text}");
    keys(&mut app, &mut inbox, &[KeyCode::Char('?')]).await;

    // Long key lists from the config leave one column: the help is cut, and says so.
    let mut config = tui_support::config();
    config.keys.insert(
        "approve".into(),
        vec!["a".into(), "ctrl-a".into(), "alt-a".into()],
    );
    let (mut app, mut inbox) = tui_support::app_with(&ws, &config).await;
    app.update(Action::Resize(80, 24));
    keys(&mut app, &mut inbox, &[KeyCode::Enter, KeyCode::Char('?')]).await;
    let top = render(&mut app, 80, 24);
    let text = format!("{top}");
    assert!(text.contains("▼ lines 1–21 of"), "a scroll marker: {text}");
    assert!(text.contains("a/Ctrl-a/Alt-a"), "{text}");
    insta::assert_snapshot!("help_cluster_long_keys_80x24", top);
    // G goes to the end, where the legend is; one k moves back up at once.
    keys(&mut app, &mut inbox, &[KeyCode::Char('G')]).await;
    let max = app.help_scroll().unwrap();
    assert!(max > 0);
    let bottom = render(&mut app, 80, 24);
    let text = format!("{bottom}");
    assert!(text.contains("▲  lines"), "{text}");
    assert!(text.contains("∅  no value"), "{text}");
    insta::assert_snapshot!("help_cluster_long_keys_80x24_end", bottom);
    keys(&mut app, &mut inbox, &[KeyCode::Char('k')]).await;
    assert_eq!(app.help_scroll(), Some(max - 1));
    keys(&mut app, &mut inbox, &[KeyCode::PageUp, KeyCode::PageUp]).await;
    assert_eq!(app.help_scroll(), Some(0));
    keys(&mut app, &mut inbox, &[KeyCode::Char('j')]).await;
    assert_eq!(app.help_scroll(), Some(1));
    // At 120x40 every entry is whole: no description ends cut with `…`.
    keys(&mut app, &mut inbox, &[KeyCode::Char('g')]).await;
    let wide = render(&mut app, 120, 40);
    let text = format!("{wide}");
    assert!(!text.contains('…'), "{text}");
    assert!(
        text.contains("where this record's data came from"),
        "{text}"
    );
    // The box covers the screen to its edges: nothing of the cluster grid shows beside it.
    for line in text.lines().skip(1).take(38) {
        let line = line.trim_matches('"');
        assert!(
            line.starts_with('│') || line.starts_with('┌') || line.starts_with('└'),
            "{line}"
        );
    }
    insta::assert_snapshot!("help_cluster_120x40", wide);
    keys(&mut app, &mut inbox, &[KeyCode::Char('?')]).await;
    assert_eq!(app.help_scroll(), None);
}

#[tokio::test]
async fn the_queue_says_why_each_cluster_was_proposed_and_flags_weak_and_large_ones() {
    let ws = workspace(false);
    let mut config = tui_support::config();
    config.ui.weak_below = 0.83;
    config.ui.large_above = 2;
    let (mut app, _inbox) = tui_support::app_with(&ws, &config).await;
    // From the stored explanation: email agreed exactly, the last name closely.
    assert_eq!(
        app.queue().reasons.get(&1).map(String::as_str),
        Some("same email, similar name")
    );
    let shot = render(&mut app, 120, 40);
    let text = format!("{shot}");
    let row = |id: &str| -> String {
        text.lines()
            .find(|l| l.contains(&format!(" #{id} ")))
            .unwrap()
            .to_string()
    };
    // #1: weakest 0.95, 2 records; #2: weakest 0.84, 3 records; #3: weakest 0.82, 2 records.
    assert!(row("1").contains("pending      Anna"), "{}", row("1"));
    assert!(row("2").contains("pending    L John"), "{}", row("2"));
    assert!(row("3").contains("pending   W  Jürgen"), "{}", row("3"));
    assert!(
        row("1").contains("same email, similar name"),
        "{}",
        row("1")
    );
    // The help of the queue explains the flags with the configured thresholds.
    let mut inbox = _inbox;
    keys(
        &mut app,
        &mut inbox,
        &[KeyCode::Char('?'), KeyCode::Char('G')],
    )
    .await;
    let help = format!("{}", render(&mut app, 120, 40));
    assert!(help.contains("weakest pair scores below 0.83"), "{help}");
    assert!(help.contains("more than 2 records"), "{help}");
}

fn light_config() -> dupdesk::config::Config {
    let mut config = tui_support::config();
    config.ui.theme = dupdesk::config::ThemeSetting::Light;
    config
}

/// Every colour drawn is one of the light palette's RGB colours (whose contrast on white
/// the theme's unit test measures) and nothing is dimmed.
fn assert_reads_on_white(backend: &TestBackend) {
    use ratatui::style::{Color, Modifier};
    for cell in backend.buffer().content() {
        assert!(
            matches!(cell.fg, Color::Reset | Color::Rgb(..)),
            "{:?} drawn in {:?}",
            cell.symbol(),
            cell.fg
        );
        assert!(
            !cell.modifier.contains(Modifier::DIM),
            "{:?}",
            cell.symbol()
        );
    }
}

#[tokio::test]
async fn the_light_theme_draws_every_screen_in_its_own_colours() {
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app_with(&ws, &light_config()).await;
    for (w, h) in [(80, 24), (120, 40)] {
        let queue = render(&mut app, w, h);
        assert_reads_on_white(&queue);
        insta::assert_snapshot!(
            format!("light_queue_{w}x{h}"),
            format!("{:?}", queue.buffer())
        );
    }
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    for (w, h) in [(80, 24), (120, 40)] {
        let cluster = render(&mut app, w, h);
        assert_reads_on_white(&cluster);
        insta::assert_snapshot!(
            format!("light_cluster_{w}x{h}"),
            format!("{:?}", cluster.buffer())
        );
    }
    keys(&mut app, &mut inbox, &[KeyCode::Char('?')]).await;
    let help = render(&mut app, 80, 24);
    assert_reads_on_white(&help);
    insta::assert_snapshot!("light_help_80x24", format!("{:?}", help.buffer()));
}

#[tokio::test]
async fn the_dark_theme_keeps_the_terminals_named_colours() {
    use ratatui::style::Color;
    let ws = workspace(false);
    let (mut app, mut inbox) = tui_support::app(&ws).await;
    keys(&mut app, &mut inbox, &[KeyCode::Down, KeyCode::Enter]).await;
    let shot = render(&mut app, 120, 40);
    assert!(
        shot.buffer()
            .content()
            .iter()
            .all(|c| !matches!(c.fg, Color::Rgb(..))),
        "dark uses the terminal's palette"
    );
    assert!(
        shot.buffer()
            .content()
            .iter()
            .any(|c| c.fg == Color::Yellow)
    );
    insta::assert_snapshot!(
        "dark_cluster_styles_80x24",
        format!("{:?}", render(&mut app, 80, 24).buffer())
    );
    keys(&mut app, &mut inbox, &[KeyCode::Esc]).await;
    insta::assert_snapshot!(
        "dark_queue_styles_120x40",
        format!("{:?}", render(&mut app, 120, 40).buffer())
    );
}
