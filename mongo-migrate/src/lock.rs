//! The migration lock: one document, taken atomically, expiring by the
//! server's clock, refreshed by a heartbeat, with a fencing generation.
//!
//! The lock alone cannot stop a runner that lost it from writing: tracking
//! writes go to other documents. What stops it is the fence (see
//! `tracking.rs`): every claim a runner writes exists before the runner
//! proves it holds the lock, and each later holder marks all older claims
//! fenced before it reads them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::server::{is_duplicate_key, Clock, Server};
use crate::Error;

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub id: Uuid,
    pub host: String,
    pub pid: u32,
    pub reason: String,
}

impl Holder {
    pub(crate) fn this_process(reason: &str) -> Self {
        Holder {
            id: Uuid::new_v4(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            reason: reason.to_string(),
        }
    }

    fn to_document(&self) -> Document {
        doc! {
            "id": self.id.to_string(),
            "host": &self.host,
            "pid": i64::from(self.pid),
            "reason": &self.reason,
        }
    }

    fn from_document(doc: &Document) -> Option<Self> {
        Some(Holder {
            id: doc.get_str("id").ok()?.parse().ok()?,
            host: doc.get_str("host").unwrap_or_default().to_string(),
            pid: doc.get_i64("pid").ok().and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            reason: doc.get_str("reason").unwrap_or_default().to_string(),
        })
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {}, {})", self.id, self.pid, self.host, self.reason)
    }
}

/// The lock document as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    pub holder: Holder,
    pub generation: i64,
    pub acquired_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// An expired lock counts as free (judged by the server's clock).
    pub expired: bool,
}

impl LockInfo {
    fn from_document(doc: &Document, now: bson::DateTime) -> Option<Self> {
        let holder = Holder::from_document(doc.get_document("holder").ok()?)?;
        let expires_at = *doc.get_datetime("expiresAt").ok()?;
        Some(LockInfo {
            holder,
            generation: doc.get_i64("generation").unwrap_or(0),
            acquired_at: doc.get_datetime("acquiredAt").ok().map(|d| d.to_chrono()),
            heartbeat_at: doc.get_datetime("heartbeatAt").ok().map(|d| d.to_chrono()),
            expires_at: expires_at.to_chrono(),
            expired: expires_at <= now,
        })
    }

    /// The error for a runner that finds this lock held.
    pub(crate) fn busy(&self) -> Error {
        Error::Locked {
            holder: self.holder.to_string(),
            expires_at: self.expires_at,
        }
    }

    /// Whether this lock is live and is the one that wrote a record
    /// (`lockHolder.id` and `lockHolder.generation`).
    pub(crate) fn wrote(&self, holder_id: Option<&str>, generation: Option<i64>) -> bool {
        !self.expired && holder_id == Some(self.holder.id.to_string().as_str()) && generation == Some(self.generation)
    }
}

/// The fencing token of a held lock: the holder and its generation. Every
/// tracking write of a runner names it, and each later holder fences it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) holder_id: Uuid,
    pub(crate) generation: i64,
}

/// The lock collection and the name of the lock document in it.
#[derive(Debug, Clone)]
pub(crate) struct Lock {
    coll: Collection<Document>,
    name: String,
    ttl: Duration,
    server: Server,
}

/// A free lock document: no holder, already expired. `acquire` matches either.
fn freed(now: bson::DateTime) -> Document {
    doc! { "holder": Bson::Null, "expiresAt": now, "releasedAt": now }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl Lock {
    pub(crate) fn new(coll: Collection<Document>, name: String, ttl: Duration, server: Server) -> Self {
        Lock {
            coll,
            name,
            ttl,
            server,
        }
    }

    /// Earlier versions made a TTL index on `expiresAt`, which deletes
    /// released and expired lock documents and so restarts their generation
    /// counter. The lock document is one small document: it stays.
    pub(crate) async fn drop_ttl_index(&self) -> Result<(), Error> {
        match self.coll.drop_index("expiresAt_ttl").await {
            Ok(()) => Ok(()),
            // IndexNotFound, NamespaceNotFound.
            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if matches!(c.code, 26 | 27)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn status(&self) -> Result<Option<LockInfo>, Error> {
        let (doc, clock) = tokio::try_join!(
            async { Ok::<_, Error>(self.coll.find_one(doc! { "_id": &self.name }).await?) },
            self.server.clock()
        )?;
        Ok(doc.as_ref().and_then(|d| LockInfo::from_document(d, clock.now())))
    }

    /// Takes the lock in one conditional upsert: it matches only a free or
    /// expired lock document (by the server's clock), and a held one makes
    /// the upsert's insert fail on the `_id` key.
    pub(crate) async fn acquire(&self, reason: &str) -> Result<LockGuard, Error> {
        let clock = self.server.clock().await?;
        let holder = Holder::this_process(reason);
        let (filter, update) = if clock.has_now {
            let filter = doc! {
                "_id": &self.name,
                "$expr": { "$or": [
                    { "$eq": [ { "$ifNull": [ "$holder", Bson::Null ] }, Bson::Null ] },
                    { "$lte": [ "$expiresAt", "$$NOW" ] },
                ] },
            };
            let update = vec![doc! { "$set": {
                "holder": { "$literal": holder.to_document() },
                "acquiredAt": "$$NOW",
                "heartbeatAt": "$$NOW",
                "expiresAt": { "$add": [ "$$NOW", ttl_ms(self.ttl) ] },
                "generation": { "$add": [ { "$ifNull": [ "$generation", 0_i64 ] }, 1_i64 ] },
            } }];
            (filter, mongodb::options::UpdateModifications::Pipeline(update))
        } else {
            let now = clock.now();
            let filter = doc! {
                "_id": &self.name,
                "$or": [ { "holder": Bson::Null }, { "expiresAt": { "$lte": now } } ],
            };
            let update = doc! {
                "$set": {
                    "holder": holder.to_document(),
                    "acquiredAt": now,
                    "heartbeatAt": now,
                    "expiresAt": clock.after(self.ttl),
                },
                "$inc": { "generation": 1_i64 },
            };
            (filter, mongodb::options::UpdateModifications::Document(update))
        };
        let sent = Instant::now();
        let result = self
            .coll
            .find_one_and_update(filter, update)
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(doc)) => Ok(self.guard(&holder, doc.get_i64("generation").unwrap_or(0), sent)),
            // Some servers return no document from a raced upsert; the lock
            // document itself tells whether this runner won.
            Ok(None) => self.busy_unless_ours(&holder, sent).await,
            Err(e) if is_duplicate_key(&e) => self.busy_unless_ours(&holder, sent).await,
            Err(e) => Err(e.into()),
        }
    }

    fn guard(&self, holder: &Holder, generation: i64, sent: Instant) -> LockGuard {
        LockGuard::start(
            self.clone(),
            Fence {
                holder_id: holder.id,
                generation,
            },
            sent,
        )
    }

    async fn busy_unless_ours(&self, holder: &Holder, sent: Instant) -> Result<LockGuard, Error> {
        match self.status().await? {
            Some(info) if info.holder.id == holder.id => Ok(self.guard(holder, info.generation, sent)),
            Some(info) => Err(info.busy()),
            // Released between our attempt and the read: busy all the same.
            None => Err(Error::Locked {
                holder: "another runner".into(),
                expires_at: Utc::now(),
            }),
        }
    }

    /// Proves the lock is still ours and unexpired by the server's clock,
    /// and extends it; `false` when it is not ours any more.
    async fn refresh(&self, fence: &Fence, clock: &Clock) -> Result<bool, Error> {
        let mut filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
        };
        let result = if clock.has_now {
            filter.insert("$expr", doc! { "$gt": [ "$expiresAt", "$$NOW" ] });
            let update = vec![doc! { "$set": {
                "heartbeatAt": "$$NOW",
                "expiresAt": { "$add": [ "$$NOW", ttl_ms(self.ttl) ] },
            } }];
            self.coll.update_one(filter, update).await?
        } else {
            filter.insert("expiresAt", doc! { "$gt": clock.now() });
            let update = doc! { "$set": { "heartbeatAt": clock.now(), "expiresAt": clock.after(self.ttl) } };
            self.coll.update_one(filter, update).await?
        };
        Ok(result.matched_count == 1)
    }

    async fn release(&self, fence: &Fence) -> Result<(), Error> {
        let now = self.server.clock().await?.now();
        let filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
        };
        self.coll.update_one(filter, doc! { "$set": freed(now) }).await?;
        Ok(())
    }

    /// Frees the lock whoever holds it, and bumps the generation so that the
    /// old holder can prove nothing any more. Returns the lock as it was.
    pub(crate) async fn force_release(&self) -> Result<Option<LockInfo>, Error> {
        let now = self.server.clock().await?.now();
        let before = self
            .coll
            .find_one_and_update(
                doc! { "_id": &self.name },
                doc! { "$set": freed(now), "$inc": { "generation": 1_i64 } },
            )
            .return_document(ReturnDocument::Before)
            .await?;
        Ok(before.as_ref().and_then(|d| LockInfo::from_document(d, now)))
    }
}

/// Whether the lock of a run is lost, for migrations that want to stop early
/// (see [`MigrationContext::lock_lost`](crate::MigrationContext::lock_lost)).
#[derive(Debug, Clone)]
pub(crate) struct LockState(watch::Receiver<bool>);

impl LockState {
    pub(crate) fn is_lost(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the lock is lost, or once the run is over.
    pub(crate) async fn lost(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|lost| *lost).await;
    }
}

/// How long a write's round trip may take before the runner proves its lock
/// again before starting a migration: a runner paused (a VM freeze, a long
/// GC, SIGSTOP) while its write was in flight may have been fenced meanwhile.
/// A SIGCONT is seen directly (see [`Resumed`]).
const SLOW_TRIP: Duration = Duration::from_millis(100);

/// Set by the SIGCONT handler itself, before the process's threads go on: a
/// process that was stopped proves its lock before it starts anything.
#[derive(Debug)]
struct Resumed {
    flag: Arc<std::sync::atomic::AtomicBool>,
    #[cfg(unix)]
    id: Option<signal_hook::SigId>,
}

impl Resumed {
    fn watch() -> Self {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Resumed {
            #[cfg(unix)]
            id: signal_hook::flag::register(signal_hook::consts::SIGCONT, flag.clone()).ok(),
            flag,
        }
    }

    /// Whether the process was resumed since the last call.
    fn take(&self) -> bool {
        self.flag.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Resumed {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(id) = self.id.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// A held lock. Its heartbeat keeps it alive; release it with
/// [`LockGuard::release`]. Dropping it releases it in the background.
#[derive(Debug)]
pub(crate) struct LockGuard {
    lock: Lock,
    fence: Fence,
    shared: Arc<Shared>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    lost: watch::Sender<bool>,
    resumed: Resumed,
    /// Until when this runner may act without asking the server: the send
    /// time of its last successful proof plus nine tenths of the TTL. The
    /// server's expiry is at least the TTL after that send time.
    lease: Mutex<Instant>,
}

impl Shared {
    fn proven(&self, sent: Instant, ttl: Duration) {
        let mut lease = self.lease.lock().expect("lease lock");
        *lease = (*lease).max(sent + ttl.mul_f64(0.9));
    }

    fn lose(&self) {
        self.lost.send_replace(true);
    }
}

impl LockGuard {
    fn start(lock: Lock, fence: Fence, sent: Instant) -> Self {
        let (lost, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            lost,
            resumed: Resumed::watch(),
            lease: Mutex::new(sent),
        });
        shared.proven(sent, lock.ttl);
        let heartbeat = tokio::spawn(heartbeat(lock.clone(), fence, shared.clone()));
        LockGuard {
            lock,
            fence,
            shared,
            heartbeat: Some(heartbeat),
        }
    }

    pub(crate) fn fence(&self) -> &Fence {
        &self.fence
    }

    pub(crate) fn state(&self) -> LockState {
        LockState(self.shared.lost.subscribe())
    }

    pub(crate) fn is_lost(&self) -> bool {
        *self.shared.lost.borrow()
    }

    /// Proves the lock is still ours with a round trip; `Err(LockLost)` otherwise.
    pub(crate) async fn check(&self) -> Result<(), Error> {
        if self.is_lost() {
            return Err(Error::lock_lost());
        }
        let clock = self.lock.server.clock().await?;
        let sent = Instant::now();
        if self.lock.refresh(&self.fence, &clock).await? {
            self.shared.proven(sent, self.lock.ttl);
            Ok(())
        } else {
            self.shared.lose();
            Err(Error::lock_lost())
        }
    }

    /// Before a migration starts: free when the lease is fresh and the write
    /// that allowed the start (sent at `sent`) came back promptly; otherwise
    /// one round trip to prove the lock again.
    pub(crate) async fn ensure_live(&self, sent: Instant) -> Result<(), Error> {
        if sent.elapsed() < SLOW_TRIP.min(self.lock.ttl / 4) {
            return self.ensure_lease().await;
        }
        self.check().await
    }

    /// Who holds the lock now, if anyone does and it is not expired.
    pub(crate) async fn holder_now(&self) -> Option<String> {
        match self.lock.status().await {
            Ok(Some(info)) if !info.expired => Some(info.holder.to_string()),
            _ => None,
        }
    }

    /// Free while the lease is fresh and no SIGCONT came since the last
    /// call; otherwise one round trip to prove the lock.
    pub(crate) async fn ensure_lease(&self) -> Result<(), Error> {
        if self.is_lost() {
            return Err(Error::lock_lost());
        }
        if !self.shared.resumed.take() && Instant::now() < *self.shared.lease.lock().expect("lease lock") {
            return Ok(());
        }
        self.check().await
    }

    pub(crate) async fn release(mut self) -> Result<(), Error> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        self.lock.release(&self.fence).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
            // Cancelled future: release without waiting; expiry covers the rest.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (lock, fence) = (self.lock.clone(), self.fence);
                runtime.spawn(async move { lock.release(&fence).await });
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
            Ok(true) => shared.proven(sent, lock.ttl),
            Ok(false) => {
                shared.lose();
                return;
            }
            // A transient error: the next beat or the next check decides.
            Err(_) => {}
        }
    }
}
