//! The composed plans, `up` and `down`, and the admin commands' refusals:
//! registry, records and lock in, plan or refusal out, no server.

use super::*;
use crate::options::{Config, OutOfOrder, UpOptions};
use crate::plan::{admin, compose};
use crate::Resolution;

fn up_plan(reg: &Registry, recs: &Records, options: UpOptions) -> Result<Vec<(Version, i64, bool)>, Error> {
    Ok(compose::up(reg, recs, None, &options, &Config::default())?
        .into_iter()
        .map(|p| (p.migration.version, p.batch, p.adopt.is_some()))
        .collect())
}

fn down_plan(reg: &Registry, recs: &Records, target: DownTarget) -> Result<Vec<(Version, i64)>, Error> {
    Ok(compose::down(reg, recs, None, target)?
        .into_iter()
        .map(|p| (p.migration.version, p.batch))
        .collect())
}

fn four() -> Registry {
    registry(vec![m(1), m(2), m(3), m(4)])
}

#[test]
fn up_on_a_fresh_database_runs_everything_in_batch_one() {
    let plan = up_plan(&four(), &Records::new(), UpOptions::default()).unwrap();
    assert_eq!(
        plan,
        [(v(1), 1, false), (v(2), 1, false), (v(3), 1, false), (v(4), 1, false)]
    );
}

#[test]
fn up_runs_what_is_pending_in_the_next_batch() {
    let recs = records(vec![applied(1, 1, 1), applied(2, 2, 2)]);
    let plan = up_plan(&four(), &recs, UpOptions::default()).unwrap();
    assert_eq!(plan, [(v(3), 3, false), (v(4), 3, false)]);
}

#[test]
fn up_with_everything_applied_is_empty() {
    let recs = records(vec![
        applied(1, 1, 1),
        applied(2, 1, 2),
        applied(3, 1, 3),
        applied(4, 1, 4),
    ]);
    assert_eq!(up_plan(&four(), &recs, UpOptions::default()).unwrap(), []);
}

#[test]
fn up_to_a_version_stops_there() {
    let options = UpOptions {
        to: Some(v(2)),
        ..UpOptions::default()
    };
    let plan = up_plan(&four(), &Records::new(), options).unwrap();
    assert_eq!(plan, [(v(1), 1, false), (v(2), 1, false)]);
}

#[test]
fn up_of_one_phase_leaves_the_other() {
    let reg = registry(vec![m(1), m(2).in_phase(Phase::PostDeploy), m(3)]);
    let pre = UpOptions {
        phase: Some(Phase::PreDeploy),
        ..UpOptions::default()
    };
    assert_eq!(
        up_plan(&reg, &Records::new(), pre).unwrap(),
        [(v(1), 1, false), (v(3), 1, false)]
    );
    let post = UpOptions {
        phase: Some(Phase::PostDeploy),
        ..UpOptions::default()
    };
    // Post-deploy only once the pre-deploy migrations before it are applied.
    assert_eq!(up_plan(&reg, &Records::new(), post).unwrap(), []);
    let pre_done = records(vec![applied(1, 1, 1)]);
    assert_eq!(up_plan(&reg, &pre_done, post).unwrap(), [(v(2), 2, false)]);
}

#[test]
fn up_runs_a_rolled_back_migration_again() {
    let recs = records(vec![
        applied(1, 1, 1),
        rec(2, "rolled-back", doc! { "rolledBackAt": bson::DateTime::now() }),
    ]);
    let plan = up_plan(&four(), &recs, UpOptions::default()).unwrap();
    assert_eq!(plan.iter().map(|p| p.0).collect::<Vec<_>>(), [v(2), v(3), v(4)]);
}

#[test]
fn up_refuses_an_out_of_order_migration_unless_allowed() {
    let recs = records(vec![applied(1, 1, 1), applied(3, 1, 3)]);
    let refused = up_plan(&four(), &recs, UpOptions::default()).unwrap_err();
    assert!(matches!(refused, Error::OutOfOrder { .. }), "{refused:?}");
    let allowed = UpOptions {
        allow_out_of_order: true,
        ..UpOptions::default()
    };
    assert_eq!(
        up_plan(&four(), &recs, allowed).unwrap(),
        [(v(2), 2, false), (v(4), 2, false)]
    );
}

#[test]
fn up_allows_out_of_order_when_the_config_does() {
    let recs = records(vec![applied(1, 1, 1), applied(3, 1, 3)]);
    let config = Config {
        out_of_order: OutOfOrder::Allow,
        ..Config::default()
    };
    let reg = four();
    let plan = compose::up(&reg, &recs, None, &UpOptions::default(), &config).unwrap();
    assert_eq!(plan.len(), 2);
}

#[test]
fn up_is_refused_by_a_failed_migration() {
    let recs = records(vec![applied(1, 1, 1), rec(2, "failed", doc! { "error": "boom" })]);
    let refused = up_plan(&four(), &recs, UpOptions::default()).unwrap_err();
    assert!(matches!(refused, Error::Blocked { .. }), "{refused:?}");
}

#[test]
fn up_is_refused_by_an_edited_migration() {
    let reg = registry(vec![m(1).with_checksum("sha256:new"), m(2)]);
    let recs = records(vec![rec(1, "completed", doc! { "checksum": "sha256:old" })]);
    let refused = up_plan(&reg, &recs, UpOptions::default()).unwrap_err();
    assert!(matches!(refused, Error::ChecksumMismatch { .. }), "{refused:?}");
}

#[test]
fn up_is_refused_by_a_record_this_build_does_not_have() {
    let reg = registry(vec![m(1)]);
    let recs = records(vec![applied(1, 1, 1), applied(9, 1, 9)]);
    let refused = up_plan(&reg, &recs, UpOptions::default()).unwrap_err();
    assert!(matches!(refused, Error::UnknownVersions { .. }), "{refused:?}");
}

#[test]
fn up_is_refused_while_a_live_runner_has_a_claim() {
    let lock = live_lock(HOLDER, 3);
    let recs = records(vec![rec(
        1,
        "running",
        doc! { "lockHolder": { "id": HOLDER, "generation": 3_i64 }, "startedAt": bson::DateTime::now() },
    )]);
    let refused = compose::up(&four(), &recs, Some(&lock), &UpOptions::default(), &Config::default()).unwrap_err();
    assert!(matches!(refused, Error::Locked { .. }), "{refused:?}");
}

#[test]
fn up_records_a_squash_of_applied_migrations_without_running_it() {
    let reg = registry(vec![m(3).replacing(&[20260101000001, 20260101000002]), m(4)]);
    let recs = records(vec![applied(1, 1, 1), applied(2, 1, 2)]);
    let plan = up_plan(&reg, &recs, UpOptions::default()).unwrap();
    assert_eq!(plan, [(v(3), 2, true), (v(4), 2, false)]);
}

#[test]
fn up_refuses_a_squash_over_a_partly_migrated_database() {
    let reg = registry(vec![m(3).replacing(&[20260101000001, 20260101000002])]);
    let recs = records(vec![applied(1, 1, 1)]);
    let refused = up_plan(&reg, &recs, UpOptions::default()).unwrap_err();
    assert!(matches!(refused, Error::PartialSquash { .. }), "{refused:?}");
}

#[test]
fn down_rolls_back_the_last_applied_one_by_default() {
    let recs = records(vec![applied(1, 1, 1), applied(2, 1, 2), applied(3, 2, 3)]);
    assert_eq!(down_plan(&four(), &recs, DownTarget::default()).unwrap(), [(v(3), 2)]);
}

#[test]
fn down_of_the_last_batch_takes_it_whole_newest_first() {
    let recs = records(vec![applied(1, 1, 1), applied(2, 2, 2), applied(3, 2, 3)]);
    assert_eq!(
        down_plan(&four(), &recs, DownTarget::LastBatch).unwrap(),
        [(v(3), 2), (v(2), 2)]
    );
}

#[test]
fn down_to_a_version_keeps_it() {
    let recs = records(vec![applied(1, 1, 1), applied(2, 1, 2), applied(3, 1, 3)]);
    assert_eq!(
        down_plan(&four(), &recs, DownTarget::To(v(1))).unwrap(),
        [(v(3), 1), (v(2), 1)]
    );
}

#[test]
fn down_follows_the_order_of_applying_not_of_versions() {
    // 2 was applied out of order, after 3: it is undone first.
    let recs = records(vec![applied(1, 1, 1), applied(3, 1, 3), applied(2, 2, 9)]);
    assert_eq!(
        down_plan(&four(), &recs, DownTarget::Steps(2)).unwrap(),
        [(v(2), 2), (v(3), 1)]
    );
}

#[test]
fn down_is_refused_whole_when_one_is_irreversible() {
    let reg = registry(vec![m(1), Migration::new(v(2), "m2", noop), m(3)]);
    let recs = records(vec![applied(1, 1, 1), applied(2, 1, 2), applied(3, 1, 3)]);
    let refused = down_plan(&reg, &recs, DownTarget::Steps(2)).unwrap_err();
    assert!(matches!(refused, Error::Irreversible { .. }), "{refused:?}");
}

#[test]
fn down_with_nothing_applied_is_empty() {
    assert_eq!(down_plan(&four(), &Records::new(), DownTarget::Steps(3)).unwrap(), []);
}

#[test]
fn the_intent_plans_as_its_direction_does() {
    let recs = records(vec![applied(1, 1, 1)]);
    let up = Intent::Up(UpOptions::default());
    assert_eq!(up.direction(), crate::Direction::Up);
    assert_eq!(up.plan(&four(), &recs, None, &Config::default()).unwrap().len(), 3);
    let down = Intent::Down(DownTarget::Steps(1));
    assert_eq!(down.direction(), crate::Direction::Down);
    assert_eq!(down.plan(&four(), &recs, None, &Config::default()).unwrap().len(), 1);
}

#[test]
fn forget_takes_only_recorded_versions_this_build_does_not_have() {
    let reg = registry(vec![m(1)]);
    let recs = records(vec![applied(1, 1, 1), applied(9, 1, 9)]);
    let chosen = admin::forgettable(&reg, &recs, &[v(9)]).unwrap();
    assert_eq!(chosen.iter().map(|r| r.version).collect::<Vec<_>>(), [v(9)]);
    let known = admin::forgettable(&reg, &recs, &[v(1)]).unwrap_err();
    assert!(matches!(known, Error::NotForgettable { .. }), "{known:?}");
    let unrecorded = admin::forgettable(&reg, &recs, &[v(8)]).unwrap_err();
    assert!(unrecorded.to_string().contains("no tracking record"), "{unrecorded}");
}

#[test]
fn baseline_is_refused_where_a_migration_up_to_it_has_a_record() {
    let reg = four();
    assert!(admin::baselinable(&reg, &Records::new(), v(3)).is_ok());
    let recs = records(vec![applied(2, 1, 2)]);
    match admin::baselinable(&reg, &recs, v(3)) {
        Err(Error::NotBaselinable { recorded }) => assert_eq!(recorded, [(v(2), "m2".to_string())]),
        other => panic!("{other:?}"),
    }
    // A record after the baseline's target is no reason to refuse it.
    assert!(admin::baselinable(&reg, &records(vec![applied(4, 1, 4)]), v(3)).is_ok());
    assert_eq!(admin::up_to(&reg, v(2)).count(), 2);
}

#[test]
fn resolve_settles_only_running_or_failed_records() {
    let reg = four();
    let failed = rec(1, "failed", doc! { "error": "boom" });
    assert!(admin::resolvable(&reg, Some(&failed), v(1), Resolution::Pending).is_ok());
    assert!(admin::resolvable(&reg, Some(&failed), v(1), Resolution::Applied).is_ok());
    let done = applied(2, 1, 2);
    let refused = admin::resolvable(&reg, Some(&done), v(2), Resolution::Pending).unwrap_err();
    assert!(matches!(refused, Error::NotResolvable { .. }), "{refused:?}");
    let nothing = admin::resolvable(&reg, None, v(3), Resolution::Applied).unwrap_err();
    assert!(matches!(nothing, Error::NothingToResolve { .. }), "{nothing:?}");
}

#[test]
fn an_edit_is_accepted_only_for_a_completed_migration_of_this_build() {
    let reg = registry(vec![m(1)]);
    let done = applied(1, 1, 1);
    assert!(admin::resolvable(&reg, Some(&done), v(1), Resolution::AcceptChecksum).is_ok());
    let failed = rec(1, "failed", doc! {});
    let refused = admin::resolvable(&reg, Some(&failed), v(1), Resolution::AcceptChecksum).unwrap_err();
    assert!(matches!(refused, Error::ChecksumNotAcceptable { .. }), "{refused:?}");
    let gone = applied(5, 1, 5);
    let refused = admin::resolvable(&reg, Some(&gone), v(5), Resolution::AcceptChecksum).unwrap_err();
    assert!(matches!(refused, Error::UnknownTarget { .. }), "{refused:?}");
}
