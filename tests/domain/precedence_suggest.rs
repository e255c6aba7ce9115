//! Which value survives, which record is primary, and the reasons: table-driven over real
//! `Record`s with property history, through the public API only.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dupdesk::config::{SourceRule, SourcesConfig};
use dupdesk::domain::model::{ObjectType, PropertyVersion, Record};
use dupdesk::domain::precedence::{
    DecidedBy, FieldChoice, Override, OverrideError, PrecedenceError, Rules, Suggestion,
    apply_overrides, suggest, suggest_with_primary,
};

// ---- building records ----------------------------------------------------------------------

fn ts(day: &str) -> DateTime<Utc> {
    let full = if day.len() == 10 {
        format!("{day}T12:00:00.000Z")
    } else {
        day.to_string()
    };
    dupdesk::domain::model::parse_ts(&full).unwrap()
}

/// Who writes a value, as HubSpot's history reports it.
#[derive(Clone, Copy)]
enum By {
    Crm,
    Erp,
    Form,
    /// An integration no source rule names: the default system (crm).
    Other,
}

impl By {
    fn source(self) -> (&'static str, Option<&'static str>) {
        match self {
            By::Crm => ("CRM_UI", None),
            By::Erp => ("INTEGRATION", Some("erp-sync")),
            By::Form => ("FORM", None),
            By::Other => ("API", None),
        }
    }
}

struct Rec(Record);

fn rec(id: &str) -> Rec {
    Rec(Record {
        object_type: ObjectType::Contacts,
        id: id.to_string(),
        properties: BTreeMap::new(),
        history: BTreeMap::new(),
        created_at: Some(ts("2024-01-01")),
        updated_at: Some(ts("2024-01-01")),
        archived: false,
    })
}

impl Rec {
    /// The current value of a field, written by `by` on `day` (its newest history entry).
    fn set(mut self, field: &str, value: &str, day: &str, by: By) -> Rec {
        self.0
            .properties
            .insert(field.to_string(), Some(value.to_string()));
        let (source_type, source_id) = by.source();
        self.0.history.entry(field.to_string()).or_default().insert(
            0,
            PropertyVersion {
                value: Some(value.to_string()),
                timestamp: ts(day),
                source_type: source_type.to_string(),
                source_id: source_id.map(str::to_string),
            },
        );
        self
    }

    /// A value without any history (a CSV import).
    fn bare(mut self, field: &str, value: &str) -> Rec {
        self.0
            .properties
            .insert(field.to_string(), Some(value.to_string()));
        self
    }

    fn created(mut self, day: &str) -> Rec {
        self.0.created_at = Some(ts(day));
        self
    }

    fn updated(mut self, day: &str) -> Rec {
        self.0.updated_at = Some(ts(day));
        self
    }

    fn build(self) -> Record {
        self.0
    }
}

fn sources() -> SourcesConfig {
    let rule = |t: &str, id: Option<&str>, s: &str| SourceRule {
        source_type: t.into(),
        source_id: id.map(str::to_string),
        system: s.into(),
    };
    SourcesConfig {
        default_system: "crm".into(),
        rules: vec![
            rule("INTEGRATION", Some("erp-sync"), "erp"),
            rule("FORM", None, "marketing"),
            rule("CRM_UI", None, "crm"),
        ],
    }
}

/// Rules with the given default strategy list and primary rule; billing is owned by erp,
/// marketing may only write engagement fields, `email` and `phone` have formats.
fn rules(strategies: &str, primary: &str) -> Rules {
    let text = format!(
        r#"read_only = ["hs_object_id", "createdate"]
[systems]
ranking = ["erp", "crm", "marketing"]
[systems.only]
marketing = ["engagement"]
[groups]
billing = ["city", "zip"]
engagement = ["lifecyclestage"]
[formats]
email = ["email"]
phone = ["phone"]
[default]
strategies = [{strategies}]
[rules.billing]
owner = "erp"
[rules.engagement]
owner = "marketing"
[primary]
system = "crm"
rule = [{primary}]
"#
    );
    Rules::parse(&text, "test rules").unwrap()
}

fn fields(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A reason must fit a table cell.
fn check_reason(reason: &str) {
    assert!(
        reason.chars().count() <= 40,
        "reason longer than 40: {reason:?}"
    );
    assert!(!reason.is_empty());
}

// ---- field strategies, table-driven ---------------------------------------------------------

struct FieldCase {
    name: &'static str,
    strategies: &'static str,
    records: Vec<Record>,
    field: &'static str,
    value: Option<&'static str>,
    from: Option<&'static str>,
    reason: &'static str,
}

fn field_cases() -> Vec<FieldCase> {
    let primary_first = "oldest";
    let _ = primary_first;
    vec![
        FieldCase {
            name: "most_recent follows the field's history",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-01-05", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "Acme GmbH", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme GmbH"),
            from: Some("2"),
            reason: "newest: 2026-03-01 from crm",
        },
        FieldCase {
            name: "history recency beats a newer record update time",
            strategies: r#""most_recent""#,
            records: vec![
                // Record 1 was touched last (another field), but its company is old.
                rec("1")
                    .set("company", "Acme", "2025-02-01", By::Crm)
                    .updated("2026-06-01")
                    .build(),
                rec("2")
                    .set("company", "Acme GmbH", "2026-03-01", By::Other)
                    .updated("2026-03-01")
                    .build(),
            ],
            field: "company",
            value: Some("Acme GmbH"),
            from: Some("2"),
            reason: "newest: 2026-03-01 from crm",
        },
        FieldCase {
            name: "without history the record's update time is used, and said",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1")
                    .bare("company", "Acme")
                    .updated("2026-06-01")
                    .build(),
                rec("2")
                    .bare("company", "Acme GmbH")
                    .updated("2026-03-01")
                    .build(),
            ],
            field: "company",
            value: Some("Acme"),
            from: Some("1"),
            reason: "newest: 2026-06-01 (no history)",
        },
        FieldCase {
            name: "history that no longer holds the current value counts as none",
            strategies: r#""most_recent""#,
            records: vec![
                {
                    // History says "Old Co" but the value is now "Acme": the history is stale.
                    let mut r = rec("1")
                        .set("company", "Old Co", "2026-09-01", By::Crm)
                        .updated("2025-01-01")
                        .build();
                    r.properties.insert("company".into(), Some("Acme".into()));
                    r
                },
                rec("2")
                    .set("company", "Acme GmbH", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme GmbH"),
            from: Some("2"),
            reason: "newest: 2026-03-01 from crm",
        },
        FieldCase {
            name: "most_complete takes the fuller record's value",
            strategies: r#""most_complete""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "ACME Ltd", "2025-01-01", By::Crm)
                    .set("jobtitle", "CFO", "2025-01-01", By::Crm)
                    .set("firstname", "Ann", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("ACME Ltd"),
            from: Some("2"),
            reason: "most complete record (3 fields)",
        },
        FieldCase {
            name: "valid_format keeps the only valid email",
            strategies: r#""valid_format", "most_recent""#,
            records: vec![
                rec("1")
                    .set("email", "ann@example", "2026-05-01", By::Crm)
                    .build(),
                rec("2")
                    .set("email", "ann@example.com", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "email",
            value: Some("ann@example.com"),
            from: Some("2"),
            reason: "only valid email",
        },
        FieldCase {
            name: "valid_format keeps the phone that normalizes",
            strategies: r#""valid_format", "most_recent""#,
            records: vec![
                rec("1")
                    .set("phone", "call after 5", "2026-05-01", By::Crm)
                    .build(),
                rec("2")
                    .set("phone", "+49 (30) 123-4567", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "phone",
            value: Some("+49 (30) 123-4567"),
            from: Some("2"),
            reason: "only valid phone",
        },
        FieldCase {
            name: "valid_format cannot tell apart fields without a format",
            strategies: r#""valid_format", "longest""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-05-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "Acme Inc", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme Inc"),
            from: Some("2"),
            reason: "longest (8 chars)",
        },
        FieldCase {
            name: "most_common counts across the cluster",
            strategies: r#""most_common""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2024-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "Globex", "2026-01-01", By::Crm)
                    .build(),
                rec("3")
                    .set("company", "Acme", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme"),
            // Credited to the record that wrote it last.
            from: Some("3"),
            reason: "most common (2 of 3)",
        },
        FieldCase {
            name: "longest",
            strategies: r#""longest""#,
            records: vec![
                rec("1")
                    .set("jobtitle", "VP", "2026-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("jobtitle", "VP Sales EMEA", "2020-01-01", By::Crm)
                    .build(),
            ],
            field: "jobtitle",
            value: Some("VP Sales EMEA"),
            from: Some("2"),
            reason: "longest (13 chars)",
        },
        FieldCase {
            name: "from_primary (the oldest record)",
            strategies: r#""from_primary""#,
            records: vec![
                rec("1")
                    .set("jobtitle", "VP", "2026-01-01", By::Crm)
                    .created("2025-01-01")
                    .build(),
                rec("2")
                    .set("jobtitle", "Director", "2020-01-01", By::Crm)
                    .created("2019-01-01")
                    .build(),
            ],
            field: "jobtitle",
            value: Some("Director"),
            from: Some("2"),
            reason: "from primary",
        },
        FieldCase {
            name: "source_rank prefers the more reliable system",
            strategies: r#""source_rank""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "ACME AG", "2020-01-01", By::Erp)
                    .build(),
            ],
            field: "company",
            value: Some("ACME AG"),
            from: Some("2"),
            reason: "erp ranks above crm",
        },
        FieldCase {
            name: "strategies run in order: a tie on the first goes to the next",
            strategies: r#""most_recent", "longest""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "Acme Corp", "2026-01-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme Corp"),
            from: Some("2"),
            reason: "longest (9 chars)",
        },
        FieldCase {
            name: "a full tie goes to the higher-ranked system",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "ACME", "2026-01-01", By::Erp)
                    .build(),
            ],
            field: "company",
            value: Some("ACME"),
            from: Some("2"),
            reason: "tie, erp ranked higher",
        },
        FieldCase {
            name: "a full tie between equal systems goes to the primary",
            strategies: r#""most_recent""#,
            records: vec![
                rec("5")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .created("2025-01-01")
                    .build(),
                rec("7")
                    .set("company", "ACME", "2026-01-01", By::Crm)
                    .created("2020-01-01")
                    .build(),
            ],
            field: "company",
            value: Some("ACME"),
            from: Some("7"),
            reason: "tie, from primary",
        },
        FieldCase {
            name: "otherwise the lowest record id, in numeric order",
            strategies: r#""most_recent""#,
            records: vec![
                rec("10")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .build(),
                rec("9")
                    .set("company", "ACME", "2026-01-01", By::Crm)
                    .build(),
                // The primary (oldest) has no company.
                rec("100").created("2010-01-01").build(),
            ],
            field: "company",
            value: Some("ACME"),
            from: Some("9"),
            reason: "tie, lowest record id",
        },
        FieldCase {
            name: "a field no record has stays empty",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1")
                    .set("company", "Acme", "2026-01-01", By::Crm)
                    .build(),
                rec("2").bare("jobtitle", "").build(),
            ],
            field: "jobtitle",
            value: None,
            from: None,
            reason: "no record has a value",
        },
        FieldCase {
            name: "one record's value is taken",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1").build(),
                rec("2")
                    .set("jobtitle", "CFO", "2020-01-01", By::Crm)
                    .build(),
            ],
            field: "jobtitle",
            value: Some("CFO"),
            from: Some("2"),
            reason: "only value",
        },
        FieldCase {
            name: "records that agree",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1")
                    .set("jobtitle", "CFO", "2020-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("jobtitle", "CFO", "2021-01-01", By::Erp)
                    .build(),
            ],
            field: "jobtitle",
            value: Some("CFO"),
            from: Some("2"),
            reason: "same in 2 records",
        },
        FieldCase {
            name: "the owner's value wins over a newer one",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1").set("city", "Bonn", "2024-01-01", By::Erp).build(),
                rec("2")
                    .set("city", "Berlin", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "city",
            value: Some("Bonn"),
            from: Some("1"),
            reason: "erp owns billing",
        },
        FieldCase {
            name: "an owner with no value falls through to the strategies",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1").set("city", "Bonn", "2024-01-01", By::Crm).build(),
                rec("2")
                    .set("city", "Berlin", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "city",
            value: Some("Berlin"),
            from: Some("2"),
            reason: "newest: 2026-03-01 from crm",
        },
        FieldCase {
            name: "between two owner values the strategies decide",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1").set("city", "Bonn", "2024-01-01", By::Erp).build(),
                rec("2").set("city", "Köln", "2025-01-01", By::Erp).build(),
                rec("3")
                    .set("city", "Berlin", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "city",
            value: Some("Köln"),
            from: Some("2"),
            reason: "newest: 2025-01-01 from erp",
        },
        FieldCase {
            name: "a webinar form never overwrites a billing field",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1").set("city", "Bonn", "2024-01-01", By::Crm).build(),
                rec("2")
                    .set("city", "Bonn-Beuel", "2026-03-01", By::Form)
                    .build(),
            ],
            field: "city",
            value: Some("Bonn"),
            from: Some("1"),
            reason: "crm may write it, marketing may not",
        },
        FieldCase {
            name: "a value only marketing has is kept, and said",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1").build(),
                rec("2").set("zip", "53225", "2026-03-01", By::Form).build(),
            ],
            field: "zip",
            value: Some("53225"),
            from: Some("2"),
            reason: "only from marketing (not its field)",
        },
        FieldCase {
            name: "marketing owns engagement fields",
            strategies: r#""most_recent""#,
            records: vec![
                rec("1")
                    .set("lifecyclestage", "lead", "2024-01-01", By::Form)
                    .build(),
                rec("2")
                    .set("lifecyclestage", "customer", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "lifecyclestage",
            value: Some("lead"),
            from: Some("1"),
            reason: "marketing owns engagement",
        },
    ]
}

#[test]
fn each_strategy_tie_and_gap_chooses_as_documented() {
    for case in field_cases() {
        let rules = rules(case.strategies, r#""oldest""#);
        let all = fields(&[
            "firstname",
            "company",
            "jobtitle",
            "email",
            "phone",
            "city",
            "zip",
            "lifecyclestage",
        ]);
        let s = suggest(&case.records, &rules, &sources(), &all).unwrap();
        let f = s.field(case.field).unwrap();
        let chosen = f.chosen.as_ref().unwrap();
        assert_eq!(chosen.value.as_deref(), case.value, "{}", case.name);
        assert_eq!(chosen.record_id.as_deref(), case.from, "{}", case.name);
        assert_eq!(chosen.reason, case.reason, "{}", case.name);
        assert_eq!(chosen.decided_by, DecidedBy::Rules);
        check_reason(&chosen.reason);

        // The losing values stay visible, each with its record, system and time.
        let holders = case
            .records
            .iter()
            .filter(|r| r.get(case.field).is_some())
            .count();
        assert_eq!(f.candidates.len(), holders, "{}", case.name);
        for loser in f.losers() {
            assert_ne!(Some(loser.value.as_str()), case.value, "{}", case.name);
        }

        // The answer does not depend on the order the records came in.
        let mut reversed = case.records.clone();
        reversed.reverse();
        let again = suggest(&reversed, &rules, &sources(), &all).unwrap();
        assert_eq!(
            again.field(case.field).unwrap().chosen,
            f.chosen,
            "{}: order-dependent",
            case.name
        );
    }
}

#[test]
fn a_candidate_says_who_wrote_it_and_when() {
    let records = vec![
        rec("1").set("city", "Bonn", "2024-01-01", By::Erp).build(),
        rec("2")
            .set("city", "Berlin", "2026-03-01T08:30:00.000Z", By::Form)
            .build(),
        rec("3").bare("city", "Köln").updated("2025-05-05").build(),
    ];
    let s = suggest(
        &records,
        &rules(r#""most_recent""#, r#""oldest""#),
        &sources(),
        &fields(&["city"]),
    )
    .unwrap();
    let f = s.field("city").unwrap();
    let by_id = |id: &str| f.value_of(id).unwrap();
    assert_eq!(by_id("1").system.as_deref(), Some("erp"));
    assert!(by_id("1").eligible);
    assert_eq!(by_id("2").system.as_deref(), Some("marketing"));
    assert_eq!(by_id("2").written_at, Some(ts("2026-03-01T08:30:00.000Z")));
    assert!(by_id("2").from_history);
    assert!(!by_id("2").eligible, "marketing may not write billing");
    assert_eq!(by_id("3").system, None);
    assert!(!by_id("3").from_history);
    assert_eq!(by_id("3").written_at, Some(ts("2025-05-05")));
    assert!(f.conflicting(3));
    let losers: Vec<&str> = f.losers().map(|c| c.record_id.as_str()).collect();
    assert_eq!(losers, ["2", "3"]);
}

#[test]
fn read_only_fields_are_shown_but_never_chosen() {
    let records = vec![
        rec("1")
            .set("hs_object_id", "1", "2024-01-01", By::Crm)
            .build(),
        rec("2")
            .set("hs_object_id", "2", "2024-01-01", By::Crm)
            .build(),
    ];
    let s = suggest(
        &records,
        &rules(r#""most_recent""#, r#""oldest""#),
        &sources(),
        &fields(&["hs_object_id", "city"]),
    )
    .unwrap();
    let f = s.field("hs_object_id").unwrap();
    assert!(f.read_only);
    assert_eq!(f.chosen, None);
    assert_eq!(f.candidates.len(), 2);
    let choices = s.choices();
    assert!(!choices.contains_key("hs_object_id"));
    assert!(
        choices.contains_key("city"),
        "an empty field is still decided"
    );
}

// ---- the primary record ----------------------------------------------------------------------

struct PrimaryCase {
    name: &'static str,
    rule: &'static str,
    records: Vec<Record>,
    primary: &'static str,
    reason: &'static str,
}

fn primary_cases() -> Vec<PrimaryCase> {
    let chain = r#""system_of_record", "oldest", "most_complete""#;
    vec![
        PrimaryCase {
            name: "the record created in the system of record",
            rule: chain,
            records: vec![
                // The oldest, but created by a webinar form.
                rec("1")
                    .set("email", "a@x.com", "2020-01-01", By::Form)
                    .set("firstname", "Ann", "2022-01-01", By::Crm)
                    .created("2020-01-01")
                    .build(),
                rec("2")
                    .set("email", "a@x.com", "2023-01-01", By::Crm)
                    .created("2023-01-01")
                    .build(),
            ],
            primary: "2",
            reason: "created in crm",
        },
        PrimaryCase {
            name: "else the oldest",
            rule: chain,
            records: vec![
                rec("1")
                    .set("email", "a@x.com", "2023-01-01", By::Crm)
                    .created("2023-01-01")
                    .build(),
                rec("2")
                    .set("email", "a@x.com", "2021-01-01", By::Crm)
                    .created("2021-04-30")
                    .build(),
                rec("3")
                    .set("email", "a@x.com", "2020-01-01", By::Form)
                    .created("2020-01-01")
                    .build(),
            ],
            primary: "2",
            reason: "oldest: created 2021-04-30",
        },
        PrimaryCase {
            name: "else the most complete",
            rule: chain,
            records: vec![
                rec("1")
                    .set("email", "a@x.com", "2023-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("email", "a@x.com", "2023-01-01", By::Crm)
                    .set("city", "Bonn", "2023-01-01", By::Crm)
                    .build(),
            ],
            primary: "2",
            reason: "most complete (2 of 4 fields)",
        },
        PrimaryCase {
            name: "else the lowest record id",
            rule: chain,
            records: vec![
                rec("20")
                    .set("email", "a@x.com", "2023-01-01", By::Crm)
                    .build(),
                rec("3")
                    .set("email", "b@x.com", "2023-01-01", By::Crm)
                    .build(),
            ],
            primary: "3",
            reason: "tie, lowest record id",
        },
        PrimaryCase {
            name: "without history the system of record cannot tell, so the oldest",
            rule: chain,
            records: vec![
                rec("1")
                    .bare("email", "a@x.com")
                    .created("2023-01-01")
                    .build(),
                rec("2")
                    .bare("email", "a@x.com")
                    .created("2022-01-01")
                    .build(),
            ],
            primary: "2",
            reason: "oldest: created 2022-01-01",
        },
        PrimaryCase {
            name: "newest by update time",
            rule: r#""newest""#,
            records: vec![
                rec("1").updated("2026-01-01").build(),
                rec("2").updated("2025-01-01").build(),
            ],
            primary: "1",
            reason: "newest: updated 2026-01-01",
        },
        PrimaryCase {
            name: "a single record",
            rule: chain,
            records: vec![rec("8").build()],
            primary: "8",
            reason: "only record",
        },
    ]
}

#[test]
fn the_primary_rule_chain() {
    for case in primary_cases() {
        let rules = rules(r#""most_recent""#, case.rule);
        let s = suggest(
            &case.records,
            &rules,
            &sources(),
            &fields(&["email", "city", "company", "jobtitle", "hs_object_id"]),
        )
        .unwrap();
        assert_eq!(s.primary.record_id, case.primary, "{}", case.name);
        assert_eq!(s.primary.reason, case.reason, "{}", case.name);
        assert_eq!(s.primary.decided_by, DecidedBy::Rules);
        check_reason(&s.primary.reason);
        let mut reversed = case.records.clone();
        reversed.reverse();
        let again = suggest(
            &reversed,
            &rules,
            &sources(),
            &fields(&["email", "city", "company", "jobtitle"]),
        )
        .unwrap();
        assert_eq!(
            again.primary.record_id, case.primary,
            "{}: order-dependent",
            case.name
        );
    }
}

#[test]
fn a_primary_picked_by_the_steward_drives_from_primary() {
    let records = vec![
        rec("1")
            .set("jobtitle", "VP", "2026-01-01", By::Crm)
            .created("2020-01-01")
            .build(),
        rec("2")
            .set("jobtitle", "Director", "2026-01-01", By::Crm)
            .created("2024-01-01")
            .build(),
    ];
    let rules = rules(r#""from_primary""#, r#""oldest""#);
    let f = fields(&["jobtitle"]);
    let s = suggest(&records, &rules, &sources(), &f).unwrap();
    assert_eq!(s.primary.record_id, "1");
    assert_eq!(
        s.field("jobtitle")
            .unwrap()
            .chosen
            .as_ref()
            .unwrap()
            .value
            .as_deref(),
        Some("VP")
    );

    let s = suggest_with_primary(&records, &rules, &sources(), &f, "2").unwrap();
    assert_eq!(s.primary.record_id, "2");
    assert_eq!(s.primary.decided_by, DecidedBy::Steward);
    assert_eq!(s.primary.reason, "picked by steward");
    assert_eq!(
        s.field("jobtitle")
            .unwrap()
            .chosen
            .as_ref()
            .unwrap()
            .value
            .as_deref(),
        Some("Director")
    );

    assert_eq!(
        suggest_with_primary(&records, &rules, &sources(), &f, "9"),
        Err(PrecedenceError::UnknownPrimary("9".into()))
    );
    assert_eq!(
        suggest(&[], &rules, &sources(), &f),
        Err(PrecedenceError::EmptyCluster)
    );
}

// ---- overrides -------------------------------------------------------------------------------

fn cluster() -> (Vec<Record>, Suggestion) {
    let records = vec![
        rec("101")
            .set("city", "Bonn", "2024-01-01", By::Erp)
            .set("jobtitle", "VP", "2026-01-01", By::Crm)
            .created("2020-01-01")
            .build(),
        rec("202")
            .set("city", "Berlin", "2026-03-01", By::Crm)
            .set("jobtitle", "Director", "2025-01-01", By::Crm)
            .build(),
        rec("303")
            .set("email", "x@y.com", "2026-01-01", By::Crm)
            .build(),
    ];
    let s = suggest(
        &records,
        &rules(r#""most_recent""#, r#""oldest""#),
        &sources(),
        &fields(&["city", "jobtitle", "email", "zip", "hs_object_id"]),
    )
    .unwrap();
    (records, s)
}

#[test]
fn overrides_replace_the_suggestion_and_keep_their_source() {
    let (_, s) = cluster();
    let overrides = BTreeMap::from([
        (
            "city".to_string(),
            Override::TakeFrom {
                record_id: "202".into(),
            },
        ),
        (
            "jobtitle".to_string(),
            Override::Typed {
                value: "Head of Finance".into(),
            },
        ),
        ("email".to_string(), Override::Typed { value: "  ".into() }),
        (
            "zip".to_string(),
            Override::TakeFrom {
                record_id: "303".into(),
            },
        ),
    ]);
    let choices = apply_overrides(&s, &overrides).unwrap();
    assert_eq!(
        choices["city"],
        FieldChoice {
            value: Some("Berlin".into()),
            record_id: Some("202".into()),
            system: Some("crm".into()),
            reason: "steward: from 202".into(),
            decided_by: DecidedBy::Steward,
        }
    );
    assert_eq!(
        choices["jobtitle"],
        FieldChoice {
            value: Some("Head of Finance".into()),
            record_id: None,
            system: None,
            reason: "steward: typed".into(),
            decided_by: DecidedBy::Steward,
        }
    );
    assert_eq!(choices["email"].value, None);
    assert_eq!(choices["email"].reason, "steward: cleared");
    assert_eq!(choices["zip"].value, None);
    assert_eq!(choices["zip"].record_id.as_deref(), Some("303"));
    for c in choices.values() {
        check_reason(&c.reason);
    }

    // Without overrides: the suggestion, for every writable field and no read-only one.
    let plain = apply_overrides(&s, &BTreeMap::new()).unwrap();
    assert_eq!(plain, s.choices());
    assert_eq!(
        plain.keys().map(String::as_str).collect::<Vec<_>>(),
        ["city", "email", "jobtitle", "zip"]
    );
    assert_eq!(plain["city"].reason, "erp owns billing");
    assert_eq!(plain["city"].record_id.as_deref(), Some("101"));
    assert_eq!(plain["zip"].value, None);
}

#[test]
fn bad_overrides_are_refused() {
    let (_, s) = cluster();
    let one =
        |field: &str, o: Override| apply_overrides(&s, &BTreeMap::from([(field.to_string(), o)]));
    assert_eq!(
        one("hs_object_id", Override::Typed { value: "1".into() }),
        Err(OverrideError::ReadOnly("hs_object_id".into()))
    );
    assert_eq!(
        one("fax", Override::Typed { value: "1".into() }),
        Err(OverrideError::UnknownField("fax".into()))
    );
    assert_eq!(
        one(
            "city",
            Override::TakeFrom {
                record_id: "999".into()
            }
        ),
        Err(OverrideError::NotInCluster {
            field: "city".into(),
            record_id: "999".into()
        })
    );
}

#[test]
fn choices_serialize_as_the_decision_log_reads_them() {
    let (_, s) = cluster();
    let choices = apply_overrides(
        &s,
        &BTreeMap::from([(
            "jobtitle".to_string(),
            Override::TakeFrom {
                record_id: "202".into(),
            },
        )]),
    )
    .unwrap();
    let json = serde_json::to_value(&choices).unwrap();
    assert_eq!(
        json["city"],
        serde_json::json!({"value": "Bonn", "record_id": "101", "system": "erp",
                           "reason": "erp owns billing", "decided_by": "rules"})
    );
    assert_eq!(json["jobtitle"]["decided_by"], "steward");
    assert_eq!(json["zip"]["value"], serde_json::Value::Null);
    let back: BTreeMap<String, FieldChoice> = serde_json::from_value(json).unwrap();
    assert_eq!(back, choices);
    // Overrides are data too (the TUI may keep them in its state).
    let o: Override = serde_json::from_str(r#"{"kind":"take_from","record_id":"202"}"#).unwrap();
    assert_eq!(
        o,
        Override::TakeFrom {
            record_id: "202".into()
        }
    );
}

// ---- the default rules: the seeds' policy ----------------------------------------------------

#[test]
fn the_default_rules_follow_the_seeds_policy() {
    let rules = Rules::load(None).unwrap();
    let records = vec![
        rec("1")
            // CRM-created contact with its identity typed by sales.
            .set("email", "ann.berg@acme.com", "2023-02-01", By::Crm)
            .set("firstname", "Ann", "2023-02-01", By::Crm)
            .set("city", "Bonn", "2024-06-01", By::Erp)
            .set("erp_customer_id", "C-1001", "2024-06-01", By::Erp)
            .created("2023-02-01")
            .build(),
        rec("2")
            // Created later by a webinar form, which also typed a city.
            .set("email", "ann@acme.com", "2026-03-01", By::Form)
            .set("firstname", "Anne", "2026-03-01", By::Form)
            .set("city", "Köln", "2026-03-01", By::Form)
            .set(
                "lifecyclestage",
                "marketingqualifiedlead",
                "2026-03-01",
                By::Form,
            )
            .created("2026-03-01")
            .build(),
        rec("3")
            .set("email", "ann.berg@acme", "2026-04-01", By::Crm)
            .set("phone", "+49 228 123456", "2026-04-01", By::Crm)
            // Signed up through a form first, then sales took over.
            .set("lifecyclestage", "subscriber", "2025-01-01", By::Form)
            .set("lifecyclestage", "customer", "2026-04-02", By::Crm)
            .created("2025-01-01")
            .build(),
    ];
    let f = fields(&[
        "email",
        "firstname",
        "phone",
        "city",
        "erp_customer_id",
        "lifecyclestage",
        "hs_object_id",
    ]);
    let s = suggest(&records, &rules, &sources(), &f).unwrap();
    let pick = |field: &str| s.field(field).unwrap().chosen.clone().unwrap();

    assert_eq!(s.primary.record_id, "1");
    assert_eq!(s.primary.reason, "created in crm");

    // The CRM owns identity; among its two emails the valid one wins.
    assert_eq!(pick("email").value.as_deref(), Some("ann.berg@acme.com"));
    assert_eq!(pick("email").reason, "only valid email");
    // Marketing's newer first name does not overwrite the CRM's.
    assert_eq!(pick("firstname").value.as_deref(), Some("Ann"));
    assert_eq!(pick("firstname").reason, "crm owns identity");
    // The ERP owns billing; the form's city never wins.
    assert_eq!(pick("city").value.as_deref(), Some("Bonn"));
    assert_eq!(pick("city").reason, "erp owns billing");
    assert_eq!(pick("erp_customer_id").value.as_deref(), Some("C-1001"));
    // Marketing owns engagement.
    assert_eq!(
        pick("lifecyclestage").value.as_deref(),
        Some("marketingqualifiedlead")
    );
    assert_eq!(pick("lifecyclestage").reason, "marketing owns engagement");
    assert_eq!(pick("phone").reason, "only value");
    assert!(s.field("hs_object_id").unwrap().read_only);
}

// ---- value hygiene: junk is set aside, the survivor is normalized ------------------------------

/// The test rules with more TOML after them (a `[values]` table, more rules).
fn rules_with(strategies: &str, extra: &str) -> Rules {
    let text = format!(
        r#"read_only = ["hs_object_id", "createdate"]
[systems]
ranking = ["erp", "crm", "marketing"]
[systems.only]
marketing = ["engagement"]
[groups]
billing = ["city", "zip"]
engagement = ["lifecyclestage"]
[formats]
email = ["email"]
phone = ["phone"]
[default]
strategies = [{strategies}]
[rules.billing]
owner = "erp"
[rules.engagement]
owner = "marketing"
[primary]
system = "crm"
rule = ["oldest"]
{extra}
"#
    );
    Rules::parse(&text, "test rules").unwrap()
}

struct HygieneCase {
    name: &'static str,
    rules: Rules,
    records: Vec<Record>,
    field: &'static str,
    value: Option<String>,
    from: Option<&'static str>,
    reason: &'static str,
    /// The value as the record held it, when the normalizer changed it.
    raw: Option<String>,
}

fn hygiene_cases() -> Vec<HygieneCase> {
    let newest = || rules_with(r#""most_recent""#, "");
    let long_junk = "x".repeat(10_000);
    vec![
        HygieneCase {
            name: "newest 'Ander ' and older 'Ander' agree once trimmed",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("firstname", "Ander", "2025-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("firstname", "Ander ", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "firstname",
            value: Some("Ander".into()),
            from: Some("2"),
            reason: "same in 2 records · trimmed",
            raw: Some("Ander ".into()),
        },
        HygieneCase {
            name: "untrimmed fields set 'Ander ' aside as junk",
            rules: rules_with(r#""most_recent""#, "[values]\ntrim = false"),
            records: vec![
                rec("1")
                    .set("firstname", "Ander", "2025-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("firstname", "Ander ", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "firstname",
            value: Some("Ander".into()),
            from: Some("1"),
            reason: "set aside: edge spaces",
            raw: None,
        },
        HygieneCase {
            name: "the only value with a trailing space is trimmed, and says so",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("firstname", "Ander ", "2026-03-01", By::Crm)
                    .build(),
                rec("2").build(),
            ],
            field: "firstname",
            value: Some("Ander".into()),
            from: Some("1"),
            reason: "only value · trimmed",
            raw: Some("Ander ".into()),
        },
        HygieneCase {
            name: "longest never picks control characters over a clean value",
            rules: rules_with(r#""longest""#, ""),
            records: vec![
                rec("1")
                    .set("jobtitle", "CFO", "2025-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set(
                        "jobtitle",
                        "Chief\u{1b}[2J\u{7} Financial\tOfficer",
                        "2026-03-01",
                        By::Crm,
                    )
                    .build(),
            ],
            field: "jobtitle",
            value: Some("CFO".into()),
            from: Some("1"),
            reason: "set aside: control chars",
            raw: None,
        },
        HygieneCase {
            name: "longest never picks a 10,000-character string over a clean value",
            rules: rules_with(r#""longest""#, ""),
            records: vec![
                rec("1")
                    .set("jobtitle", "Head of Finance", "2025-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("jobtitle", &long_junk, "2026-03-01", By::Crm)
                    .build(),
                rec("3")
                    .set("jobtitle", "Head", "2024-01-01", By::Crm)
                    .build(),
            ],
            field: "jobtitle",
            value: Some("Head of Finance".into()),
            from: Some("1"),
            reason: "longest · set aside: over 1000 chars",
            raw: None,
        },
        HygieneCase {
            name: "an email with U+200B is not valid and its twin wins",
            rules: rules_with(r#""valid_format", "most_recent""#, ""),
            records: vec![
                rec("1")
                    .set("email", "anna\u{200B}@example.com", "2026-03-01", By::Crm)
                    .build(),
                rec("2")
                    .set("email", "anna@example.com", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "email",
            value: Some("anna@example.com".into()),
            from: Some("2"),
            reason: "set aside: invisible chars",
            raw: None,
        },
        HygieneCase {
            name: "the owner's junk loses to a clean value of another system",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("city", "Bonn\u{2060}", "2026-03-01", By::Erp)
                    .build(),
                rec("2").set("city", "Bonn", "2025-01-01", By::Crm).build(),
            ],
            field: "city",
            value: Some("Bonn".into()),
            from: Some("2"),
            reason: "set aside: invisible chars",
            raw: None,
        },
        HygieneCase {
            name: "junk that is the only value still wins, and says so",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("firstname", "Ander\u{200C}", "2026-03-01", By::Crm)
                    .build(),
                rec("2").build(),
            ],
            field: "firstname",
            value: Some("Ander\u{200C}".into()),
            from: Some("1"),
            reason: "no clean value: invisible chars",
            raw: None,
        },
        HygieneCase {
            name: "among junk only, the strategies decide and the winner's junk is named",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("firstname", "An\u{7}der", "2025-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set("firstname", "Ander\u{2060}", "2026-03-01", By::Crm)
                    .build(),
            ],
            field: "firstname",
            value: Some("Ander\u{2060}".into()),
            from: Some("2"),
            reason: "newest · no clean value: invisible chars",
            raw: None,
        },
        HygieneCase {
            name: "an eligible junk value beats a clean one from a system kept out of the field",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("zip", "53225\u{200B}", "2025-01-01", By::Erp)
                    .build(),
                rec("2").set("zip", "53225", "2026-03-01", By::Form).build(),
            ],
            field: "zip",
            value: Some("53225\u{200B}".into()),
            from: Some("1"),
            reason: "no clean value: invisible chars",
            raw: None,
        },
        HygieneCase {
            name: "a line separator at the end is whitespace: trimmed, not junk",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("firstname", "An\u{7}der", "2026-03-01", By::Crm)
                    .build(),
                rec("2")
                    .set("firstname", "Ander\u{2028}", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "firstname",
            value: Some("Ander".into()),
            from: Some("2"),
            reason: "set aside: control chars · trimmed",
            raw: Some("Ander\u{2028}".into()),
        },
        HygieneCase {
            name: "two kinds of junk set aside",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("company", "Acme\u{0}", "2026-03-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "Acme\u{200B}", "2026-02-01", By::Crm)
                    .build(),
                rec("3")
                    .set("company", "Acme", "2020-01-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme".into()),
            from: Some("3"),
            reason: "set aside: junk of 2+ kinds",
            raw: None,
        },
        HygieneCase {
            name: "collapsing is configured: inner runs of spaces agree",
            rules: rules_with(r#""most_recent""#, "[values]\ncollapse_spaces = true"),
            records: vec![
                rec("1")
                    .set("company", "Acme  GmbH", "2026-03-01", By::Crm)
                    .build(),
                rec("2")
                    .set("company", "Acme GmbH", "2025-01-01", By::Crm)
                    .build(),
            ],
            field: "company",
            value: Some("Acme GmbH".into()),
            from: Some("1"),
            reason: "same in 2 records · spaces collapsed",
            raw: Some("Acme  GmbH".into()),
        },
        HygieneCase {
            name: "a field of prose sets its own length cap and keeps its lines",
            rules: rules_with(
                r#""longest""#,
                "[rules.notes]\nmax_chars = 20000\nline_breaks = true",
            ),
            records: vec![
                rec("1")
                    .set("notes", "Called.", "2025-01-01", By::Crm)
                    .build(),
                rec("2")
                    .set(
                        "notes",
                        &format!("Called.\n{}", "Long talk. ".repeat(200).trim_end()),
                        "2024-01-01",
                        By::Crm,
                    )
                    .build(),
            ],
            field: "notes",
            value: Some(format!("Called.\n{}", "Long talk. ".repeat(200).trim_end())),
            from: Some("2"),
            reason: "longest (2207 chars)",
            raw: None,
        },
        HygieneCase {
            name: "nothing but whitespace clears the field",
            rules: newest(),
            records: vec![
                rec("1")
                    .set("company", "   ", "2026-03-01", By::Crm)
                    .build(),
                rec("2").build(),
            ],
            field: "company",
            value: None,
            from: None,
            reason: "only blank values · trimmed",
            raw: Some("   ".into()),
        },
    ]
}

#[test]
fn junk_is_set_aside_when_a_clean_value_exists_and_survivors_are_normalized() {
    for case in hygiene_cases() {
        let all = fields(&[
            "firstname",
            "company",
            "jobtitle",
            "email",
            "city",
            "zip",
            "notes",
        ]);
        let s = suggest(&case.records, &case.rules, &sources(), &all).unwrap();
        let f = s.field(case.field).unwrap();
        let chosen = f.chosen.as_ref().unwrap();
        assert_eq!(chosen.value, case.value, "{}", case.name);
        assert_eq!(chosen.record_id.as_deref(), case.from, "{}", case.name);
        assert_eq!(chosen.reason, case.reason, "{}", case.name);
        assert_eq!(chosen.raw(), case.raw.as_deref(), "{}", case.name);
        check_reason(&chosen.reason);
        // The candidates stay as the records hold them, junk included.
        for r in &case.records {
            assert_eq!(
                f.value_of(&r.id).map(|c| c.value.as_str()),
                r.get(case.field),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn an_email_with_an_invisible_character_is_not_a_valid_email() {
    use dupdesk::domain::precedence::{Format, is_email};
    for twin in [
        "anna\u{200B}@example.com",
        "anna@example.com\u{200B}",
        "anna@exam\u{2060}ple.com",
        "\u{FEFF}anna@example.com",
        "anna\u{AD}@example.com",
    ] {
        assert!(!is_email(twin), "{twin:?}");
        assert!(!Format::Email.is_valid(twin), "{twin:?}");
    }
    assert!(is_email("anna@example.com"));
}

#[test]
fn overrides_go_through_the_normalizer_and_keep_what_the_steward_picked() {
    let records = vec![
        rec("1")
            .set("firstname", "Ander ", "2026-03-01", By::Crm)
            .set("company", "Acme\u{200B}", "2026-03-01", By::Crm)
            .build(),
        rec("2")
            .set("firstname", "Anders", "2025-01-01", By::Crm)
            .set("company", "Acme", "2025-01-01", By::Crm)
            .build(),
    ];
    let s = suggest(
        &records,
        &rules(r#""most_recent""#, r#""oldest""#),
        &sources(),
        &fields(&["firstname", "company", "jobtitle"]),
    )
    .unwrap();
    let choices = apply_overrides(
        &s,
        &BTreeMap::from([
            (
                "firstname".to_string(),
                Override::TakeFrom {
                    record_id: "1".into(),
                },
            ),
            (
                "company".to_string(),
                Override::TakeFrom {
                    record_id: "1".into(),
                },
            ),
            (
                "jobtitle".to_string(),
                Override::Typed {
                    value: "  Head of Finance\t".into(),
                },
            ),
        ]),
    )
    .unwrap();
    let first = &choices["firstname"];
    assert_eq!(first.value.as_deref(), Some("Ander"));
    assert_eq!(first.reason, "steward: from 1 · trimmed");
    assert_eq!(first.raw(), Some("Ander "));
    assert_eq!(first.decided_by, DecidedBy::Steward);
    // Junk the steward chose to keep stays (whitespace only is ever changed), and is named.
    let company = &choices["company"];
    assert_eq!(company.value.as_deref(), Some("Acme\u{200B}"));
    assert_eq!(company.reason, "steward: from 1 · has invisible chars");
    assert_eq!(company.raw(), None);
    let typed = &choices["jobtitle"];
    assert_eq!(typed.value.as_deref(), Some("Head of Finance"));
    assert_eq!(typed.reason, "steward: typed · trimmed");
    assert_eq!(typed.raw(), Some("  Head of Finance\t"));
    for c in choices.values() {
        check_reason(&c.reason);
    }
    // Stored, the raw value travels with the choice; old decisions without it still read.
    let json = serde_json::to_value(first).unwrap();
    assert_eq!(json["raw"], "Ander ");
    assert_eq!(json["value"], "Ander");
    let back: FieldChoice = serde_json::from_value(json).unwrap();
    assert_eq!(&back, first);
}
