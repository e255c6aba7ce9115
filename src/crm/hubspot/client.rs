//! The HTTP side of the HubSpot connector: sends one request through the rate limiters,
//! retries it by the rules of [`crate::crm::retry`], logs every attempt as one structured event,
//! and maps a failure to [`CrmError`]. It knows nothing of what an operation means, and it must
//! never log headers or the token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::wire::ErrorBody;
use crate::config::Secret;
use crate::crm::CrmError;
use crate::crm::ratelimit::RateLimiter;
use crate::crm::retry::{Failure, Idempotency, RetryPolicy, rate_limit_wait};
use crate::domain::model::ObjectType;

const MAX: &str = "x-hubspot-ratelimit-max";
const REMAINING: &str = "x-hubspot-ratelimit-remaining";
const INTERVAL_MS: &str = "x-hubspot-ratelimit-interval-milliseconds";
const CORRELATION_ID: &str = "x-hubspot-correlation-id";

/// The longest URL the connector builds. HubSpot answers 414 from about 16,000 characters
/// (integrations report 414s from 8,000 to 16,200, and its CDN documents 16 KB); a request
/// whose query would make the URL longer carries it in a POST body instead (see
/// [`Http::fits`]).
pub(super) const URL_BUDGET: usize = 8_000;
/// What HubSpot refuses for certain: a call that would need a longer URL is not sent.
const URL_REFUSED: usize = 16_000;

/// One request to send, described well enough to send it again and to log it.
pub(super) struct Call<'a> {
    /// The operation, for the log: `list`, `search`, `batch_read`, `read`, `update`, `merge`,
    /// `properties`.
    pub op: &'static str,
    pub object: ObjectType,
    /// The record ids the call is about, for the log.
    pub ids: &'a [&'a str],
    pub method: Method,
    /// Path segments after the base URL; each is percent-encoded.
    pub path: Vec<&'a str>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub idempotency: Idempotency,
    /// Search endpoints have their own, lower limit.
    pub search: bool,
}

/// A successful answer.
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Counters of what the connector did, for progress displays and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Attempts after the first, for any reason.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

pub(super) struct Http {
    client: reqwest::Client,
    base: Url,
    limiter: Arc<RateLimiter>,
    search_limiter: RateLimiter,
    pub(super) retry: RetryPolicy,
    counters: Counters,
}

/// What came back from one attempt, before it is judged.
struct Raw {
    status: StatusCode,
    retry_after: Option<Duration>,
    max: Option<u32>,
    remaining: Option<u32>,
    interval: Option<Duration>,
    correlation_id: Option<String>,
    body: Vec<u8>,
}

impl Http {
    pub(super) fn new(
        base_url: &str,
        token: &Secret,
        timeout: Duration,
        limiter: Arc<RateLimiter>,
        search_limiter: RateLimiter,
        retry: RetryPolicy,
    ) -> anyhow::Result<Http> {
        let base = Url::parse(base_url.trim())
            .map_err(|e| anyhow::anyhow!("crm.base_url {base_url:?} is not a URL: {e}"))?;
        if base.cannot_be_a_base() {
            anyhow::bail!("crm.base_url {base_url:?} cannot be a base URL");
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                anyhow::anyhow!("the CRM token contains characters not allowed in a header")
            })?;
        // Keeps the value out of reqwest's and hyper's debug output.
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, auth);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .user_agent(concat!("dupdesk/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Http {
            client,
            base,
            limiter,
            search_limiter,
            retry,
            counters: Counters::default(),
        })
    }

    pub(super) fn stats(&self) -> CallStats {
        CallStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    /// Whether a GET of `path` with `query` stays within [`URL_BUDGET`].
    pub(super) fn fits(&self, path: &[&str], query: &[(&'static str, String)]) -> bool {
        self.full_url(path, query)
            .is_ok_and(|u| u.as_str().len() <= URL_BUDGET)
    }

    /// The URL of a call, query included, percent-encoded as it is sent.
    fn full_url(&self, path: &[&str], query: &[(&'static str, String)]) -> Result<Url, CrmError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Send `call` until it succeeds or the retry rules give up.
    pub(super) async fn execute(&self, call: &Call<'_>) -> Result<Reply, CrmError> {
        let url = self.full_url(&call.path, &call.query)?;
        if url.as_str().len() > URL_REFUSED {
            return Err(CrmError::Other {
                status: 414,
                message: format!(
                    "{} {} not sent: its URL would be {} characters, and HubSpot refuses URLs over about {URL_REFUSED} (414)",
                    call.op,
                    call.object.as_str(),
                    url.as_str().len()
                ),
            });
        }
        let ids = call.ids.join(",");
        let mut transient_retries = 0u32;
        let mut limit_retries = 0u32;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            if call.search {
                self.search_limiter.acquire().await;
            }
            let granted = self.limiter.acquire().await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let sent = self.send_once(call, url.clone()).await;
            let logged = Attempt {
                call,
                ids: &ids,
                attempt,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };

            let (error, failure, wait) = match sent {
                Ok(raw) => {
                    // A 429 is waited out by its own rule (Retry-After or policy); its
                    // `Remaining: 0` would only stall every caller for a whole window.
                    if let Some(remaining) = raw.remaining
                        && raw.status.is_success()
                        && !call.search
                        && raw.interval.is_none_or(|i| i == self.limiter.interval())
                    {
                        self.limiter.observe(granted, remaining, raw.max);
                    }
                    let status = raw.status.as_u16();
                    if raw.status.is_success() {
                        logged.succeeded(status, raw.correlation_id.as_deref());
                        return Ok(Reply {
                            status: raw.status,
                            body: raw.body,
                        });
                    }
                    let parsed = parse_error_body(&raw.body);
                    let correlation_id = parsed
                        .as_ref()
                        .and_then(|b| b.correlation_id.clone())
                        .or(raw.correlation_id.clone());
                    let error = error_from_response(status, raw.retry_after, &raw.body);
                    logged.failed(Some(status), correlation_id.as_deref(), &error);
                    match &error {
                        CrmError::RateLimited {
                            policy,
                            retry_after,
                            ..
                        } => {
                            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                            match rate_limit_wait(policy, *retry_after, raw.interval) {
                                None => return Err(error),
                                Some(wait) => {
                                    let search_only =
                                        call.search && policy.eq_ignore_ascii_case("SECONDLY");
                                    (error, Failure::RateLimited, Some((wait, search_only)))
                                }
                            }
                        }
                        CrmError::Transient { .. } => (error, Failure::ServerError, None),
                        _ => return Err(error),
                    }
                }
                Err(e) => {
                    let failure = if e.is_connect() {
                        Failure::NotSent
                    } else {
                        Failure::Unknown
                    };
                    let error = CrmError::Transient {
                        status: None,
                        message: describe(&e),
                    };
                    logged.failed(None, None, &error);
                    (error, failure, None)
                }
            };

            if !call.idempotency.may_retry(failure) {
                return Err(outcome_unknown(call.op, error));
            }
            match wait {
                Some((wait, search_only)) => {
                    if limit_retries >= self.retry.max_retries {
                        return Err(error);
                    }
                    limit_retries += 1;
                    // Hold back every caller, not just this one: the budget is shared.
                    if search_only {
                        self.search_limiter.pause_for(wait);
                    } else {
                        self.limiter.pause_for(wait);
                    }
                }
                None => {
                    if transient_retries >= self.retry.max_retries {
                        return Err(error);
                    }
                    let backoff = self.retry.backoff(transient_retries, &mut rand::rng());
                    transient_retries += 1;
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    fn url(&self, path: &[&str]) -> Result<Url, CrmError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| CrmError::Other {
                status: 0,
                message: format!("base URL {} cannot take a path", self.base),
            })?
            .pop_if_empty()
            .extend(path);
        Ok(url)
    }

    async fn send_once(&self, call: &Call<'_>, url: Url) -> Result<Raw, reqwest::Error> {
        // The query is already in `url` (see `full_url`).
        let mut request = self.client.request(call.method.clone(), url);
        if let Some(body) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request.send().await?;
        let headers = response.headers();
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let raw = Raw {
            status: response.status(),
            retry_after: headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
            max: number(MAX).map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            remaining: number(REMAINING).map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            interval: number(INTERVAL_MS).map(Duration::from_millis),
            correlation_id: headers
                .get(CORRELATION_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: Vec::new(),
        };
        let body = response.bytes().await?.to_vec();
        Ok(Raw { body, ..raw })
    }
}

/// One attempt of a call, as the log records it: one event per HTTP request, with what the
/// call was about and what came back. Never headers, so never the token.
struct Attempt<'a> {
    call: &'a Call<'a>,
    ids: &'a str,
    attempt: u32,
    duration_ms: u64,
}

impl Attempt<'_> {
    fn succeeded(&self, status: u16, correlation_id: Option<&str>) {
        tracing::info!(
            target: "dupdesk::crm",
            op = self.call.op,
            object = self.call.object.as_str(),
            ids = self.ids,
            status,
            duration_ms = self.duration_ms,
            attempt = self.attempt,
            correlation_id,
            "crm call"
        );
    }

    fn failed(&self, status: Option<u16>, correlation_id: Option<&str>, error: &CrmError) {
        tracing::warn!(
            target: "dupdesk::crm",
            op = self.call.op,
            object = self.call.object.as_str(),
            ids = self.ids,
            status,
            duration_ms = self.duration_ms,
            attempt = self.attempt,
            correlation_id,
            error = %error,
            "crm call failed"
        );
    }
}

/// `Retry-After` in (possibly fractional) seconds. The HTTP-date form is not used by HubSpot.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    serde_json::from_slice(body).ok()
}

/// A merge (or create) whose outcome is unknown must not be sent again blindly; say so.
fn outcome_unknown(op: &str, error: CrmError) -> CrmError {
    match error {
        CrmError::Transient { status, message } => CrmError::Transient {
            status,
            message: format!(
                "{op} outcome unknown (not retried: it may have been applied; re-read the ids): {message}"
            ),
        },
        other => other,
    }
}

/// The error for a non-2xx answer, carrying HubSpot's message and correlation id.
pub fn error_from_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> CrmError {
    let parsed = parse_error_body(body);
    let message = parsed
        .as_ref()
        .map(|b| b.message.trim().to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no message")
                    .to_string()
            } else {
                text.chars().take(300).collect()
            }
        });
    let correlation_id = parsed.as_ref().and_then(|b| b.correlation_id.clone());
    let with_id = |m: String| match &correlation_id {
        Some(id) => format!("{m} (correlationId {id})"),
        None => m,
    };
    match status {
        429 => CrmError::RateLimited {
            policy: parsed
                .as_ref()
                .and_then(|b| b.policy_name.clone())
                .unwrap_or_else(|| "TEN_SECONDLY_ROLLING".to_string()),
            retry_after,
            message: with_id(message),
        },
        400 => CrmError::Validation {
            message,
            correlation_id,
        },
        401 | 403 => CrmError::Auth {
            status,
            message: with_id(message),
        },
        404 => CrmError::NotFound {
            message: with_id(message),
        },
        // HubSpot's edge answers with an HTML page; say what it means instead.
        414 => CrmError::Other {
            status,
            message: format!(
                "the request URL is too long for HubSpot (414 URI Too Long; it refuses URLs over about {URL_REFUSED} characters)"
            ),
        },
        500..=599 => CrmError::Transient {
            status: Some(status),
            message: with_id(message),
        },
        _ => CrmError::Other {
            status,
            message: with_id(message),
        },
    }
}

/// A reqwest error with its causes, which is where "connection refused" and the like live.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_from_status_and_body() {
        let body = br#"{"status":"error","message":"Property values were not valid","correlationId":"c-1","category":"VALIDATION_ERROR"}"#;
        match error_from_response(400, None, body) {
            CrmError::Validation {
                message,
                correlation_id,
            } => {
                assert_eq!(message, "Property values were not valid");
                assert_eq!(correlation_id.as_deref(), Some("c-1"));
            }
            other => panic!("{other:?}"),
        }

        let body = br#"{"status":"error","message":"Authentication credentials not found.","correlationId":"c-2","category":"INVALID_AUTHENTICATION"}"#;
        for status in [401, 403] {
            match error_from_response(status, None, body) {
                CrmError::Auth { status: s, message } => {
                    assert_eq!(s, status);
                    assert!(message.contains("credentials not found"), "{message}");
                    assert!(message.contains("c-2"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }

        let body = br#"{"status":"error","message":"resource not found","correlationId":"c-3","category":"OBJECT_NOT_FOUND"}"#;
        assert!(matches!(
            error_from_response(404, None, body),
            CrmError::NotFound { message } if message.contains("c-3")
        ));

        let body = br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c-4","policyName":"DAILY"}"#;
        let e = error_from_response(429, None, body);
        assert!(e.is_daily_limit());
        assert!(!e.is_retryable());

        let e = error_from_response(429, Some(Duration::from_secs(2)), b"");
        match &e {
            CrmError::RateLimited {
                policy,
                retry_after,
                ..
            } => {
                assert_eq!(policy, "TEN_SECONDLY_ROLLING");
                assert_eq!(*retry_after, Some(Duration::from_secs(2)));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_retryable());

        let e = error_from_response(502, None, b"<html>Bad Gateway</html>");
        assert!(
            matches!(&e, CrmError::Transient { status: Some(502), message } if message.contains("Bad Gateway"))
        );
        assert!(e.is_retryable());

        assert!(matches!(
            error_from_response(409, None, b""),
            CrmError::Other { status: 409, message } if message == "Conflict"
        ));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn a_merge_failure_of_unknown_outcome_says_so() {
        let e = outcome_unknown(
            "merge",
            CrmError::Transient {
                status: Some(502),
                message: "Bad Gateway".into(),
            },
        );
        assert!(e.to_string().contains("re-read the ids"), "{e}");
    }

    #[test]
    fn ids_are_one_path_segment_and_a_base_path_is_kept() {
        let http = |base: &str| {
            Http::new(
                base,
                &Secret::new("t"),
                Duration::from_secs(1),
                Arc::new(RateLimiter::new(1, Duration::from_secs(1))),
                RateLimiter::new(1, Duration::from_secs(1)),
                RetryPolicy::new(0),
            )
            .unwrap()
        };
        let url = http("https://api.hubapi.com")
            .url(&["crm", "v3", "objects", "contacts", "1/../2"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.hubapi.com/crm/v3/objects/contacts/1%2F..%2F2"
        );
        let url = http("http://127.0.0.1:8080/proxy/")
            .url(&["crm", "v3", "objects", "companies"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/proxy/crm/v3/objects/companies"
        );
        assert!(
            Http::new(
                "not a url",
                &Secret::new("t"),
                Duration::from_secs(1),
                Arc::new(RateLimiter::new(1, Duration::from_secs(1))),
                RateLimiter::new(1, Duration::from_secs(1)),
                RetryPolicy::new(0),
            )
            .is_err()
        );
    }
}
