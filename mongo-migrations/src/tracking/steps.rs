//! The one write per step of a run: the end of the previous step and the
//! start of the next, each conditional on this runner's unfenced claim.

use bson::doc;
use mongodb::ClientSession;

use super::documents::{own, stamp, written_by};
use super::Tracking;
use crate::lock::Fence;
use crate::record::{LogEvent, Record, LOG_FIELD, LOG_KEPT};
use crate::update;
use crate::{Direction, Error, MigrationStatus, Version};

/// What a runner writes when one step of its plan ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    /// It went through in this direction.
    Done(Direction),
    /// Failed with this error, after this many attempts (transactions are
    /// retried on transient errors).
    Failed(&'a str, u32),
    /// A stop request ended its walk between two batches: it stays
    /// `running`, resumable from its checkpoint, and says when it stopped.
    Stopped,
}

/// The end of a step this runner started: the version, how it ended, its time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub(crate) version: Version,
    /// The batch of the run.
    pub(crate) batch: i64,
    /// The way the step went.
    pub(crate) direction: Direction,
    pub(crate) outcome: Outcome<'a>,
    pub(crate) elapsed_ms: i64,
    /// Documents its walks handed over, and their milliseconds.
    pub(crate) walked: Option<(u64, u64)>,
    /// Documents under the indexes it built, and the builds' milliseconds.
    pub(crate) indexed: Option<(u64, u64)>,
}

impl Finish<'_> {
    /// With what its walks and index builds did (see
    /// `MigrationContext::worked`).
    pub(crate) fn worked(self, (walked, indexed): crate::context::Worked) -> Self {
        Finish {
            walked,
            indexed,
            ..self
        }
    }
}

/// What one step write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stepped {
    /// Every statement landed.
    Ok,
    /// The finish of the previous step matched nothing: fenced. Nothing else was written.
    FinishFenced,
    /// The previous step (if any) was recorded; the next one's claim was fenced.
    StartFenced,
}

impl Tracking {
    /// One write for one step of a run: records the end of the previous
    /// step (if any) and marks the next claim (if any) `running`. Each
    /// statement is conditional on this runner's unfenced claim; the reply's
    /// count says whether all matched (no upsert guard here: it would cost
    /// more per migration than the rest of the write on some servers).
    pub(crate) async fn step(
        &self,
        finish: Option<Finish<'_>>,
        start: Option<Version>,
        fence: &Fence,
        now: bson::DateTime,
        session: Option<&mut ClientSession>,
    ) -> Result<Stepped, Error> {
        let mut statements = Vec::new();
        if let Some(f) = &finish {
            let mut set = doc! { "executionTimeMs": f.elapsed_ms, "updatedAt": now };
            match f.outcome {
                Outcome::Done(direction) => stamp(&mut set, direction.done(), now),
                Outcome::Failed(message, attempts) => {
                    stamp(&mut set, MigrationStatus::Failed, now);
                    set.insert("error", message);
                    set.insert("attempts", i64::from(attempts));
                }
                Outcome::Stopped => drop(set.insert("stoppedAt", now)),
            }
            let filter = own(f.version, MigrationStatus::Running, fence);
            let mut update = match f.outcome {
                // Done: its batches start afresh next time (after a rollback).
                Outcome::Done(Direction::Up) => doc! { "$set": set, "$unset": { "checkpoints": "" } },
                // Rolled back: the next `up` finds out anew which indexes it builds.
                Outcome::Done(Direction::Down) => doc! {
                    "$set": set,
                    "$unset": { "checkpoints": "", crate::built_indexes::FIELD: "" },
                },
                Outcome::Failed(..) | Outcome::Stopped => doc! { "$set": set },
            };
            // The same write appends the step to the record's log: the
            // history of every apply and rollback costs no round trip, and
            // a retried write cannot append twice (its filter no longer matches).
            update.insert(
                "$push",
                doc! { LOG_FIELD: { "$each": [log_entry(f, now)], "$slice": -LOG_KEPT } },
            );
            statements.push(doc! { "q": filter, "u": update });
        }
        if let Some(version) = start {
            let set = doc! { "status": MigrationStatus::Running.as_str(), "startedAt": now, "updatedAt": now };
            let filter = own(version, MigrationStatus::Planned, fence);
            statements.push(doc! { "q": filter, "u": { "$set": set } });
        }
        if statements.is_empty() {
            return Ok(Stepped::Ok);
        }
        let expected = statements.len() as i64;
        let in_transaction = session.is_some();
        let (reply, retried) = match session {
            // A transaction is retried whole, by its caller.
            Some(session) => (
                update::update(&self.db, self.coll.name(), statements, true, Some(session)).await?,
                false,
            ),
            None => {
                let during = || step_name(finish.as_ref(), start);
                self.retry
                    .run(during, || {
                        update::update(&self.db, self.coll.name(), statements.clone(), true, None)
                    })
                    .await?
            }
        };
        if reply.matched == expected {
            return Ok(Stepped::Ok);
        }
        if retried {
            // A lost reply: the first attempt may have landed, so its
            // statements no longer match. What this runner's write would
            // have left is its own, not a fence.
            let finish_landed = match &finish {
                Some(f) => self
                    .get(f.version)
                    .await?
                    .is_some_and(|r| finished_as(&r, f, fence, now)),
                None => true,
            };
            let start_landed = match start {
                Some(v) => self.get(v).await?.is_some_and(|r| {
                    written_by(&r, fence, now)
                        && r.status == MigrationStatus::Running
                        && r.started_at.map(bson::DateTime::from_chrono) == Some(now)
                }),
                None => true,
            };
            if finish_landed && start_landed {
                return Ok(Stepped::Ok);
            }
            return Ok(if finish_landed {
                Stepped::StartFenced
            } else {
                Stepped::FinishFenced
            });
        }
        // Only a fence makes a statement miss. Which one? (Inside a
        // transaction the transaction itself is abandoned: either will do.)
        let finished = match (&finish, in_transaction) {
            (Some(f), false) => self
                .get(f.version)
                .await?
                .is_none_or(|r| r.status != MigrationStatus::Running),
            (Some(_), true) => false,
            (None, _) => true,
        };
        Ok(if finished {
            Stepped::StartFenced
        } else {
            Stepped::FinishFenced
        })
    }
}

/// The `log` entry of the end `f` at `now`, as [`LogEntry`](crate::LogEntry) reads it.
fn log_entry(f: &Finish<'_>, now: bson::DateTime) -> bson::Document {
    let event = match f.outcome {
        Outcome::Done(Direction::Up) => LogEvent::Applied,
        Outcome::Done(Direction::Down) => LogEvent::RolledBack,
        Outcome::Failed(..) => LogEvent::Failed,
        Outcome::Stopped => LogEvent::Stopped,
    };
    let mut entry = doc! {
        "event": event.as_str(),
        "direction": f.direction.as_str(),
        "batch": f.batch,
        "at": now,
        "executionTimeMs": f.elapsed_ms,
    };
    if let Outcome::Failed(message, _) = f.outcome {
        entry.insert("error", message);
    }
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    if let Some((documents, ms)) = f.walked {
        entry.insert("walkedDocuments", count(documents));
        entry.insert("walkMs", count(ms));
    }
    if let Some((documents, ms)) = f.indexed {
        entry.insert("indexedDocuments", count(documents));
        entry.insert("indexMs", count(ms));
    }
    entry
}

/// Whether `record` shows the end `f` as this runner's step write at `now`
/// records it.
fn finished_as(record: &Record, f: &Finish<'_>, fence: &Fence, now: bson::DateTime) -> bool {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(bson::DateTime::from_chrono) == Some(now);
    written_by(record, fence, now)
        && match f.outcome {
            Outcome::Done(direction) => record.status == direction.done(),
            Outcome::Failed(..) => record.status == MigrationStatus::Failed,
            Outcome::Stopped => record.status == MigrationStatus::Running && at(record.stopped_at),
        }
}

/// What a step write records, for an error that names it.
fn step_name(finish: Option<&Finish<'_>>, start: Option<Version>) -> String {
    match (finish, start) {
        (Some(f), Some(v)) => format!("the step write that records the end of {} and starts {v}", f.version),
        (Some(f), None) => format!("the step write that records the end of {}", f.version),
        (None, Some(v)) => format!("the step write that starts {v}"),
        (None, None) => "a step write".into(),
    }
}
