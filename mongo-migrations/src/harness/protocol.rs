//! The harness's protocol: one [`Request`] on stdin, [`Reply`] lines on
//! stdout (progress, then one [`Answer`] or [`ErrorReply`]).

use serde::{Deserialize, Serialize};

use super::hints::hint;
use crate::{
    Config, DownOptions, Error, ErrorKind, HistoryQuery, LockInfo, Record, Resolution, RunReport, StatusReport,
    TenantReport, TenantStatus, UpOptions, Version,
};

/// Where and how to connect: the one settings type from the package's
/// metadata to the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub uri: String,
    pub database: Option<String>,
    /// The runtime settings: collections, lock TTL, connect timeout, policy.
    pub config: Config,
    /// How long `up`/`down` wait for a lock another runner holds.
    pub lock_wait_secs: Option<u64>,
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
    /// The declared collections (`schema-fn`), as `diff` compares them with
    /// the snapshot; connects to nothing.
    Schema,
    /// Where the database differs from the declared collections, for `check`.
    Drift,
    /// What `up` with these options would do to this database, read-only
    /// (`plan`): steps over more than `slow` documents are slow; `markdown`
    /// is how the CLI prints it.
    Plan {
        options: UpOptions,
        slow: u64,
        markdown: bool,
    },
    /// `Up`, `Status` or `Plan` over many databases, one per tenant.
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
        !self.applies() && !self.reads_schema()
    }

    /// `Schema`, `Drift` and `Plan`: they need the crate's declared
    /// collections or its migrations' code, so a build of it.
    pub fn reads_schema(&self) -> bool {
        matches!(self, Command::Schema | Command::Drift | Command::Plan { .. })
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
    /// What the CLI read of the lock and the records before it built the
    /// harness (see [`Migrator::state_read`](crate::Migrator::state_read)):
    /// the harness starts from it rather than asking again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::StateRead>,
}

/// One line of the harness's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply {
    Progress(crate::Progress),
    Result(Box<Answer>),
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

impl From<&Error> for ErrorReply {
    fn from(e: &Error) -> Self {
        ErrorReply {
            kind: e.kind(),
            message: e.to_string(),
            hint: Some(hint(e).to_string()),
            detail: Some(chain(e)),
        }
    }
}

/// The answer to one command, typed; it is serialized only on the pipe
/// between the harness and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Answer {
    /// `up`, `down`, `baseline`.
    Run(RunReport),
    Status(StatusReport),
    History(Vec<Record>),
    /// `lock-status`, and `force-unlock` (the lock as it was).
    Lock(Option<LockInfo>),
    Forgotten(Vec<Record>),
    Resolved(Box<Record>),
    TenantRuns(Vec<TenantReport>),
    TenantStatuses(Vec<TenantStatus>),
    /// The declared collections, each as [`Collection::to_json`](crate::schema::Collection::to_json) writes it.
    Schema(Vec<serde_json::Value>),
    Drift(Vec<crate::schema::Drift>),
    /// `plan`.
    Plan(crate::PlanReport),
    /// `plan` over many databases.
    TenantPlans(Vec<crate::TenantPlan>),
}

impl Answer {
    /// The answer as `--json` prints it: the report itself, untagged.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Answer::Run(r) => serde_json::to_value(r),
            Answer::Status(r) => serde_json::to_value(r),
            Answer::History(r) | Answer::Forgotten(r) => serde_json::to_value(r),
            // An object either way, as HTTP answers: `{"lock": null}` when free.
            Answer::Lock(r) => serde_json::to_value(r).map(|lock| serde_json::json!({ "lock": lock })),
            Answer::Resolved(r) => serde_json::to_value(r),
            Answer::TenantRuns(r) => serde_json::to_value(r),
            Answer::TenantStatuses(r) => serde_json::to_value(r),
            Answer::Schema(r) => serde_json::to_value(r),
            Answer::Drift(r) => serde_json::to_value(r),
            Answer::Plan(r) => serde_json::to_value(r),
            Answer::TenantPlans(r) => serde_json::to_value(r),
        };
        value.expect("reports serialize to JSON")
    }

    /// The run's report, for `up`, `down` and `baseline`.
    pub fn run(&self) -> Option<&RunReport> {
        match self {
            Answer::Run(r) => Some(r),
            _ => None,
        }
    }
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
