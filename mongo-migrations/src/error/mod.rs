//! The runtime's error type.

mod text;

pub(crate) use crate::driver_message::plain;

use text::{before, lost_run, named, pending_list, them, versions};

use crate::version::InvalidVersion;
use crate::{Blocker, LockedBy, MigrationStatus, Version};

/// What a migration's `up` or `down` returns on failure.
pub type MigrationError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What `up` and `down` return.
pub type MigrationResult = std::result::Result<(), MigrationError>;

/// Errors of the runtime. Each message says what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A version that is not 14 digits of a real UTC time.
    #[error(transparent)]
    InvalidVersion(#[from] InvalidVersion),

    #[error(
        "duplicate migration version {version}: `{first}` and `{second}` share it; give one of them a new timestamp"
    )]
    /// Two migrations of a registry share a version.
    DuplicateVersion {
        /// The shared version.
        version: Version,
        /// The first migration's name.
        first: String,
        /// The second migration's name.
        second: String,
    },

    #[error("migrations are out of order: {later} is listed after {earlier}; regenerate the registry so it lists versions in ascending order")]
    /// A registry lists versions out of order.
    Unordered {
        /// The version listed first.
        earlier: Version,
        /// The smaller version listed after it.
        later: Version,
    },

    #[error("invalid MongoDB URI: {message}; expected e.g. mongodb://127.0.0.1:27017/mydb")]
    /// The URI does not parse.
    InvalidUri {
        /// The driver's message, without its debug dump.
        message: String,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },

    #[error("no database name: put it in the URI path (mongodb://host/mydb) or set it explicitly")]
    /// Neither the URI nor the caller names a database.
    MissingDatabase,

    #[error("cannot reach {hosts}: {cause}")]
    /// No server could be selected in time.
    Unreachable {
        /// The URI's hosts.
        hosts: String,
        /// Why, in words (a refused connection, no answer, a mismatched server).
        cause: String,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },

    #[error("the server refused the credentials: {message}")]
    /// The server refused the credentials.
    AuthFailed {
        /// The server's message.
        message: String,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },

    #[error("lost the connection to the server during {during} (retried for {retried_secs} s; last: {cause}); the run stopped there and nothing after it started. Run the command again once the server answers; `status` shows what was recorded")]
    /// The network or the server failed for longer than a command of the
    /// run protocol is retried (nine tenths of the lock TTL).
    ServerLost {
        /// The command that gave up, e.g. `the step write of 20260101000000`.
        during: String,
        /// How long it was retried.
        retried_secs: u64,
        /// The last fault, in the driver's plain words.
        cause: String,
    },

    #[error("MongoDB error: {}", plain(.0))]
    /// Any other error of the driver or the server. Its text is in the
    /// message, so `source()` does not return it again (match the variant).
    Mongo(mongodb::error::Error),

    #[error("migrations are locked by {holder} until {expires_at}; wait for that run to finish, or if it died, run `force-unlock` once you are sure it is gone")]
    /// Another runner holds the lock, or its run is in progress.
    Locked {
        /// Who, and where its run is.
        holder: LockedBy,
        /// When its lock expires unless refreshed.
        expires_at: chrono::DateTime<chrono::Utc>,
    },

    #[error("this runner lost the migration lock{}; it wrote nothing and started nothing after that. {}Check `status`, then run again", taken_by.as_deref().map(|h| format!(" to {h}")).unwrap_or_default(), lost_run(.completed, .interrupted, .not_run))]
    /// This runner lost the lock during its run and stopped.
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
    /// `force_unlock(false)`.
    UnlockNotConfirmed,

    #[error("the database records migration(s) {} that this build does not know; deploy the code that contains them, or if their files were deleted on purpose, `forget` them (a copy of each record is kept); if another package or service keeps its migrations in the same collection, give each its own tracking collection", named(.versions))]
    /// The database records versions the registry does not have.
    UnknownVersions {
        /// Each unknown version with its recorded name.
        versions: Vec<(Version, String)>,
    },

    #[error("migration {version} ({name}) was edited after it was applied (checksum {} then, {} now): restore the original file and write a new migration for the change, or accept an edit that changes nothing it did with `resolve {version} --accept-checksum`", text::short_checksum(recorded), text::short_checksum(current))]
    /// An applied migration's code changed.
    ChecksumMismatch {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of its code now.
        current: String,
    },

    #[error("migration {version} ({name}) is {status} ({blocker}); fix the cause, then `resolve {version} --pending` to run it again or `resolve {version} --applied` if it completed")]
    /// A migration left `running` or `failed` needs `resolve` first.
    Blocked {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
        /// `running` or `failed`.
        status: MigrationStatus,
        /// Its error, or who left it running.
        blocker: Blocker,
    },

    #[error("migration {version} ({name}) is irreversible (it has no `down`); nothing was rolled back")]
    /// A rollback would need a migration that has no `down`.
    Irreversible {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
    },

    #[error("unknown target version {version}: it is not in this build's registry")]
    /// A target version the registry does not have.
    UnknownTarget {
        /// The version asked for.
        version: Version,
    },

    #[error("migration {version} ({name}) failed: {message}{}", before(.completed))]
    /// A migration's body failed; it is recorded `failed`.
    MigrationFailed {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
        /// What it returned.
        message: String,
        /// The error it returned, when it was one. Its text is `message`,
        /// so `source()` does not return it again.
        error: Option<MigrationError>,
        /// What the same run applied (or rolled back) and recorded before it.
        completed: Vec<Version>,
    },

    #[error("the user `{user}` may not {} on `{database}`, which the migrations to run need: grant it (the `dbAdmin` role has `collMod`), or run them as a user that may; nothing was written", text::needed(missing))]
    /// The run's user lacks privileges its migrations need beyond reads
    /// and writes; refused before anything was written.
    MissingPrivileges {
        /// The authenticated user, `name@authdb`.
        user: String,
        /// The database.
        database: String,
        /// Each missing action, with the migrations that need it.
        missing: Vec<(String, Vec<Version>)>,
    },

    #[error("{} failed; the run went on with the others (continue on error){}: {}", text::failed_count(failures.len()), text::applied(completed), text::failures(failures))]
    /// With `continue_on_error`, the run went on past migrations that
    /// failed (each recorded `failed`, as one that stops a run is).
    SomeFailed {
        /// Each failure: the migration's version, name, and what it returned.
        failures: Vec<(Version, String, String)>,
        /// What the same run applied (or rolled back) and recorded.
        completed: Vec<Version>,
    },

    #[error("migration {version} ({name}) needs a transaction, but this server does not support them (it is not a replica set or sharded cluster); run it against a replica set or make it non-transactional")]
    /// A transactional migration, and a server without transactions.
    TransactionsUnsupported {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
    },

    #[error("migration {version} ({name}) was changed by another runner while this one held the lock; nothing was run. Check `status`, then run again")]
    /// A record changed between this runner's read and its write.
    Conflict {
        /// Its version.
        version: Version,
        /// Its name.
        name: String,
    },

    #[error("tracking document {document} has a missing or malformed `{field}`; fix or remove it by hand")]
    /// A tracking document this version cannot read.
    CorruptRecord {
        /// The document, as extended JSON.
        document: String,
        /// The missing or malformed field.
        field: String,
    },

    #[error("cannot forget {version}: {reason}")]
    /// `forget` of a version it must not remove.
    NotForgettable {
        /// The version.
        version: Version,
        /// Why not.
        reason: String,
    },

    #[error("forget needs explicit confirmation")]
    /// `forget(.., false)`.
    ForgetNotConfirmed,

    #[error("no tracking record for version {version}; nothing to resolve")]
    /// `resolve` of a version without a record.
    NothingToResolve {
        /// The version.
        version: Version,
    },

    #[error("migration {version} is {status}, not running or failed; nothing to resolve")]
    /// `resolve` of a record that is neither `running` nor `failed`.
    NotResolvable {
        /// The version.
        version: Version,
        /// Its state.
        status: MigrationStatus,
    },

    #[error("writing to `{collection}` was interrupted by a failover or a shutdown of the server (code {code}: {message}); the write may have landed. Run the command again once a primary answers: `status` shows what was recorded")]
    /// A write the server answered while it stepped down or shut down: a
    /// `writeConcernError` or write error of a code the retryable-writes
    /// specification counts as retryable. The run protocol retries it
    /// within its window; this is what is left after that, or where nothing
    /// retries.
    Interrupted {
        /// The collection.
        collection: String,
        /// The server's error code.
        code: i32,
        /// What the server said.
        message: String,
    },

    #[error("writing to `{collection}` failed: {message}")]
    /// A write to the tracking or lock collection failed.
    WriteFailed {
        /// The collection.
        collection: String,
        /// What the server said.
        message: String,
    },

    #[error("{} pending but older than {newest_applied}, the newest applied migration (merged from another branch?); nothing was run. Apply {} with --allow-out-of-order (or `out-of-order = \"allow\"`), or give {} a new version", pending_list(.pending), them(.pending), them(.pending))]
    /// Pending migrations older than the newest applied one, and out-of-order
    /// runs are not allowed (see [`OutOfOrder`](crate::OutOfOrder)).
    OutOfOrder {
        /// The pending migrations that are older, with their names.
        pending: Vec<(Version, String)>,
        /// The newest applied version.
        newest_applied: Version,
    },

    #[error("squash {version} ({name}) replaces {}, of which only {} {} applied; nothing was run. Apply or roll back the rest with the build before the squash ({} not applied)", versions(&[.applied.as_slice(), .missing.as_slice()].concat()), versions(.applied), if .applied.len() == 1 { "is" } else { "are" }, versions(.missing))]
    /// A squashed migration on a database where only some of the versions it
    /// replaces ran: neither running it nor recording it is right.
    PartialSquash {
        /// The squash's version.
        version: Version,
        /// Its name.
        name: String,
        /// Replaced versions that are applied.
        applied: Vec<Version>,
        /// Replaced versions that are not.
        missing: Vec<Version>,
    },

    #[error("squash {version} replaces {replaced}, which {reason}")]
    /// A squash's `REPLACES` names a version it cannot replace.
    BadReplaces {
        /// The squash's version.
        version: Version,
        /// The replaced version.
        replaced: u64,
        /// Why not.
        reason: String,
    },

    #[error("cannot baseline: {} already {} a tracking record; baseline adopts only a database without any. Nothing was written", named(.recorded), if .recorded.len() == 1 { "has" } else { "have" })]
    /// `baseline` of a database where some of the migrations have records.
    NotBaselinable {
        /// The migrations that have records, with their names.
        recorded: Vec<(Version, String)>,
    },

    #[error("migration {version} is {status}; only a completed migration's checksum can be accepted")]
    /// `resolve --accept-checksum` of a migration that is not completed.
    ChecksumNotAcceptable {
        /// The version.
        version: Version,
        /// Its state.
        status: MigrationStatus,
    },

    #[error("`{name}` cannot be the database of a run: {reason}; nothing ran in any database")]
    /// A database name (a run's or a tenant's) the server would refuse, or a
    /// system database.
    InvalidDatabaseName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },

    #[error(transparent)]
    /// Reading the database's schema for drift failed.
    Schema(Box<crate::schema::SchemaError>),

    #[error("the migration harness failed: {0}")]
    /// The harness protocol between the CLI and the harness broke.
    Harness(String),

    #[error("invalid value `{value}` for {variable}: expected `true` or `false`")]
    /// An environment variable with a value it cannot take.
    InvalidEnv {
        /// The variable.
        variable: String,
        /// Its value.
        value: String,
    },
}

/// What kind of failure an [`Error`] is: it chooses the CLI's exit code and
/// the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad URI, unreachable server, refused credentials.
    Connection,
    /// Missing or contradictory configuration (no database name).
    Configuration,
    /// Another runner holds the lock.
    Locked,
    /// The database needs attention: failed, running, unknown or edited migrations.
    Blocked,
    /// A bad request: unknown target, unconfirmed unlock, irreversible rollback.
    Usage,
    /// A migration, the server, or this runner's hold on the lock failed.
    Failed,
}

impl From<crate::schema::SchemaError> for Error {
    fn from(e: crate::schema::SchemaError) -> Self {
        Error::Schema(Box::new(e))
    }
}

impl Error {
    /// The kind of this error. Every variant is classified here, so a new
    /// one cannot fall through to a default.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUri { .. }
            | Error::Unreachable { .. }
            | Error::AuthFailed { .. }
            | Error::ServerLost { .. }
            | Error::Interrupted { .. } => ErrorKind::Connection,
            Error::MissingDatabase | Error::InvalidEnv { .. } => ErrorKind::Configuration,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Blocked { .. }
            | Error::UnknownVersions { .. }
            | Error::ChecksumMismatch { .. }
            | Error::OutOfOrder { .. }
            | Error::PartialSquash { .. } => ErrorKind::Blocked,
            Error::UnknownTarget { .. }
            | Error::UnlockNotConfirmed
            | Error::Irreversible { .. }
            | Error::NothingToResolve { .. }
            | Error::NotForgettable { .. }
            | Error::ForgetNotConfirmed
            | Error::NotResolvable { .. }
            | Error::NotBaselinable { .. }
            | Error::ChecksumNotAcceptable { .. }
            | Error::InvalidDatabaseName { .. }
            | Error::BadReplaces { .. }
            | Error::InvalidVersion(_)
            | Error::DuplicateVersion { .. }
            | Error::MissingPrivileges { .. }
            | Error::Unordered { .. } => ErrorKind::Usage,
            Error::Mongo(_)
            | Error::LockLost { .. }
            | Error::MigrationFailed { .. }
            | Error::SomeFailed { .. }
            | Error::TransactionsUnsupported { .. }
            | Error::Conflict { .. }
            | Error::CorruptRecord { .. }
            | Error::WriteFailed { .. }
            | Error::Schema(_)
            | Error::Harness(_) => ErrorKind::Failed,
        }
    }

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

impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        Error::Mongo(e)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
