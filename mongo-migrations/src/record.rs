//! A tracking record as a value: its decoding from documents of any age,
//! and the predicates that say where its migration stands. Pure data, no
//! I/O: planning and reports read it; `tracking.rs` reads and writes it.

use bson::{Bson, Document};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::error::Error;
use crate::lock::LockInfo;
use crate::status::{Direction, MigrationStatus};
use crate::version::Version;

/// One tracking document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The migration's version.
    pub version: Version,
    /// Its name when it was recorded.
    pub name: String,
    /// Its description when it was recorded.
    pub description: String,
    /// Its state.
    pub status: MigrationStatus,
    /// The direction of the last operation on this version.
    pub direction: Direction,
    /// When it was last applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// When it was last rolled back.
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// When the last operation's body was allowed to start.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// How long the last operation's body took.
    pub execution_time_ms: Option<i64>,
    /// The last operation's error, if it failed.
    pub error: Option<String>,
    /// How many times the last operation was tried, when it failed.
    #[serde(default)]
    pub attempts: Option<i64>,
    /// Whether it had a `down` when recorded.
    pub reversible: bool,
    /// Whether it ran in a transaction.
    pub transactional: bool,
    /// The batch of its last `up`.
    pub batch: i64,
    /// The checksum of its code when applied.
    pub checksum: String,
    /// The lock holder id and fencing generation that last wrote this record.
    pub lock_holder: Option<String>,
    /// The lock generation that last wrote it.
    pub lock_generation: Option<i64>,
    /// The lock generation that fenced this claim: its runner lost the lock
    /// and can write nothing more to it.
    #[serde(default)]
    pub fenced_by: Option<i64>,
    /// Where the batches of an interrupted data migration stopped, one
    /// entry per walk (see [`MigrationContext::batches`](crate::MigrationContext::batches)).
    #[serde(default)]
    pub checkpoints: Option<serde_json::Value>,
    /// When a stop request ended its last operation's walk between two
    /// batches: it is not failed, and the next run resumes it.
    #[serde(default)]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Its last operation walks in batches (see [`Migration::walks`](crate::Migration::walks)): a
    /// stop at any moment of it resumes, even before the first checkpoint.
    #[serde(default)]
    pub walks: bool,
    /// Recorded as applied by `baseline`, without running.
    #[serde(default)]
    pub baseline: bool,
    /// Recorded as applied without running: by `baseline`, or a squash
    /// whose replaced migrations were all applied.
    #[serde(default)]
    pub adopted: bool,
    /// Earlier checksums that `resolve --accept-checksum` replaced, oldest first.
    #[serde(default)]
    pub accepted_checksums: Vec<AcceptedChecksum>,
    /// The documents that violated each validator this run staged, counted
    /// right after it was set at `warn`.
    #[serde(default)]
    pub violations: Vec<StagedViolations>,
    /// Its runs, oldest first: every apply, rollback, failure and stop,
    /// appended by the step write that records it (the last [`LOG_KEPT`];
    /// none for runs of versions before 0.2, or a record written without running).
    #[serde(default)]
    pub log: Vec<LogEntry>,
    /// Free-form details, such as how a `resolve` settled it.
    pub metadata: serde_json::Value,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}

/// The record's field that keeps its [`LogEntry`]s.
pub(crate) const LOG_FIELD: &str = "log";

/// How many [`LogEntry`]s a record keeps, the latest: a migration run and
/// rolled back more often than this keeps its latest runs.
pub const LOG_KEPT: i32 = 100;

/// How one run of a migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LogEvent {
    /// Its `up` went through.
    Applied,
    /// Its `down` went through.
    RolledBack,
    /// It failed (see the entry's error).
    Failed,
    /// A stop request ended its walk between two batches; resumable.
    Stopped,
}

impl LogEvent {
    /// As stored and printed: `applied`, `rolled-back`, `failed`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogEvent::Applied => "applied",
            LogEvent::RolledBack => "rolled-back",
            LogEvent::Failed => "failed",
            LogEvent::Stopped => "stopped",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            LogEvent::Applied,
            LogEvent::RolledBack,
            LogEvent::Failed,
            LogEvent::Stopped,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }
}

/// One run of a migration, as its record's `log` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// How it ended.
    pub event: LogEvent,
    /// Which way it went.
    pub direction: Direction,
    /// The batch of the run.
    pub batch: i64,
    /// When it was recorded (the server's clock).
    pub at: DateTime<Utc>,
    /// How long its body took.
    pub execution_time_ms: Option<i64>,
    /// Its error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Documents its walks handed over, when it walked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walked_documents: Option<u64>,
    /// How long those walks took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_ms: Option<u64>,
    /// Documents in the collections of the indexes it built (as their
    /// metadata counted them before each build), when it built one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_documents: Option<u64>,
    /// How long those builds took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredLogEntry {
    event: String,
    direction: String,
    batch: i64,
    at: bson::DateTime,
    execution_time_ms: Option<i64>,
    error: Option<String>,
    walked_documents: Option<i64>,
    walk_ms: Option<i64>,
    indexed_documents: Option<i64>,
    index_ms: Option<i64>,
}

/// How many documents violated a validator a migration staged, and a few of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedViolations {
    /// The collection.
    pub collection: String,
    /// How many of its documents violate the validator.
    pub count: u64,
    /// The first few of their `_id`s, as text.
    pub sample: Vec<String>,
}

/// A checksum that an edit replaced, accepted by `resolve --accept-checksum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedChecksum {
    /// The checksum before the edit.
    pub checksum: String,
    /// When the edit was accepted.
    pub accepted_at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAccepted {
    checksum: String,
    accepted_at: bson::DateTime,
}

/// A tracking document as stored. Fields that older versions did not write,
/// or that a partial record lacks, are optional; the rest are required, and
/// checked one by one so that the error names the missing field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    version: Option<i64>,
    name: Option<String>,
    description: Option<String>,
    status: Option<String>,
    direction: Option<String>,
    applied_at: Option<bson::DateTime>,
    rolled_back_at: Option<bson::DateTime>,
    started_at: Option<bson::DateTime>,
    execution_time_ms: Option<i64>,
    error: Option<String>,
    attempts: Option<i64>,
    reversible: Option<bool>,
    transactional: Option<bool>,
    batch: Option<i64>,
    checksum: Option<String>,
    lock_holder: Option<StoredHolder>,
    fenced_by: Option<i64>,
    checkpoints: Option<Document>,
    stopped_at: Option<bson::DateTime>,
    walks: Option<bool>,
    baseline: Option<bool>,
    adopted: Option<bool>,
    accepted_checksums: Option<Vec<StoredAccepted>>,
    violations: Option<Vec<StoredViolations>>,
    log: Option<Vec<StoredLogEntry>>,
    metadata: Option<Bson>,
    created_at: Option<bson::DateTime>,
    updated_at: Option<bson::DateTime>,
}

#[derive(Deserialize)]
struct StoredViolations {
    collection: String,
    count: i64,
    #[serde(default)]
    sample: Vec<String>,
}

#[derive(Deserialize)]
struct StoredHolder {
    id: Option<String>,
    generation: Option<i64>,
}

impl Record {
    pub(crate) fn from_document(doc: &Document) -> Result<Self, Error> {
        let corrupt = |field: &str| Error::CorruptRecord {
            document: doc.to_string(),
            field: field.to_string(),
        };
        // A field of the wrong type is named by its path (`lockHolder.id`).
        let stored: Stored = serde_path_to_error::deserialize(bson::Deserializer::new(Bson::Document(doc.clone())))
            .map_err(|e| corrupt(&e.path().to_string()))?;
        let required = |field: &'static str| corrupt(field);
        let status = stored.status.as_deref().ok_or_else(|| required("status"))?;
        let status = MigrationStatus::parse(status).ok_or_else(|| corrupt("status"))?;
        let version = stored.version.ok_or_else(|| required("version"))?;
        let name = stored.name.ok_or_else(|| required("name"))?;
        let batch = stored.batch.ok_or_else(|| required("batch"))?;
        let created_at = stored.created_at.ok_or_else(|| required("createdAt"))?;
        let updated_at = stored.updated_at.ok_or_else(|| required("updatedAt"))?;
        let direction = match stored.direction.as_deref() {
            Some("down") => Direction::Down,
            _ => Direction::Up,
        };
        let (lock_holder, lock_generation) = stored.lock_holder.map_or((None, None), |h| (h.id, h.generation));
        Ok(Record {
            version: Version::from_i64(version)?,
            name,
            description: stored.description.unwrap_or_default(),
            status,
            direction,
            applied_at: stored.applied_at.map(bson::DateTime::to_chrono),
            rolled_back_at: stored.rolled_back_at.map(bson::DateTime::to_chrono),
            started_at: stored.started_at.map(bson::DateTime::to_chrono),
            execution_time_ms: stored.execution_time_ms,
            error: stored.error,
            attempts: stored.attempts,
            reversible: stored.reversible.unwrap_or(false),
            transactional: stored.transactional.unwrap_or(false),
            batch,
            checksum: stored.checksum.unwrap_or_default(),
            lock_holder,
            lock_generation,
            fenced_by: stored.fenced_by,
            checkpoints: stored.checkpoints.map(|c| Bson::Document(c).into_relaxed_extjson()),
            stopped_at: stored.stopped_at.map(bson::DateTime::to_chrono),
            walks: stored.walks.unwrap_or(false),
            baseline: stored.baseline.unwrap_or(false),
            adopted: stored.adopted.unwrap_or(false),
            accepted_checksums: stored
                .accepted_checksums
                .unwrap_or_default()
                .into_iter()
                .map(|a| AcceptedChecksum {
                    checksum: a.checksum,
                    accepted_at: a.accepted_at.to_chrono(),
                })
                .collect(),
            violations: stored
                .violations
                .unwrap_or_default()
                .into_iter()
                .map(|v| StagedViolations {
                    collection: v.collection,
                    count: u64::try_from(v.count).unwrap_or(0),
                    sample: v.sample,
                })
                .collect(),
            log: stored
                .log
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    Ok(LogEntry {
                        event: LogEvent::parse(&e.event).ok_or_else(|| corrupt("log.event"))?,
                        direction: match e.direction.as_str() {
                            "down" => Direction::Down,
                            _ => Direction::Up,
                        },
                        batch: e.batch,
                        at: e.at.to_chrono(),
                        execution_time_ms: e.execution_time_ms,
                        error: e.error,
                        walked_documents: e.walked_documents.and_then(|n| u64::try_from(n).ok()),
                        walk_ms: e.walk_ms.and_then(|n| u64::try_from(n).ok()),
                        indexed_documents: e.indexed_documents.and_then(|n| u64::try_from(n).ok()),
                        index_ms: e.index_ms.and_then(|n| u64::try_from(n).ok()),
                    })
                })
                .collect::<Result<_, Error>>()?,
            metadata: stored
                .metadata
                .map_or(serde_json::Value::Null, Bson::into_relaxed_extjson),
            created_at: created_at.to_chrono(),
            updated_at: updated_at.to_chrono(),
        })
    }

    /// Whether the migration's effect is in place, as far as the records
    /// tell: completed, or claimed for a rollback that has not started.
    pub(crate) fn is_applied(&self) -> bool {
        match self.status {
            MigrationStatus::Completed => true,
            MigrationStatus::Planned => self.direction == Direction::Down,
            _ => (self.rolled_back_whole() || self.is_resumable()) && self.direction == Direction::Down,
        }
    }

    /// A claim of the run that holds `lock` (as read), unfenced: in progress.
    pub(crate) fn is_live(&self, lock: Option<&LockInfo>) -> bool {
        self.fenced_by.is_none() && lock.is_some_and(|l| l.wrote(self.lock_holder.as_deref(), self.lock_generation))
    }

    /// `" since <startedAt>"`, or nothing.
    pub(crate) fn since(&self) -> String {
        crate::status::since_text(self.started_at)
    }

    /// A claim that never started and left nothing: a fence's placeholder,
    /// or a plan that was never run.
    pub(crate) fn never_ran(&self) -> bool {
        self.status == MigrationStatus::Planned
            && self.applied_at.is_none()
            && self.rolled_back_at.is_none()
            && self.started_at.is_none()
    }

    /// A transactional step that did not commit: its `running` or `failed`
    /// record was never committed done, so nothing of it is in place.
    pub(crate) fn rolled_back_whole(&self) -> bool {
        self.transactional && matches!(self.status, MigrationStatus::Running | MigrationStatus::Failed)
    }

    /// Whether `up` may apply it: rolled back, claimed by an `up` that
    /// never started it, or an `up` in batches that stopped at a checkpoint.
    pub(crate) fn is_pending(&self) -> bool {
        match self.status {
            MigrationStatus::RolledBack => true,
            MigrationStatus::Planned => self.direction == Direction::Up,
            _ => (self.rolled_back_whole() || self.is_resumable()) && self.direction == Direction::Up,
        }
    }

    /// Documents done by its walks in batches, while one is in progress or
    /// stopped at a checkpoint (see [`MigrationContext::batches`](crate::MigrationContext::batches)).
    pub fn documents_done(&self) -> Option<i64> {
        let unfinished = matches!(self.status, MigrationStatus::Running | MigrationStatus::Failed);
        (unfinished && self.checkpoints.is_some()).then(|| self.checkpoint_done())
    }

    /// Documents done by the checkpointed walks of its last direction.
    pub(crate) fn checkpoint_done(&self) -> i64 {
        self.checkpoints
            .as_ref()
            .map_or(0, |c| checkpoint::done_in(c, self.direction))
    }

    /// A data migration that stopped (failed, crashed, lost its lock) in its
    /// last direction, which walks in batches: declared so when it was
    /// claimed, or shown by a checkpoint of its batches. Running it again
    /// resumes it, so it does not block.
    pub(crate) fn is_resumable(&self) -> bool {
        !self.transactional
            && matches!(self.status, MigrationStatus::Running | MigrationStatus::Failed)
            && (self.walks
                || self
                    .checkpoints
                    .as_ref()
                    .is_some_and(|c| checkpoint::resumable_in(c, self.direction)))
    }
}

/// A page of the tracking history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HistoryQuery {
    /// Only records in this state.
    pub status: Option<MigrationStatus>,
    /// Records to skip, most recent first.
    pub skip: u64,
    /// `None` or 0 returns everything.
    pub limit: Option<u64>,
    /// Every record, for a history of runs read from their logs: `status`,
    /// `skip` and `limit` then count runs, and are left to the reader
    /// (`cargo mongo-migrate history` prints one line per run).
    pub runs: bool,
}

#[cfg(test)]
mod tests {
    use super::Record;
    use crate::{Error, MigrationStatus};
    use bson::{doc, DateTime};

    /// A record written by an early version: no description, direction,
    /// checksum, holder or flags, an `Int32` batch. It still reads.
    #[test]
    fn old_and_partial_records_read_with_defaults() {
        let now = DateTime::now();
        let old = doc! {
            "version": 20260101000000_i64, "name": "first", "status": "completed",
            "batch": 1_i32, "createdAt": now, "updatedAt": now, "error": null,
        };
        let r = Record::from_document(&old).unwrap();
        assert_eq!(r.status, MigrationStatus::Completed);
        assert_eq!((r.batch, r.description.as_str(), r.checksum.as_str()), (1, "", ""));
        assert_eq!((r.reversible, r.lock_holder, r.error), (false, None, None));
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let now = DateTime::now();
        let partial = doc! { "version": 20260101000000_i64, "name": "x", "status": "completed", "createdAt": now, "updatedAt": now };
        match Record::from_document(&partial) {
            Err(Error::CorruptRecord { field, .. }) => assert_eq!(field, "batch"),
            other => panic!("{other:?}"),
        }
        let bad_status = doc! { "version": 20260101000000_i64, "name": "x", "status": "done", "batch": 1_i64, "createdAt": now, "updatedAt": now };
        match Record::from_document(&bad_status) {
            Err(Error::CorruptRecord { field, .. }) => assert_eq!(field, "status"),
            other => panic!("{other:?}"),
        }
    }
}
