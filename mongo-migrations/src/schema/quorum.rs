//! Which members must finish an index build before it commits
//! (`commitQuorum`), and how long a build is waited for. Pure.

use std::time::Duration;

use bson::Bson;
use serde::{Deserialize, Serialize};

/// `commitQuorum` of an index build on a replica set or sharded cluster
/// (the manual's `createIndexes`: `"votingMembers"`, the default, waits for
/// every data-bearing voting member; `"majority"`; or a number of members).
/// With `"votingMembers"`, one member down keeps a build from committing
/// until it is back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
#[non_exhaustive]
pub enum CommitQuorum {
    /// Every data-bearing voting member (`"votingMembers"`).
    #[default]
    VotingMembers,
    /// A majority of the data-bearing voting members (`"majority"`).
    Majority,
    /// This many data-bearing members.
    Members(u32),
}

impl CommitQuorum {
    /// As `createIndexes` takes it.
    pub fn to_bson(self) -> Bson {
        match self {
            CommitQuorum::VotingMembers => Bson::String("votingMembers".into()),
            CommitQuorum::Majority => Bson::String("majority".into()),
            CommitQuorum::Members(n) => Bson::Int32(i32::try_from(n).unwrap_or(i32::MAX)),
        }
    }
}

impl std::fmt::Display for CommitQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitQuorum::VotingMembers => f.write_str("votingMembers"),
            CommitQuorum::Majority => f.write_str("majority"),
            CommitQuorum::Members(n) => write!(f, "{n}"),
        }
    }
}

/// How a quorum is written in settings: a name, or a number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Count(u32),
    Name(String),
}

impl TryFrom<Repr> for CommitQuorum {
    type Error = String;

    fn try_from(repr: Repr) -> Result<Self, String> {
        match repr {
            Repr::Count(0) => Err("a commit quorum of 0 members commits a build that no member finished".into()),
            Repr::Count(n) => Ok(CommitQuorum::Members(n)),
            Repr::Name(name) => match name.as_str() {
                "votingMembers" => Ok(CommitQuorum::VotingMembers),
                "majority" => Ok(CommitQuorum::Majority),
                other => match other.parse::<u32>() {
                    Ok(n) => CommitQuorum::try_from(Repr::Count(n)),
                    Err(_) => Err(format!(
                        "`{other}` is not a commit quorum: \"votingMembers\", \"majority\" or a number of members"
                    )),
                },
            },
        }
    }
}

impl From<CommitQuorum> for Repr {
    fn from(q: CommitQuorum) -> Self {
        match q {
            CommitQuorum::Members(n) => Repr::Count(n),
            other => Repr::Name(other.to_string()),
        }
    }
}

/// How long a migration waits for an index build to commit by default: a
/// member that is down keeps a `"votingMembers"` build from committing,
/// and the run would otherwise wait (holding the lock) until it is back.
pub const DEFAULT_BUILD_WAIT: Duration = Duration::from_secs(2 * 60 * 60);

#[cfg(test)]
mod tests {
    use super::CommitQuorum;

    #[test]
    fn a_quorum_reads_as_settings_write_it_and_goes_to_the_server_as_it_takes_it() {
        let read = |v: serde_json::Value| serde_json::from_value::<CommitQuorum>(v);
        assert_eq!(read(serde_json::json!("majority")).unwrap(), CommitQuorum::Majority);
        assert_eq!(
            read(serde_json::json!("votingMembers")).unwrap(),
            CommitQuorum::VotingMembers
        );
        assert_eq!(read(serde_json::json!(2)).unwrap(), CommitQuorum::Members(2));
        assert_eq!(read(serde_json::json!("3")).unwrap(), CommitQuorum::Members(3));
        let e = read(serde_json::json!("all")).unwrap_err().to_string();
        assert!(e.contains("`all` is not a commit quorum"), "{e}");
        assert!(read(serde_json::json!(0)).is_err());
        assert_eq!(
            serde_json::to_value(CommitQuorum::Majority).unwrap(),
            serde_json::json!("majority")
        );
        assert_eq!(
            serde_json::to_value(CommitQuorum::Members(2)).unwrap(),
            serde_json::json!(2)
        );
        assert_eq!(
            CommitQuorum::default().to_bson(),
            bson::Bson::String("votingMembers".into())
        );
        assert_eq!(CommitQuorum::Members(2).to_bson(), bson::Bson::Int32(2));
    }
}
