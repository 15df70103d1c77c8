//! The run protocol of `up` and `down`: plan before the lock, take it, fence,
//! plan again and claim under it, prove it, then hand the plan to `step.rs`.

use crate::lock::LockGuard;
use crate::plan::{Intent, Planned, Records};
use crate::tracking::{Claim, Fenced};
use crate::{Error, Migration, RunReport, Step, Version};
use std::time::Instant;
use tracing::Instrument;

use super::locking::{Before, Gate};
use super::step::{adopted, step};
use super::{elapsed_ms, Ensure, Migrator};

/// A plan: migrations in the order they run, each with its batch.
pub(super) type Plan<'a> = Vec<Planned<'a>>;

impl Migrator {
    /// [`Migrator::run_unspanned`] in a `mongo_migrations.run` span (direction,
    /// database, dry-run, and the batch once planned).
    pub(super) async fn run(
        &self,
        intent: Intent,
        (dry_run, continue_on_error): (bool, bool),
    ) -> Result<RunReport, Error> {
        let direction = intent.direction();
        let span = tracing::info_span!(
            "mongo_migrations.run",
            direction = direction.as_str(),
            database = self.db.name(),
            dry_run,
            batch = tracing::field::Empty,
        );
        let started = Instant::now();
        let mut result = self
            .run_unspanned(intent, (dry_run, continue_on_error))
            .instrument(span.clone())
            .await;
        if let Ok(report) = &mut result {
            report.elapsed_ms = (!dry_run).then(|| elapsed_ms(started));
        }
        match &result {
            Ok(report) => {
                span.in_scope(|| tracing::info!(steps = report.steps.len(), skipped = report.skipped.len(), "run done"))
            }
            Err(e) => span.in_scope(|| tracing::error!(error = %e, kind = ?e.kind(), "run failed")),
        }
        result
    }

    /// Plans from the records before taking the lock, so that a refused run
    /// (or one with nothing to do, or a dry-run) writes nothing; then plans
    /// again under the lock, runs the plan, and releases the lock whatever
    /// happens.
    pub(super) async fn run_unspanned(
        &self,
        intent: Intent,
        (dry_run, continue_on_error): (bool, bool),
    ) -> Result<RunReport, Error> {
        let direction = intent.direction();
        let report = |steps: Vec<Step>, skipped: Vec<Step>| RunReport {
            direction,
            dry_run,
            steps,
            skipped,
            stopped_walk: None,
            elapsed_ms: None,
        };
        let gate = if dry_run {
            Gate::ReadThrough
        } else {
            Gate::RefuseHeldAsRead
        };
        let before = || async {
            let (records, lock) = self.read_state().await?;
            // Held by a live runner, as just read: refused first, as the
            // gate would have.
            if let Some(lock) = lock.as_ref().filter(|l| !l.expired && !dry_run) {
                return Err(lock.busy());
            }
            let planned = intent.plan(&self.registry, &records, lock.as_ref(), &self.config)?;
            if let Some(first) = planned.first() {
                tracing::Span::current().record("batch", first.batch);
            }
            if dry_run || planned.is_empty() {
                let steps = planned
                    .into_iter()
                    .map(|p| Step {
                        adopted: p.adopt.is_some(),
                        ..step(p.migration, p.batch, None)
                    })
                    .collect();
                return Ok(Before::Answer(report(steps, Vec::new())));
            }
            // Before anything is written: what the plan needs beyond reads
            // and writes, the user may do.
            self.check_privileges(&planned).await?;
            Ok(Before::Lock(planned.iter().map(|p| p.migration.version).collect()))
        };
        self.with_lock_after(direction.as_str(), gate, before, async |guard| {
            self.run_locked(guard, intent, continue_on_error).await
        })
        .await
    }

    /// Plans from the records read under the lock, claims the plan, proves
    /// the lock, then runs the plan.
    pub(super) async fn run_locked(
        &self,
        guard: &LockGuard,
        intent: Intent,
        continue_on_error: bool,
    ) -> Result<RunReport, Error> {
        let direction = intent.direction();
        // Under the lock the lock is this runner's: none is read.
        let plan = |records: &Records| intent.plan(&self.registry, records, None, &self.config);
        let mut attempt = 0;
        let plan = loop {
            if self.stop.is_stopped() {
                // Stopped before anything was claimed: nothing changes.
                let records = self.records().await?;
                let skipped = plan(&records)?
                    .into_iter()
                    .map(|p| step(p.migration, p.batch, None))
                    .collect();
                return Ok(RunReport {
                    direction,
                    dry_run: false,
                    steps: Vec::new(),
                    skipped,
                    stopped_walk: None,
                    elapsed_ms: None,
                });
            }
            // The read before the lock, where the lock proves nobody held
            // it since and nothing is left to fence; else fence and read.
            let records = match (attempt, self.current_read(guard)) {
                (0, Some(records)) => {
                    guard.ensure_lease().await?;
                    guard.set_fenced();
                    records
                }
                _ => self.opening(guard).await?,
            };
            let plan = refused_proved(guard, plan(&records)).await?;
            self.require_transactions(&plan).await?;
            let mut claims = Vec::with_capacity(plan.len());
            for p in &plan {
                claims.push(Claim {
                    migration: p.migration,
                    previous: records.get(&p.migration.version),
                    batch: p.batch,
                    direction,
                    adopt: p.adopt,
                });
            }
            // Whoever takes the lock next fences what the lock document names.
            guard.extend(plan.iter().map(|p| p.migration.version)).await?;
            let now = self.server.clock().await?.now();
            guard.ensure_lease().await?;
            let changed = self.tracking.claim(&claims, guard.fence(), now).await?;
            let Some(&version) = changed.first() else {
                break plan;
            };
            // Since the fence, nobody but a newer holder can change a record
            // this runner read: most likely it lost the lock. Prove it, and
            // if it still holds, read and claim once more.
            guard
                .check()
                .await
                .map_err(|e| self.lost(e, &[], None, &entries(&plan)))?;
            attempt += 1;
            if attempt == 2 {
                return Err(self.conflict(version));
            }
        };
        // The proof: every claim above exists now, so whoever takes the lock
        // after this moment fences all of them.
        guard
            .check()
            .await
            .map_err(|e| self.lost(e, &[], None, &entries(&plan)))?;
        let (recorded, to_run): (Plan, Plan) = plan.into_iter().partition(|p| p.adopt.is_some());
        let mut report = self
            .execute(guard, direction, &entries(&to_run), continue_on_error)
            .await?;
        let recorded = recorded.into_iter().map(|p| self::adopted(p.migration, p.batch));
        report.steps = recorded.chain(report.steps).collect();
        Ok(report)
    }

    /// Refuses a plan whose migrations need actions (see
    /// [`Migration::needs`]) that the user may not run on the database.
    /// A server that does not answer `connectionStatus` is not refused.
    async fn check_privileges(&self, plan: &Plan<'_>) -> Result<(), Error> {
        let mut needed: std::collections::BTreeMap<&str, Vec<Version>> = Default::default();
        for p in plan {
            for action in p.migration.needs {
                needed.entry(action).or_default().push(p.migration.version);
            }
        }
        if needed.is_empty() {
            return Ok(());
        }
        let command = bson::doc! { "connectionStatus": 1, "showPrivileges": true };
        let reply = self
            .server
            .retry
            .idempotent(
                || "reading the user's privileges".into(),
                || async {
                    match self.db.run_command(command.clone()).await {
                        Ok(reply) => Ok(Some(reply)),
                        Err(e) if crate::retry::is_transient(&e) => Err(e.into()),
                        Err(_) => Ok(None),
                    }
                },
            )
            .await?;
        let Some(reply) = reply else {
            return Ok(());
        };
        match crate::privileges::missing(&reply, self.db.name(), &needed) {
            Some((user, missing)) => Err(Error::MissingPrivileges {
                user,
                database: self.db.name().to_string(),
                missing,
            }),
            None => Ok(()),
        }
    }

    /// The opening of every command under the lock, once: a runner that
    /// was paused since it took the lock writes nothing before proving its
    /// lease again (not even the fence, which could otherwise hit the
    /// claims of whoever holds the lock now); then every other claim is
    /// fenced, and the records are read. What is decided from them and
    /// refused goes through [`refused_proved`].
    pub(super) async fn opening(&self, guard: &LockGuard) -> Result<Records, Error> {
        // Idempotent, and no tracking write: before the lease is proved.
        self.ensure_indexes(Ensure::Always).await?;
        guard.ensure_lease().await?;
        self.fence_others(guard).await?;
        self.records().await
    }

    /// Fences every claim but this holder's, and every plan this holder
    /// inherited, before the records are read.
    pub(super) async fn fence_others(&self, guard: &LockGuard) -> Result<(), Error> {
        let now = self.server.clock().await?.now();
        let fence = guard.fence();
        let unfenced = self.named(guard.inherited());
        self.tracking
            .fence(Fenced::AllBut(fence.holder_id), fence.generation, &unfenced, now)
            .await?;
        guard.set_fenced();
        Ok(())
    }

    /// Turns a lost lock into the error that says what ran and what did not,
    /// and who holds the lock now. Other errors pass through.
    pub(super) fn lost(
        &self,
        e: Error,
        steps: &[Step],
        interrupted: Option<Version>,
        not_run: &[(&Migration, i64)],
    ) -> Error {
        if !matches!(e, Error::LockLost { .. }) {
            return e;
        }
        Error::LockLost {
            taken_by: None,
            completed: steps.iter().map(|s| s.version).collect(),
            interrupted,
            not_run: not_run
                .iter()
                .map(|(m, _)| m.version)
                .filter(|v| Some(*v) != interrupted)
                .collect(),
        }
    }

    pub(super) async fn require_transactions(&self, plan: &[Planned<'_>]) -> Result<(), Error> {
        let Some(m) = plan.iter().map(|p| p.migration).find(|m| m.transactional) else {
            return Ok(());
        };
        if self.server.info().await?.transactions {
            return Ok(());
        }
        Err(Error::TransactionsUnsupported {
            version: m.version,
            name: m.name.to_string(),
        })
    }
}

/// `decided` from the records read under the lock; a refusal is proved
/// first: what refuses the command may be a newer holder's claim, and a
/// runner that lost its lock says so, not what it read.
pub(super) async fn refused_proved<T>(guard: &LockGuard, decided: Result<T, Error>) -> Result<T, Error> {
    if decided.is_err() {
        guard.check().await?;
    }
    decided
}

/// A plan's migrations and batches, as the steps run them.
fn entries<'a>(plan: &[Planned<'a>]) -> Vec<(&'a Migration, i64)> {
    plan.iter().map(|p| (p.migration, p.batch)).collect()
}
