//! The admin commands under the lock: `force-unlock`, `forget`, `baseline`,
//! `resolve` (and `--accept-checksum`), each `with_lock` plus its writes.

use crate::lock::{LockGuard, LockInfo};
use crate::plan::Adopt;
use crate::plan::{self, Records};
use crate::record::Record;
use crate::tracking::{Claim, Fenced};
use crate::{Direction, Error, Migration, MigrationStatus, Resolution, RunReport, Version};

use super::step::adopted;
use super::Migrator;

impl Migrator {
    /// Frees the lock whoever holds it, then fences the claims of the holder
    /// it removed and every plan not fenced yet: that runner, if still
    /// alive, can neither prove the lock nor record or start anything more.
    /// Returns the lock as it was.
    pub async fn force_unlock(&self, confirmed: bool) -> Result<Option<LockInfo>, Error> {
        if !confirmed {
            return Err(Error::UnlockNotConfirmed);
        }
        let Some(released) = self.lock.force_release().await? else {
            return Ok(None);
        };
        let now = self.server.clock().await?.now();
        let whose = match &released.lock {
            Some(lock) => Fenced::Of(lock.holder.id),
            None => Fenced::Of(uuid::Uuid::nil()),
        };
        self.tracking
            .fence(whose, released.generation, &self.named(&released.unfenced), now)
            .await?;
        self.lock.fenced(released.generation).await?;
        Ok(released.lock)
    }

    /// Removes the tracking records of migrations this build no longer has
    /// (their files were deleted on purpose), keeping each one, with who
    /// removed it and when, in the audit collection (`<tracking>_audit`).
    /// Refused while another runner holds the lock, for versions this build
    /// has (they would run again), and for a version without a record.
    /// Returns the records removed.
    pub async fn forget(&self, versions: &[Version], confirmed: bool) -> Result<Vec<Record>, Error> {
        if !confirmed {
            return Err(Error::ForgetNotConfirmed);
        }
        // Refused before the lock is taken: a refusal writes nothing.
        self.forgettable(&self.records().await?, versions)?;
        self.with_lock("forget", versions, async |guard| {
            self.forget_locked(guard, versions).await
        })
        .await
    }

    pub(super) async fn forget_locked(&self, guard: &LockGuard, versions: &[Version]) -> Result<Vec<Record>, Error> {
        guard.ensure_lease().await?;
        self.fence_others(guard).await?;
        let records = self.records().await?;
        let chosen = match self.forgettable(&records, versions) {
            Ok(chosen) => chosen,
            Err(e) => {
                guard.check().await?;
                return Err(e);
            }
        };
        guard.check().await?;
        let now = self.server.clock().await?.now();
        self.tracking.forget(&chosen, guard.fence(), now).await?;
        Ok(chosen.into_iter().cloned().collect())
    }

    /// The records of `versions`, or why one of them cannot be forgotten.
    pub(super) fn forgettable<'r>(&self, records: &'r Records, versions: &[Version]) -> Result<Vec<&'r Record>, Error> {
        let mut chosen = Vec::new();
        for &version in versions {
            let refuse = |reason: &str| Error::NotForgettable {
                version,
                reason: reason.to_string(),
            };
            let Some(record) = records.get(&version) else {
                return Err(refuse("it has no tracking record"));
            };
            if self.registry.get(version).is_some() {
                return Err(refuse(
                    "this build has it, so it would run again; use `down` or `resolve` instead",
                ));
            }
            chosen.push(record);
        }
        Ok(chosen)
    }

    /// Adopts a database that already has the schema: records every
    /// migration up to and including `to` as applied, without running it
    /// (`baseline: true`), in one batch under the lock. Refused when any of
    /// them already has a record.
    pub async fn baseline(&self, to: Version) -> Result<RunReport, Error> {
        self.known_target(Some(to))?;
        // Refused before the lock is taken: a refusal writes nothing.
        self.baselinable(&self.records().await?, to)?;
        let versions: Vec<Version> = self.up_to(to).map(|m| m.version).collect();
        self.with_lock("baseline", &versions, async |guard| {
            self.baseline_locked(guard, to).await
        })
        .await
    }

    /// The registry's migrations up to and including `to`.
    pub(super) fn up_to(&self, to: Version) -> impl Iterator<Item = &Migration> {
        self.registry.migrations().iter().take_while(move |m| m.version <= to)
    }

    /// Refuses a baseline up to `to` where any of those migrations has a record.
    pub(super) fn baselinable(&self, records: &Records, to: Version) -> Result<(), Error> {
        let recorded: Vec<(Version, String)> = self
            .up_to(to)
            .filter(|m| records.get(&m.version).is_some_and(|r| !r.never_ran()))
            .map(|m| (m.version, m.name.to_string()))
            .collect();
        if recorded.is_empty() {
            Ok(())
        } else {
            Err(Error::NotBaselinable { recorded })
        }
    }

    pub(super) async fn baseline_locked(&self, guard: &LockGuard, to: Version) -> Result<RunReport, Error> {
        guard.ensure_lease().await?;
        self.fence_others(guard).await?;
        let records = self.records().await?;
        if let Err(e) = self.baselinable(&records, to) {
            guard.check().await?;
            return Err(e);
        }
        let batch = plan::next_batch(&records);
        let claims: Vec<Claim> = self
            .up_to(to)
            .map(|migration| Claim {
                migration,
                previous: records.get(&migration.version),
                batch,
                direction: Direction::Up,
                adopt: Some(Adopt::Baseline),
            })
            .collect();
        let now = self.server.clock().await?.now();
        guard.ensure_lease().await?;
        let changed = self.tracking.claim(&claims, guard.fence(), now).await?;
        guard.check().await?;
        if let Some(&version) = changed.first() {
            return Err(self.conflict(version));
        }
        Ok(RunReport {
            direction: Direction::Up,
            dry_run: false,
            steps: self.up_to(to).map(|m| adopted(m, batch)).collect(),
            skipped: Vec::new(),
            stopped_walk: None,
            elapsed_ms: None,
        })
    }

    /// Settles a migration left `running` or `failed`, or accepts the edit
    /// of a completed one ([`Resolution::AcceptChecksum`]).
    pub async fn resolve(&self, version: Version, resolution: Resolution) -> Result<Record, Error> {
        // Refused before the lock is taken: a refusal writes nothing.
        self.resolvable(self.tracking.get(version).await?.as_ref(), version, resolution)?;
        self.with_lock("resolve", &[version], async |guard| {
            self.resolve_locked(guard, version, resolution).await
        })
        .await
    }

    pub(super) async fn resolve_locked(
        &self,
        guard: &LockGuard,
        version: Version,
        resolution: Resolution,
    ) -> Result<Record, Error> {
        guard.ensure_lease().await?;
        self.fence_others(guard).await?;
        let record = self.tracking.get(version).await?;
        let record = match self.resolvable(record.as_ref(), version, resolution) {
            Ok(record) => record,
            Err(e) => {
                guard.check().await?;
                return Err(e);
            }
        };
        let to = match resolution {
            Resolution::AcceptChecksum => return self.accept_checksum(guard, record).await,
            Resolution::Applied => MigrationStatus::Completed,
            Resolution::Pending => MigrationStatus::RolledBack,
        };
        guard.check().await?;
        let now = self.server.clock().await?.now();
        self.tracking.resolve(record, to, guard.fence(), now).await
    }

    /// The record that `resolution` settles, or why it cannot.
    pub(super) fn resolvable<'r>(
        &self,
        record: Option<&'r Record>,
        version: Version,
        resolution: Resolution,
    ) -> Result<&'r Record, Error> {
        let record = record.ok_or(Error::NothingToResolve { version })?;
        match resolution {
            Resolution::AcceptChecksum if record.status != MigrationStatus::Completed => {
                Err(Error::ChecksumNotAcceptable {
                    version,
                    status: record.status,
                })
            }
            Resolution::AcceptChecksum => match self.registry.get(version) {
                Some(_) => Ok(record),
                None => Err(Error::UnknownTarget { version }),
            },
            // `resolve --pending` of a migration that never completed, then
            // `--applied` after all: it was never rolled back, only settled.
            Resolution::Applied
                if record.status == MigrationStatus::RolledBack
                    && record.rolled_back_at.is_none()
                    && record.applied_at.is_none() =>
            {
                Ok(record)
            }
            _ if !matches!(record.status, MigrationStatus::Running | MigrationStatus::Failed) => {
                Err(Error::NotResolvable {
                    version,
                    status: record.status,
                })
            }
            _ => Ok(record),
        }
    }

    /// Records the current checksum of a completed migration, keeping the old one.
    pub(super) async fn accept_checksum(&self, guard: &LockGuard, record: &Record) -> Result<Record, Error> {
        let version = record.version;
        let migration = self.registry.get(version).ok_or(Error::UnknownTarget { version })?;
        if migration.checksum.is_empty() || migration.checksum == record.checksum {
            return Ok(record.clone());
        }
        guard.check().await?;
        let now = self.server.clock().await?.now();
        self.tracking
            .accept_checksum(record, &migration.checksum, guard.fence(), now)
            .await
    }
}
