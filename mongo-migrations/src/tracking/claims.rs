//! The fence that shuts out earlier holders, and the claims of a plan:
//! one conditional upsert per version, in one command.

use bson::{doc, Bson, Document};

use super::documents::{guarded, holder_doc, stamp, written_by};
use super::Tracking;
use crate::lock::Fence;
use crate::plan::Adopt;
use crate::record::Record;
use crate::update;
use crate::{Direction, Error, Migration, MigrationStatus, Version};

/// How long the fence waits for another runner's open transaction on a
/// server that does not make it wait (see [`Tracking::fence`]): a little
/// over mongod's default transaction lifetime.
const FENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Whose claims [`Tracking::fence`] fences.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fenced {
    /// Everyone's but this holder's.
    AllBut(uuid::Uuid),
    /// This holder's only.
    Of(uuid::Uuid),
}

impl Tracking {
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
            let reply = self
                .retry
                .outlasting_the_reaper()
                .idempotent(
                    || "the fence (it waits up to 100 s for an open transaction of the runner it fences: mongod aborts one 60 to 90 s after it began)".into(),
                    || update::update(&self.db, self.coll.name(), statements.clone(), true, None),
                )
                .await?;
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
    pub(crate) async fn claim(
        &self,
        claims: &[Claim<'_>],
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Vec<Version>, Error> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let statements: Vec<Document> = claims.iter().map(|c| c.statement(fence, now)).collect();
        let (reply, retried) = self
            .retry
            .run(
                || "the claim of the plan".into(),
                || update::update(&self.db, self.coll.name(), statements.clone(), false, None),
            )
            .await?;
        let mut changed = Vec::new();
        for i in reply.unmatched {
            let version = claims[i].migration.version;
            // After a lost reply, a claim that landed the first time no
            // longer matches its own guard: this runner's write, not a change.
            if retried && self.get(version).await?.is_some_and(|r| written_by(&r, fence, now)) {
                continue;
            }
            changed.push(version);
        }
        Ok(changed)
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
