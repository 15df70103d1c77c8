//! The migration binary for hosts without cargo: `bundle`, and the one-line
//! `src/bin/migrate.rs`. Each command's output and exit code match the
//! CLI's: both are checked against one snapshot. Needs the test server in
//! `MONGODB_URI`.

use std::path::{Path, PathBuf};

use crate::common::*;
use snapbox::cmd::Command;
use snapbox::str;

fn database(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("mm_bundle_{what}_{}_{nanos}", std::process::id())
}

/// The binary, run where no cargo is: `PATH` holds only the system's
/// directories, the current directory is empty.
fn binary(bin: &Path, empty: &Path, db: &str) -> impl Fn(&[&str]) -> Command {
    let (bin, empty, db) = (bin.to_path_buf(), empty.to_path_buf(), db.to_string());
    move |args| {
        Command::new(&bin)
            .current_dir(&empty)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MONGODB_URI", uri())
            .env("MONGODB_DATABASE", &db)
            .args(args)
    }
}

fn cargo_is_not_on(path: &str) -> bool {
    std::env::split_paths(path).all(|dir| !dir.join("cargo").exists())
}

/// Runs the same commands through `run`: the outputs and exit codes every
/// runner of these migrations must give.
fn same_session(run: impl Fn(&[&str]) -> Command) {
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE    BATCH  APPLIED AT (UTC)  TIME
20260101000000  create_users  pre-deploy  pending  -      -                 -
20260102000000  seed_admin    pre-deploy  pending  -      -                 -
2 migrations: 0 applied, 2 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]]);
    run(&["up"]).assert().success().stdout_eq(str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260102000000 seed_admin ... ok ([..])
single-app: Applied 2 migrations in [..] (migration code: [..])

"#]]);
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE    BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  pre-deploy  applied  1      [..]
20260102000000  seed_admin    pre-deploy  applied  1      [..]
2 migrations: 2 applied, 0 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]]);
    // `--json` alone on stdout.
    let out = run(&["status", "--json"]).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["counts"]["applied"], 2, "{json}");
    run(&["down"]).assert().success().stdout_eq(str![[r#"
  rolling back 20260102000000 seed_admin ... ok ([..])
single-app: Rolled back 1 migration in [..] (migration code: [..])

"#]]);
    run(&["lock-status"]).assert().success().stdout_eq(str![[r#"
single-app: lock free

"#]]);
    // Bad input: exit 2 and the same words.
    run(&["down", "--to", "1"])
        .assert()
        .code(2)
        .stdout_eq(str![])
        .stderr_eq(str![[r#"
error: invalid migration version `1`: expected 14 digits YYYYMMDDHHMMSS forming a real UTC date and time
hint: see `cargo mongo-migrate status` for versions

"#]]);
    run(&["force-unlock"]).assert().code(2).stderr_eq(str![[r#"
error: force-unlock needs confirmation
hint: make sure the holder is gone (`lock-status`), then pass --yes

"#]]);
}

fn bundled(crate_dir: &Path, out: &Path) -> PathBuf {
    let bin = out.join("single-app-migrate");
    cli()
        .current_dir(crate_dir)
        // What is tested is behaviour: the dev profile reuses the driver the
        // other tests built, minutes of a release build saved.
        .args(["bundle", "--profile", "dev", "--out"])
        .arg(&bin)
        .assert()
        .success()
        .stdout_eq(str![]);
    bin
}

#[test]
fn a_bundled_binary_runs_without_cargo_as_the_cli_does() {
    let crate_dir = fixture("single");
    let out = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let bin = bundled(crate_dir.path(), out.path());
    assert!(cargo_is_not_on("/usr/bin:/bin"), "the test needs a PATH without cargo");
    // The README's `--out dist/`: a folder that does not exist yet is made.
    let dist = out.path().join("dist");
    cli()
        .current_dir(crate_dir.path())
        .args(["bundle", "--profile", "dev", "--out"])
        .arg(format!("{}/", dist.display()))
        .assert()
        .success();
    assert!(
        dist.join("single-app-migrate").is_file(),
        "no binary in {}",
        dist.display()
    );

    let run = binary(&bin, empty.path(), &database("bin"));
    // Without a command: its own help (it was the library's, `Usage: mongo-migrations`).
    let help = run(&[]).assert().code(2);
    let help = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    assert!(
        help.starts_with("The migrations of single-app 0.1.0\n\nUsage: single-app-migrate"),
        "{help}"
    );
    run(&["--version"]).assert().success().stdout_eq(str![[r#"
single-app 0.1.0: 2 migrations, newest 20260102000000 (mongo-migrations 0.1.0)

"#]]);
    same_session(binary(&bin, empty.path(), &database("bin")));
    same_session(against_server(crate_dir.path(), &database("cli")));

    // No URI: the CLI's message and exit code.
    Command::new(&bin)
        .current_dir(empty.path())
        .env_clear()
        .args(["status"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: no MongoDB URI for `single-app`
hint: pass --uri, or set MONGODB_URI (its name is `uri-env` under [package.metadata.mongo-migrate])

"#]]);
}

#[test]
fn the_one_line_binary_of_the_crate_carries_its_settings() {
    let crate_dir = fixture("single");
    let manifest = crate_dir.path().join("Cargo.toml");
    // A setting of the package, baked in at build time.
    let text = read(&manifest) + "\n[package.metadata.mongo-migrate]\ntracking-collection = \"changes\"\n";
    std::fs::write(&manifest, text).unwrap();
    let target = root().join("target").join("fixtures");
    Command::new(env!("CARGO"))
        .current_dir(crate_dir.path())
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .args(["build", "--quiet", "--features", "cli", "--bin", "migrate"])
        .assert()
        .success();
    let empty = tempfile::tempdir().unwrap();
    let db = database("oneline");
    let run = binary(&target.join("debug").join("migrate"), empty.path(), &db);
    run(&["up"]).assert().success();
    // The records are in the package's own tracking collection.
    let listed = against_server(crate_dir.path(), &db)(&["status", "--json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&listed.get_output().stdout).unwrap();
    assert_eq!(json["counts"]["applied"], 2, "{json}");
    let names = collections_then_drop(&db);
    assert!(names.contains(&"changes".to_string()), "{names:?}");
}

fn collections_then_drop(db: &str) -> Vec<String> {
    with_client(async |client| {
        let names = client.database(db).list_collection_names().await.unwrap();
        client.database(db).drop().await.unwrap();
        names
    })
}

/// The README's "A migration binary for production", as written: its
/// `bundle` lines (the second only where the musl target is installed;
/// `--profile dev` added, as everywhere in these tests: a release build
/// would compile the driver a second time, minutes on CI), the binary's
/// `--version` and `up --phase pre` lines, and its one-line
/// `src/bin/migrate.rs`, which is the fixture's own with the crate's name.
#[test]
fn the_readme_s_production_binary_section_runs_as_written() {
    let section = readme::section("## A migration binary for production");
    let commands: Vec<String> = readme::cli_lines(&section).iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        commands,
        [
            "bundle --out dist/",
            "bundle --target x86_64-unknown-linux-musl --out dist/"
        ],
        "the README's production section changed: run what it says now"
    );
    let one_line = readme::blocks(&section, "rust").remove(0);
    let fixture_bin = read(root().join("fixtures/single/src/bin/migrate.rs"));
    assert_eq!(
        one_line
            .replace("// src/bin/migrate.rs\n", "")
            .replace("my_service", "single_app"),
        fixture_bin,
        "the README's one-line binary is the fixture's (built and run by `the_one_line_binary_of_the_crate_carries_its_settings`)"
    );

    let crate_dir = fixture("single");
    let musl = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-linux-musl"));
    for command in &commands {
        if command.contains("--target") && !musl {
            eprintln!("not run here (no musl target installed): cargo mongo-migrate {command}");
            continue;
        }
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.extend(["--profile", "dev"]);
        cli().current_dir(crate_dir.path()).args(&args).assert().success();
    }
    // `dist/my-service-migrate --version`, then `MONGODB_URI=... dist/my-service-migrate up --phase pre`.
    let sh = readme::blocks(&section, "sh");
    let lines: Vec<&str> = sh
        .iter()
        .flat_map(|b| b.lines().map(str::trim).collect::<Vec<_>>())
        .filter(|l| l.contains("dist/my-service-migrate "))
        .map(|l| l.split(" #").next().unwrap().trim())
        .collect();
    assert_eq!(
        lines,
        [
            "dist/my-service-migrate --version",
            "MONGODB_URI=... dist/my-service-migrate up --phase pre"
        ]
    );
    let bin = crate_dir.path().join("dist/single-app-migrate");
    let empty = tempfile::tempdir().unwrap();
    let db = database("readme");
    let run = binary(&bin, empty.path(), &db);
    run(&["--version"]).assert().success().stdout_eq(str![[r#"
single-app 0.1.0: 2 migrations, newest 20260102000000 (mongo-migrations 0.1.0)

"#]]);
    run(&["up", "--phase", "pre"]).assert().success().stdout_eq(str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260102000000 seed_admin ... ok ([..])
single-app: Applied 2 migrations in [..] (migration code: [..])

"#]]);
    collections_then_drop(&db);
}
