//! `dupdesk import FILE.csv [--object contacts|companies] [--map "Header=property"]...
//! [--system NAME]`: a CRM export into the workspace, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::import::{self, ImportOptions};
use crate::model::ObjectType;
use crate::sanitize::for_terminal as t;
use crate::store::Store;

pub fn run(
    ctx: &Ctx,
    file: &Path,
    object: ObjectType,
    maps: &[String],
    system: &str,
) -> Result<()> {
    let mut opts = ImportOptions::new(object, system);
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
        bar.set_message(format!("importing {}", t(&file.display().to_string())));
        bar
    } else {
        ProgressBar::hidden()
    };
    let store = Store::open(ctx.workspace_path())?;
    let report = import::import_csv(&store, file, &opts, &|bytes| bar.set_position(bytes));
    bar.finish_and_clear();
    let report = report?;
    println!(
        "imported {}: {} {object} rows, {} new, {} updated, {} unchanged (system {})",
        t(&file.display().to_string()),
        report.rows,
        report.stats.inserted,
        report.stats.updated,
        report.stats.unchanged,
        t(system)
    );
    if report.mappings_new + report.mappings_changed > 0 {
        println!(
            "id mappings: {} new, {} changed",
            report.mappings_new, report.mappings_changed
        );
    }
    if let Some(line) = super::mapping::shared_line(&report.shared_targets) {
        println!("{line}");
    }
    if !report.ignored.is_empty() {
        // The headers are the file's own text.
        println!(
            "ignored columns (map them with --map \"HEADER=property\"): {}",
            t(&report.ignored.join(", "))
        );
    }
    Ok(())
}
