//! Applying and rolling back, tracking records, status and history.

use crate::common::*;
use mongo_migrations::{
    auto_run, AutoRun, AutoRunConfig, DownOptions, DownTarget, Error, HistoryQuery, Migration, MigrationStatus, State,
    UpOptions,
};

#[tokio::test]
async fn applies_in_version_order_and_records_each() {
    let t = TestDb::new().await;
    let report = t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let names: Vec<_> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    assert!(report.steps.iter().all(|s| s.batch == 1 && s.duration_ms.is_some()));

    let applied: Vec<i64> = t
        .docs("applications")
        .await
        .iter()
        .map(|d| d.get_i64("version").unwrap())
        .collect();
    assert_eq!(applied, [20260101000000, 20260102000000, 20260103000000]);

    let rec = t.tracking("20260102000000").await.unwrap();
    assert_eq!(rec.get_str("name").unwrap(), "second");
    assert_eq!(rec.get_str("description").unwrap(), "second description");
    assert_eq!(rec.get_str("status").unwrap(), "completed");
    assert_eq!(rec.get_str("checksum").unwrap(), "sha256:second");
    assert_eq!(rec.get_i64("batch").unwrap(), 1);
    assert!(rec.get_bool("reversible").unwrap());
    assert!(rec.get_i64("executionTimeMs").unwrap() >= 0);
    for field in ["appliedAt", "createdAt", "updatedAt"] {
        assert!(rec.get_datetime(field).is_ok(), "{field} missing in {rec}");
    }
    assert!(rec.get_document("lockHolder").unwrap().get_i64("generation").unwrap() >= 1);
    assert!(rec.get("error").unwrap().as_null().is_some());

    // Nothing pending: a second run applies nothing and opens no new batch.
    let again = t.migrator(three()).up(UpOptions::default()).await.unwrap();
    assert!(again.steps.is_empty());
    t.drop_db().await;
}

#[tokio::test]
async fn each_run_is_a_batch_and_down_targets_steps_batch_or_version() {
    let t = TestDb::new().await;
    let all = || {
        let mut m = three();
        m.push(reversible("20260104000000", "fourth"));
        m
    };
    let m = t.migrator(all());
    m.up(UpOptions {
        to: Some(v("20260102000000")),
        ..Default::default()
    })
    .await
    .unwrap();
    let second = m.up(UpOptions::default()).await.unwrap();
    assert!(second.steps.iter().all(|s| s.batch == 2), "{second:?}");
    assert_eq!(second.steps.len(), 2);

    // Whole last batch, newest first.
    let down = m
        .down(DownOptions {
            target: DownTarget::LastBatch,
            dry_run: false,
        })
        .await
        .unwrap();
    let names: Vec<_> = down.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fourth", "third"]);
    let rec = t.tracking("20260104000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "rolled-back");
    assert!(rec.get_datetime("rolledBackAt").is_ok());

    // One step.
    let down = m.down(DownOptions::default()).await.unwrap();
    assert_eq!(down.steps[0].name, "second");
    let effects: Vec<i64> = t
        .docs("effects")
        .await
        .iter()
        .map(|d| d.get_i64("_id").unwrap())
        .collect();
    assert_eq!(effects, [20260101000000]);

    // Re-applying rolled-back migrations works and opens batch 3.
    let up = m.up(UpOptions::default()).await.unwrap();
    assert_eq!(up.steps.len(), 3);
    assert!(up.steps.iter().all(|s| s.batch == 3));

    // Down to a version keeps that version applied.
    let down = m
        .down(DownOptions {
            target: DownTarget::To(v("20260102000000")),
            dry_run: false,
        })
        .await
        .unwrap();
    let names: Vec<_> = down.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fourth", "third"]);
    let status = m.status().await.unwrap();
    assert_eq!(status.counts.applied, 2);
    assert_eq!(status.counts.pending, 2);
    t.drop_db().await;
}

#[tokio::test]
async fn irreversible_migrations_refuse_rollback_and_nothing_is_rolled_back() {
    let t = TestDb::new().await;
    let migrations = || {
        vec![
            irreversible("20260101000000", "drop_legacy"),
            reversible("20260102000000", "add_index"),
        ]
    };
    let m = t.migrator(migrations());
    m.up(UpOptions::default()).await.unwrap();
    let before = t.snapshot().await;
    let err = m
        .down(DownOptions {
            target: DownTarget::Steps(2),
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Irreversible { .. }), "{err}");
    assert!(err.to_string().contains("drop_legacy"), "{err}");
    let after = t.snapshot().await;
    // Only the lock document's release bookkeeping may differ.
    assert_eq!(strip_lock(before), strip_lock(after));
    assert_eq!(m.status().await.unwrap().counts.applied, 2);
    t.drop_db().await;
}

fn strip_lock(
    mut snapshot: Vec<(String, Vec<mongo_migrations::bson::Document>)>,
) -> Vec<(String, Vec<mongo_migrations::bson::Document>)> {
    snapshot.retain(|(name, _)| name != "migration_locks");
    snapshot
}

#[tokio::test]
async fn a_failed_migration_is_recorded_and_blocks_until_resolved() {
    let t = TestDb::new().await;
    let migrations = || {
        vec![
            reversible("20260101000000", "ok"),
            Migration::new(v("20260102000000"), "broken", failing),
            reversible("20260103000000", "after"),
        ]
    };
    let m = t.migrator(migrations());
    let err = m.up(UpOptions::default()).await.unwrap_err();
    // It says what the run had recorded before it failed.
    match &err {
        Error::MigrationFailed { completed, .. } => assert_eq!(completed, &[v("20260101000000")]),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .ends_with("the index spec is invalid (recorded before it in this run: 20260101000000)"),
        "{err}"
    );

    let rec = t.tracking("20260102000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "failed");
    assert_eq!(rec.get_str("error").unwrap(), "the index spec is invalid");
    // Claimed with the plan, never started: it stays pending.
    let after = t.tracking("20260103000000").await.unwrap();
    assert_eq!(
        after.get_str("status").unwrap(),
        "planned",
        "ran past a failure: {after}"
    );
    assert!(t
        .docs("effects")
        .await
        .iter()
        .all(|d| d.get_i64("_id").unwrap() != 20260103000000));
    assert!(
        m.lock_status().await.unwrap().is_none_or(|l| l.expired),
        "lock not released"
    );

    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Blocked { blocker: mongo_migrations::Blocker::Failed { error, .. }, .. } if error == "the index spec is invalid"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("20260102000000") && text.contains("broken") && text.contains("resolve"),
        "{text}"
    );

    let status = m.status().await.unwrap();
    assert_eq!(
        (status.counts.applied, status.counts.failed, status.counts.pending),
        (1, 1, 1)
    );
    assert_eq!(status.migrations[1].state, State::Failed);
    assert_eq!(status.migrations[1].error.as_deref(), Some("the index spec is invalid"));
    t.drop_db().await;
}

#[tokio::test]
async fn a_panicking_migration_releases_the_lock_and_is_recorded_as_failed() {
    fn panics(
        _: &mut mongo_migrations::MigrationContext,
    ) -> mongo_migrations::BoxFuture<'_, mongo_migrations::MigrationResult> {
        Box::pin(async { panic!("boom in migration") })
    }
    let t = TestDb::new().await;
    let m = t.migrator(vec![Migration::new(v("20260101000000"), "panics", panics)]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("panicked: boom in migration"), "{err}");
    let rec = t.tracking("20260101000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "failed");
    let lock = m.lock_status().await.unwrap();
    assert!(lock.is_none_or(|l| l.expired), "lock still held after a panic");
    t.drop_db().await;
}

#[tokio::test]
async fn history_filters_by_status_and_paginates() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    m.up(UpOptions::default()).await.unwrap();
    m.down(DownOptions::default()).await.unwrap();

    let all = m.history(&HistoryQuery::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].name, "third", "most recent change first");

    let completed = m
        .history(&HistoryQuery {
            status: Some(MigrationStatus::Completed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        completed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["second", "first"]
    );

    let page = m
        .history(&HistoryQuery {
            status: None,
            skip: 1,
            limit: Some(1),
            runs: false,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, all[1].name);

    let rolled = m
        .history(&HistoryQuery {
            status: Some(MigrationStatus::RolledBack),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rolled.len(), 1);
    assert!(rolled[0].rolled_back_at.is_some());
    t.drop_db().await;
}

#[tokio::test]
async fn status_reports_states_counts_and_lock() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    let fresh = m.status().await.unwrap();
    assert_eq!(fresh.counts.pending, 3);
    assert!(fresh.lock.is_none());
    m.up(UpOptions {
        to: Some(v("20260101000000")),
        ..Default::default()
    })
    .await
    .unwrap();
    let status = m.status().await.unwrap();
    let states: Vec<_> = status.migrations.iter().map(|e| e.state).collect();
    assert_eq!(states, [State::Applied, State::Pending, State::Pending]);
    assert_eq!((status.counts.applied, status.counts.pending), (1, 2));
    assert_eq!(status.migrations[0].batch, Some(1));
    assert!(
        status.lock.is_none(),
        "a released lock reads as free: {:?}",
        status.lock
    );
    t.drop_db().await;
}

#[tokio::test]
async fn unknown_applied_versions_are_refused_and_nothing_changes() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    // A build that lacks the third migration.
    let older = t.migrator(three().into_iter().take(2).collect());
    let before = t.snapshot().await;
    let err = older.up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownVersions { .. }), "{err}");
    assert!(err.to_string().contains("20260103000000 (third)"), "{err}");
    let err = older.down(DownOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownVersions { .. }), "{err}");
    assert_eq!(strip_lock(before), strip_lock(t.snapshot().await));
    let status = older.status().await.unwrap();
    assert_eq!(status.counts.unknown, 1);
    t.drop_db().await;
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_and_nothing_changes() {
    let t = TestDb::new().await;
    t.migrator(three())
        .up(UpOptions {
            to: Some(v("20260102000000")),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut edited = three();
    edited[0] = reversible("20260101000000", "first").with_checksum("sha256:edited");
    let m = t.migrator(edited);
    let before = t.snapshot().await;
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("sha256:first") && err.to_string().contains("sha256:edited"));
    assert_eq!(strip_lock(before), strip_lock(t.snapshot().await));
    assert!(t.tracking("20260103000000").await.is_none());
    assert!(m.status().await.unwrap().migrations[0].checksum_changed);
    t.drop_db().await;
}

#[tokio::test]
async fn auto_run_is_off_by_default_applies_when_on_and_fails_hard_in_strict_mode() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    let off = auto_run(&m, AutoRunConfig::default()).await.unwrap();
    assert!(matches!(off, AutoRun::Disabled));
    assert!(t.snapshot().await.is_empty(), "disabled auto-run touched the database");

    let on = AutoRunConfig {
        enabled: true,
        ..Default::default()
    };
    match auto_run(&m, on).await.unwrap() {
        AutoRun::Applied(report) => assert_eq!(report.steps.len(), 3),
        other => panic!("expected Applied, got {other:?}"),
    }

    let broken = t.migrator({
        let mut m = three();
        m.push(Migration::new(v("20260104000000"), "broken", failing));
        m
    });
    match auto_run(&broken, on).await.unwrap() {
        AutoRun::Failed(e) => assert!(matches!(e, Error::MigrationFailed { .. }), "{e}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    let strict = AutoRunConfig {
        enabled: true,
        fail_hard: true,
        ..Default::default()
    };
    let err = auto_run(&broken, strict).await.unwrap_err();
    assert!(matches!(err, Error::Blocked { .. }), "{err}");
    t.drop_db().await;
}

#[tokio::test]
async fn auto_run_waits_while_another_instance_holds_the_lock() {
    let t = TestDb::new().await;
    // Another replica's lock, expiring in 1.5 s (as if it died mid-run).
    t.foreign_lock("replica-2", 1, 1_500).await;
    let m = t.migrator(three());
    let impatient = AutoRunConfig {
        enabled: true,
        fail_hard: false,
        lock_wait: std::time::Duration::ZERO,
        ..AutoRunConfig::default()
    };
    match auto_run(&m, impatient).await.unwrap() {
        AutoRun::Failed(Error::Locked { .. }) => {}
        other => panic!("expected Failed(Locked), got {other:?}"),
    }
    let patient = AutoRunConfig {
        enabled: true,
        fail_hard: true,
        lock_wait: std::time::Duration::from_secs(20),
        ..AutoRunConfig::default()
    };
    match auto_run(&m, patient).await.unwrap() {
        AutoRun::Applied(report) => assert_eq!(report.steps.len(), 3),
        other => panic!("expected Applied, got {other:?}"),
    }
    t.drop_db().await;
}
