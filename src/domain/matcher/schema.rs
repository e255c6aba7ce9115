//! The matcher's configuration checked: the `[matcher]` section of the configuration (plain
//! serde data, [`crate::config::matcher`]) turned once into a [`MatchConfig`] so that a bad
//! field kind or blocking rule is refused with its name before any work starts. It must not
//! hold weights: those are estimated from the data (see [`super::em`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::config::matcher::{
    EmailOptions, FieldKind, FieldSpec, MatcherSettings, ObjectSchemaConfig,
};
use crate::domain::model::ObjectType;

/// A transform applied to a field's normalized value to make a blocking key part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyTransform {
    /// The normalized value itself (nickname-resolved for given names).
    Exact,
    /// Its first character.
    Initial,
    /// Its first N characters.
    Prefix(u8),
    /// A phonetic code of each word (Soundex), so Meyer and Maier meet.
    Phonetic,
    /// The year of a date.
    Year,
}

/// One part of a blocking rule: a field (by its index in the schema) and a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyPart {
    pub field: usize,
    pub transform: KeyTransform,
}

/// A blocking rule: records whose parts all agree (and are present) become candidate pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingRule {
    pub text: String,
    pub parts: Vec<KeyPart>,
}

/// The checked configuration the matcher runs with, for one object type.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchConfig {
    pub object: ObjectType,
    pub fields: Vec<FieldSpec>,
    pub blocking: Vec<BlockingRule>,
    pub settings: MatcherSettings,
}

/// Why a matcher configuration was refused. Every variant names what is wrong.
#[derive(Debug, Error, PartialEq)]
pub enum SchemaError {
    #[error("[matcher.{object}] is not configured")]
    Missing { object: ObjectType },
    #[error("[matcher.{object}] has no fields")]
    NoFields { object: ObjectType },
    #[error("[matcher.{object}] has {count} fields; at most {max} can be compared")]
    TooManyFields {
        object: ObjectType,
        count: usize,
        max: usize,
    },
    #[error("[matcher.{object}] lists property {property:?} twice")]
    DuplicateField {
        object: ObjectType,
        property: String,
    },
    #[error(
        "[matcher.{object}] blocking rule {rule:?}: property {property:?} is not one of the fields"
    )]
    UnknownBlockingField {
        object: ObjectType,
        rule: String,
        property: String,
    },
    #[error(
        "[matcher.{object}] blocking rule {rule:?}: unknown transform {transform:?} (exact, initial, prefixN, phonetic, year)"
    )]
    UnknownTransform {
        object: ObjectType,
        rule: String,
        transform: String,
    },
    #[error(
        "[matcher.{object}] date field {property:?} names {parts} properties; a split date names its year, month and day properties as \"year/month/day\" (or \"year/month\")"
    )]
    SplitDate {
        object: ObjectType,
        property: String,
        parts: usize,
    },
    #[error("[matcher.{object}] has no blocking rule, so no pair would ever be compared")]
    NoBlocking { object: ObjectType },
    #[error("[matcher] {key} = {value} is out of range ({range})")]
    OutOfRange {
        key: &'static str,
        value: String,
        range: &'static str,
    },
}

/// Comparison levels are packed four bits per field into a `u64`.
pub const MAX_FIELDS: usize = 16;

impl MatchConfig {
    /// Check the settings of `object` and resolve its blocking rules.
    pub fn new(settings: &MatcherSettings, object: ObjectType) -> Result<MatchConfig, SchemaError> {
        check_ranges(settings)?;
        let schema = match object {
            ObjectType::Contacts => settings.contacts.as_ref(),
            ObjectType::Companies => settings.companies.as_ref(),
        }
        .ok_or(SchemaError::Missing { object })?;
        MatchConfig::from_schema(settings, object, schema)
    }

    /// Build from an explicit schema (tests, benches and other schemas than the configured).
    pub fn from_schema(
        settings: &MatcherSettings,
        object: ObjectType,
        schema: &ObjectSchemaConfig,
    ) -> Result<MatchConfig, SchemaError> {
        check_ranges(settings)?;
        let fields = schema.fields.clone();
        if fields.is_empty() {
            return Err(SchemaError::NoFields { object });
        }
        if fields.len() > MAX_FIELDS {
            return Err(SchemaError::TooManyFields {
                object,
                count: fields.len(),
                max: MAX_FIELDS,
            });
        }
        for (i, f) in fields.iter().enumerate() {
            let columns = f.columns();
            if columns.len() > 3 || columns.iter().any(|c| c.is_empty()) {
                return Err(SchemaError::SplitDate {
                    object,
                    property: f.property.clone(),
                    parts: columns.len(),
                });
            }
            if fields[..i].iter().any(|g| g.property == f.property) {
                return Err(SchemaError::DuplicateField {
                    object,
                    property: f.property.clone(),
                });
            }
        }
        let texts = if schema.blocking.is_empty() {
            default_blocking(&fields)
        } else {
            schema.blocking.clone()
        };
        let blocking = texts
            .iter()
            .map(|t| parse_rule(object, &fields, t))
            .collect::<Result<Vec<_>, _>>()?;
        if blocking.is_empty() {
            return Err(SchemaError::NoBlocking { object });
        }
        Ok(MatchConfig {
            object,
            fields,
            blocking,
            settings: settings.clone(),
        })
    }

    /// A short fingerprint of what the estimated model depends on, so a stored model is not
    /// reused after the schema changed, nor after a kind's comparison levels did (a model
    /// holds one `m` and `u` per level).
    pub fn schema_signature(&self) -> String {
        self.fields
            .iter()
            .map(|f| {
                format!(
                    "{}:{}:{}",
                    f.property,
                    f.kind,
                    super::compare::level_count(f.kind)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn check_ranges(s: &MatcherSettings) -> Result<(), SchemaError> {
    let prob = |key: &'static str, v: f64| {
        if v > 0.0 && v < 1.0 {
            Ok(())
        } else {
            Err(SchemaError::OutOfRange {
                key,
                value: v.to_string(),
                range: "strictly between 0 and 1",
            })
        }
    };
    prob("threshold", s.threshold)?;
    prob("conflict_probability", s.conflict_probability)?;
    prob("weak_link", s.weak_link)?;
    let at_least = |key: &'static str, v: usize, min: usize, range: &'static str| {
        if v >= min {
            Ok(())
        } else {
            Err(SchemaError::OutOfRange {
                key,
                value: v.to_string(),
                range,
            })
        }
    };
    at_least("max_cluster_size", s.max_cluster_size, 2, "at least 2")?;
    at_least("max_block_size", s.max_block_size, 2, "at least 2")?;
    at_least("window", s.window, 1, "at least 1")?;
    at_least("phone_digits", s.phone_digits, 4, "at least 4")?;
    at_least("u_sample_pairs", s.u_sample_pairs, 1000, "at least 1000")?;
    at_least("em_sample_pairs", s.em_sample_pairs, 1000, "at least 1000")?;
    at_least("em_max_iterations", s.em_max_iterations, 1, "at least 1")?;
    if s.label_weight.is_nan() || s.label_weight < 0.0 {
        return Err(SchemaError::OutOfRange {
            key: "label_weight",
            value: s.label_weight.to_string(),
            range: "0 or more",
        });
    }
    Ok(())
}

fn parse_rule(
    object: ObjectType,
    fields: &[FieldSpec],
    text: &str,
) -> Result<BlockingRule, SchemaError> {
    let mut parts = Vec::new();
    for raw in text.split('+') {
        let raw = raw.trim();
        let (property, transform) = match raw.split_once(':') {
            Some((p, t)) => (p.trim(), t.trim()),
            None => (raw, "exact"),
        };
        let field = fields
            .iter()
            .position(|f| f.property == property)
            .ok_or_else(|| SchemaError::UnknownBlockingField {
                object,
                rule: text.to_string(),
                property: property.to_string(),
            })?;
        let transform = match transform {
            "exact" => KeyTransform::Exact,
            "initial" => KeyTransform::Initial,
            "phonetic" => KeyTransform::Phonetic,
            "year" => KeyTransform::Year,
            other => match other.strip_prefix("prefix").map(str::parse::<u8>) {
                Some(Ok(n)) if n > 0 => KeyTransform::Prefix(n),
                _ => {
                    return Err(SchemaError::UnknownTransform {
                        object,
                        rule: text.to_string(),
                        transform: other.to_string(),
                    });
                }
            },
        };
        parts.push(KeyPart { field, transform });
    }
    Ok(BlockingRule {
        text: text.to_string(),
        parts,
    })
}

/// Blocking rules derived from the field kinds, so a user who only names the fields gets
/// candidate pairs that catch typos in any one field: every strong identifier alone, names by
/// spelling and by sound, names within a place or a birth date, and, for records whose names
/// are both damaged or swapped, the date within each place and the street within the postcode.
pub fn default_blocking(fields: &[FieldSpec]) -> Vec<String> {
    let of = |kind: FieldKind| -> Vec<&str> {
        fields
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.property.as_str())
            .collect()
    };
    let mut rules = Vec::new();
    for kind in [
        FieldKind::Email,
        FieldKind::Phone,
        FieldKind::Identifier,
        FieldKind::Domain,
    ] {
        rules.extend(of(kind).into_iter().map(str::to_string));
    }
    let given = of(FieldKind::GivenName).first().copied();
    let surname = of(FieldKind::Surname).first().copied();
    let full = of(FieldKind::PersonName).first().copied();
    let postcode = of(FieldKind::Postcode).first().copied();
    let date = of(FieldKind::Date).first().copied();
    let city = of(FieldKind::City).first().copied();
    let company = of(FieldKind::Company).first().copied();
    match (given, surname, full) {
        (Some(g), Some(s), _) => {
            rules.push(format!("{s}+{g}:initial"));
            rules.push(format!("{s}:phonetic+{g}:phonetic"));
            if let Some(d) = date {
                rules.push(format!("{d}+{g}:initial"));
                rules.push(format!("{d}+{s}:initial"));
            }
            if let Some(p) = postcode {
                rules.push(format!("{p}+{s}:prefix3"));
                rules.push(format!("{p}+{g}:prefix3"));
            } else if let Some(c) = city {
                rules.push(format!("{c}+{g}:prefix3"));
            }
        }
        (_, _, Some(n)) => {
            rules.push(format!("{n}:phonetic"));
            if let Some(d) = date {
                rules.push(format!("{d}+{n}:initial"));
            }
            if let Some(p) = postcode {
                rules.push(format!("{p}+{n}:prefix3"));
            }
        }
        (g, s, None) => {
            if let Some(name) = s.or(g) {
                rules.push(format!("{name}:phonetic"));
            }
        }
    }
    if given.is_none() && surname.is_none() && full.is_none() {
        // A company schema: the name is the identity.
        if let Some(c) = company {
            rules.push(c.to_string());
            rules.push(format!("{c}:phonetic"));
            if let Some(city) = city {
                rules.push(format!("{city}+{c}:prefix4"));
            }
        }
    }
    // Rules without a name, for records whose names are both damaged, swapped between the
    // given and the family field, or missing: a date (of birth) is close to unique within a
    // place, and so is a street address within a postcode. Every pair they find is still
    // scored on all fields, names included.
    let address = of(FieldKind::Address).first().copied();
    if let Some(d) = date {
        for p in [postcode, city].into_iter().flatten() {
            rules.push(format!("{d}+{p}"));
        }
        if let Some(a) = address {
            rules.push(format!("{d}+{a}:prefix3"));
        }
    }
    if let (Some(p), Some(a)) = (postcode, address) {
        rules.push(format!("{p}+{a}:prefix3"));
    }
    rules.dedup();
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(p: &str, kind: FieldKind) -> FieldSpec {
        FieldSpec {
            property: p.into(),
            kind,
        }
    }

    #[test]
    fn blocking_rules_parse_and_name_their_errors() {
        let fields = vec![
            field("firstname", FieldKind::GivenName),
            field("lastname", FieldKind::Surname),
            field("email", FieldKind::Email),
        ];
        let r = parse_rule(
            ObjectType::Contacts,
            &fields,
            "lastname + firstname:prefix2",
        )
        .unwrap();
        assert_eq!(
            r.parts,
            vec![
                KeyPart {
                    field: 1,
                    transform: KeyTransform::Exact
                },
                KeyPart {
                    field: 0,
                    transform: KeyTransform::Prefix(2)
                }
            ]
        );
        let e = parse_rule(ObjectType::Contacts, &fields, "phone").unwrap_err();
        assert!(e.to_string().contains("\"phone\""), "{e}");
        let e = parse_rule(ObjectType::Contacts, &fields, "email:soundy").unwrap_err();
        assert!(e.to_string().contains("soundy"), "{e}");
    }

    #[test]
    fn default_blocking_follows_the_kinds() {
        let fields = vec![
            field("given", FieldKind::GivenName),
            field("family", FieldKind::Surname),
            field("dob", FieldKind::Date),
            field("zip", FieldKind::Postcode),
            field("ssn", FieldKind::Identifier),
        ];
        let rules = default_blocking(&fields);
        assert!(rules.contains(&"ssn".to_string()));
        assert!(rules.contains(&"family:phonetic+given:phonetic".to_string()));
        assert!(rules.contains(&"dob+given:initial".to_string()));
        assert!(rules.contains(&"zip+family:prefix3".to_string()));
        assert!(rules.contains(&"dob+zip".to_string()));
        let schema = ObjectSchemaConfig {
            fields,
            blocking: vec![],
        };
        let cfg =
            MatchConfig::from_schema(&MatcherSettings::default(), ObjectType::Contacts, &schema)
                .unwrap();
        assert_eq!(cfg.blocking.len(), rules.len());
    }

    /// The rules without a name, by the place and date fields a schema has.
    #[test]
    fn name_free_rules_follow_the_place_and_date_fields() {
        use FieldKind::*;
        /// Fields besides the two names, and the name-free rules wanted.
        type Case = (
            &'static [(&'static str, FieldKind)],
            &'static [&'static str],
        );
        let cases: [Case; 5] = [
            (
                &[("dob", Date), ("zip", Postcode), ("street", Address)],
                &["dob+zip", "dob+street:prefix3", "zip+street:prefix3"],
            ),
            (&[("dob", Date), ("town", City)], &["dob+town"]),
            (
                &[("dob", Date), ("zip", Postcode), ("town", City)],
                &["dob+zip", "dob+town"],
            ),
            (
                &[("zip", Postcode), ("street", Address)],
                &["zip+street:prefix3"],
            ),
            // The demo's contacts: no date, postcode or address, so no such rule.
            (&[("email", Email), ("town", City)], &[]),
        ];
        for (extra, want) in cases {
            let mut fields = vec![field("given", GivenName), field("family", Surname)];
            fields.extend(extra.iter().map(|(p, k)| field(p, *k)));
            let rules = default_blocking(&fields);
            let name_free: Vec<&str> = rules
                .iter()
                .map(String::as_str)
                .filter(|r| !r.contains("given") && !r.contains("family") && r.contains('+'))
                .collect();
            assert_eq!(name_free, want, "{extra:?}");
        }
    }

    #[test]
    fn out_of_range_settings_are_refused_by_name() {
        let s = MatcherSettings {
            threshold: 1.5,
            ..MatcherSettings::default()
        };
        let schema = ObjectSchemaConfig {
            fields: vec![field("email", FieldKind::Email)],
            blocking: vec![],
        };
        let e = MatchConfig::from_schema(&s, ObjectType::Contacts, &schema).unwrap_err();
        assert!(e.to_string().contains("threshold"), "{e}");
    }
}
