//! The migrator: plans under the lock, applies and rolls back.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use mongodb::{Client, Database};

use crate::lock::{Lock, LockGuard, LockInfo};
use crate::migration::{MigrationContext, MigrationFn};
use crate::plan::{self, DownTarget, Records};
use crate::server::{connect, durable, supports_transactions};
use crate::tracking::{Claim, Direction, HistoryQuery, MigrationStatus, Outcome, Record, Tracking};
use crate::{
    Config, DownOptions, Error, Migration, MigrationError, Progress, Registry, Resolution, RunReport, StatusReport,
    Step, StopHandle, UpOptions, Version,
};

type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Applies and rolls back a [`Registry`] against one database.
#[derive(Clone)]
pub struct Migrator {
    client: Client,
    db: Database,
    registry: Registry,
    tracking: Tracking,
    lock: Lock,
    progress: Option<ProgressFn>,
    stop: StopHandle,
    lock_wait: Duration,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("database", &self.db.name())
            .field("migrations", &self.registry.len())
            .finish_non_exhaustive()
    }
}

impl Migrator {
    /// A migrator over an existing client.
    pub fn new(client: Client, database: &str, registry: Registry, config: Config) -> Self {
        let db = client.database(database);
        Migrator {
            tracking: Tracking::new(durable(&db, &config.tracking_collection)),
            lock: Lock::new(durable(&db, &config.lock_collection), config.lock_name, config.lock_ttl),
            client,
            db,
            registry,
            progress: None,
            stop: StopHandle::new(),
            lock_wait: Duration::ZERO,
        }
    }

    /// Parses `uri`, connects and pings the server. The database is `database`
    /// or else the URI's path.
    pub async fn connect(uri: &str, database: Option<&str>, registry: Registry, config: Config) -> Result<Self, Error> {
        let (client, name) = connect(uri, database).await?;
        Ok(Migrator::new(client, &name, registry, config))
    }

    /// Calls `f` as each migration starts and finishes.
    pub fn with_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Lets `stop` end a run between two migrations (see [`StopHandle`]).
    pub fn with_stop(mut self, stop: StopHandle) -> Self {
        self.stop = stop;
        self
    }

    /// While another runner holds the lock, `up` and `down` retry for up to
    /// `wait` instead of failing at once with [`Error::Locked`].
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations in version order as one batch.
    pub async fn up(&self, options: UpOptions) -> Result<RunReport, Error> {
        // Bad input is refused before anything, even the lock, is written.
        self.known_target(options.to)?;
        self.run(Direction::Up, options.dry_run, |records| {
            self.plan_up(records, options.to)
        })
        .await
    }

    /// Rolls back applied migrations, newest first.
    pub async fn down(&self, options: DownOptions) -> Result<RunReport, Error> {
        if let DownTarget::To(to) = options.target {
            self.known_target(Some(to))?;
        }
        self.run(Direction::Down, options.dry_run, |records| {
            self.plan_down(records, options.target)
        })
        .await
    }

    /// A dry-run plans from the records and changes nothing; a real run plans
    /// under the lock, runs the plan, and releases the lock whatever happens.
    async fn run<'a>(
        &'a self,
        direction: Direction,
        dry_run: bool,
        plan: impl FnOnce(&Records) -> Result<Vec<(&'a Migration, i64)>, Error>,
    ) -> Result<RunReport, Error> {
        if dry_run {
            let records = self.records().await?;
            return Ok(RunReport {
                direction,
                dry_run: true,
                steps: plan(&records)?
                    .into_iter()
                    .map(|(m, batch)| step(m, batch, None))
                    .collect(),
                skipped: Vec::new(),
            });
        }
        let guard = self.acquire(direction.as_str()).await?;
        let result = AssertUnwindSafe(self.run_locked(&guard, direction, plan))
            .catch_unwind()
            .await;
        Self::release(guard, result).await
    }

    /// Every known and recorded migration with its state, the counts, and the lock.
    pub async fn status(&self) -> Result<StatusReport, Error> {
        let records = self.records().await?;
        let lock = self.lock.status().await?;
        Ok(StatusReport::new(&self.registry, &records, lock))
    }

    /// Tracking records, most recently changed first.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<Record>, Error> {
        self.tracking.history(query).await
    }

    /// The lock document, if any (check `expired`).
    pub async fn lock_status(&self) -> Result<Option<LockInfo>, Error> {
        self.lock.status().await
    }

    /// Frees the lock whoever holds it. The holder, if still alive, can write
    /// nothing more. Returns the lock as it was.
    pub async fn force_unlock(&self, confirmed: bool) -> Result<Option<LockInfo>, Error> {
        if !confirmed {
            return Err(Error::UnlockNotConfirmed);
        }
        let before = self.lock.force_release().await?;
        if let Some(lock) = &before {
            self.tracking.fence_running(None, lock.generation + 1).await?;
        }
        Ok(before)
    }

    /// Settles a migration left `running` or `failed`.
    pub async fn resolve(&self, version: Version, resolution: Resolution) -> Result<Record, Error> {
        let guard = self.acquire("resolve").await?;
        let result = AssertUnwindSafe(self.resolve_locked(&guard, version, resolution))
            .catch_unwind()
            .await;
        Self::release(guard, result).await
    }

    async fn resolve_locked(
        &self,
        guard: &LockGuard,
        version: Version,
        resolution: Resolution,
    ) -> Result<Record, Error> {
        let record = self.tracking.get(version).await?;
        let record = record.as_ref().ok_or(Error::NothingToResolve { version })?;
        if !matches!(record.status, MigrationStatus::Running | MigrationStatus::Failed) {
            return Err(Error::NotResolvable {
                version,
                status: record.status,
            });
        }
        let to = match resolution {
            Resolution::Applied => MigrationStatus::Completed,
            Resolution::Pending => MigrationStatus::RolledBack,
        };
        guard.check().await?;
        self.tracking.resolve(record, to, guard.fence()).await
    }

    /// Plans from the records read under the lock, then runs the plan.
    async fn run_locked<'a>(
        &'a self,
        guard: &LockGuard,
        direction: Direction,
        plan: impl FnOnce(&Records) -> Result<Vec<(&'a Migration, i64)>, Error>,
    ) -> Result<RunReport, Error> {
        let records = self.records().await?;
        let plan = plan(&records)?;
        self.require_transactions(&plan).await?;
        let mut steps = Vec::with_capacity(plan.len());
        let mut skipped = Vec::new();
        for (m, batch) in plan {
            if self.stop.is_stopped() {
                skipped.push(step(m, batch, None));
                continue;
            }
            let ms = self
                .execute(guard, m, records.get(&m.version), batch, direction)
                .await?;
            steps.push(step(m, batch, Some(ms)));
        }
        Ok(RunReport {
            direction,
            dry_run: false,
            steps,
            skipped,
        })
    }

    fn known_target(&self, to: Option<Version>) -> Result<(), Error> {
        match to {
            Some(version) if self.registry.get(version).is_none() => Err(Error::UnknownTarget { version }),
            _ => Ok(()),
        }
    }

    async fn records(&self) -> Result<Records, Error> {
        Ok(plan::index(self.tracking.load().await?))
    }

    fn plan_up<'a>(&'a self, records: &Records, to: Option<Version>) -> Result<Vec<(&'a Migration, i64)>, Error> {
        plan::validate(&self.registry, records)?;
        let batch = plan::next_batch(records);
        Ok(plan::pending(&self.registry, records, to)
            .into_iter()
            .map(|m| (m, batch))
            .collect())
    }

    fn plan_down<'a>(&'a self, records: &Records, target: DownTarget) -> Result<Vec<(&'a Migration, i64)>, Error> {
        plan::validate(&self.registry, records)?;
        Ok(plan::rollback(&self.registry, records, target)?
            .into_iter()
            .map(|m| (m, records[&m.version].batch))
            .collect())
    }

    /// Takes the lock, creating the collections' indexes first. While another
    /// runner holds it, retries with growing pauses until `lock_wait` is used
    /// up or a stop is requested.
    async fn acquire(&self, reason: &str) -> Result<LockGuard, Error> {
        self.tracking.ensure_indexes().await?;
        self.lock.ensure_indexes().await?;
        let deadline = Instant::now() + self.lock_wait;
        let mut pause = Duration::from_millis(200);
        let mut told = false;
        let guard = loop {
            match self.lock.acquire(reason).await {
                Err(Error::Locked { holder, expires_at })
                    if Instant::now() + pause < deadline && !self.stop.is_stopped() =>
                {
                    if !std::mem::replace(&mut told, true) {
                        self.report(Progress::Waiting { holder, expires_at });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => break other?,
            }
        };
        // Whoever held the lock before is fenced off from its claimed records.
        let fence = *guard.fence();
        if let Err(e) = self.tracking.fence_running(Some(&fence), fence.generation).await {
            let _ = guard.release().await;
            return Err(e);
        }
        Ok(guard)
    }

    /// Releases the lock after the work done under it, whatever its outcome;
    /// a panic goes on once the lock is free.
    async fn release<T>(guard: LockGuard, result: std::thread::Result<Result<T, Error>>) -> Result<T, Error> {
        let released = guard.release().await;
        match result {
            Ok(result) => {
                let value = result?;
                released?;
                Ok(value)
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    async fn require_transactions(&self, plan: &[(&Migration, i64)]) -> Result<(), Error> {
        let Some((m, _)) = plan.iter().find(|(m, _)| m.transactional) else {
            return Ok(());
        };
        if supports_transactions(&self.client).await? {
            return Ok(());
        }
        Err(Error::TransactionsUnsupported {
            version: m.version,
            name: m.name.clone(),
        })
    }

    /// Runs one step of `m` under the fence, and records it.
    async fn execute(
        &self,
        guard: &LockGuard,
        m: &Migration,
        previous: Option<&Record>,
        batch: i64,
        direction: Direction,
    ) -> Result<i64, Error> {
        let f = match direction {
            Direction::Up => m.up,
            Direction::Down => m.down.expect("planned rollbacks are reversible"),
        };
        self.report(Progress::Started {
            version: m.version,
            name: m.name.clone(),
            direction,
        });
        let claim = Claim {
            migration: m,
            previous,
            batch,
            direction,
            status: MigrationStatus::Running,
            fence: guard.fence(),
            elapsed_ms: None,
        };
        guard.check().await?;
        let ms = if m.transactional {
            self.run_in_transaction(guard, f, claim).await?
        } else {
            self.run_fenced(guard, f, claim).await?
        };
        self.report(Progress::Finished {
            version: m.version,
            name: m.name.clone(),
            direction,
            duration_ms: ms,
        });
        Ok(ms)
    }

    /// The migration, its tracking record and the fence check commit together, or not at all.
    async fn run_in_transaction(&self, guard: &LockGuard, f: MigrationFn, claim: Claim<'_>) -> Result<i64, Error> {
        let m = claim.migration;
        let start = Instant::now();
        let mut session = self.client.start_session().await?;
        session.start_transaction().await?;
        let mut ctx = MigrationContext::new(self.db.clone(), Some(session), m);
        let result = run(f, &mut ctx).await;
        let mut session = ctx.into_session().expect("transactional context has a session");
        let ms = elapsed_ms(start);
        let recorded = async {
            result.map_err(|e| failed(m, e))?;
            let record = Claim {
                status: claim.direction.done(),
                elapsed_ms: Some(ms),
                ..claim
            };
            self.tracking.claim(record, Some(&mut session)).await?;
            // The fence is checked last, so a lost lock aborts everything.
            guard.check().await
        }
        .await;
        match recorded {
            Ok(()) => session.commit_transaction().await?,
            Err(e) => {
                // Aborting is best effort: an open transaction dies with its session.
                let _ = session.abort_transaction().await;
                return Err(e);
            }
        }
        Ok(ms)
    }

    /// Claims the version as `running`, runs the migration, records the end.
    /// No check before the end: `finish` matches nothing once a later holder
    /// fenced the claim.
    async fn run_fenced(&self, guard: &LockGuard, f: MigrationFn, claim: Claim<'_>) -> Result<i64, Error> {
        let (m, direction) = (claim.migration, claim.direction);
        let start = Instant::now();
        self.tracking.claim(claim, None).await?;
        let mut ctx = MigrationContext::new(self.db.clone(), None, m);
        let result = run(f, &mut ctx).await;
        let ms = elapsed_ms(start);
        match result {
            Ok(()) => {
                let outcome = Outcome::Done(direction);
                self.tracking.finish(m.version, guard.fence(), outcome, ms).await?;
                Ok(ms)
            }
            Err(e) => {
                let message = e.to_string();
                self.tracking
                    .finish(m.version, guard.fence(), Outcome::Failed(&message), ms)
                    .await?;
                Err(failed(m, e))
            }
        }
    }

    fn report(&self, progress: Progress) {
        if let Some(f) = &self.progress {
            f(&progress);
        }
    }
}

/// A failed step: its error, or the message of its panic.
struct StepError {
    message: String,
    source: Option<MigrationError>,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

async fn run(f: MigrationFn, ctx: &mut MigrationContext) -> Result<(), StepError> {
    match AssertUnwindSafe(f(ctx)).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StepError {
            message: e.to_string(),
            source: Some(e),
        }),
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(StepError {
                message: format!("panicked: {text}"),
                source: None,
            })
        }
    }
}

fn failed(m: &Migration, e: StepError) -> Error {
    Error::MigrationFailed {
        version: m.version,
        name: m.name.clone(),
        message: e.message,
        source: e.source,
    }
}

fn elapsed_ms(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn step(m: &Migration, batch: i64, duration_ms: Option<i64>) -> Step {
    Step {
        version: m.version,
        name: m.name.clone(),
        description: m.description.clone(),
        batch,
        transactional: m.transactional,
        reversible: m.is_reversible(),
        duration_ms,
    }
}
