//! The migration lock: one document, taken atomically, expiring, refreshed by
//! a heartbeat, with a fencing generation that every tracking write checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::tracking::is_duplicate_key;
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
    /// An expired lock counts as free.
    pub expired: bool,
}

impl LockInfo {
    fn from_document(doc: &Document) -> Option<Self> {
        let holder = Holder::from_document(doc.get_document("holder").ok()?)?;
        let expires_at = doc.get_datetime("expiresAt").ok()?.to_chrono();
        Some(LockInfo {
            holder,
            generation: doc.get_i64("generation").unwrap_or(0),
            acquired_at: doc.get_datetime("acquiredAt").ok().map(|d| d.to_chrono()),
            heartbeat_at: doc.get_datetime("heartbeatAt").ok().map(|d| d.to_chrono()),
            expires_at,
            expired: expires_at <= Utc::now(),
        })
    }
}

/// The fencing token of a held lock: writes are valid only while the lock
/// document still names this holder and generation.
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
}

fn expiry(ttl: Duration) -> bson::DateTime {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    bson::DateTime::from_chrono(Utc::now() + ttl)
}

/// A free lock document: no holder, already expired. `acquire` matches either.
fn freed(now: bson::DateTime) -> Document {
    doc! { "holder": Bson::Null, "expiresAt": now, "releasedAt": now }
}

impl Lock {
    pub(crate) fn new(coll: Collection<Document>, name: String, ttl: Duration) -> Self {
        Lock { coll, name, ttl }
    }

    pub(crate) async fn ensure_indexes(&self) -> Result<(), Error> {
        // Garbage-collects locks of runners that died; expiry itself is checked on acquire.
        let index = IndexModel::builder()
            .keys(doc! { "expiresAt": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(Duration::from_secs(0))
                    .name("expiresAt_ttl".to_string())
                    .build(),
            )
            .build();
        self.coll.create_index(index).await?;
        Ok(())
    }

    pub(crate) async fn status(&self) -> Result<Option<LockInfo>, Error> {
        let doc = self.coll.find_one(doc! { "_id": &self.name }).await?;
        Ok(doc.as_ref().and_then(LockInfo::from_document))
    }

    /// Takes the lock in one conditional upsert: it matches only a free or
    /// expired lock document, and a held one makes the upsert's insert fail
    /// on the `_id` key.
    pub(crate) async fn acquire(&self, reason: &str) -> Result<LockGuard, Error> {
        let holder = Holder::this_process(reason);
        let now = bson::DateTime::now();
        let filter = doc! {
            "_id": &self.name,
            "$or": [ { "holder": Bson::Null }, { "expiresAt": { "$lte": now } } ],
        };
        let update = doc! {
            "$set": {
                "holder": holder.to_document(),
                "acquiredAt": now,
                "heartbeatAt": now,
                "expiresAt": expiry(self.ttl),
            },
            "$inc": { "generation": 1_i64 },
        };
        let result = self
            .coll
            .find_one_and_update(filter, update)
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(doc)) => Ok(self.guard(&holder, doc.get_i64("generation").unwrap_or(0))),
            // Some servers return no document from a raced upsert; the lock
            // document itself tells whether this runner won.
            Ok(None) => self.busy_unless_ours(&holder).await,
            Err(e) if is_duplicate_key(&e) => self.busy_unless_ours(&holder).await,
            Err(e) => Err(e.into()),
        }
    }

    fn guard(&self, holder: &Holder, generation: i64) -> LockGuard {
        LockGuard::start(
            self.clone(),
            Fence {
                holder_id: holder.id,
                generation,
            },
        )
    }

    async fn busy_unless_ours(&self, holder: &Holder) -> Result<LockGuard, Error> {
        match self.status().await? {
            Some(info) if info.holder.id == holder.id => Ok(self.guard(holder, info.generation)),
            Some(info) => Err(Error::Locked {
                holder: info.holder.to_string(),
                expires_at: info.expires_at,
            }),
            // Released between our attempt and the read: busy all the same.
            None => Err(Error::Locked {
                holder: "another runner".into(),
                expires_at: Utc::now(),
            }),
        }
    }

    /// Checks the lock is still ours and extends it; `Err(LockLost)` otherwise.
    pub(crate) async fn refresh(&self, fence: &Fence) -> Result<(), Error> {
        let now = bson::DateTime::now();
        let filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
            "expiresAt": { "$gt": now },
        };
        let update = doc! { "$set": { "heartbeatAt": now, "expiresAt": expiry(self.ttl) } };
        let result = self.coll.update_one(filter, update).await?;
        if result.matched_count == 1 {
            Ok(())
        } else {
            Err(Error::LockLost)
        }
    }

    async fn release(&self, fence: &Fence) -> Result<(), Error> {
        let now = bson::DateTime::now();
        let filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
        };
        self.coll.update_one(filter, doc! { "$set": freed(now) }).await?;
        Ok(())
    }

    /// Frees the lock whoever holds it, and bumps the generation so the old
    /// holder's writes are fenced off.
    pub(crate) async fn force_release(&self) -> Result<Option<LockInfo>, Error> {
        let now = bson::DateTime::now();
        let before = self
            .coll
            .find_one_and_update(
                doc! { "_id": &self.name },
                doc! { "$set": freed(now), "$inc": { "generation": 1_i64 } },
            )
            .return_document(ReturnDocument::Before)
            .await?;
        Ok(before.as_ref().and_then(LockInfo::from_document))
    }
}

/// A held lock. Its heartbeat keeps it alive; release it with
/// [`LockGuard::release`]. Dropping it releases it in the background.
#[derive(Debug)]
pub(crate) struct LockGuard {
    lock: Lock,
    fence: Fence,
    lost: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl LockGuard {
    fn start(lock: Lock, fence: Fence) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(lock.clone(), fence, lost.clone()));
        LockGuard {
            lock,
            fence,
            lost,
            heartbeat: Some(heartbeat),
        }
    }

    pub(crate) fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Proves the lock is still ours right before a tracking write.
    pub(crate) async fn check(&self) -> Result<(), Error> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::LockLost);
        }
        self.lock
            .refresh(&self.fence)
            .await
            .inspect_err(|_| self.lost.store(true, Ordering::SeqCst))
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

async fn heartbeat(lock: Lock, fence: Fence, lost: Arc<AtomicBool>) {
    let period = (lock.ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        match lock.refresh(&fence).await {
            Ok(()) => {}
            Err(Error::LockLost) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A transient error: the next beat or the next write's check decides.
            Err(_) => {}
        }
    }
}
