//! Faults of the network and the server, from the other side of the wire:
//! replies dropped after the server applied the command, connections reset,
//! a black hole longer than the lease (a proxy between the runner and the
//! test server, `common/proxy.rs`), a replica set in failovers (the same
//! proxy answers protocol writes as a stepping-down primary or a secondary
//! does), and the server itself killed with
//! `kill -9` and restarted on the same storage.
//!
//! For every trial: the run completes or stops with a plain error (never
//! the driver's debug text, never a lost lock for a dropped reply); no
//! acknowledged record is lost; every body ran exactly once, unless its run
//! was cut while it was in flight, and then it is blocked for `resolve`,
//! never silently run again.
//!
//! `NET_TRIALS` (default 3) trials per test; `FAILOVER_TRIALS` (default
//! 3) for the impersonated failovers; `SERVER_KILL_TRIALS` (default 3) for
//! the server kills; `NET_SEED` fixes the first seed. Every seed is
//! printed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{
    BoxFuture, Config, Error, ErrorKind, Migration, MigrationContext, MigrationResult, MigrationStatus, Migrator,
    Registry, Resolution, State, UpOptions, Version,
};

use crate::common::proxy::{Faults, Proxy};
use crate::common::*;

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |s| s.parse().expect("a number"))
}

fn first_seed() -> u64 {
    std::env::var("NET_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |s| s.parse().expect("a number"),
    )
}

/// A number below `n` drawn from `seed` (splitmix64): neighbouring seeds
/// give unrelated draws.
fn draw(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % n
}

/// Bodies that ran, in this process, by database and version, in order.
static RAN: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

fn ran_in(db: &str) -> Vec<u64> {
    RAN.lock()
        .unwrap()
        .iter()
        .filter(|(d, _)| d == db)
        .map(|(_, v)| *v)
        .collect()
}

fn times_ran(db: &str) -> BTreeMap<u64, u32> {
    let mut counts = BTreeMap::new();
    for v in ran_in(db) {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
}

/// A plain body: notes that it ran, then writes its effect idempotently
/// (the driver may send its own write twice).
fn noted(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let db = ctx.db()?.clone();
        let version = ctx.version().as_u64();
        RAN.lock().unwrap().push((db.name().to_string(), version));
        tokio::time::sleep(Duration::from_millis(20)).await;
        db.collection::<Document>("effects")
            .update_one(doc! { "_id": version as i64 }, doc! { "$set": { "done": true } })
            .upsert(true)
            .await?;
        Ok(())
    })
}

/// A plain body that notes that it ran and writes nothing: where the run
/// protocol's own resilience is measured, a body's write through the
/// faulty connection (the driver retries it once, then the migration
/// fails, blocked for `resolve`) would measure the driver's.
fn noted_only(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let name = ctx.db()?.name().to_string();
        RAN.lock().unwrap().push((name, ctx.version().as_u64()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    })
}

/// A transactional body: its effect commits with its record.
fn in_transaction(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let version = ctx.version().as_u64();
        let (db, session) = ctx.transaction()?;
        let name = db.name().to_string();
        db.collection::<Document>("tx_effects")
            .insert_one(doc! { "_id": version as i64 })
            .session(session)
            .await?;
        RAN.lock().unwrap().push((name, version));
        Ok(())
    })
}

/// A walk in batches over `items`: sets `seen` on each.
fn walking(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let name = ctx.db()?.name().to_string();
        RAN.lock().unwrap().push((name, ctx.version().as_u64()));
        ctx.batches("items", doc! {})
            .size(40)
            .update_each(|_| Some(doc! { "$set": { "seen": true } }))
            .await?;
        Ok(())
    })
}

fn version(i: usize) -> Version {
    Version::parse(&format!("202601{:02}{:02}0000", 1 + i / 24, i % 24)).unwrap()
}

fn plain(n: usize) -> Vec<Migration> {
    (0..n)
        .map(|i| Migration::new(version(i), format!("m{i}"), noted_only).with_checksum(format!("sha256:m{i}")))
        .collect()
}

/// Plain, transactional and batched migrations, in turn.
fn mixed(n: usize) -> Vec<Migration> {
    (0..n)
        .map(|i| {
            let body = [noted, in_transaction, walking][i % 3];
            let m = Migration::new(version(i), format!("m{i}"), body).with_checksum(format!("sha256:m{i}"));
            match i % 3 {
                1 => m.with_transaction(true),
                2 => Migration::walks(m, true, false),
                _ => m,
            }
        })
        .collect()
}

/// A runner's error must be plain: a connection fault in words, never the
/// driver's debug dump, never a lost lock or a conflict for a network fault
/// (see [`assert_plain_or_expired`] where the lease really ran out).
/// A body whose own write the driver gave up on (its one retry met a fault
/// too) fails that migration, in plain words.
fn assert_plain(e: &Error, seed: u64) {
    let text = e.to_string();
    assert!(
        !text.contains("Kind:") && !text.contains("labels:") && !text.contains("source: None"),
        "seed {seed}: not plain: {text}"
    );
    assert!(
        !matches!(e, Error::LockLost { .. } | Error::Conflict { .. }),
        "seed {seed}: a network fault reported as {text}"
    );
    if !matches!(e, Error::MigrationFailed { .. }) {
        assert_eq!(e.kind(), ErrorKind::Connection, "seed {seed}: {text}");
    }
}

/// [`assert_plain`], where the fault outlasted the lock's TTL: the lock
/// then really expired, and a run that says it lost it is right.
fn assert_plain_or_expired(e: &Error, seed: u64) {
    if matches!(e, Error::LockLost { .. }) {
        let text = e.to_string();
        assert!(
            !text.contains("Kind:") && !text.contains("labels:"),
            "seed {seed}: not plain: {text}"
        );
        return;
    }
    assert_plain(e, seed);
}

/// After a faulty run: a clean run (straight to the server) settles what
/// is left; a body cut in flight is resolved as what it did. Then every
/// migration is completed, every acknowledged one was completed already,
/// and no plain body ran twice.
async fn settle_and_check(t: &TestDb, migrations: Vec<Migration>, acked: &[Version], seed: u64, walks: bool) {
    let n = migrations.len();
    let clean = t.migrator(migrations);
    let mut resolved = Vec::new();
    loop {
        match clean.up(UpOptions::default()).await {
            Ok(_) => break,
            Err(Error::Blocked { version, status, .. }) if resolved.len() < 2 => {
                // Cut in flight: applied if its body ran (plain bodies note it
                // first); failed (its own write met a fault): run again.
                let ran = times_ran(&t.name).contains_key(&version.as_u64());
                let resolution = if ran && status == MigrationStatus::Running {
                    Resolution::Applied
                } else {
                    Resolution::Pending
                };
                println!("seed {seed}: {version} was cut in flight (ran: {ran}); resolved {resolution:?}");
                clean.resolve(version, resolution).await.unwrap();
                resolved.push(version);
            }
            Err(e) => panic!("seed {seed}: the clean run failed: {e}"),
        }
    }
    let status = clean.status().await.unwrap();
    let applied = status.migrations.iter().filter(|m| m.state == State::Applied).count();
    assert_eq!(applied, n, "seed {seed}: {status:?}");
    if !walks {
        for (v, times) in times_ran(&t.name) {
            // Once, or twice where a `resolve --pending` asked for it.
            let allowed = 1 + u32::from(resolved.iter().any(|r| r.as_u64() == v));
            assert!(
                times <= allowed && times >= 1,
                "seed {seed}: the body of {v} ran {times} times"
            );
        }
    }
    if walks {
        // A transaction may be tried again (its effect commits once); a
        // walk resumes by running its body again. A plain body: once.
        let tx = t.docs("tx_effects").await.len();
        assert_eq!(tx, n / 3 + usize::from(n % 3 > 1), "seed {seed}: transactional effects");
        let unseen = t
            .docs("items")
            .await
            .iter()
            .filter(|d| d.get_bool("seen") != Ok(true))
            .count();
        assert_eq!(unseen, 0, "seed {seed}: documents the walks missed");
        for (v, times) in times_ran(&t.name) {
            let i = (0..n).find(|&i| version(i).as_u64() == v).unwrap();
            let allowed = 1 + u32::from(resolved.iter().any(|r| r.as_u64() == v));
            if i % 3 == 0 {
                assert!(times <= allowed, "seed {seed}: the plain body of {v} ran {times} times");
            }
        }
    }
    // Acknowledged before the fault: still there after it.
    let records = clean.history(&Default::default()).await.unwrap();
    for v in acked {
        let r = records.iter().find(|r| r.version == *v);
        assert!(
            r.is_some_and(|r| r.status == MigrationStatus::Completed),
            "seed {seed}: {v} was acknowledged as completed, and is now {:?}",
            r.map(|r| r.status)
        );
    }
}

/// The versions a runner had been told were recorded: every one before the
/// last body that started (a body starts only after the write that records
/// the one before it came back).
fn acknowledged(db: &str, plan: &[Migration]) -> Vec<Version> {
    let ran = ran_in(db);
    let Some(last) = ran
        .iter()
        .filter_map(|v| plan.iter().position(|m| m.version().as_u64() == *v))
        .max()
    else {
        return Vec::new();
    };
    plan[..last].iter().map(Migration::version).collect()
}

async fn through(proxy: &Proxy, db: &str, migrations: Vec<Migration>, config: Config) -> Migrator {
    let (client, _) = mongo_migrations::connect(&proxy.uri, Some(db))
        .await
        .expect("connect through the proxy");
    Migrator::new(client, db, Registry::new(migrations).unwrap(), config)
}

fn ttl(secs: u64) -> Config {
    Config {
        lock_ttl: Duration::from_secs(secs),
        ..Config::default()
    }
}

/// About one reply in 30 dropped after the server applied its command: at
/// least 9 of 10 runs of 40 migrations complete by themselves; the others
/// stop with a plain error; nothing runs twice, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_replies_and_resets_do_not_end_a_run() {
    let trials = env_count("NET_TRIALS", 3);
    let seed0 = first_seed();
    println!("dropped replies: NET_SEED={seed0} NET_TRIALS={trials}");
    let mut completed = 0;
    for trial in 0..trials {
        let seed = seed0.wrapping_add(trial);
        let t = TestDb::new().await;
        let proxy = Proxy::start(&uri()).await;
        let migrator = through(&proxy, &t.name, plain(40), ttl(20)).await;
        proxy.faults(Faults {
            drop_reply_per_1000: 33,
            reset_per_1000: 5,
            // At least one fault per trial, wherever the draws fall: a
            // reply among the first 40, which every run of 40 migrations
            // gets (one step write each). Among the first 61 it could miss
            // once a run sent fewer commands around its migrations.
            drop_reply_number: Some(1 + draw(seed, 40)),
            seed,
            ..Faults::default()
        });
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(300), migrator.up(UpOptions::default()))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: the run hung"));
        let (dropped, resets) = proxy.injected();
        proxy.faults(Faults::default());
        match &outcome {
            Ok(report) => {
                completed += 1;
                assert_eq!(report.steps.len(), 40, "seed {seed}");
            }
            Err(e) => assert_plain(e, seed),
        }
        println!(
            "seed {seed}: {} in {:.1} s, {dropped} replies dropped, {resets} connections reset",
            match &outcome {
                Ok(_) => "completed".to_string(),
                Err(e) => format!("stopped: {e}"),
            },
            started.elapsed().as_secs_f64()
        );
        assert!(dropped + resets > 0, "seed {seed}: no fault was injected");
        migrator.shutdown().await;
        let acked = acknowledged(&t.name, &plain(40));
        settle_and_check(&t, plain(40), &acked, seed, false).await;
        t.drop_db().await;
    }
    println!("dropped replies: {completed} of {trials} runs completed by themselves");
    assert!(
        completed * 10 >= trials * 9,
        "{completed} of {trials} runs completed by themselves (at least 9 in 10 must)"
    );
}

/// A replica set in failovers, impersonated by the proxy: about one
/// protocol write in 30 is answered with a stepdown's `writeConcernError`
/// after it landed, and one in 100 refused with `NotWritablePrimary`
/// before the server. At least 9 of 10 runs of 40 migrations complete by
/// themselves; none reports a lost lock; nothing runs twice, nothing is
/// lost. `FAILOVER_TRIALS` (default 3 in CI, where every one must
/// complete; 10 and more as a soak) trials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failovers_during_a_run_do_not_end_it() {
    let trials = env_count("FAILOVER_TRIALS", 3);
    let seed0 = first_seed();
    println!("failovers: NET_SEED={seed0} FAILOVER_TRIALS={trials}");
    let mut completed = 0;
    for trial in 0..trials {
        let seed = seed0.wrapping_add(trial);
        let t = TestDb::new().await;
        let proxy = Proxy::start(&uri()).await;
        // A real primary's monitor hears of an election at once (its
        // awaitable `hello` returns); behind the proxy nothing changes, so
        // the driver would wait out a whole 10 s heartbeat after each
        // refusal. A 500 ms heartbeat stands in for that promptness.
        let fast = proxy.with_options("heartbeatFrequencyMS=500");
        let migrator = through(&fast, &t.name, plain(40), ttl(20)).await;
        proxy.faults(Faults {
            stepdown_per_1000: 33,
            not_primary_per_1000: 10,
            // At least one stepdown per trial, wherever the draws fall.
            stepdown_number: Some(1 + draw(seed, 40)),
            seed,
            ..Faults::default()
        });
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(300), migrator.up(UpOptions::default()))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: the run hung"));
        let (stepdowns, refusals) = proxy.failovers();
        proxy.faults(Faults::default());
        match &outcome {
            Ok(report) => {
                completed += 1;
                assert_eq!(report.steps.len(), 40, "seed {seed}");
            }
            Err(e) => assert_plain(e, seed),
        }
        println!(
            "seed {seed}: {} in {:.1} s, {stepdowns} stepdown replies, {refusals} writes refused as not primary",
            match &outcome {
                Ok(_) => "completed".to_string(),
                Err(e) => format!("stopped: {e}"),
            },
            started.elapsed().as_secs_f64()
        );
        assert!(stepdowns > 0, "seed {seed}: no stepdown was injected");
        migrator.shutdown().await;
        let acked = acknowledged(&t.name, &plain(40));
        settle_and_check(&t, plain(40), &acked, seed, false).await;
        t.drop_db().await;
    }
    println!("failovers: {completed} of {trials} runs completed by themselves");
    assert!(
        completed * 10 >= trials * 9,
        "{completed} of {trials} runs completed by themselves (at least 9 in 10 must)"
    );
}

fn index_big(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.ensure_index("big", &mongo_migrations::schema::Index::on([("n", 1)]))
            .await?;
        Ok(())
    })
}

/// A stepdown while a migration waits for its index build: the server goes
/// on building, the waiting `createIndexes` is answered
/// `InterruptedDueToReplStateChange` at once (the proxy), and `listIndexes`
/// does not list the unfinished build. The migration sends the same
/// `createIndexes` again, which waits for the build, and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_build_interrupted_by_a_stepdown_is_waited_for() {
    let t = TestDb::new().await;
    let docs: Vec<Document> = (0..20_000).map(|i| doc! { "n": i }).collect();
    t.db().collection::<Document>("big").insert_many(docs).await.unwrap();
    let proxy = Proxy::start(&uri()).await;
    let migration = Migration::new(version(0), "index_big", index_big).with_checksum("sha256:big");
    let migrator = through(&proxy, &t.name, vec![migration], ttl(20)).await;
    proxy.faults(Faults {
        interrupt_build_of: Some("big"),
        ..Faults::default()
    });
    proxy.take_commands();
    let report = migrator.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 1);
    let interrupted = proxy.builds_seen();
    assert_eq!(interrupted, 2, "the interrupted build's command is sent again");
    let listed: Vec<String> = t.db().collection::<Document>("big").list_index_names().await.unwrap();
    assert!(listed.contains(&"n_1".to_string()), "{listed:?}");
    migrator.shutdown().await;
    t.drop_db().await;
}

/// An index build whose commit quorum is never reached (a member down):
/// the proxy forwards the `createIndexes` and swallows its reply. The
/// configured quorum is what the build is sent with, and the migration
/// fails in plain words once the configured wait is over, instead of
/// waiting (holding the lock) until the member is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_build_that_does_not_commit_in_time_fails_in_plain_words() {
    let t = TestDb::new().await;
    t.db()
        .collection::<Document>("big")
        .insert_one(doc! { "n": 1 })
        .await
        .unwrap();
    let proxy = Proxy::start(&uri()).await;
    let config = Config {
        index_commit_quorum: mongo_migrations::schema::CommitQuorum::Majority,
        index_build_wait: Some(Duration::from_secs(1)),
        ..ttl(20)
    };
    let migration = Migration::new(version(0), "index_big", index_big).with_checksum("sha256:big");
    let migrator = through(&proxy, &t.name, vec![migration], config).await;
    proxy.faults(Faults {
        silence_builds_of: Some("big"),
        ..Faults::default()
    });
    let err = tokio::time::timeout(Duration::from_secs(60), migrator.up(UpOptions::default()))
        .await
        .expect("the wait is bounded")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the build of the index `n_1` on `big` did not commit within 1 s: commitQuorum `majority`"),
        "{text}"
    );
    let sent = proxy.silenced_builds();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].get_str("commitQuorum"), Ok("majority"), "{:?}", sent[0]);
    migrator.shutdown().await;
    t.drop_db().await;
}

/// `connectionStatus` of a user with these actions on `db` (the manual's
/// "connectionStatus" with `showPrivileges`, abridged).
fn user_with(db: &str, actions: &[&str]) -> Document {
    doc! { "authInfo": {
        "authenticatedUsers": [{ "user": "app", "db": "admin" }],
        "authenticatedUserRoles": [{ "role": "custom", "db": db }],
        "authenticatedUserPrivileges": [{ "resource": { "db": db, "collection": "" }, "actions": actions }],
    }, "ok": 1.0 }
}

/// A user with `readWrite` only (no `collMod`, as on many managed clouds)
/// is refused a run whose post-deploy half would need `collMod`, before
/// anything is written, with the missing action and the migration named;
/// a user who may, runs it. The proxy impersonates each user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_change_validators_is_refused_before_anything_is_written() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let migrations = || {
        vec![
            Migration::new(version(0), "stage", noted_only).needs(&["createIndex"]),
            Migration::new(version(1), "enforce", noted_only).needs(&["collMod"]),
        ]
    };
    let migrator = through(&proxy, &t.name, migrations(), ttl(20)).await;
    let read_write = [
        "find",
        "insert",
        "update",
        "remove",
        "createIndex",
        "dropIndex",
        "createCollection",
    ];
    proxy.connection_status(Some(user_with(&t.name, &read_write)));
    let err = migrator.up(UpOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::MissingPrivileges { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the user `app@admin` may not run `collMod` (needed by {}) on `{}`, which the migrations to run need: grant it (the `dbAdmin` role has `collMod`), or run them as a user that may; nothing was written",
            version(1),
            t.name
        )
    );
    assert!(t.docs("migrations").await.is_empty(), "nothing recorded");
    assert!(t.docs("migration_locks").await.is_empty(), "the lock never taken");
    assert!(ran_in(&t.name).is_empty());
    // With `collMod` too, the same run goes through.
    let mut all = read_write.to_vec();
    all.push("collMod");
    proxy.connection_status(Some(user_with(&t.name, &all)));
    let report = migrator.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 2);
    migrator.shutdown().await;
    t.drop_db().await;
}

/// A black hole longer than the lease: the runner gives up in plain words
/// within its window (it never hangs), and a clean run settles the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_longer_than_the_lease_stops_the_run_in_plain_words() {
    let trials = env_count("NET_TRIALS", 3);
    let seed0 = first_seed();
    println!("black hole: NET_SEED={seed0} NET_TRIALS={trials}");
    for trial in 0..trials {
        let seed = seed0.wrapping_add(trial);
        let t = TestDb::new().await;
        let proxy = Proxy::start(&uri()).await;
        let migrator = through(&proxy, &t.name, plain(30), ttl(3)).await;
        let delay = Duration::from_millis(draw(seed, 1_500));
        let run = tokio::spawn(async move {
            let outcome = migrator.up(UpOptions::default()).await;
            migrator.shutdown().await;
            outcome
        });
        tokio::time::sleep(delay).await;
        let started = Instant::now();
        // Longer than the lease (3 s) and than one attempt's patience (10 s).
        proxy.blackhole(Duration::from_secs(14)).await;
        let outcome = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: the run hung"))
            .unwrap();
        match &outcome {
            Ok(_) => println!("seed {seed}: black hole after {delay:?}; the run completed"),
            Err(e) => {
                assert_plain_or_expired(e, seed);
                println!(
                    "seed {seed}: after {delay:?}, stopped in {:.1} s: {e}",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        // The dead runner's lock expires by itself (its release was lost too).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let acked = acknowledged(&t.name, &plain(30));
        settle_and_check(&t, plain(30), &acked, seed, false).await;
        t.drop_db().await;
    }
}

/// The test server, started from `TEST_SERVER_VENV` on storage of its own
/// so that it can be killed.
struct OwnServer {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnServer {
    fn start(dir: &std::path::Path, port: u16) -> Self {
        let venv = std::env::var("TEST_SERVER_VENV").expect(
            "TEST_SERVER_VENV is not set: the server-kill test starts a server of its own (run it with scripts/test)",
        );
        let child = std::process::Command::new(format!("{venv}/bin/secantusd-py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--storage-path"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start secantusd-py");
        OwnServer {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        *self = OwnServer::start(&self.dir, self.port);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kill -9` of the server at a random moment of a run of plain,
/// transactional and batched migrations, then a restart on the same
/// storage: no acknowledged record is lost, no plain body runs twice
/// without a `resolve`, every walk covers every document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_no_acknowledged_record() {
    let trials = env_count("SERVER_KILL_TRIALS", 3);
    let seed0 = first_seed();
    println!("server kills: NET_SEED={seed0} SERVER_KILL_TRIALS={trials}");
    let dir = std::env::temp_dir().join(format!("mm-kill-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = OwnServer::start(&dir, free_port());
    server.wait_up().await;
    let mut lost_runs = 0;
    for trial in 0..trials {
        let seed = seed0.wrapping_add(trial);
        let name = format!("mm_kill_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (client, _) = mongo_migrations::connect(&server.uri(), Some(&name)).await.unwrap();
        let items: Vec<Document> = (0..200_i64).map(|i| doc! { "_id": i }).collect();
        client
            .database(&name)
            .collection::<Document>("items")
            .insert_many(items)
            .write_concern(
                mongo_migrations::mongodb::options::WriteConcern::builder()
                    .journal(true)
                    .build(),
            )
            .await
            .unwrap();
        let migrator = Migrator::new(client, &name, Registry::new(mixed(24)).unwrap(), ttl(40));
        let run = tokio::spawn(async move {
            let outcome = migrator.up(UpOptions::default()).await;
            migrator.shutdown().await;
            outcome
        });
        let delay = Duration::from_millis(100 + draw(seed, 2_400));
        tokio::time::sleep(delay).await;
        server.kill();
        let acked = acknowledged(&name, &mixed(24));
        tokio::time::sleep(Duration::from_millis(300 + draw(seed ^ 1, 1_500))).await;
        server.restart();
        server.wait_up().await;
        let outcome = tokio::time::timeout(Duration::from_secs(180), run)
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: the run hung"))
            .unwrap();
        match &outcome {
            Ok(_) => println!(
                "seed {seed}: killed after {delay:?}; the run went on and completed ({} acknowledged before)",
                acked.len()
            ),
            Err(e) => {
                lost_runs += 1;
                assert_plain(e, seed);
                println!("seed {seed}: killed after {delay:?}; stopped: {e}");
            }
        }
        let (client, _) = mongo_migrations::connect(&server.uri(), Some(&name)).await.unwrap();
        let t = TestDb { client, name };
        settle_and_check(&t, mixed(24), &acked, seed, true).await;
        t.drop_db().await;
    }
    println!("server kills: {lost_runs} of {trials} runs stopped with a plain error, the rest went on");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
