//! Dry-runs report the plan and change nothing at all.

use crate::common::*;
use mongo_migrations::{Direction, DownOptions, DownTarget, UpOptions};

#[tokio::test]
async fn a_dry_run_on_an_empty_database_creates_nothing() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    let report = m
        .up(UpOptions {
            dry_run: true,
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.direction, Direction::Up);
    let planned: Vec<_> = report
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.batch, s.duration_ms))
        .collect();
    assert_eq!(planned, [("first", 1, None), ("second", 1, None), ("third", 1, None)]);
    assert!(
        t.snapshot().await.is_empty(),
        "a dry-run created collections or documents"
    );
    t.drop_db().await;
}

#[tokio::test]
async fn dry_runs_of_up_and_down_leave_every_collection_as_it_was() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    m.up(UpOptions {
        to: Some(v("20260102000000")),
        ..UpOptions::default()
    })
    .await
    .unwrap();
    let before = t.snapshot().await;
    assert!(
        before.iter().any(|(n, _)| n == "migration_locks"),
        "the snapshot must cover the lock"
    );

    let up = m
        .up(UpOptions {
            dry_run: true,
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(
        up.steps.iter().map(|s| (s.name.as_str(), s.batch)).collect::<Vec<_>>(),
        [("third", 2)]
    );
    let down = m
        .down(DownOptions {
            target: DownTarget::Steps(2),
            dry_run: true,
        })
        .await
        .unwrap();
    assert_eq!(
        down.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["second", "first"]
    );
    assert_eq!(before, t.snapshot().await, "a dry-run changed the database");
    t.drop_db().await;
}

#[tokio::test]
async fn a_dry_run_reports_the_same_errors_a_real_run_would() {
    let t = TestDb::new().await;
    t.migrator(vec![irreversible("20260101000000", "one_way")])
        .up(UpOptions::default())
        .await
        .unwrap();
    let m = t.migrator(vec![irreversible("20260101000000", "one_way")]);
    let before = t.snapshot().await;
    let err = m
        .down(DownOptions {
            target: DownTarget::Steps(1),
            dry_run: true,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("irreversible"), "{err}");
    assert_eq!(before, t.snapshot().await);
    t.drop_db().await;
}
