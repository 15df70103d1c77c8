//! Registry regeneration for 10,000 migration files (see BENCHMARKS.md).
//!
//! `cargo bench -p mongo-migrations-codegen --bench registry`

use std::time::Instant;

fn main() {
    let n = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let body = "//! A migration.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    let db = ctx.db()?;\n    db.collection::<Document>(\"c\").insert_one(doc! { \"k\": 1 }).await?;\n    Ok(())\n}\n\npub async fn down(ctx: &mut MigrationContext) -> MigrationResult {\n    ctx.db()?.collection::<Document>(\"c\").delete_many(doc! {}).await?;\n    Ok(())\n}\n";
    let base = chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for i in 0..n {
        let version = (base + chrono::Duration::seconds(i)).format("%Y%m%d%H%M%S").to_string();
        let module = mongo_migrations_codegen::names::module_name(&version, &format!("step_{i}"));
        std::fs::write(dir.path().join(format!("{module}.rs")), body).unwrap();
    }
    for label in ["first run (writes mod.rs)", "second run (unchanged, no write)"] {
        let start = Instant::now();
        let (files, changed) = mongo_migrations_codegen::generate_module(dir.path()).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(files.len(), n as usize);
        println!(
            "registry for {n} files, {label}: {:.3} s, wrote: {changed}",
            elapsed.as_secs_f64()
        );
    }
}
