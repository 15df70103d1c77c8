//! The lock skeleton every command under the lock shares: wait for a held
//! lock or refuse before writing anything, take it, run, release it.

use crate::lock::LockGuard;
use crate::{Error, Progress, Version};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use super::{Ensure, Migrator};
use crate::retry::jitter;

/// What a command decided before the lock: its answer without it, or the
/// versions the lock must name.
pub(super) enum Before<T> {
    Answer(T),
    Lock(Vec<Version>),
}

/// Whether the skeleton refuses a held lock from one small read before the
/// command's own reads: every command that writes; a dry-run reads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    RefuseHeld,
    /// As `RefuseHeld`, but the command's first read takes the lock with
    /// the records and refuses a held one first: one command less.
    RefuseHeldAsRead,
    ReadThrough,
}

/// The longest pause between two attempts at a lock another runner holds:
/// a waiter notices a released lock within this time.
pub(super) const MAX_LOCK_POLL: Duration = Duration::from_millis(250);

impl Migrator {
    /// The skeleton of every command under the lock: while another runner
    /// holds it, waits (up to `lock_wait`) or refuses before writing
    /// anything, not even the indexes; then takes it, naming `versions`,
    /// runs `locked` and releases it (see [`Migrator::under`]).
    pub(super) async fn with_lock<T>(
        &self,
        reason: &str,
        versions: &[Version],
        locked: impl AsyncFnOnce(&LockGuard) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let before = || async { Ok(Before::Lock(versions.to_vec())) };
        self.with_lock_after(reason, Gate::RefuseHeld, before, locked).await
    }

    /// [`Migrator::with_lock`] for a command that decides under the wait,
    /// from what it reads, whether it needs the lock at all (`up` and
    /// `down` with nothing to do, a dry-run) and which versions it names.
    /// `before` runs on every attempt; the skeleton is the same.
    pub(super) async fn with_lock_after<T, F>(
        &self,
        reason: &str,
        gate: Gate,
        before: impl Fn() -> F,
        locked: impl AsyncFnOnce(&LockGuard) -> Result<T, Error>,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<Before<T>, Error>>,
    {
        let first = std::sync::atomic::AtomicBool::new(true);
        let guard = self
            .waiting(|| async {
                // While a live runner holds the lock, a waiter reads one
                // small document per poll, not the whole tracking collection.
                let polling = !first.swap(false, std::sync::atomic::Ordering::SeqCst);
                if gate == Gate::RefuseHeld || (gate == Gate::RefuseHeldAsRead && polling) {
                    if let Some(lock) = self.lock.status().await?.filter(|l| !l.expired) {
                        return Err(lock.busy());
                    }
                }
                let versions = match before().await? {
                    Before::Answer(answer) => return Ok(Err(answer)),
                    Before::Lock(versions) => versions,
                };
                self.ensure_indexes(Ensure::UnlessMade).await?;
                Ok(Ok(LockGuard::acquire(&self.lock, reason, &versions).await?))
            })
            .await?;
        match guard {
            Ok(guard) => Self::under(guard, locked).await,
            Err(answer) => Ok(answer),
        }
    }

    /// Runs `locked` under `guard`, then releases the lock whatever
    /// happened; a panic goes on once the lock is free.
    pub(super) async fn under<T>(
        guard: LockGuard,
        locked: impl AsyncFnOnce(&LockGuard) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let result = AssertUnwindSafe(locked(&guard)).catch_unwind().await;
        Self::release(guard, result).await
    }

    /// Runs `attempt` until it is not [`Error::Locked`], for up to
    /// `lock_wait`, or until a stop is requested. Polls at most every
    /// [`MAX_LOCK_POLL`], so a waiter sees a released lock promptly.
    pub(super) async fn waiting<T, F>(&self, mut attempt: impl FnMut() -> F) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.lock_wait;
        let mut told = false;
        loop {
            match attempt().await {
                Err(Error::Locked { holder, expires_at }) if Instant::now() < deadline && !self.stop.is_stopped() => {
                    if !std::mem::replace(&mut told, true) {
                        tracing::info!(%holder, %expires_at, "waiting for the lock");
                        self.report(Progress::Waiting { holder, expires_at });
                    }
                    let pause = jitter(MAX_LOCK_POLL).min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// Releases the lock after the work done under it, whatever its outcome;
    /// a panic goes on once the lock is free. A lost lock is reported with
    /// whoever holds it now.
    pub(super) async fn release<T>(
        guard: LockGuard,
        result: std::thread::Result<Result<T, Error>>,
    ) -> Result<T, Error> {
        let taken_by = match &result {
            Ok(Err(Error::LockLost { .. })) => {
                // Found by a fenced write rather than the heartbeat.
                if !guard.is_lost() {
                    tracing::warn!(generation = guard.fence().generation, "lock lost");
                }
                guard.holder_now().await
            }
            _ => None,
        };
        let released = guard.release().await;
        match result {
            Ok(Err(Error::LockLost {
                completed,
                interrupted,
                not_run,
                ..
            })) => Err(Error::LockLost {
                taken_by,
                completed,
                interrupted,
                not_run,
            }),
            Ok(result) => {
                let value = result?;
                released?;
                Ok(value)
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
