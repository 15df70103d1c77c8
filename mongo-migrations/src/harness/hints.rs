//! What a CLI user does next about each error: one hint per error, written
//! once, for the harness's answers and the CLI's own checks alike.

use crate::Error;

/// What the CLI user does next about `error`.
pub fn hint(error: &Error) -> &'static str {
    match error {
        Error::InvalidUri { .. } => "check --uri / MONGODB_URI",
        Error::Unreachable { .. } => {
            "check that the server is up and --uri / MONGODB_URI points at it; --connect-timeout SECS waits longer"
        }
        Error::AuthFailed { .. } => "check the user name, password and `authSource` in the URI",
        Error::MissingDatabase => {
            "pass --database, set MONGODB_DATABASE, set `database` under [package.metadata.mongo-migrate], or put it in the URI path"
        }
        Error::Locked { .. } => "see `cargo mongo-migrate lock-status`",
        Error::LockLost { .. } | Error::Conflict { .. } => "see `cargo mongo-migrate status`, then run again",
        Error::ChecksumMismatch { .. } => {
            "`cargo mongo-migrate status` marks every edited migration; an edit that changes nothing is a comment or a rename"
        }
        Error::Blocked { .. } | Error::UnknownVersions { .. } => "see `cargo mongo-migrate status`",
        Error::MigrationFailed { .. } | Error::SomeFailed { .. } => "see `cargo mongo-migrate history --status failed`",
        Error::MissingPrivileges { .. } => {
            "`db.getUser(\"<name>\")` shows the user's roles; `collMod` comes with `dbAdmin`, index builds with `readWrite`"
        }
        Error::TransactionsUnsupported { .. } => {
            "run against a replica set or sharded cluster, or make the migration non-transactional"
        }
        Error::NotForgettable { .. } => "only records of versions this build does not have can be forgotten; see `cargo mongo-migrate status`",
        Error::UnknownTarget { .. } | Error::NothingToResolve { .. } | Error::NotResolvable { .. } => {
            "see `cargo mongo-migrate status` for versions and states"
        }
        Error::OutOfOrder { .. } => "see `cargo mongo-migrate status`; the README's \"Team workflow\" explains the policy",
        Error::PartialSquash { .. } => {
            "see `cargo mongo-migrate status`; run `up` with the build from before the squash first"
        }
        Error::NotBaselinable { .. } => "see `cargo mongo-migrate status`; `up` applies what is pending",
        Error::ChecksumNotAcceptable { .. } => "see `cargo mongo-migrate status` for versions and states",
        Error::BadReplaces { .. } => "fix `REPLACES` in the squash module, then `cargo mongo-migrate registry`",
        Error::Irreversible { .. } => "roll back to a later version, or give the migration a `down`",
        Error::InvalidVersion(_) | Error::DuplicateVersion { .. } | Error::Unordered { .. } => {
            "regenerate the registry with `cargo mongo-migrate registry`"
        }
        Error::ServerLost { .. } | Error::Interrupted { .. } => {
            "check that the server is up and reachable, then run the command again; `cargo mongo-migrate status` shows what was recorded"
        }
        Error::Mongo(_) | Error::WriteFailed { .. } => "see `cargo mongo-migrate status`, then run again",
        Error::UnlockNotConfirmed => "make sure the holder is gone (`cargo mongo-migrate lock-status`), then confirm",
        Error::ForgetNotConfirmed => "check the versions with `cargo mongo-migrate status`, then confirm",
        Error::CorruptRecord { .. } => "see `cargo mongo-migrate history` for the record",
        Error::InvalidDatabaseName { .. } => "check the database names given",
        Error::InvalidEnv { .. } => "set the variable to `true` or `false`, or unset it",
        Error::Schema(_) => "see the server's words above; `check` runs no migration and changed nothing",
        Error::Harness(_) => "rebuild with `cargo mongo-migrate check --build`, or run with --verbose",
    }
}

#[cfg(test)]
mod tests {
    use super::hint;
    use crate::ErrorKind;
    use crate::{Error, Version};

    /// Each kind of failure points to its own next step, not one shared hint.
    #[test]
    fn every_error_kind_gets_its_own_hint_and_exit_class() {
        let v = Version::parse("20260101000000").unwrap();
        let cases: Vec<(Error, ErrorKind, &str)> = vec![
            (Error::MissingDatabase, ErrorKind::Configuration, "--database"),
            (
                Error::TransactionsUnsupported {
                    version: v,
                    name: "tx".into(),
                },
                ErrorKind::Failed,
                "replica set",
            ),
            (Error::lock_lost(), ErrorKind::Failed, "`cargo mongo-migrate status`"),
            (
                Error::MigrationFailed {
                    version: v,
                    name: "m".into(),
                    message: "boom".into(),
                    error: None,
                    completed: Vec::new(),
                },
                ErrorKind::Failed,
                "history --status failed",
            ),
            (
                Error::Locked {
                    holder: crate::LockedBy {
                        holder: None,
                        run_at: None,
                    },
                    expires_at: chrono::Utc::now(),
                },
                ErrorKind::Locked,
                "lock-status",
            ),
            (
                Error::Irreversible {
                    version: v,
                    name: "m".into(),
                },
                ErrorKind::Usage,
                "give the migration a `down`",
            ),
        ];
        for (error, kind, needle) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            let hint = hint(&error);
            assert!(hint.contains(needle), "{error}: {hint}");
            assert!(
                !hint.contains("history") || matches!(error, Error::MigrationFailed { .. }),
                "{error}: {hint}"
            );
        }
    }
}
