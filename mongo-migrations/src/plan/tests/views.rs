//! The status and readiness views.

use super::*;

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

/// A `down` walk cut off (a double Ctrl-C: no `stoppedAt`) leaves the
/// migration applied; its detail says the `down` was cut off, in every view.
#[test]
fn a_down_walk_cut_off_stands_applied_and_says_so() {
    let reg = registry(vec![m(1)]);
    let checkpoints = doc! { "0": { "direction": "down", "parts": [ { "done": 1500_i64 } ] } };
    let recs = records(vec![rec(
        1,
        "running",
        doc! { "walks": true, "direction": "down", "appliedAt": bson::DateTime::now(), "checkpoints": checkpoints },
    )]);
    let status = StatusReport::new(&reg, &recs, None);
    let e = &status.migrations[0];
    assert_eq!(e.state, State::Applied);
    let detail = e.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("its `down` was cut off (it stands applied until a `down` finishes it); resumes from its checkpoint (1,500 documents done)"),
        "{detail}"
    );
}
