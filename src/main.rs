//! `cargo mongo-migrate`: scaffolds migrations, regenerates the registry, and
//! builds and runs the harness that applies them.

mod cli;
mod exit;
mod harness;
mod output;
mod scaffold;
mod workspace;

use anyhow::Result;
use clap::Parser;
use mongo_migrate::harness::{Command as Remote, Connection, Request};
use mongo_migrate::{DownOptions, DownTarget, HistoryQuery, MigrationStatus, Resolution, UpOptions, Version};

use cli::{Args, Cargo, Command, StatusFilter};
use exit::{Code, Failure};
use workspace::{Target, Workspace};

fn main() {
    let Cargo::MongoMigrate(args) = Cargo::parse();
    if let Err(e) = run(args) {
        std::process::exit(exit::report(&e));
    }
}

fn run(args: Args) -> Result<()> {
    let ws = workspace::load(&args)?;
    match &args.command {
        Command::New { name, version } => {
            let [target] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`new` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            scaffold::new(target, name, version.as_deref())
        }
        Command::Registry => ws.targets.iter().try_for_each(scaffold::registry),
        _ => remote(&args, &ws),
    }
}

/// Commands that run in the harness, package by package. With `--json`, one
/// document: the package's result, or with `--workspace` an object keyed by package.
fn remote(args: &Args, ws: &Workspace) -> Result<()> {
    let mut results = serde_json::Map::new();
    let mut json = false;
    let mut stopped = None;
    // Every package's request first: a bad setting of the last package stops
    // the run before the first package's migrations are applied.
    let requests = ws
        .targets
        .iter()
        .map(|target| request(&args.command, target))
        .collect::<Result<Vec<_>>>()?;
    one_collection_each(&ws.targets, &requests)?;
    for (target, (conn, command, as_json)) in ws.targets.iter().zip(requests) {
        if !target.config.build_script && target.migrations_dir().is_dir() {
            // Keep the registry in step with the files before building.
            scaffold::registry_quiet(target)?;
        }
        json = as_json;
        let bin = harness::build(ws, target, args.verbose)?;
        let request = Request {
            connection: conn,
            command,
        };
        let value = harness::run(&bin, &request, args.verbose, |p| {
            if !json {
                output::progress(p)
            }
        })?;
        let skipped = skipped(&value);
        if json {
            results.insert(target.name.clone(), value);
        } else {
            render(&target.name, &request.command, value)?;
        }
        if skipped > 0 {
            // Stopped by Ctrl-C: later packages do not start either.
            stopped = Some((target.name.clone(), skipped));
            break;
        }
    }
    if json {
        let document = if args.workspace {
            serde_json::Value::Object(results)
        } else {
            results
                .into_iter()
                .next()
                .map_or(serde_json::Value::Null, |(_, only)| only)
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
    }
    match stopped {
        Some((package, n)) => Err(Failure::new(
            Code::Interrupted,
            format!(
                "{package}: stopped on request; {n} {} did not run",
                output::plural(n, "migration")
            ),
        )
        .hint("the migrations that ran are recorded and the lock is free; run the command again to go on")
        .into()),
        None => Ok(()),
    }
}

/// Two packages that track their migrations in one collection would each
/// take the other's records for unknown versions and be blocked.
fn one_collection_each(targets: &[Target], requests: &[(Connection, Remote, bool)]) -> Result<()> {
    let mut seen = std::collections::BTreeMap::new();
    for (target, (conn, ..)) in targets.iter().zip(requests) {
        let collection = conn
            .tracking_collection
            .clone()
            .unwrap_or_else(|| mongo_migrate::Config::default().tracking_collection);
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

/// How many planned steps a stopped `up`/`down` left out.
fn skipped(value: &serde_json::Value) -> usize {
    value.get("skipped").and_then(|s| s.as_array()).map_or(0, Vec::len)
}

fn render(package: &str, command: &Remote, value: serde_json::Value) -> Result<()> {
    match command {
        Remote::Up(_) | Remote::Down(_) => output::run_report(package, &serde_json::from_value(value)?),
        Remote::Status => output::status(package, &serde_json::from_value(value)?),
        Remote::History(_) => output::history(package, &serde_json::from_value::<Vec<_>>(value)?),
        Remote::LockStatus => {
            let lock: Option<mongo_migrate::LockInfo> = serde_json::from_value(value)?;
            println!("{package}: lock {}", output::lock_line(lock.as_ref()));
        }
        Remote::ForceUnlock { .. } => {
            let lock: Option<mongo_migrate::LockInfo> = serde_json::from_value(value)?;
            match lock.filter(|l| !l.expired) {
                Some(l) => println!("{package}: released the lock held by {}", l.holder),
                None => println!("{package}: the lock was free; it is released all the same"),
            }
        }
        Remote::Resolve { version, resolution } => {
            let state = match resolution {
                Resolution::Applied => "applied",
                Resolution::Pending => "pending",
            };
            println!("{package}: marked {version} as {state}");
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

/// The harness request for `command`, and whether to print JSON.
fn request(command: &Command, target: &Target) -> Result<(Connection, Remote, bool)> {
    let (conn, remote, json) = match command {
        Command::Up { conn, dry_run, to, .. } => (
            conn,
            Remote::Up(UpOptions {
                dry_run: *dry_run,
                to: to.as_deref().map(version).transpose()?,
            }),
            false,
        ),
        Command::Down {
            conn,
            steps,
            batch,
            to,
            dry_run,
            ..
        } => {
            let target = match (steps, batch, to) {
                (_, true, _) => DownTarget::LastBatch,
                (_, _, Some(to)) => DownTarget::To(version(to)?),
                (Some(n), _, _) => DownTarget::Steps(*n),
                _ => DownTarget::Steps(1),
            };
            (
                conn,
                Remote::Down(DownOptions {
                    target,
                    dry_run: *dry_run,
                }),
                false,
            )
        }
        Command::Status { conn, json } => (conn, Remote::Status, *json),
        Command::History {
            conn,
            status,
            limit,
            skip,
            json,
        } => {
            let status = status.map(|s| match s {
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
            ..
        } => {
            let resolution = if *applied {
                Resolution::Applied
            } else {
                Resolution::Pending
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
        Command::New { .. } | Command::Registry => unreachable!("handled locally"),
    };
    let config = &target.config;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let uri = conn.uri.clone().or_else(|| env(&config.uri_env)).ok_or_else(|| {
        Failure::new(Code::Connection, format!("no MongoDB URI for `{}`", target.name))
            .hint(format!("pass --uri or set {}", config.uri_env))
    })?;
    let database = conn
        .database
        .clone()
        .or_else(|| env(&config.database_env))
        .or_else(|| config.database.clone());
    let connection = Connection {
        uri,
        database,
        tracking_collection: config.tracking_collection.clone(),
        lock_collection: config.lock_collection.clone(),
        lock_ttl_secs: config.lock_ttl_secs,
        lock_wait_secs: match command {
            Command::Up { wait, .. } | Command::Down { wait, .. } => Some(*wait),
            _ => None,
        },
    };
    Ok((connection, remote, json))
}
