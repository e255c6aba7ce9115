//! The HubSpot CRM v3 connector: contacts and companies over HTTPS (reqwest with rustls),
//! implementing [`Connector`] exactly as HubSpot's objects API behaves (see
//! `/work/shared/CRM-API.md`). It translates between the wire types of [`wire`] and the model;
//! `client` paces, retries and logs the requests. It must not decide what to merge, and it
//! never retries a merge whose outcome is unknown (see [`crate::crm::retry`]).
//!
//! Behaviour a caller should know:
//! - A merged-away id reads as [`ReadOutcome::MergedInto`] the survivor; the survivor of a
//!   merge is the id in HubSpot's answer (a new id), never `primaryObjectId`.
//! - Modified-since listings page through the search endpoint by key (last-modified time, then
//!   `hs_object_id` within one instant), never by offset, so a record edited meanwhile cannot
//!   make another one skip and the 10,000-result cap never applies (see the `search` module).
//!   Each record comes once, but for a block at one instant larger than a page (paged by id
//!   after its first page, which comes again). The `after` cursor carries the position;
//!   `since` counts only for the first page.
//! - Batch reads are split into calls of 100 ids, or 50 when property history is asked for
//!   (HubSpot refuses more with a 400).
//! - Search calls also pass a per-connector limiter of 4 per second (HubSpot's search limit);
//!   the main limiter can be shared between connectors with [`HubSpotConnector::with_limiter`].
//! - Property definitions come from `GET /crm/v3/properties/{objectType}`, all in one answer
//!   (HubSpot does not page it). A contact's `email` is reported unique although HubSpot's
//!   definition does not say so, because HubSpot refuses a second live contact with it.
//! - A list page or a read whose property names would make the URL longer than
//!   [`URL_BUDGET`] (HubSpot answers 414 from about 16,000 characters) lists the ids alone and
//!   batch-reads their properties, names in the body (see the `wide` module).
//! - [`Connector::search_equal`] is HubSpot's search `EQ`, which ignores case; it goes through
//!   the same search limiter and stops at the search result cap.

mod client;
mod search;
mod wide;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use client::{CallStats, error_from_response};
pub use search::{SEARCH_PAGE_LIMIT, SEARCH_RESULT_CAP};
pub use wide::URL_BUDGET;

use self::client::{Call, Http};
use self::search::Cursor;
use self::wire::{
    BatchReadRequest, BatchResponse, BatchUpdateInput, BatchUpdateRequest, CollectionResponse,
    Filter, FilterGroup, IdInput, MergeRequest, PropertyCollection, SearchRequest, SearchResponse,
    SimplePublicObject, UpdateInput,
};
use super::ratelimit::RateLimiter;
use super::retry::{Idempotency, RetryPolicy};
use super::{BatchRead, BatchUpdated, Connector, CrmError, Page, ReadOutcome};
use crate::config::{Config, Secret};
use crate::domain::model::{ObjectType, PropertyDef, Record};

/// HubSpot's largest list page, and its largest when property history is asked for.
const LIST_PAGE_LIMIT: u32 = 100;
const LIST_PAGE_LIMIT_WITH_HISTORY: u32 = 50;
/// HubSpot's largest batch read, and its largest when property history is asked for (more
/// is a 400 VALIDATION_ERROR, not retried, so a caller asking for 100 would fail for ever).
const BATCH_LIMIT: usize = 100;
const BATCH_LIMIT_WITH_HISTORY: usize = 50;
/// HubSpot's search endpoints allow about four requests per second per token.
const SEARCH_RATE: (u32, Duration) = (4, Duration::from_secs(1));

/// How to reach a HubSpot portal (or the sandbox standing in for one).
#[derive(Debug, Clone)]
pub struct HubSpotOptions {
    pub base_url: String,
    pub token: Secret,
    /// Requests allowed per `rate_interval` (100 per 10 s on Free/Starter).
    pub rate_limit: u32,
    pub rate_interval: Duration,
    /// Retries of a 5xx, timeout or 429 before the call counts as failed.
    pub max_retries: u32,
    /// Per request, connecting included.
    pub timeout: Duration,
    /// Records per list page (at most 100; 50 when property history is asked for).
    pub page_size: u32,
    /// The system's name in logs and the id mapping table.
    pub system: String,
}

impl HubSpotOptions {
    pub fn from_config(config: &Config, token: Secret) -> HubSpotOptions {
        HubSpotOptions {
            base_url: config.crm.base_url.clone(),
            token,
            rate_limit: config.crm.rate_limit,
            rate_interval: Duration::from_millis(config.crm.rate_interval_ms),
            max_retries: config.crm.max_retries,
            timeout: Duration::from_secs(config.crm.timeout_secs),
            page_size: config.crm.page_size,
            system: "crm".to_string(),
        }
    }
}

/// The HubSpot connector. Cheap to share behind an `Arc`; safe to call concurrently.
pub struct HubSpotConnector {
    http: Http,
    /// The main limiter `http` paces every call with (see [`Connector::rate_limiter`]).
    limiter: Arc<RateLimiter>,
    page_size: u32,
    system: String,
    search_cap: u32,
}

impl HubSpotConnector {
    /// A connector with its own rate limiter sized from the options.
    pub fn new(opts: HubSpotOptions) -> anyhow::Result<HubSpotConnector> {
        let limiter = Arc::new(RateLimiter::new(opts.rate_limit, opts.rate_interval));
        HubSpotConnector::with_limiter(opts, limiter)
    }

    /// A connector that shares `limiter` with others spending the same account's budget.
    pub fn with_limiter(
        opts: HubSpotOptions,
        limiter: Arc<RateLimiter>,
    ) -> anyhow::Result<HubSpotConnector> {
        let http = Http::new(
            &opts.base_url,
            &opts.token,
            opts.timeout,
            limiter.clone(),
            RateLimiter::new(SEARCH_RATE.0, SEARCH_RATE.1),
            RetryPolicy::new(opts.max_retries),
        )?;
        Ok(HubSpotConnector {
            http,
            limiter,
            page_size: opts.page_size.clamp(1, LIST_PAGE_LIMIT),
            system: opts.system,
            search_cap: SEARCH_RESULT_CAP,
        })
    }

    /// Replace the back-off timing (the retry counts stay as configured).
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> HubSpotConnector {
        self.http.retry.base = base;
        self.http.retry.cap = cap;
        self
    }

    /// Lower the search result cap below HubSpot's 10,000 (the pages an equality search
    /// follows), so the cap can be exercised with small data. Never raise it: HubSpot refuses
    /// offsets past its cap. Modified-since listings use no offsets and ignore it.
    pub fn with_search_cap(mut self, cap: u32) -> HubSpotConnector {
        self.search_cap = cap.clamp(1, SEARCH_RESULT_CAP);
        self
    }

    /// What the connector has sent so far.
    pub fn stats(&self) -> CallStats {
        self.http.stats()
    }

    async fn search(
        &self,
        object: ObjectType,
        ids: &[&str],
        request: &SearchRequest,
    ) -> Result<SearchResponse, CrmError> {
        let reply = self
            .http
            .execute(&Call {
                op: "search",
                object,
                ids,
                method: Method::POST,
                path: vec!["crm", "v3", "objects", object.as_str(), "search"],
                query: Vec::new(),
                body: Some(to_json(request)?),
                idempotency: Idempotency::Idempotent,
                search: true,
            })
            .await?;
        parse(&reply.body, reply.status)
    }

    /// Every live record whose `property` equals `value` by HubSpot's search `EQ` (which
    /// ignores case), page after page up to the search result cap.
    async fn search_eq(
        &self,
        object: ObjectType,
        property: &str,
        value: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        let mut request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![Filter {
                    property_name: property.to_string(),
                    operator: "EQ".to_string(),
                    value: Some(value.to_string()),
                    high_value: None,
                    values: None,
                }],
            }],
            sorts: Vec::new(),
            query: None,
            properties: properties.to_vec(),
            limit: Some(LIST_PAGE_LIMIT),
            after: None,
        };
        let mut found = Vec::new();
        loop {
            let response = self.search(object, &[], &request).await?;
            found.extend(response.results.into_iter().map(|o| o.into_record(object)));
            // Far more than any real set of equal values: stop at the cap, not past it.
            match response.paging.and_then(|p| p.next) {
                Some(next)
                    if next
                        .after
                        .parse::<u32>()
                        .is_ok_and(|n| n + LIST_PAGE_LIMIT <= self.search_cap) =>
                {
                    request.after = Some(next.after);
                }
                _ => return Ok(found),
            }
        }
    }

    /// One GET of the list endpoint with `query` (paging, `archived`, properties).
    async fn list(
        &self,
        op: &'static str,
        object: ObjectType,
        query: Vec<(&'static str, String)>,
    ) -> Result<CollectionResponse, CrmError> {
        let reply = self
            .http
            .execute(&Call {
                op,
                object,
                ids: &[],
                method: Method::GET,
                path: vec!["crm", "v3", "objects", object.as_str()],
                query,
                body: None,
                idempotency: Idempotency::Idempotent,
                search: false,
            })
            .await?;
        parse(&reply.body, reply.status)
    }

    async fn batch_read_chunk(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        history: &[String],
    ) -> Result<BatchRead, CrmError> {
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let request = BatchReadRequest {
            inputs: ids.iter().map(|id| IdInput { id: id.clone() }).collect(),
            properties: properties.to_vec(),
            properties_with_history: history.to_vec(),
            id_property: None,
        };
        let reply = self
            .http
            .execute(&Call {
                op: "batch_read",
                object,
                ids: &id_refs,
                method: Method::POST,
                path: vec!["crm", "v3", "objects", object.as_str(), "batch", "read"],
                query: vec![("archived", "false".to_string())],
                body: Some(to_json(&request)?),
                idempotency: Idempotency::Idempotent,
                search: false,
            })
            .await?;
        let response: BatchResponse = parse(&reply.body, reply.status)?;
        let mut missing = Vec::new();
        for error in &response.errors {
            if error.category != "OBJECT_NOT_FOUND" {
                return Err(CrmError::Other {
                    status: reply.status.as_u16(),
                    message: format!("batch read: {} ({})", error.message, error.category),
                });
            }
            missing.extend(error.context.get("ids").into_iter().flatten().cloned());
        }
        Ok(BatchRead {
            found: response
                .results
                .into_iter()
                .map(|o| o.into_record(object))
                .collect(),
            missing,
        })
    }
}

#[async_trait]
impl Connector for HubSpotConnector {
    fn system(&self) -> &str {
        &self.system
    }

    fn rate_limiter(&self) -> Option<Arc<RateLimiter>> {
        Some(self.limiter.clone())
    }

    async fn list_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
        properties: &[String],
        history: &[String],
    ) -> Result<Page, CrmError> {
        let limit = if history.is_empty() {
            self.page_size
        } else {
            self.page_size.min(LIST_PAGE_LIMIT_WITH_HISTORY)
        };
        let mut query = vec![
            ("limit", limit.to_string()),
            ("archived", "false".to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let path = ["crm", "v3", "objects", object.as_str()];
        if self.too_long(&path, &query, properties, history) {
            return self
                .list_page_wide(object, query, properties, history)
                .await;
        }
        query.extend(properties.iter().map(|p| ("properties", p.clone())));
        query.extend(history.iter().map(|p| ("propertiesWithHistory", p.clone())));
        let response = self.list("list", object, query).await?;
        Ok(page_of(object, response))
    }

    async fn archived_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
    ) -> Result<Page, CrmError> {
        let mut query = vec![
            ("limit", LIST_PAGE_LIMIT.to_string()),
            ("archived", "true".to_string()),
            ("properties", "hs_object_id".to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let response = self.list("list_archived", object, query).await?;
        Ok(page_of(object, response))
    }

    async fn modified_since_page(
        &self,
        object: ObjectType,
        since: &str,
        after: Option<&str>,
        properties: &[String],
    ) -> Result<Page, CrmError> {
        let cursor = match after {
            Some(after) => Cursor::decode(after)?,
            None => Cursor::start(since)?,
        };
        let request = cursor.request(object, properties, SEARCH_PAGE_LIMIT);
        let response = self.search(object, &[], &request).await?;
        let next = cursor
            .next(object, &response)
            .or_else(|| cursor.after_tie());
        Ok(Page {
            records: response
                .results
                .into_iter()
                .map(|o| o.into_record(object))
                .collect(),
            next: next.map(|c| c.encode()),
        })
    }

    async fn batch_read(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        history: &[String],
    ) -> Result<BatchRead, CrmError> {
        let mut all = BatchRead::default();
        let size = if history.is_empty() {
            BATCH_LIMIT
        } else {
            BATCH_LIMIT_WITH_HISTORY
        };
        for chunk in ids.chunks(size) {
            let part = self
                .batch_read_chunk(object, chunk, properties, history)
                .await?;
            all.found.extend(part.found);
            all.missing.extend(part.missing);
        }
        Ok(all)
    }

    async fn read(
        &self,
        object: ObjectType,
        id: &str,
        properties: &[String],
    ) -> Result<ReadOutcome, CrmError> {
        let mut query = vec![("archived", "false".to_string())];
        let path = ["crm", "v3", "objects", object.as_str(), id];
        if self.too_long(&path, &query, properties, &[]) {
            return self.read_wide(object, id, properties).await;
        }
        query.extend(properties.iter().map(|p| ("properties", p.clone())));
        let sent = self
            .http
            .execute(&Call {
                op: "read",
                object,
                ids: &[id],
                method: Method::GET,
                path: vec!["crm", "v3", "objects", object.as_str(), id],
                query,
                body: None,
                idempotency: Idempotency::Idempotent,
                search: false,
            })
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            Err(CrmError::NotFound { .. }) => return Ok(ReadOutcome::Missing),
            Err(e) => return Err(e),
        };
        let record = parse::<SimplePublicObject>(&reply.body, reply.status)?.into_record(object);
        // HubSpot answers a merged-away id with the record it was merged into.
        Ok(if record.id == id {
            ReadOutcome::Live(record)
        } else {
            ReadOutcome::MergedInto(record)
        })
    }

    async fn update(
        &self,
        object: ObjectType,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Record, CrmError> {
        let body = UpdateInput {
            properties: properties.clone(),
        };
        let reply = self
            .http
            .execute(&Call {
                op: "update",
                object,
                ids: &[id],
                method: Method::PATCH,
                path: vec!["crm", "v3", "objects", object.as_str(), id],
                query: Vec::new(),
                body: Some(to_json(&body)?),
                // Setting the same values twice leaves the same record.
                idempotency: Idempotency::Idempotent,
                search: false,
            })
            .await?;
        Ok(parse::<SimplePublicObject>(&reply.body, reply.status)?.into_record(object))
    }

    async fn batch_update(
        &self,
        object: ObjectType,
        inputs: &[(String, BTreeMap<String, String>)],
    ) -> Result<BatchUpdated, CrmError> {
        let mut all = BatchUpdated::default();
        for chunk in inputs.chunks(BATCH_LIMIT) {
            let id_refs: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            let request = BatchUpdateRequest {
                inputs: chunk
                    .iter()
                    .map(|(id, properties)| BatchUpdateInput {
                        id: id.clone(),
                        properties: properties.clone(),
                    })
                    .collect(),
            };
            let reply = self
                .http
                .execute(&Call {
                    op: "batch_update",
                    object,
                    ids: &id_refs,
                    method: Method::POST,
                    path: vec!["crm", "v3", "objects", object.as_str(), "batch", "update"],
                    query: Vec::new(),
                    body: Some(to_json(&request)?),
                    // Setting the same values twice leaves the same records.
                    idempotency: Idempotency::Idempotent,
                    search: false,
                })
                .await?;
            let response: BatchResponse = parse(&reply.body, reply.status)?;
            for error in &response.errors {
                if error.category != "OBJECT_NOT_FOUND" {
                    return Err(CrmError::Other {
                        status: reply.status.as_u16(),
                        message: format!("batch update: {} ({})", error.message, error.category),
                    });
                }
                all.missing
                    .extend(error.context.get("ids").into_iter().flatten().cloned());
            }
            all.updated
                .extend(response.results.into_iter().map(|o| o.into_record(object)));
        }
        Ok(all)
    }

    async fn search_by_email(
        &self,
        email: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        self.search_eq(ObjectType::Contacts, "email", email, properties)
            .await
    }

    async fn merge(
        &self,
        object: ObjectType,
        primary: &str,
        loser: &str,
    ) -> Result<Record, CrmError> {
        let body = MergeRequest {
            primary_object_id: primary.to_string(),
            object_id_to_merge: loser.to_string(),
        };
        let reply = self
            .http
            .execute(&Call {
                op: "merge",
                object,
                ids: &[primary, loser],
                method: Method::POST,
                path: vec!["crm", "v3", "objects", object.as_str(), "merge"],
                query: Vec::new(),
                body: Some(to_json(&body)?),
                idempotency: Idempotency::NotIdempotent,
                search: false,
            })
            .await?;
        // The survivor is the record in the answer, with its new id, not `primary`.
        Ok(parse::<SimplePublicObject>(&reply.body, reply.status)?.into_record(object))
    }

    async fn properties(&self, object: ObjectType) -> Result<Vec<PropertyDef>, CrmError> {
        let reply = self
            .http
            .execute(&Call {
                op: "properties",
                object,
                ids: &[],
                method: Method::GET,
                path: vec!["crm", "v3", "properties", object.as_str()],
                query: vec![("archived", "false".to_string())],
                body: None,
                idempotency: Idempotency::Idempotent,
                search: false,
            })
            .await?;
        let response: PropertyCollection = parse(&reply.body, reply.status)?;
        Ok(response
            .results
            .into_iter()
            .filter(|p| !p.archived)
            .map(|p| p.into_def(object))
            .collect())
    }

    async fn search_equal(
        &self,
        object: ObjectType,
        property: &str,
        value: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, CrmError> {
        self.search_eq(object, property, value, properties).await
    }
}

/// A list answer as a page of records.
fn page_of(object: ObjectType, response: CollectionResponse) -> Page {
    Page {
        records: response
            .results
            .into_iter()
            .map(|o| o.into_record(object))
            .collect(),
        next: response.paging.and_then(|p| p.next).map(|n| n.after),
    }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, CrmError> {
    serde_json::to_vec(value).map_err(|e| CrmError::Other {
        status: 0,
        message: format!("could not encode the request: {e}"),
    })
}

fn parse<T: DeserializeOwned>(body: &[u8], status: StatusCode) -> Result<T, CrmError> {
    serde_json::from_slice(body).map_err(|e| CrmError::Other {
        status: status.as_u16(),
        message: format!("unexpected response body ({e})"),
    })
}
