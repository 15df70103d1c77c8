//! What a run is told: collection names, lock timing, and `up`/`down` options.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Version;

/// Collection names and lock timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// The tracking collection (default `migrations`).
    pub tracking_collection: String,
    /// The lock collection (default `migration_locks`).
    pub lock_collection: String,
    /// The `_id` of the lock document; runners sharing it exclude each other.
    pub lock_name: String,
    /// How long a lock lives without a heartbeat. The heartbeat runs every third of it.
    pub lock_ttl: Duration,
    /// How long [`Migrator::connect`](crate::Migrator::connect) waits for a
    /// server before it reports it unreachable.
    pub connect_timeout: Duration,
    /// What `up` does with a pending migration older than the newest
    /// applied one (refuse, by default).
    pub out_of_order: OutOfOrder,
    /// Which members must finish an index build before it commits
    /// (`commitQuorum`; every data-bearing voting member by default).
    pub index_commit_quorum: crate::schema::CommitQuorum,
    /// How long a migration waits for an index build to commit (two hours
    /// by default; `None`: as long as it takes). Past it the migration
    /// fails in plain words; the build goes on in the server.
    pub index_build_wait: Option<Duration>,
}

/// What `up` does with a pending migration older than the newest applied
/// one, typically merged from another branch after the newer ones ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfOrder {
    /// Refuse with [`Error::OutOfOrder`](crate::Error::OutOfOrder), running nothing.
    #[default]
    Refuse,
    /// Apply it, in version order with the other pending ones.
    Allow,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tracking_collection: "migrations".into(),
            lock_collection: "migration_locks".into(),
            lock_name: "migrations".into(),
            lock_ttl: Duration::from_secs(60),
            connect_timeout: crate::server::CONNECT_TIMEOUT,
            out_of_order: OutOfOrder::Refuse,
            index_commit_quorum: crate::schema::CommitQuorum::default(),
            index_build_wait: Some(crate::schema::DEFAULT_BUILD_WAIT),
        }
    }
}

/// Options of [`Migrator::up`](crate::Migrator::up). Unknown fields are refused: a typo such as
/// `dryrun` must not turn a dry-run into a real run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UpOptions {
    /// Report what would run; change nothing, not even the lock.
    pub dry_run: bool,
    /// Apply pending migrations up to and including this version.
    pub to: Option<Version>,
    /// Apply pending migrations older than the newest applied one, whatever
    /// [`Config::out_of_order`] says.
    pub allow_out_of_order: bool,
    /// Apply only the migrations of this deploy phase (all, without one);
    /// post-deploy ones only after every older pre-deploy one.
    pub phase: Option<crate::Phase>,
    /// Go on past a failed migration that declares itself independent
    /// (`pub const INDEPENDENT: bool = true;`): it is recorded `failed` as
    /// always, the run applies the rest of its plan, and then fails with
    /// every failure ([`Error::SomeFailed`](crate::Error::SomeFailed)). A
    /// failed migration that does not declare it stops the run as without
    /// this option: later migrations may depend on what it did.
    pub continue_on_error: bool,
}

/// Options of [`Migrator::down`](crate::Migrator::down). Unknown fields are refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DownOptions {
    /// How far to roll back.
    pub target: DownTarget,
    /// Report what would be rolled back; change nothing, not even the lock.
    pub dry_run: bool,
}

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DownTarget {
    /// The last N applied migrations.
    Steps(usize),
    /// Every migration of the most recent batch.
    LastBatch,
    /// Everything applied after this version (which stays applied).
    To(Version),
}

impl DownTarget {
    /// From `down`'s options `steps`, `batch` and `to`, of which at most one
    /// may be given (`None` otherwise); none at all means one step.
    pub fn from_options(steps: Option<usize>, batch: bool, to: Option<Version>) -> Option<Self> {
        match (steps, batch, to) {
            (None, false, None) => Some(DownTarget::Steps(1)),
            (Some(n), false, None) => Some(DownTarget::Steps(n)),
            (None, true, None) => Some(DownTarget::LastBatch),
            (None, false, Some(v)) => Some(DownTarget::To(v)),
            _ => None,
        }
    }
}

impl Default for DownTarget {
    fn default() -> Self {
        DownTarget::Steps(1)
    }
}

/// How to settle a migration left `running` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resolution {
    /// Its effect is in place: record it as applied.
    Applied,
    /// Its effect is not in place: run it again on the next `up`.
    Pending,
    /// A completed migration whose code changed harmlessly: record the
    /// current checksum, keeping the old one in the record's
    /// `acceptedChecksums`.
    AcceptChecksum,
}
