//! `dupdesk mapping import FILE | rebuild | show ID | conflicts`: the id mapping table and
//! the cross-system conflicts the steward must settle. Every command that changes mappings
//! checks the ids it may have left shared by several live records before it commits.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::Ctx;
use crate::model::ObjectType;
use crate::sanitize::for_terminal;
use crate::store::mapping::{self, Conflict, Link, Observed, SharedCheck};
use crate::store::now_ts;

/// Show every row in which `id` appears, oldest first, with what superseded what, then the
/// conflicts that name it. `--json` prints the rows only, as it always has.
pub fn show(ctx: &Ctx, id: &str, json: bool) -> Result<()> {
    let store = super::open_existing(ctx)?;
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
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let id = for_terminal(&id);
    if rows.is_empty() {
        println!("no id mapping mentions {id}");
    } else {
        print_rows(&id, rows);
    }
    if !conflicts.is_empty() {
        println!("mapping conflicts naming {id}:");
        for c in &conflicts {
            println!("  {}", conflict_line(c));
        }
    }
    Ok(())
}

/// `dupdesk mapping conflicts [--all] [--json]`: the open conflicts (or every one), oldest
/// first. A fresh demo workspace has over a hundred, so the list is often piped into `head`:
/// a reader that stops early ends the listing quietly.
pub fn list_conflicts(ctx: &Ctx, all: bool, json: bool) -> Result<()> {
    use std::fmt::Write as _;
    let store = super::open_existing(ctx)?;
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
        (Some(at), Some(why)) => format!("resolved {at}: {}", for_terminal(why)),
        (Some(at), None) => format!("resolved {at}"),
    };
    format!(
        "#{:<5} {:<13} {} ({state}{})",
        c.id,
        c.kind.as_str(),
        for_terminal(&c.summary()),
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
    println!("id mapping history of {id}:");
    for r in rows {
        println!(
            "  #{:<5} {} {}:{} -> {}:{}  {}  created {} by {}{}{}{}",
            r.id,
            r.object_type,
            r.source_system,
            crate::sanitize::for_terminal(&r.source_id),
            r.target_system,
            crate::sanitize::for_terminal(&r.target_id),
            if r.active { "active" } else { "inactive" },
            r.created_at,
            r.created_by,
            r.deactivated_at
                .as_deref()
                .map(|d| format!(", deactivated {d}"))
                .unwrap_or_default(),
            r.superseded_by
                .map(|s| format!(", superseded by #{s}"))
                .unwrap_or_default(),
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", crate::sanitize::for_terminal(&r.note))
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

/// Read `source_system,source_id,target_system,target_id[,object_type]` rows; any bad row
/// refuses the whole file, naming its line and column.
fn read_file(path: &Path, default_object: ObjectType) -> Result<Vec<FileRow>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("reading mapping file {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: line 1: header", path.display()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let required = ["source_system", "source_id", "target_system", "target_id"];
    let mut idx = Vec::new();
    for name in required {
        idx.push(col(name).with_context(|| {
            format!(
                "{}: line 1: no column {name} (expected {}[,object_type])",
                path.display(),
                required.join(",")
            )
        })?);
    }
    let object_col = col("object_type");
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow::anyhow!("{}: line {line}: {e}", path.display())
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: usize, name: &str| -> Result<String> {
            let v = rec.get(i).unwrap_or("").trim();
            if v.is_empty() {
                bail!("{}: line {line}, column {name}: empty", path.display());
            }
            Ok(v.to_string())
        };
        let object_type = match object_col {
            Some(i) => rec.get(i).unwrap_or("").parse().map_err(|e: String| {
                anyhow::anyhow!("{}: line {line}, column object_type: {e}", path.display())
            })?,
            None => default_object,
        };
        rows.push(FileRow {
            line,
            object_type,
            source_system: get(idx[0], "source_system")?,
            source_id: get(idx[1], "source_id")?,
            target_system: get(idx[2], "target_system")?,
            target_id: get(idx[3], "target_id")?,
        });
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
            bail!(
                "{}: line {}: {}:{} is mapped to {} twice (first on line {first})",
                path.display(),
                r.line,
                r.source_system,
                r.source_id,
                r.target_system
            );
        }
    }
    Ok(rows)
}

/// Import a mapping file in one transaction, with a check of every id of the object types it
/// names for records now sharing one (a file can move rows off ids as well as onto them).
pub fn import(ctx: &Ctx, path: &Path, object: ObjectType) -> Result<()> {
    let rows = read_file(path, object)?;
    let store = super::open_existing(ctx)?;
    let (new, changed, unchanged, shared) = store.call_blocking(move |c| {
        let tx = c.transaction()?;
        let now = now_ts();
        let (mut new, mut changed, mut unchanged) = (0, 0, 0);
        for r in &rows {
            let link = Link {
                object_type: r.object_type,
                source_system: &r.source_system,
                source_id: &r.source_id,
                target_system: &r.target_system,
                target_id: &r.target_id,
            };
            match mapping::observe(&tx, &link, "import", &now)? {
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
    println!(
        "mapping import: {new} new, {changed} changed (old rows superseded), {unchanged} unchanged"
    );
    if let Some(line) = shared_line(&shared) {
        println!("{line}");
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
    let (new, changed, dropped, shared) = store
        .call(move |c| {
            let tx = c.transaction()?;
            let now = now_ts();
            let (mut new, mut changed, mut dropped) = (0, 0, 0);
            let mut with_target = std::collections::HashSet::new();
            for (object, id, target) in &seen {
                if let Some(t) = target {
                    with_target.insert((*object, id.clone()));
                    let link = Link {
                        object_type: *object,
                        source_system: &system,
                        source_id: id,
                        target_system: &other,
                        target_id: t,
                    };
                    match mapping::observe(&tx, &link, "rebuild", &now)? {
                        Observed::New => new += 1,
                        Observed::Changed => changed += 1,
                        Observed::Unchanged => {}
                    }
                }
            }
            for object in ObjectType::ALL {
                for row in mapping::active_rows(&tx, object)? {
                    if row.source_system == system
                        && row.target_system == other
                        && !with_target.contains(&(object, row.source_id.clone()))
                    {
                        mapping::deactivate(
                            &tx,
                            row.id,
                            &now,
                            "no inverse id in the CRM at rebuild",
                        )?;
                        dropped += 1;
                    }
                }
            }
            let mut shared = SharedCheck::default();
            for object in ObjectType::ALL {
                shared.add(mapping::check_all_shared_targets(&tx, object, &now)?);
            }
            tx.commit()?;
            Ok((new, changed, dropped, shared))
        })
        .await?;
    println!(
        "mapping rebuild: {new} new, {changed} changed, {dropped} deactivated (no inverse id in the CRM)"
    );
    if let Some(line) = shared_line(&shared) {
        println!("{line}");
    }
    Ok(())
}
