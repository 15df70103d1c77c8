//! Team workflow: the out-of-order policy, rollback in applied order,
//! baseline, accepted edits and squashes.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{Config, DownOptions, DownTarget, Error, Migration, OutOfOrder, Resolution, State, UpOptions};

fn first_and_third() -> Vec<Migration> {
    let mut m = three();
    m.remove(1);
    m
}

fn applied_effects(docs: &[Document]) -> Vec<i64> {
    docs.iter().map(|d| d.get_i64("_id").unwrap()).collect()
}

/// Two branches: one deployed 1 and 3, the other brings 2 after the merge.
#[tokio::test]
async fn a_migration_older_than_the_newest_applied_is_refused_until_allowed() {
    let t = TestDb::new().await;
    t.migrator(first_and_third()).up(UpOptions::default()).await.unwrap();
    let before = t.snapshot().await;

    let m = t.migrator(three());
    let err = m.up(UpOptions::default()).await.unwrap_err();
    match &err {
        Error::OutOfOrder {
            pending,
            newest_applied,
        } => {
            assert_eq!(pending, &[(v("20260102000000"), "second".to_string())]);
            assert_eq!(*newest_applied, v("20260103000000"));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("20260102000000 (second) is pending but older than 20260103000000"),
        "{text}"
    );
    assert!(text.contains("--allow-out-of-order"), "{text}");
    assert_eq!(err.kind(), mongo_migrations::ErrorKind::Blocked);
    assert_eq!(before, t.snapshot().await, "a refused run changed something");
    // Dry-runs say the same.
    let dry = m
        .up(UpOptions {
            dry_run: true,
            ..UpOptions::default()
        })
        .await;
    assert!(matches!(dry, Err(Error::OutOfOrder { .. })), "{dry:?}");

    let status = m.status().await.unwrap();
    let second = &status.migrations[1];
    assert_eq!((second.state, second.out_of_order), (State::Pending, true));
    assert!(!status.migrations[2].out_of_order);

    // Allowed by the option, or by the configuration.
    let report = m
        .up(UpOptions {
            allow_out_of_order: true,
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 1);
    assert_eq!(
        applied_effects(&t.docs("effects").await),
        [20260101000000, 20260102000000, 20260103000000]
    );
    t.drop_db().await;

    let t = TestDb::new().await;
    t.migrator(first_and_third()).up(UpOptions::default()).await.unwrap();
    let allowing = Config {
        out_of_order: OutOfOrder::Allow,
        ..Config::default()
    };
    t.migrator_with(three(), allowing)
        .up(UpOptions::default())
        .await
        .unwrap();
    assert_eq!(t.docs("effects").await.len(), 3);
    t.drop_db().await;
}

/// `down` undoes what was applied last, not what sorts last.
#[tokio::test]
async fn down_rolls_back_in_the_order_migrations_were_applied() {
    let t = TestDb::new().await;
    t.migrator(first_and_third()).up(UpOptions::default()).await.unwrap();
    let m = t.migrator(three());
    m.up(UpOptions {
        allow_out_of_order: true,
        ..UpOptions::default()
    })
    .await
    .unwrap();
    let one = DownOptions {
        target: DownTarget::Steps(1),
        dry_run: false,
    };
    let report = m.down(one).await.unwrap();
    assert_eq!(
        report.steps[0].name, "second",
        "the out-of-order migration, applied last, goes first"
    );
    assert_eq!(
        applied_effects(&t.docs("effects").await),
        [20260101000000, 20260103000000]
    );
    let report = m.down(one).await.unwrap();
    assert_eq!(report.steps[0].name, "third");
    // Re-applying what was rolled back is not out of order.
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(t.docs("effects").await.len(), 3);
    t.drop_db().await;
}

#[tokio::test]
async fn baseline_records_without_running_and_refuses_a_database_with_records() {
    let t = TestDb::new().await;
    let m = t.migrator(three());
    let report = m.baseline(v("20260102000000")).await.unwrap();
    assert_eq!(report.steps.len(), 2);
    assert!(report.steps.iter().all(|s| s.adopted && s.batch == 1));
    assert!(t.docs("effects").await.is_empty(), "baseline ran a migration");
    let rec = t.tracking("20260102000000").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "completed");
    assert!(rec.get_bool("baseline").unwrap());
    assert!(rec.get_datetime("appliedAt").is_ok());
    assert!(m.lock_status().await.unwrap().is_none(), "the lock was not released");

    let status = m.status().await.unwrap();
    assert!(status.migrations[..2]
        .iter()
        .all(|e| e.state == State::Applied && e.baseline));
    assert!(!status.migrations[2].baseline);
    let history = m.history(&Default::default()).await.unwrap();
    assert!(history.iter().all(|r| r.baseline && r.adopted));

    let before = t.snapshot().await;
    match m.baseline(v("20260103000000")).await {
        Err(Error::NotBaselinable { recorded }) => assert_eq!(recorded.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.baseline(v("20260109000000")).await,
        Err(Error::UnknownTarget { .. })
    ));
    assert_eq!(before, t.snapshot().await, "a refused baseline changed something");

    // Only the rest runs.
    let report = m.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 1);
    assert_eq!(applied_effects(&t.docs("effects").await), [20260103000000]);
    t.drop_db().await;
}

#[tokio::test]
async fn an_accepted_edit_unblocks_up_and_keeps_the_old_checksum() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let mut edited = three();
    edited[1] = reversible("20260102000000", "second").with_checksum("sha256:second-edited");
    edited.push(reversible("20260104000000", "fourth"));
    let m = t.migrator(edited);
    assert!(matches!(
        m.up(UpOptions::default()).await,
        Err(Error::ChecksumMismatch { .. })
    ));
    assert!(m.status().await.unwrap().migrations[1].checksum_changed);

    let record = m
        .resolve(v("20260102000000"), Resolution::AcceptChecksum)
        .await
        .unwrap();
    assert_eq!(record.checksum, "sha256:second-edited");
    assert_eq!(record.accepted_checksums.len(), 1);
    assert_eq!(record.accepted_checksums[0].checksum, "sha256:second");
    assert_eq!(record.status, mongo_migrations::MigrationStatus::Completed);
    assert!(!m.status().await.unwrap().migrations[1].checksum_changed);
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(t.docs("effects").await.len(), 4);

    // Only completed migrations; rolled back ones are refused.
    m.down(DownOptions::default()).await.unwrap();
    match m.resolve(v("20260104000000"), Resolution::AcceptChecksum).await {
        Err(Error::ChecksumNotAcceptable { status, .. }) => {
            assert_eq!(status, mongo_migrations::MigrationStatus::RolledBack)
        }
        other => panic!("{other:?}"),
    }
    t.drop_db().await;
}

/// A squash of 1..3 whose `up` fails if it ever runs.
fn squash_never_run() -> Migration {
    Migration::new(v("20260103000001"), "squashed", failing)
        .with_down(record_down)
        .replacing(&[20260101000000, 20260102000000, 20260103000000])
}

#[tokio::test]
async fn a_squash_is_recorded_where_all_it_replaces_ran_and_runs_on_a_fresh_database() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let m = t.migrator(vec![squash_never_run(), reversible("20260104000000", "fourth")]);
    let dry = m
        .up(UpOptions {
            dry_run: true,
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert!(dry.steps[0].adopted && !dry.steps[1].adopted);
    let report = m.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 2);
    assert!(report.steps[0].adopted, "{report:?}");
    let rec = t.tracking("20260103000001").await.unwrap();
    assert_eq!(rec.get_str("status").unwrap(), "completed");
    assert!(rec.get_bool("adopted").unwrap() && !rec.get_bool("baseline").unwrap());

    let status = m.status().await.unwrap();
    let squashed: Vec<_> = status
        .migrations
        .iter()
        .filter(|e| e.state == State::Squashed)
        .collect();
    assert_eq!(squashed.len(), 3);
    assert!(squashed.iter().all(|e| e.squashed_into == Some(v("20260103000001"))));
    assert_eq!(
        (status.counts.squashed, status.counts.unknown, status.counts.applied),
        (3, 0, 2)
    );

    // Rolled back like any migration; the records it replaced are left alone.
    let one = DownOptions::default();
    assert_eq!(m.down(one).await.unwrap().steps[0].name, "fourth");
    assert_eq!(m.down(one).await.unwrap().steps[0].name, "squashed");
    assert!(m.down(one).await.unwrap().steps.is_empty());
    t.drop_db().await;

    // A fresh database runs it.
    let t = TestDb::new().await;
    let squash = Migration::new(v("20260103000001"), "squashed", record_up).replacing(&[
        20260101000000,
        20260102000000,
        20260103000000,
    ]);
    let report = t.migrator(vec![squash]).up(UpOptions::default()).await.unwrap();
    assert!(!report.steps[0].adopted);
    assert_eq!(applied_effects(&t.docs("effects").await), [20260103000001]);
    t.drop_db().await;
}

#[tokio::test]
async fn a_squash_over_a_partly_migrated_database_is_refused_naming_what_is_missing() {
    let t = TestDb::new().await;
    t.migrator(three())
        .up(UpOptions {
            to: Some(v("20260101000000")),
            ..UpOptions::default()
        })
        .await
        .unwrap();
    let before = t.snapshot().await;
    let m = t.migrator(vec![squash_never_run()]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    match &err {
        Error::PartialSquash { applied, missing, .. } => {
            assert_eq!(applied, &[v("20260101000000")]);
            assert_eq!(missing, &[v("20260102000000"), v("20260103000000")]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("only 20260101000000 is applied"), "{err}");
    assert_eq!(before, t.snapshot().await);
    t.drop_db().await;
}

/// A squash's `REPLACES` keeps unknown-version checks quiet only for the
/// versions it names.
#[tokio::test]
async fn records_a_squash_does_not_name_are_still_unknown() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let squash = Migration::new(v("20260102000001"), "squashed", failing).replacing(&[20260101000000, 20260102000000]);
    let err = t.migrator(vec![squash]).up(UpOptions::default()).await.unwrap_err();
    match err {
        Error::UnknownVersions { versions } => assert_eq!(versions, [(v("20260103000000"), "third".to_string())]),
        other => panic!("{other:?}"),
    }
    let n = t
        .db()
        .collection::<Document>("migrations")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(n, 3);
    t.drop_db().await;
}
