//! The matcher against a real workspace file: full and incremental runs keep cluster identity,
//! `not_duplicates` are never proposed again, a reviewed cluster whose member changed goes
//! stale, and external cluster files are imported or refused whole.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use dupdesk::config;
use dupdesk::domain::matcher::{self, MatchConfig};
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::harness::demo::{DemoOptions, generate};
use dupdesk::ops::external_clusters::{EmptyFile, ExternalError};
use dupdesk::ops::matching::MatchMode;
use dupdesk::ops::matching::StoredExplanation;
use dupdesk::store::records::upsert_records;
use dupdesk::store::{Clock, Store, now_ts};
use rusqlite::params;

fn cfg() -> MatchConfig {
    let mut settings = config::load(&config::Sources::default()).unwrap().matcher;
    // Smaller samples keep a debug build quick; the estimates stay sound at this size.
    settings.u_sample_pairs = 50_000;
    settings.em_sample_pairs = 20_000;
    MatchConfig::new(&settings, ObjectType::Contacts).unwrap()
}

fn workspace(contacts: usize) -> (tempfile::TempDir, Store, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    // A clock that moves on at every stamp: a change right after a run or a decision is
    // later than it, as it would be by the wall clock in use.
    let start = dupdesk::domain::model::parse_ts("2026-06-01T00:00:00.000Z").unwrap();
    let store = Store::open(dir.path().join("ws.db"))
        .unwrap()
        .with_clock(Clock::stepped(start, chrono::Duration::milliseconds(1)))
        .unwrap();
    let data = generate(&DemoOptions {
        contacts,
        companies: 0,
        ..DemoOptions::default()
    })
    .data
    .contacts;
    let records = data.clone();
    store
        .call_blocking(move |c| {
            let tx = c.transaction()?;
            upsert_records(&tx, "crm", &data, "2026-01-01T00:00:00.000Z")?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    (dir, store, records)
}

/// (cluster id, status, member record ids sorted)
fn clusters(store: &Store) -> Vec<(i64, String, Vec<String>)> {
    store
        .call_blocking(|c| {
            let mut stmt = c.prepare(
                "SELECT c.id, c.status, r.id FROM clusters c
                 JOIN cluster_members m ON m.cluster_id = c.id JOIN records r ON r.rid = m.rid
                 ORDER BY c.id, r.id",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<(i64, String, String)>>>()?;
            let mut out: Vec<(i64, String, Vec<String>)> = Vec::new();
            for (id, status, rec) in rows {
                match out.last_mut() {
                    Some(last) if last.0 == id => last.2.push(rec),
                    _ => out.push((id, status, vec![rec])),
                }
            }
            Ok(out)
        })
        .unwrap()
}

fn change_email(store: &Store, record: &Record, email: &str) {
    let mut r = record.clone();
    r.properties
        .insert("email".to_string(), Some(email.to_string()));
    let now = store.now_ts();
    store
        .call_blocking(move |c| upsert_records(c, "crm", &[r], &now))
        .unwrap();
}

/// A steward's approval of each cluster, as the decision log records it.
fn approve(store: &Store, ids: &[i64]) {
    let ids = ids.to_vec();
    store
        .call_blocking(move |c| {
            for id in ids {
                c.execute(
                    "INSERT INTO decisions (cluster_id, steward, decided_at, action)
                     VALUES (?1, 'me', ?2, 'approve')",
                    params![id, now_ts()],
                )?;
                c.execute(
                    "UPDATE clusters SET status = 'approved' WHERE id = ?1",
                    [id],
                )?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn full_then_incremental_runs_keep_cluster_identity() {
    let (_dir, store, records) = workspace(400);
    let cfg = cfg();
    let first = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Full, &|_| {}).unwrap();
    assert_eq!(first.mode, "full");
    assert!(first.clusters > 20, "{first:?}");
    assert_eq!(first.clusters_new, first.clusters);
    assert!(first.candidate_pairs > 0 && first.model_fitted);
    let before = clusters(&store);
    assert_eq!(before.len(), first.clusters);
    assert!(
        before
            .iter()
            .all(|(_, s, m)| s == "pending" && m.len() >= 2)
    );

    // Fingerprints are the hash of the sorted member ids; labels read as names.
    let (fp, label, size): (String, String, i64) = store
        .call_blocking(move |c| {
            Ok(c.query_row(
                "SELECT fingerprint, label, size FROM clusters WHERE id = ?1",
                [before_first_id(c)?],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap();
    assert_eq!(fp, dupdesk::ops::matching::fingerprint(&before[0].2));
    assert!(!label.is_empty());
    assert_eq!(size as usize, before[0].2.len());

    // Every pair of a cluster has an explanation the TUI can read.
    let explanations: Vec<String> = store
        .call_blocking(|c| {
            let mut stmt = c.prepare("SELECT explanation FROM pair_scores")?;
            let v = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
        .unwrap();
    assert!(!explanations.is_empty());
    for json in &explanations {
        let e: StoredExplanation = serde_json::from_str(json).unwrap();
        assert_eq!(e.fields.len(), cfg.fields.len());
        assert!((0.0..=1.0).contains(&e.probability));
    }

    // Nothing changed: an incremental run changes nothing.
    let second = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert_eq!(second.mode, "incremental");
    assert_eq!(second.changed_records, 0);
    assert_eq!((second.clusters_new, second.clusters_removed), (0, 0));
    assert_eq!(clusters(&store), before);

    // One record leaves its cluster: only its neighbourhood is redone.
    let (id, _, members) = before.iter().find(|(_, _, m)| m.len() == 2).unwrap();
    let moved = records.iter().find(|r| r.id == members[0]).unwrap();
    let mut r = moved.clone();
    for p in [
        "firstname",
        "lastname",
        "phone",
        "company",
        "city",
        "erp_customer_id",
    ] {
        r.properties.insert(p.to_string(), None);
    }
    r.properties
        .insert("email".to_string(), Some("someone.else@example.org".into()));
    let now = store.now_ts();
    store
        .call_blocking(move |c| upsert_records(c, "crm", &[r], &now))
        .unwrap();
    let third = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert_eq!(third.mode, "incremental");
    assert_eq!(third.changed_records, 1);
    assert!(third.candidate_pairs < first.candidate_pairs);
    let after = clusters(&store);
    assert!(
        after.iter().all(|(cid, _, _)| cid != id),
        "dissolved cluster removed"
    );
    assert_eq!(after.len(), before.len() - 1);
}

/// With no record changed, an incremental run skips reading the records, but still notices
/// what it must: a new steward approval (the model learns from it) and a member merged away.
#[test]
fn an_untouched_workspace_is_not_reread_but_approvals_and_merges_are_seen() {
    let (_dir, store, _) = workspace(300);
    let cfg = cfg();
    let first = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Full, &|_| {}).unwrap();
    let before = clusters(&store);
    let quiet = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert_eq!(quiet.mode, "incremental");
    assert_eq!(
        (quiet.records, quiet.changed_records, quiet.candidate_pairs),
        (first.records, 0, 0)
    );
    assert!(!quiet.model_fitted);
    assert_eq!(clusters(&store), before);

    // An approval, and no record changed: the model is fitted again with it.
    let approved = before[0].0;
    approve(&store, &[approved]);
    let refit = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert!(refit.model_fitted, "{refit:?}");
    assert!(refit.labelled_pairs >= 1, "{refit:?}");
    let after_refit = clusters(&store);

    // A member of a pending pair is merged away: the pair dissolves.
    let (pair, _, members) = after_refit
        .iter()
        .find(|(id, s, m)| *id != approved && s == "pending" && m.len() == 2)
        .unwrap()
        .clone();
    let (gone, survivor) = (members[0].clone(), members[1].clone());
    store
        .call_blocking(move |c| {
            dupdesk::store::records::mark_merged(c, ObjectType::Contacts, &gone, &survivor)
        })
        .unwrap();
    let merged = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert_eq!(merged.records, first.records - 1, "{merged:?}");
    assert!(
        clusters(&store).iter().all(|(id, _, _)| *id != pair),
        "the dissolved pair is gone"
    );
}

fn before_first_id(c: &rusqlite::Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT MIN(id) FROM clusters", [], |r| r.get(0))
}

#[test]
fn not_duplicates_are_never_proposed_again() {
    let (_dir, store, _) = workspace(300);
    let cfg = cfg();
    dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Full, &|_| {}).unwrap();
    let before = clusters(&store);
    let (_, _, members) = before.iter().find(|(_, _, m)| m.len() >= 2).unwrap();
    let (a, b) = (members[0].clone(), members[1].clone());
    let (x, y) = if a < b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    store
        .call_blocking(move |c| {
            c.execute(
                "INSERT INTO not_duplicates (object_type, a_id, b_id, created_at)
                 VALUES ('contacts', ?1, ?2, ?3)",
                params![x, y, now_ts()],
            )?;
            Ok(())
        })
        .unwrap();
    for mode in [MatchMode::Full, MatchMode::Auto] {
        dupdesk::ops::matching::run_match(&store, &cfg, mode, &|_| {}).unwrap();
        for (_, _, m) in clusters(&store) {
            assert!(
                !(m.contains(&a) && m.contains(&b)),
                "{a} and {b} proposed together again"
            );
        }
    }
}

#[test]
fn reviewed_clusters_keep_their_status_unless_a_member_changed() {
    let (_dir, store, records) = workspace(300);
    let cfg = cfg();
    dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Full, &|_| {}).unwrap();
    let before = clusters(&store);
    let kept = before[0].0;
    let touched = before[1].0;
    approve(&store, &[kept, touched]);
    let member = records.iter().find(|r| r.id == before[1].2[0]).unwrap();
    let email = member
        .get("email")
        .unwrap_or("x@example.org")
        .to_uppercase();
    change_email(&store, member, &email);
    let report = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert!(report.clusters_stale >= 1, "{report:?}");
    let after = clusters(&store);
    let status = |id: i64| after.iter().find(|c| c.0 == id).unwrap().1.clone();
    assert_eq!(status(kept), "approved");
    assert_eq!(status(touched), "stale");
    // The approved clusters were learnt from.
    let model = store
        .call_blocking(|c| dupdesk::ops::matching::stored_model(c, ObjectType::Contacts))
        .unwrap()
        .unwrap();
    assert!(model.labelled_pairs >= 2);
}

#[test]
fn external_clusters_are_imported_or_refused_whole() {
    let (dir, store, records) = workspace(60);
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "cluster_id,record_id\n1,{}\n1,{}\n2,{}\n2,4242424242\n",
            ids[0], ids[1], ids[2]
        ),
    )
    .unwrap();
    let err = dupdesk::ops::external_clusters::import_clusters(
        &store,
        &bad,
        ObjectType::Contacts,
        EmptyFile::Refuse,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"4242424242\""), "{err}");
    assert!(err.contains("line 5"), "{err}");
    assert!(clusters(&store).is_empty(), "nothing was imported");

    let splink = dir.path().join("splink.csv");
    std::fs::write(
        &splink,
        format!(
            "cluster_id,unique_id,source_dataset\nA,{},crm\nA,{},crm\nB,{},crm\nC,{},crm\nC,{},crm\nC,{},crm\n",
            ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]
        ),
    )
    .unwrap();
    let report = dupdesk::ops::external_clusters::import_clusters(
        &store,
        &splink,
        ObjectType::Contacts,
        EmptyFile::Refuse,
    )
    .unwrap();
    assert_eq!(report.clusters, 2);
    assert_eq!(report.singletons, 1);
    assert_eq!(report.applied.new, 2);
    let got = clusters(&store);
    let sets: HashSet<Vec<String>> = got.iter().map(|c| c.2.clone()).collect();
    let mut c = vec![ids[3].to_string(), ids[4].to_string(), ids[5].to_string()];
    c.sort();
    assert!(sets.contains(&c));
    // The same file again changes nothing.
    let again = dupdesk::ops::external_clusters::import_clusters(
        &store,
        &splink,
        ObjectType::Contacts,
        EmptyFile::Refuse,
    )
    .unwrap();
    assert_eq!((again.applied.new, again.applied.unchanged), (0, 2));

    // A file with no cluster is refused, unless it is said to mean "no duplicates".
    let empty = dir.path().join("empty.csv");
    for (content, no_rows) in [
        ("cluster_id,unique_id\n", true),
        (
            &*format!("cluster_id,unique_id\nA,{}\nB,{}\n", ids[0], ids[1]),
            false,
        ),
    ] {
        std::fs::write(&empty, content).unwrap();
        let err = dupdesk::ops::external_clusters::import_clusters(
            &store,
            &empty,
            ObjectType::Contacts,
            EmptyFile::Refuse,
        )
        .unwrap_err();
        match err.downcast_ref() {
            Some(ExternalError::NoRows { .. }) => assert!(no_rows, "{err}"),
            Some(ExternalError::NoClusters { rows: 2, .. }) => assert!(!no_rows, "{err}"),
            _ => panic!("{err}"),
        }
        assert_eq!(clusters(&store).len(), 2, "{err}");
    }
    let report = dupdesk::ops::external_clusters::import_clusters(
        &store,
        &empty,
        ObjectType::Contacts,
        EmptyFile::MeansNoClusters,
    )
    .unwrap();
    assert_eq!((report.clusters, report.applied.removed), (0, 2));
    assert!(clusters(&store).is_empty());
}

/// A workspace with none, one or two records of a type (a portal without companies, say)
/// matches to no or one cluster instead of failing.
#[test]
fn tables_of_zero_one_and_two_records_match() {
    let cfg = cfg();
    let (_dir, _store, records) = workspace(2);
    for n in 0..=2 {
        let table = matcher::Table::build(&cfg, &records[..n]);
        let outcome = matcher::match_table(&cfg, &table, matcher::MatchInputs::default(), &|_| {});
        assert!(
            outcome.clusters.len() <= n / 2,
            "{n}: {:?}",
            outcome.clusters
        );
    }
}

/// The marker a run writes its clusters under: while the process that wrote it lives, another
/// run and an external import are refused and change nothing; once it is gone, `stats` names
/// the interrupted run, and the next run completes it (fully, as the interrupted run was full,
/// although this one was asked for no more than an incremental one) and says so.
#[test]
fn a_run_writing_holds_off_others_and_the_next_run_completes_an_interrupted_one() {
    use dupdesk::store::chunks::{self, RunMarker};
    let (dir, store, records) = workspace(300);
    let cfg = cfg();
    dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Full, &|_| {}).unwrap();
    let before = clusters(&store);
    let marker = |owner: String| RunMarker {
        owner,
        started_at: "2026-02-01T10:00:00.000Z".into(),
        what: "full match of contacts".into(),
        identity: "full".into(),
        done: 3,
        total: 10,
        unit: "changes to clusters".into(),
        updated_at: "2026-02-01T10:00:01.000Z".into(),
        complete_with: "dupdesk match --object contacts".into(),
    };
    let put = |m: RunMarker| {
        store
            .call_blocking(move |c| chunks::write_marker(c, "run.match.contacts", &m))
            .unwrap()
    };
    // Another run of this very process, still writing.
    put(marker(chunks::run_owner()));
    let err =
        dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("another run is writing the contacts clusters"),
        "{err}"
    );
    let file = dir.path().join("clusters.csv");
    std::fs::write(
        &file,
        format!(
            "cluster_id,record_id\na,{}\na,{}\n",
            records[0].id, records[1].id
        ),
    )
    .unwrap();
    let err = dupdesk::ops::external_clusters::import_clusters(
        &store,
        &file,
        ObjectType::Contacts,
        EmptyFile::Refuse,
    )
    .unwrap_err();
    assert!(err.to_string().contains("another run is writing"), "{err}");
    assert_eq!(clusters(&store), before, "nothing was written");

    // Its process is gone: an interrupted run.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let owner = chunks::run_owner();
    let host = owner.split(':').next().unwrap();
    put(marker(format!("{host}:{pid}:0123456789ab")));
    let alerts = store
        .call_blocking(|c| dupdesk::ops::stats::collect(c, Default::default()))
        .unwrap()
        .alerts;
    assert!(
        alerts.iter().any(|a| a.contains(
            "full match of contacts started 2026-02-01T10:00:00.000Z was interrupted after 3 of 10"
        ) && a.contains("dupdesk match --object contacts")),
        "{alerts:?}"
    );
    let next = dupdesk::ops::matching::run_match(&store, &cfg, MatchMode::Auto, &|_| {}).unwrap();
    assert_eq!(next.mode, "full", "{next:?}");
    assert!(next.model_fitted);
    assert!(
        next.completes
            .as_deref()
            .is_some_and(|c| c.contains("was interrupted after 3 of 10")),
        "{next:?}"
    );
    assert_eq!(clusters(&store), before);
    let left: i64 = store
        .call_blocking(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM meta WHERE key = 'run.match.contacts'",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(left, 0);
    let alerts = store
        .call_blocking(|c| dupdesk::ops::stats::collect(c, Default::default()))
        .unwrap()
        .alerts;
    assert!(
        !alerts.iter().any(|a| a.contains("interrupted")),
        "{alerts:?}"
    );
}
