//! Benchmark of `sync::pull`: a full first pull of the generated demo dataset from the sandbox
//! CRM into a fresh workspace, then an incremental pull. `cargo bench --bench pull -- [N]`
//! (N contacts, default 20,000, plus N/5 companies). Prints what it measured; it asserts
//! nothing and must not be mistaken for a test.
//!
//! The sandbox's rate limit and the client's limiter are both raised far above what the pull
//! can reach, so the figures are dupdesk's throughput and not HubSpot's budget (which at 100
//! requests per 10 s would cap any first pull at 500 records per second, 50 per list page).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dupdesk::config::{self, Secret};
use dupdesk::crm::hubspot::{HubSpotConnector, HubSpotOptions};
use dupdesk::harness::demo::{self, DemoOptions};
use dupdesk::harness::sandbox::{self, FaultSpec, RateLimit, SandboxOptions};
use dupdesk::ops::sync::{self, PullReport};
use dupdesk::store::Store;

use common::{TOKEN, mib, proc_status_kb, thousands};

const DEFAULT_CONTACTS: usize = 20_000;
const RATE_MAX: u32 = 1_000_000;
const RATE_INTERVAL: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let contacts = common::count_arg(0, "contacts", DEFAULT_CONTACTS)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(contacts))
}

/// One timed pull.
struct Timed {
    fetched: u64,
    inserted: u64,
    updated: u64,
    unchanged: u64,
    requests: u64,
    retries: u64,
    wall: Duration,
    /// Resident set when the pull started.
    rss_kb: Option<u64>,
    /// The peak during the pull, or (if it could not be reset) of the whole process so far.
    peak_kb: Option<u64>,
    peak_reset: bool,
}

async fn timed_pull(store: &Store, crm: &HubSpotConnector) -> Result<Timed> {
    let config = config::load(&config::Sources::default())?;
    let rss_kb = proc_status_kb("VmRSS");
    let peak_reset = common::reset_peak_rss();
    let before = crm.stats();
    let started = Instant::now();
    let report: PullReport = sync::pull(store, crm, &config, &|_| {}).await?;
    let wall = started.elapsed();
    let after = crm.stats();
    let total = report.total();
    Ok(Timed {
        fetched: report.objects.values().map(|o| o.fetched).sum(),
        inserted: total.inserted,
        updated: total.updated,
        unchanged: total.unchanged,
        requests: after.requests - before.requests,
        retries: after.retries - before.retries,
        wall,
        rss_kb,
        peak_kb: proc_status_kb("VmHWM"),
        peak_reset,
    })
}

async fn run(contacts: usize) -> Result<()> {
    let opts = DemoOptions::scaled(contacts);
    let started = Instant::now();
    let dataset = demo::generate(&opts);
    let generated_in = started.elapsed();
    let (n_contacts, n_companies) = (dataset.data.contacts.len(), dataset.data.companies.len());

    let started = Instant::now();
    let sandbox = sandbox::start(SandboxOptions {
        port: 0,
        data: None,
        seed: Some(dataset.data),
        rate_limit: RateLimit {
            max: RATE_MAX,
            interval: RATE_INTERVAL,
            daily: u32::MAX,
        },
        search_rate_limit: None,
        faults: FaultSpec::default(),
        token: Some(TOKEN.into()),
    })
    .await?;
    let seeded_in = started.elapsed();
    let setup_peak_kb = proc_status_kb("VmHWM");

    let config = config::load(&config::Sources::default())?;
    let mut hs = HubSpotOptions::from_config(&config, Secret::new(TOKEN));
    hs.base_url = sandbox.base_url();
    hs.rate_limit = RATE_MAX;
    hs.rate_interval = RATE_INTERVAL;
    let crm = Arc::new(HubSpotConnector::new(hs)?);

    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let db = dir.path().join("ws.db");
    let store = Store::open(&db)?;
    let statuses_before = common::sandbox_status_counts(&sandbox.base_url()).await?;
    let first = timed_pull(&store, &crm).await?;
    let second = timed_pull(&store, &crm).await?;
    let statuses = common::status_delta(
        &statuses_before,
        &common::sandbox_status_counts(&sandbox.base_url()).await?,
    );
    let db_size: u64 = ["ws.db", "ws.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    sandbox.shutdown().await;

    println!("dupdesk pull benchmark (sync::pull against the in-process sandbox CRM)");
    println!("  machine:    {}", common::machine());
    println!(
        "  note:       the sandbox CRM runs in this same process on 127.0.0.1 and shares these cores,"
    );
    println!(
        "              so the times include the server's work (its SQLite, JSON encoding) as well as dupdesk's"
    );
    println!(
        "  data:       demo::generate(DemoOptions::scaled({})) = {} contacts + {} companies (seed {}),",
        thousands(contacts as u64),
        thousands(n_contacts as u64),
        thousands(n_companies as u64),
        opts.seed
    );
    println!(
        "              generated in {:.1} s, seeded into the sandbox in {:.1} s (not timed below)",
        generated_in.as_secs_f64(),
        seeded_in.as_secs_f64()
    );
    println!(
        "  rate limit: sandbox and client limiter both {} requests per {} s, so it never binds",
        thousands(RATE_MAX.into()),
        RATE_INTERVAL.as_secs()
    );
    println!("  workspace:  a fresh SQLite file in a temp dir (WAL, synchronous = FULL)");
    println!();
    println!(
        "  {:<16} {:>8} {:>9} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "pull",
        "records",
        "inserted",
        "updated",
        "unchanged",
        "requests",
        "wall",
        "records/s",
        "peak mem"
    );
    for (name, t) in [("first (full)", &first), ("second (incr.)", &second)] {
        let per_s = t.fetched as f64 / t.wall.as_secs_f64().max(1e-9);
        println!(
            "  {:<16} {:>8} {:>9} {:>8} {:>10} {:>9} {:>8.2}s {:>10} {:>10}",
            name,
            thousands(t.fetched),
            thousands(t.inserted),
            thousands(t.updated),
            thousands(t.unchanged),
            thousands(t.requests),
            t.wall.as_secs_f64(),
            thousands(per_s.round() as u64),
            mib(t.peak_kb)
        );
    }
    println!();
    println!(
        "  requests: connector stats (every HTTP attempt; retries: {} + {}); sandbox answered: {}",
        first.retries,
        second.retries,
        common::format_counts(&statuses)
    );
    if first.peak_reset && second.peak_reset {
        println!(
            "  peak mem: VmHWM of the whole process during each pull (reset before it through /proc/self/clear_refs);"
        );
        println!(
            "            the sandbox's in-memory store is included: resident at the start of the pulls {} and {},",
            mib(first.rss_kb),
            mib(second.rss_kb)
        );
        let growth = |t: &Timed| match (t.peak_kb, t.rss_kb) {
            (Some(p), Some(r)) => format!("+{}", mib(Some(p.saturating_sub(r)))),
            _ => "n/a".into(),
        };
        println!(
            "            so the pulls themselves grew the process by {} and {} at most (freed setup memory reused);",
            growth(&first),
            growth(&second)
        );
        println!(
            "            the setup (generating and seeding the data) peaked at {}",
            mib(setup_peak_kb)
        );
    } else {
        println!(
            "  peak mem: VmHWM of the whole process since it started (could not reset it), so it includes the setup"
        );
        println!(
            "            (generating and seeding the data: {}); resident at the start of the pulls {} and {}",
            mib(setup_peak_kb),
            mib(first.rss_kb),
            mib(second.rss_kb)
        );
    }
    println!(
        "  workspace file after both pulls: {}",
        mib(Some(db_size / 1024))
    );
    println!(
        "  the second pull asks for records modified since the first pull started, minus [pull] lookback_seconds,\n  \
         and reads none the workspace holds at the same updatedAt; it also pages the archived list"
    );
    Ok(())
}
