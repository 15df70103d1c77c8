//! Turning the command line into harness requests, one per package.

use anyhow::Result;
use mongo_migrate::harness::{Command as Remote, Connection};
use mongo_migrate::{DownOptions, DownTarget, HistoryQuery, MigrationStatus, Phase, Resolution, UpOptions, Version};

use crate::cli::{Command, PhaseArg, StatusFilter, Tenancy};
use crate::exit::{Code, Failure};
use crate::workspace::Target;

/// Every package's request, all checked before any package runs: a bad
/// setting of the last package stops the run before the first one starts.
pub fn all(command: &Command, targets: &[Target]) -> Result<Vec<(Connection, Remote, bool)>> {
    let requests = targets
        .iter()
        .map(|target| request(command, target))
        .collect::<Result<Vec<_>>>()?;
    one_collection_each(targets, &requests)?;
    Ok(requests)
}

/// Two packages that track their migrations in one collection would each
/// take the other's records for unknown versions and be blocked.
fn one_collection_each(targets: &[Target], requests: &[(Connection, Remote, bool)]) -> Result<()> {
    let mut seen = std::collections::BTreeMap::new();
    for (target, (conn, ..)) in targets.iter().zip(requests) {
        let collection = conn.config.tracking_collection.clone();
        let key = (conn.uri.clone(), conn.database.clone(), collection.clone());
        if let Some(other) = seen.insert(key, target.name.as_str()) {
            return Err(Failure::new(
                Code::Usage,
                format!(
                    "`{other}` and `{}` would track their migrations in the same collection `{collection}`",
                    target.name
                ),
            )
            .hint("give one of them its own `tracking-collection` and `lock-collection` under [package.metadata.mongo-migrate]")
            .into());
        }
    }
    Ok(())
}

fn version(s: &str) -> Result<Version> {
    Version::parse(s).map_err(|e| {
        Failure::new(Code::Usage, e.to_string())
            .hint("see `cargo mongo-migrate status` for versions")
            .into()
    })
}

/// The tenant flags of `up` and `status`, when given, and `--fail-fast`.
fn tenancy(command: &Command) -> Option<(&Tenancy, bool)> {
    match command {
        Command::Up { tenancy, fail_fast, .. } => Some((tenancy, *fail_fast)),
        Command::Status { tenancy, .. } => Some((tenancy, false)),
        _ => None,
    }
    .filter(|(t, _)| t.is_set())
}

/// The tenant databases: as listed, or those `listDatabases` names that
/// match the regex (never `admin`, `local` or `config`).
fn tenants(tenancy: &Tenancy, uri: &str, connect_timeout: u64) -> Result<Vec<String>> {
    let Some(pattern) = &tenancy.databases_from_regex else {
        return Ok(tenancy.databases.clone());
    };
    let regex = regex::Regex::new(pattern).map_err(|e| {
        Failure::new(Code::Usage, format!("invalid --databases-from-regex: {e}"))
            .hint("e.g. --databases-from-regex '^tenant_'")
    })?;
    let names = crate::local::list_databases(uri, connect_timeout, |name| regex.is_match(name))?;
    if names.is_empty() {
        return Err(Failure::new(Code::Usage, format!("no database matches `{pattern}`"))
            .hint("check the pattern against the server's databases")
            .into());
    }
    Ok(names)
}

/// The harness request for `command`, and whether to print JSON.
fn request(command: &Command, target: &Target) -> Result<(Connection, Remote, bool)> {
    let (conn, remote, json) = match command {
        Command::Up {
            conn,
            dry_run,
            to,
            allow_out_of_order,
            phase,
            json,
            ..
        } => (
            conn,
            Remote::Up(UpOptions {
                dry_run: *dry_run,
                to: to.as_deref().map(version).transpose()?,
                allow_out_of_order: *allow_out_of_order,
                phase: phase.map(|p| match p {
                    PhaseArg::Pre => Phase::PreDeploy,
                    PhaseArg::Post => Phase::PostDeploy,
                }),
            }),
            *json,
        ),
        Command::Down {
            conn,
            steps,
            batch,
            to,
            dry_run,
            json,
            ..
        } => {
            let to = to.as_deref().map(version).transpose()?;
            // clap's argument group already lets only one through.
            let target = DownTarget::from_options(*steps, *batch, to).ok_or_else(|| {
                Failure::new(Code::Usage, "give at most one of --steps, --batch and --to").hint("see `--help`")
            })?;
            (
                conn,
                Remote::Down(DownOptions {
                    target,
                    dry_run: *dry_run,
                }),
                *json,
            )
        }
        Command::Status { conn, json, .. } => (conn, Remote::Status, *json),
        Command::History {
            conn,
            status,
            limit,
            skip,
            json,
        } => {
            let status = status.map(|s| match s {
                StatusFilter::Planned => MigrationStatus::Planned,
                StatusFilter::Running => MigrationStatus::Running,
                StatusFilter::Completed => MigrationStatus::Completed,
                StatusFilter::Failed => MigrationStatus::Failed,
                StatusFilter::RolledBack => MigrationStatus::RolledBack,
            });
            (
                conn,
                Remote::History(HistoryQuery {
                    status,
                    skip: *skip,
                    limit: *limit,
                }),
                *json,
            )
        }
        Command::LockStatus { conn, json } => (conn, Remote::LockStatus, *json),
        Command::ForceUnlock { conn, yes } => {
            if !yes {
                return Err(Failure::new(Code::Usage, "force-unlock needs confirmation")
                    .hint("make sure the holder is gone (`lock-status`), then pass --yes")
                    .into());
            }
            (conn, Remote::ForceUnlock { confirm: true }, false)
        }
        Command::Resolve {
            conn,
            version: v,
            applied,
            pending,
            ..
        } => {
            let resolution = match (applied, pending) {
                (true, _) => Resolution::Applied,
                (_, true) => Resolution::Pending,
                _ => Resolution::AcceptChecksum,
            };
            (
                conn,
                Remote::Resolve {
                    version: version(v)?,
                    resolution,
                },
                false,
            )
        }
        Command::Forget { conn, versions, yes } => {
            if !yes {
                return Err(Failure::new(Code::Usage, "forget needs confirmation")
                    .hint("check `status` for the unknown versions, then pass --yes")
                    .into());
            }
            let versions = versions.iter().map(|v| version(v)).collect::<Result<Vec<_>>>()?;
            (
                conn,
                Remote::Forget {
                    versions,
                    confirm: true,
                },
                false,
            )
        }
        Command::Baseline { conn, version: v } => (conn, Remote::Baseline { to: version(v)? }, false),
        Command::New { .. } | Command::Registry | Command::Squash { .. } | Command::Check { .. } => {
            unreachable!("handled locally")
        }
    };
    let config = &target.config;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let uri = conn.uri.clone().or_else(|| env(&config.uri_env)).ok_or_else(|| {
        Failure::new(Code::Usage, format!("no MongoDB URI for `{}`", target.name)).hint(format!(
            "pass --uri, or set {} (its name is `uri-env` under [package.metadata.mongo-migrate])",
            config.uri_env
        ))
    })?;
    // Checked here, before anything is built (and again, by the same
    // function, when the harness connects).
    let invalid_uri = |message: &str| {
        Failure::new(
            Code::Connection,
            format!("invalid MongoDB URI for `{}`: {message}", target.name),
        )
        .hint("check --uri / MONGODB_URI; expected e.g. mongodb://127.0.0.1:27017/mydb")
    };
    let mut database = conn
        .database
        .clone()
        .or_else(|| env(&config.database_env))
        .or_else(|| config.database.clone());
    let remote = match tenancy(command) {
        Some((tenancy, fail_fast)) => {
            let databases = tenants(tenancy, &uri, conn.connect_timeout)?;
            database = databases.first().cloned();
            Remote::Tenants {
                databases,
                concurrency: usize::try_from(tenancy.concurrency).unwrap_or(usize::MAX),
                fail_fast,
                command: Box::new(remote),
            }
        }
        None => remote,
    };
    match mongo_migrate::check_target(&uri, database.as_deref()) {
        Ok(_) => {}
        Err(mongo_migrate::Error::InvalidUri { message, .. }) => return Err(invalid_uri(&message).into()),
        // The hint names this package's own variable.
        Err(mongo_migrate::Error::MissingDatabase) => {
            return Err(Failure::new(Code::Usage, format!("no database name for `{}`", target.name))
                .hint(format!(
                    "pass --database, set {}, set `database` under [package.metadata.mongo-migrate], or put it in the URI path (mongodb://host/mydb)",
                    config.database_env
                ))
                .into())
        }
        Err(e) => return Err(crate::harness::failure(mongo_migrate::harness::ErrorReply::from(&e), false).into()),
    }
    let connection = Connection {
        uri,
        database,
        config: config.runtime(conn.connect_timeout),
        lock_wait_secs: match command {
            Command::Up { wait, .. } | Command::Down { wait, .. } => Some(*wait),
            _ => None,
        },
    };
    Ok((connection, remote, json))
}
