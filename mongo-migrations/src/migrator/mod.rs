//! The migrator: plans before and under the lock, applies and rolls back.
//!
//! A run, for N migrations (see README, "What is guaranteed"):
//! 1. reads the lock, then the records (or starts from another process's read of them, see
//!    [`Migrator::with_state_read`]), and refuses bad input before it writes anything;
//! 2. takes the lock (one conditional upsert naming its plan); where an earlier holder could
//!    still write, fences every older claim and every plan it inherits, and reads the records
//!    again (else the first read is current: `Read::still_current`);
//! 3. claims the whole plan as `planned` in one write, then proves it still holds the lock;
//! 4. per migration, one write that records the previous step and starts the next;
//! 5. records the last step and releases the lock.
//!
//! That is N + 7 commands, 2 more where it fences, plus once per process the greeting `hello`,
//! the `$$NOW` probe, and the tracking indexes until the lock says they exist.

use crate::batch::ProgressFn;
use crate::lock::{Lock, LockInfo};
use crate::plan::{self, DownTarget, Intent, Records};
use crate::record::{HistoryQuery, Record};
use crate::retry::Retry;
use crate::server::{connect_greeted, durable, Server};
use crate::state_read::{Read, StateRead};
use crate::tracking::Tracking;
use crate::{
    Config, Direction, DownOptions, Error, Phase, Progress, Registry, RunReport, StatusReport, StopHandle, UpOptions,
    Version,
};
use mongodb::{Client, Database};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

mod admin;
mod locking;
mod run;
mod step;
mod transaction;

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
    /// The state another process read, used by the first read instead of
    /// reading it again (see [`Migrator::with_state_read`]).
    handed: Arc<Mutex<Option<StateRead>>>,
    /// The last read before the lock, which the run under it uses instead
    /// of reading again where nothing can have changed since.
    last_read: Arc<Mutex<Option<Read>>>,
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
        let retry = Retry::within(config.lock_ttl);
        let server = Server::new(db.clone(), retry);
        Migrator {
            tracking: Tracking::new(db.clone(), durable(&db, &config.tracking_collection), retry),
            lock: Lock::new(
                durable(&db, &config.lock_collection),
                config.lock_name,
                config.lock_ttl,
                server.clone(),
                &config.tracking_collection,
            ),
            server,
            indexes: Arc::new(OnceCell::new()),
            handed: Arc::default(),
            last_read: Arc::default(),
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

    /// Parses `uri`, connects and greets the server (`hello`, which the
    /// server probe then uses). The database is `database`
    /// or else the URI's path.
    ///
    /// ```no_run
    /// use mongo_migrations::{Config, Migrator, Registry, UpOptions};
    ///
    /// # async fn run(registry: Registry) -> Result<(), mongo_migrations::Error> {
    /// // `registry` is usually `my_crate::migrations::registry()?`.
    /// let migrator = Migrator::connect("mongodb://127.0.0.1:27017/app", None, registry, Config::default()).await?;
    /// let report = migrator.up(UpOptions::default()).await?;
    /// println!("applied {} migrations", report.steps.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(uri: &str, database: Option<&str>, registry: Registry, config: Config) -> Result<Self, Error> {
        let (client, name, hello) = connect_greeted(uri, database, config.connect_timeout).await?;
        let migrator = Migrator::new(client, &name, registry, config);
        migrator.server.greeted(hello);
        Ok(migrator)
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

    /// Its configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The migrations it runs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Its client.
    #[cfg(feature = "macros")]
    pub(crate) fn client(&self) -> &mongodb::Client {
        &self.client
    }

    /// The database it migrates.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations in version order as one batch.
    pub async fn up(&self, options: UpOptions) -> Result<RunReport, Error> {
        // Bad input is refused before anything, even the lock, is written.
        self.known_target(options.to)?;
        self.run(Intent::Up(options), (options.dry_run, options.continue_on_error))
            .await
    }

    /// What `up` answers when it has nothing to do, asked of the planner
    /// without the lock and writing nothing: a report without steps when
    /// no migration `options` select is pending and no live runner holds
    /// the lock; `None` when `up` would apply something, or would wait for
    /// (or refuse on) a runner in progress. A refusal (out of order, a
    /// blocked migration) is the error `up` would return.
    pub async fn up_settled(&self, options: UpOptions) -> Result<Option<RunReport>, Error> {
        self.known_target(options.to)?;
        let (records, lock) = self.read_state().await?;
        if lock.as_ref().is_some_and(|l| !l.expired) {
            return Ok(None);
        }
        match plan::up(&self.registry, &records, lock.as_ref(), &options, &self.config) {
            Ok(planned) if planned.is_empty() => Ok(Some(RunReport {
                direction: Direction::Up,
                dry_run: options.dry_run,
                steps: Vec::new(),
                skipped: Vec::new(),
                stopped_walk: None,
                elapsed_ms: None,
            })),
            Ok(_) | Err(Error::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Rolls back applied migrations, newest first.
    pub async fn down(&self, options: DownOptions) -> Result<RunReport, Error> {
        if let DownTarget::To(to) = options.target {
            self.known_target(Some(to))?;
        }
        self.run(Intent::Down(options.target), (options.dry_run, false)).await
    }

    /// Every known and recorded migration with its state, the counts, and the lock.
    pub async fn status(&self) -> Result<StatusReport, Error> {
        let (records, lock) = self.read_state().await?;
        let mut report = StatusReport::new(&self.registry, &records, lock);
        report.mongos = self.server.probed().is_some_and(|i| i.mongos);
        Ok(report)
    }

    /// Tracking records, most recently changed first.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<Record>, Error> {
        self.tracking.history(query).await
    }

    /// The lock document, if any (check `expired`).
    pub async fn lock_status(&self) -> Result<Option<LockInfo>, Error> {
        self.lock.status().await
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

    fn known_target(&self, to: Option<Version>) -> Result<(), Error> {
        match to {
            Some(version) if self.registry.get(version).is_none() => Err(Error::UnknownTarget { version }),
            _ => Ok(()),
        }
    }

    /// The lock, then the records, as one consistent view: a `running`
    /// record that the lock does not explain was either left by a runner
    /// that is gone, or written by one that took the lock after it was read
    /// (its generation is newer); one more read tells which. The read is
    /// kept for the run under the lock (see [`Read::still_current`]), and
    /// for [`Migrator::state_read`].
    pub(crate) async fn read_state(&self) -> Result<(Records, Option<LockInfo>), Error> {
        let mut again = true;
        loop {
            let handed = self.handed.lock().expect("handed state").take();
            let (read, lock) = match handed.and_then(|state| state.read_at(&self.origin())) {
                // Read while nobody held the lock: no clock to judge it by.
                Some(read) => (read, None),
                // In this order: records read after a lock that was free are
                // current until the next holder's generation. The lock is
                // judged as soon as it is read, not after the records.
                None => {
                    let doc = self.lock.read().await?;
                    let lock = self.lock.info_of(doc.as_ref()).await?;
                    let marked = self.lock.says_indexed(doc.as_ref());
                    let (documents, proved) = self.tracking.load_documents(marked).await?;
                    (Read::new(doc, documents, marked && proved)?, lock)
                }
            };
            self.lock.set_indexes_made(read.indexed);
            if !read.unexplained(lock.as_ref()) || !std::mem::replace(&mut again, false) {
                let records = read.records.clone();
                *self.last_read.lock().expect("last read") = Some(read);
                return Ok((records, lock));
            }
        }
    }

    /// What the last read before the lock found, for another process to
    /// start from (see [`Migrator::with_state_read`]): the CLI hands what its
    /// check read to the harness that runs the migrations.
    pub fn state_read(&self) -> Option<StateRead> {
        let last = self.last_read.lock().expect("last read");
        last.as_ref().map(|r| StateRead::new(self.origin(), r))
    }

    /// Where this migrator reads: its database, tracking collection, lock
    /// collection and lock name.
    fn origin(&self) -> String {
        let c = &self.config;
        format!(
            "{}.{} {}.{}/{}",
            self.db.name(),
            c.tracking_collection,
            self.db.name(),
            c.lock_collection,
            c.lock_name
        )
    }

    /// Starts from `state`, as [`Migrator::state_read`] of another process
    /// gave it, instead of reading the lock and the records once more: the
    /// first read before the lock takes it, if it was read from this
    /// migrator's database and collections while nobody held the lock (else
    /// it reads for itself). Nothing is trusted that could have changed: a
    /// lock held since is met when it is taken, and the records are read
    /// again under it unless the lock proves that nobody held it in between.
    pub fn with_state_read(self, state: Option<StateRead>) -> Self {
        *self.handed.lock().expect("handed state") = state;
        self
    }

    /// The last read before the lock, if the records it found are still
    /// the records for `guard`'s holder (see [`Read::still_current`]);
    /// taken, so it serves one run.
    pub(super) fn current_read(&self, guard: &crate::lock::LockGuard) -> Option<Records> {
        let read = self.last_read.lock().expect("last read").take()?;
        read.still_current(guard.fence().generation, guard.inherited().len())
            .then_some(read.records)
    }

    async fn records(&self) -> Result<Records, Error> {
        Ok(plan::index(self.tracking.load().await?))
    }

    /// The collections' indexes, once per migrator. Before the lock is
    /// taken, not where the lock as read says a runner made them before it
    /// took the lock (`Ensure::UnlessMade`); always before a fence
    /// (`Ensure::Always`): a fence's placeholders rely on the unique version
    /// index, and only a fence meets earlier holders that could still write.
    async fn ensure_indexes(&self, ensure: Ensure) -> Result<(), Error> {
        if ensure == Ensure::UnlessMade && self.lock.indexes_made() {
            return Ok(());
        }
        self.indexes
            .get_or_try_init(|| async {
                // One after the other: at once they would take two connections.
                self.tracking.ensure_indexes().await?;
                self.lock.drop_ttl_index().await
            })
            .await?;
        Ok(())
    }

    fn report(&self, progress: Progress) {
        if let Some(f) = &self.progress {
            f(&progress);
        }
    }
}

/// When [`Migrator::ensure_indexes`] makes the indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ensure {
    UnlessMade,
    Always,
}

fn elapsed_ms(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}
