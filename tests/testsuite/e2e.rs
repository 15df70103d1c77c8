//! End to end through the real binary against the test server in `MONGODB_URI`.

use crate::common::*;
use snapbox::str;

fn database() -> String {
    format!("mm_e2e_{}", std::process::id()) + &format!("_{}", rand_suffix())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_007
}

/// `status --json` of the crate in `dir` against database `db`.
fn status_json(dir: &std::path::Path, db: &str) -> serde_json::Value {
    let out = stdout(against_server(dir, db)(&["status", "--json"]).assert().success());
    serde_json::from_str(&out).unwrap()
}

fn stdout(assert: snapbox::cmd::OutputAssert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

fn stderr_of(assert: snapbox::cmd::OutputAssert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

#[test]
fn new_twice_then_dry_run_up_status_down_status() {
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    run(&["new", "backfill-names", "--version", "20260103000000"])
        .assert()
        .success();
    run(&["new", "add-flag", "--version", "20260104000000"])
        .assert()
        .success();

    // Whole outputs; `[..]` stands for what varies (times, dates, hosts).
    run(&["up", "--dry-run"]).assert().success().stdout_eq(str![[r#"
single-app: Would apply 4 migrations (dry run, nothing changed):
  20260101000000 create_users (batch 1)
      Create the users collection with a unique email index.
  20260102000000 seed_admin (batch 1, transactional)
      Seed the admin user.
      Runs in a transaction with its tracking record.
  20260103000000 backfill_names (batch 1)
      Backfill names.
  20260104000000 add_flag (batch 1)
      Add flag.

"#]]);
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME            PHASE       STATE    BATCH  APPLIED AT (UTC)  TIME
20260101000000  create_users    pre-deploy  pending  -      -                 -
20260102000000  seed_admin      pre-deploy  pending  -      -                 -
20260103000000  backfill_names  pre-deploy  pending  -      -                 -
20260104000000  add_flag        pre-deploy  pending  -      -                 -
4 migrations: 0 applied, 4 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]]);
    run(&["up"]).assert().success().stdout_eq(str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260102000000 seed_admin ... ok ([..])
  applying 20260103000000 backfill_names ... ok ([..])
  applying 20260104000000 add_flag ... ok ([..])
single-app: Applied 4 migrations in [..] (migration code: [..])

"#]]);
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME            PHASE       STATE    BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users    pre-deploy  applied  1      [..]
20260102000000  seed_admin      pre-deploy  applied  1      [..]
20260103000000  backfill_names  pre-deploy  applied  1      [..]
20260104000000  add_flag        pre-deploy  applied  1      [..]
4 migrations: 4 applied, 0 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]]);
    run(&["down", "--steps", "2"]).assert().success().stdout_eq(str![[r#"
  rolling back 20260104000000 add_flag ... ok ([..])
  rolling back 20260103000000 backfill_names ... ok ([..])
single-app: Rolled back 2 migrations in [..] (migration code: [..])

"#]]);

    let out = stdout(run(&["status", "--json"]).assert().success());
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["counts"]["applied"], 2, "{out}");
    assert_eq!(status["counts"]["pending"], 2, "{out}");
    assert_eq!(status["migrations"][3]["state"], "rolled-back", "{out}");

    let out = stdout(
        run(&["history", "--status", "rolled-back", "--json"])
            .assert()
            .success(),
    );
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{out}");
    // Applied again: the history has a line per run, the latest first.
    run(&["up", "--to", "20260103000000"]).assert().success();
    run(&["history", "--limit", "4"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME            STATUS       DIRECTION  BATCH  AT (UTC)             TIME[..]
20260103000000  backfill_names  completed    up         2      [..]
20260103000000  backfill_names  rolled-back  down       1      [..]
20260104000000  add_flag        rolled-back  down       1      [..]
20260104000000  add_flag        completed    up         1      [..]

"#]]);
    run(&["down"]).assert().success();
    // More asked than applied: said, not silent.
    run(&["down", "--steps", "5", "--dry-run"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
single-app: Would roll back 2 migrations (dry run, nothing changed):
  20260102000000 seed_admin (batch 1, transactional)
      Seed the admin user.
      Runs in a transaction with its tracking record.
  20260101000000 create_users (batch 1)
      Create the users collection with a unique email index.
single-app: note: 5 asked, and only 2 were applied: all of them

"#]]);

    // Editing an applied migration is refused with the "blocked" exit code.
    let applied = crate_dir.path().join("src/migrations/m20260101_000000_create_users.rs");
    let edited = read(&applied).replace("\"email\": 1", "\"email\": -1");
    std::fs::write(&applied, edited).unwrap();
    run(&["up"]).assert().code(4).stderr_eq(str![[r#"
Updated src/migrations/mod.rs
error: migration 20260101000000 (create_users) was edited after it was applied (checksum sha256:e3c9990489fc… then, sha256:7a0e5d92c09e… now): restore the original file and write a new migration for the change, or accept an edit that changes nothing it did with `resolve 20260101000000 --accept-checksum`
hint: `cargo mongo-migrate status` marks every edited migration; an edit that changes nothing is a comment or a rename

"#]]);
}

#[test]
fn workspace_members_run_in_dependency_order_with_their_own_collections() {
    let ws = fixture("workspace");
    let db = database();
    let run = against_server(ws.path(), &db);
    // Dependencies first.
    run(&["--workspace", "up"]).assert().success().stdout_eq(str![[r#"
  applying 20260115000000 create_invoices ... ok ([..])
ws-billing: Applied 1 migration in [..] (migration code: [..])
  applying 20260201000000 create_orders ... ok ([..])
ws-app: Applied 1 migration in [..] (migration code: [..])

"#]]);

    let out = stdout(run(&["-p", "ws-billing", "status", "--json"]).assert().success());
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["migrations"][0]["name"], "create_invoices");
    // One JSON document for the whole workspace, keyed by package.
    let out = stdout(run(&["--workspace", "status", "--json"]).assert().success());
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all["ws-billing"]["counts"]["applied"], 1, "{out}");
    assert_eq!(all["ws-app"]["migrations"][0]["name"], "create_orders", "{out}");

    // The billing migration has no `down`.
    run(&["-p", "ws-billing", "down"]).assert().code(2).stderr_eq(str![[r#"
...
error: migration 20260115000000 (create_invoices) is irreversible (it has no `down`); nothing was rolled back
hint: roll back to a later version, or give the migration a `down`

"#]]);
}

#[test]
fn a_virtual_workspace_member_is_chosen_with_p_and_the_lock_commands_work() {
    let ws = fixture("virtual");
    let db = database();
    let run = against_server(ws.path(), &db);
    let assert = run(&["-v", "-p", "api", "up"]).assert().success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    snapbox::assert_data_eq!(
        out,
        str![[r#"
  applying 20260301000000 create_sessions ... ok ([..])
api: Applied 1 migration in [..] (migration code: [..])

"#]]
    );
    let stderr = stderr_of(assert);
    assert!(
        stderr.contains(" build --manifest-path "),
        "--verbose hid the harness build: {stderr}"
    );
    // With nothing to do, `up` (and any dry-run) needs no build either.
    for args in [
        &["-v", "-p", "api", "up"][..],
        &["-v", "-p", "api", "up", "--dry-run"],
        &["-v", "-p", "api", "down", "--dry-run"],
    ] {
        let assert = run(args).assert().success();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(!stderr.contains(" build --manifest-path "), "{args:?}: {stderr}");
        let out = stdout(assert);
        assert!(!out.is_empty(), "{args:?}");
    }
    let out = stdout(run(&["-p", "api", "up"]).assert().success());
    assert_eq!(out.trim(), "api: nothing to do");
    let assert = run(&["-v", "-p", "api", "lock-status"]).assert().success();
    let output = assert.get_output();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "api: lock free");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains(" metadata --format-version 1"),
        "--verbose hid cargo metadata: {stderr}"
    );
    // A read command runs no migration code: it builds nothing.
    assert!(!stderr.contains(" build --manifest-path "), "{stderr}");
    run(&["-p", "api", "force-unlock"]).assert().code(2);
    run(&["-p", "api", "force-unlock", "--yes"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
api: the lock was free; it is released all the same

"#]]);
    run(&[
        "-p",
        "api",
        "status",
        "--uri",
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
    ])
    .assert()
    .code(5)
    .stderr_eq(str![[r#"
error: cannot reach 127.0.0.1:9: connection refused
hint: check that the server is up and --uri / MONGODB_URI points at it; --connect-timeout SECS waits longer

"#]]);
}

#[test]
fn a_build_script_registry_picks_up_new_files_without_a_manual_step() {
    let crate_dir = fixture("buildscript");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    run(&["up", "--dry-run"]).assert().success().stdout_eq(str![[r#"
buildscript-app: Would apply 1 migration (dry run, nothing changed):
  20260401000000 create_events (batch 1)
      Create the events collection.

"#]]);
    run(&["new", "add-event-index", "--version", "20260402000000"])
        .assert()
        .success();
    assert!(
        !crate_dir.path().join("src/migrations/mod.rs").exists(),
        "wrote mod.rs in build-script mode"
    );
    run(&["up"]).assert().success().stdout_eq(str![[r#"
  applying 20260401000000 create_events ... ok ([..])
  applying 20260402000000 add_event_index ... ok ([..])
buildscript-app: Applied 2 migrations in [..] (migration code: [..])

"#]]);
}

/// Writes into the database the CLI works on, as another runner or a crash would.
fn with_db(db: &str, f: impl AsyncFnOnce(mongo_migrations::mongodb::Database)) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, name) = mongo_migrations::connect(&uri(), Some(db)).await.unwrap();
        f(client.database(&name)).await;
    });
}

#[test]
fn a_held_lock_exits_3_and_a_crashed_migration_exits_4_until_resolved() {
    use mongo_migrations::bson::{doc, DateTime, Document};
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);

    with_db(&db, async |db| {
        let until = DateTime::from_millis(DateTime::now().timestamp_millis() + 600_000);
        let holder =
            doc! { "id": "7d0f4a4e-0000-4000-8000-000000000000", "host": "deploy-9", "pid": 99_i64, "reason": "up" };
        db.collection::<Document>("migration_locks")
            .insert_one(doc! { "_id": "migrations", "holder": holder, "generation": 4_i64, "expiresAt": until })
            .await
            .unwrap();
    });
    run(&["up"]).assert().code(3).stderr_eq(str![[r#"
...
error: migrations are locked by 7d0f4a4e-0000-4000-8000-000000000000 (pid 99 on deploy-9, up) until [..] UTC; wait for that run to finish, or if it died, run `force-unlock` once you are sure it is gone
hint: see `cargo mongo-migrate lock-status`

"#]]);
    // Told to wait, it says so, and gives up when the wait is over.
    run(&["up", "--wait", "1"]).assert().code(3).stdout_eq(str![[r#"
  waiting for the lock held by 7d0f4a4e-0000-4000-8000-000000000000 (pid 99 on deploy-9, up) (expires [..] UTC)

"#]]);
    run(&["lock-status"]).assert().success().stdout_eq(str![[r#"
single-app: lock held by 7d0f4a4e-0000-4000-8000-000000000000 (pid 99 on deploy-9, up) until [..] (generation 4)

"#]]);
    let held: serde_json::Value =
        serde_json::from_str(&stdout(run(&["lock-status", "--json"]).assert().success())).unwrap();
    assert_eq!(held["lock"]["generation"], 4, "{held}");
    run(&["force-unlock", "--yes"]).assert().success().stdout_eq(str![[r#"
single-app: released the lock held by 7d0f4a4e-0000-4000-8000-000000000000 (pid 99 on deploy-9, up)

"#]]);
    // Free: an object all the same, as HTTP answers.
    let free: serde_json::Value =
        serde_json::from_str(&stdout(run(&["lock-status", "--json"]).assert().success())).unwrap();
    assert_eq!(free, serde_json::json!({ "lock": null }));

    // A runner died while applying the first migration.
    with_db(&db, async |db| {
        let now = DateTime::now();
        db.collection::<Document>("migrations")
            .insert_one(doc! {
                "version": 20260101000000_i64, "name": "create_users", "description": "", "status": "running",
                "direction": "up", "batch": 1_i64, "checksum": "", "reversible": true,
                "lockHolder": { "id": "7d0f4a4e-0000-4000-8000-000000000000", "generation": 4_i64 },
                "createdAt": now, "updatedAt": now,
            })
            .await
            .unwrap();
    });
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE    BATCH  APPLIED AT (UTC)  TIME
20260101000000  create_users  pre-deploy  RUNNING  -      -                 -
20260102000000  seed_admin    pre-deploy  pending  -      -                 -
2 migrations: 0 applied, 1 pending, 0 failed, 1 running, 0 unknown
  20260101000000 left running by 7d0f4a4e-0000-4000-8000-000000000000, which no longer holds the lock; its up may have run in part
lock: free

"#]]);
    run(&["up"]).assert().code(4).stderr_eq(str![[r#"
error: migration 20260101000000 (create_users) is running (left running by 7d0f4a4e-0000-4000-8000-000000000000, which no longer holds the lock; its up may have run in part); fix the cause, then `resolve 20260101000000 --pending` to run it again or `resolve 20260101000000 --applied` if it completed
hint: see `cargo mongo-migrate status`

"#]]);
    let out = stdout(run(&["resolve", "20260101000000", "--pending"]).assert().success());
    assert_eq!(out.trim(), "single-app: marked 20260101000000 as pending");
    run(&["up"]).assert().success().stdout_eq(str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260102000000 seed_admin ... ok ([..])
single-app: Applied 2 migrations in [..] (migration code: [..])

"#]]);
    run(&["history"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          STATUS     DIRECTION  BATCH  AT (UTC)             TIME  ERROR
20260102000000  seed_admin    completed  up         2      [..]
20260101000000  create_users  completed  up         2      [..]

"#]]);

    // A migration whose file was deleted: its record blocks until forgotten.
    with_db(&db, async |db| {
        let now = DateTime::now();
        db.collection::<Document>("migrations")
            .insert_one(doc! {
                "version": 20260109000000_i64, "name": "deleted_one", "description": "", "status": "completed",
                "direction": "up", "batch": 1_i64, "checksum": "", "reversible": true,
                "createdAt": now, "updatedAt": now,
            })
            .await
            .unwrap();
    });
    run(&["up"]).assert().code(4).stderr_eq(str![[r#"
error: the database records migration(s) 20260109000000 (deleted_one) that this build does not know; deploy the code that contains them, or if their files were deleted on purpose, `forget` them (a copy of each record is kept); if another package or service keeps its migrations in the same collection, give each its own tracking collection
hint: see `cargo mongo-migrate status`

"#]]);
    run(&["forget", "20260109000000", "--yes"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
single-app: forgot 20260109000000 deleted_one (was completed; a copy is in the audit collection)

"#]]);
    run(&["up"]).assert().success();
}

#[test]
fn compile_errors_in_migrations_are_shown_as_cargo_prints_them() {
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    let broken = "//! Broken.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(_ctx: &mut MigrationContext) -> MigrationResult {\n    let n: u32 = \"three\";\n    let _ = n;\n    Ok(())\n}\n";
    std::fs::write(
        crate_dir.path().join("src/migrations/m20260105_000000_broken.rs"),
        broken,
    )
    .unwrap();
    // Cargo's own words, then the one error line.
    run(&["up"]).assert().code(1).stderr_eq(str![[r#"
...
error[E0308]: mismatched types
 --> [..]m20260105_000000_broken.rs:6:18
...
error: building the migrations of `single-app` failed
hint: fix the errors cargo printed above

"#]]);
    // Nothing ran, and `status` needs no build: it works, broken file and all.
    let out = stdout(run(&["status", "--json"]).assert().success());
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["counts"]["applied"], 0, "{out}");
    assert_eq!(status["counts"]["pending"], 3, "{out}");
}

#[test]
fn cargo_features_of_the_package_reach_its_migrations() {
    use mongo_migrations::bson::{doc, Document};
    let crate_dir = fixture("single");
    let manifest = crate_dir.path().join("Cargo.toml");
    // Beside the fixture's own `cli` feature.
    let toml = read(&manifest).replace("[features]\n", "[features]\ndefault = [\"loud\"]\nloud = []\n");
    assert_ne!(toml, read(&manifest), "the fixture has no [features]");
    std::fs::write(&manifest, toml).unwrap();
    let signal = "//! Records whether the crate was built with `loud`.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    let db = ctx.db()?;\n    db.collection::<Document>(\"signals\").insert_one(doc! { \"loud\": cfg!(feature = \"loud\") }).await?;\n    Ok(())\n}\n";
    std::fs::write(
        crate_dir.path().join("src/migrations/m20260105_000000_signal.rs"),
        signal,
    )
    .unwrap();
    let loud = |db: &str| {
        let mut loud = None;
        with_db(db, async |db| {
            let signal = db.collection::<Document>("signals").find_one(doc! {}).await.unwrap();
            loud = signal.map(|d| d.get_bool("loud").unwrap());
        });
        loud
    };

    for (args, expected) in [
        (&["up"][..], true),
        (&["up", "--no-default-features"][..], false),
        (&["--no-default-features", "up", "-F", "loud"][..], true),
    ] {
        let db = database();
        against_server(crate_dir.path(), &db)(args).assert().success();
        assert_eq!(loud(&db), Some(expected), "cargo mongo-migrate {args:?}");
    }

    let db = database();
    against_server(crate_dir.path(), &db)(&["up", "--features", "lound"])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: package `single-app` has no feature `lound`
hint: its features: cli, default, loud

"#]]);
    with_db(&db, async |db| {
        let names = db.list_collection_names().await.unwrap();
        assert!(names.is_empty(), "a bad feature still changed the database: {names:?}");
    });
}

/// Starts `up` in a process group of its own, as a terminal would, and
/// returns once the slow migration has started.
#[cfg(unix)]
fn slow_up(crate_dir: &std::path::Path, db: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let started = crate_dir.join("started");
    let _ = std::fs::remove_file(&started);
    let child = std::process::Command::new(snapbox::cmd::cargo_bin!("cargo-mongo-migrate"))
        .args(["mongo-migrate", "up"])
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", root().join("target").join("fixtures"))
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("MONGODB_URI", uri())
        .env("MONGODB_DATABASE", db)
        .env("MM_STARTED", &started)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "the slow migration never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

/// `kill -SIGNAL -- target`: a pid, or `-pid` for its process group.
#[cfg(unix)]
fn kill(signal: &str, target: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, "--", target])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {target}");
}

/// The slow migration was recorded, the one after it was not, and the lock is free.
#[cfg(unix)]
fn stopped_after_slow(crate_dir: &std::path::Path, db: &str) {
    let status = status_json(crate_dir, db);
    assert_eq!(status["counts"]["applied"], 2, "{status}");
    assert_eq!(status["counts"]["pending"], 1, "{status}");
    assert!(status["lock"].is_null(), "the lock was not released: {status}");
}

/// Lets the fixture in `dir` use `tokio` (for slow migrations).
#[cfg(unix)]
fn with_tokio(dir: &std::path::Path) {
    let manifest = dir.join("Cargo.toml");
    let toml = read(&manifest).replace(
        "[dependencies]\n",
        "[dependencies]\ntokio = { version = \"1\", features = [\"time\"] }\n",
    );
    std::fs::write(&manifest, toml).unwrap();
}

/// Ctrl-C in a terminal: SIGINT to the whole foreground group, `times`
/// times. Each SIGINT after the first waits until the harness has said it
/// took the one before (an event, not a pause).
#[cfg(unix)]
fn ctrl_c(mut child: std::process::Child, times: usize) -> std::process::Output {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped");
    let (said, heard) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("stopping after the migration in progress") {
                let _ = said.send(());
            }
            lines.push(line);
        }
        lines
    });
    for i in 0..times {
        if i > 0 {
            heard
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the harness never said it took the first Ctrl-C");
        }
        kill("-INT", &format!("-{}", child.id()));
    }
    let mut output = child.wait_with_output().unwrap();
    let lines = reader.join().unwrap();
    output.stderr = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
    output
}

#[cfg(unix)]
#[test]
fn ctrl_c_or_a_killed_cli_stops_after_the_migration_in_progress_and_twice_aborts_it() {
    let crate_dir = fixture("single");
    with_tokio(crate_dir.path());
    // Between create_users and seed_admin: says it started, then takes 5 s.
    let slow = "//! Slow.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(_ctx: &mut MigrationContext) -> MigrationResult {\n    std::fs::write(std::env::var(\"MM_STARTED\")?, \"\")?;\n    tokio::time::sleep(std::time::Duration::from_secs(5)).await;\n    Ok(())\n}\n";
    std::fs::write(crate_dir.path().join("src/migrations/m20260101_120000_slow.rs"), slow).unwrap();

    let db = database();
    let output = ctrl_c(slow_up(crate_dir.path(), &db), 1);
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(130), "{out}\n{err}");
    snapbox::assert_data_eq!(
        out.as_ref(),
        str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260101120000 slow ... ok ([..])
single-app: Applied 2 migrations in [..] (migration code: [..])
single-app: stopped on request before:
  20260102000000 seed_admin

"#]]
    );
    snapbox::assert_data_eq!(
        err.as_ref(),
        str![[r#"
Updated src/migrations/mod.rs
...

mongo-migrate: stopping after the migration in progress (a walk in batches stops after its batch in flight); press Ctrl-C again to abort
error: single-app: stopped on request; 1 migration did not run
hint: the migrations that ran are recorded and the lock is free; run the command again to go on

"#]]
    );
    stopped_after_slow(crate_dir.path(), &db);

    // A second Ctrl-C cuts the migration off; the record stays `running`.
    let db = database();
    let output = ctrl_c(slow_up(crate_dir.path(), &db), 2);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    snapbox::assert_data_eq!(
        err.as_ref(),
        str![[r#"

mongo-migrate: stopping after the migration in progress (a walk in batches stops after its batch in flight); press Ctrl-C again to abort
mongo-migrate: aborted
error: aborted: the migration in progress was cut off
hint: its lock expires on its own; then see `cargo mongo-migrate status` and settle it with `resolve`

"#]]
    );
    let status = status_json(crate_dir.path(), &db);
    assert_eq!(status["counts"]["applied"], 1, "{status}");
    assert_eq!(status["counts"]["running"], 1, "{status}");

    // The CLI alone is killed (a cancelled CI job): the harness finds nobody
    // reading its progress and stops after the migration in progress.
    let db = database();
    let child = slow_up(crate_dir.path(), &db);
    kill("-TERM", &child.id().to_string());
    // Returns once the harness, which shares the CLI's stderr, has exited.
    let output = child.wait_with_output().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&output.status), Some(15));
    stopped_after_slow(crate_dir.path(), &db);
}

/// Ctrl-C during a walk in batches stops it between two batches: exit 130,
/// a message that says how far it got, a record that says stopped (not
/// failed), and the next `up` resumes it from the checkpoint.
#[cfg(unix)]
#[test]
fn ctrl_c_in_a_walk_stops_between_batches_and_the_next_up_resumes_it() {
    let crate_dir = fixture("single");
    with_tokio(crate_dir.path());
    let seed = "//! Items to walk.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    let items: Vec<Document> = (0..40_i64).map(|i| doc! { \"_id\": i }).collect();\n    ctx.db()?.collection::<Document>(\"items\").insert_many(items).await?;\n    Ok(())\n}\n";
    let walk = "//! Marks every item, slowly.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    ctx.batches(\"items\", doc! { \"done\": { \"$exists\": false } })\n        .size(5)\n        .update_each(|item| {\n            if let Ok(started) = std::env::var(\"MM_STARTED\") {\n                let _ = std::fs::write(started, \"\");\n            }\n            std::thread::sleep(std::time::Duration::from_millis(60));\n            Some(doc! { \"$set\": { \"done\": item.get(\"_id\")?.clone() } })\n        })\n        .await?;\n    Ok(())\n}\n";
    let dir = crate_dir.path().join("src/migrations");
    std::fs::write(dir.join("m20260103_000000_seed_items.rs"), seed).unwrap();
    std::fs::write(dir.join("m20260104_000000_walk_items.rs"), walk).unwrap();

    let db = database();
    let output = ctrl_c(slow_up(crate_dir.path(), &db), 1);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    let done: u64 = line
        .strip_prefix("error: single-app: stopped on request after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(done > 0 && done < 40 && done.is_multiple_of(5), "{line}");
    assert_eq!(
        line,
        format!("error: single-app: stopped on request after {done} of 40 documents of 20260104000000 walk_items; the next `up` resumes from the checkpoint")
    );
    assert!(!err.contains("failed"), "{err}");
    // The walk is listed as stopped inside, with what it did, not as not run.
    let out = String::from_utf8_lossy(&output.stdout).replace(&format!(" {done} "), " [DONE] ");
    snapbox::assert_data_eq!(
        out,
        str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260102000000 seed_admin ... ok ([..])
  applying 20260103000000 seed_items ... ok ([..])
  applying 20260104000000 walk_items ... 
...
single-app: Applied 3 migrations in [..] (migration code: [..])
single-app: stopped on request before:
  20260104000000 walk_items (stopped in its walk after [DONE] of 40 documents; the next run resumes it)

"#]]
    );
    let status = status_json(crate_dir.path(), &db);
    let walk = &status["migrations"][3];
    assert_eq!(walk["state"], "pending", "{status}");
    assert!(
        walk["detail"].as_str().unwrap().starts_with("stopped on request at "),
        "{status}"
    );
    assert!(status["lock"].is_null(), "{status}");
    // The table says the same, not a plain `pending`.
    let table = stdout(against_server(crate_dir.path(), &db)(&["status"]).assert().success());
    snapbox::assert_data_eq!(
        table.replace(&format!("({done} "), "([DONE] "),
        str![[r#"
single-app:
VERSION         NAME          PHASE       STATE    BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  pre-deploy  applied  1      [..]
20260102000000  seed_admin    pre-deploy  applied  1      [..]
20260103000000  seed_items    pre-deploy  applied  1      [..]
20260104000000  walk_items    pre-deploy  pending  -      -                    [..]
4 migrations: 3 applied, 1 pending, 0 failed, 0 running, 0 unknown
  20260104000000 stopped on request at [..] UTC; resumes from its checkpoint ([DONE] documents done)
lock: free

"#]]
    );
    let history = against_server(crate_dir.path(), &db)(&["history", "--json"])
        .assert()
        .success();
    let history: serde_json::Value = serde_json::from_str(&stdout(history)).unwrap();
    let record = history
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == 20260104000000_u64)
        .unwrap();
    assert_eq!(record["status"], "running", "{record}");
    assert!(record["stoppedAt"].is_string() && record["error"].is_null(), "{record}");

    // Resumed with `--json`: stdout is the one document, progress goes to stderr.
    let resumed = against_server(crate_dir.path(), &db)(&["up", "--json"])
        .assert()
        .success();
    let out = String::from_utf8_lossy(&resumed.get_output().stdout).into_owned();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["steps"].as_array().map(Vec::len), Some(1), "{out}");
    let err = String::from_utf8_lossy(&resumed.get_output().stderr).into_owned();
    snapbox::assert_data_eq!(
        err,
        str![[r#"
  applying 20260104000000 walk_items ... 
...
  20260104000000 walk_items ok ([..])

"#]]
    );
    with_db(&db, async |db| {
        let left = db
            .collection::<mongo_migrations::bson::Document>("items")
            .count_documents(mongo_migrations::bson::doc! { "done": { "$exists": false } })
            .await
            .unwrap();
        assert_eq!(left, 0);
    });
}

#[test]
fn connection_and_migration_failures_say_one_plain_line_with_their_own_hint() {
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    let unreachable = ["--uri", "mongodb://127.0.0.1:9/x", "--connect-timeout", "1"];
    let plain = "error: cannot reach 127.0.0.1:9: connection refused\nhint: check that the server is up and --uri / MONGODB_URI points at it; --connect-timeout SECS waits longer\n";

    // `status` runs no migration code: it builds nothing, and says it plainly;
    // so does `up`, which finds the server unreachable before it builds.
    for command in ["status", "up"] {
        let stderr = stderr_of(run(&[&[command][..], &unreachable].concat()).assert().code(5));
        assert_eq!(stderr, plain, "{command}");
        // The driver's whole error is kept for --verbose.
        let stderr = stderr_of(run(&[&["-v", command][..], &unreachable].concat()).assert().code(5));
        assert!(stderr.contains("detail: Unreachable"), "{command}: {stderr}");
        assert!(!stderr.contains(" build "), "{command}: {stderr}");
    }
    // A refused connection is an answer: said in about a second, not after
    // the whole default connect timeout (10 s).
    let started = std::time::Instant::now();
    let stderr = stderr_of(run(&["status", "--uri", "mongodb://127.0.0.1:9/x"]).assert().code(5));
    assert_eq!(stderr, plain);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "refused after {:?}",
        started.elapsed()
    );
    // With work to do, `up` builds the harness; the first build is announced
    // (stderr is not a terminal here).
    // Nothing else on stderr: no warning of the harness's build.
    run(&["up"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260102000000 seed_admin ... ok ([..])
single-app: Applied 2 migrations in [..] (migration code: [..])

"#]])
        .stderr_eq(str![[r#"
building the migrations of `single-app`
built the migrations of `single-app` in [..]

"#]]);

    // A failing migration: its progress line ends, the hint names the history.
    std::fs::write(
        crate_dir.path().join("src/migrations/m20260105_000000_fails.rs"),
        "//! Fails.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(_ctx: &mut MigrationContext) -> MigrationResult {\n    Err(\"the index spec is invalid\".into())\n}\n",
    )
    .unwrap();
    run(&["up"])
        .assert()
        .code(1)
        .stdout_eq(str![[r#"
  applying 20260105000000 fails ... failed

"#]])
        .stderr_eq(str![[r#"
Updated src/migrations/mod.rs
...
error: migration 20260105000000 (fails) failed: the index spec is invalid
hint: see `cargo mongo-migrate history --status failed`

"#]]);
    // Resolved as pending, it is pending, not "rolled back": it never ran to the end.
    run(&["resolve", "20260105000000", "--pending"]).assert().success();
    let status = status_json(crate_dir.path(), &db);
    let entry = status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == 20260105000000_u64)
        .unwrap()
        .clone();
    assert_eq!(entry["state"], "pending", "{status}");
}

/// Issue 11 end to end: baseline, `check`'s exit codes, the out-of-order
/// policy, an accepted edit, and a squash recorded without running.
#[test]
fn team_workflow_baseline_check_out_of_order_accepted_edit_and_squash() {
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    let dir = crate_dir.path().join("src/migrations");

    let out = stdout(run(&["baseline", "20260101000000"]).assert().success());
    assert_eq!(
        out,
        "single-app: baselined 1 migration up to 20260101000000, recorded as applied without running (batch 1)\n"
    );
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE               BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  pre-deploy  applied (baseline)  1      [..]
20260102000000  seed_admin    pre-deploy  pending             -      -                    -
2 migrations: 1 applied, 1 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]]);
    run(&["check"]).assert().code(6).stdout_eq(str![[r#"
single-app: pending: 20260102000000 seed_admin is pending
  hint: `up` applies it
single-app: checked files and database: 0 errors, 0 need attention, 1 pending, 0 warnings

"#]]);
    run(&["up"]).assert().success();
    run(&["check"]).assert().success();

    // A branch merged late brings an older migration.
    run(&["new", "early", "--version", "20260101120000"]).assert().success();
    run(&["up"]).assert().code(4).stderr_eq(str![[r#"
error: migration 20260101120000 (early) is pending but older than 20260102000000, the newest applied migration (merged from another branch?); nothing was run. Apply it with --allow-out-of-order (or `out-of-order = "allow"`), or give it a new version
hint: see `cargo mongo-migrate status`; the README's "Team workflow" explains the policy

"#]]);
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE                   BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  pre-deploy  applied (baseline)      1      [..]
20260101120000  early         pre-deploy  pending (out of order)  -      -                    -
20260102000000  seed_admin    pre-deploy  applied                 2      [..]
3 migrations: 2 applied, 1 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]]);
    let json: serde_json::Value = serde_json::from_str(&stdout(run(&["check", "--json"]).assert().code(4))).unwrap();
    snapbox::assert_data_eq!(
        json["findings"][0]["message"].as_str().unwrap(),
        str!["20260101120000 early is pending but older than the newest applied migration (out of order)"]
    );
    run(&["up", "--allow-out-of-order"]).assert().success();
    // Rolled back where it was applied: last.
    run(&["down"]).assert().success().stdout_eq(str![[r#"
  rolling back 20260101120000 early ... ok ([..])
single-app: Rolled back 1 migration in [..] (migration code: [..])

"#]]);
    run(&["up"]).assert().success();

    // A harmless edit of an applied migration, accepted.
    let seed = dir.join("m20260102_000000_seed_admin.rs");
    std::fs::write(
        &seed,
        read(&seed)
            .replace("let (db, session)", "let (database, session)")
            .replace("db.collection", "database.collection"),
    )
    .unwrap();
    run(&["up"]).assert().code(4).stderr_eq(str![[r#"
Updated src/migrations/mod.rs
error: migration 20260102000000 (seed_admin) was edited after it was applied (checksum sha256:9e1d822ea883… then, sha256:0384a1040de9… now): restore the original file and write a new migration for the change, or accept an edit that changes nothing it did with `resolve 20260102000000 --accept-checksum`
hint: `cargo mongo-migrate status` marks every edited migration; an edit that changes nothing is a comment or a rename

"#]]);
    run(&["check"]).assert().code(4);
    run(&["resolve", "20260102000000", "--accept-checksum"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
single-app: accepted the edit of 20260102000000 seed_admin; `up` no longer refuses it

"#]]);
    run(&["up"]).assert().success();

    // Squashed: recorded without running (the scaffold's `up` would fail).
    run(&["squash", "--to", "20260102000000", "--force"]).assert().success();
    run(&["up"]).assert().success().stdout_eq(str![[r#"
single-app: Applied 1 migration in [..] (migration code: [..])
  20260102000001 squashed recorded as applied without running

"#]]);
    run(&["status"]).assert().success().stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE                         BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  -           squashed into 20260102000001  1      [..]
20260101120000  early         -           squashed into 20260102000001  4      [..]
20260102000000  seed_admin    -           squashed into 20260102000001  2      [..]
20260102000001  squashed      pre-deploy  applied                       5      [..]
4 migrations: 1 applied, 0 pending, 0 failed, 0 running, 0 unknown, 3 squashed
lock: free

"#]]);
    run(&["check"]).assert().success();
}

/// `check` reads files only, so code that does not compile passes it;
/// `check --build` compiles the migrations (running none) and fails.
#[test]
fn check_build_fails_on_migrations_that_do_not_compile() {
    let crate_dir = fixture("single");
    let broken = "//! Does not compile.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    let n: u32 = \"not a number\";\n    let _ = (ctx, n);\n    Ok(())\n}\n";
    std::fs::write(
        crate_dir.path().join("src/migrations/m20260103_000000_broken.rs"),
        broken,
    )
    .unwrap();
    let run = |args: &[&str]| cli().current_dir(crate_dir.path()).env_remove("MONGODB_URI").args(args);
    run(&["registry"]).assert().success();
    run(&["check"]).assert().success();
    run(&["check", "--build"]).assert().code(2).stdout_eq(str![[r#"
single-app: error: building the migrations of `single-app` failed
  hint: fix the errors cargo printed above
single-app: checked files only: 1 error, 0 need attention, 0 pending, 0 warnings

"#]]);
    // Fixed, and using a helper module beside the migrations: it compiles.
    let fixed = "//! Uses a helper.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    let _ = (ctx, super::common::NAME.len() as u32);\n    Ok(())\n}\n";
    let dir = crate_dir.path().join("src/migrations");
    std::fs::write(dir.join("m20260103_000000_broken.rs"), fixed).unwrap();
    std::fs::write(dir.join("common.rs"), "pub const NAME: &str = \"users\";\n").unwrap();
    run(&["registry"]).assert().success();
    run(&["check", "--build"]).assert().success();
}

/// `up` and `status` over tenant databases, listed or matched by a regex.
#[test]
fn tenants_by_list_and_by_regex_with_a_summary_table_and_json() {
    let crate_dir = fixture("single");
    let prefix = format!("mm_tenant_{}_", rand_suffix());
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let run = against_server(crate_dir.path(), "unused");
    let list = format!("{a},{b}");
    let out = stdout(
        run(&["up", "--databases", &list, "--concurrency", "2"])
            .assert()
            .success(),
    );
    assert!(out.contains(&format!("{a}  applied  2")), "{out}");
    // Progress lines of tenants running at once say whose they are.
    for db in [&a, &b] {
        for line in [
            format!("  {db}: applying 20260101000000 create_users\n"),
            format!("  {db}: 20260102000000 seed_admin ok ("),
        ] {
            assert!(out.contains(&line), "{line:?} in\n{out}");
        }
    }
    assert!(
        out.contains("2 databases: 2 applied, 0 failed, 0 locked, 0 skipped"),
        "{out}"
    );

    let regex = format!("^{prefix}");
    let out = stdout(run(&["status", "--databases-from-regex", &regex]).assert().success());
    snapbox::assert_data_eq!(
        out.replace(&prefix, "[PREFIX]"),
        str![[r#"
single-app:
DATABASE[..]APPLIED  PENDING  FAILED  RUNNING  UNKNOWN  LOCK
[PREFIX]a[..]2        0        0       0        0        free
[PREFIX]b[..]2        0        0       0        0        free
2 databases: 0 with pending migrations, 0 unreadable

"#]]
    );
    // Planned over both: nothing pending, nothing would fail.
    let out = stdout(run(&["plan", "--databases", &list]).assert().success());
    snapbox::assert_data_eq!(
        out.replace(&prefix, "[PREFIX]"),
        str![[r#"
single-app: plan over 2 databases (read only: nothing was changed)
DATABASE[..]RISK          PENDING  BLOCKING  SLOW
[PREFIX]a  safe                0         0     0
[PREFIX]b  safe                0         0     0
single-app: 0 of 2 databases would fail as things stand

"#]]
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(
        run(&["status", "--databases-from-regex", &regex, "--json"])
            .assert()
            .success(),
    ))
    .unwrap();
    assert_eq!(json[1]["database"], b.as_str());
    assert_eq!(json[1]["status"]["counts"]["applied"], 2);

    // A locked tenant: the others go on, and the exit code says "locked".
    with_db(&a, async |db| {
        use mongo_migrations::bson::{doc, DateTime, Document};
        let later = DateTime::from_millis(DateTime::now().timestamp_millis() + 60_000);
        db.collection::<Document>("migration_locks")
            .update_one(
                doc! { "_id": "migrations" },
                doc! { "$set": { "holder": { "id": "7d0f4a4e-0000-4000-8000-000000000000", "host": "elsewhere", "pid": 1_i64, "reason": "up" }, "expiresAt": later } },
            )
            .await
            .unwrap();
    });
    let out = run(&["up", "--databases", &list, "--json"]).assert().code(3);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json[0]["outcome"], "locked", "{json}");
    assert_eq!(json[1]["outcome"], "applied", "{json}");
    run(&["status", "--databases-from-regex", "("])
        .assert()
        .code(2)
        .stderr_eq(str![[r#"
error: invalid --databases-from-regex: regex parse error:
    (
    ^
error: unclosed group
hint: e.g. --databases-from-regex '^tenant_'

"#]]);
    for db in [a, b] {
        with_db(&db, async |db| db.drop().await.unwrap());
    }
}

/// `up --continue-on-error`: five migrations, the second and the fourth
/// failing (both `INDEPENDENT`): the rest applied, both failures recorded and
/// listed, exit 1; the next `up` is refused by the failed records, and
/// nothing is applied twice.
#[test]
fn up_continue_on_error_goes_past_independent_failures_and_lists_them() {
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    let dir = crate_dir.path().join("src/migrations");
    let failing = |what: &str| {
        format!(
            "//! Fails.\n\nuse mongo_migrations::prelude::*;\n\npub const INDEPENDENT: bool = true;\n\npub async fn up(_ctx: &mut MigrationContext) -> MigrationResult {{\n    Err(\"the {what} one fails\".into())\n}}\n"
        )
    };
    std::fs::write(dir.join("m20260101_120000_fails_second.rs"), failing("second")).unwrap();
    std::fs::write(dir.join("m20260102_120000_fails_fourth.rs"), failing("fourth")).unwrap();
    std::fs::write(
        dir.join("m20260103_000000_last.rs"),
        "//! Last.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    ctx.db()?.collection::<Document>(\"last\").insert_one(doc! { \"_id\": 1 }).await?;\n    Ok(())\n}\n",
    )
    .unwrap();

    run(&["up", "--continue-on-error"])
        .assert()
        .code(1)
        .stdout_eq(str![[r#"
  applying 20260101000000 create_users ... ok ([..])
  applying 20260101120000 fails_second ... failed, recorded; going on: the second one fails
  applying 20260102000000 seed_admin ... ok ([..])
  applying 20260102120000 fails_fourth ... failed, recorded; going on: the fourth one fails
  applying 20260103000000 last ... ok ([..])

"#]])
        .stderr_eq(str![[r#"
Updated src/migrations/mod.rs
...
error: 2 migrations failed; the run went on with the others (continue on error) (recorded in this run: 20260101000000, 20260102000000, 20260103000000): 20260101120000 (fails_second): the second one fails; 20260102120000 (fails_fourth): the fourth one fails
hint: see `cargo mongo-migrate history --status failed`

"#]]);
    let status = status_json(crate_dir.path(), &db);
    assert_eq!(status["counts"]["applied"], 3, "{status}");
    assert_eq!(status["counts"]["failed"], 2, "{status}");

    // Refused by the failed records, with the option or without: nothing twice.
    run(&["up"]).assert().code(4);
    run(&["up", "--continue-on-error"]).assert().code(4);
    with_db(&db, async |db| {
        let last = db
            .collection::<mongo_migrations::bson::Document>("last")
            .count_documents(mongo_migrations::bson::doc! {})
            .await
            .unwrap();
        assert_eq!(last, 1);
    });
}

/// A migration file that does not parse stops `up` and the dry-runs, but
/// not the reads an operator needs during an incident: `status`, `history`
/// and `lock-status` answer, list it by its file name, and name the file.
#[test]
fn status_answers_while_a_migration_file_does_not_parse() {
    let crate_dir = fixture("single");
    let db = database();
    let run = against_server(crate_dir.path(), &db);
    run(&["up"]).assert().success();
    std::fs::write(
        crate_dir.path().join("src/migrations/m20260103_000000_broken.rs"),
        "//! Broken.\n\nuse mongo_migrations::prelude::*;\n\npub async fn up(ctx: &mut MigrationContext) -> MigrationResult {\n    let x = ;\n}\n",
    )
    .unwrap();
    for command in [&["history"][..], &["lock-status"][..]] {
        run(command).assert().success().stderr_eq(str![[r#"
warning: src/migrations/m20260103_000000_broken.rs:6:13: expected an expression; it is listed by its file name

"#]]);
    }
    run(&["status"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
single-app:
VERSION         NAME          PHASE       STATE    BATCH  APPLIED AT (UTC)     TIME
20260101000000  create_users  pre-deploy  applied  1      [..]
20260102000000  seed_admin    pre-deploy  applied  1      [..]
20260103000000  broken        pre-deploy  pending  -      -                    -
3 migrations: 2 applied, 1 pending, 0 failed, 0 running, 0 unknown
lock: free

"#]])
        .stderr_eq(str![[r#"
warning: src/migrations/m20260103_000000_broken.rs:6:13: expected an expression; it is listed by its file name

"#]]);
    // What would run or change anything is refused until the file is fixed.
    run(&["up", "--dry-run"]).assert().code(2);
    run(&["down", "--dry-run"]).assert().code(2);
}
