//! Ground-truth benchmark of the matcher: generate labelled contacts with the demo generator
//! (streamed, so the records are never all in memory), match them with the default contact
//! schema from the embedded configuration, and print pairwise precision, recall and F1 against
//! the generator's truth, the candidate pairs, wall time per phase and peak memory (VmHWM).
//!
//! `cargo bench --bench matcher -- 10000 100000 1000000` (sizes default to 10000). Options:
//! `--threshold P` overrides the configured threshold, `--model` prints the fitted weights.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use dupdesk::config;
use dupdesk::demo::{DemoOptions, Generator};
use dupdesk::matcher::{self, MatchConfig, MatchInputs, Table, compare};
use dupdesk::model::ObjectType;

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

    // Pairwise scores against the truth.
    let mut per_entity: HashMap<u64, u64> = HashMap::new();
    for e in &entities {
        *per_entity.entry(*e).or_insert(0) += 1;
    }
    let true_pairs: u64 = per_entity.values().map(|k| k * (k - 1) / 2).sum();
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut cluster_of: HashMap<u32, usize> = HashMap::new();
    let mut false_pos = Vec::new();
    for (ci, c) in outcome.clusters.iter().enumerate() {
        for (i, &a) in c.members.iter().enumerate() {
            cluster_of.insert(a, ci);
            for &b in &c.members[i + 1..] {
                if entities[a as usize] == entities[b as usize] {
                    tp += 1;
                } else {
                    fp += 1;
                    false_pos.push((a, b));
                }
            }
        }
    }
    if errors > 0 {
        let blocks = matcher::Blocks::build(cfg, &table);
        let scorer = matcher::Scorer::new(&table, &outcome.model, Some(&blocks));
        let show = |kind: &str, a: u32, b: u32| {
            let e = scorer.explain(a as usize, b as usize);
            println!(
                "{kind} {} ~ {}: rule {:?} prior {:.1} weight {:.1} p {:.3}",
                e.a, e.b, e.rule, e.prior_weight, e.match_weight, e.probability
            );
            for f in &e.fields {
                println!(
                    "    {:<16} {:<24} {:+6.1}  {:?} | {:?}",
                    f.property, f.agreement, f.weight, f.a, f.b
                );
            }
        };
        for &(a, b) in false_pos.iter().take(errors) {
            show("FALSE POSITIVE", a, b);
        }
        let mut by_entity: HashMap<u64, Vec<u32>> = HashMap::new();
        for (i, e) in entities.iter().enumerate() {
            by_entity.entry(*e).or_default().push(i as u32);
        }
        let mut shown = 0;
        let mut groups: Vec<&Vec<u32>> = by_entity.values().filter(|g| g.len() > 1).collect();
        groups.sort();
        'outer: for g in groups {
            for (i, &a) in g.iter().enumerate() {
                for &b in &g[i + 1..] {
                    let together =
                        cluster_of.contains_key(&a) && cluster_of.get(&a) == cluster_of.get(&b);
                    if !together {
                        show("FALSE NEGATIVE", a, b);
                        shown += 1;
                        if shown >= errors {
                            break 'outer;
                        }
                    }
                }
            }
        }
    }
    let fneg = true_pairs - tp;
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / true_pairs.max(1) as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };

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
        "\n== {n} contacts ({generated} generated, {} entities with duplicates, {true_pairs} true pairs)",
        per_entity.values().filter(|k| **k > 1).count()
    );
    println!(
        "precision {precision:.4}  recall {recall:.4}  F1 {f1:.4}   (tp {tp}, fp {fp}, fn {fneg})"
    );
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
    let m = &outcome.model;
    println!("prior {:.3e} ({:.1} bits)", m.prior, m.prior_weight());
    if show_model {
        for r in &m.rules {
            println!("  rule {}: lambda {:.4}", r.rule, r.lambda);
            for (f, field) in m.fields.iter().enumerate().filter(|(f, _)| r.free[*f]) {
                let levels: Vec<String> = (1..=field.m.len())
                    .map(|l| {
                        format!(
                            "{}={:+.1}",
                            compare::level_name(field.kind, l as u8),
                            r.weight(f, l as u8)
                        )
                    })
                    .collect();
                println!("      {:<16} {}", field.property, levels.join("  "));
            }
        }
    }
    for fit in &m.fits {
        println!(
            "  EM {:<40} sampled {:>8}  lambda {:.4}  expected matches {:>10.0}  {} iterations{}",
            fit.rule,
            fit.sampled_pairs,
            fit.lambda,
            fit.expected_matches,
            fit.iterations,
            if fit.converged {
                ""
            } else {
                " (not converged)"
            }
        );
    }
    if show_model {
        for f in &m.fields {
            let levels: Vec<String> = (1..=f.m.len())
                .map(|l| {
                    format!(
                        "{}={:+.1}",
                        compare::level_name(f.kind, l as u8),
                        f.weight(l as u8)
                    )
                })
                .collect();
            println!("  {:<16} {}", f.property, levels.join("  "));
        }
    }
    Ok(())
}
