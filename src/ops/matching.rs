//! Matching against the workspace: read the live records, the steward's decisions and the
//! clusters already proposed; run the matcher (fully, or only around the records changed since
//! the last run); and write the result back so the review queue stays true:
//!
//! - a cluster is identified by a fingerprint of its sorted member ids, so one whose members
//!   did not change keeps its row, its status and its history;
//! - a cluster whose members changed takes over the row of the old cluster it overlaps most; if
//!   that one had been reviewed it becomes `stale` and returns to the queue;
//! - a reviewed cluster whose member records changed after the decision becomes `stale`;
//! - a pending cluster that no longer forms is removed (or marked stale with the flag
//!   `dissolved` when decisions already refer to it);
//! - pairs in `not_duplicates` are never put together, and approved clusters teach the model.
//!
//! Clusters being merged or already merged or failed are left to the executor.
//!
//! A run writes its clusters in chunks of about 200 ms ([`crate::store::chunks`]), pausing
//! between them so that a steward's decision waits for one chunk and not for the whole write
//! (136,000 clusters at a million contacts take seconds). What each chunk leaves, and how the
//! next run completes a run killed between two, is in [`run_match_with`].
//!
//! The statements it runs are the store's ([`crate::store::matches`]); this module decides
//! what to write, the algorithms stay in the other modules.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;
use rusqlite::Connection;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::matcher::cluster::{self, Cluster, Edge};
use crate::domain::matcher::em::Model;
use crate::domain::matcher::features::Table;
use crate::domain::matcher::schema::{FieldKind, MatchConfig};
use crate::domain::matcher::{
    Blocks, MatchProgress, Scorer, fit_model, limits, link, probability, weight_of,
};
use crate::domain::model::{ObjectType, Record};
use crate::store::chunks::{self, Chunk, ChunkPolicy, RunMarker};
use crate::store::clusters::{self, ClusterStatus, Reason};
pub use crate::store::matches::PlannedCluster;
use crate::store::matches::{self, Current, Existing};
use crate::store::{Store, delete_meta, get_meta, now_ts, set_meta};

/// Whether to redo everything or only what changed since the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    /// Incremental when a model fitted for this schema and a watermark exist, else full.
    #[default]
    Auto,
    /// Re-fit the model and re-score every candidate pair.
    Full,
}

/// What a matcher run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MatchReport {
    pub object: String,
    /// "full" or "incremental".
    pub mode: String,
    pub records: usize,
    /// Records changed since the last run (all of them in a full run).
    pub changed_records: usize,
    /// Distinct record pairs compared.
    pub candidate_pairs: u64,
    /// Compared pairs at or above the threshold.
    pub linked_pairs: u64,
    /// Blocks compared by sorted window for their size, and the records in them.
    pub windowed_blocks: u64,
    pub records_in_windowed_blocks: u64,
    pub model_fitted: bool,
    /// Steward-confirmed pairs the model learnt from.
    pub labelled_pairs: u64,
    pub clusters: usize,
    pub clusters_new: usize,
    /// Clusters whose members changed while they were still pending.
    pub clusters_changed: usize,
    pub clusters_unchanged: usize,
    pub clusters_stale: usize,
    pub clusters_removed: usize,
    pub flagged_oversized: usize,
    pub flagged_split: usize,
    pub flagged_weak: usize,
    /// Transactions the clusters were written in.
    pub write_chunks: u64,
    /// An earlier run interrupted between its chunks, which this one completed: what it had
    /// done.
    pub completes: Option<String>,
    /// What the user should know about the configuration, the data or the fit: a field no
    /// record has, values that could not be read, no records at all, an unconverged estimation.
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// What [`apply_clusters`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyStats {
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub stale: usize,
    pub removed: usize,
}

/// The fingerprint of a member set: SHA-256 of the sorted record ids, one per line.
pub fn fingerprint<S: AsRef<str>>(ids: &[S]) -> String {
    let mut sorted: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    hex::encode(Sha256::digest(sorted.join("\n").as_bytes()))
}

fn model_key(object: ObjectType) -> String {
    format!("matcher.model.{object}")
}

fn watermark_key(object: ObjectType) -> String {
    format!("matcher.watermark.{object}")
}

/// What a run reads besides the records themselves.
struct Loaded {
    model: Option<Model>,
    watermark: Option<String>,
    not_duplicates: Vec<(String, String)>,
    existing: Vec<Existing>,
}

fn load(conn: &Connection, object: ObjectType) -> Result<Loaded> {
    let model = get_meta(conn, &model_key(object))?
        .and_then(|json| serde_json::from_str::<Model>(&json).ok());
    let watermark = get_meta(conn, &watermark_key(object))?;
    let not_duplicates = matches::not_duplicates(conn, object)?;
    let existing = matches::existing_clusters(conn, object)?;
    Ok(Loaded {
        model,
        watermark,
        not_duplicates,
        existing,
    })
}

/// The live records as the matcher holds them: the normalized table, and per record (by table
/// index) its row id and when it last changed. Row ids ascend with the index.
struct Live {
    table: Table,
    rids: Vec<i64>,
    /// Index into `stamps`: records changed in one pull or import share a time.
    changed_at: Vec<u32>,
    stamps: Vec<String>,
}

impl Live {
    fn read(conn: &Connection, cfg: &MatchConfig) -> Result<Live> {
        let (mut rids, mut changed_at, mut stamps) = (Vec::new(), Vec::new(), Vec::new());
        let mut stamp_index: HashMap<String, u32> = HashMap::new();
        let table = matches::read_live(conn, cfg.object, |rows| {
            let stream = rows.map(|r| {
                rids.push(r.rid);
                let next = stamps.len() as u32;
                let i = *stamp_index.entry(r.changed_at).or_insert_with_key(|s| {
                    stamps.push(s.clone());
                    next
                });
                changed_at.push(i);
                (r.id, r.properties)
            });
            Table::build_from_json(cfg, stream)
        })?;
        let table = table.context("a record's properties in the workspace are not valid JSON")?;
        Ok(Live {
            table,
            rids,
            changed_at,
            stamps,
        })
    }

    fn len(&self) -> usize {
        self.rids.len()
    }

    fn index_of_rid(&self, rid: i64) -> Option<u32> {
        self.rids.binary_search(&rid).ok().map(|i| i as u32)
    }

    fn changed_at(&self, i: u32) -> &str {
        &self.stamps[self.changed_at[i as usize] as usize]
    }
}

/// The live record count when an incremental run would find nothing to do, so that reading
/// and normalizing every record can be skipped: the stored model still fits (same schema, same
/// steward-approved pairs), no record of the type changed, was archived or merged away since
/// the last run (each of those moves `changed_at`), and no open cluster has a member that is
/// gone. The full run would score no pair and re-cluster nothing; it would only move the
/// watermark, which may as well stay.
fn untouched_since(
    conn: &Connection,
    cfg: &MatchConfig,
    model: &Model,
    watermark: &str,
    existing: &[Existing],
) -> Result<Option<usize>> {
    let labelled: usize = existing
        .iter()
        .filter(|e| e.approved())
        .map(|e| {
            let live = e.members.iter().filter(|(_, _, live)| *live).count();
            live * live.saturating_sub(1) / 2
        })
        .sum();
    if model.signature != cfg.schema_signature() || model.labelled_pairs != labelled as u64 {
        return Ok(None);
    }
    let dead_member = existing
        .iter()
        .any(|e| !e.status.is_executors() && e.lost_a_member());
    if dead_member || matches::changed_since(conn, cfg.object, watermark)? {
        return Ok(None);
    }
    Ok(Some(matches::live_count(conn, cfg.object)?))
}

/// A steward's verdict stands on it.
fn reviewed(status: ClusterStatus) -> bool {
    matches!(
        status,
        ClusterStatus::Approved | ClusterStatus::Rejected | ClusterStatus::Deferred
    )
}

/// The most changes to clusters one chunk of a run writes, however fast the disk (the time
/// budget of [`ChunkPolicy::new`] ends most chunks first).
pub const CHUNK_CHANGES: usize = 20_000;

/// The `meta` key of the marker a run of `object` leaves while it writes.
fn run_key(object: ObjectType) -> String {
    chunks::marker_key(&["match", object.as_str()])
}

/// Another run writes the clusters of the type now: two runs' chunks in turn would leave a
/// record in clusters of both.
fn another_run(object: ObjectType, run: &RunMarker) -> anyhow::Error {
    anyhow::anyhow!(
        "another run is writing the {object} clusters ({}, since {}, by {}); nothing was written: run this one when it is done",
        run.what,
        run.started_at,
        run.owner
    )
}

/// Refuse while a run of the built-in matcher is writing the clusters of `object` in chunks:
/// for writers of clusters in one transaction (an external matcher's import), to call in it.
pub fn refuse_while_a_run_writes(conn: &Connection, object: ObjectType) -> Result<()> {
    match chunks::read_marker(conn, &run_key(object))? {
        Some(run) if !run.interrupted() => Err(another_run(object, &run)),
        _ => Ok(()),
    }
}

/// Match the live records of `cfg.object` in the workspace and bring its clusters up to date.
/// Synchronous and CPU-heavy: from async code, run it with `tokio::task::spawn_blocking`.
pub fn run_match(
    store: &Store,
    cfg: &MatchConfig,
    mode: MatchMode,
    progress: &dyn Fn(MatchProgress),
) -> Result<MatchReport> {
    run_match_with(store, cfg, mode, ChunkPolicy::new(CHUNK_CHANGES), progress)
}

/// [`run_match`], its clusters written in chunks as `policy` says.
///
/// The clusters are written a chunk at a time, each chunk one transaction holding whole groups
/// of changes ([`plan_ops`]): after any chunk every record is in the cluster it was in or in
/// the one this run puts it in, never in both, and each change is made against its cluster's
/// row as it is then (a decision taken meanwhile counts). The model and the watermark are
/// written with the last chunk; until then a run marker says how far the run got. A run
/// stopped between chunks leaves its marker and the old watermark, so the next run covers
/// every record this one did: an incremental one re-clusters the same changed records, and an
/// interrupted full run makes the next one full too. That run says which run it completes.
pub fn run_match_with(
    store: &Store,
    cfg: &MatchConfig,
    mut mode: MatchMode,
    policy: ChunkPolicy,
    progress: &dyn Fn(MatchProgress),
) -> Result<MatchReport> {
    let started = Instant::now();
    let object = cfg.object;
    let run_at = store.now_ts();
    progress(MatchProgress::Loading);
    // Read on a connection of its own, in one read transaction, so the store's thread stays
    // free for the steward's decisions while a large workspace streams in (WAL lets readers
    // and the writer go on together).
    let mut reader = crate::store::open_connection(store.path())?;
    let snapshot = reader.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    let Loaded {
        model: stored_model,
        watermark,
        not_duplicates,
        existing,
    } = load(&snapshot, object)?;
    let interrupted = match chunks::read_marker(&snapshot, &run_key(object))? {
        Some(run) if !run.interrupted() => return Err(another_run(object, &run)),
        earlier => earlier,
    };
    if let Some(run) = &interrupted {
        tracing::warn!(%object, run = %run.describe(), "this match completes an interrupted one");
        if run.identity == "full" {
            mode = MatchMode::Full;
        }
    }
    if mode == MatchMode::Auto
        && interrupted.is_none()
        && let (Some(m), Some(w)) = (&stored_model, &watermark)
        && let Some(records) = untouched_since(&snapshot, cfg, m, w, &existing)?
    {
        return Ok(MatchReport {
            object: object.to_string(),
            mode: "incremental".to_string(),
            records,
            labelled_pairs: m.labelled_pairs,
            warnings: if records == 0 {
                vec![crate::domain::matcher::diagnose::no_records(object)]
            } else {
                Vec::new()
            },
            elapsed: started.elapsed(),
            ..MatchReport::default()
        });
    }
    progress(MatchProgress::Normalizing);
    let live = Live::read(&snapshot, cfg)?;
    let table = &live.table;
    let present = if crate::domain::matcher::diagnose::needs_property_names(table) {
        present_properties(&snapshot, object)?
    } else {
        Vec::new()
    };
    let mut warnings = crate::domain::matcher::diagnose::field_warnings(cfg, table, &present);
    // Ids of the records named in not_duplicates, by table index.
    let named: HashSet<&str> = not_duplicates
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let index: HashMap<&str, u32> = table
        .ids
        .iter()
        .enumerate()
        .filter(|(_, id)| named.contains(id.as_str()))
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();

    let cannot_link: FxHashSet<(u32, u32)> = not_duplicates
        .iter()
        .filter_map(|(a, b)| {
            let (x, y) = (*index.get(a.as_str())?, *index.get(b.as_str())?);
            Some((x.min(y), x.max(y)))
        })
        .collect();
    // Steward-approved clusters are labelled matches.
    let labels: Vec<(u32, u32)> = existing
        .iter()
        .filter(|e| e.approved())
        .flat_map(|e| {
            let idx: Vec<u32> = e
                .members
                .iter()
                .filter_map(|(rid, _, _)| live.index_of_rid(*rid))
                .collect();
            let mut pairs = Vec::new();
            for (i, a) in idx.iter().enumerate() {
                for b in &idx[i + 1..] {
                    pairs.push((*a.min(b), *a.max(b)));
                }
            }
            pairs
        })
        .collect();

    let reusable = stored_model.filter(|m| {
        m.signature == cfg.schema_signature() && m.labelled_pairs == labels.len() as u64
    });
    let changed: Option<Vec<bool>> = match (mode, &reusable, &watermark) {
        (MatchMode::Auto, Some(_), Some(w)) => Some(
            (0..live.len() as u32)
                .map(|i| live.changed_at(i) >= w.as_str())
                .collect(),
        ),
        _ => None,
    };
    let incremental = changed.is_some();

    progress(MatchProgress::Blocking {
        rules: cfg.blocking.len(),
    });
    let blocks = Blocks::build(cfg, table);
    let (model, model_fitted) = match (incremental, reusable) {
        (true, Some(m)) => (m, false),
        _ => (fit_model(cfg, table, &blocks, &labels, progress), true),
    };
    // Nothing was fitted on no records; such a model must not be kept for the next run.
    let model_fitted = model_fitted && !table.is_empty();
    let scorer = Scorer::new(table, &model, Some(&blocks));
    let links = link(&blocks, &scorer, cfg.settings.threshold, changed.as_deref());
    progress(MatchProgress::Scoring {
        candidate_pairs: links.candidate_pairs,
    });
    let linked_pairs = links.edges.len() as u64;
    let mut edges = links.edges;

    // The region to re-cluster: everything, or the changed records, what they link to, and
    // the clusters any of those already belong to (with their internal links re-scored).
    let threshold_weight = weight_of(cfg.settings.threshold);
    let mut in_scope: Option<HashSet<u32>> = None;
    if let Some(changed) = &changed {
        let mut touched: HashSet<u32> = changed
            .iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(|(i, _)| i as u32)
            .collect();
        for e in &edges {
            touched.insert(e.a);
            touched.insert(e.b);
        }
        let mut scope = touched.clone();
        for ex in existing.iter().filter(|e| !e.status.is_executors()) {
            let idx: Vec<u32> = ex
                .members
                .iter()
                .filter_map(|(rid, _, _)| live.index_of_rid(*rid))
                .collect();
            if ex.lost_a_member() || idx.iter().any(|i| touched.contains(i)) {
                for (k, &a) in idx.iter().enumerate() {
                    scope.insert(a);
                    for &b in &idx[k + 1..] {
                        let (a, b) = (a.min(b), a.max(b));
                        let w = scorer.weight(a as usize, b as usize);
                        if w >= threshold_weight {
                            edges.push(Edge { a, b, weight: w });
                        }
                    }
                }
            }
        }
        edges.sort_by_key(|e| (e.a, e.b));
        edges.dedup_by_key(|e| (e.a, e.b));
        in_scope = Some(scope);
    }

    progress(MatchProgress::Clustering {
        links: edges.len() as u64,
    });
    let clusters = cluster::cluster(edges, limits(cfg), &cannot_link, |a, b| {
        scorer.weight(a as usize, b as usize)
    });
    let names = member_labels(&snapshot, cfg, &live, &clusters)?;
    drop(snapshot);
    let planned: Vec<PlannedCluster> = clusters
        .par_iter()
        .zip(names)
        .map(|(c, label)| plan_cluster(&live, &scorer, c, label))
        .collect::<Result<_>>()?;
    let scope_rids: Option<HashSet<i64>> = in_scope.map(|s| {
        s.into_iter()
            .map(|i| live.rids[i as usize])
            .collect::<HashSet<i64>>()
    });

    let mut report = MatchReport {
        object: object.to_string(),
        mode: if incremental { "incremental" } else { "full" }.to_string(),
        records: live.len(),
        changed_records: changed
            .as_ref()
            .map_or(live.len(), |c| c.iter().filter(|x| **x).count()),
        candidate_pairs: links.candidate_pairs,
        linked_pairs,
        windowed_blocks: blocks.windowed.iter().map(|(b, _)| b).sum(),
        records_in_windowed_blocks: blocks.windowed.iter().map(|(_, r)| r).sum(),
        model_fitted,
        labelled_pairs: model.labelled_pairs,
        clusters: planned.len(),
        flagged_oversized: clusters.iter().filter(|c| c.flags.oversized).count(),
        flagged_split: clusters.iter().filter(|c| c.flags.split).count(),
        flagged_weak: clusters.iter().filter(|c| c.flags.weak).count(),
        ..MatchReport::default()
    };
    progress(MatchProgress::Writing {
        clusters: planned.len(),
    });
    let model_json = serde_json::to_string(&model)?;
    if table.is_empty() {
        warnings.push(crate::domain::matcher::diagnose::no_records(object));
    } else if model_fitted {
        warnings.extend(crate::domain::matcher::diagnose::fit_warnings(&model_json));
    }
    report.warnings = warnings;
    let model_json = (!live.table.is_empty()).then_some(model_json);
    // The records' table and blocks are done with; free them before the store's page cache
    // grows for the write.
    drop(scorer);
    drop(blocks);
    drop(live);
    // Planned against the clusters as they are now, not as the run found them: a steward may
    // have split or rejected some meanwhile.
    let groups = {
        let fresh = reader.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
        let existing = matches::existing_clusters(&fresh, object)?;
        plan_ops(&existing, &planned, scope_rids.as_ref())
    };
    drop(reader);
    let total: usize = groups.iter().map(Vec::len).sum();
    let mode_name = report.mode.clone();
    let mut writer = ClusterWriter {
        object,
        planned,
        groups,
        next: 0,
        policy,
        stats: ApplyStats::default(),
        marker: RunMarker {
            owner: chunks::run_owner(),
            started_at: run_at.clone(),
            what: format!("{mode_name} match of {object}"),
            identity: mode_name,
            done: 0,
            total: total as u64,
            unit: "changes to clusters".into(),
            updated_at: run_at.clone(),
            complete_with: format!("dupdesk match --object {object}"),
        },
        run_at,
        model_json,
        chunks: 0,
    };
    let owner = writer.marker.owner.clone();
    let stats = loop {
        let chunk = store.call_blocking(move |conn| {
            let mut w = writer;
            let ended = crate::store::with_large_cache(conn, |conn| w.write_chunk(conn))?;
            Ok((w, ended))
        });
        let (w, ended) = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let key = run_key(object);
                let released =
                    store.call_blocking(move |c| chunks::release_marker(c, &key, &owner));
                if let Err(r) = released {
                    tracing::warn!(error = %format!("{r:#}"), "marking the stopped match run as interrupted");
                }
                return Err(e);
            }
        };
        tracing::info!(
            %object,
            chunk = w.chunks,
            written = w.marker.done,
            total,
            "match: clusters written"
        );
        progress(MatchProgress::Written {
            changes: w.marker.done as usize,
            of: total,
        });
        if ended {
            report.write_chunks = w.chunks;
            break w.stats;
        }
        policy.pause();
        writer = w;
    };
    report.completes = interrupted.map(|run| run.describe());
    report.clusters_new = stats.new;
    report.clusters_changed = stats.changed;
    report.clusters_unchanged = stats.unchanged;
    report.clusters_stale = stats.stale;
    report.clusters_removed = stats.removed;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The write of a run's clusters, moved to the store's thread for each chunk and back.
struct ClusterWriter {
    object: ObjectType,
    planned: Vec<PlannedCluster>,
    groups: Vec<Vec<Op>>,
    /// The first group not written yet.
    next: usize,
    policy: ChunkPolicy,
    stats: ApplyStats,
    marker: RunMarker,
    run_at: String,
    /// `None`: no records, so no model to keep (the next run fits afresh).
    model_json: Option<String>,
    chunks: u64,
}

impl ClusterWriter {
    /// One chunk in one transaction: whole groups until the chunk is full; `true` when it was
    /// the last. Every chunk but the last leaves the run marker up to date; the last takes it
    /// away and writes the model and the watermark.
    fn write_chunk(&mut self, conn: &mut Connection) -> Result<bool> {
        let tx = conn.transaction()?;
        let key = run_key(self.object);
        if self.chunks == 0
            && let Some(run) = chunks::read_marker(&tx, &key)?
            && run.owner != self.marker.owner
            && !run.interrupted()
        {
            return Err(another_run(self.object, &run));
        }
        let to = Target {
            object: self.object,
            matcher: "dupdesk",
            now: &self.run_at,
        };
        let mut chunk = Chunk::begin();
        while let Some(group) = self.groups.get(self.next) {
            for op in group {
                apply_op(&tx, &to, &self.planned, op, &mut self.stats)?;
            }
            chunk.add(group.len());
            self.next += 1;
            if chunk.is_full(&self.policy) {
                break;
            }
        }
        let ended = self.next == self.groups.len();
        let done = self.marker.done + chunk.items() as u64;
        if ended {
            match &self.model_json {
                Some(json) => set_meta(&tx, &model_key(self.object), json)?,
                None => delete_meta(&tx, &model_key(self.object))?,
            }
            set_meta(&tx, &watermark_key(self.object), &self.run_at)?;
            chunks::remove_marker(&tx, &key)?;
        } else {
            let marker = RunMarker {
                done,
                updated_at: now_ts(),
                ..self.marker.clone()
            };
            chunks::write_marker(&tx, &key, &marker)?;
        }
        tx.commit()?;
        self.marker.done = done;
        self.chunks += 1;
        Ok(ended)
    }
}

/// A pair's explanation as the workspace keeps it (`pair_scores.explanation`) and the review
/// shows it: per field, its agreement, the comparator and the bits it weighed, with the rule,
/// prior and total. The compared values are the records' own, shown beside it, so they are
/// not stored again: at a million records the explanations are most of what a run writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredExplanation {
    pub rule: Option<String>,
    pub fields: Vec<StoredField>,
    pub prior_weight: f64,
    pub match_weight: f64,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredField {
    pub property: String,
    pub agreement: String,
    pub comparator: String,
    /// Bits of evidence, to a hundredth (the review shows two decimals).
    pub weight: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frequency_adjusted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

impl From<crate::domain::matcher::PairExplanation> for StoredExplanation {
    fn from(e: crate::domain::matcher::PairExplanation) -> StoredExplanation {
        let hundredths = |w: f64| (w * 100.0).round() / 100.0;
        StoredExplanation {
            rule: e.rule,
            fields: e
                .fields
                .into_iter()
                .map(|f| StoredField {
                    property: f.property,
                    agreement: f.agreement,
                    comparator: f.comparator,
                    weight: hundredths(f.weight),
                    frequency_adjusted: f.frequency_adjusted,
                    blocked: f.blocked,
                })
                .collect(),
            prior_weight: hundredths(e.prior_weight),
            match_weight: hundredths(e.match_weight),
            probability: e.probability,
        }
    }
}

/// The queue label of each cluster, from its members' stored properties (read only for the
/// records in a cluster).
fn member_labels(
    conn: &Connection,
    cfg: &MatchConfig,
    live: &Live,
    clusters: &[Cluster],
) -> Result<Vec<String>> {
    let mut labels = Vec::with_capacity(clusters.len());
    for c in clusters {
        let mut members = Vec::with_capacity(c.members.len());
        for &i in &c.members {
            let json = matches::properties_json(conn, live.rids[i as usize])?;
            let id = &live.table.ids[i as usize];
            members.push(Record {
                object_type: cfg.object,
                id: id.clone(),
                properties: serde_json::from_str(&json)
                    .with_context(|| format!("record {id}: properties are not valid JSON"))?,
                history: Default::default(),
                created_at: None,
                updated_at: None,
                archived: false,
            });
        }
        labels.push(label(cfg, &members.iter().collect::<Vec<_>>()));
    }
    Ok(labels)
}

fn plan_cluster(
    live: &Live,
    scorer: &Scorer<'_>,
    c: &Cluster,
    label: String,
) -> Result<PlannedCluster> {
    let ids: Vec<&str> = c
        .members
        .iter()
        .map(|&i| live.table.ids[i as usize].as_str())
        .collect();
    let mut pairs = Vec::new();
    for (k, &a) in c.members.iter().enumerate() {
        for &b in &c.members[k + 1..] {
            let (ra, rb) = (live.rids[a as usize], live.rids[b as usize]);
            let (x, y, rx, ry) = if ra < rb {
                (a, b, ra, rb)
            } else {
                (b, a, rb, ra)
            };
            let explanation = StoredExplanation::from(scorer.explain(x as usize, y as usize));
            pairs.push((
                rx,
                ry,
                explanation.probability,
                serde_json::to_string(&explanation)?,
            ));
        }
    }
    Ok(PlannedCluster {
        fingerprint: fingerprint(&ids),
        rids: c.members.iter().map(|&i| live.rids[i as usize]).collect(),
        label,
        score: probability(c.best),
        weakest: probability(c.weakest),
        flags: c.flags.to_text(),
        pairs,
        changed_at: c
            .members
            .iter()
            .map(|&i| live.changed_at(i))
            .max()
            .unwrap_or_default()
            .to_string(),
    })
}

/// A readable name for the queue: the distinct names of the members ("Robert Smith / Bob
/// Smith +1"), from the schema's name fields, else its company, else its first field.
pub fn label(cfg: &MatchConfig, members: &[&Record]) -> String {
    let props = |kind: FieldKind| -> Vec<&str> {
        cfg.fields
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.property.as_str())
            .collect()
    };
    let mut parts: Vec<&str> = props(FieldKind::PersonName);
    if parts.is_empty() {
        parts = props(FieldKind::GivenName);
        parts.extend(props(FieldKind::Surname));
    }
    if parts.is_empty() {
        parts = props(FieldKind::Company);
    }
    if parts.is_empty() {
        parts = cfg
            .fields
            .iter()
            .take(1)
            .map(|f| f.property.as_str())
            .collect();
    }
    let mut names: Vec<String> = Vec::new();
    for r in members {
        let name = parts
            .iter()
            .filter_map(|p| r.get(p))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(" ");
        let name = if name.is_empty() { r.id.clone() } else { name };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let shown = names
        .iter()
        .take(2)
        .cloned()
        .collect::<Vec<_>>()
        .join(" / ");
    match names.len() {
        0..=2 => shown,
        n => format!("{shown} +{}", n - 2),
    }
}

/// One change a run makes to the clusters, planned against the clusters as they were read and
/// carried out against them as they are when its chunk is written (a steward may have decided,
/// an executor claimed, in between).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Write planned cluster `planned` into the row `id`, which had `fingerprint` when planned:
    /// the same members (`takeover` false), or the unclaimed cluster it overlaps most.
    Onto {
        id: i64,
        fingerprint: String,
        takeover: bool,
        planned: usize,
    },
    /// A row of its own for planned cluster `planned`.
    New { planned: usize },
    /// The cluster `id` (with `fingerprint`) did not form again.
    Retire { id: i64, fingerprint: String },
}

/// The changes that bring the clusters of a type in line with `planned`, as the module doc
/// says, in groups: a group holds every change that touches a record any other change of it
/// touches (the clusters a record leaves and the one it joins), so that a workspace in which
/// some groups are written and others not yet still has each record in one place, the old or
/// the new. With `scope`, only existing clusters with a member in it are considered
/// (incremental runs).
fn plan_ops(
    existing: &[Existing],
    planned: &[PlannedCluster],
    scope: Option<&HashSet<i64>>,
) -> Vec<Vec<Op>> {
    let in_scope = |e: &Existing| {
        scope.is_none_or(|s| e.members.iter().any(|(rid, _, _)| s.contains(rid)))
            || e.lost_a_member()
    };
    let by_fp: HashMap<&str, usize> = existing
        .iter()
        .enumerate()
        .map(|(i, e)| (e.fingerprint.as_str(), i))
        .collect();
    let mut claimed: HashSet<usize> = HashSet::new();
    // (op, the existing cluster it changes)
    let mut ops: Vec<(Op, Option<usize>)> = Vec::new();
    let mut fresh: Vec<usize> = Vec::new();
    for (k, p) in planned.iter().enumerate() {
        match by_fp.get(p.fingerprint.as_str()) {
            Some(&i) => {
                claimed.insert(i);
                let e = &existing[i];
                let op = Op::Onto {
                    id: e.id,
                    fingerprint: e.fingerprint.clone(),
                    takeover: false,
                    planned: k,
                };
                ops.push((op, Some(i)));
            }
            None => fresh.push(k),
        }
    }
    // New member sets take over the row of the unclaimed cluster they overlap most.
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (i, e) in existing.iter().enumerate() {
        if claimed.contains(&i) || e.status.is_executors() {
            continue;
        }
        for (rid, _, _) in &e.members {
            owner.entry(*rid).or_insert(i);
        }
    }
    for k in fresh {
        let mut overlap: HashMap<usize, usize> = HashMap::new();
        for rid in &planned[k].rids {
            if let Some(&i) = owner.get(rid)
                && !claimed.contains(&i)
            {
                *overlap.entry(i).or_insert(0) += 1;
            }
        }
        let best = overlap
            .into_iter()
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                claimed.insert(i);
                let e = &existing[i];
                let op = Op::Onto {
                    id: e.id,
                    fingerprint: e.fingerprint.clone(),
                    takeover: true,
                    planned: k,
                };
                ops.push((op, Some(i)));
            }
            None => ops.push((Op::New { planned: k }, None)),
        }
    }
    // Existing clusters that did not form again.
    for (i, e) in existing.iter().enumerate() {
        if claimed.contains(&i) || e.status.is_executors() || !in_scope(e) {
            continue;
        }
        let op = Op::Retire {
            id: e.id,
            fingerprint: e.fingerprint.clone(),
        };
        ops.push((op, Some(i)));
    }
    group_ops(ops, existing, planned)
}

/// [`plan_ops`]'s groups: the changes joined by the records they touch (a union-find over
/// records), each group in the order the changes were planned, the groups in the order of their
/// first change.
fn group_ops(
    ops: Vec<(Op, Option<usize>)>,
    existing: &[Existing],
    planned: &[PlannedCluster],
) -> Vec<Vec<Op>> {
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    // Node per op; records point at the first op that touched them.
    let mut parent: Vec<usize> = (0..ops.len()).collect();
    let mut first_op: HashMap<i64, usize> = HashMap::new();
    for (n, (op, target)) in ops.iter().enumerate() {
        let planned_rids = match op {
            Op::Onto { planned: k, .. } | Op::New { planned: k } => planned[*k].rids.as_slice(),
            Op::Retire { .. } => &[],
        };
        let old_rids = target
            .iter()
            .flat_map(|&i| existing[i].members.iter().map(|(rid, _, _)| rid));
        for rid in planned_rids.iter().chain(old_rids) {
            match first_op.get(rid) {
                Some(&m) => {
                    let (a, b) = (root(&mut parent, m), root(&mut parent, n));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
                None => {
                    first_op.insert(*rid, n);
                }
            }
        }
    }
    let mut groups: Vec<Vec<Op>> = Vec::new();
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    for (n, (op, _)) in ops.into_iter().enumerate() {
        let r = root(&mut parent, n);
        let g = *group_of_root.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(op);
    }
    groups
}

/// What a run writes its clusters with.
struct Target<'a> {
    object: ObjectType,
    matcher: &'a str,
    now: &'a str,
}

/// Carry out one planned change on the clusters as they are now. A change whose row another
/// writer took meanwhile (an external matcher's import, deleting or rewriting it) falls back
/// to what the plan would have made of the row as it is: a planned cluster whose members some
/// row already has goes onto that row, one whose row is gone or taken gets a row of its own,
/// and a cluster to retire that is no longer the one planned on is left alone.
fn apply_op(
    conn: &Connection,
    to: &Target<'_>,
    planned: &[PlannedCluster],
    op: &Op,
    stats: &mut ApplyStats,
) -> Result<()> {
    let Target {
        object,
        matcher,
        now,
    } = *to;
    match op {
        Op::Onto {
            id,
            fingerprint,
            takeover,
            planned: k,
        } => {
            let p = &planned[*k];
            if let Some(e) = matches::current_by_fingerprint(conn, object, &p.fingerprint)? {
                if e.status.is_executors() {
                    stats.unchanged += 1;
                    return Ok(());
                }
                let changed_after_review = reviewed(e.status)
                    && e.last_decision
                        .as_deref()
                        .is_some_and(|d| p.changed_at.as_str() > d);
                let status = if changed_after_review {
                    stats.stale += 1;
                    ClusterStatus::Stale
                } else {
                    stats.unchanged += 1;
                    e.status
                };
                let same = status == e.status
                    && e.shown == (p.score, p.weakest, p.label.clone(), p.flags.clone());
                if !same {
                    matches::write_cluster(conn, Some((e.id, status)), object, matcher, p, now)?;
                }
                return Ok(());
            }
            let row = match takeover {
                true => matches::current_by_id(conn, *id)?
                    .filter(|e| e.fingerprint == *fingerprint && !e.status.is_executors()),
                false => None,
            };
            match row {
                Some(e) => {
                    let status = if reviewed(e.status) || e.status == ClusterStatus::Stale {
                        stats.stale += 1;
                        ClusterStatus::Stale
                    } else {
                        stats.changed += 1;
                        ClusterStatus::Pending
                    };
                    matches::write_cluster(conn, Some((e.id, status)), object, matcher, p, now)?;
                }
                None => {
                    stats.new += 1;
                    matches::write_cluster(conn, None, object, matcher, p, now)?;
                }
            }
        }
        Op::New { planned: k } => {
            let p = &planned[*k];
            match matches::current_by_fingerprint(conn, object, &p.fingerprint)? {
                // Another writer made it meanwhile: as if the plan had found it.
                Some(e) => {
                    let onto = Op::Onto {
                        id: e.id,
                        fingerprint: e.fingerprint,
                        takeover: false,
                        planned: *k,
                    };
                    return apply_op(conn, to, planned, &onto, stats);
                }
                None => {
                    stats.new += 1;
                    matches::write_cluster(conn, None, object, matcher, p, now)?;
                }
            }
        }
        Op::Retire { id, fingerprint } => {
            let Some(e) = matches::current_by_id(conn, *id)?
                .filter(|e| e.fingerprint == *fingerprint && !e.status.is_executors())
            else {
                stats.unchanged += 1;
                return Ok(());
            };
            match e.status {
                ClusterStatus::Pending | ClusterStatus::Stale if !e.referenced => {
                    matches::delete_cluster(conn, e.id)?;
                    stats.removed += 1;
                }
                ClusterStatus::Pending | ClusterStatus::Stale => {
                    matches::dissolve(conn, e.id, now)?;
                    stats.stale += 1;
                }
                _ if matches::members_changed(conn, e.id, e.last_decision.as_deref())? => {
                    clusters::set_status(conn, e.id, ClusterStatus::Stale, Reason::Keep, now)?;
                    stats.stale += 1;
                }
                _ => stats.unchanged += 1,
            }
        }
    }
    Ok(())
}

/// Clusters of `object` waiting for a steward (pending, deferred, stale, needs attention) with
/// a member archived in the CRM (a pull marked it): they no longer stand and leave the review
/// queue, by the rule a cluster that no longer forms follows (removed, or `stale` and flagged
/// `dissolved` when decisions refer to it, which the open queue leaves out). This also takes
/// an approved cluster the executor sent back because a member no longer exists. Clusters
/// past the steward are the executor's. Returns how many clusters dissolved. Runs in the
/// caller's transaction; reads only the open clusters and their members' rows.
pub fn dissolve_with_archived_members(
    conn: &Connection,
    object: ObjectType,
    now: &str,
) -> Result<u64> {
    let open: Vec<Current> = matches::open_with_archived_members(conn, object)?;
    for e in &open {
        if e.referenced {
            matches::dissolve(conn, e.id, now)?;
        } else {
            matches::delete_cluster(conn, e.id)?;
        }
    }
    Ok(open.len() as u64)
}

/// Bring the clusters of `object` in line with `planned`, as the module doc says, in the
/// transaction `conn` is in (an external matcher's import, refused or written whole). With
/// `scope`, only existing clusters with a member in it are considered (incremental runs).
pub fn apply_clusters(
    conn: &Connection,
    object: ObjectType,
    matcher: &str,
    planned: &[PlannedCluster],
    scope: Option<&HashSet<i64>>,
    now: &str,
) -> Result<ApplyStats> {
    let existing = matches::existing_clusters(conn, object)?;
    let to = Target {
        object,
        matcher,
        now,
    };
    let mut stats = ApplyStats::default();
    for group in plan_ops(&existing, planned, scope) {
        for op in &group {
            apply_op(conn, &to, planned, op, &mut stats)?;
        }
    }
    Ok(stats)
}

/// The property names that a sample of the live records of `object` hold values for, for a
/// suggestion when a schema property is absent from every record.
fn present_properties(conn: &Connection, object: ObjectType) -> Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for json in matches::sample_properties(conn, object, 1000)? {
        let props: HashMap<String, Option<String>> =
            serde_json::from_str(&json).context("a record's properties in the workspace")?;
        names.extend(
            props
                .into_iter()
                .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()))
                .map(|(k, _)| k),
        );
    }
    Ok(names.into_iter().collect())
}

/// The JSON of the model stored by the last run for `object`, if any: what `dupdesk model`
/// reads ([`crate::domain::matcher::fitted::FittedModel::from_json`]).
pub fn stored_model_json(conn: &Connection, object: ObjectType) -> Result<Option<String>> {
    get_meta(conn, &model_key(object))
}

/// The model stored by the last run for `object`, if any (for display and diagnostics).
pub fn stored_model(conn: &Connection, object: ObjectType) -> Result<Option<Model>> {
    stored_model_json(conn, object)?
        .map(|j| serde_json::from_str(&j).context("stored matcher model"))
        .transpose()
}
