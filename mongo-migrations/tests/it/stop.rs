//! A stop request (Ctrl-C in the harness) ends a run between migrations:
//! the one in progress finishes and is recorded, the rest stay pending, and
//! the lock is released.

use std::sync::OnceLock;

use crate::common::*;
use mongo_migrations::{
    BoxFuture, DownOptions, DownTarget, Migration, MigrationContext, MigrationResult, StopHandle, UpOptions,
};

/// The handle the second migration pulls, as Ctrl-C would while it runs.
static STOP_DURING_SECOND: OnceLock<StopHandle> = OnceLock::new();

fn record_then_stop(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    STOP_DURING_SECOND.get().expect("set by the test").stop();
    record_up(ctx)
}

fn names(steps: &[mongo_migrations::Step]) -> Vec<&str> {
    steps.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn a_stop_during_a_migration_lets_it_finish_and_leaves_the_rest_pending() {
    let t = TestDb::new().await;
    let stop = STOP_DURING_SECOND.get_or_init(StopHandle::new).clone();
    let migrations = vec![
        reversible("20260101000000", "first"),
        Migration::new(v("20260102000000"), "second", record_then_stop).with_checksum("sha256:second"),
        reversible("20260103000000", "third"),
    ];
    let report = t
        .migrator(migrations.clone())
        .with_stop(stop)
        .up(UpOptions::default())
        .await
        .unwrap();
    assert!(report.stopped());
    assert_eq!(names(&report.steps), ["first", "second"]);
    assert_eq!(names(&report.skipped), ["third"]);
    assert_eq!(
        t.docs("effects").await.len(),
        2,
        "the stopped run applied the wrong migrations"
    );

    // Recorded as done, the lock free: a new run goes on where it stopped.
    let m = t.migrator(migrations);
    let status = m.status().await.unwrap();
    assert_eq!((status.counts.applied, status.counts.pending), (2, 1));
    assert!(status.lock.is_none(), "the lock was not released: {:?}", status.lock);
    let report = m.up(UpOptions::default()).await.unwrap();
    assert!(!report.stopped());
    assert_eq!(names(&report.steps), ["third"]);
    t.drop_db().await;
}

#[tokio::test]
async fn a_rollback_stopped_before_it_starts_changes_no_record_and_frees_the_lock() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let before = t.docs("migrations").await;
    let stop = StopHandle::new();
    stop.stop();
    let options = DownOptions {
        target: DownTarget::Steps(2),
        dry_run: false,
    };
    let report = t.migrator(three()).with_stop(stop).down(options).await.unwrap();
    assert!(report.steps.is_empty());
    assert_eq!(names(&report.skipped), ["third", "second"]);
    assert_eq!(t.docs("migrations").await, before);
    assert_eq!(t.docs("effects").await.len(), 3);
    assert!(t.migrator(three()).lock_status().await.unwrap().is_none());
    t.drop_db().await;
}
