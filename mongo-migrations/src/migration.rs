//! A migration: its version, metadata, phase and `up`/`down` functions.
//! The context they run with is `context.rs`.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::{MigrationContext, MigrationResult, Phase, Version};

/// A boxed, sendable future, the shape every migration step returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One direction of a migration: `|ctx| Box::pin(my_migration::up(ctx))`.
pub type MigrationFn = for<'a> fn(&'a mut MigrationContext) -> BoxFuture<'a, MigrationResult>;

/// A migration's own `plan` (its module's `pub async fn plan(ctx: &mut PlanContext)`):
/// what it would do, said by the migration, for `cargo mongo-migrate plan`.
pub type PlanFn = for<'a> fn(&'a mut crate::PlanContext) -> BoxFuture<'a, MigrationResult>;

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
    pub(crate) replaces: Cow<'static, [u64]>,
    pub(crate) phase: Phase,
    /// Its `up` and its `down` walk in batches (see [`Migration::walks`]).
    pub(crate) walks: [bool; 2],
    /// Later migrations do not depend on it (see [`Migration::independent`]).
    pub(crate) independent: bool,
    /// The actions it needs beyond reads and writes (see [`Migration::needs`]).
    pub(crate) needs: &'static [&'static str],
    /// Its own `plan`, in place of inspecting its `up`.
    pub(crate) plan: Option<PlanFn>,
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
            replaces: Cow::Borrowed(&[]),
            phase: Phase::PreDeploy,
            walks: [false; 2],
            independent: false,
            needs: &[],
            plan: None,
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
            replaces: Cow::Borrowed(&[]),
            phase: Phase::PreDeploy,
            walks: [false; 2],
            independent: false,
            needs: &[],
            plan: None,
        }
    }

    /// Makes it the squash of these older versions (its module's
    /// `pub const REPLACES: &[u64]`): where they are all applied, `up`
    /// records it as applied without running it; where none is, it runs.
    pub const fn replacing(mut self, versions: &'static [u64]) -> Self {
        // A `const fn` cannot run the old value's destructor; a borrowed
        // list (as every generated registry has) has nothing to drop.
        let old = std::mem::replace(&mut self.replaces, Cow::Borrowed(versions));
        std::mem::forget(old);
        self
    }

    /// [`Migration::replacing`] with a list built at run time.
    pub fn replacing_owned(mut self, versions: Vec<u64>) -> Self {
        self.replaces = Cow::Owned(versions);
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

    /// Declares that later migrations do not depend on it (its module's
    /// `pub const INDEPENDENT: bool = true;`): a run with
    /// [`UpOptions::continue_on_error`](crate::UpOptions::continue_on_error)
    /// goes on past its failure. Without it, a failure stops the run, with
    /// the option or not: that is the safe default, since a migration's
    /// successors usually build on what it did.
    pub const fn independent(mut self, independent: bool) -> Self {
        self.independent = independent;
        self
    }

    /// The actions it needs on the database beyond reads and writes, such
    /// as `collMod` (outside the `readWrite` role): a run checks, before it
    /// writes anything, that its user may do all of them. The code
    /// generator sets them from the schema operations the module calls.
    pub const fn needs(mut self, actions: &'static [&'static str]) -> Self {
        self.needs = actions;
        self
    }

    /// With its own `plan`: `cargo mongo-migrate plan` asks it what it
    /// would do instead of inspecting its `up` (for code `plan` cannot
    /// follow, such as a migration that uses the database directly). The
    /// code generator sets it from the module's `pub async fn plan`.
    pub const fn planned(mut self, plan: PlanFn) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Whether later migrations do not depend on it (see [`Migration::independent`]).
    pub fn is_independent(&self) -> bool {
        self.independent
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
