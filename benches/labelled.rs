//! Ground-truth benchmark of the matcher on any labelled CSV file: each row a record, one column
//! its id and one the entity it belongs to. The schema is named on the command line (property
//! and kind, as a user would configure it) or read from a TOML file; blocking rules are derived
//! from the kinds unless the file lists some, and everything else (threshold, samples, EM) is
//! the embedded default configuration: no weights are set by hand. Prints pairwise precision,
//! recall and F1, the candidate pairs, wall time and the blocking rules in use.
//!
//! ```text
//! python3 benches/data/fetch_febrl.py /tmp/febrl
//! cargo bench --bench labelled -- /tmp/febrl/febrl3.csv --id rec_id --truth entity \
//!     --field given_name=given_name --field surname=surname --field date_of_birth=date ...
//! ```
//!
//! Options: `--schema FILE.toml` (`fields = [{ property = "...", kind = "..." }]`, optional
//! `blocking = [...]`) instead of `--field`; `--errors K` explains K false positives and K false
//! negatives; `--model` prints the fitted weights; `--threshold P` overrides the configured
//! threshold (to explore, not to report).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dupdesk::config;
use dupdesk::domain::matcher::{
    self, FieldKind, FieldSpec, MatchConfig, MatchInputs, ObjectSchemaConfig,
};
use dupdesk::domain::model::{ObjectType, Record};

#[path = "common/quality.rs"]
mod quality;

struct Args {
    file: PathBuf,
    id: String,
    truth: String,
    fields: Vec<FieldSpec>,
    schema: Option<PathBuf>,
    errors: usize,
    show_model: bool,
    threshold: Option<f64>,
}

fn parse_args() -> Result<Args> {
    let usage = "usage: labelled FILE.csv --id COLUMN --truth COLUMN \
                 (--field PROPERTY=KIND ... | --schema FILE.toml) [--errors K] [--model] [--threshold P]";
    let mut file = None;
    let mut id = None;
    let mut truth = None;
    let mut fields = Vec::new();
    let mut schema = None;
    let mut errors = 0;
    let mut show_model = false;
    let mut threshold = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value; {usage}"))
        };
        match a.as_str() {
            // cargo bench passes this to every bench binary.
            "--bench" => {}
            "--id" => id = Some(value("--id")?),
            "--truth" => truth = Some(value("--truth")?),
            "--schema" => schema = Some(PathBuf::from(value("--schema")?)),
            "--errors" => {
                let v = value("--errors")?;
                errors = v
                    .parse()
                    .with_context(|| format!("--errors {v:?}: not a count"))?;
            }
            "--threshold" => {
                let v = value("--threshold")?;
                threshold = Some(
                    v.parse()
                        .with_context(|| format!("--threshold {v:?}: not a number"))?,
                );
            }
            "--model" => show_model = true,
            "--field" => {
                let v = value("--field")?;
                let (property, kind) = v
                    .split_once('=')
                    .with_context(|| format!("--field {v:?}: expected PROPERTY=KIND"))?;
                let kind: FieldKind = serde_json::from_value(serde_json::Value::String(kind.into()))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "--field {v:?}: unknown kind {kind:?} (person_name, given_name, surname, \
                             email, phone, company, domain, address, postcode, city, date, identifier, text)"
                        )
                    })?;
                fields.push(FieldSpec {
                    property: property.to_string(),
                    kind,
                });
            }
            flag if flag.starts_with('-') => bail!("unknown option {flag:?}; {usage}"),
            path => {
                if file.replace(PathBuf::from(path)).is_some() {
                    bail!("more than one input file; {usage}");
                }
            }
        }
    }
    if fields.is_empty() == schema.is_none() {
        bail!("give either --field options or --schema; {usage}");
    }
    Ok(Args {
        file: file.with_context(|| format!("no input file; {usage}"))?,
        id: id.with_context(|| format!("no --id column; {usage}"))?,
        truth: truth.with_context(|| format!("no --truth column; {usage}"))?,
        fields,
        schema,
        errors,
        show_model,
        threshold,
    })
}

/// The records of a labelled CSV file, with the entity of each (entities numbered in order of
/// first appearance). Every column but the truth becomes a property; empty cells are missing.
fn read_records(args: &Args) -> Result<(Vec<Record>, Vec<u64>)> {
    let path = &args.file;
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header", path.display()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name:?}", path.display()))
    };
    let id_col = column(&args.id)?;
    let truth_col = column(&args.truth)?;
    for f in &args.fields {
        column(&f.property)?;
    }
    let mut entity_ids: HashMap<String, u64> = HashMap::new();
    let mut records = Vec::new();
    let mut entities = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: row {}", path.display(), line + 2))?;
        let truth = row.get(truth_col).unwrap_or_default().to_string();
        let next = entity_ids.len() as u64;
        entities.push(*entity_ids.entry(truth).or_insert(next));
        let properties: BTreeMap<String, Option<String>> = headers
            .iter()
            .zip(row.iter())
            .enumerate()
            .filter(|(i, _)| *i != truth_col)
            .map(|(_, (h, v))| {
                let v = v.trim();
                (h.to_string(), (!v.is_empty()).then(|| v.to_string()))
            })
            .collect();
        records.push(Record {
            object_type: ObjectType::Contacts,
            id: row.get(id_col).unwrap_or_default().to_string(),
            properties,
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        });
    }
    Ok((records, entities))
}

/// True pairs that no blocking rule makes candidates: the recall blocking gives up.
fn blocking_misses(cfg: &MatchConfig, table: &matcher::Table, entities: &[u64]) -> u64 {
    let blocks = matcher::Blocks::build(cfg, table);
    quality::entity_groups(entities)
        .iter()
        .map(|g| {
            let mut missed = 0;
            for (i, &a) in g.iter().enumerate() {
                for &b in &g[i + 1..] {
                    if blocks.first_rule(a as usize, b as usize).is_none() {
                        missed += 1;
                    }
                }
            }
            missed
        })
        .sum()
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let schema = match &args.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<ObjectSchemaConfig>(&text)
                .with_context(|| format!("schema file {}", path.display()))?
        }
        None => ObjectSchemaConfig {
            fields: args.fields.clone(),
            blocking: Vec::new(),
        },
    };
    let mut settings = config::load(&config::Sources::default())?.matcher;
    if let Some(t) = args.threshold {
        settings.threshold = t;
    }
    let cfg = MatchConfig::from_schema(&settings, ObjectType::Contacts, &schema)?;
    let args = Args {
        fields: cfg.fields.clone(),
        ..args
    };

    let t0 = Instant::now();
    let (records, entities) = read_records(&args)?;
    let t_read = t0.elapsed();
    let t1 = Instant::now();
    let table = matcher::Table::build(&cfg, &records);
    let t_norm = t1.elapsed();
    let t2 = Instant::now();
    let outcome = matcher::match_table(&cfg, &table, MatchInputs::default(), &|_| {});
    let t_match = t2.elapsed();

    let scores = quality::pair_scores(&outcome, &entities);
    quality::print_errors(&cfg, &table, &outcome, &entities, args.errors);
    println!(
        "== {}: {} records, {} entities with duplicates, {} true pairs; threshold {}, {} rayon threads",
        args.file.display(),
        records.len(),
        quality::entity_groups(&entities).len(),
        scores.true_pairs,
        cfg.settings.threshold,
        rayon::current_num_threads()
    );
    println!(
        "fields: {}",
        cfg.fields
            .iter()
            .map(|f| format!("{}={}", f.property, f.kind))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "blocking rules{}: {}",
        if schema.blocking.is_empty() {
            " (derived from the kinds)"
        } else {
            ""
        },
        cfg.blocking
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("{}", scores.line());
    println!(
        "candidate pairs {} ({:.1} per record)  linked pairs {}  clusters {}  true pairs no rule finds {}",
        outcome.candidate_pairs,
        outcome.candidate_pairs as f64 / records.len().max(1) as f64,
        outcome.linked_pairs,
        outcome.clusters.len(),
        blocking_misses(&cfg, &table, &entities)
    );
    println!(
        "wall: read {:.2}s  normalize {:.2}s  block+fit+score+cluster {:.2}s",
        t_read.as_secs_f64(),
        t_norm.as_secs_f64(),
        t_match.as_secs_f64()
    );
    quality::print_model(&outcome, args.show_model);
    Ok(())
}
