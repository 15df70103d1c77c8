//! Connecting, what the server can do, and the server's clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongodb::options::{ClientOptions, CollectionOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Database};
use tokio::sync::OnceCell;

use crate::error::plain;
use crate::retry::Retry;
use crate::Error;

/// The lock and the tracking records must survive a failover and a crash:
/// a lock write acknowledged by one member only could be rolled back, and
/// two runners would then both hold the lock; one acknowledged before it
/// reached the journal can vanish when the server is killed. Majority
/// writes with the journal, and majority reads, prevent both, whatever the
/// server's `writeConcernMajorityJournalDefault`.
pub(crate) fn durable(db: &Database, name: &str) -> mongodb::Collection<Document> {
    // From the primary whatever the URI's `readPreference`: the run
    // protocol reads the lock, then the records, and plans from what the
    // two say together; a secondary behind the primary would say less.
    let options = CollectionOptions::builder()
        .write_concern(journaled())
        .read_concern(ReadConcern::majority())
        .selection_criteria(mongodb::options::SelectionCriteria::ReadPreference(
            mongodb::options::ReadPreference::Primary,
        ))
        .build();
    db.collection_with_options(name, options)
}

/// How long a protocol write waits for the majority (`wtimeout`). Without
/// one, a write to a replica set that lost its majority (a PSA set with its
/// secondary down) waits until the client gives up and reports a lost
/// server, while the write may still commit later; with it, the server
/// answers `writeConcernError` code 64 (`WriteConcernFailed`, `errInfo:
/// {wtimeout: true}`; `src/mongo/db/write_concern.cpp`) and the run stops
/// in plain words.
pub(crate) const MAJORITY_WAIT: Duration = Duration::from_secs(15);

/// `{w: "majority", j: true, wtimeout: 15000}`.
pub(crate) fn journaled() -> WriteConcern {
    WriteConcern::builder()
        .w(mongodb::options::Acknowledgment::Majority)
        .journal(true)
        .w_timeout(MAJORITY_WAIT)
        .build()
}

/// [`journaled`] as a command's `writeConcern` field.
pub(crate) fn journaled_doc() -> Document {
    doc! { "w": "majority", "j": true, "wtimeout": MAJORITY_WAIT.as_millis() as i64 }
}

#[cfg(test)]
mod write_concern_tests {
    #[test]
    fn protocol_writes_wait_for_the_majority_a_bounded_time() {
        assert_eq!(super::journaled_doc().get_i64("wtimeout"), Ok(15_000));
        assert_eq!(super::journaled().w_timeout, Some(super::MAJORITY_WAIT));
    }
}

/// How long [`connect`] waits for a server by default (the driver's own
/// default is 30 s; a CLI user should hear sooner).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses the URI, connects, and greets the server (`hello`), waiting up to 10 s
/// for a server. Returns the client and database name.
pub async fn connect(uri: &str, database: Option<&str>) -> Result<(Client, String), Error> {
    connect_within(uri, database, CONNECT_TIMEOUT).await
}

/// Checks a URI and the database a run would use, before anything
/// connects: the URI parses, and `database` (or else the URI's path) names
/// a database that can be one: the rule of
/// [`check_database_name`](crate::check_database_name), the tenants' too (no
/// `/\. "$*<>:|?` or NUL, at most 63 bytes, not `admin`, `local` or
/// `config`). Returns that name. [`connect`] checks with it first; a CLI
/// calls it to refuse bad input before it builds anything.
pub fn check_target(uri: &str, database: Option<&str>) -> Result<String, Error> {
    let parsed = mongodb::options::ConnectionString::parse(uri).map_err(|source| Error::InvalidUri {
        message: plain(&source),
        source: Box::new(source),
    })?;
    let name = database
        .map(str::to_string)
        .or(parsed.default_database)
        .filter(|n| !n.is_empty())
        .ok_or(Error::MissingDatabase)?;
    crate::check_database_name(&name)?;
    Ok(name)
}

/// [`connect`], waiting up to `timeout` for a server (unless the URI sets
/// `serverSelectionTimeoutMS`).
pub async fn connect_within(uri: &str, database: Option<&str>, timeout: Duration) -> Result<(Client, String), Error> {
    let (client, name, _) = connect_greeted(uri, database, timeout).await?;
    Ok((client, name))
}

/// [`connect_within`], with the server's answer to the `hello` it was
/// greeted with: the migrator's probe starts from it.
pub(crate) async fn connect_greeted(
    uri: &str,
    database: Option<&str>,
    timeout: Duration,
) -> Result<(Client, String, Hello), Error> {
    let name = check_target(uri, database)?;
    let (client, hello) = greeted_within(uri, timeout).await?;
    Ok((client, name, hello))
}

/// A server's answer to `hello`, and when it was asked.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    reply: Document,
    sent: Instant,
    half_trip: Duration,
}

impl Hello {
    /// Asks `client`'s server.
    async fn ask(client: &Client) -> Result<Self, mongodb::error::Error> {
        let sent = Instant::now();
        let reply = client.database("admin").run_command(doc! { "hello": 1 }).await?;
        Ok(Hello {
            reply,
            half_trip: sent.elapsed() / 2,
            sent,
        })
    }
}

/// A client of the server at `uri`, greeted (`hello`)
/// within `timeout`: [`connect_within`] without the check of a run's target,
/// for a client that reads the server (the tenants' `listDatabases`).
#[cfg(feature = "cli")]
pub(crate) async fn client_within(uri: &str, timeout: Duration) -> Result<Client, Error> {
    Ok(greeted_within(uri, timeout).await?.0)
}

/// [`client_within`], with the server's answer to `hello`: the first
/// command, which checks the connection as a `ping` would (and the
/// credentials, which every connection's handshake presents) and tells the
/// migrator's probe the server's clock and kind.
async fn greeted_within(uri: &str, timeout: Duration) -> Result<(Client, Hello), Error> {
    let mut options = ClientOptions::parse(uri).await.map_err(|source| Error::InvalidUri {
        message: plain(&source),
        source: Box::new(source),
    })?;
    options.server_selection_timeout.get_or_insert(timeout);
    options.app_name.get_or_insert_with(|| "mongo-migrate".into());
    // A run is seconds to minutes of commands that each say when a member
    // stepped down (the driver then checks it at once): the streaming
    // monitor's extra connection and awaited `hello`s cost more commands
    // than they save it. The URI's `serverMonitoringMode` wins.
    options
        .server_monitoring_mode
        .get_or_insert(mongodb::options::ServerMonitoringMode::Poll);
    let hosts = options.hosts.clone();
    let waited = options.server_selection_timeout.unwrap_or(timeout);
    let client = Client::with_options(options).map_err(|source| Error::InvalidUri {
        message: plain(&source),
        source: Box::new(source),
    })?;
    // A reply lost in the handshake or the greeting is a transient fault like
    // any other: tried again within the connect timeout.
    // (Not a server that cannot be selected: that already waited as long.)
    let started = Instant::now();
    let greeting = async {
        loop {
            match Hello::ask(&client).await {
                Ok(hello) => return Ok(hello),
                Err(e)
                    if crate::retry::is_transient(&e)
                        && !matches!(*e.kind, mongodb::error::ErrorKind::ServerSelection { .. })
                        && started.elapsed() < waited =>
                {
                    tokio::time::sleep(crate::retry::jitter(Duration::from_millis(200))).await;
                }
                Err(e) => return Err(e),
            }
        }
    };
    // Every host refusing the connection, twice a second apart, is an
    // answer: no need to wait out the whole timeout in silence.
    let failed = tokio::select! {
        greeted = greeting => match greeted {
            Ok(hello) => return Ok((client, hello)),
            Err(e) => e,
        },
        () = refused_everywhere(&hosts) => {
            shutdown(client).await;
            return Err(Error::Unreachable {
                hosts: hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                cause: "connection refused".into(),
                source: Box::new(mongodb::error::Error::custom("every host refused the connection")),
            });
        }
    };
    // Not left to drop as the caller's runtime ends (see `Migrator::shutdown`).
    shutdown(client).await;
    match failed {
        source if is_auth_failure(&source) => Err(Error::AuthFailed {
            message: plain(&source),
            source: Box::new(source),
        }),
        source if matches!(*source.kind, mongodb::error::ErrorKind::ServerSelection { .. }) => {
            let (hosts, cause) = why_unreachable(&hosts, waited).await;
            Err(Error::Unreachable {
                hosts,
                cause,
                source: Box::new(source),
            })
        }
        e => Err(e.into()),
    }
}

/// Closes `client`'s connections and ends the driver's background work
/// before the caller's runtime ends (see [`Migrator::shutdown`](crate::Migrator::shutdown)):
/// waits at most 5 s for open cursors and sessions, then closes them at once.
pub(crate) async fn shutdown(client: Client) {
    const WAIT: Duration = Duration::from_secs(5);
    if tokio::time::timeout(WAIT, client.clone().shutdown()).await.is_err() {
        client.shutdown().immediate(true).await;
    }
}

fn is_auth_failure(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::Authentication { .. } => true,
        // AuthenticationFailed, Unauthorized.
        ErrorKind::Command(c) => matches!(c.code, 18 | 13),
        _ => false,
    }
}

/// Completes once every host of `hosts` has refused a TCP connection at two
/// probes a second apart (a server that is down, not one still starting
/// for longer); never, if any host is not a TCP address or answers.
async fn refused_everywhere(hosts: &[mongodb::options::ServerAddress]) {
    let refused = async |host: &mongodb::options::ServerAddress| match host {
        mongodb::options::ServerAddress::Tcp { host, port } => {
            let address = format!("{host}:{}", port.unwrap_or(27017));
            matches!(
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&address)).await,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        }
        _ => false,
    };
    let mut streak = 0;
    loop {
        let mut all = !hosts.is_empty();
        for host in hosts {
            all = all && refused(host).await;
        }
        streak = if all { streak + 1 } else { 0 };
        if streak == 2 {
            return;
        }
        if !all
            && streak == 0
            && !hosts
                .iter()
                .all(|h| matches!(h, mongodb::options::ServerAddress::Tcp { .. }))
        {
            return std::future::pending().await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Why no server could be selected, in words: a plain TCP connection to
/// each host tells a refused connection or an unknown host from a server
/// that answers but does not fit the URI (replica set name, TLS).
async fn why_unreachable(hosts: &[mongodb::options::ServerAddress], waited: Duration) -> (String, String) {
    let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    let probe = Duration::from_secs(2).min(waited);
    let mut causes = Vec::new();
    for host in hosts {
        let cause = match host {
            mongodb::options::ServerAddress::Tcp { host, port } => {
                let address = format!("{host}:{}", port.unwrap_or(27017));
                match tokio::time::timeout(probe, tokio::net::TcpStream::connect(&address)).await {
                    Err(_) => Some("no answer (timed out)".to_string()),
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        Some("connection refused".to_string())
                    }
                    Ok(Err(e)) => Some(e.to_string()),
                    Ok(Ok(_)) => None,
                }
            }
            _ => None,
        };
        causes.extend(cause);
    }
    causes.dedup();
    let cause = match causes.as_slice() {
        [only] if causes.len() == hosts.len() => only.clone(),
        _ => format!(
            "no usable server within {} (a server answers, but not as the URI expects: check `replicaSet`, TLS and credentials)",
            match waited.as_millis() {
                ms @ 0..1000 => format!("{ms} ms"),
                _ => format!("{} s", waited.as_secs()),
            }
        ),
    };
    (names.join(", "), cause)
}

/// Replica set members and mongos routers support transactions; standalone servers do not.
pub async fn supports_transactions(client: &Client) -> Result<bool, Error> {
    let hello: Document = client.database("admin").run_command(doc! { "hello": 1 }).await?;
    Ok(hello_supports_transactions(&hello))
}

fn hello_supports_transactions(hello: &Document) -> bool {
    let replica_set = hello.get_str("setName").is_ok();
    let mongos = hello.get_str("msg") == Ok("isdbgrid");
    let sessions = hello.contains_key("logicalSessionTimeoutMinutes");
    (replica_set || mongos) && sessions
}

/// The server's time, as lock expiry is decided by it and never by a
/// runner's own clock, which may be minutes off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// `$$NOW` compares correctly in `$expr` on this server (MongoDB 4.2+):
    /// the lock is taken and refreshed by the server's time itself.
    pub(crate) has_now: bool,
    /// The server's `hello.localTime` when `at` was read, in milliseconds.
    server_ms: i64,
    at: Instant,
}

impl Clock {
    /// The server's time now, estimated from its `hello.localTime` and this
    /// process's monotonic clock (so a wrong or stepped wall clock here does
    /// not matter). Off by at most half the round trip that read it.
    pub(crate) fn now(&self) -> bson::DateTime {
        let elapsed = i64::try_from(self.at.elapsed().as_millis()).unwrap_or(i64::MAX);
        bson::DateTime::from_millis(self.server_ms.saturating_add(elapsed))
    }

    /// `now() + d`.
    pub(crate) fn after(&self, d: Duration) -> bson::DateTime {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        bson::DateTime::from_millis(self.now().timestamp_millis().saturating_add(ms))
    }
}

/// What the runtime needs to know of the server, asked once per migrator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Info {
    pub(crate) clock: Clock,
    pub(crate) transactions: bool,
    /// A `mongos` router (`hello.msg: "isdbgrid"`): its `$$NOW` and
    /// `localTime` are the router's own clock.
    pub(crate) mongos: bool,
}

/// A database and what its server can do, probed on first use and shared by clones.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    db: Database,
    info: Arc<OnceCell<Info>>,
    /// The `hello` the connection was greeted with, for the probe.
    greeted: Arc<std::sync::Mutex<Option<Hello>>>,
    /// How the run protocol's commands are retried over transient faults.
    pub(crate) retry: Retry,
}

impl Server {
    pub(crate) fn new(db: Database, retry: Retry) -> Self {
        Server {
            db,
            info: Arc::new(OnceCell::new()),
            greeted: Arc::default(),
            retry,
        }
    }

    /// The `hello` the client's connection was greeted with: the probe
    /// starts from it instead of asking again.
    pub(crate) fn greeted(&self, hello: Hello) {
        *self.greeted.lock().expect("greeting") = Some(hello);
    }

    pub(crate) async fn info(&self) -> Result<Info, Error> {
        self.info
            .get_or_try_init(|| {
                self.retry.idempotent(
                    || "the server probe".into(),
                    || probe(&self.db, self.greeted.lock().expect("greeting").take()),
                )
            })
            .await
            .copied()
    }

    /// What the probe found, if it ran already (every clock read runs it).
    pub(crate) fn probed(&self) -> Option<Info> {
        self.info.get().copied()
    }

    pub(crate) async fn clock(&self) -> Result<Clock, Error> {
        Ok(self.info().await?.clock)
    }
}

/// Two commands: `hello` (whether the server has transactions, is a
/// `mongos`; none where the connection's greeting is at hand), and one
/// aggregation of no collection that reads `$$NOW` and compares it with a
/// time long past. Its `$$NOW` is the server's time, read on a connection
/// already open, so off by at most half of one plain round trip (the
/// greeting's round trip includes opening the connection, too long to time
/// a short lease by). The comparison's answer is known: SecantusDB 0.7
/// answers it `false` (it evaluates `$$NOW` in `$set`/`$addFields` but not in a
/// comparison), so the lock is taken and refreshed there by the estimated
/// time. MongoDB before 5.1 has no `$documents`: the aggregation fails, and
/// `hello.localTime`, asked once more, gives the time.
async fn probe(db: &Database, greeted: Option<Hello>) -> Result<Info, Error> {
    // Two documents: `now` always passes and carries the time; `compared`
    // passes only where `$$NOW` compares correctly in a query's `$expr`, the
    // form the lock's filters use.
    let check = doc! {
        "aggregate": 1,
        "pipeline": [
            { "$documents": [
                { "which": "now", "t": bson::DateTime::from_millis(0) },
                { "which": "compared", "t": bson::DateTime::from_millis(0) },
            ] },
            { "$match": { "$or": [
                { "which": "now" },
                { "$expr": { "$lt": [ "$t", "$$NOW" ] } },
            ] } },
            { "$addFields": { "now": "$$NOW" } },
        ],
        "cursor": {},
    };
    let sent = Instant::now();
    let checked = match db.run_command(check).await {
        Ok(reply) => Some(now_of(&reply)),
        // A lost reply says nothing about the server: probe again.
        Err(e) if crate::retry::is_transient(&e) => return Err(e.into()),
        Err(_) => None,
    };
    let at = sent + sent.elapsed() / 2;
    let (has_now, from_now) = match checked {
        Some((has_now, Some(server_ms))) => (has_now, Some(Clock { has_now, server_ms, at })),
        Some((has_now, None)) => (has_now, None),
        None => (false, None),
    };
    let hello = match (greeted, &from_now) {
        (Some(greeted), Some(_)) => greeted,
        // Without the server's `$$NOW`, its `localTime` on an open connection.
        _ => Hello::ask(db.client()).await?,
    };
    let clock = from_now.unwrap_or_else(|| Clock {
        has_now,
        server_ms: hello
            .reply
            .get_datetime("localTime")
            .map(|t| t.timestamp_millis())
            // Every server since 3.0 reports it; this only keeps a broken one usable.
            .unwrap_or_else(|_| bson::DateTime::now().timestamp_millis()),
        at: hello.sent + hello.half_trip,
    });
    Ok(Info {
        clock,
        transactions: hello_supports_transactions(&hello.reply),
        mongos: hello.reply.get_str("msg") == Ok("isdbgrid"),
    })
}

/// From the probe's aggregation: whether `$$NOW` compared as the server's
/// time (later than 1970: the `compared` document passed), and the server's
/// `$$NOW` in milliseconds, if it gave one.
fn now_of(reply: &Document) -> (bool, Option<i64>) {
    let batch: Vec<&Document> = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(bson::Bson::as_document).collect())
        .unwrap_or_default();
    let which = |w: &str| batch.iter().find(|d| d.get_str("which") == Ok(w));
    (
        which("compared").is_some(),
        which("now")
            .and_then(|d| d.get_datetime("now").ok())
            .map(|t| t.timestamp_millis()),
    )
}

#[cfg(test)]
mod tests {
    use super::{check_target, now_of};
    use crate::Error;
    use bson::doc;

    /// The probe's answer, as mongod 5.1+ gives it (`$documents`, `$match`
    /// with `$expr`, `$addFields`, `$$NOW`: the aggregation manual), as
    /// SecantusDB 0.7 gives it (measured: the `$expr` comparison false, so
    /// only `now` passes, with the right time), and empty.
    #[test]
    fn the_probe_reads_the_server_s_now_and_whether_it_compares() {
        let now = bson::DateTime::from_millis(1_796_630_000_000);
        let epoch = bson::DateTime::from_millis(0);
        let reply = |batch: Vec<bson::Document>| {
            doc! { "cursor": { "firstBatch": batch, "id": 0_i64, "ns": "db.$cmd.aggregate" }, "ok": 1.0 }
        };
        let mongod = reply(vec![
            doc! { "which": "now", "t": epoch, "now": now },
            doc! { "which": "compared", "t": epoch, "now": now },
        ]);
        assert_eq!(now_of(&mongod), (true, Some(1_796_630_000_000)));
        let secantus = reply(vec![doc! { "which": "now", "t": epoch, "now": now }]);
        assert_eq!(now_of(&secantus), (false, Some(1_796_630_000_000)));
        assert_eq!(now_of(&reply(Vec::new())), (false, None));
    }

    #[test]
    fn a_run_s_database_follows_the_server_s_rules_before_anything_connects() {
        let target = |uri, db| check_target(uri, db);
        assert_eq!(target("mongodb://h/shop", None).unwrap(), "shop");
        assert_eq!(target("mongodb://h/shop", Some("orders")).unwrap(), "orders");
        for (uri, db) in [
            ("mongodb://h/", Some("a/b")),
            ("mongodb://h/x.y", None),
            ("mongodb://h/", Some("my$db")),
            ("mongodb://h/", Some("admin")),
            ("mongodb://h/local", None),
        ] {
            assert!(
                matches!(target(uri, db), Err(Error::InvalidDatabaseName { .. })),
                "{uri} {db:?}"
            );
        }
        assert!(matches!(target("mongodb://h/", None), Err(Error::MissingDatabase)));
    }
}
