//! A migration left `running` by a crash blocks `up` until resolved.

mod common;

use common::*;
use mongo_migrate::bson::{doc, Document};
use mongo_migrate::{Error, Resolution, UpOptions};

/// What a runner that died mid-migration leaves behind.
async fn crashed_record(t: &TestDb, version: &str, name: &str) {
    let now = mongo_migrate::bson::DateTime::now();
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
    assert!(matches!(err, Error::Blocked { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("20260101000000 (first) is running"), "{text}");
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
