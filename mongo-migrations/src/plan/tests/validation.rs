//! Validation before a run: unknown, blocked, locked and edited records.

use super::*;

#[test]
fn an_applied_record_this_build_does_not_know_is_refused() {
    let e = validate(
        &registry(vec![m(1)]),
        &records(vec![rec(1, "completed", doc! {}), rec(9, "completed", doc! {})]),
        None,
    );
    assert!(
        matches!(e, Err(Error::UnknownVersions { ref versions }) if versions[0].0 == v(9)),
        "{e:?}"
    );
}

#[test]
fn an_unknown_record_that_is_rolled_back_or_pending_is_no_obstacle() {
    let recs = records(vec![rec(8, "rolled-back", doc! {}), rec(9, "planned", doc! {})]);
    assert!(validate(&registry(vec![m(1)]), &recs, None).is_ok());
}

#[test]
fn a_record_a_squash_replaced_is_known() {
    let squash = m(3).replacing(&[20260101000001, 20260101000002]);
    let recs = records(vec![rec(1, "completed", doc! {}), rec(2, "completed", doc! {})]);
    assert!(validate(&registry(vec![squash]), &recs, None).is_ok());
}

#[test]
fn a_running_record_left_by_a_runner_that_is_gone_blocks() {
    let recs = records(vec![rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 1_i64 } },
    )]);
    match validate(&registry(vec![m(1)]), &recs, None) {
        Err(Error::Blocked {
            blocker: Blocker::LeftRunning {
                runner: Runner::Gone, ..
            },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_running_record_of_a_live_run_is_locked_not_blocked() {
    let lock = live_lock(HOLDER, 2);
    let recs = records(vec![rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 2_i64 } },
    )]);
    let e = validate(&registry(vec![m(1)]), &recs, Some(&lock)).unwrap_err();
    let Error::Locked { holder, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(holder.run_at, Some((v(1), MigrationStatus::Running)), "{e}");
    assert_eq!(
        holder.holder.as_ref().map(|h| h.id.to_string()).as_deref(),
        Some(HOLDER)
    );
    assert!(
        e.to_string().contains(&format!("(its run is at {} running)", v(1))),
        "{e}"
    );
}

#[test]
fn a_failed_record_blocks_with_its_error() {
    let recs = records(vec![rec(1, "failed", doc! { "error": "index spec invalid" })]);
    match validate(&registry(vec![m(1)]), &recs, None) {
        Err(Error::Blocked {
            blocker: Blocker::Failed { error, .. },
            ..
        }) => assert_eq!(error, "index spec invalid"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_edited_migration_is_refused_and_an_empty_checksum_is_not_compared() {
    let edited = m(1).with_checksum("sha256:new");
    let recs = records(vec![rec(1, "completed", doc! { "checksum": "sha256:old" })]);
    assert!(matches!(
        validate(&registry(vec![edited.clone()]), &recs, None),
        Err(Error::ChecksumMismatch { .. })
    ));
    let unsummed = records(vec![rec(1, "completed", doc! { "checksum": "" })]);
    assert!(validate(&registry(vec![edited]), &unsummed, None).is_ok());
    assert!(
        validate(&registry(vec![m(1)]), &recs, None).is_ok(),
        "a hand-written registry has no checksum"
    );
}

#[test]
fn who_left_a_record_running_is_told_apart() {
    let lock = LockInfo {
        expired: true,
        ..live_lock(HOLDER, 1)
    };
    let left = rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 1_i64 } },
    );
    assert!(matches!(
        blocker(&left, Some(&lock)),
        Blocker::LeftRunning {
            runner: Runner::LockExpired,
            ..
        }
    ));
    let fenced = rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 1_i64 }, "fencedBy": 2_i64 },
    );
    assert!(matches!(
        blocker(&fenced, Some(&lock)),
        Blocker::LeftRunning {
            runner: Runner::LostItsLock,
            ..
        }
    ));
}
