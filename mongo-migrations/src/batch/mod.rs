//! Data migrations in batches: a walk over a collection in `_id` order, one
//! range query per batch (never one long cursor), with a checkpoint in the
//! migration's tracking record after every batch. A run that stops, fails,
//! crashes or loses its lock resumes from the last checkpoint: at most one
//! batch is handed to the closure twice, so the closure must be idempotent
//! per batch (set values, do not increment them).

//!
//! - `context.rs`: what a migration's batches write to;
//! - `walk.rs`: one segment's walk, and why a walk stops;
//! - `ids.rs`: the check that a walk covers one type of `_id`;
//! - the checkpoint's format is `checkpoint.rs`.

mod context;
mod ids;
mod walk;

use std::future::Future;

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::{Collection, Database};

pub(crate) use context::{CheckpointWriter, ProgressFn};
use ids::one_id_type;
pub(crate) use walk::WalkStopped;
use walk::{Stop, Walk, LOST_LOCK};

use crate::checkpoint::{Checkpoint, Part};
use crate::retry::Retry;
use crate::MigrationError;

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
    pub(crate) checkpoints: Option<&'a CheckpointWriter>,
    /// While `plan` inspects the migration: the walk is recorded, not run.
    pub(crate) inspecting: Option<&'a crate::operation::Recorded>,
    /// The migration's walked documents and milliseconds, added to.
    pub(crate) walked: &'a std::sync::Mutex<(u64, u64)>,
    /// Which walk of the migration this is (its checkpoint's key).
    pub(crate) index: usize,
    /// A transaction cannot span batches: refused.
    pub(crate) transactional: bool,
    pub(crate) collection: String,
    pub(crate) filter: Document,
    pub(crate) size: i64,
    pub(crate) pause: std::time::Duration,
    pub(crate) max_rate: Option<u32>,
    pub(crate) segments: u32,
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

    /// Walks `n` contiguous segments of `_id` at once, each with its own
    /// checkpoint (the segments come from one `$bucketAuto` aggregation and
    /// are kept for a resumed run). The database does the work in parallel;
    /// there is no coordinator.
    pub fn parallel(mut self, n: u32) -> Self {
        self.segments = n.max(1);
        self
    }

    /// How the walk's commands are retried over transient faults: as the
    /// run protocol's, or for a walk outside a run, within a minute.
    pub(super) fn retry(&self) -> Retry {
        self.checkpoints
            .map_or(Retry::within(std::time::Duration::from_secs(60)), |c| c.retry)
    }

    /// The common case of [`Batches::run`]: `f` turns each document into an
    /// update (or `None` to leave it), and each batch's updates go out as
    /// one `update` command, majority-acknowledged, so a walk cannot outrun
    /// replication. `f` must compute the update from the document (set
    /// values), so that a batch applied twice ends the same.
    pub async fn update_each<F>(self, f: F) -> Result<BatchStats, MigrationError>
    where
        F: Fn(&Document) -> Option<Document> + Sync,
    {
        let name = self.collection.clone();
        let f = &f;
        let retry = self.retry();
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
                    // As durable as the checkpoint after it: a crash must not
                    // keep a checkpoint whose batch it lost.
                    "writeConcern": crate::server::journaled_doc(),
                };
                // Retried over transient faults: a batch is idempotent by contract.
                let during = || format!("a batch update of `{name}`");
                let reply = retry
                    .idempotent(during, || async { Ok(db.run_command(command.clone()).await?) })
                    .await?;
                // A write error or an unconfirmed majority fails the batch:
                // its checkpoint must not say it is done.
                crate::update::read_update_reply(&name, &reply, crate::update::Duplicates::Fail)?;
                Ok(())
            }
        })
        .await
    }

    /// Hands every batch, in `_id` order, to `f` with the database, and
    /// records a checkpoint after each. Resumes after the last checkpoint of
    /// an interrupted run. Stops between batches, with an error, when the
    /// run is stopped (Ctrl-C, [`StopHandle`](crate::StopHandle)) or has lost its lock.
    pub async fn run<F, Fut>(self, f: F) -> Result<BatchStats, MigrationError>
    where
        F: Fn(Vec<Document>, Database) -> Fut + Sync,
        Fut: Future<Output = Result<(), MigrationError>> + Send,
    {
        if let Some(recorded) = self.inspecting {
            crate::operation::record(
                recorded,
                crate::operation::Operation::Walk {
                    collection: self.collection.clone(),
                    filter: self.filter.clone(),
                    size: self.size,
                },
            );
            return Ok(BatchStats {
                batches: 0,
                documents: 0,
                resumed: 0,
            });
        }
        if self.transactional {
            return Err("batches do not run inside a transaction (each batch is its own write, checkpointed): make this migration non-transactional".into());
        }
        let coll = self.db.collection::<Document>(&self.collection);
        one_id_type(&coll, &self.filter, &self.collection, self.retry()).await?;
        let parts = self.layout(&coll).await?;
        let resumed: u64 = parts.iter().map(|p| p.done).sum();
        let total = match self.checkpoints.and_then(|c| c.progress.as_ref()) {
            Some(_) => {
                let mut left = 0;
                for part in &parts {
                    let filter = part.filter(&self.filter);
                    left += self
                        .retry()
                        .idempotent(
                            || format!("counting `{}`", self.collection),
                            || async { Ok(coll.count_documents(filter.clone()).await?) },
                        )
                        .await?;
                }
                resumed + left
            }
            None => 0,
        };
        let walk = Walk {
            batches: &self,
            coll: &coll,
            f: &f,
            started: std::time::Instant::now(),
            total,
            done: std::sync::Mutex::new(parts.iter().map(|p| p.done).collect()),
            handed: std::sync::atomic::AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
        };
        let started = std::time::Instant::now();
        let results =
            futures_util::future::join_all(parts.into_iter().enumerate().map(|(i, part)| walk.part(i, part))).await;
        let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut stats = BatchStats {
            batches: 0,
            documents: 0,
            resumed,
        };
        let mut first_error = None;
        for result in results {
            match result {
                Ok((batches, documents)) => {
                    stats.batches += batches;
                    stats.documents += documents;
                }
                Err((batches, documents, e)) => {
                    stats.batches += batches;
                    stats.documents += documents;
                    // The segment that failed says why; the others only stopped.
                    if first_error.is_none()
                        || matches!(e, Stop::Failed(_)) && !matches!(first_error, Some(Stop::Failed(_)))
                    {
                        first_error = Some(e);
                    }
                }
            }
        }
        {
            let mut walked = self.walked.lock().unwrap_or_else(|e| e.into_inner());
            walked.0 += stats.documents;
            walked.1 += took;
        }
        match first_error {
            Some(Stop::Failed(e)) => Err(e),
            Some(Stop::Because(why)) => {
                let done: u64 = walk.done.lock().expect("progress lock").iter().sum();
                Err(Box::new(WalkStopped {
                    why,
                    stats,
                    done,
                    total: (total > 0).then_some(total.max(done)),
                }))
            }
            None => Ok(stats),
        }
    }

    /// Splits the walk into `.parallel(n)` segments of `_id` (one aggregation),
    /// or takes the segments and positions of an interrupted run; writes the
    /// layout into the checkpoint first, so a resumed run walks the same ones.
    async fn layout(&self, coll: &Collection<Document>) -> Result<Vec<Part>, MigrationError> {
        let Some(c) = self.checkpoints else {
            return Ok(vec![Part::whole()]);
        };
        if let Some(saved) = c.saved(self.index, &self.collection).await? {
            return Ok(saved.parts);
        }
        let mut bounds: Vec<Bson> = Vec::new();
        if self.segments > 1 {
            let pipeline = vec![
                doc! { "$match": self.filter.clone() },
                doc! { "$bucketAuto": { "groupBy": "$_id", "buckets": i64::from(self.segments) } },
            ];
            let buckets: Vec<Document> = self
                .retry()
                .idempotent(
                    || format!("splitting `{}` into segments", self.collection),
                    || async { Ok(coll.aggregate(pipeline.clone()).await?.try_collect().await?) },
                )
                .await?;
            bounds = buckets
                .iter()
                .filter_map(|b| b.get_document("_id").ok()?.get("min").cloned())
                .collect();
        }
        let parts: Vec<Part> = if bounds.len() < 2 {
            vec![Part::whole()]
        } else {
            // The first segment starts at the beginning (nothing is before
            // it), the last runs to the end (covers what is inserted later).
            (0..bounds.len())
                .map(|i| Part {
                    from: (i > 0).then(|| bounds[i].clone()),
                    to: bounds.get(i + 1).cloned(),
                    last: None,
                    done: 0,
                })
                .collect()
        };
        let checkpoint = Checkpoint {
            direction: c.direction,
            collection: self.collection.clone(),
            parts,
        };
        let layout = checkpoint.to_document(bson::DateTime::now());
        let key = Checkpoint::key(self.index);
        if !c
            .update_claim("the checkpoint", doc! { "$set": { key: layout } })
            .await?
        {
            return Err(format!("{LOST_LOCK} before its walk started").into());
        }
        Ok(checkpoint.parts)
    }
}
