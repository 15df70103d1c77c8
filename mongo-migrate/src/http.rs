//! An embeddable HTTP API (feature `http`): mount [`router`] in your axum service.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /migrations/status` | [`StatusReport`](crate::StatusReport) |
//! | `GET /migrations/status?databases=a,b` | one [`TenantStatus`](crate::TenantStatus) per tenant database |
//! | `GET /migrations/history?status=&skip=&limit=` | tracking records, most recent first |
//! | `GET /migrations/lock` | `{"lock": LockInfo or null}` |
//! | `GET /migrations/ready` | [`Readiness`](crate::Readiness): 200 when nothing of the migrator's phase is pending, running or failed, else 503 |
//! | `POST /migrations/up` | body `{"dryRun": bool, "to": version}` |
//! | `POST /migrations/down` | body `{"steps": n}`, `{"batch": true}` or `{"to": version}`, and `"dryRun"` |
//! | `POST /migrations/lock/release` | body `{"confirm": true}` |
//!
//! `POST` routes need the [`Authorization`] given to the router; there are
//! no anonymous writes. Errors are `{"error": {"kind", "message"}}` with 400
//! for bad input, 401/403 for authorisation, 409 when locked or blocked, 503
//! when the database is unreachable. Migrations are compiled into the
//! service, so creating them over HTTP is not offered.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::{DownOptions, DownTarget, Error, ErrorKind, HistoryQuery, MigrationStatus, Migrator, UpOptions, Version};

type Check = dyn Fn(&HeaderMap) -> bool + Send + Sync;

/// Who may call the mutating routes.
#[derive(Clone)]
pub struct Authorization(Inner);

#[derive(Clone)]
enum Inner {
    ReadOnly,
    Bearer(Arc<str>),
    Check(Arc<Check>),
}

impl Authorization {
    /// Only `GET` routes; every `POST` is refused with 403.
    pub fn read_only() -> Self {
        Authorization(Inner::ReadOnly)
    }

    /// `Authorization: Bearer <token>`. An empty token allows nobody.
    pub fn bearer(token: impl Into<String>) -> Self {
        let token: String = token.into();
        if token.is_empty() {
            return Self::read_only();
        }
        Authorization(Inner::Bearer(token.into()))
    }

    /// Your own check over the request headers (sessions, mTLS headers, ...).
    pub fn check(f: impl Fn(&HeaderMap) -> bool + Send + Sync + 'static) -> Self {
        Authorization(Inner::Check(Arc::new(f)))
    }

    fn allows(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let ok = match &self.0 {
            Inner::ReadOnly => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this API is read-only",
                ));
            }
            Inner::Bearer(token) => headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
            Inner::Check(check) => check(headers),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong credentials",
            ))
        }
    }
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Inner::ReadOnly => "read-only",
            Inner::Bearer(_) => "bearer",
            Inner::Check(_) => "check",
        };
        f.debug_tuple("Authorization").field(&kind).finish()
    }
}

/// Compares without leaking, through timing, how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[derive(Clone)]
struct AppState {
    migrator: Arc<Migrator>,
    auth: Authorization,
}

/// The API's routes under `/migrations`, ready to merge into your router.
///
/// ```no_run
/// use mongo_migrate::http::{router, Authorization};
/// use mongo_migrate::Migrator;
///
/// fn routes(migrator: Migrator, mine: axum::Router) -> Result<axum::Router, std::env::VarError> {
///     let token = std::env::var("MIGRATE_TOKEN")?;
///     Ok(mine.merge(router(migrator, Authorization::bearer(token))))
/// }
/// ```
pub fn router(migrator: Migrator, auth: Authorization) -> Router {
    Router::new()
        .route("/migrations/status", get(status))
        .route("/migrations/history", get(history))
        .route("/migrations/lock", get(lock))
        .route("/migrations/ready", get(ready))
        .route("/migrations/up", post(up))
        .route("/migrations/down", post(down))
        .route("/migrations/lock/release", post(release))
        .with_state(AppState {
            migrator: Arc::new(migrator),
            auth,
        })
}

/// An error response: `{"error": {"kind": ..., "message": ...}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
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

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::bad_request(e.body_text())
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

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusParams {
    /// Comma-separated tenant databases.
    databases: Option<String>,
}

/// One database's status, or with `?databases=` each tenant's.
async fn status(
    State(s): State<AppState>,
    params: Result<Query<StatusParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    Ok(match p.databases {
        None => Json(s.migrator.status().await?).into_response(),
        Some(list) => {
            let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            if names.is_empty() {
                return Err(ApiError::bad_request("`databases` names no database"));
            }
            Json(s.migrator.for_databases(names).concurrency(4).status().await).into_response()
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HistoryParams {
    status: Option<String>,
    #[serde(default)]
    skip: u64,
    limit: Option<u64>,
}

async fn history(
    State(s): State<AppState>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Vec<crate::Record>> {
    let Query(p) = params?;
    let status = match p.status.as_deref() {
        None => None,
        Some(text) => Some(MigrationStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status `{text}`: expected running, completed, failed or rolled-back"
            ))
        })?),
    };
    let query = HistoryQuery {
        status,
        skip: p.skip,
        limit: p.limit,
    };
    Ok(Json(s.migrator.history(&query).await?))
}

/// For readiness probes: 503 until the migrations are in place.
async fn ready(State(s): State<AppState>) -> Result<(StatusCode, Json<crate::Readiness>), ApiError> {
    let state = s.migrator.state().await?;
    let code = if state.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(state)))
}

#[derive(Debug, Serialize)]
struct LockBody {
    lock: Option<crate::LockInfo>,
}

async fn lock(State(s): State<AppState>) -> ApiResult<LockBody> {
    Ok(Json(LockBody {
        lock: s.migrator.lock_status().await?,
    }))
}

async fn up(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<UpOptions>, JsonRejection>,
) -> ApiResult<crate::RunReport> {
    s.auth.allows(&headers)?;
    let Json(options) = body?;
    Ok(Json(s.migrator.up(options).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct DownBody {
    steps: Option<usize>,
    batch: bool,
    to: Option<Version>,
    dry_run: bool,
}

async fn down(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<DownBody>, JsonRejection>,
) -> ApiResult<crate::RunReport> {
    s.auth.allows(&headers)?;
    let Json(b) = body?;
    let target = DownTarget::from_options(b.steps, b.batch, b.to)
        .ok_or_else(|| ApiError::bad_request("give at most one of `steps`, `batch` and `to`"))?;
    let options = DownOptions {
        target,
        dry_run: b.dry_run,
    };
    Ok(Json(s.migrator.down(options).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    #[serde(default)]
    confirm: bool,
}

async fn release(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ReleaseBody>, JsonRejection>,
) -> ApiResult<LockBody> {
    s.auth.allows(&headers)?;
    let Json(b) = body?;
    Ok(Json(LockBody {
        lock: s.migrator.force_unlock(b.confirm).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn bearer_needs_the_exact_token_and_an_empty_one_allows_nobody() {
        let mut headers = HeaderMap::new();
        let auth = Authorization::bearer("t0ken");
        assert!(auth.allows(&headers).is_err());
        headers.insert("authorization", "Bearer t0ken".parse().unwrap());
        assert!(auth.allows(&headers).is_ok());
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(Authorization::bearer("").allows(&headers).is_err());
    }
}
