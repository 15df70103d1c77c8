//! `plan`: what a deploy would do to this database, read-only. Each pending
//! migration's `up` runs in a context that records its schema operations
//! and walks instead of running them (`src/operation.rs`); each recorded
//! operation is then weighed against the database as it is
//! (`assess.rs`), into a report with a risk label per step (`report.rs`).
//! Nothing is written: no lock is taken, no record claimed, and a
//! migration's own use of the database is refused while it is inspected.

mod assess;

use crate::operation::{Operation, Recorded, NOT_INSPECTABLE};
use crate::plan_context::{PlanContext, Said};
use crate::plan_report::{PlanReport, PlanStep, PlannedMigration, Risk};

use crate::migrator::Migrator;
use crate::{Error, MigrationContext, UpOptions};

/// How many documents make a step slow unless the caller says otherwise.
pub const DEFAULT_SLOW_DOCUMENTS: u64 = 1_000_000;

/// How long a migration's `up` may take while inspected: it runs no
/// database work, so anything longer waits on something else.
const INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Migrator {
    /// What `up` with `options` would do to this database, read-only (see
    /// the module documentation); steps over more than `slow` documents are
    /// labelled slow.
    pub async fn plan_deploy(&self, options: UpOptions, slow: u64) -> Result<PlanReport, Error> {
        let (records, lock) = self.read_state().await?;
        let held = lock.clone().filter(|l| !l.expired);
        let database = self.database().name().to_string();
        let planned = match crate::plan::up(self.registry(), &records, lock.as_ref(), &options, self.config()) {
            Ok(planned) => planned,
            // What would refuse `up` before it runs anything.
            Err(
                e @ (Error::Locked { .. }
                | Error::Blocked { .. }
                | Error::OutOfOrder { .. }
                | Error::ChecksumMismatch { .. }
                | Error::UnknownVersions { .. }
                | Error::PartialSquash { .. }),
            ) => {
                return Ok(PlanReport {
                    database,
                    lock: held,
                    refused: Some(e.to_string()),
                    migrations: Vec::new(),
                    risk: Risk::Blocking,
                })
            }
            Err(e) => return Err(e),
        };
        let mut migrations = Vec::new();
        let mut walked: Vec<String> = Vec::new();
        let rate = assess::walk_rate(records.values());
        let index_rate = assess::index_rate(records.values());
        for p in planned {
            let m = p.migration;
            let mut steps = Vec::new();
            if p.adopt.is_some() {
                steps.push(PlanStep {
                    risk: Risk::Safe,
                    what: "recorded as applied without running (what it replaces is applied)".into(),
                    why: None,
                });
            } else if let Some(own) = m.plan {
                // The migration says what it would do.
                let mut ctx = PlanContext::new(self.database().clone());
                let said = tokio::time::timeout(INSPECT_TIMEOUT, own(&mut ctx)).await;
                let assessing = assess::Assessing {
                    db: self.database(),
                    slow,
                    walked_before: &walked,
                    rate,
                    index_rate,
                };
                for item in std::mem::take(&mut ctx.said) {
                    steps.push(match item {
                        Said::Step(step) => step,
                        Said::Walk(op) => assess::assess(&assessing, &op).await?,
                    });
                }
                let failed = match said {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("its `plan` failed: {e}")),
                    Err(_) => Some(format!("its `plan` did not finish in {} s", INSPECT_TIMEOUT.as_secs())),
                };
                if let Some(why) = failed {
                    steps.push(PlanStep {
                        risk: Risk::Unknown,
                        what: "not planned".into(),
                        why: Some(why),
                    });
                }
            } else {
                let recorded = Recorded::default();
                let mut ctx = MigrationContext::inspecting(
                    self.database().clone(),
                    (m.version, &m.name),
                    m.phase(),
                    recorded.clone(),
                );
                let ran = tokio::time::timeout(INSPECT_TIMEOUT, (m.up)(&mut ctx)).await;
                let ops: Vec<Operation> = recorded.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let assessing = assess::Assessing {
                    db: self.database(),
                    slow,
                    walked_before: &walked,
                    rate,
                    index_rate,
                };
                for op in &ops {
                    steps.push(assess::assess(&assessing, op).await?);
                }
                let unseen = match ran {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) if e.to_string() == NOT_INSPECTABLE => Some(NOT_INSPECTABLE.to_string()),
                    Ok(Err(e)) => Some(format!("its `up` failed while inspected: {e}")),
                    Err(_) => Some(format!(
                        "its `up` did not finish in {} s while inspected",
                        INSPECT_TIMEOUT.as_secs()
                    )),
                };
                // A transaction holds what it changes until it commits.
                let unseen = match (unseen, m.transactional) {
                    (Some(why), true) => Some(format!(
                        "{why}; it runs in one transaction, which must end within the server's `transactionLifetimeLimitSeconds` (60 s by default) and write at most 16 MB of oplog (one entry's limit): over a big collection, make it a walk instead"
                    )),
                    (unseen, _) => unseen,
                };
                if let Some(why) = unseen {
                    steps.push(PlanStep {
                        risk: Risk::Unknown,
                        what: "not planned: runs code `plan` cannot inspect".into(),
                        why: Some(why),
                    });
                }
                for op in ops {
                    if let Operation::Walk { collection, .. } = op {
                        walked.push(collection);
                    }
                }
            }
            if p.adopt.is_none() && m.down.is_none() {
                steps.push(PlanStep {
                    risk: Risk::Irreversible,
                    what: "no `down`: it cannot be rolled back".into(),
                    why: None,
                });
            }
            let risk = steps.iter().map(|s| s.risk).max().unwrap_or(Risk::Safe);
            migrations.push(PlannedMigration {
                version: m.version,
                name: m.name.to_string(),
                phase: m.phase(),
                risk,
                steps,
            });
        }
        let risk = migrations.iter().map(|m| m.risk).max().unwrap_or(Risk::Safe);
        Ok(PlanReport {
            database,
            lock: held,
            refused: None,
            migrations,
            risk,
        })
    }
}
