//! Files a user hands dupdesk: CRM exports (`import`), an external matcher's clusters (`match
//! --clusters`), mapping files (`mapping import`), the configuration and the precedence rules.
//! Such a file can hold anything (a 1 GiB line without a newline, a binary, an id with a NUL in
//! it), so this module reads them within fixed bounds and says how much of a bad value an error
//! may show: memory stays at a few MiB whatever the file holds, an error quotes at most a short
//! sanitized prefix, and an id is checked before it can become a key in the workspace.
//!
//! The CSV reader is the `csv` crate's, over a [`Read`] that refuses to run more than
//! [`MAX_RECORD_BYTES`] past the start of the record being parsed: the crate itself grows its
//! record buffer (doubling) for as long as a record lasts, which is what held a whole 1 GiB line
//! in memory (3.7–5.3 GB peak as issue #13 reports; 3.1 GB for a 256 MiB line on a debug build,
//! 50–58 MiB now for either). This module reads and checks; it never writes and knows nothing of
//! the workspace.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use crate::domain::sanitize::for_terminal;

/// The most one CSV record (a row, with every line of its quoted values) may take, in bytes.
/// HubSpot caps a text property at 65,536 characters (`plan::MAX_VALUE_CHARS`): 4 MiB holds 64
/// values at that cap, or 16 of them written entirely in 4-byte characters, where a real export
/// row is a few KiB. A cluster or mapping row is a few ids. Anything longer is a quote that never
/// closes or a file that is not CSV, and reading it whole is what must not happen.
pub const MAX_RECORD_BYTES: u64 = 4 << 20;

/// The CSV reader's own buffer. It reads ahead of the parser by at most this much, so a record is
/// refused at the latest this far past [`MAX_RECORD_BYTES`]. 64 KiB: the buffer the import read
/// its file through before (a `BufReader` of that size under the crate's 8 KiB one).
pub const CSV_BUFFER_BYTES: usize = 64 << 10;

/// The most a TOML file (the configuration, the precedence rules) may hold. Both are read whole to
/// be parsed and point at line and column in errors; the embedded defaults are 7 KiB and 4 KiB,
/// and a hand-written file a hundred and forty times the larger is not one.
pub const MAX_TOML_BYTES: u64 = 1 << 20;

/// The longest id accepted from a file, in characters. HubSpot's ids are up to 19 digits;
/// Salesforce's 18 characters, a GUID 36, SAP and NetSuite numbers about 10, composite keys such
/// as `SAP/1000/DE01/0000123456` a few dozen. 256 leaves room for any of them and refuses a
/// swallowed line or a pasted blob before it becomes a key.
pub const MAX_ID_CHARS: usize = 256;

/// How many characters of a bad value an error quotes.
pub const QUOTE_CHARS: usize = 80;

/// A value as an error shows it: in double quotes, made safe for a terminal
/// ([`for_terminal`]), the characters [`check_id`] refuses shown as escapes too (an id that looks
/// like a good one should not read as one), and cut to [`QUOTE_CHARS`] characters with its full
/// length in bytes when longer. Only the kept prefix is looked at, so quoting a huge value costs
/// no more than quoting a short one.
pub fn quote(value: &str) -> String {
    let cut = value.char_indices().nth(QUOTE_CHARS).map(|(i, _)| i);
    let mut out = String::from("\"");
    for c in value[..cut.unwrap_or(value.len())].chars() {
        push_shown(&mut out, c);
    }
    match cut {
        Some(_) => out.push_str(&format!("…\" ({} bytes)", value.len())),
        None => out.push('"'),
    }
    out
}

/// Append one character as [`quote`] and [`BadId`] show it: the escapes the rest of dupdesk shows
/// (`\0`, `\t`, `\u{202E}`), characters a terminal would show as nothing or as a plain space by
/// their code point, the rest as themselves.
fn push_shown(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    let alone = c.encode_utf8(&mut buf);
    let shown = for_terminal(alone);
    if shown != *alone {
        out.push_str(&shown);
    } else if CharKind::of(c).is_some() {
        out.push_str(&format!("\\u{{{:04X}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// How many characters of a parser's message about a file an error keeps: such messages quote
/// the names they complain about, and a name can be as long as the file.
pub const MESSAGE_CHARS: usize = 400;

/// A message built from a file's content, as an error shows it: its lines joined into one
/// (errors are one line), made safe for a terminal and cut to `max_chars` characters, with `…`
/// where it was cut.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let cut = text.char_indices().nth(max_chars).map(|(i, _)| i);
    let kept = &text[..cut.unwrap_or(text.len())];
    let joined = kept
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = for_terminal(&joined).into_owned();
    if cut.is_some() {
        out.push('…');
    }
    out
}

/// What is wrong with an id read from a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadId {
    #[error("is empty")]
    Empty,
    #[error("is {chars} characters long (an id has at most {MAX_ID_CHARS})")]
    TooLong { chars: usize },
    /// `at` counts characters from 1; `shown` is the character as an escape (`\0`, `\u{200B}`).
    #[error("holds {} ({shown}) at character {at}", kind.describe())]
    Character {
        kind: CharKind,
        at: usize,
        shown: String,
    },
}

/// The characters an id must not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharKind {
    /// NUL, tab, line breaks, ESC, DEL, C1 controls: never part of an id; a NUL cuts a C string.
    Control,
    /// Zero-width characters, bidi marks and overrides, BOMs, variation selectors, tags: an id
    /// holding one looks like another and compares unequal to it.
    Invisible,
    /// A space other than U+0020 (no-break, em, ideographic, ...): the same deception.
    OddSpace,
    /// U+FFFD, the mark of text decoded with the wrong encoding somewhere upstream.
    Replacement,
}

impl CharKind {
    fn describe(self) -> &'static str {
        match self {
            CharKind::Control => "a control character",
            CharKind::Invisible => "an invisible character",
            CharKind::OddSpace => "a space other than a plain one",
            CharKind::Replacement => "the replacement character",
        }
    }

    fn of(c: char) -> Option<CharKind> {
        if c.is_control() {
            Some(CharKind::Control)
        } else if c.is_whitespace() && c != ' ' {
            Some(CharKind::OddSpace)
        } else if c == '\u{FFFD}' {
            Some(CharKind::Replacement)
        } else if is_invisible(c) {
            Some(CharKind::Invisible)
        } else {
            None
        }
    }
}

/// Characters that render as nothing (Unicode's default-ignorable code points and the format
/// characters among them), so that two ids differing only by one look the same.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                // soft hyphen
        | '\u{034F}'              // combining grapheme joiner
        | '\u{061C}'              // Arabic letter mark
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}' // Mongolian selectors and vowel separator
        | '\u{200B}'..='\u{200F}' // zero-width space, joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
        | '\u{FE00}'..='\u{FE0F}' // variation selectors
        | '\u{FEFF}'              // BOM, zero-width no-break space
        | '\u{FFF0}'..='\u{FFFB}' // interlinear annotation
        | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}' // musical symbol format controls
        | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
    )
}

/// Check an id read from a file (already trimmed by the reader): not empty, at most
/// [`MAX_ID_CHARS`] characters, and nothing a person could not see or a C library would cut.
/// Letters of any script, digits, punctuation and inner plain spaces are all fine: other systems'
/// ids are theirs to shape.
pub fn check_id(id: &str) -> Result<(), BadId> {
    if id.is_empty() {
        return Err(BadId::Empty);
    }
    for (i, c) in id.chars().enumerate() {
        if i == MAX_ID_CHARS {
            return Err(BadId::TooLong {
                chars: id.chars().count(),
            });
        }
        if let Some(kind) = CharKind::of(c) {
            let mut shown = String::new();
            push_shown(&mut shown, c);
            return Err(BadId::Character {
                kind,
                at: i + 1,
                shown,
            });
        }
    }
    Ok(())
}

/// Read a small text file whole (a TOML file), refusing one over `limit` bytes or not UTF-8.
/// The error is an [`io::Error`] for the caller to name the file in; the size is checked before
/// reading and again while reading, for a file that grows or a device that has no size.
pub fn read_small_text(path: &Path, limit: u64) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    let too_big = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{size} bytes, more than the {} KiB such a file may hold",
                limit >> 10
            ),
        )
    };
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// What [`Bounded`] raises inside the CSV reader when a record runs too long; recognised again in
/// [`CsvRecords`] and turned into [`RecordError::TooLong`].
#[derive(Debug)]
struct LimitReached;

impl fmt::Display for LimitReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("record longer than the limit")
    }
}

impl std::error::Error for LimitReached {}

/// A reader that hands out bytes only up to `stop_at`, an offset the record reader moves
/// forward after each record it finishes.
struct Bounded<R> {
    inner: R,
    offset: u64,
    stop_at: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.stop_at.saturating_sub(self.offset);
        if room == 0 {
            return Err(io::Error::other(LimitReached));
        }
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// A CSV record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The record starting on `line` runs over [`MAX_RECORD_BYTES`]; nothing past the limit was
    /// read.
    #[error("line {line}: {TOO_LONG}")]
    TooLong { line: u64 },
    #[error(transparent)]
    Csv(csv::Error),
}

/// The message of [`RecordError::TooLong`], for callers that format the line themselves.
pub const TOO_LONG: &str = "the record starting on this line is longer than 4 MiB, the most dupdesk reads as one CSV record (a quote that never closes, or not a CSV file?)";

impl RecordError {
    /// The line the error is on (1 is the header), where known.
    pub fn line(&self) -> Option<u64> {
        match self {
            RecordError::TooLong { line } => Some(*line),
            RecordError::Csv(e) => e.position().map(|p| p.line()),
        }
    }

    /// What went wrong, for a message that names the file and line itself.
    pub fn message(&self) -> String {
        match self {
            RecordError::TooLong { .. } => TOO_LONG.to_string(),
            RecordError::Csv(e) => csv_message(e),
        }
    }
}

/// A CSV reader's error as a person reads it, without the position the caller already names.
/// None of the crate's messages quote the file's bytes.
pub fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            "a value is not valid UTF-8 (save the file as UTF-8)".to_string()
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "{len} fields where the header has {expected_len} (a stray delimiter or an unclosed quote?)"
        ),
        csv::ErrorKind::Io(io) => format!("reading failed: {io}"),
        _ => e.to_string(),
    }
}

/// CSV records from a user's file, one at a time, none longer than [`MAX_RECORD_BYTES`].
pub struct CsvRecords<R: Read> {
    reader: csv::Reader<Bounded<R>>,
    /// Where the record being read begins: just after the previous one (blank lines before it
    /// count towards it).
    start: csv::Position,
}

impl<R: Read> CsvRecords<R> {
    /// Records of `input` as `builder` reads them (delimiter, headers, flexibility). The
    /// builder's buffer size is set here; it bounds how far past the limit a read may go.
    pub fn new(builder: &mut csv::ReaderBuilder, input: R) -> CsvRecords<R> {
        let reader = builder
            .buffer_capacity(CSV_BUFFER_BYTES)
            .from_reader(Bounded {
                inner: input,
                offset: 0,
                stop_at: MAX_RECORD_BYTES + CSV_BUFFER_BYTES as u64,
            });
        CsvRecords {
            reader,
            start: csv::Position::new(),
        }
    }

    /// The header record (read on the first call), as the file has it.
    pub fn headers(&mut self) -> Result<csv::StringRecord, RecordError> {
        let headers = match self.reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(self.classify(e)),
        };
        self.finished_record()?;
        Ok(headers)
    }

    /// Read the next record into `record`; `Ok(false)` at the end of the file.
    pub fn read(&mut self, record: &mut csv::StringRecord) -> Result<bool, RecordError> {
        match self.reader.read_record(record) {
            Ok(true) => {
                self.finished_record()?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Where the reader is: the byte and line just after the last record read.
    pub fn position(&self) -> &csv::Position {
        self.reader.position()
    }

    /// A record ended: check its length exactly (the reader only stops a record once it is a
    /// buffer past the limit) and let the next one start from here.
    fn finished_record(&mut self) -> Result<(), RecordError> {
        let end = self.reader.position().clone();
        if end.byte() - self.start.byte() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLong {
                line: self.start.line(),
            });
        }
        self.reader.get_mut().stop_at = end.byte() + MAX_RECORD_BYTES + CSV_BUFFER_BYTES as u64;
        self.start = end;
        Ok(())
    }

    fn classify(&self, e: csv::Error) -> RecordError {
        if let csv::ErrorKind::Io(io) = e.kind()
            && io.get_ref().is_some_and(|inner| inner.is::<LimitReached>())
        {
            return RecordError::TooLong {
                line: self.start.line(),
            };
        }
        RecordError::Csv(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8]) -> Result<Vec<Vec<String>>, RecordError> {
        let mut r = CsvRecords::new(&mut csv::ReaderBuilder::new(), text);
        let mut out = vec![r.headers()?.iter().map(str::to_string).collect()];
        let mut rec = csv::StringRecord::new();
        while r.read(&mut rec)? {
            out.push(rec.iter().map(str::to_string).collect());
        }
        Ok(out)
    }

    #[test]
    fn the_limit_is_what_the_messages_say() {
        assert_eq!(MAX_RECORD_BYTES, 4 * 1024 * 1024);
        assert!(TOO_LONG.contains("4 MiB"));
    }

    #[test]
    fn records_up_to_the_limit_read_and_longer_ones_are_refused_with_their_line() {
        let at_limit = "x".repeat(MAX_RECORD_BYTES as usize - 3);
        let text = format!("a,b\n1,{at_limit}\n2,y\n");
        let got = records(text.as_bytes()).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1][1].len(), at_limit.len());

        // One byte over, and far over (stopped by the reader, not after reading it all).
        for extra in [MAX_RECORD_BYTES as usize - 2, 64 << 20] {
            let text = format!("a,b\n1,x\n2,{}\n3,z\n", "y".repeat(extra));
            match records(text.as_bytes()) {
                Err(RecordError::TooLong { line }) => assert_eq!(line, 3, "{extra}"),
                other => panic!("{extra}: {:?}", other.map(|r| r.len())),
            }
        }
        // A quoted value spanning lines counts as one record, from its first line.
        let text = format!("a,b\n1,\"{}\"\n", "line\n".repeat(1 << 20));
        assert!(matches!(
            records(text.as_bytes()),
            Err(RecordError::TooLong { line: 2 })
        ));
        // The header too.
        let text = format!("a,{}\n1,2\n", "b".repeat(MAX_RECORD_BYTES as usize));
        assert!(matches!(
            records(text.as_bytes()),
            Err(RecordError::TooLong { line: 1 })
        ));
    }

    #[test]
    fn other_csv_errors_pass_through_with_their_line() {
        let e = records(b"a,b\n1,2\n3\n").unwrap_err();
        assert!(matches!(e, RecordError::Csv(_)), "{e}");
        assert_eq!(e.line(), Some(3));
    }

    #[test]
    fn quotes_are_short_and_safe() {
        assert_eq!(quote("E-1"), "\"E-1\"");
        assert_eq!(quote("a\0b\u{1b}[2J"), "\"a\\0b\\e[2J\"");
        assert_eq!(quote("E-1\u{200B}\u{A0}"), "\"E-1\\u{200B}\\u{00A0}\"");
        assert_eq!(quote("Zoë 顧客"), "\"Zoë 顧客\"");
        let long = format!("{}\u{1b}", "é".repeat(1000));
        let q = quote(&long);
        assert_eq!(q, format!("\"{}…\" (2001 bytes)", "é".repeat(QUOTE_CHARS)));
        assert_eq!(
            excerpt("unknown field `a\u{1b}b`", 40),
            "unknown field `a\\eb`"
        );
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(
            excerpt("unknown field `foo`\nin `crm`\n", 400),
            "unknown field `foo` in `crm`"
        );
    }

    #[test]
    fn ids_refuse_what_cannot_be_seen_or_stored_and_keep_the_rest() {
        for ok in [
            "1001",
            "ERP-1000122",
            "KD 10023",
            "Kunde-Ä1",
            "SAP/1000/DE01/0000123456",
            "0034H00002abcDeQAA",
            "顧客-7",
        ] {
            assert_eq!(check_id(ok), Ok(()), "{ok}");
        }
        let kind = |id: &str| match check_id(id) {
            Err(BadId::Character { kind, at, .. }) => Some((kind, at)),
            _ => None,
        };
        assert_eq!(kind("E-\u{0}3"), Some((CharKind::Control, 3)));
        assert_eq!(kind("E\t1"), Some((CharKind::Control, 2)));
        assert_eq!(kind("E-1\u{200B}"), Some((CharKind::Invisible, 4)));
        assert_eq!(kind("\u{202E}1-E"), Some((CharKind::Invisible, 1)));
        assert_eq!(kind("E-\u{FEFF}1"), Some((CharKind::Invisible, 3)));
        assert_eq!(kind("KD\u{A0}1"), Some((CharKind::OddSpace, 3)));
        assert_eq!(kind("E-1\u{2028}"), Some((CharKind::OddSpace, 4)));
        assert_eq!(kind("M\u{FFFD}ller"), Some((CharKind::Replacement, 2)));
        assert_eq!(check_id(""), Err(BadId::Empty));
        assert_eq!(check_id(&"9".repeat(MAX_ID_CHARS)), Ok(()));
        assert_eq!(
            check_id(&"9".repeat(MAX_ID_CHARS + 1)),
            Err(BadId::TooLong {
                chars: MAX_ID_CHARS + 1
            })
        );
        let e = check_id("E-\u{0}3").unwrap_err().to_string();
        assert_eq!(e, "holds a control character (\\0) at character 3");
        let e = check_id("E\u{200B}").unwrap_err().to_string();
        assert_eq!(e, "holds an invisible character (\\u{200B}) at character 2");
    }

    #[test]
    fn small_text_files_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "a = 1\n").unwrap();
        assert_eq!(read_small_text(&p, 16).unwrap(), "a = 1\n");
        std::fs::write(&p, vec![b'#'; 17]).unwrap();
        let e = read_small_text(&p, 16).unwrap_err().to_string();
        assert!(e.contains("17 bytes"), "{e}");
        std::fs::write(&p, b"a = \"\xff\"").unwrap();
        let e = read_small_text(&p, 16).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
