//! Through a `mongos`, as the test proxy impersonates one (see
//! `common/proxy.rs`): `listIndexes` answers from one shard, so an index a
//! listing shows may be missing on another shard, where its build failed
//! and nothing was rolled back (`cluster_create_indexes_cmd.cpp`); only
//! `$indexStats`, read per shard, tells.

use crate::common::proxy::{Mongos, Proxy};
use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::mongodb::Client;
use mongo_migrations::schema::{self, Collection, Index, IndexOutcome};

/// A unique index built on `shard0` and missing on `shard1`: it is not
/// adopted from the listing but built again (the shards that have it answer
/// that it exists), and `check`'s drift names the shard; once every shard
/// has it, it is adopted with no build and there is no drift.
#[tokio::test]
async fn an_index_missing_on_a_shard_is_built_again_and_is_drift() {
    let t = TestDb::new().await;
    t.db()
        .collection::<Document>("users")
        .insert_one(doc! { "email": "a@x" })
        .await
        .unwrap();
    let email = Index::new(doc! { "email": 1 }).unique();
    schema::ensure_index(&t.db(), "users", &email, None).await.unwrap();
    let proxy = Proxy::start(&uri()).await;
    let via = Client::with_uri_str(&proxy.uri).await.unwrap().database(&t.name);
    let declared = [Collection::new("users").index(email.clone())];
    proxy.mongos(Some(Mongos {
        shards: vec!["shard0", "shard1"],
        missing: vec![("email_1", "shard1")],
    }));

    let drift: Vec<String> = schema::drift(&via, &declared)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message)
        .collect();
    assert_eq!(
        drift,
        ["the index `email_1` is built on 1 of 2 shards: missing on shard1"]
    );
    proxy.take_commands();
    assert_eq!(
        schema::ensure_index(&via, "users", &email, None).await.unwrap(),
        IndexOutcome::Built { name: "email_1".into() }
    );
    let sent = proxy.take_commands();
    assert!(sent.iter().any(|c| c == "createIndexes"), "{sent:?}");

    proxy.mongos(Some(Mongos {
        shards: vec!["shard0", "shard1"],
        missing: vec![],
    }));
    assert_eq!(
        schema::ensure_index(&via, "users", &email, None).await.unwrap(),
        IndexOutcome::Adopted { name: "email_1".into() }
    );
    let sent = proxy.take_commands();
    assert!(!sent.iter().any(|c| c == "createIndexes"), "{sent:?}");
    assert_eq!(schema::drift(&via, &declared).await.unwrap(), []);
    t.drop_db().await;
}
