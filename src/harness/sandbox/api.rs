//! The sandbox's HTTP face: HubSpot CRM v3 object and property routes for contacts and
//! companies, the auth check, the rate-limit headers and 429s, fault injection, and the
//! unauthenticated `/_sandbox/*` admin routes. Handlers translate between HubSpot's wire format and the store;
//! record rules (update, merge) live in the store, not here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, rate_limit_body};
use super::faults::{Fault, FaultDice};
use super::limits::{Limiter, Verdict};
use super::paging;
use super::search;
use super::store::{SandboxDb, StoredObject, not_found_message, singular};
use crate::crm::hubspot::wire::{
    BatchReadRequest, BatchResponse, CollectionResponse, FilterGroup, MergeRequest, NextPage,
    Paging, Property, PropertyCollection, PropertyCreate, SearchResponse, SimplePublicObject, Sort,
    StandardError,
};
use crate::domain::model::{ObjectType, format_ts};

/// Largest page of the list endpoint, and the largest when property history is asked for.
pub const LIST_MAX: usize = 100;
pub const LIST_MAX_WITH_HISTORY: usize = 50;
pub const BATCH_MAX: usize = 100;
/// HubSpot's largest batch read when `propertiesWithHistory` is asked for.
pub const BATCH_MAX_WITH_HISTORY: usize = 50;
/// HubSpot's search pages no further than this many results.
pub const SEARCH_WINDOW: usize = 10_000;
/// The longest request target (path and query, as sent) served. HubSpot's edge answers 414
/// to URLs of about 16,000 characters and more (integrations report the limit "around 16.2k";
/// its CDN documents 16 KB); the sandbox refuses from a little below, so that what it serves
/// HubSpot serves too.
pub const URL_MAX: usize = 16_000;

pub struct AppState {
    pub db: Mutex<SandboxDb>,
    pub limiter: Mutex<Limiter>,
    pub dice: Mutex<FaultDice>,
    pub token: Option<String>,
    pub base_url: String,
    pub stats: Mutex<BTreeMap<String, u64>>,
    pub shutdown: CancellationToken,
}

type Shared = Arc<AppState>;

/// A poisoned lock means a handler panicked mid-change; the sandbox carries on with the data
/// as the store's transaction left it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppState {
    fn db(&self) -> MutexGuard<'_, SandboxDb> {
        lock(&self.db)
    }
}

pub fn router(state: Shared) -> Router {
    let crm = Router::new()
        .route(
            "/crm/v3/objects/{object_type}",
            get(list_objects).post(create_object),
        )
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(read_object).patch(update_object).delete(archive_object),
        )
        .route("/crm/v3/objects/{object_type}/batch/read", post(batch_read))
        .route(
            "/crm/v3/objects/{object_type}/batch/update",
            post(batch_update),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/create",
            post(batch_create),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/archive",
            post(batch_archive),
        )
        .route("/crm/v3/objects/{object_type}/search", post(search_objects))
        .route("/crm/v3/objects/{object_type}/merge", post(merge_objects))
        .route(
            "/crm/v3/properties/{object_type}",
            get(list_properties).post(create_property),
        )
        .route(
            "/crm/v3/properties/{object_type}/{property_name}",
            get(read_property),
        )
        .layer(middleware::from_fn_with_state(state.clone(), gatekeeper));
    Router::new()
        .route("/_sandbox/merges", get(admin_merges))
        .route("/_sandbox/stats", get(admin_stats))
        .merge(crm)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Auth, rate limit, faults

/// Whether a request's merge, if applied, is left unanswered (a fault drawn for it).
#[derive(Debug, Clone, Copy)]
struct DropAfterMerge(bool);

fn limit_headers(headers: &mut HeaderMap, state: &AppState, v: &Verdict) {
    let limiter = lock(&state.limiter);
    let l = limiter.limit();
    let pairs = [
        ("x-hubspot-ratelimit-max", l.max.to_string()),
        ("x-hubspot-ratelimit-remaining", v.remaining.to_string()),
        (
            "x-hubspot-ratelimit-interval-milliseconds",
            l.interval.as_millis().to_string(),
        ),
        ("x-hubspot-ratelimit-daily", l.daily.to_string()),
        (
            "x-hubspot-ratelimit-daily-remaining",
            v.daily_remaining.to_string(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

fn too_many(state: &AppState, policy: &'static str, v: &Verdict) -> Response {
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(rate_limit_body(policy))).into_response();
    let v = Verdict { remaining: 0, ..*v };
    limit_headers(resp.headers_mut(), state, &v);
    if let Some(secs) = lock(&state.dice).spec().retry_after_secs {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn gatekeeper(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let resp = gate(&state, req, next).await;
    *lock(&state.stats)
        .entry(resp.status().as_u16().to_string())
        .or_default() += 1;
    resp
}

/// HubSpot's edge answers an over-long URL with an HTML page of its own, before any auth.
fn uri_too_long(len: usize) -> Response {
    tracing::debug!("sandbox: refused a {len}-character URL with 414");
    let mut resp = (
        StatusCode::URI_TOO_LONG,
        "<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n<center><h1>414 Request-URI Too Large</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
    )
        .into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    resp
}

fn is_search(req: &Request) -> bool {
    req.method() == axum::http::Method::POST
        && req.uri().path().starts_with("/crm/v3/objects/")
        && req.uri().path().trim_end_matches('/').ends_with("/search")
}

async fn gate(state: &Shared, mut req: Request, next: Next) -> Response {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > URL_MAX {
        return uri_too_long(target_len);
    }
    let auth_error = match (bearer(req.headers()), &state.token) {
        (None, _) => Some(
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        ),
        (Some(got), Some(want)) if got != want => {
            Some("The access token provided is invalid or has expired.")
        }
        _ => None,
    };
    if let Some(message) = auth_error {
        let mut resp = ApiError::Unauthorized(message.into()).into_response();
        let v = lock(&state.limiter).peek();
        limit_headers(resp.headers_mut(), state, &v);
        return resp;
    }

    // The dice are rolled for every authenticated request, so faults depend only on the
    // order of requests. An injected 429, like a real one, does not use up the budget.
    let roll = lock(&state.dice).roll();
    if roll.fault == Fault::TooManyRequests {
        let verdict = lock(&state.limiter).peek();
        return too_many(state, "TEN_SECONDLY_ROLLING", &verdict);
    }
    let verdict = if is_search(&req) {
        lock(&state.limiter).admit_search()
    } else {
        lock(&state.limiter).admit()
    };
    if let Some(policy) = verdict.refused {
        return too_many(state, policy, &verdict);
    }
    match roll.fault {
        Fault::None | Fault::TooManyRequests => {}
        Fault::ServerError => {
            let mut resp =
                ApiError::Internal(anyhow::anyhow!("injected fault: 500")).into_response();
            limit_headers(resp.headers_mut(), state, &verdict);
            return resp;
        }
        Fault::Timeout => {
            let delay = Duration::from_millis(lock(&state.dice).spec().timeout_ms);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = state.shutdown.cancelled() => {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
        }
    }
    req.extensions_mut()
        .insert(DropAfterMerge(roll.drop_after_merge));
    let mut resp = next.run(req).await;
    limit_headers(resp.headers_mut(), state, &verdict);
    resp
}

// ---------------------------------------------------------------------------------------------
// Request parsing

fn object_type(raw: &str) -> Result<ObjectType, ApiError> {
    match raw {
        "contacts" | "contact" | "0-1" => Ok(ObjectType::Contacts),
        "companies" | "company" | "0-2" => Ok(ObjectType::Companies),
        other => Err(ApiError::validation(format!(
            "Unable to infer object type from: {other}"
        ))),
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// Query parameters of the read routes. Repeated `properties=a&properties=b` and
/// comma-separated `properties=a,b` both work, as with HubSpot.
#[derive(Debug, Default)]
struct ReadParams {
    properties: Vec<String>,
    with_history: Vec<String>,
    limit: Option<String>,
    after: Option<String>,
    archived: bool,
    id_property: Option<String>,
}

fn read_params(pairs: Vec<(String, String)>) -> Result<ReadParams, ApiError> {
    let mut p = ReadParams::default();
    let split = |v: &str| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    for (key, value) in pairs {
        match key.as_str() {
            "properties" => p.properties.extend(split(&value)),
            "propertiesWithHistory" => p.with_history.extend(split(&value)),
            "limit" => p.limit = Some(value),
            "after" => p.after = Some(value),
            "idProperty" => p.id_property = Some(value).filter(|v| !v.is_empty()),
            "archived" => {
                // HubSpot's Python client sends Python's `True`/`False`.
                p.archived = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" | "" => false,
                    other => {
                        return Err(ApiError::validation(format!(
                            "archived must be true or false, not {other:?}"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// Property values as sent: HubSpot takes strings, and also numbers and booleans written as
/// JSON; null clears like `""`.
#[derive(Debug, Deserialize)]
struct PropertiesInput {
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct BatchInputs<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct BatchUpdateItem {
    id: String,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

fn property_strings(props: BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    props
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(ApiError::validation(format!(
                        "Property values were not valid: {k} must be a string, not {other}"
                    )));
                }
            };
            Ok((k, s))
        })
        .collect()
}

fn check_batch_size(n: usize) -> Result<(), ApiError> {
    if n > BATCH_MAX {
        return Err(ApiError::validation(format!(
            "Too many inputs: {n} (at most {BATCH_MAX} per batch)"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Handlers

fn wire(
    db: &SandboxDb,
    t: ObjectType,
    id: i64,
    o: &StoredObject,
    props: &[String],
    hist: &[String],
) -> Result<SimplePublicObject, ApiError> {
    let known = db.known_properties(t)?;
    Ok(o.to_wire(t, id, props, hist, &known))
}

async fn list_objects(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<CollectionResponse>, ApiError> {
    let t = object_type(&raw_type)?;
    let p = read_params(pairs)?;
    let max = if p.with_history.is_empty() {
        LIST_MAX
    } else {
        LIST_MAX_WITH_HISTORY
    };
    let limit = paging::list_limit(p.limit.as_deref(), max)?;
    let from = paging::list_after(p.after.as_deref())?;
    let db = state.db();
    // `archived=true` lists only the archived records, in id order like the live ones.
    let (objects, next) = db.page(t, from, limit, p.archived);
    let known = db.known_properties(t)?;
    let results = objects
        .iter()
        .map(|(id, o)| o.to_wire(t, *id, &p.properties, &p.with_history, &known))
        .collect();
    let paging = next.map(|next| {
        let mut link = format!(
            "{}/crm/v3/objects/{}?limit={limit}&after={next}",
            state.base_url,
            t.as_str()
        );
        for prop in &p.properties {
            link.push_str("&properties=");
            link.push_str(prop);
        }
        if p.archived {
            link.push_str("&archived=true");
        }
        Paging {
            next: Some(NextPage {
                after: next.to_string(),
                link: Some(link),
            }),
        }
    });
    Ok(Json(CollectionResponse { results, paging }))
}

async fn read_object(
    State(state): State<Shared>,
    Path((raw_type, id)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<SimplePublicObject>, ApiError> {
    let t = object_type(&raw_type)?;
    let p = read_params(pairs)?;
    let db = state.db();
    let found = match p.id_property.as_deref() {
        // HubSpot's `archived=true` reads the archived record, and nothing else.
        _ if p.archived => db.find_archived(t, &id),
        None | Some("hs_object_id") => db.find(t, &id)?,
        Some(prop) => db.find_by_property(t, prop, &id),
    };
    let (live, o) = found.ok_or_else(|| ApiError::NotFound(not_found_message(t, &id)))?;
    Ok(Json(wire(&db, t, live, o, &p.properties, &p.with_history)?))
}

async fn create_object(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<SimplePublicObject>), ApiError> {
    let t = object_type(&raw_type)?;
    let input: PropertiesInput = parse_body(&body)?;
    let props = property_strings(input.properties)?;
    let mut db = state.db();
    let (id, o) = db.create(t, &props, Utc::now())?;
    let wanted: Vec<String> = props.keys().cloned().collect();
    Ok((
        StatusCode::CREATED,
        Json(wire(&db, t, id, &o, &wanted, &[])?),
    ))
}

async fn batch_create(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let t = object_type(&raw_type)?;
    let started = format_ts(&Utc::now());
    let input: BatchInputs<PropertiesInput> = parse_body(&body)?;
    check_batch_size(input.inputs.len())?;
    let inputs = input
        .inputs
        .into_iter()
        .map(|i| property_strings(i.properties))
        .collect::<Result<Vec<_>, _>>()?;
    let mut db = state.db();
    let created = db.batch_create(t, &inputs, Utc::now())?;
    let mut results = Vec::with_capacity(created.len());
    for ((id, o), props) in created.iter().zip(&inputs) {
        let wanted: Vec<String> = props.keys().cloned().collect();
        results.push(wire(&db, t, *id, o, &wanted, &[])?);
    }
    Ok((
        StatusCode::CREATED,
        Json(batch_response(started, results, Vec::new())),
    ))
}

async fn update_object(
    State(state): State<Shared>,
    Path((raw_type, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<SimplePublicObject>, ApiError> {
    let t = object_type(&raw_type)?;
    let input: PropertiesInput = parse_body(&body)?;
    let props = property_strings(input.properties)?;
    let mut db = state.db();
    let (live, o) = db.update(t, &id, &props, Utc::now())?;
    let wanted: Vec<String> = props.keys().cloned().collect();
    Ok(Json(wire(&db, t, live, &o, &wanted, &[])?))
}

fn batch_response(
    started: String,
    results: Vec<SimplePublicObject>,
    errors: Vec<StandardError>,
) -> BatchResponse {
    BatchResponse {
        status: "COMPLETE".into(),
        results,
        num_errors: (!errors.is_empty()).then_some(errors.len() as u64),
        errors,
        started_at: started,
        completed_at: format_ts(&Utc::now()),
    }
}

fn missing_error(t: ObjectType, verb: &str, ids: Vec<String>) -> StandardError {
    StandardError {
        status: "error".into(),
        category: "OBJECT_NOT_FOUND".into(),
        message: format!(
            "Could not {verb} some {} objects, they may be deleted or not exist. Check that ids are valid.",
            singular(t).to_ascii_uppercase()
        ),
        context: BTreeMap::from([("ids".to_string(), ids)]),
        errors: Vec::new(),
        links: BTreeMap::new(),
    }
}

fn batch_answer(resp: BatchResponse) -> (StatusCode, Json<BatchResponse>) {
    let status = if resp.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(resp))
}

async fn batch_read(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let t = object_type(&raw_type)?;
    let archived = read_params(pairs)?.archived;
    let started = format_ts(&Utc::now());
    let req: BatchReadRequest = parse_body(&body)?;
    check_batch_size(req.inputs.len())?;
    if !req.properties_with_history.is_empty() && req.inputs.len() > BATCH_MAX_WITH_HISTORY {
        // HubSpot's own words, whatever the number sent.
        return Err(ApiError::validation(format!(
            "The maximum number of inputs supported in a batch request for property histories is {BATCH_MAX_WITH_HISTORY}. Please reduce the number of items and try again"
        )));
    }
    let db = state.db();
    let known = db.known_properties(t)?;
    let mut results = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut missing = Vec::new();
    for input in &req.inputs {
        // An archived id is not found by a normal batch read (HubSpot lists it among the
        // OBJECT_NOT_FOUND ids); with `archived=true` only archived ids are found.
        let found = match req.id_property.as_deref() {
            _ if archived => db.find_archived(t, &input.id),
            None | Some("hs_object_id") => db.find(t, &input.id)?,
            Some(prop) => db.find_by_property(t, prop, &input.id),
        };
        match found {
            Some((id, o)) => {
                if seen.insert(id) {
                    results.push(o.to_wire(
                        t,
                        id,
                        &req.properties,
                        &req.properties_with_history,
                        &known,
                    ));
                }
            }
            None => missing.push(input.id.clone()),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![missing_error(t, "get", missing)]
    };
    Ok(batch_answer(batch_response(started, results, errors)))
}

async fn batch_update(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let t = object_type(&raw_type)?;
    let started = format_ts(&Utc::now());
    let req: BatchInputs<BatchUpdateItem> = parse_body(&body)?;
    check_batch_size(req.inputs.len())?;
    let inputs = req
        .inputs
        .into_iter()
        .map(|i| Ok((i.id, property_strings(i.properties)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let mut db = state.db();
    let (updated, missing) = db.batch_update(t, &inputs, Utc::now())?;
    let mut results = Vec::with_capacity(updated.len());
    for (live, o) in &updated {
        let wanted: Vec<String> = inputs
            .iter()
            .find(|(id, _)| db.resolve(t, id).ok().flatten() == Some(*live))
            .map(|(_, props)| props.keys().cloned().collect())
            .unwrap_or_default();
        results.push(wire(&db, t, *live, o, &wanted, &[])?);
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![missing_error(t, "update", missing)]
    };
    Ok(batch_answer(batch_response(started, results, errors)))
}

/// A search request as the server reads it: HubSpot's published API description types `sorts`
/// as strings (its official clients send `"createdate"` or `"-createdate"`), while its guides
/// send `{"propertyName":..,"direction":..}` objects; both are accepted.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<SortSpec>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SortSpec {
    Name(String),
    Full(Sort),
}

impl SortSpec {
    fn into_sort(self) -> Sort {
        match self {
            SortSpec::Full(s) => s,
            SortSpec::Name(name) => match name.strip_prefix('-') {
                Some(n) => Sort {
                    property_name: n.to_string(),
                    direction: "DESCENDING".into(),
                },
                None => Sort {
                    property_name: name,
                    direction: "ASCENDING".into(),
                },
            },
        }
    }
}

async fn search_objects(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    let t = object_type(&raw_type)?;
    let req: SearchBody = parse_body(&body)?;
    search::check(&req.filter_groups)?;
    let sorts: Vec<Sort> = req.sorts.into_iter().map(SortSpec::into_sort).collect();
    let limit = paging::search_limit(req.limit.as_ref())?;
    let offset = paging::search_after(req.after.as_ref())?;
    if offset >= SEARCH_WINDOW {
        return Err(ApiError::validation(format!(
            "Search can page through at most {SEARCH_WINDOW} results (after={offset})"
        )));
    }
    let lag_ms = lock(&state.dice).spec().search_lag_ms;
    // With a search lag, the index holds only writes at least that old (a record written
    // since is left out, as HubSpot's index leaves it until it catches up).
    let indexed_until = (lag_ms > 0).then(|| Utc::now().timestamp_millis() - lag_ms as i64);
    let db = state.db();
    let matcher = search::Matcher::new(&req.filter_groups);
    let mut hits: Vec<(i64, &StoredObject)> = db
        .all(t)
        .filter(|(_, o)| indexed_until.is_none_or(|until| search::written_by(o, until)))
        .filter(|(_, o)| matcher.matches(o))
        .filter(|(_, o)| {
            req.query
                .as_deref()
                .is_none_or(|q| search::matches_query(t, o, q))
        })
        .collect();
    search::sort(&mut hits, &sorts);
    let total = hits.len();
    let known = db.known_properties(t)?;
    let end = (offset + limit as usize).min(total).min(SEARCH_WINDOW);
    let results = hits
        .get(offset.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|(id, o)| o.to_wire(t, *id, &req.properties, &[], &known))
        .collect();
    // `limit: 0` asks for the total only: a next page would be this page again.
    let paging = (limit > 0 && end < total && end < SEARCH_WINDOW).then(|| Paging {
        next: Some(NextPage {
            after: end.to_string(),
            link: None,
        }),
    });
    Ok(Json(SearchResponse {
        total: total as u64,
        results,
        paging,
    }))
}

/// `DELETE /crm/v3/objects/{type}/{id}`: archive. 204 whether or not the id was live, as
/// HubSpot answers.
async fn archive_object(
    State(state): State<Shared>,
    Path((raw_type, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let t = object_type(&raw_type)?;
    state.db().archive(t, &[id], Utc::now())?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../batch/archive` with `{"inputs":[{"id":"1"}]}`: 204, at most 100 inputs.
async fn batch_archive(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let t = object_type(&raw_type)?;
    let req: BatchInputs<crate::crm::hubspot::wire::IdInput> = parse_body(&body)?;
    check_batch_size(req.inputs.len())?;
    let ids: Vec<String> = req.inputs.into_iter().map(|i| i.id).collect();
    state.db().archive(t, &ids, Utc::now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn merge_objects(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    Extension(DropAfterMerge(drop_answer)): Extension<DropAfterMerge>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = object_type(&raw_type)?;
    let req: MergeRequest = parse_body(&body)?;
    let answer = {
        let mut db = state.db();
        let (id, o, _entry) = db.merge(
            t,
            &req.primary_object_id,
            &req.object_id_to_merge,
            Utc::now(),
        )?;
        wire(&db, t, id, &o, &[], &[])?
    };
    if drop_answer {
        // The merge is applied and logged; the client never hears about it.
        state.shutdown.cancelled().await;
        return Ok(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    Ok(Json(answer).into_response())
}

/// `archived=true` lists archived properties; the sandbox archives none.
fn wants_archived(pairs: &[(String, String)]) -> Result<bool, ApiError> {
    let mut archived = false;
    for (key, value) in pairs {
        if key == "archived" {
            archived = match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" | "" => false,
                other => {
                    return Err(ApiError::validation(format!(
                        "archived must be true or false, not {other:?}"
                    )));
                }
            };
        }
    }
    Ok(archived)
}

async fn list_properties(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<PropertyCollection>, ApiError> {
    let t = object_type(&raw_type)?;
    if wants_archived(&pairs)? {
        return Ok(Json(PropertyCollection {
            results: Vec::new(),
        }));
    }
    let defs = state.db().definitions(t)?;
    let mut results: Vec<Property> = defs.into_values().collect();
    // HubSpot's own first, in their display order, then the custom ones by name.
    results.sort_by_key(|p| {
        (
            p.hubspot_defined != Some(true),
            p.display_order.filter(|o| *o >= 0).unwrap_or(i32::MAX),
        )
    });
    Ok(Json(PropertyCollection { results }))
}

async fn read_property(
    State(state): State<Shared>,
    Path((raw_type, name)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Property>, ApiError> {
    let t = object_type(&raw_type)?;
    let missing = || {
        ApiError::NotFound(format!(
            "Unable to find property {name} for object type {}",
            super::properties::object_type_id(t)
        ))
    };
    if wants_archived(&pairs)? {
        return Err(missing());
    }
    let mut defs = state.db().definitions(t)?;
    defs.remove(&name).map(Json).ok_or_else(missing)
}

async fn create_property(
    State(state): State<Shared>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Property>), ApiError> {
    let t = object_type(&raw_type)?;
    let input: PropertyCreate = parse_body(&body)?;
    let def = state.db().create_property(t, input, Utc::now())?;
    Ok((StatusCode::CREATED, Json(def)))
}

async fn admin_merges(State(state): State<Shared>) -> Result<Response, ApiError> {
    let log = state.db().merge_log()?;
    Ok(Json(log).into_response())
}

async fn admin_stats(State(state): State<Shared>) -> Json<Value> {
    let stats = lock(&state.stats).clone();
    let total: u64 = stats.values().sum();
    Json(serde_json::json!({ "requests": total, "by_status": stats }))
}
