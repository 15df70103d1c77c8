//! The arguments of the commands that run migrations or read the
//! database: shared by `cargo mongo-migrate` and a migration binary, so
//! both take the same flags.

use clap::{ArgGroup, Subcommand};

/// The commands that need the migrations and the database, not the files.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum DatabaseCommand {
    /// Apply pending migrations
    Up {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Show what would run; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Apply up to and including this version
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// While another runner holds the lock, wait up to SECS for it
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
        /// Also apply pending migrations older than the newest applied one
        #[arg(long)]
        allow_out_of_order: bool,
        /// Only this deploy phase: `pre` (before the new code), or `post` (after it; only those
        /// whose older pre-deploy migrations are applied)
        #[arg(long, value_enum)]
        phase: Option<crate::Phase>,
        #[command(flatten)]
        tenancy: Tenancy,
        /// With --databases*: start no other database after one fails
        #[arg(long, help_heading = "Tenant Databases")]
        fail_fast: bool,
        /// Go on past a failed migration that declares `pub const INDEPENDENT: bool = true;`
        /// (recorded `failed`, listed at the end, exit 1); any other failure still stops the run
        #[arg(long)]
        continue_on_error: bool,
        /// Print the run's report as JSON (per database with --databases*)
        #[arg(long)]
        json: bool,
    },
    /// Roll back applied migrations, the most recently applied first (one by default)
    #[command(group(ArgGroup::new("target").args(["steps", "batch", "to"])))]
    Down {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Roll back the last N migrations (N >= 1)
        #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        steps: Option<usize>,
        /// Roll back the whole last batch
        #[arg(long)]
        batch: bool,
        /// Roll back everything applied after this version
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Show what would run; change nothing
        #[arg(long)]
        dry_run: bool,
        /// While another runner holds the lock, wait up to SECS for it
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
        /// Print the run's report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show applied, pending and failed migrations and the lock
    Status {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        tenancy: Tenancy,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show every run (apply, rollback, failure, stop), most recent first
    History {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Only runs that ended so (with --json: records in this state)
        #[arg(long, value_enum)]
        status: Option<crate::MigrationStatus>,
        /// At most N runs, or records with --json (N >= 1; without it, all)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Skip the first N runs, or records with --json
        #[arg(long, value_name = "N", default_value_t = 0)]
        skip: u64,
        /// Print the tracking records, each with its log, as JSON
        #[arg(long)]
        json: bool,
    },
    /// What `up` would do to this database, read-only: each pending migration's operations, with
    /// counts and a risk label (exit 4 when anything would fail as things stand)
    Plan {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Plan up to and including this version
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Only this deploy phase (as `up --phase`)
        #[arg(long, value_enum)]
        phase: Option<crate::Phase>,
        /// A step over more documents than N is labelled slow
        #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_SLOW_DOCUMENTS)]
        slow_documents: u64,
        #[command(flatten)]
        tenancy: Tenancy,
        /// Print JSON
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print Markdown, for a pull-request comment
        #[arg(long)]
        markdown: bool,
    },
    /// Show who holds the migration lock
    LockStatus {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Release the migration lock whoever holds it
    ForceUnlock {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Confirm: the holder, if alive, is fenced off and records nothing more
        #[arg(long)]
        yes: bool,
    },
    /// Settle a migration left running or failed, or accept an edit of a completed one
    #[command(group(ArgGroup::new("as").args(["applied", "pending", "accept_checksum"]).required(true)))]
    Resolve {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// The migration's version
        version: String,
        /// Its effect is in place: record it as applied
        #[arg(long)]
        applied: bool,
        /// Its effect is not in place: run it again on the next `up`
        #[arg(long)]
        pending: bool,
        /// It is completed and its file was edited harmlessly: record the new checksum
        #[arg(long)]
        accept_checksum: bool,
    },
    /// Record every migration up to VERSION as applied without running it (adopt an existing database)
    Baseline {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// The last migration whose effect the database already has
        version: String,
    },
    /// Remove the tracking records of migrations whose files were deleted (kept in `<tracking>_audit`)
    Forget {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Versions this build no longer has
        #[arg(required = true, value_name = "VERSION")]
        versions: Vec<String>,
        /// Confirm: the records are removed (a copy stays in the audit collection)
        #[arg(long)]
        yes: bool,
    },
}

/// The connection flags every database command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// MongoDB URI [default: $MONGODB_URI, or the package's `uri-env`]
    #[arg(long, value_name = "URI", help_heading = "Connection")]
    pub uri: Option<String>,
    /// Database [default: $MONGODB_DATABASE, the package's `database`, or the URI's path]
    #[arg(long, value_name = "NAME", help_heading = "Connection")]
    pub database: Option<String>,
    /// Seconds to wait for a server before reporting it unreachable
    #[arg(long, value_name = "SECS", default_value_t = crate::cli::connection::DEFAULT_CONNECT_TIMEOUT_SECS, help_heading = "Connection")]
    pub connect_timeout: u64,
}

/// One database per tenant, the same migrations in each.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Tenancy {
    /// Run in each of these databases (comma separated), each with its own tracking and lock
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        conflicts_with = "databases_from_regex",
        help_heading = "Tenant Databases"
    )]
    pub databases: Vec<String>,
    /// Run in every database whose name matches REGEX (as listDatabases lists them)
    #[arg(long, value_name = "REGEX", help_heading = "Tenant Databases")]
    pub databases_from_regex: Option<String>,
    /// With --databases*: how many databases migrate at once
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Tenant Databases")]
    pub concurrency: u64,
}

impl Tenancy {
    pub fn is_set(&self) -> bool {
        !self.databases.is_empty() || self.databases_from_regex.is_some()
    }
}
