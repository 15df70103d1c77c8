//! Transient faults of the network and the server (a dropped reply, a reset
//! connection, a failover): which errors a later attempt may not meet, and
//! the jittered pause before it. Pure; `retry.rs` retries over them, and
//! the schema operations use them for their own commands.

use std::time::Duration;

/// Server error codes after which a command may succeed when sent again:
/// the server is stepping down, shutting down, or not the primary (any
/// more), or the network between them failed. The retryable-writes
/// specification's list (`source/retryable-writes/retryable-writes.md`,
/// "Determining Retryable Errors"), which the raw commands of the run
/// protocol need in full: the server labels `RetryableWriteError` only on
/// commands that carry a `txnNumber`, and these never do. Beside it, 133
/// (a `mongos` while a shard has no primary) and 134 (a majority read before
/// the new primary can serve one), both of an election in progress.
pub(crate) const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    133,   // FailedToSatisfyReadPreference
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Whether `e` is a fault of the network or the server that a later attempt
/// may not meet: never a refusal of the command itself.
pub(crate) fn is_transient(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    if e.contains_label("RetryableWriteError") {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => TRANSIENT_CODES.contains(&w.code),
        _ => false,
    }
}

/// A random pause up to `max`, at least a fifth of it, so that waiters and
/// retries do not move in step.
pub(crate) fn jitter(max: Duration) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
    max / 5 + (max * 4 / 5) * random / 1_000
}
