//! The batch API against a hand-written loop over the same documents, in the
//! same run (see BENCHMARKS.md): both walk `_id` ranges of 1,000 and send
//! each batch's updates as one `update` command; the batch API adds its
//! checkpoint write per batch and the run's lock and tracking writes.
//!
//! `BATCH_BENCH_DOCS=20000 scripts/test-server run cargo bench -p mongo-migrate --bench batches`

use std::time::Instant;

use futures_util::TryStreamExt;
use mongo_migrate::bson::{doc, Bson, Document};
use mongo_migrate::mongodb::Database;
use mongo_migrate::{BoxFuture, Config, Migration, MigrationContext, MigrationResult, Migrator, Registry, UpOptions};

const BATCH: i64 = 1_000;

fn with_api_parallel(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("docs", doc! {})
            .size(BATCH as u32)
            .parallel(4)
            .update_each(|d| Some(doc! { "$set": { "api4": d.get_str("v").ok()?.to_uppercase() } }))
            .await?;
        Ok(())
    })
}

fn with_api(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("docs", doc! {})
            .size(BATCH as u32)
            .update_each(|d| Some(doc! { "$set": { "api": d.get_str("v").ok()?.to_uppercase() } }))
            .await?;
        Ok(())
    })
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
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let name = format!("mm_bench_batches_{}", std::process::id());
        let (client, _) = mongo_migrate::connect(&uri, Some(&name)).await.unwrap();
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
        db.drop().await.unwrap();
    });
}
