//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
pub use mongo_migrations::cli::{ColorChoice, ConnectionArgs};

#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::styling::Styles::plain())]
pub enum Cargo {
    MongoMigrate(Args),
}

/// Versioned, typed MongoDB migrations for this crate.
#[derive(Debug, clap::Args)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Path to Cargo.toml
    #[arg(long, global = true, value_name = "PATH", help_heading = "Manifest Options")]
    pub manifest_path: Option<PathBuf>,

    /// Package to work on
    #[arg(short, long, global = true, value_name = "SPEC", help_heading = "Package Selection")]
    pub package: Option<String>,

    /// Every workspace member that has migrations, dependencies first
    #[arg(long, global = true, conflicts_with = "package", help_heading = "Package Selection")]
    pub workspace: bool,

    /// Features of the package to build its migrations with (comma separated)
    #[arg(
        short = 'F',
        long,
        global = true,
        value_name = "FEATURES",
        value_delimiter = ',',
        help_heading = "Feature Selection"
    )]
    pub features: Vec<String>,

    /// Build the migrations with all features of the package
    #[arg(long, global = true, help_heading = "Feature Selection")]
    pub all_features: bool,

    /// Build the migrations without the package's default features
    #[arg(long, global = true, help_heading = "Feature Selection")]
    pub no_default_features: bool,

    /// Print the commands this runs, and errors with all their causes
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Coloring: auto, always, never [default: $CARGO_TERM_COLOR, or auto]
    #[arg(long, global = true, value_enum, value_name = "WHEN", hide_possible_values = true)]
    pub color: Option<ColorChoice>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a migration file and regenerate the registry
    New {
        /// What the migration does, e.g. add-email-index
        name: String,
        /// Version to use instead of the current UTC time (YYYYMMDDHHMMSS)
        #[arg(long, conflicts_with = "before")]
        version: Option<String>,
        /// Place it just before the migration VERSION, in that migration's deploy
        /// phase (a data fix before a generated post-deploy enforcement)
        #[arg(long, value_name = "VERSION")]
        before: Option<String>,
    },
    /// Write the migrations for what changed in the declared collections
    Diff {
        /// What the change is, e.g. add-email-index
        name: String,
        /// Version to use instead of the current UTC time (YYYYMMDDHHMMSS)
        #[arg(long)]
        version: Option<String>,
        /// Also write a data migration between the two phases' modules, to bring
        /// the documents to the new shape before the validator is enforced
        #[arg(long)]
        with_data: bool,
        /// After a git merge of two branches that both ran `diff`: keep the
        /// snapshot and modules of the branch merged into, and write the other
        /// side's changes again, as one new migration
        #[arg(long)]
        after_merge: bool,
    },
    /// Regenerate the registry module from the migration files
    Registry,
    #[command(flatten)]
    Database(mongo_migrations::cli::DatabaseCommand),
    /// Replace every migration up to VERSION with one new module
    Squash {
        /// The last migration to replace
        #[arg(long, value_name = "VERSION")]
        to: String,
        /// The new module's name
        #[arg(long, default_value = "squashed")]
        name: String,
        /// Delete the replaced files even where git does not keep them (untracked or modified)
        #[arg(long)]
        force: bool,
    },
    /// Give a migration a new version (after a version clash in a merge, or to
    /// run it after those applied); only one applied nowhere
    Renumber {
        /// The migration: its version, file name or path (a file, where two share a version)
        migration: String,
        /// The new version (YYYYMMDDHHMMSS) [default: the current UTC time]
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Build a migration binary of this package (release): the commands above that need no files, for hosts without cargo
    Bundle {
        /// Copy the binary here [default: it stays in the target directory, as `PACKAGE-migrate`]
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Build for this target triple
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        /// Build with this cargo profile
        #[arg(long, value_name = "NAME", default_value = "release")]
        profile: String,
    },
    /// Print the package's effective settings and where each comes from
    Config {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check the migrations for CI: offline, and against the database when a URI is given
    Check {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Check only the files, even if a URI is set
        #[arg(long)]
        offline: bool,
        /// Also compile the migrations (builds the harness; runs nothing)
        #[arg(long)]
        build: bool,
        /// With a URI: also plan the deploy (`plan`), each blocking step a finding that needs attention
        #[arg(long)]
        plan: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cargo::command().debug_assert();
    }
}
