//! `up` with `continue_on_error`: five migrations, the second and the
//! fourth failing (both declared independent): the rest applied, both
//! failures recorded and listed, and nothing applied twice by the next runs,
//! through the runtime and over HTTP. A failure of a migration that does not
//! declare itself independent stops the run as without the option.

use crate::common::*;
use mongo_migrations::{Error, Migration, UpOptions};

fn five(independent: bool) -> Vec<Migration> {
    (1..=5)
        .map(|i| {
            let version = v(&format!("2026010{i}000000"));
            match i {
                2 | 4 => Migration::new(version, format!("fails_{i}"), failing).independent(independent),
                _ => Migration::new(version, format!("m{i}"), record_up),
            }
        })
        .collect()
}

fn continuing() -> UpOptions {
    UpOptions {
        continue_on_error: true,
        ..UpOptions::default()
    }
}

async fn statuses(t: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for i in 1..=5 {
        let record = t.tracking(&format!("2026010{i}000000")).await.unwrap();
        out.push(record.get_str("status").unwrap().to_string());
    }
    out
}

async fn applications(t: &TestDb) -> Vec<i64> {
    let mut versions: Vec<i64> = t
        .docs("applications")
        .await
        .iter()
        .map(|d| d.get_i64("version").unwrap())
        .collect();
    versions.sort();
    versions
}

#[tokio::test]
async fn the_run_goes_on_past_independent_failures_and_lists_them() {
    let t = TestDb::new().await;
    let err = t.migrator(five(true)).up(continuing()).await.unwrap_err();
    let Error::SomeFailed { failures, completed } = &err else {
        panic!("{err:?}");
    };
    let failed: Vec<u64> = failures.iter().map(|(v, _, _)| v.as_u64()).collect();
    assert_eq!(failed, [20260102000000, 20260104000000]);
    assert!(failures.iter().all(|(_, _, m)| m == "the index spec is invalid"));
    let done: Vec<u64> = completed.iter().map(|v| v.as_u64()).collect();
    assert_eq!(done, [20260101000000, 20260103000000, 20260105000000]);
    assert_eq!(
        err.to_string(),
        "2 migrations failed; the run went on with the others (continue on error) (recorded in this run: 20260101000000, 20260103000000, 20260105000000): 20260102000000 (fails_2): the index spec is invalid; 20260104000000 (fails_4): the index spec is invalid"
    );
    assert_eq!(err.kind(), mongo_migrations::ErrorKind::Failed);
    assert_eq!(
        statuses(&t).await,
        ["completed", "failed", "completed", "failed", "completed"]
    );
    // The next run, with the option or without, is refused by the failed
    // records, as after any failure; nothing runs twice.
    for options in [UpOptions::default(), continuing()] {
        let again = t.migrator(five(true)).up(options).await.unwrap_err();
        assert!(matches!(again, Error::Blocked { .. }), "{again:?}");
    }
    assert_eq!(applications(&t).await, [20260101000000, 20260103000000, 20260105000000]);
    t.drop_db().await;
}

#[tokio::test]
async fn a_failure_later_migrations_may_depend_on_stops_the_run_all_the_same() {
    let t = TestDb::new().await;
    let err = t.migrator(five(false)).up(continuing()).await.unwrap_err();
    assert!(
        matches!(&err, Error::MigrationFailed { version, .. } if version.as_u64() == 20260102000000),
        "{err:?}"
    );
    assert_eq!(applications(&t).await, [20260101000000]);
    let record = t.tracking("20260103000000").await;
    assert!(
        record.as_ref().is_none_or(|r| r.get_str("status") != Ok("completed")),
        "{record:?}"
    );
    t.drop_db().await;
}

#[cfg(feature = "http")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_the_run_goes_on_and_the_answer_lists_the_failures() {
    use crate::http::{call, serve_api, TOKEN};
    use mongo_migrations::http::{Api, Authorization};
    use mongo_migrations::MigrationStatus;
    use serde_json::json;
    let t = TestDb::new().await;
    let base = serve_api(Api::new(t.migrator(five(true)), Authorization::bearer(TOKEN))).await;
    let up = format!("{base}/migrations/up");
    let (code, body) = call("POST", &up, Some(TOKEN), Some(json!({ "continueOnError": true }))).await;
    assert_eq!(code, 500, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("2 migrations failed; the run went on with the others")
            && message.contains("20260102000000 (fails_2)")
            && message.contains("20260104000000 (fails_4)"),
        "{body}"
    );
    assert_eq!(
        statuses(&t).await,
        ["completed", "failed", "completed", "failed", "completed"]
    );
    let (code, _) = call("POST", &up, Some(TOKEN), Some(json!({ "continueOnError": true }))).await;
    assert_ne!(code, 200);
    assert_eq!(applications(&t).await, [20260101000000, 20260103000000, 20260105000000]);
    let records = t.migrator(five(true)).history(&Default::default()).await.unwrap();
    assert_eq!(
        records.iter().filter(|r| r.status == MigrationStatus::Failed).count(),
        2
    );
    t.drop_db().await;
}
