//! `cargo mongo-migrate`: scaffolds migrations, regenerates the registry, and
//! builds and runs the harness that applies them.

mod check;
mod cli;
mod exit;
mod harness;
mod local;
mod output;
mod request;
mod scaffold;
mod workspace;

use anyhow::Result;
use clap::Parser;
use mongo_migrate::harness::{Answer, Command as Remote, Request};
use mongo_migrate::Resolution;

use cli::{Args, Cargo, Command};
use exit::{Code, Failure};
use workspace::Workspace;

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
        Command::Squash { to, name, force } => {
            let [target] = ws.targets.as_slice() else {
                return Err(Failure::new(Code::Usage, "`squash` works on one package")
                    .hint("pass -p <package>")
                    .into());
            };
            scaffold::squash(target, to, name, *force)
        }
        Command::Check {
            conn,
            offline,
            build,
            json,
        } => check::run(&ws, conn, *offline, *build, *json, args.verbose),
        _ => remote(&args, &ws),
    }
}

/// Commands that run in the harness, package by package. With `--json`, one
/// document: the package's result, or with `--workspace` an object keyed by package.
fn remote(args: &Args, ws: &Workspace) -> Result<()> {
    let mut results = serde_json::Map::new();
    let mut json = false;
    let mut stopped = None;
    let mut tenant_failure = None;
    let requests = request::all(&args.command, &ws.targets)?;
    for (target, (conn, command, as_json)) in ws.targets.iter().zip(requests) {
        if !target.config.build_script && target.migrations_dir().is_dir() {
            // Keep the registry in step with the files before building.
            scaffold::registry_quiet(target, &harness::registry_cache(ws, target))?;
        }
        json = as_json;
        let request = Request {
            connection: conn,
            command,
        };
        // Even commands that build nothing: `up` would fail on it next.
        scaffold::require_declared(target)?;
        let cache = harness::registry_cache(ws, target);
        let answer = if local::serves(target, &request) {
            local::run(target, &cache, &request, args.verbose)?
        } else if let Some(answer) = local::nothing_to_do(target, &cache, &request, args.verbose)? {
            answer
        } else {
            let bin = harness::build(ws, target, args.verbose)?;
            harness::run(&bin, &request, args.verbose, |p| {
                if !json {
                    output::progress(p)
                }
            })
            .inspect_err(|_| output::close_progress("failed"))?
        };
        let run = answer.run();
        let skipped = run.map_or(0, |r| r.skipped.len());
        let walk = run.and_then(|r| r.stopped_walk.clone());
        if json {
            if let Answer::TenantRuns(reports) = &answer {
                tenant_failure = tenant_failure.or(output::tenants_exit(reports).err());
            }
            results.insert(target.name.clone(), answer.to_json());
        } else {
            render(&target.name, &request.command, answer)?;
        }
        if skipped > 0 {
            // Stopped by Ctrl-C: later packages do not start either.
            stopped = Some((target.name.clone(), skipped, walk));
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
        if let Some(failure) = tenant_failure {
            return Err(failure);
        }
    }
    match stopped {
        Some((package, _, Some(walk))) => {
            let of = walk.documents_total.map(|t| format!(" of {t}")).unwrap_or_default();
            Err(Failure::new(
                Code::Interrupted,
                format!(
                    "{package}: stopped on request after {}{of} documents of {} {}; the next `up` resumes from the checkpoint",
                    walk.documents_done, walk.version, walk.name
                ),
            )
            .hint("the checkpoint is recorded and the lock is free; run the command again to go on")
            .into())
        }
        Some((package, n, None)) => Err(Failure::new(
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

fn render(package: &str, command: &Remote, answer: Answer) -> Result<()> {
    match answer {
        Answer::Run(report) => match command {
            Remote::Baseline { to } => {
                let n = report.steps.len();
                println!(
                    "{package}: baselined {n} {} up to {to}, recorded as applied without running (batch {})",
                    output::plural(n, "migration"),
                    report.steps.first().map_or(0, |s| s.batch)
                );
            }
            _ => output::run_report(package, &report),
        },
        Answer::Status(report) => output::status(package, &report),
        Answer::History(records) => output::history(package, &records),
        Answer::Lock(lock) => match command {
            Remote::ForceUnlock { .. } => match lock.filter(|l| !l.expired) {
                Some(l) => println!("{package}: released the lock held by {}", l.holder),
                None => println!("{package}: the lock was free; it is released all the same"),
            },
            _ => println!("{package}: lock {}", output::lock_line(lock.as_ref())),
        },
        Answer::Forgotten(records) => {
            for r in records {
                println!(
                    "{package}: forgot {} {} (was {}; a copy is in the audit collection)",
                    r.version, r.name, r.status
                );
            }
        }
        Answer::Resolved(record) => match command {
            Remote::Resolve {
                resolution: Resolution::AcceptChecksum,
                version,
            } => println!(
                "{package}: accepted the edit of {version} {}; `up` no longer refuses it",
                record.name
            ),
            Remote::Resolve {
                resolution: Resolution::Pending,
                version,
            } => println!("{package}: marked {version} as pending"),
            _ => println!("{package}: marked {} as applied", record.version),
        },
        Answer::TenantRuns(reports) => return output::tenants_up(package, &reports),
        Answer::TenantStatuses(statuses) => return output::tenants_status(package, &statuses),
        // An answer newer than this CLI: print it as the JSON it is.
        other => println!("{package}: {}", other.to_json()),
    }
    Ok(())
}
