//! Blocking: which pairs of records are compared at all. Each rule maps a record to a key
//! (a hash of transformed field values); records sharing a key form a block and every pair in a
//! block is a candidate. A pair found by several rules is compared once, by the first rule that
//! finds it, which is decided from the stored keys without a set of seen pairs, so candidate
//! pairs stream out in parallel with no memory per pair. Blocks above the size cap are skipped
//! and counted, which keeps the work near linear in the records. This module must not score.

use rayon::prelude::*;

use super::compare::hash_str;
use super::features::{Column, Table};
use super::normalize;
use super::schema::{FieldKind, KeyTransform, MatchConfig};

/// The blocks of every rule.
#[derive(Debug, Clone)]
pub struct Blocks {
    /// Per rule, per record: the block key, or 0 when the record has none under that rule or
    /// its block is oversized (so the rule never produced its pairs).
    pub keys: Vec<Vec<u64>>,
    /// Per rule: the records of its compared blocks, block after block.
    pub members: Vec<Vec<u32>>,
    /// Per rule: (start, length) of each compared block within `members`.
    pub groups: Vec<Vec<(u32, u32)>>,
    /// Per rule: blocks skipped for exceeding the size cap, and the records in them.
    pub oversized: Vec<(u64, u64)>,
}

impl Blocks {
    pub fn build(cfg: &MatchConfig, table: &Table) -> Blocks {
        let max = cfg.settings.max_block_size;
        let mut out = Blocks {
            keys: Vec::new(),
            members: Vec::new(),
            groups: Vec::new(),
            oversized: Vec::new(),
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
            let mut sorted: Vec<(u64, u32)> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| **k != 0)
                .map(|(i, k)| (*k, i as u32))
                .collect();
            sorted.par_sort_unstable();
            let mut members = Vec::new();
            let mut groups = Vec::new();
            let mut oversized = (0u64, 0u64);
            let mut start = 0;
            while start < sorted.len() {
                let key = sorted[start].0;
                let end = start + sorted[start..].partition_point(|(k, _)| *k == key);
                let len = end - start;
                if len > max {
                    oversized.0 += 1;
                    oversized.1 += len as u64;
                    for (_, i) in &sorted[start..end] {
                        keys[*i as usize] = 0;
                    }
                } else if len >= 2 {
                    groups.push((members.len() as u32, len as u32));
                    members.extend(sorted[start..end].iter().map(|(_, i)| *i));
                } else {
                    // A singleton pairs with nobody; forgetting its key keeps the
                    // first-rule test exact and cheap.
                    keys[sorted[start].1 as usize] = 0;
                }
                start = end;
            }
            out.keys.push(keys);
            out.members.push(members);
            out.groups.push(groups);
            out.oversized.push(oversized);
        }
        out
    }

    pub fn rules(&self) -> usize {
        self.keys.len()
    }

    /// Whether a rule before `rule` already puts `a` and `b` in one compared block.
    #[inline]
    pub fn seen_before(&self, rule: usize, a: usize, b: usize) -> bool {
        self.keys[..rule].iter().any(|k| k[a] != 0 && k[a] == k[b])
    }

    /// The pairs (with repeats across rules) of one rule.
    pub fn rule_pairs(&self, rule: usize) -> u64 {
        self.groups[rule]
            .iter()
            .map(|&(_, n)| u64::from(n) * u64::from(n - 1) / 2)
            .sum()
    }

    /// The members of one block of a rule.
    #[inline]
    pub fn block(&self, rule: usize, group: usize) -> &[u32] {
        let (s, n) = self.groups[rule][group];
        &self.members[rule][s as usize..(s + n) as usize]
    }

    /// Run `f(acc, rule, a, b)` over every distinct candidate pair once (with the first rule
    /// that finds it), in parallel, folding into per-thread
    /// accumulators that are then reduced. With `only`, pairs where neither record is marked
    /// are skipped (incremental matching).
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
                let block = self.block(r, g);
                for (x, &a) in block.iter().enumerate() {
                    for &b in &block[x + 1..] {
                        let (a, b) = (a as usize, b as usize);
                        if let Some(only) = only
                            && !only[a]
                            && !only[b]
                        {
                            continue;
                        }
                        if self.seen_before(r, a, b) {
                            continue;
                        }
                        let (a, b) = if a < b { (a, b) } else { (b, a) };
                        f(&mut acc, r, a, b);
                    }
                }
                acc
            })
            .reduce(init, reduce)
    }
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
    use crate::matcher::schema::{FieldSpec, MatcherSettings, ObjectSchemaConfig};
    use crate::model::{ObjectType, Record};
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

    fn cfg(max_block_size: usize) -> MatchConfig {
        let f = |p: &str, kind| FieldSpec {
            property: p.into(),
            kind,
        };
        MatchConfig::from_schema(
            &MatcherSettings {
                max_block_size,
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
        let cfg = cfg(100);
        let t = Table::build(&cfg, &records);
        let b = Blocks::build(&cfg, &t);
        // email: {0,1}; smith+r (nickname-resolved): {0,1,2}
        assert_eq!(pairs(&b, None), vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!(b.rule_pairs(0) + b.rule_pairs(1), 4);
        let only = [false, false, true, false];
        assert_eq!(pairs(&b, Some(&only)), vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn oversized_blocks_are_skipped_and_counted() {
        let mut records: Vec<Record> = (0..5)
            .map(|i| rec(i, "John", "Smith", &format!("j{i}@x.com")))
            .collect();
        records.push(rec(5, "Jon", "Smith", "j0@x.com"));
        let cfg = cfg(3);
        let t = Table::build(&cfg, &records);
        let b = Blocks::build(&cfg, &t);
        assert_eq!(b.oversized[1], (1, 6));
        assert_eq!(pairs(&b, None), vec![(0, 5)]);
    }
}
