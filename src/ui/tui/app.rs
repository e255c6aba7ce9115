//! The router of the review UI. Input arrives as [`Action`]s (already translated by the
//! keymap) and background answers as [`Msg`]s; [`App::update`] and [`App::on_message`] are
//! the only ways in. A key goes to the top overlay first, else to the current screen; screens
//! and overlays answer with [`Effect`]s, which the app runs: work on the workspace through
//! [`Tasks`] (one spawned task, one answer each), switching screens, opening overlays, the
//! status line. The app also keeps the keys typed while a decision saves or a cluster opens,
//! and replays them once the screen has caught up. It holds no rule about clusters: those
//! are the domain's, called by the screens. Rendering lives in `views` and only reads.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::keymap::{Command, Context, Edit};
use super::overlays::{Confirmation, Overlay, Overlays, PromptKind};
use super::screens::cluster::{self, ClusterScreen};
use super::screens::merges::MergesScreen;
use super::screens::queue::{Counts, QueueScreen};
use super::screens::{Effect, Env};
use super::tasks::{Outcome, Tasks};
use crate::store::Store;
use crate::store::decisions::{Decision, Undone, Verdict};

pub use super::options::Options;
pub use super::screens::Screen;
pub use super::tasks::{Inbox, Msg, Progress, Stage};

/// What the steward asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Command(Command),
    Edit(Edit),
    /// The terminal's new size in columns and rows.
    Resize(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
}

/// The smallest terminal every screen is designed for; below it no key but quit and help acts.
pub const MIN_SIZE: (u16, u16) = (80, 24);

pub struct App {
    pub(crate) opts: Arc<Options>,
    tasks: Tasks,
    pub(crate) screen: Screen,
    pub(crate) queue: QueueScreen,
    /// Open exactly while the screen is [`Screen::Cluster`].
    pub(crate) cluster: Option<Box<ClusterScreen>>,
    pub(crate) merges: MergesScreen,
    pub(crate) overlays: Overlays,
    pub(crate) progress: Option<Progress>,
    pub(crate) flash: Option<Flash>,
    /// The "now" of ages, when a test fixed it.
    frozen_now: Option<DateTime<Utc>>,
    /// A decision is being written: keys wait for it.
    pub(crate) saving: bool,
    /// A cluster is being loaded to be shown: keys wait for it.
    opening: bool,
    /// Keys pressed while a decision was saving or a cluster opening, replayed in order once
    /// the screen has caught up. A deciding key among them acts only if what it was meant
    /// for is still what is open (see [`Command::decides`]).
    backlog: VecDeque<Pressed>,
    /// What the last frame drawn showed, as the event loop reports it ([`App::mark_drawn`]).
    shown: Shown,
    pub(crate) size: (u16, u16),
    crashed: Option<String>,
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

impl App {
    /// A new app on the queue screen; call [`App::start`] to load the first page.
    pub fn new(store: Store, opts: Options) -> (App, Inbox) {
        let opts = Arc::new(opts);
        let (tasks, inbox) = Tasks::new(store, opts.clone());
        let app = App {
            opts,
            tasks,
            screen: Screen::Queue,
            queue: QueueScreen::new(Utc::now()),
            cluster: None,
            merges: MergesScreen::default(),
            overlays: Overlays::default(),
            progress: None,
            flash: None,
            frozen_now: None,
            saving: false,
            opening: false,
            backlog: VecDeque::new(),
            shown: Shown::default(),
            size: (80, 24),
            crashed: None,
            quit: false,
            dirty: true,
        };
        (app, inbox)
    }

    /// Use a fixed "now" for ages, so renders are reproducible.
    pub fn freeze_clock(&mut self, now: DateTime<Utc>) {
        self.frozen_now = Some(now);
        self.queue.now = now;
    }

    pub fn start(&mut self) {
        let fx = self.queue.start();
        self.run_all(fx);
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
    pub fn queue(&self) -> &QueueScreen {
        &self.queue
    }
    pub fn cluster(&self) -> Option<&ClusterScreen> {
        self.cluster.as_deref()
    }
    pub fn flash(&self) -> Option<&Flash> {
        self.flash.as_ref()
    }
    pub fn busy(&self) -> bool {
        self.tasks.in_flight() > 0
    }
    /// The terminal's size as the app last heard it, in columns and rows.
    pub fn size(&self) -> (u16, u16) {
        self.size
    }
    pub fn help_open(&self) -> bool {
        self.overlays.is_open(|o| matches!(o, Overlay::Help { .. }))
    }
    /// The first line of the help shown, while the help is open.
    pub fn help_scroll(&self) -> Option<u16> {
        self.overlays.iter().find_map(|o| match o {
            Overlay::Help { scroll } => Some(*scroll),
            _ => None,
        })
    }
    /// The question on screen, if one waits for its answer.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.overlays.confirmation()
    }

    /// Whether something changed since the last call: the loop redraws only then.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The keymap context of what is on screen.
    pub fn context(&self) -> Context {
        if self.overlays.confirmation().is_some() {
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
                cluster: self.cluster.as_ref().map(|c| c.id()),
                confirm: self.overlays.confirmation().map(|c| c.id),
            }
        };
    }

    /// The terminal is smaller than the screens are drawn for (they show a notice instead).
    pub fn too_small(&self) -> bool {
        self.size.0 < MIN_SIZE.0 || self.size.1 < MIN_SIZE.1
    }

    fn typing(&self) -> bool {
        self.overlays.top().is_some_and(Overlay::takes_text)
    }

    /// Translate a key press through the keymap and apply it; while a decision is saving or a
    /// cluster opening, keep it for when that is done (Ctrl-c still quits at once).
    pub fn on_key(&mut self, ev: &ratatui::crossterm::event::KeyEvent) {
        let pressed = Pressed {
            ev: *ev,
            shown: self.shown,
        };
        if self.saving || self.opening {
            if !self.typing() && self.opts.keymap.command(self.context(), ev) == Some(Command::Quit)
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
        let action = if self.typing() {
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
            return shown.confirm.is_some()
                && shown.confirm == self.overlays.confirmation().map(|c| c.id);
        }
        match self.screen {
            Screen::Cluster => {
                shown.cluster.is_some() && shown.cluster == self.cluster.as_ref().map(|c| c.id())
            }
            // The merges view's rows are reloaded in place; R names its job in its answer.
            Screen::Merges | Screen::Queue => true,
        }
    }

    pub fn update(&mut self, action: Action) {
        self.dirty = true;
        match action {
            Action::Resize(w, h) => self.size = (w, h),
            Action::Edit(edit) => {
                let fx = self.overlays.edit(edit);
                self.run_all(fx);
            }
            Action::Command(cmd) => self.command(cmd),
        }
    }

    /// Quit first; then an overlay over the whole app (help, a question) takes the key; help
    /// opens over anything else; any other key clears the status line and goes to the
    /// cluster's own overlay if one is open, else to the screen.
    fn command(&mut self, cmd: Command) {
        if cmd == Command::Quit {
            self.quit = true;
            return;
        }
        if self.overlays.top().is_some_and(Overlay::modal) {
            let fx = self.overlays.command(cmd).unwrap_or_default();
            let max = super::views::help_max_scroll(self, self.size);
            self.overlays.limit_help_scroll(max);
            return self.run_all(fx);
        }
        if cmd == Command::Help {
            return self.overlays.push(Overlay::Help { scroll: 0 });
        }
        self.flash = None;
        if let Some(fx) = self.overlays.command(cmd) {
            return self.run_all(fx);
        }
        let env = Env {
            height: self.size.1,
            steward: &self.opts.steward,
        };
        let fx = match self.screen {
            Screen::Queue => self.queue.command(cmd, env),
            Screen::Cluster => match self.cluster.as_deref_mut() {
                Some(cl) => cl.command(cmd, env),
                None => vec![Effect::CloseCluster],
            },
            Screen::Merges => self.merges.command(cmd, env),
        };
        self.run_all(fx);
    }

    fn run_all(&mut self, effects: Vec<Effect>) {
        for fx in effects {
            self.run(fx);
        }
    }

    fn run(&mut self, effect: Effect) {
        match effect {
            Effect::LoadPage(req) => {
                self.opening |= req.open_index.is_some();
                self.tasks.load_page(req);
            }
            Effect::OpenCluster { id, index } => {
                self.opening = true;
                self.tasks.load_cluster(id, index);
            }
            Effect::OpenNext(index) => {
                let fx = self.queue.open_after(index);
                self.run_all(fx);
            }
            Effect::Decide { .. } | Effect::Undo if self.saving => {
                self.fail("still saving the previous decision")
            }
            Effect::Decide {
                decision,
                index,
                advance,
            } => {
                self.saving = true;
                self.tasks.decide(decision, index, advance);
            }
            Effect::Undo => {
                self.saving = true;
                self.tasks.undo();
            }
            Effect::LoadMerges => self.tasks.load_merges(),
            Effect::Retry(job) => self.tasks.retry(job),
            Effect::Lineage { id, object } => self.tasks.lineage(id, object),
            Effect::AskToApply => match (&self.opts.apply, self.opts.confirm_apply) {
                (None, _) => self.fail("no merge task runs here: use `dupdesk apply`"),
                (Some(_), true) => self.tasks.preview_merges(),
                (Some(_), false) => self.run(Effect::RunMerges),
            },
            Effect::RunMerges => match &self.opts.apply {
                Some(tx) if tx.send(()).is_ok() => {
                    self.say("running the approved merges in the background")
                }
                _ => self.fail("no merge task runs here: use `dupdesk apply`"),
            },
            Effect::AskBulk { verdict, query } => self.tasks.preview_bulk(verdict, query),
            Effect::RunBulk { .. } if self.saving => {
                self.fail("still saving the previous decision")
            }
            Effect::RunBulk { verdict, ids } => {
                self.saving = true;
                let doing = if verdict == Verdict::Reject {
                    "rejecting"
                } else {
                    "deferring"
                };
                self.say(format!("{doing} {} clusters…", ids.len()));
                self.tasks.decide_bulk(verdict, ids);
            }
            Effect::Show(screen) => self.show(screen),
            Effect::CloseCluster => self.close_cluster(),
            Effect::Open(overlay) => self.overlays.push(overlay),
            Effect::Typed(PromptKind::Filter, text) => {
                let fx = self.queue.filter_live(&text);
                self.run_all(fx);
            }
            Effect::Typed(PromptKind::Note | PromptKind::Value, _) => {}
            Effect::Submit(PromptKind::Filter, text) => {
                let fx = self.queue.filter(&text);
                self.run_all(fx);
            }
            Effect::Submit(PromptKind::Note, text) => {
                if let Some(cl) = self.cluster.as_deref() {
                    let fx = cl.decide(Verdict::Note, &text, &self.opts.steward);
                    self.run(fx);
                }
            }
            Effect::Submit(PromptKind::Value, text) => {
                if let Some(cl) = self.cluster.as_deref_mut() {
                    let fx = cl.set_typed(&text);
                    self.run(fx);
                }
            }
            Effect::Say(text) => self.say(text),
            Effect::Fail(text) => self.fail(text),
            Effect::SayUnlessError(text) => {
                if self.flash.as_ref().is_none_or(|f| !f.error) {
                    self.say(text);
                }
            }
            Effect::Quit => self.quit = true,
        }
    }

    /// Switch to `screen`, reading what it shows again.
    fn show(&mut self, screen: Screen) {
        match screen {
            Screen::Queue => {
                self.close_cluster();
                let fx = self.queue.reload(self.size.1);
                self.run_all(fx);
            }
            Screen::Merges => {
                self.screen = Screen::Merges;
                let fx = self.merges.load();
                self.run_all(fx);
            }
            // A cluster is shown by opening it.
            Screen::Cluster => {}
        }
    }

    fn close_cluster(&mut self) {
        self.cluster = None;
        self.overlays.close_cluster();
        self.screen = Screen::Queue;
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

    pub fn on_message(&mut self, msg: Msg) {
        self.dirty = true;
        match msg {
            Msg::Progress(p) => {
                let finished = matches!(p.stage, Stage::Done | Stage::Failed);
                self.progress = Some(p);
                if finished {
                    // A pull or an apply refreshes the CRM's property definitions, and what
                    // is on screen.
                    self.tasks.forget_contexts();
                    let fx = match self.screen {
                        Screen::Queue => self.queue.reload(self.size.1),
                        Screen::Merges => self.merges.load(),
                        Screen::Cluster => Vec::new(),
                    };
                    self.run_all(fx);
                }
            }
            Msg::Done(outcome) => {
                self.tasks.answered();
                self.on_outcome(outcome);
            }
            Msg::Crashed(e) => {
                self.tasks.answered();
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

    /// Route an answer to the screen or overlay that asked for it.
    fn on_outcome(&mut self, outcome: Outcome) {
        let fx = match outcome {
            Outcome::Page(answer) => {
                // Opening goes on with the cluster load the page asks for, if it still counts.
                self.opening &= answer.open_index.is_none();
                let now = self.frozen_now.unwrap_or_else(Utc::now);
                self.queue.on_page(answer, now)
            }
            Outcome::Cluster(cluster) => {
                self.opening = false;
                match cluster {
                    Ok(Some(cl)) => self.show_cluster(cl),
                    Ok(None) => vec![Effect::Fail(
                        "that cluster is gone (re-matched?); reload with Ctrl-r".into(),
                    )],
                    Err(e) => vec![Effect::Fail(format!("loading the cluster: {e:#}"))],
                }
            }
            Outcome::Decided {
                index,
                advance,
                result,
            } => {
                self.saving = false;
                match result {
                    Ok((d, counts)) => self.on_decided(&d, counts, index, advance),
                    Err(e) => vec![Effect::Fail(cluster::not_saved(&e))],
                }
            }
            Outcome::Undone(result) => {
                self.saving = false;
                match result {
                    Ok((None, _)) => vec![Effect::Fail("nothing to undo".into())],
                    Ok((Some(u), counts)) => self.on_undone(&u, counts),
                    Err(e) => vec![Effect::Fail(format!("undo: {e:#}"))],
                }
            }
            Outcome::Merges(rows) => self.merges.on_loaded(rows),
            Outcome::Retried(id, result) => self.merges.on_retried(id, result),
            Outcome::Lineage(id, text) => match text {
                Ok(text) if self.cluster.is_some() => vec![Effect::Open(Overlay::Lineage {
                    id,
                    text,
                    scroll: 0,
                })],
                Ok(_) => Vec::new(),
                Err(e) => vec![Effect::Fail(format!("lineage of {id}: {e:#}"))],
            },
            Outcome::BulkPreview(verdict, ids) => match ids {
                Ok(ids) => {
                    let filter = self.filter_words();
                    match self.overlays.ask_bulk(verdict, ids, &filter) {
                        Some(question) => vec![Effect::Open(question)],
                        None => vec![Effect::Say(format!(
                            "nothing to {verdict}: the filter shows no cluster"
                        ))],
                    }
                }
                Err(e) => vec![Effect::Fail(format!("reading the filtered queue: {e:#}"))],
            },
            Outcome::BulkDecided(verdict, result) => {
                self.saving = false;
                match result {
                    Ok((done, counts)) => {
                        self.queue.counts = counts;
                        let mut fx = self.queue.reload(self.size.1);
                        let done_word = if verdict == Verdict::Reject {
                            "rejected"
                        } else {
                            "deferred"
                        };
                        let mut text = format!(
                            "{} {done_word}, one saved decision each",
                            crate::domain::words::count(
                                done.decided.len() as u64,
                                "cluster",
                                "clusters"
                            )
                        );
                        if let Some((id, why)) = done.refused.first() {
                            text.push_str(&format!(
                                "; {} left as they were (#{id}: {why})",
                                done.refused.len()
                            ));
                        }
                        fx.push(Effect::Say(text));
                        fx
                    }
                    Err(e) => vec![
                        Effect::Fail(format!("bulk {verdict}: {e:#}")),
                        Effect::Show(Screen::Queue),
                    ],
                }
            }
            Outcome::ApplyPreview(p) => match p {
                Ok(p) => match self.overlays.ask_to_merge(&p) {
                    Some(question) => vec![Effect::Open(question)],
                    None => vec![Effect::Say(
                        "nothing to merge: no approved cluster is waiting".into(),
                    )],
                },
                Err(e) => vec![Effect::Fail(format!("reading the approved merges: {e:#}"))],
            },
        };
        self.run_all(fx);
    }

    /// The queue's filter as the steward would type it, for a question about it.
    fn filter_words(&self) -> String {
        let q = &self.queue.query;
        let mut words = Vec::new();
        if !q.text.is_empty() {
            words.push(format!("\"{}\"", q.text));
        }
        words.push(format!("status:{}", q.status.label()));
        words.join(" ")
    }

    /// A cluster was read: it replaces the screen (and the overlays of the one before).
    fn show_cluster(&mut self, cl: Box<ClusterScreen>) -> Vec<Effect> {
        self.tasks.remember(&cl);
        if let Some(i) = cl.index {
            self.queue.cursor = i;
        }
        self.overlays.close_cluster();
        self.cluster = Some(cl);
        self.screen = Screen::Cluster;
        Vec::new()
    }

    /// A decision was saved: the queue and the open cluster show it, and the next cluster
    /// opens when the decision moves on.
    fn on_decided(
        &mut self,
        d: &Decision,
        counts: Counts,
        index: Option<u64>,
        advance: bool,
    ) -> Vec<Effect> {
        self.queue.on_decided(d, counts);
        let mut fx = Vec::new();
        if let Some(cl) = self.cluster.as_deref_mut() {
            cl.on_decided(d);
            if advance {
                fx.push(Effect::OpenNext(index));
            }
        }
        // After the next cluster opens, so its own message (end of queue) gives way.
        fx.push(Effect::SayUnlessError(cluster::saved(d)));
        fx
    }

    /// A decision was undone: the screen shows its cluster as it stands now.
    fn on_undone(&mut self, u: &Undone, counts: Counts) -> Vec<Effect> {
        let mut fx = vec![self.queue.on_undone(u, counts)];
        let id = u.undone.cluster_id;
        match self.screen {
            Screen::Queue => fx.extend(self.queue.reload(self.size.1)),
            Screen::Cluster => fx.push(Effect::OpenCluster {
                id,
                index: self.queue.index_of(id),
            }),
            Screen::Merges => {}
        }
        fx
    }
}
