//! What `plan` answers: every pending migration, in the order `up` would run
//! it, with what it would do to this database and a risk label for each
//! step, each with its reason.

use serde::{Deserialize, Serialize};

use crate::{LockInfo, Phase, Version};

/// How risky a step is, from the least to the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Risk {
    /// Nothing to fear as things stand.
    Safe,
    /// Will take long: more documents than the threshold.
    Slow,
    /// `plan` could not see what it does: runs code it cannot inspect.
    Unknown,
    /// Cannot be rolled back: the migration has no `down`.
    Irreversible,
    /// Removes something: an index, a validator's old form.
    Destructive,
    /// Will fail as things stand (duplicates, violators, an index in the way).
    Blocking,
}

impl Risk {
    /// As printed: `safe`, `slow`, `unknown`, `irreversible`, `destructive`, `blocking`.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Safe => "safe",
            Risk::Slow => "slow",
            Risk::Unknown => "unknown",
            Risk::Irreversible => "irreversible",
            Risk::Destructive => "destructive",
            Risk::Blocking => "blocking",
        }
    }
}

/// One step of a planned migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// Its risk.
    pub risk: Risk,
    /// What it would do to this database.
    pub what: String,
    /// Why it has that risk, where it is not safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One pending migration, as `plan` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMigration {
    /// Its version.
    pub version: Version,
    /// Its name.
    pub name: String,
    /// Its deploy phase.
    pub phase: Phase,
    /// The highest risk of its steps.
    pub risk: Risk,
    /// What it would do, in order.
    pub steps: Vec<PlanStep>,
}

/// What `plan` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// The database planned against.
    pub database: String,
    /// The lock, if a live runner holds it: the deploy would wait for it, or be refused.
    pub lock: Option<LockInfo>,
    /// Why `up` would be refused before running anything, if it would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The pending migrations, in the order `up` would run them.
    pub migrations: Vec<PlannedMigration>,
    /// The highest risk of all (safe when nothing is pending).
    pub risk: Risk,
}

impl PlanReport {
    /// Whether the deploy would fail as things stand: a blocking step, or
    /// a refusal.
    pub fn blocks(&self) -> bool {
        self.refused.is_some() || self.risk == Risk::Blocking
    }
}
