//! A migration left `running` by a crash blocks `up` until resolved.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{Error, Resolution, UpOptions};

/// What a runner that died mid-migration leaves behind.
async fn crashed_record(t: &TestDb, version: &str, name: &str) {
    let now = mongo_migrations::bson::DateTime::now();
    t.db()
        .collection::<Document>("migrations")
        .insert_one(doc! {
            "version": v(version).as_u64() as i64, "name": name, "description": "", "status": "running",
            "direction": "up", "batch": 1_i64, "checksum": format!("sha256:{name}"), "reversible": true,
            "lockHolder": { "id": "0b7e-dead", "generation": 1_i64 }, "createdAt": now, "updatedAt": now,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_running_record_blocks_up_with_a_hint_and_changes_nothing() {
    let t = TestDb::new().await;
    crashed_record(&t, "20260101000000", "first").await;
    let m = t.migrator(three());
    let before = t.docs("migrations").await;
    let err = m.up(UpOptions::default()).await.unwrap_err();
    // Typed: who left it, and what became of that runner.
    match &err {
        Error::Blocked {
            blocker: mongo_migrations::Blocker::LeftRunning { holder, runner, .. },
            ..
        } => {
            assert_eq!(holder.as_deref(), Some("0b7e-dead"));
            assert_eq!(*runner, mongo_migrations::Runner::Gone);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("20260101000000 (first) is running (left running by 0b7e-dead, which no longer holds the lock"),
        "{text}"
    );
    assert!(text.contains("resolve 20260101000000 --pending"), "{text}");
    // Refused before the lock is taken: nothing at all changes.
    assert_eq!(before, t.docs("migrations").await);
    assert!(m.lock_status().await.unwrap().is_none(), "a refused run took the lock");
    assert!(t.docs("effects").await.is_empty());
    t.drop_db().await;
}

#[tokio::test]
async fn resolving_as_pending_reruns_it_and_as_applied_skips_it() {
    let t = TestDb::new().await;
    crashed_record(&t, "20260101000000", "first").await;
    crashed_record(&t, "20260102000000", "second").await;
    let m = t.migrator(three());
    let first = m.resolve(v("20260101000000"), Resolution::Pending).await.unwrap();
    assert_eq!(first.metadata["resolvedFrom"], "running");
    m.resolve(v("20260102000000"), Resolution::Applied).await.unwrap();
    let report = m.up(UpOptions::default()).await.unwrap();
    let names: Vec<_> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "third"]);
    assert_eq!(m.status().await.unwrap().counts.applied, 3);

    let err = m.resolve(v("20260103000000"), Resolution::Pending).await.unwrap_err();
    assert!(err.to_string().contains("nothing to resolve"), "{err}");
    t.drop_db().await;
}

/// Deleted migration files: `forget` removes their records, keeping a copy.
#[tokio::test]
async fn forget_removes_records_of_deleted_migrations_and_keeps_an_audit_copy() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let fewer = t.migrator(three()[..2].to_vec());
    let third = v("20260103000000");
    assert!(matches!(
        fewer.up(UpOptions::default()).await,
        Err(Error::UnknownVersions { .. })
    ));

    let before = t.snapshot().await;
    assert!(matches!(
        fewer.forget(&[third], false).await,
        Err(Error::ForgetNotConfirmed)
    ));
    // A version this build has would run again; one without a record is a typo.
    for version in [v("20260102000000"), v("20260109000000")] {
        let err = fewer.forget(&[third, version], true).await.unwrap_err();
        assert!(matches!(err, Error::NotForgettable { .. }), "{err:?}");
    }
    assert_eq!(before.iter().filter(|(c, _)| c == "migrations").count(), 1);
    assert_eq!(
        t.docs("migrations").await,
        before.iter().find(|(c, _)| c == "migrations").unwrap().1
    );
    assert!(t.docs("migrations_audit").await.is_empty());

    let forgotten = fewer.forget(&[third], true).await.unwrap();
    assert_eq!(forgotten.len(), 1);
    assert_eq!(forgotten[0].version, third);
    let audit = t.docs("migrations_audit").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].get_str("action").unwrap(), "forget");
    assert!(audit[0].get_bool("removed").unwrap());
    assert_eq!(
        audit[0].get_document("record").unwrap().get_i64("version").unwrap(),
        third.as_u64() as i64
    );
    assert!(t.tracking("20260103000000").await.is_none());
    assert!(fewer.up(UpOptions::default()).await.unwrap().steps.is_empty());
    t.drop_db().await;
}

#[tokio::test]
async fn forget_is_refused_while_another_runner_holds_the_lock() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let locks = t.db().collection::<Document>("migration_locks");
    locks.delete_many(doc! {}).await.unwrap();
    t.foreign_lock("deploy-7", 9, 60_000).await;
    let fewer = t.migrator(three()[..2].to_vec());
    let err = fewer.forget(&[v("20260103000000")], true).await.unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(t.tracking("20260103000000").await.is_some());
    t.drop_db().await;
}
