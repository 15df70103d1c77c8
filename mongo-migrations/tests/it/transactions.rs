//! Transactional migrations: all or nothing, tracking write included.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{
    supports_transactions, BoxFuture, Config, DownOptions, Error, Migration, MigrationContext, MigrationResult,
    Migrator, Registry, UpOptions,
};

fn tx_insert(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let version = ctx.version().as_u64() as i64;
        let (db, session) = ctx.transaction()?;
        db.collection::<Document>("effects")
            .insert_one(doc! { "_id": version })
            .session(session)
            .await?;
        Ok(())
    })
}

fn tx_delete(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let version = ctx.version().as_u64() as i64;
        let (db, session) = ctx.transaction()?;
        db.collection::<Document>("effects")
            .delete_one(doc! { "_id": version })
            .session(session)
            .await?;
        Ok(())
    })
}

/// Writes inside the transaction, then fails.
fn tx_half_then_fail(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let (db, session) = ctx.transaction()?;
        let coll = db.collection::<Document>("effects");
        coll.insert_one(doc! { "_id": "partial-1" })
            .session(&mut *session)
            .await?;
        coll.insert_one(doc! { "_id": "partial-2" })
            .session(&mut *session)
            .await?;
        Err("second step failed".into())
    })
}

/// Tries to write through the plain database handle.
fn tx_escapes(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.db()?
            .collection::<Document>("effects")
            .insert_one(doc! { "_id": "escaped" })
            .await?;
        Ok(())
    })
}

fn asks_for_session(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.transaction()?;
        Ok(())
    })
}

fn tx(version: &str, name: &str) -> Migration {
    Migration::new(v(version), name, tx_insert)
        .with_down(tx_delete)
        .with_transaction(true)
}

#[tokio::test]
async fn the_test_server_supports_transactions() {
    let t = TestDb::new().await;
    assert!(supports_transactions(&t.client).await.unwrap());
}

#[tokio::test]
async fn a_transactional_migration_commits_with_its_tracking_record_and_rolls_back() {
    let t = TestDb::new().await;
    let m = t.migrator(vec![tx("20260101000000", "tx_add")]);
    let report = m.up(UpOptions::default()).await.unwrap();
    assert!(report.steps[0].transactional);
    assert_eq!(t.docs("effects").await.len(), 1);
    let rec = t.tracking("20260101000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "completed");
    assert!(rec.get_bool("transactional").unwrap());
    assert!(rec.get_i64("executionTimeMs").is_ok());

    m.down(DownOptions::default()).await.unwrap();
    assert!(t.docs("effects").await.is_empty());
    assert_eq!(
        t.tracking("20260101000000").await.unwrap().get_str("status").unwrap(),
        "rolled-back"
    );
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(
        t.tracking("20260101000000").await.unwrap().get_str("status").unwrap(),
        "completed"
    );
    t.drop_db().await;
}

#[tokio::test]
async fn a_failing_transactional_migration_leaves_no_partial_writes_and_does_not_block() {
    let t = TestDb::new().await;
    let m = t.migrator(vec![
        tx("20260101000000", "tx_ok"),
        Migration::new(v("20260102000000"), "tx_fails", tx_half_then_fail).with_transaction(true),
    ]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("second step failed"), "{err}");
    let effects = t.docs("effects").await;
    assert_eq!(
        effects,
        vec![doc! { "_id": 20260101000000_i64 }],
        "partial writes survived"
    );
    // The failed attempt is recorded with its error; it was not applied, so it does not block.
    let rec = t.tracking("20260102000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "failed", "{rec}");
    assert_eq!(rec.get_str("error").unwrap(), "second step failed", "{rec}");
    assert_eq!(rec.get_i64("attempts").unwrap(), 1, "{rec}");
    // Nothing blocks: the failed one is simply still pending.
    assert_eq!(m.status().await.unwrap().counts.pending, 1);
    t.drop_db().await;
}

#[tokio::test]
async fn the_context_keeps_writes_on_the_right_side_of_the_transaction() {
    let t = TestDb::new().await;
    let m = t.migrator(vec![
        Migration::new(v("20260101000000"), "escapes", tx_escapes).with_transaction(true)
    ]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("use ctx.transaction()"), "{err}");
    assert!(t.docs("effects").await.is_empty());

    let m = t.migrator(vec![Migration::new(v("20260101000000"), "plain", asks_for_session)]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("TRANSACTIONAL"), "{err}");
    t.drop_db().await;
}

/// Needs a second server that does not support transactions (CI starts one
/// with `--standalone`); in CI a missing one fails the test.
#[tokio::test]
async fn a_server_without_transactions_gets_a_clear_error_before_anything_runs() {
    // Never skipped: `scripts/test` starts a standalone server for it.
    let uri = std::env::var("MONGODB_STANDALONE_URI").expect(
        "MONGODB_STANDALONE_URI is not set: run the tests with `scripts/test`, which starts a standalone server",
    );
    let name = format!("mm_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let registry = Registry::new(vec![
        reversible("20260101000000", "plain_first"),
        tx("20260102000000", "needs_tx"),
    ])
    .unwrap();
    let m = Migrator::connect(&uri, Some(&name), registry, Config::default())
        .await
        .unwrap();
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::TransactionsUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("needs_tx"), "{err}");
    let applied = m
        .database()
        .collection::<Document>("effects")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(applied, 0, "ran the plain migration before refusing");

    // Everything else works on a standalone server.
    let plain = Registry::new(vec![reversible("20260101000000", "plain_first")]).unwrap();
    let m = Migrator::connect(&uri, Some(&name), plain, Config::default())
        .await
        .unwrap();
    assert_eq!(m.up(UpOptions::default()).await.unwrap().steps.len(), 1);
    assert_eq!(m.down(DownOptions::default()).await.unwrap().steps.len(), 1);
    assert_eq!(m.status().await.unwrap().counts.pending, 1);
    m.database().drop().await.unwrap();
}

/// Creates the collection `shared` inside its transaction, then holds the
/// transaction open a moment so that two runners overlap.
fn tx_create_shared(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let (db, session) = ctx.transaction()?;
        db.collection::<Document>("shared")
            .insert_one(doc! { "by": uuid::Uuid::new_v4().to_string() })
            .session(&mut *session)
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        Ok(())
    })
}

/// Two runners with their own tracking collections and locks (two services
/// sharing a database) create the same new collection in transactions at
/// once: the write conflict is transient, and the retry lets both succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_creating_the_same_collection_in_transactions_both_succeed() {
    let t = TestDb::new().await;
    let runner = |name: &str| {
        let config = mongo_migrations::Config {
            tracking_collection: format!("{name}_migrations"),
            lock_collection: format!("{name}_locks"),
            ..mongo_migrations::Config::default()
        };
        let m = Migration::new(v("20260101000000"), "create_shared", tx_create_shared).with_transaction(true);
        t.migrator_with(vec![m], config)
    };
    let (a, b) = (runner("a"), runner("b"));
    let (ra, rb) = tokio::join!(a.up(UpOptions::default()), b.up(UpOptions::default()));
    assert_eq!(ra.unwrap().steps.len(), 1);
    assert_eq!(rb.unwrap().steps.len(), 1);
    assert_eq!(t.docs("shared").await.len(), 2);
    t.drop_db().await;
}

fn tx_touch_hot(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let (db, session) = ctx.transaction()?;
        db.collection::<Document>("hot")
            .update_one(doc! { "_id": 1 }, doc! { "$inc": { "n": 1 } })
            .session(session)
            .await?;
        Ok(())
    })
}

/// A write conflict with a transaction that never ends is transient each
/// time: the migration is tried three times, and its record says so.
#[tokio::test]
async fn a_transaction_that_keeps_conflicting_is_recorded_failed_with_its_attempts() {
    let t = TestDb::new().await;
    let hot = t.db().collection::<Document>("hot");
    hot.insert_one(doc! { "_id": 1, "n": 0 }).await.unwrap();
    let mut blocker = t.client.start_session().await.unwrap();
    blocker.start_transaction().await.unwrap();
    hot.update_one(doc! { "_id": 1 }, doc! { "$inc": { "n": 10 } })
        .session(&mut blocker)
        .await
        .unwrap();

    let m = t.migrator(vec![
        Migration::new(v("20260101000000"), "tx_hot", tx_touch_hot).with_transaction(true)
    ]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::MigrationFailed { .. }), "{err:?}");
    let rec = t.tracking("20260101000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "failed", "{rec}");
    assert_eq!(rec.get_i64("attempts").unwrap(), 3, "{rec}");
    let history = m
        .history(&mongo_migrations::HistoryQuery {
            status: Some(mongo_migrations::MigrationStatus::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].attempts, Some(3));

    blocker.abort_transaction().await.unwrap();
    // Nothing of it was applied, and it does not block: the next `up` applies it.
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(t.docs("hot").await, vec![doc! { "_id": 1, "n": 1 }]);
    t.drop_db().await;
}
