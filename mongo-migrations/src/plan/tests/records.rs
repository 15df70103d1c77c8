//! Record predicates: applied, pending, resumable, live.

use super::*;

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

#[test]
fn a_malformed_record_names_its_field_by_path() {
    let field = |doc: Document| match Record::from_document(&doc) {
        Err(Error::CorruptRecord { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let good = || {
        doc! {
            "version": 20260101000000_i64, "name": "m", "status": "completed", "batch": 1_i64,
            "createdAt": bson::DateTime::now(), "updatedAt": bson::DateTime::now(),
        }
    };
    assert!(Record::from_document(&good()).is_ok());
    let mut missing = good();
    missing.remove("batch");
    assert_eq!(field(missing), "batch");
    let mut wrong = good();
    wrong.insert("name", 5_i32);
    assert_eq!(field(wrong), "name");
    let mut nested = good();
    nested.insert("lockHolder", doc! { "id": 7_i32, "generation": 1_i64 });
    assert_eq!(field(nested), "lockHolder.id");
    let mut status = good();
    status.insert("status", "sideways");
    assert_eq!(field(status), "status");
}
