//! The rules file is refused at start-up with its name, the line and what is wrong, for every
//! kind of mistake; good files load from disk and through the configuration.
#![allow(clippy::unwrap_used)]

use dupdesk::config::{self, SourceRule, SourcesConfig};
use dupdesk::domain::precedence::{Rules, RulesErrorKind, Strategy};

/// A small valid rules file; each case below changes one thing in it.
const BASE: &str = r#"read_only = ["hs_object_id"]

[systems]
ranking = ["erp", "crm", "marketing"]

[systems.only]
marketing = ["engagement"]

[groups]
identity = ["firstname", "email", "phone"]
billing = ["city", "zip"]
engagement = ["lifecyclestage"]

[formats]
email = ["email"]

[default]
strategies = ["most_recent", "from_primary"]

[rules.identity]
owner = "crm"
strategies = ["valid_format", "most_recent"]

[rules.billing]
owner = "erp"

[primary]
system = "crm"
rule = ["system_of_record", "oldest"]
"#;

/// 1-based line and column of the first occurrence of `needle`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

struct Case {
    name: &'static str,
    /// (what to replace in BASE, with what); an empty `from` appends `to`.
    edit: (&'static str, &'static str),
    kind: RulesErrorKind,
    /// Where the error must point: the first occurrence of this text in the edited file.
    at: &'static str,
    says: &'static str,
}

fn cases() -> Vec<Case> {
    use RulesErrorKind::*;
    vec![
        Case {
            name: "not toml",
            edit: ("[formats]", "[formats"),
            kind: Syntax,
            at: "[formats",
            says: "",
        },
        Case {
            name: "unknown key",
            edit: ("owner = \"erp\"", "ownr = \"erp\""),
            kind: Syntax,
            at: "ownr",
            says: "ownr",
        },
        Case {
            name: "unknown strategy in the default list",
            edit: (
                "strategies = [\"most_recent\", \"from_primary\"]",
                "strategies = [\"most_recent\", \"newest\"]",
            ),
            kind: UnknownStrategy,
            at: "\"newest\"",
            says: "unknown strategy \"newest\" in default.strategies",
        },
        Case {
            name: "unknown strategy in a rule",
            edit: (
                "\"valid_format\", \"most_recent\"",
                "\"valid_format\", \"last_write\"",
            ),
            kind: UnknownStrategy,
            at: "\"last_write\"",
            says: "rules.identity",
        },
        Case {
            name: "strategy named twice",
            edit: (
                "\"valid_format\", \"most_recent\"",
                "\"longest\", \"longest\"",
            ),
            kind: Duplicate,
            at: "\"longest\"]",
            says: "appears twice",
        },
        Case {
            name: "no strategies",
            edit: ("\"valid_format\", \"most_recent\"", ""),
            kind: Invalid,
            at: "[]",
            says: "at least one strategy",
        },
        Case {
            name: "owned by an unknown system",
            edit: ("owner = \"erp\"", "owner = \"billing-system\""),
            kind: UnknownSystem,
            at: "\"billing-system\"",
            says: "the owner of \"billing\" names unknown system \"billing-system\"",
        },
        Case {
            name: "restriction of an unknown system",
            edit: ("marketing = [\"engagement\"]", "map = [\"engagement\"]"),
            kind: UnknownSystem,
            at: "map =",
            says: "systems.only",
        },
        Case {
            name: "an owner that systems.only keeps out of the field",
            edit: ("owner = \"erp\"", "owner = \"marketing\""),
            kind: Invalid,
            at: "\"marketing\"\n\n[primary]",
            says: "owner marketing may not write \"city\"",
        },
        Case {
            name: "primary from an unknown system",
            edit: ("system = \"crm\"", "system = \"salesforce\""),
            kind: UnknownSystem,
            at: "\"salesforce\"",
            says: "primary.system",
        },
        Case {
            name: "system ranked twice",
            edit: (
                "[\"erp\", \"crm\", \"marketing\"]",
                "[\"erp\", \"crm\", \"erp\", \"marketing\"]",
            ),
            kind: Duplicate,
            at: "\"erp\", \"marketing\"",
            says: "systems.ranking",
        },
        Case {
            name: "empty ranking",
            edit: ("[\"erp\", \"crm\", \"marketing\"]", "[]"),
            kind: Invalid,
            at: "[]",
            says: "at least one system",
        },
        Case {
            name: "unknown format",
            edit: ("email = [\"email\"]", "e-mail = [\"email\"]"),
            kind: UnknownFormat,
            at: "e-mail",
            says: "unknown format \"e-mail\"",
        },
        Case {
            name: "field in two groups",
            edit: (
                "billing = [\"city\", \"zip\"]",
                "billing = [\"city\", \"email\"]",
            ),
            kind: Duplicate,
            at: "\"email\"]\nengagement",
            says: "one group",
        },
        Case {
            name: "rule for a read-only field",
            edit: ("", "\n[rules.hs_object_id]\nstrategies = [\"longest\"]\n"),
            kind: Invalid,
            at: "hs_object_id]",
            says: "read-only",
        },
        Case {
            name: "inherits a rule that does not exist",
            edit: ("owner = \"erp\"", "inherits = \"finance\""),
            kind: UnknownRule,
            at: "\"finance\"",
            says: "rules.billing inherits \"finance\"",
        },
        Case {
            name: "a rule inheriting itself",
            edit: ("owner = \"erp\"", "inherits = \"billing\""),
            kind: Cycle,
            at: "\"billing\"\n",
            says: "inherits cycle: billing -> billing",
        },
        Case {
            name: "two rules inheriting each other",
            edit: (
                "",
                "\n[rules.a]\ninherits = \"b\"\n\n[rules.b]\ninherits = \"a\"\n",
            ),
            kind: Cycle,
            at: "\"b\"",
            says: "inherits cycle: a -> b -> a",
        },
        Case {
            name: "three rules in a ring",
            edit: (
                "",
                "\n[rules.a]\ninherits = \"b\"\n[rules.b]\ninherits = \"c\"\n[rules.c]\ninherits = \"a\"\n",
            ),
            kind: Cycle,
            at: "\"b\"",
            says: "a -> b -> c -> a",
        },
        Case {
            name: "a group inheriting one of its own fields",
            edit: (
                "strategies = [\"valid_format\", \"most_recent\"]\n",
                "strategies = [\"valid_format\", \"most_recent\"]\ninherits = \"phone\"\n\n[rules.phone]\nstrategies = [\"longest\"]\n",
            ),
            kind: Cycle,
            at: "\"phone\"\n",
            says: "identity -> phone -> identity",
        },
        Case {
            name: "system_of_record without a system",
            edit: ("system = \"crm\"\n", ""),
            kind: Invalid,
            at: "\"system_of_record\"",
            says: "primary.system",
        },
        Case {
            name: "unknown primary criterion",
            edit: ("\"oldest\"]", "\"eldest\"]"),
            kind: UnknownStrategy,
            at: "\"eldest\"",
            says: "unknown primary criterion",
        },
        Case {
            name: "a length cap that leaves no room for a value",
            edit: ("", "\n[values]\nmax_chars = 0\n"),
            kind: Invalid,
            at: "0\n",
            says: "values.max_chars must be at least 1",
        },
        Case {
            name: "a negative length cap in a rule",
            edit: ("owner = \"erp\"", "owner = \"erp\"\nmax_chars = -5"),
            kind: Invalid,
            at: "-5",
            says: "rules.billing.max_chars must be at least 1 (got -5)",
        },
        Case {
            name: "an unknown key of the value policy",
            edit: ("", "\n[values]\ntrimm = true\n"),
            kind: Syntax,
            at: "trimm",
            says: "trimm",
        },
        Case {
            name: "a value policy key of the wrong type",
            edit: ("", "\n[values]\ntrim = \"yes\"\n"),
            kind: Syntax,
            at: "\"yes\"",
            says: "",
        },
    ]
}

#[test]
fn the_value_policy_defaults_to_trimming_and_rules_override_it_key_by_key() {
    use dupdesk::domain::precedence::ValuePolicy;
    let plain = Rules::parse(BASE, "base.toml").unwrap();
    assert_eq!(plain.values(), ValuePolicy::DEFAULT);
    // The embedded default file spells out the same policy.
    assert_eq!(
        Rules::load(None).unwrap().values(),
        ValuePolicy {
            max_chars: 1000,
            trim: true,
            collapse_spaces: false,
            line_breaks: false
        }
    );
    let text = format!(
        "{BASE}\n[values]\ncollapse_spaces = true\nmax_chars = 300\n\n[rules.notes]\nmax_chars = 20000\nline_breaks = true\n\n[rules.phone]\ntrim = false\n"
    );
    let rules = Rules::parse(&text, "values.toml").unwrap();
    let policy = |f: &str| rules.policy(f).values;
    // A field no rule names: the [values] table over the defaults.
    assert_eq!(
        policy("favourite_colour"),
        ValuePolicy {
            max_chars: 300,
            trim: true,
            collapse_spaces: true,
            line_breaks: false
        }
    );
    // A rule sets only the keys it names.
    assert_eq!(
        policy("notes"),
        ValuePolicy {
            max_chars: 20000,
            trim: true,
            collapse_spaces: true,
            line_breaks: true
        }
    );
    // A field rule overrides the keys it names and keeps the rest.
    assert!(!policy("phone").trim);
    assert_eq!(policy("phone").max_chars, 300);
    assert!(policy("email").trim, "email's group rule sets no value key");
}

#[test]
fn a_group_rule_hands_its_value_keys_to_its_fields() {
    let text = BASE.replace(
        "strategies = [\"valid_format\", \"most_recent\"]\n",
        "strategies = [\"valid_format\", \"most_recent\"]\ncollapse_spaces = true\n\n[rules.phone]\nmax_chars = 40\n",
    );
    let rules = Rules::parse(&text, "group.toml").unwrap();
    assert!(rules.policy("email").values.collapse_spaces);
    let phone = rules.policy("phone").values;
    assert!(phone.collapse_spaces, "inherited from rules.identity");
    assert_eq!(phone.max_chars, 40);
    assert_eq!(rules.policy("city").values.max_chars, 1000);
}

#[test]
fn the_base_file_is_valid() {
    let rules = Rules::parse(BASE, "base.toml").unwrap();
    assert_eq!(rules.policy("zip").owner.as_deref(), Some("erp"));
    assert_eq!(
        rules.policy("zip").strategies,
        [Strategy::MostRecent, Strategy::FromPrimary],
        "a rule without strategies uses the default list"
    );
}

#[test]
fn every_kind_of_mistake_is_refused_with_file_line_and_cause() {
    for case in cases() {
        let text = if case.edit.0.is_empty() {
            format!("{BASE}{}", case.edit.1)
        } else {
            assert!(BASE.contains(case.edit.0), "{}: edit not found", case.name);
            BASE.replacen(case.edit.0, case.edit.1, 1)
        };
        let err = match Rules::parse(&text, "rules/team.toml") {
            Ok(_) => panic!("{}: accepted", case.name),
            Err(e) => e,
        };
        let (line, column) = position_of(&text, case.at);
        let want_line = line;
        assert_eq!(err.kind, case.kind, "{}: {err}", case.name);
        assert_eq!(err.line, want_line, "{}: {err}", case.name);
        if case.kind != RulesErrorKind::Syntax {
            assert_eq!(err.column, column, "{}: {err}", case.name);
        }
        assert_eq!(err.origin, "rules/team.toml", "{}", case.name);
        assert!(err.message.contains(case.says), "{}: {err}", case.name);
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("rules/team.toml:{}:", err.line)),
            "{}: {shown}",
            case.name
        );
    }
}

#[test]
fn a_line_number_is_the_real_one() {
    let text = BASE.replace("owner = \"erp\"", "owner = \"sap\"");
    let err = Rules::parse(&text, "x.toml").unwrap_err();
    assert_eq!((err.line, err.column), (25, 9), "{err}");
    assert_eq!(
        err.to_string(),
        "x.toml:25:9: the owner of \"billing\" names unknown system \"sap\" (systems.ranking lists erp, crm, marketing)"
    );
}

#[test]
fn a_missing_section_is_named() {
    let text = BASE.replace(
        "[primary]\nsystem = \"crm\"\nrule = [\"system_of_record\", \"oldest\"]\n",
        "",
    );
    let err = Rules::parse(&text, "x.toml").unwrap_err();
    assert_eq!(err.kind, RulesErrorKind::Syntax);
    assert!(err.message.contains("primary"), "{err}");
}

#[test]
fn systems_the_sources_can_name_must_be_ranked() {
    let text = BASE
        .replace("[\"erp\", \"crm\", \"marketing\"]", "[\"erp\", \"crm\"]")
        .replace("marketing = [\"engagement\"]\n", "");
    let rules = Rules::parse(&text, "x.toml").unwrap();
    let sources = SourcesConfig {
        default_system: "crm".into(),
        rules: vec![SourceRule {
            source_type: "FORM".into(),
            source_id: None,
            system: "marketing".into(),
        }],
    };
    let err = rules.check_sources(&sources).unwrap_err();
    assert_eq!(err.kind, RulesErrorKind::UnknownSystem);
    assert_eq!(err.line, position_of(&text, "ranking").0);
    assert!(err.message.contains("\"marketing\""), "{err}");
}

#[test]
fn rules_load_from_a_file_and_name_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, BASE).unwrap();
    let rules = Rules::load(Some(&good)).unwrap();
    assert_eq!(rules.origin(), good.display().to_string());

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, BASE.replace("\"oldest\"]", "\"eldest\"]")).unwrap();
    let err = Rules::load(Some(&bad)).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:29:", bad.display())), "{err}");

    let missing = dir.path().join("missing.toml");
    let err = format!("{:#}", Rules::load(Some(&missing)).unwrap_err());
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn the_configuration_names_the_rules_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("team-rules.toml");
    std::fs::write(
        &rules_file,
        BASE.replace("owner = \"erp\"", "owner = \"crm\""),
    )
    .unwrap();
    let config_file = dir.path().join("dupdesk.toml");
    std::fs::write(
        &config_file,
        format!(
            "[precedence]\nrules = {:?}\n",
            rules_file.display().to_string()
        ),
    )
    .unwrap();
    let config = config::load(&config::Sources {
        file: Some(config_file),
        ..config::Sources::default()
    })
    .unwrap();
    let rules = Rules::for_config(&config).unwrap();
    assert_eq!(rules.policy("city").owner.as_deref(), Some("crm"));

    // No file named: the embedded default, checked against the default sources.
    let config = config::load(&config::Sources::default()).unwrap();
    let rules = Rules::for_config(&config).unwrap();
    assert_eq!(rules.policy("city").owner.as_deref(), Some("erp"));
    assert_eq!(rules.policy("email").owner.as_deref(), Some("crm"));
    assert_eq!(
        rules.policy("lifecyclestage").owner.as_deref(),
        Some("marketing")
    );
}
