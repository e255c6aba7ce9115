//! The sandbox's error answers, shaped like HubSpot's: `{"status":"error","message":...,
//! "correlationId":<uuid>,"category":...}` with the status code HubSpot uses for each category.
//! Only the shape of failures lives here; deciding when to fail is the handlers' and store's job.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::crm::hubspot::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 OBJECT_NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// 400 VALIDATION_ERROR, with HubSpot's per-property `errors`.
    #[error("{message}")]
    Validation { message: String, errors: Vec<Value> },
    /// 409 CONFLICT.
    #[error("{0}")]
    Conflict(String),
    /// 409 OBJECT_ALREADY_EXISTS (a property of that name exists already).
    #[error("{0}")]
    Exists(String),
    /// 401 INVALID_AUTHENTICATION.
    #[error("{0}")]
    Unauthorized(String),
    /// 500: a sandbox bug or a storage failure, never an expected answer.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation {
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) | ApiError::Exists(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (category, errors) = match self {
            ApiError::NotFound(_) => ("OBJECT_NOT_FOUND", None),
            ApiError::Validation { errors, .. } => (
                "VALIDATION_ERROR",
                Some(errors.clone()).filter(|e| !e.is_empty()),
            ),
            ApiError::Conflict(_) => ("CONFLICT", None),
            ApiError::Exists(_) => ("OBJECT_ALREADY_EXISTS", None),
            ApiError::Unauthorized(_) => ("INVALID_AUTHENTICATION", None),
            ApiError::Internal(_) => ("INTERNAL_ERROR", None),
        };
        let message = match self {
            ApiError::Internal(e) => {
                tracing::error!("sandbox internal error: {e:#}");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        ErrorBody {
            status: "error".into(),
            message,
            correlation_id: Some(uuid::Uuid::new_v4().to_string()),
            category: Some(category.into()),
            errors,
            ..ErrorBody::default()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// HubSpot's answer to a request over a rate limit. `policy` is TEN_SECONDLY_ROLLING or DAILY.
pub fn rate_limit_body(policy: &str) -> ErrorBody {
    let message = match policy {
        "DAILY" => "You have reached your daily limit.".to_string(),
        other => format!(
            "You have reached your {} limit.",
            other.to_ascii_lowercase()
        ),
    };
    ErrorBody {
        status: "error".into(),
        message,
        error_type: Some("RATE_LIMIT".into()),
        correlation_id: Some(uuid::Uuid::new_v4().to_string()),
        policy_name: Some(policy.into()),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        ..ErrorBody::default()
    }
}
