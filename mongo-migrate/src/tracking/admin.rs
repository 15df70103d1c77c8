//! The tracking writes of the admin commands: forget (with its audit
//! copy), resolve and accept-checksum, each conditional on the record as read.

use bson::{doc, Document};
use mongodb::options::ReturnDocument;

use super::documents::holder_doc;
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
            let Some(original) = self.coll.find_one(filter.clone()).await? else {
                return Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                });
            };
            let entry = doc! {
                "action": "forget",
                "version": record.version.as_i64(),
                "at": now,
                "by": holder_doc(fence),
                "record": original,
                "removed": false,
            };
            let id = audit.insert_one(entry).await?.inserted_id;
            if self.coll.delete_one(filter).await?.deleted_count == 0 {
                return Err(Error::Conflict {
                    version: record.version,
                    name: record.name.clone(),
                });
            }
            audit
                .update_one(doc! { "_id": id }, doc! { "$set": { "removed": true } })
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
        self.rewrite(record, filter, update).await
    }

    /// Applies `update` to `record` if `filter` still matches it; returns it
    /// as written, or a conflict when it changed meanwhile.
    async fn rewrite(&self, record: &Record, filter: Document, update: Document) -> Result<Record, Error> {
        let written = self
            .coll
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await?;
        match written {
            Some(doc) => Record::from_document(&doc),
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
        self.rewrite(record, filter, update).await
    }
}
