//! The ways one real-world value gets typed differently: case and whitespace, typos, nicknames,
//! Gmail dots and plus-tags, phone formats, company legal suffixes, web-address spellings.
//! Pure functions of their input and the caller's RNG; nothing here knows about records.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::names::NICKNAMES;

/// Lowercase ASCII for mailbox names and web domains: accents folded the way people type them
/// (`Müller` → `mueller`, `José` → `jose`), anything else that is not a letter or digit dropped.
pub fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let folded: &str = match c {
            'a'..='z' | '0'..='9' => {
                out.push(c);
                continue;
            }
            'á' | 'à' | 'â' | 'ã' | 'å' | 'ą' => "a",
            'ä' | 'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'é' | 'è' | 'ê' | 'ë' | 'ę' => "e",
            'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
            'ñ' | 'ń' => "n",
            'ó' | 'ò' | 'ô' | 'õ' | 'ø' => "o",
            'ö' | 'œ' => "oe",
            'ú' | 'ù' | 'û' => "u",
            'ü' => "ue",
            'ß' => "ss",
            'ł' => "l",
            'ś' | 'š' | 'ş' => "s",
            'ź' | 'ż' | 'ž' => "z",
            'ğ' => "g",
            'ř' => "r",
            'ý' => "y",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

/// One keyboard slip: insert, delete, substitute or transpose a character. The first
/// character is kept, as people rarely mistype it; too-short values come back unchanged.
pub fn typo(s: &str, rng: &mut impl Rng) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let at = rng.random_range(1..chars.len());
    let new_letter = char::from(b'a' + rng.random_range(0..26u8));
    match rng.random_range(0..4) {
        0 => chars.insert(at, new_letter),
        1 => {
            chars.remove(at);
        }
        2 => {
            let replacement = if chars[at] == new_letter {
                'x'
            } else {
                new_letter
            };
            chars[at] = replacement;
        }
        _ => {
            let j = if at + 1 < chars.len() { at + 1 } else { at - 1 };
            if chars[at] == chars[j] {
                chars.remove(at);
            } else {
                chars.swap(at, j);
            }
        }
    }
    chars.into_iter().collect()
}

/// The value in a different case: ALL CAPS or all lower.
pub fn recase(s: &str, rng: &mut impl Rng) -> String {
    let upper = s.to_uppercase();
    if upper != s && rng.random_bool(0.6) {
        upper
    } else {
        s.to_lowercase()
    }
}

/// The value with stray whitespace: a trailing or leading space, or a doubled inner one.
pub fn rewhitespace(s: &str, rng: &mut impl Rng) -> String {
    match rng.random_range(0..3) {
        0 => format!("{s} "),
        1 => format!("  {s}"),
        _ => match s.find(' ') {
            Some(i) => format!("{}  {}", &s[..i], &s[i + 1..]),
            None => format!(" {s}  "),
        },
    }
}

/// The other form of a first name: a nickname for a formal name, the formal name for a
/// nickname. `None` when the name has no known variant.
pub fn nickname_variant(first: &str, rng: &mut impl Rng) -> Option<&'static str> {
    for (formal, nicks) in NICKNAMES {
        if formal.eq_ignore_ascii_case(first) {
            return nicks.choose(rng).copied();
        }
        if nicks.iter().any(|n| n.eq_ignore_ascii_case(first)) {
            return Some(formal);
        }
    }
    None
}

/// A Gmail address with dots moved (Gmail ignores them): `josegarcia` ↔ `jose.garcia` ↔
/// `j.osegarcia`.
pub fn gmail_dots(email: &str, rng: &mut impl Rng) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return email.to_string();
    };
    let bare: String = local.chars().filter(|c| *c != '.').collect();
    if bare.len() < 2 {
        return email.to_string();
    }
    let mut out = String::with_capacity(email.len() + 2);
    if local.contains('.') {
        // Dropping every dot is what people most often do.
        out.push_str(&bare);
    } else {
        let at = rng.random_range(1..bare.len());
        out.push_str(&bare[..at]);
        out.push('.');
        out.push_str(&bare[at..]);
    }
    out.push('@');
    out.push_str(domain);
    out
}

/// A Gmail address with a plus-tag (`jose+newsletter@gmail.com`), sometimes on googlemail.com.
pub fn plus_tag(email: &str, rng: &mut impl Rng) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return email.to_string();
    };
    let tag = ["news", "crm", "webinar", "shop", "2025", "work"]
        .choose(rng)
        .copied()
        .unwrap_or("tag");
    let domain = if domain == "gmail.com" && rng.random_bool(0.2) {
        "googlemail.com"
    } else {
        domain
    };
    format!("{local}+{tag}@{domain}")
}

/// A phone number: calling code plus the national significant number, split into area code
/// and subscriber number so it can be written the ways people write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub calling_code: &'static str,
    pub trunk: &'static str,
    pub area: &'static str,
    pub subscriber: String,
}

/// The ways a phone number gets written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneFormat {
    /// `+1 555 010 0100`, `+49 30 1234567`
    International,
    /// `+15550100100`
    E164,
    /// `(555) 010-0100`, `030 1234567`
    National,
    /// `5550100100`, `0301234567`
    Digits,
    /// `555-010-0100`, `0049 30 1234567`
    Dashed,
}

impl PhoneFormat {
    pub const ALL: [PhoneFormat; 5] = [
        PhoneFormat::International,
        PhoneFormat::E164,
        PhoneFormat::National,
        PhoneFormat::Digits,
        PhoneFormat::Dashed,
    ];
}

impl Phone {
    /// NANP numbers (calling code 1) group as 3-3-4; others keep area and subscriber apart.
    pub fn format(&self, f: PhoneFormat) -> String {
        let nanp = self.calling_code == "1";
        let (cc, area, sub) = (self.calling_code, self.area, self.subscriber.as_str());
        match f {
            PhoneFormat::International if nanp => {
                format!("+1 {area} {} {}", &sub[..3], &sub[3..])
            }
            PhoneFormat::International => format!("+{cc} {area} {sub}"),
            PhoneFormat::E164 => format!("+{cc}{area}{sub}"),
            PhoneFormat::National if nanp => format!("({area}) {}-{}", &sub[..3], &sub[3..]),
            PhoneFormat::National => format!("{}{area} {sub}", self.trunk),
            PhoneFormat::Digits if nanp => format!("{area}{sub}"),
            PhoneFormat::Digits => format!("{}{area}{sub}", self.trunk),
            PhoneFormat::Dashed if nanp => format!("{area}-{}-{}", &sub[..3], &sub[3..]),
            PhoneFormat::Dashed => format!("00{cc} {area} {sub}"),
        }
    }
}

/// Another way to write a company's legal form: `Inc.` → `Inc`, `, Inc.`, `Incorporated`,
/// nothing, or another country's form (`Acme GmbH`).
pub fn legal_suffix_variant(suffix: &str, rng: &mut impl Rng) -> &'static str {
    let options: &[&'static str] = match suffix {
        "Inc." => &["Inc", ", Inc.", "Incorporated", "", "GmbH"],
        "Ltd." | "Ltd" => &["Limited", "Ltd", "Ltd.", ""],
        "GmbH" => &["G.m.b.H.", "", "Inc."],
        "LLC" => &["L.L.C.", ""],
        "AG" => &["", "GmbH"],
        "S.L." => &["SL", "S.L.U.", ""],
        "SAS" => &["S.A.S.", ""],
        "B.V." => &["BV", ""],
        "Pty Ltd" => &["Pty. Ltd.", "Proprietary Limited", ""],
        _ => &["", "Inc."],
    };
    options.choose(rng).copied().unwrap_or("")
}

/// Join a company's base name and legal form the way `, Inc.` wants it.
pub fn with_suffix(base: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        base.to_string()
    } else if suffix.starts_with(',') {
        format!("{base}{suffix}")
    } else {
        format!("{base} {suffix}")
    }
}

/// A web domain as people paste it: with `www.`, a scheme, a trailing slash, or in capitals.
pub fn domain_variant(domain: &str, rng: &mut impl Rng) -> String {
    match rng.random_range(0..5) {
        0 => format!("www.{domain}"),
        1 => format!("http://{domain}"),
        2 => format!("https://www.{domain}/"),
        3 => format!("http://www.{domain}"),
        _ => {
            let mut out = String::with_capacity(domain.len());
            let mut cap = true;
            for c in domain.chars() {
                out.push(if cap { c.to_ascii_uppercase() } else { c });
                cap = c == '.';
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn folding_types_accents_the_usual_way() {
        assert_eq!(ascii_fold("Müller"), "mueller");
        assert_eq!(ascii_fold("José"), "jose");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("Van den Berg"), "vandenberg");
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
    }

    #[test]
    fn a_typo_changes_the_value_by_one_edit() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for word in ["Robert", "Fernández", "Zoë", "smith"] {
            for _ in 0..50 {
                let t = typo(word, &mut rng);
                assert_ne!(t, word);
                let d = strsim::damerau_levenshtein(&t, word);
                assert!(d <= 2, "{word} -> {t}");
            }
        }
    }

    #[test]
    fn phone_formats_share_their_digits() {
        let p = Phone {
            calling_code: "1",
            trunk: "",
            area: "555",
            subscriber: "0100100".into(),
        };
        assert_eq!(p.format(PhoneFormat::International), "+1 555 010 0100");
        assert_eq!(p.format(PhoneFormat::National), "(555) 010-0100");
        assert_eq!(p.format(PhoneFormat::Digits), "5550100100");
        let de = Phone {
            calling_code: "49",
            trunk: "0",
            area: "30",
            subscriber: "1234567".into(),
        };
        assert_eq!(de.format(PhoneFormat::National), "030 1234567");
        assert_eq!(de.format(PhoneFormat::Dashed), "0049 30 1234567");
        assert_eq!(de.format(PhoneFormat::E164), "+49301234567");
    }

    #[test]
    fn gmail_dots_keep_the_mailbox() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let v = gmail_dots("josegarcia@gmail.com", &mut rng);
        assert_ne!(v, "josegarcia@gmail.com");
        assert_eq!(v.replace('.', ""), "josegarcia@gmailcom");
        assert_eq!(
            gmail_dots("jose.garcia@gmail.com", &mut rng),
            "josegarcia@gmail.com"
        );
    }

    #[test]
    fn nicknames_go_both_ways() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(nickname_variant("Bob", &mut rng), Some("Robert"));
        let n = nickname_variant("William", &mut rng).unwrap();
        assert!(["Bill", "Will", "Billy", "Liam"].contains(&n));
        assert_eq!(nickname_variant("Zainab", &mut rng), None);
    }
}
