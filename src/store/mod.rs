//! The SQLite workspace: one file per workspace, WAL, foreign keys on, migrations tracked with
//! `user_version`. One thread owns the connection; async callers send it closures through
//! [`Store::call`] and synchronous callers through [`Store::call_blocking`], so every query
//! runs in one place and in order. Typed queries live in the submodules as functions over a
//! `&Connection`, so several of them can share one transaction. Render code must not call it.

pub mod chunks;
pub mod clock;
pub mod clusters;
pub mod decisions;
pub mod history;
pub mod journal;
pub mod mapping;
pub mod matches;
pub mod migrations;
pub mod properties;
pub mod queue;
pub mod records;
pub mod reports;
pub mod sync_state;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OptionalExtension, params};

/// A closure the store thread runs on its connection.
type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// What the store thread is asked to do: run a closure, or close the connection and stop.
enum Message {
    Work(Work),
    Close(mpsc::SyncSender<rusqlite::Result<()>>),
}

/// A handle to the workspace's connection-owning thread. Cheap to clone; the thread ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Message>,
    path: PathBuf,
    /// Opened by [`Store::open_for_reading`] on a workspace this process may not write.
    read_only: bool,
    /// What its stamps read ([`clock`]); the store thread holds the same one.
    clock: Clock,
    _last: std::sync::Arc<LastHandle>,
}

/// Shared by every clone of a [`Store`]: when the last one goes, the connection is closed and
/// the drop waits for it. Closing checkpoints the WAL into the workspace file and removes the
/// -wal and -shm files, so a command that ends leaves one file that holds everything (a copy
/// of it alone loses nothing) rather than a WAL the next open would have to replay.
struct LastHandle {
    tx: mpsc::Sender<Message>,
    store_thread: thread::ThreadId,
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        let (reply, answer) = mpsc::sync_channel(1);
        if self.tx.send(Message::Close(reply)).is_err() {
            return; // closed already
        }
        // Dropped by a job on the store thread itself: it closes once that job returns.
        if thread::current().id() == self.store_thread {
            return;
        }
        if let Ok(Err(e)) = answer.recv() {
            tracing::warn!(target: "dupdesk::store", error = %e, "closing the workspace failed");
        }
    }
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
    conn.busy_handler(Some(busy_waiter()))?;
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

/// How long a connection waits for another's write lock before SQLite answers "busy".
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a waiting connection tries the write lock again. SQLite's own busy timeout backs
/// off to a try every 100 ms, and a long writer that commits a chunk and begins the next one
/// within microseconds would win nearly every race against such a waiter: its chunks would
/// make no one wait less. Trying every 2 ms, a waiter takes the lock in the pause a chunked
/// writer leaves between its chunks ([`chunks::ChunkPolicy::gap`]); the tries cost a few
/// system calls each.
const BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// The busy handler of every workspace connection: [`BUSY_TIMEOUT`] in all, a try every
/// [`BUSY_POLL`]. SQLite counts the calls of one wait from zero, which restarts the clock.
fn busy_waiter() -> impl FnMut(i32) -> bool + Send + 'static {
    let mut since = std::time::Instant::now();
    move |count| {
        if count == 0 {
            since = std::time::Instant::now();
        }
        if since.elapsed() >= BUSY_TIMEOUT {
            return false;
        }
        thread::sleep(BUSY_POLL);
        true
    }
}

/// Why [`Store::open_existing`] refused a path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no workspace at {} ({})", path.display(), missing_hint(path))]
    Missing { path: PathBuf },
    #[error(
        "{} is not a dupdesk workspace ({why}); pass --workspace with the workspace's file",
        path.display()
    )]
    NotAWorkspace { path: PathBuf, why: String },
}

/// The file `dupdesk demo` makes its workspace in, unless told another (here because a
/// missing workspace's error points at it).
pub const DEMO_WORKSPACE: &str = "dupdesk-demo.db";

/// What to do about a missing workspace. Right after `dupdesk demo` the workspace is the
/// demo's, beside the one asked for: say so rather than only "run the demo".
fn missing_hint(path: &Path) -> String {
    let demo = path
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(DEMO_WORKSPACE);
    if demo.is_file() && demo != path {
        format!(
            "the demo's workspace is {}: pass --workspace {}",
            demo.display(),
            demo.display()
        )
    } else {
        "run `dupdesk demo`, `dupdesk pull` or `dupdesk import` first, or pass --workspace".into()
    }
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Refuse `path` unless it is a workspace already: an SQLite file with dupdesk's schema. Only
/// reads: an empty file or another program's database is left exactly as it was, where opening it
/// as a workspace would have written a schema into it.
fn check_workspace(path: &Path) -> Result<(), OpenError> {
    use std::io::Read;
    let not = |why: String| OpenError::NotAWorkspace {
        path: path.to_path_buf(),
        why,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(not(e.to_string())),
    };
    if !file.metadata().map_err(|e| not(e.to_string()))?.is_file() {
        return Err(not("not a file".into()));
    }
    let mut magic = Vec::with_capacity(SQLITE_MAGIC.len());
    (&mut file)
        .take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut magic)
        .map_err(|e| not(e.to_string()))?;
    if magic.is_empty() {
        return Err(not("an empty file".into()));
    }
    if magic != SQLITE_MAGIC {
        return Err(not("not an SQLite file".into()));
    }
    drop(file);
    let schema = |conn: &Connection| -> rusqlite::Result<(i64, i64)> {
        let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('records', 'id_mapping', 'clusters')",
            [],
            |r| r.get(0),
        )?;
        Ok((version, tables))
    };
    // Without SQLITE_OPEN_CREATE, and only reading: a WAL a crashed run left is read, not lost.
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not(e.to_string()))?;
    let found = match schema(&conn) {
        // A workspace this process may not write (WAL needs its -shm file beside it) is looked
        // at as it lies on disk.
        Err(e) if is_read_only(&e) => {
            schema(&open_immutable(path).map_err(|e| not(e.to_string()))?)
        }
        other => other,
    }
    .map_err(|e| not(e.to_string()))?;
    if found.0 < 1 || found.1 < 3 {
        return Err(not("an SQLite database without dupdesk's tables".into()));
    }
    Ok(())
}

/// Whether SQLite refused because the file (or its folder, for the WAL's -shm file) may not be
/// written by this process.
fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// `path` opened only for reading, by a process that may not write it or its folder. Without
/// a -wal file beside it (a workspace closed properly), as an immutable file: SQLite takes no
/// lock and needs no -shm file. With one (a writer crashed, or is running), as a read-only WAL
/// database, which SQLite reads when the -wal and -shm files are there to read.
fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        );
    }
    let mut uri = url::Url::from_file_path(
        std::path::absolute(path)
            .map_err(|e| rusqlite::Error::InvalidPath(e.to_string().into()))?,
    )
    .map_err(|()| rusqlite::Error::InvalidPath(path.to_path_buf()))?;
    uri.set_query(Some("immutable=1"));
    Connection::open_with_flags(
        uri.as_str(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

impl Store {
    /// For the commands that only read (`stats`, `export`, `lineage`, `mapping show` and
    /// `conflicts`): as [`Store::open_existing`], and a workspace this process may not write (a
    /// copy on a read-only share, another user's file) is read as it lies on disk, neither
    /// migrated nor locked; every write through it fails. [`Store::read_only`] says which.
    pub fn open_for_reading(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        check_workspace(path)?;
        let writable = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
            Ok(!c.is_readonly(rusqlite::MAIN_DB)?)
        });
        match writable {
            Ok(true) => Store::open(path),
            Ok(false) => Store::open_read_only(path),
            Err(e) if is_read_only(&e) => Store::open_read_only(path),
            Err(e) => Err(e).with_context(|| format!("opening workspace {}", path.display())),
        }
    }

    fn open_read_only(path: &Path) -> Result<Store> {
        let conn = open_immutable(path)
            .with_context(|| format!("opening workspace {} read-only", path.display()))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let current = migrations::MIGRATIONS.len() as i64;
        if version != current {
            return Err(anyhow!(
                "workspace {} cannot be written by this user and has schema version {version} where this dupdesk reads {current}: open it once where it can be written (or copy it) to upgrade it",
                path.display()
            ));
        }
        Store::start(conn, path.to_path_buf(), true)
    }

    /// Whether this handle reads a workspace it may not write ([`Store::open_for_reading`]).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Open the workspace at `path` only if it is one already ([`OpenError`] otherwise), then
    /// migrate it and start its thread. Every command but those that make a workspace (`demo`,
    /// `pull`, `import`) opens it this way, so a mistyped path is an error, not a new workspace.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store> {
        check_workspace(path.as_ref())?;
        Store::open(path)
    }

    /// For the commands that make a workspace (`pull`, `import`): create it when nothing is at
    /// `path`, open it when it is one, and refuse anything else as it is (a CSV file or another
    /// program's database given as `--workspace` would otherwise get a schema written into it).
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Store> {
        match check_workspace(path.as_ref()) {
            Ok(()) | Err(OpenError::Missing { .. }) => Store::open(path),
            Err(e) => Err(e.into()),
        }
    }

    /// Open (creating if needed) and migrate the workspace at `path`, and start its thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the folder of {}", path.display()))?;
        }
        let opened = open_connection(&path).and_then(|mut conn| {
            migrations::migrate(&mut conn)
                .with_context(|| format!("migrating workspace {}", path.display()))?;
            Ok(conn)
        });
        let conn = opened.map_err(|e| {
            let read_only = e
                .chain()
                .filter_map(|c| c.downcast_ref::<rusqlite::Error>())
                .any(is_read_only);
            if read_only {
                anyhow!(
                    "workspace {} cannot be written by this user ({e}); `stats`, `export`, `lineage` and `mapping show` can still read it",
                    path.display()
                )
            } else {
                e
            }
        })?;
        Store::start(conn, path, false)
    }

    /// Start the thread that owns `conn`.
    fn start(mut conn: Connection, path: PathBuf, read_only: bool) -> Result<Store> {
        let (tx, rx) = mpsc::channel::<Message>();
        let handle = thread::Builder::new()
            .name("dupdesk-store".into())
            .spawn(move || {
                for message in rx {
                    match message {
                        Message::Work(work) => work(&mut conn),
                        Message::Close(reply) => {
                            let _ = reply.send(conn.close().map_err(|(_, e)| e));
                            return;
                        }
                    }
                }
            })
            .context("starting the store thread")?;
        let last = LastHandle {
            tx: tx.clone(),
            store_thread: handle.thread().id(),
        };
        Ok(Store {
            tx,
            path,
            read_only,
            clock: Clock::system(),
            _last: std::sync::Arc::new(last),
        })
    }

    /// Close the connection now, rather than when the last handle is dropped, and wait for it:
    /// the WAL is checkpointed and the file is whole, to be removed or moved. Every later call,
    /// through any clone, fails with "the store thread has stopped".
    pub fn close(self) -> Result<()> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Message::Close(reply))
            .map_err(|_| anyhow!("the store thread has stopped"))?;
        answer
            .recv()
            .map_err(|_| anyhow!("the store thread dropped a request"))?
            .with_context(|| format!("closing workspace {}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This store, its stamps read from `clock` from now on (on its thread too): a test's
    /// [`Clock::stepped`] instead of the wall clock. Every clone made after this shares it.
    pub fn with_clock(mut self, clock: Clock) -> Result<Store> {
        let installed = clock.clone();
        self.call_blocking(move |_| {
            clock::install(installed);
            Ok(())
        })?;
        self.clock = clock;
        Ok(self)
    }

    /// The current time by this store's clock, as the workspace stores it: for stamps taken
    /// off the store thread (when a matcher run or a pull starts) and written later.
    pub fn now_ts(&self) -> String {
        self.clock.now_ts()
    }

    /// Run `f` on the store thread and await its result.
    pub async fn call<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Message::Work(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            })))
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
            .send(Message::Work(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            })))
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

/// Remove the `meta` entry `key`, if there is one.
pub fn delete_meta(conn: &Connection, key: &str) -> Result<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
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

/// Object types are stored as their HubSpot names (`contacts`, `companies`).
impl rusqlite::types::ToSql for crate::domain::model::ObjectType {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

impl rusqlite::types::FromSql for crate::domain::model::ObjectType {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value.as_str()?.parse().map_err(
            |e: <crate::domain::model::ObjectType as std::str::FromStr>::Err| {
                rusqlite::types::FromSqlError::Other(e.into())
            },
        )
    }
}

pub use clock::{Clock, now_ts};

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
    fn open_existing_opens_workspaces_and_creates_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ws.db");
        let e = Store::open_existing(&path).unwrap_err();
        assert!(
            matches!(e.downcast_ref(), Some(OpenError::Missing { .. })),
            "{e}"
        );
        assert!(!path.exists());
        let nested = dir.path().join("a").join("ws.db");
        assert!(Store::open_existing(&nested).is_err());
        assert!(!dir.path().join("a").exists());

        for (content, why) in [
            (&b""[..], "an empty file"),
            (b"Record ID,Email\n", "not an SQLite file"),
        ] {
            std::fs::write(&path, content).unwrap();
            let e = Store::open_existing(&path).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), content);
        }
        std::fs::remove_file(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("CREATE TABLE notes (t TEXT)").unwrap();
        drop(other);
        let before = std::fs::read(&path).unwrap();
        let e = Store::open_existing(&path).unwrap_err().to_string();
        assert!(e.contains("without dupdesk's tables"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::remove_file(&path).unwrap();

        let store = Store::open(&path).unwrap();
        store.call_blocking(|c| set_meta(c, "k", "v")).unwrap();
        let again = store.clone();
        store.close().unwrap();
        assert!(again.call_blocking(|c| get_meta(c, "k")).is_err());
        // Closed means checkpointed: the WAL is gone and the value is in the file.
        assert!(!dir.path().join("ws.db-wal").exists());
        let store = Store::open_existing(&path).unwrap();
        let v = store.call_blocking(|c| get_meta(c, "k")).unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }

    /// Where SQL may still appear outside `src/store/`, and why. To be emptied, not extended.
    const SQL_OUTSIDE_THE_STORE: &[(&str, &str)] = &[(
        "src/harness/sandbox/store/mod.rs",
        "the sandbox CRM's own database, which is not a workspace",
    )];

    /// The lines of `text` holding a string that starts with an SQL statement.
    fn sql_lines(text: &str) -> Vec<usize> {
        const KEYWORDS: [&str; 8] = [
            "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH ", "CREATE ", "PRAGMA ", "REPLACE ",
        ];
        text.lines()
            .enumerate()
            .filter(|(_, line)| {
                line.split('"')
                    .skip(1)
                    .any(|after| KEYWORDS.iter().any(|k| after.trim_start().starts_with(k)))
            })
            .map(|(i, _)| i + 1)
            .collect()
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn sql_lives_only_in_the_store() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        rust_files(&root.join("src"), &mut files);
        let mut outside = Vec::new();
        let mut allowed_with_sql = Vec::new();
        for file in files {
            let rel = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with("src/store/") {
                continue;
            }
            let lines = sql_lines(&std::fs::read_to_string(&file).unwrap());
            if lines.is_empty() {
                continue;
            }
            if SQL_OUTSIDE_THE_STORE.iter().any(|(f, _)| *f == rel) {
                allowed_with_sql.push(rel);
            } else {
                outside.push(format!("{rel}: lines {lines:?}"));
            }
        }
        assert!(
            outside.is_empty(),
            "SQL outside src/store/ (give the use case a typed store function): {outside:#?}"
        );
        for (file, why) in SQL_OUTSIDE_THE_STORE {
            assert!(
                allowed_with_sql.iter().any(|f| f == file),
                "{file} holds no SQL any more ({why}): take it off SQL_OUTSIDE_THE_STORE"
            );
        }
        // The check sees SQL where there is some.
        assert_eq!(
            sql_lines("let q = \"SELECT 1\";\nlet s = \"selected\";"),
            [1]
        );
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
