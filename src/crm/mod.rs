//! CRM connectors: the [`Connector`] trait that the rest of dupdesk talks to, the typed
//! [`CrmError`] that lets callers tell a rate limit from a missing record from a validation
//! error, and the client-side rate limiter and retry policy shared by every connector.
//! A connector moves data; it must not decide what to merge.

pub mod hubspot;
pub mod ratelimit;
pub mod retry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::model::{ObjectType, PropertyDef, Record};

/// Why a CRM call failed, in the categories a caller acts on differently.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrmError {
    /// 429. `policy` is HubSpot's `policyName` (TEN_SECONDLY_ROLLING, SECONDLY, DAILY).
    #[error("rate limited ({policy}): {message}")]
    RateLimited {
        policy: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// 404, or an id the CRM does not know.
    #[error("not found: {message}")]
    NotFound { message: String },
    /// 400: the request was understood and refused (unknown property, bad value, ...).
    #[error("validation error: {message}")]
    Validation {
        message: String,
        correlation_id: Option<String>,
    },
    /// 401/403: the token is missing, wrong or lacks a scope.
    #[error("authentication failed ({status}): {message}")]
    Auth { status: u16, message: String },
    /// 5xx, timeouts, dropped connections: worth retrying.
    #[error("transient failure{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Transient {
        status: Option<u16>,
        message: String,
    },
    /// Anything else the CRM answered (409, unexpected bodies, ...): not retried.
    #[error("CRM error ({status}): {message}")]
    Other { status: u16, message: String },
    /// The connector cannot do this for its CRM.
    #[error("not supported by this connector: {what}")]
    Unsupported { what: String },
}

impl CrmError {
    /// Worth sending again after a wait. A DAILY rate limit is not: it lasts until tomorrow.
    pub fn is_retryable(&self) -> bool {
        match self {
            CrmError::RateLimited { policy, .. } => policy != "DAILY",
            CrmError::Transient { .. } => true,
            _ => false,
        }
    }

    pub fn is_daily_limit(&self) -> bool {
        matches!(self, CrmError::RateLimited { policy, .. } if policy == "DAILY")
    }
}

/// One page of a listing; `next` is the cursor for the following page, `None` on the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    pub next: Option<String>,
}

/// The result of a batch read: the records found (keyed by the id they were asked for, which
/// differs from the record's own id when it was merged away) and the ids the CRM did not find.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchRead {
    pub found: Vec<Record>,
    pub missing: Vec<String>,
}

/// The result of a batch update: the records as the CRM answered them (each under its own id)
/// and the ids the CRM did not find (the others were updated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchUpdated {
    pub updated: Vec<Record>,
    pub missing: Vec<String>,
}

/// What reading one id told us.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    /// The id is a live record.
    Live(Record),
    /// The id was merged away: the CRM answered with the record it now belongs to.
    MergedInto(Record),
    /// The CRM does not know the id.
    Missing,
}

/// Everything dupdesk needs from a CRM. Implementations are cheap to share (`Arc`) and safe to
/// call concurrently; each call is rate-limited and retried inside the implementation.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Short name of the system, used in logs and as `source_system` in the id mapping table.
    fn system(&self) -> &str;

    /// The rate limiter every call of this connector goes through, if it has one. A caller
    /// that groups requests into one call (the executor's batches) takes a
    /// [`ratelimit::Turn`] from it and chooses what the call carries only then, so that what
    /// queued while it waited goes along.
    fn rate_limiter(&self) -> Option<Arc<ratelimit::RateLimiter>> {
        None
    }

    /// One page of every (non-archived) record of a type. `history` names the properties whose
    /// history to include.
    async fn list_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
        properties: &[String],
        history: &[String],
    ) -> Result<Page, CrmError>;

    /// One page of the archived (deleted) records of a type, in the CRM's order; only their
    /// ids and times matter. HubSpot's list cannot filter by time, so the whole list is paged.
    async fn archived_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
    ) -> Result<Page, CrmError> {
        let _ = after;
        Err(CrmError::Unsupported {
            what: format!("listing archived {object}"),
        })
    }

    /// One page of the records modified at or after `since` (RFC 3339), oldest first. Paged
    /// by key, so a record that is not modified meanwhile is never skipped; a record may come
    /// more than once.
    async fn modified_since_page(
        &self,
        object: ObjectType,
        since: &str,
        after: Option<&str>,
        properties: &[String],
    ) -> Result<Page, CrmError>;

    /// Any number of ids; the implementation splits them into calls the CRM accepts (HubSpot:
    /// 100 per call, 50 when `history` is not empty).
    async fn batch_read(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        history: &[String],
    ) -> Result<BatchRead, CrmError>;

    /// Read one id, telling a live record from one that was merged away.
    async fn read(
        &self,
        object: ObjectType,
        id: &str,
        properties: &[String],
    ) -> Result<ReadOutcome, CrmError>;

    /// Set properties; an empty string clears a value.
    async fn update(
        &self,
        object: ObjectType,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Record, CrmError>;

    /// Set properties on many records, `(id, properties)` each, in as few calls as the CRM
    /// allows. One refused input may refuse the whole call (HubSpot's `batch/update` does):
    /// the error then stands for every input. Ids the CRM does not know come back in
    /// `missing`. The default is one [`Connector::update`] per id, for CRMs without a batch
    /// update; it is not all-or-nothing.
    async fn batch_update(
        &self,
        object: ObjectType,
        inputs: &[(String, BTreeMap<String, String>)],
    ) -> Result<BatchUpdated, CrmError> {
        let mut out = BatchUpdated::default();
        for (id, properties) in inputs {
            match self.update(object, id, properties).await {
                Ok(record) => out.updated.push(record),
                Err(CrmError::NotFound { .. }) => out.missing.push(id.clone()),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Contacts whose `email` equals the given address.
    async fn search_by_email(
        &self,
        email: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError>;

    /// Merge `loser` into `primary`. The returned record's id is the survivor, which in
    /// HubSpot is a new id, not `primary`.
    async fn merge(
        &self,
        object: ObjectType,
        primary: &str,
        loser: &str,
    ) -> Result<Record, CrmError>;

    /// The CRM's definition of every property of a type: which are read-only, their types,
    /// the options of enumerations, which must be unique. Checked against before any merge.
    async fn properties(&self, object: ObjectType) -> Result<Vec<PropertyDef>, CrmError> {
        Err(CrmError::Unsupported {
            what: format!("describing the properties of {object}"),
        })
    }

    /// The live records of a type whose `property` equals `value` (as the CRM compares them:
    /// HubSpot ignores case). Used to check a unique property before it is written.
    async fn search_equal(
        &self,
        object: ObjectType,
        property: &str,
        value: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        let _ = (property, value, properties);
        Err(CrmError::Unsupported {
            what: format!("searching {object} by a property"),
        })
    }
}
