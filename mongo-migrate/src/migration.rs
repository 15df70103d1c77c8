//! A migration and the context its `up`/`down` run with.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bson::Document;
use mongodb::{ClientSession, Database};

use crate::batch::{Batches, Checkpoints};
use crate::lock::LockHandle;
use crate::{MigrationError, Version};

/// A boxed, sendable future, the shape every migration step returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `up` and `down` return.
pub type MigrationResult = Result<(), MigrationError>;

/// One direction of a migration: `|ctx| Box::pin(my_migration::up(ctx))`.
pub type MigrationFn = for<'a> fn(&'a mut MigrationContext) -> BoxFuture<'a, MigrationResult>;

/// A versioned migration: an `up`, an optional `down` (absent means irreversible),
/// and the metadata the tracking collection records.
#[derive(Clone)]
pub struct Migration {
    pub(crate) version: Version,
    pub(crate) name: Cow<'static, str>,
    pub(crate) description: Cow<'static, str>,
    pub(crate) checksum: Cow<'static, str>,
    pub(crate) transactional: bool,
    pub(crate) up: MigrationFn,
    pub(crate) down: Option<MigrationFn>,
    pub(crate) replaces: &'static [u64],
    pub(crate) phase: Phase,
    /// Its `up` and its `down` walk in batches (see [`Migration::walks`]).
    pub(crate) walks: [bool; 2],
}

/// When a migration runs in a rolling deploy, where old and new code run
/// side by side (expand/contract): before the new code is deployed, or after
/// the old code is gone. A module declares `pub const PHASE: Phase`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Before the deploy: changes the old code tolerates (add a field, backfill it).
    #[default]
    PreDeploy,
    /// After the deploy: changes only the new code tolerates (drop the old field).
    PostDeploy,
}

impl Phase {
    /// `pre-deploy` or `post-deploy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreDeploy => "pre-deploy",
            Phase::PostDeploy => "post-deploy",
        }
    }

    /// `pre`/`pre-deploy` or `post`/`post-deploy`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pre" | "pre-deploy" => Some(Phase::PreDeploy),
            "post" | "post-deploy" => Some(Phase::PostDeploy),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Migration {
    /// A migration with only an `up`; add the rest with the builder methods.
    pub fn new(version: Version, name: impl Into<String>, up: MigrationFn) -> Self {
        Migration {
            version,
            name: Cow::Owned(name.into()),
            description: Cow::Borrowed(""),
            checksum: Cow::Borrowed(""),
            transactional: false,
            up,
            down: None,
            replaces: &[],
            phase: Phase::PreDeploy,
            walks: [false; 2],
        }
    }

    /// A migration from literals, for generated registries: a `static`
    /// table of these costs the compiler far less than builder chains.
    /// [`Registry::new`](crate::Registry::new) checks the versions.
    pub const fn from_static(
        version: Version,
        name: &'static str,
        description: &'static str,
        checksum: &'static str,
        transactional: bool,
        up: MigrationFn,
        down: Option<MigrationFn>,
    ) -> Self {
        Migration {
            version,
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            checksum: Cow::Borrowed(checksum),
            transactional,
            up,
            down,
            replaces: &[],
            phase: Phase::PreDeploy,
            walks: [false; 2],
        }
    }

    /// Makes it the squash of these older versions (its module's
    /// `pub const REPLACES: &[u64]`): where they are all applied, `up`
    /// records it as applied without running it; where none is, it runs.
    pub const fn replacing(mut self, versions: &'static [u64]) -> Self {
        self.replaces = versions;
        self
    }

    /// Declares that its `up` and/or its `down` walk a collection in
    /// batches ([`MigrationContext::batches`]). A run of such a direction
    /// that stops at any moment, even before the walk's first checkpoint,
    /// is resumed by the next `up` or `down` instead of blocking until a
    /// `resolve`: the body runs again from its start, and its walks go on
    /// from their checkpoints. Everything such a body does besides its walks
    /// must therefore be safe to repeat. The code generator sets it for each
    /// direction whose function (or a function of the same file it calls)
    /// calls `.batches(`.
    pub const fn walks(mut self, up: bool, down: bool) -> Self {
        self.walks = [up, down];
        self
    }

    /// Whether its run in `direction` walks in batches (see [`Migration::walks`]).
    pub fn walks_in(&self, direction: crate::Direction) -> bool {
        match direction {
            crate::Direction::Up => self.walks[0],
            crate::Direction::Down => self.walks[1],
        }
    }

    /// Makes the migration reversible.
    pub fn with_down(mut self, down: MigrationFn) -> Self {
        self.down = Some(down);
        self
    }

    /// A human description (the migration module's doc comment).
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Cow::Owned(description.into());
        self
    }

    /// The checksum of the migration's source; an applied migration whose
    /// checksum changes is refused.
    pub fn with_checksum(mut self, checksum: impl Into<String>) -> Self {
        self.checksum = Cow::Owned(checksum.into());
        self
    }

    /// Runs `up` and `down` inside a MongoDB transaction together with the tracking write.
    pub fn with_transaction(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Runs it in `phase` (its module's `pub const PHASE: Phase`).
    pub const fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// When it runs in a rolling deploy.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The versions it squashes (see [`Migration::replacing`]).
    pub fn replaces(&self) -> impl Iterator<Item = Version> + '_ {
        self.replaces.iter().map(|&v| Version::new_unchecked(v))
    }

    /// Its version (`YYYYMMDDHHMMSS`).
    pub fn version(&self) -> Version {
        self.version
    }

    /// Its snake_case name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description (the file's `//!` comment).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The checksum of its code (empty for hand-written registries).
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// Whether it has a `down`.
    pub fn is_reversible(&self) -> bool {
        self.down.is_some()
    }

    /// Whether it runs in a transaction.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("name", &self.name)
            .field("description", &self.description)
            .field("checksum", &self.checksum)
            .field("transactional", &self.transactional)
            .field("reversible", &self.is_reversible())
            .field("walks", &self.walks)
            .finish()
    }
}

/// What a migration's `up`/`down` gets: the database, and for transactional
/// migrations the session whose transaction the tracking write commits in.
pub struct MigrationContext {
    db: Database,
    session: Option<ClientSession>,
    version: Version,
    name: String,
    lock: LockHandle,
    /// Where batches record their progress (none in a transaction).
    checkpoints: Option<Checkpoints>,
    /// How many walks this run of the migration has started.
    walks: std::sync::atomic::AtomicUsize,
}

impl MigrationContext {
    pub(crate) fn new(db: Database, session: Option<ClientSession>, migration: &Migration, lock: LockHandle) -> Self {
        MigrationContext {
            db,
            session,
            version: migration.version,
            name: migration.name.to_string(),
            lock,
            checkpoints: None,
            walks: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// With checkpoints for [`MigrationContext::batches`].
    pub(crate) fn with_checkpoints(mut self, checkpoints: Checkpoints) -> Self {
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
    /// # use mongo_migrate::prelude::*;
    /// use mongo_migrate::bson::Bson;
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
        self.lock.is_lost()
    }

    /// Completes when this run loses its lock. Race it against the work
    /// with `tokio::select!` to stop a long migration early:
    ///
    /// ```no_run
    /// # use mongo_migrate::prelude::*;
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
        self.lock.lost().await
    }

    /// Proves that this run still holds its lock, before work the run's
    /// records cannot fence: the next chunk of a long body, or each write of
    /// a batch closure that makes more than one. Free while the lock's lease
    /// is fresh and the process was not paused since the last proof;
    /// otherwise one round trip. An error once the lock is lost: return it.
    /// (A walk already proves the lock before it hands over each batch.)
    ///
    /// ```no_run
    /// # use mongo_migrate::prelude::*;
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
        self.lock.ensure_lease().await.map_err(|e| {
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
