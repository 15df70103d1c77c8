//! One handler per route: check the caller, read the request, ask the
//! migrator.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::body::{Body, Object};
use super::reply::{ApiError, ApiResult};
use super::Api;
use crate::{DownOptions, DownTarget, HistoryQuery, MigrationStatus, UpOptions, Version};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StatusParams {
    /// Comma-separated tenant databases.
    databases: Option<String>,
}

/// One database's status, or with `?databases=` each allowed tenant's.
pub(super) async fn status(
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
pub(super) struct HistoryParams {
    status: Option<String>,
    #[serde(default)]
    skip: u64,
    limit: Option<u64>,
}

pub(super) async fn history(
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
        runs: false,
    };
    Ok(Json(api.migrator.history(&query).await?))
}

/// What an anonymous readiness probe learns: ready or not, and counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReadyCounts {
    ready: bool,
    pending: usize,
    running: usize,
    failed: usize,
}

/// For readiness probes: 503 until the migrations are in place. Open: an
/// anonymous caller gets [`ReadyCounts`], an authorised one the whole
/// [`Readiness`](crate::Readiness).
pub(super) async fn ready(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
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
pub(super) struct LockBody {
    lock: Option<crate::LockInfo>,
}

pub(super) async fn lock(State(api): State<Api>, headers: HeaderMap) -> ApiResult<LockBody> {
    api.allows_read(&headers)?;
    Ok(Json(LockBody {
        lock: api.migrator.lock_status().await?,
    }))
}

impl Body for UpOptions {
    const EXAMPLE: &'static str = r#"{"dryRun": true, "to": 20260101000000}"#;
}

pub(super) async fn up(
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
pub(super) struct DownBody {
    steps: Option<usize>,
    batch: bool,
    to: Option<Version>,
    dry_run: bool,
}

impl Body for DownBody {
    const EXAMPLE: &'static str = r#"{"steps": 1} or {"batch": true} or {"to": 20260101000000}, with "dryRun""#;
}

pub(super) async fn down(
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
pub(super) struct ReleaseBody {
    #[serde(default)]
    confirm: bool,
}

impl Body for ReleaseBody {
    const EXAMPLE: &'static str = r#"{"confirm": true}"#;
}

pub(super) async fn release(
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
