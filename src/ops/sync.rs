//! Getting records from a CRM into the workspace. The first pull of an object type lists every
//! record with its property history; later pulls ask only for records modified since the last
//! watermark (paged by key, so nothing edited meanwhile makes another record skip) and
//! batch-read with history those whose `updatedAt` differs from the workspace's: a record the
//! look-back window or a page seam brings again is neither read nor written again. They also
//! page the CRM's archived records and mark the live ones the workspace holds archived, which
//! dissolves the open clusters they were in. Each page is written in its own transaction, so
//! an interrupted pull keeps what it got and a re-run is harmless (upserts are idempotent); the
//! watermark moves only when a pull of that type completes, to the moment that pull started
//! minus `[pull] lookback_seconds` (HubSpot's search index lags writes; a watermark taken from
//! the newest record seen would pass over a write the index did not show yet). Progress is
//! reported through a callback: no terminal types here, and no shared mutable state with a UI.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::Utc;

use crate::config::Config;
use crate::crm::Connector;
use crate::domain::model::{ObjectType, Record, format_ts};
use crate::store::mapping::{self, Link, SharedCheck};
use crate::store::records::{self, UpsertStats};
use crate::store::{Store, now_ts, sync_state};

/// How a pull of one object type went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectPull {
    pub incremental: bool,
    pub fetched: u64,
    pub stats: UpsertStats,
    /// Records newly known to have been merged away (from `hs_merged_object_ids`).
    pub merged_away: u64,
    /// Records a modified-since listing gave again that the workspace holds at that version
    /// (the look-back window, page seams): not read again.
    pub skipped: u64,
    /// Live records the CRM lists as archived, now marked archived.
    pub archived: u64,
    /// Open clusters that dissolved because a member was archived.
    pub clusters_dissolved: u64,
    pub mappings_new: u64,
    pub mappings_changed: u64,
    /// How many property definitions the CRM gave (cached for the review's and the
    /// executor's checks), or why it gave none.
    pub property_definitions: Option<Result<usize, String>>,
    /// Ids in the other system that live records newly share, or no longer share.
    pub shared_targets: SharedCheck,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    pub objects: BTreeMap<ObjectType, ObjectPull>,
}

impl PullReport {
    pub fn total(&self) -> UpsertStats {
        let mut t = UpsertStats::default();
        for o in self.objects.values() {
            t.add(o.stats);
        }
        t
    }
}

/// What the pull is doing, for a progress bar or a status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    Started {
        object: ObjectType,
        incremental: bool,
    },
    Fetched {
        object: ObjectType,
        so_far: u64,
    },
    Finished {
        object: ObjectType,
        pull: ObjectPull,
    },
}

/// Pull every configured object type from `crm` into `store`.
pub async fn pull(
    store: &Store,
    crm: &dyn Connector,
    config: &Config,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PullReport> {
    let mut report = PullReport::default();
    for object in ObjectType::ALL {
        if !config.objects.contains_key(object.as_str()) {
            continue;
        }
        let mut pull = pull_object(store, crm, config, object, progress)
            .await
            .with_context(|| format!("pulling {object}"))?;
        pull.property_definitions = refresh_properties(store, crm, object).await?;
        progress(PullProgress::Finished {
            object,
            pull: pull.clone(),
        });
        report.objects.insert(object, pull);
    }
    store
        .call(|c| crate::ops::stats::record_rate_at_pull(c))
        .await?;
    Ok(report)
}

/// Read the CRM's property definitions of `object` into the workspace's cache. A CRM that
/// cannot describe them, or a token without the scope to read them, does not fail the pull:
/// the report says so, and the executor asks again (and stops) before any merge.
async fn refresh_properties(
    store: &Store,
    crm: &dyn Connector,
    object: ObjectType,
) -> Result<Option<Result<usize, String>>> {
    match crm.properties(object).await {
        Ok(defs) => {
            let n = defs.len();
            store
                .call(move |c| crate::store::properties::save(c, object, &defs, &now_ts()))
                .await?;
            Ok(Some(Ok(n)))
        }
        Err(crate::crm::CrmError::Unsupported { .. }) => Ok(None),
        Err(e) => {
            tracing::warn!(object = %object, error = %e, "property definitions not read");
            Ok(Some(Err(e.to_string())))
        }
    }
}

async fn pull_object(
    store: &Store,
    crm: &dyn Connector,
    config: &Config,
    object: ObjectType,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<ObjectPull> {
    let source = crm.system().to_string();
    let properties = config.properties(object);
    let watermark = {
        let (source, object) = (source.clone(), object);
        store
            .call(move |c| sync_state::watermark(c, &source, object))
            .await?
    };
    let incremental = watermark.is_some();
    // Taken before the first request: whatever is written from here on is after it. The wall
    // clock, not the store's: the watermark is compared with the CRM's modification times.
    let started = Utc::now();
    let next_watermark = i64::try_from(config.pull.lookback_seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|lookback| started.checked_sub_signed(lookback))
        .map(|t| format_ts(&t))
        .with_context(|| {
            format!(
                "[pull] lookback_seconds = {} reaches before any time this program can represent",
                config.pull.lookback_seconds
            )
        })?;
    progress(PullProgress::Started {
        object,
        incremental,
    });
    let mut out = ObjectPull {
        incremental,
        ..ObjectPull::default()
    };
    let mut after: Option<String> = None;
    loop {
        let (records, next) = match &watermark {
            None => {
                let page = crm
                    .list_page(object, after.as_deref(), &properties, &properties)
                    .await?;
                (page.records, page.next)
            }
            Some(since) => {
                let page = crm
                    .modified_since_page(object, since, after.as_deref(), &[])
                    .await?;
                // Search results carry no history: read again with it those the workspace
                // does not hold at this version.
                let listed: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
                let held = store
                    .call(move |c| records::held_versions(c, object, &listed))
                    .await?;
                let mut ids: Vec<String> = Vec::new();
                for r in &page.records {
                    let version = r.updated_at.as_ref().map(format_ts);
                    let same = version.is_some() && held.get(&r.id) == Some(&version);
                    if same || ids.contains(&r.id) {
                        out.skipped += 1;
                    } else {
                        ids.push(r.id.clone());
                    }
                }
                let read = if ids.is_empty() {
                    Vec::new()
                } else {
                    crm.batch_read(object, &ids, &properties, &properties)
                        .await?
                        .found
                };
                (read, page.next)
            }
        };
        out.fetched += records.len() as u64;
        let page_result = write_page(store, config, &source, object, records).await?;
        out.stats.add(page_result.stats);
        out.merged_away += page_result.merged_away;
        out.mappings_new += page_result.mappings_new;
        out.mappings_changed += page_result.mappings_changed;
        out.shared_targets.add(page_result.shared_targets);
        progress(PullProgress::Fetched {
            object,
            so_far: out.fetched,
        });
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if incremental {
        let (archived, dissolved) = mark_archived(store, crm, config, object).await?;
        out.archived = archived;
        out.clusters_dissolved = dissolved;
    }
    let (fetched, stats) = (out.fetched, out.stats);
    store
        .call(move |c| {
            sync_state::record_run(
                c,
                &source,
                object,
                Some(&next_watermark),
                sync_state::Watermark::Replace,
                &now_ts(),
                stats.inserted + stats.updated,
            )
        })
        .await?;
    tracing::info!(object = %object, fetched, skipped = out.skipped, inserted = stats.inserted, updated = stats.updated, archived = out.archived, "pull finished");
    Ok(out)
}

/// Page the CRM's archived records and mark those the workspace holds live as archived, one
/// page per transaction, then dissolve the open clusters with an archived member (also one the
/// executor sent back because a member no longer exists). HubSpot's archived list cannot be
/// filtered by time (and search never shows archived records), so the whole list is paged:
/// HubSpot keeps archived records for 90 days, which bounds it. Returns (records archived,
/// clusters dissolved).
async fn mark_archived(
    store: &Store,
    crm: &dyn Connector,
    config: &Config,
    object: ObjectType,
) -> Result<(u64, u64)> {
    let source = crm.system().to_string();
    let other = config.mapping.other_system.clone();
    let mut archived = 0;
    let mut after: Option<String> = None;
    loop {
        let page = match crm.archived_page(object, after.as_deref()).await {
            Ok(page) => page,
            Err(crate::crm::CrmError::Unsupported { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        let ids: Vec<String> = page.records.into_iter().map(|r| r.id).collect();
        let (source, other) = (source.clone(), other.clone());
        archived += store
            .call(move |c| {
                let now = now_ts();
                let tx = c.transaction()?;
                // The ids in the other system these records pointed to may now be shared by
                // one live record only.
                let touched = mapping::active_targets(&tx, object, &source, &ids, &other)?;
                let mut rids = Vec::new();
                for id in &ids {
                    rids.extend(records::mark_archived(&tx, object, id)?);
                }
                if !rids.is_empty() {
                    mapping::check_shared_targets(&tx, object, &source, &other, &touched, &now)?;
                }
                tx.commit()?;
                Ok(rids.len() as u64)
            })
            .await?;
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let dissolved = store
        .call(move |c| {
            let tx = c.transaction()?;
            let n = crate::ops::matching::dissolve_with_archived_members(&tx, object, &now_ts())?;
            tx.commit()?;
            Ok(n)
        })
        .await?;
    Ok((archived, dissolved))
}

/// Write one page in one transaction: the records, the merges they reveal, the id mappings
/// their inverse-id property carries, and the conflicts of the ids in the other system whose
/// live records this page may have changed. Checked per page rather than once at the end so
/// that the cost follows what changed (an incremental pull of ten records checks ten ids, not
/// the whole table) and an interrupted pull leaves conflicts that agree with what it wrote.
async fn write_page(
    store: &Store,
    config: &Config,
    source: &str,
    object: ObjectType,
    records: Vec<Record>,
) -> Result<ObjectPull> {
    let source = source.to_string();
    let inverse = config.mapping.inverse_id_property.clone();
    let other = config.mapping.other_system.clone();
    store
        .call(move |c| {
            let now = now_ts();
            let tx = c.transaction()?;
            let mut out = ObjectPull {
                stats: records::upsert_records(&tx, &source, &records, &now)?,
                ..ObjectPull::default()
            };
            // The ids the page's records and the records it shows merged away point to before
            // this page: a record that moved off an id, or was merged away, may leave it
            // shared by one record only.
            let mut involved: Vec<String> = Vec::new();
            for r in &records {
                involved.push(r.id.clone());
                involved.extend(absorbed_ids(r).map(str::to_string));
            }
            let mut touched = mapping::active_targets(&tx, object, &source, &involved, &other)?;
            for r in &records {
                for old in absorbed_ids(r) {
                    if old != r.id
                        && records::get_record(&tx, r.object_type, old)?
                            .is_some_and(|s| s.merged_into.as_deref() != Some(r.id.as_str()))
                    {
                        records::mark_merged(&tx, r.object_type, old, &r.id)?;
                        out.merged_away += 1;
                    }
                }
                // The survivor of a merge whose records mapped to different ids is the
                // steward's to settle (`dupdesk mapping resolve`): what the CRM shows for it
                // (the primary's id, kept by the merge) is not taken for a choice.
                let held =
                    mapping::open_merge_conflict(&tx, r.object_type, &source, &r.id, &other)?
                        .is_some();
                if let Some(target) = r.get(&inverse).filter(|_| !held) {
                    touched.push(target.to_string());
                    let link = Link {
                        object_type: r.object_type,
                        source_system: &source,
                        source_id: &r.id,
                        target_system: &other,
                        target_id: target,
                    };
                    match mapping::observe(&tx, &link, "pull", &now)? {
                        mapping::Observed::New => out.mappings_new += 1,
                        mapping::Observed::Changed => out.mappings_changed += 1,
                        mapping::Observed::Unchanged => {}
                    }
                }
            }
            out.shared_targets =
                mapping::check_shared_targets(&tx, object, &source, &other, &touched, &now)?;
            tx.commit()?;
            Ok(out)
        })
        .await
}

/// The ids a record says were merged into it (HubSpot's `hs_merged_object_ids`).
fn absorbed_ids(r: &Record) -> impl Iterator<Item = &str> {
    r.get("hs_merged_object_ids")
        .unwrap_or("")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
