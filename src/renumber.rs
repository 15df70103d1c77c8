//! `renumber`: a migration given a new version (timestamp), for a version
//! clash after a merge (two files with one version) or a migration that
//! sorts before one already applied. Only a migration applied nowhere may
//! be renumbered: its record is kept under its version, so an applied one
//! would run again under the new one. Checked against the database when a
//! URI is given; said when it is not.

use std::path::{Path, PathBuf};

use anyhow::Result;
use mongo_migrations::harness::{Answer, Request};
use mongo_migrations::State;
use mongo_migrations_codegen::{names, MigrationFile, REGISTRY_FILE};

use crate::cli::ConnectionArgs;
use crate::exit::{Code, Failure};
use crate::workspace::{display, Target, Workspace};

/// The migration to renumber, as given: a version, a module name or a path.
fn chosen<'f>(files: &'f [MigrationFile], given: &str) -> Result<&'f MigrationFile> {
    let stem = Path::new(given)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let matching: Vec<&MigrationFile> = files
        .iter()
        .filter(|f| f.version == given || f.module == stem)
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(Failure::new(Code::Usage, format!("no migration is `{given}`"))
            .hint("give its version, its file name or its path: see the migrations directory, or `cargo mongo-migrate status`")
            .into()),
        several => Err(Failure::new(
            Code::Usage,
            format!(
                "{} migrations have version {given}: {}",
                several.len(),
                several
                    .iter()
                    .map(|f| display(&f.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .hint("give the file of the one to renumber (the one applied nowhere)")
        .into()),
    }
}

/// The new version: `to` if free, else the current UTC time, or the second
/// after the newest migration when that is later (a file dated ahead).
fn new_version(files: &[MigrationFile], to: Option<&str>, now: String) -> Result<String> {
    if let Some(to) = to {
        names::check_version(to).map_err(crate::scaffold::codegen)?;
        if let Some(taken) = files.iter().find(|f| f.version == to) {
            return Err(Failure::new(
                Code::Usage,
                format!("version {to} is taken by {}", display(&taken.path)),
            )
            .hint("choose another, or leave --to out to use the current UTC time")
            .into());
        }
        return Ok(to.to_string());
    }
    let newest = files.iter().map(|f| f.version.as_str()).max();
    Ok(match newest {
        Some(newest) if newest >= now.as_str() => crate::scaffold::next_free_second(newest, None).unwrap_or(now),
        _ => now,
    })
}

/// Renumbers the migration `given` of `target` to `to` (or now).
pub fn run(
    ws: &Workspace,
    target: &Target,
    given: &str,
    to: Option<&str>,
    conn: &ConnectionArgs,
    verbose: bool,
) -> Result<()> {
    crate::scaffold::require_runtime_name(target)?;
    let dir = target.migrations_dir();
    let (files, _) = mongo_migrations_codegen::scan_all(&dir).map_err(crate::scaffold::codegen)?;
    let file = chosen(&files, given)?;
    let generated =
        mongo_migrations_codegen::schema::lineage::generated_modules(&dir).map_err(crate::scaffold::codegen)?;
    if generated.contains(&file.module) {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "{} was written by `diff`, and the schema snapshot lists it by name",
                display(&file.path)
            ),
        )
        .hint("after a merge, `cargo mongo-migrate diff <name> --after-merge` writes the other side's changes again")
        .into());
    }
    let version = new_version(&files, to, crate::scaffold::now_version())?;
    if crate::check::uri_given(conn, target) {
        refuse_if_recorded(ws, target, conn, &file.version, verbose)?;
    } else {
        eprintln!(
            "warning: not checked against a database (no URI): renumber only a migration applied nowhere, or it runs again under its new version"
        );
    }
    let to_path: PathBuf = dir.join(format!("{}.rs", names::module_name(&version, &file.name)));
    std::fs::rename(&file.path, &to_path).map_err(|e| {
        Failure::new(
            Code::Failed,
            format!("cannot rename {} to {}: {e}", display(&file.path), display(&to_path)),
        )
    })?;
    mongo_migrations::outln!(
        "Renamed {} to {} (version {} is now {version})",
        display(&file.path),
        display(&to_path),
        file.version
    );
    if target.config.build_script {
        return Ok(());
    }
    match mongo_migrations_codegen::generate_module(&dir) {
        Ok(_) => {
            mongo_migrations::outln!("Updated {}", display(&dir.join(REGISTRY_FILE)));
            Ok(())
        }
        // Another clash or a file that does not parse: the rename stands
        // (it was asked for), the registry waits for the rest to be fixed.
        Err(e) => Err(crate::scaffold::codegen(e)),
    }
}

/// Refuses when the database `target` connects to has a record of `version`.
fn refuse_if_recorded(
    ws: &Workspace,
    target: &Target,
    conn: &ConnectionArgs,
    version: &str,
    verbose: bool,
) -> Result<()> {
    let request = Request {
        connection: crate::check::connection(target, conn)?,
        command: mongo_migrations::harness::Command::Status,
        state: None,
    };
    let cache = crate::harness::registry_cache(ws, target);
    let database = request.connection.database.clone().unwrap_or_default();
    let Answer::Status(report) = crate::local::run(target, &cache, &request, verbose)? else {
        anyhow::bail!("the runtime answered `status` with something else");
    };
    let recorded = report
        .migrations
        .iter()
        .find(|m| m.version.to_string() == version && m.state != State::Pending);
    if let Some(m) = recorded {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "{version} {} is {} in the database `{database}`: renumbered, it would run again under its new version",
                m.name,
                format!("{:?}", m.state).to_lowercase()
            ),
        )
        .hint("renumber the other migration of the clash, the one applied nowhere; or give this one's changes a new migration")
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: &str, name: &str) -> MigrationFile {
        let module = names::module_name(version, name);
        MigrationFile {
            path: PathBuf::from(format!("src/migrations/{module}.rs")),
            module,
            version: version.into(),
            name: name.into(),
            ..MigrationFile::default()
        }
    }

    #[test]
    fn the_new_version_is_now_unless_a_file_is_dated_later() {
        let files = [file("20260301000000", "a"), file("20260302000000", "b")];
        let now = "20261207050000".to_string();
        assert_eq!(new_version(&files, None, now.clone()).unwrap(), now);
        let ahead = [file("20270101000000", "future")];
        assert_eq!(new_version(&ahead, None, now.clone()).unwrap(), "20270101000001");
        assert_eq!(
            new_version(&files, Some("20260401000000"), now.clone()).unwrap(),
            "20260401000000"
        );
        let taken = new_version(&files, Some("20260302000000"), now).unwrap_err();
        assert!(taken.to_string().contains("is taken by"), "{taken}");
    }

    #[test]
    fn a_clash_is_resolved_by_the_file_not_the_version() {
        let files = [file("20260301000000", "ours"), file("20260301000000", "theirs")];
        let both = chosen(&files, "20260301000000").unwrap_err();
        assert!(
            both.to_string().starts_with("2 migrations have version 20260301000000"),
            "{both}"
        );
        let ours = chosen(&files, "src/migrations/m20260301_000000_ours.rs").unwrap();
        assert_eq!(ours.name, "ours");
        assert_eq!(chosen(&files, "m20260301_000000_theirs").unwrap().name, "theirs");
        assert!(chosen(&files, "20260309000000").is_err());
    }
}
