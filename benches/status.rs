//! `cargo mongo-migrate status` end to end on a warm harness build (see
//! BENCHMARKS.md): wall time, and how many crates cargo recompiled.
//!
//! `scripts/test-server run cargo bench --bench status`

#[path = "../tests/testsuite/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

fn main() {
    let uri = std::env::var("MONGODB_URI").expect("set MONGODB_URI, e.g. `scripts/test-server run cargo bench`");
    let crate_dir = common::fixture("single");
    let database = format!("mm_bench_status_{}", std::process::id());
    let run = |args: &[&str]| {
        common::cli()
            .current_dir(crate_dir.path())
            .env("MONGODB_URI", &uri)
            .env("MONGODB_DATABASE", &database)
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone()
    };
    // Cold: builds the harness (and, the first time, its dependencies).
    let start = Instant::now();
    run(&["up"]);
    println!(
        "cold `up` (harness build included): {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let runs = 10;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut compiled = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let output = run(&["--verbose", "status"]);
        times.push(start.elapsed());
        let stderr = String::from_utf8_lossy(&output.stderr);
        compiled += stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("Compiling"))
            .count();
    }
    times.sort();
    println!(
        "warm `status`, {runs} runs: median {:?}, min {:?}, max {:?}; `Compiling` lines: {compiled}",
        times[runs / 2],
        times[0],
        times[runs - 1]
    );
}
