//! Deploy phases, version skew at startup, and readiness.

use crate::common::*;
use mongo_migrate::{auto_run, AutoRun, AutoRunConfig, Error, Migration, Phase, State, UpOptions};

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

fn names(report: &mongo_migrate::RunReport) -> Vec<&str> {
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
