//! The tracking collection: one document per migration version, and the
//! fence that keeps a runner who lost its lock from writing to it.
//!
//! A run names the versions of its plan in the lock document when it takes
//! the lock, claims them as `planned` in one write, and only then proves it
//! holds the lock. The next holder (or force-unlock) fences every version a
//! lost holder named, whether its claim landed yet or not: it raises the
//! record's `fenceGen` (inserting a fenced placeholder where there is no
//! record), and a claim is conditional on no newer `fenceGen`. It also marks
//! all older `planned` and `running` claims fenced, and each later write of
//! a runner is conditional on its claim being unfenced: after the fence,
//! none of them lands.

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};

use crate::lock::Fence;
use crate::plan::Adopt;
use crate::record::{HistoryQuery, Record};
use crate::server;
use crate::{Direction, Error, Migration, MigrationStatus, Version};

/// How long the fence waits for another runner's open transaction on a
/// server that does not make it wait (see [`Tracking::fence`]): a little
/// over mongod's default transaction lifetime.
const FENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The tracking collection.
#[derive(Debug, Clone)]
pub(crate) struct Tracking {
    db: Database,
    coll: Collection<Document>,
}

/// Runs `find` and decodes every document it returns.
async fn records(find: mongodb::action::Find<'_, Document>) -> Result<Vec<Record>, Error> {
    // One reply for the whole collection, not one per 101 documents.
    let docs: Vec<Document> = find.batch_size(100_000).await?.try_collect().await?;
    docs.iter().map(Record::from_document).collect()
}

fn holder_doc(fence: &Fence) -> Document {
    doc! { "id": fence.holder_id.to_string(), "generation": fence.generation }
}

/// The filter of a claim this runner holds in `status`, unfenced.
fn own(version: Version, status: MigrationStatus, fence: &Fence) -> Document {
    doc! {
        "version": version.as_i64(),
        "status": status.as_str(),
        "lockHolder.id": fence.holder_id.to_string(),
        "lockHolder.generation": fence.generation,
        "fencedBy": { "$exists": false },
    }
}

/// The filter of this runner's unfenced `running` claim on `version`: what
/// the checkpoints of its batches are conditional on.
pub(crate) fn running_claim(version: Version, fence: &Fence) -> Document {
    own(version, MigrationStatus::Running, fence)
}

/// One statement of an `update` command. `upsert` on a filter that names the
/// version turns "matched nothing" into a duplicate-key error on the unique
/// version index, which the reply reports by statement.
fn guarded(filter: Document, update: Document) -> Document {
    doc! { "q": filter, "u": update, "upsert": true }
}

/// Whose claims [`Tracking::fence`] fences.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fenced {
    /// Everyone's but this holder's.
    AllBut(uuid::Uuid),
    /// This holder's only.
    Of(uuid::Uuid),
}

/// What a runner writes when one step of its plan ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    /// It went through in this direction.
    Done(Direction),
    /// Failed with this error, after this many attempts (transactions are
    /// retried on transient errors).
    Failed(&'a str, u32),
    /// A stop request ended its walk between two batches: it stays
    /// `running`, resumable from its checkpoint, and says when it stopped.
    Stopped,
}

/// The end of a step this runner started: the version, how it ended, its time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub(crate) version: Version,
    pub(crate) outcome: Outcome<'a>,
    pub(crate) elapsed_ms: i64,
}

/// What one step write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stepped {
    /// Every statement landed.
    Ok,
    /// The finish of the previous step matched nothing: fenced. Nothing else was written.
    FinishFenced,
    /// The previous step (if any) was recorded; the next one's claim was fenced.
    StartFenced,
}

impl Tracking {
    pub(crate) fn new(db: Database, coll: Collection<Document>) -> Self {
        Tracking { db, coll }
    }

    /// The collection, for the checkpoints of batches.
    pub(crate) fn collection(&self) -> Collection<Document> {
        self.coll.clone()
    }

    pub(crate) async fn ensure_indexes(&self) -> Result<(), Error> {
        // Besides preventing duplicates, the fence's upsert guard relies on it.
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

    /// Fences what older lock holders may still write, in one command:
    ///
    /// * every version of `unfenced` (plans named in the lock document) is
    ///   raised to `fenceGen` = `generation`; where it has no record yet, a
    ///   fenced placeholder takes the version, so an older holder's claim
    ///   cannot insert it (the version index is unique);
    /// * every `planned` and `running` claim of `whose` is marked fenced: the
    ///   runner that wrote it can write nothing more to it.
    ///
    /// A new lock holder fences all claims older than its own; force-unlock
    /// fences the claims of the holder it removed. Every statement only
    /// raises or marks what is older than `generation`, so a fence that
    /// lands late (its runner lost the lock while it was in flight) changes
    /// nothing a newer holder wrote or fenced.
    pub(crate) async fn fence(
        &self,
        whose: Fenced,
        generation: i64,
        unfenced: &[(Version, &str)],
        now: bson::DateTime,
    ) -> Result<(), Error> {
        let mut statements: Vec<Document> = unfenced
            .iter()
            .map(|&(version, name)| {
                let placeholder = doc! {
                    "name": name,
                    "description": "",
                    "direction": Direction::Up.as_str(),
                    "status": MigrationStatus::Planned.as_str(),
                    "reversible": false,
                    "transactional": false,
                    "batch": 0_i64,
                    "fencedBy": generation,
                    "fencedAt": now,
                    "createdAt": now,
                    "updatedAt": now,
                    "metadata": {},
                };
                doc! {
                    "q": { "version": version.as_i64() },
                    "u": { "$max": { "fenceGen": generation }, "$setOnInsert": placeholder },
                    "upsert": true,
                }
            })
            .collect();
        let holder = match whose {
            Fenced::AllBut(id) => doc! {
                "lockHolder.id": { "$ne": id.to_string() },
                "lockHolder.generation": { "$not": { "$gte": generation } },
            },
            Fenced::Of(id) => doc! { "lockHolder.id": id.to_string() },
        };
        let mut claims = doc! {
            "status": { "$in": [ MigrationStatus::Planned.as_str(), MigrationStatus::Running.as_str() ] },
            "fencedBy": { "$exists": false },
        };
        claims.extend(holder);
        statements.push(doc! {
            "q": claims,
            "u": { "$set": { "fencedBy": generation, "fencedAt": now }, "$max": { "fenceGen": generation } },
            "multi": true,
        });
        // mongod makes a write that meets another runner's open transaction
        // wait for it (at most transactionLifetimeLimitSeconds, 60 s by
        // default). SecantusDB 0.7 answers such a write with a duplicate key
        // instead, which these statements cause otherwise only when an
        // older holder's claim raced a placeholder's insert: wait and retry
        // (every statement is idempotent) as mongod would.
        let deadline = std::time::Instant::now() + FENCE_WAIT;
        loop {
            let reply = server::update(&self.db, self.coll.name(), statements.clone(), true, None).await?;
            if reply.unmatched.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::WriteFailed {
                    collection: self.coll.name().to_string(),
                    message: "the fence kept meeting a duplicate key (an open transaction?)".into(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Claims every migration of a plan as `planned`, in one command. Each
    /// claim is conditional on its record being as read under the lock.
    /// Returns the versions whose record changed since (none, normally).
    pub(crate) async fn plan(
        &self,
        claims: &[Claim<'_>],
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Vec<Version>, Error> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let statements = claims.iter().map(|c| c.statement(fence, now)).collect();
        let reply = server::update(&self.db, self.coll.name(), statements, false, None).await?;
        Ok(reply
            .unmatched
            .into_iter()
            .map(|i| claims[i].migration.version)
            .collect())
    }

    /// One write for one step of a run: records the end of the previous
    /// step (if any) and marks the next claim (if any) `running`. Each
    /// statement is conditional on this runner's unfenced claim; the reply's
    /// count says whether all matched (no upsert guard here: it would cost
    /// more per migration than the rest of the write on some servers).
    pub(crate) async fn step(
        &self,
        finish: Option<Finish<'_>>,
        start: Option<Version>,
        fence: &Fence,
        now: bson::DateTime,
        session: Option<&mut ClientSession>,
    ) -> Result<Stepped, Error> {
        let mut statements = Vec::new();
        if let Some(f) = &finish {
            let mut set = doc! { "executionTimeMs": f.elapsed_ms, "updatedAt": now };
            match f.outcome {
                Outcome::Done(direction) => stamp(&mut set, direction.done(), now),
                Outcome::Failed(message, attempts) => {
                    stamp(&mut set, MigrationStatus::Failed, now);
                    set.insert("error", message);
                    set.insert("attempts", i64::from(attempts));
                }
                Outcome::Stopped => drop(set.insert("stoppedAt", now)),
            }
            let filter = own(f.version, MigrationStatus::Running, fence);
            let update = match f.outcome {
                // Done: its batches start afresh next time (after a rollback).
                Outcome::Done(_) => doc! { "$set": set, "$unset": { "checkpoints": "" } },
                Outcome::Failed(..) | Outcome::Stopped => doc! { "$set": set },
            };
            statements.push(doc! { "q": filter, "u": update });
        }
        if let Some(version) = start {
            let set = doc! { "status": MigrationStatus::Running.as_str(), "startedAt": now, "updatedAt": now };
            let filter = own(version, MigrationStatus::Planned, fence);
            statements.push(doc! { "q": filter, "u": { "$set": set } });
        }
        if statements.is_empty() {
            return Ok(Stepped::Ok);
        }
        let expected = statements.len() as i64;
        let in_transaction = session.is_some();
        let reply = server::update(&self.db, self.coll.name(), statements, true, session).await?;
        if reply.matched == expected {
            return Ok(Stepped::Ok);
        }
        // Only a fence makes a statement miss. Which one? (Inside a
        // transaction the transaction itself is abandoned: either will do.)
        let finished = match (&finish, in_transaction) {
            (Some(f), false) => self
                .get(f.version)
                .await?
                .is_none_or(|r| r.status != MigrationStatus::Running),
            (Some(_), true) => false,
            (None, _) => true,
        };
        Ok(if finished {
            Stepped::StartFenced
        } else {
            Stepped::FinishFenced
        })
    }

    /// Copies each record to the audit collection, then deletes it if it is
    /// still as read and fenced by no newer holder. A record that changed
    /// meanwhile is a conflict (its audit entry stays, marked not removed).
    pub(crate) async fn forget(&self, records: &[&Record], fence: &Fence, now: bson::DateTime) -> Result<(), Error> {
        let audit = self.db.collection::<Document>(&format!("{}_audit", self.coll.name()));
        for record in records {
            let filter = doc! {
                "version": record.version.as_i64(),
                "updatedAt": bson::DateTime::from_chrono(record.updated_at),
                "fenceGen": { "$not": { "$gt": fence.generation } },
            };
            let Some(original) = self.coll.find_one(filter.clone()).await? else {
                return Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                });
            };
            let entry = doc! {
                "action": "forget",
                "version": record.version.as_i64(),
                "at": now,
                "by": holder_doc(fence),
                "record": original,
                "removed": false,
            };
            let id = audit.insert_one(entry).await?.inserted_id;
            if self.coll.delete_one(filter).await?.deleted_count == 0 {
                return Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                });
            }
            audit
                .update_one(doc! { "_id": id }, doc! { "$set": { "removed": true } })
                .await?;
        }
        Ok(())
    }

    /// Replaces a completed record's checksum with `checksum`, keeping the
    /// old one in `acceptedChecksums`; returns the record as written.
    pub(crate) async fn accept_checksum(
        &self,
        record: &Record,
        checksum: &str,
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Record, Error> {
        let filter = doc! {
            "version": record.version.as_i64(),
            "status": MigrationStatus::Completed.as_str(),
            "updatedAt": bson::DateTime::from_chrono(record.updated_at),
            "fenceGen": { "$not": { "$gt": fence.generation } },
        };
        let update = doc! {
            "$set": { "checksum": checksum, "updatedAt": now, "lockHolder": holder_doc(fence) },
            "$push": { "acceptedChecksums": { "checksum": &record.checksum, "acceptedAt": now } },
        };
        self.rewrite(record, filter, update).await
    }

    /// Applies `update` to `record` if `filter` still matches it; returns it
    /// as written, or a conflict when it changed meanwhile.
    async fn rewrite(&self, record: &Record, filter: Document, update: Document) -> Result<Record, Error> {
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

    /// Marks a blocked record as applied or as pending again; returns it as written.
    pub(crate) async fn resolve(
        &self,
        record: &Record,
        to: MigrationStatus,
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Record, Error> {
        let filter = doc! {
            "version": record.version.as_i64(),
            "updatedAt": bson::DateTime::from_chrono(record.updated_at),
            "fenceGen": { "$not": { "$gt": fence.generation } },
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
        self.rewrite(record, filter, update).await
    }
}

/// A claim on one version: the record as read under the lock, and the run it belongs to.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    pub(crate) migration: &'a Migration,
    pub(crate) previous: Option<&'a Record>,
    pub(crate) batch: i64,
    pub(crate) direction: Direction,
    /// Recorded as applied at once, without running.
    pub(crate) adopt: Option<Adopt>,
}

impl Claim<'_> {
    /// An upsert conditional on the record being unchanged since it was read
    /// (or still absent), and fenced by no newer holder: otherwise it fails
    /// on the version key.
    fn statement(&self, fence: &Fence, now: bson::DateTime) -> Document {
        let m = self.migration;
        let mut set = doc! {
            "name": m.name.as_ref(),
            "description": m.description.as_ref(),
            "direction": self.direction.as_str(),
            "status": MigrationStatus::Planned.as_str(),
            "error": Bson::Null,
            "reversible": m.is_reversible(),
            "transactional": m.transactional,
            // Resumable from its first instant, before any checkpoint.
            "walks": m.walks_in(self.direction),
            "checksum": m.checksum.as_ref(),
            "lockHolder": holder_doc(fence),
            "updatedAt": now,
        };
        if self.direction == Direction::Up {
            set.insert("batch", self.batch);
        }
        if let Some(adopt) = self.adopt {
            stamp(&mut set, MigrationStatus::Completed, now);
            set.insert("adopted", true);
            set.insert("baseline", adopt == Adopt::Baseline);
            set.insert("executionTimeMs", 0_i64);
        }
        let updated_at = self.previous.map_or(Bson::Null, |r| {
            Bson::DateTime(bson::DateTime::from_chrono(r.updated_at))
        });
        let filter = doc! {
            "version": m.version.as_i64(),
            "updatedAt": updated_at,
            "fenceGen": { "$not": { "$gt": fence.generation } },
        };
        let update = doc! {
            "$set": set,
            "$setOnInsert": { "createdAt": now, "metadata": {} },
            "$unset": { "fencedBy": "", "fencedAt": "", "startedAt": "", "attempts": "", "stoppedAt": "" },
        };
        guarded(filter, update)
    }
}

/// Sets `status`, with the time it was reached when it is an end state.
fn stamp(fields: &mut Document, status: MigrationStatus, now: bson::DateTime) {
    fields.insert("status", status.as_str());
    match status {
        MigrationStatus::Completed => fields.insert("appliedAt", now),
        MigrationStatus::RolledBack => fields.insert("rolledBackAt", now),
        _ => None,
    };
}
