//! The suggestion engine: applies [`Rules`] to the records of one cluster. Deterministic by
//! construction: every tie ends in an order on record ids, so the same records give the same
//! answer whatever order they were loaded in. Values are compared as the field's normalizer
//! leaves them (`"Ander "` and `"Ander"` agree when the field is trimmed), and junk is set
//! aside before the owner and the strategies look at the values, so no strategy can prefer
//! it to a clean value. Must stay pure (no I/O, no clock).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::hygiene::{Junk, Tidied, junk, normalize};
use super::rules::{FieldPolicy, PrimaryStrategy, Rules, Strategy};
use super::{
    Candidate, DecidedBy, FieldChoice, FieldSuggestion, PrimaryChoice, Reason, Suggestion,
    compose_reason,
};
use crate::config::SourcesConfig;
use crate::domain::model::Record;

/// Why a suggestion could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecedenceError {
    #[error("a cluster without records has nothing to merge")]
    EmptyCluster,
    #[error("record {0} is not a member of this cluster")]
    UnknownPrimary(String),
}

/// Suggest the primary record and the surviving value of each of `fields` (usually the object
/// type's configured properties; their order is kept).
pub fn suggest(
    records: &[Record],
    rules: &Rules,
    sources: &SourcesConfig,
    fields: &[String],
) -> Result<Suggestion, PrecedenceError> {
    let cluster = Cluster::new(records, rules, sources, fields)?;
    let primary = cluster.choose_primary();
    Ok(cluster.suggest_fields(primary))
}

/// The same, with a primary the steward picked: strategies such as `from_primary` then follow
/// the steward's primary.
pub fn suggest_with_primary(
    records: &[Record],
    rules: &Rules,
    sources: &SourcesConfig,
    fields: &[String],
    primary_id: &str,
) -> Result<Suggestion, PrecedenceError> {
    let cluster = Cluster::new(records, rules, sources, fields)?;
    if !records.iter().any(|r| r.id == primary_id) {
        return Err(PrecedenceError::UnknownPrimary(primary_id.to_string()));
    }
    Ok(cluster.suggest_fields(PrimaryChoice {
        record_id: primary_id.to_string(),
        reason: "picked by steward".to_string(),
        decided_by: DecidedBy::Steward,
    }))
}

struct Cluster<'a> {
    records: &'a [Record],
    rules: &'a Rules,
    sources: &'a SourcesConfig,
    fields: &'a [String],
    /// Record id → how many writable fields it fills.
    filled: BTreeMap<&'a str, usize>,
}

impl<'a> Cluster<'a> {
    fn new(
        records: &'a [Record],
        rules: &'a Rules,
        sources: &'a SourcesConfig,
        fields: &'a [String],
    ) -> Result<Cluster<'a>, PrecedenceError> {
        if records.is_empty() {
            return Err(PrecedenceError::EmptyCluster);
        }
        let filled = records
            .iter()
            .map(|r| {
                let n = fields
                    .iter()
                    .filter(|f| !rules.is_read_only(f) && r.get(f).is_some())
                    .count();
                (r.id.as_str(), n)
            })
            .collect();
        Ok(Cluster {
            records,
            rules,
            sources,
            fields,
            filled,
        })
    }

    fn suggest_fields(&self, primary: PrimaryChoice) -> Suggestion {
        let fields = self
            .fields
            .iter()
            .map(|field| {
                let candidates = self.candidates(field);
                let read_only = self.rules.is_read_only(field);
                let policy = self.rules.policy(field);
                let chosen = (!read_only).then(|| {
                    // The values as they would be written; blank ones count as none.
                    let tidy: Vec<Candidate> = candidates
                        .iter()
                        .filter_map(|c| {
                            let (value, _) = normalize(&c.value, &policy.values);
                            (!value.is_empty()).then(|| Candidate {
                                value: value.into_owned(),
                                ..c.clone()
                            })
                        })
                        .collect();
                    FieldRun {
                        cluster: self,
                        policy: &policy,
                        primary: &primary.record_id,
                        all: &tidy,
                        raw: &candidates,
                    }
                    .choose()
                });
                FieldSuggestion {
                    field: field.clone(),
                    read_only,
                    chosen,
                    candidates,
                    values: policy.values,
                }
            })
            .collect();
        Suggestion {
            primary,
            members: self.records.iter().map(|r| r.id.clone()).collect(),
            fields,
        }
    }

    fn candidates(&self, field: &str) -> Vec<Candidate> {
        self.records
            .iter()
            .filter_map(|r| {
                let value = r.get(field)?;
                // The history entry that set the current value: the newest one holding it.
                let version = r
                    .history
                    .get(field)
                    .into_iter()
                    .flatten()
                    .filter(|v| v.value.as_deref() == Some(value))
                    .max_by_key(|v| v.timestamp);
                let system = version.map(|v| {
                    self.sources
                        .system_for(&v.source_type, v.source_id.as_deref())
                        .to_string()
                });
                Some(Candidate {
                    record_id: r.id.clone(),
                    value: value.to_string(),
                    eligible: system
                        .as_deref()
                        .is_none_or(|s| self.rules.may_write(s, field)),
                    system,
                    written_at: version.map(|v| v.timestamp).or(r.updated_at),
                    from_history: version.is_some(),
                })
            })
            .collect()
    }

    fn choose_primary(&self) -> PrimaryChoice {
        let decided = |record: &Record, reason: String| PrimaryChoice {
            record_id: record.id.clone(),
            reason,
            decided_by: DecidedBy::Rules,
        };
        let mut live: Vec<&Record> = self.records.iter().collect();
        if let [only] = live.as_slice() {
            return decided(only, "only record".to_string());
        }
        let rule = self.rules.primary();
        for step in &rule.chain {
            let kept = match step {
                PrimaryStrategy::SystemOfRecord => {
                    let system = rule.system.as_deref();
                    keep_max(&live, |r| {
                        system.is_some() && self.origin_system(r).as_deref() == system
                    })
                }
                PrimaryStrategy::Oldest => keep_max(&live, |r| r.created_at.map(Reverse)),
                PrimaryStrategy::Newest => keep_max(&live, |r| r.updated_at),
                PrimaryStrategy::MostComplete => keep_max(&live, |r| self.filled(&r.id)),
            };
            let Some(kept) = kept else { continue };
            live = kept;
            if let [winner] = live.as_slice() {
                let reason = match step {
                    PrimaryStrategy::SystemOfRecord => {
                        format!("created in {}", rule.system.as_deref().unwrap_or("?"))
                    }
                    PrimaryStrategy::Oldest => {
                        format!("oldest: created {}", day(winner.created_at))
                    }
                    PrimaryStrategy::Newest => {
                        format!("newest: updated {}", day(winner.updated_at))
                    }
                    PrimaryStrategy::MostComplete => format!(
                        "most complete ({} of {} fields)",
                        self.filled(&winner.id),
                        self.writable_fields()
                    ),
                };
                return decided(winner, reason);
            }
        }
        live.sort_by_key(|r| id_order(&r.id));
        let winner = live.first().copied().unwrap_or(&self.records[0]);
        decided(winner, "tie, lowest record id".to_string())
    }

    /// The system that created a record: the writer of its oldest history entry.
    fn origin_system(&self, record: &Record) -> Option<String> {
        record
            .history
            .values()
            .flatten()
            .min_by_key(|v| v.timestamp)
            .map(|v| {
                self.sources
                    .system_for(&v.source_type, v.source_id.as_deref())
                    .to_string()
            })
    }

    fn filled(&self, record_id: &str) -> usize {
        self.filled.get(record_id).copied().unwrap_or(0)
    }

    fn writable_fields(&self) -> usize {
        self.fields
            .iter()
            .filter(|f| !self.rules.is_read_only(f))
            .count()
    }
}

/// Choosing the value of one field.
struct FieldRun<'r> {
    cluster: &'r Cluster<'r>,
    policy: &'r FieldPolicy,
    primary: &'r str,
    /// The candidates with their values normalized, blank ones left out.
    all: &'r [Candidate],
    /// The candidates as the records hold them.
    raw: &'r [Candidate],
}

/// What value hygiene did before the strategies ran, for the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hygiene {
    Clean,
    /// Junk was set aside: the kind, when all of it was of one kind.
    SetAside(Option<Junk>),
    /// Every candidate is junk, so junk had to win.
    NoClean,
}

impl Hygiene {
    /// The note for the reason; `winner` is what the surviving value itself is wrong with.
    fn note(self, winner: Option<Junk>) -> Option<String> {
        match (self, winner) {
            (Hygiene::Clean, _) => None,
            (Hygiene::SetAside(Some(kind)), _) => Some(format!("set aside: {}", kind.describe())),
            (Hygiene::SetAside(None), _) => Some("set aside: junk of 2+ kinds".to_string()),
            (Hygiene::NoClean, Some(kind)) => Some(format!("no clean value: {}", kind.describe())),
            (Hygiene::NoClean, None) => Some("no clean value".to_string()),
        }
    }
}

impl FieldRun<'_> {
    fn choose(&self) -> FieldChoice {
        let eligible: Vec<&Candidate> = self.all.iter().filter(|c| c.eligible).collect();
        let restricted = eligible.is_empty();
        let pool: Vec<&Candidate> = if restricted {
            // Only systems the rules keep out of this field have a value. Dropping it would
            // clear data the merge would otherwise keep; the reason says where it is from.
            self.all.iter().collect()
        } else {
            eligible
        };
        if pool.is_empty() {
            return self.nothing();
        }
        // Junk is set aside when a clean value exists, like the values of a system kept out
        // of the field; it can still win when nothing else is left, and then the reason says
        // what is wrong with it.
        let values = &self.policy.values;
        let (clean, dirty): (Vec<&Candidate>, Vec<&Candidate>) =
            pool.iter().partition(|c| junk(&c.value, values).is_none());
        let (mut live, hygiene) = if dirty.is_empty() {
            (clean, Hygiene::Clean)
        } else if clean.is_empty() {
            (dirty, Hygiene::NoClean)
        } else {
            let mut kinds: Vec<Junk> = dirty
                .iter()
                .filter_map(|c| junk(&c.value, values))
                .collect();
            kinds.sort_by_key(|j| severity(*j));
            kinds.dedup();
            let one = (kinds.len() == 1).then(|| kinds[0]);
            (clean, Hygiene::SetAside(one))
        };
        let Some(first) = live.first() else {
            return self.nothing();
        };
        if distinct(&live) == 1 {
            if hygiene != Hygiene::Clean {
                // What was set aside (or wrong) matters more here than the usual wording.
                let long = if matches!(hygiene, Hygiene::SetAside(_)) {
                    "only clean value"
                } else {
                    "only value"
                };
                return self.decided(&live, long, "", hygiene);
            }
            let ignored = self
                .all
                .iter()
                .find(|c| !c.eligible && c.value != first.value);
            let reason = if restricted {
                format!(
                    "only from {} (not its field)",
                    first.system.as_deref().unwrap_or("?")
                )
            } else if ignored.is_some() && self.owned_by_owner(&live) {
                format!(
                    "{} owns {}",
                    self.policy.owner.as_deref().unwrap_or("?"),
                    self.policy.owner_scope
                )
            } else if let Some(c) = ignored {
                // Why the winner won, naming the writer set aside second.
                match first.system.as_deref() {
                    Some(s) => format!(
                        "{s} may write it, {} may not",
                        c.system.as_deref().unwrap_or("?")
                    ),
                    None => "the only value from an allowed source".to_string(),
                }
            } else if live.len() == 1 {
                "only value".to_string()
            } else {
                format!("same in {} records", live.len())
            };
            let short = if restricted {
                "not its field"
            } else if ignored.is_some() {
                "eligible value"
            } else if live.len() == 1 {
                "only value"
            } else {
                "same value"
            };
            return self.decided(&live, &reason, short, hygiene);
        }

        if let Some(owner) = &self.policy.owner {
            let owned: Vec<&Candidate> = live
                .iter()
                .copied()
                .filter(|c| c.system.as_deref() == Some(owner.as_str()))
                .collect();
            if !owned.is_empty() {
                live = owned;
                if distinct(&live) == 1 {
                    let reason = format!("{owner} owns {}", self.policy.owner_scope);
                    return self.decided(&live, &reason, "owner's value", hygiene);
                }
            }
        }

        for strategy in &self.policy.strategies {
            let Some(kept) = self.apply(*strategy, &live) else {
                continue;
            };
            live = kept;
            if distinct(&live) == 1 {
                let reason = self.reason(*strategy, &live);
                return self.decided(&live, &reason, short_reason(*strategy), hygiene);
            }
        }

        // Still tied: the higher-ranked system, then the primary, then the lowest record id.
        live.sort_by_key(|c| self.tie_order(c));
        let winner = live[0];
        let runner_up = live.iter().find(|c| c.value != winner.value);
        let (reason, short) = match runner_up {
            Some(r) if self.rank(winner) != self.rank(r) => (
                format!(
                    "tie, {} ranked higher",
                    winner.system.as_deref().unwrap_or("?")
                ),
                "tie, rank",
            ),
            Some(r) if (winner.record_id == self.primary) != (r.record_id == self.primary) => {
                ("tie, from primary".to_string(), "tie, primary")
            }
            _ => ("tie, lowest record id".to_string(), "tie, lowest id"),
        };
        live.retain(|c| c.value == winner.value);
        self.decided(&live, &reason, short, hygiene)
    }

    fn nothing(&self) -> FieldChoice {
        // Every record's value was blank: the field ends empty, and the reason says why.
        let blank = self.raw.first();
        FieldChoice {
            value: None,
            record_id: None,
            system: None,
            reason: match blank {
                None => "no record has a value".into(),
                Some(b) => Reason {
                    text: "only blank values · trimmed".to_string(),
                    raw: Some(b.value.clone()),
                },
            },
            decided_by: DecidedBy::Rules,
        }
    }

    /// The candidates a strategy prefers, or `None` when it cannot tell them apart.
    fn apply<'c>(&self, strategy: Strategy, live: &[&'c Candidate]) -> Option<Vec<&'c Candidate>> {
        match strategy {
            Strategy::MostRecent => keep_max(live, |c| c.written_at),
            Strategy::MostComplete => keep_max(live, |c| self.cluster.filled(&c.record_id)),
            Strategy::ValidFormat => {
                let format = self.policy.format?;
                keep_max(live, |c| format.is_valid(&c.value))
            }
            Strategy::MostCommon => keep_max(live, |c| self.count(&c.value)),
            Strategy::Longest => keep_max(live, |c| c.value.trim().chars().count()),
            Strategy::FromPrimary => keep_max(live, |c| c.record_id == self.primary),
            Strategy::SourceRank => keep_max(live, |c| Reverse(self.rank(c))),
        }
    }

    /// Why the values left after a decisive strategy won. `live` holds one distinct value.
    fn reason(&self, strategy: Strategy, live: &[&Candidate]) -> String {
        let best = self.representative(live);
        let system = best.system.as_deref().unwrap_or("?");
        match strategy {
            Strategy::MostRecent if best.from_history => {
                format!("newest: {} from {system}", day(best.written_at))
            }
            Strategy::MostRecent => format!("newest: {} (no history)", day(best.written_at)),
            Strategy::MostComplete => format!(
                "most complete record ({} fields)",
                self.cluster.filled(&best.record_id)
            ),
            Strategy::ValidFormat => format!(
                "only valid {}",
                self.policy.format.map_or("value", |f| f.as_str())
            ),
            Strategy::MostCommon => format!(
                "most common ({} of {})",
                self.count(&best.value),
                self.cluster.records.len()
            ),
            Strategy::Longest => format!("longest ({} chars)", best.value.trim().chars().count()),
            Strategy::FromPrimary => "from primary".to_string(),
            Strategy::SourceRank => {
                let beaten = self
                    .all
                    .iter()
                    .filter(|c| c.value != best.value)
                    .filter_map(|c| self.rank(c).map(|r| (r, c)))
                    .min_by_key(|(r, _)| *r)
                    .and_then(|(_, c)| c.system.as_deref());
                match beaten {
                    Some(other) => format!("{system} ranks above {other}"),
                    None => format!("only ranked source: {system}"),
                }
            }
        }
    }

    /// The choice of the value `live` holds, credited to its representative, with the reason
    /// (`long`, or `short` when the notes need the room) and the notes of value hygiene and of
    /// the normalizer.
    fn decided(
        &self,
        live: &[&Candidate],
        long: &str,
        short: &str,
        hygiene: Hygiene,
    ) -> FieldChoice {
        let best = self.representative(live);
        let raw = self
            .raw
            .iter()
            .find(|c| c.record_id == best.record_id)
            .map(|c| c.value.as_str());
        let tidied = raw.and_then(|r| normalize(r, &self.policy.values).1);
        let note = hygiene.note(junk(&best.value, &self.policy.values));
        let text = compose_reason(long, short, note.as_deref(), tidied.map(Tidied::describe));
        FieldChoice {
            value: Some(best.value.clone()),
            record_id: Some(best.record_id.clone()),
            system: best.system.clone(),
            reason: Reason {
                text,
                raw: raw.filter(|r| *r != best.value).map(str::to_string),
            },
            decided_by: DecidedBy::Rules,
        }
    }

    /// Which record a value is credited to when several hold it: the latest write, then the
    /// primary, then the higher-ranked system, then the lowest record id.
    fn representative<'c>(&self, live: &[&'c Candidate]) -> &'c Candidate {
        let mut sorted = live.to_vec();
        sorted.sort_by(|a, b| {
            b.written_at
                .cmp(&a.written_at)
                .then_with(|| self.tie_order(a).cmp(&self.tie_order(b)))
        });
        sorted[0]
    }

    fn tie_order(&self, c: &Candidate) -> (usize, bool, (bool, u128, String)) {
        (
            self.rank(c).unwrap_or(usize::MAX),
            c.record_id != self.primary,
            id_order(&c.record_id),
        )
    }

    /// Whether the field's owner wrote one of these values.
    fn owned_by_owner(&self, live: &[&Candidate]) -> bool {
        self.policy
            .owner
            .as_deref()
            .is_some_and(|owner| live.iter().any(|c| c.system.as_deref() == Some(owner)))
    }

    fn rank(&self, c: &Candidate) -> Option<usize> {
        c.system.as_deref().and_then(|s| self.cluster.rules.rank(s))
    }

    fn count(&self, value: &str) -> usize {
        self.all.iter().filter(|c| c.value == value).count()
    }
}

/// The few words a strategy's reason shrinks to when notes need the room.
fn short_reason(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::MostRecent => "newest",
        Strategy::MostComplete => "most complete",
        Strategy::ValidFormat => "valid format",
        Strategy::MostCommon => "most common",
        Strategy::Longest => "longest",
        Strategy::FromPrimary => "from primary",
        Strategy::SourceRank => "higher rank",
    }
}

/// Junk kinds, most serious first.
fn severity(j: Junk) -> u8 {
    match j {
        Junk::Control => 0,
        Junk::Invisible => 1,
        Junk::TooLong { .. } => 2,
        Junk::EdgeSpace => 3,
    }
}

/// The items with the greatest key, or `None` when every item has the same key.
fn keep_max<'c, T: ?Sized, K: Ord>(items: &[&'c T], key: impl Fn(&T) -> K) -> Option<Vec<&'c T>> {
    let keys: Vec<K> = items.iter().map(|i| key(i)).collect();
    let max = keys.iter().max()?;
    if keys.iter().all(|k| k == max) {
        return None;
    }
    Some(
        items
            .iter()
            .zip(&keys)
            .filter(|(_, k)| *k == max)
            .map(|(i, _)| *i)
            .collect(),
    )
}

fn distinct(live: &[&Candidate]) -> usize {
    let mut values: Vec<&str> = live.iter().map(|c| c.value.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    values.len()
}

/// Record ids in numeric order when they are numbers (HubSpot's are), else in text order.
fn id_order(id: &str) -> (bool, u128, String) {
    match id.parse::<u128>() {
        Ok(n) => (false, n, String::new()),
        Err(_) => (true, 0, id.to_string()),
    }
}

fn day(ts: Option<DateTime<Utc>>) -> String {
    ts.map_or_else(
        || "unknown".to_string(),
        |t| t.format("%Y-%m-%d").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_max_keeps_the_best_or_says_it_cannot_tell() {
        let items = [&3, &7, &7, &1];
        assert_eq!(keep_max(&items, |i: &i32| *i), Some(vec![&7, &7]));
        assert_eq!(keep_max(&[&2, &2], |i: &i32| *i), None);
        assert_eq!(keep_max::<i32, i32>(&[], |i| *i), None);
        // None sorts below any time, so records without one never win on recency.
        let times = [&None, &Some(1)];
        assert_eq!(keep_max(&times, |t: &Option<i32>| *t), Some(vec![&Some(1)]));
    }

    #[test]
    fn record_ids_order_numerically_then_as_text() {
        let mut ids = vec!["10", "9", "b", "100", "a"];
        ids.sort_by_key(|id| id_order(id));
        assert_eq!(ids, ["9", "10", "100", "a", "b"]);
    }

    #[test]
    fn days_are_short() {
        assert_eq!(day(None), "unknown");
        let t = crate::domain::model::parse_ts("2026-03-01T23:59:59.000Z");
        assert_eq!(day(t), "2026-03-01");
    }
}
