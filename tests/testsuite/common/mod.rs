//! Helpers for the CLI tests: copies of fixture crates and the binary.
#![allow(dead_code)]

pub mod readme;

use std::path::{Path, PathBuf};

use snapbox::cmd::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo-mongo-migrate mongo-migrate`, as cargo runs it.
pub fn cli() -> Command {
    Command::new(snapbox::cmd::cargo_bin!("cargo-mongo-migrate"))
        .arg("mongo-migrate")
        .env_remove("MONGODB_DATABASE")
        // Harness builds of all fixture copies share one target directory,
        // without debug info: each build of the driver would take 140 MB.
        .env("CARGO_TARGET_DIR", root().join("target").join("fixtures"))
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
}

/// A writable copy of `fixtures/<name>` whose path dependencies on the
/// runtime point back at this checkout, with this workspace's `Cargo.lock`:
/// the dependencies it shares with the runtime are the versions the runtime
/// is tested with (not whatever crates.io serves that day), so every
/// fixture build, the packaging check's and the demo's reuse one another's.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("mm-{name}-"))
        .tempdir()
        .unwrap();
    copy(&root().join("fixtures").join(name), dir.path());
    std::fs::copy(root().join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    dir
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy(&src, &dst);
        } else if entry.file_name() == "Cargo.toml" {
            let text = std::fs::read_to_string(&src).unwrap();
            let fixed: Vec<String> = text.lines().map(absolute_path_dep).collect();
            std::fs::write(&dst, fixed.join("\n") + "\n").unwrap();
        } else if entry.file_name() != "Cargo.lock" {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// `mongo-migrations = { path = "../../mongo-migrations", .. }` -> the same
/// with an absolute path into this checkout.
fn absolute_path_dep(line: &str) -> String {
    for krate in ["mongo-migrations-codegen", "mongo-migrations"] {
        let Some(rest) = line.strip_prefix(&format!("{krate} = {{ path = \"")) else {
            continue;
        };
        let Some((_, after)) = rest.split_once('"') else {
            continue;
        };
        let path = root().join(krate).display().to_string();
        return format!("{krate} = {{ path = {path:?}{after}");
    }
    line.to_string()
}

pub fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// The test server's URI; the tests fail without it.
pub fn uri() -> String {
    std::env::var("MONGODB_URI").expect("MONGODB_URI is not set: run the tests with `scripts/test`")
}

/// The CLI in the crate at `dir`, against database `db` of the test server.
pub fn against_server(dir: &Path, db: &str) -> impl Fn(&[&str]) -> Command {
    let (dir, db) = (dir.to_path_buf(), db.to_string());
    move |args| {
        cli()
            .current_dir(&dir)
            .env("MONGODB_URI", uri())
            .env("MONGODB_DATABASE", &db)
            .args(args)
    }
}

/// Runs `f` on a runtime of its own, with a client of the server in
/// `MONGODB_URI`, closed afterwards.
pub fn with_client<T>(f: impl AsyncFnOnce(&mongo_migrations::mongodb::Client) -> T) -> T {
    let uri = uri();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = mongo_migrations::mongodb::Client::with_uri_str(uri).await.unwrap();
        let value = f(&client).await;
        client.shutdown().await;
        value
    })
}

/// Compares generated code with a golden file byte for byte (snapbox would
/// turn the backslashes of escapes into slashes); `SNAPSHOTS=overwrite` blesses changes.
pub fn golden(actual: &str, path: &std::path::Path) {
    // `SNAPSHOTS=overwrite` blesses the file, as for `file![]`.
    snapbox::assert_data_eq!(actual, snapbox::Data::read_from(path, None).raw());
}
