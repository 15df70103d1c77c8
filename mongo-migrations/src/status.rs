//! The states a tracking record goes through, and directions. A leaf module:
//! errors, tracking and reports all name these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a migration stands in the tracking collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MigrationStatus {
    /// Claimed by a run that has not started it yet. If that run ends or
    /// loses its lock first, the migration never started: it stands as it
    /// was before (pending for `up`, applied for `down`).
    #[cfg_attr(feature = "cli", value(help = None::<&str>))]
    Planned,
    /// Started, not finished.
    #[cfg_attr(feature = "cli", value(help = None::<&str>))]
    Running,
    /// Applied (`up`) or rolled back (`down`) and recorded.
    #[cfg_attr(feature = "cli", value(help = None::<&str>))]
    Completed,
    /// Failed; the record keeps the error.
    #[cfg_attr(feature = "cli", value(help = None::<&str>))]
    Failed,
    /// Rolled back, or resolved as not applied.
    #[cfg_attr(feature = "cli", value(help = None::<&str>))]
    RolledBack,
}

impl MigrationStatus {
    const ALL: [MigrationStatus; 5] = [
        MigrationStatus::Planned,
        MigrationStatus::Running,
        MigrationStatus::Completed,
        MigrationStatus::Failed,
        MigrationStatus::RolledBack,
    ];

    /// The name stored in tracking records.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Planned => "planned",
            MigrationStatus::Running => "running",
            MigrationStatus::Completed => "completed",
            MigrationStatus::Failed => "failed",
            MigrationStatus::RolledBack => "rolled-back",
        }
    }

    /// From the name stored in tracking records.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl FromStr for MigrationStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}`: expected one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a tracked operation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Applying.
    Up,
    /// Rolling back.
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// The status a step in this direction ends in when it succeeds.
    pub(crate) fn done(self) -> MigrationStatus {
        match self {
            Direction::Up => MigrationStatus::Completed,
            Direction::Down => MigrationStatus::RolledBack,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `running` or `failed` migration blocks `up` and `down` until it
/// is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
#[non_exhaustive]
pub enum Blocker {
    /// Its last operation failed with this error.
    Failed {
        /// The direction it failed in.
        direction: Direction,
        /// The error it recorded.
        error: String,
    },
    /// A runner started it and did not record its end.
    LeftRunning {
        /// The direction it was running in.
        direction: Direction,
        /// The lock holder id that started it, if recorded.
        holder: Option<String>,
        /// When its body was allowed to start, if recorded.
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// What became of that runner.
        runner: Runner,
    },
}

/// What became of the runner that left a migration running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Runner {
    /// It was fenced: it lost its lock.
    LostItsLock,
    /// It still holds the lock (its run is in progress).
    StillHoldsTheLock,
    /// Its lock expired.
    LockExpired,
    /// Someone else holds the lock, or nobody does.
    Gone,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Failed { direction, error } => write!(f, "failed during {direction}: {error}"),
            Blocker::LeftRunning {
                direction,
                holder,
                since,
                runner,
            } => {
                let since = since_text(*since);
                let why = match runner {
                    Runner::LostItsLock => "which lost its lock",
                    Runner::StillHoldsTheLock => "which still holds the lock",
                    Runner::LockExpired => "whose lock expired",
                    Runner::Gone => "which no longer holds the lock",
                };
                let holder = holder.as_deref().unwrap_or("an unknown runner");
                write!(
                    f,
                    "left running{since} by {holder}, {why}; its {direction} may have run in part"
                )
            }
        }
    }
}

/// `" since <time>"`, or nothing: when a step was allowed to start.
pub(crate) fn since_text(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default()
}
