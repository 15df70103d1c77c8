//! `cargo mongo-migrate`: scaffolds migrations, regenerates the registry, and
//! builds and runs the harness that applies them.

mod bundle;
mod check;
mod cli;
mod config;
mod diff;
mod exit;
mod harness;
mod local;
mod renumber;
mod scaffold;
mod workspace;

use anyhow::Result;
use clap::Parser;
use mongo_migrations::cli::{output, DatabaseCommand};
use mongo_migrations::harness::{Answer, Command as HarnessCommand, Connection, Request};

use cli::{Args, Cargo, Command};
use exit::{Code, Failure};
use workspace::{Target, Workspace};

fn main() {
    let Cargo::MongoMigrate(args) = Cargo::parse();
    if let Err(e) = run(args) {
        std::process::exit(exit::report(&e));
    }
}

fn run(args: Args) -> Result<()> {
    mongo_migrations::cli::color::apply(args.color);
    let ws = workspace::load(&args)?;
    match &args.command {
        Command::New { name, version, before } => {
            let [target] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`new` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            match before {
                Some(before) => scaffold::new_before(target, name, before),
                None => scaffold::new(target, name, version.as_deref()),
            }
        }
        Command::Diff {
            name,
            version,
            with_data,
            after_merge,
        } => {
            let [target] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`diff` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            let options = diff::Options {
                version: version.as_deref(),
                with_data: *with_data,
                after_merge: *after_merge,
            };
            diff::run(&ws, target, name, &options, args.verbose)
        }
        Command::Registry => ws.targets.iter().try_for_each(scaffold::registry),
        Command::Squash { to, name, force } => {
            let [target] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`squash` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            scaffold::squash(target, to, name, *force)
        }
        Command::Renumber { migration, to, conn } => {
            let [target] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`renumber` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            renumber::run(&ws, target, migration, to.as_deref(), conn, args.verbose)
        }
        Command::Check {
            conn,
            offline,
            build,
            plan,
            json,
        } => check::run(
            &ws,
            conn,
            check::Checks {
                offline: *offline,
                build: *build,
                plan: *plan,
            },
            *json,
            args.verbose,
        ),
        Command::Bundle { out, target, profile } => {
            let [package] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`bundle` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            let build = bundle::Build {
                profile: profile.clone(),
                target: target.clone(),
            };
            bundle::build(&ws, package, out.as_deref(), &build, args.verbose)
        }
        Command::Config { conn, json } => config::print(&ws, conn, *json),
        Command::Database(command) => database(&args, command, &ws),
    }
}

/// Commands that run in the harness, package by package. With `--json`, one
/// document: the package's result, or with `--workspace` an object keyed by package.
fn database(args: &Args, command: &DatabaseCommand, ws: &Workspace) -> Result<()> {
    let mut results = serde_json::Map::new();
    let mut json = false;
    let mut stopped = None;
    let mut tenant_failure = None;
    let requests = requests(command, &ws.targets)?;
    for (target, (conn, command, as_json)) in ws.targets.iter().zip(requests) {
        if !target.config.build_script && target.migrations_dir().is_dir() {
            // Keep the registry in step with the files before building. A
            // file that does not parse stops every command but the reads
            // (`status`, `history`, `lock-status`): during an incident they
            // still answer, and name the file.
            let regenerated = scaffold::registry_quiet(target, &harness::registry_cache(ws, target));
            match regenerated {
                // Read from the files, the broken one is named there, once.
                Err(_) if local::tolerates_broken_files(&command) && local::reads_files(target) => {}
                Err(e) if local::tolerates_broken_files(&command) => eprintln!("warning: {e:#}"),
                other => other?,
            }
        }
        json = as_json;
        let mut request = Request {
            connection: conn,
            command,
            state: None,
        };
        // Even commands that build nothing: `up` would fail on it next.
        scaffold::require_declared(target)?;
        let cache = harness::registry_cache(ws, target);
        let answer = if local::serves(target, &request) {
            local::run(target, &cache, &request, args.verbose)?
        } else {
            match local::nothing_to_do(target, &cache, &request, args.verbose)? {
                local::Settled::Answered(answer) => answer,
                local::Settled::Work(state) => {
                    request.state = state;
                    let bin = harness::build(ws, target, args.verbose)?;
                    harness::run(&bin, &request, args.verbose, |p| match json {
                        true => output::progress_on_stderr(p),
                        false => output::progress(p),
                    })
                    .inspect_err(|_| output::close_progress("failed"))?
                }
            }
        };
        if json {
            stopped = mongo_migrations::cli::interrupted(&target.name, &answer);
            if let Answer::TenantRuns(reports) = &answer {
                tenant_failure = tenant_failure.or(output::tenants_exit(reports).err());
            }
            if let Answer::Plan(report) = &answer {
                tenant_failure = tenant_failure.or(mongo_migrations::cli::plan_output::plan_exit(report).err());
            }
            if let Answer::TenantPlans(plans) = &answer {
                tenant_failure = tenant_failure.or(mongo_migrations::cli::plan_output::tenant_plans_exit(plans).err());
            }
            results.insert(target.name.clone(), answer.to_json());
        } else if let Err(failure) = mongo_migrations::cli::finish(&target.name, &request.command, answer, false) {
            if failure.code != Code::Interrupted {
                return Err(failure.into());
            }
            stopped = Some(failure);
        }
        if stopped.is_some() {
            // Stopped by Ctrl-C: later packages do not start either.
            break;
        }
    }
    if json {
        let document = output::one_or_keyed(results.into_iter().collect(), args.workspace);
        mongo_migrations::outln!("{}", serde_json::to_string_pretty(&document)?);
        if let Some(failure) = tenant_failure {
            return Err(failure.into());
        }
    }
    match stopped {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

/// Every package's request, all checked before any package runs: a bad
/// setting of the last package stops the run before the first one starts.
fn requests(command: &DatabaseCommand, targets: &[Target]) -> Result<Vec<(Connection, HarnessCommand, bool)>> {
    let requests = local::block_on(async {
        let mut all = Vec::new();
        for target in targets {
            all.push(mongo_migrations::cli::request(command, &target.name, &target.config).await?);
        }
        Ok::<_, Failure>(all)
    })??;
    one_collection_each(targets, &requests)?;
    Ok(requests)
}

/// Two packages that track their migrations in one collection would each
/// take the other's records for unknown versions and be blocked.
fn one_collection_each(targets: &[Target], requests: &[(Connection, HarnessCommand, bool)]) -> Result<()> {
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
