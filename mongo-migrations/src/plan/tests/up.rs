//! What `up` would run: pending, squashes, out of order, phases, batches.

use super::*;

#[test]
fn pending_is_every_unapplied_migration_in_version_order_up_to_a_target() {
    let reg = registry(vec![m(1), m(2), m(3), m(4)]);
    let recs = records(vec![rec(1, "completed", doc! {}), rec(3, "rolled-back", doc! {})]);
    assert_eq!(versions(&pending(&reg, &recs, None)), [v(2), v(3), v(4)]);
    assert_eq!(versions(&pending(&reg, &recs, Some(v(3)))), [v(2), v(3)]);
}

#[test]
fn a_squash_is_adopted_where_all_it_replaces_is_applied() {
    let squash = m(3).replacing(&[20260101000001, 20260101000002]);
    let recs = records(vec![rec(1, "completed", doc! {}), rec(2, "completed", doc! {})]);
    assert_eq!(adoption(&squash, &recs).unwrap(), Some(Adopt::Squash));
}

#[test]
fn a_squash_runs_on_a_fresh_database() {
    let squash = m(3).replacing(&[20260101000001, 20260101000002]);
    assert_eq!(adoption(&squash, &Records::new()).unwrap(), None);
}

#[test]
fn a_squash_over_a_partly_migrated_database_is_refused() {
    let squash = m(3).replacing(&[20260101000001, 20260101000002]);
    let recs = records(vec![rec(1, "completed", doc! {})]);
    match adoption(&squash, &recs) {
        Err(Error::PartialSquash { applied, missing, .. }) => assert_eq!((applied, missing), (vec![v(1)], vec![v(2)])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_squash_with_a_record_of_its_own_is_not_adopted_again() {
    let squash = m(3).replacing(&[20260101000001]);
    let recs = records(vec![
        rec(1, "completed", doc! {}),
        rec(3, "rolled-back", doc! { "rolledBackAt": bson::DateTime::now() }),
    ]);
    assert_eq!(adoption(&squash, &recs).unwrap(), None);
    assert_eq!(adoption(&m(2), &recs).unwrap(), None, "not a squash");
}

#[test]
fn a_migration_older_than_the_newest_applied_one_is_out_of_order() {
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![rec(1, "completed", doc! {}), rec(3, "completed", doc! {})]);
    let plan = pending(&reg, &recs, None);
    assert_eq!(versions(&plan), [v(2)]);
    match check_order(&plan, &reg, &recs, false) {
        Err(Error::OutOfOrder {
            newest_applied,
            pending,
        }) => {
            assert_eq!((newest_applied, pending[0].0), (v(3), v(2)))
        }
        other => panic!("{other:?}"),
    }
    assert!(check_order(&plan, &reg, &recs, true).is_ok(), "allowed");
}

#[test]
fn a_migration_with_a_history_here_runs_where_it_is() {
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![
        rec(1, "completed", doc! {}),
        rec(2, "rolled-back", doc! { "rolledBackAt": bson::DateTime::now() }),
        rec(3, "completed", doc! {}),
    ]);
    let plan = pending(&reg, &recs, None);
    assert!(check_order(&plan, &reg, &recs, false).is_ok());
    // A claim that never ran is no history.
    let claimed = records(vec![
        rec(1, "completed", doc! {}),
        rec(2, "planned", doc! {}),
        rec(3, "completed", doc! {}),
    ]);
    assert!(check_order(&pending(&reg, &claimed, None), &reg, &claimed, false).is_err());
}

#[test]
fn a_post_deploy_migration_waiting_for_its_phase_is_not_out_of_order() {
    let reg = registry(vec![m(1), m(2).in_phase(Phase::PostDeploy), m(3)]);
    let recs = records(vec![rec(1, "completed", doc! {}), rec(3, "completed", doc! {})]);
    let plan = pending(&reg, &recs, None);
    assert!(check_order(&plan, &reg, &recs, false).is_ok());
    assert!(!out_of_order(
        &reg.migrations()[1],
        &recs,
        NewestApplied::of(&reg, &recs)
    ));
}

#[test]
fn an_adopted_squash_is_not_out_of_order() {
    let reg = registry(vec![m(2).replacing(&[20260101000001]), m(3)]);
    let recs = records(vec![rec(1, "completed", doc! {}), rec(3, "completed", doc! {})]);
    assert!(!out_of_order(
        &reg.migrations()[0],
        &recs,
        NewestApplied::of(&reg, &recs)
    ));
}

#[test]
fn the_pre_deploy_phase_applies_pre_deploy_migrations_only() {
    let reg = registry(vec![m(1), m(2).in_phase(Phase::PostDeploy), m(3)]);
    let all = pending(&reg, &Records::new(), None);
    assert_eq!(versions(&in_phase(all.clone(), Some(Phase::PreDeploy))), [v(1), v(3)]);
    assert_eq!(versions(&in_phase(all, None)), [v(1), v(2), v(3)]);
}

#[test]
fn the_post_deploy_phase_waits_for_older_pre_deploy_migrations() {
    let reg = registry(vec![
        m(1).in_phase(Phase::PostDeploy),
        m(2),
        m(3).in_phase(Phase::PostDeploy),
    ]);
    let none_applied = pending(&reg, &Records::new(), None);
    assert_eq!(versions(&in_phase(none_applied, Some(Phase::PostDeploy))), [v(1)]);
    let recs = records(vec![rec(2, "completed", doc! {})]);
    let after_pre = pending(&reg, &recs, None);
    assert_eq!(versions(&in_phase(after_pre, Some(Phase::PostDeploy))), [v(1), v(3)]);
}

#[test]
fn the_next_batch_follows_the_highest_recorded_one() {
    assert_eq!(next_batch(&Records::new()), 1);
    let recs = records(vec![
        rec(1, "completed", doc! { "batch": 4_i64 }),
        rec(2, "rolled-back", doc! { "batch": 7_i64 }),
    ]);
    assert_eq!(next_batch(&recs), 8);
}
