//! What runs and status report back.

use serde::{Deserialize, Serialize};

use crate::lock::LockInfo;
use crate::plan::{self, Records};
use crate::record::Record;
use crate::{Direction, MigrationStatus, Registry, Version};

/// One migration a run applied, rolled back, or (dry-run) would have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The migration's version.
    pub version: Version,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The batch it was (or would be) applied in.
    pub batch: i64,
    /// Whether it runs in a transaction.
    pub transactional: bool,
    /// Whether it has a `down`.
    pub reversible: bool,
    /// `None` in a dry-run.
    pub duration_ms: Option<i64>,
    /// Recorded as applied without running (`baseline`, or a squash whose
    /// replaced migrations were all applied).
    #[serde(default)]
    pub adopted: bool,
}

/// What `up` or `down` did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Applied (`up`) or rolled back (`down`).
    pub direction: Direction,
    /// Nothing was changed; `steps` is what would have run.
    pub dry_run: bool,
    /// What ran (or, in a dry-run, would run), in order.
    pub steps: Vec<Step>,
    /// Planned steps that did not run because a [`StopHandle`](crate::StopHandle)
    /// asked the run to stop; empty when it ran to the end.
    #[serde(default)]
    pub skipped: Vec<Step>,
    /// The walk that a stop request ended between two batches, if one did:
    /// it is the first of `skipped`, and the next run resumes it.
    #[serde(default)]
    pub stopped_walk: Option<StoppedWalk>,
    /// The run's wall time, from its first read to the lock's release (not
    /// in a dry-run). The steps' `duration_ms` are their bodies' alone.
    #[serde(default)]
    pub elapsed_ms: Option<i64>,
}

/// Where a stop request ended a walk in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoppedWalk {
    /// The migration.
    pub version: Version,
    /// Its name.
    pub name: String,
    /// Documents done, earlier runs included.
    pub documents_done: u64,
    /// Documents the walk covers, where it counted them.
    pub documents_total: Option<u64>,
}

impl RunReport {
    /// `true` when the run stopped on request before its plan was done.
    pub fn stopped(&self) -> bool {
        !self.skipped.is_empty()
    }
}

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Not applied: never run, rolled back whole, or resolved as pending.
    Pending,
    /// Applied and recorded.
    Applied,
    /// Started and not finished: in progress, or left by a runner that is gone.
    Running,
    /// Failed; see its error.
    Failed,
    /// Applied once, then rolled back: pending again.
    RolledBack,
    /// Recorded in the database, absent from this build.
    Unknown,
    /// Recorded in the database, replaced in this build by a squash (see
    /// [`StatusEntry::squashed_into`]).
    Squashed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// One migration in a [`StatusReport`].
pub struct StatusEntry {
    /// Its version.
    pub version: Version,
    /// Its name (from the registry, else from its record).
    pub name: String,
    /// Its description.
    pub description: String,
    /// Where it stands.
    pub state: State,
    /// The batch it was applied in, if it was.
    pub batch: Option<i64>,
    /// When it was applied, if it was.
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long its last run took.
    pub execution_time_ms: Option<i64>,
    /// The error of its last run, if it failed.
    pub error: Option<String>,
    /// Whether it has a `down`.
    pub reversible: bool,
    /// The migration's source changed after it was applied.
    pub checksum_changed: bool,
    /// A run that still holds the lock has claimed it (queued or running).
    #[serde(default)]
    pub in_progress: bool,
    /// For `running` and `failed`: who left it, and why it blocks.
    #[serde(default)]
    pub detail: Option<String>,
    /// Documents done by its walks in batches, while one is in progress or
    /// stopped at a checkpoint (see
    /// [`MigrationContext::batches`](crate::MigrationContext::batches)).
    #[serde(default)]
    pub documents_done: Option<i64>,
    /// Pending, and older than the newest applied migration of its phase.
    #[serde(default)]
    pub out_of_order: bool,
    /// When it runs in a rolling deploy (pre-deploy for records this build does not know).
    #[serde(default)]
    pub phase: crate::Phase,
    /// Recorded as applied by `baseline`, without running.
    #[serde(default)]
    pub baseline: bool,
    /// The squash that replaces it in this build.
    #[serde(default)]
    pub squashed_into: Option<Version>,
    /// The documents that violated each validator its last run staged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<crate::record::StagedViolations>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// How many migrations are in each state.
pub struct Counts {
    /// Applied.
    pub applied: usize,
    /// Never applied, or rolled back.
    pub pending: usize,
    /// Running (in progress, or left by a runner that is gone).
    pub running: usize,
    /// Failed.
    pub failed: usize,
    /// Rolled back (also counted as pending).
    pub rolled_back: usize,
    /// Recorded, but not in this build.
    pub unknown: usize,
    /// Recorded, and replaced by a squash in this build.
    #[serde(default)]
    pub squashed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// Every known and recorded migration, the counts, and the lock.
pub struct StatusReport {
    /// Known and recorded migrations, in version order.
    pub migrations: Vec<StatusEntry>,
    /// How many are in each state.
    pub counts: Counts,
    /// The lock document, held or expired; `None` when free.
    pub lock: Option<LockInfo>,
    /// The server is a `mongos` router: each router's clock judges the lease.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mongos: bool,
}

impl StatusReport {
    /// Every known and recorded migration with its state, and the counts.
    pub(crate) fn new(registry: &Registry, records: &Records, lock: Option<LockInfo>) -> Self {
        let lock_ref = lock.as_ref();
        let in_progress =
            |r: &Record| matches!(r.status, MigrationStatus::Planned | MigrationStatus::Running) && r.is_live(lock_ref);
        let detail = |r: &Record| match r.status {
            MigrationStatus::Running if in_progress(r) => Some(format!(
                "in progress by {}{}{}",
                lock_ref.map(|l| l.holder.to_string()).unwrap_or_default(),
                r.since(),
                match r.checkpoint_done() {
                    0 => String::new(),
                    n => format!(", {} documents done", thousands(n)),
                }
            )),
            MigrationStatus::Running if r.is_resumable() && r.stopped_at.is_some() => Some(format!(
                "stopped on request{}; resumes from its checkpoint ({} documents done)",
                crate::status::since_text(r.stopped_at).replacen(" since ", " at ", 1),
                thousands(r.checkpoint_done()),
            )),
            MigrationStatus::Running | MigrationStatus::Failed if r.is_resumable() => Some(format!(
                "{}resumes from its checkpoint ({} documents done); {}",
                match r.direction {
                    Direction::Down => "its `down` was cut off (it stands applied until a `down` finishes it); ",
                    Direction::Up => "",
                },
                thousands(r.checkpoint_done()),
                plan::blocker(r, lock_ref)
            )),
            MigrationStatus::Running | MigrationStatus::Failed => Some(plan::blocker(r, lock_ref).to_string()),
            _ => None,
        };
        let newest = plan::NewestApplied::of(registry, records);
        let known = registry.migrations().iter().map(|m| {
            let record = records.get(&m.version);
            let state = record.map_or(State::Pending, state_of);
            let out_of_order = matches!(state, State::Pending) && plan::out_of_order(m, records, newest);
            StatusEntry {
                version: m.version,
                name: m.name.to_string(),
                description: m.description.to_string(),
                state,
                // What a never-run claim or an undone step recorded says
                // nothing of where the migration stands now.
                batch: record.filter(|_| shows_applied(state)).map(|r| r.batch),
                applied_at: record.filter(|_| shows_applied(state)).and_then(|r| r.applied_at),
                execution_time_ms: record.and_then(|r| r.execution_time_ms),
                error: record.and_then(|r| r.error.clone()),
                reversible: m.is_reversible(),
                checksum_changed: record
                    .is_some_and(|r| r.status == MigrationStatus::Completed && plan::check_checksum(m, r).is_err()),
                in_progress: record.is_some_and(in_progress),
                detail: record.and_then(detail),
                documents_done: record.and_then(Record::documents_done),
                out_of_order,
                phase: m.phase,
                baseline: record.is_some_and(|r| r.baseline),
                squashed_into: None,
                // Of its last `up`: a rollback staged nothing.
                violations: record
                    .filter(|r| r.direction == Direction::Up)
                    .map(|r| r.violations.clone())
                    .unwrap_or_default(),
            }
        });
        let unknown = records
            .values()
            .filter(|r| registry.get(r.version).is_none() && !r.is_pending())
            .map(|r| StatusEntry {
                version: r.version,
                name: r.name.clone(),
                description: r.description.clone(),
                state: match registry.squashed_into(r.version) {
                    Some(_) => State::Squashed,
                    None => State::Unknown,
                },
                batch: Some(r.batch),
                applied_at: r.applied_at,
                execution_time_ms: r.execution_time_ms,
                error: r.error.clone(),
                reversible: r.reversible,
                checksum_changed: false,
                in_progress: in_progress(r),
                detail: detail(r),
                documents_done: r.documents_done(),
                out_of_order: false,
                phase: crate::Phase::PreDeploy,
                baseline: r.baseline,
                squashed_into: registry.squashed_into(r.version),
                violations: if r.direction == Direction::Up {
                    r.violations.clone()
                } else {
                    Vec::new()
                },
            });
        let mut migrations: Vec<StatusEntry> = known.chain(unknown).collect();
        migrations.sort_by_key(|e| e.version);
        let mut counts = Counts::default();
        for entry in &migrations {
            match entry.state {
                State::Pending => counts.pending += 1,
                State::Applied => counts.applied += 1,
                State::Running => counts.running += 1,
                State::Failed => counts.failed += 1,
                State::RolledBack => {
                    counts.rolled_back += 1;
                    counts.pending += 1;
                }
                State::Unknown => counts.unknown += 1,
                State::Squashed => counts.squashed += 1,
            }
        }
        StatusReport {
            migrations,
            counts,
            lock,
            mongos: false,
        }
    }
}

/// Whether a binary's migrations are in place (see
/// [`Migrator::state`](crate::Migrator::state)): ready when none of its
/// phase is pending, running or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Nothing of `phase` is pending, running or failed.
    pub ready: bool,
    /// The phase checked; `None`: every phase.
    pub phase: Option<crate::Phase>,
    /// Not applied yet (never run, rolled back, or stopped at a checkpoint).
    pub pending: Vec<Version>,
    /// Claimed or started, by a live run or one that is gone.
    pub running: Vec<Version>,
    /// Failed: they need `resolve` or a fix.
    pub failed: Vec<Version>,
    /// Applied, but unknown to this binary: the database is ahead of it (a
    /// newer version was deployed, then rolled back). Does not affect `ready`.
    pub ahead_of_binary: Vec<Version>,
}

impl Readiness {
    pub(crate) fn new(status: &StatusReport, phase: Option<crate::Phase>) -> Self {
        let mut r = Readiness {
            ready: false,
            phase,
            pending: Vec::new(),
            running: Vec::new(),
            failed: Vec::new(),
            ahead_of_binary: Vec::new(),
        };
        for e in &status.migrations {
            if e.state == State::Unknown {
                r.ahead_of_binary.push(e.version);
                continue;
            }
            if phase.is_some_and(|p| p != e.phase) {
                continue;
            }
            match e.state {
                _ if e.in_progress => r.running.push(e.version),
                State::Pending | State::RolledBack => r.pending.push(e.version),
                State::Running => r.running.push(e.version),
                State::Failed => r.failed.push(e.version),
                State::Applied | State::Unknown | State::Squashed => {}
            }
        }
        r.ready = r.pending.is_empty() && r.running.is_empty() && r.failed.is_empty();
        r
    }
}

/// Whether an entry in `state` shows when, and in which batch, it was applied.
fn shows_applied(state: State) -> bool {
    matches!(state, State::Applied | State::Failed | State::Unknown | State::Squashed)
}

fn state_of(record: &Record) -> State {
    if record.rolled_back_whole() || record.is_resumable() {
        // Its transaction did not commit: it stands as it was before.
        return if record.is_applied() {
            State::Applied
        } else {
            State::Pending
        };
    }
    match record.status {
        // A claim whose step never started leaves the migration as it was.
        MigrationStatus::Planned if record.is_applied() => State::Applied,
        MigrationStatus::Planned => State::Pending,
        MigrationStatus::Running => State::Running,
        MigrationStatus::Completed => State::Applied,
        MigrationStatus::Failed => State::Failed,
        // `resolve --pending` of a migration that never completed: pending,
        // not rolled back (nothing was).
        MigrationStatus::RolledBack if record.rolled_back_at.is_none() && record.applied_at.is_none() => State::Pending,
        MigrationStatus::RolledBack => State::RolledBack,
    }
}

/// `850 ms`, `3.4 s`, `12 min 5 s`.
pub(crate) fn duration(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1_000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
