//! Blocking: which pairs of records are compared at all. Each rule maps a record to a key
//! (a hash of transformed field values); records sharing a key form a block. In a block of at
//! most `max_block_size` records every pair is a candidate; a larger block (a common surname)
//! is sorted on the record's other fields and each record is compared with its `window` next
//! neighbours (the sorted-neighbourhood method), so the pairs grow linearly with the records
//! however skewed the keys are. A pair found by several rules is compared once, by the first
//! rule that finds it, which is decided from each record's stored key and position in its
//! block without a set of seen pairs, so candidate pairs stream out in parallel with no memory
//! per pair. This module must not score.

use rayon::prelude::*;

use super::compare::hash_str;
use super::features::{Column, Table};
use super::normalize;
use super::schema::{FieldKind, KeyTransform, MatchConfig};

/// A block of one rule: where its members are, and whether it is compared by window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub start: u32,
    pub len: u32,
    pub windowed: bool,
}

/// The blocks of every rule.
#[derive(Debug, Clone)]
pub struct Blocks {
    /// Per rule, per record: the block key, or 0 when the record has none under that rule (or
    /// is alone in its block).
    pub keys: Vec<Vec<u64>>,
    /// Per rule, per record: its position in its sorted block; 0 for every member of a block
    /// compared pair by pair, so that the window test below holds for all its pairs.
    pub pos: Vec<Vec<u32>>,
    /// Per rule: the records of its blocks, block after block, each block in sorted order.
    pub members: Vec<Vec<u32>>,
    /// Per rule: its blocks of two or more records.
    pub groups: Vec<Vec<Group>>,
    /// Per rule: blocks compared by window (above the size cap), and the records in them.
    pub windowed: Vec<(u64, u64)>,
    /// Neighbours each record is compared with in a windowed block.
    pub window: u32,
}

impl Blocks {
    pub fn build(cfg: &MatchConfig, table: &Table) -> Blocks {
        let max = cfg.settings.max_block_size;
        let window = cfg.settings.window as u32;
        // Lexicographic rank of every value, so a sort on ranks puts near spellings together.
        let ranks: Vec<Vec<u32>> = table.columns.par_iter().map(value_ranks).collect();
        let mut out = Blocks {
            keys: Vec::new(),
            pos: Vec::new(),
            members: Vec::new(),
            groups: Vec::new(),
            windowed: Vec::new(),
            window,
        };
        for rule in &cfg.blocking {
            let part_hashes: Vec<(usize, Vec<u64>)> = rule
                .parts
                .iter()
                .map(|p| (p.field, part_hashes(&table.columns[p.field], p.transform)))
                .collect();
            let mut keys: Vec<u64> = (0..table.len())
                .into_par_iter()
                .map(|i| {
                    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
                    for (field, hashes) in &part_hashes {
                        let v = table.columns[*field].values[i] as usize;
                        let ph = hashes[v];
                        if ph == 0 {
                            return 0;
                        }
                        h = (h ^ ph).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
                    }
                    h.max(1)
                })
                .collect();
            // The sort order inside a block: the fields the rule does not use, by rank.
            let order: Vec<usize> = (0..table.columns.len())
                .filter(|f| !rule.parts.iter().any(|p| p.field == *f))
                .take(3)
                .collect();
            let sort_key = |i: u32| -> [u32; 3] {
                let mut k = [0u32; 3];
                for (slot, &f) in k.iter_mut().zip(&order) {
                    *slot = ranks[f][table.columns[f].values[i as usize] as usize];
                }
                k
            };
            let mut sorted: Vec<(u64, [u32; 3], u32)> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| **k != 0)
                .map(|(i, k)| (*k, sort_key(i as u32), i as u32))
                .collect();
            sorted.par_sort_unstable();
            let mut pos = vec![0u32; table.len()];
            let mut members = Vec::new();
            let mut groups = Vec::new();
            let mut windowed = (0u64, 0u64);
            let mut start = 0;
            while start < sorted.len() {
                let key = sorted[start].0;
                let end = start + sorted[start..].partition_point(|(k, _, _)| *k == key);
                let len = end - start;
                if len >= 2 {
                    let is_windowed = len > max;
                    if is_windowed {
                        windowed.0 += 1;
                        windowed.1 += len as u64;
                        for (p, (_, _, i)) in sorted[start..end].iter().enumerate() {
                            pos[*i as usize] = p as u32;
                        }
                    }
                    groups.push(Group {
                        start: members.len() as u32,
                        len: len as u32,
                        windowed: is_windowed,
                    });
                    members.extend(sorted[start..end].iter().map(|(_, _, i)| *i));
                } else {
                    // A record alone in its block pairs with nobody; forgetting its key keeps
                    // the first-rule test exact and cheap.
                    keys[sorted[start].2 as usize] = 0;
                }
                start = end;
            }
            out.keys.push(keys);
            out.pos.push(pos);
            out.members.push(members);
            out.groups.push(groups);
            out.windowed.push(windowed);
        }
        out
    }

    pub fn rules(&self) -> usize {
        self.keys.len()
    }

    /// Whether `rule` compares `a` and `b`.
    #[inline]
    pub fn pairs_in(&self, rule: usize, a: usize, b: usize) -> bool {
        let k = &self.keys[rule];
        k[a] != 0 && k[a] == k[b] && self.pos[rule][a].abs_diff(self.pos[rule][b]) <= self.window
    }

    /// Whether a rule before `rule` already compares `a` and `b`.
    #[inline]
    pub fn seen_before(&self, rule: usize, a: usize, b: usize) -> bool {
        (0..rule).any(|r| self.pairs_in(r, a, b))
    }

    /// The first rule that compares `a` and `b`, if any.
    pub fn first_rule(&self, a: usize, b: usize) -> Option<usize> {
        (0..self.rules()).find(|&r| self.pairs_in(r, a, b))
    }

    /// The pairs (with repeats across rules) of one rule.
    pub fn rule_pairs(&self, rule: usize) -> u64 {
        let w = u64::from(self.window);
        self.groups[rule]
            .iter()
            .map(|g| {
                let n = u64::from(g.len);
                if g.windowed {
                    // each record with up to `w` followers
                    (0..n).map(|x| w.min(n - 1 - x)).sum()
                } else {
                    n * (n - 1) / 2
                }
            })
            .sum()
    }

    /// Call `f(a, b)` for each pair block `group` of `rule` compares.
    #[inline]
    pub fn for_each_pair(&self, rule: usize, group: usize, mut f: impl FnMut(u32, u32)) {
        let g = self.groups[rule][group];
        let block = &self.members[rule][g.start as usize..(g.start + g.len) as usize];
        let reach = if g.windowed {
            self.window as usize
        } else {
            block.len()
        };
        for (x, &a) in block.iter().enumerate() {
            let end = (x + 1 + reach).min(block.len());
            for &b in &block[x + 1..end] {
                f(a, b);
            }
        }
    }

    /// Run `f(acc, rule, a, b)` over every distinct candidate pair once (with the first rule
    /// that finds it), in parallel, folding into per-thread accumulators that are then
    /// reduced. With `only`, pairs where neither record is marked are skipped (incremental
    /// matching).
    pub fn fold_pairs<A, F, R>(&self, only: Option<&[bool]>, init: fn() -> A, f: F, reduce: R) -> A
    where
        A: Send,
        F: Fn(&mut A, usize, usize, usize) + Sync,
        R: Fn(A, A) -> A + Sync + Send,
    {
        (0..self.rules())
            .flat_map(|r| (0..self.groups[r].len()).map(move |g| (r, g)))
            .collect::<Vec<_>>()
            .into_par_iter()
            .fold(init, |mut acc, (r, g)| {
                self.for_each_pair(r, g, |a, b| {
                    let (a, b) = (a as usize, b as usize);
                    if let Some(only) = only
                        && !only[a]
                        && !only[b]
                    {
                        return;
                    }
                    if self.seen_before(r, a, b) {
                        return;
                    }
                    let (a, b) = if a < b { (a, b) } else { (b, a) };
                    f(&mut acc, r, a, b);
                });
                acc
            })
            .reduce(init, reduce)
    }
}

/// The lexicographic rank of each distinct value of a column (0 for missing).
fn value_ranks(col: &Column) -> Vec<u32> {
    let mut idx: Vec<u32> = (1..col.dict.len() as u32).collect();
    idx.sort_unstable_by(|&x, &y| col.dict[x as usize].cmp(&col.dict[y as usize]));
    let mut rank = vec![0u32; col.dict.len()];
    for (r, i) in idx.into_iter().enumerate() {
        rank[i as usize] = r as u32 + 1;
    }
    rank
}

/// Per distinct value of a column, the hash of its transformed value (0: no key part).
fn part_hashes(col: &Column, t: KeyTransform) -> Vec<u64> {
    col.dict
        .par_iter()
        .enumerate()
        .map(|(i, v)| {
            if i == 0 {
                return 0;
            }
            // Given names block by their nickname-resolved form, so Bob meets Robert.
            let base: &str = if col.kind == FieldKind::GivenName {
                normalize::given_canonical(v)
            } else {
                v
            };
            let part: String = match t {
                KeyTransform::Exact => base.to_string(),
                KeyTransform::Initial => base.chars().take(1).collect(),
                KeyTransform::Prefix(n) => base.chars().take(usize::from(n)).collect(),
                KeyTransform::Phonetic => normalize::phonetic(base),
                KeyTransform::Year => base.chars().take(4).collect(),
            };
            if part.is_empty() {
                0
            } else {
                hash_str(&part).max(1)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matcher::schema::{FieldSpec, MatcherSettings, ObjectSchemaConfig};
    use crate::domain::model::{ObjectType, Record};
    use std::collections::BTreeMap;

    fn rec(id: usize, first: &str, last: &str, email: &str) -> Record {
        let mut properties = BTreeMap::new();
        properties.insert("firstname".to_string(), Some(first.to_string()));
        properties.insert("lastname".to_string(), Some(last.to_string()));
        properties.insert("email".to_string(), Some(email.to_string()));
        Record {
            object_type: ObjectType::Contacts,
            id: id.to_string(),
            properties,
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        }
    }

    fn cfg(max_block_size: usize, window: usize) -> MatchConfig {
        let f = |p: &str, kind| FieldSpec {
            property: p.into(),
            kind,
        };
        MatchConfig::from_schema(
            &MatcherSettings {
                max_block_size,
                window,
                ..MatcherSettings::default()
            },
            ObjectType::Contacts,
            &ObjectSchemaConfig {
                fields: vec![
                    f("firstname", FieldKind::GivenName),
                    f("lastname", FieldKind::Surname),
                    f("email", FieldKind::Email),
                ],
                blocking: vec!["email".into(), "lastname+firstname:initial".into()],
            },
        )
        .unwrap()
    }

    fn pairs(blocks: &Blocks, only: Option<&[bool]>) -> Vec<(usize, usize)> {
        let mut v = blocks.fold_pairs(
            only,
            Vec::new,
            |acc, _, a, b| acc.push((a, b)),
            |mut x, y| {
                x.extend(y);
                x
            },
        );
        v.sort_unstable();
        v
    }

    #[test]
    fn pairs_found_by_two_rules_are_compared_once() {
        let records = vec![
            rec(0, "Bob", "Smith", "bob@x.com"),
            rec(1, "Robert", "Smith", "bob@x.com"),
            rec(2, "Rob", "Smith", "rob@y.com"),
            rec(3, "Ann", "Jones", "ann@z.com"),
        ];
        let cfg = cfg(100, 1);
        let t = Table::build(&cfg, &records);
        let b = Blocks::build(&cfg, &t);
        // email: {0,1}; smith+r (nickname-resolved): {0,1,2}
        assert_eq!(pairs(&b, None), vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!(b.rule_pairs(0) + b.rule_pairs(1), 4);
        let only = [false, false, true, false];
        assert_eq!(pairs(&b, Some(&only)), vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn large_blocks_are_compared_by_sorted_window() {
        // Six Smiths with an initial J (Jon is John): one block above the cap of 3.
        let mut records: Vec<Record> = (0..5)
            .map(|i| rec(i, "John", "Smith", &format!("j{i}@x.com")))
            .collect();
        records.push(rec(5, "Jon", "Smith", "j0@x.com"));
        let cfg = cfg(3, 1);
        let t = Table::build(&cfg, &records);
        let b = Blocks::build(&cfg, &t);
        assert_eq!(b.windowed[1], (1, 6));
        assert_eq!(b.rule_pairs(1), 5);
        let got = pairs(&b, None);
        // The email rule pairs 0 and 5; in the window, neighbours by sorted email.
        assert!(got.contains(&(0, 5)));
        assert_eq!(got.len(), 1 + 4, "{got:?}");
        // Every pair is compared once, under the first rule that holds it.
        for (a, c) in &got {
            assert!(b.first_rule(*a, *c).is_some());
        }
    }
}
