//! Comparators: for two normalized values of one field kind, the agreement level, from
//! "different" up to "exact", using `strsim`'s Jaro-Winkler, Levenshtein and Damerau (optimal
//! string alignment) and date closeness. Levels are small integers so a pair's comparison
//! vector packs into a `u64`; what each level is worth is estimated from the data elsewhere
//! ([`super::em`]), never here.

use chrono::{Datelike, NaiveDate};

use super::normalize;
use super::schema::FieldKind;

/// Level 0: one side or both have no value; it contributes nothing to a score.
pub const MISSING: u8 = 0;
/// Level 1: both present and different. Higher levels are closer agreement.
pub const DIFFERENT: u8 = 1;

/// The names of a kind's levels from [`DIFFERENT`] up; the last is exact agreement.
pub fn level_names(kind: FieldKind) -> &'static [&'static str] {
    match kind {
        FieldKind::Email => &["different", "same local part", "damerau<=2", "exact"],
        FieldKind::Phone => &["different", "damerau<=1", "exact"],
        FieldKind::GivenName => &[
            "different",
            "initial",
            "jaro_winkler>=0.80",
            "jaro_winkler>=0.92",
            "nickname",
            "exact",
        ],
        FieldKind::PersonName | FieldKind::Surname | FieldKind::Company | FieldKind::Text => &[
            "different",
            "jaro_winkler>=0.80",
            "jaro_winkler>=0.92",
            "exact",
        ],
        FieldKind::Domain => &["different", "exact"],
        FieldKind::Address => &[
            "different",
            "levenshtein>=0.70",
            "levenshtein>=0.90",
            "exact",
        ],
        FieldKind::Postcode => &["different", "same first 3", "exact"],
        FieldKind::City => &["different", "jaro_winkler>=0.88", "exact"],
        // A year alone, or a year and month, agrees with a fuller date as far as both go: a
        // level of its own, since a shared year is far weaker evidence than a shared day.
        FieldKind::Date => &[
            "different",
            "within 365 days",
            "same year",
            "same year and month",
            "damerau<=1 or day/month swapped",
            "exact",
        ],
        FieldKind::Identifier => &["different", "damerau<=2", "damerau<=1", "exact"],
        FieldKind::List => &["different", "one or more shared", "jaccard>=0.5", "exact"],
    }
}

/// The number of levels of a kind counting [`DIFFERENT`] and exact (not [`MISSING`]).
pub fn level_count(kind: FieldKind) -> usize {
    level_names(kind).len()
}

/// The exact-agreement level of a kind.
pub fn exact_level(kind: FieldKind) -> u8 {
    level_count(kind) as u8
}

/// A level's name; [`MISSING`] is "missing".
pub fn level_name(kind: FieldKind, level: u8) -> &'static str {
    if level == MISSING {
        return "missing";
    }
    level_names(kind)
        .get(usize::from(level) - 1)
        .copied()
        .unwrap_or("?")
}

/// The comparator that assigns a kind's levels, for the explanation.
pub fn comparator_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Email => "email (exact, local part, damerau)",
        FieldKind::Phone | FieldKind::Identifier => "damerau",
        FieldKind::GivenName => "jaro_winkler + nicknames",
        FieldKind::PersonName
        | FieldKind::Surname
        | FieldKind::Company
        | FieldKind::City
        | FieldKind::Text => "jaro_winkler",
        FieldKind::Domain => "exact",
        FieldKind::Address => "levenshtein",
        FieldKind::Postcode => "exact, prefix",
        FieldKind::Date => "date closeness, partial dates to their precision",
        FieldKind::List => "overlap (jaccard)",
    }
}

/// The level of two records holding the same normalized value: exact agreement, except for a
/// partial date, which agrees only as far as it goes (two records of "1980" are not the same
/// day). `aux` is the value's [`aux_of`].
#[inline]
pub fn equal_level(kind: FieldKind, aux: u64) -> u8 {
    if kind == FieldKind::Date {
        match aux >> DATE_PRECISION_SHIFT {
            PRECISION_YEAR => return DATE_SAME_YEAR,
            PRECISION_MONTH => return DATE_SAME_MONTH,
            _ => {}
        }
    }
    exact_level(kind)
}

/// A date's [`aux_of`]: the day number of the first day of its period, and above it how
/// precise it is.
const DATE_PRECISION_SHIFT: u32 = 40;
const PRECISION_DAY: u64 = 0;
const PRECISION_MONTH: u64 = 1;
const PRECISION_YEAR: u64 = 2;
const DATE_WITHIN_YEAR: u8 = 2;
const DATE_SAME_YEAR: u8 = 3;
const DATE_SAME_MONTH: u8 = 4;
const DATE_CLOSE: u8 = 5;

fn date_aux(normalized: &str) -> u64 {
    let Some(d) = normalize::partial_date(normalized) else {
        return 0;
    };
    let precision = match (d.month, d.day) {
        (Some(_), Some(_)) => PRECISION_DAY,
        (Some(_), None) => PRECISION_MONTH,
        _ => PRECISION_YEAR,
    };
    let days = d
        .first_day()
        .map_or(0, |f| f.num_days_from_ce().max(0) as u64);
    days | (precision << DATE_PRECISION_SHIFT)
}

/// A list's [`aux_of`]: one bit per item hash, so lists sharing no item mostly tell at once.
fn list_aux(normalized: &str) -> u64 {
    normalized
        .split(normalize::LIST_SEPARATOR)
        .fold(0, |bits, item| bits | 1 << (hash_str(item) % 64))
}

/// Per distinct value, what a comparator of its kind needs besides the text, computed once:
/// the nickname-resolved form of a given name, the day number of a date.
pub fn aux_of(kind: FieldKind, normalized: &str) -> u64 {
    match kind {
        FieldKind::GivenName => hash_str(normalize::given_canonical(normalized)),
        FieldKind::Date => date_aux(normalized),
        FieldKind::List => list_aux(normalized),
        FieldKind::Email => normalized.rfind('@').unwrap_or(normalized.len()) as u64,
        _ => 0,
    }
}

/// A stable 64-bit hash (FNV-1a), so keys are the same across runs and platforms.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Byte counts of a string in 64 buckets, for the cheap bounds below. Bytes that share a
/// bucket only loosen the bounds (a shared count can only grow, a difference only shrink), so
/// the bounds stay true for any text.
fn counts(s: &str) -> [u8; 64] {
    let mut c = [0u8; 64];
    for b in s.bytes() {
        let slot = &mut c[usize::from(b & 63)];
        *slot = slot.saturating_add(1);
    }
    c
}

/// A lower bound of the edit distance (in bytes) of two strings: a substitution changes two
/// byte counts by one, an insertion or deletion one, a transposition none.
fn edit_distance_at_least(a: &str, b: &str) -> usize {
    let (ca, cb) = (counts(a), counts(b));
    let l1: usize = ca
        .iter()
        .zip(&cb)
        .map(|(x, y)| usize::from(x.abs_diff(*y)))
        .sum();
    l1.div_ceil(2)
}

/// Damerau (optimal string alignment) distance at most `k`, with the length and byte-count
/// bounds tried first so unrelated values never reach the distance table.
fn osa_within(a: &str, b: &str, k: usize) -> bool {
    if a.len().abs_diff(b.len()) > k {
        return false;
    }
    if edit_distance_at_least(a, b) > k {
        return false;
    }
    strsim::osa_distance(a, b) <= k
}

/// Jaro-Winkler similarity when it can reach `floor`, else 0. Jaro is at most
/// (c/|a| + c/|b| + 1) / 3 with c the characters the strings share, and Winkler's prefix bonus
/// adds at most 0.4 of the rest, which rules out most unrelated values without the full
/// computation.
fn jaro_winkler_from(a: &str, b: &str, floor: f64) -> f64 {
    // Jaro counts characters; on ASCII they are the bytes counted here.
    if a.is_ascii() && b.is_ascii() && !a.is_empty() && !b.is_empty() {
        let (ca, cb) = (counts(a), counts(b));
        let common: usize = ca
            .iter()
            .zip(&cb)
            .map(|(x, y)| usize::from(*x.min(y)))
            .sum();
        let c = common as f64;
        let jaro_max = (c / a.len() as f64 + c / b.len() as f64 + 1.0) / 3.0;
        if 0.6 * jaro_max + 0.4 < floor {
            return 0.0;
        }
    }
    strsim::jaro_winkler(a, b)
}

/// The level of two present values `a` and `b` (normalized, with their [`aux_of`]).
pub fn compare(kind: FieldKind, a: &str, a_aux: u64, b: &str, b_aux: u64) -> u8 {
    if a == b {
        return equal_level(kind, a_aux);
    }
    let jw = || jaro_winkler_from(a, b, 0.80);
    match kind {
        FieldKind::Email => {
            let (la, da) = a.split_at_checked(a_aux as usize).unwrap_or((a, ""));
            let (lb, db) = b.split_at_checked(b_aux as usize).unwrap_or((b, ""));
            if osa_within(a, b, 2) {
                3
            } else if la == lb && da != db {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::Phone => {
            if osa_within(a, b, 1) {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::GivenName => {
            if a_aux == b_aux {
                5
            } else {
                let j = jw();
                if j >= 0.92 {
                    4
                } else if j >= 0.80 {
                    3
                } else if is_initial_of(a, b) || is_initial_of(b, a) {
                    2
                } else {
                    DIFFERENT
                }
            }
        }
        FieldKind::Surname => {
            let j = jw();
            if j >= 0.92 || shares_all_words(a, b) {
                3
            } else if j >= 0.80 {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::PersonName | FieldKind::Company | FieldKind::Text => {
            let j = jw();
            if j >= 0.92 {
                3
            } else if j >= 0.80 {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::Domain => DIFFERENT,
        FieldKind::Address => {
            let l = strsim::normalized_levenshtein(a, b);
            if l >= 0.90 {
                3
            } else if l >= 0.70 {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::Postcode => {
            if a.len() >= 3 && b.len() >= 3 && a.get(..3) == b.get(..3) {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::City => {
            if jaro_winkler_from(a, b, 0.88) >= 0.88 {
                2
            } else {
                DIFFERENT
            }
        }
        FieldKind::Date => compare_dates(a, a_aux, b, b_aux),
        FieldKind::List => compare_lists(a, a_aux, b, b_aux),
        FieldKind::Identifier if !osa_within(a, b, 2) => DIFFERENT,
        FieldKind::Identifier => match strsim::osa_distance(a, b) {
            0 | 1 => 3,
            _ => 2,
        },
    }
}

fn compare_dates(a: &str, a_aux: u64, b: &str, b_aux: u64) -> u8 {
    let precision = (a_aux >> DATE_PRECISION_SHIFT).max(b_aux >> DATE_PRECISION_SHIFT);
    if precision != PRECISION_DAY {
        // Compared as far as the less precise one goes: "1980" and "1980-04-12" share the
        // year, "1980-04" and "1980-04-12" the month.
        let (Some(x), Some(y)) = (normalize::partial_date(a), normalize::partial_date(b)) else {
            return DIFFERENT;
        };
        return if x.year != y.year {
            DIFFERENT
        } else if precision == PRECISION_MONTH && x.month == y.month {
            DATE_SAME_MONTH
        } else if precision == PRECISION_YEAR {
            DATE_SAME_YEAR
        } else {
            DIFFERENT
        };
    }
    let mask = (1u64 << DATE_PRECISION_SHIFT) - 1;
    let (a_days, b_days) = (a_aux & mask, b_aux & mask);
    let swapped = match (normalize::date(a), normalize::date(b)) {
        (Some(x), Some(y)) => is_swap(x, y),
        _ => false,
    };
    if swapped || osa_within(a, b, 1) {
        DATE_CLOSE
    } else if a_days != 0 && b_days != 0 && a_days.abs_diff(b_days) <= 365 {
        DATE_WITHIN_YEAR
    } else {
        DIFFERENT
    }
}

/// Lists by their items in common: none, some, or at least half of all their items.
fn compare_lists(a: &str, a_bits: u64, b: &str, b_bits: u64) -> u8 {
    if a_bits & b_bits == 0 {
        return DIFFERENT;
    }
    // Both are sorted: count the shared items in one merge.
    let mut x = a.split(normalize::LIST_SEPARATOR).peekable();
    let mut y = b.split(normalize::LIST_SEPARATOR).peekable();
    let (mut shared, mut union) = (0usize, 0usize);
    loop {
        match (x.peek(), y.peek()) {
            (Some(p), Some(q)) => {
                union += 1;
                match p.cmp(q) {
                    std::cmp::Ordering::Less => {
                        x.next();
                    }
                    std::cmp::Ordering::Greater => {
                        y.next();
                    }
                    std::cmp::Ordering::Equal => {
                        shared += 1;
                        x.next();
                        y.next();
                    }
                }
            }
            (Some(_), None) => {
                union += x.by_ref().count();
            }
            (None, Some(_)) => {
                union += y.by_ref().count();
            }
            (None, None) => break,
        }
    }
    if shared == 0 {
        DIFFERENT
    } else if 2 * shared >= union {
        3
    } else {
        2
    }
}

fn is_swap(x: NaiveDate, y: NaiveDate) -> bool {
    x.year() == y.year() && x.month() == y.day() && x.day() == y.month()
}

/// `short` is a single letter (or a letter and nothing else) that starts `long`.
fn is_initial_of(short: &str, long: &str) -> bool {
    short.len() == 1 && long.starts_with(short)
}

/// Every word of the shorter value is a word of the longer one: "garcia" and "garcia lopez".
fn shares_all_words(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short
        .split(' ')
        .all(|w| !w.is_empty() && long.split(' ').any(|l| l == w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matcher::normalize::{NormalizeOptions, normalize};

    fn level(kind: FieldKind, a: &str, b: &str) -> &'static str {
        let opts = NormalizeOptions::default();
        let na = normalize(kind, a, &opts).unwrap();
        let nb = normalize(kind, b, &opts).unwrap();
        let l = compare(kind, &na, aux_of(kind, &na), &nb, aux_of(kind, &nb));
        level_name(kind, l)
    }

    #[test]
    fn comparator_table() {
        use FieldKind::*;
        let cases = [
            (Email, "Bob@x.com", "bob@X.com", "exact"),
            (Email, "bob.smith@x.com", "bob.smiht@x.com", "damerau<=2"),
            (
                Email,
                "bob.smith@acme.com",
                "bob.smith@web.de",
                "same local part",
            ),
            (Email, "bob@acme.com", "ann@acme.com", "different"),
            (Phone, "+1 415 555 0134", "(415) 555-0134", "exact"),
            (Phone, "415 555 0134", "415 555 0143", "damerau<=1"),
            (Phone, "415 555 0134", "415 999 0134", "different"),
            (GivenName, "Bob", "Robert", "nickname"),
            (GivenName, "Bill", "William", "nickname"),
            (GivenName, "Jon", "John", "nickname"),
            (GivenName, "Jonathan", "Jonathon", "nickname"),
            (GivenName, "Katherine", "Katharine", "jaro_winkler>=0.92"),
            (GivenName, "Carl", "Karl", "jaro_winkler>=0.80"),
            (GivenName, "R.", "Robert", "initial"),
            (GivenName, "Anna", "Zoe", "different"),
            (Surname, "Smith", "SMITH", "exact"),
            (Surname, "Smith", "Smiht", "jaro_winkler>=0.92"),
            (Surname, "García", "Garcia López", "jaro_winkler>=0.92"),
            (Surname, "Peterson", "Pedersen", "jaro_winkler>=0.80"),
            (Surname, "Smith", "Jones", "different"),
            (PersonName, "Bob Smith", "Smith, Robert", "exact"),
            (Company, "Acme Inc.", "ACME Corporation", "exact"),
            (Company, "Acme Widgets", "Acme Widget", "jaro_winkler>=0.92"),
            (Company, "Initech", "Globex", "different"),
            (Domain, "www.acme.com", "https://acme.com/", "exact"),
            (Domain, "acme.com", "acme.de", "different"),
            (Address, "12 Main Street", "12 Main St.", "exact"),
            (Address, "12 Main St", "21 Main St", "levenshtein>=0.70"),
            (
                Address,
                "1234 Main St Apt 5",
                "1234 Main St Apt 6",
                "levenshtein>=0.90",
            ),
            (Address, "12 Main St", "7 Elm Road", "different"),
            (Postcode, "94107", "94107-1234", "exact"),
            (Postcode, "94107", "94110", "same first 3"),
            (Postcode, "94107", "10001", "different"),
            (City, "Köln", "Koln", "exact"),
            (City, "Muenchen", "Munchen", "jaro_winkler>=0.88"),
            (City, "Berlin", "Hamburg", "different"),
            (Date, "1980-03-07", "07.03.1980", "exact"),
            (
                Date,
                "1980-03-07",
                "1980-07-03",
                "damerau<=1 or day/month swapped",
            ),
            (
                Date,
                "1980-03-07",
                "1981-03-07",
                "damerau<=1 or day/month swapped",
            ),
            (Date, "1980-03-07", "1980-09-27", "within 365 days"),
            (Date, "1980-03-07", "1975-01-01", "different"),
            (Date, "1980", "1980-04-12", "same year"),
            (Date, "1980-04-12", "1980", "same year"),
            (Date, "1980", "1981-04-12", "different"),
            (Date, "1980", "1981", "different"),
            (Date, "1980-04", "1980-04-12", "same year and month"),
            (Date, "04/1980", "1980-04-30", "same year and month"),
            (Date, "1980-04", "1980-05-12", "different"),
            (Date, "1980-04", "1980", "same year"),
            (Date, "1980-00-00", "12.04.1980", "same year"),
            (Date, "1980", "1980", "same year"),
            (Date, "1980-04", "04/1980", "same year and month"),
            (List, "ann, bob", "Bob; Ann", "exact"),
            (List, "ann, bob, cy", "bob, ann, dee", "jaccard>=0.5"),
            (
                List,
                "ann, bob, cy, dee",
                "dee, eve, fay",
                "one or more shared",
            ),
            (List, "ann, bob", "cy, dee", "different"),
            (Identifier, "123-45-6789", "123456789", "exact"),
            (Identifier, "123456789", "123456798", "damerau<=1"),
            (Identifier, "123456789", "123457798", "damerau<=2"),
            (Identifier, "123456789", "987654321", "different"),
            (Text, "sales manager", "sales managr", "jaro_winkler>=0.92"),
        ];
        for (kind, a, b, want) in cases {
            assert_eq!(level(kind, a, b), want, "{kind}: {a} vs {b}");
        }
    }

    #[test]
    fn the_cheap_bounds_never_contradict_strsim() {
        let words = [
            "robert",
            "rupert",
            "bob",
            "smith",
            "smiht",
            "schmidt",
            "anna",
            "hanna",
            "jo",
            "johnathan",
            "jonathan",
            "x",
            "mary ann",
            "maryann",
            "155550134",
            "155550143",
            "bob.smith@x.com",
            "bob.smiht@x.com",
            "b.smith@x.com",
        ];
        for a in words {
            for b in words {
                let d = strsim::osa_distance(a, b);
                assert!(edit_distance_at_least(a, b) <= d, "{a} {b}");
                for k in 0..3 {
                    assert_eq!(osa_within(a, b, k), d <= k, "{a} {b} {k}");
                }
                let jw = strsim::jaro_winkler(a, b);
                for floor in [0.8, 0.88, 0.92] {
                    assert_eq!(
                        jaro_winkler_from(a, b, floor) >= floor,
                        jw >= floor,
                        "{a} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn levels_are_named_and_ordered() {
        use FieldKind::*;
        for kind in [
            PersonName, GivenName, Surname, Email, Phone, Company, Domain, Address, Postcode, City,
            Date, Identifier, Text, List,
        ] {
            assert_eq!(level_name(kind, MISSING), "missing");
            assert_eq!(level_name(kind, DIFFERENT), "different");
            assert_eq!(level_name(kind, exact_level(kind)), "exact");
            assert!(level_count(kind) <= 15, "levels pack into four bits");
        }
    }
}
