//! The merges screen's state: the approved clusters and their merge jobs as the journal holds
//! them, and the cursor. Retry is offered for a job that failed or paused; the journal decides
//! what a retry does.

use anyhow::Result;

use super::{Effect, Env, Screen};
use crate::store::clusters::JobStatus;
use crate::store::queue::MergeRow;
use crate::ui::tui::keymap::Command;

#[derive(Debug, Clone, Default)]
pub struct MergesScreen {
    pub rows: Vec<MergeRow>,
    pub cursor: usize,
    pub loading: bool,
}

impl MergesScreen {
    /// Read the rows again.
    pub fn load(&mut self) -> Vec<Effect> {
        self.loading = true;
        vec![Effect::LoadMerges]
    }

    pub fn command(&mut self, cmd: Command, env: Env<'_>) -> Vec<Effect> {
        let last = self.rows.len().saturating_sub(1);
        let c = self.cursor;
        let step = usize::from(env.height.saturating_sub(8).max(1));
        match cmd {
            Command::Up => self.cursor = c.saturating_sub(1),
            Command::Down => self.cursor = (c + 1).min(last),
            Command::PageUp => self.cursor = c.saturating_sub(step),
            Command::PageDown => self.cursor = (c + step).min(last),
            Command::Top => self.cursor = 0,
            Command::Bottom => self.cursor = last,
            Command::Back => return vec![Effect::Show(Screen::Queue)],
            Command::Refresh => return self.load(),
            Command::ApplyMerges => return vec![Effect::AskToApply],
            // To see a job's cluster, or amend the values of one whose update failed.
            Command::Open => {
                return self
                    .rows
                    .get(c)
                    .map(|r| Effect::OpenCluster {
                        id: r.cluster_id,
                        index: None,
                    })
                    .into_iter()
                    .collect();
            }
            Command::Retry => return vec![self.retry()],
            _ => {}
        }
        Vec::new()
    }

    fn retry(&self) -> Effect {
        match self.rows.get(self.cursor).and_then(|r| r.job.as_ref()) {
            Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Paused) => {
                Effect::Retry(j.id)
            }
            Some(j) => Effect::Fail(format!(
                "merge job {} is {}; only failed jobs are retried",
                j.id, j.status
            )),
            None => Effect::Fail("this cluster has no merge job yet".into()),
        }
    }

    pub fn on_loaded(&mut self, rows: Result<Vec<MergeRow>>) -> Vec<Effect> {
        self.loading = false;
        match rows {
            Ok(rows) => {
                self.cursor = self.cursor.min(rows.len().saturating_sub(1));
                self.rows = rows;
                Vec::new()
            }
            Err(e) => vec![Effect::Fail(format!("loading merges: {e:#}"))],
        }
    }

    /// The journal answered a retry of job `id`: whether it was still failed.
    pub fn on_retried(&mut self, id: i64, result: Result<bool>) -> Vec<Effect> {
        match result {
            Ok(true) => {
                let mut fx = vec![Effect::Say(format!("merge job {id} queued again"))];
                fx.extend(self.load());
                fx
            }
            Ok(false) => vec![Effect::Fail(format!("merge job {id} was no longer failed"))],
            Err(e) => vec![Effect::Fail(format!("retry: {e:#}"))],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::clusters::ClusterStatus;
    use crate::store::queue::MergeJobRow;

    const ENV: Env<'static> = Env {
        height: 24,
        steward: "ada",
    };

    fn row(cluster_id: i64, job: Option<(i64, JobStatus)>) -> MergeRow {
        MergeRow {
            cluster_id,
            label: format!("cluster {cluster_id}"),
            cluster_status: ClusterStatus::Approved,
            size: 2,
            job: job.map(|(id, status)| MergeJobRow {
                id,
                status,
                attempts: 1,
                survivor_id: None,
                last_error: None,
                updated_at: "2024-01-01T00:00:00Z".into(),
                steps_done: 0,
                steps: 3,
                failed_step: None,
            }),
        }
    }

    fn loaded() -> MergesScreen {
        let mut m = MergesScreen::default();
        assert_eq!(m.load(), [Effect::LoadMerges]);
        assert!(m.loading);
        let rows = vec![
            row(1, Some((10, JobStatus::Failed))),
            row(2, Some((11, JobStatus::Merged))),
            row(3, None),
        ];
        assert!(m.on_loaded(Ok(rows)).is_empty());
        assert!(!m.loading);
        m
    }

    #[test]
    fn only_a_failed_or_paused_job_is_retried() {
        let mut m = loaded();
        assert_eq!(m.command(Command::Retry, ENV), [Effect::Retry(10)]);
        m.command(Command::Down, ENV);
        let fx = m.command(Command::Retry, ENV);
        assert!(
            matches!(&fx[..], [Effect::Fail(t)] if t.contains("only failed jobs")),
            "{fx:?}"
        );
        m.command(Command::Bottom, ENV);
        assert_eq!(
            m.command(Command::Retry, ENV),
            [Effect::Fail("this cluster has no merge job yet".into())]
        );
    }

    #[test]
    fn a_retry_queued_reloads_the_rows() {
        let mut m = loaded();
        assert_eq!(
            m.on_retried(10, Ok(true)),
            [
                Effect::Say("merge job 10 queued again".into()),
                Effect::LoadMerges
            ]
        );
        assert_eq!(
            m.on_retried(10, Ok(false)),
            [Effect::Fail("merge job 10 was no longer failed".into())]
        );
    }

    #[test]
    fn fewer_rows_pull_the_cursor_in() {
        let mut m = loaded();
        m.command(Command::Bottom, ENV);
        assert_eq!(m.cursor, 2);
        m.on_loaded(Ok(vec![row(1, None)]));
        assert_eq!(m.cursor, 0);
    }

    #[test]
    fn the_other_commands_become_effects() {
        let mut m = loaded();
        m.command(Command::Down, ENV);
        assert_eq!(
            m.command(Command::Open, ENV),
            [Effect::OpenCluster { id: 2, index: None }]
        );
        assert_eq!(m.command(Command::Back, ENV), [Effect::Show(Screen::Queue)]);
        assert_eq!(m.command(Command::ApplyMerges, ENV), [Effect::AskToApply]);
        assert_eq!(m.command(Command::Refresh, ENV), [Effect::LoadMerges]);
    }
}
