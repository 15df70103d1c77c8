//! The planning rules without a server, as refinery tests `verify_migrations`:
//! record predicates, validation, adoption of squashes, out-of-order, phases,
//! rollback order, and the status views built on them. Records are built
//! from documents as the tracking collection stores them.

use bson::{doc, Document};

use super::*;
use crate::holder::Holder;
use crate::report::{Readiness, State, StatusReport};
use crate::{BoxFuture, MigrationContext, MigrationResult};

fn noop(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Ok(()) })
}

/// Version `20260101000000 + n`.
fn v(n: u64) -> Version {
    Version::new_unchecked(20260101000000 + n)
}

/// A reversible migration `m<n>`.
fn m(n: u64) -> Migration {
    Migration::new(v(n), format!("m{n}"), noop).with_down(noop)
}

fn registry(migrations: Vec<Migration>) -> Registry {
    Registry::new(migrations).unwrap()
}

/// A record of `m<n>` in `status`, batch 1, direction up, with `extra` on top.
fn rec(n: u64, status: &str, extra: Document) -> Record {
    let at = bson::DateTime::from_millis(1_767_225_600_000 + n as i64 * 1_000);
    let mut d = doc! {
        "version": v(n).as_i64(), "name": format!("m{n}"), "status": status, "batch": 1_i64,
        "direction": "up", "createdAt": at, "updatedAt": at, "reversible": true,
    };
    if status == "completed" {
        d.insert("appliedAt", at);
    }
    d.extend(extra);
    Record::from_document(&d).unwrap()
}

fn records(list: Vec<Record>) -> Records {
    index(list)
}

fn versions(plan: &[&Migration]) -> Vec<Version> {
    plan.iter().map(|m| m.version).collect()
}

fn live_lock(holder: &str, generation: i64) -> LockInfo {
    LockInfo {
        holder: Holder {
            id: holder.parse().unwrap(),
            host: "h".into(),
            pid: 1,
            reason: "up".into(),
        },
        generation,
        acquired_at: None,
        heartbeat_at: None,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(1),
        expired: false,
    }
}

const HOLDER: &str = "7d0f4a4e-0000-4000-8000-000000000001";

// Record predicates.

#[test]
fn a_completed_record_is_applied_and_not_pending() {
    let r = rec(1, "completed", doc! {});
    assert!(r.is_applied() && !r.is_pending());
}

#[test]
fn a_planned_up_that_never_started_is_pending() {
    let r = rec(1, "planned", doc! {});
    assert!(r.is_pending() && !r.is_applied() && r.never_ran());
}

#[test]
fn a_planned_down_that_never_started_is_still_applied() {
    let r = rec(
        1,
        "planned",
        doc! { "direction": "down", "appliedAt": bson::DateTime::now() },
    );
    assert!(r.is_applied() && !r.is_pending() && !r.never_ran());
}

#[test]
fn a_rolled_back_record_is_pending() {
    let r = rec(1, "rolled-back", doc! { "rolledBackAt": bson::DateTime::now() });
    assert!(r.is_pending() && !r.is_applied());
}

#[test]
fn a_plain_running_record_is_neither_applied_nor_pending() {
    let r = rec(1, "running", doc! { "startedAt": bson::DateTime::now() });
    assert!(!r.is_applied() && !r.is_pending() && !r.is_resumable());
}

#[test]
fn a_transaction_that_did_not_commit_left_nothing() {
    let up = rec(1, "running", doc! { "transactional": true });
    assert!(up.rolled_back_whole() && up.is_pending());
    let down = rec(
        1,
        "failed",
        doc! { "transactional": true, "direction": "down", "error": "x" },
    );
    assert!(down.rolled_back_whole() && down.is_applied());
}

#[test]
fn a_walk_is_resumable_from_its_first_instant() {
    let r = rec(1, "running", doc! { "walks": true });
    assert!(r.is_resumable() && r.is_pending());
    let failed = rec(1, "failed", doc! { "walks": true, "error": "boom" });
    assert!(failed.is_resumable());
}

#[test]
fn a_checkpoint_of_its_direction_makes_a_record_resumable() {
    let checkpoint = doc! { "0": { "direction": "up", "collection": "c", "parts": [ { "done": 5_i64 } ] } };
    let r = rec(1, "running", doc! { "checkpoints": checkpoint.clone() });
    assert!(r.is_resumable());
    let other = rec(1, "running", doc! { "direction": "down", "checkpoints": checkpoint });
    assert!(!other.is_resumable(), "a checkpoint of `up` says nothing of a `down`");
}

#[test]
fn a_transactional_record_is_never_resumable() {
    let r = rec(1, "failed", doc! { "walks": true, "transactional": true, "error": "x" });
    assert!(!r.is_resumable());
}

#[test]
fn documents_done_add_up_the_segments_of_the_current_direction() {
    let checkpoints = doc! {
        "0": { "direction": "up", "parts": [ { "done": 5_i64 }, { "done": 7_i64 } ] },
        "1": { "direction": "down", "parts": [ { "done": 100_i64 } ] },
    };
    let r = rec(1, "running", doc! { "checkpoints": checkpoints });
    assert_eq!((r.checkpoint_done(), r.documents_done()), (12, Some(12)));
    assert_eq!(rec(1, "completed", doc! {}).documents_done(), None);
}

#[test]
fn a_claim_of_a_live_lock_is_live_and_a_fenced_one_is_not() {
    let lock = live_lock(HOLDER, 4);
    let mine = rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 4_i64 } },
    );
    assert!(mine.is_live(Some(&lock)));
    let fenced = rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 4_i64 }, "fencedBy": 5_i64 },
    );
    assert!(!fenced.is_live(Some(&lock)));
    let older = rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 3_i64 } },
    );
    assert!(!older.is_live(Some(&lock)) && !mine.is_live(None));
}

// Validation.

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

// What `up` would run.

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

// What `down` would run.

fn applied(n: u64, batch: i64, at_secs: i64) -> Record {
    rec(
        n,
        "completed",
        doc! { "batch": batch, "appliedAt": bson::DateTime::from_millis(1_767_225_600_000 + at_secs * 1_000) },
    )
}

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

// The status views.

#[test]
fn status_states_and_counts_follow_the_records() {
    let reg = registry(vec![m(1), m(2), m(3), m(4), m(5)]);
    let recs = records(vec![
        applied(1, 1, 10),
        rec(2, "failed", doc! { "error": "x", "batch": 2_i64 }),
        rec(
            3,
            "rolled-back",
            doc! { "rolledBackAt": bson::DateTime::now(), "appliedAt": bson::DateTime::now() },
        ),
        rec(4, "planned", doc! { "batch": 3_i64 }),
        rec(9, "completed", doc! {}),
    ]);
    let status = StatusReport::new(&reg, &recs, None);
    let states: Vec<State> = status.migrations.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            State::Applied,
            State::Failed,
            State::RolledBack,
            State::Pending,
            State::Pending,
            State::Unknown
        ]
    );
    let c = &status.counts;
    // A rolled-back migration also counts as pending.
    assert_eq!(
        (c.applied, c.pending, c.failed, c.rolled_back, c.unknown),
        (1, 3, 1, 1, 1)
    );
    assert_eq!(
        status.migrations[3].batch, None,
        "a claim that never ran has no batch yet"
    );
    assert_eq!(
        status.migrations[2].applied_at, None,
        "a rolled-back row shows no applied time"
    );
}

#[test]
fn a_stopped_walk_shows_pending_with_where_it_stopped() {
    let reg = registry(vec![m(1)]);
    let checkpoints = doc! { "0": { "direction": "up", "parts": [ { "done": 40_i64 } ] } };
    let recs = records(vec![rec(
        1,
        "running",
        doc! { "walks": true, "stoppedAt": bson::DateTime::now(), "checkpoints": checkpoints },
    )]);
    let status = StatusReport::new(&reg, &recs, None);
    let e = &status.migrations[0];
    assert_eq!((e.state, e.documents_done), (State::Pending, Some(40)));
    assert!(
        e.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("stopped on request at ") && d.contains("40 documents")),
        "{e:?}"
    );
}

#[test]
fn readiness_counts_only_the_phase_it_checks() {
    let reg = registry(vec![m(1), m(2).in_phase(Phase::PostDeploy)]);
    let recs = records(vec![applied(1, 1, 10), rec(9, "completed", doc! {})]);
    let status = StatusReport::new(&reg, &recs, None);
    let pre = Readiness::new(&status, Some(Phase::PreDeploy));
    assert!(pre.ready && pre.pending.is_empty());
    assert_eq!(pre.ahead_of_binary, [v(9)]);
    let all = Readiness::new(&status, None);
    assert!(!all.ready && all.pending == [v(2)]);
}

#[test]
fn down_takes_at_most_one_target_and_defaults_to_one_step() {
    assert_eq!(DownTarget::from_options(None, false, None), Some(DownTarget::Steps(1)));
    assert_eq!(
        DownTarget::from_options(Some(3), false, None),
        Some(DownTarget::Steps(3))
    );
    assert_eq!(DownTarget::from_options(None, true, None), Some(DownTarget::LastBatch));
    assert_eq!(
        DownTarget::from_options(None, false, Some(v(1))),
        Some(DownTarget::To(v(1)))
    );
    assert_eq!(DownTarget::from_options(Some(1), true, None), None);
    assert_eq!(DownTarget::from_options(Some(1), false, Some(v(1))), None);
}
