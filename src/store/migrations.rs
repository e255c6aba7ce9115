//! The workspace schema as an append-only list of migrations, tracked with SQLite's
//! `user_version`. A landed migration is never edited: a change is a new entry at the end.
//! PRAGMAs that must hold on every connection (WAL, foreign keys) are set in `store::open`,
//! not here, because they are per connection and not part of the schema.

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension};

/// Migration N (1-based) brings `user_version` from N-1 to N.
pub const MIGRATIONS: &[&str] = &[
    // 1: the data model of DESIGN.md.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One row per CRM record as last seen. `properties` is a JSON object of string-or-null
-- values; `history` a JSON object of property -> [{value, timestamp, source_type, source_id}]
-- newest first. `merged_into` is set once the record has been merged away.
CREATE TABLE records (
    rid          INTEGER PRIMARY KEY,
    object_type  TEXT NOT NULL CHECK (object_type IN ('contacts', 'companies')),
    id           TEXT NOT NULL,
    system       TEXT NOT NULL,
    properties   TEXT NOT NULL,
    history      TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT,
    updated_at   TEXT,
    archived     INTEGER NOT NULL DEFAULT 0,
    merged_into  TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    -- bumped whenever properties or history change, so the matcher re-scores only those
    changed_at   TEXT NOT NULL,
    UNIQUE (object_type, id)
) STRICT;
CREATE INDEX records_changed ON records (object_type, changed_at);
CREATE INDEX records_merged_into ON records (merged_into) WHERE merged_into IS NOT NULL;

-- Watermarks of incremental pulls and imports, one row per (source, object type).
CREATE TABLE sync_state (
    source       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    watermark    TEXT,
    last_run_at  TEXT NOT NULL,
    last_count   INTEGER NOT NULL DEFAULT 0,
    total_count  INTEGER NOT NULL DEFAULT 0,
    -- total_count as it was before the last run, for the record-count alert
    previous_total INTEGER,
    PRIMARY KEY (source, object_type)
) STRICT;

-- Candidate duplicate sets. `fingerprint` is a hash of the sorted member ids, so a cluster
-- keeps its identity across matcher runs while its members do not change.
CREATE TABLE clusters (
    id           INTEGER PRIMARY KEY,
    object_type  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    matcher      TEXT NOT NULL,
    score        REAL NOT NULL,
    weakest      REAL NOT NULL,
    size         INTEGER NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                 ('pending', 'approved', 'rejected', 'deferred', 'merging', 'merged', 'failed', 'stale')),
    flags        TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX clusters_fingerprint ON clusters (object_type, fingerprint);
CREATE INDEX clusters_status_score ON clusters (status, score DESC);

CREATE TABLE cluster_members (
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    rid          INTEGER NOT NULL REFERENCES records (rid),
    PRIMARY KEY (cluster_id, rid)
) STRICT, WITHOUT ROWID;
CREATE INDEX cluster_members_rid ON cluster_members (rid);

-- Score and per-field explanation (JSON) of each compared pair of a cluster; a_rid < b_rid.
CREATE TABLE pair_scores (
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    a_rid        INTEGER NOT NULL REFERENCES records (rid),
    b_rid        INTEGER NOT NULL REFERENCES records (rid),
    score        REAL NOT NULL,
    explanation  TEXT NOT NULL,
    PRIMARY KEY (cluster_id, a_rid, b_rid)
) STRICT, WITHOUT ROWID;

-- Append-only: an undo is a new row that names the row it undoes.
CREATE TABLE decisions (
    id           INTEGER PRIMARY KEY,
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id),
    steward      TEXT NOT NULL,
    decided_at   TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN
                 ('approve', 'reject', 'defer', 'skip', 'split', 'undo', 'note')),
    primary_id   TEXT,
    -- JSON: field -> {value, record_id, system, reason}
    field_choices TEXT NOT NULL DEFAULT '{}',
    -- JSON array of record ids excluded from the merge
    excluded     TEXT NOT NULL DEFAULT '[]',
    -- JSON array of the member ids at decision time
    members      TEXT NOT NULL DEFAULT '[]',
    note         TEXT NOT NULL DEFAULT '',
    undoes       INTEGER REFERENCES decisions (id)
) STRICT;
CREATE INDEX decisions_cluster ON decisions (cluster_id, id);

CREATE TRIGGER decisions_append_only_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER decisions_append_only_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;

-- Pairs a steward rejected; a_id < b_id.
CREATE TABLE not_duplicates (
    object_type  TEXT NOT NULL,
    a_id         TEXT NOT NULL,
    b_id         TEXT NOT NULL,
    decision_id  INTEGER REFERENCES decisions (id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (object_type, a_id, b_id),
    CHECK (a_id < b_id)
) STRICT, WITHOUT ROWID;

-- The executor's journal.
CREATE TABLE merge_jobs (
    id           INTEGER PRIMARY KEY,
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id),
    decision_id  INTEGER NOT NULL UNIQUE REFERENCES decisions (id),
    object_type  TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                 ('pending', 'running', 'merged', 'failed', 'paused')),
    survivor_id  TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX merge_jobs_status ON merge_jobs (status);

CREATE TABLE merge_steps (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES merge_jobs (id),
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('snapshot', 'merge', 'update', 'mapping')),
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'done', 'failed')),
    request      TEXT NOT NULL DEFAULT '{}',
    response_id  TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    updated_at   TEXT NOT NULL,
    UNIQUE (job_id, seq)
) STRICT;

-- Full properties and history of every member, read right before its merge: the only copy of
-- a loser once the CRM has merged it away.
CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES merge_jobs (id),
    object_type  TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    properties   TEXT NOT NULL,
    history      TEXT NOT NULL DEFAULT '{}',
    taken_at     TEXT NOT NULL,
    UNIQUE (job_id, record_id)
) STRICT;

-- Cross-system ids. Rows are never deleted, only deactivated; at most one active row maps a
-- source id to a given target system.
CREATE TABLE id_mapping (
    id             INTEGER PRIMARY KEY,
    object_type    TEXT NOT NULL,
    source_system  TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    target_system  TEXT NOT NULL,
    target_id      TEXT NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    superseded_by  INTEGER REFERENCES id_mapping (id),
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    deactivated_at TEXT,
    note           TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX id_mapping_active
    ON id_mapping (object_type, source_system, source_id, target_system) WHERE active = 1;
CREATE INDEX id_mapping_target ON id_mapping (target_system, target_id);
CREATE TRIGGER id_mapping_no_delete BEFORE DELETE ON id_mapping
BEGIN SELECT RAISE(ABORT, 'id_mapping rows are deactivated, never deleted'); END;

-- Merged records that mapped to different ids in another system: for the steward to settle.
CREATE TABLE mapping_conflicts (
    id             INTEGER PRIMARY KEY,
    job_id         INTEGER REFERENCES merge_jobs (id),
    object_type    TEXT NOT NULL,
    survivor_id    TEXT NOT NULL,
    target_system  TEXT NOT NULL,
    target_ids     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    resolved_at    TEXT,
    resolution     TEXT
) STRICT;
"#,
    // 2: the review queue sorted by size or by age reads a page from an index instead of
    // sorting every cluster (seconds at a million clusters). Rows of the same status follow
    // the sort order, and SQLite merges the statuses of a filter such as "open".
    r#"
CREATE INDEX clusters_status_size ON clusters (status, size DESC, score DESC);
CREATE INDEX clusters_status_created ON clusters (status, created_at);
"#,
    // 3: the matcher asks of every cluster whether a merge job refers to it; without an index
    // that is a scan of merge_jobs per cluster.
    r#"
CREATE INDEX merge_jobs_cluster ON merge_jobs (cluster_id);
"#,
    // 4: the approval's integrity. A cluster whose merge plan the CRM would refuse goes back
    // to the queue as `needs_attention`, with the reason in `status_reason` (also set for
    // `stale` when the executor found a member changed in the CRM). A job checked and refused
    // before its first merge is `cancelled`: nothing was sent. An `amend` decision replaces the
    // field choices of a job whose merges ran but whose update failed. `seen` keeps what the
    // steward was shown of every member, so the executor can tell a record edited in the CRM
    // since. `crm_properties` caches the CRM's property definitions (read-only, type,
    // options, unique). SQLite cannot change a CHECK constraint in place, so the three tables
    // are rebuilt (foreign keys are off for this migration; see `migrate`).
    r#"
CREATE TABLE clusters_v4 (
    id           INTEGER PRIMARY KEY,
    object_type  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    matcher      TEXT NOT NULL,
    score        REAL NOT NULL,
    weakest      REAL NOT NULL,
    size         INTEGER NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                 ('pending', 'approved', 'rejected', 'deferred', 'merging', 'merged', 'failed',
                  'stale', 'needs_attention')),
    flags        TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    status_reason TEXT
) STRICT;
INSERT INTO clusters_v4 (id, object_type, fingerprint, matcher, score, weakest, size, label,
                         status, flags, created_at, updated_at)
    SELECT id, object_type, fingerprint, matcher, score, weakest, size, label, status, flags,
           created_at, updated_at FROM clusters;
DROP TABLE clusters;
ALTER TABLE clusters_v4 RENAME TO clusters;
CREATE UNIQUE INDEX clusters_fingerprint ON clusters (object_type, fingerprint);
CREATE INDEX clusters_status_score ON clusters (status, score DESC);
CREATE INDEX clusters_status_size ON clusters (status, size DESC, score DESC);
CREATE INDEX clusters_status_created ON clusters (status, created_at);

CREATE TABLE decisions_v4 (
    id           INTEGER PRIMARY KEY,
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id),
    steward      TEXT NOT NULL,
    decided_at   TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN
                 ('approve', 'reject', 'defer', 'skip', 'split', 'undo', 'note', 'amend')),
    primary_id   TEXT,
    field_choices TEXT NOT NULL DEFAULT '{}',
    excluded     TEXT NOT NULL DEFAULT '[]',
    members      TEXT NOT NULL DEFAULT '[]',
    note         TEXT NOT NULL DEFAULT '',
    undoes       INTEGER REFERENCES decisions (id),
    -- JSON: member id -> {property: value or null}, as the steward was shown them
    seen         TEXT NOT NULL DEFAULT '{}',
    -- for an amend: the merge job whose field choices it replaces
    amends_job   INTEGER
) STRICT;
INSERT INTO decisions_v4 (id, cluster_id, steward, decided_at, action, primary_id,
                          field_choices, excluded, members, note, undoes)
    SELECT id, cluster_id, steward, decided_at, action, primary_id, field_choices, excluded,
           members, note, undoes FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_v4 RENAME TO decisions;
CREATE INDEX decisions_cluster ON decisions (cluster_id, id);
CREATE TRIGGER decisions_append_only_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER decisions_append_only_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;

CREATE TABLE merge_jobs_v4 (
    id           INTEGER PRIMARY KEY,
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id),
    decision_id  INTEGER NOT NULL UNIQUE REFERENCES decisions (id),
    object_type  TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                 ('pending', 'running', 'merged', 'failed', 'paused', 'cancelled')),
    survivor_id  TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
INSERT INTO merge_jobs_v4 SELECT id, cluster_id, decision_id, object_type, status, survivor_id,
                                 attempts, last_error, created_at, updated_at FROM merge_jobs;
DROP TABLE merge_jobs;
ALTER TABLE merge_jobs_v4 RENAME TO merge_jobs;
CREATE INDEX merge_jobs_status ON merge_jobs (status);
CREATE INDEX merge_jobs_cluster ON merge_jobs (cluster_id);

-- The CRM's property definitions, one JSON `model::PropertyDef` per property.
CREATE TABLE crm_properties (
    object_type  TEXT NOT NULL,
    name         TEXT NOT NULL,
    definition   TEXT NOT NULL,
    fetched_at   TEXT NOT NULL,
    PRIMARY KEY (object_type, name)
) STRICT, WITHOUT ROWID;

-- A conflict is either a merge whose records mapped to different ids in another system
-- (`merge`), or live records that share one id in another system (`shared_target`, found by a
-- pull or after a merge): `source_ids` lists those records.
ALTER TABLE mapping_conflicts ADD COLUMN kind TEXT NOT NULL DEFAULT 'merge';
ALTER TABLE mapping_conflicts ADD COLUMN source_ids TEXT NOT NULL DEFAULT '[]';
"#,
    // 5: a pull checks the ids in another system that each page touched for records sharing
    // them, and looks up the open conflict of each such id: without an index that is a scan of
    // `mapping_conflicts` per id, per page. The unique index also holds the rule of one open
    // `shared_target` conflict per shared id. `source_system` is part of that key (records of
    // two systems sharing an ERP id are two separate questions) and names whose ids
    // `source_ids` are.
    r#"
ALTER TABLE mapping_conflicts ADD COLUMN source_system TEXT;
CREATE UNIQUE INDEX mapping_conflicts_shared_open
    ON mapping_conflicts (object_type, source_system, target_system, target_ids)
    WHERE kind = 'shared_target' AND resolved_at IS NULL;
"#,
    // 6: executors claim jobs. A job is run by one executor at a time: the one whose id is in
    // `owner`, for as long as its lease (`lease_until`, renewed by a heartbeat) lasts or its
    // process lives. Another executor takes a job over only when the lease expired or the
    // owner's process is gone, so two `apply` processes never run one job at once.
    r#"
ALTER TABLE merge_jobs ADD COLUMN owner TEXT;
ALTER TABLE merge_jobs ADD COLUMN lease_until TEXT;
"#,
];

/// Migrations that rebuild tables other tables refer to: they run with foreign keys off (a
/// `DROP TABLE` would otherwise cascade), and the references are checked before they commit.
const REBUILDS: &[i64] = &[4];

/// Bring the schema up to date inside one transaction per migration. A workspace written by a
/// newer dupdesk is refused rather than guessed at.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let target = MIGRATIONS.len() as i64;
    if current > target {
        bail!(
            "workspace schema version {current} is newer than this dupdesk understands ({target}); upgrade dupdesk"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let rebuild = REBUILDS.contains(&version);
        if rebuild {
            // Only takes effect outside a transaction.
            conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        }
        let applied = (|| -> Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)
                .with_context(|| format!("applying workspace migration {version}"))?;
            if rebuild {
                let broken: Option<String> = tx
                    .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                    .optional()?;
                if let Some(table) = broken {
                    bail!("workspace migration {version} left a broken reference in {table}");
                }
            }
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
            Ok(())
        })();
        if rebuild {
            conn.execute_batch("PRAGMA foreign_keys = ON")?;
        }
        applied?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        conn.execute_batch("PRAGMA foreign_key_check").unwrap();
    }

    /// A workspace written before migration 4 keeps its clusters, members, decisions and
    /// jobs through the table rebuilds, and its references and triggers still hold.
    #[test]
    fn migration_4_rebuilds_tables_and_keeps_their_rows_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO records (rid, object_type, id, system, properties, first_seen_at, last_seen_at, changed_at)
                 VALUES (1, 'contacts', '101', 'crm', '{}', 't', 't', 't'),
                        (2, 'contacts', '102', 'crm', '{}', 't', 't', 't');
             INSERT INTO clusters (id, object_type, fingerprint, matcher, score, weakest, size, status, created_at, updated_at)
                 VALUES (7, 'contacts', 'f', 'm', 0.9, 0.9, 2, 'merging', 't', 't');
             INSERT INTO cluster_members VALUES (7, 1), (7, 2);
             INSERT INTO decisions (id, cluster_id, steward, decided_at, action, primary_id)
                 VALUES (3, 7, 'ada', 't', 'approve', '101');
             INSERT INTO merge_jobs (id, cluster_id, decision_id, object_type, status, created_at, updated_at)
                 VALUES (5, 7, 3, 'contacts', 'running', 't', 't');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let fk: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(fk, "foreign keys are on again after the rebuild");
        let (status, job): (String, String) = conn
            .query_row(
                "SELECT c.status, j.status FROM clusters c JOIN merge_jobs j ON j.cluster_id = c.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), job.as_str()), ("merging", "running"));
        conn.execute(
            "UPDATE clusters SET status = 'needs_attention', status_reason = 'x' WHERE id = 7",
            [],
        )
        .unwrap();
        let err = conn
            .execute("UPDATE decisions SET note = 'changed'", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        // References still point at the rebuilt tables.
        let err = conn
            .execute(
                "INSERT INTO merge_jobs (cluster_id, decision_id, object_type, created_at, updated_at)
                 VALUES (7, 99, 'contacts', 't', 't')",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
        let members: i64 = conn
            .query_row("SELECT COUNT(*) FROM cluster_members", [], |r| r.get(0))
            .unwrap();
        assert_eq!(members, 2);
    }

    /// One open `shared_target` conflict per shared id: a second is refused, a resolved one
    /// does not count, and merge conflicts are not held to it.
    #[test]
    fn migration_5_keeps_one_open_shared_target_conflict_per_id() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let insert = |conn: &Connection, kind: &str, resolved: Option<&str>| {
            conn.execute(
                "INSERT INTO mapping_conflicts (object_type, survivor_id, source_system, target_system,
                                                target_ids, source_ids, kind, created_at, resolved_at)
                 VALUES ('contacts', '101', 'crm', 'erp', '[\"E-1\"]', '[\"101\",\"102\"]', ?1, 't', ?2)",
                rusqlite::params![kind, resolved],
            )
        };
        insert(&conn, "shared_target", None).unwrap();
        let err = insert(&conn, "shared_target", None).unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        insert(&conn, "shared_target", Some("t2")).unwrap();
        insert(&conn, "merge", None).unwrap();
        insert(&conn, "merge", None).unwrap();
    }

    #[test]
    fn a_newer_workspace_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
