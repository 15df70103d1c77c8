//! Commands that run no migration code (`status`, `history`, `lock-status`,
//! `force-unlock`, `resolve`, `forget`) run here, in the CLI, against a
//! registry of the migrations' metadata parsed from their files: no build of
//! the user's crate, so they work in seconds on a fresh checkout and while a
//! migration does not compile. The runtime's own logic decides, as in the
//! harness.

use std::path::Path;

use anyhow::{Context as _, Result};
use mongo_migrate::harness::{self, ErrorReply, Request};
use mongo_migrate::{BoxFuture, Migration, MigrationContext, MigrationResult, Migrator, Registry, Version};

use crate::workspace::Target;

/// The registry function the generators write; a package that names
/// another one wrote its own registry, which only a build can read.
const GENERATED_REGISTRY_FN: &str = "migrations::registry";

/// Whether `request` can be served without building `target`.
pub fn serves(target: &Target, request: &Request) -> bool {
    request.command.reads_metadata_only()
        && target.config.registry_fn == GENERATED_REGISTRY_FN
        && target.migrations_dir().is_dir()
}

/// Never called: a metadata registry only describes migrations.
fn not_run(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Err("metadata only: migrations run in the harness".into()) })
}

/// The registry as the generated one lists it, from the files (through the
/// parse cache at `cache`).
fn registry(target: &Target, cache: &Path) -> Result<Registry> {
    let files = mongo_migrate_codegen::scan_cached(&target.migrations_dir(), cache)
        .map_err(|e| crate::exit::Failure::new(crate::exit::Code::Usage, e.to_string()).hint("fix the file"))?;
    let migrations = files
        .into_iter()
        .map(|f| {
            let version = Version::parse(&f.version)?;
            let mut m = Migration::new(version, f.name, not_run)
                .with_description(f.description)
                .with_checksum(f.checksum)
                .with_transaction(f.has_transactional);
            if f.has_down {
                m = m.with_down(not_run);
            }
            Ok(m)
        })
        .collect::<Result<Vec<_>, mongo_migrate::Error>>()?;
    Ok(Registry::new(migrations)?)
}

/// Runs `request` here; the answer as the harness would give it.
pub fn run(target: &Target, cache: &Path, request: &Request, verbose: bool) -> Result<serde_json::Value> {
    let registry = registry(target, cache)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let c = &request.connection;
    let result = runtime.block_on(async {
        let migrator = Migrator::connect(&c.uri, c.database.as_deref(), registry, harness::config(c)).await?;
        harness::execute(&migrator, request.command.clone()).await
    });
    result.map_err(|e| crate::harness::failure(ErrorReply::from(&e), verbose).into())
}
