//! Who holds the lock, and who keeps a runner from taking it: plain data
//! shared by the lock, the errors and the progress events.

use bson::{doc, Document};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{MigrationStatus, Version};

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// New for every acquisition: the fencing identity of the holder.
    pub id: Uuid,
    /// The host name of the holder's machine.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// What the holder runs: `up`, `down`, `resolve`, `forget`.
    pub reason: String,
}

impl Holder {
    pub(crate) fn this_process(reason: &str) -> Self {
        Holder {
            id: Uuid::new_v4(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn to_document(&self) -> Document {
        doc! {
            "id": self.id.to_string(),
            "host": &self.host,
            "pid": i64::from(self.pid),
            "reason": &self.reason,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {}, {})", self.id, self.pid, self.host, self.reason)
    }
}

/// Who keeps a runner from taking the lock, as far as it could tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LockedBy {
    /// The lock's holder; `None` when the lock was released between the
    /// runner's attempt and its read of the lock.
    pub holder: Option<Holder>,
    /// Where the holder's run is, when a live claim of it was found.
    pub run_at: Option<(Version, MigrationStatus)>,
}

impl std::fmt::Display for LockedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(holder) => write!(f, "{holder}")?,
            None => f.write_str("another runner")?,
        }
        match self.run_at {
            Some((version, status)) => write!(f, " (its run is at {version} {status})"),
            None => Ok(()),
        }
    }
}
