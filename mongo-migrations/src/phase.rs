//! The deploy phase a migration runs in.

use std::fmt;

/// When a migration runs in a rolling deploy, where old and new code run
/// side by side (expand/contract): before the new code is deployed, or after
/// the old code is gone. A module declares `pub const PHASE: Phase`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Before the deploy: changes the old code tolerates (add a field, backfill it).
    #[default]
    #[cfg_attr(feature = "cli", value(name = "pre", alias = "pre-deploy", help = None::<&str>))]
    PreDeploy,
    /// After the deploy: changes only the new code tolerates (drop the old field).
    #[cfg_attr(feature = "cli", value(name = "post", alias = "post-deploy", help = None::<&str>))]
    PostDeploy,
}

impl Phase {
    /// `pre-deploy` or `post-deploy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreDeploy => "pre-deploy",
            Phase::PostDeploy => "post-deploy",
        }
    }

    /// `pre`/`pre-deploy` or `post`/`post-deploy`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pre" | "pre-deploy" => Some(Phase::PreDeploy),
            "post" | "post-deploy" => Some(Phase::PostDeploy),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
