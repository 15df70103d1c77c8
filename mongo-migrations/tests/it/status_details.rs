//! What `status` shows of each state says where the migration stands now,
//! not what an earlier, undone or never-run step recorded.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{DownOptions, Migration, Resolution, State, UpOptions};

fn entry(status: &mongo_migrations::StatusReport, version: &str) -> mongo_migrations::StatusEntry {
    status
        .migrations
        .iter()
        .find(|e| e.version == v(version))
        .unwrap()
        .clone()
}

#[tokio::test]
async fn rolled_back_and_never_run_rows_show_no_batch_or_applied_time() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    m.up(UpOptions::default()).await.unwrap();
    m.down(DownOptions::default()).await.unwrap();
    // A claim of batch 7 that never started (a run that stopped after claiming).
    t.db()
        .collection::<Document>("migrations")
        .update_one(
            doc! { "version": v("20260102000000").as_u64() as i64 },
            doc! { "$set": { "status": "planned", "batch": 7_i64, "direction": "up" }, "$unset": { "appliedAt": "", "startedAt": "" } },
        )
        .await
        .unwrap();
    let status = m.status().await.unwrap();
    let first = entry(&status, "20260101000000");
    assert_eq!((first.state, first.batch), (State::Applied, Some(1)), "{first:?}");
    assert!(first.applied_at.is_some());
    let planned = entry(&status, "20260102000000");
    assert_eq!(
        (planned.state, planned.batch, planned.applied_at),
        (State::Pending, None, None),
        "{planned:?}"
    );
    let undone = entry(&status, "20260103000000");
    assert_eq!(
        (undone.state, undone.batch, undone.applied_at),
        (State::RolledBack, None, None),
        "{undone:?}"
    );
    t.drop_db().await;
}

/// `resolve --pending` of a failed migration, then `--applied` after all.
#[tokio::test]
async fn a_migration_resolved_pending_can_be_resolved_applied_after_all() {
    let t = TestDb::new().await;
    let failing = Migration::new(v("20260101000000"), "fails", failing);
    let m = t.migrator(vec![failing.clone()]);
    m.up(UpOptions::default()).await.unwrap_err();
    m.resolve(v("20260101000000"), Resolution::Pending).await.unwrap();
    let record = m.resolve(v("20260101000000"), Resolution::Applied).await.unwrap();
    assert_eq!(
        record.status,
        mongo_migrations::MigrationStatus::Completed,
        "{record:?}"
    );
    assert_eq!(
        entry(&m.status().await.unwrap(), "20260101000000").state,
        State::Applied
    );
    // A migration that really was rolled back is not "resolved" into applied.
    let t2 = TestDb::new().await;
    let m2 = t2.migrator(three());
    m2.up(UpOptions::default()).await.unwrap();
    m2.down(DownOptions::default()).await.unwrap();
    let e = m2.resolve(v("20260103000000"), Resolution::Applied).await.unwrap_err();
    assert!(matches!(e, mongo_migrations::Error::NotResolvable { .. }), "{e}");
    t.drop_db().await;
    t2.drop_db().await;
}

fn tx_touch(
    ctx: &mut mongo_migrations::MigrationContext,
) -> mongo_migrations::BoxFuture<'_, mongo_migrations::MigrationResult> {
    Box::pin(async move {
        let (db, session) = ctx.transaction()?;
        db.collection::<Document>("touched")
            .insert_one(doc! { "x": 1 })
            .session(session)
            .await?;
        Ok(())
    })
}

/// The time `up` reports for a step is the time its record keeps, for
/// transactional steps too (the commit is in neither).
#[tokio::test]
async fn a_steps_time_is_the_same_in_the_run_report_and_in_status() {
    let t = TestDb::new().await;
    let migrations = vec![
        reversible("20260101000000", "plain"),
        Migration::new(v("20260102000000"), "in_tx", tx_touch).with_transaction(true),
    ];
    let m = t.migrator(migrations);
    let report = m.up(UpOptions::default()).await.unwrap();
    let status = m.status().await.unwrap();
    for step in &report.steps {
        let row = status.migrations.iter().find(|e| e.version == step.version).unwrap();
        assert_eq!(step.duration_ms, row.execution_time_ms, "{step:?} / {row:?}");
    }
    t.drop_db().await;
}
