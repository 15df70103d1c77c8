//! The tracking collection: one document per migration version, and the
//! fence that keeps a runner who lost its lock from writing to it.
//!
//! A run names the versions of its plan in the lock document when it takes
//! the lock, claims them as `planned` in one write, and only then proves it
//! holds the lock. The next holder (or force-unlock) fences every version a
//! lost holder named, whether its claim landed yet or not: it raises the
//! record's `fenceGen` (inserting a fenced placeholder where there is no
//! record), and a claim is conditional on no newer `fenceGen`. It also marks
//! all older `planned` and `running` claims fenced, and each later write of
//! a runner is conditional on its claim being unfenced: after the fence,
//! none of them lands.
//!
//! - `documents.rs`: the filters and fields the writes are made of;
//! - `claims.rs`: the fence, and the claims of a plan;
//! - `steps.rs`: the one write per step of a run;
//! - `admin.rs`: forget, resolve, accept-checksum.

mod admin;
mod claims;
mod documents;
mod steps;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

pub(crate) use claims::{Claim, Fenced};
pub(crate) use documents::running_claim;
pub(crate) use steps::{Finish, Outcome, Stepped};

use crate::record::{HistoryQuery, Record};
use crate::retry::Retry;
use crate::{Error, Version};

/// The tracking collection.
#[derive(Debug, Clone)]
pub(crate) struct Tracking {
    db: Database,
    coll: Collection<Document>,
    /// How its commands are retried over transient faults.
    retry: Retry,
}

/// The unique index on `version` the claims and the fence rely on.
const VERSION_INDEX: &str = "version_unique";

/// Runs `find` and decodes every document it returns.
async fn records(find: mongodb::action::Find<'_, Document>) -> Result<Vec<Record>, Error> {
    // One reply for the whole collection, not one per 101 documents.
    let docs: Vec<Document> = find.batch_size(100_000).await?.try_collect().await?;
    docs.iter().map(Record::from_document).collect()
}

impl Tracking {
    pub(crate) fn new(db: Database, coll: Collection<Document>, retry: Retry) -> Self {
        Tracking { db, coll, retry }
    }

    /// The collection, for the checkpoints of batches.
    pub(crate) fn collection(&self) -> Collection<Document> {
        self.coll.clone()
    }

    pub(crate) async fn ensure_indexes(&self) -> Result<(), Error> {
        // Besides preventing duplicates, the fence's upsert guard relies on it.
        let index = IndexModel::builder()
            .keys(doc! { "version": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name(VERSION_INDEX.to_string())
                    .build(),
            )
            .build();
        self.retry
            .idempotent(
                || "creating the tracking index".into(),
                || async {
                    self.coll.create_index(index.clone()).await?;
                    Ok(())
                },
            )
            .await
    }

    /// Every record's document, in version order. With `prove_index`, read
    /// through the unique version index (a hint), which proves it exists:
    /// `true` beside the documents when it did, and some were read. Where
    /// the server refuses the hint (no such index, or no collection), they
    /// are read without it.
    pub(crate) async fn load_documents(&self, prove_index: bool) -> Result<(Vec<Document>, bool), Error> {
        self.retry
            .idempotent(
                || "reading the tracking records".into(),
                || async {
                    // One reply for the whole collection, not one per 101 documents.
                    let find = || self.coll.find(doc! {}).sort(doc! { "version": 1 }).batch_size(100_000);
                    if prove_index {
                        match find().hint(mongodb::options::Hint::Name(VERSION_INDEX.into())).await {
                            Ok(cursor) => {
                                let docs: Vec<Document> = cursor.try_collect().await?;
                                let proved = !docs.is_empty();
                                return Ok((docs, proved));
                            }
                            // BadValue: "hint ... does not correspond to an existing index".
                            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 2) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok((find().await?.try_collect().await?, false))
                },
            )
            .await
    }

    /// Every record, in version order.
    pub(crate) async fn load(&self) -> Result<Vec<Record>, Error> {
        let (docs, _) = self.load_documents(false).await?;
        docs.iter().map(Record::from_document).collect()
    }

    /// The record of one version.
    pub(crate) async fn get(&self, version: Version) -> Result<Option<Record>, Error> {
        let doc = self
            .retry
            .idempotent(
                || format!("reading the record of {version}"),
                || async { Ok(self.coll.find_one(doc! { "version": version.as_i64() }).await?) },
            )
            .await?;
        doc.as_ref().map(Record::from_document).transpose()
    }

    pub(crate) async fn history(&self, query: &HistoryQuery) -> Result<Vec<Record>, Error> {
        let all = HistoryQuery::default();
        let query = if query.runs { &all } else { query };
        let filter = match query.status {
            Some(status) => doc! { "status": status.as_str() },
            None => doc! {},
        };
        let limit = query.limit.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.retry
            .idempotent(
                || "reading the history".into(),
                || {
                    let find = self
                        .coll
                        .find(filter.clone())
                        .sort(doc! { "updatedAt": -1, "version": -1 })
                        .skip(query.skip)
                        .limit(limit);
                    records(find)
                },
            )
            .await
    }
}
