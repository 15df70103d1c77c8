//! The entry point of the harness binary that `cargo mongo-migrate` builds
//! for a crate. It reads one JSON request on stdin and answers in JSON lines
//! on stdout: progress events, then one result or error. The protocol is
//! internal to the CLI and this crate, which are released together.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Config, DownOptions, Error, HistoryQuery, Migrator, Registry, Resolution, StopHandle, UpOptions, Version};

/// Where and how to connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub uri: String,
    pub database: Option<String>,
    pub tracking_collection: Option<String>,
    pub lock_collection: Option<String>,
    pub lock_ttl_secs: Option<u64>,
    /// How long `up`/`down` wait for a lock another runner holds.
    pub lock_wait_secs: Option<u64>,
    /// How long to wait for a server before reporting it unreachable.
    pub connect_timeout_secs: Option<u64>,
    /// The package's out-of-order policy.
    pub out_of_order: Option<crate::OutOfOrder>,
}

/// What the CLI asks of the harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    Up(UpOptions),
    Down(DownOptions),
    Status,
    History(HistoryQuery),
    LockStatus,
    ForceUnlock {
        confirm: bool,
    },
    Resolve {
        version: Version,
        resolution: Resolution,
    },
    Forget {
        versions: Vec<Version>,
        confirm: bool,
    },
    Baseline {
        to: Version,
    },
    /// `Up` or `Status` over many databases, one per tenant.
    Tenants {
        databases: Vec<String>,
        concurrency: usize,
        fail_fast: bool,
        command: Box<Command>,
    },
}

impl Command {
    /// Whether it runs no migration code, so a registry of metadata (no
    /// build of the user's crate) serves it: everything but an `up` or
    /// `down` that applies.
    pub fn reads_metadata_only(&self) -> bool {
        !self.applies()
    }

    /// An `up` or `down` that changes something (not a dry-run): the
    /// commands that Ctrl-C stops after the migration in progress.
    pub fn applies(&self) -> bool {
        match self {
            Command::Up(o) => !o.dry_run,
            Command::Down(o) => !o.dry_run,
            Command::Tenants { command, .. } => command.applies(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub connection: Connection,
    pub command: Command,
}

/// One line of the harness's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply {
    Progress(crate::Progress),
    Result(serde_json::Value),
    Error(ErrorReply),
}

/// An error, classified so the CLI can choose an exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    /// What to do next, in CLI terms.
    #[serde(default)]
    pub hint: Option<String>,
    /// The error's whole chain of causes, for `--verbose`.
    #[serde(default)]
    pub detail: Option<String>,
}

pub use crate::error::ErrorKind;

impl From<&Error> for ErrorReply {
    fn from(e: &Error) -> Self {
        ErrorReply {
            kind: e.kind(),
            message: e.to_string(),
            hint: hint(e).map(str::to_string),
            detail: Some(chain(e)),
        }
    }
}

/// What the CLI user does next about `error`.
pub fn hint(error: &Error) -> Option<&'static str> {
    Some(match error {
        Error::InvalidUri { .. } => "check --uri / MONGODB_URI",
        Error::Unreachable { .. } => {
            "check that the server is up and --uri / MONGODB_URI points at it; --connect-timeout SECS waits longer"
        }
        Error::AuthFailed { .. } => "check the user name, password and `authSource` in the URI",
        Error::MissingDatabase => {
            "pass --database, set MONGODB_DATABASE, set `database` under [package.metadata.mongo-migrate], or put it in the URI path"
        }
        Error::Locked { .. } => "see `cargo mongo-migrate lock-status`",
        Error::LockLost { .. } | Error::Conflict { .. } => "see `cargo mongo-migrate status`, then run again",
        Error::ChecksumMismatch { .. } => {
            "`cargo mongo-migrate status` shows it as edited; a harmless edit is accepted with `cargo mongo-migrate resolve <VERSION> --accept-checksum`"
        }
        Error::Blocked { .. } | Error::UnknownVersions { .. } => "see `cargo mongo-migrate status`",
        Error::MigrationFailed { .. } => "see `cargo mongo-migrate history --status failed`",
        Error::TransactionsUnsupported { .. } => {
            "run against a replica set or sharded cluster, or make the migration non-transactional"
        }
        Error::NotForgettable { .. } => "only records of versions this build does not have can be forgotten; see `cargo mongo-migrate status`",
        Error::UnknownTarget { .. } | Error::NothingToResolve { .. } | Error::NotResolvable { .. } => {
            "see `cargo mongo-migrate status` for versions and states"
        }
        Error::OutOfOrder { .. } => "see `cargo mongo-migrate status`; the README's \"Team workflow\" explains the policy",
        Error::PartialSquash { .. } => {
            "see `cargo mongo-migrate status`; run `up` with the build from before the squash first"
        }
        Error::NotBaselinable { .. } => "see `cargo mongo-migrate status`; `up` applies what is pending",
        Error::ChecksumNotAcceptable { .. } => "see `cargo mongo-migrate status` for versions and states",
        Error::BadReplaces { .. } => "fix `REPLACES` in the squash module, then `cargo mongo-migrate registry`",
        Error::Irreversible { .. } => "roll back to a later version, or give the migration a `down`",
        Error::InvalidVersion(_) | Error::DuplicateVersion { .. } | Error::Unordered { .. } => {
            "regenerate the registry with `cargo mongo-migrate registry`"
        }
        _ => return None,
    })
}

/// The error and each of its causes, one per line.
fn chain(error: &Error) -> String {
    let mut out = format!("{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        out.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    out
}

fn json<T: Serialize>(value: Result<T, Error>) -> Result<serde_json::Value, Error> {
    value.and_then(|v| serde_json::to_value(v).map_err(|e| Error::Harness(e.to_string())))
}

/// `main` of a generated harness: `mongo_migrate::harness::main(my_crate::migrations::registry)`.
pub fn main(registry: fn() -> Result<Registry, Error>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(serve(registry));
    let ok = result.is_ok();
    let reply = match result {
        Ok(value) => Reply::Result(value),
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

async fn serve(registry: fn() -> Result<Registry, Error>) -> Result<serde_json::Value, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Harness(format!("reading the request: {e}")))?;
    let request: Request =
        serde_json::from_str(&line).map_err(|e| Error::Harness(format!("malformed request: {e}")))?;
    let registry = registry()?;
    let c = request.connection;
    let stop = StopHandle::new();
    let orphaned = stop.clone();
    let migrator = Migrator::connect(&c.uri, c.database.as_deref(), registry, config(&c))
        .await?
        .with_progress(move |p| {
            // The CLI was killed (a cancelled CI job, a closed terminal): with
            // nobody left to report to, stop after the migration in progress.
            if !emit(&Reply::Progress(p.clone())) {
                orphaned.stop();
            }
        })
        .with_stop(stop.clone())
        .with_lock_wait(Duration::from_secs(c.lock_wait_secs.unwrap_or(0)));
    if request.command.applies() {
        // Registered here, not in the task: a signal before its first poll is not lost.
        tokio::spawn(stop_on_signal(Signals::new(), stop));
    }
    let result = execute(&migrator, request.command).await;
    migrator.shutdown().await;
    result
}

/// The runtime configuration a request's connection settings describe.
pub fn config(c: &Connection) -> Config {
    let mut config = Config::default();
    if let Some(name) = &c.tracking_collection {
        config.tracking_collection = name.clone();
    }
    if let Some(name) = &c.lock_collection {
        config.lock_collection = name.clone();
    }
    if let Some(secs) = c.lock_ttl_secs {
        config.lock_ttl = Duration::from_secs(secs);
    }
    if let Some(secs) = c.connect_timeout_secs {
        config.connect_timeout = Duration::from_secs(secs);
    }
    if let Some(policy) = c.out_of_order {
        config.out_of_order = policy;
    }
    config
}

/// Runs one command; the answer as the CLI reads it.
pub async fn execute(migrator: &Migrator, command: Command) -> Result<serde_json::Value, Error> {
    match command {
        Command::Up(options) => json(migrator.up(options).await),
        Command::Down(options) => json(migrator.down(options).await),
        Command::Status => json(migrator.status().await),
        Command::History(query) => json(migrator.history(&query).await),
        Command::LockStatus => json(migrator.lock_status().await),
        Command::ForceUnlock { confirm } => json(migrator.force_unlock(confirm).await),
        Command::Resolve { version, resolution } => json(migrator.resolve(version, resolution).await),
        Command::Forget { versions, confirm } => json(migrator.forget(&versions, confirm).await),
        Command::Baseline { to } => json(migrator.baseline(to).await),
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
                Command::Up(options) => json(Ok(tenants.up(options).await)),
                Command::Status => json(Ok(tenants.status().await)),
                _ => Err(Error::Harness("only `up` and `status` run over many databases".into())),
            }
        }
    }
}

/// Exit status after a second Ctrl-C, as shells report a SIGINT.
pub const ABORTED: u8 = 130;

/// The first Ctrl-C (or SIGTERM) lets the migration in progress finish and be
/// recorded, then the run stops and releases the lock. A second one aborts
/// at once: the lock then expires on its own, and the migration is left
/// `running` for `resolve`.
async fn stop_on_signal(mut signals: Signals, stop: StopHandle) {
    signals.next().await;
    stop.stop();
    // On a line of its own: a progress line may be open.
    eprintln!(
        "\nmongo-migrate: stopping after the migration in progress (a walk in batches stops after its batch in flight); press Ctrl-C again to abort"
    );
    signals.next().await;
    eprintln!("mongo-migrate: aborted");
    std::process::exit(ABORTED.into());
}

/// SIGINT and SIGTERM on Unix, Ctrl-C elsewhere.
#[cfg(unix)]
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next signal; never returns if none can be watched.
    async fn next(&mut self) {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match signal {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            Some(()) = recv(&mut self.interrupt) => {}
            Some(()) = recv(&mut self.terminate) => {}
            else => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> Self {
        Signals
    }

    async fn next(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hint, ErrorKind};
    use crate::{Error, Version};

    /// Each kind of failure points to its own next step, not one shared hint.
    #[test]
    fn every_error_kind_gets_its_own_hint_and_exit_class() {
        let v = Version::parse("20260101000000").unwrap();
        let cases: Vec<(Error, ErrorKind, &str)> = vec![
            (Error::MissingDatabase, ErrorKind::Configuration, "--database"),
            (
                Error::TransactionsUnsupported {
                    version: v,
                    name: "tx".into(),
                },
                ErrorKind::Failed,
                "replica set",
            ),
            (Error::lock_lost(), ErrorKind::Failed, "`cargo mongo-migrate status`"),
            (
                Error::MigrationFailed {
                    version: v,
                    name: "m".into(),
                    message: "boom".into(),
                    error: None,
                    completed: Vec::new(),
                },
                ErrorKind::Failed,
                "history --status failed",
            ),
            (
                Error::Locked {
                    holder: crate::LockedBy {
                        holder: None,
                        run_at: None,
                    },
                    expires_at: chrono::Utc::now(),
                },
                ErrorKind::Locked,
                "lock-status",
            ),
            (
                Error::Irreversible {
                    version: v,
                    name: "m".into(),
                },
                ErrorKind::Usage,
                "give the migration a `down`",
            ),
        ];
        for (error, kind, needle) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            let hint = hint(&error).unwrap_or_default();
            assert!(hint.contains(needle), "{error}: {hint}");
            assert!(
                !hint.contains("history") || matches!(error, Error::MigrationFailed { .. }),
                "{error}: {hint}"
            );
        }
    }
}
