//! The shape of a dataset before any value is drawn: how many records each real-world entity
//! gets, which planted case it is, and each record's position in creation order (its id).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::model::ObjectType;

/// A dedicated ChaCha stream per (purpose, number), so every entity's values are a pure
/// function of the seed and can be drawn in any order.
pub fn stream_rng(seed: u64, tag: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((tag << 56) ^ n);
    rng
}

pub const TAG_PLAN: u64 = 1;
pub const TAG_COMPANY: u64 = 2;
pub const TAG_PERSON: u64 = 3;
pub const TAG_PERSON_COMPANY: u64 = 4;
pub const TAG_RECORD: u64 = 5;
pub const TAG_MAILBOX: u64 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// One record, no duplicate.
    Single,
    /// The first record plus copies with planted variations.
    Duplicates,
    /// The same person at an old and a new employer: same name and phone, new company and
    /// work email.
    ChangedJob,
    /// One of two colleagues sharing a team mailbox; `second` names the one that takes its
    /// company and mailbox from the entity before it.
    SharedMailbox { second: bool },
}

#[derive(Debug, Clone, Copy)]
pub struct Group {
    /// Ordinal of the group's first record; its records are `first..first + size`.
    pub first: u32,
    pub size: u8,
    pub kind: GroupKind,
    /// How many duplicate records came before this group: picks the planted variations in
    /// turn, so every kind appears even in a small dataset.
    pub dup_index: u32,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub groups: Vec<Group>,
    /// Creation-order position of each record ordinal: a random permutation of `0..n`.
    pub positions: Vec<u32>,
}

/// Copies per duplicated entity: 2 mostly, sometimes 3 or 4.
const SIZES: [(u8, f64); 3] = [(2, 0.70), (3, 0.22), (4, 0.08)];

impl Plan {
    pub fn new(seed: u64, object: ObjectType, n: usize, duplicate_rate: f64) -> Plan {
        let tag = match object {
            ObjectType::Contacts => 0,
            ObjectType::Companies => 1,
        };
        let mut rng = stream_rng(seed, TAG_PLAN, tag);
        // With q the share of entities that have copies, extra records per entity are
        // q * (E[size] - 1); solve extra / (1 + extra) = rate for q.
        let rate = duplicate_rate.clamp(0.0, 0.9);
        let extra_per_dup: f64 = SIZES.iter().map(|(s, p)| (*s as f64 - 1.0) * p).sum();
        let q = (rate / (extra_per_dup * (1.0 - rate))).min(1.0);
        let contacts = object == ObjectType::Contacts;

        let mut groups = Vec::with_capacity(n - n * 2 / 10);
        let (mut ordinal, mut dup_index, mut dup_groups) = (0usize, 0u32, 0u32);
        while ordinal < n {
            let remaining = n - ordinal;
            let entity = groups.len();
            let mut push = |size: usize, kind: GroupKind, dup_index: u32| {
                groups.push(Group {
                    first: ordinal as u32,
                    size: size as u8,
                    kind,
                    dup_index,
                });
                ordinal += size;
            };
            if contacts && rate > 0.0 && entity % 40 == 17 && remaining >= 2 {
                push(1, GroupKind::SharedMailbox { second: false }, dup_index);
                push(1, GroupKind::SharedMailbox { second: true }, dup_index);
                continue;
            }
            if remaining >= 2 && rng.random_bool(q) {
                let pick: f64 = rng.random();
                let mut acc = 0.0;
                let mut size = 2;
                for (s, p) in SIZES {
                    acc += p;
                    if pick < acc {
                        size = s as usize;
                        break;
                    }
                }
                let kind = if contacts && dup_groups % 6 == 3 {
                    size = 2;
                    GroupKind::ChangedJob
                } else {
                    GroupKind::Duplicates
                };
                let size = size.min(remaining);
                push(size, kind, dup_index);
                dup_index += size as u32 - 1;
                dup_groups += 1;
            } else {
                push(1, GroupKind::Single, dup_index);
            }
        }
        let mut positions: Vec<u32> = (0..n as u32).collect();
        positions.shuffle(&mut rng);
        Plan { groups, positions }
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn entities(&self) -> u64 {
        self.groups.len() as u64
    }

    /// The positions of a group's records, oldest first: the first record of an entity is
    /// the one created first, its copies came later.
    pub fn group_positions(&self, g: &Group) -> Vec<u32> {
        let start = g.first as usize;
        let mut p = self.positions[start..start + g.size as usize].to_vec();
        p.sort_unstable();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_record_once() {
        let plan = Plan::new(7, ObjectType::Contacts, 1000, 0.2);
        let total: usize = plan.groups.iter().map(|g| g.size as usize).sum();
        assert_eq!(total, 1000);
        let extra = 1000 - plan.groups.len();
        assert!((120..=280).contains(&extra), "{extra} duplicate records");
        let mut seen = plan.positions.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn no_duplicates_at_rate_zero() {
        let plan = Plan::new(7, ObjectType::Contacts, 500, 0.0);
        assert!(plan.groups.iter().all(|g| g.kind == GroupKind::Single));
    }
}
