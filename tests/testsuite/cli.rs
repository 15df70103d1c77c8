//! The CLI without a server: help, scaffolding, registry generation and bad input.

use crate::common::*;
use snapbox::{file, str};

#[test]
fn help() {
    cli()
        .arg("--help")
        .assert()
        .success()
        .stdout_eq(file!["snapshots/help.txt"]);
    for (command, snapshot) in [
        ("new", file!["snapshots/help-new.txt"]),
        ("up", file!["snapshots/help-up.txt"]),
        ("down", file!["snapshots/help-down.txt"]),
        ("status", file!["snapshots/help-status.txt"]),
        ("history", file!["snapshots/help-history.txt"]),
        ("registry", file!["snapshots/help-registry.txt"]),
        ("lock-status", file!["snapshots/help-lock-status.txt"]),
        ("force-unlock", file!["snapshots/help-force-unlock.txt"]),
        ("resolve", file!["snapshots/help-resolve.txt"]),
        ("forget", file!["snapshots/help-forget.txt"]),
        ("baseline", file!["snapshots/help-baseline.txt"]),
        ("squash", file!["snapshots/help-squash.txt"]),
        ("check", file!["snapshots/help-check.txt"]),
        ("bundle", file!["snapshots/help-bundle.txt"]),
        ("renumber", file!["snapshots/help-renumber.txt"]),
        ("plan", file!["snapshots/help-plan.txt"]),
        ("config", file!["snapshots/help-config.txt"]),
    ] {
        cli().args([command, "--help"]).assert().success().stdout_eq(snapshot);
    }
}

#[test]
fn new_scaffolds_a_migration_and_regenerates_the_registry() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "Add-Email index", "--version", "20260103000000"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Created src/migrations/m20260103_000000_add_email_index.rs
Updated src/migrations/mod.rs

"#]]);
    let created = read(dir.join("m20260103_000000_add_email_index.rs"));
    snapbox::assert_data_eq!(created, file!["../../fixtures/golden/new_migration.rs"].raw());
    snapbox::assert_data_eq!(
        read(dir.join("mod.rs")),
        file!["../../fixtures/golden/single_after_new.rs"].raw()
    );
}

/// `new --before V`: the latest free second before V, in V's phase; no
/// room, or no such V, is refused with nothing written.
#[test]
fn new_before_places_a_migration_just_before_another_in_its_phase() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    // Make the second migration post-deploy, as `diff` writes an enforcement.
    let seed = dir.join("m20260102_000000_seed_admin.rs");
    let text = read(&seed).replace(
        "use mongo_migrations::prelude::*;\n",
        "use mongo_migrations::prelude::*;\n\npub const PHASE: Phase = Phase::PostDeploy;\n",
    );
    std::fs::write(&seed, text).unwrap();
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "fix-users", "--before", "20260102000000"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Created src/migrations/m20260101_235959_fix_users.rs
Updated src/migrations/mod.rs
note: it is post-deploy, as m20260102_000000_seed_admin: `up --phase post` runs it first

"#]]);
    let fix = read(dir.join("m20260101_235959_fix_users.rs"));
    assert!(fix.contains("pub const PHASE: Phase = Phase::PostDeploy;"), "{fix}");
    assert!(fix.contains("this data fix is not written yet"), "{fix}");
    // Before the first migration: the second before it.
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "first", "--before", "20260101000000"])
        .assert()
        .success();
    assert!(dir.join("m20251231_235959_first.rs").exists());
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "tight", "--version", "20260101000001"])
        .assert()
        .success();
    let before = listing(&dir);
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "more", "--before", "20260101000001"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no free second between 20260101000000 and 20260101000001
...
"#]]);
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "more", "--before", "20260109000000"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no migration has version 20260109000000
...
"#]]);
    assert_eq!(listing(&dir), before);
}

/// A package that renames the runtime (`mm = { package = "mongo-migrations" }`)
/// is refused before anything is written or built: the registry and the
/// migrations name it `mongo_migrations`, so its crate could not compile.
#[test]
fn a_renamed_runtime_is_refused_before_anything_is_written() {
    let crate_dir = fixture("single");
    let manifest = crate_dir.path().join("Cargo.toml");
    let text = read(&manifest);
    let renamed = text.replace(
        "\n[dev-dependencies]\nmongo-migrations = {",
        "\n[dev-dependencies]\nmm = { package = \"mongo-migrations\",",
    );
    let renamed = renamed.replacen("\nmongo-migrations = {", "\nmm = { package = \"mongo-migrations\",", 1);
    assert_ne!(renamed, text);
    std::fs::write(&manifest, renamed.replace("mongo-migrations/cli", "mm/cli")).unwrap();
    let dir = crate_dir.path().join("src/migrations");
    let before = listing(&dir);
    for args in [
        &["new", "add-email"][..],
        &["registry"][..],
        &["status", "--database", "x"][..],
    ] {
        cli()
            .current_dir(crate_dir.path())
            .env("MONGODB_URI", "mongodb://127.0.0.1:9/")
            .args(args)
            .assert()
            .code(2)
            .stdout_eq(str![""])
            .stderr_eq(str![[r#"
error: `single-app` depends on mongo-migrations as `mm`, and the generated registry and migrations name it `mongo_migrations`
hint: depend on it under its own name in Cargo.toml (`mongo-migrations = { .. }`, without `package = ..`)

"#]]);
    }
    assert_eq!(listing(&dir), before);
}

/// A package without a library: `new` writes nothing (`up` would refuse
/// it) and `check` fails, both with the fix.
#[test]
fn a_package_without_a_library_gets_no_migration_and_fails_check() {
    let crate_dir = fixture("single");
    std::fs::remove_file(crate_dir.path().join("src/lib.rs")).unwrap();
    std::fs::write(crate_dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let dir = crate_dir.path().join("src/migrations");
    let before = listing(&dir);
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "add-email"])
        .assert()
        .code(2)
        .stdout_eq(str![""])
        .stderr_eq(str![[r#"
error: package `single-app` has no library target
hint: migrations must live in a library: add src/lib.rs with `pub mod migrations;`

"#]]);
    assert_eq!(listing(&dir), before);
    cli()
        .current_dir(crate_dir.path())
        .args(["check", "--offline"])
        .assert()
        .code(2)
        .stdout_eq(str![[r#"
single-app: error: package `single-app` has no library target, so `up` cannot run its migrations
  hint: migrations must live in a library: add src/lib.rs with `pub mod migrations;`
single-app: checked files only: 1 error, 0 need attention, 0 pending, 0 warnings

"#]]);
}

#[test]
fn new_rejects_bad_names_and_taken_versions_and_writes_nothing() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    let before = listing(&dir);
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "drop;users"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: invalid migration name `drop;users`: after normalising it must be a snake_case identifier of letters, digits and `_`, starting with a letter
hint: use letters, digits, `-` or `_`, e.g. add-email-index

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "again", "--version", "20260101000000"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: version 20260101000000 is taken by src/migrations/m20260101_000000_create_users.rs
hint: wait a second and run `new` or `diff` again, or pass --version to `new`

"#]]);
    assert_eq!(before, listing(&dir));
}

fn listing(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), read(&p)))
        .collect();
    files.sort();
    files
}

#[test]
fn committed_registries_match_the_generator() {
    // The fixtures' mod.rs files are the golden files.
    for dir in ["single", "workspace", "workspace/billing", "virtual/api", "demo"] {
        let dir = root().join("fixtures").join(dir).join("src/migrations");
        let files = mongo_migrations_codegen::scan(&dir).unwrap();
        let rendered = mongo_migrations_codegen::render(&files, mongo_migrations_codegen::Layout::Module);
        golden(&rendered, &dir.join("mod.rs"));
    }
}

/// Shared code beside the migrations: a file or a folder whose name does
/// not start with `m` and a digit is a helper module the registry declares;
/// one that defines `up` is a misnamed migration and is refused.
#[test]
fn helper_modules_are_declared_and_a_misnamed_migration_is_refused() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    std::fs::write(dir.join("common.rs"), "pub fn users() -> &'static str { \"users\" }\n").unwrap();
    std::fs::create_dir(dir.join("seeds")).unwrap();
    std::fs::write(dir.join("seeds/mod.rs"), "pub const ADMIN: &str = \"admin\";\n").unwrap();
    std::fs::write(dir.join("README.md"), "notes\n").unwrap();
    cli()
        .current_dir(crate_dir.path())
        .arg("registry")
        .assert()
        .success()
        .stdout_eq(str![[r#"
Updated src/migrations/mod.rs (2 migrations)

"#]]);
    let registry = read(dir.join("mod.rs"));
    assert!(
        registry.contains("pub mod common;\npub mod seeds;\npub mod m20260101_000000_create_users;"),
        "{registry}"
    );
    offline_check(crate_dir.path()).assert().success();

    std::fs::write(
        dir.join("add_index.rs"),
        "pub async fn up(ctx: &mut C) -> R { Ok(()) }\n",
    )
    .unwrap();
    let before = read(dir.join("mod.rs"));
    cli()
        .current_dir(crate_dir.path())
        .arg("registry")
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: [..]add_index.rs: not a migration file name: it defines `up` like a migration, but as `add_index` it is a helper module and would never run; expected m<YYYYMMDD_HHMMSS>_<snake_name>.rs
hint: rename the file, or move it out of the migrations directory

"#]]);
    assert_eq!(before, read(dir.join("mod.rs")));
    offline_check(crate_dir.path()).assert().code(2);
}

#[test]
fn broken_migration_files_are_named_and_the_registry_is_left_unchanged() {
    let cases = [
        (
            "m2026_broken.rs",
            "pub async fn up() {}",
            "m2026_broken.rs: not a migration file name",
        ),
        (
            "m20260101_000000_twin.rs",
            "pub async fn up(ctx: &mut C) -> R { Ok(()) }",
            "duplicate migration version 20260101000000",
        ),
        (
            "m20260105_000000_syntax.rs",
            "pub async fn up(ctx: &mut C) -> R {\n    let x = ;\n}\n",
            "m20260105_000000_syntax.rs:2:",
        ),
        (
            "m20260106_000000_no_up.rs",
            "pub async fn down(ctx: &mut C) -> R { Ok(()) }",
            "no `pub async fn up",
        ),
        (
            "m20260107_000000_sync_up.rs",
            "pub fn up(ctx: &mut C) -> R { Ok(()) }",
            "`up` must be an `async fn`",
        ),
    ];
    for (file, content, expected) in cases {
        let crate_dir = fixture("single");
        let dir = crate_dir.path().join("src/migrations");
        std::fs::write(dir.join(file), content).unwrap();
        let before = read(dir.join("mod.rs"));
        let output = cli()
            .current_dir(crate_dir.path())
            .arg("registry")
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{file}: {stderr}");
        assert_eq!(before, read(dir.join("mod.rs")), "{file}: the registry changed");
    }
}

#[test]
fn a_virtual_workspace_needs_a_package_and_lists_candidates() {
    let ws = fixture("virtual");
    cli()
        .current_dir(ws.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: this is a virtual workspace: choose a package
hint: pass -p <package> or --workspace; candidates: api

"#]]);
    cli()
        .current_dir(ws.path())
        .args(["-p", "nope", "status"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: package `nope` is not a member of this workspace
hint: members: api, worker

"#]]);
}

/// Cargo's way of choosing a member: the nearest `Cargo.toml` above the
/// current directory, or `--manifest-path`.
#[test]
fn a_virtual_workspace_member_is_chosen_by_its_folder_or_its_manifest() {
    let ws = fixture("virtual");
    cli()
        .current_dir(ws.path().join("api/src"))
        .arg("registry")
        .assert()
        .success()
        .stdout_eq(str![[r#"
Unchanged migrations/mod.rs (1 migration)

"#]]);
    cli()
        .current_dir(ws.path())
        .args(["--manifest-path", "api/Cargo.toml", "registry"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Unchanged api/src/migrations/mod.rs (1 migration)

"#]]);
    cli()
        .current_dir(ws.path())
        .args(["--manifest-path", "worker/Cargo.toml", "registry"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: worker has no migrations directory worker/src/migrations
hint: create the first migration with `cargo mongo-migrate new <name>`

"#]]);
}

#[test]
fn workspace_members_get_their_own_registry() {
    let ws = fixture("workspace");
    cli()
        .current_dir(ws.path())
        .args(["-p", "ws-billing", "new", "add-totals", "--version", "20260116000000"])
        .assert()
        .success();
    assert!(ws
        .path()
        .join("billing/src/migrations/m20260116_000000_add_totals.rs")
        .is_file());
    assert!(read(ws.path().join("billing/src/migrations/mod.rs")).contains("m20260116_000000_add_totals"));
    assert!(!read(ws.path().join("src/migrations/mod.rs")).contains("add_totals"));
    cli()
        .current_dir(ws.path())
        .args(["--workspace", "registry"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Unchanged billing/src/migrations/mod.rs (2 migrations)
Unchanged src/migrations/mod.rs (1 migration)

"#]]);
}

#[test]
fn configuration_errors_exit_2_and_name_every_place_to_set_it_before_anything_is_built() {
    let crate_dir = fixture("single");
    cli()
        .current_dir(crate_dir.path())
        .env_remove("MONGODB_URI")
        .arg("status")
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no MongoDB URI for `single-app`
hint: pass --uri, or set MONGODB_URI (its name is `uri-env` under [package.metadata.mongo-migrate])

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .env_remove("MONGODB_DATABASE")
        .args(["status", "--uri", "mongodb://127.0.0.1:9"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no database name for `single-app`
hint: pass --database, set MONGODB_DATABASE, set `database` under [package.metadata.mongo-migrate], or put it in the URI path (mongodb://host/mydb)

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .args(["status", "--uri", "not a uri"])
        .assert()
        .code(5)
        .stderr_eq(str![[r#"
error: invalid MongoDB URI for `single-app`: connection string contains no scheme
hint: check --uri / MONGODB_URI; expected e.g. mongodb://127.0.0.1:27017/mydb

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .args(["new", "foo", "--version", "20261399000000"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: invalid version `20261399000000`: expected 14 digits YYYYMMDDHHMMSS forming a real UTC date and time
hint: e.g. --version 20261231235959, or leave it out to use the current UTC time

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .args(["history", "--limit", "0", "--uri", "mongodb://127.0.0.1:9/x"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: invalid value '0' for '--limit <N>': 0 is not in 1..18446744073709551615

For more information, try '--help'.

"#]]);
}

#[test]
fn forget_needs_confirmation_and_versions() {
    let crate_dir = fixture("single");
    cli()
        .current_dir(crate_dir.path())
        .args(["forget", "20260109000000", "--uri", "mongodb://127.0.0.1:9/x"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: forget needs confirmation
hint: check `status` for the unknown versions, then pass --yes

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .args(["forget", "--yes"])
        .assert()
        .code(2);
}

#[test]
fn a_library_without_the_migrations_module_is_refused_before_the_build() {
    let crate_dir = fixture("single");
    let lib = crate_dir.path().join("src/lib.rs");
    let source = read(&lib);
    std::fs::write(&lib, source.replace("pub mod migrations;", "")).unwrap();
    for command in ["up", "status", "history", "lock-status"] {
        cli()
            .current_dir(crate_dir.path())
            .args([command, "--uri", "mongodb://127.0.0.1:9/x"])
            .assert()
            .code(2)
            .stderr_eq(str![[r#"
error: `single-app` does not declare `migrations` in src/lib.rs, so `migrations::registry` cannot be called
hint: add `pub mod migrations;` to src/lib.rs

"#]]);
    }
}

#[test]
fn two_members_sharing_a_tracking_collection_are_refused_before_anything_runs() {
    let ws = fixture("workspace");
    let billing = ws.path().join("billing/Cargo.toml");
    let manifest = read(&billing);
    let own_collections = manifest.find("[package.metadata.mongo-migrate]").unwrap();
    std::fs::write(&billing, &manifest[..own_collections]).unwrap();
    cli()
        .current_dir(ws.path())
        .env("MONGODB_URI", "mongodb://127.0.0.1:9/shop")
        .args(["--workspace", "up"])
        .assert()
        .code(2)
        .stdout_eq(str![""])
        .stderr_eq(str![[r#"
error: `ws-billing` and `ws-app` would track their migrations in the same collection `migrations`
hint: give one of them its own `tracking-collection` and `lock-collection` under [package.metadata.mongo-migrate]

"#]]);
}

/// `check` in `dir` without a URI: files only.
fn offline_check(dir: &std::path::Path) -> snapbox::cmd::Command {
    cli().current_dir(dir).env_remove("MONGODB_URI").arg("check")
}

/// `check` without a URI: a clean crate passes.
#[test]
fn check_offline_passes_a_clean_crate() {
    let crate_dir = fixture("single");
    offline_check(crate_dir.path()).assert().success().stdout_eq(str![[r#"
single-app: checked files only: 0 errors, 0 need attention, 0 pending, 0 warnings

"#]]);
}

/// Every offline problem at once, with file and line, and exit 2; a
/// warning alone does not fail.
#[test]
fn check_offline_reports_every_problem_with_its_line() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    // Added without regenerating the registry; a drop in a transaction; an unbatched update.
    std::fs::write(
        dir.join("m20260103_000000_drop_legacy.rs"),
        "pub const TRANSACTIONAL: bool = true;\n\npub async fn up(ctx: &mut mongo_migrations::MigrationContext) -> mongo_migrations::MigrationResult {\n    let (db, _) = ctx.transaction()?;\n    db.collection::<mongo_migrations::bson::Document>(\"legacy\").drop().await?;\n    Ok(())\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("m20260104_000000_backfill.rs"),
        "pub async fn up(ctx: &mut mongo_migrations::MigrationContext) -> mongo_migrations::MigrationResult {\n    let users = ctx.db()?.collection::<mongo_migrations::bson::Document>(\"users\");\n    users.update_many(mongo_migrations::bson::doc! {}, mongo_migrations::bson::doc! { \"$set\": { \"x\": 1 } }).await?;\n    Ok(())\n}\n",
    )
    .unwrap();
    let before = listing(&dir);
    offline_check(crate_dir.path())
        .assert()
        .code(2)
        .stdout_eq(str![[r#"
single-app: error: src/migrations/mod.rs does not match the migration files
  hint: run `cargo mongo-migrate registry` and commit it with the migrations (it holds each migration's checksum, so every edit of one changes it; `up` and a build regenerate it too); after a merge conflict in it, take either side first
single-app: error: src/migrations/m20260103_000000_drop_legacy.rs:5:65: `drop` in a transactional migration: MongoDB refuses index builds on existing collections and drops inside a transaction; move it to a migration with `TRANSACTIONAL = false`
  hint: put index builds and drops in a migration of their own with `pub const TRANSACTIONAL: bool = false;`
single-app: warning: src/migrations/m20260104_000000_backfill.rs:3:11: `update_many` runs unbatched over every matching document; on a large collection use `ctx.batches(..)`, or say it is small with a `// mongo-migrate: unbatched` comment
  hint: walk a large collection with `ctx.batches(..).update_each(..)`; a comment `// mongo-migrate: unbatched` silences this for a small one
single-app: checked files only: 2 errors, 0 need attention, 0 pending, 1 warning

"#]])
        .stderr_eq(str![""]);
    assert_eq!(before, listing(&dir), "check changed the tree");

    // JSON for CI tools.
    let out = offline_check(crate_dir.path()).arg("--json").assert().code(2);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let levels: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "error", "warning"]);
    assert_eq!(json["online"], false);
    // Every finding carries its hint, lints too.
    for f in json["findings"].as_array().unwrap() {
        assert!(f["hint"].as_str().is_some_and(|h| !h.is_empty()), "{f}");
    }

    // Fixed but for the warning: passes.
    std::fs::remove_file(dir.join("m20260103_000000_drop_legacy.rs")).unwrap();
    cli().current_dir(crate_dir.path()).arg("registry").assert().success();
    offline_check(crate_dir.path()).assert().success();
}

/// Two branches each added a migration: the registry conflicts in git,
/// and files may share a version.
#[test]
fn check_names_merge_conflicts_and_duplicate_versions() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    let registry = read(dir.join("mod.rs"));
    std::fs::write(
        dir.join("mod.rs"),
        format!("<<<<<<< HEAD\npub mod a;\n=======\npub mod b;\n>>>>>>> branch\n{registry}"),
    )
    .unwrap();
    std::fs::copy(
        dir.join("m20260101_000000_create_users.rs"),
        dir.join("m20260101_000000_create_accounts.rs"),
    )
    .unwrap();
    let out = offline_check(crate_dir.path()).assert().code(2);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("error: duplicate migration version 20260101000000"),
        "{text}"
    );
    assert!(text.contains("give one file a new timestamp"), "{text}");
    std::fs::remove_file(dir.join("m20260101_000000_create_accounts.rs")).unwrap();
    offline_check(crate_dir.path()).assert().code(2).stdout_eq(str![[r#"
single-app: error: src/migrations/mod.rs has merge conflict markers
  hint: run `cargo mongo-migrate registry` and commit it with the migrations (it holds each migration's checksum, so every edit of one changes it; `up` and a build regenerate it too); after a merge conflict in it, take either side first
single-app: checked files only: 1 error, 0 need attention, 0 pending, 0 warnings

"#]]);
}

/// `git init`, then one commit of everything in `dir`.
fn git_commit_all(dir: &std::path::Path) {
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            "fixture",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
}

/// `squash` deletes only what git gives back: an untracked or modified file
/// is named and kept, unless `--force`.
#[test]
fn squash_refuses_to_delete_files_that_git_does_not_keep() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    let before = listing(&dir);
    cli()
        .current_dir(crate_dir.path())
        .args(["squash", "--to", "20260102000000"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: squash would delete files that git does not keep:
  src/migrations/m20260101_000000_create_users.rs (not in a git repository)
  src/migrations/m20260102_000000_seed_admin.rs (not in a git repository)
hint: commit them first, or pass --force to delete them anyway

"#]]);
    assert_eq!(before, listing(&dir));

    git_commit_all(crate_dir.path());
    let edited = dir.join("m20260102_000000_seed_admin.rs");
    std::fs::write(&edited, read(&edited) + "\n// edited\n").unwrap();
    let before = listing(&dir);
    cli()
        .current_dir(crate_dir.path())
        .args(["squash", "--to", "20260102000000"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: squash would delete files that git does not keep:
  src/migrations/m20260102_000000_seed_admin.rs (modified since the last commit)
hint: commit them first, or pass --force to delete them anyway

"#]]);
    assert_eq!(before, listing(&dir));

    cli()
        .current_dir(crate_dir.path())
        .args(["squash", "--to", "20260102000000", "--force"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Created src/migrations/m20260102_000001_squashed.rs replacing 2 migrations up to 20260102000000; their files are deleted (with --force: git does not keep all of them)
note: write its `up` before it runs on a fresh database; where they are all applied it is recorded without running
Updated src/migrations/mod.rs

"#]]);
}

#[test]
fn squash_replaces_the_files_with_one_module_and_regenerates_the_registry() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    git_commit_all(crate_dir.path());
    cli()
        .current_dir(crate_dir.path())
        .args(["squash", "--to", "20260102000000", "--name", "Initial schema"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Created src/migrations/m20260102_000001_initial_schema.rs replacing 2 migrations up to 20260102000000; their files are deleted (git keeps them)
note: write its `up` before it runs on a fresh database; where they are all applied it is recorded without running
Updated src/migrations/mod.rs

"#]]);
    let names: Vec<String> = listing(&dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["m20260102_000001_initial_schema.rs", "mod.rs"]);
    snapbox::assert_data_eq!(
        read(dir.join("m20260102_000001_initial_schema.rs")),
        file!["../../fixtures/golden/squash.rs"].raw()
    );
    snapbox::assert_data_eq!(
        read(dir.join("mod.rs")),
        file!["../../fixtures/golden/single_after_squash.rs"].raw()
    );
    offline_check(crate_dir.path()).assert().success();

    // A version that is not there, and nothing changes.
    let before = listing(&dir);
    cli()
        .current_dir(crate_dir.path())
        .args(["squash", "--to", "20260101000000"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no migration has version 20260101000000
hint: see the file names in the migrations directory, or `cargo mongo-migrate status`

"#]]);
    assert_eq!(before, listing(&dir));
}

#[test]
fn config_names_each_setting_s_source() {
    let crate_dir = fixture("single");
    cli()
        .current_dir(crate_dir.path())
        .env(
            "MONGODB_URI",
            "mongodb://app:secret@127.0.0.1:27017/shop?replicaSet=rs0",
        )
        .env_remove("CARGO_TERM_COLOR")
        .args(["config", "--database", "orders"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
[single-app]
uri                  = "mongodb://app:****@127.0.0.1:27017/shop?replicaSet=rs0" # environment (MONGODB_URI)
database             = "orders"                                 # flag
tracking-collection  = "migrations"                             # default
lock-collection      = "migration_locks"                        # default
lock-ttl-secs        = 60                                       # default
out-of-order         = "refuse"                                 # default
index-commit-quorum  = "votingMembers"                          # default
index-build-wait-secs = 7200                                     # default
connect-timeout      = 10                                       # default
uri-env              = "MONGODB_URI"                            # default
database-env         = "MONGODB_DATABASE"                       # default
migrations-dir       = "src/migrations"                         # default
registry-fn          = "migrations::registry"                   # default
# schema-fn          = (not set)
build-script         = false                                    # default

"#]]);
}

/// A database name the server forbids, or a system database, is refused
/// before anything is built or connected, from the flag, the environment or
/// the URI's path (each was used as given: `a/b` and `x.y` got migrations).
#[test]
fn a_database_name_no_server_takes_is_refused_before_anything_runs() {
    let crate_dir = fixture("single");
    let run = |args: &[&str], uri: &str| {
        cli()
            .current_dir(crate_dir.path())
            .env("MONGODB_URI", uri)
            .args(args)
            .assert()
            .code(2)
    };
    run(&["up", "--database", "a/b"], "mongodb://127.0.0.1:1/").stderr_eq(str![[r#"
error: `a/b` cannot be the database of a run: it holds `/`, which no database name may; nothing ran in any database
hint: check the database names given

"#]]);
    run(&["status", "--database", "my$db"], "mongodb://127.0.0.1:1/").stderr_eq(str![[r#"
error: `my$db` cannot be the database of a run: it holds `$`, which no database name may; nothing ran in any database
hint: check the database names given

"#]]);
    run(&["up"], "mongodb://127.0.0.1:1/x.y").stderr_eq(str![[r#"
error: `x.y` cannot be the database of a run: it holds `.`, which no database name may; nothing ran in any database
hint: check the database names given

"#]]);
    cli()
        .current_dir(crate_dir.path())
        .env("MONGODB_URI", "mongodb://127.0.0.1:1/")
        .env("MONGODB_DATABASE", "admin")
        .args(["down"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: `admin` cannot be the database of a run: it is a system database of the server, never a migration target; nothing ran in any database
hint: check the database names given

"#]]);
}

/// `down --steps 0` would build the harness to do nothing: refused as
/// `history --limit 0` is, before anything is built.
#[test]
fn down_of_zero_steps_is_refused() {
    let crate_dir = fixture("single");
    cli()
        .current_dir(crate_dir.path())
        .env("MONGODB_URI", "mongodb://127.0.0.1:1/shop")
        .args(["down", "--steps", "0"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: invalid value '0' for '--steps <N>': 0 is not in 1..18446744073709551615

For more information, try '--help'.

"#]]);
}

/// `config | head -0`: stdout is a pipe whose reader is gone before the
/// first line. The command ends as it would have, without a panic (it was
/// `failed printing to stdout: Broken pipe`, exit 101).
#[test]
fn a_closed_stdout_ends_the_printing_not_the_command() {
    let crate_dir = fixture("single");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(snapbox::cmd::cargo_bin!("cargo-mongo-migrate"))
        .args(["mongo-migrate", "config", "--database", "orders"])
        .current_dir(crate_dir.path())
        .env("MONGODB_URI", "mongodb://127.0.0.1:27017/")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "", "a closed pipe is no news to the reader who closed it");
}

#[test]
fn color_follows_the_flag_then_cargo_term_color() {
    let crate_dir = fixture("single");
    let failing = || {
        cli()
            .current_dir(crate_dir.path())
            .env_remove("MONGODB_URI")
            .arg("status")
    };
    // Not a terminal: no colour unless asked.
    failing()
        .env_remove("CARGO_TERM_COLOR")
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no MongoDB URI for `single-app`
hint: pass --uri, or set MONGODB_URI (its name is `uri-env` under [package.metadata.mongo-migrate])

"#]]);
    failing()
        .env("CARGO_TERM_COLOR", "always")
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
[1m[31merror[0m: no MongoDB URI for `single-app`
[1m[36mhint[0m: pass --uri, or set MONGODB_URI (its name is `uri-env` under [package.metadata.mongo-migrate])

"#]]);
    failing()
        .env("CARGO_TERM_COLOR", "always")
        .args(["--color", "never"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no MongoDB URI for `single-app`
hint: pass --uri, or set MONGODB_URI (its name is `uri-env` under [package.metadata.mongo-migrate])

"#]]);
}

/// After a merge brought a second migration of one version, `renumber`
/// gives the one named by its file a new version and regenerates the
/// registry; the version alone is refused as ambiguous. Against a database
/// where the migration is applied, it is refused and nothing is renamed:
/// renumbered, it would run again under its new version.
#[test]
fn renumber_mends_a_version_clash_and_refuses_an_applied_migration() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path().join("src/migrations");
    std::fs::write(
        dir.join("m20260102_000000_theirs.rs"),
        "//! Theirs.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(_ctx: &mut MigrationContext) -> MigrationResult {\n    Ok(())\n}\n",
    )
    .unwrap();
    let offline = || cli().current_dir(crate_dir.path()).env_remove("MONGODB_URI");
    offline().args(["registry"]).assert().code(2).stderr_eq(str![[r#"
error: duplicate migration version 20260102000000: [..]/src/migrations/m20260102_000000_seed_admin.rs and [..]/src/migrations/m20260102_000000_theirs.rs; give one of them a new timestamp
hint: give the one applied nowhere a new version: `cargo mongo-migrate renumber <its file>`

"#]]);
    offline().args(["renumber", "20260102000000"]).assert().code(2).stderr_eq(str![[r#"
error: 2 migrations have version 20260102000000: src/migrations/m20260102_000000_seed_admin.rs, src/migrations/m20260102_000000_theirs.rs
hint: give the file of the one to renumber (the one applied nowhere)

"#]]);
    offline()
        .args(["renumber", "src/migrations/m20260102_000000_theirs.rs", "--to", "20260103000000"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
Renamed src/migrations/m20260102_000000_theirs.rs to src/migrations/m20260103_000000_theirs.rs (version 20260102000000 is now 20260103000000)
Updated src/migrations/mod.rs

"#]])
        .stderr_eq(str![[r#"
warning: not checked against a database (no URI): renumber only a migration applied nowhere, or it runs again under its new version

"#]]);
    assert!(!dir.join("m20260102_000000_theirs.rs").exists());
    assert!(read(dir.join("mod.rs")).contains("m20260103_000000_theirs"));
    assert!(read(dir.join("m20260103_000000_theirs.rs")).starts_with("//! Theirs."));

    let db = format!("mm_renumber_{}", std::process::id());
    with_client(async |client| {
        let now = mongo_migrations::bson::DateTime::now();
        client
            .database(&db)
            .collection::<mongo_migrations::bson::Document>("migrations")
            .insert_one(mongo_migrations::bson::doc! {
                "version": 20260101000000_i64, "name": "create_users", "status": "completed",
                "batch": 1_i64, "createdAt": now, "updatedAt": now, "appliedAt": now,
            })
            .await
            .unwrap();
    });
    let run = against_server(crate_dir.path(), &db);
    run(&["renumber", "20260101000000"]).assert().code(2).stderr_eq(str![[r#"
error: 20260101000000 create_users is applied in the database `mm_renumber_[..]`: renumbered, it would run again under its new version
hint: renumber the other migration of the clash, the one applied nowhere; or give this one's changes a new migration

"#]]);
    assert!(dir.join("m20260101_000000_create_users.rs").exists());
    // A pending one there is renumbered.
    run(&["renumber", "20260103000000", "--to", "20260104000000"])
        .assert()
        .success();
    assert!(dir.join("m20260104_000000_theirs.rs").exists());
    with_client(async |client| client.database(&db).drop().await.unwrap());
}

/// Every `--json` follows one rule: the package's result, or with
/// `--workspace` an object of each package's result under its name.
/// `config` and `check` followed two others (always keyed; an array).
#[test]
fn config_and_check_json_follow_the_rule_of_every_json_output() {
    let single = fixture("single");
    let json = |dir: &std::path::Path, args: &[&str]| -> serde_json::Value {
        let out = cli()
            .current_dir(dir)
            .env_remove("MONGODB_URI")
            .args(args)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    };
    let config = json(single.path(), &["config", "--json"]);
    assert_eq!(config["package"], "single-app", "{config}");
    assert!(config["settings"].as_array().is_some_and(|s| !s.is_empty()), "{config}");
    let check = json(single.path(), &["check", "--offline", "--json"]);
    assert_eq!(check["package"], "single-app", "{check}");
    assert!(check["findings"].is_array(), "{check}");

    let ws = fixture("workspace");
    for args in [
        &["--workspace", "config", "--json"][..],
        &["--workspace", "check", "--offline", "--json"],
    ] {
        let keyed = json(ws.path(), args);
        let names: Vec<&String> = keyed.as_object().unwrap_or_else(|| panic!("{keyed}")).keys().collect();
        // Dependencies first, as they run.
        assert_eq!(names, ["ws-billing", "ws-app"], "{args:?}");
        assert_eq!(keyed["ws-billing"]["package"], "ws-billing", "{args:?}");
    }
}
