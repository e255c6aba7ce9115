//! Syntax checks behind the `valid_format` strategy: is this a plausible email address, a phone
//! number that normalizes, a bare domain. They judge the shape of a value only; they must not
//! look anything up (no DNS, no carrier data).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Email,
    Phone,
    Domain,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Email, Format::Phone, Format::Domain];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Phone => "phone",
            Format::Domain => "domain",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    pub fn is_valid(self, value: &str) -> bool {
        match self {
            Format::Email => is_email(value),
            Format::Phone => normalize_phone(value).is_some(),
            Format::Domain => is_domain(value.trim()),
        }
    }
}

/// An address of the form local@domain with a dotted domain; the local part may use the
/// characters RFC 5322 allows unquoted. Quoted local parts are rare enough in a CRM that they
/// are read as invalid.
pub fn is_email(value: &str) -> bool {
    let value = value.trim();
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    local_ok && is_domain(domain)
}

/// A host name of at least two labels whose last label (the top-level domain) is letters.
pub fn is_domain(value: &str) -> bool {
    if value.is_empty() || value.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = value.split('.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    labels.len() >= 2
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic())
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The digits of a phone number, with a leading `+` for an international one, or `None` when
/// the value does not read as a phone number: spaces, dots, dashes, slashes and parentheses are
/// formatting, an extension ("x12", "ext. 12") is dropped, and 7 to 15 digits must remain
/// (E.164 allows at most 15).
pub fn normalize_phone(value: &str) -> Option<String> {
    let lower = value.trim().to_ascii_lowercase();
    let main = ["ext.", "ext", "x"]
        .iter()
        .find_map(|mark| {
            lower.rsplit_once(mark).filter(|(_, ext)| {
                let ext = ext.trim();
                !ext.is_empty() && ext.chars().all(|c| c.is_ascii_digit())
            })
        })
        .map_or(lower.as_str(), |(main, _)| main)
        .trim();
    let (international, rest) = match main.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => match main.strip_prefix("00") {
            Some(rest) => (true, rest),
            None => (false, main),
        },
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            _ => return None,
        }
    }
    if !(7..=15).contains(&digits.len()) {
        return None;
    }
    Some(if international {
        format!("+{digits}")
    } else {
        digits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "anna@example.com",
            "Anna.Berg+news@mail.example.co.uk",
            " a@b.de ",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "anna@",
            "@example.com",
            "anna example.com",
            "anna@example",
            "anna@@example.com",
            "anna..b@example.com",
            "anna@exa mple.com",
            "anna@example.c0m",
            "",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn phones() {
        let cases = [
            ("+49 (0)30 1234-567", Some("+490301234567")),
            ("0049 30 1234567", Some("+49301234567")),
            ("(555) 010-0199 x42", Some("5550100199")),
            ("555.010.0199 ext. 7", Some("5550100199")),
            ("12345", None),
            ("call me", None),
            ("555-CALL-NOW", None),
            ("+1 555 0100 0000 0000 00", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_phone(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn domains() {
        assert!(is_domain("example.com"));
        assert!(is_domain("shop.example-store.de"));
        assert!(!is_domain("https://example.com"));
        assert!(!is_domain("example"));
        assert!(!is_domain("-bad.com"));
        assert!(Format::Domain.is_valid(" example.com "));
    }
}
