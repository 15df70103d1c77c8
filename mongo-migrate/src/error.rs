//! The runtime's error type.

use crate::{MigrationStatus, Version};

/// What a migration's `up` or `down` returns on failure.
pub type MigrationError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the runtime. Each message says what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid migration version `{input}`: expected 14 digits YYYYMMDDHHMMSS forming a real UTC date and time")]
    InvalidVersion { input: String },

    #[error(
        "duplicate migration version {version}: `{first}` and `{second}` share it; give one of them a new timestamp"
    )]
    DuplicateVersion {
        version: Version,
        first: String,
        second: String,
    },

    #[error("migrations are out of order: {later} is listed after {earlier}; regenerate the registry so it lists versions in ascending order")]
    Unordered { earlier: Version, later: Version },

    #[error("invalid MongoDB URI: {message}; expected e.g. mongodb://127.0.0.1:27017/mydb")]
    InvalidUri {
        message: String,
        #[source]
        source: Box<mongodb::error::Error>,
    },

    #[error("no database name: put it in the URI path (mongodb://host/mydb) or set it explicitly")]
    MissingDatabase,

    #[error("cannot reach {hosts}: {cause}")]
    Unreachable {
        hosts: String,
        cause: String,
        #[source]
        source: Box<mongodb::error::Error>,
    },

    #[error("the server refused the credentials: {message}")]
    AuthFailed {
        message: String,
        #[source]
        source: Box<mongodb::error::Error>,
    },

    #[error("MongoDB error: {0}")]
    Mongo(#[from] mongodb::error::Error),

    #[error("migrations are locked by {holder} until {expires_at}; wait for that run to finish, or if it died, run `force-unlock` once you are sure it is gone")]
    Locked {
        holder: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },

    #[error("this runner lost the migration lock{}; it wrote nothing and started nothing after that. {}Check `status`, then run again", taken_by.as_deref().map(|h| format!(" to {h}")).unwrap_or_default(), lost_run(.completed, .interrupted, .not_run))]
    LockLost {
        /// Who holds the lock now, if anyone.
        taken_by: Option<String>,
        /// What this run applied (or rolled back) and recorded before the loss.
        completed: Vec<Version>,
        /// The migration whose body had started when the loss was found:
        /// its effect may be partly in place, and its record stays `running`.
        interrupted: Option<Version>,
        /// What this run had planned and did not start.
        not_run: Vec<Version>,
    },

    #[error("force-unlock needs explicit confirmation")]
    UnlockNotConfirmed,

    #[error("the database records migration(s) {versions} that this build does not know; deploy the code that contains them, or if their files were deleted on purpose, `forget` them (a copy of each record is kept); if another package or service keeps its migrations in the same collection, give each its own tracking collection")]
    UnknownVersions { versions: String },

    #[error("migration {version} ({name}) was edited after it was applied (checksum {recorded} recorded, {current} now); restore the original file and write a new migration for the change")]
    ChecksumMismatch {
        version: Version,
        name: String,
        recorded: String,
        current: String,
    },

    #[error("migration {version} ({name}) is {status}{detail}; fix the cause, then `resolve {version} --pending` to run it again or `resolve {version} --applied` if it completed")]
    Blocked {
        version: Version,
        name: String,
        status: MigrationStatus,
        detail: String,
    },

    #[error("migration {version} ({name}) is irreversible (it has no `down`); nothing was rolled back")]
    Irreversible { version: Version, name: String },

    #[error("unknown target version {version}: it is not in this build's registry")]
    UnknownTarget { version: Version },

    #[error("migration {version} ({name}) failed: {message}")]
    MigrationFailed {
        version: Version,
        name: String,
        message: String,
        #[source]
        source: Option<MigrationError>,
    },

    #[error("migration {version} ({name}) needs a transaction, but this server does not support them (it is not a replica set or sharded cluster); run it against a replica set or make it non-transactional")]
    TransactionsUnsupported { version: Version, name: String },

    #[error("migration {version} ({name}) was changed by another runner while this one held the lock; nothing was run. Check `status`, then run again")]
    Conflict { version: Version, name: String },

    #[error("tracking document {document} has a missing or malformed `{field}`; fix or remove it by hand")]
    CorruptRecord { document: String, field: String },

    #[error("cannot forget {version}: {reason}")]
    NotForgettable { version: Version, reason: String },

    #[error("forget needs explicit confirmation")]
    ForgetNotConfirmed,

    #[error("no tracking record for version {version}; nothing to resolve")]
    NothingToResolve { version: Version },

    #[error("migration {version} is {status}, not running or failed; nothing to resolve")]
    NotResolvable { version: Version, status: MigrationStatus },

    #[error("writing to `{collection}` failed: {message}")]
    WriteFailed { collection: String, message: String },

    #[error("the migration harness failed: {0}")]
    Harness(String),

    #[error("invalid value `{value}` for {variable}: expected `true` or `false`")]
    InvalidEnv { variable: String, value: String },
}

impl Error {
    /// A lost lock, before the run adds what it did.
    pub(crate) fn lock_lost() -> Self {
        Error::LockLost {
            taken_by: None,
            completed: Vec::new(),
            interrupted: None,
            not_run: Vec::new(),
        }
    }
}

fn versions(list: &[Version]) -> String {
    list.iter().map(Version::to_string).collect::<Vec<_>>().join(", ")
}

fn lost_run(completed: &[Version], interrupted: &Option<Version>, not_run: &[Version]) -> String {
    let mut out = String::new();
    if !completed.is_empty() {
        out.push_str(&format!("Recorded before the loss: {}. ", versions(completed)));
    }
    if let Some(v) = interrupted {
        out.push_str(&format!(
            "{v} had started and may be partly applied; its record stays `running` for `resolve`. "
        ));
    }
    if !not_run.is_empty() {
        out.push_str(&format!("Not started: {}. ", versions(not_run)));
    }
    out
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
