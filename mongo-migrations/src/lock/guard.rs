//! A run's hold on the lock: the guard that releases it, the handle that
//! what runs under it shares, and the heartbeat that keeps it alive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::info::{Acquired, Fence};
use super::resumed::Resumed;
use super::store::Lock;
use crate::{Error, Version};

/// A run's hold on the lock, shared by everything that must not start work
/// on a lost lock: the migrator, the walk's segments, a migration's context.
/// The rules for when it is proved before work starts are in `proof.rs`:
/// [`LockHandle::ensure_lease`] and [`LockHandle::ensure_live`].
#[derive(Debug, Clone)]
pub(crate) struct LockHandle {
    pub(super) lock: Lock,
    pub(super) fence: Fence,
    pub(super) shared: Arc<Shared>,
}

/// A held lock. Its heartbeat keeps it alive; release it with
/// [`LockGuard::release`]. Dropping it releases it in the background. It
/// dereferences to its [`LockHandle`].
#[derive(Debug)]
pub(crate) struct LockGuard {
    handle: LockHandle,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// The versions the lock document lets this holder claim.
    plan: Mutex<std::collections::BTreeSet<Version>>,
    /// Earlier holders' plans that this holder must fence, as taken over.
    inherited: Vec<Version>,
    /// Whether it did: then its release clears them.
    fenced: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) lost: watch::Sender<bool>,
    pub(super) resumed: Resumed,
    /// Until when this runner may act without asking the server: the send
    /// time of its last successful proof plus nine tenths of the TTL. The
    /// server's expiry is at least the TTL after that send time.
    pub(super) lease: Mutex<Instant>,
    /// One proof at a time: a caller that finds the SIGCONT flag set proves
    /// the lock while the others wait for its answer, so none of them goes
    /// on on the lease alone (the flag is taken once).
    pub(super) proving: tokio::sync::Mutex<()>,
    /// The lock generation, for events.
    pub(super) generation: i64,
}

impl Shared {
    /// A proof sent at `sent` holds the lease for `lease` from then (see
    /// `Lock::lease`).
    pub(super) fn proven(&self, sent: Instant, lease: Duration) {
        let mut until = self.lease.lock().expect("lease lock");
        *until = (*until).max(sent + lease);
    }

    pub(super) fn lose(&self) {
        if !self.lost.send_replace(true) {
            tracing::warn!(generation = self.generation, "lock lost");
        }
    }
}

impl std::ops::Deref for LockGuard {
    type Target = LockHandle;

    fn deref(&self) -> &LockHandle {
        &self.handle
    }
}

impl LockGuard {
    /// Takes the lock (see `Lock::acquire`) and holds it: the heartbeat
    /// starts, and the lease runs from when the taking write was sent.
    pub(crate) async fn acquire(lock: &Lock, reason: &str, plan: &[Version]) -> Result<Self, Error> {
        let acquired = lock.acquire(reason, plan).await?;
        Ok(LockGuard::start(lock.clone(), acquired))
    }

    fn start(lock: Lock, acquired: Acquired) -> Self {
        let Acquired {
            fence,
            plan,
            inherited,
            sent,
        } = acquired;
        let (lost, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            lost,
            resumed: Resumed::watch(),
            lease: Mutex::new(sent),
            proving: tokio::sync::Mutex::new(()),
            generation: fence.generation,
        });
        shared.proven(sent, lock.lease());
        let heartbeat = tokio::spawn(heartbeat(lock.clone(), fence, shared.clone()));
        LockGuard {
            handle: LockHandle { lock, fence, shared },
            heartbeat: Some(heartbeat),
            plan: Mutex::new(plan.into_iter().collect()),
            inherited,
            fenced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The versions earlier holders may have claimed without being fenced.
    pub(crate) fn inherited(&self) -> &[Version] {
        &self.inherited
    }

    /// Notes that [`LockGuard::inherited`] is fenced.
    pub(crate) fn set_fenced(&self) {
        self.fenced.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes sure the lock document names every version of `plan` before
    /// this holder claims them (one round trip if some are new).
    pub(crate) async fn extend(&self, plan: impl IntoIterator<Item = Version>) -> Result<(), Error> {
        let more: Vec<Version> = {
            let known = self.plan.lock().expect("plan lock");
            plan.into_iter().filter(|v| !known.contains(v)).collect()
        };
        if more.is_empty() {
            return Ok(());
        }
        self.ensure_lease().await?;
        if !self.lock.extend(&self.fence, &more).await? {
            self.shared.lose();
            return Err(Error::lock_lost());
        }
        self.plan.lock().expect("plan lock").extend(more);
        Ok(())
    }

    /// A handle on this hold, for what runs under it.
    pub(crate) fn handle(&self) -> LockHandle {
        self.handle.clone()
    }

    /// Who holds the lock now, if anyone does and it is not expired.
    pub(crate) async fn holder_now(&self) -> Option<String> {
        match self.lock.status().await {
            Ok(Some(info)) if !info.expired => Some(info.holder.to_string()),
            _ => None,
        }
    }

    pub(crate) async fn release(mut self) -> Result<(), Error> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let fenced = self.fenced.load(std::sync::atomic::Ordering::SeqCst);
        let released = self.lock.release(&self.fence, fenced).await;
        tracing::info!(
            generation = self.fence.generation,
            ok = released.is_ok(),
            "lock released"
        );
        released
    }
}

impl LockHandle {
    pub(crate) fn fence(&self) -> &Fence {
        &self.fence
    }

    pub(crate) fn is_lost(&self) -> bool {
        *self.shared.lost.borrow()
    }

    /// Completes once the lock is lost, or once the run is over.
    pub(crate) async fn lost(&self) {
        let mut rx = self.shared.lost.subscribe();
        let _ = rx.wait_for(|lost| *lost).await;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
            // Cancelled future: release without waiting; expiry covers the rest.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (lock, fence) = (self.lock.clone(), self.fence);
                let fenced = self.fenced.load(std::sync::atomic::Ordering::SeqCst);
                runtime.spawn(async move { lock.release(&fence, fenced).await });
            }
        }
    }
}

async fn heartbeat(lock: Lock, fence: Fence, shared: Arc<Shared>) {
    let period = (lock.ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        let Ok(clock) = lock.server.clock().await else { continue };
        let sent = Instant::now();
        match lock.refresh(&fence, &clock).await {
            Ok(true) => {
                shared.proven(sent, lock.lease());
                tracing::debug!(generation = fence.generation, "lock heartbeat");
            }
            Ok(false) => {
                shared.lose();
                return;
            }
            // A transient error: the next beat or the next check decides.
            Err(e) => tracing::warn!(generation = fence.generation, error = %e, "lock heartbeat failed"),
        }
    }
}
