//! `diff NAME`: the declared collections (read off the crate's types by its
//! harness, with no database) against the committed snapshot; writes the
//! migrations that take a database from one to the other, and the new
//! snapshot. Nothing is written when nothing changed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use mongo_migrations::harness::{Answer, Command as HarnessCommand, Connection, Request};
use mongo_migrations_codegen::names;
use mongo_migrations_codegen::schema::{self, lineage, Half, Snapshot, SNAPSHOT_FILE};

use crate::exit::{Code, Failure};
use crate::scaffold::{self, NewModule};
use crate::workspace::{display, Target, Workspace};

/// What `diff` is asked for besides the name.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// The first module's version instead of now.
    pub version: Option<&'a str>,
    /// A data-fix module between the two phases' modules.
    pub with_data: bool,
    /// Merge two branches' diffs: see [`merged_base`].
    pub after_merge: bool,
}

/// Seconds from a change's pre-deploy module to its post-deploy one: room
/// for data fixes between them (`--with-data`, `new --before`).
const POST_DEPLOY_AFTER: i64 = 10;

/// Seconds from the pre-deploy module to the data fix of `--with-data`.
const DATA_FIX_AFTER: i64 = 5;

pub fn run(ws: &Workspace, target: &Target, name: &str, options: &Options, verbose: bool) -> Result<()> {
    let name = names::normalise_name(name).map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
    let version = match options.version {
        Some(v) => {
            names::check_version(v).map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
            v.to_string()
        }
        None => scaffold::now_version(),
    };
    let dir = target.migrations_dir();
    let snapshot_path = dir.join(SNAPSHOT_FILE);
    let generated = lineage::generated_modules(&dir).map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
    // Before the build: a broken snapshot is reported in a second.
    let (old, replaced) = if options.after_merge {
        merged_base(&snapshot_path, &generated)?
    } else {
        (whole_snapshot(&snapshot_path, &generated)?, Vec::new())
    };
    // Modules of a snapshot from before lineage count as listed.
    let listed = match old.has_lineage() {
        true => old.migrations.clone(),
        false => generated.clone(),
    };
    // Refusals first: a refused `diff` leaves the tree as it was.
    readable(target)?;
    first_registry(target)?;
    if !target.config.build_script && dir.is_dir() {
        // A registry left conflicted by a merge is written again before the build.
        scaffold::registry_quiet(target, &crate::harness::registry_cache(ws, target))?;
    }
    let new = harness_schema(ws, target, verbose)?;
    let changes = schema::diff(&old, &new);
    for note in &changes.notes {
        mongo_migrations::outln!("note: {note}");
    }
    let removed = Removed::take(target, &replaced)?;
    if changes.is_empty() {
        let sealed = new.sealed(listed);
        let unchanged = std::fs::read_to_string(&snapshot_path).is_ok_and(|text| text == sealed.render());
        if unchanged {
            mongo_migrations::outln!(
                "{}: the declared collections match {}: nothing to write",
                target.name,
                display(&snapshot_path)
            );
        } else {
            write_snapshot(&snapshot_path, &sealed).inspect_err(|_| removed.restore(target))?;
        }
        return Ok(());
    }
    let command = format!("diff {}", name.replace('_', "-"));
    let mut modules = Vec::new();
    if !changes.pre_deploy.is_empty() {
        modules.push(NewModule {
            version: version.clone(),
            name: name.clone(),
            source: schema::render_module(&changes.pre_deploy, Half::PreDeploy, &command),
        });
    }
    let fixes = options.with_data;
    // The schema modules are `diff`'s; a data fix is the user's to write.
    let data_fix = format!("{name}_data");
    if fixes {
        let after = if modules.is_empty() { 0 } else { DATA_FIX_AFTER };
        modules.push(NewModule {
            version: later(&version, after)?,
            name: data_fix.clone(),
            source: scaffold::module_source(
                &format!(
                    "Data fix of `cargo mongo-migrate {command}`: brings the documents to the new shape between the deploy and the enforcement of the validator."
                ),
                Some(scaffold::DataFix::Planned),
            ),
        });
    }
    if !changes.post_deploy.is_empty() {
        let after = if modules.is_empty() { 0 } else { POST_DEPLOY_AFTER };
        modules.push(NewModule {
            version: later(&version, after)?,
            name: format!("{name}_post_deploy"),
            source: schema::render_module(&changes.post_deploy, Half::PostDeploy, &command),
        });
    }
    let generated: Vec<String> = modules
        .iter()
        .filter(|m| !(fixes && m.name == data_fix))
        .map(|m| names::module_name(&m.version, &m.name))
        .collect();
    let created = scaffold::create(target, modules).inspect_err(|_| removed.restore(target))?;
    let mut listed = listed;
    listed.extend(generated);
    if let Err(e) = write_snapshot(&snapshot_path, &new.sealed(listed)) {
        scaffold::remove(target, &created);
        removed.restore(target);
        return Err(e);
    }
    match (changes.pre_deploy.is_empty(), changes.post_deploy.is_empty()) {
        (false, false) if fixes => mongo_migrations::outln!(
            "note: apply the first before the deploy (`up --phase pre`); write the data fix's `up`; after the deploy `up --phase post` runs the fix, then the enforcement"
        ),
        (false, false) => mongo_migrations::outln!(
            "note: apply the first before the deploy (`up --phase pre`), the post-deploy one after it (`up --phase post`); a data fix goes between them: `cargo mongo-migrate new <name> --before <the post-deploy version>`"
        ),
        (true, false) => mongo_migrations::outln!("note: it is post-deploy: apply it after the deploy (`up --phase post`)"),
        _ => {}
    }
    Ok(())
}

/// The snapshot at `path`, refused when it is not the one `diff` wrote for
/// this tree (merge conflict markers, a merge that kept parts of both
/// branches, another branch's generated modules).
fn whole_snapshot(path: &Path, generated: &[String]) -> Result<Snapshot> {
    let snapshot =
        Snapshot::read(path).map_err(|e| Failure::new(Code::Usage, snapshot_error(path, e)).hint(AFTER_MERGE_HINT))?;
    if let Some(broken) = lineage::verify(&snapshot, generated).first() {
        return Err(Failure::new(Code::Usage, format!("{}: {broken}", display(path)))
            .hint(AFTER_MERGE_HINT)
            .into());
    }
    Ok(snapshot)
}

/// What to do about a snapshot that two branches' `diff`s both wrote.
pub const AFTER_MERGE_HINT: &str = "run `cargo mongo-migrate diff <name> --after-merge`: it keeps the snapshot and migrations of the branch merged into and writes the other side's schema changes again, as one new migration";

/// `--after-merge`: the snapshot to diff from, and the generated modules to
/// replace. The first whole snapshot (its sum matches) of: the file as it
/// is, git's `HEAD`, `HEAD^1` (after the merge was committed). Its side is
/// the branch merged into, whose migrations may be deployed already; the
/// other side's generated modules, which it does not list, are written
/// again as one migration from it to the declared collections.
fn merged_base(path: &Path, generated: &[String]) -> Result<(Snapshot, Vec<String>)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let working = std::fs::read_to_string(path)
        .ok()
        .map(|text| ("the file".to_string(), text));
    let from_git = ["HEAD", "HEAD^1"].into_iter().filter_map(|rev| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["show", &format!("{rev}:./{file}")])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| {
            (
                format!("git's {rev}"),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        })
    });
    for (from, text) in working.into_iter().chain(from_git) {
        let Ok(snapshot) = Snapshot::parse(&text, path) else {
            continue;
        };
        if !snapshot.has_lineage() {
            return Err(Failure::new(
                Code::Usage,
                format!("{}: the snapshot of {from} is from before this version listed the modules `diff` wrote", display(path)),
            )
            .hint("keep one side by hand: `git checkout --ours` the snapshot, delete the other side's generated modules, and run `diff` again")
            .into());
        }
        let whole = lineage::verify(&snapshot, &[]).is_empty();
        if !whole {
            continue;
        }
        let replaced: Vec<String> = generated
            .iter()
            .filter(|stem| !snapshot.migrations.contains(stem))
            .cloned()
            .collect();
        if replaced.is_empty() {
            mongo_migrations::outln!("note: {} is whole: there is no merge to redo", display(path));
        } else {
            mongo_migrations::outln!(
                "{}: from the snapshot of {from}; the other side's {} written again as one migration: {}",
                display(path),
                if replaced.len() == 1 {
                    "migration is"
                } else {
                    "migrations are"
                },
                replaced.join(", ")
            );
        }
        return Ok((snapshot, replaced));
    }
    Err(Failure::new(
        Code::Usage,
        format!(
            "{}: no whole snapshot of the branch merged into (the file, git's HEAD or HEAD^1)",
            display(path)
        ),
    )
    .hint("put back the snapshot of the branch merged into (`git checkout --ours` during the merge, or `git show <commit>:<path>`), then run `diff <name> --after-merge` again")
    .into())
}

/// The other side's generated modules, deleted once the build succeeded
/// and put back if writing the new migration fails.
struct Removed(Vec<(PathBuf, String)>);

impl Removed {
    fn take(target: &Target, stems: &[String]) -> Result<Self> {
        let dir = target.migrations_dir();
        let mut removed = Vec::new();
        for stem in stems {
            let path = dir.join(format!("{stem}.rs"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", display(&path)))?;
            removed.push((path, text));
        }
        let removed = Removed(removed);
        for (path, _) in &removed.0 {
            if let Err(e) = std::fs::remove_file(path) {
                removed.restore(target);
                return Err(e).with_context(|| format!("cannot delete {}", display(path)));
            }
            mongo_migrations::outln!("Removed {}", display(path));
        }
        if !removed.0.is_empty() && !target.config.build_script {
            mongo_migrations_codegen::generate_module(&dir)?;
        }
        Ok(removed)
    }

    fn restore(&self, target: &Target) {
        for (path, text) in &self.0 {
            let _ = std::fs::write(path, text);
        }
        if !self.0.is_empty() && !target.config.build_script {
            let _ = mongo_migrations_codegen::generate_module(&target.migrations_dir());
        }
    }
}

/// The snapshot's error, its path as the user's tree names it.
pub fn snapshot_error(path: &std::path::Path, e: mongo_migrations_codegen::Error) -> String {
    match e {
        mongo_migrations_codegen::Error::Snapshot { message, .. } => format!("{}: {message}", display(path)),
        other => other.to_string(),
    }
}

fn write_snapshot(path: &std::path::Path, snapshot: &Snapshot) -> Result<()> {
    mongo_migrations_codegen::write_if_changed(path, &snapshot.render())?;
    mongo_migrations::outln!("Updated {}", display(path));
    Ok(())
}

/// The declared collections, from the crate's harness (no database).
pub fn declared(ws: &Workspace, target: &Target, verbose: bool) -> Result<Snapshot> {
    readable(target)?;
    harness_schema(ws, target, verbose)
}

/// Refuses, before any build, a package whose declared collections cannot
/// be read: it names no `schema-fn`, or its library does not declare the
/// migrations module the harness calls.
fn readable(target: &Target) -> Result<()> {
    if target.config.schema_fn.is_none() {
        return Err(Failure::new(
            Code::Usage,
            format!("package `{}` declares no collections", target.name),
        )
        .hint("list them in one place, e.g. src/schema.rs: `mongo_migrations::collections![crate::User];`, and name it in Cargo.toml: [package.metadata.mongo-migrate] schema-fn = \"schema::collections\"")
        .into());
    }
    scaffold::require_declared(target)
}

/// The crate's first migrations may be the ones `diff` writes: with no
/// migrations directory, an empty registry lets the crate build (it is
/// rewritten with the new modules).
fn first_registry(target: &Target) -> Result<()> {
    let dir = target.migrations_dir();
    if !dir.exists() && !target.config.build_script {
        std::fs::create_dir_all(&dir)?;
        mongo_migrations_codegen::generate_module(&dir)?;
        mongo_migrations::outln!(
            "Created {}",
            display(&dir.join(mongo_migrations_codegen::REGISTRY_FILE))
        );
    }
    Ok(())
}

/// The declared collections, as the harness reads them off the types.
fn harness_schema(ws: &Workspace, target: &Target, verbose: bool) -> Result<Snapshot> {
    let bin = crate::harness::build(ws, target, verbose)?;
    let request = Request {
        connection: Connection::default(),
        command: HarnessCommand::Schema,
        state: None,
    };
    let Answer::Schema(collections) = crate::harness::run(&bin, &request, verbose, |_| {})? else {
        anyhow::bail!("the harness answered `schema` with something else");
    };
    Snapshot::from_declared(collections).map_err(|e| {
        Failure::new(Code::Usage, format!("package `{}`: {e}", target.name))
            .hint("each collection is declared once, on one type")
            .into()
    })
}

/// The version `seconds` after `version`.
fn later(version: &str, seconds: i64) -> Result<String> {
    let at = chrono::NaiveDateTime::parse_from_str(version, "%Y%m%d%H%M%S")?;
    Ok((at + chrono::Duration::seconds(seconds))
        .format("%Y%m%d%H%M%S")
        .to_string())
}
