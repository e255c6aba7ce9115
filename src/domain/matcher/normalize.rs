//! Normalizers: turn a raw property value into the form the comparators and blocking keys work
//! on, by field kind. Each is a pure function of the value and the options, so a value is
//! normalized once per distinct string. They must not decide whether two values match; that is
//! [`super::compare`]'s job.

use chrono::{Datelike, NaiveDate};

use super::schema::{EmailOptions, FieldKind, FieldSpec, MatcherSettings};

/// Options that change how values are normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizeOptions {
    pub email: EmailOptions,
    pub phone_digits: usize,
    /// Values that stand for no value, upper case and trimmed ([`MatcherSettings::missing_values`]).
    pub missing: Vec<String>,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions::new(&MatcherSettings::default())
    }
}

impl NormalizeOptions {
    pub fn new(settings: &MatcherSettings) -> NormalizeOptions {
        NormalizeOptions {
            email: settings.email.clone(),
            phone_digits: settings.phone_digits,
            missing: settings
                .missing_values
                .iter()
                .map(|t| t.trim().to_uppercase())
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// `raw` is one of the tokens that stand for no value.
    pub fn is_missing_token(&self, raw: &str) -> bool {
        let t = raw.trim();
        // Tokens are short; skip the case folding for every longer value.
        t.len() <= 8 && self.missing.iter().any(|m| m.eq_ignore_ascii_case(t))
    }
}

/// What reading one field of one record gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// The record has no value for the field's property (or properties).
    Absent,
    /// A value that stands for none ("NA"), or nothing usable once normalized ("--", a role
    /// email address).
    Missing,
    /// A value of a kind that parses ([`FieldKind::parses`]) that could not be read; the raw
    /// value, for a diagnostic.
    Invalid(String),
    Value(String),
}

impl FieldValue {
    pub fn into_value(self) -> Option<String> {
        match self {
            FieldValue::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Read and normalize the field `spec` of a record whose properties `get` looks up: one
/// property, or the year, month and day properties of a split date.
pub fn read_field<'a>(
    spec: &FieldSpec,
    get: &dyn Fn(&str) -> Option<&'a str>,
    opts: &NormalizeOptions,
) -> FieldValue {
    let columns = spec.columns();
    if let [property] = columns.as_slice() {
        let Some(raw) = get(property).filter(|v| !v.is_empty()) else {
            return FieldValue::Absent;
        };
        if opts.is_missing_token(raw) {
            return FieldValue::Missing;
        }
        return match normalize(spec.kind, raw, opts) {
            Some(v) => FieldValue::Value(v),
            None if spec.kind.parses() && !raw.trim().is_empty() => {
                FieldValue::Invalid(raw.to_string())
            }
            None => FieldValue::Missing,
        };
    }
    let parts: Vec<Option<&str>> = columns
        .iter()
        .map(|c| {
            get(c)
                .map(str::trim)
                .filter(|v| !v.is_empty() && !opts.is_missing_token(v))
        })
        .collect();
    if parts.iter().all(Option::is_none) {
        let any = columns
            .iter()
            .any(|c| get(c).is_some_and(|v| !v.is_empty()));
        return if any {
            FieldValue::Missing
        } else {
            FieldValue::Absent
        };
    }
    match split_date(&parts) {
        Some(d) => FieldValue::Value(d.canonical()),
        None => FieldValue::Invalid(
            parts
                .iter()
                .map(|p| p.unwrap_or(""))
                .collect::<Vec<_>>()
                .join("/"),
        ),
    }
}

/// A date of a split field from its year, month and day parts (the month and day may be
/// missing; a month or day without a year is no date).
fn split_date(parts: &[Option<&str>]) -> Option<PartialDate> {
    let num = |p: Option<&str>| -> Option<Option<u32>> {
        match p {
            None => Some(None),
            Some(s) => s.parse::<u32>().ok().map(|n| (n != 0).then_some(n)),
        }
    };
    let year = parts.first().copied().flatten()?;
    if year.len() != 4 {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    let month = num(parts.get(1).copied().flatten())?;
    let day = num(parts.get(2).copied().flatten())?;
    PartialDate::new(year, month, month.and(day))
}

/// Normalize a raw value of `kind`. `None` when nothing usable is left (blank, punctuation
/// only, an unparseable date, too few phone digits).
pub fn normalize(kind: FieldKind, raw: &str, opts: &NormalizeOptions) -> Option<String> {
    let out = match kind {
        FieldKind::Email => email(raw, &opts.email),
        FieldKind::Phone => phone(raw, opts.phone_digits),
        FieldKind::PersonName => person_name(raw),
        FieldKind::GivenName | FieldKind::Surname | FieldKind::City | FieldKind::Text => words(raw),
        FieldKind::Company => company(raw),
        FieldKind::Domain => domain(raw),
        FieldKind::Address => address(raw),
        FieldKind::Postcode => postcode(raw),
        FieldKind::Date => partial_date(raw).map(|d| d.canonical()),
        FieldKind::Identifier => identifier(raw),
        FieldKind::List => list(raw),
    };
    out.filter(|s| !s.is_empty())
}

/// Lower case ASCII words: accents transliterated (Müller → muller, ß → ss), punctuation
/// dropped (O'Brien → obrien), hyphens and other separators become single spaces.
pub fn words(raw: &str) -> Option<String> {
    let ascii = deunicode::deunicode(raw);
    let mut out = String::with_capacity(ascii.len());
    let mut pending_space = false;
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c.to_ascii_lowercase());
        } else if c.is_whitespace() || matches!(c, '-' | '_' | '/' | ',' | ';' | '&' | '+') {
            pending_space = true;
        }
        // Apostrophes, dots and the like vanish: "O'Brien" and "OBrien", "J." and "J".
    }
    Some(out)
}

/// A whole person name: words, honorifics and generational suffixes dropped, the given-name
/// part nickname-resolved, and the words sorted so "Smith, Robert" and "Bob Smith" agree.
pub fn person_name(raw: &str) -> Option<String> {
    let w = words(raw)?;
    let mut tokens: Vec<&str> = w
        .split(' ')
        .filter(|t| !t.is_empty() && !is_name_affix(t))
        .map(given_canonical)
        .collect();
    tokens.sort_unstable();
    Some(tokens.join(" "))
}

fn is_name_affix(t: &str) -> bool {
    matches!(
        t,
        "mr" | "mrs" | "ms" | "miss" | "dr" | "prof" | "sir" | "jr" | "sr" | "ii" | "iii" | "iv"
    )
}

/// The canonical form of a given name: the full name a nickname stands for (Bob → robert,
/// Liz → elizabeth), the input otherwise. Expects the output of [`words`].
pub fn given_canonical(name: &str) -> &str {
    NICKNAMES
        .iter()
        .find(|(_, nicks)| nicks.split(' ').any(|n| n == name))
        .map(|(canon, _)| *canon)
        .unwrap_or(name)
}

/// Canonical given names and the names that stand for them. A name shared by two canonical
/// forms (Alex for Alexander and Alexandra) goes to the first; the comparator's nickname level
/// is estimated from the data like every other level, so such a collision costs little.
const NICKNAMES: &[(&str, &str)] = &[
    ("robert", "bob bobby rob robbie robby bert"),
    ("william", "bill billy will willy willie liam"),
    (
        "elizabeth",
        "liz lizzie lizzy beth betty betsy eliza elisabeth lisa libby",
    ),
    ("richard", "rick ricky dick rich richie"),
    ("james", "jim jimmy jamie"),
    ("john", "johnny jack jon"),
    ("jonathan", "jonny jonathon"),
    ("michael", "mike mikey mick mickey"),
    ("thomas", "tom tommy"),
    ("joseph", "joe joey jos"),
    ("charles", "charlie chuck chas"),
    ("christopher", "chris kit topher"),
    ("christine", "chrissy christina kristine tina"),
    ("daniel", "dan danny"),
    ("david", "dave davey"),
    ("edward", "ed eddie ted teddy ned"),
    ("anthony", "tony"),
    ("andrew", "andy drew"),
    ("alexander", "alex alec sasha alexandra alexa sandra sandy"),
    ("benjamin", "ben benny benji"),
    ("matthew", "matt matty"),
    ("nicholas", "nick nicky nico"),
    ("patrick", "pat paddy"),
    ("patricia", "patty patsy tricia trish"),
    ("peter", "pete"),
    ("samuel", "sam sammy"),
    ("samantha", "sammie"),
    ("steven", "steve stevie stephen"),
    ("timothy", "tim timmy"),
    ("gregory", "greg"),
    ("kenneth", "ken kenny"),
    ("ronald", "ron ronnie"),
    ("donald", "don donnie"),
    ("douglas", "doug"),
    ("frederick", "fred freddie freddy"),
    ("gerald", "gerry jerry"),
    ("henry", "hank harry"),
    ("lawrence", "larry laurence"),
    ("leonard", "leo len lenny"),
    ("raymond", "ray"),
    ("walter", "walt wally"),
    ("zachary", "zach zack"),
    ("jeffrey", "jeff geoffrey geoff"),
    ("joshua", "josh"),
    ("nathaniel", "nate nathan nat"),
    ("phillip", "phil philip"),
    ("vincent", "vince vinny"),
    ("victoria", "vicky vicki tori"),
    (
        "katherine",
        "kate katie kathy kath cathy catherine kathryn kat kitty",
    ),
    ("margaret", "maggie meg peggy marge margie greta"),
    ("jennifer", "jen jenny jenn"),
    ("jessica", "jess jessie"),
    ("rebecca", "becky becca"),
    ("susan", "sue susie suzy suzanne"),
    ("deborah", "deb debbie debra"),
    ("dorothy", "dot dottie dolly"),
    ("abigail", "abby abbie gail"),
    ("barbara", "barb barbie babs"),
    ("cynthia", "cindy"),
    ("jacqueline", "jackie jacqui"),
    ("judith", "judy"),
    ("kimberly", "kim kimmy"),
    ("pamela", "pam"),
    ("theresa", "terry teresa tess tessa"),
    ("virginia", "ginny ginger"),
    ("frances", "fran francis frankie"),
    ("francesco", "franco"),
    ("franklin", "frank"),
    ("amanda", "mandy manda"),
    ("melissa", "mel missy"),
    ("natalie", "nat nattie"),
    ("valerie", "val"),
    ("johann", "hans johannes"),
    ("wolfgang", "wolf"),
    ("friedrich", "fritz"),
    ("giuseppe", "beppe peppe"),
    ("jose", "pepe"),
    ("francisco", "paco pancho"),
];

/// Email: trimmed, lower case, `mailto:` and angle brackets dropped, and as configured the
/// plus-tag and Gmail's dots.
pub fn email(raw: &str, opts: &EmailOptions) -> Option<String> {
    let mut s = raw.trim().to_lowercase();
    if let Some(rest) = s.strip_prefix("mailto:") {
        s = rest.to_string();
    }
    let s = s.trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace());
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Some(s);
    };
    let mut local = local.to_string();
    let mut domain = domain.trim_end_matches('.').to_string();
    if opts.strip_plus_tags
        && let Some((base, _tag)) = local.split_once('+')
    {
        local = base.to_string();
    }
    if opts.gmail_dots && (domain == "gmail.com" || domain == "googlemail.com") {
        local.retain(|c| c != '.');
        domain = "gmail.com".to_string();
    }
    if local.is_empty() || opts.role_addresses.contains(&local) {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// Phone: its last `digits` digits, which drops the country code and trunk prefix in most
/// numbering plans (+1 415 555 0134, 415.555.0134 and 001-415-555-0134 agree). Fewer than six
/// digits is not a phone number. An extension (`x123`, `ext. 123`) is dropped.
pub fn phone(raw: &str, digits: usize) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let main = ["ext", "x", "#"]
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
        .map_or(lower.as_str(), |i| &lower[..i]);
    let all: String = main.chars().filter(char::is_ascii_digit).collect();
    if all.len() < 6 {
        return None;
    }
    let start = all.len().saturating_sub(digits);
    Some(all[start..].to_string())
}

/// Company: words without legal forms (Inc, GmbH, Ltd, S.A., ...) and a leading "the";
/// "&" reads as "and".
pub fn company(raw: &str) -> Option<String> {
    let spaced = raw.replace('&', " and ");
    let w = words(&spaced)?;
    // "s.a." became "sa" and "s a" depending on spacing; join single letters first.
    let mut tokens: Vec<String> = Vec::new();
    let mut letters = String::new();
    for t in w.split(' ') {
        if t.len() == 1 {
            letters.push_str(t);
        } else {
            if !letters.is_empty() {
                tokens.push(std::mem::take(&mut letters));
            }
            tokens.push(t.to_string());
        }
    }
    if !letters.is_empty() {
        tokens.push(letters);
    }
    while tokens.len() > 1
        && tokens
            .last()
            .is_some_and(|t| is_legal_form(t) || t == "and")
    {
        tokens.pop();
    }
    if tokens.len() > 1 && tokens[0] == "the" {
        tokens.remove(0);
    }
    Some(tokens.join(" "))
}

fn is_legal_form(t: &str) -> bool {
    matches!(
        t,
        "inc"
            | "incorporated"
            | "corp"
            | "corporation"
            | "co"
            | "company"
            | "llc"
            | "llp"
            | "lp"
            | "ltd"
            | "limited"
            | "plc"
            | "gmbh"
            | "mbh"
            | "ag"
            | "kg"
            | "ug"
            | "ohg"
            | "ev"
            | "se"
            | "sa"
            | "sas"
            | "sarl"
            | "srl"
            | "spa"
            | "bv"
            | "nv"
            | "oy"
            | "ab"
            | "as"
            | "aps"
            | "pty"
            | "pte"
            | "kk"
            | "sl"
            | "group"
            | "holding"
            | "holdings"
    )
}

/// Domain: lower case host without scheme, `www.`, port, path or trailing dot. An email
/// address gives its domain.
pub fn domain(raw: &str) -> Option<String> {
    let s = raw.trim().to_ascii_lowercase();
    let s = s.rsplit_once('@').map_or(s.as_str(), |(_, d)| d);
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split(['/', '?', '#']).next().unwrap_or("");
    let s = s.split(':').next().unwrap_or("");
    let s = s.trim_end_matches('.');
    let s = s.strip_prefix("www.").unwrap_or(s);
    Some(s.to_string())
}

/// Street address: words with the common street-type and direction words abbreviated the one
/// way (Street → st, Straße → str, North → n).
pub fn address(raw: &str) -> Option<String> {
    let w = words(raw)?;
    let tokens: Vec<&str> = w
        .split(' ')
        .map(|t| match t {
            "street" => "st",
            "avenue" | "av" => "ave",
            "road" => "rd",
            "boulevard" => "blvd",
            "drive" => "dr",
            "lane" => "ln",
            "court" => "ct",
            "place" => "pl",
            "square" => "sq",
            "terrace" => "ter",
            "highway" => "hwy",
            "parkway" => "pkwy",
            "north" => "n",
            "south" => "s",
            "east" => "e",
            "west" => "w",
            "apartment" | "apt" | "unit" | "flat" => "apt",
            "suite" => "ste",
            "strasse" => "str",
            other => other,
        })
        .collect();
    let mut out = tokens.join(" ");
    // German compounds: "Hauptstrasse" and "Hauptstr." agree.
    if let Some(stem) = out.strip_suffix("strasse") {
        out = format!("{stem}str");
    }
    Some(out.replace("strasse ", "str "))
}

/// Postcode: upper case letters and digits only ("sw1a 1aa" → "SW1A1AA"); a US ZIP+4 keeps
/// its five-digit part.
pub fn postcode(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = match t.split_once('-') {
        Some((zip, plus4))
            if zip.len() == 5
                && zip.bytes().all(|b| b.is_ascii_digit())
                && plus4.bytes().all(|b| b.is_ascii_digit()) =>
        {
            zip
        }
        _ => t,
    };
    Some(
        t.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

/// Identifier (SSN, customer number, VAT id): upper case letters and digits only.
pub fn identifier(raw: &str) -> Option<String> {
    postcode_like(raw)
}

fn postcode_like(raw: &str) -> Option<String> {
    Some(
        raw.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

/// A list: items split at commas, semicolons, bars and line breaks, each normalized as
/// [`words`], missing and repeated items dropped, sorted and joined by [`LIST_SEPARATOR`], so
/// the same items in any order and spelling of case are one value.
pub fn list(raw: &str) -> Option<String> {
    let mut items: Vec<String> = raw
        .split([',', ';', '|', '\n'])
        .filter_map(words)
        .filter(|w| !w.is_empty())
        .collect();
    items.sort_unstable();
    items.dedup();
    Some(items.join(LIST_SEPARATOR))
}

/// Joins a normalized list's items; [`words`] never leaves one in an item.
pub const LIST_SEPARATOR: &str = ";";

/// A date known to the year, the month or the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialDate {
    pub year: i32,
    pub month: Option<u32>,
    /// Only with a month.
    pub day: Option<u32>,
}

impl PartialDate {
    /// A valid date, or `None` (month 13, 31 February, a year before 1000).
    pub fn new(year: i32, month: Option<u32>, day: Option<u32>) -> Option<PartialDate> {
        if !(1000..=9999).contains(&year) {
            return None;
        }
        match (month, day) {
            (None, None) => {}
            (Some(m), None) if (1..=12).contains(&m) => {}
            (Some(m), Some(d)) => {
                NaiveDate::from_ymd_opt(year, m, d)?;
            }
            _ => return None,
        }
        Some(PartialDate { year, month, day })
    }

    /// `1980`, `1980-04` or `1980-04-12`.
    pub fn canonical(&self) -> String {
        match (self.month, self.day) {
            (Some(m), Some(d)) => format!("{:04}-{m:02}-{d:02}", self.year),
            (Some(m), None) => format!("{:04}-{m:02}", self.year),
            _ => format!("{:04}", self.year),
        }
    }

    /// The first day of the period it names.
    pub fn first_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month.unwrap_or(1), self.day.unwrap_or(1))
    }

    /// The full date, when it is one.
    pub fn full(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month?, self.day?)
    }
}

/// A full or partial date: what [`date`] reads, a year alone (`1980`), a year and month
/// (`1980-04`, `1980/04`, `04/1980`, `04.1980`), and zeros for an unknown month or day
/// (`1980-00-00`, `19800400`).
pub fn partial_date(raw: &str) -> Option<PartialDate> {
    let t = raw.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if t.len() == 4 && digits(t) {
        return PartialDate::new(t.parse().ok()?, None, None);
    }
    if let Some(d) = date(t) {
        return Some(PartialDate {
            year: d.year(),
            month: Some(d.month()),
            day: Some(d.day()),
        });
    }
    // Year first with zeros for what is not known: 1980-04-00, 1980-00-00, 19800400.
    let ymd: Option<(&str, &str, &str)> = if t.len() == 8 && digits(t) {
        Some((&t[..4], &t[4..6], &t[6..]))
    } else {
        let nums: Vec<&str> = t.split(['.', '/', '-']).collect();
        match nums.as_slice() {
            [y, m, d] if y.len() == 4 => Some((*y, *m, *d)),
            _ => None,
        }
    };
    if let Some((y, m, d)) = ymd {
        if !(digits(y) && digits(m) && digits(d)) {
            return None;
        }
        let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        return match (m, d) {
            (0, 0) => PartialDate::new(y, None, None),
            (m, 0) => PartialDate::new(y, Some(m), None),
            _ => None,
        };
    }
    let nums: Vec<&str> = t
        .split(['.', '/', '-', ' '])
        .filter(|s| !s.is_empty())
        .collect();
    let (y, m) = match nums.as_slice() {
        [a, b] if a.len() == 4 && b.len() <= 2 => (*a, *b),
        [a, b] if b.len() == 4 && a.len() <= 2 => (*b, *a),
        _ => return None,
    };
    if !(digits(y) && digits(m)) {
        return None;
    }
    PartialDate::new(y.parse().ok()?, Some(m.parse().ok()?), None)
}

/// Date: ISO (2024-03-01, or the date of an RFC 3339 timestamp), 20240301, 01.03.2024
/// (day first), and slashed dates, read month first unless the first number cannot be a month.
/// A millisecond epoch (HubSpot's date properties) is read too.
pub fn date(raw: &str) -> Option<NaiveDate> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(head) = t.get(..10)
        && let Ok(d) = NaiveDate::parse_from_str(head, "%Y-%m-%d")
    {
        return Some(d);
    }
    if t.len() == 8
        && t.bytes().all(|b| b.is_ascii_digit())
        && let Ok(d) = NaiveDate::parse_from_str(t, "%Y%m%d")
    {
        return Some(d);
    }
    if t.len() >= 11 && t.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = t.parse().ok()?;
        return chrono::DateTime::from_timestamp_millis(ms).map(|d| d.date_naive());
    }
    let nums: Vec<&str> = t
        .split(['.', '/', '-', ' '])
        .filter(|s| !s.is_empty())
        .collect();
    let [a, b, c] = nums.as_slice() else {
        return None;
    };
    let (a, b, c): (u32, u32, i32) = (a.parse().ok()?, b.parse().ok()?, c.parse().ok()?);
    if a > 31 {
        // year first with other separators: 2024/03/01
        return NaiveDate::from_ymd_opt(a as i32, b, c as u32);
    }
    let year = if c < 100 {
        // Two-digit years: the century that puts the date in the past.
        if c <= (chrono::Utc::now().year() % 100) {
            2000 + c
        } else {
            1900 + c
        }
    } else {
        c
    };
    let day_first = t.contains('.') || a > 12;
    if day_first {
        NaiveDate::from_ymd_opt(year, b, a)
    } else {
        NaiveDate::from_ymd_opt(year, a, b)
    }
}

/// American Soundex of each word, joined: Robert → R163, Rupert → R163, Meyer and Maier → M600.
/// Used for blocking, where a coarse code that survives spelling variants is what is wanted.
pub fn phonetic(s: &str) -> String {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(soundex)
        .collect::<Vec<_>>()
        .join(" ")
}

fn soundex(word: &str) -> String {
    fn code(c: u8) -> u8 {
        match c {
            b'b' | b'f' | b'p' | b'v' => b'1',
            b'c' | b'g' | b'j' | b'k' | b'q' | b's' | b'x' | b'z' => b'2',
            b'd' | b't' => b'3',
            b'l' => b'4',
            b'm' | b'n' => b'5',
            b'r' => b'6',
            b'h' | b'w' => b'h',
            _ => b'0', // vowels, y, digits
        }
    }
    let bytes: Vec<u8> = word
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let Some(&first) = bytes.first() else {
        return String::new();
    };
    let mut out = vec![first.to_ascii_uppercase()];
    let mut last = code(first);
    for &b in &bytes[1..] {
        let c = code(b);
        if c == b'h' {
            // h and w do not separate two equal codes
            continue;
        }
        if c != b'0' && c != last {
            out.push(c);
            if out.len() == 4 {
                break;
            }
        }
        last = c;
    }
    while out.len() < 4 {
        out.push(b'0');
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> NormalizeOptions {
        NormalizeOptions::default()
    }

    #[test]
    fn emails() {
        let on = EmailOptions::default();
        let off = EmailOptions {
            strip_plus_tags: false,
            gmail_dots: false,
            role_addresses: vec![],
        };
        let cases: &[(&str, &EmailOptions, Option<&str>)] = &[
            (
                "  Bob.Smith@Example.COM ",
                &on,
                Some("bob.smith@example.com"),
            ),
            ("bob+crm@example.com", &on, Some("bob@example.com")),
            ("bob+crm@example.com", &off, Some("bob+crm@example.com")),
            ("b.o.b@gmail.com", &on, Some("bob@gmail.com")),
            ("B.O.B+x@GoogleMail.com", &on, Some("bob@gmail.com")),
            ("b.o.b@gmail.com", &off, Some("b.o.b@gmail.com")),
            ("b.o.b@example.com", &on, Some("b.o.b@example.com")),
            ("mailto:<ann@x.org>", &on, Some("ann@x.org")),
            ("ann @ x.org", &on, Some("ann@x.org")),
            ("+tag@x.org", &on, None),
            ("Info@acme.com", &on, None),
            ("sales+eu@acme.com", &on, None),
            ("info@acme.com", &off, Some("info@acme.com")),
            ("   ", &on, None),
        ];
        for (raw, o, want) in cases {
            let n = NormalizeOptions {
                email: (*o).clone(),
                ..opts()
            };
            assert_eq!(
                normalize(FieldKind::Email, raw, &n).as_deref(),
                *want,
                "{raw}"
            );
        }
    }

    #[test]
    fn phones() {
        let cases = [
            ("+1 (415) 555-0134", Some("155550134")),
            ("415.555.0134", Some("155550134")),
            ("001 415 555 0134", Some("155550134")),
            ("+49 30 1234567", Some("301234567")),
            ("030 1234567", Some("301234567")),
            ("+1 415 555 0134 ext. 12", Some("155550134")),
            ("415-555-0134 x12", Some("155550134")),
            ("12-34", None),
            ("n/a", None),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize(FieldKind::Phone, raw, &opts()).as_deref(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn names() {
        let cases = [
            (FieldKind::GivenName, "  JOSÉ ", Some("jose")),
            (FieldKind::Surname, "O'Brien", Some("obrien")),
            (
                FieldKind::Surname,
                "Müller-Lüdenscheidt",
                Some("muller ludenscheidt"),
            ),
            (FieldKind::Surname, "Straße", Some("strasse")),
            (FieldKind::GivenName, "J.", Some("j")),
            (FieldKind::GivenName, "--", None),
            (FieldKind::PersonName, "Smith, Bob", Some("robert smith")),
            (
                FieldKind::PersonName,
                "Dr. Robert  Smith Jr.",
                Some("robert smith"),
            ),
            (FieldKind::City, "São Paulo", Some("sao paulo")),
        ];
        for (kind, raw, want) in cases {
            assert_eq!(normalize(kind, raw, &opts()).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn nicknames() {
        let cases = [
            ("bob", "robert"),
            ("robert", "robert"),
            ("bill", "william"),
            ("liz", "elizabeth"),
            ("beth", "elizabeth"),
            ("peggy", "margaret"),
            ("zoltan", "zoltan"),
        ];
        for (nick, canon) in cases {
            assert_eq!(given_canonical(nick), canon, "{nick}");
        }
    }

    #[test]
    fn companies_and_domains() {
        let cases = [
            (FieldKind::Company, "Acme, Inc.", Some("acme")),
            (FieldKind::Company, "ACME Corporation", Some("acme")),
            (FieldKind::Company, "Müller GmbH & Co. KG", Some("muller")),
            (FieldKind::Company, "The Widget Company Ltd", Some("widget")),
            (FieldKind::Company, "Dupont S.A.", Some("dupont")),
            (
                FieldKind::Company,
                "Johnson & Johnson",
                Some("johnson and johnson"),
            ),
            (FieldKind::Company, "Inc", Some("inc")),
            (
                FieldKind::Domain,
                "https://www.Acme.com/about",
                Some("acme.com"),
            ),
            (FieldKind::Domain, "acme.com.", Some("acme.com")),
            (FieldKind::Domain, "sales@acme.co.uk", Some("acme.co.uk")),
            (
                FieldKind::Domain,
                "http://acme.com:8080?x=1",
                Some("acme.com"),
            ),
        ];
        for (kind, raw, want) in cases {
            assert_eq!(normalize(kind, raw, &opts()).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn addresses_postcodes_identifiers() {
        let cases = [
            (
                FieldKind::Address,
                "12 North Main Street",
                Some("12 n main st"),
            ),
            (FieldKind::Address, "12 N. Main St.", Some("12 n main st")),
            (FieldKind::Address, "Hauptstraße 5", Some("hauptstr 5")),
            (FieldKind::Address, "Hauptstr. 5", Some("hauptstr 5")),
            (FieldKind::Postcode, "sw1a 1aa", Some("SW1A1AA")),
            (FieldKind::Postcode, "94107-1234", Some("94107")),
            (FieldKind::Identifier, "123-45-6789", Some("123456789")),
            (FieldKind::Identifier, " de 123 456 ", Some("DE123456")),
        ];
        for (kind, raw, want) in cases {
            assert_eq!(normalize(kind, raw, &opts()).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn dates() {
        let cases = [
            ("1980-03-07", Some("1980-03-07")),
            ("1980-03-07T10:00:00.000Z", Some("1980-03-07")),
            ("19800307", Some("1980-03-07")),
            ("07.03.1980", Some("1980-03-07")),
            ("03/07/1980", Some("1980-03-07")),
            ("25/12/1980", Some("1980-12-25")),
            ("1980/03/07", Some("1980-03-07")),
            ("321235200000", Some("1980-03-07")),
            ("31/02/1980", None),
            ("soon", None),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize(FieldKind::Date, raw, &opts()).as_deref(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn partial_dates_and_lists() {
        let cases = [
            ("1980", Some("1980")),
            (" 1980 ", Some("1980")),
            ("1980-04", Some("1980-04")),
            ("1980/4", Some("1980-04")),
            ("04/1980", Some("1980-04")),
            ("4.1980", Some("1980-04")),
            ("1980-00-00", Some("1980")),
            ("1980-04-00", Some("1980-04")),
            ("19800400", Some("1980-04")),
            ("19800412", Some("1980-04-12")),
            ("1980-13", None),
            ("0980", None),
            ("1980-00-12", None),
            ("80", None),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize(FieldKind::Date, raw, &opts()).as_deref(),
                want,
                "{raw}"
            );
        }
        assert_eq!(
            normalize(FieldKind::List, "Tag B; tag a,|tag b", &opts()).as_deref(),
            Some("tag a;tag b")
        );
        assert_eq!(normalize(FieldKind::List, " ;, ", &opts()), None);
    }

    #[test]
    fn missing_tokens_and_split_dates_read_as_fields() {
        let o = opts();
        let spec = |p: &str, kind| FieldSpec {
            property: p.into(),
            kind,
        };
        let props = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        };
        let get = props(&[
            ("a", "NA"),
            ("b", " n/a "),
            ("c", "soon"),
            ("y", "1980"),
            ("m", "4"),
            ("d", "31"),
        ]);
        let read = |p: &str, kind| read_field(&spec(p, kind), &get, &o);
        assert_eq!(read("a", FieldKind::Surname), FieldValue::Missing);
        assert_eq!(read("b", FieldKind::Phone), FieldValue::Missing);
        assert_eq!(
            read("c", FieldKind::Date),
            FieldValue::Invalid("soon".into())
        );
        assert_eq!(
            read("c", FieldKind::Surname),
            FieldValue::Value("soon".into())
        );
        assert_eq!(read("zz", FieldKind::Date), FieldValue::Absent);
        assert_eq!(
            read("y/m", FieldKind::Date),
            FieldValue::Value("1980-04".into())
        );
        // 31 April is no day.
        assert_eq!(
            read("y/m/d", FieldKind::Date),
            FieldValue::Invalid("1980/4/31".into())
        );
        assert_eq!(
            read("y/zz/zz", FieldKind::Date),
            FieldValue::Value("1980".into())
        );
        assert_eq!(read("a/zz", FieldKind::Date), FieldValue::Missing);
        assert_eq!(read("zz/zz", FieldKind::Date), FieldValue::Absent);
    }

    #[test]
    fn soundex_codes() {
        let cases = [
            ("robert", "R163"),
            ("rupert", "R163"),
            ("ashcraft", "A261"),
            ("tymczak", "T522"),
            ("pfister", "P236"),
            ("meyer", "M600"),
            ("maier", "M600"),
            ("van der berg", "V500 D600 B620"),
        ];
        for (w, want) in cases {
            assert_eq!(phonetic(w), want, "{w}");
        }
    }
}
