//! One registry over many tenant databases (see BENCHMARKS.md): 200
//! databases with 20 migrations each, at concurrency 1 and 8, each pass on
//! fresh databases.
//!
//! `scripts/test-server run cargo bench -p mongo-migrations --bench tenants`
//! (`TENANT_BENCH_DBS`, `TENANT_BENCH_MIGRATIONS` size it;
//! `TENANT_BENCH_CONCURRENCY=8,1` changes the levels and their order).

use std::time::Instant;

use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{
    BoxFuture, Config, Migration, MigrationContext, MigrationResult, Migrator, Registry, TenantOutcome,
};

/// A small write, as most schema migrations are.
fn insert_one(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let version = ctx.version().as_u64() as i64;
        ctx.db()?
            .collection::<Document>("applied")
            .insert_one(doc! { "_id": version })
            .await?;
        Ok(())
    })
}

fn main() {
    let uri = std::env::var("MONGODB_URI").expect("set MONGODB_URI, e.g. `scripts/test-server run cargo bench`");
    let dbs: usize = std::env::var("TENANT_BENCH_DBS").map_or(200, |v| v.parse().unwrap());
    let per: u64 = std::env::var("TENANT_BENCH_MIGRATIONS").map_or(20, |v| v.parse().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let migrations = (0..per)
            .map(|i| {
                Migration::new(
                    (20260101000000 + i).to_string().parse().unwrap(),
                    format!("m{i}"),
                    insert_one,
                )
            })
            .collect();
        let registry = Registry::new(migrations).unwrap();
        let (client, _) = mongo_migrations::connect(&uri, Some("admin")).await.unwrap();
        println!("{dbs} tenant databases, {per} migrations each");
        let mut times = Vec::new();
        let levels: Vec<usize> = std::env::var("TENANT_BENCH_CONCURRENCY")
            .unwrap_or_else(|_| "1,8".into())
            .split(',')
            .map(|k| k.trim().parse().unwrap())
            .collect();
        for &concurrency in &levels {
            let names: Vec<String> = (0..dbs)
                .map(|i| format!("mm_bench_tenant_{}_{concurrency}_{i}", std::process::id()))
                .collect();
            let m = Migrator::new(client.clone(), &names[0], registry.clone(), Config::default());
            let start = Instant::now();
            let reports = m
                .for_databases(names.clone())
                .concurrency(concurrency)
                .up(Default::default())
                .await;
            let secs = start.elapsed().as_secs_f64();
            let applied: usize = reports
                .iter()
                .map(|r| match &r.outcome {
                    TenantOutcome::Applied { report } => report.steps.len(),
                    other => panic!("{}: {other:?}", r.database),
                })
                .sum();
            assert_eq!(applied as u64, dbs as u64 * per);
            println!(
                "concurrency {concurrency}: {applied} migrations in {secs:.1} s ({:.0} ms per database)",
                secs * 1000.0 / dbs as f64
            );
            times.push(secs);
            for name in names {
                client.database(&name).drop().await.unwrap();
            }
        }
        if let [first, second] = times[..] {
            println!(
                "concurrency {} against {}: {:.2}x the throughput",
                levels[1],
                levels[0],
                first / second
            );
        }
    });
}
