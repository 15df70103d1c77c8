//! Drift: where the database's schema is not the declared one, for `check`
//! with a URI. A scheduled `check` catches an index made or dropped by hand,
//! a validator changed in a shell, and documents that violate an enforced
//! validator. [`compare`] is pure; [`drift`] reads the database.

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt as _;
use mongodb::Database;
use serde::{Deserialize, Serialize};

use crate::schema::index::{is_hidden, pair, same_document, same_unordered, same_value_unordered};
use crate::schema::shards::{shard_indexes, ShardIndexes};
use crate::schema::{count_violators, list_indexes, Collection, SchemaError};

/// One difference between the database and the declared schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Drift {
    /// The collection.
    pub collection: String,
    /// What differs.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// The state between a change's two deploy phases (a validator staged,
    /// an index hidden on its way out): the post-deploy phase ends it.
    #[serde(default)]
    pub pending: bool,
}

fn finding(collection: &str, message: String, hint: &str) -> Drift {
    Drift {
        collection: collection.into(),
        message,
        hint: hint.into(),
        pending: false,
    }
}

fn between_phases(collection: &str, message: String, hint: &str) -> Drift {
    Drift {
        pending: true,
        ..finding(collection, message, hint)
    }
}

/// Where the validator the database has (`listed`) differs from the
/// declared one, for a person: each key of the schema that differs, and
/// within `properties`, each property added, missing or changed.
pub(crate) fn validator_differences(declared: &Document, listed: &Document) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&str> = declared.keys().chain(listed.keys()).map(String::as_str).collect();
    for key in keys {
        match (declared.get(key), listed.get(key)) {
            (Some(d), Some(l)) if same_value_unordered(d, l) => {}
            (Some(Bson::Document(d)), Some(Bson::Document(l))) if key == "properties" => {
                let names: std::collections::BTreeSet<&str> = d.keys().chain(l.keys()).map(String::as_str).collect();
                for property in names {
                    match (d.get(property), l.get(property)) {
                        (Some(a), Some(b)) if !same_value_unordered(a, b) => {
                            out.push(format!("property `{property}`: declared {a}, the database has {b}"))
                        }
                        (Some(_), None) => {
                            out.push(format!("property `{property}` is declared, not in the database's"))
                        }
                        (None, Some(_)) => {
                            out.push(format!("property `{property}` is in the database's, not declared"))
                        }
                        _ => {}
                    }
                }
            }
            (Some(d), Some(l)) => out.push(format!("`{key}`: declared {d}, the database has {l}")),
            (Some(_), None) => out.push(format!("`{key}` is declared, not in the database's")),
            (None, Some(_)) => out.push(format!("`{key}` is in the database's, not declared")),
            (None, None) => {}
        }
    }
    out
}

/// The differences between `declared` and the collection as the server
/// lists it: `options` from `listCollections` (`None`: no such collection)
/// and `indexes` from `listIndexes`. Violators are not counted here.
pub fn compare(declared: &Collection, options: Option<&Document>, indexes: &[Document]) -> Vec<Drift> {
    compare_sharded(declared, options, indexes, &Sharding::default())
}

/// What a `mongos` tells of a sharded collection beyond its listing.
#[derive(Debug, Default)]
pub(crate) struct Sharding {
    /// Its shard key (its `config.collections` document's `key`).
    pub(crate) key: Option<Document>,
    /// Which shards hold each index (`$indexStats`).
    pub(crate) indexes: Option<ShardIndexes>,
}

/// [`compare`] of a sharded collection: the index that supports the shard
/// key is the cluster's, not drift, declared or not; a declared index
/// missing on some shards is drift (a build that failed there).
pub(crate) fn compare_sharded(
    declared: &Collection,
    options: Option<&Document>,
    indexes: &[Document],
    sharding: &Sharding,
) -> Vec<Drift> {
    let shard_key = sharding.key.as_ref();
    let name = declared.name.as_str();
    let Some(options) = options else {
        return vec![finding(
            name,
            format!("`{name}` is declared but does not exist"),
            "run the migration that creates it (`up`), or generate one with `cargo mongo-migrate diff`",
        )];
    };
    // An index built without a collation on a collection that has a
    // default one inherits it (the manual's "Collation": "indexes inherit
    // the collection's default collation").
    let default_collation = options.get_document("collation").ok();
    let mut out = Vec::new();
    let paired = pair(&declared.indexes, indexes, default_collation);
    for (index, found) in declared.indexes.iter().zip(&paired) {
        match found {
            None => out.push(finding(
                name,
                format!("the index `{}` ({}) is declared but missing", index.name(), index.keys),
                "apply the migration that builds it, or rebuild it if it was dropped by hand",
            )),
            Some(listed) => {
                let listed_name = listed.get_str("name").unwrap_or_default();
                if let Some(shards) = &sharding.indexes {
                    let missing = shards.missing_on(listed_name);
                    if !missing.is_empty() {
                        out.push(finding(
                            name,
                            format!(
                                "the index `{listed_name}` is built on {} of {} shards: missing on {}",
                                shards.shard_count() - missing.len(),
                                shards.shard_count(),
                                missing.join(", ")
                            ),
                            "a build failed or still runs there: send its `createIndexes` again through the mongos (the shards that have it answer that it exists), after fixing what failed (duplicate keys)",
                        ));
                    }
                }
                let mut differences = index.differences(listed);
                if is_hidden(listed) != index.hidden {
                    differences.push("hidden");
                }
                if !differences.is_empty() {
                    out.push(finding(
                        name,
                        format!(
                            "the index `{}` differs from its declaration in {}",
                            listed.get_str("name").unwrap_or_default(),
                            differences.join(", ")
                        ),
                        "undo the change by hand, or declare what the database has and run `cargo mongo-migrate diff`",
                    ));
                }
            }
        }
    }
    for listed in indexes {
        let listed_name = listed.get_str("name").unwrap_or_default();
        if listed_name == "_id_" || paired.iter().flatten().any(|p| std::ptr::eq(*p, listed)) {
            continue;
        }
        let key = listed.get_document("key").ok();
        if let (Some(key), Some(shard_key)) = (key, shard_key) {
            if same_document(key, shard_key) {
                continue;
            }
        }
        if is_hidden(listed) {
            out.push(between_phases(
                name,
                format!("the index `{listed_name}` is hidden and no longer declared: on its way out"),
                "apply the post-deploy migration that drops it (`up --phase post`); if none does, drop it with `ctx.drop_hidden_index` in one",
            ));
            continue;
        }
        out.push(finding(
            name,
            format!(
                "the index `{listed_name}` ({}) is not declared",
                listed.get_document("key").cloned().unwrap_or_default()
            ),
            "declare it on the type, or drop it (hide it first) in a migration",
        ));
    }
    let validator = options
        .get_document("validator")
        .ok()
        .and_then(|v| v.get_document("$jsonSchema").ok());
    let action = options.get_str("validationAction").unwrap_or("error");
    let level = options.get_str("validationLevel").unwrap_or("strict");
    match (&declared.validator, validator) {
        (None, None) => {}
        (None, Some(_)) => out.push(finding(
            name,
            format!("`{name}` has a validator that is not declared"),
            "declare it, or remove it in a migration",
        )),
        (Some(_), None) => out.push(finding(
            name,
            format!("`{name}` has no validator; one is declared"),
            "apply the migrations that set it (`up --phase pre`, then `up --phase post` after the deploy)",
        )),
        (Some(declared_schema), Some(listed)) => {
            if !same_unordered(declared_schema, listed) {
                out.push(finding(
                    name,
                    format!(
                        "the validator of `{name}` differs from the declared one: {}",
                        validator_differences(declared_schema, listed).join("; ")
                    ),
                    "if the declaration changed, `cargo mongo-migrate diff <name>` writes the migration; if the database was changed by hand (`diff` then has nothing to write), put the declared one back with `stage_validator` and `enforce_validator` in a migration",
                ));
            } else if action != "error" {
                out.push(between_phases(
                    name,
                    format!("the validator of `{name}` is staged (`validationAction: {action}`), not enforced"),
                    "apply the post-deploy migration that enforces it (`up --phase post`)",
                ));
            }
            if level != declared.validation_level.as_str() {
                out.push(finding(
                    name,
                    format!(
                        "the validator of `{name}` is at level `{level}`; `{}` is declared",
                        declared.validation_level.as_str()
                    ),
                    "generate the migration that sets it with `cargo mongo-migrate diff`",
                ));
            }
        }
    }
    out
}

/// The drift of each declared collection from the database, counting the
/// documents that violate an enforced validator (a batched scan).
pub async fn drift(db: &Database, declared: &[Collection]) -> Result<Vec<Drift>, SchemaError> {
    let mut out = Vec::new();
    let sharded = crate::schema::indexes::topology(db).await? == crate::schema::indexes::Topology::Mongos;
    for collection in declared {
        let name = collection.name.as_str();
        let failed = |e| SchemaError::server("listing the collections", name, e);
        let listed: Vec<Document> = db
            .run_cursor_command(doc! { "listCollections": 1, "filter": { "name": name } })
            .await
            .map_err(failed)?
            .try_collect()
            .await
            .map_err(failed)?;
        let options = listed
            .first()
            .map(|c| c.get_document("options").cloned().unwrap_or_default());
        let indexes = list_indexes(db, name).await?;
        let sharding = match sharded && options.is_some() {
            true => Sharding {
                key: shard_key(db, name).await,
                indexes: shard_indexes(db, name).await,
            },
            false => Sharding::default(),
        };
        let found = compare_sharded(collection, options.as_ref(), &indexes, &sharding);
        let diverged = !found.is_empty();
        out.extend(found);
        let enforced = options
            .as_ref()
            .is_some_and(|o| o.get_str("validationAction").unwrap_or("error") == "error");
        if let (Some(schema), true, false) = (&collection.validator, enforced, diverged) {
            let violations = count_violators(db, name, schema).await?;
            if violations.count > 0 {
                let sample: Vec<String> = violations.sample.iter().map(Bson::to_string).collect();
                out.push(finding(
                    name,
                    format!(
                        "{} documents of `{name}` violate its enforced validator (for example _id {})",
                        violations.count,
                        sample.join(", ")
                    ),
                    "they were written before it was enforced, or with `bypassDocumentValidation`: fix them in a data migration",
                ));
            }
        }
    }
    Ok(out)
}

/// The shard key of `db.collection` through a `mongos`, from
/// `config.collections` (`{_id: "db.coll", key: {..}, ..}`, the manual's
/// "config.collections"); none for an unsharded collection, or where the
/// user may not read `config` (then the index is reported as any other).
async fn shard_key(db: &Database, collection: &str) -> Option<Document> {
    let namespace = format!("{}.{collection}", db.name());
    let config = db.client().database("config").collection::<Document>("collections");
    let found = config.find_one(doc! { "_id": namespace }).await.ok()??;
    found.get_document("key").ok().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Index, ValidationLevel};

    /// Through a `mongos`, `listIndexes` of a sharded collection lists the
    /// index that supports its shard key (`{customerId: 1}` here, as
    /// `config.collections` gives it with a double); it is not drift.
    /// On a collection with a default collation, an index declared without
    /// one is listed with the collection's: the same index, not one missing
    /// and one undeclared.
    #[test]
    fn an_index_that_inherited_the_collection_s_collation_is_the_declared_one() {
        let french = doc! { "locale": "fr", "caseLevel": false, "strength": 3, "version": "57.1" };
        let mut options = enforced();
        options.insert("collation", french.clone());
        let indexes = vec![
            doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_", "collation": french.clone() },
            doc! { "v": 2, "key": { "email": 1.0 }, "name": "by_email", "unique": true, "collation": french },
        ];
        assert_eq!(compare(&users(), Some(&options), &indexes), []);
        // Without the collection's default, that collation is drift.
        assert_eq!(compare(&users(), Some(&enforced()), &indexes).len(), 2);
    }

    fn keyed(key: Document) -> Sharding {
        Sharding {
            key: Some(key),
            indexes: None,
        }
    }

    #[test]
    fn the_shard_key_index_is_not_reported_as_undeclared() {
        let mut indexes = listed();
        indexes.push(doc! { "v": 2, "key": { "customerId": 1 }, "name": "customerId_1" });
        let shard_key = doc! { "customerId": 1.0 };
        assert_eq!(
            compare_sharded(&users(), Some(&enforced()), &indexes, &keyed(shard_key)),
            []
        );
        assert_eq!(
            messages(compare_sharded(
                &users(),
                Some(&enforced()),
                &indexes,
                &Sharding::default()
            )),
            ["the index `customerId_1` ({ \"customerId\": 1 }) is not declared"]
        );
        // Another shard key: the index is drift again.
        let other = doc! { "region": 1 };
        assert_eq!(
            compare_sharded(&users(), Some(&enforced()), &indexes, &keyed(other)).len(),
            1
        );
    }

    /// Through a `mongos`, the one shard `listIndexes` reads has the unique
    /// index; `$indexStats` (one document per index per shard, with `shard`,
    /// `getIndexStats`) shows it missing on `shard1`, where its build failed
    /// on a duplicate key and nothing was rolled back
    /// (`cluster_create_indexes_cmd.cpp`): drift, named by shard.
    #[test]
    fn a_declared_index_missing_on_a_shard_is_drift() {
        let stat = |shard: &str, name: &str| doc! { "name": name, "host": "h:27018", "shard": shard };
        let stats = [
            stat("shard0", "_id_"),
            stat("shard0", "by_email"),
            stat("shard1", "_id_"),
        ];
        let sharding = Sharding {
            key: None,
            indexes: Some(ShardIndexes::read(&stats)),
        };
        assert_eq!(
            messages(compare_sharded(&users(), Some(&enforced()), &listed(), &sharding)),
            ["the index `by_email` is built on 1 of 2 shards: missing on shard1"]
        );
        let everywhere = [
            stats[0].clone(),
            stats[1].clone(),
            stats[2].clone(),
            stat("shard1", "by_email"),
        ];
        let sharding = Sharding {
            key: None,
            indexes: Some(ShardIndexes::read(&everywhere)),
        };
        assert_eq!(compare_sharded(&users(), Some(&enforced()), &listed(), &sharding), []);
    }

    #[test]
    fn a_validator_that_differs_says_where() {
        let declared = doc! { "bsonType": "object", "required": ["email", "name"],
        "properties": { "email": { "bsonType": "string" }, "name": { "bsonType": "string" } } };
        let listed = doc! { "required": ["email"], "bsonType": "object",
        "properties": { "email": { "bsonType": "int" }, "legacy": { "bsonType": "string" } } };
        assert_eq!(
            validator_differences(&declared, &listed),
            [
                r#"property `email`: declared { "bsonType": "string" }, the database has { "bsonType": "int" }"#,
                "property `legacy` is in the database's, not declared",
                "property `name` is declared, not in the database's",
                r#"`required`: declared ["email", "name"], the database has ["email"]"#,
            ]
        );
        assert_eq!(validator_differences(&declared, &declared), Vec::<String>::new());
    }

    fn users() -> Collection {
        Collection::new("users")
            .validator(doc! { "bsonType": "object", "required": ["email"], "properties": { "email": { "bsonType": "string" } } })
            .index(Index::new(doc! { "email": 1 }).unique())
    }

    fn enforced() -> Document {
        // As the server lists it, keys in another order: the same schema.
        doc! {
            "validator": { "$jsonSchema": { "properties": { "email": { "bsonType": "string" } }, "required": ["email"], "bsonType": "object" } },
            "validationLevel": "strict",
            "validationAction": "error",
        }
    }

    fn listed() -> Vec<Document> {
        vec![
            doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
            doc! { "v": 2, "key": { "email": 1.0 }, "name": "by_email", "unique": true },
        ]
    }

    fn messages(d: Vec<Drift>) -> Vec<String> {
        d.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn the_declared_schema_matches_by_identity_and_unordered_schema() {
        assert_eq!(compare(&users(), Some(&enforced()), &listed()), []);
    }

    /// Since MongoDB 5.0, `{email: 1}` and `{email: 1}, unique` stand side
    /// by side (`compareIndexOptions`, `src/mongo/db/catalog/index_descriptor.cpp`):
    /// both declared, both listed, no drift; one of them dropped by hand is
    /// the one reported missing, and the other's options are not said to differ.
    #[test]
    fn two_indexes_on_the_same_keys_one_unique_are_each_their_own() {
        let both = users().index(Index::new(doc! { "email": 1 }).named("email_plain"));
        let mut indexes = listed();
        indexes.insert(1, doc! { "v": 2, "key": { "email": 1 }, "name": "email_plain" });
        assert_eq!(compare(&both, Some(&enforced()), &indexes), []);
        let without_plain = listed();
        assert_eq!(
            messages(compare(&both, Some(&enforced()), &without_plain)),
            ["the index `email_plain` ({ \"email\": 1 }) is declared but missing"]
        );
        // Only the unique one declared: the plain one is undeclared, and the
        // unique one is not said to differ.
        assert_eq!(
            messages(compare(&users(), Some(&enforced()), &indexes)),
            ["the index `email_plain` ({ \"email\": 1 }) is not declared"]
        );
    }

    #[test]
    fn between_the_phases_a_hidden_index_and_a_staged_validator_are_pending() {
        let mut indexes = listed();
        indexes.push(doc! { "v": 2, "key": { "legacy": 1 }, "name": "legacy_1", "hidden": true });
        let mut staged = enforced();
        staged.insert("validationAction", "warn");
        let found = compare(&users(), Some(&staged), &indexes);
        assert_eq!(
            messages(found.clone()),
            [
                "the index `legacy_1` is hidden and no longer declared: on its way out",
                "the validator of `users` is staged (`validationAction: warn`), not enforced",
            ]
        );
        assert!(found.iter().all(|d| d.pending));
        // Made by hand and visible: drift, not a phase.
        indexes[2].remove("hidden");
        assert!(!compare(&users(), Some(&enforced()), &indexes)[0].pending);
    }

    #[test]
    fn hand_made_and_hand_dropped_indexes_are_found() {
        let mut indexes = listed();
        indexes.push(doc! { "v": 2, "key": { "name": 1 }, "name": "name_1" });
        assert_eq!(
            messages(compare(&users(), Some(&enforced()), &indexes)),
            ["the index `name_1` ({ \"name\": 1 }) is not declared"]
        );
        assert_eq!(
            messages(compare(&users(), Some(&enforced()), &listed()[..1])),
            ["the index `email_1` ({ \"email\": 1 }) is declared but missing"]
        );
        let mut hidden = listed();
        hidden[1].insert("hidden", true);
        hidden[1].insert("unique", false);
        assert_eq!(
            messages(compare(&users(), Some(&enforced()), &hidden)),
            ["the index `by_email` differs from its declaration in unique, hidden"]
        );
    }

    #[test]
    fn validators_that_differ_are_staged_or_missing_are_found() {
        let mut other = enforced();
        other.insert("validator", doc! { "$jsonSchema": { "bsonType": "object" } });
        other.insert("validationLevel", "moderate");
        assert_eq!(
            messages(compare(&users(), Some(&other), &listed())),
            [
                "the validator of `users` differs from the declared one: `properties` is declared, not in the database's; `required` is declared, not in the database's",
                "the validator of `users` is at level `moderate`; `strict` is declared",
            ]
        );
        let mut staged = enforced();
        staged.insert("validationAction", "warn");
        assert_eq!(
            messages(compare(&users(), Some(&staged), &listed())),
            ["the validator of `users` is staged (`validationAction: warn`), not enforced"]
        );
        assert_eq!(
            messages(compare(&users(), Some(&doc! {}), &listed())),
            ["`users` has no validator; one is declared"]
        );
        let plain = Collection::new("users")
            .index(Index::new(doc! { "email": 1 }).unique())
            .level(ValidationLevel::Strict);
        assert_eq!(
            messages(compare(&plain, Some(&enforced()), &listed())),
            ["`users` has a validator that is not declared"]
        );
        assert_eq!(
            messages(compare(&users(), None, &[])),
            ["`users` is declared but does not exist"]
        );
    }
}
