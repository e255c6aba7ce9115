//! The review draft: the one way a decision about a cluster is built. A [`ReviewDraft`] owns a
//! cluster under review: its members, the members the steward excluded, the primary, the
//! precedence suggestion over the *included* members only, the steward's picks (take a
//! record's value, clear a value, type one), and the checks that stand between a pick and an
//! approval. The TUI, bulk approval (`dupdesk approve`), `dupdesk amend` and any other front end
//! call it; none of them holds a rule of its own about which fields can be chosen or what
//! survives a merge.
//!
//! The rules it keeps:
//! - An excluded record is not merged and contributes nothing: the suggestion is computed as if
//!   it were not in the cluster, and its values cannot be taken. It keeps its own mapping rows
//!   and stays visible (and listed as excluded in the decision log). The primary cannot be
//!   excluded, and a merge needs two included records.
//! - A field the rules mark read-only, or the CRM's definitions say is read-only, calculated or
//!   unknown, cannot be chosen and is never written.
//! - Taking a record's empty value is an explicit "keep it empty": the field is cleared.
//! - An approval is refused while a chosen value is one the CRM would refuse
//!   ([`crate::domain::plan::check_value`] against the cached property definitions).
//! - The decision records what the steward was shown of every included member, so the executor
//!   can refuse to merge records that changed in the CRM since.
//! - Once a job's merges ran and its field update failed, only the surviving values can change:
//!   approving then writes an `amend` of that job.
//!
//! Pure: no store, no CRM, no terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::{Config, MappingConfig, SourcesConfig};
use crate::domain::model::{ObjectType, PropertyCatalog, Record};
use crate::domain::plan::{self, Seen, ValueProblem};
use crate::domain::precedence::{
    self, Candidate, DecidedBy, FieldChoice, FieldSuggestion, Override, Rules,
};
use crate::store::clusters::{self, ClusterStatus};
use crate::store::decisions::{NewDecision, Verdict};
use crate::store::queue::ClusterDetail;
use crate::store::records::StoredRecord;

/// Properties every record has and no steward decides on: ids and modification times the CRM
/// maintains. They are neither shown for choosing nor compared for staleness.
pub fn is_bookkeeping(name: &str) -> bool {
    matches!(
        name,
        "hs_object_id" | "lastmodifieddate" | "hs_lastmodifieddate" | "hs_merged_object_ids"
    )
}

/// What a draft needs besides the cluster: the rules, where values come from, the object
/// type's configured properties (their order is the order fields are shown in) and the CRM's
/// property definitions (empty when the CRM was never asked).
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewContext {
    pub rules: Arc<Rules>,
    pub sources: SourcesConfig,
    pub configured: Vec<String>,
    pub catalog: PropertyCatalog,
    /// The property that holds the other system's id, and that system's name.
    pub mapping: Option<MappingConfig>,
}

impl ReviewContext {
    /// The context of `object`'s drafts under `config`.
    pub fn for_config(
        config: &Config,
        rules: Arc<Rules>,
        object: ObjectType,
        catalog: PropertyCatalog,
    ) -> ReviewContext {
        ReviewContext {
            rules,
            sources: config.sources.clone(),
            configured: config.properties(object),
            catalog,
            mapping: Some(config.mapping.clone()),
        }
    }
}

/// A steward's pick for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// This member's value (its empty value clears the field).
    Take(String),
    /// The field ends empty.
    Clear,
    /// A value the steward typed.
    Type(String),
}

/// Why the draft refused a change or a decision. Each reads as a sentence for the steward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error("record {0} is not a member of this cluster")]
    NotAMember(String),
    #[error("record {0} is excluded from the merge: its values are not merged")]
    Excluded(String),
    #[error("{field} cannot be chosen: {why}")]
    NotWritable { field: String, why: String },
    #[error("the primary cannot be excluded; make another record primary first")]
    PrimaryExcluded,
    #[error("a merge needs two records; reject the cluster instead")]
    TooFewRecords,
    #[error("the CRM would refuse {}", list(.0))]
    Invalid(Vec<ValueProblem>),
    #[error("cluster #{cluster} is {status}; it can no longer be decided")]
    Closed { cluster: i64, status: ClusterStatus },
    #[error(
        "the merges of cluster #{0} already ran; only the surviving values can change (then approve to finish it)"
    )]
    MergesDone(i64),
}

fn list(problems: &[ValueProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What taking every field from one record did ([`ReviewDraft::take_record`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TakenFromRecord {
    /// Fields that now keep the record's value.
    pub taken: usize,
    /// Of those, the fields the record has no value for: they end empty.
    pub emptied: usize,
    /// Fields the draft refused, with why (read-only, calculated, a mapping conflict).
    pub skipped: Vec<(String, String)>,
}

/// One field of the draft, as a front end shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldState<'d> {
    pub name: &'d str,
    /// What precedence suggests over the included members.
    pub suggested: Option<&'d FieldChoice>,
    /// What survives: the steward's pick, else the suggestion. `None` for a read-only field
    /// and for one no included record has a value for.
    pub chosen: Option<&'d FieldChoice>,
    pub pick: Option<&'d Pick>,
    /// Why the field cannot be chosen, when it cannot.
    pub locked: Option<String>,
    /// Why the CRM would refuse the chosen value, when it would.
    pub problem: Option<ValueProblem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewDraft {
    ctx: Arc<ReviewContext>,
    cluster_id: i64,
    object_type: ObjectType,
    status: ClusterStatus,
    members: Vec<StoredRecord>,
    fields: Vec<String>,
    primary: String,
    primary_reason: String,
    excluded: BTreeSet<String>,
    picks: BTreeMap<String, Pick>,
    /// The job whose merges already ran and whose field update is still to be done.
    finishing_job: Option<i64>,
    suggestion: precedence::Suggestion,
    chosen: BTreeMap<String, FieldChoice>,
}

impl ReviewDraft {
    /// A draft of `detail`, picking up where its standing decision (the newest approval or
    /// amend not undone) left off: primary, exclusions, the steward's picks.
    pub fn new(ctx: Arc<ReviewContext>, detail: &ClusterDetail) -> ReviewDraft {
        let fields = shown_fields(&ctx.configured, &detail.members);
        let finishing_job = detail.job.as_ref().filter(|j| j.finishable()).map(|j| j.id);
        let mut draft = ReviewDraft {
            cluster_id: detail.row.id,
            object_type: detail.row.object_type,
            status: detail.row.status,
            members: detail.members.clone(),
            fields,
            primary: String::new(),
            primary_reason: String::new(),
            excluded: BTreeSet::new(),
            picks: BTreeMap::new(),
            finishing_job,
            suggestion: precedence::Suggestion {
                primary: precedence::PrimaryChoice {
                    record_id: String::new(),
                    reason: String::new(),
                    decided_by: DecidedBy::Rules,
                },
                members: Vec::new(),
                fields: Vec::new(),
            },
            chosen: BTreeMap::new(),
            ctx,
        };
        let standing = clusters::standing(&detail.decisions);
        if let Some(d) = standing {
            draft.excluded = d
                .excluded
                .iter()
                .filter(|id| draft.member(id).is_some())
                .cloned()
                .collect();
            if let Some(p) = d
                .primary_id
                .as_ref()
                .filter(|p| draft.member(p).is_some() && !draft.excluded.contains(*p))
            {
                draft.primary = p.clone();
                draft.primary_reason = "as approved".to_string();
            }
            for (field, c) in &d.field_choices {
                if c.decided_by != DecidedBy::Steward {
                    continue;
                }
                let pick = match (&c.record_id, &c.value) {
                    (Some(r), _) if draft.member(r).is_some() && !draft.excluded.contains(r) => {
                        Pick::Take(r.clone())
                    }
                    (Some(_), _) => continue,
                    (None, None) => Pick::Clear,
                    (None, Some(v)) => Pick::Type(v.clone()),
                };
                draft.picks.insert(field.clone(), pick);
            }
        }
        if draft.primary.is_empty() {
            let records = draft.included_records();
            if let Ok(s) = precedence::suggest(
                &records,
                &draft.ctx.rules,
                &draft.ctx.sources,
                &draft.fields,
            ) {
                draft.primary = s.primary.record_id;
                draft.primary_reason = s.primary.reason;
            } else if let Some(first) = draft.members.first() {
                draft.primary = first.record.id.clone();
                draft.primary_reason = "first record".to_string();
            }
        }
        draft.refresh();
        draft
    }

    pub fn context(&self) -> &Arc<ReviewContext> {
        &self.ctx
    }
    pub fn cluster_id(&self) -> i64 {
        self.cluster_id
    }
    pub fn object_type(&self) -> ObjectType {
        self.object_type
    }
    pub fn status(&self) -> ClusterStatus {
        self.status
    }
    pub fn members(&self) -> &[StoredRecord] {
        &self.members
    }
    pub fn fields(&self) -> &[String] {
        &self.fields
    }
    pub fn primary(&self) -> &str {
        &self.primary
    }
    /// Why the primary is the primary ("created in crm", "picked by steward", ...).
    pub fn primary_reason(&self) -> &str {
        &self.primary_reason
    }
    pub fn excluded(&self) -> &BTreeSet<String> {
        &self.excluded
    }
    pub fn is_excluded(&self, id: &str) -> bool {
        self.excluded.contains(id)
    }
    pub fn picks(&self) -> &BTreeMap<String, Pick> {
        &self.picks
    }
    /// The job whose merges ran and whose field update is left, when approving means finishing
    /// it.
    pub fn finishing_job(&self) -> Option<i64> {
        self.finishing_job
    }

    /// What survives of every writable field that has a value or a steward's pick.
    pub fn choices(&self) -> &BTreeMap<String, FieldChoice> {
        &self.chosen
    }

    pub fn field(&self, name: &str) -> Option<FieldState<'_>> {
        let name = self.fields.iter().find(|f| *f == name)?;
        let suggested = self
            .suggestion
            .field(name)
            .and_then(|f: &FieldSuggestion| f.chosen.as_ref());
        let chosen = self.chosen.get(name.as_str());
        Some(FieldState {
            name,
            suggested: suggested.filter(|_| self.locked(name).is_none()),
            chosen,
            pick: self.picks.get(name.as_str()),
            locked: self.locked(name),
            problem: chosen
                .and_then(|c| c.value.as_deref())
                .and_then(|v| self.problem(name, v)),
        })
    }

    /// What `record_id` holds for `field`, with who wrote it and when (its history entry);
    /// `None` for a record with no value, or one excluded from the merge.
    pub fn candidate(&self, field: &str, record_id: &str) -> Option<&Candidate> {
        self.suggestion.field(field)?.value_of(record_id)
    }

    /// Every shown field, in order.
    pub fn field_states(&self) -> Vec<FieldState<'_>> {
        self.fields.iter().filter_map(|f| self.field(f)).collect()
    }

    fn member(&self, id: &str) -> Option<&StoredRecord> {
        self.members.iter().find(|m| m.record.id == id)
    }

    fn included_records(&self) -> Vec<Record> {
        self.members
            .iter()
            .filter(|m| !self.excluded.contains(&m.record.id))
            .map(|m| m.record.clone())
            .collect()
    }

    /// Why a field cannot be chosen: the rules or the CRM say it is never written, or it holds
    /// the other system's id and the included records hold different ones (a mapping conflict
    /// the steward settles after the merge, with `dupdesk mapping resolve`).
    pub fn locked(&self, field: &str) -> Option<String> {
        if self.ctx.rules.is_read_only(field) {
            return Some("read-only (precedence rules)".to_string());
        }
        if let Some(m) = &self.ctx.mapping
            && m.inverse_id_property == field
        {
            let ids: BTreeSet<&str> = self
                .members
                .iter()
                .filter(|r| !self.excluded.contains(&r.record.id))
                .filter_map(|r| r.record.get(field))
                .collect();
            if ids.len() > 1 {
                return Some(format!(
                    "the records map to different {} ids ({}): settled after the merge",
                    m.other_system,
                    ids.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if !self.ctx.catalog.is_known() {
            return None;
        }
        match self.ctx.catalog.get(field) {
            None => Some("the CRM has no such property".to_string()),
            Some(d) if d.calculated => Some("calculated by the CRM".to_string()),
            Some(d) if d.read_only => Some("read-only in the CRM".to_string()),
            Some(_) => None,
        }
    }

    fn problem(&self, field: &str, value: &str) -> Option<ValueProblem> {
        let def = self.ctx.catalog.get(field)?;
        plan::check_value(self.object_type, def, value).err()
    }

    fn check_open(&self) -> Result<(), DraftError> {
        match self.status {
            ClusterStatus::Merging | ClusterStatus::Merged => Err(DraftError::Closed {
                cluster: self.cluster_id,
                status: self.status,
            }),
            ClusterStatus::Failed if self.finishing_job.is_none() => Err(DraftError::Closed {
                cluster: self.cluster_id,
                status: self.status,
            }),
            _ => Ok(()),
        }
    }

    fn check_membership_change(&self) -> Result<(), DraftError> {
        self.check_open()?;
        match self.finishing_job {
            Some(_) => Err(DraftError::MergesDone(self.cluster_id)),
            None => Ok(()),
        }
    }

    fn check_pick(&self, field: &str) -> Result<(), DraftError> {
        self.check_open()?;
        if !self.fields.iter().any(|f| f == field) {
            return Err(DraftError::NotWritable {
                field: field.to_string(),
                why: "not a field of this cluster".to_string(),
            });
        }
        if let Some(why) = self.locked(field) {
            return Err(DraftError::NotWritable {
                field: field.to_string(),
                why,
            });
        }
        Ok(())
    }

    /// Keep `record_id`'s value of `field` (its empty value: keep the field empty).
    pub fn take(&mut self, field: &str, record_id: &str) -> Result<(), DraftError> {
        self.check_pick(field)?;
        if self.member(record_id).is_none() {
            return Err(DraftError::NotAMember(record_id.to_string()));
        }
        if self.excluded.contains(record_id) {
            return Err(DraftError::Excluded(record_id.to_string()));
        }
        self.picks
            .insert(field.to_string(), Pick::Take(record_id.to_string()));
        self.refresh();
        Ok(())
    }

    /// Keep every field's value of `record_id` (Salesforce's "select all from this record"),
    /// its empty values included, which clear the field. Fields that cannot be chosen are
    /// skipped and listed with the reason; the record must be a member still in the merge.
    pub fn take_record(&mut self, record_id: &str) -> Result<TakenFromRecord, DraftError> {
        self.check_open()?;
        let Some(member) = self.member(record_id) else {
            return Err(DraftError::NotAMember(record_id.to_string()));
        };
        if self.excluded.contains(record_id) {
            return Err(DraftError::Excluded(record_id.to_string()));
        }
        let empty: BTreeSet<String> = self
            .fields
            .iter()
            .filter(|f| member.record.get(f).is_none())
            .cloned()
            .collect();
        let mut done = TakenFromRecord::default();
        for field in self.fields.clone() {
            if let Some(why) = self.locked(&field) {
                done.skipped.push((field, why));
                continue;
            }
            self.picks
                .insert(field.clone(), Pick::Take(record_id.to_string()));
            done.taken += 1;
            done.emptied += usize::from(empty.contains(&field));
        }
        self.refresh();
        Ok(done)
    }

    /// Leave `field` empty after the merge.
    pub fn clear(&mut self, field: &str) -> Result<(), DraftError> {
        self.check_pick(field)?;
        self.picks.insert(field.to_string(), Pick::Clear);
        self.refresh();
        Ok(())
    }

    /// Write `value` into `field` (blank clears it).
    pub fn type_value(&mut self, field: &str, value: &str) -> Result<(), DraftError> {
        self.check_pick(field)?;
        let pick = if value.trim().is_empty() {
            Pick::Clear
        } else {
            Pick::Type(value.to_string())
        };
        self.picks.insert(field.to_string(), pick);
        self.refresh();
        Ok(())
    }

    /// Write `value` into `field` unless the CRM would refuse it: then the draft is left as
    /// it was and the refusal says why. What an interactive front end calls, so a value typed
    /// wrong never stands in the draft.
    pub fn type_checked(&mut self, field: &str, value: &str) -> Result<(), DraftError> {
        let before = self.picks.get(field).cloned();
        self.type_value(field, value)?;
        // Checked as approval checks it: the value as the field's normalizer left it.
        let problem = self
            .chosen
            .get(field)
            .and_then(|c| c.value.as_deref().and_then(|v| self.problem(field, v)));
        let Some(problem) = problem else {
            return Ok(());
        };
        match before {
            Some(pick) => {
                self.picks.insert(field.to_string(), pick);
            }
            None => {
                self.picks.remove(field);
            }
        }
        self.refresh();
        Err(DraftError::Invalid(vec![problem]))
    }

    /// Back to the suggestion for `field`. Whether there was a pick to drop.
    pub fn reset(&mut self, field: &str) -> bool {
        let had = self.picks.remove(field).is_some();
        self.refresh();
        had
    }

    /// Make `record_id` the primary (bringing it back into the merge if it was excluded).
    pub fn make_primary(&mut self, record_id: &str) -> Result<(), DraftError> {
        self.check_membership_change()?;
        if self.member(record_id).is_none() {
            return Err(DraftError::NotAMember(record_id.to_string()));
        }
        self.excluded.remove(record_id);
        self.primary = record_id.to_string();
        self.primary_reason = "picked by steward".to_string();
        self.refresh();
        Ok(())
    }

    /// Exclude `record_id` from the merge, or bring it back. Returns whether it is excluded
    /// now. Picks that took its values are dropped.
    pub fn toggle_exclude(&mut self, record_id: &str) -> Result<bool, DraftError> {
        self.check_membership_change()?;
        if self.member(record_id).is_none() {
            return Err(DraftError::NotAMember(record_id.to_string()));
        }
        if self.excluded.remove(record_id) {
            self.refresh();
            return Ok(false);
        }
        if record_id == self.primary {
            return Err(DraftError::PrimaryExcluded);
        }
        if self.members.len() - self.excluded.len() <= 2 {
            return Err(DraftError::TooFewRecords);
        }
        self.excluded.insert(record_id.to_string());
        self.picks
            .retain(|_, p| !matches!(p, Pick::Take(r) if r == record_id));
        self.refresh();
        Ok(true)
    }

    /// Recompute the suggestion over the included members and what survives.
    fn refresh(&mut self) {
        let records = self.included_records();
        let suggestion = precedence::suggest_with_primary(
            &records,
            &self.ctx.rules,
            &self.ctx.sources,
            &self.fields,
            &self.primary,
        );
        let Ok(suggestion) = suggestion else {
            // Only an empty cluster or a primary outside it get here; nothing survives.
            self.chosen.clear();
            return;
        };
        let overrides: BTreeMap<String, Override> = self
            .picks
            .iter()
            .map(|(f, p)| {
                let o = match p {
                    Pick::Take(r) => Override::TakeFrom {
                        record_id: r.clone(),
                    },
                    Pick::Clear => Override::Typed {
                        value: String::new(),
                    },
                    Pick::Type(v) => Override::Typed { value: v.clone() },
                };
                (f.clone(), o)
            })
            .collect();
        let chosen = match precedence::apply_overrides(&suggestion, &overrides) {
            Ok(c) => c,
            Err(e) => {
                // Every pick was checked when it was made; a rules change in between could
                // still refuse one. The suggestion stands for it.
                tracing::warn!(error = %e, cluster = self.cluster_id, "a pick no longer applies");
                suggestion.choices()
            }
        };
        self.chosen = chosen
            .into_iter()
            .filter(|(f, c)| {
                self.locked(f).is_none()
                    && (c.value.is_some() || c.decided_by == DecidedBy::Steward)
            })
            .collect();
        self.suggestion = suggestion;
    }

    /// What the steward is shown of every included member, for the executor to compare with
    /// the CRM before it merges: every shown or configured property but the bookkeeping ones.
    pub fn seen(&self) -> Seen {
        let mut names: BTreeSet<&str> = self.fields.iter().map(String::as_str).collect();
        names.extend(
            self.ctx
                .configured
                .iter()
                .map(String::as_str)
                .filter(|f| !is_bookkeeping(f)),
        );
        self.members
            .iter()
            .filter(|m| !self.excluded.contains(&m.record.id))
            .map(|m| {
                let values = names
                    .iter()
                    .map(|n| (n.to_string(), m.record.get(n).map(str::to_string)))
                    .collect();
                (m.record.id.clone(), values)
            })
            .collect()
    }

    /// Every value the CRM would refuse among what survives.
    pub fn problems(&self) -> Vec<ValueProblem> {
        self.chosen
            .iter()
            .filter_map(|(f, c)| c.value.as_deref().and_then(|v| self.problem(f, v)))
            .collect()
    }

    /// The approval of this draft, checked: or, when the merges already ran, the amend that
    /// finishes its job with these surviving values.
    pub fn approve(&self, steward: &str, note: &str) -> Result<NewDecision, DraftError> {
        self.check_open()?;
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(DraftError::Invalid(problems));
        }
        if self.members.len() - self.excluded.len() < 2 {
            return Err(DraftError::TooFewRecords);
        }
        Ok(NewDecision {
            cluster_id: self.cluster_id,
            steward: steward.to_string(),
            verdict: if self.finishing_job.is_some() {
                Verdict::Amend
            } else {
                Verdict::Approve
            },
            primary_id: Some(self.primary.clone()),
            field_choices: self.chosen.clone(),
            excluded: self.excluded.iter().cloned().collect(),
            note: note.to_string(),
            seen: self.seen(),
            amends_job: self.finishing_job,
        })
    }

    /// A reject, defer or note on this cluster.
    pub fn decide(
        &self,
        verdict: Verdict,
        steward: &str,
        note: &str,
    ) -> Result<NewDecision, DraftError> {
        if verdict == Verdict::Approve || verdict == Verdict::Amend {
            return self.approve(steward, note);
        }
        if verdict != Verdict::Note {
            self.check_membership_change()?;
        }
        Ok(NewDecision {
            cluster_id: self.cluster_id,
            steward: steward.to_string(),
            verdict,
            primary_id: None,
            field_choices: BTreeMap::new(),
            excluded: Vec::new(),
            note: note.to_string(),
            seen: Seen::new(),
            amends_job: None,
        })
    }
}

/// The fields a cluster shows: the configured properties some member has a value for, in
/// their configured order, then any other property a member has, by name; never bookkeeping.
pub fn shown_fields(configured: &[String], members: &[StoredRecord]) -> Vec<String> {
    let mut fields: Vec<String> = configured
        .iter()
        .filter(|f| !is_bookkeeping(f))
        .filter(|f| members.iter().any(|m| m.record.get(f).is_some()))
        .cloned()
        .collect();
    let mut extra: BTreeSet<String> = BTreeSet::new();
    for m in members {
        for k in m.record.properties.keys() {
            if m.record.get(k).is_some() && !configured.contains(k) && !is_bookkeeping(k) {
                extra.insert(k.clone());
            }
        }
    }
    fields.extend(extra);
    fields
}
