//! How the sandbox reads `limit` and `after`, HubSpot's paging parameters, on the list and
//! search endpoints. Only the reading lives here; the handlers page.
//!
//! - A list `limit` above the page maximum is cut to it (HubSpot serves at most 100 records
//!   a page, 50 with property history, whatever is asked); one that is not a whole number of
//!   at least 1 is refused.
//! - A search `limit` is a JSON number or a numeric string (HubSpot's JSON reader takes both),
//!   from 0 to 200; `0` answers the `total` only. Anything else is refused.
//! - `after` is a cursor the sandbox handed out: a whole number, as a string (or, in a search
//!   body, a JSON number). Anything else is refused rather than read as the first page.
//!
//! Every refusal is a 400 VALIDATION_ERROR naming the parameter and the value.

use serde_json::Value;

use super::error::ApiError;

/// Largest search page.
pub const SEARCH_MAX: u32 = 200;

/// The page size of a list request: absent means HubSpot's default of 10.
pub fn list_limit(raw: Option<&str>, max: usize) -> Result<usize, ApiError> {
    let raw = match raw.map(str::trim) {
        None | Some("") => return Ok(10.min(max)),
        Some(r) => r,
    };
    match raw.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(max)),
        Ok(n) => Err(ApiError::validation(format!(
            "limit must be at least 1, not {n}"
        ))),
        Err(_) => Err(ApiError::validation(format!(
            "limit must be a whole number, not {:?}",
            shown(raw)
        ))),
    }
}

/// The page size of a search request: absent means HubSpot's default of 10.
pub fn search_limit(raw: Option<&Value>) -> Result<u32, ApiError> {
    let n = match raw {
        None | Some(Value::Null) => return Ok(10),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let Some(n) = n else {
        return Err(ApiError::validation(format!(
            "limit must be a whole number, not {}",
            shown(&raw.map(Value::to_string).unwrap_or_default())
        )));
    };
    if n < 0 {
        return Err(ApiError::validation(format!(
            "limit must be at least 0, not {n}"
        )));
    }
    if n > i64::from(SEARCH_MAX) {
        return Err(ApiError::validation(format!(
            "limit must be at most {SEARCH_MAX}, not {n}"
        )));
    }
    Ok(u32::try_from(n).unwrap_or(SEARCH_MAX))
}

/// A list cursor (`after=` in the query): the first page when absent.
pub fn list_after(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None | Some("") => Ok(0),
        Some(a) => a
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid_cursor(a)),
    }
}

/// A search cursor (`"after"` in the body): the first page when absent.
pub fn search_after(raw: Option<&Value>) -> Result<usize, ApiError> {
    match raw {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => s.parse::<usize>().map_err(|_| invalid_cursor(s)),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| invalid_cursor(&n.to_string())),
        Some(other) => Err(invalid_cursor(&other.to_string())),
    }
}

fn invalid_cursor(raw: &str) -> ApiError {
    ApiError::validation(format!(
        "Invalid paging cursor: after={} is not a cursor from a previous page",
        shown(raw)
    ))
}

/// A value as it goes into a message: at most 100 characters, control characters escaped.
fn shown(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .take(100)
        .flat_map(char::escape_default)
        .collect();
    if raw.chars().count() > 100 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_limits() {
        assert_eq!(list_limit(None, 100).unwrap(), 10);
        assert_eq!(list_limit(Some("100"), 100).unwrap(), 100);
        assert_eq!(list_limit(Some("1000"), 100).unwrap(), 100);
        assert_eq!(list_limit(Some("80"), 50).unwrap(), 50);
        for bad in ["0", "-1", "ten", "1.5", "99999999999999999999"] {
            assert!(list_limit(Some(bad), 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_limits() {
        assert_eq!(search_limit(None).unwrap(), 10);
        assert_eq!(search_limit(Some(&json!(0))).unwrap(), 0);
        assert_eq!(search_limit(Some(&json!(200))).unwrap(), 200);
        assert_eq!(search_limit(Some(&json!("50"))).unwrap(), 50);
        for bad in [json!(201), json!(-1), json!("x"), json!(1.5), json!([1])] {
            assert!(search_limit(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors() {
        assert_eq!(list_after(None).unwrap(), 0);
        assert_eq!(list_after(Some("42")).unwrap(), 42);
        assert_eq!(search_after(Some(&json!("200"))).unwrap(), 200);
        assert_eq!(search_after(Some(&json!(200))).unwrap(), 200);
        for bad in ["abc", "-5", "1e3"] {
            assert!(list_after(Some(bad)).is_err(), "{bad}");
            assert!(search_after(Some(&json!(bad))).is_err(), "{bad}");
        }
        let e = search_after(Some(&json!("a\u{1b}[31mb"))).unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }
}
