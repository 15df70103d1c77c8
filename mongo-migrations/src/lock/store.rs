//! The lock document's writes: acquire, refresh, extend, release, and
//! force-release, each one conditional round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use chrono::Utc;
use mongodb::options::ReturnDocument;
use mongodb::Collection;

use super::info::{Acquired, Fence, LockInfo, Released};
use crate::holder::{Holder, LockedBy};
use crate::retry::Retry;
use crate::server::{Clock, Server};
use crate::update::is_duplicate_key;
use crate::{Error, Version};

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

/// The lock document's field naming the tracking collection whose indexes
/// the runners that took the lock made first: later runs read it with the
/// lock, prove the unique index with their read of the records, and do not
/// make them again.
const INDEXED: &str = "trackingIndexed";

/// Whether the lock document `doc` names a holder (live or expired): a
/// released lock's `holder` is null.
pub(crate) fn held(doc: &Document) -> bool {
    !matches!(doc.get("holder"), None | Some(Bson::Null))
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
    pub(super) ttl: Duration,
    pub(super) server: Server,
    /// The tracking collection whose indexes a lock taken vouches for.
    tracking: String,
    /// The lock document, as last read, says the tracking indexes exist.
    indexed: Arc<AtomicBool>,
}

/// How long a release is retried over transient faults.
const RELEASE_WINDOW: Duration = Duration::from_secs(5);

/// How far apart two `mongos` routers' clocks may be for the lease to stay
/// exclusive: each router judges a lease's expiry by its own clock (`$$NOW`
/// there is the router's, `src/mongo/db/pipeline/variables.cpp`), so a
/// runner behind a router that is ahead takes over early by that much.
/// Through a `mongos`, a runner acts on a proof that much less long.
/// Routers' clocks kept by NTP are milliseconds apart.
pub(crate) const MAX_ROUTER_SKEW: Duration = Duration::from_secs(5);

/// The lease a proof gives: nine tenths of `ttl`; through a `mongos`, less
/// [`MAX_ROUTER_SKEW`] (at least half the TTL).
pub(crate) fn lease_length(ttl: Duration, mongos: bool) -> Duration {
    let lease = ttl.mul_f64(0.9);
    match mongos {
        false => lease,
        true => lease.saturating_sub(MAX_ROUTER_SKEW).max(ttl / 2),
    }
}

/// A free lock document: no holder, already expired. `acquire` matches either.
fn freed(now: bson::DateTime) -> Document {
    doc! { "holder": Bson::Null, "expiresAt": now, "releasedAt": now, "plan": [] }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl Lock {
    /// How long a proof of the lock lets this runner act without another:
    /// nine tenths of the TTL, less [`MAX_ROUTER_SKEW`] through a `mongos`.
    pub(super) fn lease(&self) -> Duration {
        lease_length(self.ttl, self.server.probed().is_some_and(|i| i.mongos))
    }

    pub(crate) fn new(coll: Collection<Document>, name: String, ttl: Duration, server: Server, tracking: &str) -> Self {
        Lock {
            coll,
            name,
            ttl,
            server,
            tracking: tracking.to_string(),
            indexed: Arc::default(),
        }
    }

    /// Whether the last read before the lock found that a runner made the
    /// tracking indexes (and dropped the old lock index) before it took the
    /// lock, and proved the unique index there: every lock taken says so, as
    /// only a runner that made them takes one (see [`Lock::acquire`]).
    pub(crate) fn indexes_made(&self) -> bool {
        self.indexed.load(Ordering::SeqCst)
    }

    /// The lock document, retried over transient faults.
    pub(crate) async fn read(&self) -> Result<Option<Document>, Error> {
        self.server
            .retry
            .idempotent(
                || "reading the lock".into(),
                || async { Ok(self.coll.find_one(doc! { "_id": &self.name }).await?) },
            )
            .await
    }

    /// Whether the lock document `doc` says a runner made the tracking
    /// indexes before it took the lock.
    pub(crate) fn says_indexed(&self, doc: Option<&Document>) -> bool {
        doc.is_some_and(|d| d.get_str(INDEXED) == Ok(self.tracking.as_str()))
    }

    /// Notes whether the tracking indexes are known to exist: the lock says
    /// so and the read of the records proved the unique one (see
    /// `Migrator::read_state`).
    pub(crate) fn set_indexes_made(&self, made: bool) {
        self.indexed.store(made, Ordering::SeqCst);
    }

    /// One conditional update of the lock document, retried over transient
    /// faults (each is idempotent: it sets values, or adds to a set); the
    /// documents it matched.
    async fn write(
        &self,
        during: &str,
        filter: Document,
        update: mongodb::options::UpdateModifications,
    ) -> Result<u64, Error> {
        self.server
            .retry
            .idempotent(
                || during.to_string(),
                || async {
                    Ok(self
                        .coll
                        .update_one(filter.clone(), update.clone())
                        .await?
                        .matched_count)
                },
            )
            .await
    }

    /// Earlier versions made a TTL index on `expiresAt`, which deletes
    /// released and expired lock documents and so restarts their generation
    /// counter. The lock document is one small document: it stays.
    pub(crate) async fn drop_ttl_index(&self) -> Result<(), Error> {
        self.server
            .retry
            .idempotent(|| "dropping the old lock index".into(), || async {
                match self.coll.drop_index("expiresAt_ttl").await {
                    Ok(()) => Ok(()),
                    // IndexNotFound, NamespaceNotFound.
                    Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if matches!(c.code, 26 | 27)) => {
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }

    pub(crate) async fn status(&self) -> Result<Option<LockInfo>, Error> {
        let doc = self.read().await?;
        self.info_of(doc.as_ref()).await
    }

    /// The lock as `doc` says, judged by the server's clock. A lock without
    /// a holder needs no clock, so none is asked for: a free lock costs one
    /// read.
    pub(crate) async fn info_of(&self, doc: Option<&Document>) -> Result<Option<LockInfo>, Error> {
        let Some(doc) = doc.filter(|d| held(d)) else {
            return Ok(None);
        };
        let clock = self.server.clock().await?;
        Ok(LockInfo::from_document(doc, clock.now()))
    }

    /// Takes the lock in one conditional upsert: it matches only a free or
    /// expired lock document (by the server's clock), and a held one makes
    /// the upsert's insert fail on the `_id` key. `plan` names every version
    /// this holder may claim (see `LockGuard::extend` for more); the plans
    /// of earlier holders move to `unfenced`. What was taken is data: the
    /// guard that holds it is made by `LockGuard::acquire`. Called only once
    /// the tracking indexes exist (`Migrator::ensure_indexes`, or a lock
    /// read that said so): the lock taken says so too.
    pub(crate) async fn acquire(&self, reason: &str, plan: &[Version]) -> Result<Acquired, Error> {
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
            INDEXED: &self.tracking,
        } }];
        let sent = Instant::now();
        // Retried over transient faults: an attempt that landed before its
        // reply was lost makes the next one meet this runner's own lock, a
        // duplicate key, which the lock document then shows as ours.
        let result = self
            .server
            .retry
            .idempotent(
                || "taking the lock".into(),
                || async {
                    match self
                        .coll
                        .find_one_and_update(filter.clone(), update.clone())
                        .upsert(true)
                        .return_document(ReturnDocument::After)
                        .await
                    {
                        Err(e) if is_duplicate_key(&e) => Ok(None),
                        other => Ok(other?),
                    }
                },
            )
            .await?;
        match result {
            Some(doc) => Ok(self.acquired(&holder, &doc, plan, sent)),
            // A held lock (the duplicate key), or some servers' answer to a
            // raced upsert: the lock document tells whether this runner won.
            None => self.busy_unless_ours(&holder, plan, sent).await,
        }
    }

    fn acquired(&self, holder: &Holder, doc: &Document, plan: &[Version], sent: Instant) -> Acquired {
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
        Acquired {
            fence,
            plan: plan.to_vec(),
            inherited: versions(doc, "unfenced"),
            sent,
        }
    }

    async fn busy_unless_ours(&self, holder: &Holder, plan: &[Version], sent: Instant) -> Result<Acquired, Error> {
        let doc = self.read().await?;
        let ours = doc.as_ref().is_some_and(|d| {
            d.get_document("holder")
                .is_ok_and(|h| h.get_str("id") == Ok(holder.id.to_string().as_str()))
        });
        match doc {
            Some(doc) if ours => Ok(self.acquired(holder, &doc, plan, sent)),
            _ => match self.status().await? {
                Some(info) => Err(info.busy()),
                // Released between our attempt and the read: busy all the same.
                None => Err(Error::Locked {
                    holder: LockedBy {
                        holder: None,
                        run_at: None,
                    },
                    expires_at: Utc::now(),
                }),
            },
        }
    }

    /// Proves the lock is still ours and unexpired by the server's clock,
    /// and extends it; `false` when it is not ours any more.
    pub(super) async fn refresh(&self, fence: &Fence, clock: &Clock) -> Result<bool, Error> {
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
            self.write("refreshing the lock", filter, update.into()).await?
        } else {
            filter.insert("expiresAt", doc! { "$gt": clock.now() });
            let update = doc! { "$set": { "heartbeatAt": clock.now(), "expiresAt": clock.after(self.ttl) } };
            self.write("refreshing the lock", filter, update.into()).await?
        };
        Ok(result == 1)
    }

    /// Frees the lock if this holder still has it. `fenced`: this holder
    /// fenced the plans it inherited, so nobody needs to again.
    pub(super) async fn release(&self, fence: &Fence, fenced: bool) -> Result<(), Error> {
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
        // Briefly: a run that ends on a lost server does not wait for it
        // again here; an unreleased lock expires by itself.
        let retry = Retry {
            window: self.server.retry.window.min(RELEASE_WINDOW),
        };
        retry
            .idempotent(
                || "releasing the lock".into(),
                || async {
                    self.coll
                        .update_one(filter.clone(), doc! { "$set": set.clone() })
                        .await?;
                    Ok(())
                },
            )
            .await
    }

    /// Adds versions to the plan of a held lock; `false` if it is not ours.
    pub(super) async fn extend(&self, fence: &Fence, more: &[Version]) -> Result<bool, Error> {
        let filter = doc! {
            "_id": &self.name,
            "holder.id": fence.holder_id.to_string(),
            "generation": fence.generation,
        };
        let update = doc! { "$addToSet": { "plan": { "$each": version_array(more) } } };
        Ok(self.write("extending the lock's plan", filter, update.into()).await? == 1)
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
            .server
            .retry
            .idempotent(
                || "releasing the lock".into(),
                || async {
                    Ok(self
                        .coll
                        .find_one_and_update(doc! { "_id": &self.name }, update.clone())
                        .return_document(ReturnDocument::Before)
                        .await?)
                },
            )
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
        self.write(
            "clearing the fenced plans",
            filter,
            doc! { "$set": { "unfenced": [] } }.into(),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod lease_tests {
    use super::{lease_length, MAX_ROUTER_SKEW};
    use std::time::Duration;

    /// Through a `mongos`, a runner acts on a proof for less than the TTL
    /// less the routers' clock skew it allows: another runner behind a
    /// router up to `MAX_ROUTER_SKEW` ahead cannot take over while it acts.
    #[test]
    fn a_lease_through_a_mongos_leaves_room_for_the_routers_clocks() {
        let ttl = Duration::from_secs(60);
        assert_eq!(lease_length(ttl, false), Duration::from_secs(54));
        assert_eq!(lease_length(ttl, true), Duration::from_secs(49));
        assert!(lease_length(ttl, true) + MAX_ROUTER_SKEW < ttl);
        // A short TTL keeps half of it to act on.
        assert_eq!(lease_length(Duration::from_secs(6), true), Duration::from_secs(3));
    }
}
