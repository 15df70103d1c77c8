//! The filters and fields the tracking writes are made of: this runner's
//! unfenced claim, the upsert guard, the status stamp.

use bson::{doc, Document};

use crate::lock::Fence;
use crate::record::Record;
use crate::{MigrationStatus, Version};

pub(super) fn holder_doc(fence: &Fence) -> Document {
    doc! { "id": fence.holder_id.to_string(), "generation": fence.generation }
}

/// The filter of a claim this runner holds in `status`, unfenced. The
/// holder id is new for every acquisition of the lock, so it names this
/// hold alone: the generation beside it would add a predicate to every
/// step write and exclude nothing more. What shuts an older hold out is
/// the fence's mark, `fencedBy`.
pub(super) fn own(version: Version, status: MigrationStatus, fence: &Fence) -> Document {
    doc! {
        "version": version.as_i64(),
        "status": status.as_str(),
        "lockHolder.id": fence.holder_id.to_string(),
        "fencedBy": { "$exists": false },
    }
}

/// The filter of this runner's unfenced `running` claim on `version`: what
/// the checkpoints of its batches are conditional on.
pub(crate) fn running_claim(version: Version, fence: &Fence) -> Document {
    own(version, MigrationStatus::Running, fence)
}

/// One statement of an `update` command. `upsert` on a filter that names the
/// version turns "matched nothing" into a duplicate-key error on the unique
/// version index, which the reply reports by statement.
pub(super) fn guarded(filter: Document, update: Document) -> Document {
    doc! { "q": filter, "u": update, "upsert": true }
}

/// Sets `status`, with the time it was reached when it is an end state.
pub(super) fn stamp(fields: &mut Document, status: MigrationStatus, now: bson::DateTime) {
    fields.insert("status", status.as_str());
    match status {
        MigrationStatus::Completed => fields.insert("appliedAt", now),
        MigrationStatus::RolledBack => fields.insert("rolledBackAt", now),
        _ => None,
    };
}

/// Whether `record` is as a write of this runner at `now` left it: its
/// holder and generation, `updatedAt` of that write, not fenced since. A
/// retried write whose first attempt landed (its reply was lost) finds its
/// own write this way, where its filter no longer matches.
pub(super) fn written_by(record: &Record, fence: &Fence, now: bson::DateTime) -> bool {
    record.fenced_by.is_none()
        && record.lock_holder.as_deref() == Some(fence.holder_id.to_string().as_str())
        && record.lock_generation == Some(fence.generation)
        && bson::DateTime::from_chrono(record.updated_at) == now
}
