//! A refused command writes nothing: not a record, not the lock, not even a
//! collection or an index. Each command is refused for each reason it can
//! be, on a fresh database and on one whose lock another runner holds, and
//! the database's shape is compared before and after.

use crate::common::*;
use futures_util::TryStreamExt;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{DownOptions, DownTarget, Error, Migrator, Resolution, UpOptions};

/// Every collection with its index names and its documents.
async fn shape(t: &TestDb) -> Vec<(String, Vec<String>, Vec<Document>)> {
    let mut names = t.db().list_collection_names().await.unwrap();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let coll = t.db().collection::<Document>(&name);
        let mut indexes: Vec<String> = coll
            .list_indexes()
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|i| i.options.and_then(|o| o.name))
            .collect();
        indexes.sort();
        out.push((name.clone(), indexes, t.docs(&name).await));
    }
    out
}

/// Each refusal of `m` that needs no record and no lock; after each, the
/// shape of `t` must still be `before`.
async fn refusals(m: &Migrator, t: &TestDb, before: &[(String, Vec<String>, Vec<Document>)]) {
    let (first, unknown) = (v("20260101000000"), v("20991231000000"));
    let check = async |what: &str, result: Result<String, Error>| {
        let e = result.expect_err(what);
        assert_eq!(shape(t).await, before, "{what} ({e}) wrote");
    };
    check("baseline unknown", m.baseline(unknown).await.map(|r| format!("{r:?}"))).await;
    for how in [Resolution::Applied, Resolution::Pending, Resolution::AcceptChecksum] {
        let what = format!("resolve {how:?} without a record");
        check(&what, m.resolve(unknown, how).await.map(|r| format!("{r:?}"))).await;
    }
    check(
        "forget without a record",
        m.forget(&[unknown], true).await.map(|r| format!("{r:?}")),
    )
    .await;
    check(
        "forget a known one",
        m.forget(&[first], true).await.map(|r| format!("{r:?}")),
    )
    .await;
    check(
        "forget unconfirmed",
        m.forget(&[first], false).await.map(|r| format!("{r:?}")),
    )
    .await;
    let to = UpOptions {
        to: Some(unknown),
        ..UpOptions::default()
    };
    check("up to an unknown version", m.up(to).await.map(|r| format!("{r:?}"))).await;
    let down = DownOptions {
        target: DownTarget::To(unknown),
        dry_run: false,
    };
    check(
        "down to an unknown version",
        m.down(down).await.map(|r| format!("{r:?}")),
    )
    .await;
    check(
        "force-unlock unconfirmed",
        m.force_unlock(false).await.map(|r| format!("{r:?}")),
    )
    .await;
}

#[tokio::test]
async fn refused_commands_on_a_fresh_database_create_nothing() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    refusals(&m, &t, &[]).await;
    // Nothing to do or nothing to release: no write either.
    let down = m.down(DownOptions::default()).await.unwrap();
    assert!(down.steps.is_empty());
    assert_eq!(m.force_unlock(true).await.unwrap(), None);
    assert!(shape(&t).await.is_empty(), "{:?}", shape(&t).await);
    t.drop_db().await;
}

/// Every command that takes the lock, with input it would accept, meets
/// another runner's lock: refused, and nothing is written, not even an index.
#[tokio::test]
async fn refused_commands_under_a_held_lock_change_nothing() {
    let t = TestDb::new().await;
    let first = v("20260101000000");
    // A failed record to resolve, and one this build does not know, to forget.
    let failing = mongo_migrations::Migration::new(first, "first", failing);
    t.migrator(vec![failing]).up(UpOptions::default()).await.unwrap_err();
    t.db()
        .collection::<Document>("migration_locks")
        .delete_many(doc! {})
        .await
        .unwrap();
    t.foreign_lock("other-host", 7, 60_000).await;
    let before = shape(&t).await;
    let m = t.migrator(three());
    let fresh = TestDb {
        client: t.client.clone(),
        name: format!("{}_b", t.name),
    };
    fresh.foreign_lock("other-host", 7, 60_000).await;
    let on_fresh = fresh.migrator(three());
    let fresh_before = shape(&fresh).await;
    let locked = async |what: &str, result: Result<String, Error>, t: &TestDb, before| {
        let e = result.expect_err(what);
        assert!(matches!(e, Error::Locked { .. }), "{what}: {e}");
        assert_eq!(
            &shape(t).await,
            before,
            "{what} ({e}) wrote under another runner's lock"
        );
    };
    locked(
        "up",
        m.up(UpOptions::default()).await.map(|r| format!("{r:?}")),
        &t,
        &before,
    )
    .await;
    let applied = m.resolve(first, Resolution::Applied).await;
    locked("resolve --applied", applied.map(|r| format!("{r:?}")), &t, &before).await;
    let pending = m.resolve(first, Resolution::Pending).await;
    locked("resolve --pending", pending.map(|r| format!("{r:?}")), &t, &before).await;
    let forget = t.migrator(Vec::new()).forget(&[first], true).await;
    locked("forget", forget.map(|r| format!("{r:?}")), &t, &before).await;
    let baseline = on_fresh.baseline(first).await;
    locked("baseline", baseline.map(|r| format!("{r:?}")), &fresh, &fresh_before).await;
    let up = on_fresh.up(UpOptions::default()).await;
    locked(
        "up on a fresh database",
        up.map(|r| format!("{r:?}")),
        &fresh,
        &fresh_before,
    )
    .await;
    refusals(&m, &t, &before).await;
    fresh.drop_db().await;
    t.drop_db().await;
}

/// With records in place, the refusals that read them write nothing either.
#[tokio::test]
async fn refusals_on_records_write_nothing() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    m.up(UpOptions::default()).await.unwrap();
    t.db()
        .collection::<Document>("migrations")
        .update_one(
            doc! { "version": v("20260103000000").as_u64() as i64 },
            doc! { "$set": { "status": "failed", "error": "boom" } },
        )
        .await
        .unwrap();
    let before = shape(&t).await;
    let check = async |what: &str, result: Result<String, Error>| {
        let e = result.expect_err(what);
        assert_eq!(shape(&t).await, before, "{what} ({e}) wrote");
    };
    let baseline = m.baseline(v("20260102000000")).await;
    check("baseline over records", baseline.map(|r| format!("{r:?}"))).await;
    let resolve = m.resolve(v("20260101000000"), Resolution::Pending).await;
    check("resolve a completed one", resolve.map(|r| format!("{r:?}"))).await;
    let accept = m.resolve(v("20260103000000"), Resolution::AcceptChecksum).await;
    check("accept the checksum of a failed one", accept.map(|r| format!("{r:?}"))).await;
    let forget = m.forget(&[v("20260101000000")], true).await;
    check("forget a known one", forget.map(|r| format!("{r:?}"))).await;
    let up = m.up(UpOptions::default()).await;
    check("up while blocked", up.map(|r| format!("{r:?}"))).await;
    t.drop_db().await;
}
