//! Human output: tables and summaries.

use std::io::Write;

pub(crate) use crate::report::thousands;

use crate::cli::exit::Failure;

use crate::{
    Direction, LockInfo, Progress, Record, RunReport, State, StatusReport, TenantOutcome, TenantReport, TenantStatus,
};

/// Whether a `Started` line waits for its outcome.
static OPEN_LINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends a progress line left open by a step that did not finish.
pub fn close_progress(outcome: &str) {
    if let Some(bar) = BAR.lock().expect("progress lock").take() {
        bar.abandon();
    }
    if OPEN_LINE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        crate::outln!("{outcome}");
    }
}

/// When the last batch line was printed, to print one every few seconds.
static LAST_BATCH_LINE: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// A walk's progress bar, on a terminal.
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Set by Ctrl-C: the harness then writes to the terminal itself
/// ("stopping after ...", "aborted"), and a bar drawn again would cover
/// those lines or follow them.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// On Ctrl-C: clears a walk's bar and draws none again; the walk's batch
/// lines, and the stop's own message, say the rest.
pub fn interrupted() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(bar) = BAR.lock().expect("progress lock").take() {
        bar.finish_and_clear();
    }
}

/// How often a walk's progress gets a line.
const BATCH_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// A progress event as a line (or a bar, on a terminal) on stdout.
pub fn progress(p: &Progress) {
    if let Progress::Tenant { database, progress } = p {
        return tenant_progress(database, progress);
    }
    progress_on(
        p,
        std::io::stdout().lock(),
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
    );
}

/// [`progress`] on stderr, for a command whose stdout is one JSON
/// document (`--json`): a long walk still shows that it moves.
pub fn progress_on_stderr(p: &Progress) {
    let p = match p {
        Progress::Tenant { progress, .. } => progress.as_ref(),
        p => p,
    };
    progress_on(
        p,
        std::io::stderr().lock(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
}

fn progress_on(p: &Progress, mut out: impl Write, terminal: bool) {
    use std::sync::atomic::Ordering::SeqCst;
    if let Progress::Batch {
        done,
        total,
        per_second,
        eta_secs,
        ..
    } = p
    {
        // The migration's line ends here; its outcome gets a line of its own.
        if OPEN_LINE.swap(false, SeqCst) {
            let _ = writeln!(out);
            let _ = out.flush();
        }
        if terminal && INTERRUPTED.load(SeqCst) {
            return;
        }
        if terminal {
            let mut bar = BAR.lock().expect("progress lock");
            let bar = bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new(*total);
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("    {bar:30} {human_pos}/{human_len} documents ({msg})")
                {
                    bar.set_style(style);
                }
                bar
            });
            bar.set_length(*total);
            bar.set_position(*done);
            bar.set_message(rate(*per_second, *eta_secs));
            return;
        }
        let mut last = LAST_BATCH_LINE.lock().expect("progress lock");
        if last.is_some_and(|t| t.elapsed() < BATCH_LINE_EVERY) && done < total {
            return;
        }
        *last = Some(std::time::Instant::now());
        let _ = writeln!(
            out,
            "    {} of {} documents ({})",
            thousands(*done),
            thousands(*total),
            rate(*per_second, *eta_secs)
        );
        let _ = out.flush();
        return;
    }
    // Any other event ends a walk's bar.
    if let Some(bar) = BAR.lock().expect("progress lock").take() {
        bar.finish_and_clear();
    }
    let was_open = OPEN_LINE.swap(matches!(p, Progress::Started { .. }), SeqCst);
    let _ = match p {
        Progress::Started {
            version,
            name,
            direction,
        } => {
            let verb = match direction {
                Direction::Up => "applying",
                Direction::Down => "rolling back",
            };
            write!(out, "  {verb} {version} {name} ... ")
        }
        Progress::Finished { duration_ms, .. } if was_open => writeln!(out, "ok ({duration_ms} ms)"),
        Progress::Finished {
            version,
            name,
            duration_ms,
            ..
        } => writeln!(out, "  {version} {name} ok ({duration_ms} ms)"),
        Progress::FailedAndContinued { error, .. } if was_open => {
            writeln!(out, "failed, recorded; going on: {error}")
        }
        Progress::FailedAndContinued { version, name, error } => {
            writeln!(out, "  {version} {name} failed, recorded; going on: {error}")
        }
        Progress::Waiting { holder, expires_at } => writeln!(
            out,
            "  waiting for the lock held by {holder} (expires {}){}",
            expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
            holder.holder.as_ref().map_or("", gone_note)
        ),
        Progress::IndexBuild {
            collection,
            index,
            done,
            total,
            ..
        } => {
            // The migration's line ends here; each report gets its own.
            if was_open {
                let _ = writeln!(out);
            }
            writeln!(
                out,
                "    building index {index} on {collection}: {} of {} keys",
                thousands(*done),
                thousands(*total)
            )
        }
        // Newer events than this CLI knows: nothing to show.
        _ => Ok(()),
    };
    let _ = out.flush();
}

/// What a run applied or rolled back, or would have.
pub fn run_report(package: &str, report: &RunReport) {
    let (done, would) = match report.direction {
        Direction::Up => ("Applied", "Would apply"),
        Direction::Down => ("Rolled back", "Would roll back"),
    };
    let n = report.steps.len();
    let noun = plural(n, "migration");
    if report.dry_run {
        if n == 0 {
            crate::outln!("{package}: nothing to do (dry run)");
            return;
        }
        crate::outln!("{package}: {would} {n} {noun} (dry run, nothing changed):");
        for s in &report.steps {
            let tx = if s.transactional { ", transactional" } else { "" };
            let adopted = if s.adopted { ", recorded without running" } else { "" };
            crate::outln!("  {} {} (batch {}{tx}{adopted})", s.version, s.name, s.batch);
            // What it does, in its own words: a schema migration's lists
            // its index builds and validator changes.
            for line in s.description.lines().filter(|l| !l.trim().is_empty()) {
                crate::outln!("      {line}");
            }
        }
    } else if n == 0 {
        if !report.stopped() {
            crate::outln!("{package}: nothing to do");
        }
    } else {
        let bodies: i64 = report.steps.iter().filter_map(|s| s.duration_ms).sum();
        match report.elapsed_ms {
            Some(run) => crate::outln!(
                "{package}: {done} {n} {noun} in {} (migration code: {})",
                duration(run),
                duration(bodies)
            ),
            None => crate::outln!("{package}: {done} {n} {noun} (migration code: {})", duration(bodies)),
        }
        for s in report.steps.iter().filter(|s| s.adopted) {
            crate::outln!("  {} {} recorded as applied without running", s.version, s.name);
        }
    }
    if report.stopped() {
        crate::outln!("{package}: stopped on request before:");
        for s in &report.skipped {
            match &report.stopped_walk {
                // Stopped inside its walk: part of it is done and kept.
                Some(w) if w.version == s.version => crate::outln!(
                    "  {} {} (stopped in its walk after {}{} documents; the next run resumes it)",
                    s.version,
                    s.name,
                    thousands(w.documents_done),
                    w.documents_total
                        .map(|t| format!(" of {}", thousands(t)))
                        .unwrap_or_default()
                ),
                _ => crate::outln!("  {} {}", s.version, s.name),
            }
        }
    }
}

/// One tenant's event on a whole line of its own, prefixed with its
/// database: several tenants' lines interleave.
fn tenant_progress(database: &str, p: &Progress) {
    let line = match p {
        Progress::Started {
            version,
            name,
            direction: Direction::Up,
        } => format!("applying {version} {name}"),
        Progress::Started { version, name, .. } => format!("rolling back {version} {name}"),
        Progress::Finished {
            version,
            name,
            duration_ms,
            ..
        } => format!("{version} {name} ok ({})", duration(*duration_ms)),
        Progress::Batch {
            version,
            done,
            total,
            per_second,
            eta_secs,
        } => {
            let mut last = LAST_BATCH_LINE.lock().expect("progress lock");
            if last.is_some_and(|t| t.elapsed() < BATCH_LINE_EVERY) && done < total {
                return;
            }
            *last = Some(std::time::Instant::now());
            format!(
                "{version}: {} of {} documents ({})",
                thousands(*done),
                thousands(*total),
                rate(*per_second, *eta_secs)
            )
        }
        Progress::Waiting { holder, .. } => format!("waiting for the lock held by {holder}"),
        _ => return,
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "  {database}: {line}");
    let _ = out.flush();
}

/// `1,669/s, about 2m05s left`.
fn rate(per_second: u64, eta_secs: Option<u64>) -> String {
    let eta = eta_secs
        .map(|s| format!(", about {}m{:02}s left", s / 60, s % 60))
        .unwrap_or_default();
    format!("{}/s{eta}", thousands(per_second))
}

/// `850 ms`, `3.4 s`, `12 min 5 s`.
pub fn duration(ms: i64) -> String {
    crate::report::duration(ms)
}

/// The one JSON document of a command's `--json`, the same for every
/// command: with `keyed` (`--workspace`), an object of each package's
/// result under its name; else the only package's result.
pub fn one_or_keyed(results: Vec<(String, serde_json::Value)>, keyed: bool) -> serde_json::Value {
    if keyed {
        return serde_json::Value::Object(results.into_iter().collect());
    }
    results
        .into_iter()
        .next()
        .map_or(serde_json::Value::Null, |(_, only)| only)
}

/// `migration` or `migrations`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

fn state(s: State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::Applied => "applied",
        State::Running => "RUNNING",
        State::Failed => "FAILED",
        State::RolledBack => "rolled back",
        State::Unknown => "UNKNOWN",
        State::Squashed => "squashed",
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        crate::outln!("{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// The status table and the lock.
pub fn status(package: &str, report: &StatusReport) {
    crate::outln!("{package}:");
    let rows: Vec<Vec<String>> = report
        .migrations
        .iter()
        .map(|m| {
            let mut state = state(m.state).to_string();
            if m.checksum_changed {
                state.push_str(" (EDITED)");
            }
            if m.in_progress {
                state.push_str(" (in progress)");
            }
            if m.out_of_order {
                state.push_str(" (out of order)");
            }
            if m.baseline {
                state.push_str(" (baseline)");
            }
            if let Some(squash) = m.squashed_into {
                state = format!("squashed into {squash}");
            }
            let phase = match m.state {
                // A record this build does not know has no phase of its own.
                State::Unknown | State::Squashed => "-".to_string(),
                _ => m.phase.to_string(),
            };
            vec![
                m.version.to_string(),
                m.name.clone(),
                phase,
                state,
                m.batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
                when(m.applied_at),
                m.execution_time_ms.map(duration).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["VERSION", "NAME", "PHASE", "STATE", "BATCH", "APPLIED AT (UTC)", "TIME"],
        &rows,
    );
    let c = &report.counts;
    let total = report.migrations.len();
    crate::outln!(
        "{total} {}: {} applied, {} pending, {} failed, {} running, {} unknown{}",
        plural(total, "migration"),
        c.applied,
        c.pending,
        c.failed,
        c.running,
        c.unknown,
        match c.squashed {
            0 => String::new(),
            n => format!(", {n} squashed"),
        }
    );
    for m in report
        .migrations
        .iter()
        .filter(|m| m.error.is_some() && m.state == State::Failed)
    {
        crate::outln!("  {} failed: {}", m.version, m.error.as_deref().unwrap_or_default());
    }
    for m in report.migrations.iter().filter(|m| enforcement_waits(report, m)) {
        for v in m.violations.iter().filter(|v| v.count > 0) {
            crate::outln!(
                "  {} staged a validator of `{}`: {} documents violated it then (for example _id {})",
                m.version,
                v.collection,
                v.count,
                v.sample.join(", ")
            );
        }
    }
    // Who left a migration running, and whether it is still at it; where a
    // walk stopped or a repeatable run failed (pending: the next `up` goes
    // on), what its last run did, as `history` says it.
    for m in report.migrations.iter().filter(|m| m.state != State::Failed) {
        if let (State::Pending, Some(error)) = (m.state, &m.error) {
            crate::outln!("  {} failed on its last run: {error}", m.version);
        }
        if let Some(detail) = &m.detail {
            crate::outln!("  {} {detail}", m.version);
        }
    }
    crate::outln!("lock: {}", lock_line(report.lock.as_ref()));
    if report.mongos {
        crate::outln!(
            "server: a mongos router: each router's clock judges the lease; keep the routers' clocks in sync (up to {} s apart is allowed for)",
            crate::lock::MAX_ROUTER_SKEW.as_secs()
        );
    }
}

/// Whether what `m` staged still matters: a post-deploy migration after it
/// is not applied yet (once they all are, its validator was enforced or
/// superseded, and the count of then is history: `status --json` and
/// `history` keep it).
fn enforcement_waits(report: &StatusReport, m: &crate::report::StatusEntry) -> bool {
    report.migrations.iter().any(|later| {
        later.version > m.version && later.phase == crate::Phase::PostDeploy && later.state != State::Applied
    })
}

/// One line per tenant database; fails (exit 1, or 3 when only locks
/// stood in the way) if any tenant did not go through.
pub fn tenants_up(package: &str, reports: &[TenantReport]) -> Result<(), Failure> {
    crate::outln!("{package}:");
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|t| {
            let (outcome, steps, detail) = match &t.outcome {
                TenantOutcome::Applied { report } => ("applied", report.steps.len().to_string(), String::new()),
                TenantOutcome::Locked { message } => ("LOCKED", "-".into(), message.clone()),
                TenantOutcome::Failed { message, .. } => ("FAILED", "-".into(), message.clone()),
                TenantOutcome::Skipped => ("skipped", "-".into(), "not started (--fail-fast)".into()),
            };
            vec![t.database.clone(), outcome.into(), steps, detail]
        })
        .collect();
    table(&["DATABASE", "OUTCOME", "APPLIED", "DETAIL"], &rows);
    let t = Tally::of(reports);
    crate::outln!(
        "{} {}: {} applied, {} failed, {} locked, {} skipped",
        t.all,
        plural(t.all, "database"),
        t.applied,
        t.failed,
        t.locked,
        t.skipped
    );
    tenants_exit(reports)
}

/// How many tenants ended each way.
struct Tally {
    all: usize,
    applied: usize,
    failed: usize,
    locked: usize,
    skipped: usize,
}

impl Tally {
    fn of(reports: &[TenantReport]) -> Self {
        let count = |f: fn(&TenantOutcome) -> bool| reports.iter().filter(|t| f(&t.outcome)).count();
        Tally {
            all: reports.len(),
            applied: count(|o| matches!(o, TenantOutcome::Applied { .. })),
            failed: count(|o| matches!(o, TenantOutcome::Failed { .. })),
            locked: count(|o| matches!(o, TenantOutcome::Locked { .. })),
            skipped: count(|o| matches!(o, TenantOutcome::Skipped)),
        }
    }
}

/// Exit 1 when a tenant failed or was skipped, 3 when only locks stood in
/// the way, else success.
pub fn tenants_exit(reports: &[TenantReport]) -> Result<(), Failure> {
    let t = Tally::of(reports);
    let code = match t.all - t.applied {
        0 => return Ok(()),
        missing if missing == t.locked => crate::cli::exit::Code::Locked,
        _ => crate::cli::exit::Code::Failed,
    };
    Err(crate::cli::exit::Failure::new(
        code,
        format!("{} of {} databases did not go through", t.all - t.applied, t.all),
    )
    .hint("see each database's outcome; run the command again for those databases"))
}

/// One line per tenant database: its counts and lock.
pub fn tenants_status(package: &str, all: &[TenantStatus]) -> Result<(), Failure> {
    crate::outln!("{package}:");
    let mut unreadable = 0;
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|t| match (&t.status, &t.error) {
            (Some(s), _) => {
                let c = &s.counts;
                vec![
                    t.database.clone(),
                    c.applied.to_string(),
                    c.pending.to_string(),
                    c.failed.to_string(),
                    c.running.to_string(),
                    c.unknown.to_string(),
                    lock_line(s.lock.as_ref()),
                ]
            }
            (None, error) => {
                unreadable += 1;
                let error = error.clone().unwrap_or_default();
                vec![
                    t.database.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    error,
                ]
            }
        })
        .collect();
    table(
        &["DATABASE", "APPLIED", "PENDING", "FAILED", "RUNNING", "UNKNOWN", "LOCK"],
        &rows,
    );
    let pending = all
        .iter()
        .filter(|t| t.status.as_ref().is_some_and(|s| s.counts.pending > 0))
        .count();
    crate::outln!(
        "{} {}: {pending} with pending migrations, {unreadable} unreadable",
        all.len(),
        plural(all.len(), "database")
    );
    if unreadable > 0 {
        return Err(crate::cli::exit::Failure::new(
            crate::cli::exit::Code::Failed,
            format!("{unreadable} databases could not be read"),
        ));
    }
    Ok(())
}

/// Who holds the lock, on one line.
pub fn lock_line(lock: Option<&LockInfo>) -> String {
    match lock {
        None => "free".into(),
        Some(l) if l.expired => format!("free (expired lock of {})", l.holder),
        Some(l) => format!(
            "held by {} until {} (generation {}){}",
            l.holder,
            when(Some(l.expires_at)),
            l.generation,
            gone_note(&l.holder)
        ),
    }
}

/// `; its process is gone ...` when the holder ran on this host and its
/// process no longer exists (read from `/proc`, where there is one).
fn gone_note(holder: &crate::Holder) -> &'static str {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let proc_fs = std::path::Path::new("/proc/self").exists();
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    if proc_fs && process_gone(holder, &host, alive) {
        "; its process is gone from this host: the lock frees itself when it expires, or now with `force-unlock --yes`"
    } else {
        ""
    }
}

/// Whether `holder` ran on `this_host` in a process that is not `alive`.
fn process_gone(holder: &crate::Holder, this_host: &str, alive: impl Fn(u32) -> bool) -> bool {
    holder.host == this_host && !alive(holder.pid)
}

/// The history table: a line per run (see `history.rs`), as `query` asks.
pub fn history(package: &str, records: &[Record], query: &crate::HistoryQuery) {
    crate::outln!("{package}:");
    let rows: Vec<Vec<String>> = crate::cli::history::lines(records, query)
        .iter()
        .map(|line| {
            let r = line.record;
            let status = line.status();
            let note = match line.run {
                // The record's own state says how it came about.
                None => match (r.baseline, r.adopted, r.documents_done()) {
                    (true, ..) => " (baseline)".to_string(),
                    (false, true, _) => " (without running)".to_string(),
                    (.., Some(done)) => format!(" ({} documents done)", thousands(done)),
                    _ => String::new(),
                },
                Some(run) if run.event == crate::LogEvent::Stopped => " (stopped on request)".to_string(),
                Some(_) => String::new(),
            };
            let (ms, error) = match line.run {
                Some(run) => (run.execution_time_ms, run.error.clone()),
                None => (r.execution_time_ms, r.error.clone()),
            };
            vec![
                r.version.to_string(),
                r.name.clone(),
                format!("{status}{note}"),
                line.direction().to_string(),
                line.batch().to_string(),
                when(Some(line.at())),
                ms.map(duration).unwrap_or_else(|| "-".into()),
                error.unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "NAME",
            "STATUS",
            "DIRECTION",
            "BATCH",
            "AT (UTC)",
            "TIME",
            "ERROR",
        ],
        &rows,
    );
}

#[cfg(test)]
mod gone_tests {
    use super::process_gone;

    #[test]
    fn a_holder_whose_process_is_gone_from_this_host_is_said_to_be() {
        let holder = crate::Holder {
            id: uuid::Uuid::nil(),
            host: "deploy-1".into(),
            pid: 4242,
            reason: "up".into(),
        };
        assert!(process_gone(&holder, "deploy-1", |_| false));
        assert!(!process_gone(&holder, "deploy-1", |pid| pid == 4242));
        // Another host's process cannot be seen from here.
        assert!(!process_gone(&holder, "deploy-2", |_| false));
    }
}

/// Whole outputs of the tables and summaries, captured at stdout's one
/// choke point (`stdout.rs`): records and reports in, text out, no process.
#[cfg(test)]
mod whole_outputs {
    use crate::cli::stdout::capture::printed;
    use crate::{Direction, Migration, Record, Registry, RunReport, Step, Version};
    use bson::doc;

    fn noop(_: &mut crate::MigrationContext) -> crate::BoxFuture<'_, crate::MigrationResult> {
        Box::pin(async { Ok(()) })
    }

    fn at(minute: i64) -> bson::DateTime {
        bson::DateTime::from_millis(1_796_600_000_000 + minute * 60_000)
    }

    fn records() -> Vec<Record> {
        let run = |event: &str, direction: &str, batch: i64, minute: i64, ms: i64| {
            doc! { "event": event, "direction": direction, "batch": batch, "at": at(minute), "executionTimeMs": ms }
        };
        [
            doc! {
                "version": 20260101000000_i64, "name": "create_users", "status": "completed", "direction": "up",
                "batch": 2_i64, "createdAt": at(0), "updatedAt": at(3), "appliedAt": at(3), "executionTimeMs": 12_i64,
                "log": [run("applied", "up", 1, 1, 10), run("rolled-back", "down", 1, 2, 4), run("applied", "up", 2, 3, 12)],
            },
            doc! {
                "version": 20260102000000_i64, "name": "seed_admin", "status": "failed", "direction": "up",
                "batch": 2_i64, "createdAt": at(3), "updatedAt": at(4), "error": "boom", "executionTimeMs": 1_500_i64,
                "log": [{ "event": "failed", "direction": "up", "batch": 2_i64, "at": at(4), "executionTimeMs": 1_500_i64, "error": "boom" }],
            },
        ]
        .iter()
        .map(|d| Record::from_document(d).unwrap())
        .collect()
    }

    #[test]
    fn history_is_a_table_of_runs() {
        let out = printed(|| super::history("app", &records(), &crate::HistoryQuery::default()));
        assert_eq!(
            out,
            "app:
VERSION         NAME          STATUS       DIRECTION  BATCH  AT (UTC)             TIME   ERROR
20260102000000  seed_admin    failed       up         2      2026-12-06 23:37:20  1.5 s  boom
20260101000000  create_users  completed    up         2      2026-12-06 23:36:20  12 ms
20260101000000  create_users  rolled-back  down       1      2026-12-06 23:35:20  4 ms
20260101000000  create_users  completed    up         1      2026-12-06 23:34:20  10 ms
"
        );
    }

    #[test]
    fn status_lists_every_migration_its_state_and_the_lock() {
        let registry = Registry::new(vec![
            Migration::new(Version::parse("20260101000000").unwrap(), "create_users", noop),
            Migration::new(Version::parse("20260102000000").unwrap(), "seed_admin", noop),
            Migration::new(Version::parse("20260103000000").unwrap(), "add_flag", noop),
        ])
        .unwrap();
        let records = crate::plan::index(records());
        let report = crate::StatusReport::new(&registry, &records, None);
        let out = printed(|| super::status("app", &report));
        assert_eq!(
            out,
            "app:
VERSION         NAME          PHASE       STATE    BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  pre-deploy  applied  2      2026-12-06 23:36:20  12 ms
20260102000000  seed_admin    pre-deploy  FAILED   2      -                    1.5 s
20260103000000  add_flag      pre-deploy  pending  -      -                    -
3 migrations: 1 applied, 1 pending, 1 failed, 0 running, 0 unknown
  20260102000000 failed: boom
lock: free
"
        );
    }

    #[test]
    fn a_run_report_says_what_ran_and_what_did_not() {
        let step = |v: &str, name: &str, ms| Step {
            version: Version::parse(v).unwrap(),
            name: name.into(),
            description: String::new(),
            batch: 3,
            transactional: false,
            reversible: true,
            duration_ms: ms,
            adopted: false,
        };
        let report = RunReport {
            direction: Direction::Up,
            dry_run: false,
            steps: vec![step("20260101000000", "create_users", Some(7))],
            skipped: vec![step("20260102000000", "seed_admin", None)],
            stopped_walk: None,
            elapsed_ms: Some(2_340),
        };
        let out = printed(|| super::run_report("app", &report));
        assert_eq!(
            out,
            "app: Applied 1 migration in 2.3 s (migration code: 7 ms)
app: stopped on request before:
  20260102000000 seed_admin
"
        );
        let dry = RunReport {
            dry_run: true,
            skipped: Vec::new(),
            elapsed_ms: None,
            ..report
        };
        assert_eq!(
            printed(|| super::run_report("app", &dry)),
            "app: Would apply 1 migration (dry run, nothing changed):
  20260101000000 create_users (batch 3)
"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn rates_are_whole_numbers_with_thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_669), "1,669");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
        assert_eq!(super::rate(1_669, Some(125)), "1,669/s, about 2m05s left");
        assert_eq!(super::rate(12, None), "12/s");
    }

    /// After Ctrl-C, the harness writes "stopping ..." and "aborted" to the
    /// terminal itself: the walk's bar is gone and is not drawn again
    /// (it was redrawn after "aborted").
    #[test]
    fn a_walk_s_bar_is_not_drawn_after_ctrl_c() {
        let batch = |done| crate::Progress::Batch {
            version: crate::Version::parse("20260101000000").unwrap(),
            done,
            total: 20_000,
            per_second: 500,
            eta_secs: Some(30),
        };
        let mut out = Vec::new();
        super::progress_on(&batch(100), &mut out, true);
        assert!(super::BAR.lock().unwrap().is_some(), "a terminal gets a bar");
        super::interrupted();
        assert!(super::BAR.lock().unwrap().is_none(), "Ctrl-C clears it");
        super::progress_on(&batch(200), &mut out, true);
        assert!(super::BAR.lock().unwrap().is_none(), "and it is not drawn again");
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(3_400), "3.4 s");
        assert_eq!(duration(59_949), "59.9 s");
        assert_eq!(duration(725_000), "12 min 5 s");
    }
}
