//! `dupdesk review`: open the review TUI on the workspace, with a background task that runs
//! the approved merges when the steward asks (`A`), through the same executor as `dupdesk
//! apply`, reporting to the status bar. Logs go to the log file, never to the terminal the TUI
//! draws on.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::ops::executor::{self, ExecEvent, ExecOptions, ExecReport};
use crate::store::{Store, journal};
use crate::ui::tui::{Progress, Stage};

pub fn review(config: &Config) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(review_async(config))
}

/// The review on an existing runtime (the demo's).
pub async fn review_async(config: &Config) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("dupdesk review needs an interactive terminal (stdin and stdout are not one)");
    }
    let path = config.workspace.path.clone();
    let store = Store::open_existing(&path)?;
    let log = crate::logging::init(config)?;
    tracing::info!(workspace = %path.display(), "review started");
    let (ask, asks) = mpsc::unbounded_channel();
    let (progress, progress_rx) = mpsc::channel(64);
    let worker = tokio::spawn(merge_worker(store.clone(), config.clone(), asks, progress));
    let result = crate::ui::tui::run_with_merges(store, config, Some(progress_rx), Some(ask))
        .await
        .with_context(|| format!("the review (log: {})", log.display()));
    // A merge in flight is journaled step by step: stopping here is as safe as a crash, and
    // the next `apply` (or `A`) resumes it.
    worker.abort();
    result
}

/// Runs the approved merges each time the steward asks; repeated asks during a run collapse.
async fn merge_worker(
    store: Store,
    config: Config,
    mut asks: mpsc::UnboundedReceiver<()>,
    progress: mpsc::Sender<Progress>,
) {
    while asks.recv().await.is_some() {
        while asks.try_recv().is_ok() {}
        let end = match run_merges(&store, &config, &progress).await {
            Ok(r) => Progress {
                stage: Stage::Done,
                done: r.merged as u64,
                total: Some((r.merged + r.failed + r.refused) as u64),
                message: format!(
                    "merges: {} merged, {} failed, {} sent back for review{}",
                    r.merged,
                    r.failed,
                    r.refused,
                    if r.paused {
                        "; paused by the CRM's daily limit"
                    } else {
                        ""
                    }
                ),
            },
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "merges from the review failed");
                Progress {
                    stage: Stage::Failed,
                    done: 0,
                    total: None,
                    message: format!("merges: {e:#}"),
                }
            }
        };
        if progress.send(end).await.is_err() {
            break;
        }
    }
}

async fn run_merges(
    store: &Store,
    config: &Config,
    progress: &mpsc::Sender<Progress>,
) -> Result<ExecReport> {
    let conn = super::connect::connect(config, store).await?;
    let queued = store
        .call(|c| {
            Ok(journal::runnable_jobs(c, None)?.len()
                + journal::unplanned_approvals(c, None)?.len())
        })
        .await? as u64;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let events = {
        let progress = progress.clone();
        Arc::new(move |e: ExecEvent| {
            let (finished, message) = match e {
                ExecEvent::JobMerged {
                    cluster, survivor, ..
                } => (true, format!("cluster {cluster} merged into {survivor}")),
                ExecEvent::JobFailed { cluster, error, .. } => {
                    (true, format!("cluster {cluster} failed: {error}"))
                }
                ExecEvent::JobRefused {
                    cluster, reason, ..
                } => (
                    true,
                    format!("cluster {cluster} sent back for review, nothing sent: {reason}"),
                ),
                ExecEvent::Paused { reason, .. } => (false, reason),
                ExecEvent::CrmUnreachable { reason, wait } => (
                    false,
                    format!(
                        "the CRM does not answer ({reason}); merges wait, next try in {} s",
                        wait.as_secs().max(1)
                    ),
                ),
                ExecEvent::CrmBack => (false, "the CRM answers again".to_string()),
                ExecEvent::StepDone { job, seq, kind, .. } => {
                    (false, format!("job {job} step {seq} {}", kind.as_str()))
                }
                ExecEvent::Planned { .. } | ExecEvent::JobStarted { .. } => return,
            };
            let n = if finished {
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
            } else {
                done.load(std::sync::atomic::Ordering::SeqCst)
            };
            // The status bar shows the latest; a full channel only drops an intermediate line.
            let _ = progress.try_send(Progress {
                stage: Stage::Merging,
                done: n,
                total: Some(queued),
                message,
            });
        })
    };
    let report = executor::apply(
        store,
        conn.crm.clone(),
        config,
        ExecOptions::default(),
        events,
    )
    .await;
    conn.close().await;
    report
}
