//! The sandbox CRM's own storage and record semantics: objects kept as one JSON row each in a
//! small SQLite database (a file, so the data survives restarts, or memory), ids from a counter,
//! redirects from merged-away ids, the merge log, the portal's custom property definitions, and
//! the rules of create, update and merge exactly as HubSpot applies them: every write passes
//! the value rules of [`super::properties`] and HubSpot's uniqueness rules (a contact's email, a
//! `hasUniqueValue` property) before anything is stored, and a batch is refused whole. Seeds
//! are loaded without any of these checks, as a real portal's old data would be. It knows
//! nothing of HTTP; it must never touch a dupdesk workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::properties::{self, PORTAL_ID, Problem};
use super::seed::SeedData;
use crate::crm::hubspot::wire::{Property, PropertyCreate, SimplePublicObject, ValueWithTimestamp};
use crate::domain::model::{ObjectType, Record, format_ts};

/// `sourceType` of a value written through the API. A private app's writes show as
/// INTEGRATION in HubSpot's property history.
pub const API_SOURCE_TYPE: &str = "INTEGRATION";
/// `sourceId` of values written through the sandbox's API, standing for the private app.
pub const API_SOURCE_ID: &str = "sandbox-private-app";
/// `sourceType` of the versions a merge writes itself (ids, and a primary value that has to be
/// re-asserted over a newer value from the absorbed record).
pub const MERGE_SOURCE_TYPE: &str = "MERGE";
/// `sourceType` given to seeded values that came without a history.
pub const SEED_SOURCE_TYPE: &str = "IMPORT";

/// HubSpot refuses to merge two records that were included in a combined total of this many
/// merges already (its knowledge base: "a combined total of 250+ merges").
pub const MAX_MERGES: u32 = 250;

/// Returned on every read whether asked for or not, as HubSpot does.
pub fn default_properties(t: ObjectType) -> &'static [&'static str] {
    match t {
        ObjectType::Contacts => &[
            "createdate",
            "email",
            "firstname",
            "lastname",
            "lastmodifieddate",
            "hs_object_id",
        ],
        ObjectType::Companies => &[
            "createdate",
            "domain",
            "name",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
    }
}

/// One object as stored: current values, history newest first, and how many merges it took
/// part in (HubSpot's limit applies to that count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    pub properties: BTreeMap<String, Option<String>>,
    pub history: BTreeMap<String, Vec<ValueWithTimestamp>>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub merges: u32,
    /// When it was archived (HubSpot's `archivedAt`); an archived object is absent from
    /// search, normal reads and listings, and only `archived=true` reads see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
}

impl StoredObject {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }

    /// Set a value and put a version on top of its history.
    fn set(&mut self, name: &str, value: String, ts: &str, source_type: &str, source_id: &str) {
        self.history.entry(name.to_string()).or_default().insert(
            0,
            ValueWithTimestamp {
                value: value.clone(),
                timestamp: ts.to_string(),
                source_type: source_type.to_string(),
                source_id: Some(source_id.to_string()),
                source_label: None,
                updated_by_user_id: None,
            },
        );
        self.properties.insert(name.to_string(), Some(value));
    }

    /// The wire form: `properties` limited to the defaults plus `wanted` (a wanted property
    /// the record lacks comes back as null, as HubSpot sends it), and the history of the
    /// properties in `with_history`, if any were asked for.
    pub fn to_wire(
        &self,
        t: ObjectType,
        id: i64,
        wanted: &[String],
        with_history: &[String],
        known: &BTreeSet<String>,
    ) -> SimplePublicObject {
        let mut properties = BTreeMap::new();
        let names = default_properties(t)
            .iter()
            .copied()
            .chain(wanted.iter().map(String::as_str));
        for name in names {
            if known.contains(name) || self.properties.contains_key(name) {
                properties.insert(
                    name.to_string(),
                    self.properties.get(name).cloned().flatten(),
                );
            }
        }
        let properties_with_history = (!with_history.is_empty()).then(|| {
            with_history
                .iter()
                .filter(|n| known.contains(n.as_str()) || self.history.contains_key(n.as_str()))
                .map(|n| (n.clone(), self.history.get(n).cloned().unwrap_or_default()))
                .collect()
        });
        SimplePublicObject {
            id: id.to_string(),
            properties,
            properties_with_history,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            archived: self.archived_at.is_some(),
            archived_at: self.archived_at.clone(),
        }
    }
}

/// One merge the sandbox applied: what was asked, what the ids resolved to, what came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeLogEntry {
    /// Position in the log, from 1.
    pub seq: i64,
    pub object_type: ObjectType,
    pub primary_object_id: String,
    pub object_id_to_merge: String,
    /// The live records the asked ids resolved to (they differ from the asked ids when those
    /// were merged away before).
    pub resolved_primary_id: String,
    pub resolved_merged_id: String,
    pub new_id: String,
    pub merged_at: String,
}

/// The records a batch update changed (live id and object), and the asked ids it did not find.
pub type BatchUpdated = (Vec<(i64, StoredObject)>, Vec<String>);

/// A page of objects in id order, and the id the next page starts at.
pub type Page<'a> = (Vec<(i64, &'a StoredObject)>, Option<i64>);

/// The SQLite file is the record of truth; `live` mirrors its `objects` table in memory so that
/// reads and searches over thousands of records do not parse JSON on every request. Every write
/// goes to SQLite first and to the mirror once committed.
pub struct SandboxDb {
    conn: Connection,
    live: BTreeMap<ObjectType, BTreeMap<i64, StoredObject>>,
}

fn parse_id(id: &str) -> Option<i64> {
    id.trim().parse::<i64>().ok().filter(|n| *n > 0)
}

impl SandboxDb {
    /// Open the sandbox's database at `path` (created if missing), or in memory.
    pub fn open(path: Option<&Path>) -> Result<SandboxDb> {
        let conn = match path {
            Some(p) => {
                if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating the folder of {}", p.display()))?;
                }
                let conn = Connection::open(p)
                    .with_context(|| format!("opening sandbox data {}", p.display()))?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
                conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (
                 type TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL,
                 PRIMARY KEY (type, id)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS redirects (
                 type TEXT NOT NULL, old_id INTEGER NOT NULL, new_id INTEGER NOT NULL,
                 PRIMARY KEY (type, old_id)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS redirects_new ON redirects (type, new_id);
             CREATE TABLE IF NOT EXISTS custom_properties (
                 type TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (type, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS property_definitions (
                 type TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
                 PRIMARY KEY (type, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS merge_log (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .with_context(|| match path {
            Some(p) => format!("preparing sandbox data {}", p.display()),
            None => "preparing the in-memory sandbox data".to_string(),
        })?;
        let mut live: BTreeMap<ObjectType, BTreeMap<i64, StoredObject>> = BTreeMap::new();
        {
            let mut stmt = conn.prepare("SELECT type, id, body FROM objects")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let (t, id, body): (String, i64, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
                let t: ObjectType = t.parse().map_err(anyhow::Error::msg)?;
                let object = serde_json::from_str(&body)
                    .with_context(|| format!("sandbox data: {t} {id} is unreadable"))?;
                live.entry(t).or_default().insert(id, object);
            }
        }
        Ok(SandboxDb { conn, live })
    }

    fn remember(&mut self, t: ObjectType, id: i64, object: StoredObject) {
        self.live.entry(t).or_default().insert(id, object);
    }

    pub fn is_empty(&self) -> Result<bool> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))?;
        let r: i64 = self
            .conn
            .query_row("SELECT count(*) FROM redirects", [], |r| r.get(0))?;
        Ok(n == 0 && r == 0)
    }

    /// Load seeded records, keeping their ids (which must be numeric, as HubSpot's are).
    pub fn load_seed(&mut self, seed: &SeedData) -> Result<()> {
        seed.check()?;
        let now = format_ts(&Utc::now());
        let tx = self.conn.transaction()?;
        let mut max_id = 0i64;
        let mut loaded = Vec::new();
        {
            let mut insert =
                tx.prepare("INSERT INTO objects (type, id, body) VALUES (?1, ?2, ?3)")?;
            let mut custom =
                tx.prepare("INSERT OR IGNORE INTO custom_properties (type, name) VALUES (?1, ?2)")?;
            for record in seed.records() {
                let t = record.object_type;
                let id = parse_id(&record.id).with_context(|| {
                    format!(
                        "seed {t} id {:?} is not numeric (HubSpot ids are numbers)",
                        record.id
                    )
                })?;
                max_id = max_id.max(id);
                let object = stored_from_record(record, id, &now);
                for name in object.properties.keys() {
                    if !properties::is_standard(t, name) {
                        custom.execute(params![t.as_str(), name])?;
                    }
                }
                insert.execute(params![t.as_str(), id, serde_json::to_string(&object)?])?;
                loaded.push((t, id, object));
            }
        }
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('last_id', ?1)
             ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            params![max_id],
        )?;
        tx.commit()?;
        for (t, id, object) in loaded {
            self.remember(t, id, object);
        }
        Ok(())
    }

    /// Every property name a record of this type may carry.
    pub fn known_properties(&self, t: ObjectType) -> Result<BTreeSet<String>> {
        let mut names: BTreeSet<String> = properties::standard(t)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM custom_properties WHERE type = ?1")?;
        for name in stmt.query_map([t.as_str()], |r| r.get::<_, String>(0))? {
            names.insert(name?);
        }
        Ok(names)
    }

    /// The definitions of every property of a type, by name: the standard table, then the
    /// custom properties (created through the properties API, or brought by seeded records as
    /// custom text properties).
    pub fn definitions(&self, t: ObjectType) -> Result<BTreeMap<String, Property>> {
        let mut defs: BTreeMap<String, Property> = properties::standard(t)
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.name, d.body FROM custom_properties c
             LEFT JOIN property_definitions d ON d.type = c.type AND d.name = c.name
             WHERE c.type = ?1",
        )?;
        let rows = stmt.query_map([t.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        for row in rows {
            let (name, body) = row?;
            let def = match body {
                Some(body) => serde_json::from_str(&body)
                    .with_context(|| format!("sandbox data: {t} property {name} is unreadable"))?,
                None => properties::custom_text(t, &name, &name),
            };
            defs.entry(name).or_insert(def);
        }
        Ok(defs)
    }

    /// `POST /crm/v3/properties/{objectType}`: a new custom property.
    pub fn create_property(
        &mut self,
        t: ObjectType,
        input: PropertyCreate,
        now: DateTime<Utc>,
    ) -> Result<Property, ApiError> {
        let name = input.name.trim().to_string();
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(ApiError::validation(format!(
                "Property name {name:?} is invalid: it must start with a lowercase letter and hold only lowercase letters, digits and underscores"
            )));
        }
        if !matches!(
            input.kind.as_str(),
            "string" | "number" | "date" | "datetime" | "enumeration" | "bool"
        ) {
            return Err(ApiError::validation(format!(
                "Unknown property type {:?} for property {name}",
                input.kind
            )));
        }
        if self.definitions(t)?.contains_key(&name) {
            return Err(ApiError::Exists(format!(
                "A property named '{name}' already exists."
            )));
        }
        let mut options = input.options;
        if input.kind == "bool" && options.is_empty() {
            // HubSpot's bool properties carry these two options; values are checked against them.
            for (i, (value, label)) in [("true", "Yes"), ("false", "No")].into_iter().enumerate() {
                options.push(crate::crm::hubspot::wire::PropertyOption {
                    label: label.to_string(),
                    value: value.to_string(),
                    description: None,
                    display_order: Some(i32::try_from(i).unwrap_or(0)),
                    hidden: false,
                });
            }
        }
        let ts = format_ts(&now);
        let mut def = properties::custom_text(t, &name, &input.label);
        def.kind = input.kind;
        def.field_type = input.field_type;
        def.group_name = input.group_name;
        def.description = input.description.unwrap_or_default();
        def.options = options;
        def.display_order = input.display_order.or(Some(-1));
        def.has_unique_value = input.has_unique_value;
        def.hidden = input.hidden;
        def.form_field = input.form_field;
        def.created_at = Some(ts.clone());
        def.updated_at = Some(ts);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO custom_properties (type, name) VALUES (?1, ?2)",
            params![t.as_str(), name],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO property_definitions (type, name, body) VALUES (?1, ?2, ?3)",
            params![t.as_str(), name, serde_json::to_string(&def)?],
        )?;
        tx.commit()?;
        Ok(def)
    }

    /// The live id an id stands for now: itself, or the record it was merged into.
    pub fn resolve(&self, t: ObjectType, id: &str) -> Result<Option<i64>> {
        let Some(id) = parse_id(id) else {
            return Ok(None);
        };
        if self.get(t, id).is_some() {
            return Ok(Some(id));
        }
        Ok(self
            .conn
            .prepare_cached("SELECT new_id FROM redirects WHERE type = ?1 AND old_id = ?2")?
            .query_row(params![t.as_str(), id], |r| r.get(0))
            .optional()?)
    }

    /// A live (not archived) object by its own id.
    pub fn get(&self, t: ObjectType, id: i64) -> Option<&StoredObject> {
        self.get_any(t, id).filter(|o| o.archived_at.is_none())
    }

    fn get_any(&self, t: ObjectType, id: i64) -> Option<&StoredObject> {
        self.live.get(&t).and_then(|objects| objects.get(&id))
    }

    /// An archived object by its own id (`GET /{id}?archived=true`). HubSpot does not follow
    /// merge redirects here: an archived record was never merged away.
    pub fn find_archived(&self, t: ObjectType, id: &str) -> Option<(i64, &StoredObject)> {
        let id = parse_id(id)?;
        self.get_any(t, id)
            .filter(|o| o.archived_at.is_some())
            .map(|o| (id, o))
    }

    /// Archive live objects (`DELETE /{id}`, `batch/archive`). Ids that are unknown, merged
    /// away or archived already are left alone, as HubSpot answers 204 for them too. Returns
    /// the ids archived now.
    pub fn archive(
        &mut self,
        t: ObjectType,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, ApiError> {
        let ts = format_ts(&now);
        let mut changed: Vec<(i64, StoredObject)> = Vec::new();
        for id in ids {
            let Some(id) = parse_id(id) else { continue };
            if changed.iter().any(|(c, _)| *c == id) {
                continue;
            }
            if let Some(o) = self.get(t, id) {
                let mut o = o.clone();
                o.archived_at = Some(ts.clone());
                o.updated_at = ts.clone();
                changed.push((id, o));
            }
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO objects (type, id, body) VALUES (?1, ?2, ?3)",
            )?;
            for (id, o) in &changed {
                stmt.execute(params![t.as_str(), id, serde_json::to_string(o)?])?;
            }
        }
        tx.commit()?;
        let ids = changed.iter().map(|(id, _)| *id).collect();
        for (id, o) in changed {
            self.remember(t, id, o);
        }
        Ok(ids)
    }

    /// A resolved read: the live id and the object an asked id stands for.
    pub fn find(&self, t: ObjectType, id: &str) -> Result<Option<(i64, &StoredObject)>> {
        let Some(live) = self.resolve(t, id)? else {
            return Ok(None);
        };
        Ok(self.get(t, live).map(|o| (live, o)))
    }

    /// Up to `limit` objects with ids from `from` on, in id order, and the id the next page
    /// starts at.
    /// `archived` chooses between the live objects and the archived ones.
    pub fn page(&self, t: ObjectType, from: i64, limit: usize, archived: bool) -> Page<'_> {
        let mut objects: Vec<(i64, &StoredObject)> = self
            .live
            .get(&t)
            .into_iter()
            .flat_map(|o| o.range(from..))
            .filter(|(_, o)| o.archived_at.is_some() == archived)
            .take(limit.saturating_add(1))
            .map(|(id, o)| (*id, o))
            .collect();
        let next = if objects.len() > limit {
            objects.pop().map(|(id, _)| id)
        } else {
            None
        };
        (objects, next)
    }

    /// Every live (not archived) object of a type, in id order (search works over these).
    pub fn all(&self, t: ObjectType) -> impl Iterator<Item = (i64, &StoredObject)> {
        self.live
            .get(&t)
            .into_iter()
            .flat_map(|o| o.iter().map(|(id, o)| (*id, o)))
            .filter(|(_, o)| o.archived_at.is_none())
    }

    fn next_id(tx: &rusqlite::Transaction<'_>) -> Result<i64> {
        let id: i64 = tx.query_row(
            "INSERT INTO counters (name, value) VALUES ('last_id', 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1
             RETURNING value",
            [],
            |r| r.get(0),
        )?;
        Ok(id)
    }

    /// Refuse a write the way HubSpot does when any property of any input breaks a value
    /// rule: one 400 naming every problem, nothing applied.
    fn refuse_invalid<'a>(
        t: ObjectType,
        defs: &BTreeMap<String, Property>,
        inputs: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    ) -> Result<(), ApiError> {
        let problems: Vec<Problem> = inputs
            .into_iter()
            .flat_map(|props| properties::check_write(t, defs, props))
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let results: Vec<serde_json::Value> = problems
            .iter()
            .map(|p| {
                json!({
                    "isValid": false,
                    "message": p.message,
                    "error": p.code,
                    "name": p.name,
                    "localizedErrorMessage": p.message,
                })
            })
            .collect();
        let errors = problems
            .iter()
            .map(|p| {
                json!({
                    "message": p.message,
                    "code": p.code,
                    "context": {"propertyName": [p.name]},
                })
            })
            .collect();
        Err(ApiError::Validation {
            message: format!(
                "Property values were not valid: {}",
                serde_json::Value::Array(results)
            ),
            errors,
        })
    }

    /// The id the next created record gets, without taking it.
    fn peek_next_id(&self) -> Result<i64> {
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'last_id'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(last.unwrap_or(0) + 1)
    }

    /// HubSpot's uniqueness rules over a set of writes about to happen together (`None`: a
    /// record to be created). The state they are checked against is the one after all of them:
    /// a record a write moves away from a value no longer holds it, and two writes of one
    /// batch cannot claim the same value. A contact's email (compared without case, and
    /// against other contacts' additional emails too) is refused with 409 CONFLICT "Contact
    /// already exists. Existing ID: N"; a `hasUniqueValue` property with HubSpot's 400 "Cannot
    /// set PropertyValueCoordinates{...} on X. Y already has that value.". New records are
    /// named by the ids they would get; a value a record already has is not checked again.
    fn refuse_duplicates(
        &self,
        t: ObjectType,
        defs: &BTreeMap<String, Property>,
        writes: &[(Option<i64>, &BTreeMap<String, String>)],
    ) -> Result<(), ApiError> {
        let mut unique: Vec<&str> = defs
            .values()
            .filter(|d| d.has_unique_value)
            .map(|d| d.name.as_str())
            .collect();
        let email_rule = t == ObjectType::Contacts;
        if email_rule && !unique.contains(&"email") {
            unique.insert(0, "email");
        }
        let next_id = self.peek_next_id()?;
        let mut new_ids = next_id..;
        let targets: Vec<i64> = writes
            .iter()
            .map(|(target, _)| target.unwrap_or_else(|| new_ids.next().unwrap_or(next_id)))
            .collect();
        for property in unique {
            let fold = |v: &str| v.trim().to_lowercase();
            let written: BTreeMap<i64, &str> = writes
                .iter()
                .zip(&targets)
                .filter_map(|((_, props), id)| props.get(property).map(|v| (*id, v.as_str())))
                .collect();
            let wanted: BTreeSet<String> = written
                .values()
                .filter(|v| !v.trim().is_empty())
                .map(|v| fold(v))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            // Who holds each wanted value once every write is applied.
            let mut holders: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for (id, object) in self.all(t) {
                let value = written
                    .get(&id)
                    .copied()
                    .or_else(|| object.value(property))
                    .unwrap_or("");
                let mut values = vec![value];
                if property == "email" && email_rule {
                    values.extend(
                        object
                            .value("hs_additional_emails")
                            .unwrap_or("")
                            .split(';'),
                    );
                }
                for v in values {
                    let v = fold(v);
                    if wanted.contains(&v) {
                        holders.entry(v).or_default().push(id);
                    }
                }
            }
            for ((target, _), id) in writes.iter().zip(&targets) {
                if target.is_none()
                    && let Some(v) = written.get(id).filter(|v| !v.trim().is_empty())
                {
                    holders.entry(fold(v)).or_default().push(*id);
                }
            }
            for ((target, props), id) in writes.iter().zip(&targets) {
                let Some(value) = props.get(property).filter(|v| !v.trim().is_empty()) else {
                    continue;
                };
                // Re-sending the value a record has is no claim on it. (A seed can hold two
                // live contacts with one email, which HubSpot itself never lets happen.)
                let current = target.and_then(|t_id| self.get(t, t_id)?.value(property));
                if current.is_some_and(|c| fold(c) == fold(value)) {
                    continue;
                }
                let Some(existing) = holders
                    .get(&fold(value))
                    .and_then(|ids| ids.iter().find(|other| *other != id))
                else {
                    continue;
                };
                return Err(if property == "email" && email_rule {
                    ApiError::Conflict(format!("Contact already exists. Existing ID: {existing}"))
                } else {
                    ApiError::validation(format!(
                        "Cannot set PropertyValueCoordinates{{portalId={PORTAL_ID}, objectTypeId={}, propertyName={property}, value={value}}} on {id}. {existing} already has that value.",
                        properties::object_type_id(t)
                    ))
                });
            }
        }
        Ok(())
    }

    fn write(&mut self, t: ObjectType, id: i64, object: StoredObject) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO objects (type, id, body) VALUES (?1, ?2, ?3)")?
            .execute(params![t.as_str(), id, serde_json::to_string(&object)?])?;
        self.remember(t, id, object);
        Ok(())
    }

    /// PATCH: set the given values (`""` clears), each change a new history version, and bump
    /// the last-modified date. A value equal to the current one is not a change. Refused whole
    /// when a value breaks HubSpot's rules (400) or another live record holds a unique value
    /// (see [`Self::refuse_duplicates`]).
    pub fn update(
        &mut self,
        t: ObjectType,
        id: &str,
        props: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(i64, StoredObject), ApiError> {
        let defs = self.definitions(t)?;
        Self::refuse_invalid(t, &defs, [props])?;
        let live = self
            .resolve(t, id)?
            .filter(|live| self.get(t, *live).is_some())
            .ok_or_else(|| ApiError::NotFound(not_found_message(t, id)))?;
        self.refuse_duplicates(t, &defs, &[(Some(live), props)])?;
        self.apply_update(t, live, props, now)
    }

    /// `batch/update`, as HubSpot answers it: ids it cannot find are reported (and the others
    /// applied), but one invalid value or one duplicate of a unique value anywhere refuses the
    /// whole batch, and so does an id given twice.
    pub fn batch_update(
        &mut self,
        t: ObjectType,
        inputs: &[(String, BTreeMap<String, String>)],
        now: DateTime<Utc>,
    ) -> Result<BatchUpdated, ApiError> {
        let mut seen = BTreeSet::new();
        let twice: Vec<&str> = inputs
            .iter()
            .map(|(id, _)| id.trim())
            .filter(|id| !seen.insert(*id))
            .collect();
        if !twice.is_empty() {
            return Err(ApiError::validation(format!(
                "Duplicate IDs found in batch input: [{}]. IDs must be unique",
                twice.join(", ")
            )));
        }
        let defs = self.definitions(t)?;
        Self::refuse_invalid(t, &defs, inputs.iter().map(|(_, props)| props))?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (id, props) in inputs {
            match self
                .resolve(t, id)?
                .filter(|live| self.get(t, *live).is_some())
            {
                Some(live) => found.push((live, props)),
                None => missing.push(id.clone()),
            }
        }
        let writes: Vec<(Option<i64>, &BTreeMap<String, String>)> = found
            .iter()
            .map(|(live, props)| (Some(*live), *props))
            .collect();
        self.refuse_duplicates(t, &defs, &writes)?;
        let mut results = Vec::with_capacity(found.len());
        for (live, props) in found {
            results.push(self.apply_update(t, live, props, now)?);
        }
        Ok((results, missing))
    }

    fn apply_update(
        &mut self,
        t: ObjectType,
        live: i64,
        props: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(i64, StoredObject), ApiError> {
        let mut object = self
            .get(t, live)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(not_found_message(t, &live.to_string())))?;
        let ts = format_ts(&now);
        let mut changed = false;
        for (name, value) in props {
            if object.value(name).unwrap_or("") != value.as_str() {
                object.set(name, value.clone(), &ts, API_SOURCE_TYPE, API_SOURCE_ID);
                changed = true;
            }
        }
        if changed {
            object.set(
                t.last_modified_property(),
                ts.clone(),
                &ts,
                API_SOURCE_TYPE,
                API_SOURCE_ID,
            );
            object.updated_at = ts;
            self.write(t, live, object.clone())?;
        }
        Ok((live, object))
    }

    /// The live object whose `prop` equals `value` case-insensitively (HubSpot's `idProperty`
    /// reads, for unique properties such as `email`).
    pub fn find_by_property(
        &self,
        t: ObjectType,
        prop: &str,
        value: &str,
    ) -> Option<(i64, &StoredObject)> {
        let value = value.trim();
        self.all(t).find(|(_, o)| {
            o.value(prop)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
        })
    }

    /// POST: a new record with a new id, after HubSpot's value and uniqueness rules (a contact
    /// whose email another contact already has is refused with 409).
    pub fn create(
        &mut self,
        t: ObjectType,
        props: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(i64, StoredObject), ApiError> {
        let mut created = self.batch_create(t, std::slice::from_ref(props), now)?;
        created
            .pop()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a create produced no record")))
    }

    /// `batch/create`: every input is checked before any is created, so one invalid value or
    /// one duplicate of a unique value (also between two inputs) refuses the whole batch.
    pub fn batch_create(
        &mut self,
        t: ObjectType,
        inputs: &[BTreeMap<String, String>],
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, StoredObject)>, ApiError> {
        let defs = self.definitions(t)?;
        Self::refuse_invalid(t, &defs, inputs)?;
        let writes: Vec<(Option<i64>, &BTreeMap<String, String>)> =
            inputs.iter().map(|props| (None, props)).collect();
        self.refuse_duplicates(t, &defs, &writes)?;
        inputs
            .iter()
            .map(|props| self.apply_create(t, props, now))
            .collect()
    }

    fn apply_create(
        &mut self,
        t: ObjectType,
        props: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(i64, StoredObject), ApiError> {
        let ts = format_ts(&now);
        let tx = self.conn.transaction()?;
        let id = Self::next_id(&tx)?;
        let mut object = StoredObject {
            properties: BTreeMap::new(),
            history: BTreeMap::new(),
            created_at: ts.clone(),
            updated_at: ts.clone(),
            merges: 0,
            archived_at: None,
        };
        for (name, value) in props.iter().filter(|(_, v)| !v.is_empty()) {
            object.set(name, value.clone(), &ts, API_SOURCE_TYPE, API_SOURCE_ID);
        }
        let id_text = id.to_string();
        for (name, value) in [
            ("hs_object_id", id_text.as_str()),
            ("createdate", ts.as_str()),
            (t.last_modified_property(), ts.as_str()),
        ] {
            object.set(name, value.to_string(), &ts, API_SOURCE_TYPE, API_SOURCE_ID);
        }
        tx.execute(
            "INSERT INTO objects (type, id, body) VALUES (?1, ?2, ?3)",
            params![t.as_str(), id, serde_json::to_string(&object)?],
        )?;
        tx.commit()?;
        self.remember(t, id, object.clone());
        Ok((id, object))
    }

    /// HubSpot's merge: a new record with a new id; the primary's values win, gaps are filled
    /// from the other; histories combined; both old ids (and every id they had absorbed) then
    /// resolve to the new record.
    pub fn merge(
        &mut self,
        t: ObjectType,
        primary_id: &str,
        other_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(i64, StoredObject, MergeLogEntry), ApiError> {
        let (pid, primary) = self
            .find(t, primary_id)?
            .map(|(id, o)| (id, o.clone()))
            .ok_or_else(|| ApiError::NotFound(not_found_message(t, primary_id)))?;
        let (oid, other) = self
            .find(t, other_id)?
            .map(|(id, o)| (id, o.clone()))
            .ok_or_else(|| ApiError::NotFound(not_found_message(t, other_id)))?;
        if pid == oid {
            return Err(ApiError::validation(format!(
                "Cannot merge {primary_id} and {other_id}: they are the same {} (id {pid})",
                singular(t)
            )));
        }
        if primary.merges + other.merges >= MAX_MERGES {
            return Err(ApiError::validation(format!(
                "{} {pid} and {oid} have been included in a combined total of {} merges; records with {MAX_MERGES} or more merges cannot be merged",
                singular(t),
                primary.merges + other.merges
            )));
        }
        let ts = format_ts(&now);
        let tx = self.conn.transaction()?;
        let new_id = Self::next_id(&tx)?;

        let mut merged = StoredObject {
            properties: BTreeMap::new(),
            history: BTreeMap::new(),
            created_at: primary.created_at.clone(),
            updated_at: ts.clone(),
            merges: primary.merges + other.merges + 1,
            archived_at: None,
        };
        let names: BTreeSet<&String> = primary
            .properties
            .keys()
            .chain(other.properties.keys())
            .chain(primary.history.keys())
            .chain(other.history.keys())
            .collect();
        for name in names {
            let mut history: Vec<ValueWithTimestamp> = primary
                .history
                .get(name)
                .into_iter()
                .chain(other.history.get(name))
                .flatten()
                .cloned()
                .collect();
            // Newest first; the text order of HubSpot's timestamps is their time order.
            history.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
            history.dedup();
            let value = primary
                .properties
                .get(name)
                .cloned()
                .flatten()
                .filter(|v| !v.is_empty())
                .or_else(|| other.properties.get(name).cloned().flatten());
            merged.history.insert(name.clone(), history);
            merged.properties.insert(name.clone(), value.clone());
            // The newest version must be the current value, or a reader of the history would
            // take the absorbed record's newer value for the surviving one.
            // (The merge's own properties get their versions below.)
            let own = [
                "hs_object_id",
                "hs_merged_object_ids",
                t.last_modified_property(),
            ];
            if let Some(v) = value.filter(|_| !own.contains(&name.as_str())) {
                let top = merged.history.get(name).and_then(|h| h.first());
                if top.map(|h| h.value.as_str()) != Some(v.as_str()) {
                    merged.set(name, v, &ts, MERGE_SOURCE_TYPE, &new_id.to_string());
                }
            }
        }

        apply_merge_exceptions(t, &primary, &other, &mut merged, &ts, &new_id.to_string());

        let mut absorbed: Vec<i64> = [&primary, &other]
            .iter()
            .flat_map(|o| {
                o.value("hs_merged_object_ids")
                    .unwrap_or("")
                    .split(';')
                    .filter_map(parse_id)
                    .collect::<Vec<_>>()
            })
            .chain([pid, oid])
            .collect();
        absorbed.sort_unstable();
        absorbed.dedup();
        let absorbed = absorbed
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(";");
        let source_id = new_id.to_string();
        merged.set(
            "hs_merged_object_ids",
            absorbed,
            &ts,
            MERGE_SOURCE_TYPE,
            &source_id,
        );
        merged.set(
            "hs_object_id",
            new_id.to_string(),
            &ts,
            MERGE_SOURCE_TYPE,
            &source_id,
        );
        merged.set(
            t.last_modified_property(),
            ts.clone(),
            &ts,
            MERGE_SOURCE_TYPE,
            &source_id,
        );

        tx.execute(
            "DELETE FROM objects WHERE type = ?1 AND id IN (?2, ?3)",
            params![t.as_str(), pid, oid],
        )?;
        tx.execute(
            "INSERT INTO objects (type, id, body) VALUES (?1, ?2, ?3)",
            params![t.as_str(), new_id, serde_json::to_string(&merged)?],
        )?;
        // Keep every redirect one hop long: ids absorbed earlier now point at the new record.
        tx.execute(
            "UPDATE redirects SET new_id = ?2 WHERE type = ?1 AND new_id IN (?3, ?4)",
            params![t.as_str(), new_id, pid, oid],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO redirects (type, old_id, new_id) VALUES (?1, ?2, ?4), (?1, ?3, ?4)",
            params![t.as_str(), pid, oid, new_id],
        )?;
        let seq: i64 =
            tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM merge_log", [], |r| {
                r.get(0)
            })?;
        let entry = MergeLogEntry {
            seq,
            object_type: t,
            primary_object_id: primary_id.to_string(),
            object_id_to_merge: other_id.to_string(),
            resolved_primary_id: pid.to_string(),
            resolved_merged_id: oid.to_string(),
            new_id: new_id.to_string(),
            merged_at: ts,
        };
        tx.execute(
            "INSERT INTO merge_log (seq, body) VALUES (?1, ?2)",
            params![seq, serde_json::to_string(&entry)?],
        )?;
        tx.commit()?;
        if let Some(objects) = self.live.get_mut(&t) {
            objects.remove(&pid);
            objects.remove(&oid);
        }
        self.remember(t, new_id, merged.clone());
        Ok((new_id, merged, entry))
    }

    pub fn merge_log(&self) -> Result<Vec<MergeLogEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM merge_log ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
    }
}

/// The properties HubSpot treats specially in a merge (its help pages list them): the
/// absorbed record's email (contacts) or domain (companies) is kept as an additional one, and
/// the lifecycle stage furthest down the funnel wins.
fn apply_merge_exceptions(
    t: ObjectType,
    primary: &StoredObject,
    other: &StoredObject,
    merged: &mut StoredObject,
    ts: &str,
    source_id: &str,
) {
    let (main, extra) = match t {
        ObjectType::Contacts => ("email", "hs_additional_emails"),
        ObjectType::Companies => ("domain", "hs_additional_domains"),
    };
    let kept = merged.value(main).unwrap_or("").to_ascii_lowercase();
    let mut extras: Vec<String> = Vec::new();
    for value in [primary, other]
        .iter()
        .flat_map(|o| {
            let mut v: Vec<&str> = o.value(extra).unwrap_or("").split(';').collect();
            v.push(o.value(main).unwrap_or(""));
            v
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        if value.to_ascii_lowercase() != kept
            && !extras.iter().any(|e| e.eq_ignore_ascii_case(value))
        {
            extras.push(value.to_string());
        }
    }
    if !extras.is_empty() && merged.value(extra) != Some(extras.join(";").as_str()) {
        merged.set(extra, extras.join(";"), ts, MERGE_SOURCE_TYPE, source_id);
    }
    let rank = |o: &StoredObject| {
        o.value("lifecyclestage").and_then(|v| {
            // "other" is no stage of the funnel: it never wins.
            properties::LIFECYCLE_STAGES
                .iter()
                .take_while(|(stage, _)| *stage != "other")
                .position(|(stage, _)| stage.eq_ignore_ascii_case(v))
        })
    };
    if let (Some(a), Some(b)) = (rank(primary), rank(other))
        && b > a
        && let Some(v) = other.value("lifecyclestage")
    {
        merged.set(
            "lifecyclestage",
            v.to_string(),
            ts,
            MERGE_SOURCE_TYPE,
            source_id,
        );
    }
}

pub fn singular(t: ObjectType) -> &'static str {
    match t {
        ObjectType::Contacts => "contact",
        ObjectType::Companies => "company",
    }
}

pub fn not_found_message(t: ObjectType, id: &str) -> String {
    format!(
        "Object not found.  objectId are usually numeric. {} {id} does not exist",
        singular(t)
    )
}

/// A seeded record as stored: values it has without history get one version dated at the
/// record's last update, and HubSpot's system properties are filled in.
fn stored_from_record(record: &Record, id: i64, now: &str) -> StoredObject {
    let created = record.created_at.as_ref().map(format_ts);
    let updated = record
        .updated_at
        .as_ref()
        .map(format_ts)
        .or_else(|| created.clone())
        .unwrap_or_else(|| now.to_string());
    let created = created.unwrap_or_else(|| updated.clone());
    let mut history: BTreeMap<String, Vec<ValueWithTimestamp>> = record
        .history
        .iter()
        .map(|(name, versions)| {
            let versions = versions
                .iter()
                .map(|v| ValueWithTimestamp {
                    value: v.value.clone().unwrap_or_default(),
                    timestamp: format_ts(&v.timestamp),
                    source_type: v.source_type.clone(),
                    source_id: v.source_id.clone(),
                    source_label: None,
                    updated_by_user_id: None,
                })
                .collect();
            (name.clone(), versions)
        })
        .collect();
    let mut properties = record.properties.clone();
    let t = record.object_type;
    let id_text = id.to_string();
    for (name, value) in [
        ("hs_object_id", &id_text),
        ("createdate", &created),
        (t.last_modified_property(), &updated),
    ] {
        properties
            .entry(name.to_string())
            .or_insert_with(|| Some(value.clone()));
    }
    properties.insert("hs_object_id".into(), Some(id_text));
    for (name, value) in &properties {
        let Some(value) = value else { continue };
        let versions = history.entry(name.clone()).or_default();
        if versions.is_empty() {
            versions.push(ValueWithTimestamp {
                value: value.clone(),
                timestamp: updated.clone(),
                source_type: SEED_SOURCE_TYPE.into(),
                source_id: None,
                source_label: None,
                updated_by_user_id: None,
            });
        }
    }
    StoredObject {
        properties,
        history,
        created_at: created,
        updated_at: updated,
        merges: 0,
        archived_at: None,
    }
}
