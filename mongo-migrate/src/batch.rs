//! Data migrations in batches: a walk over a collection in `_id` order, one
//! range query per batch (never one long cursor), with a checkpoint in the
//! migration's tracking record after every batch. A run that stops, fails,
//! crashes or loses its lock resumes from the last checkpoint: at most one
//! batch is handed to the closure twice, so the closure must be idempotent
//! per batch (set values, do not increment them).

use std::future::Future;

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::{Collection, Database};

use crate::lock::LockState;
use crate::{Direction, MigrationError, Progress, StopHandle, Version};

/// Where progress events go.
pub(crate) type ProgressFn = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a migration's batches write to, and when they must stop.
#[derive(Clone)]
pub(crate) struct Checkpoints {
    /// The tracking collection.
    pub(crate) tracking: Collection<Document>,
    /// This runner's unfenced `running` claim on the migration: every
    /// checkpoint is conditional on it.
    pub(crate) claim: Document,
    pub(crate) direction: Direction,
    pub(crate) stop: StopHandle,
    /// The run's hold on the lock: a walk stops once it is lost.
    pub(crate) lock: LockState,
    pub(crate) version: Version,
    pub(crate) progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("claim", &self.claim)
            .field("direction", &self.direction)
            .finish()
    }
}

/// What a finished walk did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Batches handed to the closure in this run.
    pub batches: u64,
    /// Documents handed to the closure in this run.
    pub documents: u64,
    /// Documents done by earlier, interrupted runs (from the checkpoint).
    pub resumed: u64,
}

/// A walk over the documents of one collection that match a filter, built
/// by [`MigrationContext::batches`](crate::MigrationContext::batches).
#[derive(Debug)]
#[must_use = "a walk does nothing until `run` is awaited"]
pub struct Batches<'a> {
    pub(crate) db: &'a Database,
    pub(crate) checkpoints: Option<&'a Checkpoints>,
    /// Which walk of the migration this is (its checkpoint's key).
    pub(crate) index: usize,
    /// A transaction cannot span batches: refused.
    pub(crate) transactional: bool,
    pub(crate) collection: String,
    pub(crate) filter: Document,
    pub(crate) size: i64,
    pub(crate) pause: std::time::Duration,
    pub(crate) max_rate: Option<u32>,
}

impl Batches<'_> {
    /// Documents per batch (default 1,000).
    pub fn size(mut self, size: u32) -> Self {
        self.size = i64::from(size.max(1));
        self
    }

    /// A pause after every batch, to spare a busy primary.
    pub fn pause_between(mut self, pause: std::time::Duration) -> Self {
        self.pause = pause;
        self
    }

    /// At most this many documents per second (averaged over the walk): a
    /// throttle for a primary that serves traffic.
    pub fn max_rate(mut self, documents_per_second: u32) -> Self {
        self.max_rate = Some(documents_per_second.max(1));
        self
    }

    /// The common case of [`Batches::run`]: `f` turns each document into an
    /// update (or `None` to leave it), and each batch's updates go out as
    /// one `update` command, majority-acknowledged, so a walk cannot outrun
    /// replication. `f` must compute the update from the document (set
    /// values), so that a batch applied twice ends the same.
    pub async fn update_each<F>(self, f: F) -> Result<BatchStats, MigrationError>
    where
        F: Fn(&Document) -> Option<Document>,
    {
        let name = self.collection.clone();
        let f = &f;
        self.run(|batch, db| {
            let name = name.clone();
            async move {
                let updates: Vec<Document> = batch
                    .iter()
                    .filter_map(|d| Some(doc! { "q": { "_id": d.get("_id")?.clone() }, "u": f(d)? }))
                    .collect();
                if updates.is_empty() {
                    return Ok(());
                }
                let command = doc! {
                    "update": &name,
                    "updates": updates,
                    "ordered": true,
                    "writeConcern": { "w": "majority" },
                };
                let reply = db.run_command(command).await?;
                match reply.get_array("writeErrors") {
                    Ok(errors) if !errors.is_empty() => Err(format!("updating `{name}` failed: {errors:?}").into()),
                    _ => Ok(()),
                }
            }
        })
        .await
    }

    /// Hands every batch, in `_id` order, to `f` with the database, and
    /// records a checkpoint after each. Resumes after the last checkpoint of
    /// an interrupted run. Stops between batches, with an error, when the
    /// run is stopped (Ctrl-C, [`StopHandle`]) or has lost its lock.
    pub async fn run<F, Fut>(self, mut f: F) -> Result<BatchStats, MigrationError>
    where
        F: FnMut(Vec<Document>, Database) -> Fut,
        Fut: Future<Output = Result<(), MigrationError>>,
    {
        if self.transactional {
            return Err("batches do not run inside a transaction (each batch is its own write, checkpointed): make this migration non-transactional".into());
        }
        let coll = self.db.collection::<Document>(&self.collection);
        one_id_type(&coll, &self.filter, &self.collection).await?;
        let key = format!("checkpoints.{}", self.index);
        let (mut last, resumed) = match self.checkpoints {
            Some(c) => saved(c, self.index, &self.collection).await?,
            None => (None, 0),
        };
        let mut stats = BatchStats {
            batches: 0,
            documents: 0,
            resumed,
        };
        let total = match self.checkpoints.and_then(|c| c.progress.as_ref()) {
            Some(_) => resumed + coll.count_documents(after(&self.filter, last.as_ref())).await?,
            None => 0,
        };
        let started = std::time::Instant::now();
        loop {
            if let Some(c) = self.checkpoints {
                if c.stop.is_stopped() {
                    return Err(stopped(&stats, "the run was stopped"));
                }
                if c.lock.is_lost() {
                    return Err(stopped(&stats, "this run lost the migration lock"));
                }
            }
            let batch: Vec<Document> = coll
                .find(after(&self.filter, last.as_ref()))
                .sort(doc! { "_id": 1 })
                .limit(self.size)
                .batch_size(u32::try_from(self.size).unwrap_or(u32::MAX))
                .await?
                .try_collect()
                .await?;
            let Some(end) = batch.last().and_then(|d| d.get("_id")).cloned() else {
                return Ok(stats);
            };
            let n = batch.len() as u64;
            f(batch, self.db.clone()).await?;
            stats.batches += 1;
            stats.documents += n;
            if let Some(c) = self.checkpoints {
                let point = doc! {
                    "direction": c.direction.as_str(),
                    "collection": &self.collection,
                    "lastId": end.clone(),
                    "done": i64::try_from(stats.resumed + stats.documents).unwrap_or(i64::MAX),
                    "at": bson::DateTime::now(),
                };
                let written = c
                    .tracking
                    .update_one(c.claim.clone(), doc! { "$set": { &key: point } })
                    .await?;
                if written.matched_count == 0 {
                    return Err(stopped(&stats, "this run lost the migration lock"));
                }
                if let Some(report) = &c.progress {
                    let done = stats.resumed + stats.documents;
                    let secs = started.elapsed().as_secs_f64();
                    let per_second = if secs > 0.0 {
                        (stats.documents as f64 / secs) as u64
                    } else {
                        0
                    };
                    report(&Progress::Batch {
                        version: c.version,
                        done,
                        total: total.max(done),
                        per_second,
                        eta_secs: (per_second > 0).then(|| total.saturating_sub(done) / per_second),
                    });
                }
            }
            last = Some(end);
            if (n as i64) < self.size {
                return Ok(stats);
            }
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
            if let Some(rate) = self.max_rate {
                let due = std::time::Duration::from_secs_f64(stats.documents as f64 / f64::from(rate));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// `filter`, and past `last` if there is one: the range on `_id` goes in
/// at the top level where it can, where every planner uses the `_id` index.
fn after(filter: &Document, last: Option<&Bson>) -> Document {
    let Some(last) = last else { return filter.clone() };
    let range = doc! { "$gt": last.clone() };
    if filter.contains_key("_id") {
        return doc! { "$and": [ filter.clone(), { "_id": range } ] };
    }
    let mut both = filter.clone();
    both.insert("_id", range);
    both
}

fn stopped(stats: &BatchStats, why: &str) -> MigrationError {
    format!(
        "{why} after {} batches ({} documents, {} before this run); the next run resumes from the last checkpoint",
        stats.batches, stats.documents, stats.resumed
    )
    .into()
}

/// The last checkpoint of this walk in this direction, and how many
/// documents it had done.
async fn saved(c: &Checkpoints, index: usize, collection: &str) -> Result<(Option<Bson>, u64), MigrationError> {
    let record = c.tracking.find_one(c.claim.clone()).await?;
    let point = record
        .as_ref()
        .and_then(|r| r.get_document("checkpoints").ok())
        .and_then(|p| p.get_document(index.to_string()).ok());
    match point {
        Some(p) if p.get_str("direction") == Ok(c.direction.as_str()) && p.get_str("collection") == Ok(collection) => {
            let done = p.get_i64("done").unwrap_or(0);
            Ok((p.get("lastId").cloned(), u64::try_from(done).unwrap_or(0)))
        }
        _ => Ok((None, 0)),
    }
}

/// The BSON sort bracket of an `_id` (numbers compare with each other).
fn bracket(id: &Bson) -> &'static str {
    match id {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => "number",
        Bson::String(_) | Bson::Symbol(_) => "string",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Document(_) => "object",
        Bson::Binary(_) => "binData",
        Bson::Boolean(_) => "bool",
        Bson::Timestamp(_) => "timestamp",
        _ => "other",
    }
}

/// A range query `_id > last` only sees `_id`s of the same type as `last`:
/// a walk over mixed types would skip some. Refuses them up front.
async fn one_id_type(coll: &Collection<Document>, filter: &Document, name: &str) -> Result<(), MigrationError> {
    let end = |order: i32| async move {
        let first = coll
            .find_one(filter.clone())
            .sort(doc! { "_id": order })
            .projection(doc! { "_id": 1 })
            .await?;
        Ok::<_, MigrationError>(first.and_then(|d| d.get("_id").cloned()))
    };
    if let (Some(low), Some(high)) = (end(1).await?, end(-1).await?) {
        let (a, b) = (bracket(&low), bracket(&high));
        if a != b {
            return Err(format!(
                "`{name}` has `_id`s of more than one type ({a} and {b}), which one walk cannot cover: \
                 walk each type with its own filter, e.g. {{ \"_id\": {{ \"$type\": \"{a}\" }} }}"
            )
            .into());
        }
    }
    Ok(())
}
