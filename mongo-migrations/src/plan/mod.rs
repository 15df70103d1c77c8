//! Pure planning: what `up` and `down` would run, given the registry and the
//! tracking records. Everything here is checked before anything is written.

use std::collections::BTreeMap;

use crate::holder::LockedBy;
use crate::lock::LockInfo;
pub use crate::options::DownTarget;
use crate::record::Record;
use crate::status::{Blocker, Runner};
use crate::{Error, Migration, MigrationStatus, Phase, Registry, Version};

/// Records by version.
pub(crate) type Records = BTreeMap<Version, Record>;

pub(crate) fn index(records: Vec<Record>) -> Records {
    records.into_iter().map(|r| (r.version, r)).collect()
}

/// Refuses to go on when the database and the build disagree, or while
/// another runner's run is in progress. `lock` is the lock as read with the
/// records; claims a live lock wrote belong to a run in progress.
pub(crate) fn validate(registry: &Registry, records: &Records, lock: Option<&LockInfo>) -> Result<(), Error> {
    if let Some(r) = records
        .values()
        .find(|r| matches!(r.status, MigrationStatus::Planned | MigrationStatus::Running) && r.is_live(lock))
    {
        let lock = lock.expect("a live claim has a lock");
        return Err(Error::Locked {
            holder: LockedBy {
                holder: Some(lock.holder.clone()),
                run_at: Some((r.version, r.status)),
            },
            expires_at: lock.expires_at,
        });
    }
    let unknown: Vec<(Version, String)> = records
        .values()
        .filter(|r| {
            r.status != MigrationStatus::RolledBack
                && !r.is_pending()
                && registry.get(r.version).is_none()
                && registry.squashed_into(r.version).is_none()
        })
        .map(|r| (r.version, r.name.clone()))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownVersions { versions: unknown });
    }
    for record in records.values() {
        let Some(migration) = registry.get(record.version) else {
            continue;
        };
        if matches!(record.status, MigrationStatus::Running | MigrationStatus::Failed)
            && !record.rolled_back_whole()
            && !record.is_resumable()
        {
            return Err(Error::Blocked {
                version: record.version,
                name: record.name.clone(),
                status: record.status,
                blocker: blocker(record, lock),
            });
        }
        if record.status == MigrationStatus::Completed {
            check_checksum(migration, record)?;
        }
    }
    Ok(())
}

/// Why a `running` or `failed` record blocks: its error, or whose run left it.
pub(crate) fn blocker(record: &Record, lock: Option<&LockInfo>) -> Blocker {
    if let Some(error) = &record.error {
        return Blocker::Failed {
            direction: record.direction,
            error: error.clone(),
        };
    }
    let holder = record.lock_holder.clone();
    let runner = match (record.fenced_by, lock) {
        (Some(_), _) => Runner::LostItsLock,
        (None, Some(l)) if Some(l.holder.id.to_string()) == holder && !l.expired => Runner::StillHoldsTheLock,
        (None, Some(l)) if Some(l.holder.id.to_string()) == holder => Runner::LockExpired,
        _ => Runner::Gone,
    };
    Blocker::LeftRunning {
        direction: record.direction,
        holder,
        since: record.started_at,
        runner,
    }
}

/// An empty checksum on either side (hand-written registries) is not compared.
pub(crate) fn check_checksum(migration: &Migration, record: &Record) -> Result<(), Error> {
    if !migration.checksum.is_empty() && !record.checksum.is_empty() && migration.checksum != record.checksum {
        return Err(Error::ChecksumMismatch {
            version: migration.version,
            name: migration.name.to_string(),
            recorded: record.checksum.clone(),
            current: migration.checksum.to_string(),
        });
    }
    Ok(())
}

/// Pending migrations in version order, up to and including `to` (a known
/// version: the migrator checks targets before it takes the lock).
pub(crate) fn pending<'r>(registry: &'r Registry, records: &Records, to: Option<Version>) -> Vec<&'r Migration> {
    registry
        .migrations()
        .iter()
        .filter(|m| to.is_none_or(|to| m.version <= to))
        .filter(|m| records.get(&m.version).is_none_or(Record::is_pending))
        .collect()
}

/// One migration of a run's plan, with what was decided about it once,
/// when it was planned: its batch, and for `up` whether it is recorded as
/// applied without running ([`adoption`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned<'a> {
    pub(crate) migration: &'a Migration,
    pub(crate) batch: i64,
    pub(crate) adopt: Option<Adopt>,
}

/// Whether `up` records squash `m` as applied without running it: when it
/// has no record yet and every version it replaces is applied. It runs when
/// none is; anything between is refused.
pub(crate) fn adoption(m: &Migration, records: &Records) -> Result<Option<Adopt>, Error> {
    if m.replaces.is_empty() || records.get(&m.version).is_some_and(|r| !r.never_ran()) {
        return Ok(None);
    }
    let (applied, missing): (Vec<Version>, Vec<Version>) = m
        .replaces()
        .partition(|v| records.get(v).is_some_and(Record::is_applied));
    match (applied.is_empty(), missing.is_empty()) {
        (false, true) => Ok(Some(Adopt::Squash)),
        (true, _) => Ok(None),
        (false, false) => Err(Error::PartialSquash {
            version: m.version,
            name: m.name.to_string(),
            applied,
            missing,
        }),
    }
}

/// Refuses pending migrations older than the newest applied one, unless
/// allowed (see [`out_of_order`]).
pub(crate) fn check_order(
    plan: &[&Migration],
    registry: &Registry,
    records: &Records,
    allow: bool,
) -> Result<(), Error> {
    if allow {
        return Ok(());
    }
    let newest = NewestApplied::of(registry, records);
    let late: Vec<&&Migration> = plan.iter().filter(|m| out_of_order(m, records, newest)).collect();
    let Some(first) = late.first() else {
        return Ok(());
    };
    Err(Error::OutOfOrder {
        newest_applied: newest.of_phase(first.phase).expect("out of order"),
        pending: late.iter().map(|m| (m.version, m.name.to_string())).collect(),
    })
}

/// The newest applied version of each phase, by the registry's phases (a
/// record this build does not know counts for both): a post-deploy
/// migration waiting for its phase is not out of order behind newer
/// pre-deploy ones.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NewestApplied {
    pre: Option<Version>,
    post: Option<Version>,
}

impl NewestApplied {
    pub(crate) fn of(registry: &Registry, records: &Records) -> Self {
        let mut newest = NewestApplied::default();
        for r in records.values().filter(|r| r.is_applied()) {
            let phase = registry.get(r.version).map(|m| m.phase);
            if phase != Some(Phase::PostDeploy) {
                newest.pre = newest.pre.max(Some(r.version));
            }
            if phase != Some(Phase::PreDeploy) {
                newest.post = newest.post.max(Some(r.version));
            }
        }
        newest
    }

    pub(crate) fn of_phase(self, phase: Phase) -> Option<Version> {
        match phase {
            Phase::PreDeploy => self.pre,
            Phase::PostDeploy => self.post,
        }
    }
}

/// A migration this database never saw (no record, or a claim that never
/// ran), older than `newest_applied`: typically merged from another branch
/// after the newer ones ran. One with a history here (rolled back,
/// resolved as pending, stopped at a checkpoint) runs again where it is, as
/// its operator asked. A squash recorded without running is not out of order.
pub(crate) fn out_of_order(m: &Migration, records: &Records, newest: NewestApplied) -> bool {
    newest.of_phase(m.phase).is_some_and(|newest| m.version < newest)
        && records.get(&m.version).is_none_or(Record::never_ran)
        && matches!(adoption(m, records), Ok(None))
}

/// The pending migrations `up` applies in `phase` (all, without one): in
/// the post-deploy phase, only those whose older pre-deploy migrations are
/// all applied.
pub(crate) fn in_phase(pending: Vec<&Migration>, phase: Option<Phase>) -> Vec<&Migration> {
    match phase {
        None => pending,
        Some(Phase::PreDeploy) => pending.into_iter().filter(|m| m.phase == Phase::PreDeploy).collect(),
        Some(Phase::PostDeploy) => {
            let first_pre = pending.iter().find(|m| m.phase == Phase::PreDeploy).map(|m| m.version);
            pending
                .into_iter()
                .filter(|m| m.phase == Phase::PostDeploy && first_pre.is_none_or(|pre| m.version < pre))
                .collect()
        }
    }
}

/// The batch number the next `up` records.
pub(crate) fn next_batch(records: &Records) -> i64 {
    records.values().map(|r| r.batch).max().unwrap_or(0) + 1
}

/// Applied migrations to roll back, the most recently applied first (by
/// batch, then time applied, then version): a migration applied out of
/// order is undone where it was applied, not where its version sorts.
/// Versions a squash replaced are left alone: the squash stands for them.
/// Refuses the whole plan if any of them is irreversible. A `To` target is a
/// known version.
pub(crate) fn rollback<'r>(
    registry: &'r Registry,
    records: &Records,
    target: DownTarget,
) -> Result<Vec<&'r Migration>, Error> {
    let mut applied: Vec<&Record> = records
        .values()
        .filter(|r| r.is_applied() && registry.squashed_into(r.version).is_none())
        .collect();
    applied.sort_by_key(|r| std::cmp::Reverse((r.batch, r.applied_at, r.version)));
    let chosen: Vec<&Record> = match target {
        DownTarget::Steps(n) => applied.into_iter().take(n).collect(),
        DownTarget::LastBatch => {
            let last = applied.iter().map(|r| r.batch).max();
            applied.into_iter().filter(|r| Some(r.batch) == last).collect()
        }
        DownTarget::To(to) => applied.into_iter().filter(|r| r.version > to).collect(),
    };
    let plan: Vec<&Migration> = chosen
        .iter()
        .map(|r| registry.get(r.version).expect("validated: every record is known"))
        .collect();
    if let Some(m) = plan.iter().find(|m| !m.is_reversible()) {
        return Err(Error::Irreversible {
            version: m.version,
            name: m.name.to_string(),
        });
    }
    Ok(plan)
}

/// Why a claim records its migration as applied without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adopt {
    /// `baseline`: the database already has its effect.
    Baseline,
    /// A squash whose replaced migrations are all applied.
    Squash,
}

mod admin;
mod compose;

pub(crate) use admin::{baselinable, forgettable, resolvable, up_to};
pub(crate) use compose::{up, Intent};

#[cfg(test)]
mod tests;
