//! Schema changes on a collection of 100,000 documents with 1% violators
//! (see BENCHMARKS.md): the validator staged at `warn`, the violators
//! counted (the count must be exact), enforcement refused while they
//! remain, writes of the old shape accepted until it; and an index build
//! through `ensure_index`, then a second call that must adopt it.
//!
//! `scripts/test-server run cargo bench -p mongo-migrations --bench schema`
//! (`SCHEMA_BENCH_DOCS` sizes it).

use std::time::Instant;

use mongo_migrations::bson::{doc, Document};
use mongo_migrations::schema::{self, Index, IndexOutcome, ValidationLevel};
use mongo_migrations::Phase;

fn main() {
    let uri = std::env::var("MONGODB_URI").expect("set MONGODB_URI, e.g. `scripts/test-server run cargo bench`");
    let n: i64 = std::env::var("SCHEMA_BENCH_DOCS").map_or(100_000, |v| v.parse().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (client, _) = mongo_migrations::connect(&uri, Some("admin")).await.unwrap();
        let db = client.database(&format!("mm_bench_schema_{}", std::process::id()));
        let users = db.collection::<Document>("users");
        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let docs: Vec<Document> = chunk
                .iter()
                .map(|&i| {
                    if i % 100 == 42 {
                        doc! { "_id": i, "name": "old shape", "n": i }
                    } else {
                        doc! { "_id": i, "email": format!("{i}@example.com"), "n": i }
                    }
                })
                .collect();
            users.insert_many(docs).await.unwrap();
        }
        println!("{n} documents inserted in {:.1} s", start.elapsed().as_secs_f64());
        let schema =
            doc! { "bsonType": "object", "required": ["email"], "properties": { "email": { "bsonType": "string" } } };

        let start = Instant::now();
        schema::stage_validator(&db, "users", &schema, ValidationLevel::Strict)
            .await
            .unwrap();
        println!("staged at warn in {} ms", start.elapsed().as_millis());
        users
            .insert_one(doc! { "_id": -1, "name": "old code still writes" })
            .await
            .unwrap();

        let start = Instant::now();
        let violations = schema::count_violators(&db, "users", &schema).await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        let expected = (0..n).filter(|i| i % 100 == 42).count() as u64 + 1;
        println!(
            "violators: {} (expected {expected}) in {secs:.1} s, {:.0} documents/s; first _ids {:?}",
            violations.count,
            (n + 1) as f64 / secs,
            violations.sample
        );
        assert_eq!(violations.count, expected, "the count must be exact");
        let refused =
            schema::enforce_validator(&db, "users", &schema, ValidationLevel::Strict, Phase::PostDeploy).await;
        println!(
            "enforce with violators: {}",
            refused.map_or_else(|e| e.to_string(), |()| "ENFORCED (wrong)".into())
        );

        let start = Instant::now();
        let outcome = schema::ensure_index(&db, "users", &Index::new(doc! { "n": 1 }), None)
            .await
            .unwrap();
        println!("index build: {outcome:?} in {:.1} s", start.elapsed().as_secs_f64());
        let again = schema::ensure_index(&db, "users", &Index::new(doc! { "n": 1 }).named("by_n"), None)
            .await
            .unwrap();
        assert!(matches!(again, IndexOutcome::Adopted { .. }), "{again:?}");
        println!("second ensure_index: {again:?}");
        db.drop().await.unwrap();
    });
}
