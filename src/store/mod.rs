//! The SQLite workspace: one file per workspace, WAL, foreign keys on, migrations tracked with
//! `user_version`. One thread owns the connection; async callers send it closures through
//! [`Store::call`] and synchronous callers through [`Store::call_blocking`], so every query
//! runs in one place and in order. Typed queries live in the submodules as functions over a
//! `&Connection`, so several of them can share one transaction. Render code must not call it.

pub mod decisions;
pub mod history;
pub mod journal;
pub mod mapping;
pub mod migrations;
pub mod properties;
pub mod queue;
pub mod records;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OptionalExtension, params};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the workspace's connection-owning thread. Cheap to clone; the thread ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Open a connection with the per-connection settings every workspace connection needs.
pub fn open_connection(path: &Path) -> Result<Connection> {
    let mut conn =
        Connection::open(path).with_context(|| format!("opening workspace {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Only takes effect when the file is created. Records with their property history run
    // to several hundred bytes, and 16 KiB pages pack them with less slack than the default
    // 4 KiB: a 100,000-row import takes 0.85-0.97 s instead of 1.07-1.25 s
    // (`cargo bench --bench import`).
    conn.execute_batch("PRAGMA page_size = 16384")?;
    // journal_mode returns a row, so it is read rather than executed.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && path != Path::new(":memory:") {
        return Err(anyhow!(
            "workspace {} could not switch to WAL (got {mode})",
            path.display()
        ));
    }
    // Every write transaction takes the write lock when it begins (BEGIN IMMEDIATE). A
    // deferred one reads first and then asks for the lock; if another process wrote
    // meanwhile, SQLite must refuse at once (SQLITE_BUSY_SNAPSHOT) instead of waiting out the
    // busy timeout. Read-only snapshots ask for `Deferred` explicitly.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    // FULL: a decision acknowledged to the steward survives power loss, not just a crash.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")?;
    // Statement journals and sorts in memory rather than in temporary files: a large write
    // (the matcher's clusters) journals each statement, and those files were its slowest part.
    conn.execute_batch("PRAGMA temp_store = MEMORY;")?;
    Ok(conn)
}

impl Store {
    /// Open (creating if needed) and migrate the workspace at `path`, and start its thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the folder of {}", path.display()))?;
        }
        let mut conn = open_connection(&path)?;
        migrations::migrate(&mut conn)
            .with_context(|| format!("migrating workspace {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("dupdesk-store".into())
            .spawn(move || {
                for job in rx {
                    job(&mut conn);
                }
            })
            .context("starting the store thread")?;
        Ok(Store { tx, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the store thread and await its result.
    pub async fn call<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| anyhow!("the store thread has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the store thread dropped a request"))?
    }

    /// [`Store::call`] for a steward's decision, which is never refused because another
    /// process holds the workspace's write lock: while SQLite says busy (after its own busy
    /// timeout), it waits a moment and runs `f` again. `f` must be one transaction, so that a
    /// busy attempt wrote nothing.
    pub async fn call_waiting<F, R>(&self, f: F) -> Result<R>
    where
        F: Fn(&mut Connection) -> Result<R> + Send + Sync + 'static,
        R: Send + 'static,
    {
        let f = std::sync::Arc::new(f);
        loop {
            let attempt = f.clone();
            match self.call(move |c| attempt(c)).await {
                Err(e) if is_busy(&e) => {
                    tracing::info!("the workspace is busy (another process writes); waiting");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Run `f` on the store thread and block until it returns. For synchronous callers only;
    /// never from inside an async task (use [`Store::call`] there).
    pub fn call_blocking<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| anyhow!("the store thread has stopped"))?;
        answer
            .recv()
            .map_err(|_| anyhow!("the store thread dropped a request"))?
    }
}

/// Workspace settings (which CRM, where the sandbox keeps its data, ...).
/// Run `write` with a 256 MiB page cache, then restore the connection's own, whatever
/// happened. For one large transaction (an import, a matcher run's clusters): with the default
/// cache SQLite spills dirty pages to the WAL mid-transaction and writes them again later
/// (measured: a third of a 100,000-row import's write time, most of writing 136,000 clusters).
pub fn with_large_cache<T>(
    conn: &mut Connection,
    write: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA cache_size = -262144")?;
    let result = write(conn);
    conn.execute_batch(&format!("PRAGMA cache_size = {cache}"))?;
    result
}

pub fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Whether an error is SQLite's "busy" or "locked": another connection holds the lock.
pub fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

pub fn now_ts() -> String {
    crate::model::format_ts(&chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn store_runs_closures_on_its_thread_against_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ws.db");
        let store = Store::open(&path).unwrap();
        store
            .call(|c| set_meta(c, "crm.kind", "sandbox"))
            .await
            .unwrap();
        let v = store.call(|c| get_meta(c, "crm.kind")).await.unwrap();
        assert_eq!(v.as_deref(), Some("sandbox"));
        let mode: String = store
            .call_blocking(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Reopening finds the value and does not re-run migrations.
        let store = Store::open(&path).unwrap();
        let v = store.call_blocking(|c| get_meta(c, "crm.kind")).unwrap();
        assert_eq!(v.as_deref(), Some("sandbox"));
    }

    #[test]
    fn decisions_are_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("ws.db")).unwrap();
        let err = store
            .call_blocking(|c| {
                let now = now_ts();
                c.execute(
                    "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, created_at, updated_at)
                     VALUES ('contacts', 'f', 'test', 0.9, 0.9, 2, ?1, ?1)",
                    [&now],
                )?;
                c.execute(
                    "INSERT INTO decisions (cluster_id, steward, decided_at, action) VALUES (1, 'me', ?1, 'approve')",
                    [&now],
                )?;
                c.execute("UPDATE decisions SET action = 'reject'", [])?;
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}
