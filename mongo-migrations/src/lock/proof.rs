//! When a run proves its lock before work starts: the named rules, each a
//! free check of the lease or one round trip.

use std::time::{Duration, Instant};

use super::guard::LockHandle;
use crate::Error;

/// again before starting a migration: a runner paused (a VM freeze, a long
/// GC, SIGSTOP) while its write was in flight may have been fenced meanwhile.
/// A SIGCONT is seen directly (see `resumed.rs`).
const SLOW_TRIP: Duration = Duration::from_millis(100);

/// How many round trips one proof of the lock makes at most while their
/// answers are slow (see [`LockHandle::prove`]).
const PROOF_ATTEMPTS: u32 = 3;

impl LockHandle {
    /// Proves the lock is still ours with a round trip; `Err(LockLost)` otherwise.
    pub(crate) async fn check(&self) -> Result<(), Error> {
        let _one = self.shared.proving.lock().await;
        self.prove().await
    }

    /// One proof, by round trips: an answer that was slow to come back may
    /// predate a pause (SIGSTOP, a VM freeze) during which the lock was
    /// force-unlocked, so only one sent after it counts: a slow success is
    /// proved again, up to [`PROOF_ATTEMPTS`] times (a slow network then
    /// still gets an answer).
    async fn prove(&self) -> Result<(), Error> {
        for attempt in 1..=PROOF_ATTEMPTS {
            if self.is_lost() {
                return Err(Error::lock_lost());
            }
            let clock = self.lock.server.clock().await?;
            let sent = Instant::now();
            if !self.lock.refresh(&self.fence, &clock).await? {
                self.shared.lose();
                return Err(Error::lock_lost());
            }
            if sent.elapsed() < SLOW_TRIP.min(self.lock.ttl / 4) || attempt == PROOF_ATTEMPTS {
                self.shared.proven(sent, self.lock.lease());
                return Ok(());
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Before work starts on an answer that took `sent` to now to come back
    /// (the write that allowed a migration's start; for a batch, the walk's
    /// last checkpoint): free when the lease is fresh and the answer came
    /// promptly; otherwise one round trip to prove the lock again, since a
    /// runner paused since `sent` may have been fenced meanwhile. Elapsed
    /// time catches a pause even where the SIGCONT handler has not run yet.
    pub(crate) async fn ensure_live(&self, sent: Instant) -> Result<(), Error> {
        if sent.elapsed() < SLOW_TRIP.min(self.lock.ttl / 4) {
            return self.ensure_lease().await;
        }
        self.check().await
    }

    /// Free while the lease is fresh and no SIGCONT came since the last
    /// call; otherwise one round trip to prove the lock.
    pub(crate) async fn ensure_lease(&self) -> Result<(), Error> {
        let _one = self.shared.proving.lock().await;
        // Read after the wait: a proof made meanwhile may have found it lost.
        if self.is_lost() {
            return Err(Error::lock_lost());
        }
        if !self.shared.resumed.take() && Instant::now() < *self.shared.lease.lock().expect("lease lock") {
            return Ok(());
        }
        self.prove().await
    }
}
