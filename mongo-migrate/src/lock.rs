//! The migration lock: one document, taken atomically, expiring by the
//! server's clock, refreshed by a heartbeat, with a fencing generation.
//!
//! The lock alone cannot stop a runner that lost it from writing: tracking
//! writes go to other documents. What stops it is the fence (see
//! `tracking.rs`). The lock document names the versions its holder may
//! write (`plan`, set when the lock is taken), and keeps the plans of
//! earlier holders that nobody has fenced yet (`unfenced`): whoever takes
//! the lock next, or force-unlock, fences all of them before anything else.

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
use crate::{Error, Version};

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// New for every acquisition: the fencing identity of the holder.
    pub id: Uuid,
    /// The host name of the holder's machine.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// What the holder runs: `up`, `down`, `resolve`, `forget`.
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
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {}, {})", self.id, self.pid, self.host, self.reason)
    }
}

/// The lock document as stored; what older versions did not write is optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredLock {
    holder: Option<StoredHolder>,
    generation: Option<i64>,
    acquired_at: Option<bson::DateTime>,
    heartbeat_at: Option<bson::DateTime>,
    expires_at: Option<bson::DateTime>,
}

#[derive(Deserialize)]
struct StoredHolder {
    id: String,
    host: Option<String>,
    pid: Option<i64>,
    reason: Option<String>,
}

/// The lock document as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    /// Who holds it (or held it last, if expired).
    pub holder: Holder,
    /// Raised by every acquisition and by force-unlock.
    pub generation: i64,
    /// When the holder took it (server time).
    pub acquired_at: Option<DateTime<Utc>>,
    /// The holder's last heartbeat (server time).
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When it expires unless refreshed (server time).
    pub expires_at: DateTime<Utc>,
    /// An expired lock counts as free (judged by the server's clock).
    pub expired: bool,
}

impl LockInfo {
    /// The lock document, if it names a holder (a released lock does not).
    fn from_document(doc: &Document, now: bson::DateTime) -> Option<Self> {
        let stored: StoredLock = bson::from_document(doc.clone()).ok()?;
        let holder = stored.holder?;
        let expires_at = stored.expires_at?;
        Some(LockInfo {
            holder: Holder {
                id: holder.id.parse().ok()?,
                host: holder.host.unwrap_or_default(),
                pid: holder.pid.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
                reason: holder.reason.unwrap_or_default(),
            },
            generation: stored.generation.unwrap_or(0),
            acquired_at: stored.acquired_at.map(bson::DateTime::to_chrono),
            heartbeat_at: stored.heartbeat_at.map(bson::DateTime::to_chrono),
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

/// The versions in the lock document (`plan`, `unfenced`).
fn versions(doc: &Document, field: &str) -> Vec<Version> {
    doc.get_array(field)
        .map(|a| {
            a.iter()
                .filter_map(|v| match v {
                    Bson::Int64(v) => Version::from_i64(*v).ok(),
                    Bson::Int32(v) => Version::from_i64(i64::from(*v)).ok(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn version_array(versions: &[Version]) -> Bson {
    Bson::Array(versions.iter().map(|v| Bson::Int64(v.as_i64())).collect())
}

/// The plans of earlier holders that are not fenced yet: `unfenced` and
/// `plan` of the lock document as it was, in an update pipeline.
fn inherited() -> Document {
    doc! { "$setUnion": [ { "$ifNull": [ "$unfenced", [] ] }, { "$ifNull": [ "$plan", [] ] } ] }
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
    doc! { "holder": Bson::Null, "expiresAt": now, "releasedAt": now, "plan": [] }
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
    /// the upsert's insert fail on the `_id` key. `plan` names every version
    /// this holder may claim (see [`LockGuard::extend`] for more); the plans
    /// of earlier holders move to `unfenced`.
    pub(crate) async fn acquire(&self, reason: &str, plan: &[Version]) -> Result<LockGuard, Error> {
        let clock = self.server.clock().await?;
        let holder = Holder::this_process(reason);
        // The same pipeline with the server's `$$NOW` or, where a probe found
        // it does not compare correctly, the estimated server time.
        let (now, free) = if clock.has_now {
            let free = doc! { "$expr": { "$or": [
                { "$eq": [ { "$ifNull": [ "$holder", Bson::Null ] }, Bson::Null ] },
                { "$lte": [ "$expiresAt", "$$NOW" ] },
            ] } };
            (Bson::String("$$NOW".into()), free)
        } else {
            let now = clock.now();
            let free = doc! { "$or": [ { "holder": Bson::Null }, { "expiresAt": { "$lte": now } } ] };
            (Bson::DateTime(now), free)
        };
        let mut filter = doc! { "_id": &self.name };
        filter.extend(free);
        let update = vec![doc! { "$set": {
            "holder": { "$literal": holder.to_document() },
            "acquiredAt": now.clone(),
            "heartbeatAt": now.clone(),
            "expiresAt": { "$add": [ now, ttl_ms(self.ttl) ] },
            "generation": { "$add": [ { "$ifNull": [ "$generation", 0_i64 ] }, 1_i64 ] },
            "unfenced": inherited(),
            "plan": { "$literal": version_array(plan) },
        } }];
        let sent = Instant::now();
        let result = self
            .coll
            .find_one_and_update(filter, update)
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(doc)) => Ok(self.guard(&holder, &doc, plan, sent)),
            // Some servers return no document from a raced upsert; the lock
            // document itself tells whether this runner won.
            Ok(None) => self.busy_unless_ours(&holder, plan, sent).await,
            Err(e) if is_duplicate_key(&e) => self.busy_unless_ours(&holder, plan, sent).await,
            Err(e) => Err(e.into()),
        }
    }

    fn guard(&self, holder: &Holder, doc: &Document, plan: &[Version], sent: Instant) -> LockGuard {
        let fence = Fence {
            holder_id: holder.id,
            generation: doc.get_i64("generation").unwrap_or(0),
        };
        tracing::info!(
            lock = %self.name,
            holder = %holder.id,
            generation = fence.generation,
            reason = %holder.reason,
            "lock acquired"
        );
        LockGuard::start(self.clone(), fence, plan, versions(doc, "unfenced"), sent)
    }

    async fn busy_unless_ours(&self, holder: &Holder, plan: &[Version], sent: Instant) -> Result<LockGuard, Error> {
        let doc = self.coll.find_one(doc! { "_id": &self.name }).await?;
        let ours = doc.as_ref().is_some_and(|d| {
            d.get_document("holder")
                .is_ok_and(|h| h.get_str("id") == Ok(holder.id.to_string().as_str()))
        });
        match doc {
            Some(doc) if ours => Ok(self.guard(holder, &doc, plan, sent)),
            _ => match self.status().await? {
                Some(info) => Err(info.busy()),
                // Released between our attempt and the read: busy all the same.
                None => Err(Error::Locked {
                    holder: "another runner".into(),
                    expires_at: Utc::now(),
                }),
            },
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

    /// Frees the lock if this holder still has it. `fenced`: this holder
    /// fenced the plans it inherited, so nobody needs to again.
    async fn release(&self, fence: &Fence, fenced: bool) -> Result<(), Error> {
        let now = self.server.clock().await?.now();
        let filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
        };
        let mut set = freed(now);
        if fenced {
            set.insert("unfenced", Bson::Array(Vec::new()));
        }
        self.coll.update_one(filter, doc! { "$set": set }).await?;
        Ok(())
    }

    /// Adds versions to the plan of a held lock; `false` if it is not ours.
    async fn extend(&self, fence: &Fence, more: &[Version]) -> Result<bool, Error> {
        let filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
        };
        let update = doc! { "$addToSet": { "plan": { "$each": version_array(more) } } };
        Ok(self.coll.update_one(filter, update).await?.matched_count == 1)
    }

    /// Frees the lock whoever holds it, and bumps the generation so that the
    /// old holder can prove nothing any more. Its plan joins the unfenced
    /// ones. Returns the lock as it was, and what to fence: the old holder,
    /// every unfenced version, and the generation that fences them.
    pub(crate) async fn force_release(&self) -> Result<Option<Released>, Error> {
        let now = self.server.clock().await?.now();
        let update = vec![doc! { "$set": {
            "holder": Bson::Null,
            "expiresAt": now,
            "releasedAt": now,
            "generation": { "$add": [ { "$ifNull": [ "$generation", 0_i64 ] }, 1_i64 ] },
            "unfenced": inherited(),
            "plan": { "$literal": [] },
        } }];
        let before = self
            .coll
            .find_one_and_update(doc! { "_id": &self.name }, update)
            .return_document(ReturnDocument::Before)
            .await?;
        let Some(before) = before else { return Ok(None) };
        let mut unfenced = versions(&before, "unfenced");
        unfenced.extend(versions(&before, "plan"));
        unfenced.sort_unstable();
        unfenced.dedup();
        Ok(Some(Released {
            lock: LockInfo::from_document(&before, now),
            generation: before.get_i64("generation").unwrap_or(0) + 1,
            unfenced,
        }))
    }

    /// After force-unlock fenced everything unfenced: clears the list, unless
    /// someone took the lock meanwhile (and inherited the list to fence).
    pub(crate) async fn fenced(&self, generation: i64) -> Result<(), Error> {
        let filter = doc! { "_id": &self.name, "holder": Bson::Null, "generation": generation };
        self.coll
            .update_one(filter, doc! { "$set": { "unfenced": [] } })
            .await?;
        Ok(())
    }
}

/// What [`Lock::force_release`] freed.
#[derive(Debug)]
pub(crate) struct Released {
    /// The lock as it was, if it had a holder.
    pub(crate) lock: Option<LockInfo>,
    /// The generation after the release: it fences the old holders.
    pub(crate) generation: i64,
    /// Every version a fenced holder may have claimed.
    pub(crate) unfenced: Vec<Version>,
}

/// How long a write's round trip may take before the runner proves its lock
/// again before starting a migration: a runner paused (a VM freeze, a long
/// GC, SIGSTOP) while its write was in flight may have been fenced meanwhile.
/// A SIGCONT is seen directly (see [`Resumed`]).
const SLOW_TRIP: Duration = Duration::from_millis(100);

/// How many round trips one proof of the lock makes at most while their
/// answers are slow (see [`LockHandle::prove`]).
const PROOF_ATTEMPTS: u32 = 3;

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

/// A run's hold on the lock, shared by everything that must not start work
/// on a lost lock: the migrator, the walk's segments, a migration's context.
/// It holds the rules for when the lock is proved before work starts:
/// [`LockHandle::ensure_lease`] and [`LockHandle::ensure_live`].
#[derive(Debug, Clone)]
pub(crate) struct LockHandle {
    lock: Lock,
    fence: Fence,
    shared: Arc<Shared>,
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
struct Shared {
    lost: watch::Sender<bool>,
    resumed: Resumed,
    /// Until when this runner may act without asking the server: the send
    /// time of its last successful proof plus nine tenths of the TTL. The
    /// server's expiry is at least the TTL after that send time.
    lease: Mutex<Instant>,
    /// One proof at a time: a caller that finds the SIGCONT flag set proves
    /// the lock while the others wait for its answer, so none of them goes
    /// on on the lease alone (the flag is taken once).
    proving: tokio::sync::Mutex<()>,
    /// The lock generation, for events.
    generation: i64,
}

impl Shared {
    fn proven(&self, sent: Instant, ttl: Duration) {
        let mut lease = self.lease.lock().expect("lease lock");
        *lease = (*lease).max(sent + ttl.mul_f64(0.9));
    }

    fn lose(&self) {
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
    fn start(lock: Lock, fence: Fence, plan: &[Version], inherited: Vec<Version>, sent: Instant) -> Self {
        let (lost, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            lost,
            resumed: Resumed::watch(),
            lease: Mutex::new(sent),
            proving: tokio::sync::Mutex::new(()),
            generation: fence.generation,
        });
        shared.proven(sent, lock.ttl);
        let heartbeat = tokio::spawn(heartbeat(lock.clone(), fence, shared.clone()));
        LockGuard {
            handle: LockHandle { lock, fence, shared },
            heartbeat: Some(heartbeat),
            plan: Mutex::new(plan.iter().copied().collect()),
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
                self.shared.proven(sent, self.lock.ttl);
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
                shared.proven(sent, lock.ttl);
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

#[cfg(test)]
mod tests {
    use super::LockInfo;
    use bson::{doc, Bson, DateTime};

    #[test]
    fn lock_documents_of_any_age_read_and_a_released_one_has_no_holder() {
        let now = DateTime::now();
        let later = DateTime::from_millis(now.timestamp_millis() + 60_000);
        // An early version's lock: no pid, reason or heartbeat, an Int32 generation.
        let old = doc! {
            "_id": "migrations", "holder": { "id": "7d0f4a4e-0000-4000-8000-000000000000", "host": "h" },
            "generation": 3_i32, "expiresAt": later,
        };
        let info = LockInfo::from_document(&old, now).unwrap();
        assert_eq!((info.generation, info.holder.pid, info.expired), (3, 0, false));
        let released = doc! { "_id": "migrations", "holder": Bson::Null, "generation": 4_i64, "expiresAt": now };
        assert_eq!(LockInfo::from_document(&released, now), None);
    }
}
