//! The fitted model as the last `match` stored it, read for display (`dupdesk model`) and for
//! `match`'s warnings: per field and comparison level the `m`, `u` and weight, and per blocking
//! rule its iterations and whether the estimation converged. It reads the stored JSON by name
//! and tolerates keys it does not know or misses, so that it keeps working while the
//! estimation's own types ([`super::em::Model`]) change; it must not be used to score.

use serde::Serialize;
use serde_json::Value;

use super::compare;
use super::schema::FieldKind;

/// One comparison level of a field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedLevel {
    pub level: u8,
    /// The level's name ("exact", "nickname", ...); "level N" when the kind's levels changed
    /// since the model was fitted.
    pub name: String,
    pub m: f64,
    pub u: f64,
    /// Bits of evidence: log2(m / u).
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedField {
    pub property: String,
    pub kind: String,
    /// From "different" up to "exact" ("missing" weighs nothing and is not listed).
    pub levels: Vec<FittedLevel>,
}

/// How one blocking rule's estimation went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedRule {
    pub rule: String,
    pub iterations: Option<u64>,
    pub converged: Option<bool>,
    /// The share of the rule's candidate pairs estimated to be matches.
    pub lambda: Option<f64>,
    pub sampled_pairs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FittedModel {
    /// What the model was fitted for: "property:kind:levels", comma-separated.
    pub signature: String,
    /// The chance that two records drawn at random are the same entity.
    pub prior: Option<f64>,
    pub labelled_pairs: u64,
    pub fields: Vec<FittedField>,
    pub rules: Vec<FittedRule>,
}

impl FittedModel {
    /// Read a stored model's JSON.
    pub fn from_json(json: &str) -> Result<FittedModel, serde_json::Error> {
        let v: Value = serde_json::from_str(json)?;
        let text =
            |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let numbers = |v: &Value, key: &str| -> Vec<f64> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        let array = |key: &str| {
            v.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let fields = array("fields")
            .iter()
            .map(|f| {
                let kind = text(f, "kind");
                let (m, u) = (numbers(f, "m"), numbers(f, "u"));
                let names: Option<&[&str]> =
                    serde_json::from_value::<FieldKind>(Value::String(kind.clone()))
                        .ok()
                        .map(compare::level_names)
                        .filter(|n| n.len() == m.len());
                let levels = m
                    .iter()
                    .zip(&u)
                    .enumerate()
                    .map(|(i, (&m, &u))| FittedLevel {
                        level: i as u8 + 1,
                        name: names
                            .map_or_else(|| format!("level {}", i + 1), |n| n[i].to_string()),
                        m,
                        u,
                        weight: (m / u).log2(),
                    })
                    .collect();
                FittedField {
                    property: text(f, "property"),
                    kind,
                    levels,
                }
            })
            .collect();
        let rules = array("fits")
            .iter()
            .map(|r| FittedRule {
                rule: text(r, "rule"),
                iterations: r.get("iterations").and_then(Value::as_u64),
                converged: r.get("converged").and_then(Value::as_bool),
                lambda: r.get("lambda").and_then(Value::as_f64),
                sampled_pairs: r.get("sampled_pairs").and_then(Value::as_u64),
            })
            .collect();
        Ok(FittedModel {
            signature: text(&v, "signature"),
            prior: v.get("prior").and_then(Value::as_f64),
            labelled_pairs: v.get("labelled_pairs").and_then(Value::as_u64).unwrap_or(0),
            fields,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_model_reads_by_name_and_tolerates_other_shapes() {
        let json = r#"{"signature":"firstname:given_name:6","prior":0.001,
            "fields":[{"property":"email","kind":"email","m":[0.1,0.1,0.1,0.7],"u":[0.9,0.05,0.04,0.01],"extra":1},
                      {"property":"x","kind":"no_such_kind","m":[0.5,0.5],"u":[0.5,0.5]}],
            "fits":[{"rule":"email","iterations":12,"converged":true,"lambda":0.9},{"rule":"x"}],
            "something_new":[]}"#;
        let m = FittedModel::from_json(json).unwrap();
        assert_eq!(m.fields.len(), 2);
        assert_eq!(m.fields[0].levels[3].name, "exact");
        assert!((m.fields[0].levels[3].weight - 70f64.log2()).abs() < 1e-9);
        assert_eq!(m.fields[1].levels[1].name, "level 2");
        assert_eq!(m.rules[0].converged, Some(true));
        assert_eq!(m.rules[1].iterations, None);
        assert!(FittedModel::from_json("not json").is_err());
    }
}
