//! The compact form of the records the matcher works on: per field, each record holds a `u32`
//! into a dictionary of distinct normalized values, so a million records cost a few bytes per
//! field, equal values compare by integer, and each distinct value is normalized once. It must
//! not hold the records themselves: callers may stream records in and drop them.

use std::borrow::Borrow;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::compare::{self, MISSING};
use super::diagnose::FieldReads;
use super::normalize::{FieldValue, NormalizeOptions, read_field};
use super::schema::{FieldKind, MatchConfig};
use crate::domain::model::Record;

/// One compared field over all records.
#[derive(Debug, Clone)]
pub struct Column {
    pub property: String,
    pub kind: FieldKind,
    /// Per record: 0 when the value is missing, else an index into `dict`.
    pub values: Vec<u32>,
    /// Distinct normalized values; entry 0 is an unused placeholder.
    pub dict: Vec<Box<str>>,
    /// Per distinct value: what its comparator needs besides the text ([`compare::aux_of`]).
    pub aux: Vec<u64>,
    /// Per distinct value: how many records hold it.
    pub freq: Vec<u32>,
    /// Records with a value.
    pub present: u32,
}

impl Column {
    fn new(property: &str, kind: FieldKind) -> Column {
        Column {
            property: property.to_string(),
            kind,
            values: Vec::new(),
            dict: vec![Box::from("")],
            aux: vec![0],
            freq: vec![0],
            present: 0,
        }
    }

    /// The normalized value of record `i`, if any.
    pub fn value(&self, i: usize) -> Option<&str> {
        match self.values[i] {
            0 => None,
            v => Some(&self.dict[v as usize]),
        }
    }

    /// The agreement level of records `a` and `b` on this field.
    #[inline]
    pub fn level(&self, a: usize, b: usize) -> u8 {
        let (x, y) = (self.values[a], self.values[b]);
        if x == 0 || y == 0 {
            MISSING
        } else if x == y {
            compare::equal_level(self.kind, self.aux[x as usize])
        } else {
            let (x, y) = (x as usize, y as usize);
            compare::compare(
                self.kind,
                &self.dict[x],
                self.aux[x],
                &self.dict[y],
                self.aux[y],
            )
        }
    }
}

/// The records as the matcher sees them.
#[derive(Debug, Clone)]
pub struct Table {
    /// Record ids, by record index.
    pub ids: Vec<String>,
    pub columns: Vec<Column>,
    /// Per field: how its values read (absent, missing, unparseable), for `match`'s warnings.
    pub reads: Vec<FieldReads>,
}

/// A record's property values by name, however they are held.
trait Properties {
    fn property(&self, name: &str) -> Option<&str>;
}

impl Properties for Record {
    fn property(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

impl Properties for FxHashMap<&str, Option<&str>> {
    fn property(&self, name: &str) -> Option<&str> {
        self.get(name).copied().flatten()
    }
}

impl Properties for FxHashMap<String, Option<String>> {
    fn property(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.as_deref())
    }
}

/// Records are normalized in batches of this many, in parallel, then interned in order.
const BATCH: usize = 16 * 1024;

impl Table {
    /// Normalize and intern `records`, which may be owned (and are then dropped batch by
    /// batch) or borrowed.
    pub fn build<I, R>(cfg: &MatchConfig, records: I) -> Table
    where
        I: IntoIterator<Item = R>,
        R: Borrow<Record> + Send,
    {
        let built: Result<Table, std::convert::Infallible> =
            Self::build_with(cfg, records, |r: R, normalized| {
                let r = r.borrow();
                Ok((r.id.clone(), normalized(r)))
            });
        match built {
            Ok(table) => table,
            Err(never) => match never {},
        }
    }

    /// Normalize and intern stored rows: a record id and its properties as the workspace
    /// stores them (a JSON object of strings or nulls). The JSON is parsed on the workers, and
    /// only the compared properties are read out of it, so a million rows stream through
    /// without their records ever being built.
    pub fn build_from_json<I>(cfg: &MatchConfig, rows: I) -> Result<Table, serde_json::Error>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::build_with(cfg, rows, |(id, json): (String, String), normalized| {
            // Borrowing the values avoids an allocation per property; a value with an escape
            // cannot be borrowed, and such a row is parsed again into owned strings.
            let values = match serde_json::from_str::<FxHashMap<&str, Option<&str>>>(&json) {
                Ok(map) => normalized(&map),
                Err(_) => {
                    let map: FxHashMap<String, Option<String>> = serde_json::from_str(&json)?;
                    normalized(&map)
                }
            };
            Ok((id, values))
        })
    }

    /// The one way records become a table: items are taken in batches, each item turned into
    /// its id and normalized values on the workers (`read` gets a function that normalizes
    /// every field, given a property lookup), then interned in input order.
    fn build_with<I, T, E, F>(cfg: &MatchConfig, items: I, read: F) -> Result<Table, E>
    where
        I: IntoIterator<Item = T>,
        T: Send,
        E: Send,
        F: Fn(
                T,
                &dyn Fn(&dyn Properties) -> Vec<FieldValue>,
            ) -> Result<(String, Vec<FieldValue>), E>
            + Sync,
    {
        let opts = NormalizeOptions::new(&cfg.settings);
        let normalized = |r: &dyn Properties| -> Vec<FieldValue> {
            cfg.fields
                .iter()
                .map(|f| read_field(f, &|p| r.property(p), &opts))
                .collect()
        };
        let mut columns: Vec<Column> = cfg
            .fields
            .iter()
            .map(|f| Column::new(&f.property, f.kind))
            .collect();
        let mut interners: Vec<FxHashMap<Box<str>, u32>> =
            vec![FxHashMap::default(); columns.len()];
        let mut reads = vec![FieldReads::default(); columns.len()];
        let mut ids = Vec::new();
        let mut iter = items.into_iter();
        loop {
            let batch: Vec<T> = iter.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let batch: Vec<(String, Vec<FieldValue>)> = batch
                .into_par_iter()
                .map(|item| read(item, &normalized))
                .collect::<Result<_, E>>()?;
            for (id, vals) in batch {
                ids.push(id);
                for (((col, interner), read), v) in columns
                    .iter_mut()
                    .zip(&mut interners)
                    .zip(&mut reads)
                    .zip(vals)
                {
                    read.note(&v);
                    let idx = match v.into_value() {
                        None => 0,
                        Some(s) => {
                            col.present += 1;
                            // Most values repeat: look up without allocating first.
                            let idx = match interner.get(s.as_str()) {
                                Some(&idx) => idx,
                                None => {
                                    let idx = col.dict.len() as u32;
                                    interner.insert(Box::from(s.as_str()), idx);
                                    col.aux.push(compare::aux_of(col.kind, &s));
                                    col.dict.push(s.into_boxed_str());
                                    col.freq.push(0);
                                    idx
                                }
                            };
                            col.freq[idx as usize] += 1;
                            idx
                        }
                    };
                    col.values.push(idx);
                }
            }
        }
        for c in &mut columns {
            c.dict.shrink_to_fit();
            c.values.shrink_to_fit();
        }
        ids.shrink_to_fit();
        Ok(Table {
            ids,
            columns,
            reads,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The comparison vector of records `a` and `b`, four bits per field, field 0 lowest.
    #[inline]
    pub fn pattern(&self, a: usize, b: usize) -> u64 {
        let mut p = 0u64;
        for (f, c) in self.columns.iter().enumerate() {
            p |= u64::from(c.level(a, b)) << (4 * f);
        }
        p
    }
}

/// The level of field `f` in a packed comparison vector.
#[inline]
pub fn level_of(pattern: u64, f: usize) -> u8 {
    ((pattern >> (4 * f)) & 0xf) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matcher::schema::{FieldSpec, MatcherSettings, ObjectSchemaConfig};
    use crate::domain::model::ObjectType;
    use std::collections::BTreeMap;

    #[test]
    fn equal_normalized_values_share_one_entry() {
        let schema = ObjectSchemaConfig {
            fields: vec![
                FieldSpec {
                    property: "email".into(),
                    kind: FieldKind::Email,
                },
                FieldSpec {
                    property: "firstname".into(),
                    kind: FieldKind::GivenName,
                },
            ],
            blocking: vec![],
        };
        let cfg =
            MatchConfig::from_schema(&MatcherSettings::default(), ObjectType::Contacts, &schema)
                .unwrap();
        let rec = |id: &str, email: &str, first: Option<&str>| {
            let mut properties = BTreeMap::new();
            properties.insert("email".to_string(), Some(email.to_string()));
            properties.insert("firstname".to_string(), first.map(str::to_string));
            Record {
                object_type: ObjectType::Contacts,
                id: id.into(),
                properties,
                history: BTreeMap::new(),
                created_at: None,
                updated_at: None,
                archived: false,
            }
        };
        let records = vec![
            rec("1", "Bob@X.com", Some("Bob")),
            rec("2", "bob@x.com ", Some("Robert")),
            rec("3", "ann@x.com", None),
        ];
        let t = Table::build(&cfg, records);
        assert_eq!(t.ids, vec!["1", "2", "3"]);
        let email = &t.columns[0];
        assert_eq!(email.values[0], email.values[1]);
        assert_eq!(email.freq[email.values[0] as usize], 2);
        assert_eq!(t.columns[1].values[2], 0);
        assert_eq!(t.columns[1].present, 2);
        let p = t.pattern(0, 1);
        assert_eq!(level_of(p, 0), compare::exact_level(FieldKind::Email));
        assert_eq!(
            compare::level_name(FieldKind::GivenName, level_of(p, 1)),
            "nickname"
        );
        assert_eq!(level_of(t.pattern(0, 2), 1), MISSING);
    }

    /// Stored rows build the same table as the records they were stored from, whether a
    /// value borrows from the JSON or needs unescaping, and an empty string is no value.
    #[test]
    fn stored_json_builds_the_same_table_as_records() {
        let field = |property: &str, kind| FieldSpec {
            property: property.into(),
            kind,
        };
        let schema = ObjectSchemaConfig {
            fields: vec![
                field("firstname", FieldKind::GivenName),
                field("lastname", FieldKind::Surname),
                field("email", FieldKind::Email),
                field("city", FieldKind::City),
            ],
            blocking: vec![],
        };
        let cfg =
            MatchConfig::from_schema(&MatcherSettings::default(), ObjectType::Contacts, &schema)
                .unwrap();
        let rec = |id: &str, props: &[(&str, Option<&str>)]| Record {
            object_type: ObjectType::Contacts,
            id: id.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        };
        let records = vec![
            rec(
                "1",
                &[("firstname", Some("Bob")), ("email", Some("bob@x.com"))],
            ),
            rec(
                "2",
                &[
                    ("firstname", Some("Robert \"Bob\"")),
                    ("lastname", Some("O\\Neil\u{7}")),
                ],
            ),
            rec(
                "3",
                &[
                    ("firstname", Some("")),
                    ("email", None),
                    ("city", Some("Köln")),
                ],
            ),
            rec("4", &[]),
        ];
        let rows: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.id.clone(), serde_json::to_string(&r.properties).unwrap()))
            .collect();
        assert!(rows[1].1.contains("\\\""), "{}", rows[1].1);
        let from_records = Table::build(&cfg, &records);
        let from_json = Table::build_from_json(&cfg, rows).unwrap();
        assert_eq!(from_json.ids, from_records.ids);
        for (a, b) in from_json.columns.iter().zip(&from_records.columns) {
            assert_eq!(
                (&a.values, &a.dict, a.present),
                (&b.values, &b.dict, b.present)
            );
        }
        assert_eq!(from_json.columns[0].value(2), None);
        assert_eq!(from_json.columns[3].value(2), Some("koln"));

        let bad = Table::build_from_json(&cfg, [("9".to_string(), "{\"email\": 3}".to_string())]);
        assert!(bad.is_err());
    }
}
