//! `#[mongo_migrations::test]` in a user's crate: the fixture's own tests
//! (`fixtures/single/tests/migrations.rs`) run with `cargo test`, each in a
//! database of its own, and every database is gone afterwards, the
//! panicking test's too. Needs the test server in `MONGODB_URI`.

use std::path::Path;

use crate::common::*;
use snapbox::cmd::Command;

/// `cargo test` in the crate at `dir`, its tests recording their database
/// names in `record`.
fn cargo_test(dir: &Path, record: &Path) -> Command {
    Command::new(env!("CARGO"))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", root().join("target").join("fixtures"))
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("TEST_DB_RECORD_DIR", record)
        .env_remove("MONGO_MIGRATIONS_KEEP_TEST_DB")
        .args(["test", "--quiet", "--test", "migrations"])
}

fn recorded(record: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(record)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn databases() -> Vec<String> {
    with_client(async |client| client.list_database_names().await.unwrap())
}

fn drop_databases(names: &[String]) {
    with_client(async |client| {
        for name in names {
            client.database(name).drop().await.unwrap();
        }
    })
}

#[test]
fn each_test_gets_its_own_database_and_every_one_is_dropped() {
    let crate_dir = fixture("single");
    let record = tempfile::tempdir().unwrap();
    cargo_test(crate_dir.path(), record.path())
        .env("MONGODB_URI", uri())
        // All at once, whatever the machine's cores: the two that write the
        // same collection overlap.
        .args(["--", "--test-threads=8"])
        .assert()
        .success();
    let used = recorded(record.path());
    // Six tests (the panicking one included), six databases.
    assert_eq!(used.len(), 6, "{used:?}");
    let left: Vec<&String> = {
        let all = databases();
        used.iter().filter(|n| all.contains(n)).collect()
    };
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_keep_variable_keeps_them() {
    let crate_dir = fixture("single");
    let record = tempfile::tempdir().unwrap();
    let out = cargo_test(crate_dir.path(), record.path())
        .env("MONGODB_URI", uri())
        .env("MONGO_MIGRATIONS_KEEP_TEST_DB", "1")
        .args(["--", "every_migration_is_applied", "--nocapture"])
        .assert()
        .success();
    let used = recorded(record.path());
    assert_eq!(used.len(), 1, "{used:?}");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("kept the test database `{}`", used[0])),
        "{stderr}"
    );
    assert!(databases().contains(&used[0]));
    drop_databases(&used);
}

#[test]
fn without_a_uri_the_test_fails_and_says_what_to_set() {
    let crate_dir = fixture("single");
    let record = tempfile::tempdir().unwrap();
    let out = cargo_test(crate_dir.path(), record.path())
        .env_remove("MONGODB_URI")
        .args(["--", "nothing_applied"])
        .assert()
        .failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("#[mongo_migrations::test] needs a MongoDB server: set MONGODB_URI"),
        "{stdout}"
    );
}

#[test]
fn a_server_without_transactions_is_refused_for_transactional_migrations() {
    // The standalone server of `scripts/test`: the fixture's seed_admin runs in a transaction.
    let standalone = std::env::var("MONGODB_STANDALONE_URI")
        .expect("MONGODB_STANDALONE_URI is not set: run the tests with `scripts/test`");
    let crate_dir = fixture("single");
    let record = tempfile::tempdir().unwrap();
    let out = cargo_test(crate_dir.path(), record.path())
        .env("MONGODB_URI", standalone)
        .args(["--", "nothing_applied"])
        .assert()
        .failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("does not support transactions"), "{stdout}");
}
