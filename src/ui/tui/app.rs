//! The one owner of the review UI's mutable state. Input arrives as [`Action`]s (already
//! translated by the keymap) and background results as [`Msg`]s; [`App::update`] and
//! [`App::on_message`] are the only places state changes. Work that touches the workspace
//! (loading a page or a cluster, writing a decision) is spawned as a tokio task that calls the
//! store and answers with exactly one `Msg`, so the UI never waits on SQLite and a decision is
//! committed before the screen moves on. Rendering lives in `views` and only reads this state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::keymap::{Command, Context, Edit, Keymap};
use super::text::sanitize;
use crate::config::{Config, SourcesConfig};
use crate::domain::diff::{self, FieldAgreement, Segment};
use crate::domain::model::{ObjectType, PropertyCatalog};
use crate::domain::precedence::Rules;
use crate::ops::review::{Pick, ReviewContext, ReviewDraft};
use crate::store::Store;
use crate::store::clusters::{self, ClusterStatus, JobStatus};
use crate::store::decisions::{self, Decision, DecisionError, FieldChoice, Undone, Verdict};
use crate::store::properties;
use crate::store::queue::{
    self, ClusterDetail, MergeRow, QueuePage, QueueQuery, QueueRow, StatusFilter,
};

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Rows fetched per queue page; the screen shows a window of it.
const PAGE: u64 = 256;
/// Lines of chrome around the queue table (header, filter line, column titles, status, hints).
pub(crate) const QUEUE_CHROME: u16 = 5;

/// What the background task (pull, match, merge) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pulling,
    Matching,
    Merging,
    /// The task finished; the queue is reloaded.
    Done,
    Failed,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Pulling => "pulling",
            Stage::Matching => "matching",
            Stage::Merging => "merging",
            Stage::Done => "done",
            Stage::Failed => "failed",
        }
    }
}

/// What the steward asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Command(Command),
    Edit(Edit),
    /// The terminal's new size in columns and rows.
    Resize(u16, u16),
}

/// Per-status cluster counts, as the queue header shows them.
pub type Counts = Vec<(ClusterStatus, u64)>;

/// Answers from background work. A handful arrive per key press, so their size does not
/// matter and they are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Msg {
    Progress(Progress),
    Done(Outcome),
    /// A background task panicked. The panic hook has already restored the terminal, so the
    /// review ends with this as its error.
    Crashed(String),
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    Page {
        generation: u64,
        page: Result<QueuePage>,
        open_index: Option<u64>,
        select_id: Option<i64>,
    },
    Cluster {
        index: Option<u64>,
        cluster: Result<Option<Box<ClusterState>>>,
    },
    Decided {
        index: Option<u64>,
        advance: bool,
        result: Result<(Decision, Counts)>,
    },
    Undone(Result<(Option<Undone>, Counts)>),
    Merges(Result<Vec<MergeRow>>),
    Retried(i64, Result<bool>),
    /// The lineage of a record, as text for the overlay.
    Lineage(String, Result<String>),
    /// What running the approved merges would do, for the question before `A` runs them.
    ApplyPreview(Result<crate::ops::executor::ApplyPreview>),
}

/// Settings the app takes from the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    pub steward: String,
    pub sources: SourcesConfig,
    pub properties: BTreeMap<ObjectType, Vec<String>>,
    pub keymap: Keymap,
    /// Which value survives per field, and which record is primary.
    pub rules: Arc<Rules>,
    /// Colour off (`NO_COLOR`): differences are shown by markers and modifiers only.
    pub no_color: bool,
    /// Asks the review's background task to run the approved merges (the same executor as
    /// `dupdesk apply`); `None` where no such task runs.
    pub apply: Option<mpsc::UnboundedSender<()>>,
    /// `A` asks before it runs the merges (`review.confirm_apply`).
    pub confirm_apply: bool,
    /// Which property holds the other system's id.
    pub mapping: crate::config::MappingConfig,
}

impl Options {
    /// The options of `config`; a bad `[keys]` entry or rules file is refused here, before
    /// the terminal is touched.
    pub fn from_config(config: &Config) -> Result<Options> {
        Ok(Options {
            steward: config.workspace.steward.clone(),
            sources: config.sources.clone(),
            properties: ObjectType::ALL
                .into_iter()
                .map(|t| (t, config.properties(t)))
                .collect(),
            keymap: Keymap::new(&config.keys).context("the [keys] section of the configuration")?,
            rules: Arc::new(Rules::for_config(config)?),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            apply: None,
            confirm_apply: config.review.confirm_apply,
            mapping: config.mapping.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Queue,
    Cluster,
    Merges,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Filter,
    Note,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
}

#[derive(Debug, Clone, Default)]
pub struct QueueState {
    pub query: QueueQuery,
    /// Loaded rows, starting at `offset` in the filtered list.
    pub rows: Vec<QueueRow>,
    pub offset: u64,
    pub total: u64,
    pub counts: Vec<(ClusterStatus, u64)>,
    /// Absolute position of the selected row in the filtered list.
    pub cursor: u64,
    pub loading: bool,
    pub loaded_once: bool,
    generation: u64,
}

impl QueueState {
    pub fn row(&self, index: u64) -> Option<&QueueRow> {
        index
            .checked_sub(self.offset)
            .and_then(|i| self.rows.get(i as usize))
    }

    fn set_status(&mut self, cluster: i64, status: ClusterStatus) {
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == cluster) {
            r.status = status;
        }
    }
}

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
    /// Why the field cannot be chosen (read-only by the rules or in the CRM), when it cannot.
    pub locked: Option<String>,
    /// Why the CRM would refuse the surviving value, when it would.
    pub problem: Option<String>,
}

/// The cluster screen: the review draft (the domain's, which owns every rule about what can
/// be chosen and what survives) and how it is laid out and navigated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    pub detail: ClusterDetail,
    pub draft: ReviewDraft,
    pub rows: Vec<FieldRow>,
    /// The draft's primary and exclusions, mirrored for the views.
    pub primary: String,
    pub excluded: BTreeSet<String>,
    /// Index into `rows` (all of them, folded or not).
    pub field_cursor: usize,
    pub record_cursor: usize,
    pub fold: bool,
    pub explain: bool,
    /// First line of the explanation overlay shown.
    pub explain_scroll: u16,
    /// The lineage overlay of a record (its id and text), while open.
    pub lineage: Option<(String, String)>,
    pub lineage_scroll: u16,
}

impl ClusterState {
    /// The screen state of a loaded cluster; the draft picks up where the standing decision
    /// left off (primary, exclusions, picked values).
    pub fn new(detail: ClusterDetail, ctx: Arc<ReviewContext>) -> ClusterState {
        let draft = ReviewDraft::new(ctx, &detail);
        let mut state = ClusterState {
            detail,
            draft,
            rows: Vec::new(),
            primary: String::new(),
            excluded: BTreeSet::new(),
            field_cursor: 0,
            record_cursor: 0,
            fold: false,
            explain: false,
            explain_scroll: 0,
            lineage: None,
            lineage_scroll: 0,
        };
        state.rebuild();
        state
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
                    locked: f.locked,
                    problem: f.problem.map(|p| p.to_string()),
                }
            })
            .collect();
    }

    /// Row indexes shown, in order: all, or only the differing ones when folded.
    pub fn visible_rows(&self) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|&i| !self.fold || self.rows[i].agreement.differs() || i == self.field_cursor)
            .collect()
    }
}

/// What a review draft of `object` needs from the options and the workspace.
fn review_context(opts: &Options, object: ObjectType, catalog: PropertyCatalog) -> ReviewContext {
    ReviewContext {
        rules: opts.rules.clone(),
        sources: opts.sources.clone(),
        configured: opts.properties.get(&object).cloned().unwrap_or_default(),
        catalog,
        mapping: Some(opts.mapping.clone()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct MergesState {
    pub rows: Vec<MergeRow>,
    pub cursor: usize,
    pub loading: bool,
}

pub struct App {
    pub(crate) opts: Options,
    store: Store,
    tx: mpsc::UnboundedSender<Msg>,
    in_flight: usize,
    pub(crate) screen: Screen,
    pub(crate) help: bool,
    pub(crate) prompt: Option<Prompt>,
    pub(crate) queue: QueueState,
    pub(crate) cluster: Option<Box<ClusterState>>,
    /// Position in the queue of the open cluster, when it came from the queue.
    pub(crate) cluster_index: Option<u64>,
    pub(crate) merges: MergesState,
    pub(crate) progress: Option<Progress>,
    pub(crate) flash: Option<Flash>,
    pub(crate) now: DateTime<Utc>,
    frozen_now: bool,
    /// A decision is being written: further decisions wait for it.
    pub(crate) saving: bool,
    pub(crate) size: (u16, u16),
    crashed: Option<String>,
    /// A cluster is being loaded to be shown.
    opening: bool,
    /// Keys pressed while a decision was saving or a cluster opening, replayed in order once
    /// the screen has caught up. A deciding key among them acts only if what it was meant
    /// for is still what is open (see [`Command::decides`]).
    backlog: std::collections::VecDeque<Pressed>,
    /// What the last frame drawn showed, as the event loop reports it ([`App::mark_drawn`]).
    shown: Shown,
    /// The question on screen, waiting for y or n.
    pub(crate) confirm: Option<Confirmation>,
    /// Questions asked so far (numbers them).
    questions: u64,
    /// What drafts of each object type are built with (the CRM's property definitions read
    /// once, not per cluster); dropped when a background task may have refreshed them.
    contexts: BTreeMap<ObjectType, Arc<ReviewContext>>,
    quit: bool,
    dirty: bool,
}

/// What a frame showed that a deciding key can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Shown {
    /// The cluster drawn on the cluster screen.
    cluster: Option<i64>,
    /// The question drawn, by its number.
    confirm: Option<u64>,
}

/// A key press and what was on screen when it was pressed.
#[derive(Debug, Clone, Copy)]
struct Pressed {
    ev: ratatui::crossterm::event::KeyEvent,
    shown: Shown,
}

/// A question the steward answers with y or n before something irreversible starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    /// Numbers the questions, so a `y` typed at an earlier one never answers this one.
    pub id: u64,
    pub title: String,
    pub lines: Vec<String>,
}

/// The smallest terminal every screen is designed for; below it no key but quit and help acts.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// The receiving end of the app's background answers.
pub struct Inbox(mpsc::UnboundedReceiver<Msg>);

impl Inbox {
    pub async fn recv(&mut self) -> Option<Msg> {
        self.0.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Msg> {
        self.0.try_recv().ok()
    }

    /// Feed answers to `app` until no background work is left. For tests and benchmarks.
    pub async fn settle(&mut self, app: &mut App) {
        while app.in_flight > 0 {
            match self.0.recv().await {
                Some(msg) => app.on_message(msg),
                None => break,
            }
        }
    }
}

impl App {
    /// A new app on the queue screen; call [`App::start`] to load the first page.
    pub fn new(store: Store, opts: Options) -> (App, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = App {
            opts,
            store,
            tx,
            in_flight: 0,
            screen: Screen::Queue,
            help: false,
            prompt: None,
            queue: QueueState::default(),
            cluster: None,
            cluster_index: None,
            merges: MergesState::default(),
            progress: None,
            flash: None,
            now: Utc::now(),
            frozen_now: false,
            saving: false,
            size: (80, 24),
            crashed: None,
            opening: false,
            backlog: std::collections::VecDeque::new(),
            shown: Shown::default(),
            confirm: None,
            questions: 0,
            contexts: BTreeMap::new(),
            quit: false,
            dirty: true,
        };
        (app, Inbox(rx))
    }

    /// Use a fixed "now" for ages, so renders are reproducible.
    pub fn freeze_clock(&mut self, now: DateTime<Utc>) {
        self.now = now;
        self.frozen_now = true;
    }

    pub fn start(&mut self) {
        self.load_page(0, None, None);
    }

    pub fn screen(&self) -> Screen {
        self.screen
    }
    pub fn should_quit(&self) -> bool {
        self.quit
    }
    /// Why the review had to stop, when a background task panicked.
    pub fn crashed(&self) -> Option<&str> {
        self.crashed.as_deref()
    }
    pub fn queue(&self) -> &QueueState {
        &self.queue
    }
    pub fn cluster(&self) -> Option<&ClusterState> {
        self.cluster.as_deref()
    }
    pub fn flash(&self) -> Option<&Flash> {
        self.flash.as_ref()
    }
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }
    /// The terminal's size as the app last heard it, in columns and rows.
    pub fn size(&self) -> (u16, u16) {
        self.size
    }
    pub fn help_open(&self) -> bool {
        self.help
    }
    /// The question on screen, if one waits for its answer.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.confirm.as_ref()
    }

    /// Whether something changed since the last call: the loop redraws only then.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The keymap context of the current screen.
    pub fn context(&self) -> Context {
        if self.confirm.is_some() {
            return Context::Confirm;
        }
        match self.screen {
            Screen::Queue => Context::Queue,
            Screen::Cluster => Context::Cluster,
            Screen::Merges => Context::Merges,
        }
    }

    /// The event loop drew a frame of the current state: keys pressed from now on were
    /// pressed looking at it.
    pub fn mark_drawn(&mut self) {
        self.shown = if self.too_small() {
            Shown::default()
        } else {
            Shown {
                cluster: (self.screen == Screen::Cluster)
                    .then(|| self.cluster.as_ref().map(|c| c.detail.row.id))
                    .flatten(),
                confirm: self.confirm.as_ref().map(|c| c.id),
            }
        };
    }

    /// The terminal is smaller than the screens are drawn for (they show a notice instead).
    pub fn too_small(&self) -> bool {
        self.size.0 < MIN_SIZE.0 || self.size.1 < MIN_SIZE.1
    }

    /// Translate a key press through the keymap and apply it; while a decision is saving or a
    /// cluster opening, keep it for when that is done (Ctrl-c still quits at once).
    pub fn on_key(&mut self, ev: &ratatui::crossterm::event::KeyEvent) {
        let pressed = Pressed {
            ev: *ev,
            shown: self.shown,
        };
        if self.saving || self.opening {
            if self.prompt.is_none()
                && self.opts.keymap.command(self.context(), ev) == Some(Command::Quit)
            {
                self.quit = true;
            } else {
                self.backlog.push_back(pressed);
            }
            return;
        }
        self.apply_key(pressed);
    }

    fn apply_key(&mut self, pressed: Pressed) {
        let ev = &pressed.ev;
        let action = if self.prompt.is_some() {
            self.opts.keymap.edit(ev).map(Action::Edit)
        } else {
            self.opts
                .keymap
                .command(self.context(), ev)
                .map(Action::Command)
        };
        let Some(action) = action else {
            return;
        };
        if self.too_small() && !matches!(action, Action::Command(Command::Quit | Command::Help)) {
            // Nothing on screen to act on but the notice.
            return;
        }
        if let Action::Command(cmd) = action
            && cmd.decides()
            && !self.was_shown(cmd, pressed.shown)
        {
            self.dirty = true;
            self.fail(format!(
                "{} ignored: it was pressed before this screen was shown; press it again",
                self.opts.keymap.label(cmd)
            ));
            return;
        }
        self.update(action);
    }

    /// Whether a deciding command meets, open, what the steward saw when pressing its key.
    fn was_shown(&self, cmd: Command, shown: Shown) -> bool {
        if cmd == Command::Confirm {
            return shown.confirm.is_some() && shown.confirm == self.confirm.as_ref().map(|c| c.id);
        }
        match self.screen {
            Screen::Cluster => {
                shown.cluster.is_some()
                    && shown.cluster == self.cluster.as_ref().map(|c| c.detail.row.id)
            }
            // The merges view's rows are reloaded in place; R names its job in its answer.
            Screen::Merges | Screen::Queue => true,
        }
    }

    fn spawn<F>(&mut self, work: F)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        self.in_flight += 1;
        let tx = self.tx.clone();
        let task = tokio::spawn(work);
        tokio::spawn(async move {
            let msg = match task.await {
                Ok(outcome) => Msg::Done(outcome),
                Err(e) => Msg::Crashed(e.to_string()),
            };
            let _ = tx.send(msg);
        });
    }

    /// `A`: say what running the approved merges would do and wait for y, unless the steward's
    /// configuration switched the question off.
    fn ask_to_apply(&mut self) {
        if self.opts.apply.is_none() {
            self.fail("no merge task runs here: use `dupdesk apply`");
            return;
        }
        if !self.opts.confirm_apply {
            self.request_merges();
            return;
        }
        let store = self.store.clone();
        self.spawn(async move {
            Outcome::ApplyPreview(crate::ops::executor::preview(&store, None).await)
        });
    }

    fn on_preview(&mut self, preview: crate::ops::executor::ApplyPreview) {
        if preview.clusters == 0 && preview.resumed == 0 {
            self.say("nothing to merge: no approved cluster is waiting");
            return;
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
        self.confirm = Some(Confirmation {
            id: self.questions,
            title: "Run the approved merges now?".to_string(),
            lines,
        });
    }

    /// Ask the background task to run the approved merges; its progress shows in the status
    /// bar, and the queue or merges view reloads when it is done.
    fn request_merges(&mut self) {
        match &self.opts.apply {
            Some(tx) if tx.send(()).is_ok() => {
                self.say("running the approved merges in the background")
            }
            _ => self.fail("no merge task runs here: use `dupdesk apply`"),
        }
    }

    fn say(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            text: text.into(),
            error: false,
        });
    }

    fn fail(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::warn!(error = %text, "review");
        self.flash = Some(Flash { text, error: true });
    }

    pub fn update(&mut self, action: Action) {
        self.dirty = true;
        match action {
            Action::Resize(w, h) => self.size = (w, h),
            Action::Edit(edit) => self.edit(edit),
            Action::Command(cmd) => self.command(cmd),
        }
    }

    fn edit(&mut self, edit: Edit) {
        let Some(prompt) = self.prompt.as_mut() else {
            return;
        };
        match edit {
            Edit::Insert(c) => prompt.text.push(c),
            Edit::Backspace => {
                prompt.text.pop();
            }
            Edit::Cancel => self.prompt = None,
            Edit::Submit => {
                if let Some(p) = self.prompt.take() {
                    match p.kind {
                        PromptKind::Filter => self.apply_filter(&p.text),
                        PromptKind::Note => self.decide(Verdict::Note, p.text),
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        if cmd == Command::Quit {
            self.quit = true;
            return;
        }
        if self.help {
            if matches!(cmd, Command::Help | Command::Back) {
                self.help = false;
            }
            return;
        }
        if let Some(question) = &self.confirm {
            match cmd {
                Command::Confirm => {
                    let id = question.id;
                    self.confirm = None;
                    tracing::info!(question = id, "the steward confirmed the merges");
                    self.request_merges();
                }
                Command::Cancel => {
                    self.confirm = None;
                    self.say("not run: no merge was started");
                }
                _ => {}
            }
            return;
        }
        if cmd == Command::Help {
            self.help = true;
            return;
        }
        self.flash = None;
        match self.screen {
            Screen::Queue => self.queue_command(cmd),
            Screen::Cluster => self.cluster_command(cmd),
            Screen::Merges => self.merges_command(cmd),
        }
    }

    fn queue_rows_visible(&self) -> u64 {
        u64::from(self.size.1.saturating_sub(QUEUE_CHROME).max(1))
    }

    fn queue_command(&mut self, cmd: Command) {
        let total = self.queue.total;
        let page = self.queue_rows_visible();
        let last = total.saturating_sub(1);
        let cursor = self.queue.cursor;
        let moved = match cmd {
            Command::Up => Some(cursor.saturating_sub(1)),
            Command::Down => Some((cursor + 1).min(last)),
            Command::PageUp => Some(cursor.saturating_sub(page)),
            Command::PageDown => Some((cursor + page).min(last)),
            Command::Top => Some(0),
            Command::Bottom => Some(last),
            _ => None,
        };
        if let Some(to) = moved {
            self.queue.cursor = to;
            self.ensure_window();
            return;
        }
        match cmd {
            Command::Open if total > 0 => self.open_index(self.queue.cursor),
            // An active filter is cleared before Esc ever quits.
            Command::Back if self.queue.query != QueueQuery::default() => {
                self.queue.query = QueueQuery {
                    sort: self.queue.query.sort,
                    ..QueueQuery::default()
                };
                if self.queue.query != QueueQuery::default() {
                    // Only the sort differs: there is no filter left to clear.
                    self.quit = true;
                    return;
                }
                self.queue.cursor = 0;
                self.load_page(0, None, None);
                self.say("filter cleared");
            }
            Command::Back => self.quit = true,
            Command::Filter => {
                let mut text = self.queue.query.text.clone();
                if self.queue.query.status != StatusFilter::default() {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(&format!("status:{}", self.queue.query.status.label()));
                }
                self.prompt = Some(Prompt {
                    kind: PromptKind::Filter,
                    text,
                });
            }
            Command::Sort => {
                self.queue.query.sort = self.queue.query.sort.next();
                self.queue.cursor = 0;
                self.load_page(0, None, None);
            }
            Command::Status => {
                self.queue.query.status = self.queue.query.status.next();
                self.queue.cursor = 0;
                self.load_page(0, None, None);
            }
            Command::Merges => {
                self.screen = Screen::Merges;
                self.load_merges();
            }
            Command::Undo => self.undo(),
            Command::Refresh => self.reload_queue(),
            Command::ApplyMerges => self.ask_to_apply(),
            _ => {}
        }
    }

    /// Load the page around the cursor when the visible window is not all loaded.
    fn ensure_window(&mut self) {
        let h = self.queue_rows_visible();
        let first = (self.queue.cursor / h) * h;
        let end = (first + h).min(self.queue.total);
        let loaded_end = self.queue.offset + self.queue.rows.len() as u64;
        if first < self.queue.offset || end > loaded_end {
            self.load_page(first.saturating_sub(PAGE / 4), None, None);
        }
    }

    fn apply_filter(&mut self, text: &str) {
        let mut status = StatusFilter::default();
        let mut words = Vec::new();
        for word in text.split_whitespace() {
            if let Some(s) = word.strip_prefix("status:") {
                status = match s {
                    "open" => StatusFilter::Open,
                    "all" | "" => StatusFilter::All,
                    other => match other.parse::<ClusterStatus>() {
                        Ok(st) => StatusFilter::Only(st),
                        Err(e) => {
                            self.fail(format!("filter: {e} (use open, all or a status)"));
                            return;
                        }
                    },
                };
            } else {
                words.push(word);
            }
        }
        self.queue.query.status = status;
        self.queue.query.text = words.join(" ");
        self.queue.cursor = 0;
        self.load_page(0, None, None);
    }

    fn reload_queue(&mut self) {
        let select = self.queue.row(self.queue.cursor).map(|r| r.id);
        let h = self.queue_rows_visible();
        let first = (self.queue.cursor / h) * h;
        self.load_page(first.saturating_sub(PAGE / 4), None, select);
    }

    fn load_page(&mut self, offset: u64, open_index: Option<u64>, select_id: Option<i64>) {
        self.queue.generation += 1;
        self.queue.loading = true;
        let generation = self.queue.generation;
        let mut query = self.queue.query.clone();
        query.offset = offset;
        query.limit = PAGE;
        let store = self.store.clone();
        self.spawn(async move {
            let page = store.call(move |c| queue::page(c, &query)).await;
            Outcome::Page {
                generation,
                page,
                open_index,
                select_id,
            }
        });
    }

    /// Open the cluster at `index` of the queue, fetching its page first when needed.
    fn open_index(&mut self, index: u64) {
        self.queue.cursor = index;
        match self.queue.row(index) {
            Some(row) => {
                let id = row.id;
                self.load_cluster(id, Some(index));
            }
            None => {
                self.opening = true;
                self.load_page(index.saturating_sub(PAGE / 4), Some(index), None);
            }
        }
    }

    fn load_cluster(&mut self, id: i64, index: Option<u64>) {
        self.opening = true;
        let store = self.store.clone();
        let opts = self.opts.clone();
        let contexts = self.contexts.clone();
        self.spawn(async move {
            let cluster = store
                .call(move |c| {
                    let Some(d) = queue::cluster(c, id)? else {
                        return Ok(None);
                    };
                    let object = d.row.object_type;
                    let ctx = match contexts.get(&object) {
                        Some(ctx) => ctx.clone(),
                        None => {
                            Arc::new(review_context(&opts, object, properties::load(c, object)?))
                        }
                    };
                    Ok(Some(Box::new(ClusterState::new(d, ctx))))
                })
                .await;
            Outcome::Cluster { index, cluster }
        });
    }

    fn cluster_command(&mut self, cmd: Command) {
        let opts = self.opts.clone();
        let Some(cl) = self.cluster.as_deref_mut() else {
            self.screen = Screen::Queue;
            return;
        };
        if cl.lineage.is_some() {
            match cmd {
                Command::Up => cl.lineage_scroll = cl.lineage_scroll.saturating_sub(1),
                Command::Down => cl.lineage_scroll = cl.lineage_scroll.saturating_add(1),
                Command::PageUp => cl.lineage_scroll = cl.lineage_scroll.saturating_sub(10),
                Command::PageDown => cl.lineage_scroll = cl.lineage_scroll.saturating_add(10),
                Command::Top => cl.lineage_scroll = 0,
                Command::Back | Command::Lineage => cl.lineage = None,
                _ => {}
            }
            return;
        }
        if cl.explain {
            // The explanation overlay takes the movement keys to scroll.
            match cmd {
                Command::Up => cl.explain_scroll = cl.explain_scroll.saturating_sub(1),
                Command::Down => cl.explain_scroll = cl.explain_scroll.saturating_add(1),
                Command::PageUp => cl.explain_scroll = cl.explain_scroll.saturating_sub(10),
                Command::PageDown => cl.explain_scroll = cl.explain_scroll.saturating_add(10),
                Command::Top => cl.explain_scroll = 0,
                _ => {}
            }
            if !matches!(cmd, Command::Explain | Command::Back) {
                return;
            }
        }
        let visible = cl.visible_rows();
        let pos = visible
            .iter()
            .position(|&i| i == cl.field_cursor)
            .unwrap_or(0);
        let step = usize::from(self.size.1.saturating_sub(10).max(1));
        let go = |to: usize| {
            visible
                .get(to.min(visible.len().saturating_sub(1)))
                .copied()
        };
        let members = cl.detail.members.len();
        match cmd {
            Command::Up => cl.field_cursor = go(pos.saturating_sub(1)).unwrap_or(0),
            Command::Down => cl.field_cursor = go(pos + 1).unwrap_or(0),
            Command::PageUp => cl.field_cursor = go(pos.saturating_sub(step)).unwrap_or(0),
            Command::PageDown => cl.field_cursor = go(pos + step).unwrap_or(0),
            Command::Top => cl.field_cursor = go(0).unwrap_or(0),
            Command::Bottom => cl.field_cursor = go(usize::MAX).unwrap_or(0),
            Command::Left => cl.record_cursor = cl.record_cursor.saturating_sub(1),
            Command::Right => {
                cl.record_cursor = (cl.record_cursor + 1).min(members.saturating_sub(1))
            }
            Command::Fold => cl.fold = !cl.fold,
            Command::Explain => cl.explain = !cl.explain,
            Command::Lineage => {
                let Some(rec) = cl.detail.members.get(cl.record_cursor) else {
                    return;
                };
                let (id, object) = (rec.record.id.clone(), rec.record.object_type);
                let store = self.store.clone();
                let sources = opts.sources.clone();
                self.spawn(async move {
                    let asked = id.clone();
                    let text = store
                        .call(move |c| {
                            Ok(
                                crate::ops::lineage::lineage(c, Some(object), &asked, &sources)?
                                    .render_text(),
                            )
                        })
                        .await;
                    Outcome::Lineage(id, text)
                });
            }
            Command::TakeValue => {
                let Some(row) = cl.rows.get(cl.field_cursor) else {
                    return;
                };
                let Some(rec) = cl.detail.members.get(cl.record_cursor) else {
                    return;
                };
                let (field, id) = (row.name.clone(), rec.record.id.clone());
                let empty = rec.record.get(&field).is_none();
                // Taking the value already taken gives the field back to the rules.
                let result = if cl.draft.picks().get(&field) == Some(&Pick::Take(id.clone())) {
                    cl.draft.reset(&field);
                    Ok(format!("{field}: back to the suggestion"))
                } else {
                    cl.draft.take(&field, &id).map(|()| {
                        if empty {
                            format!("{field}: kept empty, as in record {id}")
                        } else {
                            format!("{field}: keeping the value of record {id}")
                        }
                    })
                };
                cl.rebuild();
                match result {
                    Ok(msg) => self.say(msg),
                    Err(e) => self.fail(e.to_string()),
                }
            }
            Command::MakePrimary => {
                let Some(rec) = cl.detail.members.get(cl.record_cursor) else {
                    return;
                };
                let id = rec.record.id.clone();
                let result = cl.draft.make_primary(&id);
                cl.rebuild();
                match result {
                    Ok(()) => self.say(format!("record {id} is the primary")),
                    Err(e) => self.fail(e.to_string()),
                }
            }
            Command::Exclude => {
                let Some(rec) = cl.detail.members.get(cl.record_cursor) else {
                    return;
                };
                let id = rec.record.id.clone();
                let result = cl.draft.toggle_exclude(&id);
                cl.rebuild();
                match result {
                    Ok(true) => self.say(format!(
                        "record {id} is excluded from the merge: none of its values survive"
                    )),
                    Ok(false) => self.say(format!("record {id} is back in the merge")),
                    Err(e) => self.fail(e.to_string()),
                }
            }
            Command::Approve => self.decide(Verdict::Approve, String::new()),
            Command::Reject => self.decide(Verdict::Reject, String::new()),
            Command::Defer => self.decide(Verdict::Defer, String::new()),
            Command::Note => {
                self.prompt = Some(Prompt {
                    kind: PromptKind::Note,
                    text: String::new(),
                })
            }
            Command::Next => self.open_next(),
            Command::Undo => self.undo(),
            Command::Back => {
                if cl.explain {
                    cl.explain = false;
                } else {
                    self.screen = Screen::Queue;
                    self.cluster = None;
                    self.reload_queue();
                }
            }
            _ => {}
        }
    }

    fn open_next(&mut self) {
        let Some(index) = self.cluster_index else {
            self.screen = Screen::Queue;
            self.cluster = None;
            self.reload_queue();
            return;
        };
        let next = index + 1;
        if next >= self.queue.total {
            self.screen = Screen::Queue;
            self.cluster = None;
            self.reload_queue();
            self.say("that was the last cluster of the queue");
        } else {
            self.open_index(next);
        }
    }

    fn decide(&mut self, verdict: Verdict, note: String) {
        if self.saving {
            self.fail("still saving the previous decision");
            return;
        }
        let Some(cl) = self.cluster.as_deref() else {
            return;
        };
        let new = match cl.draft.decide(verdict, &self.opts.steward, &note) {
            Ok(new) => new,
            Err(e) => {
                self.fail(format!("not saved: {e}"));
                return;
            }
        };
        self.saving = true;
        let index = self.cluster_index;
        let store = self.store.clone();
        self.spawn(async move {
            let result = store
                .call_waiting(move |c| {
                    let d = decisions::record(c, &new)?;
                    Ok((d, queue::status_counts(c)?))
                })
                .await;
            Outcome::Decided {
                index,
                advance: verdict != Verdict::Note,
                result,
            }
        });
    }

    fn undo(&mut self) {
        if self.saving {
            self.fail("still saving the previous decision");
            return;
        }
        self.saving = true;
        let store = self.store.clone();
        let steward = self.opts.steward.clone();
        self.spawn(async move {
            let result = store
                .call_waiting(move |c| {
                    let u = decisions::undo_last(c, &steward)?;
                    Ok((u, queue::status_counts(c)?))
                })
                .await;
            Outcome::Undone(result)
        });
    }

    fn load_merges(&mut self) {
        self.merges.loading = true;
        let store = self.store.clone();
        self.spawn(async move { Outcome::Merges(store.call(|c| queue::merges(c, 500)).await) });
    }

    fn merges_command(&mut self, cmd: Command) {
        let last = self.merges.rows.len().saturating_sub(1);
        let c = self.merges.cursor;
        let step = usize::from(self.size.1.saturating_sub(8).max(1));
        match cmd {
            Command::Up => self.merges.cursor = c.saturating_sub(1),
            Command::Down => self.merges.cursor = (c + 1).min(last),
            Command::PageUp => self.merges.cursor = c.saturating_sub(step),
            Command::PageDown => self.merges.cursor = (c + step).min(last),
            Command::Top => self.merges.cursor = 0,
            Command::Bottom => self.merges.cursor = last,
            Command::Back => {
                self.screen = Screen::Queue;
                self.reload_queue();
            }
            Command::Refresh => self.load_merges(),
            Command::ApplyMerges => self.ask_to_apply(),
            // To see a job's cluster, or amend the values of one whose update failed.
            Command::Open => {
                if let Some(r) = self.merges.rows.get(c) {
                    let id = r.cluster_id;
                    self.load_cluster(id, None);
                }
            }
            Command::Retry => {
                let job = self.merges.rows.get(c).and_then(|r| r.job.as_ref());
                match job {
                    Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Paused) => {
                        let id = j.id;
                        let store = self.store.clone();
                        self.spawn(async move {
                            Outcome::Retried(
                                id,
                                store
                                    .call(move |c| {
                                        Ok(crate::store::journal::retry_failed(c, Some(id))? > 0)
                                    })
                                    .await,
                            )
                        });
                    }
                    Some(j) => {
                        let msg = format!(
                            "merge job {} is {}; only failed jobs are retried",
                            j.id, j.status
                        );
                        self.fail(msg)
                    }
                    None => self.fail("this cluster has no merge job yet"),
                }
            }
            _ => {}
        }
    }

    pub fn on_message(&mut self, msg: Msg) {
        self.dirty = true;
        match msg {
            Msg::Progress(p) => {
                let finished = matches!(p.stage, Stage::Done | Stage::Failed);
                if finished {
                    // A pull or an apply refreshes the CRM's property definitions.
                    self.contexts.clear();
                }
                self.progress = Some(p);
                if finished && self.screen == Screen::Queue {
                    self.reload_queue();
                }
                if finished && self.screen == Screen::Merges {
                    self.load_merges();
                }
            }
            Msg::Done(outcome) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.on_outcome(outcome);
            }
            Msg::Crashed(e) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                tracing::error!(error = %e, "background task panicked");
                self.crashed = Some(e);
                self.quit = true;
            }
        }
        while !(self.saving || self.opening) {
            let Some(pressed) = self.backlog.pop_front() else {
                break;
            };
            self.apply_key(pressed);
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::ApplyPreview(p) => match p {
                Ok(p) => self.on_preview(p),
                Err(e) => self.fail(format!("reading the approved merges: {e:#}")),
            },
            Outcome::Lineage(id, text) => match text {
                Ok(text) => {
                    if let Some(cl) = self.cluster.as_deref_mut() {
                        cl.lineage = Some((id, text));
                        cl.lineage_scroll = 0;
                    }
                }
                Err(e) => self.fail(format!("lineage of {id}: {e:#}")),
            },
            Outcome::Page {
                generation,
                page,
                open_index,
                select_id,
            } => {
                if open_index.is_some() {
                    // Opening goes on with the cluster load below, if this page still counts.
                    self.opening = false;
                }
                // Latest request wins: an older page arriving late is dropped.
                if generation != self.queue.generation {
                    return;
                }
                self.queue.loading = false;
                match page {
                    Ok(page) => {
                        if !self.frozen_now {
                            self.now = Utc::now();
                        }
                        self.queue.loaded_once = true;
                        self.queue.offset = page.offset;
                        self.queue.rows = page.rows;
                        self.queue.total = page.total;
                        self.queue.counts = page.counts;
                        if let Some(id) = select_id
                            && let Some(i) = self.queue.rows.iter().position(|r| r.id == id)
                        {
                            self.queue.cursor = self.queue.offset + i as u64;
                        }
                        self.queue.cursor =
                            self.queue.cursor.min(self.queue.total.saturating_sub(1));
                        if let Some(i) = open_index {
                            if let Some(row) = self.queue.row(i) {
                                let id = row.id;
                                self.load_cluster(id, Some(i));
                            } else {
                                self.screen = Screen::Queue;
                                self.cluster = None;
                            }
                        }
                    }
                    Err(e) => self.fail(format!("loading the queue: {e:#}")),
                }
            }
            Outcome::Cluster { index, cluster } => {
                self.opening = false;
                match cluster {
                    Ok(Some(cl)) => {
                        self.contexts
                            .insert(cl.draft.object_type(), cl.draft.context().clone());
                        if let Some(i) = index {
                            self.queue.cursor = i;
                        }
                        self.cluster_index = index;
                        self.cluster = Some(cl);
                        self.screen = Screen::Cluster;
                    }
                    Ok(None) => self.fail("that cluster is gone (re-matched?); reload with Ctrl-r"),
                    Err(e) => self.fail(format!("loading the cluster: {e:#}")),
                }
            }
            Outcome::Decided {
                index,
                advance,
                result,
            } => {
                self.saving = false;
                match result {
                    Ok((d, counts)) => {
                        self.queue.counts = counts;
                        if let Some(status) = d.action.status() {
                            self.queue.set_status(d.cluster_id, status);
                            if let Some(cl) = self.cluster.as_deref_mut()
                                && cl.detail.row.id == d.cluster_id
                            {
                                cl.detail.row.status = status;
                            }
                        }
                        if let Some(cl) = self.cluster.as_deref_mut()
                            && cl.detail.row.id == d.cluster_id
                        {
                            cl.detail.decisions.push(d.clone());
                        }
                        let text = match d.action {
                            clusters::Action::Approve => format!("cluster #{} approved", d.cluster_id),
                            clusters::Action::Reject => {
                                format!("cluster #{} rejected: not duplicates", d.cluster_id)
                            }
                            clusters::Action::Defer => format!("cluster #{} deferred", d.cluster_id),
                            clusters::Action::Amend => format!(
                                "cluster #{}: new values saved; A or `dupdesk apply` finishes its merge job",
                                d.cluster_id
                            ),
                            _ => format!("note added to cluster #{}", d.cluster_id),
                        };
                        if advance && self.screen == Screen::Cluster {
                            self.cluster_index = index;
                            self.open_next();
                        }
                        // After open_next, so its own message (end of queue) gives way.
                        if self.flash.as_ref().is_none_or(|f| !f.error) {
                            self.say(text);
                        }
                    }
                    // A refusal names its reason; anything else is the workspace failing to
                    // write (a full disk, say), and the cluster stays open with its choices.
                    Err(e) if e.downcast_ref::<DecisionError>().is_some() => {
                        self.fail(format!("not saved: {e:#}"))
                    }
                    Err(e) => self.fail(format!(
                        "not saved: {e:#}; the choices are kept, decide again once the workspace can be written"
                    )),
                }
            }
            Outcome::Undone(result) => {
                self.saving = false;
                match result {
                    Ok((None, _)) => self.fail("nothing to undo"),
                    Ok((Some(u), counts)) => {
                        self.queue.counts = counts;
                        let id = u.undone.cluster_id;
                        self.queue.set_status(id, u.status);
                        self.say(format!(
                            "undid the {} of cluster #{id}; it is {} again",
                            u.undone.action, u.status
                        ));
                        if self.screen == Screen::Queue {
                            self.reload_queue();
                        } else if self.screen == Screen::Cluster {
                            let index = self
                                .queue
                                .rows
                                .iter()
                                .position(|r| r.id == id)
                                .map(|i| self.queue.offset + i as u64);
                            self.load_cluster(id, index);
                        }
                    }
                    Err(e) => self.fail(format!("undo: {e:#}")),
                }
            }
            Outcome::Merges(rows) => {
                self.merges.loading = false;
                match rows {
                    Ok(rows) => {
                        self.merges.cursor = self.merges.cursor.min(rows.len().saturating_sub(1));
                        self.merges.rows = rows;
                    }
                    Err(e) => self.fail(format!("loading merges: {e:#}")),
                }
            }
            Outcome::Retried(id, result) => match result {
                Ok(true) => {
                    self.say(format!("merge job {id} queued again"));
                    self.load_merges();
                }
                Ok(false) => self.fail(format!("merge job {id} was no longer failed")),
                Err(e) => self.fail(format!("retry: {e:#}")),
            },
        }
    }
}
