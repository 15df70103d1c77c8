//! The lock document's writes: acquire, refresh, extend, release, and
//! force-release, each one conditional round trip.

use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use chrono::Utc;
use mongodb::options::ReturnDocument;
use mongodb::Collection;

use super::guard::LockGuard;
use super::info::{Fence, LockInfo, Released};
use crate::holder::{Holder, LockedBy};
use crate::server::{is_duplicate_key, Clock, Server};
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
        self.coll.update_one(filter, doc! { "$set": set }).await?;
        Ok(())
    }

    /// Adds versions to the plan of a held lock; `false` if it is not ours.
    pub(super) async fn extend(&self, fence: &Fence, more: &[Version]) -> Result<bool, Error> {
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
