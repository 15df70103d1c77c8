//! Which generated migrations a snapshot stands for, so that two branches
//! that both ran `diff` cannot merge silently (as Atlas's `atlas.sum` does
//! for its migration directory).
//!
//! The snapshot lists every module `diff` wrote, oldest first, and a sum of
//! that list and its collections. Two branches that each ran `diff` from
//! the same snapshot both append to the list and both change the sum, so
//! git always stops on a conflict there; whatever the merge then keeps, the
//! sum no longer matches the content, or a generated module in the tree is
//! missing from the list. Pure but for [`generated_modules`].

use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::schema::snapshot::{CollectionSpec, Snapshot};
use crate::{Error, Result};

/// The first line of every module `diff` writes (the module's doc comment).
pub const GENERATED_MARK: &str = "//! Schema changes of `cargo mongo-migrate diff ";

/// Whether `source` is a module `diff` wrote, by its first line.
pub fn is_generated(source: &str) -> bool {
    source
        .lines()
        .next()
        .is_some_and(|line| line.starts_with(GENERATED_MARK))
}

/// The sum of a snapshot's list of generated modules and collections, as
/// the snapshot records it: `sha256:` and the hex digest of the two as
/// compact JSON.
pub fn sum(migrations: &[String], collections: &[CollectionSpec]) -> String {
    let text = serde_json::to_string(&(migrations, collections)).expect("a snapshot serializes");
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Why a snapshot is not one `diff` wrote for the tree it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Its content does not match its sum: merged or edited by hand.
    Edited,
    /// It has no sum (a format-2 snapshot always has one).
    Unsealed,
    /// Modules `diff` wrote that it does not list, by file stem: another
    /// branch's `diff`, merged in.
    Unlisted(Vec<String>),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Edited => f.write_str(
                "it is not the snapshot `diff` wrote (its sum does not match its content): two branches' schema changes were merged into it, or it was edited",
            ),
            Broken::Unsealed => f.write_str("it has no `sum`: it was not written by `diff`"),
            Broken::Unlisted(stems) => write!(
                f,
                "{} written by `diff` {} not in it ({}): another branch's schema changes were merged in",
                if stems.len() == 1 { "a migration" } else { "migrations" },
                if stems.len() == 1 { "is" } else { "are" },
                stems.join(", ")
            ),
        }
    }
}

/// What is wrong with `snapshot`, given the stems of the modules `diff`
/// wrote that are in the tree (see [`generated_modules`]). A snapshot from
/// before lineage (format 1) has nothing to check. A module it lists that
/// is gone (a squash replaced it) is not an error.
pub fn verify(snapshot: &Snapshot, generated: &[String]) -> Vec<Broken> {
    if !snapshot.has_lineage() {
        return Vec::new();
    }
    let mut broken = Vec::new();
    match &snapshot.sum {
        None => broken.push(Broken::Unsealed),
        Some(recorded) if *recorded != sum(&snapshot.migrations, &snapshot.collections) => broken.push(Broken::Edited),
        Some(_) => {}
    }
    let unlisted: Vec<String> = generated
        .iter()
        .filter(|stem| !snapshot.migrations.contains(stem))
        .cloned()
        .collect();
    if !unlisted.is_empty() {
        broken.push(Broken::Unlisted(unlisted));
    }
    broken
}

/// The file stems of the modules in `dir` that `diff` wrote (first line
/// [`GENERATED_MARK`]), sorted.
pub fn generated_modules(dir: &Path) -> Result<Vec<String>> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut stems = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        let (Some(stem), Some("rs")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        if !stem.starts_with('m') || stem == "mod" {
            continue;
        }
        let source = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if is_generated(&source) {
            stems.push(stem.to_string());
        }
    }
    stems.sort();
    Ok(stems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(migrations: &[&str], fields: &[&str]) -> Snapshot {
        let declared = vec![json!({ "name": "users", "validator": { "required": fields }, "indexes": [] })];
        Snapshot::from_declared(declared)
            .unwrap()
            .sealed(migrations.iter().map(|m| m.to_string()).collect())
    }

    fn stems(list: &[&str]) -> Vec<String> {
        list.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn a_sealed_snapshot_with_its_modules_is_whole() {
        let s = snapshot(&["m1_a", "m2_a_post_deploy"], &["email"]);
        assert_eq!(verify(&s, &stems(&["m1_a", "m2_a_post_deploy"])), []);
        // A squash removed a generated module: still whole.
        assert_eq!(verify(&s, &stems(&["m2_a_post_deploy"])), []);
        assert!(s.sum.as_deref().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn a_merge_that_kept_one_side_s_list_and_both_sides_fields_is_found() {
        let ours = snapshot(&["m1_a"], &["email", "plan"]);
        let theirs = snapshot(&["m2_b"], &["email", "age"]);
        // git merged the collections (one field at each end) and the user
        // took our header.
        let mut merged = ours.clone();
        merged.collections = snapshot(&[], &["email", "plan", "age"]).collections;
        assert_eq!(
            verify(&merged, &stems(&["m1_a", "m2_b"])),
            [Broken::Edited, Broken::Unlisted(stems(&["m2_b"]))]
        );
        // Theirs taken whole: the sum holds, our module is unlisted.
        assert_eq!(
            verify(&theirs, &stems(&["m1_a", "m2_b"])),
            [Broken::Unlisted(stems(&["m1_a"]))]
        );
        // Both lists kept by hand, no new sum.
        let mut both = merged.clone();
        both.migrations = stems(&["m1_a", "m2_b"]);
        assert_eq!(verify(&both, &stems(&["m1_a", "m2_b"])), [Broken::Edited]);
    }

    #[test]
    fn a_snapshot_from_before_lineage_is_not_checked_and_one_without_a_sum_is() {
        let mut old = snapshot(&[], &["email"]);
        old.format = 1;
        old.sum = None;
        assert_eq!(verify(&old, &stems(&["m1_a"])), []);
        let mut unsealed = snapshot(&["m1_a"], &["email"]);
        unsealed.sum = None;
        assert_eq!(verify(&unsealed, &stems(&["m1_a"])), [Broken::Unsealed]);
    }

    #[test]
    fn the_messages_say_what_happened() {
        assert_eq!(
            Broken::Unlisted(stems(&["m2_b", "m3_b_post_deploy"])).to_string(),
            "migrations written by `diff` are not in it (m2_b, m3_b_post_deploy): another branch's schema changes were merged in"
        );
        assert!(Broken::Edited.to_string().contains("sum does not match"));
    }

    #[test]
    fn only_modules_that_diff_wrote_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "m20260101_000000_a.rs",
            &format!("{GENERATED_MARK}a`, before the deploy:\n"),
        );
        write("m20260102_000000_fix.rs", "//! A data fix.\n");
        write("mod.rs", &format!("{GENERATED_MARK}\n"));
        write("schema.snapshot.json", "{}");
        assert_eq!(generated_modules(dir.path()).unwrap(), ["m20260101_000000_a"]);
        assert_eq!(
            generated_modules(&dir.path().join("none")).unwrap(),
            Vec::<String>::new()
        );
    }
}
