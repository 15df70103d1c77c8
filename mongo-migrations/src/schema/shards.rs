//! Through a `mongos`, which shards hold each index of a collection.
//!
//! `listIndexes` through a `mongos` answers from one shard (the one owning
//! the MinKey chunk, `src/mongo/s/commands/cluster_list_indexes_cmd.cpp`), and
//! a `createIndexes` that failed on one shard leaves the index built on the
//! others (nothing is rolled back, `cluster_create_indexes_cmd.cpp`). So an
//! index one listing shows may be missing on another shard, where a unique
//! index is then not enforced. `$indexStats` through a `mongos` answers one
//! document per index per shard that owns chunks, each with its `shard`
//! (`CommonMongodProcessInterface::getIndexStats`, `addShardName`), and
//! `building: true` while a build runs there: the manual's "Find
//! Inconsistent Indexes across Shards". Reading it needs the `indexStats`
//! action (not in `readWrite`): where it is refused, nothing is known.

use std::collections::{BTreeMap, BTreeSet};

use bson::{doc, Document};
use futures_util::TryStreamExt as _;
use mongodb::Database;

/// The indexes each shard holds, built, of one collection.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ShardIndexes {
    /// Every shard that answered (each lists at least `_id_`).
    shards: BTreeSet<String>,
    /// The shards where each index is built.
    built: BTreeMap<String, BTreeSet<String>>,
}

impl ShardIndexes {
    /// Reads `$indexStats` documents (through a `mongos`). A document
    /// without `shard` (a replica set's answer) counts as one shard, `""`.
    pub(crate) fn read(stats: &[Document]) -> Self {
        let mut out = ShardIndexes::default();
        for stat in stats {
            let shard = stat.get_str("shard").unwrap_or_default().to_string();
            out.shards.insert(shard.clone());
            let Ok(name) = stat.get_str("name") else { continue };
            if stat.get_bool("building").unwrap_or(false) {
                continue;
            }
            out.built.entry(name.to_string()).or_default().insert(shard);
        }
        out
    }

    /// The shards where the index `name` is not built (still building, or
    /// missing), in order; none when every shard has it.
    pub(crate) fn missing_on(&self, name: &str) -> Vec<&str> {
        let built = self.built.get(name);
        self.shards
            .iter()
            .filter(|s| built.is_none_or(|b| !b.contains(*s)))
            .map(String::as_str)
            .collect()
    }

    /// How many shards answered.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

/// `$indexStats` of `collection` read per shard; none where the user may
/// not run it or the server does not answer it (logged once per call).
pub(crate) async fn shard_indexes(db: &Database, collection: &str) -> Option<ShardIndexes> {
    let pipeline = vec![
        doc! { "$indexStats": {} },
        doc! { "$project": { "name": 1, "shard": 1, "building": 1 } },
    ];
    let read = async {
        db.collection::<Document>(collection)
            .aggregate(pipeline)
            .await?
            .try_collect::<Vec<_>>()
            .await
    };
    match read.await {
        Ok(stats) => Some(ShardIndexes::read(&stats)),
        Err(e) => {
            tracing::warn!(collection, error = %e, "cannot read which shards hold each index ($indexStats); trusting one shard's listing");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$indexStats` through a `mongos` of a collection on three shards,
    /// after a unique build that failed on `shard1` (a duplicate key there)
    /// and runs on `shard2`: documents as `getIndexStats` writes them
    /// (`name`, `key`, `host`, `accesses`, `shard`, `spec`, `building`).
    fn after_a_failed_build() -> Vec<Document> {
        let stat = |shard: &str, name: &str, building: bool| {
            let mut d = doc! {
                "name": name, "key": { name.trim_end_matches("_1"): 1 }, "host": format!("{shard}-a:27018"),
                "accesses": { "ops": 0i64, "since": bson::DateTime::from_millis(0) },
                "shard": shard, "spec": { "v": 2, "key": { "email": 1 }, "name": name },
            };
            if building {
                d.insert("building", true);
            }
            d
        };
        vec![
            stat("shard0", "_id_", false),
            stat("shard0", "email_1", false),
            stat("shard1", "_id_", false),
            stat("shard2", "_id_", false),
            stat("shard2", "email_1", true),
        ]
    }

    #[test]
    fn an_index_missing_or_building_on_a_shard_is_missing_there() {
        let found = ShardIndexes::read(&after_a_failed_build());
        assert_eq!(found.shard_count(), 3);
        assert_eq!(found.missing_on("email_1"), ["shard1", "shard2"]);
        assert_eq!(found.missing_on("_id_"), Vec::<&str>::new());
        assert_eq!(found.missing_on("nowhere"), ["shard0", "shard1", "shard2"]);
    }

    /// A replica set answers without `shard`: one shard, the index there.
    #[test]
    fn a_replica_set_s_answer_is_one_shard() {
        let stats = [
            doc! { "name": "_id_", "key": { "_id": 1 }, "host": "h:27017" },
            doc! { "name": "email_1", "key": { "email": 1 }, "host": "h:27017" },
        ];
        let found = ShardIndexes::read(&stats);
        assert_eq!(found.shard_count(), 1);
        assert!(found.missing_on("email_1").is_empty());
    }
}
