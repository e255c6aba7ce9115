//! Clusters made by another matcher, for teams whose matching runs on Spark or DuckDB. Three
//! CSV shapes are read, told apart by their header:
//!
//! - Splink's cluster output: `cluster_id,unique_id` (other columns ignored);
//! - csvdedupe's output: the input columns plus `Cluster ID`, with the record id in a column
//!   named `record_id`, `unique_id`, `id`, `hs_object_id` or `Record ID`;
//! - a plain `cluster_id,record_id` file.
//!
//! The whole file is checked before anything is written: a record id the workspace does not
//! hold refuses the import with the id and its line. A file that proposes no cluster at all is
//! refused too unless the caller says it means "no duplicates" ([`EmptyFile`]): read as the
//! matcher's whole answer, it would empty the review queue, and a header-only file is far more
//! often a failed export than a finding. The file is read record by record within
//! [`crate::input`]'s bounds, and errors quote ids through [`quote`]. Pairs in `not_duplicates`
//! are split apart as in the built-in clustering. The clusters are written in one transaction
//! (a file is refused or imported whole), and refused while a run of the built-in matcher is
//! writing its clusters in chunks. This module must not score pairs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use rustc_hash::FxHashSet;
use serde::Serialize;
use thiserror::Error;

use crate::domain::matcher::cluster::{self, ClusterLimits, Edge};
use crate::domain::model::ObjectType;
use crate::input::{CsvRecords, RecordError, quote};
use crate::ops::matching::{
    ApplyStats, PlannedCluster, apply_clusters, fingerprint, refuse_while_a_run_writes,
};
use crate::store::{Store, matches};

/// What a file that proposes no cluster of two or more records means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyFile {
    /// Refuse it, changing nothing.
    #[default]
    Refuse,
    /// The matcher found no duplicates: every pending cluster of the type leaves the queue
    /// (`dupdesk match --clusters FILE --allow-empty`).
    MeansNoClusters,
}

/// Which shape the file had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalFormat {
    Splink,
    Csvdedupe,
    Plain,
}

impl ExternalFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalFormat::Splink => "splink",
            ExternalFormat::Csvdedupe => "csvdedupe",
            ExternalFormat::Plain => "plain",
        }
    }
}

/// Why a cluster file was refused.
#[derive(Debug, Error)]
pub enum ExternalError {
    #[error("cannot read cluster file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster file {path}, line {line}: {message}; nothing was imported")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "cluster file {path}: no known header (expected cluster_id,unique_id from Splink, a \"Cluster ID\" column from csvdedupe with an id column, or cluster_id,record_id); found {}; nothing was imported",
        headers_list(found)
    )]
    UnknownHeader { path: PathBuf, found: Vec<String> },
    #[error(
        "cluster file {path}, line {line}: record id {} is not a live {object} record in the workspace; nothing was imported",
        quote(id)
    )]
    UnknownRecord {
        path: PathBuf,
        line: u64,
        id: String,
        object: ObjectType,
    },
    #[error(
        "cluster file {path} has no rows after its header: read as \"no clusters\" it would take every pending {object} cluster out of the review queue; nothing was changed (pass --allow-empty if it means that)"
    )]
    NoRows { path: PathBuf, object: ObjectType },
    #[error(
        "cluster file {path} proposes no cluster of two or more records ({rows} rows, each alone in its cluster or in none): read as \"no clusters\" it would take every pending {object} cluster out of the review queue; nothing was changed (pass --allow-empty if it means that)"
    )]
    NoClusters {
        path: PathBuf,
        object: ObjectType,
        rows: u64,
    },
    #[error(
        "cluster file {path}, line {line}: record id {} is in clusters {} and {}; nothing was imported",
        quote(id),
        quote(first),
        quote(second)
    )]
    TwoClusters {
        path: PathBuf,
        line: u64,
        id: String,
        first: String,
        second: String,
    },
}

/// Headers as an error shows them: a few, each quoted short.
fn headers_list(found: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut list: Vec<String> = found.iter().take(SHOWN).map(|h| quote(h)).collect();
    if found.len() > SHOWN {
        list.push(format!("and {} more", found.len() - SHOWN));
    }
    format!("[{}]", list.join(", "))
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    pub format: ExternalFormat,
    pub rows: u64,
    /// Clusters of two or more records after not_duplicates splits.
    pub clusters: usize,
    /// Clusters of one record in the file, which propose nothing.
    pub singletons: usize,
    /// Clusters that had to be split because they held a not_duplicates pair.
    pub split: usize,
    pub applied: ApplyStats,
}

/// Clusters read from a file: cluster id → (record id, line) in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalClusters {
    pub format: ExternalFormat,
    pub rows: u64,
    pub clusters: BTreeMap<String, Vec<(String, u64)>>,
}

/// Read and check the shape of a cluster file (not yet against the workspace).
pub fn read_clusters(path: &Path) -> Result<ExternalClusters, ExternalError> {
    let file = std::fs::File::open(path).map_err(|source| ExternalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = CsvRecords::new(csv::ReaderBuilder::new().flexible(false), file);
    let csv_err = |e: RecordError| ExternalError::Csv {
        path: path.to_path_buf(),
        line: e.line().unwrap_or(0),
        message: e.message(),
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.iter().position(|h| h.eq_ignore_ascii_case(n)))
    };
    let (format, cluster_col, id_col) =
        if let (Some(c), Some(i)) = (find(&["cluster_id"]), find(&["unique_id"])) {
            (ExternalFormat::Splink, c, i)
        } else if let (Some(c), Some(i)) = (
            find(&["Cluster ID"]),
            find(&["record_id", "unique_id", "id", "hs_object_id", "Record ID"]),
        ) {
            (ExternalFormat::Csvdedupe, c, i)
        } else if let (Some(c), Some(i)) = (find(&["cluster_id"]), find(&["record_id"])) {
            (ExternalFormat::Plain, c, i)
        } else {
            return Err(ExternalError::UnknownHeader {
                path: path.to_path_buf(),
                found: headers,
            });
        };
    let mut clusters: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut rows = 0;
    let mut row = csv::StringRecord::new();
    while reader.read(&mut row).map_err(csv_err)? {
        let line = row.position().map_or(0, |p| p.line());
        rows += 1;
        // `dupdesk export clusters` guards cells that would start a spreadsheet formula.
        let cell = |i: usize| {
            crate::ops::export::unguard_cell(row.get(i).unwrap_or("").trim()).to_string()
        };
        let cluster = cell(cluster_col);
        let id = cell(id_col);
        if id.is_empty() {
            return Err(ExternalError::Csv {
                path: path.to_path_buf(),
                line,
                message: "empty record id".into(),
            });
        }
        if cluster.is_empty() {
            // csvdedupe leaves records it did not cluster without an id.
            continue;
        }
        if let Some(first) = seen.get(&id) {
            if *first != cluster {
                return Err(ExternalError::TwoClusters {
                    path: path.to_path_buf(),
                    line,
                    id,
                    first: first.clone(),
                    second: cluster,
                });
            }
            continue;
        }
        seen.insert(id.clone(), cluster.clone());
        clusters.entry(cluster).or_default().push((id, line));
    }
    Ok(ExternalClusters {
        format,
        rows,
        clusters,
    })
}

/// Import the clusters of an external matcher for `object`. Nothing is written unless every
/// record id in the file is a live record of the workspace, and, unless `empty` says a file
/// without clusters means "no duplicates", the file proposes at least one cluster.
pub fn import_clusters(
    store: &Store,
    path: &Path,
    object: ObjectType,
    empty: EmptyFile,
) -> Result<ImportReport> {
    let ext = read_clusters(path)?;
    let path = path.to_path_buf();
    if empty == EmptyFile::Refuse && !ext.clusters.values().any(|m| m.len() > 1) {
        return Err(if ext.rows == 0 {
            ExternalError::NoRows { path, object }
        } else {
            ExternalError::NoClusters {
                path,
                object,
                rows: ext.rows,
            }
        }
        .into());
    }
    let now = store.now_ts();
    store.call_blocking(move |conn| {
        // rid, changed_at of every live record, by id
        let live: HashMap<String, (i64, String)> = matches::live_by_id(conn, object)?;
        for members in ext.clusters.values() {
            for (id, line) in members {
                if !live.contains_key(id) {
                    return Err(ExternalError::UnknownRecord {
                        path: path.clone(),
                        line: *line,
                        id: id.clone(),
                        object,
                    }
                    .into());
                }
            }
        }
        let not_dup: HashSet<(String, String)> =
            matches::not_duplicates(conn, object)?.into_iter().collect();
        let mut planned = Vec::new();
        let (mut singletons, mut split) = (0, 0);
        let matcher = format!("external:{}", ext.format.as_str());
        for (name, members) in &ext.clusters {
            if members.len() < 2 {
                singletons += 1;
                continue;
            }
            let ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
            let parts = split_not_duplicates(&ids, &not_dup);
            if parts.len() != 1 || parts[0].len() != ids.len() {
                split += 1;
            }
            for part in parts {
                let mut rids: Vec<i64> = part.iter().map(|id| live[*id].0).collect();
                rids.sort_unstable();
                let changed_at = part
                    .iter()
                    .map(|id| live[*id].1.clone())
                    .max()
                    .unwrap_or_default();
                planned.push(PlannedCluster {
                    fingerprint: fingerprint(&part),
                    rids,
                    label: format!("{} cluster {name}", ext.format.as_str()),
                    score: 1.0,
                    weakest: 1.0,
                    flags: "external".into(),
                    pairs: Vec::new(),
                    changed_at,
                });
            }
        }
        let tx = conn.transaction()?;
        refuse_while_a_run_writes(&tx, object)?;
        let applied = apply_clusters(&tx, object, &matcher, &planned, None, &now)?;
        tx.commit()?;
        Ok(ImportReport {
            format: ext.format,
            rows: ext.rows,
            clusters: planned.len(),
            singletons,
            split,
            applied,
        })
    })
}

/// The parts of a cluster that hold no not_duplicates pair (parts of one record dropped).
fn split_not_duplicates<'a>(
    ids: &[&'a str],
    not_dup: &HashSet<(String, String)>,
) -> Vec<Vec<&'a str>> {
    let is_not_dup = |a: &str, b: &str| {
        let key = if a < b { (a, b) } else { (b, a) };
        not_dup.contains(&(key.0.to_string(), key.1.to_string()))
    };
    let mut cannot: FxHashSet<(u32, u32)> = FxHashSet::default();
    for (i, a) in ids.iter().enumerate() {
        for (j, b) in ids.iter().enumerate().skip(i + 1) {
            if is_not_dup(a, b) {
                cannot.insert((i as u32, j as u32));
            }
        }
    }
    if cannot.is_empty() {
        return vec![ids.to_vec()];
    }
    // Every member links to every other equally; the clustering keeps the pairs apart.
    let mut edges = Vec::new();
    for i in 0..ids.len() as u32 {
        for j in i + 1..ids.len() as u32 {
            edges.push(Edge {
                a: i,
                b: j,
                weight: 1.0,
            });
        }
    }
    let limits = ClusterLimits {
        conflict_weight: f64::NEG_INFINITY,
        weak_weight: f64::NEG_INFINITY,
        max_size: usize::MAX,
    };
    cluster::cluster(edges, limits, &cannot, |_, _| 1.0)
        .into_iter()
        .map(|c| c.members.iter().map(|&i| ids[i as usize]).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_three_shapes_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let splink = write(
            dir.path(),
            "s.csv",
            "cluster_id,unique_id,first_name\nc1,10,a\nc1,11,b\nc2,12,c\n",
        );
        let got = read_clusters(&splink).unwrap();
        assert_eq!(got.format, ExternalFormat::Splink);
        assert_eq!(got.clusters["c1"].len(), 2);
        let dedupe = write(
            dir.path(),
            "d.csv",
            "Cluster ID,confidence,Record ID,email\n0,0.9,10,a\n0,0.9,11,b\n,,12,c\n",
        );
        let got = read_clusters(&dedupe).unwrap();
        assert_eq!(got.format, ExternalFormat::Csvdedupe);
        assert_eq!(got.rows, 3);
        assert_eq!(got.clusters.len(), 1);
        let plain = write(dir.path(), "p.csv", "cluster_id,record_id\n7,10\n7,11\n");
        assert_eq!(read_clusters(&plain).unwrap().format, ExternalFormat::Plain);
        let bad = write(dir.path(), "b.csv", "group,member\n1,2\n");
        let e = read_clusters(&bad).unwrap_err().to_string();
        assert!(e.contains("b.csv") && e.contains("member"), "{e}");
        let twice = write(dir.path(), "t.csv", "cluster_id,record_id\n1,10\n2,10\n");
        let e = read_clusters(&twice).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("\"10\""), "{e}");
    }

    #[test]
    fn ids_guarded_by_the_cluster_export_read_back_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let rows = ["-7", "=8", "@9"].map(|id| {
            let mut m = serde_json::Map::new();
            m.insert("cluster_id".into(), 1.into());
            m.insert("record_id".into(), id.into());
            crate::ops::export::Row(m)
        });
        let mut csv = Vec::new();
        crate::ops::export::write_columns(
            &rows,
            &["cluster_id", "record_id"],
            crate::ops::export::Format::Csv,
            &mut csv,
        )
        .unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert!(text.contains("'-7") && text.contains("'=8"), "{text}");
        let file = write(dir.path(), "clusters.csv", &text);
        let got = read_clusters(&file).unwrap();
        let ids: Vec<&str> = got.clusters["1"]
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(ids, ["-7", "=8", "@9"]);
    }

    #[test]
    fn errors_show_a_few_short_headers_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let many: Vec<String> = (0..30).map(|i| format!("col{i}")).collect();
        let wide = write(
            dir.path(),
            "w.csv",
            &format!("{},{}\n", many.join(","), "h".repeat(5000)),
        );
        let e = read_clusters(&wide).unwrap_err().to_string();
        assert!(e.contains("\"col11\", and 19 more]"), "{e}");
        assert!(!e.contains("col12"), "{e}");
        let long = "9".repeat(5000);
        let twice = write(
            dir.path(),
            "t.csv",
            &format!("cluster_id,record_id\n1,{long}\n2,{long}\n"),
        );
        let e = read_clusters(&twice).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("(5000 bytes)"), "{e}");
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn not_duplicates_split_a_cluster() {
        let mut nd = HashSet::new();
        nd.insert(("a".to_string(), "c".to_string()));
        let parts = split_not_duplicates(&["a", "b", "c"], &nd);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0], vec!["a", "b"]);
    }
}
