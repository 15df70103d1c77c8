//! The one write per step of a run: the end of the previous step and the
//! start of the next, each conditional on this runner's unfenced claim.

use bson::doc;
use mongodb::ClientSession;

use super::documents::{own, stamp};
use super::Tracking;
use crate::lock::Fence;
use crate::server;
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
    pub(crate) outcome: Outcome<'a>,
    pub(crate) elapsed_ms: i64,
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
            let update = match f.outcome {
                // Done: its batches start afresh next time (after a rollback).
                Outcome::Done(_) => doc! { "$set": set, "$unset": { "checkpoints": "" } },
                Outcome::Failed(..) | Outcome::Stopped => doc! { "$set": set },
            };
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
        let reply = server::update(&self.db, self.coll.name(), statements, true, session).await?;
        if reply.matched == expected {
            return Ok(Stepped::Ok);
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
