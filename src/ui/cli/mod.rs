//! The command line: clap definitions and dispatch. Each subcommand's handler lives in its own
//! file and calls the domain layers; nothing here holds business rules. Exit codes: 0 success,
//! 1 failure with a one-line cause on stderr, 2 usage error.

pub mod sandbox;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::domain::model::ObjectType;
use crate::store::Store;

mod amend;
mod apply;
pub mod connect;
mod demo;
mod import;
mod mapping;
mod match_cmd;
mod model_cmd;
pub mod out;
mod pull;
mod report;
mod resolve;

mod review;

#[derive(Debug, Parser)]
#[command(
    name = "dupdesk",
    version,
    about = "Review and merge duplicate CRM records from the keyboard"
)]
pub struct Cli {
    /// The workspace (SQLite file). Default: workspace.path from the config.
    #[arg(long, global = true, value_name = "PATH")]
    pub workspace: Option<PathBuf>,
    /// The user config file. Default: ./dupdesk.toml, else the XDG config file.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented dupdesk.toml in the current folder.
    Init {
        /// Which CRM the workspace talks to.
        #[arg(long, value_parser = ["hubspot", "sandbox"], default_value = "hubspot")]
        crm: String,
        /// Overwrite an existing dupdesk.toml.
        #[arg(long)]
        force: bool,
    },
    /// Everything local: the sandbox CRM seeded with generated records, a fresh workspace,
    /// a pull, the matcher, then the review.
    Demo {
        /// Generate this many contacts (and a fifth as many companies) instead of the small
        /// default dataset.
        #[arg(long)]
        records: Option<usize>,
        /// Print what the workspace holds instead of opening the review.
        #[arg(long)]
        no_tui: bool,
    },
    /// Read every contact and company from the CRM into the workspace (only changes after the
    /// first run).
    Pull,
    /// Approve, as the steward `auto`, every pending cluster whose weakest link scores at least
    /// S (and, with --max-size, that has at most K records).
    Approve {
        /// The lowest match probability (0 to 1) of a cluster's weakest link to approve it.
        #[arg(long, value_name = "S")]
        min_score: f64,
        /// Approve only clusters of at most K records.
        #[arg(long, value_name = "K")]
        max_size: Option<usize>,
        /// List the clusters it would approve and approve none.
        #[arg(long)]
        dry_run: bool,
    },
    /// Execute approved merges through the CRM's merge API, journaled, exactly once.
    Apply {
        /// Print the exact calls it would make and make none.
        #[arg(long)]
        dry_run: bool,
        /// Run at most this many merge jobs.
        #[arg(long)]
        limit: Option<usize>,
        /// Queue failed and paused jobs again first.
        #[arg(long)]
        retry_failed: bool,
        /// Jobs that may merge at once (they share one rate limiter; their reads and field
        /// updates go together in batches; a job waiting only for its field update does not
        /// count).
        #[arg(long, default_value_t = crate::ops::executor::DEFAULT_CONCURRENCY)]
        concurrency: usize,
    },
    /// New surviving values for a merge job whose merges ran and whose field update failed;
    /// the next apply resumes it at the update (no merge is sent again).
    Amend {
        /// The merge job (its id is in `apply`'s output and the merges view).
        job: i64,
        /// Write this value: --set "lifecyclestage=customer". Repeatable.
        #[arg(long, value_name = "FIELD=VALUE")]
        set: Vec<String>,
        /// Leave the field empty. Repeatable.
        #[arg(long, value_name = "FIELD")]
        clear: Vec<String>,
        /// Keep this member's value: --take "email=1001". Repeatable.
        #[arg(long, value_name = "FIELD=RECORD")]
        take: Vec<String>,
        /// Back to the precedence rules' suggestion. Repeatable.
        #[arg(long, value_name = "FIELD")]
        reset: Vec<String>,
    },
    /// Review the duplicate clusters in the terminal UI.
    Review,
    /// Export the decision log, or the candidate clusters.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Where a record and each of its values came from: every id merged into it, with the
    /// snapshot of each, and the origin of each field.
    Lineage {
        /// A record id (a merged-away id is followed to the record it lives on in).
        id: String,
        /// Look only among records of this type.
        #[arg(long)]
        object: Option<ObjectType>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Counts, duplicate rate, queue state, merges, and alerts.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Records from a CRM's CSV export (HubSpot export headers or property names as headers).
    /// A bad row refuses the whole file.
    Import {
        /// The CSV file (UTF-8, comma-separated, with a header row).
        file: PathBuf,
        /// The type of the records in the file: contacts or companies.
        #[arg(long, default_value = "contacts")]
        object: ObjectType,
        /// Read a column as a property: --map "Kundennummer=erp_customer_id". Repeatable; an
        /// empty property ignores the column.
        #[arg(long = "map", value_name = "HEADER=PROPERTY")]
        map: Vec<String>,
        /// The system the export comes from (history source and sync state `csv:<system>`).
        #[arg(long, default_value = "crm")]
        system: String,
        /// The field separator when it is not a comma: ';', '|' or tab.
        #[arg(long, value_name = "CHAR", value_parser = crate::ops::import::parse_delimiter, default_value = ",")]
        delimiter: u8,
    },
    /// The cross-system id mapping table.
    Mapping {
        #[command(subcommand)]
        action: MappingAction,
    },
    /// Run the HubSpot-compatible sandbox CRM by itself (until Ctrl-C).
    Sandbox(sandbox::SandboxArgs),
    /// Find candidate duplicates with the built-in matcher (only around changed records when a
    /// model exists), or import an external matcher's clusters.
    Match {
        /// Import clusters from a CSV: Splink (cluster_id,unique_id), csvdedupe (Cluster ID) or
        /// plain cluster_id,record_id.
        #[arg(long, value_name = "FILE")]
        clusters: Option<PathBuf>,
        /// With --clusters: a file that proposes no cluster (no rows, or only single records)
        /// means "no duplicates", and every pending cluster of the type leaves the queue.
        /// Without it such a file is refused, since it is more often a failed export.
        #[arg(long, requires = "clusters")]
        allow_empty: bool,
        /// Only this object type (default: every type with a [matcher] schema; contacts for
        /// --clusters).
        #[arg(long)]
        object: Option<ObjectType>,
        /// Re-estimate the weights and re-score every candidate pair.
        #[arg(long)]
        full: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The model the last match fitted: per field and comparison level the m, u and weight,
    /// and per blocking rule its iterations and convergence.
    Model {
        /// Only this object type (default: every type with a fitted model).
        #[arg(long)]
        object: Option<ObjectType>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// One row per decision, with field values and their sources, and the CRM calls made.
    Decisions {
        /// csv or jsonl (one JSON object a line). Default: jsonl when --out ends in .jsonl or
        /// .json, else csv.
        #[arg(long, value_name = "csv|jsonl")]
        format: Option<crate::ops::export::Format>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only decisions made at or after this date (YYYY-MM-DD) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only decisions of clusters in this status (pending, approved, merged, failed, ...).
        #[arg(long)]
        status: Option<String>,
    },
    /// One row per member record of each candidate cluster (`cluster_id,record_id,...`, the
    /// shape `match --clusters` reads), with status, score, weakest link and flags.
    Clusters {
        /// csv or jsonl (one JSON object a line). Default: jsonl when --out ends in .jsonl or
        /// .json, else csv.
        #[arg(long, value_name = "csv|jsonl")]
        format: Option<crate::ops::export::Format>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only clusters in this status (default: all but stale ones).
        #[arg(long)]
        status: Option<String>,
        /// Only clusters of this type: contacts or companies (default: both).
        #[arg(long)]
        object: Option<ObjectType>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingAction {
    /// Import rows `source_system,source_id,target_system,target_id[,object_type]` from a CSV
    /// file; a bad row refuses the whole file.
    Import {
        /// The CSV file of mapping rows.
        file: PathBuf,
        /// Object type of rows without an object_type column.
        #[arg(long, default_value = "contacts")]
        object: ObjectType,
    },
    /// Rebuild the active rows from the inverse-id property of every record in the CRM.
    Rebuild,
    /// The whole history of one id: every row it appears in, active or not, and the
    /// conflicts that name it.
    Show {
        /// A source or target id, in any system.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The open cross-system conflicts: merges of records mapped to different ids in the
    /// other system, and ids shared by several live records.
    Conflicts {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Settle a merge whose records mapped to different ids in the other system: the chosen
    /// id is written into the survivor's inverse-id property and becomes its mapping.
    Resolve {
        /// The conflict's number (from `mapping conflicts`).
        conflict: i64,
        /// The id in the other system the survivor keeps.
        #[arg(long)]
        target: String,
    },
}

/// Everything a command handler needs: the loaded configuration.
pub struct Ctx {
    pub config: Config,
    /// Whether `--workspace` was given (the demo picks its own default otherwise).
    pub explicit_workspace: bool,
}

impl Ctx {
    pub fn workspace_path(&self) -> PathBuf {
        self.config.workspace.path.clone()
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        // The reader of the output went away (`| head`): what it wanted it had.
        Err(e) if out::is_broken_pipe(&e) => 0,
        Err(e) => {
            // One line: the cause chain joined, outermost first. Causes quote record ids and
            // values (a duplicate id on line 7, a CRM's error message), so it is sanitized.
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("dupdesk: {}", crate::domain::sanitize::for_terminal(&msg));
            1
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.print_default_config {
        crate::out!("{}", config::DEFAULT_CONFIG);
        return Ok(());
    }
    let mut sources = config::Sources::discover(cli.config.as_deref());
    if let Some(ws) = &cli.workspace {
        sources.overrides.push((
            "workspace.path".into(),
            toml::Value::String(ws.display().to_string()),
        ));
    }
    let config = config::load(&sources)?;
    if let Err(e) = crate::logging::init(&config) {
        eprintln!("dupdesk: warning: logging is off: {e:#}");
    }
    let ctx = Ctx {
        config,
        explicit_workspace: cli.workspace.is_some(),
    };
    match cli.command {
        Some(Command::Init { crm, force }) => init(&crm, force),
        Some(Command::Demo { records, no_tui }) => {
            runtime()?.block_on(demo::run(&ctx, demo::DemoArgs { records, no_tui }))
        }
        Some(Command::Approve {
            min_score,
            max_size,
            dry_run,
        }) => approve(&ctx, min_score, max_size, dry_run),
        Some(Command::Pull) => runtime()?.block_on(pull::run(&ctx)),
        Some(Command::Amend {
            job,
            set,
            clear,
            take,
            reset,
        }) => amend::run(
            &ctx,
            amend::AmendArgs {
                job,
                set,
                clear,
                take,
                reset,
            },
        ),
        Some(Command::Apply {
            dry_run,
            limit,
            retry_failed,
            concurrency,
        }) => runtime()?.block_on(apply::run(
            &ctx,
            apply::ApplyArgs {
                dry_run,
                limit,
                retry_failed,
                concurrency,
            },
        )),
        Some(Command::Review) => review::review(&ctx.config),
        Some(Command::Export {
            what:
                ExportWhat::Decisions {
                    format,
                    out,
                    since,
                    status,
                },
        }) => report::export_decisions(
            &ctx,
            format,
            out,
            crate::ops::export::Filter { since, status },
        ),
        Some(Command::Export {
            what:
                ExportWhat::Clusters {
                    format,
                    out,
                    status,
                    object,
                },
        }) => report::export_clusters(
            &ctx,
            format,
            out,
            crate::ops::export::ClusterFilter { status, object },
        ),
        Some(Command::Lineage { id, object, json }) => report::lineage(&ctx, &id, object, json),
        Some(Command::Stats { json }) => report::stats(&ctx, json),
        Some(Command::Import {
            file,
            object,
            map,
            system,
            delimiter,
        }) => import::run(&ctx, &file, object, &map, &system, delimiter),
        Some(Command::Mapping { action }) => match action {
            MappingAction::Import { file, object } => mapping::import(&ctx, &file, object),
            MappingAction::Show { id, json } => mapping::show(&ctx, &id, json),
            MappingAction::Rebuild => runtime()?.block_on(mapping::rebuild(&ctx)),
            MappingAction::Conflicts { all, json } => mapping::list_conflicts(&ctx, all, json),
            MappingAction::Resolve { conflict, target } => {
                runtime()?.block_on(resolve::run(&ctx, conflict, &target))
            }
        },
        Some(Command::Match {
            clusters,
            allow_empty,
            object,
            full,
            json,
        }) => {
            let empty = if allow_empty {
                crate::ops::external_clusters::EmptyFile::MeansNoClusters
            } else {
                crate::ops::external_clusters::EmptyFile::Refuse
            };
            match_cmd::run(&ctx, clusters.as_deref(), empty, object, full, json)
        }
        Some(Command::Model { object, json }) => model_cmd::run(&ctx, object, json),
        Some(Command::Sandbox(args)) => sandbox::run(&args),
        // The review is what a steward runs all day: it is the default.
        None => review::review(&ctx.config),
    }
}

fn approve(ctx: &Ctx, min_score: f64, max_size: Option<usize>, dry_run: bool) -> Result<()> {
    if !(0.0..=1.0).contains(&min_score) {
        anyhow::bail!("--min-score {min_score} is not a match probability between 0 and 1");
    }
    let rules = crate::domain::precedence::Rules::for_config(&ctx.config)?;
    let store = open_existing(ctx)?;
    let rule = crate::ops::approve::Rule {
        min_score,
        max_size,
    };
    let done = crate::ops::approve::approve(&store, &ctx.config, &rules, rule, dry_run)?;
    let mut refused = 0;
    for a in &done {
        let verb = match (&a.refused, dry_run) {
            (Some(_), _) => "not approved",
            (None, true) => "would approve",
            (None, false) => "approved",
        };
        crate::outln!(
            "{verb} cluster {:>6}  {} records  weakest {:.3}  primary {}  {}",
            a.cluster_id,
            a.size,
            a.weakest,
            crate::domain::sanitize::for_terminal(&a.primary),
            crate::domain::sanitize::for_terminal(&a.label)
        );
        if let Some(why) = &a.refused {
            refused += 1;
            crate::outln!("  {}", crate::domain::sanitize::for_terminal(why));
        }
    }
    crate::outln!(
        "{} {} by rule: {}{}",
        if dry_run { "would approve" } else { "approved" },
        crate::domain::words::count(done.len() - refused, "cluster", "clusters"),
        rule.describe(),
        if refused > 0 {
            format!("; {refused} left pending for a steward (see above)")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The workspace, which must exist already (reports never create one).
pub fn open_existing(ctx: &Ctx) -> Result<Store> {
    report::open_existing_store(&ctx.workspace_path())
}

fn init(crm: &str, force: bool) -> Result<()> {
    let path = PathBuf::from("dupdesk.toml");
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists already (use --force to overwrite)",
            path.display()
        );
    }
    let text = config::DEFAULT_CONFIG.replace("kind = \"hubspot\"", &format!("kind = \"{crm}\""));
    std::fs::write(&path, text)?;
    crate::outln!("wrote {}", path.display());
    if crm == "sandbox" {
        crate::outln!("next: `dupdesk pull`, then `dupdesk match` and `dupdesk review`");
    } else {
        crate::outln!(
            "next: put a HubSpot private app token in the environment variable {} (crm.token_env in {}), then `dupdesk pull`, `dupdesk match` and `dupdesk review`; `dupdesk demo` tries everything on a local sandbox first",
            "HUBSPOT_ACCESS_TOKEN",
            path.display()
        );
    }
    Ok(())
}
