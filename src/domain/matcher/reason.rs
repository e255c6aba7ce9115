//! Why a cluster was proposed, in a steward's words ("same email", "similar name & company"),
//! read from the explanation the matcher stored with a pair (see [`super::PairExplanation`]).
//! It reads the stored JSON rather than the type, so explanations written by an older matcher
//! or another tool give what they can. It says nothing about which value survives.

use serde_json::Value;

/// The few words of a pair's explanation: the fields that agreed exactly, then those that
/// agreed closely, strongest evidence first; empty when the explanation names no such field.
pub fn match_reason(explanation: &Value) -> String {
    let Some(fields) = explanation.get("fields").and_then(Value::as_array) else {
        return String::new();
    };
    let mut scored: Vec<(f64, bool, String)> = Vec::new();
    for f in fields {
        let agreement = f.get("agreement").and_then(Value::as_str).unwrap_or("");
        let weight = f.get("weight").and_then(Value::as_f64).unwrap_or(0.0);
        let blocked = f.get("blocked").and_then(Value::as_bool) == Some(true);
        if matches!(agreement, "" | "different" | "missing") {
            continue;
        }
        // A blocking field weighs nothing of its own, yet its agreement is why the pair was
        // compared at all.
        if weight <= 0.0 && !blocked {
            continue;
        }
        let exact = agreement == "exact";
        let word = word_for(f);
        if let Some(seen) = scored.iter_mut().find(|(_, _, w)| *w == word) {
            seen.0 = seen.0.max(weight);
            seen.1 |= exact;
        } else {
            scored.push((if blocked { f64::MAX } else { weight }, exact, word));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let same: Vec<&str> = scored
        .iter()
        .filter(|s| s.1)
        .map(|s| s.2.as_str())
        .collect();
    let similar: Vec<&str> = scored
        .iter()
        .filter(|s| !s.1)
        .map(|s| s.2.as_str())
        .collect();
    let mut parts = Vec::new();
    if !same.is_empty() {
        parts.push(format!("same {}", same.join(" & ")));
    }
    if !similar.is_empty() {
        parts.push(format!("similar {}", similar.join(" & ")));
    }
    parts.join(", ")
}

/// A field as a steward names it: the kind of value for the common kinds (first and last
/// name are both "name"), else the property.
fn word_for(field: &Value) -> String {
    let kind = field.get("kind").and_then(Value::as_str).unwrap_or("");
    let word = match kind {
        "person_name" | "given_name" | "surname" | "name" => "name",
        "email" => "email",
        "phone" => "phone",
        "company" => "company",
        "domain" => "domain",
        "address" => "address",
        "postcode" => "postcode",
        "city" => "city",
        _ => "",
    };
    if word.is_empty() {
        field
            .get("property")
            .or_else(|| field.get("field"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::match_reason;
    use serde_json::json;

    #[test]
    fn exact_fields_are_same_close_ones_similar_names_merge() {
        let e = json!({"fields": [
            {"property": "email", "kind": "email", "agreement": "exact", "weight": 0.0, "blocked": true},
            {"property": "firstname", "kind": "given_name", "agreement": "nickname", "weight": 2.0},
            {"property": "lastname", "kind": "surname", "agreement": "exact", "weight": 3.0},
            {"property": "company", "kind": "company", "agreement": "jaro_winkler>=0.92", "weight": 1.0},
            {"property": "phone", "kind": "phone", "agreement": "missing", "weight": 0.0},
            {"property": "city", "kind": "city", "agreement": "different", "weight": -2.0},
        ]});
        assert_eq!(match_reason(&e), "same email & name, similar company");
        let e = json!({"fields": [
            {"property": "name", "kind": "company", "agreement": "jaro_winkler>=0.80", "weight": 1.5},
            {"property": "hs_tier", "kind": "text", "agreement": "exact", "weight": 0.5},
        ]});
        assert_eq!(match_reason(&e), "same hs_tier, similar company");
        assert_eq!(match_reason(&json!("plain text")), "");
        assert_eq!(match_reason(&json!({"fields": []})), "");
    }
}
