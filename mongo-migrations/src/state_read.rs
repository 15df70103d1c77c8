//! What a run read of the lock and the records before it took the lock:
//! handed from one process to the next (the CLI's check to the harness, so
//! the harness does not ask again), and compared, once the lock is taken,
//! with what the lock says happened since.

use bson::{Bson, Document};
use serde::{Deserialize, Serialize};

use crate::lock::LockInfo;
use crate::plan::Records;
use crate::{Error, MigrationStatus, Record};

/// The lock document and the tracking records, as read in that order, in
/// canonical extended JSON (every BSON type kept, so the next process reads
/// exactly what this one did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRead {
    /// Where it was read: the database, the tracking collection, the lock
    /// collection and the lock's name.
    origin: String,
    lock: Option<serde_json::Value>,
    records: Vec<serde_json::Value>,
    /// The lock said the tracking indexes were made, and the records were
    /// read through the unique one.
    #[serde(default)]
    indexed: bool,
}

impl StateRead {
    pub(crate) fn new(origin: String, read: &Read) -> Self {
        let json = |d: &Document| Bson::Document(d.clone()).into_canonical_extjson();
        StateRead {
            origin,
            lock: read.lock.as_ref().map(json),
            records: read.documents.iter().map(json).collect(),
            indexed: read.indexed,
        }
    }

    /// The read again, if it was made at `origin` while nobody held the lock
    /// (a holder's expiry would be judged now by a lease read earlier); else
    /// nothing, and the caller reads for itself.
    pub(crate) fn read_at(&self, origin: &str) -> Option<Read> {
        let doc = |v: &serde_json::Value| match Bson::try_from(v.clone()) {
            Ok(Bson::Document(d)) => Some(d),
            _ => None,
        };
        let lock = match &self.lock {
            Some(v) => Some(doc(v)?),
            None => None,
        };
        let documents = self.records.iter().map(doc).collect::<Option<Vec<_>>>()?;
        if self.origin != origin || lock.as_ref().is_some_and(crate::lock::held) {
            return None;
        }
        Read::new(lock, documents, self.indexed).ok()
    }
}

/// A read of the lock document, then the records, as the planner uses it.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    pub(crate) lock: Option<Document>,
    pub(crate) documents: Vec<Document>,
    pub(crate) records: Records,
    /// The lock said the tracking indexes were made, and the records were
    /// read through the unique one.
    pub(crate) indexed: bool,
}

impl Read {
    pub(crate) fn new(lock: Option<Document>, documents: Vec<Document>, indexed: bool) -> Result<Self, Error> {
        let records = crate::plan::index(documents.iter().map(Record::from_document).collect::<Result<_, _>>()?);
        Ok(Read {
            lock,
            documents,
            records,
            indexed,
        })
    }

    /// The lock's generation as read: 0 for no lock document. `None` for
    /// one this version does not understand.
    fn generation(&self) -> Option<i64> {
        match self.lock.as_ref().map(|d| d.get("generation")) {
            None | Some(None) => Some(0),
            Some(Some(Bson::Int64(n))) => Some(*n),
            Some(Some(Bson::Int32(n))) => Some(i64::from(*n)),
            Some(Some(_)) => None,
        }
    }

    /// Whether the lock, as read, was released by a holder that left
    /// nothing for the next one to fence: no holder, no plan, no unfenced
    /// plans of earlier holders. No lock document is not: its generation
    /// would start again at 1 if it had been deleted, and could not tell
    /// this holder's from one taken and released since the read.
    fn released_clean(&self) -> bool {
        let Some(doc) = &self.lock else {
            return false;
        };
        let empty = |field: &str| match doc.get(field) {
            None | Some(Bson::Null) => true,
            Some(Bson::Array(a)) => a.is_empty(),
            Some(_) => false,
        };
        empty("holder") && empty("plan") && empty("unfenced")
    }

    /// A claim (`planned` or `running`) nobody has fenced: what an earlier
    /// holder could still write to, or what a holder newer than the lock
    /// read wrote.
    fn has_unfenced_claim(&self) -> bool {
        self.records
            .values()
            .any(|r| matches!(r.status, MigrationStatus::Planned | MigrationStatus::Running) && r.fenced_by.is_none())
    }

    /// Whether a claim in these records was written by a holder newer than
    /// the lock as read: the lock was taken between the two reads.
    fn has_newer_claim(&self) -> bool {
        let Some(generation) = self.generation() else {
            return false;
        };
        self.records.values().any(|r| {
            matches!(r.status, MigrationStatus::Planned | MigrationStatus::Running)
                && r.fenced_by.is_none()
                && r.lock_generation.is_some_and(|g| g > generation)
        })
    }

    /// Whether these records need reading again before they are planned
    /// from: a `running` record the lock does not explain was either left
    /// by a runner that is gone, or written by one that took the lock
    /// after it was read; a claim newer than the lock is the second.
    pub(crate) fn unexplained(&self, lock: Option<&LockInfo>) -> bool {
        self.has_newer_claim()
            || self
                .records
                .values()
                .any(|r| r.status == MigrationStatus::Running && r.fenced_by.is_none() && !r.is_live(lock))
    }

    /// Whether the records read are the records now, for a holder that has
    /// just taken the lock as `generation` and inherited `inherited` plans:
    /// the lock was released clean when it was read (before the records),
    /// nobody took it since (this holder's generation is the next one), and
    /// no claim in the records is unfenced (nothing an earlier holder could
    /// still write). Only lock holders write records, and every earlier one
    /// can write only to its unfenced claims: so nothing has changed, and
    /// there is nothing to fence.
    pub(crate) fn still_current(&self, generation: i64, inherited: usize) -> bool {
        inherited == 0
            && self.released_clean()
            && self.generation().is_some_and(|g| g.checked_add(1) == Some(generation))
            && !self.has_unfenced_claim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn record(version: i64, status: &str, generation: i64, fenced: bool) -> Document {
        let mut d = doc! {
            "version": 20260101000000 + version,
            "name": format!("m{version}"),
            "status": status,
            "direction": "up",
            "batch": 1_i64,
            "lockHolder": { "id": uuid::Uuid::nil().to_string(), "generation": generation },
            "createdAt": bson::DateTime::from_millis(0),
            "updatedAt": bson::DateTime::from_millis(0),
        };
        if fenced {
            d.insert("fencedBy", generation + 1);
        }
        d
    }

    fn released(generation: i64) -> Document {
        doc! { "_id": "migrations", "holder": Bson::Null, "generation": generation, "plan": [], "unfenced": [] }
    }

    #[test]
    fn records_read_after_a_clean_release_are_current_for_the_next_generation_only() {
        let read = Read::new(Some(released(4)), vec![record(1, "completed", 4, false)], false).unwrap();
        assert!(read.still_current(5, 0));
        // Somebody took the lock between the read and this holder.
        assert!(!read.still_current(6, 0));
        assert!(!read.still_current(4, 0));
        // Plans inherited: they must be fenced.
        assert!(!read.still_current(5, 1));
    }

    #[test]
    fn no_lock_document_is_never_current() {
        let read = Read::new(None, Vec::new(), false).unwrap();
        assert!(!read.still_current(1, 0));
        assert!(!read.still_current(2, 0));
    }

    #[test]
    fn a_held_an_expired_or_a_forced_lock_is_not_clean() {
        let mut held = released(4);
        held.insert("holder", doc! { "id": uuid::Uuid::nil().to_string() });
        let mut planned = released(4);
        planned.insert("plan", vec![Bson::Int64(7)]);
        let mut forced = released(4);
        forced.insert("unfenced", vec![Bson::Int64(7)]);
        for lock in [held, planned, forced] {
            let read = Read::new(Some(lock.clone()), Vec::new(), false).unwrap();
            assert!(!read.still_current(5, 0), "{lock}");
        }
    }

    #[test]
    fn an_unfenced_claim_must_be_fenced_first() {
        for status in ["planned", "running"] {
            let read = Read::new(Some(released(4)), vec![record(1, status, 3, false)], false).unwrap();
            assert!(!read.still_current(5, 0), "{status}");
            let fenced = Read::new(Some(released(4)), vec![record(1, status, 3, true)], false).unwrap();
            assert!(fenced.still_current(5, 0), "{status} fenced");
        }
    }

    #[test]
    fn a_lock_this_version_cannot_read_is_never_current() {
        let mut odd = released(4);
        odd.insert("generation", "4");
        assert!(!Read::new(Some(odd), Vec::new(), false).unwrap().still_current(5, 0));
    }

    #[test]
    fn a_claim_newer_than_the_lock_read_asks_for_another_read() {
        let read = Read::new(Some(released(4)), vec![record(1, "planned", 5, false)], false).unwrap();
        assert!(read.unexplained(None));
        let old = Read::new(Some(released(4)), vec![record(1, "planned", 4, false)], false).unwrap();
        assert!(!old.unexplained(None));
    }

    #[test]
    fn the_state_handed_on_is_the_same_documents_where_it_was_read() {
        let lock = released(4);
        let records = vec![
            record(1, "completed", 4, false),
            doc! { "version": 20260101000002_i64, "name": "m2", "status": "completed", "direction": "up", "batch": 1_i32, "n": 1.5, "t": bson::Timestamp { time: 1, increment: 2 }, "createdAt": bson::DateTime::from_millis(0), "updatedAt": bson::DateTime::from_millis(0) },
        ];
        let read = Read::new(Some(lock.clone()), records.clone(), true).unwrap();
        let handed = StateRead::new("db.migrations".into(), &read);
        let json = serde_json::to_string(&handed).unwrap();
        let back: StateRead = serde_json::from_str(&json).unwrap();
        let again = back.read_at("db.migrations").expect("read where it was handed from");
        assert_eq!(
            (again.lock, again.documents, again.indexed),
            (Some(lock), records, true)
        );
        assert!(back.read_at("other.migrations").is_none(), "another database's read");
        let mut held = released(4);
        held.insert("holder", doc! { "id": uuid::Uuid::nil().to_string() });
        let read = Read::new(Some(held), Vec::new(), false).unwrap();
        let handed = StateRead::new("db.migrations".into(), &read);
        assert!(handed.read_at("db.migrations").is_none(), "a lock held when read");
    }
}
