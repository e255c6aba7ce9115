//! Clustering: links above the threshold become clusters, strongest link first, and a link is
//! refused when it would put together two records that must not be together: a pair the
//! steward marked as not duplicates, or a pair whose own score is a clear non-match (so
//! A~B and B~C do not make A one with an unrelated C), or when the cluster would outgrow the
//! size cap. A cluster keeps its best and weakest accepted link and flags what happened to it.
//! Scores of pairs that were never candidates are asked of the caller, so this module must not
//! know about fields or records.

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

/// A link between records `a` and `b` with its match weight (log2 odds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub a: u32,
    pub b: u32,
    pub weight: f64,
}

/// What the clustering must respect, in match weights (log2 odds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterLimits {
    /// Two records scoring below this may not share a cluster.
    pub conflict_weight: f64,
    /// A cluster whose weakest link is below this is flagged weak.
    pub weak_weight: f64,
    pub max_size: usize,
}

/// Why a cluster deserves a second look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flags {
    /// A link into it was refused for the size cap.
    pub oversized: bool,
    /// A link into it was refused because it would join a non-duplicate or a clear non-match.
    pub split: bool,
    /// Its weakest link is below the weak-link level.
    pub weak: bool,
}

impl Flags {
    /// The comma-separated form kept in the `clusters.flags` column.
    pub fn to_text(self) -> String {
        let mut v = Vec::new();
        if self.oversized {
            v.push("oversized");
        }
        if self.split {
            v.push("split");
        }
        if self.weak {
            v.push("weak");
        }
        v.join(",")
    }
}

/// A cluster of record indices (sorted) with its best and weakest link weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub members: Vec<u32>,
    pub best: f64,
    pub weakest: f64,
    pub flags: Flags,
}

struct Set {
    members: Vec<u32>,
    best: f64,
    weakest: f64,
    flags: Flags,
}

/// Cluster `edges` (any order). `cannot_link` holds (smaller, larger) index pairs that must
/// stay apart; `score(a, b)` gives the match weight of any two records.
pub fn cluster(
    mut edges: Vec<Edge>,
    limits: ClusterLimits,
    cannot_link: &FxHashSet<(u32, u32)>,
    score: impl Fn(u32, u32) -> f64,
) -> Vec<Cluster> {
    edges.sort_by(|x, y| {
        y.weight
            .total_cmp(&x.weight)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    // Union-find over the records that appear in an edge, with member lists at the roots.
    let mut parent: rustc_hash::FxHashMap<u32, u32> = rustc_hash::FxHashMap::default();
    let mut sets: rustc_hash::FxHashMap<u32, Set> = rustc_hash::FxHashMap::default();
    fn find(parent: &mut rustc_hash::FxHashMap<u32, u32>, x: u32) -> u32 {
        let mut root = x;
        while let Some(&p) = parent.get(&root) {
            if p == root {
                break;
            }
            root = p;
        }
        let mut cur = x;
        while cur != root {
            let next = parent.get(&cur).copied().unwrap_or(root);
            parent.insert(cur, root);
            cur = next;
        }
        root
    }
    for e in &edges {
        for x in [e.a, e.b] {
            parent.entry(x).or_insert(x);
            sets.entry(x).or_insert_with(|| Set {
                members: vec![x],
                best: f64::NEG_INFINITY,
                weakest: f64::INFINITY,
                flags: Flags::default(),
            });
        }
    }
    for e in &edges {
        let ra = find(&mut parent, e.a);
        let rb = find(&mut parent, e.b);
        if ra == rb {
            continue;
        }
        let (size_a, size_b) = (sets[&ra].members.len(), sets[&rb].members.len());
        if size_a + size_b > limits.max_size {
            for r in [ra, rb] {
                if let Some(s) = sets.get_mut(&r) {
                    s.flags.oversized = true;
                }
            }
            continue;
        }
        let conflict = sets[&ra].members.iter().any(|&x| {
            sets[&rb].members.iter().any(|&y| {
                let key = (x.min(y), x.max(y));
                cannot_link.contains(&key) || score(key.0, key.1) < limits.conflict_weight
            })
        });
        if conflict {
            for r in [ra, rb] {
                if let Some(s) = sets.get_mut(&r) {
                    s.flags.split = true;
                }
            }
            continue;
        }
        // Union by size; the larger root survives.
        let (keep, gone) = if size_a >= size_b { (ra, rb) } else { (rb, ra) };
        let Some(g) = sets.remove(&gone) else {
            continue;
        };
        parent.insert(gone, keep);
        if let Some(k) = sets.get_mut(&keep) {
            k.members.extend(g.members);
            k.best = k.best.max(g.best).max(e.weight);
            k.weakest = k.weakest.min(g.weakest).min(e.weight);
            k.flags.oversized |= g.flags.oversized;
            k.flags.split |= g.flags.split;
        }
    }
    let mut out: Vec<Cluster> = sets
        .into_values()
        .filter(|s| s.members.len() >= 2)
        .map(|mut s| {
            s.members.sort_unstable();
            s.flags.weak = s.weakest < limits.weak_weight;
            Cluster {
                members: s.members,
                best: s.best,
                weakest: s.weakest,
                flags: s.flags,
            }
        })
        .collect();
    out.sort_by(|x, y| x.members.cmp(&y.members));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClusterLimits {
        ClusterLimits {
            conflict_weight: -5.0,
            weak_weight: 8.0,
            max_size: 4,
        }
    }

    fn e(a: u32, b: u32, weight: f64) -> Edge {
        Edge { a, b, weight }
    }

    #[test]
    fn a_chain_does_not_glue_a_clear_non_match() {
        // 0~1 strong, 1~2 above threshold, but 0 and 2 are clearly different.
        let edges = vec![e(0, 1, 20.0), e(1, 2, 6.0)];
        let score = |a: u32, b: u32| if (a, b) == (0, 2) { -12.0 } else { 10.0 };
        let c = cluster(edges, limits(), &FxHashSet::default(), score);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].members, vec![0, 1]);
        assert!(c[0].flags.split);
        assert_eq!(c[0].best, 20.0);
    }

    #[test]
    fn not_duplicates_are_never_merged() {
        let edges = vec![e(0, 1, 30.0), e(2, 3, 30.0), e(1, 2, 30.0), e(0, 3, 25.0)];
        let mut cannot = FxHashSet::default();
        cannot.insert((0, 2));
        let c = cluster(edges, limits(), &cannot, |_, _| 30.0);
        for cl in &c {
            assert!(
                !(cl.members.contains(&0) && cl.members.contains(&2)),
                "{c:?}"
            );
        }
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|cl| cl.flags.split));
        // The direct edge is refused too.
        let c = cluster(vec![e(0, 2, 40.0)], limits(), &cannot, |_, _| 40.0);
        assert!(c.is_empty());
    }

    #[test]
    fn size_cap_and_weak_links_are_flagged() {
        let edges: Vec<Edge> = (1..6).map(|i| e(0, i, 20.0 - f64::from(i))).collect();
        let c = cluster(edges, limits(), &FxHashSet::default(), |_, _| 10.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].members, vec![0, 1, 2, 3]);
        assert!(c[0].flags.oversized);
        assert_eq!(c[0].weakest, 17.0);
        assert!(!c[0].flags.weak);
        let c = cluster(
            vec![e(7, 9, 3.0)],
            limits(),
            &FxHashSet::default(),
            |_, _| 3.0,
        );
        assert!(c[0].flags.weak);
        assert_eq!(c[0].flags.to_text(), "weak");
    }
}
