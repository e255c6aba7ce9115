//! Health figures of a workspace: records per system and type, the candidate duplicate rate,
//! clusters per status, decisions per steward and day, merges done and failed, open mapping
//! conflicts per kind, and alerts when the record count moved more than the configured share
//! between the last two pulls (the seeds' 2%), when merges failed, and while any mapping
//! conflict is open (each one is an id in the other system the workspace cannot keep right by
//! itself), and while an import or a match interrupted between its chunks is not completed.
//! Read-only queries; the figures a pull leaves behind are written by `sync`.

use std::collections::BTreeMap;

use anyhow::Result;
use rusqlite::Connection;
use serde::Serialize;

use crate::store::mapping::{self, ConflictKind, OpenConflicts};
use crate::store::{chunks, reports};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// system -> object type -> live records.
    pub records: BTreeMap<String, BTreeMap<String, u64>>,
    pub live_records: u64,
    /// Records that would disappear if every open or approved cluster were merged, over live
    /// records.
    pub duplicate_rate: f64,
    pub clusters: BTreeMap<String, u64>,
    /// steward -> day -> decisions.
    pub decisions: BTreeMap<String, BTreeMap<String, u64>>,
    pub merges_done: u64,
    pub merges_failed: u64,
    pub merges_pending: u64,
    /// Open mapping conflicts of every kind.
    pub mapping_conflicts_open: u64,
    /// Approved clusters the executor sent back before any merge (`stale`, `needs_attention`),
    /// the newest few with their reasons, and how many in all.
    pub sent_back: Vec<SentBackCluster>,
    pub sent_back_total: u64,
    /// kind (`merge`, `shared_target`) -> open conflicts.
    pub mapping_conflicts: BTreeMap<String, u64>,
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SentBackCluster {
    pub cluster_id: i64,
    pub status: String,
    pub reason: String,
}

/// Thresholds for alerts, as shares (0.02 = 2%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub record_count_change: f64,
    /// Change of the duplicate rate between the last two pulls, in absolute terms (0.02 = two
    /// percentage points).
    pub duplicate_rate_change: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            record_count_change: 0.02,
            duplicate_rate_change: 0.02,
        }
    }
}

/// The duplicate rate as it was at the last two pulls (workspace `meta` keys).
const META_RATE_LAST: &str = "stats.duplicate_rate.last_pull";
const META_RATE_PREVIOUS: &str = "stats.duplicate_rate.previous_pull";

/// Records (surplus members of open clusters) over live records.
fn duplicate_rate(conn: &Connection) -> Result<(f64, u64)> {
    let live = reports::live_records(conn)?;
    let surplus = reports::surplus_members(conn)?;
    let rate = if live > 0 {
        surplus as f64 / live as f64
    } else {
        0.0
    };
    Ok((rate, live))
}

/// Remember the duplicate rate as of a pull, keeping the one before, for the alert.
pub fn record_rate_at_pull(conn: &Connection) -> Result<()> {
    let (rate, _) = duplicate_rate(conn)?;
    if let Some(last) = crate::store::get_meta(conn, META_RATE_LAST)? {
        crate::store::set_meta(conn, META_RATE_PREVIOUS, &last)?;
    }
    crate::store::set_meta(conn, META_RATE_LAST, &rate.to_string())
}

pub fn collect(conn: &Connection, thresholds: Thresholds) -> Result<Stats> {
    let mut s = Stats::default();
    for (system, object, n) in crate::store::records::counts(conn)? {
        s.records
            .entry(system)
            .or_default()
            .insert(object.as_str().to_string(), n);
        s.live_records += n;
    }
    s.clusters = reports::clusters_per_status(conn)?.into_iter().collect();
    s.duplicate_rate = duplicate_rate(conn)?.0;
    for (steward, day, n) in reports::decisions_per_steward_day(conn)? {
        s.decisions.entry(steward).or_default().insert(day, n);
    }
    (s.merges_done, s.merges_failed, s.merges_pending) = reports::merge_job_counts(conn)?;
    let conflicts = mapping::open_conflicts_by_kind(conn)?;
    for open in &conflicts {
        s.mapping_conflicts_open += open.count;
        s.mapping_conflicts
            .insert(open.kind.as_str().to_string(), open.count);
    }
    for totals in reports::run_totals(conn)? {
        let reports::RunTotals {
            source,
            object_type: object,
            previous,
            now,
        } = totals;
        if let Some(prev) = previous.filter(|p| *p > 0) {
            let change = (now - prev) as f64 / prev as f64;
            if change.abs() > thresholds.record_count_change {
                s.alerts.push(format!(
                    "{object} from {source}: record count moved {:+.1}% between the last two pulls ({prev} -> {now}), above the {:.1}% threshold",
                    change * 100.0,
                    thresholds.record_count_change * 100.0
                ));
            }
        }
    }
    let rate = |key: &str| -> Result<Option<f64>> {
        Ok(crate::store::get_meta(conn, key)?.and_then(|v| v.parse::<f64>().ok()))
    };
    if let (Some(prev), Some(last)) = (rate(META_RATE_PREVIOUS)?, rate(META_RATE_LAST)?)
        && (last - prev).abs() > thresholds.duplicate_rate_change
    {
        s.alerts.push(format!(
            "the candidate duplicate rate moved from {:.2}% to {:.2}% between the last two pulls, more than {:.1} points",
            prev * 100.0,
            last * 100.0,
            thresholds.duplicate_rate_change * 100.0
        ));
    }
    let (back, total) = crate::store::queue::sent_back(conn, 5)?;
    s.sent_back_total = total;
    s.sent_back = back
        .into_iter()
        .map(|b| SentBackCluster {
            cluster_id: b.cluster_id,
            status: b.status.as_str().to_string(),
            reason: b.reason,
        })
        .collect();
    if let Some(first) = s.sent_back.first() {
        s.alerts.push(format!(
            "{total} approved clusters were sent back for review before any merge (nothing was sent for them), e.g. cluster {}: {}",
            first.cluster_id, first.reason
        ));
    }
    if s.merges_failed > 0 {
        s.alerts.push(format!(
            "{} merge jobs failed: see `dupdesk apply` or the merges view, and retry",
            s.merges_failed
        ));
    }
    s.alerts.extend(conflicts.iter().map(conflict_alert));
    // A long import or match commits in chunks; one stopped between them left part of its
    // work, which the figures above count as if it were all.
    for (_, run) in chunks::interrupted_runs(conn)? {
        s.alerts.push(format!(
            "{}: `{}` completes it",
            run.describe(),
            run.complete_with
        ));
    }
    Ok(s)
}

/// One alert per kind of open conflict, naming how many and the oldest as an example.
fn conflict_alert(open: &OpenConflicts) -> String {
    let e = &open.oldest;
    let s = if open.count == 1 { "" } else { "s" };
    let what = match open.kind {
        ConflictKind::SharedTarget => format!(
            "{} {} id{s} shared by more than one live record",
            open.count, e.target_system
        ),
        ConflictKind::Merge => format!(
            "{} merge{s} of records mapped to different {} ids",
            open.count, e.target_system
        ),
    };
    format!(
        "{what} (e.g. {}): see `dupdesk mapping conflicts`",
        e.summary()
    )
}

impl Stats {
    /// The figures as text for a terminal. System, object type, status and steward names come
    /// from the workspace (an imported file, a CRM), so they go through the terminal sanitizer.
    pub fn render_text(&self) -> String {
        use crate::domain::sanitize::for_terminal as t;
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "records (live): {}", self.live_records);
        for (system, objects) in &self.records {
            for (object, n) in objects {
                let _ = writeln!(out, "  {:<12} {:<10} {n:>9}", t(system), t(object));
            }
        }
        let _ = writeln!(
            out,
            "candidate duplicate rate: {:.2}%",
            self.duplicate_rate * 100.0
        );
        let _ = writeln!(out, "clusters:");
        for (status, n) in &self.clusters {
            let _ = writeln!(out, "  {:<10} {n:>9}", t(status));
        }
        let _ = writeln!(out, "decisions:");
        for (steward, days) in &self.decisions {
            for (day, n) in days {
                let _ = writeln!(out, "  {:<12} {} {n:>6}", t(steward), t(day));
            }
        }
        let by_kind = if self.mapping_conflicts.is_empty() {
            String::new()
        } else {
            let kinds: Vec<String> = self
                .mapping_conflicts
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            format!(" ({})", kinds.join(", "))
        };
        let _ = writeln!(
            out,
            "merges: {} done, {} failed, {} queued; {} open mapping conflicts{by_kind}",
            self.merges_done, self.merges_failed, self.merges_pending, self.mapping_conflicts_open
        );
        if self.sent_back_total > 0 {
            let _ = writeln!(
                out,
                "sent back for review before any merge: {}",
                self.sent_back_total
            );
            for b in &self.sent_back {
                let status = if b.status == "needs_attention" {
                    "needs attention"
                } else {
                    b.status.as_str()
                };
                let _ = writeln!(
                    out,
                    "  cluster {:>6} {status}: {}",
                    b.cluster_id,
                    crate::domain::sanitize::for_terminal(&b.reason)
                );
            }
        }
        // Alerts quote ids from the CRM.
        for a in &self.alerts {
            let _ = writeln!(out, "ALERT: {}", t(a));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_workspace_are_shown_escaped() {
        let mut s = Stats::default();
        s.records
            .entry("crm\u{1b}[2J".into())
            .or_default()
            .insert("contacts".into(), 3);
        s.decisions
            .entry("ana\u{202E}\u{200B}".into())
            .or_default()
            .insert("2026-01-01".into(), 1);
        s.alerts.push("contacts from erp\u{7}: moved".into());
        let text = s.render_text();
        assert!(text.contains("  crm\\e[2J     contacts"), "{text}");
        assert!(
            text.contains("  ana\\u{202E}\\u{200B} 2026-01-01"),
            "{text}"
        );
        assert!(
            text.contains("ALERT: contacts from erp\\u{0007}: moved"),
            "{text}"
        );
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
    }
}
