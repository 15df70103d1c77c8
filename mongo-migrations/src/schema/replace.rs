//! Replacing an index whose options change (made unique, sparse, a TTL)
//! without leaving the collection without it: a unique index is checked for
//! duplicate keys before anything is dropped; a replacement on other keys,
//! or on the same keys under another name with other `unique` or `sparse`
//! (MongoDB 5.0+), is built before the old index is dropped; one that cannot
//! stand beside the old one is built right after the drop, and the old index
//! is built again if that build fails.

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt as _;
use mongodb::options::AggregateOptions;
use mongodb::Database;

use crate::schema::index::Index;
use crate::schema::indexes::{build, drop_listed, list_indexes, spec_of, Build, BuildProgress, IndexOutcome};
use crate::schema::SchemaError;

/// How many `_id`s of duplicates an error names.
const SAMPLE: usize = 5;

/// Documents that share the keys of a unique index to be built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Duplicates {
    /// Key values held by more than one document.
    pub values: u64,
    /// Documents that hold them.
    pub documents: u64,
    /// A few of those documents' `_id`s.
    pub sample: Vec<Bson>,
}

/// Replaces the index named `old` of `collection` with `new` (see the module
/// documentation). A rerun after a cut-off run finds `new` built and only
/// finishes the drop. Refused, with nothing changed, when `new` is unique and
/// documents share its keys.
pub async fn replace_index(
    db: &Database,
    collection: &str,
    old: &str,
    new: &Index,
    progress: Option<BuildProgress<'_>>,
) -> Result<IndexOutcome, SchemaError> {
    replace_index_with(db, collection, old, new, &Build::reporting(progress)).await
}

/// [`replace_index`], its build run as `how` says.
pub(crate) async fn replace_index_with(
    db: &Database,
    collection: &str,
    old: &str,
    new: &Index,
    how: &Build<'_>,
) -> Result<IndexOutcome, SchemaError> {
    let listed = list_indexes(db, collection).await?;
    let current = listed.iter().find(|l| l.get_str("name") == Ok(old)).cloned();
    if let Some(done) = listed.iter().find(|l| new.is(l) && new.differences(l).is_empty()) {
        let name = done.get_str("name").unwrap_or_default().to_string();
        if current.is_some() && name != old {
            drop_listed(db, collection, old).await?;
        }
        return Ok(IndexOutcome::Adopted { name });
    }
    if new.unique {
        let found = duplicates(db, collection, new).await?;
        if found.documents > 0 {
            return Err(SchemaError::Duplicates {
                collection: collection.into(),
                index: new.name(),
                keys: new.keys.keys().cloned().collect::<Vec<_>>().join(", "),
                values: found.values,
                documents: found.documents,
                sample: found
                    .sample
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let Some(current) = current else {
        return build(db, collection, new, how).await;
    };
    if !new.is(&current) {
        // Other keys: both can stand, the new one first.
        let built = build(db, collection, new, how).await?;
        drop_listed(db, collection, old).await?;
        return Ok(built);
    }
    if new.name() != old && !new.is_signature_on(&current, None) {
        // The same keys under another name, made unique or sparse: since
        // MongoDB 5.0 both can stand, the new one first. An older server
        // refuses the build (`IndexOptionsConflict`): then as on the same name.
        match build(db, collection, new, how).await {
            Ok(built) => {
                drop_listed(db, collection, old).await?;
                return Ok(built);
            }
            Err(SchemaError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    drop_listed(db, collection, old).await?;
    match build(db, collection, new, how).await {
        Ok(built) => Ok(built),
        Err(e) => {
            tracing::warn!(collection, index = old, error = %e, "the replacement failed: building the old index again");
            db.run_command(doc! { "createIndexes": collection, "indexes": [spec_of(&current)] })
                .await
                .map_err(|e| SchemaError::server("building the old index again", collection, e))?;
            Err(e)
        }
    }
}

/// The documents of `collection` that share the keys of `index` (within its
/// partial filter, under its collation), as a unique build would find them.
pub async fn duplicates(db: &Database, collection: &str, index: &Index) -> Result<Duplicates, SchemaError> {
    let failed = |e| SchemaError::server("looking for duplicate keys", collection, e);
    let mut options = AggregateOptions::builder().allow_disk_use(true).build();
    if let Some(collation) = &index.collation {
        options.collation =
            Some(bson::from_document(collation.clone()).map_err(|e| SchemaError::Json { message: e.to_string() })?);
    }
    let mut groups = db
        .collection::<Document>(collection)
        .aggregate(duplicates_pipeline(index))
        .with_options(options)
        .await
        .map_err(failed)?;
    let mut out = Duplicates::default();
    while let Some(group) = groups.try_next().await.map_err(failed)? {
        add_group(&mut out, &group);
    }
    Ok(out)
}

/// The aggregation that groups the documents a unique `index` would hold by
/// its keys and keeps the keys held more than once, in key order. Key paths become `k0`,
/// `k1`, ... (a group's `_id` takes no dotted names); a missing key groups as
/// `null`, as the index stores it, and a sparse index leaves out documents
/// that have none of its keys.
fn duplicates_pipeline(index: &Index) -> Vec<Document> {
    let mut pipeline = Vec::new();
    if let Some(filter) = &index.partial_filter {
        pipeline.push(doc! { "$match": filter.clone() });
    }
    if index.sparse {
        let any: Vec<Document> = index
            .keys
            .keys()
            .map(|k| doc! { k.as_str(): { "$exists": true } })
            .collect();
        pipeline.push(doc! { "$match": { "$or": any } });
    }
    let mut key = Document::new();
    for (i, path) in index.keys.keys().enumerate() {
        key.insert(format!("k{i}"), format!("${path}"));
    }
    pipeline.push(doc! { "$group": {
        "_id": key,
        "n": { "$sum": 1 },
        "first": { "$first": "$_id" },
        "last": { "$last": "$_id" },
    } });
    pipeline.push(doc! { "$match": { "n": { "$gt": 1 } } });
    // The error names the same documents every time.
    pipeline.push(doc! { "$sort": { "_id": 1 } });
    pipeline
}

/// Adds one group of [`duplicates_pipeline`] to `out`.
fn add_group(out: &mut Duplicates, group: &Document) {
    out.values += 1;
    out.documents += group.get("n").and_then(crate::schema::index_number).unwrap_or(0);
    for id in ["first", "last"].iter().filter_map(|k| group.get(*k)) {
        if out.sample.len() < SAMPLE {
            out.sample.push(id.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_groups_by_every_key_within_the_partial_filter() {
        let index = Index::new(doc! { "order.number": 1, "shop": -1 })
            .unique()
            .partial(doc! { "state": "open" });
        assert_eq!(
            duplicates_pipeline(&index),
            vec![
                doc! { "$match": { "state": "open" } },
                doc! { "$group": {
                    "_id": { "k0": "$order.number", "k1": "$shop" },
                    "n": { "$sum": 1 }, "first": { "$first": "$_id" }, "last": { "$last": "$_id" },
                } },
                doc! { "$match": { "n": { "$gt": 1 } } },
                doc! { "$sort": { "_id": 1 } },
            ]
        );
        let sparse = Index::new(doc! { "a": 1, "b": 1 }).unique().sparse();
        assert_eq!(
            duplicates_pipeline(&sparse)[0],
            doc! { "$match": { "$or": [{ "a": { "$exists": true } }, { "b": { "$exists": true } }] } }
        );
    }

    #[test]
    fn groups_add_up_to_values_documents_and_a_few_ids() {
        let mut out = Duplicates::default();
        add_group(&mut out, &doc! { "_id": { "k0": 1 }, "n": 3, "first": 10, "last": 12 });
        add_group(
            &mut out,
            &doc! { "_id": { "k0": 2 }, "n": 2_i64, "first": 20, "last": 21 },
        );
        add_group(
            &mut out,
            &doc! { "_id": { "k0": 3 }, "n": 2.0, "first": 30, "last": 31 },
        );
        assert_eq!(out.values, 3);
        assert_eq!(out.documents, 7);
        assert_eq!(out.sample, [10, 12, 20, 21, 30].map(Bson::Int32));
    }
}
