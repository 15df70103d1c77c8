//! `plan`: what a deploy would do to this database, read-only. Each test
//! compares the whole database (documents, indexes, validators) before and
//! after: a plan changes nothing.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::schema::{Index, ValidationLevel};
use mongo_migrations::{BoxFuture, Migration, MigrationContext, MigrationResult, PlanReport, Risk, UpOptions};

fn unique_email(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("users", &Index::new(doc! { "email": 1 }).unique())
            .await?;
        Ok(())
    })
}

fn name_index(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("users", &Index::new(doc! { "name": 1 })).await?;
        Ok(())
    })
}

fn email_required() -> Document {
    doc! { "bsonType": "object", "required": ["email"], "properties": { "email": { "bsonType": "string" } } }
}

fn stage(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.stage_validator("users", &email_required(), ValidationLevel::Strict)
            .await
    })
}

fn fix_emails(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("users", doc! { "email": { "$exists": false } })
            .size(2)
            .update_each(|d| Some(doc! { "$set": { "email": format!("{}@fixed", d.get("_id")?) } }))
            .await?;
        Ok(())
    })
}

fn enforce(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.enforce_validator("users", &email_required(), ValidationLevel::Strict)
            .await
    })
}

fn by_hand(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.db()?.collection::<Document>("users").delete_many(doc! {}).await?;
        Ok(())
    })
}

fn noop(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Ok(()) })
}

fn steps(report: &PlanReport) -> Vec<String> {
    report
        .migrations
        .iter()
        .flat_map(|m| {
            m.steps.iter().map(move |s| {
                format!(
                    "{} {}: {}{}",
                    m.name,
                    s.risk.as_str(),
                    s.what,
                    s.why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
                )
            })
        })
        .collect()
}

async fn users(t: &TestDb, docs: Vec<Document>) {
    t.db().collection::<Document>("users").insert_many(docs).await.unwrap();
}

/// A unique index over duplicates is blocking, with the count and a few
/// `_id`s; once they are fixed it is a build; an index already there is
/// adopted. The database is the same before and after each plan.
#[tokio::test]
async fn a_unique_index_over_duplicates_is_blocking_until_they_are_fixed() {
    let t = TestDb::new().await;
    users(
        &t,
        vec![
            doc! { "_id": 1, "email": "a@x", "name": "A" },
            doc! { "_id": 2, "email": "a@x", "name": "B" },
            doc! { "_id": 3, "email": "c@x", "name": "C" },
        ],
    )
    .await;
    t.db()
        .collection::<Document>("users")
        .create_index(
            mongo_migrations::mongodb::IndexModel::builder()
                .keys(doc! { "name": 1 })
                .build(),
        )
        .await
        .unwrap();
    let m = t.migrator(vec![
        Migration::new(v("20260101000000"), "unique_email", unique_email).with_down(noop),
        Migration::new(v("20260102000000"), "name_index", name_index).with_down(noop),
    ]);
    let before = t.snapshot().await;
    let report = m.plan_deploy(UpOptions::default(), 1_000_000).await.unwrap();
    assert_eq!(t.snapshot().await, before, "plan changed the database");
    assert_eq!(
        steps(&report),
        [
            "unique_email blocking: build the index `email_1` of `users` (3 documents, estimated); no index build is recorded here to time it by (2 documents share their keys with another (1 value held more than once; for example _id 1, 2): the unique build fails)",
            "name_index safe: adopt the index `name_1` of `users`, there already (nothing is built)",
        ]
    );
    assert_eq!(report.risk, Risk::Blocking);
    assert!(report.blocks());

    t.db()
        .collection::<Document>("users")
        .update_one(doc! { "_id": 2 }, doc! { "$set": { "email": "b@x" } })
        .await
        .unwrap();
    let report = m.plan_deploy(UpOptions::default(), 1_000_000).await.unwrap();
    assert_eq!(
        steps(&report)[0],
        "unique_email safe: build the index `email_1` of `users` (3 documents, estimated); no index build is recorded here to time it by"
    );
    assert!(!report.blocks());
    // Over the threshold: slow.
    let report = m.plan_deploy(UpOptions::default(), 2).await.unwrap();
    assert_eq!(report.migrations[0].risk, Risk::Slow);
    // Nothing was recorded either: `up` still has both to apply.
    assert!(t.docs("migrations").await.is_empty());
    t.drop_db().await;
}

/// A staged validator's violators are counted exactly; an enforcement
/// over violators is blocking, unless a walk earlier in the plan goes over
/// the same collection; the walk's documents are counted.
#[tokio::test]
async fn violators_and_walks_are_counted_and_an_enforcement_over_violators_blocks() {
    let t = TestDb::new().await;
    users(
        &t,
        vec![
            doc! { "_id": 1, "email": "a@x" },
            doc! { "_id": 2 },
            doc! { "_id": 3 },
            doc! { "_id": 4, "email": "d@x" },
            doc! { "_id": 5 },
        ],
    )
    .await;
    let staged = Migration::new(v("20260101000000"), "stage", stage).with_down(noop);
    let enforced = Migration::new(v("20260101000020"), "enforce", enforce)
        .with_down(noop)
        .in_phase(mongo_migrations::Phase::PostDeploy);
    let before = t.snapshot().await;
    let report = t
        .migrator(vec![staged.clone(), enforced.clone()])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        steps(&report),
        [
            "stage safe: stage the validator of `users` at `warn`: 3 documents violate it now",
            "enforce blocking: enforce the validator of `users` (3 documents violate it (for example _id 2, 3, 5): the enforcement is refused until they are fixed)",
        ]
    );
    let fix = Migration::new(v("20260101000010"), "fix_emails", fix_emails)
        .with_down(noop)
        .in_phase(mongo_migrations::Phase::PostDeploy);
    let report = t
        .migrator(vec![staged, fix, enforced])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        steps(&report)[1..],
        [
            "fix_emails safe: walk 3 documents of `users` (exact count of its filter) in 2 batches of 2; no walk is recorded here to time it by".to_string(),
            "enforce slow: enforce the validator of `users` (3 documents violate it now (for example _id 2, 3, 5); an earlier migration of this plan walks `users` and may fix them)".to_string(),
        ]
    );
    assert_eq!(t.snapshot().await, before, "plan changed the database");
    t.drop_db().await;
}

/// Code `plan` cannot follow (the database used directly) is said so, and
/// not run: the documents are all there. A migration without `down` is
/// irreversible.
#[tokio::test]
async fn code_plan_cannot_see_is_said_so_and_not_run() {
    let t = TestDb::new().await;
    users(&t, vec![doc! { "_id": 1, "email": "a@x" }]).await;
    let report = t
        .migrator(vec![Migration::new(v("20260101000000"), "by_hand", by_hand)])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        steps(&report),
        [
            "by_hand unknown: not planned: runs code `plan` cannot inspect (it uses the database directly, through ctx.db() or ctx.transaction(), which `plan` cannot follow)",
            "by_hand irreversible: no `down`: it cannot be rolled back",
        ]
    );
    assert_eq!(report.risk, Risk::Irreversible);
    assert!(!report.blocks());
    assert_eq!(t.docs("users").await.len(), 1, "the migration's code ran");
    t.drop_db().await;
}

/// A database `up` would refuse (a failed migration) plans as refused.
#[tokio::test]
async fn a_database_up_would_refuse_is_refused_in_the_plan() {
    let t = TestDb::new().await;
    t.migrator(vec![Migration::new(v("20260101000000"), "fails", failing)])
        .up(UpOptions::default())
        .await
        .unwrap_err();
    let report = t
        .migrator(vec![Migration::new(v("20260101000000"), "fails", failing)])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert!(
        report.refused.as_deref().is_some_and(|r| r.contains("is failed")),
        "{report:?}"
    );
    assert!(report.blocks());
    t.drop_db().await;
}

fn mark_items(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! { "marked": { "$exists": false } })
            .size(50)
            .update_each(|_| Some(doc! { "$set": { "marked": true } }))
            .await?;
        Ok(())
    })
}

fn mark_more(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("more", doc! {})
            .size(50)
            .update_each(|_| Some(doc! { "$set": { "m": 1 } }))
            .await?;
        Ok(())
    })
}

fn index_items(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("items", &mongo_migrations::schema::Index::new(doc! { "n": 1 }))
            .await?;
        Ok(())
    })
}

fn index_more(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("more", &mongo_migrations::schema::Index::new(doc! { "n": 1 }))
            .await?;
        Ok(())
    })
}

/// `1,234`.
fn thousands(n: u64) -> String {
    n.to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(",")
}

/// `340 ms`, `2.5 s`, `3 min 20 s`, as the plan writes a duration.
fn duration(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1_000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
    }
}

/// An index build that ran keeps in its record's log the size of the
/// collection it indexed and how long it took; a planned build is timed by
/// that rate, and without one the plan says there is none to time it by.
#[tokio::test]
async fn a_planned_index_build_is_timed_by_the_build_rate_recorded_here() {
    let t = TestDb::new().await;
    let items: Vec<Document> = (0..300).map(|i| doc! { "_id": i, "n": i }).collect();
    t.db().collection::<Document>("items").insert_many(items).await.unwrap();
    let more: Vec<Document> = (0..900).map(|i| doc! { "_id": i, "n": i }).collect();
    t.db().collection::<Document>("more").insert_many(more).await.unwrap();
    let first = Migration::new(v("20260101000000"), "index_items", index_items).with_down(noop);
    let second = Migration::new(v("20260102000000"), "index_more", index_more).with_down(noop);
    // Nothing built here yet: no rate.
    let before = t
        .migrator(vec![first.clone(), second.clone()])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        steps(&before),
        [
            "index_items safe: build the index `n_1` of `items` (300 documents, estimated); no index build is recorded here to time it by",
            "index_more safe: build the index `n_1` of `more` (900 documents, estimated); no index build is recorded here to time it by",
        ]
    );
    t.migrator(vec![first.clone()]).up(UpOptions::default()).await.unwrap();
    let record = t.tracking("20260101000000").await.unwrap();
    let run = record.get_array("log").unwrap()[0].as_document().unwrap().clone();
    assert_eq!(run.get_i64("indexedDocuments").unwrap(), 300, "{run}");
    // At least a millisecond: a build is never recorded as taking no time.
    let ms = run.get_i64("indexMs").unwrap().max(1);
    let rate = 300.0 * 1_000.0 / ms as f64;
    let report = t
        .migrator(vec![first, second])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        steps(&report),
        [format!(
            "index_more safe: build the index `n_1` of `more` (900 documents, estimated); about {} at the index build rate recorded here ({} documents/s)",
            duration((900.0 / rate * 1_000.0) as i64),
            thousands(rate.round() as u64)
        )]
    );
    t.drop_db().await;
}

/// A walk that ran keeps in its record's log how many documents it handed
/// over and how long that took; a planned walk is timed by that rate.
#[tokio::test]
async fn a_planned_walk_is_timed_by_the_walk_rate_recorded_here() {
    let t = TestDb::new().await;
    let items: Vec<Document> = (0..150).map(|i| doc! { "_id": i }).collect();
    t.db().collection::<Document>("items").insert_many(items).await.unwrap();
    let more: Vec<Document> = (0..600).map(|i| doc! { "_id": i }).collect();
    t.db().collection::<Document>("more").insert_many(more).await.unwrap();
    let first = Migration::new(v("20260101000000"), "mark_items", mark_items).with_down(noop);
    t.migrator(vec![first.clone()]).up(UpOptions::default()).await.unwrap();
    let log = t.tracking("20260101000000").await.unwrap();
    let run = log.get_array("log").unwrap()[0].as_document().unwrap().clone();
    let documents = run.get_i64("walkedDocuments").unwrap();
    let ms = run.get_i64("walkMs").unwrap();
    assert_eq!(documents, 150, "{run}");
    let rate = documents as f64 * 1_000.0 / ms as f64;
    let report = t
        .migrator(vec![
            first,
            Migration::new(v("20260102000000"), "mark_more", mark_more).with_down(noop),
        ])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    let expected_ms = (600.0 / rate * 1_000.0) as i64;
    let duration = match expected_ms {
        ..1_000 => format!("{expected_ms} ms"),
        1_000..60_000 => format!("{:.1} s", expected_ms as f64 / 1_000.0),
        _ => format!("{} min {} s", expected_ms / 60_000, (expected_ms % 60_000) / 1_000),
    };
    assert_eq!(
        steps(&report),
        [format!(
            "mark_more safe: walk 600 documents of `more` (exact count of its filter) in 12 batches of 50; about {duration} at the walk rate recorded here ({} documents/s)",
            (rate.round() as u64).to_string().as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(",")
        )]
    );
    t.drop_db().await;
}

/// `plan` over tenant databases: each planned, concurrently, read-only;
/// the one whose documents would fail the unique build blocks.
#[tokio::test]
async fn tenants_are_planned_each_and_the_one_that_would_fail_is_named() {
    let t = TestDb::new().await;
    let names: Vec<String> = (0..3).map(|i| format!("{}_t{i}", t.name)).collect();
    for (i, name) in names.iter().enumerate() {
        let duplicate = if i == 1 { "a@x" } else { "b@x" };
        t.client
            .database(name)
            .collection::<Document>("users")
            .insert_many([doc! { "_id": 1, "email": "a@x" }, doc! { "_id": 2, "email": duplicate }])
            .await
            .unwrap();
    }
    let m = t.migrator(vec![
        Migration::new(v("20260101000000"), "unique_email", unique_email).with_down(noop)
    ]);
    let plans = m
        .for_databases(names.clone())
        .concurrency(3)
        .plan(UpOptions::default(), 1_000_000)
        .await;
    let risks: Vec<(String, Option<Risk>)> = plans
        .iter()
        .map(|p| (p.database.clone(), p.plan.as_ref().map(|p| p.risk)))
        .collect();
    assert_eq!(
        risks,
        [
            (names[0].clone(), Some(Risk::Safe)),
            (names[1].clone(), Some(Risk::Blocking)),
            (names[2].clone(), Some(Risk::Safe)),
        ]
    );
    for name in &names {
        let db = t.client.database(name);
        let collections = db.list_collection_names().await.unwrap();
        assert_eq!(collections, ["users"], "plan wrote into {name}");
        db.drop().await.unwrap();
    }
    t.drop_db().await;
}

/// Opt-in measure (BENCHMARKS.md): a plan of 1,000 pending no-op
/// migrations, beyond the build. Run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "a measure, printed: run it on an idle machine"]
async fn plan_of_a_thousand_no_op_migrations_is_timed() {
    let t = TestDb::new().await;
    let migrations: Vec<Migration> = (0..1_000)
        .map(|i| {
            let version = format!("20260101{:02}{:02}{:02}", i / 3600, (i / 60) % 60, i % 60);
            Migration::new(v(&version), format!("m{i}"), noop).with_down(noop)
        })
        .collect();
    let m = t.migrator(migrations);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let report = m.plan_deploy(UpOptions::default(), 1_000_000).await.unwrap();
        assert_eq!(report.migrations.len(), 1_000);
        eprintln!("plan of 1,000 no-op migrations: {:?}", started.elapsed());
    }
    t.drop_db().await;
}

/// An invalid database name among the tenants plans nothing anywhere, as
/// `status` reads nothing: the invalid one says its own error, the others
/// why they were left alone.
#[tokio::test]
async fn an_invalid_tenant_name_plans_nothing_anywhere() {
    let t = TestDb::new().await;
    let good = format!("{}_t0", t.name);
    let m = t.migrator(vec![
        Migration::new(v("20260101000000"), "unique_email", unique_email).with_down(noop)
    ]);
    let plans = m
        .for_databases(vec![good.clone(), "bad/name".into()])
        .plan(UpOptions::default(), 1_000_000)
        .await;
    let said: Vec<(String, bool, String)> = plans
        .into_iter()
        .map(|p| (p.database, p.plan.is_some(), p.error.unwrap_or_default()))
        .collect();
    let own = mongo_migrations::check_database_name("bad/name")
        .unwrap_err()
        .to_string();
    assert_eq!(
        said,
        [
            (good.clone(), false, format!("not planned: {own}")),
            ("bad/name".to_string(), false, own),
        ]
    );
    let names = t.client.list_database_names().await.unwrap();
    assert!(!names.contains(&good), "planned into {good}");
    t.drop_db().await;
}

/// How many tenants the concurrency test plans at once.
const TENANTS: usize = 30;

/// A migration's own plan that says its step only once every tenant's plan
/// has reached it: planned one after the other, the first would wait for
/// the others until `plan` gives up on it (30 s) and says so.
fn meets_every_tenant(ctx: &mut mongo_migrations::PlanContext) -> BoxFuture<'_, MigrationResult> {
    static ALL: std::sync::OnceLock<tokio::sync::Barrier> = std::sync::OnceLock::new();
    Box::pin(async move {
        ALL.get_or_init(|| tokio::sync::Barrier::new(TENANTS)).wait().await;
        ctx.step(Risk::Safe, "planned beside every other tenant");
        Ok(())
    })
}

/// Tenants are planned concurrently, all 30 at once at concurrency 30: by
/// construction (each tenant's plan waits at a barrier until all 30 are
/// planning), not by timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_tenants_are_planned_at_once() {
    let t = TestDb::new().await;
    let names: Vec<String> = (0..TENANTS).map(|i| format!("{}_t{i}", t.name)).collect();
    let m = t.migrator(vec![Migration::new(v("20260101000000"), "everywhere", by_hand)
        .with_down(noop)
        .planned(meets_every_tenant)]);
    let started = std::time::Instant::now();
    let plans = m
        .for_databases(names.clone())
        .concurrency(TENANTS)
        .plan(UpOptions::default(), 1_000_000)
        .await;
    eprintln!("{TENANTS} tenants planned in {:?}", started.elapsed());
    assert_eq!(plans.len(), TENANTS);
    for p in &plans {
        let plan = p.plan.as_ref().expect("planned");
        let steps: Vec<&str> = plan.migrations[0].steps.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(steps, ["planned beside every other tenant"], "{}", p.database);
    }
    for name in &names {
        t.client.database(name).drop().await.unwrap();
    }
    t.drop_db().await;
}

fn says_what_it_does(ctx: &mut mongo_migrations::PlanContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let expired = ctx.count("sessions", doc! { "expired": true }).await?;
        ctx.step_because(
            Risk::Destructive,
            format!("delete {expired} expired sessions"),
            "deleted documents are gone",
        );
        ctx.walk("sessions", doc! { "expired": false }, 10);
        Ok(())
    })
}

/// A migration that declares its own `plan` (its module's `pub async fn
/// plan`) is asked, not inspected: its `up` would be refused the database.
#[tokio::test]
async fn a_migration_s_own_plan_says_what_it_would_do() {
    let t = TestDb::new().await;
    let sessions: Vec<Document> = (0..25).map(|i| doc! { "_id": i, "expired": i < 5 }).collect();
    t.db()
        .collection::<Document>("sessions")
        .insert_many(sessions)
        .await
        .unwrap();
    let before = t.snapshot().await;
    let report = t
        .migrator(vec![
            Migration::new(v("20260101000000"), "purge", by_hand).planned(says_what_it_does)
        ])
        .plan_deploy(UpOptions::default(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        steps(&report),
        [
            "purge destructive: delete 5 expired sessions (deleted documents are gone)",
            "purge safe: walk 20 documents of `sessions` (exact count of its filter) in 2 batches of 10; no walk is recorded here to time it by",
            "purge irreversible: no `down`: it cannot be rolled back",
        ]
    );
    assert_eq!(t.snapshot().await, before, "plan changed the database");
    t.drop_db().await;
}

fn walk_first(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("big", doc! { "part": 0 })
            .update_each(|_| Some(doc! { "$set": { "a": 1 } }))
            .await?;
        Ok(())
    })
}

fn walk_second(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("big", doc! { "part": 1 })
            .update_each(|_| Some(doc! { "$set": { "b": 1 } }))
            .await?;
        Ok(())
    })
}

/// Opt-in measure (BENCHMARKS.md): a walk of `PLAN_ESTIMATE_DOCS`
/// documents (default 10,000) timed by `plan` from an earlier walk of a
/// fifth as many, then run: the estimate against the real duration.
#[tokio::test]
#[ignore = "a measure, printed: run it on an idle machine"]
async fn a_walk_s_estimate_against_its_real_duration() {
    let n: i64 = std::env::var("PLAN_ESTIMATE_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let t = TestDb::new().await;
    let docs: Vec<Document> = (0..n + n / 5)
        .map(|i| doc! { "_id": i, "part": i32::from(i >= n / 5) })
        .collect();
    for chunk in docs.chunks(5_000) {
        t.db()
            .collection::<Document>("big")
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
    let first = Migration::new(v("20260101000000"), "walk_first", walk_first).with_down(noop);
    let second = Migration::new(v("20260102000000"), "walk_second", walk_second).with_down(noop);
    t.migrator(vec![first.clone()]).up(UpOptions::default()).await.unwrap();
    let m = t.migrator(vec![first, second]);
    let report = m.plan_deploy(UpOptions::default(), u64::MAX).await.unwrap();
    eprintln!("plan: {}", report.migrations[0].steps[0].what);
    let started = std::time::Instant::now();
    m.up(UpOptions::default()).await.unwrap();
    eprintln!("real: {:?} for {n} documents", started.elapsed());
    t.drop_db().await;
}
