//! Import throughput: a 100,000-row HubSpot-style contacts export (from the demo generator)
//! into a fresh workspace. Target: under 2 s in release on 2 cores.
//!
//! `cargo bench --bench import` runs it; `cargo bench --bench import -- --generator` also
//! streams 1,000,000 generated contacts and reports the time and peak memory. `--rows N`
//! imports N rows instead.
//!
//! A second import of the file, into a workspace of its own, runs while a steward writes a
//! decision-sized transaction every 50 ms on another connection, and reports how long the
//! steward's writes waited for the lock: what the import's chunks are for. `--match` then runs
//! a full match over the first workspace with the steward writing too, and reports the time
//! from the first cluster written to the last, and the steward's waits.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use dupdesk::domain::matcher::{MatchConfig, MatchProgress};
use dupdesk::domain::model::ObjectType;
use dupdesk::harness::demo::{DemoOptions, Generator, generate};
use dupdesk::ops::import::{self, ImportOptions};
use dupdesk::ops::matching::MatchMode;
use dupdesk::store::{Store, is_busy, now_ts, set_meta};

const ROWS: usize = 100_000;

/// A steward writing while a long writer runs: one small write transaction every 50 ms on a
/// connection of their own, retried while the workspace is busy as the review's are.
struct Steward {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<Duration>>>,
}

impl Steward {
    fn start(workspace: &Path) -> Result<Steward> {
        let store = Store::open(workspace)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut waits = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let asked = Instant::now();
                    loop {
                        let wrote = store.call_blocking(|c| {
                            let tx = c.transaction()?;
                            set_meta(&tx, "bench.steward", &now_ts())?;
                            tx.commit()?;
                            Ok(())
                        });
                        match wrote {
                            Err(e) if is_busy(&e) => continue,
                            other => other?,
                        }
                        break;
                    }
                    waits.push(asked.elapsed());
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(waits)
            })
        };
        Ok(Steward { stop, thread })
    }

    /// Stop, and say how long the writes waited.
    fn report(self) -> Result<String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut waits = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the steward's thread panicked"))??;
        waits.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        Ok(match waits.last() {
            Some(longest) => format!(
                "{} steward writes meanwhile, median wait {:.0} ms, longest {:.0} ms",
                waits.len(),
                ms(&waits[waits.len() / 2]),
                ms(longest)
            ),
            None => "no steward write meanwhile".to_string(),
        })
    }
}

/// User plus system time from a /proc stat line, in seconds (Linux only).
fn stat_cpu(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn process_cpu() -> Option<f64> {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn thread_cpu(name: &str) -> Option<f64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return stat_cpu(&std::fs::read_to_string(task.path().join("stat")).ok()?);
        }
    }
    None
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows = match args.iter().position(|a| a == "--rows") {
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("--rows N"))?
            .replace('_', "")
            .parse()?,
        None => ROWS,
    };
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let data = generate(&DemoOptions {
        contacts: rows,
        companies: 0,
        ..DemoOptions::default()
    })
    .data;
    println!(
        "generated {rows} contacts in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let csv = dir.path().join("contacts.csv");
    import::write_csv(
        std::io::BufWriter::new(std::fs::File::create(&csv)?),
        ObjectType::Contacts,
        &data.contacts,
    )?;
    drop(data);
    let size = std::fs::metadata(&csv)?.len();

    let store = Store::open(dir.path().join("ws.db"))?;
    // The store thread names itself once it runs; let it.
    store.call_blocking(|_| Ok(()))?;
    let (cpu_before, store_cpu_before) = (process_cpu(), thread_cpu("dupdesk-store"));
    let started = Instant::now();
    let report = import::import_csv(
        &store,
        &csv,
        &ImportOptions::new(ObjectType::Contacts, "crm"),
        &|_| {},
    )?;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.stats.inserted as usize, rows);
    println!(
        "imported {} rows ({:.1} MB) in {secs:.2} s: {:.0} rows/s",
        report.rows,
        size as f64 / 1e6,
        report.rows as f64 / secs
    );
    println!(
        "  checking {:.2} s, writing {:.2} s in {} chunks",
        report.check_time.as_secs_f64(),
        report.write_time.as_secs_f64(),
        report.chunks
    );
    let on_disk = |suffix: &str| {
        std::fs::metadata(dir.path().join(format!("ws.db{suffix}"))).map_or(0, |m| m.len())
    };
    println!(
        "workspace: {:.1} MB database, {:.1} MB write-ahead log",
        on_disk("") as f64 / 1e6,
        on_disk("-wal") as f64 / 1e6
    );
    // Wall time suffers when other work shares the cores; CPU time per thread does not, and
    // the busier thread bounds the wall time on an idle machine.
    if let (Some(a), Some(b), Some(c), Some(d)) = (
        cpu_before,
        process_cpu(),
        store_cpu_before,
        thread_cpu("dupdesk-store"),
    ) {
        println!(
            "CPU: {:.2} s in all threads, {:.2} s on the store thread (writing)",
            b - a,
            d - c
        );
    }

    drop(store);

    let other = dir.path().join("ws2.db");
    let store2 = Store::open(&other)?;
    let steward = Steward::start(&other)?;
    let started = Instant::now();
    import::import_csv(
        &store2,
        &csv,
        &ImportOptions::new(ObjectType::Contacts, "crm"),
        &|_| {},
    )?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "the same import with a steward writing: {secs:.2} s; {}",
        steward.report()?
    );
    drop(store2);

    if args.iter().any(|a| a == "--match") {
        let store = Store::open(dir.path().join("ws.db"))?;
        let settings = dupdesk::config::load(&dupdesk::config::Sources::default())?.matcher;
        let cfg = MatchConfig::new(&settings, ObjectType::Contacts)?;
        let writing = std::sync::Mutex::new(None);
        let steward = Steward::start(&dir.path().join("ws.db"))?;
        let started = Instant::now();
        let report = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Full, &|p| {
            if matches!(p, MatchProgress::Writing { .. })
                && let Ok(mut w) = writing.lock()
            {
                *w = Some(Instant::now());
            }
        })?;
        let total = started.elapsed().as_secs_f64();
        let wrote = writing
            .lock()
            .ok()
            .and_then(|w| *w)
            .map_or(0.0, |w| w.elapsed().as_secs_f64());
        println!(
            "full match of {} records: {total:.2} s, {} clusters written in {wrote:.2} s; {}",
            report.records,
            report.clusters,
            steward.report()?
        );
    }

    if std::env::args().any(|a| a == "--generator") {
        let (started, cpu) = (Instant::now(), process_cpu());
        let generator = Generator::new(&DemoOptions::scaled(1_000_000));
        let (mut n, mut properties) = (0usize, 0usize);
        for g in generator.contacts() {
            n += 1;
            properties += g.record.properties.len();
        }
        println!(
            "streamed {n} generated contacts ({properties} properties) in {:.2} s ({:.2} s CPU)",
            started.elapsed().as_secs_f64(),
            process_cpu().zip(cpu).map_or(0.0, |(b, a)| b - a)
        );
        let (started, cpu) = (Instant::now(), process_cpu());
        let d = generate(&DemoOptions::scaled(1_000_000));
        println!(
            "collected {} contacts and {} companies in {:.2} s ({:.2} s CPU)",
            d.data.contacts.len(),
            d.data.companies.len(),
            started.elapsed().as_secs_f64(),
            process_cpu().zip(cpu).map_or(0.0, |(b, a)| b - a)
        );
        // Freeing a million records one by one takes longer than building them; the process
        // is about to end.
        std::mem::forget(d);
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(peak) = status.lines().find(|l| l.starts_with("VmHWM"))
    {
        println!("peak memory: {}", peak.trim_start_matches("VmHWM:").trim());
    }
    Ok(())
}
