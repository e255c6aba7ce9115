//! `dupdesk demo`: everything local. A fresh workspace, the sandbox CRM seeded with generated
//! records (planted duplicates included) in a data file beside it, a pull over real HTTP, the
//! matcher, then the review TUI. The workspace remembers that its CRM is the sandbox, so every
//! later command on it (`pull`, `review`, `apply`, ...) starts the sandbox again from that file.

use anyhow::{Context, Result, bail};

use super::Ctx;
use super::connect::{
    META_CRM_KIND, META_SANDBOX_DATA, META_SANDBOX_RATE_LIMIT, default_sandbox_data, start_sandbox,
};
use crate::domain::words::count;
use crate::harness::demo::{self, DemoOptions};
use crate::store::{self, Store};

/// Marks a workspace as made by the demo, so re-running the demo may replace it and nothing
/// else ever is.
const META_DEMO: &str = "demo";

/// Where the demo puts its workspace unless `--workspace` says otherwise.
pub use crate::harness::demo::DEMO_WORKSPACE;

/// The demo's sandbox mimics a Professional portal (190 requests per 10 s).
const DEMO_RATE_LIMIT: u32 = 190;

pub struct DemoArgs {
    pub records: Option<usize>,
    pub no_tui: bool,
}

pub async fn run(ctx: &Ctx, args: DemoArgs) -> Result<()> {
    // The demo never touches the configured workspace unless asked to: it has its own.
    let ws = if ctx.explicit_workspace {
        ctx.workspace_path()
    } else {
        std::path::PathBuf::from(DEMO_WORKSPACE)
    };
    let data = default_sandbox_data(&ws);
    prepare_fresh(&ws, &data)?;

    let seed = match args.records {
        None => demo::default_seed()?,
        Some(n) => demo::generate(&DemoOptions::scaled(n)).data,
    };
    eprintln!(
        "demo: sandbox CRM with {} and {}, workspace {}",
        count(seed.contacts.len(), "contact", "contacts"),
        count(seed.companies.len(), "company", "companies"),
        ws.display()
    );
    let store = Store::open(&ws)?;
    let data_name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("sandbox data file name")?;
    store
        .call(move |c| {
            store::set_meta(c, META_DEMO, "true")?;
            store::set_meta(c, META_CRM_KIND, "sandbox")?;
            store::set_meta(c, META_SANDBOX_DATA, &data_name)?;
            store::set_meta(c, META_SANDBOX_RATE_LIMIT, &DEMO_RATE_LIMIT.to_string())?;
            Ok(())
        })
        .await?;
    let conn = start_sandbox(&ctx.config, &data, Some(seed), DEMO_RATE_LIMIT).await?;
    if let Some(s) = &conn.sandbox {
        eprintln!("demo: sandbox CRM listening on {}", s.base_url());
    }
    let report = super::pull::pull_with_progress(ctx, &store, &conn).await;
    conn.close().await;
    super::pull::print_report(&report?);

    let summary = store.call(|c| crate::store::records::counts(c)).await?;
    crate::outln!("workspace {} holds:", ws.display());
    for (system, object, n) in summary {
        crate::outln!(
            "  {n:>7} {object} from {}",
            crate::domain::sanitize::for_terminal(&system)
        );
    }
    let mappings = store
        .call(|c| store::reports::active_mapping_count(c))
        .await?;
    crate::outln!("  {mappings:>7} active id mappings");

    for object in crate::domain::model::ObjectType::ALL {
        let cfg = crate::domain::matcher::MatchConfig::new(&ctx.config.matcher, object)?;
        let store = store.clone();
        let report = tokio::task::spawn_blocking(move || {
            crate::ops::matching::run_match(
                &store,
                &cfg,
                crate::ops::matching::MatchMode::Full,
                &|_| {},
            )
        })
        .await
        .context("the matcher task")??;
        crate::outln!(
            "  {:>7} candidate duplicate clusters of {object} ({} candidate pairs compared)",
            report.clusters,
            report.candidate_pairs
        );
    }
    crate::outln!(
        "go on with: dupdesk --workspace {} <command>   (the sandbox starts again from {})",
        ws.display(),
        data.display()
    );
    if args.no_tui {
        return Ok(());
    }
    drop(store);
    let mut config = ctx.config.clone();
    config.workspace.path = ws;
    super::review::review_async(&config).await
}

/// Remove a previous demo's workspace and sandbox data; refuse to touch anything else.
fn prepare_fresh(ws: &std::path::Path, data: &std::path::Path) -> Result<()> {
    if ws.exists() {
        // open_existing: a file that is no workspace is refused as it is, not given a schema.
        // Closed (its thread joined, its log checkpointed) before its files are removed: a
        // connection still open on a removed file made the next one fail with "disk I/O error".
        let earlier = Store::open_existing(ws).and_then(|s| {
            let found = s.call_blocking(|c| {
                let demo = store::get_meta(c, META_DEMO)?;
                let decisions = store::reports::decision_count(c)?;
                Ok((demo, decisions))
            });
            s.close()?;
            found
        });
        let decisions = match earlier {
            Ok((Some(demo), decisions)) if demo == "true" => decisions,
            _ => bail!(
                "{} exists and is not a demo workspace; pass another --workspace",
                ws.display()
            ),
        };
        eprintln!(
            "demo: starting over: the earlier demo workspace {} and its {decisions} decision{} are replaced",
            ws.display(),
            if decisions == 1 { "" } else { "s" }
        );
    }
    for path in [ws.to_path_buf(), data.to_path_buf()] {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if p.exists() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("removing the old demo file {}", p.display()))?;
            }
        }
    }
    Ok(())
}
