//! The API's error answers: `{"error": {"kind", "message"}}` with a status
//! chosen by the error's kind.

use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::{Error, ErrorKind};

/// An error response: `{"error": {"kind": ..., "message": ...}}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "usage", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match e.kind() {
            ErrorKind::Usage => (StatusCode::BAD_REQUEST, "usage"),
            ErrorKind::Locked => (StatusCode::CONFLICT, "locked"),
            ErrorKind::Blocked => (StatusCode::CONFLICT, "blocked"),
            ErrorKind::Connection => (StatusCode::SERVICE_UNAVAILABLE, "connection"),
            // The service's own configuration, not the request.
            ErrorKind::Configuration => (StatusCode::INTERNAL_SERVER_ERROR, "configuration"),
            ErrorKind::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "kind": self.kind, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;
