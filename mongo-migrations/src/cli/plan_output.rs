//! `plan` as a person reads it (a table on a terminal) and as a pull
//! request shows it (Markdown). JSON is the report itself.

use crate::cli::exit::{Code, Failure};
use crate::{PlanReport, Risk};

/// The plan, as text.
pub fn plan(package: &str, report: &PlanReport) {
    crate::outln!(
        "{package}: plan for `{}` (read only: nothing was changed)",
        report.database
    );
    if let Some(refused) = &report.refused {
        crate::outln!("  blocking: `up` would be refused: {refused}");
    }
    for m in &report.migrations {
        crate::outln!("  {} {} ({}, {})", m.version, m.name, m.phase.as_str(), m.risk.as_str());
        for s in &m.steps {
            crate::outln!("    {:<12} {}", s.risk.as_str(), s.what);
            if let Some(why) = &s.why {
                crate::outln!("    {:<12} {why}", "");
            }
        }
    }
    crate::outln!("{package}: {}", summary(report));
    if let Some(lock) = &report.lock {
        crate::outln!(
            "{package}: the lock is held by {} until {}: the deploy would wait for it (`--wait`) or be refused",
            lock.holder,
            lock.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
}

/// `3 migrations: 1 blocking, 2 safe`.
fn summary(report: &PlanReport) -> String {
    let n = report.migrations.len();
    if n == 0 && report.refused.is_none() {
        return "nothing to do".into();
    }
    let mut counts: Vec<(Risk, usize)> = Vec::new();
    for m in &report.migrations {
        match counts.iter_mut().find(|(r, _)| *r == m.risk) {
            Some((_, c)) => *c += 1,
            None => counts.push((m.risk, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.0));
    let by_risk: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {}", r.as_str())).collect();
    format!(
        "{n} {}: {}",
        crate::cli::output::plural(n, "migration"),
        if by_risk.is_empty() {
            "refused".to_string()
        } else {
            by_risk.join(", ")
        }
    )
}

/// The plan, as Markdown for a pull-request comment.
pub fn plan_markdown(package: &str, report: &PlanReport) {
    let cell = |s: &str| s.replace('|', "\\|");
    crate::outln!(
        "### Deploy plan of `{package}` for `{}`: **{}**",
        report.database,
        report.risk.as_str()
    );
    crate::outln!();
    if let Some(refused) = &report.refused {
        crate::outln!("**Blocking:** `up` would be refused: {}", cell(refused));
        crate::outln!();
    }
    if !report.migrations.is_empty() {
        crate::outln!("| migration | phase | risk | what it would do |");
        crate::outln!("| --- | --- | --- | --- |");
        for m in &report.migrations {
            for (i, s) in m.steps.iter().enumerate() {
                let migration = if i == 0 {
                    format!("{} `{}`", m.version, m.name)
                } else {
                    String::new()
                };
                let phase = if i == 0 { m.phase.as_str() } else { "" };
                let what = match &s.why {
                    Some(why) => format!("{}: {}", cell(&s.what), cell(why)),
                    None => cell(&s.what),
                };
                crate::outln!("| {migration} | {phase} | {} | {what} |", s.risk.as_str());
            }
        }
        crate::outln!();
    }
    crate::outln!(
        "{}. Read only: `cargo mongo-migrate plan` changed nothing.",
        summary(report)
    );
}

/// The failure `plan` ends with when the deploy would fail as things stand.
pub fn plan_exit(report: &PlanReport) -> Result<(), Failure> {
    if !report.blocks() {
        return Ok(());
    }
    Err(Failure::new(
        Code::Blocked,
        "the plan has blocking steps: the deploy would fail as things stand",
    )
    .hint("fix what each blocking step says (duplicates, violators, an index in the way), then plan again"))
}

/// The plans of many databases, one line each: its risk, its pending
/// migrations, its blocking and slow steps; then which would fail.
pub fn tenant_plans(package: &str, plans: &[crate::TenantPlan]) -> Result<(), Failure> {
    crate::outln!(
        "{package}: plan over {} databases (read only: nothing was changed)",
        plans.len()
    );
    let width = plans.iter().map(|p| p.database.len()).max().unwrap_or(8).max(8);
    crate::outln!(
        "{:<width$}  {:<12}  {:>7}  {:>8}  {:>4}",
        "DATABASE",
        "RISK",
        "PENDING",
        "BLOCKING",
        "SLOW"
    );
    let mut failing = Vec::new();
    for p in plans {
        match (&p.plan, &p.error) {
            (Some(plan), _) => {
                let count = |risk| {
                    plan.migrations
                        .iter()
                        .flat_map(|m| &m.steps)
                        .filter(|s| s.risk == risk)
                        .count()
                };
                let blocking = count(Risk::Blocking) + usize::from(plan.refused.is_some());
                if plan.blocks() {
                    failing.push(p.database.as_str());
                }
                crate::outln!(
                    "{:<width$}  {:<12}  {:>7}  {:>8}  {:>4}",
                    p.database,
                    plan.risk.as_str(),
                    plan.migrations.len(),
                    blocking,
                    count(Risk::Slow)
                );
            }
            (None, error) => {
                failing.push(p.database.as_str());
                crate::outln!(
                    "{:<width$}  not planned: {}",
                    p.database,
                    error.as_deref().unwrap_or("no answer")
                );
            }
        }
    }
    crate::outln!(
        "{package}: {} of {} databases would fail as things stand{}",
        failing.len(),
        plans.len(),
        if failing.is_empty() {
            String::new()
        } else {
            format!(": {}", failing.join(", "))
        }
    );
    tenant_plans_exit(plans)
}

/// The failure of a plan over many databases where one would fail.
pub fn tenant_plans_exit(plans: &[crate::TenantPlan]) -> Result<(), Failure> {
    if plans.iter().all(|p| p.plan.as_ref().is_some_and(|plan| !plan.blocks())) {
        return Ok(());
    }
    Err(Failure::new(
        Code::Blocked,
        "some databases' plans have blocking steps, or could not be made",
    )
    .hint("plan one of them (`--database NAME`) for its steps and their reasons"))
}
