//! Logs go to `dupdesk.log` (JSON lines) in the configured folder, never to the terminal the
//! TUI draws on. Tokens never reach a log: they are held in `config::Secret`, which prints as
//! `***`, and the connector does not log request headers.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Start logging to `<log dir>/dupdesk.log`. `DUPDESK_LOG` overrides the configured filter.
/// Returns the log file's path. Calling it twice keeps the first subscriber.
pub fn init(config: &Config) -> Result<PathBuf> {
    let dir = config.log_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating log folder {}", dir.display()))?;
    let path = dir.join("dupdesk.log");
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Record ids, values and CRM answers are customer data: the log is its owner's only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    // A log made before this release may be readable by others: tighten it too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = file.metadata()
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
    }
    let filter = std::env::var("DUPDESK_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&config.logging.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_writer(Mutex::new(file))
        .with_env_filter(filter)
        .try_init();
    Ok(path)
}
