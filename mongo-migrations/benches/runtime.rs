//! Runtime benchmarks against the server in `MONGODB_URI` (see BENCHMARKS.md):
//! applying 1,000 no-op migrations and the round trips each costs, the lock
//! cycle, and 16 concurrent runners.
//!
//! `scripts/test-server run cargo bench -p mongo-migrations --bench runtime`

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongo_migrations::mongodb::event::command::CommandEvent;
use mongo_migrations::mongodb::event::EventHandler;
use mongo_migrations::mongodb::options::ClientOptions;
use mongo_migrations::mongodb::Client;
use mongo_migrations::{
    BoxFuture, Config, Error, Migration, MigrationContext, MigrationResult, Migrator, Registry, UpOptions, Version,
};

fn noop(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async { Ok(()) })
}

fn migrations(n: usize) -> Vec<Migration> {
    let base = chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    (0..n)
        .map(|i| {
            let at = base + chrono::Duration::seconds(i as i64);
            let version = Version::parse(&at.format("%Y%m%d%H%M%S").to_string()).unwrap();
            Migration::new(version, format!("noop_{i}"), noop).with_checksum(format!("sha256:{i}"))
        })
        .collect()
}

/// Commands sent through one client: counts by name, and each reply's
/// latency keyed by command and collection (`findAndModify migration_locks`).
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<Monitor>>);

#[derive(Default)]
struct Monitor {
    counts: BTreeMap<String, usize>,
    started: HashMap<i32, String>,
    latencies: BTreeMap<String, Vec<Duration>>,
}

impl Counter {
    fn total(&self) -> usize {
        self.0.lock().unwrap().counts.values().sum()
    }
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.0.lock().unwrap().counts)
    }
    fn take_latencies(&self) -> BTreeMap<String, Vec<Duration>> {
        std::mem::take(&mut self.0.lock().unwrap().latencies)
    }
    fn record(&self, event: CommandEvent) {
        let mut m = self.0.lock().unwrap();
        match event {
            CommandEvent::Started(e) => {
                // A command's first field names its collection.
                let key = match e.command.get_str(&e.command_name) {
                    Ok(coll) => format!("{} {coll}", e.command_name),
                    Err(_) => e.command_name.clone(),
                };
                *m.counts.entry(e.command_name).or_default() += 1;
                m.started.insert(e.request_id, key);
            }
            CommandEvent::Succeeded(e) => {
                if let Some(key) = m.started.remove(&e.request_id) {
                    m.latencies.entry(key).or_default().push(e.duration);
                }
            }
            CommandEvent::Failed(e) => {
                m.started.remove(&e.request_id);
            }
            _ => {}
        }
    }
}

async fn client(uri: &str, counter: &Counter) -> Client {
    let mut options = ClientOptions::parse(uri).await.unwrap();
    let c = counter.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| c.record(event)));
    Client::with_options(options).unwrap()
}

/// p50, p95 and max of `times`, sorted in place.
fn percentiles(times: &mut [Duration]) -> String {
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    format!("p50 {:?}, p95 {:?}, max {:?}", pct(50), pct(95), times[times.len() - 1])
}

fn db_name(label: &str) -> String {
    format!("mm_bench_{label}_{}", std::process::id())
}

async fn apply_1000(uri: &str) {
    let n = 1_000;
    let counter = Counter::default();
    let client = client(uri, &counter).await;
    let name = db_name("apply");
    let migrator = Migrator::new(
        client.clone(),
        &name,
        Registry::new(migrations(n)).unwrap(),
        Config::default(),
    );
    // A run with nothing pending is the fixed cost every run pays.
    let empty = Migrator::new(client.clone(), &name, Registry::new(vec![]).unwrap(), Config::default());
    empty.up(UpOptions::default()).await.unwrap();
    counter.take();
    empty.up(UpOptions::default()).await.unwrap();
    let fixed = counter.take();
    let fixed_total: usize = fixed.values().sum();

    counter.take_latencies();
    let start = Instant::now();
    let report = migrator.up(UpOptions::default()).await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(report.steps.len(), n);
    let run = counter.take();
    let mut latencies = counter.take_latencies();
    let in_commands: Duration = latencies.values().flatten().sum();
    let slowest: Vec<(String, Duration)> = {
        let mut all: Vec<(String, Duration)> = latencies
            .iter()
            .flat_map(|(k, v)| v.iter().map(move |d| (k.clone(), *d)))
            .collect();
        all.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        all.truncate(3);
        all
    };
    println!(
        "  in commands (the driver's timings, summed): {:.2} s; slowest: {slowest:?}",
        in_commands.as_secs_f64()
    );
    let mut step_p50 = None;
    if let Some(steps) = latencies.get_mut("update migrations") {
        println!(
            "  step writes (update migrations), as the driver timed them: {}",
            percentiles(steps)
        );
        step_p50 = Some(steps[steps.len() / 2]);
    }
    let run_total: usize = run.values().sum();
    println!(
        "apply {n} no-op migrations: {:.2} s ({:.2} ms each)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "  round trips: {run_total} in all, {fixed_total} fixed per run, {:.2} per migration",
        (run_total - fixed_total) as f64 / n as f64
    );
    println!("  per command: {run:?}");
    println!("  fixed cost (nothing pending): {fixed:?}");
    client.database(&name).drop().await.unwrap();

    // The floor: one acknowledged majority write per migration and nothing else.
    let coll = client
        .database(&name)
        .collection_with_options::<mongo_migrations::bson::Document>(
            "floor",
            mongo_migrations::mongodb::options::CollectionOptions::builder()
                .write_concern(mongo_migrations::mongodb::options::WriteConcern::majority())
                .build(),
        );
    let start = Instant::now();
    for i in 0..n {
        coll.insert_one(mongo_migrations::bson::doc! { "version": i as i64 })
            .await
            .unwrap();
    }
    let floor = start.elapsed();
    println!(
        "  floor (one insert_one per migration, majority): {:.2} s; migrator / floor = {:.2}",
        floor.as_secs_f64(),
        elapsed.as_secs_f64() / floor.as_secs_f64()
    );
    client.database(&name).drop().await.unwrap();

    // The floor of the step write (issue 20): the minimal journaled
    // two-statement conditional `update` of the same shape, by a uniquely
    // indexed version, through the same driver, one per migration.
    let db = client.database(&name);
    let tracking = db.collection::<mongo_migrations::bson::Document>("step_floor");
    tracking
        .create_index(
            mongo_migrations::mongodb::IndexModel::builder()
                .keys(mongo_migrations::bson::doc! { "version": 1 })
                .options(
                    mongo_migrations::mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    // Its records are created in one journaled command, as the migrator's
    // claim creates them: timed apart, and then with the loop.
    let docs: Vec<_> = (0..=n as i64)
        .map(|i| mongo_migrations::bson::doc! { "version": i, "status": "planned" })
        .collect();
    let created = Instant::now();
    tracking
        .insert_many(docs)
        .write_concern(
            mongo_migrations::mongodb::options::WriteConcern::builder()
                .w(mongo_migrations::mongodb::options::Acknowledgment::Majority)
                .journal(true)
                .build(),
        )
        .await
        .unwrap();
    let created = created.elapsed();
    counter.take_latencies();
    let start = Instant::now();
    for i in 0..n as i64 {
        let now = mongo_migrations::bson::DateTime::now();
        let command = mongo_migrations::bson::doc! {
            "update": "step_floor",
            "updates": [
                { "q": { "version": i, "status": "running" }, "u": { "$set": { "status": "completed", "updatedAt": now } } },
                { "q": { "version": i + 1, "status": "planned" }, "u": { "$set": { "status": "running", "updatedAt": now } } },
            ],
            "ordered": true,
            "writeConcern": { "w": "majority", "j": true },
        };
        db.run_command(command).await.unwrap();
    }
    let step_floor = start.elapsed();
    let mut latencies = counter.take_latencies();
    let floor_times = latencies.get_mut("update step_floor").expect("timed");
    let floor_p = percentiles(floor_times);
    let floor_p50 = floor_times[floor_times.len() / 2];
    println!(
        "  step floor (minimal journaled two-statement update per migration): {:.2} s ({floor_p}); migrator / step floor = {:.2}; step write p50 / floor p50 = {:.2}",
        step_floor.as_secs_f64(),
        elapsed.as_secs_f64() / step_floor.as_secs_f64(),
        step_p50.map_or(0.0, |p| p.as_secs_f64() / floor_p50.as_secs_f64()),
    );
    println!(
        "  with its {} records created first, as the claim creates them ({:.2} s): {:.2} s; migrator / that = {:.2}",
        n + 1,
        created.as_secs_f64(),
        (created + step_floor).as_secs_f64(),
        elapsed.as_secs_f64() / (created + step_floor).as_secs_f64(),
    );
    client.database(&name).drop().await.unwrap();
}

/// A migrator over `n` no-op migrations on its own connection pool, as another process would have.
async fn runner(uri: &str, name: &str, n: usize) -> Migrator {
    Migrator::connect(
        uri,
        Some(name),
        Registry::new(migrations(n)).unwrap(),
        Config::default(),
    )
    .await
    .unwrap()
}

/// 8 runners wait (`with_lock_wait`) for one that applies 200 migrations:
/// how long after the holder returns the last waiter returns.
async fn waiters(uri: &str) {
    let (runners, n) = (8, 200);
    let name = db_name("wait");
    let mut tasks = Vec::new();
    for _ in 0..runners {
        let migrator = runner(uri, &name, n).await.with_lock_wait(Duration::from_secs(60));
        tasks.push(tokio::spawn(async move {
            let report = migrator.up(UpOptions::default()).await.unwrap();
            (report.steps.len(), Instant::now())
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap());
    }
    let holder = done
        .iter()
        .find(|(steps, _)| *steps == n)
        .expect("one runner applied everything")
        .1;
    let last = done.iter().map(|(_, at)| *at).max().unwrap();
    println!(
        "{runners} waiting runners, {n} migrations: the last returned {:?} after the holder",
        last.saturating_duration_since(holder)
    );
    let (client, _) = mongo_migrations::connect(uri, Some(&name)).await.unwrap();
    client.database(&name).drop().await.unwrap();
}

async fn lock_cycle(uri: &str) {
    let counter = Counter::default();
    let client = client(uri, &counter).await;
    let name = db_name("lock");
    let migrator = Migrator::new(client.clone(), &name, Registry::new(vec![]).unwrap(), Config::default());
    migrator.up(UpOptions::default()).await.unwrap();
    let runs = 200;
    let mut times = Vec::with_capacity(runs);
    counter.take();
    for _ in 0..runs {
        let start = Instant::now();
        migrator.up(UpOptions::default()).await.unwrap();
        times.push(start.elapsed());
    }
    println!(
        "up with nothing pending (reads only, no lock), {runs} runs: {}, {} round trips each",
        percentiles(&mut times),
        counter.total() / runs
    );
    // One no-op migration applied and rolled back: each run takes and frees the lock.
    let one = Registry::new(vec![migrations(1).remove(0).with_down(noop)]).unwrap();
    let migrator = Migrator::new(client.clone(), &name, one, Config::default());
    let mut times = Vec::with_capacity(runs);
    counter.take();
    counter.take_latencies();
    for _ in 0..runs / 2 {
        for down in [false, true] {
            let start = Instant::now();
            if down {
                migrator.down(mongo_migrations::DownOptions::default()).await.unwrap();
            } else {
                migrator.up(UpOptions::default()).await.unwrap();
            }
            times.push(start.elapsed());
        }
    }
    println!(
        "lock cycle (one migration up or down), {runs} runs: {}, {} round trips each",
        percentiles(&mut times),
        counter.total() / runs
    );
    // The lock's own commands, as the driver timed them (send to reply).
    let lock = Config::default().lock_collection;
    let mut latencies = counter.take_latencies();
    for (label, key, per_run) in [
        ("acquire", format!("findAndModify {lock}"), 1),
        ("proof and release", format!("update {lock}"), 2),
    ] {
        let times = latencies.get_mut(&key).expect("the lock commands were monitored");
        assert_eq!(times.len(), runs * per_run, "{per_run} {label} per run");
        println!("  lock {label} ({key}): {}", percentiles(times));
    }
    client.database(&name).drop().await.unwrap();
}

async fn concurrent(uri: &str) {
    let (runners, n) = (16, 200);
    let name = db_name("race");
    let applied = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..runners {
        let migrator = runner(uri, &name, n).await;
        let applied = applied.clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            loop {
                match migrator.up(UpOptions::default()).await {
                    Ok(report) => {
                        applied.fetch_add(report.steps.len(), Ordering::SeqCst);
                        return refused;
                    }
                    Err(Error::Locked { .. }) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(
        applied.load(Ordering::SeqCst),
        n,
        "a migration was applied twice or not at all"
    );
    println!(
        "{runners} concurrent runners, {n} migrations: all done in {:.2} s, each applied once, {refused} refused lock attempts",
        elapsed.as_secs_f64()
    );
    let (client, _) = mongo_migrations::connect(uri, Some(&name)).await.unwrap();
    client.database(&name).drop().await.unwrap();
}

fn main() {
    let uri = std::env::var("MONGODB_URI").expect("set MONGODB_URI, e.g. `scripts/test-server run cargo bench`");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `RUNTIME_BENCH=apply` runs only the first, for a quick comparison.
    let only_apply = std::env::var("RUNTIME_BENCH").is_ok_and(|b| b == "apply");
    runtime.block_on(async {
        apply_1000(&uri).await;
        if only_apply {
            return;
        }
        lock_cycle(&uri).await;
        waiters(&uri).await;
        concurrent(&uri).await;
    });
}
