//! Writes that land late: a runner's command is held in flight (by a proxy
//! between it and the server) until its lock is gone, the way a network
//! stall or a paused process delays it. Whatever lands then must change
//! nothing: the fault suite (`faults.rs`) finds these windows by chance,
//! these tests open each one on purpose.

use std::time::Duration;

use crate::common::proxy::{Hold, Proxy};
use crate::common::*;
use mongo_migrations::bson::{doc, Bson, Document};
use mongo_migrations::{Config, Error, Migration, MigrationContext, MigrationResult, Migrator, Registry, UpOptions};
use tokio::task::JoinHandle;

fn statements(command: &Document) -> Vec<Document> {
    if command.get_str("update") != Ok("migrations") {
        return Vec::new();
    }
    command
        .get_array("updates")
        .map(|u| u.iter().filter_map(Bson::as_document).cloned().collect())
        .unwrap_or_default()
}

fn sets(statement: &Document, field: &str, value: Option<&str>) -> bool {
    statement
        .get_document("u")
        .and_then(|u| u.get_document("$set"))
        .is_ok_and(|set| match value {
            Some(value) => set.get_str(field) == Ok(value),
            None => set.contains_key(field),
        })
}

/// The write that claims a plan: upserts marking versions `planned`.
fn is_plan_write(command: &Document) -> bool {
    statements(command)
        .iter()
        .any(|s| s.get_bool("upsert") == Ok(true) && sets(s, "status", Some("planned")))
}

/// The lock as a runner killed under it leaves it: held by nobody alive,
/// expired, naming the plan it may have claimed.
async fn left_by_a_killed_runner(t: &TestDb) {
    let epoch = mongo_migrations::bson::DateTime::from_millis(0);
    t.db()
        .collection::<Document>("migration_locks")
        .insert_one(doc! {
            "_id": "migrations",
            "holder": { "id": uuid::Uuid::new_v4().to_string(), "host": "gone", "pid": 1_i64, "reason": "up" },
            "generation": 1_i64,
            "acquiredAt": epoch,
            "heartbeatAt": epoch,
            "expiresAt": epoch,
            "plan": [20260101000000_i64],
            "unfenced": [],
        })
        .await
        .unwrap();
}

/// A new holder's fence: marks older claims fenced.
fn is_fence(command: &Document) -> bool {
    statements(command)
        .iter()
        .any(|s| s.get_bool("multi") == Ok(true) && sets(s, "fencedBy", None))
}

/// The step write that starts a migration.
fn is_start(command: &Document) -> bool {
    statements(command).iter().any(|s| sets(s, "status", Some("running")))
}

/// `up` that takes a while before it records its effect.
fn slow_up(ctx: &mut MigrationContext) -> mongo_migrations::BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        record_up(ctx).await
    })
}

fn five(slow: bool) -> Vec<Migration> {
    (1..=5)
        .map(|i| {
            let up = if slow { slow_up } else { record_up };
            Migration::new(v(&format!("2026010{i}000000")), format!("m{i}"), up).with_checksum(format!("sha256:m{i}"))
        })
        .collect()
}

/// A runner whose every command goes through `proxy`.
async fn proxied(t: &TestDb, proxy: &Proxy, migrations: Vec<Migration>, ttl_ms: u64) -> Migrator {
    Migrator::connect(
        &proxy.uri,
        Some(&t.name),
        Registry::new(migrations).unwrap(),
        short_lock(ttl_ms),
    )
    .await
    .unwrap()
}

/// Starts `up` on `runner` and waits until `hold` has caught its command.
async fn up_until_held(runner: Migrator, hold: &mut Hold) -> JoinHandle<Result<mongo_migrations::RunReport, Error>> {
    let run = tokio::spawn(async move { runner.up(UpOptions::default()).await });
    tokio::time::timeout(Duration::from_secs(30), hold.reached())
        .await
        .expect("the runner never sent the command to hold");
    run
}

fn up_to_second() -> UpOptions {
    UpOptions {
        to: Some(v("20260102000000")),
        ..UpOptions::default()
    }
}

async fn until_expired(m: &Migrator) {
    while m.lock_status().await.unwrap().is_some_and(|l| !l.expired) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_lock_lost(result: Result<mongo_migrations::RunReport, Error>) {
    match result {
        Err(Error::LockLost { completed, .. }) => assert!(completed.is_empty(), "{completed:?}"),
        other => panic!("expected LockLost, got {other:?}"),
    }
}

async fn applied_once(t: &TestDb) {
    let effects = t.docs("effects").await;
    let applications = t.docs("applications").await;
    assert_eq!(effects.len(), 5, "{effects:?}");
    assert_eq!(applications.len(), 5, "a migration ran twice: {applications:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_write_that_lands_after_force_unlock_changes_nothing() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let mut hold = proxy.hold(is_plan_write);
    let a = up_until_held(proxied(&t, &proxy, five(false), 30_000).await, &mut hold).await;

    let other = t.migrator(five(false));
    other.force_unlock(true).await.unwrap();
    let fenced = (t.docs("migrations").await, t.docs("effects").await);
    hold.release();

    assert_lock_lost(a.await.unwrap());
    assert_eq!(fenced, (t.docs("migrations").await, t.docs("effects").await));
    other.up(UpOptions::default()).await.unwrap();
    applied_once(&t).await;
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_write_that_lands_after_a_takeover_changes_nothing() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let mut hold = proxy.hold(is_plan_write);
    let a = up_until_held(proxied(&t, &proxy, five(false), 1_000).await, &mut hold).await;

    // The next holder applies only the first two: the versions after them
    // have no record for a late claim to collide with.
    let other = t.migrator_with(five(false), short_lock(1_000));
    until_expired(&other).await;
    assert_eq!(other.up(up_to_second()).await.unwrap().steps.len(), 2);
    let done = t.docs("migrations").await;
    hold.release();

    assert_lock_lost(a.await.unwrap());
    assert_eq!(done, t.docs("migrations").await);
    other.up(UpOptions::default()).await.unwrap();
    applied_once(&t).await;
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_that_lands_during_the_next_holders_run_changes_nothing() {
    let t = TestDb::new().await;
    // A runner fences only what an earlier holder may still write: here, the
    // plan of one that was killed under the lock.
    left_by_a_killed_runner(&t).await;
    let proxy = Proxy::start(&uri()).await;
    let mut hold = proxy.hold(is_fence);
    let a = up_until_held(proxied(&t, &proxy, five(true), 1_000).await, &mut hold).await;

    let other = t.migrator_with(five(true), short_lock(1_000));
    until_expired(&other).await;
    let b = tokio::spawn({
        let other = other.clone();
        async move { other.up(UpOptions::default()).await }
    });
    // The next holder's claims exist, and its run is in progress.
    while t.docs("migrations").await.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hold.release();

    let b = b.await.unwrap().expect("the late fence disturbed the holder's run");
    assert_eq!(b.steps.len(), 5);
    assert_lock_lost(a.await.unwrap());
    let records = t.docs("migrations").await;
    assert!(
        records
            .iter()
            .all(|r| r.get_str("status") == Ok("completed") && !r.contains_key("fencedBy")),
        "{records:?}"
    );
    applied_once(&t).await;
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_lands_after_force_unlock_starts_nothing() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let mut hold = proxy.hold(is_start);
    let a = up_until_held(proxied(&t, &proxy, five(false), 30_000).await, &mut hold).await;

    let other = t.migrator(five(false));
    other.force_unlock(true).await.unwrap();
    let fenced = t.docs("migrations").await;
    hold.release();

    assert_lock_lost(a.await.unwrap());
    assert_eq!(fenced, t.docs("migrations").await);
    assert!(t.docs("effects").await.is_empty());
    other.up(UpOptions::default()).await.unwrap();
    applied_once(&t).await;
    t.drop_db().await;
}

/// The fence runs once per holder: a stale holder's plan, inherited through
/// a holder that died before it fenced, is still fenced by the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_fenced_even_when_the_holder_after_it_died_before_fencing() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let mut plan = proxy.hold(is_plan_write);
    let a = up_until_held(proxied(&t, &proxy, five(false), 1_000).await, &mut plan).await;

    // B takes the expired lock and stalls before its fence; its lock expires too.
    let proxy_b = Proxy::start(&uri()).await;
    let mut fence = proxy_b.hold(is_fence);
    let other = t.migrator_with(five(false), short_lock(1_000));
    until_expired(&other).await;
    let b = up_until_held(proxied(&t, &proxy_b, five(false), 1_000).await, &mut fence).await;
    until_expired(&other).await;

    let config = Config {
        lock_ttl: Duration::from_secs(30),
        ..Config::default()
    };
    let c = t.migrator_with(five(false), config);
    assert_eq!(c.up(up_to_second()).await.unwrap().steps.len(), 2);
    let done = t.docs("migrations").await;
    plan.release();
    fence.release();

    assert_lock_lost(a.await.unwrap());
    assert_lock_lost(b.await.unwrap());
    assert_eq!(done, t.docs("migrations").await);
    c.up(UpOptions::default()).await.unwrap();
    applied_once(&t).await;
    t.drop_db().await;
}
