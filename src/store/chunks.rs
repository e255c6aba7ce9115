//! Long writers (an import, a matcher run) commit their work in chunks, so that a steward's
//! decision, or any other writer, waits for one chunk (a few hundred milliseconds) and not for
//! the whole run. This module holds what the writers share:
//!
//! - [`ChunkPolicy`]: how long a chunk's transaction may last and how many items it may hold,
//!   and the pause a writer leaves between two chunks. SQLite does not queue those who wait for
//!   its lock: a waiter gets it only by asking while it is free, so a writer that began its next
//!   chunk the moment it committed one would keep it nearly all the time. The pause is several
//!   of a waiter's tries long (see the busy handler in [`super::open_connection`]).
//! - [`RunMarker`]: a row of `meta` a chunked run writes with its first chunk, brings up to
//!   date with each and removes with its last. A run stopped between chunks (killed, crashed,
//!   the disk full) leaves it behind, naming the process that wrote it, so the next run and
//!   `dupdesk stats` can say that the workspace holds an interrupted run's work and what
//!   completes it, instead of passing it off as a finished one.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// How a long writer divides its work into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPolicy {
    /// A chunk is committed once its transaction has lasted this long (checked between items,
    /// so one item's time may come on top).
    pub budget: Duration,
    /// ... or once it holds this many items, whatever the time: a bound on what one commit
    /// writes when the disk is fast.
    pub max_items: usize,
    /// The pause between two chunks, with the write lock free.
    pub gap: Duration,
}

impl ChunkPolicy {
    /// 200 ms per chunk: a decision waits about that long at worst, and a chunk of an import
    /// still holds some 20,000 rows, so commits (each a sync of the log) stay a small part of
    /// the time. 20 ms between chunks: ten tries of a waiting connection, enough for one to be
    /// scheduled even on two busy cores, at a cost of a tenth of the writer's time.
    pub const fn new(max_items: usize) -> ChunkPolicy {
        ChunkPolicy {
            budget: Duration::from_millis(200),
            max_items,
            gap: Duration::from_millis(20),
        }
    }

    /// Leave the write lock to whoever waits for it.
    pub fn pause(&self) {
        if !self.gap.is_zero() {
            std::thread::sleep(self.gap);
        }
    }
}

/// The chunk being written: when its transaction began and what it holds.
#[derive(Debug)]
pub struct Chunk {
    started: Instant,
    items: usize,
}

impl Chunk {
    pub fn begin() -> Chunk {
        Chunk {
            started: Instant::now(),
            items: 0,
        }
    }

    pub fn add(&mut self, items: usize) {
        self.items += items;
    }

    pub fn items(&self) -> usize {
        self.items
    }

    /// Whether the chunk should be committed now.
    pub fn is_full(&self, policy: &ChunkPolicy) -> bool {
        self.items >= policy.max_items || self.started.elapsed() >= policy.budget
    }
}

/// What a chunked run leaves in `meta` while it runs (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMarker {
    /// `host:pid:random`, as [`run_owner`] makes it.
    pub owner: String,
    pub started_at: String,
    /// What the run does, for a person: "import of contacts.csv", "full match".
    pub what: String,
    /// What a run must match to be "the same run again": an import's file digest, a match's
    /// mode.
    pub identity: String,
    /// Items written so far, of `total`, in `unit`s.
    pub done: u64,
    pub total: u64,
    pub unit: String,
    pub updated_at: String,
    /// How to complete the run, for `stats` to say: "run `dupdesk match`".
    pub complete_with: String,
}

impl RunMarker {
    /// Whether the process that wrote it is gone, so the marker is an interrupted run's rather
    /// than one still going on.
    pub fn interrupted(&self) -> bool {
        !owner_alive(&self.owner)
    }

    /// One line for a report or an alert: "the full match started 2026-... was interrupted
    /// after 12000 of 136000 clusters".
    pub fn describe(&self) -> String {
        format!(
            "the {} started {} was interrupted after {} of {} {}",
            self.what, self.started_at, self.done, self.total, self.unit
        )
    }
}

/// The name of a run, unique to it, telling the host and the process that runs it.
pub fn run_owner() -> String {
    let run = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", host(), std::process::id(), &run[..12])
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether the run `owner` names may still be going on. A process of this host that is gone
/// (or a zombie) runs nothing, nor does a run [`release_marker`] stopped; a run of another host
/// is taken to go on, since it cannot be asked. The executor's claims are told apart the same
/// way (`journal::Executor`).
pub fn owner_alive(owner: &str) -> bool {
    if owner.starts_with("stopped:") {
        return false;
    }
    let mut parts = owner.split(':');
    let (Some(owner_host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if owner_host != host() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// Every marker's key begins so, to find them all.
const PREFIX: &str = "run.";

/// The `meta` key of a run's marker: `run.` and what tells the run apart from others.
pub fn marker_key(parts: &[&str]) -> String {
    format!("{PREFIX}{}", parts.join("."))
}

pub fn read_marker(conn: &Connection, key: &str) -> Result<Option<RunMarker>> {
    let json: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).with_context(|| format!("the run marker {key}")))
        .transpose()
}

pub fn write_marker(conn: &Connection, key: &str, marker: &RunMarker) -> Result<()> {
    super::set_meta(conn, key, &serde_json::to_string(marker)?)
}

/// Mark the run `owner` wrote `key` for as stopped, its process still alive: a run that failed
/// between chunks (the disk full, a bad value) in a process that goes on (the review) is
/// interrupted as much as a killed one, and must not hold off the next run as one going on.
pub fn release_marker(conn: &Connection, key: &str, owner: &str) -> Result<()> {
    if let Some(mut marker) = read_marker(conn, key)?
        && marker.owner == owner
    {
        marker.owner = format!("stopped:{owner}");
        write_marker(conn, key, &marker)?;
    }
    Ok(())
}

pub fn remove_marker(conn: &Connection, key: &str) -> Result<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}

/// The markers of runs that were interrupted (their process is gone), by key.
pub fn interrupted_runs(conn: &Connection) -> Result<Vec<(String, RunMarker)>> {
    let mut stmt = conn.prepare(
        "SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
    )?;
    let rows = stmt
        .query_map(params![PREFIX], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (key, json) in rows {
        // A marker nobody can read tells nothing; it is not worth failing `stats` over.
        let Ok(marker) = serde_json::from_str::<RunMarker>(&json) else {
            continue;
        };
        if marker.interrupted() {
            out.push((key, marker));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_full_by_count_or_by_time() {
        let policy = ChunkPolicy {
            budget: Duration::from_millis(30),
            max_items: 3,
            gap: Duration::ZERO,
        };
        let mut chunk = Chunk::begin();
        chunk.add(2);
        assert!(!chunk.is_full(&policy));
        chunk.add(1);
        assert!(chunk.is_full(&policy));
        let chunk = Chunk::begin();
        std::thread::sleep(Duration::from_millis(35));
        assert!(chunk.is_full(&policy));
    }

    #[test]
    fn a_marker_of_a_gone_process_is_an_interrupted_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(dir.path().join("ws.db")).unwrap();
        let mine = run_owner();
        assert!(owner_alive(&mine));
        // A child that has exited and been reaped: its pid names no process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = child.id();
        child.wait().unwrap();
        let gone = format!("{}:{gone_pid}:abc", host());
        assert!(!owner_alive(&gone));
        assert!(owner_alive("elsewhere-host:1:abc"));
        let marker = |owner: &str| RunMarker {
            owner: owner.to_string(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            what: "full match of contacts".into(),
            identity: "full".into(),
            done: 3,
            total: 10,
            unit: "clusters".into(),
            updated_at: "2026-01-01T00:00:01.000Z".into(),
            complete_with: "dupdesk match".into(),
        };
        let (a, b) = (marker(&mine), marker(&gone));
        let mine = mine.clone();
        let found = store
            .call_blocking(move |c| {
                write_marker(c, &marker_key(&["match", "contacts"]), &a)?;
                write_marker(c, &marker_key(&["match", "companies"]), &b)?;
                interrupted_runs(c)
            })
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "run.match.companies");
        assert_eq!(
            found[0].1.describe(),
            "the full match of contacts started 2026-01-01T00:00:00.000Z was interrupted after 3 of 10 clusters"
        );
        // A run of this very process that stopped on an error is interrupted too.
        let left = store
            .call_blocking(move |c| {
                remove_marker(c, "run.match.companies")?;
                release_marker(c, "run.match.contacts", "someone-else")?;
                let before = interrupted_runs(c)?.len();
                release_marker(c, "run.match.contacts", &mine)?;
                Ok((before, interrupted_runs(c)?))
            })
            .unwrap();
        assert_eq!(left.0, 0);
        assert_eq!(left.1.len(), 1);
        assert_eq!(left.1[0].0, "run.match.contacts");
    }
}
