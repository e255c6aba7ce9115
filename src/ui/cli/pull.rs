//! `dupdesk pull`: every configured object type from the workspace's CRM into the workspace,
//! incrementally after the first run, with a progress line on stderr.

use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use super::connect::connect;
use crate::ops::sync::{self, PullProgress, PullReport};
use crate::store::Store;

pub async fn run(ctx: &Ctx) -> Result<()> {
    let path = ctx.workspace_path();
    let fresh = super::import::Fresh::before(&path);
    let store = Store::open_or_create(&path)?;
    let pulled = async {
        let conn = connect(&ctx.config, &store).await?;
        let report = pull_with_progress(ctx, &store, &conn).await;
        conn.close().await;
        report
    }
    .await;
    match (pulled, fresh) {
        (Ok(report), _) => {
            print_report(&report);
            Ok(())
        }
        // A first pull that got nothing (no token, a wrong one, no CRM there) leaves no empty
        // workspace behind; one that got some pages keeps them, and the next pull goes on.
        (Err(e), Some(fresh)) => {
            let records = store
                .call(|c| crate::store::reports::record_count(c))
                .await
                .unwrap_or(1);
            if records == 0
                && let Err(cleanup) = fresh.remove(store)
            {
                eprintln!("dupdesk: warning: the new empty workspace was not removed: {cleanup:#}");
            }
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Pull with a spinner on stderr (hidden when stderr is not a terminal).
pub async fn pull_with_progress(
    ctx: &Ctx,
    store: &Store,
    conn: &super::connect::CrmConnection,
) -> Result<PullReport> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = {
        let bar = bar.clone();
        move |p: PullProgress| match p {
            PullProgress::Started {
                object,
                incremental,
            } => bar.set_message(format!(
                "pulling {object} ({})",
                if incremental {
                    "changes since last pull"
                } else {
                    "all records"
                }
            )),
            PullProgress::Fetched { object, so_far } => {
                bar.set_message(format!("pulling {object}: {so_far} read"))
            }
            PullProgress::Finished { object, pull } => bar.println(format!(
                "{object}: {} read, {} new, {} updated, {} unchanged",
                pull.fetched, pull.stats.inserted, pull.stats.updated, pull.stats.unchanged
            )),
        }
    };
    let report = sync::pull(store, conn.crm.as_ref(), &ctx.config, &progress).await;
    bar.finish_and_clear();
    report
}

pub fn print_report(report: &PullReport) {
    let t = report.total();
    crate::outln!(
        "pulled: {} new, {} updated, {} unchanged",
        t.inserted,
        t.updated,
        t.unchanged
    );
    for (object, p) in &report.objects {
        if let Some(Err(e)) = &p.property_definitions {
            crate::outln!(
                "{object}: the CRM's property definitions could not be read ({}); merges stop at their checks until they can (a HubSpot private app needs the crm.schemas.{object}.read scope)",
                crate::domain::sanitize::for_terminal(e)
            );
        }
        if p.merged_away > 0 || p.mappings_new > 0 || p.mappings_changed > 0 {
            crate::outln!(
                "{object}: {} merged away in the CRM, {} new id mappings, {} changed",
                p.merged_away,
                p.mappings_new,
                p.mappings_changed
            );
        }
        if p.archived > 0 || p.clusters_dissolved > 0 {
            println!(
                "{object}: {} archived in the CRM, {} open clusters dissolved",
                p.archived, p.clusters_dissolved
            );
        }
        if let Some(line) = super::mapping::shared_line(&p.shared_targets) {
            crate::outln!("{object}: {line}");
        }
    }
}
