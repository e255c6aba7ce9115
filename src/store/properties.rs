//! The cache of the CRM's property definitions (`crm_properties`): refreshed from the CRM on
//! every pull and before every apply, read by the review (which fields may be chosen, which
//! values the CRM would refuse) and by the executor's checks before the first merge. A cache
//! only: the CRM's own answer always replaces it whole.

use anyhow::{Context, Result};
use rusqlite::{Connection, params};

use crate::domain::model::{ObjectType, PropertyCatalog, PropertyDef};

/// Replace the cached definitions of `object` with `defs`, in one transaction.
pub fn save(
    conn: &mut Connection,
    object: ObjectType,
    defs: &[PropertyDef],
    now: &str,
) -> Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM crm_properties WHERE object_type = ?1",
        [object.as_str()],
    )?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO crm_properties (object_type, name, definition, fetched_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for d in defs {
            insert.execute(params![
                object.as_str(),
                d.name,
                serde_json::to_string(d)?,
                now
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The cached definitions of `object`; an empty catalog when the CRM was never asked.
pub fn load(conn: &Connection, object: ObjectType) -> Result<PropertyCatalog> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, definition, fetched_at FROM crm_properties WHERE object_type = ?1",
    )?;
    let rows = stmt
        .query_map([object.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut fetched_at = None;
    let mut defs = Vec::with_capacity(rows.len());
    for (name, json, at) in rows {
        let def: PropertyDef = serde_json::from_str(&json)
            .with_context(|| format!("cached definition of {object} property {name}"))?;
        defs.push(def);
        fetched_at = Some(at);
    }
    Ok(PropertyCatalog::new(defs, fetched_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::PropertyKind;

    #[test]
    fn definitions_round_trip_and_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path().join("ws.db")).unwrap();
        let def = |name: &str, read_only| PropertyDef {
            name: name.into(),
            label: name.into(),
            kind: PropertyKind::String,
            field_type: "text".into(),
            options: Vec::new(),
            read_only,
            calculated: false,
            unique: false,
        };
        let first = vec![def("email", false), def("createdate", true)];
        store
            .call_blocking(move |c| {
                save(c, ObjectType::Contacts, &first, "2026-12-01T00:00:00.000Z")
            })
            .unwrap();
        let got = store
            .call_blocking(|c| load(c, ObjectType::Contacts))
            .unwrap();
        assert_eq!(got.defs.len(), 2);
        assert!(got.get("createdate").unwrap().read_only);
        assert_eq!(got.fetched_at.as_deref(), Some("2026-12-01T00:00:00.000Z"));
        let second = vec![def("phone", false)];
        store
            .call_blocking(move |c| {
                save(c, ObjectType::Contacts, &second, "2026-12-02T00:00:00.000Z")
            })
            .unwrap();
        let got = store
            .call_blocking(|c| load(c, ObjectType::Contacts))
            .unwrap();
        assert_eq!(got.defs.keys().collect::<Vec<_>>(), ["phone"]);
        assert!(
            !store
                .call_blocking(|c| load(c, ObjectType::Companies))
                .unwrap()
                .is_known()
        );
    }
}
