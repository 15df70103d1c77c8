//! What a request body may be: a JSON object of one route's documented
//! fields, and nothing else.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::reply::ApiError;

/// A request body of one route: what its object looks like, for errors.
pub(super) trait Body: DeserializeOwned {
    /// An example of the object, for the error that says what was expected.
    const EXAMPLE: &'static str;
}

/// A JSON object, and only an object, of `T`'s documented fields. `serde`
/// would read a struct from an array by position (`[true]` as `dryRun`)
/// and `deny_unknown_fields` does not apply there; this extractor refuses
/// every other JSON value before `T` sees it.
pub(super) struct Object<T>(pub(super) T);

impl<S: Send + Sync, T: Body> FromRequest<S> for Object<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // axum's own checks: 415 without a JSON content type, 413 over the
        // body limit, 400 for a body that is not JSON.
        let expected = || format!("expected a JSON object such as {}", T::EXAMPLE);
        let Json(value) = Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::BAD_REQUEST => ApiError::bad_request(format!("{}; {}", e.body_text(), expected())),
                status => ApiError::new(status, "usage", e.body_text()),
            })?;
        let found = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Array(_) => Some("an array"),
            serde_json::Value::Null => Some("null"),
            serde_json::Value::Bool(_) => Some("a boolean"),
            serde_json::Value::Number(_) => Some("a number"),
            serde_json::Value::String(_) => Some("a string"),
        };
        if let Some(found) = found {
            return Err(ApiError::bad_request(format!("{}, not {found}", expected())));
        }
        serde_json::from_value(value)
            .map(Object)
            .map_err(|e| ApiError::bad_request(format!("{e}; {}", expected())))
    }
}
