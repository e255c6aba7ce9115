//! Typed queries on the `records` table: upsert what a pull or import saw, read records back.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::history;
use crate::domain::model::{ObjectType, Record, format_ts, parse_ts};

/// What an upsert did, for progress lines and for the "pull twice imports nothing" check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertStats {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl UpsertStats {
    pub fn add(&mut self, other: UpsertStats) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// A record with its workspace row id and bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub rid: i64,
    pub system: String,
    pub record: Record,
    pub merged_into: Option<String>,
    pub changed_at: String,
}

/// Insert or update records as seen in `system` at `now`. A record whose properties and history
/// are unchanged only has its `last_seen_at` moved. Call inside a transaction for speed and
/// all-or-nothing behaviour.
pub fn upsert_records(
    conn: &Connection,
    system: &str,
    records: &[Record],
    now: &str,
) -> Result<UpsertStats> {
    let mut upsert = Upsert::new(conn)?;
    for r in records {
        upsert.one(system, &EncodedRecord::new(r)?, now)?;
    }
    Ok(upsert.stats)
}

/// What the `records` table stores of a record, with its properties and history already in
/// their JSON form, so a bulk writer (the CSV import) can encode on its own thread and leave
/// the store thread only the writing.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRecord {
    pub object_type: ObjectType,
    pub id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub archived: bool,
    properties: String,
    history: String,
}

impl EncodedRecord {
    pub fn new(r: &Record) -> Result<EncodedRecord> {
        Ok(EncodedRecord {
            object_type: r.object_type,
            id: r.id.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived: r.archived,
            properties: serde_json::to_string(&r.properties)?,
            history: history::encode_owned(&r.history, &r.properties)?,
        })
    }

    /// From properties and history already encoded exactly as [`EncodedRecord::new`] encodes
    /// a [`Record`]'s: the properties as `serde_json` writes them, the history as
    /// [`history::encode`] does (anything else would read back wrong and defeat the unchanged
    /// check).
    pub fn from_json(
        object_type: ObjectType,
        id: String,
        created_at: Option<DateTime<Utc>>,
        updated_at: Option<DateTime<Utc>>,
        properties: String,
        history: String,
    ) -> EncodedRecord {
        EncodedRecord {
            object_type,
            id,
            created_at,
            updated_at,
            archived: false,
            properties,
            history,
        }
    }
}

/// [`upsert_records`] for records encoded beforehand.
pub fn upsert_encoded(
    conn: &Connection,
    system: &str,
    records: &[&EncodedRecord],
    now: &str,
) -> Result<UpsertStats> {
    let mut upsert = Upsert::new(conn)?;
    for e in records {
        upsert.one(system, e, now)?;
    }
    Ok(upsert.stats)
}

/// The prepared statements of an upsert, prepared once per call.
struct Upsert<'c> {
    select: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    touch: rusqlite::CachedStatement<'c>,
    stats: UpsertStats,
}

impl<'c> Upsert<'c> {
    fn new(conn: &'c Connection) -> Result<Upsert<'c>> {
        Ok(Upsert {
            select: conn.prepare_cached(
                "SELECT properties, history, archived FROM records WHERE object_type = ?1 AND id = ?2",
            )?,
            insert: conn.prepare_cached(
                "INSERT INTO records (object_type, id, system, properties, history, created_at, updated_at,
                              archived, first_seen_at, last_seen_at, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9)",
            )?,
            update: conn.prepare_cached(
                "UPDATE records SET system = ?3, properties = ?4, history = ?5, created_at = ?6,
                updated_at = ?7, archived = ?8, last_seen_at = ?9, changed_at = ?9
         WHERE object_type = ?1 AND id = ?2",
            )?,
            touch: conn.prepare_cached(
                "UPDATE records SET last_seen_at = ?3 WHERE object_type = ?1 AND id = ?2",
            )?,
            stats: UpsertStats::default(),
        })
    }

    fn one(&mut self, system: &str, r: &EncodedRecord, now: &str) -> Result<()> {
        let created = r.created_at.as_ref().map(format_ts);
        let updated = r.updated_at.as_ref().map(format_ts);
        let existing: Option<(String, String, bool)> = self
            .select
            .query_row(params![r.object_type.as_str(), r.id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        // The same history can be stored in two forms (a workspace from before the compact
        // one); only when the texts differ is it worth reading both.
        let unchanged = existing.as_ref().is_some_and(|(p, h, a)| {
            *p == r.properties
                && *a == r.archived
                && (*h == r.history || same_history(p, h, &r.history))
        });
        match existing {
            Some(_) if unchanged => {
                self.touch
                    .execute(params![r.object_type.as_str(), r.id, now])?;
                self.stats.unchanged += 1;
            }
            None => {
                self.insert.execute(params![
                    r.object_type.as_str(),
                    r.id,
                    system,
                    r.properties,
                    r.history,
                    created,
                    updated,
                    r.archived,
                    now
                ])?;
                self.stats.inserted += 1;
            }
            Some(_) => {
                self.update.execute(params![
                    r.object_type.as_str(),
                    r.id,
                    system,
                    r.properties,
                    r.history,
                    created,
                    updated,
                    r.archived,
                    now
                ])?;
                self.stats.updated += 1;
            }
        }
        Ok(())
    }
}

/// Whether two stored histories of a record with these stored properties say the same; an
/// unreadable one differs.
fn same_history(properties: &str, a: &str, b: &str) -> bool {
    let Ok(properties) = serde_json::from_str(properties) else {
        return false;
    };
    match (
        history::decode(a, &properties),
        history::decode(b, &properties),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

const COLUMNS: &str = "rid, object_type, id, system, properties, history, created_at, updated_at, archived, merged_into, changed_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

type RawRow = (
    i64,
    ObjectType,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    String,
);

fn decode(raw: RawRow) -> Result<StoredRecord> {
    let (
        rid,
        object_type,
        id,
        system,
        props,
        history,
        created,
        updated,
        archived,
        merged_into,
        changed_at,
    ) = raw;
    let properties = serde_json::from_str(&props)
        .with_context(|| format!("record {id}: properties are not valid JSON"))?;
    let history = history::decode(&history, &properties)
        .with_context(|| format!("record {id}: unreadable history"))?;
    Ok(StoredRecord {
        rid,
        system,
        record: Record {
            object_type,
            properties,
            history,
            created_at: created.as_deref().and_then(parse_ts),
            updated_at: updated.as_deref().and_then(parse_ts),
            archived,
            id,
        },
        merged_into,
        changed_at,
    })
}

pub fn get_record(
    conn: &Connection,
    object_type: ObjectType,
    id: &str,
) -> Result<Option<StoredRecord>> {
    let raw = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM records WHERE object_type = ?1 AND id = ?2"),
            params![object_type.as_str(), id],
            from_row,
        )
        .optional()?;
    raw.map(decode).transpose()
}

pub fn get_by_rid(conn: &Connection, rid: i64) -> Result<Option<StoredRecord>> {
    let raw = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM records WHERE rid = ?1"),
            params![rid],
            from_row,
        )
        .optional()?;
    raw.map(decode).transpose()
}

/// Every live (not archived, not merged away) record of a type, in row order.
pub fn live_records(conn: &Connection, object_type: ObjectType) -> Result<Vec<StoredRecord>> {
    // `+object_type`: a scan in row order, rather than the index on object_type and then a
    // sort of every row.
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM records
         WHERE +object_type = ?1 AND archived = 0 AND merged_into IS NULL ORDER BY rid"
    ))?;
    let rows = stmt.query_map([object_type.as_str()], from_row)?;
    rows.map(|r| decode(r?)).collect()
}

/// Live records of a type changed at or after `since`.
pub fn changed_since(
    conn: &Connection,
    object_type: ObjectType,
    since: &str,
) -> Result<Vec<StoredRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM records
         WHERE object_type = ?1 AND changed_at >= ?2 AND archived = 0 AND merged_into IS NULL ORDER BY rid"
    ))?;
    let rows = stmt.query_map(params![object_type.as_str(), since], from_row)?;
    rows.map(|r| decode(r?)).collect()
}

/// Record counts per (system, object type), live ones only.
pub fn counts(conn: &Connection) -> Result<Vec<(String, ObjectType, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT system, object_type, COUNT(*) FROM records
         WHERE archived = 0 AND merged_into IS NULL GROUP BY system, object_type ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, ObjectType>(1)?,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    rows.collect::<rusqlite::Result<_>>()
        .context("counting the records")
}

/// What the workspace holds under one id of one system: for checking an id a file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdState {
    /// A live record of that system.
    Live,
    /// Merged away: the record it lives on in now (the end of its `merged_into` chain, as far as
    /// the workspace holds it).
    MergedInto(String),
    /// Deleted in the CRM (archived by a pull).
    Archived,
    /// The id is a record of another system.
    OtherSystem(String),
    /// No record has it.
    Missing,
}

/// The state of `id` among the `object_type` records of `system`.
pub fn id_state(
    conn: &Connection,
    object_type: ObjectType,
    system: &str,
    id: &str,
) -> Result<IdState> {
    let mut stmt = conn.prepare_cached(
        "SELECT system, archived, merged_into FROM records WHERE object_type = ?1 AND id = ?2",
    )?;
    let mut row = |id: &str| {
        stmt.query_row(params![object_type.as_str(), id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()
    };
    let Some((found, archived, merged_into)) = row(id)? else {
        return Ok(IdState::Missing);
    };
    if found != system {
        return Ok(IdState::OtherSystem(found));
    }
    let Some(mut survivor) = merged_into else {
        return Ok(if archived {
            IdState::Archived
        } else {
            IdState::Live
        });
    };
    // A survivor may have been merged again; a loop (never written by dupdesk) ends the walk.
    for _ in 0..1000 {
        match row(&survivor)? {
            Some((_, _, Some(next))) if next != id => survivor = next,
            _ => break,
        }
    }
    Ok(IdState::MergedInto(survivor))
}

/// The systems whose records the workspace holds (`crm` after a pull, the `--system` of an
/// import).
pub fn systems(conn: &Connection) -> Result<std::collections::BTreeSet<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT system FROM records")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The `updatedAt` the workspace holds for each of `ids` that is a live record of the type
/// (not archived, not merged away), in the stored form: what a pull compares a search result
/// with before reading it again.
pub fn held_versions(
    conn: &Connection,
    object_type: ObjectType,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Option<String>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT updated_at FROM records
         WHERE object_type = ?1 AND id = ?2 AND archived = 0 AND merged_into IS NULL",
    )?;
    let mut held = std::collections::HashMap::new();
    for id in ids {
        if let Some(updated) = stmt
            .query_row(params![object_type.as_str(), id], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?
        {
            held.insert(id.clone(), updated);
        }
    }
    Ok(held)
}

/// Mark a live record as archived (deleted in the CRM). Returns its row id if it was live.
pub fn mark_archived(conn: &Connection, object_type: ObjectType, id: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "UPDATE records SET archived = 1, changed_at = ?3
             WHERE object_type = ?1 AND id = ?2 AND archived = 0 AND merged_into IS NULL
             RETURNING rid",
        )?
        .query_row(params![object_type.as_str(), id, super::now_ts()], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Mark `id` as merged into `survivor`.
pub fn mark_merged(
    conn: &Connection,
    object_type: ObjectType,
    id: &str,
    survivor: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE records SET merged_into = ?3, changed_at = ?4 WHERE object_type = ?1 AND id = ?2",
        params![object_type.as_str(), id, survivor, super::now_ts()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::collections::BTreeMap;

    fn rec(id: &str, email: &str) -> Record {
        let mut properties = BTreeMap::new();
        properties.insert("email".to_string(), Some(email.to_string()));
        Record {
            object_type: ObjectType::Contacts,
            id: id.into(),
            properties,
            history: BTreeMap::new(),
            created_at: parse_ts("2026-01-01T00:00:00.000Z"),
            updated_at: parse_ts("2026-01-02T00:00:00.000Z"),
            archived: false,
        }
    }

    #[test]
    fn upsert_counts_inserted_updated_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        let stats = store
            .call_blocking(|c| {
                let tx = c.transaction()?;
                let s = upsert_records(
                    &tx,
                    "crm",
                    &[rec("1", "a@x.com"), rec("2", "b@x.com")],
                    "t1",
                )?;
                tx.commit()?;
                Ok(s)
            })
            .unwrap();
        assert_eq!(
            stats,
            UpsertStats {
                inserted: 2,
                updated: 0,
                unchanged: 0
            }
        );
        let stats = store
            .call_blocking(|c| {
                upsert_records(c, "crm", &[rec("1", "a@x.com"), rec("2", "B@x.com")], "t2")
            })
            .unwrap();
        assert_eq!(
            stats,
            UpsertStats {
                inserted: 0,
                updated: 1,
                unchanged: 1
            }
        );
        let r = store
            .call_blocking(|c| get_record(c, ObjectType::Contacts, "2"))
            .unwrap()
            .unwrap();
        assert_eq!(r.record.get("email"), Some("B@x.com"));
        assert_eq!(r.changed_at, "t2");
        let live = store
            .call_blocking(|c| live_records(c, ObjectType::Contacts))
            .unwrap();
        assert_eq!(live.len(), 2);
        let changed = store
            .call_blocking(|c| changed_since(c, ObjectType::Contacts, "t2"))
            .unwrap();
        assert_eq!(changed.len(), 1);
    }

    #[test]
    fn id_state_follows_merges_to_the_record_an_id_lives_on_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        let states = store
            .call_blocking(|c| {
                let mut gone = rec("4", "d@x.com");
                gone.archived = true;
                let ours = [
                    rec("1", "a@x.com"),
                    rec("2", "b@x.com"),
                    rec("3", "c@x.com"),
                    gone,
                ];
                upsert_records(c, "crm", &ours, "t1")?;
                upsert_records(c, "erp", &[rec("E-9", "e@x.com")], "t1")?;
                // 1 into 2, then 2 into 3: 1 lives on in 3.
                mark_merged(c, ObjectType::Contacts, "1", "2")?;
                mark_merged(c, ObjectType::Contacts, "2", "3")?;
                let state = |id: &str| id_state(c, ObjectType::Contacts, "crm", id);
                Ok((
                    [
                        state("1")?,
                        state("2")?,
                        state("3")?,
                        state("4")?,
                        state("5")?,
                        state("E-9")?,
                    ],
                    id_state(c, ObjectType::Companies, "crm", "3")?,
                    systems(c)?,
                ))
            })
            .unwrap();
        assert_eq!(
            states.0,
            [
                IdState::MergedInto("3".into()),
                IdState::MergedInto("3".into()),
                IdState::Live,
                IdState::Archived,
                IdState::Missing,
                IdState::OtherSystem("erp".into()),
            ]
        );
        assert_eq!(states.1, IdState::Missing, "a contact is no company");
        assert_eq!(
            states.2.into_iter().collect::<Vec<_>>(),
            vec!["crm".to_string(), "erp".to_string()]
        );
    }

    #[test]
    fn history_in_the_plain_format_reads_and_counts_as_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        let mut r = rec("1", "a@x.com");
        r.history.insert(
            "email".into(),
            vec![crate::domain::model::PropertyVersion {
                value: Some("a@x.com".into()),
                timestamp: parse_ts("2026-01-02T00:00:00.000Z").unwrap(),
                source_type: "CRM_UI".into(),
                source_id: None,
            }],
        );
        let plain = serde_json::to_string(&r.history).unwrap();
        let (r2, plain2) = (r.clone(), plain.clone());
        // As a workspace written before the compact format holds it.
        store
            .call_blocking(move |c| {
                upsert_records(c, "crm", std::slice::from_ref(&r2), "t1")?;
                c.execute(
                    "UPDATE records SET history = ?1 WHERE id = '1'",
                    params![plain2],
                )?;
                Ok(())
            })
            .unwrap();
        let (r2, read) = (r.clone(), r.clone());
        let (stats, stored, back) = store
            .call_blocking(move |c| {
                let stats = upsert_records(c, "crm", std::slice::from_ref(&r2), "t2")?;
                let stored: String =
                    c.query_row("SELECT history FROM records WHERE id = '1'", [], |row| {
                        row.get(0)
                    })?;
                Ok((stats, stored, get_record(c, read.object_type, &read.id)?))
            })
            .unwrap();
        assert_eq!(stats.unchanged, 1, "{stats:?}");
        assert_eq!(stored, plain, "an unchanged record is not rewritten");
        let back = back.unwrap();
        assert_eq!(back.record, r);
        assert_eq!(back.changed_at, "t1");

        // A real change to the history is still one.
        r.history.get_mut("email").unwrap()[0].source_type = "API".into();
        let stats = store
            .call_blocking(move |c| upsert_records(c, "crm", std::slice::from_ref(&r), "t3"))
            .unwrap();
        assert_eq!(stats.updated, 1, "{stats:?}");
    }
}
