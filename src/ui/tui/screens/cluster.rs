//! The cluster screen's state: the domain's review draft of one cluster (which owns every rule
//! about what can be chosen, what survives and what can be decided), its fields laid out for
//! display, and the cursors. Keys that change the draft call the draft and report what it said;
//! keys that decide ask the draft for the decision and hand it to the app to write.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Effect, Env, Screen};
use crate::domain::diff::{self, FieldAgreement, Segment};
use crate::domain::model::ObjectType;
use crate::ops::review::{Pick, ReviewContext, ReviewDraft};
use crate::store::clusters::{self, ClusterStatus};
use crate::store::decisions::{Decision, DecisionError, FieldChoice, Verdict};
use crate::store::queue::ClusterDetail;
use crate::ui::tui::keymap::Command;
use crate::ui::tui::overlays::{Overlay, Prompt, PromptKind};
use crate::ui::tui::text::sanitize;

/// One record's value of one field, prepared for display.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub value: Option<String>,
    /// The sanitized value split into runs that differ from the surviving value, or not.
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldRow {
    pub name: String,
    pub agreement: FieldAgreement,
    pub cells: Vec<Cell>,
    /// The surviving value: the steward's pick, else the suggestion.
    pub survivor: Option<FieldChoice>,
    pub picked: bool,
    /// The steward typed or cleared the surviving value (rather than taking a record's).
    pub typed: bool,
    /// Why the field cannot be chosen (read-only by the rules or in the CRM), when it cannot.
    pub locked: Option<String>,
    /// Why the CRM would refuse the surviving value, when it would.
    pub problem: Option<String>,
}

/// The cluster screen: the review draft and how it is laid out and navigated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterScreen {
    pub detail: ClusterDetail,
    pub draft: ReviewDraft,
    pub rows: Vec<FieldRow>,
    /// The draft's primary and exclusions, mirrored for the views.
    pub primary: String,
    pub excluded: BTreeSet<String>,
    /// Place of the cluster in the queue, when it was opened from the queue.
    pub index: Option<u64>,
    /// Index into `rows` (all of them, folded or not).
    pub field_cursor: usize,
    pub record_cursor: usize,
    pub fold: bool,
    /// The field under the cursor stacked, one record a line, when open: how many lines it is
    /// scrolled past the highlighted record (`record_cursor`).
    pub stacked: Option<u16>,
    /// The field whose surviving value is being typed, while its prompt is open.
    pub editing: Option<String>,
}

impl ClusterScreen {
    /// The screen of a loaded cluster; the draft picks up where the standing decision left off
    /// (primary, exclusions, picked values).
    pub fn new(detail: ClusterDetail, ctx: Arc<ReviewContext>, index: Option<u64>) -> Self {
        let draft = ReviewDraft::new(ctx, &detail);
        let mut screen = ClusterScreen {
            detail,
            draft,
            rows: Vec::new(),
            primary: String::new(),
            excluded: BTreeSet::new(),
            index,
            field_cursor: 0,
            record_cursor: 0,
            fold: false,
            stacked: None,
            editing: None,
        };
        screen.rebuild();
        screen
    }

    pub fn id(&self) -> i64 {
        self.detail.row.id
    }

    pub fn command(&mut self, cmd: Command, env: Env<'_>) -> Vec<Effect> {
        let visible = self.visible_rows();
        let pos = visible
            .iter()
            .position(|&i| i == self.field_cursor)
            .unwrap_or(0);
        let step = usize::from(env.height.saturating_sub(10).max(1));
        let go = |to: usize| {
            visible
                .get(to.min(visible.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let members = self.detail.members.len();
        if let Some(scroll) = self.stacked.as_mut() {
            // The stacked view moves between records and scrolls; the rest acts as on the grid.
            let last = members.saturating_sub(1);
            match cmd {
                Command::Up | Command::Left => {
                    self.record_cursor = self.record_cursor.saturating_sub(1);
                    *scroll = 0;
                    return Vec::new();
                }
                Command::Down | Command::Right => {
                    self.record_cursor = (self.record_cursor + 1).min(last);
                    *scroll = 0;
                    return Vec::new();
                }
                Command::Top | Command::Bottom => {
                    self.record_cursor = if cmd == Command::Top { 0 } else { last };
                    *scroll = 0;
                    return Vec::new();
                }
                Command::PageDown => {
                    *scroll = scroll.saturating_add(step as u16);
                    return Vec::new();
                }
                Command::PageUp => {
                    *scroll = scroll.saturating_sub(step as u16);
                    return Vec::new();
                }
                Command::Stack | Command::Back => {
                    self.stacked = None;
                    return Vec::new();
                }
                _ => {}
            }
        }
        match cmd {
            Command::Up => self.field_cursor = go(pos.saturating_sub(1)),
            Command::Down => self.field_cursor = go(pos + 1),
            Command::PageUp => self.field_cursor = go(pos.saturating_sub(step)),
            Command::PageDown => self.field_cursor = go(pos + step),
            Command::Top => self.field_cursor = go(0),
            Command::Bottom => self.field_cursor = go(usize::MAX),
            Command::Left => self.record_cursor = self.record_cursor.saturating_sub(1),
            Command::Right => {
                self.record_cursor = (self.record_cursor + 1).min(members.saturating_sub(1))
            }
            Command::Fold => self.fold = !self.fold,
            Command::Explain => return vec![Effect::Open(Overlay::Explain { scroll: 0 })],
            Command::Lineage => {
                return self
                    .detail
                    .members
                    .get(self.record_cursor)
                    .map(|rec| Effect::Lineage {
                        id: rec.record.id.clone(),
                        object: rec.record.object_type,
                    })
                    .into_iter()
                    .collect();
            }
            Command::Stack => self.stacked = Some(0),
            Command::TakeValue => return self.take_value().into_iter().collect(),
            Command::TakeRecord => return self.take_record().into_iter().collect(),
            Command::ClearValue => return self.clear_value().into_iter().collect(),
            Command::TypeValue => return self.start_typing().into_iter().collect(),
            Command::MakePrimary => return self.make_primary().into_iter().collect(),
            Command::Exclude => return self.exclude().into_iter().collect(),
            Command::Approve => return vec![self.decide(Verdict::Approve, "", env.steward)],
            Command::Reject => return vec![self.decide(Verdict::Reject, "", env.steward)],
            Command::Defer => return vec![self.decide(Verdict::Defer, "", env.steward)],
            Command::Note => {
                return vec![Effect::Open(Overlay::Prompt(Prompt {
                    kind: PromptKind::Note,
                    text: String::new(),
                }))];
            }
            Command::Next => return vec![Effect::OpenNext(self.index)],
            Command::Undo => return vec![Effect::Undo],
            Command::Back => return vec![Effect::Show(Screen::Queue)],
            _ => {}
        }
        Vec::new()
    }

    /// The decision the draft builds for `verdict`, to be written; a note does not move on.
    /// A merged cluster has nothing left to decide, and the steward is told so plainly (the
    /// draft's refusal would read like a failure to write).
    pub fn decide(&self, verdict: Verdict, note: &str, steward: &str) -> Effect {
        if verdict != Verdict::Note
            && let Some(done) = self.already_merged()
        {
            return Effect::Fail(format!("{done}; nothing to decide"));
        }
        match self.draft.decide(verdict, steward, note) {
            Ok(decision) => Effect::Decide {
                decision,
                index: self.index,
                advance: verdict != Verdict::Note,
            },
            Err(e) => Effect::Fail(format!("not saved: {e}")),
        }
    }

    /// "cluster 6 is already merged into contact 203" for a merged (or merging) cluster.
    pub fn already_merged(&self) -> Option<String> {
        let id = self.id();
        let survivor = self
            .detail
            .job
            .as_ref()
            .and_then(|j| j.survivor_id.as_deref());
        let kind = match self.detail.row.object_type {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
        };
        match (self.detail.row.status, survivor) {
            (ClusterStatus::Merged, Some(s)) => Some(format!(
                "cluster {id} is already merged into {kind} {}",
                sanitize(s)
            )),
            (ClusterStatus::Merged, None) => Some(format!("cluster {id} is already merged")),
            (ClusterStatus::Merging, _) => Some(format!("cluster {id} is being merged now")),
            _ => None,
        }
    }

    /// The notes saved on this cluster that were not undone, newest first: who, when, what.
    pub fn notes(&self) -> Vec<&Decision> {
        let undone: BTreeSet<i64> = self
            .detail
            .decisions
            .iter()
            .filter_map(|d| d.undoes)
            .collect();
        let mut notes: Vec<&Decision> = self
            .detail
            .decisions
            .iter()
            .filter(|d| d.action != clusters::Action::Undo && !undone.contains(&d.id))
            .filter(|d| !d.note.trim().is_empty())
            .collect();
        notes.reverse();
        notes
    }

    /// A decision on this cluster was saved.
    pub fn on_decided(&mut self, d: &Decision) {
        if d.cluster_id != self.id() {
            return;
        }
        if let Some(status) = d.action.status() {
            self.detail.row.status = status;
        }
        self.detail.decisions.push(d.clone());
    }

    /// Row indexes shown, in order: all, or only the differing ones when folded.
    pub fn visible_rows(&self) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|&i| !self.fold || self.rows[i].agreement.differs() || i == self.field_cursor)
            .collect()
    }

    fn take_value(&mut self) -> Option<Effect> {
        let field = self.rows.get(self.field_cursor)?.name.clone();
        let rec = self.detail.members.get(self.record_cursor)?;
        let id = rec.record.id.clone();
        let empty = rec.record.get(&field).is_none();
        // Taking the value already taken gives the field back to the rules.
        let result = if self.draft.picks().get(&field) == Some(&Pick::Take(id.clone())) {
            self.draft.reset(&field);
            Ok(format!("{field}: back to the suggestion"))
        } else {
            self.draft.take(&field, &id).map(|()| {
                if empty {
                    format!("{field}: kept empty, as in record {id}")
                } else {
                    format!("{field}: keeping the value of record {id}")
                }
            })
        };
        self.rebuild();
        Some(report(result))
    }

    /// Every field from the record under the cursor, through the draft; what it skipped, and
    /// why, is said.
    fn take_record(&mut self) -> Option<Effect> {
        let id = self
            .detail
            .members
            .get(self.record_cursor)?
            .record
            .id
            .clone();
        let result = self.draft.take_record(&id);
        self.rebuild();
        Some(report(result.map(|done| {
            let mut text = format!(
                "{} field{} from record {id}",
                done.taken,
                plural(done.taken)
            );
            if done.emptied > 0 {
                text.push_str(&format!(" ({} kept empty, as in it)", done.emptied));
            }
            if !done.skipped.is_empty() {
                let mut why: Vec<String> = Vec::new();
                for (field, reason) in &done.skipped {
                    why.push(format!("{field}: {reason}"));
                }
                text.push_str(&format!(
                    "; {} skipped ({})",
                    done.skipped.len(),
                    why.join("; ")
                ));
            }
            text
        })))
    }

    fn clear_value(&mut self) -> Option<Effect> {
        let field = self.rows.get(self.field_cursor)?.name.clone();
        let result = self.draft.clear(&field);
        self.rebuild();
        Some(report(
            result.map(|()| format!("{field}: cleared, it ends empty")),
        ))
    }

    /// Open the prompt for the surviving value of the field under the cursor, holding that
    /// value; a locked field is refused before anything is typed.
    fn start_typing(&mut self) -> Option<Effect> {
        let row = self.rows.get(self.field_cursor)?;
        if let Some(why) = &row.locked {
            return Some(Effect::Fail(format!("{} cannot be typed: {why}", row.name)));
        }
        if let Some(done) = self.already_merged() {
            return Some(Effect::Fail(format!("{done}; nothing to change")));
        }
        let text = row
            .survivor
            .as_ref()
            .and_then(|c| c.value.clone())
            .unwrap_or_default();
        self.editing = Some(row.name.clone());
        Some(Effect::Open(Overlay::Prompt(Prompt {
            kind: PromptKind::Value,
            text,
        })))
    }

    /// The typed value, through the draft: kept, or refused with the domain's reason (the
    /// CRM would refuse it, the field is read-only) and the draft left as it was.
    pub fn set_typed(&mut self, text: &str) -> Effect {
        let Some(field) = self.editing.take() else {
            return Effect::Fail("no field is being typed".into());
        };
        let result = self.draft.type_checked(&field, text);
        self.rebuild();
        match result {
            Ok(()) if text.trim().is_empty() => {
                Effect::Say(format!("{field}: cleared, it ends empty"))
            }
            Ok(()) => Effect::Say(format!("{field}: keeping the value typed")),
            Err(e) => Effect::Fail(format!("{field}: not kept: {e}")),
        }
    }

    fn make_primary(&mut self) -> Option<Effect> {
        let id = self
            .detail
            .members
            .get(self.record_cursor)?
            .record
            .id
            .clone();
        let result = self.draft.make_primary(&id);
        self.rebuild();
        Some(report(
            result.map(|()| format!("record {id} is the primary")),
        ))
    }

    fn exclude(&mut self) -> Option<Effect> {
        let id = self
            .detail
            .members
            .get(self.record_cursor)?
            .record
            .id
            .clone();
        let result = self.draft.toggle_exclude(&id);
        self.rebuild();
        Some(report(result.map(|excluded| {
            if excluded {
                format!("record {id} is excluded from the merge: none of its values survive")
            } else {
                format!("record {id} is back in the merge")
            }
        })))
    }

    /// Lay the draft out again after it changed.
    fn rebuild(&mut self) {
        self.primary = self.draft.primary().to_string();
        self.excluded = self.draft.excluded().clone();
        let members = &self.detail.members;
        self.rows = self
            .draft
            .field_states()
            .into_iter()
            .map(|f| {
                let values: Vec<Option<String>> = members
                    .iter()
                    .map(|m| m.record.get(f.name).map(str::to_string))
                    .collect();
                let survivor = f.chosen.cloned();
                let reference = survivor
                    .as_ref()
                    .and_then(|c| c.value.as_deref())
                    .map(|v| sanitize(v).into_owned())
                    .unwrap_or_default();
                let agreement = diff::compare(values.iter().map(|v| v.as_deref()));
                let cells = values
                    .into_iter()
                    .map(|value| {
                        let shown = value
                            .as_deref()
                            .map(|v| sanitize(v).into_owned())
                            .unwrap_or_default();
                        let segments = if agreement == FieldAgreement::Differs {
                            diff::char_segments(&reference, &shown)
                        } else {
                            vec![Segment {
                                text: shown,
                                changed: false,
                            }]
                        };
                        Cell { value, segments }
                    })
                    .collect();
                FieldRow {
                    name: f.name.to_string(),
                    agreement,
                    cells,
                    survivor,
                    picked: f.pick.is_some(),
                    typed: matches!(f.pick, Some(Pick::Type(_) | Pick::Clear)),
                    locked: f.locked,
                    problem: f.problem.map(|p| p.to_string()),
                }
            })
            .collect();
    }
}

/// What the draft said to a change: done (and how), or why not.
fn report<E: std::fmt::Display>(result: Result<String, E>) -> Effect {
    match result {
        Ok(text) => Effect::Say(text),
        Err(e) => Effect::Fail(e.to_string()),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What the steward is told once a decision is saved.
pub fn saved(d: &Decision) -> String {
    let id = d.cluster_id;
    match d.action {
        clusters::Action::Approve => format!("cluster #{id} approved"),
        clusters::Action::Reject => format!("cluster #{id} rejected: not duplicates"),
        clusters::Action::Defer => format!("cluster #{id} deferred"),
        clusters::Action::Amend => {
            format!("cluster #{id}: new values saved; A or `dupdesk apply` finishes its merge job")
        }
        _ => format!("note added to cluster #{id}"),
    }
}

/// What the steward is told when a decision was not saved. A refusal names its reason;
/// anything else is the workspace failing to write (a full disk, say), and the cluster stays
/// open with its choices.
pub fn not_saved(e: &anyhow::Error) -> String {
    if e.downcast_ref::<DecisionError>().is_some() {
        format!("not saved: {e:#}")
    } else {
        format!(
            "not saved: {e:#}; the choices are kept, decide again once the workspace can be written"
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{self, Config};
    use crate::domain::model::{ObjectType, PropertyCatalog, Record};
    use crate::domain::precedence::Rules;
    use crate::store::clusters::ClusterStatus;
    use crate::store::queue::QueueRow;
    use crate::store::records::StoredRecord;

    fn config() -> Config {
        config::load(&config::Sources::default()).unwrap()
    }

    fn member(id: &str, props: &[(&str, &str)]) -> StoredRecord {
        StoredRecord {
            rid: id.parse().unwrap(),
            system: "hubspot".into(),
            record: Record {
                object_type: ObjectType::Contacts,
                id: id.into(),
                properties: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                    .collect(),
                history: BTreeMap::new(),
                created_at: None,
                updated_at: None,
                archived: false,
            },
            merged_into: None,
            changed_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    /// Cluster 7 of three contacts: two agree on the email, the names differ.
    fn screen() -> ClusterScreen {
        let config = config();
        let ctx = ReviewContext::for_config(
            &config,
            Arc::new(Rules::for_config(&config).unwrap()),
            ObjectType::Contacts,
            PropertyCatalog::default(),
        );
        let detail = ClusterDetail {
            row: QueueRow {
                id: 7,
                object_type: ObjectType::Contacts,
                label: "Anna".into(),
                status: ClusterStatus::Pending,
                score: 0.9,
                weakest: 0.8,
                size: 3,
                created_at: "2024-01-01T00:00:00Z".into(),
            },
            matcher: "test".into(),
            members: vec![
                member("1", &[("firstname", "Anna"), ("email", "a@x.org")]),
                member("2", &[("firstname", "Ana"), ("email", "a@x.org")]),
                member("3", &[("firstname", "Anne"), ("email", "a@x.org")]),
            ],
            pairs: Vec::new(),
            decisions: Vec::new(),
            status_reason: None,
            job: None,
        };
        ClusterScreen::new(detail, Arc::new(ctx), Some(4))
    }

    const ENV: Env<'static> = Env {
        height: 24,
        steward: "ada",
    };

    fn row_of(s: &ClusterScreen, name: &str) -> usize {
        s.rows.iter().position(|r| r.name == name).unwrap()
    }

    #[test]
    fn taking_a_value_goes_through_the_draft_and_taking_it_again_gives_it_back() {
        let mut s = screen();
        s.field_cursor = row_of(&s, "firstname");
        s.command(Command::Right, ENV);
        s.command(Command::Right, ENV);
        assert_eq!(
            s.command(Command::TakeValue, ENV),
            [Effect::Say(
                "firstname: keeping the value of record 3".into()
            )]
        );
        let row = &s.rows[s.field_cursor];
        assert!(row.picked);
        assert_eq!(
            row.survivor.as_ref().unwrap().value.as_deref(),
            Some("Anne")
        );
        assert_eq!(
            s.command(Command::TakeValue, ENV),
            [Effect::Say("firstname: back to the suggestion".into())]
        );
        assert!(!s.rows[s.field_cursor].picked);
    }

    #[test]
    fn primary_and_exclusion_are_the_drafts_and_its_refusals_are_shown() {
        let mut s = screen();
        s.command(Command::Right, ENV);
        assert_eq!(
            s.command(Command::MakePrimary, ENV),
            [Effect::Say("record 2 is the primary".into())]
        );
        assert_eq!(s.primary, "2");
        s.command(Command::Right, ENV);
        s.command(Command::Exclude, ENV);
        assert_eq!(s.excluded, BTreeSet::from(["3".to_string()]));
        // The draft refuses to exclude the primary, and says why.
        s.command(Command::Left, ENV);
        let fx = s.command(Command::Exclude, ENV);
        assert!(matches!(&fx[..], [Effect::Fail(_)]), "{fx:?}");
        assert_eq!(s.excluded.len(), 1);
        assert_eq!(s.draft.excluded(), &s.excluded);
    }

    #[test]
    fn deciding_hands_the_drafts_decision_to_the_app() {
        let mut s = screen();
        s.command(Command::Right, ENV);
        s.command(Command::MakePrimary, ENV);
        let fx = s.command(Command::Approve, ENV);
        let [
            Effect::Decide {
                decision,
                index,
                advance,
            },
        ] = &fx[..]
        else {
            panic!("{fx:?}");
        };
        assert_eq!(decision, &s.draft.approve("ada", "").unwrap());
        assert_eq!(decision.primary_id.as_deref(), Some("2"));
        assert_eq!((*index, *advance), (Some(4), true));
        let Effect::Decide { advance, .. } = s.decide(Verdict::Note, "call her", "ada") else {
            panic!("a note is a decision too");
        };
        assert!(!advance, "a note stays on the cluster");
    }

    #[test]
    fn fold_hides_agreeing_fields_but_not_the_one_under_the_cursor() {
        let mut s = screen();
        let email = row_of(&s, "email");
        s.command(Command::Fold, ENV);
        let shown = s.visible_rows();
        assert!(shown.contains(&row_of(&s, "firstname")));
        assert_eq!(shown.contains(&email), s.field_cursor == email);
        s.command(Command::Top, ENV);
        s.command(Command::Bottom, ENV);
        assert!(s.rows[s.field_cursor].agreement.differs());
    }

    #[test]
    fn the_stacked_view_moves_between_records_scrolls_and_takes_like_the_grid() {
        let mut s = screen();
        s.field_cursor = row_of(&s, "firstname");
        s.command(Command::Stack, ENV);
        assert_eq!(s.stacked, Some(0));
        s.command(Command::Down, ENV);
        s.command(Command::PageDown, ENV);
        assert_eq!((s.record_cursor, s.stacked), (1, Some(14)));
        // Another record: from its top again.
        s.command(Command::Down, ENV);
        assert_eq!((s.record_cursor, s.stacked), (2, Some(0)));
        s.command(Command::Down, ENV);
        assert_eq!(s.record_cursor, 2, "stops at the last record");
        assert_eq!(
            s.command(Command::TakeValue, ENV),
            [Effect::Say(
                "firstname: keeping the value of record 3".into()
            )]
        );
        assert_eq!(s.command(Command::Back, ENV), []);
        assert_eq!(s.stacked, None, "Esc closes the stack, not the cluster");
        assert_eq!(s.command(Command::Back, ENV), [Effect::Show(Screen::Queue)]);
    }

    #[test]
    fn take_record_type_and_clear_go_through_the_draft() {
        let mut s = screen();
        s.command(Command::Right, ENV);
        assert_eq!(
            s.command(Command::TakeRecord, ENV),
            [Effect::Say("2 fields from record 2".into())]
        );
        assert!(s.rows.iter().all(|r| r.picked && !r.typed));
        assert_eq!(
            s.draft.picks().get("firstname"),
            Some(&Pick::Take("2".into()))
        );
        s.field_cursor = row_of(&s, "email");
        let fx = s.command(Command::TypeValue, ENV);
        assert_eq!(
            fx,
            [Effect::Open(Overlay::Prompt(Prompt {
                kind: PromptKind::Value,
                text: "a@x.org".into()
            }))]
        );
        assert_eq!(
            s.set_typed("anna@x.org"),
            Effect::Say("email: keeping the value typed".into())
        );
        let email = &s.rows[s.field_cursor];
        assert!(email.typed);
        assert_eq!(
            email.survivor.as_ref().unwrap().value.as_deref(),
            Some("anna@x.org")
        );
        s.command(Command::ClearValue, ENV);
        assert_eq!(s.draft.picks().get("email"), Some(&Pick::Clear));
        assert_eq!(
            s.rows[s.field_cursor].survivor.as_ref().unwrap().value,
            None
        );
    }

    #[test]
    fn a_merged_cluster_says_what_it_became_instead_of_failing_to_save() {
        let mut s = screen();
        s.detail.row.status = ClusterStatus::Merged;
        assert_eq!(
            s.command(Command::Approve, ENV),
            [Effect::Fail(
                "cluster 7 is already merged; nothing to decide".into()
            )]
        );
        let Effect::Decide { .. } = s.decide(Verdict::Note, "checked", "ada") else {
            panic!("a note can still be added");
        };
    }

    #[test]
    fn the_other_commands_become_effects() {
        let mut s = screen();
        assert_eq!(
            s.command(Command::Explain, ENV),
            [Effect::Open(Overlay::Explain { scroll: 0 })]
        );
        assert_eq!(
            s.command(Command::Lineage, ENV),
            [Effect::Lineage {
                id: "1".into(),
                object: ObjectType::Contacts
            }]
        );
        assert_eq!(s.command(Command::Next, ENV), [Effect::OpenNext(Some(4))]);
        assert_eq!(s.command(Command::Undo, ENV), [Effect::Undo]);
        assert_eq!(s.command(Command::Back, ENV), [Effect::Show(Screen::Queue)]);
        assert!(matches!(
            &s.command(Command::Note, ENV)[..],
            [Effect::Open(Overlay::Prompt(Prompt {
                kind: PromptKind::Note,
                ..
            }))]
        ));
    }
}
