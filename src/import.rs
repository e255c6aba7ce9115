//! Records from a CRM's CSV export into the workspace. Columns are mapped to properties by
//! the built-in HubSpot export headers ("Record ID", "First Name", "Country/Region", ...),
//! internal property names used as headers, the `[import.columns]` configuration table and
//! explicit overrides, in rising order of precedence. One column must be the record id.
//!
//! A file is imported whole or not at all: rows are read, checked and written inside one
//! transaction that is only committed after the last row, so a bad row anywhere (bad quoting,
//! a wrong field count, a missing or repeated id, an unreadable date, invalid UTF-8) is
//! reported with its file, line and column and leaves the workspace as it was. Streaming the
//! rows into the transaction, rather than collecting them first, keeps memory flat for large
//! exports, and reading them through [`crate::input`] keeps it flat for a file that is not one:
//! no record may run over 4 MiB, record ids must pass [`check_id`], and errors quote values
//! short. This module knows nothing about the command line or the terminal.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rusqlite::Connection;

use crate::input::{self, BadId, CsvRecords, RecordError, check_id, quote};
use crate::model::{ObjectType, Record, format_ts, parse_ts};
use crate::store::Store;
use crate::store::history::{self, VersionRef};
use crate::store::mapping::{self, Link, Observed};
use crate::store::records::{self, EncodedRecord, UpsertStats};

/// The history `sourceType` of every value an import writes; its `sourceId` is the system.
pub const IMPORT_SOURCE_TYPE: &str = "IMPORT";

/// The property that holds the record id.
const ID_PROPERTY: &str = "hs_object_id";

/// Records are written in batches of this many, inside the one transaction.
const BATCH: usize = 2_000;

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
}

impl ImportOptions {
    pub fn new(object: ObjectType, system: impl Into<String>) -> ImportOptions {
        ImportOptions {
            object,
            system: system.into(),
            config_columns: BTreeMap::new(),
            overrides: BTreeMap::new(),
            inverse_id: None,
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

fn looks_like_property_name(h: &str) -> bool {
    !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
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
        err(
            None,
            format!(
                "no id column (expected \"Record ID\" or {ID_PROPERTY}; name one with --map \"HEADER={ID_PROPERTY}\")"
            ),
        )
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

/// Reads a file row by row into records, checking as it goes.
struct RowReader<R: Read> {
    file: PathBuf,
    reader: CsvRecords<R>,
    layout: Layout,
    opts: ImportOptions,
    /// Used as the time of values on rows with no dates, so re-importing an unchanged file
    /// writes the same history.
    fallback_time: DateTime<Utc>,
    /// id → line of its first row.
    ids: HashMap<String, u64>,
    row: csv::StringRecord,
    /// Byte offset and line of the last record read, for the unclosed-quote check at the end.
    last_start: Option<(u64, u64)>,
}

impl<R: Read> RowReader<R> {
    fn new(
        file: &Path,
        input: R,
        opts: &ImportOptions,
        fallback_time: DateTime<Utc>,
    ) -> Result<Self, CsvError> {
        let mut reader = CsvRecords::new(
            csv::ReaderBuilder::new().has_headers(true).flexible(false),
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

    /// The next row, checked and encoded; `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<ImportedRow>, CsvError> {
        match self.reader.read(&mut self.row) {
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
        if let Some(first) = self.ids.insert(id.clone(), line) {
            return Err(self.error(
                line,
                self.layout.id,
                format!("id {} appears again (first on line {first})", quote(&id)),
            ));
        }
        let created = self.date(line, self.layout.created)?;
        let updated = self.date(line, self.layout.modified)?;
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

/// Import a CSV file into the workspace, all or nothing. `progress` is called now and then
/// with the bytes read so far.
///
/// Two threads share the work: a reading thread checks rows and builds and encodes records,
/// the store's thread writes them inside one transaction as batches arrive. A bad row ends
/// the stream with its error, and the store thread then drops the transaction, which rolls
/// everything back. Written batches travel back to the reader to be freed, so the writer,
/// the slower of the two, does nothing but write.
pub fn import_csv(
    store: &Store,
    file: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport> {
    let handle = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let fallback_time = handle
        .metadata()
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_default();
    let mut rows = RowReader::new(file, handle, opts, fallback_time)?;
    let mut report = ImportReport::default();
    for (h, p) in rows.layout.headers.iter().zip(&rows.layout.properties) {
        match p {
            Some(p) => report.columns.push((h.clone(), p.clone())),
            None => report.ignored.push(h.clone()),
        }
    }

    let (batches, incoming) = mpsc::sync_channel::<Batch>(4);
    let (recycle, written) = mpsc::channel::<Vec<ImportedRow>>();
    let writer = {
        let opts = opts.clone();
        move |conn: &mut Connection| write_batches(conn, &opts, incoming, recycle)
    };
    let (written_report, read_result) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> Result<(), CsvError> {
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
                    progress(rows.bytes_read());
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
        });
        let written = store.call_blocking(writer);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(CsvError::internal(file, "the reading thread panicked")));
        (written, read)
    });
    read_result?;
    let written_report = written_report?;
    report.rows = written_report.rows;
    report.stats = written_report.stats;
    report.mappings_new = written_report.mappings_new;
    report.mappings_changed = written_report.mappings_changed;
    report.shared_targets = written_report.shared_targets;
    Ok(report)
}

/// What the reading thread sends the writing one. Only `End` commits: a reader that stops
/// without it (a panic) leaves the transaction to roll back.
enum Batch {
    Records(Vec<ImportedRow>),
    Failed(CsvError),
    End,
}

/// The store-thread half of [`import_csv`]: one transaction around every batch, committed
/// only when the reader reports a clean end of file.
fn write_batches(
    conn: &mut Connection,
    opts: &ImportOptions,
    incoming: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Vec<ImportedRow>>,
) -> Result<ImportReport> {
    crate::store::with_large_cache(conn, |conn| {
        write_in_transaction(conn, opts, incoming, recycle)
    })
}

fn write_in_transaction(
    conn: &mut Connection,
    opts: &ImportOptions,
    incoming: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Vec<ImportedRow>>,
) -> Result<ImportReport> {
    let now = crate::store::now_ts();
    let mut report = ImportReport::default();
    let mut newest: Option<DateTime<Utc>> = None;
    let tx = conn.transaction()?;
    let mut ended = false;
    for message in incoming {
        let batch = match message {
            Batch::Records(batch) => batch,
            Batch::Failed(e) => return Err(e.into()),
            Batch::End => {
                ended = true;
                break;
            }
        };
        report.rows += batch.len() as u64;
        let encoded: Vec<&EncodedRecord> = batch.iter().map(|r| &r.encoded).collect();
        report
            .stats
            .add(records::upsert_encoded(&tx, &opts.system, &encoded, &now)?);
        newest = batch
            .iter()
            .map(|r| r.encoded.updated_at)
            .fold(newest, Option::max);
        if let Some((_, other)) = &opts.inverse_id {
            for row in &batch {
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
                match mapping::observe(&tx, &link, "import", &now)? {
                    Observed::New => report.mappings_new += 1,
                    Observed::Changed => report.mappings_changed += 1,
                    Observed::Unchanged => {}
                }
            }
        }
        let _ = recycle.send(batch);
    }
    if !ended {
        anyhow::bail!("the CSV reader stopped before the end of the file");
    }
    if opts.inverse_id.is_some() {
        // One pass over the type's mappings: a file can move rows off ids as well as onto
        // them, and a whole-file import is where a workspace's shares are first seen.
        report.shared_targets = mapping::check_all_shared_targets(&tx, opts.object, &now)?;
    }
    tx.execute(
        "INSERT INTO sync_state (source, object_type, watermark, last_run_at, last_count, total_count)
         VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COUNT(*) FROM records WHERE object_type = ?2 AND archived = 0 AND merged_into IS NULL))
         ON CONFLICT (source, object_type) DO UPDATE SET
            watermark = coalesce(max(excluded.watermark, sync_state.watermark), excluded.watermark, sync_state.watermark),
            previous_total = sync_state.total_count,
            last_run_at = excluded.last_run_at, last_count = excluded.last_count,
            total_count = excluded.total_count",
        rusqlite::params![
            format!("csv:{}", opts.system),
            opts.object.as_str(),
            newest.as_ref().map(format_ts),
            now,
            (report.stats.inserted + report.stats.updated) as i64
        ],
    )?;
    tx.commit()?;
    Ok(report)
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
        let mut rows = RowReader::new(&file, input, &opts, DateTime::default()).unwrap();
        let row = rows.next_record().unwrap().unwrap();

        let at = parse_ts("2025-03-04T05:06:00Z").unwrap();
        let version = |v: &str| {
            vec![crate::model::PropertyVersion {
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
