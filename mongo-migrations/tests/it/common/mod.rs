//! Shared helpers for the integration tests. They run against the server in
//! `MONGODB_URI` (see `scripts/test-server`) and fail when it is missing.
#![allow(dead_code)]

pub mod child;
pub mod proxy;

use std::time::Duration;

use futures_util::TryStreamExt;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::mongodb::{Client, Database};
use mongo_migrations::{BoxFuture, Config, Migration, MigrationContext, MigrationResult, Migrator, Registry, Version};

pub fn uri() -> String {
    std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: start a test server with `scripts/test-server run cargo test --workspace`")
}

/// A fresh, uniquely named database; dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub client: Client,
    pub name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("mm_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (client, _) = mongo_migrations::connect(&uri(), Some(&name))
            .await
            .expect("connect to MONGODB_URI");
        TestDb { client, name }
    }

    pub fn db(&self) -> Database {
        self.client.database(&self.name)
    }

    pub fn migrator(&self, migrations: Vec<Migration>) -> Migrator {
        self.migrator_with(migrations, Config::default())
    }

    pub fn migrator_with(&self, migrations: Vec<Migration>, config: Config) -> Migrator {
        Migrator::new(
            self.client.clone(),
            &self.name,
            Registry::new(migrations).unwrap(),
            config,
        )
    }

    /// A migrator on its own connection pool, as another process would have.
    pub async fn other_runner(&self, migrations: Vec<Migration>, config: Config) -> Migrator {
        Migrator::connect(&uri(), Some(&self.name), Registry::new(migrations).unwrap(), config)
            .await
            .unwrap()
    }

    pub async fn docs(&self, coll: &str) -> Vec<Document> {
        self.db()
            .collection::<Document>(coll)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Every collection and every document in it, to compare before and after.
    pub async fn snapshot(&self) -> Vec<(String, Vec<Document>)> {
        let mut names = self.db().list_collection_names().await.unwrap();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let docs = self.docs(&name).await;
            out.push((name, docs));
        }
        out
    }

    pub async fn tracking(&self, version: &str) -> Option<Document> {
        self.db()
            .collection::<Document>("migrations")
            .find_one(doc! { "version": v(version).as_u64() as i64 })
            .await
            .unwrap()
    }

    /// Waits until the record of `version` is `running` (a child runner
    /// started it), polling every `poll`; fails after `within`.
    pub async fn wait_running(&self, version: &str, within: Duration, poll: Duration) {
        let deadline = std::time::Instant::now() + within;
        while self
            .tracking(version)
            .await
            .is_none_or(|r| r.get_str("status") != Ok("running"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never started {version}"
            );
            tokio::time::sleep(poll).await;
        }
    }

    /// A lock document of another runner (`host`) that expires in `expires_in_ms`
    /// (negative: already expired).
    pub async fn foreign_lock(&self, host: &str, generation: i64, expires_in_ms: i64) {
        // Its expiry by the server's clock, which judges it (`$$NOW` in
        // `$add` is right on every server, SecantusDB included).
        let set = doc! { "$set": {
            "holder": { "$literal": { "id": uuid::Uuid::new_v4().to_string(), "host": host, "pid": 4242_i64, "reason": "up" } },
            "generation": generation,
            "expiresAt": { "$add": [ "$$NOW", expires_in_ms ] },
        } };
        self.db()
            .collection::<Document>("migration_locks")
            .update_one(doc! { "_id": "migrations" }, vec![set])
            .upsert(true)
            .await
            .unwrap();
    }

    pub async fn drop_db(self) {
        self.db().drop().await.unwrap();
    }
}

/// The runtime of a child runner process.
pub fn child_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

/// `up` that records its application in `effects` (unique `_id` = version,
/// so a second application fails) and in `applications` (one document per run).
pub fn record_up(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let version = ctx.version().as_u64() as i64;
        let db = ctx.db()?;
        db.collection::<Document>("applications")
            .insert_one(doc! { "version": version })
            .await?;
        db.collection::<Document>("effects")
            .insert_one(doc! { "_id": version })
            .await?;
        Ok(())
    })
}

pub fn record_down(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let version = ctx.version().as_u64() as i64;
        ctx.db()?
            .collection::<Document>("effects")
            .delete_one(doc! { "_id": version })
            .await?;
        Ok(())
    })
}

pub fn failing(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Err("the index spec is invalid".into()) })
}

/// A reversible migration that records its effect.
pub fn reversible(version: &str, name: &str) -> Migration {
    Migration::new(v(version), name, record_up)
        .with_down(record_down)
        .with_description(format!("{name} description"))
        .with_checksum(format!("sha256:{name}"))
}

pub fn irreversible(version: &str, name: &str) -> Migration {
    Migration::new(v(version), name, record_up).with_checksum(format!("sha256:{name}"))
}

pub fn three() -> Vec<Migration> {
    vec![
        reversible("20260101000000", "first"),
        reversible("20260102000000", "second"),
        reversible("20260103000000", "third"),
    ]
}

pub fn short_lock(ttl_ms: u64) -> Config {
    Config {
        lock_ttl: Duration::from_millis(ttl_ms),
        ..Config::default()
    }
}
