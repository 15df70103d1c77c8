//! Schema changes safe on a live database, against the server: an index
//! adopted by identity (never built twice), refused with other options,
//! hidden before it is dropped; a validator staged at `warn`, its violators
//! counted exactly, enforced only in the post-deploy phase with none left.

use std::sync::{Arc, Mutex};

use crate::common::*;
use mongo_migrations::bson::{doc, Bson, Document};
use mongo_migrations::schema::{self, Index, IndexOutcome, SchemaError, ValidationLevel};
use mongo_migrations::{Phase, Progress, UpOptions};

async fn indexes(t: &TestDb, coll: &str) -> Vec<Document> {
    schema::list_indexes(&t.db(), coll).await.unwrap()
}

fn names(listed: &[Document]) -> Vec<String> {
    let mut n: Vec<String> = listed.iter().map(|i| i.get_str("name").unwrap().to_string()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn an_index_is_built_once_and_adopted_under_another_name() {
    let t = TestDb::new().await;
    let db = t.db();
    db.collection::<Document>("users")
        .insert_one(doc! { "email": "a@x" })
        .await
        .unwrap();
    let email = Index::new(doc! { "email": 1 }).unique();
    assert_eq!(
        schema::ensure_index(&db, "users", &email, None).await.unwrap(),
        IndexOutcome::Built { name: "email_1".into() }
    );
    // Again: nothing to build.
    assert_eq!(
        schema::ensure_index(&db, "users", &email, None).await.unwrap(),
        IndexOutcome::Adopted { name: "email_1".into() }
    );
    // The same identity under another name (a hand-made index) is adopted, not duplicated.
    let named = email.clone().named("users_by_email");
    assert_eq!(
        schema::ensure_index(&db, "users", &named, None).await.unwrap(),
        IndexOutcome::Adopted { name: "email_1".into() }
    );
    assert_eq!(names(&indexes(&t, "users").await), ["_id_", "email_1"]);
    // Other options on the same keys: refused, in words that say what to do.
    let sparse = Index::new(doc! { "email": 1 }).sparse();
    let e = schema::ensure_index(&db, "users", &sparse, None).await.unwrap_err();
    assert!(matches!(e, SchemaError::OptionsDiffer { .. }), "{e}");
    assert!(e.to_string().contains("unique, sparse"), "{e}");
    // A partial index on the same keys is another index.
    let partial = Index::new(doc! { "email": 1 })
        .partial(doc! { "active": true })
        .named("active_email");
    assert!(matches!(
        schema::ensure_index(&db, "users", &partial, None).await.unwrap(),
        IndexOutcome::Built { .. }
    ));
    // A name another index has is refused.
    let clash = Index::new(doc! { "other": 1 }).named("email_1");
    let e = schema::ensure_index(&db, "users", &clash, None).await.unwrap_err();
    assert!(matches!(e, SchemaError::NameTaken { .. }), "{e}");
    t.drop_db().await;
}

/// Since MongoDB 5.0, `unique` and `sparse` are part of an index's
/// signature (`compareIndexOptions`, `src/mongo/db/catalog/index_descriptor.cpp`):
/// a unique index on the keys of a plain one, under another name, is built
/// beside it (the safe way to make an index unique: build, then drop), each
/// is adopted as itself on a rerun, and drift finds neither missing.
#[tokio::test]
async fn a_unique_index_on_the_keys_of_a_plain_one_stands_beside_it() {
    let t = TestDb::new().await;
    let db = t.db();
    db.collection::<Document>("users")
        .insert_many([doc! { "email": "a@x" }, doc! { "email": "b@x" }])
        .await
        .unwrap();
    let plain = Index::new(doc! { "email": 1 });
    let unique = Index::new(doc! { "email": 1 }).unique().named("email_unique");
    schema::ensure_index(&db, "users", &plain, None).await.unwrap();
    assert_eq!(
        schema::ensure_index(&db, "users", &unique, None).await.unwrap(),
        IndexOutcome::Built {
            name: "email_unique".into()
        }
    );
    // A rerun of either finds each as itself.
    for _ in 0..2 {
        assert_eq!(
            schema::ensure_index(&db, "users", &unique, None).await.unwrap(),
            IndexOutcome::Adopted {
                name: "email_unique".into()
            }
        );
        assert_eq!(
            schema::ensure_index(&db, "users", &plain, None).await.unwrap(),
            IndexOutcome::Adopted { name: "email_1".into() }
        );
    }
    let both = schema::Collection::new("users")
        .index(plain.clone())
        .index(unique.clone());
    assert_eq!(schema::drift(&db, &[both]).await.unwrap(), []);
    // Replacing the plain one by the unique one under its own name drops
    // only the plain one.
    let listed = indexes(&t, "users").await;
    assert_eq!(names(&listed), ["_id_", "email_1", "email_unique"]);
    assert_eq!(
        schema::replace_index(&db, "users", "email_1", &unique, None)
            .await
            .unwrap(),
        IndexOutcome::Adopted {
            name: "email_unique".into()
        }
    );
    assert_eq!(names(&indexes(&t, "users").await), ["_id_", "email_unique"]);
    // From the plain one alone, the replacement under another name is built
    // first, then the plain one dropped.
    schema::ensure_index(&db, "users", &plain, None).await.unwrap();
    db.run_command(doc! { "dropIndexes": "users", "index": "email_unique" })
        .await
        .unwrap();
    assert_eq!(
        schema::replace_index(&db, "users", "email_1", &unique, None)
            .await
            .unwrap(),
        IndexOutcome::Built {
            name: "email_unique".into()
        }
    );
    assert_eq!(names(&indexes(&t, "users").await), ["_id_", "email_unique"]);
    t.drop_db().await;
}

#[tokio::test]
async fn ttl_collation_and_hidden_indexes_round_trip() {
    let t = TestDb::new().await;
    let db = t.db();
    let ttl = Index::new(doc! { "at": 1 }).ttl(3600);
    let fr = Index::new(doc! { "name": 1 }).collation(doc! { "locale": "fr", "strength": 2 });
    for index in [&ttl, &fr] {
        assert!(matches!(
            schema::ensure_index(&db, "events", index, None).await.unwrap(),
            IndexOutcome::Built { .. }
        ));
        // The server fills in the collation's defaults: still the same index.
        assert!(matches!(
            schema::ensure_index(&db, "events", index, None).await.unwrap(),
            IndexOutcome::Adopted { .. }
        ));
    }
    // Hiding an existing index: `Rehidden`, on the test server too (it
    // ignores `collMod` of `hidden`, and the index is rebuilt hidden), with
    // its options (the TTL) kept.
    let hidden = ttl.clone().hidden();
    assert_eq!(
        schema::ensure_index(&db, "events", &hidden, None).await.unwrap(),
        IndexOutcome::Rehidden {
            name: "at_1".into(),
            hidden: true
        }
    );
    let listed = indexes(&t, "events").await;
    let at = listed.iter().find(|i| i.get_str("name") == Ok("at_1")).unwrap();
    assert_eq!(at.get_bool("hidden"), Ok(true), "{at}");
    assert!(at.get("expireAfterSeconds").is_some(), "{at}");
    assert!(matches!(
        schema::ensure_index(&db, "events", &hidden, None).await.unwrap(),
        IndexOutcome::Adopted { .. }
    ));
    t.drop_db().await;
}

#[tokio::test]
async fn an_index_is_dropped_only_once_hidden() {
    let t = TestDb::new().await;
    let db = t.db();
    schema::ensure_index(&db, "users", &Index::new(doc! { "legacy": 1 }), None)
        .await
        .unwrap();
    let e = schema::drop_hidden_index(&db, "users", "legacy_1").await.unwrap_err();
    assert!(matches!(e, SchemaError::NotHidden { .. }), "{e}");
    assert!(e.to_string().contains("hide it in an earlier migration"), "{e}");
    assert_eq!(names(&indexes(&t, "users").await), ["_id_", "legacy_1"]);
    schema::hide_index(&db, "users", "legacy_1").await.unwrap();
    let hidden = |listed: &[Document]| {
        let legacy = listed.iter().find(|i| i.get_str("name") == Ok("legacy_1")).unwrap();
        legacy.get_bool("hidden").unwrap_or(false)
    };
    assert!(hidden(&indexes(&t, "users").await));
    // Shown again (the rollback of a hide), then hidden and dropped.
    schema::unhide_index(&db, "users", "legacy_1").await.unwrap();
    assert!(!hidden(&indexes(&t, "users").await));
    schema::hide_index(&db, "users", "legacy_1").await.unwrap();
    schema::drop_hidden_index(&db, "users", "legacy_1").await.unwrap();
    assert_eq!(names(&indexes(&t, "users").await), ["_id_"]);
    // An index built hidden (which the test server does) is dropped.
    schema::ensure_index(&db, "users", &Index::new(doc! { "old": 1 }).hidden(), None)
        .await
        .unwrap();
    schema::drop_hidden_index(&db, "users", "old_1").await.unwrap();
    assert!(!names(&indexes(&t, "users").await).contains(&"old_1".to_string()));
    // Gone already: done.
    schema::drop_hidden_index(&db, "users", "old_1").await.unwrap();
    let e = schema::hide_index(&db, "users", "nope").await.unwrap_err();
    assert!(
        matches!(e, SchemaError::NoSuchIndex { .. } | SchemaError::Server { .. }),
        "{e}"
    );
    t.drop_db().await;
}

/// Making an index unique while documents share its keys: refused with
/// their count and a few `_id`s before anything is dropped (the index stays
/// as it was); once they are fixed, replaced; a rerun adopts it; a
/// replacement on other keys is built before the old one is dropped.
#[tokio::test]
async fn an_index_made_unique_is_never_dropped_before_its_replacement_exists() {
    let t = TestDb::new().await;
    let db = t.db();
    let orders = db.collection::<Document>("orders");
    let docs: Vec<Document> = (0..30_i64)
        .map(|i| doc! { "_id": i, "orderNumber": if i >= 26 { 5 + i % 2 } else { i } })
        .collect();
    orders.insert_many(docs).await.unwrap();
    let plain = Index::new(doc! { "orderNumber": 1 });
    schema::ensure_index(&db, "orders", &plain, None).await.unwrap();
    let unique = Index::new(doc! { "orderNumber": 1 }).unique();

    let e = schema::replace_index(&db, "orders", "orderNumber_1", &unique, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            SchemaError::Duplicates {
                values: 2,
                documents: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("6 documents of `orders` share their orderNumber with another (2 values held more than once; for example _id 5, 28, 6, 29): the unique index `orderNumber_1` cannot be built, and nothing was changed"),
        "{e}"
    );
    let listed = indexes(&t, "orders").await;
    assert_eq!(names(&listed), ["_id_", "orderNumber_1"]);
    assert!(
        plain.is(&listed[1]) && plain.differences(&listed[1]).is_empty(),
        "{listed:?}"
    );

    orders.delete_many(doc! { "_id": { "$gte": 26 } }).await.unwrap();
    assert_eq!(
        schema::replace_index(&db, "orders", "orderNumber_1", &unique, None)
            .await
            .unwrap(),
        IndexOutcome::Built {
            name: "orderNumber_1".into()
        }
    );
    let listed = indexes(&t, "orders").await;
    assert_eq!(listed[1].get_bool("unique"), Ok(true), "{listed:?}");
    // A rerun (a run cut off after the build) has nothing left to do.
    assert_eq!(
        schema::replace_index(&db, "orders", "orderNumber_1", &unique, None)
            .await
            .unwrap(),
        IndexOutcome::Adopted {
            name: "orderNumber_1".into()
        }
    );
    // Other keys stand beside the old index: built first, then the old one dropped.
    let wider = Index::new(doc! { "orderNumber": 1, "shop": 1 }).unique();
    schema::replace_index(&db, "orders", "orderNumber_1", &wider, None)
        .await
        .unwrap();
    assert_eq!(names(&indexes(&t, "orders").await), ["_id_", "orderNumber_1_shop_1"]);
    t.drop_db().await;
}

/// A unique index is never dropped and rebuilt to hide it: on a server that
/// ignores `collMod` of `hidden` (the test server, SecantusDB) the hide is
/// refused and the index stays unique and shown; elsewhere it is hidden in
/// place.
#[tokio::test]
async fn a_unique_index_is_never_rebuilt_to_hide_it() {
    let t = TestDb::new().await;
    let db = t.db();
    db.collection::<Document>("users")
        .insert_one(doc! { "email": "a@x" })
        .await
        .unwrap();
    schema::ensure_index(&db, "users", &Index::new(doc! { "email": 1 }).unique(), None)
        .await
        .unwrap();
    let info = t
        .client
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .unwrap();
    let ignores_hidden = info.get_str("secantusVersion").is_ok();
    let outcome = schema::hide_index(&db, "users", "email_1").await;
    let listed = indexes(&t, "users").await;
    let email = listed
        .iter()
        .find(|i| i.get_str("name") == Ok("email_1"))
        .expect("email_1 is still there");
    assert_eq!(email.get_bool("unique"), Ok(true), "{email}");
    if ignores_hidden {
        let e = outcome.unwrap_err();
        assert!(matches!(e, SchemaError::HideIgnored { .. }), "{e:?}");
        assert!(e.to_string().contains("a unique index is not rebuilt"), "{e}");
        assert_ne!(email.get_bool("hidden"), Ok(true), "{email}");
    } else {
        outcome.unwrap();
        assert_eq!(email.get_bool("hidden"), Ok(true), "{email}");
    }
    t.drop_db().await;
}

fn email_required() -> Document {
    doc! { "bsonType": "object", "required": ["email"], "properties": { "email": { "bsonType": "string" } } }
}

#[tokio::test]
async fn a_validator_warns_counts_exactly_and_is_enforced_only_without_violators_after_the_deploy() {
    let t = TestDb::new().await;
    let db = t.db();
    let users = db.collection::<Document>("users");
    // 12,000 documents (more than two scan batches), one in a hundred without an email.
    let docs: Vec<Document> = (0..12_000)
        .map(|i| {
            if i % 100 == 7 {
                doc! { "_id": i, "name": "x" }
            } else {
                doc! { "_id": i, "email": format!("{i}@x") }
            }
        })
        .collect();
    users.insert_many(docs).await.unwrap();
    let schema = email_required();
    schema::stage_validator(&db, "users", &schema, ValidationLevel::Strict)
        .await
        .unwrap();
    // Writes of the old shape still work at `warn`.
    users
        .insert_one(doc! { "_id": 100_000, "name": "old code" })
        .await
        .unwrap();
    let v = schema::count_violators(&db, "users", &schema).await.unwrap();
    assert_eq!(v.count, 121);
    assert_eq!(v.sample, [7, 107, 207, 307, 407].map(Bson::Int32));
    // Not before the deploy, and not while violators remain.
    let e = schema::enforce_validator(&db, "users", &schema, ValidationLevel::Strict, Phase::PreDeploy)
        .await
        .unwrap_err();
    assert!(matches!(e, SchemaError::NotPostDeploy { .. }), "{e}");
    let e = schema::enforce_validator(&db, "users", &schema, ValidationLevel::Strict, Phase::PostDeploy)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("121 documents of `users` violate its validator (for example _id 7, 107, 207"),
        "{e}"
    );
    users
        .insert_one(doc! { "_id": 100_001, "name": "still warn" })
        .await
        .unwrap();
    // Fixed: enforced, and the old shape is refused from then on.
    users
        .update_many(
            doc! { "email": { "$exists": false } },
            doc! { "$set": { "email": "fixed@x" } },
        )
        .await
        .unwrap();
    assert_eq!(schema::count_violators(&db, "users", &schema).await.unwrap().count, 0);
    schema::enforce_validator(&db, "users", &schema, ValidationLevel::Strict, Phase::PostDeploy)
        .await
        .unwrap();
    assert!(users.insert_one(doc! { "name": "refused" }).await.is_err());
    t.drop_db().await;
}

fn build_index(
    ctx: &mut mongo_migrations::MigrationContext,
) -> mongo_migrations::BoxFuture<'_, mongo_migrations::MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("big", &Index::new(doc! { "n": 1 })).await?;
        Ok(())
    })
}

#[tokio::test]
async fn a_migration_builds_through_its_context_and_reports_progress() {
    let t = TestDb::new().await;
    let big = t.db().collection::<Document>("big");
    let docs: Vec<Document> = (0..20_000).map(|i| doc! { "n": i }).collect();
    big.insert_many(docs).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let migrator = t
        .migrator(vec![mongo_migrations::Migration::new(
            v("20260101000000"),
            "index_big",
            build_index,
        )])
        .with_progress(move |p| seen.lock().unwrap().push(p.clone()));
    let report = migrator.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 1);
    let listed = indexes(&t, "big").await;
    assert_eq!(names(&listed), ["_id_", "n_1"]);
    // Progress comes from `currentOp`, which on the test server lists no
    // `progress` for a build (its parsing is unit-tested with mongod's
    // reply): no event here, and none of another kind either.
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .all(|p| !matches!(p, Progress::Batch { .. })));
    t.drop_db().await;
}

fn ensure_email_and_name(
    ctx: &mut mongo_migrations::MigrationContext,
) -> mongo_migrations::BoxFuture<'_, mongo_migrations::MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("users", &Index::on([("email", 1)])).await?;
        ctx.ensure_index("users", &Index::on([("name", 1)])).await?;
        Ok(())
    })
}

fn drop_email_and_name(
    ctx: &mut mongo_migrations::MigrationContext,
) -> mongo_migrations::BoxFuture<'_, mongo_migrations::MigrationResult> {
    Box::pin(async move {
        ctx.drop_built_index("users", "name_1").await?;
        ctx.drop_built_index("users", "email_1").await?;
        Ok(())
    })
}

/// The record's `indexes`, as (name, adopted) pairs.
async fn noted(t: &TestDb, version: &str) -> Vec<(String, bool)> {
    let record = t.tracking(version).await.unwrap();
    let Ok(list) = record.get_array("indexes") else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let e = e.as_document().unwrap();
            (e.get_str("name").unwrap().to_string(), e.get_bool("adopted").unwrap())
        })
        .collect()
}

#[tokio::test]
async fn down_keeps_an_index_its_up_found_and_drops_one_it_built() {
    let t = TestDb::new().await;
    // The database had the email index before the first migration that
    // declares it (a first `diff` on an existing database).
    schema::ensure_index(&t.db(), "users", &Index::on([("email", 1)]), None)
        .await
        .unwrap();
    let version = "20260101000000";
    let migrator = t.migrator(vec![mongo_migrations::Migration::new(
        v(version),
        "email_and_name",
        ensure_email_and_name,
    )
    .with_down(drop_email_and_name)]);
    for round in 0..2 {
        migrator.up(UpOptions::default()).await.unwrap();
        assert_eq!(
            names(&indexes(&t, "users").await),
            ["_id_", "email_1", "name_1"],
            "round {round}"
        );
        assert_eq!(
            noted(&t, version).await,
            [("email_1".to_string(), true), ("name_1".to_string(), false)],
            "round {round}"
        );
        migrator.down(mongo_migrations::DownOptions::default()).await.unwrap();
        // What was there before `up` is there after `down`, no more, no less.
        assert_eq!(names(&indexes(&t, "users").await), ["_id_", "email_1"], "round {round}");
        // A completed rollback forgets: the next `up` finds out anew.
        assert_eq!(noted(&t, version).await, [], "round {round}");
    }
    t.drop_db().await;
}

#[cfg(feature = "macros")]
mod declared {
    use super::*;
    use mongo_migrations::bson::oid::ObjectId;
    use mongo_migrations::schema::MongoSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, MongoSchema)]
    #[serde(rename_all = "camelCase")]
    enum Role {
        Member,
        SuperAdmin,
    }

    #[derive(Debug, Serialize, Deserialize, MongoSchema)]
    struct Address {
        city: String,
        #[serde(default)]
        zip: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize, MongoSchema)]
    #[serde(rename_all = "camelCase")]
    #[mongo(
        collection = "users",
        index(keys = "email: 1", unique),
        index(keys = "createdAt: -1", name = "recent")
    )]
    struct User {
        #[serde(rename = "_id")]
        id: ObjectId,
        email: String,
        display_name: Option<String>,
        role: Role,
        addresses: Vec<Address>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        created_at: mongo_migrations::bson::DateTime,
        #[serde(with = "mongo_migrations::bson::serde_helpers::chrono_datetime_as_bson_datetime")]
        seen_at: chrono::DateTime<chrono::Utc>,
        #[serde(skip)]
        #[allow(dead_code)]
        cache: u8,
    }

    #[test]
    fn the_derived_schema_follows_serde() {
        assert_eq!(
            User::json_schema(),
            doc! {
                "bsonType": "object",
                "required": ["_id", "email", "role", "addresses", "createdAt", "seenAt"],
                "properties": {
                    "_id": { "bsonType": "objectId" },
                    "email": { "bsonType": "string" },
                    "displayName": { "bsonType": ["string", "null"] },
                    "role": { "bsonType": "string", "enum": ["member", "superAdmin"] },
                    "addresses": { "bsonType": "array", "items": {
                        "bsonType": "object",
                        "required": ["city"],
                        "properties": { "city": { "bsonType": "string" }, "zip": { "bsonType": ["string", "null"] } },
                    } },
                    "tags": { "bsonType": "array", "items": { "bsonType": "string" } },
                    "createdAt": { "bsonType": "date" },
                    "seenAt": { "bsonType": "date" },
                },
            }
        );
        assert_eq!(User::collection(), Some("users"));
        let names: Vec<String> = User::indexes().iter().map(|i| i.name()).collect();
        assert_eq!(names, ["email_1", "recent"]);
    }

    /// The schema as a validator accepts what serde writes, and refuses what it would not.
    #[tokio::test]
    async fn the_server_accepts_what_serde_writes_under_the_derived_validator() {
        let t = TestDb::new().await;
        let db = t.db();
        let schema = User::json_schema();
        schema::stage_validator(&db, "users", &schema, ValidationLevel::Strict)
            .await
            .unwrap();
        schema::enforce_validator(&db, "users", &schema, ValidationLevel::Strict, Phase::PostDeploy)
            .await
            .unwrap();
        let users = db.collection::<User>("users");
        for (display_name, tags) in [(None, vec![]), (Some("Ada".to_string()), vec!["x".to_string()])] {
            let user = User {
                id: ObjectId::new(),
                email: "a@x".into(),
                display_name,
                role: Role::SuperAdmin,
                addresses: vec![Address {
                    city: "Paris".into(),
                    zip: None,
                }],
                tags,
                created_at: mongo_migrations::bson::DateTime::now(),
                seen_at: chrono::Utc::now(),
                cache: 7,
            };
            users.insert_one(&user).await.unwrap();
        }
        let raw = db.collection::<Document>("users");
        let e = raw.insert_one(doc! { "email": "no id fields" }).await.unwrap_err();
        assert!(e.to_string().to_lowercase().contains("validation"), "{e}");
        let e = raw
            .insert_one(doc! { "_id": ObjectId::new(), "email": "a", "role": "owner", "addresses": [], "createdAt": mongo_migrations::bson::DateTime::now(), "seenAt": mongo_migrations::bson::DateTime::now() })
            .await
            .unwrap_err();
        assert!(e.to_string().to_lowercase().contains("validation"), "{e}");
        assert_eq!(schema::count_violators(&db, "users", &schema).await.unwrap().count, 0);
        t.drop_db().await;
    }
}
