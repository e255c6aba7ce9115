//! Ground-truth benchmark of the matcher: generate labelled contacts with the demo generator
//! (streamed, so the records are never all in memory), match them with the default contact
//! schema from the embedded configuration, and print pairwise precision, recall and F1 against
//! the generator's truth, the candidate pairs, wall time per phase and peak memory (VmHWM).
//!
//! `cargo bench --bench matcher -- 10000 100000 1000000` (sizes default to 10000). Options:
//! `--threshold P` overrides the configured threshold, `--model` prints the fitted weights.

use std::time::Instant;

use anyhow::{Context, Result};
use dupdesk::config;
use dupdesk::domain::matcher::{self, MatchConfig, MatchInputs, Table};
use dupdesk::domain::model::ObjectType;
use dupdesk::harness::demo::{DemoOptions, Generator};

#[path = "common/quality.rs"]
mod quality;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<()> {
    let mut sizes = Vec::new();
    let mut threshold = None;
    let mut show_model = false;
    let mut errors = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--threshold" => threshold = Some(args.next().context("--threshold P")?.parse()?),
            "--model" => show_model = true,
            "--errors" => errors = args.next().context("--errors K")?.parse()?,
            n => sizes.push(n.replace('_', "").parse::<usize>().with_context(|| {
                format!("unknown argument {n:?}: sizes, --threshold P or --model")
            })?),
        }
    }
    if sizes.is_empty() {
        sizes.push(10_000);
    }
    let mut settings = config::load(&config::Sources::default())?.matcher;
    if let Some(t) = threshold {
        settings.threshold = t;
    }
    let cfg = MatchConfig::new(&settings, ObjectType::Contacts)?;
    println!(
        "matcher bench: contacts, threshold {}, {} rayon threads, rules: {}",
        cfg.settings.threshold,
        rayon::current_num_threads(),
        cfg.blocking
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for n in sizes {
        run(&cfg, n, show_model, errors)?;
    }
    Ok(())
}

fn run(cfg: &MatchConfig, n: usize, show_model: bool, errors: usize) -> Result<()> {
    let opts = DemoOptions {
        contacts: n,
        companies: 0,
        ..DemoOptions::scaled(n)
    };
    let t0 = Instant::now();
    let generator = Generator::new(&opts);
    let mut entities: Vec<u64> = Vec::with_capacity(n);
    // Time spent inside the generator while streaming, so the matcher's normalization can be
    // told apart from it.
    let mut in_generator = std::time::Duration::ZERO;
    let mut source = generator.contacts();
    let stream = std::iter::from_fn(|| {
        let t = Instant::now();
        let next = source.next();
        in_generator += t.elapsed();
        next
    });
    let table = Table::build(
        cfg,
        stream.map(|g| {
            entities.push(g.entity);
            g.record
        }),
    );
    let t_load = t0.elapsed();
    let t1 = Instant::now();
    let outcome = matcher::match_table(cfg, &table, MatchInputs::default(), &|p| {
        if std::env::var_os("MATCHER_BENCH_TRACE").is_some() {
            eprintln!("  {:>7.2}s {p:?}", t1.elapsed().as_secs_f64());
        }
    });
    let t_match = t1.elapsed();
    let rss = peak_rss_mib();

    let scores = quality::pair_scores(&outcome, &entities);
    quality::print_errors(cfg, &table, &outcome, &entities, errors);

    // Generating alone, to tell the generator's time from the matcher's normalization, and
    // normalizing records already in memory (only where they fit comfortably).
    let t2 = Instant::now();
    let generated = Generator::new(&opts).contacts().count();
    let t_gen = t2.elapsed();
    let t_norm = (n <= 200_000).then(|| {
        let records: Vec<_> = Generator::new(&opts).contacts().map(|g| g.record).collect();
        let t = Instant::now();
        let again = Table::build(cfg, &records);
        assert_eq!(again.len(), records.len());
        t.elapsed()
    });

    println!(
        "\n== {n} contacts ({generated} generated, {} entities with duplicates, {} true pairs)",
        quality::entity_groups(&entities).len(),
        scores.true_pairs
    );
    println!("{}", scores.line());
    println!(
        "candidate pairs {}  ({:.1} per record)  linked pairs {}  clusters {}  windowed blocks {} ({} records)",
        outcome.candidate_pairs,
        outcome.candidate_pairs as f64 / n as f64,
        outcome.linked_pairs,
        outcome.clusters.len(),
        outcome.windowed_blocks,
        outcome.records_in_windowed_blocks
    );
    let flagged =
        |f: fn(&matcher::Flags) -> bool| outcome.clusters.iter().filter(|c| f(&c.flags)).count();
    println!(
        "flags: oversized {}  split {}  weak {}",
        flagged(|f| f.oversized),
        flagged(|f| f.split),
        flagged(|f| f.weak)
    );
    if let Some(t) = t_norm {
        println!(
            "normalize alone (records already in memory): {:.2}s",
            t.as_secs_f64()
        );
    }
    let t_normalize = t_load.saturating_sub(in_generator);
    let matcher_secs = (t_normalize + t_match).as_secs_f64();
    println!(
        "wall: generate+normalize {:.2}s (of which in the generator {:.2}s; generator alone {:.2}s), block+fit+score+cluster {:.2}s; matcher total (normalize+match, without generator) {:.2}s",
        t_load.as_secs_f64(),
        in_generator.as_secs_f64(),
        t_gen.as_secs_f64(),
        t_match.as_secs_f64(),
        matcher_secs
    );
    println!(
        "peak memory (VmHWM, whole process so far): {}",
        rss.map_or("unknown".to_string(), |m| format!("{m:.0} MiB"))
    );
    quality::print_model(&outcome, show_model);
    Ok(())
}
