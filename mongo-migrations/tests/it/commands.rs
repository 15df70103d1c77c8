//! How many commands a run sends besides the migrations' own work, counted
//! by the test proxy (every command of every connection, the driver's
//! handshakes and monitoring aside: those are `hello`/`isMaster` on
//! connections of their own, and `endSessions`, left out; the lock's
//! refreshes, which depend on time, counted apart). Issue 33's budget: a
//! run with work at most 10 commands besides the migrations' own and one
//! step write each; `up` with nothing to do at most 6. Now, on a database
//! that has run before: the lock's read, the records' read, the `$$NOW`
//! probe, the lock taken, the claims, the first migration's start, the
//! proof after the claims and the release (8); the very first run makes the
//! tracking indexes, fences and reads the records under the lock too (12).
//! With nothing to do: the two reads.

use crate::common::proxy::Proxy;
use crate::common::*;
use mongo_migrations::{Migrator, Registry, UpOptions};

/// The commands the runtime sent, but for the lock's refreshes (`update`
/// of the lock collection): a heartbeat, and a proof after an answer that
/// came slowly, depend on time (a loaded machine sends more), so they are
/// counted apart. Returns the count, the refreshes, and a tally.
fn counted(commands: &[(String, String)]) -> (usize, usize, String) {
    let own: Vec<&(String, String)> = commands
        .iter()
        .filter(|(c, _)| !matches!(c.as_str(), "hello" | "isMaster" | "ismaster" | "endSessions"))
        .collect();
    let refreshes = own
        .iter()
        .filter(|(c, target)| c == "update" && target == "migration_locks")
        .count();
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for (c, target) in &own {
        *tally.entry(format!("{c} {target}")).or_default() += 1;
    }
    (own.len() - refreshes, refreshes, format!("{tally:?}"))
}

/// A migrator over `migrations` on `client` (the proxy's), in `t`'s database.
fn over(
    client: &mongo_migrations::mongodb::Client,
    t: &TestDb,
    migrations: Vec<mongo_migrations::Migration>,
) -> Migrator {
    Migrator::new(
        client.clone(),
        &t.name,
        Registry::new(migrations).unwrap(),
        Default::default(),
    )
}

#[tokio::test]
async fn a_run_sends_few_commands_besides_its_migrations() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let (client, _) = mongo_migrations::connect(&proxy.uri, Some(&t.name)).await.unwrap();
    proxy.take_targeted();
    let migrator = over(&client, &t, three());
    let report = migrator.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 3);
    let (with_work, refreshes, tally) = counted(&proxy.take_targeted());
    eprintln!("up of 3 migrations: {with_work} commands and {refreshes} lock refreshes {tally}");
    // Each migration inserts twice (`three()`), and has one step write;
    // the run's own commands, but for the lock's refreshes: the proof after
    // the claims and the release are two (a loaded machine adds heartbeats
    // and proofs after slow answers). A new database has no lock document
    // to prove the records current, so this first run fences and reads them
    // again (10, 12 with the two).
    let besides = with_work - 3 * 2 - 3;
    assert!(
        besides <= 10,
        "{besides} commands besides the migrations' own and the lock's refreshes: {tally}"
    );
    assert!(refreshes >= 2, "no proof after the claims, or no release: {tally}");
    let nothing = migrator.up(UpOptions::default()).await.unwrap();
    assert!(nothing.steps.is_empty());
    let (idle, refreshes, tally) = counted(&proxy.take_targeted());
    eprintln!("up with nothing to do: {idle} commands {tally}");
    assert!(idle + refreshes <= 2, "{idle} commands for nothing to do: {tally}");

    // A new migration on a database that has run before: the lock says the
    // tracking indexes exist, and that nobody held it since the records
    // were read, so neither is asked again and nothing is fenced.
    let mut four = three();
    four.push(reversible("20260104000000", "fourth"));
    let again = over(&client, &t, four);
    let report = again.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 1);
    let (with_work, refreshes, tally) = counted(&proxy.take_targeted());
    eprintln!("up of a 4th migration: {with_work} commands and {refreshes} lock refreshes {tally}");
    let besides = with_work - 2 - 1;
    assert!(
        besides <= 6,
        "{besides} commands besides the migration's own and the lock's refreshes: {tally}"
    );
    assert!(refreshes >= 2, "no proof after the claims, or no release: {tally}");
    assert!(!tally.contains("Indexes"), "indexes made again: {tally}");
    assert!(
        tally.contains("\"find migrations\": 1,"),
        "the records read again under the lock: {tally}"
    );
    migrator.shutdown().await;
    t.drop_db().await;
}

/// What one process read before the lock, handed to another (the CLI's
/// check to the harness), is not read again: the run starts from it, and
/// the lock proves it current.
#[tokio::test]
async fn a_state_read_by_another_process_is_not_read_again() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&uri()).await;
    let (client, _) = mongo_migrations::connect(&proxy.uri, Some(&t.name)).await.unwrap();
    let first = over(&client, &t, three()[..1].to_vec());
    first.up(UpOptions::default()).await.unwrap();
    // The check: it reads, finds work, hands on what it read.
    let check = over(&client, &t, three());
    assert!(check.up_settled(UpOptions::default()).await.unwrap().is_none());
    let state = check.state_read().expect("a read to hand on");
    proxy.take_targeted();
    let harness = over(&client, &t, three()).with_state_read(Some(state));
    let report = harness.up(UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 2);
    let (_, _, tally) = counted(&proxy.take_targeted());
    assert!(!tally.contains("find migration"), "read again: {tally}");
    assert!(!tally.contains("Indexes"), "indexes made again: {tally}");
    first.shutdown().await;
    t.drop_db().await;
}

/// A state handed on that is stale is not trusted: another runner rolled
/// back what it shows applied, which no claim of the next run would meet.
/// The lock's generation shows it, the records are read again under the
/// lock, and the run applies what is pending now.
#[tokio::test]
async fn a_stale_state_handed_on_is_read_again_under_the_lock() {
    let t = TestDb::new().await;
    t.migrator(three()[..1].to_vec())
        .up(UpOptions::default())
        .await
        .unwrap();
    let check = t.migrator(three());
    assert!(check.up_settled(UpOptions::default()).await.unwrap().is_none());
    let state = check.state_read().expect("a read to hand on");
    // Another runner rolls back the one applied meanwhile.
    t.migrator(three()[..1].to_vec())
        .down(mongo_migrations::DownOptions::default())
        .await
        .unwrap();
    let report = t
        .migrator(three())
        .with_state_read(Some(state))
        .up(UpOptions::default())
        .await
        .unwrap();
    let ran: Vec<String> = report.steps.iter().map(|s| s.version.to_string()).collect();
    assert_eq!(ran, ["20260101000000", "20260102000000", "20260103000000"]);
    t.drop_db().await;
}
