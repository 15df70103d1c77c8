//! An embeddable HTTP API (feature `http`): mount [`router`] (or an [`Api`]
//! built with its options) in your axum service.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /migrations/status` | [`StatusReport`](crate::StatusReport) |
//! | `GET /migrations/status?databases=a,b` | one [`TenantStatus`](crate::TenantStatus) per tenant database the API was given ([`Api::tenants`]) |
//! | `GET /migrations/history?status=&skip=&limit=` | tracking records, most recent first |
//! | `GET /migrations/lock` | `{"lock": LockInfo or null}` |
//! | `GET /migrations/ready` | 200 when nothing of the migrator's phase is pending, running or failed, else 503 |
//! | `POST /migrations/up` | body `{"dryRun": bool, "to": version}` |
//! | `POST /migrations/down` | body `{"steps": n}`, `{"batch": true}` or `{"to": version}`, and `"dryRun"` |
//! | `POST /migrations/lock/release` | body `{"confirm": true}` |
//!
//! Secure by default: every route needs the [`Authorization`] given to the
//! router, reads as well as writes, since status, history and lock answers
//! name hosts, process ids and migration errors (which can quote document
//! values). [`Api::open_reads`] opens the `GET` routes explicitly. Only
//! `GET /migrations/ready` is open by default, for probes that send no
//! credentials, and without them it answers only ready or not, with counts;
//! the versions behind them need an authorised call.
//!
//! A body is a JSON object of the documented fields and nothing else: an
//! array, a scalar, `null`, an unknown field or a wrong type is a 400, a
//! body over the limit a 413, never a run. Errors are
//! `{"error": {"kind", "message"}}` with 400 for bad input, 401/403 for
//! authorisation, 409 when locked or blocked, 503 when the database is
//! unreachable. Migrations are compiled into the service, so creating them
//! over HTTP is not offered.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{DownOptions, DownTarget, Error, ErrorKind, HistoryQuery, MigrationStatus, Migrator, UpOptions, Version};

type Check = dyn Fn(&HeaderMap) -> bool + Send + Sync;
type TenantCheck = dyn Fn(&str) -> bool + Send + Sync;

/// Who may call the API.
#[derive(Clone)]
pub struct Authorization(Inner);

#[derive(Clone)]
enum Inner {
    Nobody,
    Bearer(Arc<str>),
    Check(Arc<Check>),
}

impl Authorization {
    /// Nobody: every `POST` is refused with 403, and every `GET` but
    /// `/migrations/ready` with 401 unless the API opens its reads
    /// ([`Api::open_reads`]), which makes a read-only API.
    pub fn read_only() -> Self {
        Authorization(Inner::Nobody)
    }

    /// `Authorization: Bearer <token>` (the scheme in any case, RFC 7235),
    /// compared in constant time. An empty token allows nobody.
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

    /// Whether the request's credentials are accepted.
    fn accepts(&self, headers: &HeaderMap) -> bool {
        match &self.0 {
            Inner::Nobody => false,
            Inner::Bearer(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
            Inner::Check(check) => check(headers),
        }
    }

    fn allows_write(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if matches!(self.0, Inner::Nobody) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API is read-only",
            ));
        }
        self.allows_read(headers)
    }

    fn allows_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.accepts(headers) {
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

/// The credentials of `Bearer <token>`, the scheme matched in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Inner::Nobody => "read-only",
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

/// The tenant databases `?databases=` may name.
#[derive(Clone)]
enum Tenancy {
    None,
    List(Arc<BTreeSet<String>>),
    Where(Arc<TenantCheck>),
}

impl Tenancy {
    fn allows(&self, name: &str) -> bool {
        match self {
            Tenancy::None => false,
            Tenancy::List(names) => names.contains(name),
            Tenancy::Where(check) => check(name),
        }
    }
}

/// The API with its options; [`router`] is `Api::new(migrator, auth).router()`.
///
/// ```no_run
/// use mongo_migrate::http::{Api, Authorization};
/// use mongo_migrate::Migrator;
///
/// fn routes(migrator: Migrator, tenants: Vec<String>) -> axum::Router {
///     let token = std::env::var("MIGRATE_TOKEN").unwrap_or_default();
///     Api::new(migrator, Authorization::bearer(token)).tenants(tenants).router()
/// }
/// ```
#[derive(Clone)]
pub struct Api {
    migrator: Arc<Migrator>,
    auth: Authorization,
    open_reads: bool,
    tenants: Tenancy,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("auth", &self.auth)
            .field("open_reads", &self.open_reads)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Every route but `GET /migrations/ready` needs `auth`; no tenants.
    pub fn new(migrator: Migrator, auth: Authorization) -> Self {
        Api {
            migrator: Arc::new(migrator),
            auth,
            open_reads: false,
            tenants: Tenancy::None,
        }
    }

    /// Opens the `GET` routes to callers without credentials (and the whole
    /// readiness answer). Their answers name hosts, process ids and
    /// migration errors: open them only behind your own access control.
    pub fn open_reads(mut self) -> Self {
        self.open_reads = true;
        self
    }

    /// The tenant databases `GET /migrations/status?databases=` may name;
    /// any other name is a 400 that does not reach the server.
    pub fn tenants(mut self, databases: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tenants = Tenancy::List(Arc::new(databases.into_iter().map(Into::into).collect()));
        self
    }

    /// Like [`Api::tenants`], with a predicate over names (for example a prefix).
    pub fn tenants_where(mut self, allows: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.tenants = Tenancy::Where(Arc::new(allows));
        self
    }

    /// The routes under `/migrations`, ready to merge into your router.
    pub fn router(self) -> Router {
        Router::new()
            .route("/migrations/status", get(status))
            .route("/migrations/history", get(history))
            .route("/migrations/lock", get(lock))
            .route("/migrations/ready", get(ready))
            .route("/migrations/up", post(up))
            .route("/migrations/down", post(down))
            .route("/migrations/lock/release", post(release))
            .with_state(self)
    }

    fn allows_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.open_reads {
            return Ok(());
        }
        self.auth.allows_read(headers)
    }
}

/// The API's routes under `/migrations`, every one but `GET /migrations/ready`
/// behind `auth`, ready to merge into your router. For open reads or tenants,
/// build an [`Api`].
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
    Api::new(migrator, auth).router()
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

/// A request body of one route: what its object looks like, for errors.
trait Body: DeserializeOwned {
    /// An example of the object, for the error that says what was expected.
    const EXAMPLE: &'static str;
}

impl Body for UpOptions {
    const EXAMPLE: &'static str = r#"{"dryRun": true, "to": 20260101000000}"#;
}

/// A JSON object, and only an object, of `T`'s documented fields. `serde`
/// would read a struct from an array by position (`[true]` as `dryRun`)
/// and `deny_unknown_fields` does not apply there; this extractor refuses
/// every other JSON value before `T` sees it.
struct Object<T>(T);

impl<S: Send + Sync, T: Body> FromRequest<S> for Object<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                let t = t.trim();
                t.eq_ignore_ascii_case("application/json") || t.to_ascii_lowercase().ends_with("+json")
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "usage",
                "the body must be JSON: send `Content-Type: application/json`",
            ));
        }
        // Over the body limit: 413, from the rejection's own status.
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "usage", e.body_text()))?;
        let expected = || format!("expected a JSON object such as {}", T::EXAMPLE);
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON ({e}); {}", expected())))?;
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusParams {
    /// Comma-separated tenant databases.
    databases: Option<String>,
}

/// One database's status, or with `?databases=` each allowed tenant's.
async fn status(
    State(api): State<Api>,
    headers: HeaderMap,
    params: Result<Query<StatusParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    api.allows_read(&headers)?;
    let Query(p) = params?;
    Ok(match p.databases {
        None => Json(api.migrator.status().await?).into_response(),
        Some(list) => {
            let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            if names.is_empty() {
                return Err(ApiError::bad_request("`databases` names no database"));
            }
            // Checked before anything reaches the server.
            for name in &names {
                crate::check_database_name(name)?;
                if !api.tenants.allows(name) {
                    return Err(ApiError::bad_request(format!(
                        "`{name}` is not a tenant database of this API"
                    )));
                }
            }
            Json(api.migrator.for_databases(names).concurrency(4).status().await).into_response()
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
    State(api): State<Api>,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Vec<crate::Record>> {
    api.allows_read(&headers)?;
    let Query(p) = params?;
    let status = match p.status.as_deref() {
        None => None,
        Some(text) => Some(MigrationStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status `{text}`: expected planned, running, completed, failed or rolled-back"
            ))
        })?),
    };
    let query = HistoryQuery {
        status,
        skip: p.skip,
        limit: p.limit,
    };
    Ok(Json(api.migrator.history(&query).await?))
}

/// What an anonymous readiness probe learns: ready or not, and counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadyCounts {
    ready: bool,
    pending: usize,
    running: usize,
    failed: usize,
}

/// For readiness probes: 503 until the migrations are in place. Open: an
/// anonymous caller gets [`ReadyCounts`], an authorised one the whole
/// [`Readiness`](crate::Readiness).
async fn ready(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    let state = api.migrator.state().await?;
    let code = if state.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if api.allows_read(&headers).is_ok() {
        return Ok((code, Json(state)).into_response());
    }
    let counts = ReadyCounts {
        ready: state.ready,
        pending: state.pending.len(),
        running: state.running.len(),
        failed: state.failed.len(),
    };
    Ok((code, Json(counts)).into_response())
}

#[derive(Debug, Serialize)]
struct LockBody {
    lock: Option<crate::LockInfo>,
}

async fn lock(State(api): State<Api>, headers: HeaderMap) -> ApiResult<LockBody> {
    api.allows_read(&headers)?;
    Ok(Json(LockBody {
        lock: api.migrator.lock_status().await?,
    }))
}

async fn up(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Object<UpOptions>, ApiError>,
) -> ApiResult<crate::RunReport> {
    api.auth.allows_write(&headers)?;
    let Object(options) = body?;
    Ok(Json(api.migrator.up(options).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct DownBody {
    steps: Option<usize>,
    batch: bool,
    to: Option<Version>,
    dry_run: bool,
}

impl Body for DownBody {
    const EXAMPLE: &'static str = r#"{"steps": 1} or {"batch": true} or {"to": 20260101000000}, with "dryRun""#;
}

async fn down(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Object<DownBody>, ApiError>,
) -> ApiResult<crate::RunReport> {
    api.auth.allows_write(&headers)?;
    let Object(b) = body?;
    let target = DownTarget::from_options(b.steps, b.batch, b.to)
        .ok_or_else(|| ApiError::bad_request("give at most one of `steps`, `batch` and `to`"))?;
    let options = DownOptions {
        target,
        dry_run: b.dry_run,
    };
    Ok(Json(api.migrator.down(options).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    #[serde(default)]
    confirm: bool,
}

impl Body for ReleaseBody {
    const EXAMPLE: &'static str = r#"{"confirm": true}"#;
}

async fn release(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Object<ReleaseBody>, ApiError>,
) -> ApiResult<LockBody> {
    api.auth.allows_write(&headers)?;
    let Object(b) = body?;
    Ok(Json(LockBody {
        lock: api.migrator.force_unlock(b.confirm).await?,
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
    fn bearer_needs_the_exact_token_in_any_case_of_scheme_and_an_empty_one_allows_nobody() {
        let auth = Authorization::bearer("t0ken");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value.parse().unwrap());
            auth.accepts(&headers)
        };
        assert!(!auth.accepts(&HeaderMap::new()));
        for good in ["Bearer t0ken", "bearer t0ken", "BEARER t0ken", "bEaReR  t0ken"] {
            assert!(with(good), "{good}");
        }
        for bad in [
            "Bearer t0keN",
            "Bearer",
            "Bearer ",
            "Basic t0ken",
            "Bearert0ken",
            "t0ken",
            "Bearer t0ken2",
        ] {
            assert!(!with(bad), "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(!Authorization::bearer("").accepts(&headers));
    }

    #[test]
    fn tenancy_allows_only_what_it_was_given() {
        assert!(!Tenancy::None.allows("a"));
        let list = Tenancy::List(Arc::new(["a".to_string()].into_iter().collect()));
        assert!(list.allows("a") && !list.allows("b"));
        let prefix = Tenancy::Where(Arc::new(|n: &str| n.starts_with("t_")));
        assert!(prefix.allows("t_1") && !prefix.allows("x_1"));
    }
}
