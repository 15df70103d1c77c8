//! `new` and `registry`: files in the user's tree.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use mongo_migrations_codegen::{names, render_with, scan, Layout, REGISTRY_FILE};

use crate::exit::{Code, Failure};
use crate::workspace::{display, Target};

const TEMPLATE: &str = include_str!("../templates/migration.rs");
const SQUASH_TEMPLATE: &str = include_str!("../templates/squash.rs");

pub(crate) fn codegen(e: mongo_migrations_codegen::Error) -> anyhow::Error {
    let hint = match &e {
        mongo_migrations_codegen::Error::DuplicateVersion { .. } => {
            "give the one applied nowhere a new version: `cargo mongo-migrate renumber <its file>`"
        }
        mongo_migrations_codegen::Error::BadFileName { .. } => {
            "rename the file, or move it out of the migrations directory"
        }
        mongo_migrations_codegen::Error::InvalidName { .. } => "use letters, digits, `-` or `_`, e.g. add-email-index",
        mongo_migrations_codegen::Error::InvalidVersion { .. } => {
            "e.g. --version 20261231235959, or leave it out to use the current UTC time"
        }
        _ => "fix the file; the registry was left unchanged",
    };
    Failure::new(Code::Usage, e.to_string()).hint(hint).into()
}

/// Regenerates the registry of `target`; prints what changed.
pub fn registry(target: &Target) -> Result<()> {
    require_runtime_name(target)?;
    let dir = target.migrations_dir();
    if !dir.is_dir() {
        return Err(Failure::new(
            Code::Usage,
            format!("{} has no migrations directory {}", target.name, display(&dir)),
        )
        .hint("create the first migration with `cargo mongo-migrate new <name>`")
        .into());
    }
    if target.config.build_script {
        let files = scan(&dir).map_err(codegen)?;
        mongo_migrations::outln!(
            "{}: {} {}; build.rs generates the registry",
            target.name,
            files.len(),
            crate::output::plural(files.len(), "migration")
        );
        return Ok(());
    }
    let (files, changed) = mongo_migrations_codegen::generate_module(&dir).map_err(codegen)?;
    let path = display(&dir.join(REGISTRY_FILE));
    let verb = if changed { "Updated" } else { "Unchanged" };
    let noun = crate::output::plural(files.len(), "migration");
    mongo_migrations::outln!("{verb} {path} ({} {noun})", files.len());
    Ok(())
}

/// Regenerates the registry before a harness build, parsing only the files
/// that changed since the last time (`cache`); silent unless it changed,
/// and then on stderr, so `--json` output stays one document.
pub fn registry_quiet(target: &Target, cache: &Path) -> Result<()> {
    let dir = target.migrations_dir();
    let (_, changed) = mongo_migrations_codegen::generate_module_cached(&dir, cache).map_err(codegen)?;
    if changed {
        eprintln!("Updated {}", display(&dir.join(REGISTRY_FILE)));
    }
    Ok(())
}

/// Writes a new migration and regenerates the registry. On any error the
/// tree is left as it was.
pub fn new(target: &Target, name: &str, version: Option<&str>) -> Result<()> {
    let name = names::normalise_name(name).map_err(codegen)?;
    let version = match version {
        Some(v) => {
            names::check_version(v).map_err(codegen)?;
            v.to_string()
        }
        None => now_version(),
    };
    let source = module_source(&describe(&name), None);
    create(target, vec![NewModule { version, name, source }])?;
    Ok(())
}

/// `new NAME --before VERSION`: a migration placed just before `before`
/// (the latest free second after the migration that precedes it), in its
/// deploy phase, so a data fix runs between a generated pre-deploy module
/// and the post-deploy one that enforces its validator.
pub fn new_before(target: &Target, name: &str, before: &str) -> Result<()> {
    let name = names::normalise_name(name).map_err(codegen)?;
    names::check_version(before).map_err(codegen)?;
    let files = scan(&target.migrations_dir()).map_err(codegen)?;
    let Some(next) = files.iter().find(|f| f.version == before) else {
        return Err(Failure::new(Code::Usage, format!("no migration has version {before}"))
            .hint("see the file names in the migrations directory, or `cargo mongo-migrate status`")
            .into());
    };
    let previous = files
        .iter()
        .rev()
        .find(|f| f.version.as_str() < before)
        .map(|f| f.version.as_str());
    let Some(version) = second_before(before, previous) else {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "no free second between {} and {before}",
                previous.unwrap_or("the first migration")
            ),
        )
        .hint("give the later migration a new version with `cargo mongo-migrate renumber` (only while it is applied nowhere), or write the fix into it")
        .into());
    };
    let post = next.phase.as_deref() == Some("post-deploy");
    let source = module_source(&describe(&name), post.then_some(DataFix::Planned));
    create(target, vec![NewModule { version, name, source }])?;
    if post {
        mongo_migrations::outln!(
            "note: it is post-deploy, as {}: `up --phase post` runs it first",
            next.module
        );
    }
    Ok(())
}

/// The latest second before `version` and after `previous`, as a version.
fn second_before(version: &str, previous: Option<&str>) -> Option<String> {
    let at = chrono::NaiveDateTime::parse_from_str(version, "%Y%m%d%H%M%S").ok()?;
    let candidate = (at - chrono::Duration::seconds(1)).format("%Y%m%d%H%M%S").to_string();
    previous.is_none_or(|p| candidate.as_str() > p).then_some(candidate)
}

/// What a new module's `up` starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFix {
    /// A post-deploy data fix whose `up` fails until it is written: applied
    /// as it was scaffolded, it would be recorded as done and the
    /// enforcement after it would meet the documents it did not fix.
    Planned,
}

/// The source of a new migration: the template, described by
/// `description`; with `data`, a post-deploy data fix.
pub fn module_source(description: &str, data: Option<DataFix>) -> String {
    let (phase, up) = match data {
        None => (
            "",
            "    let db = ctx.db()?;\n    // e.g. db.collection::<Document>(\"users\").insert_one(doc! { \"name\": \"admin\" }).await?;\n    let _ = db;\n    Ok(())",
        ),
        Some(DataFix::Planned) => (
            "\n/// After the deploy, before the enforcement that follows: the new code\n/// writes the new shape everywhere, so the documents fixed stay fixed.\npub const PHASE: Phase = Phase::PostDeploy;\n\n/// Run again by the next `up` after a failure, without `resolve` (this one\n/// fails until it is written): keep `up` safe to repeat, e.g. by a filter that\n/// matches only the documents still of the old shape.\npub const REPEATABLE: bool = true;\n",
            "    // Bring every document to the new shape, e.g. in resumable batches, which\n    // `cargo mongo-migrate plan` counts (it cannot follow `ctx.db()`):\n    // ctx.batches(\"users\", doc! { \"name\": { \"$exists\": false } })\n    //     .update_each(|d| Some(doc! { \"$set\": { \"name\": \"..\" } }))\n    //     .await?;\n    let _ = ctx;\n    Err(\"this data fix is not written yet: write its `up`, then run `up --phase post` again\".into())",
        ),
    };
    TEMPLATE
        .replace("{{description}}", description)
        .replace("{{phase}}", phase)
        .replace("{{up}}", up)
}

/// The current UTC time as a version.
pub fn now_version() -> String {
    chrono::Utc::now().format("%Y%m%d%H%M%S").to_string()
}

/// A migration module to create.
pub struct NewModule {
    pub version: String,
    /// Normalised (snake_case).
    pub name: String,
    pub source: String,
}

/// Writes `modules` as new migration files and regenerates the registry;
/// returns their paths. On any error none of them is left behind.
pub fn create(target: &Target, modules: Vec<NewModule>) -> Result<Vec<std::path::PathBuf>> {
    require_runtime_name(target)?;
    // `up` would refuse the package: nothing is written that cannot run.
    crate::harness::require_library(target)?;
    let dir = target.migrations_dir();
    let created_dir = !dir.exists();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = match scan(&dir) {
        Ok(files) => files,
        Err(e) => {
            if created_dir {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(codegen(e));
        }
    };
    for m in &modules {
        if let Some(clash) = files.iter().find(|f| f.version == m.version) {
            return Err(Failure::new(
                Code::Usage,
                format!("version {} is taken by {}", m.version, display(&clash.path)),
            )
            .hint("wait a second and run `new` or `diff` again, or pass --version to `new`")
            .into());
        }
    }
    let mut paths = Vec::new();
    let mut result = Ok(());
    for m in &modules {
        let path = dir.join(format!("{}.rs", names::module_name(&m.version, &m.name)));
        result = write_new(&path, &m.source);
        if result.is_err() {
            break;
        }
        mongo_migrations::outln!("Created {}", display(&path));
        paths.push(path);
    }
    // Only the new files need parsing; the others were read above.
    let result = result.and_then(|()| {
        for path in &paths {
            files.push(mongo_migrations_codegen::read(path).map_err(codegen)?);
        }
        files.sort_by(|a, b| a.version.cmp(&b.version));
        if target.config.build_script {
            return Ok(());
        }
        let registry = dir.join(REGISTRY_FILE);
        let helpers = mongo_migrations_codegen::helpers(&dir).map_err(codegen)?;
        mongo_migrations_codegen::write_if_changed(&registry, &render_with(&files, &helpers, Layout::Module))
            .map_err(codegen)?;
        mongo_migrations::outln!("Updated {}", display(&registry));
        Ok(())
    });
    if let Err(e) = result {
        remove(target, &paths);
        return Err(e);
    }
    if !target.config.build_script {
        hint_lib(target);
    }
    Ok(paths)
}

/// Deletes migration files `create` wrote, and regenerates the registry
/// without them.
pub fn remove(target: &Target, paths: &[std::path::PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
    if !paths.is_empty() && !target.config.build_script {
        let _ = mongo_migrations_codegen::generate_module(&target.migrations_dir());
    }
}

/// Replaces every migration up to `to` with one new module whose
/// `REPLACES` lists them (and whatever earlier squashes among them
/// replaced). Its version is the first free second after `to`, so it sorts
/// where they did. The new file is written before the old ones are deleted.
pub fn squash(target: &Target, to: &str, name: &str, force: bool) -> Result<()> {
    names::check_version(to).map_err(codegen)?;
    let name = names::normalise_name(name).map_err(codegen)?;
    let dir = target.migrations_dir();
    let files = scan(&dir).map_err(codegen)?;
    if !files.iter().any(|f| f.version == to) {
        return Err(Failure::new(Code::Usage, format!("no migration has version {to}"))
            .hint("see the file names in the migrations directory, or `cargo mongo-migrate status`")
            .into());
    }
    let (replaced, later): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.version.as_str() <= to);
    let mut versions: Vec<u64> = replaced
        .iter()
        .flat_map(|f| std::iter::once(f.version.parse().expect("scanned")).chain(f.replaces.iter().copied()))
        .collect();
    versions.sort_unstable();
    let version = next_free_second(to, later.first().map(|f| f.version.as_str())).ok_or_else(|| {
        Failure::new(
            Code::Usage,
            format!(
                "no free version between {to} and the next migration, {}",
                later[0].version
            ),
        )
        .hint("squash up to the next migration instead")
    })?;
    // Nothing is lost: every file it deletes must be in git as it is.
    let paths: Vec<&Path> = replaced.iter().map(|f| f.path.as_path()).collect();
    let unkept = not_kept_by_git(&dir, &paths);
    if !unkept.is_empty() && !force {
        let list: String = unkept
            .iter()
            .map(|(p, why)| format!("\n  {} ({why})", display(p)))
            .collect();
        return Err(Failure::new(
            Code::Usage,
            format!("squash would delete files that git does not keep:{list}"),
        )
        .hint("commit them first, or pass --force to delete them anyway")
        .into());
    }
    let module = names::module_name(&version, &name);
    let path = dir.join(format!("{module}.rs"));
    let list: String = versions.iter().map(|v| format!("    {v},\n")).collect();
    let content = SQUASH_TEMPLATE
        .replace("{{count}}", &replaced.len().to_string())
        .replace("{{to}}", to)
        .replace("{{versions}}", &list);
    write_new(&path, &content)?;
    for f in &replaced {
        std::fs::remove_file(&f.path).with_context(|| format!("cannot delete {}", f.path.display()))?;
    }
    mongo_migrations::outln!(
        "Created {} replacing {} {} up to {to}; their files are deleted ({})",
        display(&path),
        replaced.len(),
        crate::output::plural(replaced.len(), "migration"),
        if unkept.is_empty() {
            "git keeps them"
        } else {
            "with --force: git does not keep all of them"
        }
    );
    mongo_migrations::outln!("note: write its `up` before it runs on a fresh database; where they are all applied it is recorded without running");
    if !target.config.build_script {
        let (_, _) = mongo_migrations_codegen::generate_module(&dir).map_err(codegen)?;
        mongo_migrations::outln!("Updated {}", display(&dir.join(REGISTRY_FILE)));
    }
    Ok(())
}

/// The files of `paths` that git would not give back once deleted, with
/// why: untracked, ignored, modified, or no git repository at all.
fn not_kept_by_git<'p>(dir: &Path, paths: &[&'p Path]) -> Vec<(&'p Path, &'static str)> {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain=v1", "--ignored", "--untracked-files=all", "--"])
        .args(paths)
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(status) = status
        .map_err(drop)
        .and_then(|o| if o.status.success() { Ok(o) } else { Err(()) })
    else {
        return paths.iter().map(|p| (*p, "not in a git repository")).collect();
    };
    let text = String::from_utf8_lossy(&status.stdout);
    paths
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy();
            let line = text.lines().find(|l| l.ends_with(name.as_ref()))?;
            let why = match &line[..2] {
                "??" => "untracked",
                "!!" => "ignored by git",
                _ => "modified since the last commit",
            };
            Some((*p, why))
        })
        .collect()
}

/// The first second after `version` that is before `next` (if any).
pub(crate) fn next_free_second(version: &str, next: Option<&str>) -> Option<String> {
    let time = chrono::NaiveDateTime::parse_from_str(version, "%Y%m%d%H%M%S").ok()?;
    let candidate = (time + chrono::Duration::seconds(1)).format("%Y%m%d%H%M%S").to_string();
    next.is_none_or(|next| candidate.as_str() < next).then_some(candidate)
}

/// `add_email_index` -> `Add email index.`
fn describe(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_ascii_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

fn write_new(path: &Path, content: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Says how to wire the module in when the library root does not declare it.
fn hint_lib(target: &Target) {
    if let Some((item, lib)) = undeclared(target) {
        mongo_migrations::outln!(
            "note: add `pub mod {item};` to {} so the harness can find the registry",
            display(&lib)
        );
    }
}

/// The module of the registry function (`migrations` of
/// `migrations::registry`) when the library root does not declare it, with
/// that root. `None` when it is declared, or the root cannot be read or
/// parsed (the compiler then says more than this check could).
pub fn undeclared(target: &Target) -> Option<(String, std::path::PathBuf)> {
    undeclared_root(target, &target.config.registry_fn)
}

/// The first segment of `function` (a path in the library, such as
/// `schema::collections`) when the library root does not declare it.
fn undeclared_root(target: &Target, function: &str) -> Option<(String, std::path::PathBuf)> {
    let lib = target.lib_root.clone()?;
    let first = function.split("::").next()?.to_string();
    let file = syn::parse_file(&std::fs::read_to_string(&lib).ok()?).ok()?;
    let declared = file.items.iter().any(|item| match item {
        syn::Item::Mod(m) => m.ident == first,
        syn::Item::Fn(f) => f.sig.ident == first,
        // A `use` that brings in that name, or any glob.
        syn::Item::Use(u) => imports(&u.tree, &first),
        _ => false,
    });
    (!declared).then_some((first, lib))
}

fn imports(tree: &syn::UseTree, name: &str) -> bool {
    match tree {
        syn::UseTree::Path(p) => imports(&p.tree, name),
        syn::UseTree::Name(n) => n.ident == name,
        syn::UseTree::Rename(r) => r.rename == name,
        syn::UseTree::Glob(_) => true,
        syn::UseTree::Group(g) => g.items.iter().any(|t| imports(t, name)),
    }
}

/// Refuses to build a harness that cannot compile for want of the module
/// declaration: the same advice `new` gives, instead of a compiler error in
/// generated code. The same for the package's `schema-fn` (`schema` of
/// `schema::collections`), which every harness of the package calls too.
pub fn require_declared(target: &Target) -> Result<()> {
    require_runtime_name(target)?;
    require_function(target, &target.config.registry_fn)?;
    match &target.config.schema_fn {
        Some(function) => require_function(target, function),
        None => Ok(()),
    }
}

/// Refuses a package that renames the runtime in its `Cargo.toml`: the
/// registry, the migrations and the template name it `mongo_migrations`,
/// so its crate could not compile.
pub fn require_runtime_name(target: &Target) -> Result<()> {
    match &target.runtime_renamed {
        Some(rename) => Err(Failure::new(
            Code::Usage,
            format!(
                "`{}` depends on mongo-migrations as `{rename}`, and the generated registry and migrations name it `mongo_migrations`",
                target.name
            ),
        )
        .hint("depend on it under its own name in Cargo.toml (`mongo-migrations = { .. }`, without `package = ..`)")
        .into()),
        None => Ok(()),
    }
}

fn require_function(target: &Target, function: &str) -> Result<()> {
    match undeclared_root(target, function) {
        Some((item, lib)) => Err(Failure::new(
            Code::Usage,
            format!(
                "`{}` does not declare `{item}` in {}, so `{function}` cannot be called",
                target.name,
                display(&lib),
            ),
        )
        .hint(format!("add `pub mod {item};` to {}", display(&lib)))
        .into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_squash_takes_the_second_after_its_last_version_if_free() {
        use super::next_free_second;
        assert_eq!(
            next_free_second("20261231235959", None).as_deref(),
            Some("20270101000000")
        );
        assert_eq!(
            next_free_second("20260101000000", Some("20260101000002")).as_deref(),
            Some("20260101000001")
        );
        assert_eq!(next_free_second("20260101000000", Some("20260101000001")), None);
    }

    #[test]
    fn describes_names() {
        assert_eq!(super::describe("add_email_index"), "Add email index.");
    }

    #[test]
    fn a_migration_before_another_takes_the_latest_free_second() {
        use super::second_before;
        assert_eq!(
            second_before("20260401000010", Some("20260401000000")).unwrap(),
            "20260401000009"
        );
        assert_eq!(second_before("20260401000000", None).unwrap(), "20260331235959");
        assert_eq!(second_before("20260401000001", Some("20260401000000")), None);
    }

    #[test]
    fn a_planned_data_fix_is_post_deploy_and_fails_until_written() {
        use super::{module_source, DataFix};
        let plain = module_source("Add it.", None);
        assert!(
            !plain.contains("PHASE") && plain.contains("    Ok(())\n}\n\n/// Undoes"),
            "{plain}"
        );
        let fix = module_source("Fix it.", Some(DataFix::Planned));
        assert!(
            fix.contains("stay fixed.\npub const PHASE: Phase = Phase::PostDeploy;\n"),
            "{fix}"
        );
        assert!(
            fix.contains("pub const REPEATABLE: bool = true;\n\n/// `true`"),
            "{fix}"
        );
        assert!(fix.contains("Err(\"this data fix is not written yet"), "{fix}");
        // Both parse as Rust.
        syn::parse_file(&plain).unwrap();
        syn::parse_file(&fix).unwrap();
    }
}
