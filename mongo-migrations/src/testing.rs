//! What `#[mongo_migrations::test]` runs: a fresh, uniquely named database
//! on `MONGODB_URI` with the crate's migrations applied, handed to the test
//! and dropped when it ends, passed or panicked. Feature `macros`.
//!
//! Testing one migration: apply everything before it, seed, apply it,
//! assert, roll it back, assert again.
//!
//! ```ignore
//! #[mongo_migrations::test(before = "20260102000000")]
//! async fn seed_admin_adds_one_admin(db: TestDatabase) {
//!     let users = db.database().collection::<bson::Document>("users");
//!     users.insert_one(doc! { "email": "a@example.com" }).await.unwrap();
//!     db.up_to("20260102000000").await;
//!     assert_eq!(users.count_documents(doc! { "role": "admin" }).await.unwrap(), 1);
//!     db.down(1).await;
//!     assert_eq!(users.count_documents(doc! { "role": "admin" }).await.unwrap(), 0);
//! }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use mongodb::Database;

use crate::{DownOptions, DownTarget, Error, Migrator, Package, Registry, RunReport, UpOptions, Version};

/// Set (to anything but `0` or empty) to keep each test's database, for debugging.
pub const KEEP_VAR: &str = "MONGO_MIGRATIONS_KEEP_TEST_DB";

/// Which migrations run before the test body.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Apply {
    /// Every migration.
    All,
    /// Up to and including this version.
    To(&'static str),
    /// Every migration older than this version: the state it starts from.
    Before(&'static str),
    /// None.
    Nothing,
}

/// A test's own database, with a migrator over the crate's migrations.
#[derive(Clone)]
pub struct TestDatabase {
    migrator: Migrator,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("name", &self.name()).finish()
    }
}

impl TestDatabase {
    /// The database, to seed and to assert on.
    pub fn database(&self) -> &Database {
        self.migrator.database()
    }

    /// Its name: unique per test run.
    pub fn name(&self) -> &str {
        self.migrator.database().name()
    }

    /// The migrator, for anything the helpers below do not cover.
    pub fn migrator(&self) -> &Migrator {
        &self.migrator
    }

    /// Applies every pending migration; panics if one fails.
    pub async fn up(&self) -> RunReport {
        self.apply(UpOptions::default()).await
    }

    /// Applies the pending migrations up to and including `version`.
    pub async fn up_to(&self, version: &str) -> RunReport {
        self.apply(UpOptions {
            to: Some(parse(version)),
            ..UpOptions::default()
        })
        .await
    }

    /// Rolls back the last `steps` applied migrations.
    pub async fn down(&self, steps: usize) -> RunReport {
        let options = DownOptions {
            target: DownTarget::Steps(steps),
            dry_run: false,
        };
        match self.migrator.down(options).await {
            Ok(report) => report,
            Err(e) => panic!("rolling back {steps} migrations in `{}` failed: {e}", self.name()),
        }
    }

    async fn apply(&self, options: UpOptions) -> RunReport {
        match self.migrator.up(options).await {
            Ok(report) => report,
            Err(e) => panic!("applying the migrations in `{}` failed: {e}", self.name()),
        }
    }
}

/// Refuses a `to` or `before` version no migration has: a typo would
/// otherwise test another state (every older migration applied) in silence.
fn known(registry: &Registry, apply: Apply) -> Result<(), String> {
    let (Apply::To(v) | Apply::Before(v)) = apply else {
        return Ok(());
    };
    let version = Version::parse(v).map_err(|e| e.to_string())?;
    match registry.get(version) {
        Some(_) => Ok(()),
        None => Err(format!(
            "no migration has version {v}: name one of the registry's (the migration files' names give them)"
        )),
    }
}

fn parse(version: &str) -> Version {
    Version::parse(version).unwrap_or_else(|e| panic!("#[mongo_migrations::test]: {e}"))
}

/// Runs one test: see the module. `test` is its path, for the database's name.
#[doc(hidden)]
pub fn run<F, Fut, T>(
    test: &str,
    registry: fn() -> Result<Registry, Error>,
    package: Result<Package, String>,
    apply: Apply,
    body: F,
) -> T
where
    F: FnOnce(TestDatabase) -> Fut,
    Fut: Future<Output = T>,
{
    let package = package.unwrap_or_else(|e| panic!("#[mongo_migrations::test]: {e}"));
    let settings = &package.settings;
    let uri = std::env::var(&settings.uri_env).ok().filter(|u| !u.is_empty());
    let Some(uri) = uri else {
        panic!(
            "#[mongo_migrations::test] needs a MongoDB server: set {} (e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0; a replica set when migrations use transactions)",
            settings.uri_env
        );
    };
    let registry = registry().unwrap_or_else(|e| panic!("#[mongo_migrations::test]: the registry: {e}"));
    if let Err(e) = known(&registry, apply) {
        panic!("#[mongo_migrations::test]: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    runtime.block_on(async move {
        let name = database_name(test);
        let transactional = registry.migrations().iter().any(|m| m.is_transactional());
        let migrator = Migrator::connect(&uri, Some(&name), registry, settings.runtime(10))
            .await
            .unwrap_or_else(|e| panic!("#[mongo_migrations::test]: cannot connect to {}: {e}", settings.uri_env));
        if transactional && !crate::supports_transactions(migrator.client()).await.unwrap_or(false) {
            panic!(
                "#[mongo_migrations::test]: the server at {} does not support transactions, and some migrations run in one: use a replica set (a one-member one will do: mongod --replSet rs0, then rs.initiate())",
                settings.uri_env
            );
        }
        let db = TestDatabase { migrator };
        let outcome = AssertUnwindSafe(async {
            match apply {
                Apply::All => {
                    db.up().await;
                }
                Apply::To(v) => {
                    db.up_to(v).await;
                }
                Apply::Before(v) => {
                    let before = parse(v);
                    let older = db.migrator.registry().migrations().iter().map(|m| m.version()).filter(|m| *m < before).max();
                    if let Some(older) = older {
                        db.up_to(&older.to_string()).await;
                    }
                }
                Apply::Nothing => {}
            }
            body(db.clone()).await
        })
        .catch_unwind()
        .await;
        let keep = std::env::var(KEEP_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
        if keep {
            eprintln!("kept the test database `{}` ({KEEP_VAR} is set)", db.name());
        } else if let Err(e) = db.database().drop().await {
            eprintln!("could not drop the test database `{}`: {e}", db.name());
        }
        db.migrator.shutdown().await;
        match outcome {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// `t_<test>_<random>`: unique, and within MongoDB's 63 bytes and its
/// characters (letters, digits, `_`).
fn database_name(test: &str) -> String {
    let short: String = test
        .rsplit("::")
        .next()
        .unwrap_or(test)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("t_{short}_{}", &unique[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_valid() {
        let long = format!("app::tests::{}", "x".repeat(100));
        let a = database_name(&long);
        assert!(a.len() <= 63, "{a}");
        assert!(crate::check_database_name(&a).is_ok(), "{a}");
        assert_ne!(database_name("m::t"), database_name("m::t"));
        assert!(database_name("m::seeds-admin").starts_with("t_seeds_admin_"));
    }
}

#[cfg(test)]
mod known_tests {
    use super::{known, Apply};
    use crate::{Migration, Registry, Version};

    fn noop(_: &mut crate::MigrationContext) -> crate::BoxFuture<'_, crate::MigrationResult> {
        Box::pin(async { Ok(()) })
    }

    #[test]
    fn a_version_the_registry_lacks_is_refused() {
        let v = Version::parse("20260101000000").unwrap();
        let registry = Registry::new(vec![Migration::new(v, "first", noop)]).unwrap();
        assert!(known(&registry, Apply::Before("20260101000000")).is_ok());
        assert!(known(&registry, Apply::All).is_ok());
        assert_eq!(
            known(&registry, Apply::Before("20260101000001")).unwrap_err(),
            "no migration has version 20260101000001: name one of the registry's (the migration files' names give them)"
        );
        assert!(known(&registry, Apply::To("2026")).is_err());
    }
}
