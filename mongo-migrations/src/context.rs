//! The context a migration's `up`/`down` run with: the database, the
//! transaction's session, walks in batches, and proofs of the lock.

use std::fmt;

use bson::Document;
use mongodb::{ClientSession, Database};

use crate::batch::{Batches, CheckpointWriter};
use crate::built_indexes;
use crate::lock::LockHandle;
use crate::schema::{Index, IndexOutcome, ValidationLevel, Violations};
use crate::{Direction, MigrationError, MigrationResult, Phase, StagedViolations, Version};

/// A write on the run's claim matched nothing: the run was fenced.
const LOCK_LOST: &str = "the migration's lock was lost: another runner took it over";

/// The indexes the run's record notes (see `built_indexes`); an error
/// once the run's claim is fenced.
async fn noted_indexes(c: &CheckpointWriter) -> Result<Vec<built_indexes::Entry>, MigrationError> {
    match c.record("reading the indexes").await? {
        Some(record) => Ok(built_indexes::of(&record)),
        None => Err(LOCK_LOST.into()),
    }
}

/// What a run's walks and index builds did: documents and milliseconds of
/// each, the rates `plan` estimates durations from.
pub(crate) type Worked = (Option<(u64, u64)>, Option<(u64, u64)>);

/// What a migration's `up`/`down` gets: the database, and for transactional
/// migrations the session whose transaction the tracking write commits in.
pub struct MigrationContext {
    db: Database,
    session: Option<ClientSession>,
    version: Version,
    name: String,
    /// None while `plan` inspects the migration: no lock is taken.
    lock: Option<LockHandle>,
    /// While `plan` inspects the migration: where its operations go,
    /// recorded instead of run.
    inspecting: Option<crate::operation::Recorded>,
    /// Where batches record their progress (none in a transaction).
    checkpoints: Option<CheckpointWriter>,
    /// How many walks this run of the migration has started.
    walks: std::sync::atomic::AtomicUsize,
    /// Documents this run's walks handed over, and the milliseconds they took.
    walked: std::sync::Mutex<(u64, u64)>,
    /// Documents under the indexes this run built, and the builds' milliseconds.
    indexed: std::sync::Mutex<(u64, u64)>,
    /// The migration's deploy phase.
    phase: Phase,
    /// What each `stage_validator` of this run found, for its record.
    violations: std::sync::Mutex<Vec<StagedViolations>>,
    /// The commit quorum of index builds, and how long one is waited for.
    index_builds: (crate::schema::CommitQuorum, Option<std::time::Duration>),
}

impl MigrationContext {
    /// The context of migration `version` (`name`).
    pub(crate) fn new(
        db: Database,
        session: Option<ClientSession>,
        (version, name): (Version, &str),
        lock: LockHandle,
    ) -> Self {
        MigrationContext {
            db,
            session,
            version,
            name: name.to_string(),
            lock: Some(lock),
            inspecting: None,
            checkpoints: None,
            walks: std::sync::atomic::AtomicUsize::new(0),
            walked: std::sync::Mutex::new((0, 0)),
            indexed: std::sync::Mutex::new((0, 0)),
            phase: Phase::PreDeploy,
            violations: std::sync::Mutex::new(Vec::new()),
            index_builds: (Default::default(), Some(crate::schema::DEFAULT_BUILD_WAIT)),
        }
    }

    /// The context `plan` runs a migration's `up` in: each schema operation
    /// and walk is recorded into `recorded`, not run; the database itself
    /// (`db()`, `transaction()`) is refused, so nothing is written.
    pub(crate) fn inspecting(
        db: Database,
        (version, name): (Version, &str),
        phase: Phase,
        recorded: crate::operation::Recorded,
    ) -> Self {
        MigrationContext {
            db,
            session: None,
            version,
            name: name.to_string(),
            lock: None,
            inspecting: Some(recorded),
            checkpoints: None,
            walks: std::sync::atomic::AtomicUsize::new(0),
            walked: std::sync::Mutex::new((0, 0)),
            indexed: std::sync::Mutex::new((0, 0)),
            phase,
            violations: std::sync::Mutex::new(Vec::new()),
            index_builds: (Default::default(), Some(crate::schema::DEFAULT_BUILD_WAIT)),
        }
    }

    /// Documents this run's walks handed over and the milliseconds they
    /// took, if it walked; documents under the indexes it built and the
    /// builds' milliseconds, if it built one: the rates `plan` estimates
    /// durations from.
    pub(crate) fn worked(&self) -> Worked {
        let read = |m: &std::sync::Mutex<(u64, u64)>| {
            let done = *m.lock().unwrap_or_else(|e| e.into_inner());
            (done.1 > 0 || done.0 > 0).then_some(done)
        };
        (read(&self.walked), read(&self.indexed))
    }

    /// Builds `index` on `collection` (which [`adopt`](crate::schema::adopt)
    /// found missing), and notes the collection's size and the build's time.
    async fn build(&self, db: &Database, collection: &str, index: &Index) -> Result<IndexOutcome, MigrationError> {
        // From the collection's metadata: one cheap command per build.
        let documents = db
            .collection::<bson::Document>(collection)
            .estimated_document_count()
            .await
            .unwrap_or(0);
        let started = std::time::Instant::now();
        let outcome = crate::schema::build(db, collection, index, &self.build_options()).await?;
        // Never recorded as taking no time (a rate needs some).
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        let mut indexed = self.indexed.lock().unwrap_or_else(|e| e.into_inner());
        *indexed = (indexed.0.saturating_add(documents), indexed.1.saturating_add(ms));
        Ok(outcome)
    }

    /// While inspected: records `op` and says so (`true`).
    fn recorded(&self, op: impl FnOnce() -> crate::operation::Operation) -> bool {
        match &self.inspecting {
            Some(recorded) => {
                crate::operation::record(recorded, op());
                true
            }
            None => false,
        }
    }

    /// Whose index builds commit with `quorum` and are waited for `wait`.
    pub(crate) fn with_index_builds(
        mut self,
        quorum: crate::schema::CommitQuorum,
        wait: Option<std::time::Duration>,
    ) -> Self {
        self.index_builds = (quorum, wait);
        self
    }

    /// How this migration's index builds run: progress to the run's
    /// callback, the configured quorum and wait.
    fn build_options(&self) -> crate::schema::Build<'_> {
        let progress = self.checkpoints.as_ref().and_then(|c| c.progress.as_ref());
        crate::schema::Build {
            progress: progress.map(|p| (self.version, &**p as &(dyn Fn(&crate::Progress) + Send + Sync))),
            quorum: self.index_builds.0,
            wait: self.index_builds.1,
        }
    }

    /// Of a migration in `phase`.
    pub(crate) fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// With checkpoints for [`MigrationContext::batches`].
    pub(crate) fn with_checkpoints(mut self, checkpoints: CheckpointWriter) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// A walk, in batches, over the documents of `collection` that match
    /// `filter`, for data migrations over collections of any size: one range
    /// query on `_id` per batch, and a checkpoint in the migration's tracking
    /// record after each, so an interrupted run (crash, Ctrl-C, lost lock,
    /// failure) resumes where it stopped. The closure must be idempotent per
    /// batch: the batch in flight when a run stopped is handed over again.
    ///
    /// ```no_run
    /// # use mongo_migrations::prelude::*;
    /// use mongo_migrations::bson::Bson;
    ///
    /// pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
    ///     ctx.batches("users", doc! { "emailLower": { "$exists": false } })
    ///         .size(1_000)
    ///         .run(|batch, db| async move {
    ///             let users = db.collection::<Document>("users");
    ///             for user in batch {
    ///                 let lower = user.get_str("email").unwrap_or_default().to_lowercase();
    ///                 let id = user.get("_id").cloned().unwrap_or(Bson::Null);
    ///                 users.update_one(doc! { "_id": id }, doc! { "$set": { "emailLower": lower } }).await?;
    ///             }
    ///             Ok(())
    ///         })
    ///         .await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn batches(&self, collection: &str, filter: Document) -> Batches<'_> {
        Batches {
            db: &self.db,
            checkpoints: self.checkpoints.as_ref(),
            inspecting: self.inspecting.as_ref(),
            walked: &self.walked,
            index: self.walks.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            transactional: self.session.is_some(),
            collection: collection.to_string(),
            filter,
            size: 1_000,
            pause: std::time::Duration::ZERO,
            max_rate: None,
            segments: 1,
        }
    }

    /// `true` once this run has lost its lock (its heartbeat failed, or a
    /// check found another holder). Nothing this run records will land any
    /// more, but the migration's own writes would: a long migration should
    /// look at this between chunks of work and return early.
    pub fn is_lock_lost(&self) -> bool {
        self.lock.as_ref().is_some_and(LockHandle::is_lost)
    }

    /// Completes when this run loses its lock. Race it against the work
    /// with `tokio::select!` to stop a long migration early:
    ///
    /// ```no_run
    /// # use mongo_migrations::prelude::*;
    /// # async fn step(_: &MigrationContext) -> MigrationResult { Ok(()) }
    /// pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
    ///     for _chunk in 0..1_000 {
    ///         tokio::select! {
    ///             _ = ctx.lock_lost() => return Err("lost the migration lock; stopping early".into()),
    ///             done = step(ctx) => done?,
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn lock_lost(&self) {
        match &self.lock {
            Some(lock) => lock.lost().await,
            // Inspected by `plan`: no lock to lose.
            None => std::future::pending().await,
        }
    }

    /// Proves that this run still holds its lock, before work the run's
    /// records cannot fence: the next chunk of a long body, or each write of
    /// a batch closure that makes more than one. Free while the lock's lease
    /// is fresh and the process was not paused since the last proof;
    /// otherwise one round trip. An error once the lock is lost: return it.
    /// (A walk already proves the lock before it hands over each batch.)
    ///
    /// ```no_run
    /// # use mongo_migrations::prelude::*;
    /// pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
    ///     let ctx = &*ctx;
    ///     ctx.batches("orders", doc! {})
    ///         .run(|batch, db| async move {
    ///             for order in batch {
    ///                 ctx.ensure_lock().await?;
    ///                 let id = order.get("_id").cloned();
    ///                 db.collection::<Document>("orders")
    ///                     .update_one(doc! { "_id": id }, doc! { "$set": { "v": 2 } })
    ///                     .await?;
    ///             }
    ///             Ok(())
    ///         })
    ///         .await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn ensure_lock(&self) -> MigrationResult {
        let Some(lock) = &self.lock else {
            return Ok(());
        };
        lock.ensure_lease().await.map_err(|e| {
            let e: MigrationError = match e {
                crate::Error::LockLost { .. } => "this run lost the migration lock; stopping".into(),
                e => e.into(),
            };
            e
        })
    }

    /// The database, for a non-transactional migration.
    ///
    /// A transactional migration gets an error here so that no write can
    /// silently run outside its transaction: use [`MigrationContext::transaction`].
    pub fn db(&self) -> Result<&Database, MigrationError> {
        if self.inspecting.is_some() {
            return Err(crate::operation::NOT_INSPECTABLE.into());
        }
        match self.session {
            None => Ok(&self.db),
            Some(_) => Err(format!(
                "migration {} ({}) is transactional: use ctx.transaction() and pass the session to every operation",
                self.version, self.name
            )
            .into()),
        }
    }

    /// The database and the session of the running transaction; pass the
    /// session to every operation with `.session(session)`.
    pub fn transaction(&mut self) -> Result<(&Database, &mut ClientSession), MigrationError> {
        if self.inspecting.is_some() {
            return Err(crate::operation::NOT_INSPECTABLE.into());
        }
        match self.session.as_mut() {
            Some(session) => Ok((&self.db, session)),
            None => Err(format!(
                "migration {} ({}) is not transactional: mark it with `pub const TRANSACTIONAL: bool = true;` to get a session",
                self.version, self.name
            )
            .into()),
        }
    }

    /// The version of the running migration.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The name of the running migration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The migration's deploy phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Has `index` on `collection`, safely on a live database: an existing
    /// index of the same identity is adopted under its name, one with other
    /// options refused; else it is built with `commitQuorum: "votingMembers"`
    /// (a build survives a failover) and its progress from `$currentOp`
    /// reported as a walk's is. Not in a transaction.
    ///
    /// ```no_run
    /// # use mongo_migrations::prelude::*;
    /// use mongo_migrations::schema::Index;
    /// pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
    ///     ctx.ensure_index("users", &Index::new(doc! { "email": 1 }).unique()).await?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// In `up`, the migration's record notes first whether the index was
    /// there already, so that [`drop_built_index`](Self::drop_built_index)
    /// in its `down` keeps an index the migration found.
    pub async fn ensure_index(&self, collection: &str, index: &Index) -> Result<IndexOutcome, MigrationError> {
        if self.recorded(|| crate::operation::Operation::EnsureIndex {
            collection: collection.into(),
            index: index.clone(),
        }) {
            return Ok(IndexOutcome::Built { name: index.name() });
        }
        let db = self.db()?;
        let found = crate::schema::adopt(db, collection, index).await?;
        self.note_index(collection, index, found.is_some()).await?;
        if let Some(outcome) = found {
            return Ok(outcome);
        }
        self.build(db, collection, index).await
    }

    /// Writes into the record, in `up`, whether `index` was `found` there
    /// already, before a build (an entry already there stands: see
    /// `built_indexes`).
    async fn note_index(&self, collection: &str, index: &Index, found: bool) -> MigrationResult {
        let Some(c) = self.checkpoints.as_ref().filter(|c| c.direction == Direction::Up) else {
            return Ok(());
        };
        let noted = noted_indexes(c).await?;
        let Some(next) = built_indexes::before_ensure(&noted, collection, &index.name(), found) else {
            return Ok(());
        };
        let set = bson::doc! { "$set": { built_indexes::FIELD: built_indexes::to_bson(&next) } };
        if !c.update_claim("the indexes", set).await? {
            return Err(LOCK_LOST.into());
        }
        Ok(())
    }

    /// Hides an index (step one of removing it, in a pre-deploy migration).
    pub async fn hide_index(&self, collection: &str, name: &str) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::HideIndex {
            collection: collection.into(),
            name: name.into(),
        }) {
            return Ok(());
        }
        Ok(crate::schema::hide_index(self.db()?, collection, name).await?)
    }

    /// Creates `collection` unless it exists.
    pub async fn create_collection(&self, collection: &str) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::CreateCollection {
            collection: collection.into(),
        }) {
            return Ok(());
        }
        Ok(crate::schema::create_collection(self.db()?, collection).await?)
    }

    /// Shows a hidden index again: the rollback of a hide.
    pub async fn unhide_index(&self, collection: &str, name: &str) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::UnhideIndex {
            collection: collection.into(),
            name: name.into(),
        }) {
            return Ok(());
        }
        Ok(crate::schema::unhide_index(self.db()?, collection, name).await?)
    }

    /// Replaces the index named `old` with `index`, whose options differ
    /// (made unique, sparse, a TTL): never leaves the collection without one
    /// of them. A unique `index` is refused, nothing changed, while documents
    /// share its keys (the error counts them and names a few); see
    /// [`schema::replace_index`](crate::schema::replace_index).
    pub async fn replace_index(
        &self,
        collection: &str,
        old: &str,
        index: &Index,
    ) -> Result<IndexOutcome, MigrationError> {
        if self.recorded(|| crate::operation::Operation::ReplaceIndex {
            collection: collection.into(),
            old: old.into(),
            index: index.clone(),
        }) {
            return Ok(IndexOutcome::Built { name: index.name() });
        }
        Ok(crate::schema::replace_index_with(self.db()?, collection, old, index, &self.build_options()).await?)
    }

    /// Drops an index at once: the rollback of a migration that built it.
    pub async fn drop_index(&self, collection: &str, name: &str) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::DropIndex {
            collection: collection.into(),
            name: name.into(),
        }) {
            return Ok(());
        }
        Ok(crate::schema::drop_index(self.db()?, collection, name).await?)
    }

    /// The rollback of [`ensure_index`](Self::ensure_index), in `down`:
    /// drops the index unless the migration's `up` found it already there
    /// (a first generated migration on an existing database adopts the
    /// indexes it declares), which it keeps. A migration applied before
    /// its record noted this drops it, as [`drop_index`](Self::drop_index).
    pub async fn drop_built_index(&self, collection: &str, name: &str) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::DropIndex {
            collection: collection.into(),
            name: name.into(),
        }) {
            return Ok(());
        }
        if let Some(c) = &self.checkpoints {
            if built_indexes::keeps(&noted_indexes(c).await?, collection, name) {
                tracing::info!(
                    collection,
                    index = name,
                    "kept the index: it was there before this migration's up"
                );
                return Ok(());
            }
        }
        self.drop_index(collection, name).await
    }

    /// Drops a hidden index (step two, in a post-deploy or later migration);
    /// refused for an index that is not hidden.
    pub async fn drop_hidden_index(&self, collection: &str, name: &str) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::DropIndex {
            collection: collection.into(),
            name: name.into(),
        }) {
            return Ok(());
        }
        Ok(crate::schema::drop_hidden_index(self.db()?, collection, name).await?)
    }

    /// Sets `schema` as the validator of `collection` with
    /// `validationAction: "warn"`: writes of the old shape go on (the server
    /// logs them) while the documents are fixed.
    pub async fn stage_validator(
        &self,
        collection: &str,
        schema: &bson::Document,
        level: ValidationLevel,
    ) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::StageValidator {
            collection: collection.into(),
            schema: schema.clone(),
            level,
        }) {
            return Ok(());
        }
        crate::schema::stage_validator(self.db()?, collection, schema, level).await?;
        // Counted now, one scan: `status` shows what the data migration and
        // the post-deploy enforcement face.
        let found = crate::schema::count_violators(self.db()?, collection, schema).await?;
        let all = {
            let mut all = self.violations.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|v| v.collection != collection);
            all.push(StagedViolations {
                collection: collection.to_string(),
                count: found.count,
                sample: found.sample.iter().map(ToString::to_string).collect(),
            });
            all.clone()
        };
        if found.count > 0 {
            tracing::warn!(
                collection,
                violators = found.count,
                "documents violate the staged validator: fix them before the post-deploy phase enforces it"
            );
        }
        self.record_violations(&all).await
    }

    /// Writes `all` into this run's tracking record, on its claim.
    async fn record_violations(&self, all: &[StagedViolations]) -> MigrationResult {
        let Some(c) = &self.checkpoints else {
            return Ok(());
        };
        let list: Vec<bson::Bson> = all
            .iter()
            .map(|v| {
                bson::Bson::Document(bson::doc! {
                    "collection": &v.collection,
                    "count": i64::try_from(v.count).unwrap_or(i64::MAX),
                    "sample": v.sample.clone(),
                })
            })
            .collect();
        if !c
            .update_claim("the violators", bson::doc! { "$set": { "violations": list } })
            .await?
        {
            return Err(LOCK_LOST.into());
        }
        Ok(())
    }

    /// How many documents of `collection` violate `schema`, and a few `_id`s.
    pub async fn count_violators(
        &self,
        collection: &str,
        schema: &bson::Document,
    ) -> Result<Violations, MigrationError> {
        // A read: allowed while `plan` inspects the migration.
        Ok(crate::schema::count_violators(&self.db, collection, schema).await?)
    }

    /// Enforces `schema` (`validationAction: "error"`): only in a
    /// post-deploy migration, and only when no document violates it;
    /// otherwise the migration fails with the count and a few `_id`s.
    ///
    /// A database several releases behind applies each release's
    /// migrations in turn: where a later migration, already applied, staged
    /// another validator of `collection` (there now, at `warn`), this older
    /// enforcement is skipped, with a log line: the newest is enforced by
    /// its own post-deploy migration, after the data fixes before it.
    pub async fn enforce_validator(
        &self,
        collection: &str,
        schema: &bson::Document,
        level: ValidationLevel,
    ) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::EnforceValidator {
            collection: collection.into(),
            schema: schema.clone(),
            forced: false,
        }) {
            return Ok(());
        }
        if let Some(later) = self.superseded_by(collection, schema).await? {
            tracing::info!(
                collection,
                by = later,
                "not enforcing this validator: a later migration, applied, staged a newer one"
            );
            return Ok(());
        }
        Ok(crate::schema::enforce_validator(self.db()?, collection, schema, level, self.phase).await?)
    }

    /// The later applied migration whose newer validator of `collection`
    /// supersedes `schema`, if any (see [`enforce_validator`](Self::enforce_validator)).
    async fn superseded_by(&self, collection: &str, schema: &bson::Document) -> Result<Option<u64>, MigrationError> {
        let Some(c) = &self.checkpoints else {
            return Ok(None);
        };
        let current = crate::schema::current_validator(self.db()?, collection).await?;
        if !crate::schema::staged_over(current.as_ref().map(|(v, a)| (v, a.as_str())), schema) {
            return Ok(None);
        }
        let version = i64::try_from(self.version.as_u64()).unwrap_or(i64::MAX);
        let later = c
            .retry
            .idempotent(
                || format!("reading the later migrations of {}", self.version),
                || async {
                    Ok(c.tracking
                        .find_one(bson::doc! {
                            "version": { "$gt": version },
                            "status": "completed",
                            "violations.collection": collection,
                        })
                        .sort(bson::doc! { "version": -1 })
                        .await?)
                },
            )
            .await?;
        Ok(later.and_then(|r| r.get_i64("version").ok()).map(|v| v as u64))
    }

    /// Enforces `schema` in a post-deploy migration with the documents that
    /// violate it left as they are; returns how many there were.
    pub async fn force_validator(
        &self,
        collection: &str,
        schema: &bson::Document,
        level: ValidationLevel,
    ) -> Result<Violations, MigrationError> {
        if self.recorded(|| crate::operation::Operation::EnforceValidator {
            collection: collection.into(),
            schema: schema.clone(),
            forced: true,
        }) {
            return Ok(Violations::default());
        }
        Ok(crate::schema::force_validator(self.db()?, collection, schema, level, self.phase).await?)
    }

    /// Puts back the validator a migration replaced (`None`: there was
    /// none), enforced: the rollback of a [`stage_validator`](Self::stage_validator).
    pub async fn restore_validator(
        &self,
        collection: &str,
        schema: Option<&bson::Document>,
        level: ValidationLevel,
    ) -> MigrationResult {
        if self.recorded(|| crate::operation::Operation::RestoreValidator {
            collection: collection.into(),
        }) {
            return Ok(());
        }
        Ok(crate::schema::restore_validator(self.db()?, collection, schema, level).await?)
    }

    pub(crate) fn into_session(self) -> Option<ClientSession> {
        self.session
    }
}

impl fmt::Debug for MigrationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationContext")
            .field("database", &self.db.name())
            .field("transactional", &self.session.is_some())
            .field("version", &self.version)
            .finish()
    }
}
