//! The tracking collection: one document per migration version.

use std::fmt;

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, IndexModel};
use serde::{Deserialize, Serialize};

use crate::lock::Fence;
use crate::{Error, Migration, Version};

/// Where a migration stands in the tracking collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationStatus {
    Running,
    Completed,
    Failed,
    RolledBack,
}

impl MigrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Running => "running",
            MigrationStatus::Completed => "completed",
            MigrationStatus::Failed => "failed",
            MigrationStatus::RolledBack => "rolled-back",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            MigrationStatus::Running,
            MigrationStatus::Completed,
            MigrationStatus::Failed,
            MigrationStatus::RolledBack,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

impl fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a tracked operation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// The status a step in this direction ends in when it succeeds.
    pub(crate) fn done(self) -> MigrationStatus {
        match self {
            Direction::Up => MigrationStatus::Completed,
            Direction::Down => MigrationStatus::RolledBack,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tracking document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub version: Version,
    pub name: String,
    pub description: String,
    pub status: MigrationStatus,
    /// The direction of the last operation on this version.
    pub direction: Direction,
    pub applied_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub execution_time_ms: Option<i64>,
    pub error: Option<String>,
    pub reversible: bool,
    pub transactional: bool,
    pub batch: i64,
    pub checksum: String,
    /// The lock holder id and fencing generation that last wrote this record.
    pub lock_holder: Option<String>,
    pub lock_generation: Option<i64>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Record {
    fn from_document(doc: &Document) -> Result<Self, Error> {
        let corrupt = |field: &str| Error::CorruptRecord {
            document: doc.to_string(),
            field: field.to_string(),
        };
        let text = |field: &str| doc.get_str(field).map(str::to_string).map_err(|_| corrupt(field));
        let opt_text = |field: &str| doc.get_str(field).ok().map(str::to_string);
        let date = |field: &str| doc.get_datetime(field).ok().map(|d| d.to_chrono());
        let version = match doc.get("version") {
            Some(Bson::Int64(v)) => Version::from_i64(*v)?,
            Some(Bson::Int32(v)) => Version::from_i64(i64::from(*v))?,
            _ => return Err(corrupt("version")),
        };
        let status = MigrationStatus::parse(&text("status")?).ok_or_else(|| corrupt("status"))?;
        let direction = match doc.get_str("direction") {
            Ok("down") => Direction::Down,
            _ => Direction::Up,
        };
        Ok(Record {
            version,
            name: text("name")?,
            description: opt_text("description").unwrap_or_default(),
            status,
            direction,
            applied_at: date("appliedAt"),
            rolled_back_at: date("rolledBackAt"),
            execution_time_ms: doc.get_i64("executionTimeMs").ok(),
            error: opt_text("error"),
            reversible: doc.get_bool("reversible").unwrap_or(false),
            transactional: doc.get_bool("transactional").unwrap_or(false),
            batch: doc.get_i64("batch").map_err(|_| corrupt("batch"))?,
            checksum: opt_text("checksum").unwrap_or_default(),
            lock_holder: doc
                .get_document("lockHolder")
                .ok()
                .and_then(|h| h.get_str("id").ok())
                .map(str::to_string),
            lock_generation: doc
                .get_document("lockHolder")
                .ok()
                .and_then(|h| h.get_i64("generation").ok()),
            metadata: doc
                .get("metadata")
                .cloned()
                .map(|m| m.into_relaxed_extjson())
                .unwrap_or(serde_json::Value::Null),
            created_at: date("createdAt").ok_or_else(|| corrupt("createdAt"))?,
            updated_at: date("updatedAt").ok_or_else(|| corrupt("updatedAt"))?,
        })
    }
}

/// A page of the tracking history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HistoryQuery {
    pub status: Option<MigrationStatus>,
    pub skip: u64,
    /// `None` or 0 returns everything.
    pub limit: Option<u64>,
}

/// The tracking collection.
#[derive(Debug, Clone)]
pub(crate) struct Tracking {
    coll: Collection<Document>,
}

fn now() -> bson::DateTime {
    bson::DateTime::now()
}

/// Runs `find` and decodes every document it returns.
async fn records(find: mongodb::action::Find<'_, Document>) -> Result<Vec<Record>, Error> {
    let docs: Vec<Document> = find.await?.try_collect().await?;
    docs.iter().map(Record::from_document).collect()
}

fn holder_doc(fence: &Fence) -> Document {
    doc! { "id": fence.holder_id.to_string(), "generation": fence.generation }
}

impl Tracking {
    pub(crate) fn new(coll: Collection<Document>) -> Self {
        Tracking { coll }
    }

    pub(crate) async fn ensure_indexes(&self) -> Result<(), Error> {
        let index = IndexModel::builder()
            .keys(doc! { "version": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("version_unique".to_string())
                    .build(),
            )
            .build();
        self.coll.create_index(index).await?;
        Ok(())
    }

    /// Every record, in version order.
    pub(crate) async fn load(&self) -> Result<Vec<Record>, Error> {
        records(self.coll.find(doc! {}).sort(doc! { "version": 1 })).await
    }

    /// The record of one version.
    pub(crate) async fn get(&self, version: Version) -> Result<Option<Record>, Error> {
        let doc = self.coll.find_one(doc! { "version": version.as_i64() }).await?;
        doc.as_ref().map(Record::from_document).transpose()
    }

    pub(crate) async fn history(&self, query: &HistoryQuery) -> Result<Vec<Record>, Error> {
        let filter = match query.status {
            Some(status) => doc! { "status": status.as_str() },
            None => doc! {},
        };
        let find = self
            .coll
            .find(filter)
            .sort(doc! { "updatedAt": -1, "version": -1 })
            .skip(query.skip)
            .limit(query.limit.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)));
        records(find).await
    }

    /// Atomically claims `migration` for this runner: inserts a new record, or
    /// moves the `previous` one (as read under the lock) on. Fails if another
    /// runner changed the record in between, so no version is applied twice.
    pub(crate) async fn claim(&self, claim: Claim<'_>, session: Option<&mut ClientSession>) -> Result<(), Error> {
        let Claim {
            migration,
            previous,
            batch,
            direction,
            status,
            fence,
            elapsed_ms,
        } = claim;
        let now = now();
        let mut fields = doc! {
            "name": &migration.name,
            "description": &migration.description,
            "direction": direction.as_str(),
            "error": Bson::Null,
            "reversible": migration.is_reversible(),
            "transactional": migration.transactional,
            "checksum": &migration.checksum,
            "lockHolder": holder_doc(fence),
            "updatedAt": now,
        };
        if let Some(ms) = elapsed_ms {
            fields.insert("executionTimeMs", ms);
        }
        if direction == Direction::Up {
            fields.insert("batch", batch);
        }
        stamp(&mut fields, status, now);
        let claimed = match previous {
            None => {
                fields.insert("version", migration.version.as_i64());
                fields.insert("createdAt", now);
                fields.insert("metadata", Document::new());
                let insert = self.coll.insert_one(fields);
                let result = match session {
                    Some(s) => insert.session(s).await,
                    None => insert.await,
                };
                match result {
                    Ok(_) => true,
                    Err(e) if is_duplicate_key(&e) => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Some(prev) => {
                let filter = doc! {
                    "version": prev.version.as_i64(),
                    "status": prev.status.as_str(),
                    "updatedAt": bson::DateTime::from_chrono(prev.updated_at),
                };
                let update = self.coll.update_one(
                    filter,
                    doc! { "$set": fields, "$unset": { "fencedBy": "", "fencedAt": "" } },
                );
                let result = match session {
                    Some(s) => update.session(s).await?,
                    None => update.await?,
                };
                result.matched_count == 1
            }
        };
        if claimed {
            Ok(())
        } else {
            Err(Error::Conflict {
                version: migration.version,
                name: migration.name.clone(),
            })
        }
    }

    /// Records the end of a step this runner claimed. The filter on the holder
    /// makes a stale runner's write match nothing.
    pub(crate) async fn finish(
        &self,
        version: Version,
        fence: &Fence,
        outcome: Outcome<'_>,
        elapsed_ms: i64,
    ) -> Result<(), Error> {
        let now = now();
        let mut set = doc! { "executionTimeMs": elapsed_ms, "updatedAt": now };
        match outcome {
            Outcome::Done(direction) => stamp(&mut set, direction.done(), now),
            Outcome::Failed(message) => {
                stamp(&mut set, MigrationStatus::Failed, now);
                set.insert("error", message);
            }
        }
        // A record fenced by a later lock holder matches nothing: the check
        // and the write are one atomic operation.
        let filter = doc! {
            "version": version.as_i64(),
            "status": MigrationStatus::Running.as_str(),
            "lockHolder": holder_doc(fence),
            "fencedBy": { "$exists": false },
        };
        let result = self.coll.update_one(filter, doc! { "$set": set }).await?;
        if result.matched_count == 1 {
            Ok(())
        } else {
            Err(Error::LockLost)
        }
    }

    /// Marks every `running` record not written by `except` as fenced by
    /// `generation`, so the runner that claimed it can no longer finish it.
    /// Called by each new lock holder, and by force-unlock.
    pub(crate) async fn fence_running(&self, except: Option<&Fence>, generation: i64) -> Result<u64, Error> {
        let mut filter = doc! {
            "status": MigrationStatus::Running.as_str(),
            "fencedBy": { "$exists": false },
        };
        if let Some(fence) = except {
            filter.insert("lockHolder.id", doc! { "$ne": fence.holder_id.to_string() });
        }
        let update = doc! { "$set": { "fencedBy": generation, "fencedAt": now() } };
        Ok(self.coll.update_many(filter, update).await?.modified_count)
    }

    /// Marks a blocked record as applied or as pending again; returns it as written.
    pub(crate) async fn resolve(&self, record: &Record, to: MigrationStatus, fence: &Fence) -> Result<Record, Error> {
        let now = now();
        let filter = doc! {
            "version": record.version.as_i64(),
            "updatedAt": bson::DateTime::from_chrono(record.updated_at),
        };
        let mut set = doc! {
            "status": to.as_str(),
            "updatedAt": now,
            "lockHolder": holder_doc(fence),
            "metadata.resolvedAt": now,
            "metadata.resolvedFrom": record.status.as_str(),
        };
        if to == MigrationStatus::Completed && record.applied_at.is_none() {
            set.insert("appliedAt", now);
        }
        let update = doc! { "$set": set, "$unset": { "fencedBy": "", "fencedAt": "" } };
        let written = self
            .coll
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await?;
        match written {
            Some(doc) => Record::from_document(&doc),
            None => Err(Error::Conflict {
                version: record.version,
                name: record.name.clone(),
            }),
        }
    }
}

/// A claim on one version: the record as read under the lock, and what to write.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    pub(crate) migration: &'a Migration,
    pub(crate) previous: Option<&'a Record>,
    pub(crate) batch: i64,
    pub(crate) direction: Direction,
    pub(crate) status: MigrationStatus,
    pub(crate) fence: &'a Fence,
    pub(crate) elapsed_ms: Option<i64>,
}

/// How a claimed step ended.
#[derive(Debug)]
pub(crate) enum Outcome<'a> {
    /// It went through in this direction.
    Done(Direction),
    Failed(&'a str),
}

/// Sets `status`, with the time it was reached when it is an end state.
fn stamp(fields: &mut Document, status: MigrationStatus, now: bson::DateTime) {
    fields.insert("status", status.as_str());
    match status {
        MigrationStatus::Completed => fields.insert("appliedAt", now),
        MigrationStatus::RolledBack => fields.insert("rolledBackAt", now),
        MigrationStatus::Running | MigrationStatus::Failed => None,
    };
}

pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .is_some_and(|w| w.iter().any(|e| e.code == 11000)),
        _ => false,
    }
}
