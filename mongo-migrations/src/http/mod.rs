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
//!
//! - `auth.rs`: who may call the API;
//! - `body.rs`: what a request body may be;
//! - `reply.rs`: the error answers;
//! - `routes.rs`: one handler per route.

mod auth;
mod body;
mod reply;
mod routes;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

pub use auth::Authorization;
use reply::ApiError;
use routes::{down, history, lock, ready, release, status, up};

use crate::Migrator;

type TenantCheck = dyn Fn(&str) -> bool + Send + Sync;

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
/// use mongo_migrations::http::{Api, Authorization};
/// use mongo_migrations::Migrator;
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
/// use mongo_migrations::http::{router, Authorization};
/// use mongo_migrations::Migrator;
///
/// fn routes(migrator: Migrator, mine: axum::Router) -> Result<axum::Router, std::env::VarError> {
///     let token = std::env::var("MIGRATE_TOKEN")?;
///     Ok(mine.merge(router(migrator, Authorization::bearer(token))))
/// }
/// ```
pub fn router(migrator: Migrator, auth: Authorization) -> Router {
    Api::new(migrator, auth).router()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenancy_allows_only_what_it_was_given() {
        assert!(!Tenancy::None.allows("a"));
        let list = Tenancy::List(Arc::new(["a".to_string()].into_iter().collect()));
        assert!(list.allows("a") && !list.allows("b"));
        let prefix = Tenancy::Where(Arc::new(|n: &str| n.starts_with("t_")));
        assert!(prefix.allows("t_1") && !prefix.allows("x_1"));
    }
}
