//! Where each source's last pull or import of an object type left off (`sync_state`): the
//! watermark the next incremental pull starts from, and the record totals of the last two runs
//! that the record-count alert compares. Written once per run, at its end.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::model::ObjectType;

/// How a run's watermark meets the one stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// The run's watermark replaces it (a pull: its start, minus the look-back window).
    Replace,
    /// The newer of the two stays (an import: an older file must not move the watermark back).
    KeepNewest,
}

/// The watermark `source` left for `object`, if a run left one.
pub fn watermark(conn: &Connection, source: &str, object: ObjectType) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT watermark FROM sync_state WHERE source = ?1 AND object_type = ?2",
            params![source, object],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// Record a run of `source` over `object` that wrote `written` records: its watermark (by
/// `rule`), when it ran, and the live records of the type now, keeping the previous total.
pub fn record_run(
    conn: &Connection,
    source: &str,
    object: ObjectType,
    watermark: Option<&str>,
    rule: Watermark,
    now: &str,
    written: u64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO sync_state (source, object_type, watermark, last_run_at, last_count, total_count)
         VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COUNT(*) FROM records WHERE object_type = ?2 AND archived = 0 AND merged_into IS NULL))
         ON CONFLICT (source, object_type) DO UPDATE SET
            watermark = CASE WHEN ?6
                THEN coalesce(max(excluded.watermark, sync_state.watermark), excluded.watermark, sync_state.watermark)
                ELSE excluded.watermark END,
            previous_total = sync_state.total_count,
            last_run_at = excluded.last_run_at, last_count = excluded.last_count,
            total_count = excluded.total_count",
        params![
            source,
            object,
            watermark,
            now,
            written as i64,
            rule == Watermark::KeepNewest
        ],
    )?;
    Ok(())
}
