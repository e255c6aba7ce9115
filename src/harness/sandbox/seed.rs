//! The sandbox's seed file: the records it starts with, as JSON
//! `{"contacts": [Record, ...], "companies": [Record, ...]}` in the model's serde form
//! (properties, per-property history newest first, created/updated times). `dupdesk sandbox
//! --seed FILE` reads it; the demo data generator writes it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::domain::model::{ObjectType, Record};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedData {
    #[serde(default)]
    pub contacts: Vec<Record>,
    #[serde(default)]
    pub companies: Vec<Record>,
}

impl SeedData {
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.contacts.iter().chain(self.companies.iter())
    }

    /// Read and check a seed file: every record sits in the list of its own type and ids are
    /// unique within a type.
    pub fn from_file(path: &Path) -> Result<SeedData> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading seed file {}", path.display()))?;
        let seed: SeedData = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "seed file {}: line {}, column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        seed.check()
            .with_context(|| format!("seed file {}", path.display()))?;
        Ok(seed)
    }

    pub fn check(&self) -> Result<()> {
        for (list, want) in [
            (&self.contacts, ObjectType::Contacts),
            (&self.companies, ObjectType::Companies),
        ] {
            let mut seen = std::collections::HashSet::new();
            for r in list {
                if r.object_type != want {
                    bail!(
                        "record {} is a {} but listed under {}",
                        r.id,
                        r.object_type,
                        want
                    );
                }
                if !seen.insert(r.id.as_str()) {
                    bail!("{want} id {} appears twice", r.id);
                }
            }
        }
        Ok(())
    }
}
