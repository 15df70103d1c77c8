//! Fault injection: a child runner process applies many fast migrations; it
//! is paused (SIGSTOP) at a seeded random point of its run, its lock is
//! force-unlocked or expires and is taken over, then it is resumed
//! (SIGCONT). The point is a migration's start, which the child announces,
//! plus a seeded random delay of up to about one migration; the last
//! migration waits at a gate that the parent opens only after the fence, so
//! every pause lands while the child holds its lock, on any machine. For
//! every trial:
//! - no tracking write of the paused runner lands after the fence;
//! - no migration body of the paused runner starts after the pause;
//! - the paused runner was paused under its lock, and reports the lost lock;
//! - after recovery every migration is applied exactly once.
//!
//! `FAULT_TRIALS` (per mode, default 12) and `FAULT_SEED` replay a run; the
//! seed is printed. The child is the `child_runner` test of this binary.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::child::{announce, gate, gated, Watched};
use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::mongodb::Database;
use mongo_migrations::{
    BoxFuture, Config, Error, Migration, MigrationContext, MigrationResult, Migrator, Registry, Resolution, UpOptions,
    Version,
};

const MIGRATIONS: usize = 40;

pub(crate) fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn versions() -> Vec<Version> {
    (0..MIGRATIONS)
        .map(|i| {
            v(&format!(
                "2026010{}{:02}{:02}00",
                1 + i / 60 / 60,
                (i / 60) % 60,
                i % 60
            ))
        })
        .collect()
}

/// The body: its first act stamps the start with this process's wall clock,
/// so a start after the pause shows even if its write is delayed; then it
/// announces the start. The last one waits at the parent's gate after its
/// writes (in its transaction, if it has one), so the run cannot end before
/// the parent has paused and fenced it.
async fn body(ctx: &mut MigrationContext) -> MigrationResult {
    let at = now_nanos();
    let index = versions().iter().position(|v| *v == ctx.version()).unwrap();
    announce(&format!("start {index}"));
    let start = doc! { "version": ctx.version().as_u64() as i64, "pid": std::process::id() as i64, "at": at };
    let effect = doc! { "_id": ctx.version().as_u64() as i64 };
    if ctx.transaction().is_ok() {
        let (db, session) = ctx.transaction()?;
        db.collection::<Document>("starts")
            .insert_one(start)
            .session(&mut *session)
            .await?;
        db.collection::<Document>("effects")
            .insert_one(effect)
            .session(&mut *session)
            .await?;
    } else {
        let db = ctx.db()?;
        db.collection::<Document>("starts").insert_one(start).await?;
        db.collection::<Document>("effects").insert_one(effect).await?;
    }
    if index == MIGRATIONS - 1 {
        gate().await;
    }
    Ok(())
}

fn fault_up(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(body(ctx))
}

fn registry(transactional: bool) -> Registry {
    Registry::new(
        versions()
            .into_iter()
            .enumerate()
            .map(|(i, v)| Migration::new(v, format!("m{i}"), fault_up).with_transaction(transactional))
            .collect(),
    )
    .unwrap()
}

/// Run by the parent as a child process; does nothing on its own.
#[test]
#[ignore = "the child process of `fault_injection`"]
fn child_runner() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let ttl = Duration::from_millis(var("FAULT_TTL_MS").parse().unwrap());
    let transactional = var("FAULT_TX") == "1";
    let runtime = child_runtime();
    let result = runtime.block_on(async {
        let config = Config {
            lock_ttl: ttl,
            ..Config::default()
        };
        let m = Migrator::connect(&uri(), Some(&var("FAULT_DB")), registry(transactional), config).await?;
        m.up(UpOptions::default()).await
    });
    match result {
        Ok(report) => println!("FAULT-RESULT ok {}", report.steps.len()),
        Err(e) => println!("FAULT-RESULT error {e}"),
    }
}

/// This test binary, run as [`child_runner`] over `t`'s database.
fn child_command(t: &TestDb, ttl_ms: u64, transactional: bool) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "faults::child_runner",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("FAULT_DB", &t.name)
    .env("FAULT_TTL_MS", ttl_ms.to_string())
    .env("FAULT_TX", if transactional { "1" } else { "0" });
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    ForceUnlock,
    /// The lock expires while the runner is paused; another runner takes it.
    Takeover,
}

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

pub(crate) fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} failed");
}

/// Waits until every thread of `child` is stopped; returns the time then:
/// any body start stamped later came after the pause.
pub(crate) async fn stopped(child: &Child) -> i64 {
    let tasks = format!("/proc/{}/task", child.id());
    loop {
        let all_stopped = std::fs::read_dir(&tasks).unwrap().all(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the command name in parentheses.
            // Stopped, or already exited (a run that ended before the pause).
            stat.is_empty()
                || stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with(['T', 't', 'Z', 'X']))
        });
        if all_stopped {
            return now_nanos();
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// What one trial saw.
#[derive(Debug, Default)]
struct Outcome {
    /// The child was paused while it held the lock, and then fenced.
    fenced: bool,
    lock_lost: bool,
    /// The fence waited for the paused runner's open transaction.
    waited: bool,
}

/// Applies what is left, settling a migration left `running` the way an
/// operator would: applied if its effect is there, pending otherwise. A
/// transaction that conflicts with the paused runner's open transaction
/// fails (after its retries) and is run again.
async fn recover(db: Database, m: Migrator) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match m.up(UpOptions::default()).await {
            Ok(_) => return,
            Err(Error::Blocked { version, .. }) => {
                let done = db
                    .collection::<Document>("effects")
                    .find_one(doc! { "_id": version.as_u64() as i64 })
                    .await
                    .unwrap()
                    .is_some();
                let how = if done { Resolution::Applied } else { Resolution::Pending };
                m.resolve(version, how).await.unwrap();
            }
            Err(e @ Error::MigrationFailed { .. }) if e.to_string().contains("WriteConflict") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("recovery failed: {e}"),
        }
    }
    panic!("recovery did not finish");
}

async fn trial(rng: &mut Rng, fence: Fence, transactional: bool) -> Outcome {
    let t = TestDb::new().await;
    let ttl_ms: u64 = match fence {
        Fence::ForceUnlock => 30_000,
        Fence::Takeover => 1_000,
    };
    let mut child = gated(&mut child_command(&t, ttl_ms, transactional))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watched = Watched::new(&mut child);
    // The recovering runner is not the one under test: a lease of its own
    // longer than the child's keeps its recovery (which may wait seconds
    // for the paused child's open transaction) clear of scheduling stalls
    // on a busy machine. The child's short TTL is what the takeover needs.
    let config = Config {
        lock_ttl: Duration::from_millis(ttl_ms.max(10_000)),
        ..Config::default()
    };
    let m = Migrator::new(t.client.clone(), &t.name, registry(transactional), config);

    // Pause the child at a seeded point of its run under the lock: a
    // migration's start, then up to about one migration's time later (in
    // its body, its step write, the next claim, a commit). The gate in the
    // last body keeps the run, and the lock, open until after the fence.
    let start = rng.below(MIGRATIONS as u64);
    let span_us = if transactional { 40_000 } else { 20_000 };
    let delay = Duration::from_micros(rng.below(span_us));
    watched
        .reached(&format!("start {start}"), Duration::from_secs(60))
        .await;
    tokio::time::sleep(delay).await;
    signal(&child, "-STOP");
    let paused_at = stopped(&child).await;
    // Whatever the child had sent lands now, before the fence.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let lock = m.lock_status().await.unwrap();
    let held = lock.as_ref().is_some_and(|l| l.holder.pid == child.id());
    // By construction: the gate keeps the run, and the lock, open.
    assert!(
        held,
        "paused {delay:?} after the start of migration {start}, the child did not hold its lock: {lock:?}"
    );
    if fence == Fence::Takeover {
        while m.lock_status().await.unwrap().is_some_and(|l| !l.expired) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut fencing = {
        let (m, db) = (m.clone(), t.db());
        tokio::spawn(async move {
            match fence {
                Fence::ForceUnlock => drop(m.force_unlock(true).await.unwrap()),
                Fence::Takeover => recover(db, m).await,
            }
        })
    };
    // A fence waits for the paused runner's open transaction, if one holds
    // a record (mongod aborts it after transactionLifetimeLimitSeconds):
    // then the runner is resumed first, and "after the fence" means after
    // the fence completed.
    let waited = match tokio::time::timeout(Duration::from_secs(3), &mut fencing).await {
        Ok(done) => {
            done.unwrap();
            false
        }
        Err(_) => {
            signal(&child, "-CONT");
            watched.open_gate();
            let done = tokio::time::timeout(Duration::from_secs(120), fencing).await;
            done.expect("the fence never completed").unwrap();
            true
        }
    };
    let fenced_at = t.docs("migrations").await;
    if !waited {
        signal(&child, "-CONT");
    }
    let output = tokio::time::timeout(Duration::from_secs(60), watched.output())
        .await
        .expect("the resumed child did not exit");
    child.wait().unwrap();
    let result = output
        .lines()
        .find_map(|l| l.split_once("FAULT-RESULT ").map(|(_, r)| r))
        .unwrap_or("none")
        .to_string();

    assert_eq!(
        fenced_at,
        t.docs("migrations").await,
        "a tracking write of the fenced runner landed after the fence (result: {result})"
    );
    // With a fence that waited, the runner was resumed before it completed,
    // and may have committed the transaction it was in; nothing new starts.
    let late: Vec<Document> = t
        .docs("starts")
        .await
        .into_iter()
        .filter(|s| s.get_i64("at").unwrap() > paused_at)
        .collect();
    let ours = |s: &Document| s.get_i64("pid").unwrap() == i64::from(std::process::id());
    let late_child: Vec<&Document> = late.iter().filter(|s| !ours(s)).collect();
    assert!(
        late_child.is_empty(),
        "the fenced runner started migrations after the fence: {late_child:?} (result: {result})"
    );
    let lock_lost = result.contains("lost the migration lock");
    if held {
        // Its whole plan recorded before the fence: only the release was left.
        let finished = fenced_at
            .iter()
            .filter(|r| r.get_str("status") == Ok("completed"))
            .filter(|r| {
                r.get_document("lockHolder").unwrap().get_str("id").unwrap()
                    == lock.as_ref().unwrap().holder.id.to_string()
            })
            .count()
            == MIGRATIONS;
        assert!(
            lock_lost || (finished && result.starts_with("ok")),
            "the fenced runner did not report its lost lock: {result}"
        );
    }

    recover(t.db(), m.clone()).await;
    let effects = t.docs("effects").await;
    assert_eq!(effects.len(), MIGRATIONS, "not every migration applied exactly once");
    let records = t.docs("migrations").await;
    assert!(
        records.iter().all(|r| r.get_str("status") == Ok("completed")),
        "records: {records:?}"
    );
    t.drop_db().await;
    Outcome {
        fenced: held,
        lock_lost,
        waited,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection() {
    let trials: usize = std::env::var("FAULT_TRIALS").map_or(12, |t| t.parse().unwrap());
    let seed: u64 = std::env::var("FAULT_SEED").map_or_else(|_| now_nanos() as u64 | 1, |s| s.parse().unwrap());
    println!("fault injection: FAULT_SEED={seed} FAULT_TRIALS={trials}");
    let mut rng = Rng(seed);
    for fence in [Fence::ForceUnlock, Fence::Takeover] {
        for transactional in [false, true] {
            let (mut fenced, mut lost, mut waited) = (0, 0, 0);
            for _ in 0..trials {
                let outcome = trial(&mut rng, fence, transactional).await;
                fenced += usize::from(outcome.fenced);
                lost += usize::from(outcome.lock_lost);
                waited += usize::from(outcome.waited);
            }
            println!(
                "{fence:?}, transactional={transactional}: {trials} trials, {fenced} paused under the lock, \
                 {lost} reported a lost lock, {waited} fences waited for an open transaction"
            );
            assert_eq!(fenced, trials, "trials that paused the runner under its lock");
        }
    }
}

/// libfaketime shifts a child's wall clock; the monotonic clock stays true.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A runner whose wall clock is ten minutes ahead must not take a live lock
/// (by the server's clock, it expires in a minute), and a runner ten
/// minutes behind must take an expired one. Needs libfaketime (`.ci/run`
/// installs it); fails, rather than skips, without it.
#[tokio::test]
async fn lock_expiry_follows_the_server_clock_not_the_runner_clock() {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: apt-get install libfaketime"
    );
    let run_skewed = |t: &TestDb, skew: &str| {
        let out = child_command(t, 60_000, false)
            .env("LD_PRELOAD", FAKETIME)
            .env("FAKETIME", skew)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stderr(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ahead = TestDb::new().await;
    ahead.foreign_lock("live-host", 3, 60_000).await;
    let out = run_skewed(&ahead, "+10m");
    assert!(out.contains("migrations are locked by"), "took a live lock: {out}");
    assert!(ahead.docs("effects").await.is_empty());
    ahead.drop_db().await;

    let behind = TestDb::new().await;
    behind.foreign_lock("dead-host", 3, -5_000).await;
    let out = run_skewed(&behind, "-10m");
    assert!(
        out.contains(&format!("FAULT-RESULT ok {MIGRATIONS}")),
        "kept off an expired lock: {out}"
    );
    behind.drop_db().await;
}
