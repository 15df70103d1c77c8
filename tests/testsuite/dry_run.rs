//! A dry-run is what an operator trusts before a deploy: through the real
//! binary, its plan must equal, field by field, what the real run then
//! reports, for a crate that mixes plain, transactional, irreversible,
//! post-deploy and squash migrations. Against the test server in `MONGODB_URI`.

use crate::common::*;
use serde_json::Value;

fn run_json(dir: &std::path::Path, db: &str, args: &[&str]) -> Value {
    let assert = cli()
        .current_dir(dir)
        .env(
            "MONGODB_URI",
            std::env::var("MONGODB_URI").expect("MONGODB_URI is not set: run `scripts/test`"),
        )
        .env("MONGODB_DATABASE", db)
        .args(args)
        .assert()
        .success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

/// A report's steps without what only a real run knows (its time).
fn plan_of(report: &Value) -> Vec<Value> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.as_object_mut().unwrap().remove("durationMs");
            s
        })
        .collect()
}

const PLAIN_UP: &str = "pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    ctx.db()?.collection::<Document>(\"steps\").insert_one(doc! { \"v\": 1 }).await?;\n    Ok(())\n}\n";

fn write_migration(dir: &std::path::Path, file: &str, body: &str) {
    std::fs::write(dir.join("src/migrations").join(file), body).unwrap();
}

#[test]
fn a_dry_run_plans_exactly_what_the_real_run_does() {
    let crate_dir = fixture("single");
    let db = format!(
        "mm_dry_{}_{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() % 1_000_000_007
    );
    let dir = crate_dir.path();
    // Applied first, then squashed: the squash is adopted, not run.
    run_json(dir, &db, &["up", "--to", "20260102000000", "--json"]);
    cli()
        .current_dir(dir)
        .args(["squash", "--to", "20260102000000", "--force"])
        .assert()
        .success();
    let prelude = "//! {}\n\nuse mongo_migrations::prelude::*;\n\n";
    write_migration(
        dir,
        "m20260103_000000_plain_step.rs",
        &format!(
            "{}pub const TRANSACTIONAL: bool = false;\n\n{PLAIN_UP}\npub async fn down(ctx: &mut MigrationContext) -> MigrationResult {{\n    ctx.db()?;\n    Ok(())\n}}\n",
            prelude.replace("{}", "A plain step.")
        ),
    );
    write_migration(
        dir,
        "m20260104_000000_in_transaction.rs",
        &format!(
            "{}pub const TRANSACTIONAL: bool = true;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {{\n    let (db, session) = ctx.transaction()?;\n    db.collection::<Document>(\"steps\").insert_one(doc! {{ \"v\": 2 }}).session(session).await?;\n    Ok(())\n}}\n",
            prelude.replace("{}", "A transactional step.")
        ),
    );
    write_migration(
        dir,
        "m20260105_000000_one_way.rs",
        &format!("{}{PLAIN_UP}", prelude.replace("{}", "Cannot be undone.")),
    );
    write_migration(
        dir,
        "m20260106_000000_after_deploy.rs",
        &format!(
            "{}pub const PHASE: Phase = Phase::PostDeploy;\n\n{PLAIN_UP}\npub async fn down(ctx: &mut MigrationContext) -> MigrationResult {{\n    ctx.db()?;\n    Ok(())\n}}\n",
            prelude.replace("{}", "After the deploy.")
        ),
    );

    let planned = run_json(dir, &db, &["up", "--dry-run", "--json"]);
    let applied = run_json(dir, &db, &["up", "--json"]);
    assert_eq!(planned["dryRun"], true);
    assert_eq!(applied["dryRun"], false);
    assert_eq!(
        plan_of(&planned),
        plan_of(&applied),
        "dry-run:\n{planned:#}\nreal run:\n{applied:#}"
    );
    assert_eq!(planned["skipped"], applied["skipped"]);
    // What the plan says of each, as the real run recorded it.
    let flags: Vec<(String, bool, bool, bool)> = plan_of(&planned)
        .iter()
        .map(|s| {
            let flag = |k: &str| s[k].as_bool().unwrap();
            (
                s["name"].as_str().unwrap().to_string(),
                flag("transactional"),
                flag("reversible"),
                flag("adopted"),
            )
        })
        .collect();
    assert_eq!(
        flags,
        [
            ("squashed".to_string(), false, false, true),
            ("plain_step".to_string(), false, true, false),
            ("in_transaction".to_string(), true, false, false),
            ("one_way".to_string(), false, false, false),
            ("after_deploy".to_string(), false, true, false),
        ],
        "{planned:#}"
    );
    let history = run_json(dir, &db, &["history", "--json"]);
    for record in history.as_array().unwrap() {
        let step = plan_of(&applied)
            .into_iter()
            .find(|s| s["version"] == record["version"]);
        if let Some(step) = step {
            assert_eq!(step["transactional"], record["transactional"], "{record:#}");
        }
    }
    // A rollback's dry-run plans what the rollback then does, too.
    let planned = run_json(dir, &db, &["down", "--dry-run", "--json"]);
    let undone = run_json(dir, &db, &["down", "--json"]);
    assert_eq!(
        plan_of(&planned),
        plan_of(&undone),
        "dry-run:\n{planned:#}\nreal run:\n{undone:#}"
    );
}
