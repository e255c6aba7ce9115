//! `dupdesk sandbox`: run the HubSpot-compatible sandbox CRM by itself until Ctrl-C or
//! SIGTERM, printing its URL on stdout. Flag parsing and process lifetime only; the server is
//! [`crate::harness::sandbox`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::harness::sandbox::seed::SeedData;
use crate::harness::sandbox::{self, FaultSpec, RateLimit, SandboxOptions, SearchRateLimit};

const FAULTS_HELP: &str = "\
Inject faults into a deterministic (seeded) share of responses. SPEC is a comma-separated
list of key=value:
  500=P               share answered 500 with HubSpot's error body (nothing applied)
  timeout=P           share that wait timeout_ms before being handled
  timeout_ms=MS       delay of a timeout fault (default 30000)
  drop_after_merge=P  share of merges applied and logged but never answered
  burst429=P          share that start a burst of 429 TEN_SECONDLY_ROLLING answers
  burst_len=N         requests per 429 burst (default 5)
  retry_after=S       send Retry-After: S on every 429 (default: not sent, like HubSpot)
  seed=N              seed of the fault generator (default 0)
500, timeout and burst429 are exclusive outcomes and must add up to at most 1.
Example: 500=0.05,timeout=0.02,timeout_ms=3000,drop_after_merge=0.1,burst429=0.02,seed=7";

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed file (JSON, {"contacts":[...],"companies":[...]}), loaded when the data is empty.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Keep the sandbox's data in this SQLite file (default: in memory, lost on exit).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Fault injection, e.g. 500=0.05,drop_after_merge=0.1,seed=7 (see --help).
    #[arg(long, value_name = "SPEC", long_help = FAULTS_HELP)]
    pub faults: Option<FaultSpec>,
    /// Requests allowed per rate-limit interval (HubSpot Free/Starter: 100).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub rate_limit: u32,
    /// The rolling rate-limit interval in milliseconds (HubSpot: 10000).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub rate_interval_ms: u64,
    /// Searches allowed per search interval, on top of --rate-limit (HubSpot: 5 per second).
    /// Default: 5, or more in proportion when --rate-limit/--rate-interval-ms allow more than
    /// 100 per 10 s.
    #[arg(long, value_name = "N")]
    pub search_rate_limit: Option<u32>,
    /// The rolling search rate-limit interval in milliseconds (HubSpot: 1000).
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    pub search_rate_interval_ms: u64,
    /// Accept only the bearer token held by this environment variable (default: any token).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

impl SandboxArgs {
    fn options(&self) -> Result<SandboxOptions> {
        let faults = self.faults.clone().unwrap_or_default();
        if self.rate_limit == 0 {
            bail!("--rate-limit must be at least 1");
        }
        if self.rate_interval_ms == 0 {
            bail!("--rate-interval-ms must be at least 1");
        }
        if self.search_rate_limit == Some(0) {
            bail!("--search-rate-limit must be at least 1");
        }
        if self.search_rate_interval_ms == 0 {
            bail!("--search-rate-interval-ms must be at least 1");
        }
        let rate_limit = RateLimit {
            max: self.rate_limit,
            interval: Duration::from_millis(self.rate_interval_ms),
            ..RateLimit::default()
        };
        let search_rate_limit = SearchRateLimit {
            max: self
                .search_rate_limit
                .unwrap_or_else(|| SearchRateLimit::derived(&rate_limit).max),
            interval: Duration::from_millis(self.search_rate_interval_ms),
        };
        let token = match &self.token_env {
            Some(var) => {
                let value = std::env::var(var)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .with_context(|| format!("--token-env {var}: the variable is not set"))?;
                Some(value.trim().to_string())
            }
            None => None,
        };
        let seed = match &self.seed {
            Some(path) => Some(SeedData::from_file(path)?),
            // Without a seed file it serves the default demo dataset.
            None => Some(crate::harness::demo::default_seed()?),
        };
        Ok(SandboxOptions {
            port: self.port,
            data: self.data.clone(),
            seed,
            rate_limit,
            search_rate_limit: Some(search_rate_limit),
            faults,
            token,
        })
    }
}

pub fn run(args: &SandboxArgs) -> Result<()> {
    let opts = args.options()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Listening for the signals before the URL is printed: whoever reads the URL may stop
        // the sandbox at once, and a SIGTERM before the handler would kill it uncleanly.
        let stop = stop_signal()?;
        let sandbox = sandbox::start(opts).await?;
        crate::outln!("sandbox CRM listening on {}", sandbox.base_url());
        std::io::stdout().flush()?;
        stop.await?;
        sandbox.shutdown().await;
        Ok(())
    })
}

/// A future that ends at SIGTERM or Ctrl-C; the handlers are installed when this returns.
fn stop_signal() -> Result<impl std::future::Future<Output = Result<()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            tokio::signal::ctrl_c()
                .await
                .context("listening for Ctrl-C")
        })
    }
}
