//! No process of the CLI or its harness panics as it ends: the driver's
//! clients are shut down before their runtime (a client merely dropped as
//! the runtime ends made the driver panic in about 1 run in 60 under load).
//! Runs about 640 short commands, eight at a time (the old code panicked in
//! 4 of 800 such runs here; this code in none of 800), and reads every
//! stderr. Against the test server in `MONGODB_URI`.

use crate::common::*;

/// Runs `args` in `dir` `times` times, `parallel` at once; every stderr.
fn stderrs(dir: &std::path::Path, db: &str, args: &[&str], times: usize, parallel: usize) -> Vec<String> {
    let uri = std::env::var("MONGODB_URI").expect("MONGODB_URI is not set: run `scripts/test`");
    let mut out = Vec::new();
    for _ in 0..times.div_ceil(parallel) {
        let children: Vec<_> = (0..parallel)
            .map(|_| {
                std::process::Command::new(snapbox::cmd::cargo_bin!("cargo-mongo-migrate"))
                    .arg("mongo-migrate")
                    .args(args)
                    .current_dir(dir)
                    .env("CARGO_TARGET_DIR", root().join("target").join("fixtures"))
                    .env("CARGO_PROFILE_DEV_DEBUG", "false")
                    .env("MONGODB_URI", &uri)
                    .env("MONGODB_DATABASE", db)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            out.push(String::from_utf8_lossy(&output.stderr).into_owned());
        }
    }
    out
}

#[test]
fn hundreds_of_short_commands_end_without_a_panic() {
    let crate_dir = fixture("single");
    let dir = crate_dir.path();
    let db = format!("mm_shutdown_{}", std::process::id());
    let mut all = Vec::new();
    // In the CLI: status, history and lock-status read without a build.
    all.extend(stderrs(dir, &db, &["status"], 480, 8));
    all.extend(stderrs(dir, &db, &["history"], 80, 8));
    all.extend(stderrs(dir, &db, &["lock-status"], 80, 8));
    // A server that is not there: the client is shut down on that path too.
    all.extend(stderrs(
        dir,
        &db,
        &["status", "--uri", "mongodb://127.0.0.1:9/x", "--connect-timeout", "1"],
        8,
        4,
    ));
    // In the harness: real runs, one at a time (they share the lock).
    for _ in 0..15 {
        all.extend(stderrs(dir, &db, &["up"], 1, 1));
        all.extend(stderrs(dir, &db, &["down", "--steps", "2"], 1, 1));
    }
    let panicked: Vec<&String> = all.iter().filter(|e| e.contains("panicked")).collect();
    assert!(
        panicked.is_empty(),
        "{} of {} commands panicked; the first:\n{}",
        panicked.len(),
        all.len(),
        panicked.first().map_or("", |s| s.as_str())
    );
    assert!(all.len() >= 600, "{}", all.len());
}
