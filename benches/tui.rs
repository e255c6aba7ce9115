//! Review TUI figures (harness = false, run with `cargo bench --bench tui`):
//! - first frame on a workspace of 100,000 clusters (open the store, load the first queue
//!   page, render to a `TestBackend`), target under 300 ms; `DUPDESK_BENCH_CLUSTERS` sets
//!   another count, `DUPDESK_BENCH_DB` keeps the workspace between runs;
//! - rendering a cluster of 5 records by 40 fields, target under 2 ms per frame;
//! - peak memory (VmHWM), target under 150 MiB.
#![allow(clippy::unwrap_used)]

#[path = "../tests/tui_support/mod.rs"]
mod tui_support;

use std::time::{Duration, Instant};

use dupdesk::domain::model::Record;
use dupdesk::store::{Store, records};
use dupdesk::ui::tui::keymap::Command;
use dupdesk::ui::tui::{Action, App, Options, views};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui_support::{contact, insert_cluster};

/// 100,000 unless `DUPDESK_BENCH_CLUSTERS` says otherwise (a multiple of 1,000).
fn clusters() -> usize {
    std::env::var("DUPDESK_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn build(path: &std::path::Path) {
    let store = Store::open(path).unwrap();
    store
        .call_blocking(|c| {
            let tx = c.transaction()?;
            for chunk in 0..clusters() / 1000 {
                let mut recs: Vec<Record> = Vec::with_capacity(2000);
                for i in chunk * 1000..(chunk + 1) * 1000 {
                    for half in 0..2 {
                        recs.push(contact(
                            &format!("{}", i * 2 + half),
                            "2025-01-01T00:00:00.000Z",
                            "CRM_UI",
                            &[
                                ("firstname", "Anna"),
                                ("lastname", if half == 0 { "Schmidt" } else { "Schmitt" }),
                                ("email", &format!("anna{i}@example.com")),
                                ("city", "Berlin"),
                            ],
                        ));
                    }
                }
                records::upsert_records(&tx, "crm", &recs, "2026-11-01T00:00:00.000Z")?;
            }
            let mut stmt = tx.prepare(
                "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, created_at, updated_at)
                 VALUES ('contacts', ?1, 'bench', ?2, ?2, 2, ?3, '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z')",
            )?;
            let mut member = tx.prepare("INSERT INTO cluster_members (cluster_id, rid) VALUES (?1, ?2)")?;
            for i in 0..clusters() {
                let score = 0.5 + (i * 7919 % 5000) as f64 / 10_000.0;
                stmt.execute(rusqlite::params![format!("f{i}"), score, format!("Anna Schmidt / Anna Schmitt {i}")])?;
                let id = tx.last_insert_rowid();
                member.execute(rusqlite::params![id, (i * 2 + 1) as i64])?;
                member.execute(rusqlite::params![id, (i * 2 + 2) as i64])?;
            }
            drop(stmt);
            drop(member);
            // A wide cluster: 5 records by 40 fields.
            let wide: Vec<Record> = (0..5)
                .map(|r| {
                    let props: Vec<(String, String)> = (0..40)
                        .map(|f| {
                            let v = if f % 3 == 0 {
                                format!("value {f} of record {r} with some length")
                            } else {
                                format!("shared value {f}")
                            };
                            (format!("field_{f:02}"), v)
                        })
                        .collect();
                    let refs: Vec<(&str, &str)> =
                        props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    contact(&format!("w{r}"), "2025-01-01T00:00:00.000Z", "CRM_UI", &refs)
                })
                .collect();
            records::upsert_records(&tx, "crm", &wide, "2026-11-01T00:00:00.000Z")?;
            insert_cluster(&tx, "wide", 1.0, 0.99, "2026-11-01T00:00:00.000Z", &["w0", "w1", "w2", "w3", "w4"]);
            tx.commit()?;
            // A workspace at rest: the store thread is not closed when this process exits, so
            // fold the write-ahead log in as a clean close would.
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .unwrap();
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--build-only") {
        build(std::path::Path::new(&args[i + 1]));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // DUPDESK_BENCH_DB keeps the workspace between runs (built once when missing).
    let path = std::env::var_os("DUPDESK_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bench.db"));
    if !path.exists() {
        let t = Instant::now();
        // Built by a child process, so its memory does not count in the peak measured here.
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--build-only")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        println!(
            "built {} clusters (+1 wide) in {:.1?}",
            clusters(),
            t.elapsed()
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = tui_support::config();
        // First frame: open, first page, render.
        let t = Instant::now();
        let store = Store::open(&path).unwrap();
        let opened = t.elapsed();
        let (mut app, mut inbox) = App::new(store, Options::from_config(&config).unwrap());
        app.update(Action::Resize(120, 40));
        app.start();
        inbox.settle(&mut app).await;
        let loaded = t.elapsed();
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal.draw(|f| views::draw(f, &app)).unwrap();
        let first = t.elapsed();
        assert_eq!(app.queue().total, clusters() as u64 + 1);
        println!(
            "first frame, {} clusters: {:.1} ms (open {:.1}, first page {:.1}, render {:.1}; target < 300 ms)",
            clusters() + 1,
            ms(first),
            ms(opened),
            ms(loaded - opened),
            ms(first - loaded)
        );
        for sort in ["size", "age", "score"] {
            let t = Instant::now();
            app.update(Action::Command(Command::Sort));
            inbox.settle(&mut app).await;
            terminal.draw(|f| views::draw(f, &app)).unwrap();
            println!("sort by {sort}: {:.1} ms", ms(t.elapsed()));
        }

        // Deep page: the last row of the queue.
        let t = Instant::now();
        app.update(Action::Command(Command::Bottom));
        inbox.settle(&mut app).await;
        terminal.draw(|f| views::draw(f, &app)).unwrap();
        println!("jump to the last cluster and render: {:.1} ms", ms(t.elapsed()));

        // The wide cluster is first by score.
        app.update(Action::Command(Command::Top));
        inbox.settle(&mut app).await;
        let t = Instant::now();
        app.update(Action::Command(Command::Open));
        inbox.settle(&mut app).await;
        println!("open the 5x40 cluster: {:.2} ms", ms(t.elapsed()));
        let cl = app.cluster().unwrap();
        assert_eq!((cl.detail.members.len(), cl.rows.len()), (5, 40));

        for (w, h) in [(120u16, 40u16), (200, 60)] {
            app.update(Action::Resize(w, h));
            let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            let n = 2000;
            let mut times: Vec<Duration> = Vec::with_capacity(n);
            for i in 0..n {
                // Move the cursor so frames differ.
                app.update(Action::Command(if i % 2 == 0 { Command::Down } else { Command::Right }));
                let t = Instant::now();
                terminal.draw(|f| views::draw(f, &app)).unwrap();
                times.push(t.elapsed());
            }
            times.sort();
            let mean = times.iter().sum::<Duration>() / n as u32;
            println!(
                "render 5x40 cluster at {w}x{h}: mean {:.3} ms, p99 {:.3} ms, max {:.3} ms over {n} frames (target < 2 ms)",
                ms(mean),
                ms(times[n * 99 / 100]),
                ms(times[n - 1])
            );
        }
    });
    println!(
        "peak memory (VmHWM): {:.1} MiB (target < 150 MiB)",
        peak_mib()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
