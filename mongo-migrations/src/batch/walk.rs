//! The walk of one segment: prove the lock, read a batch, hand it over,
//! write the checkpoint; and why a walk stops between batches.

use std::future::Future;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::{Collection, Database};

use super::{BatchStats, Batches};
use crate::checkpoint::{Checkpoint, Part};
use crate::{MigrationError, Progress};

/// Why a segment stopped early.
pub(super) enum Stop {
    /// The closure or the database failed.
    Failed(MigrationError),
    /// A stop, a lost lock, or another segment's failure.
    Because(&'static str),
}

impl<E: Into<MigrationError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Failed(e.into())
    }
}

/// What the segments of one walk share.
pub(super) struct Walk<'w, 'a, F> {
    pub(super) batches: &'w Batches<'a>,
    pub(super) coll: &'w Collection<Document>,
    pub(super) f: &'w F,
    pub(super) started: std::time::Instant,
    pub(super) total: u64,
    /// Documents done per segment, earlier runs included.
    pub(super) done: std::sync::Mutex<Vec<u64>>,
    /// Documents handed over in this run, all segments.
    pub(super) handed: std::sync::atomic::AtomicU64,
    /// A segment failed: the others stop after their batch in flight.
    pub(super) failed: std::sync::atomic::AtomicBool,
}

impl<F, Fut> Walk<'_, '_, F>
where
    F: Fn(Vec<Document>, Database) -> Fut + Sync,
    Fut: Future<Output = Result<(), MigrationError>> + Send,
{
    /// Walks segment `i`; its batches and documents, also when it stopped.
    pub(super) async fn part(&self, i: usize, part: Part) -> Result<(u64, u64), (u64, u64, Stop)> {
        let (mut batches, mut documents) = (0, 0);
        match self.walk_part(i, part, &mut batches, &mut documents).await {
            Ok(()) => Ok((batches, documents)),
            Err(stop) => {
                if matches!(stop, Stop::Failed(_)) {
                    self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err((batches, documents, stop))
            }
        }
    }

    async fn walk_part(&self, i: usize, mut part: Part, batches: &mut u64, documents: &mut u64) -> Result<(), Stop> {
        use std::sync::atomic::Ordering::SeqCst;
        let b = self.batches;
        // When the walk's last step (its start, then each checkpoint) came
        // back: a batch is handed over on the lease alone only shortly after.
        let mut since = std::time::Instant::now();
        loop {
            if let Some(c) = b.checkpoints {
                if c.stop.is_stopped() {
                    return Err(Stop::Because(STOPPED_ON_REQUEST));
                }
                // The rule of a migration's start, for each batch: a runner
                // paused since its last proof (a pause between batches, a
                // throttle's sleep) proves its lock before it reads on.
                proved(c.lock.ensure_lease().await)?;
            }
            if self.failed.load(SeqCst) {
                return Err(Stop::Because("another segment failed"));
            }
            let filter = part.filter(&b.filter);
            let batch: Vec<Document> = b
                .retry()
                .idempotent(
                    || format!("reading a batch of `{}`", b.collection),
                    || async {
                        Ok(self
                            .coll
                            .find(filter.clone())
                            .sort(doc! { "_id": 1 })
                            .limit(b.size)
                            .batch_size(u32::try_from(b.size).unwrap_or(u32::MAX))
                            .await?
                            .try_collect()
                            .await?)
                    },
                )
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            let Some(end) = batch.last().and_then(|d| d.get("_id")).cloned() else {
                return Ok(());
            };
            // And once more with a round trip if the last checkpoint is not
            // recent: a runner paused since then (in a throttle's sleep, in
            // its range query) may have been fenced meanwhile. The time is
            // what tells, not only the SIGCONT flag: its handler can run
            // after this thread has resumed.
            if let Some(c) = b.checkpoints {
                proved(c.lock.ensure_live(since).await)?;
            }
            let n = batch.len() as u64;
            (self.f)(batch, b.db.clone()).await.map_err(Stop::Failed)?;
            *batches += 1;
            *documents += n;
            part.done += n;
            part.last = Some(end);
            let handed = self.handed.fetch_add(n, SeqCst) + n;
            tracing::info!(segment = i, documents = n, segment_done = part.done, "batch done");
            if let Some(c) = b.checkpoints {
                let point = Checkpoint::position(b.index, i, &part, bson::DateTime::now());
                let claimed = c
                    .update_claim("the checkpoint", doc! { "$set": point })
                    .await
                    .map_err(|e| Stop::Failed(e.into()))?;
                if !claimed {
                    return Err(Stop::Because(LOST_LOCK));
                }
                since = std::time::Instant::now();
                let done: u64 = {
                    let mut all = self.done.lock().expect("progress lock");
                    all[i] = part.done;
                    all.iter().sum()
                };
                if let Some(report) = &c.progress {
                    let secs = self.started.elapsed().as_secs_f64();
                    let per_second = if secs > 0.0 { (handed as f64 / secs) as u64 } else { 0 };
                    report(&Progress::Batch {
                        version: c.version,
                        done,
                        total: self.total.max(done),
                        per_second,
                        eta_secs: (per_second > 0).then(|| self.total.saturating_sub(done) / per_second),
                    });
                }
            }
            if (n as i64) < b.size {
                return Ok(());
            }
            if !b.pause.is_zero() {
                tokio::time::sleep(b.pause).await;
            }
            if let Some(rate) = b.max_rate {
                let due = std::time::Duration::from_secs_f64(handed as f64 / f64::from(rate));
                if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A proof of the lock, as a segment's stop: a lost lock stops the walk,
/// any other error fails it.
pub(super) fn proved(proof: Result<(), crate::Error>) -> Result<(), Stop> {
    match proof {
        Ok(()) => Ok(()),
        Err(crate::Error::LockLost { .. }) => Err(Stop::Because(LOST_LOCK)),
        Err(e) => Err(Stop::Failed(e.into())),
    }
}

/// Why a walk stopped when its run lost the lock.
pub(super) const LOST_LOCK: &str = "this run lost the migration lock";

/// Why a walk stopped when the run was asked to stop.
pub(super) const STOPPED_ON_REQUEST: &str = "stopped on request";

/// A walk that stopped between two batches (a stop request, a lost lock,
/// another segment's failure) with its checkpoint in place. A migration that
/// returns it because the run was asked to stop is recorded as stopped, not
/// failed, and the run reports where it stopped.
#[derive(Debug)]
pub(crate) struct WalkStopped {
    pub(super) why: &'static str,
    pub(super) stats: BatchStats,
    /// Documents done, earlier runs included.
    pub(crate) done: u64,
    /// Documents the walk covers, when it counted them (with progress events).
    pub(crate) total: Option<u64>,
}

impl std::fmt::Display for WalkStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} after {} batches ({} documents, {} before this run); the next run resumes from the last checkpoint",
            self.why, self.stats.batches, self.stats.documents, self.stats.resumed
        )
    }
}

impl std::error::Error for WalkStopped {}

impl WalkStopped {
    /// The run was stopped ([`StopHandle`](crate::StopHandle), Ctrl-C).
    pub(crate) fn on_request(&self) -> bool {
        self.why == STOPPED_ON_REQUEST
    }
}
