//! Runtime of `cargo mongo-migrate`: versioned, typed MongoDB migrations.
//!
//! A [`Registry`] lists [`Migration`]s in version order (the CLI generates it);
//! a [`Migrator`] applies them with a tracking collection, an expiring, fenced
//! lock so concurrent runners never apply a migration twice, optional
//! transactions, and dry-runs.
//!
//! Features:
//! - `cli`: [`cli::run`], a migration binary with the commands of
//!   `cargo mongo-migrate` that need no files, for hosts without cargo;
//! - `macros`: `#[mongo_migrations::test]` and [`testing`], a fresh database
//!   per test with the migrations applied;
//! - `http`: [`http`], an embeddable router for status, history, the lock,
//!   and authorised runs.

#![warn(missing_docs)]

mod auto_run;
mod batch;
mod built_indexes;
mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
mod context;
mod database_name;
mod driver_message;
mod error;
/// The entry point of the harness binary the CLI builds; internal to the
/// CLI and this crate, which are released together.
#[doc(hidden)]
pub mod harness;
mod holder;
#[cfg(feature = "http")]
pub mod http;
mod inspect;
mod lock;
mod migration;
mod migrator;
mod operation;
mod options;
mod phase;
mod plan;
mod plan_context;
mod plan_report;
mod privileges;
mod progress;
mod record;
mod registry;
mod report;
mod retry;
pub mod schema;
mod server;
mod settings;
mod state_read;
mod status;
mod stop;
mod tenants;
#[cfg(feature = "macros")]
pub mod testing;
mod tracking;
mod transient;
mod update;
mod version;

pub use auto_run::{auto_run, AutoRun, AutoRunConfig};
pub use batch::{BatchStats, Batches};
pub use context::MigrationContext;
pub use database_name::check_database_name;
pub use error::{Error, ErrorKind, MigrationError, MigrationResult, Result};
pub use holder::{Holder, LockedBy};
pub use inspect::DEFAULT_SLOW_DOCUMENTS;
pub use lock::LockInfo;
pub use migration::{BoxFuture, Migration, MigrationFn, PlanFn};
pub use migrator::Migrator;
pub use options::DownTarget;
pub use options::{Config, DownOptions, OutOfOrder, Resolution, UpOptions};
pub use phase::Phase;
pub use plan_context::PlanContext;
pub use plan_report::{PlanReport, PlanStep, PlannedMigration, Risk};
pub use progress::Progress;
pub use record::{AcceptedChecksum, HistoryQuery, LogEntry, LogEvent, Record, StagedViolations, LOG_KEPT};
pub use registry::Registry;
pub use report::{Counts, Readiness, RunReport, State, StatusEntry, StatusReport, Step, StoppedWalk};
pub use server::{check_target, connect, connect_within, supports_transactions};
pub use settings::{Package, Settings};
pub use state_read::StateRead;
pub use status::{Blocker, Direction, MigrationStatus, Runner};
pub use stop::StopHandle;
pub use tenants::{list_databases, TenantOutcome, TenantPlan, TenantReport, TenantStatus, Tenants};
pub use version::{InvalidVersion, Version};

/// Re-exported so migrations and generated code need no direct dependency.
pub use bson;
/// `#[mongo_migrations::test]`: see [`testing`].
#[cfg(feature = "macros")]
pub use mongo_migrations_macros::test;
pub use mongodb;

/// The README's Rust examples, compiled as doctests.
#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What a migration module usually needs.
pub mod prelude {
    pub use crate::{MigrationContext, MigrationResult, Phase};
    pub use bson::{doc, Document};
}
