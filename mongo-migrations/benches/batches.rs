//! The batch API against a hand-written loop over the same documents, in the
//! same run (see BENCHMARKS.md): both walk `_id` ranges of 1,000 and send
//! each batch's updates as one `update` command; the batch API adds its
//! checkpoint write per batch and the run's lock and tracking writes.
//!
//! `BATCH_BENCH_DOCS=20000 scripts/test-server run cargo bench -p mongo-migrations --bench batches`

use std::time::Instant;

use futures_util::TryStreamExt;
use mongo_migrations::bson::{doc, Bson, Document};
use mongo_migrations::mongodb::Database;
use mongo_migrations::{
    BoxFuture, Config, Migration, MigrationContext, MigrationResult, Migrator, Registry, UpOptions,
};

const BATCH: i64 = 1_000;

/// Walks `coll` in batches of [`BATCH`] over `segments` segments, setting
/// `field` to the upper-cased `v` and, with `counter`, counting each visit.
async fn upper(
    ctx: &mut MigrationContext,
    coll: &str,
    field: &'static str,
    counter: Option<&'static str>,
    segments: u32,
) -> MigrationResult {
    ctx.batches(coll, doc! {})
        .size(BATCH as u32)
        .parallel(segments)
        .update_each(|d| {
            let mut update = doc! { "$set": { field: d.get_str("v").ok()?.to_uppercase() } };
            if let Some(counter) = counter {
                update.insert("$inc", doc! { counter: 1 });
            }
            Some(update)
        })
        .await?;
    Ok(())
}

fn with_api_parallel(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(upper(ctx, "docs", "api4", None, 4))
}

fn with_api(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(upper(ctx, "docs", "api", None, 1))
}

/// The same walk as the resume pass, uninterrupted, over an identical
/// collection, for its time.
fn with_api_whole(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(upper(ctx, "twin_a", "whole", Some("w"), 1))
}

/// The resume pass: counts each document's visits in `r`, so documents
/// handed over twice after the kill show.
fn with_api_resume(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(upper(ctx, "twin_b", "res", Some("r"), 1))
}

/// The earlier passes' migrations (applied by then), the uninterrupted
/// walk and the resume pass; `upto` of them.
fn resume_registry(upto: usize) -> Registry {
    let mut all = vec![
        Migration::new("20260101000000".parse().unwrap(), "upper", with_api),
        Migration::new("20260102000000".parse().unwrap(), "upper_parallel", with_api_parallel),
        Migration::new("20260103000000".parse().unwrap(), "whole", with_api_whole),
        Migration::new("20260104000000".parse().unwrap(), "resume", with_api_resume),
    ];
    all.truncate(upto);
    Registry::new(all).unwrap()
}

/// Documents the resume pass has checkpointed.
async fn resume_done(m: &Migrator) -> i64 {
    let status = m.status().await.unwrap();
    status.migrations[3].documents_done.unwrap_or(0)
}

/// A lock that a killed runner leaves for a few seconds only.
fn resume_config() -> Config {
    Config {
        lock_ttl: std::time::Duration::from_secs(3),
        ..Config::default()
    }
}

/// The child of the resume pass: runs the walk until the parent kills it.
fn child(uri: &str, name: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let m = Migrator::connect(uri, Some(name), resume_registry(4), resume_config())
            .await
            .unwrap();
        m.up(UpOptions::default()).await.unwrap();
    });
}

/// The same walk by hand: range query, one `update` command per batch,
/// setting `field`.
async fn by_hand(db: &Database, field: &str) -> u64 {
    let coll = db.collection::<Document>("docs");
    let mut last: Option<Bson> = None;
    let mut done = 0;
    loop {
        let filter = match &last {
            Some(l) => doc! { "_id": { "$gt": l.clone() } },
            None => doc! {},
        };
        let batch: Vec<Document> = coll
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(BATCH)
            .batch_size(BATCH as u32)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let Some(end) = batch.last().and_then(|d| d.get("_id")).cloned() else {
            break;
        };
        let updates: Vec<Document> = batch
            .iter()
            .map(|d| doc! { "q": { "_id": d.get("_id").unwrap().clone() }, "u": { "$set": { field: d.get_str("v").unwrap().to_uppercase() } } })
            .collect();
        done += updates.len() as u64;
        db.run_command(
            doc! { "update": "docs", "updates": updates, "ordered": true, "writeConcern": { "w": "majority" } },
        )
        .await
        .unwrap();
        last = Some(end);
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    done
}

fn main() {
    let uri = std::env::var("MONGODB_URI").expect("set MONGODB_URI, e.g. `scripts/test-server run cargo bench`");
    let n: i64 = std::env::var("BATCH_BENCH_DOCS").map_or(100_000, |v| v.parse().unwrap());
    if let Ok(name) = std::env::var("BATCH_BENCH_CHILD") {
        return child(&uri, &name);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let name = format!("mm_bench_batches_{}", std::process::id());
        let (client, _) = mongo_migrations::connect(&uri, Some(&name)).await.unwrap();
        let db = client.database(&name);
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let docs: Vec<Document> = chunk
                .iter()
                .map(|i| doc! { "_id": *i, "v": format!("doc-{i}") })
                .collect();
            db.collection::<Document>("docs").insert_many(docs).await.unwrap();
        }
        println!("{n} documents, batches of {BATCH}");

        // Hand, API, hand again: each later pass rewrites documents that
        // grew, so the API's pass sits between two hand passes.
        let hand_pass = |field: &'static str| {
            let db = db.clone();
            async move {
                let start = Instant::now();
                let done = by_hand(&db, field).await;
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "hand-written loop ({field}): {done} documents in {secs:.1} s, {:.0}/s",
                    done as f64 / secs
                );
                secs
            }
        };
        let hand1 = hand_pass("hand1").await;
        let registry = Registry::new(vec![Migration::new(
            "20260101000000".parse().unwrap(),
            "upper",
            with_api,
        )])
        .unwrap();
        let m = Migrator::new(client.clone(), &name, registry, Config::default());
        let start = Instant::now();
        m.up(UpOptions::default()).await.unwrap();
        let api = start.elapsed().as_secs_f64();
        println!(
            "batch API (update_each, checkpoints, lock): {n} documents in {api:.1} s, {:.0}/s",
            n as f64 / api
        );
        let hand2 = hand_pass("hand2").await;
        println!(
            "batch API / hand loop throughput: {:.2} (against the mean of the two hand passes)",
            (hand1 + hand2) / 2.0 / api
        );
        let registry = Registry::new(vec![
            Migration::new("20260101000000".parse().unwrap(), "upper", with_api),
            Migration::new("20260102000000".parse().unwrap(), "upper_parallel", with_api_parallel),
        ])
        .unwrap();
        let m = Migrator::new(client.clone(), &name, registry, Config::default());
        let start = Instant::now();
        m.up(UpOptions::default()).await.unwrap();
        let parallel = start.elapsed().as_secs_f64();
        println!(
            "batch API, .parallel(4): {n} documents in {parallel:.1} s, {:.0}/s ({:.2}x the single walk)",
            n as f64 / parallel,
            api / parallel
        );

        // Two identical fresh collections: one walked whole, one killed at
        // half and resumed. Both runs have the same lock TTL and the same
        // status poll once a second (each poll costs this single-threaded
        // server time that the walk then lacks).
        for twin in ["twin_a", "twin_b"] {
            for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
                let docs: Vec<Document> = chunk
                    .iter()
                    .map(|i| doc! { "_id": *i, "v": format!("doc-{i}") })
                    .collect();
                db.collection::<Document>(twin).insert_many(docs).await.unwrap();
            }
        }
        let m = Migrator::new(client.clone(), &name, resume_registry(3), resume_config());
        let poller = || {
            let m = Migrator::new(client.clone(), &name, resume_registry(4), resume_config());
            tokio::spawn(async move {
                loop {
                    let _ = m.status().await;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            })
        };
        let polling = poller();
        let start = Instant::now();
        m.up(UpOptions::default()).await.unwrap();
        let whole = start.elapsed().as_secs_f64();
        polling.abort();
        println!("uninterrupted walk ($set and $inc): {n} documents in {whole:.1} s");

        // kill -9 of a runner at about half of the walk, at a random point
        // of a batch, then `up` again: the lock expires (3 s here), the
        // walk resumes at its checkpoint.
        let delay_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            % 500;
        let start = Instant::now();
        let mut runner = std::process::Command::new(std::env::current_exe().unwrap())
            .env("BATCH_BENCH_CHILD", &name)
            .spawn()
            .unwrap();
        let m = Migrator::new(client.clone(), &name, resume_registry(4), resume_config())
            .with_lock_wait(std::time::Duration::from_secs(60));
        while resume_done(&m).await < n / 2 {
            assert!(runner.try_wait().unwrap().is_none(), "the runner exited before half of the walk");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        runner.kill().unwrap();
        runner.wait().unwrap();
        let killed = start.elapsed().as_secs_f64();
        let resumed_at = resume_done(&m).await;
        let start = Instant::now();
        while m.lock_status().await.unwrap().is_some_and(|l| !l.expired) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let lock_wait = start.elapsed().as_secs_f64();
        let polling = poller();
        let start = Instant::now();
        m.up(UpOptions::default()).await.unwrap();
        let resumed = start.elapsed().as_secs_f64();
        polling.abort();
        let redone = db
            .collection::<Document>("twin_b")
            .count_documents(doc! { "r": { "$gt": 1 } })
            .await
            .unwrap();
        let missed = db
            .collection::<Document>("twin_b")
            .count_documents(doc! { "r": { "$ne": 1 } })
            .await
            .unwrap()
            - redone;
        println!(
            "kill -9 {delay_ms} ms after half the walk ({resumed_at} documents checkpointed), {killed:.1} s in; the lock \
             expired {lock_wait:.1} s later; the resumed `up` took {resumed:.1} s; {redone} documents redone, \
             {missed} missed; walk time {:.1} s = {:.2}x the uninterrupted walk ({:.2}x with the lock wait)",
            killed + resumed,
            (killed + resumed) / whole,
            (killed + lock_wait + resumed) / whole
        );
        db.drop().await.unwrap();
    });
}
