//! `check`, the CI gate: the migration files offline, and the database's
//! state when a URI is given. It builds nothing unless `--build` asks it to
//! compile the migrations (and still runs none), or the package declares
//! collections (`schema-fn`): their drift from the snapshot (with
//! `--build`) and from the database (with a URI) is read off its types.

use anyhow::Result;
use mongo_migrations::harness::{Answer, Command as HarnessCommand, Request};
use mongo_migrations::State;
use mongo_migrations_codegen::lint::{self, Severity};
use mongo_migrations_codegen::{render_with, Layout, REGISTRY_FILE};
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::exit::{Code, Failure};
use crate::workspace::{display, Target, Workspace};

/// What a finding means for the exit code, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Level {
    /// Worth a look; `check` still passes.
    Warning,
    /// Migrations wait to be applied (exit 6).
    Pending,
    /// The database needs attention (exit 4).
    Attention,
    /// The files are wrong (exit 2).
    Error,
}

#[derive(Debug, Serialize)]
struct Finding {
    level: Level,
    /// What was checked: `files`, `registry`, `lint`, `build` or `database`.
    check: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
struct PackageReport {
    package: String,
    /// Whether the database was checked too.
    online: bool,
    findings: Vec<Finding>,
}

/// What `check` checks beyond the files.
pub struct Checks {
    /// The files only, even with a URI.
    pub offline: bool,
    /// Compile the migrations.
    pub build: bool,
    /// With a URI: plan the deploy, its blocking steps as findings.
    pub plan: bool,
}

pub fn run(ws: &Workspace, conn: &ConnectionArgs, checks: Checks, json: bool, verbose: bool) -> Result<()> {
    let Checks { offline, build, plan } = checks;
    let mut reports = Vec::new();
    for target in &ws.targets {
        let mut report = PackageReport {
            package: target.name.clone(),
            online: false,
            findings: files(target),
        };
        if build && !report.findings.iter().any(|f| f.level == Level::Error) {
            report.findings.extend(compiles(ws, target, verbose));
            if target.config.schema_fn.is_some() && !report.findings.iter().any(|f| f.level == Level::Error) {
                report.findings.extend(snapshot(ws, target, verbose)?);
            }
        }
        let clean = !report.findings.iter().any(|f| f.level == Level::Error);
        if !offline && clean && uri_given(conn, target) {
            report.online = true;
            report.findings.extend(database(ws, target, conn, verbose)?);
            if target.config.schema_fn.is_some() {
                report.findings.extend(drift(ws, target, conn, verbose)?);
            }
            if plan {
                report.findings.extend(planned(ws, target, conn, verbose)?);
            }
        }
        reports.push(report);
    }
    let worst = reports.iter().flat_map(|r| &r.findings).map(|f| f.level).max();
    if json {
        let document = crate::output::one_or_keyed(
            reports
                .iter()
                .map(|r| Ok((r.package.clone(), serde_json::to_value(r)?)))
                .collect::<Result<_, serde_json::Error>>()?,
            ws.whole,
        );
        mongo_migrations::outln!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        for r in &reports {
            print(r);
        }
    }
    let code = match worst {
        None | Some(Level::Warning) => return Ok(()),
        Some(Level::Pending) => Code::Pending,
        Some(Level::Attention) => Code::Blocked,
        Some(Level::Error) => Code::Usage,
    };
    // The findings are printed (or in the JSON); the exit code says the rest.
    Err(Failure::new(code, "").into())
}

fn print(report: &PackageReport) {
    for f in &report.findings {
        let level = match f.level {
            Level::Error => "error",
            Level::Attention => "attention",
            Level::Pending => "pending",
            Level::Warning => "warning",
        };
        mongo_migrations::outln!("{}: {level}: {}", report.package, f.message);
        if let Some(hint) = &f.hint {
            mongo_migrations::outln!("  hint: {hint}");
        }
    }
    let count = |level| report.findings.iter().filter(|f| f.level == level).count();
    let scope = if report.online {
        "files and database"
    } else {
        "files only"
    };
    let (errors, warnings) = (count(Level::Error), count(Level::Warning));
    mongo_migrations::outln!(
        "{}: checked {scope}: {errors} {}, {} need attention, {} pending, {warnings} {}",
        report.package,
        crate::output::plural(errors, "error"),
        count(Level::Attention),
        count(Level::Pending),
        crate::output::plural(warnings, "warning"),
    );
}

/// A URI from `--uri` or the package's URI variable.
pub(crate) fn uri_given(conn: &ConnectionArgs, target: &Target) -> bool {
    mongo_migrations::cli::connection::resolve(conn, &target.config, |name| std::env::var(name).ok())
        .uri
        .is_some()
}

fn error(check: &'static str, message: String, hint: &str) -> Finding {
    Finding {
        level: Level::Error,
        check,
        message,
        hint: Some(hint.to_string()),
    }
}

/// The offline checks: file names and contents, duplicate versions, the
/// registry against the files, squashes, and the lints.
fn files(target: &Target) -> Vec<Finding> {
    if target.lib_name.is_none() {
        return vec![error(
            "files",
            format!(
                "package `{}` has no library target, so `up` cannot run its migrations",
                target.name
            ),
            "migrations must live in a library: add src/lib.rs with `pub mod migrations;`",
        )];
    }
    let dir = target.migrations_dir();
    if !dir.is_dir() {
        return vec![error(
            "files",
            format!("no migrations directory {}", display(&dir)),
            "create the first migration with `cargo mongo-migrate new <name>`",
        )];
    }
    let (files, errors) = match mongo_migrations_codegen::scan_all(&dir) {
        Ok(scanned) => scanned,
        Err(e) => return vec![error("files", e.to_string(), "check the directory's permissions")],
    };
    let mut findings: Vec<Finding> = errors
        .iter()
        .map(|e| {
            let hint = match e {
                mongo_migrations_codegen::Error::DuplicateVersion { .. } => {
                    "two branches added the same version: give one file a new timestamp, then `cargo mongo-migrate registry`"
                }
                mongo_migrations_codegen::Error::BadFileName { .. } => "rename the file, or move it out of the migrations directory",
                _ => "fix the file",
            };
            error("files", e.to_string(), hint)
        })
        .collect();
    let helpers = match mongo_migrations_codegen::helpers(&dir) {
        Ok(helpers) => helpers,
        Err(e) => {
            findings.push(error(
                "files",
                e.to_string(),
                "rename the file, or move it out of the migrations directory",
            ));
            Vec::new()
        }
    };
    if findings.is_empty() && !target.config.build_script {
        let path = dir.join(REGISTRY_FILE);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != render_with(&files, &helpers, Layout::Module) {
            let why = if current.contains("<<<<<<<") {
                "has merge conflict markers"
            } else {
                "does not match the migration files"
            };
            findings.push(error(
                "registry",
                format!("{} {why}", display(&path)),
                "run `cargo mongo-migrate registry` and commit it with the migrations (it holds each migration's checksum, so every edit of one changes it; `up` and a build regenerate it too); after a merge conflict in it, take either side first",
            ));
        }
    }
    findings.extend(lineage(&dir));
    if errors.is_empty() {
        if let Err(e) = crate::local::metadata_registry(files.clone()) {
            findings.push(error("registry", e.to_string(), "fix `REPLACES` in the squash module"));
        }
    }
    for file in &files {
        let Ok(source) = std::fs::read_to_string(&file.path) else {
            continue;
        };
        for f in lint::lint(&source) {
            findings.push(Finding {
                level: match f.severity {
                    Severity::Error => Level::Error,
                    _ => Level::Warning,
                },
                check: "lint",
                message: format!("{}:{}:{}: {}", display(&file.path), f.line, f.column, f.message),
                hint: Some(f.hint.to_string()),
            });
        }
    }
    findings
}

/// `--build`: the migrations compile (the harness is built, nothing runs);
/// cargo's errors are printed as it renders them.
fn compiles(ws: &Workspace, target: &Target, verbose: bool) -> Option<Finding> {
    match crate::harness::build(ws, target, verbose) {
        Ok(_) => None,
        Err(e) => {
            let fallback = "fix the errors cargo printed above";
            let (message, hint) = match e.downcast_ref::<Failure>() {
                Some(f) => (f.message.clone(), f.hint.clone().unwrap_or_else(|| fallback.into())),
                None => (e.to_string(), fallback.into()),
            };
            Some(Finding {
                level: Level::Error,
                check: "build",
                message,
                hint: Some(hint),
            })
        }
    }
}

/// The schema snapshot, when there is one: not merged from two branches
/// that both ran `diff` (offline, nothing built).
fn lineage(dir: &std::path::Path) -> Vec<Finding> {
    use mongo_migrations_codegen::schema::{lineage, Snapshot, SNAPSHOT_FILE};
    let path = dir.join(SNAPSHOT_FILE);
    if !path.exists() {
        return Vec::new();
    }
    let broken = Snapshot::read(&path)
        .map_err(|e| crate::diff::snapshot_error(&path, e))
        .and_then(|snapshot| {
            let generated = lineage::generated_modules(dir).map_err(|e| e.to_string())?;
            Ok(lineage::verify(&snapshot, &generated)
                .iter()
                .map(|b| format!("{}: {b}", display(&path)))
                .collect::<Vec<_>>())
        });
    broken
        .unwrap_or_else(|message| vec![message])
        .into_iter()
        .map(|message| error("schema", message, crate::diff::AFTER_MERGE_HINT))
        .collect()
}

/// `--build` of a package that declares collections: a change of them
/// that no migration makes yet.
fn snapshot(ws: &Workspace, target: &Target, verbose: bool) -> Result<Vec<Finding>> {
    use mongo_migrations_codegen::schema::{self, Snapshot, SNAPSHOT_FILE};
    let path = target.migrations_dir().join(SNAPSHOT_FILE);
    let old = match Snapshot::read(&path) {
        Ok(old) => old,
        Err(e) => {
            return Ok(vec![error(
                "schema",
                crate::diff::snapshot_error(&path, e),
                crate::diff::AFTER_MERGE_HINT,
            )])
        }
    };
    let changes = schema::diff(&old, &crate::diff::declared(ws, target, verbose)?);
    Ok(changes
        .pre_deploy
        .iter()
        .chain(&changes.post_deploy)
        .map(|op| {
            error(
                "schema",
                format!("{} is declared, and no migration does it", op.describe()),
                "write the migration with `cargo mongo-migrate diff <name>` and commit it with the snapshot",
            )
        })
        .collect())
}

/// The online checks of a package that declares collections: where the
/// database is not what they declare (an index made or dropped by hand, a
/// validator changed in a shell, documents that violate an enforced one).
fn drift(ws: &Workspace, target: &Target, conn: &ConnectionArgs, verbose: bool) -> Result<Vec<Finding>> {
    let bin = crate::harness::build(ws, target, verbose)?;
    let request = Request {
        connection: connection(target, conn)?,
        command: HarnessCommand::Drift,
        state: None,
    };
    let Answer::Drift(drift) = crate::harness::run(&bin, &request, verbose, |_| {})? else {
        anyhow::bail!("the harness answered `drift` with something else");
    };
    Ok(drift
        .into_iter()
        .map(|d| Finding {
            level: if d.pending { Level::Pending } else { Level::Attention },
            check: "schema",
            message: d.message,
            hint: Some(d.hint),
        })
        .collect())
}

/// `check --plan`: the deploy's plan (see `plan`), each blocking step, and
/// a refusal of `up`, a finding that needs attention.
fn planned(ws: &Workspace, target: &Target, conn: &ConnectionArgs, verbose: bool) -> Result<Vec<Finding>> {
    let bin = crate::harness::build(ws, target, verbose)?;
    let request = Request {
        connection: connection(target, conn)?,
        command: HarnessCommand::Plan {
            options: Default::default(),
            slow: mongo_migrations::DEFAULT_SLOW_DOCUMENTS,
            markdown: false,
        },
        state: None,
    };
    let Answer::Plan(report) = crate::harness::run(&bin, &request, verbose, |_| {})? else {
        anyhow::bail!("the harness answered `plan` with something else");
    };
    let mut findings = Vec::new();
    if let Some(refused) = report.refused {
        findings.push(Finding {
            level: Level::Attention,
            check: "plan",
            message: format!("`up` would be refused: {refused}"),
            hint: Some("see `cargo mongo-migrate status`".into()),
        });
    }
    for m in &report.migrations {
        for s in m.steps.iter().filter(|s| s.risk == mongo_migrations::Risk::Blocking) {
            findings.push(Finding {
                level: Level::Attention,
                check: "plan",
                message: format!(
                    "{} {} would fail: {}{}",
                    m.version,
                    m.name,
                    s.what,
                    s.why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
                ),
                hint: Some("see `cargo mongo-migrate plan`".into()),
            });
        }
    }
    Ok(findings)
}

/// The connection `status` of `target` would use, from the flags and the package's settings.
pub(crate) fn connection(target: &Target, conn: &ConnectionArgs) -> Result<mongo_migrations::harness::Connection> {
    let status = mongo_migrations::cli::DatabaseCommand::Status {
        conn: conn.clone(),
        tenancy: Default::default(),
        json: false,
    };
    let request = mongo_migrations::cli::request(&status, &target.name, &target.config);
    let (connection, ..) = crate::local::block_on(request)??;
    Ok(connection)
}

/// The online checks: what `status` says needs attention or is pending.
fn database(ws: &Workspace, target: &Target, conn: &ConnectionArgs, verbose: bool) -> Result<Vec<Finding>> {
    let request = Request {
        connection: connection(target, conn)?,
        command: HarnessCommand::Status,
        state: None,
    };
    let cache = crate::harness::registry_cache(ws, target);
    let Answer::Status(report) = crate::local::run(target, &cache, &request, verbose)? else {
        anyhow::bail!("the runtime answered `status` with something else");
    };
    let mut findings = Vec::new();
    for m in &report.migrations {
        let name = format!("{} {}", m.version, m.name);
        let (level, message, hint) = match m.state {
            _ if m.checksum_changed => (
                Level::Attention,
                format!("{name} was edited after it was applied"),
                "undo the edit, or `resolve --accept-checksum` if it is harmless",
            ),
            State::Unknown => (
                Level::Attention,
                format!("{name} is applied but not in this build"),
                "restore its file, or `forget` it if it was deleted on purpose",
            ),
            State::Failed => (
                Level::Attention,
                format!("{name} failed: {}", m.error.as_deref().unwrap_or_default()),
                "fix the cause, then `resolve`",
            ),
            State::Running => (
                Level::Attention,
                format!("{name} is running ({})", m.detail.as_deref().unwrap_or("in progress")),
                "see `status`",
            ),
            State::Pending | State::RolledBack if m.out_of_order => (
                Level::Attention,
                format!("{name} is pending but older than the newest applied migration (out of order)"),
                "`up --allow-out-of-order` applies it; or give it a new version with `cargo mongo-migrate renumber`",
            ),
            State::Pending | State::RolledBack => (Level::Pending, format!("{name} is pending"), "`up` applies it"),
            _ => continue,
        };
        findings.push(Finding {
            level,
            check: "database",
            message,
            hint: Some(hint.to_string()),
        });
    }
    Ok(findings)
}
