//! The entry point of the harness binary that `cargo mongo-migrate` builds
//! for a crate. It reads one JSON request on stdin and answers in JSON lines
//! on stdout: progress events, then one result or error. The protocol is
//! internal to the CLI and this crate, which are released together.
//!
//! - `protocol.rs`: the request, the replies, the typed answer;
//! - `hints.rs`: what to do next about each error;
//! - `signals.rs`: Ctrl-C and SIGTERM.

mod hints;
mod protocol;
mod signals;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

pub use hints::hint;
pub use protocol::{Answer, Command, Connection, ErrorReply, Reply, Request};
pub use signals::ABORTED;
use signals::{stop_on_signal, Signals};

pub use crate::error::ErrorKind;
use crate::{Error, Migrator, Progress, Registry, StopHandle};

/// `main` of a generated harness: `mongo_migrations::harness::main(my_crate::migrations::registry)`.
pub fn main(registry: fn() -> Result<Registry, Error>) -> ExitCode {
    main_inner(registry, None)
}

/// `main` of a generated harness for a crate that declares its collections
/// (`schema-fn`): `main_with_schema(my_crate::migrations::registry, my_crate::schema::collections)`.
pub fn main_with_schema(
    registry: fn() -> Result<Registry, Error>,
    collections: fn() -> Vec<crate::schema::Collection>,
) -> ExitCode {
    main_inner(registry, Some(collections))
}

fn main_inner(
    registry: fn() -> Result<Registry, Error>,
    collections: Option<fn() -> Vec<crate::schema::Collection>>,
) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(serve(registry, collections));
    let ok = result.is_ok();
    let reply = match result {
        Ok(answer) => Reply::Result(Box::new(answer)),
        Err(e) => Reply::Error(ErrorReply::from(&e)),
    };
    emit(&reply);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes one reply line; `false` when the pipe is closed: the CLI is gone.
fn emit(reply: &Reply) -> bool {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, reply).is_ok() && writeln!(out).is_ok() && out.flush().is_ok()
}

async fn serve(
    registry: fn() -> Result<Registry, Error>,
    collections: Option<fn() -> Vec<crate::schema::Collection>>,
) -> Result<Answer, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Harness(format!("reading the request: {e}")))?;
    let request: Request =
        serde_json::from_str(&line).map_err(|e| Error::Harness(format!("malformed request: {e}")))?;
    let mut registry = registry()?;
    // Only `schema` and `drift` read the declared collections: an `up` does
    // not build their schemas.
    if let Some(collections) = collections.filter(|_| request.command.reads_schema()) {
        registry = registry.with_collections(collections());
    }
    if request.command == Command::Schema {
        // Read off the types: no server is needed.
        return Ok(schema(&registry));
    }
    run(request, registry, |p, stop| {
        // The CLI was killed (a cancelled CI job, a closed terminal): with
        // nobody left to report to, stop after the migration in progress.
        if !emit(&Reply::Progress(p.clone())) {
            stop.stop();
        }
    })
    .await
}

/// Runs `request` over `registry` in this process, as the harness does for
/// the CLI and a migration binary for itself: connects, hands each progress
/// event to `progress` (with the run's stop handle), stops after the
/// migration in progress on Ctrl-C or SIGTERM, and closes the connections.
pub async fn run(
    request: Request,
    registry: Registry,
    progress: impl Fn(&Progress, &StopHandle) + Send + Sync + 'static,
) -> Result<Answer, Error> {
    let c = request.connection;
    let stop = StopHandle::new();
    let for_progress = stop.clone();
    let migrator = Migrator::connect(&c.uri, c.database.as_deref(), registry, c.config)
        .await?
        .with_progress(move |p| progress(p, &for_progress))
        .with_stop(stop.clone())
        .with_lock_wait(Duration::from_secs(c.lock_wait_secs.unwrap_or(0)))
        .with_state_read(request.state);
    if request.command.applies() {
        // Registered here, not in the task: a signal before its first poll is not lost.
        tokio::spawn(stop_on_signal(Signals::new(), stop));
    }
    let result = execute(&migrator, request.command).await;
    migrator.shutdown().await;
    result
}

fn schema(registry: &Registry) -> Answer {
    Answer::Schema(registry.collections().iter().map(|c| c.to_json()).collect())
}

/// Runs one command; the answer as the CLI reads it.
pub async fn execute(migrator: &Migrator, command: Command) -> Result<Answer, Error> {
    match command {
        Command::Up(options) => migrator.up(options).await.map(Answer::Run),
        Command::Down(options) => migrator.down(options).await.map(Answer::Run),
        Command::Status => migrator.status().await.map(Answer::Status),
        Command::History(query) => migrator.history(&query).await.map(Answer::History),
        Command::LockStatus => migrator.lock_status().await.map(Answer::Lock),
        Command::ForceUnlock { confirm } => migrator.force_unlock(confirm).await.map(Answer::Lock),
        Command::Resolve { version, resolution } => migrator
            .resolve(version, resolution)
            .await
            .map(|r| Answer::Resolved(Box::new(r))),
        Command::Forget { versions, confirm } => migrator.forget(&versions, confirm).await.map(Answer::Forgotten),
        Command::Baseline { to } => migrator.baseline(to).await.map(Answer::Run),
        Command::Schema => Ok(schema(migrator.registry())),
        Command::Drift => {
            let declared = migrator.registry().collections();
            Ok(Answer::Drift(
                crate::schema::drift(migrator.database(), declared).await?,
            ))
        }
        Command::Plan { options, slow, .. } => migrator.plan_deploy(options, slow).await.map(Answer::Plan),
        Command::Tenants {
            databases,
            concurrency,
            fail_fast,
            command,
        } => {
            let tenants = migrator
                .for_databases(databases)
                .concurrency(concurrency)
                .fail_fast(fail_fast);
            match *command {
                Command::Up(options) => Ok(Answer::TenantRuns(tenants.up(options).await)),
                Command::Status => Ok(Answer::TenantStatuses(tenants.status().await)),
                Command::Plan { options, slow, .. } => Ok(Answer::TenantPlans(tenants.plan(options, slow).await)),
                _ => Err(Error::Harness(
                    "only `up`, `status` and `plan` run over many databases".into(),
                )),
            }
        }
    }
}
