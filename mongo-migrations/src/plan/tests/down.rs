//! What `down` would run: the rollback order and its targets.

use super::*;

#[test]
fn a_rollback_undoes_the_newest_batch_first_then_by_time_applied() {
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![applied(1, 1, 10), applied(2, 2, 20), applied(3, 2, 30)]);
    assert_eq!(
        versions(&rollback(&reg, &recs, DownTarget::Steps(2)).unwrap()),
        [v(3), v(2)]
    );
    assert_eq!(
        versions(&rollback(&reg, &recs, DownTarget::Steps(9)).unwrap()),
        [v(3), v(2), v(1)]
    );
}

#[test]
fn a_migration_applied_out_of_order_is_undone_where_it_was_applied() {
    // m2 came from another branch and was applied last, in batch 3.
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![applied(1, 1, 10), applied(3, 2, 20), applied(2, 3, 30)]);
    assert_eq!(versions(&rollback(&reg, &recs, DownTarget::Steps(1)).unwrap()), [v(2)]);
}

#[test]
fn the_last_batch_is_rolled_back_whole() {
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![applied(1, 1, 10), applied(2, 2, 20), applied(3, 2, 30)]);
    assert_eq!(
        versions(&rollback(&reg, &recs, DownTarget::LastBatch).unwrap()),
        [v(3), v(2)]
    );
}

#[test]
fn a_rollback_to_a_version_keeps_it_applied() {
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![applied(1, 1, 10), applied(2, 1, 20), applied(3, 1, 30)]);
    assert_eq!(
        versions(&rollback(&reg, &recs, DownTarget::To(v(1))).unwrap()),
        [v(3), v(2)]
    );
    assert!(rollback(&reg, &recs, DownTarget::To(v(3))).unwrap().is_empty());
}

#[test]
fn an_irreversible_migration_refuses_the_whole_rollback() {
    let one_way = Migration::new(v(2), "m2", noop);
    let reg = registry(vec![m(1), one_way, m(3)]);
    let recs = records(vec![applied(1, 1, 10), applied(2, 1, 20), applied(3, 1, 30)]);
    assert!(
        matches!(rollback(&reg, &recs, DownTarget::Steps(2)), Err(Error::Irreversible { version, .. }) if version == v(2))
    );
    assert_eq!(versions(&rollback(&reg, &recs, DownTarget::Steps(1)).unwrap()), [v(3)]);
}

#[test]
fn versions_a_squash_replaced_are_left_to_the_squash() {
    let reg = registry(vec![m(3).replacing(&[20260101000001, 20260101000002])]);
    let recs = records(vec![applied(1, 1, 10), applied(2, 1, 20), applied(3, 2, 30)]);
    assert_eq!(versions(&rollback(&reg, &recs, DownTarget::Steps(9)).unwrap()), [v(3)]);
}

#[test]
fn pending_rollbacks_and_running_steps_are_not_rolled_back() {
    let reg = registry(vec![m(1), m(2), m(3)]);
    let recs = records(vec![
        applied(1, 1, 10),
        rec(2, "rolled-back", doc! { "rolledBackAt": bson::DateTime::now() }),
        rec(3, "planned", doc! {}),
    ]);
    assert_eq!(versions(&rollback(&reg, &recs, DownTarget::Steps(9)).unwrap()), [v(1)]);
}
