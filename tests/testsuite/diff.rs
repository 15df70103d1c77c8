//! `diff` without a server: what it refuses before it builds anything (and
//! leaves the tree as it was), a crate's first migrations, and the code it
//! writes for every kind of operation, as a golden module the schema
//! fixture compiles.

use crate::common::*;
use mongo_migrations_codegen::schema::{diff, render_module, Half, Snapshot};
use serde_json::json;
use snapbox::str;

fn listing(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), read(&p)))
        .collect();
    files.sort();
    files
}

#[test]
fn a_package_that_declares_no_collections_is_told_how_to() {
    let app = fixture("single");
    let before = listing(&app.path().join("src/migrations"));
    cli()
        .current_dir(app.path())
        .args(["diff", "add-users"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: package `single-app` declares no collections
hint: list them in one place, e.g. src/schema.rs: `mongo_migrations::collections![crate::User];`, and name it in Cargo.toml: [package.metadata.mongo-migrate] schema-fn = "schema::collections"

"#]]);
    assert_eq!(listing(&app.path().join("src/migrations")), before);
}

#[test]
fn a_conflicted_snapshot_or_a_bad_name_is_refused_before_the_build() {
    let app = fixture("schema");
    let migrations = app.path().join("src/migrations");
    std::fs::write(
        migrations.join("schema.snapshot.json"),
        "<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> other\n",
    )
    .unwrap();
    let before = listing(&migrations);
    cli()
        .current_dir(app.path())
        .args(["diff", "add-plan"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: src/migrations/schema.snapshot.json: it has merge conflict markers
hint: run `cargo mongo-migrate diff <name> --after-merge`: it keeps the snapshot and migrations of the branch merged into and writes the other side's schema changes again, as one new migration

"#]]);
    cli().current_dir(app.path()).args(["diff", "9-lives"]).assert().code(2);
    assert_eq!(listing(&migrations), before);
}

/// A crate's first migrations can come from `diff`: with no migrations
/// directory yet, it writes the registry, then the modules and the snapshot.
#[test]
fn the_first_migrations_of_a_crate_can_come_from_diff() {
    let app = fixture("schema");
    let migrations = app.path().join("src/migrations");
    std::fs::remove_dir_all(&migrations).unwrap();
    let out = cli()
        .current_dir(app.path())
        .args(["diff", "create-users", "--version", "20260401000000"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.starts_with("Created src/migrations/mod.rs\n"), "{stdout}");
    let names: Vec<String> = listing(&migrations).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "m20260401_000000_create_users.rs",
            "m20260401_000010_create_users_post_deploy.rs",
            "mod.rs",
            "schema.snapshot.json"
        ]
    );
    assert!(read(migrations.join("mod.rs")).contains("pub mod m20260401_000000_create_users;"));
}

/// A library that does not declare its migrations module is refused before
/// the first registry is written: the tree stays as it was.
#[test]
fn a_first_diff_of_a_library_without_the_module_writes_nothing() {
    let app = fixture("schema");
    let migrations = app.path().join("src/migrations");
    std::fs::remove_dir_all(&migrations).unwrap();
    let lib = app.path().join("src/lib.rs");
    std::fs::write(&lib, read(&lib).replace("pub mod migrations;\n", "")).unwrap();
    cli()
        .current_dir(app.path())
        .args(["diff", "create-users"])
        .assert()
        .code(2)
        .stdout_eq(str![""])
        .stderr_eq(str![[r#"
error: `schema-app` does not declare `migrations` in src/lib.rs, so `migrations::registry` cannot be called
hint: add `pub mod migrations;` to src/lib.rs

"#]]);
    assert!(!migrations.exists());
}

/// The same for the module of the package's `schema-fn`: `diff` and `status`
/// stop before the build (which would fail inside generated code) and name
/// the line to add.
#[test]
fn a_library_without_the_schema_module_is_told_so_before_the_build() {
    let app = fixture("schema");
    let lib = app.path().join("src/lib.rs");
    std::fs::write(&lib, read(&lib).replace("pub mod schema;\n", "")).unwrap();
    let before = listing(&app.path().join("src/migrations"));
    for args in [&["diff", "create-users"][..], &["status", "--database", "x"][..]] {
        cli()
            .current_dir(app.path())
            .env("MONGODB_URI", "mongodb://127.0.0.1:9/")
            .args(args)
            .assert()
            .code(2)
            .stdout_eq(str![""])
            .stderr_eq(str![[r#"
error: `schema-app` does not declare `schema` in src/lib.rs, so `schema::collections` cannot be called
hint: add `pub mod schema;` to src/lib.rs

"#]]);
    }
    assert_eq!(listing(&app.path().join("src/migrations")), before);
}

/// Every kind of operation, from one snapshot to the next, rendered as the
/// two modules `diff` would write. The golden files are modules of the
/// schema fixture's library, so every build of the fixture (the end-to-end
/// test) type-checks them against the runtime.
#[test]
fn every_operation_renders_as_code_that_the_fixture_compiles() {
    let old = Snapshot::from_declared(vec![
        json!({ "name": "users", "validator": { "bsonType": "object" }, "validationLevel": "moderate",
                "indexes": [
                    { "name": "email_1", "keys": [["email", 1]] },
                    { "name": "legacy_1", "keys": [["legacy", 1]] },
                    { "name": "seen_-1", "keys": [["seen", -1]], "hidden": true },
                ] }),
        json!({ "name": "audit", "validator": { "bsonType": "object", "required": ["at"] },
                "validationLevel": "strict", "indexes": [] }),
    ])
    .unwrap();
    let new = Snapshot::from_declared(vec![
        json!({ "name": "users", "validator": { "bsonType": "object", "required": ["email"] },
                "validationLevel": "strict",
                "indexes": [
                    { "name": "email_1", "keys": [["email", 1]], "unique": true },
                    { "name": "seen_-1", "keys": [["seen", -1]] },
                    { "name": "loc_2dsphere", "keys": [["loc", "2dsphere"]] },
                    { "name": "by_area", "keys": [["area", 1], ["loc", "2dsphere"]] },
                ] }),
        json!({ "name": "audit", "indexes": [] }),
        json!({ "name": "events", "indexes": [
            { "name": "at_1", "keys": [["at", 1]], "expireAfterSeconds": 86400, "sparse": true },
            { "name": "by_title", "keys": [["title", 1]], "collation": { "locale": "fr", "strength": 2 },
              "partialFilter": { "at": { "$gt": { "$date": "2026-01-01T00:00:00Z" } } } },
        ] }),
    ])
    .unwrap();
    let changes = diff(&old, &new);
    let dir = root().join("fixtures/schema/src/every_operation");
    golden(
        &render_module(&changes.pre_deploy, Half::PreDeploy, "diff every-operation"),
        &dir.join("pre_deploy.rs"),
    );
    golden(
        &render_module(&changes.post_deploy, Half::PostDeploy, "diff every-operation"),
        &dir.join("post_deploy.rs"),
    );
    // Nothing undeclared is dropped: `audit` keeps its collection, `events`
    // is new, and the only drop is of the index `users` no longer declares.
    assert!(changes.notes.is_empty(), "{:?}", changes.notes);
}
