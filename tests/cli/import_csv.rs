#![allow(clippy::unwrap_used)]
//! `dupdesk import`: CSV exports into a real workspace file, all or nothing, written in chunks
//! once every row is checked.

use std::path::{Path, PathBuf};

use dupdesk::domain::model::{ObjectType, parse_ts};
use dupdesk::harness::demo::{DemoOptions, generate};
use dupdesk::ops::import::{self, CsvError, ImportOptions, ImportProgress, ImportReport};
use dupdesk::store::chunks::ChunkPolicy;
use dupdesk::store::{Store, records};

const HUBSPOT_CONTACTS: &str = "\
Record ID,First Name,Last Name,Email,Phone Number,Company Name,Job Title,City,Country/Region,Create Date,Last Modified Date,Contact owner,Lifecycle Stage,ERP Customer ID
101,Robert,Smith,bob.smith@acme.com,+1 555 010 0100,\"Acme, Inc.\",CFO,Boston,United States,2024-02-01 09:30,2025-06-01 10:00,Jane Doe,customer,ERP-7
102,Zoë,Müller,zoe.mueller@nordwind.de,030 1234567,Nordwind GmbH,,Berlin,Germany,2024-03-05 11:00,2026-01-15 08:45:12,,lead,
103,José,García,\"jose.garcia@gmail.com\",(555) 010-0199,,,Madrid,Spain,2024-04-01,,,,
";

struct Ws {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    store: Store,
}

fn workspace() -> Ws {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let store = Store::open(path.join("ws.db")).unwrap();
    Ws {
        dir: path,
        _dir: dir,
        store,
    }
}

impl Ws {
    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn import(&self, file: &Path, opts: ImportOptions) -> anyhow::Result<ImportReport> {
        import::import_csv(&self.store, file, &opts, &|_| {})
    }

    /// Everything an import may touch, as text, to compare before and after.
    fn snapshot(&self) -> String {
        self.store
            .call_blocking(|c| {
                let mut out = String::new();
                for table in [
                    "SELECT object_type, id, system, properties, history, created_at, updated_at, last_seen_at FROM records ORDER BY rid",
                    "SELECT source, object_type, watermark, last_run_at, last_count, total_count FROM sync_state ORDER BY 1, 2",
                    "SELECT source_system, source_id, target_system, target_id, active FROM id_mapping ORDER BY id",
                ] {
                    let mut stmt = c.prepare(table)?;
                    let n = stmt.column_count();
                    let mut rows = stmt.query([])?;
                    while let Some(row) = rows.next()? {
                        for i in 0..n {
                            let v: rusqlite::types::Value = row.get(i)?;
                            out.push_str(&format!("{v:?}|"));
                        }
                        out.push('\n');
                    }
                }
                Ok(out)
            })
            .unwrap()
    }

    fn record(&self, object: ObjectType, id: &str) -> records::StoredRecord {
        let id = id.to_string();
        self.store
            .call_blocking(move |c| records::get_record(c, object, &id))
            .unwrap()
            .unwrap()
    }
}

fn contacts_opts() -> ImportOptions {
    let mut o = ImportOptions::new(ObjectType::Contacts, "crm");
    o.inverse_id = Some(("erp_customer_id".into(), "erp".into()));
    o
}

#[test]
fn a_hubspot_export_imports_with_history_dates_and_sync_state() {
    let ws = workspace();
    let file = ws.file("contacts.csv", HUBSPOT_CONTACTS.as_bytes());
    let report = ws.import(&file, contacts_opts()).unwrap();
    assert_eq!(report.rows, 3);
    assert_eq!(report.stats.inserted, 3);
    assert_eq!(report.mappings_new, 1);
    assert_eq!(report.ignored, vec!["Contact owner".to_string()]);
    assert!(
        report
            .columns
            .contains(&("Lifecycle Stage".into(), "lifecyclestage".into()))
    );

    let bob = ws.record(ObjectType::Contacts, "101");
    assert_eq!(bob.system, "crm");
    let r = &bob.record;
    assert_eq!(r.get("firstname"), Some("Robert"));
    assert_eq!(r.get("company"), Some("Acme, Inc."));
    assert_eq!(r.get("hs_object_id"), Some("101"));
    assert_eq!(r.get("erp_customer_id"), Some("ERP-7"));
    assert_eq!(r.get("createdate"), Some("2024-02-01T09:30:00.000Z"));
    assert_eq!(r.updated_at, parse_ts("2025-06-01T10:00:00Z"));
    let v = r.latest_version("email").unwrap();
    assert_eq!(v.source_type, "IMPORT");
    assert_eq!(v.source_id.as_deref(), Some("crm"));
    assert_eq!(v.timestamp, r.updated_at.unwrap());

    let zoe = ws.record(ObjectType::Contacts, "102").record;
    assert_eq!(zoe.get("lastname"), Some("Müller"));
    assert_eq!(zoe.get("jobtitle"), None, "empty cells are no value");
    // No modified date: values take the create date.
    let jose = ws.record(ObjectType::Contacts, "103").record;
    assert_eq!(jose.updated_at, None);
    assert_eq!(
        jose.latest_version("city").unwrap().timestamp,
        parse_ts("2024-04-01T00:00:00Z").unwrap()
    );

    let state: (String, Option<String>, i64, i64) = ws
        .store
        .call_blocking(|c| {
            Ok(c.query_row(
                "SELECT source, watermark, last_count, total_count FROM sync_state WHERE object_type = 'contacts'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .unwrap();
    assert_eq!(
        state,
        (
            "csv:crm".into(),
            Some("2026-01-15T08:45:12.000Z".into()),
            3,
            3
        )
    );
}

#[test]
fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let ws = workspace();
    let file = ws.file("contacts.csv", HUBSPOT_CONTACTS.as_bytes());
    ws.import(&file, contacts_opts()).unwrap();
    let again = ws.import(&file, contacts_opts()).unwrap();
    assert_eq!(again.stats.inserted, 0);
    assert_eq!(again.stats.updated, 0);
    assert_eq!(again.stats.unchanged, 3);
    assert_eq!(again.mappings_new, 0);
    // A changed row is an update, the others stay unchanged.
    let edited = HUBSPOT_CONTACTS.replace("Boston", "Cambridge");
    let file2 = ws.file("contacts2.csv", edited.as_bytes());
    let third = ws.import(&file2, contacts_opts()).unwrap();
    assert_eq!((third.stats.updated, third.stats.unchanged), (1, 2));
}

/// An export in which two contacts carry one ERP id: the import opens one `shared_target`
/// conflict, the same file again leaves it alone, and a corrected export resolves it.
#[test]
fn an_export_with_two_contacts_on_one_erp_id_opens_one_conflict_until_corrected() {
    let ws = workspace();
    let shared = HUBSPOT_CONTACTS.replace(
        "Berlin,Germany,2024-03-05 11:00,2026-01-15 08:45:12,,lead,\n",
        "Berlin,Germany,2024-03-05 11:00,2026-01-15 08:45:12,,lead,ERP-7\n",
    );
    assert_ne!(shared, HUBSPOT_CONTACTS);
    let file = ws.file("shared.csv", shared.as_bytes());
    let first = ws.import(&file, contacts_opts()).unwrap();
    assert_eq!(first.mappings_new, 2);
    assert_eq!(
        (first.shared_targets.opened, first.shared_targets.resolved),
        (1, 0)
    );
    let open = |ws: &Ws| {
        ws.store
            .call_blocking(|c| dupdesk::store::mapping::conflicts(c, false))
            .unwrap()
    };
    let conflicts = open(&ws);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].source_ids, ["101", "102"]);
    assert_eq!(conflicts[0].target_ids, ["ERP-7"]);
    let again = ws.import(&file, contacts_opts()).unwrap();
    assert!(
        again.shared_targets.is_empty(),
        "{:?}",
        again.shared_targets
    );
    assert_eq!(open(&ws).len(), 1);
    // The corrected export gives 102 an ERP id of its own.
    let fixed = shared.replace(",lead,ERP-7\n", ",lead,ERP-8\n");
    let file = ws.file("fixed.csv", fixed.as_bytes());
    let fixed = ws.import(&file, contacts_opts()).unwrap();
    assert_eq!(fixed.mappings_changed, 1);
    assert_eq!(fixed.shared_targets.resolved, 1);
    assert!(open(&ws).is_empty());
}

#[test]
fn a_bad_file_is_refused_with_its_line_and_column_and_changes_nothing() {
    let ws = workspace();
    let good = ws.file("good.csv", HUBSPOT_CONTACTS.as_bytes());
    ws.import(&good, contacts_opts()).unwrap();
    let before = ws.snapshot();

    let header = HUBSPOT_CONTACTS.lines().next().unwrap();
    let row = |id: &str, created: &str| {
        format!("{id},Ann,Lee,ann{id}@x.com,,,,,,{created},2025-01-01 00:00,,,")
    };
    // (file name, contents, line, column, what the error says)
    type Case<'a> = (&'a str, Vec<u8>, u64, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "bad-date.csv",
            format!(
                "{header}\n{}\n{}\n{}\n",
                row("201", "2024-01-01"),
                row("202", "2024-01-01"),
                row("203", "31.02.2024")
            )
            .into_bytes(),
            4,
            Some("Create Date"),
            "not a date",
        ),
        (
            "field-count.csv",
            format!("{header}\n{}\n201,Ann,Lee\n", row("200", "2024-01-01")).into_bytes(),
            3,
            None,
            "fields",
        ),
        (
            "duplicate-id.csv",
            format!(
                "{header}\n{}\n{}\n{}\n",
                row("201", "2024-01-01"),
                row("202", "2024-01-01"),
                row("201", "2024-01-01")
            )
            .into_bytes(),
            4,
            Some("Record ID"),
            "first on line 2",
        ),
        (
            "missing-id.csv",
            format!(
                "{header}\n{}\n{}\n",
                row("201", "2024-01-01"),
                row("", "2024-01-01")
            )
            .into_bytes(),
            3,
            Some("Record ID"),
            "id is empty",
        ),
        (
            "no-id-column.csv",
            b"Email,First Name\na@x.com,Ann\n".to_vec(),
            1,
            None,
            "no id column",
        ),
        (
            "unclosed-quote.csv",
            format!(
                "{header}\n{}\n202,\"Ann,Lee,a@x.com,,,,,,2024-01-01,2025-01-01,,,\n{}\n",
                row("201", "2024-01-01"),
                row("203", "2024-01-01")
            )
            .into_bytes(),
            3,
            None,
            "unclosed quote",
        ),
        (
            "unclosed-quote-at-the-end.csv",
            b"Record ID,Email\n1,a@x.com\n2,\"b@x.com\n3,c@x.com\n".to_vec(),
            3,
            None,
            "never closed",
        ),
        (
            "latin1.csv",
            {
                let mut b = format!("{header}\n{}\n", row("201", "2024-01-01")).into_bytes();
                b.extend_from_slice(b"202,Zo\xeb,M\xfcller,z@x.de,,,,,,2024-01-01,2025-01-01,,,\n");
                b
            },
            3,
            Some("First Name"),
            "UTF-8",
        ),
        (
            "record-over-4-mib.csv",
            format!(
                "{header}\n{}\n202,\"{}\",Lee,a@x.com,,,,,,2024-01-01,2025-01-01,,,\n",
                row("201", "2024-01-01"),
                "Ann\n".repeat(1 << 20)
            )
            .into_bytes(),
            3,
            None,
            "longer than 4 MiB",
        ),
        (
            "nul-in-id.csv",
            format!(
                "{header}\n{}\n{}\n",
                row("201", "2024-01-01"),
                row("2\u{0}2", "2024-01-01")
            )
            .into_bytes(),
            3,
            Some("Record ID"),
            "the record id \"2\\02\" holds a control character (\\0) at character 2",
        ),
    ];
    for (name, content, line, column, message) in cases {
        let file = ws.file(name, &content);
        let err = ws.import(&file, contacts_opts()).unwrap_err();
        let csv = err
            .downcast_ref::<CsvError>()
            .unwrap_or_else(|| panic!("{name}: not a CsvError: {err:#}"));
        assert_eq!(csv.line, line, "{name}: {csv}");
        assert_eq!(csv.column.as_deref(), column, "{name}: {csv}");
        let text = err.to_string();
        assert!(text.contains(name), "{name}: {text}");
        assert!(text.contains(&format!("line {line}")), "{text}");
        assert!(text.contains(message), "{name}: {text}");
        assert_eq!(ws.snapshot(), before, "{name} changed the workspace");
    }
}

#[test]
fn a_bad_row_after_batches_were_written_still_rolls_everything_back() {
    let ws = workspace();
    let good = ws.file("good.csv", HUBSPOT_CONTACTS.as_bytes());
    ws.import(&good, contacts_opts()).unwrap();
    let before = ws.snapshot();
    let mut text = String::from("Record ID,Email,Last Modified Date\n");
    for i in 0..5_000 {
        let date = if i == 4_321 {
            "soon"
        } else {
            "2025-01-01 10:00"
        };
        text.push_str(&format!("{},p{i}@x.com,{date}\n", 10_000 + i));
    }
    let file = ws.file("big.csv", text.as_bytes());
    let err = ws.import(&file, contacts_opts()).unwrap_err();
    let csv = err.downcast_ref::<CsvError>().unwrap();
    assert_eq!(csv.line, 4_323);
    assert_eq!(csv.column.as_deref(), Some("Last Modified Date"));
    assert_eq!(ws.snapshot(), before);
}

/// `rows` contacts 10000.. with an email, a modified date and an ERP id; `bad` gets an
/// unreadable date.
fn many_rows(rows: usize, bad: Option<usize>, domain: &str) -> String {
    let mut text = String::from("Record ID,Email,Last Modified Date,ERP Customer ID\n");
    for i in 0..rows {
        let date = if Some(i) == bad {
            "soon"
        } else {
            "2025-01-01 10:00"
        };
        text.push_str(&format!("{},p{i}@{domain},{date},E-{i}\n", 10_000 + i));
    }
    text
}

fn small_chunks(mut opts: ImportOptions) -> ImportOptions {
    opts.chunks = ChunkPolicy {
        max_items: 1_000,
        ..ChunkPolicy::new(1_000)
    };
    opts
}

/// Every row is checked before the first is written, so a bad row near the end of a file that
/// takes dozens of chunks to write leaves the workspace as it was, not with the chunks before.
#[test]
fn a_bad_row_late_in_a_file_of_many_chunks_changes_nothing() {
    let ws = workspace();
    let good = ws.file("good.csv", HUBSPOT_CONTACTS.as_bytes());
    ws.import(&good, contacts_opts()).unwrap();
    let before = ws.snapshot();
    let file = ws.file(
        "late.csv",
        many_rows(30_000, Some(29_990), "x.com").as_bytes(),
    );
    let err = ws.import(&file, small_chunks(contacts_opts())).unwrap_err();
    let csv = err.downcast_ref::<CsvError>().unwrap();
    assert_eq!(csv.line, 29_992);
    assert_eq!(csv.column.as_deref(), Some("Last Modified Date"));
    assert!(err.to_string().contains("nothing was imported"), "{err}");
    assert_eq!(ws.snapshot(), before);
    // Without the bad row the same file is written in many chunks (of one batch, 2,000 rows,
    // each: a chunk is full when a batch takes it past 1,000).
    let file = ws.file("fixed.csv", many_rows(30_000, None, "x.com").as_bytes());
    let report = ws.import(&file, small_chunks(contacts_opts())).unwrap();
    assert_eq!(report.rows, 30_000);
    assert!(report.chunks >= 15, "{} chunks", report.chunks);
    assert_eq!(report.mappings_new, 30_000);
    assert!(report.completes.is_none());
}

/// The rows written are the bytes that were checked: a file that grows while it is checked
/// is refused (an export caught half-written), and one rewritten while its rows are written
/// does not change what is written.
#[test]
fn the_rows_written_are_the_bytes_that_were_checked() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let ws = workspace();
    let good = ws.file("good.csv", HUBSPOT_CONTACTS.as_bytes());
    ws.import(&good, contacts_opts()).unwrap();
    let before = ws.snapshot();
    let file = ws.file("growing.csv", many_rows(10_000, None, "x.com").as_bytes());
    let appended = AtomicBool::new(false);
    let err = import::import_csv(&ws.store, &file, &contacts_opts(), &|p| {
        if matches!(p, ImportProgress::Checking { .. }) && !appended.swap(true, Ordering::SeqCst) {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&file)
                .unwrap();
            f.write_all(b"99999,late@x.com,2025-01-01 10:00,E-late\n")
                .unwrap();
        }
    })
    .unwrap_err();
    assert!(appended.load(Ordering::SeqCst));
    let text = err.to_string();
    assert!(
        text.contains("growing.csv") && text.contains("changed while it was being checked"),
        "{text}"
    );
    assert!(text.contains("nothing was imported"), "{text}");
    assert_eq!(ws.snapshot(), before);

    let file = ws.file("rewritten.csv", many_rows(10_000, None, "x.com").as_bytes());
    let rewritten = AtomicBool::new(false);
    let report = import::import_csv(&ws.store, &file, &small_chunks(contacts_opts()), &|p| {
        if matches!(p, ImportProgress::Writing { .. }) && !rewritten.swap(true, Ordering::SeqCst) {
            std::fs::write(&file, many_rows(10_000, Some(5), "rewritten.example")).unwrap();
        }
    })
    .unwrap();
    assert!(rewritten.load(Ordering::SeqCst));
    assert_eq!(report.rows, 10_000);
    assert!(report.chunks > 1, "{} chunks", report.chunks);
    for i in [0, 5, 9_999] {
        let r = ws.record(ObjectType::Contacts, &(10_000 + i).to_string());
        assert_eq!(r.record.get("email"), Some(format!("p{i}@x.com").as_str()));
    }
}

#[test]
fn map_overrides_and_config_columns_read_other_headers() {
    let ws = workspace();
    let file = ws.file(
        "erp.csv",
        "Nr;E-Mail-Adresse;Vorname;Nachname;Kundennummer;Notiz\n7;a@b.de;Jürgen;Weber;K-7;x\n"
            .replace(';', ",")
            .as_bytes(),
    );
    let mut opts = contacts_opts();
    opts.system = "erp".into();
    opts.add_override("Nr=hs_object_id").unwrap();
    opts.add_override("E-Mail-Adresse=email").unwrap();
    opts.add_override("Notiz=").unwrap();
    let config_file = ws.file(
        "dupdesk.toml",
        b"[import.columns]\nvorname = \"firstname\"\nNachname = \"lastname\"\nKundennummer = \"ignored_prop\"\n",
    );
    let config = dupdesk::config::load(&dupdesk::config::Sources {
        file: Some(config_file),
        ..Default::default()
    })
    .unwrap();
    opts.config_columns = config.import.columns.clone();
    // Overrides win over the configuration.
    opts.add_override("Kundennummer=erp_customer_id").unwrap();
    let report = ws.import(&file, opts).unwrap();
    assert_eq!(report.stats.inserted, 1);
    assert_eq!(report.ignored, vec!["Notiz".to_string()]);
    let r = ws.record(ObjectType::Contacts, "7");
    assert_eq!(r.system, "erp");
    assert_eq!(r.record.get("email"), Some("a@b.de"));
    assert_eq!(r.record.get("firstname"), Some("Jürgen"));
    assert_eq!(r.record.get("erp_customer_id"), Some("K-7"));
    assert_eq!(r.record.get("ignored_prop"), None);
    assert_eq!(
        r.record
            .latest_version("email")
            .unwrap()
            .source_id
            .as_deref(),
        Some("erp")
    );
}

#[test]
fn generated_companies_round_trip_through_a_csv_export() {
    let ws = workspace();
    let data = generate(&DemoOptions {
        contacts: 0,
        companies: 200,
        ..DemoOptions::default()
    })
    .data;
    let mut csv = Vec::new();
    import::write_csv(&mut csv, ObjectType::Companies, &data.companies).unwrap();
    let header = String::from_utf8_lossy(&csv)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        header.starts_with("Record ID,Company name,Company Domain Name"),
        "{header}"
    );
    let file = ws.file("companies.csv", &csv);
    let report = ws
        .import(&file, ImportOptions::new(ObjectType::Companies, "crm"))
        .unwrap();
    assert_eq!(report.stats.inserted, 200);
    assert!(report.ignored.is_empty(), "{:?}", report.ignored);
    for original in data.companies.iter().step_by(17) {
        let stored = ws.record(ObjectType::Companies, &original.id).record;
        assert_eq!(stored.properties, original.properties, "{}", original.id);
        assert_eq!(stored.updated_at, original.updated_at);
        assert_eq!(stored.created_at, original.created_at);
    }
}

#[test]
fn the_cli_imports_with_map_and_reports_errors_on_one_line() {
    let ws = workspace();
    let db = ws.dir.join("cli.db");
    let file = ws.file("c.csv", b"Kunde,Email\n1,a@b.com\n2,c@d.com\n");
    let bin = env!("CARGO_BIN_EXE_dupdesk");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .current_dir(&ws.dir)
            .env("HOME", &ws.dir)
            .env("XDG_CONFIG_HOME", ws.dir.join("xdg"))
            .output()
            .unwrap()
    };
    let db_arg = db.to_str().unwrap();
    let file_arg = file.to_str().unwrap();
    let out = run(&[
        "--workspace",
        db_arg,
        "import",
        file_arg,
        "--map",
        "Kunde=hs_object_id",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 new"), "{stdout}");
    let out = run(&["--workspace", db_arg, "import", file_arg]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("c.csv: line 1") && stderr.contains("no id column"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
