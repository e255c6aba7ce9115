//! The queue screen's state: the query (filter and sort), the loaded page of clusters around
//! the cursor, the per-status counts. It answers commands with effects (load a page, open a
//! cluster, open the filter prompt, show the merges) and takes the pages back; which page
//! counts is decided by a generation number, so an older page arriving late is dropped.

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::{Effect, Env, PageRequest, Screen};
use crate::store::clusters::ClusterStatus;
use crate::store::decisions::{Decision, Undone, Verdict};
use crate::store::queue::{QueuePage, QueueQuery, QueueRow, StatusFilter};
use crate::ui::tui::keymap::Command;
use crate::ui::tui::overlays::{Overlay, Prompt, PromptKind};

/// Rows fetched per queue page; the screen shows a window of it.
const PAGE: u64 = 256;
/// Lines of chrome around the queue table (header, filter line, column titles, status, hints).
pub(crate) const QUEUE_CHROME: u16 = 5;

/// Per-status cluster counts, as the queue header shows them.
pub type Counts = Vec<(ClusterStatus, u64)>;

#[derive(Debug, Clone)]
pub struct QueueScreen {
    pub query: QueueQuery,
    /// Loaded rows, starting at `offset` in the filtered list.
    pub rows: Vec<QueueRow>,
    /// Why each loaded cluster was proposed, by id.
    pub reasons: HashMap<i64, String>,
    pub offset: u64,
    pub total: u64,
    pub counts: Counts,
    /// Absolute position of the selected row in the filtered list.
    pub cursor: u64,
    pub loading: bool,
    pub loaded_once: bool,
    /// When the rows were read: their ages are counted from it.
    pub now: DateTime<Utc>,
    generation: u64,
    /// The query when the filter prompt opened: a filter submitted with an unknown status
    /// goes back to it.
    before_prompt: Option<QueueQuery>,
}

/// A page read for the queue, as [`PageRequest`] asked for it.
#[derive(Debug)]
pub struct PageAnswer {
    pub generation: u64,
    pub page: Result<QueuePage>,
    pub open_index: Option<u64>,
    pub select_id: Option<i64>,
}

impl QueueScreen {
    pub fn new(now: DateTime<Utc>) -> QueueScreen {
        QueueScreen {
            query: QueueQuery::default(),
            rows: Vec::new(),
            reasons: HashMap::new(),
            offset: 0,
            total: 0,
            counts: Vec::new(),
            cursor: 0,
            loading: false,
            loaded_once: false,
            now,
            generation: 0,
            before_prompt: None,
        }
    }

    pub fn row(&self, index: u64) -> Option<&QueueRow> {
        index
            .checked_sub(self.offset)
            .and_then(|i| self.rows.get(i as usize))
    }

    /// The place in the queue of cluster `id`, when the loaded page holds it.
    pub fn index_of(&self, id: i64) -> Option<u64> {
        self.rows
            .iter()
            .position(|r| r.id == id)
            .map(|i| self.offset + i as u64)
    }

    /// The first page.
    pub fn start(&mut self) -> Vec<Effect> {
        vec![self.load_page(0, None, None)]
    }

    pub fn command(&mut self, cmd: Command, env: Env<'_>) -> Vec<Effect> {
        let total = self.total;
        let page = rows_visible(env.height);
        let last = total.saturating_sub(1);
        let cursor = self.cursor;
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
            self.cursor = to;
            return self.ensure_window(env.height).into_iter().collect();
        }
        match cmd {
            Command::Open if total > 0 => self.open(self.cursor),
            // An active filter is cleared before Esc ever quits.
            Command::Back if self.query != QueueQuery::default() => {
                self.query = QueueQuery {
                    sort: self.query.sort,
                    ..QueueQuery::default()
                };
                if self.query != QueueQuery::default() {
                    // Only the sort differs: there is no filter left to clear.
                    return vec![Effect::Quit];
                }
                self.cursor = 0;
                vec![
                    self.load_page(0, None, None),
                    Effect::Say("filter cleared".into()),
                ]
            }
            Command::Back => vec![Effect::Quit],
            Command::Filter => {
                let mut text = self.query.text.clone();
                if self.query.status != StatusFilter::default() {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(&format!("status:{}", self.query.status.label()));
                }
                self.before_prompt = Some(self.query.clone());
                vec![Effect::Open(Overlay::Prompt(Prompt {
                    kind: PromptKind::Filter,
                    text,
                }))]
            }
            Command::Sort => {
                self.query.sort = self.query.sort.next();
                self.cursor = 0;
                vec![self.load_page(0, None, None)]
            }
            Command::Status => {
                self.query.status = self.query.status.next();
                self.cursor = 0;
                vec![self.load_page(0, None, None)]
            }
            Command::Merges => vec![Effect::Show(Screen::Merges)],
            Command::BulkReject | Command::BulkDefer => {
                // Never the whole queue by one key: a bulk decision needs a selection.
                if self.query.text.trim().is_empty() && self.query.status == StatusFilter::Open {
                    return vec![Effect::Fail(
                        "filter first (/ or f): a bulk decision acts on the clusters a filter shows"
                            .into(),
                    )];
                }
                let verdict = if cmd == Command::BulkReject {
                    Verdict::Reject
                } else {
                    Verdict::Defer
                };
                let mut query = self.query.clone();
                query.offset = 0;
                vec![Effect::AskBulk { verdict, query }]
            }
            Command::Undo => vec![Effect::Undo],
            Command::Refresh => self.reload(env.height),
            Command::ApplyMerges => vec![Effect::AskToApply],
            _ => Vec::new(),
        }
    }

    /// The filter prompt's text, submitted: words to match and `status:NAME`. An unknown
    /// status is refused, and the filter goes back to what it was when the prompt opened.
    pub fn filter(&mut self, text: &str) -> Vec<Effect> {
        let before = self.before_prompt.take();
        match parse_filter(text) {
            Ok((status, words)) => self.set_filter(status, words).into_iter().collect(),
            Err(e) => {
                let mut fx: Vec<Effect> = before
                    .and_then(|q| self.set_filter(q.status, q.text))
                    .into_iter()
                    .collect();
                fx.push(Effect::Fail(e));
                fx
            }
        }
    }

    /// The filter prompt's text while it is typed: the queue filters again on every key. A
    /// status half typed (`status:appr`) leaves the filter as it was until it names one.
    pub fn filter_live(&mut self, text: &str) -> Vec<Effect> {
        match parse_filter(text) {
            Ok((status, words)) => self.set_filter(status, words).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Filter by `status` and `text`; a page to load when that changes the query.
    fn set_filter(&mut self, status: StatusFilter, text: String) -> Option<Effect> {
        if self.query.status == status && self.query.text == text {
            return None;
        }
        self.query.status = status;
        self.query.text = text;
        self.cursor = 0;
        Some(self.load_page(0, None, None))
    }

    /// Read the page under the cursor again, keeping the cursor on the same cluster.
    pub fn reload(&mut self, height: u16) -> Vec<Effect> {
        let select = self.row(self.cursor).map(|r| r.id);
        let h = rows_visible(height);
        let first = (self.cursor / h) * h;
        vec![self.load_page(first.saturating_sub(PAGE / 4), None, select)]
    }

    /// Open the cluster at `index`, fetching its page first when it is not loaded.
    pub fn open(&mut self, index: u64) -> Vec<Effect> {
        self.cursor = index;
        match self.row(index) {
            Some(row) => vec![Effect::OpenCluster {
                id: row.id,
                index: Some(index),
            }],
            None => vec![self.load_page(index.saturating_sub(PAGE / 4), Some(index), None)],
        }
    }

    /// Open the cluster after the one at `index`; back to the queue after the last one, or
    /// when the open cluster had no place in the queue.
    pub fn open_after(&mut self, index: Option<u64>) -> Vec<Effect> {
        let Some(index) = index else {
            return vec![Effect::Show(Screen::Queue)];
        };
        let next = index + 1;
        if next >= self.total {
            vec![
                Effect::Show(Screen::Queue),
                Effect::Say("that was the last cluster of the queue".into()),
            ]
        } else {
            self.open(next)
        }
    }

    /// A page arrived; opens the cluster it was read for, if one was asked.
    pub fn on_page(&mut self, answer: PageAnswer, now: DateTime<Utc>) -> Vec<Effect> {
        // Latest request wins: an older page arriving late is dropped.
        if answer.generation != self.generation {
            return Vec::new();
        }
        self.loading = false;
        let page = match answer.page {
            Ok(page) => page,
            Err(e) => return vec![Effect::Fail(format!("loading the queue: {e:#}"))],
        };
        self.now = now;
        self.loaded_once = true;
        self.offset = page.offset;
        self.rows = page.rows;
        self.reasons = page.reasons;
        self.total = page.total;
        self.counts = page.counts;
        if let Some(id) = answer.select_id
            && let Some(i) = self.index_of(id)
        {
            self.cursor = i;
        }
        self.cursor = self.cursor.min(self.total.saturating_sub(1));
        match answer.open_index {
            Some(i) => match self.row(i) {
                Some(row) => vec![Effect::OpenCluster {
                    id: row.id,
                    index: Some(i),
                }],
                None => vec![Effect::CloseCluster],
            },
            None => Vec::new(),
        }
    }

    /// A decision was saved: the counts and the cluster's row show it.
    pub fn on_decided(&mut self, d: &Decision, counts: Counts) {
        self.counts = counts;
        if let Some(status) = d.action.status() {
            self.set_status(d.cluster_id, status);
        }
    }

    /// A decision was undone; says which.
    pub fn on_undone(&mut self, u: &Undone, counts: Counts) -> Effect {
        self.counts = counts;
        let id = u.undone.cluster_id;
        self.set_status(id, u.status);
        Effect::Say(format!(
            "undid the {} of cluster #{id}; it is {} again",
            u.undone.action, u.status
        ))
    }

    fn set_status(&mut self, cluster: i64, status: ClusterStatus) {
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == cluster) {
            r.status = status;
        }
    }

    /// Load the page around the cursor when the visible window is not all loaded.
    fn ensure_window(&mut self, height: u16) -> Option<Effect> {
        let h = rows_visible(height);
        let first = (self.cursor / h) * h;
        let end = (first + h).min(self.total);
        let loaded_end = self.offset + self.rows.len() as u64;
        (first < self.offset || end > loaded_end)
            .then(|| self.load_page(first.saturating_sub(PAGE / 4), None, None))
    }

    fn load_page(
        &mut self,
        offset: u64,
        open_index: Option<u64>,
        select_id: Option<i64>,
    ) -> Effect {
        self.generation += 1;
        self.loading = true;
        let mut query = self.query.clone();
        query.offset = offset;
        query.limit = PAGE;
        Effect::LoadPage(PageRequest {
            generation: self.generation,
            query,
            open_index,
            select_id,
        })
    }
}

/// The words and the status of a filter's text.
fn parse_filter(text: &str) -> Result<(StatusFilter, String), String> {
    let mut status = StatusFilter::default();
    let mut words = Vec::new();
    for word in text.split_whitespace() {
        if let Some(s) = word.strip_prefix("status:") {
            status = match s {
                "open" => StatusFilter::Open,
                "all" | "" => StatusFilter::All,
                other => other
                    .parse::<ClusterStatus>()
                    .map(StatusFilter::Only)
                    .map_err(|e| format!("filter: {e} (use open, all or a status)"))?,
            };
        } else {
            words.push(word);
        }
    }
    Ok((status, words.join(" ")))
}

fn rows_visible(height: u16) -> u64 {
    u64::from(height.saturating_sub(QUEUE_CHROME).max(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::model::ObjectType;
    use crate::store::queue::SortKey;

    const ENV: Env<'static> = Env {
        height: 24,
        steward: "ada",
    };

    fn row(id: i64) -> QueueRow {
        QueueRow {
            id,
            object_type: ObjectType::Contacts,
            label: format!("cluster {id}"),
            status: ClusterStatus::Pending,
            score: 0.9,
            weakest: 0.8,
            size: 2,
            created_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    /// The answer to `request`: rows `offset..offset + n` of a queue of `total`.
    fn answer(request: &Effect, total: u64) -> PageAnswer {
        let Effect::LoadPage(req) = request else {
            panic!("not a page request: {request:?}");
        };
        let offset = req.query.offset;
        let end = (offset + req.query.limit).min(total);
        PageAnswer {
            generation: req.generation,
            page: Ok(QueuePage {
                offset,
                rows: (offset..end).map(|i| row(i as i64 + 1)).collect(),
                total,
                counts: vec![(ClusterStatus::Pending, total)],
                reasons: Default::default(),
            }),
            open_index: req.open_index,
            select_id: req.select_id,
        }
    }

    /// A queue of `total` clusters with its first page loaded.
    fn loaded(total: u64) -> QueueScreen {
        let mut q = QueueScreen::new(Utc::now());
        let start = q.start();
        assert!(q.loading);
        assert!(q.on_page(answer(&start[0], total), Utc::now()).is_empty());
        q
    }

    #[test]
    fn moving_within_the_page_loads_nothing_and_stops_at_the_ends() {
        let mut q = loaded(10);
        assert!(q.command(Command::Down, ENV).is_empty());
        assert_eq!(q.cursor, 1);
        assert!(q.command(Command::Bottom, ENV).is_empty());
        assert_eq!(q.cursor, 9);
        q.command(Command::Down, ENV);
        assert_eq!(q.cursor, 9);
        q.command(Command::Top, ENV);
        q.command(Command::Up, ENV);
        assert_eq!(q.cursor, 0);
    }

    #[test]
    fn moving_past_the_loaded_rows_asks_for_the_page_there() {
        let mut q = loaded(1000);
        let fx = q.command(Command::Bottom, ENV);
        let [Effect::LoadPage(req)] = fx.as_slice() else {
            panic!("{fx:?}");
        };
        assert!(req.query.offset <= 999 && 999 < req.query.offset + req.query.limit);
        q.on_page(answer(&fx[0], 1000), Utc::now());
        assert_eq!(q.row(999).unwrap().id, 1000);
    }

    #[test]
    fn only_the_latest_page_counts() {
        let mut q = loaded(10);
        let old = q.command(Command::Sort, ENV);
        let new = q.command(Command::Sort, ENV);
        q.on_page(answer(&new[0], 3), Utc::now());
        assert_eq!(q.total, 3);
        q.on_page(answer(&old[0], 10), Utc::now());
        assert_eq!(q.total, 3, "the older page is dropped");
        assert_eq!(q.query.sort, SortKey::default().next().next());
    }

    #[test]
    fn opening_a_loaded_row_opens_its_cluster_and_an_unloaded_one_reads_its_page_first() {
        let mut q = loaded(1000);
        q.command(Command::Down, ENV);
        assert_eq!(
            q.command(Command::Open, ENV),
            [Effect::OpenCluster {
                id: 2,
                index: Some(1)
            }]
        );
        let fx = q.open_after(Some(899));
        let [Effect::LoadPage(req)] = fx.as_slice() else {
            panic!("{fx:?}");
        };
        assert_eq!(req.open_index, Some(900));
        assert_eq!(
            q.on_page(answer(&fx[0], 1000), Utc::now()),
            [Effect::OpenCluster {
                id: 901,
                index: Some(900)
            }]
        );
    }

    #[test]
    fn after_the_last_cluster_the_queue_shows_again() {
        let mut q = loaded(3);
        assert_eq!(
            q.open_after(Some(2)),
            [
                Effect::Show(Screen::Queue),
                Effect::Say("that was the last cluster of the queue".into())
            ]
        );
        assert_eq!(q.open_after(None), [Effect::Show(Screen::Queue)]);
    }

    #[test]
    fn a_cluster_gone_from_its_page_closes_the_cluster_screen() {
        let mut q = loaded(5);
        let fx = q.open(4);
        assert!(matches!(fx[..], [Effect::OpenCluster { .. }]));
        // Re-matched meanwhile: the queue shrank before the page to open from was read.
        let fx = q.open(300);
        assert_eq!(
            q.on_page(answer(&fx[0], 5), Utc::now()),
            [Effect::CloseCluster]
        );
        assert_eq!(q.cursor, 4, "the cursor stays inside the queue");
    }

    #[test]
    fn the_filter_reads_words_and_a_status_and_refuses_an_unknown_status() {
        let mut q = loaded(10);
        let fx = q.filter("anna status:approved");
        let [Effect::LoadPage(req)] = fx.as_slice() else {
            panic!("{fx:?}");
        };
        assert_eq!(req.query.text, "anna");
        assert_eq!(
            req.query.status,
            StatusFilter::Only(ClusterStatus::Approved)
        );
        let fx = q.filter("status:bogus");
        assert!(
            matches!(&fx[..], [Effect::Fail(m)] if m.starts_with("filter: ")),
            "{fx:?}"
        );
        assert_eq!(q.query.text, "anna", "a bad filter changes nothing");
        // The prompt opens with the filter as it stands.
        assert_eq!(
            q.command(Command::Filter, ENV),
            [Effect::Open(Overlay::Prompt(Prompt {
                kind: PromptKind::Filter,
                text: "anna status:approved".into()
            }))]
        );
    }

    #[test]
    fn back_clears_a_filter_before_it_quits() {
        let mut q = loaded(10);
        q.filter("anna");
        let fx = q.command(Command::Back, ENV);
        assert!(matches!(&fx[..], [Effect::LoadPage(_), Effect::Say(m)] if m == "filter cleared"));
        assert_eq!(q.query, QueueQuery::default());
        assert_eq!(q.command(Command::Back, ENV), [Effect::Quit]);
    }

    #[test]
    fn reload_keeps_the_cursor_on_its_cluster() {
        let mut q = loaded(10);
        q.command(Command::Down, ENV);
        q.command(Command::Down, ENV);
        let fx = q.reload(ENV.height);
        let mut a = answer(&fx[0], 11);
        // A new cluster sorted in before the selected one.
        if let Ok(p) = a.page.as_mut() {
            p.rows.insert(0, row(99));
        }
        q.on_page(a, Utc::now());
        assert_eq!(q.row(q.cursor).unwrap().id, 3);
    }

    #[test]
    fn the_other_commands_become_effects() {
        let mut q = loaded(10);
        assert_eq!(
            q.command(Command::Merges, ENV),
            [Effect::Show(Screen::Merges)]
        );
        assert_eq!(q.command(Command::Undo, ENV), [Effect::Undo]);
        assert_eq!(q.command(Command::ApplyMerges, ENV), [Effect::AskToApply]);
        assert!(matches!(
            q.command(Command::Refresh, ENV)[..],
            [Effect::LoadPage(_)]
        ));
    }
}
