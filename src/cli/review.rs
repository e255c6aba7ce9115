//! `dupdesk review`: open the review TUI on the workspace. Logs go to the log file, never to
//! the terminal the TUI draws on.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::store::Store;

pub fn review(config: &Config) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(review_async(config))
}

/// The review on an existing runtime (the demo's).
pub async fn review_async(config: &Config) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("dupdesk review needs an interactive terminal (stdin and stdout are not one)");
    }
    let path = config.workspace.path.clone();
    if !path.exists() {
        bail!(
            "workspace {} does not exist; run `dupdesk demo`, or `dupdesk pull` and `dupdesk match` first",
            path.display()
        );
    }
    let log = crate::logging::init(config)?;
    tracing::info!(workspace = %path.display(), "review started");
    let store = Store::open(&path)?;
    crate::tui::run(store, config, None)
        .await
        .with_context(|| format!("the review (log: {})", log.display()))
}
