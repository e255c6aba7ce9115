//! Judging the matcher against ground truth, for the benchmarks that have it: pairwise
//! precision, recall and F1 of the clusters, explanations of the pairs it got wrong, and the
//! fitted model. Measuring only: nothing here may change what the matcher does.

use std::collections::HashMap;

use dupdesk::domain::matcher::{self, MatchConfig, Outcome, Table, compare};

/// Pairwise scores of clusters against the truth: every pair of records in one cluster is a
/// predicted match, every pair of records of one entity a true match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScores {
    pub true_pairs: u64,
    pub tp: u64,
    pub fp: u64,
    pub fneg: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl PairScores {
    pub fn line(&self) -> String {
        format!(
            "precision {:.4}  recall {:.4}  F1 {:.4}   (tp {}, fp {}, fn {})",
            self.precision, self.recall, self.f1, self.tp, self.fp, self.fneg
        )
    }
}

/// Record indices grouped by entity, groups of two or more only, in a stable order.
pub fn entity_groups(entities: &[u64]) -> Vec<Vec<u32>> {
    let mut by_entity: HashMap<u64, Vec<u32>> = HashMap::new();
    for (i, e) in entities.iter().enumerate() {
        by_entity.entry(*e).or_default().push(i as u32);
    }
    let mut groups: Vec<Vec<u32>> = by_entity.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

/// Score `outcome`'s clusters against `entities` (the entity of each record index).
pub fn pair_scores(outcome: &Outcome, entities: &[u64]) -> PairScores {
    let true_pairs: u64 = entity_groups(entities)
        .iter()
        .map(|g| {
            let k = g.len() as u64;
            k * (k - 1) / 2
        })
        .sum();
    let (mut tp, mut fp) = (0u64, 0u64);
    for c in &outcome.clusters {
        for (i, &a) in c.members.iter().enumerate() {
            for &b in &c.members[i + 1..] {
                if entities[a as usize] == entities[b as usize] {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / true_pairs.max(1) as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    PairScores {
        true_pairs,
        tp,
        fp,
        fneg: true_pairs - tp,
        precision,
        recall,
        f1,
    }
}

/// Print the explanations of up to `k` false positives and `k` false negatives: each field's
/// values, agreement level and weight, and the rule that found the pair (none: no rule did,
/// so blocking missed it).
pub fn print_errors(
    cfg: &MatchConfig,
    table: &Table,
    outcome: &Outcome,
    entities: &[u64],
    k: usize,
) {
    if k == 0 {
        return;
    }
    let blocks = matcher::Blocks::build(cfg, table);
    let scorer = matcher::Scorer::new(table, &outcome.model, Some(&blocks));
    let show = |kind: &str, a: u32, b: u32| {
        let e = scorer.explain(a as usize, b as usize);
        println!(
            "{kind} {} ~ {}: rule {:?} prior {:.1} weight {:.1} p {:.3}",
            e.a, e.b, e.rule, e.prior_weight, e.match_weight, e.probability
        );
        for f in &e.fields {
            println!(
                "    {:<16} {:<32} {:+6.1}  {:?} | {:?}",
                f.property, f.agreement, f.weight, f.a, f.b
            );
        }
    };
    let mut cluster_of: HashMap<u32, usize> = HashMap::new();
    let mut shown = 0;
    for (ci, c) in outcome.clusters.iter().enumerate() {
        for (i, &a) in c.members.iter().enumerate() {
            cluster_of.insert(a, ci);
            for &b in &c.members[i + 1..] {
                if entities[a as usize] != entities[b as usize] && shown < k {
                    show("FALSE POSITIVE", a, b);
                    shown += 1;
                }
            }
        }
    }
    let mut shown = 0;
    'outer: for g in entity_groups(entities) {
        for (i, &a) in g.iter().enumerate() {
            for &b in &g[i + 1..] {
                let together =
                    cluster_of.contains_key(&a) && cluster_of.get(&a) == cluster_of.get(&b);
                if !together {
                    show("FALSE NEGATIVE", a, b);
                    shown += 1;
                    if shown >= k {
                        break 'outer;
                    }
                }
            }
        }
    }
}

/// Print the prior, each rule's expectation maximisation, and with `weights` the fitted
/// weights of every level, per rule and for the whole table.
pub fn print_model(outcome: &Outcome, weights: bool) {
    let m = &outcome.model;
    println!("prior {:.3e} ({:.1} bits)", m.prior, m.prior_weight());
    if weights {
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
    if weights {
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
}
