//! `dupdesk match`: run the built-in matcher over the workspace (incrementally when it can),
//! or import the clusters of an external matcher with `--clusters FILE` (a file proposing no
//! cluster only with `--allow-empty`). Prints what changed in the review queue; progress goes to
//! stderr.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Ctx, open_existing};
use crate::domain::matcher::{MatchConfig, MatchProgress};
use crate::domain::model::ObjectType;
use crate::domain::words::count;
use crate::ops::external_clusters::EmptyFile;
use crate::ops::matching::{MatchMode, MatchReport};

/// The object types to match: the one asked for, else every type with a matcher schema.
fn objects(ctx: &Ctx, object: Option<ObjectType>) -> Vec<ObjectType> {
    match object {
        Some(o) => vec![o],
        None => ObjectType::ALL
            .into_iter()
            .filter(|o| match o {
                ObjectType::Contacts => ctx.config.matcher.contacts.is_some(),
                ObjectType::Companies => ctx.config.matcher.companies.is_some(),
            })
            .collect(),
    }
}

pub fn run(
    ctx: &Ctx,
    clusters: Option<&Path>,
    empty: EmptyFile,
    object: Option<ObjectType>,
    full: bool,
    json: bool,
) -> Result<()> {
    let store = open_existing(ctx)?;
    if let Some(file) = clusters {
        let object = object.unwrap_or(ObjectType::Contacts);
        let report = crate::ops::external_clusters::import_clusters(&store, file, object, empty)?;
        if json {
            crate::outln!("{}", crate::domain::sanitize::json_pretty(&report)?);
        } else {
            crate::outln!(
                "{object}: imported {} from {} ({} format, {}; {} skipped, {} split for not-duplicates)",
                count(report.clusters, "cluster", "clusters"),
                crate::domain::sanitize::for_terminal(&file.display().to_string()),
                report.format.as_str(),
                count(report.rows, "row", "rows"),
                count(report.singletons, "single record", "single records"),
                report.split
            );
            let a = report.applied;
            crate::outln!(
                "queue: {} new, {} changed, {} unchanged, {} stale, {} removed",
                a.new,
                a.changed,
                a.unchanged,
                a.stale,
                a.removed
            );
        }
        return Ok(());
    }
    let mode = if full {
        MatchMode::Full
    } else {
        MatchMode::Auto
    };
    let mut reports = Vec::new();
    for object in objects(ctx, object) {
        let cfg = MatchConfig::new(&ctx.config.matcher, object)?;
        reports.push(run_one(&store, &cfg, mode)?);
    }
    if json {
        crate::outln!("{}", crate::domain::sanitize::json_pretty(&reports)?);
    } else {
        for r in &reports {
            print_report(r);
        }
    }
    Ok(())
}

fn run_one(store: &crate::store::Store, cfg: &MatchConfig, mode: MatchMode) -> Result<MatchReport> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let object = cfg.object;
    let t0 = std::time::Instant::now();
    let progress = |p: MatchProgress| {
        // The phases and when each began, in the log, for a run slower than expected.
        tracing::info!(%object, phase = ?p, elapsed_s = t0.elapsed().as_secs_f64(), "match phase");
        let msg = match p {
            MatchProgress::Loading => format!("{object}: reading the workspace"),
            MatchProgress::Normalizing => format!("{object}: reading and normalizing the records"),
            MatchProgress::Blocking { rules } => format!("{object}: blocking ({rules} rules)"),
            MatchProgress::Estimating { rule, rules } => {
                format!("{object}: estimating weights, rule {rule} of {rules}")
            }
            MatchProgress::Scoring { candidate_pairs } => {
                format!("{object}: scored {candidate_pairs} candidate pairs")
            }
            MatchProgress::Clustering { links } => format!("{object}: clustering {links} links"),
            MatchProgress::Writing { clusters } => format!("{object}: writing {clusters} clusters"),
            MatchProgress::Written { changes, of } => {
                format!("{object}: writing clusters, {changes} of {of} changes written")
            }
        };
        bar.set_message(msg);
    };
    let report = crate::ops::matching::run_match(store, cfg, mode, &progress);
    bar.finish_and_clear();
    report
}

fn print_report(r: &MatchReport) {
    crate::outln!(
        "{}: {} match of {} ({} changed) in {:.1}s",
        r.object,
        r.mode,
        count(r.records, "record", "records"),
        r.changed_records,
        r.elapsed.as_secs_f64()
    );
    crate::outln!(
        "  {} compared, {} linked; {} ({}) compared by sorted window",
        count(r.candidate_pairs, "candidate pair", "candidate pairs"),
        r.linked_pairs,
        count(r.windowed_blocks, "large block", "large blocks"),
        count(r.records_in_windowed_blocks, "record", "records")
    );
    crate::outln!(
        "  {} clusters: {} new, {} changed, {} unchanged, {} stale, {} removed; flagged: {} oversized, {} split, {} weak",
        r.clusters,
        r.clusters_new,
        r.clusters_changed,
        r.clusters_unchanged,
        r.clusters_stale,
        r.clusters_removed,
        r.flagged_oversized,
        r.flagged_split,
        r.flagged_weak
    );
    for w in &r.warnings {
        crate::outln!("  warning: {}", crate::domain::sanitize::for_terminal(w));
    }
    if let Some(earlier) = &r.completes {
        crate::outln!(
            "  this run completes an earlier one: {}",
            crate::domain::sanitize::for_terminal(earlier)
        );
    }
    if r.model_fitted {
        crate::outln!(
            "  weights estimated from the data{}",
            if r.labelled_pairs > 0 {
                format!(" and {} steward-approved pairs", r.labelled_pairs)
            } else {
                String::new()
            }
        );
    }
}
