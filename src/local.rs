//! Commands that run no migration code (`status`, `history`, `lock-status`,
//! `force-unlock`, `resolve`, `forget`, dry-runs) run here, in the CLI,
//! against a registry of the migrations' metadata parsed from their files:
//! no build of the user's crate, so they work in seconds on a fresh checkout
//! and while a migration does not compile. The runtime's own logic decides,
//! as in the harness. An `up` with nothing to do ends here too.

use std::path::Path;

use anyhow::{Context as _, Result};
use mongo_migrations::harness::{self, Answer, Request};
use mongo_migrations::{BoxFuture, Migration, MigrationContext, MigrationResult, Migrator, Phase, Registry, Version};
use mongo_migrations_codegen::MigrationFile;

use crate::workspace::Target;

/// The registry function the generators write; a package that names
/// another one wrote its own registry, which only a build can read.
const GENERATED_REGISTRY_FN: &str = "migrations::registry";

/// Whether `target`'s registry can be read from its files.
fn has_generated_registry(target: &Target) -> bool {
    target.config.registry_fn == GENERATED_REGISTRY_FN && target.migrations_dir().is_dir()
}

/// Whether the commands that only read metadata read `target`'s files
/// (its registry is the generated one) rather than a build.
pub fn reads_files(target: &Target) -> bool {
    has_generated_registry(target)
}

/// Whether `request` can be served without building `target`.
pub fn serves(target: &Target, request: &Request) -> bool {
    request.command.reads_metadata_only() && has_generated_registry(target)
}

/// Never called: a metadata registry only describes migrations.
fn not_run(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Err("metadata only: migrations run in the harness".into()) })
}

/// Whether `command` answers even when a migration file does not parse:
/// the pure reads, which an operator needs most when something is broken.
pub fn tolerates_broken_files(command: &harness::Command) -> bool {
    matches!(
        command,
        harness::Command::Status | harness::Command::History(_) | harness::Command::LockStatus
    )
}

/// The registry as the generated one lists it, from the files (through the
/// parse cache at `cache`). For a command that [`tolerates_broken_files`],
/// a file that does not parse stands in the registry by its file name
/// (version and name), with a warning, instead of stopping the command.
fn registry(target: &Target, cache: &Path, command: &harness::Command) -> Result<Registry> {
    let dir = target.migrations_dir();
    let refuse = |e: mongo_migrations_codegen::Error| {
        crate::exit::Failure::new(crate::exit::Code::Usage, e.to_string()).hint("fix the file")
    };
    if !tolerates_broken_files(command) {
        let files = mongo_migrations_codegen::scan_cached(&dir, cache).map_err(refuse)?;
        return Ok(metadata_registry(files)?);
    }
    let (files, errors) = mongo_migrations_codegen::scan_all(&dir).map_err(refuse)?;
    let mut migrations = metadata_migrations(files)?;
    for e in errors {
        let mongo_migrations_codegen::Error::Syntax { path, .. } = &e else {
            return Err(refuse(e).into());
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok((version, name)) = mongo_migrations_codegen::names::parse_module_name(&stem) else {
            return Err(refuse(e).into());
        };
        let shown = match &e {
            mongo_migrations_codegen::Error::Syntax {
                path,
                line,
                column,
                message,
            } => format!("{}:{line}:{column}: {message}", crate::workspace::display(path)),
            other => other.to_string(),
        };
        eprintln!("warning: {shown}; it is listed by its file name");
        migrations.push(
            Migration::new(Version::parse(&version)?, name, not_run).with_description(format!("does not parse: {e}")),
        );
    }
    migrations.sort_by_key(|m| m.version());
    Ok(Registry::new(migrations)?)
}

/// A registry of the migrations' metadata, checked as the generated one is.
pub fn metadata_registry(files: Vec<MigrationFile>) -> Result<Registry, mongo_migrations::Error> {
    Registry::new(metadata_migrations(files)?)
}

/// The migrations of `files`, as metadata.
fn metadata_migrations(files: Vec<MigrationFile>) -> Result<Vec<Migration>, mongo_migrations::Error> {
    files
        .into_iter()
        .map(|f| {
            let version = Version::parse(&f.version)?;
            let mut m = Migration::new(version, f.name, not_run)
                .with_description(f.description)
                .with_checksum(f.checksum)
                .with_transaction(f.transactional)
                .replacing_owned(f.replaces)
                .in_phase(match f.phase.as_deref() {
                    Some("post-deploy") => Phase::PostDeploy,
                    _ => Phase::PreDeploy,
                });
            if f.has_down {
                m = m.with_down(not_run);
            }
            Ok(m)
        })
        .collect()
}

/// Runs `request` here; the answer as the harness would give it.
pub fn run(target: &Target, cache: &Path, request: &Request, verbose: bool) -> Result<Answer> {
    let command = request.command.clone();
    let result = with_migrator(target, cache, request, async |m| harness::execute(m, command).await)?;
    result.map_err(|e| crate::exit::Failure::from_error(&e, verbose).into())
}

/// What the check before a build found.
pub enum Settled {
    /// `up` would apply nothing: its answer.
    Answered(Answer),
    /// `up` has work (or must wait for a runner): the harness runs it,
    /// starting from what the check read, if it read anything.
    Work(Option<mongo_migrations::StateRead>),
}

/// An `up` that would apply nothing, answered without a build by the
/// runtime's own planner ([`Migrator::up_settled`]). When it has work to do,
/// or another runner holds the lock (the harness then waits or refuses, as
/// asked), what it read goes on to the harness.
pub fn nothing_to_do(target: &Target, cache: &Path, request: &Request, verbose: bool) -> Result<Settled> {
    let harness::Command::Up(options) = &request.command else {
        return Ok(Settled::Work(None));
    };
    if options.dry_run || !has_generated_registry(target) {
        return Ok(Settled::Work(None));
    }
    let options = *options;
    let result = with_migrator(target, cache, request, async |m| {
        let settled = m.up_settled(options).await?;
        Ok((settled, m.state_read()))
    })?;
    match result {
        Ok((Some(report), _)) => Ok(Settled::Answered(Answer::Run(report))),
        Ok((None, state)) => Ok(Settled::Work(state)),
        Err(e) => Err(crate::exit::Failure::from_error(&e, verbose).into()),
    }
}

/// Connects a migrator over the metadata registry of `target`, as the
/// request's connection says, and runs `f` with it.
fn with_migrator<T>(
    target: &Target,
    cache: &Path,
    request: &Request,
    f: impl AsyncFnOnce(&Migrator) -> Result<T, mongo_migrations::Error>,
) -> Result<Result<T, mongo_migrations::Error>> {
    let registry = registry(target, cache, &request.command)?;
    let c = &request.connection;
    block_on(async {
        let migrator = Migrator::connect(&c.uri, c.database.as_deref(), registry, c.config.clone()).await?;
        let result = f(&migrator).await;
        // Before the runtime ends, or the driver may panic as it drops.
        migrator.shutdown().await;
        result
    })
}

/// Runs `f` to completion on a runtime of its own.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(runtime.block_on(f))
}
