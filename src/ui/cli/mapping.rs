//! `dupdesk mapping import FILE | rebuild | show ID | conflicts`: the id mapping table and
//! the cross-system conflicts the steward must settle. Every command that changes mappings
//! checks the ids it may have left shared by several live records before it commits, and an
//! import refuses a file whole for one row the workspace cannot vouch for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Ctx;
use crate::domain::model::ObjectType;
use crate::domain::sanitize::for_terminal;
use crate::domain::sanitize::for_terminal as t;
use crate::input::{BadId, CsvRecords, RecordError, check_id, quote};
use crate::store::mapping::{self, Conflict, End, Link, Observed, SharedCheck};
use crate::store::now_ts;

/// Show every row in which `id` appears, oldest first, with what superseded what, then the
/// conflicts that name it. `--json` prints the rows only, as it always has.
pub fn show(ctx: &Ctx, id: &str, json: bool) -> Result<()> {
    let store = super::report::open_for_reading(ctx)?;
    let id = id.to_string();
    let (rows, conflicts) = {
        let id = id.clone();
        store.call_blocking(move |c| {
            Ok((
                mapping::rows_for_id(c, &id)?,
                mapping::conflicts_for_id(c, &id)?,
            ))
        })?
    };
    // Nothing known of the id is an error, as it is for `lineage`: a script can tell.
    if rows.is_empty() && conflicts.is_empty() {
        anyhow::bail!("no id mapping mentions {}", t(&id));
    }
    if json {
        crate::outln!("{}", crate::domain::sanitize::json_pretty(&rows)?);
        return Ok(());
    }
    let id = t(&id);
    if rows.is_empty() {
        crate::outln!("no id mapping mentions {id}");
    } else {
        print_rows(&id, rows);
    }
    if !conflicts.is_empty() {
        crate::outln!("mapping conflicts naming {id}:");
        for c in &conflicts {
            crate::outln!("  {}", conflict_line(c));
        }
    }
    Ok(())
}

/// `dupdesk mapping conflicts [--all] [--json]`: the open conflicts (or every one), oldest
/// first. A fresh demo workspace has over a hundred, so the list is often piped into `head`:
/// a reader that stops early ends the listing quietly.
pub fn list_conflicts(ctx: &Ctx, all: bool, json: bool) -> Result<()> {
    use std::fmt::Write as _;
    let store = super::report::open_for_reading(ctx)?;
    let conflicts = store.call_blocking(move |c| mapping::conflicts(c, all))?;
    let mut out = String::new();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&conflicts)?)?;
    } else if conflicts.is_empty() {
        writeln!(
            out,
            "no {}mapping conflicts",
            if all { "" } else { "open " }
        )?;
    } else {
        let open = conflicts.iter().filter(|c| c.is_open()).count();
        let resolved = if all {
            format!(", {} resolved", conflicts.len() - open)
        } else {
            String::new()
        };
        writeln!(out, "{open} open mapping conflicts{resolved}:")?;
        for c in &conflicts {
            writeln!(out, "  {}", conflict_line(c))?;
        }
    }
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `#12    shared_target erp:ERP-1 is the id of 2 live crm contacts: 1001, 1005 (open since ...)`
fn conflict_line(c: &Conflict) -> String {
    let state = match (&c.resolved_at, &c.resolution) {
        (None, _) => format!("open since {}", c.created_at),
        (Some(at), Some(why)) => format!("resolved {at}: {}", t(why)),
        (Some(at), None) => format!("resolved {at}"),
    };
    format!(
        "#{:<5} {:<13} {} ({state}{})",
        c.id,
        c.kind.as_str(),
        t(&c.summary()),
        c.job_id
            .map(|j| format!(", merge job {j}"))
            .unwrap_or_default()
    )
}

/// What a check changed, for the line a command prints after it; None when nothing did.
pub(super) fn shared_line(check: &SharedCheck) -> Option<String> {
    if check.is_empty() {
        return None;
    }
    Some(format!(
        "ids shared by several live records: {} new, {} changed, {} no longer shared (see `dupdesk mapping conflicts`)",
        check.opened, check.changed, check.resolved
    ))
}

fn print_rows(id: &str, rows: Vec<mapping::MappingRow>) {
    crate::outln!("id mapping history of {id}:");
    for r in rows {
        crate::outln!(
            "  #{:<5} {} {}:{} -> {}:{}  {}  created {} by {}{}{}{}",
            r.id,
            r.object_type,
            t(&r.source_system),
            t(&r.source_id),
            t(&r.target_system),
            t(&r.target_id),
            if r.active { "active" } else { "inactive" },
            t(&r.created_at),
            t(&r.created_by),
            r.deactivated_at
                .as_deref()
                .map(|d| format!(", deactivated {}", t(d)))
                .unwrap_or_default(),
            r.superseded_by
                .map(|s| format!(", superseded by #{s}"))
                .unwrap_or_default(),
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", t(&r.note))
            }
        );
    }
}

/// One row of a mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileRow {
    line: u64,
    object_type: ObjectType,
    source_system: String,
    source_id: String,
    target_system: String,
    target_id: String,
}

impl FileRow {
    fn link(&self) -> Link<'_> {
        Link {
            object_type: self.object_type,
            source_system: &self.source_system,
            source_id: &self.source_id,
            target_system: &self.target_system,
            target_id: &self.target_id,
        }
    }
}

/// A mapping file refused whole, with where in it and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: line {line}{}: {message} (nothing was imported)", path.display(), column.map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct FileError {
    pub path: PathBuf,
    pub line: u64,
    pub column: Option<&'static str>,
    pub message: String,
}

const COLUMNS: [&str; 4] = ["source_system", "source_id", "target_system", "target_id"];

/// Read `source_system,source_id,target_system,target_id[,object_type]` rows, within
/// [`crate::input`]'s bounds; any bad row refuses the whole file, naming its line and column.
/// Systems and ids must pass [`check_id`]: the other system's ids cannot be checked against
/// anything in the workspace, only their form. A source mapped twice to one system, or a system
/// mapped to itself, is refused too.
fn read_file(path: &Path, default_object: ObjectType) -> Result<Vec<FileRow>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("reading mapping file {}", path.display()))?;
    let err = |line: u64, column: Option<&'static str>, message: String| FileError {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let record_err = |e: RecordError| err(e.line().unwrap_or(0), None, e.message());
    let mut reader = CsvRecords::new(&mut csv::ReaderBuilder::new(), file);
    let headers = reader.headers().map_err(record_err)?;
    let col = |name: &str| {
        headers.iter().position(|h| {
            h.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(name)
        })
    };
    let mut idx = [0; 4];
    for (i, name) in COLUMNS.into_iter().enumerate() {
        idx[i] = col(name).ok_or_else(|| {
            err(
                1,
                None,
                format!(
                    "no column {name} (expected {}[,object_type])",
                    COLUMNS.join(",")
                ),
            )
        })?;
    }
    let object_col = col("object_type");
    let mut rows = Vec::new();
    let mut rec = csv::StringRecord::new();
    while reader.read(&mut rec).map_err(record_err)? {
        let line = rec.position().map_or(0, |p| p.line());
        let get = |i: usize| -> Result<String, FileError> {
            let name = COLUMNS[i];
            let v = rec.get(idx[i]).unwrap_or("").trim();
            check_id(v).map_err(|bad| {
                let message = match bad {
                    BadId::Empty => "empty".to_string(),
                    bad => format!(
                        "{} {} {bad}",
                        if name.ends_with("_system") {
                            "system"
                        } else {
                            "id"
                        },
                        quote(v)
                    ),
                };
                err(line, Some(name), message)
            })?;
            Ok(v.to_string())
        };
        let object_type = match object_col {
            Some(i) => {
                let raw = rec.get(i).unwrap_or("");
                raw.parse().map_err(|_: String| {
                    err(
                        line,
                        Some("object_type"),
                        format!("object type {} is not contacts or companies", quote(raw)),
                    )
                })?
            }
            None => default_object,
        };
        let row = FileRow {
            line,
            object_type,
            source_system: get(0)?,
            source_id: get(1)?,
            target_system: get(2)?,
            target_id: get(3)?,
        };
        if row.source_system == row.target_system {
            return Err(err(
                line,
                None,
                format!("maps {} to itself", for_terminal(&row.source_system)),
            )
            .into());
        }
        rows.push(row);
    }
    let mut seen = std::collections::HashMap::new();
    for r in &rows {
        let key = (
            r.object_type,
            &r.source_system,
            &r.source_id,
            &r.target_system,
        );
        if let Some(first) = seen.insert(key, r.line) {
            return Err(err(
                r.line,
                None,
                format!(
                    "{}:{} is mapped to {} twice (first on line {first})",
                    for_terminal(&r.source_system),
                    quote(&r.source_id),
                    for_terminal(&r.target_system)
                ),
            )
            .into());
        }
    }
    Ok(rows)
}

/// Import a mapping file in one transaction. Every id of a system whose records the workspace
/// holds must be a live record of it first: an old export must not bring back the rows of an id
/// merged away since (they moved to the survivor with the merge), nor map ids no record has.
/// Then every id of the object types the file names is checked for records now sharing one (a
/// file can move rows off ids as well as onto them).
pub fn import(ctx: &Ctx, path: &Path, object: ObjectType) -> Result<()> {
    let rows = read_file(path, object)?;
    let store = super::open_existing(ctx)?;
    let file = path.to_path_buf();
    let (new, changed, unchanged, shared) = store.call_blocking(move |c| {
        // Immediate: the records checked are the records written against, whatever else runs.
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let systems = mapping::record_systems(&tx)?;
        for r in &rows {
            for (end, column) in [(End::Source, "source_id"), (End::Target, "target_id")] {
                if let Some(why) = mapping::vouch(&tx, &r.link(), end, &systems)? {
                    return Err(FileError {
                        path: file.clone(),
                        line: r.line,
                        column: Some(column),
                        message: why.to_string(),
                    }
                    .into());
                }
            }
        }
        let now = now_ts();
        let (mut new, mut changed, mut unchanged) = (0, 0, 0);
        for r in &rows {
            match mapping::observe(&tx, &r.link(), "import", &now)? {
                Observed::New => new += 1,
                Observed::Changed => changed += 1,
                Observed::Unchanged => unchanged += 1,
            }
        }
        let objects: BTreeSet<ObjectType> = rows.iter().map(|r| r.object_type).collect();
        let mut shared = SharedCheck::default();
        for object in objects {
            shared.add(mapping::check_all_shared_targets(&tx, object, &now)?);
        }
        tx.commit()?;
        Ok((new, changed, unchanged, shared))
    })?;
    crate::outln!(
        "mapping import: {new} new, {changed} changed (old rows superseded), {unchanged} unchanged"
    );
    if let Some(line) = shared_line(&shared) {
        crate::outln!("{line}");
    }
    Ok(())
}

/// Rebuild the active rows from the CRM: every record's inverse-id property is observed (new
/// links added, changed ones superseded), and active rows of records that no longer carry one,
/// or no longer exist, are deactivated, and every id is checked for records sharing it. One
/// transaction at the end, so a failed read changes nothing.
pub async fn rebuild(ctx: &Ctx) -> Result<()> {
    let store = super::open_existing(ctx)?;
    let conn = super::connect::connect(&ctx.config, &store).await?;
    let inverse = ctx.config.mapping.inverse_id_property.clone();
    let other = ctx.config.mapping.other_system.clone();
    let system = conn.crm.system().to_string();
    let mut seen: Vec<(ObjectType, String, Option<String>)> = Vec::new();
    for object in ObjectType::ALL {
        let mut after: Option<String> = None;
        loop {
            let page = conn
                .crm
                .list_page(
                    object,
                    after.as_deref(),
                    std::slice::from_ref(&inverse),
                    &[],
                )
                .await
                .with_context(|| format!("listing {object}"))?;
            for r in page.records {
                let target = r.get(&inverse).map(str::to_string);
                seen.push((object, r.id, target));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    conn.close().await;
    let mapping::Rebuilt {
        new,
        changed,
        dropped,
        shared,
    } = store
        .call(move |c| mapping::rebuild(c, &system, &other, &seen, &now_ts()))
        .await?;
    crate::outln!(
        "mapping rebuild: {new} new, {changed} changed, {dropped} deactivated (no inverse id in the CRM)"
    );
    if let Some(line) = shared_line(&shared) {
        crate::outln!("{line}");
    }
    Ok(())
}
