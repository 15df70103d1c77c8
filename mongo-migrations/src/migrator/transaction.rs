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
        m: &Migration,
        direction: Direction,
    ) -> Result<i64, (Error, u32)> {
        let mut attempt = 1;
        loop {
            match self.attempt_transaction(guard, m, direction, attempt).await {
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
        m: &Migration,
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
            .in_phase(m.phase());
        let result = run_body(function(m, direction), &mut ctx).await;
        let mut session = ctx.into_session().expect("transactional context has a session");
        let outcome = match result {
            Ok(()) => match self.end_transaction(guard, m, direction, &mut session, start).await {
                Ok(ms) => match commit(&mut session).await {
                    Ok(()) => return Ok(Some(ms)),
                    Err(e) if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => {
                        Attempt::Transient(e.into())
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
        m: &Migration,
        direction: Direction,
        session: &mut ClientSession,
        start: Instant,
    ) -> Result<i64, Attempt> {
        let now = self.server.clock().await.map_err(Attempt::Failed)?.now();
        let ms = elapsed_ms(start);
        let end = finish(m, Outcome::Done(direction), ms);
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
