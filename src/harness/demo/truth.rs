//! Which generated records describe the same real-world entity, and how a matcher's answer
//! scores against that (pairwise precision and recall).

use std::collections::{HashMap, HashSet};

use crate::domain::model::ObjectType;

/// Record id → real-world entity id, per object type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    pub contacts: HashMap<String, u64>,
    pub companies: HashMap<String, u64>,
}

/// Pairwise scores of a predicted set of duplicate pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairMetrics {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

impl PairMetrics {
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// An empty answer to an empty question is perfect.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

/// A pair in canonical order, so (a, b) and (b, a) are one pair.
fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Truth {
    pub fn of(&self, object: ObjectType) -> &HashMap<String, u64> {
        match object {
            ObjectType::Contacts => &self.contacts,
            ObjectType::Companies => &self.companies,
        }
    }

    /// The entity a record describes, if the record was generated.
    pub fn entity(&self, object: ObjectType, id: &str) -> Option<u64> {
        self.of(object).get(id).copied()
    }

    /// True when both records were generated from the same entity (and are two records).
    pub fn same_entity(&self, object: ObjectType, a: &str, b: &str) -> bool {
        a != b
            && matches!(
                (self.entity(object, a), self.entity(object, b)),
                (Some(x), Some(y)) if x == y
            )
    }

    /// Record ids grouped by entity, only entities with two or more records, each group and
    /// the list sorted.
    pub fn duplicate_groups(&self, object: ObjectType) -> Vec<Vec<String>> {
        let mut by_entity: HashMap<u64, Vec<String>> = HashMap::new();
        for (id, e) in self.of(object) {
            by_entity.entry(*e).or_default().push(id.clone());
        }
        let mut groups: Vec<Vec<String>> = by_entity
            .into_values()
            .filter(|g| g.len() > 1)
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        groups.sort();
        groups
    }

    /// Every pair of records of one entity, as (a, b) with a < b, sorted.
    pub fn true_pairs(&self, object: ObjectType) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for g in self.duplicate_groups(object) {
            for (i, a) in g.iter().enumerate() {
                for b in &g[i + 1..] {
                    pairs.push((a.clone(), b.clone()));
                }
            }
        }
        pairs.sort();
        pairs
    }

    /// Score predicted duplicate pairs (in any order, repeats ignored).
    pub fn score_pairs<'a>(
        &self,
        object: ObjectType,
        predicted: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> PairMetrics {
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        let mut m = PairMetrics::default();
        for (a, b) in predicted {
            if a == b || !seen.insert(ordered(a, b)) {
                continue;
            }
            if self.same_entity(object, a, b) {
                m.true_positives += 1;
            } else {
                m.false_positives += 1;
            }
        }
        let total = self.true_pairs_count(object);
        m.false_negatives = total.saturating_sub(m.true_positives);
        m
    }

    /// Score predicted clusters: every pair inside a cluster counts as predicted.
    pub fn score_clusters<S: AsRef<str>>(
        &self,
        object: ObjectType,
        clusters: &[Vec<S>],
    ) -> PairMetrics {
        let pairs = clusters.iter().flat_map(|c| {
            c.iter()
                .enumerate()
                .flat_map(move |(i, a)| c[i + 1..].iter().map(move |b| (a.as_ref(), b.as_ref())))
        });
        self.score_pairs(object, pairs)
    }

    fn true_pairs_count(&self, object: ObjectType) -> u64 {
        let mut sizes: HashMap<u64, u64> = HashMap::new();
        for e in self.of(object).values() {
            *sizes.entry(*e).or_default() += 1;
        }
        sizes.values().map(|n| n * (n - 1) / 2).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> Truth {
        let mut t = Truth::default();
        for (id, e) in [("1", 1), ("2", 1), ("3", 1), ("4", 2), ("5", 3), ("6", 3)] {
            t.contacts.insert(id.into(), e);
        }
        t
    }

    #[test]
    fn pairs_and_scores() {
        let t = truth();
        let c = ObjectType::Contacts;
        assert_eq!(t.true_pairs(c).len(), 4);
        assert!(t.same_entity(c, "3", "1"));
        assert!(!t.same_entity(c, "1", "1"));
        assert!(!t.same_entity(c, "1", "4"));
        assert!(!t.same_entity(c, "1", "unknown"));
        let m = t.score_clusters(c, &[vec!["1", "2"], vec!["4", "5", "6"]]);
        assert_eq!(
            m,
            PairMetrics {
                true_positives: 2,
                false_positives: 2,
                false_negatives: 2
            }
        );
        assert_eq!(m.precision(), 0.5);
        assert_eq!(m.recall(), 0.5);
        let none = t.score_pairs(c, []);
        assert_eq!(none.recall(), 0.0);
        assert_eq!(none.precision(), 1.0);
    }
}
