//! What a migration's batches write to and report to: the tracking
//! record's claim, the lock, the stop, the progress events.

use bson::Document;
use mongodb::Collection;

use crate::checkpoint::Checkpoint;
use crate::lock::LockHandle;
use crate::retry::Retry;
use crate::{Direction, MigrationError, Progress, StopHandle, Version};

/// Where progress events go.
pub(crate) type ProgressFn = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a migration's batches write to, and when they must stop.
#[derive(Clone)]
pub(crate) struct CheckpointWriter {
    /// The tracking collection.
    pub(crate) tracking: Collection<Document>,
    /// This runner's unfenced `running` claim on the migration: every
    /// checkpoint is conditional on it.
    pub(crate) claim: Document,
    pub(crate) direction: Direction,
    pub(crate) stop: StopHandle,
    /// The run's hold on the lock: no batch starts unless it is proved.
    pub(crate) lock: LockHandle,
    pub(crate) version: Version,
    pub(crate) progress: Option<ProgressFn>,
    /// How the walk's reads and writes are retried over transient faults.
    pub(crate) retry: Retry,
}

impl std::fmt::Debug for CheckpointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter")
            .field("claim", &self.claim)
            .field("direction", &self.direction)
            .finish()
    }
}

impl CheckpointWriter {
    /// Applies `update` to this runner's claim on the record, retried over
    /// transient faults (`what` names it in their errors); `false` when the
    /// claim matched nothing: the run was fenced and the lock is lost.
    pub(crate) async fn update_claim(&self, what: &str, update: Document) -> Result<bool, crate::Error> {
        let matched = self
            .retry
            .idempotent(
                || format!("{what} of {}", self.version),
                || async {
                    Ok(self
                        .tracking
                        .update_one(self.claim.clone(), update.clone())
                        .await?
                        .matched_count)
                },
            )
            .await?;
        Ok(matched > 0)
    }

    /// Walk `index`'s last checkpoint, in this direction over `collection`.
    pub(super) async fn saved(&self, index: usize, collection: &str) -> Result<Option<Checkpoint>, MigrationError> {
        let record = self.record("reading the checkpoint").await?;
        Ok(record.and_then(|r| Checkpoint::of(&r, index, self.direction, collection)))
    }

    /// This runner's claimed record (none once the claim is fenced),
    /// retried over transient faults (`what` names it in their errors).
    pub(crate) async fn record(&self, what: &str) -> Result<Option<Document>, crate::Error> {
        self.retry
            .idempotent(
                || format!("{what} of {}", self.version),
                || async { Ok(self.tracking.find_one(self.claim.clone()).await?) },
            )
            .await
    }
}
