//! Records from a CRM's CSV export into the workspace. Columns are mapped to properties by
//! the built-in HubSpot export headers ("Record ID", "First Name", "Country/Region", ...),
//! internal property names used as headers, the `[import.columns]` configuration table and
//! explicit overrides, in rising order of precedence. One column must be the record id.
//!
//! A file is checked whole before anything is written, then written in chunks, so that a bad
//! row anywhere still changes nothing and a long import still lets the steward decide:
//!
//! 1. **Check** ([`check_file`]): every row is read and checked (bad quoting, a wrong field
//!    count, a missing or repeated id, an unreadable date, invalid UTF-8), and nothing is written
//!    to the workspace. The bytes read are copied, as they are read, to an unnamed file in the
//!    workspace's folder. A bad row is reported with its file, line and column, and the
//!    workspace is as it was. A file whose size or modification time moved while it was read
//!    (an export still being written) is refused too.
//! 2. **Write** ([`write_checked`]): the copy, not the file, is read again and its rows written
//!    in chunks of about 200 ms each ([`crate::store::chunks`]), with a pause between chunks in
//!    which another process takes the write lock. What is written is byte for byte what was
//!    checked, whatever happens to the file meanwhile; the copy disappears with the process.
//!
//! Each chunk is one transaction holding whole rows with their id mappings. The last chunk
//! adds what only the whole file answers: the check of ids in the other system shared by two
//! records, and the sync state. Until then a run marker in `meta` names the import and how far
//! it got. An import killed in the first pass changed nothing. One killed between chunks leaves
//! the rows of the chunks it committed and its marker (`dupdesk stats` reports it), and
//! **importing the same file again completes it**: the rows already written read as unchanged
//! (only their `last_seen_at` moves), the others are written, the last chunk checks the shares
//! and writes the sync state, and the report says which interrupted import it completed. A file
//! small enough for one chunk is written in one transaction, as before.
//!
//! Streaming the rows, rather than collecting them first, keeps memory flat for large
//! exports, and reading them through [`crate::input`] keeps it flat for a file that is not one:
//! no record may run over 4 MiB, record ids must pass [`check_id`], and errors quote values
//! short. This module knows nothing about the command line or the terminal.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::domain::model::{ObjectType, Record, format_ts, parse_ts};
use crate::input::{self, BadId, CsvRecords, RecordError, check_id, quote};
use crate::store::Store;
use crate::store::chunks::{self, Chunk, ChunkPolicy, RunMarker};
use crate::store::history::{self, VersionRef};
use crate::store::mapping::{self, Link, Observed};
use crate::store::records::{self, EncodedRecord, UpsertStats};
use crate::store::sync_state;

/// The history `sourceType` of every value an import writes; its `sourceId` is the system.
pub const IMPORT_SOURCE_TYPE: &str = "IMPORT";

/// The property that holds the record id.
const ID_PROPERTY: &str = "hs_object_id";

/// Rows travel from the reading thread to the writing one in batches of this many; a chunk
/// is checked for being full after each batch.
const BATCH: usize = 2_000;

/// The most rows one chunk writes, however fast the disk (the time budget of
/// [`ChunkPolicy::new`] ends most chunks first: some 20,000 rows in 200 ms in release).
pub const CHUNK_ROWS: usize = 50_000;

/// The headers of HubSpot's CSV exports, by object type, with the property each one holds.
/// Compared case-insensitively.
fn hubspot_headers(object: ObjectType) -> &'static [(&'static str, &'static str)] {
    match object {
        ObjectType::Contacts => &[
            ("Record ID", ID_PROPERTY),
            ("Contact ID", ID_PROPERTY),
            ("Email", "email"),
            ("First Name", "firstname"),
            ("Last Name", "lastname"),
            ("Phone Number", "phone"),
            ("Mobile Phone Number", "mobilephone"),
            ("Company Name", "company"),
            ("Job Title", "jobtitle"),
            ("City", "city"),
            ("State/Region", "state"),
            ("Country/Region", "country"),
            ("Postal Code", "zip"),
            ("Street Address", "address"),
            ("Website URL", "website"),
            ("Lifecycle Stage", "lifecyclestage"),
            ("Lead Status", "hs_lead_status"),
            ("Create Date", "createdate"),
            ("Last Modified Date", "lastmodifieddate"),
            ("ERP Customer ID", "erp_customer_id"),
        ],
        ObjectType::Companies => &[
            ("Record ID", ID_PROPERTY),
            ("Company ID", ID_PROPERTY),
            ("Company name", "name"),
            ("Name", "name"),
            ("Company Domain Name", "domain"),
            ("Website URL", "website"),
            ("Phone Number", "phone"),
            ("City", "city"),
            ("State/Region", "state"),
            ("Country/Region", "country"),
            ("Postal Code", "zip"),
            ("Street Address", "address"),
            ("Industry", "industry"),
            ("Number of Employees", "numberofemployees"),
            ("Annual Revenue", "annualrevenue"),
            ("Create Date", "createdate"),
            ("Last Modified Date", "hs_lastmodifieddate"),
            ("ERP Customer ID", "erp_customer_id"),
        ],
    }
}

/// What to import and how to read the columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    pub object: ObjectType,
    /// The system the export comes from: the records' system, the history `sourceId`, and
    /// the sync-state source `csv:<system>`.
    pub system: String,
    /// Header → property, from the configuration's `[import.columns]`.
    pub config_columns: BTreeMap<String, String>,
    /// Header → property, from the command line; an empty property ignores the column.
    pub overrides: BTreeMap<String, String>,
    /// The inverse-id property and the other system it names (`erp_customer_id`, `erp`), to
    /// record id mappings the way a pull does.
    pub inverse_id: Option<(String, String)>,
    /// How the rows are divided into transactions.
    pub chunks: ChunkPolicy,
    /// The field separator (`,` unless the export uses another, such as `;` or a tab).
    pub delimiter: u8,
}

impl ImportOptions {
    pub fn new(object: ObjectType, system: impl Into<String>) -> ImportOptions {
        ImportOptions {
            object,
            system: system.into(),
            config_columns: BTreeMap::new(),
            overrides: BTreeMap::new(),
            inverse_id: None,
            chunks: ChunkPolicy::new(CHUNK_ROWS),
            delimiter: b',',
        }
    }

    /// Add an override written as `Header=property`.
    pub fn add_override(&mut self, spec: &str) -> Result<(), InvalidMapping> {
        let (header, property) = spec
            .rsplit_once('=')
            .ok_or_else(|| InvalidMapping(spec.to_string()))?;
        let (header, property) = (header.trim(), property.trim());
        if header.is_empty() || property.contains(char::is_whitespace) {
            return Err(InvalidMapping(spec.to_string()));
        }
        self.overrides
            .insert(header.to_string(), property.to_string());
        Ok(())
    }
}

/// A column mapping that is not `Header=property`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column mapping {0:?} is not HEADER=PROPERTY (a property name has no spaces)")]
pub struct InvalidMapping(pub String);

/// A file that cannot be imported, with where in it the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CsvError {
    pub file: PathBuf,
    /// 1-based; the header is line 1. For a record spanning lines, the line it starts on.
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl CsvError {
    fn internal(file: &Path, message: &str) -> CsvError {
        CsvError {
            file: file.to_path_buf(),
            line: 0,
            column: None,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: line {}", self.file.display(), self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column {}", quote(c))?;
        }
        write!(f, ": {} (nothing was imported)", self.message)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: u64,
    pub stats: UpsertStats,
    pub mappings_new: u64,
    pub mappings_changed: u64,
    /// Ids in the other system that live records newly share, or no longer share.
    pub shared_targets: crate::store::mapping::SharedCheck,
    /// Header → property, in file order, for the columns that were read.
    pub columns: Vec<(String, String)>,
    /// Headers no mapping knows, left out.
    pub ignored: Vec<String>,
    /// Transactions the rows were written in.
    pub chunks: u64,
    /// How long checking every row took, and then writing them.
    pub check_time: std::time::Duration,
    pub write_time: std::time::Duration,
    /// An earlier import of the same file (same path, object type and system) that was
    /// interrupted between chunks, which this one completed: what it had done.
    pub completes: Option<String>,
}

/// How each column of a file is read.
struct Layout {
    /// Per column: the property it fills, if any.
    properties: Vec<Option<String>>,
    headers: Vec<String>,
    id: usize,
    created: Option<usize>,
    modified: Option<usize>,
}

impl Layout {
    /// Header → property of the columns read, in file order, and the headers left out.
    fn columns(&self) -> (Vec<(String, String)>, Vec<String>) {
        let (mut read, mut ignored) = (Vec::new(), Vec::new());
        for (h, p) in self.headers.iter().zip(&self.properties) {
            match p {
                Some(p) => read.push((h.clone(), p.clone())),
                None => ignored.push(h.clone()),
            }
        }
        (read, ignored)
    }
}

fn looks_like_property_name(h: &str) -> bool {
    !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// How a field separator is called in a message.
fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tabs".into(),
        b',' => "commas".into(),
        b';' => "semicolons".into(),
        other => format!("{:?}", char::from(other)),
    }
}

/// How a field separator is written after `--delimiter` in a shell.
fn delimiter_arg(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        other => format!("'{}'", char::from(other)),
    }
}

/// The separator `--delimiter` names: one ASCII character, or `tab`.
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => match s.as_bytes() {
            [b] if b.is_ascii()
                && !b.is_ascii_alphanumeric()
                && *b != b'"'
                && *b != b'\n'
                && *b != b'\r' =>
            {
                Ok(*b)
            }
            _ => Err(format!(
                "{s:?} is not a field separator: give one character such as ';' or '|', or tab"
            )),
        },
    }
}

fn layout(file: &Path, headers: &[String], opts: &ImportOptions) -> Result<Layout, CsvError> {
    let err = |column: Option<&str>, message: String| CsvError {
        file: file.to_path_buf(),
        line: 1,
        column: column.map(str::to_string),
        message,
    };
    let find = |table: &BTreeMap<String, String>, h: &str| {
        table
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(h))
            .map(|(_, v)| v.clone())
    };
    let modified_property = opts.object.last_modified_property();
    let mut properties = Vec::with_capacity(headers.len());
    let mut seen: HashMap<String, &str> = HashMap::new();
    for h in headers {
        let property = find(&opts.overrides, h)
            .or_else(|| find(&opts.config_columns, h))
            .or_else(|| {
                hubspot_headers(opts.object)
                    .iter()
                    .find(|(label, _)| label.eq_ignore_ascii_case(h))
                    .map(|(_, p)| p.to_string())
            })
            .or_else(|| looks_like_property_name(h).then(|| h.clone()))
            .map(|p| {
                if p == "id" {
                    ID_PROPERTY.to_string()
                } else {
                    p
                }
            })
            .filter(|p| !p.is_empty());
        if let Some(p) = &property
            && let Some(other) = seen.insert(p.clone(), h)
        {
            return Err(err(
                Some(h),
                format!(
                    "columns {} and {} both hold property {}",
                    quote(other),
                    quote(h),
                    quote(p)
                ),
            ));
        }
        properties.push(property);
    }
    let position = |want: &str| properties.iter().position(|p| p.as_deref() == Some(want));
    let id = position(ID_PROPERTY).ok_or_else(|| {
        // A file separated by another character reads as one column whose name holds them all.
        let other = match headers {
            [only] => [b';', b'\t', b'|', b',']
                .into_iter()
                .filter(|d| *d != opts.delimiter)
                .find(|d| only.contains(char::from(*d))),
            _ => None,
        };
        let message = match other {
            Some(d) => format!(
                "the header is one column ({}): the file looks separated by {} rather than {}; pass --delimiter {}",
                quote(&headers[0]),
                delimiter_name(d),
                delimiter_name(opts.delimiter),
                delimiter_arg(d)
            ),
            None => format!(
                "no id column (expected \"Record ID\" or {ID_PROPERTY}; name one with --map \"HEADER={ID_PROPERTY}\")"
            ),
        };
        err(None, message)
    })?;
    Ok(Layout {
        id,
        created: position("createdate"),
        modified: position(modified_property),
        properties,
        headers: headers.to_vec(),
    })
}

/// Dates as CRMs export them: RFC 3339, `YYYY-MM-DD HH:MM[:SS[.fff]]`, `YYYY-MM-DD`, or epoch
/// milliseconds. Times without a zone are read as UTC.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(ts) = parse_ts(s) {
        return Some(ts);
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(n.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
    }
    if (10..=13).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().and_then(|n| {
            if s.len() == 13 {
                DateTime::from_timestamp_millis(n)
            } else {
                DateTime::from_timestamp(n, 0)
            }
        });
    }
    None
}

/// Which of the two passes over a file a [`RowReader`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Check every row; build nothing.
    Check,
    /// Rows already checked, read again to be written: the checks that only the whole file
    /// answers (a repeated id, a quote left open at the end) were made by the first pass.
    Write,
}

/// Reads a file row by row into records, checking as it goes.
struct RowReader<R: Read> {
    file: PathBuf,
    reader: CsvRecords<R>,
    layout: Layout,
    opts: ImportOptions,
    pass: Pass,
    /// Used as the time of values on rows with no dates, so re-importing an unchanged file
    /// writes the same history.
    fallback_time: DateTime<Utc>,
    /// id → line of its first row.
    ids: HashMap<String, u64>,
    row: csv::StringRecord,
    /// Byte offset and line of the last record read, for the unclosed-quote check at the end.
    last_start: Option<(u64, u64)>,
}

/// A row that passed the checks, before it is encoded.
struct CheckedRow {
    id: String,
    created: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
}

impl<R: Read> RowReader<R> {
    fn new(
        file: &Path,
        input: R,
        opts: &ImportOptions,
        fallback_time: DateTime<Utc>,
        pass: Pass,
    ) -> Result<Self, CsvError> {
        let mut reader = CsvRecords::new(
            csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(false)
                .delimiter(opts.delimiter),
            input,
        );
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| record_error(file, e, None))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let layout = layout(file, &headers, opts)?;
        Ok(RowReader {
            file: file.to_path_buf(),
            reader,
            layout,
            opts: opts.clone(),
            pass,
            fallback_time,
            ids: HashMap::new(),
            row: csv::StringRecord::new(),
            last_start: None,
        })
    }

    fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    fn error(&self, line: u64, column: usize, message: String) -> CsvError {
        CsvError {
            file: self.file.clone(),
            line,
            column: self.layout.headers.get(column).cloned(),
            message,
        }
    }

    fn date(&self, line: u64, column: Option<usize>) -> Result<Option<DateTime<Utc>>, CsvError> {
        let Some(c) = column else { return Ok(None) };
        let raw = self.row.get(c).unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(None);
        }
        parse_date(raw).map(Some).ok_or_else(|| {
            self.error(
                line,
                c,
                format!(
                    "{} is not a date (use YYYY-MM-DD HH:MM[:SS] or RFC 3339)",
                    quote(raw)
                ),
            )
        })
    }

    /// A quote left open swallows the rest of the file into one value without the CSV reader
    /// noticing when the field count still matches; it can only happen in the last record, and
    /// shows as an odd number of quote characters in that record's bytes. Counted as they are
    /// read: the tail is the last record and what follows it, at most a few MiB.
    fn check_last_record_closed(&self) -> Result<(), CsvError> {
        let Some((start, line)) = self.last_start else {
            return Ok(());
        };
        let count_quotes = || -> std::io::Result<usize> {
            let mut f = File::open(&self.file)?;
            f.seek(SeekFrom::Start(start))?;
            let mut tail = f.take(2 * input::MAX_RECORD_BYTES + input::CSV_BUFFER_BYTES as u64);
            let mut buf = vec![0u8; input::CSV_BUFFER_BYTES];
            let mut quotes = 0;
            loop {
                match tail.read(&mut buf)? {
                    0 => return Ok(quotes),
                    n => quotes += buf[..n].iter().filter(|b| **b == b'"').count(),
                }
            }
        };
        let quotes = count_quotes()
            .map_err(|e| CsvError::internal(&self.file, &format!("reading failed: {e}")))?;
        if quotes % 2 == 1 {
            return Err(CsvError {
                file: self.file.clone(),
                line,
                column: None,
                message: "a quoted value starting on this line is never closed (an unclosed quote)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Check the next row; `None` at the end of the file.
    fn check_record(&mut self) -> Result<Option<CheckedRow>, CsvError> {
        match self.reader.read(&mut self.row) {
            Ok(false) if self.pass == Pass::Write => return Ok(None),
            Ok(false) => return self.check_last_record_closed().map(|()| None),
            Ok(true) => {}
            Err(e) => return Err(record_error(&self.file, e, Some(&self.layout.headers))),
        }
        let line = self.row.position().map(|p| p.line()).unwrap_or(0);
        self.last_start = self.row.position().map(|p| (p.byte(), p.line()));
        let id = self
            .row
            .get(self.layout.id)
            .unwrap_or("")
            .trim()
            .to_string();
        match check_id(&id) {
            Ok(()) => {}
            Err(BadId::Empty) => {
                return Err(self.error(line, self.layout.id, "the record id is empty".into()));
            }
            Err(bad) => {
                return Err(self.error(
                    line,
                    self.layout.id,
                    format!("the record id {} {bad}", quote(&id)),
                ));
            }
        }
        if self.pass == Pass::Check
            && let Some(first) = self.ids.insert(id.clone(), line)
        {
            return Err(self.error(
                line,
                self.layout.id,
                format!("id {} appears again (first on line {first})", quote(&id)),
            ));
        }
        let created = self.date(line, self.layout.created)?;
        let updated = self.date(line, self.layout.modified)?;
        Ok(Some(CheckedRow {
            id,
            created,
            updated,
        }))
    }

    /// The next row, checked and encoded; `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<ImportedRow>, CsvError> {
        let Some(CheckedRow {
            id,
            created,
            updated,
        }) = self.check_record()?
        else {
            return Ok(None);
        };
        let at = updated.or(created).unwrap_or(self.fallback_time);
        let (created_text, updated_text) = (
            created.as_ref().map(format_ts),
            updated.as_ref().map(format_ts),
        );
        // Borrowed views of the row, encoded straight to the stored JSON: a record's maps of
        // owned strings would cost a few dozen allocations per row to build and free.
        let mut properties: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut versions: BTreeMap<&str, [VersionRef<'_>; 1]> = BTreeMap::new();
        for (c, value) in self.row.iter().enumerate() {
            let Some(property) = self.layout.properties[c].as_deref() else {
                continue;
            };
            if value.is_empty() || property == ID_PROPERTY {
                continue;
            }
            let value = if Some(c) == self.layout.created {
                created_text.as_deref()
            } else if Some(c) == self.layout.modified {
                updated_text.as_deref()
            } else {
                versions.insert(
                    property,
                    [VersionRef {
                        value: Some(value),
                        timestamp: at,
                        source_type: IMPORT_SOURCE_TYPE,
                        source_id: Some(&self.opts.system),
                    }],
                );
                Some(value)
            };
            properties.insert(property, value);
        }
        properties.insert(ID_PROPERTY, Some(&id));
        let inverse_id = self
            .opts
            .inverse_id
            .as_ref()
            .and_then(|(p, _)| properties.get(p.as_str()).copied().flatten())
            .map(str::to_string);
        let encode = |e: serde_json::Error| CsvError::internal(&self.file, &e.to_string());
        let history = history::encode(&versions, |p| properties.get(p).copied()).map_err(encode)?;
        let properties = serde_json::to_string(&properties).map_err(encode)?;
        Ok(Some(ImportedRow {
            encoded: EncodedRecord::from_json(
                self.opts.object,
                id,
                created,
                updated,
                properties,
                history,
            ),
            inverse_id,
        }))
    }
}

/// One checked row, ready for the store, with its inverse id (for the mapping table).
struct ImportedRow {
    encoded: EncodedRecord,
    inverse_id: Option<String>,
}

fn record_error(file: &Path, e: RecordError, headers: Option<&[String]>) -> CsvError {
    match e {
        RecordError::TooLong { line } => CsvError {
            file: file.to_path_buf(),
            line,
            column: None,
            message: input::TOO_LONG.to_string(),
        },
        RecordError::Csv(e) => csv_error(file, &e, headers),
    }
}

fn csv_error(file: &Path, e: &csv::Error, headers: Option<&[String]>) -> CsvError {
    let line = e.position().map(|p| p.line()).unwrap_or(1);
    let (column, message) = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => (
            headers.and_then(|h| h.get(err.field()).cloned()),
            "the value is not valid UTF-8 (save the export as UTF-8)".to_string(),
        ),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => (
            None,
            format!(
                "{len} fields where the header has {expected_len} (a stray delimiter or an unclosed quote?)"
            ),
        ),
        csv::ErrorKind::Io(io) => (None, format!("reading failed: {io}")),
        _ => (None, input::csv_message(e)),
    };
    CsvError {
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// What an import is doing, for a progress bar: how many bytes of the file have been read,
/// first while every row is checked (nothing is written then), then while the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportProgress {
    Checking { bytes: u64 },
    Writing { bytes: u64 },
}

/// Import a CSV file into the workspace, all or nothing (see the module doc): every row is
/// checked before the first is written, and the rows are then written in chunks from the copy
/// that was checked. `progress` is called now and then.
pub fn import_csv(
    store: &Store,
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(ImportProgress) + Sync),
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    let checked = check_file(store.path(), file, opts, progress)?;
    let check_time = started.elapsed();
    tracing::info!(file = %file.display(), rows = checked.rows, seconds = check_time.as_secs_f64(), "import: every row checked");
    let mut report = write_checked(store, file, opts, checked, progress)?;
    report.check_time = check_time;
    report.write_time = started.elapsed() - check_time;
    tracing::info!(file = %file.display(), rows = report.rows, chunks = report.chunks, seconds = report.write_time.as_secs_f64(), "import: rows written");
    Ok(report)
}

/// A file whose every row passed the checks, and the copy of it they were made on.
struct CheckedFile {
    copy: File,
    rows: u64,
    /// SHA-256 of the file's bytes, in hex: what tells a re-run of the same import.
    digest: String,
    fallback_time: DateTime<Utc>,
    columns: Vec<(String, String)>,
    ignored: Vec<String>,
}

/// Reads a file and hands on its bytes, keeping a copy of each and their digest.
struct Tee<'a> {
    inner: File,
    copy: &'a mut BufWriter<File>,
    digest: &'a mut Sha256,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n]).map_err(|e| {
            std::io::Error::other(format!(
                "keeping a copy of the file beside the workspace failed: {e}"
            ))
        })?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

/// The size and modification time of a file: what moves when it is written to.
fn stamp(m: &std::fs::Metadata) -> (u64, Option<std::time::SystemTime>) {
    (m.len(), m.modified().ok())
}

/// The first pass: read and check every row, writing nothing to the workspace, and keep a
/// copy of the bytes that were checked. The copy is an unnamed file in the workspace's folder
/// (the disk that holds the workspace, not a `/tmp` that may live in memory), gone when it is
/// closed, or when the process is killed.
fn check_file(
    workspace: &Path,
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(ImportProgress) + Sync),
) -> Result<CheckedFile> {
    let handle = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let opened = handle
        .metadata()
        .with_context(|| format!("reading {}", file.display()))?;
    let fallback_time = opened
        .modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_default();
    let dir = workspace
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let spool = tempfile::tempfile_in(dir).with_context(|| {
        format!(
            "making a copy of {} to import in {}",
            file.display(),
            dir.display()
        )
    })?;
    let mut copy = BufWriter::with_capacity(input::CSV_BUFFER_BYTES, spool);
    let mut digest = Sha256::new();
    let (rows, columns, ignored) = {
        let tee = Tee {
            inner: handle,
            copy: &mut copy,
            digest: &mut digest,
        };
        let mut reader = RowReader::new(file, tee, opts, fallback_time, Pass::Check)?;
        let mut rows = 0u64;
        while reader.check_record()?.is_some() {
            rows += 1;
            if rows.is_multiple_of(BATCH as u64) {
                progress(ImportProgress::Checking {
                    bytes: reader.bytes_read(),
                });
            }
        }
        let (columns, ignored) = reader.layout.columns();
        (rows, columns, ignored)
    };
    let mut copy = copy
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("keeping a copy of {} to import", file.display()))?;
    // The rows written are the copy's, which is what was checked; but a file written to while
    // it was read is an export caught half-made, and importing it would be importing neither.
    let now = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    if stamp(&now) != stamp(&opened) {
        anyhow::bail!(
            "{}: the file changed while it was being checked (its size or modification time moved); nothing was imported: import it again once it is complete",
            file.display()
        );
    }
    copy.seek(SeekFrom::Start(0))
        .with_context(|| format!("reading the copy of {}", file.display()))?;
    Ok(CheckedFile {
        copy,
        rows,
        digest: hex::encode(digest.finalize()),
        fallback_time,
        columns,
        ignored,
    })
}

/// The second pass: read the checked copy again on a thread of its own, building and encoding
/// records, while this thread has the store write them a chunk at a time, pausing between
/// chunks for whoever waits for the workspace.
fn write_checked(
    store: &Store,
    file: &Path,
    opts: &ImportOptions,
    checked: CheckedFile,
    progress: &(dyn Fn(ImportProgress) + Sync),
) -> Result<ImportReport> {
    let CheckedFile {
        copy,
        rows,
        digest,
        fallback_time,
        columns,
        ignored,
    } = checked;
    let reader = RowReader::new(file, copy, opts, fallback_time, Pass::Write)?;
    let (batches, incoming) = mpsc::sync_channel::<Batch>(4);
    let (recycle, written) = mpsc::channel::<Vec<ImportedRow>>();
    let now = store.now_ts();
    let shown = file.display().to_string();
    // By the file's full path, so that importing the same export again finds the marker of
    // an interrupted import of it, from whatever folder it is run.
    let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let key = chunks::marker_key(&[
        "import",
        opts.object.as_str(),
        &opts.system,
        &path.display().to_string(),
    ]);
    let marker = RunMarker {
        owner: chunks::run_owner(),
        started_at: now.clone(),
        what: format!(
            "import of {shown} ({} from {})",
            opts.object.as_str(),
            opts.system
        ),
        identity: digest,
        done: 0,
        total: rows,
        unit: "rows".into(),
        updated_at: now.clone(),
        complete_with: format!(
            "dupdesk import {shown} --object {} --system {}",
            opts.object.as_str(),
            opts.system
        ),
    };
    let mut writer = Writer {
        incoming,
        recycle,
        file: file.to_path_buf(),
        opts: opts.clone(),
        now,
        key,
        marker,
        report: ImportReport {
            columns,
            ignored,
            ..ImportReport::default()
        },
        newest: None,
    };
    let pause = opts.chunks;
    let (key_for_release, owner) = (writer.key.clone(), writer.marker.owner.clone());
    let (written_report, read_result) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_batches(reader, batches, written, progress));
        let written = loop {
            let chunk = store.call_blocking(move |conn| {
                let mut w = writer;
                let ended = crate::store::with_large_cache(conn, |conn| w.write_chunk(conn))?;
                Ok((w, ended))
            });
            match chunk {
                Ok((w, true)) => break Ok(w.report),
                Ok((w, false)) => {
                    pause.pause();
                    writer = w;
                }
                // The writer, and with it the channel's receiving end, is gone: the reader's
                // next send fails and it stops. Chunks may be written: the marker stays, as
                // an interrupted run's.
                Err(e) => {
                    let (key, owner) = (key_for_release.clone(), owner.clone());
                    let released =
                        store.call_blocking(move |c| chunks::release_marker(c, &key, &owner));
                    if let Err(r) = released {
                        tracing::warn!(error = %format!("{r:#}"), "marking the stopped import as interrupted");
                    }
                    break Err(e);
                }
            }
        };
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(CsvError::internal(file, "the reading thread panicked")));
        (written, read)
    });
    let report = written_report?;
    // The writer saw every batch and the end, so the reader had nothing to report.
    read_result?;
    Ok(report)
}

/// The reading half of [`write_checked`]: rows of the checked copy, in batches.
fn read_batches(
    mut rows: RowReader<File>,
    batches: mpsc::SyncSender<Batch>,
    written: mpsc::Receiver<Vec<ImportedRow>>,
    progress: &(dyn Fn(ImportProgress) + Sync),
) -> Result<(), CsvError> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let next = rows.next_record();
        let done = matches!(next, Ok(None));
        match next {
            Ok(Some(row)) => batch.push(row),
            Ok(None) => {}
            Err(e) => {
                let _ = batches.send(Batch::Failed(e.clone()));
                return Err(e);
            }
        }
        if batch.len() >= BATCH || (done && !batch.is_empty()) {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.send(Batch::Records(full)).is_err() {
                // The writer stopped; its error is the one to report.
                return Ok(());
            }
            progress(ImportProgress::Writing {
                bytes: rows.bytes_read(),
            });
            // Free what the writer is done with here, off its thread.
            while let Ok(old) = written.try_recv() {
                drop(old);
            }
        }
        if done {
            let _ = batches.send(Batch::End);
            return Ok(());
        }
    }
}

/// What the reading thread sends the writing one. Only `End` finishes the import: a reader
/// that stops without it (a panic) leaves the chunk being written to roll back.
enum Batch {
    Records(Vec<ImportedRow>),
    Failed(CsvError),
    End,
}

/// The store-thread half of [`write_checked`], moved to the store's thread for each chunk
/// and back.
struct Writer {
    incoming: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Vec<ImportedRow>>,
    file: PathBuf,
    opts: ImportOptions,
    /// The time of the whole import: every chunk writes it as `last_seen_at` and `changed_at`.
    now: String,
    key: String,
    marker: RunMarker,
    report: ImportReport,
    newest: Option<DateTime<Utc>>,
}

impl Writer {
    /// One chunk in one transaction: batches until the chunk is full or the file ends;
    /// `true` when it ended. The run marker goes with every chunk but the last, which takes
    /// it away with the checks of the whole type and the sync state.
    fn write_chunk(&mut self, conn: &mut Connection) -> Result<bool> {
        let tx = conn.transaction()?;
        if self.report.chunks == 0
            && let Some(before) = chunks::read_marker(&tx, &self.key)?
            && before.interrupted()
        {
            self.report.completes = Some(if before.identity == self.marker.identity {
                before.describe()
            } else {
                format!(
                    "{}, from the file as it was then (it has changed since)",
                    before.describe()
                )
            });
        }
        let mut chunk = Chunk::begin();
        let ended = loop {
            let batch = match self.incoming.recv() {
                Ok(Batch::Records(batch)) => batch,
                Ok(Batch::Failed(e)) => {
                    // The copy read differently from when it was checked (a failing disk):
                    // earlier chunks are written, and saying "nothing was imported" would lie.
                    anyhow::bail!(
                        "{}: line {}: the copy of the file read for writing is not the one that was checked ({}); {} of {} rows were written, and `{}` completes the import",
                        self.file.display(),
                        e.line,
                        e.message,
                        self.marker.done,
                        self.marker.total,
                        self.marker.complete_with
                    );
                }
                Ok(Batch::End) => break true,
                Err(_) => anyhow::bail!("the CSV reader stopped before the end of the file"),
            };
            chunk.add(batch.len());
            self.write_batch(&tx, &batch)?;
            let _ = self.recycle.send(batch);
            if chunk.is_full(&self.opts.chunks) {
                break false;
            }
        };
        let done = self.marker.done + chunk.items() as u64;
        if ended {
            self.finish(&tx)?;
            chunks::remove_marker(&tx, &self.key)?;
        } else {
            let marker = RunMarker {
                done,
                updated_at: crate::store::now_ts(),
                ..self.marker.clone()
            };
            chunks::write_marker(&tx, &self.key, &marker)?;
        }
        tx.commit()?;
        self.marker.done = done;
        self.report.chunks += 1;
        Ok(ended)
    }

    fn write_batch(&mut self, tx: &Connection, batch: &[ImportedRow]) -> Result<()> {
        let opts = &self.opts;
        let report = &mut self.report;
        report.rows += batch.len() as u64;
        let encoded: Vec<&EncodedRecord> = batch.iter().map(|r| &r.encoded).collect();
        report.stats.add(records::upsert_encoded(
            tx,
            &opts.system,
            &encoded,
            &self.now,
        )?);
        self.newest = batch
            .iter()
            .map(|r| r.encoded.updated_at)
            .fold(self.newest, Option::max);
        if let Some((_, other)) = &opts.inverse_id {
            for row in batch {
                let Some(target) = &row.inverse_id else {
                    continue;
                };
                let link = Link {
                    object_type: row.encoded.object_type,
                    source_system: &opts.system,
                    source_id: &row.encoded.id,
                    target_system: other,
                    target_id: target,
                };
                match mapping::observe(tx, &link, "import", &self.now)? {
                    Observed::New => report.mappings_new += 1,
                    Observed::Changed => report.mappings_changed += 1,
                    Observed::Unchanged => {}
                }
            }
        }
        Ok(())
    }

    /// What only the whole file answers, in the last chunk: the shared ids of the type and the
    /// sync state.
    fn finish(&mut self, tx: &Connection) -> Result<()> {
        let opts = &self.opts;
        let now = &self.now;
        if opts.inverse_id.is_some() {
            // One pass over the type's mappings: a file can move rows off ids as well as onto
            // them, and a whole-file import is where a workspace's shares are first seen.
            self.report.shared_targets = mapping::check_all_shared_targets(tx, opts.object, now)?;
        }
        sync_state::record_run(
            tx,
            &format!("csv:{}", opts.system),
            opts.object,
            self.newest.as_ref().map(format_ts).as_deref(),
            sync_state::Watermark::KeepNewest,
            now,
            self.report.stats.inserted + self.report.stats.updated,
        )
    }
}

/// The header a HubSpot export uses for a property, for writing export-like files.
fn header_for(object: ObjectType, property: &str) -> String {
    hubspot_headers(object)
        .iter()
        .find(|(_, p)| *p == property)
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| property.to_string())
}

/// Write records as a HubSpot-style export: "Record ID" first, then one column per property
/// (under HubSpot's header where it has one), dates as RFC 3339. What [`import_csv`] reads
/// back; used by the demo and the import benchmark.
pub fn write_csv(out: impl Write, object: ObjectType, records: &[Record]) -> Result<()> {
    let mut properties: Vec<&str> = records
        .iter()
        .flat_map(|r| r.properties.keys().map(String::as_str))
        .filter(|p| *p != ID_PROPERTY)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    properties.sort_by_key(|p| {
        hubspot_headers(object)
            .iter()
            .position(|(_, q)| q == p)
            .unwrap_or(usize::MAX)
    });
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec![header_for(object, ID_PROPERTY)];
    header.extend(properties.iter().map(|p| header_for(object, p)));
    w.write_record(&header)?;
    for r in records {
        w.write_field(&r.id)?;
        for p in &properties {
            w.write_field(r.get(p).unwrap_or(""))?;
        }
        w.write_record(None::<&[u8]>)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_export_formats() {
        let want = parse_ts("2025-03-04T05:06:00.000Z");
        assert_eq!(parse_date("2025-03-04 05:06"), want);
        assert_eq!(parse_date("2025-03-04T05:06:00Z"), want);
        assert_eq!(parse_date("2025-03-04 05:06:00"), want);
        assert_eq!(parse_date("1741064760000"), want);
        assert_eq!(
            parse_date("2025-03-04"),
            parse_ts("2025-03-04T00:00:00.000Z")
        );
        assert_eq!(parse_date("04/03/2025"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn rows_encode_exactly_as_records_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        let csv = "Record ID,First Name,Email,Create Date,Last Modified Date,City\n\
                   7,\"Zoë \"\"Z\"\"\",z@x.de,2024-01-02,2025-03-04 05:06,\n";
        std::fs::write(&file, csv).unwrap();
        let mut opts = ImportOptions::new(ObjectType::Contacts, "crm");
        opts.inverse_id = Some(("email".into(), "erp".into()));
        let input = File::open(&file).unwrap();
        let mut rows =
            RowReader::new(&file, input, &opts, DateTime::default(), Pass::Check).unwrap();
        let row = rows.next_record().unwrap().unwrap();

        let at = parse_ts("2025-03-04T05:06:00Z").unwrap();
        let version = |v: &str| {
            vec![crate::domain::model::PropertyVersion {
                value: Some(v.into()),
                timestamp: at,
                source_type: "IMPORT".into(),
                source_id: Some("crm".into()),
            }]
        };
        let mut record = Record {
            object_type: ObjectType::Contacts,
            id: "7".into(),
            properties: BTreeMap::new(),
            history: BTreeMap::new(),
            created_at: parse_ts("2024-01-02T00:00:00Z"),
            updated_at: Some(at),
            archived: false,
        };
        for (k, v) in [
            ("firstname", "Zoë \"Z\""),
            ("email", "z@x.de"),
            ("createdate", "2024-01-02T00:00:00.000Z"),
            ("lastmodifieddate", "2025-03-04T05:06:00.000Z"),
            ("hs_object_id", "7"),
        ] {
            record.properties.insert(k.into(), Some(v.into()));
        }
        record
            .history
            .insert("firstname".into(), version("Zoë \"Z\""));
        record.history.insert("email".into(), version("z@x.de"));
        assert_eq!(row.encoded, EncodedRecord::new(&record).unwrap());
        assert_eq!(row.inverse_id.as_deref(), Some("z@x.de"));
        assert!(rows.next_record().unwrap().is_none());
    }

    #[test]
    fn overrides_are_header_equals_property() {
        let mut o = ImportOptions::new(ObjectType::Contacts, "crm");
        o.add_override("Country/Region=country").unwrap();
        o.add_override("Notes=").unwrap();
        assert_eq!(o.overrides["Country/Region"], "country");
        assert_eq!(o.overrides["Notes"], "");
        assert!(o.add_override("no equals sign").is_err());
        assert!(o.add_override("=email").is_err());
    }
}
