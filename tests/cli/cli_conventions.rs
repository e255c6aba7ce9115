//! The command line as a well-kept Unix tool behaves: a pipe whose reader goes away early ends
//! the command quietly and changes nothing it was doing; `apply`'s per-job lines are on
//! standard output when it is not a terminal (cron, CI, `> log`); the demo runs again and again
//! in one folder; a missing workspace right after the demo names the demo's. The real binary,
//! the sandbox over real HTTP.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn dupdesk(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dupdesk"));
    cmd.current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("DUPDESK_LOGGING__DIR", dir.join("logs"))
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .stdin(Stdio::null());
    cmd
}

/// Run `cmd` with its standard output a pipe whose reader is gone before the first byte, as
/// `| head -0` (or a `| head` that got its lines) leaves it.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn clusters_pending(dir: &Path, ws: &str) -> i64 {
    let out = dupdesk(dir)
        .args(["--workspace", ws, "stats", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stats: {}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    stats["clusters"]["pending"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pending count in {stats}"))
}

#[test]
fn a_closed_pipe_ends_a_command_quietly_and_the_demo_still_builds_its_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = dupdesk(dir.path());
    demo.args(["demo", "--no-tui"]);
    let out = with_closed_stdout(demo);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "demo | head: {:?} {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("broken pipe"), "{stderr}");
    // The whole demo workspace is there: every cluster the matcher found.
    assert!(clusters_pending(dir.path(), "dupdesk-demo.db") > 0);

    for args in [
        &["export", "clusters"][..],
        &["export", "decisions", "--format", "jsonl"],
        &["stats"],
        &["mapping", "conflicts"],
    ] {
        let mut cmd = dupdesk(dir.path());
        cmd.args(["--workspace", "dupdesk-demo.db"]).args(args);
        let out = with_closed_stdout(cmd);
        let stderr = text(&out.stderr);
        assert!(
            out.status.success(),
            "{args:?} | head: {:?} {stderr}",
            out.status
        );
        assert_eq!(stderr, "", "{args:?} | head says nothing");
    }
}

#[test]
fn right_after_the_demo_a_missing_workspace_names_the_demos() {
    let dir = tempfile::tempdir().unwrap();
    let out = dupdesk(dir.path()).arg("stats").output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run `dupdesk demo`"),
        "{}",
        text(&out.stderr)
    );
    let demo = dupdesk(dir.path())
        .args(["demo", "--no-tui"])
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let out = dupdesk(dir.path()).arg("stats").output().unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("no workspace at dupdesk.db")
            && said.contains("pass --workspace dupdesk-demo.db"),
        "{said}"
    );
}

#[test]
fn the_demo_runs_twenty_times_in_a_row_in_one_folder_and_says_what_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    for run in 1..=20 {
        let out = dupdesk(dir.path())
            .args(["demo", "--no-tui"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "run {run}: {stderr}");
        assert!(
            clusters_pending(dir.path(), "dupdesk-demo.db") > 0,
            "run {run}"
        );
        if run == 1 {
            assert!(!stderr.contains("starting over"), "{stderr}");
            // A decision, so the next run has something to say it replaces.
            let approve = dupdesk(dir.path())
                .args([
                    "--workspace",
                    "dupdesk-demo.db",
                    "approve",
                    "--min-score",
                    "0.5",
                ])
                .output()
                .unwrap();
            assert!(approve.status.success(), "{}", text(&approve.stderr));
        } else if run == 2 {
            assert!(
                stderr.contains("the earlier demo workspace dupdesk-demo.db and its")
                    && !stderr.contains("its 0 decisions"),
                "{stderr}"
            );
        } else {
            assert!(
                stderr.contains("and its 0 decisions are replaced"),
                "{stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_says_every_job_on_standard_output_when_it_is_not_a_terminal() {
    let (seed, planted) = planted_clusters(4);
    let sandbox = start_sandbox(
        seed,
        generous(),
        dupdesk::harness::sandbox::FaultSpec::default(),
    )
    .await;
    let crm = connector(
        &sandbox.base_url(),
        1000,
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = pulled_workspace(dir.path(), crm.as_ref()).await;
    approve_all(&store, &planted).await;
    let ws = store.path().to_path_buf();
    store.close().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = apply_command(&ws, &sandbox.base_url(), &logs)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let merged = stdout
        .lines()
        .filter(|l| l.starts_with("merged  job"))
        .count();
    assert_eq!(merged, planted.len(), "one line per job:\n{stdout}");
    sandbox.shutdown().await;
}

#[test]
fn an_export_to_a_jsonl_file_is_json_lines_with_keys_in_the_documented_order() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dupdesk(dir.path())
        .args(["demo", "--no-tui"])
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let approve = dupdesk(dir.path())
        .args([
            "--workspace",
            "dupdesk-demo.db",
            "approve",
            "--min-score",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    for (what, first, second) in [
        ("decisions", "decision_id", "decided_at"),
        ("clusters", "cluster_id", "record_id"),
    ] {
        let file = dir.path().join(format!("{what}.jsonl"));
        let out = dupdesk(dir.path())
            .args(["--workspace", "dupdesk-demo.db", "export", what, "--out"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let body = std::fs::read_to_string(&file).unwrap();
        let line = body.lines().next().unwrap();
        let row: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{what}.jsonl is not JSON Lines ({e}): {line}"));
        assert!(row.is_object());
        let expected = format!("{{\"{first}\":");
        assert!(line.starts_with(&expected), "{line}");
        let at = line.find(&format!("\"{second}\":")).unwrap();
        assert!(at < 40, "{second} comes second: {line}");
        // An explicit format wins over the file's name.
        let out = dupdesk(dir.path())
            .args([
                "--workspace",
                "dupdesk-demo.db",
                "export",
                what,
                "--format",
                "csv",
                "--out",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let body = std::fs::read_to_string(&file).unwrap();
        assert!(body.starts_with(&format!("{first},{second}")), "{body}");
    }
}

#[test]
fn a_first_pull_that_gets_nothing_leaves_no_workspace_and_init_says_what_comes_next() {
    let dir = tempfile::tempdir().unwrap();
    let init = dupdesk(dir.path()).arg("init").output().unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));
    let said = text(&init.stdout);
    assert!(
        said.contains("wrote dupdesk.toml")
            && said.contains("next:")
            && said.contains("HUBSPOT_ACCESS_TOKEN"),
        "{said}"
    );
    let pull = dupdesk(dir.path()).arg("pull").output().unwrap();
    assert_eq!(pull.status.code(), Some(1));
    assert!(
        text(&pull.stderr).contains("no CRM token"),
        "{}",
        text(&pull.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dupdesk.db"))
        .collect();
    assert!(left.is_empty(), "a token-less pull left {left:?}");
}

#[cfg(unix)]
#[test]
fn the_log_file_is_its_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs").join("dupdesk.log");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _ = dupdesk(dir.path()).arg("stats").output().unwrap();
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "an old world-readable log is tightened");
    std::fs::remove_file(&log).unwrap();
    let _ = dupdesk(dir.path()).arg("stats").output().unwrap();
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a new log is made private");
}

/// A semicolon-separated export (what a spreadsheet in a comma-decimal locale writes) is not
/// misread as "no id column": the error says what the file looks like and which option reads
/// it; with `--delimiter ';'` it imports, and the summary says "1 row", not "1 rows".
#[test]
fn a_semicolon_export_is_named_as_such_and_reads_with_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(
        &csv,
        "Record ID;First Name;Last Name;Email\n901;Ana;Lima;ana@example.com\n",
    )
    .unwrap();
    let ws = dir.path().join("ws.db");
    let ws = ws.to_str().unwrap();
    let refused = dupdesk(dir.path())
        .args(["--workspace", ws, "import", csv.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("semicolons") && stderr.contains("--delimiter ';'"),
        "{stderr}"
    );
    assert!(stderr.contains("export.csv"), "names the file: {stderr}");
    assert!(!stderr.contains("no id column"), "{stderr}");

    let bad = dupdesk(dir.path())
        .args(["--workspace", ws, "import", "--delimiter", "ab"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("not a field separator"),
        "{}",
        text(&bad.stderr)
    );

    let ok = dupdesk(dir.path())
        .args(["--workspace", ws, "import", "--delimiter", ";"])
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = text(&ok.stdout);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(stdout.contains("1 row of contacts, 1 new"), "{stdout}");
    let show = dupdesk(dir.path())
        .args(["--workspace", ws, "lineage", "901", "--json"])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        text(&show.stdout).contains("ana@example.com"),
        "{}",
        text(&show.stdout)
    );
}

/// Every option and argument of every command says what it is in `--help`.
#[test]
fn every_argument_has_a_help_text() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["import"],
        &["approve"],
        &["lineage"],
        &["stats"],
        &["match"],
        &["export", "clusters"],
        &["export", "decisions"],
        &["mapping", "show"],
        &["mapping", "import"],
        &["mapping", "conflicts"],
        &["mapping", "resolve"],
        &["sandbox"],
        &["demo"],
        &["apply"],
        &["amend"],
        &["init"],
        &["pull"],
    ];
    for args in commands {
        let out = dupdesk(dir.path())
            .args(*args)
            .arg("--help")
            .output()
            .unwrap();
        let help = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        // clap lists an option or argument without a help text as a bare name on its line
        // (with long help texts, the text goes on the next, more indented, line).
        let lines: Vec<&str> = help.lines().collect();
        let indent = |l: &str| l.len() - l.trim_start().len();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let named = t.starts_with('-') || t.starts_with('<');
            // "[default: …]" alone is not a help text.
            let text_beside = t
                .split_once("  ")
                .is_some_and(|(_, rest)| !rest.trim().is_empty() && !rest.trim().starts_with('['));
            let text_below = lines
                .get(i + 1)
                .is_some_and(|next| !next.trim().is_empty() && indent(next) > indent(line));
            assert!(
                !named || text_beside || text_below,
                "{args:?}: {line:?} has no help text:\n{help}"
            );
        }
    }
}

/// A workspace this user may not write (a copy on a read-only share, another user's file) is
/// still read by the reports, with a note; a command that writes refuses it; a corrupt file is
/// named. Run as root, the reports run as `nobody` (root may write anything).
#[test]
fn the_reports_read_a_workspace_this_user_may_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("share");
    std::fs::create_dir(&folder).unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(
        &csv,
        "Record ID,First Name,Last Name,Email,erp_customer_id\n901,Ana,Lima,ana@example.com,E-1\n902,Ana,Lima,ana@example.com,E-2\n",
    )
    .unwrap();
    let ws = folder.join("ws.db");
    let ws_s = ws.to_str().unwrap().to_string();
    let made = dupdesk(dir.path())
        .args(["--workspace", &ws_s, "import"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert!(!folder.join("ws.db-wal").exists() && !folder.join("ws.db-shm").exists());
    let before = std::fs::read(&ws).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    let root = text(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0";
    let as_reader = |args: &[&str]| {
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_dupdesk"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        };
        cmd.current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("DUPDESK_LOGGING__DIR", dir.path().join("logs"))
            .env_remove("HUBSPOT_ACCESS_TOKEN")
            .stdin(Stdio::null())
            .args(["--workspace", &ws_s])
            .args(args);
        cmd.output().unwrap()
    };
    for args in [
        &["stats", "--json"][..],
        &["export", "decisions"],
        &["export", "clusters"],
        &["lineage", "901"],
        &["mapping", "show", "901"],
        &["mapping", "conflicts"],
    ] {
        let out = as_reader(args);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot be written by this user"),
            "{args:?}: {stderr}"
        );
    }
    let stats = as_reader(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["records"]["crm"]["contacts"], 2, "{stats}");
    let lineage = as_reader(&["lineage", "901"]);
    assert!(text(&lineage.stdout).contains("ana@example.com"));
    // A command that writes says why it cannot, naming the file.
    let matched = as_reader(&["match"]);
    assert!(!matched.status.success());
    let stderr = text(&matched.stderr);
    assert!(
        stderr.contains("ws.db") && stderr.contains("cannot be written by this user"),
        "{stderr}"
    );
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        std::fs::read(&ws).unwrap(),
        before,
        "the workspace is unchanged"
    );

    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, &before[..before.len().min(5000)]).unwrap();
    let out = dupdesk(dir.path())
        .args(["--workspace", corrupt.to_str().unwrap(), "stats"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("corrupt.db") && stderr.contains("not a dupdesk workspace"),
        "{stderr}"
    );
}
