//! `diff NAME`: the declared collections (read off the crate's types by its
//! harness, with no database) against the committed snapshot; writes the
//! migrations that take a database from one to the other, and the new
//! snapshot. Nothing is written when nothing changed.

use anyhow::Result;
use mongo_migrations::harness::{Answer, Command as Remote, Connection, Request};
use mongo_migrations_codegen::names;
use mongo_migrations_codegen::schema::{self, Half, Snapshot, SNAPSHOT_FILE};

use crate::exit::{Code, Failure};
use crate::scaffold::{self, NewModule};
use crate::workspace::{display, Target, Workspace};

pub fn run(ws: &Workspace, target: &Target, name: &str, version: Option<&str>, verbose: bool) -> Result<()> {
    let name = names::normalise_name(name).map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
    let version = match version {
        Some(v) => {
            names::check_version(v).map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
            v.to_string()
        }
        None => scaffold::now_version(),
    };
    let snapshot_path = target.migrations_dir().join(SNAPSHOT_FILE);
    // Before the build: a broken snapshot is reported in a second.
    let old = Snapshot::read(&snapshot_path).map_err(|e| {
        Failure::new(Code::Usage, snapshot_error(&snapshot_path, e)).hint(
            "after a merge conflict, take the side of the branch merged first and run `diff` again: it writes what the other side adds",
        )
    })?;
    // Refusals first: a refused `diff` leaves the tree as it was.
    readable(target)?;
    first_registry(target)?;
    let new = harness_schema(ws, target, verbose)?;
    let changes = schema::diff(&old, &new);
    for note in &changes.notes {
        mongo_migrations::outln!("note: {note}");
    }
    if changes.is_empty() {
        if new == old {
            mongo_migrations::outln!(
                "{}: the declared collections match {}: nothing to write",
                target.name,
                display(&snapshot_path)
            );
        } else {
            write_snapshot(&snapshot_path, &new)?;
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
    if !changes.post_deploy.is_empty() {
        let post_version = match modules.is_empty() {
            true => version.clone(),
            false => next_second(&version)?,
        };
        modules.push(NewModule {
            version: post_version,
            name: format!("{name}_post_deploy"),
            source: schema::render_module(&changes.post_deploy, Half::PostDeploy, &command),
        });
    }
    let created = scaffold::create(target, modules)?;
    if let Err(e) = write_snapshot(&snapshot_path, &new) {
        scaffold::remove(target, &created);
        return Err(e);
    }
    match (changes.pre_deploy.is_empty(), changes.post_deploy.is_empty()) {
        (false, false) => mongo_migrations::outln!(
            "note: apply the first before the deploy (`up --phase pre`), the post-deploy one after it (`up --phase post`)"
        ),
        (true, false) => mongo_migrations::outln!("note: it is post-deploy: apply it after the deploy (`up --phase post`)"),
        _ => {}
    }
    Ok(())
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
        command: Remote::Schema,
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

/// The second after `version`.
fn next_second(version: &str) -> Result<String> {
    let at = chrono::NaiveDateTime::parse_from_str(version, "%Y%m%d%H%M%S")?;
    Ok((at + chrono::Duration::seconds(1)).format("%Y%m%d%H%M%S").to_string())
}
