//! Deploy phases, version skew at startup, and readiness.

use crate::common::*;
use mongo_migrations::{
    auto_run, AutoRun, AutoRunConfig, BoxFuture, Error, Migration, MigrationContext, MigrationResult, Phase, State,
    TenantOutcome, UpOptions,
};

/// Expand/contract: 1 adds a field, 2 drops the old one after the deploy,
/// 3 is the next release's expand.
fn phased() -> Vec<Migration> {
    vec![
        reversible("20260101000000", "add_field"),
        reversible("20260102000000", "drop_old_field").in_phase(Phase::PostDeploy),
        reversible("20260103000000", "next_expand"),
    ]
}

fn phase(p: Phase) -> UpOptions {
    UpOptions {
        phase: Some(p),
        ..UpOptions::default()
    }
}

fn names(report: &mongo_migrations::RunReport) -> Vec<&str> {
    report.steps.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn pre_and_post_deploy_phases_apply_their_own_migrations_in_order() {
    let t = TestDb::new().await;
    let m = t.migrator(phased());
    // Post-deploy waits for the older pre-deploy migration.
    assert!(m.up(phase(Phase::PostDeploy)).await.unwrap().steps.is_empty());
    assert_eq!(
        names(&m.up(phase(Phase::PreDeploy)).await.unwrap()),
        ["add_field", "next_expand"]
    );
    let status = m.status().await.unwrap();
    let second = &status.migrations[1];
    assert_eq!(
        (second.phase, second.state, second.out_of_order),
        (Phase::PostDeploy, State::Pending, false)
    );
    // Readiness of a pre-deploy binary: ready; of every phase: not yet.
    assert!(m.state().await.unwrap().ready);
    let all = m.clone().with_phase(None).state().await.unwrap();
    assert!(!all.ready);
    assert_eq!(all.pending, [v("20260102000000")]);
    // Not out of order behind the newer pre-deploy migration.
    assert_eq!(
        names(&m.up(phase(Phase::PostDeploy)).await.unwrap()),
        ["drop_old_field"]
    );
    assert!(m.clone().with_phase(None).state().await.unwrap().ready);
    t.drop_db().await;
}

#[tokio::test]
async fn auto_run_applies_the_pre_deploy_phase_unless_configured() {
    let t = TestDb::new().await;
    let m = t.migrator(phased());
    let config = AutoRunConfig::from_lookup(|k| (k == "MIGRATE_ON_START").then(|| "true".to_string())).unwrap();
    match auto_run(&m, config).await.unwrap() {
        AutoRun::Applied(report) => assert_eq!(names(&report), ["add_field", "next_expand"]),
        other => panic!("{other:?}"),
    }
    let all = AutoRunConfig::from_lookup(|k| match k {
        "MIGRATE_ON_START" => Some("true".into()),
        "MIGRATE_ON_START_PHASE" => Some("all".into()),
        _ => None,
    })
    .unwrap();
    match auto_run(&m, all).await.unwrap() {
        AutoRun::Applied(report) => assert_eq!(names(&report), ["drop_old_field"]),
        other => panic!("{other:?}"),
    }
    t.drop_db().await;
}

/// A newer release was deployed, then rolled back: the database knows a
/// migration this binary does not.
#[tokio::test]
async fn a_binary_behind_the_database_is_told_so_at_startup() {
    let t = TestDb::new().await;
    t.migrator(three()).up(UpOptions::default()).await.unwrap();
    let old = t.migrator(three()[..2].to_vec());
    let enabled = AutoRunConfig {
        enabled: true,
        ..AutoRunConfig::default()
    };
    match auto_run(&old, enabled).await.unwrap() {
        AutoRun::AheadOfBinary { versions } => assert_eq!(versions, [(v("20260103000000"), "third".to_string())]),
        other => panic!("{other:?}"),
    }
    let state = old.state().await.unwrap();
    assert!(state.ready, "{state:?}");
    assert_eq!(state.ahead_of_binary, [v("20260103000000")]);
    let strict = AutoRunConfig {
        fail_hard: true,
        ..enabled
    };
    let err = auto_run(&old, strict).await.unwrap_err();
    assert!(matches!(err, Error::UnknownVersions { .. }), "{err:?}");
    assert!(err.to_string().contains("20260103000000 (third)"), "{err}");
    t.drop_db().await;
}

static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts how many tenants run it at once.
fn overlapping(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    use std::sync::atomic::Ordering::SeqCst;
    Box::pin(async move {
        let now = RUNNING.fetch_add(1, SeqCst) + 1;
        MOST.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        RUNNING.fetch_sub(1, SeqCst);
        ctx.db()?;
        Ok(())
    })
}

/// One registry over several tenant databases: each has its own tracking
/// and lock, a failure or a lock in one does not stop the others, and at
/// most K run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_migrate_each_database_on_its_own_at_most_k_at_once() {
    let tenants: Vec<TestDb> = futures_util::future::join_all((0..6).map(|_| TestDb::new())).await;
    let names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();
    // Tenant 1 is locked by another runner; tenant 2 has a record this build does not know.
    tenants[1].foreign_lock("elsewhere", 3, 60_000).await;
    tenants[2]
        .migrator(vec![reversible("20250101000000", "retired")])
        .up(UpOptions::default())
        .await
        .unwrap();
    let mut migrations = three();
    migrations.push(Migration::new(v("20260104000000"), "overlapping", overlapping));
    let m = tenants[0].migrator(migrations);
    let reports = m
        .for_databases(names.clone())
        .concurrency(3)
        .up(UpOptions::default())
        .await;
    let databases: Vec<&str> = reports.iter().map(|r| r.database.as_str()).collect();
    assert_eq!(
        databases,
        names.iter().map(String::as_str).collect::<Vec<_>>(),
        "reports keep the order given"
    );
    for (i, r) in reports.iter().enumerate() {
        match (i, &r.outcome) {
            (1, TenantOutcome::Locked { .. }) => {}
            (2, TenantOutcome::Failed { kind, message }) => {
                assert_eq!(*kind, mongo_migrations::ErrorKind::Blocked);
                assert!(message.contains("20250101000000"), "{message}");
            }
            (0 | 3 | 4 | 5, TenantOutcome::Applied { report }) => assert_eq!(report.steps.len(), 4),
            other => panic!("{other:?}"),
        }
    }
    for i in [0, 3, 4, 5] {
        assert_eq!(tenants[i].docs("effects").await.len(), 3, "tenant {i}");
        assert!(tenants[i].tracking("20260104000000").await.is_some());
    }
    assert!(tenants[1].docs("effects").await.is_empty());
    assert_eq!(
        tenants[2].docs("effects").await.len(),
        1,
        "only its own earlier migration"
    );
    let most = MOST.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} tenants ran at once with concurrency 3");

    let status = m.for_databases(names.clone()).concurrency(4).status().await;
    assert_eq!(status.len(), 6);
    assert_eq!(status[0].status.as_ref().unwrap().counts.applied, 4);
    assert_eq!(status[1].status.as_ref().unwrap().counts.pending, 4);

    // fail_fast: after the blocked tenant, nothing else starts.
    let fresh: Vec<TestDb> = futures_util::future::join_all((0..2).map(|_| TestDb::new())).await;
    let order = vec![names[2].clone(), fresh[0].name.clone(), fresh[1].name.clone()];
    let reports = m.for_databases(order).fail_fast(true).up(UpOptions::default()).await;
    assert!(matches!(reports[0].outcome, TenantOutcome::Failed { .. }));
    assert!(
        reports[1..].iter().all(|r| r.outcome == TenantOutcome::Skipped),
        "{reports:?}"
    );
    assert!(fresh[0].snapshot().await.is_empty(), "a skipped tenant was written");
    for t in tenants.into_iter().chain(fresh) {
        t.drop_db().await;
    }
}
