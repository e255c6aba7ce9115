//! Long writers commit in bounded chunks (issue #13): while an import or a match writes, a
//! steward's decisions on another connection (another process, as far as SQLite can tell)
//! commit between the writer's chunks, which the data shows: each decision reads, before and
//! after it commits, how much of the writer's work is in the workspace, and some see part of
//! it and not all. And the real binary killed with SIGKILL between chunks leaves a workspace
//! that `dupdesk stats` calls interrupted and that the next run of the same command completes:
//! the same records, mappings and clusters as an uninterrupted run.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dupdesk::domain::matcher::MatchConfig;
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::harness::demo::{DemoOptions, generate};
use dupdesk::ops::import::{self, ImportOptions};
use dupdesk::ops::matching::MatchMode;
use dupdesk::store::chunks::ChunkPolicy;
use dupdesk::store::decisions::{self, NewDecision, Verdict};
use dupdesk::store::records::upsert_records;
use dupdesk::store::{Store, now_ts};
use rusqlite::{Connection, OpenFlags};

fn contacts(n: usize, duplicate_rate: f64) -> Vec<Record> {
    generate(&DemoOptions {
        contacts: n,
        companies: 0,
        duplicate_rate,
        ..DemoOptions::default()
    })
    .data
    .contacts
}

fn write_export(path: &Path, records: &[Record]) {
    let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    import::write_csv(out, ObjectType::Contacts, records).unwrap();
}

/// A read-only look at the workspace, as another process would take it.
fn count(ws: &Path, sql: &str) -> i64 {
    let c = Connection::open_with_flags(ws, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn defer(cluster_id: i64) -> NewDecision {
    NewDecision {
        cluster_id,
        steward: "ada".into(),
        verdict: Verdict::Defer,
        primary_id: None,
        field_choices: Default::default(),
        excluded: vec![],
        note: String::new(),
        seen: Default::default(),
        amends_job: None,
    }
}

/// What a steward's decision saw of a writer's work: just before it began and just after it
/// committed.
#[derive(Debug, Clone, Copy)]
struct Seen {
    before: i64,
    after: i64,
}

/// Decisions that committed while the writer had written some of its work and not all of it.
fn between_chunks(seen: &[Seen], from: i64, to: i64) -> usize {
    seen.iter()
        .filter(|s| s.before > from && s.after < to)
        .count()
}

/// A pending cluster to decide on, one not decided before.
fn a_pending_cluster(c: &Connection) -> anyhow::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    Ok(c.query_row(
        "SELECT id FROM clusters WHERE status = 'pending' ORDER BY id LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()?)
}

const CONTACTS: &str = "SELECT COUNT(*) FROM records WHERE object_type = 'contacts'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_commit_between_the_chunks_of_an_import() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    let store = Store::open(&ws).unwrap();
    // Something to decide on: clusters of companies, while contacts are imported.
    let small = generate(&DemoOptions {
        contacts: 0,
        companies: 40,
        ..DemoOptions::default()
    })
    .data
    .companies;
    let small_ids: Vec<String> = small.iter().map(|r| r.id.clone()).collect();
    store
        .call_blocking(move |c| {
            upsert_records(c, "crm", &small, &now_ts())?;
            Ok(())
        })
        .unwrap();
    let clusters: String = small_ids
        .chunks(2)
        .enumerate()
        .flat_map(|(i, pair)| pair.iter().map(move |id| format!("c{i},{id}\n")))
        .collect();
    std::fs::write(
        dir.path().join("clusters.csv"),
        format!("cluster_id,record_id\n{clusters}"),
    )
    .unwrap();
    dupdesk::ops::external_clusters::import_clusters(
        &store,
        &dir.path().join("clusters.csv"),
        ObjectType::Companies,
        Default::default(),
    )
    .unwrap();

    let big = contacts(40_000, 0.2);
    let total = big.len() as i64;
    let file = dir.path().join("export.csv");
    write_export(&file, &big);
    drop(big);
    let before = 0;
    assert_eq!(count(&ws, CONTACTS), before);
    let mut opts = ImportOptions::new(ObjectType::Contacts, "crm");
    // Small chunks, so that a debug build writes many of them.
    opts.chunks = ChunkPolicy {
        max_items: 2_000,
        ..ChunkPolicy::new(2_000)
    };
    let importing = {
        let (store, file) = (store.clone(), file.clone());
        tokio::task::spawn_blocking(move || import::import_csv(&store, &file, &opts, &|_| {}))
    };

    let review = Store::open(&ws).unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while !importing.is_finished() && started.elapsed() < Duration::from_secs(120) {
        let s = review
            .call_waiting(|c| {
                let n = |c: &Connection| -> anyhow::Result<i64> {
                    Ok(c.query_row(CONTACTS, [], |r| r.get(0))?)
                };
                let before = n(c)?;
                let cluster = a_pending_cluster(c)?.unwrap_or(1);
                let note = NewDecision {
                    verdict: Verdict::Note,
                    note: "looked at it during the import".into(),
                    ..defer(cluster)
                };
                decisions::record(c, &note)?;
                Ok(Seen {
                    before,
                    after: n(c)?,
                })
            })
            .await
            .unwrap();
        seen.push(s);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let report = importing.await.unwrap().unwrap();
    assert_eq!(report.rows as i64, total);
    assert!(report.chunks >= 10, "{} chunks", report.chunks);
    let during = between_chunks(&seen, before, before + total);
    assert!(
        during >= 3,
        "{during} of {} decisions committed between the import's chunks: {seen:?}",
        seen.len()
    );
    assert_eq!(count(&ws, CONTACTS), before + total, "every row is in");
    assert_eq!(
        count(&ws, "SELECT COUNT(*) FROM decisions"),
        seen.len() as i64,
        "every decision was written"
    );
    assert_eq!(
        count(&ws, "SELECT COUNT(*) FROM meta WHERE key LIKE 'run.%'"),
        0
    );
}

fn match_cfg() -> MatchConfig {
    let mut settings = dupdesk::config::load(&dupdesk::config::Sources::default())
        .unwrap()
        .matcher;
    settings.u_sample_pairs = 50_000;
    settings.em_sample_pairs = 20_000;
    MatchConfig::new(&settings, ObjectType::Contacts).unwrap()
}

/// (fingerprint, status) of every cluster.
fn cluster_states(ws: &Path) -> BTreeMap<String, String> {
    let c = Connection::open_with_flags(ws, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = c
        .prepare("SELECT fingerprint, status FROM clusters")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Every record's clusters, for the check that no record is in two at once.
fn clusters_per_record(c: &Connection) -> anyhow::Result<i64> {
    Ok(c.query_row(
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM cluster_members GROUP BY rid)",
        [],
        |r| r.get(0),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_commit_between_the_chunks_of_a_match_and_keep_their_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    let store = Store::open(&ws).unwrap();
    let records = contacts(6_000, 0.5);
    store
        .call_blocking(move |c| {
            let tx = c.transaction()?;
            upsert_records(&tx, "crm", &records, "2026-01-01T00:00:00.000Z")?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let cfg = match_cfg();
    let policy = ChunkPolicy {
        max_items: 100,
        ..ChunkPolicy::new(100)
    };
    let matching = {
        let (store, cfg) = (store.clone(), cfg.clone());
        tokio::task::spawn_blocking(move || {
            dupdesk::ops::matching::run_match_with(&store, &cfg, MatchMode::Full, policy, &|_| {})
        })
    };
    let review = Store::open(&ws).unwrap();
    let mut seen = Vec::new();
    let mut deferred = Vec::new();
    let started = Instant::now();
    while !matching.is_finished() && started.elapsed() < Duration::from_secs(300) {
        let (s, id, most) = review
            .call_waiting(|c| {
                let n = |c: &Connection| -> anyhow::Result<i64> {
                    Ok(c.query_row("SELECT COUNT(*) FROM clusters", [], |r| r.get(0))?)
                };
                let before = n(c)?;
                // What a steward sees between chunks is a queue in which no record is in two
                // clusters.
                let most = clusters_per_record(c)?;
                let id = a_pending_cluster(c)?;
                if let Some(id) = id {
                    decisions::record(c, &defer(id))?;
                }
                Ok((
                    Seen {
                        before,
                        after: n(c)?,
                    },
                    id,
                    most,
                ))
            })
            .await
            .unwrap();
        assert!(most <= 1, "a record in {most} clusters between chunks");
        seen.push(s);
        deferred.extend(id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = matching.await.unwrap().unwrap();
    assert!(report.write_chunks >= 5, "{report:?}");
    let total = report.clusters as i64;
    let during = between_chunks(&seen, 0, total);
    assert!(
        during >= 3,
        "{during} of {} decisions committed between the match's chunks: {seen:?}",
        seen.len()
    );
    // Every cluster decided on while the run wrote kept its row and its status.
    let c = Connection::open_with_flags(&ws, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    for id in &deferred {
        let status: String = c
            .query_row("SELECT status FROM clusters WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "deferred", "cluster {id}");
    }
    assert_eq!(clusters_per_record(&c).unwrap(), 1);
    // The next run finds nothing to do: the chunked run left the queue as one run leaves it.
    let before = cluster_states(&ws);
    let again = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert_eq!(again.clusters_new + again.clusters_changed, 0, "{again:?}");
    assert_eq!(cluster_states(&ws), before);
}

// --- The real binary, killed between chunks -------------------------------------------------

fn dupdesk(dir: &Path, ws: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dupdesk"));
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("DUPDESK_LOGGING__DIR", dir.join("logs"))
        .env("DUPDESK_MATCHER__U_SAMPLE_PAIRS", "50000")
        .env("DUPDESK_MATCHER__EM_SAMPLE_PAIRS", "20000")
        .arg("--workspace")
        .arg(ws)
        .args(args);
    cmd
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// Start `cmd`, wait until `ready` holds (polling), and kill it with SIGKILL; `false` if the
/// process ended first.
fn kill_when(mut cmd: Command, ready: impl Fn(u32) -> bool) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready(child.id()) {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "never ready");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` has `file` open.
fn has_open(pid: u32, file: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == file))
}

/// What an import writes, without the times it ran at: records, mappings, open conflicts,
/// the sync state's counts, and run markers.
fn imported(ws: &Path) -> String {
    let c = Connection::open_with_flags(ws, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = String::new();
    for sql in [
        "SELECT object_type, id, system, properties, history, created_at, updated_at, archived, merged_into FROM records ORDER BY id",
        "SELECT object_type, source_system, source_id, target_system, target_id, active FROM id_mapping ORDER BY source_id, target_id, active",
        "SELECT object_type, survivor_id, target_system, target_ids, resolved_at IS NULL FROM mapping_conflicts ORDER BY 1, 2, 3, 4",
        "SELECT source, object_type, watermark, total_count FROM sync_state ORDER BY 1, 2",
        "SELECT key FROM meta WHERE key LIKE 'run.%' ORDER BY 1",
    ] {
        let mut stmt = c.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                out.push_str(&format!("{v:?}|"));
            }
            out.push('\n');
        }
        out.push_str("--\n");
    }
    out
}

#[test]
fn an_import_killed_between_chunks_is_completed_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    let records = contacts(60_000, 0.2);
    let total = records.len() as i64;
    let file = dir.path().join("export.csv");
    write_export(&file, &records);
    let first = dir.path().join("first.csv");
    write_export(&first, &records[..100]);
    ok(
        dupdesk(dir.path(), &ws, &["import", first.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let imported_first = imported(&ws);

    // Killed while it checks the rows: nothing was written.
    let killed = kill_when(
        dupdesk(dir.path(), &ws, &["import", file.to_str().unwrap()]),
        |pid| has_open(pid, &file),
    );
    assert!(killed, "the import ended before it could be killed");
    assert_eq!(imported(&ws), imported_first, "killed while checking");

    // Killed once some chunks are in and before the last.
    let killed = kill_when(
        dupdesk(dir.path(), &ws, &["import", file.to_str().unwrap()]),
        |_| count(&ws, "SELECT COUNT(*) FROM records") > 1_000,
    );
    assert!(killed, "the import ended before it could be killed");
    let partial = count(&ws, "SELECT COUNT(*) FROM records");
    assert!(partial > 1_000 && partial < total, "{partial} of {total}");
    assert_eq!(
        count(
            &ws,
            "SELECT COUNT(*) FROM meta WHERE key LIKE 'run.import.%'"
        ),
        1,
        "the interrupted import's marker"
    );
    let stats = ok(dupdesk(dir.path(), &ws, &["stats"]).output().unwrap());
    assert!(
        stats.contains("export.csv") && stats.contains("was interrupted after"),
        "{stats}"
    );

    let again = ok(
        dupdesk(dir.path(), &ws, &["import", file.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert!(
        again.contains("this completes an earlier import")
            && again.contains(&format!("of {total} rows")),
        "{again}"
    );
    // As if it had never been interrupted.
    let clean = dir.path().join("clean.db");
    for f in [&first, &file] {
        ok(
            dupdesk(dir.path(), &clean, &["import", f.to_str().unwrap()])
                .output()
                .unwrap(),
        );
    }
    assert_eq!(imported(&ws), imported(&clean));
    let stats = ok(dupdesk(dir.path(), &ws, &["stats"]).output().unwrap());
    assert!(!stats.contains("interrupted"), "{stats}");
}

#[test]
fn a_match_killed_between_chunks_is_completed_by_the_next_match() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.db");
    let clean = dir.path().join("clean.db");
    let records = contacts(20_000, 0.5);
    for path in [&ws, &clean] {
        let store = Store::open(path).unwrap();
        let records = records.clone();
        store
            .call_blocking(move |c| {
                let tx = c.transaction()?;
                upsert_records(&tx, "crm", &records, "2026-01-01T00:00:00.000Z")?;
                tx.commit()?;
                Ok(())
            })
            .unwrap();
    }
    let marker = "SELECT COUNT(*) FROM meta WHERE key = 'run.match.contacts'";
    let killed = kill_when(
        dupdesk(dir.path(), &ws, &["match", "--object", "contacts"]),
        |_| count(&ws, marker) == 1,
    );
    assert!(killed, "the match ended before it could be killed");
    let partial = cluster_states(&ws).len();
    assert!(partial > 0);
    assert_eq!(count(&ws, marker), 1, "the interrupted run's marker");
    assert_eq!(
        count(
            &ws,
            "SELECT COUNT(*) FROM meta WHERE key = 'matcher.watermark.contacts'"
        ),
        0,
        "no watermark before the run completes"
    );
    let stats = ok(dupdesk(dir.path(), &ws, &["stats"]).output().unwrap());
    assert!(stats.contains("full match of contacts"), "{stats}");

    let next = ok(dupdesk(dir.path(), &ws, &["match", "--object", "contacts"])
        .output()
        .unwrap());
    assert!(
        next.contains("full match") && next.contains("this run completes an earlier one"),
        "{next}"
    );
    assert_eq!(count(&ws, marker), 0);
    ok(
        dupdesk(dir.path(), &clean, &["match", "--object", "contacts"])
            .output()
            .unwrap(),
    );
    let (got, want) = (cluster_states(&ws), cluster_states(&clean));
    assert!(
        want.len() > partial,
        "{} clusters, {partial} before",
        want.len()
    );
    assert_eq!(got, want);
}
