//! What a run reports as it goes: migrations starting and finishing, a
//! walk's batches, waiting for the lock. Pure data, for progress callbacks,
//! the harness's event lines and the CLI's progress output.

use serde::{Deserialize, Serialize};

use crate::status::Direction;
use crate::version::Version;

/// Progress of a run, for long migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Progress {
    /// Another runner holds the lock; this one waits (see
    /// [`Migrator::with_lock_wait`](crate::Migrator::with_lock_wait)). Sent once.
    #[serde(rename_all = "camelCase")]
    Waiting {
        /// Who holds the lock.
        holder: crate::LockedBy,
        /// When the lock expires unless its holder refreshes it.
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    #[serde(rename_all = "camelCase")]
    /// A migration starts.
    Started {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
        /// Applying or rolling back.
        direction: Direction,
    },
    #[serde(rename_all = "camelCase")]
    /// A migration finished and was recorded.
    Finished {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
        /// Applied or rolled back.
        direction: Direction,
        /// How long its body took.
        duration_ms: i64,
    },
    /// A migration failed, was recorded `failed`, and the run goes on with
    /// the next (see [`UpOptions::continue_on_error`](crate::UpOptions::continue_on_error)).
    #[serde(rename_all = "camelCase")]
    FailedAndContinued {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
        /// What it returned.
        error: String,
    },
    /// A batch of a data migration's walk is done and checkpointed (see
    /// [`MigrationContext::batches`](crate::MigrationContext::batches)).
    #[serde(rename_all = "camelCase")]
    Batch {
        /// The migration's version.
        version: Version,
        /// Documents done, earlier interrupted runs included.
        done: u64,
        /// Documents to do in all, as counted when this run's walk started.
        total: u64,
        /// Documents per second in this run.
        per_second: u64,
        /// Seconds left at that rate.
        eta_secs: Option<u64>,
    },
    /// An index build of [`MigrationContext::ensure_index`](crate::MigrationContext::ensure_index)
    /// is under way, as the server's `currentOp` reports it (about every second).
    #[serde(rename_all = "camelCase")]
    IndexBuild {
        /// The migration's version.
        version: Version,
        /// The collection.
        collection: String,
        /// The index.
        index: String,
        /// Keys done in the build's current phase.
        done: u64,
        /// Keys in that phase.
        total: u64,
    },
    /// An event of one tenant's run (see [`Migrator::for_databases`](crate::Migrator::for_databases)):
    /// with several tenants at once, their events interleave.
    Tenant {
        /// The tenant's database.
        database: String,
        /// What happened there.
        progress: Box<Progress>,
    },
}
