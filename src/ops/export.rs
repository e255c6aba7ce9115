//! The decision log export: one row per decision, in CSV or JSON Lines, with the same columns
//! in both (CSV carries the nested parts as JSON text). For an executed merge a row also carries
//! the CRM calls the journal made, the ids merged away and the new id. Read-only; it must not
//! lose a column between formats, and tokens never reach it (the workspace holds none).
//!
//! Exported values are record values, so untrusted: a CSV text cell never starts a spreadsheet
//! formula (one starting with `=`, `+`, `-`, `@`, a tab, CR or LF gets a leading `'`, which
//! [`read_csv`] takes off again), JSON Lines escape what a terminal must not see (losslessly),
//! and [`for_terminal`] makes a CSV export printed to a terminal safe to look at.

use std::borrow::Cow;
use std::io::Write;

use anyhow::{Context, Result, bail};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::reports;

/// The columns, in order. Stable: new columns are only ever appended.
pub const COLUMNS: &[&str] = &[
    "decision_id",
    "decided_at",
    "steward",
    "action",
    "cluster_id",
    "object_type",
    "cluster_status",
    "members",
    "excluded",
    "primary_id",
    "field_choices",
    "note",
    "undoes",
    "job_id",
    "job_status",
    "merged_ids",
    "survivor_id",
    "crm_calls",
    "job_error",
];

/// Columns whose values are JSON (arrays or objects): nested in JSONL, JSON text in CSV.
const NESTED: &[&str] = &[
    "members",
    "excluded",
    "field_choices",
    "merged_ids",
    "crm_calls",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" | "json" => Ok(Format::Jsonl),
            other => Err(format!("unknown format {other:?} (expected csv or jsonl)")),
        }
    }
}

impl Format {
    /// The format asked for, else the one the output file's name says (`.jsonl`, `.json`),
    /// else CSV: `--out decisions.jsonl` writes JSON Lines, not CSV under that name.
    pub fn for_output(asked: Option<Format>, out: Option<&std::path::Path>) -> Format {
        asked.unwrap_or_else(|| {
            let ext = out
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            match ext.as_deref() {
                Some("jsonl" | "json" | "ndjson") => Format::Jsonl,
                _ => Format::Csv,
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Decisions made at or after this time (RFC 3339 or a date `YYYY-MM-DD`).
    pub since: Option<String>,
    /// Only decisions of clusters in this status (pending, approved, merged, failed, ...).
    pub status: Option<String>,
}

/// The statuses a cluster can be in, for filters.
const STATUSES: &[&str] = &[
    "pending",
    "approved",
    "rejected",
    "deferred",
    "merging",
    "merged",
    "failed",
    "stale",
    "needs_attention",
];

fn check_status(status: Option<&str>) -> Result<()> {
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        bail!("unknown status {s:?} (one of {})", STATUSES.join(", "));
    }
    Ok(())
}

/// One exported decision (or cluster member) as an ordered JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Row(pub serde_json::Map<String, Value>);

fn json_col(text: Option<String>, default: Value) -> Result<Value> {
    match text {
        Some(t) if !t.is_empty() => Ok(serde_json::from_str(&t)?),
        _ => Ok(default),
    }
}

/// Read the decision log with its merge outcomes.
pub fn rows(conn: &Connection, filter: &Filter) -> Result<Vec<Row>> {
    check_status(filter.status.as_deref())?;
    let since = match &filter.since {
        None => None,
        Some(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {
            Some(format!("{s}T00:00:00.000Z"))
        }
        Some(s) => Some(
            crate::domain::model::parse_ts(s)
                .map(|t| crate::domain::model::format_ts(&t))
                .with_context(|| format!("--since {s:?} is neither a date nor an RFC 3339 time"))?,
        ),
    };
    let mut out = Vec::new();
    for d in reports::decision_log(conn, since.as_deref(), filter.status.as_deref())? {
        let reports::LoggedDecision {
            id,
            decided_at: at,
            steward,
            action,
            cluster_id: cluster,
            object_type: object,
            cluster_status: cstatus,
            members,
            excluded,
            primary_id: primary,
            field_choices: choices,
            note,
            undoes,
            job_id,
            job_status,
            survivor_id: survivor,
            job_error,
        } = d;
        let (calls, merged_ids) = match job_id {
            Some(j) => crm_calls(conn, j)?,
            None => (Value::Array(vec![]), Value::Array(vec![])),
        };
        let mut m = serde_json::Map::new();
        m.insert("decision_id".into(), id.into());
        m.insert("decided_at".into(), at.into());
        m.insert("steward".into(), steward.into());
        m.insert("action".into(), action.into());
        m.insert("cluster_id".into(), cluster.into());
        m.insert("object_type".into(), object.into());
        m.insert("cluster_status".into(), cstatus.into());
        m.insert(
            "members".into(),
            json_col(Some(members), Value::Array(vec![]))?,
        );
        m.insert(
            "excluded".into(),
            json_col(Some(excluded), Value::Array(vec![]))?,
        );
        m.insert(
            "primary_id".into(),
            primary.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert(
            "field_choices".into(),
            json_col(Some(choices), Value::Object(Default::default()))?,
        );
        m.insert("note".into(), note.into());
        m.insert(
            "undoes".into(),
            undoes.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert(
            "job_id".into(),
            job_id.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert(
            "job_status".into(),
            job_status.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert("merged_ids".into(), merged_ids);
        m.insert(
            "survivor_id".into(),
            survivor
                .filter(|_| m.get("job_status").and_then(Value::as_str) == Some("merged"))
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        m.insert("crm_calls".into(), calls);
        m.insert(
            "job_error".into(),
            job_error.map(Value::from).unwrap_or(Value::Null),
        );
        out.push(Row(m));
    }
    Ok(out)
}

/// The columns of the cluster export, one row per member record. It starts with
/// `cluster_id,record_id`, the plain shape `dupdesk match --clusters` reads, so clusters can
/// be compared with another matcher's or carried to another workspace.
pub const CLUSTER_COLUMNS: &[&str] = &[
    "cluster_id",
    "record_id",
    "object_type",
    "status",
    "score",
    "weakest_link",
    "size",
    "flags",
    "matcher",
];

/// Which clusters to export.
#[derive(Debug, Clone, Default)]
pub struct ClusterFilter {
    /// Only clusters in this status; by default every status but `stale` (superseded).
    pub status: Option<String>,
    pub object: Option<crate::domain::model::ObjectType>,
}

/// The candidate clusters with their member records, in cluster id order, members by record
/// id.
pub fn cluster_rows(conn: &Connection, filter: &ClusterFilter) -> Result<Vec<Row>> {
    check_status(filter.status.as_deref())?;
    Ok(
        reports::cluster_members(conn, filter.status.as_deref(), filter.object)?
            .into_iter()
            .map(|c| {
                let mut m = serde_json::Map::new();
                m.insert("cluster_id".into(), c.cluster_id.into());
                m.insert("record_id".into(), c.record_id.into());
                m.insert("object_type".into(), c.object_type.into());
                m.insert("status".into(), c.status.into());
                m.insert("score".into(), c.score.into());
                m.insert("weakest_link".into(), c.weakest.into());
                m.insert("size".into(), c.size.into());
                m.insert("flags".into(), c.flags.into());
                m.insert("matcher".into(), c.matcher.into());
                Row(m)
            })
            .collect(),
    )
}

/// The CRM calls of a job as the journal recorded them, and the ids it merged away.
fn crm_calls(conn: &Connection, job: i64) -> Result<(Value, Value)> {
    let steps = crate::store::journal::steps(conn, job)?;
    let mut merged = Vec::new();
    let calls = steps
        .iter()
        .map(|s| {
            if let crate::store::journal::StepRequest::Merge { loser } = &s.request
                && s.state == crate::store::clusters::StepState::Done
            {
                merged.push(Value::from(loser.clone()));
            }
            serde_json::json!({
                "seq": s.seq,
                "kind": s.kind,
                "state": s.state,
                "request": s.request,
                "response_id": s.response_id,
                "attempts": s.attempts,
                "last_error": s.last_error,
            })
        })
        .collect();
    Ok((Value::Array(calls), Value::Array(merged)))
}

/// Characters that make a spreadsheet read a cell as a formula (or, for tab, CR and LF, that
/// some spreadsheets skip before looking for one).
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r', '\n'];

/// Whether a text cell needs the leading `'`: it starts a formula, or it starts with `'`
/// before what [`unguard_cell`] would take for a guard (so that guarding can be undone).
fn needs_guard(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if FORMULA_STARTS.contains(&c) => true,
        Some('\'') => chars
            .next()
            .is_some_and(|c| c == '\'' || FORMULA_STARTS.contains(&c)),
        _ => false,
    }
}

/// A text cell as it is written to CSV: with a leading `'` when it would start a spreadsheet
/// formula (`=HYPERLINK(...)`, `+1-2`, `@SUM`), the mitigation OWASP recommends.
pub fn guard_cell(s: &str) -> Cow<'_, str> {
    if needs_guard(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The text of a cell written by [`guard_cell`]; any other text is returned as it is.
pub fn unguard_cell(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if needs_guard(rest) => rest,
        _ => s,
    }
}

/// A CSV export as it may be shown on a terminal: each line through the terminal sanitizer
/// (the line breaks between records stay, one inside a quoted cell is shown as `\n`). Not
/// for files: the data itself is written unchanged there.
pub fn for_terminal(csv: &str) -> String {
    let mut out = String::with_capacity(csv.len());
    for line in csv.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix("\r\n") {
            Some(t) => (t, "\n"),
            None => match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            },
        };
        out.push_str(&crate::domain::sanitize::for_terminal(text));
        out.push_str(end);
    }
    out
}

/// Write decision rows in a format. Returns the number written.
pub fn write(rows: &[Row], format: Format, out: &mut dyn Write) -> Result<usize> {
    write_columns(rows, COLUMNS, format, out)
}

/// Write rows with these columns, in this order (JSON Lines keeps each row's own order).
pub fn write_columns(
    rows: &[Row],
    columns: &[&str],
    format: Format,
    out: &mut dyn Write,
) -> Result<usize> {
    match format {
        Format::Jsonl => {
            for r in rows {
                crate::domain::sanitize::json_line(
                    &mut *out,
                    &InColumnOrder { row: &r.0, columns },
                )?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(columns)?;
            for r in rows {
                let fields: Vec<String> = columns
                    .iter()
                    .map(|c| match r.0.get(*c) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => guard_cell(s).into_owned(),
                        // Numbers, booleans and JSON text (`[`, `{`) start no formula; a
                        // negative number would, and none of the columns holds one.
                        Some(v) => v.to_string(),
                    })
                    .collect();
                w.write_record(&fields)?;
            }
            w.flush()?;
        }
    }
    Ok(rows.len())
}

/// A row as a JSON object whose keys come in the order of the export's columns (the order the
/// README documents and the CSV has), not alphabetically; keys of no column follow.
struct InColumnOrder<'a> {
    row: &'a serde_json::Map<String, Value>,
    columns: &'a [&'a str],
}

impl serde::Serialize for InColumnOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.row.len()))?;
        for column in self.columns {
            if let Some(v) = self.row.get(*column) {
                map.serialize_entry(column, v)?;
            }
        }
        for (k, v) in self.row {
            if !self.columns.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Read a CSV export back into rows (nested columns parsed from their JSON text, numbers as
/// numbers), so that a CSV and a JSONL export of the same log compare equal.
pub fn read_csv(input: &mut dyn std::io::Read) -> Result<Vec<Row>> {
    let mut r = csv::Reader::from_reader(input);
    let headers = r.headers()?.clone();
    if headers.iter().collect::<Vec<_>>() != COLUMNS {
        bail!("not a dupdesk decision export: unexpected columns");
    }
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("line {}", i + 2))?;
        let mut m = serde_json::Map::new();
        for (col, val) in COLUMNS.iter().zip(rec.iter()) {
            let v = if val.is_empty() && !NESTED.contains(col) && *col != "note" {
                Value::Null
            } else if NESTED.contains(col) {
                serde_json::from_str(val)
                    .with_context(|| format!("line {}: column {col}", i + 2))?
            } else if matches!(*col, "decision_id" | "cluster_id" | "undoes" | "job_id") {
                Value::from(
                    val.parse::<i64>()
                        .with_context(|| format!("line {}: column {col}", i + 2))?,
                )
            } else {
                Value::from(unguard_cell(val))
            };
            m.insert((*col).to_string(), v);
        }
        out.push(Row(m));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_text_cell_starts_a_formula_and_guarding_is_undone_exactly() {
        for (value, written) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+49 30 123", "'+49 30 123"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\nx", "'\nx"),
            ("'=x", "''=x"),
            ("''", "'''"),
            ("'plain", "'plain"),
            ("'", "'"),
            ("Anna", "Anna"),
            ("", ""),
        ] {
            assert_eq!(guard_cell(value), written, "{value:?}");
            assert_eq!(unguard_cell(&guard_cell(value)), value, "{value:?}");
            assert!(
                !guard_cell(value).starts_with(FORMULA_STARTS),
                "{value:?} starts a formula"
            );
        }
    }

    #[test]
    fn a_csv_export_round_trips_and_starts_no_formula() {
        let mut m = serde_json::Map::new();
        for (i, c) in COLUMNS.iter().enumerate() {
            let v = match *c {
                "decision_id" | "cluster_id" => Value::from(i as i64),
                "undoes" | "job_id" | "primary_id" | "survivor_id" | "job_error" => Value::Null,
                "members" | "excluded" | "merged_ids" | "crm_calls" => {
                    serde_json::json!(["=1+1", "-2"])
                }
                "field_choices" => serde_json::json!({"f": {"value": "=cmd|' /C calc'!A0"}}),
                "note" => Value::from("=cmd|' /C calc'!A0"),
                "steward" => Value::from("@steward"),
                "action" => Value::from("-approve"),
                _ => Value::from("+x\u{1b}[2J"),
            };
            m.insert((*c).to_string(), v);
        }
        let rows = vec![Row(m)];
        let mut csv = Vec::new();
        write(&rows, Format::Csv, &mut csv).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_slice());
        for rec in reader.records() {
            for cell in rec.unwrap().iter() {
                assert!(!cell.starts_with(FORMULA_STARTS), "{cell:?}");
            }
        }
        assert_eq!(read_csv(&mut csv.as_slice()).unwrap(), rows);
        // Printed to a terminal, the escape sequence is shown, not sent.
        let shown = for_terminal(&String::from_utf8(csv).unwrap());
        assert!(
            !shown.contains('\u{1b}') && shown.contains("+x\\e[2J"),
            "{shown}"
        );
        assert!(shown.ends_with('\n') && !shown.contains('\r'));
    }
}
