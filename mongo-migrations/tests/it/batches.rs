//! Data migrations in batches: every matching document once, checkpoints
//! that a failed or fenced run resumes from, and clear refusals.

use std::sync::{Mutex, OnceLock};

use crate::common::*;
use mongo_migrations::bson::{doc, Bson, Document};
use mongo_migrations::mongodb::Database;
use mongo_migrations::{BoxFuture, DownOptions, Error, Migration, MigrationContext, MigrationResult, UpOptions};

/// Each test's knobs, by database name (tests run in parallel).
#[derive(Default)]
struct Knobs {
    /// Fail the batch with this number (1-based), once.
    fail_batch: Option<usize>,
    /// Stop the run (as Ctrl-C does) during this batch.
    stop_in_batch: Option<usize>,
    /// Force-unlock (as an operator would) during this batch.
    unlock_in_batch: Option<usize>,
    batches: usize,
}

fn knobs() -> &'static Mutex<std::collections::HashMap<String, Knobs>> {
    static K: OnceLock<Mutex<std::collections::HashMap<String, Knobs>>> = OnceLock::new();
    K.get_or_init(Default::default)
}

/// Segment `i` of the first walk's checkpoint.
fn part(record: &Document, i: usize) -> Document {
    let walk = record.get_document("checkpoints").unwrap().get_document("0").unwrap();
    walk.get_array("parts").unwrap()[i].as_document().unwrap().clone()
}

/// Documents done by the first walk, all segments.
pub(crate) fn done_of(record: &Document) -> i64 {
    record
        .get_document("checkpoints")
        .ok()
        .and_then(|c| c.get_document("0").ok())
        .and_then(|w| w.get_array("parts").ok())
        .map_or(0, |parts| {
            parts.iter().filter_map(|p| p.as_document()?.get_i64("done").ok()).sum()
        })
}

/// The stop handles of runs, by database name.
fn stops() -> &'static Mutex<std::collections::HashMap<String, mongo_migrations::StopHandle>> {
    static S: OnceLock<Mutex<std::collections::HashMap<String, mongo_migrations::StopHandle>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// Marks each document `x: 1` and logs it in `seen` (unique `_id`: a
/// document handed over twice, with its batch done, would fail there).
async fn mark(batch: Vec<Document>, db: Database) -> MigrationResult {
    let name = db.name().to_string();
    let (fail, unlock) = {
        let mut k = knobs().lock().unwrap();
        let k = k.entry(name.clone()).or_default();
        k.batches += 1;
        let n = k.batches;
        if k.stop_in_batch.take_if(|b| *b == n).is_some() {
            stops().lock().unwrap()[&name].stop();
        }
        (
            k.fail_batch.take_if(|b| *b == n).is_some(),
            k.unlock_in_batch.take_if(|b| *b == n).is_some(),
        )
    };
    if unlock {
        let operator = mongo_migrations::Migrator::new(
            db.client().clone(),
            &name,
            mongo_migrations::Registry::default(),
            mongo_migrations::Config::default(),
        );
        operator.force_unlock(true).await?;
    }
    if fail {
        return Err("the batch failed (as the test asked)".into());
    }
    let ids: Vec<Bson> = batch.iter().map(|d| d.get("_id").cloned().unwrap()).collect();
    db.collection::<Document>("items")
        .update_many(doc! { "_id": { "$in": ids.clone() } }, doc! { "$set": { "x": 1 } })
        .await?;
    let seen: Vec<Document> = ids.into_iter().map(|id| doc! { "_id": id }).collect();
    db.collection::<Document>("seen").insert_many(seen).await?;
    Ok(())
}

fn up_marks(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! { "kind": "a" }).size(100).run(mark).await?;
        Ok(())
    })
}

fn down_unmarks(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! { "x": 1 })
            .size(100)
            .run(|batch, db| async move {
                let ids: Vec<Bson> = batch.iter().map(|d| d.get("_id").cloned().unwrap()).collect();
                db.collection::<Document>("items")
                    .update_many(doc! { "_id": { "$in": ids } }, doc! { "$unset": { "x": "" } })
                    .await?;
                Ok(())
            })
            .await?;
        Ok(())
    })
}

fn marks() -> Vec<Migration> {
    vec![Migration::new(v("20260101000000"), "mark_items", up_marks).with_down(down_unmarks)]
}

/// `n` documents of kind `a` (matching) and `n / 2` of kind `b`, with `_id`s from `id`.
async fn items(t: &TestDb, n: usize, id: impl Fn(usize) -> Bson) {
    let docs: Vec<Document> = (0..n + n / 2)
        .map(|i| doc! { "_id": id(i), "kind": if i < n { "a" } else { "b" } })
        .collect();
    t.db().collection::<Document>("items").insert_many(docs).await.unwrap();
}

async fn marked(t: &TestDb) -> u64 {
    t.db()
        .collection::<Document>("items")
        .count_documents(doc! { "x": 1 })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_walk_hands_every_matching_document_over_once_and_down_uses_it_too() {
    let t = TestDb::new().await;
    items(
        &t,
        250,
        |_| Bson::ObjectId(mongo_migrations::bson::oid::ObjectId::new()),
    )
    .await;
    let events = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let m = t
        .migrator(marks())
        .with_progress(move |p| log.lock().unwrap().push(p.clone()));
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 250);
    // One progress event per batch, with the total counted at the start.
    let batches: Vec<(u64, u64)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| match p {
            mongo_migrations::Progress::Batch { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![(100, 250), (200, 250), (250, 250)]);
    assert_eq!(t.docs("seen").await.len(), 250);
    assert_eq!(knobs().lock().unwrap()[&t.name].batches, 3);
    // Done: no checkpoint is left for a later run.
    let record = t.tracking("20260101000000").await.unwrap();
    assert!(!record.contains_key("checkpoints"), "{record}");

    m.down(DownOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 0);
    t.drop_db().await;
}

#[tokio::test]
async fn a_failed_walk_resumes_at_its_last_checkpoint_without_a_resolve() {
    let t = TestDb::new().await;
    items(&t, 450, |i| Bson::Int64(i as i64)).await;
    knobs().lock().unwrap().entry(t.name.clone()).or_default().fail_batch = Some(3);
    let m = t.migrator(marks());
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("the batch failed"), "{err}");
    assert_eq!(marked(&t).await, 200, "two batches were done before the failure");
    let record = t.tracking("20260101000000").await.unwrap();
    assert_eq!(record.get_str("status").unwrap(), "failed");
    let point = part(&record, 0);
    assert_eq!(point.get_i64("done").unwrap(), 200, "{record}");
    assert_eq!(point.get("lastId"), Some(&Bson::Int64(199)));

    // Not blocked: the next `up` resumes after document 199. `status` (and
    // so the HTTP status route) shows how far it got.
    let status = m.status().await.unwrap();
    assert_eq!(status.counts.pending, 1, "{status:?}");
    assert_eq!(status.migrations[0].documents_done, Some(200), "{status:?}");
    // So does `history`.
    let history = m.history(&Default::default()).await.unwrap();
    assert_eq!(history[0].documents_done(), Some(200));
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 450);
    let history = m.history(&Default::default()).await.unwrap();
    assert_eq!(
        history[0].documents_done(),
        None,
        "a finished walk has no progress to show"
    );
    // Each document went through once: `seen` has a unique `_id`.
    assert_eq!(t.docs("seen").await.len(), 450);
    let record = t.tracking("20260101000000").await.unwrap();
    assert_eq!(record.get_str("status").unwrap(), "completed");
    t.drop_db().await;
}

#[tokio::test]
async fn an_empty_collection_and_a_filter_that_matches_nothing_complete_at_once() {
    let t = TestDb::new().await;
    let m = t.migrator(marks());
    m.up(UpOptions::default()).await.unwrap();
    assert!(t.docs("seen").await.is_empty());
    m.down(DownOptions::default()).await.unwrap();
    // Only kind `b`: nothing matches.
    t.db()
        .collection::<Document>("items")
        .insert_many((0..10).map(|i| doc! { "_id": format!("k{i:02}"), "kind": "b" }))
        .await
        .unwrap();
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 0);
    t.drop_db().await;
}

#[tokio::test]
async fn string_ids_are_walked_and_mixed_id_types_are_refused_clearly() {
    let t = TestDb::new().await;
    items(&t, 150, |i| Bson::String(format!("item-{i:04}"))).await;
    let m = t.migrator(marks());
    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 150);

    let t2 = TestDb::new().await;
    items(&t2, 20, |i| {
        if i % 2 == 0 {
            Bson::Int64(i as i64)
        } else {
            Bson::String(format!("s{i}"))
        }
    })
    .await;
    let err = t2.migrator(marks()).up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::MigrationFailed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("more than one type (number and string)"),
        "{err}"
    );
    assert_eq!(marked(&t2).await, 0);
    t.drop_db().await;
    t2.drop_db().await;
}

/// The lock is force-unlocked while a batch runs: the batch's own writes
/// happen (nothing can stop a body from outside), but its checkpoint does
/// not land after the fence, and no further batch starts.
#[tokio::test]
async fn a_walk_stops_after_the_batch_in_which_its_lock_was_lost() {
    let t = TestDb::new().await;
    items(&t, 450, |i| Bson::Int64(i as i64)).await;
    knobs()
        .lock()
        .unwrap()
        .entry(t.name.clone())
        .or_default()
        .unlock_in_batch = Some(2);
    let m = t.migrator(marks());
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");
    assert_eq!(
        knobs().lock().unwrap()[&t.name].batches,
        2,
        "a batch started after the fence"
    );
    assert_eq!(marked(&t).await, 200);
    let record = t.tracking("20260101000000").await.unwrap();
    assert_eq!(record.get_str("status").unwrap(), "running", "{record}");
    assert!(record.contains_key("fencedBy"), "{record}");
    // Batch 1's checkpoint landed before the fence; batch 2's did not.
    assert_eq!(part(&record, 0).get_i64("done").unwrap(), 100, "{record}");
    t.drop_db().await;
}

/// Counts each hand-over in `handled` (deliberately not idempotent, to
/// measure how much is redone) and sets `x` (idempotent: the outcome). In
/// the killed child, the batch with the last item then waits at the
/// parent's gate, which never opens: the walk is still under way when the
/// kill lands, wherever it was meant to land, on any machine.
async fn count_and_mark(batch: Vec<Document>, db: Database) -> MigrationResult {
    let ids: Vec<Bson> = batch.iter().map(|d| d.get("_id").cloned().unwrap()).collect();
    let last = ids.contains(&Bson::Int64(KILL_ITEMS - 1));
    db.collection::<Document>("items")
        .update_many(
            doc! { "_id": { "$in": ids } },
            doc! { "$set": { "x": 1 }, "$inc": { "handled": 1 } },
        )
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    if last {
        crate::common::child::gate().await;
    }
    Ok(())
}

/// The items the killed walk goes over (`_id`s 0 to 999).
const KILL_ITEMS: i64 = 1_000;

const KILL_BATCH: u32 = 50;

fn up_counts(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! {})
            .size(KILL_BATCH)
            .run(count_and_mark)
            .await?;
        Ok(())
    })
}

fn counting() -> Vec<Migration> {
    vec![Migration::new(v("20260101000000"), "count_items", up_counts)]
}

/// Run by `a_killed_walk_resumes_with_at_most_one_batch_redone` as a child.
#[test]
#[ignore = "the child process of `a_killed_walk_resumes_with_at_most_one_batch_redone`"]
fn batch_child_runner() {
    let db = std::env::var("BATCH_DB").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let m = mongo_migrations::Migrator::connect(
            &uri(),
            Some(&db),
            mongo_migrations::Registry::new(counting()).unwrap(),
            short_lock(1_000),
        )
        .await
        .unwrap();
        let _ = m.up(UpOptions::default()).await;
    });
}

/// kill -9 of a runner in the middle of a walk, at a random checkpoint:
/// the next `up` resumes it without a `resolve`, every document ends up
/// transformed, and at most one batch is handed over twice. `BATCH_SEED`
/// replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_walk_resumes_with_at_most_one_batch_redone() {
    let seed: u64 = std::env::var("BATCH_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |s| s.parse().unwrap(),
    );
    println!("kill -9 of a walk: BATCH_SEED={seed}");
    let mut state = seed | 1;
    for trial in 0..3 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let kill_at = 100 + (state % 700) as i64;
        let t = TestDb::new().await;
        items(&t, KILL_ITEMS as usize, |i| Bson::Int64(i as i64)).await;
        t.db()
            .collection::<Document>("items")
            .delete_many(doc! { "kind": "b" })
            .await
            .unwrap();
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        let mut child = crate::common::child::gated(&mut command)
            .args([
                "batches::batch_child_runner",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("BATCH_DB", &t.name)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let done = t.tracking("20260101000000").await.map_or(0, |r| done_of(&r));
            if done >= kill_at {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "trial {trial}: the child made no progress"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let m = t
            // Its own lock lives 10 s: a 1 s one can expire between
            // heartbeats on a loaded machine; the killed child's is 1 s.
            .migrator_with(counting(), short_lock(10_000))
            .with_lock_wait(std::time::Duration::from_secs(30));
        m.up(UpOptions::default()).await.unwrap();
        let docs = t.docs("items").await;
        let handled = |d: &Document| {
            d.get_i32("handled")
                .map(i64::from)
                .or_else(|_| d.get_i64("handled"))
                .unwrap_or(0)
        };
        assert!(
            docs.iter().all(|d| d.contains_key("x")),
            "trial {trial} (seed {seed}): a document was missed"
        );
        let twice = docs.iter().filter(|d| handled(d) > 1).count();
        assert!(
            twice <= KILL_BATCH as usize,
            "trial {trial} (seed {seed}, killed at {kill_at}): {twice} documents redone, more than one batch"
        );
        assert!(docs.iter().all(|d| handled(d) <= 2), "trial {trial} (seed {seed})");
        t.drop_db().await;
    }
}

fn up_lowers(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let stats = ctx
            .batches("items", doc! { "kind": "a" })
            .size(64)
            .update_each(|d| {
                let id = d.get("_id")?.as_i64()?;
                (id % 10 != 0).then(|| doc! { "$set": { "label": format!("item-{id}") } })
            })
            .await?;
        assert_eq!((stats.batches, stats.documents), (4, 200));
        Ok(())
    })
}

#[tokio::test]
async fn update_each_sends_one_update_per_batch_and_skips_documents_it_leaves() {
    let t = TestDb::new().await;
    items(&t, 200, |i| Bson::Int64(i as i64)).await;
    let m = t.migrator(vec![Migration::new(v("20260101000000"), "label_items", up_lowers)]);
    m.up(UpOptions::default()).await.unwrap();
    let labelled = t
        .db()
        .collection::<Document>("items")
        .count_documents(doc! { "label": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(labelled, 180);
    let one = t
        .db()
        .collection::<Document>("items")
        .find_one(doc! { "_id": 7_i64 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.get_str("label").unwrap(), "item-7");
    t.drop_db().await;
}

/// Ctrl-C (a stop) ends a walk after the batch in flight, with its
/// checkpoint; the next run goes on from there, and a throttle holds.
#[tokio::test]
async fn a_stopped_walk_ends_after_its_batch_and_the_next_run_goes_on() {
    let t = TestDb::new().await;
    items(&t, 300, |i| Bson::Int64(i as i64)).await;
    let stop = mongo_migrations::StopHandle::new();
    stops().lock().unwrap().insert(t.name.clone(), stop.clone());
    knobs().lock().unwrap().entry(t.name.clone()).or_default().stop_in_batch = Some(2);
    let m = t.migrator(marks()).with_stop(stop);
    // Stopped on request, not failed: the report says where the walk stopped.
    let report = m.up(UpOptions::default()).await.unwrap();
    assert!(report.steps.is_empty() && report.stopped(), "{report:?}");
    let walk = report.stopped_walk.expect("the stopped walk");
    assert_eq!(
        (walk.version, walk.documents_done, walk.documents_total),
        (v("20260101000000"), 200, None)
    );
    assert_eq!(marked(&t).await, 200);
    let record = t.tracking("20260101000000").await.unwrap();
    assert_eq!(part(&record, 0).get_i64("done").unwrap(), 200, "{record}");
    assert_eq!(record.get_str("status").unwrap(), "running", "{record}");
    assert!(
        record.contains_key("stoppedAt") && record.get("error") == Some(&Bson::Null),
        "{record}"
    );
    let status = t.migrator(marks()).status().await.unwrap();
    assert_eq!(
        status.migrations[0].state,
        mongo_migrations::State::Pending,
        "{status:?}"
    );
    assert!(
        status.migrations[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("stopped on request at ")),
        "{status:?}"
    );

    t.migrator(marks()).up(UpOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 300);
    assert_eq!(t.docs("seen").await.len(), 300);
    t.drop_db().await;
}

fn up_throttled(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! {})
            .size(10)
            .max_rate(100)
            .update_each(|_| Some(doc! { "$set": { "x": 1 } }))
            .await?;
        Ok(())
    })
}

#[tokio::test]
async fn max_rate_holds_a_walk_to_its_rate() {
    let t = TestDb::new().await;
    items(&t, 40, |i| Bson::Int64(i as i64)).await;
    let m = t.migrator(vec![Migration::new(v("20260101000000"), "throttled", up_throttled)]);
    let start = std::time::Instant::now();
    m.up(UpOptions::default()).await.unwrap();
    // 60 documents at 100/s: at least 0.5 s (the last batch is not waited for).
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(marked(&t).await, 60);
    t.drop_db().await;
}

fn up_with_inserts(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! { "kind": "a" })
            .size(100)
            .run(|batch, db| async move {
                let items = db.collection::<Document>("items");
                // While the walk is in its first batch, the application
                // inserts one document behind the walk and one ahead of it.
                if batch.first().and_then(|d| d.get_i64("_id").ok()) == Some(0) {
                    items
                        .insert_many([
                            doc! { "_id": -1_i64, "kind": "a" },
                            doc! { "_id": 10_000_i64, "kind": "a" },
                        ])
                        .await?;
                }
                let ids: Vec<Bson> = batch.iter().map(|d| d.get("_id").cloned().unwrap()).collect();
                items
                    .update_many(doc! { "_id": { "$in": ids } }, doc! { "$set": { "x": 1 } })
                    .await?;
                Ok(())
            })
            .await?;
        Ok(())
    })
}

/// As documented: a document inserted during a walk is covered when its
/// `_id` sorts after the walk's position, and not when it sorts before.
#[tokio::test]
async fn documents_inserted_during_a_walk_are_covered_if_ahead_of_it() {
    let t = TestDb::new().await;
    items(&t, 250, |i| Bson::Int64(i as i64)).await;
    let m = t.migrator(vec![Migration::new(
        v("20260101000000"),
        "with_inserts",
        up_with_inserts,
    )]);
    m.up(UpOptions::default()).await.unwrap();
    let items = t.db().collection::<Document>("items");
    let x = |id: i64| {
        let items = items.clone();
        async move {
            items
                .find_one(doc! { "_id": id })
                .await
                .unwrap()
                .unwrap()
                .contains_key("x")
        }
    };
    assert!(
        x(10_000).await,
        "the document inserted ahead of the walk was not covered"
    );
    assert!(!x(-1).await, "the document inserted behind the walk was covered");
    assert_eq!(marked(&t).await, 251);
    t.drop_db().await;
}

fn up_marks_in_parallel(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! { "kind": "a" })
            .size(50)
            .parallel(4)
            .run(mark)
            .await?;
        Ok(())
    })
}

/// Four segments walked at once cover every document once; when one fails,
/// the others stop after their batch, and the next run resumes each segment
/// at its own checkpoint.
#[tokio::test]
async fn parallel_segments_cover_everything_once_and_resume_each_at_its_checkpoint() {
    let t = TestDb::new().await;
    items(&t, 1_000, |i| Bson::Int64(i as i64)).await;
    knobs().lock().unwrap().entry(t.name.clone()).or_default().fail_batch = Some(9);
    let m = t.migrator(vec![Migration::new(
        v("20260101000000"),
        "mark_parallel",
        up_marks_in_parallel,
    )]);
    let err = m.up(UpOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("the batch failed"), "{err}");
    let record = t.tracking("20260101000000").await.unwrap();
    let parts = record
        .get_document("checkpoints")
        .unwrap()
        .get_document("0")
        .unwrap()
        .get_array("parts")
        .unwrap()
        .clone();
    assert_eq!(parts.len(), 4, "{record}");
    let done = done_of(&record);
    assert!(done > 0 && done < 1_000, "{record}");
    assert_eq!(
        marked(&t).await as i64,
        done,
        "every checkpointed document, and only those, is done"
    );

    m.up(UpOptions::default()).await.unwrap();
    assert_eq!(marked(&t).await, 1_000);
    // `seen` has a unique `_id`: no document was handed over twice.
    assert_eq!(t.docs("seen").await.len(), 1_000);
    t.drop_db().await;
}
