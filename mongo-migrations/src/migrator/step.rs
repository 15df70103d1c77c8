//! One claimed plan, one write per migration: each step's end goes out with
//! the next one's start, and nothing starts on a stale answer.

use crate::batch::CheckpointWriter;
use crate::context::MigrationContext;
use crate::context::Worked;
use crate::lock::LockGuard;
use crate::migration::MigrationFn;
use crate::tracking::{running_claim, Finish, Outcome, Stepped};
use crate::{Direction, Error, Migration, MigrationError, Progress, RunReport, Step, Version};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use tracing::Instrument;

use super::{elapsed_ms, Migrator};

impl Migrator {
    /// Runs a claimed plan, one write per migration.
    pub(super) async fn execute(
        &self,
        guard: &LockGuard,
        direction: Direction,
        plan: &[(&Migration, i64)],
        continue_on_error: bool,
    ) -> Result<RunReport, Error> {
        let mut steps: Vec<Step> = Vec::with_capacity(plan.len());
        // With `continue_on_error`: the independent migrations that failed,
        // recorded `failed`, and gone past.
        let mut failures: Vec<(Version, String, String)> = Vec::new();
        // The previous plain step (its index and time), done but not yet
        // recorded: its end goes out with the next step's start, in one command.
        let mut open: Option<(usize, i64, Worked)> = None;
        let mut next = 0;
        while next < plan.len() && !self.stop.is_stopped() {
            let (m, batch) = plan[next];
            self.report(Progress::Started {
                version: m.version,
                name: m.name.to_string(),
                direction,
            });
            let previous = open.take().map(|(i, ms, worked)| {
                (
                    i,
                    finish(plan[i], direction, Outcome::Done(direction), ms).worked(worked),
                )
            });
            // A runner whose lease ran out (it was paused) claims nothing it
            // would then not start.
            if let Err(e) = guard.ensure_lease().await {
                let interrupted = previous.map(|(_, f)| f.version);
                return Err(self.lost(e, &steps, interrupted, &plan[next..]));
            }
            let sent = Instant::now();
            let now = self.server.clock().await?.now();
            let start = Some(m.version);
            let stepped = self
                .tracking
                .step(previous.map(|(_, f)| f), start, guard.fence(), now, None)
                .await?;
            if let Some((i, f)) = previous {
                if stepped == Stepped::FinishFenced {
                    let lost = Error::lock_lost();
                    return Err(self.lost(lost, &steps, Some(f.version), &plan[next..]));
                }
                steps.push(step(plan[i].0, plan[i].1, Some(f.elapsed_ms)));
            }
            if stepped != Stepped::Ok {
                return Err(self.lost(Error::lock_lost(), &steps, None, &plan[next..]));
            }
            // Nothing starts on an old answer: a runner paused while its
            // write was in flight proves the lock again first.
            if let Err(e) = guard.ensure_live(sent).await {
                return Err(self.lost(e, &steps, Some(m.version), &plan[next + 1..]));
            }
            let span = tracing::info_span!(
                "mongo_migrations.migration",
                version = m.version.as_u64(),
                name = %m.name,
                transactional = m.transactional,
                direction = direction.as_str(),
            );
            let (ms, worked) = if m.transactional {
                // Its `running` record means "not applied" until the
                // transaction commits it done.
                match self
                    .run_in_transaction(guard, (m, batch), direction)
                    .instrument(span.clone())
                    .await
                {
                    Ok(ms) => (ms, (None, None)),
                    Err((e @ Error::MigrationFailed { .. }, attempts)) => {
                        span.in_scope(|| tracing::error!(error = %e, attempts, "migration failed"));
                        let end = finish((m, batch), direction, Outcome::Failed(failure_text(&e), attempts), 0);
                        self.record_end(guard, end, &steps, plan, next).await?;
                        if continue_on_error && m.independent {
                            self.went_past(m, failure_text(&e), &mut failures);
                            next += 1;
                            continue;
                        }
                        return Err(after(e, &steps));
                    }
                    Err((e, _)) => return Err(self.lost(e, &steps, None, &plan[next..])),
                }
            } else {
                let start = Instant::now();
                let checkpoints = CheckpointWriter {
                    tracking: self.tracking.collection(),
                    claim: running_claim(m.version, guard.fence()),
                    direction,
                    stop: self.stop.clone(),
                    lock: guard.handle(),
                    version: m.version,
                    progress: self.progress.clone(),
                    retry: self.server.retry,
                };
                let mut ctx = MigrationContext::new(self.db.clone(), None, (m.version, &m.name), guard.handle())
                    .with_checkpoints(checkpoints)
                    .with_index_builds(self.config.index_commit_quorum, self.config.index_build_wait)
                    .in_phase(m.phase());
                // The last proof, as near the body's start as it can be: a
                // pause that landed after the proof above and while this
                // context was built (a SIGCONT since, or a lease run out)
                // starts nothing. Free while the lease is fresh.
                if let Err(e) = guard.ensure_lease().await {
                    return Err(self.lost(e, &steps, Some(m.version), &plan[next + 1..]));
                }
                let result = run_body(function(m, direction), &mut ctx)
                    .instrument(span.clone())
                    .await;
                let ms = elapsed_ms(start);
                let worked = ctx.worked();
                if let Some(walk) = result.as_ref().err().and_then(StepError::stopped_walk) {
                    // Stopped on request between two batches: not a failure.
                    span.in_scope(|| tracing::info!(documents_done = walk.done, "migration stopped on request"));
                    self.record_end(
                        guard,
                        finish((m, batch), direction, Outcome::Stopped, ms),
                        &steps,
                        plan,
                        next,
                    )
                    .await?;
                    return Ok(RunReport {
                        direction,
                        dry_run: false,
                        steps,
                        skipped: plan[next..].iter().map(|&(m, batch)| step(m, batch, None)).collect(),
                        stopped_walk: Some(crate::report::StoppedWalk {
                            version: m.version,
                            name: m.name.to_string(),
                            documents_done: walk.done,
                            documents_total: walk.total,
                        }),
                        elapsed_ms: None,
                    });
                }
                if let Err(e) = result {
                    span.in_scope(|| tracing::error!(error = %e.message, "migration failed"));
                    self.record_end(
                        guard,
                        finish((m, batch), direction, Outcome::Failed(&e.message, 1), ms),
                        &steps,
                        plan,
                        next,
                    )
                    .await?;
                    if continue_on_error && m.independent {
                        self.went_past(m, &e.message, &mut failures);
                        next += 1;
                        continue;
                    }
                    return Err(after(failed(m, e), &steps));
                }
                (ms, worked)
            };
            span.in_scope(|| tracing::info!(duration_ms = ms, "migration done"));
            if m.transactional {
                steps.push(step(m, batch, Some(ms)));
            } else {
                open = Some((next, ms, worked));
            }
            self.report(Progress::Finished {
                version: m.version,
                name: m.name.to_string(),
                direction,
                duration_ms: ms,
            });
            next += 1;
        }
        if let Some((i, ms, worked)) = open {
            self.record_end(
                guard,
                finish(plan[i], direction, Outcome::Done(direction), ms).worked(worked),
                &steps,
                plan,
                i,
            )
            .await?;
            steps.push(step(plan[i].0, plan[i].1, Some(ms)));
        }
        if !failures.is_empty() && !self.stop.is_stopped() {
            return Err(Error::SomeFailed {
                failures,
                completed: steps.iter().map(|s| s.version).collect(),
            });
        }
        Ok(RunReport {
            direction,
            dry_run: false,
            steps,
            skipped: plan[next..].iter().map(|&(m, batch)| step(m, batch, None)).collect(),
            stopped_walk: None,
            elapsed_ms: None,
        })
    }

    /// Notes a failure the run goes past (`continue_on_error`), and says so.
    fn went_past(&self, m: &Migration, error: &str, failures: &mut Vec<(Version, String, String)>) {
        tracing::warn!(version = m.version.as_u64(), name = %m.name, error, "migration failed; the run goes on (continue on error)");
        failures.push((m.version, m.name.to_string(), error.to_string()));
        self.report(Progress::FailedAndContinued {
            version: m.version,
            name: m.name.to_string(),
            error: error.to_string(),
        });
    }

    /// Records the end of step `i` on its own.
    pub(super) async fn record_end(
        &self,
        guard: &LockGuard,
        f: Finish<'_>,
        steps: &[Step],
        plan: &[(&Migration, i64)],
        i: usize,
    ) -> Result<(), Error> {
        let now = self.server.clock().await?.now();
        match self.tracking.step(Some(f), None, guard.fence(), now, None).await? {
            Stepped::Ok => Ok(()),
            _ => Err(self.lost(Error::lock_lost(), steps, Some(f.version), &plan[i + 1..])),
        }
    }
}

pub(super) fn function(m: &Migration, direction: Direction) -> MigrationFn {
    match direction {
        Direction::Up => m.up,
        Direction::Down => m.down.expect("planned rollbacks are reversible"),
    }
}

/// The end of the step of `m` (in `batch`), going `direction`.
pub(super) fn finish<'a>(
    (m, batch): (&Migration, i64),
    direction: Direction,
    outcome: Outcome<'a>,
    elapsed_ms: i64,
) -> Finish<'a> {
    Finish {
        version: m.version,
        batch,
        direction,
        outcome,
        elapsed_ms,
        walked: None,
        indexed: None,
    }
}

/// The message a failed migration records.
pub(super) fn failure_text(e: &Error) -> &str {
    match e {
        Error::MigrationFailed { message, .. } => message,
        _ => "failed",
    }
}

/// A failed step: its error, or the message of its panic.
pub(super) struct StepError {
    message: String,
    source: Option<MigrationError>,
}

impl StepError {
    /// The walk a stop request ended, when that is why the body returned.
    fn stopped_walk(&self) -> Option<&crate::batch::WalkStopped> {
        let walk = self.source.as_ref()?.downcast_ref::<crate::batch::WalkStopped>()?;
        walk.on_request().then_some(walk)
    }

    /// The server labelled the failure as transient (a write conflict in a transaction).
    pub(super) fn is_transient(&self) -> bool {
        self.source
            .as_ref()
            .and_then(|e| e.downcast_ref::<mongodb::error::Error>())
            .is_some_and(|e| e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR))
    }
}

pub(super) async fn run_body(f: MigrationFn, ctx: &mut MigrationContext) -> Result<(), StepError> {
    match AssertUnwindSafe(f(ctx)).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StepError {
            // The driver's own errors in its plain words, not its debug text.
            message: match e.downcast_ref::<mongodb::error::Error>() {
                Some(driver) => crate::error::plain(driver),
                None => e.to_string(),
            },
            source: Some(e),
        }),
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(StepError {
                message: format!("panicked: {text}"),
                source: None,
            })
        }
    }
}

pub(super) fn failed(m: &Migration, e: StepError) -> Error {
    Error::MigrationFailed {
        version: m.version,
        name: m.name.to_string(),
        message: e.message,
        error: e.source,
        completed: Vec::new(),
    }
}

/// A failure, with the steps its run recorded before it.
pub(super) fn after(mut e: Error, steps: &[Step]) -> Error {
    if let Error::MigrationFailed { completed, .. } = &mut e {
        *completed = steps.iter().map(|s| s.version).collect();
    }
    e
}

pub(super) fn step(m: &Migration, batch: i64, duration_ms: Option<i64>) -> Step {
    Step {
        version: m.version,
        name: m.name.to_string(),
        description: m.description.to_string(),
        batch,
        transactional: m.transactional,
        reversible: m.is_reversible(),
        duration_ms,
        adopted: false,
    }
}

/// A migration recorded as applied without running.
pub(super) fn adopted(m: &Migration, batch: i64) -> Step {
    Step {
        adopted: true,
        ..step(m, batch, Some(0))
    }
}
