//! The demo data generator: a seeded, deterministic set of realistic contacts and companies
//! with planted duplicates of the kinds real CRMs collect (case and whitespace, nicknames,
//! typos, Gmail dots and plus-tags, phone formats, missing fields, a person who changed jobs,
//! records from the CRM, the ERP and marketing with their own update times and per-property
//! history), plus the truth: which records are the same real-world entity. Colleagues who share
//! a team mailbox are planted too, and the truth says they are *not* duplicates.
//!
//! It feeds the sandbox CRM (`dupdesk demo`), `assets/demo-seed.json`, and the matcher's
//! precision/recall benchmark. It must stay deterministic for a seed and must not read or
//! write anything but its own embedded seed file.
//!
//! Records are produced one real-world entity at a time by [`Generator`], so a million of them
//! can be streamed without holding them all (the plan costs about 20 bytes a record);
//! [`generate`] collects them into a [`Dataset`], at roughly 4.5 KB a record for the owned
//! property maps and histories, so large benchmarks should stream.
//! Every entity's identity is a pure function of (seed, entity number), which is what lets a
//! contact name its company without the companies being kept in memory.

pub use crate::store::DEMO_WORKSPACE;

mod build;
mod companies;
mod contacts;
pub mod names;
pub mod noise;
mod plan;
mod truth;

use anyhow::{Context, Result};

use crate::domain::model::{ObjectType, Record};
use crate::harness::sandbox::seed::SeedData;

pub use truth::{PairMetrics, Truth};

/// How much data to generate, and from which seed.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    pub seed: u64,
    /// Contact records, duplicates included.
    pub contacts: usize,
    /// Company records, duplicates included.
    pub companies: usize,
    /// The share of records that are extra copies of an entity already present (0.0 to 0.9).
    pub duplicate_rate: f64,
}

impl Default for DemoOptions {
    /// The dataset `dupdesk demo` starts with and `assets/demo-seed.json` holds.
    fn default() -> Self {
        DemoOptions {
            seed: 42,
            contacts: 300,
            companies: 60,
            duplicate_rate: 0.2,
        }
    }
}

impl DemoOptions {
    /// `records` contacts and about a fifth as many companies, for `demo --records N`.
    pub fn scaled(records: usize) -> Self {
        DemoOptions {
            contacts: records,
            companies: (records / 5).max(1),
            ..DemoOptions::default()
        }
    }
}

/// Generated records and the truth about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub data: SeedData,
    pub truth: Truth,
}

/// One generated record and the real-world entity it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub record: Record,
    pub entity: u64,
}

/// The first ids handed out; HubSpot ids are numeric and grow with creation time, and so do
/// these (a record's id follows its position in creation order).
const CONTACT_ID_BASE: u64 = 1_000_001;
const COMPANY_ID_BASE: u64 = 50_000_001;

/// Streams the records of a dataset entity by entity. Records of one entity come together;
/// their ids are spread over the whole range, as duplicates are created at different times.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    company_plan: plan::Plan,
    contact_plan: plan::Plan,
    /// How many company entities contacts can work for.
    company_universe: u64,
}

impl Generator {
    pub fn new(opts: &DemoOptions) -> Generator {
        let company_plan = plan::Plan::new(
            opts.seed,
            ObjectType::Companies,
            opts.companies,
            opts.duplicate_rate,
        );
        let contact_plan = plan::Plan::new(
            opts.seed,
            ObjectType::Contacts,
            opts.contacts,
            opts.duplicate_rate,
        );
        let company_universe = match company_plan.entities() {
            0 => (opts.contacts as u64 / 5).max(1),
            n => n,
        };
        Generator {
            seed: opts.seed,
            company_plan,
            contact_plan,
            company_universe,
        }
    }

    /// Company records, entity by entity.
    pub fn companies(&self) -> impl Iterator<Item = Generated> + '_ {
        self.company_plan
            .groups
            .iter()
            .enumerate()
            .flat_map(move |(e, g)| companies::records(self, e as u64, g))
    }

    /// Contact records, entity by entity.
    pub fn contacts(&self) -> impl Iterator<Item = Generated> + '_ {
        self.contact_plan
            .groups
            .iter()
            .enumerate()
            .flat_map(move |(e, g)| contacts::records(self, e as u64, g))
    }
}

/// Generate a whole dataset, records sorted by id (which is creation order). Entities are
/// independent of each other, so the work is split over the machine's cores; the result does
/// not depend on how.
pub fn generate(opts: &DemoOptions) -> Dataset {
    let generator = Generator::new(opts);
    let mut truth = Truth::default();
    let contacts = collect_in_id_order(
        &generator,
        &generator.contact_plan,
        contacts::records,
        CONTACT_ID_BASE,
        &mut truth.contacts,
    );
    let companies = collect_in_id_order(
        &generator,
        &generator.company_plan,
        companies::records,
        COMPANY_ID_BASE,
        &mut truth.companies,
    );
    Dataset {
        data: SeedData {
            contacts,
            companies,
        },
        truth,
    }
}

type RecordsOf = fn(&Generator, u64, &plan::Group) -> Vec<Generated>;

/// Ids are `base + position` with positions a permutation of `0..n`, so each record has its
/// slot and no sort is needed.
fn collect_in_id_order(
    generator: &Generator,
    plan: &plan::Plan,
    records_of: RecordsOf,
    base: u64,
    truth: &mut std::collections::HashMap<String, u64>,
) -> Vec<Record> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = plan.groups.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<Generated>> = std::thread::scope(|scope| {
        let workers: Vec<_> = plan
            .groups
            .chunks(chunk)
            .enumerate()
            .map(|(i, groups)| {
                scope.spawn(move || {
                    let first = i * chunk;
                    groups
                        .iter()
                        .enumerate()
                        .flat_map(|(k, g)| records_of(generator, (first + k) as u64, g))
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let n = plan.len();
    let mut slots: Vec<Option<Record>> = Vec::with_capacity(n);
    slots.resize_with(n, || None);
    truth.reserve(n);
    for g in parts.into_iter().flatten() {
        let slot = g
            .record
            .id
            .parse::<u64>()
            .ok()
            .and_then(|id| id.checked_sub(base))
            .and_then(|p| slots.get_mut(p as usize));
        if let Some(slot) = slot {
            truth.insert(g.record.id.clone(), g.entity);
            *slot = Some(g.record);
        }
    }
    slots.into_iter().flatten().collect()
}

/// The default dataset as committed in `assets/demo-seed.json`.
pub fn default_seed() -> Result<SeedData> {
    const TEXT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/demo-seed.json"
    ));
    let seed: SeedData = serde_json::from_str(TEXT).context("assets/demo-seed.json")?;
    seed.check().context("assets/demo-seed.json")?;
    Ok(seed)
}

/// Write a seed file with one record per line: small enough to commit, and a change to one
/// record shows as a change to one line.
pub fn to_seed_json(data: &SeedData) -> Result<String> {
    let mut out = String::from("{\n");
    for (i, (name, list)) in [("contacts", &data.contacts), ("companies", &data.companies)]
        .into_iter()
        .enumerate()
    {
        out.push_str(&format!("\"{name}\": [\n"));
        for (j, r) in list.iter().enumerate() {
            out.push_str(&serde_json::to_string(r)?);
            out.push_str(if j + 1 < list.len() { ",\n" } else { "\n" });
        }
        out.push_str(if i == 0 { "],\n" } else { "]\n" });
    }
    out.push_str("}\n");
    Ok(out)
}
