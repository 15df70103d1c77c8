//! An answer as `cargo mongo-migrate` prints it, and the failure of a run
//! stopped on request.

use crate::cli::exit::{Code, Failure};
use crate::cli::output;
use crate::harness::{Answer, Command as HarnessCommand};
use crate::{Resolution, StoppedWalk};

/// Prints `answer` to `command` of `package` as human text on stdout.
pub fn render(package: &str, command: &HarnessCommand, answer: Answer) -> Result<(), Failure> {
    match answer {
        Answer::Run(report) => match command {
            HarnessCommand::Baseline { to } => {
                let n = report.steps.len();
                crate::outln!(
                    "{package}: baselined {n} {} up to {to}, recorded as applied without running (batch {})",
                    output::plural(n, "migration"),
                    report.steps.first().map_or(0, |s| s.batch)
                );
            }
            HarnessCommand::Down(options) => {
                output::run_report(package, &report);
                if let Some(note) = fewer_than_asked(options.target, report.steps.len() + report.skipped.len()) {
                    crate::outln!("{package}: note: {note}");
                }
            }
            _ => output::run_report(package, &report),
        },
        Answer::Status(report) => output::status(package, &report),
        Answer::History(records) => {
            let query = match command {
                HarnessCommand::History(query) => query.clone(),
                _ => crate::HistoryQuery::default(),
            };
            output::history(package, &records, &query)
        }
        Answer::Lock(lock) => match command {
            HarnessCommand::ForceUnlock { .. } => match lock.filter(|l| !l.expired) {
                Some(l) => crate::outln!("{package}: released the lock held by {}", l.holder),
                None => crate::outln!("{package}: the lock was free; it is released all the same"),
            },
            _ => crate::outln!("{package}: lock {}", output::lock_line(lock.as_ref())),
        },
        Answer::Forgotten(records) => {
            for r in records {
                crate::outln!(
                    "{package}: forgot {} {} (was {}; a copy is in the audit collection)",
                    r.version,
                    r.name,
                    r.status
                );
            }
        }
        Answer::Resolved(record) => match command {
            HarnessCommand::Resolve {
                resolution: Resolution::AcceptChecksum,
                version,
            } => crate::outln!(
                "{package}: accepted the edit of {version} {}; `up` no longer refuses it",
                record.name
            ),
            HarnessCommand::Resolve {
                resolution: Resolution::Pending,
                version,
            } => crate::outln!("{package}: marked {version} as pending"),
            _ => crate::outln!("{package}: marked {} as applied", record.version),
        },
        Answer::TenantRuns(reports) => return output::tenants_up(package, &reports),
        Answer::TenantStatuses(statuses) => return output::tenants_status(package, &statuses),
        // `diff` and `check` read these; no command line of the binary asks for them.
        Answer::Schema(collections) => crate::outln!("{package}: {} declared collections", collections.len()),
        Answer::Drift(drift) => {
            for d in drift {
                crate::outln!("{package}: {}: {}", d.collection, d.message);
            }
        }
        Answer::TenantPlans(plans) => return crate::cli::plan_output::tenant_plans(package, &plans),
        Answer::Plan(report) => {
            match command {
                HarnessCommand::Plan { markdown: true, .. } => crate::cli::plan_output::plan_markdown(package, &report),
                _ => crate::cli::plan_output::plan(package, &report),
            }
            return crate::cli::plan_output::plan_exit(&report);
        }
    }
    Ok(())
}

/// What to say when `down --steps N` found fewer than N migrations to roll
/// back (`planned` of them: rolled back, or stopped before their turn).
fn fewer_than_asked(target: crate::DownTarget, planned: usize) -> Option<String> {
    match target {
        crate::DownTarget::Steps(asked) if planned < asked => Some(format!(
            "{asked} asked, and only {planned} {} applied: {}",
            if planned == 1 { "was" } else { "were" },
            if planned == 0 {
                "nothing to roll back"
            } else {
                "all of them"
            }
        )),
        _ => None,
    }
}

/// The failure of `answer`'s run if Ctrl-C or SIGTERM stopped it before
/// its plan was done.
pub fn interrupted(package: &str, answer: &Answer) -> Option<Failure> {
    let run = answer.run()?;
    (!run.skipped.is_empty()).then(|| stopped(package, run.skipped.len(), run.stopped_walk.as_ref()))
}

/// The failure of a run of `package` stopped by Ctrl-C or SIGTERM, with
/// `skipped` migrations not run, or in a walk.
fn stopped(package: &str, skipped: usize, walk: Option<&StoppedWalk>) -> Failure {
    match walk {
        Some(walk) => {
            let of = walk
                .documents_total
                .map(|t| format!(" of {}", output::thousands(t)))
                .unwrap_or_default();
            Failure::new(
                Code::Interrupted,
                format!(
                    "{package}: stopped on request after {}{of} documents of {} {}; the next `up` resumes from the checkpoint",
                    output::thousands(walk.documents_done),
                    walk.version,
                    walk.name
                ),
            )
            .hint("the checkpoint is recorded and the lock is free; run the command again to go on")
        }
        None => Failure::new(
            Code::Interrupted,
            format!(
                "{package}: stopped on request; {skipped} {} did not run",
                output::plural(skipped, "migration")
            ),
        )
        .hint("the migrations that ran are recorded and the lock is free; run the command again to go on"),
    }
}

#[cfg(test)]
mod tests {
    use super::fewer_than_asked;
    use crate::DownTarget;

    #[test]
    fn a_rollback_of_more_than_was_applied_says_so() {
        assert_eq!(
            fewer_than_asked(DownTarget::Steps(3), 2).as_deref(),
            Some("3 asked, and only 2 were applied: all of them")
        );
        assert_eq!(
            fewer_than_asked(DownTarget::Steps(3), 0).as_deref(),
            Some("3 asked, and only 0 were applied: nothing to roll back")
        );
        assert_eq!(fewer_than_asked(DownTarget::Steps(2), 2), None);
        assert_eq!(fewer_than_asked(DownTarget::LastBatch, 1), None);
    }
}
