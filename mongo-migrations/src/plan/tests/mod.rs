//! The planning rules without a server, as refinery tests `verify_migrations`:
//! record predicates, validation, adoption of squashes, out-of-order, phases,
//! rollback order, and the status views built on them. Records are built
//! from documents as the tracking collection stores them.

use bson::{doc, Document};

use super::*;
use crate::holder::Holder;
use crate::report::{Readiness, State, StatusReport};
use crate::{BoxFuture, MigrationContext, MigrationResult};

pub(super) fn noop(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Ok(()) })
}

/// Version `20260101000000 + n`.
pub(super) fn v(n: u64) -> Version {
    Version::new_unchecked(20260101000000 + n)
}

/// A reversible migration `m<n>`.
pub(super) fn m(n: u64) -> Migration {
    Migration::new(v(n), format!("m{n}"), noop).with_down(noop)
}

pub(super) fn registry(migrations: Vec<Migration>) -> Registry {
    Registry::new(migrations).unwrap()
}

/// A record of `m<n>` in `status`, batch 1, direction up, with `extra` on top.
pub(super) fn rec(n: u64, status: &str, extra: Document) -> Record {
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

pub(super) fn records(list: Vec<Record>) -> Records {
    index(list)
}

pub(super) fn versions(plan: &[&Migration]) -> Vec<Version> {
    plan.iter().map(|m| m.version).collect()
}

pub(super) fn live_lock(holder: &str, generation: i64) -> LockInfo {
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

pub(super) const HOLDER: &str = "7d0f4a4e-0000-4000-8000-000000000001";

pub(super) fn applied(n: u64, batch: i64, at_secs: i64) -> Record {
    rec(
        n,
        "completed",
        doc! { "batch": batch, "appliedAt": bson::DateTime::from_millis(1_767_225_600_000 + at_secs * 1_000) },
    )
}

mod composed;
mod down;
mod records;
mod up;
mod validation;
mod views;
