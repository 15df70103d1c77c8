//! One registry over many databases: one database per tenant, the same
//! schema. Each database keeps its own tracking collection and lock, so
//! tenants never wait for each other; at most `concurrency` run at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind, Migrator, RunReport, StatusReport, UpOptions};

/// Applies one registry to many databases (see [`Migrator::for_databases`]).
#[derive(Debug, Clone)]
pub struct Tenants {
    template: Migrator,
    databases: Vec<String>,
    concurrency: usize,
    fail_fast: bool,
}

/// What happened in one tenant's database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
#[non_exhaustive]
pub enum TenantOutcome {
    /// The run went through (its report may list no step).
    Applied {
        /// What it applied.
        report: RunReport,
    },
    /// Another runner holds this database's lock.
    Locked {
        /// What the runtime said.
        message: String,
    },
    /// The run failed, or the database refused it (blocked, unknown versions...).
    Failed {
        /// The kind of failure.
        kind: ErrorKind,
        /// What the runtime said.
        message: String,
    },
    /// Not started: an earlier tenant failed and `fail_fast` is set, or a
    /// stop was requested.
    Skipped,
}

/// One tenant's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantReport {
    /// The database.
    pub database: String,
    /// What happened there.
    #[serde(flatten)]
    pub outcome: TenantOutcome,
}

/// One tenant's status, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The database.
    pub database: String,
    /// Its status, when it could be read.
    pub status: Option<StatusReport>,
    /// Why it could not.
    pub error: Option<String>,
}

/// One tenant's `plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TenantPlan {
    /// The database.
    pub database: String,
    /// Its plan, when it could be made.
    pub plan: Option<crate::PlanReport>,
    /// Why it could not.
    pub error: Option<String>,
}

impl Migrator {
    /// The same registry, configuration, lock wait and stop handle over
    /// many databases, one per tenant (see [`Tenants`]).
    ///
    /// ```no_run
    /// # async fn run(migrator: mongo_migrations::Migrator) -> Result<(), mongo_migrations::Error> {
    /// let names = mongo_migrations::list_databases(migrator.database().client(), |n| n.starts_with("tenant_")).await?;
    /// for tenant in migrator.for_databases(names).concurrency(8).up(Default::default()).await {
    ///     println!("{}: {:?}", tenant.database, tenant.outcome);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn for_databases(&self, databases: impl IntoIterator<Item = impl Into<String>>) -> Tenants {
        Tenants::new(self.clone(), databases.into_iter().map(Into::into).collect())
    }
}

impl Tenants {
    pub(crate) fn new(template: Migrator, databases: Vec<String>) -> Self {
        Tenants {
            template,
            databases,
            concurrency: 1,
            fail_fast: false,
        }
    }

    /// At most `n` databases migrate at once (at least 1; default 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// After the first failure, start no other tenant (default: go on).
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// The databases, in the order reports list them.
    pub fn databases(&self) -> &[String] {
        &self.databases
    }

    /// Checks every database name by the server's rules (see
    /// [`check_database_name`](crate::check_database_name)); `up` and
    /// `status` run in no database while one is invalid.
    pub fn validate(&self) -> Result<(), Error> {
        self.databases.iter().try_for_each(|d| crate::check_database_name(d))
    }

    /// One report per database when a name is invalid: it failed, and
    /// every other database was skipped.
    fn refused(&self) -> Option<Vec<TenantReport>> {
        self.validate().err()?;
        Some(
            self.databases
                .iter()
                .map(|database| TenantReport {
                    database: database.clone(),
                    outcome: match crate::check_database_name(database) {
                        Ok(()) => TenantOutcome::Skipped,
                        Err(e) => TenantOutcome::Failed {
                            kind: e.kind(),
                            message: e.to_string(),
                        },
                    },
                })
                .collect(),
        )
    }

    /// Applies pending migrations in every database; one report per
    /// database, in the order given. A failure in one does not stop the
    /// others unless `fail_fast` is set. An invalid database name runs
    /// nothing anywhere: that database failed, the others were skipped.
    pub async fn up(&self, options: UpOptions) -> Vec<TenantReport> {
        if let Some(refused) = self.refused() {
            return refused;
        }
        let failed = Arc::new(AtomicBool::new(false));
        let fail_fast = self.fail_fast;
        self.each(|migrator, database| {
            let failed = failed.clone();
            async move {
                let skip = (fail_fast && failed.load(Ordering::SeqCst)) || migrator.stop_requested();
                let outcome = if skip {
                    TenantOutcome::Skipped
                } else {
                    match migrator.up(options).await {
                        Ok(report) => TenantOutcome::Applied { report },
                        Err(e) if e.kind() == ErrorKind::Locked => TenantOutcome::Locked { message: e.to_string() },
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            tracing::warn!(database = %database, error = %e, "tenant failed");
                            TenantOutcome::Failed {
                                kind: e.kind(),
                                message: e.to_string(),
                            }
                        }
                    }
                };
                TenantReport { database, outcome }
            }
        })
        .await
    }

    /// Every database's status, in the order given; an invalid database
    /// name reads nothing anywhere (each entry says why).
    pub async fn status(&self) -> Vec<TenantStatus> {
        if let Some(refused) = self.refused_each("read") {
            return refused
                .into_iter()
                .map(|(database, why)| TenantStatus {
                    database,
                    status: None,
                    error: Some(why),
                })
                .collect();
        }
        self.each(|migrator, database| async move {
            let (status, error) = match migrator.status().await {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.to_string())),
            };
            TenantStatus {
                database,
                status,
                error,
            }
        })
        .await
    }

    /// [`Migrator::plan_deploy`] in each database, `concurrency` at a time;
    /// read-only everywhere. An invalid database name plans nothing
    /// anywhere (each entry says why).
    pub async fn plan(&self, options: UpOptions, slow: u64) -> Vec<TenantPlan> {
        if let Some(refused) = self.refused_each("planned") {
            return refused
                .into_iter()
                .map(|(database, why)| TenantPlan {
                    database,
                    plan: None,
                    error: Some(why),
                })
                .collect();
        }
        self.each(|migrator, database| async move {
            let (plan, error) = match migrator.plan_deploy(options, slow).await {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(e.to_string())),
            };
            TenantPlan { database, plan, error }
        })
        .await
    }

    /// While a name is invalid, why each database was left alone: its own
    /// name's error, or `not <done>: ` and the first invalid name's.
    fn refused_each(&self, done: &str) -> Option<Vec<(String, String)>> {
        let first = self.validate().err()?;
        Some(
            self.databases
                .iter()
                .map(|database| {
                    let why = match crate::check_database_name(database) {
                        Err(own) => own.to_string(),
                        Ok(()) => format!("not {done}: {first}"),
                    };
                    (database.clone(), why)
                })
                .collect(),
        )
    }

    /// Runs `f` with each database's migrator and name, at most
    /// `concurrency` at once; the results in the order of the databases.
    async fn each<T, Fut>(&self, f: impl Fn(Migrator, String) -> Fut) -> Vec<T>
    where
        Fut: std::future::Future<Output = T>,
    {
        // Owned futures, made up front: each holds its migrator and name.
        let runs: Vec<_> = self
            .databases
            .iter()
            .enumerate()
            .map(|(i, database)| {
                let run = f(self.template.on_database(database), database.clone());
                async move { (i, run.await) }
            })
            .collect();
        let mut done: Vec<(usize, T)> = futures_util::stream::iter(runs)
            // Not `buffered`: it keeps the order but starts no new tenant
            // while the first in line is slow, so the others would wait.
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, t)| t).collect()
    }
}

/// The databases of a deployment that look like tenants: every database
/// but `admin`, `local` and `config` whose name `keep` accepts, sorted.
pub async fn list_databases(client: &mongodb::Client, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = client
        .list_database_names()
        .await?
        .into_iter()
        .filter(|n| !matches!(n.as_str(), "admin" | "local" | "config") && keep(n))
        .collect();
    names.sort();
    Ok(names)
}
