//! The raw multi-statement `update` command the tracking writes and the
//! walk's batches send, and how its reply is read: write errors, a
//! `writeConcernError`, the matched count.

use bson::{doc, Document};
use mongodb::Database;

use crate::retry::TRANSIENT_CODES;
use crate::server::journaled_doc;
use crate::Error;

/// Error code of a duplicate key on a unique index.
const DUPLICATE_KEY: i32 = 11000;

pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .is_some_and(|w| w.iter().any(|e| e.code == DUPLICATE_KEY)),
        _ => false,
    }
}

/// The outcome of a raw `update` command with several statements.
#[derive(Debug)]
pub(crate) struct UpdateReply {
    /// Statement indexes that failed with a duplicate key: with the upsert
    /// guard (see `tracking.rs`), a statement whose filter matched nothing.
    pub(crate) unmatched: Vec<usize>,
    /// Documents matched, over all statements.
    pub(crate) matched: i64,
}

/// Runs one `update` command with `statements`. With `ordered`, the server
/// stops at the first failing statement. Errors other than duplicate keys
/// are returned as errors.
pub(crate) async fn update(
    db: &Database,
    collection: &str,
    statements: Vec<Document>,
    ordered: bool,
    session: Option<&mut mongodb::ClientSession>,
) -> Result<UpdateReply, Error> {
    let mut command = doc! {
        "update": collection,
        "updates": statements,
        "ordered": ordered,
    };
    let reply = match session {
        // A transaction commits with its own write concern.
        Some(s) => db.run_command(command).session(s).await?,
        None => {
            command.insert("writeConcern", journaled_doc());
            db.run_command(command).await?
        }
    };
    read_update_reply(collection, &reply, Duplicates::Unmatched)
}

/// What a duplicate-key write error of an `update` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicates {
    /// The statement's guard did not match (see `tracking.rs`).
    Unmatched,
    /// An error, like every other write error.
    Fail,
}

/// Reads an `update` command's reply: its write errors (duplicate keys as
/// `duplicates` says), a `writeConcernError` (the write is not confirmed
/// as asked: an error, never a success), and the matched count. A write
/// error or `writeConcernError` of a failover or a shutdown is
/// [`Error::Interrupted`], which the run protocol retries; any other is
/// final.
pub(crate) fn read_update_reply(
    collection: &str,
    reply: &Document,
    duplicates: Duplicates,
) -> Result<UpdateReply, Error> {
    let mut unmatched = Vec::new();
    if let Ok(errors) = reply.get_array("writeErrors") {
        for error in errors {
            let error = error.as_document().cloned().unwrap_or_default();
            let code = error.get_i32("code").unwrap_or(0);
            let index = error
                .get_i32("index")
                .ok()
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(0);
            if code == DUPLICATE_KEY && duplicates == Duplicates::Unmatched {
                unmatched.push(index);
            } else if TRANSIENT_CODES.contains(&code) {
                // NotWritablePrimary and its kin: refused by a member that
                // stepped down; the primary to come may take it.
                return Err(Error::Interrupted {
                    collection: collection.to_string(),
                    code,
                    message: error.get_str("errmsg").unwrap_or("").to_string(),
                });
            } else {
                let message = error.get_str("errmsg").unwrap_or("unknown write error");
                return Err(Error::WriteFailed {
                    collection: collection.to_string(),
                    message: format!("statement {index}: {message} (code {code})"),
                });
            }
        }
    }
    if let Ok(wce) = reply.get_document("writeConcernError") {
        // A stepdown or a shutdown while the write waited for the majority:
        // it may well have landed; retried, it matches its own attempt.
        if let Some(code) = wce.get_i32("code").ok().filter(|c| TRANSIENT_CODES.contains(c)) {
            return Err(Error::Interrupted {
                collection: collection.to_string(),
                code,
                message: wce.get_str("errmsg").unwrap_or("").to_string(),
            });
        }
        let timed_out = wce.get_i32("code") == Ok(64)
            || wce
                .get_document("errInfo")
                .is_ok_and(|info| info.get_bool("wtimeout") == Ok(true));
        if timed_out {
            return Err(Error::WriteFailed {
                collection: collection.to_string(),
                message: format!(
                    "the majority did not confirm the write within {} s (`wtimeout`): the replica set may have lost its majority (a member down or far behind); the write may still be applied, or rolled back: bring the members back, then run again",
                    crate::server::MAJORITY_WAIT.as_secs()
                ),
            });
        }
        return Err(Error::WriteFailed {
            collection: collection.to_string(),
            message: format!("the majority write was not confirmed: {wce}"),
        });
    }
    let matched = match reply.get("n") {
        Some(bson::Bson::Int32(n)) => i64::from(*n),
        Some(bson::Bson::Int64(n)) => *n,
        _ => 0,
    };
    Ok(UpdateReply { unmatched, matched })
}

#[cfg(test)]
mod reply_tests {
    use super::{read_update_reply, Duplicates};
    use crate::Error;
    use bson::doc;

    /// mongod's reply when `wtimeout` passed before the majority confirmed
    /// (`src/mongo/db/write_concern.cpp`, `waitForWriteConcern`: code 64
    /// `WriteConcernFailed`, `errInfo.wtimeout: true`).
    #[test]
    fn a_write_the_majority_did_not_confirm_in_time_says_so() {
        let reply = doc! { "ok": 1.0, "n": 1_i32, "nModified": 1_i32, "writeConcernError": {
        "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out",
        "errInfo": { "wtimeout": true, "writeConcern": { "w": "majority", "j": true, "wtimeout": 15000 } } } };
        let e = read_update_reply("migrations", &reply, Duplicates::Fail).unwrap_err();
        assert!(matches!(e, Error::WriteFailed { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("within 15 s (`wtimeout`): the replica set may have lost its majority"),
            "{e}"
        );
    }

    #[test]
    fn an_update_reply_is_read_whole() {
        let ok = doc! { "ok": 1, "n": 3_i32, "nModified": 3_i32 };
        assert_eq!(read_update_reply("c", &ok, Duplicates::Fail).unwrap().matched, 3);
        // A write concern that was not met is an error, whatever `n` says.
        let wce =
            doc! { "ok": 1, "n": 3_i32, "writeConcernError": { "code": 100, "errmsg": "unsatisfiable write concern" } };
        for duplicates in [Duplicates::Fail, Duplicates::Unmatched] {
            let e = read_update_reply("c", &wce, duplicates).unwrap_err().to_string();
            assert!(e.contains("not confirmed") && e.contains("unsatisfiable"), "{e}");
        }
        let dup =
            doc! { "ok": 1, "n": 1_i32, "writeErrors": [ { "index": 1_i32, "code": 11000_i32, "errmsg": "E11000" } ] };
        assert_eq!(
            read_update_reply("c", &dup, Duplicates::Unmatched).unwrap().unmatched,
            [1]
        );
        let e = read_update_reply("c", &dup, Duplicates::Fail).unwrap_err().to_string();
        assert!(e.contains("statement 1: E11000 (code 11000)"), "{e}");
        let other = doc! { "ok": 1, "n": 0_i32, "writeErrors": [ { "index": 0_i32, "code": 121_i32, "errmsg": "Document failed validation" } ] };
        assert!(read_update_reply("c", &other, Duplicates::Unmatched).is_err());
    }

    /// A failover's replies to a write that reached the primary, as the
    /// retryable-writes specification lists them
    /// (`source/retryable-writes/retryable-writes.md`, "Determining
    /// Retryable Errors"; its `tests/unified/*-serverErrors.yml` inject
    /// `writeConcernError: { code: 91, errmsg: "Replication is being shut
    /// down" }` on writes that applied): `ok: 1`, the write counted, and
    /// the majority wait failed. Retried, never final, never a success.
    #[test]
    fn a_write_answered_during_a_failover_is_interrupted_not_failed() {
        for (code, errmsg) in [
            (91, "Replication is being shut down"),
            (189, "PrimarySteppedDown"),
            (11600, "interrupted at shutdown"),
            (
                11602,
                "operation was interrupted because a replica set state change occurred",
            ),
            (10107, "Not primary while waiting for write concern"),
        ] {
            let reply = doc! { "ok": 1.0, "n": 1_i32, "nModified": 1_i32, "writeConcernError": { "code": code, "errmsg": errmsg } };
            for duplicates in [Duplicates::Fail, Duplicates::Unmatched] {
                let e = read_update_reply("migrations", &reply, duplicates).unwrap_err();
                assert!(
                    matches!(e, Error::Interrupted { code: c, .. } if c == code),
                    "{code}: {e:?}"
                );
                assert_eq!(e.kind(), crate::ErrorKind::Connection);
            }
        }
        // A member that is no longer the primary refuses a statement.
        let refused = doc! { "ok": 1.0, "n": 0_i32, "writeErrors": [ { "index": 0_i32, "code": 10107_i32, "errmsg": "not primary" } ] };
        let e = read_update_reply("migrations", &refused, Duplicates::Unmatched).unwrap_err();
        assert!(matches!(e, Error::Interrupted { code: 10107, .. }), "{e:?}");
        assert!(e.to_string().contains("may have landed"), "{e}");
        // mongos while a shard has no primary.
        let no_primary = doc! { "ok": 1.0, "n": 0_i32, "writeErrors": [ { "index": 0_i32, "code": 133_i32, "errmsg": "Could not find host matching read preference { mode: \"primary\" }" } ] };
        assert!(matches!(
            read_update_reply("migrations", &no_primary, Duplicates::Fail),
            Err(Error::Interrupted { code: 133, .. })
        ));
    }
}
