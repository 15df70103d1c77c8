//! Turning a command line into a harness request for one package.

use crate::cli::args::{DatabaseCommand, Tenancy};
use crate::cli::exit::{Code, Failure};
use crate::harness::{Command as HarnessCommand, Connection};
use crate::{DownOptions, DownTarget, HistoryQuery, Resolution, Settings, UpOptions, Version};

type Result<T> = std::result::Result<T, Failure>;

fn version(s: &str) -> Result<Version> {
    Version::parse(s)
        .map_err(|e| Failure::new(Code::Usage, e.to_string()).hint("see `cargo mongo-migrate status` for versions"))
}

/// The tenant flags of `up` and `status`, when given, and `--fail-fast`.
fn tenancy(command: &DatabaseCommand) -> Option<(&Tenancy, bool)> {
    match command {
        DatabaseCommand::Up { tenancy, fail_fast, .. } => Some((tenancy, *fail_fast)),
        DatabaseCommand::Status { tenancy, .. } | DatabaseCommand::Plan { tenancy, .. } => Some((tenancy, false)),
        _ => None,
    }
    .filter(|(t, _)| t.is_set())
}

/// The tenant databases: as listed, or those `listDatabases` names that
/// match the regex (never `admin`, `local` or `config`).
async fn tenants(tenancy: &Tenancy, uri: &str, connect_timeout: u64) -> Result<Vec<String>> {
    let Some(pattern) = &tenancy.databases_from_regex else {
        return Ok(tenancy.databases.clone());
    };
    let regex = regex::Regex::new(pattern).map_err(|e| {
        Failure::new(Code::Usage, format!("invalid --databases-from-regex: {e}"))
            .hint("e.g. --databases-from-regex '^tenant_'")
    })?;
    let timeout = std::time::Duration::from_secs(connect_timeout);
    let failure = |e: crate::Error| Failure::from_error(&e, false);
    let client = crate::server::client_within(uri, timeout).await.map_err(failure)?;
    let listed = crate::list_databases(&client, |name| regex.is_match(name)).await;
    client.shutdown().await;
    let names = listed.map_err(failure)?;
    if names.is_empty() {
        return Err(Failure::new(Code::Usage, format!("no database matches `{pattern}`"))
            .hint("check the pattern against the server's databases"));
    }
    Ok(names)
}

/// The harness request for `command` in `package` with its `settings`
/// (checked before anything is built or run), and whether to print JSON.
pub async fn request(
    command: &DatabaseCommand,
    package: &str,
    settings: &Settings,
) -> Result<(Connection, HarnessCommand, bool)> {
    let (conn, remote, json) = match command {
        DatabaseCommand::Up {
            conn,
            dry_run,
            to,
            allow_out_of_order,
            phase,
            continue_on_error,
            json,
            ..
        } => (
            conn,
            HarnessCommand::Up(UpOptions {
                dry_run: *dry_run,
                to: to.as_deref().map(version).transpose()?,
                allow_out_of_order: *allow_out_of_order,
                phase: *phase,
                continue_on_error: *continue_on_error,
            }),
            *json,
        ),
        DatabaseCommand::Down {
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
                HarnessCommand::Down(DownOptions {
                    target,
                    dry_run: *dry_run,
                }),
                *json,
            )
        }
        DatabaseCommand::Status { conn, json, .. } => (conn, HarnessCommand::Status, *json),
        DatabaseCommand::History {
            conn,
            status,
            limit,
            skip,
            json,
        } => {
            let status = *status;
            (
                conn,
                HarnessCommand::History(HistoryQuery {
                    status,
                    skip: *skip,
                    limit: *limit,
                    // The table has a line per run; JSON, the records.
                    runs: !*json,
                }),
                *json,
            )
        }
        DatabaseCommand::Plan {
            conn,
            to,
            phase,
            slow_documents,
            json,
            markdown,
            ..
        } => (
            conn,
            HarnessCommand::Plan {
                options: UpOptions {
                    to: to.as_deref().map(version).transpose()?,
                    phase: *phase,
                    ..UpOptions::default()
                },
                slow: *slow_documents,
                markdown: *markdown,
            },
            *json,
        ),
        DatabaseCommand::LockStatus { conn, json } => (conn, HarnessCommand::LockStatus, *json),
        DatabaseCommand::ForceUnlock { conn, yes } => {
            if !yes {
                return Err(Failure::new(Code::Usage, "force-unlock needs confirmation")
                    .hint("make sure the holder is gone (`lock-status`), then pass --yes"));
            }
            (conn, HarnessCommand::ForceUnlock { confirm: true }, false)
        }
        DatabaseCommand::Resolve {
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
                HarnessCommand::Resolve {
                    version: version(v)?,
                    resolution,
                },
                false,
            )
        }
        DatabaseCommand::Forget { conn, versions, yes } => {
            if !yes {
                return Err(Failure::new(Code::Usage, "forget needs confirmation")
                    .hint("check `status` for the unknown versions, then pass --yes"));
            }
            let versions = versions.iter().map(|v| version(v)).collect::<Result<Vec<_>>>()?;
            (
                conn,
                HarnessCommand::Forget {
                    versions,
                    confirm: true,
                },
                false,
            )
        }
        DatabaseCommand::Baseline { conn, version: v } => (conn, HarnessCommand::Baseline { to: version(v)? }, false),
    };
    let config = settings;
    let resolved = crate::cli::connection::resolve(conn, config, |name| std::env::var(name).ok());
    let uri = resolved.uri.ok_or_else(|| {
        Failure::new(Code::Usage, format!("no MongoDB URI for `{}`", package)).hint(format!(
            "pass --uri, or set {} (its name is `uri-env` under [package.metadata.mongo-migrate])",
            config.uri_env
        ))
    })?;
    // Checked here, before anything is built (and again, by the same
    // function, when the harness connects).
    let invalid_uri = |message: &str| {
        Failure::new(
            Code::Connection,
            format!("invalid MongoDB URI for `{}`: {message}", package),
        )
        .hint("check --uri / MONGODB_URI; expected e.g. mongodb://127.0.0.1:27017/mydb")
    };
    // A database from the URI's path is the driver's to read.
    let mut database = resolved
        .database
        .filter(|_| resolved.database_source != crate::cli::connection::Source::Uri);
    let remote = match tenancy(command) {
        Some((tenancy, fail_fast)) => {
            let databases = tenants(tenancy, &uri, conn.connect_timeout).await?;
            database = databases.first().cloned();
            HarnessCommand::Tenants {
                databases,
                concurrency: usize::try_from(tenancy.concurrency).unwrap_or(usize::MAX),
                fail_fast,
                command: Box::new(remote),
            }
        }
        None => remote,
    };
    match crate::check_target(&uri, database.as_deref()) {
        Ok(_) => {}
        Err(crate::Error::InvalidUri { message, .. }) => return Err(invalid_uri(&message)),
        // The hint names this package's own variable.
        Err(crate::Error::MissingDatabase) => {
            return Err(Failure::new(Code::Usage, format!("no database name for `{}`", package))
                .hint(format!(
                    "pass --database, set {}, set `database` under [package.metadata.mongo-migrate], or put it in the URI path (mongodb://host/mydb)",
                    config.database_env
                )))
        }
        Err(e) => return Err(Failure::from_error(&e, false)),
    }
    let connection = Connection {
        uri,
        database,
        config: config.runtime(conn.connect_timeout),
        lock_wait_secs: match command {
            DatabaseCommand::Up { wait, .. } | DatabaseCommand::Down { wait, .. } => Some(*wait),
            _ => None,
        },
    };
    Ok((connection, remote, json))
}
