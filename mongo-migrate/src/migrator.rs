//! The migrator: plans before and under the lock, applies and rolls back.
//!
//! A run, for N migrations (see README, "What is guaranteed"):
//! 1. reads the records and the lock, and refuses bad input before it writes anything;
//! 2. takes the lock (one conditional upsert naming its plan), fences every older claim and
//!    every plan it inherits, reads the records again;
//! 3. claims the whole plan as `planned` in one write, then proves it still holds the lock;
//! 4. per migration, one write that records the previous step and starts the next;
//! 5. records the last step and releases the lock.
//!
//! That is N + 10 commands, plus four once per migrator (indexes, server probe).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use mongodb::{Client, ClientSession, Database};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::batch::{Checkpoints, ProgressFn};
use crate::lock::{Lock, LockGuard, LockInfo};
use crate::migration::{MigrationContext, MigrationFn};
use crate::plan::Adopt;
use crate::plan::{self, DownTarget, Records};
use crate::record::{HistoryQuery, Record};
use crate::server::{connect_within, durable, Server};
use crate::tracking::{running_claim, Claim, Fenced, Finish, Outcome, Stepped, Tracking};
use crate::{
    Config, Direction, DownOptions, Error, Migration, MigrationError, MigrationStatus, OutOfOrder, Phase, Progress,
    Registry, Resolution, RunReport, StatusReport, Step, StopHandle, UpOptions, Version,
};

/// A plan: migrations in the order they run, each with its batch.
type Plan<'a> = Vec<(&'a Migration, i64)>;

/// How many times a transactional migration is tried when the server says
/// its transaction failed for a transient reason, as MongoDB's drivers do.
const TRANSACTION_ATTEMPTS: u32 = 3;

/// The pause before a transaction's second attempt (plus up to as much
/// again, jittered); it doubles for the third.
const TRANSACTION_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause between two attempts at a lock another runner holds:
/// a waiter notices a released lock within this time.
const MAX_LOCK_POLL: Duration = Duration::from_millis(250);

/// Applies and rolls back a [`Registry`] against one database.
#[derive(Clone)]
pub struct Migrator {
    client: Client,
    db: Database,
    registry: Registry,
    tracking: Tracking,
    lock: Lock,
    server: Server,
    indexes: Arc<OnceCell<()>>,
    progress: Option<ProgressFn>,
    stop: StopHandle,
    lock_wait: Duration,
    phase: Option<Phase>,
    config: Config,
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
        let kept = config.clone();
        let db = client.database(database);
        let server = Server::new(db.clone());
        Migrator {
            tracking: Tracking::new(db.clone(), durable(&db, &config.tracking_collection)),
            lock: Lock::new(
                durable(&db, &config.lock_collection),
                config.lock_name,
                config.lock_ttl,
                server.clone(),
            ),
            server,
            indexes: Arc::new(OnceCell::new()),
            client,
            db,
            registry,
            progress: None,
            stop: StopHandle::new(),
            lock_wait: Duration::ZERO,
            phase: Some(Phase::PreDeploy),
            config: kept,
        }
    }

    /// Parses `uri`, connects and pings the server. The database is `database`
    /// or else the URI's path.
    ///
    /// ```no_run
    /// use mongo_migrate::{Config, Migrator, Registry, UpOptions};
    ///
    /// # async fn run(registry: Registry) -> Result<(), mongo_migrate::Error> {
    /// // `registry` is usually `my_crate::migrations::registry()?`.
    /// let migrator = Migrator::connect("mongodb://127.0.0.1:27017/app", None, registry, Config::default()).await?;
    /// let report = migrator.up(UpOptions::default()).await?;
    /// println!("applied {} migrations", report.steps.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(uri: &str, database: Option<&str>, registry: Registry, config: Config) -> Result<Self, Error> {
        let (client, name) = connect_within(uri, database, config.connect_timeout).await?;
        Ok(Migrator::new(client, &name, registry, config))
    }

    /// Closes the connections of this migrator's client and ends the
    /// driver's background work, before the tokio runtime that drives them
    /// ends: a client merely dropped as its runtime shuts down can make the
    /// driver panic in its background task. Every clone of the client (and
    /// of the migrator) stops working. Waits at most 5 s for open cursors and
    /// sessions, then closes them at once.
    pub async fn shutdown(self) {
        crate::server::shutdown(self.client).await;
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

    /// The deploy phase [`Migrator::state`] checks: pre-deploy by default,
    /// as [`auto_run`](crate::auto_run) applies; `None` checks every phase.
    pub fn with_phase(mut self, phase: Option<Phase>) -> Self {
        self.phase = phase;
        self
    }

    /// Whether this binary's migrations of its phase (see
    /// [`Migrator::with_phase`]) are all applied: for readiness probes, which
    /// can then hold traffic until a long startup migration finishes.
    pub async fn state(&self) -> Result<crate::Readiness, Error> {
        Ok(crate::Readiness::new(&self.status().await?, self.phase))
    }

    /// This migrator's settings over another database.
    pub(crate) fn on_database(&self, database: &str) -> Migrator {
        // Each event says whose it is: tenants run at once.
        let progress = self.progress.clone().map(|f| {
            let database = database.to_string();
            Arc::new(move |p: &Progress| {
                f(&Progress::Tenant {
                    database: database.clone(),
                    progress: Box::new(p.clone()),
                })
            }) as ProgressFn
        });
        Migrator {
            progress,
            stop: self.stop.clone(),
            lock_wait: self.lock_wait,
            phase: self.phase,
            ..Migrator::new(
                self.client.clone(),
                database,
                self.registry.clone(),
                self.config.clone(),
            )
        }
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.is_stopped()
    }

    /// The migrations it runs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The database it migrates.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations in version order as one batch.
    pub async fn up(&self, options: UpOptions) -> Result<RunReport, Error> {
        // Bad input is refused before anything, even the lock, is written.
        self.known_target(options.to)?;
        let allow = options.allow_out_of_order || self.config.out_of_order == OutOfOrder::Allow;
        self.run(Direction::Up, options.dry_run, move |records, lock| {
            self.plan_up(records, lock, options.to, options.phase, allow)
        })
        .await
    }

    /// Rolls back applied migrations, newest first.
    pub async fn down(&self, options: DownOptions) -> Result<RunReport, Error> {
        if let DownTarget::To(to) = options.target {
            self.known_target(Some(to))?;
        }
        self.run(Direction::Down, options.dry_run, move |records, lock| {
            self.plan_down(records, lock, options.target)
        })
        .await
    }

    /// [`Migrator::run_unspanned`] in a `mongo_migrate.run` span (direction,
    /// database, dry-run, and the batch once planned).
    async fn run<'a>(
        &'a self,
        direction: Direction,
        dry_run: bool,
        plan: impl Fn(&Records, Option<&LockInfo>) -> Result<Plan<'a>, Error>,
    ) -> Result<RunReport, Error> {
        let span = tracing::info_span!(
            "mongo_migrate.run",
            direction = direction.as_str(),
            database = self.db.name(),
            dry_run,
            batch = tracing::field::Empty,
        );
        let started = Instant::now();
        let mut result = self
            .run_unspanned(direction, dry_run, plan)
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
    async fn run_unspanned<'a>(
        &'a self,
        direction: Direction,
        dry_run: bool,
        plan: impl Fn(&Records, Option<&LockInfo>) -> Result<Plan<'a>, Error>,
    ) -> Result<RunReport, Error> {
        let report = |steps: Vec<Step>, skipped: Vec<Step>| RunReport {
            direction,
            dry_run,
            steps,
            skipped,
            stopped_walk: None,
            elapsed_ms: None,
        };
        let guard = self
            .waiting(|| async {
                // While a live runner holds the lock, a waiter reads one
                // small document per poll, not the whole tracking collection.
                if !dry_run {
                    if let Some(lock) = self.lock.status().await?.filter(|l| !l.expired) {
                        return Err(lock.busy());
                    }
                }
                let (records, lock) = self.read_state().await?;
                let planned = plan(&records, lock.as_ref())?;
                if let Some((_, batch)) = planned.first() {
                    tracing::Span::current().record("batch", batch);
                }
                if dry_run || planned.is_empty() {
                    let steps = planned
                        .into_iter()
                        .map(|(m, batch)| Step {
                            adopted: direction == Direction::Up && matches!(plan::adoption(m, &records), Ok(Some(_))),
                            ..step(m, batch, None)
                        })
                        .collect();
                    return Ok(Err(steps));
                }
                // Held by a live runner, as just read: no need to ask again.
                if let Some(lock) = lock.filter(|l| !l.expired) {
                    return Err(lock.busy());
                }
                self.ensure_indexes().await?;
                let versions: Vec<Version> = planned.iter().map(|(m, _)| m.version).collect();
                Ok(Ok(self.lock.acquire(direction.as_str(), &versions).await?))
            })
            .await?;
        let guard = match guard {
            Ok(guard) => guard,
            Err(steps) => return Ok(report(steps, Vec::new())),
        };
        Self::under(guard, async |guard| {
            self.run_locked(guard, direction, |r| plan(r, None)).await
        })
        .await
    }

    /// The skeleton of every command under the lock: while another runner
    /// holds it, waits (up to `lock_wait`) or refuses before writing
    /// anything, not even the indexes; then takes it, naming `versions`,
    /// runs `locked` and releases it (see [`Migrator::under`]).
    async fn with_lock<T>(
        &self,
        reason: &str,
        versions: &[Version],
        locked: impl AsyncFnOnce(&LockGuard) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let guard = self
            .waiting(|| async {
                if let Some(lock) = self.lock.status().await?.filter(|l| !l.expired) {
                    return Err(lock.busy());
                }
                self.ensure_indexes().await?;
                self.lock.acquire(reason, versions).await
            })
            .await?;
        Self::under(guard, locked).await
    }

    /// Runs `locked` under `guard`, then releases the lock whatever
    /// happened; a panic goes on once the lock is free.
    async fn under<T>(guard: LockGuard, locked: impl AsyncFnOnce(&LockGuard) -> Result<T, Error>) -> Result<T, Error> {
        let result = AssertUnwindSafe(locked(&guard)).catch_unwind().await;
        Self::release(guard, result).await
    }

    /// Every known and recorded migration with its state, the counts, and the lock.
    pub async fn status(&self) -> Result<StatusReport, Error> {
        let (records, lock) = self.read_state().await?;
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

    /// A conflict on `version`: its record changed under this runner's lock.
    fn conflict(&self, version: Version) -> Error {
        let name = self.registry.get(version).map_or("", |m| m.name.as_ref());
        Error::Conflict {
            version,
            name: name.to_string(),
        }
    }

    /// Versions with their names, where the registry knows them.
    fn named<'a>(&'a self, versions: &[Version]) -> Vec<(Version, &'a str)> {
        versions
            .iter()
            .map(|&v| (v, self.registry.get(v).map_or("", |m| m.name.as_ref())))
            .collect()
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

    async fn forget_locked(&self, guard: &LockGuard, versions: &[Version]) -> Result<Vec<Record>, Error> {
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
    fn forgettable<'r>(&self, records: &'r Records, versions: &[Version]) -> Result<Vec<&'r Record>, Error> {
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
    fn up_to(&self, to: Version) -> impl Iterator<Item = &Migration> {
        self.registry.migrations().iter().take_while(move |m| m.version <= to)
    }

    /// Refuses a baseline up to `to` where any of those migrations has a record.
    fn baselinable(&self, records: &Records, to: Version) -> Result<(), Error> {
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

    async fn baseline_locked(&self, guard: &LockGuard, to: Version) -> Result<RunReport, Error> {
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
        let changed = self.tracking.plan(&claims, guard.fence(), now).await?;
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

    async fn resolve_locked(
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
    fn resolvable<'r>(
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
    async fn accept_checksum(&self, guard: &LockGuard, record: &Record) -> Result<Record, Error> {
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

    /// Plans from the records read under the lock, claims the plan, proves
    /// the lock, then runs the plan.
    async fn run_locked<'a>(
        &'a self,
        guard: &LockGuard,
        direction: Direction,
        plan: impl Fn(&Records) -> Result<Plan<'a>, Error>,
    ) -> Result<RunReport, Error> {
        let mut attempt = 0;
        let plan = loop {
            if self.stop.is_stopped() {
                // Stopped before anything was claimed: nothing changes.
                let records = self.records().await?;
                let skipped = plan(&records)?
                    .into_iter()
                    .map(|(m, batch)| step(m, batch, None))
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
            // A runner that was paused since it took the lock writes
            // nothing before proving it again: not even the fence, which
            // could otherwise hit the claims of whoever holds the lock now.
            guard.ensure_lease().await?;
            self.fence_others(guard).await?;
            let records = self.records().await?;
            let plan = match plan(&records) {
                Ok(plan) => plan,
                // What blocks this run may be a newer holder's claim: a
                // runner that lost its lock says so, not what it read.
                Err(e) => {
                    guard.check().await?;
                    return Err(e);
                }
            };
            self.require_transactions(&plan).await?;
            let mut claims = Vec::with_capacity(plan.len());
            for &(migration, batch) in &plan {
                claims.push(Claim {
                    migration,
                    previous: records.get(&migration.version),
                    batch,
                    direction,
                    adopt: match direction {
                        Direction::Up => plan::adoption(migration, &records)?,
                        Direction::Down => None,
                    },
                });
            }
            let adopted: Vec<Version> = claims
                .iter()
                .filter(|c| c.adopt.is_some())
                .map(|c| c.migration.version)
                .collect();
            // Whoever takes the lock next fences what the lock document names.
            guard.extend(plan.iter().map(|(m, _)| m.version)).await?;
            let now = self.server.clock().await?.now();
            guard.ensure_lease().await?;
            let changed = self.tracking.plan(&claims, guard.fence(), now).await?;
            let Some(&version) = changed.first() else {
                break (plan, adopted);
            };
            // Since the fence, nobody but a newer holder can change a record
            // this runner read: most likely it lost the lock. Prove it, and
            // if it still holds, read and claim once more.
            guard.check().await.map_err(|e| self.lost(e, &[], None, &plan))?;
            attempt += 1;
            if attempt == 2 {
                return Err(self.conflict(version));
            }
        };
        // The proof: every claim above exists now, so whoever takes the lock
        // after this moment fences all of them.
        let (plan, adopted) = plan;
        guard.check().await.map_err(|e| self.lost(e, &[], None, &plan))?;
        let (recorded, to_run): (Plan, Plan) = plan.into_iter().partition(|(m, _)| adopted.contains(&m.version));
        let mut report = self.execute(guard, direction, &to_run).await?;
        let recorded = recorded.into_iter().map(|(m, batch)| self::adopted(m, batch));
        report.steps = recorded.chain(report.steps).collect();
        Ok(report)
    }

    /// Runs a claimed plan, one write per migration.
    async fn execute(
        &self,
        guard: &LockGuard,
        direction: Direction,
        plan: &[(&Migration, i64)],
    ) -> Result<RunReport, Error> {
        let mut steps: Vec<Step> = Vec::with_capacity(plan.len());
        // The previous plain step (its index and time), done but not yet
        // recorded: its end goes out with the next step's start, in one command.
        let mut open: Option<(usize, i64)> = None;
        let mut next = 0;
        while next < plan.len() && !self.stop.is_stopped() {
            let (m, batch) = plan[next];
            self.report(Progress::Started {
                version: m.version,
                name: m.name.to_string(),
                direction,
            });
            let previous = open
                .take()
                .map(|(i, ms)| (i, finish(plan[i].0, Outcome::Done(direction), ms)));
            // A runner whose lease ran out (it was paused) claims nothing it
            // would then not start.
            if let Err(e) = guard.ensure_lease().await {
                let interrupted = previous.map(|(_, f)| f.version);
                return Err(self.lost(e, &steps, interrupted, &plan[next..]));
            }
            let sent = Instant::now();
            let now = self.server.clock().await?.now();
            let start = Some(m.version);
            let stepped = self
                .tracking
                .step(previous.map(|(_, f)| f), start, guard.fence(), now, None)
                .await?;
            if let Some((i, f)) = previous {
                if stepped == Stepped::FinishFenced {
                    let lost = Error::lock_lost();
                    return Err(self.lost(lost, &steps, Some(f.version), &plan[next..]));
                }
                steps.push(step(plan[i].0, plan[i].1, Some(f.elapsed_ms)));
            }
            if stepped != Stepped::Ok {
                return Err(self.lost(Error::lock_lost(), &steps, None, &plan[next..]));
            }
            // Nothing starts on an old answer: a runner paused while its
            // write was in flight proves the lock again first.
            if let Err(e) = guard.ensure_live(sent).await {
                return Err(self.lost(e, &steps, Some(m.version), &plan[next + 1..]));
            }
            let span = tracing::info_span!(
                "mongo_migrate.migration",
                version = m.version.as_u64(),
                name = %m.name,
                transactional = m.transactional,
                direction = direction.as_str(),
            );
            let ms = if m.transactional {
                // Its `running` record means "not applied" until the
                // transaction commits it done.
                match self
                    .run_in_transaction(guard, m, direction)
                    .instrument(span.clone())
                    .await
                {
                    Ok(ms) => ms,
                    Err((e @ Error::MigrationFailed { .. }, attempts)) => {
                        span.in_scope(|| tracing::error!(error = %e, attempts, "migration failed"));
                        let end = finish(m, Outcome::Failed(failure_text(&e), attempts), 0);
                        self.record_end(guard, end, &steps, plan, next).await?;
                        return Err(after(e, &steps));
                    }
                    Err((e, _)) => return Err(self.lost(e, &steps, None, &plan[next..])),
                }
            } else {
                let start = Instant::now();
                let checkpoints = Checkpoints {
                    tracking: self.tracking.collection(),
                    claim: running_claim(m.version, guard.fence()),
                    direction,
                    stop: self.stop.clone(),
                    lock: guard.handle(),
                    version: m.version,
                    progress: self.progress.clone(),
                };
                let mut ctx =
                    MigrationContext::new(self.db.clone(), None, m, guard.handle()).with_checkpoints(checkpoints);
                let result = run(function(m, direction), &mut ctx).instrument(span.clone()).await;
                let ms = elapsed_ms(start);
                if let Some(walk) = result.as_ref().err().and_then(StepError::stopped_walk) {
                    // Stopped on request between two batches: not a failure.
                    span.in_scope(|| tracing::info!(documents_done = walk.done, "migration stopped on request"));
                    self.record_end(guard, finish(m, Outcome::Stopped, ms), &steps, plan, next)
                        .await?;
                    return Ok(RunReport {
                        direction,
                        dry_run: false,
                        steps,
                        skipped: plan[next..].iter().map(|&(m, batch)| step(m, batch, None)).collect(),
                        stopped_walk: Some(crate::report::StoppedWalk {
                            version: m.version,
                            name: m.name.to_string(),
                            documents_done: walk.done,
                            documents_total: walk.total,
                        }),
                        elapsed_ms: None,
                    });
                }
                if let Err(e) = result {
                    span.in_scope(|| tracing::error!(error = %e.message, "migration failed"));
                    self.record_end(guard, finish(m, Outcome::Failed(&e.message, 1), ms), &steps, plan, next)
                        .await?;
                    return Err(after(failed(m, e), &steps));
                }
                ms
            };
            span.in_scope(|| tracing::info!(duration_ms = ms, "migration done"));
            if m.transactional {
                steps.push(step(m, batch, Some(ms)));
            } else {
                open = Some((next, ms));
            }
            self.report(Progress::Finished {
                version: m.version,
                name: m.name.to_string(),
                direction,
                duration_ms: ms,
            });
            next += 1;
        }
        if let Some((i, ms)) = open {
            self.record_end(guard, finish(plan[i].0, Outcome::Done(direction), ms), &steps, plan, i)
                .await?;
            steps.push(step(plan[i].0, plan[i].1, Some(ms)));
        }
        Ok(RunReport {
            direction,
            dry_run: false,
            steps,
            skipped: plan[next..].iter().map(|&(m, batch)| step(m, batch, None)).collect(),
            stopped_walk: None,
            elapsed_ms: None,
        })
    }

    /// Records the end of step `i` on its own.
    async fn record_end(
        &self,
        guard: &LockGuard,
        f: Finish<'_>,
        steps: &[Step],
        plan: &[(&Migration, i64)],
        i: usize,
    ) -> Result<(), Error> {
        let now = self.server.clock().await?.now();
        match self.tracking.step(Some(f), None, guard.fence(), now, None).await? {
            Stepped::Ok => Ok(()),
            _ => Err(self.lost(Error::lock_lost(), steps, Some(f.version), &plan[i + 1..])),
        }
    }

    /// Turns a lost lock into the error that says what ran and what did not,
    /// and who holds the lock now. Other errors pass through.
    fn lost(&self, e: Error, steps: &[Step], interrupted: Option<Version>, not_run: &[(&Migration, i64)]) -> Error {
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

    /// Fences every claim but this holder's, and every plan this holder
    /// inherited, before the records are read.
    async fn fence_others(&self, guard: &LockGuard) -> Result<(), Error> {
        let now = self.server.clock().await?.now();
        let fence = guard.fence();
        let unfenced = self.named(guard.inherited());
        self.tracking
            .fence(Fenced::AllBut(fence.holder_id), fence.generation, &unfenced, now)
            .await?;
        guard.set_fenced();
        Ok(())
    }

    fn known_target(&self, to: Option<Version>) -> Result<(), Error> {
        match to {
            Some(version) if self.registry.get(version).is_none() => Err(Error::UnknownTarget { version }),
            _ => Ok(()),
        }
    }

    /// The records, then the lock, as one consistent view: a `running` record
    /// that the lock does not explain was either left by a runner that is
    /// gone, or finished by one that released the lock between the two
    /// reads (a run records its last step before it releases). One more read
    /// tells which.
    async fn read_state(&self) -> Result<(Records, Option<LockInfo>), Error> {
        let mut again = true;
        loop {
            let records = self.records().await?;
            let lock = self.lock.status().await?;
            let unexplained = records
                .values()
                .any(|r| r.status == MigrationStatus::Running && r.fenced_by.is_none() && !r.is_live(lock.as_ref()));
            if !unexplained || !std::mem::replace(&mut again, false) {
                return Ok((records, lock));
            }
        }
    }

    async fn records(&self) -> Result<Records, Error> {
        Ok(plan::index(self.tracking.load().await?))
    }

    fn plan_up<'a>(
        &'a self,
        records: &Records,
        lock: Option<&LockInfo>,
        to: Option<Version>,
        phase: Option<Phase>,
        allow_out_of_order: bool,
    ) -> Result<Plan<'a>, Error> {
        plan::validate(&self.registry, records, lock)?;
        let batch = plan::next_batch(records);
        let pending = plan::in_phase(plan::pending(&self.registry, records, to), phase);
        for m in &pending {
            plan::adoption(m, records)?;
        }
        plan::check_order(&pending, &self.registry, records, allow_out_of_order)?;
        Ok(pending.into_iter().map(|m| (m, batch)).collect())
    }

    fn plan_down<'a>(
        &'a self,
        records: &Records,
        lock: Option<&LockInfo>,
        target: DownTarget,
    ) -> Result<Plan<'a>, Error> {
        plan::validate(&self.registry, records, lock)?;
        Ok(plan::rollback(&self.registry, records, target)?
            .into_iter()
            .map(|m| (m, records[&m.version].batch))
            .collect())
    }

    /// The collections' indexes, once per migrator.
    async fn ensure_indexes(&self) -> Result<(), Error> {
        self.indexes
            .get_or_try_init(|| async {
                tokio::try_join!(self.tracking.ensure_indexes(), self.lock.drop_ttl_index())?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(())
    }

    /// Runs `attempt` until it is not [`Error::Locked`], for up to
    /// `lock_wait`, or until a stop is requested. Polls at most every
    /// [`MAX_LOCK_POLL`], so a waiter sees a released lock promptly.
    async fn waiting<T, F>(&self, mut attempt: impl FnMut() -> F) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.lock_wait;
        let mut told = false;
        loop {
            match attempt().await {
                Err(Error::Locked { holder, expires_at }) if Instant::now() < deadline && !self.stop.is_stopped() => {
                    if !std::mem::replace(&mut told, true) {
                        tracing::info!(%holder, %expires_at, "waiting for the lock");
                        self.report(Progress::Waiting { holder, expires_at });
                    }
                    let pause = jitter(MAX_LOCK_POLL).min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// Releases the lock after the work done under it, whatever its outcome;
    /// a panic goes on once the lock is free. A lost lock is reported with
    /// whoever holds it now.
    async fn release<T>(guard: LockGuard, result: std::thread::Result<Result<T, Error>>) -> Result<T, Error> {
        let taken_by = match &result {
            Ok(Err(Error::LockLost { .. })) => {
                // Found by a fenced write rather than the heartbeat.
                if !guard.is_lost() {
                    tracing::warn!(generation = guard.fence().generation, "lock lost");
                }
                guard.holder_now().await
            }
            _ => None,
        };
        let released = guard.release().await;
        match result {
            Ok(Err(Error::LockLost {
                completed,
                interrupted,
                not_run,
                ..
            })) => Err(Error::LockLost {
                taken_by,
                completed,
                interrupted,
                not_run,
            }),
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
        if self.server.info().await?.transactions {
            return Ok(());
        }
        Err(Error::TransactionsUnsupported {
            version: m.version,
            name: m.name.to_string(),
        })
    }

    /// The migration and the end of its tracking record commit together, or
    /// not at all. A fence that lands meanwhile conflicts with that end, and
    /// the transaction cannot commit. Transient failures are retried whole
    /// while the lock is held; a failure comes back as `MigrationFailed`,
    /// with the number of attempts made.
    async fn run_in_transaction(
        &self,
        guard: &LockGuard,
        m: &Migration,
        direction: Direction,
    ) -> Result<i64, (Error, u32)> {
        let mut attempt = 1;
        loop {
            match self.attempt_transaction(guard, m, direction, attempt).await {
                Ok(Some(ms)) => return Ok(ms),
                Ok(None) => attempt += 1,
                Err(e) => return Err((e, attempt)),
            }
        }
    }

    /// One attempt of [`Migrator::run_in_transaction`]: the time taken, or
    /// `None` after a transient failure that may be tried again (after the
    /// pause, taken here).
    async fn attempt_transaction(
        &self,
        guard: &LockGuard,
        m: &Migration,
        direction: Direction,
        attempt: u32,
    ) -> Result<Option<i64>, Error> {
        guard.ensure_lease().await?;
        let start = Instant::now();
        let mut session = self.client.start_session().await?;
        session.start_transaction().await?;
        let mut ctx = MigrationContext::new(self.db.clone(), Some(session), m, guard.handle());
        let result = run(function(m, direction), &mut ctx).await;
        let mut session = ctx.into_session().expect("transactional context has a session");
        let outcome = match result {
            Ok(()) => match self.end_transaction(guard, m, direction, &mut session, start).await {
                Ok(ms) => match commit(&mut session).await {
                    Ok(()) => return Ok(Some(ms)),
                    Err(e) if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => {
                        Attempt::Transient(e.into())
                    }
                    Err(e) => Attempt::Failed(e.into()),
                },
                Err(outcome) => outcome,
            },
            Err(e) if e.is_transient() => Attempt::Transient(failed(m, e)),
            Err(e) => Attempt::Failed(failed(m, e)),
        };
        // Best effort: an open transaction dies with its session.
        let _ = session.abort_transaction().await;
        match outcome {
            Attempt::Transient(_) if attempt < TRANSACTION_ATTEMPTS && !guard.is_lost() => {
                // Doubling from 120-200 ms: long enough for a competing
                // transaction to end between attempts, not only to start.
                let pause = TRANSACTION_BACKOFF * (1 << (attempt - 1));
                tokio::time::sleep(pause + jitter(pause)).await;
                Ok(None)
            }
            // A conflict caused by a fence is a lost lock, not a failure.
            Attempt::Transient(e) | Attempt::Failed(e) => {
                guard.check().await?;
                Err(match e {
                    e @ Error::MigrationFailed { .. } => e,
                    e => Error::MigrationFailed {
                        version: m.version,
                        name: m.name.to_string(),
                        message: e.to_string(),
                        source: Some(Box::new(e)),
                        completed: Vec::new(),
                    },
                })
            }
            Attempt::Lost => Err(Error::lock_lost()),
        }
    }

    /// Records the end inside the transaction; the lease must still be good
    /// when the transaction commits. Returns the time it recorded, which the
    /// run reports too (the commit is not counted in either).
    async fn end_transaction(
        &self,
        guard: &LockGuard,
        m: &Migration,
        direction: Direction,
        session: &mut ClientSession,
        start: Instant,
    ) -> Result<i64, Attempt> {
        let now = self.server.clock().await.map_err(Attempt::Failed)?.now();
        let ms = elapsed_ms(start);
        let end = finish(m, Outcome::Done(direction), ms);
        match self
            .tracking
            .step(Some(end), None, guard.fence(), now, Some(session))
            .await
        {
            Ok(Stepped::Ok) => {}
            Ok(_) => return Err(Attempt::Lost),
            Err(Error::Mongo(e)) if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => {
                return Err(Attempt::Transient(e.into()))
            }
            Err(e) => return Err(Attempt::Failed(e)),
        }
        guard.ensure_live(Instant::now()).await.map_err(|_| Attempt::Lost)?;
        Ok(ms)
    }

    fn report(&self, progress: Progress) {
        if let Some(f) = &self.progress {
            f(&progress);
        }
    }
}

/// How one transaction attempt ended, when it did not commit.
enum Attempt {
    /// The server labelled it `TransientTransactionError`: worth another try.
    Transient(Error),
    Failed(Error),
    /// The claim was fenced, or the lease ran out.
    Lost,
}

/// Commits, retrying a commit whose result is unknown (a network error or a
/// failover during the commit), as MongoDB's drivers do.
async fn commit(session: &mut ClientSession) -> Result<(), mongodb::error::Error> {
    let mut tries = 0;
    loop {
        match session.commit_transaction().await {
            Err(e) if e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

fn function(m: &Migration, direction: Direction) -> MigrationFn {
    match direction {
        Direction::Up => m.up,
        Direction::Down => m.down.expect("planned rollbacks are reversible"),
    }
}

fn finish<'a>(m: &Migration, outcome: Outcome<'a>, elapsed_ms: i64) -> Finish<'a> {
    Finish {
        version: m.version,
        outcome,
        elapsed_ms,
    }
}

/// A random pause up to `max`, at least a fifth of it, so that waiters and
/// retries do not move in step.
fn jitter(max: Duration) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
    max / 5 + (max * 4 / 5) * random / 1_000
}

/// The message a failed migration records.
fn failure_text(e: &Error) -> &str {
    match e {
        Error::MigrationFailed { message, .. } => message,
        _ => "failed",
    }
}

/// A failed step: its error, or the message of its panic.
struct StepError {
    message: String,
    source: Option<MigrationError>,
}

impl StepError {
    /// The walk a stop request ended, when that is why the body returned.
    fn stopped_walk(&self) -> Option<&crate::batch::WalkStopped> {
        let walk = self.source.as_ref()?.downcast_ref::<crate::batch::WalkStopped>()?;
        walk.on_request.then_some(walk)
    }

    /// The server labelled the failure as transient (a write conflict in a transaction).
    fn is_transient(&self) -> bool {
        self.source
            .as_ref()
            .and_then(|e| e.downcast_ref::<mongodb::error::Error>())
            .is_some_and(|e| e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR))
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
        name: m.name.to_string(),
        message: e.message,
        source: e.source,
        completed: Vec::new(),
    }
}

/// A failure, with the steps its run recorded before it.
fn after(mut e: Error, steps: &[Step]) -> Error {
    if let Error::MigrationFailed { completed, .. } = &mut e {
        *completed = steps.iter().map(|s| s.version).collect();
    }
    e
}

fn elapsed_ms(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn step(m: &Migration, batch: i64, duration_ms: Option<i64>) -> Step {
    Step {
        version: m.version,
        name: m.name.to_string(),
        description: m.description.to_string(),
        batch,
        transactional: m.transactional,
        reversible: m.is_reversible(),
        duration_ms,
        adopted: false,
    }
}

/// A migration recorded as applied without running.
fn adopted(m: &Migration, batch: i64) -> Step {
    Step {
        adopted: true,
        ..step(m, batch, Some(0))
    }
}
