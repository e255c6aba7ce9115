//! The matcher: which records are probably the same entity, how sure it is, and why.
//!
//! ```text
//! records ─normalize─▶ Table ─block─▶ candidate pairs ─compare─▶ comparison vectors
//!                                                                   │ em: m, u, prior
//!        clusters ◀─cluster (no chains, not_duplicates)─ links ◀─score (log2 odds)
//! ```
//!
//! The algorithms are pure functions over in-memory data ([`features::Table`]); a run over the
//! workspace is [`crate::ops::matching`], and an external matcher's clusters are read by
//! [`crate::ops::external_clusters`]. Everything is synchronous and reports progress through a callback, so a UI
//! runs it on a blocking thread (`tokio::task::spawn_blocking`) and never waits on it. Scoring
//! is parallel (rayon). This module must not know about the terminal or hold weights set by
//! hand: they are estimated from the data ([`em`]).

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod diagnose;
pub mod em;
pub mod features;
pub mod fitted;
pub mod normalize;
pub mod reason;
pub mod schema;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

pub use blocking::Blocks;
pub use cluster::{Cluster, ClusterLimits, Edge, Flags};
pub use em::Model;
pub use features::Table;
pub use schema::{FieldKind, FieldSpec, MatchConfig, MatcherSettings, ObjectSchemaConfig};

/// What the matcher is doing, for a status bar or a progress line.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchProgress {
    /// Reading the clusters and decisions already in the workspace.
    Loading,
    /// Reading and normalizing the records.
    Normalizing,
    Blocking {
        rules: usize,
    },
    /// Estimating `m` on the candidate pairs of one blocking rule.
    Estimating {
        rule: usize,
        rules: usize,
    },
    Scoring {
        candidate_pairs: u64,
    },
    Clustering {
        links: u64,
    },
    Writing {
        clusters: usize,
    },
    /// A chunk of the changes to the clusters is committed: `changes` of `of` are written.
    Written {
        changes: usize,
        of: usize,
    },
}

/// The probability that goes with a match weight (log2 odds).
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// The match weight (log2 odds) of a probability.
pub fn weight_of(probability: f64) -> f64 {
    (probability / (1.0 - probability)).log2()
}

/// One field's part in a pair's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldExplanation {
    pub property: String,
    pub kind: FieldKind,
    pub comparator: String,
    /// The normalized values that were compared.
    pub a: Option<String>,
    pub b: Option<String>,
    pub level: u8,
    /// The level's name: "exact", "nickname", "jaro_winkler>=0.92", "different", "missing", ...
    pub agreement: String,
    /// Bits of evidence this field contributed (log2 of m/u; negative is against a match).
    pub weight: f64,
    /// Whether the weight was adjusted for how common the agreed value is.
    #[serde(default)]
    pub frequency_adjusted: bool,
    /// The pair was found by a blocking rule on this field's exact value, so its agreement is
    /// part of the prior and it weighs nothing of its own.
    #[serde(default)]
    pub blocked: bool,
}

/// Why a pair scored what it did: each field's contribution, the prior and the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairExplanation {
    pub a: String,
    pub b: String,
    /// The blocking rule that found the pair, whose candidates its weights were estimated on.
    pub rule: Option<String>,
    pub fields: Vec<FieldExplanation>,
    /// Bits of prior evidence: how often candidates of the rule are matches (for a pair no rule
    /// found, how often two random records are).
    pub prior_weight: f64,
    /// Prior plus the fields: log2 of the odds that the pair is a match.
    pub match_weight: f64,
    pub probability: f64,
}

/// Scores pairs of a table with a fitted model. A pair that a blocking rule brings together is
/// scored with that rule's model (the first such rule, as in [`Blocks::fold_pairs`]); any
/// other pair with the whole-table model.
pub struct Scorer<'a> {
    table: &'a Table,
    model: &'a Model,
    blocks: Option<&'a Blocks>,
    /// Per field, per level: bits of evidence between any two records.
    global: Vec<Vec<f64>>,
    /// Per rule, per field, per level: bits of evidence among the rule's candidates.
    by_rule: Vec<Vec<Vec<f64>>>,
    /// Per field of a frequency-adjusted kind, per value: bits added to an exact agreement on
    /// that value, for being rarer (or commoner) than the average exact agreement.
    exact_adjust: Vec<Option<Vec<f32>>>,
    /// Fields in the order [`Scorer::weight_at_least`] looks at them: cheap comparators first.
    order: Vec<usize>,
    /// Per rule (and last, for any pair), per position in `order`: the most the fields from
    /// that position on can still add.
    headroom: Vec<Vec<f64>>,
}

/// Relative cost of a kind's comparator, to look at cheap fields first.
fn cost(kind: FieldKind) -> u8 {
    match kind {
        FieldKind::Domain | FieldKind::Postcode => 0,
        FieldKind::Phone | FieldKind::Identifier | FieldKind::Date => 1,
        FieldKind::Email => 2,
        FieldKind::GivenName | FieldKind::Surname | FieldKind::City => 3,
        FieldKind::PersonName | FieldKind::Company | FieldKind::Text | FieldKind::List => 4,
        FieldKind::Address => 5,
    }
}

impl<'a> Scorer<'a> {
    pub fn new(table: &'a Table, model: &'a Model, blocks: Option<&'a Blocks>) -> Scorer<'a> {
        let global: Vec<Vec<f64>> = model
            .fields
            .iter()
            .map(|f| (0..=f.m.len()).map(|l| f.weight(l as u8)).collect())
            .collect();
        let by_rule: Vec<Vec<Vec<f64>>> = model
            .rules
            .iter()
            .map(|r| {
                (0..model.fields.len())
                    .map(|f| {
                        (0..=model.fields[f].m.len())
                            .map(|l| r.weight(f, l as u8))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let exact_adjust: Vec<Option<Vec<f32>>> = table
            .columns
            .iter()
            .zip(&model.fields)
            .map(|(col, params)| {
                if !col.kind.frequency_adjusted() || col.present == 0 {
                    return None;
                }
                let u_exact = *params.u.last()?;
                let present = f64::from(col.present);
                Some(
                    col.freq
                        .iter()
                        .map(|&n| {
                            // The chance that a random record holds this very value is what an
                            // exact agreement on it is worth against.
                            let u_value = (f64::from(n) / present).max(1.0 / present);
                            (u_exact / u_value).log2() as f32
                        })
                        .collect(),
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..table.columns.len()).collect();
        order.sort_by_key(|&f| (cost(table.columns[f].kind), f));
        let max_adjust: Vec<f64> = exact_adjust
            .iter()
            .map(|a: &Option<Vec<f32>>| {
                a.as_ref().map_or(0.0, |v| {
                    v.iter().skip(1).fold(0.0_f64, |m, x| m.max(f64::from(*x)))
                })
            })
            .collect();
        let headroom_of = |weights: &Vec<Vec<f64>>| -> Vec<f64> {
            let best: Vec<f64> = order
                .iter()
                .map(|&f| {
                    // missing (level 0) weighs 0, so the best is never below 0
                    weights[f].iter().fold(0.0_f64, |m, x| m.max(*x)) + max_adjust[f]
                })
                .collect();
            let mut suffix = vec![0.0; order.len() + 1];
            for i in (0..order.len()).rev() {
                suffix[i] = suffix[i + 1] + best[i];
            }
            suffix
        };
        let mut headroom: Vec<Vec<f64>> = by_rule.iter().map(headroom_of).collect();
        headroom.push(headroom_of(&global));
        Scorer {
            table,
            model,
            blocks,
            global,
            by_rule,
            exact_adjust,
            order,
            headroom,
        }
    }

    /// The match weight of `a` and `b` among the candidates of `rule`, or `None` as soon as it
    /// is sure to stay below `threshold`: the same number as [`Scorer::weight_in`] when it is
    /// not below, found without comparing the fields that could not change the outcome.
    #[inline]
    pub fn weight_at_least(
        &self,
        rule: Option<usize>,
        a: usize,
        b: usize,
        threshold: f64,
    ) -> Option<f64> {
        let headroom = match rule {
            Some(r) if r < self.by_rule.len() => &self.headroom[r],
            _ => &self.headroom[self.headroom.len() - 1],
        };
        let mut w = self.prior(rule);
        for (i, &f) in self.order.iter().enumerate() {
            if w + headroom[i] < threshold {
                return None;
            }
            let l = self.table.columns[f].level(a, b);
            w += self.field_weight(rule, f, l, a).0;
        }
        (w >= threshold).then_some(w)
    }

    /// The first blocking rule that brings `a` and `b` together, if any.
    pub fn rule_of(&self, a: usize, b: usize) -> Option<usize> {
        let blocks = self.blocks?;
        (0..blocks.rules())
            .find(|&r| blocks.keys[r][a] != 0 && blocks.keys[r][a] == blocks.keys[r][b])
    }

    /// The match weight (log2 odds, prior included) of records `a` and `b`.
    pub fn weight(&self, a: usize, b: usize) -> f64 {
        self.weight_in(self.rule_of(a, b), a, b)
    }

    /// The match weight of `a` and `b` among the candidates of `rule` (`None`: any pair).
    #[inline]
    pub fn weight_in(&self, rule: Option<usize>, a: usize, b: usize) -> f64 {
        let mut w = self.prior(rule);
        for (f, col) in self.table.columns.iter().enumerate() {
            let l = col.level(a, b);
            w += self.field_weight(rule, f, l, a).0;
        }
        w
    }

    fn prior(&self, rule: Option<usize>) -> f64 {
        match rule.and_then(|r| self.model.rules.get(r)) {
            Some(r) => r.prior_weight(),
            None => self.model.prior_weight(),
        }
    }

    #[inline]
    fn field_weight(&self, rule: Option<usize>, f: usize, level: u8, a: usize) -> (f64, bool) {
        let (table, free) = match rule.and_then(|r| self.by_rule.get(r).map(|t| (t, r))) {
            Some((t, r)) => (t, self.model.rules[r].free[f]),
            None => (&self.global, true),
        };
        let base = table[f][usize::from(level)];
        let col = &self.table.columns[f];
        if free
            && level == compare::exact_level(col.kind)
            && let Some(adjust) = &self.exact_adjust[f]
        {
            return (base + f64::from(adjust[col.values[a] as usize]), true);
        }
        (base, false)
    }

    /// The explanation of a pair's score.
    pub fn explain(&self, a: usize, b: usize) -> PairExplanation {
        let rule = self.rule_of(a, b);
        let mut fields = Vec::with_capacity(self.table.columns.len());
        let prior = self.prior(rule);
        let mut total = prior;
        for (f, col) in self.table.columns.iter().enumerate() {
            let level = col.level(a, b);
            let (weight, adjusted) = self.field_weight(rule, f, level, a);
            total += weight;
            let blocked = rule.is_some_and(|r| !self.model.rules[r].free[f]);
            fields.push(FieldExplanation {
                property: col.property.clone(),
                kind: col.kind,
                comparator: compare::comparator_name(col.kind).to_string(),
                a: col.value(a).map(str::to_string),
                b: col.value(b).map(str::to_string),
                level,
                agreement: compare::level_name(col.kind, level).to_string(),
                weight,
                frequency_adjusted: adjusted,
                blocked,
            });
        }
        PairExplanation {
            a: self.table.ids[a].clone(),
            b: self.table.ids[b].clone(),
            rule: rule.map(|r| self.model.rules[r].rule.clone()),
            fields,
            prior_weight: prior,
            match_weight: total,
            probability: probability(total),
        }
    }

    pub fn model(&self) -> &Model {
        self.model
    }
}

/// Fit the model on the table without labels, then fold in the steward-confirmed matching
/// pairs `labels` (record index pairs).
pub fn fit_model(
    cfg: &MatchConfig,
    table: &Table,
    blocks: &Blocks,
    labels: &[(u32, u32)],
    progress: &dyn Fn(MatchProgress),
) -> Model {
    let kinds: Vec<FieldKind> = table.columns.iter().map(|c| c.kind).collect();
    let u = em::estimate_u(table, cfg.settings.u_sample_pairs, cfg.settings.seed);
    let mut fits = Vec::new();
    let mut rules = Vec::new();
    let mut reports = Vec::new();
    for (r, rule) in cfg.blocking.iter().enumerate() {
        progress(MatchProgress::Estimating {
            rule: r + 1,
            rules: cfg.blocking.len(),
        });
        // A field blocked on exactly is constant among the rule's pairs; a transformed one
        // (an initial, a sound) still varies, and so does a given name blocked on its
        // nickname-resolved form.
        let free: Vec<bool> = (0..kinds.len())
            .map(|f| {
                !rule.parts.iter().any(|p| {
                    p.field == f
                        && p.transform == schema::KeyTransform::Exact
                        && kinds[f] != FieldKind::GivenName
                })
            })
            .collect();
        let rule_pairs = blocks.rule_pairs(r);
        if rule_pairs == 0 || !free.iter().any(|x| *x) {
            rules.push(em::RuleModel {
                rule: rule.text.clone(),
                free,
                lambda: 0.5,
                m: kinds.iter().map(|k| em::initial_m(*k)).collect(),
                u: u.clone(),
            });
            continue;
        }
        let stride = rule_pairs
            .div_ceil(cfg.settings.em_sample_pairs as u64)
            .max(1);
        let counts: FxHashMap<u64, f64> = (0..blocks.groups[r].len())
            .into_par_iter()
            .fold(FxHashMap::default, |mut acc: FxHashMap<u64, f64>, g| {
                blocks.for_each_pair(r, g, |a, b| {
                    if stride == 1 || pair_hash(a, b).is_multiple_of(stride) {
                        *acc.entry(table.pattern(a as usize, b as usize))
                            .or_insert(0.0) += 1.0;
                    }
                });
                acc
            })
            .reduce(FxHashMap::default, |mut x, y| {
                for (k, v) in y {
                    *x.entry(k).or_insert(0.0) += v;
                }
                x
            });
        let mut patterns: Vec<(u64, f64)> = counts.into_iter().collect();
        patterns.sort_unstable_by_key(|(p, _)| *p);
        let sampled: f64 = patterns.iter().map(|(_, c)| c).sum();
        let fit = em::run_em(&em::EmProblem {
            kinds: &kinds,
            u: &u,
            free: &free,
            patterns: &patterns,
            max_iterations: cfg.settings.em_max_iterations,
            estimate_u: true,
        });
        let expected = fit.lambda * rule_pairs as f64;
        reports.push(em::RuleFit {
            rule: rule.text.clone(),
            sampled_pairs: sampled as u64,
            lambda: fit.lambda,
            expected_matches: expected,
            iterations: fit.iterations,
            converged: fit.converged,
        });
        rules.push(em::RuleModel {
            rule: rule.text.clone(),
            free: free.clone(),
            lambda: fit.lambda.clamp(1e-6, 1.0 - 1e-6),
            m: fit.m.clone(),
            u: fit.u.clone(),
        });
        fits.push((free, fit, expected));
    }
    let m = em::combine_fits(&kinds, &fits);
    let n = table.len() as f64;
    // At least two, so that the bounds below stay ordered for a table of one or two records.
    let all_pairs = (n * (n - 1.0) / 2.0).max(2.0);
    // The rule holding the most matches bounds the number of matching pairs from below; the
    // rules overlap, so their sum would count the same pairs several times.
    let expected = fits.iter().map(|(_, _, e)| *e).fold(1.0_f64, f64::max);
    let prior = (expected / all_pairs).clamp(1.0 / all_pairs, 0.5);
    let mut model = Model {
        signature: cfg.schema_signature(),
        fields: table
            .columns
            .iter()
            .zip(m)
            .zip(u)
            .map(|((col, m), u)| em::FieldParams {
                property: col.property.clone(),
                kind: col.kind,
                m,
                u,
            })
            .collect(),
        prior,
        rules,
        fits: reports,
        labelled_pairs: 0,
    };
    let labelled: Vec<u64> = labels
        .iter()
        .map(|&(a, b)| table.pattern(a as usize, b as usize))
        .collect();
    model.refine_with_labels(&labelled, cfg.settings.label_weight);
    model
}

fn pair_hash(a: u32, b: u32) -> u64 {
    let (a, b) = (a.min(b), a.max(b));
    let x = (u64::from(a) << 32 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// Candidate pairs scored, and those at or above the threshold.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub candidate_pairs: u64,
    pub edges: Vec<Edge>,
}

/// Score every candidate pair (or, with `only`, those touching a marked record) and keep the
/// links at or above the threshold weight.
pub fn link(blocks: &Blocks, scorer: &Scorer<'_>, threshold: f64, only: Option<&[bool]>) -> Links {
    let threshold_weight = weight_of(threshold);
    blocks.fold_pairs(
        only,
        Links::default,
        |acc, rule, a, b| {
            acc.candidate_pairs += 1;
            if let Some(w) = scorer.weight_at_least(Some(rule), a, b, threshold_weight) {
                acc.edges.push(Edge {
                    a: a as u32,
                    b: b as u32,
                    weight: w,
                });
            }
        },
        |mut x, y| {
            x.candidate_pairs += y.candidate_pairs;
            x.edges.extend(y.edges);
            x
        },
    )
}

/// The cluster limits of a configuration, in match weights.
pub fn limits(cfg: &MatchConfig) -> ClusterLimits {
    ClusterLimits {
        conflict_weight: weight_of(cfg.settings.conflict_probability),
        weak_weight: weight_of(cfg.settings.weak_link),
        max_size: cfg.settings.max_cluster_size,
    }
}

/// The result of matching a table in memory.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub model: Model,
    pub candidate_pairs: u64,
    pub linked_pairs: u64,
    /// Blocks compared by sorted window for their size, and the records in them, over all
    /// rules.
    pub windowed_blocks: u64,
    pub records_in_windowed_blocks: u64,
    pub clusters: Vec<Cluster>,
}

/// Inputs of [`match_table`] besides the table.
#[derive(Debug, Clone, Default)]
pub struct MatchInputs {
    /// A model fitted before; `None` fits one on this table.
    pub model: Option<Model>,
    /// Steward-confirmed matching pairs (record indices), used when fitting.
    pub labels: Vec<(u32, u32)>,
    /// Pairs (smaller index first) that must never share a cluster.
    pub cannot_link: FxHashSet<(u32, u32)>,
}

/// Block, fit (unless given a model), score and cluster a whole table.
pub fn match_table(
    cfg: &MatchConfig,
    table: &Table,
    inputs: MatchInputs,
    progress: &dyn Fn(MatchProgress),
) -> Outcome {
    progress(MatchProgress::Blocking {
        rules: cfg.blocking.len(),
    });
    let blocks = Blocks::build(cfg, table);
    let model = match inputs.model {
        Some(m) => m,
        None => fit_model(cfg, table, &blocks, &inputs.labels, progress),
    };
    let scorer = Scorer::new(table, &model, Some(&blocks));
    let links = link(&blocks, &scorer, cfg.settings.threshold, None);
    progress(MatchProgress::Scoring {
        candidate_pairs: links.candidate_pairs,
    });
    let linked_pairs = links.edges.len() as u64;
    progress(MatchProgress::Clustering {
        links: linked_pairs,
    });
    let clusters = cluster::cluster(links.edges, limits(cfg), &inputs.cannot_link, |a, b| {
        scorer.weight(a as usize, b as usize)
    });
    let (windowed_blocks, records_in_windowed_blocks) = blocks
        .windowed
        .iter()
        .fold((0, 0), |(b, r), (x, y)| (b + x, r + y));
    Outcome {
        candidate_pairs: links.candidate_pairs,
        linked_pairs,
        windowed_blocks,
        records_in_windowed_blocks,
        clusters,
        model,
    }
}
