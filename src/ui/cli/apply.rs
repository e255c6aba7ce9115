//! `dupdesk apply [--dry-run] [--limit N] [--retry-failed]`: execute approved merges without the
//! TUI, with a progress bar on stderr and one line per finished or failed job on stdout. The
//! TUI's background task runs the same executor.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use super::connect::connect;
use crate::ops::executor::{self, ExecEvent, ExecOptions};
use crate::store::journal;

pub struct ApplyArgs {
    pub dry_run: bool,
    pub limit: Option<usize>,
    pub retry_failed: bool,
    pub concurrency: usize,
}

pub async fn run(ctx: &Ctx, args: ApplyArgs) -> Result<()> {
    let store = super::open_existing(ctx)?;
    if args.dry_run {
        let lines = executor::dry_run(&store, args.limit).await?;
        if lines.is_empty() {
            crate::outln!("nothing to apply: no approved cluster without a merge job");
        }
        for l in lines {
            crate::outln!("{}", crate::domain::sanitize::for_terminal(&l));
        }
        return Ok(());
    }
    if args.retry_failed {
        let n = store.call(|c| journal::retry_failed(c, None)).await?;
        eprintln!("{n} failed or paused jobs queued again");
    }
    let conn = connect(&ctx.config, &store).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} merge jobs [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let total = store
        .call(|c| Ok(journal::runnable_jobs(c, None)?.len()))
        .await?;
    bar.set_length(total as u64);
    let events = {
        let bar = bar.clone();
        Arc::new(move |e: ExecEvent| match e {
            ExecEvent::Planned { jobs } => bar.inc_length(jobs as u64),
            ExecEvent::JobMerged {
                job,
                cluster,
                survivor,
                mapping,
            } => {
                bar.inc(1);
                say(
                    &bar,
                    format!(
                        "merged  job {job} cluster {cluster}: survivor {} ({})",
                        crate::domain::sanitize::for_terminal(&survivor),
                        crate::domain::sanitize::for_terminal(&mapping)
                    ),
                );
            }
            ExecEvent::JobFailed {
                job,
                cluster,
                error,
            } => {
                bar.inc(1);
                say(
                    &bar,
                    format!(
                        "FAILED  job {job} cluster {cluster}: {}",
                        crate::domain::sanitize::for_terminal(&error)
                    ),
                );
            }
            ExecEvent::Paused { job, reason } => {
                say(
                    &bar,
                    format!(
                        "PAUSED  job {job}: {}",
                        crate::domain::sanitize::for_terminal(&reason)
                    ),
                );
            }
            ExecEvent::JobRefused {
                job,
                cluster,
                stale,
                reason,
            } => {
                bar.inc(1);
                say(
                    &bar,
                    format!(
                        "REFUSED job {job} cluster {cluster}, now {}: {}; nothing was sent, review it again",
                        if stale { "stale" } else { "needs attention" },
                        crate::domain::sanitize::for_terminal(&reason)
                    ),
                );
            }
            ExecEvent::StepDone { job, seq, kind, .. } => {
                bar.set_message(format!("job {job} step {seq} {}", kind.as_str()));
            }
            ExecEvent::CrmUnreachable { reason, wait } => {
                say(
                    &bar,
                    format!(
                        "WAITING the CRM does not answer ({}); no merge starts until it does; next try in {} s",
                        crate::domain::sanitize::for_terminal(&reason),
                        wait.as_secs().max(1)
                    ),
                );
            }
            ExecEvent::CrmBack => say(&bar, "the CRM answers again; merges go on".into()),
            ExecEvent::JobStarted { .. } => {}
        })
    };
    let opts = ExecOptions {
        concurrency: args.concurrency,
        limit: args.limit,
        ..ExecOptions::default()
    };
    let report = executor::apply(&store, conn.crm.clone(), &ctx.config, opts, events).await;
    bar.finish_and_clear();
    conn.close().await;
    let report = report?;
    crate::outln!(
        "apply: {} merged, {} failed, {} sent back for review{}",
        report.merged,
        report.failed,
        report.refused,
        if report.paused {
            "; paused by the CRM's daily limit (run apply again tomorrow)"
        } else {
            ""
        }
    );
    if report.failed > 0 {
        anyhow::bail!(
            "{} merge jobs failed; see the lines above: fix the cause and run `dupdesk apply --retry-failed`, or amend the values of a job whose merges ran with `dupdesk amend JOB`",
            report.failed
        );
    }
    if report.refused > 0 {
        anyhow::bail!(
            "{} approved clusters were sent back for review before any merge (see the lines above); `dupdesk review` shows why",
            report.refused
        );
    }
    Ok(())
}

/// A line about one job: above the progress bar on a terminal, and when there is no bar
/// (cron, CI, `> log`) on standard output, where the summary's "see the lines above" finds it.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        crate::outln!("{line}");
    } else {
        bar.println(line);
    }
}
