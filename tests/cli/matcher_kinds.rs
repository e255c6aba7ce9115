//! Kinds that fit real schemas (partial and split dates, missing-value tokens, lists) and a
//! configuration that speaks (`match`'s warnings, `dupdesk model`): the comparison levels on
//! real tables, and the real binary over real workspace files.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use dupdesk::domain::matcher::compare::{self, MISSING};
use dupdesk::domain::matcher::{
    FieldKind, FieldSpec, MatchConfig, MatcherSettings, ObjectSchemaConfig,
};
use dupdesk::domain::matcher::{Table, normalize};
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::store::Store;
use dupdesk::store::records::upsert_records;

fn dupdesk(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .current_dir(dir)
        .env("DUPDESK_MATCHER__U_SAMPLE_PAIRS", "5000")
        .env("DUPDESK_MATCHER__EM_SAMPLE_PAIRS", "5000")
        .env_remove("NO_COLOR")
        .args(["--workspace", "ws.db"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn workspace(dir: &Path, records: Vec<Record>) {
    let store = Store::open(dir.join("ws.db")).unwrap();
    store
        .call_blocking(move |c| {
            upsert_records(c, "crm", &records, "2026-01-01T00:00:00.000Z")?;
            Ok(())
        })
        .unwrap();
}

fn config(settings: MatcherSettings, fields: &[(&str, FieldKind)]) -> MatchConfig {
    let schema = ObjectSchemaConfig {
        fields: fields
            .iter()
            .map(|(p, kind)| FieldSpec {
                property: p.to_string(),
                kind: *kind,
            })
            .collect(),
        blocking: vec![fields[0].0.to_string()],
    };
    MatchConfig::from_schema(&settings, ObjectType::Contacts, &schema).unwrap()
}

/// The level name of records `a` and `b` (by index) on field `f` of a table.
fn level(t: &Table, f: usize, a: usize, b: usize) -> &'static str {
    let col = &t.columns[f];
    compare::level_name(col.kind, col.level(a, b))
}

/// Fifty unrelated people, with the extra properties given to each.
fn people(extra: &dyn Fn(usize) -> Vec<(&'static str, String)>) -> Vec<Record> {
    const FIRST: [&str; 10] = [
        "Anna", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    ];
    const LAST: [&str; 5] = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Oyelaran"];
    (0..50)
        .map(|i| {
            let email = format!("{}.{}{i}@example.org", FIRST[i % 10], LAST[i / 10]);
            let city = format!("Town{}", i % 7);
            let mut props: Vec<(&str, String)> = vec![
                ("firstname", FIRST[i % 10].to_string()),
                ("lastname", LAST[i / 10].to_string()),
                ("email", email.to_lowercase()),
                ("city", city),
            ];
            props.extend(extra(i));
            let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
            common::contact(1000 + i as u64, &props)
        })
        .collect()
}

/// "1980" and "1980-04-12" agree as far as the year goes, split year/month/day properties
/// read as the date they spell, and different years disagree.
#[test]
fn partial_and_split_dates_compare() {
    let cfg = config(
        MatcherSettings::default(),
        &[("dob", FieldKind::Date), ("by/bm/bd", FieldKind::Date)],
    );
    let recs = vec![
        common::contact(
            1,
            &[
                ("dob", "1980-04-12"),
                ("by", "1980"),
                ("bm", "4"),
                ("bd", "12"),
            ],
        ),
        common::contact(2, &[("dob", "1980"), ("by", "1980"), ("bm", "04")]),
        common::contact(3, &[("dob", "1981"), ("by", "1981")]),
        common::contact(
            4,
            &[("dob", "1980-04"), ("by", "1980"), ("bm", "NA"), ("bd", "")],
        ),
        common::contact(
            5,
            &[
                ("dob", "12.04.1980"),
                ("by", "1980"),
                ("bm", "04"),
                ("bd", "12"),
            ],
        ),
        common::contact(6, &[("dob", "1980-00-00"), ("bm", "04")]),
    ];
    let t = Table::build(&cfg, &recs);
    // The whole date, the year alone, a year and month.
    assert_eq!(level(&t, 0, 0, 1), "same year");
    assert_eq!(level(&t, 0, 1, 0), "same year");
    assert_eq!(level(&t, 0, 0, 2), "different");
    assert_eq!(level(&t, 0, 1, 2), "different");
    assert_eq!(level(&t, 0, 0, 3), "same year and month");
    assert_eq!(level(&t, 0, 0, 4), "exact");
    // Two records of the same year alone are not the same day.
    assert_eq!(level(&t, 0, 1, 5), "same year");
    // Split: year, month and day read together; a month without a year is no date.
    assert_eq!(t.columns[1].value(0), Some("1980-04-12"));
    assert_eq!(t.columns[1].value(1), Some("1980-04"));
    assert_eq!(t.columns[1].value(3), Some("1980"));
    assert_eq!(level(&t, 1, 0, 4), "exact");
    assert_eq!(level(&t, 1, 0, 1), "same year and month");
    assert_eq!(level(&t, 1, 0, 3), "same year");
    assert_eq!(level(&t, 1, 0, 2), "different");
    assert_eq!(t.columns[1].value(5), None);
    assert_eq!(t.reads[1].invalid, 1, "{:?}", t.reads[1]);
    assert_eq!(t.reads[1].invalid_example.as_deref(), Some("/04/"));
    // Every date kind level is named, and a split date is refused beyond three parts.
    let bad = ObjectSchemaConfig {
        fields: vec![FieldSpec {
            property: "a/b/c/d".into(),
            kind: FieldKind::Date,
        }],
        blocking: vec![],
    };
    let e = MatchConfig::from_schema(&MatcherSettings::default(), ObjectType::Contacts, &bad)
        .unwrap_err();
    assert!(e.to_string().contains("\"a/b/c/d\""), "{e}");
}

/// "NA", "NULL", "N/A" and "-" are no value: two records holding one do not agree on it, nor
/// are they a candidate pair for it; the tokens are configuration.
#[test]
fn missing_value_tokens_read_as_missing() {
    let fields = [
        ("email", FieldKind::Email),
        ("lastname", FieldKind::Surname),
        ("phone", FieldKind::Phone),
        ("ssn", FieldKind::Identifier),
    ];
    let cfg = config(MatcherSettings::default(), &fields);
    let recs = vec![
        common::contact(
            1,
            &[
                ("email", "NA"),
                ("lastname", "NULL"),
                ("phone", "N/A"),
                ("ssn", " na "),
            ],
        ),
        common::contact(
            2,
            &[
                ("email", "na"),
                ("lastname", "null"),
                ("phone", "n/a"),
                ("ssn", "-"),
            ],
        ),
        common::contact(
            3,
            &[
                ("email", "a@x.org"),
                ("lastname", "Smith"),
                ("phone", "+1 415 555 0134"),
                ("ssn", "123"),
            ],
        ),
    ];
    let t = Table::build(&cfg, &recs);
    for (f, col) in t.columns.iter().enumerate() {
        assert_eq!(col.level(0, 1), MISSING, "{}", col.property);
        assert_eq!(col.present, 1, "{}", col.property);
        assert_eq!(t.reads[f].missing, 2, "{}", col.property);
        assert_eq!(t.reads[f].invalid, 0, "{}", col.property);
    }
    // Configured otherwise, "NA" is a value again and "unknown" is none.
    let settings = MatcherSettings {
        missing_values: vec!["unknown".into()],
        ..MatcherSettings::default()
    };
    let cfg = config(settings, &fields);
    let recs = vec![
        common::contact(1, &[("email", "NA"), ("lastname", "Unknown ")]),
        common::contact(2, &[("email", "NA"), ("lastname", "UNKNOWN")]),
    ];
    let t = Table::build(&cfg, &recs);
    assert_eq!(level(&t, 0, 0, 1), "exact");
    assert_eq!(t.columns[1].level(0, 1), MISSING);
}

/// Through the binary: fifty different people whose email is "NA" and phone "NULL" are no
/// candidates of the email and phone rules and no cluster; with the tokens configured away,
/// they are.
#[test]
fn records_sharing_only_a_missing_token_are_not_matched() {
    let dir = tempfile::tempdir().unwrap();
    workspace(
        dir.path(),
        people(&|_| vec![("email", "NA".to_string()), ("phone", "NULL".to_string())]),
    );
    let run = |config: &str| {
        std::fs::write(dir.path().join("dupdesk.toml"), config).unwrap();
        let out = dupdesk(
            dir.path(),
            &["match", "--full", "--object", "contacts", "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
        v[0].clone()
    };
    let with_tokens = run("");
    let without = run("[matcher]\nmissing_values = []\n");
    let pairs = |v: &serde_json::Value| v["candidate_pairs"].as_u64().unwrap();
    assert!(
        pairs(&without) >= pairs(&with_tokens) + 49,
        "{with_tokens}\n{without}"
    );
    assert_eq!(with_tokens["clusters"], 0, "{with_tokens}");
}

/// A list (co-workers, tags) compares by the items two records share, in any order.
#[test]
fn a_list_field_compares_by_overlap() {
    let cfg = config(
        MatcherSettings::default(),
        &[("coworkers", FieldKind::List)],
    );
    let recs = vec![
        common::contact(1, &[("coworkers", "Ann Lee; Bob Stone, Cy Ray")]),
        common::contact(2, &[("coworkers", "cy ray|ann lee|bob stone")]),
        common::contact(3, &[("coworkers", "Ann Lee, Bob Stone, Dee Fox")]),
        common::contact(4, &[("coworkers", "Ann Lee; Eve Hart; Fay Wu; Gus Orr")]),
        common::contact(5, &[("coworkers", "Hal Ng, Ivy Bo")]),
        common::contact(6, &[("coworkers", "NA")]),
    ];
    let t = Table::build(&cfg, &recs);
    assert_eq!(level(&t, 0, 0, 1), "exact");
    assert_eq!(level(&t, 0, 0, 2), "jaccard>=0.5");
    assert_eq!(level(&t, 0, 0, 3), "one or more shared");
    assert_eq!(level(&t, 0, 0, 4), "different");
    assert_eq!(t.columns[0].level(0, 5), MISSING);
    assert_eq!(normalize::list(" b ;a,, A ").as_deref(), Some("a;b"));
}

/// A schema property that no record has is named, with the header the records do have; the
/// CSV goes through the real import.
#[test]
fn a_property_no_record_has_is_warned_about_with_the_near_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("Record ID,first_name,lastname,email,city\n");
    for i in 0..30 {
        csv.push_str(&format!(
            "{},Name{i},Last{},p{i}@example.org,Town\n",
            500 + i,
            i % 4
        ));
    }
    std::fs::write(dir.path().join("c.csv"), csv).unwrap();
    let out = dupdesk(dir.path(), &["import", "c.csv"]);
    stdout_of(&out);
    let out = dupdesk(dir.path(), &["match", "--object", "contacts"]);
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains(
            "warning: field \"firstname\" (given_name) is absent from every record, so it is never compared; did you mean \"first_name\" for \"firstname\"?"
        ),
        "{stdout}"
    );
    // Fields with values, and the one no CSV column feeds without a near header, are named
    // as they are.
    assert!(
        !stdout.contains("\"lastname\" (surname) is absent"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "field \"phone\" (phone) is absent from every record, so it is never compared\n"
        ),
        "{stdout}"
    );
    let out = dupdesk(
        dir.path(),
        &["match", "--object", "contacts", "--full", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let warnings = v[0]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("did you mean \"first_name\"")),
        "{v}"
    );
}

/// Values that cannot be read as their kind are counted, with an example that reaches the
/// terminal without its control characters; the example is the first such value.
#[test]
fn unparseable_values_are_counted_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let dob = |i: usize| match i {
        3 => "soon\u{1b}[2J".to_string(),
        7 | 9 => "31/02/1980".to_string(),
        11 => "NA".to_string(),
        _ => format!("19{}-0{}-1{}", 50 + i, 1 + i % 9, i % 10),
    };
    workspace(dir.path(), people(&|i| vec![("dob", dob(i))]));
    std::fs::write(
        dir.path().join("dupdesk.toml"),
        r#"[matcher.contacts]
fields = [
  { property = "firstname", kind = "given_name" },
  { property = "lastname", kind = "surname" },
  { property = "email", kind = "email" },
  { property = "dob", kind = "date" },
]
"#,
    )
    .unwrap();
    let out = dupdesk(dir.path(), &["match", "--object", "contacts"]);
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains(
            "warning: field \"dob\" (date): 3 of 50 values cannot be read as a date (full, year-month or year), for example \"soon\\u{1b}[2J\"; they count as missing"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(!stdout.contains("absent from every record"), "{stdout}");
}

/// An object type without records says so, in text and in JSON, and is not `model_fitted`,
/// on the first run and on the next.
#[test]
fn an_object_with_no_records_says_so() {
    let dir = tempfile::tempdir().unwrap();
    workspace(dir.path(), people(&|_| vec![]));
    for run in 0..2 {
        let out = dupdesk(dir.path(), &["match", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
        let companies = v
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["object"] == "companies")
            .unwrap();
        assert_eq!(companies["records"], 0, "run {run}: {companies}");
        assert_eq!(companies["model_fitted"], false, "run {run}: {companies}");
        assert!(
            companies["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("no companies to match"),
            "run {run}: {companies}"
        );
        let contacts = v
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["object"] == "contacts")
            .unwrap();
        assert!(
            !contacts["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("no contacts")),
            "{contacts}"
        );
    }
    let out = dupdesk(dir.path(), &["match", "--object", "companies"]);
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("warning: no companies to match"),
        "{stdout}"
    );
    assert!(!stdout.contains("weights estimated"), "{stdout}");
    // No model was kept for it.
    let out = dupdesk(dir.path(), &["model", "--object", "companies"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no fitted model for companies"),
        "{out:?}"
    );
}

/// `dupdesk model` shows every field and every comparison level with m, u and weight, and
/// every blocking rule's iterations and convergence; an estimation stopped at the iteration
/// cap is said by `match` too.
#[test]
fn model_prints_every_field_and_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = people(&|i| vec![("phone", format!("+49 30 55{:05}", i * 37))]);
    // A few duplicates, so the estimation has something to find.
    for i in 0..8 {
        let mut r = records[i].clone();
        r.id = format!("9{i}");
        records.push(r);
    }
    workspace(dir.path(), records);
    let out = Command::new(env!("CARGO_BIN_EXE_dupdesk"))
        .current_dir(dir.path())
        .env("DUPDESK_MATCHER__U_SAMPLE_PAIRS", "5000")
        .env("DUPDESK_MATCHER__EM_SAMPLE_PAIRS", "5000")
        .env("DUPDESK_MATCHER__EM_MAX_ITERATIONS", "1")
        .args(["--workspace", "ws.db", "match", "--object", "contacts"])
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("warning: blocking rule \"email\": the estimation of its weights stopped after 1 iterations without converging"),
        "{stdout}"
    );
    let out = dupdesk(dir.path(), &["model", "--object", "contacts"]);
    let shown = stdout_of(&out);
    let cfg = MatchConfig::new(&common::config().matcher, ObjectType::Contacts).unwrap();
    for f in &cfg.fields {
        let header = format!("  {} ({})\n", f.property, f.kind);
        let at = shown
            .find(&header)
            .unwrap_or_else(|| panic!("{header}{shown}"));
        let block: Vec<&str> = shown[at + header.len()..]
            .lines()
            .take(compare::level_count(f.kind))
            .collect();
        for (line, name) in block.iter().zip(compare::level_names(f.kind)) {
            assert!(
                line.trim_start().starts_with(name),
                "{name}: {line}\n{shown}"
            );
            assert!(line.contains('│'), "{line}");
        }
    }
    assert!(shown.contains("NOT converged"), "{shown}");
    // Every rule that found pairs was estimated (erp_customer_id finds none here).
    for rule in ["email", "phone", "lastname+firstname:initial"] {
        assert!(
            shown.contains(&format!("    {rule:<40} 1 iterations, NOT converged")),
            "{rule}\n{shown}"
        );
    }
    // Not a terminal: no colour.
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    let out = dupdesk(dir.path(), &["model", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v[0]["object"], "contacts");
    assert_eq!(v[0]["current"], true);
    let email = &v[0]["fields"][2];
    assert_eq!(email["property"], "email");
    assert_eq!(email["levels"].as_array().unwrap().len(), 4);
    let exact = &email["levels"][3];
    assert_eq!(exact["name"], "exact");
    let (m, u, w) = (
        exact["m"].as_f64().unwrap(),
        exact["u"].as_f64().unwrap(),
        exact["weight"].as_f64().unwrap(),
    );
    assert!((w - (m / u).log2()).abs() < 1e-9, "{exact}");
    assert!(w > 0.0, "{exact}");
}
