//! Import throughput: a 100,000-row HubSpot-style contacts export (from the demo generator)
//! into a fresh workspace. Target: under 2 s in release on 2 cores.
//!
//! `cargo bench --bench import` runs it; `cargo bench --bench import -- --generator` also
//! streams 1,000,000 generated contacts and reports the time and peak memory.

use std::time::Instant;

use anyhow::Result;
use dupdesk::demo::{DemoOptions, Generator, generate};
use dupdesk::import::{self, ImportOptions};
use dupdesk::model::ObjectType;
use dupdesk::store::Store;

const ROWS: usize = 100_000;

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
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let data = generate(&DemoOptions {
        contacts: ROWS,
        companies: 0,
        ..DemoOptions::default()
    })
    .data;
    println!(
        "generated {ROWS} contacts in {:.2} s",
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
    assert_eq!(report.stats.inserted as usize, ROWS);
    println!(
        "imported {} rows ({:.1} MB) in {secs:.2} s: {:.0} rows/s",
        report.rows,
        size as f64 / 1e6,
        report.rows as f64 / secs
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
