//! Read-only reports: `dupdesk export decisions|clusters`, `dupdesk lineage ID`, `dupdesk stats`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Ctx;
use crate::domain::model::ObjectType;
use crate::ops::export::{self, ClusterFilter, Filter, Format};
use crate::ops::stats::{self, Thresholds};
use crate::store::Store;

pub fn export_decisions(
    ctx: &Ctx,
    format: Option<Format>,
    out: Option<PathBuf>,
    filter: Filter,
) -> Result<()> {
    let format = Format::for_output(format, out.as_deref());
    let store = open_for_reading(ctx)?;
    let rows = store.call_blocking(move |c| export::rows(c, &filter))?;
    let n = write_out(out.as_deref(), |w| {
        export::write_columns(&rows, export::COLUMNS, format, w)
    })?;
    if let Some(path) = out {
        eprintln!(
            "exported {} to {}",
            crate::domain::words::count(n, "decision", "decisions"),
            crate::domain::sanitize::for_terminal(&path.display().to_string())
        );
    }
    Ok(())
}

pub fn export_clusters(
    ctx: &Ctx,
    format: Option<Format>,
    out: Option<PathBuf>,
    filter: ClusterFilter,
) -> Result<()> {
    let format = Format::for_output(format, out.as_deref());
    let store = open_for_reading(ctx)?;
    let rows = store.call_blocking(move |c| export::cluster_rows(c, &filter))?;
    let n = write_out(out.as_deref(), |w| {
        export::write_columns(&rows, export::CLUSTER_COLUMNS, format, w)
    })?;
    if let Some(path) = out {
        let clusters: std::collections::BTreeSet<_> = rows
            .iter()
            .filter_map(|r| r.0.get("cluster_id"))
            .map(|v| v.to_string())
            .collect();
        eprintln!(
            "exported {} ({}) to {}",
            crate::domain::words::count(clusters.len(), "cluster", "clusters"),
            crate::domain::words::count(n, "member record", "member records"),
            crate::domain::sanitize::for_terminal(&path.display().to_string())
        );
    }
    Ok(())
}

/// Run `write` on `out`, or on standard output. A file is written beside its target and
/// renamed, so a failed export never leaves half a file. On a terminal the export is shown
/// through the sanitizer (JSON Lines are safe already; CSV carries the values raw), while a
/// pipe or a file gets the data as it is.
fn write_out(
    out: Option<&std::path::Path>,
    write: impl FnOnce(&mut dyn Write) -> Result<usize>,
) -> Result<usize> {
    match out {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            let n = write(&mut f)?;
            f.flush()?;
            drop(f);
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
            Ok(n)
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let n = if lock.is_terminal() {
                let mut buf = Vec::new();
                let n = write(&mut buf)?;
                lock.write_all(export::for_terminal(&String::from_utf8_lossy(&buf)).as_bytes())?;
                n
            } else {
                write(&mut lock)?
            };
            lock.flush()?;
            Ok(n)
        }
    }
}

pub fn lineage(ctx: &Ctx, id: &str, object: Option<ObjectType>, json: bool) -> Result<()> {
    let store = open_for_reading(ctx)?;
    let sources = ctx.config.sources.clone();
    let id = id.to_string();
    let l = store.call_blocking(move |c| crate::ops::lineage::lineage(c, object, &id, &sources))?;
    if json {
        crate::outln!("{}", crate::domain::sanitize::json_pretty(&l)?);
    } else {
        crate::out!("{}", l.render_text());
    }
    Ok(())
}

pub fn stats(ctx: &Ctx, json: bool) -> Result<()> {
    let store = open_for_reading(ctx)?;
    let thresholds = Thresholds {
        record_count_change: ctx.config.alerts.record_count_change,
        duplicate_rate_change: ctx.config.alerts.duplicate_rate_change,
    };
    let s = store.call_blocking(move |c| stats::collect(c, thresholds))?;
    if json {
        crate::outln!("{}", crate::domain::sanitize::json_pretty(&s)?);
    } else {
        crate::out!("{}", s.render_text());
    }
    Ok(())
}

/// Opened only if it is a workspace already: a report on a mistyped path should say so, not
/// create a file.
pub fn open_existing_store(path: &std::path::Path) -> Result<Store> {
    Store::open_existing(path)
}

/// For the reports, which only read: a workspace this user may not write is read as it lies
/// on disk, with a note saying so.
pub fn open_for_reading(ctx: &Ctx) -> Result<Store> {
    let store = Store::open_for_reading(ctx.workspace_path())?;
    if store.read_only() {
        eprintln!(
            "dupdesk: note: {} cannot be written by this user; reading it as it is on disk",
            crate::domain::sanitize::for_terminal(&store.path().display().to_string())
        );
    }
    Ok(store)
}
