//! A migration binary: `cargo mongo-migrate`'s commands that need no files
//! (`up`, `down`, `status`, `history`, `lock-status`, `force-unlock`,
//! `resolve`, `baseline`, `forget`, the tenant flags), with the same flags,
//! output, `--json` and exit codes, for hosts without cargo. Feature `cli`.
//!
//! ```ignore
//! // src/bin/migrate.rs
//! fn main() -> std::process::ExitCode {
//!     mongo_migrations::cli::run(my_app::migrations::registry, mongo_migrations::settings!())
//! }
//! ```
//!
//! `cargo mongo-migrate` itself parses and prints with this module.
//!
//! - `args.rs`: the commands and their flags;
//! - `request.rs`: a command line into a harness request;
//! - `output.rs`: tables, summaries and progress lines;
//! - `render.rs`: an answer as text;
//! - `exit.rs`: exit codes and failures with a hint;
//! - `color.rs`: `--color`, `CARGO_TERM_COLOR`, `NO_COLOR`.

// The fields are the flags, documented by their `--help`.
#[allow(missing_docs)]
pub mod args;
pub mod color;
pub mod connection;
pub mod exit;
mod history;
pub mod output;
pub mod plan_output;
mod render;
mod request;
pub mod stdout;

use std::process::ExitCode;

use clap::Parser;

pub use args::{ConnectionArgs, DatabaseCommand, Tenancy};
pub use color::ColorChoice;
pub use exit::{Code, Failure};
pub use render::{interrupted, render};
pub use request::request;

use crate::harness::{self, Answer, Request};
use crate::{Error, Package, Registry};

/// The command line of a migration binary.
#[derive(Debug, Parser)]
#[command(disable_version_flag = true, styles = clap::builder::styling::Styles::plain())]
struct Binary {
    /// Print the migrations this binary carries and the runtime's version
    #[arg(short = 'V', long)]
    version: bool,

    /// Print errors with all their causes
    #[arg(short, long, global = true)]
    verbose: bool,

    /// Coloring: auto, always, never
    #[arg(long, global = true, value_enum, value_name = "WHEN", hide_possible_values = true)]
    color: Option<ColorChoice>,

    #[command(subcommand)]
    command: Option<DatabaseCommand>,
}

/// `main` of a migration binary: parses the command line, runs the command
/// against `MONGODB_URI` (or the package's `uri-env`) with the package's
/// settings as [`settings!`](crate::settings) read them at build time, prints
/// as `cargo mongo-migrate` does and returns its exit code.
pub fn run(registry: fn() -> Result<Registry, Error>, package: Result<Package, String>) -> ExitCode {
    let package = match package {
        Ok(p) => p,
        Err(message) => {
            return exit(&Failure::new(Code::Usage, message).hint("fix [package.metadata.mongo-migrate] and rebuild"))
        }
    };
    let bin = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "migrate".into());
    let about = format!("The migrations of {} {}", package.name, package.version);
    // The binary's own name and words, in its help too (without a command).
    let mut command = <Binary as clap::CommandFactory>::command()
        .name(bin.clone())
        .bin_name(bin)
        .about(about);
    let matches = command.clone().get_matches();
    let args = match <Binary as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    color::apply(args.color);
    let registry = match registry() {
        Ok(r) => r,
        Err(e) => return exit(&Failure::from_error(&e, args.verbose)),
    };
    if args.version {
        crate::outln!("{}", version_line(&package, &registry));
        return ExitCode::SUCCESS;
    }
    let Some(command) = args.command else {
        let _ = command.print_help();
        return ExitCode::from(Code::Usage as u8);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    match runtime.block_on(execute(&package, registry, &command, args.verbose)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => exit(&failure),
    }
}

fn exit(failure: &Failure) -> ExitCode {
    ExitCode::from(failure.report())
}

/// What `--version` prints: the package, its migrations and the runtime.
pub fn version_line(package: &Package, registry: &Registry) -> String {
    let migrations = registry.migrations();
    let newest = migrations
        .last()
        .map_or_else(|| "none".to_string(), |m| m.version().to_string());
    format!(
        "{} {}: {} {}, newest {newest} (mongo-migrations {})",
        package.name,
        package.version,
        migrations.len(),
        output::plural(migrations.len(), "migration"),
        env!("CARGO_PKG_VERSION")
    )
}

/// Runs `command` in this process, as the harness runs it for the CLI.
async fn execute(
    package: &Package,
    registry: Registry,
    command: &DatabaseCommand,
    verbose: bool,
) -> Result<(), Failure> {
    let (connection, remote, json) = request(command, &package.name, &package.settings).await?;
    let request = Request {
        connection,
        command: remote.clone(),
        state: None,
    };
    crate::stop::on_interrupt(output::interrupted);
    let answer = harness::run(request, registry, move |p, _| match json {
        true => output::progress_on_stderr(p),
        false => output::progress(p),
    })
    .await
    .map_err(|e| {
        output::close_progress("failed");
        Failure::from_error(&e, verbose)
    })?;
    finish(&package.name, &remote, answer, json)
}

/// Prints `answer` (as JSON with `json`) and turns a stopped run or a
/// tenant that did not go through into its failure.
pub fn finish(package: &str, command: &harness::Command, answer: Answer, json: bool) -> Result<(), Failure> {
    let interrupted = interrupted(package, &answer);
    if json {
        let tenants = match &answer {
            Answer::TenantRuns(reports) => output::tenants_exit(reports).err(),
            Answer::Plan(report) => plan_output::plan_exit(report).err(),
            Answer::TenantPlans(plans) => plan_output::tenant_plans_exit(plans).err(),
            _ => None,
        };
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&answer.to_json()).expect("a JSON value prints")
        );
        if let Some(failure) = tenants {
            return Err(failure);
        }
    } else {
        render(package, command, answer)?;
    }
    interrupted.map_or(Ok(()), Err)
}

#[cfg(test)]
mod binary_tests {
    use super::Binary;
    use crate::harness::Command as HarnessCommand;
    use clap::Parser as _;

    /// The binary's `up --continue-on-error` reaches the run's options, as
    /// the CLI's does (both parse and build requests here).
    #[tokio::test]
    async fn up_continue_on_error_reaches_the_run() {
        let settings = crate::Settings::default();
        for (args, expected) in [
            (&["migrate", "up", "--continue-on-error"][..], true),
            (&["migrate", "up"][..], false),
        ] {
            let binary = Binary::try_parse_from(args).unwrap();
            let command = binary.command.unwrap();
            std::env::set_var("MM_BINARY_TEST_URI", "mongodb://127.0.0.1:9/app");
            let settings = crate::Settings {
                uri_env: "MM_BINARY_TEST_URI".into(),
                ..settings.clone()
            };
            let (_, remote, _) = super::request(&command, "app", &settings).await.unwrap();
            let HarnessCommand::Up(options) = remote else {
                panic!("{remote:?}");
            };
            assert_eq!(options.continue_on_error, expected, "{args:?}");
        }
    }
}
