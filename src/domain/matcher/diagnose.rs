//! What `match` tells the user about the configuration and the data before anyone trusts its
//! clusters: a schema property no record has (with the nearest property the records do have,
//! `first_name` for `firstname`), values of a kind that could not be read (how many, and one
//! for example), an object type with no records, and an estimation that stopped unconverged.
//! The checks are pure functions of what the matcher has already read (the table's per-field
//! [`FieldReads`], the property names of a sample of records, the stored model's JSON); they
//! must not read the workspace or change a result. Warnings name the field or rule they are
//! about; they carry record values, which are untrusted, so printing them is the caller's to
//! sanitize.

use serde::Serialize;

use super::features::Table;
use super::fitted::FittedModel;
use super::normalize::FieldValue;
use super::schema::MatchConfig;
use crate::domain::model::ObjectType;

/// How one field's values read over all records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldReads {
    /// Records with no value for the field's property (or any of a split date's properties).
    pub absent: u64,
    /// Values read as missing: a missing-value token ("NA"), or nothing usable once normalized.
    pub missing: u64,
    /// Values of a kind that parses which could not be read (a date that is no date).
    pub invalid: u64,
    /// The first value that could not be read, as the record holds it.
    pub invalid_example: Option<String>,
}

impl FieldReads {
    pub fn note(&mut self, value: &FieldValue) {
        match value {
            FieldValue::Absent => self.absent += 1,
            FieldValue::Missing => self.missing += 1,
            FieldValue::Invalid(raw) => {
                self.invalid += 1;
                if self.invalid_example.is_none() {
                    self.invalid_example = Some(raw.chars().take(60).collect());
                }
            }
            FieldValue::Value(_) => {}
        }
    }
}

/// Whether some field is absent from every record, so that the record's property names are
/// worth reading for a suggestion.
pub fn needs_property_names(table: &Table) -> bool {
    !table.is_empty() && table.reads.iter().any(|r| r.absent == table.len() as u64)
}

/// Warnings about the fields of a table built for `cfg`. `present` holds the property names
/// that a sample of the records has values for (needed only when [`needs_property_names`]).
pub fn field_warnings(cfg: &MatchConfig, table: &Table, present: &[String]) -> Vec<String> {
    let records = table.len() as u64;
    if records == 0 {
        return Vec::new();
    }
    let used: Vec<&str> = cfg.fields.iter().flat_map(|f| f.columns()).collect();
    let mut warnings = Vec::new();
    for (field, reads) in cfg.fields.iter().zip(&table.reads) {
        let name = format!("field {:?} ({})", field.property, field.kind);
        if reads.absent == records {
            let hints: Vec<String> = field
                .columns()
                .into_iter()
                .filter(|c| !present.iter().any(|p| p == c))
                .filter_map(|c| {
                    let free: Vec<&str> = present
                        .iter()
                        .map(String::as_str)
                        .filter(|p| !used.contains(p))
                        .collect();
                    nearest(c, &free).map(|n| format!("{n:?} for {c:?}"))
                })
                .collect();
            let hint = if hints.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", hints.join(" and "))
            };
            warnings.push(format!(
                "{name} is absent from every record, so it is never compared{hint}"
            ));
            continue;
        }
        if reads.invalid > 0 {
            warnings.push(format!(
                "{name}: {} of {records} values cannot be read as {}, for example {:?}; they count as missing",
                reads.invalid,
                kind_noun(field.kind),
                reads.invalid_example.as_deref().unwrap_or("")
            ));
        }
        let usable = records - reads.absent - reads.missing - reads.invalid;
        if usable == 0 && reads.invalid == 0 {
            warnings.push(format!(
                "{name}: no record has a usable value ({} read as missing), so it is never compared",
                reads.missing
            ));
        }
    }
    warnings
}

fn kind_noun(kind: super::FieldKind) -> &'static str {
    match kind {
        super::FieldKind::Date => "a date (full, year-month or year)",
        super::FieldKind::Phone => "a phone number (at least 6 digits)",
        _ => "a value of its kind",
    }
}

/// The warning for an object type without records to match.
pub fn no_records(object: ObjectType) -> String {
    format!(
        "no {object} to match: the workspace holds no live {object} record (pull or import them first); no model was fitted"
    )
}

/// Warnings about a fitted model (its JSON as stored): each blocking rule whose estimation
/// stopped at the iteration cap without converging.
pub fn fit_warnings(model_json: &str) -> Vec<String> {
    let Ok(model) = FittedModel::from_json(model_json) else {
        return Vec::new();
    };
    model
        .rules
        .iter()
        .filter(|r| r.converged == Some(false))
        .map(|r| {
            format!(
                "blocking rule {:?}: the estimation of its weights stopped after {} iterations without converging (matcher.em_max_iterations); its weights may be off",
                r.rule,
                r.iterations.map_or("?".to_string(), |i| i.to_string())
            )
        })
        .collect()
}

/// The candidate nearest to `name`, if one is near enough to be the one meant: the same name
/// but for case and separators (`first_name`, `FirstName`, `firstname`), or a small typo.
pub fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let key = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let want = key(name);
    candidates
        .iter()
        .map(|c| {
            let k = key(c);
            let score = if k == want {
                2.0
            } else {
                strsim::jaro_winkler(&want, &k)
                    .max(strsim::normalized_damerau_levenshtein(&want, &k))
            };
            (score, *c)
        })
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|x, y| x.0.total_cmp(&y.0).then_with(|| y.1.cmp(x.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_property_is_the_one_meant() {
        let present = ["email", "first_name", "last_name", "phone", "company"];
        assert_eq!(nearest("firstname", &present), Some("first_name"));
        assert_eq!(nearest("lastname", &present), Some("last_name"));
        assert_eq!(nearest("emial", &present), Some("email"));
        assert_eq!(nearest("FirstName", &["firstname"]), Some("firstname"));
        assert_eq!(nearest("city", &present), None);
        assert_eq!(nearest("zip", &[]), None);
    }
}
