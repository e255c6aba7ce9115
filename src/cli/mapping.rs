//! `dupdesk mapping import FILE | rebuild | show ID`: the id mapping table.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::Ctx;
use crate::model::ObjectType;
use crate::sanitize::for_terminal as t;
use crate::store::mapping::{self, Link, Observed};
use crate::store::{Store, now_ts};

/// Show every row in which `id` appears, oldest first, with what superseded what.
pub fn show(ctx: &Ctx, id: &str, json: bool) -> Result<()> {
    let store = super::open_existing(ctx)?;
    let id = id.to_string();
    let rows = {
        let id = id.clone();
        store.call_blocking(move |c| mapping::rows_for_id(c, &id))?
    };
    if json {
        println!("{}", crate::sanitize::json_pretty(&rows)?);
        return Ok(());
    }
    // Every part of a row may come from a mapping file or the CRM: all of it is sanitized.
    if rows.is_empty() {
        println!("no id mapping mentions {}", t(&id));
        return Ok(());
    }
    println!("id mapping history of {}:", t(&id));
    for r in rows {
        println!(
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
    Ok(())
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

/// Import a mapping file in one transaction.
pub fn import(ctx: &Ctx, path: &Path, object: ObjectType) -> Result<()> {
    let rows = read_file(path, object)?;
    let store = Store::open(ctx.workspace_path())?;
    let (new, changed, unchanged) = store.call_blocking(move |c| {
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
        tx.commit()?;
        Ok((new, changed, unchanged))
    })?;
    println!(
        "mapping import: {new} new, {changed} changed (old rows superseded), {unchanged} unchanged"
    );
    Ok(())
}

/// Rebuild the active rows from the CRM: every record's inverse-id property is observed (new
/// links added, changed ones superseded), and active rows of records that no longer carry one,
/// or no longer exist, are deactivated. One transaction at the end, so a failed read changes
/// nothing.
pub async fn rebuild(ctx: &Ctx) -> Result<()> {
    let store = Store::open(ctx.workspace_path())?;
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
    let (new, changed, dropped) = store
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
                        tx.execute(
                            "UPDATE id_mapping SET active = 0, deactivated_at = ?2,
                                    note = 'no inverse id in the CRM at rebuild' WHERE id = ?1",
                            rusqlite::params![row.id, now],
                        )?;
                        dropped += 1;
                    }
                }
            }
            tx.commit()?;
            Ok((new, changed, dropped))
        })
        .await?;
    println!(
        "mapping rebuild: {new} new, {changed} changed, {dropped} deactivated (no inverse id in the CRM)"
    );
    Ok(())
}
