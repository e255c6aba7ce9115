//! `dupdesk import FILE.csv [--object contacts|companies] [--map "Header=property"]...
//! [--system NAME]`: a CRM export into the workspace, with a progress bar on a terminal. It may
//! create the workspace, but a refused file leaves no trace: not even an empty workspace. The
//! progress bar runs twice over the file: once while every row is checked, once while the rows
//! are written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::domain::model::ObjectType;
use crate::domain::sanitize::for_terminal as t;
use crate::ops::import::{self, ImportOptions, ImportProgress};
use crate::store::Store;

pub fn run(
    ctx: &Ctx,
    file: &Path,
    object: ObjectType,
    maps: &[String],
    system: &str,
    delimiter: u8,
) -> Result<()> {
    let mut opts = ImportOptions::new(object, system);
    opts.delimiter = delimiter;
    opts.config_columns = ctx.config.import.columns.clone();
    for m in maps {
        opts.add_override(m)?;
    }
    opts.inverse_id = Some((
        ctx.config.mapping.inverse_id_property.clone(),
        ctx.config.mapping.other_system.clone(),
    ));
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("checking {}", t(&file.display().to_string())));
        bar
    } else {
        ProgressBar::hidden()
    };
    let path = ctx.workspace_path();
    let fresh = Fresh::before(&path);
    let store = Store::open_or_create(&path)?;
    let shown = t(&file.display().to_string()).to_string();
    let report = import::import_csv(&store, file, &opts, &|p| match p {
        ImportProgress::Checking { bytes } => bar.set_position(bytes),
        ImportProgress::Writing { bytes } => {
            // Once: the bar starts again for the second pass over the file.
            if bar.message().starts_with("checking") {
                bar.set_message(format!("writing {shown}"));
            }
            bar.set_position(bytes);
        }
    });
    bar.finish_and_clear();
    let report = match (report, fresh) {
        (Ok(report), _) => report,
        (Err(e), Some(fresh)) => {
            if let Err(cleanup) = fresh.remove(store) {
                tracing::warn!(error = %format!("{cleanup:#}"), "removing the workspace a refused import created");
            }
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    crate::outln!(
        "imported {}: {} {object}, {} new, {} updated, {} unchanged (system {})",
        t(&file.display().to_string()),
        crate::domain::words::count(report.rows, "row of", "rows of"),
        report.stats.inserted,
        report.stats.updated,
        report.stats.unchanged,
        t(system)
    );
    if let Some(earlier) = &report.completes {
        crate::outln!("this completes an earlier import: {}", t(earlier));
    }
    if report.mappings_new + report.mappings_changed > 0 {
        crate::outln!(
            "id mappings: {} new, {} changed",
            report.mappings_new,
            report.mappings_changed
        );
    }
    if let Some(line) = super::mapping::shared_line(&report.shared_targets) {
        crate::outln!("{line}");
    }
    if !report.ignored.is_empty() {
        // The headers are the file's own text.
        crate::outln!(
            "ignored columns (map them with --map \"HEADER=property\"): {}",
            t(&report.ignored.join(", "))
        );
    }
    Ok(())
}

/// A workspace this command is about to create: its file and the folders above it that do not
/// exist yet, to take away again if the command fails.
pub(super) struct Fresh {
    path: PathBuf,
    /// Deepest first.
    folders: Vec<PathBuf>,
}

impl Fresh {
    /// `None` when there is something at `path` already (then nothing is ever removed).
    pub(super) fn before(path: &Path) -> Option<Fresh> {
        if path.exists() || path.is_symlink() {
            return None;
        }
        let mut folders = Vec::new();
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            folders.push(d.to_path_buf());
            dir = d.parent();
        }
        Some(Fresh {
            path: path.to_path_buf(),
            folders,
        })
    }

    /// Close the store and remove what was created: the file, the WAL and its index, and the
    /// folders, each only if empty (something else may have been put there meanwhile).
    pub(super) fn remove(self, store: Store) -> Result<()> {
        store.close()?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", p.display()));
                }
                _ => {}
            }
        }
        for d in &self.folders {
            let _ = std::fs::remove_dir(d);
        }
        Ok(())
    }
}
