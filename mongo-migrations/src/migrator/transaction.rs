//! A transactional migration: its body and the end of its tracking record
//! commit together, retried whole on transient errors while the lock holds.

use crate::context::MigrationContext;
use crate::lock::LockGuard;
use crate::tracking::{Outcome, Stepped};
use crate::{Direction, Error, Migration};
use mongodb::ClientSession;
use std::time::{Duration, Instant};

use super::step::{failed, finish, function, run_body};
use super::{elapsed_ms, Migrator};
use crate::retry::jitter;

/// How many times a transactional migration is tried when the server says
/// its transaction failed for a transient reason, as MongoDB's drivers do.
pub(super) const TRANSACTION_ATTEMPTS: u32 = 3;

/// The pause before a transaction's second attempt (plus up to as much
/// again, jittered); it doubles for the third.
pub(super) const TRANSACTION_BACKOFF: Duration = Duration::from_millis(100);

impl Migrator {
    /// The migration and the end of its tracking record commit together, or
    /// not at all. A fence that lands meanwhile conflicts with that end, and
    /// the transaction cannot commit. Transient failures are retried whole
    /// while the lock is held; a failure comes back as `MigrationFailed`,
    /// with the number of attempts made.
    pub(super) async fn run_in_transaction(
        &self,
        guard: &LockGuard,
        (m, batch): (&Migration, i64),
        direction: Direction,
    ) -> Result<i64, (Error, u32)> {
        let mut attempt = 1;
        loop {
            match self.attempt_transaction(guard, (m, batch), direction, attempt).await {
                Ok(Some(ms)) => return Ok(ms),
                Ok(None) => attempt += 1,
                Err(e) => return Err((e, attempt)),
            }
        }
    }

    /// One attempt of [`Migrator::run_in_transaction`]: the time taken, or
    /// `None` after a transient failure that may be tried again (after the
    /// pause, taken here).
    pub(super) async fn attempt_transaction(
        &self,
        guard: &LockGuard,
        (m, batch): (&Migration, i64),
        direction: Direction,
        attempt: u32,
    ) -> Result<Option<i64>, Error> {
        guard.ensure_lease().await?;
        let start = Instant::now();
        let mut session = self.client.start_session().await?;
        // Its commit as durable as every other protocol write.
        session
            .start_transaction()
            .write_concern(crate::server::journaled())
            .await?;
        let mut ctx = MigrationContext::new(self.db.clone(), Some(session), (m.version, &m.name), guard.handle())
            .with_index_builds(self.config.index_commit_quorum, self.config.index_build_wait)
            .in_phase(m.phase());
        // The last proof before the body, as in a plain step (see step.rs).
        guard.ensure_lease().await?;
        let result = run_body(function(m, direction), &mut ctx).await;
        let mut session = ctx.into_session().expect("transactional context has a session");
        let outcome = match result {
            Ok(()) => match self
                .end_transaction(guard, (m, batch), direction, &mut session, start)
                .await
            {
                Ok(ms) => match commit(&mut session).await {
                    Ok(()) => return Ok(Some(ms)),
                    Err(e) if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => {
                        Attempt::Transient(e.into())
                    }
                    // Whether the commit applied is unknown after every
                    // retry: the record says. Taken as failed when it did
                    // apply, the failure's write would match nothing and the
                    // run would report a lost lock it still holds.
                    Err(e) if e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) => {
                        let fence = guard.fence();
                        let record = self.tracking.get(m.version).await;
                        if let Ok(Some(r)) = &record {
                            if landed(r, direction, &fence.holder_id.to_string(), fence.generation) {
                                return Ok(Some(ms));
                            }
                        }
                        Attempt::Failed(e.into())
                    }
                    Err(e) => Attempt::Failed(e.into()),
                },
                Err(outcome) => outcome,
            },
            Err(e) if e.is_transient() => Attempt::Transient(failed(m, e)),
            Err(e) => Attempt::Failed(failed(m, e)),
        };
        // Best effort: an open transaction dies with its session.
        let _ = session.abort_transaction().await;
        let outcome = match outcome {
            Attempt::Transient(e) | Attempt::Failed(e) if outlived(server_code(&e), start.elapsed()) => {
                Attempt::Failed(Error::MigrationFailed {
                    version: m.version,
                    name: m.name.to_string(),
                    message: format!(
                        "its transaction ran {} s and the server aborted it (NoSuchTransaction): MongoDB ends a transaction after `transactionLifetimeLimitSeconds` (60 s by default), so trying it again cannot help; make the migration non-transactional, with a walk in batches (`ctx.batches`), or raise the server's limit",
                        start.elapsed().as_secs()
                    ),
                    error: Some(Box::new(e)),
                    completed: Vec::new(),
                })
            }
            other => other,
        };
        match outcome {
            Attempt::Transient(_) if attempt < TRANSACTION_ATTEMPTS && !guard.is_lost() => {
                // Doubling from 120-200 ms: long enough for a competing
                // transaction to end between attempts, not only to start.
                let pause = TRANSACTION_BACKOFF * (1 << (attempt - 1));
                tokio::time::sleep(pause + jitter(pause)).await;
                Ok(None)
            }
            // A conflict caused by a fence is a lost lock, not a failure.
            Attempt::Transient(e) | Attempt::Failed(e) => {
                guard.check().await?;
                Err(match e {
                    e @ Error::MigrationFailed { .. } => e,
                    e => Error::MigrationFailed {
                        version: m.version,
                        name: m.name.to_string(),
                        message: e.to_string(),
                        error: Some(Box::new(e)),
                        completed: Vec::new(),
                    },
                })
            }
            Attempt::Lost => Err(Error::lock_lost()),
        }
    }

    /// Records the end inside the transaction; the lease must still be good
    /// when the transaction commits. Returns the time it recorded, which the
    /// run reports too (the commit is not counted in either).
    pub(super) async fn end_transaction(
        &self,
        guard: &LockGuard,
        (m, batch): (&Migration, i64),
        direction: Direction,
        session: &mut ClientSession,
        start: Instant,
    ) -> Result<i64, Attempt> {
        let now = self.server.clock().await.map_err(Attempt::Failed)?.now();
        let ms = elapsed_ms(start);
        let end = finish((m, batch), direction, Outcome::Done(direction), ms);
        match self
            .tracking
            .step(Some(end), None, guard.fence(), now, Some(session))
            .await
        {
            Ok(Stepped::Ok) => {}
            Ok(_) => return Err(Attempt::Lost),
            Err(Error::Mongo(e)) if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => {
                return Err(Attempt::Transient(e.into()))
            }
            Err(e) => return Err(Attempt::Failed(e)),
        }
        guard.ensure_live(Instant::now()).await.map_err(|_| Attempt::Lost)?;
        Ok(ms)
    }
}

/// A transaction this old that the server says does not exist was most
/// likely aborted by its reaper for outliving `transactionLifetimeLimitSeconds`
/// (60 s by default): a failover's `NoSuchTransaction` comes soon after the
/// transaction began.
const OUTLIVED_AFTER: Duration = Duration::from_secs(25);

/// Whether a transaction that failed with `code` after `lived` outlived
/// the server's lifetime limit: then it is not tried again.
pub(super) fn outlived(code: Option<i32>, lived: Duration) -> bool {
    code == Some(251) && lived >= OUTLIVED_AFTER
}

/// Whether `r` holds the end this hold's transaction wrote: completed in
/// `direction` by holder `holder` at `generation`.
pub(super) fn landed(r: &crate::Record, direction: Direction, holder: &str, generation: i64) -> bool {
    r.status == crate::MigrationStatus::Completed
        && r.direction == direction
        && r.lock_holder.as_deref() == Some(holder)
        && r.lock_generation == Some(generation)
}

/// The server's error code behind a failed attempt, if any.
fn server_code(e: &Error) -> Option<i32> {
    let mongo = match e {
        Error::Mongo(e) => Some(e),
        Error::MigrationFailed {
            error: Some(source), ..
        } => source.downcast_ref::<mongodb::error::Error>(),
        _ => None,
    }?;
    match &*mongo.kind {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// How one transaction attempt ended, when it did not commit.
pub(super) enum Attempt {
    /// The server labelled it `TransientTransactionError`: worth another try.
    Transient(Error),
    Failed(Error),
    /// The claim was fenced, or the lease ran out.
    Lost,
}

/// Commits, retrying a commit whose result is unknown (a network error or a
/// failover during the commit), as MongoDB's drivers do.
pub(super) async fn commit(session: &mut ClientSession) -> Result<(), mongodb::error::Error> {
    let mut tries = 0;
    loop {
        match session.commit_transaction().await {
            Err(e) if e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{landed, outlived};
    use crate::{Direction, MigrationStatus, Record};
    use std::time::Duration;

    /// After `UnknownTransactionCommitResult` on every retry (the
    /// transactions specification's commit retry), the record tells whether
    /// the commit applied.
    #[test]
    fn a_commit_of_unknown_result_is_read_back_from_the_record() {
        let now = bson::DateTime::now();
        let stored = bson::doc! {
            "version": 20260101000000_i64, "name": "m", "status": "completed", "direction": "up", "batch": 1_i64,
            "lockHolder": { "id": "h1", "generation": 7_i64 }, "createdAt": now, "updatedAt": now,
        };
        let r = Record::from_document(&stored).unwrap();
        assert!(landed(&r, Direction::Up, "h1", 7));
        // Another hold's end, another direction, or a claim still running: not ours.
        assert!(!landed(&r, Direction::Up, "h2", 7));
        assert!(!landed(&r, Direction::Up, "h1", 8));
        assert!(!landed(&r, Direction::Down, "h1", 7));
        let mut running = stored;
        running.insert("status", "running");
        let r = Record::from_document(&running).unwrap();
        assert_eq!(r.status, MigrationStatus::Running);
        assert!(!landed(&r, Direction::Up, "h1", 7));
    }

    /// mongod's reaper aborts a transaction older than
    /// `transactionLifetimeLimitSeconds`; its next statement or its commit
    /// then gets `NoSuchTransaction` (251) labelled `TransientTransactionError`
    /// (`src/mongo/db/transaction/transaction_participant.cpp`).
    #[test]
    fn a_transaction_the_reaper_aborted_is_not_tried_again() {
        assert!(outlived(Some(251), Duration::from_secs(61)));
        // Soon after it began: a failover's, worth another try.
        assert!(!outlived(Some(251), Duration::from_secs(2)));
        // A write conflict is worth another try however long it ran.
        assert!(!outlived(Some(112), Duration::from_secs(61)));
        assert!(!outlived(None, Duration::from_secs(61)));
    }
}
