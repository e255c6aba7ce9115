//! The sandbox CRM: a local HTTP server on 127.0.0.1 that speaks the subset of HubSpot's CRM v3
//! objects API dupdesk uses (list, read, create, update, batch read/update/create, search,
//! merge) for contacts and companies, with HubSpot's wire format, error bodies, rate-limit
//! headers and merge semantics, so that pointing dupdesk (or HubSpot's own client libraries)
//! at it behaves as against a real portal. It keeps its own small SQLite store, can inject
//! faults deterministically, and logs every merge it applies. It serves `dupdesk demo`, the
//! connector and executor tests, and users trying dupdesk; production code paths must only
//! ever reach it through its URL.
//!
//! Choices where HubSpot leaves room, documented so a user is not surprised:
//! - Values written through the API get history versions with `sourceType` `INTEGRATION`
//!   (what a private app's writes show as) and `sourceId` `sandbox-private-app`.
//! - A merge writes versions with `sourceType` `MERGE` for `hs_object_id`,
//!   `hs_merged_object_ids`, the last-modified date, and for a primary value that an absorbed
//!   record's newer history would otherwise shadow (so the newest version is the current value).
//!   The merged record keeps the primary's `createdAt`. HubSpot's documented exceptions apply:
//!   the absorbed email (contacts) or domain (companies) goes to `hs_additional_emails` /
//!   `hs_additional_domains`, the lifecycle stage furthest down the funnel wins, and two records
//!   included in a combined 250 merges cannot be merged.
//! - Property definitions (`GET /crm/v3/properties/{objectType}[/{name}]`, and creating a
//!   custom one with `POST`) come from one table that also drives the checks of every create,
//!   update and batch: HubSpot's error codes (`PROPERTY_DOESNT_EXIST`, `READ_ONLY_VALUE`,
//!   `INVALID_OPTION`, `INVALID_EMAIL`, `INVALID_DATE`, `INVALID_LONG`) in one 400 for the whole
//!   request (see [`properties`]). Seeded records are stored as they come, unchecked, as a real
//!   portal's old data is.
//! - A write giving a contact an email another live contact has (also as an additional email)
//!   is refused with 409 CONFLICT "Contact already exists. Existing ID: N", on create, update
//!   and in batches alike; a `hasUniqueValue` property with HubSpot's 400 "Cannot set
//!   PropertyValueCoordinates{...} on X. Y already has that value.". A batch with one such
//!   input is refused whole; ids it cannot find are still reported with a 207.
//! - Faults are drawn per authenticated request in arrival order (see [`faults`]); a request
//!   whose client gives up while it is delayed is dropped and not applied.
//! - Searches have their own limit on top of the general one (HubSpot: 5 per second; 429
//!   with policy `SECONDLY`). Left unset it is derived from the general limit (see
//!   [`SearchRateLimit::derived`]), so a sandbox given a generous limit searches as freely.
//! - A request whose URL (path and query) is longer than [`URL_MAX`] characters is answered
//!   414 with an HTML page, as HubSpot's edge does, before the token is even looked at.
//! - `limit` and `after` are read as HubSpot reads them: a list page larger than its maximum
//!   is cut to it; a search `limit` over 200, a negative or non-numeric `limit` and an `after`
//!   that is not a cursor the sandbox handed out are 400 VALIDATION_ERROR naming the value;
//!   a search with `limit: 0` answers the `total` only, with no next page.
//! - Archiving (`DELETE /crm/v3/objects/{type}/{id}`, `POST .../batch/archive`, both 204 also
//!   for ids that are unknown or archived already) hides a record from search, from normal
//!   reads, batch reads (its id is among the OBJECT_NOT_FOUND ones) and listings; reads and
//!   listings with `archived=true` see only archived records, with `archived` and
//!   `archivedAt`. Nothing is restored or purged.
//! - A batch read asking for `propertiesWithHistory` takes at most 50 inputs (HubSpot's 400).
//! - `search_lag_ms` (see [`faults`]) leaves a record out of search until that long after its
//!   last write, as HubSpot's lagging index does; other reads see it at once.
//!
//! Admin routes, neither authenticated nor rate limited: `GET /_sandbox/merges` (the merge log
//! as JSON, in order) and `GET /_sandbox/stats` (request counts by status).

mod api;
mod error;
pub mod faults;
mod limits;
mod paging;
pub mod properties;
mod search;
pub mod seed;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::URL_MAX;
pub use faults::{FaultSpec, FaultSpecError};
pub use limits::{RateLimit, SearchRateLimit};
pub use store::{API_SOURCE_ID, API_SOURCE_TYPE, MergeLogEntry};

/// How to run a sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// 0: any free port. The sandbox always binds 127.0.0.1.
    pub port: u16,
    /// The sandbox's own SQLite file; `None` keeps the data in memory.
    pub data: Option<std::path::PathBuf>,
    /// Loaded only when the store is empty, so a restart from a data file keeps its changes.
    pub seed: Option<seed::SeedData>,
    pub rate_limit: RateLimit,
    /// The search endpoints' own limit; `None`: derived from `rate_limit`
    /// ([`SearchRateLimit::derived`]), HubSpot's 5 per second at HubSpot's default limit.
    pub search_rate_limit: Option<SearchRateLimit>,
    pub faults: FaultSpec,
    /// `Some`: the only bearer token accepted. `None`: any non-empty bearer token.
    pub token: Option<String>,
}

/// A running sandbox. Dropping it stops the server too; [`Sandbox::shutdown`] also waits for
/// it to finish.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<api::AppState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Start a sandbox on 127.0.0.1 and return once it accepts connections.
pub async fn start(opts: SandboxOptions) -> Result<Sandbox> {
    let mut db = store::SandboxDb::open(opts.data.as_deref())?;
    if let Some(seed) = &opts.seed
        && db.is_empty()?
    {
        db.load_seed(seed).context("loading the sandbox seed")?;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .with_context(|| format!("binding the sandbox to 127.0.0.1:{}", opts.port))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let search_limit = opts
        .search_rate_limit
        .clone()
        .unwrap_or_else(|| SearchRateLimit::derived(&opts.rate_limit));
    let state = Arc::new(api::AppState {
        db: Mutex::new(db),
        limiter: Mutex::new(limits::Limiter::new(opts.rate_limit, search_limit)),
        dice: Mutex::new(faults::FaultDice::new(opts.faults)),
        token: opts.token,
        base_url: format!("http://{addr}"),
        stats: Mutex::new(Default::default()),
        shutdown: shutdown.clone(),
    });
    let app = api::router(state.clone());
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!("sandbox server stopped: {e}");
        }
    });
    tracing::info!("sandbox CRM listening on http://{addr}");
    Ok(Sandbox {
        addr,
        state,
        shutdown,
        task: Some(task),
    })
}

impl Sandbox {
    /// `http://127.0.0.1:PORT`, the value for a connector's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every merge applied, in order.
    pub async fn merge_log(&self) -> Result<Vec<MergeLogEntry>> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let db = state.db.lock().unwrap_or_else(|e| e.into_inner());
            db.merge_log()
        })
        .await
        .context("reading the sandbox merge log")?
    }

    /// Stop serving (unanswered requests are released) and wait for the server to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
