//! The overlays (help, a question, the explanation of a cluster, a record's lineage, a text
//! prompt) as a small stack that sees keys before the screen does, in the shape of gitui's
//! popup stack. The top overlay takes the key: it consumes it, or closes itself, possibly
//! with effects for the app to run; it never reaches past itself.
//!
//! Overlays come in layers, and one pushed later never hides one of a higher layer: the
//! cluster's own views (explanation, lineage) lie under the app's modal boxes (help, question),
//! which lie under a prompt being typed in. So a question that arrives while the steward reads
//! a record's lineage answers the next key, and a prompt keeps the keys until it is closed.

use super::keymap::{Command, Edit};
use super::screens::Effect;
use crate::ops::executor::ApplyPreview;
use crate::store::decisions::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Filter,
    Note,
    /// The surviving value of the field the cluster screen is editing.
    Value,
}

/// A line of text being typed: the queue's filter, a note on the cluster, or a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub text: String,
}

/// A question the steward answers with y or n before something irreversible starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    /// Numbers the questions, so a `y` typed at an earlier one never answers this one.
    pub id: u64,
    pub title: String,
    pub lines: Vec<String>,
    /// What a yes does.
    pub on_yes: OnYes,
}

/// What the answer yes to a question starts.
#[derive(Debug, Clone, PartialEq)]
pub enum OnYes {
    RunMerges,
    /// Reject or defer exactly these clusters (those the question counted).
    Bulk {
        verdict: Verdict,
        ids: Vec<i64>,
    },
}

impl OnYes {
    /// The words of the yes key: `y: run them`.
    pub fn verb(&self) -> &'static str {
        match self {
            OnYes::RunMerges => "run them",
            OnYes::Bulk {
                verdict: Verdict::Reject,
                ..
            } => "reject them",
            OnYes::Bulk { .. } => "defer them",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    /// The keys of the screen underneath and the legend of its markers, from line `scroll`.
    Help {
        scroll: u16,
    },
    /// Run the approved merges?
    Confirm(Confirmation),
    /// Why the open cluster's records match, from its first line `scroll`.
    Explain {
        scroll: u16,
    },
    /// Where a record's data came from, as text.
    Lineage {
        id: String,
        text: String,
        scroll: u16,
    },
    Prompt(Prompt),
}

/// What an overlay did with a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Consumed,
    /// The overlay stays, and asks for these effects (a filter re-filters as it is typed).
    Changed(Vec<Effect>),
    /// The overlay closed; the effects are the app's to run.
    Closed(Vec<Effect>),
}

impl Overlay {
    /// Which overlays this one never hides (see the module's doc).
    fn layer(&self) -> u8 {
        match self {
            Overlay::Explain { .. } | Overlay::Lineage { .. } => 0,
            Overlay::Help { .. } | Overlay::Confirm(_) => 1,
            Overlay::Prompt(_) => 2,
        }
    }

    /// Whether the overlay covers the whole app rather than a part of the cluster screen:
    /// keys to it neither open the help nor clear the status line.
    pub fn modal(&self) -> bool {
        self.layer() > 0
    }

    /// Whether it belongs to the open cluster (and goes when that closes).
    fn of_cluster(&self) -> bool {
        self.layer() == 0
    }

    /// Whether keys are typed into it rather than read as commands.
    pub fn takes_text(&self) -> bool {
        matches!(self, Overlay::Prompt(_))
    }

    /// The commands its hint bar shows, when it has its own.
    pub fn hints(&self) -> Option<&'static [Command]> {
        match self {
            Overlay::Help { .. } => Some(&[Command::Help, Command::Back]),
            Overlay::Lineage { .. } => Some(&[Command::Lineage, Command::Back]),
            Overlay::Explain { .. } => Some(&[Command::Explain, Command::Back]),
            Overlay::Confirm(_) | Overlay::Prompt(_) => None,
        }
    }

    pub fn command(&mut self, cmd: Command) -> Reply {
        match self {
            // The movement keys scroll; the view stops at the last line.
            Overlay::Help { scroll } => {
                if matches!(cmd, Command::Help | Command::Back) {
                    return Reply::Closed(Vec::new());
                }
                scroll_by(scroll, cmd);
            }
            Overlay::Confirm(question) => match cmd {
                Command::Confirm => {
                    tracing::info!(question = question.id, "the steward said yes");
                    return Reply::Closed(vec![match &question.on_yes {
                        OnYes::RunMerges => Effect::RunMerges,
                        OnYes::Bulk { verdict, ids } => Effect::RunBulk {
                            verdict: *verdict,
                            ids: ids.clone(),
                        },
                    }]);
                }
                Command::Cancel => {
                    let said = match question.on_yes {
                        OnYes::RunMerges => "not run: no merge was started",
                        OnYes::Bulk { .. } => "not done: no cluster was decided",
                    };
                    return Reply::Closed(vec![Effect::Say(said.into())]);
                }
                _ => {}
            },
            // The movement keys scroll.
            Overlay::Explain { scroll } => {
                if matches!(cmd, Command::Explain | Command::Back) {
                    return Reply::Closed(Vec::new());
                }
                scroll_by(scroll, cmd);
            }
            Overlay::Lineage { scroll, .. } => {
                if matches!(cmd, Command::Lineage | Command::Back) {
                    return Reply::Closed(Vec::new());
                }
                scroll_by(scroll, cmd);
            }
            Overlay::Prompt(_) => {}
        }
        Reply::Consumed
    }

    pub fn edit(&mut self, edit: Edit) -> Reply {
        let Overlay::Prompt(prompt) = self else {
            return Reply::Consumed;
        };
        match edit {
            Edit::Insert(c) => prompt.text.push(c),
            Edit::Backspace => {
                prompt.text.pop();
            }
            // Esc on the filter clears it (what was typed already filters); on a note it
            // keeps nothing.
            Edit::Cancel if prompt.kind == PromptKind::Filter => {
                return Reply::Closed(vec![Effect::Submit(PromptKind::Filter, String::new())]);
            }
            Edit::Cancel => return Reply::Closed(Vec::new()),
            Edit::Submit => {
                let text = std::mem::take(&mut prompt.text);
                return Reply::Closed(vec![Effect::Submit(prompt.kind, text)]);
            }
        }
        match prompt.kind {
            // Like lazygit: every keystroke filters again.
            PromptKind::Filter => {
                Reply::Changed(vec![Effect::Typed(PromptKind::Filter, prompt.text.clone())])
            }
            PromptKind::Note | PromptKind::Value => Reply::Consumed,
        }
    }
}

fn scroll_by(scroll: &mut u16, cmd: Command) {
    match cmd {
        Command::Up => *scroll = scroll.saturating_sub(1),
        Command::Down => *scroll = scroll.saturating_add(1),
        Command::PageUp => *scroll = scroll.saturating_sub(10),
        Command::PageDown => *scroll = scroll.saturating_add(10),
        Command::Top => *scroll = 0,
        Command::Bottom => *scroll = u16::MAX,
        _ => {}
    }
}

/// The overlays on screen, bottom first.
#[derive(Debug, Clone, Default)]
pub struct Overlays {
    stack: Vec<Overlay>,
    /// Questions asked so far (numbers them).
    questions: u64,
}

impl Overlays {
    /// Put `overlay` on top of those of its layer and below. A second lineage replaces the
    /// first.
    pub fn push(&mut self, overlay: Overlay) {
        if matches!(overlay, Overlay::Lineage { .. }) {
            self.stack.retain(|o| !matches!(o, Overlay::Lineage { .. }));
        }
        let at = self
            .stack
            .iter()
            .rposition(|o| o.layer() <= overlay.layer())
            .map_or(0, |i| i + 1);
        self.stack.insert(at, overlay);
    }

    /// Ask whether to run the approved merges `preview` describes; `None` when there is
    /// nothing to run.
    pub fn ask_to_merge(&mut self, preview: &ApplyPreview) -> Option<Overlay> {
        if preview.clusters == 0 && preview.resumed == 0 {
            return None;
        }
        self.questions += 1;
        let mut lines = Vec::new();
        if preview.clusters > 0 {
            lines.push(format!(
                "{} approved cluster{} of {} records: {} merge{}",
                preview.clusters,
                plural(preview.clusters),
                preview.records,
                preview.merges,
                plural(preview.merges)
            ));
        }
        if preview.resumed > 0 {
            lines.push(format!(
                "{} interrupted or amended job{} to finish",
                preview.resumed,
                plural(preview.resumed)
            ));
        }
        lines.push(format!(
            "about {} CRM calls; every plan is checked before its first merge",
            preview.calls
        ));
        lines.push("A merge cannot be undone in the CRM.".to_string());
        Some(Overlay::Confirm(Confirmation {
            id: self.questions,
            title: "Run the approved merges now?".to_string(),
            lines,
            on_yes: OnYes::RunMerges,
        }))
    }

    /// Ask whether to reject or defer the clusters `ids` (those `filter` shows); `None` when
    /// it shows none.
    pub fn ask_bulk(&mut self, verdict: Verdict, ids: Vec<i64>, filter: &str) -> Option<Overlay> {
        if ids.is_empty() {
            return None;
        }
        self.questions += 1;
        let n = ids.len();
        let (title, what) = match verdict {
            Verdict::Reject => ("Reject them all?", "rejected: not duplicates"),
            _ => ("Defer them all?", "deferred: decided later"),
        };
        let mut lines = vec![
            format!("{n} cluster{} shown by the filter {filter}", plural(n)),
            format!("will each be {what}, as one decision each."),
        ];
        lines.push("u undoes them one by one, the last first.".to_string());
        Some(Overlay::Confirm(Confirmation {
            id: self.questions,
            title: title.to_string(),
            lines,
            on_yes: OnYes::Bulk { verdict, ids },
        }))
    }

    pub fn top(&self) -> Option<&Overlay> {
        self.stack.last()
    }

    /// Give `cmd` to the top overlay; `None` when there is none.
    pub fn command(&mut self, cmd: Command) -> Option<Vec<Effect>> {
        let reply = self.stack.last_mut()?.command(cmd);
        Some(self.settle(reply))
    }

    /// Give `edit` to the top overlay, if it takes text.
    pub fn edit(&mut self, edit: Edit) -> Vec<Effect> {
        match self.stack.last_mut() {
            Some(o) if o.takes_text() => {
                let reply = o.edit(edit);
                self.settle(reply)
            }
            _ => Vec::new(),
        }
    }

    fn settle(&mut self, reply: Reply) -> Vec<Effect> {
        match reply {
            Reply::Consumed => Vec::new(),
            Reply::Changed(effects) => effects,
            Reply::Closed(effects) => {
                self.stack.pop();
                effects
            }
        }
    }

    /// The help scrolls no further than its last line at the bottom (`max`, which the view
    /// computes), so a key back up moves it at once.
    pub fn limit_help_scroll(&mut self, max: u16) {
        for o in &mut self.stack {
            if let Overlay::Help { scroll } = o {
                *scroll = (*scroll).min(max);
            }
        }
    }

    /// The open cluster closed: its explanation and lineage go with it.
    pub fn close_cluster(&mut self) {
        self.stack.retain(|o| !o.of_cluster());
    }

    /// Bottom first, as they are drawn.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Overlay> {
        self.stack.iter()
    }

    pub fn is_open(&self, which: impl Fn(&Overlay) -> bool) -> bool {
        self.stack.iter().any(which)
    }

    /// The question on screen, if one waits for its answer.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.stack.iter().rev().find_map(|o| match o {
            Overlay::Confirm(q) => Some(q),
            _ => None,
        })
    }

    pub fn prompt(&self) -> Option<&Prompt> {
        self.stack.iter().rev().find_map(|o| match o {
            Overlay::Prompt(p) => Some(p),
            _ => None,
        })
    }

    /// The hints of the highest overlay that has its own.
    pub fn hints(&self) -> Option<&'static [Command]> {
        self.stack.iter().rev().find_map(Overlay::hints)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage() -> Overlay {
        Overlay::Lineage {
            id: "101".into(),
            text: "merged from: 102".into(),
            scroll: 0,
        }
    }

    #[test]
    fn the_top_overlay_takes_the_key_and_closes_itself() {
        let mut o = Overlays::default();
        assert_eq!(
            o.command(Command::Down),
            None,
            "no overlay: the screen's key"
        );
        o.push(Overlay::Explain { scroll: 0 });
        o.push(lineage());
        assert_eq!(o.command(Command::Down), Some(vec![]));
        assert!(matches!(o.top(), Some(Overlay::Lineage { scroll: 1, .. })));
        assert_eq!(o.command(Command::Approve), Some(vec![]), "consumed");
        assert_eq!(o.command(Command::Back), Some(vec![]));
        assert_eq!(o.top(), Some(&Overlay::Explain { scroll: 0 }));
        o.command(Command::PageDown);
        o.command(Command::Up);
        assert_eq!(o.top(), Some(&Overlay::Explain { scroll: 9 }));
        o.command(Command::Explain);
        assert_eq!(o.top(), None);
    }

    #[test]
    fn a_question_answers_with_effects_and_only_y_or_n_close_it() {
        let mut o = Overlays::default();
        let preview = ApplyPreview {
            clusters: 2,
            records: 5,
            merges: 3,
            resumed: 0,
            calls: 12,
        };
        assert_eq!(o.ask_to_merge(&ApplyPreview::default()), None);
        let q = o.ask_to_merge(&preview).unwrap();
        o.push(q);
        assert_eq!(o.confirmation().unwrap().id, 1);
        assert_eq!(
            o.confirmation().unwrap().lines[0],
            "2 approved clusters of 5 records: 3 merges"
        );
        assert_eq!(o.command(Command::Back), Some(vec![]));
        assert!(o.confirmation().is_some());
        assert_eq!(o.command(Command::Confirm), Some(vec![Effect::RunMerges]));
        assert!(o.confirmation().is_none());
        let q = o.ask_to_merge(&preview).unwrap();
        o.push(q);
        assert_eq!(
            o.confirmation().unwrap().id,
            2,
            "each question has its number"
        );
        assert_eq!(
            o.command(Command::Cancel),
            Some(vec![Effect::Say("not run: no merge was started".into())])
        );
    }

    #[test]
    fn a_bulk_question_counts_the_clusters_and_yes_decides_exactly_those() {
        let mut o = Overlays::default();
        assert_eq!(o.ask_bulk(Verdict::Reject, vec![], "\"x\""), None);
        let q = o.ask_bulk(Verdict::Reject, vec![3, 7], "\"acme\"").unwrap();
        o.push(q);
        let c = o.confirmation().unwrap();
        assert_eq!(c.lines[0], "2 clusters shown by the filter \"acme\"");
        assert_eq!(c.on_yes.verb(), "reject them");
        assert_eq!(
            o.command(Command::Confirm),
            Some(vec![Effect::RunBulk {
                verdict: Verdict::Reject,
                ids: vec![3, 7]
            }])
        );
        let q = o.ask_bulk(Verdict::Defer, vec![3], "\"acme\"").unwrap();
        o.push(q);
        assert_eq!(
            o.command(Command::Cancel),
            Some(vec![Effect::Say("not done: no cluster was decided".into())])
        );
    }

    #[test]
    fn a_later_overlay_never_hides_one_of_a_higher_layer() {
        let mut o = Overlays::default();
        o.push(Overlay::Prompt(Prompt {
            kind: PromptKind::Filter,
            text: String::new(),
        }));
        o.push(Overlay::Help { scroll: 0 });
        o.push(lineage());
        assert!(o.top().is_some_and(Overlay::takes_text));
        let kinds: Vec<u8> = o.iter().map(Overlay::layer).collect();
        assert_eq!(kinds, [0, 1, 2]);
        assert_eq!(o.hints(), Some(&[Command::Help, Command::Back][..]));
        // A second lineage replaces the first.
        o.push(lineage());
        assert_eq!(o.iter().count(), 3);
        o.close_cluster();
        assert_eq!(o.iter().count(), 2);
    }

    #[test]
    fn a_prompt_takes_text_and_submits_it() {
        let mut o = Overlays::default();
        o.push(Overlay::Prompt(Prompt {
            kind: PromptKind::Note,
            text: String::new(),
        }));
        for c in "hi!".chars() {
            assert!(o.edit(Edit::Insert(c)).is_empty());
        }
        o.edit(Edit::Backspace);
        assert_eq!(o.prompt().unwrap().text, "hi");
        assert_eq!(
            o.edit(Edit::Submit),
            [Effect::Submit(PromptKind::Note, "hi".into())]
        );
        assert!(o.top().is_none());
        o.push(Overlay::Help { scroll: 0 });
        assert!(o.edit(Edit::Insert('x')).is_empty(), "help takes no text");
        assert_eq!(o.top(), Some(&Overlay::Help { scroll: 0 }));
    }

    #[test]
    fn the_filter_prompt_filters_as_it_is_typed_and_esc_clears_it() {
        let mut o = Overlays::default();
        o.push(Overlay::Prompt(Prompt {
            kind: PromptKind::Filter,
            text: "an".into(),
        }));
        assert_eq!(
            o.edit(Edit::Insert('n')),
            [Effect::Typed(PromptKind::Filter, "ann".into())]
        );
        assert_eq!(
            o.edit(Edit::Backspace),
            [Effect::Typed(PromptKind::Filter, "an".into())]
        );
        assert_eq!(
            o.edit(Edit::Cancel),
            [Effect::Submit(PromptKind::Filter, String::new())]
        );
        assert!(o.top().is_none());
    }
}
