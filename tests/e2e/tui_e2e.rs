//! The real `dupdesk` binary in a real terminal (tmux): open the review on a workspace,
//! approve one cluster, reject one, undo, quit; the workspace then holds exactly those
//! decisions and the terminal is back out of the alternate screen. Also: SIGTERM restores the
//! terminal, and a decision the screen confirmed survives SIGKILL. Each test runs its own tmux server (`-L`), killed on drop even when it fails.
#![allow(clippy::unwrap_used)]

#[path = "../tui_support/mod.rs"]
mod tui_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tui_support::{query, workspace};

struct Tmux {
    socket: String,
    status: std::path::PathBuf,
}

impl Tmux {
    /// Start `dupdesk review` on `ws` in a detached 120x40 session.
    fn start(name: &str, ws: &Path, home: &Path) -> Tmux {
        Tmux::start_with(name, ws, home, "review")
    }

    /// Start `dupdesk --workspace WS <command>` in a detached 120x40 session.
    fn start_with(name: &str, ws: &Path, home: &Path, command: &str) -> Tmux {
        let socket = format!("dupdesk-e2e-{name}-{}", std::process::id());
        let bin = env!("CARGO_BIN_EXE_dupdesk");
        // A target folder shared between checkouts can hold another branch's build.
        let help = Command::new(bin).arg("--help").output().unwrap();
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("review"),
            "{bin} has no review command: it is not this checkout's build"
        );
        // The exit status goes to a file: tmux does not always report a dead pane's status.
        let status = home.join("exit-status");
        let cmd = format!(
            "cd '{home}' && env HOME='{home}' XDG_CONFIG_HOME='{home}/config' \
             DUPDESK_LOGGING__DIR='{home}/logs' DUPDESK_WORKSPACE__STEWARD=e2e TERM=xterm-256color \
             '{bin}' --workspace '{ws}' {command}; echo $? > '{status}'",
            home = home.display(),
            ws = ws.display(),
            status = status.display(),
        );
        let t = Tmux { socket, status };
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "e2e",
            &cmd,
            ";",
            "set-option",
            "-t",
            "e2e",
            "remain-on-exit",
            "on",
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "e2e", k]);
        }
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }

    fn format(&self, f: &str) -> String {
        self.run(&["display-message", "-p", "-t", "e2e", f])
            .trim()
            .to_string()
    }

    /// Poll the screen until every needle is on it (bounded; fails with the last screen).
    fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {needles:?}; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// The exit status once the process has ended.
    /// Poll until the needles are on the screen and the open cluster's number satisfies
    /// `want` (a flash line can show before the next cluster has opened).
    fn wait_for_cluster(&self, needles: &[&str], want: impl Fn(i64) -> bool) -> (i64, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.wait_for(needles);
            let open = screen
                .lines()
                .find_map(|l| l.strip_prefix("Cluster #"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(id) = open.filter(|id| want(*id)) {
                return (id, screen);
            }
            assert!(
                Instant::now() < deadline,
                "waited for the right cluster; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    fn wait_until_exit(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = std::fs::read_to_string(&self.status)
                && !status.trim().is_empty()
            {
                return status.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "dupdesk did not exit; the screen shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(40));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn approve_reject_undo_quit_in_a_real_terminal() {
    let ws = workspace(false);
    let home = tempfile::tempdir().unwrap();
    let t = Tmux::start("decide", &ws.path, home.path());
    t.wait_for(&["dupdesk review", "3 clusters", "Anna Schmidt"]);
    assert_eq!(t.format("#{alternate_on}"), "1");

    t.keys(&["Enter"]);
    t.wait_for(&["Cluster #1", "≠ lastname"]);
    t.keys(&["a"]);
    t.wait_for(&["Cluster #2", "cluster #1 approved"]);
    t.keys(&["r"]);
    t.wait_for(&["Cluster #3", "cluster #2 rejected"]);
    t.keys(&["u"]);
    t.wait_for(&["Cluster #2", "undid the reject of cluster #2"]);
    t.keys(&["q"]);
    t.wait_for(&["dupdesk review", "approved 1"]);
    t.keys(&["q"]);
    assert_eq!(t.wait_until_exit(), "0");
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "left the alternate screen"
    );

    assert_eq!(
        query::<String>(
            &ws,
            "SELECT steward || ':' || action || ':' || cluster_id || ':' || COALESCE(undoes, '')
             FROM decisions ORDER BY id"
        ),
        ["e2e:approve:1:", "e2e:reject:2:", "e2e:undo:2:2"]
    );
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters ORDER BY id"),
        ["approved", "pending", "pending"]
    );
    assert!(query::<String>(&ws, "SELECT a_id FROM not_duplicates").is_empty());
    // Logs went to the file, not the screen.
    assert!(home.path().join("logs/dupdesk.log").is_file());
}

/// The pid of the process the pane's shell started (`dupdesk`), from `/proc`.
fn child_of(parent: &str) -> String {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(parent) && stat.contains("(dupdesk)") {
            return entry.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no dupdesk process under {parent}");
}

/// A decision the screen confirmed is in the workspace even when the process is killed
/// outright (SIGKILL) right after, and the next review shows it.
#[test]
fn a_confirmed_decision_survives_kill_9() {
    let ws = workspace(false);
    let home = tempfile::tempdir().unwrap();
    let t = Tmux::start("kill", &ws.path, home.path());
    t.wait_for(&["dupdesk review", "3 clusters"]);
    t.keys(&["Enter"]);
    t.wait_for(&["Cluster #1", "≠ lastname"]);
    t.keys(&["a"]);
    t.wait_for(&["cluster #1 approved"]);
    let pid = child_of(&t.format("#{pane_pid}"));
    // The shell's own `kill`, which every machine has.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -9 {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(t.wait_until_exit(), "137");

    assert_eq!(
        query::<String>(
            &ws,
            "SELECT action || ':' || cluster_id FROM decisions ORDER BY id"
        ),
        ["approve:1"]
    );
    assert_eq!(
        query::<String>(&ws, "SELECT status FROM clusters WHERE id = 1"),
        ["approved"]
    );
    drop(t);
    let again = Tmux::start("kill-again", &ws.path, home.path());
    again.wait_for(&["dupdesk review", "approved 1"]);
}

/// The cluster the cluster screen shows: its title starts with `Cluster #N`.
fn cluster_on_screen(screen: &str) -> i64 {
    screen
        .lines()
        .find_map(|l| l.strip_prefix("Cluster #"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cluster on the screen:\n{screen}"))
}

#[test]
fn the_demo_opens_the_review_and_keeps_exactly_the_decisions_made() {
    let home = tempfile::tempdir().unwrap();
    let ws = home.path().join("demo.db");
    let t = Tmux::start_with("demo", &ws, home.path(), "demo");
    // Sandbox, pull and matcher first; then the queue of the matched clusters.
    t.wait_for(&["dupdesk review", "clusters:", "pending"]);
    t.keys(&["Enter"]);
    let first = cluster_on_screen(&t.wait_for(&["Cluster #", "surviving"]));
    t.keys(&["a"]);
    let (second, _) =
        t.wait_for_cluster(&[&format!("cluster #{first} approved")], |id| id != first);
    t.keys(&["r"]);
    t.wait_for_cluster(&[&format!("cluster #{second} rejected")], |id| id != second);
    t.keys(&["u"]);
    t.wait_for_cluster(&[&format!("undid the reject of cluster #{second}")], |id| {
        id == second
    });
    t.keys(&["q"]);
    t.wait_for(&["dupdesk review", "approved 1"]);
    t.keys(&["q"]);
    assert_eq!(t.wait_until_exit(), "0");

    let conn = rusqlite::Connection::open(&ws).unwrap();
    let rows: Vec<String> = conn
        .prepare(
            "SELECT steward || ':' || action || ':' || cluster_id || ':' || COALESCE(undoes, '')
             FROM decisions ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let reject_id: i64 = conn
        .query_row(
            "SELECT id FROM decisions WHERE action = 'reject'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        rows,
        [
            format!("e2e:approve:{first}:"),
            format!("e2e:reject:{second}:"),
            format!("e2e:undo:{second}:{reject_id}"),
        ]
    );
    let statuses: Vec<String> = conn
        .prepare("SELECT status FROM clusters WHERE id IN (?1, ?2) ORDER BY id = ?1 DESC")
        .unwrap()
        .query_map([first, second], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(statuses, ["approved", "pending"]);
    let pairs: i64 = conn
        .query_row("SELECT COUNT(*) FROM not_duplicates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pairs, 0);
}

#[test]
fn sigterm_restores_the_terminal() {
    let ws = workspace(false);
    let home = tempfile::tempdir().unwrap();
    let t = Tmux::start("sigterm", &ws.path, home.path());
    t.wait_for(&["dupdesk review", "Anna Schmidt"]);
    assert_eq!(t.format("#{alternate_on}"), "1");
    // The pane runs a shell that records the exit status; dupdesk is its child.
    let shell = t.format("#{pane_pid}");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let pid = children
        .split_whitespace()
        .next()
        .expect("dupdesk runs under the pane's shell");
    let status = Command::new("kill").args(["-TERM", pid]).status().unwrap();
    assert!(status.success());
    assert_eq!(t.wait_until_exit(), "0");
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "left the alternate screen"
    );
    assert!(query::<String>(&ws, "SELECT action FROM decisions").is_empty());
}

#[test]
fn the_review_runs_approved_merges_in_the_background_and_shows_lineage() {
    let home = tempfile::tempdir().unwrap();
    let ws = home.path().join("demo.db");
    let t = Tmux::start_with("merge", &ws, home.path(), "demo");
    t.wait_for(&["dupdesk review", "clusters:", "pending"]);
    t.keys(&["Enter"]);
    let first = cluster_on_screen(&t.wait_for(&["Cluster #", "surviving"]));
    t.keys(&["a"]);
    t.wait_for(&[&format!("cluster #{first} approved")]);
    t.keys(&["q"]);
    t.wait_for(&["dupdesk review", "approved 1"]);
    // The merges view; A runs the approved merges through the executor, against the demo's
    // sandbox CRM, with progress in the status bar.
    t.keys(&["m"]);
    t.wait_for(&["Merges", &format!("#{first}")]);
    t.keys(&["A"]);
    t.wait_for(&["Run the approved merges now?"]);
    t.keys(&["y"]);
    let screen = t.wait_for(&["merges: 1 merged, 0 failed"]);
    assert!(screen.contains("merged"), "{screen}");
    // Lineage of a record of another cluster, one key away.
    t.keys(&["q"]);
    t.wait_for(&["dupdesk review"]);
    t.keys(&["Enter"]);
    t.wait_for(&["Cluster #", "surviving"]);
    t.keys(&["L"]);
    t.wait_for(&["Lineage of", "merged from:", "fields:"]);
    // The same key closes it (Esc too, but an Esc typed right before another key reads as Alt).
    t.keys(&["L"]);
    t.wait_for(&["a approve"]);
    t.keys(&["q"]);
    t.wait_for(&["dupdesk review"]);
    t.keys(&["q"]);
    assert_eq!(t.wait_until_exit(), "0");

    let conn = rusqlite::Connection::open(&ws).unwrap();
    let (jobs, merged): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(status = 'merged'), 0) FROM merge_jobs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((jobs, merged), (1, 1));
    let status: String = conn
        .query_row("SELECT status FROM clusters WHERE id = ?1", [first], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "merged");
    let (size, gone): (i64, i64) = conn
        .query_row(
            "SELECT c.size, (SELECT COUNT(*) FROM records r JOIN cluster_members m ON m.rid = r.rid
                             WHERE m.cluster_id = c.id AND r.merged_into IS NOT NULL)
             FROM clusters c WHERE c.id = ?1",
            [first],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(gone, size, "every member now lives on in the merged record");
}

/// The record ids in the cluster screen's header line, and which one is the primary (★).
fn header_records(screen: &str) -> (Vec<String>, usize) {
    let line = screen
        .lines()
        .find(|l| l.contains("✓ surviving"))
        .expect("the cluster header");
    let mut ids = Vec::new();
    let mut primary = usize::MAX;
    for cell in line.split('│').skip(3) {
        let cell = cell.trim();
        let starred = cell.starts_with('★');
        let id = cell
            .trim_start_matches(['★', '✗'])
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        if id.is_empty() {
            continue;
        }
        if starred {
            primary = ids.len();
        }
        ids.push(id);
    }
    (ids, primary)
}

/// The issue's walk: open a cluster, exclude a record, take a value, approve, confirm `A`, and
/// then ask the sandbox CRM over HTTP: the excluded record is untouched and live, and the
/// survivor holds exactly the values the decision chose.
#[test]
fn exclude_take_approve_confirm_and_the_crm_holds_exactly_the_choices() {
    let home = tempfile::tempdir().unwrap();
    let ws = home.path().join("demo.db");
    let t = Tmux::start_with("integrity", &ws, home.path(), "demo");
    t.wait_for(&["dupdesk review", "clusters:", "pending"]);
    // The largest cluster first: the demo plants some of four records.
    t.keys(&["s"]);
    t.wait_for(&["sorted by size"]);
    t.keys(&["Enter"]);
    let screen = t.wait_for(&["Cluster #", "surviving", "4 records"]);
    let cluster = cluster_on_screen(&screen);
    let (ids, primary) = header_records(&screen);
    assert_eq!(ids.len(), 4, "{screen}");
    assert!(primary < 4, "{screen}");
    // Exclude the last record that is not the primary.
    let excluded = (0..4).rev().find(|i| *i != primary).unwrap();
    for _ in 0..excluded {
        t.keys(&["l"]);
    }
    t.keys(&["x"]);
    t.wait_for(&[&format!(
        "record {} is excluded from the merge",
        ids[excluded]
    )]);
    // Take the job title of another included record that is not the primary.
    let taker = (0..4).find(|i| *i != primary && *i != excluded).unwrap();
    for _ in taker..excluded {
        t.keys(&["h"]);
    }
    let rows = t.screen();
    let jobtitle = rows
        .lines()
        .skip_while(|l| !l.contains("✓ surviving"))
        .skip(1)
        .position(|l| l.contains("jobtitle"))
        .expect("the demo's contacts have job titles");
    for _ in 0..jobtitle {
        t.keys(&["j"]);
    }
    t.keys(&["Space"]);
    t.wait_for(&["jobtitle: ", &format!("record {}", ids[taker])]);
    t.keys(&["a"]);
    t.wait_for(&[&format!("cluster #{cluster} approved")]);
    t.keys(&["q"]);
    t.wait_for(&["dupdesk review", "approved 1"]);
    // A asks first, naming what it will run.
    t.keys(&["A"]);
    t.wait_for(&[
        "Run the approved merges now?",
        "1 approved cluster of 3 records: 2 merges",
    ]);
    t.keys(&["y"]);
    t.wait_for(&["merges: 1 merged, 0 failed"]);
    t.keys(&["q"]);
    assert_eq!(t.wait_until_exit(), "0");

    // The decision, as the workspace holds it.
    let conn = rusqlite::Connection::open(&ws).unwrap();
    let (excluded_json, choices_json): (String, String) = conn
        .query_row(
            "SELECT excluded, field_choices FROM decisions WHERE cluster_id = ?1 AND action = 'approve'",
            [cluster],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let excluded_ids: Vec<String> = serde_json::from_str(&excluded_json).unwrap();
    assert_eq!(excluded_ids, [ids[excluded].clone()]);
    let choices: std::collections::BTreeMap<String, dupdesk::domain::precedence::FieldChoice> =
        serde_json::from_str(&choices_json).unwrap();
    let title = &choices["jobtitle"];
    assert_eq!(title.record_id.as_deref(), Some(ids[taker].as_str()));
    assert_eq!(
        title.decided_by,
        dupdesk::domain::precedence::DecidedBy::Steward
    );
    assert!(
        choices
            .values()
            .all(|c| c.record_id.as_deref() != Some(ids[excluded].as_str())),
        "{choices:?}"
    );
    let survivor: String = conn
        .query_row(
            "SELECT survivor_id FROM merge_jobs WHERE cluster_id = ?1 AND status = 'merged'",
            [cluster],
            |r| r.get(0),
        )
        .unwrap();
    let before: std::collections::BTreeMap<String, Option<String>> = serde_json::from_str(
        &conn
            .query_row(
                "SELECT properties FROM records WHERE id = ?1",
                [&ids[excluded]],
                |r| r.get::<_, String>(0),
            )
            .unwrap(),
    )
    .unwrap();
    drop(conn);

    // The CRM, over HTTP: the demo's sandbox started again from its data file.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let token = "pat-e2e-check";
        let sandbox = dupdesk::harness::sandbox::start(dupdesk::harness::sandbox::SandboxOptions {
            port: 0,
            data: Some(home.path().join("demo.sandbox.db")),
            seed: None,
            rate_limit: dupdesk::harness::sandbox::RateLimit::default(),
            search_rate_limit: None,
            faults: Default::default(),
            token: Some(token.into()),
        })
        .await
        .unwrap();
        let mut opts = dupdesk::crm::hubspot::HubSpotOptions::from_config(
            &tui_support::config(),
            dupdesk::config::Secret::new(token),
        );
        opts.base_url = sandbox.base_url();
        let crm = dupdesk::crm::hubspot::HubSpotConnector::new(opts).unwrap();
        use dupdesk::crm::{Connector, ReadOutcome};
        let props: Vec<String> = before
            .keys()
            .cloned()
            .chain(choices.keys().cloned())
            .collect();
        let contacts = dupdesk::domain::model::ObjectType::Contacts;
        match crm.read(contacts, &ids[excluded], &props).await.unwrap() {
            ReadOutcome::Live(r) => {
                for (k, v) in &before {
                    let v = v.as_deref().filter(|v| !v.is_empty());
                    assert_eq!(r.get(k), v, "the excluded record's {k} is untouched");
                }
            }
            other => panic!("the excluded record is not live: {other:?}"),
        }
        let merged = match crm.read(contacts, &survivor, &props).await.unwrap() {
            ReadOutcome::Live(r) => r,
            other => panic!("the survivor is not live: {other:?}"),
        };
        for (field, choice) in &choices {
            assert_eq!(
                merged.get(field),
                choice.value.as_deref(),
                "the survivor's {field} is the chosen value"
            );
        }
        let log = sandbox.merge_log().await.unwrap();
        assert_eq!(log.len(), 2, "two merges for three included records");
        assert!(
            log.iter()
                .all(|m| m.primary_object_id != ids[excluded]
                    && m.object_id_to_merge != ids[excluded])
        );
        sandbox.shutdown().await;
    });
}
