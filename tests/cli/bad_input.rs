//! Bad input changes nothing (issue #13, part 4): every file a user hands dupdesk that it must
//! refuse is refused by the real binary with the file and the line named, and the workspace's
//! every table is the same afterwards; no command but `demo`, `pull` and `import` creates a
//! workspace; and a file holding one enormous line is refused within bounded memory.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::contact;
use dupdesk::domain::model::ObjectType;
use dupdesk::store::{Store, mapping, now_ts, records};

/// A temp folder with a workspace `ws.db`, and a separate folder for the log files so that the
/// workspace's folder holds only what the commands create in it.
struct Ws {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    logs: PathBuf,
    path: PathBuf,
}

impl Ws {
    /// An empty folder, no workspace in it.
    fn empty() -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("work");
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        Ws {
            path: dir.join("ws.db"),
            _tmp: tmp,
            dir,
            logs,
        }
    }

    /// Contacts 1001..=1008 (1002 merged into 1001, as an apply leaves it), 1009 deleted in the
    /// CRM (archived); each mapped to its ERP id E-<n>; and three pending clusters from an
    /// external matcher.
    fn with_records() -> Ws {
        let ws = Ws::empty();
        let store = Store::open(&ws.path).unwrap();
        store
            .call_blocking(|c| {
                let tx = c.transaction()?;
                let now = now_ts();
                let mut contacts: Vec<_> = (1001..=1009)
                    .map(|id| {
                        let erp = format!("E-{}", id - 1000);
                        let email = format!("p{id}@example.com");
                        contact(id, &[("email", &email), ("erp_customer_id", &erp)])
                    })
                    .collect();
                contacts[8].archived = true;
                records::upsert_records(&tx, "crm", &contacts, &now)?;
                for r in &contacts[..8] {
                    let erp = r.get("erp_customer_id").unwrap_or_default().to_string();
                    let link = mapping::Link {
                        object_type: ObjectType::Contacts,
                        source_system: "crm",
                        source_id: &r.id,
                        target_system: "erp",
                        target_id: &erp,
                    };
                    mapping::observe(&tx, &link, "pull", &now)?;
                }
                records::mark_merged(&tx, ObjectType::Contacts, "1002", "1001")?;
                mapping::supersede_after_merge(
                    &tx,
                    ObjectType::Contacts,
                    "crm",
                    &["1001".to_string(), "1002".to_string()],
                    "1001",
                    "erp",
                    None,
                    &now,
                )?;
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let clusters = ws.file(
            "clusters.csv",
            b"cluster_id,record_id\na,1003\na,1004\nb,1005\nb,1006\nc,1007\nc,1008\n",
        );
        let out = ws.run(&["match", "--clusters", clusters.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(ws.pending(), 3);
        ws
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_on(&self.path, args)
    }

    /// A command on another workspace path, run in this one's folder.
    fn command_on(&self, workspace: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dupdesk"));
        cmd.arg("--workspace")
            .arg(workspace)
            .args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.logs)
            .env("XDG_CONFIG_HOME", self.logs.join("xdg"))
            .env("DUPDESK_LOGGING__DIR", &self.logs)
            .env_remove("HUBSPOT_ACCESS_TOKEN");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn pending(&self) -> i64 {
        let c = rusqlite::Connection::open(&self.path).unwrap();
        c.query_row(
            "SELECT COUNT(*) FROM clusters WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Every table's schema and rows, and the schema version: the whole workspace as text.
    fn dump(&self) -> String {
        let c = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let mut out = format!("user_version {version}\n");
        let tables: Vec<(String, String)> = c
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(tables.len() > 10, "{tables:?}");
        for (name, sql) in tables {
            out.push_str(&format!("{sql}\n"));
            let mut stmt = c.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map(|v| v.join("|"))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            rows.sort();
            for row in rows {
                out.push_str(&format!("  {name}: {row}\n"));
            }
        }
        out
    }

    /// The names in the workspace's folder.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run `args` on a file the command must refuse: exit 1, one line on stderr naming the file and
/// holding every one of `says`, and every table of the workspace as it was.
fn refused(ws: &Ws, args: &[&str], file: &Path, says: &[&str]) -> String {
    let before = ws.dump();
    let out = ws.run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let name = file.file_name().unwrap().to_str().unwrap();
    assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
    assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
    assert!(err.contains(name), "{name}: {err}");
    for s in says {
        assert!(err.contains(s), "{name}: want {s:?} in: {err}");
    }
    assert_eq!(ws.dump(), before, "{name} changed the workspace");
    err
}

#[test]
fn an_empty_clusters_file_is_refused_unless_allow_empty_says_it_means_no_clusters() {
    let ws = Ws::with_records();
    let cases: [(&str, &[u8], &[&str]); 4] = [
        ("header-only.csv", b"cluster_id,record_id\n", &["no rows"]),
        (
            "splink-header.csv",
            b"cluster_id,unique_id,first_name\r\n",
            &["no rows"],
        ),
        (
            "blank-lines.csv",
            b"cluster_id,record_id\n\n\n",
            &["no rows"],
        ),
        (
            "nothing-clustered.csv",
            b"Cluster ID,Record ID,email\n,1003,a\n,1004,b\n0,1005,c\n",
            &["no cluster of two or more records", "3 rows"],
        ),
    ];
    for (name, content, says) in cases {
        let file = ws.file(name, content);
        let mut want = vec!["--allow-empty", "nothing was changed"];
        want.extend_from_slice(says);
        refused(
            &ws,
            &["match", "--clusters", file.to_str().unwrap()],
            &file,
            &want,
        );
        assert_eq!(ws.pending(), 3, "{name}");
    }
    // Said on purpose, the same file empties the queue.
    let file = ws.dir.join("header-only.csv");
    let out = ws.run(&[
        "match",
        "--clusters",
        file.to_str().unwrap(),
        "--allow-empty",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("3 removed"), "{}", text(&out));
    assert_eq!(ws.pending(), 0);
}

#[test]
fn a_mapping_file_naming_ids_the_workspace_cannot_vouch_for_is_refused_whole() {
    let ws = Ws::with_records();
    let head = "source_system,source_id,target_system,target_id";
    // Every file starts with a good row, so a partial write would show in the dump.
    let good = "crm,1003,erp,E-3-new";
    let long = "9".repeat(300);
    type Case<'a> = (&'a str, String, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            "merged-away.csv",
            format!("{head}\n{good}\ncrm,1002,erp,E-2\n"),
            &[
                "line 3, column source_id",
                "crm contacts 1002 was merged into 1001",
            ],
        ),
        (
            "merged-away-target.csv",
            format!("{head}\n{good}\nmarketing,M-1,crm,1002\n"),
            &["line 3, column target_id", "was merged into 1001"],
        ),
        (
            "unknown-source.csv",
            format!("{head}\n{good}\ncrm,999999,erp,E-999999\n"),
            &[
                "line 3, column source_id",
                "no crm contacts record has the id \"999999\"",
            ],
        ),
        (
            "archived.csv",
            format!("{head}\n{good}\ncrm,1009,erp,E-9\n"),
            &["line 3, column source_id", "1009 was deleted in the CRM"],
        ),
        (
            "nul-in-target.csv",
            format!("{head}\n{good}\ncrm,1004,erp,E-\u{0}4\n"),
            &[
                "line 3, column target_id",
                "\"E-\\04\"",
                "control character (\\0) at character 3",
            ],
        ),
        (
            "nul-in-other-source.csv",
            format!("{head}\n{good}\nerp,E-\u{0}zz,crm,1004\n"),
            &["line 3, column source_id", "control character"],
        ),
        (
            "zero-width.csv",
            format!("{head}\n{good}\ncrm,1004,erp,E-4\u{200B}\n"),
            &[
                "line 3, column target_id",
                "invisible character (\\u{200B})",
            ],
        ),
        (
            "bidi.csv",
            format!("{head}\n{good}\ncrm,1004,erp,\u{202E}4-E\n"),
            &["line 3, column target_id", "invisible character"],
        ),
        (
            "too-long.csv",
            format!("{head}\n{good}\ncrm,1004,erp,{long}\n"),
            &["line 3, column target_id", "300 characters long"],
        ),
        (
            "field-count.csv",
            format!("{head}\n{good}\ncrm,1004\n"),
            &["line 3"],
        ),
        (
            "empty-id.csv",
            format!("{head}\n{good}\ncrm,1004,erp, \n"),
            &["line 3, column target_id", "empty"],
        ),
        (
            "object-type.csv",
            format!("{head},object_type\n{good},contacts\ncrm,1004,erp,E-4,widgets\n"),
            &["line 3, column object_type", "\"widgets\""],
        ),
        (
            "to-itself.csv",
            format!("{head}\n{good}\ncrm,1004,crm,1005\n"),
            &["line 3", "maps crm to itself"],
        ),
        (
            "bad-system.csv",
            format!("{head}\n{good}\ncrm,1004,e\u{0}rp,E-4\n"),
            &["line 3, column target_system", "control character"],
        ),
    ];
    for (name, content, says) in &cases {
        let file = ws.file(name, content.as_bytes());
        let mut want = says.to_vec();
        want.push("nothing was imported");
        let err = refused(
            &ws,
            &["mapping", "import", file.to_str().unwrap()],
            &file,
            &want,
        );
        assert!(!err.contains('\0'), "{name}: {err:?}");
    }
    // The good row alone imports: the refusals were about the rows named.
    let file = ws.file("good.csv", format!("{head}\n{good}\n").as_bytes());
    let out = ws.run(&["mapping", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 changed"), "{}", text(&out));
}

#[test]
fn no_command_but_demo_pull_and_import_creates_a_workspace() {
    let ws = Ws::empty();
    let mapping = ws.file(
        "map.csv",
        b"source_system,source_id,target_system,target_id\ncrm,1,erp,E-1\n",
    );
    let clusters = ws.file("c.csv", b"cluster_id,record_id\n1,1\n1,2\n");
    let (mapping, clusters) = (mapping.to_str().unwrap(), clusters.to_str().unwrap());
    let before = ws.listing();
    let commands: &[&[&str]] = &[
        &["mapping", "import", mapping],
        &["mapping", "rebuild"],
        &["mapping", "show", "1"],
        &["mapping", "conflicts"],
        &["match"],
        &["match", "--clusters", clusters],
        &["stats"],
        &["export", "decisions"],
        &["export", "clusters"],
        &["lineage", "1"],
        &["approve", "--min-score", "0.9", "--dry-run"],
        &["apply", "--dry-run"],
        &["amend", "1", "--clear", "email"],
        &["review"],
    ];
    for args in commands {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        if args[0] != "review" {
            // (review says first that it needs a terminal, which a test has not.)
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("no workspace at"), "{args:?}: {err}");
            assert!(err.contains("ws.db"), "{args:?}: {err}");
        }
        assert_eq!(ws.listing(), before, "{args:?} created a file");
    }
    // An empty file where the workspace should be is no workspace either, and stays empty.
    std::fs::write(&ws.path, b"").unwrap();
    for args in [&["mapping", "import", mapping][..], &["stats"]] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a dupdesk workspace"),
            "{args:?}: {}",
            text(&out)
        );
        assert_eq!(std::fs::metadata(&ws.path).unwrap().len(), 0, "{args:?}");
    }
    std::fs::remove_file(&ws.path).unwrap();
    // An import or a pull may create one, but never write one into a file that is not one.
    let csv = ws.file("export.csv", b"Record ID,Email\n1,a@x.com\n");
    for args in [&["import", csv.to_str().unwrap()][..], &["pull"]] {
        let out = ws.command_on(&csv, args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("export.csv is not a dupdesk workspace (not an SQLite file)"),
            "{args:?}: {}",
            text(&out)
        );
        assert_eq!(
            std::fs::read(&csv).unwrap(),
            b"Record ID,Email\n1,a@x.com\n"
        );
    }
    std::fs::remove_file(&csv).unwrap();
    // An import may create one, but not for a file it refuses.
    let bad = ws.file("bad.csv", b"Record ID,Email\n1,a@x.com\n1,b@x.com\n");
    let out = ws.run(&["import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("bad.csv: line 3"), "{}", text(&out));
    let mut want = before.clone();
    want.push("bad.csv".into());
    want.sort();
    assert_eq!(ws.listing(), want, "a refused import left a workspace");
    // In a folder that did not exist either.
    let nested = ws.dir.join("new").join("ws.db");
    let out = ws
        .command_on(&nested, &["import", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !ws.dir.join("new").exists(),
        "a refused import left a folder"
    );
}

#[test]
fn an_oversized_config_or_rules_file_is_refused_with_its_name() {
    let ws = Ws::with_records();
    let mut big = b"# a comment\n".repeat(100_000);
    big.extend_from_slice(b"[workspace]\n");
    let config = ws.file("huge.toml", &big);
    let out = ws.run(&["--config", config.to_str().unwrap(), "stats"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("huge.toml") && err.contains("1200012 bytes") && err.contains("1024 KiB"),
        "{err}"
    );
    let rules = ws.file("rules.toml", &big);
    let config = ws.file(
        "dupdesk.toml",
        format!("[precedence]\nrules = {:?}\n", rules.to_str().unwrap()).as_bytes(),
    );
    let out = ws.run(&[
        "--config",
        config.to_str().unwrap(),
        "approve",
        "--min-score",
        "0.5",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.toml") && err.contains("1200012 bytes"),
        "{err}"
    );
}

/// Errors quote a short, terminal-safe prefix of a bad value, never the whole of it.
#[test]
fn errors_quote_a_short_safe_prefix_of_a_long_bad_value() {
    let ws = Ws::with_records();
    let long = format!("\u{1b}[2J{}", "x".repeat(100_000));
    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            "clusters.csv",
            vec!["match", "--clusters"],
            format!("cluster_id,record_id\n1,{long}\n1,1003\n"),
        ),
        (
            "dates.csv",
            vec!["import"],
            format!("Record ID,Email,Create Date\n1003,a@x.com,{long}\n"),
        ),
        (
            "ids.csv",
            vec!["import"],
            format!("Record ID,Email\n{long},a@x.com\n"),
        ),
        (
            "mapping.csv",
            vec!["mapping", "import"],
            format!("source_system,source_id,target_system,target_id\ncrm,{long},erp,E-1\n"),
        ),
    ];
    for (name, args, content) in cases {
        let file = ws.file(name, content.as_bytes());
        let mut args = args.clone();
        args.push(file.to_str().unwrap());
        let err = refused(&ws, &args, &file, &["line 2", "\\e[2J"]);
        assert!(err.len() < 600, "{name}: {} bytes: {err}", err.len());
        assert!(!err.contains('\u{1b}'), "{name}: {err:?}");
    }
}

#[test]
fn an_id_with_a_nul_in_a_csv_export_is_refused() {
    let ws = Ws::with_records();
    let file = ws.file(
        "nul.csv",
        b"Record ID,Email\n2001,a@x.com\n20\x0002,b@x.com\n",
    );
    refused(
        &ws,
        &["import", file.to_str().unwrap()],
        &file,
        &["line 3", "Record ID", "control character"],
    );
}

/// A file whose second line is `len` bytes long without a newline: sparse, so making it costs
/// neither time nor disk, and reading it whole costs all of it in memory.
#[cfg(target_os = "linux")]
fn long_line_file(ws: &Ws, name: &str, head: &str, len: u64) -> PathBuf {
    use std::io::Write;
    let path = ws.dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.set_len(head.len() as u64 + len).unwrap();
    path
}

/// Run a command and return its output with its peak resident memory in KiB, from the kernel's
/// accounting of that one child (wait4), whatever else the test process runs.
#[cfg(target_os = "linux")]
fn run_measured(mut cmd: Command) -> (Output, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        stderr.read_to_end(&mut v).unwrap();
        v
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data that wait4 fills in; the pid is our own child, which
    // std has not waited for (its Child is dropped without a wait).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    drop(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert_eq!(output.status.code(), code);
    (output, usage.ru_maxrss as u64)
}

/// A 256 MiB line in each kind of CSV file is refused at the line it starts on, with a short
/// message, and the command's peak memory stays far below the line's size (before: 3.7-5.3 GB
/// for a 1 GiB line; a single copy of this one would be 256 MiB).
#[cfg(target_os = "linux")]
#[test]
fn a_file_with_one_enormous_line_is_refused_within_bounded_memory() {
    const LINE: u64 = 256 << 20;
    const PEAK_LIMIT_KIB: u64 = 96 << 10;
    let ws = Ws::with_records();
    let cases: [(&str, &[&str], &str); 3] = [
        ("export.csv", &["import"], "Record ID,Email\n1003,"),
        (
            "clusters.csv",
            &["match", "--clusters"],
            "cluster_id,record_id\n1,",
        ),
        (
            "mapping.csv",
            &["mapping", "import"],
            "source_system,source_id,target_system,target_id\ncrm,1003,erp,",
        ),
    ];
    for (name, args, head) in cases {
        let file = long_line_file(&ws, name, head, LINE);
        let before = ws.dump();
        let mut cmd = ws.command(args);
        cmd.arg(&file);
        let (out, peak_kib) = run_measured(cmd);
        std::fs::remove_file(&file).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("{name}: peak {} MiB", peak_kib >> 10);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert!(
            err.contains(name) && err.contains("line 2") && err.contains("longer than 4 MiB"),
            "{name}: {err}"
        );
        assert!(err.len() < 600, "{name}: {} bytes of error", err.len());
        assert!(
            peak_kib < PEAK_LIMIT_KIB,
            "{name}: peak {peak_kib} KiB for a {LINE}-byte line"
        );
        assert_eq!(ws.dump(), before, "{name} changed the workspace");
    }
}
