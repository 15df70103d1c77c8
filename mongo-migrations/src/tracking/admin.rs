//! The tracking writes of the admin commands: forget (with its audit
//! copy), resolve and accept-checksum, each conditional on the record as read.

use bson::{doc, Document};
use mongodb::options::ReturnDocument;

use super::documents::{holder_doc, written_by};
use super::Tracking;
use crate::lock::Fence;
use crate::record::Record;
use crate::{Error, MigrationStatus};

impl Tracking {
    /// Copies each record to the audit collection, then deletes it if it is
    /// still as read and fenced by no newer holder. A record that changed
    /// meanwhile is a conflict (its audit entry stays, marked not removed).
    pub(crate) async fn forget(&self, records: &[&Record], fence: &Fence, now: bson::DateTime) -> Result<(), Error> {
        let audit = self.db.collection::<Document>(&format!("{}_audit", self.coll.name()));
        for record in records {
            let filter = doc! {
                "version": record.version.as_i64(),
                "updatedAt": bson::DateTime::from_chrono(record.updated_at),
                "fenceGen": { "$not": { "$gt": fence.generation } },
            };
            let during = || format!("forgetting {}", record.version);
            let original = self
                .retry
                .idempotent(during, || async { Ok(self.coll.find_one(filter.clone()).await?) })
                .await?;
            let Some(original) = original else {
                return Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                });
            };
            // Its own `_id`: a retried insert that landed the first time is
            // a duplicate key, not a second entry.
            let id = bson::oid::ObjectId::new();
            let entry = doc! {
                "_id": id,
                "action": "forget",
                "version": record.version.as_i64(),
                "at": now,
                "by": holder_doc(fence),
                "record": original,
                "removed": false,
            };
            self.retry
                .idempotent(during, || async {
                    match audit.insert_one(entry.clone()).await {
                        Err(e) if crate::update::is_duplicate_key(&e) => Ok(()),
                        other => other.map(drop).map_err(Error::from),
                    }
                })
                .await?;
            let (deleted, retried) = self
                .retry
                .run(during, || async {
                    Ok(self.coll.delete_one(filter.clone()).await?.deleted_count)
                })
                .await?;
            // After a lost reply the record may be gone by this very delete.
            let gone = deleted == 1 || retried && self.get(record.version).await?.is_none();
            if !gone {
                return Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                });
            }
            self.retry
                .idempotent(during, || async {
                    audit
                        .update_one(doc! { "_id": id }, doc! { "$set": { "removed": true } })
                        .await?;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// Replaces a completed record's checksum with `checksum`, keeping the
    /// old one in `acceptedChecksums`; returns the record as written.
    pub(crate) async fn accept_checksum(
        &self,
        record: &Record,
        checksum: &str,
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Record, Error> {
        let filter = doc! {
            "version": record.version.as_i64(),
            "status": MigrationStatus::Completed.as_str(),
            "updatedAt": bson::DateTime::from_chrono(record.updated_at),
            "fenceGen": { "$not": { "$gt": fence.generation } },
        };
        let update = doc! {
            "$set": { "checksum": checksum, "updatedAt": now, "lockHolder": holder_doc(fence) },
            "$push": { "acceptedChecksums": { "checksum": &record.checksum, "acceptedAt": now } },
        };
        self.rewrite(record, filter, update, fence, now).await
    }

    /// Applies `update` to `record` if `filter` still matches it; returns it
    /// as written, or a conflict when it changed meanwhile.
    async fn rewrite(
        &self,
        record: &Record,
        filter: Document,
        update: Document,
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Record, Error> {
        let during = || format!("the write of the record of {}", record.version);
        let (written, retried) = self
            .retry
            .run(during, || async {
                Ok(self
                    .coll
                    .find_one_and_update(filter.clone(), update.clone())
                    .return_document(ReturnDocument::After)
                    .await?)
            })
            .await?;
        match written {
            Some(doc) => Record::from_document(&doc),
            // After a lost reply: this runner's own write, landed.
            None if retried => match self.get(record.version).await? {
                Some(r) if written_by(&r, fence, now) => Ok(r),
                _ => Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                }),
            },
            None => Err(Error::Conflict {
                version: record.version,
                name: record.name.clone(),
            }),
        }
    }

    /// Marks a blocked record as applied or as pending again; returns it as written.
    pub(crate) async fn resolve(
        &self,
        record: &Record,
        to: MigrationStatus,
        fence: &Fence,
        now: bson::DateTime,
    ) -> Result<Record, Error> {
        let filter = doc! {
            "version": record.version.as_i64(),
            "updatedAt": bson::DateTime::from_chrono(record.updated_at),
            "fenceGen": { "$not": { "$gt": fence.generation } },
        };
        let mut set = doc! {
            "status": to.as_str(),
            "updatedAt": now,
            "lockHolder": holder_doc(fence),
            "metadata.resolvedAt": now,
            "metadata.resolvedFrom": record.status.as_str(),
        };
        if to == MigrationStatus::Completed && record.applied_at.is_none() {
            set.insert("appliedAt", now);
        }
        let update = doc! { "$set": set, "$unset": { "fencedBy": "", "fencedAt": "" } };
        self.rewrite(record, filter, update, fence, now).await
    }
}
