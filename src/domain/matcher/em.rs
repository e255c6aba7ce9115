//! The Fellegi-Sunter model and its estimation without labels. For each field and agreement
//! level, `m` is the chance that two records of the same entity agree at that level and `u` the
//! chance that two unrelated records do; a level is worth `log2(m/u)` bits of evidence.
//!
//! `u` comes from random record pairs, which are almost all unrelated. `m` comes from
//! expectation maximisation over the candidate pairs of each blocking rule in turn, with `u`
//! held fixed and the rule's own fields left out (every pair of that rule agrees on them, so
//! they say nothing there); the per-rule estimates are averaged by how many matches each rule
//! holds. The prior, the chance that two random records match, is the expected number of
//! matching pairs over all pairs. Steward-confirmed pairs then pull `m` toward what they show.
//! This module must not read the store; it works on comparison vectors.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::compare::{self, MISSING};
use super::features::{Table, level_of};
use super::schema::FieldKind;

/// Estimated parameters of one field. `m[l-1]` and `u[l-1]` belong to level `l` (1 = different
/// ... last = exact); the missing level carries no evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldParams {
    pub property: String,
    pub kind: FieldKind,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

impl FieldParams {
    /// Bits of evidence of a level.
    pub fn weight(&self, level: u8) -> f64 {
        if level == MISSING {
            return 0.0;
        }
        let l = usize::from(level) - 1;
        (self.m[l] / self.u[l]).log2()
    }
}

/// How one blocking rule's expectation maximisation went, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFit {
    pub rule: String,
    pub sampled_pairs: u64,
    /// The share of the rule's candidate pairs that are matches.
    pub lambda: f64,
    pub expected_matches: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// The model of the candidate pairs of one blocking rule: among pairs that share the rule's
/// key, the match share and the `m` and `u` of each field that still varies there. Fields the
/// rule blocks on exactly are constant in it and carry no weight of their own (`free` false):
/// their agreement is already in `lambda`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleModel {
    pub rule: String,
    pub free: Vec<bool>,
    pub lambda: f64,
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
}

impl RuleModel {
    /// Bits of evidence of field `f` at `level` among this rule's candidates.
    pub fn weight(&self, f: usize, level: u8) -> f64 {
        if level == MISSING || !self.free[f] {
            return 0.0;
        }
        let l = usize::from(level) - 1;
        (self.m[f][l] / self.u[f][l]).log2()
    }

    pub fn prior_weight(&self) -> f64 {
        (self.lambda / (1.0 - self.lambda)).log2()
    }
}

/// A fitted Fellegi-Sunter model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Which schema it was fitted for ([`super::schema::MatchConfig::schema_signature`]).
    pub signature: String,
    /// The model of any two records: `u` from random pairs, `m` combined over the rules. It
    /// scores pairs that no blocking rule brings together.
    pub fields: Vec<FieldParams>,
    /// The chance that two records drawn at random are the same entity.
    pub prior: f64,
    /// Per blocking rule, in rule order: scores the pairs that rule brings together first.
    pub rules: Vec<RuleModel>,
    pub fits: Vec<RuleFit>,
    /// Steward-confirmed pairs folded into `m`.
    pub labelled_pairs: u64,
}

impl Model {
    /// Bits of prior evidence: log2 of the prior odds (negative: most pairs are not matches).
    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }

    /// Pull `m` (of the whole model and of every rule) toward the level frequencies of
    /// steward-confirmed matching pairs, each field by the pairs where it is present; `weight`
    /// pairs count as much as the unlabelled estimate.
    pub fn refine_with_labels(&mut self, matches: &[u64], weight: f64) {
        if matches.is_empty() {
            return;
        }
        for f in 0..self.fields.len() {
            let mut counts = vec![0.0; self.fields[f].m.len()];
            let mut n = 0.0;
            for p in matches {
                let l = level_of(*p, f);
                if l != MISSING {
                    counts[usize::from(l) - 1] += 1.0;
                    n += 1.0;
                }
            }
            if n == 0.0 {
                continue;
            }
            let blend = |m: &mut Vec<f64>| {
                for (x, c) in m.iter_mut().zip(&counts) {
                    *x = ((*x * weight + c) / (weight + n)).max(1e-6);
                }
            };
            blend(&mut self.fields[f].m);
            for r in &mut self.rules {
                blend(&mut r.m[f]);
            }
        }
        self.labelled_pairs = matches.len() as u64;
    }
}

/// Level frequencies among random record pairs: the `u` of each field. Drawn with a seeded
/// generator, or every pair when there are fewer pairs than `samples`.
pub fn estimate_u(table: &Table, samples: usize, seed: u64) -> Vec<Vec<f64>> {
    let n = table.len();
    let fields = table.columns.len();
    let total_pairs = (n as u64) * (n.saturating_sub(1) as u64) / 2;
    let counts: Vec<Vec<f64>> = if total_pairs <= samples as u64 {
        (0..n)
            .into_par_iter()
            .fold(
                || vec![vec![0.0; 16]; fields],
                |mut acc, a| {
                    for b in a + 1..n {
                        count_levels(table, a, b, &mut acc);
                    }
                    acc
                },
            )
            .reduce(|| vec![vec![0.0; 16]; fields], add_counts)
    } else {
        const CHUNK: usize = 8192;
        let chunks = samples.div_ceil(CHUNK);
        (0..chunks)
            .into_par_iter()
            .fold(
                || vec![vec![0.0; 16]; fields],
                |mut acc, c| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37));
                    for _ in 0..CHUNK {
                        let a = rng.random_range(0..n);
                        let b = rng.random_range(0..n);
                        if a != b {
                            count_levels(table, a, b, &mut acc);
                        }
                    }
                    acc
                },
            )
            .reduce(|| vec![vec![0.0; 16]; fields], add_counts)
    };
    table
        .columns
        .iter()
        .zip(counts)
        .map(|(col, c)| {
            let levels = compare::level_count(col.kind);
            let c = &c[1..=levels];
            let total: f64 = c.iter().sum();
            // Half a pair of smoothing: an exact email agreement never seen among random pairs
            // is rare, not impossible.
            c.iter()
                .map(|x| (x + 0.5) / (total + 0.5 * levels as f64))
                .collect()
        })
        .collect()
}

fn count_levels(table: &Table, a: usize, b: usize, acc: &mut [Vec<f64>]) {
    for (f, col) in table.columns.iter().enumerate() {
        acc[f][usize::from(col.level(a, b))] += 1.0;
    }
}

fn add_counts(mut x: Vec<Vec<f64>>, y: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    for (a, b) in x.iter_mut().zip(y) {
        for (p, q) in a.iter_mut().zip(b) {
            *p += q;
        }
    }
    x
}

/// A starting `m` for a kind: most matches agree exactly, some nearly, few not at all. Only a
/// starting point: expectation maximisation moves it, and it stays only for a field that no
/// blocking rule leaves free.
pub fn initial_m(kind: FieldKind) -> Vec<f64> {
    let levels = compare::level_count(kind);
    let mut m = vec![0.0; levels];
    if levels == 2 {
        m[0] = 0.2;
        m[1] = 0.8;
        return m;
    }
    m[0] = 0.1;
    m[levels - 1] = 0.7;
    let middle = 0.2 / (levels - 2) as f64;
    for x in &mut m[1..levels - 1] {
        *x = middle;
    }
    m
}

/// One expectation-maximisation problem: comparison vectors with their counts, the fields that
/// take part (`free`), and the `u` to start from (random pairs).
#[derive(Debug, Clone)]
pub struct EmProblem<'a> {
    pub kinds: &'a [FieldKind],
    pub u: &'a [Vec<f64>],
    pub free: &'a [bool],
    pub patterns: &'a [(u64, f64)],
    pub max_iterations: usize,
    /// Estimate `u` too (within a blocking rule's pairs, where unrelated records agree more
    /// often than random ones), pulled toward the given `u` by a few pseudo-pairs.
    pub estimate_u: bool,
}

/// The outcome of [`run_em`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmFit {
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub lambda: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Pseudo-pairs that hold an estimated `u` near the random-pair `u` when a rule has few
/// non-matches (an exact-email block is almost all matches).
const U_PSEUDO_PAIRS: f64 = 20.0;

/// Fit `m` (and with `estimate_u`, `u`) of the free fields and the match share `lambda` by
/// expectation maximisation.
pub fn run_em(p: &EmProblem<'_>) -> EmFit {
    let fields = p.kinds.len();
    let mut m: Vec<Vec<f64>> = p.kinds.iter().map(|k| initial_m(*k)).collect();
    let mut u: Vec<Vec<f64>> = p.u.to_vec();
    let mut lambda: f64 = 0.3;
    let total: f64 = p.patterns.iter().map(|(_, c)| c).sum();
    let mut iterations = 0;
    let mut converged = false;
    if total == 0.0 {
        return EmFit {
            m,
            u,
            lambda: 0.0,
            iterations,
            converged: true,
        };
    }
    while iterations < p.max_iterations {
        iterations += 1;
        let ln_m: Vec<Vec<f64>> = m
            .iter()
            .map(|v| v.iter().map(|x| x.ln()).collect())
            .collect();
        let ln_u: Vec<Vec<f64>> = u
            .iter()
            .map(|v| v.iter().map(|x| x.ln()).collect())
            .collect();
        let mut acc: Vec<Vec<f64>> = m.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut acc_u: Vec<Vec<f64>> = m.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut matched = 0.0;
        let prior = (lambda / (1.0 - lambda)).ln();
        for &(pattern, count) in p.patterns {
            let mut log_odds = prior;
            for f in 0..fields {
                let l = level_of(pattern, f);
                if p.free[f] && l != MISSING {
                    let i = usize::from(l) - 1;
                    log_odds += ln_m[f][i] - ln_u[f][i];
                }
            }
            let post = 1.0 / (1.0 + (-log_odds).exp());
            let w = post * count;
            matched += w;
            for f in 0..fields {
                let l = level_of(pattern, f);
                if l != MISSING {
                    acc[f][usize::from(l) - 1] += w;
                    acc_u[f][usize::from(l) - 1] += count - w;
                }
            }
        }
        let mut change: f64 = 0.0;
        for f in 0..fields {
            if !p.free[f] {
                continue;
            }
            let levels = m[f].len() as f64;
            let sum: f64 = acc[f].iter().sum();
            for (i, x) in m[f].iter_mut().enumerate() {
                let new = (acc[f][i] + 1e-3) / (sum + 1e-3 * levels);
                change = change.max((new - *x).abs());
                *x = new;
            }
            if p.estimate_u {
                let sum_u: f64 = acc_u[f].iter().sum();
                for (i, x) in u[f].iter_mut().enumerate() {
                    let new = (acc_u[f][i] + U_PSEUDO_PAIRS * p.u[f][i]) / (sum_u + U_PSEUDO_PAIRS);
                    change = change.max((new - *x).abs());
                    *x = new;
                }
            }
        }
        let new_lambda = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        change = change.max((new_lambda - lambda).abs());
        lambda = new_lambda;
        if change < 1e-6 {
            converged = true;
            break;
        }
    }
    EmFit {
        m,
        u,
        lambda,
        iterations,
        converged,
    }
}

/// Combine per-rule fits into one `m` per field: for each field, the fits that left it free,
/// weighed by their expected matches; the starting `m` where no rule did.
pub fn combine_fits(kinds: &[FieldKind], fits: &[(Vec<bool>, EmFit, f64)]) -> Vec<Vec<f64>> {
    kinds
        .iter()
        .enumerate()
        .map(|(f, kind)| {
            let mut sum = vec![0.0; compare::level_count(*kind)];
            let mut weight = 0.0;
            for (free, fit, expected) in fits {
                if free[f] && *expected > 0.0 {
                    for (s, m) in sum.iter_mut().zip(&fit.m[f]) {
                        *s += m * expected;
                    }
                    weight += expected;
                }
            }
            if weight > 0.0 {
                sum.iter().map(|s| (s / weight).max(1e-6)).collect()
            } else {
                initial_m(*kind)
            }
        })
        .collect()
}

/// Count comparison vectors.
pub fn count_patterns(patterns: impl Iterator<Item = u64>) -> Vec<(u64, f64)> {
    let mut map: FxHashMap<u64, f64> = FxHashMap::default();
    for p in patterns {
        *map.entry(p).or_insert(0.0) += 1.0;
    }
    let mut v: Vec<(u64, f64)> = map.into_iter().collect();
    v.sort_unstable_by_key(|(p, _)| *p);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldKind::*;

    /// A labelled set drawn from known m and u: EM must recover m and the match share.
    #[test]
    fn em_converges_to_the_parameters_of_a_labelled_set() {
        let kinds = [Email, Phone, Surname];
        let true_m = [
            vec![0.05, 0.05, 0.1, 0.8],
            vec![0.2, 0.1, 0.7],
            vec![0.05, 0.05, 0.1, 0.8],
        ];
        let u = vec![
            vec![0.97, 0.01, 0.01, 0.01],
            vec![0.98, 0.01, 0.01],
            vec![0.8, 0.1, 0.05, 0.05],
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draw = |rng: &mut ChaCha8Rng, dist: &[f64]| -> u8 {
            let x: f64 = rng.random();
            let mut acc = 0.0;
            for (i, p) in dist.iter().enumerate() {
                acc += p;
                if x < acc {
                    return i as u8 + 1;
                }
            }
            dist.len() as u8
        };
        let mut labelled = Vec::new();
        for i in 0..20_000 {
            let is_match = i % 5 == 0; // lambda = 0.2
            let mut p = 0u64;
            for f in 0..3 {
                let dist = if is_match { &true_m[f] } else { &u[f] };
                p |= u64::from(draw(&mut rng, dist)) << (4 * f);
            }
            labelled.push((p, is_match));
        }
        let patterns = count_patterns(labelled.iter().map(|(p, _)| *p));
        let fit = run_em(&EmProblem {
            kinds: &kinds,
            u: &u,
            free: &[true, true, true],
            patterns: &patterns,
            max_iterations: 500,
            estimate_u: false,
        });
        assert!(fit.converged, "{fit:?}");
        assert!((fit.lambda - 0.2).abs() < 0.02, "{fit:?}");
        for (f, (got, want)) in fit.m.iter().zip(&true_m).enumerate() {
            for (est, want) in got.iter().zip(want) {
                assert!((est - want).abs() < 0.04, "field {f}: {got:?}");
            }
        }
        // And the fitted model classifies the labelled pairs as the labels say.
        let params: Vec<FieldParams> = (0..3)
            .map(|f| FieldParams {
                property: format!("f{f}"),
                kind: kinds[f],
                m: fit.m[f].clone(),
                u: u[f].clone(),
            })
            .collect();
        let prior = (fit.lambda / (1.0 - fit.lambda)).log2();
        let correct = labelled
            .iter()
            .filter(|(p, is_match)| {
                let w: f64 = prior
                    + (0..3)
                        .map(|f| params[f].weight(level_of(*p, f)))
                        .sum::<f64>();
                (w > 0.0) == *is_match
            })
            .count();
        assert!(correct as f64 / labelled.len() as f64 > 0.97, "{correct}");

        // Estimating u as well, from a start that is off, finds the same split.
        let rough_u: Vec<Vec<f64>> = u
            .iter()
            .map(|v| {
                let n = v.len() as f64;
                v.iter().map(|x| 0.5 * x + 0.5 / n).collect()
            })
            .collect();
        let fit_u = run_em(&EmProblem {
            kinds: &kinds,
            u: &rough_u,
            free: &[true, true, true],
            patterns: &patterns,
            max_iterations: 2000,
            estimate_u: true,
        });
        assert!((fit_u.lambda - 0.2).abs() < 0.03, "{fit_u:?}");
        for (got, want) in fit_u.u.iter().zip(&u) {
            assert!((got[0] - want[0]).abs() < 0.05, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn labels_pull_m_toward_what_the_steward_confirmed() {
        let mut model = Model {
            signature: String::new(),
            fields: vec![FieldParams {
                property: "email".into(),
                kind: Email,
                m: vec![0.25, 0.25, 0.25, 0.25],
                u: vec![0.97, 0.01, 0.01, 0.01],
            }],
            prior: 1e-4,
            rules: vec![],
            fits: vec![],
            labelled_pairs: 0,
        };
        let exact = 4u64;
        model.refine_with_labels(&vec![exact; 50], 50.0);
        assert!((model.fields[0].m[3] - 0.625).abs() < 1e-9);
        assert_eq!(model.labelled_pairs, 50);
    }
}
