//! The admin commands under the lock: `force-unlock`, `forget`, `baseline`,
//! `resolve` (and `--accept-checksum`), each `with_lock` plus its writes.

use crate::lock::{LockGuard, LockInfo};
use crate::plan;
use crate::plan::Adopt;
use crate::record::Record;
use crate::tracking::{Claim, Fenced};
use crate::{Direction, Error, MigrationStatus, Resolution, RunReport, Version};

use super::run::refused_proved;
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
        plan::forgettable(&self.registry, &self.records().await?, versions)?;
        self.with_lock("forget", versions, async |guard| {
            self.forget_locked(guard, versions).await
        })
        .await
    }

    pub(super) async fn forget_locked(&self, guard: &LockGuard, versions: &[Version]) -> Result<Vec<Record>, Error> {
        let records = self.opening(guard).await?;
        let chosen = refused_proved(guard, plan::forgettable(&self.registry, &records, versions)).await?;
        guard.check().await?;
        let now = self.server.clock().await?.now();
        self.tracking.forget(&chosen, guard.fence(), now).await?;
        Ok(chosen.into_iter().cloned().collect())
    }

    /// Adopts a database that already has the schema: records every
    /// migration up to and including `to` as applied, without running it
    /// (`baseline: true`), in one batch under the lock. Refused when any of
    /// them already has a record.
    pub async fn baseline(&self, to: Version) -> Result<RunReport, Error> {
        self.known_target(Some(to))?;
        // Refused before the lock is taken: a refusal writes nothing.
        plan::baselinable(&self.registry, &self.records().await?, to)?;
        let versions: Vec<Version> = plan::up_to(&self.registry, to).map(|m| m.version).collect();
        self.with_lock("baseline", &versions, async |guard| {
            self.baseline_locked(guard, to).await
        })
        .await
    }

    pub(super) async fn baseline_locked(&self, guard: &LockGuard, to: Version) -> Result<RunReport, Error> {
        let records = self.opening(guard).await?;
        refused_proved(guard, plan::baselinable(&self.registry, &records, to)).await?;
        let batch = plan::next_batch(&records);
        let claims: Vec<Claim> = plan::up_to(&self.registry, to)
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
            steps: plan::up_to(&self.registry, to).map(|m| adopted(m, batch)).collect(),
            skipped: Vec::new(),
            stopped_walk: None,
            elapsed_ms: None,
        })
    }

    /// Settles a migration left `running` or `failed`, or accepts the edit
    /// of a completed one ([`Resolution::AcceptChecksum`]).
    pub async fn resolve(&self, version: Version, resolution: Resolution) -> Result<Record, Error> {
        // Refused before the lock is taken: a refusal writes nothing.
        plan::resolvable(
            &self.registry,
            self.tracking.get(version).await?.as_ref(),
            version,
            resolution,
        )?;
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
        let records = self.opening(guard).await?;
        let record = refused_proved(
            guard,
            plan::resolvable(&self.registry, records.get(&version), version, resolution),
        )
        .await?;
        let to = match resolution {
            Resolution::AcceptChecksum => return self.accept_checksum(guard, record).await,
            Resolution::Applied => MigrationStatus::Completed,
            Resolution::Pending => MigrationStatus::RolledBack,
        };
        guard.check().await?;
        let now = self.server.clock().await?.now();
        self.tracking.resolve(record, to, guard.fence(), now).await
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
