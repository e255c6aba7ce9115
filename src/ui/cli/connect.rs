//! Which CRM a command talks to. A workspace made by `dupdesk demo` (or configured with
//! `crm.kind = "sandbox"`) talks to the built-in sandbox CRM: it is started in-process on a free
//! loopback port from its data file beside the workspace, and reached over real HTTP like any
//! HubSpot portal. Otherwise the HubSpot connector uses the configured base URL and the token from
//! the environment (or a private config file).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::config::{Config, CrmKind, Secret};
use crate::crm::Connector;
use crate::crm::hubspot::{HubSpotConnector, HubSpotOptions};
use crate::harness::sandbox::{self, RateLimit, Sandbox, SandboxOptions};
use crate::store::{self, Store};

/// Workspace settings (the `meta` table) that make a sandbox workspace.
pub const META_CRM_KIND: &str = "crm.kind";
pub const META_SANDBOX_DATA: &str = "sandbox.data";
pub const META_SANDBOX_RATE_LIMIT: &str = "sandbox.rate_limit";

/// A live connection to the workspace's CRM. Holds the in-process sandbox, if any, so that it
/// serves for as long as the connection lives.
pub struct CrmConnection {
    pub crm: Arc<dyn Connector>,
    pub sandbox: Option<Sandbox>,
}

impl CrmConnection {
    pub async fn close(self) {
        drop(self.crm);
        if let Some(s) = self.sandbox {
            s.shutdown().await;
        }
    }
}

/// The sandbox data file of a workspace: `<workspace>.sandbox.db` beside it.
pub fn default_sandbox_data(workspace: &Path) -> PathBuf {
    let mut name = workspace
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "workspace".into());
    name.push(".sandbox.db");
    workspace.with_file_name(name)
}

/// Connect to the CRM of `store`'s workspace.
pub async fn connect(config: &Config, store: &Store) -> Result<CrmConnection> {
    let (kind, data, limit) = store
        .call(|c| {
            Ok((
                store::get_meta(c, META_CRM_KIND)?,
                store::get_meta(c, META_SANDBOX_DATA)?,
                store::get_meta(c, META_SANDBOX_RATE_LIMIT)?,
            ))
        })
        .await?;
    let sandbox_kind = match kind.as_deref() {
        Some("sandbox") => true,
        Some("hubspot") => false,
        _ => config.crm.kind == CrmKind::Sandbox,
    };
    if !sandbox_kind {
        let token = config.token().ok_or_else(|| {
            anyhow!(
                "no CRM token: set the environment variable {} (crm.token_env) to a HubSpot private app token",
                config.crm.token_env
            )
        })?;
        let crm = HubSpotConnector::new(HubSpotOptions::from_config(config, token))?;
        return Ok(CrmConnection {
            crm: Arc::new(crm),
            sandbox: None,
        });
    }
    let data = match data {
        Some(d) => resolve_beside(store.path(), &d),
        None => default_sandbox_data(store.path()),
    };
    let rate_limit = limit
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(config.crm.rate_limit);
    let seed = if data.exists() {
        None
    } else {
        Some(crate::harness::demo::default_seed()?)
    };
    start_sandbox(config, &data, seed, rate_limit).await
}

/// Start the sandbox on `data` (seeding it when empty) and connect to it over loopback HTTP.
pub async fn start_sandbox(
    config: &Config,
    data: &Path,
    seed: Option<sandbox::seed::SeedData>,
    rate_limit: u32,
) -> Result<CrmConnection> {
    // A fresh random token per run: the sandbox requires a bearer token, as HubSpot does, and
    // nothing needs to store it.
    let token = uuid::Uuid::new_v4().to_string();
    let interval = Duration::from_millis(config.crm.rate_interval_ms);
    let sandbox = sandbox::start(SandboxOptions {
        port: 0,
        data: Some(data.to_path_buf()),
        seed,
        rate_limit: RateLimit {
            max: rate_limit,
            interval,
            ..RateLimit::default()
        },
        token: Some(token.clone()),
        ..SandboxOptions::default()
    })
    .await
    .with_context(|| format!("starting the sandbox CRM on {}", data.display()))?;
    let mut opts = HubSpotOptions::from_config(config, Secret::new(token));
    opts.base_url = sandbox.base_url();
    opts.rate_limit = rate_limit;
    opts.rate_interval = interval;
    let crm = HubSpotConnector::new(opts)?;
    Ok(CrmConnection {
        crm: Arc::new(crm),
        sandbox: Some(sandbox),
    })
}

fn resolve_beside(workspace: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() {
        p
    } else {
        workspace.with_file_name(p)
    }
}
