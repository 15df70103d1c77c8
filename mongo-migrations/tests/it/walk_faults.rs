//! Fault injection for walks in batches: a child runner walks a collection;
//! it is paused (SIGSTOP) between two batches (just after a checkpoint, at
//! a seeded random delay: in its throttle's sleep, its lock proof, or its
//! next range query), fenced by force-unlock or by a takeover on expiry,
//! then resumed (SIGCONT). The batch with the last document waits at a gate
//! the parent opens only after the fence, so every pause lands while the
//! walk holds its lock, on any machine. For every trial:
//! - the walk was paused under its lock;
//! - no batch is handed to the paused runner's closure after the pause;
//! - no tracking write of the paused runner lands after the fence;
//! - the paused runner reports the lost lock;
//! - after recovery every document is transformed.
//!
//! And kill -9 of a runner at a seeded random moment of the first 100 ms
//! of a walk: the next `up` resumes it without a `resolve`. The killed
//! walk's last batch waits at the gate, so the walk is under way when the
//! kill lands; in the first trial the body waits at the gate before it
//! walks, so that kill always lands before the first checkpoint.
//!
//! `FAULT_TRIALS` (per mode, default 1 here) and `FAULT_SEED` replay a run;
//! the seed is printed. The child is the `walk_child` test of this binary.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::batches::done_of;
use crate::common::child::{gate, gated, Watched};
use crate::common::*;
use crate::faults::{now_nanos, signal, stopped, Rng};
use mongo_migrations::bson::{doc, Bson, Document};
use mongo_migrations::mongodb::Database;
use mongo_migrations::{BoxFuture, Config, Error, Migration, MigrationContext, MigrationResult, Migrator, UpOptions};

const VERSION: &str = "20260101000000";
const ITEMS: i64 = 400;
const SIZE: u32 = 20;

/// How the child walks (`WALK_MODE`): segments and throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    PauseBetween,
    MaxRate,
    Parallel,
    /// The body waits at the parent's gate before its walk: killed then, it
    /// has no checkpoint.
    SlowStart,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Plain, Mode::PauseBetween, Mode::MaxRate, Mode::Parallel];

    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::PauseBetween => "pause-between",
            Mode::MaxRate => "max-rate",
            Mode::Parallel => "parallel",
            Mode::SlowStart => "slow-start",
        }
    }

    fn from_env() -> Self {
        let name = std::env::var("WALK_MODE").unwrap_or_default();
        Mode::ALL
            .into_iter()
            .chain([Mode::SlowStart])
            .find(|m| m.name() == name)
            .unwrap_or(Mode::Plain)
    }

    /// The longest stretch between a checkpoint and the next hand-over, for
    /// the pause's random delay.
    fn gap_ms(self) -> u64 {
        match self {
            Mode::PauseBetween => 40,
            Mode::MaxRate => 60,
            Mode::Plain | Mode::Parallel | Mode::SlowStart => 8,
        }
    }
}

/// The closure: its first act stamps the hand-over with this process's wall
/// clock (so a hand-over after the pause shows even if its writes are
/// delayed), then it marks the batch. The batch with the last document then
/// waits at the parent's gate: the walk cannot end before the parent lets it.
async fn stamp_and_mark(batch: Vec<Document>, db: Database) -> MigrationResult {
    let at = now_nanos();
    let ids: Vec<Bson> = batch.iter().map(|d| d.get("_id").cloned().unwrap()).collect();
    db.collection::<Document>("handovers")
        .insert_one(doc! { "pid": std::process::id() as i64, "at": at, "first": ids[0].clone() })
        .await?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.collection::<Document>("items")
        .update_many(doc! { "_id": { "$in": ids.clone() } }, doc! { "$set": { "x": 1 } })
        .await?;
    if ids.contains(&Bson::Int64(ITEMS - 1)) {
        gate().await;
    }
    Ok(())
}

fn walk_up(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let mode = Mode::from_env();
        if mode == Mode::SlowStart {
            gate().await;
        }
        let walk = ctx.batches("items", doc! {}).size(SIZE);
        let walk = match mode {
            Mode::Plain | Mode::SlowStart => walk,
            Mode::PauseBetween => walk.pause_between(Duration::from_millis(30)),
            Mode::MaxRate => walk.max_rate(800),
            Mode::Parallel => walk.parallel(3),
        };
        walk.run(stamp_and_mark).await?;
        Ok(())
    })
}

fn walk() -> Vec<Migration> {
    vec![Migration::new(v(VERSION), "mark_items", walk_up).walks(true, false)]
}

/// Run by the parent as a child process; does nothing on its own.
#[test]
#[ignore = "the child process of the walk fault tests"]
fn walk_child() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let ttl = Duration::from_millis(var("WALK_TTL_MS").parse().unwrap());
    let runtime = child_runtime();
    let result = runtime.block_on(async {
        let config = Config {
            lock_ttl: ttl,
            ..Config::default()
        };
        let registry = mongo_migrations::Registry::new(walk()).unwrap();
        let m = Migrator::connect(&uri(), Some(&var("WALK_DB")), registry, config).await?;
        m.up(UpOptions::default()).await
    });
    match result {
        Ok(report) => println!("WALK-RESULT ok {}", report.steps.len()),
        Err(e) => println!("WALK-RESULT error {e}"),
    }
}

/// The child; with `gate`, its gate shut until the parent opens it (else
/// it passes the gate at once).
fn child(t: &TestDb, ttl_ms: u64, mode: Mode, gate: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if gate {
        gated(&mut cmd);
    }
    cmd.args([
        "walk_faults::walk_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("WALK_DB", &t.name)
    .env("WALK_TTL_MS", ttl_ms.to_string())
    .env("WALK_MODE", mode.name())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

async fn seed_items(t: &TestDb) {
    let docs: Vec<Document> = (0..ITEMS).map(|i| doc! { "_id": i, "kind": "a" }).collect();
    t.db().collection::<Document>("items").insert_many(docs).await.unwrap();
}

/// Items the walk has not marked yet.
async fn unmarked(t: &TestDb) -> u64 {
    t.db()
        .collection::<Document>("items")
        .count_documents(doc! { "x": { "$exists": false } })
        .await
        .unwrap()
}

fn result_of(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.split_once("WALK-RESULT ").map(|(_, r)| r))
        .unwrap_or("none")
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    ForceUnlock,
    /// The lock expires while the runner is paused; another runner takes it
    /// and completes the walk.
    Takeover,
}

/// Runs `up` until the walk is done, waiting out the paused runner's lock.
/// Its own lock lives 10 s: a 1 s one can expire between heartbeats on a
/// loaded machine, and this runner is the one recovering, not under test.
async fn finish(t: &TestDb) {
    let m = t
        .migrator_with(walk(), short_lock(10_000))
        .with_lock_wait(Duration::from_secs(60));
    m.up(UpOptions::default()).await.unwrap();
}

async fn paused_trial(rng: &mut Rng, fence: Fence, mode: Mode) -> bool {
    let t = TestDb::new().await;
    seed_items(&t).await;
    // Takeover: 2 s, short enough to wait out, long enough that a loaded
    // machine does not expire it between heartbeats.
    let ttl_ms = match fence {
        Fence::ForceUnlock => 30_000,
        Fence::Takeover => 2_000,
    };
    let mut runner = child(&t, ttl_ms, mode, true);
    let watched = Watched::new(&mut runner);
    // Wait for a checkpoint past a random batch, then pause a random
    // moment later: between that batch and the next hand-over.
    let after = i64::from(SIZE) * (2 + rng.below(10) as i64);
    let delay = Duration::from_micros(rng.below(mode.gap_ms() * 1_000));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = t.tracking(VERSION).await.map_or(0, |r| done_of(&r));
        if done >= after {
            break;
        }
        assert!(Instant::now() < deadline, "the child made no progress");
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    tokio::time::sleep(delay).await;
    signal(&runner, "-STOP");
    let paused_at = stopped(&runner).await;
    // Whatever the child had sent lands now, before the fence.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let operator = t.migrator_with(walk(), short_lock(ttl_ms));
    let held = operator
        .lock_status()
        .await
        .unwrap()
        .is_some_and(|l| l.holder.pid == runner.id() && !l.expired);
    // By construction: the gate keeps the walk, and its lock, open.
    assert!(
        held,
        "{fence:?}/{}: paused {delay:?} after the checkpoint at {after}, the walk did not hold its lock",
        mode.name()
    );
    match fence {
        Fence::ForceUnlock => drop(operator.force_unlock(true).await.unwrap()),
        Fence::Takeover => finish(&t).await,
    }
    let fenced_at = t.docs("migrations").await;
    signal(&runner, "-CONT");
    let output = tokio::time::timeout(Duration::from_secs(60), watched.output())
        .await
        .expect("the resumed child did not exit");
    runner.wait().unwrap();
    let result = result_of(&output);

    let late: Vec<Document> = t
        .docs("handovers")
        .await
        .into_iter()
        .filter(|h| h.get_i64("at").unwrap() > paused_at && h.get_i64("pid").unwrap() != i64::from(std::process::id()))
        .collect();
    assert!(
        late.is_empty(),
        "{fence:?}/{}: the fenced walk was handed a batch after its fence: {late:?} (result: {result})",
        mode.name()
    );
    assert_eq!(
        fenced_at,
        t.docs("migrations").await,
        "{fence:?}/{}: a tracking write of the fenced walk landed after the fence (result: {result})",
        mode.name()
    );
    if held {
        assert!(
            result.contains("lost the migration lock"),
            "{fence:?}/{}: the fenced walk did not report its lost lock: {result}",
            mode.name()
        );
    }
    finish(&t).await;
    assert_eq!(
        unmarked(&t).await,
        0,
        "{fence:?}/{}: documents were missed",
        mode.name()
    );
    t.drop_db().await;
    held
}

fn trials_and_seed(name: &str) -> (usize, u64) {
    let trials: usize = std::env::var("FAULT_TRIALS").map_or(1, |t| t.parse().unwrap());
    let seed: u64 = std::env::var("FAULT_SEED").map_or_else(|_| now_nanos() as u64 | 1, |s| s.parse().unwrap());
    println!("{name}: FAULT_SEED={seed} FAULT_TRIALS={trials}");
    (trials, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_paused_between_batches_starts_no_batch_after_its_fence() {
    let (trials, seed) = trials_and_seed("paused walks");
    let mut rng = Rng(seed);
    for fence in [Fence::ForceUnlock, Fence::Takeover] {
        for mode in Mode::ALL {
            let mut held = 0;
            for _ in 0..trials {
                held += usize::from(paused_trial(&mut rng, fence, mode).await);
            }
            println!(
                "{fence:?}/{}: {trials} trials, {held} paused under the lock",
                mode.name()
            );
            assert_eq!(held, trials, "trials that paused the walk under its lock");
        }
    }
}

/// kill -9 in the first 100 ms after the walk's `running` write, before its
/// first checkpoint in some trials (and always in the first, whose body
/// waits before it walks): the next `up` resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_killed_before_its_first_checkpoint_resumes_without_resolve() {
    let (trials, seed) = trials_and_seed("walks killed at their start");
    let mut rng = Rng(seed);
    let mut before_checkpoint = 0;
    for trial in 0..trials.max(1) * 6 {
        let t = TestDb::new().await;
        seed_items(&t).await;
        let mode = if trial == 0 { Mode::SlowStart } else { Mode::Plain };
        // Gated: the walk cannot end before the kill (its last batch waits).
        let mut runner = child(&t, 1_000, mode, true);
        t.wait_running(VERSION, Duration::from_secs(60), Duration::from_micros(500))
            .await;
        let kill_at = rng.below(100_000);
        tokio::time::sleep(Duration::from_micros(kill_at)).await;
        runner.kill().unwrap(); // SIGKILL
        runner.wait().unwrap();
        let record = t.tracking(VERSION).await.unwrap();
        let unstarted = !record.contains_key("checkpoints");
        assert!(unstarted || mode != Mode::SlowStart, "{record}");
        before_checkpoint += usize::from(unstarted);
        // The recovering runner's own lock lives 10 s (see `finish`).
        let m = t
            .migrator_with(walk(), short_lock(10_000))
            .with_lock_wait(Duration::from_secs(30));
        match m.up(UpOptions::default()).await {
            Ok(_) => {}
            Err(e @ Error::Blocked { .. }) => {
                panic!("trial {trial} (seed {seed}, killed {kill_at} us after the start): {e}; record: {record}")
            }
            Err(e) => panic!("trial {trial} (seed {seed}): {e}"),
        }
        assert_eq!(
            unmarked(&t).await,
            0,
            "trial {trial} (seed {seed}): documents were missed"
        );
        t.drop_db().await;
    }
    println!("{before_checkpoint} kills landed before the first checkpoint");
}
