//! Retrying the run protocol's commands over transient faults (see
//! `transient.rs`) within a window, with jittered backoff.
//!
//! Every command retried here is safe to send twice: reads are, and each
//! protocol write either matches its own earlier attempt (see
//! `tracking/steps.rs`) or fails on a fence, which a retry cannot get past.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

pub(crate) use crate::transient::{is_transient, jitter, TRANSIENT_CODES};

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The least time one attempt is given to answer, however little of the
/// window is left: a slow command is not cut short by a short lock TTL.
const ATTEMPT_FLOOR: Duration = Duration::from_secs(10);

/// How long the run protocol retries one command over transient faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// From the first attempt: nine tenths of the lock's TTL, the lease a
    /// runner may act on without a new proof.
    pub(crate) window: Duration,
}

/// How long mongod may keep a write waiting on a dead runner's open
/// transaction: its reaper runs every `transactionLifetimeLimitSeconds / 2`
/// and aborts the transactions older than the limit (60 s by default;
/// `src/mongo/db/periodic_runner_job_abort_expired_transactions.cpp`), so
/// one is gone 60 to 90 s after it started. Plus a margin.
pub(crate) const REAPER_WAIT: Duration = Duration::from_secs(100);

impl Retry {
    pub(crate) fn within(ttl: Duration) -> Self {
        Retry {
            window: ttl.mul_f64(0.9),
        }
    }

    /// This window, or [`REAPER_WAIT`] if longer: for a write that may meet
    /// a dead runner's open transaction (the fence), whose wait ends only
    /// when mongod aborts it.
    pub(crate) fn outlasting_the_reaper(&self) -> Self {
        Retry {
            window: self.window.max(REAPER_WAIT),
        }
    }

    /// Runs `attempt` until it succeeds, fails with anything but a
    /// transient fault, or the window is over; the result, and whether an
    /// attempt before it failed (its write may then have landed). Gives up
    /// with [`Error::ServerLost`], naming `during`.
    pub(crate) async fn run<T, F, Fut>(&self, during: impl Fn() -> String, mut attempt: F) -> Result<(T, bool), Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut failed = false;
        loop {
            // An attempt that gets no answer (a black-holed connection) is a
            // fault like a reset one: it may have landed, and it ends.
            let patience = self.window.saturating_sub(started.elapsed()).max(ATTEMPT_FLOOR);
            let fault = match tokio::time::timeout(patience, attempt()).await {
                Ok(Ok(value)) => return Ok((value, failed)),
                Ok(Err(Error::Mongo(e))) if is_transient(&e) => crate::error::plain(&e),
                // A write the server answered while it stepped down: it may
                // have landed, and the next attempt matches it.
                Ok(Err(e @ Error::Interrupted { .. })) => e.to_string(),
                Ok(Err(e)) => return Err(e),
                Err(_) => format!("no answer within {} s", patience.as_secs()),
            };
            let left = self.window.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::ServerLost {
                    during: during(),
                    retried_secs: started.elapsed().as_secs(),
                    cause: fault,
                });
            }
            tracing::warn!(during = %during(), error = %fault, "transient fault; retrying");
            failed = true;
            tokio::time::sleep(jitter(pause).min(left)).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// [`Retry::run`] without the flag, for commands whose second landing
    /// changes nothing (reads, refreshes).
    pub(crate) async fn idempotent<T, F, Fut>(&self, during: impl Fn() -> String, attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        Ok(self.run(during, attempt).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mongod holds a fence's write until its reaper aborts the fenced
    /// runner's open transaction: up to 90 s after that transaction began,
    /// past the lease's retry window (54 s for a 60 s TTL).
    #[tokio::test(start_paused = true)]
    async fn a_fence_waits_out_the_transaction_reaper() {
        let retry = Retry::within(Duration::from_secs(60));
        let held = || async {
            tokio::time::sleep(Duration::from_secs(88)).await;
            Ok::<_, Error>(())
        };
        let cut = retry.idempotent(|| "the fence".into(), held).await;
        assert!(matches!(cut, Err(Error::ServerLost { .. })), "{cut:?}");
        let waited = retry
            .outlasting_the_reaper()
            .idempotent(|| "the fence".into(), held)
            .await;
        assert!(waited.is_ok(), "{waited:?}");
        // A TTL longer than the reaper's wait keeps its own window.
        let long = Retry::within(Duration::from_secs(300)).outlasting_the_reaper();
        assert_eq!(long.window, Duration::from_secs(270));
    }

    fn io() -> Error {
        Error::Mongo(mongodb::error::Error::from(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "unexpected end of file",
        )))
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_fault_is_retried_until_it_passes_and_flagged() {
        let retry = Retry::within(Duration::from_secs(10));
        let mut left = 3;
        let (value, failed) = retry
            .run(
                || "a read".into(),
                || {
                    left -= 1;
                    let fail = left > 0;
                    async move {
                        if fail {
                            Err(io())
                        } else {
                            Ok(7)
                        }
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!((value, failed, left), (7, true, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn it_gives_up_in_plain_words_when_the_window_is_over() {
        let retry = Retry::within(Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        let e = retry
            .run(
                || "the step write of 20260101000000".into(),
                || async { Err::<(), _>(io()) },
            )
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
        let text = e.to_string();
        assert!(text.contains("during the step write of 20260101000000"), "{text}");
        assert!(text.contains("retried for 9 s"), "{text}");
        assert!(!text.contains("Kind:") && !text.contains("labels"), "{text}");
        assert_eq!(e.kind(), crate::ErrorKind::Connection);
    }

    /// A stepdown's `writeConcernError` on a protocol write (see
    /// `update::read_update_reply`) is retried like a dropped reply.
    #[tokio::test(start_paused = true)]
    async fn a_write_interrupted_by_a_failover_is_retried_and_flagged() {
        let retry = Retry::within(Duration::from_secs(10));
        let mut left = 2;
        let (value, failed) = retry
            .run(
                || "the step write of 20260101000000".into(),
                || {
                    left -= 1;
                    let fail = left > 0;
                    async move {
                        if fail {
                            Err(Error::Interrupted {
                                collection: "migrations".into(),
                                code: 189,
                                message: "PrimarySteppedDown".into(),
                            })
                        } else {
                            Ok(1)
                        }
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!((value, failed), (1, true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_never_retried() {
        let retry = Retry::within(Duration::from_secs(10));
        let mut calls = 0;
        let e = retry
            .run(
                || "a write".into(),
                || {
                    calls += 1;
                    async { Err::<(), _>(Error::lock_lost()) }
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::LockLost { .. }));
        assert_eq!(calls, 1);
    }
}
