//! The lock document as read: its holder, its generation, its expiry.

use bson::{doc, Document};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::holder::{Holder, LockedBy};
use crate::{Error, Version};

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
    pub(super) fn from_document(doc: &Document, now: bson::DateTime) -> Option<Self> {
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
            holder: LockedBy {
                holder: Some(self.holder.clone()),
                run_at: None,
            },
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

#[derive(Debug)]
pub(crate) struct Released {
    /// The lock as it was, if it had a holder.
    pub(crate) lock: Option<LockInfo>,
    /// The generation after the release: it fences the old holders.
    pub(crate) generation: i64,
    /// Every version a fenced holder may have claimed.
    pub(crate) unfenced: Vec<Version>,
}

/// A lock just taken: the fence its claims carry, the versions this holder
/// may claim, those earlier holders may have claimed without being fenced,
/// and when the taking write was sent (its lease runs from then).
#[derive(Debug)]
pub(crate) struct Acquired {
    pub(crate) fence: Fence,
    pub(crate) plan: Vec<Version>,
    pub(crate) inherited: Vec<Version>,
    pub(crate) sent: std::time::Instant,
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
