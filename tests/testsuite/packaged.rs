//! The README's quick start for a user who has only the packaged crates: a
//! new crate depends on `mongo-migrations = "0.1"` as from crates.io, and
//! resolves it (and the macros crate) to the `.crate` archives that
//! `cargo package` makes, unpacked, never to this repository's folders.
//! Needs the test server in `MONGODB_URI`.

use std::path::{Path, PathBuf};

use crate::common::*;
use snapbox::cmd::Command;
use snapbox::str;

/// `cargo package` of the workspace into `out`; the `.crate` files unpacked
/// into `out/crates`. Returns that folder.
fn packaged(out: &Path) -> PathBuf {
    Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "package",
            "--workspace",
            "--no-verify",
            "--allow-dirty",
            "--quiet",
            "--target-dir",
        ])
        .arg(out.join("target"))
        .assert()
        .success();
    let crates = out.join("crates");
    std::fs::create_dir_all(&crates).unwrap();
    for entry in std::fs::read_dir(out.join("target").join("package")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "crate") {
            Command::new("tar")
                .arg("xzf")
                .arg(&path)
                .arg("-C")
                .arg(&crates)
                .assert()
                .success();
        }
    }
    crates
}

/// `cargo new --lib` at `app` with `dependency` (and `extra` appended to its
/// manifest), and `pub mod migrations;` in its library.
fn new_crate(app: &Path, dependency: &str, extra: &str) {
    Command::new(env!("CARGO"))
        .args(["new", "--lib", "--quiet", "--vcs", "none"])
        .arg(app)
        .assert()
        .success();
    let manifest = app.join("Cargo.toml");
    let text = read(&manifest).replace("[dependencies]\n", &format!("[dependencies]\n{dependency}\n")) + extra;
    std::fs::write(&manifest, text).unwrap();
    std::fs::write(app.join("src/lib.rs"), "pub mod migrations;\n").unwrap();
}

#[test]
fn the_quick_start_works_with_the_packaged_crates_alone() {
    let work = tempfile::tempdir().unwrap();
    let crates = packaged(work.path());
    let version = env!("CARGO_PKG_VERSION");
    let unpacked = |name: &str| crates.join(format!("{name}-{version}"));
    assert!(unpacked("mongo-migrations").join("Cargo.toml").is_file());

    let app = work.path().join("my-service");
    // As `cargo add mongo-migrations` writes it; the patch stands in for crates.io.
    let patch = format!(
        "\n[patch.crates-io]\nmongo-migrations = {{ path = {:?} }}\nmongo-migrations-macros = {{ path = {:?} }}\n",
        unpacked("mongo-migrations").display().to_string(),
        unpacked("mongo-migrations-macros").display().to_string(),
    );
    new_crate(&app, "mongo-migrations = \"0.1\"", &patch);
    let run = against_server(&app, &format!("mm_packaged_{}", std::process::id()));
    // The quick start's commands and migration, word for word from the README.
    let quick_start = readme::section("## Quick start");
    let commands = readme::cli_lines(&quick_start);
    let shown: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        shown,
        ["new add-email-index", "up --dry-run", "up", "status", "down"],
        "the README's quick start changed: run what it says now"
    );
    let migration = readme::blocks(&quick_start, "rust").remove(0);
    let dir = app.join("src/migrations");
    for command in &commands {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let assert = run(&args).assert().success();
        match args.as_slice() {
            ["new", ..] => {
                let created: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.to_string_lossy().ends_with("_add_email_index.rs"))
                    .collect();
                let [file] = created.as_slice() else {
                    panic!("`new` wrote {created:?}")
                };
                std::fs::write(file, &migration).unwrap();
            }
            ["up", "--dry-run"] => drop(assert.stdout_eq(str![[r#"
my-service: Would apply 1 migration (dry run, nothing changed):
  [..] add_email_index (batch 1)
      Add a unique index on users.email.

"#]])),
            ["up"] => drop(assert.stdout_eq(str![[r#"
  applying [..] add_email_index ... ok ([..])
my-service: Applied 1 migration in [..] (migration code: [..])

"#]])),
            ["status"] => drop(assert.stdout_eq(str![[r#"
my-service:
VERSION         NAME             PHASE       STATE    BATCH  APPLIED AT (UTC)     TIME
[..]  add_email_index  pre-deploy  applied  1      [..]
1 migration: 1 applied, 0 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]])),
            ["down"] => drop(assert.stdout_eq(str![[r#"
  rolling back [..] add_email_index ... ok ([..])
my-service: Rolled back 1 migration in [..] (migration code: [..])

"#]])),
            other => panic!("no check for {other:?}"),
        }
    }

    // The runtime the harness linked is the unpacked package.
    let metadata = Command::new(env!("CARGO"))
        .current_dir(&app)
        .args(["metadata", "--format-version", "1", "--quiet"])
        .assert()
        .success();
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.get_output().stdout).unwrap();
    let runtime = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mongo-migrations")
        .unwrap();
    let path = runtime["manifest_path"].as_str().unwrap();
    assert!(path.starts_with(crates.to_str().unwrap()), "{path}");
}

/// A runtime from a company's own registry (here a directory standing in
/// for it, by source replacement): the harness must depend on it there,
/// not on crates.io, which has no such crate.
#[test]
fn a_runtime_from_another_registry_is_found_there_by_the_harness() {
    let work = tempfile::tempdir().unwrap();
    let crates = packaged(work.path());
    let version = env!("CARGO_PKG_VERSION");
    let archive = work
        .path()
        .join("target/package")
        .join(format!("mongo-migrations-{version}.crate"));
    let vendored = crates.join(format!("mongo-migrations-{version}"));
    // What `cargo vendor` writes: the archive's checksum, no file list.
    let digest = {
        use sha2::Digest as _;
        format!("{:x}", sha2::Sha256::digest(std::fs::read(&archive).unwrap()))
    };
    std::fs::write(
        vendored.join(".cargo-checksum.json"),
        format!("{{\"files\":{{}},\"package\":\"{digest}\"}}"),
    )
    .unwrap();
    // Only the runtime: the directory must hold nothing else it is asked for.
    for entry in std::fs::read_dir(&crates).unwrap() {
        let path = entry.unwrap().path();
        if path != vendored {
            std::fs::remove_dir_all(path).unwrap();
        }
    }

    let app = work.path().join("app");
    new_crate(
        &app,
        "mongo-migrations = { version = \"0.1\", registry = \"company\" }",
        "",
    );
    std::fs::create_dir_all(app.join(".cargo")).unwrap();
    let index = "sparse+https://registry.invalid/index/";
    std::fs::write(
        app.join(".cargo/config.toml"),
        format!(
            "[registries.company]\nindex = {index:?}\n\n[source.company]\nregistry = {index:?}\nreplace-with = \"company-vendored\"\n\n[source.company-vendored]\ndirectory = {:?}\n",
            crates.display().to_string()
        ),
    )
    .unwrap();
    let run = against_server(&app, &format!("mm_registry_{}", std::process::id()));
    run(&["new", "create-things", "--version", "20260301000000"])
        .assert()
        .success();
    run(&["up"]).assert().success().stdout_eq(str![[r#"
  applying 20260301000000 create_things ... ok ([..])
app: Applied 1 migration in [..] (migration code: [..])

"#]]);
    run(&["down"]).assert().success();
}
